/* The core's insides, shared by its files (not for the layers above): the
 * core object, one request on its way through the pipeline, and the helpers
 * every stage uses. Who calls whom (no two files call each other):
 *
 *   submit.c -> pipeline.c -> auth.c, enroll.c, revoke.c, genm.c, krr.c,
 *                             forward.c -> upstream.c
 *   forwarder.c -> upstream.c        operator.c -> enroll.c, revoke.c
 *   genm.c -> enroll.c -> revoke.c   enroll.c, revoke.c -> rights.c
 *   everyone -> answer.c, txn.c, store, ca
 */
#ifndef CMPR_CORE_REQ_H
#define CMPR_CORE_REQ_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#include <uv.h>

#include "core/core.h"
#include "core/ca.h"
#include "core/route.h"
#include "core/store.h"
#include "core/upstream.h"
#include "base/limits.h"
#include "codec/msg.h"
#include "codec/protect.h"

#define CMPR_MAX_UPSTREAM_OPS 16
#define CMPR_MAX_PUSH_OPS 16

struct cmpr_parked;
struct cmpr_envelope;
struct cmpr_up_result;

struct cmpr_core {
    const struct cmpr_conf *conf;
    struct cmpr_store *st;
    struct cmpr_ca **cas;
    size_t n_cas;
    X509_STORE *trust;              /* anchors for signature-protected requests */
    STACK_OF(X509) *untrusted;
    struct cmpr_mac_cache *mac_cache;
    struct cmpr_routes *routes;     /* [route NAME] groups, in file order */
    const struct cmpr_route *ra_signer;   /* without [ca]: the first route with ra_cert */
    /* the media's operations */
    struct { const struct cmpr_upstream_ops *ops; void *ctx; } up[CMPR_MAX_UPSTREAM_OPS];
    size_t n_up;
    struct { const struct cmpr_push_ops *ops; void *ctx; } push[CMPR_MAX_PUSH_OPS];
    size_t n_push;
    void (*wake)(void *ctx);        /* the forwarder's thread */
    void *wake_ctx;
    /* forwarder.c: exchanges in flight and what came back (under mu) */
    pthread_mutex_t mu;
    struct cmpr_up_result *results;
    struct cmpr_inflight *inflight;
    int64_t fwd_cleaned;            /* when finished forwarding records were last removed */
    /* submit.c: envelopes that wait on an upstream (under park_mu) */
    pthread_mutex_t park_mu;
    pthread_cond_t park_cond;
    struct cmpr_parked *parked;
    uv_loop_t *park_loop;           /* the loop of the parked envelopes' replies */
    uv_async_t park_async;
    uv_timer_t park_timer;
    int park_handles;
    /* submit.c: answers waiting for their changes to be durable (under
     * sync_mu), and the thread that syncs the store for them */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cond;
    pthread_t sync_thread;
    int sync_running, sync_stop;
    int sync_inline;                /* a worker syncs on its own (at low load) */
    _Atomic int n_working;          /* envelopes queued for a worker or on one */
    uint64_t sync_want, sync_done, sync_lost;   /* store tokens: asked for, durable, lost */
    struct cmpr_envelope *sync_waiting;
    uv_async_t sync_async;
    /* metrics: updated from every worker */
    _Atomic unsigned long requests[32], undecodable, answers[8], errors, store_errors, n_parked;
    _Atomic long long last_store_error;     /* time() of the last store failure, 0: none */
};

/* Where a request came from (for logs, audit and profile selection). */
struct cmpr_request_info {
    const char *medium;
    const char *peer;
    const char *label;
    const char *operation;
    const char *tls_subject;
    int resumed;                    /* its senderNonce is recorded already */
    const char *push_medium, *push; /* cmpr_envelope_set_push, or NULL */
    int waited;                     /* 1: woken because its upstream answered or failed;
                                       2: its wait ran out */
    int64_t deadline_ms;            /* of a parked request (monotonic), or 0 */
    unsigned long *mac_budget;      /* what key derivations may still cost (shared by a mail's parts) */
    uint64_t *sync_token;           /* non-NULL: an answer may be given before its changes are
                                       durable; the caller waits for this store token (store.h
                                       commit/sync) before it lets the answer leave */
    int store_lost;                 /* what an earlier run of it changed was lost before its
                                       answer could leave: answer systemUnavail */
};

enum { AUTH_NONE = 0, AUTH_MAC, AUTH_SIG };

/* what the pipeline does with the request after a stage */
enum { CMPR_PARK = 1 };

struct req {
    struct cmpr_core *core;
    const struct cmpr_request_info *info;
    CMPR_PKIMESSAGE *msg;
    int body;
    /* authentication (auth.c), done once before the route decision */
    int auth;                       /* AUTH_*; AUTH_NONE: it did not authenticate */
    int auth_fail;                  /* then the failInfo bit */
    int auth_soft;                  /* 1: not checkable here (unprotected, unknown
                                       reference, signer not trusted): an upstream may */
    char auth_why[400];
    int mac_kind;
    const struct cmpr_conf_client *client;
    X509 *signer;                   /* borrowed from msg->extraCerts */
    int signer_is_ra;
    struct cmpr_ca *ca;             /* NULL in a router without [ca] */
    const struct cmpr_route *route; /* the upstream route it took, or NULL */
    char sender[512];
    char tidhex[2 * CMPR_STORE_MAX_ID + 1];
    /* the local CA's transaction */
    struct cmpr_txn_rec txn;        /* loaded or new transaction */
    int have_txn;                   /* txn exists in the store */
    int save_txn;                   /* 1: insert, 2: update, after the answer is built */
    struct cmpr_cert_rec *new_cert; /* to store before the transaction */
    unsigned char *archive;         /* EnvelopedData of an archived private key */
    size_t archive_len;
    int revoke_old;                 /* after commit: revoke the certificate kur replaced */
    int keep_answer;                /* 0: the answer is not stored (it carries a private key) */
    /* an answer that is already protected (nested, forwarded) */
    unsigned char *raw_answer;
    size_t raw_answer_len;
    int depth;                      /* nested messages being unwrapped */
    const unsigned char *der;       /* the request as it came */
    size_t der_len;
    int64_t park_deadline_ms;       /* CMPR_PARK: wait until then at most */
};

#define FI(x) (1u << (x))

/* ---- answer.c: helpers of every stage ---- */
void cmpr_hex(const unsigned char *d, size_t len, char *out, size_t outlen);
void cmpr_octets(const ASN1_OCTET_STRING *os, unsigned char *dst, size_t cap, size_t *len_r);
int cmpr_octets_equal(const ASN1_OCTET_STRING *os, const unsigned char *d, size_t len);
unsigned char *cmpr_memdup(const unsigned char *d, size_t len);
/* a certificate serial number as unsigned big-endian bytes (len 0 if it does not fit) */
void cmpr_serial_bytes(const ASN1_INTEGER *ai, unsigned char *out, size_t cap, size_t *len_r);
/* DER of m into malloc()ed memory */
int cmpr_encode(const CMPR_PKIMESSAGE *m, unsigned char **der_r, size_t *len_r);
void cmpr_audit(struct req *q, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* the status of a refusal of q (rejection, failbit, the text), audited as event */
CMPR_PKISI *cmpr_rejection(struct req *q, const char *event, int failbit, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* a CMP error (RFC 9810 5.3.21) answering q for a message-level problem
 * (protection still to add); audited */
#define cmpr_error_rsp(q, failbit, ...) \
    cmpr_msg_build_error((q)->msg, cmpr_rejection((q), "error", (failbit), __VA_ARGS__), -1, NULL)
/* "waiting" for something that takes time: a certificate request's response
 * with status waiting, anything else an error with status waiting */
CMPR_PKIMESSAGE *cmpr_waiting_rsp(struct req *q, const char *text);
/* The MAC parameters of a message the router starts (cmprouter.conf
 * pbm_defaults, pbmac1_defaults; else the built-in defaults) */
void cmpr_mac_defaults(const struct cmpr_core *c, int kind, struct cmpr_mac_params *p);
/* Protects an answer to q: MAC with the client's secret (when it came with
 * one and the CA answers so), else a signature (RFC 9810 5.3.21: the CA
 * signs its error messages): for a request that went upstream the route's
 * ra_cert (the RA answers), else the CA's signer; in a router without [ca]
 * the first route's ra_cert; with none of them the answer stays unprotected
 * (RFC 9483 3.6.4 allows that for errors). */
int cmpr_protect_answer(struct req *q, CMPR_PKIMESSAGE *rsp);
/* the same for a client that is not asking now (an answer pushed to it);
 * a MAC answer takes the parameters of req_alg (the request's protectionAlg)
 * when given and of mac_kind, else the defaults */
int cmpr_protect_for(struct cmpr_core *c, struct cmpr_ca *ca, const struct cmpr_route *rt,
                     const struct cmpr_conf_client *client, int auth, int mac_kind, const X509_ALGOR *req_alg,
                     CMPR_PKIMESSAGE *rsp);
int cmpr_is_request(int body);
int cmpr_is_certreq(int body);
/* a body that opens a transaction (and so is matched against the routes) */
int cmpr_is_first(int body);
int cmpr_rep_type(int body);
/* the certReqId q's answer names */
long cmpr_req_cert_req_id(const struct req *q);
void cmpr_count_answer(struct cmpr_core *c, const CMPR_PKIMESSAGE *rsp);
const struct cmpr_conf_client *cmpr_client_by_name(const struct cmpr_core *c, const char *name);
/* Opens q's new transaction (RFC 9810 5.1.1: a transactionID in use is
 * refused): NULL to go on, or the error answer. */
CMPR_PKIMESSAGE *cmpr_open_txn(struct req *q);
/* q's transaction to state: NULL, or the error answer when the machine
 * refuses (nothing of the transaction is kept then). */
CMPR_PKIMESSAGE *cmpr_txn_move(struct req *q, int state);

/* ---- auth.c ---- */
/* Checks q's protection once; sets q->auth, client, signer ... or the
 * reasons it failed (auth_fail, auth_soft, auth_why). */
void cmpr_auth_check(struct req *q);
/* The error answer for a request that did not authenticate. */
CMPR_PKIMESSAGE *cmpr_auth_error(struct req *q);
/* Follow-up messages use the credentials of the first (RFC 9483 3.5, 4.1.3) */
int cmpr_auth_same_credentials(const struct req *q);

/* ---- the local CA's stages (each returns the answer to protect, or NULL
 * for an internal failure) ---- */
CMPR_PKIMESSAGE *cmpr_enroll_request(struct req *q);        /* ir cr kur p10cr ccr */
CMPR_PKIMESSAGE *cmpr_enroll_confirm(struct req *q);        /* certConf */
CMPR_PKIMESSAGE *cmpr_enroll_poll(struct req *q);           /* pollReq */
CMPR_PKIMESSAGE *cmpr_enroll_client_error(struct req *q);   /* a client's error */
/* the profile a request asks for (certProfile, label, client, CA default) */
const struct cmpr_conf_profile *cmpr_enroll_profile(struct req *q, char *why, size_t whylen);
/* operator approval of a pending request: issues and records its certificate */
int cmpr_enroll_approve(struct req *q);
/* after the commit: kur's old certificate is superseded (profile revoke_replaced) */
void cmpr_enroll_revoke_replaced(struct req *q);
void cmpr_enroll_done(struct req *q);   /* frees what enrollment left in q */
CMPR_PKIMESSAGE *cmpr_revoke_request(struct req *q);        /* rr */
/* ---- rights.c ---- */
/* does right (enum cmpr_right) give q's client the certificate cert? */
int cmpr_rights_cover(struct req *q, int right, const struct cmpr_cert_rec *cert);
int cmpr_revoke_serial(struct req *q, const unsigned char *serial, size_t len, int reason);
CMPR_PKIMESSAGE *cmpr_genm_request(struct req *q);          /* genm */
CMPR_PKIMESSAGE *cmpr_krr_request(struct req *q);           /* krr */

/* ---- forward.c: a client's message that goes upstream ---- */
/* q has been authenticated (maybe softly); rt its route, rec its record
 * (have: stored before). CMPR_OK with q->raw_answer set, CMPR_PARK to wait
 * (q->park_deadline_ms), or CMPR_ERR_*. */
int cmpr_forward_request(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, int have);

/* ---- upstream.c: both sides of forwarding share these ---- */
/* what the answer says about delay: 1 for waiting / pollRep */
int cmpr_up_is_waiting(const CMPR_PKIMESSAGE *a, long *check_after_r, long *cert_req_id_r);
/* does this answer end the transaction? */
int cmpr_up_is_final(const CMPR_PKIMESSAGE *a);
/* the protection mode a body travels with on rt (kur keeps the client's) */
int cmpr_up_mode(const struct cmpr_route *rt, int body);
/* our own protection towards the upstream (RFC 9483 5.2.3.1) */
int cmpr_up_protect(const struct cmpr_core *c, const struct cmpr_route *rt, CMPR_PKIMESSAGE *m);
/* The upstream's answer must be its own (RFC 9483 5.2): 0, or -1 with why. */
int cmpr_up_verify(struct cmpr_core *c, const struct cmpr_conf_client *client,
                   const struct cmpr_route *rt, const CMPR_PKIMESSAGE *a, int ours, char *why,
                   size_t wlen);
/* a nested answer holding one message: that message */
CMPR_PKIMESSAGE *cmpr_up_unnest(CMPR_PKIMESSAGE *a);
/* printable text of s (a reference), or "" */
void cmpr_up_text(const ASN1_STRING *s, char *buf, size_t len);
/* stores rec as the forwarder or a client left it; a concurrent change of the
 * other side is merged (see forwarder.c) */
int cmpr_up_put(struct cmpr_core *c, struct cmpr_fwd_rec *rec);
/* the upstream ops serving rt (NULL: none) */
void cmpr_up_wake(struct cmpr_core *c);

/* ---- submit.c ---- */
/* one DER request through the pipeline; CMPR_OK with *out_r (malloc()ed),
 * CMPR_PARK, or CMPR_ERR_* */
int cmpr_pipeline_run(struct cmpr_core *core, const struct cmpr_request_info *info,
                      const unsigned char *der, size_t len, unsigned char **out_r, size_t *out_len_r,
                      int64_t *deadline_r);
/* wakes the envelopes waiting on transaction tid (any thread) */
void cmpr_park_notify(struct cmpr_core *c, const unsigned char *tid, size_t len);
void cmpr_park_free(struct cmpr_core *c);

/* ---- forwarder.c ---- */
void cmpr_forwarder_free(struct cmpr_core *c);

/* ---- operator.c ---- */
void cmpr_operator_req(struct cmpr_core *core, struct req *q, const struct cmpr_request_info *info);

#endif
