/*
 * A client's message that a route sends upstream ([route NAME] upstream =
 * URI; RFC 9483 5.2): the client's side of forwarding.
 *
 * Each transaction has one forwarding record in the store: the client's
 * message as the upstream gets it (protection kept, replaced by ours, or
 * wrapped in nested), later the upstream's answer. Taking the message in
 * only stores the record and wakes the forwarder (forwarder.c), which does
 * all talking to upstreams; no thread waits here. The client's request
 * waits parked (submit.c) up to the route's wait: when the upstream answers
 * in time, the request runs again and gets the answer on its own
 * connection; when the wait runs out, the client gets "waiting" (a
 * certificate request: its response with status waiting; anything else: an
 * error with status waiting, RFC 9810 5.3.22) and polls, or the answer is
 * pushed to it (file drop, mail).
 *
 * Answers to the client: with protection = keep or nested the upstream's
 * answer travels unchanged (the upstream protected it for the client);
 * with reprotect it is verified against the route's trust anchors and
 * protected again for the client. transactionID and senderNonce never
 * change; where we answered "waiting" ourselves, the recipNonce of the
 * final answer is the client's last pollReq's when we can protect it for
 * the client, else the original request's (RFC 9483 4.4 allows both).
 */
#include "core/req.h"
#include "codec/keygen.h"
#include "core/txn.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "codec/oids.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
set_blob(unsigned char **dst, size_t *dlen, const unsigned char *src, size_t len)
{
    free(*dst);
    *dst = src != NULL ? cmpr_memdup(src, len) : NULL;
    *dlen = src != NULL ? len : 0;
}

/* ---------------- what goes upstream ---------------- */

/* reprotect: the client's message under our protection */
static int
reprotected(struct req *q, const struct cmpr_route *rt, const struct cmpr_fwd_rec *rec, CMPR_PKIMESSAGE **m_r,
            int *failbit_r, char *why, size_t wlen)
{
    CMPR_PKIMESSAGE *m = CMPR_PKIMESSAGE_dup(q->msg);
    CMPR_CERTREQMSGS *reqs;

    if ((*m_r = m) == NULL)
        return CMPR_ERR_ALLOC;
    if (rt->ra_verified && (reqs = cmpr_msg_get0_reqs(m)) != NULL) {
        /* RFC 9483 5.2.3.2: we check the POP, then say so */
        for (int i = 0; i < sk_CMPR_CERTREQMSG_num(reqs); i++) {
            CMPR_CERTREQMSG *crm = sk_CMPR_CERTREQMSG_value(reqs, i);

            if (cmpr_crm_verify_pop_sig(crm) != CMPR_OK) {
                *failbit_r = CMPR_FI_BAD_POP;
                snprintf(why, wlen, "proof of possession does not verify");
                return CMPR_ERR_INVALID_ARG;
            }
            CMPR_POPO_free(crm->popo);
            if ((crm->popo = CMPR_POPO_new()) == NULL || (crm->popo->value.raVerified = ASN1_NULL_new()) == NULL)
                return CMPR_ERR_ALLOC;
            crm->popo->type = CMPR_POPO_RAVERIFIED;
        }
    }
    /* a follow-up answers the upstream's last message, whatever we told the client */
    if (rec->up_nonce_len > 0 && !cmpr_is_first(q->body)) {
        ASN1_OCTET_STRING *n = ASN1_OCTET_STRING_new();
        int ok = n != NULL && ASN1_OCTET_STRING_set(n, rec->up_nonce, (int)rec->up_nonce_len)
                 && cmpr_hdr_set1_recip_nonce(m->header, n) == CMPR_OK;

        ASN1_OCTET_STRING_free(n);
        if (!ok)
            return CMPR_ERR_ALLOC;
    }
    /* the client's certificates are no business of the upstream's */
    sk_X509_pop_free(m->extraCerts, X509_free);
    m->extraCerts = NULL;
    if (rt->ra_cert == NULL)
        (void)cmpr_hdr_set1_sender_name(m->header, NULL);
    return CMPR_OK;
}

/* nested: the client's message inside ours (RFC 9483 5.2.2.1: same
 * transactionID and recipNonce as the inner message) */
static int
wrapped(struct req *q, CMPR_PKIMESSAGE **m_r)
{
    CMPR_PKIMESSAGE *inner = CMPR_PKIMESSAGE_dup(q->msg), *m = NULL;

    *m_r = NULL;
    if (inner == NULL || (m = cmpr_msg_new(CMPR_BODY_NESTED, cmpr_msg_pvno(q->msg))) == NULL
            || cmpr_hdr_set1_transaction_id(m->header, ASN1_STRING_get0_data(q->msg->header->transactionID),
                                            (size_t)ASN1_STRING_length(q->msg->header->transactionID)) != CMPR_OK
            || (q->msg->header->recipNonce != NULL
                && cmpr_hdr_set1_recip_nonce(m->header, q->msg->header->recipNonce) != CMPR_OK)
            || !sk_CMPR_PKIMESSAGE_push(m->body->value.nested, inner)) {
        CMPR_PKIMESSAGE_free(inner);
        CMPR_PKIMESSAGE_free(m);
        return CMPR_ERR_ALLOC;
    }
    *m_r = m;
    return CMPR_OK;
}

/* does q ask for central key generation (RFC 9483 4.1.6)? */
static int
wants_central(const struct req *q)
{
    const CMPR_CERTREQMSGS *reqs = cmpr_msg_get0_reqs(q->msg);
    char spec[48];

    if (q->body != CMPR_BODY_IR && q->body != CMPR_BODY_CR && q->body != CMPR_BODY_KUR)
        return 0;
    for (int i = 0; i < sk_CMPR_CERTREQMSG_num(reqs); i++)
        if (cmpr_spki_wants_central(sk_CMPR_CERTREQMSG_value(reqs, i)->certReq->certTemplate->publicKey, spec,
                                    sizeof(spec)))
            return 1;
    return 0;
}

static int
upstream_der(struct req *q, const struct cmpr_route *rt, const struct cmpr_fwd_rec *rec,
             unsigned char **der_r, size_t *len_r, int *failbit_r, char *why, size_t wlen)
{
    int mode = cmpr_up_mode(rt, q->body);
    CMPR_PKIMESSAGE *m = NULL;
    int r;

    *failbit_r = CMPR_FI_SYSTEM_FAILURE;
    /* RFC 9483 5.2.3.2: the protection of a request for central key
     * generation is not replaced (the key is enveloped for the client) */
    if (mode == CMPR_ROUTE_REPROTECT && wants_central(q)) {
        *failbit_r = CMPR_FI_BAD_REQUEST;
        snprintf(why, wlen, "a request for central key generation keeps its protection (RFC 9483 5.2.3.2) and "
                 "this route replaces it (protection = reprotect); use keep or nested");
        return CMPR_ERR_INVALID_ARG;
    }
    if (rt->batch > 1 && mode == CMPR_ROUTE_NESTED)
        mode = CMPR_ROUTE_KEEP;     /* the batch's nested message carries our protection */
    if (mode == CMPR_ROUTE_KEEP) {
        *der_r = cmpr_memdup(q->der, q->der_len);
        *len_r = q->der_len;
        return *der_r != NULL ? CMPR_OK : CMPR_ERR_ALLOC;
    }
    r = mode == CMPR_ROUTE_REPROTECT ? reprotected(q, rt, rec, &m, failbit_r, why, wlen) : wrapped(q, &m);
    if (r == CMPR_OK && (r = cmpr_up_protect(q->core, rt, m)) == CMPR_OK)
        r = cmpr_encode(m, der_r, len_r);
    else if (r != CMPR_ERR_INVALID_ARG)
        snprintf(why, wlen, "cannot protect the message for the upstream: %s", cmpr_strerror(r));
    CMPR_PKIMESSAGE_free(m);
    return r;
}

/* ---------------- answers to the client ---------------- */

/* Stores what the client's side did with rec. The forwarder may have moved
 * the job on meanwhile: where the client's side changed no state, its own
 * (the answer kept for retransmissions, "the client waits") is added to the
 * forwarder's work instead of overwriting it. */
static int
client_put(struct cmpr_core *c, struct cmpr_fwd_rec *rec)
{
    struct cmpr_store *st = c->st;
    int r;

    rec->updated = (int64_t)time(NULL);
    for (int i = 0; i < 5; i++) {
        struct cmpr_fwd_rec fresh;

        if ((r = st->ops->fwd_put(st, rec)) != CMPR_ERR_CONFLICT || rec->state != rec->read_state)
            break;
        if ((r = st->ops->fwd_get(st, rec->tid, rec->tid_len, &fresh)) != CMPR_OK)
            break;
        set_blob(&fresh.last, &fresh.last_len, rec->last, rec->last_len);
        memcpy(fresh.last_nonce, rec->last_nonce, sizeof(fresh.last_nonce));
        fresh.last_nonce_len = rec->last_nonce_len;
        fresh.delayed = fresh.delayed || rec->delayed;
        cmpr_fwd_rec_clear(rec);
        *rec = fresh;
        rec->updated = (int64_t)time(NULL);
    }
    return r;
}

/* The answer (rsp, protected here, or raw DER passed as it is) goes to the
 * client (q->raw_answer) and, when stored, is kept for a retransmission of
 * its message. */
static int
reply(struct req *q, struct cmpr_fwd_rec *rec, int stored, CMPR_PKIMESSAGE *rsp, const unsigned char *raw,
      size_t raw_len)
{
    unsigned char *out = NULL;
    size_t out_len = 0;
    int r;

    if (rsp != NULL) {
        r = cmpr_protect_answer(q, rsp);
        if (r == CMPR_OK)
            r = cmpr_encode(rsp, &out, &out_len);
        CMPR_PKIMESSAGE_free(rsp);
        if (r != CMPR_OK)
            return r;
    } else {
        if ((out = cmpr_memdup(raw, raw_len)) == NULL)
            return CMPR_ERR_ALLOC;
        out_len = raw_len;
    }
    if (stored) {
        set_blob(&rec->last, &rec->last_len, out, out_len);
        cmpr_octets(q->msg->header->senderNonce, rec->last_nonce, sizeof(rec->last_nonce), &rec->last_nonce_len);
        if ((r = client_put(q->core, rec)) != CMPR_OK)
            cmpr_log_warn("%s tid=%s: cannot keep the answer for retransmissions: %s", q->info->medium,
                          q->tidhex, cmpr_strerror(r));
    }
    free(q->raw_answer);
    q->raw_answer = out;
    q->raw_answer_len = out_len;
    return CMPR_OK;
}

static int reply_error(struct req *q, struct cmpr_fwd_rec *rec, int stored, int failbit, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
reply_error(struct req *q, struct cmpr_fwd_rec *rec, int stored, int failbit, const char *fmt, ...)
{
    char text[600];
    va_list ap;
    CMPR_PKIMESSAGE *e;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if ((e = cmpr_error_rsp(q, failbit, "%s", text)) == NULL)
        return CMPR_ERR_ALLOC;
    return reply(q, rec, stored, e, NULL, 0);
}

/* the upstream's answer in rec, refused: the client learns why */
static int
refuse_answer(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, const char *fmt, const char *arg)
{
    if (cmpr_fwd_to(rec, CMPR_FWD_FAILED) != CMPR_OK)
        return reply_error(q, rec, 0, CMPR_FI_SYSTEM_FAILURE, "route %s: the forwarded request is in a bad state",
                           rt->name);
    snprintf(rec->err, sizeof(rec->err), fmt, arg);
    return reply_error(q, rec, 1, CMPR_FI_SYSTEM_FAILURE, "route %s: %s", rt->name, rec->err);
}

/* the upstream delays too: from now on the client polls through us */
static int
still_waiting(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, long check_after)
{
    if (cmpr_fwd_to(rec, CMPR_FWD_DONE) != CMPR_OK)
        return reply_error(q, rec, 0, CMPR_FI_SYSTEM_FAILURE, "route %s: the forwarded request is in a bad state",
                           rt->name);
    rec->delayed = 0;
    return reply(q, rec, 1, cmpr_msg_build_pollrep(q->msg, cmpr_req_cert_req_id(q),
                                                   check_after >= 0 ? check_after : rt->check_after,
                                                   "the upstream CA is still working on it"), NULL, 0);
}

/* The upstream's answer in rec goes to the client (q: its message). */
static int
deliver(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec)
{
    struct cmpr_store *st = q->core->st;
    CMPR_PKIMESSAGE *a = NULL;
    char why[400];
    long check_after, id;
    int delayed = rec->delayed, mode = cmpr_up_mode(rt, rec->client_body), final;

    if (cmpr_msg_decode(rec->ans, rec->ans_len, &a, NULL) != CMPR_OK)
        return refuse_answer(q, rt, rec, "%s", "the upstream's answer is not a PKIMessage");
    if (cmpr_up_verify(q->core, q->client, rt, a, mode == CMPR_ROUTE_REPROTECT, why, sizeof(why)) != 0) {
        CMPR_PKIMESSAGE_free(a);
        return refuse_answer(q, rt, rec, "the upstream's answer is refused: %.200s", why);
    }
    if (cmpr_msg_bodytype(a) == CMPR_BODY_NESTED) {
        a = cmpr_up_unnest(a);
        free(rec->ans);
        if (cmpr_encode(a, &rec->ans, &rec->ans_len) != CMPR_OK) {
            CMPR_PKIMESSAGE_free(a);
            return CMPR_ERR_ALLOC;
        }
    }
    if (ASN1_OCTET_STRING_cmp(a->header->transactionID, q->msg->header->transactionID) != 0) {
        CMPR_PKIMESSAGE_free(a);
        return refuse_answer(q, rt, rec, "%s", "the upstream answered for another transaction");
    }
    cmpr_octets(a->header->senderNonce, rec->up_nonce, sizeof(rec->up_nonce), &rec->up_nonce_len);
    if (delayed && cmpr_up_is_waiting(a, &check_after, &id)) {
        CMPR_PKIMESSAGE_free(a);
        return still_waiting(q, rt, rec, check_after);
    }
    if (cmpr_fwd_to(rec, CMPR_FWD_DONE) != CMPR_OK) {
        CMPR_PKIMESSAGE_free(a);
        return reply_error(q, rec, 0, CMPR_FI_SYSTEM_FAILURE, "route %s: the forwarded request is in a bad state",
                           rt->name);
    }
    rec->delayed = 0;
    final = cmpr_up_is_final(a);
    if (final)
        (void)st->ops->fwd_delete(st, rec->tid, rec->tid_len);
    if (mode == CMPR_ROUTE_REPROTECT || (delayed && q->auth == AUTH_MAC && q->client != NULL && q->client->secret != NULL)) {
        /* protected again for the client; where we answered "waiting"
         * ourselves, its recipNonce is the client's last message's */
        if (cmpr_hdr_set1_recip_nonce(a->header, q->msg->header->senderNonce) != CMPR_OK) {
            CMPR_PKIMESSAGE_free(a);
            return CMPR_ERR_ALLOC;
        }
        cmpr_audit(q, "answered", "%s from the upstream (route %s), protected here for the client",
                   cmpr_body_name(cmpr_msg_bodytype(a)), rt->name);
        return reply(q, rec, !final, a, NULL, 0);
    }
    cmpr_audit(q, "answered", "%s from the upstream (route %s), passed on as it is",
               cmpr_body_name(cmpr_msg_bodytype(a)), rt->name);
    CMPR_PKIMESSAGE_free(a);
    return reply(q, rec, !final, NULL, rec->ans, rec->ans_len);
}

/* ---------------- the client's side ---------------- */

/* Who the client is, as far as the route needs: reprotect and nested need
 * it known here (we vouch for it upstream); keep lets the upstream judge a
 * client it does not know here (unprotected, unknown reference, a signer
 * not trusted here). NULL when fine, else the error answer. */
static CMPR_PKIMESSAGE *
accept_client(struct req *q, const struct cmpr_route *rt)
{
    if (q->auth != AUTH_NONE || (rt->protection == CMPR_ROUTE_KEEP && q->auth_soft))
        return NULL;
    return cmpr_auth_error(q);
}

/* the client polls for what we hold for it */
static int
poll(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec)
{
    switch (rec->state) {
    case CMPR_FWD_ANSWERED:
        return deliver(q, rt, rec);
    case CMPR_FWD_FAILED:
        return reply_error(q, rec, 1, CMPR_FI_SYSTEM_UNAVAIL, "route %s: %s", rt->name, rec->err);
    default:
        return reply(q, rec, 1, cmpr_msg_build_pollrep(q->msg, cmpr_req_cert_req_id(q), rt->check_after,
                                                       "the upstream CA has not answered yet"), NULL, 0);
    }
}

/* the client waits from now on; the forwarder carries on */
static int
answer_waiting(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec)
{
    char text[300];

    snprintf(text, sizeof(text), "forwarded to the upstream CA (route %s); poll for the answer", rt->name);
    cmpr_audit(q, "forwarded", "to %s (route %s); the client waits", rt->upstream, rt->name);
    rec->delayed = 1;
    return reply(q, rec, 1, cmpr_waiting_rsp(q, text), NULL, 0);
}

/* the message the client waits for on its connection (a parked request run
 * again): its answer, "waiting", or back to waiting for the upstream */
static int
resume(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec)
{
    for (int i = 0; i < 3; i++) {
        if (rec->state == CMPR_FWD_ANSWERED)
            return deliver(q, rt, rec);
        if (rec->state == CMPR_FWD_FAILED) {
            /* RFC 9483 6.1: an upstream that fails is an error downstream, now */
            cmpr_log_warn("route %s: %s", rt->name, rec->err);
            return reply_error(q, rec, 1, CMPR_FI_SYSTEM_UNAVAIL, "route %s: upstream %s", rt->name, rec->err);
        }
        if (q->info->deadline_ms > 0 && cmpr_mono_ms() < q->info->deadline_ms && q->info->waited != 2) {
            q->park_deadline_ms = q->info->deadline_ms;
            return CMPR_PARK;
        }
        /* the wait is over: "waiting", unless the answer came meanwhile */
        {
            struct cmpr_fwd_rec fresh;
            int r = answer_waiting(q, rt, rec);

            if (r != CMPR_OK || q->core->st->ops->fwd_get(q->core->st, rec->tid, rec->tid_len, &fresh) != CMPR_OK)
                return r;
            if (!fresh.delayed && fresh.client_nonce_len == rec->client_nonce_len
                    && memcmp(fresh.client_nonce, rec->client_nonce, rec->client_nonce_len) == 0) {
                cmpr_fwd_rec_clear(rec);
                *rec = fresh;   /* the forwarder got there first: its outcome instead */
                continue;
            }
            cmpr_fwd_rec_clear(&fresh);
            return r;
        }
    }
    return answer_waiting(q, rt, rec);
}

/* the client's new message of the transaction goes upstream: stored */
static int
take_in(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, int have)
{
    unsigned char *up = NULL;
    size_t up_len = 0;
    char why[400] = "";
    int r, failbit;

    if ((r = upstream_der(q, rt, rec, &up, &up_len, &failbit, why, sizeof(why))) != CMPR_OK)
        return reply_error(q, rec, 0, failbit, "route %s: %s", rt->name, why[0] ? why : cmpr_strerror(r));
    if (!have) {
        cmpr_octets(q->msg->header->transactionID, rec->tid, sizeof(rec->tid), &rec->tid_len);
        snprintf(rec->route, sizeof(rec->route), "%s", rt->name);
        rec->created = (int64_t)time(NULL);
    }
    /* the node that took the message in drives it upstream (its client may
     * wait on its connection here); forwarder.c renews the lease */
    snprintf(rec->owner, sizeof(rec->owner), "%s", q->core->conf->node);
    rec->lease_until = (int64_t)time(NULL) + q->core->conf->lease;
    if (cmpr_fwd_to(rec, CMPR_FWD_QUEUED) != CMPR_OK) {
        free(up);
        return reply_error(q, rec, 0, CMPR_FI_SYSTEM_FAILURE, "route %s: the forwarded request is in a bad state",
                           rt->name);
    }
    snprintf(rec->client, sizeof(rec->client), "%s", q->client != NULL ? q->client->name : "");
    snprintf(rec->push, sizeof(rec->push), "%s%s%s", q->info->push != NULL ? q->info->push_medium : "",
             q->info->push != NULL ? " " : "", q->info->push != NULL ? q->info->push : "");
    rec->auth = q->auth;
    rec->mac_kind = q->mac_kind;
    rec->delayed = 0;
    rec->client_body = q->body;
    cmpr_octets(q->msg->header->senderNonce, rec->client_nonce, sizeof(rec->client_nonce), &rec->client_nonce_len);
    free(rec->req);
    rec->req = up;
    rec->req_len = up_len;
    set_blob(&rec->ans, &rec->ans_len, NULL, 0);
    rec->key[0] = rec->batch[0] = rec->err[0] = '\0';
    rec->attempts = 0;
    rec->next_try = rec->updated = (int64_t)time(NULL);
    if ((r = q->core->st->ops->fwd_put(q->core->st, rec)) != CMPR_OK)
        return reply_error(q, rec, 0, r == CMPR_ERR_EXISTS ? CMPR_FI_TRANSACTION_ID_IN_USE : CMPR_FI_SYSTEM_UNAVAIL,
                           "%s", r == CMPR_ERR_EXISTS ? "transactionID is already in use"
                                                      : "the store could not record the forwarded request");
    return CMPR_OK;
}

static int
is_parked_message(const struct req *q, const struct cmpr_fwd_rec *rec)
{
    return !rec->delayed && rec->state != CMPR_FWD_DONE
           && cmpr_octets_equal(q->msg->header->senderNonce, rec->client_nonce, rec->client_nonce_len);
}

int
cmpr_forward_request(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, int have)
{
    CMPR_PKIMESSAGE *e;
    long wait_ms;
    int r;

    if (rt == NULL || rt->up == NULL)
        return reply_error(q, rec, 0, CMPR_FI_SYSTEM_FAILURE, "route %s (of this transaction) is no longer configured",
                           rec->route);
    if ((e = accept_client(q, rt)) != NULL)
        return reply(q, rec, 0, e, NULL, 0);
    if (have && rec->delayed && q->body == CMPR_BODY_POLLREQ)
        return poll(q, rt, rec);
    if (have && is_parked_message(q, rec))
        return resume(q, rt, rec);
    if (have && (rec->state == CMPR_FWD_QUEUED || rec->state == CMPR_FWD_SENT))
        return reply_error(q, rec, 0, CMPR_FI_BAD_REQUEST, "the previous message of this transaction is still on "
                           "its way upstream (route %s)", rt->name);
    if (have && rec->state == CMPR_FWD_FAILED)
        return reply_error(q, rec, 0, CMPR_FI_SYSTEM_UNAVAIL, "route %s: %s", rt->name, rec->err);
    if ((r = take_in(q, rt, rec, have)) != CMPR_OK || q->raw_answer != NULL)
        return r;
    cmpr_up_wake(q->core);
    /* the client waits on its connection a while for the answer; certConf
     * and the like even for an offline upstream (OpenSSL 3.0's client
     * cannot poll for a pkiConf) */
    wait_ms = cmpr_is_first(q->body) ? rt->wait_ms : rt->followup_wait_ms;
    if (wait_ms > 0 && (rt->batch <= 1 || !cmpr_is_first(q->body)) && q->core->wake != NULL) {
        q->park_deadline_ms = cmpr_mono_ms() + wait_ms;
        return CMPR_PARK;
    }
    return answer_waiting(q, rt, rec);
}
