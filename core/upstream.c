/* What both sides of forwarding share (RFC 9483 5.2): the client's side
 * (forward.c) and the forwarder's (forwarder.c) judge upstream answers,
 * protect towards the upstream and store forwarding records alike. */
#include "core/req.h"
#include "core/txn.h"
#include "base/err.h"
#include "base/log.h"
#include "codec/oids.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

void
cmpr_up_text(const ASN1_STRING *s, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    if (s == NULL)
        return;
    for (int i = 0; i < ASN1_STRING_length(s) && o + 1 < len; i++) {
        unsigned char ch = ASN1_STRING_get0_data(s)[i];

        if (ch < 0x20 || ch > 0x7e)
            return (void)(buf[0] = '\0');       /* not printable: not a reference to show */
        buf[o++] = (char)ch;
    }
    buf[o] = '\0';
}

/* what the answer says about delay: 1 for waiting / pollRep */
int
cmpr_up_is_waiting(const CMPR_PKIMESSAGE *a, long *check_after_r, long *cert_req_id_r)
{
    int body = cmpr_msg_bodytype(a);

    *check_after_r = -1;
    *cert_req_id_r = 0;
    if (body == CMPR_BODY_POLLREP && sk_CMPR_POLLREP_num(a->body->value.pollRep) > 0) {
        const CMPR_POLLREP *p = sk_CMPR_POLLREP_value(a->body->value.pollRep, 0);

        *check_after_r = ASN1_INTEGER_get(p->checkAfter);
        *cert_req_id_r = ASN1_INTEGER_get(p->certReqId);
        return 1;
    }
    if (body == CMPR_BODY_ERROR)
        return cmpr_pkisi_status(a->body->value.error->pKIStatusInfo) == CMPR_STATUS_WAITING
               ? (*cert_req_id_r = -1, 1) : 0;
    if (cmpr_msg_get0_rep(a) != NULL && sk_CMPR_CERTRESPONSE_num(cmpr_msg_get0_rep(a)->response) > 0) {
        const CMPR_CERTRESPONSE *cr = sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(a)->response, 0);

        *cert_req_id_r = ASN1_INTEGER_get(cr->certReqId);
        return cmpr_pkisi_status(cr->status) == CMPR_STATUS_WAITING;
    }
    return 0;
}

/* does this answer end the transaction? */
int
cmpr_up_is_final(const CMPR_PKIMESSAGE *a)
{
    long ca, id;
    int body = cmpr_msg_bodytype(a);

    if (cmpr_up_is_waiting(a, &ca, &id))
        return 0;
    if (cmpr_msg_get0_rep(a) != NULL) {
        const CMPR_CERTRESPONSE *cr = sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(a)->response, 0);

        /* a certificate without implicitConfirm: certConf follows */
        return cr == NULL || cmpr_pkisi_status(cr->status) == CMPR_STATUS_REJECTION
               || cmpr_hdr_has_implicit_confirm(a->header);
    }
    return body != CMPR_BODY_NESTED;
}

/* our own protection towards the upstream (RFC 9483 5.2.3.1) */
int
cmpr_up_protect(const struct cmpr_core *c, const struct cmpr_route *rt, CMPR_PKIMESSAGE *m)
{
    if (rt->ra_cert != NULL)
        return cmpr_protect_sig(m, rt->ra_key, NULL, 0, rt->ra_cert, rt->ra_chain);
    if (rt->ra_reference != NULL) {
        struct cmpr_mac_params mp;

        cmpr_mac_defaults(c, rt->ra_mac_kind, &mp);
        if (cmpr_hdr_set1_sender_kid(m->header, (const unsigned char *)rt->ra_reference,
                                     strlen(rt->ra_reference)) != CMPR_OK)
            return CMPR_ERR_ALLOC;
        /* one salt a minute, as for answers: an upstream that keeps keys
         * derives ours once a minute, and so do we */
        return cmpr_protect_mac(m, rt->ra_secret, rt->ra_secret_len, &mp, c->mac_cache);
    }
    return CMPR_ERR_CONFIG;
}

/* The upstream's answer must be its own (RFC 9483 5.2: responses are checked
 * before they go downstream). With keep and nested the client checks it too;
 * what we cannot check (a MAC with a secret we do not hold, no trust anchors)
 * is left to the client then. With reprotect we must check it. */
int
cmpr_up_verify(struct cmpr_core *c, const struct cmpr_conf_client *client, const struct cmpr_route *rt,
               const CMPR_PKIMESSAGE *a, int ours, char *why, size_t wlen)
{
    const X509_ALGOR *alg = a->header->protectionAlg;
    int kind = alg != NULL ? cmpr_prot_kind(alg->algorithm) : CMPR_PROT_NONE;
    /* answers to what we protected ourselves (reprotect, a batch) must verify here */
    int must = ours || rt->protection == CMPR_ROUTE_REPROTECT;
    int r;

    if (kind == CMPR_PROT_NONE || a->protection == NULL) {
        snprintf(why, wlen, "it is not protected");
        return -1;
    }
    if (kind == CMPR_PROT_PBM || kind == CMPR_PROT_PBMAC1) {
        struct cmpr_verify_opts vo = { (unsigned)c->conf->max_mac_iterations, c->mac_cache, NULL };
        const unsigned char *s = NULL;
        size_t sl = 0;

        if (must && rt->ra_secret != NULL) {
            s = rt->ra_secret;
            sl = rt->ra_secret_len;
        } else if (client != NULL && client->secret != NULL) {
            s = client->secret;
            sl = client->secret_len;
        }
        if (s == NULL) {
            if (!must)
                return 0;
            snprintf(why, wlen, "its MAC cannot be checked here (no ra_secret)");
            return -1;
        }
        if ((r = cmpr_verify_mac(a, s, sl, &vo)) != CMPR_OK) {
            snprintf(why, wlen, "its MAC does not verify: %s", cmpr_strerror(r));
            return -1;
        }
        return 0;
    }
    if (kind == CMPR_PROT_SIG || OBJ_obj2nid(alg->algorithm) == NID_rsassaPss) {
        X509 *signer = cmpr_msg_get0_protection_cert(a);
        X509_STORE_CTX *sc;
        int ok;

        if (rt->trusted == NULL) {
            if (!must)
                return 0;
            snprintf(why, wlen, "it is signed and the route has no trusted anchors");
            return -1;
        }
        if (signer == NULL) {
            snprintf(why, wlen, "it is signed without its certificate in extraCerts");
            return -1;
        }
        sc = X509_STORE_CTX_new();
        ok = sc != NULL && X509_STORE_CTX_init(sc, rt->trusted, signer, a->extraCerts)
             && X509_verify_cert(sc) == 1;
        if (!ok) {
            snprintf(why, wlen, "its signer is not trusted: %s",
                     sc != NULL ? X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)) : "?");
            X509_STORE_CTX_free(sc);
            return -1;
        }
        X509_STORE_CTX_free(sc);
        if ((r = cmpr_verify_sig(a, X509_get0_pubkey(signer))) != CMPR_OK) {
            snprintf(why, wlen, "its signature does not verify: %s", cmpr_strerror(r));
            return -1;
        }
        return 0;
    }
    snprintf(why, wlen, "its protection algorithm is not supported");
    return -1;
}

/* kur and central key generation must keep the client's protection (RFC
 * 9483 5.2.3.2): their reprotect becomes nested */
int
cmpr_up_mode(const struct cmpr_route *rt, int body)
{
    if (rt->protection == CMPR_ROUTE_REPROTECT && body == CMPR_BODY_KUR)
        return CMPR_ROUTE_NESTED;
    return rt->protection;
}

/* An upstream that answered our nested message nested: the one message
 * inside is the answer (a nested answer of more is a batch's, left alone). */
CMPR_PKIMESSAGE *
cmpr_up_unnest(CMPR_PKIMESSAGE *a)
{
    CMPR_PKIMESSAGE *in;

    if (cmpr_msg_bodytype(a) != CMPR_BODY_NESTED || sk_CMPR_PKIMESSAGE_num(a->body->value.nested) != 1)
        return a;
    in = sk_CMPR_PKIMESSAGE_shift(a->body->value.nested);
    CMPR_PKIMESSAGE_free(a);
    return in;
}

/* Stores what the forwarder did with rec. A client's poll may have stored
 * its answer copy meanwhile (the version moved on): that is merged in; a
 * record whose job changed (a new message), or that another node took
 * over (its lease), is left alone. */
int
cmpr_up_put(struct cmpr_core *c, struct cmpr_fwd_rec *rec)
{
    struct cmpr_store *st = c->st;
    int r;

    rec->updated = (int64_t)time(NULL);
    for (int i = 0; i < 5; i++) {
        struct cmpr_fwd_rec fresh;

        if ((r = st->ops->fwd_put(st, rec)) != CMPR_ERR_CONFLICT)
            break;
        if (st->ops->fwd_get(st, rec->tid, rec->tid_len, &fresh) != CMPR_OK)
            return CMPR_ERR_STORE;
        if (fresh.state != rec->read_state || fresh.client_nonce_len != rec->client_nonce_len
                || memcmp(fresh.client_nonce, rec->client_nonce, rec->client_nonce_len) != 0
                || strcmp(fresh.owner, rec->owner) != 0) {
            cmpr_fwd_rec_clear(&fresh);
            return CMPR_ERR_CONFLICT;   /* the transaction moved on without us, or another node drives it */
        }
        free(rec->last);
        rec->last = fresh.last;
        rec->last_len = fresh.last_len;
        fresh.last = NULL;
        memcpy(rec->last_nonce, fresh.last_nonce, sizeof(rec->last_nonce));
        rec->last_nonce_len = fresh.last_nonce_len;
        rec->delayed = fresh.delayed;
        rec->ver = fresh.ver;
        cmpr_fwd_rec_clear(&fresh);
    }
    if (r != CMPR_OK)
        cmpr_log_warn("route %s: cannot record the state of a forwarded request: %s", rec->route,
                      cmpr_strerror(r));
    return r;
}

void
cmpr_up_wake(struct cmpr_core *c)
{
    void (*wake)(void *ctx);
    void *ctx;

    pthread_mutex_lock(&c->mu);
    wake = c->wake;
    ctx = c->wake_ctx;
    pthread_mutex_unlock(&c->mu);
    if (wake != NULL)
        wake(ctx);
}

