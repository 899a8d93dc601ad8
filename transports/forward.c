/*
 * The forwarder's thread ([route NAME] upstream = URI): runs
 * cmpr_core_forward() whenever the core has news for it (a request queued
 * for an upstream, an upstream's answer back) and every second while
 * answers of offline upstreams are awaited. Exchanges with online upstreams
 * run on the client side's own loop (lib/ioloop.c), not here: this thread
 * never waits on an HTTP or TCP upstream; it does wait on the offline media
 * (a slow folder, an SSH server), which is why it is a thread of its own.
 */
#include "transports/transport.h"
#include "transports/lib/worker.h"
#include "core/core.h"
#include "base/err.h"
#include "base/log.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct fwd_ctx {
    struct cmpr_worker w;
    _Atomic int started;
    void (*stop_done)(void *arg);
    void *stop_arg;
};

static struct fwd_ctx *the_ctx;

static void
wake(void *ctx)
{
    struct fwd_ctx *c = ctx;

    if (c != NULL && c->started)
        cmpr_worker_wake(&c->w);
}

void
cmpr_forward_attach(struct cmpr_core *core)
{
    if (the_ctx != NULL)
        cmpr_core_set_forwarder(core, wake, the_ctx);
}

static long
cycle(struct cmpr_worker *w, struct cmpr_core *core, void *arg)
{
    (void)w;
    (void)arg;
    if (core == NULL)
        return -1;
    cmpr_forward_attach(core);          /* a reloaded core gets it too */
    return cmpr_core_forward(core);
}

static int
fwd_configure(void *vctx, const char *name, const struct cmpr_conf_group *g, char **err_r)
{
    (void)name;
    (void)g;
    (void)err_r;
    the_ctx = vctx;
    return CMPR_OK;
}

static int
fwd_start(void *vctx, struct cmpr_daemon *d, char **err_r)
{
    struct fwd_ctx *c = vctx;

    c->started = 1;
    cmpr_forward_attach(d->core(d));
    if (cmpr_worker_start(&c->w, d, "forward", 5000, cycle, c) != 0) {
        *err_r = strdup("forward: cannot start its thread");
        return CMPR_ERR_INTERNAL;
    }
    return CMPR_OK;
}

static void
worker_done(void *arg)
{
    struct fwd_ctx *c = arg;

    c->started = 0;
    if (c->stop_done != NULL)
        c->stop_done(c->stop_arg);
}

static void
fwd_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    struct fwd_ctx *c = vctx;

    c->stop_done = done;
    c->stop_arg = arg;
    cmpr_worker_stop(&c->w, worker_done, c);
}

static size_t
fwd_in_flight(void *vctx)
{
    return cmpr_worker_in_flight(&((struct fwd_ctx *)vctx)->w);
}

static void
fwd_free(void *vctx)
{
    if (the_ctx == vctx)
        the_ctx = NULL;
}

const struct cmpr_transport_ops cmpr_forward_transport = {
    .name = "forward",
    .group_type = "route",
    .group_names = NULL,
    .ctx_size = sizeof(struct fwd_ctx),
    .configure = fwd_configure,
    .start = fwd_start,
    .stop = fwd_stop,
    .in_flight = fwd_in_flight,
    .port = cmpr_transport_no_port,
    .set_address = cmpr_transport_no_address,
    .free = fwd_free,
    .upstream = NULL,
    .push = NULL,
};
