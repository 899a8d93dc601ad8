/*
 * CMP over TCP as a client (TCP-Message version 10 or RFC 2510 framing,
 * cmp-wire.md 1): pkiReq out; pkiRep (type 5, or type 0 as cryptlib sends
 * it) back, or pollRep followed by pollReq after the server's check-back
 * time (on the same connection, or a new one when the server closed it).
 * finRep and errorMsgRep end the exchange without a CMP answer (errorMsgRep
 * is unauthenticated: only its text is kept). One deadline for all of it;
 * runs on the client side's loop, never blocking.
 */
#include "transports/client/client.h"
#include "transports/client/xchg.h"
#include "transports/lib/aconn.h"
#include "transports/lib/ioloop.h"
#include "transports/lib/net.h"
#include "codec/tcpframe.h"
#include "core/config.h"
#include "base/err.h"
#include "base/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_POLLS 20
#define MAX_RECONNECTS 3

struct tcp_set {
    char host[256];
    int port, version;
};

/* one exchange; x.wait times the check-back and the reconnections */
struct tx {
    struct cmpr_xchg x;                 /* first */
    int version;
    unsigned char small[4];             /* a pollReq's reference */
    const unsigned char *value;
    size_t value_len;
    unsigned type;
    int polls, reconnects, got_bytes, waiting;
    int keep;                           /* the answer came without the close flag */
    int reused;                         /* on a kept connection (closed meanwhile: reconnect at once) */
    char key[400];                      /* what a kept connection serves */
    struct cmpr_tcp_parser p;
    int finrep_ok;                      /* cmprouter send: finRep ends it without an answer */
};
static const char *const directives[] = { "tcp_framing", NULL };

static int
parse_url(const char *url, struct tcp_set *s)
{
    const char *rest;

    if (strncmp(url, "tcp://", 6) != 0)
        return -1;
    s->port = 829;
    rest = cmpr_net_parse_authority(url + 6, s->host, sizeof(s->host), &s->port);
    /* nothing but an optional trailing slash after the authority */
    return rest != NULL && (*rest == '\0' || strcmp(rest, "/") == 0) ? 0 : -1;
}

static void
release(void *ctx, void *set)
{
    (void)ctx;
    free(set);
}

static int
configure(void *ctx, const struct cmpr_conf_group *g, const char *uri, long timeout_ms, void **set_r, char **err_r)
{
    static const char *const framings[] = { "10", "2510", NULL };
    struct tcp_set *s = calloc(1, sizeof(*s));
    int f = 0, r;

    (void)ctx;
    (void)timeout_ms;
    *set_r = NULL;
    if (s == NULL)
        return CMPR_ERR_ALLOC;
    if (parse_url(uri, s) != 0) {
        *err_r = cmpr_conf_group_error(g, "upstream", "'%s' is not a tcp://host[:port] URL", uri);
        free(s);
        return CMPR_ERR_CONFIG;
    }
    if ((r = cmpr_conf_group_choice(g, "tcp_framing", framings, 0, &f, err_r)) != CMPR_OK) {
        free(s);
        return r;
    }
    s->version = f == 1 ? CMPR_TCP_V2510 : CMPR_TCP_VERSION;
    *set_r = s;
    return CMPR_OK;
}

/* ---------------- one exchange ---------------- */

static void
tx_free(struct cmpr_xchg *xc)
{
    struct tx *x = (struct tx *)xc;

    cmpr_tcp_parser_free(&x->p);
    free(x);
}

static void t_connected(struct cmpr_aconn *a, void *arg);
static void t_data(struct cmpr_aconn *a, void *arg, const char *p, size_t n);
static void t_ended(struct cmpr_aconn *a, void *arg, int err, const char *why);
static const struct cmpr_aconn_ops t_ops = { t_connected, t_data, t_ended };

static void
connect_now(struct tx *x)
{
    cmpr_tcp_parser_free(&x->p);
    cmpr_tcp_parser_init(&x->p, CMPR_MAX_MSG_SIZE);
    x->got_bytes = 0;
    if ((x->x.a = cmpr_aconn_open(cmpr_ioloop_loop(x->x.l), x->x.host, x->x.port, NULL, &t_ops, x)) == NULL)
        cmpr_xchg_finish(&x->x, CMPR_ERR_UNREACHABLE, NULL, 0, "out of memory");
}

/* sends the current request (pkiReq or pollReq) */
static void
send_now(struct tx *x)
{
    unsigned char hdr[CMPR_TCP_HDR10];
    size_t h = cmpr_tcp_header(x->version, 0, x->type, x->value_len, hdr);

    if (x->x.a == NULL || !cmpr_aconn_is_up(x->x.a)) {
        if (x->x.a == NULL)
            connect_now(x);
        return;                 /* t_connected sends */
    }
    if (cmpr_aconn_write(x->x.a, hdr, h) != CMPR_OK || cmpr_aconn_write(x->x.a, x->value, x->value_len) != CMPR_OK)
        cmpr_xchg_finish(&x->x, CMPR_ERR_UNREACHABLE, NULL, 0, "cannot send the request");
    else
        x->x.sent = 1;
}

static void
t_connected(struct cmpr_aconn *a, void *arg)
{
    (void)a;
    send_now(arg);
}

static void
wait_done(uv_timer_t *t)
{
    struct tx *x = t->data;

    x->waiting = 0;
    send_now(x);
}

/* pollRep (tp06 5.4): wait the check-back time, then pollReq */
static void
poll_later(struct tx *x, const struct cmpr_tcp_frame *f)
{
    uint32_t ref = cmpr_tcp_u32(f->value), t = cmpr_tcp_u32(f->value + 4);
    long wait_ms;
    char why[200];

    if (++x->polls > MAX_POLLS) {
        snprintf(why, sizeof(why), "no answer after %d pollReq rounds", MAX_POLLS);
        cmpr_xchg_finish(&x->x, CMPR_ERR_TIMEOUT, NULL, 0, why);
        return;
    }
    /* v10: relative seconds; RFC 2510: absolute time (seconds since 1970) */
    if (x->version == CMPR_TCP_V2510) {
        long long rel = (long long)t - (long long)time(NULL);

        wait_ms = rel > 0 ? (long)rel * 1000 : 0;
    } else {
        wait_ms = (long)t * 1000;
    }
    if (wait_ms < 100)
        wait_ms = 100 * x->polls;       /* a server saying "now" gets backoff */
    if (uv_now(cmpr_ioloop_loop(x->x.l)) + (uint64_t)wait_ms >= x->x.deadline) {
        snprintf(why, sizeof(why), "the server asks to poll again in %ld s, after the timeout", wait_ms / 1000);
        cmpr_xchg_finish(&x->x, CMPR_ERR_TIMEOUT, NULL, 0, why);
        return;
    }
    if ((f->flags & CMPR_TCP_FLAG_CLOSE) && x->x.a != NULL) {
        cmpr_aconn_close(x->x.a);
        x->x.a = NULL;
    }
    /* pollReq: the value is the reference alone */
    x->small[0] = (unsigned char)(ref >> 24);
    x->small[1] = (unsigned char)(ref >> 16);
    x->small[2] = (unsigned char)(ref >> 8);
    x->small[3] = (unsigned char)ref;
    x->value = x->small;
    x->value_len = 4;
    x->type = CMPR_TCP_POLLREQ;
    x->reconnects = 0;
    x->got_bytes = 0;           /* the next answer is a new one */
    x->waiting = 1;
    uv_timer_start(&x->x.wait, wait_done, (uint64_t)wait_ms, 0);
}

static void
frame(struct tx *x, const struct cmpr_tcp_frame *f)
{
    char why[300];
    unsigned char *ans;

    if (f->version != x->version) {
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, "the answer is in another framing than the request");
    } else if (f->type == CMPR_TCP_PKIREP || f->type == CMPR_TCP_PKIREQ) {
        /* type 5 per the drafts and EJBCA; cryptlib answers with type 0 */
        if (f->value_len == 0 || (ans = malloc(f->value_len)) == NULL) {
            cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, "an empty answer");
            return;
        }
        memcpy(ans, f->value, f->value_len);
        x->keep = !(f->flags & CMPR_TCP_FLAG_CLOSE);
        if (cmpr_client_check_der(ans, f->value_len, why, sizeof(why)) != 0) {
            free(ans);
            cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, why);
            return;
        }
        cmpr_xchg_finish(&x->x, CMPR_OK, ans, f->value_len, NULL);
    } else if (f->type == CMPR_TCP_FINREP) {
        /* no CMP answer applies (e.g. EJBCA after pkiConf) */
        if (x->finrep_ok)
            cmpr_xchg_finish(&x->x, CMPR_OK, NULL, 0, "finRep (no CMP answer)");
        else
            cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, "the server sent finRep, no CMP answer");
    } else if (f->type == CMPR_TCP_ERRORMSGREP) {
        cmpr_tcp_describe_error(f, why, sizeof(why));
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, why);
    } else if (f->type == CMPR_TCP_POLLREP && f->value_len >= 8) {
        poll_later(x, f);
    } else {
        snprintf(why, sizeof(why), "unexpected answer type %u (%s)", f->type, cmpr_tcp_type_name(f->version, f->type));
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, why);
    }
}

static void
t_data(struct cmpr_aconn *a, void *arg, const char *p, size_t n)
{
    struct tx *x = arg;
    struct cmpr_tcp_frame f;

    (void)a;
    x->got_bytes = 1;
    if (cmpr_tcp_feed(&x->p, p, n) != 0) {
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, "the answer exceeds the size limit");
        return;
    }
    switch (cmpr_tcp_next(&x->p, &f)) {
    case CMPR_TCP_FRAME:
        frame(x, &f);
        return;
    case CMPR_TCP_NEED_MORE:
        return;
    case CMPR_TCP_E_TOO_BIG:
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, "the answer exceeds the size limit");
        return;
    default:
        cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, "an answer frame in an unknown version or with a bad length");
        return;
    }
}

static void
t_ended(struct cmpr_aconn *a, void *arg, int err, const char *why)
{
    struct tx *x = arg;

    (void)a;
    x->x.a = NULL;
    if (x->waiting)
        return;                 /* closed between pollRep and pollReq: reconnect then */
    if (err == CMPR_ERR_UNREACHABLE) {
        cmpr_xchg_finish(&x->x, CMPR_ERR_UNREACHABLE, NULL, 0, why);
        return;
    }
    /* closed before any answer byte (tp06 5: the server may drop an idle
     * connection, RFC 2510 servers do after pollRep): try again a few
     * times, 200, 400, 800 ms later */
    if (x->reused && !x->got_bytes) {
        x->reused = 0;          /* the server had closed the kept connection */
        x->x.sent = 0;
        connect_now(x);
        return;
    }
    if (!x->got_bytes && ++x->reconnects <= MAX_RECONNECTS) {
        x->waiting = 1;
        uv_timer_start(&x->x.wait, wait_done, 200u << (x->reconnects - 1), 0);
        return;
    }
    cmpr_xchg_finish(&x->x, CMPR_ERR_PEER, NULL, 0, x->got_bytes ? "the connection ended inside the answer"
                                                   : "the server closed the connection without an answer");
}

/* on the loop thread: a connection kept from the transaction's last
 * exchange (a server that closed it meanwhile is reconnected to: t_ended),
 * or a new one */
static void
tx_go(struct cmpr_xchg *xc)
{
    struct tx *x = (struct tx *)xc;

    if ((x->x.a = cmpr_xchg_take_idle(x->x.l, x->key)) != NULL) {
        x->reused = 1;
        cmpr_aconn_set_owner(x->x.a, &t_ops, x);
        send_now(x);
        return;
    }
    connect_now(x);
}

/* the end: a connection the server left open waits for the next exchange */
static void
tx_drop(struct cmpr_xchg *xc, int result)
{
    struct tx *x = (struct tx *)xc;

    if (x->x.a != NULL && result == CMPR_OK && x->keep && cmpr_aconn_is_up(x->x.a)) {
        cmpr_xchg_keep(x->x.l, x->key, x->x.a);
        x->x.a = NULL;
    }
}

static const struct cmpr_xchg_ops tx_ops = { "tcp-exchange", tx_go, tx_drop, tx_free };

static int
start(void *ctx, const struct tcp_set *s, const char *tag, const unsigned char *der, size_t len, long timeout_ms,
      cmpr_upstream_done_fn done, void *arg, int finrep_ok)
{
    struct tx *x = calloc(1, sizeof(*x));

    if (x == NULL || (x->x.req = malloc(len > 0 ? len : 1)) == NULL) {
        free(x);
        return CMPR_ERR_ALLOC;
    }
    memcpy(x->x.req, der, len);
    x->x.req_len = len;
    x->value = x->x.req;
    x->value_len = len;
    x->type = CMPR_TCP_PKIREQ;
    cmpr_xchg_init(&x->x, &tx_ops, ctx, s->host, s->port, timeout_ms, done, arg);
    x->version = s->version;
    x->finrep_ok = finrep_ok;
    snprintf(x->key, sizeof(x->key), "tcp://%.250s:%d/%d %.100s", s->host, s->port, s->version,
             tag != NULL ? tag : "");
    cmpr_tcp_parser_init(&x->p, CMPR_MAX_MSG_SIZE);
    return cmpr_xchg_start(&x->x);
}

static int
exchange(void *ctx, void *set, const char *tag, const unsigned char *der, size_t len, long timeout_ms,
         cmpr_upstream_done_fn done, void *arg)
{
    return start(ctx, set, tag, der, len, timeout_ms, done, arg, 0);
}

struct send_arg {
    struct tcp_set s;
    const unsigned char *der;
    size_t len;
    long timeout_ms;
};

static int
send_start(struct cmpr_ioloop *l, void *arg, struct cmpr_client_wait *w)
{
    struct send_arg *a = arg;

    return start(l, &a->s, NULL, a->der, a->len, a->timeout_ms, cmpr_client_waited, w, 1);
}

int
cmpr_tcp_send(const char *url, int rfc2510, const unsigned char *der, size_t len, long timeout_ms,
              unsigned char **ans_r, size_t *len_r, char *err, size_t errlen)
{
    struct send_arg a;

    memset(&a, 0, sizeof(a));
    *ans_r = NULL;
    *len_r = 0;
    if (parse_url(url, &a.s) != 0) {
        snprintf(err, errlen, "not a tcp://host[:port] URL: %s", url);
        return CMPR_ERR_INVALID_ARG;
    }
    a.s.version = rfc2510 ? CMPR_TCP_V2510 : CMPR_TCP_VERSION;
    a.der = der;
    a.len = len;
    a.timeout_ms = timeout_ms;
    return cmpr_client_run(send_start, &a, ans_r, len_r, err, errlen);
}

static const char *const schemes[] = { "tcp", NULL };

const struct cmpr_upstream_ops cmpr_tcp_upstream = {
    .schemes = schemes,
    .directives = directives,
    .configure = configure,
    .release = release,
    .exchange = exchange,
};
