/* The embedded store: SQLite in WAL mode. Every change runs on one writer
 * connection inside an open transaction; the first caller that needs it
 * durable commits it for all the threads that wrote into it (group commit),
 * then makes it durable with one fdatasync of the WAL, outside the writer's
 * lock, so the next transaction fills while the disk works (pipelined group
 * commit: SQLite's own sync at COMMIT, synchronous=FULL, would hold every
 * writer for it). The core's answers on a loop leave that to its syncer
 * thread (commit hands a batch over, sync makes a token durable), so one
 * commit and one fsync serve every message handled meanwhile and no worker
 * waits for the disk. A commit is durable once its WAL frames are on disk;
 * SQLite still syncs around each checkpoint and when the WAL is reused
 * (synchronous=NORMAL). Checkpoints run on a thread and a connection of
 * their own, beside the writer; the commit after each finishes it, so the
 * WAL starts again from its beginning. Without a WAL file (an in-memory
 * store) synchronous=FULL stays. Reads run on connections of their own
 * from a pool and see committed data only, except a batching thread's:
 * after its own unflushed changes, or when it finds the writer free (whose
 * cache is warm; a reader's is dropped whenever the WAL changed), they run
 * on the writer. Statements are prepared once per connection. Every
 * connection opens the file through sqlite_vfs.c, which writes a commit's
 * WAL frames in one system call (SQLite makes two per frame). Runs on
 * worker threads only, never on the event loop. */
#include "core/store.h"
#include "core/sqlite_vfs.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One SQLite connection and the statements prepared on it, kept for its
 * life (looked up by the address of their SQL text: a string literal). */
#define STMT_CACHE 48

struct conn {
    sqlite3 *db;
    struct conn *next;                  /* the free list of readers */
    size_t n;
    struct {
        const char *sql;
        sqlite3_stmt *stmt;
    } cache[STMT_CACHE];
};

/* generations whose commit failed, remembered for their late waiters */
#define FAILED_RING 256

struct sqlite_store {
    struct cmpr_store base;             /* first: cast from struct cmpr_store */
    char *location;
    /* the one writer connection: every statement that changes anything runs
     * on it, inside the open transaction (generation open_gen); whoever
     * needs a generation durable commits it, for every thread that wrote
     * into it (group commit) */
    struct conn w;
    pthread_mutex_t wl;
    uint64_t open_gen;                  /* 0: no transaction open */
    uint64_t last_gen;                  /* the newest generation begun */
    uint64_t done_gen;                  /* every generation up to it is committed or failed */
    uint64_t failed[FAILED_RING];       /* failed generations, by gen % FAILED_RING */
    /* durability: generations up to synced_gen are on disk; one thread at a
     * time syncs the WAL (sl), for every generation committed before */
    pthread_mutex_t sl;
    uint64_t synced_gen;
    int wal_fd;                         /* -1: no WAL file, SQLite syncs at COMMIT */
    int sync_failed;                    /* an fdatasync failed: nothing is durable any more */
    /* checkpoints: on a thread and a connection of their own, so that no
     * writer waits while the WAL is copied back into the database (SQLite's
     * automatic checkpoint runs in the COMMIT of whoever crosses the
     * threshold, with the writer held) */
    pthread_t ck_thread;
    pthread_mutex_t ckl;
    pthread_cond_t ck_cond;
    int ck_running, ck_stop;
    int ck_frames;                      /* > 0: a pass is asked for or under way */
    int ck_passed;                      /* a pass is over, the writer is to finish it */
    /* readers: connections of their own, taken from and given back to a pool */
    pthread_mutex_t rl;
    struct conn *readers;
    unsigned long nonce_inserts;
};

/* The batch of the calling thread (store.h batch()): the store it batches
 * on, and the newest generation its answer depends on. */
static _Thread_local struct {
    struct sqlite_store *s;
    uint64_t need;
} batch_tl;

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
    /* the revoked and held ones only (a CRL's entries; the good ones are
     * not in it, so issuing writes nothing more) */
    "CREATE INDEX IF NOT EXISTS cert_revoked ON cert(status) WHERE status <> 0;"
    "CREATE TABLE IF NOT EXISTS archive (serial BLOB PRIMARY KEY, subject TEXT NOT NULL,"
    " client TEXT NOT NULL, envdata BLOB NOT NULL, created INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS archive_subject ON archive(subject);"
    "CREATE TABLE IF NOT EXISTS nonce (nonce BLOB PRIMARY KEY, seen INTEGER NOT NULL);"
    /* the window's pruning reads the oldest only (without it: the whole
     * table, an hour of nonces, every 1024 inserts, holding the writer) */
    "CREATE INDEX IF NOT EXISTS nonce_seen ON nonce(seen);"
    "CREATE TABLE IF NOT EXISTS audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, tid BLOB,"
    " who TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS fwd ("
    " tid BLOB PRIMARY KEY, route TEXT NOT NULL, state INTEGER NOT NULL, ver INTEGER NOT NULL,"
    " delayed INTEGER NOT NULL, client_body INTEGER NOT NULL, client_nonce BLOB, up_nonce BLOB,"
    " client TEXT NOT NULL, auth INTEGER NOT NULL, mac_kind INTEGER NOT NULL, key TEXT NOT NULL,"
    " batch TEXT NOT NULL, req BLOB, ans BLOB, last BLOB, last_nonce BLOB, err TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
    " next_try INTEGER NOT NULL, push TEXT NOT NULL,"
    " owner TEXT NOT NULL DEFAULT '', lease_until INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS deferred (ref INTEGER PRIMARY KEY, state INTEGER NOT NULL,"
    " req BLOB, answer BLOB, created INTEGER NOT NULL);";

/* what a store of an earlier schema version lacks; user_version says
 * which it has (0: just created with everything above) */
#define SCHEMA_VERSION 3
static const char *const upgrades[SCHEMA_VERSION + 1] = {
    [3] = "ALTER TABLE fwd ADD COLUMN owner TEXT NOT NULL DEFAULT '';"
          "ALTER TABLE fwd ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;",
};

static int
user_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int v = -1;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* brings a store of an earlier version up to SCHEMA_VERSION, one opener
 * at a time (the version is read again under the write lock) */
static int
upgrade(sqlite3 *db)
{
    int v = user_version(db);
    char set[64];

    if (v == SCHEMA_VERSION)
        return CMPR_OK;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return CMPR_ERR_STORE;
    v = user_version(db);
    if (v < 0 || v > SCHEMA_VERSION) {          /* unreadable, or newer than this program */
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return CMPR_ERR_STORE;
    }
    for (int k = v + 1; v > 0 && k <= SCHEMA_VERSION; k++)
        if (upgrades[k] != NULL && sqlite3_exec(db, upgrades[k], NULL, NULL, NULL) != SQLITE_OK) {
            (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return CMPR_ERR_STORE;
        }
    snprintf(set, sizeof(set), "PRAGMA user_version = %d", SCHEMA_VERSION);
    if (sqlite3_exec(db, set, NULL, NULL, NULL) != SQLITE_OK || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return CMPR_ERR_STORE;
    }
    return CMPR_OK;
}

#define S(st) ((struct sqlite_store *)(st))

static int
sq_err(int rc)
{
    if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT)
        return CMPR_ERR_EXISTS;
    return CMPR_ERR_STORE;
}

static int
conn_open(struct conn *c, const char *location, int reader)
{
    memset(c, 0, sizeof(*c));
    if (sqlite3_open_v2(location, &c->db, SQLITE_OPEN_READWRITE | (reader ? 0 : SQLITE_OPEN_CREATE)
                        | SQLITE_OPEN_NOMUTEX, cmpr_sqlite_vfs()) != SQLITE_OK)
        return CMPR_ERR_STORE;
    /* other processes (cmprouter process/admin next to the daemon) may hold
     * the write lock for a moment */
    sqlite3_busy_timeout(c->db, 10000);
    if (sqlite3_exec(c->db, reader ? "PRAGMA query_only=1;"
                     : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                     NULL, NULL, NULL) != SQLITE_OK)
        return CMPR_ERR_STORE;
    return CMPR_OK;
}

static void
conn_close(struct conn *c)
{
    for (size_t i = 0; i < c->n; i++)
        sqlite3_finalize(c->cache[i].stmt);
    c->n = 0;
    sqlite3_close(c->db);
    c->db = NULL;
}

/* Takes durability into the store's hands when the database has a WAL
 * file: its descriptor for fdatasync, commits without SQLite's sync.
 * Otherwise SQLite keeps syncing at each COMMIT. */
static void
wal_setup(struct sqlite_store *s)
{
    const char *fn = sqlite3_db_filename(s->w.db, "main");
    sqlite3_stmt *st = NULL;
    char path[4096];
    int wal = 0, fd;

    if (sqlite3_prepare_v2(s->w.db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK
            && sqlite3_step(st) == SQLITE_ROW)
        wal = sqlite3_column_text(st, 0) != NULL
              && strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (!wal || fn == NULL || *fn == '\0' || (size_t)snprintf(path, sizeof(path), "%s-wal", fn) >= sizeof(path))
        return;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        cmpr_log_warn("store %s: cannot open %s (%s): SQLite syncs each commit itself", s->location,
                      path, strerror(errno));
        return;
    }
    if (sqlite3_exec(s->w.db, "PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) != SQLITE_OK) {
        close(fd);
        return;
    }
    s->wal_fd = fd;
}

/* the WAL holds this many frames (about 4 MiB): time to copy them back */
#define CKPT_FRAMES 1000

/* After each commit on the writer (wl held): once the WAL has grown past
 * CKPT_FRAMES the checkpointer copies it back without holding anyone up;
 * after its pass, the next commit copies what came meanwhile (a few
 * frames) while nothing else is written, so that the checkpoint is complete
 * and the WAL starts again from its beginning at the next write (a WAL that
 * is never wholly copied back only grows). */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct sqlite_store *s = arg;
    int finish = 0;

    if (frames < CKPT_FRAMES)
        return SQLITE_OK;
    pthread_mutex_lock(&s->ckl);
    if (s->ck_frames == 0 && s->ck_passed) {
        s->ck_passed = 0;
        finish = 1;
    } else if (s->ck_frames == 0) {
        s->ck_frames = frames;
        pthread_cond_signal(&s->ck_cond);
    }
    pthread_mutex_unlock(&s->ckl);
    if (finish)
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

/* the checkpointer: a passive checkpoint (it never stops the writer nor
 * waits for readers; what it cannot copy yet waits for the next) each time
 * the WAL has grown past the threshold */
static void *
checkpointer(void *arg)
{
    struct sqlite_store *s = arg;
    sqlite3 *db = NULL;

    if (sqlite3_open_v2(s->location, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, cmpr_sqlite_vfs()) != SQLITE_OK)
        cmpr_log_warn("store %s: no connection for checkpoints (%s): the WAL grows until a restart",
                      s->location, db != NULL ? sqlite3_errmsg(db) : "out of memory");
    else
        sqlite3_busy_timeout(db, 10000);
    pthread_mutex_lock(&s->ckl);
    for (;;) {
        while (!s->ck_stop && s->ck_frames == 0)
            pthread_cond_wait(&s->ck_cond, &s->ckl);
        if (s->ck_stop)
            break;
        pthread_mutex_unlock(&s->ckl);
        if (db != NULL)
            (void)sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&s->ckl);
        s->ck_frames = 0;                   /* its pass is over: the writer finishes it */
        s->ck_passed = 1;
    }
    pthread_mutex_unlock(&s->ckl);
    sqlite3_close(db);
    return NULL;
}

/* checkpoints move to the checkpointer (only with a WAL file of ours) */
static void
ckpt_setup(struct sqlite_store *s)
{
    if (s->wal_fd < 0 || pthread_create(&s->ck_thread, NULL, checkpointer, s) != 0)
        return;
    s->ck_running = 1;
    sqlite3_wal_hook(s->w.db, wal_hook, s);
}

static int
sq_open(const char *location, struct cmpr_store **st_r)
{
    struct sqlite_store *s = calloc(1, sizeof(*s));

    *st_r = NULL;
    if (s == NULL)
        return CMPR_ERR_ALLOC;
    s->base.ops = &cmpr_store_sqlite_ops;
    if ((s->location = strdup(location)) == NULL) {
        free(s);
        return CMPR_ERR_ALLOC;
    }
    pthread_mutex_init(&s->wl, NULL);
    pthread_mutex_init(&s->rl, NULL);
    pthread_mutex_init(&s->sl, NULL);
    pthread_mutex_init(&s->ckl, NULL);
    pthread_cond_init(&s->ck_cond, NULL);
    s->wal_fd = -1;
    if (conn_open(&s->w, location, 0) != CMPR_OK
            || sqlite3_exec(s->w.db, schema, NULL, NULL, NULL) != SQLITE_OK || upgrade(s->w.db) != CMPR_OK) {
        if (s->w.db != NULL)
            fprintf(stderr, "cmprouter: store %s: %s\n", location, sqlite3_errmsg(s->w.db));
        s->base.ops->close(&s->base);
        return CMPR_ERR_STORE;
    }
    wal_setup(s);
    ckpt_setup(s);
    *st_r = &s->base;
    return CMPR_OK;
}

static void
sq_close(struct cmpr_store *st)
{
    struct sqlite_store *s = S(st);
    struct conn *c;

    if (batch_tl.s == s)
        batch_tl.s = NULL;
    if (s->ck_running) {
        pthread_mutex_lock(&s->ckl);
        s->ck_stop = 1;
        pthread_cond_signal(&s->ck_cond);
        pthread_mutex_unlock(&s->ckl);
        pthread_join(s->ck_thread, NULL);
    }
    while ((c = s->readers) != NULL) {
        s->readers = c->next;
        conn_close(c);
        free(c);
    }
    conn_close(&s->w);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    pthread_mutex_destroy(&s->wl);
    pthread_mutex_destroy(&s->rl);
    pthread_mutex_destroy(&s->sl);
    pthread_mutex_destroy(&s->ckl);
    pthread_cond_destroy(&s->ck_cond);

    free(s->location);
    free(s);
}

/* the statement for sql on c, prepared once and kept (reset after each use
 * by done()); NULL if it cannot be prepared */
static sqlite3_stmt *
prep_on(struct conn *c, const char *sql)
{
    sqlite3_stmt *stmt = NULL;

    for (size_t i = 0; i < c->n; i++)
        if (c->cache[i].sql == sql)
            return c->cache[i].stmt;
    if (sqlite3_prepare_v3(c->db, sql, -1, c->n < STMT_CACHE ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, NULL)
            != SQLITE_OK)
        return NULL;
    if (c->n < STMT_CACHE) {
        c->cache[c->n].sql = sql;
        c->cache[c->n++].stmt = stmt;
    }
    return stmt;
}

/* a statement is done with: kept statements are reset, others finalized */
static void
done(struct conn *c, sqlite3_stmt *stmt)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->cache[i].stmt == stmt) {
            sqlite3_reset(stmt);
            sqlite3_clear_bindings(stmt);
            return;
        }
    sqlite3_finalize(stmt);
}

/* ---------------- the writer and group commit ---------------- */

static int
gen_failed(const struct sqlite_store *s, uint64_t g)
{
    return s->failed[g % FAILED_RING] == g;
}

/* the open transaction is over without a commit (wl held) */
static void
gen_lost(struct sqlite_store *s)
{
    if (s->open_gen != 0) {
        s->failed[s->open_gen % FAILED_RING] = s->open_gen;
        __atomic_store_n(&s->done_gen, s->open_gen, __ATOMIC_RELEASE);
        s->open_gen = 0;
    }
}

/* Takes the writer for one change: a transaction is open (begun if none
 * was). 0 with wl held, or CMPR_ERR_STORE (wl released). */
static int
w_take(struct sqlite_store *s)
{
    pthread_mutex_lock(&s->wl);
    if (s->open_gen != 0)
        return CMPR_OK;
    if (sqlite3_exec(s->w.db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&s->wl);
        return CMPR_ERR_STORE;
    }
    s->open_gen = ++s->last_gen;
    return CMPR_OK;
}

/* Commits generation g unless it is over already (wl held). */
static void
commit_gen(struct sqlite_store *s, uint64_t g)
{
    if (s->done_gen >= g || s->open_gen != g)
        return;
    if (sqlite3_exec(s->w.db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
        __atomic_store_n(&s->done_gen, g, __ATOMIC_RELEASE);
        s->open_gen = 0;
        return;
    }
    if (!sqlite3_get_autocommit(s->w.db))
        (void)sqlite3_exec(s->w.db, "ROLLBACK", NULL, NULL, NULL);
    gen_lost(s);
}

/* Makes every generation committed up to g durable: one fdatasync of the
 * WAL for all committed before it began, while the writer goes on. After a
 * failed fdatasync nothing written since can be trusted to be on disk
 * (the kernel may have dropped the pages): every later answer that needs
 * durability gets an error until a restart. */
static int
w_sync(struct sqlite_store *s, uint64_t g)
{
    uint64_t top;
    int r = CMPR_OK;

    if (s->wal_fd < 0 || g == 0)
        return CMPR_OK;                 /* SQLite synced at COMMIT */
    pthread_mutex_lock(&s->sl);
    if (s->sync_failed) {
        r = CMPR_ERR_STORE;
    } else if (s->synced_gen < g) {
        top = __atomic_load_n(&s->done_gen, __ATOMIC_ACQUIRE);
        if (fdatasync(s->wal_fd) == 0) {
            s->synced_gen = top;
        } else {
            s->sync_failed = 1;
            cmpr_log_error("store %s: fdatasync of the WAL failed (%s): no change is durable any "
                           "more; check the disk and restart", s->location, strerror(errno));
            r = CMPR_ERR_STORE;
        }
    }
    pthread_mutex_unlock(&s->sl);
    return r;
}

/* Makes generation g durable (or learns that it was lost): CMPR_OK or
 * CMPR_ERR_STORE. The commit of one serves every thread that wrote into it;
 * so does the sync. */
static int
w_wait(struct sqlite_store *s, uint64_t g)
{
    int r;

    if (g == 0)
        return CMPR_OK;
    pthread_mutex_lock(&s->wl);
    commit_gen(s, g);
    r = gen_failed(s, g) ? CMPR_ERR_STORE : CMPR_OK;
    pthread_mutex_unlock(&s->wl);
    return r == CMPR_OK ? w_sync(s, g) : r;
}

/* Gives the writer back after one change whose result is r: unless the
 * thread batches, the change is made durable before this returns. */
static int
w_give(struct sqlite_store *s, int r)
{
    uint64_t g;

    /* some errors (disk full, I/O) roll the whole transaction back */
    if (s->open_gen != 0 && sqlite3_get_autocommit(s->w.db)) {
        gen_lost(s);
        r = CMPR_ERR_STORE;
    }
    g = s->open_gen != 0 ? s->open_gen : s->done_gen;
    pthread_mutex_unlock(&s->wl);
    if (batch_tl.s == s) {
        if (g > batch_tl.need)
            batch_tl.need = g;
        return r;
    }
    if (w_wait(s, g) != CMPR_OK && (r == CMPR_OK || r == CMPR_ERR_EXISTS || r == CMPR_ERR_CONFLICT
                                    || r == CMPR_ERR_NOT_FOUND))
        r = CMPR_ERR_STORE;
    return r;
}

static void
sq_batch(struct cmpr_store *st, int on)
{
    batch_tl.s = on ? S(st) : NULL;
    batch_tl.need = 0;
}

static int
sq_flush(struct cmpr_store *st)
{
    struct sqlite_store *s = S(st);
    uint64_t g = batch_tl.s == s ? batch_tl.need : 0;

    if (batch_tl.s == s)
        batch_tl.need = 0;
    if (g == 0)                         /* nothing written: what was read must be durable */
        return w_sync(s, __atomic_load_n(&s->done_gen, __ATOMIC_ACQUIRE));
    return w_wait(s, g);
}

/* flush without the wait: the generation this thread wrote into (or, when
 * it wrote nothing, the newest one committed: what it read) stays for the
 * syncer to commit with everything else written meanwhile */
static int
sq_commit(struct cmpr_store *st, uint64_t *token_r)
{
    struct sqlite_store *s = S(st);
    uint64_t g = batch_tl.s == s ? batch_tl.need : 0;

    *token_r = 0;
    if (batch_tl.s == s)
        batch_tl.need = 0;
    if (s->wal_fd < 0)                  /* SQLite syncs at COMMIT: now */
        return w_wait(s, g);
    if (g == 0)
        g = __atomic_load_n(&s->done_gen, __ATOMIC_ACQUIRE);
    /* whether it is lost shows in sync; no lock here (the syncer holds
     * them while it commits and syncs) */
    *token_r = g;
    return CMPR_OK;
}

static int
sq_sync(struct cmpr_store *st, uint64_t token)
{
    return w_wait(S(st), token);
}

/* ---------------- readers ---------------- */

/* A connection to read on: the writer's while this thread's batch has
 * changes not yet committed (it must see its own), or when a batching
 * thread finds it free (its pages are cached: a reader's cache is dropped
 * whenever the WAL changed; what it reads there may be another thread's
 * change not yet committed, so the batch's answer then waits for that
 * generation too), else a reader of the pool (committed data only). NULL
 * if none can be opened. */
static struct conn *
r_take(struct sqlite_store *s)
{
    struct conn *c;

    if (batch_tl.s == s && batch_tl.need != 0) {
        pthread_mutex_lock(&s->wl);
        if (s->done_gen < batch_tl.need)
            return &s->w;
        pthread_mutex_unlock(&s->wl);
    }
    if (batch_tl.s == s && pthread_mutex_trylock(&s->wl) == 0) {
        if (s->open_gen > batch_tl.need)
            batch_tl.need = s->open_gen;
        return &s->w;
    }
    pthread_mutex_lock(&s->rl);
    if ((c = s->readers) != NULL)
        s->readers = c->next;
    pthread_mutex_unlock(&s->rl);
    if (c != NULL)
        return c;
    if ((c = malloc(sizeof(*c))) == NULL)
        return NULL;
    if (conn_open(c, s->location, 1) != CMPR_OK) {
        conn_close(c);
        free(c);
        return NULL;
    }
    return c;
}

static void
r_give(struct sqlite_store *s, struct conn *c)
{
    if (c == &s->w) {
        pthread_mutex_unlock(&s->wl);
        return;
    }
    pthread_mutex_lock(&s->rl);
    c->next = s->readers;
    s->readers = c;
    pthread_mutex_unlock(&s->rl);
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
run(struct conn *c, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    int r = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? CMPR_OK : sq_err(rc);

    done(c, stmt);
    return r;
}

static int
sq_txn_insert(struct cmpr_store *st, const struct cmpr_txn_rec *t)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    q = prep_on(&s->w, "INSERT INTO txn(tid, sender, state, req_type, client, profile, last_nonce,"
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
        r = run(&s->w, q);
    }
    return w_give(s, r);
}

/* no row changed: was it gone, or moved on by someone else? */
static int
no_change(struct sqlite_store *s, const struct cmpr_txn_rec *t)
{
    sqlite3_stmt *q = prep_on(&s->w, "SELECT 1 FROM txn WHERE tid=?");
    int r = CMPR_ERR_STORE;

    if (q != NULL) {
        bind_blob(q, 1, t->tid, t->tid_len);
        r = sqlite3_step(q) == SQLITE_ROW ? CMPR_ERR_CONFLICT : CMPR_ERR_NOT_FOUND;
        done(&s->w, q);
    }
    return r;
}

static int
sq_txn_update(struct cmpr_store *st, const struct cmpr_txn_rec *t)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    /* The row moves to the end of the table (a new rowid; nothing refers
     * to it, the tid is the key). Rewritten in place, a row that shrinks
     * (the ip kept for a retransmission, about 2 KB, then the pkiConf)
     * keeps the page it grew to, since SQLite rebalances a page on a delete
     * and not on an update: a 4 KiB page per transaction for good. Moved,
     * the emptied pages are reused and the rows lie packed in the order
     * they were last written (test_txn_rows_packed). */
    q = prep_on(&s->w, "UPDATE txn SET rowid=(SELECT max(rowid) + 1 FROM txn), state=?, client=?, profile=?,"
             " last_nonce=?, serial=?, response=?, updated=?, expires=?, req_nonce=?, note=?"
             " WHERE tid=? AND state=?");
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
        r = run(&s->w, q);
        if (r == CMPR_OK && sqlite3_changes(s->w.db) == 0)
            r = no_change(s, t);
    }
    return w_give(s, r);
}

static int
sq_txn_set_state(struct cmpr_store *st, const struct cmpr_txn_rec *t)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    q = prep_on(&s->w, "UPDATE txn SET state=?, serial=?, note=?, updated=? WHERE tid=? AND state=?");
    if (q != NULL) {
        sqlite3_bind_int(q, 1, t->state);
        bind_blob(q, 2, t->serial, t->serial_len);
        sqlite3_bind_text(q, 3, t->note, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 4, t->updated);
        bind_blob(q, 5, t->tid, t->tid_len);
        sqlite3_bind_int(q, 6, t->read_state);
        r = run(&s->w, q);
        if (r == CMPR_OK && sqlite3_changes(s->w.db) == 0)
            r = no_change(s, t);
    }
    return w_give(s, r);
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
    struct conn *c;
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE, rc;

    if ((c = r_take(s)) == NULL)
        return CMPR_ERR_STORE;
    if ((q = prep_on(c, sql)) != NULL) {
        bind_blob(q, 1, key, len);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            r = row(q, out);
        else
            r = rc == SQLITE_DONE ? CMPR_ERR_NOT_FOUND : CMPR_ERR_STORE;
        done(c, q);
    }
    r_give(s, c);
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
    struct conn *c;
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    struct cmpr_txn_rec t;
    int r = CMPR_ERR_STORE, rc;

    if ((c = r_take(s)) == NULL)
        return CMPR_ERR_STORE;
    q = prep_on(c, state < 0 ? "SELECT " TXN_COLS " FROM txn ORDER BY created, tid"
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
        done(c, q);
    }
    r_give(s, c);
    return r;
}

static int
sq_serial_reserve(struct cmpr_store *st, const unsigned char *serial, size_t len)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    if ((q = prep_on(&s->w, "INSERT INTO serial(serial) VALUES(?)")) != NULL) {
        bind_blob(q, 1, serial, len);
        r = run(&s->w, q);
    }
    return w_give(s, r);
}

static int
sq_cert_put(struct cmpr_store *st, const struct cmpr_cert_rec *c)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    q = prep_on(&s->w, "INSERT INTO cert(serial, issuer, subject, not_before, not_after, status,"
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
        r = run(&s->w, q);
    }
    return w_give(s, r);
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

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    q = prep_on(&s->w, "UPDATE cert SET status=?, revoked_at=?, reason=?, confirmed=? WHERE serial=?");
    if (q != NULL) {
        sqlite3_bind_int(q, 1, status);
        sqlite3_bind_int64(q, 2, when);
        sqlite3_bind_int(q, 3, reason);
        sqlite3_bind_int(q, 4, confirmed);
        bind_blob(q, 5, serial, len);
        r = run(&s->w, q);
        if (r == CMPR_OK && sqlite3_changes(s->w.db) == 0)
            r = CMPR_ERR_NOT_FOUND;
    }
    return w_give(s, r);
}

static int
cert_list_by(struct sqlite_store *s, const char *sql, int (*cb)(const struct cmpr_cert_rec *rec, void *arg),
             void *arg)
{
    struct conn *c;
    sqlite3_stmt *q;
    struct cmpr_cert_rec rec;
    int r = CMPR_ERR_STORE;

    if ((c = r_take(s)) == NULL)
        return CMPR_ERR_STORE;
    if ((q = prep_on(c, sql)) != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && sqlite3_step(q) == SQLITE_ROW) {
            if ((r = cert_row(q, &rec)) != CMPR_OK)
                break;
            r = cb(&rec, arg);
            cmpr_cert_rec_clear(&rec);
        }
        done(c, q);
    }
    r_give(s, c);
    return r;
}

static int
sq_cert_list(struct cmpr_store *st, int (*cb)(const struct cmpr_cert_rec *rec, void *arg),
             void *arg)
{
    return cert_list_by(S(st), "SELECT " CERT_COLS " FROM cert ORDER BY not_before, serial", cb, arg);
}

static int
sq_cert_list_revoked(struct cmpr_store *st, int (*cb)(const struct cmpr_cert_rec *rec, void *arg),
                     void *arg)
{
    return cert_list_by(S(st), "SELECT " CERT_COLS " FROM cert WHERE status <> 0 ORDER BY status, serial",
                        cb, arg);
}

static int
sq_nonce_check(struct cmpr_store *st, const unsigned char *nonce, size_t len,
               int64_t now, int64_t window)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    /* insert, or refresh an entry that has aged out of the window; no row
     * changed means the nonce was seen within the window: a replay */
    q = prep_on(&s->w, "INSERT INTO nonce(nonce, seen) VALUES(?, ?) ON CONFLICT(nonce)"
             " DO UPDATE SET seen = excluded.seen WHERE nonce.seen < ?");
    if (q != NULL) {
        bind_blob(q, 1, nonce, len);
        sqlite3_bind_int64(q, 2, now);
        sqlite3_bind_int64(q, 3, now - window);
        r = run(&s->w, q);
        if (r == CMPR_OK && sqlite3_changes(s->w.db) == 0)
            r = CMPR_ERR_EXISTS;
    }
    /* keep the table to the window's worth of nonces */
    if (r == CMPR_OK && ++s->nonce_inserts % 1024 == 0
            && (q = prep_on(&s->w, "DELETE FROM nonce WHERE seen < ?")) != NULL) {
        sqlite3_bind_int64(q, 1, now - window);
        (void)run(&s->w, q);
    }
    return w_give(s, r);
}

static int
sq_archive_put(struct cmpr_store *st, const unsigned char *serial, size_t len,
               const char *subject, const char *client, const unsigned char *env, size_t envlen)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    q = prep_on(&s->w, "INSERT INTO archive(serial, subject, client, envdata, created) VALUES(?,?,?,?,?)");
    if (q != NULL) {
        bind_blob(q, 1, serial, len);
        sqlite3_bind_text(q, 2, subject, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, client != NULL ? client : "", -1, SQLITE_TRANSIENT);
        bind_blob(q, 4, env, envlen);
        sqlite3_bind_int64(q, 5, (int64_t)time(NULL));
        r = run(&s->w, q);
    }
    return w_give(s, r);
}

static int
sq_archive_list(struct cmpr_store *st, const char *subject,
                int (*cb)(const unsigned char *serial, size_t len, const char *client,
                          const unsigned char *envdata, size_t envdata_len, void *arg),
                void *arg)
{
    struct conn *c;
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if ((c = r_take(s)) == NULL)
        return CMPR_ERR_STORE;
    q = prep_on(c, "SELECT serial, client, envdata FROM archive WHERE subject=? ORDER BY created");
    if (q != NULL) {
        sqlite3_bind_text(q, 1, subject, -1, SQLITE_TRANSIENT);
        r = CMPR_OK;
        while (r == CMPR_OK && sqlite3_step(q) == SQLITE_ROW)
            r = cb(sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0),
                   (const char *)sqlite3_column_text(q, 1), sqlite3_column_blob(q, 2),
                   (size_t)sqlite3_column_bytes(q, 2), arg);
        done(c, q);
    }
    r_give(s, c);
    return r;
}

static int
sq_audit_at(struct cmpr_store *st, int64_t when, const unsigned char *tid, size_t tid_len,
            const char *who, const char *event, const char *detail)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    q = prep_on(&s->w, "INSERT INTO audit(at, tid, who, event, detail) VALUES(?,?,?,?,?)");
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, when);
        bind_blob(q, 2, tid, tid_len);
        sqlite3_bind_text(q, 3, who != NULL ? who : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 4, event != NULL ? event : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 5, detail != NULL ? detail : "", -1, SQLITE_TRANSIENT);
        r = run(&s->w, q);
    }
    return w_give(s, r);
}

static int
sq_audit(struct cmpr_store *st, const unsigned char *tid, size_t tid_len,
         const char *who, const char *event, const char *detail)
{
    return sq_audit_at(st, (int64_t)time(NULL), tid, tid_len, who, event, detail);
}

static int
sq_serial_list(struct cmpr_store *st, int (*cb)(const unsigned char *serial, size_t len, void *arg),
               void *arg)
{
    struct conn *c;
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if ((c = r_take(s)) == NULL)
        return CMPR_ERR_STORE;
    if ((q = prep_on(c, "SELECT serial FROM serial ORDER BY serial")) != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && sqlite3_step(q) == SQLITE_ROW)
            r = cb(sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0), arg);
        done(c, q);
    }
    r_give(s, c);
    return r;
}

static int
sq_archive_all(struct cmpr_store *st,
               int (*cb)(const unsigned char *serial, size_t len, const char *subject, const char *client,
                         const unsigned char *envdata, size_t envdata_len, void *arg),
               void *arg)
{
    struct conn *c;
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if ((c = r_take(s)) == NULL)
        return CMPR_ERR_STORE;
    if ((q = prep_on(c, "SELECT serial, subject, client, envdata FROM archive ORDER BY created, serial")) != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && sqlite3_step(q) == SQLITE_ROW)
            r = cb(sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0),
                   (const char *)sqlite3_column_text(q, 1), (const char *)sqlite3_column_text(q, 2),
                   sqlite3_column_blob(q, 3), (size_t)sqlite3_column_bytes(q, 3), arg);
        done(c, q);
    }
    r_give(s, c);
    return r;
}

static int
sq_audit_list(struct cmpr_store *st,
              int (*cb)(int64_t when, const char *tid_hex, const char *who,
                        const char *event, const char *detail, void *arg),
              void *arg)
{
    struct conn *c;
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if ((c = r_take(s)) == NULL)
        return CMPR_ERR_STORE;
    q = prep_on(c, "SELECT at, lower(hex(tid)), who, event, detail FROM audit ORDER BY id");
    if (q != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && sqlite3_step(q) == SQLITE_ROW)
            r = cb(sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1),
                   (const char *)sqlite3_column_text(q, 2),
                   (const char *)sqlite3_column_text(q, 3),
                   (const char *)sqlite3_column_text(q, 4), arg);
        done(c, q);
    }
    r_give(s, c);
    return r;
}

/* ---------------- forwarded requests ---------------- */

#define FWD_COLS "tid, route, state, ver, delayed, client_body, client_nonce, up_nonce, client," \
                 " auth, mac_kind, key, batch, req, ans, last, last_nonce, err, attempts, created," \
                 " updated, next_try, push, owner, lease_until"

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
    sqlite3_bind_text(q, 24, f->owner, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 25, f->lease_until);
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
    col_text(q, 23, f->owner, sizeof(f->owner));
    f->lease_until = sqlite3_column_int64(q, 24);
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

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    if (f->ver == 0)
        q = prep_on(&s->w, "INSERT INTO fwd(" FWD_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    else
        q = prep_on(&s->w, "UPDATE fwd SET tid=?1, route=?2, state=?3, ver=?4, delayed=?5, client_body=?6,"
                 " client_nonce=?7, up_nonce=?8, client=?9, auth=?10, mac_kind=?11, key=?12, batch=?13,"
                 " req=?14, ans=?15, last=?16, last_nonce=?17, err=?18, attempts=?19, created=?20,"
                 " updated=?21, next_try=?22, push=?23, owner=?24, lease_until=?25 WHERE tid=?1 AND ver=?26");
    if (q != NULL) {
        fwd_bind(q, f, f->ver + 1);
        if (f->ver != 0)
            sqlite3_bind_int64(q, 26, f->ver);
        r = run(&s->w, q);
        if (r == CMPR_OK && f->ver != 0 && sqlite3_changes(s->w.db) == 0)
            r = CMPR_ERR_CONFLICT;
        if (r == CMPR_OK) {
            f->ver++;
            f->read_state = f->state;
        }
    }
    return w_give(s, r);
}

static int
sq_fwd_get(struct cmpr_store *st, const unsigned char *tid, size_t tid_len, struct cmpr_fwd_rec *rec_r)
{
    return get_one(S(st), "SELECT " FWD_COLS " FROM fwd WHERE tid=?", tid, tid_len, fwd_row_v, rec_r);
}

static int
sq_fwd_list(struct cmpr_store *st, int all, struct cmpr_fwd_rec **recs_r, size_t *n_r)
{
    struct conn *c;
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    struct cmpr_fwd_rec *v = NULL;
    size_t n = 0, cap = 0;
    int r = CMPR_ERR_STORE, rc;

    *recs_r = NULL;
    *n_r = 0;
    if ((c = r_take(s)) == NULL)
        return CMPR_ERR_STORE;
    q = prep_on(c, all ? "SELECT " FWD_COLS " FROM fwd ORDER BY created, tid"
                    : "SELECT " FWD_COLS " FROM fwd WHERE state<>4 ORDER BY created, tid");
    if (q != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            if ((r = cmpr_array_grow(&v, &cap, n + 1, sizeof(*v), SIZE_MAX / sizeof(*v))) != CMPR_OK)
                break;
            if ((r = fwd_row(q, &v[n])) == CMPR_OK)
                n++;
        }
        done(c, q);
    }
    r_give(s, c);
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

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    if ((q = prep_on(&s->w, "DELETE FROM fwd WHERE tid=?")) != NULL) {
        bind_blob(q, 1, tid, tid_len);
        r = run(&s->w, q);
    }
    return w_give(s, r);
}

static int
sq_defer_put(struct cmpr_store *st, struct cmpr_defer_rec *d)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    if (d->read_state < 0)
        q = prep_on(&s->w, "INSERT INTO deferred(ref, state, req, answer, created) VALUES(?1,?2,?3,?4,?5)");
    else
        q = prep_on(&s->w, "UPDATE deferred SET state=?2, answer=?4 WHERE ref=?1 AND state=?6");
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
        r = run(&s->w, q);
        if (r == CMPR_OK && d->read_state >= 0 && sqlite3_changes(s->w.db) == 0)
            r = CMPR_ERR_CONFLICT;
        if (r == CMPR_OK)
            d->read_state = d->state;
    }
    return w_give(s, r);
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
    struct conn *c;
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE, rc;

    if ((c = r_take(s)) == NULL)
        return CMPR_ERR_STORE;
    if ((q = prep_on(c, "SELECT ref, state, req, answer, created FROM deferred WHERE ref=?")) != NULL) {
        sqlite3_bind_int64(q, 1, ref);
        rc = sqlite3_step(q);
        r = rc == SQLITE_ROW ? defer_row(q, d_r) : rc == SQLITE_DONE ? CMPR_ERR_NOT_FOUND : CMPR_ERR_STORE;
        done(c, q);
    }
    r_give(s, c);
    return r;
}

static int
sq_defer_list(struct cmpr_store *st, int64_t older_than,
              int (*cb)(const struct cmpr_defer_rec *rec, void *arg), void *arg)
{
    struct sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int r = CMPR_ERR_STORE, rc;

    if (w_take(s) != CMPR_OK)
        return CMPR_ERR_STORE;
    if ((q = prep_on(&s->w, "SELECT ref, state, req, answer, created FROM deferred ORDER BY created")) != NULL) {
        r = CMPR_OK;
        while (r == CMPR_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            struct cmpr_defer_rec d;

            if ((r = defer_row(q, &d)) == CMPR_OK && d.created >= older_than)
                r = cb(&d, arg);
            cmpr_defer_rec_clear(&d);
        }
        done(&s->w, q);
    }
    if (r == CMPR_OK && (q = prep_on(&s->w, "DELETE FROM deferred WHERE created < ?")) != NULL) {
        sqlite3_bind_int64(q, 1, older_than);
        r = run(&s->w, q);
    }
    return w_give(s, r);
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
    .cert_list_revoked = sq_cert_list_revoked,
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
    .batch = sq_batch,
    .flush = sq_flush,
    .commit = sq_commit,
    .sync = sq_sync,
    .audit = sq_audit,
    .audit_list = sq_audit_list,
    .serial_list = sq_serial_list,
    .archive_all = sq_archive_all,
    .audit_at = sq_audit_at,
};
