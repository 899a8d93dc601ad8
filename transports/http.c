/*
 * CMP over HTTP (RFC 9811, RFC 6712): the server side. conn.c moves the
 * bytes (TLS included), codec/httpmsg.c reads the requests and applies the
 * CMP rules, and every request body becomes one envelope for the core. One
 * request per connection is in the core at a time (pipelining-safe: later
 * requests wait, unread, until the answer is written).
 */
#include "transports/transport.h"
#include "transports/conn.h"
#include "transports/client/client.h"
#include "transports/lib/tls.h"
#include "transports/lib/net.h"
#include "codec/httpmsg.h"
#include "codec/tcpframe.h"
#include "core/core.h"
#include "core/envelope.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ALIASES 64

struct http_ctx {
    struct cmpr_conn_server srv;        /* first */
    int admin;                          /* [listen admin]: GET /healthz, GET /metrics */
    char host[64];
    int port;
    long first_byte_timeout, header_timeout, body_timeout, idle_timeout;
    struct cmpr_httpreq_conf rconf;
    struct cmpr_http_alias *aliases;
    size_t n_aliases, cap_aliases;
    struct cmpr_daemon *d;
    size_t in_flight;
};

struct conn {
    struct cmpr_conn base;              /* first */
    struct cmpr_reply reply;
    struct cmpr_httpreq req;
    uint64_t started;
    int answering;                      /* the answer is being written */
    int keep_alive;
    struct cmpr_buf pending;            /* bytes of later requests, read meanwhile */
};

static struct http_ctx *
ctx_of(struct conn *c)
{
    return (struct http_ctx *)c->base.srv;
}

static void feed(struct conn *c, const char *data, size_t len);

/* ---------------- writing ---------------- */

static void
send_status(struct conn *c, int status, const char *text)
{
    struct cmpr_buf b;
    unsigned char *out;
    size_t n;

    cmpr_buf_init(&b, 2048);
    if (cmpr_buf_putf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                      "%sConnection: close\r\n\r\n%s\n", status, cmpr_http_reason(status),
                      strlen(text) + 1, status == 405 ? "Allow: POST\r\n" : "", text) != CMPR_OK
            || (out = cmpr_buf_steal(&b, &n)) == NULL) {
        cmpr_buf_free(&b);
        cmpr_conn_close(&c->base);
        return;
    }
    cmpr_conn_read(&c->base, 0);
    cmpr_log_limited(&c->base.srv->peer_log, CMPR_LOG_INFO, "http %s: %d %s: %s", c->base.peer, status,
                     cmpr_http_reason(status), text);
    cmpr_conn_write(&c->base, (char *)out, n, 1);
}

/* the core has answered (loop thread) */
static int
reply_done(struct conn *c, int ok)
{
    struct http_ctx *ctx = ctx_of(c);

    ctx->in_flight--;
    ctx->d->request_done(ctx->d, "http", ok, uv_hrtime() - c->started);
    cmpr_conn_set_busy(&c->base, 0);
    return c->base.closing == 0;
}

static void
reply_send(struct cmpr_reply *r, const unsigned char *der, size_t len)
{
    struct conn *c = (struct conn *)((char *)r - offsetof(struct conn, reply));
    int framed = c->req.poll_version >= 0;
    size_t frame = framed ? (c->req.poll_version == CMPR_TCP_V2510 ? CMPR_TCP_HDR2510 : CMPR_TCP_HDR10) : 0;
    struct cmpr_buf b;
    unsigned char *p, *out;
    size_t n;

    if (!reply_done(c, 1))
        return;
    if (ctx_of(c)->srv.stopping)
        c->keep_alive = 0;
    /* RFC 9811 3: the answer, CMP errors included, is 200 application/pkixcmp
     * (the OpenSSL 3.0 client reads a CMP body only on 200) */
    cmpr_buf_init(&b, len + frame + 512);
    if (cmpr_buf_putf(&b, "HTTP/1.%d 200 OK\r\nContent-Type: application/pkixcmp%s\r\n"
                      "Content-Length: %zu\r\nCache-Control: no-cache\r\n%s\r\n", c->req.http_minor,
                      framed ? "-poll" : "", len + frame,
                      c->keep_alive ? (c->req.http_minor == 0 ? "Connection: keep-alive\r\n" : "")
                                    : "Connection: close\r\n") != CMPR_OK)
        goto fail;
    if (framed) {
        /* pkiRep (v10) / finalMsgRep (RFC 2510), flags 0, in the version
         * the client used (cmp-wire.md 1.5 item 6) */
        if (cmpr_buf_reserve(&b, frame, &p) != CMPR_OK)
            goto fail;
        cmpr_buf_commit(&b, cmpr_tcp_header(c->req.poll_version, 0, CMPR_TCP_PKIREP, len, p));
    }
    if (cmpr_buf_put(&b, der, len) != CMPR_OK || (out = cmpr_buf_steal(&b, &n)) == NULL)
        goto fail;
    c->answering = 1;
    cmpr_conn_write(&c->base, (char *)out, n, !c->keep_alive);
    return;
 fail:
    cmpr_buf_free(&b);
    cmpr_conn_close(&c->base);
}

static void
reply_fail(struct cmpr_reply *r, int err)
{
    struct conn *c = (struct conn *)((char *)r - offsetof(struct conn, reply));

    if (reply_done(c, 0))
        send_status(c, 500, cmpr_strerror(err));
}

static const struct cmpr_reply_ops reply_ops = { reply_send, reply_fail };

/* ---------------- requests ---------------- */

static void
admin_answer(struct conn *c)
{
    struct http_ctx *ctx = ctx_of(c);
    const char *path = c->req.path;
    struct cmpr_buf b;
    char *body;
    unsigned char *out;
    size_t blen = 0, n;
    int healthy = 1;

    if (strcmp(path, "/healthz") != 0 && strcmp(path, "/metrics") != 0) {
        send_status(c, 404, "try /healthz or /metrics");
        return;
    }
    if ((body = malloc(65536)) == NULL) {
        send_status(c, 503, "out of memory");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        if (ctx->d->health != NULL && ctx->d->health(ctx->d, body, 4096) != 0)
            healthy = 0;
        else if (ctx->d->health == NULL)
            snprintf(body, 4096, "ok\n");
        blen = strlen(body);
    } else {
        blen = ctx->d->metrics(ctx->d, body, 65536);
    }
    cmpr_buf_init(&b, blen + 512);
    if (cmpr_buf_putf(&b, "HTTP/1.%d %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n", c->req.http_minor,
                      healthy ? "200 OK" : "503 Service Unavailable", blen) != CMPR_OK
            || cmpr_buf_put(&b, body, blen) != CMPR_OK || (out = cmpr_buf_steal(&b, &n)) == NULL) {
        free(body);
        cmpr_buf_free(&b);
        send_status(c, 503, "out of memory");
        return;
    }
    free(body);
    cmpr_conn_disarm(&c->base);
    cmpr_conn_read(&c->base, 0);
    c->answering = 1;
    cmpr_conn_write(&c->base, (char *)out, n, 1);
}

static void
submit(struct conn *c)
{
    struct http_ctx *ctx = ctx_of(c);
    struct cmpr_envelope *env;
    const char *tls = cmpr_conn_tls_subject(&c->base);
    char peer[sizeof(c->base.peer) + 260];

    if ((env = cmpr_envelope_new(c->req.der, c->req.der_len, &c->reply)) == NULL) {
        send_status(c, 503, "out of memory");
        return;
    }
    snprintf(peer, sizeof(peer), "%s%s%s", c->base.peer, tls[0] ? " tls:" : "", tls);
    cmpr_envelope_set(env, CMPR_ENV_MEDIUM, c->base.tls != NULL ? "https" : "http");
    cmpr_envelope_set(env, CMPR_ENV_PEER, peer);
    cmpr_envelope_set(env, CMPR_ENV_LABEL, c->req.label);
    cmpr_envelope_set(env, CMPR_ENV_OPERATION, c->req.operation);
    if (tls[0])
        cmpr_envelope_set(env, CMPR_ENV_TLS_SUBJECT, tls);
    cmpr_envelope_set_loop(env, ctx->d->loop);
    c->keep_alive = c->req.keep_alive;
    c->started = uv_hrtime();
    ctx->in_flight++;
    cmpr_conn_set_busy(&c->base, 1);
    cmpr_conn_disarm(&c->base);
    cmpr_conn_pause(&c->base);
    cmpr_core_submit(ctx->d->core(ctx->d), env);
}

/* Feeds bytes to the request reader; one request goes to the core at a
 * time, what follows it waits in pending (within the caps). */
static void
feed(struct conn *c, const char *data, size_t len)
{
    struct http_ctx *ctx = ctx_of(c);

    while (c->base.closing == 0) {
        size_t used = 0;
        enum cmpr_httpreq_event ev;

        if (c->base.busy || c->answering) {
            if (len > 0 && cmpr_buf_put(&c->pending, data, len) != CMPR_OK)
                cmpr_conn_close(&c->base);      /* a peer that ignores our answers */
            return;
        }
        ev = cmpr_httpreq_feed(&c->req, data, len, &used);
        data += used;
        len -= used;
        switch (ev) {
        case CMPR_HTTPREQ_BEGIN:
            /* the headers complete within header_timeout of their first byte */
            cmpr_conn_idle(&c->base, 0);
            cmpr_conn_arm(&c->base, (uint64_t)ctx->header_timeout);
            break;
        case CMPR_HTTPREQ_HEADERS:
            if (c->req.expect_continue)
                cmpr_conn_write_copy(&c->base, "HTTP/1.1 100 Continue\r\n\r\n", 25, 0);
            cmpr_conn_arm(&c->base, (uint64_t)ctx->body_timeout);
            break;
        case CMPR_HTTPREQ_REQUEST:
            if (ctx->admin)
                admin_answer(c);
            else
                submit(c);
            break;
        case CMPR_HTTPREQ_REJECT:
            send_status(c, c->req.status, c->req.why);
            return;
        case CMPR_HTTPREQ_NEED_MORE:
            return;
        }
    }
}

/* ---------------- the connection ---------------- */

static void
c_opened(struct cmpr_conn *bc)
{
    struct conn *c = (struct conn *)bc;
    struct http_ctx *ctx = ctx_of(c);

    c->reply.ops = &reply_ops;
    cmpr_httpreq_init(&c->req, &ctx->rconf);
    cmpr_buf_init(&c->pending, ctx->rconf.max_body + ctx->rconf.max_header);
    /* the first byte of a request (after the TLS handshake) within
     * first_byte_timeout; until then the connection may make room */
    cmpr_conn_idle(bc, 1);
    cmpr_conn_arm(bc, (uint64_t)ctx->first_byte_timeout);
    cmpr_conn_read(bc, 1);
}

static void
c_refuse(struct cmpr_conn *bc)
{
    struct conn *c = (struct conn *)bc;

    cmpr_httpreq_init(&c->req, &ctx_of(c)->rconf);
    send_status(c, 503, "too many connections");
}

static void
c_data(struct cmpr_conn *bc, const char *p, size_t n)
{
    feed((struct conn *)bc, p, n);
}

static void
c_eof(struct cmpr_conn *bc)
{
    cmpr_conn_close(bc);
}

static void
c_timeout(struct cmpr_conn *bc)
{
    if (bc->busy)
        return;                 /* the core is working: its answer is awaited */
    cmpr_log_debug("http %s: timeout, closing", bc->peer);
    cmpr_conn_close(bc);
}

/* the answer is out: the next request on this connection */
static void
c_drained(struct cmpr_conn *bc)
{
    struct conn *c = (struct conn *)bc;
    struct http_ctx *ctx = ctx_of(c);
    unsigned char *rest;
    size_t n;

    if (!c->answering)
        return;                 /* TLS handshake bytes, 100-continue */
    c->answering = 0;
    if (ctx->srv.stopping) {
        cmpr_conn_close(bc);
        return;
    }
    cmpr_httpreq_next(&c->req);
    cmpr_conn_idle(bc, 1);
    cmpr_conn_arm(bc, (uint64_t)ctx->idle_timeout);
    cmpr_conn_read(bc, 1);
    if (cmpr_buf_len(&c->pending) > 0) {
        if ((rest = cmpr_buf_steal(&c->pending, &n)) == NULL) {
            cmpr_conn_close(bc);
            return;
        }
        feed(c, (const char *)rest, n);
        free(rest);
    }
}

static void
c_release(struct cmpr_conn *bc)
{
    struct conn *c = (struct conn *)bc;

    cmpr_httpreq_free(&c->req);
    cmpr_buf_free(&c->pending);
}

static const struct cmpr_conn_ops conn_ops = {
    c_opened, c_refuse, c_data, c_eof, c_timeout, c_drained, c_release
};

/* ---------------- the transport ---------------- */

static const char *const directives[] = {
    "address", "max_header", "max_body", "first_byte_timeout", "header_timeout", "body_timeout",
    "idle_timeout", "max_connections", "max_connections_per_address", "paths", "tls_cert", "tls_key", "tls_client_ca", "tls_require_client",
    "tls_min_version", "tls_ciphers", NULL
};

/* "/path[:label], ..." of [listen http] paths */
static int
add_aliases(struct http_ctx *ctx, const struct cmpr_conf_group *g, const char *v, char **err_r)
{
    char *copy = strdup(v), *save = NULL, *tok;

    if (copy == NULL)
        return CMPR_ERR_ALLOC;
    for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *t = tok, *colon, *e;
        struct cmpr_http_alias *a;

        while (isspace((unsigned char)*t))
            t++;
        e = t + strlen(t);
        while (e > t && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (*t != '/') {
            *err_r = cmpr_conf_group_error(g, "paths", "each path starts with '/': '%s'", t);
            free(copy);
            return CMPR_ERR_CONFIG;
        }
        colon = strchr(t, ':');
        if (colon != NULL)
            *colon++ = '\0';
        while (strlen(t) > 1 && t[strlen(t) - 1] == '/')
            t[strlen(t) - 1] = '\0';
        if (cmpr_array_grow(&ctx->aliases, &ctx->cap_aliases, ctx->n_aliases + 1, sizeof(*ctx->aliases),
                            MAX_ALIASES) != CMPR_OK) {
            *err_r = cmpr_conf_group_error(g, "paths", "at most %d paths", MAX_ALIASES);
            free(copy);
            return CMPR_ERR_CONFIG;
        }
        a = &ctx->aliases[ctx->n_aliases++];
        a->path = strdup(t);
        a->label = colon != NULL && *colon != '\0' ? strdup(colon) : NULL;
        if (a->path == NULL) {
            free(copy);
            return CMPR_ERR_ALLOC;
        }
    }
    free(copy);
    return CMPR_OK;
}

static int
configure_tls(struct http_ctx *ctx, const struct cmpr_conf_group *g, char **err_r)
{
    static const char *const versions[] = { "1.2", "1.3", NULL };
    char *cert = cmpr_conf_group_path(g, "tls_cert", NULL), *key = cmpr_conf_group_path(g, "tls_key", NULL);
    char *ca = cmpr_conf_group_path(g, "tls_client_ca", NULL), *terr = NULL;
    int require = 0, minv = 0, r;

    if (cert == NULL || key == NULL) {
        *err_r = cmpr_conf_group_error(g, cert == NULL ? "tls_key" : "tls_cert",
                                       "tls_cert and tls_key go together");
        r = CMPR_ERR_CONFIG;
    } else if ((r = cmpr_conf_group_bool(g, "tls_require_client", 0, &require, err_r)) == CMPR_OK
               && (r = cmpr_conf_group_choice(g, "tls_min_version", versions, 0, &minv, err_r)) == CMPR_OK
               && cmpr_tls_server_new(cert, key, ca, require, minv == 1, cmpr_conf_group_get(g, "tls_ciphers"),
                                      &ctx->srv.tls, &terr) != 0) {
        *err_r = cmpr_conf_group_error(g, strstr(terr, "cipher") != NULL ? "tls_ciphers" : "tls_cert", "%s", terr);
        free(terr);
        r = CMPR_ERR_CONFIG;
    }
    free(cert);
    free(key);
    free(ca);
    return r;
}

static void
defaults(struct http_ctx *ctx)
{
    snprintf(ctx->host, sizeof(ctx->host), "127.0.0.1");
    ctx->port = ctx->admin ? 9101 : 8080;
    ctx->rconf.max_header = 16 * 1024;
    ctx->rconf.max_body = CMPR_MAX_MSG_SIZE;
    ctx->first_byte_timeout = 10000;
    ctx->header_timeout = 10000;
    ctx->body_timeout = 30000;
    ctx->idle_timeout = 60000;
    ctx->srv.max_conns = 1024;
    ctx->srv.max_per_addr = CMPR_CONN_PER_ADDR_DEFAULT;
}

static int
http_configure(void *vctx, const char *name, const struct cmpr_conf_group *g, char **err_r)
{
    struct http_ctx *ctx = vctx;
    const char *v;
    long max_header, max_body;
    int r;

    ctx->admin = strcmp(name, "admin") == 0;
    defaults(ctx);
    if (g == NULL)
        return CMPR_OK;
    if ((r = cmpr_conf_group_check(g, directives, err_r)) != CMPR_OK)
        return r;
    if ((v = cmpr_conf_group_get(g, "address")) != NULL
            && cmpr_net_parse_address(v, ctx->host, sizeof(ctx->host), &ctx->port) != 0) {
        *err_r = cmpr_conf_group_error(g, "address", "address must be HOST:PORT, not '%s'", v);
        return CMPR_ERR_CONFIG;
    }
    if ((r = cmpr_conf_group_long(g, "max_header", 16 * 1024, 1024, 1024 * 1024, &max_header, err_r))
            || (r = cmpr_conf_group_long(g, "max_body", CMPR_MAX_MSG_SIZE, 100 * 1024,
                                         16 * 1024 * 1024, &max_body, err_r))
            || (r = cmpr_conf_group_long(g, "first_byte_timeout", 10, 1, 3600, &ctx->first_byte_timeout,
                                         err_r))
            || (r = cmpr_conf_group_long(g, "header_timeout", 10, 1, 3600, &ctx->header_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "body_timeout", 30, 1, 3600, &ctx->body_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "idle_timeout", 60, 1, 86400, &ctx->idle_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "max_connections", 1024, 1, 100000, &ctx->srv.max_conns, err_r))
            || (r = cmpr_conf_group_long(g, "max_connections_per_address", CMPR_CONN_PER_ADDR_DEFAULT, 0,
                                         100000, &ctx->srv.max_per_addr, err_r)))
        return r;
    ctx->first_byte_timeout *= 1000;
    ctx->rconf.max_header = (size_t)max_header;
    ctx->rconf.max_body = (size_t)max_body;
    ctx->header_timeout *= 1000;
    ctx->body_timeout *= 1000;
    ctx->idle_timeout *= 1000;
    if ((cmpr_conf_group_get(g, "tls_cert") != NULL || cmpr_conf_group_get(g, "tls_key") != NULL)
            && (r = configure_tls(ctx, g, err_r)) != CMPR_OK)
        return r;
    if ((v = cmpr_conf_group_get(g, "paths")) != NULL && (r = add_aliases(ctx, g, v, err_r)) != CMPR_OK)
        return r;
    return CMPR_OK;
}

static int
http_start(void *vctx, struct cmpr_daemon *d, char **err_r)
{
    struct http_ctx *ctx = vctx;
    int r;

    if (ctx->rconf.max_header == 0)
        defaults(ctx);
    ctx->d = d;
    ctx->rconf.admin = ctx->admin;
    ctx->rconf.aliases = ctx->aliases;
    ctx->rconf.n_aliases = ctx->n_aliases;
    ctx->srv.ops = &conn_ops;
    ctx->srv.conn_size = sizeof(struct conn);
    ctx->srv.name = ctx->admin ? "admin" : "http";
    if ((r = cmpr_conn_listen(&ctx->srv, d->loop, ctx->host, &ctx->port, err_r)) != CMPR_OK)
        return r;
    {
        /* every path it answers, the configured ones (paths =) with their labels */
        char where[1024];
        size_t o = (size_t)snprintf(where, sizeof(where), "%s",
                                    ctx->admin ? "/healthz, /metrics" : "/.well-known/cmp, /.well-known/cmp/p/LABEL");

        for (size_t i = 0; !ctx->admin && i < ctx->n_aliases && o < sizeof(where); i++)
            o += (size_t)snprintf(where + o, sizeof(where) - o, ", %s%s%s%s", ctx->aliases[i].path,
                                  ctx->aliases[i].label != NULL ? " [label " : "",
                                  ctx->aliases[i].label != NULL ? ctx->aliases[i].label : "",
                                  ctx->aliases[i].label != NULL ? "]" : "");
        cmpr_log_info("%s: listening on %s:%d (%s)", ctx->admin ? "admin" : ctx->srv.tls ? "https" : "http",
                      ctx->host, ctx->port, where);
    }
    return CMPR_OK;
}

static void
http_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    cmpr_conn_stop(&((struct http_ctx *)vctx)->srv, done, arg);
}

static void
http_free(void *vctx)
{
    struct http_ctx *ctx = vctx;

    for (size_t i = 0; i < ctx->n_aliases; i++) {
        free(ctx->aliases[i].path);
        free(ctx->aliases[i].label);
    }
    free(ctx->aliases);
    cmpr_tls_server_free(ctx->srv.tls);
}

static size_t
http_in_flight(void *vctx)
{
    return ((struct http_ctx *)vctx)->in_flight;
}

/* the port actually bound (for --http 127.0.0.1:0 in tests) */
static int
http_port(void *vctx)
{
    return ((struct http_ctx *)vctx)->port;
}

/* --http / --admin ADDR:PORT on the command line win over the file (NULL: keep) */
static int
http_set_address(void *vctx, const char *addr)
{
    struct http_ctx *ctx = vctx;

    if (addr == NULL)
        return 0;
    return cmpr_net_parse_address(addr, ctx->host, sizeof(ctx->host), &ctx->port);
}

/* [listen https] is HTTP with TLS; [listen admin] answers /healthz and /metrics */
static const char *const http_names[] = { "http", "https", "admin", NULL };

/* its connections, the listener and its spare */
static long
http_max_fds(void *vctx)
{
    return ((struct http_ctx *)vctx)->srv.max_conns + 2;
}

/* its listener's connections, for metrics */
static void
http_conn_stats(void *vctx, struct cmpr_conn_stats *out)
{
    cmpr_conn_get_stats(&((struct http_ctx *)vctx)->srv, out);
}

const struct cmpr_transport_ops cmpr_http_transport = {
    .name = "http",
    .group_type = "listen",
    .group_names = http_names,
    .ctx_size = sizeof(struct http_ctx),
    .configure = http_configure,
    .start = http_start,
    .stop = http_stop,
    .in_flight = http_in_flight,
    .port = http_port,
    .set_address = http_set_address,
    .free = http_free,
    .max_fds = http_max_fds,
    .conn_stats = http_conn_stats,
    .upstream = &cmpr_http_upstream,
    .push = NULL,
};
