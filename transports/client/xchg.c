/* The common part of an online exchange on the client loop (xchg.h). */
#include "transports/client/xchg.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>

static void
closed(uv_handle_t *h)
{
    struct cmpr_xchg *x = h->data;

    if (--x->handles == 0) {
        free(x->req);
        x->ops->free(x);
    }
}

void
cmpr_xchg_finish(struct cmpr_xchg *x, int result, unsigned char *ans, size_t len, const char *why)
{
    if (x->finished) {
        free(ans);
        return;
    }
    x->finished = 1;
    cmpr_ioloop_remove(x->l, &x->obj);
    uv_timer_stop(&x->timer);
    uv_timer_stop(&x->wait);
    if (x->ops->drop != NULL)
        x->ops->drop(x, result);
    if (x->a != NULL)
        cmpr_aconn_close(x->a);
    x->a = NULL;
    x->done(x->arg, result, ans, len, why);
    uv_close((uv_handle_t *)&x->timer, closed);
    uv_close((uv_handle_t *)&x->wait, closed);
}

static void
deadline(uv_timer_t *t)
{
    struct cmpr_xchg *x = t->data;
    char why[400];

    if (x->sent)
        snprintf(why, sizeof(why), "no answer from %s:%d within %ld ms", x->host, x->port, x->timeout_ms);
    else
        snprintf(why, sizeof(why), "cannot reach %s:%d within %ld ms", x->host, x->port, x->timeout_ms);
    cmpr_xchg_finish(x, x->sent ? CMPR_ERR_TIMEOUT : CMPR_ERR_UNREACHABLE, NULL, 0, why);
}

static void
cancel(struct cmpr_ioloop_obj *o)
{
    cmpr_xchg_finish((struct cmpr_xchg *)o, CMPR_ERR_UNREACHABLE, NULL, 0, "the client is stopping");
}

void
cmpr_xchg_init(struct cmpr_xchg *x, const struct cmpr_xchg_ops *ops, struct cmpr_ioloop *l, const char *host,
               int port, long timeout_ms, cmpr_upstream_done_fn done, void *arg)
{
    x->obj.kind = ops->kind;
    x->obj.cancel = cancel;
    x->ops = ops;
    x->l = l;
    snprintf(x->host, sizeof(x->host), "%s", host);
    x->port = port;
    x->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    x->done = done;
    x->arg = arg;
}

static void
arm(void *arg)
{
    struct cmpr_xchg *x = arg;
    uv_loop_t *loop = cmpr_ioloop_loop(x->l);

    uv_timer_init(loop, &x->timer);
    uv_timer_init(loop, &x->wait);
    x->timer.data = x->wait.data = x;
    x->handles = 2;
    x->deadline = uv_now(loop) + (uint64_t)x->timeout_ms;
    uv_timer_start(&x->timer, deadline, (uint64_t)x->timeout_ms, 0);
    cmpr_ioloop_add(x->l, &x->obj);
    x->ops->go(x);
}

int
cmpr_xchg_start(struct cmpr_xchg *x)
{
    if (cmpr_ioloop_call(x->l, arm, x) == 0)
        return CMPR_OK;
    free(x->req);
    x->ops->free(x);
    return CMPR_ERR_UNREACHABLE;
}
