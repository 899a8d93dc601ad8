/* The mail medium's work on one mail, shared by the daemon's Maildir intake
 * (mail.c) and `cmprouter deliver` (pipe delivery from an MTA): CMP parts
 * out, through the core, one reply mail into the persistent outbound queue.
 * Blocking; any thread. */
#ifndef CMPR_MAILPROC_H
#define CMPR_MAILPROC_H

#include <stddef.h>

#include "codec/mime.h"
#include "core/upstream.h"

struct cmpr_conf_group;
struct cmpr_core;

struct cmpr_mail_conf {
    char *maildir;              /* intake: new/, cur/, tmp/ */
    char *queue;                /* outbound: NAME.msg; sent/ and dead/ below it */
    char *from;                 /* our address in replies */
    char *label;                /* profile label of mailed requests, or NULL */
    char **allow;               /* sender domains allowed (NULL: any) */
    struct cmpr_mail_limits lim;
    /* sending */
    char *smtp_host;            /* NULL: no relay (answers wait in the queue) */
    int smtp_port, smtp_tls, allow_plain_auth;
    char *smtp_ca, *smtp_user, *smtp_secret, *sendmail;
    char helo[256];
    long rescan_ms, retry_min_ms, retry_max_ms, timeout_ms, keep_sent_s;
    long mac_budget;                    /* PRF invocations all parts of one mail may cost */
    char instance[128];                 /* this daemon's claims: MAILDIR/.processing/INSTANCE */
    unsigned mode;
};

int cmpr_mail_configure(const struct cmpr_conf_group *g, struct cmpr_mail_conf *c, char **err_r);
void cmpr_mail_conf_free(struct cmpr_mail_conf *c);
/* Creates the Maildir and queue folders. 0, or -1 with *err_r. */
int cmpr_mail_dirs(const struct cmpr_mail_conf *c, char **err_r);

/* a later answer for a mailed request, as a second reply mail (core/upstream.h) */
extern const struct cmpr_push_ops cmpr_mail_push;

enum { CMPR_MAIL_DONE = 0, CMPR_MAIL_RETRY = 1 };
/* Processes one mail; key names its queue entry (the same key twice, as
 * after a crash, replaces the entry, and one already sent is not queued
 * again). CMPR_MAIL_DONE when its reply is durably queued or the mail was
 * dropped (logged); CMPR_MAIL_RETRY when the core or the queue failed.
 * *answered counts the CMP answers made. */
int cmpr_mail_process(const struct cmpr_mail_conf *c, struct cmpr_core *core,
                      const unsigned char *raw, size_t len, const char *key, int resumed,
                      int *answered);

/* Writes a queue entry durably: queue/NAME (mode) holding
 * "cmprouter-envelope FROM TO\n" then the mail. 0, or -1 with errno. */
int cmpr_mail_queue_put(const char *queue, unsigned mode, const char *name, const char *from,
                        const char *to, const unsigned char *mail, size_t len);
/* A queue entry: "cmprouter-envelope FROM TO\n" then the mail. */
int cmpr_mail_queue_parse(const unsigned char *data, size_t len, char *from, size_t flen,
                          char *to, size_t tlen, size_t *body_off);

#endif
