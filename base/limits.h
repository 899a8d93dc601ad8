/* Every cap on untrusted input, in one place (curl dynbuf style). */
#ifndef CMPR_LIMITS_H
#define CMPR_LIMITS_H

/* One DER PKIMessage, whatever medium brought it. RFC 9811 sets no limit;
 * OpenSSL's own tests send ~100 KiB of extraCerts, post-quantum certs are large. */
#define CMPR_MAX_MSG_SIZE            (1024u * 1024u)

/* Depth of constructed TLVs we accept in one message. A PKIMessage with a
 * certificate inside a nested message is ~15 deep; OpenSSL itself stops at 30
 * template levels. */
#define CMPR_MAX_DER_DEPTH           64

/* nested messages inside nested messages (RFC 9810 5.1.3.5 batching uses one level). */
#define CMPR_MAX_NESTED_DEPTH        4

/* PasswordBasedMac / PBKDF2 iteration count. A request asking for more is a
 * denial-of-service attempt and is refused with badAlg (RFC 9810 5.1.3.1 notes it). */
#define CMPR_DEFAULT_MAX_MAC_ITER    100000u
#define CMPR_MIN_MAC_ITER            1u

/* PBM salt and shared secret sizes. */
#define CMPR_MAX_SALT_LEN            1024u
#define CMPR_MAX_SECRET_LEN          1024u

/* Longest derived MAC key (PBKDF2 keyLength, octets). Bouncy Castle based
 * clients have been seen asking for 4096. */
#define CMPR_MAX_MAC_KEY_LEN         4096u

/* Derived-MAC-key cache entries (per process). */
#define CMPR_MAC_KEY_CACHE_SIZE      256u

/* Seconds one salt of our own MACs is used for one secret and one set of
 * parameters (codec/protect.c own_salt). */
#define CMPR_MAC_SALT_PERIOD         60u

/* Input to `cmprouter dump` (PEM/base64 expands DER by 4/3 plus headers). */
#define CMPR_MAX_DUMP_INPUT          (4u * 1024u * 1024u)

#endif
