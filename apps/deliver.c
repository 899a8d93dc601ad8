/* cmprouter deliver: one mail on stdin from an MTA (pipe delivery,
 * procmail), answered like a mail in the daemon's Maildir: its CMP parts go
 * through the core and the reply is queued in [mail] queue for the
 * daemon's sender. Exit codes follow sysexits(3) so that the MTA knows
 * what to do: 0 once the reply is safely queued (or the mail was dropped,
 * logged), 75 (EX_TEMPFAIL) when it could not be (the MTA tries again),
 * 78 (EX_CONFIG) for a configuration without [mail]. */
#include "deliver.h"
#include "transports/mailproc.h"
#include "core/config.h"
#include "transports/transport.h"
#include "core/core.h"
#include "base/err.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#define EX_TEMPFAIL 75
#define EX_CONFIG 78

int
cmpr_cmd_deliver(const char *conf_path, int argc, char **argv)
{
    struct cmpr_conf *conf = NULL;
    struct cmpr_core *core = NULL;
    struct cmpr_mail_conf mc;
    const struct cmpr_conf_group *g;
    unsigned char *raw = NULL, rnd[6];
    size_t len = 0, cap;
    char *err = NULL, key[96];
    int rc = EX_TEMPFAIL, answered = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            conf_path = argv[++i];
        else {
            fprintf(stderr, "usage: cmprouter [-c CONF] deliver < MAIL\n");
            return EX_CONFIG;
        }
    }
    if (conf_path == NULL) {
        fprintf(stderr, "cmprouter: deliver: -c CONF is needed\n");
        return EX_CONFIG;
    }
    memset(&mc, 0, sizeof(mc));
    if (cmpr_conf_load(conf_path, &conf, &err) != CMPR_OK || cmpr_transports_check_groups(conf, &err) != CMPR_OK) {
        fprintf(stderr, "cmprouter: deliver: %s\n", err);
        free(err);
        cmpr_conf_free(conf);
        return EX_CONFIG;
    }
    if ((g = cmpr_conf_group(conf, "mail", "mail")) == NULL) {
        fprintf(stderr, "cmprouter: deliver: %s has no [mail] group\n", conf_path);
        rc = EX_CONFIG;
        goto out;
    }
    if (cmpr_mail_configure(g, &mc, &err) != CMPR_OK) {
        fprintf(stderr, "cmprouter: deliver: %s\n", err != NULL ? err : "bad [mail]");
        rc = EX_CONFIG;
        goto out;
    }
    if (cmpr_mail_dirs(&mc, &err) != 0) {
        fprintf(stderr, "cmprouter: deliver: %s (the MTA will try again)\n", err != NULL ? err : "");
        goto out;           /* EX_TEMPFAIL */
    }
    /* at most max_size + 1 bytes: a larger mail is answered from its head */
    cap = mc.lim.max_mail + 1;
    if ((raw = malloc(cap)) == NULL)
        goto out;
    for (;;) {
        ssize_t n = read(0, raw + len, cap - len);

        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == cap) {
            char sink[65536];

            while (read(0, sink, sizeof(sink)) > 0)
                ;           /* the MTA wants it all read */
            break;
        }
    }
    if (cmpr_transports_core(conf, NULL, &core, &err) != CMPR_OK) {
        fprintf(stderr, "cmprouter: deliver: %s (the MTA will try again)\n",
                err != NULL ? err : "cannot start the core");
        goto out;
    }
    RAND_bytes(rnd, sizeof(rnd));
    snprintf(key, sizeof(key), "%ld.P%ld.deliver%02x%02x%02x%02x%02x%02x", (long)time(NULL),
             (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    rc = cmpr_mail_process(&mc, core, raw, len, key, 0, &answered) == CMPR_MAIL_DONE ? 0 : EX_TEMPFAIL;
    if (rc != 0)
        fprintf(stderr, "cmprouter: deliver: the answer could not be queued (the MTA will try again)\n");
out:
    free(raw);
    free(err);
    cmpr_core_free(core);
    cmpr_mail_conf_free(&mc);
    cmpr_conf_free(conf);
    return rc;
}
