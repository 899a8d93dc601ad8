/* Forwarding to upstream CAs (core/forward.c, RFC 9483 5.2) with two cores
 * in one process: A routes, B is the upstream CA. The upstream operations
 * are fakes that hand A's messages to B's core (synchronously like HTTP, or
 * later like a file drop) and can lose or spoil answers on the way. */
#define _GNU_SOURCE 1 /* memmem */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "codec/ee.h"
#include "codec/msg.h"
#include "codec/protect.h"
#include "core/config.h"
#include "core/core.h"
#include "core/upstream.h"
#include "base/err.h"
#include "core/route.h"

#define SECRET "demo-secret-for-forwarding"
#define RA_SECRET "ra-secret-at-b"

static char dir[64];
static struct cmpr_conf *conf_a, *conf_b, *conf_a2;
static struct cmpr_core *core_a, *core_b, *core_a2;   /* a2: a second node of A on A's store */
static int a_paused;            /* A's forwarder does no passes (a node that stopped) */
static EVP_PKEY *ee_key;
static const struct tu_info info = { "test", "unit", NULL, NULL, NULL, 0, NULL };

/* ---------------- the fake media ---------------- */

static struct held { char key[300]; unsigned char *der; size_t len; } held[16];
static size_t n_held;
static int release;             /* offline answers may come */
static int drop_inner = -1;     /* batch: this inner answer gets lost */
static int spoil;               /* flip a bit in the next collected answer */
static int starts;

/* online exchanges wait here until the forwarder's thread ends them (done()
 * is never called inside exchange()) */
static struct pending {
    unsigned char *der;
    size_t len;
    int down;
    cmpr_upstream_done_fn done;
    void *arg;
} pend[64];
static size_t n_pend;
static pthread_mutex_t fmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fcond = PTHREAD_COND_INITIALIZER;
static int kicked, stopping;
static unsigned long passes;
static pthread_t fwd_thread;

static int
b_answer(const unsigned char *der, size_t len, unsigned char **ans_r, size_t *ans_len_r)
{
    return tu_handle(core_b, &info, der, len, ans_r, ans_len_r) == CMPR_OK ? 0 : -1;
}

static int
f_configure(void *ctx, const struct cmpr_conf_group *g, const char *uri, long timeout_ms, void **set_r,
            char **err_r)
{
    (void)ctx;
    (void)g;
    (void)timeout_ms;
    (void)err_r;
    *set_r = strdup(uri);
    return CMPR_OK;
}

static void
f_release(void *ctx, void *set)
{
    (void)ctx;
    free(set);
}

static int
f_exchange(void *ctx, void *set, const char *tag, const unsigned char *der, size_t len, long timeout_ms,
           cmpr_upstream_done_fn done, void *arg)
{
    (void)ctx;
    (void)tag;
    (void)timeout_ms;
    starts++;
    pthread_mutex_lock(&fmu);
    assert_true(n_pend < 64);
    pend[n_pend].der = malloc(len);
    memcpy(pend[n_pend].der, der, len);
    pend[n_pend].len = len;
    pend[n_pend].down = strstr(set, "down") != NULL;
    pend[n_pend].done = done;
    pend[n_pend].arg = arg;
    n_pend++;
    kicked = 1;
    pthread_cond_signal(&fcond);
    pthread_mutex_unlock(&fmu);
    return CMPR_OK;
}

/* the forwarder's thread: B answers what went out online */
static void
end_exchanges(void)
{
    for (;;) {
        struct pending p;
        unsigned char *ans = NULL;
        size_t alen = 0;

        pthread_mutex_lock(&fmu);
        if (n_pend == 0) {
            pthread_mutex_unlock(&fmu);
            return;
        }
        p = pend[--n_pend];
        pthread_mutex_unlock(&fmu);
        if (p.down)
            p.done(p.arg, CMPR_ERR_UNREACHABLE, NULL, 0, "cannot connect: Connection refused");
        else if (b_answer(p.der, p.len, &ans, &alen) == 0)
            p.done(p.arg, CMPR_OK, ans, alen, NULL);
        else
            p.done(p.arg, CMPR_ERR_PEER, NULL, 0, "B had no answer");
        free(p.der);
    }
}

static int
f_send(void *ctx, void *set, const char *name, const unsigned char *der, size_t len, char *key, size_t keylen,
       char *err, size_t errlen)
{
    (void)ctx;
    (void)set;
    (void)err;
    (void)errlen;
    starts++;
    assert_true(n_held < 16);
    snprintf(held[n_held].key, sizeof(held[n_held].key), "%s.rsp", name);
    held[n_held].der = malloc(len);
    memcpy(held[n_held].der, der, len);
    held[n_held].len = len;
    snprintf(key, keylen, "%s", held[n_held].key);
    n_held++;
    return CMPR_OK;
}

/* the batch answer loses one inner answer; the outer protection is made
 * again as B makes it (a MAC with the RA's secret) */
static void
lose_inner(unsigned char **ans_r, size_t *ans_len_r)
{
    CMPR_PKIMESSAGE *m = NULL;
    unsigned char *d = NULL;
    size_t dl = 0;
    struct cmpr_mac_params mp;

    assert_int_equal(cmpr_msg_decode(*ans_r, *ans_len_r, &m, NULL), CMPR_OK);
    assert_int_equal(cmpr_msg_bodytype(m), CMPR_BODY_NESTED);
    CMPR_PKIMESSAGE_free(sk_CMPR_PKIMESSAGE_delete(m->body->value.nested, drop_inner));
    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    assert_int_equal(cmpr_protect_mac(m, (const unsigned char *)RA_SECRET, strlen(RA_SECRET), &mp, NULL), CMPR_OK);
    assert_int_equal(cmpr_msg_encode(m, &d, &dl), CMPR_OK);
    free(*ans_r);
    *ans_r = malloc(dl);
    memcpy(*ans_r, d, dl);
    *ans_len_r = dl;
    OPENSSL_free(d);
    CMPR_PKIMESSAGE_free(m);
}

/* one bit of its senderNonce: still DER, still this transaction */
static void
spoil_nonce(unsigned char *ans, size_t len)
{
    CMPR_PKIMESSAGE *m = NULL;
    const unsigned char *n;

    assert_int_equal(cmpr_msg_decode(ans, len, &m, NULL), CMPR_OK);
    n = memmem(ans, len, ASN1_STRING_get0_data(m->header->senderNonce),
               (size_t)ASN1_STRING_length(m->header->senderNonce));
    assert_non_null(n);
    ans[n - ans] ^= 0x01;
    CMPR_PKIMESSAGE_free(m);
}

static int
f_collect(void *ctx, void *set, const char *key, unsigned char **ans_r, size_t *ans_len_r, char *err,
          size_t errlen)
{
    (void)ctx;
    (void)set;
    (void)err;
    (void)errlen;
    if (!release)
        return 0;
    for (size_t i = 0; i < n_held; i++) {
        if (held[i].der == NULL || strcmp(held[i].key, key) != 0)
            continue;
        assert_int_equal(b_answer(held[i].der, held[i].len, ans_r, ans_len_r), 0);
        free(held[i].der);
        held[i].der = NULL;
        if (drop_inner >= 0)
            lose_inner(ans_r, ans_len_r);
        if (spoil) {
            spoil_nonce(*ans_r, *ans_len_r);
            spoil = 0;
        }
        return 1;
    }
    return 0;
}

static const char *const online_schemes[] = { "http", NULL }, *const offline_schemes[] = { "file", NULL };
static const char *const no_keys[] = { NULL };
static const struct cmpr_upstream_ops online = { online_schemes, 0, no_keys, f_configure, f_release, f_exchange,
                                                 NULL, NULL };
static const struct cmpr_upstream_ops offline = { offline_schemes, 1, no_keys, f_configure, f_release, NULL,
                                                  f_send, f_collect };

static void
wake(void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&fmu);
    kicked = 1;
    pthread_cond_signal(&fcond);
    pthread_mutex_unlock(&fmu);
}

static void *
forwarder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&fmu);
    while (!stopping) {
        if (!kicked) {
            struct timespec ts;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&fcond, &fmu, &ts);
            continue;
        }
        kicked = 0;
        if (a_paused) {
            passes++;
            pthread_cond_broadcast(&fcond);
            continue;
        }
        pthread_mutex_unlock(&fmu);
        (void)cmpr_core_forward(core_a);
        end_exchanges();
        pthread_mutex_lock(&fmu);
        passes++;
        pthread_cond_broadcast(&fcond);
    }
    pthread_mutex_unlock(&fmu);
    return NULL;
}

/* one whole pass of the forwarder that began after now */
static void
forward_pass(void)
{
    unsigned long want;

    pthread_mutex_lock(&fmu);
    want = passes + 2;
    kicked = 1;
    pthread_cond_signal(&fcond);
    while (passes < want) {
        kicked = 1;
        pthread_cond_signal(&fcond);
        pthread_cond_wait(&fcond, &fmu);
    }
    pthread_mutex_unlock(&fmu);
}

/* ---------------- set-up ---------------- */

static void
write_file(const char *name, const char *text)
{
    char p[256];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_non_null(f = fopen(p, "w"));
    fputs(text, f);
    fclose(f);
}

/* a configuration: its [router] head, then the rest */
static void
write_conf(const char *name, const char *head, const char *rest)
{
    char *text = malloc(strlen(head) + strlen(rest) + 1);

    strcpy(text, head);
    strcat(text, rest);
    write_file(name, text);
    free(text);
}

#define A_REST \
    "[ca a]\nkey = ca.key\ncert = ca.pem\ndefault_profile = ee\n[profile ee]\n" \
    "[client demo]\nreference = demo\nsecret = pass:" SECRET "\nprofiles = ee\n" \
    "[route sync]\nlabel = sync\nupstream = http://b.test/cmp\n" \
    "[route down]\nlabel = down\nupstream = http://down.test/cmp\n" \
    "[route off]\nlabel = off\nupstream = file:/to-b,/from-b\nprotection = reprotect\n" \
    "ra_reference = ra\nra_secret = pass:" RA_SECRET "\ncheck_after = 3\n" \
    "[route batch]\nlabel = batch\nupstream = file:/to-b,/from-b\nbatch = 3\nbatch_wait = 3600\n" \
    "ra_reference = ra\nra_secret = pass:" RA_SECRET "\n"

static int
setup(void **state)
{
    EVP_PKEY *ca_key = tu_key("ec:P-256");
    X509 *ca = tu_cert(ca_key, "Forward CA", NULL, NULL, 1);
    char p[256], *err = NULL;
    FILE *f;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cmpr-fwd-XXXXXX");
    assert_non_null(mkdtemp(dir));
    ee_key = tu_key("ec:P-256");
    snprintf(p, sizeof(p), "%s/ca.key", dir);
    f = fopen(p, "w");
    PEM_write_PrivateKey(f, ca_key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    snprintf(p, sizeof(p), "%s/ca.pem", dir);
    f = fopen(p, "w");
    PEM_write_X509(f, ca);
    fclose(f);
    snprintf(p, sizeof(p), "[router]\nlog_level = error\nstore = sqlite:%s/b.db\n", dir);
    write_conf("b.conf", p,
               "[ca b]\nkey = ca.key\ncert = ca.pem\ndefault_profile = ee\n[profile ee]\n"
               "[client demo]\nreference = demo\nsecret = pass:" SECRET "\nprofiles = ee\n"
               "[client ra]\nreference = ra\nsecret = pass:" RA_SECRET "\nprofiles = ee\nra = yes\n");
    snprintf(p, sizeof(p), "[router]\nlog_level = error\nstore = sqlite:%s/a.db\n"
             "pbm_defaults = sha512, hmac-sha256, 1234\nnode = a1\nlease = 2\n", dir);
    write_conf("a.conf", p, A_REST);
    snprintf(p, sizeof(p), "[router]\nlog_level = error\nstore = sqlite:%s/a.db\n"
             "pbm_defaults = sha512, hmac-sha256, 1234\nnode = a2\nlease = 2\n", dir);
    write_conf("a2.conf", p, A_REST);
    snprintf(p, sizeof(p), "%s/b.conf", dir);
    if (cmpr_conf_load(p, &conf_b, &err) != CMPR_OK || cmpr_core_new(conf_b, &core_b, &err) != CMPR_OK
            || cmpr_core_start(core_b, &err) != CMPR_OK)
        fail_msg("%s", err);
    snprintf(p, sizeof(p), "%s/a.conf", dir);
    if (cmpr_conf_load(p, &conf_a, &err) != CMPR_OK || cmpr_core_new(conf_a, &core_a, &err) != CMPR_OK
            || cmpr_core_add_upstream(core_a, &online, NULL) != CMPR_OK
            || cmpr_core_add_upstream(core_a, &offline, NULL) != CMPR_OK || cmpr_core_start(core_a, &err) != CMPR_OK)
        fail_msg("%s", err);
    cmpr_core_set_forwarder(core_a, wake, NULL);
    snprintf(p, sizeof(p), "%s/a2.conf", dir);
    if (cmpr_conf_load(p, &conf_a2, &err) != CMPR_OK || cmpr_core_new(conf_a2, &core_a2, &err) != CMPR_OK
            || cmpr_core_add_upstream(core_a2, &online, NULL) != CMPR_OK
            || cmpr_core_add_upstream(core_a2, &offline, NULL) != CMPR_OK || cmpr_core_start(core_a2, &err) != CMPR_OK)
        fail_msg("%s", err);
    assert_int_equal(pthread_create(&fwd_thread, NULL, forwarder, NULL), 0);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    pthread_mutex_lock(&fmu);
    stopping = 1;
    pthread_cond_broadcast(&fcond);
    pthread_mutex_unlock(&fmu);
    pthread_join(fwd_thread, NULL);
    cmpr_core_free(core_a);
    cmpr_core_free(core_a2);
    cmpr_core_free(core_b);
    cmpr_conf_free(conf_a);
    cmpr_conf_free(conf_a2);
    cmpr_conf_free(conf_b);
    EVP_PKEY_free(ee_key);
    for (size_t i = 0; i < n_held; i++)
        free(held[i].der);
    tu_rmrf(dir);
    return 0;
}

/* ---------------- a client of A ---------------- */

static CMPR_PKIMESSAGE *
mac(CMPR_PKIMESSAGE *m)
{
    struct cmpr_mac_params mp;

    cmpr_mac_params_default(&mp, CMPR_MAC_PBM);
    assert_int_equal(cmpr_hdr_set1_sender_kid(m->header, (const unsigned char *)"demo", 4), CMPR_OK);
    assert_int_equal(cmpr_protect_mac(m, (const unsigned char *)SECRET, strlen(SECRET), &mp, NULL), CMPR_OK);
    return m;
}

static CMPR_PKIMESSAGE *
ir(const char *cn)
{
    X509_NAME *n = X509_NAME_new();
    struct cmpr_ee_certreq r = { CMPR_BODY_IR, ee_key, n, NULL, NULL, NULL, 1, 0, NULL, NULL };
    CMPR_PKIMESSAGE *m;

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    m = cmpr_ee_new_certreq(&r);
    X509_NAME_free(n);
    return mac(m);
}

/* sends m (kept) to A by label and returns A's answer */
static CMPR_PKIMESSAGE *
send_a(const CMPR_PKIMESSAGE *m, const char *label)
{
    struct tu_info in = info;
    unsigned char *der = NULL, *out = NULL;
    size_t len = 0, olen = 0;
    CMPR_PKIMESSAGE *rsp = NULL;

    in.label = label;
    assert_int_equal(cmpr_msg_encode(m, &der, &len), CMPR_OK);
    assert_int_equal(tu_handle(core_a, &in, der, len, &out, &olen), CMPR_OK);
    OPENSSL_free(der);
    assert_int_equal(cmpr_msg_decode(out, olen, &rsp, NULL), CMPR_OK);
    free(out);
    return rsp;
}

static void
expect(const CMPR_PKIMESSAGE *req, const CMPR_PKIMESSAGE *rsp, int body, long status, const char *text)
{
    struct cmpr_ee_result res;
    char why[300];

    assert_int_equal(cmpr_ee_check_header(req, rsp, why, sizeof(why)), CMPR_OK);
    assert_int_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    if (res.body != body || res.status != status || (text != NULL && strstr(res.text, text) == NULL))
        fail_msg("expected %d/%ld '%s', got %d/%ld '%s'", body, status, text != NULL ? text : "",
                 res.body, res.status, res.text);
}

/* RFC 9483 5.2: a synchronous upstream answers the client on its own
 * connection, unchanged (keep); certConf travels the same way */
static void
test_sync_keep(void **state)
{
    CMPR_PKIMESSAGE *req = ir("sync-1"), *rsp;
    (void)state;

    rsp = send_a(req, "sync");
    expect(req, rsp, CMPR_BODY_IP, CMPR_STATUS_ACCEPTED, NULL);
    /* B's protection, not A's: the MAC verifies with the client's secret */
    assert_int_equal(cmpr_verify_mac(rsp, (const unsigned char *)SECRET, strlen(SECRET), NULL), CMPR_OK);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(req);
}

/* RFC 9483 6.1: an upstream that fails is a CMP error downstream, at once */
static void
test_upstream_down(void **state)
{
    CMPR_PKIMESSAGE *req = ir("down-1"), *rsp;
    (void)state;

    rsp = send_a(req, "down");
    expect(req, rsp, CMPR_BODY_ERROR, CMPR_STATUS_REJECTION, "route down");
    assert_true(cmpr_pkisi_failinfo(rsp->body->value.error->pKIStatusInfo) & (1u << CMPR_FI_SYSTEM_UNAVAIL));
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(req);
}

/* RFC 9810 5.3.22, RFC 9483 4.4: an offline upstream leaves the client
 * waiting; it polls; the answer, once there, comes with the recipNonce of
 * the client's last pollReq, protected for the client (reprotect) */
static void
test_offline_reprotect(void **state)
{
    CMPR_PKIMESSAGE *req = ir("off-1"), *w, *poll, *rsp, *cc, *pc;
    struct cmpr_ee_result res;
    (void)state;

    release = 0;
    w = send_a(req, "off");
    expect(req, w, CMPR_BODY_IP, CMPR_STATUS_WAITING, "route off");
    poll = mac(cmpr_ee_new_pollreq(w, 0));
    rsp = send_a(poll, "off");
    expect(poll, rsp, CMPR_BODY_POLLREP, -1, "not answered yet");
    assert_int_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
    assert_int_equal(res.check_after, 3);
    forward_pass();            /* sent to the medium */
    {
        /* the RA's own MAC towards the upstream: [router] pbm_defaults */
        CMPR_PKIMESSAGE *up = NULL;
        struct cmpr_mac_params mp;

        assert_true(n_held > 0);
        assert_int_equal(cmpr_msg_decode(held[n_held - 1].der, held[n_held - 1].len, &up, NULL), CMPR_OK);
        assert_int_equal(cmpr_mac_params_of(up->header->protectionAlg, 0, &mp), CMPR_OK);
        assert_int_equal(mp.owf_nid, NID_sha512);
        assert_int_equal(mp.mac_nid, NID_hmacWithSHA256);
        assert_int_equal(mp.iter, 1234);
        CMPR_PKIMESSAGE_free(up);
    }
    release = 1;
    forward_pass();            /* answer collected */
    CMPR_PKIMESSAGE_free(poll);
    poll = mac(cmpr_ee_new_pollreq(rsp, 0));
    CMPR_PKIMESSAGE_free(rsp);
    rsp = send_a(poll, "off");
    expect(poll, rsp, CMPR_BODY_IP, CMPR_STATUS_ACCEPTED, NULL);
    assert_int_equal(cmpr_verify_mac(rsp, (const unsigned char *)SECRET, strlen(SECRET), NULL), CMPR_OK);
    /* implicitConfirm was asked for and granted: nothing more; else certConf
     * would go the same way; here one to a finished transaction still works */
    assert_true(cmpr_hdr_has_implicit_confirm(rsp->header));
    cc = mac(cmpr_ee_new_certconf(rsp, 0, sk_CMPR_CERTRESPONSE_value(cmpr_msg_get0_rep(rsp)->response, 0)
                                  ->certifiedKeyPair->certOrEncCert->value.certificate, 1, NULL));
    pc = send_a(cc, "off");
    assert_non_null(pc);
    CMPR_PKIMESSAGE_free(pc);
    CMPR_PKIMESSAGE_free(cc);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(poll);
    CMPR_PKIMESSAGE_free(w);
    CMPR_PKIMESSAGE_free(req);
}

/* RFC 9483 5.2.2.2: requests batched into one nested message; the answer
 * is split back; a request without an inner answer gets systemUnavail */
static void
test_batch_with_a_lost_answer(void **state)
{
    CMPR_PKIMESSAGE *req[3], *w[3], *rsp;
    int ok = 0, lost = 0, before;
    (void)state;

    release = 0;
    forward_pass();
    before = starts;
    for (int i = 0; i < 3; i++) {
        char cn[32];

        snprintf(cn, sizeof(cn), "batch-%d", i);
        req[i] = ir(cn);
        w[i] = send_a(req[i], "batch");
        expect(req[i], w[i], CMPR_BODY_IP, CMPR_STATUS_WAITING, NULL);
    }
    forward_pass();
    assert_int_equal(starts - before, 1);       /* one message for the three */
    release = 1;
    drop_inner = 1;
    forward_pass();
    drop_inner = -1;
    for (int i = 0; i < 3; i++) {
        CMPR_PKIMESSAGE *poll = mac(cmpr_ee_new_pollreq(w[i], 0));
        struct cmpr_ee_result res;

        rsp = send_a(poll, "batch");
        assert_int_equal(cmpr_ee_result(rsp, &res), CMPR_OK);
        if (res.body == CMPR_BODY_IP && res.status == CMPR_STATUS_ACCEPTED)
            ok++;
        else if (res.body == CMPR_BODY_ERROR && strstr(res.text, "no answer for this request") != NULL
                 && (res.failinfo & (1u << CMPR_FI_SYSTEM_UNAVAIL)))
            lost++;
        CMPR_PKIMESSAGE_free(rsp);
        CMPR_PKIMESSAGE_free(poll);
        CMPR_PKIMESSAGE_free(w[i]);
        CMPR_PKIMESSAGE_free(req[i]);
    }
    assert_int_equal(ok, 2);
    assert_int_equal(lost, 1);
}

/* an answer spoiled on the way is not passed on as the CA's (RFC 9483 5.2) */
static void
test_spoiled_answer(void **state)
{
    CMPR_PKIMESSAGE *req = ir("spoil-1"), *w, *poll, *rsp;
    (void)state;

    release = 0;
    w = send_a(req, "off");
    forward_pass();
    release = 1;
    spoil = 1;
    forward_pass();
    poll = mac(cmpr_ee_new_pollreq(w, 0));
    rsp = send_a(poll, "off");
    expect(poll, rsp, CMPR_BODY_ERROR, CMPR_STATUS_REJECTION, "refused");
    assert_true(cmpr_pkisi_failinfo(rsp->body->value.error->pKIStatusInfo) & (1u << CMPR_FI_SYSTEM_FAILURE));
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(poll);
    CMPR_PKIMESSAGE_free(w);
    CMPR_PKIMESSAGE_free(req);
}

/* the forwarding record of req's transaction, as the store has it now */
static void
fwd_of(const CMPR_PKIMESSAGE *req, struct cmpr_fwd_rec *rec)
{
    struct cmpr_store *st = cmpr_core_store(core_a);

    assert_int_equal(st->ops->fwd_get(st, ASN1_STRING_get0_data(req->header->transactionID),
                                      (size_t)ASN1_STRING_length(req->header->transactionID), rec), CMPR_OK);
}

/* Several nodes on one store (docs/cluster.md): a forwarding record is
 * driven by one node, the one holding its lease: the node that took the
 * request in. Another node's forwarder leaves it alone while the lease
 * lasts; once it ends (that node stopped), the other takes it over, sends
 * it once, and the first, back again, leaves it to the new owner. */
static void
test_lease_one_driver(void **state)
{
    CMPR_PKIMESSAGE *req = ir("lease-1"), *w, *poll, *rsp;
    struct cmpr_fwd_rec rec;
    size_t sent = n_held;
    int i;
    (void)state;

    release = 0;
    pthread_mutex_lock(&fmu);
    a_paused = 1;                       /* node a1 takes the request in, then stops forwarding */
    pthread_mutex_unlock(&fmu);
    w = send_a(req, "off");
    expect(req, w, CMPR_BODY_IP, CMPR_STATUS_WAITING, "route off");
    fwd_of(req, &rec);
    assert_string_equal(rec.owner, "a1");
    assert_int_equal(rec.state, CMPR_FWD_QUEUED);
    assert_true(rec.lease_until > (int64_t)time(NULL) - 1);
    cmpr_fwd_rec_clear(&rec);
    /* node a2 while a1's lease lasts: nothing sent */
    (void)cmpr_core_forward(core_a2);
    fwd_of(req, &rec);
    if (rec.lease_until > (int64_t)time(NULL))
        assert_int_equal(n_held, sent);
    cmpr_fwd_rec_clear(&rec);
    /* its lease ends: a2 takes it over and sends it (bounded: 10 s) */
    for (i = 0; i < 100 && n_held == sent; i++) {
        (void)cmpr_core_forward(core_a2);
        if (n_held == sent)
            usleep(100000);
    }
    assert_int_equal(n_held, sent + 1);
    fwd_of(req, &rec);
    assert_string_equal(rec.owner, "a2");
    assert_int_equal(rec.state, CMPR_FWD_SENT);
    cmpr_fwd_rec_clear(&rec);
    /* a1 forwards again: a2's lease holds, a1 neither sends nor collects */
    pthread_mutex_lock(&fmu);
    a_paused = 0;
    pthread_mutex_unlock(&fmu);
    release = 1;
    forward_pass();
    assert_int_equal(n_held, sent + 1);
    fwd_of(req, &rec);
    assert_string_equal(rec.owner, "a2");
    assert_int_equal(rec.state, CMPR_FWD_SENT);
    cmpr_fwd_rec_clear(&rec);
    /* a2 collects the answer; the client's poll at a1 gets the certificate */
    (void)cmpr_core_forward(core_a2);
    fwd_of(req, &rec);
    assert_int_equal(rec.state, CMPR_FWD_ANSWERED);
    cmpr_fwd_rec_clear(&rec);
    poll = mac(cmpr_ee_new_pollreq(w, 0));
    rsp = send_a(poll, "off");
    expect(poll, rsp, CMPR_BODY_IP, CMPR_STATUS_ACCEPTED, NULL);
    CMPR_PKIMESSAGE_free(rsp);
    CMPR_PKIMESSAGE_free(poll);
    CMPR_PKIMESSAGE_free(w);
    CMPR_PKIMESSAGE_free(req);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_keep),
        cmocka_unit_test(test_upstream_down),
        cmocka_unit_test(test_offline_reprotect),
        cmocka_unit_test(test_batch_with_a_lost_answer),
        cmocka_unit_test(test_spoiled_answer),
        cmocka_unit_test(test_lease_one_driver),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
