/* Message protection (codec/protect.c), RFC 9810 5.1.3 and RFC 9481:
 * PasswordBasedMac against OpenSSL's own OSSL_CRMF_pbm_new, the key-expansion
 * rule, PBMAC1 against PKCS5_PBKDF2_HMAC, every signature algorithm, the
 * derived-key cache, certHash. */
#include "testutil.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/hmac.h>

#include "codec/msg.h"
#include "codec/oids.h"
#include "codec/protect.h"
#include "base/err.h"

static const unsigned char secret[] = "shared secret 1234";
#define SECLEN (sizeof(secret) - 1)

/* RFC 9810 5.1.3.1 with K = H: our derivation + HMAC equals OpenSSL's PBM. */
static void
test_pbm_matches_openssl(void **state)
{
    static const int owfs[] = { NID_sha1, NID_sha256, NID_sha512 };
    static const int macs[] = { NID_hmac_sha1, NID_hmacWithSHA256, NID_hmacWithSHA512 };
    static const unsigned char msg[] = "protected part bytes";
    (void)state;

    for (size_t i = 0; i < 3; i++) {
        for (size_t j = 0; j < 3; j++) {
            OSSL_CRMF_PBMPARAMETER *pp = OSSL_CRMF_pbmp_new(NULL, 16, owfs[i], 777, macs[j]);
            unsigned char *der = NULL, *omac = NULL, key[64], mine[EVP_MAX_MD_SIZE];
            const unsigned char *p;
            size_t omaclen = 0;
            unsigned int minelen = 0;
            CMPR_PBMPARAMETER *cp;
            const EVP_MD *owf = EVP_get_digestbynid(owfs[i]);
            int n;

            assert_non_null(pp);
            n = i2d_OSSL_CRMF_PBMPARAMETER(pp, &der);
            p = der;
            assert_non_null(cp = d2i_CMPR_PBMPARAMETER(NULL, &p, n));
            assert_true(OSSL_CRMF_pbm_new(NULL, NULL, pp, msg, sizeof(msg), secret, SECLEN,
                                          &omac, &omaclen));
            assert_int_equal(cmpr_pbm_derive(owf, secret, SECLEN,
                                             ASN1_STRING_get0_data(cp->salt),
                                             (size_t)ASN1_STRING_length(cp->salt), 777, key,
                                             (size_t)EVP_MD_get_size(owf)), CMPR_OK);
            assert_non_null(HMAC(EVP_get_digestbynid(macs[j] == NID_hmac_sha1 ? NID_sha1
                                 : macs[j] == NID_hmacWithSHA256 ? NID_sha256 : NID_sha512),
                                 key, EVP_MD_get_size(owf), msg, sizeof(msg), mine, &minelen));
            assert_int_equal(minelen, omaclen);
            assert_memory_equal(mine, omac, omaclen);
            OPENSSL_free(omac);
            OPENSSL_free(der);
            CMPR_PBMPARAMETER_free(cp);
            OSSL_CRMF_PBMPARAMETER_free(pp);
        }
    }
}

/* K > H: BASEKEY || OWF("1"||BASEKEY) || OWF("2"||BASEKEY) ...; K < H: leading bytes */
static void
test_pbm_key_expansion(void **state)
{
    static const unsigned char salt[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    unsigned char base[20], blk[20], want[64], got[64];
    unsigned int l;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    (void)state;

    /* BASEKEY = SHA1^3(secret || salt) computed step by step */
    EVP_DigestInit_ex(c, EVP_sha1(), NULL);
    EVP_DigestUpdate(c, secret, SECLEN);
    EVP_DigestUpdate(c, salt, sizeof(salt));
    EVP_DigestFinal_ex(c, base, &l);
    for (int i = 1; i < 3; i++)
        EVP_Digest(base, 20, base, &l, EVP_sha1(), NULL);
    memcpy(want, base, 20);
    for (int i = 1; i <= 3; i++) {
        char d = (char)('0' + i);

        EVP_DigestInit_ex(c, EVP_sha1(), NULL);
        EVP_DigestUpdate(c, &d, 1);
        EVP_DigestUpdate(c, base, 20);
        EVP_DigestFinal_ex(c, blk, &l);
        memcpy(want + 20 * i, blk, i < 3 ? 20 : 4);
    }
    EVP_MD_CTX_free(c);
    assert_int_equal(cmpr_pbm_derive(EVP_sha1(), secret, SECLEN, salt, sizeof(salt), 3, got, 64),
                     CMPR_OK);
    assert_memory_equal(got, want, 64);
    assert_int_equal(cmpr_pbm_derive(EVP_sha1(), secret, SECLEN, salt, sizeof(salt), 3, got, 16),
                     CMPR_OK);
    assert_memory_equal(got, want, 16);
    assert_int_equal(cmpr_pbm_derive(EVP_sha1(), secret, SECLEN, salt, sizeof(salt), 0, got, 16),
                     CMPR_ERR_BAD_PARAM);
}

/* RFC 9481 6.1.1 PBMAC1: PBKDF2 key, HMAC over the protected part. */
static void
test_pbmac1_matches_pbkdf2(void **state)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_GENM, 2);
    struct cmpr_mac_params mp;
    CMPR_PBMAC1PARAM *p1;
    PBKDF2PARAM *kdf;
    unsigned char key[64], want[EVP_MAX_MD_SIZE], *pp = NULL;
    unsigned int wl = 0;
    size_t pl;
    struct cmpr_verify_opts vo = { 0, NULL, NULL };
    (void)state;

    cmpr_mac_params_default(&mp, CMPR_MAC_PBMAC1);
    mp.iter = 1000;
    mp.mac_nid = NID_hmacWithSHA512;
    mp.owf_nid = NID_sha512;
    assert_int_equal(cmpr_protect_mac(m, secret, SECLEN, &mp, NULL), CMPR_OK);
    assert_string_equal(OBJ_nid2sn(OBJ_obj2nid(m->header->protectionAlg->algorithm)) != NULL
                        ? "ok" : "ok", "ok");
    assert_int_equal(cmpr_prot_kind(m->header->protectionAlg->algorithm), CMPR_PROT_PBMAC1);
    p1 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMAC1PARAM), m->header->protectionAlg->parameter);
    assert_non_null(p1);
    assert_int_equal(OBJ_obj2nid(p1->keyDerivationFunc->algorithm), NID_id_pbkdf2);
    kdf = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), p1->keyDerivationFunc->parameter);
    assert_non_null(kdf);
    assert_int_equal(ASN1_INTEGER_get(kdf->iter), 1000);
    assert_int_equal(ASN1_INTEGER_get(kdf->keylength), 64);
    assert_true(PKCS5_PBKDF2_HMAC((const char *)secret, SECLEN,
                                  ASN1_STRING_get0_data(kdf->salt->value.octet_string),
                                  ASN1_STRING_length(kdf->salt->value.octet_string),
                                  1000, EVP_sha512(), 64, key));
    assert_int_equal(cmpr_protected_part(m, &pp, &pl), CMPR_OK);
    HMAC(EVP_sha512(), key, 64, pp, pl, want, &wl);
    assert_int_equal(ASN1_STRING_length(m->protection), (int)wl);
    assert_memory_equal(ASN1_STRING_get0_data(m->protection), want, wl);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_OK);
    OPENSSL_free(pp);
    PBKDF2PARAM_free(kdf);
    CMPR_PBMAC1PARAM_free(p1);
    CMPR_PKIMESSAGE_free(m);
}

static X509_ALGOR *
algor_with_params(const char *oid, const ASN1_ITEM *it, void *params)
{
    X509_ALGOR *a = X509_ALGOR_new();
    ASN1_STRING *seq = NULL;

    assert_non_null(ASN1_item_pack(params, it, &seq));
    X509_ALGOR_set0(a, OBJ_txt2obj(oid, 1), V_ASN1_SEQUENCE, seq);
    return a;
}

/* Bouncy Castle (through at least 1.80, so every CMP peer built on it:
 * EJBCA, the Siemens RA component) names PBMAC1's key derivation id-PBES2
 * (1.2.840.113549.1.5.13) around PBKDF2-params, where RFC 8018 A.5 and
 * RFC 9481 6.1.1 ask for id-PBKDF2 (1.2.840.113549.1.5.12). The parameters
 * are unambiguous (real PBES2-params are two AlgorithmIdentifiers), so that
 * encoding is taken as PBKDF2; anything else stays refused. Answers name
 * id-PBKDF2, which Bouncy Castle reads too (tests/integration/bc.sh). */
static void
test_pbmac1_kdf_named_pbes2(void **state)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_GENM, 2);
    struct cmpr_mac_params mp, got;
    CMPR_PBMAC1PARAM *p1;
    PBKDF2PARAM *kdf;
    X509_ALGOR *enc;
    ASN1_STRING *seq = NULL;
    unsigned char key[32], mac[EVP_MAX_MD_SIZE], *pp = NULL;
    unsigned int ml = 0;
    size_t pl;
    struct cmpr_verify_opts vo = { 0, NULL, NULL };
    (void)state;

    cmpr_mac_params_default(&mp, CMPR_MAC_PBMAC1);
    mp.iter = 1234;
    assert_int_equal(cmpr_protect_mac(m, secret, SECLEN, &mp, NULL), CMPR_OK);
    p1 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMAC1PARAM), m->header->protectionAlg->parameter);
    assert_non_null(p1);
    kdf = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), p1->keyDerivationFunc->parameter);
    assert_non_null(kdf);
    /* the same parameters under Bouncy Castle's OID, MAC computed anew */
    assert_non_null(ASN1_item_pack(kdf, ASN1_ITEM_rptr(PBKDF2PARAM), &seq));
    X509_ALGOR_set0(p1->keyDerivationFunc, OBJ_nid2obj(NID_pbes2), V_ASN1_SEQUENCE, seq);
    X509_ALGOR_free(m->header->protectionAlg);
    m->header->protectionAlg = algor_with_params(CMPR_OID_PBMAC1, ASN1_ITEM_rptr(CMPR_PBMAC1PARAM), p1);
    assert_true(PKCS5_PBKDF2_HMAC((const char *)secret, SECLEN,
                                  ASN1_STRING_get0_data(kdf->salt->value.octet_string),
                                  ASN1_STRING_length(kdf->salt->value.octet_string),
                                  1234, EVP_sha256(), 32, key));
    assert_int_equal(cmpr_protected_part(m, &pp, &pl), CMPR_OK);
    HMAC(EVP_sha256(), key, 32, pp, pl, mac, &ml);
    ASN1_BIT_STRING_set(m->protection, mac, (int)ml);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_OK);
    /* an answer takes its parameters over (and names id-PBKDF2 itself) */
    assert_int_equal(cmpr_mac_params_of(m->header->protectionAlg, 100000, &got), CMPR_OK);
    assert_int_equal(got.kind, CMPR_MAC_PBMAC1);
    assert_int_equal(got.iter, 1234);
    assert_int_equal(got.owf_nid, NID_sha256);
    /* a wrong secret still fails */
    assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"other", 5, &vo), CMPR_ERR_MAC_MISMATCH);

    /* real PBES2-params (keyDerivationFunc, encryptionScheme) under id-PBES2: malformed */
    enc = X509_ALGOR_new();
    X509_ALGOR_set0(enc, OBJ_nid2obj(NID_aes_256_cbc), V_ASN1_NULL, NULL);
    {
        PBE2PARAM *pbes2 = PBE2PARAM_new();

        seq = NULL;
        assert_non_null(ASN1_item_pack(kdf, ASN1_ITEM_rptr(PBKDF2PARAM), &seq));
        X509_ALGOR_set0(pbes2->keyfunc, OBJ_nid2obj(NID_id_pbkdf2), V_ASN1_SEQUENCE, seq);
        X509_ALGOR_free(pbes2->encryption);
        pbes2->encryption = enc;
        seq = NULL;
        assert_non_null(ASN1_item_pack(pbes2, ASN1_ITEM_rptr(PBE2PARAM), &seq));
        X509_ALGOR_set0(p1->keyDerivationFunc, OBJ_nid2obj(NID_pbes2), V_ASN1_SEQUENCE, seq);
        PBE2PARAM_free(pbes2);
    }
    X509_ALGOR_free(m->header->protectionAlg);
    m->header->protectionAlg = algor_with_params(CMPR_OID_PBMAC1, ASN1_ITEM_rptr(CMPR_PBMAC1PARAM), p1);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_BAD_PARAM);
    /* any other key derivation: badAlg */
    seq = NULL;
    assert_non_null(ASN1_item_pack(kdf, ASN1_ITEM_rptr(PBKDF2PARAM), &seq));
    X509_ALGOR_set0(p1->keyDerivationFunc, OBJ_nid2obj(NID_id_scrypt), V_ASN1_SEQUENCE, seq);
    X509_ALGOR_free(m->header->protectionAlg);
    m->header->protectionAlg = algor_with_params(CMPR_OID_PBMAC1, ASN1_ITEM_rptr(CMPR_PBMAC1PARAM), p1);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_BAD_ALG);
    OPENSSL_free(pp);
    PBKDF2PARAM_free(kdf);
    CMPR_PBMAC1PARAM_free(p1);
    CMPR_PKIMESSAGE_free(m);
}

/* Refused parameters: unknown OWF/MAC, DHBasedMac, negative or huge counts. */
/* Issue 16 item 4: an answer is MAC-protected the way its request was, so
 * the parameters are read back from a protectionAlg (RFC 9810 5.1.3.1,
 * RFC 9481 6.1: PasswordBasedMac and PBMAC1) */
static void
test_mac_params_of(void **state)
{
    static const struct cmpr_mac_params want[] = {
        { CMPR_MAC_PBM, NID_sha512, NID_hmacWithSHA256, 1234, 20 },
        { CMPR_MAC_PBM, NID_sha256, NID_hmac_sha1, 500, 16 },
        { CMPR_MAC_PBMAC1, NID_sha384, NID_hmacWithSHA512, 2000, 32 },
    };
    struct cmpr_mac_params got;
    (void)state;

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_GENM, 2);

        assert_int_equal(cmpr_protect_mac(m, secret, SECLEN, &want[i], NULL), CMPR_OK);
        assert_int_equal(cmpr_mac_params_of(m->header->protectionAlg, 100000, &got), CMPR_OK);
        assert_int_equal(got.kind, want[i].kind);
        assert_int_equal(got.owf_nid, want[i].owf_nid);
        assert_int_equal(got.mac_nid, want[i].mac_nid);
        assert_int_equal(got.iter, want[i].iter);
        assert_int_equal(got.salt_len, want[i].salt_len);
        /* more iterations than the cap: not taken over */
        assert_int_equal(cmpr_mac_params_of(m->header->protectionAlg, 100, &got), CMPR_ERR_ITER_LIMIT);
        CMPR_PKIMESSAGE_free(m);
    }
    assert_int_equal(cmpr_mac_params_of(NULL, 0, &got), CMPR_ERR_NO_PROTECTION);
}

static void
test_mac_refusals(void **state)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_GENM, 2);
    struct cmpr_mac_params mp;
    struct cmpr_verify_opts vo = { 0, NULL, NULL };
    CMPR_PBMPARAMETER *pbm;
    (void)state;

    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    assert_int_equal(cmpr_protect_mac(m, secret, SECLEN, &mp, NULL), CMPR_OK);
    pbm = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMPARAMETER), m->header->protectionAlg->parameter);

    /* OWF MD5 is not allowed (RFC 9481: SHA-1/SHA-2 only) */
    X509_ALGOR_set0(pbm->owf, OBJ_nid2obj(NID_md5), V_ASN1_UNDEF, NULL);
    X509_ALGOR_free(m->header->protectionAlg);
    m->header->protectionAlg = algor_with_params(CMPR_OID_PASSWORD_BASED_MAC,
                                                 ASN1_ITEM_rptr(CMPR_PBMPARAMETER), pbm);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_BAD_ALG);

    /* negative iteration count */
    X509_ALGOR_set0(pbm->owf, OBJ_nid2obj(NID_sha256), V_ASN1_UNDEF, NULL);
    ASN1_INTEGER_set(pbm->iterationCount, -5);
    X509_ALGOR_free(m->header->protectionAlg);
    m->header->protectionAlg = algor_with_params(CMPR_OID_PASSWORD_BASED_MAC,
                                                 ASN1_ITEM_rptr(CMPR_PBMPARAMETER), pbm);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_BAD_PARAM);

    /* a 2^200 iteration count (wider than any C integer) */
    {
        BIGNUM *bn = BN_new();

        BN_set_bit(bn, 200);
        BN_to_ASN1_INTEGER(bn, pbm->iterationCount);
        BN_free(bn);
    }
    X509_ALGOR_free(m->header->protectionAlg);
    m->header->protectionAlg = algor_with_params(CMPR_OID_PASSWORD_BASED_MAC,
                                                 ASN1_ITEM_rptr(CMPR_PBMPARAMETER), pbm);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_ITER_LIMIT);

    /* DHBasedMac is recognised but not supported for verification */
    X509_ALGOR_free(m->header->protectionAlg);
    m->header->protectionAlg = X509_ALGOR_new();
    X509_ALGOR_set0(m->header->protectionAlg, OBJ_txt2obj(CMPR_OID_DH_BASED_MAC, 1), V_ASN1_UNDEF, NULL);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_BAD_ALG);

    /* parameters that are not a SEQUENCE */
    X509_ALGOR_set0(m->header->protectionAlg, OBJ_txt2obj(CMPR_OID_PASSWORD_BASED_MAC, 1),
                    V_ASN1_NULL, NULL);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_BAD_PARAM);

    /* no protection at all */
    X509_ALGOR_free(m->header->protectionAlg);
    m->header->protectionAlg = NULL;
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_NO_PROTECTION);
    CMPR_PBMPARAMETER_free(pbm);
    CMPR_PKIMESSAGE_free(m);
}

/* m protected with PBMAC1 (PBKDF2 with prf, HMAC mac), then its PBKDF2
 * iteration count and keyLength rewritten (the MAC no longer matches) */
static void
pbmac1_rewrite(CMPR_PKIMESSAGE *m, long iter, int prf_nid, long keylen)
{
    CMPR_PBMAC1PARAM *p1 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMAC1PARAM),
                                                     m->header->protectionAlg->parameter);
    PBKDF2PARAM *kdf;
    ASN1_STRING *seq = NULL;

    assert_non_null(p1);
    kdf = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), p1->keyDerivationFunc->parameter);
    assert_non_null(kdf);
    ASN1_INTEGER_set(kdf->iter, iter);
    if (kdf->keylength == NULL)
        kdf->keylength = ASN1_INTEGER_new();
    ASN1_INTEGER_set(kdf->keylength, keylen);
    X509_ALGOR_free(kdf->prf);
    kdf->prf = X509_ALGOR_new();
    X509_ALGOR_set0(kdf->prf, OBJ_nid2obj(prf_nid), V_ASN1_NULL, NULL);
    assert_non_null(ASN1_item_pack(kdf, ASN1_ITEM_rptr(PBKDF2PARAM), &seq));
    ASN1_TYPE_set(p1->keyDerivationFunc->parameter, V_ASN1_SEQUENCE, seq);
    X509_ALGOR_free(m->header->protectionAlg);
    m->header->protectionAlg = algor_with_params(CMPR_OID_PBMAC1, ASN1_ITEM_rptr(CMPR_PBMAC1PARAM), p1);
    PBKDF2PARAM_free(kdf);
    CMPR_PBMAC1PARAM_free(p1);
}

/* What a key derivation may cost is checked before anything is derived:
 * PBKDF2 costs iterations times the PRF output blocks of keyLength
 * (RFC 8018 5.2), so a keyLength of 4096 with HMAC-SHA1 multiplies 100,000
 * iterations by 205; keyLength beyond the HMAC's block only adds work
 * (RFC 2104 hashes a longer key down) and is refused; a budget shared by
 * several messages (a mail's parts) is spent by derivations, not by what
 * the cache saves. */
static void
test_mac_cost(void **state)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_GENM, 2), *a, *b, *c;
    struct cmpr_mac_params mp;
    struct cmpr_mac_cache *cache = cmpr_mac_cache_new(16);
    unsigned long budget;
    struct cmpr_verify_opts vo = { 0, NULL, NULL }, vb = { 0, cache, &budget };
    (void)state;

    cmpr_mac_params_default(&mp, CMPR_MAC_PBMAC1);
    assert_int_equal(cmpr_protect_mac(m, secret, SECLEN, &mp, NULL), CMPR_OK);
    /* the probe of the report: 100,000 iterations, keyLength 4096, HMAC-SHA1 */
    pbmac1_rewrite(m, 100000, NID_hmacWithSHA1, 4096);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_BAD_ALG);
    pbmac1_rewrite(m, 1000, NID_hmacWithSHA256, 65);          /* one over HMAC-SHA256's block */
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_BAD_ALG);
    /* keyLength 64 (HMAC-SHA256's block) with HMAC-SHA1: 4 blocks */
    pbmac1_rewrite(m, 30000, NID_hmacWithSHA1, 64);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_ITER_LIMIT);
    pbmac1_rewrite(m, 25000, NID_hmacWithSHA1, 64);           /* 100,000: at the cap */
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_MAC_MISMATCH);
    pbmac1_rewrite(m, 100001, NID_hmacWithSHA256, 32);        /* one block, one over */
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_ITER_LIMIT);
    vo.max_iter = 1000;                                         /* a lower configured cap */
    pbmac1_rewrite(m, 501, NID_hmacWithSHA1, 32);             /* 2 blocks: 1002 */
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_ERR_ITER_LIMIT);
    assert_int_equal(cmpr_err_failinfo(CMPR_ERR_ITER_LIMIT), CMPR_FI_BAD_ALG);
    assert_int_equal(cmpr_err_failinfo(CMPR_ERR_MAC_BUDGET), CMPR_FI_BAD_ALG);
    CMPR_PKIMESSAGE_free(m);

    /* a budget of 50,000 over messages of 20,000 each (fresh salts) */
    mp.iter = 20000;
    a = cmpr_msg_new(CMPR_BODY_GENM, 2);
    b = cmpr_msg_new(CMPR_BODY_GENM, 2);
    c = cmpr_msg_new(CMPR_BODY_GENM, 2);
    assert_int_equal(cmpr_protect_mac(a, secret, SECLEN, &mp, NULL), CMPR_OK);
    assert_int_equal(cmpr_protect_mac(b, secret, SECLEN, &mp, NULL), CMPR_OK);
    assert_int_equal(cmpr_protect_mac(c, secret, SECLEN, &mp, NULL), CMPR_OK);
    budget = 50000;
    assert_int_equal(cmpr_verify_mac(a, secret, SECLEN, &vb), CMPR_OK);
    assert_int_equal(budget, 30000);
    assert_int_equal(cmpr_verify_mac(b, secret, SECLEN, &vb), CMPR_OK);
    assert_int_equal(budget, 10000);
    assert_int_equal(cmpr_verify_mac(c, secret, SECLEN, &vb), CMPR_ERR_MAC_BUDGET);
    assert_int_equal(budget, 10000);
    /* a's key is in the cache: checking it again costs nothing */
    assert_int_equal(cmpr_verify_mac(a, secret, SECLEN, &vb), CMPR_OK);
    assert_int_equal(budget, 10000);
    /* the PasswordBasedMac of OpenSSL's client: 500 one-block iterations */
    CMPR_PKIMESSAGE_free(a);
    a = cmpr_msg_new(CMPR_BODY_GENM, 2);
    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    assert_int_equal(cmpr_protect_mac(a, secret, SECLEN, &mp, NULL), CMPR_OK);
    assert_int_equal(cmpr_verify_mac(a, secret, SECLEN, &vb), CMPR_OK);
    assert_int_equal(budget, 10000 - 500);
    CMPR_PKIMESSAGE_free(a);
    CMPR_PKIMESSAGE_free(b);
    CMPR_PKIMESSAGE_free(c);
    cmpr_mac_cache_free(cache);
}

/* RSA PKCS#1 v1.5, RSA-PSS, ECDSA P-256/P-384/P-521, Ed25519, Ed448 */
static void
test_signature_algorithms(void **state)
{
    static const struct { const char *key; int pss; const char *md; } cases[] = {
        { "rsa:2048", 0, "SHA256" }, { "rsa:2048", 0, "SHA512" }, { "rsa:2048", 1, "SHA256" },
        { "rsa:3072", 1, "SHA384" }, { "ec:P-256", 0, "SHA256" }, { "ec:P-384", 0, "SHA384" },
        { "ec:P-521", 0, "SHA512" }, { "ed25519", 0, NULL }, { "ed448", 0, NULL },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        EVP_PKEY *k = tu_key(cases[i].key), *other = tu_key(cases[i].key);
        X509 *c = tu_cert(k, "Signer", NULL, NULL, 0);
        CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_PKICONF, 2);
        const EVP_MD *md = cases[i].md != NULL ? EVP_get_digestbyname(cases[i].md) : NULL;
        unsigned char *sig;

        assert_int_equal(cmpr_protect_sig(m, k, md, cases[i].pss, c, NULL), CMPR_OK);
        if (cmpr_verify_sig(m, X509_get0_pubkey(c)) != CMPR_OK)
            fail_msg("%s%s does not verify", cases[i].key, cases[i].pss ? " pss" : "");
        if (cases[i].pss)
            assert_int_equal(OBJ_obj2nid(m->header->protectionAlg->algorithm), NID_rsassaPss);
        /* sender and senderKID come from the certificate (RFC 9483 3.1) */
        assert_int_equal(X509_NAME_cmp(cmpr_hdr_get0_sender_name(m->header),
                                       X509_get_subject_name(c)), 0);
        assert_int_equal(ASN1_OCTET_STRING_cmp(m->header->senderKID, X509_get0_subject_key_id(c)), 0);
        assert_ptr_equal(cmpr_msg_get0_protection_cert(m), sk_X509_value(m->extraCerts, 0));
        assert_int_equal(cmpr_verify_sig(m, other), CMPR_ERR_SIG_INVALID);
        sig = (unsigned char *)ASN1_STRING_get0_data(m->protection);
        sig[ASN1_STRING_length(m->protection) / 2] ^= 0x40;
        assert_int_equal(cmpr_verify_sig(m, k), CMPR_ERR_SIG_INVALID);
        CMPR_PKIMESSAGE_free(m);
        X509_free(c);
        EVP_PKEY_free(k);
        EVP_PKEY_free(other);
    }
}

static void
test_protection_cert_by_kid(void **state)
{
    EVP_PKEY *k1 = tu_key("ec:P-256"), *k2 = tu_key("ec:P-256");
    X509 *c1 = tu_cert(k1, "One", NULL, NULL, 0), *c2 = tu_cert(k2, "Two", NULL, NULL, 0);
    STACK_OF(X509) *chain = sk_X509_new_null();
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_PKICONF, 2);
    (void)state;

    sk_X509_push(chain, c1);
    assert_int_equal(cmpr_protect_sig(m, k2, NULL, 0, c2, chain), CMPR_OK);
    assert_int_equal(sk_X509_num(m->extraCerts), 2);
    /* move the signer to the back: senderKID still finds it */
    sk_X509_push(m->extraCerts, sk_X509_shift(m->extraCerts));
    assert_int_equal(X509_cmp(cmpr_msg_get0_protection_cert(m), c2), 0);
    /* key and certificate that do not belong together are refused */
    assert_int_equal(cmpr_protect_sig(m, k1, NULL, 0, c2, NULL), CMPR_ERR_INVALID_ARG);
    CMPR_PKIMESSAGE_free(m);
    sk_X509_free(chain);
    X509_free(c1);
    X509_free(c2);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}

struct cache_job {
    struct cmpr_mac_cache *cache;
    CMPR_PKIMESSAGE *msg;
    int failures;
};

static void *
cache_worker(void *arg)
{
    struct cache_job *j = arg;
    struct cmpr_verify_opts vo = { 0, j->cache, NULL };

    for (int i = 0; i < 50; i++)
        if (cmpr_verify_mac(j->msg, secret, SECLEN, &vo) != CMPR_OK)
            j->failures++;
    return NULL;
}

/* The second message of a transaction does not pay the derivation again. */
static void
test_mac_key_cache(void **state)
{
    struct cmpr_mac_cache *cache = cmpr_mac_cache_new(64);
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_IR, 2), *m2 = cmpr_msg_new(CMPR_BODY_CERTCONF, 2);
    struct cmpr_mac_params mp;
    struct cmpr_verify_opts vo = { 0, cache, NULL };
    unsigned long hits, misses;
    pthread_t th[8];
    struct cache_job jobs[8];
    (void)state;

    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    assert_int_equal(cmpr_protect_mac(m, secret, SECLEN, &mp, NULL), CMPR_OK);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_OK);
    cmpr_mac_cache_stats(cache, &hits, &misses);
    assert_int_equal(hits, 0);
    assert_int_equal(misses, 1);
    assert_int_equal(cmpr_verify_mac(m, secret, SECLEN, &vo), CMPR_OK);
    cmpr_mac_cache_stats(cache, &hits, &misses);
    assert_int_equal(hits, 1);
    /* a wrong secret must not be served from the cache */
    assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"nope", 4, &vo), CMPR_ERR_MAC_MISMATCH);
    /* protecting with the cache and verifying share entries only when the
     * salt matches; a new salt is a miss */
    assert_int_equal(cmpr_protect_mac(m2, secret, SECLEN, &mp, cache), CMPR_OK);
    assert_int_equal(cmpr_verify_mac(m2, secret, SECLEN, &vo), CMPR_OK);
    cmpr_mac_cache_stats(cache, &hits, &misses);
    assert_int_equal(hits, 2);
    /* concurrent verifiers */
    for (int i = 0; i < 8; i++) {
        jobs[i].cache = cache;
        jobs[i].msg = i % 2 ? m : m2;
        jobs[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, cache_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].failures, 0);
    }
    cmpr_mac_cache_stats(cache, &hits, &misses);
    assert_true(hits >= 2 + 400);
    CMPR_PKIMESSAGE_free(m);
    CMPR_PKIMESSAGE_free(m2);
    cmpr_mac_cache_free(cache);
}

/* the salt of a MAC-protected message, PasswordBasedMac or PBMAC1 */
static size_t
salt_of(const CMPR_PKIMESSAGE *m, unsigned char *out, size_t cap)
{
    const X509_ALGOR *alg = m->header->protectionAlg;
    const ASN1_OCTET_STRING *s = NULL;
    CMPR_PBMPARAMETER *pbm = NULL;
    CMPR_PBMAC1PARAM *pb1 = NULL;
    PBKDF2PARAM *kdf = NULL;
    size_t n = 0;

    assert_non_null(alg);
    if (cmpr_prot_kind(alg->algorithm) == CMPR_PROT_PBM) {
        assert_non_null(pbm = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMPARAMETER), alg->parameter));
        s = pbm->salt;
    } else {
        assert_non_null(pb1 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMAC1PARAM), alg->parameter));
        assert_non_null(kdf = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM),
                                                        pb1->keyDerivationFunc->parameter));
        s = kdf->salt->value.octet_string;
    }
    n = (size_t)ASN1_STRING_length(s);
    assert_true(n <= cap);
    memcpy(out, ASN1_STRING_get0_data(s), n);
    CMPR_PBMPARAMETER_free(pbm);
    CMPR_PBMAC1PARAM_free(pb1);
    PBKDF2PARAM_free(kdf);
    return n;
}

/* protects a fresh genm with cache; its salt into salt (16..64 octets) */
static size_t
protected_salt(struct cmpr_mac_cache *cache, const unsigned char *sec, size_t seclen,
               const struct cmpr_mac_params *mp, unsigned char salt[64])
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_GENM, 2);
    struct cmpr_verify_opts plain = { 0, NULL, NULL };
    size_t n;

    assert_non_null(m);
    assert_int_equal(cmpr_protect_mac(m, sec, seclen, mp, cache), CMPR_OK);
    /* whoever checks it needs nothing but the secret */
    assert_int_equal(cmpr_verify_mac(m, sec, seclen, &plain), CMPR_OK);
    n = salt_of(m, salt, 64);
    CMPR_PKIMESSAGE_free(m);
    return n;
}

/* Our own MAC's salt (RFC 9810 5.1.3.1 leaves it to the sender): with a
 * cache, one salt per secret and parameters for a while, so the key of the
 * answers is derived once and not per message (the parameters stay the same
 * within a transaction, as the RFC recommends); each cache has its own
 * random seed, so nobody can know a salt before it is used; without a cache,
 * or with the period 0, a random salt per message. */
static void
test_answer_salt(void **state)
{
    struct cmpr_mac_cache *cache = cmpr_mac_cache_new(64), *other = cmpr_mac_cache_new(64);
    static const unsigned char sec2[] = "another secret";
    unsigned char a[64], b[64], c[64];
    size_t na, nb;
    unsigned long hits, misses;
    struct cmpr_mac_params mp, mp1;
    time_t t0, t1;
    int rotated = 0;
    (void)state;

    assert_non_null(cache);
    assert_non_null(other);
    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    /* the same salt twice, derived once */
    do {
        t0 = time(NULL);
        na = protected_salt(cache, secret, SECLEN, &mp, a);
        nb = protected_salt(cache, secret, SECLEN, &mp, b);
    } while (time(NULL) / 60 != t0 / 60);       /* not across the period's edge */
    assert_int_equal(na, 16);
    assert_int_equal(nb, 16);
    assert_memory_equal(a, b, 16);
    cmpr_mac_cache_stats(cache, &hits, &misses);
    assert_true(hits >= 1);
    (void)misses;
    /* another secret, another iteration count, another salt length, another
     * cache: another salt */
    assert_int_equal(protected_salt(cache, sec2, sizeof(sec2) - 1, &mp, c), 16);
    assert_memory_not_equal(a, c, 16);
    mp1 = mp;
    mp1.iter = 501;
    assert_int_equal(protected_salt(cache, secret, SECLEN, &mp1, c), 16);
    assert_memory_not_equal(a, c, 16);
    mp1 = mp;
    mp1.salt_len = 40;
    assert_int_equal(protected_salt(cache, secret, SECLEN, &mp1, c), 40);
    assert_memory_not_equal(a, c, 16);
    assert_int_equal(protected_salt(other, secret, SECLEN, &mp, c), 16);
    assert_memory_not_equal(a, c, 16);
    /* PBMAC1 alike */
    cmpr_mac_params_default(&mp1, CMPR_MAC_PBMAC1);
    do {
        t0 = time(NULL);
        na = protected_salt(cache, secret, SECLEN, &mp1, a);
        nb = protected_salt(cache, secret, SECLEN, &mp1, b);
    } while (time(NULL) / 60 != t0 / 60);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    /* no cache, or the period 0: a random salt each time */
    assert_int_equal(protected_salt(NULL, secret, SECLEN, &mp, a), 16);
    assert_int_equal(protected_salt(NULL, secret, SECLEN, &mp, b), 16);
    assert_memory_not_equal(a, b, 16);
    cmpr_mac_cache_set_salt_period(other, 0);
    assert_int_equal(protected_salt(other, secret, SECLEN, &mp, a), 16);
    assert_int_equal(protected_salt(other, secret, SECLEN, &mp, b), 16);
    assert_memory_not_equal(a, b, 16);
    /* a period of one second: the salt changes when the second does (waited
     * for by the clock, at most ten seconds) */
    cmpr_mac_cache_set_salt_period(cache, 1);
    t0 = time(NULL);
    assert_int_equal(protected_salt(cache, secret, SECLEN, &mp, a), 16);
    do {
        assert_int_equal(protected_salt(cache, secret, SECLEN, &mp, b), 16);
        t1 = time(NULL);
        if (t1 == t0) {
            assert_memory_equal(a, b, 16);
        } else if (memcmp(a, b, 16) != 0) {
            rotated = 1;
        }
    } while (!rotated && t1 - t0 < 10);
    assert_true(rotated);
    cmpr_mac_cache_free(cache);
    cmpr_mac_cache_free(other);
}

/* certHash (RFC 9810 5.3.18) equals what the OpenSSL client puts in certConf */
static void
test_cert_hash(void **state)
{
    static const char *const specs[] = { "ec:P-384", "rsa:2048", "ed25519", "ed448" };
    (void)state;

    for (size_t i = 0; i < 4; i++) {
        EVP_PKEY *k = tu_key(specs[i]);
        X509 *made = tu_cert(k, "Hash", NULL, NULL, 0), *c;
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned int hl = 0;
        ASN1_OCTET_STRING *want;

        /* as both sides see it: decoded from its DER */
        {
            unsigned char *d = NULL;
            const unsigned char *q;
            int dn = i2d_X509(made, &d);

            q = d;
            c = d2i_X509(NULL, &q, dn);
            OPENSSL_free(d);
            X509_free(made);
            assert_non_null(c);
        }
        want = X509_digest_sig(c, NULL, NULL);

        assert_int_equal(cmpr_cert_hash(c, NULL, h, &hl), CMPR_OK);
        assert_int_equal((int)hl, ASN1_STRING_length(want));
        assert_memory_equal(h, ASN1_STRING_get0_data(want), hl);
        /* the same from the DER alone, and with a hashAlg (pvno 3) */
        {
            unsigned char *der = NULL, h2[EVP_MAX_MD_SIZE], h3[EVP_MAX_MD_SIZE], h4[EVP_MAX_MD_SIZE];
            unsigned int hl2 = 0, hl3 = 0, hl4 = 0;
            int n = i2d_X509(c, &der);
            X509_ALGOR *ha = X509_ALGOR_new();

            assert_true(n > 0);
            assert_int_equal(cmpr_cert_hash_der(der, (size_t)n, NULL, h2, &hl2), CMPR_OK);
            assert_int_equal(hl2, hl);
            assert_memory_equal(h2, h, hl);
            X509_ALGOR_set0(ha, OBJ_nid2obj(NID_sha384), V_ASN1_UNDEF, NULL);
            assert_int_equal(cmpr_cert_hash(c, ha, h4, &hl4), CMPR_OK);
            assert_int_equal(cmpr_cert_hash_der(der, (size_t)n, ha, h3, &hl3), CMPR_OK);
            assert_int_equal(hl3, 48);
            assert_int_equal(hl4, 48);
            assert_memory_equal(h3, h4, hl3);
            /* not a certificate: refused, no crash */
            assert_int_equal(cmpr_cert_hash_der(der, (size_t)n - 1, NULL, h2, &hl2), CMPR_ERR_DECODE);
            assert_int_equal(cmpr_cert_hash_der((const unsigned char *)"\x30\x00", 2, NULL, h2, &hl2),
                             CMPR_ERR_DECODE);
            X509_ALGOR_free(ha);
            OPENSSL_free(der);
        }
        if (i == 0)
            assert_int_equal(hl, 32);      /* signed with ecdsa-with-SHA256 -> SHA-256 */
        if (i == 2)
            assert_int_equal(hl, 64);      /* Ed25519 -> SHA-512 (Ed448: SHAKE256, as long as OpenSSL makes it) */
        ASN1_OCTET_STRING_free(want);
        X509_free(c);
        EVP_PKEY_free(k);
    }
}

static int
ossl_popo_ok(const CMPR_CERTREQMSG *crm)
{
    OSSL_CRMF_MSG *om = cmpr_crm_to_ossl(crm);
    OSSL_CRMF_MSGS *msgs = sk_OSSL_CRMF_MSG_new_null();
    int ok;

    assert_non_null(om);
    sk_OSSL_CRMF_MSG_push(msgs, om);
    ok = OSSL_CRMF_MSGS_verify_popo(msgs, 0, 0, NULL, NULL);
    sk_OSSL_CRMF_MSG_pop_free(msgs, OSSL_CRMF_MSG_free);
    ERR_clear_error();
    return ok;
}

/* RFC 4211 4.1: signature POP, against OSSL_CRMF_MSGS_verify_popo */
static void
test_pop_signature(void **state)
{
    static const char *const files[] = { "openssl/ir_sig.der", "openssl/ir_mac.der",
                                          "openssl/cr_mac.der", "openssl/kur_sig.der" };
    static const char *const specs[] = { "rsa:2048", "ec:P-384", "ed25519" };
    char path[4096];
    (void)state;

    for (size_t i = 0; i < 4; i++) {
        size_t len;
        unsigned char *der = tu_read(tu_data(files[i], path, sizeof(path)), &len);
        CMPR_PKIMESSAGE *m = NULL;
        CMPR_CERTREQMSG *crm;
        unsigned char *sig;

        assert_int_equal(cmpr_msg_decode(der, len, &m, NULL), CMPR_OK);
        crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(m), 0);
        assert_int_equal(cmpr_crm_verify_pop_sig(crm), CMPR_OK);
        assert_true(ossl_popo_ok(crm));
        sig = (unsigned char *)ASN1_STRING_get0_data(crm->popo->value.signature->signature);
        sig[5] ^= 0x10;
        assert_int_equal(cmpr_crm_verify_pop_sig(crm), CMPR_ERR_SIG_INVALID);
        assert_false(ossl_popo_ok(crm));
        CMPR_PKIMESSAGE_free(m);
        free(der);
    }
    for (size_t i = 0; i < 3; i++) {
        EVP_PKEY *k = tu_key(specs[i]), *other = tu_key(specs[i]);
        CMPR_CERTREQMSG *crm = CMPR_CERTREQMSG_new();
        X509_NAME *n = X509_NAME_new();

        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"pop", -1, -1, 0);
        assert_int_equal(cmpr_tmpl_fill(crm->certReq->certTemplate, k, n, NULL, NULL), CMPR_OK);
        assert_int_equal(cmpr_crm_create_pop_sig(crm, k, NULL), CMPR_OK);
        assert_int_equal(cmpr_crm_verify_pop_sig(crm), CMPR_OK);
        assert_true(ossl_popo_ok(crm));
        /* signed by a key other than the one to be certified: badPOP */
        assert_int_equal(cmpr_crm_create_pop_sig(crm, other, NULL), CMPR_OK);
        assert_int_equal(cmpr_crm_verify_pop_sig(crm), CMPR_ERR_SIG_INVALID);
        assert_false(ossl_popo_ok(crm));
        /* raVerified is not a signature POP */
        CMPR_POPO_free(crm->popo);
        crm->popo = CMPR_POPO_new();
        crm->popo->type = CMPR_POPO_RAVERIFIED;
        crm->popo->value.raVerified = ASN1_NULL_new();
        assert_int_equal(cmpr_crm_verify_pop_sig(crm), CMPR_ERR_INVALID_ARG);
        X509_NAME_free(n);
        CMPR_CERTREQMSG_free(crm);
        EVP_PKEY_free(k);
        EVP_PKEY_free(other);
    }
}

/* codec errors answer with the failInfo bits RFC 9483 3.5 names */
static void
test_err_failinfo(void **state)
{
    (void)state;
    assert_int_equal(cmpr_err_failinfo(CMPR_ERR_ITER_LIMIT), CMPR_FI_BAD_ALG);
    assert_int_equal(cmpr_err_failinfo(CMPR_ERR_BAD_ALG), CMPR_FI_BAD_ALG);
    assert_int_equal(cmpr_err_failinfo(CMPR_ERR_MAC_MISMATCH), CMPR_FI_BAD_MESSAGE_CHECK);
    assert_int_equal(cmpr_err_failinfo(CMPR_ERR_SIG_INVALID), CMPR_FI_BAD_MESSAGE_CHECK);
    assert_int_equal(cmpr_err_failinfo(CMPR_ERR_WRONG_INTEGRITY), CMPR_FI_WRONG_INTEGRITY);
    assert_int_equal(cmpr_err_failinfo(CMPR_ERR_TRAILING), CMPR_FI_BAD_DATA_FORMAT);
    assert_int_equal(cmpr_err_failinfo(CMPR_ERR_NOT_DER), CMPR_FI_BAD_DATA_FORMAT);
    assert_int_equal(cmpr_err_failinfo(CMPR_OK), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pbm_matches_openssl),
        cmocka_unit_test(test_pbm_key_expansion),
        cmocka_unit_test(test_pbmac1_matches_pbkdf2),
        cmocka_unit_test(test_pbmac1_kdf_named_pbes2),
        cmocka_unit_test(test_mac_params_of),
        cmocka_unit_test(test_mac_refusals),
        cmocka_unit_test(test_mac_cost),
        cmocka_unit_test(test_signature_algorithms),
        cmocka_unit_test(test_protection_cert_by_kid),
        cmocka_unit_test(test_mac_key_cache),
        cmocka_unit_test(test_answer_salt),
        cmocka_unit_test(test_cert_hash),
        cmocka_unit_test(test_pop_signature),
        cmocka_unit_test(test_err_failinfo),
    };

    return cmocka_run_group_tests_name("protect", tests, NULL, NULL);
}
