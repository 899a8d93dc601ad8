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
/* len bytes from OpenSSL's DRBG for values that are public (nonces,
 * transactionIDs, salts, serial numbers; never keys): taken from a per-thread buffer filled 512 bytes at a time, since
 * each RAND_bytes call costs a getpid(2) (OpenSSL's fork check) and on a
 * virtual machine that is most of what a nonce costs (over
 * CMPR_RAND_PUBLIC_MAX bytes: straight from RAND_bytes). A forked child
 * starts with an empty buffer. 1, or 0 if the DRBG failed. */
#define CMPR_RAND_PUBLIC_MAX 64
int cmpr_rand_public(unsigned char *out, size_t len);

#endif
