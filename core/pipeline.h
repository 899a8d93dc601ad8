/* The pipeline's insides, shared by pipeline.c (the local CA) and
 * forward.c (requests that go upstream). Not for other modules. */
#ifndef CMPR_CORE_PIPELINE_H
#define CMPR_CORE_PIPELINE_H

#include <stdatomic.h>

#include "core/core.h"
#include "core/ca.h"
#include "core/route.h"
#include "core/store.h"
#include "base/limits.h"
#include "codec/msg.h"
#include "codec/protect.h"

struct cmpr_core {
    const struct cmpr_conf *conf;
    struct cmpr_store *st;
    struct cmpr_ca **cas;
    size_t n_cas;
    X509_STORE *trust;              /* anchors for signature-protected requests */
    STACK_OF(X509) *untrusted;
    struct cmpr_mac_cache *mac_cache;
    struct cmpr_routes *routes;     /* [route NAME] groups, in file order */
    const struct cmpr_upstream_ops *up;     /* how to reach upstreams (NULL: queue only) */
    void *up_ctx;
    int64_t fwd_cleaned;            /* when finished forwarding records were last removed */
    /* metrics: updated from every worker */
    _Atomic unsigned long requests[32], undecodable, answers[8], errors, store_errors;
};

enum { AUTH_NONE = 0, AUTH_MAC, AUTH_SIG };

struct req {
    struct cmpr_core *core;
    const struct cmpr_request_info *info;
    CMPR_PKIMESSAGE *msg;
    int body;
    int auth;
    int mac_kind;
    const struct cmpr_conf_client *client;
    X509 *signer;                   /* borrowed from msg->extraCerts */
    int signer_is_ra;
    struct cmpr_ca *ca;
    char sender[512];
    char tidhex[2 * CMPR_STORE_MAX_ID + 1];
    struct cmpr_txn_rec txn;        /* loaded or new transaction */
    int have_txn;                   /* txn exists in the store */
    int save_txn;                   /* 1: insert, 2: update, after the answer is built */
    struct cmpr_cert_rec *new_cert; /* to store before the transaction */
    unsigned char *archive;         /* EnvelopedData of an archived private key */
    size_t archive_len;
    unsigned char *raw_answer;      /* an answer that is already protected (nested) */
    size_t raw_answer_len;
    int depth;                      /* nested messages being unwrapped */
    int revoke_old;                 /* after commit: revoke the certificate kur replaced */
    const unsigned char *der;       /* the request as it came */
    size_t der_len;
};

#define FI(x) (1u << (x))

void pl_hex(const unsigned char *d, size_t len, char *out, size_t outlen);
void pl_octets(const ASN1_OCTET_STRING *os, unsigned char *dst, size_t cap, size_t *len_r);
int pl_octets_equal(const ASN1_OCTET_STRING *os, const unsigned char *d, size_t len);
void pl_audit(struct req *q, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* a CMP error answering q (protection still to add) */
CMPR_PKIMESSAGE *pl_error_rsp(struct req *q, int failbit, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int pl_is_request(int body);
/* NULL when q's protection verifies (q->auth, q->client set), else the error answer */
CMPR_PKIMESSAGE *pl_authenticate(struct req *q);
CMPR_PKIMESSAGE *pl_check_tls_binding(struct req *q);
/* protects an answer to q: MAC with the client's secret, or our signature */
int pl_protect(struct req *q, CMPR_PKIMESSAGE *rsp);
int pl_rep_type(int body);

/* forward.c: 1 when q goes upstream (then *der_r and *len_r hold the whole
 * protected answer, malloc()ed), 0 when the local CA answers it (q->ca may
 * have been set by a route), or CMPR_ERR_* */
int pl_forward(struct req *q, unsigned char **der_r, size_t *len_r);

#endif
