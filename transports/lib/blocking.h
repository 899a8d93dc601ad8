/* Blocking socket helpers shared by the HTTP and TCP clients. */
#ifndef CMPR_BLOCKING_H
#define CMPR_BLOCKING_H

#include <stddef.h>

/* CLOCK_MONOTONIC in milliseconds: deadlines are now + timeout */
long cmpr_blk_now_ms(void);
/* 1 when fd is ready for ev (POLLIN/POLLOUT) before deadline, else 0 */
int cmpr_blk_wait_fd(int fd, short ev, long deadline);
/* A non-blocking, close-on-exec socket connected to host:port before
 * deadline, or -1 with err[] saying why. */
int cmpr_blk_connect(const char *host, int port, long deadline, char *err, size_t errlen);

/* A connected socket, with TLS once started (tls.c over memory BIOs). */
struct cmpr_tls_conn;
struct cmpr_blk_io {
    int fd;
    struct cmpr_tls_conn *tls;
};
/* Sends all of buf (encrypted when TLS is on) before deadline; 0 or -1. */
int cmpr_blk_send(struct cmpr_blk_io *io, const void *buf, size_t len, long deadline);
/* Plaintext received: >0 bytes, 0 end of stream, -1 error, -2 timeout. */
long cmpr_blk_recv(struct cmpr_blk_io *io, char *buf, size_t cap, long deadline);
/* Starts TLS as a client verifying host against ca (NULL: system store),
 * with an optional client certificate; 0, or -1 with err[] saying why. */
int cmpr_blk_tls(struct cmpr_blk_io *io, const char *ca, const char *host, const char *cert,
                 const char *key, long deadline, char *err, size_t errlen);
/* Closes the socket and frees the TLS state. */
void cmpr_blk_close(struct cmpr_blk_io *io);

#endif
