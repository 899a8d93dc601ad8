/* One server connection's life (conn.h), for the HTTP and TCP media. A
 * connection is freed only in the close callback of its last handle (libuv
 * handle docs); writes hold it open until they complete. */
#define _GNU_SOURCE 1     /* accept4 */
#include "transports/conn.h"
#include "transports/lib/net.h"
#include "transports/lib/tls.h"
#include "base/err.h"
#include "base/log.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---------------- sources and idle connections ---------------- */

/* connections of one source: an IPv4 address, or the /64 of an IPv6 one
 * (one host holds a whole /64) */
struct cmpr_src {
    struct cmpr_src *next;
    unsigned char key[8];
    size_t len;
    long count;
};

#define SRC_BUCKETS 4096

static size_t
src_key(const struct sockaddr_storage *ss, unsigned char key[8])
{
    if (ss->ss_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 4;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(key, a->s6_addr + 12, 4);
            return 4;
        }
        memcpy(key, a->s6_addr, 8);
        return 8;
    }
    return 0;
}

static size_t
src_bucket(const unsigned char *key, size_t len)
{
    uint32_t h = 2166136261u;           /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % SRC_BUCKETS;
}

/* the count of this source (created at 0), or NULL when out of memory */
static struct cmpr_src *
src_find(struct cmpr_conn_server *srv, const unsigned char *key, size_t len)
{
    struct cmpr_src **head = &srv->by_src[src_bucket(key, len)], *e;

    for (e = *head; e != NULL; e = e->next)
        if (e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return NULL;
    memcpy(e->key, key, len);
    e->len = len;
    e->next = *head;
    *head = e;
    return e;
}

static void
src_release(struct cmpr_conn_server *srv, struct cmpr_conn *c)
{
    struct cmpr_src *e = c->src, **pp;

    if (e == NULL)
        return;
    c->src = NULL;
    if (--e->count > 0)
        return;
    for (pp = &srv->by_src[src_bucket(e->key, e->len)]; *pp != NULL; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            free(e);
            return;
        }
}

void
cmpr_conn_idle(struct cmpr_conn *c, int idle)
{
    struct cmpr_conn_server *srv = c->srv;

    if (c->idle) {                      /* off the list (and back on at its end) */
        if (c->idle_prev != NULL)
            c->idle_prev->idle_next = c->idle_next;
        else
            srv->idle_head = c->idle_next;
        if (c->idle_next != NULL)
            c->idle_next->idle_prev = c->idle_prev;
        else
            srv->idle_tail = c->idle_prev;
        c->idle_next = c->idle_prev = NULL;
        c->idle = 0;
        srv->n_idle--;
    }
    if (idle && c->closing == 0) {
        c->idle_prev = srv->idle_tail;
        if (srv->idle_tail != NULL)
            srv->idle_tail->idle_next = c;
        else
            srv->idle_head = c;
        srv->idle_tail = c;
        c->idle = 1;
        srv->n_idle++;
    }
}

void
cmpr_conn_get_stats(const struct cmpr_conn_server *srv, struct cmpr_conn_stats *out)
{
    *out = srv->stats;
    out->open = srv->n_conns;
    out->idle = srv->n_idle;
    out->fd_pauses = srv->pauses;
}

static void
finish_stop(struct cmpr_conn_server *srv)
{
    if (srv->stopping && srv->n_conns == 0 && !srv->listening && !srv->timer_open
            && srv->stop_done != NULL) {
        void (*done)(void *) = srv->stop_done;

        free(srv->by_src);              /* every count went with its connection */
        srv->by_src = NULL;
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
    srv->n_closing--;
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
    c->srv->n_closing++;
    cmpr_conn_idle(c, 0);
    src_release(c->srv, c);
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
    if (busy)
        cmpr_conn_idle(c, 0);
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
    if (c->closing == 2)
        return;
    c->pausing = 0;
    if (c->reading == on)
        return;
    if (on && uv_read_start((uv_stream_t *)&c->tcp, cmpr_net_alloc_cb, read_cb) != 0) {
        cmpr_conn_close(c);
        return;
    }
    if (!on)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = on;
}

void
cmpr_conn_pause(struct cmpr_conn *c)
{
    if (c->closing != 2 && c->reading)
        c->pausing = 1;
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

/* Acknowledge what came at once while the medium waits for more of a
 * request. A client that writes its HTTP header and its body in two calls
 * (OpenSSL's) holds the body back (Nagle) until the header is
 * acknowledged, and a delayed ACK would make it wait 40 ms per message.
 * Linux leaves quick-ACK mode on its own: set it again per such read (set
 * after the read, it sends an ACK the kernel has put off). A read that
 * completes a request needs none: the answer carries the ACK. */
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
        if (c->pausing) {               /* bytes while a request is in the core: back-pressure now */
            uv_read_stop(s);
            c->reading = 0;
            c->pausing = 0;
        }
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
        if (c->reading && !c->pausing && c->closing == 0)
            quick_ack(c);
    } else if (nread < 0) {
        int paused = c->pausing;

        if (c->reading) {
            uv_read_stop(s);
            c->reading = 0;
            c->pausing = 0;
        }
        if (nread == UV_EOF && paused && c->closing == 0)
            ;                           /* read again when reading starts: EOF comes back then */
        else if (nread == UV_EOF && c->closing == 0)
            c->srv->ops->eof(c);
        else
            cmpr_conn_close(c);
    }
    free(buf->base);
}

/* ---------------- accepting ---------------- */

/* how long accepting pauses when descriptors run out */
#define PAUSE_MS 250
/* connections accepted per readiness of the listener, for fairness */
#define ACCEPT_BURST 64

static void on_listen_ready(uv_poll_t *p, int status, int events);

static void
resume_accept(uv_timer_t *t)
{
    struct cmpr_conn_server *srv = t->data;

    if (srv->stopping || !srv->paused)
        return;
    srv->paused = 0;
    uv_poll_start(&srv->listen_poll, UV_READABLE, on_listen_ready);
}

/* Out of descriptors (or memory): accepting stops for PAUSE_MS and the
 * connections wait in the listener's backlog; libuv's way (retry at once,
 * or accept and drop them) spins or turns honest clients away. Logged at
 * most once a second. */
static void
pause_accept(struct cmpr_conn_server *srv, int err)
{
    uint64_t now = uv_now(srv->loop);

    srv->pauses++;
    if (srv->last_pause_log == 0 || now - srv->last_pause_log >= 1000) {
        srv->last_pause_log = now;
        cmpr_log_error("%s: out of file descriptors (%s, %ld connections open): not accepting for "
                       "%d ms; raise LimitNOFILE (ulimit -n) or lower max_connections",
                       srv->name, strerror(err), srv->n_conns, PAUSE_MS);
    }
    srv->paused = 1;
    srv->short_of_fds = 1;
    uv_poll_stop(&srv->listen_poll);
    uv_timer_start(&srv->resume_timer, resume_accept, PAUSE_MS, 0);
}

/* A refusal (over a cap) is said in the log at most once a second: 1 when
 * this one is to be said (*unsaid: how many went unsaid before it). */
static int
say_refusal(struct cmpr_conn_server *srv, unsigned long *unsaid)
{
    uint64_t now = uv_now(srv->loop);

    if (srv->last_refuse_log != 0 && now - srv->last_refuse_log < 1000) {
        srv->refused_unlogged++;
        return 0;
    }
    *unsaid = srv->refused_unlogged;
    srv->last_refuse_log = now;
    srv->refused_unlogged = 0;
    return 1;
}

/* Room for one more under max_conns: closes the longest idle connection
 * (one waiting for its first request, or kept alive between requests) if
 * the cap is reached. 0, or -1 when every connection is at work. */
static int
make_room(struct cmpr_conn_server *srv)
{
    struct cmpr_conn *c, *next;
    int looked = 0;

    if (srv->n_conns - srv->n_closing <= srv->max_conns)
        return 0;
    /* a few at most: one writing (a TLS handshake) is skipped, not waited for */
    for (c = srv->idle_head; c != NULL && looked < 16; c = next, looked++) {
        next = c->idle_next;
        if (c->busy || c->writes > 0 || c->closing != 0)
            continue;
        cmpr_log_debug("%s %s: closing an idle connection to make room", srv->name, c->peer);
        srv->stats.evicted++;
        close_now(c);
        return 0;
    }
    return -1;
}

/* one accepted socket: a connection of the server */
static void
take_connection(struct cmpr_conn_server *srv, int fd, const struct sockaddr_storage *ss)
{
    struct cmpr_conn *c = calloc(1, srv->conn_size);
    unsigned char key[8];
    size_t klen;

    if (c == NULL) {
        close(fd);
        return;
    }
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
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        close_now(c);
        return;
    }
    cmpr_net_peer_name(&c->tcp, c->peer, sizeof(c->peer));
    if (srv->stopping) {
        srv->ops->refuse(c);
        return;
    }
    if (srv->by_src != NULL && (klen = src_key(ss, key)) > 0) {
        struct cmpr_src *e = src_find(srv, key, klen);

        if (e == NULL || e->count >= srv->max_per_addr) {
            /* one source may not take every slot (slowloris, idle floods) */
            unsigned long unsaid;

            srv->stats.refused_per_address++;
            if (say_refusal(srv, &unsaid))
                cmpr_log_warn("%s: %s already has %ld connections (max_connections_per_address): "
                              "refusing more (%lu other refusals in the last second)", srv->name,
                              c->peer, e != NULL ? e->count : 0, unsaid);
            srv->ops->refuse(c);
            return;
        }
        e->count++;
        c->src = e;
    }
    if (make_room(srv) != 0) {
        unsigned long unsaid;

        srv->stats.refused_full++;
        if (say_refusal(srv, &unsaid))
            cmpr_log_warn("%s: max_connections (%ld) reached and none idle: refusing %s (%lu other "
                          "refusals in the last second)", srv->name, srv->max_conns, c->peer, unsaid);
        src_release(srv, c);
        srv->ops->refuse(c);
        return;
    }
    srv->stats.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    if (srv->tls != NULL && (c->tls = cmpr_tls_conn_new(srv->tls)) == NULL) {
        close_now(c);
        return;
    }
    srv->ops->opened(c);
}

static void
on_listen_ready(uv_poll_t *p, int status, int events)
{
    struct cmpr_conn_server *srv = p->data;

    (void)events;
    if (status != 0 || srv->stopping)
        return;
    for (int i = 0; i < ACCEPT_BURST && !srv->stopping; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd = accept4(srv->listen_fd, (struct sockaddr *)&ss, &sslen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            if (srv->short_of_fds) {
                srv->short_of_fds = 0;
                cmpr_log_info("%s: accepting connections again (%lu pauses so far for want of "
                              "descriptors)", srv->name, srv->pauses);
            }
            take_connection(srv, fd, &ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            pause_accept(srv, errno);
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            cmpr_log_warn("%s: accept: %s", srv->name, strerror(errno));
        return;
    }
}

int
cmpr_conn_listen(struct cmpr_conn_server *srv, uv_loop_t *loop, const char *host, int *port,
                 char **err_r)
{
    int r;

    srv->loop = loop;
    if (srv->max_per_addr > 0 && (srv->by_src = calloc(SRC_BUCKETS, sizeof(*srv->by_src))) == NULL) {
        *err_r = strdup("out of memory");
        return CMPR_ERR_ALLOC;
    }
    if ((r = cmpr_net_listen(srv->name, host, port, &srv->listen_fd, err_r)) != CMPR_OK)
        return r;
    if (uv_poll_init_socket(loop, &srv->listen_poll, srv->listen_fd) != 0) {
        close(srv->listen_fd);
        *err_r = strdup("cannot watch the listening socket");
        return CMPR_ERR_IO;
    }
    srv->listen_poll.data = srv;
    uv_poll_start(&srv->listen_poll, UV_READABLE, on_listen_ready);
    srv->listening = 1;
    uv_timer_init(loop, &srv->resume_timer);
    srv->resume_timer.data = srv;
    srv->timer_open = 1;
    return CMPR_OK;
}

static void
listener_closed(uv_handle_t *h)
{
    struct cmpr_conn_server *srv = h->data;

    close(srv->listen_fd);
    srv->listen_fd = -1;
    srv->listening = 0;
    finish_stop(srv);
}

static void
timer_closed(uv_handle_t *h)
{
    struct cmpr_conn_server *srv = h->data;

    srv->timer_open = 0;
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
    if (srv->timer_open) {
        uv_timer_stop(&srv->resume_timer);
        uv_close((uv_handle_t *)&srv->resume_timer, timer_closed);
    }
    if (srv->listening) {
        uv_poll_stop(&srv->listen_poll);
        uv_close((uv_handle_t *)&srv->listen_poll, listener_closed);
    } else {
        finish_stop(srv);
    }
}
