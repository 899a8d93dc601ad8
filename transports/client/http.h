/* A blocking CMP-over-HTTP(S) client (RFC 9811) for worker threads and the
 * command line: POST one DER message, read one answer, with a deadline,
 * size caps, TLS over memory BIOs and connection reuse. */
#ifndef CMPR_HTTP_CLIENT_H
#define CMPR_HTTP_CLIENT_H

#include <stddef.h>

struct cmpr_http_client_opts {
    long timeout_ms;                /* whole exchange (connect .. answer); 0: 30 s */
    size_t max_response;            /* 0: 1 MiB */
    const char *tls_ca;             /* https: trust anchors (NULL: system store) */
    const char *tls_cert, *tls_key; /* https: client identity, optional */
};

struct cmpr_http_conn;              /* a kept-alive connection, reused by the next POST */

/* POSTs der to url (http[s]://host[:port]/path). On success *status_r is the
 * HTTP status; the body (a CMP message when the type is application/pkixcmp,
 * also with 4xx/5xx per RFC 9811 3.1) is in *body_r (malloc()ed) and
 * *is_cmp_r says whether it is one. *conn may be NULL or a connection from a
 * previous call to the same server; it is set for the next call (or freed).
 * Returns 0, or -1 with err[] saying why (connect, TLS, timeout, size). */
int cmpr_http_post(const char *url, const unsigned char *der, size_t len,
                   const struct cmpr_http_client_opts *opts, struct cmpr_http_conn **conn,
                   int *status_r, unsigned char **body_r, size_t *body_len_r, int *is_cmp_r,
                   char *err, size_t errlen);
void cmpr_http_conn_free(struct cmpr_http_conn *c);

#endif
