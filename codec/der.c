/* Bounded DER skeleton checks. No allocation, no recursion, no I/O. */
#include "codec/der.h"
#include "base/err.h"

#include <stdint.h>

int
cmpr_der_read(const unsigned char *p, size_t avail, struct cmpr_der_tlv *tlv,
              const char **what_r)
{
    size_t i = 0, n, len = 0;
    unsigned long tag;

    if (avail < 2) {
        *what_r = "a tag and a length (input ends)";
        return CMPR_ERR_TRUNCATED;
    }
    tlv->cls = p[0] >> 6;
    tlv->constructed = (p[0] & 0x20) != 0;
    tag = p[0] & 0x1f;
    i = 1;
    if (tag == 0x1f) {              /* high tag number form */
        tag = 0;
        for (n = 0;; n++) {
            if (i >= avail) {
                *what_r = "the rest of a high tag number (input ends)";
                return CMPR_ERR_TRUNCATED;
            }
            if (n == 0 && p[i] == 0x80) {
                *what_r = "a minimal high tag number";
                return CMPR_ERR_NOT_DER;
            }
            if (n >= 4) {
                *what_r = "a tag number below 2^28";
                return CMPR_ERR_DECODE;
            }
            tag = (tag << 7) | (p[i] & 0x7f);
            if ((p[i++] & 0x80) == 0)
                break;
        }
        if (tag < 0x1f) {
            *what_r = "the low tag form for tags below 31";
            return CMPR_ERR_NOT_DER;
        }
    }
    tlv->tag = tag;
    if (i >= avail) {
        *what_r = "a length octet (input ends)";
        return CMPR_ERR_TRUNCATED;
    }
    if (p[i] < 0x80) {
        len = p[i++];
    } else if (p[i] == 0x80) {
        *what_r = "a definite length (indefinite length is BER, not DER)";
        return CMPR_ERR_NOT_DER;
    } else {
        n = p[i++] & 0x7f;
        if (n > sizeof(size_t) || n > 4) {
            *what_r = "a length below 4 GiB";
            return CMPR_ERR_TOO_LARGE;
        }
        if (avail - i < n) {
            *what_r = "the length octets (input ends)";
            return CMPR_ERR_TRUNCATED;
        }
        if (p[i] == 0) {
            *what_r = "a minimal length encoding";
            return CMPR_ERR_NOT_DER;
        }
        while (n-- > 0)
            len = (len << 8) | p[i++];
        if (len < 0x80) {
            *what_r = "the short length form for lengths below 128";
            return CMPR_ERR_NOT_DER;
        }
    }
    tlv->hdr_len = i;
    tlv->len = len;
    if (len > avail - i) {
        *what_r = "as many content bytes as the length says (input ends)";
        return CMPR_ERR_TRUNCATED;
    }
    return CMPR_OK;
}

int
cmpr_der_check(const unsigned char *buf, size_t len, unsigned max_depth,
               struct cmpr_der_err *err)
{
    /* end offset of each open constructed TLV */
    size_t ends[128];
    unsigned depth = 0;
    size_t off = 0;
    struct cmpr_der_tlv tlv;
    const char *what = NULL;
    int r;

    if (max_depth > sizeof(ends) / sizeof(ends[0]))
        max_depth = sizeof(ends) / sizeof(ends[0]);
    if (len == 0) {
        err->offset = 0;
        err->what = "a DER SEQUENCE (input is empty)";
        return CMPR_ERR_TRUNCATED;
    }
    if (buf[0] != 0x30) {
        err->offset = 0;
        err->what = "a DER SEQUENCE (tag 0x30)";
        return CMPR_ERR_DECODE;
    }
    for (;;) {
        size_t limit;

        /* close every constructed TLV that ends here */
        while (depth > 0 && off == ends[depth - 1])
            depth--;
        if (depth == 0 && off > 0) {
            if (off != len) {
                err->offset = off;
                err->what = "the end of input (trailing bytes after the message)";
                return CMPR_ERR_TRAILING;
            }
            return CMPR_OK;
        }
        limit = depth > 0 ? ends[depth - 1] : len;
        if ((r = cmpr_der_read(buf + off, limit - off, &tlv, &what)) != CMPR_OK) {
            err->offset = off;
            err->what = what;
            return r;
        }
        if (tlv.constructed) {
            if (depth >= max_depth) {
                err->offset = off;
                err->what = "less deeply nested ASN.1";
                return CMPR_ERR_TOO_DEEP;
            }
            ends[depth++] = off + tlv.hdr_len + tlv.len;
            off += tlv.hdr_len;
        } else {
            off += tlv.hdr_len + tlv.len;
        }
    }
}

size_t
cmpr_der_hdr_size(size_t len)
{
    size_t n = 2;

    if (len >= 0x80)
        for (size_t l = len; l > 0; l >>= 8)
            n++;
    return n;
}

unsigned char *
cmpr_der_put_hdr(unsigned char *w, unsigned char tag, size_t len)
{
    size_t n = cmpr_der_hdr_size(len) - 1;      /* length octets */

    *w++ = tag;
    if (n == 1) {
        *w++ = (unsigned char)len;
        return w;
    }
    *w++ = (unsigned char)(0x80 | (n - 1));
    for (size_t i = n - 1; i > 0; i--)
        *w++ = (unsigned char)(len >> (8 * (i - 1)));
    return w;
}
