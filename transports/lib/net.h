/* What every socket transport needs: HOST:PORT parsing, peer names, binding
 * a listener. Loop thread only. */
#ifndef CMPR_NETUTIL_H
#define CMPR_NETUTIL_H

#include <stddef.h>

#include <uv.h>

/* "127.0.0.1:829", "[::1]:829" -> host, port. 0 or -1. */
int cmpr_net_parse_address(const char *v, char *host, size_t hlen, int *port);
/* "ip:port" / "[ip6]:port" of the connected peer into buf ("?" if unknown) */
void cmpr_net_peer_name(uv_tcp_t *t, char *buf, size_t len);
/* A non-blocking listening socket on host:*port (SO_REUSEADDR, backlog
 * 511) in *fd_r; *port becomes the port actually bound (for port 0). On
 * failure *err_r says "WHAT: cannot listen on HOST:PORT: reason". */
int cmpr_net_listen(const char *what, const char *host, int *port, int *fd_r, char **err_r);
/* read buffers for uv_read_start: at most 64 KiB, freed by the read callback */
void cmpr_net_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* "host[:port]" or "[v6addr][:port]" at p: host into host[], *port set when
 * given (else left as the scheme's default); returns what follows ("" or
 * "/path"), or NULL if malformed. */
const char *cmpr_net_parse_authority(const char *p, char *host, size_t hlen, int *port);

#endif
