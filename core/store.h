/*
 * Everything that must survive a crash, behind one narrow interface:
 * transactions, issued certificates and their revocation, serial numbers, the
 * nonce replay cache and an append-only audit log. SQLite (WAL) is the
 * embedded default; a PostgreSQL backend implements the same table of
 * operations for clusters.
 *
 * Every call is synchronous and durable when it returns CMPR_OK: the caller
 * commits state before the answer that depends on it leaves. Calls are safe
 * from several threads at once (worker threads of the core).
 *
 * Group commit: a thread that handles one message switches its batch on
 * (batch), makes its calls (each sees its own changes at once and decides
 * as usual: CMPR_ERR_EXISTS, CMPR_ERR_CONFLICT), then flushes before the
 * answer leaves: one commit, and one fsync, for everything it and every
 * other thread wrote meanwhile. A flush that fails means some or all of
 * that thread's changes since its last flush are gone (as if each call had
 * failed on its own): the answer must not promise any of them.
 */
#ifndef CMPR_CORE_STORE_H
#define CMPR_CORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CMPR_STORE_MAX_ID 64          /* transactionID, nonce, serial: bytes */

/* Transaction states (per transactionID + sender); see core/txn.c. */
enum cmpr_txn_state {
    CMPR_TXN_RECEIVED = 0,
    CMPR_TXN_PENDING_APPROVAL,
    CMPR_TXN_FORWARDED,
    CMPR_TXN_WAITING_POLL,
    CMPR_TXN_ISSUED,            /* certificate sent, certConf awaited */
    CMPR_TXN_CONFIRMED,
    CMPR_TXN_REJECTED,
    CMPR_TXN_EXPIRED,
    CMPR_TXN_ANSWERED,          /* rr, genm, error: one round, done */
    CMPR_TXN_STATE_LAST
};
const char *cmpr_txn_state_name(int state);

struct cmpr_txn_rec {
    unsigned char tid[CMPR_STORE_MAX_ID];
    size_t tid_len;
    char sender[512];                   /* RFC 2253 DN or "ref:<senderKID hex>" */
    int state;                          /* enum cmpr_txn_state */
    int read_state;                     /* the state txn_get returned (optimistic locking) */
    int req_type;                       /* body type of the first request */
    char client[128];                   /* [client NAME] that authenticated, or "" */
    char profile[128];
    char note[512];                     /* operator's reason for a rejection; the changes of an approved grant */
    unsigned char last_nonce[CMPR_STORE_MAX_ID];   /* our senderNonce in the last answer */
    size_t last_nonce_len;
    unsigned char req_nonce[CMPR_STORE_MAX_ID];    /* senderNonce of the last request answered */
    size_t req_nonce_len;
    unsigned char serial[CMPR_STORE_MAX_ID];       /* certificate issued in this transaction */
    size_t serial_len;
    unsigned char old_serial[CMPR_STORE_MAX_ID];   /* kur: the certificate being replaced */
    size_t old_serial_len;
    unsigned char *request;             /* DER of the request that opened it (owned) */
    size_t request_len;
    unsigned char *response;            /* DER of the last answer, for replays (owned) */
    size_t response_len;
    int64_t created, updated, expires;  /* seconds since the epoch; expires 0 = never */
};
void cmpr_txn_rec_clear(struct cmpr_txn_rec *rec);   /* frees request/response */

/* A request on its way to an upstream CA (core/forward.c), one per
 * transactionID: the message of the client it carries, what went upstream,
 * what came back. Survives restarts: the forwarder picks it up again. */
enum cmpr_fwd_state {
    CMPR_FWD_QUEUED = 0,        /* to be sent (again) at next_try */
    CMPR_FWD_SENT,              /* out on an offline medium; answer collected by key */
    CMPR_FWD_ANSWERED,          /* the upstream's answer is in ans */
    CMPR_FWD_FAILED,            /* given up: err says why */
    CMPR_FWD_DONE,              /* answer delivered; kept to route the follow-ups */
    CMPR_FWD_NEW,               /* a record not yet stored (never in the store) */
    CMPR_FWD_STATE_LAST
};
const char *cmpr_fwd_state_name(int state);

struct cmpr_fwd_rec {
    unsigned char tid[CMPR_STORE_MAX_ID];
    size_t tid_len;
    char route[128];
    int state;                          /* enum cmpr_fwd_state */
    int read_state;                     /* the state fwd_get/fwd_list returned */
    int64_t ver;                        /* optimistic locking: bumped by every fwd_put */
    int delayed;                        /* we answered the client "waiting" for it */
    int client_body;                    /* body type of the client's message it carries */
    unsigned char client_nonce[CMPR_STORE_MAX_ID];  /* that message's senderNonce */
    size_t client_nonce_len;
    unsigned char up_nonce[CMPR_STORE_MAX_ID];      /* the upstream's last senderNonce */
    size_t up_nonce_len;
    char client[128];                   /* [client] that authenticated, or "" */
    int auth, mac_kind;                 /* how it authenticated (to protect answers for it) */
    char key[300];                      /* offline medium: what the answer is collected by */
    char batch[140];                    /* hex transactionID of the nested bundle, or "" */
    char push[2048];                    /* where the answer can be pushed (request_info.push), or "" */
    unsigned char *req;                 /* what goes upstream (owned) */
    size_t req_len;
    unsigned char *ans;                 /* what came back (owned) */
    size_t ans_len;
    unsigned char *last;                /* our last answer to the client, for retransmissions */
    size_t last_len;
    unsigned char last_nonce[CMPR_STORE_MAX_ID];    /* senderNonce of the message it answered */
    size_t last_nonce_len;
    char err[300];
    int attempts;
    int64_t created, updated, next_try;
    /* the node that drives it (forwarder.c) and until when, unless it
     * renews; another node takes it over after that */
    char owner[64];
    int64_t lease_until;
};
void cmpr_fwd_rec_clear(struct cmpr_fwd_rec *rec);

/* An answer a client comes back for by reference (the TCP-Message pollReq
 * of cmp-wire.md 1.2; core.h cmpr_core_defer). */
enum cmpr_defer_state {
    CMPR_DEFER_WORKING = 0,     /* the request is in the core */
    CMPR_DEFER_DONE,            /* its answer is here */
    CMPR_DEFER_FAILED,          /* no answer can come: the client sends it again */
    CMPR_DEFER_STATE_LAST
};
const char *cmpr_defer_state_name(int state);

struct cmpr_defer_rec {
    uint32_t ref;
    int state;                          /* enum cmpr_defer_state */
    int read_state;                     /* the state defer_get returned (optimistic locking) */
    unsigned char *req, *answer;        /* owned */
    size_t req_len, answer_len;
    int64_t created;
};
void cmpr_defer_rec_clear(struct cmpr_defer_rec *rec);

enum cmpr_cert_status { CMPR_CERT_VALID = 0, CMPR_CERT_REVOKED = 1, CMPR_CERT_ON_HOLD = 2 };

struct cmpr_cert_rec {
    unsigned char serial[CMPR_STORE_MAX_ID];
    size_t serial_len;
    char issuer[512];
    char subject[512];
    int64_t not_before, not_after;
    int status;                         /* enum cmpr_cert_status */
    int64_t revoked_at;
    int reason;                         /* CRLReason, -1 if none */
    int confirmed;                      /* certConf accepted (or implicit confirm) */
    unsigned char tid[CMPR_STORE_MAX_ID];
    size_t tid_len;
    unsigned char *der;                 /* owned */
    size_t der_len;
};
void cmpr_cert_rec_clear(struct cmpr_cert_rec *rec);

struct cmpr_store;

struct cmpr_store_ops {
    const char *scheme;                 /* "sqlite", "postgresql" */
    int (*open)(const char *location, struct cmpr_store **st_r);
    void (*close)(struct cmpr_store *st);
    /* CMPR_ERR_EXISTS if the transactionID is already in use */
    int (*txn_insert)(struct cmpr_store *st, const struct cmpr_txn_rec *rec);
    /* updates state, client, profile, note, nonces, serial, response, times,
     * only while the stored state is still rec->read_state (another process,
     * the operator's CLI or housekeeping, may have moved it meanwhile):
     * CMPR_ERR_CONFLICT then; CMPR_ERR_NOT_FOUND if there is none */
    int (*txn_update)(struct cmpr_store *st, const struct cmpr_txn_rec *rec);
    /* the operator's change: state, serial, note and updated only (never the
     * nonces and answer a concurrent poll may just have written), under the
     * same condition as txn_update */
    int (*txn_set_state)(struct cmpr_store *st, const struct cmpr_txn_rec *rec);
    int (*txn_get)(struct cmpr_store *st, const unsigned char *tid, size_t tid_len,
                   struct cmpr_txn_rec *rec_r);
    /* calls cb for each transaction in state (or any state if state < 0) */
    int (*txn_list)(struct cmpr_store *st, int state,
                    int (*cb)(const struct cmpr_txn_rec *rec, void *arg), void *arg);
    /* reserves a serial number for ever; CMPR_ERR_EXISTS if it was ever used */
    int (*serial_reserve)(struct cmpr_store *st, const unsigned char *serial, size_t len);
    int (*cert_put)(struct cmpr_store *st, const struct cmpr_cert_rec *rec);
    int (*cert_get)(struct cmpr_store *st, const unsigned char *serial, size_t len,
                    struct cmpr_cert_rec *rec_r);
    int (*cert_set_status)(struct cmpr_store *st, const unsigned char *serial, size_t len,
                           int status, int64_t when, int reason, int confirmed);
    int (*cert_list)(struct cmpr_store *st, int (*cb)(const struct cmpr_cert_rec *rec, void *arg),
                     void *arg);
    /* the certificates revoked or on hold only (a CRL's entries), by an
     * index: what a CRL costs grows with the revocations, not the store */
    int (*cert_list_revoked)(struct cmpr_store *st,
                             int (*cb)(const struct cmpr_cert_rec *rec, void *arg), void *arg);
    /* CMPR_ERR_EXISTS if nonce was seen after now - window; records it otherwise */
    int (*nonce_check)(struct cmpr_store *st, const unsigned char *nonce, size_t len,
                       int64_t now, int64_t window);
    /* archived private keys (still encrypted to the CA's encryption
     * certificate), by the serial of the certificate they belong to */
    int (*archive_put)(struct cmpr_store *st, const unsigned char *serial, size_t len,
                       const char *subject, const char *client,
                       const unsigned char *envdata, size_t envdata_len);
    /* cb(serial, len, client, envdata, envdata_len, arg) for each key of subject */
    int (*archive_list)(struct cmpr_store *st, const char *subject,
                        int (*cb)(const unsigned char *serial, size_t len, const char *client,
                                  const unsigned char *envdata, size_t envdata_len, void *arg),
                        void *arg);
    /* Forwarded requests. fwd_put inserts (rec->ver 0; CMPR_ERR_EXISTS if
     * there is one) or updates the record while its ver is still rec->ver
     * (CMPR_ERR_CONFLICT otherwise); either way the stored ver is bumped
     * and written back to rec. */
    int (*fwd_put)(struct cmpr_store *st, struct cmpr_fwd_rec *rec);
    int (*fwd_get)(struct cmpr_store *st, const unsigned char *tid, size_t tid_len,
                   struct cmpr_fwd_rec *rec_r);
    /* every record not DONE (or all with all set), oldest first, into a
     * malloc()ed array (free each with cmpr_fwd_rec_clear, then the array) */
    int (*fwd_list)(struct cmpr_store *st, int all, struct cmpr_fwd_rec **recs_r, size_t *n_r);
    int (*fwd_delete)(struct cmpr_store *st, const unsigned char *tid, size_t tid_len);
    /* Answers by reference: defer_put inserts (read_state < 0; CMPR_ERR_EXISTS
     * if ref is in use) or updates state and answer while the stored state
     * is still rec->read_state (CMPR_ERR_CONFLICT otherwise). */
    int (*defer_put)(struct cmpr_store *st, struct cmpr_defer_rec *rec);
    int (*defer_get)(struct cmpr_store *st, uint32_t ref, struct cmpr_defer_rec *rec_r);
    /* cb for each, oldest first; then those created before older_than go */
    int (*defer_list)(struct cmpr_store *st, int64_t older_than,
                      int (*cb)(const struct cmpr_defer_rec *rec, void *arg), void *arg);
    /* on: until batch(st, 0), this thread's changes are not durable when a
     * call returns, only after flush (switch a batch off only after a flush) */
    void (*batch)(struct cmpr_store *st, int on);
    /* makes this thread's changes (and what it read of other threads'
     * changes not yet durable) durable: CMPR_OK, or CMPR_ERR_STORE when
     * they were lost */
    int (*flush)(struct cmpr_store *st);
    /* flush in two halves, for a caller that has other work to do while the
     * disk syncs (the core's syncer, submit.c): commit hands this thread's
     * changes to the group commit without waiting and names in *token_r what
     * an answer depending on them (or on what the thread read) must wait for
     * (0: nothing, all durable already; CMPR_ERR_STORE: lost already);
     * sync(token) waits until that is durable (committing the group if
     * nobody has yet): CMPR_OK or CMPR_ERR_STORE. Tokens grow: a later one
     * covers an earlier one. A backend whose commits are durable at once
     * does all of it in commit and gives 0. Switch the batch off after. */
    int (*commit)(struct cmpr_store *st, uint64_t *token_r);
    int (*sync)(struct cmpr_store *st, uint64_t token);
    int (*audit)(struct cmpr_store *st, const unsigned char *tid, size_t tid_len,
                 const char *who, const char *event, const char *detail);
    int (*audit_list)(struct cmpr_store *st,
                      int (*cb)(int64_t when, const char *tid_hex, const char *who,
                                const char *event, const char *detail, void *arg),
                      void *arg);
    /* for copying one store into another (cmpr_store_copy): every serial
     * ever reserved; every archived key with its subject; an audit entry
     * with the time it was first written */
    int (*serial_list)(struct cmpr_store *st,
                       int (*cb)(const unsigned char *serial, size_t len, void *arg), void *arg);
    int (*archive_all)(struct cmpr_store *st,
                       int (*cb)(const unsigned char *serial, size_t len, const char *subject,
                                 const char *client, const unsigned char *envdata, size_t envdata_len,
                                 void *arg),
                       void *arg);
    int (*audit_at)(struct cmpr_store *st, int64_t when, const unsigned char *tid, size_t tid_len,
                    const char *who, const char *event, const char *detail);
};

/* The store handle every backend's struct starts with. */
struct cmpr_store {
    const struct cmpr_store_ops *ops;
};

extern const struct cmpr_store_ops cmpr_store_sqlite_ops;
extern const struct cmpr_store_ops cmpr_store_pg_ops;   /* open fails when built without libpq */

/* "sqlite:/path/file.db" or a bare path (SQLite); "postgresql://..." (a
 * libpq URI) or "postgresql:" followed by any libpq connection string. */
int cmpr_store_open(const char *spec, struct cmpr_store **st_r);
/* spec as it may be shown: a PostgreSQL connection string without its
 * password (postgresql://user@host:port/dbname) */
void cmpr_store_name(const char *spec, char *out, size_t cap);
void cmpr_store_pg_name(const char *conninfo, char *out, size_t cap);
void cmpr_store_close(struct cmpr_store *st);

/* Copies what one store holds into another (cmprouter store copy: a single
 * node's SQLite into the cluster's PostgreSQL), idempotent: a record
 * already in the target (by its key) is left as it is and counted as
 * present; audit entries are copied once (a marker entry in the target
 * says from where). The replay cache of nonces is not copied. Per kind:
 * rows in the source, copied, already present; CMPR_OK or the first error
 * (then counts say how far it got). */
enum { CMPR_COPY_TXN, CMPR_COPY_SERIAL, CMPR_COPY_CERT, CMPR_COPY_ARCHIVE, CMPR_COPY_FWD,
       CMPR_COPY_DEFER, CMPR_COPY_AUDIT, CMPR_COPY_KINDS };
struct cmpr_copy_counts {
    long source[CMPR_COPY_KINDS], copied[CMPR_COPY_KINDS], present[CMPR_COPY_KINDS];
};
extern const char *const cmpr_copy_kind_names[CMPR_COPY_KINDS];
int cmpr_store_copy(struct cmpr_store *from, const char *from_name, struct cmpr_store *to,
                    struct cmpr_copy_counts *n);

#endif
