/* A blocking CMP-over-TCP client (TCP-Message version 10 or RFC 2510
 * framing, cmp-wire.md 1) for worker threads and the command line. */
#ifndef CMPR_TCP_CLIENT_H
#define CMPR_TCP_CLIENT_H

#include <stddef.h>

struct cmpr_tcp_client_opts {
    long timeout_ms;                /* whole exchange, polling included; 0: 30 s */
    size_t max_response;            /* 0: 1 MiB */
    int version;                    /* 10 (default) or 0 for RFC 2510 framing */
    int max_polls;                  /* transport-level pollReq rounds; 0: 20 */
};

/* Parses "tcp://host[:port]" (default port 829); 0 or -1. */
int cmpr_tcp_parse_url(const char *url, char *host, size_t hlen, int *port);

/* Sends der as pkiReq and waits for the answer: pkiRep (type 5, or type 0 as
 * cryptlib sends it) gives *answer_r (malloc()ed); finRep gives *answer_r
 * NULL and *len_r 0 (no CMP answer applies); pollRep is followed with
 * pollReq after the check-back time (reconnecting, with backoff, if the
 * server closed). errorMsgRep aborts with its code and text in err[] (it is
 * unauthenticated: never acted on beyond that). Returns 0 or -1. */
int cmpr_tcp_exchange(const char *url, const unsigned char *der, size_t len,
                      const struct cmpr_tcp_client_opts *opts, unsigned char **answer_r,
                      size_t *len_r, char *err, size_t errlen);

#endif
