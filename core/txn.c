/* The one place a transaction's state changes: every change is checked
 * against the state machine and logged as "old -> new". */
#include "core/txn.h"
#include "base/err.h"
#include "base/log.h"

#include <stdio.h>

/* allowed[from] is a bit set of the states reachable from it */
#define B(s) (1u << (s))
static const unsigned allowed[CMPR_TXN_STATE_LAST] = {
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

int
cmpr_txn_to(struct cmpr_txn_rec *t, int state)
{
    char tid[2 * 16 + 1] = "";

    if (t->state < 0 || t->state >= CMPR_TXN_STATE_LAST || state < 0
            || state >= CMPR_TXN_STATE_LAST || !(allowed[t->state] & B(state))) {
        cmpr_log_error("transaction: refused state change %s -> %s",
                       cmpr_txn_state_name(t->state), cmpr_txn_state_name(state));
        return CMPR_ERR_INTERNAL;
    }
    for (size_t i = 0; i < t->tid_len && i < 16; i++)
        snprintf(tid + 2 * i, 3, "%02x", t->tid[i]);
    cmpr_log_debug("txn %s: [%s] -> [%s]", tid, cmpr_txn_state_name(t->state),
                   cmpr_txn_state_name(state));
    t->state = state;
    return CMPR_OK;
}

int
cmpr_txn_is_final(int state)
{
    return state >= 0 && state < CMPR_TXN_STATE_LAST && allowed[state] == 0;
}
