/* PKIMessage protection (RFC 9810 5.1.3, RFC 9481): PasswordBasedMac, PBMAC1
 * and signatures, created and verified. Pure computation, no I/O. */
#ifndef CMPR_CODEC_PROTECT_H
#define CMPR_CODEC_PROTECT_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "codec/asn1.h"

/* Derived MAC keys, keyed by (secret, salt, OWF/PRF, iterations, key length),
 * so the second message of a transaction does not pay the derivation again.
 * Thread-safe; secrets are stored only as SHA-256 digests, keys are wiped.
 * The cache also holds the random seed of the salts cmpr_protect_mac makes
 * with it: one salt per secret and parameters for CMPR_MAC_SALT_PERIOD
 * seconds, so the key of our own messages is derived once in that time. */
struct cmpr_mac_cache;
struct cmpr_mac_cache *cmpr_mac_cache_new(size_t entries);
void cmpr_mac_cache_free(struct cmpr_mac_cache *cache);
/* how long one of our salts is used, in seconds; 0: a random salt per message */
void cmpr_mac_cache_set_salt_period(struct cmpr_mac_cache *cache, unsigned seconds);
/* hits and misses since creation (for tests and metrics) */
void cmpr_mac_cache_stats(struct cmpr_mac_cache *cache, unsigned long *hits_r,
                          unsigned long *misses_r);

struct cmpr_verify_opts {
    /* the most a key derivation may cost, in invocations of its PRF
     * (PasswordBasedMac: iterations; PBKDF2: iterations times output
     * blocks of keyLength); 0: CMPR_DEFAULT_MAX_MAC_ITER */
    unsigned max_iter;
    struct cmpr_mac_cache *cache;       /* may be NULL */
    /* what the derivations of a mail or a batch may still cost, taken as
     * they are made (CMPR_ERR_MAC_BUDGET when spent); NULL: no budget */
    unsigned long *budget;
};

enum cmpr_mac_kind { CMPR_MAC_PBM = 1, CMPR_MAC_PBMAC1 = 2 };

struct cmpr_mac_params {
    int kind;                           /* enum cmpr_mac_kind */
    int owf_nid;                        /* PBM OWF / PBKDF2 PRF digest: NID_sha256 ... */
    int mac_nid;                        /* NID_hmac_sha1, NID_hmacWithSHA256 ... */
    unsigned iter;                      /* iteration count */
    size_t salt_len;                    /* 16 if 0 */
};

/* Fills p with OpenSSL-client-compatible PBM defaults (sha256, hmac-sha1, 500)
 * or RFC 9481 PBMAC1 defaults (PBKDF2-HMAC-SHA256, HMAC-SHA256, 10000). */
void cmpr_mac_params_default(struct cmpr_mac_params *p, int kind);
/* The parameters of a PasswordBasedMac or PBMAC1 protectionAlg (iterations
 * within max_iter; 0: the default cap), to protect an answer the way its
 * request was: CMPR_OK, CMPR_ERR_BAD_ALG / _BAD_PARAM / _ITER_LIMIT. */
int cmpr_mac_params_of(const X509_ALGOR *alg, unsigned max_iter, struct cmpr_mac_params *p);

/* DER of ProtectedPart ::= SEQUENCE { header, body }. */
int cmpr_protected_part(const CMPR_PKIMESSAGE *msg, unsigned char **der_r, size_t *len_r);

/* Sets protectionAlg (and its salt: random per message without a cache,
 * else the cache's salt of this secret and these parameters for the period)
 * and protection. Does not touch the sender or senderKID; set those first,
 * they are covered by the MAC. */
int cmpr_protect_mac(CMPR_PKIMESSAGE *msg, const unsigned char *secret, size_t secret_len,
                     const struct cmpr_mac_params *p, struct cmpr_mac_cache *cache);

/* Signs with key. md NULL picks SHA-256 (none for EdDSA). pss selects RSA-PSS
 * for RSA keys. If cert is given: sender := cert subject, senderKID := its SKI
 * (if any), and cert then chain go first in extraCerts (RFC 9483 3.3). */
int cmpr_protect_sig(CMPR_PKIMESSAGE *msg, EVP_PKEY *key, const EVP_MD *md, int pss,
                     X509 *cert, STACK_OF(X509) *chain);

/* Verifies a MAC-protected message with secret. CMPR_ERR_WRONG_INTEGRITY if it
 * is signature-protected, CMPR_ERR_BAD_ALG / ITER_LIMIT for refused parameters. */
int cmpr_verify_mac(const CMPR_PKIMESSAGE *msg, const unsigned char *secret,
                    size_t secret_len, const struct cmpr_verify_opts *opts);
/* The same over pp, the ProtectedPart's DER as received (cmpr_msg_decode_lean). */
int cmpr_verify_mac_over(const CMPR_PKIMESSAGE *msg, const unsigned char *pp, size_t pp_len,
                         const unsigned char *secret, size_t secret_len,
                         const struct cmpr_verify_opts *opts);

/* Verifies a signature-protected message with pubkey (no path validation:
 * that is the trust store's business in core/). */
int cmpr_verify_sig(const CMPR_PKIMESSAGE *msg, EVP_PKEY *pubkey);

/* The certificate that protects msg per RFC 9483 3.3: the first extraCert
 * whose subject key identifier matches senderKID, else the first extraCert. */
X509 *cmpr_msg_get0_protection_cert(const CMPR_PKIMESSAGE *msg);

/* Generic signature check used for protection and POP: data signed with alg. */
int cmpr_sig_verify_data(const X509_ALGOR *alg, EVP_PKEY *pk, const unsigned char *data,
                         size_t len, const unsigned char *sig, size_t siglen);

/* Proof of possession by signature (RFC 4211 4.1, RFC 9810 5.2.8.2).
 * Without poposkInput the template must hold subject and publicKey and the
 * signature covers the DER of certReq; with poposkInput it covers that, and
 * its publicKey must equal the template's. authInfo (sender or publicKeyMAC)
 * is left to the caller. CMPR_ERR_SIG_INVALID maps to badPOP; a POP of another
 * kind (raVerified, keyEncipherment, keyAgreement) is CMPR_ERR_INVALID_ARG. */
int cmpr_crm_verify_pop_sig(const CMPR_CERTREQMSG *crm);
/* Creates a signature POP over certReq with key (template must hold subject
 * and publicKey). md NULL: SHA-256 (none for EdDSA). */
int cmpr_crm_create_pop_sig(CMPR_CERTREQMSG *crm, EVP_PKEY *key, const EVP_MD *md);

/* The PKIFailureInfo bit (CMPR_FI_*) that answers a codec error, or -1. */
int cmpr_err_failinfo(int err);

/* PasswordBasedMac key derivation (RFC 9810 5.1.3.1): BASEKEY = OWF^iter(secret||salt);
 * a key of keylen bytes is the leading bytes of BASEKEY, or, when longer than
 * the hash, BASEKEY || OWF("1"||BASEKEY) || OWF("2"||BASEKEY) ... */
int cmpr_pbm_derive(const EVP_MD *owf, const unsigned char *secret, size_t secret_len,
                    const unsigned char *salt, size_t salt_len, unsigned iter,
                    unsigned char *key, size_t keylen);

/* certHash for certConf (RFC 9810 5.3.18): with hashAlg (pvno 3) that digest,
 * otherwise the certificate's signature digest (SHA-512 for Ed25519, SHAKE256
 * for Ed448, as X509_digest_sig). out must hold EVP_MAX_MD_SIZE bytes. */
int cmpr_cert_hash(const X509 *cert, const X509_ALGOR *hashAlg, unsigned char *out,
                   unsigned int *len_r);
/* The same from the certificate's DER, without parsing it into an X509
 * (OpenSSL 3 parses the public key in it at great cost): the digest over
 * the bytes, the signature algorithm read from them. CMPR_ERR_DECODE if it
 * is no certificate. */
int cmpr_cert_hash_der(const unsigned char *der, size_t len, const X509_ALGOR *hashAlg, unsigned char *out,
                       unsigned int *len_r);

#endif
