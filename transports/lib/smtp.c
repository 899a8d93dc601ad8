/* SMTP submission of one message (see smtp_client.h). */
#include "transports/lib/smtp.h"
#include "transports/lib/blocking.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

struct smtp {
    struct cmpr_blk_io io;
    long deadline;
    char buf[4096];
    size_t len;
    char last[512];             /* the last reply, for error messages */
    int starttls, auth_plain, auth_login;
};

/* one line (without CRLF) into line; 0, or -1 */
static int
get_line(struct smtp *s, char *line, size_t cap)
{
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->len);

        if (nl != NULL) {
            size_t n = (size_t)(nl - s->buf);

            if (n > 0 && s->buf[n - 1] == '\r')
                n--;
            snprintf(line, cap, "%.*s", (int)(n < cap ? n : cap - 1), s->buf);
            memmove(s->buf, nl + 1, s->len - (size_t)(nl + 1 - s->buf));
            s->len -= (size_t)(nl + 1 - s->buf);
            return 0;
        }
        if (s->len == sizeof(s->buf))
            return -1;          /* a line longer than RFC 5321 allows */
        {
            long n = cmpr_blk_recv(&s->io, s->buf + s->len, sizeof(s->buf) - s->len, s->deadline);

            if (n <= 0)
                return -1;
            s->len += (size_t)n;
        }
    }
}

/* a whole (multi-line) reply; its code, or -1. EHLO keywords are noted. */
static int
reply(struct smtp *s)
{
    char line[1024];

    for (int i = 0; i < 100; i++) {
        if (get_line(s, line, sizeof(line)) != 0 || strlen(line) < 3)
            return -1;
        if (strncasecmp(line + 4, "STARTTLS", 8) == 0)
            s->starttls = 1;
        if (strncasecmp(line + 4, "AUTH", 4) == 0) {
            s->auth_plain |= strstr(line + 8, "PLAIN") != NULL;
            s->auth_login |= strstr(line + 8, "LOGIN") != NULL;
        }
        snprintf(s->last, sizeof(s->last), "%.500s", line);
        if (line[3] != '-')
            return atoi(line);
    }
    return -1;
}

static int
cmd(struct smtp *s, const char *fmt, const char *arg)
{
    char line[1200];
    int n = snprintf(line, sizeof(line), fmt, arg);

    if (n < 0 || (size_t)n >= sizeof(line) || cmpr_blk_send(&s->io, line, (size_t)n, s->deadline) != 0)
        return -1;
    return reply(s);
}

static int
fail(struct smtp *s, int code, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", what, code < 0 ? "no answer (connection lost or timeout)" : s->last);
    return code >= 500 && code < 600 ? CMPR_SMTP_PERMFAIL : CMPR_SMTP_TEMPFAIL;
}

static char *
b64(const void *data, size_t len)
{
    char *o = malloc(4 * ((len + 2) / 3) + 1);

    if (o != NULL)
        EVP_EncodeBlock((unsigned char *)o, data, (int)len);
    return o;
}

static int
authenticate(struct smtp *s, const struct cmpr_smtp_opts *o, char *err, size_t errlen)
{
    int code = -1;

    if (s->auth_plain) {
        size_t ul = strlen(o->user), pl = strlen(o->secret);
        char *raw = malloc(ul + pl + 2), *enc;

        if (raw == NULL)
            return CMPR_SMTP_TEMPFAIL;
        raw[0] = '\0';
        memcpy(raw + 1, o->user, ul);
        raw[ul + 1] = '\0';
        memcpy(raw + ul + 2, o->secret, pl);
        enc = b64(raw, ul + pl + 2);
        OPENSSL_cleanse(raw, ul + pl + 2);
        free(raw);
        if (enc == NULL)
            return CMPR_SMTP_TEMPFAIL;
        code = cmd(s, "AUTH PLAIN %s\r\n", enc);
        OPENSSL_cleanse(enc, strlen(enc));
        free(enc);
    } else if (s->auth_login) {
        char *u = b64(o->user, strlen(o->user)), *p = b64(o->secret, strlen(o->secret));

        if (u != NULL && p != NULL && (code = cmd(s, "AUTH LOGIN\r\n", NULL)) == 334
                && (code = cmd(s, "%s\r\n", u)) == 334)
            code = cmd(s, "%s\r\n", p);
        if (p != NULL)
            OPENSSL_cleanse(p, strlen(p));
        free(u);
        free(p);
    } else {
        snprintf(err, errlen, "the relay offers neither AUTH PLAIN nor AUTH LOGIN");
        return CMPR_SMTP_TEMPFAIL;
    }
    return code == 235 ? CMPR_SMTP_SENT : fail(s, code, "AUTH", err, errlen);
}

/* the message as DATA: CRLF line ends, leading dots doubled, ".\r\n" at the end */
static int
send_data(struct smtp *s, const unsigned char *msg, size_t len)
{
    char out[8192];
    size_t o = 0;
    int bol = 1;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = msg[i];

        if (o + 4 > sizeof(out)) {
            if (cmpr_blk_send(&s->io, out, o, s->deadline) != 0)
                return -1;
            o = 0;
        }
        if (bol && c == '.')
            out[o++] = '.';
        if (c == '\n' && (i == 0 || msg[i - 1] != '\r'))
            out[o++] = '\r';
        out[o++] = (char)c;
        bol = c == '\n';
    }
    if (!bol) {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    if (o > 0 && cmpr_blk_send(&s->io, out, o, s->deadline) != 0)
        return -1;
    return cmpr_blk_send(&s->io, ".\r\n", 3, s->deadline);
}

int
cmpr_smtp_send(const struct cmpr_smtp_opts *o, const char *from, const char *to,
               const unsigned char *msg, size_t len, char *err, size_t errlen)
{
    struct smtp *s = calloc(1, sizeof(*s));
    int code, r = CMPR_SMTP_TEMPFAIL;

    if (s == NULL)
        return CMPR_SMTP_TEMPFAIL;
    s->deadline = cmpr_blk_now_ms() + o->timeout_ms;
    s->io.fd = cmpr_blk_connect(o->host, o->port, s->deadline, err, errlen);
    if (s->io.fd < 0)
        goto out;
    if ((code = reply(s)) != 220) {
        r = fail(s, code, "greeting", err, errlen);
        goto out;
    }
    if ((code = cmd(s, "EHLO %s\r\n", o->helo)) != 250) {
        r = fail(s, code, "EHLO", err, errlen);
        goto out;
    }
    if (o->tls != CMPR_SMTP_TLS_NO && (s->starttls || o->tls == CMPR_SMTP_TLS_REQUIRED)) {
        if ((code = cmd(s, "STARTTLS\r\n", NULL)) != 220) {
            r = fail(s, code, "STARTTLS", err, errlen);
            goto out;
        }
        s->len = 0;             /* nothing sent before TLS may be used after (RFC 3207 4.2) */
        if (cmpr_blk_tls(&s->io, o->tls_ca, o->host, NULL, NULL, s->deadline, err, errlen) != 0)
            goto out;
        s->starttls = s->auth_plain = s->auth_login = 0;
        if ((code = cmd(s, "EHLO %s\r\n", o->helo)) != 250) {
            r = fail(s, code, "EHLO after STARTTLS", err, errlen);
            goto out;
        }
    }
    if (o->user != NULL && o->user[0] != '\0') {
        if (s->io.tls == NULL && !o->allow_plain_auth) {
            snprintf(err, errlen, "the relay did not offer STARTTLS: credentials are not sent in clear");
            goto out;
        }
        if ((r = authenticate(s, o, err, errlen)) != CMPR_SMTP_SENT)
            goto out;
        r = CMPR_SMTP_TEMPFAIL;
    }
    if ((code = cmd(s, "MAIL FROM:<%s>\r\n", from)) != 250) {
        r = fail(s, code, "MAIL FROM", err, errlen);
        goto out;
    }
    if ((code = cmd(s, "RCPT TO:<%s>\r\n", to)) != 250 && code != 251) {
        r = fail(s, code, "RCPT TO", err, errlen);
        goto out;
    }
    if ((code = cmd(s, "DATA\r\n", NULL)) != 354) {
        r = fail(s, code, "DATA", err, errlen);
        goto out;
    }
    code = send_data(s, msg, len) != 0 ? -1 : reply(s);
    if (code != 250) {
        r = fail(s, code, "end of DATA", err, errlen);
        goto out;
    }
    r = CMPR_SMTP_SENT;
    snprintf(err, errlen, "%s", s->last);
    (void)cmd(s, "QUIT\r\n", NULL);
out:
    cmpr_blk_close(&s->io);
    free(s);
    return r;
}
