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

/* ---------------- kept connections ---------------- */

#define MAX_IDLE 256                    /* kept connections per loop */
#define IDLE_MS 60000                   /* closed when unused this long */

struct idle {
    struct cmpr_ioloop_obj obj;         /* first */
    struct cmpr_ioloop *l;
    struct cmpr_aconn *a;
};

static const char idle_kind[] = "idle-connection";

static void
idle_cancel(struct cmpr_ioloop_obj *o)
{
    struct idle *i = (struct idle *)o;

    cmpr_ioloop_remove(i->l, o);
    cmpr_aconn_close(i->a);
    free(i);
}

static void idle_connected(struct cmpr_aconn *a, void *arg) { (void)a; (void)arg; }
static void idle_data(struct cmpr_aconn *a, void *arg, const char *p, size_t n)
{
    (void)a; (void)p; (void)n;
    idle_cancel(arg);           /* a server that talks unasked is not reused */
}
static void idle_ended(struct cmpr_aconn *a, void *arg, int err, const char *why)
{
    struct idle *i = arg;

    (void)a; (void)err; (void)why;
    cmpr_ioloop_remove(i->l, &i->obj);
    free(i);
}
static const struct cmpr_aconn_ops idle_ops = { idle_connected, idle_data, idle_ended };

void
cmpr_xchg_keep(struct cmpr_ioloop *l, const char *key, struct cmpr_aconn *a)
{
    struct idle *i = calloc(1, sizeof(*i));
    struct cmpr_ioloop_obj *old;

    if (i == NULL) {
        cmpr_aconn_close(a);
        return;
    }
    while (cmpr_ioloop_count(l, idle_kind) >= MAX_IDLE && (old = cmpr_ioloop_find(l, idle_kind, NULL)) != NULL)
        old->cancel(old);       /* the least recently used goes */
    i->obj.kind = idle_kind;
    snprintf(i->obj.key, sizeof(i->obj.key), "%s", key);
    i->obj.since = uv_now(cmpr_ioloop_loop(l));
    i->obj.cancel = idle_cancel;
    i->l = l;
    i->a = a;
    cmpr_aconn_set_owner(a, &idle_ops, i);
    cmpr_ioloop_add(l, &i->obj);
}

struct cmpr_aconn *
cmpr_xchg_take_idle(struct cmpr_ioloop *l, const char *key)
{
    struct cmpr_ioloop_obj *o;
    uint64_t now = uv_now(cmpr_ioloop_loop(l));

    while ((o = cmpr_ioloop_find(l, idle_kind, NULL)) != NULL && now - o->since > IDLE_MS)
        o->cancel(o);
    if ((o = cmpr_ioloop_find(l, idle_kind, key)) != NULL) {
        struct idle *i = (struct idle *)o;
        struct cmpr_aconn *a = i->a;

        cmpr_ioloop_remove(l, o);
        free(i);
        return a;
    }
    return NULL;
}
