/*
 * CMP by files in local folders ([filedrop NAME]): RFC 9483 6.4, one DER
 * PKIMessage per file, extension .pki. For offline sites: requests arrive on
 * a USB stick or by SCP into the inbox, answers appear in the outbox.
 *
 * The loop thread only watches the inbox (uv_fs_event) and kicks a dedicated
 * thread (worker.c) that does all the file system work, since folders may
 * sit on NFS or slow media. A rescan timer covers lost events.
 *
 * Nothing is lost, half-read or processed twice, whatever crashes when:
 *   claim    rename(inbox/N, processing/<instance>/R.N)   atomic: one owner
 *   answer   core -> T.N, fsync, rename to A.N             answer durable
 *   retire   R.N -> archive (or unlink)                    request done
 *   publish  A.N -> outbox/<N without ext>.rsp.pki          no overwrite
 * After a crash the processing folder says where each file stood: R.N alone
 * is run through the core again (flagged resumed; the core answers its own
 * retransmissions from the store), R.N with A.N is retired and published,
 * A.N alone is published. Files are handled one at a time, oldest first, so
 * the order within a transaction is kept (RFC 9483 6.4), in batches of up to
 * BATCH: each step is taken for every file of the batch, then made durable
 * by one fsync per folder, before the next step begins (the order of the
 * steps of each file is the same; the fsyncs are shared).
 */
#define _GNU_SOURCE 1
#include "transports/transport.h"
#include "transports/client/client.h"
#include "base/buf.h"
#include "codec/dropname.h"
#include "transports/lib/dropconf.h"
#include "transports/lib/worker.h"
#include "transports/lib/fsutil.h"
#include "core/core.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCAN 10000                  /* inbox entries looked at per cycle */
#define BATCH 64                        /* files taken through each step together */

/* folders whose fsync a batch step owes */
enum { DIRTY_PROC = 1, DIRTY_ERRORS = 2, DIRTY_ARCHIVE = 4, DIRTY_OUTBOX = 8 };

struct fd_ctx {
    char *name;
    char *inbox, *outbox, *errors, *archive, *processing, *proc;
    struct cmpr_drop_conf dc;
    long rescan_ms;
    struct cmpr_daemon *d;
    struct cmpr_worker w;
    uv_fs_event_t ev;
    int watching;
    int lock_fd;                        /* flock on the instance's processing folder */
    int closing;                        /* handles still closing after stop */
    void (*stop_done)(void *arg);
    void *stop_arg;
    /* worker thread only */
    struct cmpr_drop_entry *seen;
    size_t n_seen;
    int batching;                       /* folder fsyncs wait for the end of the step */
    unsigned dirty;                     /* DIRTY_* owed */
};

/* dir (one of ctx's folders) has a new or renamed entry: fsync it now, or
 * at the end of the batch's step */
static int
dir_changed(struct fd_ctx *ctx, const char *dir)
{
    if (!ctx->batching)
        return cmpr_fs_fsync_dir(dir);
    ctx->dirty |= dir == ctx->proc ? DIRTY_PROC : dir == ctx->errors ? DIRTY_ERRORS
                  : dir == ctx->archive ? DIRTY_ARCHIVE : dir == ctx->outbox ? DIRTY_OUTBOX : 0;
    return dir == ctx->proc || dir == ctx->errors || dir == ctx->archive || dir == ctx->outbox
           ? 0 : cmpr_fs_fsync_dir(dir);
}

/* the end of a batch's step: what it changed is durable. 0, or -1. */
static int
step_done(struct fd_ctx *ctx)
{
    const char *dirs[] = { ctx->proc, ctx->errors, ctx->archive, ctx->outbox };
    int r = 0;

    for (int i = 0; i < 4; i++)
        if ((ctx->dirty & (1u << i)) && dirs[i] != NULL && cmpr_fs_fsync_dir(dirs[i]) != 0)
            r = -1;
    ctx->dirty = 0;
    return r;
}

/* ---------------- small file helpers (worker thread) ---------------- */

/* Reads a claimed file without following links or blocking on FIFOs. */
static int
read_claimed(const char *path, size_t max, unsigned char **data_r, size_t *len_r, char *why,
             size_t wlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    struct cmpr_buf b;
    int r, e;

    *data_r = NULL;
    *len_r = 0;
    if (fd < 0) {
        if (errno == ELOOP)
            snprintf(why, wlen, "a symbolic link (never followed)");
        else
            snprintf(why, wlen, "cannot open: %s", strerror(errno));
        return errno == ENOENT ? -2 : -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, wlen, "not a regular file");
        close(fd);
        return -1;
    }
    if (st.st_nlink > 1) {
        snprintf(why, wlen, "a file with several hard links (refused)");
        close(fd);
        return -1;
    }
    if ((size_t)st.st_size > max) {
        snprintf(why, wlen, "larger than max_size (%zu bytes)", max);
        close(fd);
        return -1;
    }
    cmpr_buf_init(&b, max);
    r = cmpr_buf_read_fd(&b, fd);
    e = errno;
    close(fd);
    if (r != CMPR_OK || (*data_r = cmpr_buf_steal(&b, len_r)) == NULL) {
        if (r == CMPR_ERR_TOO_LARGE)
            snprintf(why, wlen, "larger than max_size (%zu bytes)", max);
        else
            snprintf(why, wlen, "read error: %s", r == CMPR_ERR_IO ? strerror(e) : "out of memory");
        cmpr_buf_free(&b);
        return r == CMPR_ERR_TOO_LARGE ? -1 : -3;
    }
    return 0;
}

/* copy for a destination on another file system: tmp in dst dir, fsync, no-replace rename */
static int
copy_across(const char *src, const char *dstdir, const char *dstname, mode_t mode)
{
    char why[128], dp[PATH_MAX], tmp[NAME_MAX + 1];
    unsigned char *data;
    size_t len;
    int r;

    if (read_claimed(src, 64u * 1024 * 1024, &data, &len, why, sizeof(why)) != 0)
        return -1;
    if (cmpr_fs_join(dp, sizeof(dp), dstdir, "", dstname) != 0 || access(dp, F_OK) == 0) {
        free(data);
        errno = EEXIST;
        return -1;
    }
    snprintf(tmp, sizeof(tmp), ".%.200s.tmp", dstname);
    r = cmpr_fs_write_durable(dstdir, tmp, dstname, data, len, mode);
    free(data);
    if (r == 0)
        r = unlink(src);
    return r;
}

/* Moves src into dstdir under the first free name made by namer(name, n)
 * (never replacing a file there); the name used into out. 0 or -1. */
static int
move_unique(struct fd_ctx *ctx, const char *src, const char *dstdir, const char *name,
            int (*namer)(const char *, int, char *, size_t), char *out, size_t olen)
{
    char dp[PATH_MAX];

    for (int n = 1; n <= 1000; n++) {
        if (namer(name, n, out, olen) != 0 || cmpr_fs_join(dp, sizeof(dp), dstdir, "", out) != 0)
            return -1;
        if (renameat2(AT_FDCWD, src, AT_FDCWD, dp, RENAME_NOREPLACE) == 0)
            return dir_changed(ctx, dstdir);
        if (errno == EEXIST)
            continue;
        if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
            /* a file system without RENAME_NOREPLACE: look, then rename */
            struct stat st;

            if (lstat(dp, &st) == 0)
                continue;
            if (rename(src, dp) == 0)
                return dir_changed(ctx, dstdir);
        }
        if (errno == EXDEV) {
            if (copy_across(src, dstdir, out, ctx->dc.mode) == 0)
                return 0;
            if (errno == EEXIST)
                continue;
        }
        return -1;
    }
    errno = EEXIST;
    return -1;
}

/* ---------------- the life of one file (worker thread) ---------------- */

/* a file that is not a CMP message: to errors, with NAME.reason beside it */
static void
reject(struct fd_ctx *ctx, const char *src, const char *name, const char *why)
{
    char used[NAME_MAX + 1], reason[NAME_MAX + 1], text[1024], pname[256];

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (move_unique(ctx, src, ctx->errors, name, cmpr_drop_alt_name, used, sizeof(used)) != 0) {
        cmpr_log_error("filedrop %s: %s: %s; cannot move it to %s: %s", ctx->name, pname, why,
                       ctx->errors, strerror(errno));
        return;
    }
    cmpr_log_warn("filedrop %s: %s: %s; moved to %s", ctx->name, pname, why, ctx->errors);
    snprintf(text, sizeof(text), "%s: %s\n", pname, why);
    snprintf(reason, sizeof(reason), "%.240s.reason", used);
    {
        char tmp[NAME_MAX + 1];

        snprintf(tmp, sizeof(tmp), ".%.240s.tmp", reason);
        if (cmpr_fs_write_synced(ctx->errors, tmp, reason, (const unsigned char *)text, strlen(text),
                                 ctx->dc.mode) != 0 || dir_changed(ctx, ctx->errors) != 0)
            cmpr_log_error("filedrop %s: cannot write %s/%s: %s", ctx->name, ctx->errors, reason,
                           strerror(errno));
    }
    cmpr_worker_result(&ctx->w, 0, 0);
}

/* R.N answered (A.N durable): the request goes to the archive (or away) */
static int
retire(struct fd_ctx *ctx, const char *name)
{
    char rp[PATH_MAX], used[NAME_MAX + 1], pname[256];

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (cmpr_fs_join(rp, sizeof(rp), ctx->proc, "R.", name) != 0)
        return -1;
    if (access(rp, F_OK) != 0)
        return 0;
    if (ctx->archive != NULL) {
        if (move_unique(ctx, rp, ctx->archive, name, cmpr_drop_alt_name, used, sizeof(used)) != 0) {
            cmpr_log_error("filedrop %s: %s: cannot archive it in %s: %s", ctx->name, pname,
                           ctx->archive, strerror(errno));
            return -1;
        }
        return dir_changed(ctx, ctx->proc);
    }
    if (unlink(rp) != 0 || dir_changed(ctx, ctx->proc) != 0) {
        cmpr_log_error("filedrop %s: %s: cannot remove it: %s", ctx->name, pname, strerror(errno));
        return -1;
    }
    return 0;
}

/* R.N retired: A.N becomes the answer in the outbox */
static int
publish(struct fd_ctx *ctx, const char *name)
{
    char ap[PATH_MAX], used[NAME_MAX + 1], pname[256], shown[256];

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (cmpr_fs_join(ap, sizeof(ap), ctx->proc, "A.", name) != 0)
        return -1;
    if (move_unique(ctx, ap, ctx->outbox, name, cmpr_drop_answer_name, used, sizeof(used)) != 0
            || dir_changed(ctx, ctx->proc) != 0) {
        cmpr_log_error("filedrop %s: %s: cannot publish the answer in %s: %s", ctx->name, pname,
                       ctx->outbox, strerror(errno));
        return -1;
    }
    cmpr_drop_printable(used, shown, sizeof(shown));
    cmpr_log_info("filedrop %s: %s answered in %s/%s", ctx->name, pname, ctx->outbox, shown);
    return 0;
}

/* R.N answered (A.N durable): retire the request, publish the answer, one
 * file on its own (after a restart) */
static int
finish(struct fd_ctx *ctx, const char *name)
{
    if (retire(ctx, name) != 0)
        return -1;
    cmpr_drop_crash_point("retired");
    if (publish(ctx, name) != 0)
        return -1;
    cmpr_drop_crash_point("published");
    return 0;
}

/* ---------------- answers pushed to a waiting client ---------------- */

/* Where a later answer for a client of the drop goes (a forwarded request
 * that waited): the next free NAME.N.rsp.pki in the outbox. */
struct fd_push {
    char outbox[PATH_MAX];
    char name[NAME_MAX + 1];
    unsigned mode;
};

static int
push_encode(const struct fd_push *p, char *buf, size_t len)
{
    char mode[16];
    const char *f[3] = { p->outbox, p->name, mode };

    snprintf(mode, sizeof(mode), "%o", p->mode);
    return cmpr_push_pack(buf, len, f, 3);
}

static int
push_decode(const char *addr, struct fd_push *p)
{
    char store[PATH_MAX + NAME_MAX + 64], *end;
    const char *f[3];

    if (cmpr_push_unpack(addr, f, 3, store, sizeof(store)) != 0 || strlen(f[0]) >= sizeof(p->outbox)
            || strlen(f[1]) >= sizeof(p->name))
        return -1;
    snprintf(p->outbox, sizeof(p->outbox), "%s", f[0]);
    snprintf(p->name, sizeof(p->name), "%s", f[1]);
    p->mode = (unsigned)strtoul(f[2], &end, 8);
    return *end == '\0' && p->mode <= 0777 ? 0 : -1;
}

static int
push(void *ctx, const char *addr, const unsigned char *der, size_t len, char *err, size_t errlen)
{
    struct fd_push p;
    char fname[300], path[PATH_MAX + 300], tmp[340];

    (void)ctx;
    if (push_decode(addr, &p) != 0) {
        snprintf(err, errlen, "malformed file address");
        return -1;
    }
    for (int n = 1; n <= 1000; n++) {
        if (cmpr_drop_answer_name(p.name, n, fname, sizeof(fname)) != 0
                || cmpr_fs_join(path, sizeof(path), p.outbox, "", fname) != 0)
            break;
        if (access(path, F_OK) == 0)
            continue;
        snprintf(tmp, sizeof(tmp), ".%s.tmp", fname);
        if (cmpr_fs_write_durable(p.outbox, tmp, fname, der, len, (mode_t)p.mode) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "no free answer name in %s", p.outbox);
    return -1;
}

static const struct cmpr_push_ops push_ops = { "file", push };

/* ---------------- the drop ---------------- */

/* R.N is ours: check it, run it through the core, keep the answer as A.N */
static int
process_claimed(struct fd_ctx *ctx, struct cmpr_core *core, const char *name, int resumed)
{
    char rp[PATH_MAX], why[400], pname[256], tmp[NAME_MAX + 1], ans[NAME_MAX + 1];
    unsigned char *data = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    uint64_t t0 = uv_hrtime();
    int r;

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (cmpr_fs_join(rp, sizeof(rp), ctx->proc, "R.", name) != 0)
        return -1;
    if (!cmpr_drop_matches(ctx->dc.pattern, name)) {
        snprintf(why, sizeof(why), "name does not match pattern '%s'", ctx->dc.pattern);
        reject(ctx, rp, name, why);
        return 0;
    }
    r = read_claimed(rp, (size_t)ctx->dc.max_size, &data, &len, why, sizeof(why));
    if (r == -1 || (r == 0 && cmpr_drop_check(data, len, (size_t)ctx->dc.max_size, why, sizeof(why)) != 0)) {
        free(data);
        reject(ctx, rp, name, why);
        return 0;
    }
    if (r == -2)
        return 0;               /* gone: removed by hand */
    if (r != 0) {
        cmpr_log_error("filedrop %s: %s: %s (kept, tried again later)", ctx->name, pname, why);
        return -1;
    }
    {
        /* where a forwarded request's later answer can be put */
        struct fd_push p;
        char addr[PATH_MAX + NAME_MAX + 64];
        struct cmpr_call call = { "file", pname, ctx->dc.label, resumed, "file", NULL, NULL };

        snprintf(p.outbox, sizeof(p.outbox), "%s", ctx->outbox);
        snprintf(p.name, sizeof(p.name), "%s", name);
        p.mode = ctx->dc.mode;
        if (push_encode(&p, addr, sizeof(addr)) == 0)
            call.push = addr;
        r = cmpr_transport_call(core, &call, data, len, &out, &out_len);
    }
    free(data);
    if (r != CMPR_OK) {
        cmpr_log_error("filedrop %s: %s: no answer could be made (kept, tried again later)",
                       ctx->name, pname);
        cmpr_worker_result(&ctx->w, 0, uv_hrtime() - t0);
        return -1;
    }
    cmpr_drop_crash_point("handled");
    snprintf(tmp, sizeof(tmp), "T.%s", name);
    snprintf(ans, sizeof(ans), "A.%s", name);
    r = cmpr_fs_write_synced(ctx->proc, tmp, ans, out, out_len, ctx->dc.mode);
    free(out);
    if (r != 0 || dir_changed(ctx, ctx->proc) != 0) {
        cmpr_log_error("filedrop %s: %s: cannot write the answer: %s (kept, tried again later)",
                       ctx->name, pname, strerror(errno));
        cmpr_worker_result(&ctx->w, 0, uv_hrtime() - t0);
        return -1;
    }
    cmpr_worker_result(&ctx->w, 1, uv_hrtime() - t0);
    if (ctx->batching)
        return 1;               /* the batch retires and publishes it */
    cmpr_drop_crash_point("answered");
    return finish(ctx, name);
}

/* What a previous run (or a failed attempt) left in the processing folder. */
static int
recover(struct fd_ctx *ctx, struct cmpr_core *core)
{
    DIR *dir = opendir(ctx->proc);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int left = 0;

    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL && n < MAX_SCAN) {
        const char *nm = de->d_name;

        if (strncmp(nm, "T.", 2) == 0) {
            char p[PATH_MAX];

            if (cmpr_fs_join(p, sizeof(p), ctx->proc, "", nm) == 0)
                (void)unlink(p);
            continue;
        }
        if (strncmp(nm, "R.", 2) != 0 && strncmp(nm, "A.", 2) != 0)
            continue;
        if (cmpr_array_grow(&names, &cap, n + 1, sizeof(*names), SIZE_MAX / sizeof(*names)) != CMPR_OK)
            break;
        if ((names[n] = strdup(nm)) != NULL)
            n++;
    }
    closedir(dir);
    for (size_t i = 0; i < n && !cmpr_worker_stopping(&ctx->w); i++) {
        const char *name = names[i] + 2;
        char ap[PATH_MAX];

        if (names[i][0] == 'A') {
            char rp[PATH_MAX];

            /* with R.N present the R entry handles it */
            if (cmpr_fs_join(rp, sizeof(rp), ctx->proc, "R.", name) == 0 && access(rp, F_OK) != 0)
                left |= finish(ctx, name) != 0;
            continue;
        }
        cmpr_worker_busy(&ctx->w, 1);
        if (cmpr_fs_join(ap, sizeof(ap), ctx->proc, "A.", name) == 0 && access(ap, F_OK) == 0)
            left |= finish(ctx, name) != 0;
        else
            left |= process_claimed(ctx, core, name, 1) != 0;
        cmpr_worker_busy(&ctx->w, -1);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return left ? -1 : 0;
}

/* a name too long to claim under a prefix goes to errors straight away */
static void
reject_in_inbox(struct fd_ctx *ctx, const char *name, const char *why)
{
    char p[PATH_MAX];

    if (cmpr_fs_join(p, sizeof(p), ctx->inbox, "", name) == 0)
        reject(ctx, p, name, why);
}

/* Up to BATCH files of the inbox, oldest first, each step for all of them,
 * then one fsync per folder it touched: claimed, answered, retired,
 * published. A file that fails a step stays where it is for recover(). */
static void
run_batch(struct fd_ctx *ctx, struct cmpr_core *core, const struct cmpr_drop_entry *files, size_t n)
{
    const char *mine[BATCH];
    size_t m = 0, k;

    for (size_t i = 0; i < n; i++) {
        char src[PATH_MAX], dst[PATH_MAX];

        if (cmpr_fs_join(src, sizeof(src), ctx->inbox, "", files[i].name) != 0
                || cmpr_fs_join(dst, sizeof(dst), ctx->proc, "R.", files[i].name) != 0)
            continue;
        /* the claim: whoever renames first owns the file */
        if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) != 0
                && (errno != EINVAL || rename(src, dst) != 0)) {
            if (errno != ENOENT)
                cmpr_log_error("filedrop %s: cannot claim %s: %s", ctx->name, src, strerror(errno));
            continue;
        }
        mine[m++] = files[i].name;
    }
    if (m == 0)
        return;
    (void)cmpr_fs_fsync_dir(ctx->proc);
    cmpr_drop_crash_point("claimed");
    ctx->batching = 1;
    cmpr_worker_busy(&ctx->w, (int)m);
    /* answered: only those with an A.N go on (rejected ones went to errors) */
    for (size_t i = k = 0; i < m; i++)
        if (process_claimed(ctx, core, mine[i], 0) == 1)
            mine[k++] = mine[i];
    cmpr_worker_busy(&ctx->w, -(int)m);
    if (step_done(ctx) == 0 && k > 0) {
        cmpr_drop_crash_point("answered");
        for (size_t i = m = 0; i < k; i++)
            if (retire(ctx, mine[i]) == 0)
                mine[m++] = mine[i];
        if (step_done(ctx) == 0) {
            cmpr_drop_crash_point("retired");
            for (size_t i = 0; i < m; i++)
                (void)publish(ctx, mine[i]);
            (void)step_done(ctx);
            cmpr_drop_crash_point("published");
        }
    }
    ctx->batching = 0;
    ctx->dirty = 0;
}

/* One cycle: finish what is claimed, then claim and process every file that
 * has stopped changing since the last look. */
static long
cycle(struct cmpr_worker *w, struct cmpr_core *core, void *arg)
{
    struct fd_ctx *ctx = arg;
    DIR *dir;
    struct dirent *de;
    struct cmpr_drop_entry *now = NULL, *ready = NULL;
    size_t n_now = 0, cap = 0, n_ready = 0;
    long wait;
    int stuck;

    if (core == NULL)
        return -1;                  /* the thread is ending: nothing to release */
    /* a file that cannot be finished now is tried again next cycle; it does
     * not hold up the others */
    stuck = recover(ctx, core) != 0;
    if ((dir = opendir(ctx->inbox)) == NULL) {
        cmpr_log_error("filedrop %s: cannot read %s: %s", ctx->name, ctx->inbox, strerror(errno));
        return ctx->rescan_ms;
    }
    while ((de = readdir(dir)) != NULL && n_now < MAX_SCAN) {
        struct stat st;

        if (cmpr_drop_ignored(de->d_name)
                || fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0
                || S_ISDIR(st.st_mode))
            continue;
        if (strlen(de->d_name) > CMPR_DROP_MAX_NAME) {
            reject_in_inbox(ctx, de->d_name, "name longer than 200 bytes");
            continue;
        }
        if (cmpr_array_grow(&now, &cap, n_now + 1, sizeof(*now), SIZE_MAX / sizeof(*now)) != CMPR_OK)
            break;
        now[n_now].name = strdup(de->d_name);
        if (now[n_now].name == NULL)
            break;
        now[n_now].size = st.st_size;
        now[n_now].mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        now[n_now].ino = st.st_ino;
        now[n_now].since = 0;
        n_now++;
    }
    closedir(dir);
    /* unchanged (size, mtime, inode) for settle_ms: the writer is done */
    ready = n_now > 0 ? calloc(n_now, sizeof(*ready)) : NULL;
    wait = cmpr_drop_settle(ctx->seen, ctx->n_seen, now, ready != NULL ? n_now : 0, ctx->dc.settle_ms,
                            uv_hrtime() / 1000000u, ready, &n_ready);
    for (size_t i = 0; i < n_ready && !cmpr_worker_stopping(w); i += BATCH)
        run_batch(ctx, core, ready + i, n_ready - i < BATCH ? n_ready - i : BATCH);
    free(ready);
    cmpr_drop_entries_free(ctx->seen, ctx->n_seen);
    ctx->seen = now;
    ctx->n_seen = n_now;
    if (stuck && (wait < 0 || wait > ctx->rescan_ms))
        wait = ctx->rescan_ms;
    return wait;
}

/* ---------------- loop thread ---------------- */

static void
on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct fd_ctx *ctx = h->data;

    (void)filename;
    (void)events;
    (void)status;
    cmpr_worker_kick(&ctx->w);
}

static const char *const directives[] = {
    "inbox", "outbox", "errors", "archive", "processing", "pattern", "rescan", "settle_ms",
    "label", "max_size", "mode", "instance", NULL
};

static int
fd_configure(void *vctx, const char *name, const struct cmpr_conf_group *g, char **err_r)
{
    struct fd_ctx *ctx = vctx;
    int r;

    if ((r = cmpr_conf_group_check(g, directives, err_r)) != CMPR_OK)
        return r;
    ctx->name = strdup(g->name);
    ctx->inbox = cmpr_conf_group_path(g, "inbox", NULL);
    ctx->outbox = cmpr_conf_group_path(g, "outbox", NULL);
    ctx->errors = cmpr_conf_group_path(g, "errors", NULL);
    ctx->archive = cmpr_conf_group_path(g, "archive", NULL);
    if (ctx->inbox == NULL || ctx->outbox == NULL || ctx->errors == NULL) {
        *err_r = cmpr_conf_group_error(g, NULL, "[filedrop %s] needs inbox, outbox and errors",
                                       g->name);
        return CMPR_ERR_CONFIG;
    }
    if (cmpr_conf_group_get(g, "processing") != NULL) {
        ctx->processing = cmpr_conf_group_path(g, "processing", NULL);
    } else if (asprintf(&ctx->processing, "%s/.processing", ctx->inbox) < 0) {
        ctx->processing = NULL;
    }
    if ((r = cmpr_conf_group_long(g, "rescan", 10, 1, 86400, &ctx->rescan_ms, err_r)))
        return r;
    ctx->rescan_ms *= 1000;
    if ((r = cmpr_drop_configure(g, ctx->outbox, &ctx->dc, err_r)) != CMPR_OK)
        return r;
    if (ctx->processing == NULL || asprintf(&ctx->proc, "%s/%s", ctx->processing, ctx->dc.instance) < 0) {
        ctx->proc = NULL;
        return CMPR_ERR_ALLOC;
    }
    return CMPR_OK;
}

static int
fd_start(void *vctx, struct cmpr_daemon *d, char **err_r)
{
    struct fd_ctx *ctx = vctx;
    struct stat a, b;

    ctx->d = d;
    if (cmpr_fs_mkdirs(ctx->inbox, err_r, "filedrop inbox") != 0 || cmpr_fs_mkdirs(ctx->outbox, err_r, "outbox") != 0
            || cmpr_fs_mkdirs(ctx->errors, err_r, "errors") != 0
            || (ctx->archive != NULL && cmpr_fs_mkdirs(ctx->archive, err_r, "archive") != 0)
            || cmpr_fs_mkdirs(ctx->proc, err_r, "processing") != 0)
        return CMPR_ERR_CONFIG;
    /* the claim is a rename: the processing folder must share the inbox's file system */
    if (stat(ctx->inbox, &a) != 0 || stat(ctx->proc, &b) != 0 || a.st_dev != b.st_dev) {
        if (asprintf(err_r, "filedrop %s: processing folder %s is not on the file system of "
                     "the inbox %s", ctx->name, ctx->proc, ctx->inbox) < 0)
            *err_r = NULL;
        return CMPR_ERR_CONFIG;
    }
    /* one process per instance: a second one would take the first one's
     * claimed files for crash leftovers */
    if ((ctx->lock_fd = cmpr_fs_lock_dir(ctx->proc)) < 0) {
        if (asprintf(err_r, "filedrop %s: instance %s (%s) is in use by another process; "
                     "give each daemon on a shared inbox its own instance =", ctx->name,
                     ctx->dc.instance, ctx->proc) < 0)
            *err_r = NULL;
        return CMPR_ERR_CONFIG;
    }
    uv_fs_event_init(d->loop, &ctx->ev);
    ctx->ev.data = ctx;
    if (uv_fs_event_start(&ctx->ev, on_event, ctx->inbox, 0) == 0)
        ctx->watching = 1;
    else
        cmpr_log_warn("filedrop %s: cannot watch %s; rescanning every %ld s", ctx->name,
                      ctx->inbox, ctx->rescan_ms / 1000);
    if (cmpr_worker_start(&ctx->w, d, "file", ctx->rescan_ms, cycle, ctx) != 0) {
        *err_r = strdup("filedrop: cannot start its thread");
        return CMPR_ERR_INTERNAL;
    }
    cmpr_log_info("filedrop %s: watching %s (instance %s)", ctx->name, ctx->inbox, ctx->dc.instance);
    return CMPR_OK;
}

static void
part_done(struct fd_ctx *ctx)
{
    if (--ctx->closing == 0 && ctx->stop_done != NULL) {
        void (*done)(void *) = ctx->stop_done;

        ctx->stop_done = NULL;
        done(ctx->stop_arg);
    }
}

static void
ev_closed(uv_handle_t *h)
{
    part_done(h->data);
}

static void
worker_done(void *arg)
{
    part_done(arg);
}

static void
fd_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    struct fd_ctx *ctx = vctx;

    ctx->stop_done = done;
    ctx->stop_arg = arg;
    ctx->closing = 2;
    uv_close((uv_handle_t *)&ctx->ev, ev_closed);
    cmpr_worker_stop(&ctx->w, worker_done, ctx);
}

static size_t
fd_in_flight(void *vctx)
{
    struct fd_ctx *ctx = vctx;

    return cmpr_worker_in_flight(&ctx->w);
}

static void
fd_free(void *vctx)
{
    struct fd_ctx *ctx = vctx;

    if (ctx->d != NULL && ctx->lock_fd >= 0)
        close(ctx->lock_fd);
    cmpr_drop_entries_free(ctx->seen, ctx->n_seen);
    free(ctx->name);
    free(ctx->inbox);
    free(ctx->outbox);
    free(ctx->errors);
    free(ctx->archive);
    free(ctx->processing);
    free(ctx->proc);
    free(ctx->dc.pattern);
    free(ctx->dc.label);
}

const struct cmpr_transport_ops cmpr_filedrop_transport = {
    .name = "filedrop",
    .group_type = "filedrop",
    .group_names = NULL,
    .ctx_size = sizeof(struct fd_ctx),
    .configure = fd_configure,
    .start = fd_start,
    .stop = fd_stop,
    .in_flight = fd_in_flight,
    .port = cmpr_transport_no_port,
    .set_address = cmpr_transport_no_address,
    .free = fd_free,
    .upstream = &cmpr_file_upstream,
    .push = &push_ops,
};
