/* Certificate requests (RFC 9810 5.3.1-6, RFC 9483 4.1): ir, cr, kur, p10cr
 * and ccr; the certConf that confirms them (5.3.18), the pollReq of a client
 * that waits (5.3.22, RFC 9483 4.4), a client's error (5.3.21), and the
 * operator's approval of a pending request. */
#include "core/req.h"
#include "core/grant.h"
#include "core/txn.h"
#include "base/err.h"
#include "base/log.h"
#include "codec/keygen.h"
#include "codec/oids.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/err.h>

struct enroll {
    long cert_req_id;
    struct cmpr_ca_request creq;
    EVP_PKEY *pubkey;
    const X509_NAME *subject;
    STACK_OF(X509_EXTENSION) *exts_owned;
    X509_NAME *old_subject;          /* kur */
    const struct cmpr_conf_profile *pr;
    struct cmpr_ca_grant grant;      /* what the certificate gets */
    int central;                     /* RFC 9483 4.1.6: the CA makes the key (pubkey is the pair) */
    char central_spec[48];           /* the key type asked for, "" when the CA chooses */
};

static void
enroll_free(struct enroll *e)
{
    EVP_PKEY_free(e->pubkey);
    sk_X509_EXTENSION_pop_free(e->exts_owned, X509_EXTENSION_free);
    X509_NAME_free(e->old_subject);
    cmpr_ca_grant_clear(&e->grant);
}

const struct cmpr_conf_profile *
cmpr_enroll_profile(struct req *q, char *why, size_t whylen)
{
    const struct cmpr_conf *conf = q->core->conf;
    ASN1_UTF8STRING *cp = cmpr_msg_get1_certprofile(q->msg);
    char name[128] = "";
    const struct cmpr_conf_profile *pr;

    if (cp != NULL) {
        snprintf(name, sizeof(name), "%.*s", ASN1_STRING_length(cp), (const char *)ASN1_STRING_get0_data(cp));
        ASN1_UTF8STRING_free(cp);
    } else if (q->info->label != NULL) {
        snprintf(name, sizeof(name), "%s", q->info->label);
    } else if (q->client != NULL && q->client->profiles != NULL) {
        snprintf(name, sizeof(name), "%s", q->client->profiles[0]);
    } else if (q->ca->conf->default_profile != NULL) {
        snprintf(name, sizeof(name), "%s", q->ca->conf->default_profile);
    } else if (conf->n_profiles > 0) {
        snprintf(name, sizeof(name), "%s", conf->profiles[0].name);
    }
    if ((pr = cmpr_conf_profile(conf, name)) == NULL) {
        snprintf(why, whylen, name[0] ? "unknown certificate profile '%s'" : "no certificate profile is configured", name);
        return NULL;
    }
    if (q->ca->conf->profiles != NULL && !cmpr_strv_contains(q->ca->conf->profiles, name)) {
        snprintf(why, whylen, "CA %s does not issue profile '%s'", q->ca->conf->name, name);
        return NULL;
    }
    if (q->client != NULL && q->client->profiles != NULL && !cmpr_strv_contains(q->client->profiles, name)) {
        snprintf(why, whylen, "client %s may not use profile '%s'", q->client->name, name);
        return NULL;
    }
    return pr;
}

/* A body-level refusal: ip/cp/kup with status si, a rejection (RFC 9483 4.1). */
static CMPR_PKIMESSAGE *
certrep_rejected(struct req *q, long certReqId, CMPR_PKISI *si)
{
    CMPR_PKIMESSAGE *e;

    if (q->save_txn == 1 && (e = cmpr_txn_move(q, CMPR_TXN_REJECTED)) != NULL) {
        CMPR_PKISI_free(si);
        return e;
    }
    return cmpr_msg_build_certrep(q->msg, cmpr_rep_type(q->body), certReqId, si, NULL, NULL, NULL);
}

#define reject_certreq(q, certReqId, failbit, ...) \
    certrep_rejected((q), (certReqId), cmpr_rejection((q), "rejected", (failbit), __VA_ARGS__))

/* proof of possession (RFC 9810 5.2.8, RFC 9483 4.1.1; badPOP) */
static CMPR_PKIMESSAGE *
check_pop(struct req *q, CMPR_CERTREQMSG *crm)
{
    int r;

    if (crm->popo == NULL)
        return reject_certreq(q, 0, CMPR_FI_BAD_POP, "no proof of possession");
    switch (crm->popo->type) {
    case CMPR_POPO_SIGNATURE:
        if ((r = cmpr_crm_verify_pop_sig(crm)) != CMPR_OK)
            return reject_certreq(q, 0, CMPR_FI_BAD_POP, "proof of possession: %s", cmpr_strerror(r));
        return NULL;
    case CMPR_POPO_RAVERIFIED:
        /* RFC 9483 5.1.1: only an RA (cmcRA EKU, or a [client] with ra = yes)
         * may assert it checked POP */
        if (!((q->auth == AUTH_SIG && (q->signer_is_ra || (q->client != NULL && q->client->ra)))
              || (q->auth == AUTH_MAC && q->client != NULL && q->client->ra)))
            return reject_certreq(q, 0, CMPR_FI_NOT_AUTHORIZED,
                                  "raVerified proof of possession is for registration authorities");
        return NULL;
    default:
        return reject_certreq(q, 0, CMPR_FI_BAD_POP,
                              "proof of possession by key encipherment or agreement is not supported");
    }
}

/* Reads what a request asks for. Returns an answer on refusal. */
static CMPR_PKIMESSAGE *
read_request(struct req *q, CMPR_PKIMESSAGE *msg, int body, struct enroll *e)
{
    memset(e, 0, sizeof(*e));
    if (body == CMPR_BODY_P10CR) {
        X509_REQ *csr = msg->body->value.p10cr;

        e->cert_req_id = CMPR_CERTREQID_NONE;
        e->pubkey = X509_REQ_get_pubkey(csr);
        if (e->pubkey == NULL || X509_REQ_verify(csr, e->pubkey) != 1) {
            ERR_clear_error();
            return reject_certreq(q, e->cert_req_id, CMPR_FI_BAD_POP,
                                  "the PKCS#10 request's self-signature does not verify");
        }
        e->subject = X509_REQ_get_subject_name(csr);
        e->exts_owned = X509_REQ_get_extensions(csr);
        e->creq.exts = e->exts_owned;
    } else {
        CMPR_CERTREQMSGS *reqs = cmpr_msg_get0_reqs(msg);
        CMPR_CERTREQMSG *crm;
        CMPR_CERTTEMPLATE *t;
        CMPR_PKIMESSAGE *rsp;

        /* RFC 9483 4.1.1: exactly one CertReqMsg with certReqId 0 */
        if (sk_CMPR_CERTREQMSG_num(reqs) != 1)
            return reject_certreq(q, 0, CMPR_FI_BAD_REQUEST, "exactly one certificate request per message is supported");
        crm = sk_CMPR_CERTREQMSG_value(reqs, 0);
        e->cert_req_id = cmpr_crm_certreqid(crm);
        if (e->cert_req_id != 0)
            return reject_certreq(q, e->cert_req_id, CMPR_FI_BAD_REQUEST, "certReqId must be 0");
        t = crm->certReq->certTemplate;
        e->central = body != CMPR_BODY_CCR
                     && cmpr_spki_wants_central(t->publicKey, e->central_spec, sizeof(e->central_spec));
        if (!e->central && (e->pubkey = cmpr_tmpl_get1_pubkey(t)) == NULL) {
            ERR_clear_error();
            return reject_certreq(q, 0, CMPR_FI_BAD_CERT_TEMPLATE, "the template's public key is malformed");
        }
        e->subject = t->subject;
        e->creq.spki = t->publicKey;
        e->creq.exts = t->extensions;
        if (t->validity != NULL && cmpr_tmpl_get_validity(t, &e->creq.not_before, &e->creq.not_after) != CMPR_OK)
            return reject_certreq(q, 0, CMPR_FI_BAD_CERT_TEMPLATE, "the template's validity is malformed");
        /* a key the CA makes needs no proof of possession (RFC 9483 4.1.6) */
        if (!e->central && (rsp = check_pop(q, crm)) != NULL)
            return rsp;
    }
    e->creq.subject = e->subject;
    e->creq.pubkey = e->pubkey;
    return NULL;
}

static int
one_time_used_cb(const struct cmpr_txn_rec *rec, void *arg)
{
    const char *name = arg;

    return strcmp(rec->client, name) == 0 ? CMPR_ERR_EXISTS : CMPR_OK;
}

static int
client_enrolled_before(struct req *q)
{
    struct cmpr_store *st = q->core->st;

    return st->ops->txn_list(st, CMPR_TXN_CONFIRMED, one_time_used_cb, (void *)q->client->name) == CMPR_ERR_EXISTS
        || st->ops->txn_list(st, CMPR_TXN_ISSUED, one_time_used_cb, (void *)q->client->name) == CMPR_ERR_EXISTS;
}

/* Builds the positive answer for an issued certificate: accepted, or
 * grantedWithMods naming the changes in mods (RFC 9810 5.2.3); the
 * transaction moves on (RFC 9810 5.1.1.1-2: implicitConfirm is granted by
 * echoing it; otherwise the client learns how long we wait for certConf). */
/* the generated private key goes to the client in the answer: signed by
 * the CA's CMP signer, enveloped for the requester's certificate, or its
 * shared secret (RFC 9483 4.1.6); the answer is then not kept (no private
 * key in the store): a retransmission of the request is not answered again */
static int
add_central_key(struct req *q, CMPR_PKIMESSAGE *rsp, EVP_PKEY *key)
{
    CMPR_CERTRESPONSE *cr = sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(rsp)->response, 0);
    CMPR_ENCRYPTEDKEY *ek = CMPR_ENCRYPTEDKEY_new();

    if (ek == NULL || cr == NULL || cr->certifiedKeyPair == NULL)
        goto fail;
    ek->type = CMPR_ENCRYPTEDKEY_ENVELOPEDDATA;
    ek->value.envelopedData = q->auth == AUTH_SIG
        ? cmpr_keygen_seal(key, q->ca->signer_key, q->ca->signer_cert, q->ca->signer_chain, q->signer, NULL, 0)
        : cmpr_keygen_seal(key, q->ca->signer_key, q->ca->signer_cert, q->ca->signer_chain, NULL,
                           q->client->secret, q->client->secret_len);
    if (ek->value.envelopedData == NULL)
        goto fail;
    cr->certifiedKeyPair->privateKey = ek;
    q->keep_answer = 0;
    return CMPR_OK;
 fail:
    CMPR_ENCRYPTEDKEY_free(ek);
    return CMPR_ERR_INTERNAL;
}

static CMPR_PKIMESSAGE *
certrep_for(struct req *q, long certReqId, X509 *cert, const char *mods, int implicit, EVP_PKEY *central)
{
    STACK_OF(X509) *chain = cmpr_ca_get1_chain(q->ca), *capubs = NULL;
    CMPR_PKIMESSAGE *rsp, *e;
    time_t now = time(NULL);

    if ((e = cmpr_txn_move(q, implicit ? CMPR_TXN_CONFIRMED : CMPR_TXN_ISSUED)) != NULL) {
        sk_X509_pop_free(chain, X509_free);
        return e;
    }
    if (q->txn.req_type == CMPR_BODY_IR && q->ca->root != NULL) {
        capubs = sk_X509_new_null();
        X509_add_cert(capubs, q->ca->root, X509_ADD_FLAG_UP_REF);
    }
    rsp = cmpr_msg_build_certrep(q->msg, cmpr_rep_type(q->txn.req_type), certReqId,
                                 mods != NULL && mods[0] != '\0'
                                 ? cmpr_pkisi_new(CMPR_STATUS_GRANTED_WITH_MODS, 0, mods)
                                 : cmpr_pkisi_new(CMPR_STATUS_ACCEPTED, 0, NULL), cert, capubs, chain);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(capubs, X509_free);
    if (rsp == NULL)
        return NULL;
    if (central != NULL && add_central_key(q, rsp, central) != CMPR_OK) {
        CMPR_PKIMESSAGE_free(rsp);
        return NULL;
    }
    if (implicit) {
        cmpr_hdr_push0_geninfo(rsp->header, cmpr_itav_new_implicit_confirm());
        q->revoke_old = 1;
    } else {
        cmpr_hdr_push0_geninfo(rsp->header, cmpr_itav_new_confirm_wait_time(now + q->core->conf->confirm_wait));
        q->txn.expires = (int64_t)now + q->core->conf->confirm_wait;
    }
    return rsp;
}

static struct cmpr_cert_rec *
cert_rec_new(struct req *q, X509 *cert, int confirmed)
{
    struct cmpr_cert_rec *c = calloc(1, sizeof(*c));
    unsigned char *der = NULL;
    int n;
    struct tm tm;

    if (c == NULL || (n = i2d_X509(cert, &der)) <= 0) {
        free(c);
        return NULL;
    }
    cmpr_serial_bytes(X509_get0_serialNumber(cert), c->serial, sizeof(c->serial), &c->serial_len);
    cmpr_name_text(X509_get_issuer_name(cert), c->issuer, sizeof(c->issuer));
    cmpr_name_text(X509_get_subject_name(cert), c->subject, sizeof(c->subject));
    if (ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm))
        c->not_before = (int64_t)timegm(&tm);
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm))
        c->not_after = (int64_t)timegm(&tm);
    c->reason = -1;
    c->confirmed = confirmed;
    memcpy(c->tid, q->txn.tid, q->txn.tid_len);
    c->tid_len = q->txn.tid_len;
    if ((c->der = cmpr_memdup(der, (size_t)n)) == NULL) {
        OPENSSL_free(der);
        free(c);
        return NULL;
    }
    c->der_len = (size_t)n;
    OPENSSL_free(der);
    return c;
}

/* pkiArchiveOptions (RFC 4211 6.4, RFC 9810 5.2.6): the private key,
 * encrypted to the CA's encryption certificate, is checked against the
 * requested public key and kept encrypted for key recovery (krr).
 * Returns CMPR_OK (maybe nothing to archive) or a failInfo bit in *fb. */
static int
archive_extract(struct req *q, const CMPR_CERTREQMSG *crm, EVP_PKEY *pub, unsigned char **der_r,
                size_t *len_r, int *fb, char *why, size_t whylen)
{
    CMPR_PKIARCHIVEOPTIONS *opt;
    unsigned char *plain = NULL;
    size_t plen = 0;
    const unsigned char *p;
    EVP_PKEY *priv = NULL;
    int r = CMPR_ERR_INVALID_ARG, n;

    *der_r = NULL;
    *len_r = 0;
    if (cmpr_crm_get0_control(crm, CMPR_REGCTRL_PKIARCHIVEOPTIONS) == NULL)
        return CMPR_OK;
    *fb = CMPR_FI_BAD_REQUEST;
    if ((opt = cmpr_crm_get1_archive_options(crm)) == NULL) {
        *fb = CMPR_FI_BAD_DATA_FORMAT;
        snprintf(why, whylen, "pkiArchiveOptions is malformed");
        return r;
    }
    if (opt->type != CMPR_ARCHIVE_ENCRYPTEDPRIVKEY) {
        snprintf(why, whylen, "only pkiArchiveOptions encryptedPrivKey is supported");
        goto out;
    }
    if (opt->value.encryptedPrivKey->type != CMPR_ENCRYPTEDKEY_ENVELOPEDDATA) {
        snprintf(why, whylen, "archived keys must come as EnvelopedData (EncryptedValue is deprecated)");
        goto out;
    }
    if (q->ca->enc_key == NULL) {
        snprintf(why, whylen, "key archive is not configured for CA %s", q->ca->conf->name);
        goto out;
    }
    if (cmpr_envdata_open(opt->value.encryptedPrivKey->value.envelopedData, q->ca->enc_key, q->ca->enc_cert,
                          NULL, 0, &plain, &plen) != CMPR_OK) {
        *fb = CMPR_FI_BAD_POP;
        snprintf(why, whylen, "the archived key cannot be decrypted with the CA's encryption key");
        goto out;
    }
    p = plain;
    if ((priv = d2i_AutoPrivateKey(NULL, &p, (long)plen)) == NULL || pub == NULL || EVP_PKEY_eq(priv, pub) != 1) {
        *fb = CMPR_FI_BAD_POP;
        snprintf(why, whylen, "the archived private key does not belong to the requested public key");
        goto out;
    }
    if ((n = i2d_CMPR_ENVELOPEDDATA(opt->value.encryptedPrivKey->value.envelopedData, der_r)) <= 0) {
        *fb = CMPR_FI_SYSTEM_FAILURE;
        snprintf(why, whylen, "cannot keep the archived key");
        goto out;
    }
    *len_r = (size_t)n;
    r = CMPR_OK;
 out:
    EVP_PKEY_free(priv);
    OPENSSL_clear_free(plain, plen);
    CMPR_PKIARCHIVEOPTIONS_free(opt);
    ERR_clear_error();
    return r;
}

/* the certificate a kur updates: named by oldCertID (RFC 9483 4.1.3), or
 * else the signer's; *holder when the signer is that certificate */
static CMPR_PKIMESSAGE *
kur_target(struct req *q, struct cmpr_cert_rec *old, int *holder)
{
    CMPR_CERTREQMSG *crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(q->msg), 0);
    OSSL_CRMF_CERTID *cid = cmpr_crm_get1_oldcertid(crm);
    const ASN1_INTEGER *serial = NULL;
    const X509_NAME *issuer = NULL;
    unsigned char sn[CMPR_STORE_MAX_ID];
    size_t snlen;
    int r;

    if (cid != NULL) {
        serial = OSSL_CRMF_CERTID_get0_serialNumber(cid);
        issuer = OSSL_CRMF_CERTID_get0_issuer(cid);      /* a directoryName (OpenSSL checks) */
    } else if (q->auth == AUTH_SIG) {
        serial = X509_get0_serialNumber(q->signer);
        issuer = X509_get_issuer_name(q->signer);
    }
    *holder = serial != NULL && issuer != NULL && q->auth == AUTH_SIG
              && ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(q->signer)) == 0
              && X509_NAME_cmp(issuer, X509_get_issuer_name(q->signer)) == 0;
    if (serial == NULL || issuer == NULL) {
        OSSL_CRMF_CERTID_free(cid);
        return reject_certreq(q, 0, CMPR_FI_BAD_CERT_ID,
                              "kur must name the certificate to be updated (oldCertID) or be signed with it");
    }
    cmpr_serial_bytes(serial, sn, sizeof(sn), &snlen);
    r = X509_NAME_cmp(issuer, X509_get_subject_name(q->ca->cert)) == 0
        ? q->core->st->ops->cert_get(q->core->st, sn, snlen, old) : CMPR_ERR_NOT_FOUND;
    OSSL_CRMF_CERTID_free(cid);
    if (r != CMPR_OK)
        return reject_certreq(q, 0, CMPR_FI_BAD_CERT_ID, "the certificate to be updated was not issued here");
    return NULL;
}

/* RFC 9483 4.1.3: kur is protected by the certificate being updated, which
 * we issued; or it comes from a client whose renew right covers that
 * certificate (cmprouter.conf(5) [client] renew). The subject stays. */
static CMPR_PKIMESSAGE *
check_kur(struct req *q, struct enroll *e)
{
    struct cmpr_cert_rec old;
    const unsigned char *p;
    X509 *x = NULL;
    CMPR_PKIMESSAGE *rsp;
    int holder;

    if ((rsp = kur_target(q, &old, &holder)) != NULL)
        return rsp;
    if (holder ? q->client != NULL && q->client->renew == CMPR_RIGHT_NONE
               : q->client == NULL || !cmpr_rights_cover(q, q->client->renew, &old))
        rsp = q->client == NULL
              ? reject_certreq(q, 0, CMPR_FI_NOT_AUTHORIZED, "kur must be signed with the certificate to be updated")
              : reject_certreq(q, 0, CMPR_FI_NOT_AUTHORIZED, "client %s may not update this certificate (renew = %s)",
                               q->client->name, cmpr_right_names[q->client->renew]);
    else if (old.status != CMPR_CERT_VALID)
        rsp = reject_certreq(q, 0, CMPR_FI_CERT_REVOKED, "the certificate to be updated is revoked");
    else if ((p = old.der) == NULL || (x = d2i_X509(NULL, &p, (long)old.der_len)) == NULL)
        rsp = cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the certificate to be updated is unreadable");
    else if (e->subject != NULL && X509_NAME_cmp(e->subject, X509_get_subject_name(x)) != 0)
        rsp = reject_certreq(q, 0, CMPR_FI_BAD_CERT_TEMPLATE, "kur may not change the subject");
    if (rsp == NULL) {
        memcpy(q->txn.old_serial, old.serial, old.serial_len);
        q->txn.old_serial_len = old.serial_len;
        e->old_subject = X509_NAME_dup(X509_get_subject_name(x));
        e->subject = e->creq.subject = e->old_subject;
        if (q->client == NULL)
            q->txn.client[0] = '\0';
    }
    X509_free(x);
    cmpr_cert_rec_clear(&old);
    return rsp;
}

/* what the client may ask for: its subjects, its one-time reference */
static CMPR_PKIMESSAGE *
check_client(struct req *q, struct enroll *e)
{
    if (q->client == NULL || q->body == CMPR_BODY_KUR)
        return NULL;
    if (q->client->subject != NULL && !cmpr_name_matches(e->subject, q->client->subject)) {
        char text[256];

        cmpr_name_text(e->subject, text, sizeof(text));
        return reject_certreq(q, e->cert_req_id, CMPR_FI_NOT_AUTHORIZED, "client %s may not request subject %s",
                              q->client->name, text);
    }
    if (q->client->one_time && client_enrolled_before(q))
        return reject_certreq(q, e->cert_req_id, CMPR_FI_NOT_AUTHORIZED,
                              "the one-time reference of client %s was already used", q->client->name);
    return NULL;
}

/* RFC 9483 4.1.6: the profile allows (or requires) central key generation;
 * the key is made here, of the type the template asked for or the
 * profile's central_key_type */
static CMPR_PKIMESSAGE *
check_central(struct req *q, struct enroll *e)
{
    const struct cmpr_conf_profile *pr = e->pr;
    const char *spec = e->central_spec[0] != '\0' ? e->central_spec
                       : pr->central_key_type != NULL ? pr->central_key_type : "ec:P-256";

    if (!e->central) {
        if (pr->central_keygen == 2)
            return reject_certreq(q, e->cert_req_id, CMPR_FI_BAD_CERT_TEMPLATE, "profile %s requires central key "
                                  "generation: send a template without a public key", pr->name);
        return NULL;
    }
    if (pr->central_keygen == 0)
        return reject_certreq(q, e->cert_req_id, CMPR_FI_BAD_CERT_TEMPLATE, "the request carries no public key and "
                              "profile %s does not generate keys (central_keygen = no)", pr->name);
    if (pr->require_approval)
        return reject_certreq(q, e->cert_req_id, CMPR_FI_BAD_REQUEST, "a key generated here cannot wait for "
                              "approval (profile %s)", pr->name);
    if ((e->pubkey = cmpr_key_generate(spec)) == NULL)
        return reject_certreq(q, e->cert_req_id, CMPR_FI_BAD_ALG, "cannot generate a key of type %s", spec);
    e->creq.pubkey = e->pubkey;
    e->creq.spki = NULL;
    return NULL;
}

/* everything a request must pass before the CA looks at it */
static CMPR_PKIMESSAGE *
check_request(struct req *q, struct enroll *e)
{
    char why[256];
    int failbit = 0;
    CMPR_PKIMESSAGE *rsp;

    if ((e->pr = cmpr_enroll_profile(q, why, sizeof(why))) == NULL)
        return reject_certreq(q, e->cert_req_id, CMPR_FI_NOT_AUTHORIZED, "%s", why);
    snprintf(q->txn.profile, sizeof(q->txn.profile), "%s", e->pr->name);
    /* RFC 9810 5.3.11, D.6: cross-certification certifies another CA's key */
    if (q->body == CMPR_BODY_CCR && !e->pr->ca)
        return reject_certreq(q, e->cert_req_id, CMPR_FI_BAD_CERT_TEMPLATE,
                              "ccr needs a CA profile (ca = yes); '%s' is not one", e->pr->name);
    if (q->body == CMPR_BODY_KUR) {
        if ((rsp = check_kur(q, e)) != NULL)
            return rsp;
    } else if (q->auth == AUTH_SIG && q->client == NULL) {
        return reject_certreq(q, e->cert_req_id, CMPR_FI_NOT_AUTHORIZED, "signer %s is not a configured client",
                              q->sender);
    } else if (q->client != NULL && !q->client->enroll) {
        return reject_certreq(q, e->cert_req_id, CMPR_FI_NOT_AUTHORIZED, "client %s may not enroll (enroll = no)",
                              q->client->name);
    }
    if ((rsp = check_central(q, e)) != NULL)
        return rsp;
    if (cmpr_ca_decide(e->pr, q->ca->cert, &e->creq, time(NULL), &e->grant, &failbit, why, sizeof(why)) != CMPR_OK)
        return reject_certreq(q, e->cert_req_id, failbit, "%s", why);
    if ((rsp = check_client(q, e)) != NULL)
        return rsp;
    if (q->body != CMPR_BODY_P10CR) {
        CMPR_CERTREQMSG *crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(q->msg), 0);

        if (archive_extract(q, crm, e->pubkey, &q->archive, &q->archive_len, &failbit, why, sizeof(why)) != CMPR_OK)
            return reject_certreq(q, e->cert_req_id, failbit, "%s", why);
        if (e->pr->require_approval) {
            /* archived at approval time, from the stored request */
            OPENSSL_free(q->archive);
            q->archive = NULL;
        }
    }
    return NULL;
}

/* RFC 9483 4.4: fully validated, then waiting (no failInfo) */
static CMPR_PKIMESSAGE *
make_pending(struct req *q, struct enroll *e)
{
    unsigned char *der = NULL;
    size_t dlen = 0;
    CMPR_PKIMESSAGE *rsp;

    if (cmpr_msg_encode(q->msg, &der, &dlen) != CMPR_OK || (q->txn.request = cmpr_memdup(der, dlen)) == NULL) {
        OPENSSL_free(der);
        return cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "cannot store the request");
    }
    q->txn.request_len = dlen;
    OPENSSL_free(der);
    if ((rsp = cmpr_txn_move(q, CMPR_TXN_PENDING_APPROVAL)) != NULL)
        return rsp;
    cmpr_audit(q, "pending", "profile %s requires approval", e->pr->name);
    return cmpr_msg_build_certrep(q->msg, cmpr_rep_type(q->body), e->cert_req_id,
                                  cmpr_pkisi_new(CMPR_STATUS_WAITING, 0, "waiting for approval by an operator"),
                                  NULL, NULL, NULL);
}

static CMPR_PKIMESSAGE *
issue(struct req *q, struct enroll *e)
{
    X509 *cert = NULL;
    CMPR_PKIMESSAGE *rsp;
    char snhex[2 * CMPR_STORE_MAX_ID + 1];
    int implicit;

    if (cmpr_ca_issue(q->ca, q->core->st, e->pr, &e->creq, &e->grant, &cert) != CMPR_OK)
        return cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the CA could not issue the certificate");
    implicit = q->core->conf->implicit_confirm && cmpr_hdr_has_implicit_confirm(q->msg->header);
    q->new_cert = cert_rec_new(q, cert, implicit);
    if (q->new_cert == NULL) {
        X509_free(cert);
        return cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "cannot record the certificate");
    }
    memcpy(q->txn.serial, q->new_cert->serial, q->new_cert->serial_len);
    q->txn.serial_len = q->new_cert->serial_len;
    cmpr_hex(q->new_cert->serial, q->new_cert->serial_len, snhex, sizeof(snhex));
    cmpr_audit(q, "issued", "profile %s subject %s serial %s%s%s%s%s", e->pr->name, q->new_cert->subject, snhex,
               implicit ? " (implicitly confirmed)" : "", e->central ? " (key generated here, not kept)" : "",
               e->grant.modified ? "; granted with changes: " : "", e->grant.mods);
    rsp = certrep_for(q, e->cert_req_id, cert, e->grant.mods, implicit, e->central ? e->pubkey : NULL);
    X509_free(cert);
    return rsp;
}

CMPR_PKIMESSAGE *
cmpr_enroll_request(struct req *q)
{
    struct enroll e;
    CMPR_PKIMESSAGE *rsp;

    memset(&e, 0, sizeof(e));
    if ((rsp = cmpr_open_txn(q)) != NULL)
        return rsp;
    if ((rsp = read_request(q, q->msg, q->body, &e)) == NULL && (rsp = check_request(q, &e)) == NULL)
        rsp = e.pr->require_approval ? make_pending(q, &e) : issue(q, &e);
    enroll_free(&e);
    return rsp;
}

/* ---------------- certConf (RFC 9810 5.3.18, RFC 9483 4.1.1) ---------------- */

/* kur in a profile with revoke_replaced: once the new certificate is
 * confirmed the old one is superseded (RFC 5280 reason 4) */
void
cmpr_enroll_revoke_replaced(struct req *q)
{
    const struct cmpr_conf_profile *pr = cmpr_conf_profile(q->core->conf, q->txn.profile);
    char snhex[2 * CMPR_STORE_MAX_ID + 1];

    if (!q->revoke_old || pr == NULL || !pr->revoke_replaced || q->txn.old_serial_len == 0)
        return;
    if (cmpr_revoke_serial(q, q->txn.old_serial, q->txn.old_serial_len, 4) == CMPR_OK) {
        cmpr_hex(q->txn.old_serial, q->txn.old_serial_len, snhex, sizeof(snhex));
        cmpr_audit(q, "superseded", "replaced certificate %s revoked after the update was confirmed", snhex);
    }
}

/* 1: the client accepts the certificate; 0: it rejects it; -1: certConf is
 * wrong (the error in *e) */
static int
confirm_status(struct req *q, const struct cmpr_cert_rec *cert, CMPR_PKIMESSAGE **e)
{
    STACK_OF(CMPR_CERTSTATUS) *sts = q->msg->body->value.certConf;
    long want_id = q->txn.req_type == CMPR_BODY_P10CR ? CMPR_CERTREQID_NONE : 0;
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    CMPR_CERTSTATUS *cs;
    int r;

    /* an empty CertConfirmContent rejects everything (RFC 9810 5.3.18) */
    if (sk_CMPR_CERTSTATUS_num(sts) == 0)
        return 0;
    cs = sk_CMPR_CERTSTATUS_value(sts, 0);
    if (sk_CMPR_CERTSTATUS_num(sts) != 1 || ASN1_INTEGER_get(cs->certReqId) != want_id) {
        *e = cmpr_error_rsp(q, CMPR_FI_BAD_CERT_ID, "certConf names an unknown certReqId");
        return -1;
    }
    r = cmpr_cert_hash_der(cert->der, cert->der_len, cs->hashAlg, h, &hl);
    if (r != CMPR_OK || !cmpr_octets_equal(cs->certHash, h, hl)) {
        *e = cmpr_error_rsp(q, CMPR_FI_BAD_CERT_ID, "certHash does not match the issued certificate");
        return -1;
    }
    return cs->statusInfo == NULL || cmpr_pkisi_status(cs->statusInfo) == CMPR_STATUS_ACCEPTED
           || cmpr_pkisi_status(cs->statusInfo) == CMPR_STATUS_GRANTED_WITH_MODS;
}

CMPR_PKIMESSAGE *
cmpr_enroll_confirm(struct req *q)
{
    struct cmpr_cert_rec cert;
    CMPR_PKIMESSAGE *e = NULL;
    int accept;

    if (!q->have_txn)
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "no open transaction with this transactionID");
    if (!cmpr_auth_same_credentials(q))
        return cmpr_error_rsp(q, CMPR_FI_NOT_AUTHORIZED, "certConf must use the credentials of the request");
    if (q->txn.state != CMPR_TXN_ISSUED)
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "certConf not expected: transaction is %s",
                              cmpr_txn_state_name(q->txn.state));
    if (!cmpr_octets_equal(q->msg->header->recipNonce, q->txn.last_nonce, q->txn.last_nonce_len))
        return cmpr_error_rsp(q, CMPR_FI_BAD_RECIPIENT_NONCE, "recipNonce does not echo the senderNonce of our last answer");
    if (q->core->st->ops->cert_get(q->core->st, q->txn.serial, q->txn.serial_len, &cert) != CMPR_OK)
        return cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the issued certificate is missing from the store");
    if ((accept = confirm_status(q, &cert, &e)) < 0) {
        cmpr_cert_rec_clear(&cert);
        return e;
    }
    if ((e = cmpr_txn_move(q, accept ? CMPR_TXN_CONFIRMED : CMPR_TXN_REJECTED)) != NULL) {
        cmpr_cert_rec_clear(&cert);
        return e;
    }
    if (accept) {
        /* confirmed, keeping whatever revocation happened meanwhile */
        q->core->st->ops->cert_set_status(q->core->st, cert.serial, cert.serial_len, cert.status, cert.revoked_at,
                                          cert.reason, 1);
        cmpr_audit(q, "confirmed", "certificate accepted by the client");
        q->revoke_old = 1;
    } else {
        /* the client refused the certificate: it must not stay valid */
        cmpr_revoke_serial(q, cert.serial, cert.serial_len, 5 /* cessationOfOperation */);
        cmpr_audit(q, "rejected", "certificate rejected by the client; revoked");
    }
    cmpr_cert_rec_clear(&cert);
    q->txn.expires = 0;
    q->save_txn = 2;
    return cmpr_msg_build_pkiconf(q->msg);
}

/* ---------------- polling (RFC 9810 5.3.22, RFC 9483 4.4) ---------------- */

/* the approved certificate goes to the pollReq: its type is the request's */
static CMPR_PKIMESSAGE *
deliver_approved(struct req *q, long want_id)
{
    struct cmpr_cert_rec cert;
    const unsigned char *p;
    X509 *x;
    CMPR_PKIMESSAGE *rsp;

    if (q->core->st->ops->cert_get(q->core->st, q->txn.serial, q->txn.serial_len, &cert) != CMPR_OK)
        return cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the approved certificate is missing");
    p = cert.der;
    x = d2i_X509(NULL, &p, (long)cert.der_len);
    cmpr_cert_rec_clear(&cert);
    if (x == NULL)
        return cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the approved certificate is unreadable");
    rsp = certrep_for(q, want_id, x, q->txn.note, 0, NULL);      /* the changes made at approval */
    X509_free(x);
    if (rsp != NULL && cmpr_msg_bodytype(rsp) != CMPR_BODY_ERROR)
        cmpr_audit(q, "delivered", "approved certificate delivered on poll");
    return rsp;
}

CMPR_PKIMESSAGE *
cmpr_enroll_poll(struct req *q)
{
    STACK_OF(CMPR_POLLREQ) *prs = q->msg->body->value.pollReq;
    long id, want_id;

    if (!q->have_txn)
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "no open transaction with this transactionID");
    if (!cmpr_auth_same_credentials(q))
        return cmpr_error_rsp(q, CMPR_FI_NOT_AUTHORIZED, "pollReq must use the credentials of the request");
    if (!cmpr_octets_equal(q->msg->header->recipNonce, q->txn.last_nonce, q->txn.last_nonce_len))
        return cmpr_error_rsp(q, CMPR_FI_BAD_RECIPIENT_NONCE, "recipNonce does not echo the senderNonce of our last answer");
    want_id = q->txn.req_type == CMPR_BODY_P10CR ? CMPR_CERTREQID_NONE : 0;
    if (sk_CMPR_POLLREQ_num(prs) != 1)
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "exactly one pollReq entry is supported");
    id = ASN1_INTEGER_get(sk_CMPR_POLLREQ_value(prs, 0)->certReqId);
    if (id != want_id && id != CMPR_CERTREQID_NONE)
        return cmpr_error_rsp(q, CMPR_FI_BAD_CERT_ID, "pollReq names an unknown certReqId");
    q->save_txn = 2;
    switch (q->txn.state) {
    case CMPR_TXN_PENDING_APPROVAL:
        return cmpr_msg_build_pollrep(q->msg, id, q->core->conf->check_after, "waiting for approval by an operator");
    case CMPR_TXN_WAITING_POLL:
        return deliver_approved(q, want_id);
    case CMPR_TXN_REJECTED:
        if (q->txn.note[0] != '\0' || q->txn.serial_len == 0)
            return cmpr_msg_build_certrep(q->msg, cmpr_rep_type(q->txn.req_type), want_id,
                                          cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_NOT_AUTHORIZED),
                                                         q->txn.note[0] ? q->txn.note : "rejected"),
                                          NULL, NULL, NULL);
        /* fall through */
    default:
        q->save_txn = 0;
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "pollReq not expected: transaction is %s",
                              cmpr_txn_state_name(q->txn.state));
    }
}

/* ---------------- a client's error (RFC 9810 5.3.21) ---------------- */

CMPR_PKIMESSAGE *
cmpr_enroll_client_error(struct req *q)
{
    CMPR_PKIMESSAGE *e;

    if (q->have_txn && cmpr_auth_same_credentials(q) && q->txn.state == CMPR_TXN_ISSUED) {
        if ((e = cmpr_txn_move(q, CMPR_TXN_REJECTED)) != NULL)
            return e;
        cmpr_revoke_serial(q, q->txn.serial, q->txn.serial_len, 5);
        q->save_txn = 2;
    }
    cmpr_audit(q, "client-error", "the client ended the transaction with an error");
    return cmpr_msg_build_pkiconf(q->msg);
}

/* ---------------- the operator's approval ---------------- */

int
cmpr_enroll_approve(struct req *q)
{
    struct cmpr_core *core = q->core;
    struct enroll e;
    CMPR_PKIMESSAGE *rej;
    X509 *cert = NULL;
    int r, fb;
    char why[256];

    if ((r = cmpr_msg_decode(q->txn.request, q->txn.request_len, &q->msg, NULL)) != CMPR_OK)
        return r;
    q->body = q->txn.req_type;
    /* the request was fully validated when it arrived; its POP was checked then */
    if ((rej = read_request(q, q->msg, q->body, &e)) != NULL) {
        CMPR_PKIMESSAGE_free(rej);
        r = CMPR_ERR_INVALID_ARG;
        goto out;
    }
    if ((e.pr = cmpr_conf_profile(core->conf, q->txn.profile)) == NULL) {
        r = CMPR_ERR_CONFIG;
        goto out;
    }
    /* the profile as it is now, at the time of issue */
    if (cmpr_ca_decide(e.pr, q->ca->cert, &e.creq, time(NULL), &e.grant, &fb, why, sizeof(why)) != CMPR_OK) {
        cmpr_log_error("approval of %s: %s", q->txn.profile, why);
        r = CMPR_ERR_INVALID_ARG;
        goto out;
    }
    if ((r = cmpr_ca_issue(q->ca, core->st, e.pr, &e.creq, &e.grant, &cert)) != CMPR_OK)
        goto out;
    snprintf(q->txn.note, sizeof(q->txn.note), "%s", e.grant.mods);
    if ((q->new_cert = cert_rec_new(q, cert, 0)) == NULL) {
        r = CMPR_ERR_ALLOC;
        goto out;
    }
    if ((r = core->st->ops->cert_put(core->st, q->new_cert)) != CMPR_OK)
        goto out;
    if (q->body != CMPR_BODY_P10CR
            && archive_extract(q, sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(q->msg), 0), X509_get0_pubkey(cert),
                               &q->archive, &q->archive_len, &fb, why, sizeof(why)) == CMPR_OK
            && q->archive != NULL
            && (r = core->st->ops->archive_put(core->st, q->new_cert->serial, q->new_cert->serial_len,
                                               q->new_cert->subject, q->txn.client, q->archive,
                                               q->archive_len)) != CMPR_OK)
        goto out;
    memcpy(q->txn.serial, q->new_cert->serial, q->new_cert->serial_len);
    q->txn.serial_len = q->new_cert->serial_len;
    if ((r = cmpr_txn_to(&q->txn, CMPR_TXN_WAITING_POLL)) != CMPR_OK)
        goto out;
    q->txn.updated = (int64_t)time(NULL);
    if ((r = core->st->ops->txn_set_state(core->st, &q->txn)) != CMPR_OK)
        goto out;
    cmpr_audit(q, "approved", "certificate for %s issued; delivered on the next poll", q->new_cert->subject);
 out:
    X509_free(cert);
    enroll_free(&e);
    return r;
}

void
cmpr_enroll_done(struct req *q)
{
    cmpr_cert_rec_clear(q->new_cert);
    free(q->new_cert);
    q->new_cert = NULL;
    OPENSSL_free(q->archive);
    q->archive = NULL;
}
