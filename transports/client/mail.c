/* mailto:ca@example.org as a client (RFC 9483 6.4.2): the request goes out
 * as a mail by SMTP (STARTTLS, AUTH as configured), the reply is found in a
 * Maildir by its References to our Message-ID and moved to cur/. */
#include "transports/client/client.h"
#include "transports/lib/fsutil.h"
#include "transports/lib/smtp.h"
#include "codec/mime.h"
#include "core/config.h"
#include "base/err.h"
#include "base/limits.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct mail_set {
    char to[256], host[256];
    int port, starttls;
    char *from, *maildir, *tls_ca, *user, *secret;
    long timeout_ms;
};

static const char *const directives[] = { "smtp", "smtp_starttls", "smtp_user", "smtp_secret", "from", "maildir",
                                          "tls_ca", NULL };

static void
release(void *ctx, void *set)
{
    struct mail_set *s = set;

    (void)ctx;
    free(s->from);
    free(s->maildir);
    free(s->tls_ca);
    free(s->user);
    if (s->secret != NULL) {
        memset(s->secret, 0, strlen(s->secret));
        free(s->secret);
    }
    free(s);
}

static int
bad(struct mail_set *s, char **err_r, char *e)
{
    *err_r = e;
    release(NULL, s);
    return CMPR_ERR_CONFIG;
}

/* smtp = HOST[:PORT] (default 127.0.0.1:25); smtp_starttls = offered,
 * required or no (a boolean: yes is required, no is no) */
static int
relay(struct mail_set *s, const struct cmpr_conf_group *g, char **err_r)
{
    static const char *const tls[] = { "no", "offered", "required", NULL };
    const char *v = cmpr_conf_group_get(g, "smtp"), *c;
    int b;

    snprintf(s->host, sizeof(s->host), "127.0.0.1");
    s->port = 25;
    if (v != NULL) {
        c = strrchr(v, ':');
        snprintf(s->host, sizeof(s->host), "%.*s", c != NULL ? (int)(c - v) : (int)strlen(v), v);
        if ((c != NULL && (s->port = atoi(c + 1)) <= 0) || s->host[0] == '\0') {
            *err_r = cmpr_conf_group_error(g, "smtp", "smtp is HOST[:PORT], not '%s'", v);
            return CMPR_ERR_CONFIG;
        }
    }
    s->starttls = CMPR_SMTP_TLS_OFFERED;
    if ((v = cmpr_conf_group_get(g, "smtp_starttls")) != NULL && cmpr_conf_parse_bool(v, &b) == 0)
        s->starttls = b ? CMPR_SMTP_TLS_REQUIRED : CMPR_SMTP_TLS_NO;
    else if (cmpr_conf_group_choice(g, "smtp_starttls", tls, CMPR_SMTP_TLS_OFFERED, &s->starttls, err_r) != CMPR_OK)
        return CMPR_ERR_CONFIG;
    return CMPR_OK;
}

static int
configure(void *ctx, const struct cmpr_conf_group *g, const char *uri, long timeout_ms, void **set_r, char **err_r)
{
    struct mail_set *s = calloc(1, sizeof(*s));
    const char *v;
    char nd[4096];
    struct stat st;

    (void)ctx;
    *set_r = NULL;
    if (s == NULL)
        return CMPR_ERR_ALLOC;
    snprintf(s->to, sizeof(s->to), "%s", strncmp(uri, "mailto:", 7) == 0 ? uri + 7 : "");
    if (!cmpr_mail_addr_ok(s->to))
        return bad(s, err_r, cmpr_conf_group_error(g, "upstream", "mailto: '%s' is not a plain mail address", uri));
    if ((v = cmpr_conf_group_get(g, "from")) == NULL || !cmpr_mail_addr_ok(v)
            || (s->maildir = cmpr_conf_group_path(g, "maildir", NULL)) == NULL)
        return bad(s, err_r, cmpr_conf_group_error(g, "upstream", "mailto: needs from (our address) and maildir "
                                                   "(where the replies are delivered)"));
    s->from = strdup(v);
    snprintf(nd, sizeof(nd), "%s/new", s->maildir);
    if (stat(nd, &st) != 0 || !S_ISDIR(st.st_mode))
        return bad(s, err_r, cmpr_conf_group_error(g, "maildir", "mailto: %s is not a Maildir (no new/ folder)",
                                                   s->maildir));
    if (relay(s, g, err_r) != CMPR_OK) {
        release(NULL, s);
        return CMPR_ERR_CONFIG;
    }
    s->tls_ca = cmpr_conf_group_path(g, "tls_ca", NULL);
    s->user = (v = cmpr_conf_group_get(g, "smtp_user")) != NULL ? strdup(v) : NULL;
    if (cmpr_conf_group_get(g, "smtp_secret") != NULL
            && (s->secret = cmpr_conf_group_secret(g, "smtp_secret", err_r)) == NULL) {
        release(NULL, s);
        return CMPR_ERR_CONFIG;
    }
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 120000;
    *set_r = s;
    return CMPR_OK;
}

/* the reply to our mail id in the Maildir: 1 with its first CMP part (or
 * empty for a reply without one: an answer that is none, for the caller to
 * refuse), 0 for none yet */
static int
collect(void *ctx, void *set, const char *id, unsigned char **rsp_r, size_t *rsp_len_r, char *err, size_t errlen)
{
    struct mail_set *s = set;
    struct cmpr_mail_limits lim = { 4u * 1024 * 1024, 100, 10, CMPR_MAX_MSG_SIZE };
    char dir[4096], want[300];
    struct dirent *de;
    DIR *d;
    int found = 0;

    (void)ctx;
    snprintf(want, sizeof(want), "<%s>", id);
    snprintf(dir, sizeof(dir), "%s/new", s->maildir);
    if ((d = opendir(dir)) == NULL)
        return 0;
    while (!found && (de = readdir(d)) != NULL) {
        char path[4200], done[4300];
        unsigned char *raw = NULL;
        size_t len = 0;
        struct cmpr_mail_in m;

        if (de->d_name[0] == '.' || cmpr_fs_join(path, sizeof(path), dir, "", de->d_name) != 0
                || cmpr_fs_read(path, lim.max_mail, 1, &raw, &len) != 0)
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
            snprintf(done, sizeof(done), "%s/cur/%s:2,S", s->maildir, de->d_name);
            (void)rename(path, done);
            if (!found && (*rsp_r = malloc(1)) == NULL) {
                snprintf(err, errlen, "out of memory");
                found = -1;
            } else if (!found) {
                *rsp_len_r = 0;
                found = 1;
            }
        }
        cmpr_mail_in_free(&m);
        free(raw);
    }
    closedir(d);
    return found;
}

static int
send_mail(void *ctx, void *set, const char *name, const unsigned char *req, size_t len, char *key, size_t keylen,
          char *err, size_t errlen)
{
    struct mail_set *s = set;
    char subject[240], serr[512];
    unsigned char *mail = NULL;
    size_t mlen = 0;
    struct cmpr_smtp_opts so;
    int r;

    (void)ctx;
    snprintf(subject, sizeof(subject), "CMP request %s", name);
    if (cmpr_mail_build_request(s->from, s->to, subject, "A CMP message (RFC 9810) for the CA, as in RFC 9483 6.4.2.\n",
                                req, len, name, key, keylen, &mail, &mlen) != 0) {
        snprintf(err, errlen, "cannot build the mail");
        return CMPR_ERR_UNREACHABLE;
    }
    memset(&so, 0, sizeof(so));
    so.host = s->host;
    so.port = s->port;
    so.tls = s->starttls;
    so.tls_ca = s->tls_ca;
    so.user = s->user;
    so.secret = s->secret;
    so.helo = "localhost";
    so.timeout_ms = s->timeout_ms < 60000 ? s->timeout_ms : 60000;
    r = cmpr_smtp_send(&so, s->from, s->to, mail, mlen, serr, sizeof(serr));
    free(mail);
    if (r != CMPR_SMTP_SENT) {
        snprintf(err, errlen, "SMTP %s:%d: %s", s->host, s->port, serr);
        return CMPR_ERR_UNREACHABLE;
    }
    return CMPR_OK;
}

static const char *const schemes[] = { "mailto", NULL };

const struct cmpr_upstream_ops cmpr_mail_upstream = {
    .schemes = schemes,
    .offline = 1,
    .directives = directives,
    .configure = configure,
    .release = release,
    .send = send_mail,
    .collect = collect,
};
