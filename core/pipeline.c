/*
 * decode -> header checks -> protection -> authorization -> transaction ->
 * handler -> protected answer. RFC 9810 / RFC 9483 rules are cited where they
 * are applied. Runs on worker threads; all shared state is in the store.
 */
#include "core/core.h"
#include "core/ca.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"
#include "core/txn.h"
#include "core/pipeline.h"
#include "codec/msg.h"
#include "codec/oids.h"
#include "codec/print.h"
#include "codec/protect.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>


/* ---------------- small helpers ---------------- */

void
pl_hex(const unsigned char *d, size_t len, char *out, size_t outlen)
{
    size_t i;

    out[0] = '\0';
    for (i = 0; i < len && 2 * i + 2 < outlen; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void
pl_octets(const ASN1_OCTET_STRING *os, unsigned char *dst, size_t cap, size_t *len_r)
{
    *len_r = 0;
    if (os == NULL || (size_t)ASN1_STRING_length(os) > cap)
        return;
    memcpy(dst, ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os));
    *len_r = (size_t)ASN1_STRING_length(os);
}

int
pl_octets_equal(const ASN1_OCTET_STRING *os, const unsigned char *d, size_t len)
{
    return os != NULL && (size_t)ASN1_STRING_length(os) == len
        && memcmp(ASN1_STRING_get0_data(os), d, len) == 0;
}

void __attribute__((format(printf, 3, 4)))
pl_audit(struct req *q, const char *event, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    const unsigned char *tid = NULL;
    size_t tid_len = 0;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (q->msg != NULL && q->msg->header->transactionID != NULL) {
        tid = ASN1_STRING_get0_data(q->msg->header->transactionID);
        tid_len = (size_t)ASN1_STRING_length(q->msg->header->transactionID);
        if (tid_len > CMPR_STORE_MAX_ID)
            tid_len = CMPR_STORE_MAX_ID;
    }
    (void)q->core->st->ops->audit(q->core->st, tid, tid_len,
                                  q->client != NULL ? q->client->name : q->sender, event, detail);
    cmpr_log_info("%s %s tid=%s %s: %s: %s", q->info->medium, q->info->peer != NULL ? q->info->peer : "-",
                  q->tidhex[0] ? q->tidhex : "-",
                  q->client != NULL ? q->client->name : (q->sender[0] ? q->sender : "-"), event, detail);
}

/* A protected CMP error (RFC 9810 5.3.21) for a message-level problem. */
CMPR_PKIMESSAGE * __attribute__((format(printf, 3, 4)))
pl_error_rsp(struct req *q, int failbit, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pl_audit(q, "error", "%s: %s", cmpr_failinfo_name(failbit), text);
    return cmpr_msg_build_error(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(failbit), text),
                                -1, NULL);
}

/* ---------------- core setup ---------------- */

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

int
cmpr_core_new(const struct cmpr_conf *conf, struct cmpr_core **core_r, char **err_r)
{
    struct cmpr_core *c = calloc(1, sizeof(*c));
    int r = CMPR_ERR_CONFIG;
    char buf[512];

    *core_r = NULL;
    *err_r = NULL;
    if (c == NULL)
        return CMPR_ERR_ALLOC;
    c->conf = conf;
    if (conf->log_level != NULL && cmpr_log_level_from_name(conf->log_level) >= 0)
        cmpr_log_set_level(cmpr_log_level_from_name(conf->log_level));
    c->cas = calloc(conf->n_cas, sizeof(*c->cas));
    for (size_t i = 0; i < conf->n_cas; i++) {
        if ((r = cmpr_ca_load(&conf->cas[i], &c->cas[i], err_r)) != CMPR_OK)
            goto fail;
        c->n_cas++;
    }
    c->trust = X509_STORE_new();
    c->untrusted = sk_X509_new_null();
    /* our own CAs anchor the certificates we issued (kur, rr, certConf by signature) */
    for (size_t i = 0; i < c->n_cas; i++) {
        X509_STORE_add_cert(c->trust, c->cas[i]->root != NULL ? c->cas[i]->root : c->cas[i]->cert);
        X509_add_cert(c->untrusted, c->cas[i]->cert, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP);
        X509_add_certs(c->untrusted, c->cas[i]->chain, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP);
    }
    if (conf->trusted != NULL && add_pem_certs(c->trust, NULL, conf->trusted) <= 0) {
        snprintf(buf, sizeof(buf), "trusted: no certificates in %s", conf->trusted);
        *err_r = strdup(buf);
        r = CMPR_ERR_CONFIG;
        goto fail;
    }
    if (conf->untrusted != NULL && add_pem_certs(NULL, c->untrusted, conf->untrusted) <= 0) {
        snprintf(buf, sizeof(buf), "untrusted: no certificates in %s", conf->untrusted);
        *err_r = strdup(buf);
        r = CMPR_ERR_CONFIG;
        goto fail;
    }
    if ((c->mac_cache = cmpr_mac_cache_new(0)) == NULL) {
        r = CMPR_ERR_ALLOC;
        goto fail;
    }
    if ((r = cmpr_routes_load(conf, &c->routes, err_r)) != CMPR_OK)
        goto fail;
    if ((r = cmpr_store_open(conf->store, &c->st)) != CMPR_OK) {
        snprintf(buf, sizeof(buf), "cannot open store %s", conf->store);
        *err_r = strdup(buf);
        goto fail;
    }
    *core_r = c;
    return CMPR_OK;
 fail:
    cmpr_core_free(c);
    return r;
}

void
cmpr_core_free(struct cmpr_core *c)
{
    if (c == NULL)
        return;
    cmpr_routes_free(c->routes);
    for (size_t i = 0; i < c->n_cas; i++)
        cmpr_ca_free(c->cas[i]);
    free(c->cas);
    X509_STORE_free(c->trust);
    sk_X509_pop_free(c->untrusted, X509_free);
    cmpr_mac_cache_free(c->mac_cache);
    cmpr_store_close(c->st);
    free(c);
}

struct cmpr_store *
cmpr_core_store(struct cmpr_core *c)
{
    return c->st;
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
}

/* counts the answer by the status it carries */
static void
count_answer(struct cmpr_core *c, const CMPR_PKIMESSAGE *rsp)
{
    const CMPR_PKISI *si = NULL;
    long st;

    switch (cmpr_msg_bodytype(rsp)) {
    case CMPR_BODY_ERROR:
        atomic_fetch_add(&c->errors, 1);
        si = rsp->body->value.error->pKIStatusInfo;
        break;
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP:
        si = sk_CMPR_CERTRESPONSE_value(rsp->body->value.ip->response, 0) != NULL
           ? sk_CMPR_CERTRESPONSE_value(rsp->body->value.ip->response, 0)->status : NULL;
        break;
    case CMPR_BODY_RP:
        si = sk_CMPR_PKISI_value(rsp->body->value.rp->status, 0);
        break;
    case CMPR_BODY_KRP:
        si = rsp->body->value.krp->status;
        break;
    default:
        break;
    }
    st = si != NULL ? cmpr_pkisi_status(si) : 7;
    atomic_fetch_add(&c->answers[st >= 0 && st <= 7 ? st : 7], 1);
}

/* ---------------- header checks (RFC 9483 3.1, 3.5) ---------------- */

int
pl_is_request(int body)
{
    switch (body) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_P10CR: case CMPR_BODY_KUR:
    case CMPR_BODY_KRR: case CMPR_BODY_CCR: case CMPR_BODY_RR: case CMPR_BODY_GENM:
    case CMPR_BODY_ERROR: case CMPR_BODY_CERTCONF: case CMPR_BODY_POLLREQ:
    case CMPR_BODY_NESTED: case CMPR_BODY_POPDECR:
        return 1;
    default:
        return 0;
    }
}

/* RFC 9483 6.1: the operation label names the operation; certConf, pollReq
 * and error go to the label of the operation they belong to. */
static int
operation_fits(const char *op, int body)
{
    static const struct { const char *label; int body; } ops[] = {
        { "initialization", CMPR_BODY_IR }, { "certification", CMPR_BODY_CR },
        { "keyupdate", CMPR_BODY_KUR }, { "pkcs10", CMPR_BODY_P10CR },
        { "p10", CMPR_BODY_P10CR }, { "revocation", CMPR_BODY_RR },
        { "getcacerts", CMPR_BODY_GENM }, { "getrootupdate", CMPR_BODY_GENM },
        { "getcertreqtemplate", CMPR_BODY_GENM }, { "getcrls", CMPR_BODY_GENM },
        { "nested", CMPR_BODY_NESTED },
    };

    if (op == NULL || body == CMPR_BODY_CERTCONF || body == CMPR_BODY_POLLREQ
            || body == CMPR_BODY_ERROR || body == CMPR_BODY_NESTED)
        return 1;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].label, op) == 0)
            return ops[i].body == body;
    return 0;
}

static CMPR_PKIMESSAGE *
check_header(struct req *q)
{
    const CMPR_PKIHEADER *h = q->msg->header;
    long pvno = cmpr_msg_pvno(q->msg);
    int skew = (int)q->core->conf->message_time_skew;

    /* RFC 9810 7 / RFC 9483 3.5: answer in the same pvno; unsupported ->
     * unsupportedVersion (the builder answers with our nearest version) */
    if (pvno != CMPR_PVNO_2 && pvno != CMPR_PVNO_3)
        return pl_error_rsp(q, CMPR_FI_UNSUPPORTED_VERSION,
                         "pvno %ld is not supported; this server speaks 2 and 3", pvno);
    if (h->transactionID == NULL || ASN1_STRING_length(h->transactionID) < 1
            || ASN1_STRING_length(h->transactionID) > CMPR_STORE_MAX_ID)
        return pl_error_rsp(q, CMPR_FI_BAD_DATA_FORMAT,
                         "transactionID must be present (1..%d octets)", CMPR_STORE_MAX_ID);
    if (h->senderNonce == NULL || ASN1_STRING_length(h->senderNonce) < CMPR_NONCE_LEN
            || ASN1_STRING_length(h->senderNonce) > CMPR_STORE_MAX_ID)
        return pl_error_rsp(q, CMPR_FI_BAD_SENDER_NONCE,
                         "senderNonce must be present with at least 128 bits");
    if (h->sender == NULL || h->sender->type != GEN_DIRNAME)
        return pl_error_rsp(q, CMPR_FI_BAD_DATA_FORMAT, "sender must be a directoryName");
    if (!pl_is_request(q->body))
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "%s is not a request this server accepts",
                         cmpr_body_name(q->body));
    if (!operation_fits(q->info->operation, q->body))
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "%s does not fit the operation label '%s'",
                         cmpr_body_name(q->body), q->info->operation);
    if (skew > 0 && h->messageTime != NULL) {
        int days = 0, secs = 0;

        if (!ASN1_TIME_diff(&days, &secs, NULL, h->messageTime)
                || (long)days * 86400L + secs > skew || (long)days * 86400L + secs < -skew)
            return pl_error_rsp(q, CMPR_FI_BAD_TIME,
                             "messageTime differs from the server clock by more than %d s", skew);
    }
    return NULL;
}

/* ---------------- protection (RFC 9483 3.2, 3.5; RFC 9810 5.1.3) ---------------- */

static const struct cmpr_conf_client *
client_by_cert(const struct cmpr_conf *conf, X509 *x)
{
    for (size_t i = 0; i < conf->n_clients; i++)
        if (conf->clients[i].cert_subject != NULL
                && cmpr_name_matches(X509_get_subject_name(x), conf->clients[i].cert_subject))
            return &conf->clients[i];
    return NULL;
}

CMPR_PKIMESSAGE *
pl_authenticate(struct req *q)
{
    const CMPR_PKIHEADER *h = q->msg->header;
    int kind, r;

    if (h->protectionAlg == NULL || q->msg->protection == NULL)
        return pl_error_rsp(q, CMPR_FI_BAD_MESSAGE_CHECK, "the message is not protected");
    kind = cmpr_prot_kind(h->protectionAlg->algorithm);
    if (kind == CMPR_PROT_PBM || kind == CMPR_PROT_PBMAC1) {
        struct cmpr_verify_opts vo = { (unsigned)q->core->conf->max_mac_iterations,
                                       q->core->mac_cache };
        const ASN1_OCTET_STRING *kid = h->senderKID;
        char refhex[2 * 64 + 1];

        if (kid == NULL)
            return pl_error_rsp(q, CMPR_FI_BAD_MESSAGE_CHECK,
                             "MAC protection needs senderKID naming the shared secret");
        pl_hex(ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid), refhex, sizeof(refhex));
        snprintf(q->sender, sizeof(q->sender), "ref:%s", refhex);
        q->client = cmpr_conf_client_by_ref(q->core->conf, ASN1_STRING_get0_data(kid),
                                            (size_t)ASN1_STRING_length(kid));
        if (q->client == NULL)
            return pl_error_rsp(q, CMPR_FI_BAD_MESSAGE_CHECK, "unknown reference (senderKID %s)",
                             refhex);
        if ((r = cmpr_verify_mac(q->msg, q->client->secret, q->client->secret_len, &vo)) != CMPR_OK) {
            const struct cmpr_conf_client *cl = q->client;
            CMPR_PKIMESSAGE *e;

            q->client = NULL;   /* not authenticated: the error is signed */
            e = pl_error_rsp(q, cmpr_err_failinfo(r) >= 0 ? cmpr_err_failinfo(r)
                          : CMPR_FI_BAD_MESSAGE_CHECK, "MAC check for client %s failed: %s",
                          cl->name, cmpr_strerror(r));
            return e;
        }
        q->auth = AUTH_MAC;
        q->mac_kind = kind == CMPR_PROT_PBMAC1 ? CMPR_MAC_PBMAC1 : CMPR_MAC_PBM;
        return NULL;
    }
    if (kind == CMPR_PROT_SIG || OBJ_obj2nid(h->protectionAlg->algorithm) == NID_rsassaPss) {
        X509 *signer = cmpr_msg_get0_protection_cert(q->msg);
        X509_STORE_CTX *ctx;
        STACK_OF(X509) *untrusted;
        int ok;

        if (signer == NULL)
            return pl_error_rsp(q, CMPR_FI_SIGNER_NOT_TRUSTED,
                             "signature protection without the signer's certificate in extraCerts");
        cmpr_name_text(X509_get_subject_name(signer), q->sender, sizeof(q->sender));
        if ((r = cmpr_verify_sig(q->msg, X509_get0_pubkey(signer))) != CMPR_OK)
            return pl_error_rsp(q, cmpr_err_failinfo(r) >= 0 ? cmpr_err_failinfo(r)
                             : CMPR_FI_BAD_MESSAGE_CHECK, "signature check failed: %s",
                             cmpr_strerror(r));
        /* RFC 9483 3.5: the sender is the subject of the protection certificate */
        if (X509_NAME_cmp(cmpr_hdr_get0_sender_name(h), X509_get_subject_name(signer)) != 0)
            return pl_error_rsp(q, CMPR_FI_BAD_MESSAGE_CHECK,
                             "sender does not match the subject of the protection certificate");
        untrusted = sk_X509_new_null();
        X509_add_certs(untrusted, q->msg->extraCerts, X509_ADD_FLAG_UP_REF);
        X509_add_certs(untrusted, q->core->untrusted, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP);
        ctx = X509_STORE_CTX_new();
        ok = ctx != NULL && X509_STORE_CTX_init(ctx, q->core->trust, signer, untrusted)
            && X509_verify_cert(ctx) == 1;
        if (!ok) {
            int verr = ctx != NULL ? X509_STORE_CTX_get_error(ctx) : 0;
            CMPR_PKIMESSAGE *e = pl_error_rsp(q, CMPR_FI_SIGNER_NOT_TRUSTED,
                                           "protection certificate not trusted: %s",
                                           X509_verify_cert_error_string(verr));

            X509_STORE_CTX_free(ctx);
            sk_X509_pop_free(untrusted, X509_free);
            ERR_clear_error();
            return e;
        }
        X509_STORE_CTX_free(ctx);
        sk_X509_pop_free(untrusted, X509_free);
        /* keyUsage, when present, must allow digitalSignature */
        if ((X509_get_extension_flags(signer) & EXFLAG_KUSAGE)
                && !(X509_get_key_usage(signer) & KU_DIGITAL_SIGNATURE))
            return pl_error_rsp(q, CMPR_FI_NOT_AUTHORIZED,
                             "protection certificate lacks digitalSignature key usage");
        q->auth = AUTH_SIG;
        q->signer = signer;
        q->signer_is_ra = cmpr_cert_has_eku(signer, CMPR_OID_KP_CMCRA);
        q->client = client_by_cert(q->core->conf, signer);
        return NULL;
    }
    return pl_error_rsp(q, CMPR_FI_BAD_ALG, "protection algorithm not supported");
}

/* [client] tls_subject binds a client to a TLS client certificate: its
 * requests must come over TLS from a matching, verified certificate. */
CMPR_PKIMESSAGE *
pl_check_tls_binding(struct req *q)
{
    const char *want = q->client != NULL ? q->client->tls_subject : NULL;
    const char *got = q->info->tls_subject;

    if (want == NULL)
        return NULL;
    if (got == NULL || (strpbrk(want, "*?[") != NULL ? fnmatch(want, got, 0) != 0
                                                      : strcmp(want, got) != 0))
        return pl_error_rsp(q, CMPR_FI_NOT_AUTHORIZED,
                         "client %s must come over TLS with a client certificate for %s",
                         q->client->name, want);
    return NULL;
}

/* Follow-up messages use the credentials of the first (RFC 9483 3.5, 4.1.3) */
static int
same_credentials(const struct req *q)
{
    if (q->txn.client[0] != '\0')
        return q->client != NULL && strcmp(q->client->name, q->txn.client) == 0;
    return strcmp(q->txn.sender, q->sender) == 0;
}

/* ---------------- answers ---------------- */

int
pl_protect(struct req *q, CMPR_PKIMESSAGE *rsp)
{
    struct cmpr_ca *ca = q->ca;

    if (cmpr_hdr_set1_sender_name(rsp->header, X509_get_subject_name(ca->signer_cert)) != CMPR_OK)
        return CMPR_ERR_ALLOC;
    if (q->auth == AUTH_MAC && q->client != NULL && ca->conf->mac_responses) {
        struct cmpr_mac_params mp;

        cmpr_mac_params_default(&mp, q->mac_kind);
        if (cmpr_hdr_set1_sender_kid(rsp->header, (const unsigned char *)q->client->reference,
                                     strlen(q->client->reference)) != CMPR_OK)
            return CMPR_ERR_ALLOC;
        return cmpr_protect_mac(rsp, q->client->secret, q->client->secret_len, &mp,
                                q->core->mac_cache);
    }
    /* RFC 9810 5.3.21: the CA signs its error messages */
    return cmpr_protect_sig(rsp, ca->signer_key, NULL, 0, ca->signer_cert, ca->signer_chain);
}

static void
set_txn_ids(struct req *q)
{
    const CMPR_PKIHEADER *h = q->msg->header;

    pl_octets(h->transactionID, q->txn.tid, sizeof(q->txn.tid), &q->txn.tid_len);
    snprintf(q->txn.sender, sizeof(q->txn.sender), "%s", q->sender);
    if (q->client != NULL)
        snprintf(q->txn.client, sizeof(q->txn.client), "%s", q->client->name);
    q->txn.req_type = q->body;
    q->txn.created = q->txn.updated = (int64_t)time(NULL);
}

/* Opens a new transaction (RFC 9810 5.1.1: a transactionID in use is refused).
 * Returns an error answer, or NULL to go on. */
static CMPR_PKIMESSAGE *
open_txn(struct req *q)
{
    if (q->have_txn)
        return pl_error_rsp(q, CMPR_FI_TRANSACTION_ID_IN_USE,
                         "transactionID is already in use; start again with a new one");
    memset(&q->txn, 0, sizeof(q->txn));
    set_txn_ids(q);
    q->txn.state = CMPR_TXN_RECEIVED;
    q->save_txn = 1;
    return NULL;
}

/* ---------------- certificate requests (RFC 9810 5.3.1-6, RFC 9483 4.1) ---------------- */

static const struct cmpr_conf_profile *
pick_profile(struct req *q, char *why, size_t whylen)
{
    const struct cmpr_conf *conf = q->core->conf;
    ASN1_UTF8STRING *cp = cmpr_msg_get1_certprofile(q->msg);
    char name[128] = "";
    const struct cmpr_conf_profile *pr;

    if (cp != NULL) {
        snprintf(name, sizeof(name), "%.*s", ASN1_STRING_length(cp), (const char *)ASN1_STRING_get0_data(cp));
        ASN1_UTF8STRING_free(cp);
    } else if (q->info->label != NULL) {
        snprintf(name, sizeof(name), "%s", q->info->label);
    } else if (q->client != NULL && q->client->profiles != NULL) {
        snprintf(name, sizeof(name), "%s", q->client->profiles[0]);
    } else if (q->ca->conf->default_profile != NULL) {
        snprintf(name, sizeof(name), "%s", q->ca->conf->default_profile);
    } else if (conf->n_profiles > 0) {
        snprintf(name, sizeof(name), "%s", conf->profiles[0].name);
    }
    if ((pr = cmpr_conf_profile(conf, name)) == NULL) {
        snprintf(why, whylen, name[0] ? "unknown certificate profile '%s'" : "no certificate profile is configured", name);
        return NULL;
    }
    if (q->ca->conf->profiles != NULL && !cmpr_strv_contains(q->ca->conf->profiles, name)) {
        snprintf(why, whylen, "CA %s does not issue profile '%s'", q->ca->conf->name, name);
        return NULL;
    }
    if (q->client != NULL && q->client->profiles != NULL
            && !cmpr_strv_contains(q->client->profiles, name)) {
        snprintf(why, whylen, "client %s may not use profile '%s'", q->client->name, name);
        return NULL;
    }
    return pr;
}

struct enroll {
    long cert_req_id;
    struct cmpr_ca_request creq;
    EVP_PKEY *pubkey;
    const X509_NAME *subject;
    STACK_OF(X509_EXTENSION) *exts_owned;
    X509_NAME *old_subject;          /* kur */
};

static CMPR_PKIMESSAGE *
reject_certreq(struct req *q, long certReqId, int failbit, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int
pl_rep_type(int body)
{
    return body == CMPR_BODY_IR ? CMPR_BODY_IP : body == CMPR_BODY_KUR ? CMPR_BODY_KUP
         : body == CMPR_BODY_CCR ? CMPR_BODY_CCP : CMPR_BODY_CP;
}

/* A body-level refusal: ip/cp/kup with status rejection (RFC 9483 4.1). */
static CMPR_PKIMESSAGE *
reject_certreq(struct req *q, long certReqId, int failbit, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pl_audit(q, "rejected", "%s: %s", cmpr_failinfo_name(failbit), text);
    if (q->save_txn == 1)
        (void)cmpr_txn_to(&q->txn, CMPR_TXN_REJECTED);
    return cmpr_msg_build_certrep(q->msg, pl_rep_type(q->body), certReqId,
                                  cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(failbit), text),
                                  NULL, NULL, NULL);
}

/* Reads what a request asks for. Returns an answer on refusal. */
static CMPR_PKIMESSAGE *
read_request(struct req *q, CMPR_PKIMESSAGE *msg, int body, struct enroll *e)
{
    memset(e, 0, sizeof(*e));
    if (body == CMPR_BODY_P10CR) {
        X509_REQ *csr = msg->body->value.p10cr;

        e->cert_req_id = CMPR_CERTREQID_NONE;
        e->pubkey = X509_REQ_get_pubkey(csr);
        if (e->pubkey == NULL || X509_REQ_verify(csr, e->pubkey) != 1) {
            ERR_clear_error();
            return reject_certreq(q, e->cert_req_id, CMPR_FI_BAD_POP,
                                  "the PKCS#10 request's self-signature does not verify");
        }
        e->subject = X509_REQ_get_subject_name(csr);
        e->exts_owned = X509_REQ_get_extensions(csr);
        e->creq.exts = e->exts_owned;
    } else {
        CMPR_CERTREQMSGS *reqs = cmpr_msg_get0_reqs(msg);
        CMPR_CERTREQMSG *crm;
        CMPR_CERTTEMPLATE *t;

        /* RFC 9483 4.1.1: exactly one CertReqMsg with certReqId 0 */
        if (sk_CMPR_CERTREQMSG_num(reqs) != 1)
            return reject_certreq(q, 0, CMPR_FI_BAD_REQUEST,
                                  "exactly one certificate request per message is supported");
        crm = sk_CMPR_CERTREQMSG_value(reqs, 0);
        e->cert_req_id = cmpr_crm_certreqid(crm);
        if (e->cert_req_id != 0)
            return reject_certreq(q, e->cert_req_id, CMPR_FI_BAD_REQUEST, "certReqId must be 0");
        t = crm->certReq->certTemplate;
        if (t->publicKey != NULL && (e->pubkey = cmpr_tmpl_get1_pubkey(t)) == NULL) {
            ERR_clear_error();
            return reject_certreq(q, 0, CMPR_FI_BAD_CERT_TEMPLATE, "the template's public key is malformed");
        }
        e->subject = t->subject;
        e->creq.exts = t->extensions;
        if (t->validity != NULL && cmpr_tmpl_get_validity(t, &e->creq.not_before,
                                                         &e->creq.not_after) != CMPR_OK)
            return reject_certreq(q, 0, CMPR_FI_BAD_CERT_TEMPLATE, "the template's validity is malformed");
        /* proof of possession (RFC 9810 5.2.8, RFC 9483 4.1.1; badPOP) */
        if (crm->popo == NULL)
            return reject_certreq(q, 0, CMPR_FI_BAD_POP, "no proof of possession");
        switch (crm->popo->type) {
        case CMPR_POPO_SIGNATURE: {
            int r = cmpr_crm_verify_pop_sig(crm);

            if (r != CMPR_OK)
                return reject_certreq(q, 0, CMPR_FI_BAD_POP, "proof of possession: %s",
                                      cmpr_strerror(r));
            break;
        }
        case CMPR_POPO_RAVERIFIED:
            /* RFC 9483 5.1.1: only an RA (cmcRA EKU, or a [client] with ra = yes)
             * may assert it checked POP */
            if (!((q->auth == AUTH_SIG && (q->signer_is_ra || (q->client != NULL && q->client->ra)))
                  || (q->auth == AUTH_MAC && q->client != NULL && q->client->ra)))
                return reject_certreq(q, 0, CMPR_FI_NOT_AUTHORIZED,
                                      "raVerified proof of possession is for registration authorities");
            break;
        default:
            return reject_certreq(q, 0, CMPR_FI_BAD_POP,
                                  "proof of possession by key encipherment or agreement is not supported");
        }
    }
    e->creq.subject = e->subject;
    e->creq.pubkey = e->pubkey;
    return NULL;
}

static void
enroll_free(struct enroll *e)
{
    EVP_PKEY_free(e->pubkey);
    sk_X509_EXTENSION_pop_free(e->exts_owned, X509_EXTENSION_free);
    X509_NAME_free(e->old_subject);
}

static void
serial_bytes(const ASN1_INTEGER *ai, unsigned char *out, size_t cap, size_t *len_r)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
    int n = bn != NULL ? BN_num_bytes(bn) : 0;

    *len_r = 0;
    if (bn != NULL && n > 0 && (size_t)n <= cap) {
        BN_bn2bin(bn, out);
        *len_r = (size_t)n;
    }
    BN_free(bn);
}

static int
one_time_used_cb(const struct cmpr_txn_rec *rec, void *arg)
{
    const char *name = arg;

    return strcmp(rec->client, name) == 0 ? CMPR_ERR_EXISTS : CMPR_OK;
}

static int
client_enrolled_before(struct req *q)
{
    struct cmpr_store *st = q->core->st;

    return st->ops->txn_list(st, CMPR_TXN_CONFIRMED, one_time_used_cb, (void *)q->client->name)
               == CMPR_ERR_EXISTS
        || st->ops->txn_list(st, CMPR_TXN_ISSUED, one_time_used_cb, (void *)q->client->name)
               == CMPR_ERR_EXISTS;
}

/* Builds the positive answer for an issued certificate and records it. */
static CMPR_PKIMESSAGE *
certrep_for(struct req *q, long certReqId, X509 *cert, int modified, int implicit)
{
    STACK_OF(X509) *chain = cmpr_ca_get1_chain(q->ca), *capubs = NULL;
    CMPR_PKIMESSAGE *rsp;
    time_t now = time(NULL);

    if (q->body == CMPR_BODY_IR && q->ca->root != NULL) {
        capubs = sk_X509_new_null();
        X509_add_cert(capubs, q->ca->root, X509_ADD_FLAG_UP_REF);
    }
    rsp = cmpr_msg_build_certrep(q->msg, pl_rep_type(q->txn.req_type), certReqId,
                                 cmpr_pkisi_new(modified ? CMPR_STATUS_GRANTED_WITH_MODS
                                                         : CMPR_STATUS_ACCEPTED, 0, NULL),
                                 cert, capubs, chain);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(capubs, X509_free);
    if (rsp == NULL)
        return NULL;
    /* RFC 9810 5.1.1.1-2: implicitConfirm is granted by echoing it; otherwise
     * the client learns how long we wait for certConf */
    if (implicit) {
        cmpr_hdr_push0_geninfo(rsp->header, cmpr_itav_new_implicit_confirm());
        (void)cmpr_txn_to(&q->txn, CMPR_TXN_CONFIRMED);
        q->revoke_old = 1;
    } else {
        cmpr_hdr_push0_geninfo(rsp->header,
            cmpr_itav_new_confirm_wait_time(now + q->core->conf->confirm_wait));
        (void)cmpr_txn_to(&q->txn, CMPR_TXN_ISSUED);
        q->txn.expires = (int64_t)now + q->core->conf->confirm_wait;
    }
    return rsp;
}

static struct cmpr_cert_rec *
cert_rec_new(struct req *q, X509 *cert, int confirmed)
{
    struct cmpr_cert_rec *c = calloc(1, sizeof(*c));
    unsigned char *der = NULL;
    int n;
    struct tm tm;

    if (c == NULL || (n = i2d_X509(cert, &der)) <= 0) {
        free(c);
        return NULL;
    }
    serial_bytes(X509_get0_serialNumber(cert), c->serial, sizeof(c->serial), &c->serial_len);
    cmpr_name_text(X509_get_issuer_name(cert), c->issuer, sizeof(c->issuer));
    cmpr_name_text(X509_get_subject_name(cert), c->subject, sizeof(c->subject));
    if (ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm))
        c->not_before = (int64_t)timegm(&tm);
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm))
        c->not_after = (int64_t)timegm(&tm);
    c->reason = -1;
    c->confirmed = confirmed;
    memcpy(c->tid, q->txn.tid, q->txn.tid_len);
    c->tid_len = q->txn.tid_len;
    c->der = malloc((size_t)n);
    memcpy(c->der, der, (size_t)n);
    c->der_len = (size_t)n;
    OPENSSL_free(der);
    return c;
}

/* pkiArchiveOptions (RFC 4211 6.4, RFC 9810 5.2.6): the private key,
 * encrypted to the CA's encryption certificate, is checked against the
 * requested public key and kept encrypted for key recovery (krr).
 * Returns CMPR_OK (maybe nothing to archive) or a failInfo bit in *fb. */
static int
archive_extract(struct req *q, const CMPR_CERTREQMSG *crm, EVP_PKEY *pub, unsigned char **der_r,
                size_t *len_r, int *fb, char *why, size_t whylen)
{
    CMPR_PKIARCHIVEOPTIONS *opt;
    CMS_ContentInfo *cms = NULL;
    BIO *out = NULL;
    char *data = NULL;
    long dlen = 0;
    const unsigned char *p;
    EVP_PKEY *priv = NULL;
    int r = CMPR_ERR_INVALID_ARG, n;

    *der_r = NULL;
    *len_r = 0;
    if (cmpr_crm_get0_control(crm, CMPR_REGCTRL_PKIARCHIVEOPTIONS) == NULL)
        return CMPR_OK;
    *fb = CMPR_FI_BAD_REQUEST;
    if ((opt = cmpr_crm_get1_archive_options(crm)) == NULL) {
        *fb = CMPR_FI_BAD_DATA_FORMAT;
        snprintf(why, whylen, "pkiArchiveOptions is malformed");
        return r;
    }
    if (opt->type != CMPR_ARCHIVE_ENCRYPTEDPRIVKEY) {
        snprintf(why, whylen, "only pkiArchiveOptions encryptedPrivKey is supported");
        goto out;
    }
    if (opt->value.encryptedPrivKey->type != CMPR_ENCRYPTEDKEY_ENVELOPEDDATA) {
        snprintf(why, whylen, "archived keys must come as EnvelopedData (EncryptedValue is deprecated)");
        goto out;
    }
    if (q->ca->enc_key == NULL) {
        snprintf(why, whylen, "key archive is not configured for CA %s", q->ca->conf->name);
        goto out;
    }
    if ((cms = cmpr_envdata_to_cms(opt->value.encryptedPrivKey->value.envelopedData)) == NULL
            || (out = BIO_new(BIO_s_mem())) == NULL
            || CMS_decrypt(cms, q->ca->enc_key, q->ca->enc_cert, NULL, out, 0) != 1) {
        *fb = CMPR_FI_BAD_POP;
        snprintf(why, whylen, "the archived key cannot be decrypted with the CA's encryption key");
        goto out;
    }
    dlen = BIO_get_mem_data(out, &data);
    p = (const unsigned char *)data;
    if (dlen <= 0 || (priv = d2i_AutoPrivateKey(NULL, &p, dlen)) == NULL || pub == NULL
            || EVP_PKEY_eq(priv, pub) != 1) {
        *fb = CMPR_FI_BAD_POP;
        snprintf(why, whylen, "the archived private key does not belong to the requested public key");
        goto out;
    }
    if ((n = i2d_CMPR_ENVELOPEDDATA(opt->value.encryptedPrivKey->value.envelopedData, der_r)) <= 0) {
        *fb = CMPR_FI_SYSTEM_FAILURE;
        snprintf(why, whylen, "cannot keep the archived key");
        goto out;
    }
    *len_r = (size_t)n;
    r = CMPR_OK;
 out:
    EVP_PKEY_free(priv);
    if (data != NULL)
        OPENSSL_cleanse(data, (size_t)dlen);
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    CMPR_PKIARCHIVEOPTIONS_free(opt);
    ERR_clear_error();
    return r;
}

static CMPR_PKIMESSAGE *
handle_certreq(struct req *q)
{
    struct enroll e;
    const struct cmpr_conf_profile *pr;
    CMPR_PKIMESSAGE *rsp;
    char why[256];
    int failbit = 0, modified = 0, implicit;
    X509 *cert = NULL;

    if ((rsp = open_txn(q)) != NULL)
        return rsp;
    if ((rsp = read_request(q, q->msg, q->body, &e)) != NULL)
        goto out;
    if ((pr = pick_profile(q, why, sizeof(why))) == NULL) {
        rsp = reject_certreq(q, e.cert_req_id, CMPR_FI_NOT_AUTHORIZED, "%s", why);
        goto out;
    }
    snprintf(q->txn.profile, sizeof(q->txn.profile), "%s", pr->name);
    /* RFC 9810 5.3.11, D.6: cross-certification certifies another CA's key */
    if (q->body == CMPR_BODY_CCR && !pr->ca) {
        rsp = reject_certreq(q, e.cert_req_id, CMPR_FI_BAD_CERT_TEMPLATE,
                             "ccr needs a CA profile (ca = yes); '%s' is not one", pr->name);
        goto out;
    }
    if (q->body == CMPR_BODY_KUR) {
        /* RFC 9483 4.1.3: kur is protected by the certificate being updated,
         * which we issued; the subject stays; oldCertID, if sent, names it */
        CMPR_CERTREQMSG *crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(q->msg), 0);
        OSSL_CRMF_CERTID *cid = cmpr_crm_get1_oldcertid(crm);
        struct cmpr_cert_rec old;
        unsigned char sn[CMPR_STORE_MAX_ID];
        size_t snlen;
        int r;

        if (q->auth != AUTH_SIG) {
            OSSL_CRMF_CERTID_free(cid);
            rsp = reject_certreq(q, 0, CMPR_FI_NOT_AUTHORIZED,
                                 "kur must be signed with the certificate to be updated");
            goto out;
        }
        if (cid != NULL && (ASN1_INTEGER_cmp(OSSL_CRMF_CERTID_get0_serialNumber(cid),
                                             X509_get0_serialNumber(q->signer)) != 0
                            || X509_NAME_cmp(OSSL_CRMF_CERTID_get0_issuer(cid),
                                             X509_get_issuer_name(q->signer)) != 0)) {
            OSSL_CRMF_CERTID_free(cid);
            rsp = reject_certreq(q, 0, CMPR_FI_NOT_AUTHORIZED,
                                 "oldCertID names a certificate other than the signer's");
            goto out;
        }
        OSSL_CRMF_CERTID_free(cid);
        serial_bytes(X509_get0_serialNumber(q->signer), sn, sizeof(sn), &snlen);
        r = q->core->st->ops->cert_get(q->core->st, sn, snlen, &old);
        if (r != CMPR_OK || X509_NAME_cmp(X509_get_issuer_name(q->signer),
                                          X509_get_subject_name(q->ca->cert)) != 0) {
            if (r == CMPR_OK)
                cmpr_cert_rec_clear(&old);
            rsp = reject_certreq(q, 0, CMPR_FI_BAD_CERT_ID,
                                 "the certificate to be updated was not issued here");
            goto out;
        }
        if (old.status != CMPR_CERT_VALID) {
            cmpr_cert_rec_clear(&old);
            rsp = reject_certreq(q, 0, CMPR_FI_CERT_REVOKED,
                                 "the certificate to be updated is revoked");
            goto out;
        }
        cmpr_cert_rec_clear(&old);
        if (e.subject != NULL && X509_NAME_cmp(e.subject, X509_get_subject_name(q->signer)) != 0) {
            rsp = reject_certreq(q, 0, CMPR_FI_BAD_CERT_TEMPLATE,
                                 "kur may not change the subject");
            goto out;
        }
        memcpy(q->txn.old_serial, sn, snlen);
        q->txn.old_serial_len = snlen;
        e.old_subject = X509_NAME_dup(X509_get_subject_name(q->signer));
        e.subject = e.creq.subject = e.old_subject;
        if (q->client == NULL)
            snprintf(q->txn.client, sizeof(q->txn.client), "%s", "");
    } else if (q->auth == AUTH_SIG && q->client == NULL) {
        rsp = reject_certreq(q, e.cert_req_id, CMPR_FI_NOT_AUTHORIZED,
                             "signer %s is not a configured client", q->sender);
        goto out;
    }
    if (cmpr_ca_check(pr, &e.creq, &failbit, why, sizeof(why)) != CMPR_OK) {
        rsp = reject_certreq(q, e.cert_req_id, failbit, "%s", why);
        goto out;
    }
    if (q->client != NULL && q->body != CMPR_BODY_KUR) {
        if (q->client->subject != NULL && !cmpr_name_matches(e.subject, q->client->subject)) {
            char text[256];

            cmpr_name_text(e.subject, text, sizeof(text));
            rsp = reject_certreq(q, e.cert_req_id, CMPR_FI_NOT_AUTHORIZED,
                                 "client %s may not request subject %s", q->client->name, text);
            goto out;
        }
        if (q->client->one_time && client_enrolled_before(q)) {
            rsp = reject_certreq(q, e.cert_req_id, CMPR_FI_NOT_AUTHORIZED,
                                 "the one-time reference of client %s was already used",
                                 q->client->name);
            goto out;
        }
    }
    if (q->body != CMPR_BODY_P10CR) {
        CMPR_CERTREQMSG *crm = sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(q->msg), 0);

        if (archive_extract(q, crm, e.pubkey, &q->archive, &q->archive_len, &failbit, why,
                            sizeof(why)) != CMPR_OK) {
            rsp = reject_certreq(q, e.cert_req_id, failbit, "%s", why);
            goto out;
        }
        if (pr->require_approval) {
            /* archived at approval time, from the stored request */
            OPENSSL_free(q->archive);
            q->archive = NULL;
        }
    }
    if (pr->require_approval) {
        /* RFC 9483 4.4: fully validated, then waiting (no failInfo) */
        unsigned char *der = NULL;
        size_t dlen = 0;

        if (cmpr_msg_encode(q->msg, &der, &dlen) != CMPR_OK
                || (q->txn.request = malloc(dlen)) == NULL) {
            OPENSSL_free(der);
            rsp = pl_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "cannot store the request");
            goto out;
        }
        memcpy(q->txn.request, der, dlen);
        q->txn.request_len = dlen;
        OPENSSL_free(der);
        (void)cmpr_txn_to(&q->txn, CMPR_TXN_PENDING_APPROVAL);
        pl_audit(q, "pending", "profile %s requires approval", pr->name);
        rsp = cmpr_msg_build_certrep(q->msg, pl_rep_type(q->body), e.cert_req_id,
                                     cmpr_pkisi_new(CMPR_STATUS_WAITING, 0,
                                                    "waiting for approval by an operator"),
                                     NULL, NULL, NULL);
        goto out;
    }
    if (cmpr_ca_issue(q->ca, q->core->st, pr, &e.creq, &cert, &modified) != CMPR_OK) {
        rsp = pl_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the CA could not issue the certificate");
        goto out;
    }
    implicit = q->core->conf->implicit_confirm && cmpr_hdr_has_implicit_confirm(q->msg->header);
    q->new_cert = cert_rec_new(q, cert, implicit);
    if (q->new_cert != NULL) {
        memcpy(q->txn.serial, q->new_cert->serial, q->new_cert->serial_len);
        q->txn.serial_len = q->new_cert->serial_len;
        pl_hex(q->new_cert->serial, q->new_cert->serial_len, why, sizeof(why));
        pl_audit(q, "issued", "profile %s subject %s serial %s%s", pr->name, q->new_cert->subject,
              why, implicit ? " (implicitly confirmed)" : "");
    }
    rsp = certrep_for(q, e.cert_req_id, cert, modified, implicit);
 out:
    X509_free(cert);
    enroll_free(&e);
    return rsp;
}

/* ---------------- certConf (RFC 9810 5.3.18, RFC 9483 4.1.1) ---------------- */

static int
revoke_serial(struct req *q, const unsigned char *serial, size_t len, int reason)
{
    struct cmpr_store *st = q->core->st;
    int r = st->ops->cert_set_status(st, serial, len, CMPR_CERT_REVOKED, (int64_t)time(NULL),
                                     reason, 0);

    if (r == CMPR_OK)
        (void)cmpr_ca_write_crl(q->ca, st, NULL);
    return r;
}

/* kur in a profile with revoke_replaced: once the new certificate is
 * confirmed the old one is superseded (RFC 5280 reason 4) */
static void
revoke_replaced(struct req *q)
{
    const struct cmpr_conf_profile *pr = cmpr_conf_profile(q->core->conf, q->txn.profile);
    char snhex[2 * CMPR_STORE_MAX_ID + 1];

    if (pr == NULL || !pr->revoke_replaced || q->txn.old_serial_len == 0)
        return;
    if (revoke_serial(q, q->txn.old_serial, q->txn.old_serial_len, 4) == CMPR_OK) {
        pl_hex(q->txn.old_serial, q->txn.old_serial_len, snhex, sizeof(snhex));
        pl_audit(q, "superseded", "replaced certificate %s revoked after the update was confirmed", snhex);
    }
}

static CMPR_PKIMESSAGE *
handle_certconf(struct req *q)
{
    STACK_OF(CMPR_CERTSTATUS) *sts = q->msg->body->value.certConf;
    struct cmpr_cert_rec cert;
    CMPR_CERTSTATUS *cs;
    long want_id;
    int accept = 1;

    if (!q->have_txn)
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "no open transaction with this transactionID");
    if (!same_credentials(q))
        return pl_error_rsp(q, CMPR_FI_NOT_AUTHORIZED,
                         "certConf must use the credentials of the request");
    if (q->txn.state != CMPR_TXN_ISSUED)
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "certConf not expected: transaction is %s",
                         cmpr_txn_state_name(q->txn.state));
    if (!pl_octets_equal(q->msg->header->recipNonce, q->txn.last_nonce, q->txn.last_nonce_len))
        return pl_error_rsp(q, CMPR_FI_BAD_RECIPIENT_NONCE,
                         "recipNonce does not echo the senderNonce of our last answer");
    if (q->core->st->ops->cert_get(q->core->st, q->txn.serial, q->txn.serial_len, &cert) != CMPR_OK)
        return pl_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the issued certificate is missing from the store");
    want_id = q->txn.req_type == CMPR_BODY_P10CR ? CMPR_CERTREQID_NONE : 0;
    /* an empty CertConfirmContent rejects everything (RFC 9810 5.3.18) */
    if (sk_CMPR_CERTSTATUS_num(sts) == 0) {
        accept = 0;
    } else {
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned int hl = 0;
        const unsigned char *p = cert.der;
        X509 *x = d2i_X509(NULL, &p, (long)cert.der_len);
        int r;

        cs = sk_CMPR_CERTSTATUS_value(sts, 0);
        if (sk_CMPR_CERTSTATUS_num(sts) != 1 || ASN1_INTEGER_get(cs->certReqId) != want_id) {
            X509_free(x);
            cmpr_cert_rec_clear(&cert);
            return pl_error_rsp(q, CMPR_FI_BAD_CERT_ID, "certConf names an unknown certReqId");
        }
        r = x != NULL ? cmpr_cert_hash(x, cs->hashAlg, h, &hl) : CMPR_ERR_INTERNAL;
        X509_free(x);
        if (r != CMPR_OK || !pl_octets_equal(cs->certHash, h, hl)) {
            cmpr_cert_rec_clear(&cert);
            return pl_error_rsp(q, CMPR_FI_BAD_CERT_ID,
                             "certHash does not match the issued certificate");
        }
        if (cs->statusInfo != NULL && cmpr_pkisi_status(cs->statusInfo) != CMPR_STATUS_ACCEPTED
                && cmpr_pkisi_status(cs->statusInfo) != CMPR_STATUS_GRANTED_WITH_MODS)
            accept = 0;
    }
    if (accept) {
        /* confirmed, keeping whatever revocation happened meanwhile */
        q->core->st->ops->cert_set_status(q->core->st, cert.serial, cert.serial_len,
                                          cert.status, cert.revoked_at, cert.reason, 1);
        (void)cmpr_txn_to(&q->txn, CMPR_TXN_CONFIRMED);
        pl_audit(q, "confirmed", "certificate accepted by the client");
        q->revoke_old = 1;
    } else {
        /* the client refused the certificate: it must not stay valid */
        revoke_serial(q, cert.serial, cert.serial_len, 5 /* cessationOfOperation */);
        (void)cmpr_txn_to(&q->txn, CMPR_TXN_REJECTED);
        pl_audit(q, "rejected", "certificate rejected by the client; revoked");
    }
    cmpr_cert_rec_clear(&cert);
    q->txn.expires = 0;
    q->save_txn = 2;
    return cmpr_msg_build_pkiconf(q->msg);
}

/* ---------------- polling (RFC 9810 5.3.22, RFC 9483 4.4) ---------------- */

static CMPR_PKIMESSAGE *
handle_pollreq(struct req *q)
{
    STACK_OF(CMPR_POLLREQ) *prs = q->msg->body->value.pollReq;
    long id, want_id;

    if (!q->have_txn)
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "no open transaction with this transactionID");
    if (!same_credentials(q))
        return pl_error_rsp(q, CMPR_FI_NOT_AUTHORIZED, "pollReq must use the credentials of the request");
    if (!pl_octets_equal(q->msg->header->recipNonce, q->txn.last_nonce, q->txn.last_nonce_len))
        return pl_error_rsp(q, CMPR_FI_BAD_RECIPIENT_NONCE,
                         "recipNonce does not echo the senderNonce of our last answer");
    want_id = q->txn.req_type == CMPR_BODY_P10CR ? CMPR_CERTREQID_NONE : 0;
    if (sk_CMPR_POLLREQ_num(prs) != 1)
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "exactly one pollReq entry is supported");
    id = ASN1_INTEGER_get(sk_CMPR_POLLREQ_value(prs, 0)->certReqId);
    if (id != want_id && id != CMPR_CERTREQID_NONE)
        return pl_error_rsp(q, CMPR_FI_BAD_CERT_ID, "pollReq names an unknown certReqId");
    q->save_txn = 2;
    switch (q->txn.state) {
    case CMPR_TXN_PENDING_APPROVAL:
        return cmpr_msg_build_pollrep(q->msg, id, q->core->conf->check_after,
                                      "waiting for approval by an operator");
    case CMPR_TXN_WAITING_POLL: {
        struct cmpr_cert_rec cert;
        const unsigned char *p;
        X509 *x;
        CMPR_PKIMESSAGE *rsp;

        if (q->core->st->ops->cert_get(q->core->st, q->txn.serial, q->txn.serial_len, &cert) != CMPR_OK)
            return pl_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the approved certificate is missing");
        p = cert.der;
        x = d2i_X509(NULL, &p, (long)cert.der_len);
        cmpr_cert_rec_clear(&cert);
        if (x == NULL)
            return pl_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the approved certificate is unreadable");
        /* the final answer goes to the pollReq: its type is the request's */
        q->body = q->txn.req_type;
        rsp = certrep_for(q, want_id, x, 0, 0);
        q->body = CMPR_BODY_POLLREQ;
        X509_free(x);
        pl_audit(q, "delivered", "approved certificate delivered on poll");
        return rsp;
    }
    case CMPR_TXN_REJECTED:
        if (q->txn.note[0] != '\0' || q->txn.serial_len == 0) {
            int saved = q->body;
            CMPR_PKIMESSAGE *rsp;

            q->body = q->txn.req_type;
            rsp = cmpr_msg_build_certrep(q->msg, pl_rep_type(q->txn.req_type), want_id,
                                         cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_NOT_AUTHORIZED),
                                                        q->txn.note[0] ? q->txn.note : "rejected"),
                                         NULL, NULL, NULL);
            q->body = saved;
            return rsp;
        }
        /* fall through */
    default:
        q->save_txn = 0;
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "pollReq not expected: transaction is %s",
                         cmpr_txn_state_name(q->txn.state));
    }
}

/* ---------------- revocation (RFC 9810 5.3.9, RFC 9483 4.2) ---------------- */

static CMPR_PKIMESSAGE *
rp_reject(struct req *q, int failbit, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static CMPR_PKIMESSAGE *
rp_reject(struct req *q, int failbit, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pl_audit(q, "rr-rejected", "%s: %s", cmpr_failinfo_name(failbit), text);
    return cmpr_msg_build_rp(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(failbit), text), NULL);
}

static CMPR_PKIMESSAGE *
handle_rr(struct req *q)
{
    const X509_NAME *issuer;
    const ASN1_INTEGER *serial;
    unsigned char sn[CMPR_STORE_MAX_ID];
    size_t snlen;
    struct cmpr_cert_rec cert;
    int reason, allowed = 0, status;
    struct cmpr_store *st = q->core->st;
    CMPR_PKIMESSAGE *rsp;

    if ((rsp = open_txn(q)) != NULL)
        return rsp;
    (void)cmpr_txn_to(&q->txn, CMPR_TXN_ANSWERED);
    if (sk_CMPR_REVDETAILS_num(q->msg->body->value.rr) != 1)
        return rp_reject(q, CMPR_FI_BAD_REQUEST, "exactly one RevDetails per rr is supported");
    if (cmpr_rr_get(q->msg, 0, &issuer, &serial, &reason) != CMPR_OK || issuer == NULL || serial == NULL)
        return rp_reject(q, CMPR_FI_BAD_CERT_ID, "RevDetails must name issuer and serialNumber");
    if (X509_NAME_cmp(issuer, X509_get_subject_name(q->ca->cert)) != 0)
        return rp_reject(q, CMPR_FI_BAD_CERT_ID, "the certificate was not issued by this CA");
    serial_bytes(serial, sn, sizeof(sn), &snlen);
    if (st->ops->cert_get(st, sn, snlen, &cert) != CMPR_OK)
        return rp_reject(q, CMPR_FI_BAD_CERT_ID, "no certificate with this serial number was issued here");
    /* who may revoke: the holder (signature with that certificate), an RA, or
     * the MAC client that enrolled it */
    if (q->auth == AUTH_SIG && q->signer != NULL
            && ASN1_INTEGER_cmp(X509_get0_serialNumber(q->signer), serial) == 0
            && X509_NAME_cmp(X509_get_issuer_name(q->signer), issuer) == 0)
        allowed = 1;
    if ((q->auth == AUTH_SIG && q->signer_is_ra) || (q->client != NULL && q->client->ra))
        allowed = 1;
    if (!allowed && q->client != NULL && cert.tid_len > 0) {
        struct cmpr_txn_rec orig;

        if (st->ops->txn_get(st, cert.tid, cert.tid_len, &orig) == CMPR_OK) {
            allowed = strcmp(orig.client, q->client->name) == 0;
            cmpr_txn_rec_clear(&orig);
        }
    }
    if (!allowed) {
        cmpr_cert_rec_clear(&cert);
        return rp_reject(q, CMPR_FI_NOT_AUTHORIZED, "a client may revoke only its own certificates");
    }
    if (reason < 0)
        reason = 0;
    if (reason == 8) {          /* removeFromCRL: only releases a hold */
        if (cert.status != CMPR_CERT_ON_HOLD) {
            cmpr_cert_rec_clear(&cert);
            return rp_reject(q, CMPR_FI_BAD_REQUEST, "removeFromCRL applies only to a certificate on hold");
        }
        status = CMPR_CERT_VALID;
        reason = -1;
    } else {
        if (cert.status == CMPR_CERT_REVOKED || (cert.status == CMPR_CERT_ON_HOLD && reason == 6)) {
            cmpr_cert_rec_clear(&cert);
            return rp_reject(q, CMPR_FI_CERT_REVOKED, "the certificate is already revoked");
        }
        if (cert.not_after < (int64_t)time(NULL)) {
            cmpr_cert_rec_clear(&cert);
            return rp_reject(q, CMPR_FI_CERT_REVOKED, "the certificate has expired");
        }
        if (reason == 7 || reason > 10) {
            cmpr_cert_rec_clear(&cert);
            return rp_reject(q, CMPR_FI_BAD_REQUEST, "invalid revocation reason %d", reason);
        }
        status = reason == 6 ? CMPR_CERT_ON_HOLD : CMPR_CERT_REVOKED;
    }
    if (st->ops->cert_set_status(st, sn, snlen, status, (int64_t)time(NULL), reason,
                                 cert.confirmed) != CMPR_OK) {
        cmpr_cert_rec_clear(&cert);
        return pl_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "cannot record the revocation");
    }
    (void)cmpr_ca_write_crl(q->ca, st, NULL);
    {
        char snhex[2 * CMPR_STORE_MAX_ID + 1];

        pl_hex(sn, snlen, snhex, sizeof(snhex));
        pl_audit(q, "revoked", "serial %s subject %s reason %d%s", snhex, cert.subject, reason,
              status == CMPR_CERT_VALID ? " (hold released)" : "");
    }
    cmpr_cert_rec_clear(&cert);
    return cmpr_msg_build_rp(q->msg, cmpr_pkisi_new(CMPR_STATUS_ACCEPTED, 0, NULL), NULL);
}

/* ---------------- general messages (RFC 9810 5.3.19, RFC 9483 4.3) ---------------- */

static CMPR_ITAV *
genp_itav(struct req *q, int it, const CMPR_ITAV *in)
{
    switch (it) {
    case CMPR_IT_CA_CERTS: {
        STACK_OF(X509) *chain = cmpr_ca_get1_chain(q->ca);
        CMPR_ITAV *out = cmpr_itav_new_ca_certs(chain);

        sk_X509_pop_free(chain, X509_free);
        return out;
    }
    case CMPR_IT_ROOT_CA_CERT:
        /* no root key update is configured: rootCaKeyUpdate without value */
        return cmpr_itav_new0(CMPR_IT_ROOT_CA_KEY_UPDATE, NULL);
    case CMPR_IT_CERT_REQ_TEMPLATE: {
        char why[128];
        const struct cmpr_conf_profile *pr = pick_profile(q, why, sizeof(why));
        CMPR_CERTREQTEMPLATECONTENT *c;
        CMPR_ITAV *out;

        if (pr == NULL)
            return cmpr_itav_new0(CMPR_IT_CERT_REQ_TEMPLATE, NULL);
        c = CMPR_CERTREQTEMPLATECONTENT_new();
        /* RFC 9483 4.3.3: publicKey absent; key types go into keySpec */
        for (char **t = pr->key_types; t != NULL && *t != NULL; t++) {
            CMPR_ATAV *a = CMPR_ATAV_new();
            X509_ALGOR *alg = X509_ALGOR_new();
            int nid = strncmp(*t, "ec:", 3) == 0 ? NID_X9_62_id_ecPublicKey
                    : strncmp(*t, "rsa:", 4) == 0 ? NID_rsaEncryption
                    : strcmp(*t, "ed25519") == 0 ? NID_ED25519 : NID_ED448;

            if (nid == NID_X9_62_id_ecPublicKey) {
                int cnid = EC_curve_nist2nid(*t + 3);

                X509_ALGOR_set0(alg, OBJ_nid2obj(nid), V_ASN1_OBJECT,
                                OBJ_nid2obj(cnid != NID_undef ? cnid : OBJ_sn2nid(*t + 3)));
            } else {
                X509_ALGOR_set0(alg, OBJ_nid2obj(nid), V_ASN1_UNDEF, NULL);
            }
            a->type = cmpr_regctrl_obj(CMPR_REGCTRL_ALGID);
            ASN1_TYPE_free(a->value);
            a->value = ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(X509_ALGOR), alg, NULL);
            X509_ALGOR_free(alg);
            if (c->keySpec == NULL)
                c->keySpec = sk_CMPR_ATAV_new_null();
            sk_CMPR_ATAV_push(c->keySpec, a);
        }
        out = cmpr_itav_new_cert_req_template(c);
        CMPR_CERTREQTEMPLATECONTENT_free(c);
        return out;
    }
    case CMPR_IT_SIGN_KEY_PAIR_TYPES: {
        STACK_OF(X509_ALGOR) *algs = sk_X509_ALGOR_new_null();
        static const int sigs[] = { NID_ecdsa_with_SHA256, NID_ecdsa_with_SHA384,
                                    NID_ecdsa_with_SHA512, NID_sha256WithRSAEncryption,
                                    NID_rsassaPss, NID_ED25519, NID_ED448 };
        CMPR_ITAV *out;

        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
            X509_ALGOR *a = X509_ALGOR_new();

            X509_ALGOR_set0(a, OBJ_nid2obj(sigs[i]), V_ASN1_UNDEF, NULL);
            sk_X509_ALGOR_push(algs, a);
        }
        out = cmpr_itav_new_sign_key_pair_types(algs);
        sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
        return out;
    }
    case CMPR_IT_CURRENT_CRL:
    case CMPR_IT_CRL_STATUS_LIST: {
        X509_CRL *crl = NULL;
        CMPR_ITAV *out;

        if (cmpr_ca_make_crl(q->ca, q->core->st, &crl) != CMPR_OK)
            return NULL;
        if (it == CMPR_IT_CURRENT_CRL) {
            out = cmpr_itav_new_current_crl(crl);
        } else {
            /* only CRLs newer than the one the client has (RFC 9483 4.3.4) */
            STACK_OF(CMPR_CRLSTATUS) *l = cmpr_itav_get1_crl_status_list(in);
            int newer = 1;

            for (int i = 0; i < sk_CMPR_CRLSTATUS_num(l); i++) {
                CMPR_CRLSTATUS *s = sk_CMPR_CRLSTATUS_value(l, i);

                if (s->thisUpdate != NULL
                        && ASN1_TIME_compare(s->thisUpdate, X509_CRL_get0_lastUpdate(crl)) >= 0)
                    newer = 0;
            }
            sk_CMPR_CRLSTATUS_pop_free(l, CMPR_CRLSTATUS_free);
            if (newer) {
                STACK_OF(X509_CRL) *sk = sk_X509_CRL_new_null();

                sk_X509_CRL_push(sk, crl);
                out = cmpr_itav_new_crls(sk);
                sk_X509_CRL_free(sk);
            } else {
                out = cmpr_itav_new0(CMPR_IT_CRLS, NULL);
            }
        }
        X509_CRL_free(crl);
        return out;
    }
    default:
        return NULL;
    }
}

static CMPR_PKIMESSAGE *
handle_genm(struct req *q)
{
    STACK_OF(CMPR_ITAV) *in = q->msg->body->value.genm, *out = sk_CMPR_ITAV_new_null();
    STACK_OF(ASN1_OBJECT) *unsupported = NULL;
    static const int all[] = { CMPR_IT_CA_CERTS, CMPR_IT_ROOT_CA_CERT, CMPR_IT_CERT_REQ_TEMPLATE,
                               CMPR_IT_SIGN_KEY_PAIR_TYPES, CMPR_IT_CURRENT_CRL };
    CMPR_PKIMESSAGE *rsp;

    if ((rsp = open_txn(q)) != NULL) {
        sk_CMPR_ITAV_free(out);
        return rsp;
    }
    (void)cmpr_txn_to(&q->txn, CMPR_TXN_ANSWERED);
    if (sk_CMPR_ITAV_num(in) == 0) {
        /* RFC 9810 App D.5: an empty genm asks for everything relevant */
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
            CMPR_ITAV *it = genp_itav(q, all[i], NULL);

            if (it != NULL)
                sk_CMPR_ITAV_push(out, it);
        }
    }
    for (int i = 0; i < sk_CMPR_ITAV_num(in); i++) {
        const CMPR_ITAV *itav = sk_CMPR_ITAV_value(in, i);
        CMPR_ITAV *o = genp_itav(q, cmpr_itav_num(itav), itav);

        if (o != NULL) {
            sk_CMPR_ITAV_push(out, o);
        } else {
            if (unsupported == NULL)
                unsupported = sk_ASN1_OBJECT_new_null();
            sk_ASN1_OBJECT_push(unsupported, OBJ_dup(itav->infoType));
        }
    }
    if (unsupported != NULL) {
        /* RFC 9810 5.3.19.7: tell which OIDs were not understood */
        sk_CMPR_ITAV_push(out, cmpr_itav_new_unsupported_oids(unsupported));
        sk_ASN1_OBJECT_pop_free(unsupported, ASN1_OBJECT_free);
    }
    pl_audit(q, "genm", "%d info types answered", sk_CMPR_ITAV_num(out));
    return cmpr_msg_build_genp(q->msg, out);
}

/* ---------------- key recovery (RFC 9810 5.3.7-8) ---------------- */

struct recovery {
    struct req *q;
    STACK_OF(CMPR_CERTIFIEDKEYPAIR) *hist;
    struct { unsigned char sn[CMPR_STORE_MAX_ID]; size_t len; } *serials;  /* per hist entry */
    int refused;
};

/* Re-encrypts one archived key for the requester: to its protection
 * certificate, or with its shared secret (PWRI) for MAC clients. */
static CMPR_ENVELOPEDDATA *
reencrypt(struct req *q, const unsigned char *env, size_t envlen)
{
    const unsigned char *p = env;
    CMPR_ENVELOPEDDATA *in = d2i_CMPR_ENVELOPEDDATA(NULL, &p, (long)envlen), *result = NULL;
    CMS_ContentInfo *cms = NULL, *outcms = NULL;
    BIO *plain = BIO_new(BIO_s_mem());
    unsigned char *der = NULL;
    const unsigned char *q2;
    long hl;
    int tag, cls, n;
    char *data = NULL;
    long dlen = 0;

    if (in == NULL || plain == NULL || (cms = cmpr_envdata_to_cms(in)) == NULL
            || CMS_decrypt(cms, q->ca->enc_key, q->ca->enc_cert, NULL, plain, 0) != 1)
        goto out;
    if (q->auth == AUTH_SIG) {
        STACK_OF(X509) *rc = sk_X509_new_null();

        sk_X509_push(rc, q->signer);
        outcms = CMS_encrypt(rc, plain, EVP_aes_256_cbc(), CMS_BINARY);
        sk_X509_free(rc);
    } else {
        outcms = CMS_encrypt(NULL, NULL, EVP_aes_256_cbc(), CMS_BINARY | CMS_PARTIAL);
        if (outcms != NULL
                && (CMS_add0_recipient_password(outcms, -1, NID_undef, NID_undef,
                                                (unsigned char *)OPENSSL_memdup(q->client->secret,
                                                                                q->client->secret_len),
                                                (ossl_ssize_t)q->client->secret_len, NULL) == NULL
                    || CMS_final(outcms, plain, NULL, CMS_BINARY) != 1)) {
            CMS_ContentInfo_free(outcms);
            outcms = NULL;
        }
    }
    if (outcms == NULL || (n = i2d_CMS_ContentInfo(outcms, &der)) <= 0)
        goto out;
    /* ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT EnvelopedData } */
    q2 = der;
    if (ASN1_get_object(&q2, &hl, &tag, &cls, n) & 0x80)
        goto out;
    if (ASN1_get_object(&q2, &hl, &tag, &cls, n) & 0x80)
        goto out;
    q2 += hl;
    if ((ASN1_get_object(&q2, &hl, &tag, &cls, n) & 0x80) || cls != V_ASN1_CONTEXT_SPECIFIC)
        goto out;
    result = d2i_CMPR_ENVELOPEDDATA(NULL, &q2, hl);
 out:
    dlen = plain != NULL ? BIO_get_mem_data(plain, &data) : 0;
    if (data != NULL && dlen > 0)
        OPENSSL_cleanse(data, (size_t)dlen);
    BIO_free(plain);
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    CMS_ContentInfo_free(outcms);
    CMPR_ENVELOPEDDATA_free(in);
    ERR_clear_error();
    return result;
}


static int
recover_one(const unsigned char *serial, size_t len, const char *client,
            const unsigned char *env, size_t envlen, void *arg)
{
    struct recovery *rc = arg;
    struct req *q = rc->q;
    CMPR_CERTIFIEDKEYPAIR *kp;
    CMPR_ENVELOPEDDATA *ed;
    int n = sk_CMPR_CERTIFIEDKEYPAIR_num(rc->hist);
    void *grown;

    /* a MAC client recovers only the keys it archived itself */
    if (q->auth == AUTH_MAC && strcmp(client, q->client->name) != 0) {
        rc->refused = 1;
        return CMPR_OK;
    }
    if ((ed = reencrypt(q, env, envlen)) == NULL)
        return CMPR_ERR_INTERNAL;
    kp = CMPR_CERTIFIEDKEYPAIR_new();
    grown = realloc(rc->serials, (size_t)(n + 1) * sizeof(*rc->serials));
    if (grown != NULL)
        rc->serials = grown;
    if (kp == NULL || grown == NULL || len > CMPR_STORE_MAX_ID
            || (kp->privateKey = CMPR_ENCRYPTEDKEY_new()) == NULL) {
        CMPR_ENVELOPEDDATA_free(ed);
        CMPR_CERTIFIEDKEYPAIR_free(kp);
        return CMPR_ERR_ALLOC;
    }
    memcpy(rc->serials[n].sn, serial, len);
    rc->serials[n].len = len;
    kp->privateKey->type = CMPR_ENCRYPTEDKEY_ENVELOPEDDATA;
    kp->privateKey->value.envelopedData = ed;
    /* the certificate is attached after the listing: the store is not re-entered */
    kp->certOrEncCert->type = CMPR_CERTORENCCERT_CERTIFICATE;
    sk_CMPR_CERTIFIEDKEYPAIR_push(rc->hist, kp);
    return CMPR_OK;
}

static CMPR_PKIMESSAGE *
handle_krr(struct req *q)
{
    CMPR_CERTREQMSGS *reqs = cmpr_msg_get0_reqs(q->msg);
    CMPR_CERTREQMSG *crm;
    struct recovery rc;
    char subject[512];
    STACK_OF(X509) *chain;
    CMPR_PKIMESSAGE *rsp;
    int r;

    if ((rsp = open_txn(q)) != NULL)
        return rsp;
    (void)cmpr_txn_to(&q->txn, CMPR_TXN_ANSWERED);
    if (sk_CMPR_CERTREQMSG_num(reqs) != 1)
        return cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_BAD_REQUEST),
                                  "exactly one request per krr is supported"), NULL, NULL, NULL);
    if (cmpr_msg_pvno(q->msg) != CMPR_PVNO_3)
        return pl_error_rsp(q, CMPR_FI_UNSUPPORTED_VERSION,
                         "key recovery returns EnvelopedData, which needs pvno 3 (cmp2021)");
    if (q->ca->enc_key == NULL)
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "key archive and recovery are not configured");
    crm = sk_CMPR_CERTREQMSG_value(reqs, 0);
    if (crm->certReq->certTemplate->subject == NULL)
        return cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_BAD_CERT_TEMPLATE),
                                  "the template must name the subject whose keys to recover"),
                                  NULL, NULL, NULL);
    cmpr_name_text(crm->certReq->certTemplate->subject, subject, sizeof(subject));
    /* who may recover: the holder (signature with a certificate for that
     * subject) or the MAC client that archived the keys */
    if (q->auth == AUTH_SIG
            && X509_NAME_cmp(X509_get_subject_name(q->signer), crm->certReq->certTemplate->subject) != 0) {
        pl_audit(q, "krr-rejected", "signer may recover only its own keys");
        return cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_NOT_AUTHORIZED),
                                  "a signer may recover only its own keys"), NULL, NULL, NULL);
    }
    memset(&rc, 0, sizeof(rc));
    rc.q = q;
    rc.hist = sk_CMPR_CERTIFIEDKEYPAIR_new_null();
    r = q->core->st->ops->archive_list(q->core->st, subject, recover_one, &rc);
    /* attach the certificates now that the store is free */
    for (int i = 0; r == CMPR_OK && i < sk_CMPR_CERTIFIEDKEYPAIR_num(rc.hist); i++) {
        CMPR_CERTIFIEDKEYPAIR *kp = sk_CMPR_CERTIFIEDKEYPAIR_value(rc.hist, i);
        struct cmpr_cert_rec cert;

        if (q->core->st->ops->cert_get(q->core->st, rc.serials[i].sn, rc.serials[i].len,
                                       &cert) == CMPR_OK) {
            const unsigned char *p = cert.der;

            kp->certOrEncCert->value.certificate = d2i_X509(NULL, &p, (long)cert.der_len);
            cmpr_cert_rec_clear(&cert);
        }
        if (kp->certOrEncCert->value.certificate == NULL)
            r = CMPR_ERR_STORE;
    }
    free(rc.serials);
    if (r != CMPR_OK) {
        sk_CMPR_CERTIFIEDKEYPAIR_pop_free(rc.hist, CMPR_CERTIFIEDKEYPAIR_free);
        return pl_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "key recovery failed");
    }
    if (sk_CMPR_CERTIFIEDKEYPAIR_num(rc.hist) == 0) {
        sk_CMPR_CERTIFIEDKEYPAIR_free(rc.hist);
        pl_audit(q, "krr-rejected", "no archived key for %s%s", subject,
              rc.refused ? " that this client archived" : "");
        return cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_REJECTION, FI(CMPR_FI_BAD_CERT_ID),
                                  "no archived key for this subject"), NULL, NULL, NULL);
    }
    chain = cmpr_ca_get1_chain(q->ca);
    rsp = cmpr_msg_build_krp(q->msg, cmpr_pkisi_new(CMPR_STATUS_ACCEPTED, 0, NULL), NULL, chain,
                             rc.hist);
    pl_audit(q, "recovered", "%d archived key(s) of %s returned encrypted to the requester",
          sk_CMPR_CERTIFIEDKEYPAIR_num(rc.hist), subject);
    sk_X509_pop_free(chain, X509_free);
    sk_CMPR_CERTIFIEDKEYPAIR_pop_free(rc.hist, CMPR_CERTIFIEDKEYPAIR_free);
    return rsp;
}

/* ---------------- a client's error (RFC 9810 5.3.21) ---------------- */

static CMPR_PKIMESSAGE *
handle_error(struct req *q)
{
    if (q->have_txn && same_credentials(q) && q->txn.state == CMPR_TXN_ISSUED) {
        revoke_serial(q, q->txn.serial, q->txn.serial_len, 5);
        (void)cmpr_txn_to(&q->txn, CMPR_TXN_REJECTED);
        q->save_txn = 2;
    }
    pl_audit(q, "client-error", "the client ended the transaction with an error");
    return cmpr_msg_build_pkiconf(q->msg);
}

/* ---------------- nested messages (RFC 9810 5.1.3.5, RFC 9483 5.2.2) ---------------- */

static int handle_der(struct cmpr_core *core, const struct cmpr_request_info *info, int depth, int last_try,
                      const unsigned char *der, size_t len, unsigned char **out_r, size_t *out_len_r);

/* An RA wraps requests in nested: to add its protection to one request
 * (the answer comes back un-nested) or to batch several (the answers come
 * back in one nested message). Each inner message is processed on its own,
 * with its own protection checked. */
static CMPR_PKIMESSAGE *
handle_nested(struct req *q)
{
    CMPR_PKIMESSAGES *inner = q->msg->body->value.nested;
    CMPR_PKIMESSAGE *rsp = NULL;
    int n = sk_CMPR_PKIMESSAGE_num(inner);

    if (!((q->auth == AUTH_SIG && q->signer_is_ra) || (q->client != NULL && q->client->ra)))
        return pl_error_rsp(q, CMPR_FI_NOT_AUTHORIZED,
                         "nested messages are accepted from registration authorities only");
    if (n < 1 || n > 256)
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "a nested message holds 1 to 256 messages");
    if (n > 1 && (rsp = cmpr_msg_new_response(q->msg, CMPR_BODY_NESTED)) == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        unsigned char *der = NULL, *out = NULL;
        size_t len = 0, outlen = 0;
        CMPR_PKIMESSAGE *ans = NULL;
        int r;

        if (cmpr_msg_encode(sk_CMPR_PKIMESSAGE_value(inner, i), &der, &len) != CMPR_OK)
            r = CMPR_ERR_ENCODE;
        else
            r = handle_der(q->core, q->info, q->depth + 1, 1, der, len, &out, &outlen);
        OPENSSL_free(der);
        if (n == 1) {
            if (r != CMPR_OK) {
                free(out);
                return pl_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "the inner message could not be answered");
            }
            pl_audit(q, "nested", "one request under RA protection");
            q->raw_answer = out;
            q->raw_answer_len = outlen;
            return NULL;
        }
        /* a batch: every inner request gets its answer, or systemFailure */
        if (r != CMPR_OK || cmpr_msg_decode(out, outlen, &ans, NULL) != CMPR_OK) {
            CMPR_PKIMESSAGE *inner_req = sk_CMPR_PKIMESSAGE_value(inner, i);

            ans = cmpr_msg_build_error(inner_req, cmpr_pkisi_new(CMPR_STATUS_REJECTION,
                                       FI(CMPR_FI_SYSTEM_FAILURE), "no answer"), -1, NULL);
        }
        free(out);
        if (ans != NULL)
            sk_CMPR_PKIMESSAGE_push(rsp->body->value.nested, ans);
    }
    pl_audit(q, "nested", "batch of %d messages answered", n);
    return rsp;
}

/* ---------------- the entry point ---------------- */

static CMPR_PKIMESSAGE *
dispatch(struct req *q)
{
    switch (q->body) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_KUR: case CMPR_BODY_P10CR:
    case CMPR_BODY_CCR:
        return handle_certreq(q);
    case CMPR_BODY_CERTCONF:
        return handle_certconf(q);
    case CMPR_BODY_KRR:
        return handle_krr(q);
    case CMPR_BODY_POLLREQ:
        return handle_pollreq(q);
    case CMPR_BODY_RR:
        return handle_rr(q);
    case CMPR_BODY_GENM:
        return handle_genm(q);
    case CMPR_BODY_ERROR:
        return handle_error(q);
    case CMPR_BODY_NESTED:
        return handle_nested(q);
    default:
        return pl_error_rsp(q, CMPR_FI_BAD_REQUEST, "%s is not supported by this server",
                         cmpr_body_name(q->body));
    }
}

int
cmpr_core_handle(struct cmpr_core *core, const struct cmpr_request_info *info,
                 const unsigned char *der, size_t len, unsigned char **out_r, size_t *out_len_r)
{
    struct cmpr_request_info again = *info;
    int r = handle_der(core, info, 0, 0, der, len, out_r, out_len_r);

    /* the transaction moved on while this request was handled (the operator
     * approved it, housekeeping expired it): handle it again from the new
     * state; its senderNonce is recorded already, and it is its own */
    for (int i = 1; r == CMPR_ERR_CONFLICT && i <= 3; i++) {
        cmpr_log_info("%s %s: the transaction changed meanwhile; handled again", info->medium,
                      info->peer != NULL ? info->peer : "");
        again.resumed = 1;
        r = handle_der(core, &again, 0, i == 3, der, len, out_r, out_len_r);
    }
    return r;
}

static int
handle_der(struct cmpr_core *core, const struct cmpr_request_info *info, int depth, int last_try,
           const unsigned char *der, size_t len, unsigned char **out_r, size_t *out_len_r)
{
    struct req q;
    struct cmpr_decode_err derr;
    CMPR_PKIMESSAGE *rsp = NULL;
    unsigned char *out = NULL;
    size_t out_len = 0;
    struct cmpr_store *st = core->st;
    int r;

    *out_r = NULL;
    *out_len_r = 0;
    memset(&q, 0, sizeof(q));
    q.core = core;
    q.info = info;
    q.ca = core->cas[0];
    q.depth = depth;
    if ((r = cmpr_msg_decode(der, len, &q.msg, &derr)) != CMPR_OK) {
        atomic_fetch_add(&core->undecodable, 1);
        rsp = pl_error_rsp(&q, CMPR_FI_BAD_DATA_FORMAT, "not a PKIMessage: offset %zu: expected %s",
                        derr.offset, derr.what);
        goto answer;
    }
    q.body = cmpr_msg_bodytype(q.msg);
    atomic_fetch_add(&core->requests[q.body & 31], 1);
    if (q.msg->header->transactionID != NULL)
        pl_hex(ASN1_STRING_get0_data(q.msg->header->transactionID),
            (size_t)ASN1_STRING_length(q.msg->header->transactionID), q.tidhex, sizeof(q.tidhex));
    if ((rsp = check_header(&q)) != NULL)
        goto answer;
    if (depth == 0) {
        /* a route may send it upstream (forward.c) */
        q.der = der;
        q.der_len = len;
        if ((r = pl_forward(&q, out_r, out_len_r)) == 1) {
            r = CMPR_OK;
            goto done;
        }
        if (r < 0)
            goto done;
    }
    if ((rsp = pl_authenticate(&q)) != NULL || (rsp = pl_check_tls_binding(&q)) != NULL)
        goto answer;
    r = st->ops->txn_get(st, ASN1_STRING_get0_data(q.msg->header->transactionID),
                         (size_t)ASN1_STRING_length(q.msg->header->transactionID), &q.txn);
    if (r == CMPR_OK) {
        q.have_txn = 1;
        /* a retransmission of the request we last answered gets the same answer */
        if (pl_octets_equal(q.msg->header->senderNonce, q.txn.req_nonce, q.txn.req_nonce_len)
                && q.txn.response != NULL && same_credentials(&q)) {
            out = OPENSSL_malloc(q.txn.response_len);
            if (out != NULL) {
                memcpy(out, q.txn.response, q.txn.response_len);
                out_len = q.txn.response_len;
            }
            cmpr_log_info("%s tid=%s: retransmission answered from the store", info->medium, q.tidhex);
            goto done;
        }
    } else if (r != CMPR_ERR_NOT_FOUND) {
        atomic_fetch_add(&core->store_errors, 1);
        rsp = pl_error_rsp(&q, CMPR_FI_SYSTEM_UNAVAIL, "the store is not available");
        goto answer;
    }
    /* a senderNonce is used once (replay protection) */
    r = st->ops->nonce_check(st, ASN1_STRING_get0_data(q.msg->header->senderNonce),
                             (size_t)ASN1_STRING_length(q.msg->header->senderNonce),
                             (int64_t)time(NULL), q.core->conf->nonce_window);
    if (r == CMPR_ERR_EXISTS && info->resumed) {
        cmpr_log_info("%s tid=%s: resumed after a restart: senderNonce already recorded", info->medium,
                      q.tidhex);
    } else if (r == CMPR_ERR_EXISTS) {
        rsp = pl_error_rsp(&q, CMPR_FI_BAD_SENDER_NONCE, "senderNonce was already used (replay)");
        goto answer;
    } else if (r != CMPR_OK) {
        rsp = pl_error_rsp(&q, CMPR_FI_SYSTEM_UNAVAIL, "the store is not available");
        goto answer;
    }
    if (q.body == CMPR_BODY_NESTED && q.depth >= CMPR_MAX_NESTED_DEPTH) {
        rsp = pl_error_rsp(&q, CMPR_FI_BAD_REQUEST, "nested too deeply");
        goto answer;
    }
    rsp = dispatch(&q);
    if (rsp == NULL && q.raw_answer != NULL) {
        /* already protected by the inner transaction */
        *out_r = q.raw_answer;
        *out_len_r = q.raw_answer_len;
        q.raw_answer = NULL;
        r = CMPR_OK;
        goto done;
    }
 answer:
    if (rsp == NULL) {
        q.save_txn = 0;
        rsp = pl_error_rsp(&q, CMPR_FI_SYSTEM_FAILURE, "internal error");
        if (rsp == NULL) {
            r = CMPR_ERR_INTERNAL;
            goto done;
        }
    }
    if ((r = pl_protect(&q, rsp)) != CMPR_OK || (r = cmpr_msg_encode(rsp, &out, &out_len)) != CMPR_OK) {
        cmpr_log_error("cannot protect or encode the answer: %s", cmpr_strerror(r));
        goto done;
    }
    count_answer(core, rsp);
    /* state is committed before the answer leaves */
    if (q.save_txn != 0) {
        if (q.new_cert != NULL && (r = st->ops->cert_put(st, q.new_cert)) != CMPR_OK)
            goto store_failed;
        if (q.new_cert != NULL && q.archive != NULL
                && (r = st->ops->archive_put(st, q.new_cert->serial, q.new_cert->serial_len,
                                             q.new_cert->subject, q.txn.client, q.archive,
                                             q.archive_len)) != CMPR_OK)
            goto store_failed;
        pl_octets(rsp->header->senderNonce, q.txn.last_nonce, sizeof(q.txn.last_nonce),
               &q.txn.last_nonce_len);
        pl_octets(q.msg->header->senderNonce, q.txn.req_nonce, sizeof(q.txn.req_nonce),
               &q.txn.req_nonce_len);
        free(q.txn.response);
        q.txn.response = malloc(out_len);
        if (q.txn.response == NULL) {
            r = CMPR_ERR_ALLOC;
            goto store_failed;
        }
        memcpy(q.txn.response, out, out_len);
        q.txn.response_len = out_len;
        q.txn.updated = (int64_t)time(NULL);
        r = q.save_txn == 1 ? st->ops->txn_insert(st, &q.txn) : st->ops->txn_update(st, &q.txn);
        if (r == CMPR_ERR_CONFLICT && q.new_cert == NULL && depth == 0 && !last_try) {
            /* nothing was promised or issued: the caller handles it again */
            OPENSSL_free(out);
            out = NULL;
            goto done;
        }
        if (r != CMPR_OK)
            goto store_failed;
        /* only once the new certificate is safely recorded as confirmed */
        if (q.revoke_old)
            revoke_replaced(&q);
    }
    r = CMPR_OK;
    goto done;
 store_failed:
    /* nothing of this transaction was promised: answer systemUnavail */
    atomic_fetch_add(&core->store_errors, 1);
    OPENSSL_free(out);
    out = NULL;
    CMPR_PKIMESSAGE_free(rsp);
    q.save_txn = 0;
    rsp = pl_error_rsp(&q, r == CMPR_ERR_EXISTS ? CMPR_FI_TRANSACTION_ID_IN_USE : CMPR_FI_SYSTEM_UNAVAIL,
                    r == CMPR_ERR_EXISTS ? "transactionID is already in use"
                                         : "the store could not record the transaction");
    if (rsp == NULL || pl_protect(&q, rsp) != CMPR_OK || cmpr_msg_encode(rsp, &out, &out_len) != CMPR_OK)
        r = CMPR_ERR_INTERNAL;
    else
        r = CMPR_OK;
 done:
    if (out != NULL && r == CMPR_OK && *out_r == NULL) {
        /* hand out malloc()ed memory whatever allocated it */
        unsigned char *copy = malloc(out_len);

        if (copy != NULL) {
            memcpy(copy, out, out_len);
            *out_r = copy;
            *out_len_r = out_len;
        } else {
            r = CMPR_ERR_ALLOC;
        }
    }
    OPENSSL_free(out);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(q.msg);
    cmpr_cert_rec_clear(q.new_cert);
    free(q.new_cert);
    OPENSSL_free(q.archive);
    free(q.raw_answer);
    cmpr_txn_rec_clear(&q.txn);
    ERR_clear_error();
    return r;
}

/* ---------------- operator actions ---------------- */

static void
admin_req(struct cmpr_core *core, struct req *q, const struct cmpr_request_info *info)
{
    memset(q, 0, sizeof(*q));
    q->core = core;
    q->info = info;
    q->ca = core->cas[0];
    snprintf(q->sender, sizeof(q->sender), "operator");
}

int
cmpr_core_approve(struct cmpr_core *core, const unsigned char *tid, size_t len)
{
    static const struct cmpr_request_info info = { "cli", "operator", NULL, NULL, NULL, 0, NULL };
    struct req q;
    struct enroll e;
    const struct cmpr_conf_profile *pr;
    X509 *cert = NULL;
    CMPR_PKIMESSAGE *rej;
    int r, modified = 0;

    admin_req(core, &q, &info);
    if ((r = core->st->ops->txn_get(core->st, tid, len, &q.txn)) != CMPR_OK)
        return r;
    pl_hex(tid, len, q.tidhex, sizeof(q.tidhex));
    if (q.txn.state != CMPR_TXN_PENDING_APPROVAL || q.txn.request == NULL) {
        cmpr_txn_rec_clear(&q.txn);
        return CMPR_ERR_INVALID_ARG;
    }
    if ((r = cmpr_msg_decode(q.txn.request, q.txn.request_len, &q.msg, NULL)) != CMPR_OK)
        goto out;
    q.body = q.txn.req_type;
    /* the request was fully validated when it arrived; its POP was checked then */
    if ((rej = read_request(&q, q.msg, q.body, &e)) != NULL) {
        CMPR_PKIMESSAGE_free(rej);
        enroll_free(&e);
        r = CMPR_ERR_INVALID_ARG;
        goto out;
    }
    if ((pr = cmpr_conf_profile(core->conf, q.txn.profile)) == NULL) {
        enroll_free(&e);
        r = CMPR_ERR_CONFIG;
        goto out;
    }
    if ((r = cmpr_ca_issue(q.ca, core->st, pr, &e.creq, &cert, &modified)) != CMPR_OK) {
        enroll_free(&e);
        goto out;
    }
    enroll_free(&e);
    q.new_cert = cert_rec_new(&q, cert, 0);
    if (q.new_cert == NULL || (r = core->st->ops->cert_put(core->st, q.new_cert)) != CMPR_OK) {
        r = q.new_cert == NULL ? CMPR_ERR_ALLOC : r;
        goto out;
    }
    if (q.body != CMPR_BODY_P10CR) {
        int fb;
        char why[256];
        EVP_PKEY *pub = X509_get0_pubkey(cert);

        if (archive_extract(&q, sk_CMPR_CERTREQMSG_value(cmpr_msg_get0_reqs(q.msg), 0), pub,
                            &q.archive, &q.archive_len, &fb, why, sizeof(why)) == CMPR_OK
                && q.archive != NULL)
            r = core->st->ops->archive_put(core->st, q.new_cert->serial, q.new_cert->serial_len,
                                           q.new_cert->subject, q.txn.client, q.archive,
                                           q.archive_len);
        if (r != CMPR_OK)
            goto out;
    }
    memcpy(q.txn.serial, q.new_cert->serial, q.new_cert->serial_len);
    q.txn.serial_len = q.new_cert->serial_len;
    if ((r = cmpr_txn_to(&q.txn, CMPR_TXN_WAITING_POLL)) != CMPR_OK)
        goto out;
    q.txn.updated = (int64_t)time(NULL);
    if ((r = core->st->ops->txn_set_state(core->st, &q.txn)) != CMPR_OK)
        goto out;
    pl_audit(&q, "approved", "certificate for %s issued; delivered on the next poll",
          q.new_cert->subject);
 out:
    X509_free(cert);
    CMPR_PKIMESSAGE_free(q.msg);
    cmpr_cert_rec_clear(q.new_cert);
    free(q.new_cert);
    OPENSSL_free(q.archive);
    cmpr_txn_rec_clear(&q.txn);
    ERR_clear_error();
    return r;
}

int
cmpr_core_reject(struct cmpr_core *core, const unsigned char *tid, size_t len, const char *reason)
{
    static const struct cmpr_request_info info = { "cli", "operator", NULL, NULL, NULL, 0, NULL };
    struct req q;
    int r;

    admin_req(core, &q, &info);
    if ((r = core->st->ops->txn_get(core->st, tid, len, &q.txn)) != CMPR_OK)
        return r;
    pl_hex(tid, len, q.tidhex, sizeof(q.tidhex));
    if (q.txn.state != CMPR_TXN_PENDING_APPROVAL) {
        cmpr_txn_rec_clear(&q.txn);
        return CMPR_ERR_INVALID_ARG;
    }
    snprintf(q.txn.note, sizeof(q.txn.note), "rejected by the operator%s%s",
             reason != NULL ? ": " : "", reason != NULL ? reason : "");
    if ((r = cmpr_txn_to(&q.txn, CMPR_TXN_REJECTED)) == CMPR_OK) {
        q.txn.updated = (int64_t)time(NULL);
        r = core->st->ops->txn_set_state(core->st, &q.txn);
    }
    if (r == CMPR_OK)
        pl_audit(&q, "rejected", "%s", q.txn.note);
    cmpr_txn_rec_clear(&q.txn);
    return r;
}

int
cmpr_core_revoke(struct cmpr_core *core, const unsigned char *serial, size_t len, int reason)
{
    static const struct cmpr_request_info info = { "cli", "operator", NULL, NULL, NULL, 0, NULL };
    struct req q;
    struct cmpr_cert_rec cert;
    int r;
    char snhex[2 * CMPR_STORE_MAX_ID + 1];

    admin_req(core, &q, &info);
    if ((r = core->st->ops->cert_get(core->st, serial, len, &cert)) != CMPR_OK)
        return r;
    if (cert.status == CMPR_CERT_REVOKED) {
        cmpr_cert_rec_clear(&cert);
        return CMPR_ERR_EXISTS;
    }
    if (reason < 0 || reason == 7 || reason > 10)
        reason = 0;
    r = core->st->ops->cert_set_status(core->st, serial, len,
                                       reason == 6 ? CMPR_CERT_ON_HOLD : CMPR_CERT_REVOKED,
                                       (int64_t)time(NULL), reason, cert.confirmed);
    if (r == CMPR_OK) {
        (void)cmpr_ca_write_crl(q.ca, core->st, NULL);
        pl_hex(serial, len, snhex, sizeof(snhex));
        pl_audit(&q, "revoked", "serial %s subject %s reason %d (operator)", snhex, cert.subject, reason);
    }
    cmpr_cert_rec_clear(&cert);
    return r;
}

static void refresh_crls(struct cmpr_core *core, time_t now);

struct expired {
    unsigned char (*tids)[CMPR_STORE_MAX_ID];
    size_t *lens;
    size_t n, cap;
    int64_t now;
};

static int
collect_expired(const struct cmpr_txn_rec *rec, void *arg)
{
    struct expired *x = arg;

    if (rec->expires == 0 || rec->expires > x->now)
        return CMPR_OK;
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 16;
        x->tids = realloc(x->tids, x->cap * sizeof(*x->tids));
        x->lens = realloc(x->lens, x->cap * sizeof(*x->lens));
    }
    memcpy(x->tids[x->n], rec->tid, rec->tid_len);
    x->lens[x->n++] = rec->tid_len;
    return CMPR_OK;
}

int
cmpr_core_expire(struct cmpr_core *core, time_t now)
{
    static const struct cmpr_request_info info = { "cli", "housekeeping", NULL, NULL, NULL, 0, NULL };
    struct expired x = { NULL, NULL, 0, 0, (int64_t)now };
    int done = 0;

    /* collect first: the store is not re-entered from its own callback */
    if (core->st->ops->txn_list(core->st, CMPR_TXN_ISSUED, collect_expired, &x) != CMPR_OK)
        goto out;
    for (size_t i = 0; i < x.n; i++) {
        struct req q;

        admin_req(core, &q, &info);
        if (core->st->ops->txn_get(core->st, x.tids[i], x.lens[i], &q.txn) != CMPR_OK)
            continue;
        pl_hex(q.txn.tid, q.txn.tid_len, q.tidhex, sizeof(q.tidhex));
        if (q.txn.state == CMPR_TXN_ISSUED && cmpr_txn_to(&q.txn, CMPR_TXN_EXPIRED) == CMPR_OK) {
            /* RFC 9810 5.3.18: no certConf in time is a rejection; revoke */
            revoke_serial(&q, q.txn.serial, q.txn.serial_len, 5);
            q.txn.updated = (int64_t)now;
            q.txn.expires = 0;
            if (core->st->ops->txn_update(core->st, &q.txn) == CMPR_OK) {
                pl_audit(&q, "expired", "no certConf within %ld s: certificate revoked",
                      core->conf->confirm_wait);
                done++;
            }
        }
        cmpr_txn_rec_clear(&q.txn);
    }
 out:
    free(x.tids);
    free(x.lens);
    refresh_crls(core, now);
    return done;
}

/* CRLs are rewritten when half their validity has passed, so relying parties
 * never see an expired one while the daemon or cron runs housekeeping. */
static void
refresh_crls(struct cmpr_core *core, time_t now)
{
    for (size_t i = 0; i < core->n_cas; i++) {
        const struct cmpr_conf_ca *cc = core->cas[i]->conf;
        struct stat sb;

        if (cc->crl_file == NULL)
            continue;
        if (stat(cc->crl_file, &sb) == 0 && now - sb.st_mtime < cc->crl_days * 86400L / 2)
            continue;
        if (cmpr_ca_write_crl(core->cas[i], core->st, NULL) == CMPR_OK)
            cmpr_log_info("CRL of CA %s refreshed: %s", cc->name, cc->crl_file);
    }
}

int
cmpr_core_write_crl(struct cmpr_core *core, const char *path)
{
    return cmpr_ca_write_crl(core->cas[0], core->st, path);
}
