/* cmprouter's core commands: process and the store administration. */
#ifndef CMPR_APPS_ADMIN_H
#define CMPR_APPS_ADMIN_H

#include <stddef.h>

typedef int cmpr_read_all_fn(const char *path, unsigned char **buf_r, size_t *len_r, size_t cap);

int cmpr_admin_is_command(const char *name);
/* argv[0] is the command; conf may be NULL (then -c must follow the command) */
int cmpr_admin_main(const char *conf, int argc, char **argv, cmpr_read_all_fn *read_all);

#endif
