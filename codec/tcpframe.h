/* TCP-Message framing (draft-ietf-pkix-cmp-tcp-00 .. transport-protocols-11,
 * "version 10") and the older RFC 2510 5.2 framing, told apart by byte 4 as
 * Wireshark does. See ../shared/reference/cmp-wire.md 1.
 *
 * The parser is incremental and bounded: feed it whatever a read returned
 * (a frame split at any byte, several frames in one read) and take frames out
 * as they complete. It never does I/O and never allocates more than the
 * configured maximum frame size per parser. */
#ifndef CMPR_TCPFRAME_H
#define CMPR_TCPFRAME_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define CMPR_TCP_VERSION        10      /* the only TCP-Message version we speak */
#define CMPR_TCP_V2510          0       /* pseudo version: RFC 2510 5-byte header */
#define CMPR_TCP_HDR10          7
#define CMPR_TCP_HDR2510        5
#define CMPR_TCP_FLAG_CLOSE     0x01

/* version 10 message types */
enum cmpr_tcp_type {
    CMPR_TCP_PKIREQ = 0, CMPR_TCP_POLLREP = 1, CMPR_TCP_POLLREQ = 2, CMPR_TCP_FINREP = 3,
    CMPR_TCP_PKIREP = 5, CMPR_TCP_ERRORMSGREP = 6
};

/* RFC 2510 5.2 flag codes */
enum cmpr_tcp2510_type {
    CMPR_TCP2510_MSGREQ = 0, CMPR_TCP2510_POLLREP = 1, CMPR_TCP2510_POLLREQ = 2,
    CMPR_TCP2510_NEGPOLLREP = 3, CMPR_TCP2510_PARTIALMSGREP = 4,
    CMPR_TCP2510_FINALMSGREP = 5, CMPR_TCP2510_ERRORMSGREP = 6
};

/* errorMsgRep Error-Type values (version 10) */
#define CMPR_TCP_ERR_VERSION        0x0101  /* VersionNotSupported, data = 10 */
#define CMPR_TCP_ERR_CLIENT         0x0200  /* GeneralClientError */
#define CMPR_TCP_ERR_TYPE           0x0201  /* InvalidMessageType, data = type */
#define CMPR_TCP_ERR_POLLID         0x0202  /* InvalidPollID, data = reference */
#define CMPR_TCP_ERR_SERVER         0x0300  /* GeneralServerError */

struct cmpr_tcp_frame {
    int version;                /* CMPR_TCP_VERSION or CMPR_TCP_V2510 (or the bad one) */
    unsigned flags;             /* version 10 only */
    unsigned type;
    const unsigned char *value; /* points into the parser's buffer until the next feed */
    size_t value_len;
};

enum cmpr_tcp_status {
    CMPR_TCP_NEED_MORE = 0,     /* no complete frame yet */
    CMPR_TCP_FRAME = 1,         /* *f holds a frame; call cmpr_tcp_next again */
    CMPR_TCP_E_TOO_BIG = -1,    /* announced length above the maximum */
    CMPR_TCP_E_LENGTH = -2,     /* length too small for the header */
    CMPR_TCP_E_VERSION = -3     /* byte 4 neither 10 nor an RFC 2510 code; f->version set */
};

struct cmpr_tcp_parser {
    struct cmpr_buf in;         /* bytes held: at most one frame and a read more */
    size_t max_frame;           /* maximum value length */
};

void cmpr_tcp_parser_init(struct cmpr_tcp_parser *p, size_t max_frame);
void cmpr_tcp_parser_free(struct cmpr_tcp_parser *p);
/* Appends bytes. Returns 0, or -1 if the parser would have to hold more than
 * one maximum frame plus header (the caller should then call next and treat
 * its error) or out of memory. */
int cmpr_tcp_feed(struct cmpr_tcp_parser *p, const void *data, size_t len);
/* Takes the next complete frame. After an error the parser is unusable: the
 * stream has lost its framing and the caller must close the connection. */
enum cmpr_tcp_status cmpr_tcp_next(struct cmpr_tcp_parser *p, struct cmpr_tcp_frame *f);
/* Bytes held that do not yet form a frame (for timeouts: is a frame open?). */
size_t cmpr_tcp_pending(const struct cmpr_tcp_parser *p);

/* One-shot parse of a whole buffer that must hold exactly one frame (e.g. the
 * body of an application/pkixcmp-poll HTTP request). */
enum cmpr_tcp_status cmpr_tcp_parse_one(const unsigned char *buf, size_t len,
                                        struct cmpr_tcp_frame *f);

/* Encoders write the header into hdr (7 or 5 bytes) for a value of value_len
 * and return the header length; the caller sends hdr then value. */
size_t cmpr_tcp_header(int version, unsigned flags, unsigned type, size_t value_len,
                       unsigned char hdr[CMPR_TCP_HDR10]);
/* Whole small frames into out (at least 32 bytes); return the frame length. */
size_t cmpr_tcp_finrep(int version, unsigned flags, unsigned char *out);
size_t cmpr_tcp_pollrep(int version, unsigned flags, uint32_t ref, uint32_t check_after_s,
                        int64_t now, unsigned char *out);
size_t cmpr_tcp_pollreq(int version, unsigned flags, uint32_t ref, unsigned char *out);
/* errorMsgRep; text (may be NULL) is truncated to fit in 256 bytes of out */
size_t cmpr_tcp_errormsg(int version, unsigned flags, unsigned code, uint32_t data,
                         const char *text, unsigned char *out, size_t outlen);

const char *cmpr_tcp_type_name(int version, unsigned type);
uint32_t cmpr_tcp_u32(const unsigned char *p);
/* an errorMsgRep frame (from an unauthenticated peer) as printable text */
void cmpr_tcp_describe_error(const struct cmpr_tcp_frame *f, char *err, size_t errlen);

#endif
