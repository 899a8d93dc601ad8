/*
 * CMP over HTTP (RFC 9811, RFC 6712): the server side. libuv moves the bytes,
 * http-parser reads them, every request body becomes one envelope for the
 * core. One request per connection is in the core at a time (pipelining-safe:
 * later requests wait, unread, until the answer is written).
 */
#include "transports/transport.h"
#include "transports/tls.h"
#include "transports/netutil.h"
#include "codec/tcpframe.h"
#include "core/core.h"
#include "core/envelope.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#define CONN_MAGIC 0x48545450u      /* "HTTP" */

struct alias {
    char *path;
    char *label;                    /* NULL: none */
};

struct http_ctx {
    int admin;                      /* [listen admin]: GET /healthz, GET /metrics */
    char host[64];
    int port;
    long max_header, max_body, header_timeout, body_timeout, idle_timeout, max_conns;
    struct alias *aliases;
    size_t n_aliases;
    struct cmpr_tls_server *tls;    /* HTTPS when set */
    struct cmpr_daemon *d;
    uv_tcp_t listener;
    int listening;
    long n_conns;
    size_t in_flight;
    struct conn *conns;
    int stopping;
    void (*stop_done)(void *arg);
    void *stop_arg;
};

struct conn {
    uv_tcp_t tcp;                   /* first: the handle's address is the conn's */
    uv_timer_t timer;
    unsigned magic;
    struct http_ctx *ctx;
    struct conn *next, *prev;
    http_parser parser;
    struct cmpr_reply reply;
    char peer[64];
    int open_handles;
    int closing;                    /* close once the answer (if any) is written */
    int busy;                       /* a request is in the core */
    uint64_t started;
    /* the request being read */
    char url[2048];
    size_t url_len;
    size_t header_bytes;
    char hname[64], hval[256];
    size_t hname_len, hval_len;
    int in_value;
    char content_type[128];
    int expect_continue;
    unsigned char *body;
    size_t body_len, body_cap;
    int reject;                     /* HTTP status to answer instead of the core */
    const char *reject_text;
    int keep_alive, http_minor;
    int poll_framed;                /* application/pkixcmp-poll with a TCP-Message frame */
    int poll_version;               /* its framing: CMPR_TCP_VERSION or CMPR_TCP_V2510 */
    char label[128], operation[32];
    /* bytes read but not parsed while a request is in the core */
    char *pending;
    size_t pending_len;
    struct cmpr_tls_conn *tls;
};

static http_parser_settings settings;

/* ---------------- connection lifetime ---------------- */

static void
conn_free_cb(uv_handle_t *h)
{
    struct conn *c = h->data;

    if (--c->open_handles > 0)
        return;
    c->ctx->n_conns--;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->ctx->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->body);
    free(c->pending);
    cmpr_tls_conn_free(c->tls);
    c->magic = 0;
    if (c->ctx->stopping && c->ctx->n_conns == 0 && !c->ctx->listening && c->ctx->stop_done != NULL) {
        void (*done)(void *) = c->ctx->stop_done;

        c->ctx->stop_done = NULL;
        done(c->ctx->stop_arg);
    }
    free(c);
}

static void
conn_close(struct conn *c)
{
    if (c->closing == 2)
        return;
    if (c->busy) {              /* the reply still points at us */
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
    struct conn *c = t->data;

    if (c->busy)
        return;                 /* the core is working: its answer is awaited */
    cmpr_log_debug("http %s: timeout, closing", c->peer);
    conn_close(c);
}

static void
arm(struct conn *c, long ms)
{
    uv_timer_start(&c->timer, timer_cb, (uint64_t)ms, 0);
}

/* ---------------- writing ---------------- */

struct wreq {
    uv_write_t req;
    struct conn *c;
    int close_after;
    int raw;                        /* TLS handshake bytes: no request bookkeeping */
    char *buf;
};

static void feed(struct conn *c, const char *data, size_t len);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void
write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    char *pending;
    size_t pending_len;

    free(w->buf);
    if (w->raw) {
        free(w);
        if (status != 0)
            conn_close(c);
        return;
    }
    if (status != 0 || w->close_after || c->closing || c->ctx->stopping) {
        free(w);
        conn_close(c);
        return;
    }
    free(w);
    /* next request on this connection: parse what already arrived, read on */
    http_parser_pause(&c->parser, 0);
    arm(c, c->ctx->idle_timeout);
    uv_read_start((uv_stream_t *)&c->tcp, cmpr_net_alloc_cb, read_cb);
    pending = c->pending;
    pending_len = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    if (pending != NULL) {
        feed(c, pending, pending_len);
        free(pending);
    }
}

static void
write_raw(struct conn *c, char *buf, size_t len, int raw, int close_after)
{
    struct wreq *w = calloc(1, sizeof(*w));
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);

    if (w == NULL) {
        free(buf);
        conn_close(c);
        return;
    }
    w->c = c;
    w->buf = buf;
    w->raw = raw;
    w->close_after = close_after;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
        free(buf);
        free(w);
        conn_close(c);
    }
}

/* what TLS wants to send now (handshake, alerts) */
static void
tls_flush(struct conn *c)
{
    char *out;
    size_t n = cmpr_tls_take_output(c->tls, &out);

    if (n > 0)
        write_raw(c, out, n, 1, 0);
}

static void
send_buf(struct conn *c, char *buf, size_t len, int close_after)
{
    if (c->tls != NULL) {
        char *out = NULL;
        size_t n = 0;

        if (cmpr_tls_write(c->tls, buf, len) == 0)
            n = cmpr_tls_take_output(c->tls, &out);
        free(buf);
        if (n == 0) {
            conn_close(c);
            return;
        }
        buf = out;
        len = n;
    }
    write_raw(c, buf, len, 0, close_after);
}

static void
send_status(struct conn *c, int status, const char *reason, const char *text, const char *extra)
{
    char *buf = malloc(1024);
    int n;

    if (buf == NULL) {
        conn_close(c);
        return;
    }
    n = snprintf(buf, 1024, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                 "%sConnection: close\r\n\r\n%s\n", status, reason, strlen(text) + 1,
                 extra != NULL ? extra : "", text);
    uv_read_stop((uv_stream_t *)&c->tcp);
    cmpr_log_info("http %s: %d %s: %s", c->peer, status, reason, text);
    send_buf(c, buf, (size_t)n, 1);
}

/* the core's answer (loop thread) */
static void
reply_send(struct cmpr_reply *r, const unsigned char *der, size_t len)
{
    struct conn *c = (struct conn *)((char *)r - offsetof(struct conn, reply));
    char *buf;
    int n;

    c->busy = 0;
    c->ctx->in_flight--;
    c->ctx->d->request_done(c->ctx->d, "http", 1, uv_hrtime() - c->started);
    if (c->closing) {
        conn_close(c);
        return;
    }
    /* RFC 9811 3: the answer, CMP errors included, is 200 application/pkixcmp
     * (the OpenSSL 3.0 client reads a CMP body only on 200) */
    if ((buf = malloc(len + 256 + 7)) == NULL) {
        conn_close(c);
        return;
    }
    n = snprintf(buf, 256, "HTTP/1.%d 200 OK\r\nContent-Type: application/pkixcmp%s\r\n"
                 "Content-Length: %zu\r\nCache-Control: no-cache\r\n%s\r\n", c->http_minor,
                 c->poll_framed ? "-poll" : "", len + (c->poll_framed ? (c->poll_version == CMPR_TCP_V2510 ? CMPR_TCP_HDR2510
                                                                      : CMPR_TCP_HDR10) : 0),
                 c->keep_alive ? (c->http_minor == 0 ? "Connection: keep-alive\r\n" : "")
                               : "Connection: close\r\n");
    if (c->poll_framed) {
        /* pkiRep (v10) / finalMsgRep (RFC 2510), flags 0, in the version
         * the client used (cmp-wire.md 1.5 item 6) */
        unsigned char hdr[CMPR_TCP_HDR10];
        size_t h = cmpr_tcp_header(c->poll_version, 0, CMPR_TCP_PKIREP, len, hdr);

        memcpy(buf + n, hdr, h);
        n += (int)h;
    }
    memcpy(buf + n, der, len);
    send_buf(c, buf, (size_t)n + len, !c->keep_alive);
}

static void
reply_fail(struct cmpr_reply *r, int err)
{
    struct conn *c = (struct conn *)((char *)r - offsetof(struct conn, reply));

    c->busy = 0;
    c->ctx->in_flight--;
    c->ctx->d->request_done(c->ctx->d, "http", 0, uv_hrtime() - c->started);
    if (c->closing) {
        conn_close(c);
        return;
    }
    send_status(c, 500, "Internal Server Error", cmpr_strerror(err), NULL);
}

static const struct cmpr_reply_ops reply_ops = { reply_send, reply_fail };

/* ---------------- routing (RFC 9811 3.4, RFC 9483 6.1) ---------------- */

static int
valid_segment(const char *s, size_t n)
{
    if (n == 0 || n > 100)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return 0;
    return 1;
}

static int
known_operation(const char *s, size_t n)
{
    static const char *const ops[] = { "initialization", "certification", "keyupdate", "pkcs10",
        "p10", "revocation", "getcacerts", "getrootupdate", "getcertreqtemplate", "getcrls",
        "nested", NULL };

    for (const char *const *o = ops; *o != NULL; o++)
        if (strlen(*o) == n && strncmp(*o, s, n) == 0)
            return 1;
    return 0;
}

/* path -> label/operation; 0 if the path is not ours */
static int
route(struct conn *c)
{
    char path[2048];
    size_t n;
    const char *rest;

    snprintf(path, sizeof(path), "%.*s", (int)c->url_len, c->url);
    path[strcspn(path, "?#")] = '\0';
    /* trailing slashes do not matter (RFC 6712 3.6) */
    n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    c->label[0] = c->operation[0] = '\0';
    for (size_t i = 0; i < c->ctx->n_aliases; i++) {
        const struct alias *a = &c->ctx->aliases[i];

        if (strcmp(path, a->path) == 0) {
            snprintf(c->label, sizeof(c->label), "%s", a->label != NULL ? a->label : "");
            return 1;
        }
    }
    if (strncmp(path, "/.well-known/cmp", 16) != 0 || (path[16] != '\0' && path[16] != '/'))
        return 0;
    rest = path + 16;
    if (*rest == '\0')
        return 1;
    rest++;
    if (strncmp(rest, "p/", 2) == 0) {
        const char *lab = rest + 2, *slash = strchr(lab, '/');
        size_t ln = slash != NULL ? (size_t)(slash - lab) : strlen(lab);

        if (!valid_segment(lab, ln))
            return 0;
        snprintf(c->label, sizeof(c->label), "%.*s", (int)ln, lab);
        if (slash == NULL)
            return 1;
        rest = slash + 1;
    }
    if (!known_operation(rest, strlen(rest)))
        return 0;
    snprintf(c->operation, sizeof(c->operation), "%.31s", rest);
    return 1;
}

/* ---------------- parsing ---------------- */

static void
end_header(struct conn *c)
{
    if (c->hname_len == 0)
        return;
    c->hname[c->hname_len] = '\0';
    c->hval[c->hval_len] = '\0';
    if (strcasecmp(c->hname, "Content-Type") == 0)
        snprintf(c->content_type, sizeof(c->content_type), "%.127s", c->hval);
    else if (strcasecmp(c->hname, "Expect") == 0 && strcasecmp(c->hval, "100-continue") == 0)
        c->expect_continue = 1;
    c->hname_len = c->hval_len = 0;
    c->in_value = 0;
}

static int
on_message_begin(http_parser *p)
{
    struct conn *c = p->data;

    c->url_len = c->header_bytes = c->hname_len = c->hval_len = c->body_len = 0;
    c->in_value = c->expect_continue = c->reject = 0;
    c->content_type[0] = '\0';
    arm(c, c->ctx->header_timeout);
    return 0;
}

static int
reject(struct conn *c, int status, const char *text)
{
    c->reject = status;
    c->reject_text = text;
    return -1;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (c->url_len + len >= sizeof(c->url))
        return reject(c, 414, "the request URI is too long");
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int
count_header(struct conn *c, size_t len)
{
    c->header_bytes += len;
    return c->header_bytes > (size_t)c->ctx->max_header;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (count_header(c, len))
        return reject(c, 431, "request headers too large");
    if (c->in_value)
        end_header(c);
    if (c->hname_len + len < sizeof(c->hname)) {
        memcpy(c->hname + c->hname_len, at, len);
        c->hname_len += len;
    } else {
        c->hname_len = sizeof(c->hname) - 1;    /* a name we do not care about */
    }
    return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (count_header(c, len))
        return reject(c, 431, "request headers too large");
    c->in_value = 1;
    if (c->hval_len + len < sizeof(c->hval)) {
        memcpy(c->hval + c->hval_len, at, len);
        c->hval_len += len;
    }
    return 0;
}

static int
cmp_type(const char *ct)
{
    char t[128];
    size_t n;

    snprintf(t, sizeof(t), "%s", ct);
    t[strcspn(t, ";")] = '\0';
    n = strlen(t);
    while (n > 0 && isspace((unsigned char)t[n - 1]))
        t[--n] = '\0';
    return strcasecmp(t, "application/pkixcmp") == 0 || strcasecmp(t, "application/x-pkixcmp") == 0
        || strcasecmp(t, "application/pkixcmp-poll") == 0;
}

static int
on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;

    end_header(c);
    c->keep_alive = http_should_keep_alive(p);
    c->http_minor = p->http_major == 1 && p->http_minor == 0 ? 0 : 1;
    if (c->ctx->admin) {
        if (p->method != HTTP_GET)
            return reject(c, 405, "the admin listener answers GET");
        return 0;
    }
    if (p->method != HTTP_POST)
        return reject(c, 405, "CMP requests are POSTed");
    if (!route(c))
        return reject(c, 404, "no CMP endpoint here; try /.well-known/cmp");
    if (!cmp_type(c->content_type))
        return reject(c, 415, "Content-Type must be application/pkixcmp");
    if (!(p->flags & F_CHUNKED) && p->content_length > (uint64_t)c->ctx->max_body)
        return reject(c, 413, "the request body is larger than allowed");
    if (c->expect_continue && c->http_minor == 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        char *buf = malloc(sizeof(cont) - 1);

        if (buf != NULL) {
            memcpy(buf, cont, sizeof(cont) - 1);
            send_buf(c, buf, sizeof(cont) - 1, 0);
        }
    }
    arm(c, c->ctx->body_timeout);
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (c->body_len + len > (size_t)c->ctx->max_body)
        return reject(c, 413, "the request body is larger than allowed");
    if (c->body_len + len > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        unsigned char *nb;

        while (cap < c->body_len + len)
            cap *= 2;
        if ((nb = realloc(c->body, cap)) == NULL)
            return reject(c, 503, "out of memory");
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int
admin_answer(struct conn *c)
{
    char path[256], *buf, *body;
    size_t blen = 0;
    int n;

    snprintf(path, sizeof(path), "%.*s", (int)c->url_len, c->url);
    path[strcspn(path, "?#")] = '\0';
    if ((body = malloc(65536)) == NULL)
        return reject(c, 503, "out of memory");
    if (strcmp(path, "/healthz") == 0) {
        blen = (size_t)snprintf(body, 65536, "ok\n");
    } else if (strcmp(path, "/metrics") == 0) {
        blen = c->ctx->d->metrics(c->ctx->d, body, 65536);
    } else {
        free(body);
        return reject(c, 404, "try /healthz or /metrics");
    }
    if ((buf = malloc(blen + 256)) == NULL) {
        free(body);
        return reject(c, 503, "out of memory");
    }
    n = snprintf(buf, 256, "HTTP/1.%d 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n", c->http_minor, blen);
    memcpy(buf + n, body, blen);
    free(body);
    uv_timer_stop(&c->timer);
    uv_read_stop((uv_stream_t *)&c->tcp);
    http_parser_pause(&c->parser, 1);
    send_buf(c, buf, (size_t)n + blen, 1);
    return 0;
}

static int
on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    struct cmpr_envelope *env;
    unsigned char *der;

    if (c->ctx->admin)
        return admin_answer(c);
    if (c->body_len == 0)
        return reject(c, 400, "empty request body");
    /* RFC 9811 4 / RFC 6712 4: legacy clients send application/pkixcmp-poll
     * with the TCP-Message (version 10) header before the DER; answer alike */
    c->poll_framed = 0;
    if (strncasecmp(c->content_type, "application/pkixcmp-poll", 24) == 0
            || strncasecmp(c->content_type, "application/x-pkixcmp-poll", 26) == 0) {
        struct cmpr_tcp_frame f;

        if (cmpr_tcp_parse_one(c->body, c->body_len, &f) == CMPR_TCP_FRAME) {
            /* pkiReq (v10) and msgReq (RFC 2510) share type 0 */
            if (f.type != CMPR_TCP_PKIREQ)
                return reject(c, 400, "only pkiReq TCP-Messages are accepted over HTTP");
            memmove(c->body, f.value, f.value_len);
            c->body_len = f.value_len;
            c->poll_framed = 1;
            c->poll_version = f.version;
        }
    }
    if (c->body_len == 0)
        return reject(c, 400, "empty request body");
    if ((der = malloc(c->body_len)) == NULL)
        return reject(c, 503, "out of memory");
    memcpy(der, c->body, c->body_len);
    {
        char peer[sizeof(c->peer) + 260];

        snprintf(peer, sizeof(peer), "%s%s%s", c->peer,
                 c->tls != NULL && cmpr_tls_peer_subject(c->tls)[0] ? " tls:" : "",
                 c->tls != NULL ? cmpr_tls_peer_subject(c->tls) : "");
        env = cmpr_envelope_new(der, c->body_len, c->tls != NULL ? "https" : "http", peer,
                                c->label, c->operation, &c->reply);
        if (env != NULL && c->tls != NULL)
            snprintf(env->tls_subject, sizeof(env->tls_subject), "%s", cmpr_tls_peer_subject(c->tls));
    }
    if (env == NULL)
        return reject(c, 503, "out of memory");
    c->busy = 1;
    c->started = uv_hrtime();
    c->ctx->in_flight++;
    uv_timer_stop(&c->timer);
    uv_read_stop((uv_stream_t *)&c->tcp);
    /* one request in the core at a time; the rest waits in the parser */
    http_parser_pause(p, 1);
    cmpr_core_submit(c->ctx->d->core(c->ctx->d), c->ctx->d->loop, env);
    return 0;
}

static void
feed(struct conn *c, const char *data, size_t len)
{
    size_t done = http_parser_execute(&c->parser, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

    if (e == HPE_PAUSED) {
        /* keep what belongs to the next request(s), within the body cap */
        size_t rest = len - done;
        char *np;

        if (rest == 0)
            return;
        if (c->pending_len + rest > (size_t)c->ctx->max_body + (size_t)c->ctx->max_header
                || (np = realloc(c->pending, c->pending_len + rest)) == NULL) {
            conn_close(c);
            return;
        }
        memcpy(np + c->pending_len, data + done, rest);
        c->pending = np;
        c->pending_len += rest;
        return;
    }
    if (c->reject != 0) {
        static const char *const reasons[] = { [400 - 400] = "Bad Request", [404 - 400] = "Not Found",
            [405 - 400] = "Method Not Allowed", [413 - 400] = "Payload Too Large",
            [414 - 400] = "URI Too Long", [415 - 400] = "Unsupported Media Type",
            [31] = "Request Header Fields Too Large" };
        int st = c->reject;
        const char *reason = st == 503 ? "Service Unavailable"
            : (st - 400 >= 0 && st - 400 < 32 && reasons[st - 400] != NULL) ? reasons[st - 400] : "Error";

        send_status(c, st, reason, c->reject_text, st == 405 ? "Allow: POST\r\n" : NULL);
        return;
    }
    if (e != HPE_OK) {
        send_status(c, 400, "Bad Request", http_errno_description(e), NULL);
        return;
    }
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;

    if (nread > 0 && c->closing == 0) {
        if (c->tls == NULL) {
            feed(c, buf->base, (size_t)nread);
        } else if (cmpr_tls_feed(c->tls, buf->base, (size_t)nread) != 0) {
            conn_close(c);
        } else {
            char plain[16384];
            long n = 0;

            while (c->closing == 0 && (n = cmpr_tls_read(c->tls, plain, sizeof(plain))) > 0)
                feed(c, plain, (size_t)n);
            if (c->closing == 0)
                tls_flush(c);
            if (n < 0)
                conn_close(c);
        }
    } else if (nread < 0) {
        conn_close(c);
    }
    free(buf->base);
}

/* ---------------- accepting ---------------- */

static void
on_connection(uv_stream_t *server, int status)
{
    struct http_ctx *ctx = server->data;
    struct conn *c;

    if (status != 0 || (c = calloc(1, sizeof(*c))) == NULL)
        return;
    c->magic = CONN_MAGIC;
    c->ctx = ctx;
    c->reply.ops = &reply_ops;
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
        /* over the limit: refuse politely and close */
        send_status(c, 503, "Service Unavailable", "too many connections", NULL);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (ctx->tls != NULL && (c->tls = cmpr_tls_conn_new(ctx->tls)) == NULL) {
        conn_close(c);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    arm(c, ctx->header_timeout);
    uv_read_start((uv_stream_t *)&c->tcp, cmpr_net_alloc_cb, read_cb);
}

/* ---------------- the transport ---------------- */

static const char *const directives[] = {
    "address", "max_header", "max_body", "header_timeout", "body_timeout", "idle_timeout",
    "max_connections", "paths", "tls_cert", "tls_key", "tls_client_ca", "tls_require_client",
    "tls_min_version", NULL
};

static int
http_configure(void *vctx, const struct cmpr_conf_group *g, char **err_r)
{
    struct http_ctx *ctx = vctx;
    const char *v;
    int r;

    snprintf(ctx->host, sizeof(ctx->host), "127.0.0.1");
    ctx->port = ctx->admin ? 9101 : 8080;
    if (g == NULL) {
        ctx->max_header = 16 * 1024;
        ctx->max_body = CMPR_MAX_MSG_SIZE;
        ctx->header_timeout = 10000;
        ctx->body_timeout = 30000;
        ctx->idle_timeout = 60000;
        ctx->max_conns = 1024;
        return CMPR_OK;
    }
    if ((r = cmpr_conf_group_check(g, directives, err_r)) != CMPR_OK)
        return r;
    if ((v = cmpr_conf_group_get(g, "address")) != NULL
            && cmpr_net_parse_address(v, ctx->host, sizeof(ctx->host), &ctx->port) != 0) {
        *err_r = cmpr_conf_group_error(g, "address", "address must be HOST:PORT, not '%s'", v);
        return CMPR_ERR_CONFIG;
    }
    if ((r = cmpr_conf_group_long(g, "max_header", 16 * 1024, 1024, 1024 * 1024, &ctx->max_header, err_r))
            || (r = cmpr_conf_group_long(g, "max_body", CMPR_MAX_MSG_SIZE, 100 * 1024,
                                         16 * 1024 * 1024, &ctx->max_body, err_r))
            || (r = cmpr_conf_group_long(g, "header_timeout", 10, 1, 3600, &ctx->header_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "body_timeout", 30, 1, 3600, &ctx->body_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "idle_timeout", 60, 1, 86400, &ctx->idle_timeout, err_r))
            || (r = cmpr_conf_group_long(g, "max_connections", 1024, 1, 100000, &ctx->max_conns, err_r)))
        return r;
    ctx->header_timeout *= 1000;
    ctx->body_timeout *= 1000;
    ctx->idle_timeout *= 1000;
    if (cmpr_conf_group_get(g, "tls_cert") != NULL || cmpr_conf_group_get(g, "tls_key") != NULL) {
        char *cert = cmpr_conf_group_path(g, "tls_cert", NULL), *key = cmpr_conf_group_path(g, "tls_key", NULL);
        char *ca = cmpr_conf_group_path(g, "tls_client_ca", NULL), *terr = NULL;
        const char *req = cmpr_conf_group_get(g, "tls_require_client");
        const char *minv = cmpr_conf_group_get(g, "tls_min_version");
        int rc;

        if (cert == NULL || key == NULL) {
            *err_r = cmpr_conf_group_error(g, cert == NULL ? "tls_key" : "tls_cert",
                                           "tls_cert and tls_key go together");
            free(cert); free(key); free(ca);
            return CMPR_ERR_CONFIG;
        }
        if (minv != NULL && strcmp(minv, "1.2") != 0 && strcmp(minv, "1.3") != 0) {
            *err_r = cmpr_conf_group_error(g, "tls_min_version", "tls_min_version is 1.2 or 1.3");
            free(cert); free(key); free(ca);
            return CMPR_ERR_CONFIG;
        }
        rc = cmpr_tls_server_new(cert, key, ca, req != NULL && (strcmp(req, "yes") == 0
                                 || strcmp(req, "true") == 0), minv != NULL && strcmp(minv, "1.3") == 0,
                                 &ctx->tls, &terr);
        free(cert); free(key); free(ca);
        if (rc != 0) {
            *err_r = cmpr_conf_group_error(g, "tls_cert", "%s", terr);
            free(terr);
            return CMPR_ERR_CONFIG;
        }
    }
    if ((v = cmpr_conf_group_get(g, "paths")) != NULL) {
        char *copy = strdup(v), *save = NULL, *tok;

        for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            char *t = tok, *colon, *e;
            struct alias *a;

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
            ctx->aliases = realloc(ctx->aliases, (ctx->n_aliases + 1) * sizeof(*ctx->aliases));
            a = &ctx->aliases[ctx->n_aliases++];
            a->path = strdup(t);
            a->label = colon != NULL && *colon != '\0' ? strdup(colon) : NULL;
        }
        free(copy);
    }
    return CMPR_OK;
}

static int
http_start(void *vctx, struct cmpr_daemon *d, char **err_r)
{
    struct http_ctx *ctx = vctx;
    int r;

    if (ctx->max_header == 0)
        http_configure(ctx, NULL, err_r);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    ctx->d = d;
    if ((r = cmpr_net_listen(d->loop, &ctx->listener, ctx->admin ? "admin" : "http", ctx->host,
                             &ctx->port, on_connection, err_r)) != CMPR_OK)
        return r;
    ctx->listener.data = ctx;
    ctx->listening = 1;
    cmpr_log_info("%s: listening on %s:%d%s", ctx->admin ? "admin" : ctx->tls ? "https" : "http",
                  ctx->host, ctx->port,
                  ctx->admin ? " (/healthz, /metrics)" : " (/.well-known/cmp)");
    return CMPR_OK;
}

static void
listener_closed(uv_handle_t *h)
{
    struct http_ctx *ctx = h->data;

    ctx->listening = 0;
    if (ctx->n_conns == 0 && ctx->stop_done != NULL) {
        void (*done)(void *) = ctx->stop_done;

        ctx->stop_done = NULL;
        done(ctx->stop_arg);
    }
}

static void
http_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    struct http_ctx *ctx = vctx;
    struct conn *c, *next;

    ctx->stopping = 1;
    ctx->stop_done = done;
    ctx->stop_arg = arg;
    /* idle connections go now; busy ones after their answer is written */
    for (c = ctx->conns; c != NULL; c = next) {
        next = c->next;
        if (!c->busy)
            conn_close(c);
        else
            c->keep_alive = 0;
    }
    if (ctx->listening)
        uv_close((uv_handle_t *)&ctx->listener, listener_closed);
    else
        listener_closed((uv_handle_t *)&ctx->listener);
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
    cmpr_tls_server_free(ctx->tls);
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

void
cmpr_http_set_admin(void *vctx)
{
    ((struct http_ctx *)vctx)->admin = 1;
}

int
cmpr_http_is_admin(void *vctx)
{
    return ((struct http_ctx *)vctx)->admin;
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

const struct cmpr_transport_ops cmpr_http_transport = {
    .name = "http",
    .group_type = "listen",
    .ctx_size = sizeof(struct http_ctx),
    .configure = http_configure,
    .start = http_start,
    .stop = http_stop,
    .in_flight = http_in_flight,
    .port = http_port,
    .set_address = http_set_address,
    .free = http_free,
};
