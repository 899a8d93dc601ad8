/*
 * cmprouter bench --crypto-bound: the cryptography (and the encoding) of
 * one transaction, both sides, in a tight loop on T threads with no I/O, no
 * store and no scheduling: the ceiling any CMP server on this machine could
 * reach for it, the baseline of bench/run's ratios. Per transaction, as the
 * load generator runs it (the key and the proof of possession are made
 * before the clock): the client protects its request; the server decodes
 * it, checks the protection and the proof of possession, signs a
 * certificate and protects the answer; the client decodes and checks it,
 * hashes the certificate and protects its certConf; the server checks that
 * and protects pkiConf; the client checks pkiConf. genm: a protected genm
 * and a protected empty genp. Every message has a random salt and every MAC
 * key is derived where it is used, as between OpenSSL's client and mock
 * server (cmprouterd keeps its salt a minute and the load generator keeps
 * the keys of answers: they skip half of these derivations).
 */
#include "bench.h"
#include "client.h"
#include "codec/algs.h"
#include "codec/ee.h"
#include "codec/msg.h"
#include "codec/protect.h"
#include "base/buf.h"
#include "base/err.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

struct bound {
    const struct cmpr_bound_opts *o;
    EVP_PKEY *ca_key;
    X509 *ca;
    uint64_t deadline;
    pthread_mutex_t mu;
    struct cmpr_bound_result *res;
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* one message over the "wire": protected, encoded, decoded (its body may
 * be lent by tmpl) */
static CMPR_PKIMESSAGE *
wire_lent(const struct cmpr_client_creds *cr, CMPR_PKIMESSAGE *m, const CMPR_PKIMESSAGE *tmpl)
{
    unsigned char *der = NULL;
    size_t len = 0;
    CMPR_PKIMESSAGE *out = NULL;

    if (m != NULL && cmpr_client_protect(cr, m) == 0 && cmpr_msg_encode(m, &der, &len) == CMPR_OK)
        (void)cmpr_msg_decode(der, len, &out, NULL);
    free(der);
    cmpr_bench_lent_free(m, tmpl);
    return out;
}

static CMPR_PKIMESSAGE *
wire(const struct cmpr_client_creds *cr, CMPR_PKIMESSAGE *m)
{
    return wire_lent(cr, m, NULL);
}

static int
verified(const struct cmpr_client_creds *cr, const CMPR_PKIMESSAGE *m)
{
    char why[600];

    return m != NULL && cmpr_client_verify(cr, m, why, sizeof(why)) == 0;
}

/* the server's part of issuing: a certificate for the template's key, the
 * key copied as it came, as core/ca.c does */
static X509 *
issue(struct bound *b, const CMPR_CERTREQMSG *crm, long serial)
{
    EVP_PKEY *pk = cmpr_tmpl_get1_pubkey(crm->certReq->certTemplate);
    X509 *x = X509_new();
    int ok = pk != NULL && x != NULL && X509_set_version(x, 2)
             && ASN1_INTEGER_set(X509_get_serialNumber(x), serial)
             && X509_set_issuer_name(x, X509_get_subject_name(b->ca))
             && X509_set_subject_name(x, crm->certReq->certTemplate->subject)
             && X509_gmtime_adj(X509_getm_notBefore(x), 0)
             && X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365)
             && (cmpr_spki_copy(crm->certReq->certTemplate->publicKey, X509_get_X509_PUBKEY(x)) > 0
                 || X509_set_pubkey(x, pk))
             && X509_sign(x, b->ca_key, cmpr_md(NID_sha256)) > 0;

    EVP_PKEY_free(pk);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* one transaction; 0 when every check passed */
static int
transaction(struct bound *b, const struct cmpr_client_creds *cr, const CMPR_PKIMESSAGE *tmpl, long serial)
{
    CMPR_PKIMESSAGE *lent = cmpr_bench_lend(tmpl), *req = NULL, *rsp = NULL, *conf = NULL, *done = NULL;
    CMPR_CERTREQMSGS *reqs;
    CMPR_CERTREQMSG *crm;
    struct cmpr_ee_result res;
    X509 *cert = NULL;
    int ok = 0;

    if (lent == NULL || cmpr_hdr_set_fresh_transaction_id(lent->header) != CMPR_OK
            || cmpr_hdr_set_fresh_nonce(lent->header) != CMPR_OK) {
        cmpr_bench_lent_free(lent, tmpl);
        goto out;
    }
    if ((req = wire_lent(cr, lent, tmpl)) == NULL || !verified(cr, req))
        goto out;
    if (cmpr_msg_bodytype(req) == CMPR_BODY_GENM) {
        ok = (rsp = wire(cr, cmpr_msg_build_genp(req, NULL))) != NULL && verified(cr, rsp);
        goto out;
    }
    if ((reqs = cmpr_msg_get0_reqs(req)) == NULL || (crm = sk_CMPR_CERTREQMSG_value(reqs, 0)) == NULL
            || cmpr_crm_verify_pop_sig(crm) != CMPR_OK || (cert = issue(b, crm, serial)) == NULL)
        goto out;
    rsp = wire(cr, cmpr_msg_build_certrep(req, CMPR_BODY_IP, cmpr_crm_certreqid(crm),
                                          cmpr_pkisi_new(CMPR_STATUS_ACCEPTED, 0, NULL), cert, NULL, NULL));
    if (!verified(cr, rsp) || cmpr_ee_result(rsp, &res) != CMPR_OK || res.cert == NULL)
        goto out;
    if (cmpr_hdr_has_implicit_confirm(req->header)) {
        ok = 1;                 /* granted: no certConf */
        goto out;
    }
    conf = wire(cr, cmpr_ee_new_certconf(rsp, res.cert_req_id, res.cert, 1, NULL));
    if (!verified(cr, conf))
        goto out;
    done = wire(cr, cmpr_msg_build_pkiconf(conf));
    ok = verified(cr, done);
 out:
    X509_free(cert);
    CMPR_PKIMESSAGE_free(req);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(conf);
    CMPR_PKIMESSAGE_free(done);
    return ok ? 0 : -1;
}

static void *
worker(void *arg)
{
    struct bound *b = arg;
    const struct cmpr_bound_opts *o = b->o;
    uint32_t *lat = NULL;
    size_t n = 0, cap = 0;
    unsigned long fails = 0;
    long serial = (long)(now_ns() & 0xffffff) * 1000;
    CMPR_PKIMESSAGE *tmpl;

    /* a template of its own: encoding may touch cached encodings */
    pthread_mutex_lock(&b->mu);
    tmpl = CMPR_PKIMESSAGE_dup(o->tmpl);
    pthread_mutex_unlock(&b->mu);
    while (tmpl != NULL && now_ns() < b->deadline) {
        uint64_t t0 = now_ns();

        if (transaction(b, o->cr, tmpl, ++serial) != 0) {
            fails++;
            continue;
        }
        if (cmpr_array_grow(&lat, &cap, n + 1, sizeof(*lat), SIZE_MAX / sizeof(*lat)) == CMPR_OK)
            lat[n++] = (uint32_t)((now_ns() - t0) / 1000);
    }
    pthread_mutex_lock(&b->mu);
    if (cmpr_array_grow(&b->res->lat, &b->res->cap_lat, b->res->n_lat + n, sizeof(*lat),
                        SIZE_MAX / sizeof(*lat)) == CMPR_OK) {
        memcpy(b->res->lat + b->res->n_lat, lat, n * sizeof(*lat));
        b->res->n_lat += n;
    }
    b->res->done += n;
    b->res->fails += fails;
    pthread_mutex_unlock(&b->mu);
    CMPR_PKIMESSAGE_free(tmpl);
    free(lat);
    return NULL;
}

/* a throwaway issuing CA (P-256) */
static int
make_ca(struct bound *b)
{
    X509_NAME *n = X509_NAME_new();
    int ok;

    b->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    b->ca = X509_new();
    ok = n != NULL && b->ca_key != NULL && b->ca != NULL
         && X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"bound CA", -1, -1, 0)
         && X509_set_version(b->ca, 2) && ASN1_INTEGER_set(X509_get_serialNumber(b->ca), 1)
         && X509_set_issuer_name(b->ca, n) && X509_set_subject_name(b->ca, n)
         && X509_gmtime_adj(X509_getm_notBefore(b->ca), 0)
         && X509_gmtime_adj(X509_getm_notAfter(b->ca), 86400L * 365)
         && X509_set_pubkey(b->ca, b->ca_key) && X509_sign(b->ca, b->ca_key, EVP_sha256()) > 0;
    X509_NAME_free(n);
    return ok ? 0 : -1;
}

int
cmpr_bench_bound(const struct cmpr_bound_opts *o, struct cmpr_bound_result *res)
{
    struct bound b;
    pthread_t *th = calloc((size_t)o->threads, sizeof(*th));
    long started = 0;

    memset(&b, 0, sizeof(b));
    memset(res, 0, sizeof(*res));
    b.o = o;
    b.res = res;
    pthread_mutex_init(&b.mu, NULL);
    if (th == NULL || make_ca(&b) != 0) {
        free(th);
        EVP_PKEY_free(b.ca_key);
        X509_free(b.ca);
        return -1;
    }
    res->start = now_ns();
    b.deadline = res->start + (uint64_t)o->seconds * 1000000000u;
    for (long i = 0; i < o->threads; i++)
        if (pthread_create(&th[i], NULL, worker, &b) == 0)
            started++;
        else
            break;
    for (long i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    res->end = now_ns();
    free(th);
    pthread_mutex_destroy(&b.mu);
    EVP_PKEY_free(b.ca_key);
    X509_free(b.ca);
    return started > 0 ? 0 : -1;
}
