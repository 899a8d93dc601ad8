/*
 * The forwarder (RFC 9483 5.2): one pass at a time on the forwarder's
 * thread (cmpr_core_forward), it drives every forwarding record the
 * clients' side (forward.c) stored. Online upstreams (HTTP, TCP) get their
 * exchanges started and return at once; their answers come back on the
 * medium's thread as results, which the next pass takes in. Offline
 * upstreams (files, SFTP, mail) are written to and collected from here.
 * Answers for clients that wait on their connection wake them
 * (cmpr_park_notify); answers for clients told "waiting" wait for their
 * poll or are pushed to them. Polls upstreams that said "waiting" where we
 * hold the protection, batches requests into nested messages, gives up
 * after give_up. Nothing is only in memory but what is in flight: a
 * restart sends it again.
 */
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

#define MAX_BATCH 1000

/* an exchange in flight, by transactionID (under c->mu) */
struct cmpr_inflight {
    struct cmpr_inflight *next;
    unsigned char tid[CMPR_STORE_MAX_ID];
    size_t len;
};

/* what an online exchange brought back: for one record, or the members of a batch */
struct cmpr_up_result {
    struct cmpr_up_result *next;
    struct cmpr_core *c;
    char route[128];
    int batch;
    size_t n;
    struct { unsigned char tid[CMPR_STORE_MAX_ID]; size_t len; } *members;
    int result;
    unsigned char *ans;
    size_t ans_len;
    char why[300];
};

static void
result_free(struct cmpr_up_result *res)
{
    free(res->members);
    free(res->ans);
    free(res);
}

static int
inflight_has(struct cmpr_core *c, const unsigned char *tid, size_t len)
{
    int found = 0;

    pthread_mutex_lock(&c->mu);
    for (struct cmpr_inflight *f = c->inflight; f != NULL && !found; f = f->next)
        found = f->len == len && memcmp(f->tid, tid, len) == 0;
    pthread_mutex_unlock(&c->mu);
    return found;
}

static void
inflight_set(struct cmpr_core *c, const unsigned char *tid, size_t len, int on)
{
    struct cmpr_inflight **pp, *f;

    pthread_mutex_lock(&c->mu);
    if (on && (f = calloc(1, sizeof(*f))) != NULL) {
        memcpy(f->tid, tid, len);
        f->len = len;
        f->next = c->inflight;
        c->inflight = f;
    }
    for (pp = &c->inflight; !on && (f = *pp) != NULL; pp = &f->next) {
        if (f->len == len && memcmp(f->tid, tid, len) == 0) {
            *pp = f->next;
            free(f);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void
cmpr_forwarder_free(struct cmpr_core *c)
{
    while (c->inflight != NULL) {
        struct cmpr_inflight *f = c->inflight;

        c->inflight = f->next;
        free(f);
    }
    while (c->results != NULL) {
        struct cmpr_up_result *r = c->results;

        c->results = r->next;
        result_free(r);
    }
}

/* ---------------- what came back ---------------- */

static void fail_rec(const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail_rec(const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, const char *fmt, ...)
{
    va_list ap;
    char tid[2 * CMPR_STORE_MAX_ID + 1];

    va_start(ap, fmt);
    vsnprintf(rec->err, sizeof(rec->err), fmt, ap);
    va_end(ap);
    cmpr_hex(rec->tid, rec->tid_len, tid, sizeof(tid));
    if (cmpr_fwd_to(rec, CMPR_FWD_FAILED) == CMPR_OK)
        cmpr_log_warn("route %s tid=%s: given up: %s", rt != NULL ? rt->name : rec->route, tid, rec->err);
}

/* a failed attempt: a client that waits on its connection learns it now
 * (RFC 9483 6.1), one told "waiting" gets another attempt later */
static void
attempt_failed(const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, int result, const char *why)
{
    long pause = rt->retry_ms / 1000;

    if (!rec->delayed && result != CMPR_ERR_TIMEOUT) {
        fail_rec(rt, rec, "%.80s: %.200s", rt->upstream, why);
        return;
    }
    snprintf(rec->err, sizeof(rec->err), "%.80s: %.200s", rt->upstream, why);
    rec->attempts++;
    for (int i = 1; i < rec->attempts && pause < 3600; i++)
        pause *= 2;
    rec->next_try = (int64_t)time(NULL) + (pause > 3600 ? 3600 : pause);
    if (rec->state == CMPR_FWD_SENT && cmpr_fwd_to(rec, CMPR_FWD_QUEUED) != CMPR_OK)
        return;
    cmpr_log_warn("route %s: attempt %d failed: %s", rt->name, rec->attempts, rec->err);
}

/* The answer for a client told "waiting" on a medium we can write to (mail,
 * file drop) goes to it at once: it need not poll. Its recipNonce stays the
 * request's (RFC 9483 4.4); a poll that comes anyway is answered too. */
static void
push_answer(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec)
{
    const struct cmpr_conf_client *client = cmpr_client_by_name(c, rec->client);
    const struct cmpr_push_ops *ops = NULL;
    void *ctx = NULL;
    CMPR_PKIMESSAGE *a = NULL;
    unsigned char *out = NULL;
    size_t olen = 0, ml = strcspn(rec->push, " ");
    long ca, id;
    int ok, mode = cmpr_up_mode(rt, rec->client_body);
    char why[400], tid[2 * CMPR_STORE_MAX_ID + 1];

    for (size_t i = 0; i < c->n_push; i++)
        if (strlen(c->push[i].ops->medium) == ml && strncmp(c->push[i].ops->medium, rec->push, ml) == 0) {
            ops = c->push[i].ops;
            ctx = c->push[i].ctx;
        }
    if (ops == NULL || rec->push[ml] != ' ')
        return;                 /* the client polls */
    cmpr_hex(rec->tid, rec->tid_len, tid, sizeof(tid));
    if (cmpr_msg_decode(rec->ans, rec->ans_len, &a, NULL) != CMPR_OK
            || cmpr_up_verify(c, client, rt, a, mode == CMPR_ROUTE_REPROTECT, why, sizeof(why)) != 0
            || cmpr_up_is_waiting(a, &ca, &id)) {
        CMPR_PKIMESSAGE_free(a);
        return;                 /* the client's poll deals with it */
    }
    a = cmpr_up_unnest(a);
    if (mode == CMPR_ROUTE_REPROTECT) {
        ASN1_OCTET_STRING *n = ASN1_OCTET_STRING_new();

        ok = n != NULL && ASN1_OCTET_STRING_set(n, rec->client_nonce, (int)rec->client_nonce_len)
             && cmpr_hdr_set1_recip_nonce(a->header, n) == CMPR_OK
             && cmpr_protect_for(c, c->cas[0], rt, client, rec->auth, rec->mac_kind, NULL, a) == CMPR_OK;
        ASN1_OCTET_STRING_free(n);
    } else {
        ok = 1;
    }
    ok = ok && cmpr_encode(a, &out, &olen) == CMPR_OK;
    CMPR_PKIMESSAGE_free(a);
    if (!ok || ops->push(ctx, rec->push + ml + 1, out, olen, why, sizeof(why)) != 0) {
        cmpr_log_warn("route %s tid=%s: cannot push the answer to the client (it can poll): %s", rt->name, tid,
                      ok ? why : "cannot build it");
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

/* the upstream says "waiting" and we hold the protection: we poll it
 * ourselves (RFC 9483 5.2); 1 when the pollReq is queued */
static int
poll_upstream(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, const CMPR_PKIMESSAGE *a,
              long check_after, long id)
{
    CMPR_PKIMESSAGE *p = cmpr_msg_new(CMPR_BODY_POLLREQ, cmpr_msg_pvno(a));
    CMPR_POLLREQ *pr = CMPR_POLLREQ_new();
    unsigned char *der = NULL;
    size_t len = 0;
    int ok;

    ok = p != NULL && pr != NULL && ASN1_INTEGER_set(pr->certReqId, id) && sk_CMPR_POLLREQ_push(p->body->value.pollReq, pr);
    if (ok)
        pr = NULL;
    ok = ok && cmpr_hdr_set1_transaction_id(p->header, rec->tid, rec->tid_len) == CMPR_OK
         && cmpr_hdr_set1_recip_nonce(p->header, a->header->senderNonce) == CMPR_OK
         && cmpr_up_protect(c, rt, p) == CMPR_OK && cmpr_encode(p, &der, &len) == CMPR_OK
         && (rec->state == CMPR_FWD_QUEUED || cmpr_fwd_to(rec, CMPR_FWD_QUEUED) == CMPR_OK);
    CMPR_POLLREQ_free(pr);
    CMPR_PKIMESSAGE_free(p);
    if (!ok) {
        free(der);
        return 0;
    }
    free(rec->req);
    rec->req = der;
    rec->req_len = len;
    cmpr_octets(a->header->senderNonce, rec->up_nonce, sizeof(rec->up_nonce), &rec->up_nonce_len);
    rec->next_try = (int64_t)time(NULL) + (check_after >= 0 ? check_after : rt->check_after);
    rec->key[0] = '\0';
    return 1;
}

/* What came back for rec (ans taken), outside any client request. */
static void
up_answer(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec, unsigned char *ans,
          size_t alen)
{
    CMPR_PKIMESSAGE *a = NULL;
    long check_after, id;
    char tid[2 * CMPR_STORE_MAX_ID + 1];

    cmpr_hex(rec->tid, rec->tid_len, tid, sizeof(tid));
    if (rec->delayed && cmpr_up_mode(rt, rec->client_body) == CMPR_ROUTE_REPROTECT && rt->batch <= 1
            && cmpr_msg_decode(ans, alen, &a, NULL) == CMPR_OK && cmpr_up_is_waiting(a, &check_after, &id)
            && poll_upstream(c, rt, rec, a, check_after, id)) {
        cmpr_log_info("route %s tid=%s: the upstream says waiting; polling it in %ld s", rt->name, tid,
                      (long)(rec->next_try - (int64_t)time(NULL)));
        CMPR_PKIMESSAGE_free(a);
        free(ans);
        return;
    }
    CMPR_PKIMESSAGE_free(a);
    if (cmpr_fwd_to(rec, CMPR_FWD_ANSWERED) != CMPR_OK) {
        free(ans);
        return;
    }
    free(rec->ans);
    rec->ans = ans;
    rec->ans_len = alen;
    rec->err[0] = '\0';
    cmpr_log_info("route %s tid=%s: the upstream answered%s", rt->name, tid,
                  rec->delayed ? "; it waits for the client's next poll" : "");
    if (rec->delayed && rec->push[0] != '\0')
        push_answer(c, rt, rec);
}

/* a nested answer to a batch: each inner answer to its request (RFC 9483 5.2.2.2) */
static void
split_batch(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec **recs, size_t n,
            const unsigned char *ans, size_t alen)
{
    CMPR_PKIMESSAGE *a = NULL;
    char why[400], et[300] = "";

    if (cmpr_msg_decode(ans, alen, &a, NULL) != CMPR_OK) {
        for (size_t i = 0; i < n; i++)
            fail_rec(rt, recs[i], "the upstream's answer to the batch is not a PKIMessage");
        return;
    }
    if (cmpr_up_verify(c, NULL, rt, a, 1, why, sizeof(why)) != 0) {
        for (size_t i = 0; i < n; i++)
            fail_rec(rt, recs[i], "the upstream's answer to the batch is refused: %s", why);
        CMPR_PKIMESSAGE_free(a);
        return;
    }
    if (cmpr_msg_bodytype(a) != CMPR_BODY_NESTED) {
        if (cmpr_msg_bodytype(a) == CMPR_BODY_ERROR
                && sk_ASN1_UTF8STRING_num(a->body->value.error->pKIStatusInfo->statusString) > 0)
            cmpr_up_text(sk_ASN1_UTF8STRING_value(a->body->value.error->pKIStatusInfo->statusString, 0), et, sizeof(et));
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

            if (in->header->transactionID != NULL
                    && cmpr_octets_equal(in->header->transactionID, recs[i]->tid, recs[i]->tid_len)
                    && cmpr_encode(in, &d, &dl) == CMPR_OK) {
                up_answer(c, rt, recs[i], d, dl);
                found = 1;
            }
        }
        if (!found)
            fail_rec(rt, recs[i], "no answer for this request in the upstream's batch answer");
    }
    CMPR_PKIMESSAGE_free(a);
}

/* stores rec; a client that waits on its connection for its outcome is woken */
static void
settle(struct cmpr_core *c, struct cmpr_fwd_rec *rec)
{
    (void)cmpr_up_put(c, rec);
    if (!rec->delayed && (rec->state == CMPR_FWD_ANSWERED || rec->state == CMPR_FWD_FAILED))
        cmpr_park_notify(c, rec->tid, rec->tid_len);
}

/* ---------------- online exchanges ---------------- */

static void
exchange_done(void *arg, int result, unsigned char *ans, size_t len, const char *why)
{
    struct cmpr_up_result *res = arg;
    struct cmpr_core *c = res->c;

    res->result = result;
    res->ans = ans;
    res->ans_len = len;
    snprintf(res->why, sizeof(res->why), "%s", why != NULL ? why : cmpr_strerror(result));
    pthread_mutex_lock(&c->mu);
    res->next = c->results;
    c->results = res;
    pthread_mutex_unlock(&c->mu);
    cmpr_up_wake(c);
}

/* starts the exchange of der for recs (one, or the members of a batch) */
static int
start_exchange(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec **recs, size_t n, int batch,
               const char *tag, const unsigned char *der, size_t len)
{
    struct cmpr_up_result *res = calloc(1, sizeof(*res));
    int r;

    if (res == NULL || (res->members = calloc(n, sizeof(*res->members))) == NULL) {
        free(res);
        return CMPR_ERR_ALLOC;
    }
    res->c = c;
    res->batch = batch;
    res->n = n;
    snprintf(res->route, sizeof(res->route), "%s", rt->name);
    for (size_t i = 0; i < n; i++) {
        memcpy(res->members[i].tid, recs[i]->tid, recs[i]->tid_len);
        res->members[i].len = recs[i]->tid_len;
        inflight_set(c, recs[i]->tid, recs[i]->tid_len, 1);
    }
    if ((r = rt->up->exchange(rt->up_ctx, rt->up_set, tag, der, len, rt->timeout_ms, exchange_done, res)) != CMPR_OK) {
        for (size_t i = 0; i < n; i++)
            inflight_set(c, recs[i]->tid, recs[i]->tid_len, 0);
        result_free(res);
    }
    return r;
}

/* a result: the records it is for, as they are now in the store */
static void
take_result(struct cmpr_core *c, struct cmpr_up_result *res)
{
    const struct cmpr_route *rt = cmpr_route_by_name(c->routes, res->route);
    struct cmpr_fwd_rec *recs = calloc(res->n + 1, sizeof(*recs)), **live = calloc(res->n + 1, sizeof(*live));
    size_t nl = 0;

    for (size_t i = 0; i < res->n; i++)
        inflight_set(c, res->members[i].tid, res->members[i].len, 0);
    for (size_t i = 0; recs != NULL && live != NULL && i < res->n; i++) {
        if (c->st->ops->fwd_get(c->st, res->members[i].tid, res->members[i].len, &recs[nl]) != CMPR_OK)
            continue;
        if (recs[nl].state != CMPR_FWD_QUEUED || rt == NULL) {
            cmpr_fwd_rec_clear(&recs[nl]);      /* moved on meanwhile */
            continue;
        }
        live[nl] = &recs[nl];
        nl++;
    }
    if (nl > 0 && res->result == CMPR_OK && res->batch) {
        split_batch(c, rt, live, nl, res->ans, res->ans_len);
    } else if (nl > 0 && res->result == CMPR_OK) {
        up_answer(c, rt, live[0], res->ans, res->ans_len);
        res->ans = NULL;
    } else {
        for (size_t i = 0; i < nl; i++)
            attempt_failed(rt, live[i], res->result, res->why);
    }
    for (size_t i = 0; i < nl; i++) {
        settle(c, live[i]);
        cmpr_fwd_rec_clear(live[i]);
    }
    free(recs);
    free(live);
}

static void
take_results(struct cmpr_core *c)
{
    struct cmpr_up_result *list;

    pthread_mutex_lock(&c->mu);
    list = c->results;
    c->results = NULL;
    pthread_mutex_unlock(&c->mu);
    while (list != NULL) {
        struct cmpr_up_result *res = list;

        list = res->next;
        take_result(c, res);
        result_free(res);
    }
}

/* ---------------- sending ---------------- */

static void
msg_name(const struct cmpr_fwd_rec *rec, char *buf, size_t len)
{
    char tid[2 * CMPR_STORE_MAX_ID + 1];

    cmpr_hex(rec->tid, rec->tid_len, tid, sizeof(tid));
    snprintf(buf, len, "%.40s-%lld.pki", tid, (long long)rec->ver);
}

/* one queued record goes out now */
static void
send_one(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec)
{
    char name[200], key[300], err[400], tag[2 * CMPR_STORE_MAX_ID + 1];
    int r;

    if (!rt->offline) {
        cmpr_hex(rec->tid, rec->tid_len, tag, sizeof(tag));
        if ((r = start_exchange(c, rt, &rec, 1, 0, tag, rec->req, rec->req_len)) != CMPR_OK) {
            attempt_failed(rt, rec, CMPR_ERR_UNREACHABLE, cmpr_strerror(r));
            settle(c, rec);
        }
        return;
    }
    msg_name(rec, name, sizeof(name));
    if (rt->up->send(rt->up_ctx, rt->up_set, name, rec->req, rec->req_len, key, sizeof(key), err, sizeof(err)) != CMPR_OK) {
        attempt_failed(rt, rec, CMPR_ERR_UNREACHABLE, err);
    } else if (cmpr_fwd_to(rec, CMPR_FWD_SENT) == CMPR_OK) {
        snprintf(rec->key, sizeof(rec->key), "%s", key);
    }
    settle(c, rec);
}

/* sends up to rt->batch queued requests as one nested message */
static void
send_batch(struct cmpr_core *c, const struct cmpr_route *rt, struct cmpr_fwd_rec **recs, size_t n)
{
    CMPR_PKIMESSAGE *m = cmpr_msg_new(CMPR_BODY_NESTED, CMPR_PVNO_2);
    unsigned char *der = NULL;
    size_t len = 0, nl = 0;
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
            settle(c, recs[i]);
            continue;
        }
        recs[nl++] = recs[i];
    }
    cmpr_hex(ASN1_STRING_get0_data(m->header->transactionID), (size_t)ASN1_STRING_length(m->header->transactionID),
             id, sizeof(id));
    r = cmpr_up_protect(c, rt, m) == CMPR_OK ? cmpr_encode(m, &der, &len) : CMPR_ERR_ENCODE;
    CMPR_PKIMESSAGE_free(m);
    if (r != CMPR_OK || nl == 0) {
        free(der);
        return;
    }
    if (!rt->offline) {
        if ((r = start_exchange(c, rt, recs, nl, 1, id, der, len)) != CMPR_OK)
            snprintf(err, sizeof(err), "%s", cmpr_strerror(r));
    } else {
        snprintf(name, sizeof(name), "batch-%.32s.pki", id);
        r = rt->up->send(rt->up_ctx, rt->up_set, name, der, len, key, sizeof(key), err, sizeof(err));
    }
    free(der);
    cmpr_log_info("route %s: batch %s of %zu requests %s", rt->name, id, nl, r == CMPR_OK ? "sent" : err);
    for (size_t i = 0; i < nl; i++) {
        if (r != CMPR_OK) {
            attempt_failed(rt, recs[i], CMPR_ERR_UNREACHABLE, err);
        } else if (rt->offline && cmpr_fwd_to(recs[i], CMPR_FWD_SENT) == CMPR_OK) {
            snprintf(recs[i]->key, sizeof(recs[i]->key), "%s", key);
            snprintf(recs[i]->batch, sizeof(recs[i]->batch), "%s", id);
        }
        if (r != CMPR_OK || rt->offline)
            settle(c, recs[i]);
    }
}

/* ---------------- one pass ---------------- */

struct pass {
    struct cmpr_core *c;
    struct cmpr_fwd_rec *v;
    size_t n;
    char *skip;                 /* v[i] is dealt with in this pass */
    int64_t now;
    long next;
};

static void
soon(struct pass *p, long ms)
{
    if (p->next < 0 || ms < p->next)
        p->next = ms;
}

/* finished records of clients that never came back for their follow-up */
static void
clean_up(struct cmpr_core *c, int64_t now)
{
    struct cmpr_fwd_rec *v = NULL;
    size_t n = 0;

    if (now - c->fwd_cleaned <= 600 || c->st->ops->fwd_list(c->st, 1, &v, &n) != CMPR_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        const struct cmpr_route *rt = cmpr_route_by_name(c->routes, v[i].route);

        if (v[i].state == CMPR_FWD_DONE && now - v[i].updated > (rt != NULL ? rt->give_up_s : 86400))
            (void)c->st->ops->fwd_delete(c->st, v[i].tid, v[i].tid_len);
        cmpr_fwd_rec_clear(&v[i]);
    }
    free(v);
    c->fwd_cleaned = now;
}

/* what give_up ends: 1 when rec is dealt with */
static int
give_up(struct pass *p, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec)
{
    struct cmpr_core *c = p->c;

    if (rt == NULL || rt->up == NULL) {
        if (rec->state != CMPR_FWD_FAILED) {
            fail_rec(rt, rec, "route %s is no longer configured", rec->route);
            settle(c, rec);
        }
        return 1;
    }
    if ((rec->state == CMPR_FWD_QUEUED || rec->state == CMPR_FWD_SENT) && p->now - rec->created > rt->give_up_s
            && !inflight_has(c, rec->tid, rec->tid_len)) {
        fail_rec(rt, rec, "no answer from %s within %ld s%s%s", rt->upstream, rt->give_up_s,
                 rec->err[0] ? "; last trouble: " : "", rec->err[0] ? rec->err : "");
        settle(c, rec);
        return 1;
    }
    if ((rec->state == CMPR_FWD_ANSWERED || rec->state == CMPR_FWD_FAILED) && p->now - rec->updated > rt->give_up_s) {
        (void)c->st->ops->fwd_delete(c->st, rec->tid, rec->tid_len);     /* the client never came back */
        return 1;
    }
    return 0;
}

static void
collect_one(struct pass *p, const struct cmpr_route *rt, struct cmpr_fwd_rec *rec)
{
    unsigned char *ans = NULL;
    size_t alen = 0;
    char err[400];
    int cr = rt->up->collect(rt->up_ctx, rt->up_set, rec->key, &ans, &alen, err, sizeof(err));

    if (cr > 0) {
        up_answer(p->c, rt, rec, ans, alen);
        settle(p->c, rec);
    } else if (cr < 0) {
        cmpr_log_warn("route %s: collecting %s: %s", rt->name, rec->key, err);
    }
    soon(p, 1000);
}

/* Whether this node drives rec in this pass. Nodes sharing a store each run
 * a forwarder; a record that is still to be sent or collected is driven by
 * one of them: the node holding its lease (renewed once half of it is
 * gone), or, when there is none or it ended (the node died), whichever node
 * takes it over first: the version check of the store lets one win. */
static int
drive(struct pass *p, struct cmpr_fwd_rec *rec)
{
    struct cmpr_core *c = p->c;
    const char *me = c->conf->node;
    int mine = strcmp(rec->owner, me) == 0;
    char prev[sizeof(rec->owner)], tid[2 * CMPR_STORE_MAX_ID + 1];

    if (rec->state != CMPR_FWD_QUEUED && rec->state != CMPR_FWD_SENT)
        return 1;                       /* nothing to drive: settled, waits for its client */
    if (!mine && rec->owner[0] != '\0' && rec->lease_until > p->now) {
        soon(p, (rec->lease_until - p->now) * 1000);   /* look again when it ends */
        return 0;
    }
    if (mine && rec->lease_until - p->now > c->conf->lease / 2)
        return 1;
    snprintf(prev, sizeof(prev), "%s", rec->owner);
    snprintf(rec->owner, sizeof(rec->owner), "%s", me);
    rec->lease_until = p->now + c->conf->lease;
    if (c->st->ops->fwd_put(c->st, rec) != CMPR_OK)
        return 0;                       /* another node, or the client's side, was quicker: next pass */
    if (!mine && prev[0] != '\0') {
        cmpr_hex(rec->tid, rec->tid_len, tid, sizeof(tid));
        cmpr_log_warn("route %s tid=%s: taken over from node %s, whose lease ended", rec->route, tid, prev);
    }
    return 1;
}

/* every record on its own (batched routes below) */
static void
each_record(struct pass *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct cmpr_fwd_rec *rec = &p->v[i];
        const struct cmpr_route *rt = cmpr_route_by_name(p->c->routes, rec->route);

        if (!drive(p, rec)) {
            p->skip[i] = 1;             /* another node's */
            continue;
        }
        if (give_up(p, rt, rec)) {
            p->skip[i] = 1;
            continue;
        }
        if (rec->state == CMPR_FWD_QUEUED && rt->batch > 1)
            continue;           /* below, by route */
        if (rec->state == CMPR_FWD_QUEUED && inflight_has(p->c, rec->tid, rec->tid_len)) {
            soon(p, 1000);      /* its result wakes us */
        } else if (rec->state == CMPR_FWD_QUEUED && rec->next_try > p->now) {
            soon(p, (rec->next_try - p->now) * 1000);
        } else if (rec->state == CMPR_FWD_QUEUED) {
            send_one(p->c, rt, rec);
            soon(p, rec->state == CMPR_FWD_QUEUED && rec->next_try > p->now ? (rec->next_try - p->now) * 1000 : 1000);
        } else if (rec->state == CMPR_FWD_SENT && rec->batch[0] == '\0') {
            collect_one(p, rt, rec);
        }
    }
}

/* the batches of rt that are out: one collect each */
static void
collect_batches(struct pass *p, const struct cmpr_route *rt, struct cmpr_fwd_rec **group)
{
    for (size_t i = 0; i < p->n; i++) {
        struct cmpr_fwd_rec *rec = &p->v[i];
        unsigned char *ans = NULL;
        size_t alen = 0, ng = 0;
        char err[400];
        int cr;

        if (p->skip[i] || rec->state != CMPR_FWD_SENT || rec->batch[0] == '\0' || strcmp(rec->route, rt->name) != 0)
            continue;
        for (size_t j = i; j < p->n && ng < MAX_BATCH; j++)
            if (!p->skip[j] && p->v[j].state == CMPR_FWD_SENT && strcmp(p->v[j].batch, rec->batch) == 0) {
                group[ng++] = &p->v[j];
                p->skip[j] = 1;         /* one collect for the whole batch */
            }
        cr = rt->up->collect(rt->up_ctx, rt->up_set, rec->key, &ans, &alen, err, sizeof(err));
        if (cr > 0) {
            split_batch(p->c, rt, group, ng, ans, alen);
            free(ans);
            for (size_t j = 0; j < ng; j++)
                settle(p->c, group[j]);
        } else {
            if (cr < 0)
                cmpr_log_warn("route %s: collecting batch %s: %s", rt->name, rec->batch, err);
            soon(p, 1000);
        }
    }
}

/* per route: collect answers of batches out, then send new ones */
static void
batches(struct pass *p)
{
    struct cmpr_fwd_rec *group[MAX_BATCH];

    for (size_t k = 0; p->c->routes != NULL && k < p->c->routes->n; k++) {
        const struct cmpr_route *rt = &p->c->routes->v[k];
        int64_t oldest = p->now;
        size_t ng = 0;

        if (rt->up == NULL || rt->batch <= 1)
            continue;
        collect_batches(p, rt, group);
        for (size_t i = 0; i < p->n && (long)ng < rt->batch && ng < MAX_BATCH; i++) {
            struct cmpr_fwd_rec *rec = &p->v[i];

            if (!p->skip[i] && rec->state == CMPR_FWD_QUEUED && strcmp(rec->route, rt->name) == 0
                    && rec->next_try <= p->now && !inflight_has(p->c, rec->tid, rec->tid_len)) {
                group[ng++] = rec;
                if (rec->created < oldest)
                    oldest = rec->created;
            }
        }
        if (ng > 0 && ((long)ng >= rt->batch || (p->now - oldest) * 1000 >= rt->batch_wait_ms))
            send_batch(p->c, rt, group, ng);
        else if (ng > 0)
            soon(p, rt->batch_wait_ms - (p->now - oldest) * 1000 > 0 ? rt->batch_wait_ms - (p->now - oldest) * 1000 : 100);
    }
}

long
cmpr_core_forward(struct cmpr_core *c)
{
    struct pass p;

    memset(&p, 0, sizeof(p));
    p.c = c;
    p.now = (int64_t)time(NULL);
    p.next = -1;
    if (c->routes == NULL)
        return 5000;
    take_results(c);
    clean_up(c, p.now);
    if (c->st->ops->fwd_list(c->st, 0, &p.v, &p.n) != CMPR_OK)
        return 5000;
    if ((p.skip = calloc(p.n + 1, 1)) != NULL) {
        each_record(&p);
        batches(&p);
    }
    for (size_t i = 0; i < p.n; i++)
        cmpr_fwd_rec_clear(&p.v[i]);
    free(p.v);
    free(p.skip);
    return p.next;
}
