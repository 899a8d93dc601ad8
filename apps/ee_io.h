/* How the EE client carries one request to its server and brings back the
 * answer, over any medium (cmprouter(1), --server URI):
 *   http://host[:port]/path, https://...   RFC 9811 POST
 *   tcp://host[:port]                       TCP-Message (port 829 style)
 *   file:OUTDIR,INDIR                       request file out, answer file in
 *   sftp://user@host[:port]/IN,OUT          the same in remote folders (SSH)
 *   mailto:ca@example.org                   mail by SMTP, reply from a Maildir
 * Blocking, bounded by the timeout. */
#ifndef CMPR_EE_IO_H
#define CMPR_EE_IO_H

#include <stddef.h>

struct cmpr_ee_io_opts {
    long timeout_ms;                    /* one exchange: request out .. answer in */
    const char *tls_ca, *tls_cert, *tls_key;    /* https */
    int tcp_version;                    /* 10 or 0 (RFC 2510 framing) */
    const char *ssh_identity, *ssh_known_hosts; /* sftp (defaults under ~/.ssh) */
    const char *smtp;                   /* mailto: relay host[:port] (default 127.0.0.1:25) */
    int smtp_starttls;                  /* CMPR_SMTP_TLS_* */
    const char *smtp_user, *smtp_secret;
    const char *mail_from;              /* mailto: our address (needed) */
    const char *maildir;                /* mailto: where the replies arrive (needed) */
    const char *name_prefix;            /* file and part names: PREFIX-TID-N.pki */
};

struct cmpr_ee_io;

/* Checks the URI and what its medium needs; NULL with err[] set. */
struct cmpr_ee_io *cmpr_ee_io_new(const char *uri, const struct cmpr_ee_io_opts *o, char *err,
                                  size_t errlen);
/* One round trip; *rsp_r malloc()ed. 0, or -1 with err[] set (transport
 * trouble: nothing came back in time). tag names the transaction in file
 * and mail names (hex transactionID). */
int cmpr_ee_io_exchange(struct cmpr_ee_io *io, const char *tag, const unsigned char *req,
                        size_t len, unsigned char **rsp_r, size_t *rsp_len_r, char *err,
                        size_t errlen);
void cmpr_ee_io_free(struct cmpr_ee_io *io);

#endif
