/* The embedded store: SQLite in WAL mode, synchronous=FULL, one connection
 * behind a mutex (SQLite serialises writers anyway). Runs on worker threads
 * only, never on the event loop. */
#include "core/store.h"
#include "base/buf.h"
#include "base/err.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sqlite_store {
    struct cmpr_store base;             /* first: cast from struct cmpr_store */
    sqlite3 *db;
    pthread_mutex_t lock;
    unsigned long nonce_inserts;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS txn ("
    " tid BLOB PRIMARY KEY, sender TEXT NOT NULL, state INTEGER NOT NULL,"
    " req_type INTEGER NOT NULL, client TEXT NOT NULL, profile TEXT NOT NULL, note TEXT,"
    " last_nonce BLOB, req_nonce BLOB, serial BLOB, old_serial BLOB, request BLOB, response BLOB,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL, expires INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS txn_state ON txn(state);"
    "CREATE TABLE IF NOT EXISTS serial (serial BLOB PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS cert ("
    " serial BLOB PRIMARY KEY, issuer TEXT NOT NULL, subject TEXT NOT NULL,"
    " not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, status INTEGER NOT NULL,"
    " revoked_at INTEGER NOT NULL, reason INTEGER NOT NULL, confirmed INTEGER NOT NULL,"
    " tid BLOB, der BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS archive (serial BLOB PRIMARY KEY, subject TEXT NOT NULL,"
    " client TEXT NOT NULL, envdata BLOB NOT NULL, created INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS archive_subject ON archive(subject);"
    "CREATE TABLE IF NOT EXISTS nonce (nonce BLOB PRIMARY KEY, seen INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, tid BLOB,"
    " who TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS fwd ("
    " tid BLOB PRIMARY KEY, route TEXT NOT NULL, state INTEGER NOT NULL, ver INTEGER NOT NULL,"
    " delayed INTEGER NOT NULL, client_body INTEGER NOT NULL, client_nonce BLOB, up_nonce BLOB,"
    " client TEXT NOT NULL, auth INTEGER NOT NULL, mac_kind INTEGER NOT NULL, key TEXT NOT NULL,"
    " batch TEXT NOT NULL, req BLOB, ans BLOB, last BLOB, last_nonce BLOB, err TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
    " next_try INTEGER NOT NULL, push TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS deferred (ref INTEGER PRIMARY KEY, state INTEGER NOT NULL,"
    " req BLOB, answer BLOB, created INTEGER NOT NULL);"
    "PRAGMA user_version = 2;";

#define S(st) ((struct sqlite_store *)(st))

static int
sq_err(struct sqlite_store *s, int rc)
{
    if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT)
        return CMPR_ERR_EXISTS;
    (void)s;
    return CMPR_ERR_STORE;
}

static int
sq_open(const char *location, struct cmpr_store **st_r)
{
    struct sqlite_store *s = calloc(1, sizeof(*s));
    int r = CMPR_ERR_STORE;

    *st_r = NULL;
    if (s == NULL)
        return CMPR_ERR_ALLOC;
    s->base.ops = &cmpr_store_sqlite_ops;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return CMPR_ERR_INTERNAL;
    }
    if (sqlite3_open_v2(location, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                        | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        goto fail;
    /* other processes (cmprouter process/admin next to the daemon) may hold
     * the write lock for a moment */
    sqlite3_busy_timeout(s->db, 10000);
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "PRAGMA foreign_keys=ON;", NULL, NULL, NULL) != SQLITE_OK
            || sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    *st_r = &s->base;
    return CMPR_OK;
 fail:
    if (s->db != NULL)
        fprintf(stderr, "cmprouter: store %s: %s\n", location, sqlite3_errmsg(s->db));
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return r;
}

static void
sq_close(struct cmpr_store *st)
{
    struct sqlite_store *s = S(st);

    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* prepare + bind helpers; all statements are short-lived (cheap next to fsync) */
static sqlite3_stmt *
prep(struct sqlite_store *s, const char *sql)
{
    sqlite3_stmt *stmt = NULL;

    if (sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return NULL;
    return stmt;
}

static void
bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len)
{
    if (p == NULL || len == 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_blob(st, i, p, (int)len, SQLITE_TRANSIENT);
}

static void
col_fixed(sqlite3_stmt *st, int i, unsigned char *dst, size_t cap, size_t *len_r)
{
    const void *p = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);

    *len_r = 0;
    if (p != NULL && n > 0 && (size_t)n <= cap) {
        memcpy(dst, p, (size_t)n);
        *len_r = (size_t)n;
    }
}

static int
col_dup(sqlite3_stmt *st, int i, unsigned char **dst, size_t *len_r)
{
    const void *p = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);

    *dst = NULL;
    *len_r = 0;
    if (p == NULL || n <= 0)
        return CMPR_OK;
    if ((*dst = malloc((size_t)n)) == NULL)
        return CMPR_ERR_ALLOC;
    memcpy(*dst, p, (size_t)n);
    *len_r = (size_t)n;
    return CMPR_OK;
}

static void
col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);

    snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

static int
run(struct sqlite_store *s, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    int r = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? CMPR_OK : sq_err(s, rc);

    sqlite3_finalize(stmt);
    return r;
}

static int
sq_txn_insert(struct cmpr_store *st, const struct cmpr_txn_rec *t)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    q = prep(s, "INSERT INTO txn(tid, sender, state, req_type, client, profile, last_nonce,"
             " serial, request, response, created, updated, expires, req_nonce, note, old_serial)"
             " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (q != NULL) {
        bind_blob(q, 1, t->tid, t->tid_len);
        sqlite3_bind_text(q, 2, t->sender, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(q, 3, t->state);
        sqlite3_bind_int(q, 4, t->req_type);
        sqlite3_bind_text(q, 5, t->client, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 6, t->profile, -1, SQLITE_TRANSIENT);
        bind_blob(q, 7, t->last_nonce, t->last_nonce_len);
        bind_blob(q, 8, t->serial, t->serial_len);
        bind_blob(q, 9, t->request, t->request_len);
        bind_blob(q, 10, t->response, t->response_len);
        sqlite3_bind_int64(q, 11, t->created);
        sqlite3_bind_int64(q, 12, t->updated);
        sqlite3_bind_int64(q, 13, t->expires);
        bind_blob(q, 14, t->req_nonce, t->req_nonce_len);
        sqlite3_bind_text(q, 15, t->note, -1, SQLITE_TRANSIENT);
        bind_blob(q, 16, t->old_serial, t->old_serial_len);
        r = run(s, q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* no row changed: was it gone, or moved on by someone else? */
static int
no_change(struct sqlite_store *s, const struct cmpr_txn_rec *t)
{
    sqlite3_stmt *q = prep(s, "SELECT 1 FROM txn WHERE tid=?");
    int r = CMPR_ERR_STORE;

    if (q != NULL) {
        bind_blob(q, 1, t->tid, t->tid_len);
        r = sqlite3_step(q) == SQLITE_ROW ? CMPR_ERR_CONFLICT : CMPR_ERR_NOT_FOUND;
        sqlite3_finalize(q);
    }
    return r;
}

static int
sq_txn_update(struct cmpr_store *st, const struct cmpr_txn_rec *t)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    q = prep(s, "UPDATE txn SET state=?, client=?, profile=?, last_nonce=?, serial=?,"
             " response=?, updated=?, expires=?, req_nonce=?, note=? WHERE tid=? AND state=?");
    if (q != NULL) {
        sqlite3_bind_int(q, 1, t->state);
        sqlite3_bind_text(q, 2, t->client, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, t->profile, -1, SQLITE_TRANSIENT);
        bind_blob(q, 4, t->last_nonce, t->last_nonce_len);
        bind_blob(q, 5, t->serial, t->serial_len);
        bind_blob(q, 6, t->response, t->response_len);
        sqlite3_bind_int64(q, 7, t->updated);
        sqlite3_bind_int64(q, 8, t->expires);
        bind_blob(q, 9, t->req_nonce, t->req_nonce_len);
        sqlite3_bind_text(q, 10, t->note, -1, SQLITE_TRANSIENT);
        bind_blob(q, 11, t->tid, t->tid_len);
        sqlite3_bind_int(q, 12, t->read_state);
        r = run(s, q);
        if (r == CMPR_OK && sqlite3_changes(s->db) == 0)
            r = no_change(s, t);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_txn_set_state(struct cmpr_store *st, const struct cmpr_txn_rec *t)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    q = prep(s, "UPDATE txn SET state=?, serial=?, note=?, updated=? WHERE tid=? AND state=?");
    if (q != NULL) {
        sqlite3_bind_int(q, 1, t->state);
        bind_blob(q, 2, t->serial, t->serial_len);
        sqlite3_bind_text(q, 3, t->note, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 4, t->updated);
        bind_blob(q, 5, t->tid, t->tid_len);
        sqlite3_bind_int(q, 6, t->read_state);
        r = run(s, q);
        if (r == CMPR_OK && sqlite3_changes(s->db) == 0)
            r = no_change(s, t);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

#define TXN_COLS "tid, sender, state, req_type, client, profile, last_nonce, serial," \
                 " request, response, created, updated, expires, req_nonce, note, old_serial"

static int
txn_row(sqlite3_stmt *q, struct cmpr_txn_rec *t)
{
    int r;

    memset(t, 0, sizeof(*t));
    col_fixed(q, 0, t->tid, sizeof(t->tid), &t->tid_len);
    col_text(q, 1, t->sender, sizeof(t->sender));
    t->state = sqlite3_column_int(q, 2);
    t->read_state = t->state;
    t->req_type = sqlite3_column_int(q, 3);
    col_text(q, 4, t->client, sizeof(t->client));
    col_text(q, 5, t->profile, sizeof(t->profile));
    col_fixed(q, 6, t->last_nonce, sizeof(t->last_nonce), &t->last_nonce_len);
    col_fixed(q, 7, t->serial, sizeof(t->serial), &t->serial_len);
    if ((r = col_dup(q, 8, &t->request, &t->request_len)) != CMPR_OK
            || (r = col_dup(q, 9, &t->response, &t->response_len)) != CMPR_OK) {
        cmpr_txn_rec_clear(t);
        return r;
    }
    t->created = sqlite3_column_int64(q, 10);
    t->updated = sqlite3_column_int64(q, 11);
    t->expires = sqlite3_column_int64(q, 12);
    col_fixed(q, 13, t->req_nonce, sizeof(t->req_nonce), &t->req_nonce_len);
    col_text(q, 14, t->note, sizeof(t->note));
    col_fixed(q, 15, t->old_serial, sizeof(t->old_serial), &t->old_serial_len);
    return CMPR_OK;
}

/* SELECT ... WHERE key=? for one row, decoded by row() into out */
static int
get_one(struct sqlite_store *s, const char *sql, const unsigned char *key, size_t len,
        int (*row)(sqlite3_stmt *q, void *out), void *out)
{
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE, rc;

    pthread_mutex_lock(&s->lock);
    if ((q = prep(s, sql)) != NULL) {
        bind_blob(q, 1, key, len);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            r = row(q, out);
        else
            r = rc == SQLITE_DONE ? CMPR_ERR_NOT_FOUND : CMPR_ERR_STORE;
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
txn_row_v(sqlite3_stmt *q, void *out)
{
    return txn_row(q, out);
}

static int
sq_txn_get(struct cmpr_store *st, const unsigned char *tid, size_t tid_len,
           struct cmpr_txn_rec *rec_r)
{
    return get_one(S(st), "SELECT " TXN_COLS " FROM txn WHERE tid=?", tid, tid_len,
                   txn_row_v, rec_r);
}

static int
sq_txn_list(struct cmpr_store *st, int state,
            int (*cb)(const struct cmpr_txn_rec *rec, void *arg), void *arg)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    struct cmpr_txn_rec t;
    int r = CMPR_ERR_STORE, rc;

    pthread_mutex_lock(&s->lock);
    q = prep(s, state < 0 ? "SELECT " TXN_COLS " FROM txn ORDER BY created, tid"
                          : "SELECT " TXN_COLS " FROM txn WHERE state=? ORDER BY created, tid");
    if (q != NULL) {
        if (state >= 0)
            sqlite3_bind_int(q, 1, state);
        r = CMPR_OK;
        while (r == CMPR_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            if ((r = txn_row(q, &t)) != CMPR_OK)
                break;
            r = cb(&t, arg);
            cmpr_txn_rec_clear(&t);
        }
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_serial_reserve(struct cmpr_store *st, const unsigned char *serial, size_t len)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    if ((q = prep(s, "INSERT INTO serial(serial) VALUES(?)")) != NULL) {
        bind_blob(q, 1, serial, len);
        r = run(s, q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_cert_put(struct cmpr_store *st, const struct cmpr_cert_rec *c)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    q = prep(s, "INSERT INTO cert(serial, issuer, subject, not_before, not_after, status,"
             " revoked_at, reason, confirmed, tid, der) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
    if (q != NULL) {
        bind_blob(q, 1, c->serial, c->serial_len);
        sqlite3_bind_text(q, 2, c->issuer, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, c->subject, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 4, c->not_before);
        sqlite3_bind_int64(q, 5, c->not_after);
        sqlite3_bind_int(q, 6, c->status);
        sqlite3_bind_int64(q, 7, c->revoked_at);
        sqlite3_bind_int(q, 8, c->reason);
        sqlite3_bind_int(q, 9, c->confirmed);
        bind_blob(q, 10, c->tid, c->tid_len);
        bind_blob(q, 11, c->der, c->der_len);
        r = run(s, q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

#define CERT_COLS "serial, issuer, subject, not_before, not_after, status, revoked_at," \
                  " reason, confirmed, tid, der"

static int
cert_row(sqlite3_stmt *q, struct cmpr_cert_rec *c)
{
    memset(c, 0, sizeof(*c));
    col_fixed(q, 0, c->serial, sizeof(c->serial), &c->serial_len);
    col_text(q, 1, c->issuer, sizeof(c->issuer));
    col_text(q, 2, c->subject, sizeof(c->subject));
    c->not_before = sqlite3_column_int64(q, 3);
    c->not_after = sqlite3_column_int64(q, 4);
    c->status = sqlite3_column_int(q, 5);
    c->revoked_at = sqlite3_column_int64(q, 6);
    c->reason = sqlite3_column_int(q, 7);
    c->confirmed = sqlite3_column_int(q, 8);
    col_fixed(q, 9, c->tid, sizeof(c->tid), &c->tid_len);
    return col_dup(q, 10, &c->der, &c->der_len);
}

static int
cert_row_v(sqlite3_stmt *q, void *out)
{
    return cert_row(q, out);
}

static int
sq_cert_get(struct cmpr_store *st, const unsigned char *serial, size_t len,
            struct cmpr_cert_rec *rec_r)
{
    return get_one(S(st), "SELECT " CERT_COLS " FROM cert WHERE serial=?", serial, len,
                   cert_row_v, rec_r);
}

static int
sq_cert_set_status(struct cmpr_store *st, const unsigned char *serial, size_t len,
                   int status, int64_t when, int reason, int confirmed)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    q = prep(s, "UPDATE cert SET status=?, revoked_at=?, reason=?, confirmed=? WHERE serial=?");
    if (q != NULL) {
        sqlite3_bind_int(q, 1, status);
        sqlite3_bind_int64(q, 2, when);
        sqlite3_bind_int(q, 3, reason);
        sqlite3_bind_int(q, 4, confirmed);
        bind_blob(q, 5, serial, len);
        r = run(s, q);
        if (r == CMPR_OK && sqlite3_changes(s->db) == 0)
            r = CMPR_ERR_NOT_FOUND;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_cert_list(struct cmpr_store *st, int (*cb)(const struct cmpr_cert_rec *rec, void *arg),
             void *arg)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    struct cmpr_cert_rec c;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    if ((q = prep(s, "SELECT " CERT_COLS " FROM cert ORDER BY not_before, serial")) != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && sqlite3_step(q) == SQLITE_ROW) {
            if ((r = cert_row(q, &c)) != CMPR_OK)
                break;
            r = cb(&c, arg);
            cmpr_cert_rec_clear(&c);
        }
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_nonce_check(struct cmpr_store *st, const unsigned char *nonce, size_t len,
               int64_t now, int64_t window)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    /* insert, or refresh an entry that has aged out of the window; no row
     * changed means the nonce was seen within the window: a replay */
    q = prep(s, "INSERT INTO nonce(nonce, seen) VALUES(?, ?) ON CONFLICT(nonce)"
             " DO UPDATE SET seen = excluded.seen WHERE nonce.seen < ?");
    if (q != NULL) {
        bind_blob(q, 1, nonce, len);
        sqlite3_bind_int64(q, 2, now);
        sqlite3_bind_int64(q, 3, now - window);
        r = run(s, q);
        if (r == CMPR_OK && sqlite3_changes(s->db) == 0)
            r = CMPR_ERR_EXISTS;
    }
    /* keep the table to the window's worth of nonces */
    if (r == CMPR_OK && ++s->nonce_inserts % 1024 == 0
            && (q = prep(s, "DELETE FROM nonce WHERE seen < ?")) != NULL) {
        sqlite3_bind_int64(q, 1, now - window);
        (void)run(s, q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_archive_put(struct cmpr_store *st, const unsigned char *serial, size_t len,
               const char *subject, const char *client, const unsigned char *env, size_t envlen)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    q = prep(s, "INSERT INTO archive(serial, subject, client, envdata, created) VALUES(?,?,?,?,?)");
    if (q != NULL) {
        bind_blob(q, 1, serial, len);
        sqlite3_bind_text(q, 2, subject, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, client != NULL ? client : "", -1, SQLITE_TRANSIENT);
        bind_blob(q, 4, env, envlen);
        sqlite3_bind_int64(q, 5, (int64_t)time(NULL));
        r = run(s, q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_archive_list(struct cmpr_store *st, const char *subject,
                int (*cb)(const unsigned char *serial, size_t len, const char *client,
                          const unsigned char *envdata, size_t envdata_len, void *arg),
                void *arg)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    q = prep(s, "SELECT serial, client, envdata FROM archive WHERE subject=? ORDER BY created");
    if (q != NULL) {
        sqlite3_bind_text(q, 1, subject, -1, SQLITE_TRANSIENT);
        r = CMPR_OK;
        while (r == CMPR_OK && sqlite3_step(q) == SQLITE_ROW)
            r = cb(sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0),
                   (const char *)sqlite3_column_text(q, 1), sqlite3_column_blob(q, 2),
                   (size_t)sqlite3_column_bytes(q, 2), arg);
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_audit(struct cmpr_store *st, const unsigned char *tid, size_t tid_len,
         const char *who, const char *event, const char *detail)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    q = prep(s, "INSERT INTO audit(at, tid, who, event, detail) VALUES(?,?,?,?,?)");
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, (int64_t)time(NULL));
        bind_blob(q, 2, tid, tid_len);
        sqlite3_bind_text(q, 3, who != NULL ? who : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 4, event != NULL ? event : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 5, detail != NULL ? detail : "", -1, SQLITE_TRANSIENT);
        r = run(s, q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_audit_list(struct cmpr_store *st,
              int (*cb)(int64_t when, const char *tid_hex, const char *who,
                        const char *event, const char *detail, void *arg),
              void *arg)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    q = prep(s, "SELECT at, lower(hex(tid)), who, event, detail FROM audit ORDER BY id");
    if (q != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && sqlite3_step(q) == SQLITE_ROW)
            r = cb(sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1),
                   (const char *)sqlite3_column_text(q, 2),
                   (const char *)sqlite3_column_text(q, 3),
                   (const char *)sqlite3_column_text(q, 4), arg);
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ---------------- forwarded requests ---------------- */

#define FWD_COLS "tid, route, state, ver, delayed, client_body, client_nonce, up_nonce, client," \
                 " auth, mac_kind, key, batch, req, ans, last, last_nonce, err, attempts, created," \
                 " updated, next_try, push"

static void
fwd_bind(sqlite3_stmt *q, const struct cmpr_fwd_rec *f, int64_t newver)
{
    bind_blob(q, 1, f->tid, f->tid_len);
    sqlite3_bind_text(q, 2, f->route, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 3, f->state);
    sqlite3_bind_int64(q, 4, newver);
    sqlite3_bind_int(q, 5, f->delayed);
    sqlite3_bind_int(q, 6, f->client_body);
    bind_blob(q, 7, f->client_nonce, f->client_nonce_len);
    bind_blob(q, 8, f->up_nonce, f->up_nonce_len);
    sqlite3_bind_text(q, 9, f->client, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 10, f->auth);
    sqlite3_bind_int(q, 11, f->mac_kind);
    sqlite3_bind_text(q, 12, f->key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 13, f->batch, -1, SQLITE_TRANSIENT);
    bind_blob(q, 14, f->req, f->req_len);
    bind_blob(q, 15, f->ans, f->ans_len);
    bind_blob(q, 16, f->last, f->last_len);
    bind_blob(q, 17, f->last_nonce, f->last_nonce_len);
    sqlite3_bind_text(q, 18, f->err, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 19, f->attempts);
    sqlite3_bind_int64(q, 20, f->created);
    sqlite3_bind_int64(q, 21, f->updated);
    sqlite3_bind_int64(q, 22, f->next_try);
    sqlite3_bind_text(q, 23, f->push, -1, SQLITE_TRANSIENT);
}

static int
fwd_row(sqlite3_stmt *q, struct cmpr_fwd_rec *f)
{
    int r;

    memset(f, 0, sizeof(*f));
    col_fixed(q, 0, f->tid, sizeof(f->tid), &f->tid_len);
    col_text(q, 1, f->route, sizeof(f->route));
    f->state = sqlite3_column_int(q, 2);
    f->read_state = f->state;
    f->ver = sqlite3_column_int64(q, 3);
    f->delayed = sqlite3_column_int(q, 4);
    f->client_body = sqlite3_column_int(q, 5);
    col_fixed(q, 6, f->client_nonce, sizeof(f->client_nonce), &f->client_nonce_len);
    col_fixed(q, 7, f->up_nonce, sizeof(f->up_nonce), &f->up_nonce_len);
    col_text(q, 8, f->client, sizeof(f->client));
    f->auth = sqlite3_column_int(q, 9);
    f->mac_kind = sqlite3_column_int(q, 10);
    col_text(q, 11, f->key, sizeof(f->key));
    col_text(q, 12, f->batch, sizeof(f->batch));
    if ((r = col_dup(q, 13, &f->req, &f->req_len)) != CMPR_OK
            || (r = col_dup(q, 14, &f->ans, &f->ans_len)) != CMPR_OK
            || (r = col_dup(q, 15, &f->last, &f->last_len)) != CMPR_OK) {
        cmpr_fwd_rec_clear(f);
        return r;
    }
    col_fixed(q, 16, f->last_nonce, sizeof(f->last_nonce), &f->last_nonce_len);
    col_text(q, 17, f->err, sizeof(f->err));
    f->attempts = sqlite3_column_int(q, 18);
    f->created = sqlite3_column_int64(q, 19);
    f->updated = sqlite3_column_int64(q, 20);
    f->next_try = sqlite3_column_int64(q, 21);
    col_text(q, 22, f->push, sizeof(f->push));
    return CMPR_OK;
}

static int
fwd_row_v(sqlite3_stmt *q, void *out)
{
    return fwd_row(q, out);
}

static int
sq_fwd_put(struct cmpr_store *st, struct cmpr_fwd_rec *f)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    if (f->ver == 0)
        q = prep(s, "INSERT INTO fwd(" FWD_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    else
        q = prep(s, "UPDATE fwd SET tid=?1, route=?2, state=?3, ver=?4, delayed=?5, client_body=?6,"
                 " client_nonce=?7, up_nonce=?8, client=?9, auth=?10, mac_kind=?11, key=?12, batch=?13,"
                 " req=?14, ans=?15, last=?16, last_nonce=?17, err=?18, attempts=?19, created=?20,"
                 " updated=?21, next_try=?22, push=?23 WHERE tid=?1 AND ver=?24");
    if (q != NULL) {
        fwd_bind(q, f, f->ver + 1);
        if (f->ver != 0)
            sqlite3_bind_int64(q, 24, f->ver);
        r = run(s, q);
        if (r == CMPR_OK && f->ver != 0 && sqlite3_changes(s->db) == 0)
            r = CMPR_ERR_CONFLICT;
        if (r == CMPR_OK) {
            f->ver++;
            f->read_state = f->state;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_fwd_get(struct cmpr_store *st, const unsigned char *tid, size_t tid_len, struct cmpr_fwd_rec *rec_r)
{
    return get_one(S(st), "SELECT " FWD_COLS " FROM fwd WHERE tid=?", tid, tid_len, fwd_row_v, rec_r);
}

static int
sq_fwd_list(struct cmpr_store *st, int all, struct cmpr_fwd_rec **recs_r, size_t *n_r)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    struct cmpr_fwd_rec *v = NULL;
    size_t n = 0, cap = 0;
    int r = CMPR_ERR_STORE, rc;

    *recs_r = NULL;
    *n_r = 0;
    pthread_mutex_lock(&s->lock);
    q = prep(s, all ? "SELECT " FWD_COLS " FROM fwd ORDER BY created, tid"
                    : "SELECT " FWD_COLS " FROM fwd WHERE state<>4 ORDER BY created, tid");
    if (q != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            if ((r = cmpr_array_grow(&v, &cap, n + 1, sizeof(*v), SIZE_MAX / sizeof(*v))) != CMPR_OK)
                break;
            if ((r = fwd_row(q, &v[n])) == CMPR_OK)
                n++;
        }
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&s->lock);
    if (r != CMPR_OK) {
        for (size_t i = 0; i < n; i++)
            cmpr_fwd_rec_clear(&v[i]);
        free(v);
        return r;
    }
    *recs_r = v;
    *n_r = n;
    return CMPR_OK;
}

static int
sq_fwd_delete(struct cmpr_store *st, const unsigned char *tid, size_t tid_len)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    if ((q = prep(s, "DELETE FROM fwd WHERE tid=?")) != NULL) {
        bind_blob(q, 1, tid, tid_len);
        r = run(s, q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_defer_put(struct cmpr_store *st, struct cmpr_defer_rec *d)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    pthread_mutex_lock(&s->lock);
    if (d->read_state < 0)
        q = prep(s, "INSERT INTO deferred(ref, state, req, answer, created) VALUES(?1,?2,?3,?4,?5)");
    else
        q = prep(s, "UPDATE deferred SET state=?2, answer=?4 WHERE ref=?1 AND state=?6");
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, d->ref);
        sqlite3_bind_int(q, 2, d->state);
        if (d->read_state < 0) {
            bind_blob(q, 3, d->req, d->req_len);
            sqlite3_bind_int64(q, 5, d->created);
        } else {
            sqlite3_bind_int(q, 6, d->read_state);
        }
        bind_blob(q, 4, d->answer, d->answer_len);
        r = run(s, q);
        if (r == CMPR_OK && d->read_state >= 0 && sqlite3_changes(s->db) == 0)
            r = CMPR_ERR_CONFLICT;
        if (r == CMPR_OK)
            d->read_state = d->state;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
defer_row(sqlite3_stmt *q, struct cmpr_defer_rec *d)
{
    int r;

    memset(d, 0, sizeof(*d));
    d->ref = (uint32_t)sqlite3_column_int64(q, 0);
    d->state = d->read_state = sqlite3_column_int(q, 1);
    if ((r = col_dup(q, 2, &d->req, &d->req_len)) != CMPR_OK
            || (r = col_dup(q, 3, &d->answer, &d->answer_len)) != CMPR_OK) {
        cmpr_defer_rec_clear(d);
        return r;
    }
    d->created = sqlite3_column_int64(q, 4);
    return CMPR_OK;
}

static int
sq_defer_get(struct cmpr_store *st, uint32_t ref, struct cmpr_defer_rec *d_r)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE, rc;

    pthread_mutex_lock(&s->lock);
    if ((q = prep(s, "SELECT ref, state, req, answer, created FROM deferred WHERE ref=?")) != NULL) {
        sqlite3_bind_int64(q, 1, ref);
        rc = sqlite3_step(q);
        r = rc == SQLITE_ROW ? defer_row(q, d_r) : rc == SQLITE_DONE ? CMPR_ERR_NOT_FOUND : CMPR_ERR_STORE;
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
sq_defer_list(struct cmpr_store *st, int64_t older_than,
              int (*cb)(const struct cmpr_defer_rec *rec, void *arg), void *arg)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE, rc;

    pthread_mutex_lock(&s->lock);
    if ((q = prep(s, "SELECT ref, state, req, answer, created FROM deferred ORDER BY created")) != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            struct cmpr_defer_rec d;

            if ((r = defer_row(q, &d)) == CMPR_OK && d.created >= older_than)
                r = cb(&d, arg);
            cmpr_defer_rec_clear(&d);
        }
        sqlite3_finalize(q);
    }
    if (r == CMPR_OK && (q = prep(s, "DELETE FROM deferred WHERE created < ?")) != NULL) {
        sqlite3_bind_int64(q, 1, older_than);
        r = run(s, q);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

const struct cmpr_store_ops cmpr_store_sqlite_ops = {
    .scheme = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .txn_insert = sq_txn_insert,
    .txn_update = sq_txn_update,
    .txn_set_state = sq_txn_set_state,
    .txn_get = sq_txn_get,
    .txn_list = sq_txn_list,
    .serial_reserve = sq_serial_reserve,
    .cert_put = sq_cert_put,
    .cert_get = sq_cert_get,
    .cert_set_status = sq_cert_set_status,
    .cert_list = sq_cert_list,
    .nonce_check = sq_nonce_check,
    .archive_put = sq_archive_put,
    .archive_list = sq_archive_list,
    .fwd_put = sq_fwd_put,
    .fwd_get = sq_fwd_get,
    .fwd_list = sq_fwd_list,
    .fwd_delete = sq_fwd_delete,
    .defer_put = sq_defer_put,
    .defer_get = sq_defer_get,
    .defer_list = sq_defer_list,
    .audit = sq_audit,
    .audit_list = sq_audit_list,
};
