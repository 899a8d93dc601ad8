/* A bounded DER reader: checks the TLV skeleton of untrusted bytes before any
 * template decoder sees them, and says where and what went wrong. */
#ifndef CMPR_CODEC_DER_H
#define CMPR_CODEC_DER_H

#include <stddef.h>

struct cmpr_der_tlv {
    unsigned cls;           /* 0 universal, 1 application, 2 context, 3 private */
    int constructed;
    unsigned long tag;
    size_t hdr_len;         /* identifier + length octets */
    size_t len;             /* content length */
};

/* Where a check failed: byte offset into the input and what was expected there. */
struct cmpr_der_err {
    size_t offset;
    const char *what;
};

/* Reads one TLV header at p (avail bytes). Definite, minimal lengths only. */
int cmpr_der_read(const unsigned char *p, size_t avail, struct cmpr_der_tlv *tlv,
                  const char **what_r);

/* Checks that buf[0..len) is exactly one DER TLV whose constructed parts nest
 * at most max_depth deep and fill their parents exactly. */
int cmpr_der_check(const unsigned char *buf, size_t len, unsigned max_depth,
                   struct cmpr_der_err *err);

/* Writing: the size of a tag and length header for len content bytes (one
 * tag octet), and that header written at w (returns the end of it). */
size_t cmpr_der_hdr_size(size_t len);
unsigned char *cmpr_der_put_hdr(unsigned char *w, unsigned char tag, size_t len);

#endif
