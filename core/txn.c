/* The one place a state field changes (txn.h): every change is checked
 * against its machine's transition table and logged as "old -> new". */
#include "core/txn.h"
#include "base/err.h"
#include "base/log.h"

#include <stdio.h>
#include <string.h>

#define B(s) (1u << (s))

/* transactions: allowed[from] is the set of states reachable from it */
static const unsigned txn_allowed[CMPR_TXN_STATE_LAST] = {
    [CMPR_TXN_RECEIVED] = B(CMPR_TXN_PENDING_APPROVAL) | B(CMPR_TXN_FORWARDED)
        | B(CMPR_TXN_ISSUED) | B(CMPR_TXN_CONFIRMED) | B(CMPR_TXN_REJECTED)
        | B(CMPR_TXN_ANSWERED),
    [CMPR_TXN_PENDING_APPROVAL] = B(CMPR_TXN_WAITING_POLL) | B(CMPR_TXN_REJECTED)
        | B(CMPR_TXN_EXPIRED),
    [CMPR_TXN_FORWARDED] = B(CMPR_TXN_WAITING_POLL) | B(CMPR_TXN_ISSUED)
        | B(CMPR_TXN_REJECTED) | B(CMPR_TXN_ANSWERED) | B(CMPR_TXN_EXPIRED),
    [CMPR_TXN_WAITING_POLL] = B(CMPR_TXN_ISSUED) | B(CMPR_TXN_CONFIRMED)
        | B(CMPR_TXN_REJECTED) | B(CMPR_TXN_EXPIRED),
    [CMPR_TXN_ISSUED] = B(CMPR_TXN_CONFIRMED) | B(CMPR_TXN_REJECTED) | B(CMPR_TXN_EXPIRED),
    [CMPR_TXN_CONFIRMED] = 0,
    [CMPR_TXN_REJECTED] = 0,
    [CMPR_TXN_EXPIRED] = 0,
    [CMPR_TXN_ANSWERED] = 0,
};

/* forwarded requests (core/forward.c, core/forwarder.c) */
static const unsigned fwd_allowed[CMPR_FWD_STATE_LAST] = {
    /* stored first when the client's message is taken in */
    [CMPR_FWD_NEW] = B(CMPR_FWD_QUEUED),
    /* out (offline medium), answered (online), or given up */
    [CMPR_FWD_QUEUED] = B(CMPR_FWD_SENT) | B(CMPR_FWD_ANSWERED) | B(CMPR_FWD_FAILED),
    /* collected; or the upstream said "waiting" and we poll it (queued again) */
    [CMPR_FWD_SENT] = B(CMPR_FWD_ANSWERED) | B(CMPR_FWD_FAILED) | B(CMPR_FWD_QUEUED),
    /* delivered; refused; or polled again, or the client's next message */
    [CMPR_FWD_ANSWERED] = B(CMPR_FWD_DONE) | B(CMPR_FWD_FAILED) | B(CMPR_FWD_QUEUED),
    /* the client's next message of the transaction (certConf ...) */
    [CMPR_FWD_DONE] = B(CMPR_FWD_QUEUED) | B(CMPR_FWD_FAILED),
    [CMPR_FWD_FAILED] = 0,
};

static const unsigned defer_allowed[CMPR_DEFER_STATE_LAST] = {
    [CMPR_DEFER_WORKING] = B(CMPR_DEFER_DONE) | B(CMPR_DEFER_FAILED),
    [CMPR_DEFER_DONE] = 0,
    [CMPR_DEFER_FAILED] = 0,
};

static int
allowed(const unsigned *table, int last, int from, int to)
{
    return from >= 0 && from < last && to >= 0 && to < last && (table[from] & B(to)) != 0;
}

static void
hex(const unsigned char *d, size_t len, char *out)
{
    out[0] = '\0';
    for (size_t i = 0; i < len && i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void
cmpr_txn_init(struct cmpr_txn_rec *t)
{
    memset(t, 0, sizeof(*t));
    t->state = CMPR_TXN_RECEIVED;
    t->read_state = -1;
}

int
cmpr_txn_to(struct cmpr_txn_rec *t, int state)
{
    char tid[2 * 16 + 1];

    hex(t->tid, t->tid_len, tid);
    if (!allowed(txn_allowed, CMPR_TXN_STATE_LAST, t->state, state)) {
        cmpr_log_error("txn %s: refused state change [%s] -> [%s]", tid, cmpr_txn_state_name(t->state),
                       cmpr_txn_state_name(state));
        return CMPR_ERR_STATE;
    }
    cmpr_log_debug("txn %s: [%s] -> [%s]", tid, cmpr_txn_state_name(t->state), cmpr_txn_state_name(state));
    t->state = state;
    return CMPR_OK;
}

int
cmpr_txn_is_final(int state)
{
    return state >= 0 && state < CMPR_TXN_STATE_LAST && txn_allowed[state] == 0;
}

void
cmpr_fwd_init(struct cmpr_fwd_rec *f)
{
    memset(f, 0, sizeof(*f));
    f->state = f->read_state = CMPR_FWD_NEW;
}

int
cmpr_fwd_to(struct cmpr_fwd_rec *f, int state)
{
    char tid[2 * 16 + 1];

    hex(f->tid, f->tid_len, tid);
    if (!allowed(fwd_allowed, CMPR_FWD_STATE_LAST, f->state, state)) {
        cmpr_log_error("forward %s: refused state change [%s] -> [%s]", tid, cmpr_fwd_state_name(f->state),
                       cmpr_fwd_state_name(state));
        return CMPR_ERR_STATE;
    }
    cmpr_log_debug("forward %s: [%s] -> [%s]", tid, cmpr_fwd_state_name(f->state),
                   cmpr_fwd_state_name(state));
    f->state = state;
    return CMPR_OK;
}

void
cmpr_defer_init(struct cmpr_defer_rec *d, uint32_t ref)
{
    memset(d, 0, sizeof(*d));
    d->ref = ref;
    d->state = CMPR_DEFER_WORKING;
    d->read_state = -1;
}

int
cmpr_defer_to(struct cmpr_defer_rec *d, int state)
{
    if (!allowed(defer_allowed, CMPR_DEFER_STATE_LAST, d->state, state)) {
        cmpr_log_error("reference %08x: refused state change [%s] -> [%s]", (unsigned)d->ref,
                       cmpr_defer_state_name(d->state), cmpr_defer_state_name(state));
        return CMPR_ERR_STATE;
    }
    cmpr_log_debug("reference %08x: [%s] -> [%s]", (unsigned)d->ref, cmpr_defer_state_name(d->state),
                   cmpr_defer_state_name(state));
    d->state = state;
    return CMPR_OK;
}
