/* Codec benchmark: decode, decode+MAC verify, decode+signature verify of real
 * openssl-cmp messages, against OpenSSL's own d2i_OSSL_CMP_MSG and
 * OSSL_CMP_validate_msg run side by side in the same process. Prints rates and
 * the ratio to the baseline (the machine is shared: compare ratios only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cmp.h>
#include <openssl/err.h>

#include "codec/msg.h"
#include "codec/protect.h"
#include "base/err.h"

static unsigned char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;

    if (f == NULL) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    b = malloc((size_t)n);
    if (b == NULL || fread(b, 1, (size_t)n, f) != (size_t)n)
        exit(2);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum { DECODE, MAC, SIG };

static int
ours(int what, const unsigned char *der, size_t len, struct cmpr_mac_cache *cache)
{
    CMPR_PKIMESSAGE *m = NULL;
    struct cmpr_verify_opts vo = { 0, cache, NULL };
    int r;

    if ((r = cmpr_msg_decode(der, len, &m, NULL)) != CMPR_OK)
        return r;
    if (what == MAC)
        r = cmpr_verify_mac(m, (const unsigned char *)"test-secret", 11, &vo);
    else if (what == SIG)
        r = cmpr_verify_sig(m, X509_get0_pubkey(cmpr_msg_get0_protection_cert(m)));
    CMPR_PKIMESSAGE_free(m);
    return r;
}

static int
theirs(int what, const unsigned char *der, size_t len, X509 *signer)
{
    const unsigned char *p = der;
    OSSL_CMP_MSG *m = d2i_OSSL_CMP_MSG(NULL, &p, (long)len);
    OSSL_CMP_CTX *ctx;
    int ok = m != NULL;

    if (ok && what != DECODE) {
        ctx = OSSL_CMP_CTX_new(NULL, NULL);
        if (what == MAC)
            OSSL_CMP_CTX_set1_secretValue(ctx, (const unsigned char *)"test-secret", 11);
        else
            OSSL_CMP_CTX_set1_srvCert(ctx, signer);
        ok = OSSL_CMP_validate_msg(ctx, m) == 1;
        OSSL_CMP_CTX_free(ctx);
    }
    OSSL_CMP_MSG_free(m);
    ERR_clear_error();
    return ok ? 0 : -1;
}

int
main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/data/openssl";
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    static const struct { const char *name, *file; int what; } cases[] = {
        { "decode ir (MAC-protected)", "ir_mac.der", DECODE },
        { "decode + verify PasswordBasedMac", "ir_mac.der", MAC },
        { "decode + verify ECDSA signature", "ir_sig.der", SIG },
    };
    struct cmpr_mac_cache *cache = cmpr_mac_cache_new(0);

    printf("%-36s %12s %12s %8s\n", "operation", "cmprouter/s", "openssl/s", "ratio");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[4096];
        size_t len;
        unsigned char *der;
        CMPR_PKIMESSAGE *m = NULL;
        X509 *signer = NULL;
        double t0, rate_ours, rate_theirs;
        long n;

        snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
        der = slurp(path, &len);
        if (cmpr_msg_decode(der, len, &m, NULL) != CMPR_OK)
            return 2;
        signer = cmpr_msg_get0_protection_cert(m);
        if (ours(cases[i].what, der, len, cache) != CMPR_OK
                || theirs(cases[i].what, der, len, signer) != 0) {
            fprintf(stderr, "%s: does not verify\n", cases[i].name);
            return 2;
        }
        /* alternate short rounds so load changes hit both sides alike */
        rate_ours = rate_theirs = 0;
        for (int round = 0; round < 4; round++) {
            for (n = 0, t0 = now(); now() - t0 < secs / 4; n++)
                ours(cases[i].what, der, len, cache);
            rate_ours += n / (now() - t0) / 4;
            for (n = 0, t0 = now(); now() - t0 < secs / 4; n++)
                theirs(cases[i].what, der, len, signer);
            rate_theirs += n / (now() - t0) / 4;
        }
        printf("%-36s %12.0f %12.0f %7.2fx\n", cases[i].name, rate_ours, rate_theirs,
               rate_ours / rate_theirs);
        CMPR_PKIMESSAGE_free(m);
        free(der);
    }
    cmpr_mac_cache_free(cache);
    return 0;
}
