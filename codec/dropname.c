/* Naming and content rules of the folder transports (see dropname.h). */
#include "codec/dropname.h"
#include "base/buf.h"
#include "codec/msg.h"
#include "base/err.h"
#include "base/limits.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

static int
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

int
cmpr_drop_ignored(const char *name)
{
    return name[0] == '.' || ends_with(name, ".tmp") || ends_with(name, ".part")
           || ends_with(name, "~");
}

int
cmpr_drop_matches(const char *patterns, const char *name)
{
    char pat[256];
    const char *p = patterns;

    while (*p != '\0') {
        size_t n = strcspn(p, " \t,");

        if (n > 0 && n < sizeof(pat)) {
            memcpy(pat, p, n);
            pat[n] = '\0';
            if (fnmatch(pat, name, FNM_PERIOD) == 0)
                return 1;
        }
        p += n;
        p += strspn(p, " \t,");
    }
    return 0;
}

/* stem and extension (".pki", ".der" or "") */
static size_t
stem_len(const char *name, const char **ext)
{
    size_t n = strlen(name);

    *ext = "";
    if (ends_with(name, ".pki") || ends_with(name, ".der")) {
        *ext = name + n - 4;
        return n - 4;
    }
    return n;
}

int
cmpr_drop_answer_name(const char *name, int n, char *buf, size_t len)
{
    const char *ext;
    int stem = (int)stem_len(name, &ext), r;

    r = n > 1 ? snprintf(buf, len, "%.*s.%d.rsp.pki", stem, name, n)
              : snprintf(buf, len, "%.*s.rsp.pki", stem, name);
    return r > 0 && (size_t)r < len ? 0 : -1;
}

int
cmpr_drop_alt_name(const char *name, int n, char *buf, size_t len)
{
    const char *ext;
    int stem = (int)stem_len(name, &ext), r;

    r = n > 1 ? snprintf(buf, len, "%.*s.%d%s", stem, name, n, ext) : snprintf(buf, len, "%s", name);
    return r > 0 && (size_t)r < len ? 0 : -1;
}

void
cmpr_drop_printable(const char *name, char *buf, size_t len)
{
    size_t i = 0;

    if (len == 0)
        return;
    for (; name[i] != '\0' && i + 1 < len; i++) {
        unsigned char c = (unsigned char)name[i];

        buf[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    buf[i] = '\0';
}

int
cmpr_drop_check(const unsigned char *data, size_t len, size_t max, char *why, size_t wlen)
{
    CMPR_PKIMESSAGE *m = NULL;
    struct cmpr_decode_err e = { 0, "" };

    if (len == 0) {
        snprintf(why, wlen, "empty file");
        return -1;
    }
    if (len > max) {
        snprintf(why, wlen, "larger than max_size (%zu bytes)", max);
        return -1;
    }
    if (cmpr_msg_decode(data, len, &m, &e) != 0) {
        snprintf(why, wlen, "not a DER PKIMessage (RFC 9483 6.4): offset %zu: expected %s",
                 e.offset, e.what);
        return -1;
    }
    CMPR_PKIMESSAGE_free(m);
    return 0;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cmpr_drop_entry *)a)->name, ((const struct cmpr_drop_entry *)b)->name);
}

static int
age_cmp(const void *a, const void *b)
{
    const struct cmpr_drop_entry *x = a, *y = b;

    if (x->mtime_ns != y->mtime_ns)
        return x->mtime_ns < y->mtime_ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

long
cmpr_drop_settle(const struct cmpr_drop_entry *prev, size_t n_prev, struct cmpr_drop_entry *now,
                 size_t n_now, long settle_ms, uint64_t now_ms, struct cmpr_drop_entry *ready,
                 size_t *n_ready)
{
    long wait = -1;

    *n_ready = 0;
    if (n_now > 1)
        qsort(now, n_now, sizeof(*now), name_cmp);
    for (size_t i = 0; i < n_now; i++) {
        const struct cmpr_drop_entry *p = n_prev > 0
                                          ? bsearch(&now[i], prev, n_prev, sizeof(*prev), name_cmp) : NULL;

        now[i].since = p != NULL && p->size == now[i].size && p->mtime_ns == now[i].mtime_ns
                       && p->ino == now[i].ino ? p->since : now_ms;
        if (now_ms - now[i].since >= (uint64_t)settle_ms) {
            ready[(*n_ready)++] = now[i];
        } else {
            long left = (long)((uint64_t)settle_ms - (now_ms - now[i].since));

            if (wait < 0 || left < wait)
                wait = left;
        }
    }
    if (*n_ready > 1)
        qsort(ready, *n_ready, sizeof(*ready), age_cmp);
    return wait;
}

void
cmpr_drop_entries_free(struct cmpr_drop_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

int
cmpr_drop_parse_listing(const unsigned char *buf, size_t len, int skip_dirs, size_t max,
                        struct cmpr_drop_entry **out, size_t *n_out)
{
    struct cmpr_drop_entry *v = NULL;
    size_t n = 0, cap = 0;

    *out = NULL;
    *n_out = 0;
    for (size_t off = 0; off < len && n < max; ) {
        const char *rec = (const char *)buf + off, *sp1, *sp2, *end;
        size_t rl = strnlen(rec, len - off);
        long long size;

        off += rl + 1;
        /* "T SIZE NAME": one type letter, a decimal size, a non-empty name */
        if (rl < 5 || rec[1] != ' ' || strchr("fdlo", rec[0]) == NULL)
            continue;
        sp1 = rec + 1;
        if ((sp2 = memchr(sp1 + 1, ' ', rl - 2)) == NULL || sp2 == sp1 + 1
                || (size_t)(sp2 + 1 - rec) >= rl)
            continue;
        /* digits only, within the record (it need not end in a NUL) */
        size = 0;
        for (end = sp1 + 1; end < sp2 && *end >= '0' && *end <= '9' && size < (1LL << 50); end++)
            size = size * 10 + (*end - '0');
        if (end != sp2)
            continue;
        if (skip_dirs && rec[0] == 'd')
            continue;
        if (cmpr_array_grow(&v, &cap, n + 1, sizeof(*v), max) != CMPR_OK) {
            cmpr_drop_entries_free(v, n);
            return -1;
        }
        v[n].name = strndup(sp2 + 1, rl - (size_t)(sp2 + 1 - rec));
        if (v[n].name == NULL) {
            cmpr_drop_entries_free(v, n);
            return -1;
        }
        v[n].size = size;
        v[n].mtime_ns = 0;      /* the shell gives no cheap mtime: size alone must settle */
        v[n].ino = 0;
        v[n].since = 0;
        n++;
    }
    *out = v;
    *n_out = n;
    return 0;
}

int
cmpr_drop_parse_scp_header(const char *line, size_t *size)
{
    const char *p = line + 1;
    char *end;
    unsigned long long v;

    if (line[0] != 'C')
        return -1;
    for (int i = 0; i < 4; i++, p++)
        if (*p < '0' || *p > '7')
            return -1;
    if (*p++ != ' ' || *p < '0' || *p > '9')
        return -1;
    errno = 0;
    v = strtoull(p, &end, 10);
    if (errno != 0 || *end != ' ' || end[1] == '\0' || v > (unsigned long long)SIZE_MAX)
        return -1;
    *size = (size_t)v;
    return 0;
}

/* one decimal number of at most 15 digits at p (up to end): its end, or NULL */
static const unsigned char *
dec(const unsigned char *p, const unsigned char *end, long long *v)
{
    long long x = 0;
    int digits = 0;

    while (p < end && *p >= '0' && *p <= '9' && digits < 16) {
        x = x * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || digits > 15)
        return NULL;
    *v = x;
    return p;
}

size_t
cmpr_drop_parse_results(const unsigned char *buf, size_t len, size_t n, char *word, long long *num,
                        unsigned char *seen)
{
    const unsigned char *p = buf, *end = buf + len;
    size_t taken = 0;

    while (p < end) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p)), *q;
        const unsigned char *le = nl != NULL ? nl : end;
        long long idx, v;
        char w;

        q = dec(p, le, &idx);
        p = nl != NULL ? nl + 1 : end;
        if (q == NULL || q + 2 >= le || *q != ' ' || q[1] <= ' ' || q[1] > '~' || q[2] != ' '
                || idx < 0 || (unsigned long long)idx >= n)
            continue;
        w = (char)q[1];
        if ((q = dec(q + 3, le, &v)) == NULL || q != le)
            continue;
        word[idx] = w;
        num[idx] = v;
        seen[idx] = 1;
        taken++;
    }
    return taken;
}
