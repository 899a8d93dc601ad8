/* cmprouter bench: a closed-loop CMP load generator (cmprouter(1) BENCH). */
#ifndef CMPR_APPS_BENCH_H
#define CMPR_APPS_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "codec/asn1.h"

/* argv[0] is "bench"; returns the exit code (0 measured, 1 nothing
 * succeeded, 2 usage or set-up) */
int cmpr_bench_main(int argc, char **argv);

/* The crypto bound (bound.c): threads run whole transactions like tmpl
 * (ir, cr, p10cr or genm, its POP made) with cr's protection on both sides,
 * in memory, for seconds. 0, or -1 when it could not start. */
struct cmpr_client_creds;
struct cmpr_bound_opts {
    long threads, seconds;
    const struct cmpr_client_creds *cr;
    const CMPR_PKIMESSAGE *tmpl;
};
struct cmpr_bound_result {
    uint64_t start, end;                /* ns, monotonic */
    unsigned long done, fails;
    uint32_t *lat;                      /* µs per transaction (malloc()ed) */
    size_t n_lat, cap_lat;
};
int cmpr_bench_bound(const struct cmpr_bound_opts *o, struct cmpr_bound_result *res);

/* A request of the template's with a copy of its header and its body lent
 * (key and proof of possession made before the clock; a copy of the body
 * would decode its public key again, which costs more than the
 * transaction's MACs); cmpr_bench_lent_free frees it, not the body. */
CMPR_PKIMESSAGE *cmpr_bench_lend(const CMPR_PKIMESSAGE *tmpl);
void cmpr_bench_lent_free(CMPR_PKIMESSAGE *m, const CMPR_PKIMESSAGE *tmpl);

#endif
