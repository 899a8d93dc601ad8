/* The bounded buffer (buf.h). Storage grows by doubling up to the cap; bytes
 * consumed from the front are reclaimed by moving the rest down when room is
 * needed, so a long-lived connection buffer never creeps upwards. */
#include "base/buf.h"
#include "base/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
cmpr_buf_init(struct cmpr_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void
cmpr_buf_free(struct cmpr_buf *b)
{
    size_t max = b->max;

    free(b->d);
    cmpr_buf_init(b, max);
}

void
cmpr_buf_reset(struct cmpr_buf *b)
{
    b->off = b->len = 0;
}

size_t
cmpr_buf_len(const struct cmpr_buf *b)
{
    return b->len - b->off;
}

const unsigned char *
cmpr_buf_ptr(const struct cmpr_buf *b)
{
    return b->d != NULL ? b->d + b->off : NULL;
}

unsigned char *
cmpr_buf_mutable_ptr(struct cmpr_buf *b)
{
    return b->d != NULL ? b->d + b->off : NULL;
}

size_t
cmpr_buf_avail(const struct cmpr_buf *b)
{
    return b->max - cmpr_buf_len(b);
}

/* room for need more bytes after len */
static int
make_room(struct cmpr_buf *b, size_t need)
{
    size_t held = b->len - b->off, want, na;
    unsigned char *nd;

    if (need > b->max - held)
        return CMPR_ERR_TOO_LARGE;
    if (b->alloc - b->len >= need)
        return CMPR_OK;
    if (b->off > 0) {
        /* reclaim what was consumed before growing */
        memmove(b->d, b->d + b->off, held);
        b->len = held;
        b->off = 0;
        if (b->alloc - b->len >= need)
            return CMPR_OK;
    }
    want = held + need;
    na = b->alloc > 0 ? b->alloc : 256;
    while (na < want)
        na = na > SIZE_MAX / 2 ? want : na * 2;
    if (na > b->max + 1)
        na = b->max + 1 > want ? b->max + 1 : want;    /* +1: room for steal()'s NUL */
    if ((nd = realloc(b->d, na)) == NULL)
        return CMPR_ERR_ALLOC;
    b->d = nd;
    b->alloc = na;
    return CMPR_OK;
}

int
cmpr_buf_reserve(struct cmpr_buf *b, size_t len, unsigned char **p_r)
{
    int r = make_room(b, len);

    *p_r = r == CMPR_OK ? b->d + b->len : NULL;
    return r;
}

void
cmpr_buf_commit(struct cmpr_buf *b, size_t n)
{
    if (n > b->alloc - b->len)
        n = b->alloc - b->len;
    b->len += n;
}

int
cmpr_buf_put(struct cmpr_buf *b, const void *data, size_t len)
{
    unsigned char *p;
    int r;

    if (len == 0)
        return CMPR_OK;
    if ((r = cmpr_buf_reserve(b, len, &p)) != CMPR_OK)
        return r;
    memcpy(p, data, len);
    b->len += len;
    return CMPR_OK;
}

int
cmpr_buf_put_u8(struct cmpr_buf *b, uint8_t v)
{
    return cmpr_buf_put(b, &v, 1);
}

int
cmpr_buf_put_u32(struct cmpr_buf *b, uint32_t v)
{
    unsigned char x[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };

    return cmpr_buf_put(b, x, sizeof(x));
}

int
cmpr_buf_vputf(struct cmpr_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    char small[256], *tmp = small;
    int n, r;

    va_copy(ap2, ap);
    n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return CMPR_ERR_INVALID_ARG;
    if ((size_t)n > cmpr_buf_avail(b))
        return CMPR_ERR_TOO_LARGE;
    if ((size_t)n >= sizeof(small)) {
        if ((tmp = malloc((size_t)n + 1)) == NULL)
            return CMPR_ERR_ALLOC;
        vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    }
    r = cmpr_buf_put(b, tmp, (size_t)n);
    if (tmp != small)
        free(tmp);
    return r;
}

int
cmpr_buf_putf(struct cmpr_buf *b, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = cmpr_buf_vputf(b, fmt, ap);
    va_end(ap);
    return r;
}

int
cmpr_buf_get_bytes(struct cmpr_buf *b, size_t len, const unsigned char **p_r)
{
    if (cmpr_buf_len(b) < len)
        return CMPR_ERR_TRUNCATED;
    *p_r = b->d != NULL ? b->d + b->off : (const unsigned char *)"";
    b->off += len;
    if (b->off == b->len)
        b->off = b->len = 0;
    return CMPR_OK;
}

int
cmpr_buf_get_u8(struct cmpr_buf *b, uint8_t *v_r)
{
    const unsigned char *p;
    int r = cmpr_buf_get_bytes(b, 1, &p);

    if (r == CMPR_OK)
        *v_r = p[0];
    return r;
}

int
cmpr_buf_get_u32(struct cmpr_buf *b, uint32_t *v_r)
{
    const unsigned char *p;
    int r = cmpr_buf_get_bytes(b, 4, &p);

    if (r == CMPR_OK)
        *v_r = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return r;
}

void
cmpr_buf_consume(struct cmpr_buf *b, size_t n)
{
    const unsigned char *p;

    if (n > cmpr_buf_len(b))
        n = cmpr_buf_len(b);
    (void)cmpr_buf_get_bytes(b, n, &p);
}

unsigned char *
cmpr_buf_dup(const struct cmpr_buf *b, size_t *len_r)
{
    size_t n = cmpr_buf_len(b);
    unsigned char *c = malloc(n + 1);

    if (c == NULL)
        return NULL;
    if (n > 0)
        memcpy(c, b->d + b->off, n);
    c[n] = '\0';
    if (len_r != NULL)
        *len_r = n;
    return c;
}

unsigned char *
cmpr_buf_steal(struct cmpr_buf *b, size_t *len_r)
{
    size_t n = cmpr_buf_len(b);
    unsigned char *c;

    if (b->off > 0 || b->d == NULL || b->alloc < n + 1) {
        c = cmpr_buf_dup(b, len_r);
        if (c != NULL)
            cmpr_buf_free(b);
        return c;
    }
    c = b->d;
    c[n] = '\0';
    if (len_r != NULL)
        *len_r = n;
    b->d = NULL;
    b->alloc = 0;
    b->off = b->len = 0;
    return c;
}

int
cmpr_buf_read_from(struct cmpr_buf *b, ssize_t (*rd)(void *src, void *p, size_t n), void *src)
{
    for (;;) {
        unsigned char *p;
        size_t room = cmpr_buf_avail(b);
        ssize_t n;
        int r;

        if (room == 0) {
            /* full: one more byte tells a stream that fits exactly from a longer one */
            unsigned char extra;

            n = rd(src, &extra, 1);
            return n == 0 ? CMPR_OK : n > 0 ? CMPR_ERR_TOO_LARGE : CMPR_ERR_IO;
        }
        if ((r = cmpr_buf_reserve(b, room < 65536 ? room : 65536, &p)) != CMPR_OK)
            return r;
        if ((n = rd(src, p, room < 65536 ? room : 65536)) < 0)
            return CMPR_ERR_IO;
        if (n == 0)
            return CMPR_OK;
        cmpr_buf_commit(b, (size_t)n);
    }
}

static ssize_t
fd_read(void *src, void *p, size_t n)
{
    ssize_t r;

    do {
        r = read(*(int *)src, p, n);
    } while (r < 0 && errno == EINTR);
    return r;
}

int
cmpr_buf_read_fd(struct cmpr_buf *b, int fd)
{
    return cmpr_buf_read_from(b, fd_read, &fd);
}

int
cmpr_array_grow(void *v, size_t *cap, size_t n, size_t elem, size_t max)
{
    void **vp = v;
    size_t nc;
    void *nv;

    if (n <= *cap)
        return CMPR_OK;
    if (n > max || elem == 0 || n > SIZE_MAX / elem)
        return CMPR_ERR_TOO_LARGE;
    nc = *cap > 0 ? *cap : 8;
    while (nc < n)
        nc = nc > max / 2 ? max : nc * 2;
    if ((nv = realloc(*vp, nc * elem)) == NULL)
        return CMPR_ERR_ALLOC;
    *vp = nv;
    *cap = nc;
    return CMPR_OK;
}

static int
hex_digit(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

int
cmpr_unhex(const char *s, unsigned char *out, size_t cap, size_t *len_r)
{
    size_t n = 0, len;

    if (strncmp(s, "0x", 2) == 0)
        s += 2;
    len = strlen(s);
    if (len == 0 || len % 2 != 0 || len / 2 > cap)
        return -1;
    for (; *s != '\0'; s += 2) {
        int hi = hex_digit(s[0]), lo = hex_digit(s[1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[n++] = (unsigned char)(hi << 4 | lo);
    }
    *len_r = n;
    return 0;
}
