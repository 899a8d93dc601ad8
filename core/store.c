/* Backend selection and the record helpers shared by every store backend. */
#include "core/store.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[CMPR_TXN_STATE_LAST] = {
    "received", "pending_approval", "forwarded_upstream", "waiting_poll",
    "issued", "confirmed", "rejected", "expired", "answered"
};

const char *
cmpr_txn_state_name(int state)
{
    if (state < 0 || state >= CMPR_TXN_STATE_LAST)
        return "?";
    return state_names[state];
}

void
cmpr_txn_rec_clear(struct cmpr_txn_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->request);
    free(rec->response);
    memset(rec, 0, sizeof(*rec));
}

void
cmpr_cert_rec_clear(struct cmpr_cert_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->der);
    memset(rec, 0, sizeof(*rec));
}

int
cmpr_store_open(const char *spec, struct cmpr_store **st_r)
{
    *st_r = NULL;
    if (spec == NULL || *spec == '\0')
        return CMPR_ERR_INVALID_ARG;
    if (strncmp(spec, "sqlite:", 7) == 0)
        return cmpr_store_sqlite_ops.open(spec + 7, st_r);
    /* a libpq URI as it is, or any libpq connection string after "postgresql:" */
    if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0)
        return cmpr_store_pg_ops.open(spec, st_r);
    if (strncmp(spec, "postgresql:", 11) == 0)
        return cmpr_store_pg_ops.open(spec + 11, st_r);
    return cmpr_store_sqlite_ops.open(spec, st_r);
}

void
cmpr_store_close(struct cmpr_store *st)
{
    if (st != NULL)
        st->ops->close(st);
}

static const char *const defer_names[] = { "working", "done", "failed" };

const char *
cmpr_defer_state_name(int state)
{
    if (state < 0 || state >= CMPR_DEFER_STATE_LAST)
        return "?";
    return defer_names[state];
}

void
cmpr_defer_rec_clear(struct cmpr_defer_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->req);
    free(rec->answer);
    memset(rec, 0, sizeof(*rec));
}

static const char *const fwd_names[] = { "queued", "sent", "answered", "failed", "done", "new" };

const char *
cmpr_fwd_state_name(int state)
{
    if (state < 0 || state >= CMPR_FWD_STATE_LAST)
        return "?";
    return fwd_names[state];
}

void
cmpr_fwd_rec_clear(struct cmpr_fwd_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->req);
    free(rec->ans);
    free(rec->last);
    memset(rec, 0, sizeof(*rec));
}
