/* Revocation (RFC 9810 5.3.9, RFC 9483 4.2): rr from the holder, an RA or
 * the client that enrolled the certificate; and the revocations the other
 * stages make (a rejected certConf, a superseded key, housekeeping). Who
 * may revoke what: rights.c. */
#include "core/req.h"
#include "core/txn.h"
#include "base/err.h"
#include "codec/oids.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int
cmpr_revoke_serial(struct req *q, const unsigned char *serial, size_t len, int reason)
{
    struct cmpr_store *st = q->core->st;
    int r = st->ops->cert_set_status(st, serial, len, CMPR_CERT_REVOKED, (int64_t)time(NULL), reason, 0);

    if (r == CMPR_OK)
        (void)cmpr_ca_write_crl(q->ca, st, NULL);
    return r;
}

/* an rp with status rejection (RFC 9810 5.3.10) */
#define rp_reject(q, failbit, ...) \
    cmpr_msg_build_rp((q)->msg, cmpr_rejection((q), "rr-rejected", (failbit), __VA_ARGS__), NULL)

/* the client's revoke right: as configured, or else any for a registration
 * authority (ra = yes, or signing with the cmcRA extended key usage) and
 * own for others */
static int
revoke_right(const struct req *q)
{
    if (q->client != NULL && q->client->revoke >= 0)
        return q->client->revoke;
    return (q->client != NULL && q->client->ra) || (q->auth == AUTH_SIG && q->signer_is_ra)
           ? CMPR_RIGHT_ANY : CMPR_RIGHT_OWN;
}

/* who may revoke (RFC 9483 4.2): the holder (a signature with that
 * certificate), a registration authority, or a client whose revoke right
 * covers it */
static int
may_revoke(struct req *q, const X509_NAME *issuer, const ASN1_INTEGER *serial, const struct cmpr_cert_rec *cert)
{
    if (q->auth == AUTH_SIG && q->signer != NULL && ASN1_INTEGER_cmp(X509_get0_serialNumber(q->signer), serial) == 0
            && X509_NAME_cmp(X509_get_issuer_name(q->signer), issuer) == 0)
        return 1;
    if (q->auth == AUTH_SIG && q->signer_is_ra && q->client == NULL)
        return 1;
    return q->client != NULL && cmpr_rights_cover(q, revoke_right(q), cert);
}

/* the new status for reason, or an answer refusing it */
static CMPR_PKIMESSAGE *
new_status(struct req *q, const struct cmpr_cert_rec *cert, int *reason, int *status)
{
    if (*reason < 0)
        *reason = 0;
    if (*reason == 8) {         /* removeFromCRL: only releases a hold */
        if (cert->status != CMPR_CERT_ON_HOLD)
            return rp_reject(q, CMPR_FI_BAD_REQUEST, "removeFromCRL applies only to a certificate on hold");
        *status = CMPR_CERT_VALID;
        *reason = -1;
        return NULL;
    }
    if (cert->status == CMPR_CERT_REVOKED || (cert->status == CMPR_CERT_ON_HOLD && *reason == 6))
        return rp_reject(q, CMPR_FI_CERT_REVOKED, "the certificate is already revoked");
    if (cert->not_after < (int64_t)time(NULL))
        return rp_reject(q, CMPR_FI_CERT_REVOKED, "the certificate has expired");
    if (*reason == 7 || *reason > 10)
        return rp_reject(q, CMPR_FI_BAD_REQUEST, "invalid revocation reason %d", *reason);
    *status = *reason == 6 ? CMPR_CERT_ON_HOLD : CMPR_CERT_REVOKED;
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_revoke_request(struct req *q)
{
    const X509_NAME *issuer;
    const ASN1_INTEGER *serial;
    unsigned char sn[CMPR_STORE_MAX_ID];
    char snhex[2 * CMPR_STORE_MAX_ID + 1];
    size_t snlen;
    struct cmpr_cert_rec cert;
    int reason, status = CMPR_CERT_VALID;
    struct cmpr_store *st = q->core->st;
    CMPR_PKIMESSAGE *rsp;

    if ((rsp = cmpr_open_txn(q)) != NULL || (rsp = cmpr_txn_move(q, CMPR_TXN_ANSWERED)) != NULL)
        return rsp;
    if (sk_CMPR_REVDETAILS_num(q->msg->body->value.rr) != 1)
        return rp_reject(q, CMPR_FI_BAD_REQUEST, "exactly one RevDetails per rr is supported");
    if (cmpr_rr_get(q->msg, 0, &issuer, &serial, &reason) != CMPR_OK || issuer == NULL || serial == NULL)
        return rp_reject(q, CMPR_FI_BAD_CERT_ID, "RevDetails must name issuer and serialNumber");
    if (X509_NAME_cmp(issuer, X509_get_subject_name(q->ca->cert)) != 0)
        return rp_reject(q, CMPR_FI_BAD_CERT_ID, "the certificate was not issued by this CA");
    cmpr_serial_bytes(serial, sn, sizeof(sn), &snlen);
    if (st->ops->cert_get(st, sn, snlen, &cert) != CMPR_OK)
        return rp_reject(q, CMPR_FI_BAD_CERT_ID, "no certificate with this serial number was issued here");
    if (!may_revoke(q, issuer, serial, &cert))
        rsp = q->client != NULL
              ? rp_reject(q, CMPR_FI_NOT_AUTHORIZED, "client %s may not revoke this certificate (revoke = %s)",
                          q->client->name, cmpr_right_names[revoke_right(q)])
              : rp_reject(q, CMPR_FI_NOT_AUTHORIZED, "only the holder, a registration authority or a client "
                          "with the right may revoke a certificate");
    else if ((rsp = new_status(q, &cert, &reason, &status)) == NULL
             && st->ops->cert_set_status(st, sn, snlen, status, (int64_t)time(NULL), reason, cert.confirmed) != CMPR_OK)
        rsp = cmpr_error_rsp(q, CMPR_FI_SYSTEM_FAILURE, "cannot record the revocation");
    if (rsp != NULL) {
        cmpr_cert_rec_clear(&cert);
        return rsp;
    }
    (void)cmpr_ca_write_crl(q->ca, st, NULL);
    cmpr_hex(sn, snlen, snhex, sizeof(snhex));
    cmpr_audit(q, "revoked", "serial %s subject %s reason %d%s", snhex, cert.subject, reason,
               status == CMPR_CERT_VALID ? " (hold released)" : "");
    cmpr_cert_rec_clear(&cert);
    return cmpr_msg_build_rp(q->msg, cmpr_pkisi_new(CMPR_STATUS_ACCEPTED, 0, NULL), NULL);
}
