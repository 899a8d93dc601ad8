/*
 * The end entity's side of a transaction: its requests (RFC 9483 4.1-4.3)
 * and what it checks in the answers (RFC 9810 5.1.1, 5.3). No I/O.
 */
#include "codec/ee.h"
#include "codec/keygen.h"
#include "codec/msg.h"
#include "codec/oids.h"
#include "codec/protect.h"
#include "base/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crmf.h>

static int
add_profile(CMPR_PKIMESSAGE *m, const char *profile)
{
    CMPR_ITAV *it;

    if (profile == NULL)
        return 0;
    if ((it = cmpr_itav_new_cert_profile(&profile, 1)) == NULL)
        return -1;
    return cmpr_hdr_push0_geninfo(m->header, it) == CMPR_OK ? 0 : -1;
}

static int
add_implicit(CMPR_PKIMESSAGE *m, int implicit_confirm)
{
    CMPR_ITAV *it;

    if (!implicit_confirm)
        return 0;
    if ((it = cmpr_itav_new_implicit_confirm()) == NULL)
        return -1;
    return cmpr_hdr_push0_geninfo(m->header, it) == CMPR_OK ? 0 : -1;
}

/* one more control (RFC 4211 6) of type n with value (consumed) */
static int
push_control(CMPR_CERTREQUEST *cr, int n, ASN1_TYPE *value)
{
    CMPR_ATAV *a = value != NULL ? CMPR_ATAV_new() : NULL;

    if (a == NULL) {
        ASN1_TYPE_free(value);
        return -1;
    }
    ASN1_OBJECT_free(a->type);
    ASN1_TYPE_free(a->value);
    a->value = value;
    if ((a->type = cmpr_regctrl_obj(n)) == NULL
            || (cr->controls == NULL && (cr->controls = sk_CMPR_ATAV_new_null()) == NULL)
            || !sk_CMPR_ATAV_push(cr->controls, a)) {
        CMPR_ATAV_free(a);
        return -1;
    }
    return 0;
}

/* oldCertId control (id-regCtrl-oldCertID, RFC 4211 6.5) naming cert */
static int
add_oldcertid(CMPR_CERTREQUEST *cr, const X509 *cert)
{
    OSSL_CRMF_CERTID *id = OSSL_CRMF_CERTID_gen(X509_get_issuer_name(cert),
                                                X509_get0_serialNumber(cert));
    int r = id != NULL
            ? push_control(cr, CMPR_REGCTRL_OLDCERTID,
                           ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(OSSL_CRMF_CERTID), id, NULL))
            : -1;

    OSSL_CRMF_CERTID_free(id);
    return r;
}

/* pkiArchiveOptions (RFC 4211 6.4, RFC 9810 5.2.6): the private key as
 * PKCS#8 in EnvelopedData for the CA's encryption certificate */
static int
add_archive(CMPR_CERTREQUEST *cr, EVP_PKEY *key, X509 *to)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
    unsigned char *p8der = NULL, *der = NULL;
    const unsigned char *p;
    int p8len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &p8der) : -1, n, r = -1;
    CMPR_PKIARCHIVEOPTIONS *opt = CMPR_PKIARCHIVEOPTIONS_new();

    if (p8len <= 0 || opt == NULL || (opt->value.encryptedPrivKey = CMPR_ENCRYPTEDKEY_new()) == NULL)
        goto out;
    opt->type = CMPR_ARCHIVE_ENCRYPTEDPRIVKEY;
    opt->value.encryptedPrivKey->type = CMPR_ENCRYPTEDKEY_ENVELOPEDDATA;
    if ((opt->value.encryptedPrivKey->value.envelopedData = cmpr_envdata_seal(p8der, (size_t)p8len, to, NULL,
                                                                              0)) == NULL
            || (n = i2d_CMPR_PKIARCHIVEOPTIONS(opt, &der)) <= 0)
        goto out;
    p = der;
    r = push_control(cr, CMPR_REGCTRL_PKIARCHIVEOPTIONS, d2i_ASN1_TYPE(NULL, &p, n));
 out:
    CMPR_PKIARCHIVEOPTIONS_free(opt);
    OPENSSL_free(der);
    OPENSSL_clear_free(p8der, p8len > 0 ? (size_t)p8len : 0);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return r;
}

static int
set_validity(CMPR_CERTTEMPLATE *t, long days)
{
    time_t now = time(NULL);

    if (days <= 0)
        return 0;
    if (t->validity == NULL && (t->validity = CMPR_OPTIONALVALIDITY_new()) == NULL)
        return -1;
    if ((t->validity->notBefore = ASN1_TIME_set(NULL, now)) == NULL
            || (t->validity->notAfter = ASN1_TIME_adj(NULL, now, (int)days, 0)) == NULL)
        return -1;
    return 0;
}

CMPR_PKIMESSAGE *
cmpr_ee_new_certreq(const struct cmpr_ee_certreq *r)
{
    CMPR_PKIMESSAGE *m;
    CMPR_CERTREQMSG *crm = NULL;
    const X509_NAME *subject = r->subject;

    if (r->body != CMPR_BODY_IR && r->body != CMPR_BODY_CR && r->body != CMPR_BODY_KUR
            && r->body != CMPR_BODY_CCR)
        return NULL;
    /* EnvelopedData needs cmp2021 (RFC 9810 7) */
    if ((m = cmpr_msg_new(r->body, r->archive_to != NULL ? CMPR_PVNO_3 : CMPR_PVNO_2)) == NULL
            || (crm = CMPR_CERTREQMSG_new()) == NULL)
        goto fail;
    if (subject == NULL && r->oldcert != NULL)
        subject = X509_get_subject_name(r->oldcert);
    if (!ASN1_INTEGER_set(crm->certReq->certReqId, 0)
            || cmpr_tmpl_fill(crm->certReq->certTemplate, r->central != NULL ? NULL : r->key, subject, NULL,
                              NULL) != CMPR_OK
            || set_validity(crm->certReq->certTemplate, r->days) != 0)
        goto fail;
    /* the CA makes the key: an empty one of the type asked for, or none */
    if (r->central != NULL && (r->archive_to != NULL
                               || cmpr_spki_for_central(r->central, &crm->certReq->certTemplate->publicKey) != CMPR_OK))
        goto fail;
    if (r->sans != NULL && X509V3_add1_i2d(&crm->certReq->certTemplate->extensions, NID_subject_alt_name,
                                           (void *)r->sans, 0, X509V3_ADD_REPLACE) != 1)
        goto fail;
    if (r->oldcert != NULL && add_oldcertid(crm->certReq, r->oldcert) != 0)
        goto fail;
    if (r->archive_to != NULL && add_archive(crm->certReq, r->key, r->archive_to) != 0)
        goto fail;
    /* POP by signature (RFC 4211 4.1) over the finished CertRequest; none
     * for a key we do not have yet (RFC 9483 4.1.6) */
    if (r->central == NULL && cmpr_crm_create_pop_sig(crm, r->key, NULL) != CMPR_OK)
        goto fail;
    if (!sk_CMPR_CERTREQMSG_push(m->body->value.ir, crm))
        goto fail;
    crm = NULL;
    if (add_profile(m, r->profile) != 0 || add_implicit(m, r->implicit_confirm) != 0)
        goto fail;
    return m;
 fail:
    CMPR_CERTREQMSG_free(crm);
    CMPR_PKIMESSAGE_free(m);
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_ee_new_p10cr(const X509_REQ *csr, const char *profile, int implicit_confirm)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_P10CR, CMPR_PVNO_2);
    X509_REQ *dup;

    if (m == NULL || (dup = X509_REQ_dup(csr)) == NULL) {
        CMPR_PKIMESSAGE_free(m);
        return NULL;
    }
    X509_REQ_free(m->body->value.p10cr);
    m->body->value.p10cr = dup;
    if (add_profile(m, profile) != 0 || add_implicit(m, implicit_confirm) != 0) {
        CMPR_PKIMESSAGE_free(m);
        return NULL;
    }
    return m;
}

CMPR_PKIMESSAGE *
cmpr_ee_new_krr(const X509_NAME *subject)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_KRR, CMPR_PVNO_3);
    CMPR_CERTREQMSG *crm = CMPR_CERTREQMSG_new();

    if (m == NULL || crm == NULL || !ASN1_INTEGER_set(crm->certReq->certReqId, 0)
            || cmpr_tmpl_fill(crm->certReq->certTemplate, NULL, subject, NULL, NULL) != CMPR_OK
            || !sk_CMPR_CERTREQMSG_push(m->body->value.ir, crm)) {
        CMPR_CERTREQMSG_free(crm);
        CMPR_PKIMESSAGE_free(m);
        return NULL;
    }
    return m;
}

CMPR_PKIMESSAGE *
cmpr_ee_new_rr(const X509 *cert, int reason)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_RR, CMPR_PVNO_2);
    CMPR_REVDETAILS *rd = CMPR_REVDETAILS_new();

    if (m == NULL || rd == NULL
            || cmpr_tmpl_fill(rd->certDetails, NULL, NULL, X509_get_issuer_name(cert),
                              X509_get0_serialNumber(cert)) != CMPR_OK)
        goto fail;
    if (reason >= 0) {
        ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();
        int ok = e != NULL && ASN1_ENUMERATED_set(e, reason)
                 && X509V3_add1_i2d(&rd->crlEntryDetails, NID_crl_reason, e, 0, X509V3_ADD_REPLACE) == 1;

        ASN1_ENUMERATED_free(e);
        if (!ok)
            goto fail;
    }
    if (!sk_CMPR_REVDETAILS_push(m->body->value.rr, rd))
        goto fail;
    return m;
 fail:
    CMPR_REVDETAILS_free(rd);
    CMPR_PKIMESSAGE_free(m);
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_ee_new_genm(int it)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_GENM, CMPR_PVNO_2);
    CMPR_ITAV *itav;

    if (m == NULL || it < 0)
        return m;
    if ((itav = cmpr_itav_new0(it, NULL)) == NULL || !sk_CMPR_ITAV_push(m->body->value.genm, itav)) {
        CMPR_ITAV_free(itav);
        CMPR_PKIMESSAGE_free(m);
        return NULL;
    }
    return m;
}

static CMPR_PKIMESSAGE *
followup(int body, const CMPR_PKIMESSAGE *rsp)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(body, cmpr_msg_pvno(rsp));

    if (m == NULL || rsp->header->transactionID == NULL)
        goto fail;
    ASN1_OCTET_STRING_free(m->header->transactionID);
    if ((m->header->transactionID = ASN1_OCTET_STRING_dup(rsp->header->transactionID)) == NULL)
        goto fail;
    if (rsp->header->senderNonce != NULL
            && cmpr_hdr_set1_recip_nonce(m->header, rsp->header->senderNonce) != CMPR_OK)
        goto fail;
    return m;
 fail:
    CMPR_PKIMESSAGE_free(m);
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_ee_new_pollreq(const CMPR_PKIMESSAGE *rsp, long cert_req_id)
{
    CMPR_PKIMESSAGE *m = followup(CMPR_BODY_POLLREQ, rsp);
    CMPR_POLLREQ *p = CMPR_POLLREQ_new();

    if (m == NULL || p == NULL || !ASN1_INTEGER_set(p->certReqId, cert_req_id)
            || !sk_CMPR_POLLREQ_push(m->body->value.pollReq, p)) {
        CMPR_POLLREQ_free(p);
        CMPR_PKIMESSAGE_free(m);
        return NULL;
    }
    return m;
}

CMPR_PKIMESSAGE *
cmpr_ee_new_certconf(const CMPR_PKIMESSAGE *rsp, long cert_req_id, const X509 *cert, int accept,
                     const char *text)
{
    CMPR_PKIMESSAGE *m = followup(CMPR_BODY_CERTCONF, rsp);
    CMPR_CERTSTATUS *cs = CMPR_CERTSTATUS_new();
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;

    if (m == NULL || cs == NULL || cmpr_cert_hash(cert, NULL, h, &hl) != CMPR_OK
            || !ASN1_OCTET_STRING_set(cs->certHash, h, (int)hl)
            || !ASN1_INTEGER_set(cs->certReqId, cert_req_id))
        goto fail;
    if (!accept && (cs->statusInfo = cmpr_pkisi_new(CMPR_STATUS_REJECTION,
                                                    1u << CMPR_FI_BAD_CERT_TEMPLATE, text)) == NULL)
        goto fail;
    if (!sk_CMPR_CERTSTATUS_push(m->body->value.certConf, cs))
        goto fail;
    return m;
 fail:
    CMPR_CERTSTATUS_free(cs);
    CMPR_PKIMESSAGE_free(m);
    return NULL;
}

static int
octets_eq(const ASN1_OCTET_STRING *a, const ASN1_OCTET_STRING *b)
{
    return a != NULL && b != NULL && ASN1_OCTET_STRING_cmp(a, b) == 0;
}

int
cmpr_ee_check_header(const CMPR_PKIMESSAGE *req, const CMPR_PKIMESSAGE *rsp, char *why, size_t wlen)
{
    if (!octets_eq(req->header->transactionID, rsp->header->transactionID)) {
        snprintf(why, wlen, "the answer is for another transaction (transactionID differs)");
        return CMPR_ERR_BAD_HEADER;
    }
    if (!octets_eq(req->header->senderNonce, rsp->header->recipNonce)) {
        snprintf(why, wlen, "the answer's recipNonce is not our senderNonce (a replay, or meant "
                 "for another request)");
        return CMPR_ERR_BAD_HEADER;
    }
    if (cmpr_msg_pvno(req) != cmpr_msg_pvno(rsp)) {
        snprintf(why, wlen, "the answer has pvno %ld, the request %ld", cmpr_msg_pvno(rsp),
                 cmpr_msg_pvno(req));
        return CMPR_ERR_BAD_HEADER;
    }
    return CMPR_OK;
}

static void
join_text(const STACK_OF(ASN1_UTF8STRING) *sk, char *buf, size_t len)
{
    size_t o = strlen(buf);

    for (int i = 0; i < sk_ASN1_UTF8STRING_num(sk) && o + 3 < len; i++) {
        const ASN1_UTF8STRING *s = sk_ASN1_UTF8STRING_value(sk, i);
        int n = snprintf(buf + o, len - o, "%s%.*s", o > 0 ? "; " : "", ASN1_STRING_length(s),
                         (const char *)ASN1_STRING_get0_data(s));

        if (n < 0)
            break;
        o = (size_t)n >= len - o ? len - 1 : o + (size_t)n;
    }
    /* a server's text goes to a terminal: no control characters */
    for (char *p = buf; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static void
take_si(struct cmpr_ee_result *r, const CMPR_PKISI *si)
{
    if (si == NULL)
        return;
    r->status = cmpr_pkisi_status(si);
    r->failinfo = cmpr_pkisi_failinfo(si);
    join_text(si->statusString, r->text, sizeof(r->text));
}

int
cmpr_ee_result(const CMPR_PKIMESSAGE *rsp, struct cmpr_ee_result *r)
{
    memset(r, 0, sizeof(*r));
    r->body = cmpr_msg_bodytype(rsp);
    r->status = -1;
    r->check_after = -1;
    r->cert_req_id = 0;
    r->implicit_confirm = cmpr_hdr_has_implicit_confirm(rsp->header);
    switch (r->body) {
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP: {
        const CMPR_CERTREPMESSAGE *rep = cmpr_msg_get0_rep(rsp);
        const CMPR_CERTRESPONSE *cr;

        if (rep == NULL || sk_CMPR_CERTRESPONSE_num(rep->response) != 1)
            return CMPR_ERR_BAD_BODY;   /* we asked for one certificate (RFC 9483 4.1.1) */
        cr = sk_CMPR_CERTRESPONSE_value(rep->response, 0);
        r->cert_req_id = ASN1_INTEGER_get(cr->certReqId);
        take_si(r, cr->status);
        if (cr->certifiedKeyPair != NULL && cr->certifiedKeyPair->privateKey != NULL
                && cr->certifiedKeyPair->privateKey->type == CMPR_ENCRYPTEDKEY_ENVELOPEDDATA)
            r->central_key = cr->certifiedKeyPair->privateKey->value.envelopedData;
        if (cr->certifiedKeyPair != NULL && cr->certifiedKeyPair->certOrEncCert != NULL) {
            if (cr->certifiedKeyPair->certOrEncCert->type == CMPR_CERTORENCCERT_CERTIFICATE)
                r->cert = cr->certifiedKeyPair->certOrEncCert->value.certificate;
            else
                r->encrypted_cert = 1;
        }
        break;
    }
    case CMPR_BODY_RP:
        if (sk_CMPR_PKISI_num(rsp->body->value.rp->status) < 1)
            return CMPR_ERR_BAD_BODY;
        take_si(r, sk_CMPR_PKISI_value(rsp->body->value.rp->status, 0));
        break;
    case CMPR_BODY_ERROR:
        take_si(r, rsp->body->value.error->pKIStatusInfo);
        join_text(rsp->body->value.error->errorDetails, r->text, sizeof(r->text));
        break;
    case CMPR_BODY_POLLREP: {
        const CMPR_POLLREP *p;

        if (sk_CMPR_POLLREP_num(rsp->body->value.pollRep) < 1)
            return CMPR_ERR_BAD_BODY;
        p = sk_CMPR_POLLREP_value(rsp->body->value.pollRep, 0);
        r->cert_req_id = ASN1_INTEGER_get(p->certReqId);
        r->check_after = ASN1_INTEGER_get(p->checkAfter);
        if (r->check_after < 0)
            r->check_after = 0;
        join_text(p->reason, r->text, sizeof(r->text));
        break;
    }
    case CMPR_BODY_KRP:
        if (rsp->body->value.krp == NULL || rsp->body->value.krp->status == NULL)
            return CMPR_ERR_BAD_BODY;
        take_si(r, rsp->body->value.krp->status);
        r->n_keys = sk_CMPR_CERTIFIEDKEYPAIR_num(rsp->body->value.krp->keyPairHist);
        break;
    case CMPR_BODY_PKICONF: case CMPR_BODY_GENP:
        break;
    default:
        return CMPR_ERR_BAD_BODY;
    }
    return CMPR_OK;
}

void
cmpr_ee_failinfo_names(uint32_t failinfo, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (int b = 0; b <= CMPR_FI_MAX && o + 2 < len; b++) {
        int n;

        if (!(failinfo & (1u << b)))
            continue;
        n = snprintf(buf + o, len - o, "%s%s", o > 0 ? ", " : "", cmpr_failinfo_name(b));
        if (n < 0 || (size_t)n >= len - o)
            break;
        o += (size_t)n;
    }
}
