/* cmprouter error codes: negative ints, 0 is success (OpenSSH ssherr style).
 * One table in err.c holds each code's name and text. */
#ifndef CMPR_ERR_H
#define CMPR_ERR_H

#define CMPR_OK                  0
#define CMPR_ERR_INTERNAL       -1   /* a bug or an OpenSSL failure we cannot classify */
#define CMPR_ERR_ALLOC          -2
#define CMPR_ERR_INVALID_ARG    -3
#define CMPR_ERR_DECODE         -10  /* not a well-formed PKIMessage */
#define CMPR_ERR_TOO_LARGE      -11  /* input exceeds a size cap */
#define CMPR_ERR_TRAILING       -12  /* bytes after the PKIMessage */
#define CMPR_ERR_TOO_DEEP       -13  /* nesting deeper than allowed */
#define CMPR_ERR_TRUNCATED      -14  /* input ends inside a TLV */
#define CMPR_ERR_NOT_DER        -15  /* BER-only encoding (indefinite length, non-minimal length) */
#define CMPR_ERR_ENCODE         -16
#define CMPR_ERR_BAD_ALG        -20  /* unknown/unsupported/refused protection algorithm (failInfo badAlg) */
#define CMPR_ERR_ITER_LIMIT     -21  /* iteration count beyond the configured cap (badAlg) */
#define CMPR_ERR_MAC_MISMATCH   -22  /* MAC does not verify (badMessageCheck) */
#define CMPR_ERR_SIG_INVALID    -23  /* signature does not verify (badMessageCheck) */
#define CMPR_ERR_NO_PROTECTION  -24  /* message has no protection or no protectionAlg */
#define CMPR_ERR_WRONG_INTEGRITY -25 /* MAC where a signature was needed or vice versa */
#define CMPR_ERR_NO_SIGNER      -26  /* no certificate to verify the signature with */
#define CMPR_ERR_BAD_PARAM      -27  /* malformed algorithm parameters (badDataFormat) */
#define CMPR_ERR_MAC_BUDGET     -28  /* key derivations beyond what this mail or batch may cost (badAlg) */
#define CMPR_ERR_DECRYPT        -29  /* EnvelopedData that does not open with the key or secret given */
#define CMPR_ERR_NOT_FOUND      -30
#define CMPR_ERR_EXISTS         -31  /* unique key already present (transactionID, serial, nonce) */
#define CMPR_ERR_STORE          -32  /* storage backend failure */
#define CMPR_ERR_CONFIG         -33  /* configuration error */
#define CMPR_ERR_IO             -34
#define CMPR_ERR_BAD_HEADER     -40  /* an answer that does not belong to our request */
#define CMPR_ERR_BAD_BODY       -41  /* an answer body we did not ask for, or malformed */
#define CMPR_ERR_STATE          -50  /* the state machine refused a transition */
#define CMPR_ERR_CONFLICT       -60  /* the record changed since it was read (another process) */
/* a peer we talk to (upstream CA, SSH or SMTP server) */
#define CMPR_ERR_UNREACHABLE    -70  /* the message could not go out (connect, DNS, TLS, refused) */
#define CMPR_ERR_TIMEOUT        -71  /* it went out, no answer in time */
#define CMPR_ERR_PEER           -72  /* the peer answered, but not with what the protocol allows */

/* "out of memory" ... ("unknown error" for a code not in the table) */
const char *cmpr_strerror(int err);
/* "CMPR_ERR_ALLOC" ... ("CMPR_ERR_?" for a code not in the table) */
const char *cmpr_errname(int err);

#endif
