/* One const table per medium (curl's struct Curl_ssl, Redis' ConnectionType).
 * apps/cmprouterd.c owns the loop and the registry; the core knows no
 * transport. Every op is set (never NULL). */
#ifndef CMPR_TRANSPORT_H
#define CMPR_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/config.h"
#include "transports/lib/daemon.h"

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
};

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

extern const struct cmpr_transport_ops cmpr_http_transport;

extern const struct cmpr_transport_ops cmpr_tcp_transport;
extern const struct cmpr_transport_ops cmpr_filedrop_transport;
extern const struct cmpr_transport_ops cmpr_sftp_transport;
extern const struct cmpr_transport_ops cmpr_mail_transport;

/* The forwarder ([route NAME] upstream = URI): its thread, and the upstream
 * operations every core gets (call cmpr_upstream_attach for a new core). */
extern const struct cmpr_transport_ops cmpr_forward_transport;
void cmpr_upstream_attach(struct cmpr_core *core);

#endif
