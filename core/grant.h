/* What a certificate gets: a request (subject, key, validity, requested
 * extensions) held against its profile. The answer is a grant, exactly
 * what was asked or with each change named (RFC 9810 5.2.3 accepted /
 * grantedWithMods), or a refusal (badCertTemplate) when the request cannot
 * be met: a requested critical extension the profile does not allow, a
 * key or subject it does not take. No I/O: the issuer's certificate is
 * given, the store is not touched. See cmprouter.conf(5) [profile NAME]. */
#ifndef CMPR_CORE_GRANT_H
#define CMPR_CORE_GRANT_H

#include <time.h>

#include <openssl/x509.h>

#include "core/ca.h"
#include "core/config.h"

#define CMPR_GRANT_MODS 512

struct cmpr_ca_grant {
    /* basicConstraints, keyUsage, extendedKeyUsage, certificatePolicies,
     * subjectAltName, nameConstraints: from the request or the profile;
     * the CA adds its own (key identifiers, CRL distribution point, AIA) */
    STACK_OF(X509_EXTENSION) *exts;
    time_t not_before, not_after;
    int modified;                   /* grantedWithMods */
    char mods[CMPR_GRANT_MODS];     /* each change, "; " between them */
};

/* Holds req against pr for a certificate issued by issuer at now. On
 * refusal returns CMPR_ERR_INVALID_ARG with *failbit_r a CMPR_FI_* bit and
 * why[] the statusString; otherwise CMPR_OK and *g (cleared by
 * cmpr_ca_grant_clear). */
int cmpr_ca_decide(const struct cmpr_conf_profile *pr, X509 *issuer, const struct cmpr_ca_request *req,
                   time_t now, struct cmpr_ca_grant *g, int *failbit_r, char *why, size_t whylen);
void cmpr_ca_grant_clear(struct cmpr_ca_grant *g);

#endif
