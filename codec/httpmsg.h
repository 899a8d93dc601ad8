/* CMP over HTTP (RFC 9811, RFC 6712, RFC 9483 6.1) as pure code: an
 * incremental reader of HTTP/1.x requests that applies the CMP rules (POST,
 * the path and its label and operation, the content type, the body cap, the
 * -poll framing of legacy clients), and the reader of HTTP answers the client
 * side uses. No I/O: the transports feed bytes and act on the events. */
#ifndef CMPR_HTTPMSG_H
#define CMPR_HTTPMSG_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "base/buf.h"

/* A configured path that is also a CMP endpoint, with its label (NULL: none). */
struct cmpr_http_alias {
    char *path;
    char *label;
};

struct cmpr_httpreq_conf {
    size_t max_header;                  /* request line and headers, bytes */
    size_t max_body;
    int admin;                          /* GET /healthz and /metrics instead of CMP */
    const struct cmpr_http_alias *aliases;
    size_t n_aliases;
};

enum cmpr_httpreq_event {
    CMPR_HTTPREQ_NEED_MORE = 0,         /* every byte was taken: feed more */
    CMPR_HTTPREQ_BEGIN,                 /* a request has started (header timeout) */
    CMPR_HTTPREQ_HEADERS,               /* its headers are in and fine (body timeout, 100-continue) */
    CMPR_HTTPREQ_REQUEST,               /* one whole request: answer it, then feed the rest */
    CMPR_HTTPREQ_REJECT                 /* answer status/why and close */
};

struct cmpr_httpreq {
    const struct cmpr_httpreq_conf *conf;
    http_parser parser;
    int event;                          /* set by the parser callbacks */
    /* the request being read */
    char target[2048];
    size_t target_len, header_bytes;
    char hname[64], hval[256];
    size_t hname_len, hval_len;
    int in_value;
    char content_type[128];
    int expect_continue;                /* Expect: 100-continue (HTTP/1.1) */
    int keep_alive, http_minor;
    struct cmpr_buf body;
    /* after REQUEST */
    char label[128];                    /* /p/<label> or an alias's label, or "" */
    char operation[32];                 /* RFC 9483 6.1 operation, or "" */
    char path[2048];                    /* admin: the path asked for */
    int poll_version;                   /* -1, or the TCP-Message framing of a -poll body */
    const unsigned char *der;           /* the PKIMessage inside the body */
    size_t der_len;
    /* after REJECT */
    int status;
    const char *why;
};

void cmpr_httpreq_init(struct cmpr_httpreq *r, const struct cmpr_httpreq_conf *conf);
void cmpr_httpreq_free(struct cmpr_httpreq *r);
/* Takes up to len bytes (*used_r says how many) and reports what happened.
 * After REQUEST the reader stops until cmpr_httpreq_next() is called (one
 * request at a time: the rest of the bytes wait with the caller). After
 * REJECT nothing more is read. */
enum cmpr_httpreq_event cmpr_httpreq_feed(struct cmpr_httpreq *r, const char *data, size_t len,
                                          size_t *used_r);
/* Ready for the next request on the same connection. */
void cmpr_httpreq_next(struct cmpr_httpreq *r);
/* The reason phrase of a status this reader uses. */
const char *cmpr_http_reason(int status);

/* The path part of target (before ? and #) into path, trailing slashes
 * dropped (RFC 6712 3.6); then whether it is a CMP endpoint: 1 with label
 * and operation set ("" when none), 0 when it is not ours. */
int cmpr_http_route(const char *target, size_t len, const struct cmpr_http_alias *aliases,
                    size_t n_aliases, char *label, size_t llen, char *op, size_t oplen);
/* The media type of a Content-Type value without parameters, lower case. */
void cmpr_http_media_type(const char *content_type, char *out, size_t outlen);
/* 1 for application/pkixcmp (and the x- variant); with poll set, also for
 * the -poll types of legacy clients (RFC 6712 4). */
int cmpr_http_is_cmp_type(const char *content_type, int poll);

/* An HTTP answer as the client side reads it (bounded body). */
struct cmpr_httprsp {
    http_parser parser;
    int done, too_big, keep_alive;
    char hname[64], ctype[128];
    size_t hname_len;
    int in_ctype;
    struct cmpr_buf body;
};
void cmpr_httprsp_init(struct cmpr_httprsp *a, size_t max_body);
void cmpr_httprsp_free(struct cmpr_httprsp *a);
/* 0 while fine (a->done once complete), -1 on a malformed or too large
 * answer (why says which). eof: the connection ended (len 0). */
int cmpr_httprsp_feed(struct cmpr_httprsp *a, const char *data, size_t len, int eof,
                      const char **why_r);
int cmpr_httprsp_status(const struct cmpr_httprsp *a);
/* 1 when the answer carries a CMP message (application/pkixcmp) */
int cmpr_httprsp_is_cmp(const struct cmpr_httprsp *a);

#endif
