/*
 * One request through the core: decode -> header checks -> authentication
 * (once) -> the route decision -> retransmission and replay checks ->
 * the local CA's stage, or the forwarding stage -> the protected answer,
 * with the transaction's state committed before it leaves. RFC 9810 /
 * RFC 9483 rules are cited where they are applied. Runs on any thread; all
 * shared state is in the store.
 */
#include "core/req.h"
#include "core/txn.h"
#include "base/err.h"
#include "base/log.h"
#include "codec/oids.h"
#include "codec/print.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>

/* ---------------- header checks (RFC 9483 3.1, 3.5) ---------------- */

/* RFC 9483 6.1: the operation label names the operation; certConf, pollReq
 * and error go to the label of the operation they belong to. */
/* the store failed this request (metrics, /healthz) */
static void
store_failed(struct cmpr_core *core)
{
    atomic_fetch_add(&core->store_errors, 1);
    atomic_store(&core->last_store_error, (long long)time(NULL));
}

static int
operation_fits(const char *op, int body)
{
    if (op == NULL || body == CMPR_BODY_CERTCONF || body == CMPR_BODY_POLLREQ || body == CMPR_BODY_ERROR
            || body == CMPR_BODY_NESTED)
        return 1;
    return cmpr_operation_body(op) == body;
}

static CMPR_PKIMESSAGE *
check_header(struct req *q)
{
    const CMPR_PKIHEADER *h = q->msg->header;
    long pvno = cmpr_msg_pvno(q->msg);
    int skew = (int)q->core->conf->message_time_skew;

    /* RFC 9810 7 / RFC 9483 3.5: answer in the same pvno; unsupported ->
     * unsupportedVersion (the builder answers with our nearest version) */
    if (pvno != CMPR_PVNO_2 && pvno != CMPR_PVNO_3)
        return cmpr_error_rsp(q, CMPR_FI_UNSUPPORTED_VERSION, "pvno %ld is not supported; this server speaks 2 and 3",
                              pvno);
    if (h->transactionID == NULL || ASN1_STRING_length(h->transactionID) < 1
            || ASN1_STRING_length(h->transactionID) > CMPR_STORE_MAX_ID)
        return cmpr_error_rsp(q, CMPR_FI_BAD_DATA_FORMAT, "transactionID must be present (1..%d octets)",
                              CMPR_STORE_MAX_ID);
    if (h->senderNonce == NULL || ASN1_STRING_length(h->senderNonce) < CMPR_NONCE_LEN
            || ASN1_STRING_length(h->senderNonce) > CMPR_STORE_MAX_ID)
        return cmpr_error_rsp(q, CMPR_FI_BAD_SENDER_NONCE, "senderNonce must be present with at least 128 bits");
    if (h->sender == NULL || h->sender->type != GEN_DIRNAME)
        return cmpr_error_rsp(q, CMPR_FI_BAD_DATA_FORMAT, "sender must be a directoryName");
    if (!cmpr_is_request(q->body))
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "%s is not a request this server accepts",
                              cmpr_body_name(q->body));
    if (!operation_fits(q->info->operation, q->body))
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "%s does not fit the operation label '%s'",
                              cmpr_body_name(q->body), q->info->operation);
    if (skew > 0 && h->messageTime != NULL) {
        int days = 0, secs = 0;

        if (!ASN1_TIME_diff(&days, &secs, NULL, h->messageTime)
                || (long)days * 86400L + secs > skew || (long)days * 86400L + secs < -skew)
            return cmpr_error_rsp(q, CMPR_FI_BAD_TIME, "messageTime differs from the server clock by more than %d s",
                                  skew);
    }
    return NULL;
}

/* ---------------- the route decision ---------------- */

struct qbuf {
    char profile[256], client[512], subject[512], issuer[512];
};

/* what a request is matched on (the client: its reference (MAC), else its
 * signer's subject, else the sender) */
static void
query_of(const struct req *q, struct cmpr_route_query *rq, struct qbuf *b)
{
    const CMPR_PKIHEADER *h = q->msg->header;
    ASN1_UTF8STRING *p = cmpr_msg_get1_certprofile(q->msg);
    const CMPR_CERTREQMSGS *reqs = cmpr_msg_get0_reqs(q->msg);
    X509 *signer;

    memset(rq, 0, sizeof(*rq));
    memset(b, 0, sizeof(*b));
    rq->label = q->info != NULL ? q->info->label : NULL;
    rq->body = q->body;
    if (p != NULL) {
        cmpr_up_text(p, b->profile, sizeof(b->profile));
        rq->profile = b->profile;
        ASN1_UTF8STRING_free(p);
    }
    if (h->protectionAlg != NULL && h->senderKID != NULL
            && (cmpr_prot_kind(h->protectionAlg->algorithm) == CMPR_PROT_PBM
                || cmpr_prot_kind(h->protectionAlg->algorithm) == CMPR_PROT_PBMAC1))
        cmpr_up_text(h->senderKID, b->client, sizeof(b->client));
    if (b->client[0] == '\0' && (signer = cmpr_msg_get0_protection_cert(q->msg)) != NULL)
        cmpr_name_text(X509_get_subject_name(signer), b->client, sizeof(b->client));
    if (b->client[0] == '\0' && cmpr_hdr_get0_sender_name(h) != NULL)
        cmpr_name_text(cmpr_hdr_get0_sender_name(h), b->client, sizeof(b->client));
    if (b->client[0] != '\0')
        rq->client = b->client;
    if (reqs != NULL && sk_CMPR_CERTREQMSG_num(reqs) > 0) {
        const CMPR_CERTTEMPLATE *t = sk_CMPR_CERTREQMSG_value(reqs, 0)->certReq->certTemplate;

        if (t->subject != NULL) {
            cmpr_name_text(t->subject, b->subject, sizeof(b->subject));
            rq->subject = b->subject;
        }
        if (t->issuer != NULL) {
            cmpr_name_text(t->issuer, b->issuer, sizeof(b->issuer));
            rq->issuer = b->issuer;
        }
    } else if (q->body == CMPR_BODY_P10CR && q->msg->body->value.p10cr != NULL) {
        cmpr_name_text(X509_REQ_get_subject_name(q->msg->body->value.p10cr), b->subject, sizeof(b->subject));
        rq->subject = b->subject;
    }
}

/* Where q goes: 1 upstream (*rt_r, rec loaded when *have_r), 0 the local CA
 * (q->ca set by a ca = route), or CMPR_ERR_STORE. A follow-up goes where its
 * transaction's first message went. */
static int
decide(struct req *q, const struct cmpr_route **rt_r, struct cmpr_fwd_rec *rec, int *have_r)
{
    struct cmpr_core *c = q->core;
    const ASN1_OCTET_STRING *tid = q->msg->header->transactionID;
    struct cmpr_route_query rq;
    struct qbuf b;
    const struct cmpr_route *rt;
    int r;

    *rt_r = NULL;
    *have_r = 0;
    cmpr_fwd_init(rec);
    if (c->routes == NULL || c->routes->n == 0)
        return 0;
    r = c->st->ops->fwd_get(c->st, ASN1_STRING_get0_data(tid), (size_t)ASN1_STRING_length(tid), rec);
    if (r == CMPR_OK) {
        *have_r = 1;
        *rt_r = cmpr_route_by_name(c->routes, rec->route);
        return 1;
    }
    if (r != CMPR_ERR_NOT_FOUND)
        return CMPR_ERR_STORE;
    cmpr_fwd_init(rec);
    if (!cmpr_is_first(q->body))
        return 0;
    query_of(q, &rq, &b);
    if ((rt = cmpr_route_match(c->routes, &rq, NULL, 0)) == NULL)
        return 0;
    if (rt->upstream == NULL) {
        /* ca = NAME: this local CA answers */
        for (size_t i = 0; i < c->n_cas; i++)
            if (strcmp(c->cas[i]->conf->name, rt->ca) == 0)
                q->ca = c->cas[i];
        return 0;
    }
    *rt_r = rt;
    return 1;
}

int
cmpr_core_explain(struct cmpr_core *core, const char *label, const unsigned char *der, size_t len, char *out,
                  size_t outlen)
{
    struct cmpr_request_info info = { .medium = "cli", .peer = "explain", .label = label };
    struct req q;
    struct cmpr_route_query rq;
    struct qbuf b;
    struct cmpr_decode_err de;
    size_t o;
    int r;

    memset(&q, 0, sizeof(q));
    q.core = core;
    q.info = &info;
    out[0] = '\0';
    if ((r = cmpr_msg_decode(der, len, &q.msg, &de)) != CMPR_OK) {
        snprintf(out, outlen, "not a PKIMessage: offset %zu: expected %s\n", de.offset, de.what);
        return r;
    }
    q.body = cmpr_msg_bodytype(q.msg);
    query_of(&q, &rq, &b);
    snprintf(out, outlen, "request: body %s, label %s, certProfile %s, client %s, subject %s, issuer %s\n",
             cmpr_body_name(q.body), rq.label != NULL ? rq.label : "(none)", rq.profile != NULL ? rq.profile : "(none)",
             rq.client != NULL ? rq.client : "(unknown)", rq.subject != NULL ? rq.subject : "(none)",
             rq.issuer != NULL ? rq.issuer : "(none)");
    o = strlen(out);
    if (!cmpr_is_first(q.body))
        snprintf(out + o, outlen - o, "a %s continues the transaction of its transactionID: it goes "
                 "where the transaction's first message went\n", cmpr_body_name(q.body));
    else
        (void)cmpr_route_match(core->routes, &rq, out + o, outlen - o);
    CMPR_PKIMESSAGE_free(q.msg);
    return CMPR_OK;
}

/* ---------------- retransmissions and replays ---------------- */

/* a retransmission of the message we last answered gets the same answer:
 * 1 with it in q->raw_answer */
static int
resend(struct req *q, const unsigned char *nonce, size_t nlen, const unsigned char *ans, size_t alen)
{
    if (ans == NULL || !cmpr_octets_equal(q->msg->header->senderNonce, nonce, nlen))
        return 0;
    free(q->raw_answer);
    if ((q->raw_answer = cmpr_memdup(ans, alen)) == NULL)
        return 0;
    q->raw_answer_len = alen;
    cmpr_log_info("%s tid=%s: retransmission answered from the store", q->info->medium, q->tidhex);
    return 1;
}

/* a senderNonce is used once (replay protection); NULL to go on */
static CMPR_PKIMESSAGE *
replay_check(struct req *q)
{
    int r = q->core->st->ops->nonce_check(q->core->st, ASN1_STRING_get0_data(q->msg->header->senderNonce),
                                          (size_t)ASN1_STRING_length(q->msg->header->senderNonce),
                                          (int64_t)time(NULL), q->core->conf->nonce_window);

    if (r == CMPR_ERR_EXISTS && q->info->resumed) {
        cmpr_log_debug("%s tid=%s: run again: its senderNonce is already recorded", q->info->medium, q->tidhex);
        return NULL;
    }
    if (r == CMPR_ERR_EXISTS)
        return cmpr_error_rsp(q, CMPR_FI_BAD_SENDER_NONCE, "senderNonce was already used (replay)");
    if (r != CMPR_OK) {
        store_failed(q->core);
        return cmpr_error_rsp(q, CMPR_FI_SYSTEM_UNAVAIL, "the store is not available");
    }
    return NULL;
}

/* ---------------- the local CA ---------------- */

static int handle_der(struct cmpr_core *core, const struct cmpr_request_info *info, int depth, int last_try,
                      const unsigned char *der, size_t len, unsigned char **out_r, size_t *out_len_r,
                      int64_t *deadline_r);

/* nested (RFC 9810 5.1.3.5, RFC 9483 5.2.2): an RA wraps requests to add
 * its protection to one (the answer comes back un-nested) or to batch
 * several (the answers come back in one nested message). Each inner
 * message is processed on its own, with its own protection checked. */
static CMPR_PKIMESSAGE *
handle_nested(struct req *q)
{
    CMPR_PKIMESSAGES *inner = q->msg->body->value.nested;
    CMPR_PKIMESSAGE *rsp = NULL;
    int n = sk_CMPR_PKIMESSAGE_num(inner);

    if (!((q->auth == AUTH_SIG && q->signer_is_ra) || (q->client != NULL && q->client->ra)))
        return cmpr_error_rsp(q, CMPR_FI_NOT_AUTHORIZED, "nested messages are accepted from registration authorities only");
    if (n < 1 || n > 256)
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "a nested message holds 1 to 256 messages");
    if (q->depth >= CMPR_MAX_NESTED_DEPTH)
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "nested too deeply");
    if (n > 1 && (rsp = cmpr_msg_new_response(q->msg, CMPR_BODY_NESTED)) == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        unsigned char *der = NULL, *out = NULL;
        size_t len = 0, outlen = 0;
        CMPR_PKIMESSAGE *ans = NULL;
        int64_t deadline;
        int r;

        if (cmpr_msg_encode(sk_CMPR_PKIMESSAGE_value(inner, i), &der, &len) != CMPR_OK)
            r = CMPR_ERR_ENCODE;
        else
            r = handle_der(q->core, q->info, q->depth + 1, 1, der, len, &out, &outlen, &deadline);
        OPENSSL_free(der);
        if (n == 1) {
            if (r != CMPR_OK) {
                free(out);
                return cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the inner message could not be answered");
            }
            cmpr_audit(q, "nested", "one request under RA protection");
            q->raw_answer = out;
            q->raw_answer_len = outlen;
            return NULL;
        }
        /* a batch: every inner request gets its answer, or systemFailure */
        if (r != CMPR_OK || cmpr_msg_decode(out, outlen, &ans, NULL) != CMPR_OK)
            ans = cmpr_msg_build_error(sk_CMPR_PKIMESSAGE_value(inner, i), cmpr_pkisi_new(CMPR_STATUS_REJECTION,
                                       FI(CMPR_FI_SYSTEM_FAILURE), "no answer"), -1, NULL);
        free(out);
        if (ans != NULL)
            sk_CMPR_PKIMESSAGE_push(rsp->body->value.nested, ans);
    }
    cmpr_audit(q, "nested", "batch of %d messages answered", n);
    return rsp;
}

static CMPR_PKIMESSAGE *
dispatch(struct req *q)
{
    switch (q->body) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_KUR: case CMPR_BODY_P10CR: case CMPR_BODY_CCR:
        return cmpr_enroll_request(q);
    case CMPR_BODY_CERTCONF:
        return cmpr_enroll_confirm(q);
    case CMPR_BODY_KRR:
        return cmpr_krr_request(q);
    case CMPR_BODY_POLLREQ:
        return cmpr_enroll_poll(q);
    case CMPR_BODY_RR:
        return cmpr_revoke_request(q);
    case CMPR_BODY_GENM:
        return cmpr_genm_request(q);
    case CMPR_BODY_ERROR:
        return cmpr_enroll_client_error(q);
    case CMPR_BODY_NESTED:
        return handle_nested(q);
    default:
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "%s is not supported by this server", cmpr_body_name(q->body));
    }
}

/* the local CA's answer to an authenticated request, or NULL with
 * q->raw_answer set (a retransmission, a nested answer) */
static CMPR_PKIMESSAGE *
local(struct req *q)
{
    struct cmpr_store *st = q->core->st;
    CMPR_PKIMESSAGE *rsp;
    int r;

    if (q->auth == AUTH_NONE)
        return cmpr_auth_error(q);
    if (q->ca == NULL)
        return cmpr_error_rsp(q, CMPR_FI_BAD_REQUEST, "no route takes this request and this router has no CA "
                              "of its own");
    r = st->ops->txn_get(st, ASN1_STRING_get0_data(q->msg->header->transactionID),
                         (size_t)ASN1_STRING_length(q->msg->header->transactionID), &q->txn);
    if (r == CMPR_OK) {
        q->have_txn = 1;
        if (cmpr_auth_same_credentials(q)
                && resend(q, q->txn.req_nonce, q->txn.req_nonce_len, q->txn.response, q->txn.response_len))
            return NULL;
    } else if (r != CMPR_ERR_NOT_FOUND) {
        store_failed(q->core);
        return cmpr_error_rsp(q, CMPR_FI_SYSTEM_UNAVAIL, "the store is not available");
    }
    if ((rsp = replay_check(q)) != NULL)
        return rsp;
    return dispatch(q);
}

/* State is committed before the answer leaves: the certificate, the
 * archived key, then the transaction. */
static int
commit(struct req *q, const CMPR_PKIMESSAGE *rsp, const unsigned char *out, size_t out_len)
{
    struct cmpr_store *st = q->core->st;
    int r;

    if (q->new_cert != NULL && (r = st->ops->cert_put(st, q->new_cert)) != CMPR_OK)
        return r;
    if (q->new_cert != NULL && q->archive != NULL
            && (r = st->ops->archive_put(st, q->new_cert->serial, q->new_cert->serial_len, q->new_cert->subject,
                                         q->txn.client, q->archive, q->archive_len)) != CMPR_OK)
        return r;
    cmpr_octets(rsp->header->senderNonce, q->txn.last_nonce, sizeof(q->txn.last_nonce), &q->txn.last_nonce_len);
    cmpr_octets(q->msg->header->senderNonce, q->txn.req_nonce, sizeof(q->txn.req_nonce), &q->txn.req_nonce_len);
    free(q->txn.response);
    q->txn.response = NULL;
    q->txn.response_len = 0;
    if (q->keep_answer && (q->txn.response = cmpr_memdup(out, out_len)) == NULL)
        return CMPR_ERR_ALLOC;
    if (q->keep_answer)
        q->txn.response_len = out_len;
    q->txn.updated = (int64_t)time(NULL);
    return q->save_txn == 1 ? st->ops->txn_insert(st, &q->txn) : st->ops->txn_update(st, &q->txn);
}

/* protects and encodes rsp into q->raw_answer, committing q's state first */
static int
finish(struct req *q, CMPR_PKIMESSAGE *rsp, int last_try)
{
    unsigned char *out = NULL;
    size_t out_len = 0;
    int r;

    if (rsp == NULL) {
        q->save_txn = 0;
        if ((rsp = cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "internal error")) == NULL)
            return CMPR_ERR_INTERNAL;
    }
    if ((r = cmpr_protect_answer(q, rsp)) != CMPR_OK || (r = cmpr_encode(rsp, &out, &out_len)) != CMPR_OK) {
        cmpr_log_error("cannot protect or encode the answer: %s", cmpr_strerror(r));
        CMPR_PKIMESSAGE_free(rsp);
        return r;
    }
    cmpr_count_answer(q->core, rsp);
    if (q->save_txn != 0 && (r = commit(q, rsp, out, out_len)) != CMPR_OK) {
        free(out);
        CMPR_PKIMESSAGE_free(rsp);
        /* nothing was promised or issued: the caller handles it again */
        if (r == CMPR_ERR_CONFLICT && q->new_cert == NULL && q->depth == 0 && !last_try)
            return CMPR_ERR_CONFLICT;
        /* nothing of this transaction was promised: systemUnavail */
        store_failed(q->core);
        q->save_txn = 0;
        rsp = cmpr_error_rsp(q, r == CMPR_ERR_EXISTS ? CMPR_FI_TRANSACTION_ID_IN_USE : CMPR_FI_SYSTEM_UNAVAIL,
                             r == CMPR_ERR_EXISTS ? "transactionID is already in use"
                                                  : "the store could not record the transaction");
        return rsp == NULL ? CMPR_ERR_INTERNAL : finish(q, rsp, 1);
    }
    CMPR_PKIMESSAGE_free(rsp);
    /* only once the new certificate is safely recorded as confirmed */
    if (q->save_txn != 0)
        cmpr_enroll_revoke_replaced(q);
    free(q->raw_answer);
    q->raw_answer = out;
    q->raw_answer_len = out_len;
    return CMPR_OK;
}

/* ---------------- one request ---------------- */

/* decoded and checked; the answer to give when it is not fit to go on */
static CMPR_PKIMESSAGE *
take_in(struct req *q, const unsigned char *der, size_t len)
{
    struct cmpr_decode_err derr;
    CMPR_PKIMESSAGE *rsp;

    if (cmpr_msg_decode(der, len, &q->msg, &derr) != CMPR_OK) {
        atomic_fetch_add(&q->core->undecodable, 1);
        return cmpr_error_rsp(q, CMPR_FI_BAD_DATA_FORMAT, "not a PKIMessage: offset %zu: expected %s", derr.offset,
                              derr.what);
    }
    q->body = cmpr_msg_bodytype(q->msg);
    atomic_fetch_add(&q->core->requests[q->body & 31], 1);
    if (q->msg->header->transactionID != NULL)
        cmpr_hex(ASN1_STRING_get0_data(q->msg->header->transactionID),
                 (size_t)ASN1_STRING_length(q->msg->header->transactionID), q->tidhex, sizeof(q->tidhex));
    if ((rsp = check_header(q)) != NULL)
        return rsp;
    cmpr_auth_check(q);
    return NULL;
}

/* a request that goes upstream: CMPR_OK (q->raw_answer), CMPR_PARK, CMPR_ERR_* */
static int
upstream(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, int have)
{
    CMPR_PKIMESSAGE *rsp;

    if (have && resend(q, rec->last_nonce, rec->last_nonce_len, rec->last, rec->last_len))
        return CMPR_OK;
    if ((rsp = replay_check(q)) != NULL)
        return finish(q, rsp, 1);
    return cmpr_forward_request(q, rt, rec, have);
}

/* Makes what q changed so far durable (one group commit, store.h); stop
 * ends the thread's batch: its later changes are durable call by call. */
static int
durable(struct req *q, int stop)
{
    struct cmpr_store *st = q->core->st;
    int r = st->ops->flush(st);

    if (stop)
        st->ops->batch(st, 0);
    return r;
}

/* what the answer would say is not in the store: it must not leave;
 * systemUnavail instead */
static int
unrecorded(struct req *q)
{
    store_failed(q->core);
    free(q->raw_answer);
    q->raw_answer = NULL;
    q->save_txn = 0;
    if (q->info->sync_token != NULL)
        *q->info->sync_token = 0;
    return finish(q, cmpr_error_rsp(q, CMPR_FI_SYSTEM_UNAVAIL, "the store could not record the transaction"), 1);
}

static int
handle_der(struct cmpr_core *core, const struct cmpr_request_info *info, int depth, int last_try,
           const unsigned char *der, size_t len, unsigned char **out_r, size_t *out_len_r, int64_t *deadline_r)
{
    struct req q;
    struct cmpr_fwd_rec rec;
    const struct cmpr_route *rt = NULL;
    CMPR_PKIMESSAGE *rsp;
    int r, have = 0;

    *out_r = NULL;
    *out_len_r = 0;
    memset(&q, 0, sizeof(q));
    cmpr_fwd_init(&rec);
    q.core = core;
    q.info = info;
    q.ca = core->cas[0];
    q.keep_answer = 1;
    q.depth = depth;
    q.der = der;
    q.der_len = len;
    if (depth == 0)
        core->st->ops->batch(core->st, 1);
    if (depth == 0 && info->sync_token != NULL)
        *info->sync_token = 0;
    if ((rsp = take_in(&q, der, len)) != NULL) {
        r = finish(&q, rsp, 1);
    } else if (info->store_lost) {
        r = unrecorded(&q);
    } else if (depth == 0 && (r = decide(&q, &rt, &rec, &have)) != 0) {
        /* what goes upstream is durable before it goes: no batch there */
        q.route = rt;
        if (r == 1 && durable(&q, 1) == CMPR_OK) {
            r = upstream(&q, rt, &rec, have);
        } else {
            store_failed(core);
            r = finish(&q, cmpr_error_rsp(&q, CMPR_FI_SYSTEM_UNAVAIL, "the store is not available"), 1);
        }
    } else {
        rsp = local(&q);
        r = rsp == NULL && q.raw_answer != NULL ? CMPR_OK : finish(&q, rsp, last_try);
    }
    if (depth == 0) {
        int d;

        if (info->sync_token != NULL && r == CMPR_OK && !info->store_lost) {
            /* the caller lets the answer go once the token is durable */
            d = core->st->ops->commit(core->st, info->sync_token);
            core->st->ops->batch(core->st, 0);
        } else {
            d = durable(&q, 1);
        }
        if (d != CMPR_OK && (r == CMPR_OK || r == CMPR_PARK) && !info->store_lost)
            r = unrecorded(&q);
    }
    if (r == CMPR_OK) {
        *out_r = q.raw_answer;
        *out_len_r = q.raw_answer_len;
        q.raw_answer = NULL;
    }
    *deadline_r = q.park_deadline_ms;
    CMPR_PKIMESSAGE_free(q.msg);
    cmpr_enroll_done(&q);
    free(q.raw_answer);
    cmpr_txn_rec_clear(&q.txn);
    cmpr_fwd_rec_clear(&rec);
    ERR_clear_error();
    return r;
}

/* derivations at the most costly a message may pay for (nested ones too) */
#define MAC_BUDGET_MESSAGES 4

int
cmpr_pipeline_run(struct cmpr_core *core, const struct cmpr_request_info *info, const unsigned char *der, size_t len,
                  unsigned char **out_r, size_t *out_len_r, int64_t *deadline_r)
{
    struct cmpr_request_info again = *info;
    /* what the key derivations of this message (its nested ones too) may
     * cost, unless the medium shares a budget over several (a mail) */
    unsigned long budget = MAC_BUDGET_MESSAGES * (unsigned long)core->conf->max_mac_iterations;
    int r;

    if (again.mac_budget == NULL)
        again.mac_budget = &budget;
    r = handle_der(core, &again, 0, 0, der, len, out_r, out_len_r, deadline_r);

    /* the transaction moved on while this request was handled (the operator
     * approved it, housekeeping expired it): handle it again from the new
     * state; its senderNonce is recorded already, and it is its own */
    for (int i = 1; r == CMPR_ERR_CONFLICT && i <= 3; i++) {
        cmpr_log_info("%s %s: the transaction changed meanwhile; handled again", info->medium,
                      info->peer != NULL ? info->peer : "");
        again.resumed = 1;
        r = handle_der(core, &again, 0, i == 3, der, len, out_r, out_len_r, deadline_r);
    }
    return r;
}
