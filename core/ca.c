/* The embedded CA: loads keys once, applies profiles, issues, makes CRLs. */
#include "core/ca.h"
#include "core/grant.h"
#include "codec/algs.h"
#include "codec/msg.h"
#include "codec/asn1.h"
#include "base/err.h"
#include "base/log.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

STACK_OF(X509) *
cmpr_load_certs(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    STACK_OF(X509) *sk;
    X509 *x;

    if (b == NULL)
        return NULL;
    if ((sk = sk_X509_new_null()) == NULL) {
        BIO_free(b);
        return NULL;
    }
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        sk_X509_push(sk, x);
    ERR_clear_error();
    /* one DER certificate */
    if (sk_X509_num(sk) == 0 && BIO_reset(b) == 0 && (x = d2i_X509_bio(b, NULL)) != NULL)
        sk_X509_push(sk, x);
    ERR_clear_error();
    BIO_free(b);
    if (sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        return NULL;
    }
    return sk;
}

EVP_PKEY *
cmpr_load_key(const char *path, const char *pass)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k;

    if (b == NULL)
        return NULL;
    k = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)pass);
    if (k == NULL && BIO_reset(b) == 0)
        k = d2i_PrivateKey_bio(b, NULL);
    ERR_clear_error();
    BIO_free(b);
    return k;
}

X509 *
cmpr_load_cert(const char *path)
{
    STACK_OF(X509) *sk = cmpr_load_certs(path);
    X509 *x;

    if (sk == NULL)
        return NULL;
    x = sk_X509_shift(sk);
    sk_X509_pop_free(sk, X509_free);
    return x;
}

int
cmpr_cert_has_eku(X509 *x, const char *oid)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    ASN1_OBJECT *want = OBJ_txt2obj(oid, 1);
    int found = 0;

    for (int i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++)
        if (OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want) == 0)
            found = 1;
    ASN1_OBJECT_free(want);
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

static int
self_signed(X509 *x)
{
    return X509_check_issued(x, x) == X509_V_OK;
}

int
cmpr_ca_load(const struct cmpr_conf_ca *cc, struct cmpr_ca **ca_r, char **err_r)
{
    struct cmpr_ca *ca = calloc(1, sizeof(*ca));
    char buf[512] = "";

    *ca_r = NULL;
    *err_r = NULL;
    if (ca == NULL)
        return CMPR_ERR_ALLOC;
    pthread_mutex_init(&ca->crl_mu, NULL);
    ca->conf = cc;
    if ((ca->key = cmpr_load_key(cc->key, NULL)) == NULL) {
        snprintf(buf, sizeof(buf), "[ca %s]: cannot read a private key from %s", cc->name, cc->key);
        goto fail;
    }
    if ((ca->cert = cmpr_load_cert(cc->cert)) == NULL) {
        snprintf(buf, sizeof(buf), "[ca %s]: cannot read a certificate from %s", cc->name, cc->cert);
        goto fail;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        snprintf(buf, sizeof(buf), "[ca %s]: key %s does not belong to certificate %s",
                 cc->name, cc->key, cc->cert);
        goto fail;
    }
    if (cc->chain != NULL && (ca->chain = cmpr_load_certs(cc->chain)) == NULL) {
        snprintf(buf, sizeof(buf), "[ca %s]: cannot read certificates from %s", cc->name, cc->chain);
        goto fail;
    }
    if (ca->chain == NULL)
        ca->chain = sk_X509_new_null();
    if (sk_X509_num(ca->chain) > 0 && self_signed(sk_X509_value(ca->chain, sk_X509_num(ca->chain) - 1)))
        ca->root = sk_X509_value(ca->chain, sk_X509_num(ca->chain) - 1);
    else if (self_signed(ca->cert))
        ca->root = ca->cert;
    if (ca->root != NULL)
        X509_up_ref(ca->root);
    if (cc->signer_cert != NULL) {
        /* the signer, then its own issuers (it may belong to another
         * hierarchy); extraCerts carry them first, then the CA's chain
         * (RFC 9483 3.3) */
        if ((ca->signer_chain = cmpr_load_certs(cc->signer_cert)) == NULL
                || (ca->signer_cert = sk_X509_shift(ca->signer_chain)) == NULL
                || (ca->signer_key = cmpr_load_key(cc->signer_key, NULL)) == NULL
                || X509_check_private_key(ca->signer_cert, ca->signer_key) != 1) {
            snprintf(buf, sizeof(buf), "[ca %s]: signer_cert/signer_key unreadable or not a pair",
                     cc->name);
            goto fail;
        }
        if (!X509_add_cert(ca->signer_chain, ca->cert, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP)
                || !X509_add_certs(ca->signer_chain, ca->chain, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP)) {
            snprintf(buf, sizeof(buf), "[ca %s]: out of memory", cc->name);
            goto fail;
        }
        /* RFC 9483 3.1 / RFC 9810 4.5: a CMP signer other than the CA should
         * carry id-kp-cmcCA so clients can tell it speaks for the CA */
        if (!(X509_get_extension_flags(ca->signer_cert) & EXFLAG_XKUSAGE)
                || !cmpr_cert_has_eku(ca->signer_cert, CMPR_OID_KP_CMCCA))
            cmpr_log_warn("[ca %s]: signer_cert %s lacks the cmcCA extended key usage",
                          cc->name, cc->signer_cert);
    } else {
        X509_up_ref(ca->cert);
        EVP_PKEY_up_ref(ca->key);
        ca->signer_cert = ca->cert;
        ca->signer_key = ca->key;
        ca->signer_chain = X509_chain_up_ref(ca->chain);
    }
    if (cc->encryption_cert != NULL) {
        if ((ca->enc_cert = cmpr_load_cert(cc->encryption_cert)) == NULL
                || (ca->enc_key = cmpr_load_key(cc->encryption_key, NULL)) == NULL) {
            snprintf(buf, sizeof(buf), "[ca %s]: encryption_cert/encryption_key unreadable",
                     cc->name);
            goto fail;
        }
    }
    *ca_r = ca;
    return CMPR_OK;
 fail:
    ERR_clear_error();
    *err_r = strdup(buf);
    cmpr_ca_free(ca);
    return CMPR_ERR_CONFIG;
}

void
cmpr_ca_free(struct cmpr_ca *ca)
{
    if (ca == NULL)
        return;
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    sk_X509_pop_free(ca->chain, X509_free);
    X509_free(ca->root);
    EVP_PKEY_free(ca->signer_key);
    X509_free(ca->signer_cert);
    sk_X509_pop_free(ca->signer_chain, X509_free);
    EVP_PKEY_free(ca->enc_key);
    X509_free(ca->enc_cert);
    pthread_mutex_destroy(&ca->crl_mu);
    free(ca);
}

STACK_OF(X509) *
cmpr_ca_get1_chain(const struct cmpr_ca *ca)
{
    STACK_OF(X509) *sk = sk_X509_new_null();

    if (sk == NULL || !X509_add_cert(sk, ca->cert, X509_ADD_FLAG_UP_REF)
            || !X509_add_certs(sk, ca->chain, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP)) {
        sk_X509_pop_free(sk, X509_free);
        return NULL;
    }
    return sk;
}

void
cmpr_name_text(const X509_NAME *name, char *buf, size_t len)
{
    BIO *mem = BIO_new(BIO_s_mem());
    char *p = NULL;
    long n;

    buf[0] = '\0';
    if (mem == NULL || name == NULL) {
        BIO_free(mem);
        return;
    }
    X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    n = BIO_get_mem_data(mem, &p);
    snprintf(buf, len, "%.*s", (int)(n > 0 ? n : 0), p != NULL ? p : "");
    BIO_free(mem);
}

int
cmpr_name_matches(const X509_NAME *name, const char *pattern)
{
    char text[1024];

    cmpr_name_text(name, text, sizeof(text));
    if (strpbrk(pattern, "*?[") == NULL)
        return strcmp(text, pattern) == 0;
    return fnmatch(pattern, text, 0) == 0;
}

static int
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1);

    X509_EXTENSION_free(ext);
    return ok;
}

static uint64_t
time_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
cmpr_ca_serial(unsigned char serial[16], uint64_t ms)
{
    if (!cmpr_rand_public(serial + 6, 10))
        return CMPR_ERR_INTERNAL;
    for (int k = 5; k >= 0; k--, ms >>= 8)
        serial[k] = (unsigned char)ms;
    serial[0] = (unsigned char)(0x40 | (serial[0] & 0x3f));
    return CMPR_OK;
}

int
cmpr_ca_issue(struct cmpr_ca *ca, struct cmpr_store *st, const struct cmpr_conf_profile *pr,
              const struct cmpr_ca_request *req, const struct cmpr_ca_grant *g, X509 **cert_r)
{
    X509 *x = NULL;
    X509V3_CTX v3;
    unsigned char serial[16];
    ASN1_INTEGER *sn = NULL;
    BIGNUM *bn = NULL;
    char buf[1024];
    const EVP_MD *md = cmpr_md(NID_sha256);
    time_t nb = g->not_before, na = g->not_after;
    int r = CMPR_ERR_INTERNAL, tries;

    *cert_r = NULL;
    /* a positive serial of 16 octets, never reused (cmpr_ca_serial) */
    for (tries = 0; tries < 8; tries++) {
        if (cmpr_ca_serial(serial, time_ms()) != CMPR_OK)
            return CMPR_ERR_INTERNAL;
        r = st->ops->serial_reserve(st, serial, sizeof(serial));
        if (r != CMPR_ERR_EXISTS)
            break;
    }
    if (r != CMPR_OK)
        return r;
    r = CMPR_ERR_INTERNAL;
    if ((x = X509_new()) == NULL || (bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL
            || (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL
            || !X509_set_version(x, 2) || !X509_set_serialNumber(x, sn)
            || !X509_set_issuer_name(x, X509_get_subject_name(ca->cert))
            || !X509_set_subject_name(x, (X509_NAME *)req->subject)
            || X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) == NULL
            || X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na) == NULL)
        goto out;
    /* the key as it came (already checked: pubkey was built from it); its
     * encoding and parsing again by X509_set_pubkey cost more than the
     * certificate's signature */
    if ((tries = cmpr_spki_copy(req->spki, X509_get_X509_PUBKEY(x))) < 0
            || (tries == 0 && !X509_set_pubkey(x, req->pubkey)))
        goto out;
    /* what the grant settled (cmpr_ca_decide), then the CA's own */
    for (int i = 0; i < sk_X509_EXTENSION_num(g->exts); i++)
        if (!X509_add_ext(x, sk_X509_EXTENSION_value(g->exts, i), -1))
            goto out;
    X509V3_set_ctx(&v3, ca->cert, x, NULL, NULL, 0);
    if (!add_ext(x, &v3, NID_subject_key_identifier, "hash")
            || !add_ext(x, &v3, NID_authority_key_identifier, "keyid:always"))
        goto out;
    if (pr->crl_distribution_point != NULL) {
        snprintf(buf, sizeof(buf), "URI:%s", pr->crl_distribution_point);
        if (!add_ext(x, &v3, NID_crl_distribution_points, buf))
            goto out;
    }
    if (pr->aia_ca_issuers != NULL || pr->aia_ocsp != NULL) {
        snprintf(buf, sizeof(buf), "%s%s%s%s%s",
                 pr->aia_ca_issuers ? "caIssuers;URI:" : "", pr->aia_ca_issuers ? pr->aia_ca_issuers : "",
                 pr->aia_ca_issuers && pr->aia_ocsp ? "," : "",
                 pr->aia_ocsp ? "OCSP;URI:" : "", pr->aia_ocsp ? pr->aia_ocsp : "");
        if (!add_ext(x, &v3, NID_info_access, buf))
            goto out;
    }
    if (EVP_PKEY_is_a(ca->key, "ED25519") || EVP_PKEY_is_a(ca->key, "ED448"))
        md = NULL;
    if (X509_sign(x, ca->key, md) <= 0)
        goto out;
    *cert_r = x;
    x = NULL;
    r = CMPR_OK;
 out:
    if (r != CMPR_OK)
        cmpr_log_error("issuing failed: %s", ERR_reason_error_string(ERR_peek_last_error()));
    ERR_clear_error();
    X509_free(x);
    ASN1_INTEGER_free(sn);
    BN_free(bn);
    return r;
}

struct crl_ctx {
    X509_CRL *crl;
    int failed;
};

static int
crl_add(const struct cmpr_cert_rec *rec, void *arg)
{
    struct crl_ctx *c = arg;
    X509_REVOKED *rv;
    BIGNUM *bn;
    ASN1_INTEGER *sn;
    ASN1_TIME *t;

    if (rec->status == CMPR_CERT_VALID)
        return CMPR_OK;
    rv = X509_REVOKED_new();
    bn = BN_bin2bn(rec->serial, (int)rec->serial_len, NULL);
    sn = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    t = ASN1_TIME_set(NULL, (time_t)rec->revoked_at);
    if (rv == NULL || sn == NULL || t == NULL || !X509_REVOKED_set_serialNumber(rv, sn)
            || !X509_REVOKED_set_revocationDate(rv, t)) {
        c->failed = 1;
    } else {
        int reason = rec->status == CMPR_CERT_ON_HOLD ? 6 : rec->reason;

        if (reason > 0) {
            ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();

            ASN1_ENUMERATED_set(e, reason);
            X509_REVOKED_add1_ext_i2d(rv, NID_crl_reason, e, 0, 0);
            ASN1_ENUMERATED_free(e);
        }
        if (X509_CRL_add0_revoked(c->crl, rv))
            rv = NULL;
        else
            c->failed = 1;
    }
    X509_REVOKED_free(rv);
    ASN1_INTEGER_free(sn);
    ASN1_TIME_free(t);
    BN_free(bn);
    return CMPR_OK;
}

int
cmpr_ca_make_crl(struct cmpr_ca *ca, struct cmpr_store *st, X509_CRL **crl_r)
{
    struct crl_ctx c = { X509_CRL_new(), 0 };
    time_t now = time(NULL);
    ASN1_TIME *t1 = ASN1_TIME_set(NULL, now);
    ASN1_TIME *t2 = ASN1_TIME_set(NULL, now + ca->conf->crl_days * 86400L);
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    X509V3_CTX v3;
    X509_EXTENSION *aki;
    const EVP_MD *md = cmpr_md(NID_sha256);
    int r = CMPR_ERR_INTERNAL;

    *crl_r = NULL;
    if (c.crl == NULL || t1 == NULL || t2 == NULL || num == NULL
            || !X509_CRL_set_version(c.crl, 1)
            || !X509_CRL_set_issuer_name(c.crl, X509_get_subject_name(ca->cert))
            || !X509_CRL_set1_lastUpdate(c.crl, t1) || !X509_CRL_set1_nextUpdate(c.crl, t2))
        goto out;
    if ((r = st->ops->cert_list_revoked(st, crl_add, &c)) != CMPR_OK)
        goto out;
    r = CMPR_ERR_INTERNAL;
    if (c.failed)
        goto out;
    /* CRL numbers grow with time, so a restart never goes backwards */
    ASN1_INTEGER_set_int64(num, (int64_t)now);
    X509_CRL_add1_ext_i2d(c.crl, NID_crl_number, num, 0, 0);
    X509V3_set_ctx(&v3, ca->cert, NULL, NULL, c.crl, 0);
    if ((aki = X509V3_EXT_conf_nid(NULL, &v3, NID_authority_key_identifier, "keyid:always")) != NULL) {
        X509_CRL_add_ext(c.crl, aki, -1);
        X509_EXTENSION_free(aki);
    }
    X509_CRL_sort(c.crl);
    if (EVP_PKEY_is_a(ca->key, "ED25519") || EVP_PKEY_is_a(ca->key, "ED448"))
        md = NULL;
    if (X509_CRL_sign(c.crl, ca->key, md) <= 0)
        goto out;
    *crl_r = c.crl;
    c.crl = NULL;
    r = CMPR_OK;
 out:
    ERR_clear_error();
    X509_CRL_free(c.crl);
    ASN1_TIME_free(t1);
    ASN1_TIME_free(t2);
    ASN1_INTEGER_free(num);
    return r;
}

int
cmpr_ca_write_crl(struct cmpr_ca *ca, struct cmpr_store *st, const char *path)
{
    X509_CRL *crl = NULL;
    unsigned char *der = NULL;
    char tmp[4096];
    int n, fd = -1, r;

    if (ca == NULL)
        return CMPR_OK;         /* a router without [ca]: no CRL of its own */
    if (path == NULL)
        path = ca->conf->crl_file;
    if (path == NULL)
        return CMPR_OK;
    /* workers write at once (an rr on each): one at a time, each with what
     * the store holds when its turn comes, so the file published last is
     * whole and the newest */
    pthread_mutex_lock(&ca->crl_mu);
    if ((r = cmpr_ca_make_crl(ca, st, &crl)) != CMPR_OK) {
        pthread_mutex_unlock(&ca->crl_mu);
        return r;
    }
    r = CMPR_ERR_IO;
    if ((n = i2d_X509_CRL(crl, &der)) <= 0)
        goto out;
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        goto out;
    if (write(fd, der, (size_t)n) != n || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        goto out;
    }
    r = CMPR_OK;
 out:
    pthread_mutex_unlock(&ca->crl_mu);
    if (r != CMPR_OK)
        cmpr_log_error("cannot write CRL %s", path);
    OPENSSL_free(der);
    X509_CRL_free(crl);
    return r;
}
