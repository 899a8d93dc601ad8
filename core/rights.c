/* What a client may do to certificates it does not hold (cmprouter.conf(5)
 * [client] renew, revoke): none; its own, the certificates it enrolled and
 * those that succeed one of them through kur (followed back through each
 * update's transaction, at most CMPR_MAX_GENERATIONS); any certificate of
 * its profiles; any certificate. Reads the store, changes nothing. */
#include "core/req.h"
#include "base/err.h"

#include <string.h>

#define CMPR_MAX_GENERATIONS 64

int
cmpr_rights_cover(struct req *q, int right, const struct cmpr_cert_rec *cert)
{
    const struct cmpr_conf_client *cl = q->client;
    struct cmpr_store *st = q->core->st;
    unsigned char tid[CMPR_STORE_MAX_ID];
    size_t tid_len = cert->tid_len;
    int covered = 0;

    if (cl == NULL || right == CMPR_RIGHT_NONE)
        return 0;
    if (right == CMPR_RIGHT_ANY)
        return 1;
    memcpy(tid, cert->tid, tid_len);
    for (int gen = 0; gen < CMPR_MAX_GENERATIONS && tid_len > 0 && !covered; gen++) {
        struct cmpr_txn_rec t;
        struct cmpr_cert_rec prev;

        if (st->ops->txn_get(st, tid, tid_len, &t) != CMPR_OK)
            break;
        if (right == CMPR_RIGHT_PROFILES) {
            covered = cl->profiles == NULL || cmpr_strv_contains(cl->profiles, t.profile);
            cmpr_txn_rec_clear(&t);
            break;
        }
        covered = strcmp(t.client, cl->name) == 0;
        tid_len = 0;
        /* a successor: whose was the certificate it replaced? */
        if (!covered && t.old_serial_len > 0 && st->ops->cert_get(st, t.old_serial, t.old_serial_len, &prev) == CMPR_OK) {
            memcpy(tid, prev.tid, prev.tid_len);
            tid_len = prev.tid_len;
            cmpr_cert_rec_clear(&prev);
        }
        cmpr_txn_rec_clear(&t);
    }
    return covered;
}
