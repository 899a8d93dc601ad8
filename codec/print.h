/* Human-readable and JSON rendering of a PKIMessage (cmprouter dump, logs).
 * Writes to a caller-supplied BIO; opens nothing itself. */
#ifndef CMPR_CODEC_PRINT_H
#define CMPR_CODEC_PRINT_H

#include <openssl/bio.h>

#include "codec/asn1.h"

#define CMPR_PRINT_JSON 0x1

int cmpr_print_msg(BIO *out, const CMPR_PKIMESSAGE *msg, unsigned flags);

/* One line for logs: "ir tid=0a1b.. pvno=2 prot=PBM" into buf. */
const char *cmpr_msg_summary(const CMPR_PKIMESSAGE *msg, char *buf, size_t len);

/* What an answer means, for a person (the text part of a reply mail):
 * "Certificate issued: subject CN=x, serial 5A0B..., valid until ...",
 * "Waiting: ... send a poll request after 60 seconds", "Rejected: badPOP:
 * ..." and so on. Plain ASCII/UTF-8 lines, at most len bytes. */
const char *cmpr_msg_describe(const CMPR_PKIMESSAGE *msg, char *buf, size_t len);

#endif
