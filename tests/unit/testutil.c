#include "testutil.h"
#include "core/envelope.h"
#include "base/err.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <openssl/cms.h>
#include <openssl/ec.h>

#include "codec/asn1.h"
#include "codec/msg.h"
#include <openssl/x509v3.h>

#ifndef CMPR_SRCDIR
#define CMPR_SRCDIR "."
#endif

unsigned char *
tu_read(const char *path, size_t *len_r)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;

    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len_r = (size_t)n;
    return buf;
}

const char *
tu_data(const char *rel, char *buf, size_t len)
{
    const char *d = getenv("CMPR_TEST_DATA");

    snprintf(buf, len, "%s/%s", d != NULL ? d : CMPR_SRCDIR "/tests/data", rel);
    return buf;
}

static int
cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **
tu_list(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **l = calloc(1, sizeof(char *));
    size_t n = 0, sl = strlen(suffix);

    if (d == NULL)
        fail_msg("cannot open directory %s", dir);
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        char *p;

        if (nl <= sl || strcmp(de->d_name + nl - sl, suffix) != 0)
            continue;
        l = realloc(l, (n + 2) * sizeof(char *));
        p = malloc(strlen(dir) + nl + 2);
        sprintf(p, "%s/%s", dir, de->d_name);
        l[n++] = p;
        l[n] = NULL;
    }
    closedir(d);
    qsort(l, n, sizeof(char *), cmpstr);
    return l;
}

void
tu_list_free(char **l)
{
    for (char **p = l; p != NULL && *p != NULL; p++)
        free(*p);
    free(l);
}

EVP_PKEY *
tu_key(const char *spec)
{
    EVP_PKEY *k = NULL;

    if (strncmp(spec, "ec:", 3) == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", spec + 3);
    else if (strncmp(spec, "rsa:", 4) == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(spec + 4));
    else if (strcmp(spec, "ed25519") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else if (strcmp(spec, "ed448") == 0)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    assert_non_null(k);
    return k;
}

X509 *
tu_cert(EVP_PKEY *key, const char *cn, EVP_PKEY *issuer_key, X509 *issuer, int ca)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    const EVP_MD *md = EVP_sha256();
    static long serial = 1000;
    EVP_PKEY *signer = issuer_key != NULL ? issuer_key : key;

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : n);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
                              ca ? "critical,keyCertSign,cRLSign,digitalSignature"
                                 : "critical,digitalSignature");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (ca) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (EVP_PKEY_is_a(signer, "ED25519") || EVP_PKEY_is_a(signer, "ED448"))
        md = NULL;
    assert_true(X509_sign(x, signer, md) > 0);
    X509_NAME_free(n);
    return x;
}

void
tu_rmrf(const char *path)
{
    char cmd[512];

    if (strncmp(path, "/tmp/cmpr-", 10) != 0)
        return;     /* only what the tests made */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", path);
}

struct cmpr_envelopeddata_st *
tu_envdata(const unsigned char *content, size_t len, X509 *rcpt)
{
    CMPR_ENVELOPEDDATA *env = cmpr_envdata_seal(content, len, rcpt, NULL, 0);

    assert_non_null(env);
    return env;
}

/* ---------------- requests through the envelope ---------------- */

struct tu_reply {
    struct cmpr_reply reply;            /* first */
    unsigned char *out;
    size_t len;
    int err;
    int done;
    void (*check)(void *arg);
    void *check_arg;
};

static void
tu_send(struct cmpr_reply *r, const unsigned char *der, size_t len)
{
    struct tu_reply *t = (struct tu_reply *)r;

    if (t->check != NULL)
        t->check(t->check_arg);
    t->out = malloc(len > 0 ? len : 1);
    memcpy(t->out, der, len);
    t->len = len;
    t->err = CMPR_OK;
    t->done = 1;
}

static void
tu_fail(struct cmpr_reply *r, int err)
{
    ((struct tu_reply *)r)->err = err;
    ((struct tu_reply *)r)->done = 1;
}

static const struct cmpr_reply_ops tu_ops = { tu_send, tu_fail };

int
tu_handle(struct cmpr_core *core, const struct tu_info *in, const unsigned char *der, size_t len,
          unsigned char **out_r, size_t *out_len_r)
{
    struct tu_reply t = { { &tu_ops }, NULL, 0, CMPR_ERR_INTERNAL, 0, NULL, NULL };
    struct cmpr_envelope *env = cmpr_envelope_new(der, len, &t.reply);

    *out_r = NULL;
    *out_len_r = 0;
    if (env == NULL)
        return CMPR_ERR_ALLOC;
    cmpr_envelope_set(env, CMPR_ENV_MEDIUM, in->medium);
    cmpr_envelope_set(env, CMPR_ENV_PEER, in->peer);
    cmpr_envelope_set(env, CMPR_ENV_LABEL, in->label);
    cmpr_envelope_set(env, CMPR_ENV_OPERATION, in->operation);
    cmpr_envelope_set(env, CMPR_ENV_TLS_SUBJECT, in->tls_subject);
    cmpr_envelope_set_resumed(env, in->resumed);
    cmpr_core_submit(core, env);
    *out_r = t.out;
    *out_len_r = t.len;
    return t.err;
}

int
tu_handle_on(struct cmpr_core *core, uv_loop_t *loop, const struct tu_info *in, const unsigned char *der,
             size_t len, void (*check)(void *arg), void *check_arg, unsigned char **out_r, size_t *out_len_r)
{
    struct tu_reply t = { { &tu_ops }, NULL, 0, CMPR_ERR_INTERNAL, 0, check, check_arg };
    struct cmpr_envelope *env = cmpr_envelope_new(der, len, &t.reply);
    time_t end = time(NULL) + 60;

    *out_r = NULL;
    *out_len_r = 0;
    if (env == NULL)
        return CMPR_ERR_ALLOC;
    cmpr_envelope_set(env, CMPR_ENV_MEDIUM, in->medium);
    cmpr_envelope_set(env, CMPR_ENV_PEER, in->peer);
    cmpr_envelope_set(env, CMPR_ENV_LABEL, in->label);
    cmpr_envelope_set_loop(env, loop);
    cmpr_core_submit(core, env);
    while (!t.done && time(NULL) < end)
        uv_run(loop, UV_RUN_ONCE);
    if (!t.done) {
        fprintf(stderr, "no answer on the loop within 60 s\n");
        return CMPR_ERR_TIMEOUT;
    }
    *out_r = t.out;
    *out_len_r = t.len;
    return t.err;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void
tu_loop_close(uv_loop_t *loop)
{
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* the descriptors of this process open read-only on path: how many, the
 * last in *fd_r */
static int
readonly_fds_on(const char *path, int *fd_r)
{
    char real[PATH_MAX], link[PATH_MAX], p[64], line[128];
    int n = 0;

    assert_non_null(realpath(path, real));
    for (int fd = 0; fd < 1024; fd++) {
        ssize_t l;
        FILE *f;
        unsigned long flags = 3;

        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        if ((l = readlink(p, link, sizeof(link) - 1)) <= 0)
            continue;
        link[l] = '\0';
        if (strcmp(link, real) != 0)
            continue;
        snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
        if ((f = fopen(p, "r")) == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL)
            if (sscanf(line, "flags: %lo", &flags) == 1)
                break;
        fclose(f);
        if ((flags & 3) == 0) {
            *fd_r = fd;
            n++;
        }
    }
    return n;
}

void
tu_break_wal_sync(const char *db, int pfd[2])
{
    char wal[PATH_MAX];
    int fd = -1;

    snprintf(wal, sizeof(wal), "%s-wal", db);
    assert_int_equal(readonly_fds_on(wal, &fd), 1);
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(dup2(pfd[0], fd), fd);
}
