/* The life of one server connection, shared by the HTTP and TCP media: accept
 * (with a connection cap), read with back-pressure, one timer, writes that
 * free their buffer, TLS over memory BIOs when configured, close deferred
 * while the core still holds the connection's reply, and a stop that lets
 * answers in flight be written first. Loop thread only.
 *
 * A medium embeds struct cmpr_conn_server in its context and starts its own
 * connection struct with struct cmpr_conn (conn_size says how big it is). */
#ifndef CMPR_CONN_H
#define CMPR_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/log.h"

/* max_connections_per_address unless configured */
#define CMPR_CONN_PER_ADDR_DEFAULT 128

struct cmpr_conn;
struct cmpr_tls_server;
struct cmpr_tls_conn;

struct cmpr_conn_ops {
    /* a new connection under the cap: set up and start reading */
    void (*opened)(struct cmpr_conn *c);
    /* over the cap or stopping: write a refusal with close_after set */
    void (*refuse)(struct cmpr_conn *c);
    /* plaintext from the peer (valid during the call) */
    void (*data)(struct cmpr_conn *c, const char *p, size_t n);
    /* the peer ended its side of the stream (half-close) */
    void (*eof)(struct cmpr_conn *c);
    /* the timer set with cmpr_conn_arm ran out */
    void (*timeout)(struct cmpr_conn *c);
    /* every write queued so far is out and the connection stays open */
    void (*drained)(struct cmpr_conn *c);
    /* the connection is about to be freed: release what the medium holds */
    void (*release)(struct cmpr_conn *c);
};

/* what a listener did with its connections (loop thread; for metrics) */
struct cmpr_conn_stats {
    long open;                          /* connections now */
    long idle;                          /* of those, idle (waiting for a request to begin) */
    unsigned long accepted;             /* taken in under the caps */
    unsigned long refused_full;         /* max_connections reached, none idle to close */
    unsigned long refused_per_address;  /* max_connections_per_address reached */
    unsigned long evicted;              /* idle ones closed to make room */
    unsigned long fd_pauses;            /* accepting paused for want of descriptors */
};

struct cmpr_src;

struct cmpr_conn_server {
    const struct cmpr_conn_ops *ops;
    size_t conn_size;                   /* the medium's struct, starting with struct cmpr_conn */
    const char *name;                   /* for logs: "http", "tcp" */
    struct cmpr_tls_server *tls;        /* TLS on every connection when set */
    long max_conns;
    /* connections from one source (an IPv4 address, an IPv6 /64) at most; 0: no cap */
    long max_per_addr;
    /* the server's own */
    uv_loop_t *loop;
    /* the listening socket: accepted by the server itself, so that running
     * out of descriptors pauses accepting (the connections wait in the
     * backlog) instead of libuv's retrying or dropping them */
    int listen_fd;
    uv_poll_t listen_poll;
    int listening, stopping;
    int paused;                         /* out of descriptors: resume_timer polls again */
    int short_of_fds;                   /* paused since the last connection accepted */
    uv_timer_t resume_timer;
    int timer_open;
    uint64_t last_pause_log;            /* uv_now() of the last log line about it */
    unsigned long pauses;
    long n_conns;
    long n_closing;                     /* of n_conns, closing (their slot is about to free) */
    struct cmpr_conn *conns;
    /* idle connections (cmpr_conn_idle), oldest first: closed to make room
     * when max_conns is reached (nginx's reusable connections) */
    struct cmpr_conn *idle_head, *idle_tail;
    long n_idle;
    /* connections by source, for max_per_addr */
    struct cmpr_src **by_src;
    uint64_t last_refuse_log;
    unsigned long refused_unlogged;
    struct cmpr_conn_stats stats;
    /* what peers cause in the log (bad frames, timeouts, refusals), limited */
    struct cmpr_log_limit peer_log;
    void (*stop_done)(void *arg);
    void *stop_arg;
};

struct cmpr_conn {
    uv_tcp_t tcp;                       /* first: the handle's address is the conn's */
    uv_timer_t timer;
    struct cmpr_conn_server *srv;
    struct cmpr_conn *next, *prev;
    char peer[64];
    int open_handles;
    int closing;                        /* 1: once neither busy nor writing; 2: closing */
    int busy;                           /* a request is in the core: its reply points here */
    int reading;
    int pausing;                        /* reading stops when bytes come (cmpr_conn_pause) */
    int writes;                         /* writes not yet completed */
    struct cmpr_tls_conn *tls;
    int idle;                           /* on the server's idle list */
    struct cmpr_conn *idle_next, *idle_prev;
    struct cmpr_src *src;               /* its source's count, or NULL */
};

/* Binds host:*port (the port bound is written back) and accepts. 0 or
 * CMPR_ERR_* with *err_r. */
int cmpr_conn_listen(struct cmpr_conn_server *srv, uv_loop_t *loop, const char *host, int *port,
                     char **err_r);
/* No new connections; idle ones close now, busy ones once their answer is
 * written (the medium sets close_after while srv->stopping); done(arg) once
 * all are gone. */
void cmpr_conn_stop(struct cmpr_conn_server *srv, void (*done)(void *arg), void *arg);

/* Sends buf (malloc()ed, taken in any case); closes after it when close_after. */
void cmpr_conn_write(struct cmpr_conn *c, char *buf, size_t len, int close_after);
/* The same with a copy of data. */
void cmpr_conn_write_copy(struct cmpr_conn *c, const void *data, size_t len, int close_after);
/* Something other than a write (a file the answer waits for) holds the
 * connection open (+1) or lets it go (-1), as a write would. */
void cmpr_conn_hold(struct cmpr_conn *c, int delta);
/* Closes now, or once the connection is neither busy nor writing. */
void cmpr_conn_close(struct cmpr_conn *c);
/* Starts or stops reading (back-pressure while a request is in the core). */
void cmpr_conn_read(struct cmpr_conn *c, int on);
/* Stops reading once bytes come: they are handed over (the medium keeps
 * them while busy), then reading stops until cmpr_conn_read(c, 1); an end
 * of stream meanwhile is seen when reading starts again. For a request in
 * the core: a client that waits for its answer sends nothing, and
 * stopping and starting at once cost two epoll_ctl(2) per message. */
void cmpr_conn_pause(struct cmpr_conn *c);
/* (Re)starts the one timer; cmpr_conn_disarm stops it. */
void cmpr_conn_arm(struct cmpr_conn *c, uint64_t ms);
void cmpr_conn_disarm(struct cmpr_conn *c);
/* A request of this connection enters (1) or leaves (0) the core; a close
 * asked for meanwhile happens once it has left and all is written. */
void cmpr_conn_set_busy(struct cmpr_conn *c, int busy);
/* Marks the connection idle (1: waiting for a request to begin, nothing in
 * flight or being written; it may be closed to make room for a new one when
 * max_conns is reached) or not (0: a request has begun). */
void cmpr_conn_idle(struct cmpr_conn *c, int idle);
/* The listener's figures (stats.open filled in). */
void cmpr_conn_get_stats(const struct cmpr_conn_server *srv, struct cmpr_conn_stats *out);
/* The verified TLS client certificate's subject, or "". */
const char *cmpr_conn_tls_subject(struct cmpr_conn *c);

#endif
