/*
 * CMP by e-mail ([mail]; cmp-wire.md 3, RFC 9483 6.4.2). Two threads of
 * their own (worker.c), so that neither a slow disk nor a dead relay holds
 * up the loop or the other transports:
 *   intake  watches MAILDIR/new (inotify + rescan); each mail goes through
 *           mailproc.c (CMP parts -> core -> one reply mail, durably
 *           queued), and only then is it moved to cur/ flagged ":2,S".
 *           A crash before that runs the mail again: the core answers its
 *           retransmissions from the store, the queue entry (named after
 *           the mail) is replaced, and a reply already sent is not queued
 *           again (it is in queue/sent/).
 *   sender  sends each queue entry by SMTP (EHLO, STARTTLS, AUTH) or with
 *           sendmail -t -i; sent entries move to queue/sent/ (kept
 *           keep_sent seconds), temporary failures are retried with backoff
 *           (retry_min, doubling up to retry_max), permanent ones (5xx) move to
 *           queue/dead/ with a .reason file. Without a relay, answers wait.
 */
#define _GNU_SOURCE 1
#include "transports/transport.h"
#include "transports/client/client.h"
#include "base/buf.h"
#include "transports/lib/fsutil.h"
#include "transports/mailproc.h"
#include "transports/lib/smtp.h"
#include "transports/lib/worker.h"
#include "core/core.h"
#include "base/err.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCAN 1000
#define MAX_BACKOFF 256

struct backoff {
    char name[300];
    long next_ms;                       /* CLOCK_MONOTONIC ms of the next attempt */
    long delay_ms;
};

struct mail_ctx {
    struct cmpr_mail_conf c;
    char *proc;                         /* MAILDIR/.processing/INSTANCE: mails this daemon claimed */
    int proc_lock, queue_lock;          /* flocks: one daemon per instance, one sender per queue */
    struct cmpr_daemon *d;
    struct cmpr_worker in, out;
    uv_fs_event_t ev;
    int closing;
    void (*stop_done)(void *arg);
    void *stop_arg;
    /* sender thread only */
    struct backoff waits[MAX_BACKOFF];
    size_t n_waits;
    int told_no_relay;
};

static long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---------------- intake (its own thread) ---------------- */

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One claimed mail (src, in this instance's processing folder) through the
 * core: 0 when its reply is queued and the mail moved to cur/, 1 when it
 * must be tried again (it stays claimed). */
static int
handle_mail(struct mail_ctx *ctx, struct cmpr_worker *w, struct cmpr_core *core, const char *src, const char *name)
{
    char dst[PATH_MAX], base[300], key[300], mark[320], mp[PATH_MAX];
    unsigned char *raw = NULL;
    size_t len = 0;
    int answered = 0, r, resumed;
    uint64_t t0 = uv_hrtime();

    snprintf(base, sizeof(base), "%.*s", (int)strcspn(name, ":"), name);
    /* a key safe as a file name: the unique part of the Maildir name */
    snprintf(key, sizeof(key), "%s", base);
    for (char *p = key; *p; p++)
        if (*p == '/' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            *p = '_';
    /* at most max_size + 1 bytes: a larger mail is answered from its head */
    if (cmpr_fs_read(src, ctx->c.lim.max_mail + 1, 1, &raw, &len) != 0) {
        if (errno != ENOENT)
            cmpr_log_error("mail %s: cannot read it: %s", key, strerror(errno));
        return 0;
    }
    /* a marker while the mail is in the core: found at the next look, the
     * mail was cut short by a crash, and its senderNonces are its own */
    snprintf(mark, sizeof(mark), ".inflight-%s", key);
    cmpr_fs_join(mp, sizeof(mp), ctx->c.queue, "", mark);
    resumed = access(mp, F_OK) == 0;
    if (!resumed)
        (void)cmpr_fs_write_durable(ctx->c.queue, ".inflight.tmp", mark, (const unsigned char *)"", 0, ctx->c.mode);
    r = cmpr_mail_process(&ctx->c, core, raw, len, key, resumed, &answered);
    free(raw);
    if (r != CMPR_MAIL_DONE) {
        cmpr_worker_result(w, 0, uv_hrtime() - t0);
        return 1;
    }
    for (int k = 0; k < answered; k++)
        cmpr_worker_result(w, 1, uv_hrtime() - t0);
    /* done only now that the reply is safely queued */
    snprintf(dst, sizeof(dst), "%s/cur/%s:2,S", ctx->c.maildir, base);
    if (rename(src, dst) != 0)
        cmpr_log_error("mail %s: cannot move it to cur/: %s", key, strerror(errno));
    else
        (void)unlink(mp);
    cmpr_worker_wake(&ctx->out);
    return 0;
}

/* the names in dir, sorted (Maildir names start with the delivery time:
 * oldest first); NULL-free array of *n_r */
static char **
list_names(const char *dir, size_t *n_r)
{
    char **names = NULL;
    size_t n = 0, cap = 0;
    DIR *d;
    struct dirent *de;

    *n_r = 0;
    if ((d = opendir(dir)) == NULL) {
        cmpr_log_error("mail: cannot read %s: %s", dir, strerror(errno));
        return NULL;
    }
    while ((de = readdir(d)) != NULL && n < MAX_SCAN) {
        if (de->d_name[0] == '.')
            continue;
        if (cmpr_array_grow(&names, &cap, n + 1, sizeof(*names), MAX_SCAN) != CMPR_OK)
            break;
        if ((names[n] = strdup(de->d_name)) != NULL)
            n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), name_cmp);
    *n_r = n;
    return names;
}

/* Mails this instance claimed before (a crash, or one to try again) first,
 * then new ones, each claimed by a rename from new/ into this instance's
 * processing folder just before it is handled: several daemons reading one
 * Maildir each take a mail exactly once (a rename that finds nothing lost
 * the race). */
static long
intake_cycle(struct cmpr_worker *w, struct cmpr_core *core, void *arg)
{
    struct mail_ctx *ctx = arg;
    char dir[PATH_MAX], src[PATH_MAX], claimed[PATH_MAX];
    size_t n = 0;
    char **names;
    int retry = 0;

    if (core == NULL || cmpr_fs_join(dir, sizeof(dir), ctx->c.maildir, "", "new") != 0)
        return -1;
    names = list_names(ctx->proc, &n);
    for (size_t i = 0; i < n && !cmpr_worker_stopping(w); i++)
        if (cmpr_fs_join(src, sizeof(src), ctx->proc, "", names[i]) == 0)
            retry |= handle_mail(ctx, w, core, src, names[i]);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if ((names = list_names(dir, &n)) == NULL && n == 0 && access(dir, R_OK) != 0)
        return ctx->c.rescan_ms;
    for (size_t i = 0; i < n && !cmpr_worker_stopping(w); i++) {
        if (cmpr_fs_join(src, sizeof(src), dir, "", names[i]) != 0
                || cmpr_fs_join(claimed, sizeof(claimed), ctx->proc, "", names[i]) != 0)
            continue;
        if (rename(src, claimed) != 0) {
            if (errno != ENOENT)            /* ENOENT: another daemon took it */
                cmpr_log_error("mail: cannot claim %s: %s", names[i], strerror(errno));
            continue;
        }
        retry |= handle_mail(ctx, w, core, claimed, names[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return retry ? ctx->c.rescan_ms : -1;
}

/* ---------------- sender (its own thread) ---------------- */

static struct backoff *
waiting(struct mail_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->n_waits; i++)
        if (strcmp(ctx->waits[i].name, name) == 0)
            return &ctx->waits[i];
    return NULL;
}

static void
forget(struct mail_ctx *ctx, const char *name)
{
    struct backoff *b = waiting(ctx, name);

    if (b != NULL)
        *b = ctx->waits[--ctx->n_waits];
}

/* sendmail -t -i with the mail on its stdin */
static int
run_sendmail(const char *prog, const unsigned char *msg, size_t len, char *err, size_t errlen)
{
    int fds[2], st;
    pid_t pid;
    size_t off = 0;

    if (pipe(fds) != 0)
        return CMPR_SMTP_TEMPFAIL;
    if ((pid = fork()) < 0) {
        close(fds[0]);
        close(fds[1]);
        return CMPR_SMTP_TEMPFAIL;
    }
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        execl(prog, prog, "-t", "-i", (char *)NULL);
        _exit(75);
    }
    close(fds[0]);
    while (off < len) {
        ssize_t n = write(fds[1], msg + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fds[1]);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return CMPR_SMTP_SENT;
    snprintf(err, errlen, "%s exited with %d", prog, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    /* sysexits: 75 (EX_TEMPFAIL) and signals are temporary, the rest permanent */
    return !WIFEXITED(st) || WEXITSTATUS(st) == 75 ? CMPR_SMTP_TEMPFAIL : CMPR_SMTP_PERMFAIL;
}

static void
purge_sent(struct mail_ctx *ctx)
{
    char dir[PATH_MAX], p[PATH_MAX];
    DIR *d;
    struct dirent *de;
    time_t limit = time(NULL) - ctx->c.keep_sent_s;

    if (cmpr_fs_join(dir, sizeof(dir), ctx->c.queue, "", "sent") != 0 || (d = opendir(dir)) == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        struct stat st;

        if (de->d_name[0] != '.' && cmpr_fs_join(p, sizeof(p), dir, "", de->d_name) == 0
                && stat(p, &st) == 0 && st.st_mtime < limit)
            (void)unlink(p);
    }
    closedir(d);
}

static long
sender_cycle(struct cmpr_worker *w, struct cmpr_core *core, void *arg)
{
    struct mail_ctx *ctx = arg;
    DIR *d;
    struct dirent *de;
    long next = -1, t = now_ms();
    int pending = 0;

    (void)core;
    if (core == NULL)
        return -1;
    if ((d = opendir(ctx->c.queue)) == NULL)
        return ctx->c.rescan_ms;
    while ((de = readdir(d)) != NULL && !cmpr_worker_stopping(w)) {
        char p[PATH_MAX], to[PATH_MAX], from[600], rcpt[600], err[600];
        const char *nm = de->d_name;
        size_t nl = strlen(nm), len, off;
        unsigned char *data;
        struct backoff *b;
        int r;

        if (nm[0] == '.' || nl < 5 || strcmp(nm + nl - 4, ".msg") != 0 || nl >= sizeof(ctx->waits[0].name))
            continue;
        pending++;
        if (ctx->c.smtp_host == NULL && ctx->c.sendmail == NULL)
            continue;
        if ((b = waiting(ctx, nm)) != NULL && b->next_ms > t) {
            if (next < 0 || b->next_ms - t < next)
                next = b->next_ms - t;
            continue;
        }
        if (cmpr_fs_join(p, sizeof(p), ctx->c.queue, "", nm) != 0
                || cmpr_fs_read(p, 2 * ctx->c.lim.max_mail + 65536, 0, &data, &len) != 0)
            continue;
        if (cmpr_mail_queue_parse(data, len, from, sizeof(from), rcpt, sizeof(rcpt), &off) != 0) {
            r = CMPR_SMTP_PERMFAIL;
            snprintf(err, sizeof(err), "not a queue entry");
        } else if (ctx->c.sendmail != NULL) {
            r = run_sendmail(ctx->c.sendmail, data + off, len - off, err, sizeof(err));
        } else {
            struct cmpr_smtp_opts o = {
                ctx->c.smtp_host, ctx->c.smtp_port, ctx->c.smtp_tls, ctx->c.smtp_ca, ctx->c.smtp_user,
                ctx->c.smtp_secret, ctx->c.allow_plain_auth, ctx->c.helo, ctx->c.timeout_ms
            };

            r = cmpr_smtp_send(&o, from, rcpt, data + off, len - off, err, sizeof(err));
        }
        free(data);
        if (r == CMPR_SMTP_SENT) {
            forget(ctx, nm);
            pending--;
            cmpr_fs_join(to, sizeof(to), ctx->c.queue, "sent/", nm);
            if (rename(p, to) != 0)
                (void)unlink(p);
            cmpr_log_info("mail: reply %s sent to %s (%s)", nm, rcpt, err);
        } else if (r == CMPR_SMTP_PERMFAIL) {
            char reason[1300], dead[PATH_MAX], rn[320];

            forget(ctx, nm);
            pending--;
            cmpr_log_error("mail: reply %s to %s refused for good: %s; kept in %s/dead", nm, rcpt, err,
                           ctx->c.queue);
            cmpr_fs_join(dead, sizeof(dead), ctx->c.queue, "", "dead");
            snprintf(reason, sizeof(reason), "%s: %s\n", rcpt, err);
            snprintf(rn, sizeof(rn), "%s.reason", nm);
            cmpr_fs_join(to, sizeof(to), dead, "", nm);
            if (rename(p, to) == 0)
                (void)cmpr_fs_write_durable(dead, ".reason.tmp", rn, (const unsigned char *)reason,
                                            strlen(reason), ctx->c.mode);
        } else {
            if (b == NULL && ctx->n_waits < MAX_BACKOFF) {
                b = &ctx->waits[ctx->n_waits++];
                snprintf(b->name, sizeof(b->name), "%s", nm);
                b->delay_ms = 0;
            }
            if (b != NULL) {
                b->delay_ms = b->delay_ms == 0 ? ctx->c.retry_min_ms : b->delay_ms * 2;
                if (b->delay_ms > ctx->c.retry_max_ms)
                    b->delay_ms = ctx->c.retry_max_ms;
                b->next_ms = t + b->delay_ms;
                if (next < 0 || b->delay_ms < next)
                    next = b->delay_ms;
            }
            cmpr_log_warn("mail: reply %s to %s not sent (%s); trying again in %ld s", nm, rcpt, err,
                          b != NULL ? b->delay_ms / 1000 : ctx->c.rescan_ms / 1000);
        }
    }
    closedir(d);
    if (pending > 0 && ctx->c.smtp_host == NULL && ctx->c.sendmail == NULL && !ctx->told_no_relay) {
        cmpr_log_warn("mail: %d repl%s wait in %s: no relay configured (smtp = or sendmail = in [mail])",
                      pending, pending == 1 ? "y" : "ies", ctx->c.queue);
        ctx->told_no_relay = 1;
    }
    purge_sent(ctx);
    return next;
}

/* ---------------- loop thread ---------------- */

static void
on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct mail_ctx *ctx = h->data;

    (void)filename;
    (void)events;
    (void)status;
    cmpr_worker_kick(&ctx->in);
}

static int
mail_configure(void *vctx, const char *name, const struct cmpr_conf_group *g, char **err_r)
{
    struct mail_ctx *ctx = vctx;

    return cmpr_mail_configure(g, &ctx->c, err_r);
}

static int
mail_start(void *vctx, struct cmpr_daemon *d, char **err_r)
{
    struct mail_ctx *ctx = vctx;
    char dir[PATH_MAX];

    ctx->d = d;
    ctx->proc_lock = ctx->queue_lock = -1;
    if (cmpr_mail_dirs(&ctx->c, err_r) != 0)
        return CMPR_ERR_CONFIG;
    if (asprintf(&ctx->proc, "%s/.processing/%s", ctx->c.maildir, ctx->c.instance) < 0) {
        ctx->proc = NULL;
        return CMPR_ERR_ALLOC;
    }
    if (cmpr_fs_mkdirs(ctx->proc, err_r, "mail processing") != 0)
        return CMPR_ERR_CONFIG;
    /* one daemon per instance (its claims), one sender per queue (two would
     * send each reply twice) */
    if ((ctx->proc_lock = cmpr_fs_lock_dir(ctx->proc)) < 0
            || (ctx->queue_lock = cmpr_fs_lock_dir(ctx->c.queue)) < 0) {
        if (asprintf(err_r, "mail: %s is in use by another process; give each daemon reading one Maildir "
                     "its own instance = and queue =", ctx->proc_lock < 0 ? ctx->proc : ctx->c.queue) < 0)
            *err_r = NULL;
        return CMPR_ERR_CONFIG;
    }
    cmpr_mail_init();
    uv_fs_event_init(d->loop, &ctx->ev);
    ctx->ev.data = ctx;
    if (cmpr_fs_join(dir, sizeof(dir), ctx->c.maildir, "", "new") != 0
            || uv_fs_event_start(&ctx->ev, on_event, dir, 0) != 0)
        cmpr_log_warn("mail: cannot watch %s; rescanning every %ld s", dir, ctx->c.rescan_ms / 1000);
    if (cmpr_worker_start(&ctx->in, d, "mail", ctx->c.rescan_ms, intake_cycle, ctx) != 0
            || cmpr_worker_start(&ctx->out, d, "mail", ctx->c.rescan_ms, sender_cycle, ctx) != 0) {
        *err_r = strdup("mail: cannot start its threads");
        return CMPR_ERR_INTERNAL;
    }
    cmpr_log_info("mail: reading %s/new; replies from %s %s%s%s", ctx->c.maildir, ctx->c.from,
                  ctx->c.smtp_host != NULL ? "by SMTP to " : ctx->c.sendmail != NULL ? "by " : "",
                  ctx->c.smtp_host != NULL ? ctx->c.smtp_host : ctx->c.sendmail != NULL ? ctx->c.sendmail : "",
                  ctx->c.smtp_host == NULL && ctx->c.sendmail == NULL ? "wait in the queue (no relay)" : "");
    return CMPR_OK;
}

static void
part_done(void *arg)
{
    struct mail_ctx *ctx = arg;

    if (--ctx->closing == 0 && ctx->stop_done != NULL)
        ctx->stop_done(ctx->stop_arg);
}

static void
ev_closed(uv_handle_t *h)
{
    part_done(h->data);
}

static void
mail_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    struct mail_ctx *ctx = vctx;

    ctx->stop_done = done;
    ctx->stop_arg = arg;
    ctx->closing = 3;
    uv_close((uv_handle_t *)&ctx->ev, ev_closed);
    cmpr_worker_stop(&ctx->in, part_done, ctx);
    cmpr_worker_stop(&ctx->out, part_done, ctx);
}

static size_t
mail_in_flight(void *vctx)
{
    struct mail_ctx *ctx = vctx;

    return cmpr_worker_in_flight(&ctx->in);
}

static void
mail_free(void *vctx)
{
    struct mail_ctx *ctx = vctx;

    if (ctx->d != NULL && ctx->proc_lock >= 0)
        close(ctx->proc_lock);
    if (ctx->d != NULL && ctx->queue_lock >= 0)
        close(ctx->queue_lock);
    free(ctx->proc);
    cmpr_mail_conf_free(&ctx->c);
}

/* one [mail] per daemon */
static const char *const mail_names[] = { "mail", NULL };

const struct cmpr_transport_ops cmpr_mail_transport = {
    .name = "mail",
    .group_type = "mail",
    .group_names = mail_names,
    .ctx_size = sizeof(struct mail_ctx),
    .configure = mail_configure,
    .start = mail_start,
    .stop = mail_stop,
    .in_flight = mail_in_flight,
    .port = cmpr_transport_no_port,
    .set_address = cmpr_transport_no_address,
    .free = mail_free,
    .upstream = &cmpr_mail_upstream,
    .push = &cmpr_mail_push,
};
