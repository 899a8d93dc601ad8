/* The HTTP request and answer readers (codec/httpmsg.c): RFC 9811 / RFC 6712
 * rules, fed whole and one byte at a time (Dovecot style). */
#include "testutil.h"

#include <string.h>

#include "codec/httpmsg.h"
#include "codec/tcpframe.h"
#include "base/err.h"

static const struct cmpr_http_alias aliases[] = { { "/ejbca/publicweb/cmp/ra", "ra" }, { "/cmp", NULL } };
static const struct cmpr_httpreq_conf conf = { 4096, 1000, 0, aliases, 2 };

/* Feeds text in steps of step bytes; returns the first REQUEST/REJECT event
 * (NEED_MORE if neither came) and counts BEGIN/HEADERS events. */
static enum cmpr_httpreq_event
run(struct cmpr_httpreq *r, const char *text, size_t len, size_t step, size_t *rest_r, int *begins,
    int *headers)
{
    size_t off = 0;

    *begins = *headers = 0;
    while (off < len) {
        size_t n = len - off < step ? len - off : step, used = 0;
        enum cmpr_httpreq_event ev;

        do {
            ev = cmpr_httpreq_feed(r, text + off, n, &used);
            off += used;
            n -= used;
            if (ev == CMPR_HTTPREQ_BEGIN)
                (*begins)++;
            if (ev == CMPR_HTTPREQ_HEADERS)
                (*headers)++;
            if (ev == CMPR_HTTPREQ_REQUEST || ev == CMPR_HTTPREQ_REJECT) {
                *rest_r = len - off;
                return ev;
            }
        } while (ev != CMPR_HTTPREQ_NEED_MORE && n > 0);
    }
    *rest_r = 0;
    return CMPR_HTTPREQ_NEED_MORE;
}

static void
test_request_any_split(void **state)
{
    static const char req[] = "POST /.well-known/cmp/p/tls/initialization HTTP/1.1\r\nHost: x\r\n"
                              "Content-Type: application/pkixcmp\r\nContent-Length: 5\r\n\r\nhello";
    (void)state;

    for (size_t step = 1; step <= sizeof(req); step++) {
        struct cmpr_httpreq r;
        size_t rest;
        int b, h;

        cmpr_httpreq_init(&r, &conf);
        assert_int_equal(run(&r, req, sizeof(req) - 1, step, &rest, &b, &h), CMPR_HTTPREQ_REQUEST);
        assert_int_equal(rest, 0);
        assert_int_equal(b, 1);
        assert_int_equal(h, 1);
        assert_string_equal(r.label, "tls");
        assert_string_equal(r.operation, "initialization");
        assert_int_equal(r.der_len, 5);
        assert_memory_equal(r.der, "hello", 5);
        assert_int_equal(r.poll_version, -1);
        assert_true(r.keep_alive);
        cmpr_httpreq_free(&r);
    }
}

/* two pipelined requests: the second waits until the first is answered */
static void
test_pipelined(void **state)
{
    static const char two[] = "POST /cmp HTTP/1.1\r\nContent-Type: application/pkixcmp\r\nContent-Length: 1\r\n\r\nA"
                              "POST /ejbca/publicweb/cmp/ra/ HTTP/1.1\r\nContent-Type: application/x-pkixcmp\r\n"
                              "Content-Length: 2\r\n\r\nBC";
    struct cmpr_httpreq r;
    size_t rest, used;
    int b, h;
    (void)state;

    cmpr_httpreq_init(&r, &conf);
    assert_int_equal(run(&r, two, sizeof(two) - 1, sizeof(two), &rest, &b, &h), CMPR_HTTPREQ_REQUEST);
    assert_string_equal(r.label, "");
    assert_memory_equal(r.der, "A", 1);
    assert_true(rest > 0);
    /* nothing is read until the answer is out */
    assert_int_equal(cmpr_httpreq_feed(&r, two + sizeof(two) - 1 - rest, rest, &used), CMPR_HTTPREQ_REQUEST);
    assert_int_equal(used, 0);
    cmpr_httpreq_next(&r);
    assert_int_equal(run(&r, two + sizeof(two) - 1 - rest, rest, 3, &rest, &b, &h), CMPR_HTTPREQ_REQUEST);
    assert_string_equal(r.label, "ra");
    assert_memory_equal(r.der, "BC", 2);
    cmpr_httpreq_free(&r);
}

static void
expect_reject(const char *text, int status)
{
    struct cmpr_httpreq r;
    size_t rest;
    int b, h;

    cmpr_httpreq_init(&r, &conf);
    if (run(&r, text, strlen(text), 7, &rest, &b, &h) != CMPR_HTTPREQ_REJECT)
        fail_msg("not rejected: %s", text);
    if (r.status != status)
        fail_msg("status %d, not %d (%s): %s", r.status, status, r.why, text);
    assert_non_null(r.why);
    cmpr_httpreq_free(&r);
}

/* RFC 9811 3.1 / RFC 6712 3: what is not a CMP request is refused at the HTTP level */
static void
test_rejects(void **state)
{
    char big[3000];
    (void)state;

    expect_reject("GET /.well-known/cmp HTTP/1.1\r\n\r\n", 405);
    expect_reject("POST /other HTTP/1.1\r\nContent-Type: application/pkixcmp\r\nContent-Length: 1\r\n\r\nx", 404);
    expect_reject("POST /.well-known/cmp/p/bad%2flabel HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 404);
    expect_reject("POST /.well-known/cmp/unknownop HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 404);
    expect_reject("POST /.well-known/cmp HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx", 415);
    expect_reject("POST /.well-known/cmp HTTP/1.1\r\nContent-Type: application/pkixcmp\r\nContent-Length: 1001\r\n\r\n", 413);
    expect_reject("POST /.well-known/cmp HTTP/1.1\r\nContent-Type: application/pkixcmp\r\nContent-Length: 0\r\n\r\n", 400);
    expect_reject("NOT HTTP AT ALL\r\n\r\n", 400);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    {
        char req[7000];

        snprintf(req, sizeof(req), "POST /%s HTTP/1.1\r\n\r\n", big);
        expect_reject(req, 414);
        snprintf(req, sizeof(req), "POST /.well-known/cmp HTTP/1.1\r\nX-A: %s\r\nX-B: %s\r\n\r\n", big, big);
        expect_reject(req, 431);
        /* a chunked body is capped as it comes */
        snprintf(req, sizeof(req), "POST /.well-known/cmp HTTP/1.1\r\nContent-Type: application/pkixcmp\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n3e9\r\n%.1001s\r\n0\r\n\r\n", big);
        expect_reject(req, 413);
    }
}

/* RFC 6712 4: -poll bodies carry a TCP-Message pkiReq; it is unwrapped */
static void
test_poll_framing(void **state)
{
    unsigned char frame[64];
    char req[256];
    size_t h = cmpr_tcp_header(CMPR_TCP_VERSION, 0, CMPR_TCP_PKIREQ, 3, frame), n, rest;
    struct cmpr_httpreq r;
    int b, hh;
    (void)state;

    memcpy(frame + h, "DER", 3);
    n = (size_t)snprintf(req, sizeof(req), "POST /.well-known/cmp HTTP/1.0\r\nContent-Type: "
                         "application/pkixcmp-poll\r\nContent-Length: %zu\r\n\r\n", h + 3);
    memcpy(req + n, frame, h + 3);
    cmpr_httpreq_init(&r, &conf);
    assert_int_equal(run(&r, req, n + h + 3, 1, &rest, &b, &hh), CMPR_HTTPREQ_REQUEST);
    assert_int_equal(r.poll_version, CMPR_TCP_VERSION);
    assert_int_equal(r.der_len, 3);
    assert_memory_equal(r.der, "DER", 3);
    assert_int_equal(r.http_minor, 0);
    assert_false(r.keep_alive);
    cmpr_httpreq_free(&r);
    /* a pollReq frame is not a request over HTTP */
    h = cmpr_tcp_header(CMPR_TCP_VERSION, 0, CMPR_TCP_POLLREQ, 4, frame);
    n = (size_t)snprintf(req, sizeof(req), "POST /.well-known/cmp HTTP/1.1\r\nContent-Type: "
                         "application/pkixcmp-poll\r\nContent-Length: %zu\r\n\r\n", h + 4);
    memcpy(req + n, frame, h + 4);
    cmpr_httpreq_init(&r, &conf);
    assert_int_equal(run(&r, req, n + h + 4, 5, &rest, &b, &hh), CMPR_HTTPREQ_REJECT);
    assert_int_equal(r.status, 400);
    cmpr_httpreq_free(&r);
}

static void
test_route(void **state)
{
    char l[128], o[32];
    (void)state;

#define R(t) cmpr_http_route(t, strlen(t), aliases, 2, l, sizeof(l), o, sizeof(o))
    assert_true(R("/.well-known/cmp"));
    assert_string_equal(l, "");
    assert_true(R("/.well-known/cmp///"));
    assert_true(R("/.well-known/cmp?x=1"));
    assert_true(R("/.well-known/cmp/revocation"));
    assert_string_equal(o, "revocation");
    assert_true(R("/.well-known/cmp/p/a.b-c_d/getcacerts"));
    assert_string_equal(l, "a.b-c_d");
    assert_string_equal(o, "getcacerts");
    assert_false(R("/.well-known/cmpx"));
    assert_false(R("/.well-known/cmp/p//initialization"));
    assert_false(R("/.well-known/cmp/p/x/nothing"));
    assert_true(R("/ejbca/publicweb/cmp/ra"));
    assert_string_equal(l, "ra");
    assert_false(R("/ejbca/publicweb/cmp"));
#undef R
    assert_true(cmpr_http_is_cmp_type("Application/PKIXCMP ; charset=x", 0));
    assert_false(cmpr_http_is_cmp_type("application/pkixcmp-poll", 0));
    assert_true(cmpr_http_is_cmp_type("application/pkixcmp-poll", 1));
    assert_false(cmpr_http_is_cmp_type("application/json", 1));
}

static void
test_admin_get(void **state)
{
    static const struct cmpr_httpreq_conf admin = { 4096, 1000, 1, NULL, 0 };
    static const char req[] = "GET /metrics?x HTTP/1.1\r\n\r\n";
    struct cmpr_httpreq r;
    size_t rest;
    int b, h;
    (void)state;

    cmpr_httpreq_init(&r, &admin);
    assert_int_equal(run(&r, req, sizeof(req) - 1, 2, &rest, &b, &h), CMPR_HTTPREQ_REQUEST);
    assert_string_equal(r.path, "/metrics");
    cmpr_httpreq_free(&r);
    cmpr_httpreq_init(&r, &admin);
    assert_int_equal(run(&r, "POST / HTTP/1.1\r\n\r\n", 19, 2, &rest, &b, &h), CMPR_HTTPREQ_REJECT);
    assert_int_equal(r.status, 405);
    cmpr_httpreq_free(&r);
}

static void
test_answer_reader(void **state)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 4\r\n\r\nDER!";
    static const char eof[] = "HTTP/1.0 200 OK\r\nContent-Type: application/pkixcmp\r\n\r\nDE";
    static const char big[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    struct cmpr_httprsp a;
    const char *why;
    (void)state;

    for (size_t step = 1; step < sizeof(ok); step++) {
        cmpr_httprsp_init(&a, 10);
        for (size_t off = 0; off < sizeof(ok) - 1; off += step)
            assert_int_equal(cmpr_httprsp_feed(&a, ok + off, sizeof(ok) - 1 - off < step
                                               ? sizeof(ok) - 1 - off : step, 0, &why), 0);
        assert_true(a.done);
        assert_int_equal(cmpr_httprsp_status(&a), 200);
        assert_true(cmpr_httprsp_is_cmp(&a));
        assert_int_equal(cmpr_buf_len(&a.body), 4);
        assert_true(a.keep_alive);
        cmpr_httprsp_free(&a);
    }
    /* delimited by the end of the connection */
    cmpr_httprsp_init(&a, 10);
    assert_int_equal(cmpr_httprsp_feed(&a, eof, sizeof(eof) - 1, 0, &why), 0);
    assert_false(a.done);
    assert_int_equal(cmpr_httprsp_feed(&a, NULL, 0, 1, &why), 0);
    assert_true(a.done);
    assert_false(a.keep_alive);
    cmpr_httprsp_free(&a);
    /* over the cap */
    cmpr_httprsp_init(&a, 10);
    assert_int_equal(cmpr_httprsp_feed(&a, big, sizeof(big) - 1, 0, &why), -1);
    assert_non_null(why);
    cmpr_httprsp_free(&a);
    /* cut short */
    cmpr_httprsp_init(&a, 10);
    assert_int_equal(cmpr_httprsp_feed(&a, ok, 30, 0, &why), 0);
    assert_int_equal(cmpr_httprsp_feed(&a, NULL, 0, 1, &why), -1);
    cmpr_httprsp_free(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_any_split),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_poll_framing),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_admin_get),
        cmocka_unit_test(test_answer_reader),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
