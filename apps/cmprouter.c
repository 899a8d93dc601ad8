/* cmprouter: the command line. This part: `dump`. */
#define _GNU_SOURCE 1 /* memmem */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "codec/msg.h"
#include "codec/print.h"
#include "codec/protect.h"
#include "transports/client/client.h"
#include "core/ca.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/limits.h"
#include "core/config.h"
#include "core/core.h"
#include "core/store.h"
#include "admin.h"
#include "deliver.h"
#include "client.h"
#include "bench.h"

static const char usage_text[] =
    "usage: cmprouter [-c CONF] COMMAND [options]\n"
    "\n"
    "Commands:\n"
    "  ir|cr|kur|p10cr|ccr|krr|rr|genm --server URI [options]\n"
    "                         the EE client: enroll, renew, revoke, ask the CA, over\n"
    "                         http[s]://, tcp://, file:OUT,IN, sftp://, mailto:\n"
    "  ir|cr|kur|p10cr|ccr|krr|rr|genm --request-out FILE [options]\n"
    "  finish --state FILE --response FILE [--request-out FILE]\n"
    "                         offline in steps: the request into a file, the answer\n"
    "                         from a file (see cmprouter(1))\n"
    "  poll --state FILE [--server URI]   go on with a transaction left waiting\n"
    "  process -c CONF [--label L] [--in FILE] [--out FILE]\n"
    "                         one request (DER) through the core; the answer (DER) out\n"
    "  list [--pending] [--json]          transactions in the store\n"
    "  show TID [--json]                  one transaction and its audit trail\n"
    "  approve TID                        issue a request waiting for approval\n"
    "  reject TID [--reason TEXT]         refuse a request waiting for approval\n"
    "  revoke SERIAL [--reason CODE]      revoke a certificate (hex serial)\n"
    "  crl [--out FILE]                   write the CRL (DER; PEM to stdout without --out)\n"
    "  certs [--subject PATTERN] [--json] certificates issued\n"
    "  expire                             revoke certificates whose certConf never came\n"
    "  routes [--explain FILE [--label L]]  the route table and the requests on their way\n"
    "                         upstream; which route FILE (DER) takes and why\n"
    "  store migrate                      bring the configured store's schema up to date\n"
    "  store copy SPEC                    copy another store (sqlite:OLD.db) into the\n"
    "                         configured one (PostgreSQL); idempotent, counts checked\n"
    "  dump [--json] [--secret pass:S|env:VAR] [--verify] [--signer CERT] FILE|-\n"
    "                         print a PKIMessage (DER, PEM or base64) readably and\n"
    "                         optionally check its MAC or signature protection\n"
    "  send URL [--in FILE] [--out FILE] [--timeout SECONDS] [--tls-ca FILE]\n"
    "       [--tls-cert FILE --tls-key FILE] [--tcp-framing 10|2510]\n"
    "                         send one DER request to a CMP server over HTTP(S)\n"
    "                         (http[s]://...) or raw TCP (tcp://host[:port]) and\n"
    "                         write its answer (DER)\n"
    "  bench --server URI [--clients N] [--duration S|--transactions N] [--op ir|cr|p10cr|kur|genm|rr]\n"
    "       [--protection mac|pbmac1|sig] [--keep-alive on|off] [--json] ...\n"
    "                         a closed-loop load generator against any CMP server:\n"
    "                         tps, messages/s, latency p50/p90/p99/max, errors by failInfo\n"
    "  deliver -c CONF < MAIL one mail from an MTA (pipe delivery): its CMP messages are\n"
    "                         answered and the reply queued for cmprouterd's sender;\n"
    "                         exit 0 once queued, 75 (EX_TEMPFAIL) if not\n"
    "  version                print the version\n"
    "  help                   this text\n"
    "\n"
    "See cmprouter(1).\n";

static void
usage(FILE *f)
{
    fputs(usage_text, f);
}

/* Reads all of path ("-" = stdin) up to cap bytes: 0, or -errno (-EFBIG
 * when it is longer). */
static int
read_all(const char *path, unsigned char **buf_r, size_t *len_r, size_t cap)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    struct cmpr_buf b;
    int r, e;

    if (fd < 0)
        return -errno;
    cmpr_buf_init(&b, cap);
    r = cmpr_buf_read_fd(&b, fd);
    e = errno;
    if (fd != STDIN_FILENO)
        close(fd);
    if (r == CMPR_OK && (*buf_r = cmpr_buf_steal(&b, len_r)) == NULL)
        r = CMPR_ERR_ALLOC;
    cmpr_buf_free(&b);
    return r == CMPR_OK ? 0 : r == CMPR_ERR_TOO_LARGE ? -EFBIG : r == CMPR_ERR_ALLOC ? -ENOMEM
           : -(e ? e : EIO);
}

/* DER as is; otherwise PEM ("-----BEGIN ...") or bare base64 are decoded. */
static int
to_der(unsigned char *in, size_t len, unsigned char **der_r, size_t *der_len_r,
       const char **why_r)
{
    unsigned char *out = NULL;
    size_t o = 0, i = 0, end = len;
    EVP_ENCODE_CTX *ctx;
    int n = 0;

    if (len > 0 && in[0] == 0x30) {
        *der_r = in;
        *der_len_r = len;
        return 0;
    }
    /* PEM: take what lies between the first BEGIN and END lines */
    {
        const char *b = memmem(in, len, "-----BEGIN", 10);

        if (b != NULL) {
            const char *nl = memchr(b, '\n', len - (size_t)((const unsigned char *)b - in));
            const char *e;

            if (nl == NULL) {
                *why_r = "PEM header line without a body";
                return -1;
            }
            i = (size_t)((const unsigned char *)nl - in) + 1;
            e = memmem(in + i, len - i, "-----END", 8);
            if (e == NULL) {
                *why_r = "PEM without an -----END line";
                return -1;
            }
            end = (size_t)((const unsigned char *)e - in);
        }
    }
    if ((out = malloc((end - i) / 4 * 3 + 64)) == NULL || (ctx = EVP_ENCODE_CTX_new()) == NULL) {
        free(out);
        *why_r = "out of memory";
        return -1;
    }
    EVP_DecodeInit(ctx);
    for (size_t k = i; k < end; k++) {
        unsigned char c = in[k];

        if (isspace(c))
            continue;
        if (!(isalnum(c) || c == '+' || c == '/' || c == '=')) {
            EVP_ENCODE_CTX_free(ctx);
            free(out);
            *why_r = "neither DER (0x30 ...), PEM nor base64";
            return -1;
        }
        if (EVP_DecodeUpdate(ctx, out + o, &n, &c, 1) < 0) {
            EVP_ENCODE_CTX_free(ctx);
            free(out);
            *why_r = "broken base64";
            return -1;
        }
        o += (size_t)n;
    }
    if (EVP_DecodeFinal(ctx, out + o, &n) < 0) {
        EVP_ENCODE_CTX_free(ctx);
        free(out);
        *why_r = "broken base64";
        return -1;
    }
    o += (size_t)n;
    EVP_ENCODE_CTX_free(ctx);
    *der_r = out;
    *der_len_r = o;
    return 0;
}

/* 0 verified, 4 not verified (message on stderr) */
static int
dump_verify(const char *path, const CMPR_PKIMESSAGE *msg, const char *secret,
            int verify_sig, const char *signer_path)
{
    int r;

    if (secret != NULL) {
        struct cmpr_verify_opts vo = { 0, NULL, NULL };

        r = cmpr_verify_mac(msg, (const unsigned char *)secret, strlen(secret), &vo);
    } else {
        X509 *signer = NULL;

        (void)verify_sig;
        if (signer_path != NULL && (signer = cmpr_load_cert(signer_path)) == NULL) {
            fprintf(stderr, "cmprouter: dump: %s: cannot read a certificate\n", signer_path);
            return 4;
        }
        if (signer == NULL && (signer = cmpr_msg_get0_protection_cert(msg)) != NULL)
            X509_up_ref(signer);
        if (signer == NULL) {
            r = CMPR_ERR_NO_SIGNER;
        } else {
            r = cmpr_verify_sig(msg, X509_get0_pubkey(signer));
            X509_free(signer);
        }
    }
    if (r != CMPR_OK) {
        fprintf(stderr, "cmprouter: dump: %s: protection: %s\n", path, cmpr_strerror(r));
        return 4;
    }
    fprintf(stderr, "cmprouter: dump: %s: protection verified\n", path);
    return 0;
}

static int
cmd_dump(int argc, char **argv)
{
    const char *path = NULL, *why = NULL, *secret = NULL, *signer = NULL;
    int verify = 0;
    unsigned flags = 0;
    unsigned char *raw = NULL, *der = NULL;
    size_t raw_len = 0, der_len = 0;
    CMPR_PKIMESSAGE *msg = NULL;
    struct cmpr_decode_err err;
    BIO *out = NULL;
    int r, rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            flags |= CMPR_PRINT_JSON;
        } else if (strcmp(argv[i], "--secret") == 0 && i + 1 < argc) {
            if ((secret = cmpr_client_secret(argv[++i])) == NULL) {
                fprintf(stderr, "cmprouter: dump: --secret takes pass:TEXT or env:VAR (set)\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--verify") == 0) {
            verify = 1;
        } else if (strcmp(argv[i], "--signer") == 0 && i + 1 < argc) {
            signer = argv[++i];
            verify = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (path == NULL && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) {
            path = argv[i];
        } else {
            fprintf(stderr, "cmprouter: dump: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "cmprouter: dump: a FILE (or - for stdin) is required\n");
        return 2;
    }
    if ((r = read_all(path, &raw, &raw_len, CMPR_MAX_DUMP_INPUT)) != 0) {
        fprintf(stderr, "cmprouter: dump: %s: %s\n", path,
                r == -EFBIG ? "larger than the 4 MiB input limit" : strerror(-r));
        return 1;
    }
    if (to_der(raw, raw_len, &der, &der_len, &why) != 0) {
        fprintf(stderr, "cmprouter: dump: %s: offset 0: expected a PKIMessage: %s\n", path, why);
        goto out;
    }
    if ((r = cmpr_msg_decode(der, der_len, &msg, &err)) != CMPR_OK) {
        fprintf(stderr, "cmprouter: dump: %s: offset %zu: expected %s (%s)\n", path,
                err.offset, err.what, cmpr_strerror(r));
        goto out;
    }
    if ((out = BIO_new_fp(stdout, BIO_NOCLOSE)) == NULL)
        goto out;
    if (cmpr_print_msg(out, msg, flags) != CMPR_OK) {
        fprintf(stderr, "cmprouter: dump: write error\n");
        goto out;
    }
    rc = 0;
    if (secret != NULL || verify)
        rc = dump_verify(path, msg, secret, verify, signer);
 out:
    BIO_free(out);
    CMPR_PKIMESSAGE_free(msg);
    if (der != raw)
        free(der);
    free(raw);
    return rc;
}

static int
cmd_send(int argc, char **argv)
{
    const char *url = NULL, *in = "-", *outp = NULL, *tls_ca = NULL, *tls_cert = NULL, *tls_key = NULL;
    unsigned char *req = NULL, *body = NULL;
    size_t reqlen = 0, blen = 0;
    long timeout_ms = 30000;
    int status = 200, rc = 3, r, rfc2510 = 0;
    char err[512];
    FILE *f;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--in") == 0 && i + 1 < argc)
            in = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            outp = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout_ms = atol(argv[++i]) * 1000;
        else if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc)
            tls_ca = argv[++i];
        else if (strcmp(argv[i], "--tcp-framing") == 0 && i + 1 < argc) {
            const char *v = argv[++i];

            if (strcmp(v, "10") != 0 && strcmp(v, "2510") != 0) {
                fprintf(stderr, "cmprouter: send: --tcp-framing is 10 or 2510\n");
                return 2;
            }
            rfc2510 = strcmp(v, "2510") == 0;
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc)
            tls_cert = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc)
            tls_key = argv[++i];
        else if (url == NULL && argv[i][0] != '-')
            url = argv[i];
        else {
            fprintf(stderr, "cmprouter: send: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (url == NULL || (tls_cert == NULL) != (tls_key == NULL)) {
        fprintf(stderr, "cmprouter: send: a URL is needed (and --tls-cert with --tls-key)\n");
        return 2;
    }
    if ((r = read_all(in, &req, &reqlen, CMPR_MAX_MSG_SIZE)) != 0) {
        fprintf(stderr, "cmprouter: send: %s: %s\n", in, strerror(-r));
        return 1;
    }
    if (strncmp(url, "tcp://", 6) == 0)
        r = cmpr_tcp_send(url, rfc2510, req, reqlen, timeout_ms, &body, &blen, err, sizeof(err));
    else
        r = cmpr_http_send(url, req, reqlen, timeout_ms, tls_ca, tls_cert, tls_key, &status, &body, &blen, err,
                           sizeof(err));
    if (r != CMPR_OK) {
        fprintf(stderr, "cmprouter: send: %s\n", err);
        goto out;
    }
    if (body == NULL) {
        /* finRep: the server acknowledged, no CMP answer applies */
        fprintf(stderr, "cmprouter: send: finRep (no CMP answer)\n");
        rc = 0;
        goto out;
    }
    /* RFC 9811 3.1: a CMP answer may come with any status */
    if (status != 200)
        fprintf(stderr, "cmprouter: send: HTTP %d with a CMP answer\n", status);
    f = outp != NULL ? fopen(outp, "wb") : stdout;
    if (f == NULL || fwrite(body, 1, blen, f) != blen || fflush(f) != 0) {
        fprintf(stderr, "cmprouter: send: cannot write the answer\n");
        if (f != NULL && f != stdout)
            fclose(f);
        goto out;
    }
    if (f != stdout)
        fclose(f);
    rc = 0;
 out:
    free(req);
    free(body);
    return rc;
}

int
main(int argc, char **argv)
{
    const char *conf = NULL;

    /* global options before the command */
    while (argc > 2 && strcmp(argv[1], "-c") == 0) {
        conf = argv[2];
        argv[2] = argv[0];
        argc -= 2;
        argv += 2;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0
            || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("cmprouter %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "dump") == 0)
        return cmd_dump(argc - 1, argv + 1);
    if (strcmp(argv[1], "send") == 0)
        return cmd_send(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0)
        return cmpr_bench_main(argc - 1, argv + 1);
    if (cmpr_client_is_command(argv[1]))
        return cmpr_client_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "deliver") == 0)
        return cmpr_cmd_deliver(conf, argc - 1, argv + 1);
    if (cmpr_admin_is_command(argv[1]))
        return cmpr_admin_main(conf, argc - 1, argv + 1, read_all);
    fprintf(stderr, "cmprouter: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
