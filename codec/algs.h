/* OpenSSL algorithms fetched once per process, not per message. With
 * OpenSSL 3 a legacy EVP_sha256() makes every EVP_DigestInit_ex fetch the
 * implementation again (a lock and a lookup in the method store), and the
 * one-shot HMAC() fetches HMAC and its digest on every call: in
 * PasswordBasedMac's 500 rounds that was most of the time of a message. */
#ifndef CMPR_CODEC_ALGS_H
#define CMPR_CODEC_ALGS_H

#include <stddef.h>

#include <openssl/evp.h>

/* SHA-1 and SHA-2 (NID_sha1 ... NID_sha512, NID_sha512_224/256) fetched
 * once; any other digest as OpenSSL names it (EVP_get_digestbynid); NULL
 * if there is none. Thread-safe. */
const EVP_MD *cmpr_md(int nid);
/* HMAC with md over data: 1, or 0. For the digests of cmpr_md a context
 * made once is copied; others take OpenSSL's one-shot path. */
int cmpr_hmac(const EVP_MD *md, const unsigned char *key, size_t keylen, const unsigned char *data,
              size_t len, unsigned char *out, unsigned int *outlen);

#endif
