/* The one table of error codes: code, name, text. */
#include "base/err.h"

#include <stddef.h>

#define E(code, text) { code, #code, text }
static const struct {
    int code;
    const char *name, *text;
} errors[] = {
    E(CMPR_OK, "success"),
    E(CMPR_ERR_INTERNAL, "internal error"),
    E(CMPR_ERR_ALLOC, "out of memory"),
    E(CMPR_ERR_INVALID_ARG, "invalid argument"),
    E(CMPR_ERR_DECODE, "not a well-formed PKIMessage"),
    E(CMPR_ERR_TOO_LARGE, "input exceeds the size limit"),
    E(CMPR_ERR_TRAILING, "trailing bytes after the message"),
    E(CMPR_ERR_TOO_DEEP, "nesting exceeds the depth limit"),
    E(CMPR_ERR_TRUNCATED, "input is truncated"),
    E(CMPR_ERR_NOT_DER, "encoding is BER, not DER"),
    E(CMPR_ERR_ENCODE, "encoding failed"),
    E(CMPR_ERR_BAD_ALG, "unsupported or refused protection algorithm"),
    E(CMPR_ERR_ITER_LIMIT, "key derivation cost (iterations times output blocks) exceeds the configured limit"),
    E(CMPR_ERR_MAC_BUDGET, "the key derivations of this mail or batch have spent their budget"),
    E(CMPR_ERR_DECRYPT, "the encrypted content does not open with the key or secret given"),
    E(CMPR_ERR_MAC_MISMATCH, "MAC verification failed"),
    E(CMPR_ERR_SIG_INVALID, "signature verification failed"),
    E(CMPR_ERR_NO_PROTECTION, "message is not protected"),
    E(CMPR_ERR_WRONG_INTEGRITY, "wrong kind of protection (MAC vs signature)"),
    E(CMPR_ERR_NO_SIGNER, "no certificate to verify the signature"),
    E(CMPR_ERR_BAD_PARAM, "malformed algorithm parameters"),
    E(CMPR_ERR_NOT_FOUND, "not found"),
    E(CMPR_ERR_EXISTS, "already exists"),
    E(CMPR_ERR_STORE, "storage failure"),
    E(CMPR_ERR_CONFIG, "configuration error"),
    E(CMPR_ERR_IO, "I/O error"),
    E(CMPR_ERR_BAD_HEADER, "answer does not belong to the request"),
    E(CMPR_ERR_BAD_BODY, "unexpected or malformed answer body"),
    E(CMPR_ERR_STATE, "state change refused"),
    E(CMPR_ERR_CONFLICT, "changed meanwhile by another process"),
    E(CMPR_ERR_UNREACHABLE, "the peer cannot be reached"),
    E(CMPR_ERR_TIMEOUT, "no answer in time"),
    E(CMPR_ERR_PEER, "the peer's answer breaks the protocol"),
};
#undef E

static size_t
find(int err)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (errors[i].code == err)
            return i;
    return (size_t)-1;
}

const char *
cmpr_strerror(int err)
{
    size_t i = find(err);

    return i != (size_t)-1 ? errors[i].text : "unknown error";
}

const char *
cmpr_errname(int err)
{
    size_t i = find(err);

    return i != (size_t)-1 ? errors[i].name : "CMPR_ERR_?";
}
