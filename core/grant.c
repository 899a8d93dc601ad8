/* What a certificate gets (cmprouter.conf(5) [profile NAME]): each requested
 * extension is granted as asked, granted in part or replaced by what the
 * profile imposes (a named change: grantedWithMods), or, when it is
 * critical and cannot be met, the request is refused (badCertTemplate);
 * RFC 9810 5.2.3 and 5.3.4, RFC 4211 5, RFC 5280 4.2. Extensions the request
 * does not ask for come from the profile and change nothing it asked. */
#include "core/grant.h"
#include "base/err.h"
#include "codec/msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#define KU_BITS 9

struct decide {
    const struct cmpr_conf_profile *pr;
    struct cmpr_ca_grant *g;
    int failbit;
    char *why;
    size_t whylen;
    int done[6];        /* extensions settled by the request: see slot() */
};

enum { S_BC, S_KU, S_EKU, S_POL, S_SAN, S_NC };

static void mod(struct cmpr_ca_grant *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct decide *d, int failbit, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* one more change for the statusString */
static void
mod(struct cmpr_ca_grant *g, const char *fmt, ...)
{
    size_t off = strlen(g->mods);
    va_list ap;

    g->modified = 1;
    if (off > 0 && off + 2 < sizeof(g->mods)) {
        memcpy(g->mods + off, "; ", 3);
        off += 2;
    }
    va_start(ap, fmt);
    if (off < sizeof(g->mods))
        vsnprintf(g->mods + off, sizeof(g->mods) - off, fmt, ap);
    va_end(ap);
}

static int
refuse(struct decide *d, int failbit, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->why, d->whylen, fmt, ap);
    va_end(ap);
    d->failbit = failbit;
    return CMPR_ERR_INVALID_ARG;
}

static int
push(struct decide *d, X509_EXTENSION *ext)
{
    if (ext == NULL || !sk_X509_EXTENSION_push(d->g->exts, ext)) {
        X509_EXTENSION_free(ext);
        return refuse(d, CMPR_FI_SYSTEM_FAILURE, "cannot build the certificate's extensions");
    }
    return CMPR_OK;
}

/* the request's extension, as it came */
static int
keep(struct decide *d, const X509_EXTENSION *ext)
{
    return push(d, X509_EXTENSION_dup((X509_EXTENSION *)ext));
}

static const char *
ext_name(const X509_EXTENSION *ext, char *buf, size_t len)
{
    const ASN1_OBJECT *o = X509_EXTENSION_get_object((X509_EXTENSION *)ext);
    int nid = OBJ_obj2nid(o);

    if (nid != NID_undef)
        return OBJ_nid2sn(nid);
    OBJ_obj2txt(buf, (int)len, o, 1);
    return buf;
}

/* the request's critical extension cannot be met: refuse; a non-critical
 * one: the change is named */
static int
unmet(struct decide *d, const X509_EXTENSION *ext, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
unmet(struct decide *d, const X509_EXTENSION *ext, const char *fmt, ...)
{
    char what[256], nb[64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (X509_EXTENSION_get_critical(ext))
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "requested critical extension %s cannot be honoured: %s",
                      ext_name(ext, nb, sizeof(nb)), what);
    mod(d->g, "%s: %s", ext_name(ext, nb, sizeof(nb)), what);
    return CMPR_OK;
}

/* ---------------- keyUsage (RFC 5280 4.2.1.3) ---------------- */

static unsigned
ku_bits(char *const *names)
{
    unsigned bits = 0;

    for (; names != NULL && *names != NULL; names++)
        for (int i = 0; i < KU_BITS; i++)
            if (strcmp(*names, cmpr_key_usage_names[i]) == 0)
                bits |= 1u << i;
    return bits;
}

static void
ku_text(unsigned bits, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (int i = 0; i < KU_BITS && off < len; i++)
        if (bits & (1u << i))
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "," : "", cmpr_key_usage_names[i]);
}

/* what the profile puts in when the request does not ask */
static unsigned
ku_imposed(const struct cmpr_conf_profile *pr)
{
    if (pr->key_usage != NULL)
        return ku_bits(pr->key_usage);
    return pr->ca ? ku_bits((char *[]){ "digitalSignature", "keyCertSign", "cRLSign", NULL }) : 0;
}

static X509_EXTENSION *
ku_ext(unsigned bits)
{
    ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
    X509_EXTENSION *ext = NULL;
    int ok = bs != NULL;

    for (int i = 0; ok && i < KU_BITS; i++)
        if (bits & (1u << i))
            ok = ASN1_BIT_STRING_set_bit(bs, i, 1);
    if (ok)
        ext = X509V3_EXT_i2d(NID_key_usage, 1, bs);
    ASN1_BIT_STRING_free(bs);
    return ext;
}

static int
grant_ku(struct decide *d, const X509_EXTENSION *ext)
{
    const struct cmpr_conf_profile *pr = d->pr;
    ASN1_BIT_STRING *bs = X509V3_EXT_d2i((X509_EXTENSION *)ext);
    unsigned want = 0, may = pr->allowed_key_usage != NULL ? ku_bits(pr->allowed_key_usage) : ku_imposed(pr);
    char t[256];

    if (bs == NULL)
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the requested keyUsage is malformed");
    for (int i = 0; i < 8 * bs->length; i++)
        if (ASN1_BIT_STRING_get_bit(bs, i))
            want |= i < KU_BITS ? 1u << i : 1u << KU_BITS;     /* beyond decipherOnly: malformed */
    ASN1_BIT_STRING_free(bs);
    if (want == 0 || (want >> KU_BITS) != 0)
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the requested keyUsage is malformed");
    if ((want & ~may) == 0)
        return keep(d, ext);
    ku_text(want & ~may, t, sizeof(t));
    if (unmet(d, ext, "%s not allowed by profile %s", t, pr->name) != CMPR_OK)
        return CMPR_ERR_INVALID_ARG;
    if ((want & may) != 0)
        return push(d, ku_ext(want & may));
    return ku_imposed(pr) != 0 ? push(d, ku_ext(ku_imposed(pr))) : CMPR_OK;
}

/* ---------------- OID lists: extendedKeyUsage, certificatePolicies ---------------- */

static int
oid_in(const ASN1_OBJECT *o, char *const *names)
{
    for (; names != NULL && *names != NULL; names++) {
        ASN1_OBJECT *n = OBJ_txt2obj(*names, 0);
        int eq = n != NULL && OBJ_cmp(n, o) == 0;

        ASN1_OBJECT_free(n);
        if (eq)
            return 1;
    }
    return 0;
}

static void
oid_append(char *buf, size_t len, const ASN1_OBJECT *o)
{
    size_t off = strlen(buf);
    char t[80];
    int nid = OBJ_obj2nid(o);

    if (nid != NID_undef)
        snprintf(t, sizeof(t), "%s", OBJ_nid2sn(nid));
    else
        OBJ_obj2txt(t, sizeof(t), o, 1);
    if (off < len)
        snprintf(buf + off, len - off, "%s%s", off ? "," : "", t);
}

static X509_EXTENSION *
eku_ext(char *const *names)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    X509_EXTENSION *ext = NULL;
    int ok = eku != NULL;

    for (; ok && names != NULL && *names != NULL; names++) {
        ASN1_OBJECT *o = OBJ_txt2obj(*names, 0);

        if (o == NULL || !sk_ASN1_OBJECT_push(eku, o)) {
            ASN1_OBJECT_free(o);
            ok = 0;
        }
    }
    if (ok)
        ext = X509V3_EXT_i2d(NID_ext_key_usage, 0, eku);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return ext;
}

static int
grant_eku(struct decide *d, const X509_EXTENSION *ext)
{
    const struct cmpr_conf_profile *pr = d->pr;
    char *const *may = pr->allowed_extended_key_usage != NULL ? pr->allowed_extended_key_usage
                                                              : pr->extended_key_usage;
    EXTENDED_KEY_USAGE *eku = X509V3_EXT_d2i((X509_EXTENSION *)ext);
    EXTENDED_KEY_USAGE *kept;
    char t[256] = "";
    int r = CMPR_OK;

    if (eku == NULL || sk_ASN1_OBJECT_num(eku) == 0) {
        EXTENDED_KEY_USAGE_free(eku);
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the requested extendedKeyUsage is malformed");
    }
    kept = sk_ASN1_OBJECT_new_null();
    for (int i = 0; kept != NULL && i < sk_ASN1_OBJECT_num(eku); i++) {
        ASN1_OBJECT *o = sk_ASN1_OBJECT_value(eku, i);

        if (!oid_in(o, may))
            oid_append(t, sizeof(t), o);
        else if (sk_ASN1_OBJECT_push(kept, o))
            sk_ASN1_OBJECT_set(eku, i, NULL);
    }
    if (kept == NULL)
        r = refuse(d, CMPR_FI_SYSTEM_FAILURE, "out of memory");
    else if (t[0] == '\0')
        r = keep(d, ext);
    else if ((r = unmet(d, ext, "%s not allowed by profile %s", t, pr->name)) == CMPR_OK)
        r = sk_ASN1_OBJECT_num(kept) > 0 ? push(d, X509V3_EXT_i2d(NID_ext_key_usage, 0, kept))
            : pr->extended_key_usage != NULL ? push(d, eku_ext(pr->extended_key_usage)) : CMPR_OK;
    sk_ASN1_OBJECT_pop_free(kept, ASN1_OBJECT_free);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return r;
}

/* one policy with the profile's qualifiers (CPS pointer, user notice) */
static POLICYINFO *
policy_new(const struct cmpr_conf_profile *pr, ASN1_OBJECT *oid)
{
    POLICYINFO *pi = POLICYINFO_new();
    POLICYQUALINFO *q;

    if (pi == NULL || (pi->policyid = OBJ_dup(oid)) == NULL)
        goto fail;
    if (pr->policy_cps != NULL || pr->policy_notice != NULL)
        if ((pi->qualifiers = sk_POLICYQUALINFO_new_null()) == NULL)
            goto fail;
    if (pr->policy_cps != NULL) {
        if ((q = POLICYQUALINFO_new()) == NULL || !sk_POLICYQUALINFO_push(pi->qualifiers, q)) {
            POLICYQUALINFO_free(q);
            goto fail;
        }
        q->pqualid = OBJ_nid2obj(NID_id_qt_cps);
        if ((q->d.cpsuri = ASN1_IA5STRING_new()) == NULL
                || !ASN1_STRING_set(q->d.cpsuri, pr->policy_cps, -1))
            goto fail;
    }
    if (pr->policy_notice != NULL) {
        if ((q = POLICYQUALINFO_new()) == NULL || !sk_POLICYQUALINFO_push(pi->qualifiers, q)) {
            POLICYQUALINFO_free(q);
            goto fail;
        }
        q->pqualid = OBJ_nid2obj(NID_id_qt_unotice);
        if ((q->d.usernotice = USERNOTICE_new()) == NULL
                || (q->d.usernotice->exptext = ASN1_UTF8STRING_new()) == NULL
                || !ASN1_STRING_set(q->d.usernotice->exptext, pr->policy_notice, -1))
            goto fail;
    }
    return pi;
 fail:
    POLICYINFO_free(pi);
    return NULL;
}

/* the certificatePolicies extension for these OIDs (names, or objs when
 * names is NULL) */
static X509_EXTENSION *
policies_ext(const struct cmpr_conf_profile *pr, char *const *names, STACK_OF(ASN1_OBJECT) *objs, int crit)
{
    CERTIFICATEPOLICIES *cp = sk_POLICYINFO_new_null();
    X509_EXTENSION *ext = NULL;
    int ok = cp != NULL, n = 0;

    if (names == NULL)
        n = sk_ASN1_OBJECT_num(objs);
    while (names != NULL && names[n] != NULL)
        n++;

    for (int i = 0; ok && i < n; i++) {
        ASN1_OBJECT *o = names != NULL ? OBJ_txt2obj(names[i], 0) : sk_ASN1_OBJECT_value(objs, i);
        POLICYINFO *pi = o != NULL ? policy_new(pr, o) : NULL;

        if (names != NULL)
            ASN1_OBJECT_free(o);
        if (pi == NULL || !sk_POLICYINFO_push(cp, pi)) {
            POLICYINFO_free(pi);
            ok = 0;
        }
    }
    if (ok)
        ext = X509V3_EXT_i2d(NID_certificate_policies, crit, cp);
    sk_POLICYINFO_pop_free(cp, POLICYINFO_free);
    return ext;
}

static int
same_ext(const X509_EXTENSION *a, const X509_EXTENSION *b)
{
    return X509_EXTENSION_get_critical(a) == X509_EXTENSION_get_critical(b)
        && ASN1_STRING_cmp(X509_EXTENSION_get_data((X509_EXTENSION *)a),
                           X509_EXTENSION_get_data((X509_EXTENSION *)b)) == 0;
}

static int
grant_policies(struct decide *d, const X509_EXTENSION *ext)
{
    const struct cmpr_conf_profile *pr = d->pr;
    char *const *may = pr->allowed_certificate_policies != NULL ? pr->allowed_certificate_policies
                                                                : pr->certificate_policies;
    CERTIFICATEPOLICIES *cp = X509V3_EXT_d2i((X509_EXTENSION *)ext);
    STACK_OF(ASN1_OBJECT) *kept = sk_ASN1_OBJECT_new_null();
    X509_EXTENSION *built = NULL;
    int crit = X509_EXTENSION_get_critical(ext), r = CMPR_OK;
    char t[256] = "";

    if (cp == NULL || sk_POLICYINFO_num(cp) == 0 || kept == NULL) {
        r = refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the requested certificatePolicies are malformed");
        goto out;
    }
    for (int i = 0; i < sk_POLICYINFO_num(cp); i++) {
        ASN1_OBJECT *o = sk_POLICYINFO_value(cp, i)->policyid;

        if (!oid_in(o, may))
            oid_append(t, sizeof(t), o);
        else
            sk_ASN1_OBJECT_push(kept, o);       /* borrowed from cp */
    }
    if (t[0] != '\0' && (r = unmet(d, ext, "%s not allowed by profile %s", t, pr->name)) != CMPR_OK)
        goto out;
    if (sk_ASN1_OBJECT_num(kept) == 0) {
        if (pr->certificate_policies != NULL)
            r = push(d, policies_ext(pr, pr->certificate_policies, NULL, pr->policies_critical));
        goto out;
    }
    if ((built = policies_ext(pr, NULL, kept, crit || pr->policies_critical)) == NULL) {
        r = refuse(d, CMPR_FI_SYSTEM_FAILURE, "cannot build certificatePolicies");
        goto out;
    }
    /* all granted: the qualifiers and criticality are the profile's */
    if (t[0] == '\0' && !same_ext(built, ext))
        mod(d->g, "certificatePolicies: qualifiers and criticality as profile %s sets them", pr->name);
    r = push(d, built);
    built = NULL;
 out:
    X509_EXTENSION_free(built);
    sk_ASN1_OBJECT_free(kept);
    CERTIFICATEPOLICIES_free(cp);
    return r;
}

/* ---------------- subjectAltName (RFC 5280 4.2.1.6) ---------------- */

static int
grant_san(struct decide *d, const X509_EXTENSION *ext)
{
    const struct cmpr_conf_profile *pr = d->pr;
    GENERAL_NAMES *gens = X509V3_EXT_d2i((X509_EXTENSION *)ext), *kept;
    char t[256] = "";
    int r = CMPR_OK;

    if (gens == NULL || sk_GENERAL_NAME_num(gens) == 0) {
        GENERAL_NAMES_free(gens);
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the requested subjectAltName is malformed");
    }
    if (!pr->copy_san) {
        GENERAL_NAMES_free(gens);
        return unmet(d, ext, "profile %s does not take names from the request", pr->name);
    }
    kept = sk_GENERAL_NAME_new_null();
    for (int i = 0; kept != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        const char *type = gn->type >= 0 && gn->type <= GEN_RID ? cmpr_san_type_names[gn->type] : "?";
        char *const dflt[] = { "dns", "ip", "email", "uri", NULL };

        if (cmpr_strv_contains(pr->san_types != NULL ? pr->san_types : dflt, type)) {
            if (sk_GENERAL_NAME_push(kept, gn))
                sk_GENERAL_NAME_set(gens, i, NULL);
        } else if (strstr(t, type) == NULL) {
            snprintf(t + strlen(t), sizeof(t) - strlen(t), "%s%s", t[0] ? "," : "", type);
        }
    }
    if (kept == NULL)
        r = refuse(d, CMPR_FI_SYSTEM_FAILURE, "out of memory");
    else if (t[0] == '\0')
        r = keep(d, ext);
    else if ((r = unmet(d, ext, "%s names not allowed by profile %s", t, pr->name)) == CMPR_OK
             && sk_GENERAL_NAME_num(kept) > 0)
        r = push(d, X509V3_EXT_i2d(NID_subject_alt_name, X509_EXTENSION_get_critical(ext), kept));
    sk_GENERAL_NAME_pop_free(kept, GENERAL_NAME_free);
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    return r;
}

/* ---------------- basicConstraints, nameConstraints (RFC 5280 4.2.1.9-10) ---------------- */

static X509_EXTENSION *
bc_ext(int ca, long pathlen)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    X509_EXTENSION *ext = NULL;

    if (bc == NULL)
        return NULL;
    bc->ca = ca ? 0xff : 0;
    if (ca && pathlen >= 0 && ((bc->pathlen = ASN1_INTEGER_new()) == NULL
                               || !ASN1_INTEGER_set(bc->pathlen, pathlen)))
        goto out;
    ext = X509V3_EXT_i2d(NID_basic_constraints, 1, bc);
 out:
    BASIC_CONSTRAINTS_free(bc);
    return ext;
}

static int
grant_bc(struct decide *d, const X509_EXTENSION *ext)
{
    const struct cmpr_conf_profile *pr = d->pr;
    BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i((X509_EXTENSION *)ext);
    long want = -1;
    int ca;

    if (bc == NULL || (!bc->ca && bc->pathlen != NULL)
            || (bc->pathlen != NULL && (want = ASN1_INTEGER_get(bc->pathlen)) < 0)) {
        BASIC_CONSTRAINTS_free(bc);
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the requested basicConstraints are malformed");
    }
    ca = bc->ca != 0;
    BASIC_CONSTRAINTS_free(bc);
    if (ca != pr->ca) {
        if (unmet(d, ext, ca ? "profile %s does not issue CA certificates" : "profile %s issues CA certificates",
                  pr->name) != CMPR_OK)
            return CMPR_ERR_INVALID_ARG;
        return push(d, bc_ext(pr->ca, pr->path_len));
    }
    if (!ca)
        return keep(d, ext);
    /* a CA: a path length within the profile's is granted; a CA
     * certificate's basicConstraints are critical (RFC 5280 4.2.1.9) */
    if (pr->path_len >= 0 && (want < 0 || want > pr->path_len)) {
        if (unmet(d, ext, "pathLenConstraint %ld (profile %s)", pr->path_len, pr->name) != CMPR_OK)
            return CMPR_ERR_INVALID_ARG;
        want = pr->path_len;
    } else if (!X509_EXTENSION_get_critical(ext)) {
        mod(d->g, "basicConstraints: marked critical");
    }
    return push(d, bc_ext(1, want));
}

static X509_EXTENSION *
nc_ext(const char *conf)
{
    char buf[1024];

    snprintf(buf, sizeof(buf), "critical,%s", conf);
    return X509V3_EXT_conf_nid(NULL, NULL, NID_name_constraints, buf);
}

static int
grant_nc(struct decide *d, const X509_EXTENSION *ext)
{
    const struct cmpr_conf_profile *pr = d->pr;
    NAME_CONSTRAINTS *nc = X509V3_EXT_d2i((X509_EXTENSION *)ext);
    X509_EXTENSION *built;

    if (nc == NULL)
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the requested nameConstraints are malformed");
    NAME_CONSTRAINTS_free(nc);
    if (!pr->ca)
        return unmet(d, ext, "profile %s does not issue CA certificates", pr->name);
    if (pr->name_constraints == NULL) {
        if (X509_EXTENSION_get_critical(ext))
            return keep(d, ext);
        mod(d->g, "nameConstraints: marked critical");
        return push(d, X509_EXTENSION_create_by_NID(NULL, NID_name_constraints, 1,
                                                   X509_EXTENSION_get_data((X509_EXTENSION *)ext)));
    }
    if ((built = nc_ext(pr->name_constraints)) != NULL && !same_ext(built, ext))
        mod(d->g, "nameConstraints: as profile %s sets them", pr->name);
    return push(d, built);
}

/* ---------------- the request's extensions ---------------- */

/* the SHA-1 key identifier the CA computes (RFC 5280 4.2.1.2 method 1) */
static int
ski_matches(const X509_EXTENSION *ext, EVP_PKEY *pk)
{
    ASN1_OCTET_STRING *want = X509V3_EXT_d2i((X509_EXTENSION *)ext);
    X509_PUBKEY *xpk = NULL;
    const unsigned char *bits;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int len, eq = 0;

    if (want != NULL && pk != NULL && X509_PUBKEY_set(&xpk, pk)
            && X509_PUBKEY_get0_param(NULL, &bits, &len, NULL, xpk)
            && EVP_Digest(bits, (size_t)len, md, &mdlen, EVP_sha1(), NULL))
        eq = ASN1_STRING_length(want) == (int)mdlen && memcmp(ASN1_STRING_get0_data(want), md, mdlen) == 0;
    X509_PUBKEY_free(xpk);
    ASN1_OCTET_STRING_free(want);
    ERR_clear_error();
    return eq;
}

static int
grant_requested(struct decide *d, const struct cmpr_ca_request *req)
{
    int n = req->exts != NULL ? sk_X509_EXTENSION_num(req->exts) : 0;

    for (int i = 0; i < n; i++) {
        const X509_EXTENSION *ext = sk_X509_EXTENSION_value(req->exts, i);
        const ASN1_OBJECT *o = X509_EXTENSION_get_object((X509_EXTENSION *)ext);
        char nb[64];
        int r, s = -1;

        /* RFC 5280 4.2: one instance of each extension */
        for (int j = 0; j < i; j++)
            if (OBJ_cmp(o, X509_EXTENSION_get_object(sk_X509_EXTENSION_value(req->exts, j))) == 0)
                return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "extension %s is requested twice",
                              ext_name(ext, nb, sizeof(nb)));
        switch (OBJ_obj2nid(o)) {
        case NID_basic_constraints: s = S_BC; r = grant_bc(d, ext); break;
        case NID_key_usage: s = S_KU; r = grant_ku(d, ext); break;
        case NID_ext_key_usage: s = S_EKU; r = grant_eku(d, ext); break;
        case NID_certificate_policies: s = S_POL; r = grant_policies(d, ext); break;
        case NID_subject_alt_name: s = S_SAN; r = grant_san(d, ext); break;
        case NID_name_constraints: s = S_NC; r = grant_nc(d, ext); break;
        case NID_subject_key_identifier:
            r = ski_matches(ext, req->pubkey) && !X509_EXTENSION_get_critical(ext) ? CMPR_OK
                : unmet(d, ext, "the CA computes it from the public key");
            break;
        default:
            r = unmet(d, ext, "not granted (the CA sets it or does not support it)");
            break;
        }
        if (r != CMPR_OK)
            return r;
        if (s >= 0)
            d->done[s] = 1;
    }
    return CMPR_OK;
}

/* what the profile puts in where the request asked nothing */
static int
grant_imposed(struct decide *d)
{
    const struct cmpr_conf_profile *pr = d->pr;
    int r = CMPR_OK;

    if (!d->done[S_BC])
        r = push(d, bc_ext(pr->ca, pr->path_len));
    if (r == CMPR_OK && !d->done[S_KU] && ku_imposed(pr) != 0)
        r = push(d, ku_ext(ku_imposed(pr)));
    if (r == CMPR_OK && !d->done[S_EKU] && pr->extended_key_usage != NULL)
        r = push(d, eku_ext(pr->extended_key_usage));
    if (r == CMPR_OK && !d->done[S_POL] && pr->certificate_policies != NULL)
        r = push(d, policies_ext(pr, pr->certificate_policies, NULL, pr->policies_critical));
    if (r == CMPR_OK && !d->done[S_NC] && pr->ca && pr->name_constraints != NULL)
        r = push(d, nc_ext(pr->name_constraints));
    return r;
}

/* ---------------- validity ---------------- */

static void
day_text(time_t t, char *buf, size_t len)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static int
grant_validity(struct decide *d, X509 *issuer, const struct cmpr_ca_request *req, time_t now)
{
    struct cmpr_ca_grant *g = d->g;
    time_t cap, end = 0;
    struct tm tm;
    char t[40];

    if (issuer != NULL && ASN1_TIME_to_tm(X509_get0_notAfter(issuer), &tm))
        end = timegm(&tm);
    if (req->not_after != 0 && req->not_before != 0 && req->not_after <= req->not_before)
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the requested validity ends before it starts");
    g->not_before = req->not_before > now ? req->not_before : now;
    if (req->not_before != 0 && req->not_before < now - 300)
        mod(g, "validity: notBefore is the time of issue (no backdating)");
    if (end != 0 && g->not_before >= end)
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the requested validity starts after the CA certificate expires");
    cap = g->not_before + d->pr->validity_days * 86400L;
    g->not_after = req->not_after != 0 && req->not_after <= cap ? req->not_after : cap;
    if (end != 0 && g->not_after > end)
        g->not_after = end;
    if (req->not_after != 0 && req->not_after > g->not_after) {
        day_text(g->not_after, t, sizeof(t));
        mod(g, "validity: notAfter %s (%s)", t, g->not_after == end ? "the CA certificate's end"
            : "the profile's maximum");
    }
    return CMPR_OK;
}

/* ---------------- key and subject ---------------- */

/* "ec:P-256" / "rsa:3072" / "ed25519" for a key, to compare with key_types */
static int
key_allowed(EVP_PKEY *pk, char *const *types, char *desc, size_t dlen)
{
    char *defaults[] = { "ec:P-256", "ec:P-384", "ec:P-521", "rsa:2048-8192", "ed25519",
                         "ed448", NULL };
    char *const *t = types != NULL ? types : defaults;
    char group[64] = "";
    const char *nist = NULL;
    int bits = EVP_PKEY_get_bits(pk);

    if (EVP_PKEY_is_a(pk, "EC")) {
        EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof(group), NULL);
        nist = EC_curve_nid2nist(OBJ_sn2nid(group));
        snprintf(desc, dlen, "ec:%s", nist != NULL ? nist : group);
    } else if (EVP_PKEY_is_a(pk, "RSA")) {
        snprintf(desc, dlen, "rsa:%d", bits);
    } else {
        snprintf(desc, dlen, "%s", EVP_PKEY_get0_type_name(pk));
        for (char *c = desc; *c != '\0'; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    }
    for (; *t != NULL; t++) {
        if (strncmp(*t, "rsa:", 4) == 0 && EVP_PKEY_is_a(pk, "RSA")) {
            char *end;
            long lo = strtol(*t + 4, &end, 10), hi = lo;

            if (*end == '-')
                hi = strtol(end + 1, NULL, 10);
            if (bits >= lo && bits <= hi)
                return 1;
        } else if (strncmp(*t, "ec:", 3) == 0 && EVP_PKEY_is_a(pk, "EC")) {
            if ((nist != NULL && strcmp(*t + 3, nist) == 0) || strcmp(*t + 3, group) == 0)
                return 1;
        } else if (strcmp(*t, desc) == 0) {
            return 1;
        }
    }
    return 0;
}

static int
check_key_subject(struct decide *d, const struct cmpr_ca_request *req)
{
    const struct cmpr_conf_profile *pr = d->pr;
    char desc[64], text[256];

    if (req->pubkey == NULL)
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the request carries no (usable) public key");
    if (req->subject == NULL || X509_NAME_entry_count(req->subject) == 0)
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "the request names no subject");
    if (!key_allowed(req->pubkey, pr->key_types, desc, sizeof(desc)))
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "profile %s does not accept %s keys", pr->name, desc);
    if (pr->subject != NULL && !cmpr_name_matches(req->subject, pr->subject)) {
        cmpr_name_text(req->subject, text, sizeof(text));
        return refuse(d, CMPR_FI_BAD_CERT_TEMPLATE, "subject %s does not fit profile %s", text, pr->name);
    }
    return CMPR_OK;
}

int
cmpr_ca_decide(const struct cmpr_conf_profile *pr, X509 *issuer, const struct cmpr_ca_request *req,
               time_t now, struct cmpr_ca_grant *g, int *failbit_r, char *why, size_t whylen)
{
    struct decide d;
    int r;

    memset(g, 0, sizeof(*g));
    memset(&d, 0, sizeof(d));
    d.pr = pr;
    d.g = g;
    d.why = why;
    d.whylen = whylen;
    why[0] = '\0';
    if ((g->exts = sk_X509_EXTENSION_new_null()) == NULL)
        r = refuse(&d, CMPR_FI_SYSTEM_FAILURE, "out of memory");
    else if ((r = check_key_subject(&d, req)) == CMPR_OK && (r = grant_validity(&d, issuer, req, now)) == CMPR_OK
             && (r = grant_requested(&d, req)) == CMPR_OK)
        r = grant_imposed(&d);
    ERR_clear_error();
    if (r != CMPR_OK) {
        *failbit_r = d.failbit;
        cmpr_ca_grant_clear(g);
        return CMPR_ERR_INVALID_ARG;
    }
    return CMPR_OK;
}

void
cmpr_ca_grant_clear(struct cmpr_ca_grant *g)
{
    sk_X509_EXTENSION_pop_free(g->exts, X509_EXTENSION_free);
    g->exts = NULL;
}
