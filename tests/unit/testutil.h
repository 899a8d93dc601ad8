/* Shared helpers for the cmocka unit tests. */
#ifndef CMPR_TESTUTIL_H
#define CMPR_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Reads a whole file; fails the test if it cannot. Caller frees. */
unsigned char *tu_read(const char *path, size_t *len_r);
/* Path of a file under tests/data (CMPR_TEST_DATA or the source tree). */
const char *tu_data(const char *rel, char *buf, size_t len);
/* Lists *.der / *.PKI files of a directory (NULL-terminated, caller frees all). */
char **tu_list(const char *dir, const char *suffix);
void tu_list_free(char **l);

/* "ec:P-256", "rsa:2048", "ed25519", "ed448", "ec:P-384", "ec:P-521" */
EVP_PKEY *tu_key(const char *spec);
/* A certificate for key, signed by issuer_key (self-signed if NULL), with
 * digitalSignature key usage and a subject key identifier. */
X509 *tu_cert(EVP_PKEY *key, const char *cn, EVP_PKEY *issuer_key, X509 *issuer, int ca);

/* An EnvelopedData (made by the CMS API) of content for rcpt, in our type. */
struct cmpr_envelopeddata_st;
struct cmpr_envelopeddata_st *tu_envdata(const unsigned char *content, size_t len, X509 *rcpt);

/* Where a request comes from, for tu_handle (the envelope's setters). */
struct tu_info {
    const char *medium, *peer, *label, *operation, *tls_subject;
    int resumed;
    const char *push;               /* unused */
};
struct cmpr_core;
/* The core's answer to der through an envelope answered on this thread:
 * CMPR_OK with *out_r (malloc()ed), or CMPR_ERR_*. */
int tu_handle(struct cmpr_core *core, const struct tu_info *in, const unsigned char *der, size_t len,
              unsigned char **out_r, size_t *out_len_r);

/* The same through an envelope answered on loop (as HTTP and TCP submit):
 * runs the loop until the answer comes (bounded: 60 s). check, when not
 * NULL, runs at the moment the answer is handed over (check_arg). */
struct uv_loop_s;
int tu_handle_on(struct cmpr_core *core, struct uv_loop_s *loop, const struct tu_info *in,
                 const unsigned char *der, size_t len, void (*check)(void *arg), void *check_arg,
                 unsigned char **out_r, size_t *out_len_r);
/* Closes every handle left on loop (the core's), runs it to the end, closes it. */
void tu_loop_close(struct uv_loop_s *loop);

/* Makes every later fdatasync of the SQLite store db's WAL fail (EINVAL):
 * a pipe's read end over the one descriptor the store opened read-only on
 * it to sync it (SQLite's own are read-write). Close pfd when done. */
void tu_break_wal_sync(const char *db, int pfd[2]);

/* Removes a temporary directory tree made by a test. */
void tu_rmrf(const char *path);

#endif
