/* Naming and settling rules of the folder transports (transports/dropname.c,
 * RFC 9483 6.4: one DER PKIMessage per file, extension .pki). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "codec/dropname.h"

static void
test_names(void **state)
{
    char buf[300];

    (void)state;
    assert_int_equal(cmpr_drop_answer_name("req.pki", 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "req.rsp.pki");
    assert_int_equal(cmpr_drop_answer_name("req.PKI", 3, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "req.3.rsp.pki");
    assert_int_equal(cmpr_drop_answer_name("req.der", 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "req.rsp.pki");
    assert_int_equal(cmpr_drop_answer_name("noext", 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "noext.rsp.pki");
    assert_int_equal(cmpr_drop_alt_name("a.pki", 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "a.pki");
    assert_int_equal(cmpr_drop_alt_name("a.pki", 2, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "a.2.pki");
    assert_int_equal(cmpr_drop_answer_name("req.pki", 1, buf, 8), -1);     /* does not fit */
}

static void
test_ignored_and_patterns(void **state)
{
    char buf[32];

    (void)state;
    assert_true(cmpr_drop_ignored(".hidden.pki"));
    assert_true(cmpr_drop_ignored("x.pki.tmp"));
    assert_true(cmpr_drop_ignored("x.pki.part"));
    assert_true(cmpr_drop_ignored("x.pki~"));
    assert_false(cmpr_drop_ignored("x.pki"));
    assert_true(cmpr_drop_matches("*.pki *.der", "a.der"));
    assert_true(cmpr_drop_matches("*.pki,*.der", "a.pki"));
    assert_false(cmpr_drop_matches("*.pki *.der", "a.txt"));
    cmpr_drop_printable("a\nb\303\274", buf, sizeof(buf));
    assert_string_equal(buf, "a?b??");
}

static void
test_check(void **state)
{
    static const unsigned char junk[] = "not DER";
    char why[300];

    (void)state;
    assert_int_equal(cmpr_drop_check(junk, 0, 1024, why, sizeof(why)), -1);
    assert_string_equal(why, "empty file");
    assert_int_equal(cmpr_drop_check(junk, sizeof(junk), 4, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "max_size"));
    assert_int_equal(cmpr_drop_check(junk, sizeof(junk), 1024, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "not a DER PKIMessage"));
}

static struct cmpr_drop_entry
entry(const char *name, int64_t size, int64_t mtime)
{
    struct cmpr_drop_entry e = { strdup(name), size, mtime, 1, 0 };

    return e;
}

/* a file is ready only once unchanged for settle_ms; a change restarts the clock */
static void
test_settle(void **state)
{
    struct cmpr_drop_entry *a = calloc(2, sizeof(*a)), *b = calloc(2, sizeof(*b)), ready[2];
    size_t n;

    (void)state;
    a[0] = entry("new.pki", 10, 200);
    a[1] = entry("old.pki", 10, 100);
    assert_int_equal(cmpr_drop_settle(NULL, 0, a, 2, 500, 1000, ready, &n), 500);
    assert_int_equal(n, 0);
    b[0] = entry("old.pki", 10, 100);
    b[1] = entry("new.pki", 20, 300);         /* still growing */
    assert_int_equal(cmpr_drop_settle(a, 2, b, 2, 500, 1600, ready, &n), 500);
    assert_int_equal(n, 1);
    assert_string_equal(ready[0].name, "old.pki");
    cmpr_drop_entries_free(a, 2);
    a = calloc(2, sizeof(*a));
    a[0] = entry("new.pki", 20, 300);
    a[1] = entry("old.pki", 10, 100);
    assert_int_equal(cmpr_drop_settle(b, 2, a, 2, 500, 1900, ready, &n), 200);
    assert_int_equal(n, 1);
    assert_int_equal(cmpr_drop_settle(a, 2, b, 0, 500, 2200, ready, &n), -1);    /* nothing left */
    /* oldest first */
    assert_int_equal(cmpr_drop_settle(a, 2, a, 2, 500, 2200, ready, &n), -1);
    assert_int_equal(n, 2);
    assert_string_equal(ready[0].name, "old.pki");
    assert_string_equal(ready[1].name, "new.pki");
    cmpr_drop_entries_free(a, 2);
    cmpr_drop_entries_free(b, 2);
}

/* the SCP fallback's listing comes from an untrusted server */
static void
test_listing(void **state)
{
    static const char rec[] = "f 451 a.pki\0d 0 sub\0l 0 link.pki\0f 12 name with\nnewline\0"
                              "x 1 badtype\0f -3 neg\0f 12\0f 1x bad\0o 0 fifo\0f 7 last";
    struct cmpr_drop_entry *e;
    size_t n, size;

    (void)state;
    assert_int_equal(cmpr_drop_parse_listing((const unsigned char *)rec, sizeof(rec) - 1, 1, 100,
                                             &e, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(e[0].name, "a.pki");
    assert_int_equal(e[0].size, 451);
    assert_string_equal(e[1].name, "link.pki");
    assert_string_equal(e[2].name, "name with\nnewline");
    assert_string_equal(e[3].name, "fifo");
    assert_string_equal(e[4].name, "last");       /* the final record needs no NUL */
    cmpr_drop_entries_free(e, n);
    assert_int_equal(cmpr_drop_parse_listing((const unsigned char *)rec, sizeof(rec) - 1, 0, 2,
                                             &e, &n), 0);
    assert_int_equal(n, 2);                       /* capped; directories kept */
    assert_string_equal(e[1].name, "sub");
    cmpr_drop_entries_free(e, n);
    assert_int_equal(cmpr_drop_parse_scp_header("C0644 451 a.pki", &size), 0);
    assert_int_equal(size, 451);
    assert_int_equal(cmpr_drop_parse_scp_header("\001scp: a.pki: No such file", &size), -1);
    assert_int_equal(cmpr_drop_parse_scp_header("C0644 -1 a", &size), -1);
    assert_int_equal(cmpr_drop_parse_scp_header("C0648 1 a", &size), -1);
    assert_int_equal(cmpr_drop_parse_scp_header("C0644 1 ", &size), -1);
    assert_int_equal(cmpr_drop_parse_scp_header("C0644 99999999999999999999999 a", &size), -1);
}

/* a batch script's results also come from the untrusted server */
static void
test_results(void **state)
{
    static const char out[] = "0 0 3\n1 f 451\n2 1 0\n9 0 1\n-1 0 0\n3 00 1\n3 x\n3 x 1 2\n"
                              "3 x 99999999999999999\n\n3  0\n4 l 0";
    char word[5] = { 0 };
    long long num[5] = { 0 };
    unsigned char seen[5] = { 0 };

    (void)state;
    assert_int_equal(cmpr_drop_parse_results((const unsigned char *)out, sizeof(out) - 1, 5, word, num,
                                             seen), 4);
    assert_true(seen[0] && word[0] == '0' && num[0] == 3);
    assert_true(seen[1] && word[1] == 'f' && num[1] == 451);
    assert_true(seen[2] && word[2] == '1' && num[2] == 0);
    assert_false(seen[3]);              /* index out of range, words too long, numbers too big... */
    assert_true(seen[4] && word[4] == 'l' && num[4] == 0);      /* the last line needs no newline */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ignored_and_patterns),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_settle),
        cmocka_unit_test(test_listing),
        cmocka_unit_test(test_results),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
