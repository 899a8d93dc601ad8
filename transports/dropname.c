/* Naming and content rules of the folder transports (see dropname.h). */
#include "transports/dropname.h"
#include "codec/msg.h"

#include <fnmatch.h>
#include <stdio.h>
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
