/* Socket helpers shared by the HTTP and TCP transports. */
#include "transports/lib/net.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"

int
cmpr_net_parse_address(const char *v, char *host, size_t hlen, int *port)
{
    const char *colon = strrchr(v, ':');
    char *end;
    long p;

    if (colon == NULL || colon[1] == '\0')
        return -1;
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535)
        return -1;
    if (v[0] == '[' && colon > v && colon[-1] == ']')
        snprintf(host, hlen, "%.*s", (int)(colon - v - 2), v + 1);
    else
        snprintf(host, hlen, "%.*s", (int)(colon - v), v);
    *port = (int)p;
    return 0;
}

void
cmpr_net_peer_name(uv_tcp_t *t, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    char ip[64] = "?";

    snprintf(buf, len, "?");
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &sslen) != 0)
        return;
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
        snprintf(buf, len, "%s:%d", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
}

int
cmpr_net_listen(const char *what, const char *host, int *port, int *fd_r, char **err_r)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[200];
    int fd = -1, one = 1;

    *fd_r = -1;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, *port, (struct sockaddr_in *)&ss) == 0) {
        len = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(host, *port, (struct sockaddr_in6 *)&ss) == 0) {
        len = sizeof(struct sockaddr_in6);
    } else {
        snprintf(buf, sizeof(buf), "%s: bad address %s", what, host);
        *err_r = strdup(buf);
        return CMPR_ERR_CONFIG;
    }
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0
            || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0
            || bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 511) != 0) {
        snprintf(buf, sizeof(buf), "%s: cannot listen on %s:%d: %s", what, host, *port, strerror(errno));
        *err_r = strdup(buf);
        if (fd >= 0)
            close(fd);
        return CMPR_ERR_IO;
    }
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_r = fd;
    return CMPR_OK;
}

void
cmpr_net_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    suggested = suggested > 65536 ? 65536 : suggested;
    buf->base = malloc(suggested);
    buf->len = buf->base != NULL ? suggested : 0;
}

const char *
cmpr_net_parse_authority(const char *p, char *host, size_t hlen, int *port)
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

