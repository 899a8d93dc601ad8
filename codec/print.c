/* A CMP-aware pretty printer: the same tree as indented text or as JSON. */
#include "codec/print.h"
#include "codec/msg.h"
#include "codec/oids.h"
#include "base/err.h"

#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#define EM_MAX_DEPTH 64

static void
bio_putc(BIO *b, int c)
{
    char ch = (char)c;

    BIO_write(b, &ch, 1);
}

/* ---------------- emitter ---------------- */

struct em {
    BIO *out;
    int json;
    int depth;
    int is_array[EM_MAX_DEPTH];
    int count[EM_MAX_DEPTH];
};

static void
em_indent(struct em *e)
{
    for (int i = 0; i < e->depth; i++)
        BIO_puts(e->out, "  ");
}

static void
json_str(BIO *out, const char *s, size_t len)
{
    bio_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\')
            BIO_printf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            BIO_printf(out, "\\u%04x", c);
        else
            bio_putc(out, c);
    }
    bio_putc(out, '"');
}

/* text mode: only printable ASCII and UTF-8 bytes pass, control bytes become '?' */
static void
text_str(BIO *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        bio_putc(out, (c < 0x20 || c == 0x7f) ? '?' : c);
    }
}

/* Starts a member: the separator, the key (or the array index in text). */
static void
em_key(struct em *e, const char *key)
{
    int d = e->depth;

    if (e->json) {
        if (d > 0 && e->count[d - 1]++ > 0)
            bio_putc(e->out, ',');
        if (d > 0 && !e->is_array[d - 1] && key != NULL) {
            json_str(e->out, key, strlen(key));
            bio_putc(e->out, ':');
        }
        return;
    }
    em_indent(e);
    if (d > 0 && e->is_array[d - 1])
        BIO_printf(e->out, "[%d]%s", e->count[d - 1]++, key != NULL ? " " : "");
    if (key != NULL)
        BIO_printf(e->out, "%s:", key);
}

static void
em_open(struct em *e, const char *key, int array)
{
    em_key(e, key);
    if (e->json)
        bio_putc(e->out, array ? '[' : '{');
    else
        bio_putc(e->out, '\n');
    if (e->depth < EM_MAX_DEPTH - 1) {
        e->is_array[e->depth] = array;
        e->count[e->depth] = 0;
    }
    e->depth++;
}

static void
em_close(struct em *e)
{
    e->depth--;
    if (e->json)
        bio_putc(e->out, e->is_array[e->depth] ? ']' : '}');
}

#define em_obj(e, k) em_open((e), (k), 0)
#define em_arr(e, k) em_open((e), (k), 1)

static void
em_strn(struct em *e, const char *key, const char *s, size_t len)
{
    em_key(e, key);
    if (e->json) {
        json_str(e->out, s, len);
    } else {
        bio_putc(e->out, ' ');
        text_str(e->out, s, len);
        bio_putc(e->out, '\n');
    }
}

static void
em_str(struct em *e, const char *key, const char *s)
{
    em_strn(e, key, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

static void
em_int(struct em *e, const char *key, long v)
{
    em_key(e, key);
    BIO_printf(e->out, e->json ? "%ld" : " %ld\n", v);
}

static void
em_bool(struct em *e, const char *key, int v)
{
    em_key(e, key);
    BIO_printf(e->out, e->json ? "%s" : " %s\n", v ? "true" : "false");
}

static void
em_hex(struct em *e, const char *key, const unsigned char *d, size_t len)
{
    char buf[2 * 64 + 4];
    size_t n = len > 64 ? 64 : len, j = 0;

    for (size_t i = 0; i < n; i++)
        j += (size_t)snprintf(buf + j, sizeof(buf) - j, "%02x", d[i]);
    if (len > n)
        j += (size_t)snprintf(buf + j, sizeof(buf) - j, "..");
    em_strn(e, key, buf, j);
}

/* ---------------- value renderers ---------------- */

static void
em_octets(struct em *e, const char *key, const ASN1_OCTET_STRING *os)
{
    if (os != NULL)
        em_hex(e, key, ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os));
}

static void
em_asn1int(struct em *e, const char *key, const ASN1_INTEGER *ai)
{
    BIGNUM *bn;
    char *dec;

    if (ai == NULL)
        return;
    if ((bn = ASN1_INTEGER_to_BN(ai, NULL)) == NULL || (dec = BN_bn2dec(bn)) == NULL) {
        BN_free(bn);
        em_str(e, key, "?");
        return;
    }
    if (BN_num_bits(bn) <= 62) {
        em_int(e, key, ASN1_INTEGER_get(ai));
    } else {
        char *hex = BN_bn2hex(bn);

        em_str(e, key, hex != NULL ? hex : dec);
        OPENSSL_free(hex);
    }
    OPENSSL_free(dec);
    BN_free(bn);
}

static void
em_serial(struct em *e, const char *key, const ASN1_INTEGER *ai)
{
    BIGNUM *bn = ai != NULL ? ASN1_INTEGER_to_BN(ai, NULL) : NULL;
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

    if (hex != NULL)
        em_str(e, key, hex);
    OPENSSL_free(hex);
    BN_free(bn);
}

static void
em_oid(struct em *e, const char *key, const ASN1_OBJECT *obj)
{
    char buf[128];
    int nid = OBJ_obj2nid(obj);

    if (nid != NID_undef)
        em_str(e, key, OBJ_nid2ln(nid));
    else
        em_str(e, key, cmpr_oid_text(obj, buf, sizeof(buf)));
}

static void
em_time(struct em *e, const char *key, const ASN1_TIME *t)
{
    struct tm tm;
    char buf[32];

    if (t == NULL)
        return;
    if (!ASN1_TIME_to_tm(t, &tm)) {
        em_str(e, key, "(invalid time)");
        return;
    }
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    em_str(e, key, buf);
}

static void
em_name(struct em *e, const char *key, const X509_NAME *name)
{
    BIO *mem = BIO_new(BIO_s_mem());
    char *p = NULL;
    long n;

    if (mem == NULL)
        return;
    if (name != NULL)
        X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    n = BIO_get_mem_data(mem, &p);
    em_strn(e, key, n > 0 ? p : "", n > 0 ? (size_t)n : 0);
    BIO_free(mem);
}

static void
em_gn(struct em *e, const char *key, const GENERAL_NAME *gn)
{
    BIO *mem;
    char *p = NULL;
    long n;

    if (gn == NULL)
        return;
    if (gn->type == GEN_DIRNAME) {
        em_name(e, key, gn->d.directoryName);
        return;
    }
    if ((mem = BIO_new(BIO_s_mem())) == NULL)
        return;
    GENERAL_NAME_print(mem, (GENERAL_NAME *)gn);
    n = BIO_get_mem_data(mem, &p);
    em_strn(e, key, n > 0 ? p : "", n > 0 ? (size_t)n : 0);
    BIO_free(mem);
}

static void
em_freetext(struct em *e, const char *key, const STACK_OF(ASN1_UTF8STRING) *ft)
{
    if (ft == NULL)
        return;
    em_arr(e, key);
    for (int i = 0; i < sk_ASN1_UTF8STRING_num(ft); i++) {
        const ASN1_UTF8STRING *s = sk_ASN1_UTF8STRING_value(ft, i);

        em_strn(e, NULL, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    }
    em_close(e);
}

static void
em_pubkey(struct em *e, const char *key, EVP_PKEY *pk)
{
    char buf[80];

    if (pk == NULL)
        return;
    if (EVP_PKEY_is_a(pk, "EC")) {
        char grp[64] = "";

        EVP_PKEY_get_utf8_string_param(pk, "group", grp, sizeof(grp), NULL);
        snprintf(buf, sizeof(buf), "EC %s", grp);
    } else {
        snprintf(buf, sizeof(buf), "%s %d bits", EVP_PKEY_get0_type_name(pk), EVP_PKEY_get_bits(pk));
    }
    em_str(e, key, buf);
}

static void
em_exts(struct em *e, const char *key, const STACK_OF(X509_EXTENSION) *exts)
{
    if (exts == NULL || sk_X509_EXTENSION_num(exts) == 0)
        return;
    em_arr(e, key);
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *x = sk_X509_EXTENSION_value(exts, i);
        BIO *mem = BIO_new(BIO_s_mem());
        char *p = NULL;
        long n = 0;

        em_obj(e, NULL);
        em_oid(e, "id", X509_EXTENSION_get_object(x));
        if (X509_EXTENSION_get_critical(x))
            em_bool(e, "critical", 1);
        if (mem != NULL && X509V3_EXT_print(mem, x, X509V3_EXT_ERROR_UNKNOWN, 0) == 1) {
            n = BIO_get_mem_data(mem, &p);
            while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == ' '))
                n--;
            em_strn(e, "value", p, (size_t)n);
        }
        BIO_free(mem);
        em_close(e);
    }
    em_close(e);
}

static void
em_cert(struct em *e, const char *key, const X509 *x)
{
    if (x == NULL)
        return;
    em_obj(e, key);
    em_name(e, "subject", X509_get_subject_name(x));
    em_name(e, "issuer", X509_get_issuer_name(x));
    em_serial(e, "serial", X509_get0_serialNumber(x));
    em_time(e, "notBefore", X509_get0_notBefore(x));
    em_time(e, "notAfter", X509_get0_notAfter(x));
    em_close(e);
}

static void
em_certs(struct em *e, const char *key, const STACK_OF(X509) *sk)
{
    if (sk == NULL)
        return;
    em_arr(e, key);
    for (int i = 0; i < sk_X509_num(sk); i++)
        em_cert(e, NULL, sk_X509_value(sk, i));
    em_close(e);
}

static void
em_crl(struct em *e, const char *key, const X509_CRL *crl)
{
    em_obj(e, key);
    em_name(e, "issuer", X509_CRL_get_issuer(crl));
    em_time(e, "thisUpdate", X509_CRL_get0_lastUpdate(crl));
    em_time(e, "nextUpdate", X509_CRL_get0_nextUpdate(crl));
    em_int(e, "revoked", sk_X509_REVOKED_num(X509_CRL_get_REVOKED((X509_CRL *)crl)));
    em_close(e);
}

static void
em_pkisi(struct em *e, const char *key, const CMPR_PKISI *si)
{
    uint32_t fi;
    long st;

    if (si == NULL)
        return;
    em_obj(e, key);
    st = cmpr_pkisi_status(si);
    em_str(e, "status", cmpr_status_name(st) != NULL ? cmpr_status_name(st) : "(unknown)");
    em_freetext(e, "statusString", si->statusString);
    if ((fi = cmpr_pkisi_failinfo(si)) != 0) {
        em_arr(e, "failInfo");
        for (int b = 0; b <= CMPR_FI_MAX; b++)
            if (fi & (1u << b))
                em_str(e, NULL, cmpr_failinfo_name(b));
        em_close(e);
    }
    em_close(e);
}

static void
em_algor(struct em *e, const char *key, const X509_ALGOR *alg)
{
    if (alg != NULL)
        em_oid(e, key, alg->algorithm);
}

static void
em_protalg(struct em *e, const X509_ALGOR *alg)
{
    int kind = cmpr_prot_kind(alg->algorithm);

    em_obj(e, "protectionAlg");
    if (kind == CMPR_PROT_PBM) {
        CMPR_PBMPARAMETER *p = NULL;

        em_str(e, "algorithm", "PasswordBasedMac");
        if (alg->parameter != NULL && alg->parameter->type == V_ASN1_SEQUENCE)
            p = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMPARAMETER), alg->parameter);
        if (p != NULL) {
            em_algor(e, "owf", p->owf);
            em_asn1int(e, "iterationCount", p->iterationCount);
            em_algor(e, "mac", p->mac);
            em_octets(e, "salt", p->salt);
        }
        CMPR_PBMPARAMETER_free(p);
    } else if (kind == CMPR_PROT_PBMAC1) {
        CMPR_PBMAC1PARAM *p = NULL;
        PBKDF2PARAM *k = NULL;

        em_str(e, "algorithm", "PBMAC1");
        if (alg->parameter != NULL && alg->parameter->type == V_ASN1_SEQUENCE)
            p = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPR_PBMAC1PARAM), alg->parameter);
        if (p != NULL) {
            em_algor(e, "kdf", p->keyDerivationFunc);
            if (p->keyDerivationFunc->parameter != NULL
                    && p->keyDerivationFunc->parameter->type == V_ASN1_SEQUENCE)
                k = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM),
                                              p->keyDerivationFunc->parameter);
            if (k != NULL) {
                em_asn1int(e, "iterationCount", k->iter);
                em_asn1int(e, "keyLength", k->keylength);
                em_str(e, "prf", k->prf != NULL ? OBJ_nid2ln(OBJ_obj2nid(k->prf->algorithm))
                                                : "hmacWithSHA1");
                if (k->salt != NULL && k->salt->type == V_ASN1_OCTET_STRING)
                    em_octets(e, "salt", k->salt->value.octet_string);
            }
            em_algor(e, "mac", p->messageAuthScheme);
        }
        PBKDF2PARAM_free(k);
        CMPR_PBMAC1PARAM_free(p);
    } else if (kind == CMPR_PROT_DHBM) {
        em_str(e, "algorithm", "DHBasedMac");
    } else if (kind == CMPR_PROT_KEMBM) {
        em_str(e, "algorithm", "KemBasedMac");
    } else {
        em_oid(e, "algorithm", alg->algorithm);
    }
    em_close(e);
}

static void em_itav(struct em *e, const CMPR_ITAV *itav);
static void em_message(struct em *e, const char *key, const CMPR_PKIMESSAGE *msg, int depth);

static void
em_itavs(struct em *e, const char *key, const STACK_OF(CMPR_ITAV) *sk)
{
    if (sk == NULL)
        return;
    em_arr(e, key);
    for (int i = 0; i < sk_CMPR_ITAV_num(sk); i++)
        em_itav(e, sk_CMPR_ITAV_value(sk, i));
    em_close(e);
}

static void
em_itav(struct em *e, const CMPR_ITAV *itav)
{
    int n = cmpr_itav_num(itav);
    const char *name = cmpr_it_name(n);
    char buf[128];

    em_obj(e, NULL);
    em_str(e, "infoType", name != NULL ? name : cmpr_oid_text(itav->infoType, buf, sizeof(buf)));
    if (itav->infoValue == NULL) {
        em_close(e);
        return;
    }
    switch (n) {
    case CMPR_IT_CA_CERTS: {
        STACK_OF(X509) *sk = cmpr_itav_get1_ca_certs(itav);

        em_certs(e, "caCerts", sk);
        sk_X509_pop_free(sk, X509_free);
        break;
    }
    case CMPR_IT_ROOT_CA_CERT: {
        X509 *x = cmpr_itav_get1_root_ca_cert(itav);

        em_cert(e, "rootCaCert", x);
        X509_free(x);
        break;
    }
    case CMPR_IT_ROOT_CA_KEY_UPDATE: {
        CMPR_ROOTCAKEYUPDATECONTENT *c = cmpr_itav_get1_root_ca_key_update(itav);

        if (c != NULL) {
            em_cert(e, "newWithNew", c->newWithNew);
            em_cert(e, "newWithOld", c->newWithOld);
            em_cert(e, "oldWithNew", c->oldWithNew);
        }
        CMPR_ROOTCAKEYUPDATECONTENT_free(c);
        break;
    }
    case CMPR_IT_CERT_REQ_TEMPLATE: {
        CMPR_CERTREQTEMPLATECONTENT *c = cmpr_itav_get1_cert_req_template(itav);

        if (c != NULL) {
            if (c->certTemplate->subject != NULL)
                em_name(e, "subject", c->certTemplate->subject);
            em_exts(e, "extensions", c->certTemplate->extensions);
            if (c->keySpec != NULL) {
                em_arr(e, "keySpec");
                for (int i = 0; i < sk_CMPR_ATAV_num(c->keySpec); i++) {
                    CMPR_ATAV *a = sk_CMPR_ATAV_value(c->keySpec, i);
                    const char *cn = cmpr_regctrl_name(cmpr_regctrl_num(a->type));

                    em_str(e, NULL, cn != NULL ? cn : cmpr_oid_text(a->type, buf, sizeof(buf)));
                }
                em_close(e);
            }
        }
        CMPR_CERTREQTEMPLATECONTENT_free(c);
        break;
    }
    case CMPR_IT_CRL_STATUS_LIST: {
        STACK_OF(CMPR_CRLSTATUS) *l = cmpr_itav_get1_crl_status_list(itav);

        em_int(e, "entries", sk_CMPR_CRLSTATUS_num(l));
        sk_CMPR_CRLSTATUS_pop_free(l, CMPR_CRLSTATUS_free);
        break;
    }
    case CMPR_IT_CRLS: {
        STACK_OF(X509_CRL) *l = cmpr_itav_get1_crls(itav);

        em_arr(e, "crls");
        for (int i = 0; i < sk_X509_CRL_num(l); i++)
            em_crl(e, NULL, sk_X509_CRL_value(l, i));
        em_close(e);
        sk_X509_CRL_pop_free(l, X509_CRL_free);
        break;
    }
    case CMPR_IT_CURRENT_CRL: {
        X509_CRL *c = cmpr_itav_get1_current_crl(itav);

        if (c != NULL)
            em_crl(e, "currentCRL", c);
        X509_CRL_free(c);
        break;
    }
    case CMPR_IT_CERT_PROFILE: {
        STACK_OF(ASN1_UTF8STRING) *l = cmpr_itav_get1_cert_profile(itav);

        em_freetext(e, "certProfile", l);
        sk_ASN1_UTF8STRING_pop_free(l, ASN1_UTF8STRING_free);
        break;
    }
    case CMPR_IT_SIGN_KEY_PAIR_TYPES: {
        STACK_OF(X509_ALGOR) *l = cmpr_itav_get1_sign_key_pair_types(itav);

        em_arr(e, "algorithms");
        for (int i = 0; i < sk_X509_ALGOR_num(l); i++)
            em_algor(e, NULL, sk_X509_ALGOR_value(l, i));
        em_close(e);
        sk_X509_ALGOR_pop_free(l, X509_ALGOR_free);
        break;
    }
    case CMPR_IT_UNSUPPORTED_OIDS: {
        STACK_OF(ASN1_OBJECT) *l = cmpr_itav_get1_unsupported_oids(itav);

        em_arr(e, "oids");
        for (int i = 0; i < sk_ASN1_OBJECT_num(l); i++)
            em_str(e, NULL, cmpr_oid_text(sk_ASN1_OBJECT_value(l, i), buf, sizeof(buf)));
        em_close(e);
        sk_ASN1_OBJECT_pop_free(l, ASN1_OBJECT_free);
        break;
    }
    case CMPR_IT_CONFIRM_WAIT_TIME:
        if (itav->infoValue->type == V_ASN1_GENERALIZEDTIME)
            em_time(e, "confirmWaitTime", itav->infoValue->value.generalizedtime);
        break;
    case CMPR_IT_IMPLICIT_CONFIRM:
        break;
    case CMPR_IT_ORIG_PKIMESSAGE: {
        CMPR_PKIMESSAGES *m = cmpr_itav_get1_orig_pkimessage(itav);

        em_arr(e, "messages");
        for (int i = 0; i < sk_CMPR_PKIMESSAGE_num(m); i++)
            em_message(e, NULL, sk_CMPR_PKIMESSAGE_value(m, i), 1);
        em_close(e);
        sk_CMPR_PKIMESSAGE_pop_free(m, CMPR_PKIMESSAGE_free);
        break;
    }
    default: {
        unsigned char *der = NULL;
        int len = i2d_ASN1_TYPE(itav->infoValue, &der);

        if (len > 0)
            em_hex(e, "valueDER", der, (size_t)len);
        OPENSSL_free(der);
    }
    }
    em_close(e);
}

static void
em_template(struct em *e, const char *key, const CMPR_CERTTEMPLATE *t)
{
    EVP_PKEY *pk;
    time_t nb = 0, na = 0;

    em_obj(e, key);
    if (t->subject != NULL)
        em_name(e, "subject", t->subject);
    if (t->issuer != NULL)
        em_name(e, "issuer", t->issuer);
    em_serial(e, "serialNumber", t->serialNumber);
    if (cmpr_tmpl_get_validity(t, &nb, &na) == CMPR_OK) {
        char buf[32];

        em_obj(e, "validity");
        if (nb != 0) {
            strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", gmtime(&nb));
            em_str(e, "notBefore", buf);
        }
        if (na != 0) {
            strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", gmtime(&na));
            em_str(e, "notAfter", buf);
        }
        em_close(e);
    }
    if (t->publicKey != NULL) {
        if ((pk = cmpr_tmpl_get1_pubkey(t)) != NULL)
            em_pubkey(e, "publicKey", pk);
        else
            em_str(e, "publicKey", "(malformed)");
        EVP_PKEY_free(pk);
    }
    em_exts(e, "extensions", t->extensions);
    em_close(e);
}

static const char *
popo_name(const CMPR_POPO *p)
{
    static const char *const names[] = { "raVerified", "signature", "keyEncipherment",
                                         "keyAgreement" };

    return p->type >= 0 && p->type < 4 ? names[p->type] : "?";
}

static void
em_crm(struct em *e, const CMPR_CERTREQMSG *crm)
{
    char buf[128];

    em_obj(e, NULL);
    em_asn1int(e, "certReqId", crm->certReq->certReqId);
    em_template(e, "certTemplate", crm->certReq->certTemplate);
    if (crm->certReq->controls != NULL) {
        em_arr(e, "controls");
        for (int i = 0; i < sk_CMPR_ATAV_num(crm->certReq->controls); i++) {
            CMPR_ATAV *a = sk_CMPR_ATAV_value(crm->certReq->controls, i);
            int n = cmpr_regctrl_num(a->type);
            const char *cn = cmpr_regctrl_name(n);

            em_obj(e, NULL);
            em_str(e, "type", cn != NULL ? cn : cmpr_oid_text(a->type, buf, sizeof(buf)));
            if (n == CMPR_REGCTRL_OLDCERTID) {
                OSSL_CRMF_CERTID *cid = cmpr_crm_get1_oldcertid(crm);

                if (cid != NULL) {
                    em_name(e, "issuer", OSSL_CRMF_CERTID_get0_issuer(cid));
                    em_serial(e, "serialNumber", OSSL_CRMF_CERTID_get0_serialNumber(cid));
                }
                OSSL_CRMF_CERTID_free(cid);
            }
            em_close(e);
        }
        em_close(e);
    }
    if (crm->popo != NULL)
        em_str(e, "popo", popo_name(crm->popo));
    if (crm->regInfo != NULL)
        em_int(e, "regInfo", sk_CMPR_ATAV_num(crm->regInfo));
    em_close(e);
}

static void
em_certrep(struct em *e, const CMPR_CERTREPMESSAGE *rep)
{
    em_certs(e, "caPubs", rep->caPubs);
    em_arr(e, "response");
    for (int i = 0; i < sk_CMPR_CERTRESPONSE_num(rep->response); i++) {
        CMPR_CERTRESPONSE *r = sk_CMPR_CERTRESPONSE_value(rep->response, i);

        em_obj(e, NULL);
        em_asn1int(e, "certReqId", r->certReqId);
        em_pkisi(e, "status", r->status);
        if (r->certifiedKeyPair != NULL) {
            CMPR_CERTORENCCERT *c = r->certifiedKeyPair->certOrEncCert;

            if (c->type == CMPR_CERTORENCCERT_CERTIFICATE)
                em_cert(e, "certificate", c->value.certificate);
            else
                em_str(e, "encryptedCert", c->value.encryptedCert->type
                       == CMPR_ENCRYPTEDKEY_ENVELOPEDDATA ? "EnvelopedData" : "EncryptedValue");
            if (r->certifiedKeyPair->privateKey != NULL)
                em_str(e, "privateKey", r->certifiedKeyPair->privateKey->type
                       == CMPR_ENCRYPTEDKEY_ENVELOPEDDATA ? "EnvelopedData" : "EncryptedValue");
        }
        em_octets(e, "rspInfo", r->rspInfo);
        em_close(e);
    }
    em_close(e);
}

static void
em_body(struct em *e, const CMPR_PKIBODY *b, int depth)
{
    int i;

    switch (b->type) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_KUR:
    case CMPR_BODY_KRR: case CMPR_BODY_CCR:
        em_arr(e, "certReqMessages");
        for (i = 0; i < sk_CMPR_CERTREQMSG_num(b->value.ir); i++)
            em_crm(e, sk_CMPR_CERTREQMSG_value(b->value.ir, i));
        em_close(e);
        break;
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP:
        em_certrep(e, b->value.ip);
        break;
    case CMPR_BODY_P10CR: {
        EVP_PKEY *pk = X509_REQ_get0_pubkey(b->value.p10cr);

        em_name(e, "subject", X509_REQ_get_subject_name(b->value.p10cr));
        em_pubkey(e, "publicKey", pk);
        break;
    }
    case CMPR_BODY_POPDECC:
        em_int(e, "challenges", sk_CMPR_CHALLENGE_num(b->value.popdecc));
        break;
    case CMPR_BODY_POPDECR:
        em_arr(e, "responses");
        for (i = 0; i < sk_ASN1_INTEGER_num(b->value.popdecr); i++)
            em_asn1int(e, NULL, sk_ASN1_INTEGER_value(b->value.popdecr, i));
        em_close(e);
        break;
    case CMPR_BODY_KRP:
        em_pkisi(e, "status", b->value.krp->status);
        em_cert(e, "newSigCert", b->value.krp->newSigCert);
        em_certs(e, "caCerts", b->value.krp->caCerts);
        if (b->value.krp->keyPairHist != NULL)
            em_int(e, "keyPairHist", sk_CMPR_CERTIFIEDKEYPAIR_num(b->value.krp->keyPairHist));
        break;
    case CMPR_BODY_RR:
        em_arr(e, "revDetails");
        for (i = 0; i < sk_CMPR_REVDETAILS_num(b->value.rr); i++) {
            CMPR_REVDETAILS *rd = sk_CMPR_REVDETAILS_value(b->value.rr, i);
            ASN1_ENUMERATED *reason = X509V3_get_d2i(rd->crlEntryDetails, NID_crl_reason,
                                                     NULL, NULL);

            em_obj(e, NULL);
            em_template(e, "certDetails", rd->certDetails);
            if (reason != NULL) {
                long rc = ASN1_ENUMERATED_get(reason);
                static const char *const rn[] = { "unspecified", "keyCompromise",
                    "cACompromise", "affiliationChanged", "superseded",
                    "cessationOfOperation", "certificateHold", "(7)", "removeFromCRL",
                    "privilegeWithdrawn", "aACompromise" };

                em_str(e, "reason", rc >= 0 && rc <= 10 ? rn[rc] : "(unknown)");
                ASN1_ENUMERATED_free(reason);
            }
            em_close(e);
        }
        em_close(e);
        break;
    case CMPR_BODY_RP:
        em_arr(e, "status");
        for (i = 0; i < sk_CMPR_PKISI_num(b->value.rp->status); i++)
            em_pkisi(e, NULL, sk_CMPR_PKISI_value(b->value.rp->status, i));
        em_close(e);
        if (b->value.rp->revCerts != NULL) {
            em_arr(e, "revCerts");
            for (i = 0; i < sk_OSSL_CRMF_CERTID_num(b->value.rp->revCerts); i++) {
                OSSL_CRMF_CERTID *c = sk_OSSL_CRMF_CERTID_value(b->value.rp->revCerts, i);

                em_obj(e, NULL);
                em_name(e, "issuer", OSSL_CRMF_CERTID_get0_issuer(c));
                em_serial(e, "serialNumber", OSSL_CRMF_CERTID_get0_serialNumber(c));
                em_close(e);
            }
            em_close(e);
        }
        if (b->value.rp->crls != NULL)
            em_int(e, "crls", sk_X509_CRL_num(b->value.rp->crls));
        break;
    case CMPR_BODY_CKUANN:
        if (b->value.ckuann->type == CMPR_CAKEYUPD_V2) {
            em_cert(e, "oldWithNew", b->value.ckuann->value.cAKeyUpdAnnV2->oldWithNew);
            em_cert(e, "newWithOld", b->value.ckuann->value.cAKeyUpdAnnV2->newWithOld);
            em_cert(e, "newWithNew", b->value.ckuann->value.cAKeyUpdAnnV2->newWithNew);
        } else {
            em_cert(e, "newWithNew", b->value.ckuann->value.cAKeyUpdAnnV3->newWithNew);
            em_cert(e, "newWithOld", b->value.ckuann->value.cAKeyUpdAnnV3->newWithOld);
            em_cert(e, "oldWithNew", b->value.ckuann->value.cAKeyUpdAnnV3->oldWithNew);
        }
        break;
    case CMPR_BODY_CANN:
        em_cert(e, "certificate", b->value.cann);
        break;
    case CMPR_BODY_RANN:
        em_asn1int(e, "status", b->value.rann->status);
        em_name(e, "issuer", OSSL_CRMF_CERTID_get0_issuer(b->value.rann->certId));
        em_serial(e, "serialNumber", OSSL_CRMF_CERTID_get0_serialNumber(b->value.rann->certId));
        em_time(e, "willBeRevokedAt", b->value.rann->willBeRevokedAt);
        em_time(e, "badSinceDate", b->value.rann->badSinceDate);
        break;
    case CMPR_BODY_CRLANN:
        em_arr(e, "crls");
        for (i = 0; i < sk_X509_CRL_num(b->value.crlann); i++)
            em_crl(e, NULL, sk_X509_CRL_value(b->value.crlann, i));
        em_close(e);
        break;
    case CMPR_BODY_PKICONF:
        break;
    case CMPR_BODY_NESTED:
        em_arr(e, "messages");
        for (i = 0; i < sk_CMPR_PKIMESSAGE_num(b->value.nested); i++)
            em_message(e, NULL, sk_CMPR_PKIMESSAGE_value(b->value.nested, i), depth + 1);
        em_close(e);
        break;
    case CMPR_BODY_GENM: case CMPR_BODY_GENP:
        em_itavs(e, "itavs", b->value.genm);
        break;
    case CMPR_BODY_ERROR:
        em_pkisi(e, "pKIStatusInfo", b->value.error->pKIStatusInfo);
        em_asn1int(e, "errorCode", b->value.error->errorCode);
        em_freetext(e, "errorDetails", b->value.error->errorDetails);
        break;
    case CMPR_BODY_CERTCONF:
        em_arr(e, "certStatus");
        for (i = 0; i < sk_CMPR_CERTSTATUS_num(b->value.certConf); i++) {
            CMPR_CERTSTATUS *cs = sk_CMPR_CERTSTATUS_value(b->value.certConf, i);

            em_obj(e, NULL);
            em_octets(e, "certHash", cs->certHash);
            em_asn1int(e, "certReqId", cs->certReqId);
            em_pkisi(e, "statusInfo", cs->statusInfo);
            em_algor(e, "hashAlg", cs->hashAlg);
            em_close(e);
        }
        em_close(e);
        break;
    case CMPR_BODY_POLLREQ:
        em_arr(e, "certReqIds");
        for (i = 0; i < sk_CMPR_POLLREQ_num(b->value.pollReq); i++)
            em_asn1int(e, NULL, sk_CMPR_POLLREQ_value(b->value.pollReq, i)->certReqId);
        em_close(e);
        break;
    case CMPR_BODY_POLLREP:
        em_arr(e, "pollRep");
        for (i = 0; i < sk_CMPR_POLLREP_num(b->value.pollRep); i++) {
            CMPR_POLLREP *pr = sk_CMPR_POLLREP_value(b->value.pollRep, i);

            em_obj(e, NULL);
            em_asn1int(e, "certReqId", pr->certReqId);
            em_asn1int(e, "checkAfter", pr->checkAfter);
            em_freetext(e, "reason", pr->reason);
            em_close(e);
        }
        em_close(e);
        break;
    default:
        break;
    }
}

static void
em_message(struct em *e, const char *key, const CMPR_PKIMESSAGE *msg, int depth)
{
    const CMPR_PKIHEADER *h = msg->header;
    const char *bname = cmpr_body_name(msg->body->type);

    em_obj(e, key);
    /* "body" first: scripts read the type from the top-level key */
    em_str(e, "body", bname != NULL ? bname : "?");
    em_obj(e, "header");
    em_asn1int(e, "pvno", h->pvno);
    em_gn(e, "sender", h->sender);
    em_gn(e, "recipient", h->recipient);
    if (h->messageTime != NULL)
        em_time(e, "messageTime", h->messageTime);
    if (h->protectionAlg != NULL)
        em_protalg(e, h->protectionAlg);
    em_octets(e, "senderKID", h->senderKID);
    em_octets(e, "recipKID", h->recipKID);
    em_octets(e, "transactionID", h->transactionID);
    em_octets(e, "senderNonce", h->senderNonce);
    em_octets(e, "recipNonce", h->recipNonce);
    em_freetext(e, "freeText", h->freeText);
    em_itavs(e, "generalInfo", h->generalInfo);
    em_close(e);
    em_obj(e, "content");
    em_body(e, msg->body, depth);
    em_close(e);
    if (msg->protection != NULL)
        em_int(e, "protectionBytes", ASN1_STRING_length(msg->protection));
    em_certs(e, "extraCerts", msg->extraCerts);
    em_close(e);
}

int
cmpr_print_msg(BIO *out, const CMPR_PKIMESSAGE *msg, unsigned flags)
{
    struct em e;

    memset(&e, 0, sizeof(e));
    e.out = out;
    e.json = (flags & CMPR_PRINT_JSON) != 0;
    em_message(&e, NULL, msg, 0);
    BIO_puts(out, "\n");
    return BIO_flush(out) == 1 || BIO_method_type(out) == BIO_TYPE_MEM ? CMPR_OK : CMPR_ERR_INTERNAL;
}

const char *
cmpr_msg_summary(const CMPR_PKIMESSAGE *msg, char *buf, size_t len)
{
    const ASN1_OCTET_STRING *tid = msg->header->transactionID;
    char hex[2 * 16 + 1] = "-";
    const char *prot = "none";

    if (tid != NULL) {
        int n = ASN1_STRING_length(tid) > 16 ? 16 : ASN1_STRING_length(tid);

        for (int i = 0; i < n; i++)
            snprintf(hex + 2 * i, 3, "%02x", ASN1_STRING_get0_data(tid)[i]);
    }
    if (msg->header->protectionAlg != NULL) {
        switch (cmpr_prot_kind(msg->header->protectionAlg->algorithm)) {
        case CMPR_PROT_PBM: prot = "PBM"; break;
        case CMPR_PROT_PBMAC1: prot = "PBMAC1"; break;
        case CMPR_PROT_SIG: prot = "signature"; break;
        default: prot = "other"; break;
        }
    }
    snprintf(buf, len, "%s tid=%s pvno=%ld prot=%s",
             cmpr_body_name(msg->body->type) ? cmpr_body_name(msg->body->type) : "?",
             hex, cmpr_msg_pvno(msg), prot);
    return buf;
}

/* "rejection: badPOP, badRequest: the text" */
static size_t
describe_si(const CMPR_PKISI *si, char *buf, size_t len)
{
    const char *st = si != NULL ? cmpr_status_name(cmpr_pkisi_status(si)) : NULL;
    uint32_t fi = si != NULL ? cmpr_pkisi_failinfo(si) : 0;
    size_t off = 0;
    int n;

#define PUT(...) do { n = snprintf(buf + off, len - off, __VA_ARGS__); \
                      if (n > 0) off = (size_t)n < len - off ? off + (size_t)n : len - 1; } while (0)
    PUT("%s", st != NULL ? st : "no status");
    for (int b = 0; b < 27; b++)
        if (fi & (1u << b))
            PUT("%s%s", off > 0 && !(fi & ((1u << b) - 1)) ? ": " : ", ", cmpr_failinfo_name(b));
    if (si != NULL && si->statusString != NULL)
        for (int i = 0; i < sk_ASN1_UTF8STRING_num(si->statusString); i++) {
            const ASN1_UTF8STRING *t = sk_ASN1_UTF8STRING_value(si->statusString, i);

            PUT(" (%.*s)", ASN1_STRING_length(t), (const char *)ASN1_STRING_get0_data(t));
        }
#undef PUT
    return off;
}

const char *
cmpr_msg_describe(const CMPR_PKIMESSAGE *msg, char *buf, size_t len)
{
    char si[600], subj[300] = "", serial[80] = "", until[40] = "";
    int type = cmpr_msg_bodytype(msg);

    buf[0] = '\0';
    switch (type) {
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP: {
        const CMPR_CERTREPMESSAGE *rep = cmpr_msg_get0_rep(msg);
        const CMPR_CERTRESPONSE *r = rep != NULL && sk_CMPR_CERTRESPONSE_num(rep->response) > 0
                                     ? sk_CMPR_CERTRESPONSE_value(rep->response, 0) : NULL;
        long st = r != NULL ? cmpr_pkisi_status(r->status) : -1;
        X509 *x = r != NULL && r->certifiedKeyPair != NULL
                  && r->certifiedKeyPair->certOrEncCert->type == CMPR_CERTORENCCERT_CERTIFICATE
                  ? r->certifiedKeyPair->certOrEncCert->value.certificate : NULL;

        if (r == NULL) {
            snprintf(buf, len, "An empty certificate response (%s).", cmpr_body_name(type));
        } else if ((st == 0 || st == 1) && x != NULL) {
            BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
            char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
            BIO *b = BIO_new(BIO_s_mem());

            X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
            snprintf(serial, sizeof(serial), "%s", hex != NULL ? hex : "?");
            if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(x)) > 0) {
                int n = BIO_read(b, until, sizeof(until) - 1);

                until[n > 0 ? n : 0] = '\0';
            }
            BIO_free(b);
            OPENSSL_free(hex);
            BN_free(bn);
            snprintf(buf, len, "Certificate issued%s: subject %s, serial %s, valid until %s.\n"
                     "The certificate is in the attached CMP message (%s).",
                     st == 1 ? " with modifications" : "", subj, serial, until, cmpr_body_name(type));
        } else if (st == 0 || st == 1) {
            snprintf(buf, len, "Certificate issued (encrypted for the requester) in the attached "
                     "CMP message (%s).", cmpr_body_name(type));
        } else if (st == 3) {
            snprintf(buf, len, "Waiting: the request awaits approval. Send a poll request "
                     "(pollReq) later; the answer to it carries the certificate once issued.");
        } else {
            describe_si(r->status, si, sizeof(si));
            snprintf(buf, len, "Rejected: %s.", si);
        }
        break;
    }
    case CMPR_BODY_POLLREP: {
        const CMPR_POLLREP *pr = sk_CMPR_POLLREP_num(msg->body->value.pollRep) > 0
                                 ? sk_CMPR_POLLREP_value(msg->body->value.pollRep, 0) : NULL;

        snprintf(buf, len, "Not ready yet: send the next poll request after %ld seconds.",
                 pr != NULL ? ASN1_INTEGER_get(pr->checkAfter) : 0L);
        break;
    }
    case CMPR_BODY_ERROR: {
        const CMPR_ERRORMSGCONTENT *e = msg->body->value.error;
        size_t off;

        off = describe_si(e->pKIStatusInfo, si, sizeof(si));
        if (e->errorDetails != NULL)
            for (int i = 0; i < sk_ASN1_UTF8STRING_num(e->errorDetails) && off + 4 < sizeof(si); i++) {
                const ASN1_UTF8STRING *t = sk_ASN1_UTF8STRING_value(e->errorDetails, i);
                int n = snprintf(si + off, sizeof(si) - off, " %.*s", ASN1_STRING_length(t),
                                 (const char *)ASN1_STRING_get0_data(t));

                off = n > 0 && (size_t)n < sizeof(si) - off ? off + (size_t)n : sizeof(si) - 1;
            }
        snprintf(buf, len, cmpr_pkisi_status(e->pKIStatusInfo) == 3
                 ? "Waiting: %s. Send a poll request later." : "Error: %s.", si);
        break;
    }
    case CMPR_BODY_PKICONF:
        snprintf(buf, len, "Confirmation received: the transaction is complete.");
        break;
    case CMPR_BODY_RP:
        describe_si(sk_CMPR_PKISI_num(msg->body->value.rp->status) > 0
                    ? sk_CMPR_PKISI_value(msg->body->value.rp->status, 0) : NULL, si, sizeof(si));
        snprintf(buf, len, "Revocation: %s.", si);
        break;
    case CMPR_BODY_GENP:
        snprintf(buf, len, "General information: %d value(s) in the attached CMP message.",
                 sk_CMPR_ITAV_num(msg->body->value.genp));
        break;
    default:
        snprintf(buf, len, "A CMP %s message is attached.",
                 cmpr_body_name(type) != NULL ? cmpr_body_name(type) : "(unknown)");
        break;
    }
    return buf;
}
