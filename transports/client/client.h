/* The client side of every medium: one table of upstream operations per URI
 * scheme (core/upstream.h), used by the router's upstream routes and, through
 * outbound.h, by the EE client. Online media (http, https, tcp) exchange on
 * a struct cmpr_ioloop (their ctx); offline media (file, sftp, mailto) send
 * and collect on the caller's thread (ctx unused). */
#ifndef CMPR_CLIENT_H
#define CMPR_CLIENT_H

#include <stddef.h>

#include "core/upstream.h"

extern const struct cmpr_upstream_ops cmpr_http_upstream;   /* http://, https:// (RFC 9811) */
extern const struct cmpr_upstream_ops cmpr_tcp_upstream;    /* tcp:// (TCP-Message) */
extern const struct cmpr_upstream_ops cmpr_file_upstream;   /* file:OUTDIR,INDIR */
extern const struct cmpr_upstream_ops cmpr_sftp_upstream;   /* sftp://user@host/IN,OUT */
extern const struct cmpr_upstream_ops cmpr_mail_upstream;   /* mailto: */

/* A done() that keeps the end of one exchange, for callers that run the
 * client loop themselves until it is done (the command line). */
struct cmpr_client_wait {
    int done, result;
    unsigned char *ans;
    size_t len;
    char why[400];
};
void cmpr_client_waited(void *arg, int result, unsigned char *ans, size_t len, const char *why);
/* start(l, arg, w) begins an exchange that ends in cmpr_client_waited(w);
 * the loop runs here until it ends. CMPR_OK with *ans_r, or CMPR_ERR_* with err[]. */
struct cmpr_ioloop;
int cmpr_client_run(int (*start)(struct cmpr_ioloop *l, void *arg, struct cmpr_client_wait *w), void *arg,
                    unsigned char **ans_r, size_t *len_r, char *err, size_t errlen);

/* cmprouter send: one exchange on a loop of its own, blocking. HTTP: a CMP
 * answer with any status is taken, *status_r says which (RFC 9811 3.1).
 * TCP: finRep is an end without a CMP answer (*ans_r NULL). CMPR_OK, or
 * CMPR_ERR_* with err[]. */
int cmpr_http_send(const char *url, const unsigned char *der, size_t len, long timeout_ms, const char *tls_ca,
                   const char *tls_cert, const char *tls_key, int *status_r, unsigned char **ans_r, size_t *len_r,
                   char *err, size_t errlen);
int cmpr_tcp_send(const char *url, int rfc2510, const unsigned char *der, size_t len, long timeout_ms,
                  unsigned char **ans_r, size_t *len_r, char *err, size_t errlen);

/* offline media: the answer taken off the medium must look like one DER
 * PKIMessage within the cap; 0, or -1 with err[] */
int cmpr_client_check_der(const unsigned char *rsp, size_t len, char *err, size_t errlen);

#endif
