/* What the daemon (apps/cmprouterd.c) lends the transports and their
 * helpers: the loop and the current core. */
#ifndef CMPR_DAEMON_H
#define CMPR_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct cmpr_core;

/* What the daemon lends a transport: the loop and the current core (which
 * SIGHUP may replace between requests). */
struct cmpr_daemon {
    uv_loop_t *loop;
    struct cmpr_core *(*core)(struct cmpr_daemon *d);
    /* one request finished (loop thread): for metrics */
    void (*request_done)(struct cmpr_daemon *d, const char *medium, int ok, uint64_t ns);
    /* Prometheus text for the admin listener (loop thread) */
    size_t (*metrics)(struct cmpr_daemon *d, char *buf, size_t len);
    /* /healthz (loop thread): 0 and "ok", or -1 and what is wrong; NULL: ok */
    int (*health)(struct cmpr_daemon *d, char *buf, size_t len);
};

#endif
