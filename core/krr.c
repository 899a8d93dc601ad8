/* Key recovery (RFC 9810 5.3.7-8): archived private keys, re-encrypted for
 * the holder (its protection certificate) or the MAC client that archived
 * them (password recipient). */
#include "core/req.h"
#include "core/txn.h"
#include "base/buf.h"
#include "base/err.h"
#include "codec/oids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>

struct recovery {
    struct req *q;
    STACK_OF(CMPR_CERTIFIEDKEYPAIR) *hist;
    struct { unsigned char sn[CMPR_STORE_MAX_ID]; size_t len; } *serials;  /* per hist entry */
    size_t cap_serials;
    int refused;
};

/* Re-encrypts one archived key for the requester: to its protection
 * certificate, or with its shared secret (PWRI) for MAC clients. */
static CMPR_ENVELOPEDDATA *
reencrypt(struct req *q, const unsigned char *env, size_t envlen)
{
    const unsigned char *p = env;
    CMPR_ENVELOPEDDATA *in = d2i_CMPR_ENVELOPEDDATA(NULL, &p, (long)envlen), *result = NULL;
    unsigned char *plain = NULL;
    size_t plen = 0;

    if (in != NULL && cmpr_envdata_open(in, q->ca->enc_key, q->ca->enc_cert, NULL, 0, &plain, &plen) == CMPR_OK)
        result = q->auth == AUTH_SIG ? cmpr_envdata_seal(plain, plen, q->signer, NULL, 0)
                 : cmpr_envdata_seal(plain, plen, NULL, q->client->secret, q->client->secret_len);
    OPENSSL_clear_free(plain, plen);
    CMPR_ENVELOPEDDATA_free(in);
    return result;
}

static int
recover_one(const unsigned char *serial, size_t len, const char *client,
            const unsigned char *env, size_t envlen, void *arg)
{
    struct recovery *rc = arg;
    struct req *q = rc->q;
    CMPR_CERTIFIEDKEYPAIR *kp;
    CMPR_ENVELOPEDDATA *ed;
    int n = sk_CMPR_CERTIFIEDKEYPAIR_num(rc->hist), grown;

    /* a MAC client recovers only the keys it archived itself */
    if (q->auth == AUTH_MAC && strcmp(client, q->client->name) != 0) {
        rc->refused = 1;
        return CMPR_OK;
    }
    if ((ed = reencrypt(q, env, envlen)) == NULL)
        return CMPR_ERR_INTERNAL;
    kp = CMPR_CERTIFIEDKEYPAIR_new();
    grown = cmpr_array_grow(&rc->serials, &rc->cap_serials, (size_t)n + 1, sizeof(*rc->serials), 4096);
    if (kp == NULL || grown != CMPR_OK || len > CMPR_STORE_MAX_ID
            || (kp->privateKey = CMPR_ENCRYPTEDKEY_new()) == NULL) {
        CMPR_ENVELOPEDDATA_free(ed);
        CMPR_CERTIFIEDKEYPAIR_free(kp);
        return CMPR_ERR_ALLOC;
    }
    memcpy(rc->serials[n].sn, serial, len);
    rc->serials[n].len = len;
    kp->privateKey->type = CMPR_ENCRYPTEDKEY_ENVELOPEDDATA;
    kp->privateKey->value.envelopedData = ed;
    /* the certificate is attached after the listing: the store is not re-entered */
    kp->certOrEncCert->type = CMPR_CERTORENCCERT_CERTIFICATE;
    sk_CMPR_CERTIFIEDKEYPAIR_push(rc->hist, kp);
    return CMPR_OK;
}

CMPR_PKIMESSAGE *
cmpr_krr_request(struct req *q)
{
    CMPR_CERTREQMSGS *reqs = cmpr_msg_get0_reqs(q->msg);
    CMPR_CERTREQMSG *crm;
    struct recovery rc;
    char subject[512];
    STACK_OF(X509) *chain;
    CMPR_PKIMESSAGE *rsp;
    int r;

    if ((rsp = cmpr_open_txn(q)) != NULL || (rsp = cmpr_txn_move(q, CMPR_TXN_ANSWERED)) != NULL)
        return rsp;
    if (sk_CMPR_CERTREQMSG_num(reqs) != 1)
        return cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_BAD_REQUEST),
                                  "exactly one request per krr is supported"), NULL, NULL, NULL);
    if (cmpr_msg_pvno(q->msg) != CMPR_PVNO_3)
        return cmpr_error_rsp(q, CMPR_FI_UNSUPPORTED_VERSION,
                         "key recovery returns EnvelopedData, which needs pvno 3 (cmp2021)");
    if (q->ca->enc_key == NULL)
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "key archive and recovery are not configured");
    crm = sk_CMPR_CERTREQMSG_value(reqs, 0);
    if (crm->certReq->certTemplate->subject == NULL)
        return cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_BAD_CERT_TEMPLATE),
                                  "the template must name the subject whose keys to recover"),
                                  NULL, NULL, NULL);
    cmpr_name_text(crm->certReq->certTemplate->subject, subject, sizeof(subject));
    /* who may recover: the holder (signature with a certificate for that
     * subject) or the MAC client that archived the keys */
    if (q->auth == AUTH_SIG
            && X509_NAME_cmp(X509_get_subject_name(q->signer), crm->certReq->certTemplate->subject) != 0) {
        cmpr_audit(q, "krr-rejected", "signer may recover only its own keys");
        return cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_NOT_AUTHORIZED),
                                  "a signer may recover only its own keys"), NULL, NULL, NULL);
    }
    memset(&rc, 0, sizeof(rc));
    rc.q = q;
    rc.hist = sk_CMPR_CERTIFIEDKEYPAIR_new_null();
    r = q->core->st->ops->archive_list(q->core->st, subject, recover_one, &rc);
    /* attach the certificates now that the store is free */
    for (int i = 0; r == CMPR_OK && i < sk_CMPR_CERTIFIEDKEYPAIR_num(rc.hist); i++) {
        CMPR_CERTIFIEDKEYPAIR *kp = sk_CMPR_CERTIFIEDKEYPAIR_value(rc.hist, i);
        struct cmpr_cert_rec cert;

        if (q->core->st->ops->cert_get(q->core->st, rc.serials[i].sn, rc.serials[i].len,
                                       &cert) == CMPR_OK) {
            const unsigned char *p = cert.der;

            kp->certOrEncCert->value.certificate = d2i_X509(NULL, &p, (long)cert.der_len);
            cmpr_cert_rec_clear(&cert);
        }
        if (kp->certOrEncCert->value.certificate == NULL)
            r = CMPR_ERR_STORE;
    }
    free(rc.serials);
    if (r != CMPR_OK) {
        sk_CMPR_CERTIFIEDKEYPAIR_pop_free(rc.hist, CMPR_CERTIFIEDKEYPAIR_free);
        return cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "key recovery failed");
    }
    if (sk_CMPR_CERTIFIEDKEYPAIR_num(rc.hist) == 0) {
        sk_CMPR_CERTIFIEDKEYPAIR_free(rc.hist);
        cmpr_audit(q, "krr-rejected", "no archived key for %s%s", subject,
              rc.refused ? " that this client archived" : "");
        return cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_BAD_CERT_ID),
                                  "no archived key for this subject"), NULL, NULL, NULL);
    }
    chain = cmpr_ca_get1_chain(q->ca);
    rsp = cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_ACCEPTED, 0, NULL), NULL, chain,
                             rc.hist);
    cmpr_audit(q, "recovered", "%d archived key(s) of %s returned encrypted to the requester",
          sk_CMPR_CERTIFIEDKEYPAIR_num(rc.hist), subject);
    sk_X509_pop_free(chain, X509_free);
    sk_CMPR_CERTIFIEDKEYPAIR_pop_free(rc.hist, CMPR_CERTIFIEDKEYPAIR_free);
    return rsp;
}
