/* Blocking CMP-over-HTTP(S) client: poll() with one deadline for the whole
 * exchange, http-parser for the answer, TLS through the memory-BIO code. */
#include "transports/client/http.h"
#include "codec/httpmsg.h"
#include "base/buf.h"
#include "transports/lib/tls.h"
#include "transports/lib/blocking.h"
#include "base/limits.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

struct cmpr_http_conn {
    struct cmpr_blk_io io;
    char key[300];                  /* scheme://host:port it is connected to */
};

void
cmpr_http_conn_free(struct cmpr_http_conn *c)
{
    if (c == NULL)
        return;
    cmpr_blk_close(&c->io);
    free(c);
}

static int
parse_url(const char *url, int *tls, char *host, size_t hlen, int *port, char *path, size_t plen)
{
    const char *p;

    if (strncmp(url, "https://", 8) == 0) {
        *tls = 1;
        p = url + 8;
        *port = 443;
    } else if (strncmp(url, "http://", 7) == 0) {
        *tls = 0;
        p = url + 7;
        *port = 80;
    } else {
        return -1;
    }
    if ((p = cmpr_blk_parse_authority(p, host, hlen, port)) == NULL)
        return -1;
    snprintf(path, plen, "%s", *p == '/' ? p : "/");
    return 0;
}

/* one attempt's answer on c; 0 with a->done, 1 when a kept-alive
 * connection turned out to be closed (try a fresh one), -1 with err[] */
static int
read_answer(struct cmpr_http_conn *c, struct cmpr_httprsp *a, int reused, long deadline,
            long timeout, const char *host, int port, char *err, size_t errlen)
{
    const char *why;

    while (!a->done) {
        char buf[16384];
        long n = cmpr_blk_recv(&c->io, buf, sizeof(buf), deadline);

        if (n == -2) {
            snprintf(err, errlen, "no answer from %s:%d within %ld ms", host, port, timeout);
            return -1;
        }
        if (n < 0 || (n == 0 && reused && cmpr_buf_len(&a->body) == 0 && a->parser.nread == 0)) {
            if (reused)
                return 1;   /* the server had closed the kept-alive connection */
            snprintf(err, errlen, "connection to %s:%d failed before the answer", host, port);
            return -1;
        }
        if (cmpr_httprsp_feed(a, buf, (size_t)n, n == 0, &why) != 0) {
            snprintf(err, errlen, "%s:%d: %s", host, port, why);
            return -1;
        }
        if (n == 0 && !a->done)
            return reused ? 1 : -1;
    }
    return 0;
}

int
cmpr_http_post(const char *url, const unsigned char *der, size_t len,
               const struct cmpr_http_client_opts *opts, struct cmpr_http_conn **connp,
               int *status_r, unsigned char **body_r, size_t *body_len_r, int *is_cmp_r,
               char *err, size_t errlen)
{
    char host[256], path[2048], key[300], head[3072];
    int tls, port, hl, r = -1, attempt, got = -1;
    long timeout = opts != NULL && opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
    long deadline = cmpr_blk_now_ms() + timeout;
    struct cmpr_http_conn *c = connp != NULL ? *connp : NULL;
    struct cmpr_httprsp a;

    cmpr_httprsp_init(&a, opts != NULL && opts->max_response > 0 ? opts->max_response : CMPR_MAX_MSG_SIZE);
    *body_r = NULL;
    *body_len_r = 0;
    err[0] = '\0';
    if (parse_url(url, &tls, host, sizeof(host), &port, path, sizeof(path)) != 0) {
        snprintf(err, errlen, "not an http:// or https:// URL: %s", url);
        goto out;
    }
    snprintf(key, sizeof(key), "%s://%s:%d", tls ? "https" : "http", host, port);
    hl = snprintf(head, sizeof(head),
                  "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/pkixcmp\r\n"
                  "Content-Length: %zu\r\nConnection: keep-alive\r\nCache-Control: no-cache\r\n\r\n",
                  path, host, port, len);
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        snprintf(err, errlen, "URL too long: %s", url);
        goto out;
    }
    /* a kept-alive connection may have been closed meanwhile: one retry */
    for (attempt = 0; attempt < 2; attempt++) {
        int reused = 0;

        if (c != NULL && strcmp(c->key, key) != 0) {
            cmpr_http_conn_free(c);
            c = NULL;
        }
        if (c == NULL) {
            if ((c = calloc(1, sizeof(*c))) == NULL)
                goto out;
            c->io.fd = -1;
            snprintf(c->key, sizeof(c->key), "%s", key);
            if ((c->io.fd = cmpr_blk_connect(host, port, deadline, err, errlen)) < 0)
                goto out;
            if (tls && cmpr_blk_tls(&c->io, opts != NULL ? opts->tls_ca : NULL, host,
                                    opts != NULL ? opts->tls_cert : NULL,
                                    opts != NULL ? opts->tls_key : NULL, deadline, err, errlen) != 0)
                goto out;
        } else {
            reused = 1;
        }
        if (cmpr_blk_send(&c->io, head, (size_t)hl, deadline) != 0
                || cmpr_blk_send(&c->io, (const char *)der, len, deadline) != 0) {
            if (reused) {
                cmpr_http_conn_free(c);
                c = NULL;
                continue;
            }
            snprintf(err, errlen, "cannot send to %s:%d", host, port);
            goto out;
        }
        cmpr_httprsp_free(&a);
        cmpr_httprsp_init(&a, opts != NULL && opts->max_response > 0 ? opts->max_response : CMPR_MAX_MSG_SIZE);
        if ((got = read_answer(c, &a, reused, deadline, timeout, host, port, err, errlen)) != 1)
            break;
        cmpr_http_conn_free(c);
        c = NULL;
    }
    if (got != 0)
        goto out;
    *status_r = cmpr_httprsp_status(&a);
    *is_cmp_r = cmpr_httprsp_is_cmp(&a);
    if ((*body_r = cmpr_buf_steal(&a.body, body_len_r)) == NULL)
        goto out;
    r = 0;
 out:
    if (r == 0 && a.keep_alive && connp != NULL) {
        *connp = c;
    } else {
        cmpr_http_conn_free(c);
        if (connp != NULL)
            *connp = NULL;
    }
    cmpr_httprsp_free(&a);
    return r;
}
