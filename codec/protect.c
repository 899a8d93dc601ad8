/* PKIMessage protection: PasswordBasedMac, PBMAC1 and signatures. */
#include "codec/protect.h"
#include "codec/algs.h"
#include "codec/der.h"
#include "codec/msg.h"
#include "codec/oids.h"
#include "base/err.h"
#include "base/limits.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------- derived key cache ---------------- */

struct cache_slot {
    unsigned char id[32];               /* SHA-256 over every derivation input */
    unsigned char *key;                 /* CMPR_MAX_MAC_KEY_LEN bytes when used */
    size_t keylen;
    int used;
    unsigned long last;                 /* c->clock at the last use (LRU within a set) */
};

struct cmpr_mac_cache {
    pthread_mutex_t lock;
    size_t n;
    unsigned long hits, misses, clock;
    struct cache_slot *slots;
    unsigned char seed[32];             /* of our own salts (own_salt) */
    unsigned salt_period;               /* seconds; 0: a random salt per message */
};

/* 2-way set associative: an entry lives in one of the two slots of its set,
 * so two busy transactions whose ids share a set do not evict each other */
static struct cache_slot *
cache_find(struct cmpr_mac_cache *c, const unsigned char id[32], int for_put)
{
    size_t sets = c->n / 2 > 0 ? c->n / 2 : 1, base = (((size_t)id[0] << 8 | id[1]) % sets) * 2;
    struct cache_slot *a = &c->slots[base], *b = &c->slots[base + 1 < c->n ? base + 1 : base];

    if (a->used && CRYPTO_memcmp(a->id, id, 32) == 0)
        return a;
    if (b->used && CRYPTO_memcmp(b->id, id, 32) == 0)
        return b;
    if (!for_put)
        return NULL;
    if (!a->used)
        return a;
    if (!b->used)
        return b;
    return a->last <= b->last ? a : b;
}

struct cmpr_mac_cache *
cmpr_mac_cache_new(size_t entries)
{
    struct cmpr_mac_cache *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->n = entries > 0 ? entries : CMPR_MAC_KEY_CACHE_SIZE;
    c->salt_period = CMPR_MAC_SALT_PERIOD;
    if (RAND_priv_bytes(c->seed, sizeof(c->seed)) != 1
            || (c->slots = calloc(c->n, sizeof(*c->slots))) == NULL
            || pthread_mutex_init(&c->lock, NULL) != 0) {
        OPENSSL_cleanse(c->seed, sizeof(c->seed));
        free(c->slots);
        free(c);
        return NULL;
    }
    return c;
}

void
cmpr_mac_cache_set_salt_period(struct cmpr_mac_cache *c, unsigned seconds)
{
    pthread_mutex_lock(&c->lock);
    c->salt_period = seconds;
    pthread_mutex_unlock(&c->lock);
}

void
cmpr_mac_cache_free(struct cmpr_mac_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].key != NULL)
            OPENSSL_clear_free(c->slots[i].key, CMPR_MAX_MAC_KEY_LEN);
    free(c->slots);
    OPENSSL_cleanse(c->seed, sizeof(c->seed));
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void
cmpr_mac_cache_stats(struct cmpr_mac_cache *c, unsigned long *hits_r, unsigned long *misses_r)
{
    pthread_mutex_lock(&c->lock);
    *hits_r = c->hits;
    *misses_r = c->misses;
    pthread_mutex_unlock(&c->lock);
}

static int
cache_id(unsigned char id[32], int kind, int nid, unsigned iter, size_t keylen,
         const unsigned char *salt, size_t salt_len,
         const unsigned char *secret, size_t secret_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint64_t hdr[5] = { (uint64_t)kind, (uint64_t)nid, iter, keylen, salt_len };
    int ok;

    ok = ctx != NULL && EVP_DigestInit_ex(ctx, cmpr_md(NID_sha256), NULL)
        && EVP_DigestUpdate(ctx, hdr, sizeof(hdr))
        && EVP_DigestUpdate(ctx, salt, salt_len)
        && EVP_DigestUpdate(ctx, secret, secret_len)
        && EVP_DigestFinal_ex(ctx, id, NULL);
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int
cache_get(struct cmpr_mac_cache *c, const unsigned char id[32], unsigned char *key, size_t keylen)
{
    struct cache_slot *s;
    int hit = 0;

    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    s = cache_find(c, id, 0);
    if (s != NULL && s->keylen == keylen) {
        memcpy(key, s->key, keylen);
        hit = 1;
        c->hits++;
        s->last = ++c->clock;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

static void
cache_put(struct cmpr_mac_cache *c, const unsigned char id[32], const unsigned char *key,
          size_t keylen)
{
    struct cache_slot *s;

    if (c == NULL || keylen > CMPR_MAX_MAC_KEY_LEN)
        return;
    pthread_mutex_lock(&c->lock);
    s = cache_find(c, id, 1);
    s->last = ++c->clock;
    if (s->key == NULL && (s->key = OPENSSL_malloc(CMPR_MAX_MAC_KEY_LEN)) == NULL) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    OPENSSL_cleanse(s->key, CMPR_MAX_MAC_KEY_LEN);
    memcpy(s->id, id, 32);
    memcpy(s->key, key, keylen);
    s->keylen = keylen;
    s->used = 1;
    pthread_mutex_unlock(&c->lock);
}

/* ---------------- algorithm tables ---------------- */

/* MAC NIDs allowed in PasswordBasedMac / PBMAC1 and their digests (RFC 9481 6.1). */
static const EVP_MD *
hmac_md(int mac_nid)
{
    switch (mac_nid) {
    case NID_hmac_sha1: case NID_hmacWithSHA1: return cmpr_md(NID_sha1);
    case NID_hmacWithSHA224: return cmpr_md(NID_sha224);
    case NID_hmacWithSHA256: return cmpr_md(NID_sha256);
    case NID_hmacWithSHA384: return cmpr_md(NID_sha384);
    case NID_hmacWithSHA512: return cmpr_md(NID_sha512);
    default: return NULL;
    }
}

static int
hmac_nid_for_md(int md_nid)
{
    switch (md_nid) {
    case NID_sha1: return NID_hmacWithSHA1;
    case NID_sha224: return NID_hmacWithSHA224;
    case NID_sha256: return NID_hmacWithSHA256;
    case NID_sha384: return NID_hmacWithSHA384;
    case NID_sha512: return NID_hmacWithSHA512;
    default: return NID_undef;
    }
}

/* One-way functions allowed for PBM (RFC 9481 2: SHA-1 and SHA-2). */
static const EVP_MD *
owf_md(const ASN1_OBJECT *obj)
{
    switch (OBJ_obj2nid(obj)) {
    case NID_sha1: return cmpr_md(NID_sha1);
    case NID_sha224: return cmpr_md(NID_sha224);
    case NID_sha256: return cmpr_md(NID_sha256);
    case NID_sha384: return cmpr_md(NID_sha384);
    case NID_sha512: return cmpr_md(NID_sha512);
    default: return NULL;
    }
}

void
cmpr_mac_params_default(struct cmpr_mac_params *p, int kind)
{
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->salt_len = 16;
    if (kind == CMPR_MAC_PBMAC1) {
        p->owf_nid = NID_sha256;
        p->mac_nid = NID_hmacWithSHA256;
        p->iter = 10000;
    } else {
        p->owf_nid = NID_sha256;
        p->mac_nid = NID_hmac_sha1;
        p->iter = 500;
    }
}

/* ---------------- protected part ---------------- */

int
cmpr_protected_part(const CMPR_PKIMESSAGE *msg, unsigned char **der_r, size_t *len_r)
{
    CMPR_PROTECTEDPART pp;
    unsigned char *der = NULL;
    int n;

    *der_r = NULL;
    pp.header = msg->header;
    pp.body = msg->body;
    if ((n = i2d_CMPR_PROTECTEDPART(&pp, &der)) <= 0)
        return CMPR_ERR_ENCODE;
    *der_r = der;
    *len_r = (size_t)n;
    return CMPR_OK;
}

/* ---------------- PasswordBasedMac ---------------- */

int
cmpr_pbm_derive(const EVP_MD *owf, const unsigned char *secret, size_t secret_len,
                const unsigned char *salt, size_t salt_len, unsigned iter,
                unsigned char *key, size_t keylen)
{
    unsigned char base[EVP_MAX_MD_SIZE], blk[EVP_MAX_MD_SIZE];
    unsigned int hlen = 0, blen = 0;
    EVP_MD_CTX *ctx = NULL;
    size_t off;
    int r = CMPR_ERR_INTERNAL;

    if (iter < 1)
        return CMPR_ERR_BAD_PARAM;
    if ((ctx = EVP_MD_CTX_new()) == NULL)
        return CMPR_ERR_ALLOC;
    if (!EVP_DigestInit_ex(ctx, owf, NULL) || !EVP_DigestUpdate(ctx, secret, secret_len)
            || !EVP_DigestUpdate(ctx, salt, salt_len) || !EVP_DigestFinal_ex(ctx, base, &hlen))
        goto out;
    for (unsigned i = 1; i < iter; i++)
        if (!EVP_DigestInit_ex(ctx, owf, NULL) || !EVP_DigestUpdate(ctx, base, hlen)
                || !EVP_DigestFinal_ex(ctx, base, &hlen))
            goto out;
    if (keylen <= hlen) {
        memcpy(key, base, keylen);
    } else {
        /* key expansion: BASEKEY || OWF("1"||BASEKEY) || OWF("2"||BASEKEY) ... */
        memcpy(key, base, hlen);
        off = hlen;
        for (unsigned i = 1; off < keylen; i++) {
            char num[16];
            int nlen = snprintf(num, sizeof(num), "%u", i);

            if (!EVP_DigestInit_ex(ctx, owf, NULL) || !EVP_DigestUpdate(ctx, num, (size_t)nlen)
                    || !EVP_DigestUpdate(ctx, base, hlen) || !EVP_DigestFinal_ex(ctx, blk, &blen))
                goto out;
            memcpy(key + off, blk, keylen - off < blen ? keylen - off : blen);
            off += blen;
        }
    }
    r = CMPR_OK;
 out:
    OPENSSL_cleanse(base, sizeof(base));
    OPENSSL_cleanse(blk, sizeof(blk));
    EVP_MD_CTX_free(ctx);
    return r;
}

static int
hmac(const EVP_MD *md, const unsigned char *key, size_t keylen, const unsigned char *data,
     size_t len, unsigned char *out, unsigned int *outlen)
{
    return cmpr_hmac(md, key, keylen, data, len, out, outlen);
}

static int
check_iter(const ASN1_INTEGER *ai, unsigned max_iter, unsigned *iter_r)
{
    long v;

    /* ASN1_INTEGER_get returns -1 on overflow; check the width first */
    if (ai == NULL || ASN1_STRING_length(ai) > 8)
        return CMPR_ERR_ITER_LIMIT;
    if (ai->type == V_ASN1_NEG_INTEGER)
        return CMPR_ERR_BAD_PARAM;
    v = ASN1_INTEGER_get(ai);
    if (v < (long)CMPR_MIN_MAC_ITER)
        return CMPR_ERR_BAD_PARAM;
    if ((unsigned long)v > max_iter)
        return CMPR_ERR_ITER_LIMIT;
    *iter_r = (unsigned)v;
    return CMPR_OK;
}

/* A derivation's cost in hash invocations of its PRF, iterations times
 * output blocks, within max_iter; taken from *budget when one is given
 * (a derivation the cache saves costs nothing). */
static int
pay(unsigned long iter, size_t keylen, size_t prf_len, unsigned max_iter, unsigned long *budget)
{
    unsigned long work = iter * (unsigned long)((keylen + prf_len - 1) / prf_len);

    if (work > max_iter)
        return CMPR_ERR_ITER_LIMIT;
    if (budget != NULL) {
        if (*budget < work)
            return CMPR_ERR_MAC_BUDGET;
        *budget -= work;
    }
    return CMPR_OK;
}

/* Computes the MAC over data for the protectionAlg alg. The derivation's
 * cost is checked before anything is derived: iterations times the PRF's
 * output blocks at most max_iter, PBMAC1's keyLength at most the HMAC's
 * block (a longer key is hashed down by HMAC: it would only add work). */
/* A PasswordBasedMac or PBMAC1 protectionAlg, unpacked and checked: the
 * algorithms known, the iteration count within max_iter, the salt within
 * its cap. The one parser for verifying (mac_compute) and for answering
 * alike (cmpr_mac_params_of). */
struct mac_alg {
    int kind;                           /* CMPR_PROT_PBM / CMPR_PROT_PBMAC1 */
    CMPR_PBMPARAMETER *pbm;
    CMPR_PBMAC1PARAM *pb1;
    PBKDF2PARAM *kdf;
    const EVP_MD *owf;                  /* PBM's OWF, or PBKDF2's PRF digest */
    const EVP_MD *md;                   /* the MAC's HMAC digest */
    int mac_nid;
    unsigned iter;
    const unsigned char *salt;
    size_t salt_len;
};

static void
mac_alg_free(struct mac_alg *a)
{
    CMPR_PBMPARAMETER_free(a->pbm);
    CMPR_PBMAC1PARAM_free(a->pb1);
    PBKDF2PARAM_free(a->kdf);
}

static int
mac_alg_parse(const X509_ALGOR *alg, unsigned max_iter, struct mac_alg *a)
{
    const ASN1_OBJECT *aoid = NULL;
    int ptype = 0, r;
    const void *pval = NULL;

    memset(a, 0, sizeof(*a));
    X509_ALGOR_get0(&aoid, &ptype, &pval, alg);
    a->kind = cmpr_prot_kind(aoid);
    if (a->kind != CMPR_PROT_PBM && a->kind != CMPR_PROT_PBMAC1)
        return a->kind == CMPR_PROT_SIG ? CMPR_ERR_WRONG_INTEGRITY : CMPR_ERR_BAD_ALG;
    if (ptype != V_ASN1_SEQUENCE)
        return CMPR_ERR_BAD_PARAM;
    if (a->kind == CMPR_PROT_PBM) {
        if ((a->pbm = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMPARAMETER),
                                                (const ASN1_TYPE *)alg->parameter)) == NULL)
            return CMPR_ERR_BAD_PARAM;
        a->mac_nid = OBJ_obj2nid(a->pbm->mac->algorithm);
        if ((a->owf = owf_md(a->pbm->owf->algorithm)) == NULL || (a->md = hmac_md(a->mac_nid)) == NULL)
            return CMPR_ERR_BAD_ALG;
        if ((r = check_iter(a->pbm->iterationCount, max_iter, &a->iter)) != CMPR_OK)
            return r;
        a->salt = ASN1_STRING_get0_data(a->pbm->salt);
        a->salt_len = (size_t)ASN1_STRING_length(a->pbm->salt);
    } else {
        const ASN1_TYPE *saltt;
        int kdf_nid;

        a->owf = cmpr_md(NID_sha1);     /* PBKDF2 default prf: hmacWithSHA1 */
        if ((a->pb1 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMAC1PARAM),
                                                (const ASN1_TYPE *)alg->parameter)) == NULL)
            return CMPR_ERR_BAD_PARAM;
        /* RFC 8018 A.5: id-PBKDF2. Bouncy Castle, and every CMP peer built on
         * it, names it id-PBES2 around the same PBKDF2-params; real
         * PBES2-params do not parse as those, so this stays unambiguous. */
        kdf_nid = OBJ_obj2nid(a->pb1->keyDerivationFunc->algorithm);
        if (kdf_nid != NID_id_pbkdf2 && kdf_nid != NID_pbes2)
            return CMPR_ERR_BAD_ALG;
        if (a->pb1->keyDerivationFunc->parameter == NULL
                || a->pb1->keyDerivationFunc->parameter->type != V_ASN1_SEQUENCE
                || (a->kdf = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM),
                                                       a->pb1->keyDerivationFunc->parameter)) == NULL)
            return CMPR_ERR_BAD_PARAM;
        a->mac_nid = OBJ_obj2nid(a->pb1->messageAuthScheme->algorithm);
        if ((a->md = hmac_md(a->mac_nid)) == NULL)
            return CMPR_ERR_BAD_ALG;
        if (a->kdf->prf != NULL && (a->owf = hmac_md(OBJ_obj2nid(a->kdf->prf->algorithm))) == NULL)
            return CMPR_ERR_BAD_ALG;
        saltt = a->kdf->salt;
        if (saltt == NULL || saltt->type != V_ASN1_OCTET_STRING)
            return CMPR_ERR_BAD_PARAM;
        a->salt = ASN1_STRING_get0_data(saltt->value.octet_string);
        a->salt_len = (size_t)ASN1_STRING_length(saltt->value.octet_string);
        if (a->salt_len > CMPR_MAX_SALT_LEN)
            return CMPR_ERR_BAD_PARAM;
        if ((r = check_iter(a->kdf->iter, max_iter, &a->iter)) != CMPR_OK)
            return r;
    }
    if (a->salt_len > CMPR_MAX_SALT_LEN)
        return CMPR_ERR_BAD_PARAM;
    return CMPR_OK;
}

static int
mac_compute(const X509_ALGOR *alg, const unsigned char *secret, size_t secret_len,
            const unsigned char *data, size_t len, unsigned max_iter,
            struct cmpr_mac_cache *cache, unsigned long *budget, unsigned char *out,
            unsigned int *outlen)
{
    unsigned char key[CMPR_MAX_MAC_KEY_LEN], id[32];
    size_t keylen, prf_len;
    struct mac_alg a;
    int r;

    if (max_iter == 0)
        max_iter = CMPR_DEFAULT_MAX_MAC_ITER;
    if (secret_len > CMPR_MAX_SECRET_LEN)
        return CMPR_ERR_INVALID_ARG;
    if ((r = mac_alg_parse(alg, max_iter, &a)) != CMPR_OK)
        goto out;
    if (a.kind == CMPR_PROT_PBM) {
        /* HMAC takes any key length; use BASEKEY whole, as OpenSSL and Bouncy
         * Castle do (K = H). */
        keylen = prf_len = (size_t)EVP_MD_get_size(a.owf);
    } else {
        prf_len = (size_t)EVP_MD_get_size(a.owf);
        keylen = (size_t)EVP_MD_get_size(a.md);
        if (a.kdf->keylength != NULL) {
            long kl = ASN1_INTEGER_get(a.kdf->keylength);

            r = CMPR_ERR_BAD_PARAM;
            if (kl < 1 || (size_t)kl > sizeof(key))
                goto out;
            r = CMPR_ERR_BAD_ALG;       /* refused as needless work */
            if (kl > EVP_MD_get_block_size(a.md))
                goto out;
            keylen = (size_t)kl;
        }
        /* the cost first: nothing is derived when it is refused */
        if ((r = pay(a.iter, keylen, prf_len, max_iter, NULL)) != CMPR_OK)
            goto out;
    }
    r = CMPR_ERR_INTERNAL;
    if (!cache_id(id, a.kind, EVP_MD_get_type(a.owf), a.iter, keylen, a.salt, a.salt_len, secret, secret_len))
        goto out;
    if (!cache_get(cache, id, key, keylen)) {
        if ((r = pay(a.iter, keylen, prf_len, max_iter, budget)) != CMPR_OK)
            goto out;
        if (a.kind == CMPR_PROT_PBM) {
            if ((r = cmpr_pbm_derive(a.owf, secret, secret_len, a.salt, a.salt_len, a.iter, key, keylen)) != CMPR_OK)
                goto out;
        } else if (!PKCS5_PBKDF2_HMAC((const char *)secret, (int)secret_len, a.salt, (int)a.salt_len,
                                      (int)a.iter, a.owf, (int)keylen, key)) {
            r = CMPR_ERR_INTERNAL;
            goto out;
        }
        cache_put(cache, id, key, keylen);
    }
    r = hmac(a.md, key, keylen, data, len, out, outlen) ? CMPR_OK : CMPR_ERR_INTERNAL;
 out:
    OPENSSL_cleanse(key, sizeof(key));
    mac_alg_free(&a);
    return r;
}

/* The parameters a MAC-protected message used, to answer it alike:
 * PasswordBasedMac's OWF, MAC and iteration count, or PBMAC1's PBKDF2 PRF,
 * MAC and iteration count (salt length kept within bounds). */
int
cmpr_mac_params_of(const X509_ALGOR *alg, unsigned max_iter, struct cmpr_mac_params *p)
{
    struct mac_alg a;
    int r;

    if (alg == NULL)
        return CMPR_ERR_NO_PROTECTION;
    if ((r = mac_alg_parse(alg, max_iter ? max_iter : CMPR_DEFAULT_MAX_MAC_ITER, &a)) == CMPR_OK) {
        memset(p, 0, sizeof(*p));
        p->kind = a.kind == CMPR_PROT_PBM ? CMPR_MAC_PBM : CMPR_MAC_PBMAC1;
        p->owf_nid = EVP_MD_get_type(a.owf);
        p->mac_nid = a.mac_nid;
        p->iter = a.iter;
        /* a salt as long as theirs, within what is sensible */
        p->salt_len = a.salt_len < 16 ? 16 : a.salt_len;
    }
    mac_alg_free(&a);
    return r;
}

/* The salt of our own MAC. With a cache: HMAC-SHA256 under the cache's
 * random seed of the period's number, the parameters and the secret's
 * digest, so one secret with one set of parameters has one salt for
 * salt_period seconds and its key is derived once in that time, not once per
 * message (RFC 9810 5.1.3.1 leaves the salt to the sender; the parameters
 * then stay the same through a transaction, as recommended). The seed never
 * leaves the process: a salt cannot be known before it is used, so nothing
 * can be computed ahead against the secret. Without a cache, or with the
 * period 0: random per message. */
static int
own_salt(struct cmpr_mac_cache *c, const struct cmpr_mac_params *p, const unsigned char *secret,
         size_t secret_len, unsigned char *salt, size_t salt_len)
{
    unsigned char in[8 * 6 + 4 + 32], blk[32];
    uint64_t hdr[6];
    unsigned period;
    unsigned int n = 0;
    size_t off = 0;
    int ok = 1;

    if (c == NULL)
        return cmpr_rand_public(salt, salt_len);
    pthread_mutex_lock(&c->lock);
    period = c->salt_period;
    pthread_mutex_unlock(&c->lock);
    if (period == 0)
        return cmpr_rand_public(salt, salt_len);
    hdr[0] = (uint64_t)time(NULL) / period;
    hdr[1] = (uint64_t)p->kind;
    hdr[2] = (uint64_t)p->owf_nid;
    hdr[3] = (uint64_t)p->mac_nid;
    hdr[4] = p->iter;
    hdr[5] = salt_len;
    memcpy(in, hdr, sizeof(hdr));
    if (EVP_Digest(secret, secret_len, in + sizeof(hdr) + 4, NULL, cmpr_md(NID_sha256), NULL) != 1)
        return 0;
    for (uint32_t i = 0; ok && off < salt_len; i++, off += sizeof(blk)) {
        memcpy(in + sizeof(hdr), &i, 4);
        ok = cmpr_hmac(cmpr_md(NID_sha256), c->seed, sizeof(c->seed), in, sizeof(in), blk, &n) && n == sizeof(blk);
        if (ok)
            memcpy(salt + off, blk, salt_len - off < sizeof(blk) ? salt_len - off : sizeof(blk));
    }
    OPENSSL_cleanse(in, sizeof(in));
    OPENSSL_cleanse(blk, sizeof(blk));
    return ok;
}

static X509_ALGOR *
mac_algor_new(const struct cmpr_mac_params *p, struct cmpr_mac_cache *cache, const unsigned char *secret,
              size_t secret_len)
{
    unsigned char salt[CMPR_MAX_SALT_LEN];
    size_t salt_len = p->salt_len ? p->salt_len : 16;
    X509_ALGOR *alg = NULL;
    ASN1_TYPE *t = NULL;
    CMPR_PBMPARAMETER *pbm = NULL;
    CMPR_PBMAC1PARAM *pb1 = NULL;
    PBKDF2PARAM *kdf = NULL;
    ASN1_OBJECT *oid = NULL;

    if (salt_len > sizeof(salt) || !own_salt(cache, p, secret, secret_len, salt, salt_len))
        return NULL;
    if ((alg = X509_ALGOR_new()) == NULL)
        goto fail;
    if (p->kind == CMPR_MAC_PBM) {
        if ((pbm = CMPR_PBMPARAMETER_new()) == NULL
                || !ASN1_OCTET_STRING_set(pbm->salt, salt, (int)salt_len)
                || !X509_ALGOR_set0(pbm->owf, OBJ_nid2obj(p->owf_nid), V_ASN1_UNDEF, NULL)
                || !ASN1_INTEGER_set(pbm->iterationCount, (long)p->iter)
                || !X509_ALGOR_set0(pbm->mac, OBJ_nid2obj(p->mac_nid), V_ASN1_UNDEF, NULL))
            goto fail;
        if ((t = ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(CMPR_PBMPARAMETER), pbm, NULL)) == NULL
                || (oid = OBJ_txt2obj(CMPR_OID_PASSWORD_BASED_MAC, 1)) == NULL)
            goto fail;
    } else {
        ASN1_OCTET_STRING *os = NULL;
        ASN1_TYPE *kdft = NULL;

        if ((pb1 = CMPR_PBMAC1PARAM_new()) == NULL || (kdf = PBKDF2PARAM_new()) == NULL
                || (os = ASN1_OCTET_STRING_new()) == NULL
                || !ASN1_OCTET_STRING_set(os, salt, (int)salt_len)) {
            ASN1_OCTET_STRING_free(os);
            goto fail;
        }
        ASN1_TYPE_set(kdf->salt, V_ASN1_OCTET_STRING, os);
        if (!ASN1_INTEGER_set(kdf->iter, (long)p->iter)
                || (kdf->keylength = ASN1_INTEGER_new()) == NULL
                || !ASN1_INTEGER_set(kdf->keylength,
                                     EVP_MD_get_size(hmac_md(p->mac_nid)))
                || (kdf->prf = X509_ALGOR_new()) == NULL
                || !X509_ALGOR_set0(kdf->prf, OBJ_nid2obj(hmac_nid_for_md(p->owf_nid)),
                                    V_ASN1_NULL, NULL))
            goto fail;
        if ((kdft = ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), kdf, NULL)) == NULL)
            goto fail;
        if (!X509_ALGOR_set0(pb1->keyDerivationFunc, OBJ_nid2obj(NID_id_pbkdf2),
                             V_ASN1_SEQUENCE, kdft->value.sequence)) {
            ASN1_TYPE_free(kdft);
            goto fail;
        }
        kdft->value.sequence = NULL;
        ASN1_TYPE_free(kdft);
        if (!X509_ALGOR_set0(pb1->messageAuthScheme, OBJ_nid2obj(p->mac_nid), V_ASN1_NULL, NULL))
            goto fail;
        if ((t = ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(CMPR_PBMAC1PARAM), pb1, NULL)) == NULL
                || (oid = OBJ_txt2obj(CMPR_OID_PBMAC1, 1)) == NULL)
            goto fail;
    }
    if (!X509_ALGOR_set0(alg, oid, V_ASN1_SEQUENCE, t->value.sequence))
        goto fail;
    t->value.sequence = NULL;
    ASN1_TYPE_free(t);
    CMPR_PBMPARAMETER_free(pbm);
    CMPR_PBMAC1PARAM_free(pb1);
    PBKDF2PARAM_free(kdf);
    return alg;
 fail:
    ASN1_OBJECT_free(oid);
    ASN1_TYPE_free(t);
    CMPR_PBMPARAMETER_free(pbm);
    CMPR_PBMAC1PARAM_free(pb1);
    PBKDF2PARAM_free(kdf);
    X509_ALGOR_free(alg);
    return NULL;
}

static int
set_protection(CMPR_PKIMESSAGE *msg, const unsigned char *sig, size_t len)
{
    if (msg->protection == NULL && (msg->protection = ASN1_BIT_STRING_new()) == NULL)
        return CMPR_ERR_ALLOC;
    if (!ASN1_BIT_STRING_set(msg->protection, (unsigned char *)sig, (int)len))
        return CMPR_ERR_ALLOC;
    /* a whole number of octets: no unused bits */
    msg->protection->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    msg->protection->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    return CMPR_OK;
}

int
cmpr_protect_mac(CMPR_PKIMESSAGE *msg, const unsigned char *secret, size_t secret_len,
                 const struct cmpr_mac_params *p, struct cmpr_mac_cache *cache)
{
    unsigned char *der = NULL, mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t len;
    X509_ALGOR *alg;
    int r;

    if (p == NULL || (p->kind != CMPR_MAC_PBM && p->kind != CMPR_MAC_PBMAC1)
            || hmac_md(p->mac_nid) == NULL || p->iter < 1)
        return CMPR_ERR_INVALID_ARG;
    if ((alg = mac_algor_new(p, cache, secret, secret_len)) == NULL)
        return CMPR_ERR_INTERNAL;
    X509_ALGOR_free(msg->header->protectionAlg);
    msg->header->protectionAlg = alg;
    if ((r = cmpr_protected_part(msg, &der, &len)) != CMPR_OK)
        return r;
    /* our own parameters: their cost is ours to pay (a MAC longer than the
     * PRF's output takes several PBKDF2 blocks: at most 7, a 128-byte key
     * from SHA-1) */
    r = mac_compute(alg, secret, secret_len, der, len, p->iter > 100000000u ? p->iter : p->iter * 8u, cache,
                    NULL, mac, &maclen);
    OPENSSL_free(der);
    if (r != CMPR_OK)
        return r;
    return set_protection(msg, mac, maclen);
}

int
cmpr_verify_mac_over(const CMPR_PKIMESSAGE *msg, const unsigned char *pp, size_t pp_len,
                     const unsigned char *secret, size_t secret_len,
                     const struct cmpr_verify_opts *opts)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int r;

    if (msg->header->protectionAlg == NULL || msg->protection == NULL)
        return CMPR_ERR_NO_PROTECTION;
    r = mac_compute(msg->header->protectionAlg, secret, secret_len, pp, pp_len,
                    opts != NULL ? opts->max_iter : 0, opts != NULL ? opts->cache : NULL,
                    opts != NULL ? opts->budget : NULL, mac, &maclen);
    if (r != CMPR_OK)
        return r;
    if ((size_t)ASN1_STRING_length(msg->protection) != maclen
            || CRYPTO_memcmp(ASN1_STRING_get0_data(msg->protection), mac, maclen) != 0)
        r = CMPR_ERR_MAC_MISMATCH;
    OPENSSL_cleanse(mac, sizeof(mac));
    return r;
}

int
cmpr_verify_mac(const CMPR_PKIMESSAGE *msg, const unsigned char *secret, size_t secret_len,
                const struct cmpr_verify_opts *opts)
{
    unsigned char *der = NULL;
    size_t len;
    int r;

    if (msg->header->protectionAlg == NULL || msg->protection == NULL)
        return CMPR_ERR_NO_PROTECTION;
    if ((r = cmpr_protected_part(msg, &der, &len)) != CMPR_OK)
        return r;
    r = cmpr_verify_mac_over(msg, der, len, secret, secret_len, opts);
    OPENSSL_free(der);
    return r;
}

/* ---------------- signatures ---------------- */

static const EVP_MD *
md_of_algor(const X509_ALGOR *a, const EVP_MD *dflt)
{
    if (a == NULL)
        return dflt;
    return cmpr_md(OBJ_obj2nid(a->algorithm));
}

int
cmpr_sig_verify_data(const X509_ALGOR *alg, EVP_PKEY *pk, const unsigned char *data,
                     size_t len, const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    RSA_PSS_PARAMS *pss = NULL;
    X509_ALGOR *mgfalg = NULL;
    const EVP_MD *md = NULL, *mgfmd = NULL;
    int nid, mdnid = NID_undef, pknid = NID_undef, saltlen = 20, r = CMPR_ERR_BAD_ALG;

    if (alg == NULL || pk == NULL)
        return CMPR_ERR_INVALID_ARG;
    nid = OBJ_obj2nid(alg->algorithm);
    if (nid == NID_rsassaPss) {
        if (!EVP_PKEY_is_a(pk, "RSA") && !EVP_PKEY_is_a(pk, "RSA-PSS"))
            goto out;
        if (alg->parameter == NULL || alg->parameter->type != V_ASN1_SEQUENCE
                || (pss = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_PSS_PARAMS),
                                                    alg->parameter)) == NULL) {
            r = CMPR_ERR_BAD_PARAM;
            goto out;
        }
        md = md_of_algor(pss->hashAlgorithm, cmpr_md(NID_sha1));
        mgfmd = md;
        if (pss->maskGenAlgorithm != NULL) {
            if (OBJ_obj2nid(pss->maskGenAlgorithm->algorithm) != NID_mgf1
                    || pss->maskGenAlgorithm->parameter == NULL
                    || pss->maskGenAlgorithm->parameter->type != V_ASN1_SEQUENCE
                    || (mgfalg = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_ALGOR),
                                          pss->maskGenAlgorithm->parameter)) == NULL)
                goto out;
            mgfmd = md_of_algor(mgfalg, NULL);
        } else {
            mgfmd = cmpr_md(NID_sha1);
        }
        if (pss->saltLength != NULL) {
            long s = ASN1_INTEGER_get(pss->saltLength);

            if (s < 0 || s > 1024)
                goto out;
            saltlen = (int)s;
        }
        if (pss->trailerField != NULL && ASN1_INTEGER_get(pss->trailerField) != 1)
            goto out;
        if (md == NULL || mgfmd == NULL)
            goto out;
    } else {
        if (nid == NID_undef || !OBJ_find_sigid_algs(nid, &mdnid, &pknid))
            goto out;
        /* the algorithm must fit the key: no RSA signature checked with an EC key */
        if (pknid == NID_rsaEncryption ? !EVP_PKEY_is_a(pk, "RSA")
                : pknid == NID_X9_62_id_ecPublicKey ? !EVP_PKEY_is_a(pk, "EC")
                : pknid == NID_ED25519 ? !EVP_PKEY_is_a(pk, "ED25519")
                : pknid == NID_ED448 ? !EVP_PKEY_is_a(pk, "ED448")
                : pknid == NID_dsa ? !EVP_PKEY_is_a(pk, "DSA") : 1)
            goto out;
        if (mdnid != NID_undef && (md = cmpr_md(mdnid)) == NULL)
            goto out;
    }
    r = CMPR_ERR_INTERNAL;
    if ((ctx = EVP_MD_CTX_new()) == NULL)
        goto out;
    if (EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pk) != 1) {
        r = CMPR_ERR_BAD_ALG;
        goto out;
    }
    if (nid == NID_rsassaPss
            && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, saltlen) <= 0
                || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, mgfmd) <= 0)) {
        r = CMPR_ERR_BAD_PARAM;
        goto out;
    }
    r = EVP_DigestVerify(ctx, sig, siglen, data, len) == 1 ? CMPR_OK : CMPR_ERR_SIG_INVALID;
 out:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    RSA_PSS_PARAMS_free(pss);
    X509_ALGOR_free(mgfalg);
    return r;
}

int
cmpr_verify_sig(const CMPR_PKIMESSAGE *msg, EVP_PKEY *pubkey)
{
    unsigned char *der = NULL;
    size_t len;
    int r, kind;

    if (msg->header->protectionAlg == NULL || msg->protection == NULL)
        return CMPR_ERR_NO_PROTECTION;
    kind = cmpr_prot_kind(msg->header->protectionAlg->algorithm);
    if (kind == CMPR_PROT_PBM || kind == CMPR_PROT_PBMAC1 || kind == CMPR_PROT_DHBM
            || kind == CMPR_PROT_KEMBM)
        return CMPR_ERR_WRONG_INTEGRITY;
    if (kind != CMPR_PROT_SIG && OBJ_obj2nid(msg->header->protectionAlg->algorithm) != NID_rsassaPss)
        return CMPR_ERR_BAD_ALG;
    if ((r = cmpr_protected_part(msg, &der, &len)) != CMPR_OK)
        return r;
    r = cmpr_sig_verify_data(msg->header->protectionAlg, pubkey, der, len,
                             ASN1_STRING_get0_data(msg->protection),
                             (size_t)ASN1_STRING_length(msg->protection));
    OPENSSL_free(der);
    return r;
}

X509 *
cmpr_msg_get0_protection_cert(const CMPR_PKIMESSAGE *msg)
{
    const ASN1_OCTET_STRING *kid = msg->header->senderKID;

    if (msg->extraCerts == NULL || sk_X509_num(msg->extraCerts) == 0)
        return NULL;
    if (kid != NULL) {
        for (int i = 0; i < sk_X509_num(msg->extraCerts); i++) {
            X509 *x = sk_X509_value(msg->extraCerts, i);
            const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);

            if (ski != NULL && ASN1_OCTET_STRING_cmp(ski, kid) == 0)
                return x;
        }
    }
    return sk_X509_value(msg->extraCerts, 0);
}

static X509_ALGOR *
sig_algor_new(EVP_PKEY *key, const EVP_MD *md, int pss)
{
    X509_ALGOR *alg = X509_ALGOR_new();
    int sigid = NID_undef, base;

    if (alg == NULL)
        return NULL;
    if (pss) {
        RSA_PSS_PARAMS *pp = RSA_PSS_PARAMS_new();
        X509_ALGOR *mgfmd = X509_ALGOR_new();
        ASN1_STRING *seq = NULL, *mgfseq = NULL;
        int ok;

        ok = pp != NULL && mgfmd != NULL
            && (pp->hashAlgorithm = X509_ALGOR_new()) != NULL
            && (pp->maskGenAlgorithm = X509_ALGOR_new()) != NULL
            && (pp->saltLength = ASN1_INTEGER_new()) != NULL
            && ASN1_INTEGER_set(pp->saltLength, EVP_MD_get_size(md));
        if (ok) {
            X509_ALGOR_set_md(pp->hashAlgorithm, md);
            X509_ALGOR_set_md(mgfmd, md);
            ok = ASN1_item_pack(mgfmd, ASN1_ITEM_rptr(X509_ALGOR), &mgfseq) != NULL
                && X509_ALGOR_set0(pp->maskGenAlgorithm, OBJ_nid2obj(NID_mgf1),
                                   V_ASN1_SEQUENCE, mgfseq);
            if (ok)
                mgfseq = NULL;
        }
        ok = ok && ASN1_item_pack(pp, ASN1_ITEM_rptr(RSA_PSS_PARAMS), &seq) != NULL
            && X509_ALGOR_set0(alg, OBJ_nid2obj(NID_rsassaPss), V_ASN1_SEQUENCE, seq);
        if (ok)
            seq = NULL;
        ASN1_STRING_free(seq);
        ASN1_STRING_free(mgfseq);
        X509_ALGOR_free(mgfmd);
        RSA_PSS_PARAMS_free(pp);
        if (!ok) {
            X509_ALGOR_free(alg);
            return NULL;
        }
        return alg;
    }
    base = EVP_PKEY_get_base_id(key);
    if (base == EVP_PKEY_ED25519 || base == EVP_PKEY_ED448) {
        /* EdDSA: the algorithm OID is the key OID, no parameters (RFC 8410) */
        X509_ALGOR_set0(alg, OBJ_nid2obj(base), V_ASN1_UNDEF, NULL);
        return alg;
    }
    if (!OBJ_find_sigid_by_algs(&sigid, md != NULL ? EVP_MD_get_type(md) : NID_undef, base)) {
        X509_ALGOR_free(alg);
        return NULL;
    }
    X509_ALGOR_set0(alg, OBJ_nid2obj(sigid), base == EVP_PKEY_RSA ? V_ASN1_NULL : V_ASN1_UNDEF,
                    NULL);
    return alg;
}

int
cmpr_protect_sig(CMPR_PKIMESSAGE *msg, EVP_PKEY *key, const EVP_MD *md, int pss,
                 X509 *cert, STACK_OF(X509) *chain)
{
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    X509_ALGOR *alg = NULL;
    unsigned char *der = NULL, *sig = NULL;
    size_t len, siglen = 0;
    int r = CMPR_ERR_INTERNAL, eddsa;

    eddsa = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448");
    if (eddsa)
        md = NULL;
    else if (md == NULL)
        md = cmpr_md(NID_sha256);
    if (pss && !EVP_PKEY_is_a(key, "RSA"))
        return CMPR_ERR_INVALID_ARG;
    if (cert != NULL) {
        const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(cert);

        if (X509_check_private_key(cert, key) != 1)
            return CMPR_ERR_INVALID_ARG;
        if ((r = cmpr_hdr_set1_sender_name(msg->header, X509_get_subject_name(cert))) != CMPR_OK)
            return r;
        if (ski != NULL) {
            ASN1_OCTET_STRING_free(msg->header->senderKID);
            if ((msg->header->senderKID = ASN1_OCTET_STRING_dup(ski)) == NULL)
                return CMPR_ERR_ALLOC;
        }
        r = CMPR_ERR_INTERNAL;
    }
    if ((alg = sig_algor_new(key, md, pss)) == NULL)
        return CMPR_ERR_BAD_ALG;
    X509_ALGOR_free(msg->header->protectionAlg);
    msg->header->protectionAlg = alg;
    if ((r = cmpr_protected_part(msg, &der, &len)) != CMPR_OK)
        return r;
    r = CMPR_ERR_INTERNAL;
    if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestSignInit(ctx, &pctx, md, NULL, key) != 1)
        goto out;
    if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0
                || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0))
        goto out;
    if (EVP_DigestSign(ctx, NULL, &siglen, der, len) != 1
            || (sig = OPENSSL_malloc(siglen)) == NULL
            || EVP_DigestSign(ctx, sig, &siglen, der, len) != 1)
        goto out;
    if ((r = set_protection(msg, sig, siglen)) != CMPR_OK)
        goto out;
    if (cert != NULL) {
        STACK_OF(X509) *extra = sk_X509_new_null();

        r = CMPR_ERR_ALLOC;
        if (extra == NULL)
            goto out;
        if (!X509_add_cert(extra, cert, X509_ADD_FLAG_UP_REF)
                || !X509_add_certs(extra, chain, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP)
                || !X509_add_certs(extra, msg->extraCerts, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP)) {
            sk_X509_pop_free(extra, X509_free);
            goto out;
        }
        sk_X509_pop_free(msg->extraCerts, X509_free);
        msg->extraCerts = extra;
    }
    r = CMPR_OK;
 out:
    OPENSSL_free(der);
    OPENSSL_free(sig);
    EVP_MD_CTX_free(ctx);
    return r;
}

/* ---------------- proof of possession ---------------- */

int
cmpr_crm_verify_pop_sig(const CMPR_CERTREQMSG *crm)
{
    const CMPR_POPOSIGNINGKEY *sk;
    EVP_PKEY *tmpl_key = NULL, *key;
    unsigned char *der = NULL;
    int n, r = CMPR_ERR_INVALID_ARG;

    if (crm == NULL || crm->popo == NULL || crm->popo->type != CMPR_POPO_SIGNATURE)
        return CMPR_ERR_INVALID_ARG;
    sk = crm->popo->value.signature;
    tmpl_key = cmpr_tmpl_get1_pubkey(crm->certReq->certTemplate);
    if (sk->poposkInput == NULL) {
        if (tmpl_key == NULL
                || crm->certReq->certTemplate->subject == NULL)
            goto out;
        key = tmpl_key;
        n = i2d_CMPR_CERTREQUEST(crm->certReq, &der);
    } else {
        if ((key = X509_PUBKEY_get0(sk->poposkInput->publicKey)) == NULL)
            goto out;
        if (tmpl_key != NULL && EVP_PKEY_eq(tmpl_key, key) != 1) {
            r = CMPR_ERR_SIG_INVALID;
            goto out;
        }
        n = i2d_CMPR_POPOSKINPUT(sk->poposkInput, &der);
    }
    if (n <= 0) {
        r = CMPR_ERR_ENCODE;
        goto out;
    }
    r = cmpr_sig_verify_data(sk->algorithmIdentifier, key, der, (size_t)n,
                             ASN1_STRING_get0_data(sk->signature),
                             (size_t)ASN1_STRING_length(sk->signature));
 out:
    OPENSSL_free(der);
    EVP_PKEY_free(tmpl_key);
    return r;
}

int
cmpr_crm_create_pop_sig(CMPR_CERTREQMSG *crm, EVP_PKEY *key, const EVP_MD *md)
{
    EVP_MD_CTX *ctx = NULL;
    CMPR_POPO *popo = NULL;
    X509_ALGOR *alg = NULL;
    unsigned char *der = NULL, *sig = NULL;
    size_t siglen = 0;
    int n, r = CMPR_ERR_INTERNAL;

    if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
        md = NULL;
    else if (md == NULL)
        md = cmpr_md(NID_sha256);
    if ((n = i2d_CMPR_CERTREQUEST(crm->certReq, &der)) <= 0)
        return CMPR_ERR_ENCODE;
    if ((alg = sig_algor_new(key, md, 0)) == NULL) {
        r = CMPR_ERR_BAD_ALG;
        goto out;
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1
            || EVP_DigestSign(ctx, NULL, &siglen, der, (size_t)n) != 1
            || (sig = OPENSSL_malloc(siglen)) == NULL
            || EVP_DigestSign(ctx, sig, &siglen, der, (size_t)n) != 1)
        goto out;
    if ((popo = CMPR_POPO_new()) == NULL
            || (popo->value.signature = CMPR_POPOSIGNINGKEY_new()) == NULL)
        goto out;
    popo->type = CMPR_POPO_SIGNATURE;
    X509_ALGOR_free(popo->value.signature->algorithmIdentifier);
    popo->value.signature->algorithmIdentifier = alg;
    alg = NULL;
    if (!ASN1_BIT_STRING_set(popo->value.signature->signature, sig, (int)siglen))
        goto out;
    popo->value.signature->signature->flags &= ~0x07;
    popo->value.signature->signature->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    CMPR_POPO_free(crm->popo);
    crm->popo = popo;
    popo = NULL;
    r = CMPR_OK;
 out:
    CMPR_POPO_free(popo);
    X509_ALGOR_free(alg);
    OPENSSL_free(der);
    OPENSSL_free(sig);
    EVP_MD_CTX_free(ctx);
    return r;
}

int
cmpr_err_failinfo(int err)
{
    switch (err) {
    case CMPR_ERR_BAD_ALG:
    case CMPR_ERR_ITER_LIMIT:
    case CMPR_ERR_MAC_BUDGET:
        return CMPR_FI_BAD_ALG;
    case CMPR_ERR_MAC_MISMATCH:
    case CMPR_ERR_SIG_INVALID:
    case CMPR_ERR_NO_PROTECTION:
    case CMPR_ERR_NO_SIGNER:
        return CMPR_FI_BAD_MESSAGE_CHECK;
    case CMPR_ERR_WRONG_INTEGRITY:
        return CMPR_FI_WRONG_INTEGRITY;
    case CMPR_ERR_DECODE:
    case CMPR_ERR_TOO_LARGE:
    case CMPR_ERR_TRAILING:
    case CMPR_ERR_TOO_DEEP:
    case CMPR_ERR_TRUNCATED:
    case CMPR_ERR_NOT_DER:
    case CMPR_ERR_BAD_PARAM:
        return CMPR_FI_BAD_DATA_FORMAT;
    case CMPR_ERR_INTERNAL:
    case CMPR_ERR_ALLOC:
    case CMPR_ERR_ENCODE:
        return CMPR_FI_SYSTEM_FAILURE;
    default:
        return -1;
    }
}

/* ---------------- certHash ---------------- */

/* The digest X509_digest_sig takes for a certificate signed with alg, when
 * it is a plain one: 1 with *md_r, 0 when only X509_digest_sig knows
 * (RSA-PSS; Ed448, whose SHAKE256 output length is OpenSSL's to say). */
static int
sig_digest(const X509_ALGOR *alg, const EVP_MD **md_r)
{
    int mdnid = NID_undef, pknid = NID_undef;

    *md_r = NULL;
    if (!OBJ_find_sigid_algs(OBJ_obj2nid(alg->algorithm), &mdnid, &pknid))
        return 0;
    if (mdnid == NID_undef) {
        if (pknid == NID_ED25519)
            *md_r = cmpr_md(NID_sha512);
        return *md_r != NULL;
    }
    if (mdnid == NID_md5 || mdnid == NID_sha1)
        mdnid = NID_sha256;         /* as X509_digest_sig: never the weak digest itself */
    return (*md_r = cmpr_md(mdnid)) != NULL;
}

int
cmpr_cert_hash_der(const unsigned char *der, size_t len, const X509_ALGOR *hashAlg, unsigned char *out,
                   unsigned int *len_r)
{
    struct cmpr_der_tlv cert, tbs;
    const char *what;
    const unsigned char *p;
    X509_ALGOR *alg = NULL;
    const EVP_MD *md = NULL;
    int r = CMPR_ERR_BAD_ALG;

    if (hashAlg != NULL) {
        if ((md = cmpr_md(OBJ_obj2nid(hashAlg->algorithm))) == NULL)
            return CMPR_ERR_BAD_ALG;
        return EVP_Digest(der, len, out, len_r, md, NULL) ? CMPR_OK : CMPR_ERR_INTERNAL;
    }
    /* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature } */
    if (cmpr_der_read(der, len, &cert, &what) != CMPR_OK || cert.hdr_len + cert.len != len
            || cmpr_der_read(der + cert.hdr_len, cert.len, &tbs, &what) != CMPR_OK
            || tbs.hdr_len + tbs.len >= cert.len)
        return CMPR_ERR_DECODE;
    p = der + cert.hdr_len + tbs.hdr_len + tbs.len;
    if ((alg = d2i_X509_ALGOR(NULL, &p, (long)(cert.len - tbs.hdr_len - tbs.len))) == NULL)
        return CMPR_ERR_DECODE;
    if (sig_digest(alg, &md)) {
        r = EVP_Digest(der, len, out, len_r, md, NULL) ? CMPR_OK : CMPR_ERR_INTERNAL;
    } else {
        /* RSA-PSS, Ed448: the whole certificate, as X509_digest_sig wants it */
        X509 *x;

        p = der;
        x = d2i_X509(NULL, &p, (long)len);
        r = x != NULL ? cmpr_cert_hash(x, NULL, out, len_r) : CMPR_ERR_DECODE;
        X509_free(x);
    }
    X509_ALGOR_free(alg);
    return r;
}

int
cmpr_cert_hash(const X509 *cert, const X509_ALGOR *hashAlg, unsigned char *out,
               unsigned int *len_r)
{
    if (hashAlg != NULL) {
        const EVP_MD *md = cmpr_md(OBJ_obj2nid(hashAlg->algorithm));

        if (md == NULL)
            return CMPR_ERR_BAD_ALG;
        return X509_digest(cert, md, out, len_r) ? CMPR_OK : CMPR_ERR_INTERNAL;
    } else {
        ASN1_OCTET_STRING *h = X509_digest_sig(cert, NULL, NULL);
        int n;

        if (h == NULL)
            return CMPR_ERR_BAD_ALG;
        n = ASN1_STRING_length(h);
        if (n > EVP_MAX_MD_SIZE) {
            ASN1_OCTET_STRING_free(h);
            return CMPR_ERR_INTERNAL;
        }
        memcpy(out, ASN1_STRING_get0_data(h), (size_t)n);
        *len_r = (unsigned int)n;
        ASN1_OCTET_STRING_free(h);
        return CMPR_OK;
    }
}
