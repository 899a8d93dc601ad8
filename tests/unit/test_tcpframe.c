/* TCP-Message framing (codec/tcpframe.c): the example frames of
 * draft-ietf-pkix-cmp-transport-protocols and RFC 2510 5.2, fed whole, split
 * at every byte and coalesced (cmp-wire.md 1.2, 1.4). */
#include "testutil.h"

#include <string.h>

#include "codec/tcpframe.h"

/* v10 pkiReq carrying a 6-byte "DER" value */
static const unsigned char req10[] = { 0, 0, 0, 9, 10, 0, 0, 0x30, 4, 2, 1, 5, 0 };
/* RFC 2510 msgReq with the same value */
static const unsigned char req2510[] = { 0, 0, 0, 7, 0, 0x30, 4, 2, 1, 5, 0 };

static void
test_whole_frame(void **state)
{
    struct cmpr_tcp_parser p;
    struct cmpr_tcp_frame f;

    (void)state;
    cmpr_tcp_parser_init(&p, 1024);
    assert_int_equal(cmpr_tcp_feed(&p, req10, sizeof(req10)), 0);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_FRAME);
    assert_int_equal(f.version, 10);
    assert_int_equal(f.type, CMPR_TCP_PKIREQ);
    assert_int_equal(f.flags, 0);
    assert_int_equal(f.value_len, 6);
    assert_memory_equal(f.value, req10 + 7, 6);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_NEED_MORE);
    assert_int_equal(cmpr_tcp_pending(&p), 0);
    cmpr_tcp_parser_free(&p);
}

/* cmp-wire.md 1.4: frames arrive split at any byte */
static void
test_split_at_every_byte(void **state)
{
    (void)state;
    for (size_t cut = 1; cut < sizeof(req10); cut++) {
        struct cmpr_tcp_parser p;
        struct cmpr_tcp_frame f;

        cmpr_tcp_parser_init(&p, 1024);
        assert_int_equal(cmpr_tcp_feed(&p, req10, cut), 0);
        assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_NEED_MORE);
        assert_int_equal(cmpr_tcp_pending(&p), cut);
        assert_int_equal(cmpr_tcp_feed(&p, req10 + cut, sizeof(req10) - cut), 0);
        assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_FRAME);
        assert_int_equal(f.value_len, 6);
        assert_memory_equal(f.value, req10 + 7, 6);
        cmpr_tcp_parser_free(&p);
    }
    /* and one byte at a time */
    {
        struct cmpr_tcp_parser p;
        struct cmpr_tcp_frame f;

        cmpr_tcp_parser_init(&p, 1024);
        for (size_t i = 0; i < sizeof(req2510); i++) {
            assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_NEED_MORE);
            assert_int_equal(cmpr_tcp_feed(&p, req2510 + i, 1), 0);
        }
        assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_FRAME);
        assert_int_equal(f.version, CMPR_TCP_V2510);
        assert_int_equal(f.value_len, 6);
        cmpr_tcp_parser_free(&p);
    }
}

/* several frames, both framings, in one read */
static void
test_coalesced(void **state)
{
    unsigned char buf[3 * sizeof(req10) + sizeof(req2510)];
    struct cmpr_tcp_parser p;
    struct cmpr_tcp_frame f;
    size_t n = 0;

    (void)state;
    memcpy(buf + n, req10, sizeof(req10)), n += sizeof(req10);
    memcpy(buf + n, req2510, sizeof(req2510)), n += sizeof(req2510);
    memcpy(buf + n, req10, sizeof(req10)), n += sizeof(req10);
    memcpy(buf + n, req10, 5), n += 5;           /* and the start of a fourth */
    cmpr_tcp_parser_init(&p, 1024);
    assert_int_equal(cmpr_tcp_feed(&p, buf, n), 0);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_FRAME);
    assert_int_equal(f.version, 10);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_FRAME);
    assert_int_equal(f.version, CMPR_TCP_V2510);
    assert_int_equal(f.type, CMPR_TCP2510_MSGREQ);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_FRAME);
    assert_int_equal(f.version, 10);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_NEED_MORE);
    assert_int_equal(cmpr_tcp_pending(&p), 5);
    assert_int_equal(cmpr_tcp_feed(&p, req10 + 5, sizeof(req10) - 5), 0);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_FRAME);
    assert_memory_equal(f.value, req10 + 7, 6);
    cmpr_tcp_parser_free(&p);
}

/* configurable maximum; the length is checked before the value arrives */
static void
test_too_big_and_bad_lengths(void **state)
{
    static const unsigned char big[] = { 0, 0x10, 0, 4, 10, 0, 0 };
    static const unsigned char short10[] = { 0, 0, 0, 2, 10, 0, 0 };
    static const unsigned char zero2510[] = { 0, 0, 0, 0, 5 };
    static const unsigned char rawder[] = { 0x30, 0x82, 0x04, 0xce, 0x30, 0x82, 0x04 };
    struct cmpr_tcp_parser p;
    struct cmpr_tcp_frame f;

    (void)state;
    cmpr_tcp_parser_init(&p, 1024 * 1024);
    assert_int_equal(cmpr_tcp_feed(&p, big, sizeof(big)), 0);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_E_TOO_BIG);
    cmpr_tcp_parser_free(&p);

    cmpr_tcp_parser_init(&p, 1024);
    assert_int_equal(cmpr_tcp_feed(&p, short10, sizeof(short10)), 0);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_E_LENGTH);
    cmpr_tcp_parser_free(&p);

    cmpr_tcp_parser_init(&p, 1024);
    assert_int_equal(cmpr_tcp_feed(&p, zero2510, sizeof(zero2510)), 0);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_E_LENGTH);
    cmpr_tcp_parser_free(&p);

    /* bare DER read as a header: byte 4 is 0x30, not a framing we know */
    cmpr_tcp_parser_init(&p, 1024);
    assert_int_equal(cmpr_tcp_feed(&p, rawder, sizeof(rawder)), 0);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_E_VERSION);
    cmpr_tcp_parser_free(&p);

    /* the parser refuses to hold more than a frame plus a read */
    cmpr_tcp_parser_init(&p, 16);
    {
        unsigned char junk[70000];

        memset(junk, 0, sizeof(junk));
        assert_int_equal(cmpr_tcp_feed(&p, junk, sizeof(junk)), -1);
    }
    cmpr_tcp_parser_free(&p);
}

/* tp06 5: a version above 10 is answered VersionNotSupported */
static void
test_version_11(void **state)
{
    static const unsigned char v11[] = { 0, 0, 0, 4, 11, 0, 0, 0 };
    struct cmpr_tcp_parser p;
    struct cmpr_tcp_frame f;

    (void)state;
    cmpr_tcp_parser_init(&p, 1024);
    assert_int_equal(cmpr_tcp_feed(&p, v11, sizeof(v11)), 0);
    assert_int_equal(cmpr_tcp_next(&p, &f), CMPR_TCP_E_VERSION);
    assert_int_equal(f.version, 11);
    cmpr_tcp_parser_free(&p);
}

/* the example frames of cmp-wire.md 1.1 and 1.2, byte for byte */
static void
test_encoders(void **state)
{
    static const unsigned char fin_close[] = { 0, 0, 0, 4, 10, 1, 3, 0 };
    static const unsigned char negpoll[] = { 0, 0, 0, 2, 3, 0 };
    static const unsigned char pollreq[] = { 0, 0, 0, 7, 10, 0, 2, 0, 0, 1, 2 };
    static const unsigned char pollrep[] = { 0, 0, 0, 11, 10, 0, 1, 0, 0, 1, 2, 0, 0, 0, 30 };
    static const unsigned char pollrep2510[] = { 0, 0, 0, 9, 1, 0, 0, 1, 2, 0, 0, 0x03, 0xf2 };
    static const unsigned char vns[] = { 0, 0, 0, 8, 10, 0, 6, 1, 1, 0, 1, 10 };
    static const unsigned char badpoll[] = { 0, 0, 0, 11, 10, 0, 6, 2, 2, 0, 4, 0, 0, 0, 9 };
    static const unsigned char hdr1234[] = { 0, 0, 0x04, 0xd5, 10, 0, 0 };
    unsigned char out[300];
    struct cmpr_tcp_frame f;

    (void)state;
    assert_int_equal(cmpr_tcp_finrep(10, 1, out), sizeof(fin_close));
    assert_memory_equal(out, fin_close, sizeof(fin_close));
    assert_int_equal(cmpr_tcp_finrep(CMPR_TCP_V2510, 0, out), sizeof(negpoll));
    assert_memory_equal(out, negpoll, sizeof(negpoll));
    assert_int_equal(cmpr_tcp_pollreq(10, 0, 0x102, out), sizeof(pollreq));
    assert_memory_equal(out, pollreq, sizeof(pollreq));
    /* v10: relative seconds; RFC 2510: absolute time */
    assert_int_equal(cmpr_tcp_pollrep(10, 0, 0x102, 30, 1000, out), sizeof(pollrep));
    assert_memory_equal(out, pollrep, sizeof(pollrep));
    assert_int_equal(cmpr_tcp_pollrep(CMPR_TCP_V2510, 0, 0x102, 10, 1000, out),
                     sizeof(pollrep2510));
    assert_memory_equal(out, pollrep2510, sizeof(pollrep2510));
    assert_int_equal(cmpr_tcp_errormsg(10, 0, CMPR_TCP_ERR_VERSION, 10, NULL, out, sizeof(out)),
                     sizeof(vns));
    assert_memory_equal(out, vns, sizeof(vns));
    assert_int_equal(cmpr_tcp_errormsg(10, 0, CMPR_TCP_ERR_POLLID, 9, "", out, sizeof(out)),
                     sizeof(badpoll));
    assert_memory_equal(out, badpoll, sizeof(badpoll));
    assert_int_equal(cmpr_tcp_header(10, 0, CMPR_TCP_PKIREQ, 0x4d2, out), 7);
    assert_memory_equal(out, hdr1234, 7);
    /* text is appended and bounded */
    {
        char longtext[1000];
        size_t n;

        memset(longtext, 'x', sizeof(longtext) - 1);
        longtext[sizeof(longtext) - 1] = 0;
        n = cmpr_tcp_errormsg(10, 0, CMPR_TCP_ERR_SERVER, 0, longtext, out, sizeof(out));
        assert_int_equal(n, 7 + 256);
        assert_int_equal(cmpr_tcp_parse_one(out, n, &f), CMPR_TCP_FRAME);
        assert_int_equal(f.type, CMPR_TCP_ERRORMSGREP);
    }
    /* parse_one wants exactly one frame */
    assert_int_equal(cmpr_tcp_parse_one(req10, sizeof(req10), &f), CMPR_TCP_FRAME);
    assert_int_equal(cmpr_tcp_parse_one(req10, sizeof(req10) - 1, &f), CMPR_TCP_E_LENGTH);
    assert_string_equal(cmpr_tcp_type_name(10, 5), "pkiRep");
    assert_string_equal(cmpr_tcp_type_name(0, 3), "negPollRep");
    assert_string_equal(cmpr_tcp_type_name(10, 99), "unknown");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_frame),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_coalesced),
        cmocka_unit_test(test_too_big_and_bad_lengths),
        cmocka_unit_test(test_version_11),
        cmocka_unit_test(test_encoders),
    };

    return cmocka_run_group_tests_name("tcpframe", tests, NULL, NULL);
}
