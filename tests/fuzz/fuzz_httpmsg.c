/* libFuzzer target for the HTTP readers (codec/httpmsg.c): the first byte
 * picks a split size and the mode; the rest is fed as requests (answered one
 * at a time, as the HTTP transport does) and as an answer (as the client
 * side does). Every DER the reader hands out must lie inside its body. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec/httpmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct cmpr_http_alias aliases[] = { { "/a", "lab" }, { "/b", NULL } };

static void
requests(const uint8_t *data, size_t size, size_t step, int admin)
{
    struct cmpr_httpreq_conf conf = { 2048, 4096, admin, aliases, 2 };
    struct cmpr_httpreq r;
    size_t off = 0;
    volatile unsigned sink = 0;

    cmpr_httpreq_init(&r, &conf);
    while (off < size) {
        size_t n = size - off < step ? size - off : step, used = 0;
        enum cmpr_httpreq_event ev = cmpr_httpreq_feed(&r, (const char *)data + off, n, &used);

        if (used > n)
            __builtin_trap();
        off += used;
        if (ev == CMPR_HTTPREQ_REJECT)
            break;
        if (ev == CMPR_HTTPREQ_REQUEST) {
            const unsigned char *b = cmpr_buf_ptr(&r.body);

            if (!admin) {
                if (r.der == NULL || r.der < b || r.der + r.der_len > b + cmpr_buf_len(&r.body))
                    __builtin_trap();
                for (size_t i = 0; i < r.der_len; i++)
                    sink += r.der[i];
            }
            cmpr_httpreq_next(&r);
        } else if (ev == CMPR_HTTPREQ_NEED_MORE && used == 0 && n > 0) {
            __builtin_trap();       /* took nothing, asked for more: a stall */
        }
    }
    cmpr_httpreq_free(&r);
    (void)sink;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cmpr_httprsp a;
    const char *why;
    size_t step, off = 1;

    if (size < 1)
        return 0;
    step = (size_t)(data[0] & 0x3f) + 1;
    requests(data + 1, size - 1, step, data[0] & 0x40);
    cmpr_httprsp_init(&a, 4096);
    while (off < size && !a.done) {
        size_t n = size - off < step ? size - off : step;

        if (cmpr_httprsp_feed(&a, (const char *)data + off, n, 0, &why) != 0)
            break;
        off += n;
    }
    if (!a.done)
        (void)cmpr_httprsp_feed(&a, NULL, 0, 1, &why);
    if (cmpr_buf_len(&a.body) > 4096)
        __builtin_trap();
    cmpr_httprsp_free(&a);
    return 0;
}
