/* cmprouter.conf: GKeyFile for the syntax, directive tables for meaning, a
 * line index for "file:line" in every error (nginx conf style). */
#include "core/config.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/limits.h"

#include <ctype.h>
#include <errno.h>
#include <glib.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#define MAX_GROUPS 4096          /* of each kind */
#define MAX_KEYS 1024            /* in one group */

enum dtype { D_STR, D_PATH, D_LONG, D_BOOL, D_LIST, D_SECRET, D_CHOICE };

struct directive {
    const char *key;
    enum dtype type;
    size_t off;
    long min, max;          /* D_LONG */
    const char *const *names;   /* D_CHOICE: the int is the index of the name */
};

#define DR(k, t, s, f) { k, t, offsetof(s, f), 0, 0, NULL }
#define DL(k, s, f, lo, hi) { k, D_LONG, offsetof(s, f), lo, hi, NULL }
#define DC(k, s, f, n) { k, D_CHOICE, offsetof(s, f), 0, 0, n }

const char *const cmpr_right_names[] = { "none", "own", "profiles", "any", NULL };
static const char *const central_keygen_names[] = { "no", "allowed", "required", NULL };

static const struct directive router_dirs[] = {
    DR("data_dir", D_PATH, struct cmpr_conf, data_dir),
    DR("store", D_STR, struct cmpr_conf, store),
    DR("trusted", D_PATH, struct cmpr_conf, trusted),
    DR("untrusted", D_PATH, struct cmpr_conf, untrusted),
    DR("log_level", D_STR, struct cmpr_conf, log_level),
    DR("log", D_STR, struct cmpr_conf, log),
    DR("user", D_STR, struct cmpr_conf, user),
    DR("secret_group", D_STR, struct cmpr_conf, secret_group),
    DL("max_mac_iterations", struct cmpr_conf, max_mac_iterations, 1, 10000000),
    DR("pbm_defaults", D_LIST, struct cmpr_conf, pbm_defaults),
    DR("pbmac1_defaults", D_LIST, struct cmpr_conf, pbmac1_defaults),
    DL("message_time_skew", struct cmpr_conf, message_time_skew, 0, 86400 * 365),
    DL("nonce_window", struct cmpr_conf, nonce_window, 1, 86400 * 30),
    DL("confirm_wait", struct cmpr_conf, confirm_wait, 1, 86400 * 30),
    DL("check_after", struct cmpr_conf, check_after, 1, 86400 * 30),
    DR("implicit_confirm", D_BOOL, struct cmpr_conf, implicit_confirm),
    DR("node", D_STR, struct cmpr_conf, node),
    DL("lease", struct cmpr_conf, lease, 1, 86400),
    { NULL, 0, 0, 0, 0, NULL }
};

static const struct directive ca_dirs[] = {
    DR("key", D_PATH, struct cmpr_conf_ca, key),
    DR("cert", D_PATH, struct cmpr_conf_ca, cert),
    DR("chain", D_PATH, struct cmpr_conf_ca, chain),
    DR("signer_cert", D_PATH, struct cmpr_conf_ca, signer_cert),
    DR("signer_key", D_PATH, struct cmpr_conf_ca, signer_key),
    DR("default_profile", D_STR, struct cmpr_conf_ca, default_profile),
    DR("profiles", D_LIST, struct cmpr_conf_ca, profiles),
    DR("mac_responses", D_BOOL, struct cmpr_conf_ca, mac_responses),
    DR("crl_file", D_PATH, struct cmpr_conf_ca, crl_file),
    DL("crl_days", struct cmpr_conf_ca, crl_days, 1, 3650),
    DR("encryption_cert", D_PATH, struct cmpr_conf_ca, encryption_cert),
    DR("encryption_key", D_PATH, struct cmpr_conf_ca, encryption_key),
    { NULL, 0, 0, 0, 0, NULL }
};

static const struct directive profile_dirs[] = {
    DL("validity_days", struct cmpr_conf_profile, validity_days, 1, 365 * 100),
    DR("key_usage", D_LIST, struct cmpr_conf_profile, key_usage),
    DR("allowed_key_usage", D_LIST, struct cmpr_conf_profile, allowed_key_usage),
    DR("extended_key_usage", D_LIST, struct cmpr_conf_profile, extended_key_usage),
    DR("allowed_extended_key_usage", D_LIST, struct cmpr_conf_profile, allowed_extended_key_usage),
    DR("certificate_policies", D_LIST, struct cmpr_conf_profile, certificate_policies),
    DR("allowed_certificate_policies", D_LIST, struct cmpr_conf_profile, allowed_certificate_policies),
    DR("policies_critical", D_BOOL, struct cmpr_conf_profile, policies_critical),
    DR("policy_cps", D_STR, struct cmpr_conf_profile, policy_cps),
    DR("policy_notice", D_STR, struct cmpr_conf_profile, policy_notice),
    DR("san_types", D_LIST, struct cmpr_conf_profile, san_types),
    DR("name_constraints", D_STR, struct cmpr_conf_profile, name_constraints),
    DC("central_keygen", struct cmpr_conf_profile, central_keygen, central_keygen_names),
    DR("central_key_type", D_STR, struct cmpr_conf_profile, central_key_type),
    DR("key_types", D_LIST, struct cmpr_conf_profile, key_types),
    DR("ca", D_BOOL, struct cmpr_conf_profile, ca),
    DL("path_len", struct cmpr_conf_profile, path_len, 0, 32),
    DR("require_approval", D_BOOL, struct cmpr_conf_profile, require_approval),
    DR("copy_san", D_BOOL, struct cmpr_conf_profile, copy_san),
    DR("revoke_replaced", D_BOOL, struct cmpr_conf_profile, revoke_replaced),
    DR("subject", D_STR, struct cmpr_conf_profile, subject),
    DR("crl_distribution_point", D_STR, struct cmpr_conf_profile, crl_distribution_point),
    DR("aia_ca_issuers", D_STR, struct cmpr_conf_profile, aia_ca_issuers),
    DR("aia_ocsp", D_STR, struct cmpr_conf_profile, aia_ocsp),
    { NULL, 0, 0, 0, 0, NULL }
};

/* D_SECRET stores the length right after the pointer */
_Static_assert(offsetof(struct cmpr_conf_client, secret_len)
               == offsetof(struct cmpr_conf_client, secret) + sizeof(unsigned char *),
               "secret_len must follow secret");

static const struct directive client_dirs[] = {
    DR("reference", D_STR, struct cmpr_conf_client, reference),
    DR("secret", D_SECRET, struct cmpr_conf_client, secret),
    DR("profiles", D_LIST, struct cmpr_conf_client, profiles),
    DR("subject", D_STR, struct cmpr_conf_client, subject),
    DR("cert_subject", D_STR, struct cmpr_conf_client, cert_subject),
    DR("tls_subject", D_STR, struct cmpr_conf_client, tls_subject),
    DR("one_time", D_BOOL, struct cmpr_conf_client, one_time),
    DR("ra", D_BOOL, struct cmpr_conf_client, ra),
    DR("enroll", D_BOOL, struct cmpr_conf_client, enroll),
    DC("renew", struct cmpr_conf_client, renew, cmpr_right_names),
    DC("revoke", struct cmpr_conf_client, revoke, cmpr_right_names),
    { NULL, 0, 0, 0, 0, NULL }
};

const char *const cmpr_key_usage_names[] = {
    "digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
    "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly", NULL
};

const char *const cmpr_san_type_names[] = {
    "othername", "email", "dns", "x400", "dirname", "ediparty", "uri", "ip", "rid", NULL
};

/* ---------------- line index ---------------- */

struct line_entry {
    char *group;
    char *key;          /* NULL: the group header line */
    int line;
};

struct parse {
    const char *path;
    char *dir;
    struct line_entry *lines;
    size_t n_lines;
    char *err;
};

static char *
trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static void
index_lines(struct parse *p, const char *text)
{
    char *copy = g_strdup(text), *line = copy, *next, *group = NULL;
    int no = 0;

    for (; line != NULL; line = next) {
        char *t;

        no++;
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        t = trim(line);
        if (*t == '#' || *t == ';' || *t == '\0')
            continue;
        p->lines = g_renew(struct line_entry, p->lines, p->n_lines + 1);
        if (*t == '[') {
            char *end = strchr(t, ']');

            if (end != NULL)
                *end = '\0';
            group = t + 1;
            p->lines[p->n_lines].group = g_strdup(group);
            p->lines[p->n_lines].key = NULL;
        } else {
            char *eq = strchr(t, '=');

            if (eq != NULL)
                *eq = '\0';
            p->lines[p->n_lines].group = g_strdup(group != NULL ? group : "");
            p->lines[p->n_lines].key = g_strdup(trim(t));
        }
        p->lines[p->n_lines].line = no;
        p->n_lines++;
    }
    g_free(copy);
}

static int
line_of(const struct parse *p, const char *group, const char *key)
{
    for (size_t i = 0; i < p->n_lines; i++) {
        if (strcmp(p->lines[i].group, group) != 0)
            continue;
        if ((key == NULL && p->lines[i].key == NULL)
                || (key != NULL && p->lines[i].key != NULL && strcmp(p->lines[i].key, key) == 0))
            return p->lines[i].line;
    }
    return 0;
}

static int __attribute__((format(printf, 4, 5)))
fail(struct parse *p, const char *group, const char *key, const char *fmt, ...)
{
    va_list ap;
    char msg[512];

    if (p->err != NULL)
        return CMPR_ERR_CONFIG;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->err = g_strdup_printf("%s:%d: %s", p->path, group != NULL ? line_of(p, group, key) : 0, msg);
    return CMPR_ERR_CONFIG;
}

/* ---------------- values ---------------- */

static char *
resolve_path(const struct parse *p, const char *v)
{
    if (v[0] == '/' || p->dir == NULL)
        return strdup(v);
    return g_build_filename(p->dir, v, NULL);
}

/* pass:TEXT, env:VAR or file:PATH (first line; relative to dir) -> *s_r
 * (g_free, wipe first); 0, or -1 with why[] */
static int
secret_value(const char *dir, const char *v, char **s_r, char *why, size_t wlen)
{
    char *s = NULL;
    size_t n;

    if (strncmp(v, "pass:", 5) == 0) {
        s = g_strdup(v + 5);
    } else if (strncmp(v, "env:", 4) == 0) {
        const char *e = getenv(v + 4);

        if (e == NULL) {
            snprintf(why, wlen, "environment variable %s is not set", v + 4);
            return -1;
        }
        s = g_strdup(e);
    } else if (strncmp(v, "file:", 5) == 0) {
        char *path = v[5] == '/' || dir == NULL ? g_strdup(v + 5) : g_build_filename(dir, v + 5, NULL);
        char *contents = NULL;
        gsize len = 0;

        if (!g_file_get_contents(path, &contents, &len, NULL)) {
            snprintf(why, wlen, "cannot read secret file %s", path);
            g_free(path);
            return -1;
        }
        g_free(path);
        contents[strcspn(contents, "\r\n")] = '\0';
        s = contents;
    } else {
        snprintf(why, wlen, "secret must be pass:TEXT, env:VAR or file:PATH");
        return -1;
    }
    n = strlen(s);
    if (n == 0 || n > CMPR_MAX_SECRET_LEN) {
        OPENSSL_cleanse(s, n);
        g_free(s);
        snprintf(why, wlen, "secret must be 1..%u bytes", CMPR_MAX_SECRET_LEN);
        return -1;
    }
    *s_r = s;
    return 0;
}

static int
read_secret(struct parse *p, const char *group, const char *key, const char *v,
            unsigned char **sec_r, size_t *len_r)
{
    char *s, why[300];

    if (secret_value(p->dir, v, &s, why, sizeof(why)) != 0)
        return fail(p, group, key, "%s", why);
    *sec_r = (unsigned char *)s;
    *len_r = strlen(s);
    return CMPR_OK;
}

static int
set_directive(struct parse *p, GKeyFile *kf, const char *group, const char *key,
              const struct directive *dirs, void *obj)
{
    const struct directive *d;
    char *v = NULL;
    int r = CMPR_OK;

    for (d = dirs; d->key != NULL; d++)
        if (strcmp(d->key, key) == 0)
            break;
    if (d->key == NULL)
        return fail(p, group, key, "unknown directive '%s' in [%s]", key, group);
    if ((v = g_key_file_get_string(kf, group, key, NULL)) == NULL)
        return fail(p, group, key, "cannot read '%s'", key);
    g_strstrip(v);
    switch (d->type) {
    case D_STR:
        free(*(char **)((char *)obj + d->off));
        *(char **)((char *)obj + d->off) = strdup(v);
        break;
    case D_PATH:
        free(*(char **)((char *)obj + d->off));
        *(char **)((char *)obj + d->off) = resolve_path(p, v);
        break;
    case D_LONG: {
        char *end;
        long n;

        errno = 0;
        n = strtol(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || n < d->min || n > d->max)
            r = fail(p, group, key, "'%s' must be a number from %ld to %ld, not '%s'",
                     key, d->min, d->max, v);
        else
            *(long *)((char *)obj + d->off) = n;
        break;
    }
    case D_BOOL:
        if (cmpr_conf_parse_bool(v, (int *)((char *)obj + d->off)) != 0)
            r = fail(p, group, key, "'%s' must be yes or no, not '%s'", key, v);
        break;
    case D_CHOICE: {
        int i = 0;

        while (d->names[i] != NULL && strcmp(d->names[i], v) != 0)
            i++;
        if (d->names[i] == NULL) {
            char all[256] = "";

            for (int j = 0; d->names[j] != NULL; j++)
                snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", j ? ", " : "", d->names[j]);
            r = fail(p, group, key, "'%s' must be one of %s, not '%s'", key, all, v);
        } else {
            *(int *)((char *)obj + d->off) = i;
        }
        break;
    }
    case D_LIST: {
        char **parts = g_strsplit_set(v, ",;", -1), **out;
        size_t n = 0;

        out = calloc(g_strv_length(parts) + 1, sizeof(char *));
        for (char **q = parts; *q != NULL; q++) {
            char *t = trim(*q);

            if (*t != '\0')
                out[n++] = strdup(t);
        }
        g_strfreev(parts);
        g_strfreev(*(char ***)((char *)obj + d->off));
        *(char ***)((char *)obj + d->off) = out;
        break;
    }
    case D_SECRET: {
        unsigned char **sec = (unsigned char **)((char *)obj + d->off);
        size_t *len = (size_t *)((char *)obj + d->off + sizeof(unsigned char *));

        if (*sec != NULL) {
            OPENSSL_cleanse(*sec, *len);
            g_free(*sec);
            *sec = NULL;
        }
        r = read_secret(p, group, key, v, sec, len);
        break;
    }
    }
    OPENSSL_cleanse(v, strlen(v));
    g_free(v);
    return r;
}

static int
valid_name_n(const char *n, size_t len)
{
    if (len == 0 || len > 100)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)n[i]) && n[i] != '-' && n[i] != '_' && n[i] != '.')
            return 0;
    return 1;
}

static int
valid_name(const char *n)
{
    return valid_name_n(n, strlen(n));
}

static int
parse_group(struct parse *p, GKeyFile *kf, const char *group, const struct directive *dirs,
            void *obj)
{
    gchar **keys = g_key_file_get_keys(kf, group, NULL, NULL);
    int r = CMPR_OK;

    for (gchar **k = keys; k != NULL && *k != NULL && r == CMPR_OK; k++)
        r = set_directive(p, kf, group, *k, dirs, obj);
    g_strfreev(keys);
    return r;
}

/* ---------------- checks ---------------- */

static int
check_key_types(struct parse *p, const char *group, const char *key, char **types)
{
    for (char **t = types; t != NULL && *t != NULL; t++) {
        const char *s = *t;

        if (strcmp(s, "ed25519") == 0 || strcmp(s, "ed448") == 0)
            continue;
        if (strncmp(s, "ec:", 3) == 0 && OBJ_txt2nid(s + 3) != NID_undef)
            continue;
        if (strncmp(s, "ec:", 3) == 0 && (strcmp(s + 3, "P-256") == 0
                || strcmp(s + 3, "P-384") == 0 || strcmp(s + 3, "P-521") == 0))
            continue;
        if (strncmp(s, "rsa:", 4) == 0) {
            long lo, hi;
            char *end;

            lo = strtol(s + 4, &end, 10);
            hi = lo;
            if (*end == '-')
                hi = strtol(end + 1, &end, 10);
            if (*end == '\0' && lo >= 1024 && hi >= lo && hi <= 16384)
                continue;
        }
        return fail(p, group, key, "unknown key type '%s' (ec:CURVE, rsa:MIN[-MAX], "
                    "ed25519, ed448)", s);
    }
    return CMPR_OK;
}

/* every word of v among names */
static int
check_names(struct parse *p, const char *group, const char *key, char **v, const char *const *names)
{
    for (; v != NULL && *v != NULL; v++)
        if (!cmpr_strv_contains((char *const *)names, *v)) {
            char all[512] = "";

            for (const char *const *n = names; *n != NULL; n++)
                snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", all[0] ? ", " : "", *n);
            return fail(p, group, key, "unknown value '%s' (one of %s)", *v, all);
        }
    return CMPR_OK;
}

/* every word of v an OID or a short name OpenSSL knows */
static int
check_oids(struct parse *p, const char *group, const char *key, char **v)
{
    for (; v != NULL && *v != NULL; v++) {
        ASN1_OBJECT *o = OBJ_txt2obj(*v, 0);

        if (o == NULL) {
            ERR_clear_error();
            return fail(p, group, key, "'%s' is neither a known name nor a dotted OID", *v);
        }
        ASN1_OBJECT_free(o);
    }
    return CMPR_OK;
}

static int
check_profile(struct parse *p, const char *group, struct cmpr_conf_profile *pr)
{
    int r;

    if ((r = check_names(p, group, "key_usage", pr->key_usage, cmpr_key_usage_names)) != CMPR_OK
            || (r = check_names(p, group, "allowed_key_usage", pr->allowed_key_usage, cmpr_key_usage_names)) != CMPR_OK
            || (r = check_names(p, group, "san_types", pr->san_types, cmpr_san_type_names)) != CMPR_OK
            || (r = check_oids(p, group, "extended_key_usage", pr->extended_key_usage)) != CMPR_OK
            || (r = check_oids(p, group, "allowed_extended_key_usage", pr->allowed_extended_key_usage)) != CMPR_OK
            || (r = check_oids(p, group, "certificate_policies", pr->certificate_policies)) != CMPR_OK
            || (r = check_oids(p, group, "allowed_certificate_policies", pr->allowed_certificate_policies)) != CMPR_OK
            || (r = check_key_types(p, group, "key_types", pr->key_types)) != CMPR_OK)
        return r;
    if (pr->path_len >= 0 && !pr->ca)
        return fail(p, group, "path_len", "path_len needs ca = yes");
    if (pr->name_constraints != NULL) {
        char buf[1024];
        X509_EXTENSION *ext;

        if (!pr->ca)
            return fail(p, group, "name_constraints", "name_constraints needs ca = yes");
        snprintf(buf, sizeof(buf), "critical,%s", pr->name_constraints);
        if ((ext = X509V3_EXT_conf_nid(NULL, NULL, NID_name_constraints, buf)) == NULL) {
            ERR_clear_error();
            return fail(p, group, "name_constraints", "'%s' is not a name constraint (for example "
                        "permitted;DNS:.example.org, excluded;IP:10.0.0.0/255.0.0.0)", pr->name_constraints);
        }
        X509_EXTENSION_free(ext);
    }
    if (pr->central_key_type != NULL) {
        char *one[] = { pr->central_key_type, NULL };

        if ((r = check_key_types(p, group, "central_key_type", one)) != CMPR_OK)
            return r;
        if (strncmp(pr->central_key_type, "rsa:", 4) == 0 && strchr(pr->central_key_type, '-') != NULL)
            return fail(p, group, "central_key_type", "central_key_type names one key type (rsa:3072, not a range)");
    }
    if ((pr->policy_cps != NULL || pr->policy_notice != NULL || pr->policies_critical)
            && pr->certificate_policies == NULL && pr->allowed_certificate_policies == NULL)
        return fail(p, group, NULL, "[%s]: policy_cps, policy_notice and policies_critical need "
                    "certificate_policies or allowed_certificate_policies", group);
    return CMPR_OK;
}

/* ---------------- load ---------------- */

int
cmpr_strv_contains(char *const *v, const char *s)
{
    for (; v != NULL && *v != NULL; v++)
        if (strcmp(*v, s) == 0)
            return 1;
    return 0;
}

static void
default_profile(struct cmpr_conf_profile *pr, const char *name)
{
    memset(pr, 0, sizeof(*pr));
    pr->name = strdup(name);
    pr->validity_days = 365;
    pr->path_len = -1;
    pr->copy_san = 1;
}

/* [ca NAME] */
static int
parse_ca(struct parse *p, GKeyFile *kf, const char *group, const char *name, struct cmpr_conf *c)
{
    struct cmpr_conf_ca *ca;
    int r;

    if (cmpr_conf_ca(c, name) != NULL)
        return fail(p, group, NULL, "[%s] defined twice", group);
    if (cmpr_array_grow(&c->cas, &c->cap_cas, c->n_cas + 1, sizeof(*c->cas), MAX_GROUPS) != CMPR_OK)
        return fail(p, group, NULL, "too many groups");
    ca = &c->cas[c->n_cas++];
    memset(ca, 0, sizeof(*ca));
    ca->name = strdup(name);
    ca->mac_responses = 1;
    ca->crl_days = 7;
    if ((r = parse_group(p, kf, group, ca_dirs, ca)) != CMPR_OK)
        return r;
    if (ca->key == NULL || ca->cert == NULL)
        return fail(p, group, NULL, "[%s] needs key and cert", group);
    if ((ca->signer_cert == NULL) != (ca->signer_key == NULL))
        return fail(p, group, NULL, "[%s]: signer_cert and signer_key go together", group);
    return CMPR_OK;
}

/* [profile NAME] */
static int
parse_profile(struct parse *p, GKeyFile *kf, const char *group, const char *name, struct cmpr_conf *c)
{
    struct cmpr_conf_profile *pr;
    int r;

    if (cmpr_array_grow(&c->profiles, &c->cap_profiles, c->n_profiles + 1, sizeof(*c->profiles),
                        MAX_GROUPS) != CMPR_OK)
        return fail(p, group, NULL, "too many groups");
    pr = &c->profiles[c->n_profiles++];
    default_profile(pr, name);
    if ((r = parse_group(p, kf, group, profile_dirs, pr)) != CMPR_OK)
        return r;
    return check_profile(p, group, pr);
}

/* [client NAME] */
static int
parse_client(struct parse *p, GKeyFile *kf, const char *group, const char *name, struct cmpr_conf *c)
{
    struct cmpr_conf_client *cl;
    int r;

    if (cmpr_array_grow(&c->clients, &c->cap_clients, c->n_clients + 1, sizeof(*c->clients),
                        MAX_GROUPS) != CMPR_OK)
        return fail(p, group, NULL, "too many groups");
    cl = &c->clients[c->n_clients++];
    memset(cl, 0, sizeof(*cl));
    cl->name = strdup(name);
    cl->enroll = 1;
    cl->renew = CMPR_RIGHT_OWN;
    cl->revoke = -1;
    if ((r = parse_group(p, kf, group, client_dirs, cl)) != CMPR_OK)
        return r;

    if ((cl->reference == NULL) != (cl->secret == NULL))
        return fail(p, group, NULL, "[%s]: reference and secret go together", group);
    if (cl->reference == NULL && cl->cert_subject == NULL)
        return fail(p, group, NULL, "[%s] needs reference+secret or cert_subject", group);
    return CMPR_OK;
}

/* Any other group ([route NAME] and the media's groups): kept as key/value
 * pairs for whoever reads it; cmprouterd refuses group types no transport
 * claims. */
static int
keep_group(struct parse *p, GKeyFile *kf, const char *group, size_t tlen, const char *name,
           struct cmpr_conf *c)
{
    struct cmpr_conf_group *tg;
    gchar **keys;
    size_t cap = 0;
    int r = CMPR_OK;

    if (cmpr_array_grow(&c->groups, &c->cap_groups, c->n_groups + 1, sizeof(*c->groups),
                        MAX_GROUPS) != CMPR_OK)
        return fail(p, group, NULL, "too many groups");
    tg = &c->groups[c->n_groups++];
    memset(tg, 0, sizeof(*tg));
    tg->type = strndup(group, tlen);
    tg->name = strdup(name);
    tg->line = line_of(p, group, NULL);
    keys = g_key_file_get_keys(kf, group, NULL, NULL);
    for (gchar **k = keys; k != NULL && *k != NULL && r == CMPR_OK; k++) {
        char *v = g_key_file_get_string(kf, group, *k, NULL);
        size_t c1 = cap, c2 = cap;

        if (cmpr_array_grow(&tg->keys, &c1, tg->n + 1, sizeof(*tg->keys), MAX_KEYS) != CMPR_OK
                || cmpr_array_grow(&tg->values, &c2, tg->n + 1, sizeof(*tg->values), MAX_KEYS) != CMPR_OK
                || cmpr_array_grow(&tg->lines, &cap, tg->n + 1, sizeof(*tg->lines), MAX_KEYS) != CMPR_OK) {
            r = fail(p, group, NULL, "[%s]: too many keys", group);
        } else {
            tg->keys[tg->n] = strdup(*k);
            tg->values[tg->n] = strdup(v != NULL ? g_strstrip(v) : "");
            tg->lines[tg->n] = line_of(p, group, *k);
            tg->n++;
        }
        g_free(v);
    }
    g_strfreev(keys);
    return r;
}

static int
parse_one_group(struct parse *p, GKeyFile *kf, const char *group, struct cmpr_conf *c)
{
    const char *sp = strchr(group, ' ');
    const char *name = sp != NULL ? sp + 1 : group;
    size_t tlen = sp != NULL ? (size_t)(sp - group) : strlen(group);

    if (strcmp(group, "router") == 0)
        return parse_group(p, kf, group, router_dirs, c);
    if (!valid_name(name) || (sp != NULL && !valid_name_n(group, tlen)))
        return fail(p, group, NULL, "unknown group [%s] (expected [router], [ca NAME], [profile NAME], "
                    "[client NAME], [route NAME] or a transport's group; NAME is letters, digits, "
                    ". _ -)", group);
    if (sp != NULL && tlen == 2 && strncmp(group, "ca", 2) == 0)
        return parse_ca(p, kf, group, name, c);
    if (sp != NULL && tlen == 7 && strncmp(group, "profile", 7) == 0)
        return parse_profile(p, kf, group, name, c);
    if (sp != NULL && tlen == 6 && strncmp(group, "client", 6) == 0)
        return parse_client(p, kf, group, name, c);
    if (sp == NULL && (strcmp(group, "ca") == 0 || strcmp(group, "profile") == 0
                       || strcmp(group, "client") == 0 || strcmp(group, "route") == 0))
        return fail(p, group, NULL, "[%s] needs a name: [%s NAME]", group, group);
    return keep_group(p, kf, group, tlen, name, c);
}

/* pbm_defaults / pbmac1_defaults = DIGEST, MAC, ITERATIONS */
static int
check_mac_defaults(struct parse *p, struct cmpr_conf *c, int i, const char *key, char **v)
{
    static const char *const digests[] = { "sha256", "sha384", "sha512", NULL };
    static const int digest_nids[] = { NID_sha256, NID_sha384, NID_sha512 };
    static const char *const macs[] = { "hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512", NULL };
    static const int mac_nids[] = { NID_hmac_sha1, NID_hmacWithSHA256, NID_hmacWithSHA384, NID_hmacWithSHA512 };
    char *end;
    long n;
    int d = 0, m = 0;

    if (v == NULL)
        return CMPR_OK;
    if (v[0] == NULL || v[1] == NULL || v[2] == NULL || v[3] != NULL)
        return fail(p, "router", key, "'%s' is DIGEST, MAC, ITERATIONS (for example sha256, hmac-sha256, 10000)",
                    key);
    while (digests[d] != NULL && strcmp(digests[d], v[0]) != 0)
        d++;
    while (macs[m] != NULL && strcmp(macs[m], v[1]) != 0)
        m++;
    n = strtol(v[2], &end, 10);
    if (digests[d] == NULL)
        return fail(p, "router", key, "digest '%s' is not sha256, sha384 or sha512", v[0]);
    if (macs[m] == NULL)
        return fail(p, "router", key, "MAC '%s' is not hmac-sha1, hmac-sha256, hmac-sha384 or hmac-sha512", v[1]);
    if (*end != '\0' || n < 100 || n > c->max_mac_iterations)
        return fail(p, "router", key, "iterations '%s' must be from 100 to max_mac_iterations (%ld)", v[2],
                    c->max_mac_iterations);
    c->mac_defaults[i].owf_nid = digest_nids[d];
    c->mac_defaults[i].mac_nid = mac_nids[m];
    c->mac_defaults[i].iter = n;
    return CMPR_OK;
}

/* what single directives cannot check: values and cross references */
static int
check_conf(struct parse *p, struct cmpr_conf *c)
{
    size_t n_routes = 0;
    int r;

    if ((r = check_mac_defaults(p, c, 0, "pbm_defaults", c->pbm_defaults)) != CMPR_OK
            || (r = check_mac_defaults(p, c, 1, "pbmac1_defaults", c->pbmac1_defaults)) != CMPR_OK)
        return r;

    if (c->log != NULL && strcmp(c->log, "stderr") != 0 && strcmp(c->log, "syslog") != 0) {
        return fail(p, "router", "log", "log is stderr or syslog, not '%s'", c->log);
    }
    if (c->log_level != NULL && strcmp(c->log_level, "error") != 0 && strcmp(c->log_level, "warning") != 0
            && strcmp(c->log_level, "info") != 0 && strcmp(c->log_level, "debug") != 0) {
        return fail(p, "router", "log_level", "log_level is error, warning, info or debug");
    }
    for (size_t i = 0; i < c->n_groups && n_routes == 0; i++)
        n_routes += strcmp(c->groups[i].type, "route") == 0;
    if (c->n_cas == 0 && n_routes == 0) {
        return fail(p, NULL, NULL, "no [ca NAME] and no [route NAME]: a CA, or routes to one, is needed");
    }
    /* cross references */
    for (size_t i = 0; i < c->n_clients; i++) {
        char g[160];

        snprintf(g, sizeof(g), "client %s", c->clients[i].name);
        for (char **q = c->clients[i].profiles; q != NULL && *q != NULL; q++)
            if (cmpr_conf_profile(c, *q) == NULL) {
                return fail(p, g, "profiles", "no [profile %s]", *q);
            }
        for (size_t j = 0; j < i; j++)
            if (c->clients[i].reference != NULL && c->clients[j].reference != NULL
                    && strcmp(c->clients[i].reference, c->clients[j].reference) == 0) {
                return fail(p, g, "reference", "reference '%s' is also used by [client %s]",
                     c->clients[i].reference, c->clients[j].name);
            }
    }
    for (size_t i = 0; i < c->n_cas; i++) {
        char g[160];

        snprintf(g, sizeof(g), "ca %s", c->cas[i].name);
        if (c->cas[i].default_profile != NULL && cmpr_conf_profile(c, c->cas[i].default_profile) == NULL) {
            return fail(p, g, "default_profile", "no [profile %s]", c->cas[i].default_profile);
        }
        for (char **q = c->cas[i].profiles; q != NULL && *q != NULL; q++)
            if (cmpr_conf_profile(c, *q) == NULL) {
                return fail(p, g, "profiles", "no [profile %s]", *q);
            }
    }
    return CMPR_OK;
}

/* which lines of text give a secret as pass: (in the file) or file: */
static void
note_secrets(struct cmpr_conf *c, const char *text, const char *dir)
{
    GPtrArray *files = g_ptr_array_new();

    for (const char *l = text; l != NULL && *l != '\0';) {
        const char *nl = strchr(l, '\n'), *eq = memchr(l, '=', nl != NULL ? (size_t)(nl - l) : strlen(l));
        size_t n;

        if (eq != NULL && *l != '#' && *l != ';') {
            for (eq++; *eq == ' ' || *eq == '\t'; eq++)
                ;
            n = (nl != NULL ? (size_t)(nl - eq) : strlen(eq));
            while (n > 0 && (eq[n - 1] == ' ' || eq[n - 1] == '\t' || eq[n - 1] == '\r'))
                n--;
            if (n > 5 && strncmp(eq, "pass:", 5) == 0)
                c->inline_secrets = 1;
            else if (n > 5 && strncmp(eq, "file:", 5) == 0) {
                char *v = g_strndup(eq + 5, n - 5);

                g_ptr_array_add(files, v[0] == '/' || dir == NULL ? strdup(v) : g_build_filename(dir, v, NULL));
                g_free(v);
            }
        }
        l = nl != NULL ? nl + 1 : NULL;
    }
    g_ptr_array_add(files, NULL);
    c->secret_files = (char **)g_ptr_array_free(files, FALSE);
}

/* path may hold a secret: nobody but its owner (and its group, reading,
 * when it is gid) may touch it. 0, or -1 with why[]. A file that cannot
 * be read is left to whoever reads it to report. */
static int
secret_mode_ok(const char *what, const char *path, long gid, char *why, size_t wlen)
{
    struct stat st;
    unsigned m;

    if (path == NULL || stat(path, &st) != 0)
        return 0;
    m = (unsigned)st.st_mode & 07777;
    if (m & 0007) {
        snprintf(why, wlen, "%s %s is open to others (mode %04o): chmod o-rwx %s", what, path, m, path);
        return -1;
    }
    if ((m & 0070) && (gid < 0 || (long)st.st_gid != gid || (m & 0030))) {
        snprintf(why, wlen, "%s %s is open to its group (mode %04o): chmod 600 %s, or let one group "
                 "read it (chmod 640, chgrp) and name that group in [router] secret_group", what, path,
                 m, path);
        return -1;
    }
    return 0;
}

/* the private key directives of the groups kept for their owners */
static const char *const key_directives[] = { "key", "signer_key", "encryption_key", "ra_key", "tls_key", NULL };

int
cmpr_conf_check_secrets(const struct cmpr_conf *conf, char **err_r)
{
    char why[1200];
    long gid = -1;
    int bad = 0;

    *err_r = NULL;
    if (conf->secret_group != NULL) {
        struct group *gr = getgrnam(conf->secret_group);

        if (gr == NULL) {
            *err_r = g_strdup_printf("%s: [router] secret_group: no group %s", conf->path, conf->secret_group);
            return CMPR_ERR_CONFIG;
        }
        gid = (long)gr->gr_gid;
    }
    if (conf->inline_secrets)
        bad = secret_mode_ok("the configuration, which holds a pass: secret,", conf->path, gid, why,
                             sizeof(why));
    for (char **f = conf->secret_files; !bad && f != NULL && *f != NULL; f++)
        bad = secret_mode_ok("the secret file", *f, gid, why, sizeof(why));
    for (size_t i = 0; !bad && i < conf->n_cas; i++)
        bad = secret_mode_ok("the CA key", conf->cas[i].key, gid, why, sizeof(why))
              || secret_mode_ok("the CA's signer key", conf->cas[i].signer_key, gid, why, sizeof(why))
              || secret_mode_ok("the CA's encryption key", conf->cas[i].encryption_key, gid, why, sizeof(why));
    for (size_t i = 0; !bad && i < conf->n_groups; i++)
        for (const char *const *k = key_directives; !bad && *k != NULL; k++) {
            char *path = cmpr_conf_group_path(&conf->groups[i], *k, NULL);

            bad = secret_mode_ok("the private key", path, gid, why, sizeof(why));
            free(path);
        }
    if (bad) {
        *err_r = g_strdup_printf("%s: refused: %s", conf->path, why);
        return CMPR_ERR_CONFIG;
    }
    return CMPR_OK;
}

int
cmpr_conf_load(const char *path, struct cmpr_conf **conf_r, char **err_r)
{
    struct parse p;
    struct cmpr_conf *c = NULL;
    GKeyFile *kf = g_key_file_new();
    GError *gerr = NULL;
    gchar *text = NULL, **groups = NULL;
    gsize len = 0;
    int r = CMPR_ERR_CONFIG;

    memset(&p, 0, sizeof(p));
    p.path = path;
    *conf_r = NULL;
    *err_r = NULL;
    if (!g_file_get_contents(path, &text, &len, &gerr)) {
        p.err = g_strdup_printf("%s: %s", path, gerr->message);
        goto out;
    }
    if (len > 1024 * 1024) {
        p.err = g_strdup_printf("%s: larger than 1 MiB", path);
        goto out;
    }
    index_lines(&p, text);
    if (!g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &gerr)) {
        p.err = g_strdup_printf("%s: %s", path, gerr->message);
        goto out;
    }
    p.dir = g_path_get_dirname(path);
    c = calloc(1, sizeof(*c));
    c->path = strdup(path);
    c->max_mac_iterations = CMPR_DEFAULT_MAX_MAC_ITER;
    c->message_time_skew = 600;
    c->nonce_window = 3600;
    c->confirm_wait = 300;
    c->check_after = 60;
    c->implicit_confirm = 1;
    c->lease = 60;

    groups = g_key_file_get_groups(kf, NULL);
    for (gchar **g = groups; *g != NULL; g++)
        if ((r = parse_one_group(&p, kf, *g, c)) != CMPR_OK)
            goto out;
    if ((r = check_conf(&p, c)) != CMPR_OK)
        goto out;
    if (c->data_dir == NULL)
        c->data_dir = strdup(p.dir);
    if (c->node == NULL) {
        char host[256] = "";

        (void)gethostname(host, sizeof(host) - 1);
        c->node = strdup(host[0] != '\0' ? host : "node");
    }
    if (c->store == NULL) {
        char *db = g_build_filename(c->data_dir, "cmprouter.db", NULL);

        c->store = g_strdup_printf("sqlite:%s", db);
        g_free(db);
    }
    for (size_t i = 0; i < c->n_groups; i++)
        c->groups[i].path = c->path;
    note_secrets(c, text, p.dir);
    r = CMPR_OK;
    *conf_r = c;
    c = NULL;
 out:
    if (p.err != NULL && r == CMPR_OK) {
        /* a failed check after a successful directive */
        r = CMPR_ERR_CONFIG;
        cmpr_conf_free(*conf_r);
        *conf_r = NULL;
    }
    if (r != CMPR_OK && p.err == NULL)
        p.err = g_strdup_printf("%s: invalid configuration", path);
    if (r != CMPR_OK)
        *err_r = strdup(p.err);
    cmpr_conf_free(c);
    g_strfreev(groups);
    g_free(text);
    g_free(p.err);
    g_free(p.dir);
    for (size_t i = 0; i < p.n_lines; i++) {
        g_free(p.lines[i].group);
        g_free(p.lines[i].key);
    }
    g_free(p.lines);
    if (gerr != NULL)
        g_error_free(gerr);
    g_key_file_free(kf);
    return r;
}

void
cmpr_conf_free(struct cmpr_conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_cas; i++) {
        struct cmpr_conf_ca *ca = &c->cas[i];

        free(ca->name); free(ca->key); free(ca->cert); free(ca->chain);
        free(ca->signer_cert); free(ca->signer_key); free(ca->default_profile);
        g_strfreev(ca->profiles); free(ca->crl_file);
        free(ca->encryption_cert); free(ca->encryption_key);
    }
    for (size_t i = 0; i < c->n_profiles; i++) {
        struct cmpr_conf_profile *pr = &c->profiles[i];

        free(pr->name); g_strfreev(pr->key_usage); g_strfreev(pr->extended_key_usage);
        g_strfreev(pr->allowed_key_usage); g_strfreev(pr->allowed_extended_key_usage);
        g_strfreev(pr->certificate_policies); g_strfreev(pr->allowed_certificate_policies);
        free(pr->policy_cps); free(pr->policy_notice); g_strfreev(pr->san_types);
        free(pr->name_constraints); free(pr->central_key_type);
        g_strfreev(pr->key_types); free(pr->subject); free(pr->crl_distribution_point);
        free(pr->aia_ca_issuers); free(pr->aia_ocsp);
    }
    for (size_t i = 0; i < c->n_clients; i++) {
        struct cmpr_conf_client *cl = &c->clients[i];

        free(cl->name); free(cl->reference);
        if (cl->secret != NULL) {
            OPENSSL_cleanse(cl->secret, cl->secret_len);
            g_free(cl->secret);
        }
        g_strfreev(cl->profiles); free(cl->subject); free(cl->cert_subject); free(cl->tls_subject);
    }
    for (size_t i = 0; i < c->n_groups; i++) {
        struct cmpr_conf_group *g = &c->groups[i];

        for (size_t j = 0; j < g->n; j++) {
            free(g->keys[j]);
            free(g->values[j]);
        }
        free(g->keys); free(g->values); free(g->lines); free(g->type); free(g->name);
    }
    free(c->groups);
    free(c->cas);
    free(c->profiles);
    free(c->clients);
    free(c->path); free(c->data_dir); free(c->store); free(c->trusted); free(c->node);
    free(c->untrusted); free(c->log_level); free(c->log); free(c->user);
    free(c->secret_group); g_strfreev(c->secret_files);
    g_strfreev(c->pbm_defaults); g_strfreev(c->pbmac1_defaults);
    free(c);
}

const struct cmpr_conf_profile *
cmpr_conf_profile(const struct cmpr_conf *c, const char *name)
{
    for (size_t i = 0; c != NULL && name != NULL && i < c->n_profiles; i++)
        if (strcmp(c->profiles[i].name, name) == 0)
            return &c->profiles[i];
    return NULL;
}

const struct cmpr_conf_client *
cmpr_conf_client_by_ref(const struct cmpr_conf *c, const unsigned char *ref, size_t len)
{
    for (size_t i = 0; c != NULL && ref != NULL && i < c->n_clients; i++) {
        const char *r = c->clients[i].reference;

        if (r != NULL && strlen(r) == len && memcmp(r, ref, len) == 0)
            return &c->clients[i];
    }
    return NULL;
}

const struct cmpr_conf_ca *
cmpr_conf_ca(const struct cmpr_conf *c, const char *name)
{
    if (c == NULL || c->n_cas == 0)
        return NULL;
    if (name == NULL)
        return &c->cas[0];
    for (size_t i = 0; i < c->n_cas; i++)
        if (strcmp(c->cas[i].name, name) == 0)
            return &c->cas[i];
    return NULL;
}

/* ---------------- transport groups ---------------- */

const struct cmpr_conf_group *
cmpr_conf_group(const struct cmpr_conf *c, const char *type, const char *name)
{
    for (size_t i = 0; c != NULL && i < c->n_groups; i++)
        if (strcmp(c->groups[i].type, type) == 0 && strcmp(c->groups[i].name, name) == 0)
            return &c->groups[i];
    return NULL;
}

const char *
cmpr_conf_group_get(const struct cmpr_conf_group *g, const char *key)
{
    for (size_t i = 0; g != NULL && i < g->n; i++)
        if (strcmp(g->keys[i], key) == 0)
            return g->values[i];
    return NULL;
}

char *
cmpr_conf_group_error(const struct cmpr_conf_group *g, const char *key, const char *fmt, ...)
{
    char msg[512], *out;
    int line = g->line;
    size_t n;
    va_list ap;

    for (size_t i = 0; key != NULL && i < g->n; i++)
        if (strcmp(g->keys[i], key) == 0)
            line = g->lines[i];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* a group made from command-line options has no file */
    if (g->path == NULL)
        return strdup(msg);
    n = strlen(msg) + strlen(g->path) + 32;
    if ((out = malloc(n)) != NULL)
        snprintf(out, n, "%s:%d: %s", g->path, line, msg);
    return out;
}

int
cmpr_conf_group_check(const struct cmpr_conf_group *g, const char *const *allowed, char **err_r)
{
    for (size_t i = 0; i < g->n; i++)
        if (!cmpr_strv_contains((char *const *)allowed, g->keys[i])) {
            *err_r = cmpr_conf_group_error(g, g->keys[i], "unknown directive '%s' in [%s %s]",
                                           g->keys[i], g->type, g->name);
            return CMPR_ERR_CONFIG;
        }
    return CMPR_OK;
}

int
cmpr_conf_parse_bool(const char *v, int *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (g_ascii_strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (g_ascii_strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

int
cmpr_conf_group_bool(const struct cmpr_conf_group *g, const char *key, int dflt, int *out,
                     char **err_r)
{
    const char *v = cmpr_conf_group_get(g, key);

    if (v == NULL) {
        *out = dflt;
        return CMPR_OK;
    }
    if (cmpr_conf_parse_bool(v, out) != 0) {
        *err_r = cmpr_conf_group_error(g, key, "'%s' must be yes or no, not '%s'", key, v);
        return CMPR_ERR_CONFIG;
    }
    return CMPR_OK;
}

int
cmpr_conf_group_choice(const struct cmpr_conf_group *g, const char *key, const char *const *names,
                       int dflt, int *out, char **err_r)
{
    const char *v = cmpr_conf_group_get(g, key);
    char list[256] = "";

    if (v == NULL) {
        *out = dflt;
        return CMPR_OK;
    }
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return CMPR_OK;
        }
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                 i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ", names[i]);
    }
    *err_r = cmpr_conf_group_error(g, key, "'%s' is %s, not '%s'", key, list, v);
    return CMPR_ERR_CONFIG;
}

int
cmpr_conf_group_long(const struct cmpr_conf_group *g, const char *key, long dflt, long min,
                     long max, long *out, char **err_r)
{
    const char *v = cmpr_conf_group_get(g, key);
    char *end;
    long n, mult = 1;

    if (v == NULL) {
        *out = dflt;
        return CMPR_OK;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (*end == 'k' || *end == 'K')
        mult = 1024, end++;
    else if (*end == 'M')
        mult = 1024 * 1024, end++;
    else if (*end == 's')
        end++;
    else if (*end == 'm')
        mult = 60, end++;
    else if (*end == 'h')
        mult = 3600, end++;
    if (errno != 0 || end == v || *end != '\0' || n < 0 || n > max / mult || n * mult < min) {
        *err_r = cmpr_conf_group_error(g, key, "'%s' must be a number from %ld to %ld, not '%s'",
                                       key, min, max, v);
        return CMPR_ERR_CONFIG;
    }
    *out = n * mult;
    return CMPR_OK;
}

char *
cmpr_conf_group_path(const struct cmpr_conf_group *g, const char *key, const char *dflt)
{
    const char *v = cmpr_conf_group_get(g, key);
    char *dir, *out;
    size_t n;

    if (v == NULL)
        v = dflt;
    if (v == NULL)
        return NULL;
    /* relative to the configuration file, like every other path (a group
     * from the command line: to the working directory) */
    if (v[0] == '/' || g->path == NULL)
        return strdup(v);
    dir = strdup(g->path);
    if (dir == NULL)
        return NULL;
    n = strlen(dir);
    while (n > 0 && dir[n - 1] != '/')
        dir[--n] = '\0';
    if ((out = malloc(n + strlen(v) + 3)) != NULL)
        snprintf(out, n + strlen(v) + 3, "%s%s", n > 0 ? dir : "./", v);
    free(dir);
    return out;
}

char *
cmpr_conf_group_secret(const struct cmpr_conf_group *g, const char *key, char **err_r)
{
    const char *v = cmpr_conf_group_get(g, key);
    char *dir, *s, why[300];

    if (v == NULL)
        return NULL;
    dir = g->path != NULL ? g_path_get_dirname(g->path) : NULL;
    if (secret_value(dir, v, &s, why, sizeof(why)) != 0) {
        *err_r = cmpr_conf_group_error(g, key, "%s", why);
        s = NULL;
    }
    g_free(dir);
    return s;
}
