/* libFuzzer target: lean decode + decode + print + re-encode + verify + every accessor on
 * hostile bytes. Build: ./configure CC=clang --enable-fuzzers --enable-asan --enable-ubsan */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include "codec/msg.h"
#include "codec/print.h"
#include "codec/protect.h"
#include "base/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
poke_itav(const CMPR_ITAV *itav)
{
    STACK_OF(X509) *certs = cmpr_itav_get1_ca_certs(itav);
    X509 *x = cmpr_itav_get1_root_ca_cert(itav);
    CMPR_ROOTCAKEYUPDATECONTENT *rk = cmpr_itav_get1_root_ca_key_update(itav);
    CMPR_CERTREQTEMPLATECONTENT *tc = cmpr_itav_get1_cert_req_template(itav);
    STACK_OF(CMPR_CRLSTATUS) *cs = cmpr_itav_get1_crl_status_list(itav);
    STACK_OF(X509_CRL) *crls = cmpr_itav_get1_crls(itav);
    X509_CRL *crl = cmpr_itav_get1_current_crl(itav);
    STACK_OF(ASN1_UTF8STRING) *prof = cmpr_itav_get1_cert_profile(itav);
    CMPR_PKIMESSAGES *orig = cmpr_itav_get1_orig_pkimessage(itav);
    time_t t;

    (void)cmpr_itav_get_confirm_wait_time(itav, &t);
    sk_X509_pop_free(certs, X509_free);
    X509_free(x);
    CMPR_ROOTCAKEYUPDATECONTENT_free(rk);
    CMPR_CERTREQTEMPLATECONTENT_free(tc);
    sk_CMPR_CRLSTATUS_pop_free(cs, CMPR_CRLSTATUS_free);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    X509_CRL_free(crl);
    sk_ASN1_UTF8STRING_pop_free(prof, ASN1_UTF8STRING_free);
    sk_CMPR_PKIMESSAGE_pop_free(orig, CMPR_PKIMESSAGE_free);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CMPR_PKIMESSAGE *msg = NULL;
    struct cmpr_decode_err err;
    struct cmpr_verify_opts vo = { 2048, NULL, NULL };   /* keep each run fast */
    unsigned char *der = NULL;
    size_t len;
    BIO *null = BIO_new(BIO_s_null());
    CMPR_CERTREQMSGS *reqs;
    X509 *signer;
    CMPR_PKIMESSAGE *lean = NULL;
    unsigned char *pp = NULL;
    size_t pp_len = 0;
    int lean_ok;

    /* the lean decoder (no extraCerts, no caPubs, the ProtectedPart as
     * received) takes every message the full one takes */
    lean_ok = cmpr_msg_decode_lean(data, size, &lean, &pp, &pp_len) == CMPR_OK;
    if (lean_ok) {
        if (lean->extraCerts != NULL)
            __builtin_trap();
        (void)cmpr_verify_mac_over(lean, pp, pp_len, (const unsigned char *)"secret", 6, &vo);
    }
    CMPR_PKIMESSAGE_free(lean);
    free(pp);
    if (cmpr_msg_decode(data, size, &msg, &err) != CMPR_OK)
        goto out;
    if (!lean_ok)
        __builtin_trap();
    cmpr_print_msg(null, msg, 0);
    cmpr_print_msg(null, msg, CMPR_PRINT_JSON);
    if (cmpr_msg_encode(msg, &der, &len) == CMPR_OK) {
        CMPR_PKIMESSAGE *again = NULL;

        /* what we encode we must decode again */
        if (cmpr_msg_decode(der, len, &again, &err) != CMPR_OK)
            __builtin_trap();
        CMPR_PKIMESSAGE_free(again);
    }
    (void)cmpr_verify_mac(msg, (const unsigned char *)"secret", 6, &vo);
    if ((signer = cmpr_msg_get0_protection_cert(msg)) != NULL)
        (void)cmpr_verify_sig(msg, X509_get0_pubkey(signer));
    if ((reqs = cmpr_msg_get0_reqs(msg)) != NULL) {
        for (int i = 0; i < sk_CMPR_CERTREQMSG_num(reqs) && i < 4; i++) {
            CMPR_CERTREQMSG *crm = sk_CMPR_CERTREQMSG_value(reqs, i);
            EVP_PKEY *pk = cmpr_tmpl_get1_pubkey(crm->certReq->certTemplate);
            OSSL_CRMF_CERTID *cid = cmpr_crm_get1_oldcertid(crm);
            CMPR_PKIARCHIVEOPTIONS *ao = cmpr_crm_get1_archive_options(crm);
            OSSL_CRMF_MSG *om = cmpr_crm_to_ossl(crm);
            time_t nb, na;

            (void)cmpr_tmpl_get_validity(crm->certReq->certTemplate, &nb, &na);
            (void)cmpr_crm_certreqid(crm);
            EVP_PKEY_free(pk);
            OSSL_CRMF_CERTID_free(cid);
            CMPR_PKIARCHIVEOPTIONS_free(ao);
            OSSL_CRMF_MSG_free(om);
        }
    }
    if (cmpr_msg_bodytype(msg) == CMPR_BODY_RR) {
        const X509_NAME *iss;
        const ASN1_INTEGER *ser;
        int reason;

        (void)cmpr_rr_get(msg, 0, &iss, &ser, &reason);
    }
    if (cmpr_msg_bodytype(msg) == CMPR_BODY_GENM || cmpr_msg_bodytype(msg) == CMPR_BODY_GENP)
        for (int i = 0; i < sk_CMPR_ITAV_num(msg->body->value.genm); i++)
            poke_itav(sk_CMPR_ITAV_value(msg->body->value.genm, i));
    for (int i = 0; i < sk_CMPR_ITAV_num(msg->header->generalInfo); i++)
        poke_itav(sk_CMPR_ITAV_value(msg->header->generalInfo, i));
    {
        ASN1_UTF8STRING *p = cmpr_msg_get1_certprofile(msg);

        ASN1_UTF8STRING_free(p);
    }
    {
        CMPR_PKIMESSAGE *rsp = cmpr_msg_build_error(msg, cmpr_pkisi_new(2, 4, "x"), 1, "y");

        CMPR_PKIMESSAGE_free(rsp);
    }
 out:
    OPENSSL_free(der);
    CMPR_PKIMESSAGE_free(msg);
    BIO_free(null);
    ERR_clear_error();
    return 0;
}
