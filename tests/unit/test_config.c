/* cmprouter.conf parsing (core/config.c): values, defaults, and errors that
 * name file:line. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "base/err.h"

static char dir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cmpr-conf-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static const char *
write_conf(const char *text)
{
    static char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/cmprouter.conf", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char good[] =
    "# comment\n"
    "[router]\n"
    "message_time_skew = 120\n"
    "implicit_confirm = no\n"
    "\n"
    "[ca main]\n"
    "key = ca/key.pem\n"
    "cert = ca/cert.pem\n"
    "default_profile = tls\n"
    "\n"
    "[profile tls]\n"
    "validity_days = 90\n"
    "key_usage = digitalSignature, keyEncipherment\n"
    "extended_key_usage = serverAuth,clientAuth\n"
    "key_types = ec:P-256, rsa:2048-4096, ed25519\n"
    "\n"
    "[client device]\n"
    "reference = dev01\n"
    "secret = pass:s3cret\n"
    "profiles = tls\n"
    "subject = CN=device*\n";

static void
test_good_config(void **state)
{
    struct cmpr_conf *c = NULL;
    char *err = NULL;
    const struct cmpr_conf_client *cl;
    const struct cmpr_conf_profile *pr;
    char want[256];
    (void)state;

    if (cmpr_conf_load(write_conf(good), &c, &err) != CMPR_OK)
        fail_msg("%s", err);
    assert_int_equal(c->message_time_skew, 120);
    assert_false(c->implicit_confirm);
    assert_int_equal(c->confirm_wait, 300);              /* default */
    assert_int_equal(c->max_mac_iterations, 100000);     /* default */
    assert_int_equal(c->n_cas, 1);
    snprintf(want, sizeof(want), "%s/ca/key.pem", dir);  /* relative to the file */
    assert_string_equal(c->cas[0].key, want);
    assert_true(c->cas[0].mac_responses);
    snprintf(want, sizeof(want), "sqlite:%s/cmprouter.db", dir);
    assert_string_equal(c->store, want);
    pr = cmpr_conf_profile(c, "tls");
    assert_non_null(pr);
    assert_int_equal(pr->validity_days, 90);
    assert_string_equal(pr->key_usage[1], "keyEncipherment");
    assert_string_equal(pr->key_types[2], "ed25519");
    assert_null(pr->key_types[3]);
    cl = cmpr_conf_client_by_ref(c, (const unsigned char *)"dev01", 5);
    assert_non_null(cl);
    assert_int_equal(cl->secret_len, 6);
    assert_memory_equal(cl->secret, "s3cret", 6);
    assert_null(cmpr_conf_client_by_ref(c, (const unsigned char *)"dev0", 4));
    cmpr_conf_free(c);
}

/* each bad file -> the expected "file:line: ..." */
static void
expect_error(const char *text, int line, const char *needle)
{
    struct cmpr_conf *c = NULL;
    char *err = NULL, want[160];

    if (cmpr_conf_load(write_conf(text), &c, &err) != CMPR_ERR_CONFIG)
        fail_msg("accepted: %s", text);
    assert_null(c);
    assert_non_null(err);
    snprintf(want, sizeof(want), "cmprouter.conf:%d: ", line);
    if (strstr(err, want) == NULL || strstr(err, needle) == NULL)
        fail_msg("expected line %d and '%s', got: %s", line, needle, err);
    free(err);
}

static void
test_errors_name_file_and_line(void **state)
{
    (void)state;
    expect_error("[router]\nbogus = 1\n[ca a]\nkey=k\ncert=c\n", 2, "unknown directive 'bogus'");
    expect_error("[ca a]\nkey=k\ncert=c\n\n[router]\nmessage_time_skew = ten\n", 6,
                 "must be a number");
    expect_error("[ca a]\nkey=k\ncert=c\n[frob/nicate smtp]\nx=1\n", 4, "unknown group [frob/nicate smtp]");
    expect_error("[ca a]\nkey=k\ncert=c\n[route]\nx=1\n", 4, "needs a name");
    expect_error("[router]\nmessage_time_skew = 5\n", 0, "no [ca NAME] and no [route NAME]");
    expect_error("[ca a]\nkey=k\ncert=c\n[client x]\nreference=r\nsecret=pass:s\nprofiles=nope\n",
                 7, "no [profile nope]");
    expect_error("[ca a]\nkey=k\ncert=c\n[client x]\nreference=r\nsecret=env:CMPR_UNSET_VAR_X\n",
                 6, "CMPR_UNSET_VAR_X is not set");
    expect_error("[ca a]\nkey=k\ncert=c\n[client x]\nreference=r\nsecret=s\n", 6, "pass:TEXT");
    expect_error("[ca a]\nkey=k\ncert=c\n[profile p]\nkey_types = ec:P-256, dsa:1024\n", 5,
                 "unknown key type 'dsa:1024'");
    expect_error("[ca a]\nkey=k\ncert=c\n[profile p]\nkey_usage = signEverything\n", 5,
                 "unknown value 'signEverything' (one of digitalSignature");
    expect_error("[ca a]\nkey=k\ncert=c\n[profile p]\nallowed_key_usage = digitalSignature, sign\n", 5,
                 "unknown value 'sign'");
    expect_error("[ca a]\nkey=k\ncert=c\n[profile p]\nsan_types = dns, ipv6\n", 5,
                 "unknown value 'ipv6' (one of othername, email, dns");
    expect_error("[ca a]\nkey=k\ncert=c\n[profile p]\ncertificate_policies = 1.2.3.4, policyX\n", 5,
                 "'policyX' is neither a known name nor a dotted OID");
    expect_error("[ca a]\nkey=k\ncert=c\n[profile p]\nallowed_extended_key_usage = serverAuth, frob\n", 5,
                 "'frob' is neither");
    expect_error("[ca a]\nkey=k\ncert=c\n[profile p]\nname_constraints = permitted;DNS:.example.org\n", 5,
                 "name_constraints needs ca = yes");
    expect_error("[ca a]\nkey=k\ncert=c\n[profile p]\nca = yes\nname_constraints = allowed;DNS:x\n", 6,
                 "is not a name constraint");
    expect_error("[ca a]\nkey=k\ncert=c\n[client x]\nreference=r\nsecret=pass:s\nrevoke = maybe\n", 7,
                 "'revoke' must be one of none, own, profiles, any, not 'maybe'");
    expect_error("[router]\npbm_defaults = sha256, hmac-sha1\n[ca a]\nkey=k\ncert=c\n", 2,
                 "'pbm_defaults' is DIGEST, MAC, ITERATIONS");
    expect_error("[router]\npbmac1_defaults = md5, hmac-sha256, 1000\n[ca a]\nkey=k\ncert=c\n", 2,
                 "digest 'md5' is not sha256, sha384 or sha512");
    expect_error("[router]\npbm_defaults = sha256, hmac-sha1, 50000000\n[ca a]\nkey=k\ncert=c\n", 2,
                 "iterations '50000000' must be from 100 to max_mac_iterations");
    expect_error("[ca a]\nkey=k\ncert=c\n[profile p]\npolicy_cps = https://cps.example.org/\n", 4,
                 "need certificate_policies or allowed_certificate_policies");
    expect_error("[ca a]\nkey=k\ncert=c\n[client x]\nreference=r\nsecret=pass:a\n"
                 "[client y]\nreference=r\nsecret=pass:b\n", 8, "also used by [client x]");
    expect_error("[ca a]\nkey=k\n", 1, "needs key and cert");
    expect_error("[ca a]\nkey=k\ncert=c\ndefault_profile = none\n", 4, "no [profile none]");
    expect_error("[ca a]\nkey=k\ncert=c\n[router]\nimplicit_confirm = maybe\n", 5, "yes or no");
    expect_error("[ca a]\nkey=k\ncert=c\n[client x]\nprofiles=\n", 4, "needs reference+secret");
    expect_error("[router]\nlog = journal\n[ca a]\nkey=k\ncert=c\n", 2, "stderr or syslog");
    expect_error("[router]\nlog_level = chatty\n[ca a]\nkey=k\ncert=c\n", 2, "log_level is");
}

/* groups the core does not read are kept, with their lines, for whoever
 * owns them (cmprouterd refuses the ones no transport claims) */
static void
test_other_groups_kept(void **state)
{
    struct cmpr_conf *c = NULL;
    char *err = NULL;
    const struct cmpr_conf_group *g;
    (void)state;

    if (cmpr_conf_load(write_conf("[ca a]\nkey=k\ncert=c\n[frobnicate smtp]\nx = 1 \n[mail]\nfrom=a@b\n"),
                       &c, &err) != CMPR_OK)
        fail_msg("%s", err);
    g = cmpr_conf_group(c, "frobnicate", "smtp");
    assert_non_null(g);
    assert_int_equal(g->line, 4);
    assert_string_equal(cmpr_conf_group_get(g, "x"), "1");
    g = cmpr_conf_group(c, "mail", "mail");
    assert_non_null(g);
    assert_string_equal(cmpr_conf_group_get(g, "from"), "a@b");
    cmpr_conf_free(c);
}

/* one boolean parser for every directive; anything else is an error */
static void
test_booleans(void **state)
{
    static const char *const names[] = { "no", "offered", "required", NULL };
    struct cmpr_conf *c = NULL;
    char *err = NULL;
    const struct cmpr_conf_group *g;
    int b = -1;
    (void)state;

    if (cmpr_conf_load(write_conf("[ca a]\nkey=k\ncert=c\n[t x]\nb1 = Yes\nb2 = off\nb3 = maybe\n"
                                  "c1 = required\nc2 = true\n"), &c, &err) != CMPR_OK)
        fail_msg("%s", err);
    g = cmpr_conf_group(c, "t", "x");
    assert_int_equal(cmpr_conf_group_bool(g, "b1", 0, &b, &err), CMPR_OK);
    assert_int_equal(b, 1);
    assert_int_equal(cmpr_conf_group_bool(g, "b2", 1, &b, &err), CMPR_OK);
    assert_int_equal(b, 0);
    assert_int_equal(cmpr_conf_group_bool(g, "unset", 1, &b, &err), CMPR_OK);
    assert_int_equal(b, 1);
    assert_int_equal(cmpr_conf_group_bool(g, "b3", 0, &b, &err), CMPR_ERR_CONFIG);
    assert_non_null(strstr(err, "cmprouter.conf:7: "));
    assert_non_null(strstr(err, "yes or no"));
    free(err);
    assert_int_equal(cmpr_conf_group_choice(g, "c1", names, 1, &b, &err), CMPR_OK);
    assert_int_equal(b, 2);
    assert_int_equal(cmpr_conf_group_choice(g, "c2", names, 1, &b, &err), CMPR_ERR_CONFIG);
    assert_non_null(strstr(err, "cmprouter.conf:9: "));
    assert_non_null(strstr(err, "no, offered or required"));
    free(err);
    cmpr_conf_free(c);
}

static void
test_unreadable(void **state)
{
    struct cmpr_conf *c = NULL;
    char *err = NULL;
    (void)state;

    assert_int_equal(cmpr_conf_load("/nonexistent/cmprouter.conf", &c, &err), CMPR_ERR_CONFIG);
    assert_non_null(strstr(err, "/nonexistent/cmprouter.conf"));
    free(err);
    /* not INI at all */
    assert_int_equal(cmpr_conf_load(write_conf("this is = not [ an ini\n"), &c, &err),
                     CMPR_ERR_CONFIG);
    free(err);
}

static int
teardown(void **state)
{
    (void)state;
    tu_rmrf(dir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_config),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_other_groups_kept),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_unreadable),
    };

    return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
