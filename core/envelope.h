/* The one way into the core (DESIGN.md "The seams"): a medium wraps exactly
 * one DER PKIMessage in an envelope, describes where it came from with the
 * setters, and submits it; exactly one answer comes back through its reply
 * operations. The envelope is opaque: only the core reads it. */
#ifndef CMPR_CORE_ENVELOPE_H
#define CMPR_CORE_ENVELOPE_H

#include <stddef.h>

#include <uv.h>

struct cmpr_core;
struct cmpr_reply;
struct cmpr_envelope;

struct cmpr_reply_ops {
    /* the answer; der is valid only during the call */
    void (*send)(struct cmpr_reply *r, const unsigned char *der, size_t len);
    /* no CMP answer could be built at all (CMPR_ERR_*) */
    void (*fail)(struct cmpr_reply *r, int cmpr_err);
};

/* Embedded in the medium's own object (connection, file job, mail). */
struct cmpr_reply {
    const struct cmpr_reply_ops *ops;
};

/* A copy of der in a new envelope whose answer goes to reply; NULL when
 * out of memory (nothing was submitted then). */
struct cmpr_envelope *cmpr_envelope_new(const unsigned char *der, size_t len, struct cmpr_reply *reply);
/* What the medium says about the request (copied; NULL is ""): */
enum cmpr_env_field {
    CMPR_ENV_MEDIUM,            /* "http", "https", "tcp", "file", "sftp", "mail": logs, audit, metrics */
    CMPR_ENV_PEER,              /* the peer: address, file name, mail From */
    CMPR_ENV_LABEL,             /* the profile label of the path, folder or mailbox it came by */
    CMPR_ENV_OPERATION,         /* the operation its path names (RFC 9483 6.1 "initialization" ...) */
    CMPR_ENV_TLS_SUBJECT,       /* the verified TLS client certificate's subject (RFC 2253) */
};
void cmpr_envelope_set(struct cmpr_envelope *env, enum cmpr_env_field field, const char *value);
/* this very request was handed in before and its answer was lost in a
 * crash: its senderNonce is already recorded and is not taken for a replay */
void cmpr_envelope_set_resumed(struct cmpr_envelope *env, int resumed);
/* where a later answer can be delivered without the client asking: the
 * push operations of medium get addr (cmpr_core_add_pusher) */
void cmpr_envelope_set_push(struct cmpr_envelope *env, const char *medium, const char *addr);
/* What the key derivations of its protection check may cost at most, in
 * PRF invocations, taken from *budget as they are made (a refusal then
 * costs nothing): a budget shared by several requests, such as the parts
 * of one mail. Only for envelopes without a loop (answered before
 * cmpr_core_submit returns, so budget may live on the caller's stack).
 * Without it each message gets its own. */
void cmpr_envelope_set_mac_budget(struct cmpr_envelope *env, unsigned long *budget);
/* Run the core on loop's thread pool and call the reply on the loop's
 * thread (HTTP, TCP). Without a loop the core runs on the submitting
 * thread and the reply is called before cmpr_core_submit returns (media
 * that have a thread of their own: file drop, SFTP, mail, the CLI). */
void cmpr_envelope_set_loop(struct cmpr_envelope *env, uv_loop_t *loop);

/* Takes env. Exactly one reply->ops->send or ->fail follows. A request that
 * waits on an upstream keeps its envelope (no thread is held meanwhile)
 * until the upstream answers or the route's wait runs out. */
void cmpr_core_submit(struct cmpr_core *core, struct cmpr_envelope *env);

#endif
