/* Central key generation (RFC 9483 4.1.6; RFC 5958 AsymmetricKeyPackage,
 * RFC 5652 SignedData and EnvelopedData). See keygen.h. */
#include "codec/keygen.h"
#include "codec/der.h"
#include "codec/msg.h"
#include "base/err.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/ec.h>
#include <openssl/err.h>

#define OID_AKEYPACKAGE "2.16.840.1.101.2.1.2.78.5"     /* id-ct-KP-aKeyPackage */

EVP_PKEY *
cmpr_key_generate(const char *spec)
{
    if (spec == NULL)
        return NULL;
    if (strcmp(spec, "ec:P-256") == 0 || strcmp(spec, "ec:prime256v1") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (strcmp(spec, "ec:P-384") == 0 || strcmp(spec, "ec:secp384r1") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (strcmp(spec, "ec:P-521") == 0 || strcmp(spec, "ec:secp521r1") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    if (strncmp(spec, "rsa:", 4) == 0) {
        char *end;
        long bits = strtol(spec + 4, &end, 10);

        if (*end == '\0' && bits >= 2048 && bits <= 8192)
            return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
        return NULL;
    }
    if (strcmp(spec, "ed25519") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (strcmp(spec, "ed448") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    return NULL;
}

int
cmpr_spki_wants_central(const CMPR_SPKI *spki, char *spec, size_t len)
{
    const ASN1_OBJECT *aoid;
    const void *pval;
    int ptype, nid;

    spec[0] = '\0';
    if (spki == NULL)
        return 1;
    if (spki->subjectPublicKey != NULL && ASN1_STRING_length(spki->subjectPublicKey) > 0)
        return 0;
    X509_ALGOR_get0(&aoid, &ptype, &pval, spki->algorithm);
    nid = OBJ_obj2nid(aoid);
    if (nid == NID_X9_62_id_ecPublicKey && ptype == V_ASN1_OBJECT) {
        const char *nist = EC_curve_nid2nist(OBJ_obj2nid(pval));

        snprintf(spec, len, "ec:%s", nist != NULL ? nist : OBJ_nid2sn(OBJ_obj2nid(pval)));
    } else if (nid == NID_rsaEncryption) {
        snprintf(spec, len, "rsa:2048");
    } else if (nid == NID_ED25519 || nid == NID_ED448) {
        snprintf(spec, len, "%s", nid == NID_ED25519 ? "ed25519" : "ed448");
    } else {
        snprintf(spec, len, "?%s", nid != NID_undef ? OBJ_nid2sn(nid) : "unknown");
    }
    return 1;
}

int
cmpr_spki_for_central(const char *spec, CMPR_SPKI **spki_r)
{
    CMPR_SPKI *s;
    int nid = NID_undef, ptype = V_ASN1_UNDEF;
    void *pval = NULL;

    *spki_r = NULL;
    if (spec == NULL || spec[0] == '\0')
        return CMPR_OK;
    if (strncmp(spec, "ec:", 3) == 0) {
        int curve = EC_curve_nist2nid(spec + 3);

        if (curve == NID_undef)
            curve = OBJ_sn2nid(spec + 3);
        if (curve == NID_undef)
            return CMPR_ERR_INVALID_ARG;
        nid = NID_X9_62_id_ecPublicKey;
        ptype = V_ASN1_OBJECT;
        pval = OBJ_nid2obj(curve);
    } else if (strncmp(spec, "rsa", 3) == 0) {
        nid = NID_rsaEncryption;
        ptype = V_ASN1_NULL;
    } else if (strcmp(spec, "ed25519") == 0 || strcmp(spec, "ed448") == 0) {
        nid = spec[2] == '2' ? NID_ED25519 : NID_ED448;
    } else {
        return CMPR_ERR_INVALID_ARG;
    }
    if ((s = CMPR_SPKI_new()) == NULL || !X509_ALGOR_set0(s->algorithm, OBJ_nid2obj(nid), ptype, pval)
            || !ASN1_BIT_STRING_set(s->subjectPublicKey, NULL, 0)) {
        CMPR_SPKI_free(s);
        return CMPR_ERR_ALLOC;
    }
    *spki_r = s;
    return CMPR_OK;
}

/* AsymmetricKeyPackage ::= SEQUENCE SIZE (1..MAX) OF OneAsymmetricKey: key
 * as PKCS#8 (OneAsymmetricKey v1) in a SEQUENCE of one */
static unsigned char *
akp_of(EVP_PKEY *key, size_t *len_r)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
    unsigned char *der = NULL, *out = NULL;
    int n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    size_t hl;

    PKCS8_PRIV_KEY_INFO_free(p8);
    if (n <= 0)
        return NULL;
    hl = cmpr_der_hdr_size((size_t)n);
    if ((out = OPENSSL_malloc(hl + (size_t)n)) != NULL) {
        memcpy(cmpr_der_put_hdr(out, 0x30, (size_t)n), der, (size_t)n);
        *len_r = hl + (size_t)n;
    }
    OPENSSL_clear_free(der, (size_t)n);
    return out;
}

CMPR_ENVELOPEDDATA *
cmpr_keygen_seal(EVP_PKEY *key, EVP_PKEY *signkey, X509 *signcert, STACK_OF(X509) *chain, X509 *rcpt,
                 const unsigned char *secret, size_t slen)
{
    size_t alen = 0;
    unsigned char *akp = akp_of(key, &alen), *sd = NULL;
    BIO *in = akp != NULL ? BIO_new_mem_buf(akp, (int)alen) : NULL;
    CMS_ContentInfo *cms = NULL;
    ASN1_OBJECT *ct = OBJ_txt2obj(OID_AKEYPACKAGE, 1);
    CMPR_ENVELOPEDDATA *env = NULL;
    int n = -1;

    if (in != NULL && ct != NULL
            && (cms = CMS_sign(signcert, signkey, chain, NULL, CMS_BINARY | CMS_PARTIAL)) != NULL
            && CMS_set1_eContentType(cms, ct) && CMS_final(cms, in, NULL, CMS_BINARY) == 1
            && (n = i2d_CMS_ContentInfo(cms, &sd)) > 0)
        env = cmpr_envdata_seal(sd, (size_t)n, rcpt, secret, slen);
    OPENSSL_free(sd);
    ASN1_OBJECT_free(ct);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    OPENSSL_clear_free(akp, alen);
    ERR_clear_error();
    return env;
}

/* the first OneAsymmetricKey of an AsymmetricKeyPackage, or a bare key */
static EVP_PKEY *
key_of(const unsigned char *d, size_t len)
{
    const unsigned char *p = d;
    long hl;
    int tag, cls;
    EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, (long)len);

    if (k != NULL)
        return k;
    p = d;
    if (!(ASN1_get_object(&p, &hl, &tag, &cls, (long)len) & 0x80) && tag == V_ASN1_SEQUENCE)
        k = d2i_AutoPrivateKey(NULL, &p, hl);
    return k;
}

EVP_PKEY *
cmpr_keygen_open(const CMPR_ENVELOPEDDATA *env, EVP_PKEY *key, X509 *cert, const unsigned char *secret,
                 size_t slen, X509_STORE *trusted, STACK_OF(X509) *untrusted, char *why, size_t wlen)
{
    unsigned char *sd = NULL;
    size_t sdlen = 0;
    const unsigned char *p;
    CMS_ContentInfo *cms = NULL;
    BIO *out = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n = 0;
    EVP_PKEY *k = NULL;

    if (cmpr_envdata_open(env, key, cert, secret, slen, &sd, &sdlen) != CMPR_OK) {
        snprintf(why, wlen, "the private key's envelope does not open with our %s", key != NULL ? "key" : "secret");
        goto out;
    }
    p = sd;
    if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)sdlen)) == NULL
            || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        snprintf(why, wlen, "the envelope does not hold SignedData");
        goto out;
    }
    if (out == NULL || CMS_verify(cms, untrusted, trusted, NULL, out, CMS_BINARY) != 1) {
        snprintf(why, wlen, "the signature over the private key does not verify against the trusted certificates");
        goto out;
    }
    n = BIO_get_mem_data(out, &data);
    if (n <= 0 || (k = key_of((const unsigned char *)data, (size_t)n)) == NULL)
        snprintf(why, wlen, "the signed content is not a private key (AsymmetricKeyPackage)");
 out:
    if (data != NULL && n > 0)
        OPENSSL_cleanse(data, (size_t)n);
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    OPENSSL_clear_free(sd, sdlen);
    ERR_clear_error();
    return k;
}
