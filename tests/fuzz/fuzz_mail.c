/* libFuzzer target for the mail intake (transports/mailmsg.c): any bytes as
 * a mail, parsed with small limits; when it yields an address, the reply is
 * built too (header values from the hostile mail go into it). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "codec/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct cmpr_mail_limits lim = { 64 * 1024, 20, 6, 16 * 1024 };
    struct cmpr_mail_in m;
    struct cmpr_mail_answer a[2];
    unsigned char *out = NULL;
    size_t out_len = 0, n = 0;

    if (cmpr_mail_parse(data, size, &lim, &m) != 0)
        return 0;
    for (size_t i = 0; i < m.n_parts && n < 2; i++, n++) {
        a[n].der = m.parts[i].der;
        a[n].len = m.parts[i].len;
        a[n].name = m.parts[i].name;
        a[n].text = m.parts[i].problem;
    }
    if (m.from[0] != '\0' && cmpr_mail_build_reply(&m, "ca@example.com", a, n, m.problem, &out, &out_len) == 0)
        free(out);
    cmpr_mail_in_free(&m);
    return 0;
}
