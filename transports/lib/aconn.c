/* An outgoing connection (aconn.h). Freed only in the close callback of its
 * handle (libuv handle docs), or at once when it never got one. */
#include "transports/lib/aconn.h"
#include "transports/lib/net.h"
#include "transports/lib/tls.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { A_RESOLVING, A_CONNECTING, A_HANDSHAKE, A_UP, A_CLOSING };

struct cmpr_aconn {
    uv_tcp_t tcp;
    uv_getaddrinfo_t gai;
    uv_connect_t conn;
    uv_loop_t *loop;
    char host[256], port[8];
    int phase;                          /* A_* */
    int tcp_open;                       /* tcp initialised and not closing */
    int tcp_closing;                    /* uv_close of tcp under way */
    int last_err;
    int in_gai;                         /* the resolver still owns us */
    struct cmpr_tls_conn *tls;
    char *ca, *cert, *key;
    int want_tls;
    struct addrinfo *ai, *next_ai;
    const struct cmpr_aconn_ops *ops;
    void *arg;
};

struct wreq {
    uv_write_t req;
    char *buf;
};

static void
release(struct cmpr_aconn *a)
{
    if (a->ai != NULL)
        uv_freeaddrinfo(a->ai);
    cmpr_tls_conn_free(a->tls);
    free(a->ca);
    free(a->cert);
    free(a->key);
    free(a);
}

static void try_connect(struct cmpr_aconn *a, int last_err);

static void
closed_cb(uv_handle_t *h)
{
    struct cmpr_aconn *a = h->data;

    a->tcp_closing = 0;
    if (a->phase == A_CLOSING)
        release(a);
    else
        try_connect(a, a->last_err);    /* the next address, on a fresh handle */
}

static void
close_tcp(struct cmpr_aconn *a)
{
    a->tcp_open = 0;
    a->tcp_closing = 1;
    uv_close((uv_handle_t *)&a->tcp, closed_cb);
}

/* no callback after this */
static void
shut(struct cmpr_aconn *a)
{
    if (a->phase == A_CLOSING)
        return;
    a->phase = A_CLOSING;
    if (a->tcp_open)
        close_tcp(a);
    else if (!a->tcp_closing && !a->in_gai)
        release(a);
}

static void
end(struct cmpr_aconn *a, int err, const char *why)
{
    const struct cmpr_aconn_ops *ops = a->ops;
    void *arg = a->arg;

    if (a->phase == A_CLOSING)
        return;
    shut(a);
    ops->ended(a, arg, err, why);
}

static void
write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;

    free(w->buf);
    free(w);
    (void)status;               /* a failed write shows as a failed read */
}

static int
write_wire(struct cmpr_aconn *a, char *buf, size_t len)
{
    struct wreq *w = calloc(1, sizeof(*w));
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);

    if (w == NULL) {
        free(buf);
        return CMPR_ERR_ALLOC;
    }
    w->buf = buf;
    if (uv_write(&w->req, (uv_stream_t *)&a->tcp, &b, 1, write_cb) != 0) {
        free(buf);
        free(w);
        return CMPR_ERR_IO;
    }
    return CMPR_OK;
}

static int
tls_flush(struct cmpr_aconn *a)
{
    char *out;
    size_t n = cmpr_tls_take_output(a->tls, &out);

    return n > 0 ? write_wire(a, out, n) : CMPR_OK;
}

int
cmpr_aconn_write(struct cmpr_aconn *a, const void *p, size_t n)
{
    char *buf;

    if (a->phase != A_UP)
        return CMPR_ERR_IO;
    if (a->tls != NULL)
        return cmpr_tls_write(a->tls, p, n) == 0 ? tls_flush(a) : CMPR_ERR_IO;
    if ((buf = malloc(n > 0 ? n : 1)) == NULL)
        return CMPR_ERR_ALLOC;
    memcpy(buf, p, n);
    return write_wire(a, buf, n);
}

/* TLS: more of the handshake, or the plaintext after it */
static void
tls_in(struct cmpr_aconn *a, const char *p, size_t n)
{
    char plain[16384];
    long got;

    if (cmpr_tls_feed(a->tls, p, n) != 0) {
        end(a, a->phase == A_UP ? CMPR_ERR_IO : CMPR_ERR_UNREACHABLE, "TLS failure");
        return;
    }
    if (a->phase == A_HANDSHAKE) {
        int h = cmpr_tls_handshake(a->tls);

        if (h < 0 || tls_flush(a) != CMPR_OK) {
            char why[300];
            const char *v = cmpr_tls_verify_error(a->tls);

            snprintf(why, sizeof(why), "TLS handshake with %s failed%s%s", a->host, v != NULL ? ": " : "",
                     v != NULL ? v : "");
            end(a, CMPR_ERR_UNREACHABLE, why);
            return;
        }
        if (h == 0)
            return;
        a->phase = A_UP;
        a->ops->connected(a, a->arg);
        if (a->phase != A_UP)
            return;
    }
    while (a->phase == A_UP && (got = cmpr_tls_read(a->tls, plain, sizeof(plain))) > 0)
        a->ops->data(a, a->arg, plain, (size_t)got);
    if (a->phase == A_UP && got < 0)
        end(a, CMPR_ERR_IO, "closed");
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cmpr_aconn *a = s->data;

    if (nread > 0 && a->phase != A_CLOSING) {
        if (a->tls != NULL)
            tls_in(a, buf->base, (size_t)nread);
        else if (a->phase == A_UP)
            a->ops->data(a, a->arg, buf->base, (size_t)nread);
    } else if (nread < 0) {
        end(a, a->phase == A_HANDSHAKE ? CMPR_ERR_UNREACHABLE : CMPR_ERR_IO,
            nread == UV_EOF ? "closed" : uv_strerror((int)nread));
    }
    free(buf->base);
}

static void
connect_cb(uv_connect_t *req, int status)
{
    struct cmpr_aconn *a = req->data;
    char *terr = NULL;

    if (a->phase == A_CLOSING)
        return;
    if (status != 0) {
        a->last_err = status;
        a->phase = A_RESOLVING;
        close_tcp(a);
        return;
    }
    uv_tcp_nodelay(&a->tcp, 1);
    if (uv_read_start((uv_stream_t *)&a->tcp, cmpr_net_alloc_cb, read_cb) != 0) {
        end(a, CMPR_ERR_UNREACHABLE, "cannot read");
        return;
    }
    if (!a->want_tls) {
        a->phase = A_UP;
        a->ops->connected(a, a->arg);
        return;
    }
    if ((a->tls = cmpr_tls_client_new(a->ca, a->host, a->cert, a->key, &terr)) == NULL) {
        end(a, CMPR_ERR_UNREACHABLE, terr != NULL ? terr : "TLS setup failed");
        free(terr);
        return;
    }
    a->phase = A_HANDSHAKE;
    if (cmpr_tls_handshake(a->tls) < 0 || tls_flush(a) != CMPR_OK)
        end(a, CMPR_ERR_UNREACHABLE, "TLS handshake failed");
}

static void
try_connect(struct cmpr_aconn *a, int last_err)
{
    char why[400];

    if (a->next_ai != NULL) {
        struct addrinfo *ai = a->next_ai;
        int r;

        a->next_ai = ai->ai_next;
        if (uv_tcp_init(a->loop, &a->tcp) == 0) {
            a->tcp.data = a;
            a->tcp_open = 1;
            a->phase = A_CONNECTING;
            a->conn.data = a;
            if ((r = uv_tcp_connect(&a->conn, &a->tcp, ai->ai_addr, connect_cb)) == 0)
                return;
            a->last_err = r;
            a->phase = A_RESOLVING;
            close_tcp(a);       /* then the next address */
            return;
        }
    }
    snprintf(why, sizeof(why), "cannot connect to %s:%s: %s", a->host, a->port,
             last_err != 0 ? uv_strerror(last_err) : "no address");
    end(a, CMPR_ERR_UNREACHABLE, why);
}

static void
gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct cmpr_aconn *a = req->data;
    char why[400];

    a->in_gai = 0;
    if (a->phase == A_CLOSING) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        release(a);
        return;
    }
    if (status != 0) {
        snprintf(why, sizeof(why), "cannot resolve %s: %s", a->host, uv_strerror(status));
        end(a, CMPR_ERR_UNREACHABLE, why);
        return;
    }
    a->ai = a->next_ai = res;
    try_connect(a, 0);
}

struct cmpr_aconn *
cmpr_aconn_open(uv_loop_t *loop, const char *host, int port, const struct cmpr_aconn_tls *tls,
                const struct cmpr_aconn_ops *ops, void *arg)
{
    struct cmpr_aconn *a = calloc(1, sizeof(*a));
    struct addrinfo hints;

    if (a == NULL)
        return NULL;
    a->loop = loop;
    a->ops = ops;
    a->arg = arg;
    snprintf(a->host, sizeof(a->host), "%s", host);
    snprintf(a->port, sizeof(a->port), "%d", port);
    if (tls != NULL) {
        a->want_tls = 1;
        a->ca = tls->ca != NULL ? strdup(tls->ca) : NULL;
        a->cert = tls->cert != NULL ? strdup(tls->cert) : NULL;
        a->key = tls->key != NULL ? strdup(tls->key) : NULL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    a->gai.data = a;
    a->phase = A_RESOLVING;
    a->in_gai = 1;
    if (uv_getaddrinfo(loop, &a->gai, gai_cb, a->host, a->port, &hints) != 0) {
        a->in_gai = 0;
        release(a);
        return NULL;
    }
    return a;
}

void
cmpr_aconn_set_owner(struct cmpr_aconn *a, const struct cmpr_aconn_ops *ops, void *arg)
{
    a->ops = ops;
    a->arg = arg;
}

void
cmpr_aconn_close(struct cmpr_aconn *a)
{
    if (a->phase == A_RESOLVING && a->in_gai)
        uv_cancel((uv_req_t *)&a->gai);
    shut(a);
}

int
cmpr_aconn_is_up(const struct cmpr_aconn *a)
{
    return a->phase == A_UP;
}
