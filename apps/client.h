/* The EE client commands of cmprouter(1): ir cr kur p10cr rr genm poll finish. */
#ifndef CMPR_APPS_CLIENT_H
#define CMPR_APPS_CLIENT_H

int cmpr_client_is_command(const char *cmd);
/* argv[0] is the command; returns the exit code (see client.c) */
int cmpr_client_main(int argc, char **argv);

/* a secret given as "pass:TEXT" or "env:VAR" (keeps it out of the process
 * list), or NULL */
const char *cmpr_client_secret(const char *spec);

#endif
