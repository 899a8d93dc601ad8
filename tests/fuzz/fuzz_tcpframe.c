/* libFuzzer target for the TCP-Message frame parser (codec/tcpframe.c): the
 * first byte picks a split size; the rest is fed in pieces of that size and
 * every frame is drained after each piece, as the TCP transport does. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec/tcpframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cmpr_tcp_parser p;
    struct cmpr_tcp_frame f;
    size_t step, off = 1, total = 0;
    volatile unsigned sink = 0;

    if (size < 1)
        return 0;
    step = (size_t)data[0] % 17 + 1;
    cmpr_tcp_parser_init(&p, 4096);
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        enum cmpr_tcp_status st;

        if (cmpr_tcp_feed(&p, data + off, n) != 0)
            break;
        off += n;
        while ((st = cmpr_tcp_next(&p, &f)) == CMPR_TCP_FRAME) {
            /* touch every byte the parser says is ours */
            for (size_t i = 0; i < f.value_len; i++)
                sink += f.value[i];
            total += f.value_len;
            if (total > size)
                __builtin_trap();       /* more value bytes than input: a framing bug */
        }
        if (st != CMPR_TCP_NEED_MORE)
            break;
    }
    cmpr_tcp_parser_free(&p);
    /* one-shot parse of the whole input as an HTTP -poll body */
    if (cmpr_tcp_parse_one(data, size, &f) == CMPR_TCP_FRAME && f.value_len + 5 > size)
        __builtin_trap();
    (void)sink;
    return 0;
}
