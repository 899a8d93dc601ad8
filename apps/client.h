/* The EE client commands of cmprouter(1): ir cr kur p10cr rr genm poll finish. */
#ifndef CMPR_APPS_CLIENT_H
#define CMPR_APPS_CLIENT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "codec/asn1.h"

int cmpr_client_is_command(const char *cmd);
/* argv[0] is the command; returns the exit code (see client.c) */
int cmpr_client_main(int argc, char **argv);

/* a secret given as "pass:TEXT" or "env:VAR" (keeps it out of the process
 * list), or NULL */
const char *cmpr_client_secret(const char *spec);

/* a new key: ec:P-256|P-384|P-521, rsa:2048|3072|4096, ed25519, ed448; NULL if unknown */
EVP_PKEY *cmpr_client_gen_key(const char *spec);
/* "/CN=a/O=b" (openssl style) or "CN=a,O=b"; NULL if it is not a name */
X509_NAME *cmpr_client_parse_name(const char *s);
/* the certificates of path (PEM or DER) as a trust store, or NULL */
X509_STORE *cmpr_client_load_trusted(const char *path);

/* How an EE protects its requests and checks the answers: the client
 * commands and the load generator (bench.c). */
struct cmpr_client_creds {
    const char *secret, *ref;           /* MAC with this shared secret, senderKID ref */
    int pbmac1;                         /* PBMAC1 rather than PasswordBasedMac */
    const char *sender;                 /* MAC: the sender name (not in certConf), or NULL */
    const char *recipient;              /* the recipient name, or NULL */
    EVP_PKEY *sigkey;                   /* else a signature with this key, */
    X509 *sigcert;                      /* this certificate (sender, senderKID) */
    STACK_OF(X509) *extracerts;         /* and its chain */
    X509_STORE *trusted;                /* signed answers chain to these, */
    X509 *srvcert;                      /* or are signed by this certificate */
    /* MAC keys derived checking answers, for a server that keeps its salt
     * for a while (cmprouterd does): the next answer's key is not derived
     * again; NULL: none. Requests get a random salt each, as OpenSSL's do. */
    struct cmpr_mac_cache *verify_cache;
};
/* Sets recipient, sender and senderKID, then the protection. 0, or -1. */
int cmpr_client_protect(const struct cmpr_client_creds *c, CMPR_PKIMESSAGE *m);
/* The answer's protection (RFC 9483 3.2, 3.5): a MAC with our secret, or a
 * signature by a certificate that chains to trusted (or is srvcert). 0, or
 * -1 with why[]. */
int cmpr_client_verify(const struct cmpr_client_creds *c, const CMPR_PKIMESSAGE *rsp, char *why, size_t wlen);
/* The same; a MAC is checked over pp, the ProtectedPart as received
 * (cmpr_msg_decode_lean), when pp is not NULL. */
int cmpr_client_verify_over(const struct cmpr_client_creds *c, const CMPR_PKIMESSAGE *rsp,
                            const unsigned char *pp, size_t pp_len, char *why, size_t wlen);

#endif
