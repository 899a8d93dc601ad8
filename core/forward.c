/*
 * Requests that go upstream ([route NAME] upstream = URI; RFC 9483 5.2).
 *
 * A request matched by an upstream route becomes a forwarding record in the
 * store (one per transactionID): the client's message as the upstream gets
 * it (protection kept, replaced by ours, or wrapped in nested), and later
 * the upstream's answer. A synchronous upstream (HTTP, TCP) is tried at
 * once, up to the route's wait; when its answer comes in time the client
 * gets it on its own connection. Otherwise (offline upstream, slow or
 * unreachable one) the client gets "waiting" (a certificate request: its
 * response with status waiting; anything else: an error with status
 * waiting, RFC 9810 5.3.22) and polls; cmpr_core_forward(), run by the
 * daemon's forwarder thread, sends what is queued (in nested batches where
 * configured), collects offline answers, polls upstreams that said
 * "waiting" itself where it holds the protection (reprotect), and gives up
 * after give_up. Nothing is only in memory: a restart continues.
 *
 * Answers to the client: with protection = keep or nested the upstream's
 * answer travels unchanged (the upstream protected it for the client);
 * with reprotect it is verified against the route's trust anchors and
 * protected again for the client. transactionID and senderNonce never
 * change; where we answered "waiting" ourselves, the recipNonce of the
 * final answer is the client's last pollReq's when we can protect it for
 * the client, else the original request's (RFC 9483 4.4 allows both).
 */
#include "core/pipeline.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "codec/oids.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

/* ---------------- small helpers ---------------- */

static int
is_certreq(int body)
{
    return body == CMPR_BODY_IR || body == CMPR_BODY_CR || body == CMPR_BODY_KUR
           || body == CMPR_BODY_P10CR || body == CMPR_BODY_CCR;
}

/* a body that opens a transaction (and so is matched against the routes) */
static int
is_first(int body)
{
    return is_certreq(body) || body == CMPR_BODY_RR || body == CMPR_BODY_GENM
           || body == CMPR_BODY_KRR || body == CMPR_BODY_NESTED;
}

static void
text_of(const ASN1_STRING *s, char *buf, size_t len)
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

static unsigned char *
copy_der(const unsigned char *d, size_t len)
{
    unsigned char *c = malloc(len > 0 ? len : 1);

    if (c != NULL && len > 0)
        memcpy(c, d, len);
    return c;
}

/* DER of m into malloc()ed memory */
static int
encode(const CMPR_PKIMESSAGE *m, unsigned char **der_r, size_t *len_r)
{
    unsigned char *o = NULL;
    size_t n = 0;
    int r = cmpr_msg_encode(m, &o, &n);

    *der_r = NULL;
    if (r != CMPR_OK)
        return r;
    *der_r = copy_der(o, n);
    *len_r = n;
    OPENSSL_free(o);
    return *der_r != NULL ? CMPR_OK : CMPR_ERR_ALLOC;
}

static void
set_blob(unsigned char **dst, size_t *dlen, const unsigned char *src, size_t len)
{
    free(*dst);
    *dst = src != NULL ? copy_der(src, len) : NULL;
    *dlen = src != NULL ? len : 0;
}

/* what the answer says about delay: 1 for waiting / pollRep */
static int
is_waiting(const CMPR_PKIMESSAGE *a, long *check_after_r, long *cert_req_id_r)
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
static int
is_final(const CMPR_PKIMESSAGE *a)
{
    long ca, id;
    int body = cmpr_msg_bodytype(a);

    if (is_waiting(a, &ca, &id))
        return 0;
    if (cmpr_msg_get0_rep(a) != NULL) {
        const CMPR_CERTRESPONSE *cr = sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(a)->response, 0);

        /* a certificate without implicitConfirm: certConf follows */
        return cr == NULL || cmpr_pkisi_status(cr->status) == CMPR_STATUS_REJECTION
               || cmpr_hdr_has_implicit_confirm(a->header);
    }
    return body != CMPR_BODY_NESTED;
}

/* ---------------- matching ---------------- */

struct qbuf {
    char profile[256], client[512], subject[512], issuer[512];
};

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
        text_of(p, b->profile, sizeof(b->profile));
        rq->profile = b->profile;
        ASN1_UTF8STRING_free(p);
    }
    /* the client: its reference (MAC), else its signer's subject, else the sender */
    if (h->protectionAlg != NULL && h->senderKID != NULL
            && (cmpr_prot_kind(h->protectionAlg->algorithm) == CMPR_PROT_PBM
                || cmpr_prot_kind(h->protectionAlg->algorithm) == CMPR_PROT_PBMAC1))
        text_of(h->senderKID, b->client, sizeof(b->client));
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

int
cmpr_core_explain(struct cmpr_core *core, const struct cmpr_request_info *info,
                  const unsigned char *der, size_t len, char *out, size_t outlen)
{
    struct req q;
    struct cmpr_route_query rq;
    struct qbuf b;
    struct cmpr_decode_err de;
    int r;

    memset(&q, 0, sizeof(q));
    q.core = core;
    q.info = info;
    out[0] = '\0';
    if ((r = cmpr_msg_decode(der, len, &q.msg, &de)) != CMPR_OK) {
        snprintf(out, outlen, "not a PKIMessage: offset %zu: expected %s\n", de.offset, de.what);
        return r;
    }
    q.body = cmpr_msg_bodytype(q.msg);
    query_of(&q, &rq, &b);
    snprintf(out, outlen, "request: body %s, label %s, certProfile %s, client %s, subject %s, issuer %s\n",
             cmpr_body_name(q.body), rq.label != NULL ? rq.label : "(none)",
             rq.profile != NULL ? rq.profile : "(none)", rq.client != NULL ? rq.client : "(unknown)",
             rq.subject != NULL ? rq.subject : "(none)", rq.issuer != NULL ? rq.issuer : "(none)");
    if (!is_first(q.body)) {
        size_t o = strlen(out);

        snprintf(out + o, outlen - o, "a %s continues the transaction of its transactionID: it goes "
                 "where the transaction's first message went\n", cmpr_body_name(q.body));
    } else {
        size_t o = strlen(out);

        (void)cmpr_route_match(core->routes, &rq, out + o, outlen - o);
    }
    CMPR_PKIMESSAGE_free(q.msg);
    return CMPR_OK;
}

int
cmpr_core_has_upstreams(const struct cmpr_core *core)
{
    for (size_t i = 0; core->routes != NULL && i < core->routes->n; i++)
        if (core->routes->v[i].upstream != NULL)
            return 1;
    return 0;
}

void
cmpr_core_set_upstream(struct cmpr_core *core, const struct cmpr_upstream_ops *ops, void *ctx)
{
    core->up = ops;
    core->up_ctx = ctx;
}

/* ---------------- protection on both sides ---------------- */

/* our own protection towards the upstream (RFC 9483 5.2.3.1) */
static int
ra_protect(const struct cmpr_route *rt, CMPR_PKIMESSAGE *m)
{
    if (rt->ra_cert != NULL)
        return cmpr_protect_sig(m, rt->ra_key, NULL, 0, rt->ra_cert, rt->ra_chain);
    if (rt->ra_reference != NULL) {
        struct cmpr_mac_params mp;

        cmpr_mac_params_default(&mp, rt->ra_mac_kind);
        if (cmpr_hdr_set1_sender_kid(m->header, (const unsigned char *)rt->ra_reference,
                                     strlen(rt->ra_reference)) != CMPR_OK)
            return CMPR_ERR_ALLOC;
        return cmpr_protect_mac(m, rt->ra_secret, rt->ra_secret_len, &mp, NULL);
    }
    return CMPR_ERR_CONFIG;
}

/* The upstream's answer must be its own (RFC 9483 5.2: responses are checked
 * before they go downstream). With keep and nested the client checks it too;
 * what we cannot check (a MAC with a secret we do not hold, no trust anchors)
 * is left to the client then. With reprotect we must check it. */
static int
verify_upstream(const struct req *q, const struct cmpr_route *rt, const CMPR_PKIMESSAGE *a, int ours,
                char *why, size_t wlen)
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
        struct cmpr_verify_opts vo = { (unsigned)q->core->conf->max_mac_iterations, q->core->mac_cache };
        const unsigned char *s = NULL;
        size_t sl = 0;

        if (must && rt->ra_secret != NULL) {
            s = rt->ra_secret;
            sl = rt->ra_secret_len;
        } else if (q->client != NULL && q->client->secret != NULL) {
            s = q->client->secret;
            sl = q->client->secret_len;
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

/* Who the client is, as far as the route needs: reprotect and nested check
 * it fully (we vouch for it upstream); keep checks what it can. */
static CMPR_PKIMESSAGE *
auth_client(struct req *q, const struct cmpr_route *rt)
{
    const CMPR_PKIHEADER *h = q->msg->header;
    int kind = h->protectionAlg != NULL ? cmpr_prot_kind(h->protectionAlg->algorithm) : CMPR_PROT_NONE;
    CMPR_PKIMESSAGE *e;

    if (rt->protection == CMPR_ROUTE_KEEP) {
        if (kind == CMPR_PROT_NONE)
            return NULL;        /* the upstream decides */
        if ((kind == CMPR_PROT_PBM || kind == CMPR_PROT_PBMAC1)
                && (h->senderKID == NULL
                    || cmpr_conf_client_by_ref(q->core->conf, ASN1_STRING_get0_data(h->senderKID),
                                               (size_t)ASN1_STRING_length(h->senderKID)) == NULL))
            return NULL;        /* a client of the upstream, unknown here */
        e = pl_authenticate(q);
        if (e != NULL && cmpr_msg_bodytype(e) == CMPR_BODY_ERROR
                && (cmpr_pkisi_failinfo(e->body->value.error->pKIStatusInfo) & FI(CMPR_FI_SIGNER_NOT_TRUSTED))) {
            CMPR_PKIMESSAGE_free(e);
            q->auth = 0;
            return NULL;        /* a signer the upstream may trust */
        }
        return e != NULL ? e : pl_check_tls_binding(q);
    }
    if ((e = pl_authenticate(q)) != NULL)
        return e;
    return pl_check_tls_binding(q);
}

/* ---------------- what goes upstream ---------------- */

/* kur and central key generation must keep the client's protection (RFC
 * 9483 5.2.3.2): their reprotect becomes nested */
static int
mode_for(const struct cmpr_route *rt, int body)
{
    if (rt->protection == CMPR_ROUTE_REPROTECT && body == CMPR_BODY_KUR)
        return CMPR_ROUTE_NESTED;
    return rt->protection;
}

static int
upstream_der(struct req *q, const struct cmpr_route *rt, const struct cmpr_fwd_rec *rec,
             unsigned char **der_r, size_t *len_r, int *failbit_r, char *why, size_t wlen)
{
    int mode = mode_for(rt, q->body);
    CMPR_PKIMESSAGE *m = NULL;
    int r;

    *failbit_r = CMPR_FI_SYSTEM_FAILURE;
    if (rt->batch > 1 && mode == CMPR_ROUTE_NESTED)
        mode = CMPR_ROUTE_KEEP;     /* the batch's nested message carries our protection */
    if (mode == CMPR_ROUTE_KEEP) {
        *der_r = copy_der(q->der, q->der_len);
        *len_r = q->der_len;
        return *der_r != NULL ? CMPR_OK : CMPR_ERR_ALLOC;
    }
    if (mode == CMPR_ROUTE_REPROTECT) {
        if ((m = CMPR_PKIMESSAGE_dup(q->msg)) == NULL)
            return CMPR_ERR_ALLOC;
        if (rt->ra_verified && cmpr_msg_get0_reqs(m) != NULL) {
            /* RFC 9483 5.2.3.2: we check the POP, then say so */
            CMPR_CERTREQMSGS *reqs = cmpr_msg_get0_reqs(m);

            for (int i = 0; i < sk_CMPR_CERTREQMSG_num(reqs); i++) {
                CMPR_CERTREQMSG *crm = sk_CMPR_CERTREQMSG_value(reqs, i);

                if (cmpr_crm_verify_pop_sig(crm) != CMPR_OK) {
                    *failbit_r = CMPR_FI_BAD_POP;
                    snprintf(why, wlen, "proof of possession does not verify");
                    CMPR_PKIMESSAGE_free(m);
                    return CMPR_ERR_INVALID_ARG;
                }
                CMPR_POPO_free(crm->popo);
                if ((crm->popo = CMPR_POPO_new()) == NULL
                        || (crm->popo->value.raVerified = ASN1_NULL_new()) == NULL) {
                    CMPR_PKIMESSAGE_free(m);
                    return CMPR_ERR_ALLOC;
                }
                crm->popo->type = CMPR_POPO_RAVERIFIED;
            }
        }
        /* a follow-up answers the upstream's last message, whatever we told the client */
        if (rec != NULL && rec->up_nonce_len > 0 && !is_first(q->body)) {
            ASN1_OCTET_STRING *n = ASN1_OCTET_STRING_new();

            if (n == NULL || !ASN1_OCTET_STRING_set(n, rec->up_nonce, (int)rec->up_nonce_len)
                    || cmpr_hdr_set1_recip_nonce(m->header, n) != CMPR_OK) {
                ASN1_OCTET_STRING_free(n);
                CMPR_PKIMESSAGE_free(m);
                return CMPR_ERR_ALLOC;
            }
            ASN1_OCTET_STRING_free(n);
        }
        /* the client's certificates are no business of the upstream's */
        sk_X509_pop_free(m->extraCerts, X509_free);
        m->extraCerts = NULL;
        if (rt->ra_cert == NULL)
            (void)cmpr_hdr_set1_sender_name(m->header, NULL);
    } else {
        CMPR_PKIMESSAGE *inner = CMPR_PKIMESSAGE_dup(q->msg);

        /* RFC 9483 5.2.2.1: same transactionID and recipNonce as the inner message */
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
    }
    if ((r = ra_protect(rt, m)) == CMPR_OK)
        r = encode(m, der_r, len_r);
    CMPR_PKIMESSAGE_free(m);
    if (r != CMPR_OK)
        snprintf(why, wlen, "cannot protect the message for the upstream: %s", cmpr_strerror(r));
    return r;
}

/* ---------------- answers to the client ---------------- */

static long
req_cert_req_id(const struct req *q)
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

/* "waiting": we hold the request for the upstream (RFC 9810 5.3.22) */
static CMPR_PKIMESSAGE *
waiting_rsp(struct req *q, const struct cmpr_route *rt)
{
    char text[300];

    snprintf(text, sizeof(text), "forwarded to the upstream CA (route %s); poll for the answer", rt->name);
    pl_audit(q, "forwarded", "to %s (route %s); the client waits", rt->upstream, rt->name);
    if (is_certreq(q->body))
        return cmpr_msg_build_certrep(q->msg, pl_rep_type(q->body), req_cert_req_id(q),
                                      cmpr_pkisi_new(CMPR_STATUS_WAITING, 0, text), NULL, NULL, NULL);
    return cmpr_msg_build_error(q->msg, cmpr_pkisi_new(CMPR_STATUS_WAITING, 0, text), -1, NULL);
}

/* The answer (rsp, protected here, or raw DER passed as it is) goes to the
 * client and is kept for a retransmission of its message. */
static int
reply(struct req *q, struct cmpr_fwd_rec *rec, int stored, CMPR_PKIMESSAGE *rsp,
      const unsigned char *raw, size_t raw_len, unsigned char **der_r, size_t *len_r)
{
    struct cmpr_store *st = q->core->st;
    unsigned char *out = NULL;
    size_t out_len = 0;
    int r;

    if (rsp != NULL) {
        r = pl_protect(q, rsp);
        if (r == CMPR_OK)
            r = encode(rsp, &out, &out_len);
        CMPR_PKIMESSAGE_free(rsp);
        if (r != CMPR_OK)
            return r;
    } else {
        if ((out = copy_der(raw, raw_len)) == NULL)
            return CMPR_ERR_ALLOC;
        out_len = raw_len;
    }
    if (stored) {
        set_blob(&rec->last, &rec->last_len, out, out_len);
        pl_octets(q->msg->header->senderNonce, rec->last_nonce, sizeof(rec->last_nonce), &rec->last_nonce_len);
        rec->updated = (int64_t)time(NULL);
        r = st->ops->fwd_put(st, rec);
        if (r == CMPR_ERR_CONFLICT && rec->state == rec->read_state) {
            /* the forwarder moved the job on meanwhile: keep its work, add our copy */
            struct cmpr_fwd_rec fresh;

            if (st->ops->fwd_get(st, rec->tid, rec->tid_len, &fresh) == CMPR_OK) {
                set_blob(&fresh.last, &fresh.last_len, out, out_len);
                memcpy(fresh.last_nonce, rec->last_nonce, sizeof(fresh.last_nonce));
                fresh.last_nonce_len = rec->last_nonce_len;
                if (rec->delayed)
                    fresh.delayed = 1;
                r = st->ops->fwd_put(st, &fresh);
                cmpr_fwd_rec_clear(&fresh);
            }
        }
        if (r != CMPR_OK)
            cmpr_log_warn("%s tid=%s: cannot keep the answer for retransmissions: %s", q->info->medium,
                          q->tidhex, cmpr_strerror(r));
    }
    *der_r = out;
    *len_r = out_len;
    return 1;
}

static int
reply_error(struct req *q, struct cmpr_fwd_rec *rec, int stored, int failbit, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int
reply_error(struct req *q, struct cmpr_fwd_rec *rec, int stored, int failbit, const char *fmt, ...)
{
    char text[600];
    va_list ap;
    unsigned char *d = NULL;
    size_t n = 0;
    CMPR_PKIMESSAGE *e;
    int r;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if ((e = pl_error_rsp(q, failbit, "%s", text)) == NULL)
        return CMPR_ERR_ALLOC;
    r = reply(q, rec, stored, e, NULL, 0, &d, &n);
    if (r == 1) {
        /* handed out through the caller's pointers below */
        q->raw_answer = d;
        q->raw_answer_len = n;
    }
    return r;
}

/* reply_error's answer into the caller's pointers */
static int
take_raw(struct req *q, int r, unsigned char **der_r, size_t *len_r)
{
    if (r == 1) {
        *der_r = q->raw_answer;
        *len_r = q->raw_answer_len;
        q->raw_answer = NULL;
    }
    return r;
}

/* An upstream that answered our nested message nested: the one message
 * inside is the answer (a nested answer of more is a batch's, left alone). */
static CMPR_PKIMESSAGE *
unnest(CMPR_PKIMESSAGE *a)
{
    CMPR_PKIMESSAGE *in;

    if (cmpr_msg_bodytype(a) != CMPR_BODY_NESTED || sk_CMPR_PKIMESSAGE_num(a->body->value.nested) != 1)
        return a;
    in = sk_CMPR_PKIMESSAGE_shift(a->body->value.nested);
    CMPR_PKIMESSAGE_free(a);
    return in;
}

/* The upstream's answer in rec goes to the client (q: its message). */
static int
deliver(struct req *q, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, unsigned char **der_r,
        size_t *len_r)
{
    struct cmpr_store *st = q->core->st;
    CMPR_PKIMESSAGE *a = NULL;
    struct cmpr_decode_err de;
    char why[400];
    long check_after, id;
    int delayed = rec->delayed, r;

    if (cmpr_msg_decode(rec->ans, rec->ans_len, &a, &de) != CMPR_OK) {
        rec->state = CMPR_FWD_FAILED;
        snprintf(rec->err, sizeof(rec->err), "the upstream's answer is not a PKIMessage");
        return take_raw(q, reply_error(q, rec, 1, CMPR_FI_SYSTEM_FAILURE, "route %s: %s", rt->name,
                                       rec->err), der_r, len_r);
    }
    if (verify_upstream(q, rt, a, mode_for(rt, rec->client_body) == CMPR_ROUTE_REPROTECT, why, sizeof(why)) != 0) {
        CMPR_PKIMESSAGE_free(a);
        rec->state = CMPR_FWD_FAILED;
        snprintf(rec->err, sizeof(rec->err), "the upstream's answer is refused: %.200s", why);
        return take_raw(q, reply_error(q, rec, 1, CMPR_FI_SYSTEM_FAILURE, "route %s: %s", rt->name,
                                       rec->err), der_r, len_r);
    }
    if (cmpr_msg_bodytype(a) == CMPR_BODY_NESTED) {
        a = unnest(a);
        free(rec->ans);
        rec->ans = NULL;
        if (encode(a, &rec->ans, &rec->ans_len) != CMPR_OK) {
            CMPR_PKIMESSAGE_free(a);
            return CMPR_ERR_ALLOC;
        }
    }
    if (ASN1_OCTET_STRING_cmp(a->header->transactionID, q->msg->header->transactionID) != 0) {
        CMPR_PKIMESSAGE_free(a);
        rec->state = CMPR_FWD_FAILED;
        snprintf(rec->err, sizeof(rec->err), "the upstream answered for another transaction");
        return take_raw(q, reply_error(q, rec, 1, CMPR_FI_SYSTEM_FAILURE, "route %s: %s", rt->name,
                                       rec->err), der_r, len_r);
    }
    pl_octets(a->header->senderNonce, rec->up_nonce, sizeof(rec->up_nonce), &rec->up_nonce_len);
    if (delayed && is_waiting(a, &check_after, &id)) {
        /* the upstream delays too: from now on the client polls through us */
        CMPR_PKIMESSAGE_free(a);
        rec->delayed = 0;
        rec->state = CMPR_FWD_DONE;
        return reply(q, rec, 1, cmpr_msg_build_pollrep(q->msg, req_cert_req_id(q),
                                                       check_after >= 0 ? check_after : rt->check_after,
                                                       "the upstream CA is still working on it"),
                     NULL, 0, der_r, len_r);
    }
    rec->state = CMPR_FWD_DONE;
    rec->delayed = 0;
    if (mode_for(rt, rec->client_body) == CMPR_ROUTE_REPROTECT
            || (delayed && q->auth == AUTH_MAC && q->client != NULL && q->client->secret != NULL)) {
        /* protected again for the client; where we answered "waiting"
         * ourselves, its recipNonce is the client's last message's */
        if (cmpr_hdr_set1_recip_nonce(a->header, q->msg->header->senderNonce) != CMPR_OK) {
            CMPR_PKIMESSAGE_free(a);
            return CMPR_ERR_ALLOC;
        }
        if (is_final(a))
            (void)st->ops->fwd_delete(st, rec->tid, rec->tid_len);
        pl_audit(q, "answered", "%s from the upstream (route %s), protected here for the client",
                 cmpr_body_name(cmpr_msg_bodytype(a)), rt->name);
        r = reply(q, rec, !is_final(a), a, NULL, 0, der_r, len_r);
        return r;
    }
    pl_audit(q, "answered", "%s from the upstream (route %s), passed on as it is",
             cmpr_body_name(cmpr_msg_bodytype(a)), rt->name);
    if (is_final(a)) {
        CMPR_PKIMESSAGE_free(a);
        (void)st->ops->fwd_delete(st, rec->tid, rec->tid_len);
        return reply(q, rec, 0, NULL, rec->ans, rec->ans_len, der_r, len_r);
    }
    CMPR_PKIMESSAGE_free(a);
    return reply(q, rec, 1, NULL, rec->ans, rec->ans_len, der_r, len_r);
}

/* ---------------- talking to the upstream ---------------- */

static void
msg_name(const struct cmpr_fwd_rec *rec, char *buf, size_t len)
{
    char tid[2 * CMPR_STORE_MAX_ID + 1];

    pl_hex(rec->tid, rec->tid_len, tid, sizeof(tid));
    snprintf(buf, len, "%.40s-%lld.pki", tid, (long long)rec->ver);
}

/* One attempt now, waiting at most wait_ms for the answer (offline media:
 * collecting until then). Sets rec's state; returns CMPR_UP_*. */
static int
attempt(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, long wait_ms)
{
    char name[200], key[300], err[400];
    unsigned char *ans = NULL;
    size_t alen = 0;
    long deadline = cmpr_mono_ms() + wait_ms;
    int r;

    msg_name(rec, name, sizeof(name));
    r = c->up->start(c->up_ctx, rt, name, rec->req, rec->req_len, wait_ms > 0 ? wait_ms : rt->timeout_ms,
                     key, sizeof(key), &ans, &alen, err, sizeof(err));
    if (r == CMPR_UP_SENT) {
        snprintf(rec->key, sizeof(rec->key), "%s", key);
        rec->state = CMPR_FWD_SENT;
        while (cmpr_mono_ms() < deadline) {
            int cr = c->up->collect(c->up_ctx, rt, key, &ans, &alen, err, sizeof(err));

            if (cr > 0) {
                r = CMPR_UP_ANSWER;
                break;
            }
            if (cr < 0)
                break;
            cmpr_nap_ms(100);
        }
    }
    if (r == CMPR_UP_ANSWER) {
        free(rec->ans);
        rec->ans = ans;
        rec->ans_len = alen;
        rec->state = CMPR_FWD_ANSWERED;
        rec->err[0] = '\0';
    } else if (r == CMPR_UP_FAILED || r == CMPR_UP_TIMEOUT) {
        snprintf(rec->err, sizeof(rec->err), "%.80s: %.200s", rt->upstream, err);
        rec->attempts++;
        rec->state = CMPR_FWD_QUEUED;
        {
            long pause = rt->retry_ms / 1000;

            for (int i = 1; i < rec->attempts && pause < 3600; i++)
                pause *= 2;
            rec->next_try = (int64_t)time(NULL) + (pause > 3600 ? 3600 : pause);
        }
    }
    return r;
}

/* ---------------- the entry point for a client's message ---------------- */

int
pl_forward(struct req *q, unsigned char **der_r, size_t *len_r)
{
    struct cmpr_core *c = q->core;
    struct cmpr_store *st = c->st;
    const ASN1_OCTET_STRING *tid = q->msg->header->transactionID;
    const struct cmpr_route *rt = NULL;
    struct cmpr_fwd_rec rec;
    CMPR_PKIMESSAGE *e;
    char why[400];
    int have = 0, r, failbit;
    long wait_ms;
    unsigned char *up = NULL;
    size_t up_len = 0;

    if (c->routes == NULL || c->routes->n == 0)
        return 0;
    memset(&rec, 0, sizeof(rec));
    r = st->ops->fwd_get(st, ASN1_STRING_get0_data(tid), (size_t)ASN1_STRING_length(tid), &rec);
    if (r == CMPR_OK) {
        have = 1;
        if ((rt = cmpr_route_by_name(c->routes, rec.route)) == NULL || rt->upstream == NULL) {
            r = take_raw(q, reply_error(q, &rec, 0, CMPR_FI_SYSTEM_FAILURE,
                                        "route %s (of this transaction) is no longer configured",
                                        rec.route), der_r, len_r);
            goto out;
        }
    } else if (r != CMPR_ERR_NOT_FOUND) {
        r = take_raw(q, reply_error(q, &rec, 0, CMPR_FI_SYSTEM_UNAVAIL, "the store is not available"),
                     der_r, len_r);
        goto out;
    } else {
        struct cmpr_route_query rq;
        struct qbuf b;

        if (!is_first(q->body))
            return 0;           /* a follow-up of a transaction answered here */
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
    }
    /* a retransmission of the client's last message gets the same answer */
    if (have && rec.last != NULL && pl_octets_equal(q->msg->header->senderNonce, rec.last_nonce,
                                                    rec.last_nonce_len)) {
        cmpr_log_info("%s tid=%s: retransmission answered from the store", q->info->medium, q->tidhex);
        r = reply(q, &rec, 0, NULL, rec.last, rec.last_len, der_r, len_r);
        goto out;
    }
    /* a senderNonce is used once (replay protection) */
    r = st->ops->nonce_check(st, ASN1_STRING_get0_data(q->msg->header->senderNonce),
                             (size_t)ASN1_STRING_length(q->msg->header->senderNonce), (int64_t)time(NULL),
                             c->conf->nonce_window);
    if (r == CMPR_ERR_EXISTS && !q->info->resumed) {
        r = take_raw(q, reply_error(q, &rec, 0, CMPR_FI_BAD_SENDER_NONCE,
                                    "senderNonce was already used (replay)"), der_r, len_r);
        goto out;
    }
    if ((e = auth_client(q, rt)) != NULL) {
        r = reply(q, &rec, 0, e, NULL, 0, der_r, len_r);
        goto out;
    }
    if (have && rec.delayed && q->body == CMPR_BODY_POLLREQ) {
        /* the client polls for what we hold for it */
        switch (rec.state) {
        case CMPR_FWD_ANSWERED:
            r = deliver(q, rt, &rec, der_r, len_r);
            goto out;
        case CMPR_FWD_FAILED:
            r = take_raw(q, reply_error(q, &rec, 1, CMPR_FI_SYSTEM_UNAVAIL, "route %s: %s", rt->name,
                                        rec.err), der_r, len_r);
            goto out;
        default:
            r = reply(q, &rec, 1, cmpr_msg_build_pollrep(q->msg, req_cert_req_id(q), rt->check_after,
                                                         "the upstream CA has not answered yet"),
                      NULL, 0, der_r, len_r);
            goto out;
        }
    }
    if (have && (rec.state == CMPR_FWD_QUEUED || rec.state == CMPR_FWD_SENT)) {
        r = take_raw(q, reply_error(q, &rec, 0, CMPR_FI_BAD_REQUEST, "the previous message of this "
                                    "transaction is still on its way upstream (route %s)", rt->name),
                     der_r, len_r);
        goto out;
    }
    if (have && rec.state == CMPR_FWD_FAILED) {
        r = take_raw(q, reply_error(q, &rec, 0, CMPR_FI_SYSTEM_UNAVAIL, "route %s: %s", rt->name, rec.err),
                     der_r, len_r);
        goto out;
    }
    /* this message goes upstream */
    why[0] = '\0';
    if ((r = upstream_der(q, rt, have ? &rec : NULL, &up, &up_len, &failbit, why, sizeof(why))) != CMPR_OK) {
        r = take_raw(q, reply_error(q, &rec, 0, failbit, "route %s: %s", rt->name,
                                    why[0] ? why : cmpr_strerror(r)), der_r, len_r);
        goto out;
    }
    if (!have) {
        pl_octets(tid, rec.tid, sizeof(rec.tid), &rec.tid_len);
        snprintf(rec.route, sizeof(rec.route), "%s", rt->name);
        rec.created = (int64_t)time(NULL);
    }
    snprintf(rec.client, sizeof(rec.client), "%s", q->client != NULL ? q->client->name : "");
    snprintf(rec.push, sizeof(rec.push), "%s", q->info->push != NULL ? q->info->push : "");
    rec.auth = q->auth;
    rec.mac_kind = q->mac_kind;
    rec.state = CMPR_FWD_QUEUED;
    rec.delayed = 0;
    rec.client_body = q->body;
    pl_octets(q->msg->header->senderNonce, rec.client_nonce, sizeof(rec.client_nonce), &rec.client_nonce_len);
    free(rec.req);
    rec.req = up;
    rec.req_len = up_len;
    up = NULL;
    set_blob(&rec.ans, &rec.ans_len, NULL, 0);
    rec.key[0] = rec.batch[0] = rec.err[0] = '\0';
    rec.attempts = 0;
    rec.next_try = rec.updated = (int64_t)time(NULL);
    if ((r = st->ops->fwd_put(st, &rec)) != CMPR_OK) {
        r = take_raw(q, reply_error(q, &rec, 0, r == CMPR_ERR_EXISTS ? CMPR_FI_TRANSACTION_ID_IN_USE
                                    : CMPR_FI_SYSTEM_UNAVAIL, "%s", r == CMPR_ERR_EXISTS
                                    ? "transactionID is already in use" : "the store could not record "
                                    "the forwarded request"), der_r, len_r);
        goto out;
    }
    /* a synchronous upstream is tried now; certConf and the like wait a
     * while even for an offline one (OpenSSL 3.0's client cannot poll for
     * a pkiConf) */
    wait_ms = is_first(q->body) ? rt->wait_ms : rt->followup_wait_ms;
    if (c->up != NULL && (rt->batch <= 1 || !is_first(q->body)) && wait_ms > 0) {
        int a = attempt(c, rt, &rec, wait_ms);

        if (a == CMPR_UP_ANSWER) {
            r = deliver(q, rt, &rec, der_r, len_r);
            goto out;
        }
        if (a == CMPR_UP_FAILED) {
            /* RFC 9483 6.1: an upstream that fails is an error downstream, now */
            rec.state = CMPR_FWD_FAILED;
            cmpr_log_warn("route %s: %s", rt->name, rec.err);
            r = take_raw(q, reply_error(q, &rec, 1, CMPR_FI_SYSTEM_UNAVAIL, "route %s: upstream %s",
                                        rt->name, rec.err), der_r, len_r);
            goto out;
        }
    }
    /* the client waits; the forwarder carries on */
    rec.delayed = 1;
    r = reply(q, &rec, 1, waiting_rsp(q, rt), NULL, 0, der_r, len_r);
    if (c->up != NULL && c->up->wake != NULL)
        c->up->wake(c->up_ctx);
 out:
    free(up);
    cmpr_fwd_rec_clear(&rec);
    return r;
}

/* ---------------- the forwarder ---------------- */

/* The answer for a client that waits on a medium we can write to (mail,
 * file drop) goes to it at once: it need not poll. Its recipNonce stays the
 * request's (RFC 9483 4.4); a poll that comes anyway is answered too. */
static void
push_answer(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec)
{
    struct req q;
    struct cmpr_request_info info = { "forward", NULL, NULL, NULL, NULL, 0, NULL };
    CMPR_PKIMESSAGE *a = NULL;
    unsigned char *out = NULL;
    size_t olen = 0;
    long ca, id;
    char why[400], tid[2 * CMPR_STORE_MAX_ID + 1];

    pl_hex(rec->tid, rec->tid_len, tid, sizeof(tid));
    memset(&q, 0, sizeof(q));
    q.core = c;
    q.info = &info;
    q.ca = c->cas[0];
    q.auth = rec->auth;
    q.mac_kind = rec->mac_kind;
    for (size_t i = 0; i < c->conf->n_clients; i++)
        if (rec->client[0] != '\0' && strcmp(c->conf->clients[i].name, rec->client) == 0)
            q.client = &c->conf->clients[i];
    if (cmpr_msg_decode(rec->ans, rec->ans_len, &a, NULL) != CMPR_OK
            || verify_upstream(&q, rt, a, mode_for(rt, rec->client_body) == CMPR_ROUTE_REPROTECT, why,
                               sizeof(why)) != 0 || is_waiting(a, &ca, &id)) {
        CMPR_PKIMESSAGE_free(a);
        return;                 /* the client's poll deals with it */
    }
    a = unnest(a);
    if (mode_for(rt, rec->client_body) == CMPR_ROUTE_REPROTECT) {
        ASN1_OCTET_STRING *n = ASN1_OCTET_STRING_new();
        int ok = n != NULL && ASN1_OCTET_STRING_set(n, rec->client_nonce, (int)rec->client_nonce_len)
                 && cmpr_hdr_set1_recip_nonce(a->header, n) == CMPR_OK && pl_protect(&q, a) == CMPR_OK
                 && encode(a, &out, &olen) == CMPR_OK;

        ASN1_OCTET_STRING_free(n);
        if (!ok) {
            CMPR_PKIMESSAGE_free(a);
            free(out);
            return;
        }
    } else if (encode(a, &out, &olen) != CMPR_OK) {
        CMPR_PKIMESSAGE_free(a);
        return;
    }
    CMPR_PKIMESSAGE_free(a);
    if (c->up->push(c->up_ctx, rec->push, out, olen, why, sizeof(why)) != 0) {
        cmpr_log_warn("route %s tid=%s: cannot push the answer to the client (it can poll): %s", rt->name,
                      tid, why);
        free(out);
        return;
    }
    cmpr_log_info("route %s tid=%s: the upstream's answer pushed to the client", rt->name, tid);
    free(rec->last);
    rec->last = out;
    rec->last_len = olen;
    memcpy(rec->last_nonce, rec->client_nonce, sizeof(rec->last_nonce));
    rec->last_nonce_len = rec->client_nonce_len;
}

/* What came back for rec, outside any client request. */
static void
up_answer(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec,
          unsigned char *ans, size_t alen)
{
    CMPR_PKIMESSAGE *a = NULL;
    long check_after, id;
    char tid[2 * CMPR_STORE_MAX_ID + 1];

    pl_hex(rec->tid, rec->tid_len, tid, sizeof(tid));
    if (mode_for(rt, rec->client_body) == CMPR_ROUTE_REPROTECT && rt->batch <= 1
            && cmpr_msg_decode(ans, alen, &a, NULL) == CMPR_OK && is_waiting(a, &check_after, &id)) {
        /* we hold the protection: we poll the upstream ourselves (RFC 9483 5.2) */
        CMPR_PKIMESSAGE *p = cmpr_msg_new(CMPR_BODY_POLLREQ, cmpr_msg_pvno(a));
        CMPR_POLLREQ *pr = CMPR_POLLREQ_new();

        if (p != NULL && pr != NULL && ASN1_INTEGER_set(pr->certReqId, id)
                && sk_CMPR_POLLREQ_push(p->body->value.pollReq, pr)
                && cmpr_hdr_set1_transaction_id(p->header, rec->tid, rec->tid_len) == CMPR_OK
                && cmpr_hdr_set1_recip_nonce(p->header, a->header->senderNonce) == CMPR_OK
                && ra_protect(rt, p) == CMPR_OK) {
            pr = NULL;
            free(rec->req);
            rec->req = NULL;
            if (encode(p, &rec->req, &rec->req_len) == CMPR_OK) {
                pl_octets(a->header->senderNonce, rec->up_nonce, sizeof(rec->up_nonce), &rec->up_nonce_len);
                rec->state = CMPR_FWD_QUEUED;
                rec->next_try = (int64_t)time(NULL) + (check_after >= 0 ? check_after : rt->check_after);
                rec->key[0] = '\0';
                cmpr_log_info("route %s tid=%s: the upstream says waiting; polling it in %ld s", rt->name,
                              tid, (long)(rec->next_try - (int64_t)time(NULL)));
            }
        }
        CMPR_POLLREQ_free(pr);
        CMPR_PKIMESSAGE_free(p);
        CMPR_PKIMESSAGE_free(a);
        free(ans);
        return;
    }
    CMPR_PKIMESSAGE_free(a);
    free(rec->ans);
    rec->ans = ans;
    rec->ans_len = alen;
    rec->state = CMPR_FWD_ANSWERED;
    rec->err[0] = '\0';
    cmpr_log_info("route %s tid=%s: the upstream answered; it waits for the client's next poll", rt->name, tid);
    if (rec->delayed && rec->push[0] != '\0' && c->up->push != NULL)
        push_answer(c, rt, rec);
}

static void
fail_rec(const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
fail_rec(const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, const char *fmt, ...)
{
    va_list ap;
    char tid[2 * CMPR_STORE_MAX_ID + 1];

    va_start(ap, fmt);
    vsnprintf(rec->err, sizeof(rec->err), fmt, ap);
    va_end(ap);
    rec->state = CMPR_FWD_FAILED;
    pl_hex(rec->tid, rec->tid_len, tid, sizeof(tid));
    cmpr_log_warn("route %s tid=%s: given up: %s", rt != NULL ? rt->name : rec->route, tid, rec->err);
}

/* a nested answer to a batch: each inner answer to its request (RFC 9483 5.2.2.2) */
static void
split_batch(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec **recs, size_t n,
            const unsigned char *ans, size_t alen)
{
    CMPR_PKIMESSAGE *a = NULL;
    struct req q;
    struct cmpr_request_info info = { "forward", NULL, NULL, NULL, NULL, 0, NULL };
    char why[400];

    memset(&q, 0, sizeof(q));
    q.core = c;
    q.info = &info;
    if (cmpr_msg_decode(ans, alen, &a, NULL) != CMPR_OK) {
        for (size_t i = 0; i < n; i++)
            fail_rec(rt, recs[i], "the upstream's answer to the batch is not a PKIMessage");
        return;
    }
    if (verify_upstream(&q, rt, a, 1, why, sizeof(why)) != 0) {
        for (size_t i = 0; i < n; i++)
            fail_rec(rt, recs[i], "the upstream's answer to the batch is refused: %s", why);
        CMPR_PKIMESSAGE_free(a);
        return;
    }
    if (cmpr_msg_bodytype(a) != CMPR_BODY_NESTED) {
        char et[300] = "";

        if (cmpr_msg_bodytype(a) == CMPR_BODY_ERROR) {
            const STACK_OF(ASN1_UTF8STRING) *ss = a->body->value.error->pKIStatusInfo->statusString;

            if (sk_ASN1_UTF8STRING_num(ss) > 0)
                text_of(sk_ASN1_UTF8STRING_value(ss, 0), et, sizeof(et));
        }
        /* an error on the batch is the error of every request in it */
        for (size_t i = 0; i < n; i++)
            fail_rec(rt, recs[i], "the upstream refused the batch (%s)%s%s", cmpr_body_name(cmpr_msg_bodytype(a)),
                     et[0] ? ": " : "", et);
        CMPR_PKIMESSAGE_free(a);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int found = 0;

        for (int k = 0; k < sk_CMPR_PKIMESSAGE_num(a->body->value.nested) && !found; k++) {
            const CMPR_PKIMESSAGE *in = sk_CMPR_PKIMESSAGE_value(a->body->value.nested, k);
            unsigned char *d = NULL;
            size_t dl = 0;

            if (in->header->transactionID == NULL
                    || !pl_octets_equal(in->header->transactionID, recs[i]->tid, recs[i]->tid_len))
                continue;
            if (encode(in, &d, &dl) == CMPR_OK) {
                up_answer(c, rt, recs[i], d, dl);
                found = 1;
            }
        }
        if (!found)
            fail_rec(rt, recs[i], "no answer for this request in the upstream's batch answer");
    }
    CMPR_PKIMESSAGE_free(a);
}

/* Stores what the forwarder did with rec. A client's poll may have stored
 * its answer copy meanwhile (the version moved on): that is merged in; a
 * record whose job changed (a new message) is left alone. */
static void
put(struct cmpr_core *c, struct cmpr_fwd_rec *rec)
{
    struct cmpr_store *st = c->st;
    int r;

    rec->updated = (int64_t)time(NULL);
    for (int i = 0; i < 5; i++) {
        struct cmpr_fwd_rec fresh;

        if ((r = st->ops->fwd_put(st, rec)) != CMPR_ERR_CONFLICT)
            break;
        if (st->ops->fwd_get(st, rec->tid, rec->tid_len, &fresh) != CMPR_OK)
            return;
        if (fresh.state != rec->read_state || fresh.client_nonce_len != rec->client_nonce_len
                || memcmp(fresh.client_nonce, rec->client_nonce, rec->client_nonce_len) != 0) {
            cmpr_fwd_rec_clear(&fresh);
            return;         /* the transaction moved on without us */
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
}

/* sends up to rt->batch queued requests as one nested message */
static void
send_batch(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec **recs, size_t n)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_NESTED, CMPR_PVNO_2);
    unsigned char *der = NULL, *ans = NULL;
    size_t len = 0, alen = 0;
    char id[2 * CMPR_STORE_MAX_ID + 1], name[200], key[300], err[400];
    int r;

    if (m == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        CMPR_PKIMESSAGE *in = NULL;

        if (cmpr_msg_decode(recs[i]->req, recs[i]->req_len, &in, NULL) != CMPR_OK
                || !sk_CMPR_PKIMESSAGE_push(m->body->value.nested, in)) {
            CMPR_PKIMESSAGE_free(in);
            fail_rec(rt, recs[i], "cannot put the request into a batch");
            put(c, recs[i]);
            recs[i] = NULL;
        }
    }
    pl_hex(ASN1_STRING_get0_data(m->header->transactionID), (size_t)ASN1_STRING_length(m->header->transactionID),
           id, sizeof(id));
    if (ra_protect(rt, m) != CMPR_OK || encode(m, &der, &len) != CMPR_OK) {
        CMPR_PKIMESSAGE_free(m);
        return;
    }
    CMPR_PKIMESSAGE_free(m);
    snprintf(name, sizeof(name), "batch-%.32s.pki", id);
    r = c->up->start(c->up_ctx, rt, name, der, len, rt->timeout_ms, key, sizeof(key), &ans, &alen, err, sizeof(err));
    free(der);
    cmpr_log_info("route %s: batch %s of %zu requests %s", rt->name, id, n,
                  r == CMPR_UP_ANSWER || r == CMPR_UP_SENT ? "sent" : err);
    {
        struct cmpr_fwd_rec *live[1000];
        size_t nl = 0;

        for (size_t i = 0; i < n; i++) {
            if (recs[i] == NULL)
                continue;
            if (r == CMPR_UP_SENT || r == CMPR_UP_ANSWER) {
                recs[i]->state = CMPR_FWD_SENT;
                snprintf(recs[i]->key, sizeof(recs[i]->key), "%s", key);
                snprintf(recs[i]->batch, sizeof(recs[i]->batch), "%s", id);
            } else {
                recs[i]->attempts++;
                recs[i]->next_try = (int64_t)time(NULL) + rt->retry_ms / 1000;
                snprintf(recs[i]->err, sizeof(recs[i]->err), "%.80s: %.200s", rt->upstream, err);
            }
            if (nl < 1000)
                live[nl++] = recs[i];
        }
        if (r == CMPR_UP_ANSWER)
            split_batch(c, rt, live, nl, ans, alen);
        for (size_t i = 0; i < nl; i++)
            put(c, live[i]);
    }
    free(ans);
}

long
cmpr_core_forward(struct cmpr_core *c)
{
    struct cmpr_store *st = c->st;
    struct cmpr_fwd_rec *v = NULL;
    size_t n = 0;
    int64_t now = (int64_t)time(NULL);
    long next = -1;

    if (c->up == NULL)
        return 5000;
    if (now - c->fwd_cleaned > 600 && st->ops->fwd_list(st, 1, &v, &n) == CMPR_OK) {
        /* a transaction whose client never came back for its follow-up */
        for (size_t i = 0; i < n; i++) {
            const struct cmpr_route *rt = cmpr_route_by_name(c->routes, v[i].route);

            if (v[i].state == CMPR_FWD_DONE && now - v[i].updated > (rt != NULL ? rt->give_up_s : 86400))
                (void)st->ops->fwd_delete(st, v[i].tid, v[i].tid_len);
            cmpr_fwd_rec_clear(&v[i]);
        }
        free(v);
        v = NULL;
        n = 0;
        c->fwd_cleaned = now;
    }
    if (st->ops->fwd_list(st, 0, &v, &n) != CMPR_OK)
        return 5000;
#define SOON(ms) do { if (next < 0 || (ms) < next) next = (ms); } while (0)
    for (size_t i = 0; i < n; i++) {
        struct cmpr_fwd_rec *rec = &v[i];
        const struct cmpr_route *rt = cmpr_route_by_name(c->routes, rec->route);

        if (rt == NULL || rt->upstream == NULL) {
            if (rec->state != CMPR_FWD_FAILED) {
                fail_rec(rt, rec, "route %s is no longer configured", rec->route);
                put(c, rec);
            }
            continue;
        }
        if ((rec->state == CMPR_FWD_QUEUED || rec->state == CMPR_FWD_SENT)
                && now - rec->created > rt->give_up_s) {
            fail_rec(rt, rec, "no answer from %s within %ld s%s%s", rt->upstream, rt->give_up_s,
                     rec->err[0] ? "; last trouble: " : "", rec->err[0] ? rec->err : "");
            put(c, rec);
            continue;
        }
        if ((rec->state == CMPR_FWD_ANSWERED || rec->state == CMPR_FWD_FAILED)
                && now - rec->updated > rt->give_up_s) {
            (void)st->ops->fwd_delete(st, rec->tid, rec->tid_len);     /* the client never came back */
            continue;
        }
        if (rec->state == CMPR_FWD_QUEUED && rt->batch > 1)
            continue;           /* below, by route */
        if (rec->state == CMPR_FWD_QUEUED) {
            int a;

            if (rec->next_try > now) {
                SOON((rec->next_try - now) * 1000);
                continue;
            }
            a = attempt(c, rt, rec, 0);
            if (a == CMPR_UP_ANSWER) {
                unsigned char *ans = rec->ans;

                rec->ans = NULL;
                up_answer(c, rt, rec, ans, rec->ans_len);
            } else if (a != CMPR_UP_SENT) {
                cmpr_log_warn("route %s: attempt %d failed: %s", rt->name, rec->attempts, rec->err);
            }
            put(c, rec);
            if (rec->state == CMPR_FWD_QUEUED)
                SOON((rec->next_try - now) * 1000);
            else if (rec->state == CMPR_FWD_SENT)
                SOON(1000);
            continue;
        }
        if (rec->state == CMPR_FWD_SENT && rec->batch[0] == '\0') {
            unsigned char *ans = NULL;
            size_t alen = 0;
            char err[400];
            int cr = c->up->collect(c->up_ctx, rt, rec->key, &ans, &alen, err, sizeof(err));

            if (cr > 0) {
                up_answer(c, rt, rec, ans, alen);
                put(c, rec);
            } else if (cr < 0) {
                cmpr_log_warn("route %s: collecting %s: %s", rt->name, rec->key, err);
            }
            SOON(1000);
        }
    }
    /* batches: per route, collect answers of batches out, then send new ones */
    for (size_t k = 0; c->routes != NULL && k < c->routes->n; k++) {
        const struct cmpr_route *rt = &c->routes->v[k];
        struct cmpr_fwd_rec **group;
        size_t ng = 0;
        int64_t oldest = now;

        if (rt->upstream == NULL || rt->batch <= 1)
            continue;
        if ((group = calloc(n + 1, sizeof(*group))) == NULL)
            break;
        /* batches out: one collect per batch */
        for (size_t i = 0; i < n; i++) {
            struct cmpr_fwd_rec *rec = &v[i];
            unsigned char *ans = NULL;
            size_t alen = 0;
            char err[400];
            int cr;

            if (rec->state != CMPR_FWD_SENT || rec->batch[0] == '\0' || strcmp(rec->route, rt->name) != 0)
                continue;
            ng = 0;
            for (size_t j = i; j < n; j++)
                if (v[j].state == CMPR_FWD_SENT && strcmp(v[j].batch, rec->batch) == 0)
                    group[ng++] = &v[j];
            cr = c->up->collect(c->up_ctx, rt, rec->key, &ans, &alen, err, sizeof(err));
            if (cr > 0) {
                split_batch(c, rt, group, ng, ans, alen);
                free(ans);
                for (size_t j = 0; j < ng; j++)
                    put(c, group[j]);
            } else {
                /* not yet: skip the other members of this batch in this pass */
                for (size_t j = 0; j < ng; j++)
                    group[j]->state = -1;
                if (cr < 0)
                    cmpr_log_warn("route %s: collecting batch %s: %s", rt->name, rec->batch, err);
                SOON(1000);
            }
        }
        ng = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i].state == CMPR_FWD_QUEUED && strcmp(v[i].route, rt->name) == 0 && v[i].next_try <= now
                    && (long)ng < rt->batch) {
                group[ng++] = &v[i];
                if (v[i].created < oldest)
                    oldest = v[i].created;
            }
        }
        if (ng > 0 && ((long)ng >= rt->batch || (now - oldest) * 1000 >= rt->batch_wait_ms))
            send_batch(c, rt, group, ng);
        else if (ng > 0)
            SOON(rt->batch_wait_ms - (now - oldest) * 1000 > 0 ? rt->batch_wait_ms - (now - oldest) * 1000 : 100);
        free(group);
    }
#undef SOON
    for (size_t i = 0; i < n; i++)
        cmpr_fwd_rec_clear(&v[i]);
    free(v);
    return next;
}
