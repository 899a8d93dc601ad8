#include "codec/oids.h"
#include "codec/asn1.h"

#include <openssl/objects.h>
#include <stdio.h>
#include <string.h>

static const char *const body_names[CMPR_BODY_COUNT] = {
    "ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr", "kur", "kup", "krr",
    "krp", "rr", "rp", "ccr", "ccp", "ckuann", "cann", "rann", "crlann",
    "pkiconf", "nested", "genm", "genp", "error", "certConf", "pollReq", "pollRep"
};

const char *
cmpr_body_name(int type)
{
    if (type < 0 || type >= CMPR_BODY_COUNT)
        return NULL;
    return body_names[type];
}

int
cmpr_body_from_name(const char *name)
{
    for (int i = 0; i < CMPR_BODY_COUNT; i++)
        if (strcmp(body_names[i], name) == 0)
            return i;
    return -1;
}

int
cmpr_operation_body(const char *op)
{
    static const struct { const char *label; int body; } ops[] = {
        { "initialization", CMPR_BODY_IR }, { "certification", CMPR_BODY_CR },
        { "keyupdate", CMPR_BODY_KUR }, { "pkcs10", CMPR_BODY_P10CR },
        { "p10", CMPR_BODY_P10CR }, { "revocation", CMPR_BODY_RR },
        { "getcacerts", CMPR_BODY_GENM }, { "getrootupdate", CMPR_BODY_GENM },
        { "getcertreqtemplate", CMPR_BODY_GENM }, { "getcrls", CMPR_BODY_GENM },
        { "nested", CMPR_BODY_NESTED },
    };

    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].label, op) == 0)
            return ops[i].body;
    return -1;
}

static const char *const status_names[] = {
    "accepted", "grantedWithMods", "rejection", "waiting",
    "revocationWarning", "revocationNotification", "keyUpdateWarning"
};

const char *
cmpr_status_name(long status)
{
    if (status < 0 || status > 6)
        return NULL;
    return status_names[status];
}

static const char *const failinfo_names[CMPR_FI_MAX + 1] = {
    "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId",
    "badDataFormat", "wrongAuthority", "incorrectData", "missingTimeStamp",
    "badPOP", "certRevoked", "certConfirmed", "wrongIntegrity",
    "badRecipientNonce", "timeNotAvailable", "unacceptedPolicy",
    "unacceptedExtension", "addInfoNotAvailable", "badSenderNonce",
    "badCertTemplate", "signerNotTrusted", "transactionIdInUse",
    "unsupportedVersion", "notAuthorized", "systemUnavail", "systemFailure",
    "duplicateCertReq"
};

const char *
cmpr_failinfo_name(int bit)
{
    if (bit < 0 || bit > CMPR_FI_MAX)
        return NULL;
    return failinfo_names[bit];
}

static const char *const it_names[25] = {
    NULL, "caProtEncCert", "signKeyPairTypes", "encKeyPairTypes",
    "preferredSymmAlg", "caKeyUpdateInfo", "currentCRL", "unsupportedOIDs",
    NULL, NULL, "keyPairParamReq", "keyPairParamRep", "revPassphrase",
    "implicitConfirm", "confirmWaitTime", "origPKIMessage", "suppLangTags",
    "caCerts", "rootCaKeyUpdate", "certReqTemplate", "rootCaCert",
    "certProfile", "crlStatusList", "crls", "kemCiphertextInfo"
};

/* DER content of an arc prefix followed by one small arc */
static ASN1_OBJECT *
obj_under(const unsigned char *prefix, size_t plen, int n)
{
    unsigned char der[16];
    const unsigned char *p = der;

    if (n < 0 || n > 127 || plen + 3 > sizeof(der))
        return NULL;
    der[0] = 0x06;
    der[1] = (unsigned char)(plen + 1);
    memcpy(der + 2, prefix, plen);
    der[2 + plen] = (unsigned char)n;
    return d2i_ASN1_OBJECT(NULL, &p, (long)(plen + 3));
}

static int
num_under(const ASN1_OBJECT *obj, const unsigned char *prefix, size_t plen)
{
    const unsigned char *data;
    size_t len;

    if (obj == NULL)
        return -1;
    data = OBJ_get0_data(obj);
    len = OBJ_length(obj);
    if (data == NULL || len != plen + 1 || memcmp(data, prefix, plen) != 0
            || (data[plen] & 0x80) != 0)
        return -1;
    return data[plen];
}

static const unsigned char id_it[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x04 };
static const unsigned char id_regctrl[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x05, 0x01 };
static const unsigned char id_reginfo[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x05, 0x02 };

ASN1_OBJECT *cmpr_it_obj(int n) { return obj_under(id_it, sizeof(id_it), n); }
int cmpr_it_num(const ASN1_OBJECT *obj) { return num_under(obj, id_it, sizeof(id_it)); }
ASN1_OBJECT *cmpr_regctrl_obj(int n) { return obj_under(id_regctrl, sizeof(id_regctrl), n); }
int cmpr_regctrl_num(const ASN1_OBJECT *obj) { return num_under(obj, id_regctrl, sizeof(id_regctrl)); }
int cmpr_reginfo_num(const ASN1_OBJECT *obj) { return num_under(obj, id_reginfo, sizeof(id_reginfo)); }

const char *
cmpr_it_name(int n)
{
    if (n < 0 || n >= (int)(sizeof(it_names) / sizeof(it_names[0])))
        return NULL;
    return it_names[n];
}

int
cmpr_it_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(it_names) / sizeof(it_names[0]); i++)
        if (it_names[i] != NULL && strcmp(it_names[i], name) == 0)
            return (int)i;
    return -1;
}

const char *
cmpr_regctrl_name(int n)
{
    switch (n) {
    case 1: return "regToken";
    case 2: return "authenticator";
    case 3: return "pkiPublicationInfo";
    case 4: return "pkiArchiveOptions";
    case 5: return "oldCertID";
    case 6: return "protocolEncrKey";
    case 7: return "altCertTemplate";
    case 11: return "algId";
    case 12: return "rsaKeyLen";
    default: return NULL;
    }
}

static int
oid_equals_text(const ASN1_OBJECT *obj, const char *dotted)
{
    char buf[80];

    return OBJ_obj2txt(buf, sizeof(buf), obj, 1) > 0 && strcmp(buf, dotted) == 0;
}

int
cmpr_prot_kind(const ASN1_OBJECT *alg)
{
    int nid, md, pk;

    if (alg == NULL)
        return CMPR_PROT_NONE;
    if (oid_equals_text(alg, CMPR_OID_PASSWORD_BASED_MAC))
        return CMPR_PROT_PBM;
    if (oid_equals_text(alg, CMPR_OID_PBMAC1))
        return CMPR_PROT_PBMAC1;
    if (oid_equals_text(alg, CMPR_OID_DH_BASED_MAC))
        return CMPR_PROT_DHBM;
    if (oid_equals_text(alg, CMPR_OID_KEM_BASED_MAC))
        return CMPR_PROT_KEMBM;
    nid = OBJ_obj2nid(alg);
    if (nid != NID_undef && OBJ_find_sigid_algs(nid, &md, &pk))
        return CMPR_PROT_SIG;
    return CMPR_PROT_UNKNOWN;
}

char *
cmpr_oid_text(const ASN1_OBJECT *obj, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (obj != NULL && OBJ_obj2txt(buf, (int)len, obj, 1) <= 0)
        snprintf(buf, len, "?");
    return buf;
}
