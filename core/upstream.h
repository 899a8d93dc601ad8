/* How the core reaches upstream CAs and waiting clients without knowing any
 * medium (DESIGN.md "The seams"). Each medium's client side registers one
 * table of upstream operations for its URI schemes (cmpr_core_add_upstream);
 * the route table hands each [route NAME] to its scheme's configure(), which
 * reads the route's medium keys into settings of its own: the core never
 * sees them. Media that can deliver an answer later without the client
 * asking (file drop, mail) register push operations (cmpr_core_add_pusher). */
#ifndef CMPR_CORE_UPSTREAM_H
#define CMPR_CORE_UPSTREAM_H

#include <stddef.h>

struct cmpr_conf_group;

/* The end of one exchange with an online upstream: result CMPR_OK with the
 * answer (malloc()ed, handed over), or CMPR_ERR_UNREACHABLE (it did not go
 * out), CMPR_ERR_TIMEOUT (it went out, no answer in time), CMPR_ERR_PEER
 * (the server answered, but not with a CMP message); why says more. */
typedef void (*cmpr_upstream_done_fn)(void *arg, int result, unsigned char *ans, size_t len,
                                      const char *why);

struct cmpr_upstream_ops {
    const char *const *schemes;         /* URI schemes served: "http", "https" (NULL-terminated) */
    int offline;                        /* 1: answers come later (send, then collect) */
    const char *const *directives;      /* the [route] keys it reads (NULL-terminated) */
    /* Checks uri and the route's medium keys; *set_r is what the other ops
     * get. 0, or CMPR_ERR_CONFIG with *err_r ("file:line: ..."). */
    int (*configure)(void *ctx, const struct cmpr_conf_group *g, const char *uri, long timeout_ms,
                     void **set_r, char **err_r);
    /* frees what configure made (set is never NULL) */
    void (*release)(void *ctx, void *set);
    /* Online media. Starts one exchange and returns at once; done(arg, ...)
     * follows exactly once, later, on another thread (never inside this
     * call). tag names the transaction: an exchange with the same tag may
     * reuse the connection of the last one (some servers keep a
     * transaction's state with its connection). 0, or CMPR_ERR_* when it
     * could not even start (done is then not called). */
    int (*exchange)(void *ctx, void *set, const char *tag, const unsigned char *der, size_t len,
                    long timeout_ms, cmpr_upstream_done_fn done, void *arg);
    /* Offline media; blocking, bounded by the route's timeout, on the
     * forwarder's thread. send: der goes out as name; key[] is what its
     * answer is collected by. 0, or CMPR_ERR_UNREACHABLE with err[]. */
    int (*send)(void *ctx, void *set, const char *name, const unsigned char *der, size_t len,
                char *key, size_t keylen, char *err, size_t errlen);
    /* 1 with the answer for key (malloc()ed bytes as they came: the core
     * judges them), 0 not yet, -1 trouble reaching the medium (err[]). */
    int (*collect)(void *ctx, void *set, const char *key, unsigned char **ans_r, size_t *len_r,
                   char *err, size_t errlen);
};

/* A medium that can deliver an answer to a waiting client by itself. The
 * address is the medium's own text (set on the envelope with
 * cmpr_envelope_set_push), written and read by that medium only. */
struct cmpr_push_ops {
    const char *medium;                 /* "file", "mail" */
    /* Delivers der to addr; 0, or -1 with err[]. Any thread; blocking. */
    int (*push)(void *ctx, const char *addr, const unsigned char *der, size_t len, char *err,
                size_t errlen);
};

#endif
