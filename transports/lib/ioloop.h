/* A libuv loop for the client side of the media: exchanges with online
 * upstreams run on it, never on a worker of the core. In the daemon a
 * thread of its own runs it (the forwarder's I/O thread); on the command
 * line the caller runs it until its exchange is done. */
#ifndef CMPR_IOLOOP_H
#define CMPR_IOLOOP_H

#include <stdint.h>

#include <uv.h>

struct cmpr_ioloop;

/* Something that lives on the loop (an exchange, an idle connection): it
 * is cancelled when the loop stops. Loop thread only. */
struct cmpr_ioloop_obj {
    struct cmpr_ioloop_obj *next, *prev;
    const void *kind;                   /* what it is (its owner's tag) */
    char key[400];                      /* what it serves (idle connections) */
    uint64_t since;                     /* loop time it became idle (ms) */
    /* ends it now: it removes itself and goes */
    void (*cancel)(struct cmpr_ioloop_obj *o);
};
void cmpr_ioloop_add(struct cmpr_ioloop *l, struct cmpr_ioloop_obj *o);
void cmpr_ioloop_remove(struct cmpr_ioloop *l, struct cmpr_ioloop_obj *o);
/* the oldest object of kind with key (NULL: any key), or NULL */
struct cmpr_ioloop_obj *cmpr_ioloop_find(struct cmpr_ioloop *l, const void *kind, const char *key);
/* how many objects of kind there are */
size_t cmpr_ioloop_count(struct cmpr_ioloop *l, const void *kind);

/* own_thread: a thread runs the loop until cmpr_ioloop_free. 0, or -1. */
int cmpr_ioloop_new(int own_thread, struct cmpr_ioloop **l_r);
/* Stops the thread (connections are closed); frees the loop. */
void cmpr_ioloop_free(struct cmpr_ioloop *l);
uv_loop_t *cmpr_ioloop_loop(struct cmpr_ioloop *l);
/* Runs fn(arg) on the loop's thread soon; any thread. 0, or -1 (stopping). */
int cmpr_ioloop_call(struct cmpr_ioloop *l, void (*fn)(void *arg), void *arg);
/* Without a thread of its own: runs the loop here until *done. */
void cmpr_ioloop_run_until(struct cmpr_ioloop *l, const int *done);

#endif
