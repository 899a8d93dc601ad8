/* SMTP submission (RFC 5321, STARTTLS RFC 3207, AUTH PLAIN/LOGIN RFC 4954)
 * of one message to one recipient, blocking, bounded by a timeout: for the
 * mail transport's sender thread. */
#ifndef CMPR_SMTP_CLIENT_H
#define CMPR_SMTP_CLIENT_H

#include <stddef.h>

enum { CMPR_SMTP_TLS_NO, CMPR_SMTP_TLS_OFFERED, CMPR_SMTP_TLS_REQUIRED };
enum { CMPR_SMTP_SENT = 0, CMPR_SMTP_TEMPFAIL = 1, CMPR_SMTP_PERMFAIL = 2 };

struct cmpr_smtp_opts {
    const char *host;
    int port;
    int tls;                    /* CMPR_SMTP_TLS_*: STARTTLS never, when offered, or required */
    const char *tls_ca;         /* anchors for the relay's certificate (NULL: system store) */
    const char *user, *secret;  /* AUTH when user is set (only over TLS unless allow_plain_auth) */
    int allow_plain_auth;
    const char *helo;           /* our name in EHLO */
    long timeout_ms;            /* for the whole exchange */
};

/* Sends msg (LF or CRLF line ends; dot-stuffed here) from -> to.
 * CMPR_SMTP_SENT, _TEMPFAIL (try again later: 4xx, network) or _PERMFAIL
 * (5xx: keep it aside); err[] says what the server said. */
int cmpr_smtp_send(const struct cmpr_smtp_opts *o, const char *from, const char *to,
                   const unsigned char *msg, size_t len, char *err, size_t errlen);

#endif
