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
#include "transports/dropname.h"
#include "transports/worker.h"
#include "core/core.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#define MAX_SCAN 10000
#define RPATH 1024
#define MAX_LISTING (4u * 1024 * 1024)  /* bytes of a remote listing by shell */

enum { PROTO_AUTO, PROTO_SFTP, PROTO_SCP };

struct sftp_ctx {
    char *name, *host, *user, *identity, *known_hosts;
    char *inbox, *outbox, *errors, *archive, *processing, *proc;
    struct cmpr_drop_conf dc;
    int port;
    int proto;                          /* PROTO_* from the configuration */
    long interval_ms, timeout, backoff_max;
    struct cmpr_daemon *d;
    struct cmpr_worker w;
    int started;
    void (*stop_done)(void *arg);
    void *stop_arg;
    /* worker thread only */
    ssh_session ssh;
    sftp_session sftp;
    int can_fsync;
    int use_scp;                        /* this session: SCP and shell commands */
    long backoff;                       /* ms before the next connection attempt */
    int down;                           /* the last attempt failed (log once per outage) */
    struct cmpr_drop_entry *seen;
    size_t n_seen;
};

/* ---------------- the SSH session (worker thread) ---------------- */

static int sh_path(struct sftp_ctx *ctx, const char *fmt, const char *path);

static void
disconnect(struct sftp_ctx *ctx)
{
    if (ctx->sftp != NULL)
        sftp_free(ctx->sftp);
    ctx->sftp = NULL;
    if (ctx->ssh != NULL) {
        ssh_disconnect(ctx->ssh);
        ssh_free(ctx->ssh);
    }
    ctx->ssh = NULL;
}

static int
alive(struct sftp_ctx *ctx)
{
    return ctx->ssh != NULL && ssh_is_connected(ctx->ssh);
}

static void
r_mkdirs(struct sftp_ctx *ctx, const char *path)
{
    char buf[RPATH];
    size_t n = strlen(path);

    if (ctx->use_scp) {
        (void)sh_path(ctx, "mkdir -p -- %1$s", path);
        return;
    }
    if (n >= sizeof(buf))
        return;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;

            *p = '\0';
            (void)sftp_mkdir(ctx->sftp, buf, 0750);   /* exists already: fine */
            *p = c;
            if (c == '\0')
                break;
        }
    }
}


/* ---------------- SCP and shell commands (servers without SFTP) ---------------- */

/* 'text' for a POSIX shell: single quotes, each ' as '\'' */
static int
shq(char *buf, size_t len, const char *text)
{
    size_t o = 0;

    if (len < 3)
        return -1;
    buf[o++] = '\'';
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\'') {
            if (o + 5 >= len)
                return -1;
            memcpy(buf + o, "'\\''", 4);
            o += 4;
        } else {
            if (o + 2 >= len)
                return -1;
            buf[o++] = *p;
        }
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return 0;
}

static ssh_channel
exec_open(struct sftp_ctx *ctx, const char *cmd)
{
    ssh_channel ch = ssh_channel_new(ctx->ssh);

    if (ch == NULL)
        return NULL;
    if (ssh_channel_open_session(ch) != SSH_OK || ssh_channel_request_exec(ch, cmd) != SSH_OK) {
        ssh_channel_free(ch);
        return NULL;
    }
    return ch;
}

static void
exec_close(ssh_channel ch)
{
    ssh_channel_send_eof(ch);
    ssh_channel_close(ch);
    ssh_channel_free(ch);
}

/* exactly n bytes (or -1) */
static int
ch_read(struct sftp_ctx *ctx, ssh_channel ch, void *buf, size_t n)
{
    size_t off = 0;

    while (off < n) {
        int r = ssh_channel_read_timeout(ch, (char *)buf + off, (uint32_t)(n - off), 0,
                                         (int)ctx->timeout * 1000);

        if (r <= 0)
            return -1;
        off += (size_t)r;
    }
    return 0;
}

static int
ch_write(ssh_channel ch, const void *buf, size_t n)
{
    size_t off = 0;

    while (off < n) {
        int r = ssh_channel_write(ch, (const char *)buf + off, (uint32_t)(n - off));

        if (r <= 0)
            return -1;
        off += (size_t)r;
    }
    return 0;
}

/* Runs cmd; its stdout (at most max bytes) into *out_r if out_r is set.
 * Returns the exit status, or -1 when the command could not run. */
static int
sh_run(struct sftp_ctx *ctx, const char *cmd, unsigned char **out_r, size_t *len_r, size_t max)
{
    ssh_channel ch = exec_open(ctx, cmd);
    unsigned char *buf = NULL, tmp[4096];
    size_t len = 0;
    int st;

    if (ch == NULL)
        return -1;
    ssh_channel_send_eof(ch);
    for (;;) {
        int r = ssh_channel_read_timeout(ch, tmp, sizeof(tmp), 0, (int)ctx->timeout * 1000);

        if (r == 0 && ssh_channel_is_eof(ch))
            break;
        if (r < 0 || (r == 0 && !alive(ctx))) {
            free(buf);
            exec_close(ch);
            return -1;
        }
        if (r == 0)
            continue;
        if (out_r != NULL && len + (size_t)r <= max) {
            unsigned char *nb = realloc(buf, len + (size_t)r + 1);

            if (nb == NULL) {
                free(buf);
                exec_close(ch);
                return -1;
            }
            buf = nb;
            memcpy(buf + len, tmp, (size_t)r);
            len += (size_t)r;
        }
    }
    st = ssh_channel_get_exit_status(ch);
    exec_close(ch);
    if (out_r != NULL) {
        *out_r = buf;
        *len_r = len;
    } else {
        free(buf);
    }
    return st;
}

/* fmt with the single-quoted path as %1$s (used as often as needed); 0 on exit 0 */
static int
sh_path(struct sftp_ctx *ctx, const char *fmt, const char *path)
{
    char q[2 * RPATH + 8], cmd[8 * RPATH];
    int n;

    if (shq(q, sizeof(q), path) != 0)
        return -1;
    n = snprintf(cmd, sizeof(cmd), fmt, q);
    if (n <= 0 || (size_t)n >= sizeof(cmd))
        return -1;
    return sh_run(ctx, cmd, NULL, NULL, 0) == 0 ? 0 : -1;
}

static int
scp_rename(struct sftp_ctx *ctx, const char *src, const char *dst)
{
    char qs[2 * RPATH + 8], qd[2 * RPATH + 8], cmd[8 * RPATH];
    int n;

    if (shq(qs, sizeof(qs), src) != 0 || shq(qd, sizeof(qd), dst) != 0)
        return -1;
    /* hard link then unlink; where links are refused, mv only if the target is free */
    n = snprintf(cmd, sizeof(cmd), "if ln -- %s %s 2>/dev/null; then rm -f -- %s; "
                 "elif test ! -e %s && test ! -L %s && test -e %s; then mv -- %s %s; else exit 1; fi",
                 qs, qd, qs, qd, qd, qs, qs, qd);
    if (n <= 0 || (size_t)n >= sizeof(cmd))
        return -1;
    return sh_run(ctx, cmd, NULL, NULL, 0) == 0 ? 0 : -1;
}

/* SCP source mode: the file's bytes (at most max) */
static int
scp_get(struct sftp_ctx *ctx, const char *path, size_t max, unsigned char **data_r, size_t *len_r,
        char *why, size_t wlen)
{
    char q[2 * RPATH + 8], cmd[8 * RPATH + 128], line[256];
    unsigned char *buf, zero = 0, c;
    ssh_channel ch;
    size_t n = 0, size;
    int kind;

    if (shq(q, sizeof(q), path) != 0)
        return -3;
    /* what the file is, without following a link */
    snprintf(cmd, sizeof(cmd), "if test -L %s; then exit 3; elif test -f %s; then exit 0; "
             "elif test -e %s; then exit 4; else exit 5; fi", q, q, q);
    kind = sh_run(ctx, cmd, NULL, NULL, 0);
    if (kind == 3 || kind == 4) {
        snprintf(why, wlen, kind == 3 ? "a symbolic link (never followed)" : "not a regular file");
        return -1;
    }
    if (kind != 0) {
        snprintf(why, wlen, "cannot look at it over SSH");
        return -3;
    }
    snprintf(cmd, sizeof(cmd), "scp -f -- %s", q);
    if ((ch = exec_open(ctx, cmd)) == NULL) {
        snprintf(why, wlen, "cannot start scp: %s", ssh_get_error(ctx->ssh));
        return -3;
    }
    if (ch_write(ch, &zero, 1) != 0)
        goto broken;
    /* "C0644 SIZE NAME\n" */
    while (n + 1 < sizeof(line)) {
        if (ch_read(ctx, ch, &c, 1) != 0)
            goto broken;
        if (c == '\n')
            break;
        line[n++] = (char)c;
    }
    line[n] = '\0';
    if (cmpr_drop_parse_scp_header(line, &size) != 0) {
        snprintf(why, wlen, "scp: %.200s", line[0] == 1 || line[0] == 2 ? line + 1 : "unexpected answer");
        exec_close(ch);
        return -3;
    }
    if (size > max) {
        snprintf(why, wlen, "larger than max_size (%zu bytes)", max);
        exec_close(ch);
        return -1;
    }
    if ((buf = malloc(size + 1)) == NULL || ch_write(ch, &zero, 1) != 0 || ch_read(ctx, ch, buf, size) != 0
            || ch_read(ctx, ch, &c, 1) != 0 || c != 0) {
        free(buf);
        goto broken;
    }
    (void)ch_write(ch, &zero, 1);
    exec_close(ch);
    *data_r = buf;
    *len_r = size;
    return 0;
broken:
    snprintf(why, wlen, "scp transfer failed: %s", ssh_get_error(ctx->ssh));
    exec_close(ch);
    return -3;
}

/* SCP sink mode: path gets data with the configured mode */
static int
scp_put(struct sftp_ctx *ctx, const char *path, const unsigned char *data, size_t len)
{
    char q[2 * RPATH + 8], cmd[2 * RPATH + 32], hdr[64];
    unsigned char ack = 1, zero = 0;
    ssh_channel ch;
    int r = -1;

    if (shq(q, sizeof(q), path) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "scp -t -- %s", q);
    if ((ch = exec_open(ctx, cmd)) == NULL)
        return -1;
    /* the target is a file path, so the sink takes the name from it and the
     * header's name (which may not hold a newline) is a fixed one */
    snprintf(hdr, sizeof(hdr), "C%04o %zu cmp.pki\n", (unsigned)ctx->dc.mode, len);
    if (ch_read(ctx, ch, &ack, 1) == 0 && ack == 0 && ch_write(ch, hdr, strlen(hdr)) == 0
            && ch_read(ctx, ch, &ack, 1) == 0 && ack == 0 && ch_write(ch, data, len) == 0
            && ch_write(ch, &zero, 1) == 0 && ch_read(ctx, ch, &ack, 1) == 0 && ack == 0)
        r = 0;
    exec_close(ch);
    return r;
}

/* the listing of dir by a POSIX shell: "TYPE SIZE NAME\0" per entry */
static int
scp_list(struct sftp_ctx *ctx, const char *dir, struct cmpr_drop_entry **out, size_t *n_out,
         int want_types)
{
    char q[2 * RPATH + 8], cmd[3 * RPATH];
    unsigned char *buf = NULL;
    size_t len = 0, n = 0;
    struct cmpr_drop_entry *v = NULL;

    *out = NULL;
    *n_out = 0;
    if (shq(q, sizeof(q), dir) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "cd -- %s || exit 1; for f in * .[!.]* ..?*; do "
             "if test -L \"$f\"; then t=l; s=0; elif test -d \"$f\"; then t=d; s=0; "
             "elif test -f \"$f\"; then t=f; s=$(wc -c <\"$f\"); elif test -e \"$f\"; then t=o; s=0; "
             "else continue; fi; printf '%%s %%s %%s\\0' \"$t\" $s \"$f\"; done", q);
    if (sh_run(ctx, cmd, &buf, &len, MAX_LISTING) != 0) {
        free(buf);
        return -1;
    }
    if (cmpr_drop_parse_listing(buf, len, want_types, MAX_SCAN, &v, &n) != 0) {
        free(buf);
        return -1;
    }
    free(buf);
    *out = v;
    *n_out = n;
    return 0;
}

static const char *
known_state(enum ssh_known_hosts_e s)
{
    switch (s) {
    case SSH_KNOWN_HOSTS_CHANGED: return "has CHANGED (possible attack)";
    case SSH_KNOWN_HOSTS_OTHER: return "is of another type than the one known";
    case SSH_KNOWN_HOSTS_UNKNOWN: return "is unknown";
    case SSH_KNOWN_HOSTS_NOT_FOUND: return "cannot be checked: no known_hosts file";
    default: return "cannot be checked";
    }
}

static int
connect_server(struct sftp_ctx *ctx)
{
    ssh_key key = NULL, srv = NULL;
    enum ssh_known_hosts_e kh;
    int no = 0;
    long t = ctx->timeout;
    char why[512] = "";

    if ((ctx->ssh = ssh_new()) == NULL)
        return -1;
    ssh_options_set(ctx->ssh, SSH_OPTIONS_HOST, ctx->host);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_PORT, &ctx->port);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_USER, ctx->user);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_KNOWNHOSTS, ctx->known_hosts);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    ssh_options_set(ctx->ssh, SSH_OPTIONS_PROCESS_CONFIG, &no);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_TIMEOUT, &t);
    if (ssh_connect(ctx->ssh) != SSH_OK) {
        snprintf(why, sizeof(why), "cannot connect: %s", ssh_get_error(ctx->ssh));
        goto fail;
    }
    if ((kh = ssh_session_is_known_server(ctx->ssh)) != SSH_KNOWN_HOSTS_OK) {
        unsigned char *hash = NULL;
        size_t hlen = 0;
        char *fp = NULL;

        if (ssh_get_server_publickey(ctx->ssh, &srv) == SSH_OK
                && ssh_get_publickey_hash(srv, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0)
            fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
        snprintf(why, sizeof(why), "host key %s %s (not in %s): refused", fp != NULL ? fp : "",
                 known_state(kh), ctx->known_hosts);
        ssh_string_free_char(fp);
        ssh_clean_pubkey_hash(&hash);
        ssh_key_free(srv);
        goto fail;
    }
    if (ssh_pki_import_privkey_file(ctx->identity, NULL, NULL, NULL, &key) != SSH_OK) {
        snprintf(why, sizeof(why), "cannot read the identity %s", ctx->identity);
        goto fail;
    }
    if (ssh_userauth_publickey(ctx->ssh, NULL, key) != SSH_AUTH_SUCCESS) {
        snprintf(why, sizeof(why), "public key authentication as %s failed: %s", ctx->user,
                 ssh_get_error(ctx->ssh));
        ssh_key_free(key);
        goto fail;
    }
    ssh_key_free(key);
    ctx->use_scp = ctx->proto == PROTO_SCP;
    if (!ctx->use_scp && ((ctx->sftp = sftp_new(ctx->ssh)) == NULL || sftp_init(ctx->sftp) != SSH_OK)) {
        if (ctx->sftp != NULL)
            sftp_free(ctx->sftp);
        ctx->sftp = NULL;
        if (ctx->proto == PROTO_SFTP) {
            snprintf(why, sizeof(why), "the server offers no SFTP subsystem: %s",
                     ssh_get_error(ctx->ssh));
            goto fail;
        }
        if (!ctx->down)
            cmpr_log_warn("sftp %s: %s:%d offers no SFTP subsystem; using SCP", ctx->name,
                          ctx->host, ctx->port);
        ctx->use_scp = 1;
    }
    ctx->can_fsync = !ctx->use_scp && sftp_extension_supported(ctx->sftp, "fsync@openssh.com", "1");
    r_mkdirs(ctx, ctx->proc);
    r_mkdirs(ctx, ctx->errors);
    r_mkdirs(ctx, ctx->outbox);
    if (ctx->archive != NULL)
        r_mkdirs(ctx, ctx->archive);
    if (ctx->down)
        cmpr_log_info("sftp %s: connected to %s@%s:%d again", ctx->name, ctx->user, ctx->host, ctx->port);
    else
        cmpr_log_info("sftp %s: connected to %s@%s:%d", ctx->name, ctx->user, ctx->host, ctx->port);
    ctx->down = 0;
    ctx->backoff = 0;
    return 0;
fail:
    if (!ctx->down || ctx->backoff >= ctx->backoff_max)
        cmpr_log_error("sftp %s: %s@%s:%d: %s", ctx->name, ctx->user, ctx->host, ctx->port, why);
    ctx->down = 1;
    disconnect(ctx);
    ctx->backoff = ctx->backoff == 0 ? 1000 : ctx->backoff * 2;
    if (ctx->backoff > ctx->backoff_max)
        ctx->backoff = ctx->backoff_max;
    return -1;
}

/* ---------------- remote file operations (worker thread) ---------------- */

static int
rjoin(char *buf, const char *dir, const char *prefix, const char *name)
{
    int n = snprintf(buf, RPATH, "%s/%s%s", dir, prefix, name);

    return n > 0 && n < RPATH ? 0 : -1;
}

static int
r_exists(struct sftp_ctx *ctx, const char *path)
{
    sftp_attributes a;

    if (ctx->use_scp)
        return sh_path(ctx, "test -e %1$s || test -L %1$s", path) == 0;
    if ((a = sftp_lstat(ctx->sftp, path)) == NULL)
        return 0;
    sftp_attributes_free(a);
    return 1;
}

static int
r_rename(struct sftp_ctx *ctx, const char *src, const char *dst)
{
    if (ctx->use_scp)
        return scp_rename(ctx, src, dst);
    return sftp_rename(ctx->sftp, src, dst) == SSH_OK ? 0 : -1;
}

static int
r_unlink(struct sftp_ctx *ctx, const char *path)
{
    if (ctx->use_scp)
        return sh_path(ctx, "rm -f -- %1$s", path);
    return sftp_unlink(ctx->sftp, path) == SSH_OK ? 0 : -1;
}

/* src into dir under the first free name namer(name, n) makes; -1 on failure */
static int
r_move_unique(struct sftp_ctx *ctx, const char *src, const char *dir, const char *name,
              int (*namer)(const char *, int, char *, size_t), char *out, size_t olen)
{
    char dp[RPATH];

    for (int n = 1; n <= 1000; n++) {
        if (namer(name, n, out, olen) != 0 || rjoin(dp, dir, "", out) != 0)
            return -1;
        if (r_exists(ctx, dp))
            continue;
        if (r_rename(ctx, src, dp) == 0)
            return 0;
        if (!alive(ctx) || !r_exists(ctx, dp))
            return -1;          /* not a name clash */
    }
    return -1;
}

/* the whole remote file, if it is a regular file within max bytes */
static int
r_get(struct sftp_ctx *ctx, const char *path, size_t max, unsigned char **data_r, size_t *len_r,
      char *why, size_t wlen)
{
    sftp_attributes a;
    sftp_file f;
    unsigned char *buf;
    size_t off = 0;

    *data_r = NULL;
    if (ctx->use_scp)
        return scp_get(ctx, path, max, data_r, len_r, why, wlen);
    if ((a = sftp_lstat(ctx->sftp, path)) == NULL) {
        snprintf(why, wlen, "cannot stat: %s", ssh_get_error(ctx->ssh));
        return -3;
    }
    if (a->type != SSH_FILEXFER_TYPE_REGULAR) {
        snprintf(why, wlen, a->type == SSH_FILEXFER_TYPE_SYMLINK ? "a symbolic link (never followed)"
                                                                  : "not a regular file");
        sftp_attributes_free(a);
        return -1;
    }
    if (a->size > max) {
        snprintf(why, wlen, "larger than max_size (%zu bytes)", max);
        sftp_attributes_free(a);
        return -1;
    }
    sftp_attributes_free(a);
    if ((f = sftp_open(ctx->sftp, path, O_RDONLY, 0)) == NULL) {
        snprintf(why, wlen, "cannot open: %s", ssh_get_error(ctx->ssh));
        return -3;
    }
    if ((buf = malloc(max + 1)) == NULL) {
        sftp_close(f);
        return -3;
    }
    for (;;) {
        ssize_t n = sftp_read(f, buf + off, max + 1 - off);

        if (n < 0) {
            snprintf(why, wlen, "read error: %s", ssh_get_error(ctx->ssh));
            free(buf);
            sftp_close(f);
            return -3;
        }
        if (n == 0)
            break;
        off += (size_t)n;
        if (off > max) {
            snprintf(why, wlen, "larger than max_size (%zu bytes)", max);
            free(buf);
            sftp_close(f);
            return -1;
        }
    }
    sftp_close(f);
    *data_r = buf;
    *len_r = off;
    return 0;
}

/* dir/tmp written and synced, then renamed to dir/final (which must not exist) */
static int
r_put(struct sftp_ctx *ctx, const char *dir, const char *tmp, const char *final,
      const unsigned char *data, size_t len)
{
    char tp[RPATH], fp[RPATH];
    sftp_file f;
    size_t off = 0;

    if (rjoin(tp, dir, "", tmp) != 0 || rjoin(fp, dir, "", final) != 0)
        return -1;
    if (ctx->use_scp) {
        char qt[2 * RPATH + 8], qf[2 * RPATH + 8], cmd[5 * RPATH];

        if (scp_put(ctx, tp, data, len) != 0 || shq(qt, sizeof(qt), tp) != 0
                || shq(qf, sizeof(qf), fp) != 0)
            return -1;
        snprintf(cmd, sizeof(cmd), "mv -f -- %s %s", qt, qf);
        return sh_run(ctx, cmd, NULL, NULL, 0) == 0 ? 0 : -1;
    }
    if ((f = sftp_open(ctx->sftp, tp, O_WRONLY | O_CREAT | O_TRUNC, ctx->dc.mode)) == NULL)
        return -1;
    while (off < len) {
        ssize_t n = sftp_write(f, data + off, len - off);

        if (n <= 0) {
            sftp_close(f);
            return -1;
        }
        off += (size_t)n;
    }
    if ((ctx->can_fsync && sftp_fsync(f) != 0) || sftp_close(f) != SSH_OK)
        return -1;
    if (r_exists(ctx, fp))
        (void)sftp_unlink(ctx->sftp, fp);   /* a stale copy of the same content */
    return sftp_rename(ctx->sftp, tp, fp) == SSH_OK ? 0 : -1;
}

/* ---------------- the life of one file (worker thread) ---------------- */

static int
reject(struct sftp_ctx *ctx, const char *src, const char *name, const char *why)
{
    char used[300], reason[320], tmp[340], text[1024], pname[256];

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (r_move_unique(ctx, src, ctx->errors, name, cmpr_drop_alt_name, used, sizeof(used)) != 0) {
        cmpr_log_error("sftp %s: %s: %s; cannot move it to %s: %s", ctx->name, pname, why,
                       ctx->errors, ssh_get_error(ctx->ssh));
        return -1;
    }
    cmpr_log_warn("sftp %s: %s: %s; moved to %s", ctx->name, pname, why, ctx->errors);
    snprintf(text, sizeof(text), "%s: %s\n", pname, why);
    snprintf(reason, sizeof(reason), "%s.reason", used);
    snprintf(tmp, sizeof(tmp), ".%s.tmp", reason);
    if (r_put(ctx, ctx->errors, tmp, reason, (const unsigned char *)text, strlen(text)) != 0)
        cmpr_log_error("sftp %s: cannot write %s/%s", ctx->name, ctx->errors, reason);
    cmpr_worker_result(&ctx->w, 0, 0);
    return 0;
}

/* A.N is on the server: retire R.N, publish A.N */
static int
finish(struct sftp_ctx *ctx, const char *name)
{
    char rp[RPATH], ap[RPATH], used[300], pname[256], pused[300];

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (rjoin(rp, ctx->proc, "R.", name) != 0 || rjoin(ap, ctx->proc, "A.", name) != 0)
        return -1;
    if (r_exists(ctx, rp)) {
        int r = ctx->archive != NULL
                ? r_move_unique(ctx, rp, ctx->archive, name, cmpr_drop_alt_name, used, sizeof(used))
                : r_unlink(ctx, rp);

        if (r != 0) {
            cmpr_log_error("sftp %s: %s: cannot retire the request: %s", ctx->name, pname,
                           ssh_get_error(ctx->ssh));
            return -1;
        }
    }
    cmpr_drop_crash_point("retired");
    if (r_move_unique(ctx, ap, ctx->outbox, name, cmpr_drop_answer_name, used, sizeof(used)) != 0) {
        cmpr_log_error("sftp %s: %s: cannot publish the answer in %s: %s", ctx->name, pname,
                       ctx->outbox, ssh_get_error(ctx->ssh));
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
    char rp[RPATH], why[400], pname[256], tmp[300], ans[300];
    unsigned char *data = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    uint64_t t0 = uv_hrtime();
    int r;

    cmpr_drop_printable(name, pname, sizeof(pname));
    if (rjoin(rp, ctx->proc, "R.", name) != 0)
        return -1;
    if (!cmpr_drop_matches(ctx->dc.pattern, name)) {
        snprintf(why, sizeof(why), "name does not match pattern '%s'", ctx->dc.pattern);
        return reject(ctx, rp, name, why);
    }
    r = r_get(ctx, rp, (size_t)ctx->dc.max_size, &data, &len, why, sizeof(why));
    if (r == -1 || (r == 0 && cmpr_drop_check(data, len, (size_t)ctx->dc.max_size, why, sizeof(why)) != 0)) {
        free(data);
        return reject(ctx, rp, name, why);
    }
    if (r != 0) {
        cmpr_log_error("sftp %s: %s: %s (kept, tried again later)", ctx->name, pname, why);
        return -1;
    }
    {
        struct cmpr_request_info info = { "sftp", pname, ctx->dc.label, NULL, NULL, resumed };

        r = cmpr_core_handle(core, &info, data, len, &out, &out_len);
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
    r = r_put(ctx, ctx->proc, tmp, ans, out, out_len);
    free(out);
    if (r != 0) {
        cmpr_log_error("sftp %s: %s: cannot upload the answer: %s (kept, tried again later)",
                       ctx->name, pname, ssh_get_error(ctx->ssh));
        return -1;
    }
    cmpr_drop_crash_point("answered");
    r = finish(ctx, name);
    cmpr_worker_result(&ctx->w, r == 0, uv_hrtime() - t0);
    return r;
}

/* the entries of a remote folder (names and attributes), at most MAX_SCAN */
static int
r_list(struct sftp_ctx *ctx, const char *dir, struct cmpr_drop_entry **out, size_t *n_out,
       int want_types)
{
    sftp_dir d;
    sftp_attributes a;
    struct cmpr_drop_entry *v = NULL;
    size_t n = 0, cap = 0;

    if (ctx->use_scp)
        return scp_list(ctx, dir, out, n_out, want_types);
    *out = NULL;
    *n_out = 0;
    if ((d = sftp_opendir(ctx->sftp, dir)) == NULL)
        return -1;
    while ((a = sftp_readdir(ctx->sftp, d)) != NULL) {
        if (n < MAX_SCAN && a->name != NULL && strcmp(a->name, ".") != 0 && strcmp(a->name, "..") != 0
                && (!want_types || a->type != SSH_FILEXFER_TYPE_DIRECTORY)) {
            if (n == cap) {
                struct cmpr_drop_entry *nv = realloc(v, (cap = cap ? cap * 2 : 32) * sizeof(*v));

                if (nv == NULL) {
                    sftp_attributes_free(a);
                    break;
                }
                v = nv;
            }
            v[n].name = strdup(a->name);
            v[n].size = (int64_t)a->size;
            v[n].mtime_ns = (int64_t)a->mtime * 1000000000 + (int64_t)a->mtime_nseconds;
            v[n].ino = 0;
            v[n].since = 0;
            if (v[n].name != NULL)
                n++;
        }
        sftp_attributes_free(a);
    }
    sftp_closedir(d);
    *out = v;
    *n_out = n;
    return 0;
}

static int
recover(struct sftp_ctx *ctx, struct cmpr_core *core)
{
    struct cmpr_drop_entry *e;
    size_t n;
    int left = 0;

    if (r_list(ctx, ctx->proc, &e, &n, 0) != 0)
        return -1;
    for (size_t i = 0; i < n && alive(ctx) && !cmpr_worker_stopping(&ctx->w); i++) {
        const char *nm = e[i].name, *name = nm + 2;
        char p[RPATH];

        if (strncmp(nm, "T.", 2) == 0) {
            if (rjoin(p, ctx->proc, "", nm) == 0)
                (void)r_unlink(ctx, p);
        } else if (strncmp(nm, "A.", 2) == 0) {
            if (rjoin(p, ctx->proc, "R.", name) == 0 && !r_exists(ctx, p))
                left |= finish(ctx, name) != 0;
        } else if (strncmp(nm, "R.", 2) == 0) {
            cmpr_worker_busy(&ctx->w, 1);
            if (rjoin(p, ctx->proc, "A.", name) == 0 && r_exists(ctx, p))
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
        disconnect(ctx);            /* the thread is ending: close the session here */
        return -1;
    }
    if (!alive(ctx)) {
        disconnect(ctx);
        if (connect_server(ctx) != 0)
            return ctx->backoff;
    }
    /* a file that cannot be finished now is tried again next cycle; it does
     * not hold up the others */
    stuck = recover(ctx, core) != 0;
    if (!alive(ctx))
        goto trouble;
    if (r_list(ctx, ctx->inbox, &now, &n_now, 1) != 0) {
        cmpr_log_error("sftp %s: cannot list %s: %s", ctx->name, ctx->inbox, ssh_get_error(ctx->ssh));
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
    for (size_t i = 0; i < n_ready && alive(ctx) && !cmpr_worker_stopping(w); i++) {
        char src[RPATH], dst[RPATH];
        const char *name = ready[i].name;

        if (rjoin(src, ctx->inbox, "", name) != 0 || rjoin(dst, ctx->proc, "R.", name) != 0)
            continue;
        /* the claim: never replaces, so whoever renames first owns the file */
        if (r_rename(ctx, src, dst) != 0)
            continue;           /* taken by another instance, or trouble (seen next cycle) */
        cmpr_drop_crash_point("claimed");
        cmpr_worker_busy(&ctx->w, 1);
        (void)process_claimed(ctx, core, name, 0);
        cmpr_worker_busy(&ctx->w, -1);
    }
    free(ready);
    cmpr_drop_entries_free(ctx->seen, ctx->n_seen);
    ctx->seen = now;
    ctx->n_seen = n_now;
    if (!alive(ctx))
        goto trouble;
    if (stuck && (wait < 0 || wait > ctx->interval_ms))
        wait = ctx->interval_ms;
    return wait;
trouble:
    if (!alive(ctx)) {
        cmpr_log_error("sftp %s: connection to %s:%d lost; connecting again", ctx->name, ctx->host,
                       ctx->port);
        disconnect(ctx);
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
sftp_configure(void *vctx, const struct cmpr_conf_group *g, char **err_r)
{
    struct sftp_ctx *ctx = vctx;
    const char *v;
    long port;
    int r;

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
        char buf[RPATH];

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
    ctx->proto = PROTO_AUTO;
    if ((v = cmpr_conf_group_get(g, "protocol")) != NULL) {
        if (strcmp(v, "sftp") == 0)
            ctx->proto = PROTO_SFTP;
        else if (strcmp(v, "scp") == 0)
            ctx->proto = PROTO_SCP;
        else if (strcmp(v, "auto") != 0) {
            *err_r = cmpr_conf_group_error(g, "protocol", "protocol is auto, sftp or scp, not '%s'", v);
            return CMPR_ERR_CONFIG;
        }
    }
    ctx->interval_ms *= 1000;
    ctx->backoff_max = ctx->interval_ms < 60000 ? 60000 : ctx->interval_ms;
    if ((r = cmpr_drop_configure(g, g->name, &ctx->dc, err_r)) != CMPR_OK)
        return r;
    if ((ctx->proc = malloc(strlen(ctx->processing) + 80)) == NULL)
        return CMPR_ERR_ALLOC;
    sprintf(ctx->proc, "%s/%s", ctx->processing, ctx->dc.instance);
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
sftp_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    struct sftp_ctx *ctx = vctx;

    ctx->stop_done = done;
    ctx->stop_arg = arg;
    cmpr_worker_stop(&ctx->w, worker_done, ctx);
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

    disconnect(ctx);            /* the thread has ended */
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
    "sftp", "sftp", sizeof(struct sftp_ctx), sftp_configure, sftp_start, sftp_stop,
    sftp_in_flight, cmpr_transport_no_port, cmpr_transport_no_address, sftp_free_ctx
};
