/* cmprouter process | list | show | approve | reject | revoke | crl | certs | expire */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "admin.h"
#include "codec/oids.h"
#include "core/config.h"
#include "transports/transport.h"
#include "core/core.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/limits.h"
#include "core/store.h"

static const char *const commands[] = {
    "process", "list", "show", "approve", "reject", "revoke", "crl", "certs", "expire", "routes", "store", NULL
};

int
cmpr_admin_is_command(const char *name)
{
    for (const char *const *c = commands; *c != NULL; c++)
        if (strcmp(*c, name) == 0)
            return 1;
    return 0;
}

struct opts {
    const char *conf, *label, *in, *out, *reason, *subject, *arg, *arg2, *explain;
    int json, pending;
};

static int
parse_opts(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc)
            o->conf = argv[++i];
        else if (strcmp(a, "--label") == 0 && i + 1 < argc)
            o->label = argv[++i];
        else if (strcmp(a, "--in") == 0 && i + 1 < argc)
            o->in = argv[++i];
        else if (strcmp(a, "--out") == 0 && i + 1 < argc)
            o->out = argv[++i];
        else if (strcmp(a, "--reason") == 0 && i + 1 < argc)
            o->reason = argv[++i];
        else if (strcmp(a, "--subject") == 0 && i + 1 < argc)
            o->subject = argv[++i];
        else if (strcmp(a, "--explain") == 0 && i + 1 < argc)
            o->explain = argv[++i];
        else if (strcmp(a, "--json") == 0)
            o->json = 1;
        else if (strcmp(a, "--pending") == 0)
            o->pending = 1;
        else if (a[0] != '-' && o->arg == NULL)
            o->arg = a;
        else if (a[0] != '-' && o->arg2 == NULL && strcmp(argv[0], "store") == 0)
            o->arg2 = a;
        else {
            fprintf(stderr, "cmprouter: %s: unexpected argument '%s'\n", argv[0], a);
            return -1;
        }
    }
    return 0;
}

static void
tohex(const unsigned char *d, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
    out[2 * len] = '\0';
}

static void
json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static const char *
iso(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t == 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* ---------------- list / show ---------------- */

struct list_ctx {
    int json;
    int count;
};

static int
print_txn(const struct cmpr_txn_rec *t, void *arg)
{
    struct list_ctx *c = arg;
    char tid[2 * CMPR_STORE_MAX_ID + 1], when[32];
    const char *type = cmpr_body_name(t->req_type);

    tohex(t->tid, t->tid_len, tid);
    if (c->json) {
        printf("%s{\"tid\":\"%s\",\"state\":\"%s\",\"request\":\"%s\",\"client\":", c->count ? "," : "",
               tid, cmpr_txn_state_name(t->state), type != NULL ? type : "?");
        json_str(stdout, t->client);
        printf(",\"sender\":");
        json_str(stdout, t->sender);
        printf(",\"profile\":");
        json_str(stdout, t->profile);
        printf(",\"updated\":\"%s\"", iso(t->updated, when, sizeof(when)));
        if (t->note[0]) {
            printf(",\"note\":");
            json_str(stdout, t->note);
        }
        printf("}");
    } else {
        if (c->count == 0)
            printf("%-32s  %-16s  %-8s  %-20s  %-12s  %s\n", "TRANSACTION", "STATE", "REQUEST",
                   "UPDATED", "PROFILE", "CLIENT/SENDER");
        printf("%-32s  %-16s  %-8s  %-20s  %-12s  %s\n", tid, cmpr_txn_state_name(t->state),
               type != NULL ? type : "?", iso(t->updated, when, sizeof(when)),
               t->profile[0] ? t->profile : "-", t->client[0] ? t->client : t->sender);
    }
    c->count++;
    return CMPR_OK;
}

static int
audit_print(int64_t when, const char *tid_hex, const char *who, const char *event,
            const char *detail, void *arg)
{
    const char *want = arg;
    char buf[32];

    if (tid_hex == NULL || strcmp(tid_hex, want) != 0)
        return CMPR_OK;
    printf("  %s  %-12s %s: %s\n", iso(when, buf, sizeof(buf)), event, who, detail);
    return CMPR_OK;
}

/* ---------------- certs ---------------- */

struct certs_ctx {
    int json, count;
    const char *pattern;
};

static int
print_cert(const struct cmpr_cert_rec *c, void *arg)
{
    struct certs_ctx *x = arg;
    static const char *const st[] = { "valid", "revoked", "on-hold" };
    char sn[2 * CMPR_STORE_MAX_ID + 1], nb[32], na[32];

    /* a substring, or an fnmatch(3) pattern, of the RFC 2253 subject */
    if (x->pattern != NULL
            && !(strpbrk(x->pattern, "*?[") != NULL ? fnmatch(x->pattern, c->subject, 0) == 0
                                                   : strstr(c->subject, x->pattern) != NULL))
        return CMPR_OK;
    tohex(c->serial, c->serial_len, sn);
    if (x->json) {
        printf("%s{\"serial\":\"%s\",\"subject\":", x->count ? "," : "", sn);
        json_str(stdout, c->subject);
        printf(",\"issuer\":");
        json_str(stdout, c->issuer);
        printf(",\"notBefore\":\"%s\",\"notAfter\":\"%s\",\"status\":\"%s\",\"confirmed\":%s",
               iso(c->not_before, nb, sizeof(nb)), iso(c->not_after, na, sizeof(na)),
               st[c->status % 3], c->confirmed ? "true" : "false");
        if (c->status != CMPR_CERT_VALID)
            printf(",\"reason\":%d", c->reason);
        printf("}");
    } else {
        if (x->count == 0)
            printf("%-32s  %-8s  %-9s  %-20s  %s\n", "SERIAL", "STATUS", "CONFIRMED", "NOT AFTER",
                   "SUBJECT");
        printf("%-32s  %-8s  %-9s  %-20s  %s\n", sn, st[c->status % 3], c->confirmed ? "yes" : "no",
               iso(c->not_after, na, sizeof(na)), c->subject);
    }
    x->count++;
    return CMPR_OK;
}

static int
reason_code(const char *s)
{
    static const char *const names[] = { "unspecified", "keyCompromise", "cACompromise",
        "affiliationChanged", "superseded", "cessationOfOperation", "certificateHold", "",
        "removeFromCRL", "privilegeWithdrawn", "aACompromise" };
    char *end;
    long v;

    if (s == NULL)
        return 0;
    for (int i = 0; i <= 10; i++)
        if (names[i][0] != '\0' && strcmp(s, names[i]) == 0)
            return i;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < 0 || v > 10 || v == 7)
        return -1;
    return (int)v;
}

/* ---------------- main ---------------- */

/* `routes`: the table in the order it is tried, the requests on their way
 * upstream, or (--explain FILE) which route one message takes and why */
static int
routes(struct cmpr_core *core, const struct cmpr_conf *conf, const struct opts *o,
       cmpr_read_all_fn *read_all)
{
    struct cmpr_store *st = cmpr_core_store(core);
    struct cmpr_fwd_rec *v = NULL;
    size_t n = 0;
    int r, any = 0;

    if (o->explain != NULL) {
        unsigned char *in = NULL;
        size_t inlen = 0;
        char out[8192];

        if ((r = read_all(o->explain, &in, &inlen, CMPR_MAX_MSG_SIZE)) != 0) {
            fprintf(stderr, "cmprouter: routes: %s: %s\n", o->explain, strerror(-r));
            return 1;
        }
        r = cmpr_core_explain(core, o->label, in, inlen, out, sizeof(out));
        free(in);
        fputs(out, stdout);
        return r == CMPR_OK ? 0 : 1;
    }
    for (size_t i = 0; i < conf->n_groups; i++) {
        const struct cmpr_conf_group *g = &conf->groups[i];

        if (strcmp(g->type, "route") != 0)
            continue;
        any = 1;
        printf("[route %s]", g->name);
        for (size_t k = 0; k < g->n; k++)
            if (strstr(g->keys[k], "secret") == NULL)
                printf(" %s=%s", g->keys[k], g->values[k]);
        printf("\n");
    }
    if (!any)
        printf("no [route] groups: the local CA answers every request\n");
    else
        printf("(tried in this order; the first that matches takes the request; none: the local CA)\n");
    if ((r = st->ops->fwd_list(st, 1, &v, &n)) != CMPR_OK) {
        fprintf(stderr, "cmprouter: routes: %s\n", cmpr_strerror(r));
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char h[2 * CMPR_STORE_MAX_ID + 1];

        for (size_t k = 0; k < v[i].tid_len; k++)
            snprintf(h + 2 * k, 3, "%02x", v[i].tid[k]);
        h[2 * v[i].tid_len] = '\0';
        printf("%s route=%s state=%s%s attempts=%d%s%s%s%s\n", h, v[i].route,
               cmpr_fwd_state_name(v[i].state), v[i].delayed ? " (client waits)" : "", v[i].attempts,
               v[i].batch[0] ? " batch=" : "", v[i].batch, v[i].err[0] ? " last trouble: " : "", v[i].err);
        cmpr_fwd_rec_clear(&v[i]);
    }
    free(v);
    return 0;
}

/* cmprouter store migrate | store copy SPEC: the configured store is open
 * (and so migrated) already */
static int
store_cmd(const struct cmpr_conf *conf, struct cmpr_store *st, const struct opts *o)
{
    char to_name[600], from_name[600];
    struct cmpr_store *from = NULL;
    struct cmpr_copy_counts n;
    int r;

    cmpr_store_name(conf->store, to_name, sizeof(to_name));
    if (o->arg != NULL && strcmp(o->arg, "migrate") == 0 && o->arg2 == NULL) {
        printf("store %s: schema up to date\n", to_name);
        return 0;
    }
    if (o->arg == NULL || strcmp(o->arg, "copy") != 0 || o->arg2 == NULL) {
        fprintf(stderr, "cmprouter: store: give 'migrate' or 'copy SPEC' (e.g. copy sqlite:/var/lib/cmprouter/cmprouter.db)\n");
        return 2;
    }
    cmpr_store_name(o->arg2, from_name, sizeof(from_name));
    if (strcmp(from_name, to_name) == 0) {
        fprintf(stderr, "cmprouter: store copy: %s is the configured store itself\n", from_name);
        return 2;
    }
    if (cmpr_store_open(o->arg2, &from) != CMPR_OK) {
        fprintf(stderr, "cmprouter: store copy: cannot open %s\n", from_name);
        return 1;
    }
    r = cmpr_store_copy(from, from_name, st, &n);
    cmpr_store_close(from);
    printf("%-22s %10s %10s %10s\n", "from", "in source", "copied", "present");
    for (int k = 0; k < CMPR_COPY_KINDS; k++)
        printf("%-22s %10ld %10ld %10ld\n", cmpr_copy_kind_names[k], n.source[k], n.copied[k], n.present[k]);
    if (r != CMPR_OK) {
        fprintf(stderr, "cmprouter: store copy from %s into %s stopped: %s (run it again: it copies what is missing)\n",
                from_name, to_name, cmpr_errname(r));
        return 1;
    }
    for (int k = 0; k < CMPR_COPY_KINDS; k++)
        if (n.copied[k] + n.present[k] != n.source[k]) {
            fprintf(stderr, "cmprouter: store copy: %s do not add up\n", cmpr_copy_kind_names[k]);
            return 1;
        }
    printf("store %s: every record of %s is in it (the replay cache of nonces is not copied)\n", to_name,
           from_name);
    return 0;
}

int
cmpr_admin_main(const char *confpath, int argc, char **argv, cmpr_read_all_fn *read_all)
{
    struct opts o;
    struct cmpr_conf *conf = NULL;
    struct cmpr_core *core = NULL;
    struct cmpr_store *st;
    char *err = NULL;
    const char *cmd = argv[0];
    int rc = 1, r;

    memset(&o, 0, sizeof(o));
    o.conf = confpath;
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    if (o.conf == NULL) {
        fprintf(stderr, "cmprouter: %s: a configuration is needed (-c FILE)\n", cmd);
        return 2;
    }
    if (cmpr_conf_load(o.conf, &conf, &err) != CMPR_OK || cmpr_transports_check_groups(conf, &err) != CMPR_OK) {
        fprintf(stderr, "cmprouter: %s\n", err);
        free(err);
        cmpr_conf_free(conf);
        return 1;
    }
    if (cmpr_transports_core(conf, NULL, &core, &err) != CMPR_OK) {
        fprintf(stderr, "cmprouter: %s\n", err != NULL ? err : "cannot start the core");
        free(err);
        cmpr_conf_free(conf);
        return 1;
    }
    st = cmpr_core_store(core);

    if (strcmp(cmd, "process") == 0) {
        struct cmpr_call call = { "cli", o.in != NULL ? o.in : "stdin", o.label, 0, NULL, NULL, NULL };
        unsigned char *in = NULL, *out = NULL;
        size_t inlen = 0, outlen = 0;
        FILE *f;

        (void)cmpr_core_expire(core, time(NULL));
        if ((r = read_all(o.in != NULL ? o.in : "-", &in, &inlen, CMPR_MAX_MSG_SIZE)) != 0) {
            fprintf(stderr, "cmprouter: process: %s: %s\n", o.in != NULL ? o.in : "stdin",
                    r == -EFBIG ? "larger than the 1 MiB message limit" : strerror(-r));
            goto out;
        }
        r = cmpr_transport_call(core, &call, in, inlen, &out, &outlen);
        free(in);
        if (r != CMPR_OK) {
            fprintf(stderr, "cmprouter: process: no answer: %s\n", cmpr_strerror(r));
            goto out;
        }
        f = o.out != NULL ? fopen(o.out, "wb") : stdout;
        if (f == NULL || fwrite(out, 1, outlen, f) != outlen || fflush(f) != 0) {
            fprintf(stderr, "cmprouter: process: cannot write the answer\n");
            free(out);
            if (f != NULL && f != stdout)
                fclose(f);
            goto out;
        }
        if (f != stdout)
            fclose(f);
        free(out);
        rc = 0;
    } else if (strcmp(cmd, "routes") == 0) {
        rc = routes(core, conf, &o, read_all);
    } else if (strcmp(cmd, "list") == 0) {
        struct list_ctx c = { o.json, 0 };

        if (o.json)
            printf("[");
        r = st->ops->txn_list(st, o.pending ? CMPR_TXN_PENDING_APPROVAL : -1, print_txn, &c);
        if (o.json)
            printf("]\n");
        rc = r == CMPR_OK ? 0 : 1;
    } else if (strcmp(cmd, "show") == 0) {
        unsigned char tid[CMPR_STORE_MAX_ID];
        size_t tlen;
        struct cmpr_txn_rec t;
        struct list_ctx c = { o.json, 0 };

        if (o.arg == NULL || cmpr_unhex(o.arg, tid, sizeof(tid), &tlen) != 0) {
            fprintf(stderr, "cmprouter: show: a transactionID in hex is needed\n");
            rc = 2;
            goto out;
        }
        if ((r = st->ops->txn_get(st, tid, tlen, &t)) != CMPR_OK) {
            fprintf(stderr, "cmprouter: show: %s: %s\n", o.arg, cmpr_strerror(r));
            goto out;
        }
        print_txn(&t, &c);
        if (o.json) {
            printf("\n");
        } else {
            char h[2 * CMPR_STORE_MAX_ID + 1];

            if (t.serial_len > 0) {
                tohex(t.serial, t.serial_len, h);
                printf("certificate serial: %s\n", h);
            }
            if (t.note[0])
                printf("note: %s\n", t.note);
            printf("audit:\n");
            tohex(tid, tlen, h);
            st->ops->audit_list(st, audit_print, h);
        }
        cmpr_txn_rec_clear(&t);
        rc = 0;
    } else if (strcmp(cmd, "approve") == 0 || strcmp(cmd, "reject") == 0) {
        unsigned char tid[CMPR_STORE_MAX_ID];
        size_t tlen;

        if (o.arg == NULL || cmpr_unhex(o.arg, tid, sizeof(tid), &tlen) != 0) {
            fprintf(stderr, "cmprouter: %s: a transactionID in hex is needed\n", cmd);
            rc = 2;
            goto out;
        }
        r = strcmp(cmd, "approve") == 0 ? cmpr_core_approve(core, tid, tlen)
                                         : cmpr_core_reject(core, tid, tlen, o.reason);
        if (r != CMPR_OK) {
            fprintf(stderr, "cmprouter: %s: %s: %s\n", cmd, o.arg,
                    r == CMPR_ERR_INVALID_ARG ? "not waiting for approval" : cmpr_strerror(r));
            goto out;
        }
        printf("%s: %s\n", o.arg, strcmp(cmd, "approve") == 0
               ? "approved; the certificate goes out on the client's next poll"
               : "rejected; the client learns it on its next poll");
        rc = 0;
    } else if (strcmp(cmd, "revoke") == 0) {
        unsigned char sn[CMPR_STORE_MAX_ID];
        size_t snlen;
        int reason = reason_code(o.reason);

        if (o.arg == NULL || cmpr_unhex(o.arg, sn, sizeof(sn), &snlen) != 0 || reason < 0) {
            fprintf(stderr, "cmprouter: revoke: a serial number in hex and an optional "
                    "--reason CODE|NAME are needed\n");
            rc = 2;
            goto out;
        }
        if ((r = cmpr_core_revoke(core, sn, snlen, reason)) != CMPR_OK) {
            fprintf(stderr, "cmprouter: revoke: %s: %s\n", o.arg,
                    r == CMPR_ERR_EXISTS ? "already revoked" : cmpr_strerror(r));
            goto out;
        }
        printf("%s: revoked (reason %d)\n", o.arg, reason);
        rc = 0;
    } else if (strcmp(cmd, "crl") == 0) {
        if (o.out != NULL) {
            rc = cmpr_core_write_crl(core, o.out) == CMPR_OK ? 0 : 1;
        } else {
            char tmp[] = "/tmp/cmprouter-crl-XXXXXX";
            int fd = mkstemp(tmp);
            BIO *b;
            X509_CRL *crl = NULL;

            if (fd >= 0)
                close(fd);
            if (fd >= 0 && cmpr_core_write_crl(core, tmp) == CMPR_OK
                    && (b = BIO_new_file(tmp, "rb")) != NULL) {
                crl = d2i_X509_CRL_bio(b, NULL);
                BIO_free(b);
            }
            if (fd >= 0)
                unlink(tmp);
            if (crl != NULL && PEM_write_X509_CRL(stdout, crl) == 1)
                rc = 0;
            X509_CRL_free(crl);
        }
    } else if (strcmp(cmd, "certs") == 0) {
        struct certs_ctx c = { o.json, 0, o.subject };

        if (o.json)
            printf("[");
        r = st->ops->cert_list(st, print_cert, &c);
        if (o.json)
            printf("]\n");
        rc = r == CMPR_OK ? 0 : 1;
    } else if (strcmp(cmd, "store") == 0) {
        rc = store_cmd(conf, st, &o);
    } else if (strcmp(cmd, "expire") == 0) {
        int n = cmpr_core_expire(core, time(NULL));

        printf("%d unconfirmed certificate%s revoked\n", n, n == 1 ? "" : "s");
        rc = 0;
    }
 out:
    cmpr_core_free(core);
    cmpr_conf_free(conf);
    return rc;
}
