/* What every online exchange on the client loop has in common (HTTP and
 * TCP-Message, client/http.c and client/tcp.c): the deadline, the place on
 * the loop (cancelled when the loop stops), and one end reported once
 * through done(). The medium embeds a struct cmpr_xchg first, drives its
 * connection, and ends with cmpr_xchg_finish. Loop thread only, but for
 * cmpr_xchg_init and cmpr_xchg_start. */
#ifndef CMPR_XCHG_H
#define CMPR_XCHG_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "transports/lib/aconn.h"
#include "transports/lib/ioloop.h"
#include "core/upstream.h"

struct cmpr_xchg;

struct cmpr_xchg_ops {
    const char *kind;                   /* the ioloop kind */
    /* on the loop, once armed: connect and send */
    void (*go)(struct cmpr_xchg *x);
    /* the end came (before done()): the medium may take x->a to keep it
     * for another exchange (result CMPR_OK); a connection left is closed.
     * NULL: always closed. */
    void (*drop)(struct cmpr_xchg *x, int result);
    /* the loop has let go of the timers: free the rest (x->req is freed) */
    void (*free)(struct cmpr_xchg *x);
};

struct cmpr_xchg {
    struct cmpr_ioloop_obj obj;         /* first */
    const struct cmpr_xchg_ops *ops;
    struct cmpr_ioloop *l;
    struct cmpr_aconn *a;               /* the connection, while there is one */
    char host[256];
    int port;
    unsigned char *req;                 /* what is sent (the medium fills it; freed here) */
    size_t req_len;
    int sent;                           /* the request went out: a silence now is a timeout */
    int finished;
    long timeout_ms;
    uint64_t deadline;                  /* loop time (ms) */
    uv_timer_t timer;                   /* the deadline */
    uv_timer_t wait;                    /* the medium's own (TCP: the check-back time) */
    int handles;
    cmpr_upstream_done_fn done;
    void *arg;
};

/* Fills the common part (timeout_ms <= 0: 30 s); any thread. */
void cmpr_xchg_init(struct cmpr_xchg *x, const struct cmpr_xchg_ops *ops, struct cmpr_ioloop *l,
                    const char *host, int port, long timeout_ms, cmpr_upstream_done_fn done, void *arg);
/* Has the loop arm the deadline and call ops->go; any thread. CMPR_OK, or
 * CMPR_ERR_UNREACHABLE when the loop is stopping (x is freed then, done()
 * is not called). */
int cmpr_xchg_start(struct cmpr_xchg *x);
/* The end: ops->drop, done(result, ans (given away), len, why) once, then
 * the timers close and ops->free follows. Later calls free ans and return. */
void cmpr_xchg_finish(struct cmpr_xchg *x, int result, unsigned char *ans, size_t len, const char *why);

/* Connections kept between the exchanges of one transaction (HTTP
 * keep-alive, TCP-Message without the close flag), by key ("scheme://host:port
 * tag"): at most 256 per loop, the least recently used going first, and
 * none unused for over a minute. keep takes a (an idle connection that
 * hears from its server is closed); take_idle gives one back (its owner to
 * be set with cmpr_aconn_set_owner), or NULL. Loop thread only. */
void cmpr_xchg_keep(struct cmpr_ioloop *l, const char *key, struct cmpr_aconn *a);
struct cmpr_aconn *cmpr_xchg_take_idle(struct cmpr_ioloop *l, const char *key);

#endif
