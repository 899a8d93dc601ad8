/* TLS 1.2/1.3 over memory BIOs, driven by libuv reads. */
#include "transports/lib/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct cmpr_tls_server {
    SSL_CTX *ctx;
};

struct cmpr_tls_conn {
    SSL_CTX *own_ctx;               /* client connections own their context */
    SSL *ssl;
    BIO *rbio, *wbio;       /* network side: in (from peer), out (to peer) */
    char subject[256];
    int failed;
};

static char *
ssl_err(const char *what, const char *path)
{
    char buf[512], e[256] = "";
    unsigned long code = ERR_get_error();

    if (code != 0)
        ERR_error_string_n(code, e, sizeof(e));
    snprintf(buf, sizeof(buf), "tls: %s %s%s%s", what, path != NULL ? path : "", e[0] ? ": " : "", e);
    ERR_clear_error();
    return strdup(buf);
}

int
cmpr_tls_server_new(const char *cert, const char *key, const char *client_ca, int require_client,
                    int min_version_13, const char *ciphers, struct cmpr_tls_server **srv_r,
                    char **err_r)
{
    struct cmpr_tls_server *srv = calloc(1, sizeof(*srv));

    *srv_r = NULL;
    if (srv == NULL || (srv->ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        free(srv);
        *err_r = ssl_err("cannot create a context", NULL);
        return -1;
    }
    SSL_CTX_set_min_proto_version(srv->ctx, min_version_13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(srv->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(srv->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (SSL_CTX_set_cipher_list(srv->ctx, ciphers != NULL ? ciphers : CMPR_TLS12_CIPHERS) != 1) {
        *err_r = ssl_err("no usable TLS 1.2 cipher in tls_ciphers", ciphers);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(srv->ctx, cert) != 1) {
        *err_r = ssl_err("cannot read the certificate chain", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(srv->ctx, key, SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(srv->ctx) != 1) {
        *err_r = ssl_err("cannot use the private key", key);
        goto fail;
    }
    if (client_ca != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);

        if (SSL_CTX_load_verify_locations(srv->ctx, client_ca, NULL) != 1 || names == NULL) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            *err_r = ssl_err("cannot read client CA certificates", client_ca);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(srv->ctx, names);
        SSL_CTX_set_verify(srv->ctx, SSL_VERIFY_PEER
                           | (require_client ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    }
    *srv_r = srv;
    return 0;
 fail:
    SSL_CTX_free(srv->ctx);
    free(srv);
    return -1;
}

void
cmpr_tls_server_free(struct cmpr_tls_server *srv)
{
    if (srv == NULL)
        return;
    SSL_CTX_free(srv->ctx);
    free(srv);
}

struct cmpr_tls_conn *
cmpr_tls_conn_new(struct cmpr_tls_server *srv)
{
    struct cmpr_tls_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->ssl = SSL_new(srv->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        SSL_free(c->ssl);
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        free(c);
        return NULL;
    }
    BIO_set_mem_eof_return(c->rbio, -1);    /* "no data yet", not EOF */
    SSL_set_bio(c->ssl, c->rbio, c->wbio);  /* the SSL owns both now */
    SSL_set_accept_state(c->ssl);
    return c;
}

void
cmpr_tls_conn_free(struct cmpr_tls_conn *c)
{
    if (c == NULL)
        return;
    SSL_free(c->ssl);
    SSL_CTX_free(c->own_ctx);
    free(c);
}

struct cmpr_tls_conn *
cmpr_tls_client_new(const char *ca_file, const char *host, const char *cert, const char *key,
                    char **err_r)
{
    struct cmpr_tls_server tmp;
    struct cmpr_tls_conn *c = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    *err_r = NULL;
    if (ctx == NULL) {
        *err_r = ssl_err("cannot create a context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if ((ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
        *err_r = ssl_err("cannot load trust anchors", ca_file);
        goto fail;
    }
    if (cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
                         || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)) {
        *err_r = ssl_err("cannot use the client certificate", cert);
        goto fail;
    }
    tmp.ctx = ctx;
    if ((c = cmpr_tls_conn_new(&tmp)) == NULL) {
        *err_r = strdup("tls: out of memory");
        goto fail;
    }
    c->own_ctx = ctx;
    SSL_set_connect_state(c->ssl);
    /* check the name (or address) and send SNI for names */
    if (SSL_set1_host(c->ssl, host) != 1) {
        *err_r = ssl_err("bad host name", host);
        cmpr_tls_conn_free(c);
        return NULL;
    }
    if (strspn(host, "0123456789.:") != strlen(host))
        SSL_set_tlsext_host_name(c->ssl, host);
    return c;
 fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int
cmpr_tls_handshake(struct cmpr_tls_conn *c)
{
    int n, e;

    if (c->failed)
        return -1;
    if (SSL_is_init_finished(c->ssl))
        return 1;
    n = SSL_do_handshake(c->ssl);
    if (n == 1)
        return 1;
    e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    c->failed = 1;
    return -1;
}

int
cmpr_tls_feed(struct cmpr_tls_conn *c, const void *data, size_t len)
{
    if (c->failed)
        return -1;
    return BIO_write(c->rbio, data, (int)len) == (int)len ? 0 : -1;
}

static void
note_peer(struct cmpr_tls_conn *c)
{
    X509 *peer;

    if (c->subject[0] != '\0' || !SSL_is_init_finished(c->ssl))
        return;
    if ((peer = SSL_get1_peer_certificate(c->ssl)) != NULL) {
        if (SSL_get_verify_result(c->ssl) == X509_V_OK) {
            BIO *mem = BIO_new(BIO_s_mem());
            char *p = NULL;
            long n;

            if (mem != NULL) {
                X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0,
                                   XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
                n = BIO_get_mem_data(mem, &p);
                snprintf(c->subject, sizeof(c->subject), "%.*s", (int)(n > 0 ? n : 0),
                         p != NULL ? p : "");
                BIO_free(mem);
            }
        }
        X509_free(peer);
    }
}

long
cmpr_tls_read(struct cmpr_tls_conn *c, void *buf, size_t cap)
{
    int n, e;

    if (c->failed)
        return -1;
    n = SSL_read(c->ssl, buf, (int)cap);
    note_peer(c);
    if (n > 0)
        return n;
    e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    c->failed = 1;
    ERR_clear_error();
    return -1;
}

int
cmpr_tls_write(struct cmpr_tls_conn *c, const void *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        int n = SSL_write(c->ssl, (const char *)data + off, (int)(len - off));

        if (n <= 0) {
            c->failed = 1;
            ERR_clear_error();
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

size_t
cmpr_tls_take_output(struct cmpr_tls_conn *c, char **out_r)
{
    size_t n = BIO_ctrl_pending(c->wbio);
    char *buf;

    *out_r = NULL;
    if (n == 0 || (buf = malloc(n)) == NULL)
        return 0;
    if (BIO_read(c->wbio, buf, (int)n) != (int)n) {
        free(buf);
        return 0;
    }
    *out_r = buf;
    return n;
}

const char *
cmpr_tls_peer_subject(struct cmpr_tls_conn *c)
{
    return c->subject;
}

const char *
cmpr_tls_verify_error(struct cmpr_tls_conn *c)
{
    long v = SSL_get_verify_result(c->ssl);

    return v != X509_V_OK ? X509_verify_cert_error_string(v) : NULL;
}
