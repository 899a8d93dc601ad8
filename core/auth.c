/* Who sent a request (RFC 9483 3.2, 3.5; RFC 9810 5.1.3): checked once for
 * every request, before the route decision. The verdict says how it
 * authenticated, or why not and whether that is only "unknown here" (an
 * upstream behind a keep route may know the client) or a plain failure. */
#include "core/req.h"
#include "base/err.h"
#include "codec/oids.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static void fail(struct req *q, int soft, int failbit, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
fail(struct req *q, int soft, int failbit, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(q->auth_why, sizeof(q->auth_why), fmt, ap);
    va_end(ap);
    q->auth = AUTH_NONE;
    q->auth_soft = soft;
    q->auth_fail = failbit;
    q->client = NULL;           /* not authenticated: the answer is signed */
    q->signer = NULL;
    q->signer_is_ra = 0;
}

static const struct cmpr_conf_client *
client_by_cert(const struct cmpr_conf *conf, X509 *x)
{
    for (size_t i = 0; i < conf->n_clients; i++)
        if (conf->clients[i].cert_subject != NULL
                && cmpr_name_matches(X509_get_subject_name(x), conf->clients[i].cert_subject))
            return &conf->clients[i];
    return NULL;
}

static void
check_mac(struct req *q, int kind)
{
    const CMPR_PKIHEADER *h = q->msg->header;
    struct cmpr_verify_opts vo = { (unsigned)q->core->conf->max_mac_iterations, q->core->mac_cache,
                                   q->info->mac_budget };
    const ASN1_OCTET_STRING *kid = h->senderKID;
    const struct cmpr_conf_client *cl;
    char refhex[2 * 64 + 1];
    int r;

    if (kid == NULL) {
        fail(q, 1, CMPR_FI_BAD_MESSAGE_CHECK, "MAC protection needs senderKID naming the shared secret");
        return;
    }
    cmpr_hex(ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid), refhex, sizeof(refhex));
    snprintf(q->sender, sizeof(q->sender), "ref:%s", refhex);
    cl = cmpr_conf_client_by_ref(q->core->conf, ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid));
    if (cl == NULL) {
        fail(q, 1, CMPR_FI_BAD_MESSAGE_CHECK, "unknown reference (senderKID %s)", refhex);
        return;
    }
    if ((r = cmpr_verify_mac(q->msg, cl->secret, cl->secret_len, &vo)) != CMPR_OK) {
        fail(q, 0, cmpr_err_failinfo(r) >= 0 ? cmpr_err_failinfo(r) : CMPR_FI_BAD_MESSAGE_CHECK,
             "MAC check for client %s failed: %s", cl->name, cmpr_strerror(r));
        return;
    }
    q->client = cl;
    q->auth = AUTH_MAC;
    q->mac_kind = kind == CMPR_PROT_PBMAC1 ? CMPR_MAC_PBMAC1 : CMPR_MAC_PBM;
}

/* chain retries without one of the extraCerts: bounded, each is a verification */
#define CHAIN_RETRIES 8

/* signer chains to our anchors through the configured intermediates and
 * extraCerts (but the one skipped, -1: none); the verification error */
static int
chain_with(struct req *q, X509 *signer, int skip)
{
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int err = X509_V_ERR_OUT_OF_MEM;

    /* ours first; then the message's, but none self-signed: anchors come
     * from the trust store only, and a self-signed certificate named like
     * an issuer would be taken for it (OpenSSL takes the first whose name
     * fits and does not try the next) */
    X509_add_certs(untrusted, q->core->untrusted, X509_ADD_FLAG_UP_REF);
    for (int i = 0; untrusted != NULL && i < sk_X509_num(q->msg->extraCerts); i++) {
        X509 *x = sk_X509_value(q->msg->extraCerts, i);

        if (i != skip && x != signer && !(X509_get_extension_flags(x) & EXFLAG_SS))
            X509_add_cert(untrusted, x, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP);
    }
    if (untrusted != NULL && ctx != NULL && X509_STORE_CTX_init(ctx, q->core->trust, signer, untrusted))
        err = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    sk_X509_pop_free(untrusted, X509_free);
    ERR_clear_error();
    return err;
}

/* the signer's certificate must chain to our anchors (extraCerts help);
 * when the chain built first fails, again without each of the first
 * extraCerts in turn, so that one impostor among them does not hide the
 * real issuer */
static int
signer_trusted(struct req *q, X509 *signer)
{
    int err = chain_with(q, signer, -1);

    for (int i = 0; err != X509_V_OK && i < sk_X509_num(q->msg->extraCerts) && i < CHAIN_RETRIES; i++)
        if (sk_X509_value(q->msg->extraCerts, i) != signer && chain_with(q, signer, i) == X509_V_OK)
            err = X509_V_OK;
    if (err != X509_V_OK)
        fail(q, 1, CMPR_FI_SIGNER_NOT_TRUSTED, "protection certificate not trusted: %s",
             X509_verify_cert_error_string(err));
    return err == X509_V_OK;
}

static void
check_sig(struct req *q)
{
    const CMPR_PKIHEADER *h = q->msg->header;
    X509 *signer = cmpr_msg_get0_protection_cert(q->msg);
    int r;

    if (signer == NULL) {
        fail(q, 1, CMPR_FI_SIGNER_NOT_TRUSTED,
             "signature protection without the signer's certificate in extraCerts");
        return;
    }
    cmpr_name_text(X509_get_subject_name(signer), q->sender, sizeof(q->sender));
    if ((r = cmpr_verify_sig(q->msg, X509_get0_pubkey(signer))) != CMPR_OK) {
        fail(q, 0, cmpr_err_failinfo(r) >= 0 ? cmpr_err_failinfo(r) : CMPR_FI_BAD_MESSAGE_CHECK,
             "signature check failed: %s", cmpr_strerror(r));
        return;
    }
    /* RFC 9483 3.5: the sender is the subject of the protection certificate */
    if (X509_NAME_cmp(cmpr_hdr_get0_sender_name(h), X509_get_subject_name(signer)) != 0) {
        fail(q, 0, CMPR_FI_BAD_MESSAGE_CHECK, "sender does not match the subject of the protection certificate");
        return;
    }
    if (!signer_trusted(q, signer))
        return;
    /* keyUsage, when present, must allow digitalSignature */
    if ((X509_get_extension_flags(signer) & EXFLAG_KUSAGE) && !(X509_get_key_usage(signer) & KU_DIGITAL_SIGNATURE)) {
        fail(q, 0, CMPR_FI_NOT_AUTHORIZED, "protection certificate lacks digitalSignature key usage");
        return;
    }
    q->auth = AUTH_SIG;
    q->signer = signer;
    q->signer_is_ra = cmpr_cert_has_eku(signer, CMPR_OID_KP_CMCRA);
    q->client = client_by_cert(q->core->conf, signer);
}

/* [client] tls_subject binds a client to a TLS client certificate: its
 * requests must come over TLS from a matching, verified certificate. */
static void
check_tls_binding(struct req *q)
{
    const char *want = q->client != NULL ? q->client->tls_subject : NULL;
    const char *got = q->info->tls_subject;

    if (want == NULL)
        return;
    if (got == NULL || (strpbrk(want, "*?[") != NULL ? fnmatch(want, got, 0) != 0 : strcmp(want, got) != 0)) {
        const char *name = q->client->name;

        fail(q, 0, CMPR_FI_NOT_AUTHORIZED, "client %s must come over TLS with a client certificate for %s",
             name, want);
    }
}

void
cmpr_auth_check(struct req *q)
{
    const CMPR_PKIHEADER *h = q->msg->header;
    int kind;

    q->auth = AUTH_NONE;
    q->auth_soft = 0;
    q->auth_why[0] = '\0';
    if (h->protectionAlg == NULL || q->msg->protection == NULL) {
        fail(q, 1, CMPR_FI_BAD_MESSAGE_CHECK, "the message is not protected");
        return;
    }
    kind = cmpr_prot_kind(h->protectionAlg->algorithm);
    if (kind == CMPR_PROT_PBM || kind == CMPR_PROT_PBMAC1)
        check_mac(q, kind);
    else if (kind == CMPR_PROT_SIG || OBJ_obj2nid(h->protectionAlg->algorithm) == NID_rsassaPss)
        check_sig(q);
    else
        fail(q, 0, CMPR_FI_BAD_ALG, "protection algorithm not supported");
    if (q->auth != AUTH_NONE)
        check_tls_binding(q);
}

CMPR_PKIMESSAGE *
cmpr_auth_error(struct req *q)
{
    return cmpr_error_rsp(q, q->auth_fail, "%s", q->auth_why);
}

int
cmpr_auth_same_credentials(const struct req *q)
{
    if (q->txn.client[0] != '\0')
        return q->client != NULL && strcmp(q->client->name, q->txn.client) == 0;
    return strcmp(q->txn.sender, q->sender) == 0;
}
