/* Decode/encode, header helpers, response builders and typed accessors.
 * Pure functions on CMPR_* structures: no I/O, no global state. */
#ifndef CMPR_CODEC_MSG_H
#define CMPR_CODEC_MSG_H

#include <stdint.h>
#include <time.h>

#include <openssl/cms.h>

#include "codec/asn1.h"

#define CMPR_PVNO_2 2
#define CMPR_PVNO_3 3
#define CMPR_NONCE_LEN 16                 /* 128 bits, RFC 9483 3.1 */
#define CMPR_CERTREQID_NONE (-1)          /* p10cr (RFC 9810 5.3.4) */

/* Where decoding failed: byte offset and what was expected there. */
struct cmpr_decode_err {
    size_t offset;
    char what[240];
};

/* Decode exactly one PKIMessage from untrusted bytes: size cap, DER skeleton
 * (definite lengths, depth cap, no trailing bytes), then the templates, then a
 * cap on nested-message depth. err may be NULL. */
int cmpr_msg_decode(const unsigned char *der, size_t len, CMPR_PKIMESSAGE **msg_r,
                    struct cmpr_decode_err *err);
/* For a client that needs neither the extraCerts nor a CertRepMessage's
 * caPubs (the load generator): decodes the message without them, the costly
 * part of decoding an answer (OpenSSL decodes every certificate's key), with
 * the same checks as cmpr_msg_decode. *pp_r (free()) gets the DER of the
 * ProtectedPart as received, for cmpr_verify_mac_over: a MAC is checked
 * over the bytes that came, not a re-encoding. Not for signature-protected
 * messages, whose extraCerts may hold the signer. */
int cmpr_msg_decode_lean(const unsigned char *der, size_t len, CMPR_PKIMESSAGE **msg_r,
                         unsigned char **pp_r, size_t *pp_len_r);
int cmpr_msg_encode(const CMPR_PKIMESSAGE *msg, unsigned char **der_r, size_t *len_r);

int cmpr_msg_bodytype(const CMPR_PKIMESSAGE *msg);
long cmpr_msg_pvno(const CMPR_PKIMESSAGE *msg);

/* ---- header helpers ---- */

/* A message with an empty body of the given type; sender and recipient are
 * the NULL-DN, senderNonce fresh, transactionID fresh, messageTime now. */
CMPR_PKIMESSAGE *cmpr_msg_new(int bodytype, long pvno);

/* A response header for req: same pvno, transactionID echoed, recipNonce =
 * req's senderNonce, recipient = req's sender, fresh senderNonce, messageTime
 * now (RFC 9810 5.1.1, RFC 9483 3.1). req may be NULL (nothing to echo). */
CMPR_PKIMESSAGE *cmpr_msg_new_response(const CMPR_PKIMESSAGE *req, int bodytype);

int cmpr_hdr_set_fresh_nonce(CMPR_PKIHEADER *hdr);
int cmpr_hdr_set_fresh_transaction_id(CMPR_PKIHEADER *hdr);
int cmpr_hdr_set1_transaction_id(CMPR_PKIHEADER *hdr, const unsigned char *id, size_t len);
int cmpr_hdr_set1_recip_nonce(CMPR_PKIHEADER *hdr, const ASN1_OCTET_STRING *nonce);
int cmpr_hdr_set1_sender_kid(CMPR_PKIHEADER *hdr, const unsigned char *kid, size_t len);
int cmpr_hdr_set_message_time(CMPR_PKIHEADER *hdr, time_t t);
int cmpr_hdr_set1_sender_name(CMPR_PKIHEADER *hdr, const X509_NAME *name);
int cmpr_hdr_set1_recipient_name(CMPR_PKIHEADER *hdr, const X509_NAME *name);
int cmpr_hdr_push0_geninfo(CMPR_PKIHEADER *hdr, CMPR_ITAV *itav);
int cmpr_hdr_push1_freetext(CMPR_PKIHEADER *hdr, const char *text);
/* First generalInfo ITAV with id-it-n, or NULL. */
CMPR_ITAV *cmpr_hdr_get0_geninfo(const CMPR_PKIHEADER *hdr, int it);
int cmpr_hdr_has_implicit_confirm(const CMPR_PKIHEADER *hdr);
/* The sender as a directoryName, or NULL. */
const X509_NAME *cmpr_hdr_get0_sender_name(const CMPR_PKIHEADER *hdr);

/* ---- status ---- */

/* failinfo is a bit mask: 1u << CMPR_FI_x. text may be NULL. */
CMPR_PKISI *cmpr_pkisi_new(int status, uint32_t failinfo, const char *text);
long cmpr_pkisi_status(const CMPR_PKISI *si);
uint32_t cmpr_pkisi_failinfo(const CMPR_PKISI *si);

/* ---- response builders (all return a new message, protection not yet set) ---- */

/* ip/cp/kup/ccp with one CertResponse. cert may be NULL (rejection/waiting);
 * caPubs (ip only) and extraCerts are copied (up-ref). si is consumed. */
CMPR_PKIMESSAGE *cmpr_msg_build_certrep(const CMPR_PKIMESSAGE *req, int bodytype,
                                        long certReqId, CMPR_PKISI *si, X509 *cert,
                                        STACK_OF(X509) *caPubs, STACK_OF(X509) *extraCerts);
/* rp with one status; certId (optional) copied into revCerts. si consumed. */
CMPR_PKIMESSAGE *cmpr_msg_build_rp(const CMPR_PKIMESSAGE *req, CMPR_PKISI *si,
                                   const OSSL_CRMF_CERTID *certId);
/* genp; itavs consumed (may be NULL: empty genp). */
CMPR_PKIMESSAGE *cmpr_msg_build_genp(const CMPR_PKIMESSAGE *req, STACK_OF(CMPR_ITAV) *itavs);
CMPR_PKIMESSAGE *cmpr_msg_build_pkiconf(const CMPR_PKIMESSAGE *req);
CMPR_PKIMESSAGE *cmpr_msg_build_pollrep(const CMPR_PKIMESSAGE *req, long certReqId,
                                        long checkAfter, const char *reason);
/* error; si consumed; errorCode < 0 means absent; details may be NULL. */
CMPR_PKIMESSAGE *cmpr_msg_build_error(const CMPR_PKIMESSAGE *req, CMPR_PKISI *si,
                                      long errorCode, const char *details);
/* krp; si consumed; others copied, may be NULL. */
CMPR_PKIMESSAGE *cmpr_msg_build_krp(const CMPR_PKIMESSAGE *req, CMPR_PKISI *si,
                                    X509 *newSigCert, STACK_OF(X509) *caCerts,
                                    STACK_OF(CMPR_CERTIFIEDKEYPAIR) *keyPairHist);

/* ---- request accessors ---- */

/* CertReqMessages of ir/cr/kur/krr/ccr, or NULL. */
CMPR_CERTREQMSGS *cmpr_msg_get0_reqs(const CMPR_PKIMESSAGE *msg);
/* CertRepMessage of ip/cp/kup/ccp, or NULL. */
CMPR_CERTREPMESSAGE *cmpr_msg_get0_rep(const CMPR_PKIMESSAGE *msg);
long cmpr_crm_certreqid(const CMPR_CERTREQMSG *crm);
/* The key of a SubjectPublicKeyInfo. EC (named curves), RSA, Ed25519/Ed448
 * and X25519/X448 keys are built from their parameters (fast); anything else
 * goes through d2i_PUBKEY. NULL if the key is malformed. */
EVP_PKEY *cmpr_spki_get1_pkey(const CMPR_SPKI *spki);
int cmpr_spki_set1_pkey(CMPR_SPKI **spki, EVP_PKEY *pkey);
/* Puts spki into pub as it is (algorithm and key bits copied) without
 * OpenSSL encoding and parsing the key again, for the kinds
 * cmpr_spki_get1_pkey builds itself: EC on a named curve, RSA with NULL
 * parameters, Ed25519/Ed448/X25519/X448 without. 1 done, 0 another kind
 * (X509_PUBKEY_set is the way then), -1 out of memory. Check the key with
 * cmpr_spki_get1_pkey first: this copies, it does not judge. */
int cmpr_spki_copy(const CMPR_SPKI *spki, X509_PUBKEY *pub);
/* The template's publicKey [6] as an EVP_PKEY, or NULL. */
EVP_PKEY *cmpr_tmpl_get1_pubkey(const CMPR_CERTTEMPLATE *tmpl);
/* The template's validity [4]; a missing bound is returned as 0.
 * CMPR_ERR_NOT_FOUND without [4]. */
int cmpr_tmpl_get_validity(const CMPR_CERTTEMPLATE *tmpl, time_t *not_before_r,
                           time_t *not_after_r);
/* Sets the given fields (NULL ones are left alone). */
int cmpr_tmpl_fill(CMPR_CERTTEMPLATE *tmpl, EVP_PKEY *pubkey, const X509_NAME *subject,
                   const X509_NAME *issuer, const ASN1_INTEGER *serial);
/* The value of control id-regCtrl-n, or NULL. */
const ASN1_TYPE *cmpr_crm_get0_control(const CMPR_CERTREQMSG *crm, int n);
OSSL_CRMF_CERTID *cmpr_crm_get1_oldcertid(const CMPR_CERTREQMSG *crm);
CMPR_PKIARCHIVEOPTIONS *cmpr_crm_get1_archive_options(const CMPR_CERTREQMSG *crm);
/* Converts to OpenSSL's CRMF type for its helpers (fails for POPs OpenSSL 3.0
 * cannot represent, e.g. encryptedKey EnvelopedData). */
OSSL_CRMF_MSG *cmpr_crm_to_ossl(const CMPR_CERTREQMSG *crm);

/* rr: issuer/serial of RevDetails idx (get0) and its CRL reason (-1 if none). */
int cmpr_rr_get(const CMPR_PKIMESSAGE *msg, int idx, const X509_NAME **issuer_r,
                const ASN1_INTEGER **serial_r, int *reason_r);
/* certProfile from generalInfo (RFC 9810 5.1.1.4): a copy of the first name, or NULL. */
ASN1_UTF8STRING *cmpr_msg_get1_certprofile(const CMPR_PKIMESSAGE *msg);

/* ---- ITAVs (RFC 9810 5.3.19, App F) ---- */

CMPR_ITAV *cmpr_itav_new0(int it, ASN1_TYPE *value);      /* value consumed, may be NULL */
int cmpr_itav_num(const CMPR_ITAV *itav);                 /* id-it-N or -1 */
CMPR_ITAV *cmpr_itav_new_implicit_confirm(void);
CMPR_ITAV *cmpr_itav_new_confirm_wait_time(time_t t);
int cmpr_itav_get_confirm_wait_time(const CMPR_ITAV *itav, time_t *t_r);
CMPR_ITAV *cmpr_itav_new_current_crl(const X509_CRL *crl);
X509_CRL *cmpr_itav_get1_current_crl(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_root_ca_cert(const X509 *cert);
X509 *cmpr_itav_get1_root_ca_cert(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_ca_certs(const STACK_OF(X509) *certs);   /* NULL: absent value */
STACK_OF(X509) *cmpr_itav_get1_ca_certs(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_root_ca_key_update(const CMPR_ROOTCAKEYUPDATECONTENT *c);
CMPR_ROOTCAKEYUPDATECONTENT *cmpr_itav_get1_root_ca_key_update(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_cert_req_template(const CMPR_CERTREQTEMPLATECONTENT *c);
CMPR_CERTREQTEMPLATECONTENT *cmpr_itav_get1_cert_req_template(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_crl_status_list(const STACK_OF(CMPR_CRLSTATUS) *l);
STACK_OF(CMPR_CRLSTATUS) *cmpr_itav_get1_crl_status_list(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_crls(const STACK_OF(X509_CRL) *crls);   /* NULL: absent value */
STACK_OF(X509_CRL) *cmpr_itav_get1_crls(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_cert_profile(const char *const *names, size_t n);
STACK_OF(ASN1_UTF8STRING) *cmpr_itav_get1_cert_profile(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_orig_pkimessage(const CMPR_PKIMESSAGES *msgs);
CMPR_PKIMESSAGES *cmpr_itav_get1_orig_pkimessage(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_sign_key_pair_types(const STACK_OF(X509_ALGOR) *algs);
STACK_OF(X509_ALGOR) *cmpr_itav_get1_sign_key_pair_types(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_unsupported_oids(const STACK_OF(ASN1_OBJECT) *oids);
STACK_OF(ASN1_OBJECT) *cmpr_itav_get1_unsupported_oids(const CMPR_ITAV *itav);
CMPR_ITAV *cmpr_itav_new_kem_ciphertext_info(const CMPR_KEMCIPHERTEXTINFO *k);
CMPR_KEMCIPHERTEXTINFO *cmpr_itav_get1_kem_ciphertext_info(const CMPR_ITAV *itav);

/* EnvelopedData as a CMS ContentInfo, for CMS_decrypt (RFC 9810 5.2.2). */
CMS_ContentInfo *cmpr_envdata_to_cms(const CMPR_ENVELOPEDDATA *env);
/* The EnvelopedData (AES-256-CBC) of plain for rcpt's key (key transport
 * or agreement, as its key type allows), or, with rcpt NULL, for the
 * password secret (PWRI, RFC 3211, as RFC 9810 5.2.2 asks for MAC-based
 * clients); NULL on failure. */
CMPR_ENVELOPEDDATA *cmpr_envdata_seal(const unsigned char *plain, size_t len, X509 *rcpt,
                                      const unsigned char *secret, size_t slen);
/* Opens env with key (and its certificate, may be NULL) or, with key NULL,
 * the password secret: CMPR_OK and the content in *out_r (OPENSSL_malloc;
 * the caller cleanses and frees it), else CMPR_ERR_DECRYPT. */
int cmpr_envdata_open(const CMPR_ENVELOPEDDATA *env, EVP_PKEY *key, X509 *cert, const unsigned char *secret,
                      size_t slen, unsigned char **out_r, size_t *len_r);

#endif
