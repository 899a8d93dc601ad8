/* The state machines of the core, one state function each: transactions
 * (per transactionID), forwarded requests and answers kept by reference.
 * Their state fields change here only (scripts/check-state makes sure); a
 * refused transition is an error the caller must obey: no answer that
 * depends on it may leave. */
#ifndef CMPR_CORE_TXN_H
#define CMPR_CORE_TXN_H

#include <stdint.h>

#include "core/store.h"

#define CMPR_WARN_UNUSED __attribute__((warn_unused_result))

/* A new transaction in state received. */
void cmpr_txn_init(struct cmpr_txn_rec *t);
/* Moves t to state if the machine allows it (logs "old -> new"):
 * CMPR_OK, or CMPR_ERR_STATE (t unchanged). The caller then persists t
 * before any answer leaves. */
int cmpr_txn_to(struct cmpr_txn_rec *t, int state) CMPR_WARN_UNUSED;
int cmpr_txn_is_final(int state);

/* A new forwarding record (state new: nothing sent yet, not stored). */
void cmpr_fwd_init(struct cmpr_fwd_rec *f);
int cmpr_fwd_to(struct cmpr_fwd_rec *f, int state) CMPR_WARN_UNUSED;

/* A new reference for an answer to come (state working, not stored). */
void cmpr_defer_init(struct cmpr_defer_rec *d, uint32_t ref);
int cmpr_defer_to(struct cmpr_defer_rec *d, int state) CMPR_WARN_UNUSED;

#endif
