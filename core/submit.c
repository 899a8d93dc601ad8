/*
 * The one way into the core (envelope.h). An envelope with a loop runs on
 * that loop's thread pool and is answered on the loop thread; one without
 * runs on the submitting thread. A request that waits for an upstream's
 * answer (forward.c) is parked: its envelope waits in a list, holding no
 * thread, until the forwarder says the transaction moved on
 * (cmpr_park_notify) or its wait runs out; then it runs again.
 *
 * An answer on the core's loop does not hold its worker while the store
 * syncs: the worker hands its changes to the group commit (store.h commit)
 * and goes on with the next request; the answer waits in a list until the
 * syncer thread has made them durable (one commit and one fsync for every
 * answer waiting), then leaves. Should they be lost, the request runs again
 * to be answered systemUnavail.
 */
#include "core/req.h"
#include "core/envelope.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cmpr_envelope {
    unsigned char *der;
    size_t len;
    char medium[16], peer[400], label[128], operation[32], tls_subject[256], push_medium[16];
    char *push;
    int resumed;
    unsigned long *mac_budget;          /* the medium's, for an envelope without a loop */
    uv_loop_t *loop;
    struct cmpr_reply *reply;
    /* the core's */
    struct cmpr_core *core;
    uv_work_t work;
    int waited;                     /* struct cmpr_request_info.waited */
    int64_t deadline_ms;
    unsigned char tid[CMPR_STORE_MAX_ID];
    size_t tid_len;
    unsigned char *out;
    size_t out_len;
    int result;
    int defer;                      /* its answer may wait for the syncer (on the core's loop) */
    uint64_t token;                 /* what its answer waits for (store.h commit), 0: nothing */
    int store_lost;                 /* struct cmpr_request_info.store_lost */
    struct cmpr_envelope *next;     /* in core->sync_waiting */
};

/* an envelope waiting for its upstream (under core->park_mu) */
struct cmpr_parked {
    struct cmpr_parked *next;
    struct cmpr_envelope *env;
    int woken;                      /* 1: notified, 2: its wait is over */
};

struct cmpr_envelope *
cmpr_envelope_new(const unsigned char *der, size_t len, struct cmpr_reply *reply)
{
    struct cmpr_envelope *env = calloc(1, sizeof(*env));

    if (env == NULL || (env->der = cmpr_memdup(der, len)) == NULL) {
        free(env);
        return NULL;
    }
    env->len = len;
    env->reply = reply;
    snprintf(env->medium, sizeof(env->medium), "?");
    return env;
}

void
cmpr_envelope_set(struct cmpr_envelope *env, enum cmpr_env_field field, const char *value)
{
    char *dst;
    size_t n;

    switch (field) {
    case CMPR_ENV_MEDIUM:
        dst = env->medium, n = sizeof(env->medium);
        break;
    case CMPR_ENV_PEER:
        dst = env->peer, n = sizeof(env->peer);
        break;
    case CMPR_ENV_LABEL:
        dst = env->label, n = sizeof(env->label);
        break;
    case CMPR_ENV_OPERATION:
        dst = env->operation, n = sizeof(env->operation);
        break;
    case CMPR_ENV_TLS_SUBJECT:
        dst = env->tls_subject, n = sizeof(env->tls_subject);
        break;
    default:
        return;
    }
    snprintf(dst, n, "%s", value != NULL ? value : "");
}

void
cmpr_envelope_set_resumed(struct cmpr_envelope *env, int resumed)
{
    env->resumed = resumed;
}

void
cmpr_envelope_set_push(struct cmpr_envelope *env, const char *medium, const char *addr)
{
    free(env->push);
    env->push = addr != NULL ? strdup(addr) : NULL;
    snprintf(env->push_medium, sizeof(env->push_medium), "%s", medium != NULL ? medium : "");
}

void
cmpr_envelope_set_mac_budget(struct cmpr_envelope *env, unsigned long *budget)
{
    env->mac_budget = budget;
}

void
cmpr_envelope_set_loop(struct cmpr_envelope *env, uv_loop_t *loop)
{
    env->loop = loop;
}

static void
envelope_free(struct cmpr_envelope *env)
{
    free(env->der);
    free(env->push);
    free(env->out);
    free(env);
}

/* one run of the pipeline; PARK keeps the transaction's id */
static void
run(struct cmpr_envelope *env)
{
    struct cmpr_request_info info = {
        .medium = env->medium, .peer = env->peer, .label = env->label[0] ? env->label : NULL,
        .operation = env->operation[0] ? env->operation : NULL,
        .tls_subject = env->tls_subject[0] ? env->tls_subject : NULL, .resumed = env->resumed || env->waited,
        .push_medium = env->push_medium, .push = env->push, .waited = env->waited,
        .deadline_ms = env->deadline_ms, .mac_budget = env->loop == NULL ? env->mac_budget : NULL,
        .sync_token = env->defer ? &env->token : NULL, .store_lost = env->store_lost
    };
    int64_t deadline = 0;

    free(env->out);
    env->out = NULL;
    env->token = 0;
    env->result = cmpr_pipeline_run(env->core, &info, env->der, env->len, &env->out, &env->out_len, &deadline);
    if (env->result == CMPR_PARK) {
        CMPR_PKIMESSAGE *m = NULL;

        env->deadline_ms = deadline;
        env->tid_len = 0;
        /* the transaction it waits on (it decoded before it could park) */
        if (cmpr_msg_decode(env->der, env->len, &m, NULL) == CMPR_OK && m->header->transactionID != NULL)
            cmpr_octets(m->header->transactionID, env->tid, sizeof(env->tid), &env->tid_len);
        CMPR_PKIMESSAGE_free(m);
        if (env->tid_len == 0)
            env->result = CMPR_ERR_INTERNAL;
    }
}

static void
answer(struct cmpr_envelope *env)
{
    if (env->result == CMPR_OK)
        env->reply->ops->send(env->reply, env->out, env->out_len);
    else
        env->reply->ops->fail(env->reply, env->result);
    envelope_free(env);
}

/* ---------------- on a loop ---------------- */

static void park(struct cmpr_envelope *env);
static void wait_durable(struct cmpr_envelope *env);
static void synced_cb(uv_async_t *a);
static void async_cb(uv_async_t *a);

/* loop thread: whether loop is the core's (the first that submits to it:
 * the daemon's), whose handles wake parked and syncing envelopes; other
 * loops' envelopes neither park nor wait for the syncer */
static int
core_loop(struct cmpr_core *c, uv_loop_t *loop)
{
    if (c->park_loop == NULL) {
        c->park_loop = loop;
        uv_async_init(loop, &c->park_async, async_cb);
        uv_async_init(loop, &c->sync_async, synced_cb);
        uv_timer_init(loop, &c->park_timer);
        c->park_async.data = c->park_timer.data = c->sync_async.data = c;
        c->park_handles = 1;
    }
    return c->park_loop == loop;
}

static int sync_here(struct cmpr_envelope *env);

static void
work_cb(uv_work_t *w)
{
    struct cmpr_envelope *env = w->data;

    run(env);
    /* with nothing else to do this worker syncs itself (the syncer's round
     * trip would only add latency); lost: answered systemUnavail */
    if (env->result == CMPR_OK && env->token != 0 && !sync_here(env)) {
        env->store_lost = 1;
        run(env);
    }
    atomic_fetch_sub(&env->core->n_working, 1);
}

static void
after_cb(uv_work_t *w, int status)
{
    struct cmpr_envelope *env = w->data;

    if (status != 0)
        env->result = CMPR_ERR_INTERNAL;
    if (env->result == CMPR_PARK)
        park(env);
    else if (env->result == CMPR_OK && env->token != 0)
        wait_durable(env);
    else
        answer(env);
}

static void
queue(struct cmpr_envelope *env)
{
    env->defer = core_loop(env->core, env->loop);
    env->work.data = env;
    atomic_fetch_add(&env->core->n_working, 1);
    if (uv_queue_work(env->loop, &env->work, work_cb, after_cb) != 0) {
        atomic_fetch_sub(&env->core->n_working, 1);
        env->result = CMPR_ERR_INTERNAL;
        answer(env);
    }
}

/* the parked envelopes that may run again: woken ones, and those whose
 * wait is over (all with force); taken out of the list (under park_mu) */
static struct cmpr_parked *
take_ready(struct cmpr_core *c, int inline_only, int force, int64_t now)
{
    struct cmpr_parked *ready = NULL, **pp = &c->parked, *p;

    while ((p = *pp) != NULL) {
        if ((p->env->loop == NULL) != inline_only || (!p->woken && !force && p->env->deadline_ms > now)) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        if (!p->woken)
            p->woken = 2;
        p->next = ready;
        ready = p;
    }
    return ready;
}

static void ready_cb(uv_timer_t *t);

/* the timer for the first deadline of the loop's parked envelopes */
static void
rearm(struct cmpr_core *c)
{
    int64_t first = 0, now = cmpr_mono_ms();

    pthread_mutex_lock(&c->park_mu);
    for (struct cmpr_parked *p = c->parked; p != NULL; p = p->next)
        if (p->env->loop != NULL && (first == 0 || p->env->deadline_ms < first))
            first = p->env->deadline_ms;
    pthread_mutex_unlock(&c->park_mu);
    if (first > 0)
        uv_timer_start(&c->park_timer, ready_cb, first > now ? (uint64_t)(first - now) : 0, 0);
    else
        uv_timer_stop(&c->park_timer);
}

/* loop thread: parked envelopes that may go on run again */
static void
run_ready(struct cmpr_core *c, int force)
{
    struct cmpr_parked *ready;

    pthread_mutex_lock(&c->park_mu);
    ready = take_ready(c, 0, force, cmpr_mono_ms());
    pthread_mutex_unlock(&c->park_mu);
    while (ready != NULL) {
        struct cmpr_parked *p = ready;

        ready = p->next;
        p->env->waited = p->woken;
        atomic_fetch_sub(&c->n_parked, 1);
        queue(p->env);
        free(p);
    }
    rearm(c);
}

static void
ready_cb(uv_timer_t *t)
{
    run_ready(t->data, 0);
}

static void
async_cb(uv_async_t *a)
{
    run_ready(a->data, 0);
}

/* loop thread: env waits for its upstream */
static void
park(struct cmpr_envelope *env)
{
    struct cmpr_core *c = env->core;
    struct cmpr_parked *p = calloc(1, sizeof(*p));

    if (p == NULL || !core_loop(c, env->loop)) {
        /* one loop parks (the daemon's); anything else answers at once */
        free(p);
        env->waited = 2;
        queue(env);
        return;
    }
    p->env = env;
    pthread_mutex_lock(&c->park_mu);
    p->next = c->parked;
    c->parked = p;
    pthread_mutex_unlock(&c->park_mu);
    atomic_fetch_add(&c->n_parked, 1);
    rearm(c);
}

/* ---------------- waiting for the store's sync ---------------- */

/* the syncer: makes the newest token asked for durable, one round after
 * another (store.h sync: the group commit of everything written meanwhile
 * and one fsync), and wakes the loop after each */
static void *
syncer(void *arg)
{
    struct cmpr_core *c = arg;

    pthread_mutex_lock(&c->sync_mu);
    for (;;) {
        uint64_t t;
        int r;

        while (!c->sync_stop && c->sync_want <= c->sync_done)
            pthread_cond_wait(&c->sync_cond, &c->sync_mu);
        if (c->sync_want <= c->sync_done)
            break;
        t = c->sync_want;
        pthread_mutex_unlock(&c->sync_mu);
        r = c->st->ops->sync(c->st, t);
        pthread_mutex_lock(&c->sync_mu);
        c->sync_done = t;
        if (r != CMPR_OK)
            c->sync_lost = t;
        if (c->sync_waiting != NULL)
            uv_async_send(&c->sync_async);
    }
    pthread_mutex_unlock(&c->sync_mu);
    return NULL;
}

/* worker: makes env's token durable on this thread when no other request
 * is queued or under way, no answer waits for the disk and no other worker
 * syncs (a lone client); 1 when it is (or is left to the syncer:
 * env->token stays), 0 when it was lost */
static int
sync_here(struct cmpr_envelope *env)
{
    struct cmpr_core *c = env->core;
    int idle, r;

    if (atomic_load(&c->n_working) > 1)
        return 1;
    pthread_mutex_lock(&c->sync_mu);
    idle = c->sync_want <= c->sync_done && c->sync_waiting == NULL && !c->sync_inline;
    if (idle)
        c->sync_inline = 1;
    pthread_mutex_unlock(&c->sync_mu);
    if (!idle)
        return 1;
    r = c->st->ops->sync(c->st, env->token);
    pthread_mutex_lock(&c->sync_mu);
    c->sync_inline = 0;
    pthread_mutex_unlock(&c->sync_mu);
    if (r != CMPR_OK)
        return 0;
    env->token = 0;
    return 1;
}

/* loop thread: env's answer leaves once its token is durable */
static void
wait_durable(struct cmpr_envelope *env)
{
    struct cmpr_core *c = env->core;

    pthread_mutex_lock(&c->sync_mu);
    if (!c->sync_running) {
        if (pthread_create(&c->sync_thread, NULL, syncer, c) != 0) {
            pthread_mutex_unlock(&c->sync_mu);
            cmpr_log_error("cannot start the store's syncer thread: %s", strerror(errno));
            env->token = 0;
            env->store_lost = 1;
            queue(env);
            return;
        }
        c->sync_running = 1;
    }
    env->next = c->sync_waiting;
    c->sync_waiting = env;
    if (env->token > c->sync_want)
        c->sync_want = env->token;
    if (c->sync_want > c->sync_done)
        pthread_cond_signal(&c->sync_cond);
    else
        uv_async_send(&c->sync_async);   /* durable already: answered on the next turn */
    pthread_mutex_unlock(&c->sync_mu);
}

/* loop thread: the answers whose changes are durable leave; those whose
 * changes were lost run again, to be answered systemUnavail */
static void
synced_cb(uv_async_t *a)
{
    struct cmpr_core *c = a->data;
    struct cmpr_envelope *ready = NULL, **pp, *env;
    uint64_t lost;

    pthread_mutex_lock(&c->sync_mu);
    for (pp = &c->sync_waiting; (env = *pp) != NULL;) {
        if (env->token > c->sync_done) {
            pp = &env->next;
            continue;
        }
        *pp = env->next;
        env->next = ready;
        ready = env;
    }
    lost = c->sync_lost;
    pthread_mutex_unlock(&c->sync_mu);
    while ((env = ready) != NULL) {
        ready = env->next;
        if (env->token <= lost) {
            env->store_lost = 1;
            queue(env);
        } else {
            answer(env);
        }
    }
}

/* ---------------- on the submitting thread ---------------- */

static void
run_inline(struct cmpr_envelope *env)
{
    struct cmpr_core *c = env->core;

    for (run(env); env->result == CMPR_PARK; run(env)) {
        struct cmpr_parked me = { NULL, env, 0 };
        struct cmpr_parked **pp;
        struct timespec ts;

        pthread_mutex_lock(&c->park_mu);
        me.next = c->parked;
        c->parked = &me;
        atomic_fetch_add(&c->n_parked, 1);
        while (!me.woken && cmpr_mono_ms() < env->deadline_ms) {
            int64_t ms = env->deadline_ms;

            ts.tv_sec = (time_t)(ms / 1000);
            ts.tv_nsec = (long)(ms % 1000) * 1000000;
            (void)pthread_cond_timedwait(&c->park_cond, &c->park_mu, &ts);
        }
        for (pp = &c->parked; *pp != NULL; pp = &(*pp)->next)
            if (*pp == &me) {
                *pp = me.next;
                break;
            }
        atomic_fetch_sub(&c->n_parked, 1);
        env->waited = me.woken ? me.woken : 2;
        pthread_mutex_unlock(&c->park_mu);
    }
    answer(env);
}

void
cmpr_core_submit(struct cmpr_core *core, struct cmpr_envelope *env)
{
    env->core = core;
    if (env->loop != NULL)
        queue(env);
    else
        run_inline(env);
}

/* ---------------- waking ---------------- */

void
cmpr_park_notify(struct cmpr_core *c, const unsigned char *tid, size_t len)
{
    int loop = 0, inl = 0;

    pthread_mutex_lock(&c->park_mu);
    for (struct cmpr_parked *p = c->parked; p != NULL; p = p->next) {
        if (p->env->tid_len == len && memcmp(p->env->tid, tid, len) == 0 && !p->woken) {
            p->woken = 1;
            if (p->env->loop != NULL)
                loop = 1;
            else
                inl = 1;
        }
    }
    if (inl)
        pthread_cond_broadcast(&c->park_cond);
    pthread_mutex_unlock(&c->park_mu);
    if (loop)
        uv_async_send(&c->park_async);
}

void
cmpr_core_drain(struct cmpr_core *c)
{
    pthread_mutex_lock(&c->park_mu);
    for (struct cmpr_parked *p = c->parked; p != NULL; p = p->next)
        if (!p->woken)
            p->woken = 2;
    pthread_cond_broadcast(&c->park_cond);
    pthread_mutex_unlock(&c->park_mu);
    if (c->park_loop != NULL)
        run_ready(c, 1);
}

void
cmpr_park_free(struct cmpr_core *c)
{
    if (c->sync_running) {
        pthread_mutex_lock(&c->sync_mu);
        c->sync_stop = 1;
        pthread_cond_signal(&c->sync_cond);
        pthread_mutex_unlock(&c->sync_mu);
        pthread_join(c->sync_thread, NULL);
        c->sync_running = 0;
    }
    while (c->sync_waiting != NULL) {
        struct cmpr_envelope *env = c->sync_waiting;

        c->sync_waiting = env->next;
        envelope_free(env);
    }
    /* parked envelopes are answered before the core goes (cmpr_core_drain);
     * what is left belongs to no one any more */
    while (c->parked != NULL) {
        struct cmpr_parked *p = c->parked;

        c->parked = p->next;
        if (p->env->loop != NULL) {
            envelope_free(p->env);
            free(p);
        }
    }
}
