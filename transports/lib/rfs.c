/*
 * Remote folders over SSH: SFTP, or SCP plus POSIX shell commands where a
 * server offers no SFTP subsystem (see rfs.h).
 */
#define _GNU_SOURCE 1
#include "transports/lib/rfs.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define MAX_SCAN 10000
#define MAX_LISTING (4u * 1024 * 1024)  /* bytes of a remote listing by shell */

static int sh_path(struct cmpr_rfs *ctx, const char *fmt, const char *path);

void
cmpr_rfs_cut_init(struct cmpr_rfs_cut *c)
{
    pthread_mutex_init(&c->mu, NULL);
    c->fd = -1;
    c->cut = 0;
}

void
cmpr_rfs_cut_free(struct cmpr_rfs_cut *c)
{
    pthread_mutex_destroy(&c->mu);
}

void
cmpr_rfs_cut(struct cmpr_rfs_cut *c)
{
    pthread_mutex_lock(&c->mu);
    c->cut = 1;
    if (c->fd >= 0)
        (void)shutdown(c->fd, SHUT_RDWR);  /* the socket stays open until the session closes it */
    pthread_mutex_unlock(&c->mu);
}

/* the session's socket, known to (or no longer known to) its cut; 0, or -1
 * when the session was cut before */
static int
cut_publish(struct cmpr_rfs *ctx, int fd)
{
    int r = 0;

    if (ctx->cut == NULL)
        return 0;
    pthread_mutex_lock(&ctx->cut->mu);
    if (fd >= 0 && ctx->cut->cut)
        r = -1;
    else
        ctx->cut->fd = fd;
    pthread_mutex_unlock(&ctx->cut->mu);
    return r;
}

void
cmpr_rfs_close(struct cmpr_rfs *ctx)
{
    (void)cut_publish(ctx, -1);         /* before the socket is closed and its number reused */
    if (ctx->sftp != NULL)
        sftp_free(ctx->sftp);
    ctx->sftp = NULL;
    if (ctx->ssh != NULL) {
        ssh_disconnect(ctx->ssh);
        ssh_free(ctx->ssh);
    }
    ctx->ssh = NULL;
}

int
cmpr_rfs_alive(struct cmpr_rfs *ctx)
{
    if (ctx->ssh == NULL || !ssh_is_connected(ctx->ssh))
        return 0;
    /* the SFTP server can end (killed, crashed, a separate sftp-server
     * program) while the SSH connection stays up: the session is of no use
     * then, and a new one is needed */
    if (!ctx->use_scp && ctx->sftp != NULL
            && (ctx->sftp->channel == NULL || !ssh_channel_is_open(ctx->sftp->channel)
                || ssh_channel_is_eof(ctx->sftp->channel)))
        return 0;
    return 1;
}

void
cmpr_rfs_mkdirs(struct cmpr_rfs *ctx, const char *path)
{
    char buf[CMPR_RFS_PATH];
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
exec_open(struct cmpr_rfs *ctx, const char *cmd)
{
    ssh_channel ch = ssh_channel_new(ctx->ssh);

    cmpr_log_debug("ssh: exec %.60s%s", cmd, strlen(cmd) > 60 ? "..." : "");
    ctx->why[0] = '\0';
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
ch_read(struct cmpr_rfs *ctx, ssh_channel ch, void *buf, size_t n)
{
    size_t off = 0;

    while (off < n) {
        int r = ssh_channel_read_timeout(ch, (char *)buf + off, (uint32_t)(n - off), 0,
                                         (int)ctx->timeout * 1000);

        if (r == 0 && !ssh_channel_is_eof(ch))
            snprintf(ctx->why, sizeof(ctx->why), "no answer from the remote side within %ld s", ctx->timeout);
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

/* One line of the SCP protocol (a file header or a message) into line,
 * without its newline; a longer line is cut at the buffer (what follows
 * will not parse). 0, or -1 when the channel failed. */
static int
scp_line(struct cmpr_rfs *ctx, ssh_channel ch, char *line, size_t len)
{
    size_t n = 0;
    unsigned char c;

    while (n + 1 < len) {
        if (ch_read(ctx, ch, &c, 1) != 0)
            return -1;
        if (c == '\n')
            break;
        line[n++] = (char)c;
    }
    line[n] = '\0';
    return 0;
}

/* Runs cmd with in (in_len bytes) on its stdin; its stdout (the first max
 * bytes; the rest is read and dropped) into *out_r (malloc()ed, NUL after
 * it) if out_r is set. Returns the exit status, or -1 when the command
 * could not run. */
static int
sh_run_in(struct cmpr_rfs *ctx, const char *cmd, const void *in, size_t in_len, unsigned char **out_r,
          size_t *len_r, size_t max)
{
    ssh_channel ch = exec_open(ctx, cmd);
    unsigned char tmp[4096];
    struct cmpr_buf out;
    long quiet_since;
    int st;

    if (ch == NULL)
        return -1;
    if (in_len > 0 && ch_write(ch, in, in_len) != 0) {
        exec_close(ch);
        return -1;
    }
    cmpr_buf_init(&out, max);
    ssh_channel_send_eof(ch);
    quiet_since = cmpr_mono_ms();
    for (;;) {
        int r = ssh_channel_read_timeout(ch, tmp, sizeof(tmp), 0, (int)ctx->timeout * 1000);

        if (r == 0 && ssh_channel_is_eof(ch))
            break;
        /* a command silent for the timeout is stuck (or its login shell
         * is): given up, never waited for again and again */
        if (r == 0 && cmpr_mono_ms() - quiet_since >= ctx->timeout * 1000)
            snprintf(ctx->why, sizeof(ctx->why), "a remote command gave no answer within %ld s: %.60s",
                     ctx->timeout, cmd);
        if (r < 0 || (r == 0 && (!cmpr_rfs_alive(ctx) || ctx->why[0] != '\0'))) {
            cmpr_buf_free(&out);
            exec_close(ch);
            return -1;
        }
        if (r == 0)
            continue;
        quiet_since = cmpr_mono_ms();
        if (out_r != NULL && cmpr_buf_put(&out, tmp, (size_t)r) == CMPR_ERR_ALLOC) {
            cmpr_buf_free(&out);
            exec_close(ch);
            return -1;
        }
    }
    st = ssh_channel_get_exit_status(ch);
    exec_close(ch);
    if (out_r != NULL) {
        if ((*out_r = cmpr_buf_steal(&out, len_r)) == NULL)
            st = -1;
    }
    cmpr_buf_free(&out);
    return st;
}

static int
sh_run(struct cmpr_rfs *ctx, const char *cmd, unsigned char **out_r, size_t *len_r, size_t max)
{
    return sh_run_in(ctx, cmd, NULL, 0, out_r, len_r, max);
}

/* fmt with the single-quoted path as %1$s (used as often as needed); 0 on exit 0 */
static int
sh_path(struct cmpr_rfs *ctx, const char *fmt, const char *path)
{
    char q[2 * CMPR_RFS_PATH + 8], cmd[8 * CMPR_RFS_PATH];
    int n;

    if (shq(q, sizeof(q), path) != 0)
        return -1;
    n = snprintf(cmd, sizeof(cmd), fmt, q);
    if (n <= 0 || (size_t)n >= sizeof(cmd))
        return -1;
    return sh_run(ctx, cmd, NULL, NULL, 0) == 0 ? 0 : -1;
}

static int
scp_rename(struct cmpr_rfs *ctx, const char *src, const char *dst)
{
    char qs[2 * CMPR_RFS_PATH + 8], qd[2 * CMPR_RFS_PATH + 8], cmd[8 * CMPR_RFS_PATH];
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
scp_get(struct cmpr_rfs *ctx, const char *path, size_t max, unsigned char **data_r, size_t *len_r,
        char *why, size_t wlen)
{
    char q[2 * CMPR_RFS_PATH + 8], cmd[8 * CMPR_RFS_PATH + 128], line[256];
    unsigned char *buf, zero = 0, c;
    ssh_channel ch;
    size_t size;
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
        snprintf(why, wlen, "cannot start scp: %s", cmpr_rfs_error(ctx));
        return -3;
    }
    if (ch_write(ch, &zero, 1) != 0)
        goto broken;
    /* "C0644 SIZE NAME\n" */
    if (scp_line(ctx, ch, line, sizeof(line)) != 0)
        goto broken;
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
    snprintf(why, wlen, "scp transfer failed: %s", cmpr_rfs_error(ctx));
    exec_close(ch);
    return -3;
}

/* SCP sink mode: path gets data with the configured mode */
static int
scp_put(struct cmpr_rfs *ctx, const char *path, const unsigned char *data, size_t len)
{
    char q[2 * CMPR_RFS_PATH + 8], cmd[2 * CMPR_RFS_PATH + 32], hdr[64];
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
    snprintf(hdr, sizeof(hdr), "C%04o %zu cmp.pki\n", (unsigned)ctx->mode, len);
    if (ch_read(ctx, ch, &ack, 1) == 0 && ack == 0 && ch_write(ch, hdr, strlen(hdr)) == 0
            && ch_read(ctx, ch, &ack, 1) == 0 && ack == 0 && ch_write(ch, data, len) == 0
            && ch_write(ch, &zero, 1) == 0 && ch_read(ctx, ch, &ack, 1) == 0 && ack == 0)
        r = 0;
    exec_close(ch);
    return r;
}

/* the listing of dir by a POSIX shell: "TYPE SIZE NAME\0" per entry */
static int
scp_list(struct cmpr_rfs *ctx, const char *dir, struct cmpr_drop_entry **out, size_t *n_out,
         int want_types)
{
    char q[2 * CMPR_RFS_PATH + 8], cmd[3 * CMPR_RFS_PATH];
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


const char *
cmpr_rfs_error(struct cmpr_rfs *ctx)
{
    if (ctx->why[0] != '\0')
        return ctx->why;
    return ctx->ssh != NULL ? ssh_get_error(ctx->ssh) : "not connected";
}

int
cmpr_rfs_connect(struct cmpr_rfs *ctx, const struct cmpr_rfs_opts *o, char *why, size_t wlen)
{
    ssh_key key = NULL, srv = NULL;
    enum ssh_known_hosts_e kh;
    int no = 0, yes = 1, port = o->port;
    long t = o->timeout;

    memset(ctx, 0, sizeof(*ctx));
    ctx->cut = o->cut;
    ctx->timeout = o->timeout;
    ctx->mode = o->mode;
    if ((ctx->ssh = ssh_new()) == NULL) {
        snprintf(why, wlen, "out of memory");
        return -1;
    }
    ssh_options_set(ctx->ssh, SSH_OPTIONS_HOST, o->host);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_PORT, &port);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_USER, o->user);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_KNOWNHOSTS, o->known_hosts);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    ssh_options_set(ctx->ssh, SSH_OPTIONS_PROCESS_CONFIG, &no);
    ssh_options_set(ctx->ssh, SSH_OPTIONS_TIMEOUT, &t);
    /* small packets at once: SCP and SFTP wait for an answer to each */
    ssh_options_set(ctx->ssh, SSH_OPTIONS_NODELAY, &yes);
    if (ssh_connect(ctx->ssh) != SSH_OK) {
        snprintf(why, wlen, "cannot connect: %s", ssh_get_error(ctx->ssh));
        goto fail;
    }
    if (cut_publish(ctx, ssh_get_fd(ctx->ssh)) != 0) {
        snprintf(why, wlen, "stopping");
        goto fail;
    }
    if ((kh = ssh_session_is_known_server(ctx->ssh)) != SSH_KNOWN_HOSTS_OK) {
        unsigned char *hash = NULL;
        size_t hlen = 0;
        char *fp = NULL;

        if (ssh_get_server_publickey(ctx->ssh, &srv) == SSH_OK
                && ssh_get_publickey_hash(srv, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0)
            fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
        snprintf(why, wlen, "host key %s %s (not in %s): refused", fp != NULL ? fp : "",
                 known_state(kh), o->known_hosts);
        ssh_string_free_char(fp);
        ssh_clean_pubkey_hash(&hash);
        ssh_key_free(srv);
        goto fail;
    }
    if (ssh_pki_import_privkey_file(o->identity, NULL, NULL, NULL, &key) != SSH_OK) {
        snprintf(why, wlen, "cannot read the identity %s", o->identity);
        goto fail;
    }
    if (ssh_userauth_publickey(ctx->ssh, NULL, key) != SSH_AUTH_SUCCESS) {
        snprintf(why, wlen, "public key authentication as %s failed: %s", o->user,
                 ssh_get_error(ctx->ssh));
        ssh_key_free(key);
        goto fail;
    }
    ssh_key_free(key);
    ctx->use_scp = o->proto == CMPR_RFS_SCP;
    if (!ctx->use_scp && ((ctx->sftp = sftp_new(ctx->ssh)) == NULL || sftp_init(ctx->sftp) != SSH_OK)) {
        if (ctx->sftp != NULL)
            sftp_free(ctx->sftp);
        ctx->sftp = NULL;
        if (o->proto == CMPR_RFS_SFTP) {
            snprintf(why, wlen, "the server offers no SFTP subsystem: %s", ssh_get_error(ctx->ssh));
            goto fail;
        }
        ctx->use_scp = ctx->fell_back = 1;
    }
    ctx->can_fsync = !ctx->use_scp && sftp_extension_supported(ctx->sftp, "fsync@openssh.com", "1");
    return 0;
fail:
    cmpr_rfs_close(ctx);
    return -1;
}

/* ---------------- remote file operations (worker thread) ---------------- */

int
cmpr_rfs_join(char *buf, const char *dir, const char *prefix, const char *name)
{
    int n = snprintf(buf, CMPR_RFS_PATH, "%s/%s%s", dir, prefix, name);

    return n > 0 && n < CMPR_RFS_PATH ? 0 : -1;
}

int
cmpr_rfs_exists(struct cmpr_rfs *ctx, const char *path)
{
    sftp_attributes a;

    if (ctx->use_scp)
        return sh_path(ctx, "test -e %1$s || test -L %1$s", path) == 0;
    if ((a = sftp_lstat(ctx->sftp, path)) == NULL)
        return 0;
    sftp_attributes_free(a);
    return 1;
}

int
cmpr_rfs_rename(struct cmpr_rfs *ctx, const char *src, const char *dst)
{
    if (ctx->use_scp)
        return scp_rename(ctx, src, dst);
    return sftp_rename(ctx->sftp, src, dst) == SSH_OK ? 0 : -1;
}

int
cmpr_rfs_unlink(struct cmpr_rfs *ctx, const char *path)
{
    if (ctx->use_scp)
        return sh_path(ctx, "rm -f -- %1$s", path);
    return sftp_unlink(ctx->sftp, path) == SSH_OK ? 0 : -1;
}

/* src into dir under the first free name namer(name, n) makes; -1 on failure */
int
cmpr_rfs_move_unique(struct cmpr_rfs *ctx, const char *src, const char *dir, const char *name,
              int (*namer)(const char *, int, char *, size_t), char *out, size_t olen)
{
    char dp[CMPR_RFS_PATH];

    for (int n = 1; n <= 1000; n++) {
        if (namer(name, n, out, olen) != 0 || cmpr_rfs_join(dp, dir, "", out) != 0)
            return -1;
        if (cmpr_rfs_exists(ctx, dp))
            continue;
        if (cmpr_rfs_rename(ctx, src, dp) == 0)
            return 0;
        if (!cmpr_rfs_alive(ctx) || !cmpr_rfs_exists(ctx, dp))
            return -1;          /* not a name clash */
    }
    return -1;
}

/* the whole remote file, if it is a regular file within max bytes */
static ssize_t
sftp_read_cb(void *f, void *p, size_t n)
{
    return sftp_read(f, p, n);
}

int
cmpr_rfs_get(struct cmpr_rfs *ctx, const char *path, size_t max, unsigned char **data_r, size_t *len_r,
      char *why, size_t wlen)
{
    sftp_attributes a;
    sftp_file f;
    struct cmpr_buf b;
    int r;

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
    cmpr_buf_init(&b, max);
    r = cmpr_buf_read_from(&b, sftp_read_cb, f);
    sftp_close(f);
    if (r != CMPR_OK || (*data_r = cmpr_buf_steal(&b, len_r)) == NULL) {
        if (r == CMPR_ERR_TOO_LARGE)
            snprintf(why, wlen, "larger than max_size (%zu bytes)", max);
        else
            snprintf(why, wlen, "read error: %s", r == CMPR_ERR_IO ? ssh_get_error(ctx->ssh) : "out of memory");
        cmpr_buf_free(&b);
        return r == CMPR_ERR_TOO_LARGE ? -1 : -3;
    }
    return 0;
}

/* dir/tmp written and synced, then renamed to dir/final (which must not exist) */
int
cmpr_rfs_put(struct cmpr_rfs *ctx, const char *dir, const char *tmp, const char *final,
      const unsigned char *data, size_t len)
{
    char tp[CMPR_RFS_PATH], fp[CMPR_RFS_PATH];
    sftp_file f;
    size_t off = 0;

    if (cmpr_rfs_join(tp, dir, "", tmp) != 0 || cmpr_rfs_join(fp, dir, "", final) != 0)
        return -1;
    if (ctx->use_scp) {
        char qt[2 * CMPR_RFS_PATH + 8], qf[2 * CMPR_RFS_PATH + 8], cmd[5 * CMPR_RFS_PATH];

        if (scp_put(ctx, tp, data, len) != 0 || shq(qt, sizeof(qt), tp) != 0
                || shq(qf, sizeof(qf), fp) != 0)
            return -1;
        snprintf(cmd, sizeof(cmd), "mv -f -- %s %s", qt, qf);
        return sh_run(ctx, cmd, NULL, NULL, 0) == 0 ? 0 : -1;
    }
    if ((f = sftp_open(ctx->sftp, tp, O_WRONLY | O_CREAT | O_TRUNC, ctx->mode)) == NULL)
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
    if (cmpr_rfs_exists(ctx, fp))
        (void)sftp_unlink(ctx->sftp, fp);   /* a stale copy of the same content */
    return sftp_rename(ctx->sftp, tp, fp) == SSH_OK ? 0 : -1;
}

/* the entries of a remote folder (names and attributes), at most MAX_SCAN */
int
cmpr_rfs_list(struct cmpr_rfs *ctx, const char *dir, struct cmpr_drop_entry **out, size_t *n_out,
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
            if (cmpr_array_grow(&v, &cap, n + 1, sizeof(*v), MAX_SCAN) != CMPR_OK) {
                sftp_attributes_free(a);
                break;
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


/* ---------------- batches (worker thread) ---------------- */

#define MAX_SCRIPT (64u * 1024 * 1024)  /* bytes of one batch script */
#define MAX_RESULTS (4u * 1024 * 1024)  /* bytes of what it prints */

/* one op of a batch as shell: sets r<k> (0: done) and prints "k STATUS USED" */
static int
script_op(struct cmpr_buf *b, const struct cmpr_rfs_op *op, size_t k)
{
    char qs[2 * CMPR_RFS_PATH + 8], qd[2 * CMPR_RFS_PATH + 8];
    int r = CMPR_OK;

    if (shq(qs, sizeof(qs), op->src) != 0 || shq(qd, sizeof(qd), op->dst) != 0)
        return CMPR_ERR_TOO_LARGE;
    if (op->after >= 0 && (r = cmpr_buf_putf(b, "if [ \"$r%ld\" = 0 ]; then ", op->after)) != CMPR_OK)
        return r;
    if ((r = cmpr_buf_putf(b, "r%zu=1; u=0; ", k)) != CMPR_OK)
        return r;
    switch (op->kind) {
    case CMPR_RFS_OP_RENAME:
        /* hard link then unlink; where links are refused, mv only if the target is free */
        r = cmpr_buf_putf(b, "if ln -- %s %s 2>/dev/null; then rm -f -- %s; r%zu=0; elif test ! -e %s && "
                          "test ! -L %s && test -e %s && mv -- %s %s; then r%zu=0; fi; ",
                          qs, qd, qs, k, qd, qd, qs, qs, qd, k);
        break;
    case CMPR_RFS_OP_UNLINK:
        r = cmpr_buf_putf(b, "rm -f -- %s && r%zu=0; ", qs, k);
        break;
    default:                            /* MOVE_UNIQUE: the first free of a few names */
        r = cmpr_buf_putf(b, "i=0; for d in");
        for (int n = 1; n <= CMPR_RFS_BATCH_NAMES && r == CMPR_OK; n++) {
            char name[300], path[CMPR_RFS_PATH];

            if (op->namer(op->name, n, name, sizeof(name)) != 0 || cmpr_rfs_join(path, op->dst, "", name) != 0
                    || shq(qd, sizeof(qd), path) != 0)
                return CMPR_ERR_TOO_LARGE;
            r = cmpr_buf_putf(b, " %s", qd);
        }
        if (r == CMPR_OK)
            r = cmpr_buf_putf(b, "; do i=$((i + 1)); if test -e \"$d\" || test -L \"$d\"; then continue; fi; "
                              "if ln -- %s \"$d\" 2>/dev/null; then rm -f -- %s; r%zu=0; u=$i; break; fi; "
                              "if test ! -e \"$d\" && test ! -L \"$d\" && test -e %s && mv -- %s \"$d\"; "
                              "then r%zu=0; u=$i; break; fi; test -e \"$d\" || break; done; ",
                              qs, qs, k, qs, qs, k);
        break;
    }
    if (r == CMPR_OK && op->kind == CMPR_RFS_OP_RENAME && op->stat_dst)
        /* what arrived (one look, shell built-ins only, instead of another command) */
        r = cmpr_buf_putf(b, "if [ $r%zu = 0 ]; then if test -L %s; then echo \"%zu l 0\"; elif test -f %s; then "
                          "echo \"%zu f 0\"; elif test -d %s; then echo \"%zu d 0\"; "
                          "else echo \"%zu o 0\"; fi; else echo \"%zu 1 0\"; fi", k, qd, k, qd, k, qd, k, k, k);
    else if (r == CMPR_OK)
        r = cmpr_buf_putf(b, "echo \"%zu $r%zu $u\"", k, k);
    if (r == CMPR_OK && op->after >= 0)
        r = cmpr_buf_putf(b, "; else r%zu=1; echo \"%zu 1 0\"; fi", k, k);
    if (r == CMPR_OK)
        r = cmpr_buf_putf(b, "\n");
    return r;
}

/* a batch script: runs it, and per index k the word and number it printed */
static int
run_script(struct cmpr_rfs *ctx, struct cmpr_buf *script, size_t n, char *word, long long *num,
           unsigned char *seen)
{
    unsigned char *out = NULL;
    size_t len = 0;
    int st = sh_run_in(ctx, "sh", cmpr_buf_ptr(script), cmpr_buf_len(script), &out, &len, MAX_RESULTS);

    if (st < 0) {
        free(out);
        return -1;
    }
    (void)cmpr_drop_parse_results(out, len, n, word, num, seen);
    free(out);
    return 0;
}

static int
run_scp(struct cmpr_rfs *ctx, struct cmpr_rfs_op *ops, size_t n)
{
    struct cmpr_buf b;
    char *word = calloc(n, 1);
    long long *num = calloc(n, sizeof(*num));
    unsigned char *seen = calloc(n, 1);
    int r = -1;

    cmpr_buf_init(&b, MAX_SCRIPT);
    if (word == NULL || num == NULL || seen == NULL)
        goto out;
    for (size_t k = 0; k < n; k++)
        if (ops[k].kind != CMPR_RFS_OP_SKIP && script_op(&b, &ops[k], k) != CMPR_OK)
            goto out;
    if (cmpr_buf_len(&b) > 0 && run_script(ctx, &b, n, word, num, seen) != 0)
        goto out;
    for (size_t k = 0; k < n; k++) {
        ops[k].ok = ops[k].kind != CMPR_RFS_OP_SKIP && seen[k] && word[k] == '0';
        if (ops[k].kind == CMPR_RFS_OP_RENAME && ops[k].stat_dst && seen[k] && strchr("lfdo", word[k]) != NULL
                && word[k] != '\0') {
            ops[k].ok = 1;
            ops[k].type = word[k];
        }
        if (ops[k].ok && ops[k].kind == CMPR_RFS_OP_MOVE_UNIQUE
                && (num[k] < 1 || num[k] > CMPR_RFS_BATCH_NAMES
                    || ops[k].namer(ops[k].name, (int)num[k], ops[k].used, sizeof(ops[k].used)) != 0))
            ops[k].ok = 0;              /* the server says a name we never offered */
    }
    r = 0;
out:
    cmpr_buf_free(&b);
    free(word);
    free(num);
    free(seen);
    return r;
}

int
cmpr_rfs_run(struct cmpr_rfs *ctx, struct cmpr_rfs_op *ops, size_t n)
{
    for (size_t k = 0; k < n; k++)
        ops[k].ok = 0;
    if (n == 0)
        return 0;
    if (ctx->use_scp)
        return run_scp(ctx, ops, n);
    for (size_t k = 0; k < n; k++) {
        struct cmpr_rfs_op *op = &ops[k];

        if (op->kind == CMPR_RFS_OP_SKIP || (op->after >= 0 && !ops[op->after].ok))
            continue;
        if (op->kind == CMPR_RFS_OP_RENAME)
            op->ok = cmpr_rfs_rename(ctx, op->src, op->dst) == 0;
        else if (op->kind == CMPR_RFS_OP_UNLINK)
            op->ok = cmpr_rfs_unlink(ctx, op->src) == 0;
        else
            op->ok = cmpr_rfs_move_unique(ctx, op->src, op->dst, op->name, op->namer, op->used,
                                          sizeof(op->used)) == 0;
        if (!cmpr_rfs_alive(ctx))
            return -1;
    }
    return 0;
}

/* an SCP status byte: 0, or 1 (an error) / 2 (fatal) with its message in msg */
static int
scp_status(struct cmpr_rfs *ctx, ssh_channel ch, char *msg, size_t mlen)
{
    char line[512] = "";
    unsigned char c;

    if (ch_read(ctx, ch, &c, 1) != 0)
        return 2;
    if (c == 0)
        return 0;
    /* the message: a bounded line (a longer one breaks the transfer) */
    if (scp_line(ctx, ch, line, sizeof(line)) != 0 || strlen(line) + 1 >= sizeof(line))
        c = 2;
    cmpr_drop_printable(line, msg, mlen);
    return c == 1 ? 1 : 2;
}

/* the kinds and sizes of files not known yet: one script */
static void
scp_kinds(struct cmpr_rfs *ctx, struct cmpr_rfs_file *f, size_t n)
{
    struct cmpr_buf b;
    char q[2 * CMPR_RFS_PATH + 8];
    char *word = calloc(n, 1);
    long long *num = calloc(n, sizeof(*num));
    unsigned char *seen = calloc(n, 1);
    int r = CMPR_OK;

    cmpr_buf_init(&b, MAX_SCRIPT);
    for (size_t k = 0; k < n && r == CMPR_OK; k++) {
        if (f[k].kind != 0)
            continue;
        if (shq(q, sizeof(q), f[k].path) != 0) {
            f[k].kind = 'n';
            continue;
        }
        r = cmpr_buf_putf(&b, "if test -L %s; then echo \"%zu l 0\"; elif test -f %s; then s=$(wc -c <%s); "
                          "echo \"%zu f\" $s; elif test -e %s; then echo \"%zu o 0\"; else echo \"%zu n 0\"; fi\n",
                          q, k, q, q, k, q, k, k);
    }
    if (word != NULL && num != NULL && seen != NULL && r == CMPR_OK && cmpr_buf_len(&b) > 0
            && run_script(ctx, &b, n, word, num, seen) == 0)
        for (size_t k = 0; k < n; k++)
            if (f[k].kind == 0 && seen[k]) {
                f[k].kind = word[k];
                f[k].size = num[k];
            }
    cmpr_buf_free(&b);
    free(word);
    free(num);
    free(seen);
}

/* SCP source mode for files idx[0..m) of f, in that order, in one transfer */
static void
scp_fetch(struct cmpr_rfs *ctx, struct cmpr_rfs_file *f, const size_t *idx, size_t m, size_t max)
{
    struct cmpr_buf cmd;
    char q[2 * CMPR_RFS_PATH + 8], line[600];
    unsigned char zero = 0;
    ssh_channel ch = NULL;
    size_t j = 0;

    cmpr_buf_init(&cmd, 128 * 1024);
    if (cmpr_buf_putf(&cmd, "scp -f --") != CMPR_OK)
        goto broken;
    for (size_t i = 0; i < m; i++)
        if (shq(q, sizeof(q), f[idx[i]].path) != 0 || cmpr_buf_putf(&cmd, " %s", q) != CMPR_OK)
            goto broken;
    if (cmpr_buf_put(&cmd, "", 1) != CMPR_OK || (ch = exec_open(ctx, (const char *)cmpr_buf_ptr(&cmd))) == NULL
            || ch_write(ch, &zero, 1) != 0)
        goto broken;
    for (; j < m; j++) {
        struct cmpr_rfs_file *x = &f[idx[j]];
        size_t size;

        /* "C0644 SIZE NAME\n", or "\1message\n" for this file */
        if (scp_line(ctx, ch, line, sizeof(line)) != 0)
            goto broken;
        if (line[0] == 1) {
            x->r = -3;
            cmpr_drop_printable(line + 1, x->why, sizeof(x->why));
            continue;                   /* the source goes on with the next file */
        }
        if (cmpr_drop_parse_scp_header(line, &size) != 0)
            goto broken;
        if (size > max) {               /* it grew since we looked: the transfer cannot skip it */
            x->r = -1;
            snprintf(x->why, sizeof(x->why), "larger than max_size (%zu bytes)", max);
            j++;
            goto broken;
        }
        if ((x->data = malloc(size + 1)) == NULL || ch_write(ch, &zero, 1) != 0
                || ch_read(ctx, ch, x->data, size) != 0 || scp_status(ctx, ch, line, sizeof(line)) != 0
                || ch_write(ch, &zero, 1) != 0) {
            free(x->data);
            x->data = NULL;
            goto broken;
        }
        x->len = size;
        x->r = 0;
    }
    exec_close(ch);
    cmpr_buf_free(&cmd);
    return;
broken:
    /* the rest could not be fetched this time */
    for (; j < m; j++) {
        f[idx[j]].r = -3;
        snprintf(f[idx[j]].why, sizeof(f[idx[j]].why), "scp transfer failed: %s", cmpr_rfs_error(ctx));
    }
    if (ch != NULL)
        exec_close(ch);
    cmpr_buf_free(&cmd);
}

void
cmpr_rfs_get_many(struct cmpr_rfs *ctx, struct cmpr_rfs_file *f, size_t n, size_t max)
{
    size_t *idx, m = 0, chars = 0;

    for (size_t k = 0; k < n; k++) {
        f[k].r = -3;
        f[k].data = NULL;
        f[k].len = 0;
        snprintf(f[k].why, sizeof(f[k].why), "not fetched");
    }
    if (!ctx->use_scp) {
        for (size_t k = 0; k < n && cmpr_rfs_alive(ctx); k++)
            f[k].r = cmpr_rfs_get(ctx, f[k].path, max, &f[k].data, &f[k].len, f[k].why, sizeof(f[k].why));
        return;
    }
    scp_kinds(ctx, f, n);
    if ((idx = calloc(n > 0 ? n : 1, sizeof(*idx))) == NULL)
        return;
    for (size_t k = 0; k < n; k++) {
        struct cmpr_rfs_file *x = &f[k];

        if (x->kind == 'l' || x->kind == 'o' || x->kind == 'd') {
            x->r = -1;
            snprintf(x->why, sizeof(x->why), x->kind == 'l' ? "a symbolic link (never followed)"
                                                            : "not a regular file");
        } else if (x->kind == 'f' && x->size > (long long)max) {
            x->r = -1;
            snprintf(x->why, sizeof(x->why), "larger than max_size (%zu bytes)", max);
        } else if (x->kind != 'f') {
            snprintf(x->why, sizeof(x->why), "cannot look at it over SSH");
        } else if (strchr(x->path, '\n') != NULL) {
            /* a name the SCP header cannot carry in a list: alone */
            x->r = scp_get(ctx, x->path, max, &x->data, &x->len, x->why, sizeof(x->why));
        } else {
            /* one transfer for many, its command line kept short */
            if (m > 0 && chars + strlen(x->path) > 60 * 1024) {
                scp_fetch(ctx, f, idx, m, max);
                m = chars = 0;
            }
            idx[m++] = k;
            chars += 2 * strlen(x->path) + 3;
        }
    }
    if (m > 0)
        scp_fetch(ctx, f, idx, m, max);
    free(idx);
}

void
cmpr_rfs_put_many(struct cmpr_rfs *ctx, const char *dir, struct cmpr_rfs_put *p, size_t n)
{
    char q[2 * CMPR_RFS_PATH + 8], cmd[2 * CMPR_RFS_PATH + 32], msg[256], hdr[600];
    unsigned char zero = 0;
    struct cmpr_buf b;
    char *word = NULL;
    long long *num = NULL;
    unsigned char *seen = NULL, *sent = NULL;
    ssh_channel ch;
    int st = 0, r = CMPR_OK;

    for (size_t k = 0; k < n; k++)
        p[k].ok = 0;
    if (!ctx->use_scp) {
        for (size_t k = 0; k < n && cmpr_rfs_alive(ctx); k++)
            p[k].ok = cmpr_rfs_put(ctx, dir, p[k].tmp, p[k].final, p[k].data, p[k].len) == 0;
        return;
    }
    if (n == 0 || shq(q, sizeof(q), dir) != 0)
        return;
    /* one sink for every file, under its plain temporary name */
    snprintf(cmd, sizeof(cmd), "scp -t -- %s", q);
    if ((sent = calloc(n, 1)) == NULL || (ch = exec_open(ctx, cmd)) == NULL) {
        free(sent);
        return;
    }
    if (scp_status(ctx, ch, msg, sizeof(msg)) == 0)
        for (size_t k = 0; k < n && st != 2; k++) {
            if (p[k].tmp[0] == '\0' || strpbrk(p[k].tmp, "/\n") != NULL)
                continue;
            snprintf(hdr, sizeof(hdr), "C%04o %zu %s\n", (unsigned)ctx->mode, p[k].len, p[k].tmp);
            if (ch_write(ch, hdr, strlen(hdr)) != 0 || (st = scp_status(ctx, ch, msg, sizeof(msg))) != 0)
                continue;               /* 1: this one refused; 2: the sink gave up */
            if (ch_write(ch, p[k].data, p[k].len) != 0 || ch_write(ch, &zero, 1) != 0
                    || (st = scp_status(ctx, ch, msg, sizeof(msg))) != 0)
                continue;
            sent[k] = 1;
        }
    exec_close(ch);
    /* then each into place, in one script */
    cmpr_buf_init(&b, MAX_SCRIPT);
    for (size_t k = 0; k < n && r == CMPR_OK; k++) {
        char tp[CMPR_RFS_PATH], fp[CMPR_RFS_PATH], qt[2 * CMPR_RFS_PATH + 8], qf[2 * CMPR_RFS_PATH + 8];

        if (!sent[k] || cmpr_rfs_join(tp, dir, "", p[k].tmp) != 0 || cmpr_rfs_join(fp, dir, "", p[k].final) != 0
                || shq(qt, sizeof(qt), tp) != 0 || shq(qf, sizeof(qf), fp) != 0)
            continue;
        r = cmpr_buf_putf(&b, "mv -f -- %s %s && echo \"%zu 0 0\"\n", qt, qf, k);
    }
    if (cmpr_buf_len(&b) > 0 && r == CMPR_OK && (word = calloc(n, 1)) != NULL && (num = calloc(n, sizeof(*num))) != NULL
            && (seen = calloc(n, 1)) != NULL && run_script(ctx, &b, n, word, num, seen) == 0)
        for (size_t k = 0; k < n; k++)
            p[k].ok = sent[k] && seen[k] && word[k] == '0';
    cmpr_buf_free(&b);
    free(word);
    free(num);
    free(seen);
    free(sent);
}
