/* Blocking CMP-over-HTTP(S) client: poll() with one deadline for the whole
 * exchange, http-parser for the answer, TLS through the memory-BIO code. */
#include "transports/http_client.h"
#include "transports/tls.h"
#include "transports/blocking.h"
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

struct answer {
    unsigned char *body;
    size_t len, cap, max;
    char hname[64], ctype[128];
    size_t hname_len;
    int in_ctype, done, too_big, keep_alive;
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

static int
a_header_field(http_parser *p, const char *at, size_t len)
{
    struct answer *a = p->data;

    if (a->in_ctype)
        a->in_ctype = 0;
    if (a->hname_len + len < sizeof(a->hname)) {
        memcpy(a->hname + a->hname_len, at, len);
        a->hname_len += len;
    }
    return 0;
}

static int
a_header_value(http_parser *p, const char *at, size_t len)
{
    struct answer *a = p->data;

    if (a->hname_len > 0) {
        a->hname[a->hname_len] = '\0';
        a->in_ctype = strcasecmp(a->hname, "Content-Type") == 0;
        if (a->in_ctype)
            a->ctype[0] = '\0';
        a->hname_len = 0;
    }
    if (a->in_ctype && strlen(a->ctype) + len < sizeof(a->ctype))
        strncat(a->ctype, at, len);
    return 0;
}

static int
a_headers_complete(http_parser *p)
{
    struct answer *a = p->data;

    a->keep_alive = http_should_keep_alive(p);
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX && p->content_length > a->max) {
        a->too_big = 1;
        return -1;
    }
    return 0;
}

static int
a_body(http_parser *p, const char *at, size_t len)
{
    struct answer *a = p->data;

    if (a->len + len > a->max) {
        a->too_big = 1;
        return -1;
    }
    if (a->len + len > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8192;
        unsigned char *nb;

        while (cap < a->len + len)
            cap *= 2;
        if ((nb = realloc(a->body, cap)) == NULL)
            return -1;
        a->body = nb;
        a->cap = cap;
    }
    memcpy(a->body + a->len, at, len);
    a->len += len;
    return 0;
}

static int
a_complete(http_parser *p)
{
    ((struct answer *)p->data)->done = 1;
    http_parser_pause(p, 1);
    return 0;
}

int
cmpr_http_post(const char *url, const unsigned char *der, size_t len,
               const struct cmpr_http_client_opts *opts, struct cmpr_http_conn **connp,
               int *status_r, unsigned char **body_r, size_t *body_len_r, int *is_cmp_r,
               char *err, size_t errlen)
{
    char host[256], path[2048], key[300], head[3072];
    int tls, port, hl, r = -1, attempt;
    long timeout = opts != NULL && opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
    long deadline = cmpr_blk_now_ms() + timeout;
    struct cmpr_http_conn *c = connp != NULL ? *connp : NULL;
    struct answer a;
    http_parser parser;
    http_parser_settings st;

    memset(&a, 0, sizeof(a));
    *body_r = NULL;
    *body_len_r = 0;
    err[0] = '\0';
    a.max = opts != NULL && opts->max_response > 0 ? opts->max_response : CMPR_MAX_MSG_SIZE;
    if (parse_url(url, &tls, host, sizeof(host), &port, path, sizeof(path)) != 0) {
        snprintf(err, errlen, "not an http:// or https:// URL: %s", url);
        return -1;
    }
    snprintf(key, sizeof(key), "%s://%s:%d", tls ? "https" : "http", host, port);
    hl = snprintf(head, sizeof(head),
                  "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/pkixcmp\r\n"
                  "Content-Length: %zu\r\nConnection: keep-alive\r\nCache-Control: no-cache\r\n\r\n",
                  path, host, port, len);
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
        memset(&st, 0, sizeof(st));
        st.on_header_field = a_header_field;
        st.on_header_value = a_header_value;
        st.on_headers_complete = a_headers_complete;
        st.on_body = a_body;
        st.on_message_complete = a_complete;
        http_parser_init(&parser, HTTP_RESPONSE);
        parser.data = &a;
        while (!a.done) {
            char buf[16384];
            long n = cmpr_blk_recv(&c->io, buf, sizeof(buf), deadline);

            if (n == -2) {
                snprintf(err, errlen, "no answer from %s:%d within %ld ms", host, port, timeout);
                goto out;
            }
            if (n <= 0) {
                if (n == 0 && http_body_is_final(&parser) == 0 && a.len > 0 && !(parser.flags & F_CHUNKED)
                        && parser.content_length == ULLONG_MAX) {
                    a.done = 1;     /* answer delimited by the connection's end */
                    a.keep_alive = 0;
                    break;
                }
                if (reused && a.len == 0 && parser.nread == 0)
                    break;          /* the server had closed the kept-alive connection */
                snprintf(err, errlen, "connection to %s:%d ended before the answer", host, port);
                goto out;
            }
            http_parser_execute(&parser, &st, buf, (size_t)n);
            if (a.too_big) {
                snprintf(err, errlen, "answer larger than %zu bytes", a.max);
                goto out;
            }
            if (HTTP_PARSER_ERRNO(&parser) != HPE_OK && HTTP_PARSER_ERRNO(&parser) != HPE_PAUSED) {
                snprintf(err, errlen, "malformed HTTP answer: %s",
                         http_errno_description(HTTP_PARSER_ERRNO(&parser)));
                goto out;
            }
        }
        if (!a.done && reused) {
            cmpr_http_conn_free(c);
            c = NULL;
            continue;
        }
        break;
    }
    if (!a.done)
        goto out;
    *status_r = parser.status_code;
    {
        char t[128];

        snprintf(t, sizeof(t), "%s", a.ctype);
        t[strcspn(t, ";")] = '\0';
        while (strlen(t) > 0 && isspace((unsigned char)t[strlen(t) - 1]))
            t[strlen(t) - 1] = '\0';
        while (isspace((unsigned char)t[0]))
            memmove(t, t + 1, strlen(t));
        *is_cmp_r = strcasecmp(t, "application/pkixcmp") == 0 || strcasecmp(t, "application/x-pkixcmp") == 0;
    }
    *body_r = a.body;
    *body_len_r = a.len;
    a.body = NULL;
    r = 0;
 out:
    free(a.body);
    if (r == 0 && a.keep_alive && connp != NULL) {
        *connp = c;
    } else {
        cmpr_http_conn_free(c);
        if (connp != NULL)
            *connp = NULL;
    }
    return r;
}
