/* What every transport shares (transport.h). */
#include "transports/transport.h"
#include "core/core.h"
#include "core/envelope.h"
#include "base/err.h"

#include <stdio.h>
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

int
cmpr_transports_core(const struct cmpr_conf *conf, struct cmpr_ioloop *cl, struct cmpr_core **core_r, char **err_r)
{
    struct cmpr_core *core = NULL;
    int r;

    *core_r = NULL;
    if ((r = cmpr_core_new(conf, &core, err_r)) != CMPR_OK)
        return r;
    for (const struct cmpr_transport_ops *const *t = cmpr_transports; *t != NULL && r == CMPR_OK; t++) {
        if ((*t)->upstream != NULL)
            r = cmpr_core_add_upstream(core, (*t)->upstream, (*t)->upstream->offline ? NULL : (void *)cl);
        if (r == CMPR_OK && (*t)->push != NULL)
            r = cmpr_core_add_pusher(core, (*t)->push, NULL);
    }
    if (r == CMPR_OK)
        r = cmpr_core_start(core, err_r);
    if (r != CMPR_OK) {
        cmpr_core_free(core);
        return r;
    }
    *core_r = core;
    return CMPR_OK;
}

/* ---------------- a call on this thread ---------------- */

struct sync_reply {
    struct cmpr_reply reply;            /* first */
    unsigned char *out;
    size_t len;
    int err;
};

static void
sync_send(struct cmpr_reply *r, const unsigned char *der, size_t len)
{
    struct sync_reply *s = (struct sync_reply *)r;

    if ((s->out = malloc(len > 0 ? len : 1)) == NULL) {
        s->err = CMPR_ERR_ALLOC;
        return;
    }
    memcpy(s->out, der, len);
    s->len = len;
    s->err = CMPR_OK;
}

static void
sync_fail(struct cmpr_reply *r, int err)
{
    ((struct sync_reply *)r)->err = err;
}

static const struct cmpr_reply_ops sync_ops = { sync_send, sync_fail };

int
cmpr_transport_call(struct cmpr_core *core, const struct cmpr_call *call, const unsigned char *der, size_t len,
                    unsigned char **out_r, size_t *out_len_r)
{
    struct sync_reply s = { { &sync_ops }, NULL, 0, CMPR_ERR_INTERNAL };
    struct cmpr_envelope *env = cmpr_envelope_new(der, len, &s.reply);

    *out_r = NULL;
    *out_len_r = 0;
    if (env == NULL)
        return CMPR_ERR_ALLOC;
    cmpr_envelope_set(env, CMPR_ENV_MEDIUM, call->medium);
    cmpr_envelope_set(env, CMPR_ENV_PEER, call->peer);
    cmpr_envelope_set(env, CMPR_ENV_LABEL, call->label);
    cmpr_envelope_set_resumed(env, call->resumed);
    if (call->push != NULL)
        cmpr_envelope_set_push(env, call->push_medium, call->push);
    if (call->mac_budget != NULL)
        cmpr_envelope_set_mac_budget(env, call->mac_budget);
    cmpr_core_submit(core, env);        /* answered before it returns */
    if (s.err == CMPR_OK) {
        *out_r = s.out;
        *out_len_r = s.len;
    }
    return s.err;
}

/* ---------------- push addresses ---------------- */

int
cmpr_push_pack(char *out, size_t outlen, const char *const *fields, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + o, outlen - o, "%zu:%s", strlen(fields[i]), fields[i]);

        if (w < 0 || (size_t)w >= outlen - o)
            return -1;
        o += (size_t)w;
    }
    return 0;
}

int
cmpr_push_unpack(const char *in, const char **fields, size_t n, char *store, size_t storelen)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char *end;
        unsigned long l = strtoul(in, &end, 10);

        if (end == in || *end != ':' || strnlen(end + 1, l) < l || o + l + 1 > storelen)
            return -1;
        memcpy(store + o, end + 1, l);
        store[o + l] = '\0';
        fields[i] = store + o;
        o += l + 1;
        in = end + 1 + l;
    }
    return *in == '\0' ? 0 : -1;
}
