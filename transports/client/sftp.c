/* sftp://user@host[:port]/INBOX,OUTBOX as a client: the request goes into
 * the server's inbox over SSH (SFTP, or SCP where the server has no SFTP),
 * its answer is taken from the outbox. One SSH session per route, used
 * under a lock (the forwarder's thread, or the command line). */
#define _GNU_SOURCE 1
#include "transports/client/client.h"
#include "transports/lib/rfs.h"
#include "codec/dropname.h"
#include "core/config.h"
#include "base/err.h"
#include "base/limits.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sftp_set {
    char host[256], user[128], identity[1024], known_hosts[1024];
    int port;
    char *out, *in;                     /* remote: the server's inbox, its outbox */
    long timeout_ms;
    struct cmpr_rfs rfs;
    pthread_mutex_t mu;
};

static const char *const directives[] = { "ssh_identity", "ssh_known_hosts", NULL };

static void
release(void *ctx, void *set)
{
    struct sftp_set *s = set;

    (void)ctx;
    cmpr_rfs_close(&s->rfs);
    pthread_mutex_destroy(&s->mu);
    free(s->out);
    free(s->in);
    free(s);
}

/* a remote path part of an sftp:// URI: absolute; "~/x" is x in the home folder */
static char *
remote_path(const char *p, size_t n)
{
    char *r;

    if (n >= 2 && strncmp(p, "~/", 2) == 0)
        return strndup(p + 2, n - 2);
    if (asprintf(&r, "%s%.*s", p[0] == '/' ? "" : "/", (int)n, p) < 0)
        return NULL;
    return r;
}

/* user@host[:port]/IN,OUT */
static int
parse_uri(struct sftp_set *s, const char *rest, char *why, size_t wlen)
{
    const char *at = strchr(rest, '@'), *slash, *hp, *comma;
    char hostport[300], *colon;
    size_t n;

    if (at == NULL || at == rest || (size_t)(at - rest) >= sizeof(s->user)) {
        snprintf(why, wlen, "sftp:// needs user@host: sftp://user@host[:port]/INBOX,OUTBOX");
        return -1;
    }
    memcpy(s->user, rest, (size_t)(at - rest));
    hp = at + 1;
    if ((slash = strchr(hp, '/')) == NULL || (n = (size_t)(slash - hp)) == 0 || n >= sizeof(hostport)) {
        snprintf(why, wlen, "sftp:// needs the remote folders: sftp://user@host[:port]/INBOX,OUTBOX");
        return -1;
    }
    memcpy(hostport, hp, n);
    hostport[n] = '\0';
    s->port = 22;
    if ((colon = strrchr(hostport, ':')) != NULL && strchr(hostport, ']') == NULL) {
        char *end;
        long p = strtol(colon + 1, &end, 10);

        if (*end != '\0' || p < 1 || p > 65535) {
            snprintf(why, wlen, "sftp://: bad port '%s'", colon + 1);
            return -1;
        }
        s->port = (int)p;
        *colon = '\0';
    }
    snprintf(s->host, sizeof(s->host), "%.255s", hostport[0] == '[' ? hostport + 1 : hostport);
    s->host[strcspn(s->host, "]")] = '\0';
    if ((comma = strchr(slash + 1, ',')) == NULL || comma == slash + 1 || comma[1] == '\0') {
        snprintf(why, wlen, "sftp://: the path is INBOX,OUTBOX (the server's request and answer folders)");
        return -1;
    }
    s->out = remote_path(slash + 1, (size_t)(comma - slash - 1));     /* our requests: its inbox */
    s->in = remote_path(comma + 1, strlen(comma + 1));
    return s->out != NULL && s->in != NULL ? 0 : -1;
}

/* the identity and known_hosts: given, else under ~/.ssh */
static void
ssh_files(struct sftp_set *s, const char *identity, const char *known_hosts)
{
    const char *home = getenv("HOME");
    static const char *const ids[] = { "id_ed25519", "id_ecdsa", "id_rsa" };

    snprintf(s->identity, sizeof(s->identity), "%s", identity != NULL ? identity : "");
    for (size_t i = 0; s->identity[0] == '\0' && home != NULL && i < 3; i++) {
        snprintf(s->identity, sizeof(s->identity), "%s/.ssh/%s", home, ids[i]);
        if (access(s->identity, R_OK) != 0 && i < 2)
            s->identity[0] = '\0';
    }
    if (known_hosts != NULL)
        snprintf(s->known_hosts, sizeof(s->known_hosts), "%s", known_hosts);
    else
        snprintf(s->known_hosts, sizeof(s->known_hosts), "%s/.ssh/known_hosts", home != NULL ? home : "");
}

static int
configure(void *ctx, const struct cmpr_conf_group *g, const char *uri, long timeout_ms, void **set_r, char **err_r)
{
    struct sftp_set *s = calloc(1, sizeof(*s));
    char why[300], *id, *kh;

    (void)ctx;
    *set_r = NULL;
    if (s == NULL)
        return CMPR_ERR_ALLOC;
    pthread_mutex_init(&s->mu, NULL);
    if (strncmp(uri, "sftp://", 7) != 0 || parse_uri(s, uri + 7, why, sizeof(why)) != 0) {
        *err_r = cmpr_conf_group_error(g, "upstream", "%s", strncmp(uri, "sftp://", 7) != 0 ? "not an sftp:// URI" : why);
        release(NULL, s);
        return CMPR_ERR_CONFIG;
    }
    id = cmpr_conf_group_path(g, "ssh_identity", NULL);
    kh = cmpr_conf_group_path(g, "ssh_known_hosts", NULL);
    ssh_files(s, id, kh);
    free(id);
    free(kh);
    if (access(s->identity, R_OK) != 0 || access(s->known_hosts, R_OK) != 0) {
        *err_r = cmpr_conf_group_error(g, access(s->identity, R_OK) != 0 ? "ssh_identity" : "ssh_known_hosts",
                                       "sftp://: cannot read %s (give ssh_identity and ssh_known_hosts)",
                                       access(s->identity, R_OK) != 0 ? s->identity : s->known_hosts);
        release(NULL, s);
        return CMPR_ERR_CONFIG;
    }
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 120000;
    *set_r = s;
    return CMPR_OK;
}

/* the session, up (under s->mu) */
static int
up(struct sftp_set *s, char *err, size_t errlen)
{
    char why[512];
    struct cmpr_rfs_opts ro = { s->host, s->user, s->identity, s->known_hosts, s->port, CMPR_RFS_AUTO,
                                (s->timeout_ms + 999) / 1000, 0644, NULL };

    if (cmpr_rfs_alive(&s->rfs))
        return 0;
    if (ro.timeout > 60)
        ro.timeout = 60;
    cmpr_rfs_close(&s->rfs);
    if (cmpr_rfs_connect(&s->rfs, &ro, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s@%s:%d: %s", s->user, s->host, s->port, why);
        return -1;
    }
    return 0;
}

static int
send_sftp(void *ctx, void *set, const char *name, const unsigned char *req, size_t len, char *key, size_t keylen,
          char *err, size_t errlen)
{
    struct sftp_set *s = set;
    char tmp[300], path[CMPR_RFS_PATH];
    int r = CMPR_ERR_UNREACHABLE;

    (void)ctx;
    pthread_mutex_lock(&s->mu);
    if (up(s, err, errlen) != 0)
        goto out;
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    if (cmpr_drop_answer_name(name, 1, key, keylen) != 0 || cmpr_rfs_join(path, s->in, "", key) != 0) {
        snprintf(err, errlen, "file name too long");
        goto out;
    }
    if (cmpr_rfs_exists(&s->rfs, path))
        (void)cmpr_rfs_unlink(&s->rfs, path);
    if (cmpr_rfs_put(&s->rfs, s->out, tmp, name, req, len) != 0) {
        snprintf(err, errlen, "cannot upload %s:%s/%s: %s", s->host, s->out, name, cmpr_rfs_error(&s->rfs));
        goto out;
    }
    r = CMPR_OK;
 out:
    pthread_mutex_unlock(&s->mu);
    return r;
}

static int
collect(void *ctx, void *set, const char *key, unsigned char **rsp_r, size_t *rsp_len_r, char *err, size_t errlen)
{
    struct sftp_set *s = set;
    char path[CMPR_RFS_PATH], why[512];
    int r = -1;

    (void)ctx;
    pthread_mutex_lock(&s->mu);
    if (up(s, err, errlen) != 0)
        goto out;
    if (cmpr_rfs_join(path, s->in, "", key) != 0 || !cmpr_rfs_exists(&s->rfs, path)) {
        r = cmpr_rfs_alive(&s->rfs) ? 0 : -1;
        goto out;
    }
    if (cmpr_rfs_get(&s->rfs, path, CMPR_MAX_MSG_SIZE, rsp_r, rsp_len_r, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "cannot fetch %s:%s: %s", s->host, path, why);
        goto out;
    }
    (void)cmpr_rfs_unlink(&s->rfs, path);
    r = 1;                      /* taken: the caller judges the bytes */
 out:
    pthread_mutex_unlock(&s->mu);
    return r;
}

static const char *const schemes[] = { "sftp", NULL };

const struct cmpr_upstream_ops cmpr_sftp_upstream = {
    .schemes = schemes,
    .offline = 1,
    .directives = directives,
    .configure = configure,
    .release = release,
    .send = send_sftp,
    .collect = collect,
};
