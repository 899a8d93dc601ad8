/* One mail through the core into the outbound queue (see mailproc.h). */
#define _GNU_SOURCE 1
#include "transports/mailproc.h"
#include "transports/lib/dropconf.h"
#include "transports/transport.h"
#include "transports/lib/fsutil.h"
#include "transports/lib/smtp.h"
#include "codec/msg.h"
#include "codec/print.h"
#include "core/config.h"
#include "core/core.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <strings.h>
#include <unistd.h>

#include <glib.h>
#include <openssl/crypto.h>

static const char *const directives[] = {
    "maildir", "queue", "from", "label", "allow_domains", "max_size", "max_parts", "max_depth",
    "max_part_size", "smtp", "smtp_tls", "smtp_ca", "smtp_user", "smtp_secret",
    "smtp_plain_auth", "sendmail", "helo", "rescan", "retry_min", "retry_max", "timeout", "keep_sent", "mode",
    "mac_budget", "instance", NULL
};

int
cmpr_mail_configure(const struct cmpr_conf_group *g, struct cmpr_mail_conf *c, char **err_r)
{
    const char *v;
    long mp, md, mps, ms;
    int r;

    memset(c, 0, sizeof(*c));
    if ((r = cmpr_conf_group_check(g, directives, err_r)) != CMPR_OK)
        return r;
    c->maildir = cmpr_conf_group_path(g, "maildir", "Maildir");
    c->queue = cmpr_conf_group_path(g, "queue", "mail-queue");
    if ((r = cmpr_conf_instance(g, "mail", c->instance, sizeof(c->instance), err_r)) != CMPR_OK)
        return r;
    (void)gethostname(c->helo, sizeof(c->helo) - 1);
    if ((v = cmpr_conf_group_get(g, "helo")) != NULL)
        snprintf(c->helo, sizeof(c->helo), "%s", v);
    if ((v = cmpr_conf_group_get(g, "from")) != NULL) {
        c->from = strdup(v);
    } else {
        char buf[300];

        snprintf(buf, sizeof(buf), "cmprouter@%s", c->helo);
        c->from = strdup(buf);
    }
    if (!cmpr_mail_addr_ok(c->from)) {
        *err_r = cmpr_conf_group_error(g, "from", "from must be a plain address like ca@example.org");
        return CMPR_ERR_CONFIG;
    }
    c->label = (v = cmpr_conf_group_get(g, "label")) != NULL ? strdup(v) : NULL;
    if ((v = cmpr_conf_group_get(g, "allow_domains")) != NULL) {
        c->allow = g_strsplit_set(v, ", ", -1);
    }
    if ((r = cmpr_conf_group_long(g, "max_size", 10 * 1024 * 1024, 64 * 1024, 100 * 1024 * 1024, &ms, err_r))
            || (r = cmpr_conf_group_long(g, "max_parts", 100, 1, 10000, &mp, err_r))
            || (r = cmpr_conf_group_long(g, "max_depth", 10, 1, 50, &md, err_r))
            || (r = cmpr_conf_group_long(g, "max_part_size", 1024 * 1024, 1024, 16 * 1024 * 1024, &mps, err_r))
            || (r = cmpr_conf_group_long(g, "rescan", 10, 1, 3600, &c->rescan_ms, err_r))
            || (r = cmpr_conf_group_long(g, "retry_min", 30, 1, 3600, &c->retry_min_ms, err_r))
            || (r = cmpr_conf_group_long(g, "retry_max", 3600, 1, 86400, &c->retry_max_ms, err_r))
            || (r = cmpr_conf_group_long(g, "timeout", 60, 1, 3600, &c->timeout_ms, err_r))
            || (r = cmpr_conf_group_long(g, "keep_sent", 7 * 86400, 0, 365 * 86400, &c->keep_sent_s, err_r))
            || (r = cmpr_conf_group_long(g, "mac_budget", 1000000, 1000, 100000000, &c->mac_budget, err_r)))
        return r;
    c->lim.max_mail = (size_t)ms;
    c->lim.max_parts = (size_t)mp;
    c->lim.max_depth = (size_t)md;
    c->lim.max_part = (size_t)mps;
    c->rescan_ms *= 1000;
    c->retry_min_ms *= 1000;
    c->retry_max_ms *= 1000;
    c->timeout_ms *= 1000;
    c->mode = 0640;
    if ((v = cmpr_conf_group_get(g, "smtp")) != NULL) {
        const char *colon = strrchr(v, ':');
        char *end;
        long port = 25;

        if (colon != NULL) {
            port = strtol(colon + 1, &end, 10);
            if (*end != '\0' || port < 1 || port > 65535)
                colon = NULL, port = -1;
        }
        if (port < 0 || v[0] == '\0') {
            *err_r = cmpr_conf_group_error(g, "smtp", "smtp must be HOST[:PORT], not '%s'", v);
            return CMPR_ERR_CONFIG;
        }
        c->smtp_host = colon != NULL ? strndup(v, (size_t)(colon - v)) : strdup(v);
        c->smtp_port = (int)port;
    }
    c->smtp_tls = CMPR_SMTP_TLS_OFFERED;
    if ((v = cmpr_conf_group_get(g, "smtp_tls")) != NULL) {
        if (strcmp(v, "no") == 0)
            c->smtp_tls = CMPR_SMTP_TLS_NO;
        else if (strcmp(v, "required") == 0)
            c->smtp_tls = CMPR_SMTP_TLS_REQUIRED;
        else if (strcmp(v, "offered") != 0) {
            *err_r = cmpr_conf_group_error(g, "smtp_tls", "smtp_tls is offered, required or no");
            return CMPR_ERR_CONFIG;
        }
    }
    c->smtp_ca = cmpr_conf_group_path(g, "smtp_ca", NULL);
    c->smtp_user = (v = cmpr_conf_group_get(g, "smtp_user")) != NULL ? strdup(v) : NULL;
    if (cmpr_conf_group_get(g, "smtp_secret") != NULL
            && (c->smtp_secret = cmpr_conf_group_secret(g, "smtp_secret", err_r)) == NULL)
        return CMPR_ERR_CONFIG;
    if ((c->smtp_user == NULL) != (c->smtp_secret == NULL)) {
        *err_r = cmpr_conf_group_error(g, NULL, "[mail]: smtp_user and smtp_secret go together");
        return CMPR_ERR_CONFIG;
    }
    c->allow_plain_auth = (v = cmpr_conf_group_get(g, "smtp_plain_auth")) != NULL && strcmp(v, "yes") == 0;
    c->sendmail = (v = cmpr_conf_group_get(g, "sendmail")) != NULL ? strdup(v) : NULL;
    if (c->sendmail != NULL && c->smtp_host != NULL) {
        *err_r = cmpr_conf_group_error(g, "sendmail", "[mail] sends by smtp or by sendmail, not both");
        return CMPR_ERR_CONFIG;
    }
    return CMPR_OK;
}

void
cmpr_mail_conf_free(struct cmpr_mail_conf *c)
{
    free(c->maildir);
    free(c->queue);
    free(c->from);
    free(c->label);
    g_strfreev(c->allow);
    free(c->smtp_host);
    free(c->smtp_ca);
    free(c->smtp_user);
    if (c->smtp_secret != NULL) {
        OPENSSL_cleanse(c->smtp_secret, strlen(c->smtp_secret));
        g_free(c->smtp_secret);
    }
    free(c->sendmail);
    memset(c, 0, sizeof(*c));
}

int
cmpr_mail_dirs(const struct cmpr_mail_conf *c, char **err_r)
{
    char p[PATH_MAX];
    static const char *const sub[] = { "new", "cur", "tmp" };

    for (int i = 0; i < 3; i++)
        if (cmpr_fs_join(p, sizeof(p), c->maildir, "", sub[i]) != 0 || cmpr_fs_mkdirs(p, err_r, "Maildir") != 0)
            return -1;
    if (cmpr_fs_join(p, sizeof(p), c->queue, "", "sent") != 0 || cmpr_fs_mkdirs(p, err_r, "mail queue") != 0
            || cmpr_fs_join(p, sizeof(p), c->queue, "", "dead") != 0 || cmpr_fs_mkdirs(p, err_r, "mail queue") != 0)
        return -1;
    return 0;
}

static int
allowed(const struct cmpr_mail_conf *c, const char *addr)
{
    const char *dom = cmpr_mail_domain(addr);

    if (c->allow == NULL)
        return 1;
    for (char **a = c->allow; *a != NULL; a++)
        if ((*a)[0] != '\0' && strcasecmp(*a, dom) == 0)
            return 1;
    return 0;
}

int
cmpr_mail_queue_put(const char *queue, unsigned mode, const char *name, const char *from,
                    const char *to, const unsigned char *mail, size_t len)
{
    struct cmpr_buf b;
    char tmp[300];
    int r;

    cmpr_buf_init(&b, len + 1200);
    if (strlen(name) > 250 || cmpr_buf_putf(&b, "cmprouter-envelope %s %s\n", from, to) != CMPR_OK
            || cmpr_buf_put(&b, mail, len) != CMPR_OK) {
        cmpr_buf_free(&b);
        errno = ENOMEM;
        return -1;
    }
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    r = cmpr_fs_write_durable(queue, tmp, name, cmpr_buf_ptr(&b), cmpr_buf_len(&b), (mode_t)mode);
    cmpr_buf_free(&b);
    return r;
}

int
cmpr_mail_queue_parse(const unsigned char *data, size_t len, char *from, size_t flen, char *to,
                      size_t tlen, size_t *body_off)
{
    const unsigned char *nl = memchr(data, '\n', len < 1200 ? len : 1200);
    char line[1200], f[600], t[600];
    size_t n;

    if (nl == NULL)
        return -1;
    n = (size_t)(nl - data);
    memcpy(line, data, n);
    line[n] = '\0';
    if (sscanf(line, "cmprouter-envelope %599s %599s", f, t) != 2 || !cmpr_mail_addr_ok(f)
            || !cmpr_mail_addr_ok(t))
        return -1;
    snprintf(from, flen, "%s", f);
    snprintf(to, tlen, "%s", t);
    *body_off = n + 1;
    return 0;
}

/* ---------------- answers pushed to a waiting client ---------------- */

/* Where a later answer for a mailed request goes (a forwarded request that
 * waited): a second reply mail, threaded to the request, into the queue. */
struct mail_push {
    char queue[PATH_MAX];
    char ours[256], client[256];
    unsigned mode;
    char message_id[256], references[1024], subject[256];
};

static int
push_encode(const struct cmpr_mail_conf *c, const struct cmpr_mail_in *m, char *buf, size_t len)
{
    char mode[16];
    const char *f[7] = { c->queue, c->from, m->from, mode, m->message_id, m->references, m->subject };

    snprintf(mode, sizeof(mode), "%o", c->mode);
    return cmpr_push_pack(buf, len, f, 7);
}

static int
push_decode(const char *addr, struct mail_push *p)
{
    char store[8192], *end;
    const char *f[7];

    if (cmpr_push_unpack(addr, f, 7, store, sizeof(store)) != 0)
        return -1;
    snprintf(p->queue, sizeof(p->queue), "%s", f[0]);
    snprintf(p->ours, sizeof(p->ours), "%s", f[1]);
    snprintf(p->client, sizeof(p->client), "%s", f[2]);
    p->mode = (unsigned)strtoul(f[3], &end, 8);
    snprintf(p->message_id, sizeof(p->message_id), "%s", f[4]);
    snprintf(p->references, sizeof(p->references), "%s", f[5]);
    snprintf(p->subject, sizeof(p->subject), "%s", f[6]);
    return *end == '\0' && p->mode <= 0777 && cmpr_mail_addr_ok(p->ours) && cmpr_mail_addr_ok(p->client) ? 0 : -1;
}

static int
push(void *ctx, const char *addr, const unsigned char *der, size_t len, char *err, size_t errlen)
{
    struct mail_push p;
    struct cmpr_mail_in m;
    struct cmpr_mail_answer a;
    CMPR_PKIMESSAGE *msg = NULL;
    unsigned char *mail = NULL, rnd[8];
    char text[700], name[80];
    size_t mlen = 0;
    int r;

    (void)ctx;
    if (push_decode(addr, &p) != 0) {
        snprintf(err, errlen, "malformed mail address");
        return -1;
    }
    memset(&m, 0, sizeof(m));
    snprintf(m.from, sizeof(m.from), "%s", p.client);
    snprintf(m.subject, sizeof(m.subject), "%s", p.subject);
    snprintf(m.message_id, sizeof(m.message_id), "%s", p.message_id);
    snprintf(m.references, sizeof(m.references), "%s", p.references);
    if (cmpr_msg_decode(der, len, &msg, NULL) == CMPR_OK)
        cmpr_msg_describe(msg, text, sizeof(text));
    else
        snprintf(text, sizeof(text), "The answer is attached.");
    CMPR_PKIMESSAGE_free(msg);
    a.der = der;
    a.len = len;
    a.name = "answer.pki";
    a.text = text;
    if (cmpr_mail_build_reply(&m, p.ours, &a, 1, "The CA has answered the request you sent earlier.", &mail,
                              &mlen) != 0) {
        snprintf(err, errlen, "cannot build the reply mail");
        return -1;
    }
    RAND_bytes(rnd, sizeof(rnd));
    snprintf(name, sizeof(name), "pushed-%02x%02x%02x%02x%02x%02x%02x%02x.msg", rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5], rnd[6], rnd[7]);
    if ((r = cmpr_mail_queue_put(p.queue, p.mode, name, p.ours, p.client, mail, mlen)) != 0)
        snprintf(err, errlen, "cannot queue the reply in %s: %s", p.queue, strerror(errno));
    free(mail);
    return r;
}

const struct cmpr_push_ops cmpr_mail_push = { "mail", push };

int
cmpr_mail_process(const struct cmpr_mail_conf *c, struct cmpr_core *core, const unsigned char *raw,
                  size_t len, const char *key, int resumed, int *answered)
{
    struct cmpr_mail_in m;
    struct cmpr_mail_answer *ans = NULL;
    unsigned char **outs = NULL, *mail = NULL;
    char (*texts)[700] = NULL, name[300], sent[PATH_MAX];
    size_t mail_len = 0;
    unsigned long budget;
    int r = CMPR_MAIL_RETRY;

    *answered = 0;
    if (cmpr_mail_parse(raw, len, &c->lim, &m) != 0) {
        cmpr_log_error("mail %s: out of memory", key);
        cmpr_mail_in_free(&m);
        return CMPR_MAIL_RETRY;
    }
    if (m.from[0] == '\0') {
        cmpr_log_warn("mail %s: dropped: no usable From or Reply-To address to answer (%s)", key,
                      m.problem[0] ? m.problem : "no problem with the content");
        r = CMPR_MAIL_DONE;
        goto out;
    }
    if (!allowed(c, m.from)) {
        cmpr_log_warn("mail %s: dropped: sender %s is not in allow_domains", key, m.from);
        r = CMPR_MAIL_DONE;
        goto out;
    }
    snprintf(name, sizeof(name), "%s.msg", key);
    if (cmpr_fs_join(sent, sizeof(sent), c->queue, "sent/", name) == 0 && access(sent, F_OK) == 0) {
        cmpr_log_info("mail %s: its reply was already sent", key);
        r = CMPR_MAIL_DONE;
        goto out;
    }
    /* what the key derivations of all its parts may cost together */
    budget = (unsigned long)c->mac_budget;
    ans = calloc(m.n_parts + 1, sizeof(*ans));
    outs = calloc(m.n_parts + 1, sizeof(*outs));
    texts = calloc(m.n_parts + 1, sizeof(*texts));
    if (ans == NULL || outs == NULL || texts == NULL)
        goto out;
    for (size_t i = 0; i < m.n_parts; i++) {
        struct cmpr_mail_part *p = &m.parts[i];
        size_t out_len = 0;

        ans[i].name = p->name;
        ans[i].text = texts[i];
        if (p->der == NULL) {
            snprintf(texts[i], sizeof(texts[i]), "Not processed: %s.", p->problem);
            continue;
        }
        {
            /* where a forwarded request's later answer can be mailed */
            struct cmpr_call call = { "mail", m.from, c->label, resumed, "mail", NULL, &budget };
            char addr[4096];
            int hr;

            if (push_encode(c, &m, addr, sizeof(addr)) == 0)
                call.push = addr;
            hr = cmpr_transport_call(core, &call, p->der, p->len, &outs[i], &out_len);
            if (hr != CMPR_OK) {
                cmpr_log_error("mail %s: no answer could be made for %s (kept, tried again later)",
                               key, p->name);
                goto out;
            }
        }
        {
            CMPR_PKIMESSAGE *msg = NULL;

            if (cmpr_msg_decode(outs[i], out_len, &msg, NULL) == CMPR_OK)
                cmpr_msg_describe(msg, texts[i], sizeof(texts[i]));
            else
                snprintf(texts[i], sizeof(texts[i]), "The answer is attached.");
            CMPR_PKIMESSAGE_free(msg);
        }
        ans[i].der = outs[i];
        ans[i].len = out_len;
        (*answered)++;
    }
    if (cmpr_mail_build_reply(&m, c->from, ans, m.n_parts, m.problem[0] ? m.problem : NULL,
                              &mail, &mail_len) != 0) {
        cmpr_log_error("mail %s: the reply to %s cannot be built", key, m.from);
        goto out;
    }
    if (cmpr_mail_queue_put(c->queue, c->mode, name, c->from, m.from, mail, mail_len) != 0) {
        cmpr_log_error("mail %s: cannot queue the reply in %s: %s", key, c->queue, strerror(errno));
        goto out;
    }
    cmpr_log_info("mail %s from %s: %zu CMP message(s), %d answered; reply queued%s%s", key, m.from,
                  m.n_parts, *answered, m.problem[0] ? ": " : "", m.problem);
    r = CMPR_MAIL_DONE;
out:
    for (size_t i = 0; outs != NULL && i < m.n_parts; i++)
        free(outs[i]);
    free(outs);
    free(ans);
    free(texts);
    free(mail);
    cmpr_mail_in_free(&m);
    return r;
}
