/* The end entity's side of a CMP transaction (RFC 9483 4, RFC 9810 5.3):
 * building its requests and checking the server's answers. No I/O: the
 * `cmprouter` client (apps/client.c) carries the bytes over a medium. */
#ifndef CMPR_CODEC_EE_H
#define CMPR_CODEC_EE_H

#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "codec/asn1.h"

/* What an ir/cr/kur/ccr asks for (one CertReqMsg, certReqId 0, POP by signature). */
struct cmpr_ee_certreq {
    int body;                           /* CMPR_BODY_IR, _CR, _KUR or _CCR */
    EVP_PKEY *key;                      /* the key to certify; signs the POP */
    const X509_NAME *subject;           /* NULL: none (kur: the old certificate's) */
    const GENERAL_NAMES *sans;          /* subjectAltName extension, or NULL */
    const X509 *oldcert;                /* kur: oldCertId control (RFC 9483 4.1.3) */
    const char *profile;                /* certProfile in generalInfo (RFC 9483 3.1), or NULL */
    int implicit_confirm;               /* ask for implicitConfirm */
    long days;                          /* validity wished in the template; 0: none */
    X509 *archive_to;                   /* pkiArchiveOptions: key encrypted to this CA
                                           encryption certificate (pvno 3), or NULL */
    const char *central;                /* central key generation (RFC 9483 4.1.6): the key
                                           type asked for ("" the CA's choice; key unused),
                                           or NULL */
};

CMPR_PKIMESSAGE *cmpr_ee_new_certreq(const struct cmpr_ee_certreq *r);
/* p10cr carrying csr (RFC 9483 4.1.4) */
CMPR_PKIMESSAGE *cmpr_ee_new_p10cr(const X509_REQ *csr, const char *profile, int implicit_confirm);
/* krr (RFC 9810 5.3.7, pvno 3): recover the archived keys of subject */
CMPR_PKIMESSAGE *cmpr_ee_new_krr(const X509_NAME *subject);
/* rr for cert (issuer and serial, RFC 9483 4.2); reason < 0: no CRL reason */
CMPR_PKIMESSAGE *cmpr_ee_new_rr(const X509 *cert, int reason);
/* genm with one ITAV id-it-<it> without a value (it < 0: empty genm) */
CMPR_PKIMESSAGE *cmpr_ee_new_genm(int it);
/* Follow-ups in the transaction of the answer rsp (same transactionID and
 * pvno, recipNonce = its senderNonce, a fresh senderNonce). */
CMPR_PKIMESSAGE *cmpr_ee_new_pollreq(const CMPR_PKIMESSAGE *rsp, long cert_req_id);
/* certConf for cert (certHash per RFC 9810 5.3.18); accept 0 rejects it with text */
CMPR_PKIMESSAGE *cmpr_ee_new_certconf(const CMPR_PKIMESSAGE *rsp, long cert_req_id,
                                      const X509 *cert, int accept, const char *text);

/* The answer belongs to req (RFC 9810 5.1.1): same transactionID, the
 * recipNonce is req's senderNonce, the same pvno. CMPR_OK, else an error
 * with why[] set. */
int cmpr_ee_check_header(const CMPR_PKIMESSAGE *req, const CMPR_PKIMESSAGE *rsp, char *why,
                         size_t wlen);

/* What an answer says, whatever its body. */
struct cmpr_ee_result {
    int body;                           /* CMPR_BODY_* */
    long status;                        /* CMPR_STATUS_*, -1 when the body has none */
    uint32_t failinfo;                  /* bits 1u << CMPR_FI_* */
    char text[512];                     /* statusString / errorDetails / pollRep reason */
    long cert_req_id;                   /* of the CertResponse or pollRep */
    long check_after;                   /* pollRep: seconds; else -1 */
    X509 *cert;                         /* certificate issued (get0), or NULL */
    int encrypted_cert;                 /* the certificate came encrypted (not supported) */
    int implicit_confirm;               /* the server granted implicitConfirm */
    int n_keys;                         /* krp: keys in keyPairHist */
    const CMPR_ENVELOPEDDATA *central_key;  /* the private key the CA generated (get0), or NULL */
};
int cmpr_ee_result(const CMPR_PKIMESSAGE *rsp, struct cmpr_ee_result *r);
/* "badPOP, badTime" for failinfo bits into buf */
void cmpr_ee_failinfo_names(uint32_t failinfo, char *buf, size_t len);

#endif
