/* TLS over memory BIOs (h2o lib/common/socket.c style): ciphertext read from
 * libuv is fed in, plaintext comes out, and what OpenSSL wants to send is
 * taken out and written by the caller. Never SSL_set_fd. */
#ifndef CMPR_TLS_H
#define CMPR_TLS_H

#include <stddef.h>

struct cmpr_tls_server;
struct cmpr_tls_conn;

/* TLS 1.2 suites offered unless configured: forward secrecy and AEAD only
 * (no static RSA key exchange, no CBC with SHA-1); TLS 1.3's are all AEAD */
#define CMPR_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

/* cert/key/chain are PEM files; client_ca (may be NULL) enables client
 * certificate authentication, required when require_client is set;
 * ciphers: OpenSSL's cipher list for TLS 1.2 (NULL: CMPR_TLS12_CIPHERS). */
int cmpr_tls_server_new(const char *cert, const char *key, const char *client_ca,
                        int require_client, int min_version_13, const char *ciphers,
                        struct cmpr_tls_server **srv_r, char **err_r);
void cmpr_tls_server_free(struct cmpr_tls_server *srv);

struct cmpr_tls_conn *cmpr_tls_conn_new(struct cmpr_tls_server *srv);
/* A client connection that verifies the server against ca_file (NULL: the
 * system store) and host (name or IP); cert/key: optional client identity. */
struct cmpr_tls_conn *cmpr_tls_client_new(const char *ca_file, const char *host,
                                          const char *cert, const char *key, char **err_r);
/* 1 when the handshake is complete, 0 in progress, -1 failed */
int cmpr_tls_handshake(struct cmpr_tls_conn *c);
/* Why a client handshake failed (certificate verification), or NULL. */
const char *cmpr_tls_verify_error(struct cmpr_tls_conn *c);
void cmpr_tls_conn_free(struct cmpr_tls_conn *c);

/* Feeds ciphertext; then call cmpr_tls_read until it returns 0. -1: fatal. */
int cmpr_tls_feed(struct cmpr_tls_conn *c, const void *data, size_t len);
/* Plaintext out: >0 bytes, 0 nothing (more input needed), -1 fatal or closed. */
long cmpr_tls_read(struct cmpr_tls_conn *c, void *buf, size_t cap);
/* Encrypts plaintext; -1 on failure. */
int cmpr_tls_write(struct cmpr_tls_conn *c, const void *data, size_t len);
/* Takes what must go to the peer (malloc()ed, caller frees); 0 if none. */
size_t cmpr_tls_take_output(struct cmpr_tls_conn *c, char **out_r);
/* The client certificate's subject (RFC 2253) once verified, or "". */
const char *cmpr_tls_peer_subject(struct cmpr_tls_conn *c);

#endif
