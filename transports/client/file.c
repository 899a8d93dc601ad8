/* file:OUTDIR,INDIR as a client (RFC 9483 6.4): the request is written to
 * OUTDIR (atomically, synced), its answer NAME.rsp.pki taken from INDIR. */
#include "transports/client/client.h"
#include "transports/lib/fsutil.h"
#include "codec/dropname.h"
#include "core/config.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_set {
    char *out, *in;                     /* requests go to out, answers come from in */
};

static void
release(void *ctx, void *set)
{
    struct file_set *s = set;

    (void)ctx;
    free(s->out);
    free(s->in);
    free(s);
}

/* "A,B" into two strings */
static int
split_pair(const char *s, char **a, char **b)
{
    const char *c = strchr(s, ',');

    *a = *b = NULL;
    if (c == NULL || c == s || c[1] == '\0')
        return -1;
    *a = strndup(s, (size_t)(c - s));
    *b = strdup(c + 1);
    return *a != NULL && *b != NULL ? 0 : -1;
}

static int
is_dir(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
configure(void *ctx, const struct cmpr_conf_group *g, const char *uri, long timeout_ms, void **set_r, char **err_r)
{
    struct file_set *s = calloc(1, sizeof(*s));

    (void)ctx;
    (void)timeout_ms;
    *set_r = NULL;
    if (s == NULL)
        return CMPR_ERR_ALLOC;
    if (strncmp(uri, "file:", 5) != 0 || split_pair(uri + 5, &s->out, &s->in) != 0) {
        *err_r = cmpr_conf_group_error(g, "upstream", "file: needs two folders: file:OUTDIR,INDIR (requests go to "
                                       "OUTDIR, answers are taken from INDIR), not '%s'", uri);
        release(NULL, s);
        return CMPR_ERR_CONFIG;
    }
    if (!is_dir(s->out) || !is_dir(s->in)) {
        *err_r = cmpr_conf_group_error(g, "upstream", "file: %s is not a folder", !is_dir(s->out) ? s->out : s->in);
        release(NULL, s);
        return CMPR_ERR_CONFIG;
    }
    *set_r = s;
    return CMPR_OK;
}

static int
send_file(void *ctx, void *set, const char *name, const unsigned char *req, size_t len, char *key, size_t keylen,
          char *err, size_t errlen)
{
    struct file_set *s = set;
    char tmp[300], path[4096];

    (void)ctx;
    if (!is_dir(s->out) || !is_dir(s->in)) {
        snprintf(err, errlen, "file: %s is not a folder", !is_dir(s->out) ? s->out : s->in);
        return CMPR_ERR_UNREACHABLE;
    }
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    if (cmpr_drop_answer_name(name, 1, key, keylen) != 0 || cmpr_fs_join(path, sizeof(path), s->in, "", key) != 0) {
        snprintf(err, errlen, "file name too long");
        return CMPR_ERR_UNREACHABLE;
    }
    (void)unlink(path);             /* a stale answer of an earlier run under this name */
    if (cmpr_fs_write_durable(s->out, tmp, name, req, len, 0644) != 0) {
        snprintf(err, errlen, "cannot write %s/%s: %s", s->out, name, strerror(errno));
        return CMPR_ERR_UNREACHABLE;
    }
    return CMPR_OK;
}

static int
collect(void *ctx, void *set, const char *key, unsigned char **rsp_r, size_t *rsp_len_r, char *err, size_t errlen)
{
    struct file_set *s = set;
    char path[4096];
    struct stat st, st2;

    (void)ctx;
    if (cmpr_fs_join(path, sizeof(path), s->in, "", key) != 0 || lstat(path, &st) != 0)
        return 0;
    cmpr_nap_ms(50);            /* a writer that does not rename: let it finish */
    if (lstat(path, &st2) != 0 || st2.st_size != st.st_size)
        return 0;
    if (cmpr_fs_read(path, CMPR_MAX_MSG_SIZE, 0, rsp_r, rsp_len_r) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    (void)unlink(path);
    return 1;                   /* taken: the caller judges the bytes */
}

static const char *const schemes[] = { "file", NULL };
static const char *const directives[] = { NULL };

const struct cmpr_upstream_ops cmpr_file_upstream = {
    .schemes = schemes,
    .offline = 1,
    .directives = directives,
    .configure = configure,
    .release = release,
    .send = send_file,
    .collect = collect,
};
