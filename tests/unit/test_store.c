/* The stores (core/store_sqlite.c; core/store_pg.c when CMPR_TEST_STORE
 * names a PostgreSQL, as tests/integration/pg.sh does): unique
 * transactionIDs, serials never reused, nonce replay window, certificates
 * and revocation, the audit log, reopening after close and after kill -9,
 * concurrent writers, two openers (two nodes) racing for one record, group
 * commit (batches: seen by their own thread at once, by others and on disk
 * only after flush; a lost commit is reported). SQLite alone: a failed
 * fdatasync of the WAL fails the flush and every durable change after it.
 * PostgreSQL alone: a connection cut under the store costs the call it
 * hits, then the store reconnects. */
#include "testutil.h"

#include <sqlite3.h>
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "core/store.h"
#include "core/sqlite_vfs.h"

static char dbpath[1024];               /* the store spec: an SQLite file or "postgresql:..." */
static char dbdir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dbdir, sizeof(dbdir), "/tmp/cmpr-store-XXXXXX");
    assert_non_null(mkdtemp(dbdir));
    snprintf(dbpath, sizeof(dbpath), "%s/test.db", dbdir);
    return 0;
}

#ifdef HAVE_LIBPQ
/* the connection string of the PostgreSQL under test */
static const char *
pg_conninfo(void)
{
    return dbpath + strlen("postgresql:");
}

/* runs one SQL command on its own connection; 0 when it worked */
static int
pg_exec(const char *q)
{
    PGconn *pg = PQconnectdb(pg_conninfo());
    PGresult *res = PQexec(pg, q);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok)
        fprintf(stderr, "%s: %s\n", q, PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
    return ok ? 0 : -1;
}

/* an empty database: the store migrates it from nothing */
static int
setup_pg(void **state)
{
    (void)state;
    snprintf(dbpath, sizeof(dbpath), "%s", getenv("CMPR_TEST_STORE"));
    return pg_exec("DROP TABLE IF EXISTS txn, serial, cert, archive, nonce, audit, fwd, deferred,"
                   " cmprouter_schema CASCADE; DROP FUNCTION IF EXISTS boom() CASCADE");
}

static int
teardown_pg(void **state)
{
    (void)state;
    return 0;
}
#endif

static int
teardown(void **state)
{
    (void)state;
    tu_rmrf(dbdir);
    return 0;
}

static struct cmpr_store *
open_store(void)
{
    struct cmpr_store *st = NULL;

    assert_int_equal(cmpr_store_open(dbpath, &st), CMPR_OK);
    return st;
}

static void
make_txn(struct cmpr_txn_rec *t, unsigned char id, int state)
{
    memset(t, 0, sizeof(*t));
    memset(t->tid, id, 16);
    t->tid_len = 16;
    snprintf(t->sender, sizeof(t->sender), "CN=client %u", id);
    t->state = state;
    t->req_type = 0;
    snprintf(t->client, sizeof(t->client), "c%u", id);
    t->created = t->updated = 1700000000 + id;
}

static void
test_txn_unique_and_update(void **state)
{
    struct cmpr_store *st = open_store();
    struct cmpr_txn_rec t, got;
    static unsigned char req[] = { 0x30, 0x00 };
    (void)state;

    make_txn(&t, 1, CMPR_TXN_RECEIVED);
    t.request = req;
    t.request_len = sizeof(req);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    /* RFC 9810 5.1.1: a transactionID in use cannot open another transaction */
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_ERR_EXISTS);
    assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &got), CMPR_OK);
    assert_int_equal(got.state, CMPR_TXN_RECEIVED);
    assert_string_equal(got.sender, "CN=client 1");
    assert_int_equal(got.request_len, 2);
    assert_memory_equal(got.request, req, 2);
    cmpr_txn_rec_clear(&got);
    t.request = NULL;
    t.request_len = 0;
    t.state = CMPR_TXN_ISSUED;
    memset(t.serial, 0x42, 8);
    t.serial_len = 8;
    assert_int_equal(st->ops->txn_update(st, &t), CMPR_OK);
    assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &got), CMPR_OK);
    assert_int_equal(got.state, CMPR_TXN_ISSUED);
    assert_int_equal(got.serial_len, 8);
    cmpr_txn_rec_clear(&got);
    /* optimistic locking: a record read before someone else moved the
     * transaction on is refused (CMPR_ERR_CONFLICT), for a full update and
     * for the operator's narrow one */
    {
        struct cmpr_txn_rec a, b;

        assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &a), CMPR_OK);
        assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &b), CMPR_OK);
        a.state = CMPR_TXN_CONFIRMED;
        assert_int_equal(st->ops->txn_set_state(st, &a), CMPR_OK);
        b.last_nonce_len = 4;
        assert_int_equal(st->ops->txn_update(st, &b), CMPR_ERR_CONFLICT);
        assert_int_equal(st->ops->txn_set_state(st, &b), CMPR_ERR_CONFLICT);
        cmpr_txn_rec_clear(&a);
        cmpr_txn_rec_clear(&b);
    }
    make_txn(&t, 2, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_update(st, &t), CMPR_ERR_NOT_FOUND);
    assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &got), CMPR_ERR_NOT_FOUND);
    cmpr_store_close(st);
}

static int
count_cb(const struct cmpr_txn_rec *rec, void *arg)
{
    (void)rec;
    (*(int *)arg)++;
    return CMPR_OK;
}

static void
test_txn_list_by_state(void **state)
{
    struct cmpr_store *st = open_store();
    struct cmpr_txn_rec t;
    int n = 0;
    (void)state;

    for (unsigned char i = 10; i < 15; i++) {
        make_txn(&t, i, i % 2 ? CMPR_TXN_PENDING_APPROVAL : CMPR_TXN_CONFIRMED);
        assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    }
    assert_int_equal(st->ops->txn_list(st, CMPR_TXN_PENDING_APPROVAL, count_cb, &n), CMPR_OK);
    assert_int_equal(n, 2);
    cmpr_store_close(st);
}

static void
test_serial_never_reused(void **state)
{
    struct cmpr_store *st = open_store();
    unsigned char serial[16];
    (void)state;

    memset(serial, 0x7a, sizeof(serial));
    assert_int_equal(st->ops->serial_reserve(st, serial, sizeof(serial)), CMPR_OK);
    assert_int_equal(st->ops->serial_reserve(st, serial, sizeof(serial)), CMPR_ERR_EXISTS);
    cmpr_store_close(st);
    /* not even after a restart */
    st = open_store();
    assert_int_equal(st->ops->serial_reserve(st, serial, sizeof(serial)), CMPR_ERR_EXISTS);
    cmpr_store_close(st);
}

static void
test_cert_and_revocation(void **state)
{
    struct cmpr_store *st = open_store();
    struct cmpr_cert_rec c, got;
    static unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
    (void)state;

    memset(&c, 0, sizeof(c));
    memset(c.serial, 0x11, 9);
    c.serial_len = 9;
    snprintf(c.subject, sizeof(c.subject), "CN=leaf");
    snprintf(c.issuer, sizeof(c.issuer), "CN=CA");
    c.not_before = 1700000000;
    c.not_after = 1800000000;
    c.reason = -1;
    c.der = der;
    c.der_len = sizeof(der);
    assert_int_equal(st->ops->cert_put(st, &c), CMPR_OK);
    assert_int_equal(st->ops->cert_put(st, &c), CMPR_ERR_EXISTS);
    assert_int_equal(st->ops->cert_set_status(st, c.serial, c.serial_len, CMPR_CERT_REVOKED,
                                              1750000000, 1, 1), CMPR_OK);
    cmpr_store_close(st);
    st = open_store();
    assert_int_equal(st->ops->cert_get(st, c.serial, c.serial_len, &got), CMPR_OK);
    assert_int_equal(got.status, CMPR_CERT_REVOKED);
    assert_int_equal(got.reason, 1);
    assert_int_equal(got.revoked_at, 1750000000);
    assert_true(got.confirmed);
    assert_int_equal(got.der_len, sizeof(der));
    cmpr_cert_rec_clear(&got);
    assert_int_equal(st->ops->cert_get(st, (const unsigned char *)"x", 1, &got), CMPR_ERR_NOT_FOUND);
    cmpr_store_close(st);
}

static int
count_status_cb(const struct cmpr_cert_rec *rec, void *arg)
{
    int *n = arg;

    if (rec->serial_len != 10 || rec->serial[0] != 0x5c)
        return CMPR_OK;                 /* another test's */
    if (rec->status == CMPR_CERT_VALID)
        n[1]++;
    else
        n[0]++;
    return CMPR_OK;
}

/* A CRL's entries come from the revoked and held certificates only
 * (cert_list_revoked, by an index), not from a read of the whole store:
 * 40 certificates, 3 revoked and 1 on hold, one revoked then put back. */
static void
test_cert_list_revoked(void **state)
{
    struct cmpr_store *st = open_store();
    struct cmpr_cert_rec c;
    static unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x07 };
    int n[2] = { 0, 0 };
    (void)state;

    memset(&c, 0, sizeof(c));
    snprintf(c.subject, sizeof(c.subject), "CN=crl");
    snprintf(c.issuer, sizeof(c.issuer), "CN=CA");
    c.not_before = 1700000000;
    c.not_after = 1800000000;
    c.reason = -1;
    c.der = der;
    c.der_len = sizeof(der);
    c.serial_len = 10;
    for (int i = 0; i < 40; i++) {
        memset(c.serial, 0x5c, 10);
        c.serial[9] = (unsigned char)i;
        assert_int_equal(st->ops->cert_put(st, &c), CMPR_OK);
    }
    for (int i = 0; i < 5; i++) {
        c.serial[9] = (unsigned char)(i * 7);
        assert_int_equal(st->ops->cert_set_status(st, c.serial, 10, i == 4 ? CMPR_CERT_ON_HOLD : CMPR_CERT_REVOKED,
                                                  1750000000, 1, 1), CMPR_OK);
    }
    c.serial[9] = 0;                    /* taken off again (removeFromCRL) */
    assert_int_equal(st->ops->cert_set_status(st, c.serial, 10, CMPR_CERT_VALID, 0, 0, 1), CMPR_OK);
    assert_int_equal(st->ops->cert_list_revoked(st, count_status_cb, n), CMPR_OK);
    if (n[0] != 4 || n[1] != 0)
        fail_msg("cert_list_revoked: %d revoked or held, %d good (4 and 0 expected)", n[0], n[1]);
    n[0] = n[1] = 0;
    assert_int_equal(st->ops->cert_list(st, count_status_cb, n), CMPR_OK);
    assert_int_equal(n[0], 4);
    assert_int_equal(n[1], 36);
    cmpr_store_close(st);
}

static void
test_nonce_replay_window(void **state)
{
    struct cmpr_store *st = open_store();
    unsigned char nonce[16];
    (void)state;

    memset(nonce, 0x33, sizeof(nonce));
    assert_int_equal(st->ops->nonce_check(st, nonce, 16, 1000, 300), CMPR_OK);
    assert_int_equal(st->ops->nonce_check(st, nonce, 16, 1100, 300), CMPR_ERR_EXISTS);
    assert_int_equal(st->ops->nonce_check(st, nonce, 16, 1299, 300), CMPR_ERR_EXISTS);
    /* outside the window the nonce is fresh again */
    assert_int_equal(st->ops->nonce_check(st, nonce, 16, 1301, 300), CMPR_OK);
    assert_int_equal(st->ops->nonce_check(st, nonce, 16, 1302, 300), CMPR_ERR_EXISTS);
    cmpr_store_close(st);
}

static int
audit_cb(int64_t when, const char *tid_hex, const char *who, const char *event,
         const char *detail, void *arg)
{
    (void)when;
    (void)who;
    (void)detail;
    if (strcmp(event, "issued") == 0 && strcmp(tid_hex, "0102") == 0)
        (*(int *)arg)++;
    return CMPR_OK;
}

static void
test_audit_log(void **state)
{
    struct cmpr_store *st = open_store();
    static const unsigned char tid[] = { 1, 2 };
    int n = 0;
    (void)state;

    assert_int_equal(st->ops->audit(st, tid, 2, "client a", "issued", "serial 01"), CMPR_OK);
    assert_int_equal(st->ops->audit(st, tid, 2, "client a", "confirmed", ""), CMPR_OK);
    assert_int_equal(st->ops->audit_list(st, audit_cb, &n), CMPR_OK);
    assert_int_equal(n, 1);
    cmpr_store_close(st);
}

/* Runs writes() on the store in a child process, which is killed with -9
 * as soon as they returned 0 (a child that cannot do them fails the test). */
static void
run_then_kill9(int (*writes)(struct cmpr_store *st))
{
    int pipefd[2];
    pid_t pid;
    char c;

    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct cmpr_store *cst = NULL;
        int r;

        if (cmpr_store_open(dbpath, &cst) != CMPR_OK)
            _exit(1);
        if ((r = writes(cst)) != 0)
            _exit(r);
        (void)write(pipefd[1], "k", 1);
        for (;;)
            pause();
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &c, 1), 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(pipefd[0]);
}

static int
insert_99(struct cmpr_store *st)
{
    struct cmpr_txn_rec t;

    make_txn(&t, 99, CMPR_TXN_ISSUED);
    return st->ops->txn_insert(st, &t) == CMPR_OK ? 0 : 2;
}

/* the state of transaction id as a new opener of the store finds it, or -1 */
static int
stored_state(unsigned char id)
{
    struct cmpr_store *st = open_store();
    struct cmpr_txn_rec t, got;
    int state = -1;

    make_txn(&t, id, 0);
    if (st->ops->txn_get(st, t.tid, t.tid_len, &got) == CMPR_OK) {
        state = got.state;
        cmpr_txn_rec_clear(&got);
    }
    cmpr_store_close(st);
    return state;
}

/* A write that returned CMPR_OK survives kill -9 of the writer. */
static void
test_durable_across_kill9(void **state)
{
    (void)state;

    run_then_kill9(insert_99);
    assert_int_equal(stored_state(99), CMPR_TXN_ISSUED);
}

struct writer {
    struct cmpr_store *st;
    int id;
    int failures;
};

static void *
writer_main(void *arg)
{
    struct writer *w = arg;

    for (int i = 0; i < 25; i++) {
        struct cmpr_txn_rec t;
        unsigned char nonce[16];

        memset(&t, 0, sizeof(t));
        t.tid[0] = (unsigned char)w->id;
        t.tid[1] = (unsigned char)i;
        t.tid[2] = 0xee;
        t.tid_len = 16;
        snprintf(t.sender, sizeof(t.sender), "w%d", w->id);
        if (w->st->ops->txn_insert(w->st, &t) != CMPR_OK)
            w->failures++;
        memcpy(nonce, t.tid, 16);
        if (w->st->ops->nonce_check(w->st, nonce, 16, 5000, 300) != CMPR_OK)
            w->failures++;
    }
    return NULL;
}

/* eight threads run fn on st at once, ids from first; none may fail; then
 * how many transactions are in state RECEIVED, as another opener sees them */
static int
eight_writers(struct cmpr_store *st, void *(*fn)(void *), int first)
{
    pthread_t th[8];
    struct writer w[8];
    int n = 0;

    for (int i = 0; i < 8; i++) {
        w[i].st = st;
        w[i].id = first + i;
        w[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, fn, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    st = open_store();
    assert_int_equal(st->ops->txn_list(st, CMPR_TXN_RECEIVED, count_cb, &n), CMPR_OK);
    cmpr_store_close(st);
    return n;
}

static void
test_concurrent_writers(void **state)
{
    struct cmpr_store *st = open_store();
    (void)state;

    assert_true(eight_writers(st, writer_main, 100) >= 200);
    cmpr_store_close(st);
}

/* A batch's changes are seen by its own thread at once, by another
 * connection (another process) only once flushed. */
static void
test_batch_flush(void **state)
{
    struct cmpr_store *st = open_store(), *other = open_store();
    struct cmpr_txn_rec t, got;
    (void)state;

    st->ops->batch(st, 1);
    make_txn(&t, 61, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_ERR_EXISTS);
    assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &got), CMPR_OK);
    cmpr_txn_rec_clear(&got);
    assert_int_equal(other->ops->txn_get(other, t.tid, t.tid_len, &got), CMPR_ERR_NOT_FOUND);
    t.read_state = CMPR_TXN_RECEIVED;
    t.state = CMPR_TXN_ISSUED;
    assert_int_equal(st->ops->txn_update(st, &t), CMPR_OK);
    assert_int_equal(st->ops->flush(st), CMPR_OK);
    assert_int_equal(other->ops->txn_get(other, t.tid, t.tid_len, &got), CMPR_OK);
    assert_int_equal(got.state, CMPR_TXN_ISSUED);
    cmpr_txn_rec_clear(&got);
    /* nothing pending: a flush is free and fine */
    assert_int_equal(st->ops->flush(st), CMPR_OK);
    st->ops->batch(st, 0);
    cmpr_store_close(other);
    cmpr_store_close(st);
}

/* flush in two halves (store.h commit/sync): commit hands the batch over
 * and names a token without waiting; once sync(token) returns, another
 * connection sees the change; a later token covers an earlier one; a
 * thread that wrote nothing still gets a token for what it read. */
static void
test_commit_then_sync(void **state)
{
    struct cmpr_store *st = open_store(), *other = open_store();
    struct cmpr_txn_rec t, got;
    uint64_t t1 = 0, t2 = 0, t3 = 0;
    (void)state;

    st->ops->batch(st, 1);
    make_txn(&t, 66, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(st->ops->commit(st, &t1), CMPR_OK);
    st->ops->batch(st, 0);
    st->ops->batch(st, 1);
    make_txn(&t, 67, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(st->ops->commit(st, &t2), CMPR_OK);
    st->ops->batch(st, 0);
    assert_true(t2 >= t1);
    assert_int_equal(st->ops->sync(st, t2), CMPR_OK);
    for (unsigned char id = 66; id <= 67; id++) {
        make_txn(&t, id, CMPR_TXN_RECEIVED);
        assert_int_equal(other->ops->txn_get(other, t.tid, t.tid_len, &got), CMPR_OK);
        cmpr_txn_rec_clear(&got);
    }
    /* the earlier token is covered: nothing more to wait for */
    assert_int_equal(st->ops->sync(st, t1), CMPR_OK);
    st->ops->batch(st, 1);
    assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &got), CMPR_OK);
    cmpr_txn_rec_clear(&got);
    assert_int_equal(st->ops->commit(st, &t3), CMPR_OK);
    st->ops->batch(st, 0);
    assert_int_equal(st->ops->sync(st, t3), CMPR_OK);
    cmpr_store_close(other);
    cmpr_store_close(st);
}

/* A commit that is lost (here: a trigger rolls the transaction back, as
 * SQLite does on disk full or I/O errors) is reported by flush, and
 * nothing of the batch is in the store; the store goes on working. */
static void
test_batch_lost(void **state)
{
    struct cmpr_store *st = open_store(), *other = open_store();
    struct cmpr_txn_rec t, got;
    sqlite3 *db = NULL;
    (void)state;

    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TRIGGER boom BEFORE INSERT ON audit WHEN NEW.event = 'boom'"
                                  " BEGIN SELECT RAISE(ROLLBACK, 'boom'); END;", NULL, NULL, NULL), SQLITE_OK);
    st->ops->batch(st, 1);
    make_txn(&t, 62, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(st->ops->audit(st, t.tid, t.tid_len, "test", "boom", ""), CMPR_ERR_STORE);
    assert_int_equal(st->ops->flush(st), CMPR_ERR_STORE);
    st->ops->batch(st, 0);
    assert_int_equal(other->ops->txn_get(other, t.tid, t.tid_len, &got), CMPR_ERR_NOT_FOUND);
    assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &got), CMPR_ERR_NOT_FOUND);
    /* call by call: the failing call fails alone */
    assert_int_equal(st->ops->audit(st, t.tid, t.tid_len, "test", "boom", ""), CMPR_ERR_STORE);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(other->ops->txn_get(other, t.tid, t.tid_len, &got), CMPR_OK);
    cmpr_txn_rec_clear(&got);
    assert_int_equal(sqlite3_exec(db, "DROP TRIGGER boom", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    cmpr_store_close(other);
    cmpr_store_close(st);
}

/* kill -9 of a batching writer: what it flushed is there, what it had not
 * flushed is not. */
static int
batch_63_64(struct cmpr_store *st)
{
    struct cmpr_txn_rec t;

    st->ops->batch(st, 1);
    make_txn(&t, 63, CMPR_TXN_ISSUED);
    if (st->ops->txn_insert(st, &t) != CMPR_OK || st->ops->flush(st) != CMPR_OK)
        return 2;
    make_txn(&t, 64, CMPR_TXN_ISSUED);
    return st->ops->txn_insert(st, &t) == CMPR_OK ? 0 : 3;
}

static void
test_batch_kill9(void **state)
{
    (void)state;

    run_then_kill9(batch_63_64);
    assert_int_equal(stored_state(63), CMPR_TXN_ISSUED);
    assert_int_equal(stored_state(64), -1);
}

static void *
batch_writer_main(void *arg)
{
    struct writer *w = arg;
    struct cmpr_store *st = w->st;

    st->ops->batch(st, 1);
    for (int i = 0; i < 50; i++) {
        struct cmpr_txn_rec t, got;

        memset(&t, 0, sizeof(t));
        t.tid[0] = (unsigned char)w->id;
        t.tid[1] = (unsigned char)i;
        t.tid[2] = 0xbb;
        t.tid_len = 16;
        snprintf(t.sender, sizeof(t.sender), "b%d", w->id);
        if (st->ops->nonce_check(st, t.tid, 16, 5000, 300) != CMPR_OK
                || st->ops->nonce_check(st, t.tid, 16, 5001, 300) != CMPR_ERR_EXISTS
                || st->ops->txn_insert(st, &t) != CMPR_OK
                || st->ops->txn_get(st, t.tid, t.tid_len, &got) != CMPR_OK)
            w->failures++;
        else
            cmpr_txn_rec_clear(&got);
        if (st->ops->flush(st) != CMPR_OK)
            w->failures++;
    }
    st->ops->batch(st, 0);
    return NULL;
}

/* Eight threads batching at once: every decision as if alone, all there. */
static void
test_concurrent_batches(void **state)
{
    struct cmpr_store *st = open_store();
    (void)state;

    assert_true(eight_writers(st, batch_writer_main, 200) >= 400);
    cmpr_store_close(st);
}

/* Durability is the store's own: its commits leave the sync to one
 * fdatasync of the WAL outside the writer's lock. When that fails, the
 * change must not be answered (the flush fails), and nothing later counts
 * as durable either (the kernel may have dropped the pages: fsync errors
 * are not retried). */
static void
test_wal_sync_failure(void **state)
{
    struct cmpr_store *st = open_store();
    struct cmpr_txn_rec t;
    int pfd[2];
    (void)state;

    make_txn(&t, 70, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    tu_break_wal_sync(dbpath, pfd);
    st->ops->batch(st, 1);
    make_txn(&t, 71, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(st->ops->flush(st), CMPR_ERR_STORE);
    st->ops->batch(st, 0);
    make_txn(&t, 72, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_ERR_STORE);
    close(pfd[0]);
    close(pfd[1]);
    cmpr_store_close(st);
}

/* The same through commit and sync: sync reports the failed fdatasync,
 * and a commit after it hands over nothing that a sync would promise. */
static void
test_wal_sync_failure_deferred(void **state)
{
    struct cmpr_store *st = open_store();
    struct cmpr_txn_rec t;
    int pfd[2];
    uint64_t tok = 0;
    (void)state;

    make_txn(&t, 73, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    tu_break_wal_sync(dbpath, pfd);
    st->ops->batch(st, 1);
    make_txn(&t, 74, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(st->ops->commit(st, &tok), CMPR_OK);
    st->ops->batch(st, 0);
    assert_true(tok > 0);
    assert_int_equal(st->ops->sync(st, tok), CMPR_ERR_STORE);
    st->ops->batch(st, 1);
    make_txn(&t, 75, CMPR_TXN_RECEIVED);
    (void)st->ops->txn_insert(st, &t);
    if (st->ops->commit(st, &tok) == CMPR_OK)
        assert_int_equal(st->ops->sync(st, tok), CMPR_ERR_STORE);
    st->ops->batch(st, 0);
    close(pfd[0]);
    close(pfd[1]);
    cmpr_store_close(st);
}

/* sql, on a store just opened, is run through index (EXPLAIN QUERY PLAN);
 * otherwise fails with what it would do instead */
static void
assert_uses_index(const char *sql, const char *index, const char *what)
{
    struct cmpr_store *st = open_store();
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    char eqp[300], plan[600];

    plan[0] = '\0';
    snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, eqp, -1, &q, NULL), SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW)
        snprintf(plan + strlen(plan), sizeof(plan) - strlen(plan), "%s; ", (const char *)sqlite3_column_text(q, 3));
    sqlite3_finalize(q);
    sqlite3_close(db);
    if (strstr(plan, index) == NULL)
        fail_msg("%s: %s", what, plan);
    cmpr_store_close(st);
}

/* The replay cache is pruned to its window by the time each nonce was
 * seen, through an index: without one every pruning read the whole table
 * (an hour of nonces) holding the writer. */
static void
test_nonce_prune_indexed(void **state)
{
    (void)state;
    assert_uses_index("DELETE FROM nonce WHERE seen < 5", "INDEX nonce_seen", "pruning the replay cache reads");
}

/* A CRL is built from the revoked and held certificates, read through the
 * partial index cert_revoked: without it every genm for currentCRL and
 * every rr read the whole table (622 ms at 150,000 certificates). */
static void
test_crl_entries_indexed(void **state)
{
    (void)state;
    assert_uses_index("SELECT serial FROM cert WHERE status <> 0 ORDER BY status, serial", "INDEX cert_revoked",
                      "a CRL's entries are read by");
}

/* bytes of a file, 0 if it is not there */
static long long
file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

/* A transaction's row holds the answer kept for a retransmission: the ip
 * with its certificate (about 2 KB) until the certConf, then the pkiConf
 * (about 230 bytes). Rewritten in place, the shrunken row kept the page it
 * had grown to: one 4 KiB page per transaction for good (880 MB of store
 * for 170,000 transactions, and a page written per commit that touched
 * one). 2,000 such transactions, 32 open at a time and confirmed in no
 * particular order as clients do, leave the store under 1,500 bytes each
 * (about 4,100 in place). */
static void
test_txn_rows_packed(void **state)
{
    char shared[sizeof(dbpath)], packed[sizeof(dbpath)];
    struct cmpr_store *st;
    static unsigned char ip[2100], conf[233];
    struct cmpr_txn_rec t;
    unsigned open_ids[32], n_open = 0, seed = 7;
    const unsigned total = 2000;
    long long size;
    (void)state;

    /* a store of its own: the others' rows would count */
    memcpy(shared, dbpath, sizeof(shared));
    snprintf(packed, sizeof(packed), "%s/packed.db", dbdir);
    memcpy(dbpath, packed, sizeof(dbpath));
    st = open_store();
    memset(ip, 0x11, sizeof(ip));
    memset(conf, 0x22, sizeof(conf));
    for (unsigned id = 0; id < total || n_open > 0;) {
        if (id < total && n_open < 32) {
            make_txn(&t, 0, CMPR_TXN_ANSWERED);
            memcpy(t.tid, &id, sizeof(id));
            t.response = ip;
            t.response_len = sizeof(ip);
            assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
            open_ids[n_open++] = id++;
            continue;
        }
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % n_open;
        make_txn(&t, 0, CMPR_TXN_ANSWERED);
        memcpy(t.tid, &open_ids[k], sizeof(open_ids[k]));
        t.read_state = CMPR_TXN_ANSWERED;
        t.state = CMPR_TXN_CONFIRMED;
        t.response = conf;
        t.response_len = sizeof(conf);
        assert_int_equal(st->ops->txn_update(st, &t), CMPR_OK);
        open_ids[k] = open_ids[--n_open];
    }
    /* the rows are all there, with the later answer */
    memset(&t, 0, sizeof(t));
    {
        unsigned id = 1234;
        struct cmpr_txn_rec got;

        memcpy(t.tid, &id, sizeof(id));
        assert_int_equal(st->ops->txn_get(st, t.tid, 16, &got), CMPR_OK);
        assert_int_equal(got.state, CMPR_TXN_CONFIRMED);
        assert_int_equal(got.response_len, sizeof(conf));
        assert_memory_equal(got.response, conf, sizeof(conf));
        cmpr_txn_rec_clear(&got);
    }
    cmpr_store_close(st);
    memcpy(dbpath, shared, sizeof(dbpath));
    size = file_size(packed);
    if (size / total >= 1500) {
        sqlite3 *db = NULL;
        sqlite3_stmt *q = NULL;
        char seen[600] = "";

        /* what holds the pages (dbstat, when this SQLite has it) */
        if (sqlite3_open(packed, &db) == SQLITE_OK
                && sqlite3_prepare_v2(db, "SELECT name, count(*), sum(ncell) FROM dbstat GROUP BY name"
                                      " ORDER BY 2 DESC LIMIT 5", -1, &q, NULL) == SQLITE_OK)
            while (sqlite3_step(q) == SQLITE_ROW)
                snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "%s: %d pages, %d cells; ",
                         (const char *)sqlite3_column_text(q, 0), sqlite3_column_int(q, 1), sqlite3_column_int(q, 2));
        sqlite3_finalize(q);
        sqlite3_close(db);
        fail_msg("%lld bytes of store for %u transactions: %lld each (%s)", size, total, size / total, seen);
    }
}

/* k transactions of len bytes (blob), ids from *n marked mark, into the
 * open batch: how many inserts failed */
static int
put_rows(struct cmpr_store *st, unsigned *n, int k, unsigned char *blob, size_t len, unsigned char mark)
{
    struct cmpr_txn_rec t;
    int failed = 0;

    for (int i = 0; i < k; i++, (*n)++) {
        make_txn(&t, 0, CMPR_TXN_ANSWERED);
        memcpy(t.tid, n, sizeof(*n));
        t.tid[15] = mark;
        t.response = blob;
        t.response_len = len;
        failed += st->ops->txn_insert(st, &t) != CMPR_OK;
    }
    return failed;
}

/* one group of k such transactions, committed and made durable */
static void
group_of(struct cmpr_store *st, unsigned *n, int k, unsigned char *blob, size_t len, unsigned char mark)
{
    uint64_t tok = 0;

    st->ops->batch(st, 1);
    assert_int_equal(put_rows(st, n, k, blob, len, mark), 0);
    assert_int_equal(st->ops->commit(st, &tok), CMPR_OK);
    st->ops->batch(st, 0);
    assert_int_equal(st->ops->sync(st, tok), CMPR_OK);
}

/* Checkpoints run beside the writer (never inside its commits), and the WAL
 * still starts again from its beginning: 8,000 rows of 3.5 KB written in
 * groups without a pause (over 70 MiB of WAL frames when nothing is copied
 * back), the WAL stays below 20 MiB (a checkpoint copies about 4 MiB at a
 * time). A WAL that is never wholly copied back only grows: it reached
 * 1.5 GiB in a benchmark before the commit after each pass finished it. */
static void
test_wal_stays_bounded(void **state)
{
    struct cmpr_store *st = open_store();
    unsigned char blob[3500];
    char wal[300];
    long long most = 0;
    (void)state;

    memset(blob, 0x5a, sizeof(blob));
    snprintf(wal, sizeof(wal), "%.290s-wal", dbpath);
    for (unsigned n = 0; n < 8000;) {
        group_of(st, &n, 4, blob, sizeof(blob), 0xee);
        if (file_size(wal) > most)
            most = file_size(wal);
    }
    if (most >= 20LL * 1024 * 1024)
        fail_msg("the WAL grew to %lld bytes", most);
    cmpr_store_close(st);
}

/* how many transactions a plain SQLite connection (the default VFS, as
 * another program would open the store) finds in the file */
static int
rows_seen_by_default_vfs(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int n = -1;

    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
            && sqlite3_prepare_v2(db, "SELECT count(*) FROM txn", -1, &q, NULL) == SQLITE_OK
            && sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

/* The store's VFS (core/sqlite_vfs.c) writes a WAL commit in one system
 * call where SQLite makes two per frame: 50 commits of 8 rows of 3.5 KB
 * (over 16 frames each) take at most 2 calls per commit, against over 30
 * writes; a commit larger than the gathering buffer (300 rows, about
 * 1.2 MiB) is written in pieces. Every row is there for a plain SQLite
 * connection (the default VFS) and after a reopen. */
static void
test_wal_writes_gathered(void **state)
{
    struct cmpr_store *st;
    unsigned char blob[3500];
    unsigned long c0, w0, c1, w1;
    unsigned n = 0;
    (void)state;

    snprintf(dbpath, sizeof(dbpath), "%s/gathered.db", dbdir);
    st = open_store();
    memset(blob, 0x3c, sizeof(blob));
    group_of(st, &n, 1, blob, sizeof(blob), 0xab);        /* the WAL's header and first frames */
    cmpr_sqlite_vfs_counts(&c0, &w0);
    for (int g = 0; g < 50; g++)
        group_of(st, &n, 8, blob, sizeof(blob), 0xab);
    cmpr_sqlite_vfs_counts(&c1, &w1);
    if (c1 - c0 > 100 || w1 - w0 < 50 * 20)
        fail_msg("50 commits: %lu system calls for %lu writes", c1 - c0, w1 - w0);
    group_of(st, &n, 300, blob, sizeof(blob), 0xab);
    assert_int_equal(rows_seen_by_default_vfs(), (int)n);
    cmpr_store_close(st);
    st = open_store();
    assert_int_equal(rows_seen_by_default_vfs(), (int)n);
    cmpr_store_close(st);
}

/* k rows per commit until a write fails: the number of the commits that
 * returned CMPR_OK, which must all be in the file */
static int
write_until_full(struct cmpr_store *st)
{
    static unsigned char blob[3500];
    unsigned n = 0;
    int ok = 0;

    for (int g = 0; g < 4000; g++) {
        st->ops->batch(st, 1);
        (void)put_rows(st, &n, 8, blob, sizeof(blob), 0xcd);     /* a failure shows in the flush */
        if (st->ops->flush(st) != CMPR_OK) {
            st->ops->batch(st, 0);
            return ok;
        }
        st->ops->batch(st, 0);
        ok++;
    }
    return -1;
}

/* A gathered commit that cannot be written (the file may not grow: a full
 * disk) fails its commit: the writer is told, and every commit it was told
 * had worked is in the file. The writer is a child process with
 * RLIMIT_FSIZE set a little above the store's size. */
static void
test_wal_write_failure(void **state)
{
    struct cmpr_store *st;
    unsigned char blob[3500];
    unsigned n = 0;
    int pfd[2], ok = -2, status = 0;
    pid_t pid;
    (void)state;

    snprintf(dbpath, sizeof(dbpath), "%s/full.db", dbdir);
    st = open_store();
    memset(blob, 0x5e, sizeof(blob));
    group_of(st, &n, 8, blob, sizeof(blob), 0xab);
    cmpr_store_close(st);
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = { 2 * 1024 * 1024, 2 * 1024 * 1024 };
        struct cmpr_store *cst = NULL;

        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0 || cmpr_store_open(dbpath, &cst) != CMPR_OK)
            _exit(1);
        ok = write_until_full(cst);
        (void)write(pfd[1], &ok, sizeof(ok));
        _exit(0);
    }
    close(pfd[1]);
    assert_int_equal(read(pfd[0], &ok, sizeof(ok)), (ssize_t)sizeof(ok));
    close(pfd[0]);
    waitpid(pid, &status, 0);
    if (ok < 1)
        fail_msg("the writer limited to 2 MiB files: %d commits before the failure (-1: none failed)", ok);
    assert_true(rows_seen_by_default_vfs() >= 8 + 8 * ok);
}

/* Two openers of one store (two nodes on one database, or cmprouterd and
 * the operator's CLI): both read a transaction and a forwarding record;
 * the first write wins, the second is refused (CMPR_ERR_CONFLICT) and
 * nothing of it lands. */
static void
test_two_openers_one_wins(void **state)
{
    struct cmpr_store *a = open_store(), *b = open_store();
    struct cmpr_txn_rec t, ta, tb, got;
    struct cmpr_fwd_rec f, fa, fb;
    (void)state;

    make_txn(&t, 80, CMPR_TXN_PENDING_APPROVAL);
    assert_int_equal(a->ops->txn_insert(a, &t), CMPR_OK);
    assert_int_equal(b->ops->txn_insert(b, &t), CMPR_ERR_EXISTS);
    assert_int_equal(a->ops->txn_get(a, t.tid, t.tid_len, &ta), CMPR_OK);
    assert_int_equal(b->ops->txn_get(b, t.tid, t.tid_len, &tb), CMPR_OK);
    ta.state = CMPR_TXN_ISSUED;
    tb.state = CMPR_TXN_REJECTED;
    assert_int_equal(a->ops->txn_update(a, &ta), CMPR_OK);
    assert_int_equal(b->ops->txn_set_state(b, &tb), CMPR_ERR_CONFLICT);
    assert_int_equal(b->ops->txn_get(b, t.tid, t.tid_len, &got), CMPR_OK);
    assert_int_equal(got.state, CMPR_TXN_ISSUED);
    cmpr_txn_rec_clear(&got);
    cmpr_txn_rec_clear(&ta);
    cmpr_txn_rec_clear(&tb);

    memset(&f, 0, sizeof(f));
    memset(f.tid, 81, 16);
    f.tid_len = 16;
    snprintf(f.route, sizeof(f.route), "up");
    assert_int_equal(a->ops->fwd_put(a, &f), CMPR_OK);
    assert_int_equal(f.ver, 1);
    f.ver = 0;
    assert_int_equal(b->ops->fwd_put(b, &f), CMPR_ERR_EXISTS);
    assert_int_equal(a->ops->fwd_get(a, f.tid, f.tid_len, &fa), CMPR_OK);
    assert_int_equal(b->ops->fwd_get(b, f.tid, f.tid_len, &fb), CMPR_OK);
    fa.state = CMPR_FWD_SENT;
    fb.state = CMPR_FWD_FAILED;
    assert_int_equal(a->ops->fwd_put(a, &fa), CMPR_OK);
    assert_int_equal(b->ops->fwd_put(b, &fb), CMPR_ERR_CONFLICT);
    cmpr_fwd_rec_clear(&fb);
    assert_int_equal(b->ops->fwd_get(b, f.tid, f.tid_len, &fb), CMPR_OK);
    assert_int_equal(fb.state, CMPR_FWD_SENT);
    assert_int_equal(fb.ver, 2);
    cmpr_fwd_rec_clear(&fa);
    cmpr_fwd_rec_clear(&fb);
    cmpr_store_close(a);
    cmpr_store_close(b);
}

#ifdef HAVE_LIBPQ
/* PostgreSQL: a statement that fails inside a batch (here a trigger
 * raises, as a full disk or a constraint of an operator's would) loses the
 * batch: flush says so, nothing of it is in the store; call by call, the
 * failing call fails alone. */
static void
test_pg_batch_lost(void **state)
{
    struct cmpr_store *st = open_store(), *other = open_store();
    struct cmpr_txn_rec t, got;
    (void)state;

    assert_int_equal(pg_exec("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                             " IF NEW.event = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$;"
                             "CREATE TRIGGER boom BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION boom()"), 0);
    st->ops->batch(st, 1);
    make_txn(&t, 90, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(st->ops->audit(st, t.tid, t.tid_len, "test", "boom", ""), CMPR_ERR_STORE);
    /* the batch is lost: later calls in it fail too */
    assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &got), CMPR_ERR_STORE);
    assert_int_equal(st->ops->flush(st), CMPR_ERR_STORE);
    st->ops->batch(st, 0);
    assert_int_equal(other->ops->txn_get(other, t.tid, t.tid_len, &got), CMPR_ERR_NOT_FOUND);
    assert_int_equal(st->ops->audit(st, t.tid, t.tid_len, "test", "boom", ""), CMPR_ERR_STORE);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(other->ops->txn_get(other, t.tid, t.tid_len, &got), CMPR_OK);
    cmpr_txn_rec_clear(&got);
    /* the next batch works */
    st->ops->batch(st, 1);
    make_txn(&t, 91, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(st->ops->flush(st), CMPR_OK);
    st->ops->batch(st, 0);
    assert_int_equal(other->ops->txn_get(other, t.tid, t.tid_len, &got), CMPR_OK);
    cmpr_txn_rec_clear(&got);
    assert_int_equal(pg_exec("DROP FUNCTION boom() CASCADE"), 0);
    cmpr_store_close(other);
    cmpr_store_close(st);
}

/* PostgreSQL: every connection of the store cut by the server (a restart,
 * a failover, an administrator): idle ones are found closed when taken and
 * replaced, so no call fails for them and the store is not reopened; a
 * batch cut in the middle fails its calls (CMPR_ERR_STORE: the client gets
 * systemUnavail) and is reported lost by its flush. */
static void
test_pg_connection_cut(void **state)
{
    struct cmpr_store *st = open_store();
    struct cmpr_txn_rec t, got;
    /* waits (up to 10 s) until each backend is gone */
    static const char cut[] = "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                              " WHERE application_name = 'cmprouterd'";
    (void)state;

    make_txn(&t, 92, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    /* idle connections cut: found closed when taken, replaced, no call fails */
    assert_int_equal(pg_exec(cut), 0);
    assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &got), CMPR_OK);
    cmpr_txn_rec_clear(&got);
    /* a batch cut in the middle */
    st->ops->batch(st, 1);
    make_txn(&t, 93, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    assert_int_equal(pg_exec(cut), 0);
    make_txn(&t, 94, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_ERR_STORE);
    assert_int_equal(st->ops->flush(st), CMPR_ERR_STORE);
    st->ops->batch(st, 0);
    make_txn(&t, 93, CMPR_TXN_RECEIVED);
    assert_int_equal(st->ops->txn_get(st, t.tid, t.tid_len, &got), CMPR_ERR_NOT_FOUND);
    assert_int_equal(st->ops->txn_insert(st, &t), CMPR_OK);
    cmpr_store_close(st);
}

/* PostgreSQL: a wrong password is refused at open, and the password is in
 * no message; a string libpq cannot parse is a configuration error. */
static void
test_pg_open_errors(void **state)
{
    struct cmpr_store *st = NULL;
    (void)state;

    assert_int_equal(cmpr_store_open("postgresql:host=127.0.0.1 port=1 connect_timeout=5 password=s3cr3t", &st),
                     CMPR_ERR_STORE);
    assert_null(st);
    assert_int_equal(cmpr_store_open("postgresql:host='unterminated password=s3cr3t", &st), CMPR_ERR_CONFIG);
    assert_null(st);
}
#endif

/* A store written by the previous version (schema 2: forwarding records
 * without a lease) is upgraded when opened: its records keep their data
 * and gain an owner and a lease; user_version says 3. */
static void
test_sqlite_upgrade_from_2(void **state)
{
    char path[1100];
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    struct cmpr_store *st = NULL;
    struct cmpr_fwd_rec f;
    unsigned char tid[16];
    (void)state;

    snprintf(path, sizeof(path), "%s/old.db", dbdir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
        "CREATE TABLE fwd (tid BLOB PRIMARY KEY, route TEXT NOT NULL, state INTEGER NOT NULL, ver INTEGER NOT NULL,"
        " delayed INTEGER NOT NULL, client_body INTEGER NOT NULL, client_nonce BLOB, up_nonce BLOB,"
        " client TEXT NOT NULL, auth INTEGER NOT NULL, mac_kind INTEGER NOT NULL, key TEXT NOT NULL,"
        " batch TEXT NOT NULL, req BLOB, ans BLOB, last BLOB, last_nonce BLOB, err TEXT NOT NULL,"
        " attempts INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
        " next_try INTEGER NOT NULL, push TEXT NOT NULL);"
        "INSERT INTO fwd VALUES(x'0707070707070707', 'up', 1, 3, 1, 0, NULL, NULL, 'demo', 1, 0, 'k', '',"
        " NULL, NULL, NULL, NULL, '', 2, 100, 200, 300, '');"
        "PRAGMA user_version = 2;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    snprintf(path, sizeof(path), "sqlite:%s/old.db", dbdir);
    assert_int_equal(cmpr_store_open(path, &st), CMPR_OK);
    memset(tid, 7, 8);
    assert_int_equal(st->ops->fwd_get(st, tid, 8, &f), CMPR_OK);
    assert_int_equal(f.state, CMPR_FWD_SENT);
    assert_int_equal(f.ver, 3);
    assert_string_equal(f.client, "demo");
    assert_string_equal(f.owner, "");
    assert_int_equal(f.lease_until, 0);
    snprintf(f.owner, sizeof(f.owner), "n1");
    f.lease_until = 12345;
    assert_int_equal(st->ops->fwd_put(st, &f), CMPR_OK);
    cmpr_fwd_rec_clear(&f);
    assert_int_equal(st->ops->fwd_get(st, tid, 8, &f), CMPR_OK);
    assert_string_equal(f.owner, "n1");
    assert_int_equal(f.lease_until, 12345);
    cmpr_fwd_rec_clear(&f);
    cmpr_store_close(st);
    snprintf(path, sizeof(path), "%s/old.db", dbdir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 3);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void
test_open_errors(void **state)
{
    struct cmpr_store *st = NULL;
    (void)state;

    assert_int_equal(cmpr_store_open("/nonexistent-dir/x/y.db", &st), CMPR_ERR_STORE);
    assert_null(st);
    assert_int_equal(cmpr_store_open("", &st), CMPR_ERR_INVALID_ARG);
    assert_string_equal(cmpr_txn_state_name(CMPR_TXN_PENDING_APPROVAL), "pending_approval");
    assert_string_equal(cmpr_txn_state_name(99), "?");
}

int
main(void)
{
    /* every backend */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txn_unique_and_update),
        cmocka_unit_test(test_txn_list_by_state),
        cmocka_unit_test(test_serial_never_reused),
        cmocka_unit_test(test_cert_and_revocation),
        cmocka_unit_test(test_cert_list_revoked),
        cmocka_unit_test(test_nonce_replay_window),
        cmocka_unit_test(test_audit_log),
        cmocka_unit_test(test_durable_across_kill9),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_two_openers_one_wins),
        cmocka_unit_test(test_batch_flush),
        cmocka_unit_test(test_commit_then_sync),
        cmocka_unit_test(test_batch_kill9),
        cmocka_unit_test(test_concurrent_batches),
    };
    const struct CMUnitTest sqlite_only[] = {
        cmocka_unit_test(test_batch_lost),
        cmocka_unit_test(test_wal_sync_failure),
        cmocka_unit_test(test_wal_sync_failure_deferred),
        cmocka_unit_test(test_wal_stays_bounded),
        cmocka_unit_test(test_nonce_prune_indexed),
        cmocka_unit_test(test_crl_entries_indexed),
        cmocka_unit_test(test_txn_rows_packed),
        cmocka_unit_test(test_sqlite_upgrade_from_2),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_wal_writes_gathered),
        cmocka_unit_test(test_wal_write_failure),
    };
    const char *pg = getenv("CMPR_TEST_STORE");
    int r;

    if (pg != NULL && strncmp(pg, "postgresql:", 11) == 0) {
#ifdef HAVE_LIBPQ
        const struct CMUnitTest pg_only[] = {
            cmocka_unit_test(test_pg_batch_lost),
            cmocka_unit_test(test_pg_connection_cut),
            cmocka_unit_test(test_pg_open_errors),
        };

        r = cmocka_run_group_tests_name("store-postgresql", tests, setup_pg, teardown_pg);
        return r + cmocka_run_group_tests_name("store-postgresql-only", pg_only, setup_pg, teardown_pg);
#else
        fprintf(stderr, "test_store: CMPR_TEST_STORE names a PostgreSQL, but this build has no libpq\n");
        return 1;
#endif
    }
    r = cmocka_run_group_tests_name("store", tests, setup, NULL);
    return r + cmocka_run_group_tests_name("store-sqlite-only", sqlite_only, NULL, teardown);
}
