/* What an operator and housekeeping do outside any CMP request: approve or
 * reject a pending request, revoke, expire what was never confirmed, keep
 * the CRLs fresh. */
#include "core/req.h"
#include "core/txn.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>

void
cmpr_operator_req(struct cmpr_core *core, struct req *q, const struct cmpr_request_info *info)
{
    memset(q, 0, sizeof(*q));
    q->core = core;
    q->info = info;
    q->ca = core->cas[0];
    q->keep_answer = 1;
    snprintf(q->sender, sizeof(q->sender), "operator");
}

static const struct cmpr_request_info operator_info = { .medium = "cli", .peer = "operator" };

/* the transaction tid, waiting for approval */
static int
pending(struct cmpr_core *core, struct req *q, const unsigned char *tid, size_t len)
{
    int r;

    cmpr_operator_req(core, q, &operator_info);
    if ((r = core->st->ops->txn_get(core->st, tid, len, &q->txn)) != CMPR_OK)
        return r;
    cmpr_hex(tid, len, q->tidhex, sizeof(q->tidhex));
    if (q->txn.state != CMPR_TXN_PENDING_APPROVAL) {
        cmpr_txn_rec_clear(&q->txn);
        return CMPR_ERR_INVALID_ARG;
    }
    return CMPR_OK;
}

int
cmpr_core_approve(struct cmpr_core *core, const unsigned char *tid, size_t len)
{
    struct req q;
    int r;

    if ((r = pending(core, &q, tid, len)) != CMPR_OK)
        return r;
    if (q.txn.request == NULL)
        r = CMPR_ERR_INVALID_ARG;
    else
        r = cmpr_enroll_approve(&q);
    CMPR_PKIMESSAGE_free(q.msg);
    cmpr_enroll_done(&q);
    cmpr_txn_rec_clear(&q.txn);
    ERR_clear_error();
    return r;
}

int
cmpr_core_reject(struct cmpr_core *core, const unsigned char *tid, size_t len, const char *reason)
{
    struct req q;
    int r;

    if ((r = pending(core, &q, tid, len)) != CMPR_OK)
        return r;
    snprintf(q.txn.note, sizeof(q.txn.note), "rejected by the operator%s%s", reason != NULL ? ": " : "",
             reason != NULL ? reason : "");
    if ((r = cmpr_txn_to(&q.txn, CMPR_TXN_REJECTED)) == CMPR_OK) {
        q.txn.updated = (int64_t)time(NULL);
        r = core->st->ops->txn_set_state(core->st, &q.txn);
    }
    if (r == CMPR_OK)
        cmpr_audit(&q, "rejected", "%s", q.txn.note);
    cmpr_txn_rec_clear(&q.txn);
    return r;
}

int
cmpr_core_revoke(struct cmpr_core *core, const unsigned char *serial, size_t len, int reason)
{
    struct req q;
    struct cmpr_cert_rec cert;
    int r;
    char snhex[2 * CMPR_STORE_MAX_ID + 1];

    cmpr_operator_req(core, &q, &operator_info);
    if ((r = core->st->ops->cert_get(core->st, serial, len, &cert)) != CMPR_OK)
        return r;
    if (cert.status == CMPR_CERT_REVOKED) {
        cmpr_cert_rec_clear(&cert);
        return CMPR_ERR_EXISTS;
    }
    if (reason < 0 || reason == 7 || reason > 10)
        reason = 0;
    r = core->st->ops->cert_set_status(core->st, serial, len, reason == 6 ? CMPR_CERT_ON_HOLD : CMPR_CERT_REVOKED,
                                       (int64_t)time(NULL), reason, cert.confirmed);
    if (r == CMPR_OK) {
        (void)cmpr_ca_write_crl(q.ca, core->st, NULL);
        cmpr_hex(serial, len, snhex, sizeof(snhex));
        cmpr_audit(&q, "revoked", "serial %s subject %s reason %d (operator)", snhex, cert.subject, reason);
    }
    cmpr_cert_rec_clear(&cert);
    return r;
}

/* ---------------- housekeeping ---------------- */

struct expired {
    struct { unsigned char tid[CMPR_STORE_MAX_ID]; size_t len; } *v;
    size_t n, cap;
    int64_t now;
};

static int
collect_expired(const struct cmpr_txn_rec *rec, void *arg)
{
    struct expired *x = arg;

    if (rec->expires == 0 || rec->expires > x->now)
        return CMPR_OK;
    if (cmpr_array_grow(&x->v, &x->cap, x->n + 1, sizeof(*x->v), 1000000) != CMPR_OK)
        return CMPR_OK;         /* the rest waits for the next round */
    memcpy(x->v[x->n].tid, rec->tid, rec->tid_len);
    x->v[x->n++].len = rec->tid_len;
    return CMPR_OK;
}

/* RFC 9810 5.3.18: no certConf in time is a rejection; revoke */
static int
expire_one(struct cmpr_core *core, const unsigned char *tid, size_t len, time_t now)
{
    static const struct cmpr_request_info info = { .medium = "cli", .peer = "housekeeping" };
    struct req q;
    int done = 0;

    cmpr_operator_req(core, &q, &info);
    if (core->st->ops->txn_get(core->st, tid, len, &q.txn) != CMPR_OK)
        return 0;
    cmpr_hex(q.txn.tid, q.txn.tid_len, q.tidhex, sizeof(q.tidhex));
    if (q.txn.state == CMPR_TXN_ISSUED && cmpr_txn_to(&q.txn, CMPR_TXN_EXPIRED) == CMPR_OK) {
        cmpr_revoke_serial(&q, q.txn.serial, q.txn.serial_len, 5);
        q.txn.updated = (int64_t)now;
        q.txn.expires = 0;
        if (core->st->ops->txn_update(core->st, &q.txn) == CMPR_OK) {
            cmpr_audit(&q, "expired", "no certConf within %ld s: certificate revoked", core->conf->confirm_wait);
            done = 1;
        }
    }
    cmpr_txn_rec_clear(&q.txn);
    return done;
}

/* CRLs are rewritten when half their validity has passed, so relying parties
 * never see an expired one while the daemon or cron runs housekeeping. */
static void
refresh_crls(struct cmpr_core *core, time_t now)
{
    for (size_t i = 0; i < core->n_cas; i++) {
        const struct cmpr_conf_ca *cc = core->cas[i]->conf;
        struct stat sb;

        if (cc->crl_file == NULL)
            continue;
        if (stat(cc->crl_file, &sb) == 0 && now - sb.st_mtime < cc->crl_days * 86400L / 2)
            continue;
        if (cmpr_ca_write_crl(core->cas[i], core->st, NULL) == CMPR_OK)
            cmpr_log_info("CRL of CA %s refreshed: %s", cc->name, cc->crl_file);
    }
}

int
cmpr_core_expire(struct cmpr_core *core, time_t now)
{
    struct expired x = { NULL, 0, 0, (int64_t)now };
    int done = 0;

    /* collect first: the store is not re-entered from its own callback */
    if (core->st->ops->txn_list(core->st, CMPR_TXN_ISSUED, collect_expired, &x) == CMPR_OK)
        for (size_t i = 0; i < x.n; i++)
            done += expire_one(core, x.v[i].tid, x.v[i].len, now);
    free(x.v);
    refresh_crls(core, now);
    return done;
}

int
cmpr_core_write_crl(struct cmpr_core *core, const char *path)
{
    if (core->n_cas == 0)
        return CMPR_ERR_CONFIG;
    return cmpr_ca_write_crl(core->cas[0], core->st, path);
}
