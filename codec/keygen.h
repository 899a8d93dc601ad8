/* Central key generation (RFC 9483 4.1.6): the template that asks for it,
 * the key the CA makes, and the package that carries the private key back:
 * EnvelopedData (to the requester's certificate, or its MAC secret as a
 * password recipient) around SignedData (by the CA's CMP signer) around an
 * AsymmetricKeyPackage (RFC 5958). No I/O. */
#ifndef CMPR_CODEC_KEYGEN_H
#define CMPR_CODEC_KEYGEN_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "codec/asn1.h"

/* A new key: ec:P-256, ec:P-384, ec:P-521, rsa:BITS (2048..8192), ed25519,
 * ed448; NULL for anything else. */
EVP_PKEY *cmpr_key_generate(const char *spec);

/* Does the template's public key ask for central key generation (absent, or
 * an algorithm with an empty key)? 1 with the key type asked for in spec
 * ("ec:P-256", "rsa:2048", "ed25519", or "" when the CA chooses), else 0. */
int cmpr_spki_wants_central(const CMPR_SPKI *spki, char *spec, size_t len);
/* The template's public key that asks for a key of spec ("" or NULL: no
 * publicKey at all is sent; then *spki_r is NULL). CMPR_OK or an error. */
int cmpr_spki_for_central(const char *spec, CMPR_SPKI **spki_r);

/* key, signed by signkey/signcert (chain sent along) and enveloped for
 * rcpt, or for the password secret when rcpt is NULL. */
CMPR_ENVELOPEDDATA *cmpr_keygen_seal(EVP_PKEY *key, EVP_PKEY *signkey, X509 *signcert, STACK_OF(X509) *chain,
                                     X509 *rcpt, const unsigned char *secret, size_t slen);
/* The private key out of env: opened with key/cert (or secret when key is
 * NULL), its signature checked against trusted (with untrusted as
 * intermediates); NULL with why[] on failure. */
EVP_PKEY *cmpr_keygen_open(const CMPR_ENVELOPEDDATA *env, EVP_PKEY *key, X509 *cert, const unsigned char *secret,
                           size_t slen, X509_STORE *trusted, STACK_OF(X509) *untrusted, char *why, size_t wlen);

#endif
