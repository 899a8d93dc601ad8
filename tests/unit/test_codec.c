/* The CMP codec: every body type round-trips, OpenSSL's own decoder is the
 * oracle for what we encode, messages written by other implementations decode
 * and re-encode byte-identically, and hostile input fails cleanly. */
#include "testutil.h"

#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "codec/algs.h"
#include "codec/ee.h"
#include "codec/msg.h"
#include "codec/oids.h"
#include "codec/print.h"
#include "codec/protect.h"
#include "base/err.h"
#include "base/limits.h"

static EVP_PKEY *g_key;       /* EC P-256, for certs and CSRs */
static EVP_PKEY *g_rk;        /* RSA recipient of an EnvelopedData */
static X509 *g_rc;
static X509 *g_cert;          /* self-signed */

static int
setup(void **state)
{
    (void)state;
    g_key = tu_key("ec:P-256");
    g_cert = tu_cert(g_key, "Codec Test", NULL, NULL, 1);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g_key);
    X509_free(g_cert);
    return 0;
}

/* ---------------- builders for every body type ---------------- */

static CMPR_CERTREQMSG *
make_crm(void)
{
    CMPR_CERTREQMSG *crm = CMPR_CERTREQMSG_new();
    X509_NAME *subj = X509_NAME_new();
    OSSL_CRMF_CERTID *cid;
    CMPR_ATAV *ctl = CMPR_ATAV_new();
    X509_NAME *iss = X509_NAME_dup(X509_get_subject_name(g_cert));
    ASN1_INTEGER *serial = ASN1_INTEGER_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();

    assert_non_null(crm);
    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)"leaf", -1, -1, 0);
    ASN1_INTEGER_set(crm->certReq->certReqId, 0);
    assert_int_equal(cmpr_tmpl_fill(crm->certReq->certTemplate, g_key, subj, NULL, NULL), CMPR_OK);
    /* controls: oldCertID */
    ASN1_INTEGER_set(serial, 4242);
    GENERAL_NAME_set0_value(gn, GEN_DIRNAME, iss);
    cid = OSSL_CRMF_CERTID_gen(X509_get_subject_name(g_cert), serial);
    assert_non_null(cid);
    ctl->type = cmpr_regctrl_obj(CMPR_REGCTRL_OLDCERTID);
    ASN1_TYPE_free(ctl->value);
    ctl->value = ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(OSSL_CRMF_CERTID), cid, NULL);
    crm->certReq->controls = sk_CMPR_ATAV_new_null();
    sk_CMPR_ATAV_push(crm->certReq->controls, ctl);
    /* popo: raVerified keeps the test independent of signing */
    crm->popo = CMPR_POPO_new();
    crm->popo->type = CMPR_POPO_RAVERIFIED;
    crm->popo->value.raVerified = ASN1_NULL_new();
    OSSL_CRMF_CERTID_free(cid);
    GENERAL_NAME_free(gn);
    ASN1_INTEGER_free(serial);
    X509_NAME_free(subj);
    return crm;
}

static X509_CRL *
make_crl(void)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t = ASN1_TIME_set(NULL, time(NULL));

    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(g_cert));
    X509_CRL_set1_lastUpdate(crl, t);
    X509_CRL_set1_nextUpdate(crl, t);
    assert_true(X509_CRL_sign(crl, g_key, EVP_sha256()) > 0);
    ASN1_TIME_free(t);
    return crl;
}

/* A real EnvelopedData made by the CMS API for a fresh RSA recipient. */
static CMPR_ENVELOPEDDATA *
make_envdata(const char *content, EVP_PKEY **rk_r, X509 **rc_r)
{
    EVP_PKEY *rk = tu_key("rsa:2048");
    X509 *rc = tu_cert(rk, "Recipient", NULL, NULL, 0);
    CMPR_ENVELOPEDDATA *env = tu_envdata((const unsigned char *)content, strlen(content), rc);

    if (rk_r != NULL) {
        *rk_r = rk;
        *rc_r = rc;
    } else {
        EVP_PKEY_free(rk);
        X509_free(rc);
    }
    return env;
}

static CMPR_PKIMESSAGE *
build(int type)
{
    CMPR_PKIMESSAGE *m = NULL;

    switch (type) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_KUR:
    case CMPR_BODY_KRR: case CMPR_BODY_CCR:
        m = cmpr_msg_new(type, 2);
        sk_CMPR_CERTREQMSG_push(m->body->value.ir, make_crm());
        break;
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP: {
        STACK_OF(X509) *sk = sk_X509_new_null();

        sk_X509_push(sk, g_cert);
        m = cmpr_msg_build_certrep(NULL, type, 0, cmpr_pkisi_new(0, 0, "issued"),
                                   g_cert, sk, sk);
        sk_X509_free(sk);
        break;
    }
    case CMPR_BODY_P10CR: {
        X509_REQ *req;

        m = cmpr_msg_new(type, 2);
        req = m->body->value.p10cr;
        X509_REQ_set_subject_name(req, X509_get_subject_name(g_cert));
        X509_REQ_set_pubkey(req, g_key);
        assert_true(X509_REQ_sign(req, g_key, EVP_sha256()) > 0);
        break;
    }
    case CMPR_BODY_POPDECC: {
        CMPR_CHALLENGE *c = CMPR_CHALLENGE_new();

        m = cmpr_msg_new(type, 2);
        c->owf = X509_ALGOR_new();
        X509_ALGOR_set_md(c->owf, EVP_sha256());
        ASN1_OCTET_STRING_set(c->witness, (const unsigned char *)"witness", 7);
        ASN1_OCTET_STRING_set(c->challenge, (const unsigned char *)"challenge", 9);
        sk_CMPR_CHALLENGE_push(m->body->value.popdecc, c);
        break;
    }
    case CMPR_BODY_POPDECR: {
        ASN1_INTEGER *i = ASN1_INTEGER_new();

        m = cmpr_msg_new(type, 2);
        ASN1_INTEGER_set(i, 123456789);
        sk_ASN1_INTEGER_push(m->body->value.popdecr, i);
        break;
    }
    case CMPR_BODY_KRP: {
        STACK_OF(X509) *sk = sk_X509_new_null();

        sk_X509_push(sk, g_cert);
        m = cmpr_msg_build_krp(NULL, cmpr_pkisi_new(0, 0, NULL), g_cert, sk, NULL);
        sk_X509_free(sk);
        break;
    }
    case CMPR_BODY_RR: {
        CMPR_REVDETAILS *rd = CMPR_REVDETAILS_new();
        ASN1_ENUMERATED *reason = ASN1_ENUMERATED_new();

        m = cmpr_msg_new(type, 2);
        assert_int_equal(cmpr_tmpl_fill(rd->certDetails, NULL, NULL,
                    X509_get_issuer_name(g_cert), X509_get0_serialNumber(g_cert)), CMPR_OK);
        ASN1_ENUMERATED_set(reason, 1);
        assert_true(X509V3_add1_i2d(&rd->crlEntryDetails, NID_crl_reason, reason, 0, 0) == 1);
        ASN1_ENUMERATED_free(reason);
        sk_CMPR_REVDETAILS_push(m->body->value.rr, rd);
        break;
    }
    case CMPR_BODY_RP: {
        OSSL_CRMF_CERTID *cid = OSSL_CRMF_CERTID_gen(X509_get_issuer_name(g_cert),
                                                     X509_get0_serialNumber(g_cert));

        m = cmpr_msg_build_rp(NULL, cmpr_pkisi_new(0, 0, NULL), cid);
        OSSL_CRMF_CERTID_free(cid);
        break;
    }
    case CMPR_BODY_CKUANN: {
        CMPR_CAKEYUPDANNCONTENT *v2 = CMPR_CAKEYUPDANNCONTENT_new();

        m = cmpr_msg_new(type, 2);
        X509_free(v2->oldWithNew); X509_free(v2->newWithOld); X509_free(v2->newWithNew);
        v2->oldWithNew = X509_dup(g_cert);
        v2->newWithOld = X509_dup(g_cert);
        v2->newWithNew = X509_dup(g_cert);
        m->body->value.ckuann->type = CMPR_CAKEYUPD_V2;
        m->body->value.ckuann->value.cAKeyUpdAnnV2 = v2;
        break;
    }
    case CMPR_BODY_CANN:
        m = cmpr_msg_new(type, 2);
        X509_free(m->body->value.cann);
        m->body->value.cann = X509_dup(g_cert);
        break;
    case CMPR_BODY_RANN: {
        CMPR_REVANNCONTENT *r;

        m = cmpr_msg_new(type, 2);
        r = m->body->value.rann;
        ASN1_INTEGER_set(r->status, 5);
        OSSL_CRMF_CERTID_free(r->certId);
        r->certId = OSSL_CRMF_CERTID_gen(X509_get_issuer_name(g_cert), X509_get0_serialNumber(g_cert));
        ASN1_GENERALIZEDTIME_set(r->willBeRevokedAt, 1800000000);
        ASN1_GENERALIZEDTIME_set(r->badSinceDate, 1700000000);
        break;
    }
    case CMPR_BODY_CRLANN:
        m = cmpr_msg_new(type, 2);
        sk_X509_CRL_push(m->body->value.crlann, make_crl());
        break;
    case CMPR_BODY_PKICONF:
        m = cmpr_msg_build_pkiconf(NULL);
        break;
    case CMPR_BODY_NESTED:
        m = cmpr_msg_new(type, 2);
        sk_CMPR_PKIMESSAGE_push(m->body->value.nested, build(CMPR_BODY_IR));
        sk_CMPR_PKIMESSAGE_push(m->body->value.nested, build(CMPR_BODY_CERTCONF));
        break;
    case CMPR_BODY_GENM:
        m = cmpr_msg_new(type, 2);
        sk_CMPR_ITAV_push(m->body->value.genm, cmpr_itav_new0(CMPR_IT_CA_CERTS, NULL));
        break;
    case CMPR_BODY_GENP: {
        STACK_OF(CMPR_ITAV) *itavs = sk_CMPR_ITAV_new_null();
        STACK_OF(X509) *sk = sk_X509_new_null();

        sk_X509_push(sk, g_cert);
        sk_CMPR_ITAV_push(itavs, cmpr_itav_new_ca_certs(sk));
        m = cmpr_msg_build_genp(NULL, itavs);
        sk_X509_free(sk);
        break;
    }
    case CMPR_BODY_ERROR:
        m = cmpr_msg_build_error(NULL, cmpr_pkisi_new(2, 1u << CMPR_FI_BAD_REQUEST, "nope"),
                                 42, "details");
        break;
    case CMPR_BODY_CERTCONF: {
        CMPR_CERTSTATUS *cs = CMPR_CERTSTATUS_new();
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned int hl = 0;

        m = cmpr_msg_new(type, 2);
        assert_int_equal(cmpr_cert_hash(g_cert, NULL, h, &hl), CMPR_OK);
        ASN1_OCTET_STRING_set(cs->certHash, h, (int)hl);
        ASN1_INTEGER_set(cs->certReqId, 0);
        sk_CMPR_CERTSTATUS_push(m->body->value.certConf, cs);
        break;
    }
    case CMPR_BODY_POLLREQ: {
        CMPR_POLLREQ *p = CMPR_POLLREQ_new();

        m = cmpr_msg_new(type, 2);
        ASN1_INTEGER_set(p->certReqId, 0);
        sk_CMPR_POLLREQ_push(m->body->value.pollReq, p);
        break;
    }
    case CMPR_BODY_POLLREP:
        m = cmpr_msg_build_pollrep(NULL, 0, 10, "operator approval pending");
        break;
    }
    assert_non_null(m);
    return m;
}

static void
encode(const CMPR_PKIMESSAGE *m, unsigned char **der, size_t *len)
{
    assert_int_equal(cmpr_msg_encode(m, der, len), CMPR_OK);
    assert_true(*len > 0);
}

/* ---------------- round trips ---------------- */

/* build -> DER -> parse -> DER: identical bytes and the same body type */
static void
test_roundtrip_every_body(void **state)
{
    (void)state;
    for (int t = 0; t < CMPR_BODY_COUNT; t++) {
        CMPR_PKIMESSAGE *m = build(t), *d = NULL;
        unsigned char *der1, *der2;
        size_t l1, l2;
        struct cmpr_decode_err err;

        encode(m, &der1, &l1);
        if (cmpr_msg_decode(der1, l1, &d, &err) != CMPR_OK)
            fail_msg("%s: decode failed at %zu: %s", cmpr_body_name(t), err.offset, err.what);
        assert_int_equal(cmpr_msg_bodytype(d), t);
        encode(d, &der2, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(der1, der2, l1);
        OPENSSL_free(der1);
        OPENSSL_free(der2);
        CMPR_PKIMESSAGE_free(m);
        CMPR_PKIMESSAGE_free(d);
    }
}

/* RFC 9810 body tags: ir A0, ip A1, pkiconf B3 05 00 ... */
static void
test_body_tags_on_the_wire(void **state)
{
    (void)state;
    for (int t = 0; t < CMPR_BODY_COUNT; t++) {
        CMPR_PKIMESSAGE *m = build(t);
        unsigned char *der = NULL;
        size_t len, off;
        const unsigned char *p;
        long hl;
        int tag, cls, inf;

        encode(m, &der, &len);
        /* skip outer SEQUENCE header and the PKIHeader */
        p = der;
        inf = ASN1_get_object(&p, &hl, &tag, &cls, (long)len);
        assert_int_equal(inf & 0x80, 0);
        off = (size_t)(p - der);
        {
            const unsigned char *q = p;

            ASN1_get_object(&q, &hl, &tag, &cls, (long)(len - off));
            q += hl;
            assert_int_equal(q[0], 0xA0 + t);
        }
        if (t == CMPR_BODY_PKICONF) {
            size_t hdr = (size_t)(p - der);
            const unsigned char *q = p;

            ASN1_get_object(&q, &hl, &tag, &cls, (long)(len - hdr));
            q += hl;
            assert_memory_equal(q, "\xB3\x02\x05\x00", 4);
        }
        OPENSSL_free(der);
        CMPR_PKIMESSAGE_free(m);
    }
}

/* OpenSSL's d2i_OSSL_CMP_MSG parses what we encode and re-encodes it
 * byte-identically. 3.0 lacks RFC 9810 syntax in a few places (EnvelopedData,
 * ckuann v3), which the messages built here do not use. */
static void
test_openssl_oracle_parses_ours(void **state)
{
    (void)state;
    for (int t = 0; t < CMPR_BODY_COUNT; t++) {
        CMPR_PKIMESSAGE *m = build(t);
        unsigned char *der = NULL, *der2 = NULL;
        const unsigned char *p;
        size_t len;
        int l2;
        OSSL_CMP_MSG *om;

        encode(m, &der, &len);
        p = der;
        om = d2i_OSSL_CMP_MSG(NULL, &p, (long)len);
        if (om == NULL)
            fail_msg("OpenSSL cannot parse our %s", cmpr_body_name(t));
        assert_int_equal(OSSL_CMP_MSG_get_bodytype(om), t);
        l2 = i2d_OSSL_CMP_MSG(om, &der2);
        assert_int_equal((size_t)l2, len);
        assert_memory_equal(der, der2, len);
        OPENSSL_free(der);
        OPENSSL_free(der2);
        OSSL_CMP_MSG_free(om);
        CMPR_PKIMESSAGE_free(m);
    }
}

/* MAC- and signature-protected messages we create pass OSSL_CMP_validate_msg */
static void
test_openssl_oracle_validates_protection(void **state)
{
    const char *secret = "oracle-secret";
    struct cmpr_mac_params mp;
    OSSL_CMP_CTX *ctx;
    (void)state;

    /* PasswordBasedMac */
    for (int t = 0; t < CMPR_BODY_COUNT; t += 5) {
        CMPR_PKIMESSAGE *m = build(t);
        unsigned char *der = NULL;
        const unsigned char *p;
        size_t len;
        OSSL_CMP_MSG *om;

        cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
        assert_int_equal(cmpr_hdr_set1_sender_kid(m->header, (const unsigned char *)"ref", 3), CMPR_OK);
        assert_int_equal(cmpr_protect_mac(m, (const unsigned char *)secret, strlen(secret), &mp, NULL),
                         CMPR_OK);
        encode(m, &der, &len);
        p = der;
        assert_non_null(om = d2i_OSSL_CMP_MSG(NULL, &p, (long)len));
        ctx = OSSL_CMP_CTX_new(NULL, NULL);
        assert_true(OSSL_CMP_CTX_set1_secretValue(ctx, (const unsigned char *)secret, (int)strlen(secret)));
        if (OSSL_CMP_validate_msg(ctx, om) != 1) {
            ERR_print_errors_fp(stderr);
            fail_msg("OpenSSL rejects our PBM on %s", cmpr_body_name(t));
        }
        /* and a wrong secret is refused by the oracle too */
        assert_true(OSSL_CMP_CTX_set1_secretValue(ctx, (const unsigned char *)"x", 1));
        assert_int_not_equal(OSSL_CMP_validate_msg(ctx, om), 1);
        ERR_clear_error();
        OSSL_CMP_CTX_free(ctx);
        OSSL_CMP_MSG_free(om);
        OPENSSL_free(der);
        CMPR_PKIMESSAGE_free(m);
    }
    /* signatures: ECDSA, RSA, RSA-PSS, Ed25519 */
    {
        static const char *const specs[] = { "ec:P-256", "ec:P-384", "rsa:2048", "ed25519" };

        for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]) + 1; i++) {
            int pss = i == sizeof(specs) / sizeof(specs[0]);
            EVP_PKEY *k = tu_key(pss ? "rsa:2048" : specs[i]);
            X509 *c = tu_cert(k, "Signer", NULL, NULL, 0);
            CMPR_PKIMESSAGE *m = build(CMPR_BODY_IP);
            unsigned char *der = NULL;
            const unsigned char *p;
            size_t len;
            OSSL_CMP_MSG *om;

            assert_int_equal(cmpr_protect_sig(m, k, NULL, pss, c, NULL), CMPR_OK);
            encode(m, &der, &len);
            p = der;
            assert_non_null(om = d2i_OSSL_CMP_MSG(NULL, &p, (long)len));
            ctx = OSSL_CMP_CTX_new(NULL, NULL);
            assert_true(OSSL_CMP_CTX_set1_srvCert(ctx, c));
            if (OSSL_CMP_validate_msg(ctx, om) != 1) {
                ERR_print_errors_fp(stderr);
                fail_msg("OpenSSL rejects our signature (%s%s)", pss ? "rsa-pss" : specs[i], "");
            }
            OSSL_CMP_CTX_free(ctx);
            OSSL_CMP_MSG_free(om);
            OPENSSL_free(der);
            CMPR_PKIMESSAGE_free(m);
            X509_free(c);
            EVP_PKEY_free(k);
        }
    }
}

/* ---------------- other implementations' messages ---------------- */

static void
check_file_roundtrip(const char *path, CMPR_PKIMESSAGE **msg_r)
{
    size_t len, l2;
    unsigned char *der = tu_read(path, &len), *der2 = NULL;
    CMPR_PKIMESSAGE *m = NULL;
    struct cmpr_decode_err err;
    BIO *mem = BIO_new(BIO_s_mem());

    if (cmpr_msg_decode(der, len, &m, &err) != CMPR_OK)
        fail_msg("%s: offset %zu: %s", path, err.offset, err.what);
    encode(m, &der2, &l2);
    if (l2 != len || memcmp(der, der2, len) != 0)
        fail_msg("%s does not re-encode byte-identically", path);
    assert_int_equal(cmpr_print_msg(mem, m, 0), CMPR_OK);
    assert_int_equal(cmpr_print_msg(mem, m, CMPR_PRINT_JSON), CMPR_OK);
    assert_true(BIO_pending(mem) > 100);
    BIO_free(mem);
    OPENSSL_free(der2);
    free(der);
    *msg_r = m;
}

static void
test_lightweightcmpra_fixtures(void **state)
{
    static const char *const flows[] = { "CrDelayed", "CrWithSignatureProtection",
                                         "IrWithMacProtection", "Kur", "Rr" };
    char dir[4096];
    int files = 0, verified = 0;
    (void)state;

    for (size_t f = 0; f < sizeof(flows) / sizeof(flows[0]); f++) {
        char rel[256];
        char **l;

        snprintf(rel, sizeof(rel), "lightweightcmpra/%s", flows[f]);
        l = tu_list(tu_data(rel, dir, sizeof(dir)), ".PKI");
        for (char **p = l; *p != NULL; p++) {
            CMPR_PKIMESSAGE *m = NULL;
            X509 *signer;

            check_file_roundtrip(*p, &m);
            files++;
            if (m->header->protectionAlg != NULL
                    && cmpr_prot_kind(m->header->protectionAlg->algorithm) == CMPR_PROT_SIG) {
                signer = cmpr_msg_get0_protection_cert(m);
                assert_non_null(signer);
                if (cmpr_verify_sig(m, X509_get0_pubkey(signer)) != CMPR_OK)
                    fail_msg("%s: signature does not verify with its extraCerts signer", *p);
                verified++;
            }
            CMPR_PKIMESSAGE_free(m);
        }
        tu_list_free(l);
    }
    assert_int_equal(files, 36);
    assert_true(verified >= 20);
}

static void
test_openssl_reqout_fixtures(void **state)
{
    char dir[4096];
    char **l = tu_list(tu_data("openssl", dir, sizeof(dir)), ".der");
    int files = 0, macs = 0, sigs = 0;
    struct cmpr_verify_opts vo = { 0, NULL, NULL };
    (void)state;

    for (char **p = l; *p != NULL; p++) {
        CMPR_PKIMESSAGE *m = NULL;
        int kind;

        check_file_roundtrip(*p, &m);
        files++;
        kind = m->header->protectionAlg != NULL
            ? cmpr_prot_kind(m->header->protectionAlg->algorithm) : CMPR_PROT_NONE;
        if (kind == CMPR_PROT_PBM) {
            if (cmpr_verify_mac(m, (const unsigned char *)"test-secret", 11, &vo) != CMPR_OK)
                fail_msg("%s: MAC does not verify", *p);
            assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"test-secreT", 11, &vo),
                             CMPR_ERR_MAC_MISMATCH);
            assert_int_equal(cmpr_verify_sig(m, g_key), CMPR_ERR_WRONG_INTEGRITY);
            macs++;
        } else if (kind == CMPR_PROT_SIG) {
            X509 *signer = cmpr_msg_get0_protection_cert(m);

            assert_non_null(signer);
            if (cmpr_verify_sig(m, X509_get0_pubkey(signer)) != CMPR_OK)
                fail_msg("%s: signature does not verify", *p);
            /* a key of the same type that did not sign: invalid; another
             * key type: the algorithm does not fit the key (badAlg) */
            assert_int_equal(cmpr_verify_sig(m, g_key),
                             EVP_PKEY_is_a(X509_get0_pubkey(signer), "EC")
                             ? CMPR_ERR_SIG_INVALID : CMPR_ERR_BAD_ALG);
            assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"x", 1, &vo),
                             CMPR_ERR_WRONG_INTEGRITY);
            sigs++;
        }
        CMPR_PKIMESSAGE_free(m);
    }
    tu_list_free(l);
    assert_true(files >= 20);
    assert_true(macs >= 8);
    assert_true(sigs >= 6);
}

/* ---------------- accessors ---------------- */

static void
test_request_accessors(void **state)
{
    char path[4096];
    size_t len;
    unsigned char *der;
    CMPR_PKIMESSAGE *m = NULL;
    CMPR_CERTREQMSG *crm;
    EVP_PKEY *pk;
    OSSL_CRMF_CERTID *cid;
    const X509_NAME *iss;
    const ASN1_INTEGER *ser;
    int reason;
    (void)state;

    /* kur written by openssl cmp: template key, oldCertID, implicitConfirm */
    der = tu_read(tu_data("openssl/kur_sig.der", path, sizeof(path)), &len);
    assert_int_equal(cmpr_msg_decode(der, len, &m, NULL), CMPR_OK);
    free(der);
    crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(m), 0);
    assert_int_equal(cmpr_crm_certreqid(crm), 0);
    pk = cmpr_tmpl_get1_pubkey(crm->certReq->certTemplate);
    assert_non_null(pk);
    assert_true(EVP_PKEY_is_a(pk, "EC"));
    EVP_PKEY_free(pk);
    cid = cmpr_crm_get1_oldcertid(crm);
    assert_non_null(cid);
    assert_int_equal(ASN1_INTEGER_get(OSSL_CRMF_CERTID_get0_serialNumber(cid)), 4);
    OSSL_CRMF_CERTID_free(cid);
    assert_true(cmpr_hdr_has_implicit_confirm(m->header));
    {
        OSSL_CRMF_MSG *om = cmpr_crm_to_ossl(crm);

        assert_non_null(om);
        OSSL_CRMF_MSG_free(om);
    }
    CMPR_PKIMESSAGE_free(m);

    /* rr: issuer, serial, reason keyCompromise (openssl cmp -revreason 1) */
    der = tu_read(tu_data("openssl/rr_sig.der", path, sizeof(path)), &len);
    assert_int_equal(cmpr_msg_decode(der, len, &m, NULL), CMPR_OK);
    free(der);
    assert_int_equal(cmpr_rr_get(m, 0, &iss, &ser, &reason), CMPR_OK);
    assert_int_equal(ASN1_INTEGER_get(ser), 4);
    assert_int_equal(reason, 1);
    assert_int_equal(cmpr_rr_get(m, 1, &iss, &ser, &reason), CMPR_ERR_NOT_FOUND);
    CMPR_PKIMESSAGE_free(m);

    /* LightweightCmpRa's ir carries a certProfile */
    der = tu_read(tu_data("lightweightcmpra/IrWithMacProtection/downstream_INIT_REQ.PKI",
                            path, sizeof(path)), &len);
    assert_int_equal(cmpr_msg_decode(der, len, &m, NULL), CMPR_OK);
    free(der);
    {
        ASN1_UTF8STRING *prof = cmpr_msg_get1_certprofile(m);

        assert_non_null(prof);
        assert_true(ASN1_STRING_length(prof) > 0);
        ASN1_UTF8STRING_free(prof);
    }
    CMPR_PKIMESSAGE_free(m);
}

/* The fast SubjectPublicKeyInfo path builds the same key d2i_PUBKEY would,
 * and refuses what d2i_PUBKEY refuses. */
static void
test_spki_fast_path(void **state)
{
    static const char *const specs[] = { "ec:P-256", "ec:P-384", "ec:P-521", "rsa:2048",
                                         "ed25519", "ed448" };
    (void)state;

    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        EVP_PKEY *k = tu_key(specs[i]), *got;
        CMPR_SPKI *spki = NULL;

        assert_int_equal(cmpr_spki_set1_pkey(&spki, k), CMPR_OK);
        got = cmpr_spki_get1_pkey(spki);
        if (got == NULL || EVP_PKEY_eq(got, k) != 1)
            fail_msg("%s: key differs after the fast path", specs[i]);
        EVP_PKEY_free(got);
        /* a point that is not on the curve / a truncated key is refused */
        {
            unsigned char *d = (unsigned char *)ASN1_STRING_get0_data(spki->subjectPublicKey);
            int n = ASN1_STRING_length(spki->subjectPublicKey);

            if (strncmp(specs[i], "ec:", 3) == 0) {
                d[n - 1] ^= 0x01;
                got = cmpr_spki_get1_pkey(spki);
                assert_null(got);
                ERR_clear_error();
            } else if (strncmp(specs[i], "rsa:", 4) == 0) {
                ASN1_BIT_STRING_set(spki->subjectPublicKey, d, n / 2);
                assert_null(cmpr_spki_get1_pkey(spki));
            }
        }
        CMPR_SPKI_free(spki);
        EVP_PKEY_free(k);
    }
}

/* EC keys are built on each curve's parameters made once (codec/msg.c
 * ec_template): keys on the same curve, on several curves in turn and
 * from several threads at once come out as they went in. */
struct spki_job {
    CMPR_SPKI *spki[3];
    EVP_PKEY *key[3];
    int bad;
};

static void *
spki_worker(void *arg)
{
    struct spki_job *j = arg;

    for (int n = 0; n < 300; n++) {
        EVP_PKEY *got = cmpr_spki_get1_pkey(j->spki[n % 3]);

        if (got == NULL || EVP_PKEY_eq(got, j->key[n % 3]) != 1)
            j->bad++;
        EVP_PKEY_free(got);
    }
    return NULL;
}

static void
test_spki_ec_templates(void **state)
{
    static const char *const specs[] = { "ec:P-256", "ec:P-384", "ec:brainpoolP256r1" };
    struct spki_job job[4];
    pthread_t th[4];
    (void)state;

    memset(job, 0, sizeof(job));
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 3; i++) {
            job[t].key[i] = tu_key(specs[i]);
            assert_int_equal(cmpr_spki_set1_pkey(&job[t].spki[i], job[t].key[i]), CMPR_OK);
        }
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&th[t], NULL, spki_worker, &job[t]), 0);
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        if (job[t].bad != 0)
            fail_msg("thread %d: %d of 300 keys differ", t, job[t].bad);
        for (int i = 0; i < 3; i++) {
            CMPR_SPKI_free(job[t].spki[i]);
            EVP_PKEY_free(job[t].key[i]);
        }
    }
}

static void
test_template_validity(void **state)
{
    CMPR_CERTREQMSG *crm = make_crm();
    ASN1_TIME *nb = ASN1_TIME_set(NULL, 1800000000), *na = ASN1_TIME_set(NULL, 1900000000);
    time_t b = 0, a = 0;
    (void)state;

    assert_int_equal(cmpr_tmpl_get_validity(crm->certReq->certTemplate, &b, &a), CMPR_ERR_NOT_FOUND);
    {
        OSSL_CRMF_MSG *om = cmpr_crm_to_ossl(crm);
        unsigned char *der = NULL;
        const unsigned char *p;
        int n;

        assert_true(OSSL_CRMF_MSG_set0_validity(om, nb, na));
        n = i2d_OSSL_CRMF_MSG(om, &der);
        p = der;
        CMPR_CERTREQMSG_free(crm);
        crm = d2i_CMPR_CERTREQMSG(NULL, &p, n);
        assert_non_null(crm);
        OPENSSL_free(der);
        OSSL_CRMF_MSG_free(om);
    }
    assert_int_equal(cmpr_tmpl_get_validity(crm->certReq->certTemplate, &b, &a), CMPR_OK);
    assert_int_equal(b, 1800000000);
    assert_int_equal(a, 1900000000);
    /* only notAfter */
    ASN1_TIME_free(crm->certReq->certTemplate->validity->notBefore);
    crm->certReq->certTemplate->validity->notBefore = NULL;
    assert_int_equal(cmpr_tmpl_get_validity(crm->certReq->certTemplate, &b, &a), CMPR_OK);
    assert_int_equal(b, 0);
    assert_int_equal(a, 1900000000);
    CMPR_CERTREQMSG_free(crm);
}

static void
test_response_header_rules(void **state)
{
    CMPR_PKIMESSAGE *req = build(CMPR_BODY_IR), *rsp;
    (void)state;

    ASN1_INTEGER_set(req->header->pvno, 3);
    cmpr_hdr_set1_sender_name(req->header, X509_get_subject_name(g_cert));
    rsp = cmpr_msg_build_pkiconf(req);
    /* RFC 9810 5.1.1 / RFC 9483 3.1: same pvno, transactionID echoed,
     * recipNonce = request senderNonce, fresh 128-bit senderNonce,
     * recipient = request sender */
    assert_int_equal(cmpr_msg_pvno(rsp), 3);
    assert_int_equal(ASN1_OCTET_STRING_cmp(rsp->header->transactionID, req->header->transactionID), 0);
    assert_int_equal(ASN1_OCTET_STRING_cmp(rsp->header->recipNonce, req->header->senderNonce), 0);
    assert_int_equal(ASN1_STRING_length(rsp->header->senderNonce), 16);
    assert_int_not_equal(ASN1_OCTET_STRING_cmp(rsp->header->senderNonce, req->header->senderNonce), 0);
    assert_int_equal(GENERAL_NAME_cmp(rsp->header->recipient, req->header->sender), 0);
    assert_non_null(rsp->header->messageTime);
    CMPR_PKIMESSAGE_free(rsp);
    /* pvno 1 request: answer in our lowest version (2); 5: our highest (3) */
    ASN1_INTEGER_set(req->header->pvno, 1);
    rsp = cmpr_msg_build_pkiconf(req);
    assert_int_equal(cmpr_msg_pvno(rsp), 2);
    CMPR_PKIMESSAGE_free(rsp);
    ASN1_INTEGER_set(req->header->pvno, 5);
    rsp = cmpr_msg_build_pkiconf(req);
    assert_int_equal(cmpr_msg_pvno(rsp), 3);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(req);
}

static void
test_status_and_failinfo(void **state)
{
    uint32_t bits = (1u << CMPR_FI_BAD_POP) | (1u << CMPR_FI_DUPLICATE_CERT_REQ);
    CMPR_PKISI *si = cmpr_pkisi_new(CMPR_STATUS_REJECTION, bits, "bad POP");
    (void)state;

    assert_int_equal(cmpr_pkisi_status(si), 2);
    assert_int_equal(cmpr_pkisi_failinfo(si), bits);
    assert_string_equal(cmpr_failinfo_name(CMPR_FI_BAD_POP), "badPOP");
    assert_string_equal(cmpr_failinfo_name(26), "duplicateCertReq");
    assert_string_equal(cmpr_status_name(3), "waiting");
    CMPR_PKISI_free(si);
    /* certRep: failInfo and certificate are exclusive; the builder puts a
     * certificate only when asked to */
    {
        CMPR_PKIMESSAGE *m = cmpr_msg_build_certrep(NULL, CMPR_BODY_CP, -1,
                                 cmpr_pkisi_new(CMPR_STATUS_WAITING, 0, NULL), NULL, NULL, NULL);
        CMPR_CERTRESPONSE *r = sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(m)->response, 0);

        assert_null(r->certifiedKeyPair);
        assert_int_equal(ASN1_INTEGER_get(r->certReqId), -1);
        CMPR_PKIMESSAGE_free(m);
    }
    /* kup never carries caPubs (RFC 9483 4.1) */
    {
        STACK_OF(X509) *sk = sk_X509_new_null();
        CMPR_PKIMESSAGE *m;

        sk_X509_push(sk, g_cert);
        m = cmpr_msg_build_certrep(NULL, CMPR_BODY_KUP, 0, cmpr_pkisi_new(0, 0, NULL),
                                   g_cert, sk, NULL);
        assert_null(cmpr_msg_get0_rep(m)->caPubs);
        CMPR_PKIMESSAGE_free(m);
        sk_X509_free(sk);
    }
}

/* Every ITAV of RFC 9810 App F with a typed accessor survives a round trip. */
static void
test_itavs(void **state)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
    X509_CRL *crl = make_crl();
    CMPR_ITAV *itav;
    time_t t = 0;
    (void)state;

    sk_X509_push(certs, g_cert);
    sk_X509_CRL_push(crls, crl);

    itav = cmpr_itav_new_ca_certs(certs);
    {
        STACK_OF(X509) *got = cmpr_itav_get1_ca_certs(itav);

        assert_int_equal(sk_X509_num(got), 1);
        assert_int_equal(X509_cmp(sk_X509_value(got, 0), g_cert), 0);
        sk_X509_pop_free(got, X509_free);
    }
    assert_null(cmpr_itav_get1_root_ca_cert(itav));   /* wrong type: NULL, not garbage */
    CMPR_ITAV_free(itav);

    itav = cmpr_itav_new_root_ca_cert(g_cert);
    {
        X509 *got = cmpr_itav_get1_root_ca_cert(itav);

        assert_int_equal(X509_cmp(got, g_cert), 0);
        X509_free(got);
    }
    CMPR_ITAV_free(itav);

    {
        CMPR_ROOTCAKEYUPDATECONTENT *c = CMPR_ROOTCAKEYUPDATECONTENT_new(), *got;

        X509_free(c->newWithNew);
        c->newWithNew = X509_dup(g_cert);
        c->newWithOld = X509_dup(g_cert);
        itav = cmpr_itav_new_root_ca_key_update(c);
        got = cmpr_itav_get1_root_ca_key_update(itav);
        assert_non_null(got);
        assert_non_null(got->newWithOld);
        assert_null(got->oldWithNew);
        CMPR_ROOTCAKEYUPDATECONTENT_free(got);
        CMPR_ROOTCAKEYUPDATECONTENT_free(c);
        CMPR_ITAV_free(itav);
    }
    {
        CMPR_CERTREQTEMPLATECONTENT *c = CMPR_CERTREQTEMPLATECONTENT_new(), *got;

        assert_int_equal(cmpr_tmpl_fill(c->certTemplate, NULL,
                                        X509_get_subject_name(g_cert), NULL, NULL), CMPR_OK);
        itav = cmpr_itav_new_cert_req_template(c);
        got = cmpr_itav_get1_cert_req_template(itav);
        assert_non_null(got);
        assert_int_equal(X509_NAME_cmp(got->certTemplate->subject,
                                       X509_get_subject_name(g_cert)), 0);
        CMPR_CERTREQTEMPLATECONTENT_free(got);
        CMPR_CERTREQTEMPLATECONTENT_free(c);
        CMPR_ITAV_free(itav);
    }
    {
        STACK_OF(CMPR_CRLSTATUS) *l = sk_CMPR_CRLSTATUS_new_null(), *got;
        CMPR_CRLSTATUS *s = CMPR_CRLSTATUS_new();
        GENERAL_NAME *gn = GENERAL_NAME_new();

        GENERAL_NAME_set0_value(gn, GEN_DIRNAME, X509_NAME_dup(X509_get_subject_name(g_cert)));
        s->source->type = CMPR_CRLSOURCE_ISSUER;
        s->source->value.issuer = sk_GENERAL_NAME_new_null();
        sk_GENERAL_NAME_push(s->source->value.issuer, gn);
        s->thisUpdate = ASN1_TIME_set(NULL, 1700000000);
        sk_CMPR_CRLSTATUS_push(l, s);
        itav = cmpr_itav_new_crl_status_list(l);
        got = cmpr_itav_get1_crl_status_list(itav);
        assert_int_equal(sk_CMPR_CRLSTATUS_num(got), 1);
        assert_int_equal(sk_CMPR_CRLSTATUS_value(got, 0)->source->type, CMPR_CRLSOURCE_ISSUER);
        sk_CMPR_CRLSTATUS_pop_free(got, CMPR_CRLSTATUS_free);
        sk_CMPR_CRLSTATUS_pop_free(l, CMPR_CRLSTATUS_free);
        CMPR_ITAV_free(itav);
    }
    itav = cmpr_itav_new_crls(crls);
    {
        STACK_OF(X509_CRL) *got = cmpr_itav_get1_crls(itav);

        assert_int_equal(sk_X509_CRL_num(got), 1);
        sk_X509_CRL_pop_free(got, X509_CRL_free);
    }
    CMPR_ITAV_free(itav);
    itav = cmpr_itav_new_current_crl(crl);
    {
        X509_CRL *got = cmpr_itav_get1_current_crl(itav);

        assert_non_null(got);
        X509_CRL_free(got);
    }
    CMPR_ITAV_free(itav);
    {
        static const char *const names[] = { "tls-server", "other" };
        STACK_OF(ASN1_UTF8STRING) *got;

        itav = cmpr_itav_new_cert_profile(names, 2);
        got = cmpr_itav_get1_cert_profile(itav);
        assert_int_equal(sk_ASN1_UTF8STRING_num(got), 2);
        assert_memory_equal(ASN1_STRING_get0_data(sk_ASN1_UTF8STRING_value(got, 0)), "tls-server", 10);
        sk_ASN1_UTF8STRING_pop_free(got, ASN1_UTF8STRING_free);
        CMPR_ITAV_free(itav);
    }
    itav = cmpr_itav_new_implicit_confirm();
    assert_int_equal(cmpr_itav_num(itav), CMPR_IT_IMPLICIT_CONFIRM);
    assert_int_equal(itav->infoValue->type, V_ASN1_NULL);
    CMPR_ITAV_free(itav);
    itav = cmpr_itav_new_confirm_wait_time(1800000000);
    assert_int_equal(cmpr_itav_get_confirm_wait_time(itav, &t), CMPR_OK);
    assert_int_equal(t, 1800000000);
    CMPR_ITAV_free(itav);
    {
        CMPR_PKIMESSAGES *msgs = sk_CMPR_PKIMESSAGE_new_null(), *got;

        sk_CMPR_PKIMESSAGE_push(msgs, build(CMPR_BODY_IR));
        itav = cmpr_itav_new_orig_pkimessage(msgs);
        got = cmpr_itav_get1_orig_pkimessage(itav);
        assert_int_equal(sk_CMPR_PKIMESSAGE_num(got), 1);
        assert_int_equal(cmpr_msg_bodytype(sk_CMPR_PKIMESSAGE_value(got, 0)), CMPR_BODY_IR);
        sk_CMPR_PKIMESSAGE_pop_free(got, CMPR_PKIMESSAGE_free);
        sk_CMPR_PKIMESSAGE_pop_free(msgs, CMPR_PKIMESSAGE_free);
        CMPR_ITAV_free(itav);
    }
    {
        STACK_OF(X509_ALGOR) *algs = sk_X509_ALGOR_new_null(), *got;
        X509_ALGOR *a = X509_ALGOR_new();

        X509_ALGOR_set0(a, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL);
        sk_X509_ALGOR_push(algs, a);
        itav = cmpr_itav_new_sign_key_pair_types(algs);
        got = cmpr_itav_get1_sign_key_pair_types(itav);
        assert_int_equal(OBJ_obj2nid(sk_X509_ALGOR_value(got, 0)->algorithm), NID_ecdsa_with_SHA256);
        sk_X509_ALGOR_pop_free(got, X509_ALGOR_free);
        sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
        CMPR_ITAV_free(itav);
    }
    {
        STACK_OF(ASN1_OBJECT) *oids = sk_ASN1_OBJECT_new_null(), *got;

        sk_ASN1_OBJECT_push(oids, cmpr_it_obj(99));
        itav = cmpr_itav_new_unsupported_oids(oids);
        got = cmpr_itav_get1_unsupported_oids(itav);
        assert_int_equal(cmpr_it_num(sk_ASN1_OBJECT_value(got, 0)), 99);
        sk_ASN1_OBJECT_pop_free(got, ASN1_OBJECT_free);
        sk_ASN1_OBJECT_pop_free(oids, ASN1_OBJECT_free);
        CMPR_ITAV_free(itav);
    }
    {
        CMPR_KEMCIPHERTEXTINFO *k = CMPR_KEMCIPHERTEXTINFO_new(), *got;

        X509_ALGOR_set0(k->kem, OBJ_nid2obj(NID_sha256), V_ASN1_UNDEF, NULL);
        ASN1_OCTET_STRING_set(k->ct, (const unsigned char *)"ct", 2);
        itav = cmpr_itav_new_kem_ciphertext_info(k);
        got = cmpr_itav_get1_kem_ciphertext_info(itav);
        assert_int_equal(ASN1_STRING_length(got->ct), 2);
        CMPR_KEMCIPHERTEXTINFO_free(got);
        CMPR_KEMCIPHERTEXTINFO_free(k);
        CMPR_ITAV_free(itav);
    }
    assert_string_equal(cmpr_it_name(17), "caCerts");
    assert_int_equal(cmpr_it_from_name("crlStatusList"), 22);
    assert_int_equal(cmpr_it_from_name("nonsense"), -1);
    sk_X509_free(certs);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
}

/* RFC 9810 syntax OpenSSL 3.0 lacks: EnvelopedData POP, EncryptedKey,
 * ckuann v3, certConf hashAlg (pvno 3) */
static void
test_rfc9810_v3_structures(void **state)
{
    CMPR_PKIMESSAGE *m = build(CMPR_BODY_IR), *d = NULL, *ck, *cc;
    CMPR_CERTREQMSG *crm = sk_CMPR_CERTREQMSG_value(m->body->value.ir, 0);
    CMPR_ENVELOPEDDATA *env = make_envdata("private key bytes", &g_rk, &g_rc);
    unsigned char *der;
    size_t len;
    CMS_ContentInfo *cms;
    (void)state;

    CMPR_POPO_free(crm->popo);
    crm->popo = CMPR_POPO_new();
    crm->popo->type = CMPR_POPO_KEYENC;
    crm->popo->value.keyEncipherment = CMPR_POPOPRIVKEY_new();
    crm->popo->value.keyEncipherment->type = CMPR_POPOPRIVKEY_ENCRYPTEDKEY;
    crm->popo->value.keyEncipherment->value.encryptedKey = env;
    ASN1_INTEGER_set(m->header->pvno, 3);
    encode(m, &der, &len);
    assert_int_equal(cmpr_msg_decode(der, len, &d, NULL), CMPR_OK);
    crm = sk_CMPR_CERTREQMSG_value(d->body->value.ir, 0);
    assert_int_equal(crm->popo->type, CMPR_POPO_KEYENC);
    assert_int_equal(crm->popo->value.keyEncipherment->type, CMPR_POPOPRIVKEY_ENCRYPTEDKEY);
    /* hands over to the CMS API as a ContentInfo */
    cms = cmpr_envdata_to_cms(crm->popo->value.keyEncipherment->value.encryptedKey);
    assert_non_null(cms);
    assert_int_equal(OBJ_obj2nid(CMS_get0_type(cms)), NID_pkcs7_enveloped);
    {
        BIO *out = BIO_new(BIO_s_mem());
        char *data = NULL;
        long dl;

        if (CMS_decrypt(cms, g_rk, g_rc, NULL, out, 0) != 1) {
            ERR_print_errors_fp(stderr);
            fail_msg("CMS_decrypt of the round-tripped EnvelopedData failed");
        }
        dl = BIO_get_mem_data(out, &data);
        assert_int_equal(dl, 17);
        assert_memory_equal(data, "private key bytes", 17);
        BIO_free(out);
    }
    CMS_ContentInfo_free(cms);
    EVP_PKEY_free(g_rk);
    X509_free(g_rc);
    OPENSSL_free(der);
    CMPR_PKIMESSAGE_free(d);
    CMPR_PKIMESSAGE_free(m);

    /* ckuann v3 (RootCaKeyUpdateContent) */
    ck = cmpr_msg_new(CMPR_BODY_CKUANN, 3);
    CMPR_CAKEYUPDCONTENT_free(ck->body->value.ckuann);
    ck->body->value.ckuann = CMPR_CAKEYUPDCONTENT_new();
    ck->body->value.ckuann->type = CMPR_CAKEYUPD_V3;
    ck->body->value.ckuann->value.cAKeyUpdAnnV3 = CMPR_ROOTCAKEYUPDATECONTENT_new();
    X509_free(ck->body->value.ckuann->value.cAKeyUpdAnnV3->newWithNew);
    ck->body->value.ckuann->value.cAKeyUpdAnnV3->newWithNew = X509_dup(g_cert);
    encode(ck, &der, &len);
    assert_int_equal(cmpr_msg_decode(der, len, &d, NULL), CMPR_OK);
    assert_int_equal(d->body->value.ckuann->type, CMPR_CAKEYUPD_V3);
    OPENSSL_free(der);
    CMPR_PKIMESSAGE_free(d);
    CMPR_PKIMESSAGE_free(ck);

    /* certConf with hashAlg and a certHash computed with it */
    cc = build(CMPR_BODY_CERTCONF);
    {
        CMPR_CERTSTATUS *cs = sk_CMPR_CERTSTATUS_value(cc->body->value.certConf, 0);
        unsigned char h[EVP_MAX_MD_SIZE], h2[EVP_MAX_MD_SIZE];
        unsigned int hl = 0, hl2 = 0;

        cs->hashAlg = X509_ALGOR_new();
        X509_ALGOR_set_md(cs->hashAlg, EVP_sha384());
        assert_int_equal(cmpr_cert_hash(g_cert, cs->hashAlg, h, &hl), CMPR_OK);
        assert_true(X509_digest(g_cert, EVP_sha384(), h2, &hl2));
        assert_int_equal(hl, 48);
        assert_memory_equal(h, h2, hl);
        ASN1_OCTET_STRING_set(cs->certHash, h, (int)hl);
    }
    encode(cc, &der, &len);
    assert_int_equal(cmpr_msg_decode(der, len, &d, NULL), CMPR_OK);
    assert_non_null(sk_CMPR_CERTSTATUS_value(d->body->value.certConf, 0)->hashAlg);
    OPENSSL_free(der);
    CMPR_PKIMESSAGE_free(d);
    CMPR_PKIMESSAGE_free(cc);
}

static void
test_archive_options(void **state)
{
    CMPR_CERTREQMSG *crm = make_crm();
    CMPR_PKIARCHIVEOPTIONS *opt = CMPR_PKIARCHIVEOPTIONS_new(), *got;
    CMPR_ATAV *a = CMPR_ATAV_new();
    unsigned char *der = NULL;
    const unsigned char *p;
    int n;
    (void)state;

    opt->type = CMPR_ARCHIVE_REMGENPRIVKEY;
    opt->value.archiveRemGenPrivKey = 0xff;
    n = i2d_CMPR_PKIARCHIVEOPTIONS(opt, &der);
    assert_true(n > 0);
    assert_int_equal(der[0], 0x82);   /* [2] IMPLICIT BOOLEAN */
    p = der;
    a->type = cmpr_regctrl_obj(CMPR_REGCTRL_PKIARCHIVEOPTIONS);
    ASN1_TYPE_free(a->value);
    a->value = d2i_ASN1_TYPE(NULL, &p, n);
    assert_non_null(a->value);
    sk_CMPR_ATAV_push(crm->certReq->controls, a);
    got = cmpr_crm_get1_archive_options(crm);
    assert_non_null(got);
    assert_int_equal(got->type, CMPR_ARCHIVE_REMGENPRIVKEY);
    CMPR_PKIARCHIVEOPTIONS_free(got);
    CMPR_PKIARCHIVEOPTIONS_free(opt);
    OPENSSL_free(der);
    CMPR_CERTREQMSG_free(crm);
}

/* ---------------- hostile input ---------------- */

static void
test_truncated_everywhere(void **state)
{
    char path[4096];
    size_t len;
    unsigned char *der = tu_read(tu_data("openssl/ir_sig.der", path, sizeof(path)), &len);
    (void)state;

    for (size_t n = 0; n < len; n++) {
        CMPR_PKIMESSAGE *m = NULL;
        struct cmpr_decode_err err;
        unsigned char *copy = malloc(n + 1);

        memcpy(copy, der, n);
        assert_int_not_equal(cmpr_msg_decode(copy, n, &m, &err), CMPR_OK);
        assert_null(m);
        assert_true(err.what[0] != '\0');
        free(copy);
    }
    free(der);
}

static void
test_trailing_and_wrong_tags(void **state)
{
    char path[4096];
    size_t len;
    unsigned char *der = tu_read(tu_data("openssl/ir_mac.der", path, sizeof(path)), &len);
    unsigned char *buf = malloc(len + 1);
    CMPR_PKIMESSAGE *m = NULL;
    struct cmpr_decode_err err;
    const unsigned char *p;
    long hl;
    int tag, cls;
    size_t body_off;
    (void)state;

    memcpy(buf, der, len);
    buf[len] = 0;
    assert_int_equal(cmpr_msg_decode(buf, len + 1, &m, &err), CMPR_ERR_TRAILING);
    assert_int_equal(err.offset, len);

    /* outer tag 0x31 instead of 0x30 */
    memcpy(buf, der, len);
    buf[0] = 0x31;
    assert_int_equal(cmpr_msg_decode(buf, len, &m, &err), CMPR_ERR_DECODE);
    assert_int_equal(err.offset, 0);

    /* body tag [27] (0xBB) does not exist */
    memcpy(buf, der, len);
    p = buf;
    ASN1_get_object(&p, &hl, &tag, &cls, (long)len);
    {
        const unsigned char *q = p;

        ASN1_get_object(&q, &hl, &tag, &cls, (long)len);
        body_off = (size_t)(q - buf) + (size_t)hl;
    }
    assert_int_equal(buf[body_off], 0xA0);
    buf[body_off] = 0xBB;
    assert_int_equal(cmpr_msg_decode(buf, len, &m, &err), CMPR_ERR_DECODE);
    assert_int_equal(err.offset, body_off);
    assert_non_null(strstr(err.what, "PKIBody"));

    /* body tag ip instead of ir: the content no longer fits the template */
    memcpy(buf, der, len);
    buf[body_off] = 0xA1;
    assert_int_equal(cmpr_msg_decode(buf, len, &m, &err), CMPR_ERR_DECODE);
    assert_null(m);

    /* garbage */
    assert_int_equal(cmpr_msg_decode((const unsigned char *)"hello world", 11, &m, &err),
                     CMPR_ERR_DECODE);
    assert_int_equal(cmpr_msg_decode((const unsigned char *)"", 0, &m, &err), CMPR_ERR_TRUNCATED);
    free(buf);
    free(der);
}

static void
test_oversized(void **state)
{
    size_t len = CMPR_MAX_MSG_SIZE + 1;
    unsigned char *buf = calloc(1, len);
    CMPR_PKIMESSAGE *m = NULL;
    struct cmpr_decode_err err;
    (void)state;

    buf[0] = 0x30;
    assert_int_equal(cmpr_msg_decode(buf, len, &m, &err), CMPR_ERR_TOO_LARGE);
    /* a length field claiming more than is there */
    {
        static const unsigned char claim[] = { 0x30, 0x83, 0x10, 0x00, 0x00, 0x30, 0x00 };

        assert_int_equal(cmpr_msg_decode(claim, sizeof(claim), &m, &err), CMPR_ERR_TRUNCATED);
        assert_int_equal(err.offset, 0);
    }
    free(buf);
}

static void
test_deep_nesting(void **state)
{
    CMPR_PKIMESSAGE *inner = build(CMPR_BODY_PKICONF), *outer = NULL, *d = NULL;
    unsigned char *der;
    size_t len;
    struct cmpr_decode_err err;
    (void)state;

    /* nested in nested ... beyond CMPR_MAX_NESTED_DEPTH */
    for (int i = 0; i < CMPR_MAX_NESTED_DEPTH + 2; i++) {
        outer = cmpr_msg_new(CMPR_BODY_NESTED, 2);
        sk_CMPR_PKIMESSAGE_push(outer->body->value.nested, inner);
        inner = outer;
    }
    encode(outer, &der, &len);
    assert_int_equal(cmpr_msg_decode(der, len, &d, &err), CMPR_ERR_TOO_DEEP);
    assert_null(d);
    OPENSSL_free(der);
    CMPR_PKIMESSAGE_free(outer);
}

/* A PasswordBasedMac asking for 10^9 iterations is refused at once (badAlg),
 * never computed. */
static void
test_absurd_iteration_count(void **state)
{
    CMPR_PKIMESSAGE *m = build(CMPR_BODY_GENM);
    struct cmpr_mac_params mp;
    CMPR_PBMPARAMETER *pbm;
    X509_ALGOR *alg;
    ASN1_TYPE *t;
    struct cmpr_verify_opts vo = { 0, NULL, NULL };
    time_t start = time(NULL);
    (void)state;

    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    assert_int_equal(cmpr_protect_mac(m, (const unsigned char *)"s", 1, &mp, NULL), CMPR_OK);
    alg = m->header->protectionAlg;
    pbm = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMPARAMETER), alg->parameter);
    ASN1_INTEGER_set(pbm->iterationCount, 1000000000L);
    t = ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(CMPR_PBMPARAMETER), pbm, NULL);
    X509_ALGOR_set0(alg, OBJ_dup(alg->algorithm), V_ASN1_SEQUENCE, t->value.sequence);
    t->value.sequence = NULL;
    ASN1_TYPE_free(t);
    CMPR_PBMPARAMETER_free(pbm);
    assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"s", 1, &vo), CMPR_ERR_ITER_LIMIT);
    assert_true(time(NULL) - start < 5);
    /* a configured cap applies too */
    vo.max_iter = 100;
    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    assert_int_equal(cmpr_protect_mac(m, (const unsigned char *)"s", 1, &mp, NULL), CMPR_OK);
    assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"s", 1, &vo), CMPR_ERR_ITER_LIMIT);
    vo.max_iter = 500;
    assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"s", 1, &vo), CMPR_OK);
    CMPR_PKIMESSAGE_free(m);
}

static void
test_wrong_mac_and_signature(void **state)
{
    CMPR_PKIMESSAGE *m = build(CMPR_BODY_CR);
    struct cmpr_mac_params mp;
    struct cmpr_verify_opts vo = { 0, NULL, NULL };
    unsigned char *sig;
    (void)state;

    cmpr_mac_params_default(&mp, CMPR_MAC_PBMAC1);
    assert_int_equal(cmpr_protect_mac(m, (const unsigned char *)"right", 5, &mp, NULL), CMPR_OK);
    assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"right", 5, &vo), CMPR_OK);
    assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"wrong", 5, &vo), CMPR_ERR_MAC_MISMATCH);
    /* a changed body breaks the MAC */
    ASN1_INTEGER_set(sk_CMPR_CERTREQMSG_value(m->body->value.cr, 0)->certReq->certReqId, 1);
    assert_int_equal(cmpr_verify_mac(m, (const unsigned char *)"right", 5, &vo), CMPR_ERR_MAC_MISMATCH);

    assert_int_equal(cmpr_protect_sig(m, g_key, NULL, 0, g_cert, NULL), CMPR_OK);
    assert_int_equal(cmpr_verify_sig(m, X509_get0_pubkey(g_cert)), CMPR_OK);
    sig = (unsigned char *)ASN1_STRING_get0_data(m->protection);
    sig[10] ^= 0x01;
    assert_int_equal(cmpr_verify_sig(m, X509_get0_pubkey(g_cert)), CMPR_ERR_SIG_INVALID);
    /* unprotected */
    ASN1_BIT_STRING_free(m->protection);
    m->protection = NULL;
    assert_int_equal(cmpr_verify_sig(m, X509_get0_pubkey(g_cert)), CMPR_ERR_NO_PROTECTION);
    CMPR_PKIMESSAGE_free(m);
}

/* every optional header field, and CertifiedKeyPair with each EncryptedKey choice */
static void
test_roundtrip_full(void **state)
{
    CMPR_PKIMESSAGE *m = build(CMPR_BODY_IP), *d = NULL;
    CMPR_CERTRESPONSE *r;
    CMPR_CERTIFIEDKEYPAIR *kp;
    unsigned char *der1, *der2;
    size_t l1, l2;
    (void)state;

    ASN1_INTEGER_set(m->header->pvno, 3);
    assert_int_equal(cmpr_hdr_set1_sender_name(m->header, X509_get_subject_name(g_cert)), CMPR_OK);
    assert_int_equal(cmpr_hdr_set1_sender_kid(m->header, (const unsigned char *)"kid", 3), CMPR_OK);
    m->header->recipKID = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(m->header->recipKID, (const unsigned char *)"rkid", 4);
    assert_int_equal(cmpr_hdr_set1_recip_nonce(m->header, m->header->senderNonce), CMPR_OK);
    assert_int_equal(cmpr_hdr_push1_freetext(m->header, "free text \xc3\xa4"), CMPR_OK);
    assert_int_equal(cmpr_hdr_push0_geninfo(m->header, cmpr_itav_new_implicit_confirm()), CMPR_OK);
    assert_int_equal(cmpr_hdr_push0_geninfo(m->header, cmpr_itav_new_confirm_wait_time(1800000000)),
                     CMPR_OK);
    m->header->protectionAlg = X509_ALGOR_new();
    X509_ALGOR_set0(m->header->protectionAlg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL);
    m->protection = ASN1_BIT_STRING_new();
    ASN1_BIT_STRING_set(m->protection, (unsigned char *)"sig", 3);

    r = sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(m)->response, 0);
    kp = r->certifiedKeyPair;
    kp->privateKey = CMPR_ENCRYPTEDKEY_new();
    kp->privateKey->type = CMPR_ENCRYPTEDKEY_ENVELOPEDDATA;
    kp->privateKey->value.envelopedData = make_envdata("key", NULL, NULL);
    kp->publicationInfo = OSSL_CRMF_PKIPUBLICATIONINFO_new();
    r->rspInfo = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(r->rspInfo, (const unsigned char *)"info", 4);
    /* a second response: encrypted certificate as EncryptedValue */
    {
        CMPR_CERTRESPONSE *r2 = CMPR_CERTRESPONSE_new();

        ASN1_INTEGER_set(r2->certReqId, 1);
        r2->certifiedKeyPair = CMPR_CERTIFIEDKEYPAIR_new();
        r2->certifiedKeyPair->certOrEncCert->type = CMPR_CERTORENCCERT_ENCRYPTEDCERT;
        r2->certifiedKeyPair->certOrEncCert->value.encryptedCert = CMPR_ENCRYPTEDKEY_new();
        r2->certifiedKeyPair->certOrEncCert->value.encryptedCert->type = CMPR_ENCRYPTEDKEY_ENCRYPTEDVALUE;
        r2->certifiedKeyPair->certOrEncCert->value.encryptedCert->value.encryptedValue =
            OSSL_CRMF_ENCRYPTEDVALUE_new();
        sk_CMPR_CERTRESPONSE_push(cmpr_msg_get0_rep(m)->response, r2);
    }
    encode(m, &der1, &l1);
    assert_int_equal(cmpr_msg_decode(der1, l1, &d, NULL), CMPR_OK);
    encode(d, &der2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(der1, der2, l1);
    assert_int_equal(sk_ASN1_UTF8STRING_num(d->header->freeText), 1);
    assert_int_equal(sk_CMPR_ITAV_num(d->header->generalInfo), 2);
    assert_true(cmpr_hdr_has_implicit_confirm(d->header));
    r = sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(d)->response, 0);
    assert_int_equal(r->certifiedKeyPair->privateKey->type, CMPR_ENCRYPTEDKEY_ENVELOPEDDATA);
    r = sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(d)->response, 1);
    assert_int_equal(r->certifiedKeyPair->certOrEncCert->type, CMPR_CERTORENCCERT_ENCRYPTEDCERT);
    assert_int_equal(r->certifiedKeyPair->certOrEncCert->value.encryptedCert->type,
                     CMPR_ENCRYPTEDKEY_ENCRYPTEDVALUE);
    OPENSSL_free(der1);
    OPENSSL_free(der2);
    CMPR_PKIMESSAGE_free(d);
    CMPR_PKIMESSAGE_free(m);

    /* krp with keyPairHist */
    {
        STACK_OF(CMPR_CERTIFIEDKEYPAIR) *hist = sk_CMPR_CERTIFIEDKEYPAIR_new_null();
        CMPR_CERTIFIEDKEYPAIR *h = CMPR_CERTIFIEDKEYPAIR_new();

        h->certOrEncCert->type = CMPR_CERTORENCCERT_CERTIFICATE;
        h->certOrEncCert->value.certificate = X509_dup(g_cert);
        h->privateKey = CMPR_ENCRYPTEDKEY_new();
        h->privateKey->type = CMPR_ENCRYPTEDKEY_ENVELOPEDDATA;
        h->privateKey->value.envelopedData = make_envdata("old key", NULL, NULL);
        sk_CMPR_CERTIFIEDKEYPAIR_push(hist, h);
        m = cmpr_msg_build_krp(NULL, cmpr_pkisi_new(0, 0, NULL), NULL, NULL, hist);
        sk_CMPR_CERTIFIEDKEYPAIR_pop_free(hist, CMPR_CERTIFIEDKEYPAIR_free);
        encode(m, &der1, &l1);
        assert_int_equal(cmpr_msg_decode(der1, l1, &d, NULL), CMPR_OK);
        assert_int_equal(sk_CMPR_CERTIFIEDKEYPAIR_num(d->body->value.krp->keyPairHist), 1);
        OPENSSL_free(der1);
        CMPR_PKIMESSAGE_free(d);
        CMPR_PKIMESSAGE_free(m);
    }
}

/* cmpr_msg_decode_lean: the message without extraCerts and caPubs, the
 * rest as cmpr_msg_decode gives it; the MAC checked over the bytes that
 * came (RFC 9810 5.1.3.1: over the DER of header and body); hostile bytes
 * refused as by the full decoder. */
static void
test_decode_lean(void **state)
{
    char path[512];
    size_t len, pp_len, full_len;
    unsigned char *der = tu_read(tu_data("openssl/ip_mac.der", path, sizeof(path)), &len);
    unsigned char *pp = NULL, *full_pp = NULL;
    CMPR_PKIMESSAGE *lean = NULL, *full = NULL;
    CMPR_CERTREPMESSAGE *a, *b;
    struct cmpr_verify_opts vo = { 0, NULL, NULL };
    const unsigned char sec[] = "test-secret";
    (void)state;

    assert_non_null(der);
    assert_int_equal(cmpr_msg_decode(der, len, &full, NULL), CMPR_OK);
    assert_int_equal(cmpr_msg_decode_lean(der, len, &lean, &pp, &pp_len), CMPR_OK);
    a = full->body->value.ip;
    b = lean->body->value.ip;
    assert_int_equal(cmpr_msg_bodytype(lean), CMPR_BODY_IP);
    assert_non_null(a->caPubs);
    assert_null(b->caPubs);
    assert_int_equal(sk_CMPR_CERTRESPONSE_num(b->response), sk_CMPR_CERTRESPONSE_num(a->response));
    {
        struct cmpr_ee_result ra, rb;

        assert_int_equal(cmpr_ee_result(full, &ra), CMPR_OK);
        assert_int_equal(cmpr_ee_result(lean, &rb), CMPR_OK);
        assert_non_null(rb.cert);
        assert_int_equal(X509_cmp(ra.cert, rb.cert), 0);
    }
    /* the ProtectedPart as received is what the full message re-encodes to */
    assert_int_equal(cmpr_protected_part(full, &full_pp, &full_len), CMPR_OK);
    assert_int_equal(pp_len, full_len);
    assert_memory_equal(pp, full_pp, pp_len);
    assert_int_equal(cmpr_verify_mac_over(lean, pp, pp_len, sec, sizeof(sec) - 1, &vo), CMPR_OK);
    assert_int_equal(cmpr_verify_mac_over(lean, pp, pp_len, sec, sizeof(sec) - 2, &vo),
                     CMPR_ERR_MAC_MISMATCH);
    OPENSSL_free(full_pp);
    free(pp);
    pp = NULL;
    CMPR_PKIMESSAGE_free(lean);
    lean = NULL;
    /* a byte changed in the caPubs, which the lean message leaves out:
     * the MAC over what came still catches it */
    {
        unsigned char *bad = OPENSSL_memdup(der, len);
        size_t at = 400;                /* caPubs: bytes 225..608 of this fixture */

        assert_non_null(bad);
        assert_int_equal(der[225], 0xa1);
        bad[at] ^= 0x01;
        assert_int_equal(cmpr_msg_decode_lean(bad, len, &lean, &pp, &pp_len), CMPR_OK);
        assert_null(lean->body->value.ip->caPubs);
        assert_int_equal(cmpr_verify_mac_over(lean, pp, pp_len, sec, sizeof(sec) - 1, &vo),
                             CMPR_ERR_MAC_MISMATCH);
        CMPR_PKIMESSAGE_free(lean);
        lean = NULL;
        free(pp);
        pp = NULL;
        OPENSSL_free(bad);
    }
    /* every cut of it is refused, as by the full decoder */
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_not_equal(cmpr_msg_decode_lean(der, cut, &lean, &pp, &pp_len), CMPR_OK);
        assert_null(lean);
        assert_null(pp);
    }
    CMPR_PKIMESSAGE_free(full);
    free(der);
    /* extraCerts are left out */
    der = tu_read(tu_data("openssl/ip_sig.der", path, sizeof(path)), &len);
    assert_non_null(der);
    assert_int_equal(cmpr_msg_decode(der, len, &full, NULL), CMPR_OK);
    assert_non_null(full->extraCerts);
    assert_int_equal(cmpr_msg_decode_lean(der, len, &lean, &pp, &pp_len), CMPR_OK);
    assert_null(lean->extraCerts);
    CMPR_PKIMESSAGE_free(full);
    CMPR_PKIMESSAGE_free(lean);
    free(pp);
    free(der);
}

/* cmpr_rand_public (codec/algs.c): public random values from a per-thread
 * buffer: every value differs, across refills of the buffer too; long ones
 * come straight from the DRBG; a forked child never hands out what its
 * parent will (the buffer it inherited is dropped), which would repeat a
 * nonce or a serial number. */
static void
test_rand_public(void **state)
{
    unsigned char v[200][10], big[300], mine[16], child[16] = { 0 };
    int pfd[2], status = 0;
    pid_t pid;
    (void)state;

    for (int i = 0; i < 200; i++)           /* 2,000 bytes: the 512-byte buffer refilled 3 times */
        assert_int_equal(cmpr_rand_public(v[i], sizeof(v[i])), 1);
    for (int i = 0; i < 200; i++)
        for (int j = i + 1; j < 200; j++)
            if (memcmp(v[i], v[j], sizeof(v[i])) == 0)
                fail_msg("values %d and %d are the same", i, j);
    memset(big, 0, sizeof(big));
    assert_int_equal(cmpr_rand_public(big, sizeof(big)), 1);
    assert_memory_not_equal(big, big + 150, 150);
    assert_int_equal(cmpr_rand_public(mine, 1), 1);     /* the buffer holds more */
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = cmpr_rand_public(child, sizeof(child)) == 1
                 && write(pfd[1], child, sizeof(child)) == (ssize_t)sizeof(child);

        _exit(ok ? 0 : 1);
    }
    close(pfd[1]);
    assert_int_equal(read(pfd[0], child, sizeof(child)), (ssize_t)sizeof(child));
    close(pfd[0]);
    waitpid(pid, &status, 0);
    assert_int_equal(cmpr_rand_public(mine, sizeof(mine)), 1);
    assert_memory_not_equal(mine, child, sizeof(mine));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rand_public),
        cmocka_unit_test(test_spki_ec_templates),
        cmocka_unit_test(test_roundtrip_every_body),
        cmocka_unit_test(test_roundtrip_full),
        cmocka_unit_test(test_body_tags_on_the_wire),
        cmocka_unit_test(test_openssl_oracle_parses_ours),
        cmocka_unit_test(test_openssl_oracle_validates_protection),
        cmocka_unit_test(test_lightweightcmpra_fixtures),
        cmocka_unit_test(test_openssl_reqout_fixtures),
        cmocka_unit_test(test_request_accessors),
        cmocka_unit_test(test_spki_fast_path),
        cmocka_unit_test(test_template_validity),
        cmocka_unit_test(test_response_header_rules),
        cmocka_unit_test(test_status_and_failinfo),
        cmocka_unit_test(test_itavs),
        cmocka_unit_test(test_rfc9810_v3_structures),
        cmocka_unit_test(test_archive_options),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_trailing_and_wrong_tags),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_absurd_iteration_count),
        cmocka_unit_test(test_wrong_mac_and_signature),
        cmocka_unit_test(test_decode_lean),
    };

    return cmocka_run_group_tests_name("codec", tests, setup, teardown);
}
