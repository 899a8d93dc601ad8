/* libFuzzer target: hostile bytes through the whole core (decode, header
 * checks, protection, transactions, CA, store). The client "fuzz" uses the
 * reference and secret of the openssl-cmp fixtures under tests/data/openssl,
 * so seeds from there get past protection into the handlers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/config.h"
#include "core/core.h"
#include "core/envelope.h"
#include "base/err.h"
#include "base/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cmpr_conf *conf;
static struct cmpr_core *core;
static char dir[] = "/tmp/cmpr-fuzz-XXXXXX";

static void
cleanup(void)
{
    char cmd[64];

    cmpr_core_free(core);
    cmpr_conf_free(conf);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_core: cannot remove %s\n", dir);
}

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_core: %s\n", what);
    exit(1);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[256], *err = NULL;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    FILE *f;

    (void)argc;
    (void)argv;
    if (mkdtemp(dir) == NULL || k == NULL)
        die("setup");
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"Fuzz CA", -1, -1, 0);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, k);
    X509_sign(x, k, EVP_sha256());
    snprintf(path, sizeof(path), "%s/ca.key", dir);
    f = fopen(path, "w");
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    f = fopen(path, "w");
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof(path), "%s/cmprouter.conf", dir);
    f = fopen(path, "w");
    fprintf(f, "[router]\nlog_level = error\nmessage_time_skew = 0\nmax_mac_iterations = 1000\n"
               "[ca fuzz]\nkey = ca.key\ncert = ca.pem\n"
               "[profile any]\nkey_types = ec:P-256, ec:P-384, rsa:1024-4096, ed25519\n"
               "[profile manual]\nrequire_approval = yes\n"
               "[client fuzz]\nreference = myref\nsecret = pass:test-secret\nra = yes\n");
    fclose(f);
    if (cmpr_conf_load(path, &conf, &err) != CMPR_OK || cmpr_core_new(conf, &core, &err) != CMPR_OK)
        die(err != NULL ? err : "core");
    cmpr_log_set_level(-1);      /* quiet */
    atexit(cleanup);
    X509_NAME_free(n);
    X509_free(x);
    EVP_PKEY_free(k);
    return 0;
}

/* the one answer, as the envelope's reply gets it */
struct answer {
    struct cmpr_reply reply;            /* first */
    int sent, failed;
};

static void
got(struct cmpr_reply *r, const unsigned char *der, size_t len)
{
    struct answer *a = (struct answer *)r;

    a->sent++;
    if (der == NULL || len == 0)
        __builtin_trap();
}

static void
failed(struct cmpr_reply *r, int err)
{
    (void)err;
    ((struct answer *)r)->failed++;
}

static const struct cmpr_reply_ops ops = { got, failed };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct answer a = { { &ops }, 0, 0 };
    struct cmpr_envelope *env = cmpr_envelope_new(data, size, &a.reply);

    if (env == NULL)
        return 0;
    cmpr_envelope_set(env, CMPR_ENV_MEDIUM, "fuzz");
    cmpr_envelope_set(env, CMPR_ENV_PEER, "fuzzer");
    cmpr_core_submit(core, env);
    /* every input gets exactly one answer, a CMP message; no crash, no leak */
    if (a.sent != 1 || a.failed != 0)
        __builtin_trap();
    ERR_clear_error();
    return 0;
}
