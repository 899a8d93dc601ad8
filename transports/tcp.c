/*
 * CMP over raw TCP: the TCP-Message framing (version 10, draft-ietf-pkix-cmp-
 * transport-protocols) and the older RFC 2510 5.2 framing, on port 829 by
 * default. codec/tcpframe.c cuts the byte stream into frames; each pkiReq
 * becomes one envelope for the core and its answer goes back as pkiRep in
 * the framing the client used. One request per connection is in the core at
 * a time; pipelined frames wait in the parser (reading stops meanwhile).
 * errorMsgRep is used for transport errors only; a CMP-level problem is
 * always a CMP error message inside pkiRep (cmp-wire.md 1.2).
 */
#include "transports/transport.h"
#include "transports/conn.h"
#include "transports/client/client.h"
#include "transports/lib/net.h"
#include "codec/tcpframe.h"
#include "core/core.h"
#include "core/envelope.h"
#include "core/txn.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

/* A transport-level polling reference (cmp-wire.md 1.2: pollRep/pollReq),
 * kept by the core (cmpr_core_defer): its request is in the store before
 * the pollRep leaves, its answer as soon as the core gives it, so
 * references survive a restart. This is the loop thread's copy. */
struct poll_entry {
    struct cmpr_defer_rec rec;
    int orphan;                     /* working when the daemon stopped: run it again on pollReq */
    struct poll_entry *next;
};

/* one pkiReq in the core */
struct job {
    struct cmpr_reply reply;
    struct tcp_ctx *ctx;
    struct tconn *c;                /* the waiting connection; NULL once polled for */
    struct poll_entry *poll;        /* set once a pollRep was sent */
    unsigned char *req;             /* a copy while a pollRep may still be needed */
    size_t req_len;
    int detaching;                  /* its reference is being made */
    unsigned char *held;            /* poll_after_ms 0: the answer that came before its reference */
    size_t held_len;
    uint64_t started;
};

struct tcp_ctx {
    struct cmpr_conn_server srv;    /* first */
    char host[64];
    int port;
    long max_frame, first_byte_timeout, read_timeout, idle_timeout;
    long poll_after;                /* ms until a pollRep replaces the answer; -1: never */
    long poll_check_after;          /* seconds the pollRep asks the client to wait */
    long poll_keep;                 /* seconds a reference stays valid */
    struct poll_entry *polls;
    struct cmpr_daemon *d;
    size_t in_flight;
};

struct tconn {
    struct cmpr_conn base;          /* first */
    struct tcp_ctx *ctx;
    struct cmpr_tcp_parser parser;
    struct job *job;                /* the request in the core */
    int eof;                        /* the peer sent FIN: answer what is complete, then close */
    uint64_t frame_start;           /* ms when the open frame's first byte arrived, or 0 */
    unsigned long frames;           /* frames read so far */
    int version;                    /* framing of the request being answered */
    unsigned flags;                 /* its flags (close is echoed) */
};

static void process(struct tconn *c);
static void detach(struct tconn *c);

/* ---------------- timers ---------------- */

static void
c_timeout(struct cmpr_conn *bc)
{
    struct tconn *c = (struct tconn *)bc;

    if (bc->busy) {
        /* the core is working: after poll_after, a pollRep instead */
        if (c->ctx->poll_after > 0)
            detach(c);
        return;
    }
    cmpr_log_limited(&bc->srv->peer_log, CMPR_LOG_INFO, "tcp %s: %s timeout, closing", bc->peer,
                     cmpr_tcp_pending(&c->parser) > 0 ? "read (incomplete frame)"
                     : c->frames == 0 ? "first byte" : "idle");
    cmpr_conn_close(bc);
}

/* first byte: a new connection sends its first frame's first byte within
 * first_byte_timeout; idle: no frame open (between frames); read: a frame
 * has started and must complete within read_timeout of its first byte,
 * however slowly the rest trickles in. Waiting for a frame to begin, the
 * connection may make room for a new one. */
static void
arm(struct tconn *c)
{
    uint64_t now = uv_now(c->ctx->srv.loop), ms = (uint64_t)c->ctx->idle_timeout;

    if (cmpr_tcp_pending(&c->parser) > 0) {
        if (c->frame_start == 0)
            c->frame_start = now;
        ms = now - c->frame_start >= (uint64_t)c->ctx->read_timeout ? 1
             : (uint64_t)c->ctx->read_timeout - (now - c->frame_start);
        cmpr_conn_idle(&c->base, 0);
    } else {
        c->frame_start = 0;
        if (c->frames == 0)
            ms = (uint64_t)c->ctx->first_byte_timeout;
        cmpr_conn_idle(&c->base, 1);
    }
    cmpr_conn_arm(&c->base, ms);
}

/* ---------------- writing ---------------- */

static void
send_small(struct tconn *c, const unsigned char *frame, size_t len, int close_after)
{
    cmpr_conn_write_copy(&c->base, frame, len, close_after);
}

/* errorMsgRep: transport errors only (tp06 5.6) */
static void
send_error(struct tconn *c, int version, unsigned flags, unsigned code, uint32_t data,
           const char *text, int close_after)
{
    unsigned char out[300];
    size_t n;

    cmpr_log_limited(&c->base.srv->peer_log, CMPR_LOG_INFO, "tcp %s: errorMsgRep 0x%04x: %s%s",
                     c->base.peer, code, text, close_after ? " (closing)" : "");
    if (close_after)
        flags |= CMPR_TCP_FLAG_CLOSE;
    n = cmpr_tcp_errormsg(version, flags, code, data, text, out, sizeof(out));
    send_small(c, out, n, close_after);
}

/* pkiRep (v10) / finalMsgRep (RFC 2510): both code 5; close echoed */
static void
send_answer(struct tconn *c, int version, unsigned flags, const unsigned char *der, size_t len)
{
    int close_after = (flags & CMPR_TCP_FLAG_CLOSE) != 0 || c->ctx->srv.stopping;
    unsigned char *buf;
    size_t h;

    if (len == 0) {
        /* tcp-00 3: finRep where no CMP answer applies */
        unsigned char fin[16];

        send_small(c, fin, cmpr_tcp_finrep(version, close_after ? CMPR_TCP_FLAG_CLOSE : 0, fin),
                   close_after);
        return;
    }
    if ((buf = malloc(len + CMPR_TCP_HDR10)) == NULL) {
        cmpr_conn_close(&c->base);
        return;
    }
    h = cmpr_tcp_header(version, close_after ? CMPR_TCP_FLAG_CLOSE : 0, CMPR_TCP_PKIREP, len, buf);
    memcpy(buf + h, der, len);
    cmpr_conn_write(&c->base, (char *)buf, h + len, close_after);
}

/* ---------------- transport-level polling ---------------- */

/* A store call about a reference on the thread pool: the loop thread
 * never waits for the disk. */
struct defer_job {
    uv_work_t work;
    struct tcp_ctx *ctx;
    struct cmpr_core *core;
    int what;                       /* DJ_NEW, DJ_ANSWER, DJ_EXPIRE, DJ_LOOKUP */
    uint32_t ref;
    unsigned char *data;            /* the request (new) or the answer (NULL: failed) */
    size_t len;
    int result;
    struct tconn *c;                /* DJ_NEW, DJ_LOOKUP: the connection that waits */
    struct cmpr_defer_rec rec;      /* DJ_LOOKUP: what the store has */
};
enum { DJ_NEW, DJ_ANSWER, DJ_EXPIRE, DJ_LOOKUP };
/* a reference still "working" after this long was left by a node that died */
#define ORPHAN_AFTER_S 120

static int
drop_cb(const struct cmpr_defer_rec *rec, void *arg)
{
    (void)rec;
    (void)arg;
    return CMPR_OK;
}

static void
defer_work(uv_work_t *w)
{
    struct defer_job *j = w->data;

    if (j->what == DJ_NEW)
        j->result = cmpr_core_defer(j->core, j->data, j->len, &j->ref);
    else if (j->what == DJ_ANSWER)
        j->result = cmpr_core_defer_answer(j->core, j->ref, j->data, j->len);
    else if (j->what == DJ_LOOKUP)
        j->result = cmpr_core_defer_get(j->core, j->ref, &j->rec);
    else
        j->result = cmpr_core_defer_list(j->core, (int64_t)time(NULL) - j->ctx->poll_keep, drop_cb, NULL);
}

static struct poll_entry *poll_new(struct tcp_ctx *ctx, uint32_t ref);
static void looked_up(struct defer_job *j, int ok);
static void send_pollrep(struct tconn *c, int version, unsigned flags, uint32_t ref);
static void send_answer(struct tconn *c, int version, unsigned flags, const unsigned char *der, size_t len);
static void keep_answer(struct job *job, const unsigned char *der, size_t len);

/* the request is durable: the waiting client gets its reference now */
static void
referenced(struct defer_job *j, int ok)
{
    struct tconn *c = j->c;
    struct job *job = c->job;

    /* still waiting for the core? (if it answered meanwhile, it went out,
     * or, with poll_after_ms 0, it waits in held) */
    if (job != NULL && job->req != NULL && ok && (job->poll = poll_new(j->ctx, j->ref)) != NULL) {
        job->c = NULL;
        c->job = NULL;
        free(job->req);
        job->req = NULL;
        cmpr_conn_set_busy(&c->base, 0);
        if (!c->base.closing)
            send_pollrep(c, c->version, c->flags, j->ref);
        if (job->held != NULL) {
            keep_answer(job, job->held, job->held_len);
            free(job->held);
            free(job);
        }
    } else {
        if (!ok)
            cmpr_log_error("tcp: cannot keep a polling reference: %s", cmpr_strerror(j->result));
        if (job != NULL && job->held != NULL) {
            /* no reference: the answer goes out on the connection after all */
            c->job = NULL;
            cmpr_conn_set_busy(&c->base, 0);
            if (!c->base.closing)
                send_answer(c, c->version, c->flags, job->held, job->held_len);
            free(job->held);
            free(job->req);
            free(job);
        }
    }
    cmpr_conn_hold(&c->base, -1);
}

static void
defer_after(uv_work_t *w, int status)
{
    struct defer_job *j = w->data;
    int ok = status == 0 && j->result == CMPR_OK;

    if (j->what == DJ_NEW)
        referenced(j, ok);
    else if (j->what == DJ_LOOKUP)
        looked_up(j, ok);
    else if (!ok)
        cmpr_log_error("tcp: cannot store the answer of reference %08x: %s", (unsigned)j->ref,
                       status != 0 ? uv_strerror(status) : cmpr_strerror(j->result));
    cmpr_defer_rec_clear(&j->rec);
    free(j->data);
    free(j);
}

/* 0 once queued; -1 if it could not be (logged) */
static int
defer_submit(struct tcp_ctx *ctx, int what, uint32_t ref, const unsigned char *data, size_t len, struct tconn *c)
{
    struct defer_job *j = calloc(1, sizeof(*j));

    if (j == NULL || (data != NULL && (j->data = malloc(len > 0 ? len : 1)) == NULL)) {
        free(j);
        cmpr_log_error("tcp: out of memory storing reference %08x", (unsigned)ref);
        return -1;
    }
    j->ctx = ctx;
    j->core = ctx->d->core(ctx->d);
    j->what = what;
    j->ref = ref;
    if (data != NULL)
        memcpy(j->data, data, len);
    j->len = len;
    j->c = c;
    j->work.data = j;
    if (c != NULL)
        cmpr_conn_hold(&c->base, 1);    /* the connection stays until done */
    if (uv_queue_work(ctx->d->loop, &j->work, defer_work, defer_after) != 0) {
        if (c != NULL)
            cmpr_conn_hold(&c->base, -1);
        free(j->data);
        free(j);
        return -1;
    }
    return 0;
}

static void
poll_free(struct poll_entry *e)
{
    cmpr_defer_rec_clear(&e->rec);
    free(e);
}

static struct poll_entry *
poll_find(struct tcp_ctx *ctx, uint32_t ref)
{
    int64_t now = (int64_t)time(NULL);
    struct poll_entry **pp = &ctx->polls, *e;
    int dropped = 0;

    /* drop expired references on the way (the store's too) */
    while ((e = *pp) != NULL) {
        if (e->rec.state != CMPR_DEFER_WORKING && now - e->rec.created > ctx->poll_keep) {
            *pp = e->next;
            poll_free(e);
            dropped = 1;
            continue;
        }
        if (e->rec.ref == ref)
            return e;
        pp = &e->next;
    }
    if (dropped)
        defer_submit(ctx, DJ_EXPIRE, 0, NULL, 0, NULL);
    return NULL;
}

static struct poll_entry *
poll_new(struct tcp_ctx *ctx, uint32_t ref)
{
    struct poll_entry *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return NULL;
    cmpr_defer_init(&e->rec, ref);
    e->rec.created = (int64_t)time(NULL);
    e->next = ctx->polls;
    ctx->polls = e;
    return e;
}

static void
send_pollrep(struct tconn *c, int version, unsigned flags, uint32_t ref)
{
    unsigned char out[32];
    int close_after = (flags & CMPR_TCP_FLAG_CLOSE) != 0 || c->ctx->srv.stopping;

    cmpr_log_info("tcp %s: pollRep reference %08x, check back in %ld s", c->base.peer, (unsigned)ref,
                  c->ctx->poll_check_after);
    send_small(c, out, cmpr_tcp_pollrep(version, close_after ? CMPR_TCP_FLAG_CLOSE : 0, ref,
                                        (uint32_t)c->ctx->poll_check_after, (int64_t)time(NULL), out), close_after);
}

/* The answer is late: give the client a polling reference instead. The
 * request goes into the store first; the pollRep leaves once it is there. */
static void
detach(struct tconn *c)
{
    struct job *job = c->job;

    if (job == NULL || job->poll != NULL || job->req == NULL || job->detaching)
        return;
    job->detaching = 1;
    defer_submit(c->ctx, DJ_NEW, 0, job->req, job->req_len, c);
}

/* ---------------- the core's answer (loop thread) ---------------- */

static struct tconn *
job_done(struct cmpr_reply *r, int ok, struct job **job_r)
{
    struct job *job = (struct job *)((char *)r - offsetof(struct job, reply));
    struct tcp_ctx *ctx = job->ctx;
    struct tconn *c = job->c;

    ctx->in_flight--;
    ctx->d->request_done(ctx->d, "tcp", ok, uv_hrtime() - job->started);
    *job_r = job;
    if (c != NULL) {
        c->job = NULL;
        cmpr_conn_set_busy(&c->base, 0);
        if (c->base.closing)
            return NULL;
    }
    return c;
}

/* a reference exists: the answer is kept here and in the store */
static void
keep_answer(struct job *job, const unsigned char *der, size_t len)
{
    struct poll_entry *e = job->poll;

    if (cmpr_defer_to(&e->rec, CMPR_DEFER_DONE) != CMPR_OK)
        return;
    if ((e->rec.answer = malloc(len > 0 ? len : 1)) != NULL) {
        memcpy(e->rec.answer, der, len);
        e->rec.answer_len = len;
    }
    defer_submit(job->ctx, DJ_ANSWER, e->rec.ref, der, len, NULL);
}

static void
reply_send(struct cmpr_reply *r, const unsigned char *der, size_t len)
{
    struct job *job;
    struct tconn *c = job_done(r, 1, &job);

    /* poll_after_ms 0 promises a pollRep: an answer quicker than its
     * reference waits for it (referenced()) */
    if (c != NULL && job->ctx->poll_after == 0 && job->detaching && job->poll == NULL
            && (job->held = malloc(len > 0 ? len : 1)) != NULL) {
        memcpy(job->held, der, len);
        job->held_len = len;
        c->job = job;
        cmpr_conn_set_busy(&c->base, 1);
        return;
    }
    if (job->poll != NULL)
        keep_answer(job, der, len);
    /* the client still waits on its connection (no pollRep left yet) */
    if (c != NULL)
        send_answer(c, c->version, c->flags, der, len);
    free(job->req);
    free(job);
}

static void
reply_fail(struct cmpr_reply *r, int err)
{
    struct job *job;
    struct tconn *c = job_done(r, 0, &job);

    if (job->poll != NULL && cmpr_defer_to(&job->poll->rec, CMPR_DEFER_FAILED) == CMPR_OK)
        defer_submit(job->ctx, DJ_ANSWER, job->poll->rec.ref, NULL, 0, NULL);
    if (c != NULL)
        /* no CMP answer could be built at all: a server-side transport error */
        send_error(c, c->version, c->flags, CMPR_TCP_ERR_SERVER, 0, cmpr_strerror(err), 1);
    free(job->req);
    free(job);
}

static const struct cmpr_reply_ops reply_ops = { reply_send, reply_fail };

/* ---------------- reading ---------------- */

static struct job *
job_submit(struct tcp_ctx *ctx, struct tconn *c, const unsigned char *der, size_t len, int resumed)
{
    struct job *job = calloc(1, sizeof(*job));
    struct cmpr_envelope *env;

    if (job == NULL)
        return NULL;
    job->reply.ops = &reply_ops;
    job->ctx = ctx;
    job->c = c;
    if (ctx->poll_after >= 0 && c != NULL && (job->req = malloc(len)) != NULL) {
        memcpy(job->req, der, len);
        job->req_len = len;
    }
    if ((env = cmpr_envelope_new(der, len, &job->reply)) == NULL) {
        free(job->req);
        free(job);
        return NULL;
    }
    cmpr_envelope_set(env, CMPR_ENV_MEDIUM, "tcp");
    cmpr_envelope_set(env, CMPR_ENV_PEER, c != NULL ? c->base.peer : "poll");
    cmpr_envelope_set_resumed(env, resumed);
    cmpr_envelope_set_loop(env, ctx->srv.loop);
    job->started = uv_hrtime();
    ctx->in_flight++;
    cmpr_core_submit(ctx->d->core(ctx->d), env);
    return job;
}

static void
submit(struct tconn *c, const struct cmpr_tcp_frame *f)
{
    struct job *job;

    c->version = f->version;
    c->flags = f->flags;
    cmpr_conn_set_busy(&c->base, 1);
    if ((job = job_submit(c->ctx, c, f->value, f->value_len, 0)) == NULL) {
        cmpr_conn_set_busy(&c->base, 0);
        send_error(c, f->version, f->flags, CMPR_TCP_ERR_SERVER, 0, "out of memory", 1);
        return;
    }
    c->job = job;               /* the answer comes later, on the loop thread */
    if (c->ctx->poll_after == 0)
        detach(c);
    else if (c->ctx->poll_after > 0)
        cmpr_conn_arm(&c->base, (uint64_t)c->ctx->poll_after);
}

/* the answer to a pollReq for a reference this daemon knows (e) */
static void
poll_answer(struct tconn *c, int version, unsigned flags, struct poll_entry *e, uint32_t ref)
{
    int close_req = (flags & CMPR_TCP_FLAG_CLOSE) != 0;

    if (e == NULL || e->rec.state == CMPR_DEFER_FAILED) {
        send_error(c, version, flags, CMPR_TCP_ERR_POLLID, ref,
                   e == NULL ? "unknown polling reference" : "the request failed; send it again", close_req);
        return;
    }
    if (e->orphan) {
        /* known from the store after a restart, not yet answered: run it
         * again (the core answers a retransmission from its store) */
        struct job *job = e->rec.req != NULL && e->rec.req_len > 0
                          ? job_submit(c->ctx, NULL, e->rec.req, e->rec.req_len, 1) : NULL;

        if (job == NULL) {
            send_error(c, version, flags, CMPR_TCP_ERR_SERVER, 0, "the stored request cannot be read", close_req);
            return;
        }
        job->poll = e;
        e->orphan = 0;
    }
    if (e->rec.state == CMPR_DEFER_DONE) {
        cmpr_log_info("tcp %s: pollReq %08x answered", c->base.peer, (unsigned)ref);
        send_answer(c, version, flags, e->rec.answer, e->rec.answer_len);
        return;
    }
    send_pollrep(c, version, flags, ref);
}

/* A reference this daemon did not hand out (another node sharing the store
 * did, docs/cluster.md), as the store has it: answered now. One still
 * being worked on elsewhere gets another pollRep; one left working for
 * longer than a node needs (that node died) is run again here. */
static void
looked_up(struct defer_job *j, int ok)
{
    struct tconn *c = j->c;
    struct poll_entry *e = ok ? poll_find(j->ctx, j->ref) : NULL;

    if (ok && e == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
        e->rec = j->rec;
        memset(&j->rec, 0, sizeof(j->rec));     /* now the entry's */
        e->orphan = e->rec.state == CMPR_DEFER_WORKING && (int64_t)time(NULL) - e->rec.created > ORPHAN_AFTER_S;
        e->next = j->ctx->polls;
        j->ctx->polls = e;
    }
    cmpr_conn_set_busy(&c->base, 0);
    if (!c->base.closing)
        poll_answer(c, c->version, c->flags, e, j->ref);
    cmpr_conn_hold(&c->base, -1);
}

/* pollReq (tp06 5.4): the answer if it is there, another pollRep if not */
static void
poll_request(struct tconn *c, const struct cmpr_tcp_frame *f)
{
    uint32_t ref = f->value_len >= 4 ? cmpr_tcp_u32(f->value) : 0;
    struct poll_entry *e = f->value_len == 4 ? poll_find(c->ctx, ref) : NULL;

    if (e == NULL && f->value_len == 4) {
        /* not one of ours: the store may know it (another node's) */
        c->version = f->version;
        c->flags = f->flags;
        cmpr_conn_set_busy(&c->base, 1);
        if (defer_submit(c->ctx, DJ_LOOKUP, ref, NULL, 0, c) == 0)
            return;
        cmpr_conn_set_busy(&c->base, 0);
    }
    poll_answer(c, f->version, f->flags, e, ref);
}

/* Takes frames out of the parser until one is in the core, an answer is
 * being written, or more bytes are needed. */
static void
process(struct tconn *c)
{
    struct cmpr_tcp_frame f;
    enum cmpr_tcp_status st;
    char text[120];

    if (c->base.closing)
        return;
    if (c->base.busy || c->base.writes > 0) {
        cmpr_conn_read(&c->base, 0);    /* back-pressure: the next frames wait */
        return;
    }
    st = cmpr_tcp_next(&c->parser, &f);
    switch (st) {
    case CMPR_TCP_NEED_MORE:
        if (c->ctx->srv.stopping || c->eof) {
            if (c->eof && cmpr_tcp_pending(&c->parser) > 0)
                cmpr_log_limited(&c->base.srv->peer_log, CMPR_LOG_INFO,
                                 "tcp %s: connection closed inside a frame (%zu bytes)", c->base.peer,
                                 cmpr_tcp_pending(&c->parser));
            cmpr_conn_close(&c->base);
            return;
        }
        if (!c->eof)
            cmpr_conn_read(&c->base, 1);
        arm(c);
        return;
    case CMPR_TCP_E_VERSION:
        /* tp06 5: reply in a version the client can read; ours is 10 */
        snprintf(text, sizeof(text), "TCP-Message version %d is not supported; use 10",
                 f.version);
        send_error(c, CMPR_TCP_VERSION, 0, CMPR_TCP_ERR_VERSION, CMPR_TCP_VERSION, text, 1);
        return;
    case CMPR_TCP_E_TOO_BIG:
        snprintf(text, sizeof(text), "frame larger than the maximum of %ld bytes",
                 c->ctx->max_frame);
        send_error(c, f.version, 0, CMPR_TCP_ERR_CLIENT, 0, text, 1);
        return;
    case CMPR_TCP_E_LENGTH:
        send_error(c, f.version, 0, CMPR_TCP_ERR_CLIENT, 0, "length shorter than the header", 1);
        return;
    case CMPR_TCP_FRAME:
        break;
    }
    cmpr_conn_disarm(&c->base);
    cmpr_conn_idle(&c->base, 0);
    c->frame_start = 0;
    c->frames++;
    cmpr_log_debug("tcp %s: %s %s, %zu bytes%s", c->base.peer,
                   f.version == CMPR_TCP_V2510 ? "RFC 2510" : "v10",
                   cmpr_tcp_type_name(f.version, f.type), f.value_len,
                   f.flags & CMPR_TCP_FLAG_CLOSE ? ", close" : "");
    switch (f.type) {
    case CMPR_TCP_PKIREQ:
        if (f.value_len == 0) {
            send_error(c, f.version, f.flags, CMPR_TCP_ERR_CLIENT, 0, "empty pkiReq",
                       (f.flags & CMPR_TCP_FLAG_CLOSE) != 0);
            return;
        }
        submit(c, &f);
        break;
    case CMPR_TCP_POLLREQ:
        poll_request(c, &f);
        break;
    default:
        /* tp06 5: unknown or server-to-client type -> InvalidMessageType;
         * the framing is intact, so the connection stays usable */
        snprintf(text, sizeof(text), "message type %u (%s) is not a request", f.type,
                 cmpr_tcp_type_name(f.version, f.type));
        send_error(c, f.version, f.flags, CMPR_TCP_ERR_TYPE, f.type, text,
                   (f.flags & CMPR_TCP_FLAG_CLOSE) != 0);
        return;
    }
    /* in the core: reading stops when the next bytes come (a client that
     * waits for its answer sends none), and the frame needs no quick ACK */
    if (c->base.busy)
        cmpr_conn_pause(&c->base);
}

static void
c_data(struct cmpr_conn *bc, const char *p, size_t n)
{
    struct tconn *c = (struct tconn *)bc;

    if (cmpr_tcp_feed(&c->parser, p, n) != 0) {
        /* more than a frame plus a read held: the peer ignores answers */
        cmpr_log_limited(&bc->srv->peer_log, CMPR_LOG_INFO, "tcp %s: input exceeds the frame limit, closing",
                         bc->peer);
        cmpr_conn_close(bc);
        return;
    }
    process(c);
}

/* half-close after the request(s): still answer them */
static void
c_eof(struct cmpr_conn *bc)
{
    struct tconn *c = (struct tconn *)bc;

    c->eof = 1;
    process(c);
}

/* an answer is out: the next frame on this connection */
static void
c_drained(struct cmpr_conn *bc)
{
    struct tconn *c = (struct tconn *)bc;

    if (c->ctx->srv.stopping && !bc->busy) {
        cmpr_conn_close(bc);
        return;
    }
    if (!bc->busy)
        process(c);
}

static void
c_opened(struct cmpr_conn *bc)
{
    struct tconn *c = (struct tconn *)bc;

    c->ctx = (struct tcp_ctx *)bc->srv;
    cmpr_tcp_parser_init(&c->parser, (size_t)c->ctx->max_frame);
    process(c);
}

/* over the limit: GeneralServerError with close, before reading */
static void
c_refuse(struct cmpr_conn *bc)
{
    struct tconn *c = (struct tconn *)bc;

    c->ctx = (struct tcp_ctx *)bc->srv;
    cmpr_tcp_parser_init(&c->parser, (size_t)c->ctx->max_frame);
    send_error(c, CMPR_TCP_VERSION, 0, CMPR_TCP_ERR_SERVER, 0, "too many connections", 1);
}

static void
c_release(struct cmpr_conn *bc)
{
    cmpr_tcp_parser_free(&((struct tconn *)bc)->parser);
}

static const struct cmpr_conn_ops conn_ops = {
    c_opened, c_refuse, c_data, c_eof, c_timeout, c_drained, c_release
};

/* ---------------- the transport ---------------- */

static const char *const directives[] = {
    "address", "max_frame", "first_byte_timeout", "read_timeout", "idle_timeout", "max_connections",
    "max_connections_per_address", "poll_after_ms",
    "poll_check_after", "poll_keep", NULL
};

static int
tcp_configure(void *vctx, const char *name, const struct cmpr_conf_group *g, char **err_r)
{
    struct tcp_ctx *ctx = vctx;
    const char *v;
    int r;

    snprintf(ctx->host, sizeof(ctx->host), "127.0.0.1");
    ctx->port = 829;
    ctx->max_frame = CMPR_MAX_MSG_SIZE;
    ctx->first_byte_timeout = 10000;
    ctx->read_timeout = 30000;
    ctx->idle_timeout = 300000;
    ctx->srv.max_conns = 1024;
    ctx->srv.max_per_addr = CMPR_CONN_PER_ADDR_DEFAULT;
    ctx->poll_after = -1;
    ctx->poll_check_after = 5;
    ctx->poll_keep = 86400;
    if (g == NULL)
        return CMPR_OK;
    if ((r = cmpr_conf_group_check(g, directives, err_r)) != CMPR_OK)
        return r;
    if ((v = cmpr_conf_group_get(g, "address")) != NULL
            && cmpr_net_parse_address(v, ctx->host, sizeof(ctx->host), &ctx->port) != 0) {
        *err_r = cmpr_conf_group_error(g, "address", "address must be HOST:PORT, not '%s'", v);
        return CMPR_ERR_CONFIG;
    }
    if ((r = cmpr_conf_group_long(g, "max_frame", CMPR_MAX_MSG_SIZE, 100 * 1024,
                                  16 * 1024 * 1024, &ctx->max_frame, err_r))
            || (r = cmpr_conf_group_long(g, "first_byte_timeout", 10, 1, 3600, &ctx->first_byte_timeout,
                                         err_r))
            || (r = cmpr_conf_group_long(g, "read_timeout", 30, 1, 3600, &ctx->read_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "idle_timeout", 300, 1, 86400, &ctx->idle_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "max_connections", 1024, 1, 100000, &ctx->srv.max_conns, err_r))
            || (r = cmpr_conf_group_long(g, "max_connections_per_address", CMPR_CONN_PER_ADDR_DEFAULT, 0,
                                         100000, &ctx->srv.max_per_addr, err_r))
            || (r = cmpr_conf_group_long(g, "poll_after_ms", -1, -1, 3600000, &ctx->poll_after, err_r))
            || (r = cmpr_conf_group_long(g, "poll_check_after", 5, 0, 86400, &ctx->poll_check_after,
                                         err_r))
            || (r = cmpr_conf_group_long(g, "poll_keep", 86400, 60, 30 * 86400, &ctx->poll_keep, err_r)))
        return r;
    ctx->first_byte_timeout *= 1000;
    ctx->read_timeout *= 1000;
    ctx->idle_timeout *= 1000;
    return CMPR_OK;
}

/* the references of the previous run, from the store (startup only) */
static int
load_one(const struct cmpr_defer_rec *rec, void *arg)
{
    struct tcp_ctx *ctx = arg;
    struct poll_entry *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return CMPR_ERR_ALLOC;
    e->rec = *rec;
    e->rec.req = rec->req != NULL ? malloc(rec->req_len > 0 ? rec->req_len : 1) : NULL;
    e->rec.answer = rec->answer != NULL ? malloc(rec->answer_len > 0 ? rec->answer_len : 1) : NULL;
    if ((rec->req != NULL && e->rec.req == NULL) || (rec->answer != NULL && e->rec.answer == NULL)) {
        poll_free(e);
        return CMPR_ERR_ALLOC;
    }
    if (rec->req != NULL)
        memcpy(e->rec.req, rec->req, rec->req_len);
    if (rec->answer != NULL)
        memcpy(e->rec.answer, rec->answer, rec->answer_len);
    e->orphan = rec->state == CMPR_DEFER_WORKING;
    e->next = ctx->polls;
    ctx->polls = e;
    return CMPR_OK;
}

static int
poll_load(struct tcp_ctx *ctx, char **err_r)
{
    int r = cmpr_core_defer_list(ctx->d->core(ctx->d), (int64_t)time(NULL) - ctx->poll_keep, load_one, ctx);

    if (r != CMPR_OK) {
        *err_r = strdup("tcp: cannot read the polling references from the store");
        return r;
    }
    return CMPR_OK;
}

static int
tcp_start(void *vctx, struct cmpr_daemon *d, char **err_r)
{
    struct tcp_ctx *ctx = vctx;
    int r;

    if (ctx->max_frame == 0)
        tcp_configure(ctx, "tcp", NULL, err_r);
    ctx->d = d;
    if (ctx->poll_after >= 0 && (r = poll_load(ctx, err_r)) != CMPR_OK)
        return r;
    ctx->srv.ops = &conn_ops;
    ctx->srv.conn_size = sizeof(struct tconn);
    ctx->srv.name = "tcp";
    if ((r = cmpr_conn_listen(&ctx->srv, d->loop, ctx->host, &ctx->port, err_r)) != CMPR_OK)
        return r;
    cmpr_log_info("tcp: listening on %s:%d (TCP-Message v10 and RFC 2510 framing)", ctx->host,
                  ctx->port);
    return CMPR_OK;
}

static void
tcp_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    cmpr_conn_stop(&((struct tcp_ctx *)vctx)->srv, done, arg);
}

static size_t
tcp_in_flight(void *vctx)
{
    return ((struct tcp_ctx *)vctx)->in_flight;
}

static int
tcp_port(void *vctx)
{
    return ((struct tcp_ctx *)vctx)->port;
}

static int
tcp_set_address(void *vctx, const char *addr)
{
    struct tcp_ctx *ctx = vctx;

    if (addr == NULL)
        return 0;
    return cmpr_net_parse_address(addr, ctx->host, sizeof(ctx->host), &ctx->port);
}

static void
tcp_free(void *vctx)
{
    struct tcp_ctx *ctx = vctx;

    while (ctx->polls != NULL) {
        struct poll_entry *e = ctx->polls;

        ctx->polls = e->next;
        poll_free(e);
    }
}

static const char *const tcp_names[] = { "tcp", NULL };

/* its connections, the listener and its spare */
static long
tcp_max_fds(void *vctx)
{
    return ((struct tcp_ctx *)vctx)->srv.max_conns + 2;
}

/* its listener's connections, for metrics */
static void
tcp_conn_stats(void *vctx, struct cmpr_conn_stats *out)
{
    cmpr_conn_get_stats(&((struct tcp_ctx *)vctx)->srv, out);
}

const struct cmpr_transport_ops cmpr_tcp_transport = {
    .name = "tcp",
    .group_type = "listen",
    .group_names = tcp_names,
    .ctx_size = sizeof(struct tcp_ctx),
    .configure = tcp_configure,
    .start = tcp_start,
    .stop = tcp_stop,
    .in_flight = tcp_in_flight,
    .port = tcp_port,
    .set_address = tcp_set_address,
    .free = tcp_free,
    .max_fds = tcp_max_fds,
    .conn_stats = tcp_conn_stats,
    .upstream = &cmpr_tcp_upstream,
    .push = NULL,
};
