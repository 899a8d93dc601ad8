/*
 * The EE client: `cmprouter ir|cr|kur|p10cr|rr|genm|poll|finish` (see
 * cmprouter(1)). Builds the request (codec/ee.c), protects it (MAC or
 * signature), carries it over any medium (transports/outbound.c), checks every answer
 * (transaction, nonces, protection, the new certificate) and goes on with
 * pollReq and certConf until the transaction ends. Offline sites do it in
 * steps: --request-out writes the request and a state file; `finish` takes
 * the answer file and writes the next request to carry.
 *
 * Exit codes: 0 done, 1 local trouble, 2 usage, 3 transport (no answer),
 * 4 the answer failed verification, 5 rejected by the server, 6 waiting
 * (state saved; a next request written in two-step mode).
 */
#define _GNU_SOURCE 1
#include "config.h"
#include "apps/client.h"
#include "transports/client/outbound.h"
#include "codec/ee.h"
#include "codec/keygen.h"
#include "codec/msg.h"
#include "codec/oids.h"
#include "codec/print.h"
#include "codec/protect.h"
#include "core/ca.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/limits.h"
#include "transports/lib/fsutil.h"
#include "transports/lib/smtp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

enum { EX_DONE = 0, EX_LOCAL = 1, EX_USAGE = 2, EX_TRANSPORT = 3, EX_VERIFY = 4,
       EX_REJECTED = 5, EX_WAITING = 6, EX_NEXT = -1 };

struct ee {
    const char *cmd;                    /* ir cr kur p10cr ccr krr rr genm */
    int first_body;                     /* body of the transaction's first request */
    /* what to ask */
    const char *newkey, *key_out, *subject, *san, *profile, *csr, *oldcert_path;
    const char *infotype;
    const char *archive_path;           /* --archive-key: the CA's encryption certificate */
    const char *central;                /* --newkey central[:TYPE]: the type, "" the CA's choice */
    int reason;
    long days;
    int implicit;
    /* protection of our requests */
    const char *ref, *secret_spec, *mac;
    const char *cert_path, *key_path, *keypass, *extracerts_path;
    const char *recipient;
    /* checking the answers */
    const char *trusted_path, *srvcert_path;
    /* outputs */
    const char *out, *chain_out;
    /* how */
    const char *server, *request_out, *state_path;
    struct cmpr_out_opts io;
    long total_timeout, max_wait;
    int verbose;
    /* loaded */
    const char *secret;
    EVP_PKEY *newpkey, *sigkey;
    X509 *sigcert, *oldcert, *srvcert, *archive_to;
    STACK_OF(X509) *extracerts;
    X509_STORE *trusted;
    /* the transaction */
    unsigned char first_nonce[64];
    int first_nonce_len;
    long cert_req_id;
    int cert_rejected;                  /* we said no in certConf */
    int have_cert;
    char *owned[40];                    /* strings read from the state file */
    size_t n_owned;
};

static const char *
keep(struct ee *e, char *s)
{
    if (s != NULL && e->n_owned < sizeof(e->owned) / sizeof(e->owned[0]))
        e->owned[e->n_owned++] = s;
    return s;
}

/* ---------------- small helpers ---------------- */

static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
say(const char *fmt, ...)
{
    va_list ap;

    fputs("cmprouter: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const char *
ossl_why(void)
{
    static char buf[256];
    unsigned long e = ERR_peek_last_error();

    if (e == 0)
        return "no details";
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

const char *
cmpr_client_secret(const char *spec)
{
    if (spec == NULL)
        return NULL;
    if (strncmp(spec, "pass:", 5) == 0)
        return spec + 5;
    if (strncmp(spec, "env:", 4) == 0)
        return getenv(spec + 4);
    return NULL;
}

EVP_PKEY *
cmpr_client_gen_key(const char *spec)
{
    return cmpr_key_generate(spec);
}

static int
is_key_spec(const char *s)
{
    return strncmp(s, "ec:", 3) == 0 || strncmp(s, "rsa:", 4) == 0 || strcmp(s, "ed25519") == 0
           || strcmp(s, "ed448") == 0;
}

/* writes the new private key to a file that must not exist yet (mode 0600) */
static int
save_key(const char *path, EVP_PKEY *k)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    FILE *f;
    int ok;

    if (fd < 0) {
        say("cannot create the key file %s: %s%s", path, strerror(errno),
            errno == EEXIST ? " (never overwritten; give --key-out)" : "");
        return -1;
    }
    if ((f = fdopen(fd, "w")) == NULL) {
        close(fd);
        return -1;
    }
    ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    fclose(f);
    if (!ok)
        say("cannot write the key file %s", path);
    return ok ? 0 : -1;
}

X509_NAME *
cmpr_client_parse_name(const char *s)
{
    X509_NAME *n = X509_NAME_new();
    char *copy = strdup(s), *tok, *save = NULL;
    const char *sep = s[0] == '/' ? "/" : ",";

    if (n == NULL || copy == NULL)
        goto fail;
    for (tok = strtok_r(copy, sep, &save); tok != NULL; tok = strtok_r(NULL, sep, &save)) {
        char *eq = strchr(tok, '=');

        while (*tok == ' ')
            tok++;
        if (eq == NULL || eq == tok)
            goto fail;
        *eq = '\0';
        if (!X509_NAME_add_entry_by_txt(n, tok, MBSTRING_UTF8, (unsigned char *)eq + 1, -1, -1, 0))
            goto fail;
    }
    if (X509_NAME_entry_count(n) == 0)
        goto fail;
    free(copy);
    return n;
 fail:
    free(copy);
    X509_NAME_free(n);
    return NULL;
}

/* "dns:a.example,ip:192.0.2.1,uri:https://x/,email:a@b" */
static GENERAL_NAMES *
parse_sans(const char *s)
{
    GENERAL_NAMES *g = GENERAL_NAMES_new();
    char *copy = strdup(s), *tok, *save = NULL;

    if (g == NULL || copy == NULL)
        goto fail;
    for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        GENERAL_NAME *gn = NULL;
        char *c = strchr(tok, ':');
        int type;

        if (c == NULL || c[1] == '\0')
            goto fail;
        *c++ = '\0';
        if (strcasecmp(tok, "dns") == 0)
            type = GEN_DNS;
        else if (strcasecmp(tok, "ip") == 0)
            type = GEN_IPADD;
        else if (strcasecmp(tok, "uri") == 0)
            type = GEN_URI;
        else if (strcasecmp(tok, "email") == 0)
            type = GEN_EMAIL;
        else
            goto fail;
        if ((gn = a2i_GENERAL_NAME(NULL, NULL, NULL, type, c, 0)) == NULL
                || !sk_GENERAL_NAME_push(g, gn)) {
            GENERAL_NAME_free(gn);
            goto fail;
        }
    }
    free(copy);
    return g;
 fail:
    free(copy);
    GENERAL_NAMES_free(g);
    return NULL;
}

static const char *const reasons[] = {
    "unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
    "cessationOfOperation", "certificateHold", NULL, "removeFromCRL", "privilegeWithdrawn",
    "aACompromise"
};

static int
parse_reason(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);

    if (*end == '\0' && n >= 0 && n <= 10 && n != 7)
        return (int)n;
    for (int i = 0; i <= 10; i++)
        if (reasons[i] != NULL && strcasecmp(reasons[i], s) == 0)
            return i;
    return -2;
}

static void
hex(const unsigned char *p, size_t n, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 3 <= len; i++, o += 2)
        snprintf(buf + o, 3, "%02x", p[i]);
}

static void
tid_hex(const CMPR_PKIMESSAGE *m, char *buf, size_t len)
{
    const ASN1_OCTET_STRING *t = m->header->transactionID;

    hex(t != NULL ? ASN1_STRING_get0_data(t) : NULL, t != NULL ? (size_t)ASN1_STRING_length(t) : 0,
        buf, len);
}

static void
show(struct ee *e, const char *what, const CMPR_PKIMESSAGE *m)
{
    BIO *b;

    if (!e->verbose)
        return;
    fprintf(stderr, "---- %s ----\n", what);
    if ((b = BIO_new_fp(stderr, BIO_NOCLOSE)) != NULL) {
        (void)cmpr_print_msg(b, m, 0);
        BIO_free(b);
    }
}

/* ---------------- protection ---------------- */

int
cmpr_client_protect(const struct cmpr_client_creds *c, CMPR_PKIMESSAGE *m)
{
    if (c->recipient != NULL) {
        X509_NAME *n = cmpr_client_parse_name(c->recipient);

        if (n == NULL || cmpr_hdr_set1_recipient_name(m->header, n) != CMPR_OK) {
            X509_NAME_free(n);
            return -1;
        }
        X509_NAME_free(n);
    }
    if (c->secret != NULL) {
        struct cmpr_mac_params mp;

        cmpr_mac_params_default(&mp, c->pbmac1 ? CMPR_MAC_PBMAC1 : CMPR_MAC_PBM);
        if (c->sender != NULL && cmpr_msg_bodytype(m) != CMPR_BODY_CERTCONF) {
            X509_NAME *n = cmpr_client_parse_name(c->sender);

            if (n != NULL)
                (void)cmpr_hdr_set1_sender_name(m->header, n);
            X509_NAME_free(n);
        }
        if (c->ref != NULL && cmpr_hdr_set1_sender_kid(m->header, (const unsigned char *)c->ref,
                                                       strlen(c->ref)) != CMPR_OK)
            return -1;
        return cmpr_protect_mac(m, (const unsigned char *)c->secret, strlen(c->secret), &mp, NULL)
               == CMPR_OK ? 0 : -1;
    }
    if (c->sigkey != NULL)
        return cmpr_protect_sig(m, c->sigkey, NULL, 0, c->sigcert, c->extracerts) == CMPR_OK ? 0 : -1;
    return 0;       /* unprotected (the server decides whether it accepts that) */
}

/* the command's options as credentials (the sender name is the subject) */
static struct cmpr_client_creds
creds(const struct ee *e)
{
    struct cmpr_client_creds c = {
        e->secret, e->ref, e->mac != NULL && strcmp(e->mac, "pbmac1") == 0, e->subject, e->recipient,
        e->sigkey, e->sigcert, e->extracerts, e->trusted, e->srvcert, NULL
    };

    return c;
}

static int
protect(struct ee *e, CMPR_PKIMESSAGE *m)
{
    struct cmpr_client_creds c = creds(e);

    return cmpr_client_protect(&c, m);
}

int
cmpr_client_verify(const struct cmpr_client_creds *c, const CMPR_PKIMESSAGE *rsp, char *why, size_t wlen)
{
    return cmpr_client_verify_over(c, rsp, NULL, 0, why, wlen);
}

int
cmpr_client_verify_over(const struct cmpr_client_creds *c, const CMPR_PKIMESSAGE *rsp,
                        const unsigned char *pp, size_t pp_len, char *why, size_t wlen)
{
    const X509_ALGOR *alg = rsp->header->protectionAlg;
    int kind = alg != NULL ? cmpr_prot_kind(alg->algorithm) : CMPR_PROT_NONE;
    X509 *signer;
    int r;

    if (kind == CMPR_PROT_NONE || rsp->protection == NULL) {
        snprintf(why, wlen, "the answer is not protected");
        return -1;
    }
    if (kind == CMPR_PROT_PBM || kind == CMPR_PROT_PBMAC1) {
        struct cmpr_verify_opts vo = { 0, c->verify_cache, NULL };

        if (c->secret == NULL) {
            snprintf(why, wlen, "the answer is MAC-protected but we have no shared secret");
            return -1;
        }
        r = pp != NULL ? cmpr_verify_mac_over(rsp, pp, pp_len, (const unsigned char *)c->secret,
                                              strlen(c->secret), &vo)
                       : cmpr_verify_mac(rsp, (const unsigned char *)c->secret, strlen(c->secret), &vo);
        if (r != CMPR_OK)
            snprintf(why, wlen, "its MAC does not verify with our secret: %s", cmpr_strerror(r));
        return r == CMPR_OK ? 0 : -1;
    }
    if (kind != CMPR_PROT_SIG) {
        snprintf(why, wlen, "its protection algorithm is not supported");
        return -1;
    }
    signer = c->srvcert != NULL ? c->srvcert : cmpr_msg_get0_protection_cert(rsp);
    if (signer == NULL) {
        snprintf(why, wlen, "it is signed but carries no certificate to check it with");
        return -1;
    }
    if (c->srvcert == NULL) {
        X509_STORE_CTX *sc;
        STACK_OF(X509) *untrusted;
        int ok;

        if (c->trusted == NULL) {
            snprintf(why, wlen, "it is signed by \"%s\"; give --trusted (the CA certificates to "
                     "trust) or --srvcert to check it",
                     X509_NAME_oneline(X509_get_subject_name(signer), (char[256]){ 0 }, 256));
            return -1;
        }
        untrusted = rsp->extraCerts != NULL ? sk_X509_dup(rsp->extraCerts) : sk_X509_new_null();
        sc = X509_STORE_CTX_new();
        ok = untrusted != NULL && sc != NULL && X509_STORE_CTX_init(sc, c->trusted, signer, untrusted)
             && X509_verify_cert(sc) == 1;
        if (!ok)
            snprintf(why, wlen, "its signer \"%s\" does not chain to --trusted: %s",
                     X509_NAME_oneline(X509_get_subject_name(signer), (char[256]){ 0 }, 256),
                     sc != NULL ? X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)) : "?");
        X509_STORE_CTX_free(sc);
        sk_X509_free(untrusted);
        if (!ok)
            return -1;
    } else if (X509_cmp(signer, c->srvcert) != 0 && cmpr_msg_get0_protection_cert(rsp) != NULL
               && X509_cmp(cmpr_msg_get0_protection_cert(rsp), c->srvcert) != 0) {
        snprintf(why, wlen, "it is signed by another certificate than --srvcert");
        return -1;
    }
    if ((r = cmpr_verify_sig(rsp, X509_get0_pubkey(signer))) != CMPR_OK) {
        snprintf(why, wlen, "its signature does not verify: %s", cmpr_strerror(r));
        return -1;
    }
    return 0;
}

/* ---------------- the new certificate ---------------- */

static int
write_pem_certs(const char *path, X509 *first, STACK_OF(X509) *rest)
{
    char tmp[4200];
    FILE *f;
    int ok = 1;

    snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
    if ((f = fopen(tmp, "w")) == NULL)
        return -1;
    if (first != NULL)
        ok = PEM_write_X509(f, first);
    for (int i = 0; ok && i < sk_X509_num(rest); i++)
        ok = PEM_write_X509(f, sk_X509_value(rest, i));
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    fclose(f);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* the chain above cert: from caPubs and extraCerts, issuer by issuer */
static STACK_OF(X509) *
chain_of(X509 *cert, const CMPR_PKIMESSAGE *rsp)
{
    STACK_OF(X509) *pool = sk_X509_new_null(), *chain = sk_X509_new_null();
    const CMPR_CERTREPMESSAGE *rep = cmpr_msg_get0_rep(rsp);
    X509 *cur = cert;

    if (pool == NULL || chain == NULL) {
        sk_X509_free(pool);
        sk_X509_free(chain);
        return NULL;
    }
    for (int i = 0; i < sk_X509_num(rsp->extraCerts); i++)
        sk_X509_push(pool, sk_X509_value(rsp->extraCerts, i));
    for (int i = 0; rep != NULL && i < sk_X509_num(rep->caPubs); i++)
        sk_X509_push(pool, sk_X509_value(rep->caPubs, i));
    for (int depth = 0; depth < 10; depth++) {
        X509 *up = NULL;

        if (X509_check_issued(cur, cur) == X509_V_OK)
            break;          /* self-signed: the top */
        for (int i = 0; i < sk_X509_num(pool) && up == NULL; i++)
            if (sk_X509_value(pool, i) != cur && X509_check_issued(sk_X509_value(pool, i), cur) == X509_V_OK)
                up = sk_X509_value(pool, i);
        if (up == NULL)
            break;
        sk_X509_push(chain, up);
        cur = up;
    }
    sk_X509_free(pool);
    return chain;
}

/* 0 if we accept the certificate; else why[] */
static int
check_cert(struct ee *e, X509 *cert, const CMPR_PKIMESSAGE *rsp, char *why, size_t wlen)
{
    EVP_PKEY *want = e->newpkey;

    if (want == NULL && e->oldcert != NULL)
        want = X509_get0_pubkey(e->oldcert);
    if (want != NULL && EVP_PKEY_eq(X509_get0_pubkey(cert), want) != 1) {
        snprintf(why, wlen, "the certificate is for another public key than ours");
        return -1;
    }
    if (e->trusted != NULL) {
        STACK_OF(X509) *chain = chain_of(cert, rsp);
        X509_STORE_CTX *sc = X509_STORE_CTX_new();
        int ok = chain != NULL && sc != NULL && X509_STORE_CTX_init(sc, e->trusted, cert, chain)
                 && X509_verify_cert(sc) == 1;

        if (!ok)
            snprintf(why, wlen, "the certificate does not chain to --trusted: %s",
                     sc != NULL ? X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)) : "?");
        X509_STORE_CTX_free(sc);
        sk_X509_free(chain);
        return ok ? 0 : -1;
    }
    return 0;
}

static int
save_cert(struct ee *e, X509 *cert, const CMPR_PKIMESSAGE *rsp)
{
    char subj[256];

    X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof(subj));
    if (e->out != NULL && write_pem_certs(e->out, cert, NULL) != 0) {
        say("cannot write the certificate to %s: %s", e->out, strerror(errno));
        return -1;
    }
    if (e->chain_out != NULL) {
        STACK_OF(X509) *chain = chain_of(cert, rsp);
        int r = chain != NULL ? write_pem_certs(e->chain_out, NULL, chain) : -1;

        sk_X509_free(chain);
        if (r != 0) {
            say("cannot write the chain to %s", e->chain_out);
            return -1;
        }
    }
    {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
        char *s = bn != NULL ? BN_bn2hex(bn) : NULL;

        say("certificate issued: subject %s, serial %s%s%s", subj, s != NULL ? s : "?",
            e->out != NULL ? ", written to " : "", e->out != NULL ? e->out : "");
        OPENSSL_free(s);
        BN_free(bn);
    }
    if (e->out == NULL) {
        BIO *b = BIO_new_fp(stdout, BIO_NOCLOSE);

        if (b != NULL)
            PEM_write_bio_X509(b, cert);
        BIO_free(b);
    }
    e->have_cert = 1;
    return 0;
}

/* genp: report what came; caCerts / rootCaCert into --out */
static int
take_genp(struct ee *e, const CMPR_PKIMESSAGE *rsp)
{
    const STACK_OF(CMPR_ITAV) *it = rsp->body->value.genp;
    int rc = EX_DONE;

    if (sk_CMPR_ITAV_num(it) == 0)
        say("genp: the server has nothing to say about %s", e->infotype != NULL ? e->infotype : "it");
    for (int i = 0; i < sk_CMPR_ITAV_num(it); i++) {
        const CMPR_ITAV *v = sk_CMPR_ITAV_value(it, i);
        int n = cmpr_itav_num(v);
        const char *name = cmpr_it_name(n);
        STACK_OF(X509) *certs = NULL;

        if (n == CMPR_IT_CA_CERTS) {
            certs = cmpr_itav_get1_ca_certs(v);
        } else if (n == CMPR_IT_ROOT_CA_CERT) {
            X509 *x = cmpr_itav_get1_root_ca_cert(v);

            if (x != NULL && (certs = sk_X509_new_null()) != NULL)
                sk_X509_push(certs, x);
            else
                X509_free(x);
        }
        say("genp: %s%s", name != NULL ? name : "an unknown infoType",
            v->infoValue == NULL ? " (no value)" : "");
        if (certs != NULL) {
            say("genp: %d certificate%s%s%s", sk_X509_num(certs), sk_X509_num(certs) == 1 ? "" : "s",
                e->out != NULL ? " written to " : "", e->out != NULL ? e->out : "");
            if (e->out != NULL && write_pem_certs(e->out, NULL, certs) != 0) {
                say("cannot write %s", e->out);
                rc = EX_LOCAL;
            } else if (e->out == NULL) {
                for (int k = 0; k < sk_X509_num(certs); k++)
                    PEM_write_X509(stdout, sk_X509_value(certs, k));
            }
        }
        sk_X509_pop_free(certs, X509_free);
    }
    return rc;
}

/* krp (RFC 9810 5.3.8): each recovered key, opened with the secret (a
 * password recipient) or our protection key, goes to --key-out (PEM, 0600)
 * and its certificate to --out, in the same order */
static int
take_krp(struct ee *e, const CMPR_PKIMESSAGE *rsp)
{
    const STACK_OF(CMPR_CERTIFIEDKEYPAIR) *hist = rsp->body->value.krp->keyPairHist;
    STACK_OF(X509) *certs = sk_X509_new_null();
    BIO *kb = NULL;
    int rc = EX_LOCAL, fd = -1, n = sk_CMPR_CERTIFIEDKEYPAIR_num(hist);

    if (e->key_out == NULL || e->out == NULL) {
        say("krr: say where the recovered keys and certificates go (--key-out FILE, --out FILE)");
        goto out;
    }
    if ((fd = open(e->key_out, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 || fchmod(fd, 0600) != 0
            || (kb = BIO_new_fd(fd, BIO_CLOSE)) == NULL) {
        say("cannot write %s: %s", e->key_out, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const CMPR_CERTIFIEDKEYPAIR *kp = sk_CMPR_CERTIFIEDKEYPAIR_value(hist, i);
        unsigned char *plain = NULL;
        size_t plen = 0;
        const unsigned char *p;
        EVP_PKEY *k = NULL;
        X509 *x = kp->certOrEncCert != NULL && kp->certOrEncCert->type == CMPR_CERTORENCCERT_CERTIFICATE
                  ? kp->certOrEncCert->value.certificate : NULL;

        if (kp->privateKey == NULL || kp->privateKey->type != CMPR_ENCRYPTEDKEY_ENVELOPEDDATA
                || cmpr_envdata_open(kp->privateKey->value.envelopedData, e->secret != NULL ? NULL : e->sigkey,
                                     e->sigcert, (const unsigned char *)e->secret,
                                     e->secret != NULL ? strlen(e->secret) : 0, &plain, &plen) != CMPR_OK) {
            say("krp: key %d of %d does not open with our %s", i + 1, n, e->secret != NULL ? "secret" : "key");
            goto out;
        }
        p = plain;
        k = d2i_AutoPrivateKey(NULL, &p, (long)plen);
        OPENSSL_clear_free(plain, plen);
        if (k == NULL || x == NULL || X509_check_private_key(x, k) != 1
                || !PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL)) {
            EVP_PKEY_free(k);
            say("krp: key %d of %d does not belong to its certificate", i + 1, n);
            goto out;
        }
        EVP_PKEY_free(k);
        X509_up_ref(x);
        sk_X509_push(certs, x);
    }
    if (write_pem_certs(e->out, NULL, certs) != 0) {
        say("cannot write the certificates to %s", e->out);
        goto out;
    }
    say("recovered %d key%s: keys written to %s (mode 0600), certificates to %s", n, n == 1 ? "" : "s",
        e->key_out, e->out);
    rc = EX_DONE;
 out:
    BIO_free(kb);
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

/* central key generation (RFC 9483 4.1.6): the private key came in the
 * answer, enveloped for our secret or certificate and signed by the CA;
 * it becomes our new key (checked against the certificate like one of ours) */
static int
take_central_key(struct ee *e, const struct cmpr_ee_result *res, const CMPR_PKIMESSAGE *rsp)
{
    char why[300];
    EVP_PKEY *k;

    if (res->central_key == NULL) {
        say("the certificate came without the private key the CA was to generate");
        return -1;
    }
    if (e->trusted == NULL) {
        say("a key generated by the CA needs --trusted to check who signed it");
        return -1;
    }
    k = cmpr_keygen_open(res->central_key, e->secret != NULL ? NULL : e->sigkey, e->sigcert,
                         (const unsigned char *)e->secret, e->secret != NULL ? strlen(e->secret) : 0,
                         e->trusted, rsp->extraCerts, why, sizeof(why));
    if (k == NULL) {
        say("the key the CA generated is not accepted: %s", why);
        return -1;
    }
    EVP_PKEY_free(e->newpkey);
    e->newpkey = k;
    return 0;
}

/* ---------------- one step of the transaction ---------------- */

static int
expected(int sent, int first, int got)
{
    int rep = first == CMPR_BODY_P10CR ? CMPR_BODY_CP : first + 1;

    if (got == CMPR_BODY_ERROR)
        return 1;
    switch (sent) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_KUR: case CMPR_BODY_P10CR: case CMPR_BODY_CCR:
        return got == rep;
    case CMPR_BODY_POLLREQ:
        /* RFC 9483 4.4: the final answer of whatever was delayed */
        return got == CMPR_BODY_POLLREP || got == rep || got == CMPR_BODY_PKICONF
               || got == CMPR_BODY_RP || got == CMPR_BODY_GENP || got == CMPR_BODY_KRP;
    case CMPR_BODY_KRR:
        return got == CMPR_BODY_KRP;
    case CMPR_BODY_CERTCONF:
        return got == CMPR_BODY_PKICONF;
    case CMPR_BODY_RR: case CMPR_BODY_GENM:
        return got == sent + 1;
    default:
        return 0;
    }
}

static void
report_rejection(const struct cmpr_ee_result *res, const char *unverified)
{
    char fi[512];

    cmpr_ee_failinfo_names(res->failinfo, fi, sizeof(fi));
    say("rejected by the server (%s, status %s)%s%s%s%s%s%s", cmpr_body_name(res->body),
        res->status >= 0 && cmpr_status_name(res->status) != NULL ? cmpr_status_name(res->status) : "none",
        fi[0] ? ", failInfo " : "", fi, res->text[0] ? ": " : "", res->text,
        unverified != NULL ? "; NOTE: the answer's protection did not verify: " : "",
        unverified != NULL ? unverified : "");
}

/* What to do with the answer rsp to sent: EX_* when the transaction ends;
 * EX_NEXT with *next_r (unprotected yet) and *wait_r seconds otherwise. */
static int
step(struct ee *e, const CMPR_PKIMESSAGE *sent, const CMPR_PKIMESSAGE *rsp, CMPR_PKIMESSAGE **next_r,
     long *wait_r)
{
    char why[600], vwhy[600];
    struct cmpr_ee_result res;
    struct cmpr_client_creds cr;
    int sent_body = cmpr_msg_bodytype(sent), verified;

    *next_r = NULL;
    *wait_r = 0;
    if (cmpr_ee_check_header(sent, rsp, why, sizeof(why)) != CMPR_OK) {
        /* after a delay the final answer may name the first request's nonce (RFC 9483 4.4) */
        const ASN1_OCTET_STRING *rn = rsp->header->recipNonce;

        if (!(sent_body == CMPR_BODY_POLLREQ && rn != NULL && e->first_nonce_len > 0
              && ASN1_STRING_length(rn) == e->first_nonce_len
              && memcmp(ASN1_STRING_get0_data(rn), e->first_nonce, (size_t)e->first_nonce_len) == 0
              && ASN1_OCTET_STRING_cmp(sent->header->transactionID, rsp->header->transactionID) == 0)) {
            say("the answer is not accepted: %s", why);
            return EX_VERIFY;
        }
    }
    cr = creds(e);
    verified = cmpr_client_verify(&cr, rsp, vwhy, sizeof(vwhy)) == 0;
    if (cmpr_ee_result(rsp, &res) != CMPR_OK || !expected(sent_body, e->first_body, res.body)) {
        say("unexpected answer %s to %s", cmpr_body_name(res.body) != NULL ? cmpr_body_name(res.body) : "?",
            cmpr_body_name(sent_body));
        return EX_VERIFY;
    }
    if (res.body == CMPR_BODY_ERROR && !(verified && res.status == CMPR_STATUS_WAITING)) {
        report_rejection(&res, verified ? NULL : vwhy);
        return EX_REJECTED;
    }
    if (!verified) {
        say("the answer is not accepted: %s", vwhy);
        return EX_VERIFY;
    }
    switch (res.body) {
    case CMPR_BODY_ERROR:           /* waiting: any request may be delayed (RFC 9810 5.3.22) */
        say("the server will answer later (%s); polling", res.text[0] ? res.text : "waiting");
        *next_r = cmpr_ee_new_pollreq(rsp, -1);
        break;
    case CMPR_BODY_POLLREP:
        *next_r = cmpr_ee_new_pollreq(rsp, res.cert_req_id);
        *wait_r = res.check_after;
        if (e->verbose)
            say("pollRep: check again after %ld s%s%s", res.check_after, res.text[0] ? ": " : "", res.text);
        break;
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP: {
        e->cert_req_id = res.cert_req_id;
        if (res.status == CMPR_STATUS_WAITING) {
            say("the request waits at the server (%s); polling", res.text[0] ? res.text : "waiting");
            *next_r = cmpr_ee_new_pollreq(rsp, res.cert_req_id);
            break;
        }
        if (res.status != CMPR_STATUS_ACCEPTED && res.status != CMPR_STATUS_GRANTED_WITH_MODS) {
            report_rejection(&res, NULL);
            return EX_REJECTED;
        }
        if (res.cert == NULL) {
            say(res.encrypted_cert ? "the certificate came encrypted (indirect POP), which this client "
                "does not ask for" : "the answer says accepted but carries no certificate");
            return EX_VERIFY;
        }
        if (e->central != NULL && take_central_key(e, &res, rsp) != 0)
            return EX_VERIFY;
        if (check_cert(e, res.cert, rsp, why, sizeof(why)) != 0) {
            say("the new certificate is not accepted: %s; telling the server (certConf rejection)", why);
            e->cert_rejected = 1;
            if (res.implicit_confirm)
                return EX_VERIFY;
            *next_r = cmpr_ee_new_certconf(rsp, res.cert_req_id, res.cert, 0, why);
            break;
        }
        if (save_cert(e, res.cert, rsp) != 0)
            return EX_LOCAL;
        if (e->central != NULL) {
            if (save_key(e->key_out, e->newpkey) != 0)
                return EX_LOCAL;
            say("the key the CA generated is written to %s", e->key_out);
        }
        if (e->implicit && res.implicit_confirm) {
            say("implicit confirmation granted: no certConf; the transaction is complete");
            return EX_DONE;         /* RFC 9483 4.1.1: no certConf */
        }
        *next_r = cmpr_ee_new_certconf(rsp, res.cert_req_id, res.cert, 1, NULL);
        break;
    }
    case CMPR_BODY_PKICONF:
        if (e->cert_rejected)
            return EX_VERIFY;
        say("confirmed: the transaction is complete");
        return EX_DONE;
    case CMPR_BODY_RP:
        if (res.status == CMPR_STATUS_ACCEPTED || res.status == CMPR_STATUS_GRANTED_WITH_MODS) {
            say("revoked%s%s", res.text[0] ? ": " : "", res.text);
            return EX_DONE;
        }
        report_rejection(&res, NULL);
        return EX_REJECTED;
    case CMPR_BODY_GENP:
        return take_genp(e, rsp);
    case CMPR_BODY_KRP:
        if (res.status != CMPR_STATUS_ACCEPTED && res.status != CMPR_STATUS_GRANTED_WITH_MODS) {
            report_rejection(&res, NULL);
            return EX_REJECTED;
        }
        return take_krp(e, rsp);
    default:
        return EX_VERIFY;
    }
    if (*next_r == NULL) {
        say("cannot build the next message");
        return EX_LOCAL;
    }
    return EX_NEXT;
}

/* ---------------- the state file (offline and interrupted transactions) ---------------- */

static int
b64_line(FILE *f, const char *key, const unsigned char *d, size_t n)
{
    unsigned char *o = malloc(4 * ((n + 2) / 3) + 1);

    if (o == NULL)
        return -1;
    EVP_EncodeBlock(o, d, (int)n);
    fprintf(f, "%s=%s\n", key, o);
    free(o);
    return 0;
}

/* sent: the request the answer must match; pending: the next one to send (or NULL) */
static int
save_state(struct ee *e, const CMPR_PKIMESSAGE *sent, const CMPR_PKIMESSAGE *pending)
{
    char tmp[4200];
    unsigned char *der = NULL;
    size_t len = 0;
    FILE *f;
    int fd, ok = 1;

    if (e->state_path == NULL)
        return 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", e->state_path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 || (f = fdopen(fd, "w")) == NULL) {
        if (fd >= 0)
            close(fd);
        say("cannot write the state file %s: %s", e->state_path, strerror(errno));
        return -1;
    }
    fprintf(f, "cmprouter-ee-state 1\ncmd=%s\n", e->cmd);
#define S(k, v) do { if ((v) != NULL) fprintf(f, "%s=%s\n", k, v); } while (0)
    S("key", e->key_out != NULL ? e->key_out : e->newkey);
    S("subject", e->subject);
    S("oldcert", e->oldcert_path);
    S("infotype", e->infotype);
    S("ref", e->ref);
    if (e->secret_spec != NULL && strncmp(e->secret_spec, "env:", 4) == 0)
        S("secret", e->secret_spec);    /* never the secret itself */
    S("mac", e->mac);
    S("cert", e->cert_path);
    S("signkey", e->key_path);
    S("extracerts", e->extracerts_path);
    S("recipient", e->recipient);
    S("trusted", e->trusted_path);
    S("srvcert", e->srvcert_path);
    S("out", e->out);
    S("chain_out", e->chain_out);
    S("server", e->server);
    S("request_out", e->request_out);
#undef S
    fprintf(f, "implicit=%d\ncert_rejected=%d\n", e->implicit, e->cert_rejected);
    if (e->first_nonce_len > 0)
        b64_line(f, "first_nonce", e->first_nonce, (size_t)e->first_nonce_len);
    if (cmpr_msg_encode(sent, &der, &len) != CMPR_OK || b64_line(f, "sent", der, len) != 0)
        ok = 0;
    OPENSSL_free(der);
    der = NULL;
    if (pending != NULL && (cmpr_msg_encode(pending, &der, &len) != CMPR_OK
                            || b64_line(f, "pending", der, len) != 0))
        ok = 0;
    OPENSSL_free(der);
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    fclose(f);
    if (!ok || rename(tmp, e->state_path) != 0) {
        say("cannot write the state file %s", e->state_path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

static CMPR_PKIMESSAGE *
b64_msg(const char *v)
{
    size_t n = strlen(v);
    unsigned char *d = malloc(n + 1);
    CMPR_PKIMESSAGE *m = NULL;
    int len;

    if (d == NULL)
        return NULL;
    len = EVP_DecodeBlock(d, (const unsigned char *)v, (int)n);
    if (len > 0) {
        while (n > 0 && v[n - 1] == '=') {     /* DecodeBlock counts padding */
            len--;
            n--;
        }
        (void)cmpr_msg_decode(d, (size_t)len, &m, NULL);
    }
    free(d);
    return m;
}

/* Fills e from the state file; *sent_r and *pending_r (may be NULL). Options
 * given on the command line win over the saved ones. */
static int
load_state(struct ee *e, CMPR_PKIMESSAGE **sent_r, CMPR_PKIMESSAGE **pending_r)
{
    FILE *f = fopen(e->state_path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0;

    *sent_r = *pending_r = NULL;
    if (f == NULL) {
        say("cannot read the state file %s: %s", e->state_path, strerror(errno));
        return -1;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        char *v, *k = line;

        if (n > 4 * 1024 * 1024) {      /* a message is at most 1 MiB, base64 4/3 of it */
            lineno = 0;
            break;
        }
        line[strcspn(line, "\r\n")] = '\0';
        if (lineno++ == 0) {
            if (strcmp(line, "cmprouter-ee-state 1") != 0)
                break;
            continue;
        }
        if ((v = strchr(k, '=')) == NULL)
            continue;
        *v++ = '\0';
#define L(key, field) if (strcmp(k, key) == 0) { if (e->field == NULL) e->field = keep(e, strdup(v)); continue; }
        L("cmd", cmd) L("key", newkey) L("subject", subject) L("oldcert", oldcert_path)
        L("infotype", infotype) L("ref", ref) L("secret", secret_spec) L("mac", mac)
        L("cert", cert_path) L("signkey", key_path) L("extracerts", extracerts_path)
        L("recipient", recipient) L("trusted", trusted_path) L("srvcert", srvcert_path)
        L("out", out) L("chain_out", chain_out) L("server", server) L("request_out", request_out)
#undef L
        if (strcmp(k, "implicit") == 0)
            e->implicit = atoi(v);
        else if (strcmp(k, "cert_rejected") == 0)
            e->cert_rejected = atoi(v);
        else if (strcmp(k, "first_nonce") == 0) {
            unsigned char buf[96];
            int len = (int)strlen(v) <= 88 ? EVP_DecodeBlock(buf, (const unsigned char *)v, (int)strlen(v)) : -1;

            if (len > 0 && len <= (int)sizeof(e->first_nonce)) {
                for (size_t p = strlen(v); p > 0 && v[p - 1] == '='; p--)
                    len--;
                memcpy(e->first_nonce, buf, (size_t)len);
                e->first_nonce_len = len;
            }
        } else if (strcmp(k, "sent") == 0 && *sent_r == NULL)
            *sent_r = b64_msg(v);
        else if (strcmp(k, "pending") == 0 && *pending_r == NULL)
            *pending_r = b64_msg(v);
    }
    free(line);
    fclose(f);
    if (lineno == 0 || e->cmd == NULL || *sent_r == NULL) {
        say("%s is not a cmprouter state file (or it is damaged)", e->state_path);
        CMPR_PKIMESSAGE_free(*sent_r);
        CMPR_PKIMESSAGE_free(*pending_r);
        *sent_r = *pending_r = NULL;
        return -1;
    }
    return 0;
}

/* ---------------- set-up from the options ---------------- */

X509_STORE *
cmpr_client_load_trusted(const char *path)
{
    STACK_OF(X509) *sk = cmpr_load_certs(path);
    X509_STORE *st = sk != NULL ? X509_STORE_new() : NULL;

    for (int i = 0; st != NULL && i < sk_X509_num(sk); i++)
        X509_STORE_add_cert(st, sk_X509_value(sk, i));
    sk_X509_pop_free(sk, X509_free);
    return st;
}

static int
load_creds(struct ee *e, int need_newkey)
{
    if (e->secret_spec != NULL && (e->secret = cmpr_client_secret(e->secret_spec)) == NULL) {
        say("--secret takes pass:TEXT or env:VAR (and VAR must be set)");
        return EX_USAGE;
    }
    if (e->secret != NULL && e->ref == NULL) {
        say("--secret needs --ref (the reference the server knows the secret by)");
        return EX_USAGE;
    }
    if (e->oldcert_path != NULL && (e->oldcert = cmpr_load_cert(e->oldcert_path)) == NULL) {
        say("cannot read a certificate from --oldcert %s", e->oldcert_path);
        return EX_LOCAL;
    }
    /* kur and rr are signed with the old certificate's key by default (RFC 9483 4.1.3, 4.2) */
    if (e->cert_path == NULL && e->key_path != NULL && e->oldcert_path != NULL && e->secret == NULL)
        e->cert_path = e->oldcert_path;
    if (e->cert_path != NULL && e->secret == NULL) {
        if ((e->sigcert = cmpr_load_cert(e->cert_path)) == NULL) {
            say("cannot read a certificate from --cert %s", e->cert_path);
            return EX_LOCAL;
        }
        if (e->key_path == NULL || (e->sigkey = cmpr_load_key(e->key_path, e->keypass)) == NULL) {
            say("--cert needs --key with its private key%s%s", e->key_path ? ": cannot read " : "",
                e->key_path ? e->key_path : "");
            return EX_LOCAL;
        }
        if (X509_check_private_key(e->sigcert, e->sigkey) != 1) {
            say("--key %s does not belong to --cert %s", e->key_path, e->cert_path);
            return EX_LOCAL;
        }
    }
    if (e->extracerts_path != NULL && (e->extracerts = cmpr_load_certs(e->extracerts_path)) == NULL) {
        say("cannot read certificates from --extracerts %s", e->extracerts_path);
        return EX_LOCAL;
    }
    if (e->trusted_path != NULL && (e->trusted = cmpr_client_load_trusted(e->trusted_path)) == NULL) {
        say("cannot read certificates from --trusted %s", e->trusted_path);
        return EX_LOCAL;
    }
    if (e->srvcert_path != NULL && (e->srvcert = cmpr_load_cert(e->srvcert_path)) == NULL) {
        say("cannot read a certificate from --srvcert %s", e->srvcert_path);
        return EX_LOCAL;
    }
    if (e->archive_path != NULL && (e->archive_to = cmpr_load_cert(e->archive_path)) == NULL) {
        say("cannot read the CA's encryption certificate from --archive-key %s", e->archive_path);
        return EX_LOCAL;
    }
    if (e->newkey != NULL && e->central == NULL && (need_newkey || !is_key_spec(e->newkey))) {
        if (is_key_spec(e->newkey)) {
            if ((e->newpkey = cmpr_client_gen_key(e->newkey)) == NULL) {
                say("--newkey %s: cannot make such a key (ec:P-256, ec:P-384, rsa:2048, rsa:3072, "
                    "ed25519, or a key file)", e->newkey);
                return EX_USAGE;
            }
        } else if ((e->newpkey = cmpr_load_key(e->newkey, NULL)) == NULL) {
            say("cannot read a private key from --newkey %s", e->newkey);
            return EX_LOCAL;
        }
    }
    return 0;
}

/* the key file name for a generated key: --key-out, else from --out */
static int
place_new_key(struct ee *e)
{
    static char buf[4200];

    if (e->newkey == NULL || (!is_key_spec(e->newkey) && e->central == NULL))
        return 0;
    if (e->key_out == NULL) {
        const char *base = e->out != NULL ? e->out : e->request_out;
        const char *dot;

        if (base == NULL) {
            say("--newkey %s makes a new key: say where it goes with --key-out FILE (or --out)",
                e->newkey);
            return EX_USAGE;
        }
        dot = strrchr(base, '.');
        if (dot != NULL && strchr(dot, '/') == NULL)
            snprintf(buf, sizeof(buf), "%.*s.key", (int)(dot - base), base);
        else
            snprintf(buf, sizeof(buf), "%s.key", base);
        e->key_out = buf;
    }
    if (e->central != NULL) {
        /* the key comes with the answer: its file must be free now */
        if (access(e->key_out, F_OK) == 0) {
            say("the key file %s exists (never overwritten; give --key-out)", e->key_out);
            return EX_LOCAL;
        }
        return 0;
    }
    if (save_key(e->key_out, e->newpkey) != 0)
        return EX_LOCAL;
    say("new %s key written to %s", e->newkey, e->key_out);
    return 0;
}

static CMPR_PKIMESSAGE *
first_request(struct ee *e)
{
    int body = cmpr_body_from_name(e->cmd);
    CMPR_PKIMESSAGE *m = NULL;
    X509_NAME *subject = NULL;
    GENERAL_NAMES *sans = NULL;

    e->first_body = body;
    if (e->subject != NULL && (subject = cmpr_client_parse_name(e->subject)) == NULL) {
        say("--subject '%s' is not a name like /CN=host/O=Org", e->subject);
        return NULL;
    }
    if (e->san != NULL && (sans = parse_sans(e->san)) == NULL) {
        say("--san '%s': give dns:NAME, ip:ADDRESS, uri:URI or email:ADDRESS, comma-separated", e->san);
        X509_NAME_free(subject);
        return NULL;
    }
    switch (body) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_KUR: case CMPR_BODY_CCR: {
        struct cmpr_ee_certreq r = { body, e->newpkey, subject, sans, e->oldcert, e->profile,
                                     e->implicit, e->days, e->archive_to, e->central };

        if (body == CMPR_BODY_KUR && e->oldcert == NULL) {
            say("kur needs --oldcert (the certificate to renew) and --key (its private key)");
            break;
        }
        if (body != CMPR_BODY_KUR)
            r.oldcert = NULL;
        if (subject == NULL && body != CMPR_BODY_KUR) {
            say("%s needs --subject", e->cmd);
            break;
        }
        m = cmpr_ee_new_certreq(&r);
        break;
    }
    case CMPR_BODY_P10CR: {
        X509_REQ *csr = NULL;

        if (e->csr != NULL) {
            BIO *b = BIO_new_file(e->csr, "r");

            if (b != NULL && (csr = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL)) == NULL
                    && BIO_reset(b) == 0)
                csr = d2i_X509_REQ_bio(b, NULL);
            BIO_free(b);
            if (csr == NULL) {
                say("cannot read a CSR from --csr %s", e->csr);
                break;
            }
            if (e->newpkey == NULL)
                e->newpkey = X509_REQ_get_pubkey(csr);
        } else if (subject != NULL) {
            const EVP_MD *md = EVP_PKEY_is_a(e->newpkey, "ED25519") || EVP_PKEY_is_a(e->newpkey, "ED448")
                               ? NULL : EVP_sha256();

            if ((csr = X509_REQ_new()) == NULL || !X509_REQ_set_version(csr, 0)
                    || !X509_REQ_set_subject_name(csr, subject) || !X509_REQ_set_pubkey(csr, e->newpkey)) {
                X509_REQ_free(csr);
                csr = NULL;
            }
            if (csr != NULL && sans != NULL) {
                STACK_OF(X509_EXTENSION) *exts = NULL;

                if (X509V3_add1_i2d(&exts, NID_subject_alt_name, sans, 0, 0) != 1
                        || !X509_REQ_add_extensions(csr, exts)) {
                    X509_REQ_free(csr);
                    csr = NULL;
                }
                sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
            }
            if (csr != NULL && X509_REQ_sign(csr, e->newpkey, md) <= 0) {
                X509_REQ_free(csr);
                csr = NULL;
            }
            if (csr == NULL)
                say("cannot make the CSR: %s", ossl_why());
        } else {
            say("p10cr needs --csr FILE, or --newkey and --subject to make one");
        }
        if (csr != NULL)
            m = cmpr_ee_new_p10cr(csr, e->profile, e->implicit);
        X509_REQ_free(csr);
        break;
    }
    case CMPR_BODY_KRR:
        if (subject == NULL && e->sigcert != NULL)
            subject = X509_NAME_dup(X509_get_subject_name(e->sigcert));
        if (subject == NULL) {
            say("krr needs --subject (whose archived keys), or --cert (its own)");
            break;
        }
        m = cmpr_ee_new_krr(subject);
        break;
    case CMPR_BODY_RR:
        if (e->oldcert == NULL) {
            say("rr needs --oldcert (the certificate to revoke)");
            break;
        }
        m = cmpr_ee_new_rr(e->oldcert, e->reason);
        break;
    case CMPR_BODY_GENM: {
        int it = -1;

        if (e->infotype != NULL && (it = cmpr_it_from_name(e->infotype)) < 0) {
            say("--infotype '%s' is not known (caCerts, rootCaCert, certReqTemplate, crlStatusList, "
                "certProfile, signKeyPairTypes, ...)", e->infotype);
            break;
        }
        m = cmpr_ee_new_genm(it);
        break;
    }
    default:
        break;
    }
    X509_NAME_free(subject);
    GENERAL_NAMES_free(sans);
    if (m != NULL && m->header->senderNonce != NULL
            && ASN1_STRING_length(m->header->senderNonce) <= (int)sizeof(e->first_nonce)) {
        e->first_nonce_len = ASN1_STRING_length(m->header->senderNonce);
        memcpy(e->first_nonce, ASN1_STRING_get0_data(m->header->senderNonce), (size_t)e->first_nonce_len);
    }
    return m;
}

/* ---------------- online: the whole transaction ---------------- */

/* Sends req (protected here) and goes on until the end. Consumes req. */
static int
run_online(struct ee *e, CMPR_PKIMESSAGE *req)
{
    char err[600], tag[80];
    struct cmpr_out *io = cmpr_out_new(e->server, &e->io, err, sizeof(err));
    long deadline = (cmpr_mono_ms() / 1000) + e->total_timeout;
    int rc = EX_LOCAL;

    if (io == NULL) {
        say("%s", err);
        CMPR_PKIMESSAGE_free(req);
        return EX_USAGE;
    }
    tid_hex(req, tag, sizeof(tag));
    if (protect(e, req) != 0) {
        say("cannot protect the request: %s", ossl_why());
        goto out;
    }
    for (int round = 0; round < 10000; round++) {
        unsigned char *der = NULL, *rder = NULL;
        size_t len = 0, rlen = 0;
        CMPR_PKIMESSAGE *rsp = NULL, *next = NULL;
        struct cmpr_decode_err de;
        long wait = 0;

        show(e, "request", req);
        if (cmpr_msg_encode(req, &der, &len) != CMPR_OK) {
            say("cannot encode the request");
            goto out;
        }
        if (cmpr_out_exchange(io, tag, der, len, &rder, &rlen, err, sizeof(err)) != 0) {
            OPENSSL_free(der);
            say("%s: %s", e->server, err);
            rc = EX_TRANSPORT;
            (void)save_state(e, req, NULL);
            goto out;
        }
        OPENSSL_free(der);
        if (cmpr_msg_decode(rder, rlen, &rsp, &de) != CMPR_OK) {
            say("the answer is not a PKIMessage: offset %zu: %s", de.offset, de.what);
            free(rder);
            rc = EX_VERIFY;
            goto out;
        }
        free(rder);
        show(e, "answer", rsp);
        rc = step(e, req, rsp, &next, &wait);
        CMPR_PKIMESSAGE_free(rsp);
        if (rc != EX_NEXT)
            goto out;
        if (protect(e, next) != 0) {
            say("cannot protect the next request: %s", ossl_why());
            CMPR_PKIMESSAGE_free(next);
            rc = EX_LOCAL;
            goto out;
        }
        if (wait > e->max_wait)
            wait = e->max_wait;
        if ((cmpr_mono_ms() / 1000) + wait > deadline) {
            say("still waiting after %ld s (--total-timeout); transaction %s", e->total_timeout, tag);
            if (e->state_path != NULL && save_state(e, req, next) == 0)
                say("continue later with: cmprouter poll --state %s", e->state_path);
            CMPR_PKIMESSAGE_free(next);
            rc = EX_WAITING;
            goto out;
        }
        if (wait > 0)
            sleep((unsigned)wait);
        CMPR_PKIMESSAGE_free(req);
        req = next;
    }
 out:
    if (rc == EX_DONE && e->state_path != NULL)
        (void)unlink(e->state_path);
    CMPR_PKIMESSAGE_free(req);
    cmpr_out_free(io);
    return rc;
}

/* ---------------- offline: one step per invocation ---------------- */

static int
write_request(struct ee *e, CMPR_PKIMESSAGE *m, const char *path)
{
    unsigned char *der = NULL;
    size_t len = 0;
    char tmp[4200];
    FILE *f;
    int ok;

    if (cmpr_msg_encode(m, &der, &len) != CMPR_OK)
        return -1;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((f = fopen(tmp, "wb")) == NULL) {
        say("cannot write %s: %s", path, strerror(errno));
        OPENSSL_free(der);
        return -1;
    }
    ok = fwrite(der, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    fclose(f);
    OPENSSL_free(der);
    if (!ok || rename(tmp, path) != 0) {
        say("cannot write %s", path);
        unlink(tmp);
        return -1;
    }
    show(e, "request", m);
    return 0;
}

static int
next_offline(struct ee *e, CMPR_PKIMESSAGE *next, long wait)
{
    const char *path = e->request_out;
    char tag[80];

    if (path == NULL) {
        say("say where the next request goes with --request-out FILE");
        return EX_USAGE;
    }
    if (protect(e, next) != 0 || write_request(e, next, path) != 0 || save_state(e, next, NULL) != 0)
        return EX_LOCAL;
    tid_hex(next, tag, sizeof(tag));
    say("%s written to %s (transaction %s); carry it to the CA, then: cmprouter finish --state %s "
        "--response ANSWER%s", cmpr_body_name(cmpr_msg_bodytype(next)), path, tag, e->state_path,
        wait > 0 ? " (the CA asks to wait before polling)" : "");
    return EX_WAITING;
}

/* ---------------- commands ---------------- */

static const char client_usage[] =
    "usage: cmprouter ir|cr|kur|p10cr|ccr|krr|rr|genm --server URI [options]\n"
    "       cmprouter ir|cr|kur|p10cr|ccr|krr|rr|genm --request-out FILE [--state FILE] [options]\n"
    "       cmprouter finish --state FILE --response FILE [--request-out FILE]\n"
    "       cmprouter poll --state FILE [--server URI]\n"
    "URI: http[s]://host[:port]/path  tcp://host[:port]  file:OUTDIR,INDIR\n"
    "     sftp://user@host[:port]/INBOX,OUTBOX  mailto:ca@example.org\n"
    "See cmprouter(1) for every option.\n";

static int
parse_opts(struct ee *e, int argc, char **argv, const char **response)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

#define O(name, field) if (strcmp(a, name) == 0 && v != NULL) { e->field = v; i++; continue; }
        O("--server", server) O("--newkey", newkey) O("--key-out", key_out) O("--subject", subject)
        O("--san", san) O("--profile", profile) O("--csr", csr) O("--oldcert", oldcert_path)
        O("--infotype", infotype) O("--ref", ref) O("--secret", secret_spec) O("--mac", mac)
        O("--cert", cert_path) O("--key", key_path) O("--keypass", keypass)
        O("--extracerts", extracerts_path) O("--recipient", recipient) O("--trusted", trusted_path)
        O("--srvcert", srvcert_path) O("--out", out) O("--chain-out", chain_out)
        O("--request-out", request_out) O("--state", state_path)
        O("--tls-ca", io.tls_ca) O("--tls-cert", io.tls_cert) O("--tls-key", io.tls_key)
        O("--ssh-identity", io.ssh_identity) O("--ssh-known-hosts", io.ssh_known_hosts)
        O("--smtp", io.smtp) O("--smtp-user", io.smtp_user) O("--from", io.mail_from)
        O("--maildir", io.maildir) O("--archive-key", archive_path)
#undef O
        if (strcmp(a, "--response") == 0 && v != NULL) {
            *response = v;
            i++;
        } else if (strcmp(a, "--smtp-secret") == 0 && v != NULL) {
            if ((e->io.smtp_secret = cmpr_client_secret(v)) == NULL) {
                say("--smtp-secret takes pass:TEXT or env:VAR");
                return EX_USAGE;
            }
            i++;
        } else if (strcmp(a, "--reason") == 0 && v != NULL) {
            if ((e->reason = parse_reason(v)) < -1) {
                say("--reason: 0..10 or a name (keyCompromise, superseded, cessationOfOperation, ...)");
                return EX_USAGE;
            }
            i++;
        } else if ((strcmp(a, "--timeout") == 0 || strcmp(a, "--total-timeout") == 0
                    || strcmp(a, "--max-wait") == 0 || strcmp(a, "--days") == 0) && v != NULL) {
            char *end;
            long n = strtol(v, &end, 10);

            if (*end != '\0' || n <= 0 || n > 10L * 365 * 86400) {
                say("%s takes a positive number", a);
                return EX_USAGE;
            }
            if (strcmp(a, "--timeout") == 0)
                e->io.timeout_ms = n * 1000;
            else if (strcmp(a, "--total-timeout") == 0)
                e->total_timeout = n;
            else if (strcmp(a, "--max-wait") == 0)
                e->max_wait = n;
            else
                e->days = n;
            i++;
        } else if (strcmp(a, "--tcp-framing") == 0 && v != NULL) {
            if (strcmp(v, "10") == 0)
                e->io.tcp_version = 10;
            else if (strcmp(v, "2510") == 0)
                e->io.tcp_version = 0;
            else {
                say("--tcp-framing is 10 or 2510");
                return EX_USAGE;
            }
            i++;
        } else if (strcmp(a, "--smtp-starttls") == 0) {
            e->io.smtp_starttls = CMPR_SMTP_TLS_REQUIRED;
        } else if (strcmp(a, "--implicit-confirm") == 0) {
            e->implicit = 1;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            e->verbose = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(client_usage, stdout);
            return -1;
        } else {
            say("%s: unexpected argument '%s'%s", argv[0], a, v == NULL && a[0] == '-' ? " (needs a value?)" : "");
            fputs(client_usage, stderr);
            return EX_USAGE;
        }
    }
    if (e->mac != NULL && strcmp(e->mac, "pbm") != 0 && strcmp(e->mac, "pbmac1") != 0) {
        say("--mac is pbm (PasswordBasedMac) or pbmac1");
        return EX_USAGE;
    }
    return 0;
}

static void
ee_free(struct ee *e)
{
    EVP_PKEY_free(e->newpkey);
    EVP_PKEY_free(e->sigkey);
    X509_free(e->sigcert);
    X509_free(e->oldcert);
    X509_free(e->srvcert);
    X509_free(e->archive_to);
    sk_X509_pop_free(e->extracerts, X509_free);
    X509_STORE_free(e->trusted);
    for (size_t i = 0; i < e->n_owned; i++)
        free(e->owned[i]);
}

static void
ee_init(struct ee *e, const char *cmd)
{
    memset(e, 0, sizeof(*e));
    e->cmd = cmd;
    e->reason = -1;
    e->total_timeout = 600;
    e->max_wait = 60;
    e->io.tcp_version = 10;
}

int
cmpr_client_is_command(const char *cmd)
{
    static const char *const cmds[] = { "ir", "cr", "kur", "p10cr", "ccr", "krr", "rr", "genm", "poll", "finish",
                                        NULL };

    for (size_t i = 0; cmds[i] != NULL; i++)
        if (strcmp(cmd, cmds[i]) == 0)
            return 1;
    return 0;
}

static int
cmd_request(struct ee *e)
{
    CMPR_PKIMESSAGE *req;
    int rc;
    int body = cmpr_body_from_name(e->cmd);
    int wants_key;

    if (e->newkey != NULL && strncmp(e->newkey, "central", 7) == 0
            && (e->newkey[7] == '\0' || e->newkey[7] == ':')) {
        if (body != CMPR_BODY_IR && body != CMPR_BODY_CR && body != CMPR_BODY_KUR) {
            say("--newkey central is for ir, cr and kur");
            return EX_USAGE;
        }
        if (e->archive_path != NULL) {
            say("--newkey central and --archive-key do not go together (the CA has the key)");
            return EX_USAGE;
        }
        e->central = e->newkey[7] == ':' ? e->newkey + 8 : "";
    }
    wants_key = e->central == NULL && (body == CMPR_BODY_IR || body == CMPR_BODY_CR || body == CMPR_BODY_KUR
                                       || body == CMPR_BODY_CCR || (body == CMPR_BODY_P10CR && e->csr == NULL));

    if ((e->server == NULL) == (e->request_out == NULL)) {
        say("%s needs --server URI, or --request-out FILE for a site without a connection", e->cmd);
        return EX_USAGE;
    }
    if (wants_key && e->newkey == NULL && e->central == NULL) {
        if (body == CMPR_BODY_KUR && e->key_path != NULL) {
            e->newkey = "ec:P-256";     /* a renewal brings a new key unless told otherwise */
        } else {
            say("%s needs --newkey (ec:P-256, ec:P-384, rsa:2048, rsa:3072, ed25519, or a key file)",
                e->cmd);
            return EX_USAGE;
        }
    }
    if (e->request_out != NULL && e->state_path == NULL) {
        static char sp[4200];

        snprintf(sp, sizeof(sp), "%s.state", e->request_out);
        e->state_path = sp;
    }
    if ((rc = load_creds(e, wants_key)) != 0)
        return rc;
    if (e->secret == NULL && e->sigkey == NULL)
        say("warning: the request goes unprotected (no --ref/--secret, no --cert/--key)");
    if ((req = first_request(e)) == NULL)
        return EX_USAGE;
    if ((rc = place_new_key(e)) != 0) {
        CMPR_PKIMESSAGE_free(req);
        return rc;
    }
    if (e->request_out != NULL) {
        rc = next_offline(e, req, 0);
        CMPR_PKIMESSAGE_free(req);
        return rc;
    }
    return run_online(e, req);
}

static int
cmd_finish(struct ee *e, const char *response)
{
    CMPR_PKIMESSAGE *sent = NULL, *pending = NULL, *rsp = NULL, *next = NULL;
    unsigned char *raw = NULL;
    size_t len = 0;
    struct cmpr_decode_err de;
    long wait = 0;
    int rc;

    if (e->state_path == NULL || response == NULL) {
        say("finish needs --state FILE and --response FILE");
        return EX_USAGE;
    }
    if (load_state(e, &sent, &pending) != 0)
        return EX_LOCAL;
    e->first_body = cmpr_body_from_name(e->cmd);
    if ((rc = load_creds(e, 1)) != 0)
        goto out;
    if (cmpr_fs_read(response, CMPR_MAX_MSG_SIZE, 0, &raw, &len) != 0) {
        say("cannot read %s: %s", response, errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
        rc = EX_LOCAL;
        goto out;
    }
    if (cmpr_msg_decode(raw, len, &rsp, &de) != CMPR_OK) {
        say("%s is not a PKIMessage: offset %zu: %s", response, de.offset, de.what);
        rc = EX_VERIFY;
        goto out;
    }
    show(e, "answer", rsp);
    rc = step(e, sent, rsp, &next, &wait);
    if (rc == EX_NEXT)
        rc = next_offline(e, next, wait);
    else if (rc == EX_DONE)
        (void)unlink(e->state_path);
 out:
    free(raw);
    CMPR_PKIMESSAGE_free(sent);
    CMPR_PKIMESSAGE_free(pending);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(next);
    return rc;
}

static int
cmd_poll(struct ee *e)
{
    CMPR_PKIMESSAGE *sent = NULL, *pending = NULL;
    int rc;

    if (e->state_path == NULL) {
        say("poll needs --state FILE (written by an earlier run that was left waiting)");
        return EX_USAGE;
    }
    if (load_state(e, &sent, &pending) != 0)
        return EX_LOCAL;
    e->first_body = cmpr_body_from_name(e->cmd);
    e->request_out = NULL;
    if (e->server == NULL) {
        say("poll needs --server URI (none was saved in %s)", e->state_path);
        rc = EX_USAGE;
    } else if ((rc = load_creds(e, 1)) == 0) {
        /* the next request was made when we stopped; else the last one goes again */
        rc = run_online(e, pending != NULL ? pending : sent);
        if (pending != NULL)
            CMPR_PKIMESSAGE_free(sent);
        sent = pending = NULL;
    }
    CMPR_PKIMESSAGE_free(sent);
    CMPR_PKIMESSAGE_free(pending);
    return rc;
}

int
cmpr_client_main(int argc, char **argv)
{
    struct ee e;
    const char *response = NULL;
    int rc;

    ee_init(&e, argv[0]);
    if ((rc = parse_opts(&e, argc, argv, &response)) != 0)
        return rc < 0 ? 0 : rc;
    if (strcmp(argv[0], "finish") == 0) {
        e.cmd = NULL;
        rc = cmd_finish(&e, response);
    } else if (strcmp(argv[0], "poll") == 0) {
        e.cmd = NULL;
        rc = cmd_poll(&e);
    } else {
        rc = cmd_request(&e);
    }
    ee_free(&e);
    return rc;
}
