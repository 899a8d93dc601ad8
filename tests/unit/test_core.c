/* The core (core/pipeline.c) driven by requests built with our own codec.
 * Each server obligation of cmp-wire.md section 6 (items 3-16) has a test
 * named after it; then every failInfo the core sends, restart, concurrency. */
#include "testutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "codec/ee.h"
#include "codec/keygen.h"
#include "codec/msg.h"
#include "codec/oids.h"
#include "codec/protect.h"
#include "core/ca.h"
#include "core/config.h"
#include "core/core.h"
#include "base/err.h"
#include "core/store.h"
#include "core/req.h"

#include <sqlite3.h>
#include <uv.h>

static char dir[64];
static char conf_path[128];
static EVP_PKEY *ca_key, *ee_key, *ra_key;
static X509 *ca_cert, *ra_cert, *stranger_cert;
static EVP_PKEY *stranger_key;
static EVP_PKEY *enc_key;         /* the CA's encryption key (key archive) */
static X509 *enc_cert;
static struct cmpr_conf *conf;
static struct cmpr_core *core;
static const struct tu_info info = { "test", "unit", NULL, NULL, NULL, 0, NULL };

#define SECRET "unit-test-secret"
#define RA_SECRET "ra-secret"

static void
write_pem_key(const char *path, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_true(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
    fclose(f);
}

static void
write_pem_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_true(PEM_write_X509(f, x));
    fclose(f);
}

static void
start_core(void)
{
    char *err = NULL;

    if (cmpr_conf_load(conf_path, &conf, &err) != CMPR_OK)
        fail_msg("%s", err);
    if (cmpr_core_new(conf, &core, &err) != CMPR_OK)
        fail_msg("%s", err);
}

static void
stop_core(void)
{
    cmpr_core_free(core);
    cmpr_conf_free(conf);
    core = NULL;
    conf = NULL;
}

static int
setup(void **state)
{
    char path[256];
    FILE *f;
    X509_EXTENSION *ext;
    X509V3_CTX v3;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cmpr-core-XXXXXX");
    assert_non_null(mkdtemp(dir));
    ca_key = tu_key("ec:P-256");
    ca_cert = tu_cert(ca_key, "Unit CA", NULL, NULL, 1);
    ee_key = tu_key("ec:P-256");
    /* an RA certificate with id-kp-cmcRA, issued by the CA */
    ra_key = tu_key("ec:P-256");
    ra_cert = tu_cert(ra_key, "Unit RA", ca_key, ca_cert, 0);
    X509V3_set_ctx(&v3, ca_cert, ra_cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_ext_key_usage, "1.3.6.1.5.5.7.3.28");
    X509_add_ext(ra_cert, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(ra_cert, ca_key, EVP_sha256());
    /* a certificate nobody trusts */
    stranger_key = tu_key("ec:P-256");
    stranger_cert = tu_cert(stranger_key, "Stranger", NULL, NULL, 0);

    enc_key = tu_key("rsa:2048");
    enc_cert = tu_cert(enc_key, "Unit CA encryption", ca_key, ca_cert, 0);
    snprintf(path, sizeof(path), "%s/enc.key", dir);
    write_pem_key(path, enc_key);
    snprintf(path, sizeof(path), "%s/enc.pem", dir);
    write_pem_cert(path, enc_cert);
    snprintf(path, sizeof(path), "%s/ca.key", dir);
    write_pem_key(path, ca_key);
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    write_pem_cert(path, ca_cert);
    snprintf(conf_path, sizeof(conf_path), "%s/cmprouter.conf", dir);
    f = fopen(conf_path, "w");
    fprintf(f,
            "[router]\nlog_level = error\nmessage_time_skew = 300\nconfirm_wait = 60\n"
            "check_after = 7\nmax_mac_iterations = 20000\n"
            "[ca unit]\nkey = ca.key\ncert = ca.pem\ndefault_profile = ee\ncrl_file = unit.crl\n"
            "encryption_cert = enc.pem\nencryption_key = enc.key\n"
            "[profile ee]\nvalidity_days = 10\nkey_usage = digitalSignature\nrevoke_replaced = yes\n"
            "key_types = ec:P-256, ed25519\n"
            "[profile manual]\nrequire_approval = yes\nkey_types = ec:P-256\n"
            "[profile subca]\nca = yes\npath_len = 0\nkey_types = ec:P-256\n"
            "[profile anykey]\nkey_types = ec:P-256, ec:P-384, rsa:2048-4096, ed25519, ed448\n"
            "[profile cgen]\ncentral_keygen = required\ncentral_key_type = ec:P-256\n"
            "[profile cgen-manual]\ncentral_keygen = allowed\nrequire_approval = yes\n"
            "[client ee]\nreference = ee-ref\nsecret = pass:" SECRET "\nprofiles = ee, manual, subca, anykey, cgen, "
            "cgen-manual\n"
            "subject = CN=ee-*\n"
            "[client ra]\nreference = ra-ref\nsecret = pass:" RA_SECRET "\nprofiles = ee\nra = yes\n"
            "[client ra-cert]\ncert_subject = CN=Unit RA\nprofiles = ee\n"
            "[client once]\nreference = once\nsecret = pass:once-secret\none_time = yes\n"
            "[client bound]\nreference = bound\nsecret = pass:bound-secret\n"
            "tls_subject = CN=bound-device\n"
            "[client helpdesk]\nreference = helpdesk\nsecret = pass:helpdesk-secret\nprofiles = ee, anykey\n"
            "enroll = no\nrevoke = profiles\n"
            "[client norevoke]\nreference = norevoke\nsecret = pass:norevoke-secret\nrevoke = none\n"
            "renew = none\n");
    fclose(f);
    start_core();
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    stop_core();
    tu_rmrf(dir);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ee_key);
    EVP_PKEY_free(ra_key);
    EVP_PKEY_free(stranger_key);
    EVP_PKEY_free(enc_key);
    X509_free(enc_cert);
    X509_free(ca_cert);
    X509_free(ra_cert);
    X509_free(stranger_cert);
    return 0;
}

/* ---------------- an end entity, written with our codec ---------------- */

static CMPR_PKIMESSAGE *
ee_certreq_key(int body, const char *cn, int implicit, EVP_PKEY *key)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(body, 2);
    CMPR_CERTREQMSG *crm = CMPR_CERTREQMSG_new();
    X509_NAME *n = X509_NAME_new();

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    ASN1_INTEGER_set(crm->certReq->certReqId, 0);
    assert_int_equal(cmpr_tmpl_fill(crm->certReq->certTemplate, key, n, NULL, NULL), CMPR_OK);
    assert_int_equal(cmpr_crm_create_pop_sig(crm, key, NULL), CMPR_OK);
    sk_CMPR_CERTREQMSG_push(m->body->value.ir, crm);
    if (implicit)
        cmpr_hdr_push0_geninfo(m->header, cmpr_itav_new_implicit_confirm());
    X509_NAME_free(n);
    return m;
}

static CMPR_PKIMESSAGE *
ee_certreq(int body, const char *cn, int implicit)
{
    return ee_certreq_key(body, cn, implicit, ee_key);
}

static void
mac(CMPR_PKIMESSAGE *m, const char *ref, const char *secret)
{
    struct cmpr_mac_params mp;

    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    assert_int_equal(cmpr_hdr_set1_sender_kid(m->header, (const unsigned char *)ref, strlen(ref)), CMPR_OK);
    assert_int_equal(cmpr_protect_mac(m, (const unsigned char *)secret, strlen(secret), &mp, NULL), CMPR_OK);
}

static CMPR_PKIMESSAGE *send_msg_info(CMPR_PKIMESSAGE *m, const struct tu_info *inf);

/* sends m (consumed) and returns the decoded answer */
static CMPR_PKIMESSAGE *
send_msg(CMPR_PKIMESSAGE *m)
{
    return send_msg_info(m, &info);
}

static CMPR_PKIMESSAGE *
send_msg_info(CMPR_PKIMESSAGE *m, const struct tu_info *inf)
{
    unsigned char *der = NULL, *out = NULL;
    size_t len, outlen;
    CMPR_PKIMESSAGE *rsp = NULL;

    assert_int_equal(cmpr_msg_encode(m, &der, &len), CMPR_OK);
    CMPR_PKIMESSAGE_free(m);
    assert_int_equal(tu_handle(core, inf, der, len, &out, &outlen), CMPR_OK);
    OPENSSL_free(der);
    assert_int_equal(cmpr_msg_decode(out, outlen, &rsp, NULL), CMPR_OK);
    free(out);
    return rsp;
}

static CMPR_PKIMESSAGE *
send_mac(CMPR_PKIMESSAGE *m)
{
    mac(m, "ee-ref", SECRET);
    return send_msg(m);
}

/* the status an answer carries, whatever its body */
static const CMPR_PKISI *
status_of(const CMPR_PKIMESSAGE *rsp)
{
    switch (cmpr_msg_bodytype(rsp)) {
    case CMPR_BODY_ERROR:
        return rsp->body->value.error->pKIStatusInfo;
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP:
        return sk_CMPR_CERTRESPONSE_value(rsp->body->value.ip->response, 0)->status;
    case CMPR_BODY_RP:
        return sk_CMPR_PKISI_value(rsp->body->value.rp->status, 0);
    default:
        return NULL;
    }
}

static void
expect_fail(CMPR_PKIMESSAGE *rsp, int body, int failbit)
{
    const CMPR_PKISI *si;

    if (cmpr_msg_bodytype(rsp) != body)
        fail_msg("expected %s, got %s", cmpr_body_name(body), cmpr_body_name(cmpr_msg_bodytype(rsp)));
    si = status_of(rsp);
    assert_non_null(si);
    assert_int_equal(cmpr_pkisi_status(si), CMPR_STATUS_REJECTION);
    if (cmpr_pkisi_failinfo(si) != (1u << failbit))
        fail_msg("expected failInfo %s, got 0x%x", cmpr_failinfo_name(failbit), cmpr_pkisi_failinfo(si));
}

static X509 *
issued_cert(const CMPR_PKIMESSAGE *rsp)
{
    CMPR_CERTRESPONSE *r = sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(rsp)->response, 0);

    assert_non_null(r->certifiedKeyPair);
    return r->certifiedKeyPair->certOrEncCert->value.certificate;
}

/* a follow-up message (certConf, pollReq, error) in the transaction of rsp */
static CMPR_PKIMESSAGE *
followup(int body, const CMPR_PKIMESSAGE *rsp)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(body, cmpr_msg_pvno(rsp));

    ASN1_OCTET_STRING_free(m->header->transactionID);
    m->header->transactionID = ASN1_OCTET_STRING_dup(rsp->header->transactionID);
    cmpr_hdr_set1_recip_nonce(m->header, rsp->header->senderNonce);
    return m;
}

static CMPR_PKIMESSAGE *
certconf_for(const CMPR_PKIMESSAGE *rsp, long id, int accept)
{
    CMPR_PKIMESSAGE *m = followup(CMPR_BODY_CERTCONF, rsp);
    CMPR_CERTSTATUS *cs = CMPR_CERTSTATUS_new();
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl;

    assert_int_equal(cmpr_cert_hash(issued_cert(rsp), NULL, h, &hl), CMPR_OK);
    ASN1_OCTET_STRING_set(cs->certHash, h, (int)hl);
    ASN1_INTEGER_set(cs->certReqId, id);
    if (!accept)
        cs->statusInfo = cmpr_pkisi_new(CMPR_STATUS_REJECTION, 0, "no thanks");
    sk_CMPR_CERTSTATUS_push(m->body->value.certConf, cs);
    return m;
}

/* ---------------- cmp-wire.md section 6 ---------------- */

/* 3. transactionID echoed; a reused one -> transactionIdInUse (RFC 9810 5.1.1) */
static void
test_obligation_03_transaction_id(void **state)
{
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_IR, "ee-3", 1), *rsp, *again;
    ASN1_OCTET_STRING *tid = ASN1_OCTET_STRING_dup(req->header->transactionID);
    (void)state;

    rsp = send_mac(req);
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
    assert_int_equal(ASN1_OCTET_STRING_cmp(rsp->header->transactionID, tid), 0);
    again = ee_certreq(CMPR_BODY_CR, "ee-3b", 1);
    ASN1_OCTET_STRING_free(again->header->transactionID);
    again->header->transactionID = tid;
    CMPR_PKIMESSAGE_free(rsp);
    rsp = send_mac(again);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_TRANSACTION_ID_IN_USE);
    CMPR_PKIMESSAGE_free(rsp);
}

/* 4. recipNonce = request senderNonce, fresh 128-bit senderNonce;
 *    wrong recipNonce -> badRecipientNonce; short senderNonce -> badSenderNonce */
static void
test_obligation_04_nonces(void **state)
{
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_IR, "ee-4", 0), *rsp, *cc, *bad;
    ASN1_OCTET_STRING *sn = ASN1_OCTET_STRING_dup(req->header->senderNonce);
    (void)state;

    rsp = send_mac(req);
    assert_int_equal(ASN1_OCTET_STRING_cmp(rsp->header->recipNonce, sn), 0);
    assert_int_equal(ASN1_STRING_length(rsp->header->senderNonce), 16);
    assert_int_not_equal(ASN1_OCTET_STRING_cmp(rsp->header->senderNonce, sn), 0);
    cc = certconf_for(rsp, 0, 1);
    cmpr_hdr_set1_recip_nonce(cc->header, sn);     /* not what we sent */
    bad = send_mac(cc);
    expect_fail(bad, CMPR_BODY_ERROR, CMPR_FI_BAD_RECIPIENT_NONCE);
    CMPR_PKIMESSAGE_free(bad);
    CMPR_PKIMESSAGE_free(rsp);
    ASN1_OCTET_STRING_free(sn);

    req = ee_certreq(CMPR_BODY_IR, "ee-4b", 1);
    ASN1_OCTET_STRING_set(req->header->senderNonce, (const unsigned char *)"short", 5);
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_SENDER_NONCE);
    CMPR_PKIMESSAGE_free(rsp);
}

/* 5. same pvno in the answer; unsupported -> unsupportedVersion (RFC 9810 7) */
static void
test_obligation_05_pvno(void **state)
{
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_IR, "ee-5", 1), *rsp;
    (void)state;

    ASN1_INTEGER_set(req->header->pvno, 3);
    rsp = send_mac(req);
    assert_int_equal(cmpr_msg_pvno(rsp), 3);
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
    CMPR_PKIMESSAGE_free(rsp);
    req = ee_certreq(CMPR_BODY_IR, "ee-5b", 1);
    ASN1_INTEGER_set(req->header->pvno, 1);
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_UNSUPPORTED_VERSION);
    assert_int_equal(cmpr_msg_pvno(rsp), 2);
    CMPR_PKIMESSAGE_free(rsp);
}

/* 6. every request gets a CMP answer, garbage and unsupported bodies included */
static void
test_obligation_06_every_request_answered(void **state)
{
    unsigned char *out = NULL;
    size_t outlen;
    CMPR_PKIMESSAGE *rsp = NULL, *krr;
    (void)state;

    assert_int_equal(tu_handle(core, &info, (const unsigned char *)"\x30\x03\x02\x01\x02", 5,
                                      &out, &outlen), CMPR_OK);
    assert_int_equal(cmpr_msg_decode(out, outlen, &rsp, NULL), CMPR_OK);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_DATA_FORMAT);
    free(out);
    CMPR_PKIMESSAGE_free(rsp);
    /* popdecr has no challenge to answer here: badRequest with a reason */
    krr = cmpr_msg_new(CMPR_BODY_POPDECR, 2);
    {
        ASN1_INTEGER *i = ASN1_INTEGER_new();

        ASN1_INTEGER_set(i, 42);
        sk_ASN1_INTEGER_push(krr->body->value.popdecr, i);
    }
    rsp = send_mac(krr);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_REQUEST);
    CMPR_PKIMESSAGE_free(rsp);
    /* a response sent to us is no request */
    rsp = send_mac(cmpr_msg_build_pkiconf(NULL));
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_REQUEST);
    CMPR_PKIMESSAGE_free(rsp);
}

/* 7. protection: senderKID, MAC, signer trust, algorithms */
static void
test_obligation_07_protection(void **state)
{
    CMPR_PKIMESSAGE *req, *rsp;
    struct cmpr_mac_params mp;
    (void)state;

    /* unprotected */
    rsp = send_msg(ee_certreq(CMPR_BODY_IR, "ee-7", 1));
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_MESSAGE_CHECK);
    CMPR_PKIMESSAGE_free(rsp);
    /* MAC without senderKID */
    req = ee_certreq(CMPR_BODY_IR, "ee-7", 1);
    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    cmpr_protect_mac(req, (const unsigned char *)SECRET, strlen(SECRET), &mp, NULL);
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_MESSAGE_CHECK);
    CMPR_PKIMESSAGE_free(rsp);
    /* unknown reference, wrong secret */
    req = ee_certreq(CMPR_BODY_IR, "ee-7", 1);
    mac(req, "nobody", SECRET);
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_MESSAGE_CHECK);
    CMPR_PKIMESSAGE_free(rsp);
    req = ee_certreq(CMPR_BODY_IR, "ee-7", 1);
    mac(req, "ee-ref", "wrong");
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_MESSAGE_CHECK);
    CMPR_PKIMESSAGE_free(rsp);
    /* iteration count above max_mac_iterations -> badAlg, not computed */
    req = ee_certreq(CMPR_BODY_IR, "ee-7", 1);
    cmpr_hdr_set1_sender_kid(req->header, (const unsigned char *)"ee-ref", 6);
    mp.iter = 50000;
    cmpr_protect_mac(req, (const unsigned char *)SECRET, strlen(SECRET), &mp, NULL);
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_ALG);
    CMPR_PKIMESSAGE_free(rsp);
    /* PBMAC1 works as well */
    req = ee_certreq(CMPR_BODY_IR, "ee-7p", 1);
    cmpr_hdr_set1_sender_kid(req->header, (const unsigned char *)"ee-ref", 6);
    cmpr_mac_params_default(&mp, CMPR_MAC_PBMAC1);
    cmpr_protect_mac(req, (const unsigned char *)SECRET, strlen(SECRET), &mp, NULL);
    rsp = send_msg(req);
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
    assert_int_equal(cmpr_prot_kind(rsp->header->protectionAlg->algorithm), CMPR_PROT_PBMAC1);
    CMPR_PKIMESSAGE_free(rsp);
    /* the answer is protected as the request was (issue 16 item 4): its OWF
     * or PRF, MAC and iteration count, not fixed defaults */
    {
        static const struct cmpr_mac_params asked[] = {
            { CMPR_MAC_PBM, NID_sha384, NID_hmacWithSHA256, 1000, 16 },
            { CMPR_MAC_PBMAC1, NID_sha512, NID_hmacWithSHA384, 1500, 16 },
        };

        for (int i = 0; i < 2; i++) {
            struct cmpr_mac_params got;
            char subject[16];

            snprintf(subject, sizeof(subject), "ee-7m%d", i);
            req = ee_certreq(CMPR_BODY_IR, subject, 1);
            cmpr_hdr_set1_sender_kid(req->header, (const unsigned char *)"ee-ref", 6);
            assert_int_equal(cmpr_protect_mac(req, (const unsigned char *)SECRET, strlen(SECRET), &asked[i],
                                              NULL), CMPR_OK);
            rsp = send_msg(req);
            assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
            assert_int_equal(cmpr_mac_params_of(rsp->header->protectionAlg, 0, &got), CMPR_OK);
            assert_int_equal(got.kind, asked[i].kind);
            assert_int_equal(got.owf_nid, asked[i].owf_nid);
            assert_int_equal(got.mac_nid, asked[i].mac_nid);
            assert_int_equal(got.iter, asked[i].iter);
            CMPR_PKIMESSAGE_free(rsp);
        }
    }
    /* a signer nobody trusts */
    req = ee_certreq(CMPR_BODY_CR, "ee-7", 1);
    assert_int_equal(cmpr_protect_sig(req, stranger_key, NULL, 0, stranger_cert, NULL), CMPR_OK);
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_SIGNER_NOT_TRUSTED);
    CMPR_PKIMESSAGE_free(rsp);
    /* extraCerts with a self-signed certificate named like the signer's
     * issuing CA before the real one: chain building must not stop at the
     * first certificate with the right name (RFC 9483 3.3: extraCerts
     * carry the signer's chain; anchors come from our trust store only) */
    {
        EVP_PKEY *sub_key = tu_key("ec:P-256"), *fake_key = tu_key("ec:P-256");
        X509 *sub = tu_cert(sub_key, "Unit Sub CA", ca_key, ca_cert, 1);
        X509 *fake = tu_cert(fake_key, "Unit Sub CA", NULL, NULL, 1);
        X509 *leaf = tu_cert(ra_key, "Unit RA", sub_key, sub, 0);
        STACK_OF(X509) *chain = sk_X509_new_null();

        sk_X509_push(chain, fake);
        sk_X509_push(chain, sub);
        req = ee_certreq(CMPR_BODY_CR, "ee-7s", 1);
        assert_int_equal(cmpr_protect_sig(req, ra_key, NULL, 0, leaf, chain), CMPR_OK);
        rsp = send_msg(req);
        assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_CP);
        CMPR_PKIMESSAGE_free(rsp);
        /* an impostor that is not self-signed: tried without it */
        {
            EVP_PKEY *k2 = tu_key("ec:P-256");
            X509 *fake2 = tu_cert(k2, "Unit Sub CA", fake_key, fake, 1);

            (void)sk_X509_set(chain, 0, fake2);
            req = ee_certreq(CMPR_BODY_CR, "ee-7t", 1);
            assert_int_equal(cmpr_protect_sig(req, ra_key, NULL, 0, leaf, chain), CMPR_OK);
            rsp = send_msg(req);
            assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_CP);
            CMPR_PKIMESSAGE_free(rsp);
            /* and without the real one, the impostor alone is still refused */
            (void)sk_X509_pop(chain);
            req = ee_certreq(CMPR_BODY_CR, "ee-7u", 1);
            assert_int_equal(cmpr_protect_sig(req, ra_key, NULL, 0, leaf, chain), CMPR_OK);
            rsp = send_msg(req);
            expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_SIGNER_NOT_TRUSTED);
            CMPR_PKIMESSAGE_free(rsp);
            X509_free(fake2);
            EVP_PKEY_free(k2);
        }
        sk_X509_free(chain);
        X509_free(leaf);
        X509_free(fake);
        X509_free(sub);
        EVP_PKEY_free(fake_key);
        EVP_PKEY_free(sub_key);
    }
    /* a trusted signer whose signature is broken */
    req = ee_certreq(CMPR_BODY_CR, "ee-7", 1);
    assert_int_equal(cmpr_protect_sig(req, ra_key, NULL, 0, ra_cert, NULL), CMPR_OK);
    ((unsigned char *)ASN1_STRING_get0_data(req->protection))[8] ^= 1;
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_MESSAGE_CHECK);
    CMPR_PKIMESSAGE_free(rsp);
}

/* 8. the CA signs its errors; pkiConf uses the credentials of the first answer */
static void
test_obligation_08_answer_protection(void **state)
{
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_IR, "ee-8", 0), *rsp, *pc;
    struct cmpr_verify_opts vo = { 0, NULL, NULL };
    (void)state;

    mac(req, "ee-ref", "wrong");
    rsp = send_msg(req);
    assert_int_equal(cmpr_prot_kind(rsp->header->protectionAlg->algorithm), CMPR_PROT_SIG);
    assert_int_equal(cmpr_verify_sig(rsp, X509_get0_pubkey(ca_cert)), CMPR_OK);
    CMPR_PKIMESSAGE_free(rsp);
    rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-8", 0));
    assert_int_equal(cmpr_verify_mac(rsp, (const unsigned char *)SECRET, strlen(SECRET), &vo), CMPR_OK);
    pc = send_mac(certconf_for(rsp, 0, 1));
    assert_int_equal(cmpr_msg_bodytype(pc), CMPR_BODY_PKICONF);
    assert_int_equal(cmpr_verify_mac(pc, (const unsigned char *)SECRET, strlen(SECRET), &vo), CMPR_OK);
    CMPR_PKIMESSAGE_free(pc);
    CMPR_PKIMESSAGE_free(rsp);
}

/* 9. POP verified (badPOP); raVerified only from an RA (notAuthorized) */
static void
test_obligation_09_pop(void **state)
{
    CMPR_PKIMESSAGE *req, *rsp;
    CMPR_CERTREQMSG *crm;
    (void)state;

    req = ee_certreq(CMPR_BODY_IR, "ee-9", 1);
    crm = sk_CMPR_CERTREQMSG_value(req->body->value.ir, 0);
    ((unsigned char *)ASN1_STRING_get0_data(crm->popo->value.signature->signature))[10] ^= 1;
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_BAD_POP);
    CMPR_PKIMESSAGE_free(rsp);
    /* no POP at all */
    req = ee_certreq(CMPR_BODY_IR, "ee-9", 1);
    crm = sk_CMPR_CERTREQMSG_value(req->body->value.ir, 0);
    CMPR_POPO_free(crm->popo);
    crm->popo = NULL;
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_BAD_POP);
    CMPR_PKIMESSAGE_free(rsp);
    /* raVerified from an end entity */
    req = ee_certreq(CMPR_BODY_IR, "ee-9", 1);
    crm = sk_CMPR_CERTREQMSG_value(req->body->value.ir, 0);
    CMPR_POPO_free(crm->popo);
    crm->popo = CMPR_POPO_new();
    crm->popo->type = CMPR_POPO_RAVERIFIED;
    crm->popo->value.raVerified = ASN1_NULL_new();
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    /* raVerified from an RA: by MAC (ra = yes) and by a cmcRA certificate */
    for (int how = 0; how < 2; how++) {
        req = ee_certreq(CMPR_BODY_CR, "ee-9ra", 1);
        crm = sk_CMPR_CERTREQMSG_value(req->body->value.ir, 0);
        CMPR_POPO_free(crm->popo);
        crm->popo = CMPR_POPO_new();
        crm->popo->type = CMPR_POPO_RAVERIFIED;
        crm->popo->value.raVerified = ASN1_NULL_new();
        if (how == 0) {
            mac(req, "ra-ref", RA_SECRET);
        } else {
            assert_int_equal(cmpr_protect_sig(req, ra_key, NULL, 0, ra_cert, NULL), CMPR_OK);
        }
        rsp = send_msg(req);
        assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_CP);
        assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
        CMPR_PKIMESSAGE_free(rsp);
    }
}

/* 10. certReqId echoed, one CertResponse, failInfo only with rejection,
 *     extraCerts = the chain; p10cr -> -1 */
static void
test_obligation_10_certrep(void **state)
{
    CMPR_PKIMESSAGE *rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-10", 1)), *p10;
    CMPR_CERTREPMESSAGE *rep = cmpr_msg_get0_rep(rsp);
    X509_REQ *csr;
    X509_NAME *n = X509_NAME_new();
    (void)state;

    assert_int_equal(sk_CMPR_CERTRESPONSE_num(rep->response), 1);
    assert_int_equal(ASN1_INTEGER_get(sk_CMPR_CERTRESPONSE_value(rep->response, 0)->certReqId), 0);
    assert_null(sk_CMPR_CERTRESPONSE_value(rep->response, 0)->status->failInfo);
    assert_true(X509_check_issued(ca_cert, issued_cert(rsp)) == X509_V_OK);
    /* extraCerts hold the issuing chain */
    {
        int found = 0;

        for (int i = 0; i < sk_X509_num(rsp->extraCerts); i++)
            found |= X509_cmp(sk_X509_value(rsp->extraCerts, i), ca_cert) == 0;
        assert_true(found);
    }
    CMPR_PKIMESSAGE_free(rsp);

    p10 = cmpr_msg_new(CMPR_BODY_P10CR, 2);
    csr = p10->body->value.p10cr;
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"ee-10p", -1, -1, 0);
    X509_REQ_set_subject_name(csr, n);
    X509_REQ_set_pubkey(csr, ee_key);
    X509_REQ_sign(csr, ee_key, EVP_sha256());
    X509_NAME_free(n);
    cmpr_hdr_push0_geninfo(p10->header, cmpr_itav_new_implicit_confirm());
    rsp = send_mac(p10);
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_CP);
    assert_int_equal(ASN1_INTEGER_get(sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(rsp)->response, 0)->certReqId),
                     -1);
    CMPR_PKIMESSAGE_free(rsp);
}

/* Serial numbers (cmpr_ca_serial): 16 octets, positive, the first six the
 * issuing time in milliseconds (so they sort by issuance: each lands at the
 * end of the store's index), the last ten random; two issued one after the
 * other differ in those and sort in order. */
static void
test_serial_layout(void **state)
{
    unsigned char sn[2][32], raw[16];
    struct timespec ts;
    uint64_t t0, t1, at[2];
    (void)state;

    clock_gettime(CLOCK_REALTIME, &ts);
    t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    for (int i = 0; i < 2; i++) {
        CMPR_PKIMESSAGE *rsp = send_mac(ee_certreq(CMPR_BODY_IR, i ? "ee-sn2" : "ee-sn1", 1));
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(issued_cert(rsp)), NULL);

        assert_non_null(bn);
        assert_int_equal(BN_num_bytes(bn), 16);
        assert_int_equal(BN_bn2bin(bn, sn[i]), 16);
        assert_int_equal(sn[i][0] & 0xc0, 0x40);
        at[i] = 0;
        for (int k = 0; k < 6; k++)
            at[i] = at[i] << 8 | sn[i][k];
        at[i] &= (UINT64_C(1) << 46) - 1;
        BN_free(bn);
        CMPR_PKIMESSAGE_free(rsp);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    t1 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (at[0] < t0 || at[1] < at[0] || at[1] > t1)
        fail_msg("serial times %llu, %llu not within %llu..%llu", (unsigned long long)at[0],
                 (unsigned long long)at[1], (unsigned long long)t0, (unsigned long long)t1);
    assert_memory_not_equal(sn[0] + 6, sn[1] + 6, 10);
    /* the layout itself, for a given time */
    assert_int_equal(cmpr_ca_serial(raw, UINT64_C(0x123456789abc)), CMPR_OK);
    assert_memory_equal(raw, "\x52\x34\x56\x78\x9a\xbc", 6);
    assert_int_equal(cmpr_ca_serial(raw, UINT64_C(0xffffffffffff)), CMPR_OK);
    assert_int_equal(raw[0], 0x7f);
}

/* The certificate carries the public key exactly as the template did
 * (copied, not re-encoded: ca.c), for every kind of key, and certConf's
 * certHash is checked from the stored DER (cmpr_cert_hash_der). */
static void
test_issued_key_as_requested(void **state)
{
    static const char *const specs[] = { "ec:P-384", "rsa:2048", "ed25519", "ed448" };
    (void)state;

    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        EVP_PKEY *k = tu_key(specs[i]);
        CMPR_PKIMESSAGE *req = ee_certreq_key(CMPR_BODY_IR, "ee-key", 0, k), *rsp, *pkiconf;
        unsigned char *want = NULL, *got = NULL;
        int wn, gn;
        X509 *c;

        static const char *const prof[] = { "anykey" };

        cmpr_hdr_push0_geninfo(req->header, cmpr_itav_new_cert_profile(prof, 1));
        wn = i2d_CMPR_SPKI(sk_CMPR_CERTREQMSG_value(req->body->value.ir, 0)->certReq->certTemplate->publicKey,
                           &want);
        rsp = send_mac(req);
        assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
        if (cmpr_pkisi_status(status_of(rsp)) != CMPR_STATUS_ACCEPTED) {
            char t[300] = "";
            const CMPR_PKISI *si = status_of(rsp);

            if (si->statusString != NULL && sk_ASN1_UTF8STRING_num(si->statusString) > 0)
                snprintf(t, sizeof(t), "%s", ASN1_STRING_get0_data(sk_ASN1_UTF8STRING_value(si->statusString, 0)));
            fail_msg("%s: status %ld: %s", specs[i], cmpr_pkisi_status(si), t);
        }
        c = issued_cert(rsp);
        gn = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &got);
        assert_true(wn > 0);
        assert_int_equal(gn, wn);
        assert_memory_equal(got, want, (size_t)wn);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(c), k), 1);
        assert_int_equal(X509_verify(c, X509_get0_pubkey(ca_cert)), 1);
        pkiconf = send_mac(certconf_for(rsp, 0, 1));
        if (cmpr_msg_bodytype(pkiconf) != CMPR_BODY_PKICONF)
            fail_msg("%s: certConf answered with %s", specs[i], cmpr_body_name(cmpr_msg_bodytype(pkiconf)));
        CMPR_PKIMESSAGE_free(pkiconf);
        OPENSSL_free(want);
        OPENSSL_free(got);
        CMPR_PKIMESSAGE_free(rsp);
        EVP_PKEY_free(k);
    }
}

/* 11. implicitConfirm echoed when granted; otherwise confirmWaitTime, certConf
 *     -> pkiConf, and no certConf in time = rejection (revoked) */
static void
test_obligation_11_confirmation(void **state)
{
    CMPR_PKIMESSAGE *rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-11", 1)), *pc;
    struct cmpr_store *st = cmpr_core_store(core);
    struct cmpr_cert_rec c;
    unsigned char sn[64];
    size_t snlen;
    BIGNUM *bn;
    (void)state;

    assert_true(cmpr_hdr_has_implicit_confirm(rsp->header));
    CMPR_PKIMESSAGE_free(rsp);

    rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-11b", 0));
    assert_false(cmpr_hdr_has_implicit_confirm(rsp->header));
    assert_non_null(cmpr_hdr_get0_geninfo(rsp->header, CMPR_IT_CONFIRM_WAIT_TIME));
    pc = send_mac(certconf_for(rsp, 0, 1));
    assert_int_equal(cmpr_msg_bodytype(pc), CMPR_BODY_PKICONF);
    CMPR_PKIMESSAGE_free(pc);
    CMPR_PKIMESSAGE_free(rsp);

    /* never confirmed: expire revokes */
    rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-11c", 0));
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(issued_cert(rsp)), NULL);
    snlen = (size_t)BN_bn2bin(bn, sn);
    BN_free(bn);
    assert_true(cmpr_core_expire(core, time(NULL) + 3600) >= 1);
    assert_int_equal(st->ops->cert_get(st, sn, snlen, &c), CMPR_OK);
    assert_int_equal(c.status, CMPR_CERT_REVOKED);
    cmpr_cert_rec_clear(&c);
    /* and its late certConf is refused */
    pc = send_mac(certconf_for(rsp, 0, 1));
    expect_fail(pc, CMPR_BODY_ERROR, CMPR_FI_BAD_REQUEST);
    CMPR_PKIMESSAGE_free(pc);
    CMPR_PKIMESSAGE_free(rsp);
}

/* 12. certConf with a wrong certHash or certReqId -> badCertId; a rejecting
 *     certConf revokes the certificate */
static void
test_obligation_12_certconf_checks(void **state)
{
    CMPR_PKIMESSAGE *rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-12", 0)), *cc, *pc;
    (void)state;

    cc = certconf_for(rsp, 0, 1);
    ASN1_OCTET_STRING_set(sk_CMPR_CERTSTATUS_value(cc->body->value.certConf, 0)->certHash,
                          (const unsigned char *)"not the hash", 12);
    pc = send_mac(cc);
    expect_fail(pc, CMPR_BODY_ERROR, CMPR_FI_BAD_CERT_ID);
    CMPR_PKIMESSAGE_free(pc);
    pc = send_mac(certconf_for(rsp, 7, 1));
    expect_fail(pc, CMPR_BODY_ERROR, CMPR_FI_BAD_CERT_ID);
    CMPR_PKIMESSAGE_free(pc);
    /* the client refuses the certificate: pkiConf, and the certificate is revoked */
    pc = send_mac(certconf_for(rsp, 0, 0));
    assert_int_equal(cmpr_msg_bodytype(pc), CMPR_BODY_PKICONF);
    CMPR_PKIMESSAGE_free(pc);
    CMPR_PKIMESSAGE_free(rsp);
}

static CMPR_PKIMESSAGE *
rr_for(X509 *cert, int reason)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_RR, 2);
    CMPR_REVDETAILS *rd = CMPR_REVDETAILS_new();

    cmpr_tmpl_fill(rd->certDetails, NULL, NULL, X509_get_issuer_name(cert), X509_get0_serialNumber(cert));
    if (reason >= 0) {
        ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();

        ASN1_ENUMERATED_set(e, reason);
        X509V3_add1_i2d(&rd->crlEntryDetails, NID_crl_reason, e, 0, 0);
        ASN1_ENUMERATED_free(e);
    }
    sk_CMPR_REVDETAILS_push(m->body->value.rr, rd);
    return m;
}

/* 13. rr: unknown -> badCertId, success -> rp with one status accepted,
 *     again -> certRevoked; only the holder (or an RA) may revoke */
static void
test_obligation_13_revocation(void **state)
{
    CMPR_PKIMESSAGE *ip = send_mac(ee_certreq(CMPR_BODY_IR, "ee-13", 1)), *rp;
    X509 *cert = X509_dup(issued_cert(ip));
    X509 *other;
    (void)state;

    /* another client may not revoke it */
    rp = rr_for(cert, 1);
    mac(rp, "ra-ref", RA_SECRET);       /* the RA may */
    CMPR_PKIMESSAGE_free(rp);
    rp = rr_for(cert, 1);
    mac(rp, "once", "once-secret");
    rp = send_msg(rp);
    expect_fail(rp, CMPR_BODY_RP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rp);
    /* the enrolling client may */
    rp = send_mac(rr_for(cert, 1));
    assert_int_equal(cmpr_msg_bodytype(rp), CMPR_BODY_RP);
    assert_int_equal(sk_CMPR_PKISI_num(rp->body->value.rp->status), 1);
    assert_int_equal(cmpr_pkisi_status(status_of(rp)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(rp);
    rp = send_mac(rr_for(cert, 1));
    expect_fail(rp, CMPR_BODY_RP, CMPR_FI_CERT_REVOKED);
    CMPR_PKIMESSAGE_free(rp);
    /* a certificate we never issued */
    other = tu_cert(ee_key, "ee-13x", ca_key, ca_cert, 0);
    rp = send_mac(rr_for(other, 0));
    expect_fail(rp, CMPR_BODY_RP, CMPR_FI_BAD_CERT_ID);
    CMPR_PKIMESSAGE_free(rp);
    X509_free(other);
    X509_free(cert);
    CMPR_PKIMESSAGE_free(ip);
}

static CMPR_PKIMESSAGE *
genm_with(int it)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_GENM, 2);

    if (it >= 0)
        sk_CMPR_ITAV_push(m->body->value.genm, cmpr_itav_new0(it, NULL));
    return m;
}

static const CMPR_ITAV *
itav_in(const CMPR_PKIMESSAGE *genp, int it)
{
    for (int i = 0; i < sk_CMPR_ITAV_num(genp->body->value.genp); i++)
        if (cmpr_itav_num(sk_CMPR_ITAV_value(genp->body->value.genp, i)) == it)
            return sk_CMPR_ITAV_value(genp->body->value.genp, i);
    return NULL;
}

/* 14. genm -> genp with the matching OID (17->17, 20->18, 19->19, 22->23) */
static void
test_obligation_14_genm(void **state)
{
    CMPR_PKIMESSAGE *rsp;
    (void)state;

    rsp = send_mac(genm_with(CMPR_IT_CA_CERTS));
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_GENP);
    {
        STACK_OF(X509) *certs = cmpr_itav_get1_ca_certs(itav_in(rsp, CMPR_IT_CA_CERTS));

        assert_int_equal(X509_cmp(sk_X509_value(certs, 0), ca_cert), 0);
        sk_X509_pop_free(certs, X509_free);
    }
    CMPR_PKIMESSAGE_free(rsp);
    rsp = send_mac(genm_with(CMPR_IT_ROOT_CA_CERT));
    assert_non_null(itav_in(rsp, CMPR_IT_ROOT_CA_KEY_UPDATE));
    CMPR_PKIMESSAGE_free(rsp);
    rsp = send_mac(genm_with(CMPR_IT_CERT_REQ_TEMPLATE));
    {
        CMPR_CERTREQTEMPLATECONTENT *t =
            cmpr_itav_get1_cert_req_template(itav_in(rsp, CMPR_IT_CERT_REQ_TEMPLATE));

        assert_non_null(t);
        assert_null(t->certTemplate->publicKey);   /* RFC 9483 4.3.3 */
        assert_int_equal(sk_CMPR_ATAV_num(t->keySpec), 2);
        CMPR_CERTREQTEMPLATECONTENT_free(t);
    }
    CMPR_PKIMESSAGE_free(rsp);
    {
        CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_GENM, 2);
        STACK_OF(CMPR_CRLSTATUS) *l = sk_CMPR_CRLSTATUS_new_null();
        CMPR_CRLSTATUS *s = CMPR_CRLSTATUS_new();
        STACK_OF(X509_CRL) *crls;

        s->source->type = CMPR_CRLSOURCE_ISSUER;
        s->source->value.issuer = sk_GENERAL_NAME_new_null();
        {
            GENERAL_NAME *gn = GENERAL_NAME_new();

            GENERAL_NAME_set0_value(gn, GEN_DIRNAME, X509_NAME_dup(X509_get_subject_name(ca_cert)));
            sk_GENERAL_NAME_push(s->source->value.issuer, gn);
        }
        sk_CMPR_CRLSTATUS_push(l, s);
        sk_CMPR_ITAV_push(m->body->value.genm, cmpr_itav_new_crl_status_list(l));
        sk_CMPR_CRLSTATUS_pop_free(l, CMPR_CRLSTATUS_free);
        rsp = send_mac(m);
        crls = cmpr_itav_get1_crls(itav_in(rsp, CMPR_IT_CRLS));
        assert_int_equal(sk_X509_CRL_num(crls), 1);
        assert_int_equal(X509_CRL_verify(sk_X509_CRL_value(crls, 0), ca_key), 1);
        sk_X509_CRL_pop_free(crls, X509_CRL_free);
        CMPR_PKIMESSAGE_free(rsp);
    }
    /* an OID we do not know is named in unsupportedOIDs (RFC 9810 5.3.19.7) */
    rsp = send_mac(genm_with(99));
    assert_non_null(itav_in(rsp, CMPR_IT_UNSUPPORTED_OIDS));
    CMPR_PKIMESSAGE_free(rsp);
    /* empty genm: everything relevant (RFC 9810 D.5) */
    rsp = send_mac(genm_with(-1));
    assert_true(sk_CMPR_ITAV_num(rsp->body->value.genp) >= 4);
    CMPR_PKIMESSAGE_free(rsp);
}

/* 15. waiting only after full validation, without failInfo; pollReq ->
 *     pollRep echoing certReqId with checkAfter; approval delivers on poll */
static void
test_obligation_15_polling(void **state)
{
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_CR, "ee-15", 0), *rsp, *poll, *prep, *fin, *pc;
    const CMPR_PKISI *si;
    unsigned char tid[64];
    size_t tlen;
    (void)state;

    cmpr_hdr_push0_geninfo(req->header, cmpr_itav_new_cert_profile((const char *const[]){ "manual" }, 1));
    rsp = send_mac(req);
    si = status_of(rsp);
    assert_int_equal(cmpr_pkisi_status(si), CMPR_STATUS_WAITING);
    assert_null(si->failInfo);
    assert_null(sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(rsp)->response, 0)->certifiedKeyPair);
    poll = followup(CMPR_BODY_POLLREQ, rsp);
    {
        CMPR_POLLREQ *p = CMPR_POLLREQ_new();

        ASN1_INTEGER_set(p->certReqId, 0);
        sk_CMPR_POLLREQ_push(poll->body->value.pollReq, p);
    }
    prep = send_mac(poll);
    assert_int_equal(cmpr_msg_bodytype(prep), CMPR_BODY_POLLREP);
    assert_int_equal(ASN1_INTEGER_get(sk_CMPR_POLLREP_value(prep->body->value.pollRep, 0)->certReqId), 0);
    assert_int_equal(ASN1_INTEGER_get(sk_CMPR_POLLREP_value(prep->body->value.pollRep, 0)->checkAfter), 7);
    memcpy(tid, ASN1_STRING_get0_data(rsp->header->transactionID), 16);
    tlen = 16;
    assert_int_equal(cmpr_core_approve(core, tid, tlen), CMPR_OK);
    assert_int_equal(cmpr_core_approve(core, tid, tlen), CMPR_ERR_INVALID_ARG);
    poll = followup(CMPR_BODY_POLLREQ, prep);
    {
        CMPR_POLLREQ *p = CMPR_POLLREQ_new();

        ASN1_INTEGER_set(p->certReqId, 0);
        sk_CMPR_POLLREQ_push(poll->body->value.pollReq, p);
    }
    fin = send_mac(poll);
    assert_int_equal(cmpr_msg_bodytype(fin), CMPR_BODY_CP);
    assert_int_equal(cmpr_pkisi_status(status_of(fin)), CMPR_STATUS_ACCEPTED);
    pc = send_mac(certconf_for(fin, 0, 1));
    assert_int_equal(cmpr_msg_bodytype(pc), CMPR_BODY_PKICONF);
    CMPR_PKIMESSAGE_free(pc);
    CMPR_PKIMESSAGE_free(fin);
    CMPR_PKIMESSAGE_free(prep);
    CMPR_PKIMESSAGE_free(rsp);

    /* a request that fails validation never gets "waiting" */
    req = ee_certreq(CMPR_BODY_CR, "intruder", 0);
    cmpr_hdr_push0_geninfo(req->header, cmpr_itav_new_cert_profile((const char *const[]){ "manual" }, 1));
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_CP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
}

/* 16. a client's error is acknowledged with pkiConf (and ends the transaction) */
static void
test_obligation_16_client_error(void **state)
{
    CMPR_PKIMESSAGE *rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-16", 0)), *err, *pc;
    (void)state;

    err = followup(CMPR_BODY_ERROR, rsp);
    CMPR_PKISI_free(err->body->value.error->pKIStatusInfo);
    err->body->value.error->pKIStatusInfo = cmpr_pkisi_new(CMPR_STATUS_REJECTION, 0, "client gave up");
    pc = send_mac(err);
    assert_int_equal(cmpr_msg_bodytype(pc), CMPR_BODY_PKICONF);
    CMPR_PKIMESSAGE_free(pc);
    /* the transaction is over: a certConf now is refused */
    pc = send_mac(certconf_for(rsp, 0, 1));
    expect_fail(pc, CMPR_BODY_ERROR, CMPR_FI_BAD_REQUEST);
    CMPR_PKIMESSAGE_free(pc);
    CMPR_PKIMESSAGE_free(rsp);
}

/* ---------------- other failInfos ---------------- */

static void
test_failinfo_bad_time_and_replay(void **state)
{
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_IR, "ee-t", 1), *rsp, *copy;
    unsigned char *der = NULL, *out = NULL;
    size_t len, outlen;
    (void)state;

    cmpr_hdr_set_message_time(req->header, time(NULL) - 3600);
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_TIME);
    CMPR_PKIMESSAGE_free(rsp);
    /* the same senderNonce in a new transaction is a replay */
    req = ee_certreq(CMPR_BODY_GENM, "x", 0);
    sk_CMPR_CERTREQMSG_pop_free(req->body->value.ir, CMPR_CERTREQMSG_free);
    req->body->value.genm = sk_CMPR_ITAV_new_null();
    copy = CMPR_PKIMESSAGE_dup(req);
    cmpr_hdr_set_fresh_transaction_id(copy->header);
    rsp = send_mac(req);
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_GENP);
    CMPR_PKIMESSAGE_free(rsp);
    rsp = send_mac(copy);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_SENDER_NONCE);
    CMPR_PKIMESSAGE_free(rsp);
    (void)der; (void)out; (void)len; (void)outlen;
}

/* A request whose handling was cut short by a crash (its senderNonce is in
 * the replay cache, its transaction never recorded) is run again by the
 * transport with resumed = 1: it is answered, not taken for a replay. The
 * same message without the flag stays a replay (RFC 9810 5.1.1 nonces). */
static void
test_resumed_after_crash(void **state)
{
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_IR, "ee-resumed", 0), *copy, *rsp;
    struct cmpr_store *st = cmpr_core_store(core);
    struct tu_info resumed = info;
    (void)state;

    mac(req, "ee-ref", SECRET);
    copy = CMPR_PKIMESSAGE_dup(req);
    /* the crash window: the nonce was recorded, nothing else */
    assert_int_equal(st->ops->nonce_check(st, ASN1_STRING_get0_data(req->header->senderNonce),
                                          (size_t)ASN1_STRING_length(req->header->senderNonce),
                                          (int64_t)time(NULL), 300), CMPR_OK);
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_SENDER_NONCE);
    CMPR_PKIMESSAGE_free(rsp);
    resumed.resumed = 1;
    rsp = send_msg_info(copy, &resumed);
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(rsp);
}

/* RFC 9810 5.2.3 / RFC 9483 3.6.4: store trouble is never a silent loss.
 * systemFailure: the certificate a certConf confirms has vanished from the
 * store; systemUnavail: the store cannot record the request (another process
 * holds the write lock past the busy timeout). */
static void
test_failinfo_system(void **state)
{
    CMPR_PKIMESSAGE *rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-sys", 0)), *pc;
    char db[256], *msg = NULL;
    sqlite3 *h;
    (void)state;

    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
    snprintf(db, sizeof(db), "%s/cmprouter.db", dir);
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    assert_int_equal(sqlite3_exec(h, "DELETE FROM cert", NULL, NULL, &msg), SQLITE_OK);
    pc = send_mac(certconf_for(rsp, 0, 1));
    expect_fail(pc, CMPR_BODY_ERROR, CMPR_FI_SYSTEM_FAILURE);
    CMPR_PKIMESSAGE_free(pc);
    CMPR_PKIMESSAGE_free(rsp);

    /* hold the write lock: the core waits its busy timeout, then answers
     * systemUnavail and records nothing */
    assert_int_equal(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, &msg), SQLITE_OK);
    rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-sys2", 1));
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_SYSTEM_UNAVAIL);
    CMPR_PKIMESSAGE_free(rsp);
    assert_int_equal(sqlite3_exec(h, "ROLLBACK", NULL, NULL, &msg), SQLITE_OK);
    sqlite3_close(h);
    /* the store works again: so does the core */
    rsp = send_mac(ee_certreq(CMPR_BODY_IR, "ee-sys3", 1));
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
    CMPR_PKIMESSAGE_free(rsp);
}

static void
test_failinfo_template_and_profile(void **state)
{
    CMPR_PKIMESSAGE *req, *rsp;
    EVP_PKEY *rsa = tu_key("rsa:2048");
    CMPR_CERTREQMSG *crm;
    (void)state;

    /* key type the profile does not take */
    req = ee_certreq(CMPR_BODY_IR, "ee-k", 1);
    crm = sk_CMPR_CERTREQMSG_value(req->body->value.ir, 0);
    cmpr_tmpl_fill(crm->certReq->certTemplate, rsa, NULL, NULL, NULL);
    cmpr_crm_create_pop_sig(crm, rsa, NULL);
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_BAD_CERT_TEMPLATE);
    CMPR_PKIMESSAGE_free(rsp);
    /* a profile the client may not use */
    req = ee_certreq(CMPR_BODY_IR, "ee-p", 1);
    cmpr_hdr_push0_geninfo(req->header, cmpr_itav_new_cert_profile((const char *const[]){ "nope" }, 1));
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    /* one-time reference: second use refused */
    req = ee_certreq(CMPR_BODY_IR, "anything", 1);
    mac(req, "once", "once-secret");
    rsp = send_msg(req);
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(rsp);
    req = ee_certreq(CMPR_BODY_IR, "anything2", 1);
    mac(req, "once", "once-secret");
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    /* validity capped -> grantedWithMods */
    req = ee_certreq(CMPR_BODY_IR, "ee-v", 1);
    crm = sk_CMPR_CERTREQMSG_value(req->body->value.ir, 0);
    crm->certReq->certTemplate->validity = CMPR_OPTIONALVALIDITY_new();
    crm->certReq->certTemplate->validity->notAfter = ASN1_TIME_set(NULL, time(NULL) + 86400L * 400);
    cmpr_crm_create_pop_sig(crm, ee_key, NULL);
    rsp = send_mac(req);
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_GRANTED_WITH_MODS);
    CMPR_PKIMESSAGE_free(rsp);
    EVP_PKEY_free(rsa);
}

/* ccr: cross-certification needs a CA profile (RFC 9810 5.3.11, D.6) */
static void
test_ccr(void **state)
{
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_CCR, "ee-other-ca", 1), *rsp;
    BASIC_CONSTRAINTS *bc;
    (void)state;

    cmpr_hdr_push0_geninfo(req->header, cmpr_itav_new_cert_profile((const char *const[]){ "subca" }, 1));
    rsp = send_mac(req);
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_CCP);
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
    bc = X509_get_ext_d2i(issued_cert(rsp), NID_basic_constraints, NULL, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
    BASIC_CONSTRAINTS_free(bc);
    CMPR_PKIMESSAGE_free(rsp);
    /* an end-entity profile cannot cross-certify */
    rsp = send_mac(ee_certreq(CMPR_BODY_CCR, "ee-other-ca2", 1));
    expect_fail(rsp, CMPR_BODY_CCP, CMPR_FI_BAD_CERT_TEMPLATE);
    CMPR_PKIMESSAGE_free(rsp);
}

/* certificateHold, then removeFromCRL releases it (RFC 5280 5.3.1) */
static void
test_hold_and_release(void **state)
{
    CMPR_PKIMESSAGE *ip = send_mac(ee_certreq(CMPR_BODY_IR, "ee-hold", 1)), *rp;
    X509 *cert = X509_dup(issued_cert(ip));
    struct cmpr_store *st = cmpr_core_store(core);
    struct cmpr_cert_rec c;
    unsigned char sn[64];
    size_t snlen;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    (void)state;

    snlen = (size_t)BN_bn2bin(bn, sn);
    BN_free(bn);
    rp = send_mac(rr_for(cert, 6));
    assert_int_equal(cmpr_pkisi_status(status_of(rp)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(rp);
    assert_int_equal(st->ops->cert_get(st, sn, snlen, &c), CMPR_OK);
    assert_int_equal(c.status, CMPR_CERT_ON_HOLD);
    cmpr_cert_rec_clear(&c);
    rp = send_mac(rr_for(cert, 8));
    assert_int_equal(cmpr_pkisi_status(status_of(rp)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(rp);
    assert_int_equal(st->ops->cert_get(st, sn, snlen, &c), CMPR_OK);
    assert_int_equal(c.status, CMPR_CERT_VALID);
    cmpr_cert_rec_clear(&c);
    rp = send_mac(rr_for(cert, 8));
    expect_fail(rp, CMPR_BODY_RP, CMPR_FI_BAD_REQUEST);
    CMPR_PKIMESSAGE_free(rp);
    X509_free(cert);
    CMPR_PKIMESSAGE_free(ip);
}

/* An ir (MAC, implicit confirm) for cn answered by a second core: a CA
 * (ca_key, ca) whose answers are signed by a separate CMP signer (signer_cert
 * holds sc, then sc_issuer when not NULL), mac_responses = no */
static CMPR_PKIMESSAGE *
ir_at_ca_with_signer(EVP_PKEY *ca_key2, X509 *ca2, EVP_PKEY *sk, X509 *sc, X509 *sc_issuer, const char *cn)
{
    char d2[64], path[256], *err = NULL;
    struct cmpr_conf *conf2 = NULL;
    struct cmpr_core *core2 = NULL, *saved = core;
    CMPR_PKIMESSAGE *rsp;
    FILE *f;

    snprintf(d2, sizeof(d2), "/tmp/cmpr-core2-XXXXXX");
    assert_non_null(mkdtemp(d2));
    snprintf(path, sizeof(path), "%s/ca.key", d2);
    write_pem_key(path, ca_key2);
    snprintf(path, sizeof(path), "%s/ca.pem", d2);
    write_pem_cert(path, ca2);
    snprintf(path, sizeof(path), "%s/s.key", d2);
    write_pem_key(path, sk);
    snprintf(path, sizeof(path), "%s/s.pem", d2);
    f = fopen(path, "w");
    assert_true(PEM_write_X509(f, sc) && (sc_issuer == NULL || PEM_write_X509(f, sc_issuer)));
    fclose(f);
    snprintf(path, sizeof(path), "%s/cmprouter.conf", d2);
    f = fopen(path, "w");
    fprintf(f, "[router]\nlog_level = error\n[ca c]\nkey = ca.key\ncert = ca.pem\n"
               "signer_cert = s.pem\nsigner_key = s.key\nmac_responses = no\n"
               "[profile p]\n[client ee]\nreference = ee-ref\nsecret = pass:" SECRET "\n");
    fclose(f);
    if (cmpr_conf_load(path, &conf2, &err) != CMPR_OK || cmpr_core_new(conf2, &core2, &err) != CMPR_OK)
        fail_msg("%s", err);
    core = core2;
    rsp = send_mac(ee_certreq(CMPR_BODY_IR, cn, 1));
    core = saved;
    cmpr_core_free(core2);
    cmpr_conf_free(conf2);
    tu_rmrf(d2);
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
    return rsp;
}

/* An Ed25519 CA whose answers are signed by a separate CMP signer (cmcCA) */
static void
test_ed25519_ca_with_separate_signer(void **state)
{
    EVP_PKEY *k = tu_key("ed25519"), *sk = tu_key("ec:P-256");
    X509 *c = tu_cert(k, "Ed CA", NULL, NULL, 1), *sc = tu_cert(sk, "CMP Signer", k, c, 0);
    CMPR_PKIMESSAGE *rsp = ir_at_ca_with_signer(k, c, sk, sc, NULL, "ee-ed");
    (void)state;

    /* mac_responses = no: signed, by the CMP signer, which goes first in extraCerts */
    assert_int_equal(X509_NAME_cmp(cmpr_hdr_get0_sender_name(rsp->header), X509_get_subject_name(sc)), 0);
    assert_int_equal(cmpr_verify_sig(rsp, sk), CMPR_OK);
    assert_int_equal(X509_cmp(sk_X509_value(rsp->extraCerts, 0), sc), 0);
    /* the certificate itself is signed by the Ed25519 CA key */
    assert_int_equal(X509_verify(issued_cert(rsp), k), 1);
    CMPR_PKIMESSAGE_free(rsp);
    X509_free(c);
    X509_free(sc);
    EVP_PKEY_free(k);
    EVP_PKEY_free(sk);
}

/* RFC 9483 3.3: a signer from another hierarchy sends its own chain first
 * (signer_cert holds the signer and its issuers), then the CA's */
static void
test_signer_chain(void **state)
{
    EVP_PKEY *rk = tu_key("ec:P-256"), *ik = tu_key("ec:P-256"), *sk = tu_key("ec:P-256");
    X509 *root = tu_cert(rk, "Signer Root", NULL, NULL, 1), *sub = tu_cert(ik, "Signer Sub", rk, root, 1);
    X509 *sc = tu_cert(sk, "CMP Signer", ik, sub, 0);
    X509_STORE *trust = X509_STORE_new();
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    CMPR_PKIMESSAGE *rsp = ir_at_ca_with_signer(ca_key, ca_cert, sk, sc, sub, "ee-chain");
    (void)state;

    assert_int_equal(cmpr_verify_sig(rsp, sk), CMPR_OK);
    /* extraCerts: the signer, its issuer, then the CA */
    assert_true(sk_X509_num(rsp->extraCerts) >= 3);
    assert_int_equal(X509_cmp(sk_X509_value(rsp->extraCerts, 0), sc), 0);
    assert_int_equal(X509_cmp(sk_X509_value(rsp->extraCerts, 1), sub), 0);
    assert_int_equal(X509_cmp(sk_X509_value(rsp->extraCerts, 2), ca_cert), 0);
    /* a client trusting the signer's root builds the chain from extraCerts alone */
    X509_STORE_add_cert(trust, root);
    assert_true(X509_STORE_CTX_init(vctx, trust, sk_X509_value(rsp->extraCerts, 0), rsp->extraCerts));
    assert_int_equal(X509_verify_cert(vctx), 1);
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(trust);
    CMPR_PKIMESSAGE_free(rsp);
    X509_free(root);
    X509_free(sub);
    X509_free(sc);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(ik);
    EVP_PKEY_free(sk);
}

/* an ir that archives its private key (pkiArchiveOptions) */
static CMPR_PKIMESSAGE *
ee_archiving_ir(const char *cn, EVP_PKEY *k, EVP_PKEY *archived)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_IR, 3);
    CMPR_CERTREQMSG *crm = CMPR_CERTREQMSG_new();
    X509_NAME *n = X509_NAME_new();
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(archived);
    unsigned char *p8der = NULL, *optder = NULL;
    const unsigned char *p;
    int p8len = i2d_PKCS8_PRIV_KEY_INFO(p8, &p8der), optlen;
    CMPR_PKIARCHIVEOPTIONS *opt = CMPR_PKIARCHIVEOPTIONS_new();
    CMPR_ATAV *ctl = CMPR_ATAV_new();

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    ASN1_INTEGER_set(crm->certReq->certReqId, 0);
    assert_int_equal(cmpr_tmpl_fill(crm->certReq->certTemplate, k, n, NULL, NULL), CMPR_OK);
    opt->type = CMPR_ARCHIVE_ENCRYPTEDPRIVKEY;
    opt->value.encryptedPrivKey = CMPR_ENCRYPTEDKEY_new();
    opt->value.encryptedPrivKey->type = CMPR_ENCRYPTEDKEY_ENVELOPEDDATA;
    opt->value.encryptedPrivKey->value.envelopedData = tu_envdata(p8der, (size_t)p8len, enc_cert);
    optlen = i2d_CMPR_PKIARCHIVEOPTIONS(opt, &optder);
    p = optder;
    ctl->type = cmpr_regctrl_obj(CMPR_REGCTRL_PKIARCHIVEOPTIONS);
    ASN1_TYPE_free(ctl->value);
    ctl->value = d2i_ASN1_TYPE(NULL, &p, optlen);
    crm->certReq->controls = sk_CMPR_ATAV_new_null();
    sk_CMPR_ATAV_push(crm->certReq->controls, ctl);
    assert_int_equal(cmpr_crm_create_pop_sig(crm, k, NULL), CMPR_OK);
    sk_CMPR_CERTREQMSG_push(m->body->value.ir, crm);
    cmpr_hdr_push0_geninfo(m->header, cmpr_itav_new_implicit_confirm());
    OPENSSL_clear_free(p8der, (size_t)p8len);
    OPENSSL_free(optder);
    PKCS8_PRIV_KEY_INFO_free(p8);
    CMPR_PKIARCHIVEOPTIONS_free(opt);
    X509_NAME_free(n);
    return m;
}

static CMPR_PKIMESSAGE *
krr_for(const char *cn, long pvno)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_KRR, pvno);
    CMPR_CERTREQMSG *crm = CMPR_CERTREQMSG_new();
    X509_NAME *n = X509_NAME_new();

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    ASN1_INTEGER_set(crm->certReq->certReqId, 0);
    cmpr_tmpl_fill(crm->certReq->certTemplate, NULL, n, NULL, NULL);
    sk_CMPR_CERTREQMSG_push(m->body->value.krr, crm);
    X509_NAME_free(n);
    return m;
}

/* pkiArchiveOptions at enrollment, krr -> krp with the key history
 * (RFC 9810 5.2.6, 5.3.7-8), returned encrypted with the client's secret */
static void
test_key_archive_and_recovery(void **state)
{
    EVP_PKEY *k = tu_key("ec:P-256"), *other = tu_key("ec:P-256"), *got;
    CMPR_PKIMESSAGE *ip, *krp, *rsp;
    CMPR_CERTIFIEDKEYPAIR *kp;
    CMS_ContentInfo *cms;
    BIO *out = BIO_new(BIO_s_mem());
    char *data;
    long dlen;
    const unsigned char *p;
    (void)state;

    /* an archived key that is not the certified key: badPOP */
    rsp = send_mac(ee_archiving_ir("ee-arch", k, other));
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_BAD_POP);
    CMPR_PKIMESSAGE_free(rsp);

    ip = send_mac(ee_archiving_ir("ee-arch", k, k));
    assert_int_equal(cmpr_pkisi_status(status_of(ip)), CMPR_STATUS_ACCEPTED);
    krp = send_mac(krr_for("ee-arch", 3));
    assert_int_equal(cmpr_msg_bodytype(krp), CMPR_BODY_KRP);
    assert_int_equal(cmpr_pkisi_status(krp->body->value.krp->status), CMPR_STATUS_ACCEPTED);
    assert_int_equal(sk_CMPR_CERTIFIEDKEYPAIR_num(krp->body->value.krp->keyPairHist), 1);
    kp = sk_CMPR_CERTIFIEDKEYPAIR_value(krp->body->value.krp->keyPairHist, 0);
    assert_int_equal(X509_cmp(kp->certOrEncCert->value.certificate, issued_cert(ip)), 0);
    assert_int_equal(kp->privateKey->type, CMPR_ENCRYPTEDKEY_ENVELOPEDDATA);
    /* the client opens it with its shared secret (password recipient) */
    cms = cmpr_envdata_to_cms(kp->privateKey->value.envelopedData);
    assert_non_null(cms);
    assert_int_equal(CMS_decrypt_set1_password(cms, (unsigned char *)SECRET, strlen(SECRET)), 1);
    assert_int_equal(CMS_decrypt(cms, NULL, NULL, NULL, out, 0), 1);
    dlen = BIO_get_mem_data(out, &data);
    p = (const unsigned char *)data;
    got = d2i_AutoPrivateKey(NULL, &p, dlen);
    assert_non_null(got);
    assert_int_equal(EVP_PKEY_eq(got, k), 1);
    EVP_PKEY_free(got);
    CMS_ContentInfo_free(cms);
    CMPR_PKIMESSAGE_free(krp);

    /* EnvelopedData needs pvno 3 */
    rsp = send_mac(krr_for("ee-arch", 2));
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_UNSUPPORTED_VERSION);
    CMPR_PKIMESSAGE_free(rsp);
    /* another client gets nothing */
    rsp = krr_for("ee-arch", 3);
    mac(rsp, "ra-ref", RA_SECRET);
    rsp = send_msg(rsp);
    assert_int_equal(cmpr_pkisi_status(rsp->body->value.krp->status), CMPR_STATUS_REJECTION);
    assert_int_equal(cmpr_pkisi_failinfo(rsp->body->value.krp->status), 1u << CMPR_FI_BAD_CERT_ID);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(ip);
    BIO_free(out);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static CMPR_PKIMESSAGE *
nested_of(CMPR_PKIMESSAGE **inner, int n)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_NESTED, 2);

    for (int i = 0; i < n; i++)
        sk_CMPR_PKIMESSAGE_push(m->body->value.nested, inner[i]);
    return m;
}

/* RFC 9483 5.2.2: the CA accepts requests under an RA's added protection
 * (answered un-nested) and batches (answered in one nested message) */
static void
test_nested_from_ra(void **state)
{
    CMPR_PKIMESSAGE *inner[3], *outer, *rsp;
    struct cmpr_verify_opts vo = { 0, NULL, NULL };
    (void)state;

    /* added protection: one EE request, wrapped and signed by the RA */
    inner[0] = ee_certreq(CMPR_BODY_IR, "ee-n1", 1);
    mac(inner[0], "ee-ref", SECRET);
    outer = nested_of(inner, 1);
    assert_int_equal(cmpr_protect_sig(outer, ra_key, NULL, 0, ra_cert, NULL), CMPR_OK);
    rsp = send_msg(outer);
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
    /* the un-nested answer is protected for the end entity */
    assert_int_equal(cmpr_verify_mac(rsp, (const unsigned char *)SECRET, strlen(SECRET), &vo), CMPR_OK);
    CMPR_PKIMESSAGE_free(rsp);

    /* a batch of three from the MAC-authenticated RA client */
    for (int i = 0; i < 3; i++) {
        char cn[16];

        snprintf(cn, sizeof(cn), "ee-b%d", i);
        inner[i] = ee_certreq(CMPR_BODY_IR, cn, 1);
        mac(inner[i], "ee-ref", i == 2 ? "wrong" : SECRET);
    }
    outer = nested_of(inner, 3);
    mac(outer, "ra-ref", RA_SECRET);
    rsp = send_msg(outer);
    assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_NESTED);
    assert_int_equal(sk_CMPR_PKIMESSAGE_num(rsp->body->value.nested), 3);
    assert_int_equal(cmpr_msg_bodytype(sk_CMPR_PKIMESSAGE_value(rsp->body->value.nested, 0)), CMPR_BODY_IP);
    /* each inner request is judged on its own: the third had a wrong MAC */
    expect_fail(sk_CMPR_PKIMESSAGE_value(rsp->body->value.nested, 2), CMPR_BODY_ERROR,
                CMPR_FI_BAD_MESSAGE_CHECK);
    assert_int_equal(cmpr_verify_mac(rsp, (const unsigned char *)RA_SECRET, strlen(RA_SECRET), &vo), CMPR_OK);
    CMPR_PKIMESSAGE_free(rsp);

    /* an end entity may not nest */
    inner[0] = ee_certreq(CMPR_BODY_IR, "ee-n2", 1);
    mac(inner[0], "ee-ref", SECRET);
    outer = nested_of(inner, 1);
    rsp = send_mac(outer);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
}

/* housekeeping rewrites a missing or half-expired CRL */
static void
test_crl_refresh(void **state)
{
    char path[256];
    (void)state;

    snprintf(path, sizeof(path), "%s/unit.crl", dir);
    unlink(path);
    assert_int_not_equal(access(path, F_OK), 0);
    (void)cmpr_core_expire(core, time(NULL));
    assert_int_equal(access(path, F_OK), 0);
}

/* CRL files written by several workers at once (an rr on each): the
 * file published last is whole (it parses and verifies) and lists every
 * revocation made before it was written. Each writer had the same
 * temporary name: two writing at once made a file of both. */
#define CRL_WRITERS 4
#define CRL_EACH 12

static void *
crl_writer_main(void *arg)
{
    struct cmpr_store *st = cmpr_core_store(core);
    int k = (int)(intptr_t)arg;

    for (int i = 0; i < CRL_EACH; i++) {
        unsigned char sn[2] = { 0x7e, (unsigned char)(k * CRL_EACH + i) };

        if (st->ops->cert_set_status(st, sn, 2, CMPR_CERT_REVOKED, (int64_t)time(NULL), 1 + i % 5, 1) != CMPR_OK
                || cmpr_ca_write_crl(core->cas[0], st, NULL) != CMPR_OK)
            return (void *)1;
    }
    return NULL;
}

static void
test_crl_writers_at_once(void **state)
{
    struct cmpr_store *st = cmpr_core_store(core);
    pthread_t th[CRL_WRITERS];
    unsigned char *der = NULL;
    int derlen = i2d_X509(ca_cert, &der), listed = 0;
    char path[256];
    X509_CRL *crl;
    FILE *f;
    (void)state;

    assert_true(derlen > 0);
    for (int n = 0; n < CRL_WRITERS * CRL_EACH; n++) {
        struct cmpr_cert_rec c;

        memset(&c, 0, sizeof(c));
        c.serial[0] = 0x7e;
        c.serial[1] = (unsigned char)n;
        c.serial_len = 2;
        snprintf(c.issuer, sizeof(c.issuer), "CN=Unit CA");
        snprintf(c.subject, sizeof(c.subject), "CN=crl-%d", n);
        c.not_before = (int64_t)time(NULL);
        c.not_after = c.not_before + 86400;
        c.reason = -1;
        c.der = der;
        c.der_len = (size_t)derlen;
        assert_int_equal(st->ops->cert_put(st, &c), CMPR_OK);
    }
    OPENSSL_free(der);
    for (intptr_t k = 0; k < CRL_WRITERS; k++)
        assert_int_equal(pthread_create(&th[k], NULL, crl_writer_main, (void *)k), 0);
    for (int k = 0; k < CRL_WRITERS; k++) {
        void *r = NULL;

        pthread_join(th[k], &r);
        assert_null(r);
    }
    snprintf(path, sizeof(path), "%s/unit.crl", dir);
    assert_non_null(f = fopen(path, "rb"));
    crl = d2i_X509_CRL_fp(f, NULL);
    fclose(f);
    if (crl == NULL)
        fail_msg("the CRL published last does not parse: two writers made one file");
    assert_int_equal(X509_CRL_verify(crl, ca_key), 1);
    for (int i = 0; i < sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)); i++) {
        const ASN1_INTEGER *sn = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(X509_CRL_get_REVOKED(crl), i));

        listed += ASN1_INTEGER_get(sn) >= 0x7e00 && ASN1_INTEGER_get(sn) < 0x7e00 + CRL_WRITERS * CRL_EACH;
    }
    X509_CRL_free(crl);
    if (listed != CRL_WRITERS * CRL_EACH)
        fail_msg("the CRL published last lists %d of the %d revocations made before it", listed,
                 CRL_WRITERS * CRL_EACH);
}

static int
cert_status(X509 *x)
{
    struct cmpr_store *st = cmpr_core_store(core);
    struct cmpr_cert_rec c;
    unsigned char sn[64];
    size_t snlen;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    int status;

    snlen = (size_t)BN_bn2bin(bn, sn);
    BN_free(bn);
    assert_int_equal(st->ops->cert_get(st, sn, snlen, &c), CMPR_OK);
    status = c.status * 100 + (c.reason < 0 ? 99 : c.reason);
    cmpr_cert_rec_clear(&c);
    return status;
}

/* kur signed with the certificate being updated; with revoke_replaced the
 * old certificate is superseded once the new one is confirmed */
static void
test_kur_revokes_replaced(void **state)
{
    EVP_PKEY *k2 = tu_key("ec:P-256");
    CMPR_PKIMESSAGE *ip = send_mac(ee_certreq(CMPR_BODY_IR, "ee-kur", 1)), *req, *kup;
    X509 *old = X509_dup(issued_cert(ip));
    (void)state;

    req = ee_certreq_key(CMPR_BODY_KUR, "ee-kur", 1, k2);
    assert_int_equal(cmpr_protect_sig(req, ee_key, NULL, 0, old, NULL), CMPR_OK);
    kup = send_msg(req);
    assert_int_equal(cmpr_msg_bodytype(kup), CMPR_BODY_KUP);
    assert_int_equal(cmpr_pkisi_status(status_of(kup)), CMPR_STATUS_ACCEPTED);
    assert_null(cmpr_msg_get0_rep(kup)->caPubs);
    assert_int_equal(cert_status(old), CMPR_CERT_REVOKED * 100 + 4);        /* superseded */
    assert_int_equal(cert_status(issued_cert(kup)), CMPR_CERT_VALID * 100 + 99);
    /* the revoked certificate can no longer update itself */
    req = ee_certreq_key(CMPR_BODY_KUR, "ee-kur", 1, k2);
    assert_int_equal(cmpr_protect_sig(req, ee_key, NULL, 0, old, NULL), CMPR_OK);
    CMPR_PKIMESSAGE_free(kup);
    kup = send_msg(req);
    expect_fail(kup, CMPR_BODY_KUP, CMPR_FI_CERT_REVOKED);
    CMPR_PKIMESSAGE_free(kup);
    X509_free(old);
    CMPR_PKIMESSAGE_free(ip);
    EVP_PKEY_free(k2);
}

/* [client] enroll, renew and revoke, apart from ra = yes (cmprouter.conf(5)):
 * a client renews and revokes its own certificates and their successors,
 * another client does not; revoke = profiles covers the profiles' certificates;
 * enroll = no and revoke/renew = none refuse */
static CMPR_PKIMESSAGE *
kur_naming(X509 *old, EVP_PKEY *key)
{
    struct cmpr_ee_certreq kr;
    X509_NAME *n = X509_NAME_new();
    CMPR_PKIMESSAGE *m;

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"ee-rights", -1, -1, 0);
    memset(&kr, 0, sizeof(kr));
    kr.body = CMPR_BODY_KUR;
    kr.key = key;
    kr.subject = n;
    kr.oldcert = old;
    kr.implicit_confirm = 1;
    m = cmpr_ee_new_certreq(&kr);
    X509_NAME_free(n);
    return m;
}

static X509 *
enrolled(CMPR_PKIMESSAGE *rsp, int body)
{
    X509 *x;

    if (cmpr_msg_bodytype(rsp) != body || cmpr_pkisi_status(status_of(rsp)) != CMPR_STATUS_ACCEPTED)
        fail_msg("expected %s accepted, got %s", cmpr_body_name(body), cmpr_body_name(cmpr_msg_bodytype(rsp)));
    x = X509_dup(issued_cert(rsp));
    CMPR_PKIMESSAGE_free(rsp);
    return x;
}

static void
test_client_rights(void **state)
{
    EVP_PKEY *k2 = tu_key("ec:P-256"), *k3 = tu_key("ec:P-256"), *k4 = tu_key("ec:P-256");
    X509 *a = enrolled(send_mac(ee_certreq(CMPR_BODY_IR, "ee-rights", 1)), CMPR_BODY_IP), *b, *c, *d, *e, *f;
    CMPR_PKIMESSAGE *req, *rsp;
    char name[256];
    (void)state;

    /* the holder updates A to B, signing with A */
    req = ee_certreq_key(CMPR_BODY_KUR, "ee-rights", 1, k2);
    assert_int_equal(cmpr_protect_sig(req, ee_key, NULL, 0, a, NULL), CMPR_OK);
    b = enrolled(send_msg(req), CMPR_BODY_KUP);
    /* another client may neither revoke nor renew B */
    req = rr_for(b, 1);
    mac(req, "once", "once-secret");
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_RP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    req = kur_naming(b, k3);
    mac(req, "once", "once-secret");
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_KUP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    /* the client that enrolled A renews B, its successor (MAC, oldCertID) */
    c = enrolled(send_mac(kur_naming(b, k3)), CMPR_BODY_KUP);
    cmpr_name_text(X509_get_subject_name(c), name, sizeof(name));
    assert_string_equal(name, "CN=ee-rights");
    /* a MAC-protected kur must name the certificate */
    rsp = send_mac(kur_naming(NULL, k4));
    expect_fail(rsp, CMPR_BODY_KUP, CMPR_FI_BAD_CERT_ID);
    CMPR_PKIMESSAGE_free(rsp);
    /* the holder of C updates it to D; the client of A revokes D, three generations on */
    req = ee_certreq_key(CMPR_BODY_KUR, "ee-rights", 1, k4);
    assert_int_equal(cmpr_protect_sig(req, k3, NULL, 0, c, NULL), CMPR_OK);
    d = enrolled(send_msg(req), CMPR_BODY_KUP);
    rsp = send_mac(rr_for(d, 1));
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(rsp);
    /* helpdesk: enroll = no; revoke = profiles (ee, anykey) */
    req = ee_certreq(CMPR_BODY_IR, "ee-helpdesk", 1);
    mac(req, "helpdesk", "helpdesk-secret");
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    req = ee_certreq(CMPR_BODY_IR, "ee-subca", 1);
    cmpr_hdr_push0_geninfo(req->header, cmpr_itav_new_cert_profile((const char *const[]){ "subca" }, 1));
    e = enrolled(send_mac(req), CMPR_BODY_IP);
    req = ee_certreq(CMPR_BODY_IR, "ee-anykey", 1);
    cmpr_hdr_push0_geninfo(req->header, cmpr_itav_new_cert_profile((const char *const[]){ "anykey" }, 1));
    f = enrolled(send_mac(req), CMPR_BODY_IP);
    req = rr_for(e, 1);
    mac(req, "helpdesk", "helpdesk-secret");
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_RP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    req = rr_for(f, 1);
    mac(req, "helpdesk", "helpdesk-secret");
    rsp = send_msg(req);
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(rsp);
    X509_free(e);
    X509_free(f);
    /* revoke = none, renew = none: not even its own */
    req = ee_certreq(CMPR_BODY_IR, "ee-norevoke", 1);
    mac(req, "norevoke", "norevoke-secret");
    e = enrolled(send_msg(req), CMPR_BODY_IP);
    req = rr_for(e, 1);
    mac(req, "norevoke", "norevoke-secret");
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_RP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    req = kur_naming(e, k2);
    mac(req, "norevoke", "norevoke-secret");
    rsp = send_msg(req);
    expect_fail(rsp, CMPR_BODY_KUP, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    X509_free(e);
    X509_free(a);
    X509_free(b);
    X509_free(c);
    X509_free(d);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(k3);
    EVP_PKEY_free(k4);
}

/* RFC 9483 4.1.6, central key generation by profile: required, allowed,
 * not allowed; the key comes back for the client's secret, signed by the
 * CA; the answer is not kept, so a retransmission is a replay */
static CMPR_PKIMESSAGE *
central_ir(const char *cn, const char *profile, const char *type)
{
    X509_NAME *n = X509_NAME_new();
    struct cmpr_ee_certreq r = { CMPR_BODY_IR, ee_key, n, NULL, NULL, profile, 1, 0, NULL, type };
    CMPR_PKIMESSAGE *m;

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    m = cmpr_ee_new_certreq(&r);
    X509_NAME_free(n);
    mac(m, "ee-ref", SECRET);
    return m;
}

static void
test_central_keygen(void **state)
{
    CMPR_PKIMESSAGE *req = central_ir("ee-cgen", "cgen", ""), *rsp;
    struct cmpr_ee_result res;
    X509_STORE *trust = X509_STORE_new();
    unsigned char *der = NULL, *out = NULL;
    size_t len = 0, outlen = 0;
    char why[300];
    EVP_PKEY *k;
    (void)state;

    X509_STORE_add_cert(trust, ca_cert);
    assert_int_equal(cmpr_msg_encode(req, &der, &len), CMPR_OK);
    rsp = send_msg(req);
    assert_int_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    assert_int_equal(res.status, CMPR_STATUS_ACCEPTED);
    assert_non_null(res.central_key);
    k = cmpr_keygen_open(res.central_key, NULL, NULL, (const unsigned char *)SECRET, strlen(SECRET), trust, NULL,
                         why, sizeof(why));
    if (k == NULL)
        fail_msg("%s", why);
    assert_int_equal(EVP_PKEY_eq(k, X509_get0_pubkey(res.cert)), 1);
    assert_true(EVP_PKEY_is_a(k, "EC"));
    EVP_PKEY_free(k);
    CMPR_PKIMESSAGE_free(rsp);
    /* the answer with the key is not kept: the same request again is a replay */
    assert_int_equal(tu_handle(core, &info, der, len, &out, &outlen), CMPR_OK);
    assert_int_equal(cmpr_msg_decode(out, outlen, &rsp, NULL), CMPR_OK);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_SENDER_NONCE);
    CMPR_PKIMESSAGE_free(rsp);
    free(out);
    OPENSSL_free(der);
    /* a key of the type asked for */
    rsp = send_msg(central_ir("ee-cgen2", "cgen", "ec:P-384"));
    assert_int_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(res.cert)), 384);
    CMPR_PKIMESSAGE_free(rsp);
    /* required: a request with its own key is refused */
    req = ee_certreq(CMPR_BODY_IR, "ee-cgen3", 1);
    cmpr_hdr_push0_geninfo(req->header, cmpr_itav_new_cert_profile((const char *const[]){ "cgen" }, 1));
    rsp = send_mac(req);
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_BAD_CERT_TEMPLATE);
    CMPR_PKIMESSAGE_free(rsp);
    /* not allowed (profile ee), and not with approval */
    rsp = send_msg(central_ir("ee-cgen4", "ee", ""));
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_BAD_CERT_TEMPLATE);
    CMPR_PKIMESSAGE_free(rsp);
    rsp = send_msg(central_ir("ee-cgen5", "cgen-manual", ""));
    expect_fail(rsp, CMPR_BODY_IP, CMPR_FI_BAD_REQUEST);
    CMPR_PKIMESSAGE_free(rsp);
    X509_STORE_free(trust);
}

/* RFC 9483 6.1: the HTTP operation label must fit the body */
static void
test_operation_label(void **state)
{
    struct tu_info inf = { "http", "unit", NULL, "revocation", NULL, 0, NULL };
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_IR, "ee-op", 1), *rsp;
    (void)state;

    mac(req, "ee-ref", SECRET);
    rsp = send_msg_info(req, &inf);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_BAD_REQUEST);
    CMPR_PKIMESSAGE_free(rsp);
    inf.operation = "initialization";
    req = ee_certreq(CMPR_BODY_IR, "ee-op", 1);
    mac(req, "ee-ref", SECRET);
    rsp = send_msg_info(req, &inf);
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(rsp);
}

/* [client] tls_subject: the client must come over TLS with that certificate */
static void
test_tls_binding(void **state)
{
    struct tu_info inf = { "https", "unit", NULL, NULL, NULL, 0, NULL };
    CMPR_PKIMESSAGE *req, *rsp;
    (void)state;

    req = ee_certreq(CMPR_BODY_IR, "bound-1", 1);
    mac(req, "bound", "bound-secret");
    rsp = send_msg_info(req, &inf);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    inf.tls_subject = "CN=someone-else";
    req = ee_certreq(CMPR_BODY_IR, "bound-1", 1);
    mac(req, "bound", "bound-secret");
    rsp = send_msg_info(req, &inf);
    expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_NOT_AUTHORIZED);
    CMPR_PKIMESSAGE_free(rsp);
    inf.tls_subject = "CN=bound-device";
    req = ee_certreq(CMPR_BODY_IR, "bound-1", 1);
    mac(req, "bound", "bound-secret");
    rsp = send_msg_info(req, &inf);
    assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(rsp);
}

/* ---------------- restart and concurrency ---------------- */

static void
test_restart_keeps_state(void **state)
{
    CMPR_PKIMESSAGE *req = ee_certreq(CMPR_BODY_CR, "ee-r", 0), *pend, *issued, *pc, *poll, *fin;
    X509 *cert;
    (void)state;

    cmpr_hdr_push0_geninfo(req->header, cmpr_itav_new_cert_profile((const char *const[]){ "manual" }, 1));
    pend = send_mac(req);
    issued = send_mac(ee_certreq(CMPR_BODY_IR, "ee-r2", 0));
    cert = X509_dup(issued_cert(issued));
    pc = send_mac(rr_for(cert, 0));
    CMPR_PKIMESSAGE_free(pc);
    /* restart: close the store, reopen, continue */
    stop_core();
    start_core();
    /* the unconfirmed issuance continues... */
    pc = send_mac(certconf_for(issued, 0, 1));
    assert_int_equal(cmpr_msg_bodytype(pc), CMPR_BODY_PKICONF);
    CMPR_PKIMESSAGE_free(pc);
    /* ...the revocation stays... */
    pc = send_mac(rr_for(cert, 0));
    expect_fail(pc, CMPR_BODY_RP, CMPR_FI_CERT_REVOKED);
    CMPR_PKIMESSAGE_free(pc);
    /* ...and the pending approval can be approved and polled */
    assert_int_equal(cmpr_core_approve(core, ASN1_STRING_get0_data(pend->header->transactionID),
                                       (size_t)ASN1_STRING_length(pend->header->transactionID)), CMPR_OK);
    poll = followup(CMPR_BODY_POLLREQ, pend);
    {
        CMPR_POLLREQ *p = CMPR_POLLREQ_new();

        ASN1_INTEGER_set(p->certReqId, 0);
        sk_CMPR_POLLREQ_push(poll->body->value.pollReq, p);
    }
    fin = send_mac(poll);
    assert_int_equal(cmpr_pkisi_status(status_of(fin)), CMPR_STATUS_ACCEPTED);
    CMPR_PKIMESSAGE_free(fin);
    X509_free(cert);
    CMPR_PKIMESSAGE_free(issued);
    CMPR_PKIMESSAGE_free(pend);
}

struct worker {
    int id;
    int ok;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    char cn[32];
    CMPR_PKIMESSAGE *req, *rsp, *pc;
    unsigned char *der = NULL, *out = NULL;
    size_t len, outlen;

    snprintf(cn, sizeof(cn), "ee-thread-%d", w->id);
    req = ee_certreq(CMPR_BODY_IR, cn, 0);
    mac(req, "ee-ref", SECRET);
    /* no cmocka asserts on threads: count outcomes */
    if (cmpr_msg_encode(req, &der, &len) != CMPR_OK
            || tu_handle(core, &info, der, len, &out, &outlen) != CMPR_OK
            || cmpr_msg_decode(out, outlen, &rsp, NULL) != CMPR_OK)
        goto out;
    OPENSSL_free(der);
    der = NULL;
    free(out);
    out = NULL;
    if (cmpr_msg_bodytype(rsp) == CMPR_BODY_IP
            && cmpr_pkisi_status(status_of(rsp)) == CMPR_STATUS_ACCEPTED) {
        X509 *x = issued_cert(rsp);
        char got[64] = "";

        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, got, sizeof(got));
        if (strcmp(got, cn) == 0
                && ASN1_OCTET_STRING_cmp(rsp->header->transactionID, req->header->transactionID) == 0) {
            CMPR_PKIMESSAGE *cc = certconf_for(rsp, 0, 1);

            mac(cc, "ee-ref", SECRET);
            if (cmpr_msg_encode(cc, &der, &len) == CMPR_OK
                    && tu_handle(core, &info, der, len, &out, &outlen) == CMPR_OK
                    && cmpr_msg_decode(out, outlen, &pc, NULL) == CMPR_OK) {
                w->ok = cmpr_msg_bodytype(pc) == CMPR_BODY_PKICONF;
                CMPR_PKIMESSAGE_free(pc);
            }
            CMPR_PKIMESSAGE_free(cc);
        }
    }
    CMPR_PKIMESSAGE_free(rsp);
 out:
    OPENSSL_free(der);
    free(out);
    CMPR_PKIMESSAGE_free(req);
    return NULL;
}

/* 32 independent transactions at once give 32 correct results */
static void
test_concurrent_transactions(void **state)
{
    pthread_t th[32];
    struct worker w[32];
    (void)state;

    for (int i = 0; i < 32; i++) {
        w[i].id = i;
        w[i].ok = 0;
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 32; i++) {
        pthread_join(th[i], NULL);
        if (!w[i].ok)
            fail_msg("transaction %d failed", i);
    }
}

/* ---------------- answers on a loop ---------------- */

/* what another connection finds of a transaction when its answer leaves */
struct committed {
    char db[300];
    unsigned char tid[64];
    size_t tid_len;
    int rows;
};

static void
count_committed(void *arg)
{
    struct committed *c = arg;
    sqlite3 *h = NULL;
    sqlite3_stmt *q = NULL;

    c->rows = -1;
    if (sqlite3_open_v2(c->db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
            && sqlite3_prepare_v2(h, "SELECT count(*) FROM txn WHERE tid = ?", -1, &q, NULL) == SQLITE_OK
            && sqlite3_bind_blob(q, 1, c->tid, (int)c->tid_len, SQLITE_STATIC) == SQLITE_OK
            && sqlite3_step(q) == SQLITE_ROW)
        c->rows = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(h);
}

static CMPR_PKIMESSAGE *
send_on_loop(uv_loop_t *loop, CMPR_PKIMESSAGE *m, struct committed *c)
{
    unsigned char *der = NULL, *out = NULL;
    size_t len, outlen;
    CMPR_PKIMESSAGE *rsp = NULL;

    mac(m, "ee-ref", SECRET);
    c->tid_len = (size_t)ASN1_STRING_length(m->header->transactionID);
    assert_true(c->tid_len <= sizeof(c->tid));
    memcpy(c->tid, ASN1_STRING_get0_data(m->header->transactionID), c->tid_len);
    c->rows = -1;
    assert_int_equal(cmpr_msg_encode(m, &der, &len), CMPR_OK);
    CMPR_PKIMESSAGE_free(m);
    assert_int_equal(tu_handle_on(core, loop, &info, der, len, count_committed, c, &out, &outlen), CMPR_OK);
    OPENSSL_free(der);
    assert_int_equal(cmpr_msg_decode(out, outlen, &rsp, NULL), CMPR_OK);
    free(out);
    return rsp;
}

/* What an answer says is in the store before it leaves, also when its
 * worker does not wait for the store's sync (an envelope answered on a
 * loop, as over HTTP and TCP: the syncer lets it go; at low load the worker
 * syncs itself): at the moment the answer is handed over, another
 * connection finds the transaction committed. When the sync fails, the
 * answer is systemUnavail, never the certificate (RFC 9810 5.2.3:
 * systemUnavail, the service is not there). syncer: 1 makes every answer
 * go through the syncer thread (as if a worker were syncing already). */
static void
answers_on_loop(uv_loop_t *loop, int syncer)
{
    struct committed c;
    CMPR_PKIMESSAGE *rsp;

    snprintf(c.db, sizeof(c.db), "%s/cmprouter.db", dir);
    for (int i = 0; i < 10; i++) {
        pthread_mutex_lock(&core->sync_mu);
        core->sync_inline = syncer;
        pthread_mutex_unlock(&core->sync_mu);
        rsp = send_on_loop(loop, ee_certreq(CMPR_BODY_IR, "ee-loop", 1), &c);
        assert_int_equal(cmpr_msg_bodytype(rsp), CMPR_BODY_IP);
        assert_int_equal(cmpr_pkisi_status(status_of(rsp)), CMPR_STATUS_ACCEPTED);
        if (c.rows != 1)
            fail_msg("answer %d (%s) left with its transaction %s in the store", i, syncer ? "syncer" : "worker",
                     c.rows == 0 ? "not yet committed" : "not readable");
        CMPR_PKIMESSAGE_free(rsp);
    }
    pthread_mutex_lock(&core->sync_mu);
    core->sync_inline = 0;
    pthread_mutex_unlock(&core->sync_mu);
}

static void
test_answer_waits_for_sync(void **state)
{
    uv_loop_t loop;
    struct committed c;
    CMPR_PKIMESSAGE *rsp;
    int pfd[2];
    (void)state;

    stop_core();
    start_core();
    assert_int_equal(uv_loop_init(&loop), 0);
    answers_on_loop(&loop, 1);
    answers_on_loop(&loop, 0);
    /* the WAL's fdatasync fails from now on (a pipe: EINVAL) */
    snprintf(c.db, sizeof(c.db), "%s/cmprouter.db", dir);
    tu_break_wal_sync(c.db, pfd);
    for (int syncer = 1; syncer >= 0; syncer--) {
        pthread_mutex_lock(&core->sync_mu);
        core->sync_inline = syncer;
        pthread_mutex_unlock(&core->sync_mu);
        rsp = send_on_loop(&loop, ee_certreq(CMPR_BODY_IR, "ee-loop-lost", 1), &c);
        expect_fail(rsp, CMPR_BODY_ERROR, CMPR_FI_SYSTEM_UNAVAIL);
        CMPR_PKIMESSAGE_free(rsp);
    }
    pthread_mutex_lock(&core->sync_mu);
    core->sync_inline = 0;
    pthread_mutex_unlock(&core->sync_mu);
    tu_loop_close(&loop);
    stop_core();
    close(pfd[0]);
    close(pfd[1]);
    start_core();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obligation_03_transaction_id),
        cmocka_unit_test(test_obligation_04_nonces),
        cmocka_unit_test(test_obligation_05_pvno),
        cmocka_unit_test(test_obligation_06_every_request_answered),
        cmocka_unit_test(test_obligation_07_protection),
        cmocka_unit_test(test_obligation_08_answer_protection),
        cmocka_unit_test(test_obligation_09_pop),
        cmocka_unit_test(test_obligation_10_certrep),
        cmocka_unit_test(test_issued_key_as_requested),
        cmocka_unit_test(test_serial_layout),
        cmocka_unit_test(test_obligation_11_confirmation),
        cmocka_unit_test(test_obligation_12_certconf_checks),
        cmocka_unit_test(test_obligation_13_revocation),
        cmocka_unit_test(test_obligation_14_genm),
        cmocka_unit_test(test_obligation_15_polling),
        cmocka_unit_test(test_obligation_16_client_error),
        cmocka_unit_test(test_failinfo_bad_time_and_replay),
        cmocka_unit_test(test_failinfo_template_and_profile),
        cmocka_unit_test(test_failinfo_system),
        cmocka_unit_test(test_resumed_after_crash),
        cmocka_unit_test(test_ccr),
        cmocka_unit_test(test_hold_and_release),
        cmocka_unit_test(test_ed25519_ca_with_separate_signer),
        cmocka_unit_test(test_signer_chain),
        cmocka_unit_test(test_key_archive_and_recovery),
        cmocka_unit_test(test_nested_from_ra),
        cmocka_unit_test(test_kur_revokes_replaced),
        cmocka_unit_test(test_client_rights),
        cmocka_unit_test(test_central_keygen),
        cmocka_unit_test(test_operation_label),
        cmocka_unit_test(test_tls_binding),
        cmocka_unit_test(test_crl_refresh),
        cmocka_unit_test(test_crl_writers_at_once),
        cmocka_unit_test(test_restart_keeps_state),
        cmocka_unit_test(test_concurrent_transactions),
        cmocka_unit_test(test_answer_waits_for_sync),
    };

    return cmocka_run_group_tests_name("core", tests, setup, teardown);
}
