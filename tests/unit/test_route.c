/* The route table (core/route.c): [route NAME] groups in file order, first
 * match wins, a route without match keys takes everything, and errors that
 * name file:line (RFC 9483 5.2 for what the protection modes need). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/asn1.h"
#include "core/config.h"
#include "base/err.h"
#include "core/route.h"

static char dir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cmpr-route-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tu_rmrf(dir);
    return 0;
}

/* the media a route can name: fakes that take any URI of their schemes;
 * the file one reads a key of its own (as a medium reads its keys) */
static int
f_configure(void *ctx, const struct cmpr_conf_group *g, const char *uri, long timeout_ms, void **set_r,
            char **err_r)
{
    (void)ctx;
    (void)timeout_ms;
    if (strstr(uri, "bad") != NULL) {
        *err_r = cmpr_conf_group_error(g, "upstream", "the medium refuses '%s'", uri);
        return CMPR_ERR_CONFIG;
    }
    *set_r = strdup(uri);
    return CMPR_OK;
}

static void
f_release(void *ctx, void *set)
{
    (void)ctx;
    free(set);
}

static const char *const online_schemes[] = { "http", "https", "tcp", NULL };
static const char *const offline_schemes[] = { "file", "sftp", "mailto", NULL };
static const char *const no_keys[] = { NULL }, *const file_keys[] = { "inbox_mode", NULL };
static const struct cmpr_upstream_ops online = { online_schemes, 0, no_keys, f_configure, f_release, NULL, NULL, NULL };
static const struct cmpr_upstream_ops offline = { offline_schemes, 1, file_keys, f_configure, f_release, NULL, NULL,
                                                  NULL };
static const struct cmpr_route_media media = { { &online, &offline }, { NULL, NULL }, 2 };

static const char head[] =
    "[ca main]\nkey = k.pem\ncert = c.pem\n"
    "[profile tls]\n"
    "[profile iot]\n";

/* routes from text (after the fixed head); NULL with *err_r on error */
static struct cmpr_routes *
load(const char *routes, struct cmpr_conf **conf_r, char **err_r)
{
    char path[128];
    FILE *f;
    struct cmpr_routes *rt = NULL;
    int r;

    snprintf(path, sizeof(path), "%s/cmprouter.conf", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s%s", head, routes);
    fclose(f);
    *err_r = NULL;
    r = cmpr_conf_load(path, conf_r, err_r);
    assert_int_equal(r, CMPR_OK);
    if (cmpr_routes_load(*conf_r, &media, &rt, err_r) != CMPR_OK)
        return NULL;
    return rt;
}

static const char *
match_name(const struct cmpr_routes *rt, const struct cmpr_route_query *q)
{
    const struct cmpr_route *r = cmpr_route_match(rt, q, NULL, 0);

    return r != NULL ? r->name : "(local)";
}

static void
test_first_match_wins(void **state)
{
    struct cmpr_conf *conf = NULL;
    char *err = NULL;
    struct cmpr_routes *rt = load(
        "[route iot]\nprofile = iot\nupstream = tcp://127.0.0.1:829\n"
        "[route revocations]\nbody = rr\nupstream = http://ca.example/cmp\n"
        "[route lab]\nlabel = lab, test\nsubject = CN=*.lab.example\nupstream = file:/out,/in\ninbox_mode = 1\n"
        "[route sites]\nclient = site-*\nupstream = mailto:ca@example.org\n"
        "[route kept]\nissuer = CN=Old CA\nca = main\n"
        "[route rest]\nupstream = https://ca.example/.well-known/cmp\n", &conf, &err);
    struct cmpr_route_query q = { NULL, NULL, CMPR_BODY_IR, NULL, NULL, NULL };
    char buf[2048] = "";
    (void)state;

    assert_non_null(rt);
    assert_int_equal(rt->n, 6);
    /* file order is the order they are tried in */
    assert_string_equal(rt->v[0].name, "iot");
    assert_string_equal(rt->v[5].name, "rest");
    assert_string_equal(match_name(rt, &q), "rest");      /* no match keys: everything */
    q.profile = "iot";
    assert_string_equal(match_name(rt, &q), "iot");
    q.body = CMPR_BODY_RR;
    assert_string_equal(match_name(rt, &q), "iot");       /* first match wins */
    q.profile = NULL;
    assert_string_equal(match_name(rt, &q), "revocations");
    q.body = CMPR_BODY_CR;
    q.label = "test";
    q.subject = "CN=a.lab.example";
    assert_string_equal(match_name(rt, &q), "lab");
    q.subject = "CN=a.prod.example";                      /* both keys must fit */
    assert_string_equal(match_name(rt, &q), "rest");
    q.label = NULL;
    q.client = "site-7";
    assert_string_equal(match_name(rt, &q), "sites");
    q.client = "other";
    q.issuer = "CN=Old CA";
    assert_string_equal(match_name(rt, &q), "kept");
    assert_null(rt->v[4].upstream);
    assert_string_equal(rt->v[4].ca, "main");
    /* the explanation says why each route before the match did not fit */
    q.issuer = NULL;
    q.body = CMPR_BODY_GENM;
    assert_non_null(cmpr_route_match(rt, &q, buf, sizeof(buf)));
    assert_non_null(strstr(buf, "route iot: no: certProfile (none) is not iot"));
    assert_non_null(strstr(buf, "route revocations: no: body genm is not rr"));
    assert_non_null(strstr(buf, "route sites: no: client other does not fit site-*"));
    assert_non_null(strstr(buf, "route rest: MATCHES (no match keys: every request) -> upstream https://"));
    assert_int_equal(rt->v[0].timeout_ms, 30000);        /* defaults */
    assert_int_equal(rt->v[0].wait_ms, 30000);           /* synchronous: the client waits */
    assert_int_equal(rt->v[2].wait_ms, 0);               /* offline: "waiting" at once */
    assert_int_equal(rt->v[2].followup_wait_ms, 10000);
    assert_int_equal(rt->v[0].protection, CMPR_ROUTE_KEEP);
    cmpr_routes_free(rt);
    cmpr_conf_free(conf);
}

static void
test_no_routes_local(void **state)
{
    struct cmpr_conf *conf = NULL;
    char *err = NULL, buf[256] = "";
    struct cmpr_routes *rt = load("", &conf, &err);
    struct cmpr_route_query q = { "x", "tls", CMPR_BODY_IR, "c", "CN=x", NULL };
    (void)state;

    assert_non_null(rt);
    assert_int_equal(rt->n, 0);
    assert_null(cmpr_route_match(rt, &q, buf, sizeof(buf)));
    assert_non_null(strstr(buf, "the local CA answers"));
    cmpr_routes_free(rt);
    cmpr_conf_free(conf);
}

/* each bad route is refused with its file:line and what is wrong */
static void
test_errors(void **state)
{
    static const struct { const char *text, *want; } cases[] = {
        { "[route a]\nbody = ir\n", "needs either ca = NAME" },
        { "[route a]\nca = main\nupstream = http://x/\n", "needs either ca = NAME" },
        { "[route a]\nupstream = gopher://x/\n", "no medium serves upstream 'gopher://x/'" },
        { "[route a]\nupstream = nocolon\n", "no medium serves upstream 'nocolon'" },
        { "[route a]\nupstream = http://bad/\n", "the medium refuses 'http://bad/'" },
        { "[route a]\nupstream = http://x/\ninbox_mode = 1\n", "unknown directive 'inbox_mode'" },
        { "[route a]\nupstream = http://x/\nbody = ir, bogus\n", "'bogus' is not a CMP body type" },
        { "[route a]\nupstream = http://x/\nprotection = maybe\n", "protection is keep, reprotect or nested" },
        { "[route a]\nupstream = http://x/\nprotection = reprotect\n", "needs the RA's own credentials" },
        { "[route a]\nupstream = file:/o,/i\nbatch = 10\n", "batching needs the RA's own credentials" },
        { "[route a]\nupstream = http://x/\ntimeout = -1\n", "'timeout' must be a number" },
        { "[route a]\nupstream = http://x/\nwhatever = 1\n", "whatever" },
        { "[route a]\nca = nosuch\n", "no [ca nosuch]" },
        { "[route a]\nupstream = http://x/\nra_cert = /nonexistent.pem\nra_key = /n.key\n",
          "cannot read the RA's certificate" },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cmpr_conf *conf = NULL;
        char *err = NULL;
        struct cmpr_routes *rt = load(cases[i].text, &conf, &err);

        if (rt != NULL || err == NULL || strstr(err, cases[i].want) == NULL)
            fail_msg("case %zu: expected an error with '%s', got '%s'", i, cases[i].want,
                     err != NULL ? err : "(none)");
        assert_non_null(strstr(err, "cmprouter.conf:"));
        free(err);
        cmpr_conf_free(conf);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_match_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_routes_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
