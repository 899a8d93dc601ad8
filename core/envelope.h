/* What any medium hands the core, and how the answer goes back (DESIGN.md
 * "The seams"). The transport fills an envelope, cmpr_core_submit() runs the
 * core on the libuv thread pool, and the reply's send() is called back on
 * the loop thread with the answer. */
#ifndef CMPR_CORE_ENVELOPE_H
#define CMPR_CORE_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct cmpr_core;
struct cmpr_reply;

struct cmpr_reply_ops {
    /* the answer; der is valid only during the call (loop thread) */
    void (*send)(struct cmpr_reply *r, const unsigned char *der, size_t len);
    /* no CMP answer could be built at all (loop thread) */
    void (*fail)(struct cmpr_reply *r, int cmpr_err);
};

/* Embedded in the transport's own object (connection, file job, mail). */
struct cmpr_reply {
    const struct cmpr_reply_ops *ops;
};

struct cmpr_envelope {
    unsigned char *der;             /* exactly one PKIMessage; owned, freed by the core */
    size_t len;
    char medium[16];                /* "http", "tcp", "file", "sftp", "mail" */
    char peer[128];                 /* address, file name, mail From */
    char label[128];                /* profile label, or "" */
    char operation[32];             /* HTTP operation label (RFC 9483 6.1), or "" */
    char tls_subject[256];          /* verified TLS client subject (RFC 2253), or "" */
    int resumed;                    /* run again after a crash (struct cmpr_request_info) */
    struct cmpr_reply *reply;
    /* the core's */
    uv_work_t work;
    struct cmpr_core *core;
    unsigned char *out;
    size_t out_len;
    int result;
    uint64_t start_ns;
};

/* Takes ownership of der. NULL on allocation failure (der is then freed). */
struct cmpr_envelope *cmpr_envelope_new(unsigned char *der, size_t len, const char *medium,
                                        const char *peer, const char *label,
                                        const char *operation, struct cmpr_reply *reply);

/* Queues the envelope on loop's thread pool; reply->ops->send/fail follow on
 * the loop thread; the envelope is freed after that call. */
void cmpr_core_submit(struct cmpr_core *core, uv_loop_t *loop, struct cmpr_envelope *env);

#endif
