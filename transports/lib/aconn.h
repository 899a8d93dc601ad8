/* One outgoing connection on a libuv loop for the client side of the media
 * (HTTP, TCP-Message): resolve, connect, TLS over memory BIOs when asked
 * (h2o style), write, read. Never blocks; loop thread only. */
#ifndef CMPR_ACONN_H
#define CMPR_ACONN_H

#include <stddef.h>

#include <uv.h>

struct cmpr_aconn;

struct cmpr_aconn_ops {
    /* connected (and the TLS handshake done) */
    void (*connected)(struct cmpr_aconn *a, void *arg);
    /* plaintext from the server (valid during the call) */
    void (*data)(struct cmpr_aconn *a, void *arg, const char *p, size_t n);
    /* the end: err CMPR_ERR_UNREACHABLE (resolve, connect, TLS failed),
     * CMPR_ERR_IO (the connection failed or ended after it was up; why
     * "closed" for an orderly end). After this call no other follows and
     * the connection frees itself. */
    void (*ended)(struct cmpr_aconn *a, void *arg, int err, const char *why);
};

struct cmpr_aconn_tls {
    const char *ca, *cert, *key;        /* trust anchors (NULL: system), client identity */
};

/* Starts connecting to host:port; tls NULL for plain TCP. NULL when out of
 * memory. */
struct cmpr_aconn *cmpr_aconn_open(uv_loop_t *loop, const char *host, int port,
                                   const struct cmpr_aconn_tls *tls,
                                   const struct cmpr_aconn_ops *ops, void *arg);
/* Who gets the callbacks from now on. */
void cmpr_aconn_set_owner(struct cmpr_aconn *a, const struct cmpr_aconn_ops *ops, void *arg);
/* Sends a copy of p (after the connection is up). */
int cmpr_aconn_write(struct cmpr_aconn *a, const void *p, size_t n);
/* Closes now: no callback follows. */
void cmpr_aconn_close(struct cmpr_aconn *a);
/* 1 while the connection is up and not closing */
int cmpr_aconn_is_up(const struct cmpr_aconn *a);

#endif
