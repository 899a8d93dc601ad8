/*
 * The client side of every medium (see outbound.h). Each exchange is bounded by the
 * timeout; what comes back is bounded in size and checked to be one DER
 * PKIMessage before the caller decodes it.
 */
#define _GNU_SOURCE 1
#include "transports/client/outbound.h"
#include "base/clock.h"
#include "base/limits.h"
#include "codec/dropname.h"
#include "transports/lib/fsutil.h"
#include "transports/client/http.h"
#include "codec/mime.h"
#include "transports/lib/rfs.h"
#include "transports/lib/smtp.h"
#include "transports/client/tcp.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

enum { IO_HTTP, IO_TCP, IO_FILE, IO_SFTP, IO_MAIL };

struct cmpr_out {
    int kind;
    char *uri;
    struct cmpr_out_opts o;
    struct cmpr_http_conn *conn;
    char *out, *in;                     /* file: local; sftp: remote folders */
    char host[256], user[128], to[256];
    int port;
    char identity[1024], known_hosts[1024];
    struct cmpr_rfs rfs;
    unsigned seq;
};

/* "A,B" into two strings */
static int
split_pair(const char *s, char **a, char **b)
{
    const char *c = strchr(s, ',');

    if (c == NULL || c == s || c[1] == '\0')
        return -1;
    *a = strndup(s, (size_t)(c - s));
    *b = strdup(c + 1);
    return *a != NULL && *b != NULL ? 0 : -1;
}

/* a remote path part of an sftp:// URI: absolute; "~/x" is x in the home folder */
static char *
remote_path(const char *p)
{
    char *r;

    if (strncmp(p, "~/", 2) == 0)
        return strdup(p + 2);
    if (p[0] == '/')
        return strdup(p);
    if (asprintf(&r, "/%s", p) < 0)
        return NULL;
    return r;
}

static int
parse_sftp(struct cmpr_out *io, const char *rest, char *err, size_t errlen)
{
    const char *at = strchr(rest, '@'), *slash, *hp;
    char hostport[300], *in = NULL, *out = NULL;
    size_t n;

    if (at == NULL || at == rest || (size_t)(at - rest) >= sizeof(io->user)) {
        snprintf(err, errlen, "sftp:// needs user@host: sftp://user@host[:port]/INBOX,OUTBOX");
        return -1;
    }
    memcpy(io->user, rest, (size_t)(at - rest));
    hp = at + 1;
    if ((slash = strchr(hp, '/')) == NULL || (n = (size_t)(slash - hp)) == 0 || n >= sizeof(hostport)) {
        snprintf(err, errlen, "sftp:// needs the remote folders: sftp://user@host[:port]/INBOX,OUTBOX");
        return -1;
    }
    memcpy(hostport, hp, n);
    hostport[n] = '\0';
    io->port = 22;
    {
        char *colon = strrchr(hostport, ':');

        if (colon != NULL && strchr(hostport, ']') == NULL) {
            char *end;
            long p = strtol(colon + 1, &end, 10);

            if (*end != '\0' || p < 1 || p > 65535) {
                snprintf(err, errlen, "sftp://: bad port '%s'", colon + 1);
                return -1;
            }
            io->port = (int)p;
            *colon = '\0';
        }
    }
    snprintf(io->host, sizeof(io->host), "%.255s", hostport[0] == '[' ? hostport + 1 : hostport);
    io->host[strcspn(io->host, "]")] = '\0';
    if (split_pair(slash + 1, &in, &out) != 0) {
        free(in);
        free(out);
        snprintf(err, errlen, "sftp://: the path is INBOX,OUTBOX (the server's request and answer folders)");
        return -1;
    }
    io->out = remote_path(in);      /* where our requests go: the server's inbox */
    io->in = remote_path(out);
    free(in);
    free(out);
    {
        const char *home = getenv("HOME");

        snprintf(io->identity, sizeof(io->identity), "%s", io->o.ssh_identity != NULL ? io->o.ssh_identity : "");
        if (io->identity[0] == '\0' && home != NULL) {
            static const char *const ids[] = { "id_ed25519", "id_ecdsa", "id_rsa" };

            for (size_t i = 0; i < 3; i++) {
                snprintf(io->identity, sizeof(io->identity), "%s/.ssh/%s", home, ids[i]);
                if (access(io->identity, R_OK) == 0)
                    break;
            }
        }
        if (io->o.ssh_known_hosts != NULL)
            snprintf(io->known_hosts, sizeof(io->known_hosts), "%s", io->o.ssh_known_hosts);
        else
            snprintf(io->known_hosts, sizeof(io->known_hosts), "%s/.ssh/known_hosts", home != NULL ? home : "");
    }
    if (access(io->identity, R_OK) != 0 || access(io->known_hosts, R_OK) != 0) {
        snprintf(err, errlen, "sftp://: cannot read %s (give --ssh-identity and --ssh-known-hosts)",
                 access(io->identity, R_OK) != 0 ? io->identity : io->known_hosts);
        return -1;
    }
    return 0;
}

struct cmpr_out *
cmpr_out_new(const char *uri, const struct cmpr_out_opts *o, char *err, size_t errlen)
{
    struct cmpr_out *io = calloc(1, sizeof(*io));

    if (io == NULL || (io->uri = strdup(uri)) == NULL) {
        free(io);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    io->o = *o;
    if (io->o.timeout_ms <= 0)
        io->o.timeout_ms = 120000;
    if (io->o.name_prefix == NULL)
        io->o.name_prefix = "cmprouter";
    if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0) {
        io->kind = IO_HTTP;
    } else if (strncmp(uri, "tcp://", 6) == 0) {
        char h[256];
        int p;

        io->kind = IO_TCP;
        if (cmpr_tcp_parse_url(uri, h, sizeof(h), &p) != 0) {
            snprintf(err, errlen, "bad tcp:// URI '%s' (tcp://host[:port])", uri);
            goto fail;
        }
    } else if (strncmp(uri, "file:", 5) == 0) {
        struct stat st;

        io->kind = IO_FILE;
        if (split_pair(uri + 5, &io->out, &io->in) != 0) {
            snprintf(err, errlen, "file: needs two folders: file:OUTDIR,INDIR (requests go to OUTDIR, "
                     "answers are taken from INDIR)");
            goto fail;
        }
        if (stat(io->out, &st) != 0 || !S_ISDIR(st.st_mode) || stat(io->in, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "file: %s is not a folder",
                     stat(io->out, &st) != 0 || !S_ISDIR(st.st_mode) ? io->out : io->in);
            goto fail;
        }
    } else if (strncmp(uri, "sftp://", 7) == 0) {
        io->kind = IO_SFTP;
        if (parse_sftp(io, uri + 7, err, errlen) != 0)
            goto fail;
    } else if (strncmp(uri, "mailto:", 7) == 0) {
        io->kind = IO_MAIL;
        snprintf(io->to, sizeof(io->to), "%s", uri + 7);
        if (!cmpr_mail_addr_ok(io->to)) {
            snprintf(err, errlen, "mailto: '%s' is not a plain mail address", uri + 7);
            goto fail;
        }
        if (o->mail_from == NULL || !cmpr_mail_addr_ok(o->mail_from) || o->maildir == NULL) {
            snprintf(err, errlen, "mailto: needs --from ADDRESS (ours) and --maildir DIR (where the "
                     "replies are delivered)");
            goto fail;
        }
        {
            char nd[4096];
            struct stat st;

            snprintf(nd, sizeof(nd), "%s/new", o->maildir);
            if (stat(nd, &st) != 0 || !S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "mailto: %s is not a Maildir (no new/ folder)", o->maildir);
                goto fail;
            }
        }
    } else {
        snprintf(err, errlen, "unknown server URI '%s' (http://, https://, tcp://, file:, sftp://, "
                 "mailto:)", uri);
        goto fail;
    }
    return io;
 fail:
    cmpr_out_free(io);
    return NULL;
}

void
cmpr_out_free(struct cmpr_out *io)
{
    if (io == NULL)
        return;
    cmpr_http_conn_free(io->conn);
    cmpr_rfs_close(&io->rfs);
    free(io->uri);
    free(io->out);
    free(io->in);
    free(io);
}

static int
check_der(unsigned char *rsp, size_t len, char *err, size_t errlen)
{
    char why[200];

    if (cmpr_drop_check(rsp, len, CMPR_MAX_MSG_SIZE, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "the answer is not a CMP message: %s", why);
        return -1;
    }
    return 0;
}

/* ---------------- file: ---------------- */

static int
file_send(struct cmpr_out *io, const char *name, const unsigned char *req, size_t len, char *key,
          size_t keylen, char *err, size_t errlen)
{
    char tmp[300], path[4096];

    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    if (cmpr_drop_answer_name(name, 1, key, keylen) != 0
            || cmpr_fs_join(path, sizeof(path), io->in, "", key) != 0) {
        snprintf(err, errlen, "file name too long");
        return CMPR_OUT_FAILED;
    }
    (void)unlink(path);             /* a stale answer of an earlier run under this name */
    if (cmpr_fs_write_durable(io->out, tmp, name, req, len, 0644) != 0) {
        snprintf(err, errlen, "cannot write %s/%s: %s", io->out, name, strerror(errno));
        return CMPR_OUT_FAILED;
    }
    return CMPR_OUT_SENT;
}

static int
file_collect(struct cmpr_out *io, const char *key, unsigned char **rsp_r, size_t *rsp_len_r,
             char *err, size_t errlen)
{
    char path[4096];
    struct stat st, st2;

    if (cmpr_fs_join(path, sizeof(path), io->in, "", key) != 0 || lstat(path, &st) != 0)
        return 0;
    cmpr_nap_ms(50);            /* a writer that does not rename: let it finish */
    if (lstat(path, &st2) != 0 || st2.st_size != st.st_size)
        return 0;
    if (cmpr_fs_read(path, CMPR_MAX_MSG_SIZE, 0, rsp_r, rsp_len_r) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    (void)unlink(path);
    return 1;                   /* taken: the caller judges the bytes */
}

/* ---------------- sftp:// ---------------- */

static int
sftp_up(struct cmpr_out *io, char *err, size_t errlen)
{
    char why[512];
    struct cmpr_rfs_opts ro = { io->host, io->user, io->identity, io->known_hosts, io->port,
                                CMPR_RFS_AUTO, (io->o.timeout_ms + 999) / 1000, 0644 };

    if (cmpr_rfs_alive(&io->rfs))
        return 0;
    if (ro.timeout > 60)
        ro.timeout = 60;
    cmpr_rfs_close(&io->rfs);
    if (cmpr_rfs_connect(&io->rfs, &ro, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s@%s:%d: %s", io->user, io->host, io->port, why);
        return -1;
    }
    return 0;
}

static int
sftp_send(struct cmpr_out *io, const char *name, const unsigned char *req, size_t len, char *key,
          size_t keylen, char *err, size_t errlen)
{
    char tmp[300], path[CMPR_RFS_PATH];

    if (sftp_up(io, err, errlen) != 0)
        return CMPR_OUT_FAILED;
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    if (cmpr_drop_answer_name(name, 1, key, keylen) != 0 || cmpr_rfs_join(path, io->in, "", key) != 0) {
        snprintf(err, errlen, "file name too long");
        return CMPR_OUT_FAILED;
    }
    if (cmpr_rfs_exists(&io->rfs, path))
        (void)cmpr_rfs_unlink(&io->rfs, path);
    if (cmpr_rfs_put(&io->rfs, io->out, tmp, name, req, len) != 0) {
        snprintf(err, errlen, "cannot upload %s:%s/%s: %s", io->host, io->out, name,
                 cmpr_rfs_error(&io->rfs));
        return CMPR_OUT_FAILED;
    }
    return CMPR_OUT_SENT;
}

static int
sftp_collect(struct cmpr_out *io, const char *key, unsigned char **rsp_r, size_t *rsp_len_r,
             char *err, size_t errlen)
{
    char path[CMPR_RFS_PATH], why[512];

    if (sftp_up(io, err, errlen) != 0)
        return -1;
    if (cmpr_rfs_join(path, io->in, "", key) != 0 || !cmpr_rfs_exists(&io->rfs, path))
        return cmpr_rfs_alive(&io->rfs) ? 0 : -1;
    if (cmpr_rfs_get(&io->rfs, path, CMPR_MAX_MSG_SIZE, rsp_r, rsp_len_r, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "cannot fetch %s:%s: %s", io->host, path, why);
        return -1;
    }
    (void)cmpr_rfs_unlink(&io->rfs, path);
    return 1;                   /* taken: the caller judges the bytes */
}

/* ---------------- mailto: ---------------- */

/* the reply to our mail id in the Maildir: 1 with its first CMP part, -1
 * for a reply without one, 0 for none yet */
static int
mail_collect(struct cmpr_out *io, const char *id, unsigned char **rsp_r, size_t *rsp_len_r,
             char *err, size_t errlen)
{
    char dir[4096];
    DIR *d;
    struct dirent *de;
    struct cmpr_mail_limits lim = { 4u * 1024 * 1024, 100, 10, CMPR_MAX_MSG_SIZE };
    char want[300];
    int found = 0;

    snprintf(want, sizeof(want), "<%s>", id);
    snprintf(dir, sizeof(dir), "%s/new", io->o.maildir);
    if ((d = opendir(dir)) == NULL)
        return 0;
    while (!found && (de = readdir(d)) != NULL) {
        char path[4200], done[4300];
        unsigned char *raw = NULL;
        size_t len = 0;
        struct cmpr_mail_in m;

        if (de->d_name[0] == '.')
            continue;
        if (cmpr_fs_join(path, sizeof(path), dir, "", de->d_name) != 0)
            continue;
        if (cmpr_fs_read(path, lim.max_mail, 1, &raw, &len) != 0)
            continue;
        memset(&m, 0, sizeof(m));
        if (cmpr_mail_parse(raw, len, &lim, &m) == 0 && strstr(m.references, want) != NULL) {
            for (size_t i = 0; i < m.n_parts && !found; i++) {
                if (m.parts[i].der != NULL) {
                    *rsp_r = m.parts[i].der;
                    *rsp_len_r = m.parts[i].len;
                    m.parts[i].der = NULL;
                    found = 1;
                }
            }
            /* read: into cur/ with the Seen flag */
            snprintf(done, sizeof(done), "%s/cur/%s:2,S", io->o.maildir, de->d_name);
            (void)rename(path, done);
            if (!found) {
                /* a reply, but no CMP message in it: an answer that is none
                 * (empty), for the caller to refuse; waiting on is pointless */
                if ((*rsp_r = malloc(1)) == NULL) {
                    snprintf(err, errlen, "out of memory");
                    found = -1;
                } else {
                    *rsp_len_r = 0;
                    found = 1;
                }
            }
        }
        cmpr_mail_in_free(&m);
        free(raw);
    }
    closedir(d);
    return found;
}

static int
mail_send(struct cmpr_out *io, const char *name, const unsigned char *req, size_t len, char *key,
          size_t keylen, char *err, size_t errlen)
{
    char subject[240], host[256] = "127.0.0.1", serr[512];
    unsigned char *mail = NULL;
    size_t mlen = 0;
    struct cmpr_smtp_opts so;
    int port = 25, r;

    if (io->o.smtp != NULL) {
        const char *c = strrchr(io->o.smtp, ':');

        snprintf(host, sizeof(host), "%.*s", c != NULL ? (int)(c - io->o.smtp) : (int)strlen(io->o.smtp),
                 io->o.smtp);
        if (c != NULL && (port = atoi(c + 1)) <= 0) {
            snprintf(err, errlen, "smtp is HOST[:PORT], not '%s'", io->o.smtp);
            return CMPR_OUT_FAILED;
        }
    }
    snprintf(subject, sizeof(subject), "CMP request %s", name);
    if (cmpr_mail_build_request(io->o.mail_from, io->to, subject,
                                "A CMP message (RFC 9810) for the CA, as in RFC 9483 6.4.2.\n",
                                req, len, name, key, keylen, &mail, &mlen) != 0) {
        snprintf(err, errlen, "cannot build the mail");
        return CMPR_OUT_FAILED;
    }
    memset(&so, 0, sizeof(so));
    so.host = host;
    so.port = port;
    so.tls = io->o.smtp_starttls;
    so.tls_ca = io->o.tls_ca;
    so.user = io->o.smtp_user;
    so.secret = io->o.smtp_secret;
    so.helo = "localhost";
    so.timeout_ms = io->o.timeout_ms < 60000 ? io->o.timeout_ms : 60000;
    r = cmpr_smtp_send(&so, io->o.mail_from, io->to, mail, mlen, serr, sizeof(serr));
    free(mail);
    if (r != CMPR_SMTP_SENT) {
        snprintf(err, errlen, "SMTP %s:%d: %s", host, port, serr);
        return CMPR_OUT_FAILED;
    }
    return CMPR_OUT_SENT;
}

/* ---------------- any medium ---------------- */

int
cmpr_out_offline(const struct cmpr_out *io)
{
    return io->kind == IO_FILE || io->kind == IO_SFTP || io->kind == IO_MAIL;
}

/* a synchronous medium's failure: did the request go out (no answer in
 * time: TIMEOUT) or not (FAILED)? */
static int
sync_failure(const char *err)
{
    return strncmp(err, "no answer", 9) == 0 || strncmp(err, "timeout", 7) == 0
           || strstr(err, "after the timeout") != NULL ? CMPR_OUT_TIMEOUT : CMPR_OUT_FAILED;
}

int
cmpr_out_start(struct cmpr_out *io, const char *name, const unsigned char *req, size_t len,
               long timeout_ms, char *key, size_t keylen, unsigned char **rsp_r, size_t *rsp_len_r,
               char *err, size_t errlen)
{
    *rsp_r = NULL;
    *rsp_len_r = 0;
    key[0] = '\0';
    if (timeout_ms <= 0)
        timeout_ms = io->o.timeout_ms;
    switch (io->kind) {
    case IO_HTTP: {
        struct cmpr_http_client_opts ho = { timeout_ms, CMPR_MAX_MSG_SIZE, io->o.tls_ca,
                                            io->o.tls_cert, io->o.tls_key };
        int status = 0, is_cmp = 0;

        if (cmpr_http_post(io->uri, req, len, &ho, &io->conn, &status, rsp_r, rsp_len_r, &is_cmp,
                           err, errlen) != 0)
            return sync_failure(err);
        if (!is_cmp) {
            /* RFC 9483 6.1: an unexpected HTTP status is a failure of the upstream */
            snprintf(err, errlen, "HTTP %d without a CMP answer", status);
            free(*rsp_r);
            *rsp_r = NULL;
            return CMPR_OUT_FAILED;
        }
        return check_der(*rsp_r, *rsp_len_r, err, errlen) == 0 ? CMPR_OUT_ANSWER : CMPR_OUT_FAILED;
    }
    case IO_TCP: {
        struct cmpr_tcp_client_opts to;

        memset(&to, 0, sizeof(to));
        to.timeout_ms = timeout_ms;
        to.version = io->o.tcp_version;
        if (cmpr_tcp_exchange(io->uri, req, len, &to, rsp_r, rsp_len_r, err, errlen) != 0)
            return sync_failure(err);
        if (*rsp_r == NULL) {
            snprintf(err, errlen, "the server sent finRep, no CMP answer");
            return CMPR_OUT_FAILED;
        }
        return check_der(*rsp_r, *rsp_len_r, err, errlen) == 0 ? CMPR_OUT_ANSWER : CMPR_OUT_FAILED;
    }
    case IO_FILE:
        return file_send(io, name, req, len, key, keylen, err, errlen);
    case IO_SFTP:
        return sftp_send(io, name, req, len, key, keylen, err, errlen);
    default:
        return mail_send(io, name, req, len, key, keylen, err, errlen);
    }
}

int
cmpr_out_collect(struct cmpr_out *io, const char *key, unsigned char **rsp_r, size_t *rsp_len_r,
                 char *err, size_t errlen)
{
    *rsp_r = NULL;
    *rsp_len_r = 0;
    switch (io->kind) {
    case IO_FILE:
        return file_collect(io, key, rsp_r, rsp_len_r, err, errlen);
    case IO_SFTP:
        return sftp_collect(io, key, rsp_r, rsp_len_r, err, errlen);
    case IO_MAIL:
        return mail_collect(io, key, rsp_r, rsp_len_r, err, errlen);
    default:
        snprintf(err, errlen, "nothing to collect on a synchronous medium");
        return -1;
    }
}

int
cmpr_out_exchange(struct cmpr_out *io, const char *tag, const unsigned char *req, size_t len,
                  unsigned char **rsp_r, size_t *rsp_len_r, char *err, size_t errlen)
{
    char name[200], key[300];
    long deadline = cmpr_mono_ms() + io->o.timeout_ms;
    int r;

    snprintf(name, sizeof(name), "%s-%.32s-%u.pki", io->o.name_prefix, tag, ++io->seq);
    r = cmpr_out_start(io, name, req, len, io->o.timeout_ms, key, sizeof(key), rsp_r, rsp_len_r,
                       err, errlen);
    if (r == CMPR_OUT_ANSWER)
        return 0;
    if (r != CMPR_OUT_SENT)
        return -1;
    do {
        if ((r = cmpr_out_collect(io, key, rsp_r, rsp_len_r, err, errlen)) != 0)
            return r > 0 ? 0 : -1;
        cmpr_nap_ms(io->kind == IO_FILE ? 100 : 300);
    } while (cmpr_mono_ms() < deadline);
    if (io->kind == IO_MAIL)
        snprintf(err, errlen, "no reply to <%s> in %s within %ld s", key, io->o.maildir,
                 io->o.timeout_ms / 1000);
    else
        snprintf(err, errlen, "no answer %s in %s%s%s within %ld s (the request %s stays in %s)", key,
                 io->kind == IO_SFTP ? io->host : "", io->kind == IO_SFTP ? ":" : "", io->in,
                 io->o.timeout_ms / 1000, name, io->out);
    return -1;
}
