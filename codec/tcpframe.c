/* TCP-Message framing: incremental, bounded parser and encoders. No I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/tcpframe.h"
#include "base/err.h"

/* the parser holds at most one partial frame plus one read's worth */
#define READ_SLACK 65536

uint32_t
cmpr_tcp_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

void
cmpr_tcp_parser_init(struct cmpr_tcp_parser *p, size_t max_frame)
{
    memset(p, 0, sizeof(*p));
    p->max_frame = max_frame;
    cmpr_buf_init(&p->in, max_frame + CMPR_TCP_HDR10 + READ_SLACK);
}

void
cmpr_tcp_parser_free(struct cmpr_tcp_parser *p)
{
    cmpr_buf_free(&p->in);
    memset(p, 0, sizeof(*p));
}

size_t
cmpr_tcp_pending(const struct cmpr_tcp_parser *p)
{
    return cmpr_buf_len(&p->in);
}

int
cmpr_tcp_feed(struct cmpr_tcp_parser *p, const void *data, size_t len)
{
    return cmpr_buf_put(&p->in, data, len) == CMPR_OK ? 0 : -1;
}

/* byte 4 tells the framing: 10 is version 10, 0..6 an RFC 2510 flag code
 * (Wireshark's heuristic), anything else an unsupported version */
static enum cmpr_tcp_status
parse_at(const unsigned char *b, size_t avail, size_t max_frame, struct cmpr_tcp_frame *f,
         size_t *used)
{
    uint32_t l;

    memset(f, 0, sizeof(*f));
    if (avail < CMPR_TCP_HDR2510)
        return CMPR_TCP_NEED_MORE;
    l = cmpr_tcp_u32(b);
    if (b[4] == CMPR_TCP_VERSION) {
        f->version = CMPR_TCP_VERSION;
        if (l < 3)
            return CMPR_TCP_E_LENGTH;
        if ((uint64_t)l - 3 > max_frame)
            return CMPR_TCP_E_TOO_BIG;
        if (avail < 4 + (size_t)l)
            return CMPR_TCP_NEED_MORE;
        f->flags = b[5];
        f->type = b[6];
        f->value = b + CMPR_TCP_HDR10;
        f->value_len = l - 3;
    } else if (b[4] <= CMPR_TCP2510_ERRORMSGREP) {
        f->version = CMPR_TCP_V2510;
        if (l < 1)
            return CMPR_TCP_E_LENGTH;
        if ((uint64_t)l - 1 > max_frame)
            return CMPR_TCP_E_TOO_BIG;
        if (avail < 4 + (size_t)l)
            return CMPR_TCP_NEED_MORE;
        f->type = b[4];
        f->value = b + CMPR_TCP_HDR2510;
        f->value_len = l - 1;
    } else {
        f->version = b[4];
        return CMPR_TCP_E_VERSION;
    }
    *used = 4 + (size_t)l;
    return CMPR_TCP_FRAME;
}

enum cmpr_tcp_status
cmpr_tcp_next(struct cmpr_tcp_parser *p, struct cmpr_tcp_frame *f)
{
    size_t used = 0;
    enum cmpr_tcp_status st;

    if (cmpr_buf_len(&p->in) == 0) {
        memset(f, 0, sizeof(*f));
        return CMPR_TCP_NEED_MORE;
    }
    st = parse_at(cmpr_buf_ptr(&p->in), cmpr_buf_len(&p->in), p->max_frame, f, &used);
    if (st == CMPR_TCP_FRAME)
        cmpr_buf_consume(&p->in, used);
    return st;
}

enum cmpr_tcp_status
cmpr_tcp_parse_one(const unsigned char *buf, size_t len, struct cmpr_tcp_frame *f)
{
    size_t used = 0;
    enum cmpr_tcp_status st = parse_at(buf, len, len, f, &used);

    if (st == CMPR_TCP_FRAME && used != len)
        return CMPR_TCP_E_LENGTH;       /* trailing bytes: not exactly one frame */
    if (st == CMPR_TCP_NEED_MORE)
        return CMPR_TCP_E_LENGTH;
    return st;
}

size_t
cmpr_tcp_header(int version, unsigned flags, unsigned type, size_t value_len,
                unsigned char hdr[CMPR_TCP_HDR10])
{
    if (version == CMPR_TCP_V2510) {
        put_u32(hdr, (uint32_t)(value_len + 1));
        hdr[4] = (unsigned char)type;
        return CMPR_TCP_HDR2510;
    }
    put_u32(hdr, (uint32_t)(value_len + 3));
    hdr[4] = CMPR_TCP_VERSION;
    hdr[5] = (unsigned char)(flags & CMPR_TCP_FLAG_CLOSE);
    hdr[6] = (unsigned char)type;
    return CMPR_TCP_HDR10;
}

size_t
cmpr_tcp_finrep(int version, unsigned flags, unsigned char *out)
{
    /* v10 finRep and RFC 2510 negPollRep share code 3 and the 0x00 value */
    size_t h = cmpr_tcp_header(version, flags, CMPR_TCP_FINREP, 1, out);

    out[h] = 0;
    return h + 1;
}

size_t
cmpr_tcp_pollrep(int version, unsigned flags, uint32_t ref, uint32_t check_after_s,
                 int64_t now, unsigned char *out)
{
    size_t h = cmpr_tcp_header(version, flags, CMPR_TCP_POLLREP, 8, out);

    put_u32(out + h, ref);
    /* version 10: relative seconds; RFC 2510: absolute seconds since 1970 */
    put_u32(out + h + 4, version == CMPR_TCP_V2510 ? (uint32_t)(now + check_after_s)
                                                   : check_after_s);
    return h + 8;
}

size_t
cmpr_tcp_pollreq(int version, unsigned flags, uint32_t ref, unsigned char *out)
{
    size_t h = cmpr_tcp_header(version, flags, CMPR_TCP_POLLREQ, 4, out);

    put_u32(out + h, ref);
    return h + 4;
}

size_t
cmpr_tcp_errormsg(int version, unsigned flags, unsigned code, uint32_t data,
                  const char *text, unsigned char *out, size_t outlen)
{
    unsigned char v[256];
    size_t n = 0, tl = text ? strlen(text) : 0, h;

    if (version == CMPR_TCP_V2510) {
        /* RFC 2510: the value is human-readable text only */
        if (tl > sizeof(v))
            tl = sizeof(v);
        memcpy(v, text ? text : "", tl);
        n = tl;
    } else {
        size_t dl = code == CMPR_TCP_ERR_VERSION || code == CMPR_TCP_ERR_TYPE ? 1
                    : code == CMPR_TCP_ERR_POLLID ? 4 : 0;

        v[0] = (unsigned char)(code >> 8);
        v[1] = (unsigned char)code;
        v[2] = 0;
        v[3] = (unsigned char)dl;
        if (dl == 1)
            v[4] = (unsigned char)data;
        else if (dl == 4)
            put_u32(v + 4, data);
        n = 4 + dl;
        if (tl > sizeof(v) - n)
            tl = sizeof(v) - n;
        memcpy(v + n, text ? text : "", tl);
        n += tl;
    }
    if (outlen < n + CMPR_TCP_HDR10)
        return 0;
    h = cmpr_tcp_header(version, flags, CMPR_TCP_ERRORMSGREP, n, out);
    memcpy(out + h, v, n);
    return h + n;
}

const char *
cmpr_tcp_type_name(int version, unsigned type)
{
    static const char *const v10[] = { "pkiReq", "pollRep", "pollReq", "finRep", "unused",
                                       "pkiRep", "errorMsgRep" };
    static const char *const v0[] = { "msgReq", "pollRep", "pollReq", "negPollRep",
                                      "partialMsgRep", "finalMsgRep", "errorMsgRep" };

    if (type > 6)
        return "unknown";
    return version == CMPR_TCP_V2510 ? v0[type] : v10[type];
}

void
cmpr_tcp_describe_error(const struct cmpr_tcp_frame *f, char *err, size_t errlen)
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
