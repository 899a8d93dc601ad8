/* The end entity's requests and its checks of answers (codec/ee.c):
 * RFC 9483 4.1-4.4 (what an EE sends), RFC 9810 5.1.1 (what must match). */
#include "testutil.h"

#include <string.h>

#include <openssl/crmf.h>
#include <openssl/x509v3.h>

#include "codec/ee.h"
#include "codec/keygen.h"
#include "codec/msg.h"
#include "codec/oids.h"
#include "codec/protect.h"
#include "base/err.h"

/* encode and decode again: what goes on the wire is what we check */
static CMPR_PKIMESSAGE *
wire(CMPR_PKIMESSAGE *m)
{
    unsigned char *der = NULL;
    size_t len = 0;
    CMPR_PKIMESSAGE *out = NULL;

    assert_non_null(m);
    assert_int_equal(cmpr_msg_encode(m, &der, &len), CMPR_OK);
    assert_int_equal(cmpr_msg_decode(der, len, &out, NULL), CMPR_OK);
    OPENSSL_free(der);
    CMPR_PKIMESSAGE_free(m);
    return out;
}

/* RFC 9483 4.1.1: ir with one CertReqMsg, certReqId 0, the key in the
 * template, POP by signature; certProfile and implicitConfirm in generalInfo */
static void
test_ir(void **state)
{
    EVP_PKEY *k = tu_key("ec:P-256");
    X509_NAME *n = X509_NAME_new();
    GENERAL_NAMES *sans = GENERAL_NAMES_new();
    GENERAL_NAME *gn = a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_DNS, "ee.example", 0);
    struct cmpr_ee_certreq r = { CMPR_BODY_IR, k, NULL, NULL, NULL, "tls", 1, 30, NULL, NULL };
    CMPR_PKIMESSAGE *m;
    CMPR_CERTREQMSG *crm;
    EVP_PKEY *pk;
    STACK_OF(ASN1_UTF8STRING) *prof;
    time_t nb, na;
    (void)state;

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"ee", -1, -1, 0);
    sk_GENERAL_NAME_push(sans, gn);
    r.subject = n;
    r.sans = sans;
    m = wire(cmpr_ee_new_certreq(&r));
    assert_int_equal(cmpr_msg_bodytype(m), CMPR_BODY_IR);
    assert_int_equal(cmpr_msg_pvno(m), 2);
    assert_int_equal(ASN1_STRING_length(m->header->transactionID), 16);
    assert_int_equal(ASN1_STRING_length(m->header->senderNonce), 16);
    assert_int_equal(sk_CMPR_CERTREQMSG_num(cmpr_msg_get0_reqs(m)), 1);
    crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(m), 0);
    assert_int_equal(cmpr_crm_certreqid(crm), 0);
    assert_int_equal(X509_NAME_cmp(crm->certReq->certTemplate->subject, n), 0);
    pk = cmpr_tmpl_get1_pubkey(crm->certReq->certTemplate);
    assert_int_equal(EVP_PKEY_eq(pk, k), 1);
    EVP_PKEY_free(pk);
    assert_int_equal(cmpr_crm_verify_pop_sig(crm), CMPR_OK);
    assert_int_equal(X509v3_get_ext_by_NID(crm->certReq->certTemplate->extensions, NID_subject_alt_name, -1) >= 0, 1);
    assert_int_equal(cmpr_tmpl_get_validity(crm->certReq->certTemplate, &nb, &na), CMPR_OK);
    assert_true(na - nb == 30 * 86400);
    assert_true(cmpr_hdr_has_implicit_confirm(m->header));
    prof = cmpr_itav_get1_cert_profile(cmpr_hdr_get0_geninfo(m->header, CMPR_IT_CERT_PROFILE));
    assert_non_null(prof);
    assert_string_equal((const char *)ASN1_STRING_get0_data(sk_ASN1_UTF8STRING_value(prof, 0)), "tls");
    sk_ASN1_UTF8STRING_pop_free(prof, ASN1_UTF8STRING_free);
    CMPR_PKIMESSAGE_free(m);
    /* no implicitConfirm unless asked; kur without the old certificate is refused */
    r.implicit_confirm = 0;
    r.profile = NULL;
    m = wire(cmpr_ee_new_certreq(&r));
    assert_false(cmpr_hdr_has_implicit_confirm(m->header));
    assert_null(cmpr_hdr_get0_geninfo(m->header, CMPR_IT_CERT_PROFILE));
    CMPR_PKIMESSAGE_free(m);
    r.body = CMPR_BODY_GENM;
    assert_null(cmpr_ee_new_certreq(&r));
    GENERAL_NAMES_free(sans);
    X509_NAME_free(n);
    EVP_PKEY_free(k);
}

/* RFC 9483 4.1.3: kur names the certificate it updates in oldCertId */
static void
test_kur_oldcertid(void **state)
{
    EVP_PKEY *ca = tu_key("ec:P-256"), *old = tu_key("ec:P-256"), *nk = tu_key("ed25519");
    X509 *cac = tu_cert(ca, "ca", NULL, NULL, 1), *oc = tu_cert(old, "renew-me", ca, cac, 0);
    struct cmpr_ee_certreq r = { CMPR_BODY_KUR, nk, NULL, NULL, oc, NULL, 0, 0, NULL, NULL };
    CMPR_PKIMESSAGE *m = wire(cmpr_ee_new_certreq(&r));
    CMPR_CERTREQMSG *crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(m), 0);
    OSSL_CRMF_CERTID *id = cmpr_crm_get1_oldcertid(crm);
    (void)state;

    assert_int_equal(cmpr_msg_bodytype(m), CMPR_BODY_KUR);
    assert_non_null(id);
    assert_int_equal(ASN1_INTEGER_cmp(OSSL_CRMF_CERTID_get0_serialNumber(id), X509_get0_serialNumber(oc)), 0);
    assert_int_equal(X509_NAME_cmp(OSSL_CRMF_CERTID_get0_issuer(id),
                                   X509_get_issuer_name(oc)), 0);
    /* the subject defaults to the old certificate's */
    assert_int_equal(X509_NAME_cmp(crm->certReq->certTemplate->subject, X509_get_subject_name(oc)), 0);
    assert_int_equal(cmpr_crm_verify_pop_sig(crm), CMPR_OK);
    OSSL_CRMF_CERTID_free(id);
    CMPR_PKIMESSAGE_free(m);
    X509_free(oc);
    X509_free(cac);
    EVP_PKEY_free(ca);
    EVP_PKEY_free(old);
    EVP_PKEY_free(nk);
}

/* p10cr (RFC 9483 4.1.4), rr (4.2: issuer, serial, reason), genm (4.3) */
static void
test_p10cr_rr_genm(void **state)
{
    EVP_PKEY *k = tu_key("ec:P-256");
    X509 *c = tu_cert(k, "revoke-me", NULL, NULL, 0);
    X509_REQ *csr = X509_REQ_new();
    CMPR_PKIMESSAGE *m;
    const X509_NAME *iss;
    const ASN1_INTEGER *ser;
    int reason;
    (void)state;

    X509_REQ_set_subject_name(csr, X509_get_subject_name(c));
    X509_REQ_set_pubkey(csr, k);
    X509_REQ_sign(csr, k, EVP_sha256());
    m = wire(cmpr_ee_new_p10cr(csr, NULL, 0));
    assert_int_equal(cmpr_msg_bodytype(m), CMPR_BODY_P10CR);
    assert_int_equal(X509_REQ_verify(m->body->value.p10cr, k), 1);
    CMPR_PKIMESSAGE_free(m);

    m = wire(cmpr_ee_new_rr(c, 1));
    assert_int_equal(cmpr_rr_get(m, 0, &iss, &ser, &reason), CMPR_OK);
    assert_int_equal(X509_NAME_cmp(iss, X509_get_issuer_name(c)), 0);
    assert_int_equal(ASN1_INTEGER_cmp(ser, X509_get0_serialNumber(c)), 0);
    assert_int_equal(reason, 1);
    CMPR_PKIMESSAGE_free(m);
    m = wire(cmpr_ee_new_rr(c, -1));
    assert_int_equal(cmpr_rr_get(m, 0, &iss, &ser, &reason), CMPR_OK);
    assert_int_equal(reason, -1);
    CMPR_PKIMESSAGE_free(m);

    m = wire(cmpr_ee_new_genm(CMPR_IT_CA_CERTS));
    assert_int_equal(sk_CMPR_ITAV_num(m->body->value.genm), 1);
    assert_int_equal(cmpr_itav_num(sk_CMPR_ITAV_value(m->body->value.genm, 0)), CMPR_IT_CA_CERTS);
    assert_null(sk_CMPR_ITAV_value(m->body->value.genm, 0)->infoValue);
    CMPR_PKIMESSAGE_free(m);
    X509_REQ_free(csr);
    X509_free(c);
    EVP_PKEY_free(k);
}

/* RFC 9810 5.1.1: an answer is ours only with our transactionID, our
 * senderNonce as recipNonce and our pvno; follow-ups continue the transaction */
static void
test_header_and_followups(void **state)
{
    CMPR_PKIMESSAGE *req = cmpr_ee_new_genm(-1), *rsp, *other, *pr, *cc;
    EVP_PKEY *k = tu_key("ec:P-256");
    X509 *c = tu_cert(k, "x", NULL, NULL, 0);
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl;
    char why[300];
    CMPR_CERTSTATUS *cs;
    (void)state;

    rsp = cmpr_msg_new_response(req, CMPR_BODY_GENP);
    assert_int_equal(cmpr_ee_check_header(req, rsp, why, sizeof(why)), CMPR_OK);
    /* another transaction */
    other = cmpr_ee_new_genm(-1);
    assert_int_not_equal(cmpr_ee_check_header(other, rsp, why, sizeof(why)), CMPR_OK);
    assert_non_null(strstr(why, "transactionID"));
    /* same transaction, another nonce (a replayed answer) */
    ASN1_OCTET_STRING_free(other->header->transactionID);
    other->header->transactionID = ASN1_OCTET_STRING_dup(req->header->transactionID);
    assert_int_not_equal(cmpr_ee_check_header(other, rsp, why, sizeof(why)), CMPR_OK);
    assert_non_null(strstr(why, "recipNonce"));
    /* another pvno */
    ASN1_INTEGER_set(rsp->header->pvno, 3);
    assert_int_not_equal(cmpr_ee_check_header(req, rsp, why, sizeof(why)), CMPR_OK);
    ASN1_INTEGER_set(rsp->header->pvno, 2);

    pr = wire(cmpr_ee_new_pollreq(rsp, 0));
    assert_int_equal(ASN1_OCTET_STRING_cmp(pr->header->transactionID, req->header->transactionID), 0);
    assert_int_equal(ASN1_OCTET_STRING_cmp(pr->header->recipNonce, rsp->header->senderNonce), 0);
    assert_int_not_equal(ASN1_OCTET_STRING_cmp(pr->header->senderNonce, req->header->senderNonce), 0);
    assert_int_equal(ASN1_INTEGER_get(sk_CMPR_POLLREQ_value(pr->body->value.pollReq, 0)->certReqId), 0);
    cc = wire(cmpr_ee_new_certconf(rsp, 0, c, 1, NULL));
    cs = sk_CMPR_CERTSTATUS_value(cc->body->value.certConf, 0);
    assert_int_equal(cmpr_cert_hash(c, NULL, h, &hl), CMPR_OK);
    assert_int_equal(ASN1_STRING_length(cs->certHash), (int)hl);
    assert_memory_equal(ASN1_STRING_get0_data(cs->certHash), h, hl);
    assert_null(cs->statusInfo);
    CMPR_PKIMESSAGE_free(cc);
    cc = wire(cmpr_ee_new_certconf(rsp, 0, c, 0, "key mismatch"));
    cs = sk_CMPR_CERTSTATUS_value(cc->body->value.certConf, 0);
    assert_int_equal(cmpr_pkisi_status(cs->statusInfo), CMPR_STATUS_REJECTION);
    CMPR_PKIMESSAGE_free(cc);
    CMPR_PKIMESSAGE_free(pr);
    CMPR_PKIMESSAGE_free(other);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(req);
    X509_free(c);
    EVP_PKEY_free(k);
}

/* what an answer says: status, failInfo, texts (made printable), checkAfter */
static void
test_results(void **state)
{
    EVP_PKEY *k = tu_key("ec:P-256");
    X509 *c = tu_cert(k, "issued", NULL, NULL, 0);
    struct cmpr_ee_certreq r = { CMPR_BODY_CR, k, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL };
    X509_NAME *n = X509_NAME_new();
    CMPR_PKIMESSAGE *req, *rsp;
    struct cmpr_ee_result res;
    char names[200];
    (void)state;

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"issued", -1, -1, 0);
    r.subject = n;
    req = cmpr_ee_new_certreq(&r);
    rsp = wire(cmpr_msg_build_certrep(req, CMPR_BODY_CP, 0, cmpr_pkisi_new(CMPR_STATUS_ACCEPTED, 0, NULL),
                                      c, NULL, NULL));
    assert_int_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    assert_int_equal(res.body, CMPR_BODY_CP);
    assert_int_equal(res.status, CMPR_STATUS_ACCEPTED);
    assert_non_null(res.cert);
    assert_int_equal(X509_cmp(res.cert, c), 0);
    CMPR_PKIMESSAGE_free(rsp);

    rsp = wire(cmpr_msg_build_certrep(req, CMPR_BODY_CP, 0, cmpr_pkisi_new(CMPR_STATUS_WAITING, 0, "later"),
                                      NULL, NULL, NULL));
    assert_int_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    assert_int_equal(res.status, CMPR_STATUS_WAITING);
    assert_null(res.cert);
    assert_string_equal(res.text, "later");
    CMPR_PKIMESSAGE_free(rsp);

    rsp = wire(cmpr_msg_build_error(req, cmpr_pkisi_new(CMPR_STATUS_REJECTION,
                                                        (1u << CMPR_FI_BAD_POP) | (1u << CMPR_FI_BAD_TIME),
                                                        "evil\033[2Jtext\n"), -1, "more"));
    assert_int_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    assert_int_equal(res.body, CMPR_BODY_ERROR);
    assert_int_equal(res.status, CMPR_STATUS_REJECTION);
    assert_null(strchr(res.text, '\033'));          /* no terminal escapes from a server */
    assert_null(strchr(res.text, '\n'));
    assert_non_null(strstr(res.text, "more"));
    cmpr_ee_failinfo_names(res.failinfo, names, sizeof(names));
    assert_string_equal(names, "badTime, badPOP");
    CMPR_PKIMESSAGE_free(rsp);

    rsp = wire(cmpr_msg_build_pollrep(req, 0, 7, "queue"));
    assert_int_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    assert_int_equal(res.check_after, 7);
    assert_string_equal(res.text, "queue");
    CMPR_PKIMESSAGE_free(rsp);

    /* two CertResponses where we asked for one: not ours to accept */
    rsp = cmpr_msg_build_certrep(req, CMPR_BODY_CP, 0, cmpr_pkisi_new(CMPR_STATUS_ACCEPTED, 0, NULL), c, NULL, NULL);
    {
        CMPR_CERTRESPONSE *dup = CMPR_CERTRESPONSE_new();

        ASN1_INTEGER_set(dup->certReqId, 1);
        sk_CMPR_CERTRESPONSE_push(cmpr_msg_get0_rep(rsp)->response, dup);
    }
    assert_int_not_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    CMPR_PKIMESSAGE_free(rsp);
    /* a body an EE never gets */
    rsp = cmpr_ee_new_genm(-1);
    assert_int_not_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(req);
    X509_NAME_free(n);
    X509_free(c);
    EVP_PKEY_free(k);
}

/* RFC 4211 6.4, RFC 9810 5.2.6: --archive-key puts the new private key,
 * PKCS#8 in EnvelopedData for the CA's encryption certificate, into
 * pkiArchiveOptions, and EnvelopedData makes the message pvno 3 (RFC 9810
 * 7); ccr is a certificate request too (RFC 9810 5.3.11); krr names the
 * subject (5.3.7) */
static void
test_archive_ccr_krr(void **state)
{
    EVP_PKEY *k = tu_key("ec:P-256"), *enc_key = tu_key("rsa:2048"), *got = NULL;
    X509 *enc = tu_cert(enc_key, "CA encryption", NULL, NULL, 0);
    X509_NAME *n = X509_NAME_new();
    struct cmpr_ee_certreq r = { CMPR_BODY_IR, k, n, NULL, NULL, NULL, 0, 0, enc, NULL };
    CMPR_PKIMESSAGE *m;
    CMPR_CERTREQMSG *crm;
    CMPR_PKIARCHIVEOPTIONS *opt;
    unsigned char *plain = NULL;
    size_t plen = 0;
    const unsigned char *p;
    (void)state;

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"archived", -1, -1, 0);
    m = wire(cmpr_ee_new_certreq(&r));
    assert_int_equal(cmpr_msg_pvno(m), CMPR_PVNO_3);
    crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(m), 0);
    assert_non_null(opt = cmpr_crm_get1_archive_options(crm));
    assert_int_equal(opt->type, CMPR_ARCHIVE_ENCRYPTEDPRIVKEY);
    assert_int_equal(opt->value.encryptedPrivKey->type, CMPR_ENCRYPTEDKEY_ENVELOPEDDATA);
    assert_int_equal(cmpr_envdata_open(opt->value.encryptedPrivKey->value.envelopedData, enc_key, enc, NULL, 0,
                                       &plain, &plen), CMPR_OK);
    p = plain;
    assert_non_null(got = d2i_AutoPrivateKey(NULL, &p, (long)plen));
    assert_int_equal(EVP_PKEY_eq(got, k), 1);
    /* the wrong key does not open it */
    OPENSSL_clear_free(plain, plen);
    assert_int_equal(cmpr_envdata_open(opt->value.encryptedPrivKey->value.envelopedData, k, NULL, NULL, 0,
                                       &plain, &plen), CMPR_ERR_DECRYPT);
    assert_null(plain);
    assert_int_equal(cmpr_crm_verify_pop_sig(crm), CMPR_OK);
    CMPR_PKIARCHIVEOPTIONS_free(opt);
    CMPR_PKIMESSAGE_free(m);
    /* ccr: a CertReqMsg like ir's, body ccr */
    r.body = CMPR_BODY_CCR;
    r.archive_to = NULL;
    m = wire(cmpr_ee_new_certreq(&r));
    assert_int_equal(cmpr_msg_bodytype(m), CMPR_BODY_CCR);
    assert_int_equal(cmpr_msg_pvno(m), CMPR_PVNO_2);
    assert_int_equal(sk_CMPR_CERTREQMSG_num(cmpr_msg_get0_reqs(m)), 1);
    CMPR_PKIMESSAGE_free(m);
    /* krr: pvno 3, the subject in the template */
    m = wire(cmpr_ee_new_krr(n));
    assert_int_equal(cmpr_msg_bodytype(m), CMPR_BODY_KRR);
    assert_int_equal(cmpr_msg_pvno(m), CMPR_PVNO_3);
    crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(m), 0);
    assert_int_equal(X509_NAME_cmp(crm->certReq->certTemplate->subject, n), 0);
    CMPR_PKIMESSAGE_free(m);
    EVP_PKEY_free(got);
    EVP_PKEY_free(k);
    EVP_PKEY_free(enc_key);
    X509_free(enc);
    X509_NAME_free(n);
}

/* EnvelopedData for a password (PWRI, RFC 3211): opens with that secret only */
static void
test_envdata_password(void **state)
{
    static const unsigned char msg[] = "a private key";
    CMPR_ENVELOPEDDATA *env = cmpr_envdata_seal(msg, sizeof(msg), NULL, (const unsigned char *)"s3cret", 6);
    unsigned char *plain = NULL;
    size_t plen = 0;
    (void)state;

    assert_non_null(env);
    assert_int_equal(cmpr_envdata_open(env, NULL, NULL, (const unsigned char *)"s3cret", 6, &plain, &plen), CMPR_OK);
    assert_int_equal(plen, sizeof(msg));
    assert_memory_equal(plain, msg, plen);
    OPENSSL_clear_free(plain, plen);
    assert_int_equal(cmpr_envdata_open(env, NULL, NULL, (const unsigned char *)"wrong!", 6, &plain, &plen),
                     CMPR_ERR_DECRYPT);
    CMPR_ENVELOPEDDATA_free(env);
}

/* RFC 9483 4.1.6: a request for central key generation carries a public key
 * of the type wanted with no key in it (or none at all) and no POP; the
 * key comes back as AsymmetricKeyPackage in SignedData in EnvelopedData,
 * which opens with the secret or the requester's key and must be signed by
 * someone trusted */
static void
test_central_keygen(void **state)
{
    EVP_PKEY *ca_key = tu_key("ec:P-256"), *ee_key = tu_key("ec:P-256"), *k = tu_key("ec:P-384"), *got;
    X509 *ca = tu_cert(ca_key, "KG CA", NULL, NULL, 1), *ee = tu_cert(ee_key, "KG EE", ca_key, ca, 0);
    X509 *stranger = tu_cert(ee_key, "Stranger", NULL, NULL, 1);
    X509_STORE *trust = X509_STORE_new(), *wrong = X509_STORE_new();
    X509_NAME *n = X509_NAME_new();
    struct cmpr_ee_certreq r = { CMPR_BODY_IR, NULL, n, NULL, NULL, NULL, 0, 0, NULL, "ec:P-384" };
    CMPR_ENVELOPEDDATA *env;
    CMPR_PKIMESSAGE *m;
    CMPR_CERTREQMSG *crm;
    char spec[48], why[300];
    (void)state;

    X509_STORE_add_cert(trust, ca);
    X509_STORE_add_cert(wrong, stranger);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"kg", -1, -1, 0);
    m = wire(cmpr_ee_new_certreq(&r));
    crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(m), 0);
    assert_null(crm->popo);
    assert_int_equal(cmpr_spki_wants_central(crm->certReq->certTemplate->publicKey, spec, sizeof(spec)), 1);
    assert_string_equal(spec, "ec:P-384");
    CMPR_PKIMESSAGE_free(m);
    r.central = "";
    m = wire(cmpr_ee_new_certreq(&r));
    crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(m), 0);
    assert_null(crm->certReq->certTemplate->publicKey);
    assert_int_equal(cmpr_spki_wants_central(NULL, spec, sizeof(spec)), 1);
    assert_string_equal(spec, "");
    CMPR_PKIMESSAGE_free(m);
    /* for a MAC client: the secret opens it; another does not; the signer must be trusted */
    env = cmpr_keygen_seal(k, ca_key, ca, NULL, NULL, (const unsigned char *)"s3cret", 6);
    assert_non_null(env);
    got = cmpr_keygen_open(env, NULL, NULL, (const unsigned char *)"s3cret", 6, trust, NULL, why, sizeof(why));
    assert_non_null(got);
    assert_int_equal(EVP_PKEY_eq(got, k), 1);
    EVP_PKEY_free(got);
    assert_null(cmpr_keygen_open(env, NULL, NULL, (const unsigned char *)"wrong!", 6, trust, NULL, why, sizeof(why)));
    assert_non_null(strstr(why, "does not open"));
    assert_null(cmpr_keygen_open(env, NULL, NULL, (const unsigned char *)"s3cret", 6, wrong, NULL, why, sizeof(why)));
    assert_non_null(strstr(why, "does not verify"));
    CMPR_ENVELOPEDDATA_free(env);
    /* for a signature client: its key opens it */
    env = cmpr_keygen_seal(k, ca_key, ca, NULL, ee, NULL, 0);
    assert_non_null(env);
    got = cmpr_keygen_open(env, ee_key, ee, NULL, 0, trust, NULL, why, sizeof(why));
    assert_non_null(got);
    assert_int_equal(EVP_PKEY_eq(got, k), 1);
    EVP_PKEY_free(got);
    assert_null(cmpr_keygen_open(env, k, NULL, NULL, 0, trust, NULL, why, sizeof(why)));
    CMPR_ENVELOPEDDATA_free(env);
    X509_STORE_free(trust);
    X509_STORE_free(wrong);
    X509_NAME_free(n);
    X509_free(ca);
    X509_free(ee);
    X509_free(stranger);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ee_key);
    EVP_PKEY_free(k);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ir),
        cmocka_unit_test(test_kur_oldcertid),
        cmocka_unit_test(test_p10cr_rr_genm),
        cmocka_unit_test(test_header_and_followups),
        cmocka_unit_test(test_results),
        cmocka_unit_test(test_archive_ccr_krr),
        cmocka_unit_test(test_envdata_password),
        cmocka_unit_test(test_central_keygen),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
