#include "core/err.h"

const char *
cmpr_strerror(int err)
{
    switch (err) {
    case CMPR_OK: return "success";
    case CMPR_ERR_INTERNAL: return "internal error";
    case CMPR_ERR_ALLOC: return "out of memory";
    case CMPR_ERR_INVALID_ARG: return "invalid argument";
    case CMPR_ERR_DECODE: return "not a well-formed PKIMessage";
    case CMPR_ERR_TOO_LARGE: return "input exceeds the size limit";
    case CMPR_ERR_TRAILING: return "trailing bytes after the message";
    case CMPR_ERR_TOO_DEEP: return "nesting exceeds the depth limit";
    case CMPR_ERR_TRUNCATED: return "input is truncated";
    case CMPR_ERR_NOT_DER: return "encoding is BER, not DER";
    case CMPR_ERR_ENCODE: return "encoding failed";
    case CMPR_ERR_BAD_ALG: return "unsupported or refused protection algorithm";
    case CMPR_ERR_ITER_LIMIT: return "iteration count exceeds the configured limit";
    case CMPR_ERR_MAC_MISMATCH: return "MAC verification failed";
    case CMPR_ERR_SIG_INVALID: return "signature verification failed";
    case CMPR_ERR_NO_PROTECTION: return "message is not protected";
    case CMPR_ERR_WRONG_INTEGRITY: return "wrong kind of protection (MAC vs signature)";
    case CMPR_ERR_NO_SIGNER: return "no certificate to verify the signature";
    case CMPR_ERR_BAD_PARAM: return "malformed algorithm parameters";
    case CMPR_ERR_NOT_FOUND: return "not found";
    case CMPR_ERR_EXISTS: return "already exists";
    case CMPR_ERR_STORE: return "storage failure";
    case CMPR_ERR_CONFLICT: return "changed meanwhile by another process";
    case CMPR_ERR_CONFIG: return "configuration error";
    case CMPR_ERR_IO: return "I/O error";
    case CMPR_ERR_BAD_HEADER: return "answer does not belong to the request";
    case CMPR_ERR_BAD_BODY: return "unexpected or malformed answer body";
    default: return "unknown error";
    }
}
