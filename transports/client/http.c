/*
 * CMP over HTTP(S) as a client (RFC 9811): one POST, one answer, on the
 * client side's loop (lib/ioloop.c); TLS through memory BIOs. An exchange
 * never blocks: it is a small state machine driven by the connection's
 * events and one timer, and reports its end once through done(). A
 * connection stays open after a keep-alive answer, kept for the next
 * exchange of the same transaction (tag): some servers (OpenSSL's mock
 * server) keep a transaction's state with its connection.
 */
#include "transports/client/client.h"
#include "transports/client/xchg.h"
#include "transports/lib/aconn.h"
#include "transports/lib/ioloop.h"
#include "transports/lib/net.h"
#include "codec/der.h"
#include "codec/httpmsg.h"
#include "core/config.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* a route's (or the command line's) settings */
struct http_set {
    char host[256], path[2048];
    int port, tls;
    int keep_alive;                     /* 0: a new connection for every message */
    char *tls_ca, *tls_cert, *tls_key;
};

/* one exchange */
struct hx {
    struct cmpr_xchg x;                 /* first */
    char key[400];                      /* what a kept connection serves */
    int tls, reused, retried, up, keep_alive;
    char *tls_ca, *tls_cert, *tls_key;
    struct cmpr_httprsp rsp;
    int *status_out;                    /* cmprouter send: the HTTP status */
};

static const char *const directives[] = { "tls_ca", "tls_cert", "tls_key", "keep_alive", NULL };

static int
parse_url(const char *url, struct http_set *s)
{
    const char *p;

    if (strncmp(url, "https://", 8) == 0) {
        s->tls = 1;
        p = url + 8;
        s->port = 443;
    } else if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
        s->port = 80;
    } else {
        return -1;
    }
    if ((p = cmpr_net_parse_authority(p, s->host, sizeof(s->host), &s->port)) == NULL || strlen(p) >= sizeof(s->path))
        return -1;
    snprintf(s->path, sizeof(s->path), "%s", *p == '/' ? p : "/");
    return 0;
}

static void
release(void *ctx, void *set)
{
    struct http_set *s = set;

    (void)ctx;
    free(s->tls_ca);
    free(s->tls_cert);
    free(s->tls_key);
    free(s);
}

static int
configure(void *ctx, const struct cmpr_conf_group *g, const char *uri, long timeout_ms, void **set_r, char **err_r)
{
    struct http_set *s = calloc(1, sizeof(*s));

    (void)ctx;
    (void)timeout_ms;
    *set_r = NULL;
    if (s == NULL)
        return CMPR_ERR_ALLOC;
    if (parse_url(uri, s) != 0) {
        *err_r = cmpr_conf_group_error(g, "upstream", "'%s' is not an http[s]://host[:port]/path URL", uri);
        release(NULL, s);
        return CMPR_ERR_CONFIG;
    }
    if (cmpr_conf_group_bool(g, "keep_alive", 1, &s->keep_alive, err_r) != CMPR_OK) {
        release(NULL, s);
        return CMPR_ERR_CONFIG;
    }
    s->tls_ca = cmpr_conf_group_path(g, "tls_ca", NULL);
    s->tls_cert = cmpr_conf_group_path(g, "tls_cert", NULL);
    s->tls_key = cmpr_conf_group_path(g, "tls_key", NULL);
    if ((s->tls_cert == NULL) != (s->tls_key == NULL)) {
        *err_r = cmpr_conf_group_error(g, s->tls_cert == NULL ? "tls_key" : "tls_cert", "tls_cert and tls_key go together");
        release(NULL, s);
        return CMPR_ERR_CONFIG;
    }
    *set_r = s;
    return CMPR_OK;
}

/* ---------------- one exchange ---------------- */

static void
hx_free(struct cmpr_xchg *xc)
{
    struct hx *x = (struct hx *)xc;

    cmpr_httprsp_free(&x->rsp);
    free(x->tls_ca);
    free(x->tls_cert);
    free(x->tls_key);
    free(x);
}

/* the end: a kept-alive connection waits for the transaction's next exchange */
static void
hx_drop(struct cmpr_xchg *xc, int result)
{
    struct hx *x = (struct hx *)xc;

    if (x->x.a != NULL && result == CMPR_OK && x->keep_alive && x->rsp.keep_alive && cmpr_aconn_is_up(x->x.a)) {
        cmpr_xchg_keep(x->x.l, x->key, x->x.a);
        x->x.a = NULL;
    }
}

static void
answered(struct hx *x)
{
    char why[300];
    unsigned char *body;
    size_t len;

    if (x->status_out != NULL)
        *x->status_out = cmpr_httprsp_status(&x->rsp);
    if (!cmpr_httprsp_is_cmp(&x->rsp)) {
        /* RFC 9483 6.1: an unexpected HTTP status is a failure of the upstream */
        snprintf(why, sizeof(why), "HTTP %d without a CMP answer", cmpr_httprsp_status(&x->rsp));
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, why);
        return;
    }
    if ((body = cmpr_buf_steal(&x->rsp.body, &len)) == NULL) {
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, "out of memory");
        return;
    }
    if (cmpr_client_check_der(body, len, why, sizeof(why)) != 0) {
        free(body);
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, why);
        return;
    }
    cmpr_xchg_finish(&x->x, CMPR_OK, body, len, NULL);
}

static void x_connected(struct cmpr_aconn *a, void *arg);
static void x_data(struct cmpr_aconn *a, void *arg, const char *p, size_t n);
static void x_ended(struct cmpr_aconn *a, void *arg, int err, const char *why);
static const struct cmpr_aconn_ops x_ops = { x_connected, x_data, x_ended };

static void
x_connected(struct cmpr_aconn *a, void *arg)
{
    struct hx *x = arg;

    x->up = 1;
    if (cmpr_aconn_write(a, x->x.req, x->x.req_len) != CMPR_OK) {
        cmpr_xchg_finish(&x->x, CMPR_ERR_UNREACHABLE, NULL, 0, "cannot send the request");
        return;
    }
    x->x.sent = 1;
}

static void
x_data(struct cmpr_aconn *a, void *arg, const char *p, size_t n)
{
    struct hx *x = arg;
    const char *why;

    (void)a;
    if (cmpr_httprsp_feed(&x->rsp, p, n, 0, &why) != 0) {
        char w[300];

        snprintf(w, sizeof(w), "%s:%d: %s", x->x.host, x->x.port, why);
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, w);
    } else if (x->rsp.done) {
        answered(x);
    }
}

static void connect_fresh(struct hx *x);

static void
x_ended(struct cmpr_aconn *a, void *arg, int err, const char *why)
{
    struct hx *x = arg;
    const char *w2;
    char w[400];

    (void)a;
    x->x.a = NULL;
    /* a kept-alive connection the server had closed meanwhile: one retry */
    if (x->reused && !x->retried && cmpr_buf_len(&x->rsp.body) == 0 && x->rsp.parser.nread == 0) {
        x->retried = 1;
        connect_fresh(x);
        return;
    }
    if (err == CMPR_ERR_IO && cmpr_httprsp_feed(&x->rsp, NULL, 0, 1, &w2) == 0 && x->rsp.done) {
        answered(x);            /* an answer delimited by the connection's end */
        return;
    }
    snprintf(w, sizeof(w), "%s", err == CMPR_ERR_UNREACHABLE ? why : "the connection ended before the answer");
    cmpr_xchg_finish(&x->x, x->up ? CMPR_ERR_PEER : CMPR_ERR_UNREACHABLE, NULL, 0, w);
}

static void
connect_fresh(struct hx *x)
{
    struct cmpr_aconn_tls tls = { x->tls_ca, x->tls_cert, x->tls_key };

    cmpr_httprsp_free(&x->rsp);
    cmpr_httprsp_init(&x->rsp, CMPR_MAX_MSG_SIZE);
    x->reused = x->up = x->x.sent = 0;
    if ((x->x.a = cmpr_aconn_open(cmpr_ioloop_loop(x->x.l), x->x.host, x->x.port, x->tls ? &tls : NULL, &x_ops, x))
            == NULL)
        cmpr_xchg_finish(&x->x, CMPR_ERR_UNREACHABLE, NULL, 0, "out of memory");
}

/* on the loop thread: a kept connection of the transaction, or a new one */
static void
hx_go(struct cmpr_xchg *xc)
{
    struct hx *x = (struct hx *)xc;

    if ((x->x.a = cmpr_xchg_take_idle(x->x.l, x->key)) != NULL) {
        x->reused = x->up = 1;
        cmpr_aconn_set_owner(x->x.a, &x_ops, x);
        x_connected(x->x.a, x);
        return;
    }
    connect_fresh(x);
}

static const struct cmpr_xchg_ops hx_ops = { "http-exchange", hx_go, hx_drop, hx_free };

static int
start(void *ctx, void *set, const char *tag, const unsigned char *der, size_t len, long timeout_ms,
      cmpr_upstream_done_fn done, void *arg, int *status_out)
{
    struct cmpr_ioloop *l = ctx;
    struct http_set *s = set;
    struct hx *x = calloc(1, sizeof(*x));
    struct cmpr_buf b;

    if (x == NULL)
        return CMPR_ERR_ALLOC;
    cmpr_buf_init(&b, len + 4096);
    if (cmpr_buf_putf(&b, "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/pkixcmp\r\n"
                      "Content-Length: %zu\r\nConnection: %s\r\nCache-Control: no-cache\r\n\r\n",
                      s->path, s->host, s->port, len, s->keep_alive ? "keep-alive" : "close") != CMPR_OK
            || cmpr_buf_put(&b, der, len) != CMPR_OK || (x->x.req = cmpr_buf_steal(&b, &x->x.req_len)) == NULL) {
        cmpr_buf_free(&b);
        free(x);
        return CMPR_ERR_ALLOC;
    }
    cmpr_xchg_init(&x->x, &hx_ops, l, s->host, s->port, timeout_ms, done, arg);
    x->tls = s->tls;
    x->keep_alive = s->keep_alive;
    x->tls_ca = s->tls_ca != NULL ? strdup(s->tls_ca) : NULL;
    x->tls_cert = s->tls_cert != NULL ? strdup(s->tls_cert) : NULL;
    x->tls_key = s->tls_key != NULL ? strdup(s->tls_key) : NULL;
    snprintf(x->key, sizeof(x->key), "%s://%.250s:%d %.100s", s->tls ? "https" : "http", s->host, s->port,
             tag != NULL ? tag : "");
    x->status_out = status_out;
    cmpr_httprsp_init(&x->rsp, CMPR_MAX_MSG_SIZE);
    if ((s->tls_ca != NULL && x->tls_ca == NULL) || (s->tls_cert != NULL && x->tls_cert == NULL)
            || (s->tls_key != NULL && x->tls_key == NULL)) {
        free(x->x.req);         /* never with other trust than configured */
        hx_free(&x->x);
        return CMPR_ERR_ALLOC;
    }
    return cmpr_xchg_start(&x->x);
}

static int
exchange(void *ctx, void *set, const char *tag, const unsigned char *der, size_t len, long timeout_ms,
         cmpr_upstream_done_fn done, void *arg)
{
    return start(ctx, set, tag, der, len, timeout_ms, done, arg, NULL);
}

struct send_arg {
    struct http_set s;
    const unsigned char *der;
    size_t len;
    long timeout_ms;
    int *status_r;
};

static int
send_start(struct cmpr_ioloop *l, void *arg, struct cmpr_client_wait *w)
{
    struct send_arg *a = arg;

    return start(l, &a->s, NULL, a->der, a->len, a->timeout_ms, cmpr_client_waited, w, a->status_r);
}

int
cmpr_http_send(const char *url, const unsigned char *der, size_t len, long timeout_ms, const char *tls_ca,
               const char *tls_cert, const char *tls_key, int *status_r, unsigned char **ans_r, size_t *len_r,
               char *err, size_t errlen)
{
    struct send_arg a;

    memset(&a, 0, sizeof(a));
    *ans_r = NULL;
    *len_r = 0;
    if (parse_url(url, &a.s) != 0) {
        snprintf(err, errlen, "not an http:// or https:// URL: %s", url);
        return CMPR_ERR_INVALID_ARG;
    }
    a.s.keep_alive = 1;
    a.s.tls_ca = (char *)tls_ca;
    a.s.tls_cert = (char *)tls_cert;
    a.s.tls_key = (char *)tls_key;
    a.der = der;
    a.len = len;
    a.timeout_ms = timeout_ms;
    a.status_r = status_r;
    return cmpr_client_run(send_start, &a, ans_r, len_r, err, errlen);
}

static const char *const schemes[] = { "http", "https", NULL };

const struct cmpr_upstream_ops cmpr_http_upstream = {
    .schemes = schemes,
    .directives = directives,
    .configure = configure,
    .release = release,
    .exchange = exchange,
};

/* The skeleton only: one definite-length DER SEQUENCE within the cap whose
 * parts nest and fill their parents. Whoever takes the answer decodes it
 * whole (and says so when it is no PKIMessage): decoding it here too cost
 * as much again (certificates in it are slow to parse). */
int
cmpr_client_check_der(const unsigned char *rsp, size_t len, char *err, size_t errlen)
{
    struct cmpr_der_err e = { 0, "" };
    struct cmpr_der_tlv t;
    const char *what = "";

    if (len == 0 || len > CMPR_MAX_MSG_SIZE) {
        snprintf(err, errlen, "the answer is not a CMP message: %s", len == 0 ? "empty" : "too large");
        return -1;
    }
    if (cmpr_der_read(rsp, len, &t, &what) != CMPR_OK || t.cls != 0 || !t.constructed || t.tag != 16) {
        snprintf(err, errlen, "the answer is not a CMP message: %s", what[0] ? what : "not a DER SEQUENCE");
        return -1;
    }
    if (cmpr_der_check(rsp, len, CMPR_MAX_DER_DEPTH, &e) != CMPR_OK) {
        snprintf(err, errlen, "the answer is not a CMP message: offset %zu: expected %s", e.offset, e.what);
        return -1;
    }
    return 0;
}
