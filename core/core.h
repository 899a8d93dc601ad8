/* The CMP core: one request in, one answer out, whatever medium carried it.
 * Knows no transport: requests come in envelopes (envelope.h), upstreams and
 * pushes go through operations the media register (upstream.h). Safe to use
 * from several threads at once. */
#ifndef CMPR_CORE_CORE_H
#define CMPR_CORE_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/config.h"
#include "core/store.h"
#include "core/upstream.h"

struct cmpr_core;

/* A core for conf (which stays the caller's and must outlive it): CAs,
 * trust, store. Register the media (add_upstream, add_pusher), then
 * cmpr_core_start reads the routes. */
int cmpr_core_new(const struct cmpr_conf *conf, struct cmpr_core **core_r, char **err_r);
/* ops serves its URI schemes for upstream routes; ctx goes to every op. */
int cmpr_core_add_upstream(struct cmpr_core *core, const struct cmpr_upstream_ops *ops, void *ctx);
int cmpr_core_add_pusher(struct cmpr_core *core, const struct cmpr_push_ops *ops, void *ctx);
/* Reads the [route NAME] groups (each upstream's settings through its
 * scheme's configure). 0, or CMPR_ERR_CONFIG with *err_r "FILE:LINE: what". */
int cmpr_core_start(struct cmpr_core *core, char **err_r);
/* Every worker of the core and every envelope must be done. */
void cmpr_core_free(struct cmpr_core *core);
struct cmpr_store *cmpr_core_store(struct cmpr_core *core);

/* ---- the forwarder ([route NAME] upstream = URI; RFC 9483 5.2) ---- */
/* 1 when some route forwards to an upstream */
int cmpr_core_has_upstreams(const struct cmpr_core *core);
/* wake(ctx) asks the forwarder's thread for a cmpr_core_forward() pass soon
 * (any thread). */
void cmpr_core_set_forwarder(struct cmpr_core *core, void (*wake)(void *ctx), void *ctx);
/* Requests waiting on an upstream are answered now ("waiting", RFC 9810
 * 5.3.22): the daemon stops. On the loop thread of the parked requests. */
void cmpr_core_drain(struct cmpr_core *core);
/* One pass of the forwarder (one thread only): takes in what online
 * upstreams answered, sends what is due (batches too), collects answers of
 * offline upstreams, polls upstreams that said "waiting", gives up on what
 * waited too long. Returns the ms until the next pass is due, or -1 when
 * nothing waits. */
long cmpr_core_forward(struct cmpr_core *core);

/* Which route msg (DER, arriving with label) would take and why, one line
 * per route tried, into out (`cmprouter routes --explain`). */
int cmpr_core_explain(struct cmpr_core *core, const char *label, const unsigned char *der,
                      size_t len, char *out, size_t outlen);

/* ---- answers a client comes back for (TCP-Message pollReq, cmp-wire.md 1.2) ----
 * A medium that hands out a reference instead of the answer keeps the
 * request and then the answer in the store (struct cmpr_defer_rec), so that
 * the reference survives a restart. Blocking (store): not on a loop thread. */
/* A new reference (never 0, not in use) for req, durable when it returns. */
int cmpr_core_defer(struct cmpr_core *core, const unsigned char *req, size_t len, uint32_t *ref_r);
/* Its answer (DONE), or with der NULL that none can come (FAILED). */
int cmpr_core_defer_answer(struct cmpr_core *core, uint32_t ref, const unsigned char *der, size_t len);
int cmpr_core_defer_get(struct cmpr_core *core, uint32_t ref, struct cmpr_defer_rec *rec_r);
/* calls cb for every reference created since older_than; older ones go */
int cmpr_core_defer_list(struct cmpr_core *core, int64_t older_than,
                         int (*cb)(const struct cmpr_defer_rec *rec, void *arg), void *arg);

/* Counters since the core started (for metrics). */
struct cmpr_core_stats {
    unsigned long requests[32];     /* by PKIBody type of the request (27..31 unused) */
    unsigned long undecodable;      /* not a PKIMessage */
    unsigned long answers[8];       /* by PKIStatus 0..6 of the answer; [7]: no status (genp, pkiconf ...) */
    unsigned long errors;           /* answers that were CMP error messages */
    unsigned long store_errors;
    time_t last_store_error;        /* when the store last failed a request, 0: never */
    unsigned long parked;           /* requests waiting on an upstream now */
};
void cmpr_core_stats(struct cmpr_core *core, struct cmpr_core_stats *out);

/* ---- operator actions ---- */
/* Decisions on a request waiting for approval. */
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
