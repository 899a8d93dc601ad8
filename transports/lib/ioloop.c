/* The client side's loop (ioloop.h): calls from other threads come in
 * through a queue and one uv_async. */
#include "transports/lib/ioloop.h"

#include <stdlib.h>
#include <string.h>

struct call {
    struct call *next;
    void (*fn)(void *arg);
    void *arg;
};

struct cmpr_ioloop {
    uv_loop_t loop;
    uv_async_t async;
    uv_thread_t thread;
    uv_mutex_t mu;
    struct call *calls, **tail;
    int own_thread, stopping;
    struct cmpr_ioloop_obj *objs;       /* newest first */
};

void
cmpr_ioloop_add(struct cmpr_ioloop *l, struct cmpr_ioloop_obj *o)
{
    o->prev = NULL;
    o->next = l->objs;
    if (l->objs != NULL)
        l->objs->prev = o;
    l->objs = o;
}

void
cmpr_ioloop_remove(struct cmpr_ioloop *l, struct cmpr_ioloop_obj *o)
{
    if (o->prev != NULL)
        o->prev->next = o->next;
    else if (l->objs == o)
        l->objs = o->next;
    if (o->next != NULL)
        o->next->prev = o->prev;
    o->next = o->prev = NULL;
}

struct cmpr_ioloop_obj *
cmpr_ioloop_find(struct cmpr_ioloop *l, const void *kind, const char *key)
{
    struct cmpr_ioloop_obj *found = NULL;

    for (struct cmpr_ioloop_obj *o = l->objs; o != NULL; o = o->next)
        if (o->kind == kind && (key == NULL || strcmp(o->key, key) == 0))
            found = o;
    return found;
}

size_t
cmpr_ioloop_count(struct cmpr_ioloop *l, const void *kind)
{
    size_t n = 0;

    for (struct cmpr_ioloop_obj *o = l->objs; o != NULL; o = o->next)
        n += o->kind == kind;
    return n;
}

static void
run_calls(uv_async_t *a)
{
    struct cmpr_ioloop *l = a->data;
    struct call *list;

    uv_mutex_lock(&l->mu);
    list = l->calls;
    l->calls = NULL;
    l->tail = &l->calls;
    uv_mutex_unlock(&l->mu);
    while (list != NULL) {
        struct call *c = list;

        list = c->next;
        c->fn(c->arg);
        free(c);
    }
}

static void
thread_main(void *arg)
{
    struct cmpr_ioloop *l = arg;

    uv_run(&l->loop, UV_RUN_DEFAULT);
}

int
cmpr_ioloop_new(int own_thread, struct cmpr_ioloop **l_r)
{
    struct cmpr_ioloop *l = calloc(1, sizeof(*l));

    *l_r = NULL;
    if (l == NULL || uv_loop_init(&l->loop) != 0) {
        free(l);
        return -1;
    }
    uv_mutex_init(&l->mu);
    l->tail = &l->calls;
    uv_async_init(&l->loop, &l->async, run_calls);
    l->async.data = l;
    l->own_thread = own_thread;
    if (!own_thread)
        uv_unref((uv_handle_t *)&l->async);     /* run_until ends when the work is done */
    if (own_thread && uv_thread_create(&l->thread, thread_main, l) != 0) {
        uv_close((uv_handle_t *)&l->async, NULL);
        uv_run(&l->loop, UV_RUN_DEFAULT);
        uv_loop_close(&l->loop);
        uv_mutex_destroy(&l->mu);
        free(l);
        return -1;
    }
    *l_r = l;
    return 0;
}

uv_loop_t *
cmpr_ioloop_loop(struct cmpr_ioloop *l)
{
    return &l->loop;
}

/* last: no call is taken after this one */
static int
post(struct cmpr_ioloop *l, void (*fn)(void *arg), void *arg, int last)
{
    struct call *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return -1;
    c->fn = fn;
    c->arg = arg;
    uv_mutex_lock(&l->mu);
    if (l->stopping) {
        uv_mutex_unlock(&l->mu);
        free(c);
        return -1;
    }
    *l->tail = c;
    l->tail = &c->next;
    l->stopping = last;
    uv_async_send(&l->async);
    uv_mutex_unlock(&l->mu);
    return 0;
}

int
cmpr_ioloop_call(struct cmpr_ioloop *l, void (*fn)(void *arg), void *arg)
{
    return post(l, fn, arg, 0);
}

void
cmpr_ioloop_run_until(struct cmpr_ioloop *l, const int *done)
{
    int more = 1;

    /* calls posted from the loop's own callbacks (an exchange started when
     * another ended) count as work though the async handle is unref'd */
    while (!*done && more) {
        run_calls(&l->async);
        more = uv_run(&l->loop, UV_RUN_ONCE) != 0;
        uv_mutex_lock(&l->mu);
        more = more || l->calls != NULL;
        uv_mutex_unlock(&l->mu);
    }
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
stop_here(void *arg)
{
    struct cmpr_ioloop *l = arg;

    while (l->objs != NULL)
        l->objs->cancel(l->objs);
    uv_walk(&l->loop, close_walk, NULL);
}

void
cmpr_ioloop_free(struct cmpr_ioloop *l)
{
    if (l == NULL)
        return;
    if (l->own_thread) {
        (void)post(l, stop_here, l, 1);
        uv_thread_join(&l->thread);
    } else {
        stop_here(l);
        uv_run(&l->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&l->loop);
    uv_mutex_destroy(&l->mu);
    free(l);
}
