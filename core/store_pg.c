/* The cluster store: PostgreSQL through libpq, for several cmprouterd nodes
 * sharing one database (issue 18; docs/cluster.md). The same operations as
 * the SQLite store (store.h), with the database enforcing what must hold
 * across nodes: primary keys for transactionIDs, serials (reserved for
 * ever), certificates, nonces and forwarding records; conditional updates
 * (WHERE state = the state read, WHERE ver = the version read) for the
 * optimistic locking of transactions, forwarding records and references,
 * which READ COMMITTED re-checks against the row another node committed.
 *
 * Connections come from a pool, one per calling thread at a time, each
 * with its statements prepared once. A thread that batches (store.h) keeps
 * one connection for the batch with a transaction open from its first
 * statement; flush commits it. Commits wait for PostgreSQL's WAL flush
 * (synchronous_commit = on, set per session), and PostgreSQL groups the
 * flushes of concurrent commits itself. No statement is allowed to fail
 * inside a batch as part of normal work: inserts use ON CONFLICT DO NOTHING
 * and report CMPR_ERR_EXISTS from the row count, so an open transaction is
 * only ever aborted by a real fault, which loses the batch (flush says so).
 *
 * A connection that breaks is dropped; new connections are tried at once,
 * then, after a failure, no more often than a backoff allows (1 s doubling
 * to 16 s), so a database that is down costs a request one fast
 * systemUnavail rather than a connect timeout each. Runs on worker threads
 * only, never on the event loop. The connection string's password never
 * reaches a log: stores are named by user@host:port/dbname. */
#ifdef HAVE_CONFIG_H
#include <config.h>                     /* HAVE_LIBPQ (the build's, not core/config.h) */
#endif
#include "core/store.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>

/* ---------------- statements ---------------- */

#define TXN_COLS "tid, sender, state, req_type, client, profile, last_nonce, serial," \
                 " request, response, created, updated, expires, req_nonce, note, old_serial"
#define CERT_COLS "serial, issuer, subject, not_before, not_after, status, revoked_at," \
                  " reason, confirmed, tid, der"
#define FWD_COLS "tid, route, state, ver, delayed, client_body, client_nonce, up_nonce, client," \
                 " auth, mac_kind, key, batch, req, ans, last, last_nonce, err, attempts, created," \
                 " updated, next_try, push, owner, lease_until"

enum {
    Q_TXN_INS, Q_TXN_UPD, Q_TXN_SET, Q_TXN_EXISTS, Q_TXN_GET, Q_TXN_ALL, Q_TXN_BY_STATE,
    Q_SERIAL, Q_CERT_INS, Q_CERT_GET, Q_CERT_SET, Q_CERT_ALL, Q_CERT_REVOKED, Q_NONCE, Q_NONCE_GC,
    Q_ARCH_INS, Q_ARCH_LIST, Q_AUDIT, Q_AUDIT_ALL, Q_SERIAL_ALL, Q_ARCH_ALL,
    Q_FWD_INS, Q_FWD_UPD, Q_FWD_GET, Q_FWD_ALL, Q_FWD_OPEN, Q_FWD_DEL,
    Q_DEF_INS, Q_DEF_UPD, Q_DEF_GET, Q_DEF_ALL, Q_DEF_GC,
    Q_N
};

/* Every integer column is BIGINT, so every parameter and result travels
 * in binary as 8 bytes, big-endian; bytea and text as their bytes. */
static const char *const sql[Q_N] = {
    [Q_TXN_INS] = "INSERT INTO txn(" TXN_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)"
                  " ON CONFLICT DO NOTHING",
    [Q_TXN_UPD] = "UPDATE txn SET state=$1, client=$2, profile=$3, last_nonce=$4, serial=$5, response=$6,"
                  " updated=$7, expires=$8, req_nonce=$9, note=$10 WHERE tid=$11 AND state=$12",
    [Q_TXN_SET] = "UPDATE txn SET state=$1, serial=$2, note=$3, updated=$4 WHERE tid=$5 AND state=$6",
    [Q_TXN_EXISTS] = "SELECT 1 FROM txn WHERE tid=$1",
    [Q_TXN_GET] = "SELECT " TXN_COLS " FROM txn WHERE tid=$1",
    [Q_TXN_ALL] = "SELECT " TXN_COLS " FROM txn ORDER BY created, tid",
    [Q_TXN_BY_STATE] = "SELECT " TXN_COLS " FROM txn WHERE state=$1 ORDER BY created, tid",
    [Q_SERIAL] = "INSERT INTO serial(serial) VALUES($1) ON CONFLICT DO NOTHING",
    [Q_CERT_INS] = "INSERT INTO cert(" CERT_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
                   " ON CONFLICT DO NOTHING",
    [Q_CERT_GET] = "SELECT " CERT_COLS " FROM cert WHERE serial=$1",
    [Q_CERT_SET] = "UPDATE cert SET status=$1, revoked_at=$2, reason=$3, confirmed=$4 WHERE serial=$5",
    [Q_CERT_ALL] = "SELECT " CERT_COLS " FROM cert ORDER BY not_before, serial",
    [Q_CERT_REVOKED] = "SELECT " CERT_COLS " FROM cert WHERE status <> 0 ORDER BY status, serial",
    /* insert, or refresh an entry that has aged out of the window; no row
     * means the nonce was seen within the window: a replay */
    [Q_NONCE] = "INSERT INTO nonce(nonce, seen) VALUES($1, $2) ON CONFLICT (nonce)"
                " DO UPDATE SET seen = excluded.seen WHERE nonce.seen < $3",
    [Q_NONCE_GC] = "DELETE FROM nonce WHERE seen < $1",
    [Q_ARCH_INS] = "INSERT INTO archive(serial, subject, client, envdata, created) VALUES($1,$2,$3,$4,$5)"
                   " ON CONFLICT DO NOTHING",
    [Q_ARCH_LIST] = "SELECT serial, client, envdata FROM archive WHERE subject=$1 ORDER BY created, serial",
    [Q_AUDIT] = "INSERT INTO audit(at, tid, who, event, detail) VALUES($1,$2,$3,$4,$5)",
    [Q_AUDIT_ALL] = "SELECT at, coalesce(encode(tid, 'hex'), ''), who, event, detail FROM audit ORDER BY id",
    [Q_SERIAL_ALL] = "SELECT serial FROM serial ORDER BY serial",
    [Q_ARCH_ALL] = "SELECT serial, subject, client, envdata FROM archive ORDER BY created, serial",
    [Q_FWD_INS] = "INSERT INTO fwd(" FWD_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,"
                  "$17,$18,$19,$20,$21,$22,$23,$24,$25) ON CONFLICT DO NOTHING",
    [Q_FWD_UPD] = "UPDATE fwd SET route=$2, state=$3, ver=$4, delayed=$5, client_body=$6, client_nonce=$7,"
                  " up_nonce=$8, client=$9, auth=$10, mac_kind=$11, key=$12, batch=$13, req=$14, ans=$15,"
                  " last=$16, last_nonce=$17, err=$18, attempts=$19, created=$20, updated=$21, next_try=$22,"
                  " push=$23, owner=$24, lease_until=$25 WHERE tid=$1 AND ver=$26",
    [Q_FWD_GET] = "SELECT " FWD_COLS " FROM fwd WHERE tid=$1",
    [Q_FWD_ALL] = "SELECT " FWD_COLS " FROM fwd ORDER BY created, tid",
    [Q_FWD_OPEN] = "SELECT " FWD_COLS " FROM fwd WHERE state<>4 ORDER BY created, tid",
    [Q_FWD_DEL] = "DELETE FROM fwd WHERE tid=$1",
    [Q_DEF_INS] = "INSERT INTO deferred(ref, state, req, answer, created) VALUES($1,$2,$3,$4,$5)"
                  " ON CONFLICT DO NOTHING",
    [Q_DEF_UPD] = "UPDATE deferred SET state=$2, answer=$3 WHERE ref=$1 AND state=$4",
    [Q_DEF_GET] = "SELECT ref, state, req, answer, created FROM deferred WHERE ref=$1",
    [Q_DEF_ALL] = "SELECT ref, state, req, answer, created FROM deferred ORDER BY created, ref",
    [Q_DEF_GC] = "DELETE FROM deferred WHERE created < $1",
};

/* Numbered migrations, applied in order at open under an advisory lock
 * (several nodes may start at once); the version reached is in
 * cmprouter_schema. Never edit one that has shipped: add the next. */
static const char *const migrations[] = {
    /* 1: the tables of the SQLite store's schema version 2 */
    "CREATE TABLE txn ("
    " tid BYTEA PRIMARY KEY, sender TEXT NOT NULL, state BIGINT NOT NULL,"
    " req_type BIGINT NOT NULL, client TEXT NOT NULL, profile TEXT NOT NULL, note TEXT,"
    " last_nonce BYTEA, req_nonce BYTEA, serial BYTEA, old_serial BYTEA, request BYTEA, response BYTEA,"
    " created BIGINT NOT NULL, updated BIGINT NOT NULL, expires BIGINT NOT NULL);"
    "CREATE INDEX txn_state ON txn(state);"
    "CREATE TABLE serial (serial BYTEA PRIMARY KEY);"
    "CREATE TABLE cert ("
    " serial BYTEA PRIMARY KEY, issuer TEXT NOT NULL, subject TEXT NOT NULL,"
    " not_before BIGINT NOT NULL, not_after BIGINT NOT NULL, status BIGINT NOT NULL,"
    " revoked_at BIGINT NOT NULL, reason BIGINT NOT NULL, confirmed BIGINT NOT NULL,"
    " tid BYTEA, der BYTEA NOT NULL);"
    "CREATE TABLE archive (serial BYTEA PRIMARY KEY, subject TEXT NOT NULL,"
    " client TEXT NOT NULL, envdata BYTEA NOT NULL, created BIGINT NOT NULL);"
    "CREATE INDEX archive_subject ON archive(subject);"
    "CREATE TABLE nonce (nonce BYTEA PRIMARY KEY, seen BIGINT NOT NULL);"
    "CREATE INDEX nonce_seen ON nonce(seen);"
    "CREATE TABLE audit ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at BIGINT NOT NULL, tid BYTEA,"
    " who TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL);"
    "CREATE TABLE fwd ("
    " tid BYTEA PRIMARY KEY, route TEXT NOT NULL, state BIGINT NOT NULL, ver BIGINT NOT NULL,"
    " delayed BIGINT NOT NULL, client_body BIGINT NOT NULL, client_nonce BYTEA, up_nonce BYTEA,"
    " client TEXT NOT NULL, auth BIGINT NOT NULL, mac_kind BIGINT NOT NULL, key TEXT NOT NULL,"
    " batch TEXT NOT NULL, req BYTEA, ans BYTEA, last BYTEA, last_nonce BYTEA, err TEXT NOT NULL,"
    " attempts BIGINT NOT NULL, created BIGINT NOT NULL, updated BIGINT NOT NULL,"
    " next_try BIGINT NOT NULL, push TEXT NOT NULL);"
    "CREATE TABLE deferred (ref BIGINT PRIMARY KEY, state BIGINT NOT NULL,"
    " req BYTEA, answer BYTEA, created BIGINT NOT NULL);",
    /* 2: the lease of a forwarding record: the node driving it, until when
     * (parenthesised: one element made of two literals) */
    ("ALTER TABLE fwd ADD COLUMN owner TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE fwd ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;"),
    /* 3: the revoked and held certificates by an index (a CRL's entries) */
    "CREATE INDEX cert_revoked ON cert(status) WHERE status <> 0;",
};
#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

/* ---------------- connections ---------------- */

struct pconn {
    PGconn *pg;
    struct pconn *next;                 /* the pool's free list */
    unsigned char prepared[Q_N];
    int in_txn;                         /* a batch's transaction is open */
};

struct pg_store {
    struct cmpr_store base;             /* first: cast from struct cmpr_store */
    char *conninfo;                     /* as given: may hold a password, never logged */
    char name[300];                     /* user@host:port/dbname, for messages */
    pthread_mutex_t pl;
    struct pconn *free;
    /* reconnection backoff after a failed connect */
    uint64_t retry_at_ms;
    unsigned backoff_ms;
    unsigned long nonce_inserts;
};

/* The batch of the calling thread: its store, its connection (with an open
 * transaction once it wrote or read), and whether a fault lost it. */
static _Thread_local struct {
    struct pg_store *s;
    struct pconn *c;
    int lost;
} pb;

#define P(st) ((struct pg_store *)(st))

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* libpq's message on one line (it spans several, with tabs) */
static const char *
flat(const char *m, char *buf, size_t cap)
{
    size_t n = 0;

    for (; m != NULL && *m != '\0' && n + 1 < cap; m++) {
        char ch = (*m == '\n' || *m == '\t') ? ' ' : *m;

        if (ch == ' ' && (n == 0 || buf[n - 1] == ' '))
            continue;
        buf[n++] = ch;
    }
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}

#define FLAT(m) flat((m), (char[512]){ 0 }, 512)

/* notices (IF NOT EXISTS, ...) are not worth the operator's log */
static void
no_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* user@host:port/dbname of a connection string, without its password */
void
cmpr_store_pg_name(const char *conninfo, char *out, size_t cap)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    const char *user = "", *host = "", *port = "", *db = "";

    snprintf(out, cap, "postgresql");
    if (opts == NULL)
        return;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL)
            continue;
        if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
    }
    snprintf(out, cap, "postgresql://%s%s%s%s%s/%s", user, *user ? "@" : "", host, *port ? ":" : "", port, db);
    PQconninfoFree(opts);
}

static int
exec_ok(PGconn *pg, const char *q)
{
    PGresult *res = PQexec(pg, q);
    int ok = res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK);

    if (!ok)
        cmpr_log_debug("store: %s: %s", q, FLAT(PQerrorMessage(pg)));
    PQclear(res);
    return ok;
}

/* A new connection, or NULL (within the backoff after a failure, at once).
 * Defaults that keep a dead peer from hanging a worker come first; the
 * operator's string overrides them. */
static PGconn *
connect_pg(struct pg_store *s, int quiet)
{
    static const char *const kw[] = {
        "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
        "tcp_user_timeout", "application_name", "dbname", NULL
    };
    const char *val[] = { "10", "1", "10", "3", "3", "15000", "cmprouterd", s->conninfo, NULL };
    uint64_t now = now_ms();
    PGconn *pg;

    pthread_mutex_lock(&s->pl);
    if (s->retry_at_ms != 0 && now < s->retry_at_ms) {
        pthread_mutex_unlock(&s->pl);
        return NULL;
    }
    pthread_mutex_unlock(&s->pl);
    pg = PQconnectdbParams(kw, val, 1);
    if (pg != NULL)
        PQsetNoticeProcessor(pg, no_notice, NULL);
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK
            || !exec_ok(pg, "SET synchronous_commit = on; SET default_transaction_isolation = 'read committed'")) {
        pthread_mutex_lock(&s->pl);
        s->backoff_ms = s->backoff_ms == 0 ? 1000 : s->backoff_ms >= 16000 ? 16000 : s->backoff_ms * 2;
        s->retry_at_ms = now_ms() + s->backoff_ms;
        pthread_mutex_unlock(&s->pl);
        if (!quiet)
            cmpr_log_error("store %s: cannot connect: %s (next try in %u s)", s->name,
                           pg != NULL ? FLAT(PQerrorMessage(pg)) : "out of memory", s->backoff_ms / 1000);
        PQfinish(pg);
        return NULL;
    }
    pthread_mutex_lock(&s->pl);
    if (s->retry_at_ms != 0)
        cmpr_log_info("store %s: connected again", s->name);
    s->retry_at_ms = 0;
    s->backoff_ms = 0;
    pthread_mutex_unlock(&s->pl);
    return pg;
}

static void
conn_drop(struct pconn *c)
{
    if (c != NULL) {
        PQfinish(c->pg);
        free(c);
    }
}

/* An idle connection the server has closed meanwhile (a restart, a
 * failover, idle_session_timeout) has its goodbye waiting in the socket:
 * read what is there, without blocking, and see. */
static int
still_open(struct pconn *c)
{
    /* twice: the first read may take the server's FATAL message, only the
     * next one sees the end of the stream behind it */
    return PQconsumeInput(c->pg) == 1 && PQconsumeInput(c->pg) == 1 && PQstatus(c->pg) == CONNECTION_OK;
}

static struct pconn *
pool_take(struct pg_store *s)
{
    struct pconn *c;

    for (;;) {
        pthread_mutex_lock(&s->pl);
        if ((c = s->free) != NULL)
            s->free = c->next;
        pthread_mutex_unlock(&s->pl);
        if (c == NULL || still_open(c))
            break;
        cmpr_log_info("store %s: an idle connection was closed by the server; dropped", s->name);
        conn_drop(c);
    }
    if (c != NULL)
        return c;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    if ((c->pg = connect_pg(s, 0)) == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

/* back to the pool, unless it broke: then the idle ones go too (a
 * restarted or failed-over server has cut them all; each would otherwise
 * cost a request its systemUnavail) */
static void
pool_give(struct pg_store *s, struct pconn *c)
{
    struct pconn *idle;

    if (c == NULL)
        return;
    if (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        cmpr_log_warn("store %s: connection lost: %s", s->name, FLAT(PQerrorMessage(c->pg)));
        conn_drop(c);
        pthread_mutex_lock(&s->pl);
        idle = s->free;
        s->free = NULL;
        pthread_mutex_unlock(&s->pl);
        while ((c = idle) != NULL) {
            idle = c->next;
            conn_drop(c);
        }
        return;
    }
    pthread_mutex_lock(&s->pl);
    c->next = s->free;
    s->free = c;
    pthread_mutex_unlock(&s->pl);
}

/* The connection for one call: the batch's (its transaction begun), or
 * one of the pool's. NULL: no database. */
static struct pconn *
take(struct pg_store *s)
{
    if (pb.s != s)
        return pool_take(s);
    if (pb.lost)
        return NULL;
    if (pb.c == NULL && (pb.c = pool_take(s)) == NULL) {
        pb.lost = 1;
        return NULL;
    }
    if (!pb.c->in_txn) {
        if (!exec_ok(pb.c->pg, "BEGIN")) {
            pb.lost = 1;
            return NULL;
        }
        pb.c->in_txn = 1;
    }
    return pb.c;
}

/* After one call whose result is r: a fault inside a batch loses it */
static int
give(struct pg_store *s, struct pconn *c, int r)
{
    if (c == NULL)
        return CMPR_ERR_STORE;
    if (pb.s == s && c == pb.c) {
        if (r == CMPR_ERR_STORE || PQtransactionStatus(c->pg) != PQTRANS_INTRANS)
            pb.lost = 1;
        return pb.lost ? CMPR_ERR_STORE : r;
    }
    pool_give(s, c);
    return r;
}

/* ---------------- parameters and results ---------------- */

#define MAX_PARAMS 32

struct params {
    int n;
    const char *v[MAX_PARAMS];
    int len[MAX_PARAMS];
    int fmt[MAX_PARAMS];
    unsigned char ib[MAX_PARAMS][8];
};

static void
p_blob(struct params *p, const void *b, size_t len)
{
    int i = p->n++;

    p->v[i] = (b != NULL && len != 0) ? b : NULL;
    p->len[i] = (int)len;
    p->fmt[i] = 1;
}

static void
p_text(struct params *p, const char *t)
{
    int i = p->n++;

    p->v[i] = t != NULL ? t : "";
    p->len[i] = (int)strlen(p->v[i]);
    p->fmt[i] = 1;
}

static void
p_int(struct params *p, int64_t x)
{
    int i = p->n++;
    uint64_t u = (uint64_t)x;

    for (int k = 7; k >= 0; k--, u >>= 8)
        p->ib[i][k] = (unsigned char)(u & 0xff);
    p->v[i] = (const char *)p->ib[i];
    p->len[i] = 8;
    p->fmt[i] = 1;
}

static int64_t
r_int(const PGresult *res, int row, int col)
{
    const unsigned char *v = (const unsigned char *)PQgetvalue(res, row, col);
    uint64_t u = 0;

    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
        return 0;
    for (int k = 0; k < 8; k++)
        u = (u << 8) | v[k];
    return (int64_t)u;
}

static void
r_fixed(const PGresult *res, int row, int col, unsigned char *dst, size_t cap, size_t *len_r)
{
    int n = PQgetlength(res, row, col);

    *len_r = 0;
    if (!PQgetisnull(res, row, col) && n > 0 && (size_t)n <= cap) {
        memcpy(dst, PQgetvalue(res, row, col), (size_t)n);
        *len_r = (size_t)n;
    }
}

static int
r_dup(const PGresult *res, int row, int col, unsigned char **dst, size_t *len_r)
{
    int n = PQgetlength(res, row, col);

    *dst = NULL;
    *len_r = 0;
    if (PQgetisnull(res, row, col) || n <= 0)
        return CMPR_OK;
    if ((*dst = malloc((size_t)n)) == NULL)
        return CMPR_ERR_ALLOC;
    memcpy(*dst, PQgetvalue(res, row, col), (size_t)n);
    *len_r = (size_t)n;
    return CMPR_OK;
}

static void
r_text(const PGresult *res, int row, int col, char *dst, size_t cap)
{
    int n = PQgetisnull(res, row, col) ? 0 : PQgetlength(res, row, col);

    if ((size_t)n >= cap)
        n = (int)cap - 1;
    memcpy(dst, PQgetvalue(res, row, col), (size_t)n);
    dst[n] = '\0';
}

/* Runs statement q on c (prepared there once), binary in and out. The
 * result (NULL on a fault, logged) and, for commands, the rows changed. */
static PGresult *
run(struct pg_store *s, struct pconn *c, int q, const struct params *p, long *changed)
{
    PGresult *res;
    ExecStatusType st;

    if (!c->prepared[q]) {
        char name[16];

        snprintf(name, sizeof(name), "q%d", q);
        res = PQprepare(c->pg, name, sql[q], 0, NULL);
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            cmpr_log_error("store %s: cannot prepare a statement: %s", s->name, FLAT(PQerrorMessage(c->pg)));
            PQclear(res);
            return NULL;
        }
        PQclear(res);
        c->prepared[q] = 1;
    }
    {
        char name[16];

        snprintf(name, sizeof(name), "q%d", q);
        res = PQexecPrepared(c->pg, name, p != NULL ? p->n : 0, p != NULL ? p->v : NULL,
                             p != NULL ? p->len : NULL, p != NULL ? p->fmt : NULL, 1);
    }
    st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        cmpr_log_error("store %s: %s", s->name,
                       FLAT(res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(c->pg)));
        PQclear(res);
        return NULL;
    }
    if (changed != NULL)
        *changed = strtol(PQcmdTuples(res), NULL, 10);
    return res;
}

/* A command: CMPR_OK with the rows changed, or CMPR_ERR_STORE */
static int
command(struct pg_store *s, struct pconn *c, int q, const struct params *p, long *changed)
{
    PGresult *res = run(s, c, q, p, changed);

    if (res == NULL)
        return CMPR_ERR_STORE;
    PQclear(res);
    return CMPR_OK;
}

/* ---------------- open, close, migrations ---------------- */

static int
migrate(struct pg_store *s, PGconn *pg)
{
    PGresult *res;
    long have = 0;
    int ok;

    /* one node at a time: a transaction-scoped advisory lock (key "cmpr") */
    if (!exec_ok(pg, "BEGIN") || !exec_ok(pg, "SELECT pg_advisory_xact_lock(1668116594)")
            || !exec_ok(pg, "CREATE TABLE IF NOT EXISTS cmprouter_schema (version BIGINT NOT NULL)"))
        goto fail;
    res = PQexec(pg, "SELECT max(version) FROM cmprouter_schema");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        goto fail;
    }
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        have = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (have > (long)N_MIGRATIONS) {
        cmpr_log_error("store %s: the database's schema is version %ld, newer than this cmprouterd knows (%zu)",
                       s->name, have, N_MIGRATIONS);
        (void)exec_ok(pg, "ROLLBACK");
        return CMPR_ERR_STORE;
    }
    for (long v = have; v < (long)N_MIGRATIONS; v++) {
        char q[96];

        snprintf(q, sizeof(q), "INSERT INTO cmprouter_schema(version) VALUES(%ld)", v + 1);
        if (!exec_ok(pg, migrations[v]) || !exec_ok(pg, q))
            goto fail;
        cmpr_log_info("store %s: schema migrated to version %ld", s->name, v + 1);
    }
    ok = exec_ok(pg, "COMMIT");
    return ok ? CMPR_OK : CMPR_ERR_STORE;
fail:
    cmpr_log_error("store %s: cannot set up the schema: %s", s->name, FLAT(PQerrorMessage(pg)));
    (void)exec_ok(pg, "ROLLBACK");
    return CMPR_ERR_STORE;
}

static void pg_close(struct cmpr_store *st);

static int
pg_open(const char *location, struct cmpr_store **st_r)
{
    struct pg_store *s = calloc(1, sizeof(*s));
    struct pconn *c;
    char *err = NULL;
    PQconninfoOption *opts;

    *st_r = NULL;
    if (s == NULL)
        return CMPR_ERR_ALLOC;
    s->base.ops = &cmpr_store_pg_ops;
    pthread_mutex_init(&s->pl, NULL);
    if ((opts = PQconninfoParse(location, &err)) == NULL) {
        /* libpq's message may quote the string: say only what is wrong */
        cmpr_log_error("store: not a PostgreSQL connection string (libpq: %s)",
                       err != NULL && strstr(err, "password") == NULL ? err : "syntax error");
        PQfreemem(err);
        pg_close(&s->base);
        return CMPR_ERR_CONFIG;
    }
    PQconninfoFree(opts);
    if ((s->conninfo = strdup(location)) == NULL) {
        pg_close(&s->base);
        return CMPR_ERR_ALLOC;
    }
    cmpr_store_pg_name(location, s->name, sizeof(s->name));
    if ((c = calloc(1, sizeof(*c))) == NULL || (c->pg = connect_pg(s, 0)) == NULL
            || migrate(s, c->pg) != CMPR_OK) {
        conn_drop(c);
        pg_close(&s->base);
        return CMPR_ERR_STORE;
    }
    pool_give(s, c);
    *st_r = &s->base;
    return CMPR_OK;
}

static void
pg_close(struct cmpr_store *st)
{
    struct pg_store *s = P(st);
    struct pconn *c;

    if (pb.s == s) {
        conn_drop(pb.c);
        pb.s = NULL;
        pb.c = NULL;
    }
    while ((c = s->free) != NULL) {
        s->free = c->next;
        conn_drop(c);
    }
    pthread_mutex_destroy(&s->pl);
    free(s->conninfo);
    free(s);
}

/* ---------------- batches ---------------- */

static void
pg_batch(struct cmpr_store *st, int on)
{
    struct pg_store *s = P(st);

    if (pb.s == s && pb.c != NULL) {    /* switched off without a flush: nothing is promised */
        if (pb.c->in_txn)
            (void)exec_ok(pb.c->pg, "ROLLBACK");
        pb.c->in_txn = 0;
        pool_give(s, pb.c);
    }
    pb.s = on ? s : NULL;
    pb.c = NULL;
    pb.lost = 0;
}

static int
pg_flush(struct cmpr_store *st)
{
    struct pg_store *s = P(st);
    int r = CMPR_OK;

    if (pb.s != s)
        return CMPR_OK;             /* each call committed (durably) on its own */
    if (pb.c != NULL) {
        if (pb.lost) {
            if (PQstatus(pb.c->pg) == CONNECTION_OK)
                (void)exec_ok(pb.c->pg, "ROLLBACK");
            r = CMPR_ERR_STORE;
        } else if (pb.c->in_txn && !exec_ok(pb.c->pg, "COMMIT")) {
            cmpr_log_error("store %s: a commit failed: %s", s->name, FLAT(PQerrorMessage(pb.c->pg)));
            r = CMPR_ERR_STORE;
        }
        pb.c->in_txn = 0;
        pool_give(s, pb.c);
        pb.c = NULL;
    } else if (pb.lost) {
        r = CMPR_ERR_STORE;
    }
    pb.lost = 0;
    return r;
}

/* a commit on PostgreSQL is durable when it returns (synchronous_commit) */
static int
pg_commit(struct cmpr_store *st, uint64_t *token_r)
{
    *token_r = 0;
    return pg_flush(st);
}

static int
pg_sync(struct cmpr_store *st, uint64_t token)
{
    (void)st;
    (void)token;
    return CMPR_OK;
}

/* ---------------- transactions ---------------- */

static int
pg_txn_insert(struct cmpr_store *st, const struct cmpr_txn_rec *t)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_blob(&p, t->tid, t->tid_len);
        p_text(&p, t->sender);
        p_int(&p, t->state);
        p_int(&p, t->req_type);
        p_text(&p, t->client);
        p_text(&p, t->profile);
        p_blob(&p, t->last_nonce, t->last_nonce_len);
        p_blob(&p, t->serial, t->serial_len);
        p_blob(&p, t->request, t->request_len);
        p_blob(&p, t->response, t->response_len);
        p_int(&p, t->created);
        p_int(&p, t->updated);
        p_int(&p, t->expires);
        p_blob(&p, t->req_nonce, t->req_nonce_len);
        p_text(&p, t->note);
        p_blob(&p, t->old_serial, t->old_serial_len);
        if ((r = command(s, c, Q_TXN_INS, &p, &n)) == CMPR_OK && n == 0)
            r = CMPR_ERR_EXISTS;
    }
    return give(s, c, r);
}

/* no row changed: was it gone, or moved on by someone else? */
static int
no_change(struct pg_store *s, struct pconn *c, const struct cmpr_txn_rec *t)
{
    struct params p = { 0 };
    PGresult *res;
    int r;

    p_blob(&p, t->tid, t->tid_len);
    if ((res = run(s, c, Q_TXN_EXISTS, &p, NULL)) == NULL)
        return CMPR_ERR_STORE;
    r = PQntuples(res) > 0 ? CMPR_ERR_CONFLICT : CMPR_ERR_NOT_FOUND;
    PQclear(res);
    return r;
}

static int
pg_txn_update(struct cmpr_store *st, const struct cmpr_txn_rec *t)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_int(&p, t->state);
        p_text(&p, t->client);
        p_text(&p, t->profile);
        p_blob(&p, t->last_nonce, t->last_nonce_len);
        p_blob(&p, t->serial, t->serial_len);
        p_blob(&p, t->response, t->response_len);
        p_int(&p, t->updated);
        p_int(&p, t->expires);
        p_blob(&p, t->req_nonce, t->req_nonce_len);
        p_text(&p, t->note);
        p_blob(&p, t->tid, t->tid_len);
        p_int(&p, t->read_state);
        if ((r = command(s, c, Q_TXN_UPD, &p, &n)) == CMPR_OK && n == 0)
            r = no_change(s, c, t);
    }
    return give(s, c, r);
}

static int
pg_txn_set_state(struct cmpr_store *st, const struct cmpr_txn_rec *t)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_int(&p, t->state);
        p_blob(&p, t->serial, t->serial_len);
        p_text(&p, t->note);
        p_int(&p, t->updated);
        p_blob(&p, t->tid, t->tid_len);
        p_int(&p, t->read_state);
        if ((r = command(s, c, Q_TXN_SET, &p, &n)) == CMPR_OK && n == 0)
            r = no_change(s, c, t);
    }
    return give(s, c, r);
}

static int
txn_row(const PGresult *q, int i, struct cmpr_txn_rec *t)
{
    int r;

    memset(t, 0, sizeof(*t));
    r_fixed(q, i, 0, t->tid, sizeof(t->tid), &t->tid_len);
    r_text(q, i, 1, t->sender, sizeof(t->sender));
    t->state = t->read_state = (int)r_int(q, i, 2);
    t->req_type = (int)r_int(q, i, 3);
    r_text(q, i, 4, t->client, sizeof(t->client));
    r_text(q, i, 5, t->profile, sizeof(t->profile));
    r_fixed(q, i, 6, t->last_nonce, sizeof(t->last_nonce), &t->last_nonce_len);
    r_fixed(q, i, 7, t->serial, sizeof(t->serial), &t->serial_len);
    if ((r = r_dup(q, i, 8, &t->request, &t->request_len)) != CMPR_OK
            || (r = r_dup(q, i, 9, &t->response, &t->response_len)) != CMPR_OK) {
        cmpr_txn_rec_clear(t);
        return r;
    }
    t->created = r_int(q, i, 10);
    t->updated = r_int(q, i, 11);
    t->expires = r_int(q, i, 12);
    r_fixed(q, i, 13, t->req_nonce, sizeof(t->req_nonce), &t->req_nonce_len);
    r_text(q, i, 14, t->note, sizeof(t->note));
    r_fixed(q, i, 15, t->old_serial, sizeof(t->old_serial), &t->old_serial_len);
    return CMPR_OK;
}

/* Runs a query and hands each row to row(res, i, arg) until one fails */
static int
each_row(struct pg_store *s, int q, const struct params *p,
         int (*row)(const PGresult *res, int i, void *arg), void *arg)
{
    struct pconn *c = take(s);
    PGresult *res;
    int r = CMPR_ERR_STORE;

    if (c != NULL && (res = run(s, c, q, p, NULL)) != NULL) {
        r = CMPR_OK;
        for (int i = 0; r == CMPR_OK && i < PQntuples(res); i++)
            r = row(res, i, arg);
        PQclear(res);
    }
    return give(s, c, r);
}

/* one row by a bytea key: CMPR_ERR_NOT_FOUND if none */
struct one {
    int (*row)(const PGresult *res, int i, void *out);
    void *out;
    int found;
};

static int
one_row(const PGresult *res, int i, void *arg)
{
    struct one *o = arg;

    o->found = 1;
    return o->row(res, i, o->out);
}

static int
get_one(struct pg_store *s, int q, const unsigned char *key, size_t len,
        int (*row)(const PGresult *res, int i, void *out), void *out)
{
    struct params p = { 0 };
    struct one o = { row, out, 0 };
    int r;

    p_blob(&p, key, len);
    r = each_row(s, q, &p, one_row, &o);
    return r == CMPR_OK && !o.found ? CMPR_ERR_NOT_FOUND : r;
}

static int
txn_row_v(const PGresult *q, int i, void *out)
{
    return txn_row(q, i, out);
}

static int
pg_txn_get(struct cmpr_store *st, const unsigned char *tid, size_t tid_len, struct cmpr_txn_rec *rec_r)
{
    return get_one(P(st), Q_TXN_GET, tid, tid_len, txn_row_v, rec_r);
}

struct txn_cb {
    int (*cb)(const struct cmpr_txn_rec *rec, void *arg);
    void *arg;
};

static int
txn_each(const PGresult *q, int i, void *arg)
{
    struct txn_cb *k = arg;
    struct cmpr_txn_rec t;
    int r;

    if ((r = txn_row(q, i, &t)) != CMPR_OK)
        return r;
    r = k->cb(&t, k->arg);
    cmpr_txn_rec_clear(&t);
    return r;
}

static int
pg_txn_list(struct cmpr_store *st, int state, int (*cb)(const struct cmpr_txn_rec *rec, void *arg), void *arg)
{
    struct params p = { 0 };
    struct txn_cb k = { cb, arg };

    if (state >= 0)
        p_int(&p, state);
    return each_row(P(st), state < 0 ? Q_TXN_ALL : Q_TXN_BY_STATE, &p, txn_each, &k);
}

/* ---------------- serials, certificates, nonces ---------------- */

static int
insert_blob_key(struct pg_store *s, int q, const unsigned char *key, size_t len)
{
    struct pconn *c = take(s);
    struct params p = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_blob(&p, key, len);
        if ((r = command(s, c, q, &p, &n)) == CMPR_OK && n == 0)
            r = CMPR_ERR_EXISTS;
    }
    return give(s, c, r);
}

static int
pg_serial_reserve(struct cmpr_store *st, const unsigned char *serial, size_t len)
{
    return insert_blob_key(P(st), Q_SERIAL, serial, len);
}

static int
pg_cert_put(struct cmpr_store *st, const struct cmpr_cert_rec *x)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_blob(&p, x->serial, x->serial_len);
        p_text(&p, x->issuer);
        p_text(&p, x->subject);
        p_int(&p, x->not_before);
        p_int(&p, x->not_after);
        p_int(&p, x->status);
        p_int(&p, x->revoked_at);
        p_int(&p, x->reason);
        p_int(&p, x->confirmed);
        p_blob(&p, x->tid, x->tid_len);
        p_blob(&p, x->der, x->der_len);
        if ((r = command(s, c, Q_CERT_INS, &p, &n)) == CMPR_OK && n == 0)
            r = CMPR_ERR_EXISTS;
    }
    return give(s, c, r);
}

static int
cert_row(const PGresult *q, int i, struct cmpr_cert_rec *x)
{
    memset(x, 0, sizeof(*x));
    r_fixed(q, i, 0, x->serial, sizeof(x->serial), &x->serial_len);
    r_text(q, i, 1, x->issuer, sizeof(x->issuer));
    r_text(q, i, 2, x->subject, sizeof(x->subject));
    x->not_before = r_int(q, i, 3);
    x->not_after = r_int(q, i, 4);
    x->status = (int)r_int(q, i, 5);
    x->revoked_at = r_int(q, i, 6);
    x->reason = (int)r_int(q, i, 7);
    x->confirmed = (int)r_int(q, i, 8);
    r_fixed(q, i, 9, x->tid, sizeof(x->tid), &x->tid_len);
    return r_dup(q, i, 10, &x->der, &x->der_len);
}

static int
cert_row_v(const PGresult *q, int i, void *out)
{
    return cert_row(q, i, out);
}

static int
pg_cert_get(struct cmpr_store *st, const unsigned char *serial, size_t len, struct cmpr_cert_rec *rec_r)
{
    return get_one(P(st), Q_CERT_GET, serial, len, cert_row_v, rec_r);
}

static int
pg_cert_set_status(struct cmpr_store *st, const unsigned char *serial, size_t len,
                   int status, int64_t when, int reason, int confirmed)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_int(&p, status);
        p_int(&p, when);
        p_int(&p, reason);
        p_int(&p, confirmed);
        p_blob(&p, serial, len);
        if ((r = command(s, c, Q_CERT_SET, &p, &n)) == CMPR_OK && n == 0)
            r = CMPR_ERR_NOT_FOUND;
    }
    return give(s, c, r);
}

struct cert_cb {
    int (*cb)(const struct cmpr_cert_rec *rec, void *arg);
    void *arg;
};

static int
cert_each(const PGresult *q, int i, void *arg)
{
    struct cert_cb *k = arg;
    struct cmpr_cert_rec x;
    int r;

    if ((r = cert_row(q, i, &x)) != CMPR_OK)
        return r;
    r = k->cb(&x, k->arg);
    cmpr_cert_rec_clear(&x);
    return r;
}

static int
pg_cert_list(struct cmpr_store *st, int (*cb)(const struct cmpr_cert_rec *rec, void *arg), void *arg)
{
    struct cert_cb k = { cb, arg };

    return each_row(P(st), Q_CERT_ALL, NULL, cert_each, &k);
}

static int
pg_cert_list_revoked(struct cmpr_store *st, int (*cb)(const struct cmpr_cert_rec *rec, void *arg), void *arg)
{
    struct cert_cb k = { cb, arg };

    return each_row(P(st), Q_CERT_REVOKED, NULL, cert_each, &k);
}

static int
pg_nonce_check(struct cmpr_store *st, const unsigned char *nonce, size_t len, int64_t now, int64_t window)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 }, g = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;
    unsigned long k;

    if (c != NULL) {
        p_blob(&p, nonce, len);
        p_int(&p, now);
        p_int(&p, now - window);
        if ((r = command(s, c, Q_NONCE, &p, &n)) == CMPR_OK && n == 0)
            r = CMPR_ERR_EXISTS;
        /* keep the table to the window's worth of nonces */
        k = __atomic_add_fetch(&s->nonce_inserts, 1, __ATOMIC_RELAXED);
        if (r == CMPR_OK && k % 1024 == 0) {
            p_int(&g, now - window);
            r = command(s, c, Q_NONCE_GC, &g, NULL);
        }
    }
    return give(s, c, r);
}

/* ---------------- archived keys, audit ---------------- */

static int
pg_archive_put(struct cmpr_store *st, const unsigned char *serial, size_t len,
               const char *subject, const char *client, const unsigned char *env, size_t envlen)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_blob(&p, serial, len);
        p_text(&p, subject);
        p_text(&p, client);
        p_blob(&p, env, envlen);
        p_int(&p, (int64_t)time(NULL));
        if ((r = command(s, c, Q_ARCH_INS, &p, &n)) == CMPR_OK && n == 0)
            r = CMPR_ERR_EXISTS;
    }
    return give(s, c, r);
}

struct arch_cb {
    int (*cb)(const unsigned char *serial, size_t len, const char *client,
              const unsigned char *envdata, size_t envdata_len, void *arg);
    void *arg;
};

static int
arch_each(const PGresult *q, int i, void *arg)
{
    struct arch_cb *k = arg;
    char client[128];

    r_text(q, i, 1, client, sizeof(client));
    return k->cb((const unsigned char *)PQgetvalue(q, i, 0), (size_t)PQgetlength(q, i, 0), client,
                 (const unsigned char *)PQgetvalue(q, i, 2), (size_t)PQgetlength(q, i, 2), k->arg);
}

static int
pg_archive_list(struct cmpr_store *st, const char *subject,
                int (*cb)(const unsigned char *serial, size_t len, const char *client,
                          const unsigned char *envdata, size_t envdata_len, void *arg),
                void *arg)
{
    struct params p = { 0 };
    struct arch_cb k = { cb, arg };

    p_text(&p, subject);
    return each_row(P(st), Q_ARCH_LIST, &p, arch_each, &k);
}

static int
pg_audit_at(struct cmpr_store *st, int64_t when, const unsigned char *tid, size_t tid_len,
            const char *who, const char *event, const char *detail)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_int(&p, when);
        p_blob(&p, tid, tid_len);
        p_text(&p, who);
        p_text(&p, event);
        p_text(&p, detail);
        r = command(s, c, Q_AUDIT, &p, NULL);
    }
    return give(s, c, r);
}

static int
pg_audit(struct cmpr_store *st, const unsigned char *tid, size_t tid_len,
         const char *who, const char *event, const char *detail)
{
    return pg_audit_at(st, (int64_t)time(NULL), tid, tid_len, who, event, detail);
}

struct serial_cb {
    int (*cb)(const unsigned char *serial, size_t len, void *arg);
    void *arg;
};

static int
serial_each(const PGresult *q, int i, void *arg)
{
    struct serial_cb *k = arg;

    return k->cb((const unsigned char *)PQgetvalue(q, i, 0), (size_t)PQgetlength(q, i, 0), k->arg);
}

static int
pg_serial_list(struct cmpr_store *st, int (*cb)(const unsigned char *serial, size_t len, void *arg), void *arg)
{
    struct serial_cb k = { cb, arg };

    return each_row(P(st), Q_SERIAL_ALL, NULL, serial_each, &k);
}

struct arch_all_cb {
    int (*cb)(const unsigned char *serial, size_t len, const char *subject, const char *client,
              const unsigned char *envdata, size_t envdata_len, void *arg);
    void *arg;
};

static int
arch_all_each(const PGresult *q, int i, void *arg)
{
    struct arch_all_cb *k = arg;
    char subject[512], client[128];

    r_text(q, i, 1, subject, sizeof(subject));
    r_text(q, i, 2, client, sizeof(client));
    return k->cb((const unsigned char *)PQgetvalue(q, i, 0), (size_t)PQgetlength(q, i, 0), subject, client,
                 (const unsigned char *)PQgetvalue(q, i, 3), (size_t)PQgetlength(q, i, 3), k->arg);
}

static int
pg_archive_all(struct cmpr_store *st,
               int (*cb)(const unsigned char *serial, size_t len, const char *subject, const char *client,
                         const unsigned char *envdata, size_t envdata_len, void *arg),
               void *arg)
{
    struct arch_all_cb k = { cb, arg };

    return each_row(P(st), Q_ARCH_ALL, NULL, arch_all_each, &k);
}

struct audit_cb {
    int (*cb)(int64_t when, const char *tid_hex, const char *who, const char *event,
              const char *detail, void *arg);
    void *arg;
};

static int
audit_each(const PGresult *q, int i, void *arg)
{
    struct audit_cb *k = arg;
    char tid[2 * CMPR_STORE_MAX_ID + 1], who[256], event[128], detail[1024];

    r_text(q, i, 1, tid, sizeof(tid));
    r_text(q, i, 2, who, sizeof(who));
    r_text(q, i, 3, event, sizeof(event));
    r_text(q, i, 4, detail, sizeof(detail));
    return k->cb(r_int(q, i, 0), tid, who, event, detail, k->arg);
}

static int
pg_audit_list(struct cmpr_store *st,
              int (*cb)(int64_t when, const char *tid_hex, const char *who, const char *event,
                        const char *detail, void *arg),
              void *arg)
{
    struct audit_cb k = { cb, arg };

    return each_row(P(st), Q_AUDIT_ALL, NULL, audit_each, &k);
}

/* ---------------- forwarded requests ---------------- */

static void
fwd_params(struct params *p, const struct cmpr_fwd_rec *f, int64_t newver)
{
    p_blob(p, f->tid, f->tid_len);
    p_text(p, f->route);
    p_int(p, f->state);
    p_int(p, newver);
    p_int(p, f->delayed);
    p_int(p, f->client_body);
    p_blob(p, f->client_nonce, f->client_nonce_len);
    p_blob(p, f->up_nonce, f->up_nonce_len);
    p_text(p, f->client);
    p_int(p, f->auth);
    p_int(p, f->mac_kind);
    p_text(p, f->key);
    p_text(p, f->batch);
    p_blob(p, f->req, f->req_len);
    p_blob(p, f->ans, f->ans_len);
    p_blob(p, f->last, f->last_len);
    p_blob(p, f->last_nonce, f->last_nonce_len);
    p_text(p, f->err);
    p_int(p, f->attempts);
    p_int(p, f->created);
    p_int(p, f->updated);
    p_int(p, f->next_try);
    p_text(p, f->push);
    p_text(p, f->owner);
    p_int(p, f->lease_until);
}

static int
fwd_row(const PGresult *q, int i, struct cmpr_fwd_rec *f)
{
    int r;

    memset(f, 0, sizeof(*f));
    r_fixed(q, i, 0, f->tid, sizeof(f->tid), &f->tid_len);
    r_text(q, i, 1, f->route, sizeof(f->route));
    f->state = f->read_state = (int)r_int(q, i, 2);
    f->ver = r_int(q, i, 3);
    f->delayed = (int)r_int(q, i, 4);
    f->client_body = (int)r_int(q, i, 5);
    r_fixed(q, i, 6, f->client_nonce, sizeof(f->client_nonce), &f->client_nonce_len);
    r_fixed(q, i, 7, f->up_nonce, sizeof(f->up_nonce), &f->up_nonce_len);
    r_text(q, i, 8, f->client, sizeof(f->client));
    f->auth = (int)r_int(q, i, 9);
    f->mac_kind = (int)r_int(q, i, 10);
    r_text(q, i, 11, f->key, sizeof(f->key));
    r_text(q, i, 12, f->batch, sizeof(f->batch));
    if ((r = r_dup(q, i, 13, &f->req, &f->req_len)) != CMPR_OK
            || (r = r_dup(q, i, 14, &f->ans, &f->ans_len)) != CMPR_OK
            || (r = r_dup(q, i, 15, &f->last, &f->last_len)) != CMPR_OK) {
        cmpr_fwd_rec_clear(f);
        return r;
    }
    r_fixed(q, i, 16, f->last_nonce, sizeof(f->last_nonce), &f->last_nonce_len);
    r_text(q, i, 17, f->err, sizeof(f->err));
    f->attempts = (int)r_int(q, i, 18);
    f->created = r_int(q, i, 19);
    f->updated = r_int(q, i, 20);
    f->next_try = r_int(q, i, 21);
    r_text(q, i, 22, f->push, sizeof(f->push));
    r_text(q, i, 23, f->owner, sizeof(f->owner));
    f->lease_until = r_int(q, i, 24);
    return CMPR_OK;
}

static int
fwd_row_v(const PGresult *q, int i, void *out)
{
    return fwd_row(q, i, out);
}

static int
pg_fwd_put(struct cmpr_store *st, struct cmpr_fwd_rec *f)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        fwd_params(&p, f, f->ver + 1);
        if (f->ver != 0)
            p_int(&p, f->ver);
        r = command(s, c, f->ver == 0 ? Q_FWD_INS : Q_FWD_UPD, &p, &n);
        if (r == CMPR_OK && n == 0)
            r = f->ver == 0 ? CMPR_ERR_EXISTS : CMPR_ERR_CONFLICT;
        if (r == CMPR_OK) {
            f->ver++;
            f->read_state = f->state;
        }
    }
    return give(s, c, r);
}

static int
pg_fwd_get(struct cmpr_store *st, const unsigned char *tid, size_t tid_len, struct cmpr_fwd_rec *rec_r)
{
    return get_one(P(st), Q_FWD_GET, tid, tid_len, fwd_row_v, rec_r);
}

static int
pg_fwd_list(struct cmpr_store *st, int all, struct cmpr_fwd_rec **recs_r, size_t *n_r)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct cmpr_fwd_rec *v = NULL;
    PGresult *res;
    size_t n = 0;
    int r = CMPR_ERR_STORE;

    *recs_r = NULL;
    *n_r = 0;
    if (c != NULL && (res = run(s, c, all ? Q_FWD_ALL : Q_FWD_OPEN, NULL, NULL)) != NULL) {
        size_t rows = (size_t)PQntuples(res);

        r = CMPR_OK;
        if (rows > 0 && (v = calloc(rows, sizeof(*v))) == NULL)
            r = CMPR_ERR_ALLOC;
        for (; r == CMPR_OK && n < rows; n++)
            if ((r = fwd_row(res, (int)n, &v[n])) != CMPR_OK)
                break;
        PQclear(res);
    }
    r = give(s, c, r);
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
pg_fwd_delete(struct cmpr_store *st, const unsigned char *tid, size_t tid_len)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_blob(&p, tid, tid_len);
        r = command(s, c, Q_FWD_DEL, &p, NULL);
    }
    return give(s, c, r);
}

/* ---------------- answers by reference ---------------- */

static int
pg_defer_put(struct cmpr_store *st, struct cmpr_defer_rec *d)
{
    struct pg_store *s = P(st);
    struct pconn *c = take(s);
    struct params p = { 0 };
    long n = 0;
    int r = CMPR_ERR_STORE;

    if (c != NULL) {
        p_int(&p, d->ref);
        p_int(&p, d->state);
        if (d->read_state < 0) {
            p_blob(&p, d->req, d->req_len);
            p_blob(&p, d->answer, d->answer_len);
            p_int(&p, d->created);
        } else {
            p_blob(&p, d->answer, d->answer_len);
            p_int(&p, d->read_state);
        }
        r = command(s, c, d->read_state < 0 ? Q_DEF_INS : Q_DEF_UPD, &p, &n);
        if (r == CMPR_OK && n == 0)
            r = d->read_state < 0 ? CMPR_ERR_EXISTS : CMPR_ERR_CONFLICT;
        if (r == CMPR_OK)
            d->read_state = d->state;
    }
    return give(s, c, r);
}

static int
defer_row(const PGresult *q, int i, struct cmpr_defer_rec *d)
{
    int r;

    memset(d, 0, sizeof(*d));
    d->ref = (uint32_t)r_int(q, i, 0);
    d->state = d->read_state = (int)r_int(q, i, 1);
    if ((r = r_dup(q, i, 2, &d->req, &d->req_len)) != CMPR_OK
            || (r = r_dup(q, i, 3, &d->answer, &d->answer_len)) != CMPR_OK) {
        cmpr_defer_rec_clear(d);
        return r;
    }
    d->created = r_int(q, i, 4);
    return CMPR_OK;
}

static int
defer_row_v(const PGresult *q, int i, void *out)
{
    return defer_row(q, i, out);
}

static int
pg_defer_get(struct cmpr_store *st, uint32_t ref, struct cmpr_defer_rec *d_r)
{
    struct params p = { 0 };
    struct one o = { defer_row_v, d_r, 0 };
    int r;

    p_int(&p, ref);
    r = each_row(P(st), Q_DEF_GET, &p, one_row, &o);
    return r == CMPR_OK && !o.found ? CMPR_ERR_NOT_FOUND : r;
}

struct defer_cb {
    int (*cb)(const struct cmpr_defer_rec *rec, void *arg);
    void *arg;
    int64_t older_than;
};

static int
defer_each(const PGresult *q, int i, void *arg)
{
    struct defer_cb *k = arg;
    struct cmpr_defer_rec d;
    int r;

    if ((r = defer_row(q, i, &d)) == CMPR_OK && d.created >= k->older_than)
        r = k->cb(&d, k->arg);
    cmpr_defer_rec_clear(&d);
    return r;
}

static int
pg_defer_list(struct cmpr_store *st, int64_t older_than,
              int (*cb)(const struct cmpr_defer_rec *rec, void *arg), void *arg)
{
    struct pg_store *s = P(st);
    struct defer_cb k = { cb, arg, older_than };
    struct params p = { 0 };
    struct pconn *c;
    int r;

    if ((r = each_row(s, Q_DEF_ALL, NULL, defer_each, &k)) != CMPR_OK)
        return r;
    if ((c = take(s)) == NULL)
        return give(s, c, CMPR_ERR_STORE);
    p_int(&p, older_than);
    return give(s, c, command(s, c, Q_DEF_GC, &p, NULL));
}

const struct cmpr_store_ops cmpr_store_pg_ops = {
    .scheme = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .txn_insert = pg_txn_insert,
    .txn_update = pg_txn_update,
    .txn_set_state = pg_txn_set_state,
    .txn_get = pg_txn_get,
    .txn_list = pg_txn_list,
    .serial_reserve = pg_serial_reserve,
    .cert_put = pg_cert_put,
    .cert_get = pg_cert_get,
    .cert_set_status = pg_cert_set_status,
    .cert_list = pg_cert_list,
    .cert_list_revoked = pg_cert_list_revoked,
    .nonce_check = pg_nonce_check,
    .archive_put = pg_archive_put,
    .archive_list = pg_archive_list,
    .fwd_put = pg_fwd_put,
    .fwd_get = pg_fwd_get,
    .fwd_list = pg_fwd_list,
    .fwd_delete = pg_fwd_delete,
    .defer_put = pg_defer_put,
    .defer_get = pg_defer_get,
    .defer_list = pg_defer_list,
    .batch = pg_batch,
    .flush = pg_flush,
    .commit = pg_commit,
    .sync = pg_sync,
    .audit = pg_audit,
    .audit_list = pg_audit_list,
    .serial_list = pg_serial_list,
    .archive_all = pg_archive_all,
    .audit_at = pg_audit_at,
};

#else /* !HAVE_LIBPQ */

void
cmpr_store_pg_name(const char *conninfo, char *out, size_t cap)
{
    (void)conninfo;
    snprintf(out, cap, "postgresql");
}

static int
pg_open(const char *location, struct cmpr_store **st_r)
{
    (void)location;
    *st_r = NULL;
    cmpr_log_error("store: this cmprouterd was built without PostgreSQL (configure found no libpq)");
    return CMPR_ERR_CONFIG;
}

const struct cmpr_store_ops cmpr_store_pg_ops = {
    .scheme = "postgresql",
    .open = pg_open,
};

#endif

/* Here rather than in store.c: it needs the PostgreSQL half, and store.c's
 * backend table must not call into a backend (scripts/check-calls). */
void
cmpr_store_name(const char *spec, char *out, size_t cap)
{
    if (spec == NULL)
        spec = "";
    if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0)
        cmpr_store_pg_name(spec, out, cap);
    else if (strncmp(spec, "postgresql:", 11) == 0)
        cmpr_store_pg_name(spec + 11, out, cap);
    else
        snprintf(out, cap, "%s", spec);
}
