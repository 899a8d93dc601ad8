/* cmprouterd: owns the libuv loop, wires transports to the core, runs the
 * embedded default when started without a configuration. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <getopt.h>
#include <limits.h>
#include <grp.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "codec/oids.h"
#include "core/config.h"
#include "core/core.h"
#include "base/err.h"
#include "base/log.h"
#include "transports/transport.h"
#include "transports/lib/ioloop.h"

#define HOUSEKEEPING_MS 30000

#define CMPR_MAX_TRANSPORTS 32
#define N_MEDIA 5

struct listener {
    const struct cmpr_transport_ops *ops;
    const char *name;                   /* "http", "admin", "https", "tcp", filedrop/sftp NAME */
    void *ctx;
    int stopped;
};

struct daemon {
    struct cmpr_daemon base;        /* first */
    uv_loop_t loop;
    char *conf_path;
    struct cmpr_conf *conf;
    struct cmpr_core *core;
    struct cmpr_ioloop *cl;             /* the client side's loop (online upstreams) */
    /* cores replaced by SIGHUP, freed when no work can still use them */
    struct cmpr_core *old_cores[8];
    struct cmpr_conf *old_confs[8];
    int n_old;
    struct listener listeners[CMPR_MAX_TRANSPORTS];
    int n_listeners;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t housekeeping;
    uv_work_t hk_work;
    int hk_running;
    int stopping;
    /* metrics (loop thread) */
    unsigned long requests_ok[N_MEDIA], requests_failed[N_MEDIA];  /* by media[] */
    unsigned long latency_buckets[8];
    double latency_sum;
    _Atomic long pending;           /* written by housekeeping on a worker */
};

static const char *const media[] = { "http", "tcp", "file", "sftp", "mail" };

static const double bucket_bounds[8] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 1e300 };

static struct cmpr_core *
d_core(struct cmpr_daemon *d)
{
    return ((struct daemon *)d)->core;
}

static void
d_request_done(struct cmpr_daemon *d, const char *medium, int ok, uint64_t ns)
{
    struct daemon *dm = (struct daemon *)d;
    double s = (double)ns / 1e9;

    int m = 0;

    for (int i = 0; i < N_MEDIA; i++)
        if (strcmp(medium, media[i]) == 0)
            m = i;

    if (ok)
        dm->requests_ok[m]++;
    else
        dm->requests_failed[m]++;
    dm->latency_sum += s;
    for (int i = 0; i < 8; i++)
        if (s <= bucket_bounds[i])
            dm->latency_buckets[i]++;
}

/* the listeners' connection figures, in Prometheus text */
static size_t
conn_metrics(struct daemon *dm, char *buf, size_t len)
{
    size_t off = 0;

#define OUT(...) do { int n_ = snprintf(buf + off, len - off, __VA_ARGS__); \
                      if (n_ > 0 && (size_t)n_ < len - off) off += (size_t)n_; } while (0)
    {
        static const char *const fam[] = { "connections", "connections_idle", "connections_accepted_total",
            "connections_refused_total", "connections_refused_total", "connections_evicted_total",
            "accept_pauses_total" };
        static const char *const help[] = {
            "Connections open now, by listener",
            "Of those, idle: waiting for a request to begin (closed first to make room)",
            "Connections taken in under the caps",
            "Connections refused: max_connections reached and none idle (full), or "
            "max_connections_per_address (per_address)", NULL,
            "Idle connections closed to make room for new ones",
            "Times accepting paused for want of file descriptors" };
        static const char *const reason[] = { NULL, NULL, NULL, "full", "per_address", NULL, NULL };

        for (int f = 0; f < 7; f++) {
            if (help[f] != NULL)
                OUT("# HELP cmprouter_%s %s\n# TYPE cmprouter_%s %s\n", fam[f], help[f], fam[f],
                    f <= 1 ? "gauge" : "counter");
            for (int i = 0; i < dm->n_listeners; i++) {
                struct cmpr_conn_stats st;
                unsigned long v[7];

                if (dm->listeners[i].ops->conn_stats == NULL)
                    continue;
                dm->listeners[i].ops->conn_stats(dm->listeners[i].ctx, &st);
                v[0] = (unsigned long)st.open;
                v[1] = (unsigned long)st.idle;
                v[2] = st.accepted;
                v[3] = st.refused_full;
                v[4] = st.refused_per_address;
                v[5] = st.evicted;
                v[6] = st.fd_pauses;
                if (reason[f] != NULL)
                    OUT("cmprouter_%s{listener=\"%s\",reason=\"%s\"} %lu\n", fam[f],
                        dm->listeners[i].name, reason[f], v[f]);
                else
                    OUT("cmprouter_%s{listener=\"%s\"} %lu\n", fam[f], dm->listeners[i].name, v[f]);
            }
        }
    }
#undef OUT
    return off;
}

static size_t
d_metrics(struct cmpr_daemon *d, char *buf, size_t len)
{
    struct daemon *dm = (struct daemon *)d;
    size_t off = 0, inflight = 0;
    static const char *const le[8] = { "0.005", "0.01", "0.025", "0.05", "0.1", "0.5", "1", "+Inf" };

    for (int i = 0; i < dm->n_listeners; i++)
        inflight += dm->listeners[i].ops->in_flight(dm->listeners[i].ctx);
#define OUT(...) do { int n_ = snprintf(buf + off, len - off, __VA_ARGS__); \
                      if (n_ > 0 && (size_t)n_ < len - off) off += (size_t)n_; } while (0)
    OUT("# HELP cmprouter_requests_total CMP requests answered, by outcome\n");
    OUT("# TYPE cmprouter_requests_total counter\n");
    for (int m = 0; m < N_MEDIA; m++) {
        OUT("cmprouter_requests_total{medium=\"%s\",outcome=\"answered\"} %lu\n",
            media[m], dm->requests_ok[m]);
        OUT("cmprouter_requests_total{medium=\"%s\",outcome=\"failed\"} %lu\n",
            media[m], dm->requests_failed[m]);
    }
    OUT("# HELP cmprouter_in_flight Requests in the core now\n# TYPE cmprouter_in_flight gauge\n");
    OUT("cmprouter_in_flight %zu\n", inflight);
    OUT("# HELP cmprouter_pending_approval Requests waiting for an operator\n");
    OUT("# TYPE cmprouter_pending_approval gauge\ncmprouter_pending_approval %ld\n",
        atomic_load(&dm->pending));
    OUT("# HELP cmprouter_request_seconds Time from request to answer\n");
    OUT("# TYPE cmprouter_request_seconds histogram\n");
    for (int i = 0; i < 8; i++)
        OUT("cmprouter_request_seconds_bucket{le=\"%s\"} %lu\n", le[i], dm->latency_buckets[i]);
    OUT("cmprouter_request_seconds_sum %.6f\n", dm->latency_sum);
    {
        unsigned long total = 0;

        for (int m = 0; m < N_MEDIA; m++)
            total += dm->requests_ok[m] + dm->requests_failed[m];
        OUT("cmprouter_request_seconds_count %lu\n", total);
    }
    {
        struct cmpr_core_stats cs;
        static const char *const status[8] = { "accepted", "grantedWithMods", "rejection",
            "waiting", "revocationWarning", "revocationNotification", "keyUpdateWarning", "none" };

        cmpr_core_stats(dm->core, &cs);
        OUT("# HELP cmprouter_cmp_requests_total CMP requests by body type (since the last reload)\n");
        OUT("# TYPE cmprouter_cmp_requests_total counter\n");
        for (int i = 0; i < 27; i++)
            if (cs.requests[i] > 0)
                OUT("cmprouter_cmp_requests_total{body=\"%s\"} %lu\n", cmpr_body_name(i), cs.requests[i]);
        OUT("cmprouter_cmp_requests_total{body=\"undecodable\"} %lu\n", cs.undecodable);
        OUT("# HELP cmprouter_cmp_answers_total CMP answers by PKIStatus\n");
        OUT("# TYPE cmprouter_cmp_answers_total counter\n");
        for (int i = 0; i < 8; i++)
            OUT("cmprouter_cmp_answers_total{status=\"%s\"} %lu\n", status[i], cs.answers[i]);
        OUT("# HELP cmprouter_cmp_errors_total Answers that were CMP error messages\n");
        OUT("# TYPE cmprouter_cmp_errors_total counter\ncmprouter_cmp_errors_total %lu\n", cs.errors);
        OUT("# HELP cmprouter_parked Requests waiting for an upstream's answer (no thread held)\n");
        OUT("# TYPE cmprouter_parked gauge\ncmprouter_parked %lu\n", cs.parked);
        OUT("# HELP cmprouter_store_errors_total Storage failures\n");
        OUT("# TYPE cmprouter_store_errors_total counter\ncmprouter_store_errors_total %lu\n",
            cs.store_errors);
    }
    off += conn_metrics(dm, buf + off, len - off);
#undef OUT
    return off;
}

/* how long a store failure keeps /healthz unhealthy */
#define HEALTH_STORE_WINDOW 10

/* /healthz: unhealthy while the store has failed requests lately (disk
 * full, I/O errors, a lock held elsewhere beyond the busy timeout) */
static int
d_health(struct cmpr_daemon *d, char *buf, size_t len)
{
    struct daemon *dm = (struct daemon *)d;
    struct cmpr_core_stats cs;
    time_t now = time(NULL);

    cmpr_core_stats(dm->core, &cs);
    if (cs.last_store_error != 0 && now - cs.last_store_error < HEALTH_STORE_WINDOW) {
        snprintf(buf, len, "store failing: %lu requests answered systemUnavail so far, the last %ld s ago\n",
                 cs.store_errors, (long)(now - cs.last_store_error));
        return -1;
    }
    snprintf(buf, len, "ok\n");
    return 0;
}

/* ---------------- the embedded default ---------------- */

/* path, created with exactly mode whatever the umask, for writing */
static FILE *
create_mode(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    FILE *f;

    if (fd < 0)
        return NULL;
    if (fchmod(fd, mode) != 0 || (f = fdopen(fd, "w")) == NULL) {
        close(fd);
        return NULL;
    }
    return f;
}

static int
write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = create_mode(path, mode);

    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

static int
write_key(const char *path, EVP_PKEY *k)
{
    FILE *f = create_mode(path, 0600);
    int ok;

    if (f == NULL)
        return -1;
    ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int
write_cert(const char *path, X509 *x)
{
    FILE *f = create_mode(path, 0644);
    int ok;

    if (f == NULL)
        return -1;
    ok = PEM_write_X509(f, x);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static X509 *
make_ca_cert(EVP_PKEY *key, const char *cn, EVP_PKEY *ikey, X509 *issuer, int days, int pathlen)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    X509V3_CTX v3;
    X509_EXTENSION *e;
    unsigned char sn[16];
    BIGNUM *bn;
    char bc[64];

    RAND_bytes(sn, sizeof(sn));
    sn[0] &= 0x7f;
    bn = BN_bin2bn(sn, sizeof(sn), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_version(x, 2);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : n);
    X509_gmtime_adj(X509_getm_notBefore(x), -300);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * days);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    snprintf(bc, sizeof(bc), pathlen >= 0 ? "critical,CA:TRUE,pathlen:%d" : "critical,CA:TRUE", pathlen);
    e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, bc);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    e = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (issuer != NULL) {
        e = X509V3_EXT_conf_nid(NULL, &v3, NID_authority_key_identifier, "keyid:always");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    X509_sign(x, ikey != NULL ? ikey : key, EVP_sha256());
    X509_NAME_free(n);
    return x;
}

/* Creates DIR with a demo root CA, an issuing CA, a configuration and a demo
 * client the first time; reuses them afterwards. */
static int
embedded_default(const char *dir, const char *http, const char *tcp, char **conf_path_r)
{
    char path[4096], secret[33], text[4096];
    unsigned char rnd[16];
    EVP_PKEY *rk = NULL, *ik = NULL;
    X509 *rc = NULL, *ic = NULL;
    struct stat sb;
    int r = -1;

    snprintf(path, sizeof(path), "%s/cmprouter.conf", dir);
    *conf_path_r = strdup(path);
    if (stat(path, &sb) == 0)
        return 0;
    snprintf(path, sizeof(path), "%s/ca", dir);
    if ((mkdir(dir, 0750) != 0 && errno != EEXIST) || (mkdir(path, 0750) != 0 && errno != EEXIST)) {
        fprintf(stderr, "cmprouterd: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    rk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ik = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (rk == NULL || ik == NULL)
        goto out;
    rc = make_ca_cert(rk, "cmprouter demo root CA", NULL, NULL, 3650, -1);
    ic = make_ca_cert(ik, "cmprouter demo issuing CA", rk, rc, 1825, 0);
    RAND_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < 16; i++)
        snprintf(secret + 2 * i, 3, "%02x", rnd[i]);
#define P(f) (snprintf(path, sizeof(path), "%s/%s", dir, f), path)
    if (write_key(P("ca/root.key"), rk) != 0 || write_cert(P("ca/root.pem"), rc) != 0
            || write_key(P("ca/issuing.key"), ik) != 0 || write_cert(P("ca/issuing.pem"), ic) != 0)
        goto out;
    snprintf(text, sizeof(text),
             "# cmprouter embedded default, generated on first start. Edit and reuse with -c.\n"
             "# Every directive: man cmprouter.conf\n\n"
             "[router]\n"
             "data_dir = .\n\n"
             "[ca default]\n"
             "key = ca/issuing.key\n"
             "cert = ca/issuing.pem\n"
             "chain = ca/root.pem\n"
             "default_profile = default\n"
             "crl_file = ca/issuing.crl\n\n"
             "[profile default]\n"
             "validity_days = 365\n"
             "key_usage = digitalSignature, keyEncipherment\n"
             "extended_key_usage = clientAuth, serverAuth\n\n"
             "[profile manual]\n"
             "validity_days = 365\n"
             "key_usage = digitalSignature\n"
             "require_approval = yes\n\n"
             "[client demo]\n"
             "reference = demo\n"
             "secret = pass:%s\n"
             "profiles = default, manual\n\n"
             "[listen http]\n"
             "address = %s\n\n"
             "[listen tcp]\n"
             "address = %s\n\n"
             "[listen admin]\n"
             "address = 127.0.0.1:9101\n\n"
             "# offline sites: drop request files (.pki) into filedrop/inbox\n"
             "[filedrop default]\n"
             "inbox = filedrop/inbox\n"
             "outbox = filedrop/outbox\n"
             "errors = filedrop/errors\n"
             "archive = filedrop/archive\n\n"
             "# mail-based enrollment: mails delivered into Maildir/ (or piped to\n"
             "# cmprouter deliver) are answered; replies wait in mail-queue/ until\n"
             "# a relay is set (smtp = HOST:PORT or sendmail = /usr/sbin/sendmail)\n"
             "[mail]\n"
             "maildir = Maildir\n"
             "queue = mail-queue\n"
             "from = cmprouter@localhost\n", secret, http != NULL ? http : "127.0.0.1:8080",
             tcp != NULL ? tcp : "127.0.0.1:1829");
    if (write_file(P("cmprouter.conf"), text, 0600) != 0)      /* it holds the demo secret */
        goto out;
    snprintf(text, sizeof(text), "reference=demo\nsecret=%s\n", secret);
    if (write_file(P("demo-client.txt"), text, 0600) != 0)
        goto out;
#undef P
    r = 0;
 out:
    if (r != 0)
        fprintf(stderr, "cmprouterd: cannot create the embedded default in %s\n", dir);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(ik);
    X509_free(rc);
    X509_free(ic);
    return r;
}

static void
print_howto(const char *dir, const char *host, int port)
{
    char path[4096], line[256], secret[128] = "SECRET";
    FILE *f;

    snprintf(path, sizeof(path), "%s/demo-client.txt", dir);
    if ((f = fopen(path, "r")) != NULL) {
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "secret=", 7) == 0) {
                snprintf(secret, sizeof(secret), "%.127s", line + 7);
                secret[strcspn(secret, "\r\n")] = '\0';
            }
        fclose(f);
    }
    printf("\ncmprouterd is running (embedded default in %s).\n"
           "Enroll with the OpenSSL client:\n\n"
           "  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out demo.key\n"
           "  openssl cmp -config /dev/null -server %s:%d/.well-known/cmp -cmd ir \\\n"
           "      -ref demo -secret pass:%s -recipient '/CN=cmprouter demo issuing CA' \\\n"
           "      -newkey demo.key -subject /CN=demo -certout demo.pem\n"
           "  openssl verify -CAfile %s/ca/root.pem -untrusted %s/ca/issuing.pem demo.pem\n\n"
           "Or by files (RFC 9483 6.4): write the request with -reqout demo.pki, copy it\n"
           "into %s/filedrop/inbox and read the answer from %s/filedrop/outbox/demo.rsp.pki\n"
           "(openssl cmp ... -rspin demo.rsp.pki).\n\n",
           dir, host, port, secret, dir, dir, dir, dir);
    fflush(stdout);
}

/* ---------------- signals, housekeeping, reload ---------------- */

static void
all_closed_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
maybe_finish(struct daemon *dm)
{
    for (int i = 0; i < dm->n_listeners; i++)
        if (!dm->listeners[i].stopped)
            return;
    if (dm->hk_running)
        return;
    uv_walk(&dm->loop, all_closed_walk, NULL);
}

static struct daemon *g_daemon;

static void
stop_done(void *arg)
{
    ((struct listener *)arg)->stopped = 1;
    maybe_finish(g_daemon);
}

static void
on_term(uv_signal_t *s, int signum)
{
    struct daemon *dm = s->data;

    if (dm->stopping)
        return;
    dm->stopping = 1;
    cmpr_log_info("signal %d: draining in-flight requests, then exiting", signum);
    uv_timer_stop(&dm->housekeeping);
    /* requests waiting on an upstream are told "waiting" now */
    cmpr_core_drain(dm->core);
    for (int i = 0; i < dm->n_old; i++)
        cmpr_core_drain(dm->old_cores[i]);
    for (int i = 0; i < dm->n_listeners; i++)
        dm->listeners[i].ops->stop(dm->listeners[i].ctx, stop_done, &dm->listeners[i]);
}

static void
on_hup(uv_signal_t *s, int signum)
{
    struct daemon *dm = s->data;
    struct cmpr_conf *conf = NULL;
    struct cmpr_core *core = NULL;
    char *err = NULL;

    (void)signum;
    /* a new core serves new requests; work in flight keeps the old one,
     * which lives on until the daemon exits (bounded by the slots) */
    if (cmpr_conf_load(dm->conf_path, &conf, &err) != CMPR_OK
            || cmpr_transports_check_groups(conf, &err) != CMPR_OK
            || cmpr_conf_check_secrets(conf, &err) != CMPR_OK
            || cmpr_transports_core(conf, dm->cl, &core, &err) != CMPR_OK) {
        cmpr_log_error("SIGHUP: configuration refused, keeping the running one: %s",
                       err != NULL ? err : "?");
        free(err);
        cmpr_conf_free(conf);
        return;
    }
    if (dm->n_old == (int)(sizeof(dm->old_cores) / sizeof(dm->old_cores[0]))) {
        cmpr_log_error("SIGHUP: too many reloads without a restart; restart the daemon");
        cmpr_core_free(core);
        cmpr_conf_free(conf);
        return;
    }
    cmpr_forward_attach(core);
    dm->old_cores[dm->n_old] = dm->core;
    dm->old_confs[dm->n_old++] = dm->conf;
    dm->core = core;
    dm->conf = conf;
    cmpr_log_info("SIGHUP: configuration %s reloaded (listeners keep their addresses)", dm->conf_path);
}

struct pending_ctx {
    long n;
};

static int
count_pending(const struct cmpr_txn_rec *rec, void *arg)
{
    (void)rec;
    ((struct pending_ctx *)arg)->n++;
    return CMPR_OK;
}

static void
hk_work(uv_work_t *w)
{
    struct daemon *dm = w->data;
    struct cmpr_store *st = cmpr_core_store(dm->core);
    struct pending_ctx pc = { 0 };

    (void)cmpr_core_expire(dm->core, time(NULL));
    if (st->ops->txn_list(st, CMPR_TXN_PENDING_APPROVAL, count_pending, &pc) == CMPR_OK)
        atomic_store(&dm->pending, pc.n);
}

static void
hk_after(uv_work_t *w, int status)
{
    struct daemon *dm = w->data;

    (void)status;
    dm->hk_running = 0;
    if (dm->stopping)
        maybe_finish(dm);
}

static void
on_housekeeping(uv_timer_t *t)
{
    struct daemon *dm = t->data;

    if (dm->hk_running || dm->stopping)
        return;
    dm->hk_running = 1;
    dm->hk_work.data = dm;
    if (uv_queue_work(&dm->loop, &dm->hk_work, hk_work, hk_after) != 0)
        dm->hk_running = 0;
}

/* Configures and starts one transport; 0, or the exit code. */
static int
add_transport(struct daemon *dm, const struct cmpr_transport_ops *ops, const char *name,
              const struct cmpr_conf_group *g, const char *addr_opt)
{
    struct listener *l = &dm->listeners[dm->n_listeners];
    char *err = NULL;

    if (dm->n_listeners == CMPR_MAX_TRANSPORTS) {
        fprintf(stderr, "cmprouterd: more than %d transports\n", CMPR_MAX_TRANSPORTS);
        return 1;
    }
    l->ops = ops;
    l->name = name;
    if ((l->ctx = calloc(1, ops->ctx_size)) == NULL)
        return 1;
    if (ops->configure(l->ctx, name, g, &err) != CMPR_OK) {
        fprintf(stderr, "cmprouterd: %s\n", err != NULL ? err : "configuration error");
        free(err);
        ops->free(l->ctx);
        free(l->ctx);
        return 1;
    }
    if (ops->set_address(l->ctx, addr_opt) != 0) {
        fprintf(stderr, "cmprouterd: --%s must be ADDR:PORT\n", name);
        ops->free(l->ctx);
        free(l->ctx);
        return 2;
    }
    if (ops->start(l->ctx, &dm->base, &err) != CMPR_OK) {
        fprintf(stderr, "cmprouterd: %s\n", err != NULL ? err : "cannot start");
        free(err);
        ops->free(l->ctx);
        free(l->ctx);
        return 1;
    }
    dm->n_listeners++;
    return 0;
}

/* Listeners given on the command line, which start even without a group in
 * the file ([listen http] always does: the embedded default's). */
struct cli_listen {
    const char *name;               /* [listen NAME] */
    const char *addr;               /* --NAME ADDR:PORT, or NULL */
    int always;
};

/* Every medium of the file (cmpr_transports[], in file order) and the
 * command line's listeners; 0, or the exit code. */
static int
start_transports(struct daemon *dm, const struct cli_listen *cli, size_t n_cli)
{
    int rc;

    /* [listen http] first: its port is the one the how-to names */
    for (size_t k = 0; k < n_cli; k++) {
        const struct cmpr_conf_group *g = cmpr_conf_group(dm->conf, "listen", cli[k].name);

        if (!cli[k].always && (g != NULL || cli[k].addr == NULL))
            continue;
        if ((rc = add_transport(dm, &cmpr_http_transport, cli[k].name, g, cli[k].addr)) != 0)
            return rc;
    }
    for (size_t i = 0; i < dm->conf->n_groups; i++) {
        const struct cmpr_conf_group *g = &dm->conf->groups[i];
        const struct cmpr_transport_ops *ops = cmpr_transport_for(g);
        const char *addr = NULL;
        int skip = 0;

        if (ops == NULL)
            continue;           /* [route NAME]: the core's */
        for (size_t k = 0; k < n_cli; k++) {
            if (strcmp(g->type, "listen") == 0 && strcmp(g->name, cli[k].name) == 0) {
                addr = cli[k].addr;
                skip = cli[k].always;   /* started above */
            }
        }
        if (!skip && (rc = add_transport(dm, ops, g->name, g, addr)) != 0)
            return rc;
    }
    /* command-line listeners without a group of their own */
    for (size_t k = 0; k < n_cli; k++) {
        const struct cmpr_conf_group fake = { (char *)"listen", (char *)cli[k].name, NULL, NULL, NULL, 0, 0, NULL };
        const struct cmpr_transport_ops *ops = cmpr_transport_for(&fake);

        if (cli[k].always || cli[k].addr == NULL || cmpr_conf_group(dm->conf, "listen", cli[k].name) != NULL)
            continue;
        if (ops != NULL && (rc = add_transport(dm, ops, cli[k].name, NULL, cli[k].addr)) != 0)
            return rc;
    }
    /* routes to upstream CAs: the forwarder's thread */
    if (cmpr_core_has_upstreams(dm->core)
            && (rc = add_transport(dm, &cmpr_forward_transport, "upstreams", NULL, NULL)) != 0)
        return rc;
    return 0;
}

/* ---------------- descriptors ---------------- */

/* descriptors beyond the media's: the store's connections (database, WAL,
 * shared memory) per worker and the writer's, logs, CA files, TLS, DNS */
#define FDS_PER_WORKER 4
#define FDS_HEADROOM 64

/* Raises the soft RLIMIT_NOFILE to the hard limit (the media's caps are
 * sized against it); the soft limit then, or -1 if unlimited or unknown. */
static long
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = { rl.rlim_max, rl.rlim_max };

        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl.rlim_cur = rl.rlim_max;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > LONG_MAX ? -1 : (long)rl.rlim_cur;
}

/* Every medium's connection cap must fit below the descriptor limit with
 * room to spare: past it, accept() and every open() fail. 0, or 1 with
 * the figures on standard error. */
static int
check_fds(const struct daemon *dm, long limit, long workers)
{
    long need = FDS_HEADROOM + FDS_PER_WORKER * (workers + 1);

    for (int i = 0; i < dm->n_listeners; i++) {
        const struct listener *l = &dm->listeners[i];

        need += l->ops->max_fds != NULL ? l->ops->max_fds(l->ctx) : CMPR_FDS_DEFAULT;
    }
    if (limit >= 0 && need > limit) {
        fprintf(stderr, "cmprouterd: the configuration needs up to %ld file descriptors (every "
                "max_connections, the workers, the store) but the limit is %ld: lower "
                "max_connections or raise the limit (ulimit -n; LimitNOFILE= in the systemd unit)\n",
                need, limit);
        return 1;
    }
    cmpr_log_info("file descriptors: up to %ld needed, limit %ld", need, limit);
    return 0;
}

/* ---------------- SIGBUS ---------------- */

/* A memory-mapped file that cannot be reached any more (SQLite's -shm or
 * -wal truncated, on a full or failing file system, or made immutable)
 * kills the process with SIGBUS; say so before dying, with what only
 * async-signal-safe calls can say. */
static void
on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    static const char head[] = "cmprouterd: SIGBUS at address 0x";
    static const char tail[] = ": a memory-mapped file could not be read or written (the store's -shm "
                               "or -wal file truncated, on a full, read-only or failing file system, "
                               "or made immutable?); check the store's directory and restart\n";
    char hex[2 * sizeof(uintptr_t)];
    uintptr_t a = (uintptr_t)si->si_addr;
    ssize_t w;

    (void)uctx;
    for (int i = (int)sizeof(hex) - 1; i >= 0; i--, a >>= 4)
        hex[i] = "0123456789abcdef"[a & 0xf];
    w = write(2, head, sizeof(head) - 1);
    w = write(2, hex, sizeof(hex));
    w = write(2, tail, sizeof(tail) - 1);
    (void)w;
    raise(sig);                 /* SA_RESETHAND: the default action now */
}

static void
catch_sigbus(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGBUS, &sa, NULL);
}

/* ---------------- main ---------------- */

static void
usage(FILE *f)
{
    fprintf(f, "usage: cmprouterd [-c FILE] [--data-dir DIR] [--http ADDR:PORT] [--tcp ADDR:PORT]\n"
               "                  [--admin ADDR:PORT] [--foreground] [--log-level error|warning|info|debug] [--user NAME]\n"
               "Without -c: the embedded default in DIR (./cmprouter-data). See cmprouterd(8).\n");
}

static int
drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);

    if (pw == NULL) {
        fprintf(stderr, "cmprouterd: no user %s\n", user);
        return -1;
    }
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "cmprouterd: cannot become %s: %s\n", user, strerror(errno));
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' }, { "data-dir", required_argument, NULL, 'd' },
        { "http", required_argument, NULL, 'H' }, { "foreground", no_argument, NULL, 'f' },
        { "log-level", required_argument, NULL, 'l' }, { "user", required_argument, NULL, 'u' },
        { "admin", required_argument, NULL, 'A' }, { "tcp", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
    };
    struct daemon *dm = calloc(1, sizeof(*dm));
    const char *conf_arg = NULL, *data_dir = "./cmprouter-data", *http = NULL, *user = NULL;
    const char *admin = NULL, *tcp = NULL;
    int level = -1, opt, rc = 1;
    long nofile;
    char *err = NULL, threads[24];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    while ((opt = getopt_long(argc, argv, "c:d:H:fl:u:A:T:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf_arg = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'H': http = optarg; break;
        case 'f': break;        /* always in the foreground; systemd supervises */
        case 'l':
            if ((level = cmpr_log_level_from_name(optarg)) < 0) {
                fprintf(stderr, "cmprouterd: unknown log level %s\n", optarg);
                return 2;
            }
            break;
        case 'u': user = optarg; break;
        case 'A': admin = optarg; break;
        case 'T': tcp = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    g_daemon = dm;
    /* what it creates (the store, the embedded default's directories) is
     * not the world's, whatever umask it was started with; files with a
     * mode of their own (keys, the file drop's outbox) set it explicitly */
    umask(027);
    catch_sigbus();
    nofile = raise_nofile();
    if (conf_arg != NULL) {
        dm->conf_path = strdup(conf_arg);
    } else if (embedded_default(data_dir, http, tcp, &dm->conf_path) != 0) {
        return 1;
    }
    if (cmpr_conf_load(dm->conf_path, &dm->conf, &err) != CMPR_OK
            || cmpr_transports_check_groups(dm->conf, &err) != CMPR_OK
            || cmpr_conf_check_secrets(dm->conf, &err) != CMPR_OK) {
        fprintf(stderr, "cmprouterd: %s\n", err);
        return 1;
    }
    if (level >= 0)
        cmpr_log_set_level(level);
    /* exchanges with online upstreams run on a loop of their own */
    if (cmpr_ioloop_new(1, &dm->cl) != 0) {
        fprintf(stderr, "cmprouterd: cannot start the client loop\n");
        return 1;
    }
    if (cmpr_transports_core(dm->conf, dm->cl, &dm->core, &err) != CMPR_OK) {
        fprintf(stderr, "cmprouterd: %s\n", err != NULL ? err : "cannot start the core");
        return 1;
    }
    /* the core runs on the thread pool (created at its first use): one
     * worker per CPU, all doing crypto and storage; none ever waits on an
     * upstream (requests that do are parked, holding no thread) */
    snprintf(threads, sizeof(threads), "%ld", cpus > 0 ? cpus : 2);
    setenv("UV_THREADPOOL_SIZE", threads, 0);
    if (level >= 0)
        cmpr_log_set_level(level);
    if (dm->conf->log != NULL && strcmp(dm->conf->log, "syslog") == 0)
        cmpr_log_use_syslog("cmprouterd");
    if (user == NULL)
        user = dm->conf->user;
    uv_loop_init(&dm->loop);
    dm->base.loop = &dm->loop;
    dm->base.core = d_core;
    dm->base.request_done = d_request_done;
    dm->base.metrics = d_metrics;
    dm->base.health = d_health;
    {
        const struct cli_listen cli[] = {
            { "http", http, 1 }, { "admin", admin, 0 }, { "tcp", tcp, 0 },
        };

        if ((rc = start_transports(dm, cli, sizeof(cli) / sizeof(cli[0]))) != 0)
            return rc;
        if (check_fds(dm, nofile, atol(getenv("UV_THREADPOOL_SIZE"))) != 0)
            return 1;
    }
    if (user != NULL && drop_privileges(user) != 0)
        return 1;
    uv_signal_init(&dm->loop, &dm->sigterm);
    uv_signal_init(&dm->loop, &dm->sigint);
    uv_signal_init(&dm->loop, &dm->sighup);
    dm->sigterm.data = dm->sigint.data = dm->sighup.data = dm;
    uv_signal_start(&dm->sigterm, on_term, SIGTERM);
    uv_signal_start(&dm->sigint, on_term, SIGINT);
    uv_signal_start(&dm->sighup, on_hup, SIGHUP);
    uv_timer_init(&dm->loop, &dm->housekeeping);
    dm->housekeeping.data = dm;
    uv_timer_start(&dm->housekeeping, on_housekeeping, 0, HOUSEKEEPING_MS);
    for (int i = 0; i < dm->n_listeners; i++) {
        const struct listener *l = &dm->listeners[i];

        if (l->ops->port(l->ctx) > 0)
            printf("cmprouterd: %s listening on port %d\n", l->name, l->ops->port(l->ctx));
        else
            printf("cmprouterd: %s %s started\n", l->ops->name, l->name);
    }
    if (conf_arg == NULL)
        print_howto(data_dir, "127.0.0.1", dm->listeners[0].ops->port(dm->listeners[0].ctx));
    fflush(stdout);
    uv_run(&dm->loop, UV_RUN_DEFAULT);
    rc = 0;
    uv_loop_close(&dm->loop);
    /* exchanges still out end now: their results go to cores that stay until below */
    cmpr_ioloop_free(dm->cl);
    for (int i = 0; i < dm->n_listeners; i++) {
        dm->listeners[i].ops->free(dm->listeners[i].ctx);
        free(dm->listeners[i].ctx);
    }
    cmpr_core_free(dm->core);
    cmpr_conf_free(dm->conf);
    for (int i = 0; i < dm->n_old; i++) {
        cmpr_core_free(dm->old_cores[i]);
        cmpr_conf_free(dm->old_confs[i]);
    }
    free(dm->conf_path);
    free(dm);
    cmpr_log_info("stopped");
    return rc;
}
