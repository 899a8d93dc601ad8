/* HTTP requests and answers for CMP (httpmsg.h): http-parser does the
 * HTTP/1.x syntax, this file the CMP rules and the caps. */
#include "codec/httpmsg.h"
#include "codec/oids.h"
#include "codec/tcpframe.h"
#include "base/err.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---------------- paths and types ---------------- */

static int
valid_segment(const char *s, size_t n)
{
    if (n == 0 || n > 100)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return 0;
    return 1;
}

int
cmpr_http_route(const char *target, size_t len, const struct cmpr_http_alias *aliases,
                size_t n_aliases, char *label, size_t llen, char *op, size_t oplen)
{
    char path[2048];
    const char *rest;
    size_t n;

    label[0] = op[0] = '\0';
    if (len >= sizeof(path))
        return 0;
    memcpy(path, target, len);
    path[len] = '\0';
    path[strcspn(path, "?#")] = '\0';
    /* trailing slashes do not matter (RFC 6712 3.6) */
    n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    for (size_t i = 0; i < n_aliases; i++) {
        if (strcmp(path, aliases[i].path) == 0) {
            snprintf(label, llen, "%s", aliases[i].label != NULL ? aliases[i].label : "");
            return 1;
        }
    }
    if (strncmp(path, "/.well-known/cmp", 16) != 0 || (path[16] != '\0' && path[16] != '/'))
        return 0;
    rest = path + 16;
    if (*rest == '\0')
        return 1;
    rest++;
    if (strncmp(rest, "p/", 2) == 0) {
        const char *lab = rest + 2, *slash = strchr(lab, '/');
        size_t ln = slash != NULL ? (size_t)(slash - lab) : strlen(lab);

        if (!valid_segment(lab, ln) || ln >= llen)
            return 0;
        snprintf(label, llen, "%.*s", (int)ln, lab);
        if (slash == NULL)
            return 1;
        rest = slash + 1;
    }
    if (cmpr_operation_body(rest) < 0 || strlen(rest) >= oplen) {
        label[0] = '\0';
        return 0;
    }
    snprintf(op, oplen, "%s", rest);
    return 1;
}

void
cmpr_http_media_type(const char *ct, char *out, size_t outlen)
{
    size_t o = 0;

    while (isspace((unsigned char)*ct))
        ct++;
    for (; *ct != '\0' && *ct != ';' && o + 1 < outlen; ct++)
        out[o++] = (char)tolower((unsigned char)*ct);
    while (o > 0 && isspace((unsigned char)out[o - 1]))
        o--;
    out[o] = '\0';
}

static int
is_poll_type(const char *ct)
{
    char t[128];

    cmpr_http_media_type(ct, t, sizeof(t));
    return strcmp(t, "application/pkixcmp-poll") == 0 || strcmp(t, "application/x-pkixcmp-poll") == 0;
}

int
cmpr_http_is_cmp_type(const char *ct, int poll)
{
    char t[128];

    cmpr_http_media_type(ct, t, sizeof(t));
    return strcmp(t, "application/pkixcmp") == 0 || strcmp(t, "application/x-pkixcmp") == 0
           || (poll && is_poll_type(ct));
}

const char *
cmpr_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* ---------------- requests ---------------- */

static int
reject(struct cmpr_httpreq *r, int status, const char *why)
{
    r->status = status;
    r->why = why;
    r->event = CMPR_HTTPREQ_REJECT;
    return -1;
}

static void
end_header(struct cmpr_httpreq *r)
{
    if (r->hname_len == 0)
        return;
    r->hname[r->hname_len] = '\0';
    r->hval[r->hval_len] = '\0';
    if (strcasecmp(r->hname, "Content-Type") == 0)
        snprintf(r->content_type, sizeof(r->content_type), "%.127s", r->hval);
    else if (strcasecmp(r->hname, "Expect") == 0 && strcasecmp(r->hval, "100-continue") == 0)
        r->expect_continue = 1;
    r->hname_len = r->hval_len = 0;
    r->in_value = 0;
}

static int
on_message_begin(http_parser *p)
{
    struct cmpr_httpreq *r = p->data;

    r->target_len = r->header_bytes = r->hname_len = r->hval_len = 0;
    r->in_value = r->expect_continue = 0;
    r->content_type[0] = r->label[0] = r->operation[0] = r->path[0] = '\0';
    r->poll_version = -1;
    r->der = NULL;
    r->der_len = 0;
    cmpr_buf_reset(&r->body);
    r->event = CMPR_HTTPREQ_BEGIN;
    http_parser_pause(p, 1);
    return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct cmpr_httpreq *r = p->data;

    if (r->target_len + len >= sizeof(r->target))
        return reject(r, 414, "the request URI is too long");
    memcpy(r->target + r->target_len, at, len);
    r->target_len += len;
    return 0;
}

static int
count_header(struct cmpr_httpreq *r, size_t len)
{
    r->header_bytes += len;
    return r->header_bytes > r->conf->max_header;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    struct cmpr_httpreq *r = p->data;

    if (count_header(r, len))
        return reject(r, 431, "request headers too large");
    if (r->in_value)
        end_header(r);
    if (r->hname_len + len < sizeof(r->hname)) {
        memcpy(r->hname + r->hname_len, at, len);
        r->hname_len += len;
    } else {
        r->hname_len = sizeof(r->hname) - 1;    /* a name we do not care about */
    }
    return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    struct cmpr_httpreq *r = p->data;

    if (count_header(r, len))
        return reject(r, 431, "request headers too large");
    r->in_value = 1;
    if (r->hval_len + len < sizeof(r->hval)) {
        memcpy(r->hval + r->hval_len, at, len);
        r->hval_len += len;
    }
    return 0;
}

static int
on_headers_complete(http_parser *p)
{
    struct cmpr_httpreq *r = p->data;

    end_header(r);
    r->keep_alive = http_should_keep_alive(p);
    r->http_minor = p->http_major == 1 && p->http_minor == 0 ? 0 : 1;
    if (r->conf->admin) {
        if (p->method != HTTP_GET)
            return reject(r, 405, "the admin listener answers GET");
        r->event = CMPR_HTTPREQ_HEADERS;
        http_parser_pause(p, 1);
        return 0;
    }
    if (p->method != HTTP_POST)
        return reject(r, 405, "CMP requests are POSTed");
    if (!cmpr_http_route(r->target, r->target_len, r->conf->aliases, r->conf->n_aliases, r->label,
                         sizeof(r->label), r->operation, sizeof(r->operation)))
        return reject(r, 404, "no CMP endpoint here; try /.well-known/cmp");
    if (!cmpr_http_is_cmp_type(r->content_type, 1))
        return reject(r, 415, "Content-Type must be application/pkixcmp");
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX
            && p->content_length > (uint64_t)r->conf->max_body)
        return reject(r, 413, "the request body is larger than allowed");
    r->expect_continue = r->expect_continue && r->http_minor == 1;
    r->event = CMPR_HTTPREQ_HEADERS;
    http_parser_pause(p, 1);
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
    struct cmpr_httpreq *r = p->data;
    int e = cmpr_buf_put(&r->body, at, len);

    if (e == CMPR_ERR_TOO_LARGE)
        return reject(r, 413, "the request body is larger than allowed");
    if (e != CMPR_OK)
        return reject(r, 503, "out of memory");
    return 0;
}

/* the CMP message in a complete body */
static int
take_body(struct cmpr_httpreq *r)
{
    const unsigned char *b = cmpr_buf_ptr(&r->body);
    size_t n = cmpr_buf_len(&r->body);

    if (n == 0)
        return reject(r, 400, "empty request body");
    r->der = b;
    r->der_len = n;
    /* RFC 9811 4 / RFC 6712 4: legacy clients send application/pkixcmp-poll
     * with the TCP-Message header before the DER; the answer goes alike */
    if (is_poll_type(r->content_type)) {
        struct cmpr_tcp_frame f;

        if (cmpr_tcp_parse_one(b, n, &f) == CMPR_TCP_FRAME) {
            /* pkiReq (v10) and msgReq (RFC 2510) share type 0 */
            if (f.type != CMPR_TCP_PKIREQ)
                return reject(r, 400, "only pkiReq TCP-Messages are accepted over HTTP");
            if (f.value_len == 0)
                return reject(r, 400, "empty request body");
            r->der = f.value;
            r->der_len = f.value_len;
            r->poll_version = f.version;
        }
    }
    return 0;
}

static int
on_message_complete(http_parser *p)
{
    struct cmpr_httpreq *r = p->data;

    if (r->conf->admin) {
        size_t n = r->target_len < sizeof(r->path) ? r->target_len : sizeof(r->path) - 1;

        memcpy(r->path, r->target, n);
        r->path[n] = '\0';
        r->path[strcspn(r->path, "?#")] = '\0';
    } else if (take_body(r) != 0) {
        return -1;
    }
    r->event = CMPR_HTTPREQ_REQUEST;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings req_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void
cmpr_httpreq_init(struct cmpr_httpreq *r, const struct cmpr_httpreq_conf *conf)
{
    memset(r, 0, sizeof(*r));
    r->conf = conf;
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    cmpr_buf_init(&r->body, conf->max_body);
    r->poll_version = -1;
}

void
cmpr_httpreq_free(struct cmpr_httpreq *r)
{
    cmpr_buf_free(&r->body);
}

enum cmpr_httpreq_event
cmpr_httpreq_feed(struct cmpr_httpreq *r, const char *data, size_t len, size_t *used_r)
{
    size_t done;
    enum http_errno e;

    *used_r = 0;
    if (r->event == CMPR_HTTPREQ_REJECT || r->event == CMPR_HTTPREQ_REQUEST)
        return (enum cmpr_httpreq_event)r->event;
    r->event = CMPR_HTTPREQ_NEED_MORE;
    if (HTTP_PARSER_ERRNO(&r->parser) == HPE_PAUSED)
        http_parser_pause(&r->parser, 0);
    done = http_parser_execute(&r->parser, &req_settings, data, len);
    e = HTTP_PARSER_ERRNO(&r->parser);
    *used_r = done;
    if (r->event == CMPR_HTTPREQ_REJECT)
        return CMPR_HTTPREQ_REJECT;
    if (e != HPE_OK && e != HPE_PAUSED) {
        reject(r, 400, http_errno_description(e));
        return CMPR_HTTPREQ_REJECT;
    }
    if (e == HPE_OK && done < len) {
        /* http-parser stopped without saying why (an upgrade) */
        reject(r, 400, "protocol upgrades are not supported");
        return CMPR_HTTPREQ_REJECT;
    }
    return (enum cmpr_httpreq_event)r->event;
}

void
cmpr_httpreq_next(struct cmpr_httpreq *r)
{
    if (r->event == CMPR_HTTPREQ_REQUEST)
        r->event = CMPR_HTTPREQ_NEED_MORE;
}

/* ---------------- answers (client side) ---------------- */

static int
a_header_field(http_parser *p, const char *at, size_t len)
{
    struct cmpr_httprsp *a = p->data;

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
    struct cmpr_httprsp *a = p->data;

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
    struct cmpr_httprsp *a = p->data;

    a->keep_alive = http_should_keep_alive(p);
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX
            && p->content_length > a->body.max) {
        a->too_big = 1;
        return -1;
    }
    return 0;
}

static int
a_body(http_parser *p, const char *at, size_t len)
{
    struct cmpr_httprsp *a = p->data;

    if (cmpr_buf_put(&a->body, at, len) != CMPR_OK) {
        a->too_big = 1;
        return -1;
    }
    return 0;
}

static int
a_complete(http_parser *p)
{
    ((struct cmpr_httprsp *)p->data)->done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings rsp_settings = {
    .on_header_field = a_header_field,
    .on_header_value = a_header_value,
    .on_headers_complete = a_headers_complete,
    .on_body = a_body,
    .on_message_complete = a_complete,
};

void
cmpr_httprsp_init(struct cmpr_httprsp *a, size_t max_body)
{
    memset(a, 0, sizeof(*a));
    http_parser_init(&a->parser, HTTP_RESPONSE);
    a->parser.data = a;
    cmpr_buf_init(&a->body, max_body);
}

void
cmpr_httprsp_free(struct cmpr_httprsp *a)
{
    cmpr_buf_free(&a->body);
}

int
cmpr_httprsp_feed(struct cmpr_httprsp *a, const char *data, size_t len, int eof, const char **why_r)
{
    enum http_errno e;

    *why_r = NULL;
    if (a->done)
        return 0;
    if (eof) {
        /* an answer delimited by the end of the connection */
        if (http_body_is_final(&a->parser) == 0 && cmpr_buf_len(&a->body) > 0
                && !(a->parser.flags & F_CHUNKED) && a->parser.content_length == ULLONG_MAX) {
            a->done = 1;
            a->keep_alive = 0;
            return 0;
        }
        *why_r = "the connection ended before the answer";
        return -1;
    }
    http_parser_execute(&a->parser, &rsp_settings, data, len);
    if (a->too_big) {
        *why_r = "the answer is larger than allowed";
        return -1;
    }
    e = HTTP_PARSER_ERRNO(&a->parser);
    if (e != HPE_OK && e != HPE_PAUSED) {
        *why_r = http_errno_description(e);
        return -1;
    }
    return 0;
}

int
cmpr_httprsp_status(const struct cmpr_httprsp *a)
{
    return (int)a->parser.status_code;
}

int
cmpr_httprsp_is_cmp(const struct cmpr_httprsp *a)
{
    return cmpr_http_is_cmp_type(a->ctype, 0);
}
