/* The asynchronous face of the core: envelopes go through the libuv thread
 * pool so crypto and storage never block the loop that moves bytes. */
#include "core/envelope.h"
#include "core/core.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cmpr_envelope *
cmpr_envelope_new(unsigned char *der, size_t len, const char *medium, const char *peer,
                  const char *label, const char *operation, struct cmpr_reply *reply)
{
    struct cmpr_envelope *env = calloc(1, sizeof(*env));

    if (env == NULL) {
        free(der);
        return NULL;
    }
    env->der = der;
    env->len = len;
    snprintf(env->medium, sizeof(env->medium), "%s", medium != NULL ? medium : "");
    snprintf(env->peer, sizeof(env->peer), "%s", peer != NULL ? peer : "");
    snprintf(env->label, sizeof(env->label), "%s", label != NULL ? label : "");
    snprintf(env->operation, sizeof(env->operation), "%s", operation != NULL ? operation : "");
    env->reply = reply;
    return env;
}

static void
work_cb(uv_work_t *w)
{
    struct cmpr_envelope *env = w->data;
    struct cmpr_request_info info = {
        env->medium, env->peer, env->label[0] ? env->label : NULL,
        env->operation[0] ? env->operation : NULL,
        env->tls_subject[0] ? env->tls_subject : NULL, env->resumed, NULL
    };

    env->result = cmpr_core_handle(env->core, &info, env->der, env->len, &env->out, &env->out_len);
}

static void
after_cb(uv_work_t *w, int status)
{
    struct cmpr_envelope *env = w->data;

    if (status == 0 && env->result == CMPR_OK)
        env->reply->ops->send(env->reply, env->out, env->out_len);
    else
        env->reply->ops->fail(env->reply, status != 0 ? CMPR_ERR_INTERNAL : env->result);
    free(env->out);
    free(env->der);
    free(env);
}

void
cmpr_core_submit(struct cmpr_core *core, uv_loop_t *loop, struct cmpr_envelope *env)
{
    env->core = core;
    env->work.data = env;
    env->start_ns = uv_hrtime();
    if (uv_queue_work(loop, &env->work, work_cb, after_cb) != 0) {
        env->reply->ops->fail(env->reply, CMPR_ERR_INTERNAL);
        free(env->der);
        free(env);
    }
}
