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
#include "transports/netutil.h"
#include "codec/tcpframe.h"
#include "core/core.h"
#include "core/envelope.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tcp_ctx {
    char host[64];
    int port;
    long max_frame, read_timeout, idle_timeout, max_conns;
    struct cmpr_daemon *d;
    uv_tcp_t listener;
    int listening;
    long n_conns;
    size_t in_flight;
    struct tconn *conns;
    int stopping;
    void (*stop_done)(void *arg);
    void *stop_arg;
};

struct tconn {
    uv_tcp_t tcp;                   /* first: the handle's address is the conn's */
    uv_timer_t timer;
    struct tcp_ctx *ctx;
    struct tconn *next, *prev;
    struct cmpr_tcp_parser parser;
    struct cmpr_reply reply;
    char peer[64];
    int open_handles;
    int closing;                    /* 1: close once the answer is written; 2: closed */
    int busy;                       /* a request is in the core */
    int reading;
    int writes;                     /* writes not yet completed */
    int eof;                        /* the peer sent FIN: answer what is complete, then close */
    uint64_t frame_start;           /* ms when the open frame's first byte arrived, or 0 */
    int version;                    /* framing of the request being answered */
    unsigned flags;                 /* its flags (close is echoed) */
    uint64_t started;
};

static void process(struct tconn *c);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---------------- connection lifetime ---------------- */

static void
finish_stop(struct tcp_ctx *ctx)
{
    if (ctx->stopping && ctx->n_conns == 0 && !ctx->listening && ctx->stop_done != NULL) {
        void (*done)(void *) = ctx->stop_done;

        ctx->stop_done = NULL;
        done(ctx->stop_arg);
    }
}

static void
conn_free_cb(uv_handle_t *h)
{
    struct tconn *c = h->data;
    struct tcp_ctx *ctx = c->ctx;

    if (--c->open_handles > 0)
        return;
    ctx->n_conns--;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        ctx->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    cmpr_tcp_parser_free(&c->parser);
    free(c);
    finish_stop(ctx);
}

static void
conn_close(struct tconn *c)
{
    if (c->closing == 2)
        return;
    if (c->busy || c->writes > 0) {  /* the reply or a write still points at us */
        c->closing = 1;
        return;
    }
    c->closing = 2;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_free_cb);
    uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
}

static void
timer_cb(uv_timer_t *t)
{
    struct tconn *c = t->data;

    if (c->busy)
        return;                 /* the core is working: its answer is awaited */
    cmpr_log_info("tcp %s: %s timeout, closing", c->peer,
                  cmpr_tcp_pending(&c->parser) > 0 ? "read (incomplete frame)" : "idle");
    conn_close(c);
}

/* idle: no frame open; read: a frame has started and must complete within
 * read_timeout of its first byte, however slowly the rest trickles in */
static void
arm(struct tconn *c)
{
    uint64_t now = uv_now(c->ctx->d->loop), ms = (uint64_t)c->ctx->idle_timeout;

    if (cmpr_tcp_pending(&c->parser) > 0) {
        if (c->frame_start == 0)
            c->frame_start = now;
        ms = now - c->frame_start >= (uint64_t)c->ctx->read_timeout ? 1
             : (uint64_t)c->ctx->read_timeout - (now - c->frame_start);
    } else {
        c->frame_start = 0;
    }
    uv_timer_start(&c->timer, timer_cb, ms, 0);
}

/* ---------------- writing ---------------- */

struct wreq {
    uv_write_t req;
    struct tconn *c;
    int close_after;
    unsigned char *buf;
};

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    suggested = suggested > 65536 ? 65536 : suggested;
    buf->base = malloc(suggested);
    buf->len = buf->base != NULL ? suggested : 0;
}

static void
write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct tconn *c = w->c;
    int close_after = w->close_after;

    free(w->buf);
    free(w);
    c->writes--;
    if (status != 0 || close_after || c->closing || (c->ctx->stopping && !c->busy)) {
        conn_close(c);          /* no-op if already closed */
        return;
    }
    /* next frame on this connection: what already arrived, then read on */
    if (!c->busy)
        process(c);
}

/* takes buf */
static void
write_frame(struct tconn *c, unsigned char *buf, size_t len, int close_after)
{
    struct wreq *w = calloc(1, sizeof(*w));
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);

    if (w == NULL) {
        free(buf);
        conn_close(c);
        return;
    }
    w->c = c;
    w->buf = buf;
    w->close_after = close_after;
    c->writes++;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
        c->writes--;
        free(buf);
        free(w);
        conn_close(c);
    }
}

static void
send_small(struct tconn *c, const unsigned char *frame, size_t len, int close_after)
{
    unsigned char *buf = malloc(len);

    if (buf == NULL) {
        conn_close(c);
        return;
    }
    memcpy(buf, frame, len);
    write_frame(c, buf, len, close_after);
}

/* errorMsgRep: transport errors only (tp06 5.6) */
static void
send_error(struct tconn *c, int version, unsigned flags, unsigned code, uint32_t data,
           const char *text, int close_after)
{
    unsigned char out[300];
    size_t n;

    cmpr_log_info("tcp %s: errorMsgRep 0x%04x: %s%s", c->peer, code, text,
                  close_after ? " (closing)" : "");
    if (close_after)
        flags |= CMPR_TCP_FLAG_CLOSE;
    n = cmpr_tcp_errormsg(version, flags, code, data, text, out, sizeof(out));
    send_small(c, out, n, close_after);
}

/* the core's answer (loop thread) */
static void
reply_send(struct cmpr_reply *r, const unsigned char *der, size_t len)
{
    struct tconn *c = (struct tconn *)((char *)r - offsetof(struct tconn, reply));
    int close_after = (c->flags & CMPR_TCP_FLAG_CLOSE) != 0 || c->ctx->stopping;
    unsigned char *buf;
    size_t h;

    c->busy = 0;
    c->ctx->in_flight--;
    c->ctx->d->request_done(c->ctx->d, "tcp", 1, uv_hrtime() - c->started);
    if (c->closing) {
        c->closing = 0;
        conn_close(c);
        return;
    }
    if (len == 0) {
        /* tcp-00 3: finRep where no CMP answer applies */
        unsigned char fin[16];

        send_small(c, fin, cmpr_tcp_finrep(c->version, c->flags, fin), close_after);
        return;
    }
    if ((buf = malloc(len + CMPR_TCP_HDR10)) == NULL) {
        conn_close(c);
        return;
    }
    /* pkiRep (v10) / finalMsgRep (RFC 2510): both code 5; close echoed */
    h = cmpr_tcp_header(c->version, close_after ? CMPR_TCP_FLAG_CLOSE : 0, CMPR_TCP_PKIREP,
                        len, buf);
    memcpy(buf + h, der, len);
    write_frame(c, buf, h + len, close_after);
}

static void
reply_fail(struct cmpr_reply *r, int err)
{
    struct tconn *c = (struct tconn *)((char *)r - offsetof(struct tconn, reply));

    c->busy = 0;
    c->ctx->in_flight--;
    c->ctx->d->request_done(c->ctx->d, "tcp", 0, uv_hrtime() - c->started);
    if (c->closing) {
        c->closing = 0;
        conn_close(c);
        return;
    }
    /* no CMP answer could be built at all: a server-side transport error */
    send_error(c, c->version, c->flags, CMPR_TCP_ERR_SERVER, 0, cmpr_strerror(err), 1);
}

static const struct cmpr_reply_ops reply_ops = { reply_send, reply_fail };

/* ---------------- reading ---------------- */

static void
submit(struct tconn *c, const struct cmpr_tcp_frame *f)
{
    unsigned char *der = malloc(f->value_len);
    struct cmpr_envelope *env;

    if (der == NULL) {
        send_error(c, f->version, f->flags, CMPR_TCP_ERR_SERVER, 0, "out of memory", 1);
        return;
    }
    memcpy(der, f->value, f->value_len);
    c->version = f->version;
    c->flags = f->flags;
    env = cmpr_envelope_new(der, f->value_len, "tcp", c->peer, "", "", &c->reply);
    if (env == NULL) {
        send_error(c, f->version, f->flags, CMPR_TCP_ERR_SERVER, 0, "out of memory", 1);
        return;
    }
    c->busy = 1;
    c->started = uv_hrtime();
    c->ctx->in_flight++;
    cmpr_core_submit(c->ctx->d->core(c->ctx->d), c->ctx->d->loop, env);
}

/* Takes frames out of the parser until one is in the core, an answer is
 * being written, or more bytes are needed. */
static void
process(struct tconn *c)
{
    struct cmpr_tcp_frame f;
    enum cmpr_tcp_status st;
    char text[120];

    if (c->closing)
        return;
    if (c->busy || c->writes > 0) {
        if (c->reading) {           /* back-pressure: the next frames wait */
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        return;
    }
    st = cmpr_tcp_next(&c->parser, &f);
    switch (st) {
    case CMPR_TCP_NEED_MORE:
        if (c->ctx->stopping || c->eof) {
            if (c->eof && cmpr_tcp_pending(&c->parser) > 0)
                cmpr_log_info("tcp %s: connection closed inside a frame (%zu bytes)", c->peer,
                              cmpr_tcp_pending(&c->parser));
            conn_close(c);
            return;
        }
        if (!c->reading) {
            uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
            c->reading = 1;
        }
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
    uv_timer_stop(&c->timer);
    c->frame_start = 0;
    cmpr_log_debug("tcp %s: %s %s, %zu bytes%s", c->peer,
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
        return;
    case CMPR_TCP_POLLREQ:
        /* this server answers within the request, so it never hands out a
         * polling reference (RFC 4210 polls inside CMP instead): any
         * reference is unknown */
        send_error(c, f.version, f.flags, CMPR_TCP_ERR_POLLID,
                   f.value_len >= 4 ? cmpr_tcp_u32(f.value) : 0, "unknown polling reference",
                   (f.flags & CMPR_TCP_FLAG_CLOSE) != 0);
        return;
    default:
        /* tp06 5: unknown or server-to-client type -> InvalidMessageType;
         * the framing is intact, so the connection stays usable */
        snprintf(text, sizeof(text), "message type %u (%s) is not a request", f.type,
                 cmpr_tcp_type_name(f.version, f.type));
        send_error(c, f.version, f.flags, CMPR_TCP_ERR_TYPE, f.type, text,
                   (f.flags & CMPR_TCP_FLAG_CLOSE) != 0);
        return;
    }
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tconn *c = (struct tconn *)s;

    if (nread > 0 && c->closing == 0) {
        if (cmpr_tcp_feed(&c->parser, buf->base, (size_t)nread) != 0) {
            /* more than a frame plus a read held: the peer ignores answers */
            cmpr_log_info("tcp %s: input exceeds the frame limit, closing", c->peer);
            free(buf->base);
            conn_close(c);
            return;
        }
        process(c);
    } else if (nread < 0) {
        if (c->reading) {
            uv_read_stop(s);
            c->reading = 0;
        }
        if (nread == UV_EOF && c->closing == 0) {
            /* half-close after the request(s): still answer them */
            c->eof = 1;
            process(c);
        } else {
            conn_close(c);
        }
    }
    free(buf->base);
}

/* ---------------- accepting ---------------- */

static void
on_connection(uv_stream_t *server, int status)
{
    struct tcp_ctx *ctx = server->data;
    struct tconn *c;

    if (status != 0 || (c = calloc(1, sizeof(*c))) == NULL)
        return;
    c->ctx = ctx;
    c->reply.ops = &reply_ops;
    cmpr_tcp_parser_init(&c->parser, (size_t)ctx->max_frame);
    uv_tcp_init(ctx->d->loop, &c->tcp);
    uv_timer_init(ctx->d->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    ctx->n_conns++;
    c->next = ctx->conns;
    if (ctx->conns != NULL)
        ctx->conns->prev = c;
    ctx->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    cmpr_net_peer_name(&c->tcp, c->peer, sizeof(c->peer));
    if (ctx->n_conns > ctx->max_conns || ctx->stopping) {
        /* over the limit: GeneralServerError with close, before reading */
        send_error(c, CMPR_TCP_VERSION, 0, CMPR_TCP_ERR_SERVER, 0, "too many connections", 1);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    process(c);
}

/* ---------------- the transport ---------------- */

static const char *const directives[] = {
    "address", "max_frame", "read_timeout", "idle_timeout", "max_connections", NULL
};

static int
tcp_configure(void *vctx, const struct cmpr_conf_group *g, char **err_r)
{
    struct tcp_ctx *ctx = vctx;
    const char *v;
    int r;

    snprintf(ctx->host, sizeof(ctx->host), "127.0.0.1");
    ctx->port = 829;
    ctx->max_frame = CMPR_MAX_MSG_SIZE;
    ctx->read_timeout = 30000;
    ctx->idle_timeout = 300000;
    ctx->max_conns = 1024;
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
            || (r = cmpr_conf_group_long(g, "read_timeout", 30, 1, 3600, &ctx->read_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "idle_timeout", 300, 1, 86400, &ctx->idle_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "max_connections", 1024, 1, 100000, &ctx->max_conns, err_r)))
        return r;
    ctx->read_timeout *= 1000;
    ctx->idle_timeout *= 1000;
    return CMPR_OK;
}

static int
tcp_start(void *vctx, struct cmpr_daemon *d, char **err_r)
{
    struct tcp_ctx *ctx = vctx;
    int r;

    if (ctx->max_frame == 0)
        tcp_configure(ctx, NULL, err_r);
    ctx->d = d;
    if ((r = cmpr_net_listen(d->loop, &ctx->listener, "tcp", ctx->host, &ctx->port,
                             on_connection, err_r)) != CMPR_OK)
        return r;
    ctx->listener.data = ctx;
    ctx->listening = 1;
    cmpr_log_info("tcp: listening on %s:%d (TCP-Message v10 and RFC 2510 framing)", ctx->host,
                  ctx->port);
    return CMPR_OK;
}

static void
listener_closed(uv_handle_t *h)
{
    struct tcp_ctx *ctx = h->data;

    ctx->listening = 0;
    finish_stop(ctx);
}

static void
tcp_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    struct tcp_ctx *ctx = vctx;
    struct tconn *c, *next;

    ctx->stopping = 1;
    ctx->stop_done = done;
    ctx->stop_arg = arg;
    /* idle connections go now; busy ones after their answer is written */
    for (c = ctx->conns; c != NULL; c = next) {
        next = c->next;
        if (!c->busy && c->writes == 0)
            conn_close(c);
    }
    if (ctx->listening)
        uv_close((uv_handle_t *)&ctx->listener, listener_closed);
    else
        listener_closed((uv_handle_t *)&ctx->listener);
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
    (void)vctx;
}

const struct cmpr_transport_ops cmpr_tcp_transport = {
    .name = "tcp",
    .group_type = "listen",
    .ctx_size = sizeof(struct tcp_ctx),
    .configure = tcp_configure,
    .start = tcp_start,
    .stop = tcp_stop,
    .in_flight = tcp_in_flight,
    .port = tcp_port,
    .set_address = tcp_set_address,
    .free = tcp_free,
};
