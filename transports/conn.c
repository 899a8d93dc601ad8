/* One server connection's life (conn.h), for the HTTP and TCP media. A
 * connection is freed only in the close callback of its last handle (libuv
 * handle docs); writes hold it open until they complete. */
#include "transports/conn.h"
#include "transports/lib/net.h"
#include "transports/lib/tls.h"
#include "base/err.h"
#include "base/log.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void
finish_stop(struct cmpr_conn_server *srv)
{
    if (srv->stopping && srv->n_conns == 0 && !srv->listening && srv->stop_done != NULL) {
        void (*done)(void *) = srv->stop_done;

        srv->stop_done = NULL;
        done(srv->stop_arg);
    }
}

static void
free_cb(uv_handle_t *h)
{
    struct cmpr_conn *c = h->data;
    struct cmpr_conn_server *srv = c->srv;

    if (--c->open_handles > 0)
        return;
    srv->n_conns--;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->ops->release(c);
    cmpr_tls_conn_free(c->tls);
    free(c);
    finish_stop(srv);
}

static void
close_now(struct cmpr_conn *c)
{
    if (c->closing == 2)
        return;
    c->closing = 2;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, free_cb);
    uv_close((uv_handle_t *)&c->tcp, free_cb);
}

void
cmpr_conn_close(struct cmpr_conn *c)
{
    if (c->closing == 2)
        return;
    if (c->busy || c->writes > 0) {     /* the reply or a write still points at us */
        c->closing = 1;
        return;
    }
    close_now(c);
}

void
cmpr_conn_set_busy(struct cmpr_conn *c, int busy)
{
    c->busy = busy;
    if (!busy && c->closing == 1 && c->writes == 0)
        close_now(c);
}

static void
timer_cb(uv_timer_t *t)
{
    struct cmpr_conn *c = t->data;

    if (c->closing == 0)
        c->srv->ops->timeout(c);
}

void
cmpr_conn_arm(struct cmpr_conn *c, uint64_t ms)
{
    if (c->closing != 2)
        uv_timer_start(&c->timer, timer_cb, ms, 0);
}

void
cmpr_conn_disarm(struct cmpr_conn *c)
{
    uv_timer_stop(&c->timer);
}

void
cmpr_conn_read(struct cmpr_conn *c, int on)
{
    if (c->closing == 2 || c->reading == on)
        return;
    if (on && uv_read_start((uv_stream_t *)&c->tcp, cmpr_net_alloc_cb, read_cb) != 0) {
        cmpr_conn_close(c);
        return;
    }
    if (!on)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = on;
}

const char *
cmpr_conn_tls_subject(struct cmpr_conn *c)
{
    return c->tls != NULL ? cmpr_tls_peer_subject(c->tls) : "";
}

/* ---------------- writing ---------------- */

struct wreq {
    uv_write_t req;
    struct cmpr_conn *c;
    int close_after;
    char *buf;
};

/* one write (or hold) less */
static void
write_done(struct cmpr_conn *c, int failed, int close_after)
{
    c->writes--;
    if (c->closing == 2)
        return;
    if (failed || close_after) {
        c->closing = c->closing > 0 ? c->closing : 1;
        if (c->writes == 0 && !c->busy)
            close_now(c);
        return;
    }
    if (c->closing == 1) {
        if (c->writes == 0 && !c->busy)
            close_now(c);
        return;
    }
    if (c->writes == 0)
        c->srv->ops->drained(c);
}

static void
write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct cmpr_conn *c = w->c;
    int close_after = w->close_after;

    free(w->buf);
    free(w);
    write_done(c, status != 0, close_after);
}

void
cmpr_conn_hold(struct cmpr_conn *c, int delta)
{
    if (delta > 0)
        c->writes++;
    else
        write_done(c, 0, 0);
}

/* ciphertext or plaintext as it goes on the wire */
static void
write_wire(struct cmpr_conn *c, char *buf, size_t len, int close_after)
{
    struct wreq *w;
    uv_buf_t b;

    if (c->closing == 2 || (w = calloc(1, sizeof(*w))) == NULL) {
        free(buf);
        cmpr_conn_close(c);
        return;
    }
    b = uv_buf_init(buf, (unsigned)len);
    w->c = c;
    w->buf = buf;
    w->close_after = close_after;
    c->writes++;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
        c->writes--;
        free(buf);
        free(w);
        close_now(c);
    }
}

/* what TLS wants to send now (handshake, alerts) */
static void
tls_flush(struct cmpr_conn *c)
{
    char *out;
    size_t n = cmpr_tls_take_output(c->tls, &out);

    if (n > 0)
        write_wire(c, out, n, 0);
}

void
cmpr_conn_write(struct cmpr_conn *c, char *buf, size_t len, int close_after)
{
    if (c->tls != NULL) {
        char *out = NULL;
        size_t n = 0;

        if (cmpr_tls_write(c->tls, buf, len) == 0)
            n = cmpr_tls_take_output(c->tls, &out);
        free(buf);
        if (n == 0) {
            cmpr_conn_close(c);
            return;
        }
        buf = out;
        len = n;
    }
    write_wire(c, buf, len, close_after);
}

void
cmpr_conn_write_copy(struct cmpr_conn *c, const void *data, size_t len, int close_after)
{
    char *buf = malloc(len > 0 ? len : 1);

    if (buf == NULL) {
        cmpr_conn_close(c);
        return;
    }
    memcpy(buf, data, len);
    cmpr_conn_write(c, buf, len, close_after);
}

/* ---------------- reading ---------------- */

/* Acknowledge what came at once. A client that writes its HTTP header and
 * its body in two calls (OpenSSL's) holds the body back (Nagle) until the
 * header is acknowledged, and a delayed ACK would make it wait 40 ms per
 * message. Linux leaves quick-ACK mode on its own: set it again per read. */
static void
quick_ack(struct cmpr_conn *c)
{
#ifdef TCP_QUICKACK
    uv_os_fd_t fd;
    int one = 1;

    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
#else
    (void)c;
#endif
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cmpr_conn *c = (struct cmpr_conn *)s;

    if (nread > 0 && c->closing == 0) {
        quick_ack(c);
        if (c->tls == NULL) {
            c->srv->ops->data(c, buf->base, (size_t)nread);
        } else if (cmpr_tls_feed(c->tls, buf->base, (size_t)nread) != 0) {
            cmpr_conn_close(c);
        } else {
            char plain[16384];
            long n = 0;

            while (c->closing == 0 && (n = cmpr_tls_read(c->tls, plain, sizeof(plain))) > 0)
                c->srv->ops->data(c, plain, (size_t)n);
            if (c->closing == 0)
                tls_flush(c);
            if (n < 0)
                cmpr_conn_close(c);
        }
    } else if (nread < 0) {
        if (c->reading) {
            uv_read_stop(s);
            c->reading = 0;
        }
        if (nread == UV_EOF && c->closing == 0)
            c->srv->ops->eof(c);
        else
            cmpr_conn_close(c);
    }
    free(buf->base);
}

/* ---------------- accepting ---------------- */

static void
on_connection(uv_stream_t *server, int status)
{
    struct cmpr_conn_server *srv = server->data;
    struct cmpr_conn *c;

    if (status != 0 || (c = calloc(1, srv->conn_size)) == NULL)
        return;
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    srv->n_conns++;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        close_now(c);
        return;
    }
    cmpr_net_peer_name(&c->tcp, c->peer, sizeof(c->peer));
    if (srv->n_conns > srv->max_conns || srv->stopping) {
        /* over the limit: refuse politely and close */
        srv->ops->refuse(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (srv->tls != NULL && (c->tls = cmpr_tls_conn_new(srv->tls)) == NULL) {
        close_now(c);
        return;
    }
    srv->ops->opened(c);
}

int
cmpr_conn_listen(struct cmpr_conn_server *srv, uv_loop_t *loop, const char *host, int *port,
                 char **err_r)
{
    int r;

    srv->loop = loop;
    if ((r = cmpr_net_listen(loop, &srv->listener, srv->name, host, port, on_connection,
                             err_r)) != CMPR_OK)
        return r;
    srv->listener.data = srv;
    srv->listening = 1;
    return CMPR_OK;
}

static void
listener_closed(uv_handle_t *h)
{
    struct cmpr_conn_server *srv = h->data;

    srv->listening = 0;
    finish_stop(srv);
}

void
cmpr_conn_stop(struct cmpr_conn_server *srv, void (*done)(void *arg), void *arg)
{
    struct cmpr_conn *c, *next;

    srv->stopping = 1;
    srv->stop_done = done;
    srv->stop_arg = arg;
    /* idle connections go now; busy ones after their answer is written */
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (!c->busy && c->writes == 0)
            cmpr_conn_close(c);
    }
    if (srv->listening) {
        srv->listener.data = srv;
        uv_close((uv_handle_t *)&srv->listener, listener_closed);
    } else {
        srv->listening = 0;
        finish_stop(srv);
    }
}
