/* Names and OIDs of the CMP vocabulary: body types, statuses, failInfo bits,
 * id-it, id-regCtrl, id-regInfo, protection algorithms. */
#ifndef CMPR_CODEC_OIDS_H
#define CMPR_CODEC_OIDS_H

#include <openssl/asn1.h>

const char *cmpr_body_name(int type);          /* "ir" ... "pollRep", NULL if unknown */
int cmpr_body_from_name(const char *name);     /* -1 if unknown */
/* RFC 9483 6.1: the operation a path label names ("initialization" ...)
 * -> the body type of the request that starts it; -1 if unknown */
int cmpr_operation_body(const char *op);
const char *cmpr_status_name(long status);     /* "accepted" ..., NULL if unknown */
const char *cmpr_failinfo_name(int bit);       /* "badAlg" ..., NULL if unknown */

/* id-it-N: 1.3.6.1.5.5.7.4.N */
ASN1_OBJECT *cmpr_it_obj(int n);               /* new object; caller frees */
int cmpr_it_num(const ASN1_OBJECT *obj);       /* N, or -1 if not under id-it */
const char *cmpr_it_name(int n);               /* "caCerts" ..., NULL if unknown */
int cmpr_it_from_name(const char *name);       /* -1 if unknown */

/* id-regCtrl-N: 1.3.6.1.5.5.7.5.1.N ; id-regInfo-N: 1.3.6.1.5.5.7.5.2.N */
enum { CMPR_REGCTRL_REGTOKEN = 1, CMPR_REGCTRL_AUTHENTICATOR = 2,
       CMPR_REGCTRL_PKIPUBLICATIONINFO = 3, CMPR_REGCTRL_PKIARCHIVEOPTIONS = 4,
       CMPR_REGCTRL_OLDCERTID = 5, CMPR_REGCTRL_PROTOCOLENCRKEY = 6,
       CMPR_REGCTRL_ALTCERTTEMPLATE = 7, CMPR_REGCTRL_ALGID = 11,
       CMPR_REGCTRL_RSAKEYLEN = 12 };
ASN1_OBJECT *cmpr_regctrl_obj(int n);
int cmpr_regctrl_num(const ASN1_OBJECT *obj);
const char *cmpr_regctrl_name(int n);
int cmpr_reginfo_num(const ASN1_OBJECT *obj);  /* 1 utf8Pairs, 2 certReq */

/* Protection algorithm OIDs without an OpenSSL NID in 3.0. */
#define CMPR_OID_PASSWORD_BASED_MAC "1.2.840.113533.7.66.13"
#define CMPR_OID_DH_BASED_MAC       "1.2.840.113533.7.66.30"
#define CMPR_OID_KEM_BASED_MAC      "1.2.840.113533.7.66.16"
#define CMPR_OID_PBMAC1             "1.2.840.113549.1.5.14"
#define CMPR_OID_PBKDF2             "1.2.840.113549.1.5.12"
enum cmpr_prot_kind { CMPR_PROT_NONE = 0, CMPR_PROT_PBM, CMPR_PROT_PBMAC1,
                      CMPR_PROT_DHBM, CMPR_PROT_KEMBM, CMPR_PROT_SIG,
                      CMPR_PROT_UNKNOWN };
int cmpr_prot_kind(const ASN1_OBJECT *alg);    /* enum cmpr_prot_kind */

/* OID in dotted form into buf; returns buf. */
char *cmpr_oid_text(const ASN1_OBJECT *obj, char *buf, size_t len);

#endif
