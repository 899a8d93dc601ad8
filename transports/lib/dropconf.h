/* What every folder transport (local file drop, remote SFTP/SCP folders)
 * reads from its configuration group, and the crash points of their tests. */
#ifndef CMPR_DROPCONF_H
#define CMPR_DROPCONF_H

#include <stddef.h>

struct cmpr_conf_group;

/* Directives every folder transport has: pattern, label, settle_ms,
 * max_size, mode, instance. */
struct cmpr_drop_conf {
    char *pattern;                      /* space-separated globs */
    char *label;                        /* profile label, or NULL */
    char instance[128];                 /* this daemon's processing subfolder */
    long settle_ms, max_size;
    unsigned mode;                      /* of files written */
};
/* Reads them from g; the default instance is the host name and a hash of
 * the configuration path and salt. 0, or CMPR_ERR_* with *err_r. */
int cmpr_drop_configure(const struct cmpr_conf_group *g, const char *salt,
                        struct cmpr_drop_conf *c, char **err_r);
void cmpr_drop_conf_free(struct cmpr_drop_conf *c);
/* g's instance directive (a plain name), or the default: the host name and
 * a hash of the configuration path and salt. 0, or CMPR_ERR_CONFIG. */
int cmpr_conf_instance(const struct cmpr_conf_group *g, const char *salt, char *out, size_t cap, char **err_r);

/* Test hook for the crash tests: when the environment variable
 * CMPR_TEST_CRASH_AT names this point ("claimed", "handled", "answered",
 * "retired", "published"), the process kills itself with SIGKILL there. */
void cmpr_drop_crash_point(const char *point);

#endif
