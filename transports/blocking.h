/* Blocking socket helpers shared by the HTTP and TCP clients. */
#ifndef CMPR_BLOCKING_H
#define CMPR_BLOCKING_H

#include <stddef.h>

/* CLOCK_MONOTONIC in milliseconds: deadlines are now + timeout */
long cmpr_blk_now_ms(void);
/* 1 when fd is ready for ev (POLLIN/POLLOUT) before deadline, else 0 */
int cmpr_blk_wait_fd(int fd, short ev, long deadline);
/* A non-blocking, close-on-exec socket connected to host:port before
 * deadline, or -1 with err[] saying why. */
int cmpr_blk_connect(const char *host, int port, long deadline, char *err, size_t errlen);
/* "host[:port]" or "[v6addr][:port]" at p: host into host[], *port set when
 * given (else left as the scheme's default); returns what follows ("" or
 * "/path"), or NULL if malformed. */
const char *cmpr_blk_parse_authority(const char *p, char *host, size_t hlen, int *port);

#endif
