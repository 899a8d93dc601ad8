/* The EE client's way to a CMP server over any medium (cmprouter(1),
 * --server URI): the same client sides the router's upstream routes use
 * (client.h), driven here one exchange at a time, blocking, bounded by the
 * timeout:
 *   http://host[:port]/path, https://...   RFC 9811 POST
 *   tcp://host[:port]                       TCP-Message (port 829 style)
 *   file:OUTDIR,INDIR                       request file out, answer file in
 *   sftp://user@host[:port]/IN,OUT          the same in remote folders (SSH)
 *   mailto:ca@example.org                   mail by SMTP, reply from a Maildir */
#ifndef CMPR_OUTBOUND_H
#define CMPR_OUTBOUND_H

#include <stddef.h>

#include "core/upstream.h"

struct cmpr_out_opts {
    long timeout_ms;                    /* one exchange: request out .. answer in */
    const char *tls_ca, *tls_cert, *tls_key;    /* https; tls_ca also for SMTP's STARTTLS */
    int tcp_version;                    /* 10 or 0 (RFC 2510 framing) */
    const char *ssh_identity, *ssh_known_hosts; /* sftp (defaults under ~/.ssh) */
    const char *smtp;                   /* mailto: relay host[:port] (default 127.0.0.1:25) */
    int smtp_starttls;                  /* CMPR_SMTP_TLS_* */
    const char *smtp_user, *smtp_secret;
    const char *mail_from;              /* mailto: our address (needed) */
    const char *maildir;                /* mailto: where the replies arrive (needed) */
    const char *name_prefix;            /* file and part names: PREFIX-TID-N.pki */
    int no_keep_alive;                  /* http(s): a new connection for every message */
};

struct cmpr_out;

/* Checks the URI and what its medium needs; NULL with err[] set. */
struct cmpr_out *cmpr_out_new(const char *uri, const struct cmpr_out_opts *o, char *err, size_t errlen);
/* One round trip: the request out, its answer back (*rsp_r malloc()ed).
 * tag names the transaction (hex transactionID): in file and mail names,
 * and HTTP keeps the connection for the transaction's next message.
 * CMPR_OK, or CMPR_ERR_UNREACHABLE (it did not go out), CMPR_ERR_TIMEOUT
 * (no answer in time), CMPR_ERR_PEER (no CMP answer) with err[] set. */
int cmpr_out_exchange(struct cmpr_out *io, const char *tag, const unsigned char *req, size_t len,
                      unsigned char **rsp_r, size_t *rsp_len_r, char *err, size_t errlen);
void cmpr_out_free(struct cmpr_out *io);

/* Many exchanges at once on the medium's loop (online media only; the load
 * generator): starts one and returns; done(arg, ...) follows on this thread
 * while cmpr_out_run runs. CMPR_OK, or CMPR_ERR_* (done is not called). */
int cmpr_out_start(struct cmpr_out *io, const char *tag, const unsigned char *req, size_t len,
                   cmpr_upstream_done_fn done, void *arg);
/* Runs the loop until *stop is set or nothing is left to wait for;
 * tick(arg) every every_ms meanwhile (every_ms > 0). */
void cmpr_out_run(struct cmpr_out *io, const int *stop, long every_ms, void (*tick)(void *arg), void *arg);

#endif
