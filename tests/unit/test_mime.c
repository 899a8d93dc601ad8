/* CMP in e-mail (transports/mailmsg.c; cmp-wire.md 3, RFC 9483 6.4.2):
 * application/pkixcmp parts anywhere in the MIME tree, legacy
 * application/x-pkixcmp, .pki attachments as application/octet-stream,
 * hostile mails, and the reply mail read back. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "codec/msg.h"
#include "codec/print.h"
#include "codec/mime.h"

static const struct cmpr_mail_limits lim = { 1024 * 1024, 50, 8, 256 * 1024 };
static unsigned char *ir, *ip;
static size_t ir_len, ip_len;

static char *
b64(const unsigned char *d, size_t n)
{
    char *o = malloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)o, d, (int)n);
    return o;
}

static void
parse(const char *mail, struct cmpr_mail_in *m)
{
    assert_int_equal(cmpr_mail_parse((const unsigned char *)mail, strlen(mail), &lim, m), 0);
}

static char *
mail_with(const char *headers, const char *body)
{
    size_t n = strlen(headers) + strlen(body) + 8;
    char *s = malloc(n);

    snprintf(s, n, "%s\n%s", headers, body);
    return s;
}

static void
test_parts_everywhere(void **state)
{
    char *e = b64(ir, ir_len), body[8192], *mail;
    struct cmpr_mail_in m;

    (void)state;
    snprintf(body, sizeof(body),
             "--outer\nContent-Type: text/plain\n\nhello\n"
             "--outer\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=sig\n\n"
             "--sig\nContent-Type: multipart/mixed; boundary=inner\n\n"
             "--inner\nContent-Type: application/pkixcmp; name=req.pki\nContent-Transfer-Encoding: base64\n\n%s\n"
             "--inner\nContent-Type: application/x-pkixcmp\nContent-Disposition: attachment; filename=old.pki\n"
             "Content-Transfer-Encoding: base64\n\n%s\n--inner--\n"
             "--sig\nContent-Type: application/pkcs7-signature\n\nAAAA\n--sig--\n"
             "--outer\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"x.PKI\"\n"
             "Content-Transfer-Encoding: base64\n\n%s\n"
             "--outer\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=x.bin\n\n"
             "ignored\n--outer--\n", e, e, e);
    mail = mail_with("From: Site <site@example.org>\nReply-To: pki-office@example.org\nTo: ca@example.com\n"
                     "Subject: enrol\nMessage-ID: <abc@example.org>\nReferences: <r1@x> <bad id@x>\n"
                     "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n", body);
    parse(mail, &m);
    assert_int_equal(m.n_parts, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_non_null(m.parts[i].der);
        assert_int_equal(m.parts[i].len, ir_len);
        assert_memory_equal(m.parts[i].der, ir, ir_len);
    }
    assert_string_equal(m.parts[0].name, "req.pki");
    assert_string_equal(m.parts[1].name, "old.pki");
    assert_string_equal(m.from, "pki-office@example.org");       /* Reply-To wins */
    assert_string_equal(m.message_id, "abc@example.org");
    assert_string_equal(m.references, "<r1@x>");                   /* the unusable id is dropped */
    assert_string_equal(m.problem, "");
    cmpr_mail_in_free(&m);
    free(mail);
    free(e);
}

static void
test_hostile(void **state)
{
    struct cmpr_mail_in m;
    char *mail, *big, *deep;
    size_t off = 0;

    (void)state;
    parse("From: a@b.c\nSubject: nothing\n\njust text\n", &m);
    assert_int_equal(m.n_parts, 0);
    assert_non_null(strstr(m.problem, "no CMP message"));
    cmpr_mail_in_free(&m);
    /* broken base64 and an encoded subject carrying CR LF (header injection) */
    mail = mail_with("From: a@b.c\nSubject: =?utf-8?q?x=0D=0ABcc:_victim@evil?=\nMIME-Version: 1.0\n"
                     "Content-Type: application/pkixcmp; name=a.pki\nContent-Transfer-Encoding: base64\n",
                     "!!!!not base64 at all****\n");
    parse(mail, &m);
    assert_int_equal(m.n_parts, 1);
    assert_null(m.parts[0].der);
    assert_non_null(strstr(m.parts[0].problem, "not a DER PKIMessage"));
    assert_null(strchr(m.subject, '\r'));
    assert_null(strchr(m.subject, '\n'));
    cmpr_mail_in_free(&m);
    free(mail);
    /* too large: only the headers are read */
    big = malloc(lim.max_mail + 100);
    memset(big, 'a', lim.max_mail + 99);
    memcpy(big, "From: a@b.c\nSubject: big\n\n", 26);
    big[lim.max_mail + 99] = '\0';
    parse(big, &m);
    assert_non_null(strstr(m.problem, "larger than"));
    assert_string_equal(m.from, "a@b.c");
    cmpr_mail_in_free(&m);
    free(big);
    /* 100 levels of nesting */
    deep = malloc(100 * 120 + 200);
    off = (size_t)sprintf(deep, "From: a@b.c\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b0\n\n");
    for (int i = 1; i < 100; i++)
        off += (size_t)sprintf(deep + off, "--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n", i - 1, i);
    parse(deep, &m);
    assert_int_equal(m.n_parts, 0);
    assert_non_null(strstr(m.problem, "multipart"));
    cmpr_mail_in_free(&m);
    free(deep);
    /* an address that could inject a header is not used */
    parse("From: \"x\" <a@b.c>\nReply-To: <evil@x.y\r\nBcc: victim@z>\nSubject: s\n\n", &m);
    assert_null(strchr(m.from, '\n'));
    cmpr_mail_in_free(&m);
    assert_false(cmpr_mail_addr_ok("a@b.c\nBcc: x@y"));
    assert_false(cmpr_mail_addr_ok("a b@c"));
    assert_false(cmpr_mail_addr_ok("nodomain"));
    assert_true(cmpr_mail_addr_ok("first.last+tag@sub.example.org"));
}

static void
test_reply(void **state)
{
    char *e = b64(ir, ir_len), *mail;
    struct cmpr_mail_in m, r;
    struct cmpr_mail_answer a;
    unsigned char *out;
    size_t out_len;
    char text[600], *s;
    CMPR_PKIMESSAGE *msg = NULL;

    (void)state;
    {
        char body[4096];

        snprintf(body, sizeof(body), "%s\n", e);
        mail = mail_with("From: site@example.org\nSubject: enrol me\nMessage-ID: <q1@example.org>\n"
                         "MIME-Version: 1.0\nContent-Type: application/pkixcmp; name=req.pki\n"
                         "Content-Transfer-Encoding: base64\n", body);
    }
    parse(mail, &m);
    assert_int_equal(m.n_parts, 1);
    assert_int_equal(cmpr_msg_decode(ip, ip_len, &msg, NULL), 0);
    cmpr_msg_describe(msg, text, sizeof(text));
    assert_non_null(strstr(text, "Certificate issued"));
    CMPR_PKIMESSAGE_free(msg);
    a.der = ip;
    a.len = ip_len;
    a.name = m.parts[0].name;
    a.text = text;
    assert_int_equal(cmpr_mail_build_reply(&m, "ca@example.com", &a, 1, NULL, &out, &out_len), 0);
    s = malloc(out_len + 1);
    memcpy(s, out, out_len);
    s[out_len] = '\0';
    assert_non_null(strstr(s, "In-Reply-To: <q1@example.org>"));
    assert_non_null(strstr(s, "Subject: Re: enrol me"));
    assert_non_null(strstr(s, "To: site@example.org"));
    assert_non_null(strstr(s, "req.rsp.pki"));
    assert_non_null(strstr(s, "Content-Transfer-Encoding: base64"));
    /* read back: the answer comes out whole */
    assert_int_equal(cmpr_mail_parse(out, out_len, &lim, &r), 0);
    assert_int_equal(r.n_parts, 1);
    assert_int_equal(r.parts[0].len, ip_len);
    assert_memory_equal(r.parts[0].der, ip, ip_len);
    assert_string_equal(r.from, "ca@example.com");
    cmpr_mail_in_free(&r);
    free(s);
    free(out);
    /* no usable address to answer: no reply */
    strcpy(m.from, "");
    assert_int_equal(cmpr_mail_build_reply(&m, "ca@example.com", &a, 1, NULL, &out, &out_len), -1);
    cmpr_mail_in_free(&m);
    free(mail);
    free(e);
}

static int
setup(void **state)
{
    char p[512];

    (void)state;
    ir = tu_read(tu_data("openssl/ir_mac.der", p, sizeof(p)), &ir_len);
    ip = tu_read(tu_data("openssl/ip_mac.der", p, sizeof(p)), &ip_len);
    return ir != NULL && ip != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    free(ir);
    free(ip);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_everywhere),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_reply),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
