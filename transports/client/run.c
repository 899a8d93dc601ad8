/* One exchange of an online medium on a loop of its own, blocking (the
 * command line): the loop runs on this thread until the exchange ends. */
#include "transports/client/client.h"
#include "transports/lib/ioloop.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
cmpr_client_waited(void *arg, int result, unsigned char *ans, size_t len, const char *why)
{
    struct cmpr_client_wait *w = arg;

    w->result = result;
    w->ans = ans;
    w->len = len;
    snprintf(w->why, sizeof(w->why), "%s", why != NULL ? why : "");
    w->done = 1;
}

int
cmpr_client_run(int (*start)(struct cmpr_ioloop *l, void *arg, struct cmpr_client_wait *w), void *arg,
                unsigned char **ans_r, size_t *len_r, char *err, size_t errlen)
{
    struct cmpr_ioloop *l = NULL;
    struct cmpr_client_wait w;
    int r;

    memset(&w, 0, sizeof(w));
    *ans_r = NULL;
    *len_r = 0;
    if (cmpr_ioloop_new(0, &l) != 0) {
        snprintf(err, errlen, "cannot make an event loop");
        return CMPR_ERR_INTERNAL;
    }
    if ((r = start(l, arg, &w)) == CMPR_OK) {
        cmpr_ioloop_run_until(l, &w.done);
        r = w.done ? w.result : CMPR_ERR_INTERNAL;
    }
    cmpr_ioloop_free(l);
    if (r != CMPR_OK) {
        snprintf(err, errlen, "%s", w.why[0] ? w.why : cmpr_strerror(r));
        free(w.ans);
        return r;
    }
    *ans_r = w.ans;
    *len_r = w.len;
    return CMPR_OK;
}
