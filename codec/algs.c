/* OpenSSL algorithms fetched once (algs.h). */
#include "codec/algs.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/rand.h>

static const int nids[] = { NID_sha1, NID_sha224, NID_sha256, NID_sha384, NID_sha512,
                            NID_sha512_224, NID_sha512_256 };
#define N_MD (sizeof(nids) / sizeof(nids[0]))

static EVP_MD *mds[N_MD];
static EVP_MAC_CTX *hmacs[N_MD];        /* HMAC keyed by nothing yet, digest set */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
fetch_all(void)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);

    for (size_t i = 0; i < N_MD; i++) {
        const char *name = OBJ_nid2sn(nids[i]);
        OSSL_PARAM p[2];

        if ((mds[i] = EVP_MD_fetch(NULL, name, NULL)) == NULL || mac == NULL
                || (hmacs[i] = EVP_MAC_CTX_new(mac)) == NULL)
            continue;
        p[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)EVP_MD_get0_name(mds[i]), 0);
        p[1] = OSSL_PARAM_construct_end();
        if (!EVP_MAC_CTX_set_params(hmacs[i], p)) {
            EVP_MAC_CTX_free(hmacs[i]);
            hmacs[i] = NULL;
        }
    }
    EVP_MAC_free(mac);
}

static int
slot(int nid)
{
    pthread_once(&once, fetch_all);
    for (size_t i = 0; i < N_MD; i++)
        if (nids[i] == nid)
            return (int)i;
    return -1;
}

const EVP_MD *
cmpr_md(int nid)
{
    int i = slot(nid);

    if (i >= 0 && mds[i] != NULL)
        return mds[i];
    return nid == NID_undef ? NULL : EVP_get_digestbynid(nid);
}

int
cmpr_hmac(const EVP_MD *md, const unsigned char *key, size_t keylen, const unsigned char *data,
          size_t len, unsigned char *out, unsigned int *outlen)
{
    int i = md != NULL ? slot(EVP_MD_get_type(md)) : -1;
    EVP_MAC_CTX *ctx;
    size_t n = 0;
    int ok;

    if (i < 0 || hmacs[i] == NULL)
        return md != NULL && HMAC(md, key, (int)keylen, data, len, out, outlen) != NULL;
    /* a copy of the template: the template itself is only read, by any thread */
    if ((ctx = EVP_MAC_CTX_dup(hmacs[i])) == NULL)
        return 0;
    ok = EVP_MAC_init(ctx, key, keylen, NULL) && EVP_MAC_update(ctx, data, len)
         && EVP_MAC_final(ctx, out, &n, EVP_MAX_MD_SIZE);
    EVP_MAC_CTX_free(ctx);
    *outlen = (unsigned int)n;
    return ok;
}

/* ---- public random values ---- */

#define RAND_POOL 512

static _Thread_local struct {
    unsigned char b[RAND_POOL];
    size_t used;                        /* the bytes handed out (RAND_POOL: empty) */
    unsigned forks;                     /* the forks seen when it was filled */
} pool = { .used = RAND_POOL };
static pthread_once_t rand_once = PTHREAD_ONCE_INIT;
static unsigned forks;                  /* children forked: a copied buffer is never used */

static void
rand_forked(void)
{
    __atomic_add_fetch(&forks, 1, __ATOMIC_RELAXED);
}

static void
rand_init(void)
{
    (void)pthread_atfork(NULL, NULL, rand_forked);
}

int
cmpr_rand_public(unsigned char *out, size_t len)
{
    unsigned f;

    if (len > CMPR_RAND_PUBLIC_MAX || len > INT_MAX)
        return len <= INT_MAX && RAND_bytes(out, (int)len) == 1;
    pthread_once(&rand_once, rand_init);
    f = __atomic_load_n(&forks, __ATOMIC_RELAXED);
    if (pool.forks != f || RAND_POOL - pool.used < len) {
        if (RAND_bytes(pool.b, RAND_POOL) != 1) {
            pool.used = RAND_POOL;
            return 0;
        }
        pool.used = 0;
        pool.forks = f;
    }
    memcpy(out, pool.b + pool.used, len);
    memset(pool.b + pool.used, 0, len);
    pool.used += len;
    return 1;
}
