/* Monotonic time and short sleeps for code that waits for a medium (the
 * forwarder, the client side of the transports, the EE client). */
#ifndef CMPR_BASE_CLOCK_H
#define CMPR_BASE_CLOCK_H

#include <errno.h>
#include <time.h>

static inline long
cmpr_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sleeps ms (the whole time, even when a signal interrupts it) */
static inline void
cmpr_nap_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#endif
