/* Blocking socket helpers for worker threads and the command line: one
 * deadline (CLOCK_MONOTONIC ms) bounds every wait. */
#include "transports/blocking.h"

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

const char *
cmpr_blk_parse_authority(const char *p, char *host, size_t hlen, int *port)
{
    const char *hs, *he;

    if (*p == '[') {
        hs = p + 1;
        if ((he = strchr(hs, ']')) == NULL)
            return NULL;
        p = he + 1;
    } else {
        hs = p;
        he = p + strcspn(p, ":/");
        p = he;
    }
    if (he == hs || (size_t)(he - hs) >= hlen)
        return NULL;
    snprintf(host, hlen, "%.*s", (int)(he - hs), hs);
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);

        if (v <= 0 || v > 65535 || (*end != '\0' && *end != '/'))
            return NULL;
        *port = (int)v;
        p = end;
    }
    return p;
}
