/*
 * The route table: [route NAME] groups read in file order, and the match of
 * one request against them (see route.h).
 */
#include "core/route.h"
#include "base/buf.h"
#include "core/ca.h"
#include "base/err.h"
#include "codec/oids.h"
#include "codec/protect.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

/* the route's own keys; its upstream's medium adds its own (ops->directives) */
static const char *const directives[] = {
    "label", "profile", "body", "client", "subject", "issuer",
    "ca", "upstream", "protection", "ra_verified", "timeout", "wait", "followup_wait", "retry", "give_up",
    "batch", "batch_wait", "check_after",
    "ra_cert", "ra_key", "ra_chain", "ra_reference", "ra_secret", "ra_mac", "trusted",
    NULL
};

#define MAX_DIRECTIVES 64

/* the operations for uri's scheme (the text before the first ':') */
static int
find_medium(const struct cmpr_route_media *media, const char *uri, const struct cmpr_upstream_ops **ops_r,
            void **ctx_r)
{
    size_t n = strcspn(uri, ":");

    if (uri[n] != ':')
        return -1;
    for (size_t i = 0; media != NULL && i < media->n; i++)
        for (const char *const *sc = media->ops[i]->schemes; *sc != NULL; sc++)
            if (strlen(*sc) == n && strncmp(*sc, uri, n) == 0) {
                *ops_r = media->ops[i];
                *ctx_r = media->ctx[i];
                return 0;
            }
    return -1;
}

static char *
scheme_list(const struct cmpr_route_media *media)
{
    GString *s = g_string_new("");
    char *out;

    for (size_t i = 0; media != NULL && i < media->n; i++)
        for (const char *const *sc = media->ops[i]->schemes; *sc != NULL; sc++)
            g_string_append_printf(s, "%s%s:", s->len > 0 ? ", " : "", *sc);
    out = strdup(s->len > 0 ? s->str : "none");
    g_string_free(s, TRUE);
    return out;
}

/* the key check of the route and its medium together */
static int
check_keys(const struct cmpr_conf_group *g, const struct cmpr_upstream_ops *ops, char **err_r)
{
    const char *all[MAX_DIRECTIVES + 1];
    size_t n = 0;

    for (const char *const *d = directives; *d != NULL && n < MAX_DIRECTIVES; d++)
        all[n++] = *d;
    for (const char *const *d = ops != NULL ? ops->directives : NULL; d != NULL && *d != NULL && n < MAX_DIRECTIVES; d++)
        all[n++] = *d;
    all[n] = NULL;
    return cmpr_conf_group_check(g, all, err_r);
}

static char **
split_list(const char *v)
{
    char **parts, **out;
    size_t n = 0;

    if (v == NULL)
        return NULL;
    parts = g_strsplit_set(v, ", ", -1);
    out = calloc(g_strv_length(parts) + 1, sizeof(char *));
    for (char **p = parts; out != NULL && *p != NULL; p++)
        if (**p != '\0')
            out[n++] = strdup(*p);
    g_strfreev(parts);
    if (out != NULL && n == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void
free_list(char **l)
{
    for (char **p = l; p != NULL && *p != NULL; p++)
        free(*p);
    free(l);
}

static char *
dup_or_null(const char *v)
{
    return v != NULL ? strdup(v) : NULL;
}

/* the match keys (NULL / 0: any) */
static int
load_match(const struct cmpr_conf_group *g, struct cmpr_route *rt, char **err_r)
{
    const char *v;

    rt->labels = split_list(cmpr_conf_group_get(g, "label"));
    rt->profiles = split_list(cmpr_conf_group_get(g, "profile"));
    if ((v = cmpr_conf_group_get(g, "body")) != NULL) {
        char **l = split_list(v);

        for (char **p = l; p != NULL && *p != NULL; p++) {
            int b = cmpr_body_from_name(*p);

            if (b < 0 || b >= CMPR_BODY_COUNT) {
                *err_r = cmpr_conf_group_error(g, "body", "'%s' is not a CMP body type (ir, cr, kur, "
                                               "p10cr, rr, genm, ...)", *p);
                free_list(l);
                return CMPR_ERR_CONFIG;
            }
            rt->bodies |= 1ul << b;
        }
        free_list(l);
    }
    rt->client = dup_or_null(cmpr_conf_group_get(g, "client"));
    rt->subject = dup_or_null(cmpr_conf_group_get(g, "subject"));
    rt->issuer = dup_or_null(cmpr_conf_group_get(g, "issuer"));
    return CMPR_OK;
}

/* what it does: a local CA, or an upstream over a registered medium */
static int
load_action(const struct cmpr_conf_group *g, const struct cmpr_route_media *media, struct cmpr_route *rt,
            char **err_r)
{
    const char *v;
    int r;

    rt->ca = dup_or_null(cmpr_conf_group_get(g, "ca"));
    rt->upstream = dup_or_null(cmpr_conf_group_get(g, "upstream"));
    if ((rt->ca != NULL) == (rt->upstream != NULL)) {
        *err_r = cmpr_conf_group_error(g, NULL, "[route %s] needs either ca = NAME (answer here) or "
                                       "upstream = URI (forward)", g->name);
        return CMPR_ERR_CONFIG;
    }
    if (rt->upstream != NULL && find_medium(media, rt->upstream, &rt->up, &rt->up_ctx) != 0) {
        char *l = scheme_list(media);

        *err_r = cmpr_conf_group_error(g, "upstream", "no medium serves upstream '%s' (the URI schemes "
                                       "here: %s)", rt->upstream, l);
        free(l);
        return CMPR_ERR_CONFIG;
    }
    if ((r = check_keys(g, rt->up, err_r)) != CMPR_OK)
        return r;
    rt->offline = rt->up != NULL && rt->up->offline;
    rt->protection = CMPR_ROUTE_KEEP;
    if ((v = cmpr_conf_group_get(g, "protection")) != NULL) {
        if (strcmp(v, "reprotect") == 0)
            rt->protection = CMPR_ROUTE_REPROTECT;
        else if (strcmp(v, "nested") == 0)
            rt->protection = CMPR_ROUTE_NESTED;
        else if (strcmp(v, "keep") != 0) {
            *err_r = cmpr_conf_group_error(g, "protection", "protection is keep, reprotect or nested, "
                                           "not '%s'", v);
            return CMPR_ERR_CONFIG;
        }
    }
    return CMPR_OK;
}

/* the times (offline media wait longer, retry later, give up later) */
static int
load_times(const struct cmpr_conf_group *g, struct cmpr_route *rt, char **err_r)
{
    int r, offline = rt->offline;

    if ((r = cmpr_conf_group_bool(g, "ra_verified", 0, &rt->ra_verified, err_r)) != CMPR_OK)
        return r;
    if ((r = cmpr_conf_group_long(g, "timeout", 30, 1, 86400, &rt->timeout_ms, err_r))
            || (r = cmpr_conf_group_long(g, "wait", offline ? 0 : rt->timeout_ms, 0, 86400, &rt->wait_ms, err_r))
            || (r = cmpr_conf_group_long(g, "followup_wait", offline ? 10 : rt->wait_ms, 0, 86400,
                                         &rt->followup_wait_ms, err_r))
            || (r = cmpr_conf_group_long(g, "retry", offline ? 60 : 10, 1, 86400, &rt->retry_ms, err_r))
            || (r = cmpr_conf_group_long(g, "give_up", offline ? 7 * 86400 : 3600, 1, 365L * 86400,
                                         &rt->give_up_s, err_r))
            || (r = cmpr_conf_group_long(g, "batch", 1, 1, 1000, &rt->batch, err_r))
            || (r = cmpr_conf_group_long(g, "batch_wait", 10, 0, 86400, &rt->batch_wait_ms, err_r))
            || (r = cmpr_conf_group_long(g, "check_after", offline ? 30 : 5, 0, 86400, &rt->check_after,
                                         err_r)))
        return r;
    rt->timeout_ms *= 1000;
    rt->wait_ms *= 1000;
    rt->followup_wait_ms *= 1000;
    rt->retry_ms *= 1000;
    rt->batch_wait_ms *= 1000;
    if (rt->wait_ms > rt->timeout_ms)
        rt->wait_ms = rt->timeout_ms;
    if (rt->followup_wait_ms > rt->timeout_ms)
        rt->followup_wait_ms = rt->timeout_ms;
    return CMPR_OK;
}

/* the RA's own credentials towards the upstream */
static int
load_ra(const struct cmpr_conf_group *g, struct cmpr_route *rt, char **err_r)
{
    const char *v;
    char *path;

    if ((path = cmpr_conf_group_path(g, "ra_cert", NULL)) != NULL) {
        STACK_OF(X509) *sk = cmpr_load_certs(path);
        char *kp = cmpr_conf_group_path(g, "ra_key", NULL);

        if (sk == NULL || kp == NULL || (rt->ra_key = cmpr_load_key(kp, NULL)) == NULL) {
            *err_r = cmpr_conf_group_error(g, kp == NULL ? "ra_key" : "ra_cert",
                                           "cannot read the RA's certificate %s and key %s", path,
                                           kp != NULL ? kp : "(ra_key missing)");
            sk_X509_pop_free(sk, X509_free);
            free(kp);
            free(path);
            return CMPR_ERR_CONFIG;
        }
        free(kp);
        rt->ra_cert = sk_X509_shift(sk);
        rt->ra_chain = sk;
        free(path);
        if (X509_check_private_key(rt->ra_cert, rt->ra_key) != 1) {
            *err_r = cmpr_conf_group_error(g, "ra_key", "ra_key does not belong to ra_cert");
            return CMPR_ERR_CONFIG;
        }
        if ((path = cmpr_conf_group_path(g, "ra_chain", NULL)) != NULL) {
            STACK_OF(X509) *more = cmpr_load_certs(path);

            if (more == NULL) {
                *err_r = cmpr_conf_group_error(g, "ra_chain", "cannot read certificates from %s", path);
                sk_X509_pop_free(more, X509_free);
                free(path);
                return CMPR_ERR_CONFIG;
            }
            while (sk_X509_num(more) > 0)
                sk_X509_push(rt->ra_chain, sk_X509_shift(more));
            sk_X509_free(more);
            free(path);
        }
    }
    if ((v = cmpr_conf_group_get(g, "ra_reference")) != NULL) {
        char *s = NULL;

        rt->ra_reference = strdup(v);
        if ((s = cmpr_conf_group_secret(g, "ra_secret", err_r)) == NULL) {
            if (*err_r == NULL)
                *err_r = cmpr_conf_group_error(g, "ra_secret", "ra_reference needs ra_secret");
            return CMPR_ERR_CONFIG;
        }
        rt->ra_secret = (unsigned char *)s;
        rt->ra_secret_len = strlen(s);
    }
    rt->ra_mac_kind = CMPR_MAC_PBM;
    if ((v = cmpr_conf_group_get(g, "ra_mac")) != NULL) {
        if (strcmp(v, "pbmac1") == 0)
            rt->ra_mac_kind = CMPR_MAC_PBMAC1;
        else if (strcmp(v, "pbm") != 0) {
            *err_r = cmpr_conf_group_error(g, "ra_mac", "ra_mac is pbm or pbmac1");
            return CMPR_ERR_CONFIG;
        }
    }
    return CMPR_OK;
}

static int
load_route(const struct cmpr_conf_group *g, const struct cmpr_route_media *media, struct cmpr_route *rt,
           char **err_r)
{
    char *path;
    int r;

    rt->name = strdup(g->name);
    rt->g = g;
    if ((r = load_match(g, rt, err_r)) != CMPR_OK || (r = load_action(g, media, rt, err_r)) != CMPR_OK
            || (r = load_times(g, rt, err_r)) != CMPR_OK || (r = load_ra(g, rt, err_r)) != CMPR_OK)
        return r;
    if ((rt->protection != CMPR_ROUTE_KEEP || rt->batch > 1 || rt->ra_verified)
            && rt->ra_cert == NULL && rt->ra_reference == NULL) {
        *err_r = cmpr_conf_group_error(g, "protection", "[route %s]: %s needs the RA's own credentials "
                                       "(ra_cert + ra_key, or ra_reference + ra_secret)", g->name,
                                       rt->batch > 1 ? "batching" : rt->ra_verified ? "ra_verified"
                                       : "reprotect and nested");
        return CMPR_ERR_CONFIG;
    }
    if (rt->ra_verified && rt->protection == CMPR_ROUTE_KEEP) {
        *err_r = cmpr_conf_group_error(g, "ra_verified", "ra_verified changes the request: it needs "
                                       "protection = reprotect or nested");
        return CMPR_ERR_CONFIG;
    }
    if ((path = cmpr_conf_group_path(g, "trusted", NULL)) != NULL) {
        STACK_OF(X509) *sk = cmpr_load_certs(path);

        if (sk == NULL) {
            *err_r = cmpr_conf_group_error(g, "trusted", "cannot read certificates from %s", path);
            sk_X509_pop_free(sk, X509_free);
            free(path);
            return CMPR_ERR_CONFIG;
        }
        rt->trusted = X509_STORE_new();
        for (int i = 0; i < sk_X509_num(sk); i++)
            X509_STORE_add_cert(rt->trusted, sk_X509_value(sk, i));
        sk_X509_pop_free(sk, X509_free);
        free(path);
    }
    if (rt->protection == CMPR_ROUTE_REPROTECT && rt->trusted == NULL && rt->ra_reference == NULL) {
        *err_r = cmpr_conf_group_error(g, "trusted", "[route %s]: with reprotect the upstream's answers "
                                       "are checked here: give trusted (its CA certificates)", g->name);
        return CMPR_ERR_CONFIG;
    }
    /* the medium reads its own keys */
    if (rt->up != NULL && (r = rt->up->configure(rt->up_ctx, g, rt->upstream, rt->timeout_ms, &rt->up_set, err_r)) != CMPR_OK)
        return r;
    return CMPR_OK;
}

int
cmpr_routes_load(const struct cmpr_conf *conf, const struct cmpr_route_media *media, struct cmpr_routes **rt_r,
                 char **err_r)
{
    struct cmpr_routes *rt = calloc(1, sizeof(*rt));
    size_t cap = 0;
    int r;

    *rt_r = NULL;
    if (rt == NULL)
        return CMPR_ERR_ALLOC;
    for (size_t i = 0; i < conf->n_groups; i++) {
        const struct cmpr_conf_group *g = &conf->groups[i];
        if (strcmp(g->type, "route") != 0)
            continue;
        if (cmpr_array_grow(&rt->v, &cap, rt->n + 1, sizeof(*rt->v), SIZE_MAX / sizeof(*rt->v)) != CMPR_OK) {
            cmpr_routes_free(rt);
            return CMPR_ERR_ALLOC;
        }
        memset(&rt->v[rt->n], 0, sizeof(rt->v[0]));
        r = load_route(g, media, &rt->v[rt->n++], err_r);
        if (r == CMPR_OK && rt->v[rt->n - 1].ca != NULL && cmpr_conf_ca(conf, rt->v[rt->n - 1].ca) == NULL) {
            *err_r = cmpr_conf_group_error(g, "ca", "no [ca %s]", rt->v[rt->n - 1].ca);
            r = CMPR_ERR_CONFIG;
        }
        if (r != CMPR_OK) {
            cmpr_routes_free(rt);
            return r;
        }
    }
    *rt_r = rt;
    return CMPR_OK;
}

void
cmpr_routes_free(struct cmpr_routes *rt)
{
    if (rt == NULL)
        return;
    for (size_t i = 0; i < rt->n; i++) {
        struct cmpr_route *r = &rt->v[i];

        free(r->name);
        free_list(r->labels);
        free_list(r->profiles);
        free(r->client);
        free(r->subject);
        free(r->issuer);
        free(r->ca);
        free(r->upstream);
        EVP_PKEY_free(r->ra_key);
        X509_free(r->ra_cert);
        sk_X509_pop_free(r->ra_chain, X509_free);
        free(r->ra_reference);
        if (r->ra_secret != NULL) {
            OPENSSL_cleanse(r->ra_secret, r->ra_secret_len);
            g_free(r->ra_secret);
        }
        X509_STORE_free(r->trusted);
        if (r->up != NULL && r->up_set != NULL)
            r->up->release(r->up_ctx, r->up_set);
    }
    free(rt->v);
    free(rt);
}

const struct cmpr_route *
cmpr_route_by_name(const struct cmpr_routes *rt, const char *name)
{
    for (size_t i = 0; rt != NULL && i < rt->n; i++)
        if (strcmp(rt->v[i].name, name) == 0)
            return &rt->v[i];
    return NULL;
}

/* exact text, or an fnmatch pattern when it has * ? [ */
static int
fits(const char *pattern, const char *text)
{
    if (text == NULL)
        return 0;
    if (strpbrk(pattern, "*?[") == NULL)
        return strcmp(pattern, text) == 0;
    return fnmatch(pattern, text, 0) == 0;
}

static int
in_list(char *const *l, const char *s)
{
    for (char *const *p = l; s != NULL && p != NULL && *p != NULL; p++)
        if (strcmp(*p, s) == 0)
            return 1;
    return 0;
}

static void
note(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void
note(char *buf, size_t len, const char *fmt, ...)
{
    size_t o;
    va_list ap;

    if (buf == NULL)
        return;
    o = strlen(buf);
    if (o + 1 >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + o, len - o, fmt, ap);
    va_end(ap);
}

const struct cmpr_route *
cmpr_route_match(const struct cmpr_routes *rt, const struct cmpr_route_query *q, char *explain,
                 size_t explain_len)
{
    for (size_t i = 0; rt != NULL && i < rt->n; i++) {
        const struct cmpr_route *r = &rt->v[i];
        const char *why = NULL;
        char wbuf[600];

        if (r->labels != NULL && !in_list(r->labels, q->label)) {
            snprintf(wbuf, sizeof(wbuf), "label %s is not %s", q->label != NULL ? q->label : "(none)",
                     cmpr_conf_group_get(r->g, "label"));
            why = wbuf;
        } else if (r->profiles != NULL && !in_list(r->profiles, q->profile)) {
            snprintf(wbuf, sizeof(wbuf), "certProfile %s is not %s",
                     q->profile != NULL ? q->profile : "(none)", cmpr_conf_group_get(r->g, "profile"));
            why = wbuf;
        } else if (r->bodies != 0 && (q->body < 0 || q->body >= 64 || !(r->bodies & (1ul << q->body)))) {
            snprintf(wbuf, sizeof(wbuf), "body %s is not %s", cmpr_body_name(q->body) != NULL
                     ? cmpr_body_name(q->body) : "?", cmpr_conf_group_get(r->g, "body"));
            why = wbuf;
        } else if (r->client != NULL && !fits(r->client, q->client)) {
            snprintf(wbuf, sizeof(wbuf), "client %s does not fit %s", q->client != NULL ? q->client
                     : "(unknown)", r->client);
            why = wbuf;
        } else if (r->subject != NULL && !fits(r->subject, q->subject)) {
            snprintf(wbuf, sizeof(wbuf), "subject %s does not fit %s", q->subject != NULL ? q->subject
                     : "(none)", r->subject);
            why = wbuf;
        } else if (r->issuer != NULL && !fits(r->issuer, q->issuer)) {
            snprintf(wbuf, sizeof(wbuf), "issuer %s does not fit %s", q->issuer != NULL ? q->issuer
                     : "(none)", r->issuer);
            why = wbuf;
        }
        if (why != NULL) {
            note(explain, explain_len, "route %s: no: %s\n", r->name, why);
            continue;
        }
        note(explain, explain_len, "route %s: MATCHES%s -> %s%s%s\n", r->name,
             r->labels == NULL && r->profiles == NULL && r->bodies == 0 && r->client == NULL
             && r->subject == NULL && r->issuer == NULL ? " (no match keys: every request)" : "",
             r->upstream != NULL ? "upstream " : "local CA ", r->upstream != NULL ? r->upstream : r->ca,
             r->upstream == NULL ? "" : r->protection == CMPR_ROUTE_KEEP ? " (protection keep)"
             : r->protection == CMPR_ROUTE_REPROTECT ? " (protection reprotect)" : " (protection nested)");
        return r;
    }
    note(explain, explain_len, "no route matches: the local CA answers\n");
    return NULL;
}
