/* What every stage of the core needs to answer: hex and octet helpers, the
 * audit trail, error and waiting answers, and the protection of answers. */
#include "core/req.h"
#include "core/txn.h"
#include "base/err.h"
#include "base/log.h"
#include "codec/oids.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
cmpr_hex(const unsigned char *d, size_t len, char *out, size_t outlen)
{
    size_t i;

    out[0] = '\0';
    for (i = 0; i < len && 2 * i + 2 < outlen; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void
cmpr_octets(const ASN1_OCTET_STRING *os, unsigned char *dst, size_t cap, size_t *len_r)
{
    *len_r = 0;
    if (os == NULL || (size_t)ASN1_STRING_length(os) > cap)
        return;
    memcpy(dst, ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os));
    *len_r = (size_t)ASN1_STRING_length(os);
}

int
cmpr_octets_equal(const ASN1_OCTET_STRING *os, const unsigned char *d, size_t len)
{
    return os != NULL && (size_t)ASN1_STRING_length(os) == len
        && memcmp(ASN1_STRING_get0_data(os), d, len) == 0;
}

unsigned char *
cmpr_memdup(const unsigned char *d, size_t len)
{
    unsigned char *c = malloc(len > 0 ? len : 1);

    if (c != NULL && len > 0)
        memcpy(c, d, len);
    return c;
}

int
cmpr_encode(const CMPR_PKIMESSAGE *m, unsigned char **der_r, size_t *len_r)
{
    unsigned char *o = NULL;
    size_t n = 0;
    int r = cmpr_msg_encode(m, &o, &n);

    *der_r = NULL;
    if (r != CMPR_OK)
        return r;
    *der_r = cmpr_memdup(o, n);
    *len_r = n;
    OPENSSL_free(o);
    return *der_r != NULL ? CMPR_OK : CMPR_ERR_ALLOC;
}

void __attribute__((format(printf, 3, 4)))
cmpr_audit(struct req *q, const char *event, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    const unsigned char *tid = NULL;
    size_t tid_len = 0;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (q->msg != NULL && q->msg->header->transactionID != NULL) {
        tid = ASN1_STRING_get0_data(q->msg->header->transactionID);
        tid_len = (size_t)ASN1_STRING_length(q->msg->header->transactionID);
        if (tid_len > CMPR_STORE_MAX_ID)
            tid_len = CMPR_STORE_MAX_ID;
    }
    (void)q->core->st->ops->audit(q->core->st, tid, tid_len,
                                  q->client != NULL ? q->client->name : q->sender, event, detail);
    cmpr_log_info("%s %s tid=%s %s: %s: %s", q->info->medium, q->info->peer != NULL ? q->info->peer : "-",
                  q->tidhex[0] ? q->tidhex : "-",
                  q->client != NULL ? q->client->name : (q->sender[0] ? q->sender : "-"), event, detail);
}

CMPR_PKISI *
cmpr_rejection(struct req *q, const char *event, int failbit, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cmpr_audit(q, event, "%s: %s", cmpr_failinfo_name(failbit), text);
    return cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(failbit), text);
}

CMPR_PKIMESSAGE *
cmpr_waiting_rsp(struct req *q, const char *text)
{
    if (cmpr_is_certreq(q->body))
        return cmpr_msg_build_certrep(q->msg, cmpr_rep_type(q->body), cmpr_req_cert_req_id(q),
                                      cmpr_pkisi_new(CMPR_STATUS_WAITING, 0, text), NULL, NULL, NULL);
    return cmpr_msg_build_error(q->msg, cmpr_pkisi_new(CMPR_STATUS_WAITING, 0, text), -1, NULL);
}

void
cmpr_mac_defaults(const struct cmpr_core *c, int kind, struct cmpr_mac_params *p)
{
    int i = kind == CMPR_MAC_PBMAC1 ? 1 : 0;

    cmpr_mac_params_default(p, kind);
    if (c->conf->mac_defaults[i].iter > 0) {
        p->owf_nid = c->conf->mac_defaults[i].owf_nid;
        p->mac_nid = c->conf->mac_defaults[i].mac_nid;
        p->iter = (unsigned)c->conf->mac_defaults[i].iter;
    }
}

int
cmpr_protect_for(struct cmpr_core *c, struct cmpr_ca *ca, const struct cmpr_route *rt,
                 const struct cmpr_conf_client *client, int auth, int mac_kind, const X509_ALGOR *req_alg,
                 CMPR_PKIMESSAGE *rsp)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *chain = NULL;

    /* who answers: the RA for what went upstream, else the CA */
    if (rt == NULL && ca == NULL)
        rt = c->ra_signer;
    if (rt != NULL && rt->ra_cert != NULL) {
        key = rt->ra_key;
        cert = rt->ra_cert;
        chain = rt->ra_chain;
    } else if (ca != NULL) {
        key = ca->signer_key;
        cert = ca->signer_cert;
        chain = ca->signer_chain;
    } else if (c->ra_signer != NULL) {
        key = c->ra_signer->ra_key;
        cert = c->ra_signer->ra_cert;
        chain = c->ra_signer->ra_chain;
    }
    if (cert != NULL && cmpr_hdr_set1_sender_name(rsp->header, X509_get_subject_name(cert)) != CMPR_OK)
        return CMPR_ERR_ALLOC;
    if (auth == AUTH_MAC && client != NULL && client->secret != NULL && (ca == NULL || ca->conf->mac_responses)) {
        struct cmpr_mac_params mp;

        /* the answer is protected as the request was (its OWF or PRF, MAC
         * and iteration count, already within max_mac_iterations), else
         * with the defaults */
        if (req_alg == NULL || cmpr_mac_params_of(req_alg, (unsigned)c->conf->max_mac_iterations, &mp) != CMPR_OK
                || mp.kind != mac_kind)
            cmpr_mac_defaults(c, mac_kind, &mp);
        if (cmpr_hdr_set1_sender_kid(rsp->header, (const unsigned char *)client->reference,
                                     strlen(client->reference)) != CMPR_OK)
            return CMPR_ERR_ALLOC;
        return cmpr_protect_mac(rsp, client->secret, client->secret_len, &mp, c->mac_cache);
    }
    if (cert == NULL) {
        cmpr_log_debug("an answer goes unprotected: no [ca] and no route with ra_cert to sign it");
        return CMPR_OK;
    }
    return cmpr_protect_sig(rsp, key, NULL, 0, cert, chain);
}

int
cmpr_protect_answer(struct req *q, CMPR_PKIMESSAGE *rsp)
{
    return cmpr_protect_for(q->core, q->ca, q->route, q->client, q->auth, q->mac_kind,
                            q->msg != NULL && q->msg->header != NULL ? q->msg->header->protectionAlg : NULL, rsp);
}

int
cmpr_is_request(int body)
{
    switch (body) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_P10CR: case CMPR_BODY_KUR:
    case CMPR_BODY_KRR: case CMPR_BODY_CCR: case CMPR_BODY_RR: case CMPR_BODY_GENM:
    case CMPR_BODY_ERROR: case CMPR_BODY_CERTCONF: case CMPR_BODY_POLLREQ:
    case CMPR_BODY_NESTED: case CMPR_BODY_POPDECR:
        return 1;
    default:
        return 0;
    }
}

int
cmpr_is_certreq(int body)
{
    return body == CMPR_BODY_IR || body == CMPR_BODY_CR || body == CMPR_BODY_KUR
           || body == CMPR_BODY_P10CR || body == CMPR_BODY_CCR;
}

int
cmpr_is_first(int body)
{
    return cmpr_is_certreq(body) || body == CMPR_BODY_RR || body == CMPR_BODY_GENM
           || body == CMPR_BODY_KRR || body == CMPR_BODY_NESTED;
}

int
cmpr_rep_type(int body)
{
    return body == CMPR_BODY_IR ? CMPR_BODY_IP : body == CMPR_BODY_KUR ? CMPR_BODY_KUP
         : body == CMPR_BODY_CCR ? CMPR_BODY_CCP : CMPR_BODY_CP;
}

long
cmpr_req_cert_req_id(const struct req *q)
{
    const CMPR_CERTREQMSGS *reqs = cmpr_msg_get0_reqs(q->msg);

    if (q->body == CMPR_BODY_P10CR)
        return CMPR_CERTREQID_NONE;
    if (reqs != NULL && sk_CMPR_CERTREQMSG_num(reqs) > 0)
        return cmpr_crm_certreqid(sk_CMPR_CERTREQMSG_value(reqs, 0));
    if (q->body == CMPR_BODY_POLLREQ && sk_CMPR_POLLREQ_num(q->msg->body->value.pollReq) > 0)
        return ASN1_INTEGER_get(sk_CMPR_POLLREQ_value(q->msg->body->value.pollReq, 0)->certReqId);
    return 0;
}

/* counts the answer by the status it carries */
void
cmpr_count_answer(struct cmpr_core *c, const CMPR_PKIMESSAGE *rsp)
{
    const CMPR_PKISI *si = NULL;
    long st;

    switch (cmpr_msg_bodytype(rsp)) {
    case CMPR_BODY_ERROR:
        atomic_fetch_add(&c->errors, 1);
        si = rsp->body->value.error->pKIStatusInfo;
        break;
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP:
        si = sk_CMPR_CERTRESPONSE_value(rsp->body->value.ip->response, 0) != NULL
           ? sk_CMPR_CERTRESPONSE_value(rsp->body->value.ip->response, 0)->status : NULL;
        break;
    case CMPR_BODY_RP:
        si = sk_CMPR_PKISI_value(rsp->body->value.rp->status, 0);
        break;
    case CMPR_BODY_KRP:
        si = rsp->body->value.krp->status;
        break;
    default:
        break;
    }
    st = si != NULL ? cmpr_pkisi_status(si) : 7;
    atomic_fetch_add(&c->answers[st >= 0 && st <= 7 ? st : 7], 1);
}

const struct cmpr_conf_client *
cmpr_client_by_name(const struct cmpr_core *c, const char *name)
{
    for (size_t i = 0; name != NULL && name[0] != '\0' && i < c->conf->n_clients; i++)
        if (strcmp(c->conf->clients[i].name, name) == 0)
            return &c->conf->clients[i];
    return NULL;
}

static void
set_txn_ids(struct req *q)
{
    const CMPR_PKIHEADER *h = q->msg->header;

    cmpr_octets(h->transactionID, q->txn.tid, sizeof(q->txn.tid), &q->txn.tid_len);
    snprintf(q->txn.sender, sizeof(q->txn.sender), "%s", q->sender);
    if (q->client != NULL)
        snprintf(q->txn.client, sizeof(q->txn.client), "%s", q->client->name);
    q->txn.req_type = q->body;
    q->txn.created = q->txn.updated = (int64_t)time(NULL);
}

CMPR_PKIMESSAGE *
cmpr_open_txn(struct req *q)
{
    if (q->have_txn)
        return cmpr_error_rsp(q, CMPR_FI_TRANSACTION_ID_IN_USE,
                              "transactionID is already in use; start again with a new one");
    cmpr_txn_init(&q->txn);
    set_txn_ids(q);
    q->save_txn = 1;
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_txn_move(struct req *q, int state)
{
    int from = q->txn.state;

    if (cmpr_txn_to(&q->txn, state) == CMPR_OK)
        return NULL;
    /* the machine refuses: nothing of this may be answered or kept */
    q->save_txn = 0;
    return cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the transaction cannot go from %s to %s",
                          cmpr_txn_state_name(from), cmpr_txn_state_name(state));
}

void
cmpr_serial_bytes(const ASN1_INTEGER *ai, unsigned char *out, size_t cap, size_t *len_r)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
    int n = bn != NULL ? BN_num_bytes(bn) : 0;

    *len_r = 0;
    if (bn != NULL && n > 0 && (size_t)n <= cap) {
        BN_bn2bin(bn, out);
        *len_r = (size_t)n;
    }
    BN_free(bn);
}
