/*
 * CMP by files in remote folders over SSH ([sftp NAME], libssh): the file
 * drop of an offline site's transfer host, fetched from here. RFC 9483 6.4:
 * one DER PKIMessage per file, extension .pki.
 *
 * All SSH work runs on a dedicated thread (worker.c), never on the loop and
 * never on the thread pool: a dead or slow server holds up nothing else.
 * The host key must verify against known_hosts; an unknown or changed key
 * is refused and logged. The connection is kept between cycles and made
 * again with backoff after a failure.
 *
 * The same exactly-once steps as the local file drop, with every state kept
 * on the server in this instance's processing folder, each step one remote
 * rename (OpenSSH implements SFTP rename with link+unlink: it never
 * replaces a file, so of two claimers only one wins):
 *   claim    inbox/N -> processing/<instance>/R.N
 *   answer   core -> processing/<instance>/T.N (written, fsync@openssh.com),
 *            renamed to A.N
 *   retire   R.N -> archive (or removed)
 *   publish  A.N -> outbox/<N without ext>.rsp.pki (first free name)
 * A crash of either side leaves R.N (run again, resumed: the core answers
 * its retransmission from the store), R.N+A.N or A.N (finish the steps).
 *
 * A server without the SFTP subsystem is served by SCP (protocol = scp, or
 * auto when the subsystem is refused): files travel by the SCP protocol
 * (scp -f / scp -t on an exec channel) and the operations SCP lacks (list,
 * rename without replacing, remove) are POSIX shell commands with every
 * path single-quoted.
 */
#define _GNU_SOURCE 1
#include "transports/transport.h"
#include "transports/client/client.h"
#include "codec/dropname.h"
#include "transports/lib/dropconf.h"
#include "transports/lib/worker.h"
#include "transports/lib/rfs.h"
#include "core/core.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STOP_GRACE_MS 2000            /* a stop waits this long for the step in progress */

struct sftp_ctx {
    char *name, *host, *user, *identity, *known_hosts;
    char *inbox, *outbox, *errors, *archive, *processing, *proc;
    struct cmpr_drop_conf dc;
    int port;
    int proto;                          /* CMPR_RFS_* from the configuration */
    long interval_ms, timeout, backoff_max;
    struct cmpr_daemon *d;
    struct cmpr_worker w;
    int started;
    void (*stop_done)(void *arg);
    void *stop_arg;
    struct cmpr_rfs_cut cut;            /* the loop thread ends the session's waits with it */
    /* worker thread only */
    struct cmpr_rfs rfs;
    long backoff;                       /* ms before the next connection attempt */
    int down;                           /* the last attempt failed (log once per outage) */
    struct cmpr_drop_entry *seen;
    size_t n_seen;
    int maybe_left;                     /* the processing folder may hold files to finish */
};

/* ---------------- the SSH session (worker thread) ---------------- */

static int
connect_server(struct sftp_ctx *ctx)
{
    struct cmpr_rfs_opts o = { ctx->host, ctx->user, ctx->identity, ctx->known_hosts, ctx->port,
                               ctx->proto, ctx->timeout, ctx->dc.mode, &ctx->cut };
    char why[512] = "";

    if (cmpr_rfs_connect(&ctx->rfs, &o, why, sizeof(why)) != 0) {
        if ((!ctx->down || ctx->backoff >= ctx->backoff_max) && !cmpr_worker_stopping(&ctx->w))
            cmpr_log_error("sftp %s: %s@%s:%d: %s", ctx->name, ctx->user, ctx->host, ctx->port, why);
        ctx->down = 1;
        ctx->backoff = ctx->backoff == 0 ? 1000 : ctx->backoff * 2;
        if (ctx->backoff > ctx->backoff_max)
            ctx->backoff = ctx->backoff_max;
        return -1;
    }
    if (ctx->rfs.fell_back && !ctx->down)
        cmpr_log_warn("sftp %s: %s:%d offers no SFTP subsystem; using SCP", ctx->name, ctx->host,
                      ctx->port);
    cmpr_rfs_mkdirs(&ctx->rfs, ctx->proc);
    cmpr_rfs_mkdirs(&ctx->rfs, ctx->errors);
    cmpr_rfs_mkdirs(&ctx->rfs, ctx->outbox);
    if (ctx->archive != NULL)
        cmpr_rfs_mkdirs(&ctx->rfs, ctx->archive);
    if (cmpr_worker_stopping(&ctx->w))
        return -1;                      /* perhaps cut off: nothing to report */
    if (ctx->down)
        cmpr_log_info("sftp %s: connected to %s@%s:%d again", ctx->name, ctx->user, ctx->host, ctx->port);
    else
        cmpr_log_info("sftp %s: connected to %s@%s:%d", ctx->name, ctx->user, ctx->host, ctx->port);
    ctx->down = 0;
    ctx->backoff = 0;
    ctx->maybe_left = 1;                /* a previous run or session may have left some */
    return 0;
}

/* ---------------- the life of one file (worker thread) ---------------- */

static int
reject(struct sftp_ctx *ctx, const char *src, const char *name, const char *why)
{
    char used[300], reason[320], tmp[340], text[1024], pname[256];

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (cmpr_rfs_move_unique(&ctx->rfs, src, ctx->errors, name, cmpr_drop_alt_name, used, sizeof(used)) != 0) {
        cmpr_log_error("sftp %s: %s: %s; cannot move it to %s: %s", ctx->name, pname, why,
                       ctx->errors, cmpr_rfs_error(&ctx->rfs));
        return -1;
    }
    cmpr_log_warn("sftp %s: %s: %s; moved to %s", ctx->name, pname, why, ctx->errors);
    snprintf(text, sizeof(text), "%s: %s\n", pname, why);
    snprintf(reason, sizeof(reason), "%s.reason", used);
    snprintf(tmp, sizeof(tmp), ".%s.tmp", reason);
    if (cmpr_rfs_put(&ctx->rfs, ctx->errors, tmp, reason, (const unsigned char *)text, strlen(text)) != 0)
        cmpr_log_error("sftp %s: cannot write %s/%s", ctx->name, ctx->errors, reason);
    cmpr_worker_result(&ctx->w, 0, 0);
    return 0;
}

/* A.N is on the server: retire R.N, publish A.N */
static int
finish(struct sftp_ctx *ctx, const char *name)
{
    char rp[CMPR_RFS_PATH], ap[CMPR_RFS_PATH], used[300], pname[256], pused[300];

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (cmpr_rfs_join(rp, ctx->proc, "R.", name) != 0 || cmpr_rfs_join(ap, ctx->proc, "A.", name) != 0)
        return -1;
    if (cmpr_rfs_exists(&ctx->rfs, rp)) {
        int r = ctx->archive != NULL
                ? cmpr_rfs_move_unique(&ctx->rfs, rp, ctx->archive, name, cmpr_drop_alt_name, used, sizeof(used))
                : cmpr_rfs_unlink(&ctx->rfs, rp);

        if (r != 0) {
            cmpr_log_error("sftp %s: %s: cannot retire the request: %s", ctx->name, pname,
                           cmpr_rfs_error(&ctx->rfs));
            return -1;
        }
    }
    cmpr_drop_crash_point("retired");
    if (cmpr_rfs_move_unique(&ctx->rfs, ap, ctx->outbox, name, cmpr_drop_answer_name, used, sizeof(used)) != 0) {
        cmpr_log_error("sftp %s: %s: cannot publish the answer in %s: %s", ctx->name, pname,
                       ctx->outbox, cmpr_rfs_error(&ctx->rfs));
        return -1;
    }
    cmpr_drop_crash_point("published");
    cmpr_drop_printable(used, pused, sizeof(pused));
    cmpr_log_info("sftp %s: %s answered in %s:%s/%s", ctx->name, pname, ctx->host, ctx->outbox, pused);
    return 0;
}

/* R.N is ours on the server: fetch, check, answer (A.N), finish */
static int
process_claimed(struct sftp_ctx *ctx, struct cmpr_core *core, const char *name, int resumed)
{
    char rp[CMPR_RFS_PATH], why[400], pname[256], tmp[300], ans[300];
    unsigned char *data = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    uint64_t t0 = uv_hrtime();
    int r;

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (cmpr_rfs_join(rp, ctx->proc, "R.", name) != 0)
        return -1;
    if (!cmpr_drop_matches(ctx->dc.pattern, name)) {
        snprintf(why, sizeof(why), "name does not match pattern '%s'", ctx->dc.pattern);
        return reject(ctx, rp, name, why);
    }
    r = cmpr_rfs_get(&ctx->rfs, rp, (size_t)ctx->dc.max_size, &data, &len, why, sizeof(why));
    if (r == -1 || (r == 0 && cmpr_drop_check(data, len, (size_t)ctx->dc.max_size, why, sizeof(why)) != 0)) {
        free(data);
        return reject(ctx, rp, name, why);
    }
    if (r != 0) {
        cmpr_log_error("sftp %s: %s: %s (kept, tried again later)", ctx->name, pname, why);
        return -1;
    }
    {
        struct cmpr_call call = { "sftp", pname, ctx->dc.label, resumed, NULL, NULL, NULL };

        r = cmpr_transport_call(core, &call, data, len, &out, &out_len);
    }
    free(data);
    if (r != CMPR_OK) {
        cmpr_log_error("sftp %s: %s: no answer could be made (kept, tried again later)", ctx->name, pname);
        cmpr_worker_result(&ctx->w, 0, uv_hrtime() - t0);
        return -1;
    }
    cmpr_drop_crash_point("handled");
    snprintf(tmp, sizeof(tmp), "T.%s", name);
    snprintf(ans, sizeof(ans), "A.%s", name);
    r = cmpr_rfs_put(&ctx->rfs, ctx->proc, tmp, ans, out, out_len);
    free(out);
    if (r != 0) {
        cmpr_log_error("sftp %s: %s: cannot upload the answer: %s (kept, tried again later)",
                       ctx->name, pname, cmpr_rfs_error(&ctx->rfs));
        return -1;
    }
    cmpr_drop_crash_point("answered");
    r = finish(ctx, name);
    cmpr_worker_result(&ctx->w, r == 0, uv_hrtime() - t0);
    return r;
}

/* ---------------- many files at once (worker thread) ---------------- */

/* files claimed per batch: each step of a batch is one exchange (one
 * script or transfer over SCP) instead of one per file */
#define BATCH 500

struct item {
    const char *name;
    char pname[256];
    char rp[CMPR_RFS_PATH], ap[CMPR_RFS_PATH];
    char tmp[32], fin[300];
    unsigned char *out;
    size_t out_len;
    char type;                          /* what was claimed, if the claim said so */
    long long size;
    int stage;                          /* how far it got: 1 claimed, 2 fetched, 3 answered, 4 uploaded, 5 retired */
    uint64_t t0;
};

/* claim: inbox/N -> processing/R.N, never replacing (whoever renames first owns it) */
static int
batch_claim(struct sftp_ctx *ctx, struct item *it, size_t n, struct cmpr_rfs_op *ops)
{
    size_t claimed = 0;

    for (size_t k = 0; k < n; k++) {
        ops[k] = (struct cmpr_rfs_op){ .kind = CMPR_RFS_OP_RENAME, .after = -1, .stat_dst = 1 };
        if (cmpr_rfs_join(ops[k].src, ctx->inbox, "", it[k].name) != 0
                || cmpr_rfs_join(ops[k].dst, ctx->proc, "R.", it[k].name) != 0)
            ops[k].kind = CMPR_RFS_OP_SKIP;
    }
    if (cmpr_rfs_run(&ctx->rfs, ops, n) != 0)
        ctx->maybe_left = 1;            /* some may be claimed: recovered next cycle */
    for (size_t k = 0; k < n; k++)
        if (ops[k].ok && ops[k].kind == CMPR_RFS_OP_RENAME) {
            it[k].stage = 1;
            it[k].type = ops[k].type;       /* its size: as listed (it was not written since) */
            claimed++;
        }
    if (claimed > 0)
        cmpr_drop_crash_point("claimed");
    return (int)claimed;
}

/* fetch what was claimed, check it, and have the core answer it */
static void
batch_answer(struct sftp_ctx *ctx, struct cmpr_core *core, struct item *it, size_t n,
             struct cmpr_rfs_file *f)
{
    size_t m = 0;
    size_t *of = calloc(n, sizeof(*of));

    if (of == NULL)
        return;
    for (size_t k = 0; k < n; k++) {
        char why[400];

        if (it[k].stage != 1)
            continue;
        if (!cmpr_drop_matches(ctx->dc.pattern, it[k].name)) {
            snprintf(why, sizeof(why), "name does not match pattern '%s'", ctx->dc.pattern);
            (void)reject(ctx, it[k].rp, it[k].name, why);
            it[k].stage = 0;
            continue;
        }
        f[m] = (struct cmpr_rfs_file){ .path = it[k].rp, .kind = it[k].type, .size = it[k].size };
        of[m++] = k;
    }
    cmpr_rfs_get_many(&ctx->rfs, f, m, (size_t)ctx->dc.max_size);
    for (size_t j = 0; j < m; j++) {
        struct item *x = &it[of[j]];
        char why[400];
        int r = f[j].r;

        snprintf(why, sizeof(why), "%s", f[j].why);
        if (r == -1 || (r == 0 && cmpr_drop_check(f[j].data, f[j].len, (size_t)ctx->dc.max_size, why,
                                                  sizeof(why)) != 0)) {
            (void)reject(ctx, x->rp, x->name, why);
            x->stage = 0;
        } else if (r != 0) {
            cmpr_log_error("sftp %s: %s: %s (kept, tried again later)", ctx->name, x->pname, why);
            ctx->maybe_left = 1;
        } else if (!cmpr_worker_stopping(&ctx->w)) {
            struct cmpr_call call = { "sftp", x->pname, ctx->dc.label, 0, NULL, NULL, NULL };

            x->t0 = uv_hrtime();
            cmpr_worker_busy(&ctx->w, 1);
            if (cmpr_transport_call(core, &call, f[j].data, f[j].len, &x->out, &x->out_len) == CMPR_OK) {
                x->stage = 3;
                cmpr_drop_crash_point("handled");
            } else {
                cmpr_log_error("sftp %s: %s: no answer could be made (kept, tried again later)", ctx->name,
                               x->pname);
                cmpr_worker_result(&ctx->w, 0, uv_hrtime() - x->t0);
                ctx->maybe_left = 1;
            }
            cmpr_worker_busy(&ctx->w, -1);
        } else {
            ctx->maybe_left = 1;        /* stopping: the next start answers it */
        }
        free(f[j].data);
    }
    free(of);
}

/* the answers up as A.N; then retire every R.N; then publish every A.N */
static void
batch_finish(struct sftp_ctx *ctx, struct item *it, size_t n, struct cmpr_rfs_put *p, struct cmpr_rfs_op *ops)
{
    size_t m = 0, up, *of = calloc(n, sizeof(*of));

    if (of == NULL)
        return;
    for (size_t k = 0; k < n; k++)
        if (it[k].stage == 3) {
            snprintf(it[k].tmp, sizeof(it[k].tmp), "T.%zu", k);
            snprintf(it[k].fin, sizeof(it[k].fin), "A.%s", it[k].name);
            p[m] = (struct cmpr_rfs_put){ it[k].tmp, it[k].fin, it[k].out, it[k].out_len, 0 };
            of[m++] = k;
        }
    cmpr_rfs_put_many(&ctx->rfs, ctx->proc, p, m);
    up = 0;
    for (size_t j = 0; j < m; j++) {
        struct item *x = &it[of[j]];

        if (p[j].ok) {
            x->stage = 4;
            up++;
        } else {
            cmpr_log_error("sftp %s: %s: cannot upload the answer (kept, tried again later)", ctx->name,
                           x->pname);
            ctx->maybe_left = 1;
        }
    }
    if (up > 0)
        cmpr_drop_crash_point("answered");
    /* retire: R.N into the archive, or removed */
    for (size_t k = 0; k < n; k++) {
        ops[k] = (struct cmpr_rfs_op){ .kind = CMPR_RFS_OP_UNLINK, .after = -1 };
        snprintf(ops[k].src, sizeof(ops[k].src), "%s", it[k].rp);
        if (it[k].stage == 4 && ctx->archive != NULL) {
            ops[k].kind = CMPR_RFS_OP_MOVE_UNIQUE;
            snprintf(ops[k].dst, sizeof(ops[k].dst), "%s", ctx->archive);
            ops[k].name = it[k].name;
            ops[k].namer = cmpr_drop_alt_name;
        } else if (it[k].stage != 4) {
            ops[k].kind = CMPR_RFS_OP_SKIP;
        }
    }
    (void)cmpr_rfs_run(&ctx->rfs, ops, n);
    m = 0;
    for (size_t k = 0; k < n; k++)
        if (it[k].stage == 4 && ops[k].ok) {
            it[k].stage = 5;
            m++;
        } else if (it[k].stage == 4) {
            ctx->maybe_left = 1;        /* A.N and R.N: finished next cycle */
        }
    if (m == 0) {
        free(of);
        return;
    }
    cmpr_drop_crash_point("retired");
    /* publish: A.N into the outbox under the first free answer name */
    for (size_t k = 0; k < n; k++) {
        ops[k] = (struct cmpr_rfs_op){ .kind = CMPR_RFS_OP_MOVE_UNIQUE, .after = -1 };
        snprintf(ops[k].src, sizeof(ops[k].src), "%s", it[k].ap);
        snprintf(ops[k].dst, sizeof(ops[k].dst), "%s", ctx->outbox);
        ops[k].name = it[k].name;
        ops[k].namer = cmpr_drop_answer_name;
        if (it[k].stage != 5)
            ops[k].kind = CMPR_RFS_OP_SKIP;
    }
    (void)cmpr_rfs_run(&ctx->rfs, ops, n);
    for (size_t k = 0; k < n; k++)
        if (ops[k].ok) {
            cmpr_drop_crash_point("published");
            break;
        }
    for (size_t k = 0; k < n; k++) {
        char pused[300];

        if (it[k].stage != 5)
            continue;
        if (!ops[k].ok) {
            cmpr_log_error("sftp %s: %s: cannot publish the answer in %s: %s (tried again later)", ctx->name,
                           it[k].pname, ctx->outbox, cmpr_rfs_error(&ctx->rfs));
            ctx->maybe_left = 1;
            continue;
        }
        cmpr_drop_printable(ops[k].used, pused, sizeof(pused));
        cmpr_log_info("sftp %s: %s answered in %s:%s/%s", ctx->name, it[k].pname, ctx->host, ctx->outbox,
                      pused);
        cmpr_worker_result(&ctx->w, 1, uv_hrtime() - it[k].t0);
    }
    free(of);
}

/* up to BATCH ready files of the inbox, each step for all of them at once */
static void
process_batch(struct sftp_ctx *ctx, struct cmpr_core *core, const struct cmpr_drop_entry *ready, size_t n)
{
    struct item *it = calloc(n, sizeof(*it));
    struct cmpr_rfs_op *ops = calloc(n, sizeof(*ops));
    struct cmpr_rfs_file *f = calloc(n, sizeof(*f));
    struct cmpr_rfs_put *p = calloc(n, sizeof(*p));

    if (it == NULL || ops == NULL || f == NULL || p == NULL)
        goto out;
    for (size_t k = 0; k < n; k++) {
        it[k].name = ready[k].name;
        it[k].size = ready[k].size;
        cmpr_drop_printable(it[k].name, it[k].pname, sizeof(it[k].pname));
        if (cmpr_rfs_join(it[k].rp, ctx->proc, "R.", it[k].name) != 0
                || cmpr_rfs_join(it[k].ap, ctx->proc, "A.", it[k].name) != 0)
            it[k].rp[0] = it[k].ap[0] = '\0';
    }
    if (batch_claim(ctx, it, n, ops) > 0) {
        batch_answer(ctx, core, it, n, f);
        batch_finish(ctx, it, n, p, ops);
    }
out:
    for (size_t k = 0; it != NULL && k < n; k++)
        free(it[k].out);
    free(it);
    free(ops);
    free(f);
    free(p);
}

static int
recover(struct sftp_ctx *ctx, struct cmpr_core *core)
{
    struct cmpr_drop_entry *e;
    size_t n;
    int left = 0;

    if (cmpr_rfs_list(&ctx->rfs, ctx->proc, &e, &n, 0) != 0)
        return -1;
    for (size_t i = 0; i < n && cmpr_rfs_alive(&ctx->rfs) && !cmpr_worker_stopping(&ctx->w); i++) {
        const char *nm = e[i].name, *name = nm + 2;
        char p[CMPR_RFS_PATH];

        if (strncmp(nm, "T.", 2) == 0) {
            if (cmpr_rfs_join(p, ctx->proc, "", nm) == 0)
                (void)cmpr_rfs_unlink(&ctx->rfs, p);
        } else if (strncmp(nm, "A.", 2) == 0) {
            if (cmpr_rfs_join(p, ctx->proc, "R.", name) == 0 && !cmpr_rfs_exists(&ctx->rfs, p))
                left |= finish(ctx, name) != 0;
        } else if (strncmp(nm, "R.", 2) == 0) {
            cmpr_worker_busy(&ctx->w, 1);
            if (cmpr_rfs_join(p, ctx->proc, "A.", name) == 0 && cmpr_rfs_exists(&ctx->rfs, p))
                left |= finish(ctx, name) != 0;
            else
                left |= process_claimed(ctx, core, name, 1) != 0;
            cmpr_worker_busy(&ctx->w, -1);
        }
    }
    cmpr_drop_entries_free(e, n);
    return left ? -1 : 0;
}

static long
cycle(struct cmpr_worker *w, struct cmpr_core *core, void *arg)
{
    struct sftp_ctx *ctx = arg;
    struct cmpr_drop_entry *now = NULL, *ready = NULL;
    size_t n_now = 0, n_ready = 0, keep = 0;
    long wait;
    int stuck;

    if (core == NULL) {
        cmpr_rfs_close(&ctx->rfs);            /* the thread is ending: close the session here */
        return -1;
    }
    if (!cmpr_rfs_alive(&ctx->rfs)) {
        cmpr_rfs_close(&ctx->rfs);
        if (connect_server(ctx) != 0)
            return ctx->backoff;
    }
    /* a file that cannot be finished now is tried again next cycle; it does
     * not hold up the others */
    if (ctx->maybe_left) {
        stuck = recover(ctx, core) != 0;
        ctx->maybe_left = stuck;
    } else {
        stuck = 0;
    }
    if (!cmpr_rfs_alive(&ctx->rfs))
        goto trouble;
    if (cmpr_rfs_list(&ctx->rfs, ctx->inbox, &now, &n_now, 1) != 0) {
        if (!cmpr_worker_stopping(w))
            cmpr_log_error("sftp %s: cannot list %s: %s", ctx->name, ctx->inbox, cmpr_rfs_error(&ctx->rfs));
        goto trouble;
    }
    /* drop what is not ours to look at, keep the rest for settling */
    for (size_t i = 0; i < n_now; i++) {
        if (cmpr_drop_ignored(now[i].name) || strlen(now[i].name) > CMPR_DROP_MAX_NAME
                || strchr(now[i].name, '/') != NULL) {
            free(now[i].name);
            continue;
        }
        now[keep++] = now[i];
    }
    n_now = keep;
    ready = n_now > 0 ? calloc(n_now, sizeof(*ready)) : NULL;
    wait = cmpr_drop_settle(ctx->seen, ctx->n_seen, now, ready != NULL ? n_now : 0, ctx->dc.settle_ms,
                            uv_hrtime() / 1000000u, ready, &n_ready);
    for (size_t i = 0; i < n_ready && cmpr_rfs_alive(&ctx->rfs) && !cmpr_worker_stopping(w); i += BATCH)
        process_batch(ctx, core, ready + i, n_ready - i < BATCH ? n_ready - i : BATCH);
    free(ready);
    cmpr_drop_entries_free(ctx->seen, ctx->n_seen);
    ctx->seen = now;
    ctx->n_seen = n_now;
    if (!cmpr_rfs_alive(&ctx->rfs))
        goto trouble;
    if (stuck && (wait < 0 || wait > ctx->interval_ms))
        wait = ctx->interval_ms;
    return wait;
trouble:
    if (cmpr_worker_stopping(w))
        return -1;                      /* cut by the stop, not lost */
    if (!cmpr_rfs_alive(&ctx->rfs)) {
        cmpr_log_error("sftp %s: connection to %s:%d lost; connecting again", ctx->name, ctx->host,
                       ctx->port);
        cmpr_rfs_close(&ctx->rfs);
        ctx->down = 1;
        ctx->backoff = 1000;
        return ctx->backoff;
    }
    return ctx->interval_ms;
}

/* ---------------- loop thread ---------------- */

static const char *const directives[] = {
    "host", "port", "user", "identity", "known_hosts", "remote_inbox", "remote_outbox",
    "remote_errors", "remote_archive", "remote_processing", "instance", "interval", "settle_ms",
    "timeout", "label", "pattern", "max_size", "mode", "protocol", NULL
};

static char *
dup_or(const char *v, const char *dflt)
{
    return strdup(v != NULL ? v : dflt);
}

static int
sftp_configure(void *vctx, const char *name, const struct cmpr_conf_group *g, char **err_r)
{
    struct sftp_ctx *ctx = vctx;
    const char *v;
    long port;
    int r;

    cmpr_rfs_cut_init(&ctx->cut);

    if ((r = cmpr_conf_group_check(g, directives, err_r)) != CMPR_OK)
        return r;
    ctx->name = strdup(g->name);
    ctx->identity = cmpr_conf_group_path(g, "identity", NULL);
    ctx->known_hosts = cmpr_conf_group_path(g, "known_hosts", NULL);
    if (cmpr_conf_group_get(g, "host") == NULL || ctx->identity == NULL
            || cmpr_conf_group_get(g, "remote_inbox") == NULL
            || cmpr_conf_group_get(g, "remote_outbox") == NULL) {
        *err_r = cmpr_conf_group_error(g, NULL, "[sftp %s] needs host, identity, remote_inbox and "
                                       "remote_outbox", g->name);
        return CMPR_ERR_CONFIG;
    }
    if (ctx->known_hosts == NULL) {
        *err_r = cmpr_conf_group_error(g, NULL, "[sftp %s] needs known_hosts: the server's host key "
                                       "must verify", g->name);
        return CMPR_ERR_CONFIG;
    }
    ctx->host = strdup(cmpr_conf_group_get(g, "host"));
    if ((v = cmpr_conf_group_get(g, "user")) != NULL) {
        ctx->user = strdup(v);
    } else {
        const char *u = getenv("USER");

        ctx->user = strdup(u != NULL ? u : "cmprouter");
    }
    ctx->inbox = strdup(cmpr_conf_group_get(g, "remote_inbox"));
    ctx->outbox = strdup(cmpr_conf_group_get(g, "remote_outbox"));
    {
        char buf[CMPR_RFS_PATH];

        snprintf(buf, sizeof(buf), "%s/.errors", ctx->inbox);
        ctx->errors = dup_or(cmpr_conf_group_get(g, "remote_errors"), buf);
        snprintf(buf, sizeof(buf), "%s/.processing", ctx->inbox);
        ctx->processing = dup_or(cmpr_conf_group_get(g, "remote_processing"), buf);
    }
    ctx->archive = (v = cmpr_conf_group_get(g, "remote_archive")) != NULL ? strdup(v) : NULL;
    if ((r = cmpr_conf_group_long(g, "port", 22, 1, 65535, &port, err_r))
            || (r = cmpr_conf_group_long(g, "interval", 30, 1, 86400, &ctx->interval_ms, err_r))
            || (r = cmpr_conf_group_long(g, "timeout", 30, 1, 3600, &ctx->timeout, err_r)))
        return r;
    ctx->port = (int)port;
    ctx->proto = CMPR_RFS_AUTO;
    if ((v = cmpr_conf_group_get(g, "protocol")) != NULL) {
        if (strcmp(v, "sftp") == 0)
            ctx->proto = CMPR_RFS_SFTP;
        else if (strcmp(v, "scp") == 0)
            ctx->proto = CMPR_RFS_SCP;
        else if (strcmp(v, "auto") != 0) {
            *err_r = cmpr_conf_group_error(g, "protocol", "protocol is auto, sftp or scp, not '%s'", v);
            return CMPR_ERR_CONFIG;
        }
    }
    ctx->interval_ms *= 1000;
    ctx->backoff_max = ctx->interval_ms < 60000 ? 60000 : ctx->interval_ms;
    if ((r = cmpr_drop_configure(g, g->name, &ctx->dc, err_r)) != CMPR_OK)
        return r;
    if (asprintf(&ctx->proc, "%s/%s", ctx->processing, ctx->dc.instance) < 0) {
        ctx->proc = NULL;
        return CMPR_ERR_ALLOC;
    }
    return CMPR_OK;
}

static int
sftp_start(void *vctx, struct cmpr_daemon *d, char **err_r)
{
    struct sftp_ctx *ctx = vctx;

    ctx->d = d;
    if (access(ctx->known_hosts, R_OK) != 0 || access(ctx->identity, R_OK) != 0) {
        if (asprintf(err_r, "sftp %s: cannot read %s: %s", ctx->name,
                     access(ctx->known_hosts, R_OK) != 0 ? ctx->known_hosts : ctx->identity,
                     strerror(errno)) < 0)
            *err_r = NULL;
        return CMPR_ERR_CONFIG;
    }
    ctx->started = 1;
    if (cmpr_worker_start(&ctx->w, d, "sftp", ctx->interval_ms, cycle, ctx) != 0) {
        *err_r = strdup("sftp: cannot start its thread");
        return CMPR_ERR_INTERNAL;
    }
    cmpr_log_info("sftp %s: fetching %s@%s:%d:%s every %ld s (instance %s)", ctx->name, ctx->user,
                  ctx->host, ctx->port, ctx->inbox, ctx->interval_ms / 1000, ctx->dc.instance);
    return CMPR_OK;
}

static void
worker_done(void *arg)
{
    struct sftp_ctx *ctx = arg;

    if (ctx->stop_done != NULL)
        ctx->stop_done(ctx->stop_arg);
}

static void
cut_session(void *arg)
{
    struct sftp_ctx *ctx = arg;

    cmpr_log_warn("sftp %s: stopping: the step in progress on %s:%d is cut off", ctx->name, ctx->host,
                  ctx->port);
    cmpr_rfs_cut(&ctx->cut);
}

static void
sftp_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    struct sftp_ctx *ctx = vctx;

    ctx->stop_done = done;
    ctx->stop_arg = arg;
    /* a slow or stuck server does not hold the stop up: after STOP_GRACE_MS
     * what the thread waits for fails at once (a file in the middle of its
     * steps is finished by the next start, as after a crash) */
    cmpr_worker_stop_within(&ctx->w, STOP_GRACE_MS, cut_session, ctx, worker_done, ctx);
}

static size_t
sftp_in_flight(void *vctx)
{
    struct sftp_ctx *ctx = vctx;

    return cmpr_worker_in_flight(&ctx->w);
}

static void
sftp_free_ctx(void *vctx)
{
    struct sftp_ctx *ctx = vctx;

    cmpr_rfs_close(&ctx->rfs);            /* the thread has ended */
    cmpr_rfs_cut_free(&ctx->cut);
    cmpr_drop_entries_free(ctx->seen, ctx->n_seen);
    free(ctx->name);
    free(ctx->host);
    free(ctx->user);
    free(ctx->identity);
    free(ctx->known_hosts);
    free(ctx->inbox);
    free(ctx->outbox);
    free(ctx->errors);
    free(ctx->archive);
    free(ctx->processing);
    free(ctx->proc);
    free(ctx->dc.pattern);
    free(ctx->dc.label);
}

const struct cmpr_transport_ops cmpr_sftp_transport = {
    .name = "sftp",
    .group_type = "sftp",
    .group_names = NULL,
    .ctx_size = sizeof(struct sftp_ctx),
    .configure = sftp_configure,
    .start = sftp_start,
    .stop = sftp_stop,
    .in_flight = sftp_in_flight,
    .port = cmpr_transport_no_port,
    .set_address = cmpr_transport_no_address,
    .free = sftp_free_ctx,
    .upstream = &cmpr_sftp_upstream,
    .push = NULL,
};
