/* Transaction state machine (per transactionID): see core/txn.c for the
 * allowed transitions. */
#ifndef CMPR_CORE_TXN_H
#define CMPR_CORE_TXN_H

#include "core/store.h"

/* Moves t to state if the machine allows it (logs "old -> new"); the caller
 * then persists t before any answer leaves. */
int cmpr_txn_to(struct cmpr_txn_rec *t, int state);
int cmpr_txn_is_final(int state);

#endif
