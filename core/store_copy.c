/* One store into another (store.h cmpr_store_copy), through the store
 * operations alone, so any backend copies into any other: what a single
 * node kept in SQLite moves into the cluster's PostgreSQL. Every record is
 * inserted by its key; one already there is left alone and counted as
 * present, so a second run copies only what is missing. */
#include "core/store.h"
#include "base/buf.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cmpr_copy_kind_names[CMPR_COPY_KINDS] = {
    "transactions", "serials", "certificates", "archived keys", "forwarded requests",
    "answers by reference", "audit entries"
};

struct copy {
    struct cmpr_store *to;
    struct cmpr_copy_counts *n;
    int kind;
    const char *marker;                 /* audit: the entry that says it was copied */
    int marked;
};

/* counts the result of one insert: copied, present, or the error */
static int
counted(struct copy *c, int r)
{
    c->n->source[c->kind]++;
    if (r == CMPR_OK) {
        c->n->copied[c->kind]++;
        return CMPR_OK;
    }
    if (r == CMPR_ERR_EXISTS) {
        c->n->present[c->kind]++;
        return CMPR_OK;
    }
    return r;
}

static int
copy_txn(const struct cmpr_txn_rec *t, void *arg)
{
    struct copy *c = arg;

    return counted(c, c->to->ops->txn_insert(c->to, t));
}

static int
copy_serial(const unsigned char *serial, size_t len, void *arg)
{
    struct copy *c = arg;

    return counted(c, c->to->ops->serial_reserve(c->to, serial, len));
}

static int
copy_cert(const struct cmpr_cert_rec *x, void *arg)
{
    struct copy *c = arg;

    return counted(c, c->to->ops->cert_put(c->to, x));
}

static int
copy_archive(const unsigned char *serial, size_t len, const char *subject, const char *client,
             const unsigned char *env, size_t envlen, void *arg)
{
    struct copy *c = arg;

    return counted(c, c->to->ops->archive_put(c->to, serial, len, subject, client, env, envlen));
}

static int
copy_defer(const struct cmpr_defer_rec *d, void *arg)
{
    struct copy *c = arg;
    struct cmpr_defer_rec x = *d;

    x.read_state = -1;                  /* insert */
    return counted(c, c->to->ops->defer_put(c->to, &x));
}

static int
find_marker(int64_t when, const char *tid_hex, const char *who, const char *event, const char *detail,
            void *arg)
{
    struct copy *c = arg;

    (void)when;
    (void)tid_hex;
    (void)who;
    if (strcmp(event, "store-copied") == 0 && strcmp(detail, c->marker) == 0)
        c->marked = 1;
    return CMPR_OK;
}

static int
copy_audit(int64_t when, const char *tid_hex, const char *who, const char *event, const char *detail, void *arg)
{
    struct copy *c = arg;
    unsigned char tid[CMPR_STORE_MAX_ID];
    size_t n = 0;

    if (tid_hex[0] != '\0' && cmpr_unhex(tid_hex, tid, sizeof(tid), &n) != 0)
        n = 0;
    return counted(c, c->to->ops->audit_at(c->to, when, n > 0 ? tid : NULL, n, who, event, detail));
}

static int
audit_present(int64_t when, const char *tid_hex, const char *who, const char *event, const char *detail,
              void *arg)
{
    (void)when;
    (void)tid_hex;
    (void)who;
    (void)event;
    (void)detail;
    return counted(arg, CMPR_ERR_EXISTS);
}

int
cmpr_store_copy(struct cmpr_store *from, const char *from_name, struct cmpr_store *to,
                struct cmpr_copy_counts *n)
{
    struct copy c = { to, n, 0, NULL, 0 };
    struct cmpr_fwd_rec *v = NULL;
    size_t nv = 0;
    char marker[700];
    int r;

    memset(n, 0, sizeof(*n));
    c.kind = CMPR_COPY_TXN;
    if ((r = from->ops->txn_list(from, -1, copy_txn, &c)) != CMPR_OK)
        return r;
    c.kind = CMPR_COPY_SERIAL;
    if ((r = from->ops->serial_list(from, copy_serial, &c)) != CMPR_OK)
        return r;
    c.kind = CMPR_COPY_CERT;
    if ((r = from->ops->cert_list(from, copy_cert, &c)) != CMPR_OK)
        return r;
    c.kind = CMPR_COPY_ARCHIVE;
    if ((r = from->ops->archive_all(from, copy_archive, &c)) != CMPR_OK)
        return r;
    c.kind = CMPR_COPY_FWD;
    if ((r = from->ops->fwd_list(from, 1, &v, &nv)) != CMPR_OK)
        return r;
    for (size_t i = 0; i < nv; i++) {
        v[i].ver = 0;                   /* insert */
        if (r == CMPR_OK)
            r = counted(&c, to->ops->fwd_put(to, &v[i]));
        cmpr_fwd_rec_clear(&v[i]);
    }
    free(v);
    if (r != CMPR_OK)
        return r;
    c.kind = CMPR_COPY_DEFER;
    /* older_than INT64_MIN: every reference, none removed from the source */
    if ((r = from->ops->defer_list(from, INT64_MIN, copy_defer, &c)) != CMPR_OK)
        return r;
    /* audit entries have no key of their own: copied once, marked */
    snprintf(marker, sizeof(marker), "audit of %s", from_name);
    c.marker = marker;
    if ((r = to->ops->audit_list(to, find_marker, &c)) != CMPR_OK)
        return r;
    c.kind = CMPR_COPY_AUDIT;
    if (c.marked)                       /* copied before: all of them are there */
        return from->ops->audit_list(from, audit_present, &c);
    if ((r = from->ops->audit_list(from, copy_audit, &c)) != CMPR_OK)
        return r;
    return to->ops->audit(to, NULL, 0, "cmprouter store copy", "store-copied", marker);
}
