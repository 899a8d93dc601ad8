/* A bounded byte buffer (OpenSSH sshbuf style): its size cap is fixed when it
 * is set up, and every untrusted byte stream (HTTP and TCP connections, mail,
 * files read from a drop folder or over SSH, state files) goes through one.
 * Growing past the cap is an error, never a silent truncation. Arrays grow
 * through cmpr_array_grow: there is no hand-written realloc outside buf.c. */
#ifndef CMPR_BASE_BUF_H
#define CMPR_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cmpr_buf {
    unsigned char *d;
    size_t off;                 /* bytes consumed from the front */
    size_t len;                 /* bytes written (off..len is what is held) */
    size_t alloc;
    size_t max;                 /* the cap: at most this many bytes held */
};

/* An empty buffer that will hold at most max bytes (nothing allocated yet). */
void cmpr_buf_init(struct cmpr_buf *b, size_t max);
/* Frees the storage; the buffer is empty again (same cap). */
void cmpr_buf_free(struct cmpr_buf *b);
/* Empties the buffer, keeping its storage. */
void cmpr_buf_reset(struct cmpr_buf *b);

/* Bytes held, and where they start (NULL when none was ever added). */
size_t cmpr_buf_len(const struct cmpr_buf *b);
const unsigned char *cmpr_buf_ptr(const struct cmpr_buf *b);
unsigned char *cmpr_buf_mutable_ptr(struct cmpr_buf *b);
/* Room left under the cap. */
size_t cmpr_buf_avail(const struct cmpr_buf *b);

/* Appends; CMPR_ERR_TOO_LARGE past the cap (nothing appended), CMPR_ERR_ALLOC. */
int cmpr_buf_put(struct cmpr_buf *b, const void *data, size_t len);
int cmpr_buf_put_u8(struct cmpr_buf *b, uint8_t v);
int cmpr_buf_put_u32(struct cmpr_buf *b, uint32_t v);          /* big endian */
/* Appends formatted text (no NUL stored); CMPR_ERR_TOO_LARGE when it does not fit. */
int cmpr_buf_putf(struct cmpr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cmpr_buf_vputf(struct cmpr_buf *b, const char *fmt, va_list ap);
/* Room for len more bytes at *p_r; cmpr_buf_commit(b, n) then takes n <= len of them. */
int cmpr_buf_reserve(struct cmpr_buf *b, size_t len, unsigned char **p_r);
void cmpr_buf_commit(struct cmpr_buf *b, size_t n);

/* Typed reads from the front: CMPR_ERR_TRUNCATED when fewer bytes are held
 * (nothing consumed then). */
int cmpr_buf_get_u8(struct cmpr_buf *b, uint8_t *v_r);
int cmpr_buf_get_u32(struct cmpr_buf *b, uint32_t *v_r);       /* big endian */
/* *p_r points at the next len bytes inside the buffer, which are consumed. */
int cmpr_buf_get_bytes(struct cmpr_buf *b, size_t len, const unsigned char **p_r);
/* Drops n bytes from the front (at most what is held). */
void cmpr_buf_consume(struct cmpr_buf *b, size_t n);

/* Hands the bytes held to the caller as malloc()ed memory with a NUL after
 * them (so text can be used as a string); the buffer is empty afterwards.
 * NULL only when allocation fails. */
unsigned char *cmpr_buf_steal(struct cmpr_buf *b, size_t *len_r);
/* A malloc()ed, NUL-terminated copy of the bytes held; the buffer keeps them. */
unsigned char *cmpr_buf_dup(const struct cmpr_buf *b, size_t *len_r);

/* Reads fd to its end into b: CMPR_OK, CMPR_ERR_TOO_LARGE when the stream is
 * longer than the cap allows (what was read stays), CMPR_ERR_IO (errno set). */
int cmpr_buf_read_fd(struct cmpr_buf *b, int fd);
/* The same from any source: rd(src, p, n) gives up to n bytes, 0 at the
 * end, or < 0 on an error (CMPR_ERR_IO). */
int cmpr_buf_read_from(struct cmpr_buf *b, ssize_t (*rd)(void *src, void *p, size_t n), void *src);

/* Makes room for n elements of elem bytes in the array *v of *cap elements
 * (doubling; at most max elements): CMPR_OK, CMPR_ERR_TOO_LARGE, CMPR_ERR_ALLOC
 * (*v and *cap unchanged on error). */
int cmpr_array_grow(void *v, size_t *cap, size_t n, size_t elem, size_t max);

/* Hexadecimal (optionally "0x"-prefixed, even length, at most cap bytes)
 * into out: 0, or -1 for anything else. */
int cmpr_unhex(const char *s, unsigned char *out, size_t cap, size_t *len_r);

#endif
