/* core/grant.c: a request against its profile, one test per rule
 * (cmprouter.conf(5) [profile NAME]). RFC 9810 5.2.3: accepted means the
 * certificate is what was asked; otherwise grantedWithMods naming each
 * change, or a rejection (badCertTemplate) when a requested critical
 * extension cannot be met. RFC 5280 4.2: each extension at most once. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/conf.h>
#include <openssl/x509v3.h>

#include "base/err.h"
#include "codec/msg.h"
#include "core/grant.h"

static EVP_PKEY *ca_key, *ee_key;
static X509 *ca_cert;           /* valid for 365 days */
static X509_NAME *subject;

static int
setup(void **state)
{
    (void)state;
    ca_key = tu_key("ec:P-256");
    ca_cert = tu_cert(ca_key, "Grant CA", NULL, NULL, 1);
    ee_key = tu_key("ec:P-256");
    subject = X509_NAME_new();
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)"ee", -1, -1, 0);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ee_key);
    X509_free(ca_cert);
    X509_NAME_free(subject);
    return 0;
}

/* a profile as config.c makes it: 365 days, SAN copied, no path length */
static struct cmpr_conf_profile
profile(void)
{
    struct cmpr_conf_profile pr;

    memset(&pr, 0, sizeof(pr));
    pr.name = "p";
    pr.validity_days = 365;
    pr.path_len = -1;
    pr.copy_san = 1;
    return pr;
}

/* the request's extensions, each "NAME=VALUE" in OpenSSL's syntax */
static STACK_OF(X509_EXTENSION) *
exts(const char *const *specs)
{
    STACK_OF(X509_EXTENSION) *sk = sk_X509_EXTENSION_new_null();
    X509V3_CTX v3;
    CONF *cnf = NCONF_new(NULL);     /* certificatePolicies wants a database, even an empty one */

    X509V3_set_ctx(&v3, NULL, NULL, NULL, NULL, 0);
    X509V3_set_nconf(&v3, cnf);
    for (; *specs != NULL; specs++) {
        char name[64];
        const char *eq = strchr(*specs, '=');
        X509_EXTENSION *e;

        snprintf(name, sizeof(name), "%.*s", (int)(eq - *specs), *specs);
        e = X509V3_EXT_nconf(cnf, &v3, name, eq + 1);
        if (e == NULL)
            fail_msg("cannot build %s", *specs);
        sk_X509_EXTENSION_push(sk, e);
    }
    NCONF_free(cnf);
    return sk;
}

struct outcome {
    int r, failbit;
    char why[256];
    struct cmpr_ca_grant g;
};

static void
decide(const struct cmpr_conf_profile *pr, const char *const *specs, time_t nb, time_t na, struct outcome *o)
{
    STACK_OF(X509_EXTENSION) *sk = specs != NULL ? exts(specs) : NULL;
    struct cmpr_ca_request req;

    memset(&req, 0, sizeof(req));
    req.subject = subject;
    req.pubkey = ee_key;
    req.exts = sk;
    req.not_before = nb;
    req.not_after = na;
    memset(o, 0, sizeof(*o));
    o->r = cmpr_ca_decide(pr, ca_cert, &req, time(NULL), &o->g, &o->failbit, o->why, sizeof(o->why));
    sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
}

static void
expect_refused(const struct outcome *o, const char *needle)
{
    if (o->r != CMPR_ERR_INVALID_ARG || o->failbit != CMPR_FI_BAD_CERT_TEMPLATE || strstr(o->why, needle) == NULL)
        fail_msg("expected badCertTemplate with '%s', got r=%d failbit=%d why='%s' mods='%s'", needle, o->r,
                 o->failbit, o->why, o->g.mods);
}

static void
expect_mods(const struct outcome *o, const char *needle)
{
    if (o->r != CMPR_OK || !o->g.modified || strstr(o->g.mods, needle) == NULL)
        fail_msg("expected grantedWithMods with '%s', got r=%d why='%s' mods='%s'", needle, o->r, o->why,
                 o->g.mods);
}

static void
expect_exact(const struct outcome *o)
{
    if (o->r != CMPR_OK || o->g.modified)
        fail_msg("expected accepted, got r=%d why='%s' mods='%s'", o->r, o->why, o->g.mods);
}

/* the granted extension with this NID, decoded, or NULL */
static void *
granted(const struct outcome *o, int nid, int *crit)
{
    return X509V3_get_d2i(o->g.exts, nid, crit, NULL);
}

static unsigned
ku_of(const struct outcome *o)
{
    ASN1_BIT_STRING *bs = granted(o, NID_key_usage, NULL);
    unsigned bits = 0;

    for (int i = 0; bs != NULL && i < 9; i++)
        if (ASN1_BIT_STRING_get_bit(bs, i))
            bits |= 1u << i;
    ASN1_BIT_STRING_free(bs);
    return bits;
}

#define KU_DS 1u
#define KU_KE 4u
#define KU_KCS 32u

/* nothing asked: the profile's extensions, and accepted */
static void
test_imposed(void **state)
{
    struct cmpr_conf_profile pr = profile();
    char *ku[] = { "digitalSignature", "keyEncipherment", NULL }, *eku[] = { "serverAuth", NULL };
    char *pol[] = { "1.2.3.4", NULL };
    struct outcome o;
    BASIC_CONSTRAINTS *bc;
    CERTIFICATEPOLICIES *cp;
    int crit = -1;
    (void)state;

    pr.key_usage = ku;
    pr.extended_key_usage = eku;
    pr.certificate_policies = pol;
    pr.policy_cps = "https://cps.example.org/";
    decide(&pr, NULL, 0, 0, &o);
    expect_exact(&o);
    assert_int_equal(ku_of(&o), KU_DS | KU_KE);
    bc = granted(&o, NID_basic_constraints, &crit);
    assert_non_null(bc);
    assert_false(bc->ca);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    cp = granted(&o, NID_certificate_policies, &crit);
    assert_non_null(cp);
    assert_int_equal(crit, 0);
    assert_int_equal(sk_POLICYINFO_num(cp), 1);
    assert_int_equal(sk_POLICYQUALINFO_num(sk_POLICYINFO_value(cp, 0)->qualifiers), 1);
    CERTIFICATEPOLICIES_free(cp);
    cmpr_ca_grant_clear(&o.g);
}

/* keyUsage: what allowed_key_usage (or else key_usage) holds is granted as
 * asked; more is removed (non-critical) or refused (critical) */
static void
test_key_usage(void **state)
{
    struct cmpr_conf_profile pr = profile();
    char *ku[] = { "digitalSignature", NULL }, *allowed[] = { "digitalSignature", "keyEncipherment", NULL };
    struct outcome o;
    (void)state;

    pr.key_usage = ku;
    pr.allowed_key_usage = allowed;
    decide(&pr, (const char *[]){ "keyUsage=critical,keyEncipherment", NULL }, 0, 0, &o);
    expect_exact(&o);
    assert_int_equal(ku_of(&o), KU_KE);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "keyUsage=digitalSignature,keyCertSign", NULL }, 0, 0, &o);
    expect_mods(&o, "keyUsage: keyCertSign not allowed by profile p");
    assert_int_equal(ku_of(&o), KU_DS);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "keyUsage=critical,digitalSignature,keyCertSign", NULL }, 0, 0, &o);
    expect_refused(&o, "requested critical extension keyUsage cannot be honoured: keyCertSign not allowed");
    /* without allowed_key_usage: the profile's own usages (or fewer) */
    pr.allowed_key_usage = NULL;
    decide(&pr, (const char *[]){ "keyUsage=critical,digitalSignature", NULL }, 0, 0, &o);
    expect_exact(&o);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "keyUsage=critical,keyEncipherment", NULL }, 0, 0, &o);
    expect_refused(&o, "keyEncipherment not allowed");
    /* only usages beyond the profile's: the profile's take their place */
    decide(&pr, (const char *[]){ "keyUsage=keyAgreement", NULL }, 0, 0, &o);
    expect_mods(&o, "keyAgreement not allowed");
    assert_int_equal(ku_of(&o), KU_DS);
    cmpr_ca_grant_clear(&o.g);
}

/* extendedKeyUsage, the example: critical clientAuth asked of a
 * serverAuth profile is refused; allowed ones are granted as asked */
static void
test_extended_key_usage(void **state)
{
    struct cmpr_conf_profile pr = profile();
    char *eku[] = { "serverAuth", NULL }, *allowed[] = { "serverAuth", "clientAuth", NULL };
    struct outcome o;
    EXTENDED_KEY_USAGE *got;
    (void)state;

    pr.extended_key_usage = eku;
    decide(&pr, (const char *[]){ "extendedKeyUsage=critical,clientAuth", NULL }, 0, 0, &o);
    expect_refused(&o, "extendedKeyUsage cannot be honoured: clientAuth not allowed by profile p");
    decide(&pr, (const char *[]){ "extendedKeyUsage=serverAuth,clientAuth", NULL }, 0, 0, &o);
    expect_mods(&o, "extendedKeyUsage: clientAuth not allowed");
    got = granted(&o, NID_ext_key_usage, NULL);
    assert_int_equal(sk_ASN1_OBJECT_num(got), 1);
    assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(got, 0)), NID_server_auth);
    EXTENDED_KEY_USAGE_free(got);
    cmpr_ca_grant_clear(&o.g);
    pr.allowed_extended_key_usage = allowed;
    decide(&pr, (const char *[]){ "extendedKeyUsage=critical,clientAuth", NULL }, 0, 0, &o);
    expect_exact(&o);
    got = granted(&o, NID_ext_key_usage, NULL);
    assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(got, 0)), NID_client_auth);
    EXTENDED_KEY_USAGE_free(got);
    cmpr_ca_grant_clear(&o.g);
}

/* certificatePolicies: the example (critical 1.2.3.4 of a profile
 * without it) is refused; an allowed policy is granted, with the profile's
 * qualifiers named as a change */
static void
test_certificate_policies(void **state)
{
    struct cmpr_conf_profile pr = profile();
    char *allowed[] = { "1.2.3.4", "1.2.3.5", NULL };
    struct outcome o;
    CERTIFICATEPOLICIES *cp;
    int crit = -1;
    (void)state;

    decide(&pr, (const char *[]){ "certificatePolicies=critical,1.2.3.4", NULL }, 0, 0, &o);
    expect_refused(&o, "certificatePolicies cannot be honoured: 1.2.3.4 not allowed by profile p");
    decide(&pr, (const char *[]){ "certificatePolicies=1.2.3.4", NULL }, 0, 0, &o);
    expect_mods(&o, "certificatePolicies: 1.2.3.4 not allowed");
    assert_null(granted(&o, NID_certificate_policies, NULL));
    cmpr_ca_grant_clear(&o.g);
    pr.allowed_certificate_policies = allowed;
    decide(&pr, (const char *[]){ "certificatePolicies=critical,1.2.3.4", NULL }, 0, 0, &o);
    expect_exact(&o);
    cp = granted(&o, NID_certificate_policies, &crit);
    assert_int_equal(crit, 1);
    assert_int_equal(sk_POLICYINFO_num(cp), 1);
    CERTIFICATEPOLICIES_free(cp);
    cmpr_ca_grant_clear(&o.g);
    pr.policy_notice = "for tests only";
    decide(&pr, (const char *[]){ "certificatePolicies=1.2.3.5,1.2.3.6", NULL }, 0, 0, &o);
    expect_mods(&o, "1.2.3.6 not allowed");
    cp = granted(&o, NID_certificate_policies, &crit);
    assert_int_equal(sk_POLICYINFO_num(cp), 1);
    assert_int_equal(sk_POLICYQUALINFO_num(sk_POLICYINFO_value(cp, 0)->qualifiers), 1);
    CERTIFICATEPOLICIES_free(cp);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "certificatePolicies=1.2.3.5", NULL }, 0, 0, &o);
    expect_mods(&o, "certificatePolicies: qualifiers and criticality as profile p sets them");
    cmpr_ca_grant_clear(&o.g);
}

/* subjectAltName: the types of san_types are copied; others are removed
 * or, critical, refused; copy_san = no takes none */
static void
test_subject_alt_name(void **state)
{
    struct cmpr_conf_profile pr = profile();
    struct outcome o;
    GENERAL_NAMES *gens;
    (void)state;

    decide(&pr, (const char *[]){ "subjectAltName=DNS:a.example.org,IP:192.0.2.1", NULL }, 0, 0, &o);
    expect_exact(&o);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "subjectAltName=DNS:a.example.org,RID:1.2.3.4", NULL }, 0, 0, &o);
    expect_mods(&o, "subjectAltName: rid names not allowed by profile p");
    gens = granted(&o, NID_subject_alt_name, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
    assert_int_equal(sk_GENERAL_NAME_value(gens, 0)->type, GEN_DNS);
    GENERAL_NAMES_free(gens);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "subjectAltName=critical,RID:1.2.3.4", NULL }, 0, 0, &o);
    expect_refused(&o, "subjectAltName cannot be honoured: rid names");
    pr.copy_san = 0;
    decide(&pr, (const char *[]){ "subjectAltName=DNS:a.example.org", NULL }, 0, 0, &o);
    expect_mods(&o, "does not take names from the request");
    assert_null(granted(&o, NID_subject_alt_name, NULL));
    cmpr_ca_grant_clear(&o.g);
}

/* basicConstraints and nameConstraints: CA:TRUE only in a CA profile, a
 * path length within the profile's, name constraints in CA profiles */
static void
test_constraints(void **state)
{
    struct cmpr_conf_profile pr = profile();
    struct outcome o;
    BASIC_CONSTRAINTS *bc;
    int crit = -1;
    (void)state;

    decide(&pr, (const char *[]){ "basicConstraints=critical,CA:TRUE", NULL }, 0, 0, &o);
    expect_refused(&o, "basicConstraints cannot be honoured: profile p does not issue CA certificates");
    decide(&pr, (const char *[]){ "basicConstraints=CA:TRUE", NULL }, 0, 0, &o);
    expect_mods(&o, "basicConstraints: profile p does not issue CA certificates");
    bc = granted(&o, NID_basic_constraints, NULL);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "basicConstraints=CA:FALSE", NULL }, 0, 0, &o);
    expect_exact(&o);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "nameConstraints=critical,permitted;DNS:.example.org", NULL }, 0, 0, &o);
    expect_refused(&o, "nameConstraints cannot be honoured");
    pr.ca = 1;
    pr.path_len = 1;
    decide(&pr, (const char *[]){ "basicConstraints=critical,CA:TRUE,pathlen:0", NULL }, 0, 0, &o);
    expect_exact(&o);
    bc = granted(&o, NID_basic_constraints, &crit);
    assert_true(bc->ca);
    assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
    BASIC_CONSTRAINTS_free(bc);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "basicConstraints=critical,CA:TRUE,pathlen:3", NULL }, 0, 0, &o);
    expect_refused(&o, "basicConstraints cannot be honoured: pathLenConstraint 1 (profile p)");
    decide(&pr, (const char *[]){ "basicConstraints=CA:TRUE,pathlen:3", NULL }, 0, 0, &o);
    expect_mods(&o, "basicConstraints: pathLenConstraint 1");
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "nameConstraints=critical,permitted;DNS:.example.org", NULL }, 0, 0, &o);
    expect_exact(&o);
    cmpr_ca_grant_clear(&o.g);
    pr.name_constraints = "permitted;DNS:.example.com";
    decide(&pr, (const char *[]){ "nameConstraints=critical,permitted;DNS:.example.org", NULL }, 0, 0, &o);
    expect_mods(&o, "nameConstraints: as profile p sets them");
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, NULL, 0, 0, &o);
    expect_exact(&o);
    assert_true(X509v3_get_ext_by_NID(o.g.exts, NID_name_constraints, -1) >= 0);
    cmpr_ca_grant_clear(&o.g);
}

/* other extensions: the CA sets them or does not know them; each at most once */
static void
test_other_extensions(void **state)
{
    struct cmpr_conf_profile pr = profile();
    struct outcome o;
    X509V3_CTX v3;
    X509 *dummy = X509_new();
    X509_EXTENSION *ski;
    STACK_OF(X509_EXTENSION) *sk;
    struct cmpr_ca_request req;
    ASN1_OBJECT *unknown = OBJ_txt2obj("1.2.3.99", 1);
    (void)state;

    decide(&pr, (const char *[]){ "1.2.3.99=critical,DER:05:00", NULL }, 0, 0, &o);
    expect_refused(&o, "requested critical extension 1.2.3.99 cannot be honoured");
    decide(&pr, (const char *[]){ "1.2.3.99=DER:05:00", NULL }, 0, 0, &o);
    expect_mods(&o, "1.2.3.99: not granted");
    assert_int_equal(X509v3_get_ext_by_OBJ(o.g.exts, unknown, -1), -1);
    ASN1_OBJECT_free(unknown);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "crlDistributionPoints=URI:http://x.example/crl", NULL }, 0, 0, &o);
    expect_mods(&o, "crlDistributionPoints: not granted");
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, (const char *[]){ "keyUsage=digitalSignature", "keyUsage=keyEncipherment", NULL }, 0, 0, &o);
    expect_refused(&o, "extension keyUsage is requested twice");
    decide(&pr, (const char *[]){ "subjectKeyIdentifier=0102", NULL }, 0, 0, &o);
    expect_mods(&o, "subjectKeyIdentifier: the CA computes it");
    cmpr_ca_grant_clear(&o.g);
    /* the identifier the CA computes anyway: as asked */
    X509_set_pubkey(dummy, ee_key);
    X509V3_set_ctx(&v3, NULL, dummy, NULL, NULL, 0);
    ski = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
    sk = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(sk, ski);
    memset(&req, 0, sizeof(req));
    req.subject = subject;
    req.pubkey = ee_key;
    req.exts = sk;
    memset(&o, 0, sizeof(o));
    assert_int_equal(cmpr_ca_decide(&pr, ca_cert, &req, time(NULL), &o.g, &o.failbit, o.why, sizeof(o.why)),
                     CMPR_OK);
    expect_exact(&o);
    cmpr_ca_grant_clear(&o.g);
    sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
    X509_free(dummy);
}

/* validity: the profile's maximum, the issuer's notAfter, no backdating */
static void
test_validity(void **state)
{
    struct cmpr_conf_profile pr = profile();
    struct outcome o;
    time_t now = time(NULL), ca_end;
    struct tm tm;
    (void)state;

    assert_true(ASN1_TIME_to_tm(X509_get0_notAfter(ca_cert), &tm));
    ca_end = timegm(&tm);
    pr.validity_days = 30;
    decide(&pr, NULL, 0, now + 86400L * 10, &o);
    expect_exact(&o);
    assert_int_equal(o.g.not_after, now + 86400L * 10);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, NULL, 0, now + 86400L * 40, &o);
    expect_mods(&o, "(the profile's maximum)");
    assert_true(o.g.not_after <= o.g.not_before + 86400L * 30);
    cmpr_ca_grant_clear(&o.g);
    /* the example: far beyond the CA's end */
    pr.validity_days = 36500;
    decide(&pr, NULL, 0, now + 86400L * 36500, &o);
    expect_mods(&o, "(the CA certificate's end)");
    assert_int_equal(o.g.not_after, ca_end);
    cmpr_ca_grant_clear(&o.g);
    /* not asked: the profile's period, within the CA's, and no change */
    decide(&pr, NULL, 0, 0, &o);
    expect_exact(&o);
    assert_int_equal(o.g.not_after, ca_end);
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, NULL, now - 86400L, 0, &o);
    expect_mods(&o, "no backdating");
    cmpr_ca_grant_clear(&o.g);
    decide(&pr, NULL, ca_end + 10, ca_end + 100, &o);
    expect_refused(&o, "starts after the CA certificate expires");
    decide(&pr, NULL, now + 1000, now + 500, &o);
    expect_refused(&o, "ends before it starts");
}

/* key types and subjects the profile takes */
static void
test_key_and_subject(void **state)
{
    struct cmpr_conf_profile pr = profile();
    char *types[] = { "rsa:3072-4096", NULL };
    struct outcome o;
    (void)state;

    pr.key_types = types;
    decide(&pr, NULL, 0, 0, &o);
    expect_refused(&o, "profile p does not accept ec:P-256 keys");
    pr.key_types = NULL;
    pr.subject = "CN=*.example.org";
    decide(&pr, NULL, 0, 0, &o);
    expect_refused(&o, "subject CN=ee does not fit profile p");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_imposed),
        cmocka_unit_test(test_key_usage),
        cmocka_unit_test(test_extended_key_usage),
        cmocka_unit_test(test_certificate_policies),
        cmocka_unit_test(test_subject_alt_name),
        cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_other_extensions),
        cmocka_unit_test(test_validity),
        cmocka_unit_test(test_key_and_subject),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
