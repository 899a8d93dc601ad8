/* The folder transports' common directives (dropconf.h). */
#include "transports/lib/dropconf.h"
#include "core/config.h"
#include "base/err.h"
#include "base/limits.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
cmpr_drop_crash_point(const char *point)
{
    const char *at = getenv("CMPR_TEST_CRASH_AT");

    if (at != NULL && strcmp(at, point) == 0)
        raise(SIGKILL);
}

int
cmpr_conf_instance(const struct cmpr_conf_group *g, const char *salt, char *out, size_t cap, char **err_r)
{
    const char *v;
    char host[64] = "localhost";
    unsigned long h = 5381;

    /* the processing subfolder of this daemon: two daemons on one shared
     * inbox never take each other's claimed files for crash leftovers */
    if ((v = cmpr_conf_group_get(g, "instance")) != NULL) {
        if (*v == '\0' || strchr(v, '/') != NULL || v[0] == '.' || strlen(v) >= 64) {
            *err_r = cmpr_conf_group_error(g, "instance", "instance must be a plain name");
            return CMPR_ERR_CONFIG;
        }
        snprintf(out, cap, "%s", v);
        return CMPR_OK;
    }
    (void)gethostname(host, sizeof(host) - 1);
    for (const char *p = g->path != NULL ? g->path : ""; *p; p++)
        h = h * 33 + (unsigned char)*p;
    for (const char *p = salt; *p; p++)
        h = h * 33 + (unsigned char)*p;
    for (char *p = host; *p; p++)
        if (*p == '/' || *p == '.')
            *p = '_';
    snprintf(out, cap, "%s-%08lx", host, h & 0xffffffffUL);
    return CMPR_OK;
}

int
cmpr_drop_configure(const struct cmpr_conf_group *g, const char *salt, struct cmpr_drop_conf *c,
                    char **err_r)
{
    const char *v;
    char *end;
    int r;

    c->pattern = strdup((v = cmpr_conf_group_get(g, "pattern")) != NULL ? v : "*.pki *.der");
    c->label = (v = cmpr_conf_group_get(g, "label")) != NULL ? strdup(v) : NULL;
    if (c->pattern == NULL)
        return CMPR_ERR_ALLOC;
    if ((r = cmpr_conf_group_long(g, "settle_ms", 500, 10, 600000, &c->settle_ms, err_r))
            || (r = cmpr_conf_group_long(g, "max_size", CMPR_MAX_MSG_SIZE, 1024, 16 * 1024 * 1024,
                                         &c->max_size, err_r)))
        return r;
    c->mode = 0640;
    if ((v = cmpr_conf_group_get(g, "mode")) != NULL) {
        unsigned long m = strtoul(v, &end, 8);

        if (*v == '\0' || *end != '\0' || m > 0777) {
            *err_r = cmpr_conf_group_error(g, "mode", "mode must be octal like 0640, not '%s'", v);
            return CMPR_ERR_CONFIG;
        }
        c->mode = (unsigned)m;
    }
    return cmpr_conf_instance(g, salt, c->instance, sizeof(c->instance), err_r);
}

void
cmpr_drop_conf_free(struct cmpr_drop_conf *c)
{
    free(c->pattern);
    free(c->label);
    c->pattern = c->label = NULL;
}
