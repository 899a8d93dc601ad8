/*
 * The EE client's medium (outbound.h): the command-line options become a
 * configuration group for the URI scheme's client side (client.h), which
 * reads them as it reads a route's keys. Online media run their exchange on
 * a private loop here until it is done; offline media send, then collect
 * until the timeout.
 */
#include "transports/client/outbound.h"
#include "transports/client/client.h"
#include "transports/lib/ioloop.h"
#include "transports/lib/smtp.h"
#include "core/config.h"
#include "base/clock.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cmpr_upstream_ops *const media[] = {
    &cmpr_http_upstream, &cmpr_tcp_upstream, &cmpr_file_upstream, &cmpr_sftp_upstream, &cmpr_mail_upstream, NULL
};

#define MAX_OPTS 16

struct cmpr_out {
    const struct cmpr_upstream_ops *ops;
    void *set;
    struct cmpr_ioloop *l;              /* online media */
    long timeout_ms;
    const char *prefix;
    unsigned seq;
};

/* the options as a group ([client cli] from the command line) */
struct opt_group {
    struct cmpr_conf_group g;
    char *keys[MAX_OPTS], *values[MAX_OPTS];
    int lines[MAX_OPTS];
    char secret[1100];
};

static void
put(struct opt_group *og, const char *key, const char *value)
{
    if (value == NULL || og->g.n == MAX_OPTS)
        return;
    og->keys[og->g.n] = (char *)key;
    og->values[og->g.n] = (char *)value;
    og->g.n++;
}

static void
options(const struct cmpr_out_opts *o, struct opt_group *og)
{
    memset(og, 0, sizeof(*og));
    og->g.type = (char *)"client";
    og->g.name = (char *)"cli";
    og->g.keys = og->keys;
    og->g.values = og->values;
    og->g.lines = og->lines;
    put(og, "tls_ca", o->tls_ca);
    put(og, "tls_cert", o->tls_cert);
    put(og, "tls_key", o->tls_key);
    put(og, "tcp_framing", o->tcp_version == 0 ? "2510" : NULL);
    put(og, "keep_alive", o->no_keep_alive ? "no" : NULL);
    put(og, "ssh_identity", o->ssh_identity);
    put(og, "ssh_known_hosts", o->ssh_known_hosts);
    put(og, "smtp", o->smtp);
    put(og, "smtp_starttls", o->smtp_starttls == CMPR_SMTP_TLS_REQUIRED ? "required"
                             : o->smtp_starttls == CMPR_SMTP_TLS_NO ? "no" : NULL);
    put(og, "smtp_user", o->smtp_user);
    if (o->smtp_secret != NULL) {
        snprintf(og->secret, sizeof(og->secret), "pass:%s", o->smtp_secret);
        put(og, "smtp_secret", og->secret);
    }
    put(og, "from", o->mail_from);
    put(og, "maildir", o->maildir);
}

struct cmpr_out *
cmpr_out_new(const char *uri, const struct cmpr_out_opts *o, char *err, size_t errlen)
{
    struct cmpr_out *io = calloc(1, sizeof(*io));
    size_t n = strcspn(uri, ":");
    struct opt_group og;
    char *e = NULL;

    if (io == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    io->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 120000;
    io->prefix = o->name_prefix != NULL ? o->name_prefix : "cmprouter";
    for (const struct cmpr_upstream_ops *const *m = media; *m != NULL && io->ops == NULL; m++)
        for (const char *const *sc = (*m)->schemes; *sc != NULL; sc++)
            if (uri[n] == ':' && strlen(*sc) == n && strncmp(*sc, uri, n) == 0)
                io->ops = *m;
    if (io->ops == NULL) {
        snprintf(err, errlen, "unknown server URI '%s' (http://, https://, tcp://, file:, sftp://, mailto:)", uri);
        free(io);
        return NULL;
    }
    options(o, &og);
    if (io->ops->configure(NULL, &og.g, uri, io->timeout_ms, &io->set, &e) != CMPR_OK) {
        snprintf(err, errlen, "%s", e != NULL ? e : "bad server URI");
        free(e);
        memset(og.secret, 0, sizeof(og.secret));
        free(io);
        return NULL;
    }
    memset(og.secret, 0, sizeof(og.secret));
    if (!io->ops->offline && cmpr_ioloop_new(0, &io->l) != 0) {
        snprintf(err, errlen, "cannot make an event loop");
        cmpr_out_free(io);
        return NULL;
    }
    return io;
}

void
cmpr_out_free(struct cmpr_out *io)
{
    if (io == NULL)
        return;
    cmpr_ioloop_free(io->l);
    if (io->set != NULL)
        io->ops->release(NULL, io->set);
    free(io);
}

/* one exchange on the loop kept for the next (HTTP keeps a transaction's
 * connection) */
static int
online(struct cmpr_out *io, const char *tag, const unsigned char *req, size_t len, unsigned char **rsp_r,
       size_t *rsp_len_r, char *err, size_t errlen)
{
    struct cmpr_client_wait w;
    int r;

    memset(&w, 0, sizeof(w));
    if ((r = io->ops->exchange(io->l, io->set, tag, req, len, io->timeout_ms, cmpr_client_waited, &w)) == CMPR_OK)
        cmpr_ioloop_run_until(io->l, &w.done);
    r = r != CMPR_OK ? r : w.done ? w.result : CMPR_ERR_INTERNAL;
    if (r != CMPR_OK) {
        snprintf(err, errlen, "%s", w.why[0] ? w.why : cmpr_strerror(r));
        free(w.ans);
        return r;
    }
    *rsp_r = w.ans;
    *rsp_len_r = w.len;
    return CMPR_OK;
}

int
cmpr_out_exchange(struct cmpr_out *io, const char *tag, const unsigned char *req, size_t len,
                  unsigned char **rsp_r, size_t *rsp_len_r, char *err, size_t errlen)
{
    char name[200], key[300];
    long deadline = cmpr_mono_ms() + io->timeout_ms;
    int r;

    *rsp_r = NULL;
    *rsp_len_r = 0;
    if (!io->ops->offline)
        return online(io, tag, req, len, rsp_r, rsp_len_r, err, errlen);
    snprintf(name, sizeof(name), "%s-%.32s-%u.pki", io->prefix, tag, ++io->seq);
    if ((r = io->ops->send(NULL, io->set, name, req, len, key, sizeof(key), err, errlen)) != CMPR_OK)
        return r;
    do {
        if ((r = io->ops->collect(NULL, io->set, key, rsp_r, rsp_len_r, err, errlen)) != 0)
            return r > 0 ? CMPR_OK : CMPR_ERR_UNREACHABLE;
        cmpr_nap_ms(io->ops == &cmpr_file_upstream ? 100 : 300);
    } while (cmpr_mono_ms() < deadline);
    snprintf(err, errlen, "no answer to %s within %ld s (the request %s stays where it went)", name,
             io->timeout_ms / 1000, name);
    return CMPR_ERR_TIMEOUT;
}

int
cmpr_out_start(struct cmpr_out *io, const char *tag, const unsigned char *req, size_t len,
               cmpr_upstream_done_fn done, void *arg)
{
    if (io->ops->offline)
        return CMPR_ERR_INVALID_ARG;
    return io->ops->exchange(io->l, io->set, tag, req, len, io->timeout_ms, done, arg);
}

struct ticker {
    uv_timer_t t;
    void (*tick)(void *arg);
    void *arg;
};

static void
tick_cb(uv_timer_t *t)
{
    struct ticker *k = t->data;

    k->tick(k->arg);
}

static void
ticker_closed(uv_handle_t *h)
{
    *(int *)h->data = 1;
}

void
cmpr_out_run(struct cmpr_out *io, const int *stop, long every_ms, void (*tick)(void *arg), void *arg)
{
    struct ticker k = { .tick = tick, .arg = arg };

    if (every_ms > 0 && tick != NULL) {
        uv_timer_init(cmpr_ioloop_loop(io->l), &k.t);
        k.t.data = &k;
        uv_timer_start(&k.t, tick_cb, (uint64_t)every_ms, (uint64_t)every_ms);
        uv_unref((uv_handle_t *)&k.t);  /* it alone does not keep the loop going */
    }
    cmpr_ioloop_run_until(io->l, stop);
    if (every_ms > 0 && tick != NULL) {
        int closed = 0;

        uv_timer_stop(&k.t);
        k.t.data = &closed;
        uv_close((uv_handle_t *)&k.t, ticker_closed);
        while (!closed)         /* the handle lives on this stack */
            (void)uv_run(cmpr_ioloop_loop(io->l), UV_RUN_NOWAIT);
    }
}
