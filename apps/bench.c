/*
 * cmprouter bench: a closed-loop CMP load generator (cmprouter(1), BENCH),
 * in the manner of h2load or redis-benchmark. N clients, each with one
 * transaction at a time, on one event loop; over HTTP a client keeps its
 * connection (keep-alive) or opens one per message. Keys and signed request
 * bodies (proof of possession) are made before the clock starts; each
 * message's header and protection are made as it goes, as a real client's
 * are. A transaction counts only when every answer in it verified: its
 * header belongs to our request (RFC 9810 5.1.1), its protection checks
 * out as the EE client checks it (client.c), it says accepted (or grantedWithMods) and, unless implicitConfirm
 * was granted, our certConf got a verified pkiConf.
 */
#include "bench.h"
#include "client.h"
#include "transports/client/outbound.h"
#include "transports/lib/fsutil.h"
#include "codec/ee.h"
#include "codec/msg.h"
#include "codec/oids.h"
#include "codec/protect.h"
#include "core/ca.h"
#include "core/config.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

struct bopts {
    const char *server, *op, *protection, *keytype, *ref, *secret_spec, *cert, *key, *trusted;
    const char *srvcert, *recipient, *profile, *tls_ca, *tls_cert, *tls_key, *write_dir;
    long clients, duration, transactions, timeout, threads;
    int keep_alive, json, implicit, tcp_version, bound;
};

#define KUR_KEYS 8                      /* new keys per client for kur, made before the clock */

struct bclient {
    struct bench *b;
    int id;
    char tag[32];
    CMPR_PKIMESSAGE *tmpl;              /* the first request, body ready (POP made) */
    CMPR_PKIMESSAGE *sent;              /* the message out now */
    uint64_t t0;                        /* the transaction's start (ns) */
    /* kur and rr: certificates enrolled before the clock */
    EVP_PKEY *key;                      /* the key of tmpl's request */
    X509 *got;                          /* the certificate of the transaction under way */
    X509 *cert;                         /* kur: the certificate to renew next, of key */
    EVP_PKEY *keys[KUR_KEYS];           /* kur: the new keys, in turn */
    unsigned next_key;
    STACK_OF(X509) *to_revoke;          /* rr: what is left to revoke */
};

enum { E_TRANSPORT, E_PROTOCOL, E_VERIFY, E_REJECTED, E_WAITING, E_LAST };
static const char *const err_names[E_LAST] = {
    "transport", "not our answer", "protection does not verify", "rejected without failInfo", "waiting"
};

struct bench {
    struct bopts o;
    int body;                           /* CMPR_BODY_* of the first request */
    int op;                             /* CMPR_BODY_* measured (kur, rr: after the preparation) */
    int prep;                           /* enrolling what kur or rr need; nothing is counted */
    long quota;                         /* rr: certificates each client enrolls first */
    struct cmpr_out *io;
    struct cmpr_client_creds cr;        /* protection of requests, checks of answers */
    struct bclient *cl;
    uint64_t start, deadline, end, drain_end;   /* ns, monotonic */
    int stop, draining, closing;
    long in_flight;
    unsigned long started, done, msgs, errors;
    unsigned long fi[CMPR_FI_MAX + 1], err[E_LAST];
    char first_err[1024];
    uint32_t *lat;                      /* µs of each transaction that counted */
    size_t n_lat, cap_lat;
    unsigned long tick_done;
    int ticks;
    long first_id;                      /* of its clients (a shard: --threads) */
    int quiet;                          /* a shard: the main thread prints the progress */
    int over;                           /* a shard's thread is done (atomic) */
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
note_error(struct bench *b, int kind, const char *fmt, const char *why)
{
    __atomic_add_fetch(&b->errors, 1, __ATOMIC_RELAXED);
    if (kind >= 0)
        b->err[kind]++;
    if (b->first_err[0] == '\0')
        snprintf(b->first_err, sizeof(b->first_err), fmt, why != NULL ? why : "");
}

static void next_transaction(struct bclient *c);

/* ---------------- messages ---------------- */

/* header fields and protection, then out; consumes m */
static int
send_msg(struct bclient *c, CMPR_PKIMESSAGE *m);

static void answered(void *arg, int result, unsigned char *ans, size_t len, const char *why);

CMPR_PKIMESSAGE *
cmpr_bench_lend(const CMPR_PKIMESSAGE *tmpl)
{
    CMPR_PKIMESSAGE *m = CMPR_PKIMESSAGE_new();

    if (m != NULL) {
        CMPR_PKIHEADER_free(m->header);
        m->header = CMPR_PKIHEADER_dup(tmpl->header);
    }
    if (m == NULL || m->header == NULL) {
        CMPR_PKIMESSAGE_free(m);
        return NULL;
    }
    CMPR_PKIBODY_free(m->body);
    m->body = tmpl->body;
    return m;
}

void
cmpr_bench_lent_free(CMPR_PKIMESSAGE *m, const CMPR_PKIMESSAGE *tmpl)
{
    if (m != NULL && tmpl != NULL && m->body == tmpl->body)
        m->body = NULL;
    CMPR_PKIMESSAGE_free(m);
}

/* c's message in flight goes; its body may be the template's (first_message) */
static void
sent_free(struct bclient *c)
{
    cmpr_bench_lent_free(c->sent, c->tmpl);
    c->sent = NULL;
}

static int
send_msg(struct bclient *c, CMPR_PKIMESSAGE *m)
{
    struct bench *b = c->b;
    unsigned char *der = NULL;
    size_t len = 0;
    int r;

    struct cmpr_client_creds own = b->cr;

    sent_free(c);
    c->sent = m;
    if (!b->prep && b->op == CMPR_BODY_KUR) {
        /* kur and its certConf are signed with the certificate renewed (RFC 9483 4.1.3) */
        own.secret = NULL;
        own.sigkey = c->key;
        own.sigcert = c->cert;
        own.extracerts = NULL;
    }
    if (cmpr_client_protect(&own, m) != 0 || cmpr_msg_encode(m, &der, &len) != CMPR_OK) {
        note_error(b, -1, "cannot protect or encode a request%s", "");
        free(der);
        return -1;
    }
    r = cmpr_out_start(b->io, c->tag, der, len, answered, c);
    free(der);
    if (r != CMPR_OK) {
        note_error(b, E_TRANSPORT, "cannot start an exchange: %s", cmpr_strerror(r));
        return -1;
    }
    __atomic_add_fetch(&b->in_flight, 1, __ATOMIC_RELAXED);
    return 0;
}

/* a certificate issued and confirmed: what kur renews next, or what rr revokes */
static void
keep_cert(struct bclient *c)
{
    struct bench *b = c->b;

    if (b->op == CMPR_BODY_RR && b->prep) {
        if (c->to_revoke == NULL)
            c->to_revoke = sk_X509_new_null();
        if (c->to_revoke != NULL && sk_X509_push(c->to_revoke, c->got))
            c->got = NULL;
    } else if (b->op == CMPR_BODY_KUR) {
        X509_free(c->cert);
        c->cert = c->got;
        c->got = NULL;
        if (!b->prep) {         /* renewed: the new key is the one to use next */
            EVP_PKEY_free(c->key);
            c->key = c->keys[c->next_key % KUR_KEYS];
            EVP_PKEY_up_ref(c->key);
            c->next_key++;
        }
    }
}

/* the transaction ended: ok, or an error already noted */
static void
end_transaction(struct bclient *c, int ok)
{
    struct bench *b = c->b;
    uint64_t t = now_ns();

    sent_free(c);
    if (ok && c->got != NULL)
        keep_cert(c);
    X509_free(c->got);
    c->got = NULL;
    if (b->prep) {
        if (!ok)
            b->stop = 1;        /* the preparation must succeed; first_err says why not */
        else
            next_transaction(c);
        if (b->in_flight == 0)
            b->stop = 1;
        return;
    }
    if (ok && (b->o.transactions > 0 || t <= b->deadline)) {
        uint64_t us = (t - c->t0) / 1000;

        __atomic_add_fetch(&b->done, 1, __ATOMIC_RELAXED);
        /* (a latency lost to a failed allocation only thins the sample) */
        if (cmpr_array_grow(&b->lat, &b->cap_lat, b->n_lat + 1, sizeof(*b->lat), SIZE_MAX / sizeof(*b->lat))
                == CMPR_OK)
            b->lat[b->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    }
    next_transaction(c);
    if (b->in_flight == 0)
        b->stop = 1;            /* every client is done */
}

static void
answered(void *arg, int result, unsigned char *ans, size_t len, const char *why)
{
    struct bclient *c = arg;
    struct bench *b = c->b;
    CMPR_PKIMESSAGE *rsp = NULL;
    struct cmpr_ee_result res;
    unsigned char *pp = NULL;
    size_t pp_len = 0;
    char w[600];
    int body, verified;

    __atomic_sub_fetch(&b->in_flight, 1, __ATOMIC_RELAXED);
    if (b->closing) {
        free(ans);
        return;
    }
    if (result != CMPR_OK) {
        note_error(b, E_TRANSPORT, "transport: %s", why != NULL && *why ? why : cmpr_strerror(result));
        end_transaction(c, 0);
        return;
    }
    b->msgs++;
    /* as a client that wants neither extraCerts nor caPubs when the answer
     * is MAC-protected (decoding their keys would cost the generator more
     * than all its cryptography); a signed answer is decoded whole */
    body = cmpr_msg_decode_lean(ans, len, &rsp, &pp, &pp_len);
    if (body == CMPR_OK && cmpr_prot_kind(rsp->header->protectionAlg != NULL
                                          ? rsp->header->protectionAlg->algorithm : NULL)
                           == CMPR_PROT_SIG) {
        CMPR_PKIMESSAGE_free(rsp);
        free(pp);
        pp = NULL;
        body = cmpr_msg_decode(ans, len, &rsp, NULL);
    }
    free(ans);
    if (body != CMPR_OK || cmpr_ee_check_header(c->sent, rsp, w, sizeof(w)) != CMPR_OK) {
        note_error(b, E_PROTOCOL, "an answer that is not ours: %s", rsp == NULL ? "not a PKIMessage" : w);
        free(pp);
        goto fail;
    }
    /* a refusal counts by its failInfo whether or not its protection
     * verifies (as the EE client reports it); anything else must verify */
    verified = cmpr_client_verify_over(&b->cr, rsp, pp, pp_len, w, sizeof(w)) == 0;
    free(pp);
    if (cmpr_ee_result(rsp, &res) != CMPR_OK) {
        note_error(b, E_PROTOCOL, "an answer that cannot be read%s", "");
        goto fail;
    }
    body = cmpr_msg_bodytype(c->sent);
    if (res.status == CMPR_STATUS_REJECTION || res.body == CMPR_BODY_ERROR) {
        int any = 0;

        for (int i = 0; i <= CMPR_FI_MAX; i++)
            if (res.failinfo & (1u << i)) {
                b->fi[i]++;
                any = 1;
            }
        if (!any)
            b->err[E_REJECTED]++;
        __atomic_add_fetch(&b->errors, 1, __ATOMIC_RELAXED);
        if (b->first_err[0] == '\0')
            snprintf(b->first_err, sizeof(b->first_err), "rejected: %.300s", res.text);
        goto fail;
    }
    if (!verified) {
        note_error(b, E_VERIFY, "an answer whose protection does not verify: %s", w);
        goto fail;
    }
    if (res.status == CMPR_STATUS_WAITING || res.body == CMPR_BODY_POLLREP) {
        note_error(b, E_WAITING, "the server said waiting (polling is not benchmarked)%s", "");
        goto fail;
    }
    if (body == CMPR_BODY_CERTCONF || body == CMPR_BODY_GENM || body == CMPR_BODY_RR) {
        CMPR_PKIMESSAGE_free(rsp);
        end_transaction(c, res.body == (body == CMPR_BODY_CERTCONF ? CMPR_BODY_PKICONF
                                        : body == CMPR_BODY_GENM ? CMPR_BODY_GENP : CMPR_BODY_RP));
        return;
    }
    if (res.cert == NULL) {
        note_error(b, E_PROTOCOL, "an answer without a certificate%s", "");
        goto fail;
    }
    X509_free(c->got);
    c->got = NULL;
    /* kept for what kur renews and rr revokes only (a copy decodes its key) */
    if ((b->op == CMPR_BODY_KUR || b->op == CMPR_BODY_RR) && (c->got = X509_dup(res.cert)) == NULL) {
        note_error(b, -1, "out of memory%s", "");
        goto fail;
    }
    if (res.implicit_confirm) {
        CMPR_PKIMESSAGE_free(rsp);
        end_transaction(c, 1);
        return;
    }
    {
        CMPR_PKIMESSAGE *conf = cmpr_ee_new_certconf(rsp, res.cert_req_id, res.cert, 1, NULL);

        CMPR_PKIMESSAGE_free(rsp);
        if (conf == NULL || send_msg(c, conf) != 0) {
            if (conf == NULL)
                note_error(b, -1, "cannot make a certConf%s", "");
            end_transaction(c, 0);
        }
        return;
    }
 fail:
    CMPR_PKIMESSAGE_free(rsp);
    end_transaction(c, 0);
}

/* The first message of c's next transaction (header still to fill), or
 * NULL when c has nothing more to do (the preparation for kur and rr). */
static CMPR_PKIMESSAGE *
first_message(struct bclient *c)
{
    struct bench *b = c->b;
    CMPR_PKIMESSAGE *m = NULL;

    if (b->prep) {
        if (b->op == CMPR_BODY_KUR ? c->cert != NULL
                : c->to_revoke != NULL && sk_X509_num(c->to_revoke) >= b->quota)
            return NULL;
    } else if (b->op == CMPR_BODY_KUR) {
        struct cmpr_ee_certreq r = { CMPR_BODY_KUR, c->keys[c->next_key % KUR_KEYS], NULL, NULL, c->cert,
                                     b->o.profile, b->o.implicit, 0, NULL, NULL };

        if ((m = cmpr_ee_new_certreq(&r)) == NULL)
            note_error(b, -1, "cannot make a kur%s", "");
        return m;
    } else if (b->op == CMPR_BODY_RR) {
        X509 *x = c->to_revoke != NULL ? sk_X509_pop(c->to_revoke) : NULL;

        if (x == NULL)
            return NULL;
        if ((m = cmpr_ee_new_rr(x, -1)) == NULL)
            note_error(b, -1, "cannot make an rr%s", "");
        X509_free(x);
        return m;
    }
    /* the template's body (key and proof of possession made before the
     * clock) is lent, not copied: a copy decodes its public key again,
     * which cost the generator more than its cryptography */
    if ((m = cmpr_bench_lend(c->tmpl)) == NULL)
        note_error(b, -1, "out of memory%s", "");
    return m;
}

static void
next_transaction(struct bclient *c)
{
    struct bench *b = c->b;
    CMPR_PKIMESSAGE *m;

    for (;;) {
        if (b->stop || (!b->prep && (b->o.transactions > 0 ? b->started >= (unsigned long)b->o.transactions
                                                            : now_ns() >= b->deadline)))
            return;
        /* a server that cannot be reached at all: no point hammering it */
        if (b->done == 0 && b->err[E_TRANSPORT] >= 3 * (unsigned long)b->o.clients) {
            b->stop = 1;
            return;
        }
        if ((m = first_message(c)) == NULL)
            return;             /* this client has done its part */
        b->started += !b->prep;
        c->t0 = now_ns();
        if (cmpr_hdr_set_fresh_transaction_id(m->header) == CMPR_OK && cmpr_hdr_set_fresh_nonce(m->header) == CMPR_OK
                && cmpr_hdr_set_message_time(m->header, time(NULL)) == CMPR_OK && send_msg(c, m) == 0)
            return;
    }
}

/* ---------------- setting up ---------------- */

/* the first request of client i, its body complete (key made, POP signed) */
static CMPR_PKIMESSAGE *
make_template(struct bench *b, int i, char *err, size_t errlen)
{
    EVP_PKEY *key = cmpr_client_gen_key(b->o.keytype);
    X509_NAME *subject = NULL;
    CMPR_PKIMESSAGE *m = NULL;
    char cn[64];

    if (key == NULL) {
        snprintf(err, errlen, "cannot make a %s key", b->o.keytype);
        return NULL;
    }
    snprintf(cn, sizeof(cn), "/CN=bench-%ld", b->first_id + i);
    subject = cmpr_client_parse_name(cn);
    if (b->body == CMPR_BODY_GENM) {
        m = cmpr_ee_new_genm(-1);
    } else if (b->body == CMPR_BODY_P10CR) {
        X509_REQ *csr = X509_REQ_new();
        const EVP_MD *md = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448") ? NULL : EVP_sha256();

        if (csr != NULL && X509_REQ_set_version(csr, 0) && X509_REQ_set_subject_name(csr, subject)
                && X509_REQ_set_pubkey(csr, key) && X509_REQ_sign(csr, key, md) > 0)
            m = cmpr_ee_new_p10cr(csr, b->o.profile, b->o.implicit);
        X509_REQ_free(csr);
    } else {
        struct cmpr_ee_certreq r = { b->body, key, subject, NULL, NULL, b->o.profile, b->o.implicit, 0, NULL, NULL };

        m = cmpr_ee_new_certreq(&r);
    }
    if (m == NULL)
        snprintf(err, errlen, "cannot make the request: %s", ERR_reason_error_string(ERR_peek_last_error()));
    X509_NAME_free(subject);
    b->cl[i].key = key;
    return m;
}

static int
setup(struct bench *b, char *err, size_t errlen)
{
    struct cmpr_out_opts oo;
    X509_NAME *subject_check = NULL;

    if (strcmp(b->o.op, "ir") == 0 || strcmp(b->o.op, "cr") == 0 || strcmp(b->o.op, "p10cr") == 0
            || strcmp(b->o.op, "genm") == 0 || strcmp(b->o.op, "kur") == 0 || strcmp(b->o.op, "rr") == 0) {
        b->op = cmpr_body_from_name(b->o.op);
    } else {
        snprintf(err, errlen, "--op %s: give ir, cr, p10cr, kur, genm or rr", b->o.op);
        return -1;
    }
    /* kur renews, rr revokes, certificates enrolled by ir before the clock */
    b->body = b->op == CMPR_BODY_KUR || b->op == CMPR_BODY_RR ? CMPR_BODY_IR : b->op;
    if (b->op == CMPR_BODY_RR && b->o.transactions == 0) {
        snprintf(err, errlen, "--op rr needs --transactions N (the certificates are enrolled first)");
        return -1;
    }
    if ((b->op == CMPR_BODY_KUR || b->op == CMPR_BODY_RR) && b->o.bound) {
        snprintf(err, errlen, "--op %s is measured against a server only", b->o.op);
        return -1;
    }
    b->quota = b->o.transactions > 0 ? (b->o.transactions + b->o.clients - 1) / b->o.clients : 0;
    b->cr.recipient = b->o.recipient;
    if (strcmp(b->o.protection, "mac") == 0 || strcmp(b->o.protection, "pbmac1") == 0) {
        if ((b->cr.secret = cmpr_client_secret(b->o.secret_spec)) == NULL) {
            snprintf(err, errlen, "--protection %s needs --secret pass:TEXT or env:VAR (and usually --ref)",
                     b->o.protection);
            return -1;
        }
        b->cr.ref = b->o.ref;
        b->cr.pbmac1 = strcmp(b->o.protection, "pbmac1") == 0;
        /* answers' keys kept, as any client may (a server that keeps its
         * salt a while then costs one derivation per answer less); not in
         * the crypto bound, whose answers have a random salt each */
        if (!b->o.bound && (b->cr.verify_cache = cmpr_mac_cache_new(0)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    } else if (strcmp(b->o.protection, "sig") == 0) {
        if (b->o.cert == NULL || b->o.key == NULL || (b->cr.sigkey = cmpr_load_key(b->o.key, NULL)) == NULL
                || (b->cr.extracerts = cmpr_load_certs(b->o.cert)) == NULL) {
            snprintf(err, errlen, "--protection sig needs --cert FILE (PEM, the client's certificate first,"
                     " then its chain) and --key FILE (PEM)");
            return -1;
        }
        b->cr.sigcert = sk_X509_shift(b->cr.extracerts);
    } else {
        snprintf(err, errlen, "--protection %s: give mac, pbmac1 or sig", b->o.protection);
        return -1;
    }
    if (b->o.trusted != NULL && (b->cr.trusted = cmpr_client_load_trusted(b->o.trusted)) == NULL) {
        snprintf(err, errlen, "--trusted %s: no certificates", b->o.trusted);
        return -1;
    }
    if (b->o.srvcert != NULL && (b->cr.srvcert = cmpr_load_cert(b->o.srvcert)) == NULL) {
        snprintf(err, errlen, "--srvcert %s: no certificate", b->o.srvcert);
        return -1;
    }
    if (b->o.recipient != NULL && (subject_check = cmpr_client_parse_name(b->o.recipient)) == NULL) {
        snprintf(err, errlen, "--recipient '%s' is not a name like /CN=CA", b->o.recipient);
        return -1;
    }
    X509_NAME_free(subject_check);
    memset(&oo, 0, sizeof(oo));
    oo.timeout_ms = b->o.timeout * 1000;
    oo.tls_ca = b->o.tls_ca;
    oo.tls_cert = b->o.tls_cert;
    oo.tls_key = b->o.tls_key;
    oo.tcp_version = b->o.tcp_version;
    oo.no_keep_alive = !b->o.keep_alive;
    if (b->o.bound) {
        ;                       /* no server: all in memory */
    } else if (strncmp(b->o.server, "http://", 7) != 0 && strncmp(b->o.server, "https://", 8) != 0
               && strncmp(b->o.server, "tcp://", 6) != 0) {
        snprintf(err, errlen, "--server %s: give http://, https:// or tcp://", b->o.server);
        return -1;
    } else if ((b->io = cmpr_out_new(b->o.server, &oo, err, errlen)) == NULL) {
        return -1;
    }
    if ((b->cl = calloc((size_t)b->o.clients, sizeof(*b->cl))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (long i = 0; i < b->o.clients; i++) {
        struct bclient *c = &b->cl[i];

        c->b = b;
        c->id = (int)i;
        snprintf(c->tag, sizeof(c->tag), "bench-%ld", b->first_id + i);
        if ((c->tmpl = make_template(b, (int)i, err, errlen)) == NULL)
            return -1;
        for (int k = 0; b->op == CMPR_BODY_KUR && k < KUR_KEYS; k++)
            if ((c->keys[k] = cmpr_client_gen_key(b->o.keytype)) == NULL) {
                snprintf(err, errlen, "cannot make a %s key", b->o.keytype);
                return -1;
            }
    }
    return 0;
}

static void
teardown(struct bench *b)
{
    b->closing = 1;
    cmpr_out_free(b->io);       /* exchanges still out end here (answered() ignores them) */
    b->io = NULL;
    if (b->cl != NULL)
        for (long i = 0; i < b->o.clients; i++) {
            sent_free(&b->cl[i]);
            CMPR_PKIMESSAGE_free(b->cl[i].tmpl);
            EVP_PKEY_free(b->cl[i].key);
            X509_free(b->cl[i].got);
            X509_free(b->cl[i].cert);
            for (int k = 0; k < KUR_KEYS; k++)
                EVP_PKEY_free(b->cl[i].keys[k]);
            sk_X509_pop_free(b->cl[i].to_revoke, X509_free);
        }
    free(b->cl);
    EVP_PKEY_free(b->cr.sigkey);
    X509_free(b->cr.sigcert);
    sk_X509_pop_free(b->cr.extracerts, X509_free);
    X509_STORE_free(b->cr.trusted);
    X509_free(b->cr.srvcert);
    cmpr_mac_cache_free(b->cr.verify_cache);
    free(b->lat);
}

/* ---------------- running and reporting ---------------- */

static void
tick(void *arg)
{
    struct bench *b = arg;

    b->ticks++;
    if (!b->o.json && !b->quiet)
        fprintf(stderr, "  %3d s: %7lu tps, %8lu done, %6lu errors, %4ld in flight\n", b->ticks,
                b->done - b->tick_done, b->done, b->errors, b->in_flight);
    b->tick_done = b->done;
    if (b->o.transactions == 0 && now_ns() >= b->deadline && !b->draining) {
        /* past the deadline: what is in flight may finish (it does not count) */
        b->draining = 1;
        b->drain_end = now_ns() + (uint64_t)b->o.timeout * 1000000000u;
    }
    if (b->draining && now_ns() >= b->drain_end)
        b->stop = 1;            /* a server that never answers: give up on it */
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static double
pct(const struct bench *b, double p)
{
    size_t i;

    if (b->n_lat == 0)
        return 0;
    i = (size_t)(p * (double)(b->n_lat - 1) + 0.5);
    return b->lat[i] / 1000.0;
}

/* what protected the measured requests */
static const char *
protection(const struct bench *b)
{
    return b->op == CMPR_BODY_KUR ? "sig" : b->o.protection;
}

static void
report(struct bench *b)
{
    double secs = (double)(b->end - b->start) / 1e9;
    double tps = secs > 0 ? (double)b->done / secs : 0;
    double mps = secs > 0 ? (double)b->msgs / secs : 0;
    int first = 1;

    if (b->n_lat > 0)
        qsort(b->lat, b->n_lat, sizeof(*b->lat), cmp_u32);
    if (b->o.json) {
        printf("{\"server\": \"%s\", \"op\": \"%s\", \"protection\": \"%s\", \"keytype\": \"%s\", "
               "\"clients\": %ld, \"keep_alive\": %s, \"seconds\": %.3f, \"transactions\": %lu, "
               "\"tps\": %.1f, \"messages_per_s\": %.1f, \"latency_ms\": {\"p50\": %.2f, \"p90\": %.2f, "
               "\"p99\": %.2f, \"max\": %.2f}, \"errors\": {", b->o.server, b->o.op, protection(b),
               b->o.keytype, b->o.clients, b->o.keep_alive ? "true" : "false", secs, b->done, tps, mps,
               pct(b, 0.5), pct(b, 0.9), pct(b, 0.99), pct(b, 1.0));
        for (int i = 0; i <= CMPR_FI_MAX; i++)
            if (b->fi[i] > 0) {
                char n[64];

                cmpr_ee_failinfo_names(1u << i, n, sizeof(n));
                printf("%s\"%s\": %lu", first ? "" : ", ", n, b->fi[i]);
                first = 0;
            }
        for (int i = 0; i < E_LAST; i++)
            if (b->err[i] > 0) {
                printf("%s\"%s\": %lu", first ? "" : ", ", err_names[i], b->err[i]);
                first = 0;
            }
        printf("}}\n");
        return;
    }
    printf("%s %s (%s, %s keys), %ld clients, keep-alive %s\n", b->o.server, b->o.op, protection(b),
           b->o.keytype, b->o.clients, b->o.keep_alive ? "on" : "off");
    printf("  %lu transactions in %.2f s: %.1f tps, %.1f messages/s\n", b->done, secs, tps, mps);
    printf("  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", pct(b, 0.5), pct(b, 0.9), pct(b, 0.99),
           pct(b, 1.0));
    printf("  errors: %lu\n", b->errors);
    for (int i = 0; i <= CMPR_FI_MAX; i++)
        if (b->fi[i] > 0) {
            char n[64];

            cmpr_ee_failinfo_names(1u << i, n, sizeof(n));
            printf("    %-28s %lu\n", n, b->fi[i]);
        }
    for (int i = 0; i < E_LAST; i++)
        if (b->err[i] > 0)
            printf("    %-28s %lu\n", err_names[i], b->err[i]);
    if (b->first_err[0])
        printf("  first error: %s\n", b->first_err);
}

/* --write-requests DIR: N first requests, implicitConfirm asked, protected,
 * as DIR/bench-NNNNNN.pki (written durably), for the file drop's benchmark */
static int
write_requests(struct bench *b)
{
    char name[64];

    for (long i = 0; i < b->o.transactions; i++) {
        CMPR_PKIMESSAGE *m = CMPR_PKIMESSAGE_dup(b->cl[i % b->o.clients].tmpl);
        unsigned char *der = NULL;
        size_t len = 0;
        int ok = m != NULL && cmpr_hdr_set_fresh_transaction_id(m->header) == CMPR_OK
                 && cmpr_hdr_set_fresh_nonce(m->header) == CMPR_OK
                 && cmpr_hdr_set_message_time(m->header, time(NULL)) == CMPR_OK
                 && cmpr_client_protect(&b->cr, m) == 0 && cmpr_msg_encode(m, &der, &len) == CMPR_OK;

        CMPR_PKIMESSAGE_free(m);
        snprintf(name, sizeof(name), "bench-%06ld.pki", i);
        if (!ok || cmpr_fs_write_durable(b->o.write_dir, ".bench.tmp", name, der, len, 0644) != 0) {
            fprintf(stderr, "cmprouter bench: cannot write %s/%s\n", b->o.write_dir, name);
            free(der);
            return 1;
        }
        free(der);
    }
    if (!b->o.json)
        printf("%ld requests written to %s\n", b->o.transactions, b->o.write_dir);
    return 0;
}

/* kur and rr: each client enrolls (ir) what it will renew or revoke, before
 * the clock; then the counters start from zero */
static int
prepare(struct bench *b)
{
    if (!b->o.json)
        fprintf(stderr, "cmprouter bench: enrolling %ld certificate%s to %s first\n",
                b->op == CMPR_BODY_KUR ? b->o.clients : b->quota * b->o.clients,
                b->op == CMPR_BODY_KUR && b->o.clients == 1 ? "" : "s",
                b->op == CMPR_BODY_KUR ? "renew" : "revoke");
    b->prep = 1;
    for (long i = 0; i < b->o.clients; i++)
        next_transaction(&b->cl[i]);
    if (b->in_flight > 0)
        cmpr_out_run(b->io, &b->stop, 0, NULL, NULL);
    for (long i = 0; i < b->o.clients && b->errors == 0; i++)
        if (b->op == CMPR_BODY_KUR ? b->cl[i].cert == NULL
                : b->cl[i].to_revoke == NULL || sk_X509_num(b->cl[i].to_revoke) < b->quota)
            note_error(b, -1, "%s", "a client could not enroll");
    if (b->errors > 0) {
        fprintf(stderr, "cmprouter bench: the preparation failed: %s\n", b->first_err);
        return -1;
    }
    b->prep = 0;
    b->stop = 0;
    b->msgs = b->done = b->started = 0;
    return 0;
}

/* --crypto-bound: the same transactions in memory on --clients threads */
static int
run_bound(struct bench *b)
{
    struct cmpr_bound_opts bo = { b->o.clients, b->o.duration, &b->cr, b->cl[0].tmpl };
    struct cmpr_bound_result br;
    unsigned long per = b->body == CMPR_BODY_GENM || b->o.implicit ? 2 : 4;

    if (!b->o.json)
        fprintf(stderr, "cmprouter bench: the crypto bound of %s %s on %ld threads for %ld s\n", b->o.op,
                b->o.protection, b->o.clients, b->o.duration);
    if (cmpr_bench_bound(&bo, &br) != 0) {
        fprintf(stderr, "cmprouter bench: the crypto bound could not run\n");
        return 2;
    }
    b->o.server = "crypto-bound";
    b->start = br.start;
    b->end = br.end;
    b->done = br.done;
    b->msgs = br.done * per;
    b->errors = br.fails;
    b->lat = br.lat;
    b->n_lat = br.n_lat;
    b->cap_lat = br.cap_lat;
    if (br.fails > 0)
        snprintf(b->first_err, sizeof(b->first_err), "%lu transactions failed a check", br.fails);
    report(b);
    return b->done > 0 ? 0 : 1;
}

static const char usage_text[] =
    "usage: cmprouter bench --server URI | --crypto-bound [--clients N] [--threads T]\n"
    "       [--duration S | --transactions N]\n"
    "       [--op ir|cr|p10cr|kur|genm|rr] [--protection mac|pbmac1|sig] [--keytype SPEC]\n"
    "       [--ref KID --secret pass:TEXT|env:VAR] [--cert FILE --key FILE]\n"
    "       [--trusted FILE | --srvcert FILE]\n"
    "       [--recipient NAME] [--profile NAME] [--implicit-confirm] [--keep-alive on|off]\n"
    "       [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--tcp-framing 10|2510]\n"
    "       [--timeout S] [--json] [--write-requests DIR --transactions N]\n";

static int
num(const char *s, long min, long max, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
parse(struct bopts *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->op = "ir";
    o->protection = "mac";
    o->keytype = "ec:P-256";
    o->duration = 10;
    o->timeout = 30;
    o->keep_alive = 1;
    o->tcp_version = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;

#define STR(flag, field) if (strcmp(a, flag) == 0 && v != NULL) { o->field = v; i++; continue; }
        STR("--server", server) STR("--op", op) STR("--protection", protection) STR("--keytype", keytype)
        STR("--ref", ref) STR("--secret", secret_spec) STR("--cert", cert) STR("--key", key)
        STR("--trusted", trusted) STR("--srvcert", srvcert) STR("--recipient", recipient) STR("--profile", profile)
        STR("--tls-ca", tls_ca) STR("--tls-cert", tls_cert) STR("--tls-key", tls_key)
        STR("--write-requests", write_dir)
#undef STR
        if (strcmp(a, "--clients") == 0 && v != NULL && num(v, 1, 100000, &n) == 0) {
            o->clients = n;
        } else if (strcmp(a, "--duration") == 0 && v != NULL && num(v, 1, 86400, &n) == 0) {
            o->duration = n;
        } else if (strcmp(a, "--transactions") == 0 && v != NULL && num(v, 1, 100000000, &n) == 0) {
            o->transactions = n;
        } else if (strcmp(a, "--threads") == 0 && v != NULL && num(v, 1, 1024, &n) == 0) {
            o->threads = n;
        } else if (strcmp(a, "--timeout") == 0 && v != NULL && num(v, 1, 3600, &n) == 0) {
            o->timeout = n;
        } else if (strcmp(a, "--keep-alive") == 0 && v != NULL && cmpr_conf_parse_bool(v, &o->keep_alive) == 0) {
            ;
        } else if (strcmp(a, "--tcp-framing") == 0 && v != NULL && (strcmp(v, "10") == 0 || strcmp(v, "2510") == 0)) {
            o->tcp_version = strcmp(v, "10") == 0 ? 10 : 0;
        } else if (strcmp(a, "--implicit-confirm") == 0) {
            o->implicit = 1;
            continue;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        } else if (strcmp(a, "--crypto-bound") == 0) {
            o->bound = 1;
            continue;
        } else {
            fprintf(stderr, "cmprouter bench: %s%s%s\n%s", v == NULL && a[0] == '-' ? "missing value for " : "bad option ",
                    a, v != NULL && a[0] == '-' ? " (or its value)" : "", usage_text);
            return -1;
        }
        i++;
    }
    if (o->clients == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        o->clients = o->bound ? (cpus > 0 ? cpus : 1) : 8;
    }
    if (o->threads == 0) {              /* one per CPU */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        o->threads = cpus > 0 ? cpus : 1;
    }
    if (o->threads > o->clients)
        o->threads = o->clients;
    if (o->write_dir != NULL) {
        if (o->transactions == 0) {
            fprintf(stderr, "cmprouter bench: --write-requests needs --transactions N\n");
            return -1;
        }
        o->implicit = 1;        /* one file per transaction */
        o->bound = 1;           /* no server */
    }
    if (o->server == NULL && !o->bound) {
        fprintf(stderr, "cmprouter bench: --server URI (or --crypto-bound) is needed\n%s", usage_text);
        return -1;
    }
    return 0;
}

/* ---------------- clients on several threads ---------------- */

/* one thread's clients: each shard has its own connections and loop */
static void *
shard_main(void *arg)
{
    struct bench *b = arg;

    for (long i = 0; i < b->o.clients; i++)
        next_transaction(&b->cl[i]);
    if (b->in_flight > 0)
        cmpr_out_run(b->io, &b->stop, 1000, tick, b);
    /* the window measured: the whole duration, or until the last transaction */
    b->end = now_ns();
    if (b->o.transactions == 0 && b->end > b->deadline)
        b->end = b->deadline;
    __atomic_store_n(&b->over, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* what the shards counted, as one */
static void
merge(struct bench *all, struct bench *sh, long n)
{
    all->op = sh[0].op;
    all->body = sh[0].body;
    all->start = sh[0].start;
    all->end = 0;
    for (long k = 0; k < n; k++) {
        struct bench *b = &sh[k];

        if (b->end > all->end)
            all->end = b->end;
        all->done += b->done;
        all->msgs += b->msgs;
        all->errors += b->errors;
        for (int i = 0; i <= CMPR_FI_MAX; i++)
            all->fi[i] += b->fi[i];
        for (int i = 0; i < E_LAST; i++)
            all->err[i] += b->err[i];
        if (all->first_err[0] == '\0' && b->first_err[0] != '\0')
            snprintf(all->first_err, sizeof(all->first_err), "%s", b->first_err);
        if (b->n_lat > 0 && cmpr_array_grow(&all->lat, &all->cap_lat, all->n_lat + b->n_lat, sizeof(*all->lat),
                                            SIZE_MAX / sizeof(*all->lat)) == CMPR_OK) {
            memcpy(all->lat + all->n_lat, b->lat, b->n_lat * sizeof(*b->lat));
            all->n_lat += b->n_lat;
        }
    }
}

/* b's clients split over b->o.threads shards, each on a thread of its own
 * (the generator must not be what limits); this thread prints the
 * progress; the report is of all of them */
static int
run_shards(struct bench *b)
{
    long n = b->o.threads, started = 0, ticks = 0;
    struct bench *sh = calloc((size_t)n, sizeof(*sh));
    pthread_t *th = calloc((size_t)n, sizeof(*th));
    unsigned long last = 0;
    uint64_t start;
    char err[600];
    int rc = 1, over = 0;

    if (sh == NULL || th == NULL) {
        fprintf(stderr, "cmprouter bench: out of memory\n");
        goto out;
    }
    for (long k = 0, first = 0; k < n; k++) {
        sh[k].o = b->o;
        sh[k].o.clients = b->o.clients / n + (k < b->o.clients % n);
        if (b->o.transactions > 0)
            sh[k].o.transactions = b->o.transactions / n + (k < b->o.transactions % n);
        sh[k].first_id = first;
        sh[k].quiet = 1;
        first += sh[k].o.clients;
        if (setup(&sh[k], err, sizeof(err)) != 0) {
            fprintf(stderr, "cmprouter bench: %s\n", err);
            rc = 2;
            goto out;
        }
        if ((sh[k].op == CMPR_BODY_KUR || sh[k].op == CMPR_BODY_RR) && prepare(&sh[k]) != 0)
            goto out;
    }
    start = now_ns();
    for (long k = 0; k < n; k++) {
        sh[k].start = start;
        sh[k].deadline = start + (uint64_t)b->o.duration * 1000000000u;
    }
    for (; started < n; started++)
        if (pthread_create(&th[started], NULL, shard_main, &sh[started]) != 0) {
            fprintf(stderr, "cmprouter bench: cannot start a thread\n");
            for (long k = 0; k < started; k++)
                __atomic_store_n(&sh[k].stop, 1, __ATOMIC_RELAXED);
            break;
        }
    while (started == n && !over) {
        unsigned long done = 0, errors = 0;
        long in_flight = 0;

        for (int t = 0; t < 10 && !over; t++) {     /* a second, or until all are over */
            usleep(100000);
            over = 1;
            for (long k = 0; k < n; k++)
                if (!__atomic_load_n(&sh[k].over, __ATOMIC_ACQUIRE))
                    over = 0;
        }
        for (long k = 0; k < n; k++) {
            done += __atomic_load_n(&sh[k].done, __ATOMIC_RELAXED);
            errors += __atomic_load_n(&sh[k].errors, __ATOMIC_RELAXED);
            in_flight += __atomic_load_n(&sh[k].in_flight, __ATOMIC_RELAXED);
        }
        if (!b->o.json && !over)
            fprintf(stderr, "  %3ld s: %7lu tps, %8lu done, %6lu errors, %4ld in flight\n", ++ticks, done - last,
                    done, errors, in_flight);
        last = done;
    }
    for (long k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    if (started < n)
        goto out;
    merge(b, sh, n);
    report(b);
    if (b->done == 0)
        fprintf(stderr, "cmprouter bench: no transaction succeeded; first error: %s\n",
                b->first_err[0] ? b->first_err : "none (nothing answered in time)");
    else
        rc = 0;
 out:
    for (long k = 0; sh != NULL && k < n; k++)
        teardown(&sh[k]);
    free(sh);
    free(th);
    return rc;
}

int
cmpr_bench_main(int argc, char **argv)
{
    struct bench b;
    char err[600];
    int rc = 1;

    memset(&b, 0, sizeof(b));
    if (parse(&b.o, argc, argv) != 0)
        return 2;
    if (!b.o.bound) {
        if (!b.o.json)
            fprintf(stderr, "cmprouter bench: %ld clients on %ld thread%s, %s %s to %s, %s\n", b.o.clients,
                    b.o.threads, b.o.threads == 1 ? "" : "s", b.o.op, b.o.protection, b.o.server,
                    b.o.transactions > 0 ? "counting transactions" : "for a while");
        rc = run_shards(&b);
        teardown(&b);
        return rc;
    }
    if (setup(&b, err, sizeof(err)) != 0) {
        fprintf(stderr, "cmprouter bench: %s\n", err);
        teardown(&b);
        return 2;
    }
    if (b.o.write_dir != NULL) {
        rc = write_requests(&b);
        teardown(&b);
        return rc;
    }
    rc = run_bound(&b);
    teardown(&b);
    return rc;
}
