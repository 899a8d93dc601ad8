/* Blocking socket helpers for worker threads and the command line: one
 * deadline (CLOCK_MONOTONIC ms) bounds every wait. */
#include "transports/lib/blocking.h"
#include "transports/lib/tls.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

long
cmpr_blk_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int
cmpr_blk_wait_fd(int fd, short ev, long deadline)
{
    struct pollfd pfd = { fd, ev, 0 };
    long left = deadline - cmpr_blk_now_ms();
    int n;

    if (left <= 0)
        return 0;
    do
        n = poll(&pfd, 1, (int)left);
    while (n < 0 && errno == EINTR);
    return n > 0;
}

int
cmpr_blk_connect(const char *host, int port, long deadline, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char ports[16];
    int fd = -1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ports, sizeof(ports), "%d", port);
    if ((rc = getaddrinfo(host, ports, &hints, &res)) != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0
                || (errno == EINPROGRESS && cmpr_blk_wait_fd(fd, POLLOUT, deadline)
                    && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0))
            break;
        snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port,
                 soerr != 0 ? strerror(soerr) : errno == EINPROGRESS ? "timeout" : strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* flushes whatever TLS produced */
static int
tls_flush(struct cmpr_blk_io *io, long deadline)
{
    char *out = NULL;
    size_t n = cmpr_tls_take_output(io->tls, &out), off = 0;
    int r = 0;

    while (off < n) {
        ssize_t w = send(io->fd, out + off, n - off, MSG_NOSIGNAL);

        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!cmpr_blk_wait_fd(io->fd, POLLOUT, deadline)) {
                r = -1;
                break;
            }
        } else {
            r = -1;
            break;
        }
    }
    free(out);
    return r;
}

int
cmpr_blk_send(struct cmpr_blk_io *io, const void *buf, size_t len, long deadline)
{
    const char *p = buf;
    size_t off = 0;

    if (io->tls != NULL)
        return cmpr_tls_write(io->tls, buf, len) != 0 ? -1 : tls_flush(io, deadline);
    while (off < len) {
        ssize_t n = send(io->fd, p + off, len - off, MSG_NOSIGNAL);

        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!cmpr_blk_wait_fd(io->fd, POLLOUT, deadline))
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

long
cmpr_blk_recv(struct cmpr_blk_io *io, char *buf, size_t cap, long deadline)
{
    for (;;) {
        char net[16384];
        ssize_t n;

        if (io->tls != NULL) {
            long p = cmpr_tls_read(io->tls, buf, cap);

            if (p != 0)
                return p > 0 ? p : -1;
        }
        if (!cmpr_blk_wait_fd(io->fd, POLLIN, deadline))
            return -2;
        n = recv(io->fd, io->tls != NULL ? net : buf, io->tls != NULL ? sizeof(net) : cap, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return n < 0 ? -1 : 0;
        if (io->tls == NULL)
            return (long)n;
        if (cmpr_tls_feed(io->tls, net, (size_t)n) != 0)
            return -1;
    }
}

int
cmpr_blk_tls(struct cmpr_blk_io *io, const char *ca, const char *host, const char *cert,
             const char *key, long deadline, char *err, size_t errlen)
{
    char *terr = NULL;
    int h;

    if ((io->tls = cmpr_tls_client_new(ca, host, cert, key, &terr)) == NULL) {
        snprintf(err, errlen, "%s", terr != NULL ? terr : "TLS setup failed");
        free(terr);
        return -1;
    }
    while ((h = cmpr_tls_handshake(io->tls)) == 0) {
        char net[16384];
        ssize_t n;

        if (tls_flush(io, deadline) != 0 || !cmpr_blk_wait_fd(io->fd, POLLIN, deadline)
                || (n = recv(io->fd, net, sizeof(net), 0)) <= 0
                || cmpr_tls_feed(io->tls, net, (size_t)n) != 0) {
            h = -1;
            break;
        }
    }
    if (h != 1) {
        const char *why = cmpr_tls_verify_error(io->tls);

        snprintf(err, errlen, "TLS handshake with %s failed%s%s", host, why != NULL ? ": " : "",
                 why != NULL ? why : "");
        return -1;
    }
    return tls_flush(io, deadline);
}

void
cmpr_blk_close(struct cmpr_blk_io *io)
{
    if (io->fd >= 0)
        close(io->fd);
    io->fd = -1;
    cmpr_tls_conn_free(io->tls);
    io->tls = NULL;
}
