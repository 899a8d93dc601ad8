/*
 * The core's upstream operations (core.h, struct cmpr_upstream_ops) over
 * the client side of every medium (outbound.c), and the forwarder: a
 * dedicated thread (worker.c) that runs cmpr_core_forward() whenever a
 * request was queued for an upstream, and every second while answers of
 * offline upstreams are awaited.
 *
 * HTTP and TCP upstreams get a fresh client per exchange (requests of many
 * clients go upstream at once); a file, SFTP or mail upstream keeps one
 * per route (one SSH session), used under a lock.
 */
#define _GNU_SOURCE 1
#include "transports/transport.h"
#include "transports/client/outbound.h"
#include "codec/dropname.h"
#include "transports/lib/fsutil.h"
#include "codec/mime.h"
#include "codec/msg.h"
#include "codec/print.h"
#include "transports/lib/smtp.h"
#include "transports/lib/worker.h"
#include "core/core.h"
#include "base/err.h"
#include "base/log.h"
#include "core/route.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#define MAX_ROUTES 64
#define MAX_IDLE 64                     /* kept-alive HTTP/TCP clients */

struct route_io {
    char *name, *uri;
    char *smtp_secret;
    struct cmpr_out *io;
    pthread_mutex_t mu;
};

/* A synchronous upstream's connection, kept for the next message of the
 * same transaction: some servers (OpenSSL's mock server) keep a
 * transaction's state with its connection. */
struct idle_io {
    char route[128], uri[512], tid[80];
    struct cmpr_out *io;
    unsigned long used;
};

struct fwd_ctx {
    struct cmpr_worker w;
    int started;
    pthread_mutex_t mu;                 /* guards ios[] and idle[] */
    struct route_io ios[MAX_ROUTES];
    size_t n_ios;
    struct idle_io idle[MAX_IDLE];
    unsigned long clock;
    void (*stop_done)(void *arg);
    void *stop_arg;
};

static struct fwd_ctx *the_ctx;

/* the medium options of a route's group */
static void
opts_of(const struct cmpr_route *rt, struct cmpr_out_opts *o)
{
    const struct cmpr_conf_group *g = rt->g;
    const char *v;

    memset(o, 0, sizeof(*o));
    o->timeout_ms = rt->timeout_ms;
    o->tls_ca = cmpr_conf_group_get(g, "tls_ca");
    o->tls_cert = cmpr_conf_group_get(g, "tls_cert");
    o->tls_key = cmpr_conf_group_get(g, "tls_key");
    o->tcp_version = (v = cmpr_conf_group_get(g, "tcp_framing")) != NULL && strcmp(v, "2510") == 0 ? 0 : 10;
    o->ssh_identity = cmpr_conf_group_get(g, "ssh_identity");
    o->ssh_known_hosts = cmpr_conf_group_get(g, "ssh_known_hosts");
    o->smtp = cmpr_conf_group_get(g, "smtp");
    o->smtp_starttls = (v = cmpr_conf_group_get(g, "smtp_starttls")) != NULL && strcmp(v, "yes") == 0
                       ? CMPR_SMTP_TLS_REQUIRED : CMPR_SMTP_TLS_OFFERED;
    o->smtp_user = cmpr_conf_group_get(g, "smtp_user");
    o->mail_from = cmpr_conf_group_get(g, "from");
    o->maildir = cmpr_conf_group_get(g, "maildir");
    o->name_prefix = "cmprouter";
}

static int
offline_uri(const char *uri)
{
    return strncmp(uri, "file:", 5) == 0 || strncmp(uri, "sftp://", 7) == 0
           || strncmp(uri, "mailto:", 7) == 0;
}

/* the shared client of an offline route (created on first use), locked */
static struct route_io *
shared_io(const struct cmpr_route *rt, char *err, size_t errlen)
{
    struct fwd_ctx *c = the_ctx;
    struct route_io *ri = NULL;

    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_ios; i++)
        if (strcmp(c->ios[i].name, rt->name) == 0 && strcmp(c->ios[i].uri, rt->upstream) == 0)
            ri = &c->ios[i];
    if (ri == NULL && c->n_ios < MAX_ROUTES) {
        ri = &c->ios[c->n_ios];
        memset(ri, 0, sizeof(*ri));
        ri->name = strdup(rt->name);
        ri->uri = strdup(rt->upstream);
        pthread_mutex_init(&ri->mu, NULL);
        c->n_ios++;
    }
    pthread_mutex_unlock(&c->mu);
    if (ri == NULL) {
        snprintf(err, errlen, "too many upstream routes");
        return NULL;
    }
    pthread_mutex_lock(&ri->mu);
    if (ri->io == NULL) {
        struct cmpr_out_opts o;
        char *secret = NULL, *e2 = NULL;

        opts_of(rt, &o);
        if (cmpr_conf_group_get(rt->g, "smtp_secret") != NULL
                && (secret = cmpr_conf_group_secret(rt->g, "smtp_secret", &e2)) == NULL) {
            snprintf(err, errlen, "%s", e2 != NULL ? e2 : "smtp_secret");
            free(e2);
            pthread_mutex_unlock(&ri->mu);
            return NULL;
        }
        o.smtp_secret = ri->smtp_secret = secret;   /* lives as long as the client */
        ri->io = cmpr_out_new(rt->upstream, &o, err, errlen);
        if (ri->io == NULL) {
            pthread_mutex_unlock(&ri->mu);
            return NULL;
        }
    }
    return ri;
}

static int
up_start(void *ctx, const struct cmpr_route *rt, const char *name, const unsigned char *der, size_t len,
         long timeout_ms, char *key, size_t keylen, unsigned char **ans_r, size_t *ans_len_r,
         char *err, size_t errlen)
{
    int r;

    (void)ctx;
    if (!offline_uri(rt->upstream)) {
        struct fwd_ctx *c = the_ctx;
        struct cmpr_out_opts o;
        struct cmpr_out *io = NULL;
        char tid[80];

        /* names are TIDHEX-N.pki: the transaction's kept connection, if any */
        snprintf(tid, sizeof(tid), "%.*s", (int)strcspn(name, "-"), name);
        pthread_mutex_lock(&c->mu);
        for (size_t i = 0; i < MAX_IDLE && io == NULL; i++)
            if (c->idle[i].io != NULL && strcmp(c->idle[i].tid, tid) == 0
                    && strcmp(c->idle[i].route, rt->name) == 0 && strcmp(c->idle[i].uri, rt->upstream) == 0) {
                io = c->idle[i].io;
                c->idle[i].io = NULL;
            }
        pthread_mutex_unlock(&c->mu);
        opts_of(rt, &o);
        if (io == NULL && (io = cmpr_out_new(rt->upstream, &o, err, errlen)) == NULL)
            return CMPR_UP_FAILED;
        r = cmpr_out_start(io, name, der, len, timeout_ms, key, keylen, ans_r, ans_len_r, err, errlen);
        if (r != CMPR_OUT_ANSWER) {
            cmpr_out_free(io);
        } else {
            size_t slot = 0;

            pthread_mutex_lock(&c->mu);
            for (size_t i = 0; i < MAX_IDLE; i++) {
                if (c->idle[i].io == NULL) {
                    slot = i;
                    break;
                }
                if (c->idle[i].used < c->idle[slot].used)
                    slot = i;       /* the least recently used goes */
            }
            cmpr_out_free(c->idle[slot].io);
            c->idle[slot].io = io;
            c->idle[slot].used = ++c->clock;
            snprintf(c->idle[slot].tid, sizeof(c->idle[slot].tid), "%s", tid);
            snprintf(c->idle[slot].route, sizeof(c->idle[slot].route), "%s", rt->name);
            snprintf(c->idle[slot].uri, sizeof(c->idle[slot].uri), "%s", rt->upstream);
            pthread_mutex_unlock(&c->mu);
        }
    } else {
        struct route_io *ri = shared_io(rt, err, errlen);

        if (ri == NULL)
            return CMPR_UP_FAILED;
        r = cmpr_out_start(ri->io, name, der, len, timeout_ms, key, keylen, ans_r, ans_len_r, err, errlen);
        pthread_mutex_unlock(&ri->mu);
    }
    switch (r) {
    case CMPR_OUT_ANSWER: return CMPR_UP_ANSWER;
    case CMPR_OUT_SENT: return CMPR_UP_SENT;
    case CMPR_OUT_TIMEOUT: return CMPR_UP_TIMEOUT;
    default: return CMPR_UP_FAILED;
    }
}

static int
up_collect(void *ctx, const struct cmpr_route *rt, const char *key, unsigned char **ans_r,
           size_t *ans_len_r, char *err, size_t errlen)
{
    struct route_io *ri;
    int r;

    (void)ctx;
    if (!offline_uri(rt->upstream) || (ri = shared_io(rt, err, errlen)) == NULL)
        return -1;
    r = cmpr_out_collect(ri->io, key, ans_r, ans_len_r, err, errlen);
    pthread_mutex_unlock(&ri->mu);
    return r;
}

static void
up_wake(void *ctx)
{
    struct fwd_ctx *c = ctx;

    if (c != NULL && c->started)
        cmpr_worker_wake(&c->w);
}

/* ---------------- answers pushed to waiting clients ---------------- */

/* "file\tOUTBOX\tMODE\tNAME" (filedrop.c): the answer as the next free
 * NAME.rsp.pki, NAME.2.rsp.pki ... in the outbox */
static int
push_file(char *rest, const unsigned char *der, size_t len, char *err, size_t errlen)
{
    char *outbox = strsep(&rest, "\t"), *mode = strsep(&rest, "\t"), *name = rest;
    char fname[300], path[4096], tmp[340];

    if (outbox == NULL || mode == NULL || name == NULL) {
        snprintf(err, errlen, "malformed file address");
        return -1;
    }
    for (int n = 1; n <= 1000; n++) {
        if (cmpr_drop_answer_name(name, n, fname, sizeof(fname)) != 0
                || cmpr_fs_join(path, sizeof(path), outbox, "", fname) != 0)
            break;
        if (access(path, F_OK) == 0)
            continue;
        snprintf(tmp, sizeof(tmp), ".%s.tmp", fname);
        if (cmpr_fs_write_durable(outbox, tmp, fname, der, len, (mode_t)strtoul(mode, NULL, 8)) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "no free answer name in %s", outbox);
    return -1;
}

/* "mail\tQUEUE\tOURS\tCLIENT\tMODE\tMSGID\tREFERENCES\tSUBJECT" (mailproc.c):
 * a reply mail (threaded to the request) into the [mail] queue */
static int
push_mail(char *rest, const unsigned char *der, size_t len, char *err, size_t errlen)
{
    char *queue = strsep(&rest, "\t"), *ours = strsep(&rest, "\t"), *client = strsep(&rest, "\t");
    char *mode = strsep(&rest, "\t"), *msgid = strsep(&rest, "\t"), *refs = strsep(&rest, "\t");
    char *subject = rest, text[700], name[80], tmp[100];
    struct cmpr_mail_in m;
    struct cmpr_mail_answer a;
    CMPR_PKIMESSAGE *msg = NULL;
    unsigned char *mail = NULL, *entry = NULL, rnd[8];
    size_t mlen = 0, hl;
    int r = -1;

    if (queue == NULL || ours == NULL || client == NULL || mode == NULL || msgid == NULL || refs == NULL
            || subject == NULL) {
        snprintf(err, errlen, "malformed mail address");
        return -1;
    }
    memset(&m, 0, sizeof(m));
    snprintf(m.from, sizeof(m.from), "%s", client);
    snprintf(m.subject, sizeof(m.subject), "%s", subject);
    snprintf(m.message_id, sizeof(m.message_id), "%s", msgid);
    snprintf(m.references, sizeof(m.references), "%s", refs);
    if (cmpr_msg_decode(der, len, &msg, NULL) == CMPR_OK)
        cmpr_msg_describe(msg, text, sizeof(text));
    else
        snprintf(text, sizeof(text), "The answer is attached.");
    CMPR_PKIMESSAGE_free(msg);
    a.der = der;
    a.len = len;
    a.name = "answer.pki";
    a.text = text;
    if (cmpr_mail_build_reply(&m, ours, &a, 1, "The CA has answered the request you sent earlier.", &mail,
                              &mlen) != 0) {
        snprintf(err, errlen, "cannot build the reply mail");
        return -1;
    }
    hl = strlen(ours) + strlen(client) + 32;
    if ((entry = malloc(hl + mlen)) == NULL)
        goto out;
    hl = (size_t)snprintf((char *)entry, hl, "cmprouter-envelope %s %s\n", ours, client);
    memcpy(entry + hl, mail, mlen);
    RAND_bytes(rnd, sizeof(rnd));
    snprintf(name, sizeof(name), "pushed-%02x%02x%02x%02x%02x%02x%02x%02x.msg", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    if (cmpr_fs_write_durable(queue, tmp, name, entry, hl + mlen, (mode_t)strtoul(mode, NULL, 8)) != 0) {
        snprintf(err, errlen, "cannot queue the reply in %s: %s", queue, strerror(errno));
        goto out;
    }
    r = 0;
 out:
    free(mail);
    free(entry);
    return r;
}

static int
up_push(void *ctx, const char *push, const unsigned char *der, size_t len, char *err, size_t errlen)
{
    char *copy = strdup(push), *rest = copy, *kind;
    int r = -1;

    (void)ctx;
    if (copy == NULL)
        return -1;
    kind = strsep(&rest, "\t");
    if (strcmp(kind, "file") == 0 && rest != NULL)
        r = push_file(rest, der, len, err, errlen);
    else if (strcmp(kind, "mail") == 0 && rest != NULL)
        r = push_mail(rest, der, len, err, errlen);
    else
        snprintf(err, errlen, "no way to push to a %s client", kind);
    free(copy);
    return r;
}

static const struct cmpr_upstream_ops ops = { up_start, up_collect, up_wake, up_push };

void
cmpr_upstream_attach(struct cmpr_core *core)
{
    if (the_ctx != NULL)
        cmpr_core_set_upstream(core, &ops, the_ctx);
}

/* ---------------- the forwarder thread ---------------- */

static long
cycle(struct cmpr_worker *w, struct cmpr_core *core, void *arg)
{
    (void)w;
    (void)arg;
    if (core == NULL)
        return -1;
    cmpr_upstream_attach(core);         /* a reloaded core gets the operations too */
    return cmpr_core_forward(core);
}

static int
fwd_configure(void *vctx, const char *name, const struct cmpr_conf_group *g, char **err_r)
{
    struct fwd_ctx *c = vctx;

    (void)g;
    (void)err_r;
    pthread_mutex_init(&c->mu, NULL);
    the_ctx = c;
    return CMPR_OK;
}

static int
fwd_start(void *vctx, struct cmpr_daemon *d, char **err_r)
{
    struct fwd_ctx *c = vctx;

    cmpr_upstream_attach(d->core(d));
    c->started = 1;
    if (cmpr_worker_start(&c->w, d, "forward", 5000, cycle, c) != 0) {
        *err_r = strdup("forward: cannot start its thread");
        return CMPR_ERR_INTERNAL;
    }
    return CMPR_OK;
}

static void
worker_done(void *arg)
{
    struct fwd_ctx *c = arg;

    if (c->stop_done != NULL)
        c->stop_done(c->stop_arg);
}

static void
fwd_stop(void *vctx, void (*done)(void *arg), void *arg)
{
    struct fwd_ctx *c = vctx;

    c->stop_done = done;
    c->stop_arg = arg;
    cmpr_worker_stop(&c->w, worker_done, c);
}

static size_t
fwd_in_flight(void *vctx)
{
    struct fwd_ctx *c = vctx;

    return cmpr_worker_in_flight(&c->w);
}

static void
fwd_free(void *vctx)
{
    struct fwd_ctx *c = vctx;

    for (size_t i = 0; i < c->n_ios; i++) {
        cmpr_out_free(c->ios[i].io);
        free(c->ios[i].name);
        free(c->ios[i].uri);
        free(c->ios[i].smtp_secret);
        pthread_mutex_destroy(&c->ios[i].mu);
    }
    for (size_t i = 0; i < MAX_IDLE; i++)
        cmpr_out_free(c->idle[i].io);
    pthread_mutex_destroy(&c->mu);
    if (the_ctx == c)
        the_ctx = NULL;
}

const struct cmpr_transport_ops cmpr_forward_transport = {
    .name = "forward",
    .group_type = "route",
    .group_names = NULL,
    .ctx_size = sizeof(struct fwd_ctx),
    .configure = fwd_configure,
    .start = fwd_start,
    .stop = fwd_stop,
    .in_flight = fwd_in_flight,
    .port = cmpr_transport_no_port,
    .set_address = cmpr_transport_no_address,
    .free = fwd_free,
};
