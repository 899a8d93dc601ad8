/* Blocking CMP-over-TCP client: codec/tcpframe.c frames, one deadline for the
 * whole exchange (polling included), bounded answers. */
#include "transports/client/tcp.h"
#include "transports/lib/blocking.h"
#include "codec/tcpframe.h"
#include "base/limits.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int
cmpr_tcp_parse_url(const char *url, char *host, size_t hlen, int *port)
{
    const char *rest;

    if (strncmp(url, "tcp://", 6) != 0)
        return -1;
    *port = 829;
    rest = cmpr_blk_parse_authority(url + 6, host, hlen, port);
    /* nothing but an optional trailing slash after the authority */
    return rest != NULL && (*rest == '\0' || strcmp(rest, "/") == 0) ? 0 : -1;
}

static int
send_all(int fd, const unsigned char *a, size_t alen, const unsigned char *b, size_t blen,
         long deadline)
{
    const unsigned char *parts[2] = { a, b };
    size_t lens[2] = { alen, blen };

    for (int i = 0; i < 2; i++) {
        size_t off = 0;

        while (off < lens[i]) {
            ssize_t n = send(fd, parts[i] + off, lens[i] - off, MSG_NOSIGNAL);

            if (n > 0) {
                off += (size_t)n;
            } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (!cmpr_blk_wait_fd(fd, POLLOUT, deadline))
                    return -1;
            } else {
                return -1;
            }
        }
    }
    return 0;
}

/* reads until one frame is complete; 1 frame, 0 connection closed, -1 error */
static int
read_frame(int fd, struct cmpr_tcp_parser *p, struct cmpr_tcp_frame *f, long deadline,
           char *err, size_t errlen)
{
    for (;;) {
        unsigned char buf[16384];
        ssize_t n;

        switch (cmpr_tcp_next(p, f)) {
        case CMPR_TCP_FRAME:
            return 1;
        case CMPR_TCP_NEED_MORE:
            break;
        case CMPR_TCP_E_TOO_BIG:
            snprintf(err, errlen, "answer larger than %zu bytes", p->max_frame);
            return -1;
        case CMPR_TCP_E_VERSION:
            snprintf(err, errlen, "answer in unknown TCP-Message version %d", f->version);
            return -1;
        case CMPR_TCP_E_LENGTH:
            snprintf(err, errlen, "answer frame with a bad length");
            return -1;
        }
        if (!cmpr_blk_wait_fd(fd, POLLIN, deadline)) {
            snprintf(err, errlen, "timeout waiting for the answer");
            return -1;
        }
        n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            snprintf(err, errlen, "read: %s", strerror(errno));
            return -1;
        }
        if (cmpr_tcp_feed(p, buf, (size_t)n) != 0) {
            snprintf(err, errlen, "answer exceeds the size limit");
            return -1;
        }
    }
}

static void
describe_error(const struct cmpr_tcp_frame *f, char *err, size_t errlen)
{
    if (f->version == CMPR_TCP_V2510) {
        snprintf(err, errlen, "server errorMsgRep: %.*s", (int)(f->value_len > 200 ? 200 : f->value_len),
                 (const char *)f->value);
    } else if (f->value_len >= 4) {
        unsigned code = (unsigned)f->value[0] << 8 | f->value[1];
        size_t dl = (size_t)f->value[2] << 8 | f->value[3], tl;
        const char *name = code == CMPR_TCP_ERR_VERSION ? "VersionNotSupported"
            : code == CMPR_TCP_ERR_CLIENT ? "GeneralClientError"
            : code == CMPR_TCP_ERR_TYPE ? "InvalidMessageType"
            : code == CMPR_TCP_ERR_POLLID ? "InvalidPollID"
            : code == CMPR_TCP_ERR_SERVER ? "GeneralServerError" : "error";

        dl = dl > f->value_len - 4 ? f->value_len - 4 : dl;
        tl = f->value_len - 4 - dl;
        snprintf(err, errlen, "server errorMsgRep 0x%04x %s%s%.*s", code, name, tl ? ": " : "",
                 (int)(tl > 200 ? 200 : tl), (const char *)f->value + 4 + dl);
    } else {
        snprintf(err, errlen, "server errorMsgRep (malformed)");
    }
    /* only printable bytes from an unauthenticated peer */
    for (char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
            *c = '?';
}

int
cmpr_tcp_exchange(const char *url, const unsigned char *der, size_t len,
                  const struct cmpr_tcp_client_opts *opts, unsigned char **answer_r,
                  size_t *len_r, char *err, size_t errlen)
{
    char host[256];
    int port, fd = -1, rc = -1, version = opts->version == CMPR_TCP_V2510 ? CMPR_TCP_V2510
                                                                         : CMPR_TCP_VERSION;
    int max_polls = opts->max_polls > 0 ? opts->max_polls : 20, polls = 0, attempt = 0;
    long deadline = cmpr_blk_now_ms() + (opts->timeout_ms > 0 ? opts->timeout_ms : 30000);
    unsigned char hdr[CMPR_TCP_HDR10], small[16];
    const unsigned char *value = der;
    size_t vlen = len, hlen;
    unsigned type = CMPR_TCP_PKIREQ;
    struct cmpr_tcp_parser p;
    struct cmpr_tcp_frame f;

    *answer_r = NULL;
    *len_r = 0;
    if (cmpr_tcp_parse_url(url, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "not a tcp://host[:port] URL: %s", url);
        return -1;
    }
    cmpr_tcp_parser_init(&p, opts->max_response > 0 ? opts->max_response : CMPR_MAX_MSG_SIZE);
    for (;;) {
        int got;

        int fresh = fd < 0, sent;

        if (fd < 0 && (fd = cmpr_blk_connect(host, port, deadline, err, errlen)) < 0)
            goto out;
        hlen = cmpr_tcp_header(version, 0, type, vlen, hdr);
        errno = 0;
        sent = send_all(fd, hdr, hlen, value, vlen, deadline) == 0;
        if (!sent && !fresh) {
            /* the server closed the kept connection meanwhile (RFC 2510
             * servers do after pollRep): reconnect once */
            close(fd);
            if ((fd = cmpr_blk_connect(host, port, deadline, err, errlen)) < 0)
                goto out;
            errno = 0;
            sent = send_all(fd, hdr, hlen, value, vlen, deadline) == 0;
        }
        if (!sent) {
            snprintf(err, errlen, "cannot send to %s:%d: %s", host, port,
                     errno ? strerror(errno) : "timeout");
            goto out;
        }
        got = read_frame(fd, &p, &f, deadline, err, errlen);
        if (got < 0)
            goto out;
        if (got == 0) {
            /* closed before any answer byte: retry once on a new connection
             * (tp06 5: the server may have dropped an idle connection) */
            close(fd);
            fd = -1;
            if (++attempt > 3) {
                snprintf(err, errlen, "%s:%d closed the connection without an answer", host, port);
                goto out;
            }
            {
                /* backoff before reconnecting: 200, 400, 800 ms */
                struct timespec ts = { 0, 200000000L << (attempt - 1) };

                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec = ts.tv_nsec / 1000000000L;
                    ts.tv_nsec %= 1000000000L;
                }
                while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                    ;
            }
            continue;
        }
        if (f.version != version) {
            snprintf(err, errlen, "answer in a different framing than the request");
            goto out;
        }
        /* type 5 per the drafts and EJBCA; cryptlib answers with type 0 */
        if (f.type == CMPR_TCP_PKIREP || f.type == CMPR_TCP_PKIREQ) {
            if (f.value_len == 0 || (*answer_r = malloc(f.value_len)) == NULL) {
                snprintf(err, errlen, "empty or unallocatable answer");
                goto out;
            }
            memcpy(*answer_r, f.value, f.value_len);
            *len_r = f.value_len;
            rc = 0;
            goto out;
        }
        if (f.type == CMPR_TCP_FINREP) {
            rc = 0;                 /* no CMP answer applies (e.g. EJBCA after pkiConf) */
            goto out;
        }
        if (f.type == CMPR_TCP_ERRORMSGREP) {
            describe_error(&f, err, errlen);
            goto out;
        }
        if (f.type == CMPR_TCP_POLLREP && f.value_len >= 8) {
            uint32_t ref = cmpr_tcp_u32(f.value), t = cmpr_tcp_u32(f.value + 4);
            long wait_ms;

            if (++polls > max_polls) {
                snprintf(err, errlen, "no answer after %d pollReq rounds", max_polls);
                goto out;
            }
            /* v10: relative seconds; RFC 2510: absolute time (seconds since 1970) */
            if (version == CMPR_TCP_V2510) {
                long long rel = (long long)t - (long long)time(NULL);

                wait_ms = rel > 0 ? (long)rel * 1000 : 0;
            } else {
                wait_ms = (long)t * 1000;
            }
            if (wait_ms < 100)
                wait_ms = 100 * polls;      /* a server saying "now" gets backoff */
            if (cmpr_blk_now_ms() + wait_ms >= deadline) {
                snprintf(err, errlen, "server asks to poll again in %ld s, after the timeout",
                         wait_ms / 1000);
                goto out;
            }
            if (f.flags & CMPR_TCP_FLAG_CLOSE) {
                close(fd);
                fd = -1;
            }
            {
                struct timespec ts = { wait_ms / 1000, (wait_ms % 1000) * 1000000L };

                while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                    ;
            }
            /* pollReq: the value is the reference alone */
            small[0] = (unsigned char)(ref >> 24);
            small[1] = (unsigned char)(ref >> 16);
            small[2] = (unsigned char)(ref >> 8);
            small[3] = (unsigned char)ref;
            value = small;
            vlen = 4;
            type = CMPR_TCP_POLLREQ;
            attempt = 0;
            continue;
        }
        snprintf(err, errlen, "unexpected answer type %u (%s)", f.type,
                 cmpr_tcp_type_name(f.version, f.type));
        goto out;
    }
 out:
    if (fd >= 0)
        close(fd);
    cmpr_tcp_parser_free(&p);
    return rc;
}
