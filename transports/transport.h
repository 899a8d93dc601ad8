/* One const table per medium (curl's struct Curl_ssl, Redis' ConnectionType).
 * apps/cmprouterd.c owns the loop and the registry; the core knows no
 * transport. Every op is set (never NULL). */
#ifndef CMPR_TRANSPORT_H
#define CMPR_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/config.h"
#include "core/upstream.h"
#include "transports/lib/daemon.h"
#include "transports/conn.h"

/* descriptors of a medium without max_fds */
#define CMPR_FDS_DEFAULT 16

struct cmpr_transport_ops {
    const char *name;                   /* "http" */
    const char *group_type;             /* configuration group: [listen NAME] */
    size_t ctx_size;                    /* private state, zeroed and owned by the caller */
    /* the group names it serves under group_type (NULL-terminated; NULL: any) */
    const char *const *group_names;
    /* Reads and checks its group (NULL: none in the file, defaults); name is
     * the group's name ("http", "admin", a file drop's NAME); *err_r
     * "file:line: ..." on error (caller frees). */
    int (*configure)(void *ctx, const char *name, const struct cmpr_conf_group *g, char **err_r);
    /* Binds listeners, starts watchers; may fail (address in use ...). */
    int (*start)(void *ctx, struct cmpr_daemon *d, char **err_r);
    /* Stops accepting; in-flight requests finish; done() once everything is closed. */
    void (*stop)(void *ctx, void (*done)(void *arg), void *arg);
    /* Requests in flight (for draining). */
    size_t (*in_flight)(void *ctx);
    /* The port actually bound (after start). */
    int (*port)(void *ctx);
    /* A command-line ADDR:PORT that wins over the file (before start); 0 or -1. */
    int (*set_address)(void *ctx, const char *addr);
    /* Releases what configure allocated (after stop, loop closed). */
    void (*free)(void *ctx);
    /* The most file descriptors it may hold at once (its connection cap,
     * listener, files), for the start-up check against RLIMIT_NOFILE;
     * NULL: a few (CMPR_FDS_DEFAULT). */
    long (*max_fds)(void *ctx);
    /* A listener's connection figures (after start), for metrics; NULL:
     * the medium has no connections. */
    void (*conn_stats)(void *ctx, struct cmpr_conn_stats *out);
    /* the medium's client side for upstream routes, or NULL */
    const struct cmpr_upstream_ops *upstream;
    /* answers delivered to a waiting client without its asking, or NULL */
    const struct cmpr_push_ops *push;
};

/* ---- for media with a thread of their own (file drop, SFTP, mail, the CLI) ---- */
struct cmpr_call {
    const char *medium, *peer, *label;
    int resumed;                        /* cmpr_envelope_set_resumed */
    const char *push_medium, *push;     /* cmpr_envelope_set_push, or NULL */
    unsigned long *mac_budget;          /* cmpr_envelope_set_mac_budget, or NULL */
};
/* The core's answer to der, made on this thread: CMPR_OK with *out_r
 * (malloc()ed), or CMPR_ERR_* when no CMP answer could be made. */
int cmpr_transport_call(struct cmpr_core *core, const struct cmpr_call *call, const unsigned char *der,
                        size_t len, unsigned char **out_r, size_t *out_len_r);

/* A push address is one medium's typed struct as text: its fields packed
 * here ("LEN:TEXT" each) and unpacked by the same medium. */
int cmpr_push_pack(char *out, size_t outlen, const char *const *fields, size_t n);
/* fields[i] point into store (NUL-terminated there); 0, or -1 if malformed */
int cmpr_push_unpack(const char *in, const char **fields, size_t n, char *store, size_t storelen);

/* port and set_address of a transport that listens on nothing (folders, mail) */
int cmpr_transport_no_port(void *ctx);
int cmpr_transport_no_address(void *ctx, const char *addr);

/* Every medium, one line each: cmprouterd walks this table (NULL-terminated). */
extern const struct cmpr_transport_ops *const cmpr_transports[];
/* The medium that owns group g, or NULL. */
const struct cmpr_transport_ops *cmpr_transport_for(const struct cmpr_conf_group *g);
/* Every group of conf is the core's ([route NAME]) or a medium's; else an
 * error naming file:line (caller frees *err_r). */
int cmpr_transports_check_groups(const struct cmpr_conf *conf, char **err_r);
/* A core for conf that knows every medium's client side and pushes, routes
 * read (cmpr_core_new, add_upstream, add_pusher, start). cl runs the
 * exchanges with online upstreams (NULL where no forwarder runs, as on the
 * command line). 0, or CMPR_ERR_* with *err_r. */
struct cmpr_ioloop;
int cmpr_transports_core(const struct cmpr_conf *conf, struct cmpr_ioloop *cl, struct cmpr_core **core_r,
                         char **err_r);

extern const struct cmpr_transport_ops cmpr_http_transport;

extern const struct cmpr_transport_ops cmpr_tcp_transport;
extern const struct cmpr_transport_ops cmpr_filedrop_transport;
extern const struct cmpr_transport_ops cmpr_sftp_transport;
extern const struct cmpr_transport_ops cmpr_mail_transport;

/* The forwarder ([route NAME] upstream = URI): its thread; a core made
 * after it started (SIGHUP) is attached to it. */
extern const struct cmpr_transport_ops cmpr_forward_transport;
void cmpr_forward_attach(struct cmpr_core *core);

#endif
