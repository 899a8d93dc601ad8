/* The route table ([route NAME] groups, in file order): which requests the
 * local CA answers and which go upstream, where and how (RFC 9483 5.2).
 * First match wins; a route without match keys matches every request; with
 * no match at all the local CA answers. See cmprouter.conf(5). */
#ifndef CMPR_CORE_ROUTE_H
#define CMPR_CORE_ROUTE_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/config.h"
#include "core/upstream.h"

enum cmpr_route_prot { CMPR_ROUTE_KEEP = 0, CMPR_ROUTE_REPROTECT, CMPR_ROUTE_NESTED };

struct cmpr_route {
    char *name;
    const struct cmpr_conf_group *g;    /* its group: the upstream's medium options */
    /* match keys; NULL / 0 = any */
    char **labels;                      /* HTTP /p/<label>, file-drop or mail label */
    char **profiles;                    /* certProfile asked for */
    unsigned long bodies;               /* bit per body type */
    char *client;                       /* fnmatch on the reference (senderKID) or signer subject */
    char *subject;                      /* fnmatch on the subject asked for (RFC 2253) */
    char *issuer;                       /* fnmatch on the issuer asked for */
    /* action */
    char *ca;                           /* local CA (NULL: the first) when there is no upstream */
    char *upstream;                     /* URI, or NULL */
    const struct cmpr_upstream_ops *up; /* its scheme's operations, and their context */
    void *up_ctx;
    void *up_set;                       /* the medium's settings (up->configure) */
    int offline;                        /* up->offline */
    int protection;                     /* enum cmpr_route_prot */
    int ra_verified;                    /* POP checked here, forwarded as raVerified */
    long timeout_ms;                    /* one upstream exchange */
    long wait_ms;                       /* how long a client waits before "waiting" */
    long followup_wait_ms;              /* the same for certConf and the like */
    long retry_ms;                      /* first pause after a failed attempt (doubles) */
    long give_up_s;                     /* a request still not answered: systemUnavail */
    long batch;                         /* >1: up to this many requests per nested message */
    long batch_wait_ms;                 /* gather for at most this long */
    long check_after;                   /* pollRep checkAfter while the upstream works */
    /* the RA's own credentials towards the upstream */
    EVP_PKEY *ra_key;
    X509 *ra_cert;
    STACK_OF(X509) *ra_chain;
    char *ra_reference;
    unsigned char *ra_secret;
    size_t ra_secret_len;
    int ra_mac_kind;                    /* CMPR_MAC_PBM / _PBMAC1 */
    X509_STORE *trusted;                /* for the upstream's signed answers, or NULL */
};

struct cmpr_routes {
    struct cmpr_route *v;
    size_t n;
};

/* What a request is matched on. */
struct cmpr_route_query {
    const char *label;
    const char *profile;
    int body;
    const char *client;                 /* reference or signer subject, or NULL */
    const char *subject;                /* RFC 2253, or NULL */
    const char *issuer;                 /* RFC 2253, or NULL */
};

/* The media an upstream URI can name: operations by scheme. */
struct cmpr_route_media {
    const struct cmpr_upstream_ops *ops[16];
    void *ctx[16];
    size_t n;
};

/* Reads every [route NAME] of conf (keys checked, files loaded, each
 * upstream's medium keys read by its scheme's configure). 0 or
 * CMPR_ERR_CONFIG with *err_r "FILE:LINE: what". */
int cmpr_routes_load(const struct cmpr_conf *conf, const struct cmpr_route_media *media,
                     struct cmpr_routes **rt_r, char **err_r);
void cmpr_routes_free(struct cmpr_routes *rt);
const struct cmpr_route *cmpr_route_by_name(const struct cmpr_routes *rt, const char *name);

/* The first route q matches, or NULL (the local CA). With explain set, one
 * line per route tried is appended to it (what matched, what did not). */
const struct cmpr_route *cmpr_route_match(const struct cmpr_routes *rt,
                                          const struct cmpr_route_query *q, char *explain,
                                          size_t explain_len);

#endif
