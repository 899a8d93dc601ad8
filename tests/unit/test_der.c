/* The bounded DER skeleton reader (codec/der.c). Parsers are fed every prefix
 * of their input, one byte more each time (Dovecot style). */
#include "testutil.h"

#include <string.h>

#include "codec/der.h"
#include "base/err.h"

static void
test_simple_sequence(void **state)
{
    static const unsigned char ok[] = { 0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xaa };
    struct cmpr_der_err err;

    (void)state;
    assert_int_equal(cmpr_der_check(ok, sizeof(ok), 8, &err), CMPR_OK);
    /* every strict prefix is truncated, never accepted, never read past */
    for (size_t n = 0; n < sizeof(ok); n++) {
        unsigned char *copy = malloc(n + 1);

        memcpy(copy, ok, n);
        assert_int_not_equal(cmpr_der_check(copy, n, 8, &err), CMPR_OK);
        free(copy);
    }
}

static void
test_trailing_bytes(void **state)
{
    static const unsigned char t[] = { 0x30, 0x03, 0x02, 0x01, 0x05, 0x00 };
    struct cmpr_der_err err;

    (void)state;
    assert_int_equal(cmpr_der_check(t, sizeof(t), 8, &err), CMPR_ERR_TRAILING);
    assert_int_equal(err.offset, 5);
}

static void
test_indefinite_length_is_not_der(void **state)
{
    static const unsigned char t[] = { 0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00 };
    struct cmpr_der_err err;

    (void)state;
    assert_int_equal(cmpr_der_check(t, sizeof(t), 8, &err), CMPR_ERR_NOT_DER);
    assert_int_equal(err.offset, 0);
    assert_non_null(strstr(err.what, "indefinite"));
}

static void
test_non_minimal_length(void **state)
{
    static const unsigned char t1[] = { 0x30, 0x81, 0x03, 0x02, 0x01, 0x05 };
    static const unsigned char t2[] = { 0x30, 0x82, 0x00, 0x03, 0x02, 0x01, 0x05 };
    struct cmpr_der_err err;

    (void)state;
    assert_int_equal(cmpr_der_check(t1, sizeof(t1), 8, &err), CMPR_ERR_NOT_DER);
    assert_int_equal(cmpr_der_check(t2, sizeof(t2), 8, &err), CMPR_ERR_NOT_DER);
}

static void
test_oversized_length(void **state)
{
    /* claims 4 GiB - 1 of content */
    static const unsigned char t[] = { 0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02 };
    static const unsigned char t5[] = { 0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02 };
    struct cmpr_der_err err;

    (void)state;
    assert_int_equal(cmpr_der_check(t, sizeof(t), 8, &err), CMPR_ERR_TRUNCATED);
    assert_int_equal(cmpr_der_check(t5, sizeof(t5), 8, &err), CMPR_ERR_TOO_LARGE);
}

static void
test_child_overruns_parent(void **state)
{
    /* inner INTEGER claims 3 bytes but the SEQUENCE holds only 2 after its header */
    static const unsigned char t[] = { 0x30, 0x04, 0x02, 0x03, 0x05, 0x06, 0x07 };
    struct cmpr_der_err err;

    (void)state;
    assert_int_not_equal(cmpr_der_check(t, sizeof(t), 8, &err), CMPR_OK);
    assert_int_equal(err.offset, 2);
}

/* n nested SEQUENCEs around an empty one, DER lengths */
static size_t
nest(unsigned char *buf, size_t n)
{
    size_t len = 0;
    unsigned char tmp[1024];

    buf[0] = 0x30;
    buf[1] = 0x00;
    len = 2;
    for (size_t i = 0; i < n; i++) {
        size_t h = len < 0x80 ? 2 : 3;

        memcpy(tmp, buf, len);
        buf[0] = 0x30;
        if (h == 2) {
            buf[1] = (unsigned char)len;
        } else {
            buf[1] = 0x81;
            buf[2] = (unsigned char)len;
        }
        memcpy(buf + h, tmp, len);
        len += h;
    }
    return len;
}

static void
test_depth_limit(void **state)
{
    unsigned char buf[1024];
    struct cmpr_der_err err;
    size_t len;

    (void)state;
    len = nest(buf, 100);
    assert_int_equal(cmpr_der_check(buf, len, 64, &err), CMPR_ERR_TOO_DEEP);
    len = nest(buf, 63);
    assert_int_equal(cmpr_der_check(buf, len, 64, &err), CMPR_OK);
}

static void
test_high_tag_number(void **state)
{
    /* [31] primitive with 1 content byte, inside a SEQUENCE */
    static const unsigned char ok[] = { 0x30, 0x04, 0x9f, 0x1f, 0x01, 0x00 };
    /* tag 5 in high form is not DER */
    static const unsigned char bad[] = { 0x30, 0x04, 0x9f, 0x05, 0x01, 0x00 };
    struct cmpr_der_err err;
    struct cmpr_der_tlv tlv;
    const char *what;

    (void)state;
    assert_int_equal(cmpr_der_check(ok, sizeof(ok), 8, &err), CMPR_OK);
    assert_int_equal(cmpr_der_read(ok + 2, 4, &tlv, &what), CMPR_OK);
    assert_int_equal(tlv.tag, 31);
    assert_int_equal(tlv.cls, 2);
    assert_int_equal(cmpr_der_check(bad, sizeof(bad), 8, &err), CMPR_ERR_NOT_DER);
}

static void
test_not_a_sequence(void **state)
{
    static const unsigned char t[] = { 0x04, 0x01, 0x00 };
    struct cmpr_der_err err;

    (void)state;
    assert_int_equal(cmpr_der_check(t, sizeof(t), 8, &err), CMPR_ERR_DECODE);
    assert_int_equal(cmpr_der_check(t, 0, 8, &err), CMPR_ERR_TRUNCATED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_sequence),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_indefinite_length_is_not_der),
        cmocka_unit_test(test_non_minimal_length),
        cmocka_unit_test(test_oversized_length),
        cmocka_unit_test(test_child_overruns_parent),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_high_tag_number),
        cmocka_unit_test(test_not_a_sequence),
    };

    return cmocka_run_group_tests_name("der", tests, NULL, NULL);
}
