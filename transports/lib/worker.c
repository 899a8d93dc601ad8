/* A dedicated transport thread kicked by the loop (see worker.h). */
#include "transports/lib/worker.h"
#include "transports/lib/daemon.h"

#include <sys/types.h>

static void
run(void *arg)
{
    struct cmpr_worker *w = arg;
    long again = 0;

    uv_mutex_lock(&w->mu);
    for (;;) {
        if (!w->stop && !w->kicked) {
            if (again > 0)
                (void)uv_cond_timedwait(&w->cond, &w->mu, (uint64_t)again * 1000000u);
            else if (again < 0)
                uv_cond_wait(&w->cond, &w->mu);
        }
        if (w->stop)
            break;
        if (!w->kicked && again < 0)
            continue;               /* spurious wakeup */
        w->kicked = 0;
        {
            struct cmpr_core *core = w->core;

            uv_mutex_unlock(&w->mu);
            again = w->cycle(w, core, w->arg);
            uv_mutex_lock(&w->mu);
        }
    }
    uv_mutex_unlock(&w->mu);
    (void)w->cycle(w, NULL, w->arg);    /* last call: release what the thread holds */
    uv_mutex_lock(&w->mu);
    w->exited = 1;
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

static void
handle_closed(uv_handle_t *h)
{
    struct cmpr_worker *w = h->data;

    if (--w->handles > 0)
        return;
    uv_cond_destroy(&w->cond);
    uv_mutex_destroy(&w->mu);
    if (w->done != NULL)
        w->done(w->done_arg);
}

static void
async_cb(uv_async_t *a)
{
    struct cmpr_worker *w = a->data;
    int exited, ok[256];
    uint64_t ns[256];
    size_t n;

    uv_mutex_lock(&w->mu);
    exited = w->exited;
    n = w->n_results;
    for (size_t i = 0; i < n; i++) {
        ok[i] = w->results[i].ok;
        ns[i] = w->results[i].ns;
    }
    w->n_results = 0;
    uv_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++)
        w->d->request_done(w->d, w->medium, ok[i], ns[i]);
    if (exited && w->started) {
        w->started = 0;
        uv_thread_join(&w->thread);
        uv_close((uv_handle_t *)&w->async, handle_closed);
        uv_close((uv_handle_t *)&w->timer, handle_closed);
    }
}

static void
timer_cb(uv_timer_t *t)
{
    struct cmpr_worker *w = t->data;

    cmpr_worker_kick(w);
}

int
cmpr_worker_start(struct cmpr_worker *w, struct cmpr_daemon *d, const char *medium,
                  long interval_ms, cmpr_worker_cycle_fn cycle, void *arg)
{
    uv_loop_t *loop = d->loop;

    w->d = d;
    w->core = d->core(d);
    w->cycle = cycle;
    w->medium = medium;
    w->arg = arg;
    w->kicked = 1;
    w->interval_ms = interval_ms;
    if (uv_mutex_init(&w->mu) != 0)
        return -1;
    if (uv_cond_init(&w->cond) != 0) {
        uv_mutex_destroy(&w->mu);
        return -1;
    }
    uv_async_init(loop, &w->async, async_cb);
    uv_timer_init(loop, &w->timer);
    w->async.data = w->timer.data = w;
    w->handles = 2;
    if (uv_thread_create(&w->thread, run, w) != 0) {
        uv_close((uv_handle_t *)&w->async, handle_closed);
        uv_close((uv_handle_t *)&w->timer, handle_closed);
        return -1;              /* the handles close; stop() then reports done */
    }
    w->started = 1;
    if (interval_ms > 0)
        uv_timer_start(&w->timer, timer_cb, (uint64_t)interval_ms, (uint64_t)interval_ms);
    return 0;
}

void
cmpr_worker_kick(struct cmpr_worker *w)
{
    struct cmpr_core *core = w->d->core(w->d);

    uv_mutex_lock(&w->mu);
    w->core = core;
    w->kicked = 1;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->mu);
}

void
cmpr_worker_wake(struct cmpr_worker *w)
{
    uv_mutex_lock(&w->mu);
    w->kicked = 1;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->mu);
}

int
cmpr_worker_stopping(struct cmpr_worker *w)
{
    int s;

    uv_mutex_lock(&w->mu);
    s = w->stop;
    uv_mutex_unlock(&w->mu);
    return s;
}

int
cmpr_worker_sleep(struct cmpr_worker *w, long ms)
{
    int s;

    uv_mutex_lock(&w->mu);
    if (!w->stop && ms > 0)
        (void)uv_cond_timedwait(&w->cond, &w->mu, (uint64_t)ms * 1000000u);
    s = w->stop;
    uv_mutex_unlock(&w->mu);
    return s;
}

void
cmpr_worker_result(struct cmpr_worker *w, int ok, uint64_t ns)
{
    uv_mutex_lock(&w->mu);
    if (w->n_results < sizeof(w->results) / sizeof(w->results[0])) {
        w->results[w->n_results].ok = ok;
        w->results[w->n_results].ns = ns;
        w->n_results++;
    }
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

void
cmpr_worker_busy(struct cmpr_worker *w, int delta)
{
    uv_mutex_lock(&w->mu);
    w->in_flight += (size_t)(ssize_t)delta;
    uv_mutex_unlock(&w->mu);
}

size_t
cmpr_worker_in_flight(struct cmpr_worker *w)
{
    size_t n;

    if (!w->started)
        return 0;
    uv_mutex_lock(&w->mu);
    n = w->in_flight;
    uv_mutex_unlock(&w->mu);
    return n;
}

static void
grace_cb(uv_timer_t *t)
{
    struct cmpr_worker *w = t->data;
    int exited;

    uv_mutex_lock(&w->mu);
    exited = w->exited;
    uv_mutex_unlock(&w->mu);
    if (!exited && w->cut != NULL)
        w->cut(w->cut_arg);
}

void
cmpr_worker_stop_within(struct cmpr_worker *w, long grace_ms, void (*cut)(void *), void *cut_arg,
                        void (*done)(void *arg), void *arg)
{
    cmpr_worker_stop(w, done, arg);
    if (!w->started)
        return;
    w->cut = cut;
    w->cut_arg = cut_arg;
    uv_timer_start(&w->timer, grace_cb, (uint64_t)grace_ms, 0);
}

void
cmpr_worker_stop(struct cmpr_worker *w, void (*done)(void *arg), void *arg)
{
    w->done = done;
    w->done_arg = arg;
    uv_timer_stop(&w->timer);
    if (!w->started) {
        if (w->handles == 0 && done != NULL)
            done(arg);
        return;
    }
    uv_mutex_lock(&w->mu);
    w->stop = 1;
    uv_cond_broadcast(&w->cond);
    uv_mutex_unlock(&w->mu);
}
