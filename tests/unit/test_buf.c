/* The bounded buffer (base/buf.c) and the error table (base/err.c). */
#include "testutil.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"

static void
test_cap_is_fixed(void **state)
{
    struct cmpr_buf b;
    unsigned char data[100];
    (void)state;

    memset(data, 'x', sizeof(data));
    cmpr_buf_init(&b, 10);
    assert_int_equal(cmpr_buf_put(&b, data, 10), CMPR_OK);
    assert_int_equal(cmpr_buf_len(&b), 10);
    /* one byte past the cap is refused, and nothing of it is kept */
    assert_int_equal(cmpr_buf_put(&b, data, 1), CMPR_ERR_TOO_LARGE);
    assert_int_equal(cmpr_buf_len(&b), 10);
    assert_int_equal(cmpr_buf_avail(&b), 0);
    /* consuming makes room again, within the same cap */
    cmpr_buf_consume(&b, 4);
    assert_int_equal(cmpr_buf_put(&b, data, 5), CMPR_ERR_TOO_LARGE);
    assert_int_equal(cmpr_buf_put(&b, data, 4), CMPR_OK);
    assert_int_equal(cmpr_buf_len(&b), 10);
    cmpr_buf_free(&b);
    assert_int_equal(cmpr_buf_len(&b), 0);
    assert_null(cmpr_buf_ptr(&b));
}

/* fed one byte at a time up to the cap and beyond (Dovecot style) */
static void
test_byte_at_a_time(void **state)
{
    struct cmpr_buf b;
    (void)state;

    cmpr_buf_init(&b, 1000);
    for (int i = 0; i < 1000; i++) {
        unsigned char c = (unsigned char)i;

        assert_int_equal(cmpr_buf_put(&b, &c, 1), CMPR_OK);
    }
    assert_int_equal(cmpr_buf_put_u8(&b, 1), CMPR_ERR_TOO_LARGE);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(cmpr_buf_ptr(&b)[i], (unsigned char)i);
    cmpr_buf_free(&b);
}

static void
test_typed_gets(void **state)
{
    struct cmpr_buf b;
    uint32_t v;
    uint8_t u;
    const unsigned char *p;
    (void)state;

    cmpr_buf_init(&b, 64);
    assert_int_equal(cmpr_buf_put_u32(&b, 0x01020304), CMPR_OK);
    assert_int_equal(cmpr_buf_put_u8(&b, 0xfe), CMPR_OK);
    assert_int_equal(cmpr_buf_put(&b, "ab", 2), CMPR_OK);
    assert_int_equal(cmpr_buf_get_u32(&b, &v), CMPR_OK);
    assert_int_equal(v, 0x01020304);
    assert_int_equal(cmpr_buf_get_u8(&b, &u), CMPR_OK);
    assert_int_equal(u, 0xfe);
    /* asking for more than is held consumes nothing */
    assert_int_equal(cmpr_buf_get_bytes(&b, 3, &p), CMPR_ERR_TRUNCATED);
    assert_int_equal(cmpr_buf_len(&b), 2);
    assert_int_equal(cmpr_buf_get_u32(&b, &v), CMPR_ERR_TRUNCATED);
    assert_int_equal(cmpr_buf_get_bytes(&b, 2, &p), CMPR_OK);
    assert_memory_equal(p, "ab", 2);
    assert_int_equal(cmpr_buf_len(&b), 0);
    cmpr_buf_free(&b);
}

static void
test_putf_and_steal(void **state)
{
    struct cmpr_buf b;
    unsigned char *s;
    size_t n;
    char big[600];
    (void)state;

    cmpr_buf_init(&b, 20);
    assert_int_equal(cmpr_buf_putf(&b, "%s=%d", "len", 42), CMPR_OK);
    /* a formatted text that would pass the cap is refused whole */
    assert_int_equal(cmpr_buf_putf(&b, "%s", "0123456789abcdef"), CMPR_ERR_TOO_LARGE);
    assert_int_equal(cmpr_buf_len(&b), 6);
    /* exactly up to the cap is fine */
    assert_int_equal(cmpr_buf_putf(&b, "%s", "0123456789abcd"), CMPR_OK);
    assert_int_equal(cmpr_buf_len(&b), 20);
    s = cmpr_buf_steal(&b, &n);
    assert_non_null(s);
    assert_int_equal(n, 20);
    assert_string_equal((char *)s, "len=420123456789abcd");
    free(s);
    assert_int_equal(cmpr_buf_len(&b), 0);
    /* long texts go through a temporary */
    cmpr_buf_init(&b, 1000);
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(cmpr_buf_putf(&b, "<%s>", big), CMPR_OK);
    assert_int_equal(cmpr_buf_len(&b), sizeof(big) + 1);
    s = cmpr_buf_dup(&b, &n);
    assert_int_equal(n, sizeof(big) + 1);
    assert_int_equal(s[0], '<');
    assert_int_equal(s[n - 1], '>');
    assert_int_equal(s[n], '\0');
    free(s);
    cmpr_buf_free(&b);
}

static void
test_read_fd_capped(void **state)
{
    char path[] = "/tmp/test_buf.XXXXXX";
    int fd = mkstemp(path);
    struct cmpr_buf b;
    char data[5000];
    (void)state;

    assert_true(fd >= 0);
    memset(data, 'z', sizeof(data));
    assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    /* a stream that fits exactly */
    lseek(fd, 0, SEEK_SET);
    cmpr_buf_init(&b, sizeof(data));
    assert_int_equal(cmpr_buf_read_fd(&b, fd), CMPR_OK);
    assert_int_equal(cmpr_buf_len(&b), sizeof(data));
    cmpr_buf_free(&b);
    /* one byte too long */
    lseek(fd, 0, SEEK_SET);
    cmpr_buf_init(&b, sizeof(data) - 1);
    assert_int_equal(cmpr_buf_read_fd(&b, fd), CMPR_ERR_TOO_LARGE);
    assert_int_equal(cmpr_buf_len(&b), sizeof(data) - 1);
    cmpr_buf_free(&b);
    close(fd);
    unlink(path);
}

static void
test_array_grow(void **state)
{
    int *v = NULL;
    size_t cap = 0;
    (void)state;

    for (size_t n = 1; n <= 100; n++) {
        assert_int_equal(cmpr_array_grow(&v, &cap, n, sizeof(*v), 100), CMPR_OK);
        assert_true(cap >= n && cap <= 100);
        v[n - 1] = (int)n;
    }
    assert_int_equal(cmpr_array_grow(&v, &cap, 101, sizeof(*v), 100), CMPR_ERR_TOO_LARGE);
    assert_int_equal(v[99], 100);
    assert_int_equal(cmpr_array_grow(&v, &cap, SIZE_MAX / 2, 8, SIZE_MAX), CMPR_ERR_TOO_LARGE);
    free(v);
}

static void
test_error_table(void **state)
{
    (void)state;
    assert_string_equal(cmpr_strerror(CMPR_ERR_ALLOC), "out of memory");
    assert_string_equal(cmpr_errname(CMPR_ERR_ALLOC), "CMPR_ERR_ALLOC");
    assert_string_equal(cmpr_errname(CMPR_ERR_TIMEOUT), "CMPR_ERR_TIMEOUT");
    assert_string_equal(cmpr_strerror(12345), "unknown error");
    assert_string_equal(cmpr_errname(12345), "CMPR_ERR_?");
}

/* hexadecimal as operators type it (serials, transactionIDs) and the
 * store's audit log writes it: even length, within the cap, digits only */
static void
test_unhex(void **state)
{
    unsigned char out[4];
    size_t n = 0;
    (void)state;

    assert_int_equal(cmpr_unhex("0a1B", out, sizeof(out), &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0x0a);
    assert_int_equal(out[1], 0x1b);
    assert_int_equal(cmpr_unhex("0x01020304", out, sizeof(out), &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(cmpr_unhex("0102030405", out, sizeof(out), &n), -1);    /* over the cap */
    assert_int_equal(cmpr_unhex("abc", out, sizeof(out), &n), -1);           /* odd */
    assert_int_equal(cmpr_unhex("", out, sizeof(out), &n), -1);
    assert_int_equal(cmpr_unhex("0g", out, sizeof(out), &n), -1);
    assert_int_equal(cmpr_unhex("+1", out, sizeof(out), &n), -1);            /* sscanf would take it */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unhex),
        cmocka_unit_test(test_cap_is_fixed),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_typed_gets),
        cmocka_unit_test(test_putf_and_steal),
        cmocka_unit_test(test_read_fd_capped),
        cmocka_unit_test(test_array_grow),
        cmocka_unit_test(test_error_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
