/* libFuzzer target for what the folder transports parse from untrusted
 * servers and sites (transports/dropname.c): the SCP fallback's remote
 * listing, the SCP file header, a batch script's results, file names (answer and alternative names,
 * printable form, patterns) and the content check of a request file. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/dropname.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cmpr_drop_entry *e = NULL, ready[64];
    size_t n = 0, sz, nr;
    char line[300], buf[300], why[400];
    volatile size_t sink = 0;

    if (cmpr_drop_parse_listing(data, size, data[0 % (size ? size : 1)] & 1, 64, &e, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            sink += strlen(e[i].name);
            (void)cmpr_drop_answer_name(e[i].name, (int)(i % 3) + 1, buf, sizeof(buf));
            (void)cmpr_drop_alt_name(e[i].name, (int)(i % 3) + 1, buf, sizeof(buf));
            cmpr_drop_printable(e[i].name, buf, sizeof(buf));
            sink += (size_t)cmpr_drop_ignored(e[i].name) + (size_t)cmpr_drop_matches("*.pki *.der", e[i].name);
        }
        (void)cmpr_drop_settle(NULL, 0, e, n, 0, 1, ready, &nr);
        cmpr_drop_entries_free(e, n);
    }
    n = size < sizeof(line) - 1 ? size : sizeof(line) - 1;
    memcpy(line, data, n);
    line[n] = '\0';
    if (cmpr_drop_parse_scp_header(line, &sz) == 0)
        sink += sz;
    {
        char word[16];
        long long num[16];
        unsigned char seen[16] = { 0 };

        sink += cmpr_drop_parse_results(data, size, 16, word, num, seen);
        for (int i = 0; i < 16; i++)
            if (seen[i])
                sink += (size_t)word[i] + (size_t)num[i];
    }
    sink += (size_t)cmpr_drop_check(data, size, 1024 * 1024, why, sizeof(why));
    (void)sink;
    return 0;
}
