/* A dedicated thread for a transport whose medium can block for long:
 * folders that may sit on NFS or a slow USB stick, SSH sessions to a dead
 * server. Such work never runs on the loop and never holds one of the
 * thread pool's few workers (which the HTTP and TCP requests need).
 *
 * The loop thread kicks the worker (a file event, the rescan timer); the
 * worker runs one cycle at a time and wakes the loop through a uv_async when
 * it has something to report (metrics) or when it has stopped. */
#ifndef CMPR_WORKER_H
#define CMPR_WORKER_H

#include <uv.h>

struct cmpr_core;
struct cmpr_daemon;
struct cmpr_worker;

/* One cycle on the worker thread with the core current at the last kick.
 * Returns the milliseconds after which to run again even without a kick
 * (files still being written), or -1 to wait for the next kick. A last call
 * with core NULL, on the same thread, lets the transport release what the
 * thread holds (an SSH session) before the thread ends. */
typedef long (*cmpr_worker_cycle_fn)(struct cmpr_worker *w, struct cmpr_core *core, void *arg);

struct cmpr_worker {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    uv_async_t async;               /* worker -> loop */
    uv_timer_t timer;               /* loop: kicks every interval_ms */
    struct cmpr_daemon *d;
    int kicked, stop, exited, started, handles;
    long interval_ms;
    struct cmpr_core *core;         /* set by the loop at each kick */
    cmpr_worker_cycle_fn cycle;
    const char *medium;             /* for the daemon's metrics: "file", "sftp" */
    struct { int ok; uint64_t ns; } results[256];  /* under mu, until the loop takes them */
    size_t n_results;
    size_t in_flight;               /* under mu */
    void (*done)(void *arg);        /* loop thread, once stopped */
    void *done_arg;
    void (*cut)(void *arg);         /* loop thread: ends the cycle's waits (stop_within) */
    void *cut_arg;
    void *arg;
};

/* Starts the thread; it runs a first cycle at once, then one per kick, per
 * interval_ms (0: none) and per cycle-requested delay. */
int cmpr_worker_start(struct cmpr_worker *w, struct cmpr_daemon *d, const char *medium,
                      long interval_ms, cmpr_worker_cycle_fn cycle, void *arg);
/* Loop thread: run a cycle soon (with the daemon's current core). */
void cmpr_worker_kick(struct cmpr_worker *w);
/* Any thread: run a cycle soon with the core of the last kick (one worker
 * waking another). */
void cmpr_worker_wake(struct cmpr_worker *w);
/* Worker thread: 1 when the daemon is stopping (finish the current file, then return). */
int cmpr_worker_stopping(struct cmpr_worker *w);
/* Worker thread: sleep up to ms, returning early (1) when stopping. */
int cmpr_worker_sleep(struct cmpr_worker *w, long ms);
/* Worker thread: one request answered (ok) or failed, for the metrics. */
void cmpr_worker_result(struct cmpr_worker *w, int ok, uint64_t ns);
/* Worker thread: a request enters (+1) or leaves (-1) processing. */
void cmpr_worker_busy(struct cmpr_worker *w, int delta);
/* Loop thread: requests being processed now (0 before start). */
size_t cmpr_worker_in_flight(struct cmpr_worker *w);
/* Loop thread: the current cycle finishes, the thread ends, done(arg) follows. */
void cmpr_worker_stop(struct cmpr_worker *w, void (*done)(void *arg), void *arg);
/* The same, and when the cycle has not ended grace_ms later, cut(cut_arg)
 * on the loop thread ends what it waits for (an SSH session to a stuck
 * server), so a stop is never held up for long. */
void cmpr_worker_stop_within(struct cmpr_worker *w, long grace_ms, void (*cut)(void *), void *cut_arg,
                             void (*done)(void *arg), void *arg);

#endif
