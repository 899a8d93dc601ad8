/*
 * SQLite's default VFS with one change: the writes of a WAL commit go to
 * the file as one pwrite instead of two per frame.
 *
 * SQLite appends a commit to the WAL as a 24-byte frame header and then
 * the page, each its own xWrite: a commit that touches 20 pages costs 40
 * system calls, and on a virtual machine entering the kernel is most of
 * what a small write costs. Here the writes to a WAL file are gathered
 * while they follow each other, and written in one go when the commit is
 * complete (the page after a frame header whose "database size after
 * commit" field is not zero: the WAL format's commit frame), before any
 * other operation on the file (read, sync, size, truncate, lock, shared
 * memory, close), when a write does not follow the last, and when the
 * buffer is full. A failed write is the commit's error, as before: the
 * commit frame's xWrite reports it, SQLite rolls the transaction back.
 * Nothing else changes: the same files, locks and format, so other
 * processes on the default VFS (cmprouter admin) share the store as
 * before.
 *
 * Copyright the cmprouter authors; licence in COPYING.
 */
#include "core/sqlite_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <string.h>

#define VFS_NAME "cmpr-walgather"
#define GATHER_MAX (512 * 1024)         /* bytes gathered at most before they are written */

struct gfile {
    sqlite3_file base;                  /* pMethods: &gather_io, or NULL if the open failed */
    sqlite3_file *real;                 /* the default VFS's file, right after this struct */
    int wal;                            /* gather the writes of this file */
    int commit_next;                    /* the last write was a commit frame's header */
    unsigned char *buf;
    int len;
    sqlite3_int64 off;                  /* where buf goes in the file */
};

static sqlite3_vfs gather_vfs;
static sqlite3_vfs *real_vfs;
static atomic_ulong n_calls, n_writes;  /* cmpr_sqlite_vfs_counts */

/* the default VFS writes at most this much in one call (more is a short
 * write, which it reports as a full disk) */
#define WRITE_MAX 0x1f000

/* writes what is gathered */
static int
flush(struct gfile *g)
{
    int rc = SQLITE_OK;

    for (int o = 0, n; o < g->len && rc == SQLITE_OK; o += n) {
        n = g->len - o < WRITE_MAX ? g->len - o : WRITE_MAX;
        rc = g->real->pMethods->xWrite(g->real, g->buf + o, n, g->off + o);
        atomic_fetch_add_explicit(&n_calls, 1, memory_order_relaxed);
    }
    g->len = 0;
    return rc;
}

#define REAL(f) (((struct gfile *)(f))->real)
#define FLUSHED(f) (flush((struct gfile *)(f)) == SQLITE_OK)

static int
g_close(sqlite3_file *f)
{
    struct gfile *g = (struct gfile *)f;
    int rc = flush(g), rc2 = g->real->pMethods->xClose(g->real);

    sqlite3_free(g->buf);
    g->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int
g_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    int rc = flush((struct gfile *)f);

    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

/* the WAL format (https://sqlite.org/fileformat2.html#walformat): a frame
 * header is 24 bytes; bytes 4-7, big-endian, are the database's size in
 * pages after the commit for a commit frame, 0 for the others */
static int
is_commit_header(const void *p, int n)
{
    const unsigned char *h = p;

    return n == 24 && (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int
g_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    struct gfile *g = (struct gfile *)f;
    int rc, commit_page;

    if (!g->wal)
        return g->real->pMethods->xWrite(g->real, p, n, off);
    atomic_fetch_add_explicit(&n_writes, 1, memory_order_relaxed);
    if (g->len > 0 && (off != g->off + g->len || g->len + n > GATHER_MAX) && (rc = flush(g)) != SQLITE_OK)
        return rc;
    /* the buffer comes with the first write: only the writer's connection
     * writes the WAL, the others (readers, the checkpointer) need none */
    if (g->buf == NULL && n <= GATHER_MAX)
        g->buf = sqlite3_malloc(GATHER_MAX);
    if (g->buf == NULL || n > GATHER_MAX) {     /* no buffer, or too large for it: as it comes */
        g->commit_next = 0;
        atomic_fetch_add_explicit(&n_calls, 1, memory_order_relaxed);
        return g->real->pMethods->xWrite(g->real, p, n, off);
    }
    if (g->len == 0)
        g->off = off;
    memcpy(g->buf + g->len, p, (size_t)n);
    g->len += n;
    commit_page = g->commit_next && n != 24;
    g->commit_next = is_commit_header(p, n);
    return commit_page ? flush(g) : SQLITE_OK;
}

static int
g_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return FLUSHED(f) ? REAL(f)->pMethods->xTruncate(REAL(f), size) : SQLITE_IOERR_WRITE;
}

static int
g_sync(sqlite3_file *f, int flags)
{
    return FLUSHED(f) ? REAL(f)->pMethods->xSync(REAL(f), flags) : SQLITE_IOERR_WRITE;
}

static int
g_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return FLUSHED(f) ? REAL(f)->pMethods->xFileSize(REAL(f), size) : SQLITE_IOERR_WRITE;
}

static int
g_lock(sqlite3_file *f, int lock)
{
    return FLUSHED(f) ? REAL(f)->pMethods->xLock(REAL(f), lock) : SQLITE_IOERR_WRITE;
}

static int
g_unlock(sqlite3_file *f, int lock)
{
    return FLUSHED(f) ? REAL(f)->pMethods->xUnlock(REAL(f), lock) : SQLITE_IOERR_WRITE;
}

static int
g_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int
g_file_control(sqlite3_file *f, int op, void *arg)
{
    return FLUSHED(f) ? REAL(f)->pMethods->xFileControl(REAL(f), op, arg) : SQLITE_IOERR_WRITE;
}

static int
g_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int
g_device_characteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int
g_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **p)
{
    return FLUSHED(f) ? REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, p) : SQLITE_IOERR_WRITE;
}

static int
g_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return FLUSHED(f) ? REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags) : SQLITE_IOERR_WRITE;
}

static void
g_shm_barrier(sqlite3_file *f)
{
    (void)flush((struct gfile *)f);     /* a commit is written at its commit frame already */
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int
g_shm_unmap(sqlite3_file *f, int del)
{
    return FLUSHED(f) ? REAL(f)->pMethods->xShmUnmap(REAL(f), del) : SQLITE_IOERR_WRITE;
}

static int
g_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    *pp = NULL;
    return FLUSHED(f) ? REAL(f)->pMethods->xFetch(REAL(f), off, n, pp) : SQLITE_IOERR_WRITE;
}

static int
g_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods gather_io = {
    3, g_close, g_read, g_write, g_truncate, g_sync, g_file_size, g_lock, g_unlock,
    g_check_reserved, g_file_control, g_sector_size, g_device_characteristics,
    g_shm_map, g_shm_lock, g_shm_barrier, g_shm_unmap, g_fetch, g_unfetch,
};

static int
g_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct gfile *g = (struct gfile *)f;
    int rc;

    (void)vfs;
    memset(g, 0, sizeof(*g));
    g->real = (sqlite3_file *)(g + 1);
    rc = real_vfs->xOpen(real_vfs, name, g->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        g->base.pMethods = NULL;
        return rc;
    }
    /* the files of this build's default VFS have every method of version 3;
     * another gets no gathering, only a stand-in that forwards */
    if (g->real->pMethods == NULL || g->real->pMethods->iVersion < 3) {
        if (g->real->pMethods != NULL)
            g->real->pMethods->xClose(g->real);
        return SQLITE_CANTOPEN;
    }
    g->wal = (flags & SQLITE_OPEN_WAL) != 0;
    g->base.pMethods = &gather_io;
    return SQLITE_OK;
}

static int
g_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int
g_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int
g_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *
g_dl_open(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void
g_dl_error(sqlite3_vfs *v, int n, char *msg)
{
    (void)v;
    real_vfs->xDlError(real_vfs, n, msg);
}

static void (*g_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    (void)v;
    return real_vfs->xDlSym(real_vfs, h, sym);
}

static void
g_dl_close(sqlite3_vfs *v, void *h)
{
    (void)v;
    real_vfs->xDlClose(real_vfs, h);
}

static int
g_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int
g_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return real_vfs->xSleep(real_vfs, us);
}

static int
g_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int
g_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int
g_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered;

static void
register_once(void)
{
    if ((real_vfs = sqlite3_vfs_find(NULL)) == NULL || real_vfs->iVersion < 2)
        return;
    gather_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct gfile) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = VFS_NAME,
        .xOpen = g_open, .xDelete = g_delete, .xAccess = g_access, .xFullPathname = g_full_pathname,
        .xDlOpen = g_dl_open, .xDlError = g_dl_error, .xDlSym = g_dl_sym, .xDlClose = g_dl_close,
        .xRandomness = g_randomness, .xSleep = g_sleep, .xCurrentTime = g_current_time,
        .xGetLastError = g_last_error, .xCurrentTimeInt64 = g_current_time_int64,
    };
    registered = sqlite3_vfs_register(&gather_vfs, 0) == SQLITE_OK;
}

const char *
cmpr_sqlite_vfs(void)
{
    pthread_once(&once, register_once);
    return registered ? VFS_NAME : NULL;
}

void
cmpr_sqlite_vfs_counts(unsigned long *calls_r, unsigned long *writes_r)
{
    *calls_r = atomic_load(&n_calls);
    *writes_r = atomic_load(&n_writes);
}
