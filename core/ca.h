/* The issuing engine: CA keys and certificates loaded once, profiles applied
 * to requests, serial numbers (time-ordered, 80 random bits) reserved in
 * the store, CRLs. */
#ifndef CMPR_CORE_CA_H
#define CMPR_CORE_CA_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "codec/asn1.h"
#include "core/config.h"
#include "core/store.h"

struct cmpr_ca {
    const struct cmpr_conf_ca *conf;
    EVP_PKEY *key;
    X509 *cert;
    STACK_OF(X509) *chain;          /* above cert, towards the root */
    X509 *root;                     /* trust anchor (caPubs) */
    EVP_PKEY *signer_key;           /* protects responses: signer or the CA itself */
    X509 *signer_cert;
    STACK_OF(X509) *signer_chain;   /* signer_cert's issuers */
    EVP_PKEY *enc_key;              /* krr/archive: may be NULL */
    X509 *enc_cert;
    pthread_mutex_t crl_mu;         /* one CRL file written at a time, the newest last */
};

int cmpr_ca_load(const struct cmpr_conf_ca *cc, struct cmpr_ca **ca_r, char **err_r);
void cmpr_ca_free(struct cmpr_ca *ca);

/* What a request asks for, whatever body carried it. */
struct cmpr_ca_request {
    const X509_NAME *subject;
    EVP_PKEY *pubkey;
    const CMPR_SPKI *spki;                  /* pubkey as the request carried it, or NULL */
    const STACK_OF(X509_EXTENSION) *exts;   /* requested extensions */
    time_t not_before, not_after;           /* 0: not asked */
};

struct cmpr_ca_grant;

/* A new serial number for the time ms (milliseconds since 1970): 16
 * octets, the first six the time (its low 46 bits, the first octet's top
 * bits 01: positive, never shorter), the other ten (80 bits) from the
 * DRBG. Serials issued later sort later, so each lands at the end of the
 * store's serial index (a random one dirtied a page of its own per
 * certificate); 80 random bits keep them unpredictable (CA/B Forum
 * Baseline Requirements 7.1: at least 64). */
int cmpr_ca_serial(unsigned char serial[16], uint64_t ms);

/* Issues a certificate with a fresh serial (cmpr_ca_serial) reserved in st: req's
 * subject and key, the grant's validity and extensions (core/grant.h), the
 * CA's key identifiers, and the profile's CRL distribution point and AIA. */
int cmpr_ca_issue(struct cmpr_ca *ca, struct cmpr_store *st, const struct cmpr_conf_profile *pr,
                  const struct cmpr_ca_request *req, const struct cmpr_ca_grant *g, X509 **cert_r);

/* A CRL of every revoked certificate in st, valid crl_days. */
int cmpr_ca_make_crl(struct cmpr_ca *ca, struct cmpr_store *st, X509_CRL **crl_r);
/* Writes the CRL to conf->crl_file (or path) atomically. */
int cmpr_ca_write_crl(struct cmpr_ca *ca, struct cmpr_store *st, const char *path);

/* The chain a client needs for an issued certificate: CA cert + chain. */
STACK_OF(X509) *cmpr_ca_get1_chain(const struct cmpr_ca *ca);

#define CMPR_OID_KP_CMCCA "1.3.6.1.5.5.7.3.27"
#define CMPR_OID_KP_CMCRA "1.3.6.1.5.5.7.3.28"
/* Does x carry this extended key usage? */
int cmpr_cert_has_eku(X509 *x, const char *oid);

/* Certificates (PEM, every one in the file; or one DER), a certificate (the
 * first), a private key (PEM, pass for an encrypted one, or DER); NULL when
 * the file cannot be read or holds none. */
STACK_OF(X509) *cmpr_load_certs(const char *path);
X509 *cmpr_load_cert(const char *path);
EVP_PKEY *cmpr_load_key(const char *path, const char *pass);

/* Does the name fit an exact DN or fnmatch pattern on its RFC 2253 form? */
int cmpr_name_matches(const X509_NAME *name, const char *pattern);
void cmpr_name_text(const X509_NAME *name, char *buf, size_t len);

#endif
