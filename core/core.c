/* The core object: what cmpr_core_new loads once (CAs, trust, the store,
 * the MAC key cache), the media registered with it, the routes, metrics,
 * and the answers kept by reference. */
#include "core/req.h"
#include "core/txn.h"
#include "base/err.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

static int
add_pem_certs(X509_STORE *store, STACK_OF(X509) *sk, const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x;
    int n = 0;

    if (b == NULL)
        return -1;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (store != NULL)
            X509_STORE_add_cert(store, x);
        if (sk != NULL)
            sk_X509_push(sk, x);
        else
            X509_free(x);
        n++;
    }
    ERR_clear_error();
    BIO_free(b);
    return n;
}

static int
config_error(char **err_r, const char *fmt, const char *arg)
{
    char buf[600];

    snprintf(buf, sizeof(buf), fmt, arg);
    *err_r = strdup(buf);
    return CMPR_ERR_CONFIG;
}

/* our own CAs anchor the certificates we issued (kur, rr, certConf by
 * signature); [router] trusted and untrusted add to them */
static int
load_trust(struct cmpr_core *c, char **err_r)
{
    const struct cmpr_conf *conf = c->conf;

    c->trust = X509_STORE_new();
    c->untrusted = sk_X509_new_null();
    if (c->trust == NULL || c->untrusted == NULL)
        return CMPR_ERR_ALLOC;
    for (size_t i = 0; i < c->n_cas; i++) {
        X509_STORE_add_cert(c->trust, c->cas[i]->root != NULL ? c->cas[i]->root : c->cas[i]->cert);
        X509_add_cert(c->untrusted, c->cas[i]->cert, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP);
        X509_add_certs(c->untrusted, c->cas[i]->chain, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP);
    }
    if (conf->trusted != NULL && add_pem_certs(c->trust, NULL, conf->trusted) <= 0)
        return config_error(err_r, "trusted: no certificates in %s", conf->trusted);
    if (conf->untrusted != NULL && add_pem_certs(NULL, c->untrusted, conf->untrusted) <= 0)
        return config_error(err_r, "untrusted: no certificates in %s", conf->untrusted);
    return CMPR_OK;
}

int
cmpr_core_new(const struct cmpr_conf *conf, struct cmpr_core **core_r, char **err_r)
{
    struct cmpr_core *c = calloc(1, sizeof(*c));
    pthread_condattr_t ca;
    int r = CMPR_ERR_CONFIG;

    *core_r = NULL;
    *err_r = NULL;
    if (c == NULL)
        return CMPR_ERR_ALLOC;
    c->conf = conf;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->park_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);    /* deadlines are monotonic */
    pthread_cond_init(&c->park_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->sync_mu, NULL);
    pthread_cond_init(&c->sync_cond, NULL);
    if (conf->log_level != NULL && cmpr_log_level_from_name(conf->log_level) >= 0)
        cmpr_log_set_level(cmpr_log_level_from_name(conf->log_level));
    if ((c->cas = calloc(conf->n_cas + 1, sizeof(*c->cas))) == NULL) {
        r = CMPR_ERR_ALLOC;
        goto fail;
    }
    for (size_t i = 0; i < conf->n_cas; i++) {
        if ((r = cmpr_ca_load(&conf->cas[i], &c->cas[i], err_r)) != CMPR_OK)
            goto fail;
        c->n_cas++;
    }
    if ((r = load_trust(c, err_r)) != CMPR_OK)
        goto fail;
    if ((c->mac_cache = cmpr_mac_cache_new(0)) == NULL) {
        r = CMPR_ERR_ALLOC;
        goto fail;
    }
    if ((r = cmpr_store_open(conf->store, &c->st)) != CMPR_OK) {
        char name[600];

        cmpr_store_name(conf->store, name, sizeof(name));
        r = config_error(err_r, "cannot open store %.500s", name);
        goto fail;
    }
    *core_r = c;
    return CMPR_OK;
 fail:
    cmpr_core_free(c);
    return r;
}

int
cmpr_core_add_upstream(struct cmpr_core *c, const struct cmpr_upstream_ops *ops, void *ctx)
{
    if (c->n_up == CMPR_MAX_UPSTREAM_OPS)
        return CMPR_ERR_TOO_LARGE;
    c->up[c->n_up].ops = ops;
    c->up[c->n_up++].ctx = ctx;
    return CMPR_OK;
}

int
cmpr_core_add_pusher(struct cmpr_core *c, const struct cmpr_push_ops *ops, void *ctx)
{
    if (c->n_push == CMPR_MAX_PUSH_OPS)
        return CMPR_ERR_TOO_LARGE;
    c->push[c->n_push].ops = ops;
    c->push[c->n_push++].ctx = ctx;
    return CMPR_OK;
}

void
cmpr_core_set_forwarder(struct cmpr_core *c, void (*wake)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&c->mu);
    c->wake = wake;
    c->wake_ctx = ctx;
    pthread_mutex_unlock(&c->mu);
}

int
cmpr_core_start(struct cmpr_core *c, char **err_r)
{
    struct cmpr_route_media media;
    int r;

    *err_r = NULL;
    memset(&media, 0, sizeof(media));
    for (size_t i = 0; i < c->n_up && i < sizeof(media.ops) / sizeof(media.ops[0]); i++) {
        media.ops[i] = c->up[i].ops;
        media.ctx[i] = c->up[i].ctx;
        media.n++;
    }
    cmpr_routes_free(c->routes);
    c->routes = NULL;
    c->ra_signer = NULL;
    if ((r = cmpr_routes_load(c->conf, &media, &c->routes, err_r)) != CMPR_OK)
        return r;
    /* a router without [ca] answers in the name of its first RA identity */
    for (size_t i = 0; c->n_cas == 0 && c->ra_signer == NULL && i < c->routes->n; i++)
        if (c->routes->v[i].ra_cert != NULL)
            c->ra_signer = &c->routes->v[i];
    return CMPR_OK;
}

void
cmpr_core_free(struct cmpr_core *c)
{
    if (c == NULL)
        return;
    cmpr_park_free(c);
    cmpr_forwarder_free(c);
    cmpr_routes_free(c->routes);
    for (size_t i = 0; i < c->n_cas; i++)
        cmpr_ca_free(c->cas[i]);
    free(c->cas);
    X509_STORE_free(c->trust);
    sk_X509_pop_free(c->untrusted, X509_free);
    cmpr_mac_cache_free(c->mac_cache);
    cmpr_store_close(c->st);
    pthread_cond_destroy(&c->park_cond);
    pthread_mutex_destroy(&c->park_mu);
    pthread_cond_destroy(&c->sync_cond);
    pthread_mutex_destroy(&c->sync_mu);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

struct cmpr_store *
cmpr_core_store(struct cmpr_core *c)
{
    return c->st;
}

int
cmpr_core_has_upstreams(const struct cmpr_core *c)
{
    for (size_t i = 0; c->routes != NULL && i < c->routes->n; i++)
        if (c->routes->v[i].upstream != NULL)
            return 1;
    return 0;
}

void
cmpr_core_stats(struct cmpr_core *c, struct cmpr_core_stats *out)
{
    for (int i = 0; i < 32; i++)
        out->requests[i] = atomic_load(&c->requests[i]);
    for (int i = 0; i < 8; i++)
        out->answers[i] = atomic_load(&c->answers[i]);
    out->undecodable = atomic_load(&c->undecodable);
    out->errors = atomic_load(&c->errors);
    out->store_errors = atomic_load(&c->store_errors);
    out->last_store_error = (time_t)atomic_load(&c->last_store_error);
    out->parked = atomic_load(&c->n_parked);
}

/* ---------------- answers kept by reference ---------------- */

int
cmpr_core_defer(struct cmpr_core *c, const unsigned char *req, size_t len, uint32_t *ref_r)
{
    struct cmpr_defer_rec d;
    uint32_t ref = 0;
    int r = CMPR_ERR_EXISTS;

    for (int i = 0; i < 8 && r == CMPR_ERR_EXISTS; i++) {
        if (RAND_bytes((unsigned char *)&ref, sizeof(ref)) != 1)
            return CMPR_ERR_INTERNAL;
        if (ref == 0)
            continue;
        cmpr_defer_init(&d, ref);
        d.req = (unsigned char *)req;
        d.req_len = len;
        d.created = (int64_t)time(NULL);
        r = c->st->ops->defer_put(c->st, &d);
    }
    if (r == CMPR_OK)
        *ref_r = ref;
    return r;
}

int
cmpr_core_defer_answer(struct cmpr_core *c, uint32_t ref, const unsigned char *der, size_t len)
{
    struct cmpr_defer_rec d;
    int r;

    if ((r = c->st->ops->defer_get(c->st, ref, &d)) != CMPR_OK)
        return r;
    free(d.answer);
    d.answer = NULL;
    d.answer_len = 0;
    if ((r = cmpr_defer_to(&d, der != NULL ? CMPR_DEFER_DONE : CMPR_DEFER_FAILED)) == CMPR_OK) {
        if (der != NULL && (d.answer = cmpr_memdup(der, len)) == NULL)
            r = CMPR_ERR_ALLOC;
        d.answer_len = len;
        if (r == CMPR_OK)
            r = c->st->ops->defer_put(c->st, &d);
    }
    cmpr_defer_rec_clear(&d);
    return r;
}

int
cmpr_core_defer_get(struct cmpr_core *c, uint32_t ref, struct cmpr_defer_rec *rec_r)
{
    return c->st->ops->defer_get(c->st, ref, rec_r);
}

int
cmpr_core_defer_list(struct cmpr_core *c, int64_t older_than, int (*cb)(const struct cmpr_defer_rec *rec, void *arg),
                     void *arg)
{
    return c->st->ops->defer_list(c->st, older_than, cb, arg);
}
