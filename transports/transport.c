/* What every transport shares (transport.h). */
#include "transports/transport.h"
#include "base/err.h"

#include <stdlib.h>
#include <string.h>

const struct cmpr_transport_ops *const cmpr_transports[] = {
    &cmpr_http_transport,
    &cmpr_tcp_transport,
    &cmpr_filedrop_transport,
    &cmpr_sftp_transport,
    &cmpr_mail_transport,
    NULL
};

const struct cmpr_transport_ops *
cmpr_transport_for(const struct cmpr_conf_group *g)
{
    for (const struct cmpr_transport_ops *const *t = cmpr_transports; *t != NULL; t++) {
        if (strcmp((*t)->group_type, g->type) != 0)
            continue;
        if ((*t)->group_names == NULL)
            return *t;
        for (const char *const *n = (*t)->group_names; *n != NULL; n++)
            if (strcmp(*n, g->name) == 0)
                return *t;
    }
    return NULL;
}

int
cmpr_transports_check_groups(const struct cmpr_conf *conf, char **err_r)
{
    for (size_t i = 0; i < conf->n_groups; i++) {
        const struct cmpr_conf_group *g = &conf->groups[i];
        char list[512] = "";

        if (strcmp(g->type, "route") == 0 || cmpr_transport_for(g) != NULL)
            continue;
        for (const struct cmpr_transport_ops *const *t = cmpr_transports; *t != NULL; t++) {
            const char *const *n = (*t)->group_names;

            for (; n != NULL && *n != NULL; n++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s[%s%s%s]", list[0] ? ", " : "",
                         (*t)->group_type, strcmp(*n, (*t)->group_type) != 0 ? " " : "",
                         strcmp(*n, (*t)->group_type) != 0 ? *n : "");
            if ((*t)->group_names == NULL)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s[%s NAME]", list[0] ? ", " : "",
                         (*t)->group_type);
        }
        *err_r = cmpr_conf_group_error(g, NULL, "unknown group [%s%s%s] (groups of this daemon: [router], "
                                       "[ca NAME], [profile NAME], [client NAME], [route NAME], %.400s)",
                                       g->type, strcmp(g->type, g->name) != 0 ? " " : "",
                                       strcmp(g->type, g->name) != 0 ? g->name : "", list);
        return CMPR_ERR_CONFIG;
    }
    return CMPR_OK;
}

int
cmpr_transport_no_port(void *ctx)
{
    (void)ctx;
    return 0;
}

int
cmpr_transport_no_address(void *ctx, const char *addr)
{
    (void)ctx;
    return addr == NULL ? 0 : -1;
}
