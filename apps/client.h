/* The EE client commands of cmprouter(1): ir cr kur p10cr rr genm poll finish. */
#ifndef CMPR_APPS_CLIENT_H
#define CMPR_APPS_CLIENT_H

int cmpr_client_is_command(const char *cmd);
/* argv[0] is the command; returns the exit code (see client.c) */
int cmpr_client_main(int argc, char **argv);

/* a secret given as "pass:TEXT" or "env:VAR" (keeps it out of the process
 * list), or NULL */
const char *cmpr_client_secret(const char *spec);

/* a new key: ec:P-256|P-384|P-521, rsa:2048|3072|4096, ed25519, ed448; NULL if unknown */
#include <openssl/evp.h>
EVP_PKEY *cmpr_client_gen_key(const char *spec);

#endif
