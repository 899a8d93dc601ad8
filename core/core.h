/* The CMP core: one request in, one answer out, whatever medium carried it.
 * Knows no transport. Safe to call from several worker threads at once. */
#ifndef CMPR_CORE_CORE_H
#define CMPR_CORE_CORE_H

#include <stddef.h>
#include <time.h>

#include "core/config.h"
#include "core/store.h"

struct cmpr_core;

/* Where a request came from (for logs, audit and profile selection). */
struct cmpr_request_info {
    const char *medium;     /* "http", "tcp", "file", "sftp", "mail", "cli" */
    const char *peer;       /* address, file name, mail From */
    const char *label;      /* HTTP /p/<label>, file-drop or mail label, or NULL */
    const char *operation;  /* HTTP operation label (RFC 9483 6.1), or NULL */
    const char *tls_subject;/* verified TLS client certificate subject (RFC 2253), or NULL */
    /* 1: this very request was handed to the core before and its answer was
     * lost in a crash (a claimed file run again at startup). Its senderNonce
     * is then already in the replay cache and is not taken for a replay. */
    int resumed;
    /* Where an answer can be delivered later without the client asking
     * (mail, file drop): the medium's own address, opaque to the core, handed
     * back to cmpr_upstream_ops.push when a forwarded request's answer comes
     * in while the client waits. NULL: the client polls. */
    const char *push;
};

/* conf stays owned by the caller and must outlive the core. */
int cmpr_core_new(const struct cmpr_conf *conf, struct cmpr_core **core_r, char **err_r);
void cmpr_core_free(struct cmpr_core *core);
struct cmpr_store *cmpr_core_store(struct cmpr_core *core);

/* Processes one DER PKIMessage and returns the DER answer (caller frees with
 * free()). Every request gets an answer: a CMP response or a protected CMP
 * error. Fails only when no answer can be built at all. */
int cmpr_core_handle(struct cmpr_core *core, const struct cmpr_request_info *info,
                     const unsigned char *der, size_t len, unsigned char **out_r,
                     size_t *out_len_r);

/* ---- upstream CAs ([route NAME] upstream = URI; RFC 9483 5.2) ----
 * The core knows no medium: the daemon hands it these operations (the
 * client side of the transports, see transports/upstream.c). */
struct cmpr_route;
enum { CMPR_UP_ANSWER = 0, CMPR_UP_SENT = 1, CMPR_UP_FAILED = -1, CMPR_UP_TIMEOUT = -2 };
struct cmpr_upstream_ops {
    /* Sends der to rt's upstream as name. HTTP/TCP wait (timeout_ms) for the
     * answer: ANSWER with *ans_r (malloc()ed); FAILED: it could not go out
     * or the upstream failed; TIMEOUT: no answer in time. File, SFTP, mail:
     * SENT, collect the answer by key. err[] says why. Blocking. */
    int (*start)(void *ctx, const struct cmpr_route *rt, const char *name, const unsigned char *der,
                 size_t len, long timeout_ms, char *key, size_t keylen, unsigned char **ans_r,
                 size_t *ans_len_r, char *err, size_t errlen);
    /* 1 with the answer for key, 0 not yet, -1 trouble */
    int (*collect)(void *ctx, const struct cmpr_route *rt, const char *key, unsigned char **ans_r,
                   size_t *ans_len_r, char *err, size_t errlen);
    /* there is new work for cmpr_core_forward (may be NULL) */
    void (*wake)(void *ctx);
    /* Delivers der to a client that waits, at the address its transport put
     * into cmpr_request_info.push (may be NULL). 0, or -1 with err[]. */
    int (*push)(void *ctx, const char *push, const unsigned char *der, size_t len, char *err,
                size_t errlen);
};
void cmpr_core_set_upstream(struct cmpr_core *core, const struct cmpr_upstream_ops *ops, void *ctx);
/* 1 when some route forwards to an upstream */
int cmpr_core_has_upstreams(const struct cmpr_core *core);
/* One pass of the forwarder (one thread only): sends what is due (batches
 * too), collects answers of offline upstreams, polls upstreams that said
 * "waiting", gives up on what waited too long. Returns the ms until the
 * next pass is due, or -1 when nothing waits. */
long cmpr_core_forward(struct cmpr_core *core);

/* Which route msg (DER) would take and why, one line per route tried, into
 * out (`cmprouter routes --explain`). */
int cmpr_core_explain(struct cmpr_core *core, const struct cmpr_request_info *info,
                      const unsigned char *der, size_t len, char *out, size_t outlen);

/* Counters since the core started (for metrics). */
struct cmpr_core_stats {
    unsigned long requests[32];     /* by PKIBody type of the request (27..31 unused) */
    unsigned long undecodable;      /* not a PKIMessage */
    unsigned long answers[8];       /* by PKIStatus 0..6 of the answer; [7]: no status (genp, pkiconf ...) */
    unsigned long errors;           /* answers that were CMP error messages */
    unsigned long store_errors;
};
void cmpr_core_stats(struct cmpr_core *core, struct cmpr_core_stats *out);

/* Operator decisions on a request waiting for approval. */
int cmpr_core_approve(struct cmpr_core *core, const unsigned char *tid, size_t len);
int cmpr_core_reject(struct cmpr_core *core, const unsigned char *tid, size_t len,
                     const char *reason);
/* Revokes a certificate issued here (reason: CRLReason code). */
int cmpr_core_revoke(struct cmpr_core *core, const unsigned char *serial, size_t len,
                     int reason);
/* Housekeeping, to run periodically: certificates not confirmed within
 * confirm_wait are revoked and their transactions expired (RFC 9810 5.3.18);
 * CRL files past half their validity are rewritten. Returns how many
 * certificates were revoked. */
int cmpr_core_expire(struct cmpr_core *core, time_t now);
/* Writes the CRL of the CA to path (NULL: its crl_file). */
int cmpr_core_write_crl(struct cmpr_core *core, const char *path);

#endif
