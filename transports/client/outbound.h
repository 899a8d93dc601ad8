/* The client side of every medium: how the EE client (cmprouter(1),
 * --server URI) and the router's upstream routes ([route] upstream = URI)
 * carry one request to a CMP server and bring back its answer:
 *   http://host[:port]/path, https://...   RFC 9811 POST
 *   tcp://host[:port]                       TCP-Message (port 829 style)
 *   file:OUTDIR,INDIR                       request file out, answer file in
 *   sftp://user@host[:port]/IN,OUT          the same in remote folders (SSH)
 *   mailto:ca@example.org                   mail by SMTP, reply from a Maildir
 * Blocking, bounded by the timeout. */
#ifndef CMPR_OUTBOUND_H
#define CMPR_OUTBOUND_H

#include <stddef.h>

struct cmpr_out_opts {
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

struct cmpr_out;

/* Checks the URI and what its medium needs; NULL with err[] set. */
struct cmpr_out *cmpr_out_new(const char *uri, const struct cmpr_out_opts *o, char *err,
                                  size_t errlen);
enum { CMPR_OUT_ANSWER = 0, CMPR_OUT_SENT = 1, CMPR_OUT_FAILED = -1, CMPR_OUT_TIMEOUT = -2 };

/* 1 for the media whose answers come later (file, sftp, mail) */
int cmpr_out_offline(const struct cmpr_out *io);
/* Sends der, called name where the medium names things (files, mail parts).
 * HTTP and TCP wait for the answer (timeout_ms; 0: the one in the options):
 * ANSWER with *rsp_r, FAILED (it could not go out, or the server failed
 * without a CMP answer), TIMEOUT (it went out, no answer in time). File,
 * SFTP and mail: SENT, and key[] is what to collect the answer by; or
 * FAILED. err[] says why. */
int cmpr_out_start(struct cmpr_out *io, const char *name, const unsigned char *der, size_t len,
                   long timeout_ms, char *key, size_t keylen, unsigned char **rsp_r,
                   size_t *rsp_len_r, char *err, size_t errlen);
/* An offline medium's answer for key: 1 with *rsp_r (the bytes as they came,
 * at most 1 MiB, taken off the medium: the caller decodes and judges them;
 * empty for a reply mail without a CMP part), 0 not yet, -1 trouble
 * reaching the medium. */
int cmpr_out_collect(struct cmpr_out *io, const char *key, unsigned char **rsp_r,
                     size_t *rsp_len_r, char *err, size_t errlen);
/* One round trip (start, then collect until the timeout); *rsp_r
 * malloc()ed. 0, or -1 with err[] set (transport trouble: nothing came
 * back in time). tag names the transaction in file and mail names (hex
 * transactionID). */
int cmpr_out_exchange(struct cmpr_out *io, const char *tag, const unsigned char *req,
                        size_t len, unsigned char **rsp_r, size_t *rsp_len_r, char *err,
                        size_t errlen);
void cmpr_out_free(struct cmpr_out *io);

#endif
