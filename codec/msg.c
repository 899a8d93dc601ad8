/* Decode/encode, header helpers, builders and accessors for CMPR_PKIMESSAGE. */
#include "codec/msg.h"
#include "codec/algs.h"
#include "codec/der.h"
#include "codec/oids.h"
#include "base/err.h"
#include "base/limits.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---------------- decode / encode ---------------- */

static void
set_err(struct cmpr_decode_err *err, size_t off, const char *what)
{
    if (err == NULL)
        return;
    err->offset = off;
    snprintf(err->what, sizeof(err->what), "%s", what);
}

static int
nested_depth_ok(const CMPR_PKIMESSAGE *msg, int depth)
{
    if (msg->body->type != CMPR_BODY_NESTED)
        return 1;
    if (depth >= CMPR_MAX_NESTED_DEPTH)
        return 0;
    for (int i = 0; i < sk_CMPR_PKIMESSAGE_num(msg->body->value.nested); i++)
        if (!nested_depth_ok(sk_CMPR_PKIMESSAGE_value(msg->body->value.nested, i), depth + 1))
            return 0;
    return 1;
}

/* The template decoder names the failing field and type; pass that on. */
static void
set_ossl_err(struct cmpr_decode_err *err, size_t off)
{
    char buf[200] = "";
    const char *data = NULL, *reason;
    int flags = 0;
    unsigned long e, last = 0;
    const char *last_data = NULL;

    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        if (last == 0 || (flags & ERR_TXT_STRING)) {
            last = e;
            last_data = (flags & ERR_TXT_STRING) ? data : last_data;
        }
    }
    reason = last != 0 ? ERR_reason_error_string(last) : NULL;
    snprintf(buf, sizeof(buf), "a PKIMessage per RFC 9810 (%s%s%s)",
             reason != NULL ? reason : "ASN.1 structure mismatch",
             last_data != NULL ? ": " : "", last_data != NULL ? last_data : "");
    set_err(err, off, buf);
}

int
cmpr_msg_decode(const unsigned char *der, size_t len, CMPR_PKIMESSAGE **msg_r,
                struct cmpr_decode_err *err)
{
    struct cmpr_der_err derr;
    struct cmpr_der_tlv tlv;
    const unsigned char *p = der;
    const char *what = NULL;
    CMPR_PKIMESSAGE *msg = NULL;
    int r;

    *msg_r = NULL;
    if (len > CMPR_MAX_MSG_SIZE) {
        set_err(err, CMPR_MAX_MSG_SIZE, "at most CMPR_MAX_MSG_SIZE (1 MiB) of input");
        return CMPR_ERR_TOO_LARGE;
    }
    if ((r = cmpr_der_check(der, len, CMPR_MAX_DER_DEPTH, &derr)) != CMPR_OK) {
        set_err(err, derr.offset, derr.what);
        return r;
    }
    /* Top-level shape first, so common garbage gets a precise offset. */
    (void)cmpr_der_read(der, len, &tlv, &what);
    {
        size_t off = tlv.hdr_len;
        struct cmpr_der_tlv h, b;

        if (cmpr_der_read(der + off, len - off, &h, &what) != CMPR_OK
                || h.cls != 0 || h.tag != 16 || !h.constructed) {
            set_err(err, off, "the PKIHeader SEQUENCE");
            return CMPR_ERR_DECODE;
        }
        off += h.hdr_len + h.len;
        if (off >= len || cmpr_der_read(der + off, len - off, &b, &what) != CMPR_OK
                || b.cls != 2 || !b.constructed || b.tag >= CMPR_BODY_COUNT) {
            set_err(err, off, "a PKIBody tag [0]..[26] (A0..BA)");
            return CMPR_ERR_DECODE;
        }
    }
    ERR_set_mark();
    msg = d2i_CMPR_PKIMESSAGE(NULL, &p, (long)len);
    if (msg == NULL) {
        set_ossl_err(err, 0);
        ERR_pop_to_mark();
        return CMPR_ERR_DECODE;
    }
    ERR_pop_to_mark();
    if ((size_t)(p - der) != len) {
        set_err(err, (size_t)(p - der), "the end of input (trailing bytes after the message)");
        CMPR_PKIMESSAGE_free(msg);
        return CMPR_ERR_TRAILING;
    }
    if (!nested_depth_ok(msg, 0)) {
        set_err(err, 0, "at most CMPR_MAX_NESTED_DEPTH levels of nested messages");
        CMPR_PKIMESSAGE_free(msg);
        return CMPR_ERR_TOO_DEEP;
    }
    *msg_r = msg;
    return CMPR_OK;
}

/* ---- lean decoding ---- */

/* DER identifier and length octets for tag (one octet) and len: the count. */
static size_t
put_hdr(unsigned char *out, unsigned char tag, size_t len)
{
    size_t n = 0, i;
    unsigned char l[sizeof(size_t)];

    out[n++] = tag;
    if (len < 0x80) {
        out[n++] = (unsigned char)len;
        return n;
    }
    for (i = 0; len > 0; len >>= 8)
        l[i++] = (unsigned char)(len & 0xff);
    out[n++] = (unsigned char)(0x80 | i);
    while (i > 0)
        out[n++] = l[--i];
    return n;
}

static int
is_certrep(unsigned long tag)
{
    return tag == CMPR_BODY_IP || tag == CMPR_BODY_CP || tag == CMPR_BODY_KUP || tag == CMPR_BODY_CCP;
}

/* The body's TLV, with a CertRepMessage's caPubs left out (into out, whose
 * room is at least the original's): its length. */
static size_t
lean_body(const unsigned char *body, const struct cmpr_der_tlv *b, unsigned char *out)
{
    const unsigned char *crm = body + b->hdr_len, *p;
    struct cmpr_der_tlv s, c;
    const char *what;
    size_t n, rest;

    if (!is_certrep(b->tag) || cmpr_der_read(crm, b->len, &s, &what) != CMPR_OK
            || s.cls != 0 || s.tag != 16 || s.hdr_len + s.len != b->len
            || cmpr_der_read(crm + s.hdr_len, s.len, &c, &what) != CMPR_OK
            || c.cls != 2 || c.tag != 1) {
        memcpy(out, body, b->hdr_len + b->len);
        return b->hdr_len + b->len;
    }
    p = crm + s.hdr_len + c.hdr_len + c.len;        /* response, after caPubs */
    rest = s.len - (c.hdr_len + c.len);
    {
        unsigned char seq[16];
        size_t sl = put_hdr(seq, 0x30, rest);

        n = put_hdr(out, (unsigned char)(0xa0 | b->tag), sl + rest);
        memcpy(out + n, seq, sl);
        memcpy(out + n + sl, p, rest);
        return n + sl + rest;
    }
}

int
cmpr_msg_decode_lean(const unsigned char *der, size_t len, CMPR_PKIMESSAGE **msg_r,
                     unsigned char **pp_r, size_t *pp_len_r)
{
    struct cmpr_der_tlv t, h, b, x;
    const char *what;
    const unsigned char *hp, *bp, *prot = NULL;
    unsigned char *lean = NULL, *pp = NULL, hdr[16];
    size_t off, plen = 0, n, l, hl, pp_len;
    struct cmpr_der_err derr;
    int r;

    *msg_r = NULL;
    *pp_r = NULL;
    *pp_len_r = 0;
    if (len > CMPR_MAX_MSG_SIZE)
        return CMPR_ERR_TOO_LARGE;
    if ((r = cmpr_der_check(der, len, CMPR_MAX_DER_DEPTH, &derr)) != CMPR_OK)
        return r;
    (void)cmpr_der_read(der, len, &t, &what);
    off = t.hdr_len;
    hp = der + off;
    if (cmpr_der_read(hp, len - off, &h, &what) != CMPR_OK || h.cls != 0 || h.tag != 16)
        return CMPR_ERR_DECODE;
    off += h.hdr_len + h.len;
    bp = der + off;
    if (off >= len || cmpr_der_read(bp, len - off, &b, &what) != CMPR_OK || b.cls != 2
            || b.tag >= CMPR_BODY_COUNT)
        return CMPR_ERR_DECODE;
    off += b.hdr_len + b.len;
    if (off < len && cmpr_der_read(der + off, len - off, &x, &what) == CMPR_OK && x.cls == 2
            && x.tag == 0) {
        prot = der + off;
        plen = x.hdr_len + x.len;
    }
    /* the ProtectedPart as received */
    l = h.hdr_len + h.len + b.hdr_len + b.len;
    hl = put_hdr(hdr, 0x30, l);
    if ((pp = malloc(hl + l)) == NULL || (lean = malloc(2 * (hl + 8) + l + plen)) == NULL) {
        free(pp);
        return CMPR_ERR_ALLOC;
    }
    memcpy(pp, hdr, hl);
    memcpy(pp + hl, hp, l);
    pp_len = hl + l;
    /* header, lean body, protection: no extraCerts */
    n = 16;
    memcpy(lean + n, hp, h.hdr_len + h.len);
    n += h.hdr_len + h.len;
    n += lean_body(bp, &b, lean + n);
    if (prot != NULL)
        memcpy(lean + n, prot, plen);
    n += plen;
    hl = put_hdr(hdr, 0x30, n - 16);
    memcpy(lean + 16 - hl, hdr, hl);
    r = cmpr_msg_decode(lean + 16 - hl, n - 16 + hl, msg_r, NULL);
    free(lean);
    if (r != CMPR_OK) {
        free(pp);
        return r;
    }
    *pp_r = pp;
    *pp_len_r = pp_len;
    return CMPR_OK;
}

int
cmpr_msg_encode(const CMPR_PKIMESSAGE *msg, unsigned char **der_r, size_t *len_r)
{
    unsigned char *der = NULL;
    int n;

    *der_r = NULL;
    *len_r = 0;
    if ((n = i2d_CMPR_PKIMESSAGE(msg, &der)) <= 0)
        return CMPR_ERR_ENCODE;
    *der_r = der;
    *len_r = (size_t)n;
    return CMPR_OK;
}

int
cmpr_msg_bodytype(const CMPR_PKIMESSAGE *msg)
{
    if (msg == NULL || msg->body == NULL)
        return -1;
    return msg->body->type;
}

long
cmpr_msg_pvno(const CMPR_PKIMESSAGE *msg)
{
    if (msg == NULL || msg->header == NULL)
        return -1;
    return ASN1_INTEGER_get(msg->header->pvno);
}

/* ---------------- header helpers ---------------- */

static ASN1_UTF8STRING *
utf8_new(const char *text)
{
    ASN1_UTF8STRING *s = ASN1_UTF8STRING_new();

    if (s != NULL && !ASN1_STRING_set(s, text, -1)) {
        ASN1_UTF8STRING_free(s);
        s = NULL;
    }
    return s;
}

static STACK_OF(ASN1_UTF8STRING) *
freetext_new(const char *text)
{
    STACK_OF(ASN1_UTF8STRING) *sk = sk_ASN1_UTF8STRING_new_null();
    ASN1_UTF8STRING *s = utf8_new(text);

    if (sk == NULL || s == NULL || sk_ASN1_UTF8STRING_push(sk, s) <= 0) {
        ASN1_UTF8STRING_free(s);
        sk_ASN1_UTF8STRING_free(sk);
        return NULL;
    }
    return sk;
}


static int
set_random_octets(ASN1_OCTET_STRING **field, size_t len)
{
    unsigned char buf[CMPR_NONCE_LEN];

    if (len > sizeof(buf) || !cmpr_rand_public(buf, len))
        return CMPR_ERR_INTERNAL;
    if (*field == NULL && (*field = ASN1_OCTET_STRING_new()) == NULL)
        return CMPR_ERR_ALLOC;
    if (!ASN1_OCTET_STRING_set(*field, buf, (int)len))
        return CMPR_ERR_ALLOC;
    return CMPR_OK;
}

static int
set1_octets(ASN1_OCTET_STRING **field, const unsigned char *data, size_t len)
{
    if (len > INT32_MAX)
        return CMPR_ERR_INVALID_ARG;
    if (*field == NULL && (*field = ASN1_OCTET_STRING_new()) == NULL)
        return CMPR_ERR_ALLOC;
    return ASN1_OCTET_STRING_set(*field, data, (int)len) ? CMPR_OK : CMPR_ERR_ALLOC;
}

int
cmpr_hdr_set_fresh_nonce(CMPR_PKIHEADER *hdr)
{
    return set_random_octets(&hdr->senderNonce, CMPR_NONCE_LEN);
}

int
cmpr_hdr_set_fresh_transaction_id(CMPR_PKIHEADER *hdr)
{
    return set_random_octets(&hdr->transactionID, CMPR_NONCE_LEN);
}

int
cmpr_hdr_set1_transaction_id(CMPR_PKIHEADER *hdr, const unsigned char *id, size_t len)
{
    return set1_octets(&hdr->transactionID, id, len);
}

int
cmpr_hdr_set1_recip_nonce(CMPR_PKIHEADER *hdr, const ASN1_OCTET_STRING *nonce)
{
    ASN1_OCTET_STRING_free(hdr->recipNonce);
    hdr->recipNonce = NULL;
    if (nonce == NULL)
        return CMPR_OK;
    return (hdr->recipNonce = ASN1_OCTET_STRING_dup(nonce)) != NULL ? CMPR_OK : CMPR_ERR_ALLOC;
}

int
cmpr_hdr_set1_sender_kid(CMPR_PKIHEADER *hdr, const unsigned char *kid, size_t len)
{
    return set1_octets(&hdr->senderKID, kid, len);
}

int
cmpr_hdr_set_message_time(CMPR_PKIHEADER *hdr, time_t t)
{
    ASN1_GENERALIZEDTIME *gt = ASN1_GENERALIZEDTIME_set(hdr->messageTime, t);

    if (gt == NULL)
        return CMPR_ERR_ALLOC;
    hdr->messageTime = gt;
    return CMPR_OK;
}

static int
set1_dirname(GENERAL_NAME **gn, const X509_NAME *name)
{
    GENERAL_NAME *n = GENERAL_NAME_new();
    X509_NAME *dup = name != NULL ? X509_NAME_dup(name) : X509_NAME_new();

    if (n == NULL || dup == NULL) {
        GENERAL_NAME_free(n);
        X509_NAME_free(dup);
        return CMPR_ERR_ALLOC;
    }
    GENERAL_NAME_set0_value(n, GEN_DIRNAME, dup);
    GENERAL_NAME_free(*gn);
    *gn = n;
    return CMPR_OK;
}

int
cmpr_hdr_set1_sender_name(CMPR_PKIHEADER *hdr, const X509_NAME *name)
{
    return set1_dirname(&hdr->sender, name);
}

int
cmpr_hdr_set1_recipient_name(CMPR_PKIHEADER *hdr, const X509_NAME *name)
{
    return set1_dirname(&hdr->recipient, name);
}

int
cmpr_hdr_push0_geninfo(CMPR_PKIHEADER *hdr, CMPR_ITAV *itav)
{
    if (hdr->generalInfo == NULL && (hdr->generalInfo = sk_CMPR_ITAV_new_null()) == NULL)
        return CMPR_ERR_ALLOC;
    return sk_CMPR_ITAV_push(hdr->generalInfo, itav) > 0 ? CMPR_OK : CMPR_ERR_ALLOC;
}

int
cmpr_hdr_push1_freetext(CMPR_PKIHEADER *hdr, const char *text)
{
    ASN1_UTF8STRING *s = utf8_new(text);

    if (s == NULL)
        goto fail;
    if (hdr->freeText == NULL && (hdr->freeText = sk_ASN1_UTF8STRING_new_null()) == NULL)
        goto fail;
    if (sk_ASN1_UTF8STRING_push(hdr->freeText, s) <= 0)
        goto fail;
    return CMPR_OK;
 fail:
    ASN1_UTF8STRING_free(s);
    return CMPR_ERR_ALLOC;
}

CMPR_ITAV *
cmpr_hdr_get0_geninfo(const CMPR_PKIHEADER *hdr, int it)
{
    for (int i = 0; i < sk_CMPR_ITAV_num(hdr->generalInfo); i++) {
        CMPR_ITAV *itav = sk_CMPR_ITAV_value(hdr->generalInfo, i);

        if (cmpr_it_num(itav->infoType) == it)
            return itav;
    }
    return NULL;
}

int
cmpr_hdr_has_implicit_confirm(const CMPR_PKIHEADER *hdr)
{
    return cmpr_hdr_get0_geninfo(hdr, CMPR_IT_IMPLICIT_CONFIRM) != NULL;
}

const X509_NAME *
cmpr_hdr_get0_sender_name(const CMPR_PKIHEADER *hdr)
{
    if (hdr->sender == NULL || hdr->sender->type != GEN_DIRNAME)
        return NULL;
    return hdr->sender->d.directoryName;
}

static int
body_init(CMPR_PKIBODY *body, int type)
{
    body->type = type;
    switch (type) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_KUR:
    case CMPR_BODY_KRR: case CMPR_BODY_CCR:
        return (body->value.ir = sk_CMPR_CERTREQMSG_new_null()) != NULL;
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP:
        return (body->value.ip = CMPR_CERTREPMESSAGE_new()) != NULL;
    case CMPR_BODY_P10CR:
        return (body->value.p10cr = X509_REQ_new()) != NULL;
    case CMPR_BODY_POPDECC:
        return (body->value.popdecc = sk_CMPR_CHALLENGE_new_null()) != NULL;
    case CMPR_BODY_POPDECR:
        return (body->value.popdecr = sk_ASN1_INTEGER_new_null()) != NULL;
    case CMPR_BODY_KRP:
        return (body->value.krp = CMPR_KEYRECREPCONTENT_new()) != NULL;
    case CMPR_BODY_RR:
        return (body->value.rr = sk_CMPR_REVDETAILS_new_null()) != NULL;
    case CMPR_BODY_RP:
        return (body->value.rp = CMPR_REVREPCONTENT_new()) != NULL;
    case CMPR_BODY_CKUANN:
        return (body->value.ckuann = CMPR_CAKEYUPDCONTENT_new()) != NULL;
    case CMPR_BODY_CANN:
        return (body->value.cann = X509_new()) != NULL;
    case CMPR_BODY_RANN:
        return (body->value.rann = CMPR_REVANNCONTENT_new()) != NULL;
    case CMPR_BODY_CRLANN:
        return (body->value.crlann = sk_X509_CRL_new_null()) != NULL;
    case CMPR_BODY_PKICONF:
        return (body->value.pkiconf = ASN1_NULL_new()) != NULL;
    case CMPR_BODY_NESTED:
        return (body->value.nested = sk_CMPR_PKIMESSAGE_new_null()) != NULL;
    case CMPR_BODY_GENM: case CMPR_BODY_GENP:
        return (body->value.genm = sk_CMPR_ITAV_new_null()) != NULL;
    case CMPR_BODY_ERROR:
        return (body->value.error = CMPR_ERRORMSGCONTENT_new()) != NULL;
    case CMPR_BODY_CERTCONF:
        return (body->value.certConf = sk_CMPR_CERTSTATUS_new_null()) != NULL;
    case CMPR_BODY_POLLREQ:
        return (body->value.pollReq = sk_CMPR_POLLREQ_new_null()) != NULL;
    case CMPR_BODY_POLLREP:
        return (body->value.pollRep = sk_CMPR_POLLREP_new_null()) != NULL;
    default:
        return 0;
    }
}

CMPR_PKIMESSAGE *
cmpr_msg_new(int bodytype, long pvno)
{
    CMPR_PKIMESSAGE *msg = NULL;

    if (bodytype < 0 || bodytype >= CMPR_BODY_COUNT)
        return NULL;
    if ((msg = CMPR_PKIMESSAGE_new()) == NULL)
        return NULL;
    if (!ASN1_INTEGER_set(msg->header->pvno, pvno)
            || cmpr_hdr_set1_sender_name(msg->header, NULL) != CMPR_OK
            || cmpr_hdr_set1_recipient_name(msg->header, NULL) != CMPR_OK
            || cmpr_hdr_set_fresh_nonce(msg->header) != CMPR_OK
            || cmpr_hdr_set_fresh_transaction_id(msg->header) != CMPR_OK
            || cmpr_hdr_set_message_time(msg->header, time(NULL)) != CMPR_OK
            || !body_init(msg->body, bodytype)) {
        CMPR_PKIMESSAGE_free(msg);
        return NULL;
    }
    return msg;
}

CMPR_PKIMESSAGE *
cmpr_msg_new_response(const CMPR_PKIMESSAGE *req, int bodytype)
{
    long pvno = CMPR_PVNO_2;
    CMPR_PKIMESSAGE *msg;
    const CMPR_PKIHEADER *rh = req != NULL ? req->header : NULL;

    /* Answer in the request's version; for a version we cannot speak the
     * caller decides (unsupportedVersion carries our nearest one). */
    if (rh != NULL) {
        long v = ASN1_INTEGER_get(rh->pvno);

        if (v == CMPR_PVNO_2 || v == CMPR_PVNO_3)
            pvno = v;
        else if (v > CMPR_PVNO_3)
            pvno = CMPR_PVNO_3;
    }
    if ((msg = cmpr_msg_new(bodytype, pvno)) == NULL)
        return NULL;
    if (rh == NULL)
        return msg;
    if (rh->transactionID != NULL) {
        ASN1_OCTET_STRING_free(msg->header->transactionID);
        if ((msg->header->transactionID = ASN1_OCTET_STRING_dup(rh->transactionID)) == NULL)
            goto fail;
    }
    if (cmpr_hdr_set1_recip_nonce(msg->header, rh->senderNonce) != CMPR_OK)
        goto fail;
    if (rh->sender != NULL) {
        GENERAL_NAME_free(msg->header->recipient);
        if ((msg->header->recipient = GENERAL_NAME_dup(rh->sender)) == NULL)
            goto fail;
    }
    return msg;
 fail:
    CMPR_PKIMESSAGE_free(msg);
    return NULL;
}

/* ---------------- status ---------------- */

CMPR_PKISI *
cmpr_pkisi_new(int status, uint32_t failinfo, const char *text)
{
    CMPR_PKISI *si = CMPR_PKISI_new();

    if (si == NULL || !ASN1_INTEGER_set(si->status, status))
        goto fail;
    if (text != NULL && (si->statusString = freetext_new(text)) == NULL)
        goto fail;
    if (failinfo != 0) {
        if ((si->failInfo = ASN1_BIT_STRING_new()) == NULL)
            goto fail;
        for (int bit = 0; bit <= CMPR_FI_MAX; bit++)
            if ((failinfo & (1u << bit)) && !ASN1_BIT_STRING_set_bit(si->failInfo, bit, 1))
                goto fail;
    }
    return si;
 fail:
    CMPR_PKISI_free(si);
    return NULL;
}

long
cmpr_pkisi_status(const CMPR_PKISI *si)
{
    return si != NULL ? ASN1_INTEGER_get(si->status) : -1;
}

uint32_t
cmpr_pkisi_failinfo(const CMPR_PKISI *si)
{
    uint32_t bits = 0;

    if (si == NULL || si->failInfo == NULL)
        return 0;
    for (int bit = 0; bit <= CMPR_FI_MAX; bit++)
        if (ASN1_BIT_STRING_get_bit(si->failInfo, bit))
            bits |= 1u << bit;
    return bits;
}

/* ---------------- builders ---------------- */

static STACK_OF(X509) *
certs_dup(STACK_OF(X509) *in)
{
    STACK_OF(X509) *out;

    if (in == NULL || sk_X509_num(in) == 0)
        return NULL;
    if ((out = sk_X509_new_null()) == NULL)
        return NULL;
    for (int i = 0; i < sk_X509_num(in); i++) {
        X509 *x = sk_X509_value(in, i);

        if (!X509_up_ref(x))
            goto fail;
        if (sk_X509_push(out, x) <= 0) {
            X509_free(x);
            goto fail;
        }
    }
    return out;
 fail:
    sk_X509_pop_free(out, X509_free);
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_msg_build_certrep(const CMPR_PKIMESSAGE *req, int bodytype, long certReqId,
                       CMPR_PKISI *si, X509 *cert, STACK_OF(X509) *caPubs,
                       STACK_OF(X509) *extraCerts)
{
    CMPR_PKIMESSAGE *msg = NULL;
    CMPR_CERTRESPONSE *resp = NULL;
    CMPR_CERTREPMESSAGE *rep;

    if (bodytype != CMPR_BODY_IP && bodytype != CMPR_BODY_CP
            && bodytype != CMPR_BODY_KUP && bodytype != CMPR_BODY_CCP)
        goto fail;
    if ((msg = cmpr_msg_new_response(req, bodytype)) == NULL
            || (resp = CMPR_CERTRESPONSE_new()) == NULL
            || !ASN1_INTEGER_set(resp->certReqId, certReqId))
        goto fail;
    rep = msg->body->value.ip;
    CMPR_PKISI_free(resp->status);
    resp->status = si;
    si = NULL;
    if (cert != NULL) {
        if ((resp->certifiedKeyPair = CMPR_CERTIFIEDKEYPAIR_new()) == NULL)
            goto fail;
        resp->certifiedKeyPair->certOrEncCert->type = CMPR_CERTORENCCERT_CERTIFICATE;
        if (!X509_up_ref(cert))
            goto fail;
        resp->certifiedKeyPair->certOrEncCert->value.certificate = cert;
    }
    if (sk_CMPR_CERTRESPONSE_push(rep->response, resp) <= 0)
        goto fail;
    resp = NULL;
    /* caPubs only in ip (RFC 9483 4.1: kup MUST NOT contain caPubs) */
    if (bodytype == CMPR_BODY_IP && caPubs != NULL && sk_X509_num(caPubs) > 0
            && (rep->caPubs = certs_dup(caPubs)) == NULL)
        goto fail;
    if (extraCerts != NULL && sk_X509_num(extraCerts) > 0
            && (msg->extraCerts = certs_dup(extraCerts)) == NULL)
        goto fail;
    return msg;
 fail:
    CMPR_PKISI_free(si);
    CMPR_CERTRESPONSE_free(resp);
    CMPR_PKIMESSAGE_free(msg);
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_msg_build_rp(const CMPR_PKIMESSAGE *req, CMPR_PKISI *si, const OSSL_CRMF_CERTID *certId)
{
    CMPR_PKIMESSAGE *msg = NULL;
    OSSL_CRMF_CERTID *cid = NULL;
    CMPR_REVREPCONTENT *rp;

    if ((msg = cmpr_msg_new_response(req, CMPR_BODY_RP)) == NULL)
        goto fail;
    rp = msg->body->value.rp;
    if (sk_CMPR_PKISI_push(rp->status, si) <= 0)
        goto fail;
    si = NULL;
    if (certId != NULL) {
        if ((rp->revCerts = sk_OSSL_CRMF_CERTID_new_null()) == NULL
                || (cid = OSSL_CRMF_CERTID_dup(certId)) == NULL
                || sk_OSSL_CRMF_CERTID_push(rp->revCerts, cid) <= 0)
            goto fail;
    }
    return msg;
 fail:
    OSSL_CRMF_CERTID_free(cid);
    CMPR_PKISI_free(si);
    CMPR_PKIMESSAGE_free(msg);
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_msg_build_genp(const CMPR_PKIMESSAGE *req, STACK_OF(CMPR_ITAV) *itavs)
{
    CMPR_PKIMESSAGE *msg = cmpr_msg_new_response(req, CMPR_BODY_GENP);

    if (msg == NULL) {
        sk_CMPR_ITAV_pop_free(itavs, CMPR_ITAV_free);
        return NULL;
    }
    if (itavs != NULL) {
        sk_CMPR_ITAV_free(msg->body->value.genp);
        msg->body->value.genp = itavs;
    }
    return msg;
}

CMPR_PKIMESSAGE *
cmpr_msg_build_pkiconf(const CMPR_PKIMESSAGE *req)
{
    return cmpr_msg_new_response(req, CMPR_BODY_PKICONF);
}

CMPR_PKIMESSAGE *
cmpr_msg_build_pollrep(const CMPR_PKIMESSAGE *req, long certReqId, long checkAfter,
                       const char *reason)
{
    CMPR_PKIMESSAGE *msg = NULL;
    CMPR_POLLREP *pr = NULL;

    if ((msg = cmpr_msg_new_response(req, CMPR_BODY_POLLREP)) == NULL
            || (pr = CMPR_POLLREP_new()) == NULL
            || !ASN1_INTEGER_set(pr->certReqId, certReqId)
            || !ASN1_INTEGER_set(pr->checkAfter, checkAfter))
        goto fail;
    if (reason != NULL && (pr->reason = freetext_new(reason)) == NULL)
        goto fail;
    if (sk_CMPR_POLLREP_push(msg->body->value.pollRep, pr) <= 0)
        goto fail;
    return msg;
 fail:
    CMPR_POLLREP_free(pr);
    CMPR_PKIMESSAGE_free(msg);
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_msg_build_error(const CMPR_PKIMESSAGE *req, CMPR_PKISI *si, long errorCode,
                     const char *details)
{
    CMPR_PKIMESSAGE *msg = NULL;
    CMPR_ERRORMSGCONTENT *e;

    if ((msg = cmpr_msg_new_response(req, CMPR_BODY_ERROR)) == NULL)
        goto fail;
    e = msg->body->value.error;
    CMPR_PKISI_free(e->pKIStatusInfo);
    e->pKIStatusInfo = si;
    si = NULL;
    if (errorCode >= 0) {
        if ((e->errorCode = ASN1_INTEGER_new()) == NULL
                || !ASN1_INTEGER_set(e->errorCode, errorCode))
            goto fail;
    }
    if (details != NULL && (e->errorDetails = freetext_new(details)) == NULL)
        goto fail;
    return msg;
 fail:
    CMPR_PKISI_free(si);
    CMPR_PKIMESSAGE_free(msg);
    return NULL;
}

CMPR_PKIMESSAGE *
cmpr_msg_build_krp(const CMPR_PKIMESSAGE *req, CMPR_PKISI *si, X509 *newSigCert,
                   STACK_OF(X509) *caCerts, STACK_OF(CMPR_CERTIFIEDKEYPAIR) *keyPairHist)
{
    CMPR_PKIMESSAGE *msg = NULL;
    CMPR_KEYRECREPCONTENT *k;

    if ((msg = cmpr_msg_new_response(req, CMPR_BODY_KRP)) == NULL)
        goto fail;
    k = msg->body->value.krp;
    CMPR_PKISI_free(k->status);
    k->status = si;
    si = NULL;
    if (newSigCert != NULL) {
        if (!X509_up_ref(newSigCert))
            goto fail;
        k->newSigCert = newSigCert;
    }
    if (caCerts != NULL && sk_X509_num(caCerts) > 0
            && (k->caCerts = certs_dup(caCerts)) == NULL)
        goto fail;
    if (keyPairHist != NULL && sk_CMPR_CERTIFIEDKEYPAIR_num(keyPairHist) > 0) {
        k->keyPairHist = sk_CMPR_CERTIFIEDKEYPAIR_deep_copy(keyPairHist,
            CMPR_CERTIFIEDKEYPAIR_dup, CMPR_CERTIFIEDKEYPAIR_free);
        if (k->keyPairHist == NULL)
            goto fail;
    }
    return msg;
 fail:
    CMPR_PKISI_free(si);
    CMPR_PKIMESSAGE_free(msg);
    return NULL;
}

/* ---------------- request accessors ---------------- */

CMPR_CERTREQMSGS *
cmpr_msg_get0_reqs(const CMPR_PKIMESSAGE *msg)
{
    switch (cmpr_msg_bodytype(msg)) {
    case CMPR_BODY_IR: case CMPR_BODY_CR: case CMPR_BODY_KUR:
    case CMPR_BODY_KRR: case CMPR_BODY_CCR:
        return msg->body->value.ir;
    default:
        return NULL;
    }
}

CMPR_CERTREPMESSAGE *
cmpr_msg_get0_rep(const CMPR_PKIMESSAGE *msg)
{
    switch (cmpr_msg_bodytype(msg)) {
    case CMPR_BODY_IP: case CMPR_BODY_CP: case CMPR_BODY_KUP: case CMPR_BODY_CCP:
        return msg->body->value.ip;
    default:
        return NULL;
    }
}

long
cmpr_crm_certreqid(const CMPR_CERTREQMSG *crm)
{
    return ASN1_INTEGER_get(crm->certReq->certReqId);
}

/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } */
typedef struct cmpr_rsapub_st {
    ASN1_INTEGER *n;
    ASN1_INTEGER *e;
} CMPR_RSAPUB;
DECLARE_ASN1_FUNCTIONS(CMPR_RSAPUB)
ASN1_SEQUENCE(CMPR_RSAPUB) = {
    ASN1_SIMPLE(CMPR_RSAPUB, n, ASN1_INTEGER),
    ASN1_SIMPLE(CMPR_RSAPUB, e, ASN1_INTEGER)
} ASN1_SEQUENCE_END(CMPR_RSAPUB)
IMPLEMENT_ASN1_FUNCTIONS(CMPR_RSAPUB)

static EVP_PKEY *
pkey_fromdata(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;

    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1
            || EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

/* The domain parameters of each named curve met so far, built once: an EC
 * key from its curve's name builds the whole group again (the curve's
 * constants, the generator, Montgomery values of the order: three times
 * what copying them from a key that has them costs). */
#define EC_TEMPLATES 16
static struct {
    int nid;
    EVP_PKEY *params;
} ec_templates[EC_TEMPLATES];
static int n_ec_templates;
static pthread_mutex_t ec_templates_mu = PTHREAD_MUTEX_INITIALIZER;

/* the parameters of curve nid (not to be freed), or NULL */
static EVP_PKEY *
ec_template(int nid)
{
    EVP_PKEY *t = NULL;
    OSSL_PARAM params[2];
    const char *name = OBJ_nid2sn(nid);

    pthread_mutex_lock(&ec_templates_mu);
    for (int i = 0; i < n_ec_templates && t == NULL; i++)
        if (ec_templates[i].nid == nid)
            t = ec_templates[i].params;
    if (t == NULL && name != NULL && n_ec_templates < EC_TEMPLATES) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name, 0);
        params[1] = OSSL_PARAM_construct_end();
        if (ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1
                && EVP_PKEY_fromdata(ctx, &t, EVP_PKEY_KEY_PARAMETERS, params) == 1) {
            ec_templates[n_ec_templates].nid = nid;
            ec_templates[n_ec_templates++].params = t;
        } else {
            t = NULL;
        }
        EVP_PKEY_CTX_free(ctx);
    }
    pthread_mutex_unlock(&ec_templates_mu);
    return t;
}

/* an EC public key on named curve nid: the point is checked to be on it */
static EVP_PKEY *
ec_from_spki(int nid, const unsigned char *key, size_t klen)
{
    EVP_PKEY *t = ec_template(nid), *pk;
    OSSL_PARAM params[3];

    if (t != NULL) {
        if ((pk = EVP_PKEY_new()) != NULL && EVP_PKEY_copy_parameters(pk, t) == 1
                && EVP_PKEY_set1_encoded_public_key(pk, key, klen) == 1)
            return pk;
        EVP_PKEY_free(pk);
        return NULL;
    }
    /* more curves than templates: built from the name */
    if (OBJ_nid2sn(nid) == NULL)
        return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)OBJ_nid2sn(nid), 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)key, klen);
    params[2] = OSSL_PARAM_construct_end();
    return pkey_fromdata("EC", params);
}

static EVP_PKEY *
rsa_from_spki(const unsigned char *p, size_t len)
{
    CMPR_RSAPUB *rp = d2i_CMPR_RSAPUB(NULL, &p, (long)len);
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pk = NULL;

    if (rp == NULL || rp->n->type != V_ASN1_INTEGER || rp->e->type != V_ASN1_INTEGER)
        goto out;
    if ((n = ASN1_INTEGER_to_BN(rp->n, NULL)) == NULL || (e = ASN1_INTEGER_to_BN(rp->e, NULL)) == NULL
            || (bld = OSSL_PARAM_BLD_new()) == NULL
            || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
            || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)
            || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    pk = pkey_fromdata("RSA", params);
 out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    CMPR_RSAPUB_free(rp);
    return pk;
}

int
cmpr_spki_copy(const CMPR_SPKI *spki, X509_PUBKEY *pub)
{
    const ASN1_OBJECT *aoid;
    const void *pval;
    int ptype, nid, len;
    ASN1_OBJECT *obj = NULL;
    unsigned char *bits = NULL;

    if (spki == NULL || pub == NULL)
        return 0;
    X509_ALGOR_get0(&aoid, &ptype, &pval, spki->algorithm);
    nid = OBJ_obj2nid(aoid);
    if (!((nid == NID_X9_62_id_ecPublicKey && ptype == V_ASN1_OBJECT)
          || (nid == NID_rsaEncryption && ptype == V_ASN1_NULL)
          || ((nid == NID_ED25519 || nid == NID_ED448 || nid == NID_X25519 || nid == NID_X448)
              && ptype == V_ASN1_UNDEF)))
        return 0;
    len = ASN1_STRING_length(spki->subjectPublicKey);
    if ((obj = OBJ_nid2obj(nid)) == NULL || len <= 0
            || (bits = OPENSSL_memdup(ASN1_STRING_get0_data(spki->subjectPublicKey), (size_t)len)) == NULL)
        return -1;
    /* (OBJ_nid2obj objects are static; a named curve's OID is one too) */
    if (!X509_PUBKEY_set0_param(pub, obj, ptype,
                                ptype == V_ASN1_OBJECT ? (void *)OBJ_nid2obj(OBJ_obj2nid(pval)) : NULL,
                                bits, len)) {
        OPENSSL_free(bits);
        return -1;
    }
    return 1;
}

EVP_PKEY *
cmpr_spki_get1_pkey(const CMPR_SPKI *spki)
{
    const ASN1_OBJECT *aoid;
    const void *pval;
    int ptype, nid;
    const unsigned char *key;
    size_t klen;
    unsigned char *der = NULL;
    const unsigned char *p;
    EVP_PKEY *pk = NULL;
    int n;

    if (spki == NULL)
        return NULL;
    X509_ALGOR_get0(&aoid, &ptype, &pval, spki->algorithm);
    nid = OBJ_obj2nid(aoid);
    key = ASN1_STRING_get0_data(spki->subjectPublicKey);
    klen = (size_t)ASN1_STRING_length(spki->subjectPublicKey);
    switch (nid) {
    case NID_X9_62_id_ecPublicKey:
        if (ptype == V_ASN1_OBJECT) {
            if (OBJ_nid2sn(OBJ_obj2nid(pval)) == NULL)
                break;
            return ec_from_spki(OBJ_obj2nid(pval), key, klen);
        }
        break;    /* explicit curve parameters: the slow path judges them */
    case NID_rsaEncryption:
        return rsa_from_spki(key, klen);
    case NID_ED25519: case NID_ED448: case NID_X25519: case NID_X448:
        if (ptype != V_ASN1_UNDEF)
            return NULL;    /* RFC 8410: parameters MUST be absent */
        return EVP_PKEY_new_raw_public_key_ex(NULL, OBJ_nid2sn(nid), NULL, key, klen);
    default:
        break;
    }
    if ((n = i2d_CMPR_SPKI(spki, &der)) <= 0)
        return NULL;
    p = der;
    pk = d2i_PUBKEY(NULL, &p, n);
    OPENSSL_free(der);
    return pk;
}

int
cmpr_spki_set1_pkey(CMPR_SPKI **spki, EVP_PKEY *pkey)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    CMPR_SPKI *s;
    int n;

    if ((n = i2d_PUBKEY(pkey, &der)) <= 0)
        return CMPR_ERR_ENCODE;
    p = der;
    s = d2i_CMPR_SPKI(NULL, &p, n);
    OPENSSL_free(der);
    if (s == NULL)
        return CMPR_ERR_ENCODE;
    CMPR_SPKI_free(*spki);
    *spki = s;
    return CMPR_OK;
}

EVP_PKEY *
cmpr_tmpl_get1_pubkey(const CMPR_CERTTEMPLATE *tmpl)
{
    return tmpl != NULL ? cmpr_spki_get1_pkey(tmpl->publicKey) : NULL;
}

static int
time_of(const ASN1_TIME *t, time_t *t_r)
{
    struct tm tm;

    if (t == NULL) {
        *t_r = 0;
        return 1;
    }
    if (!ASN1_TIME_to_tm(t, &tm))
        return 0;
    *t_r = timegm(&tm);
    return 1;
}

int
cmpr_tmpl_get_validity(const CMPR_CERTTEMPLATE *tmpl, time_t *not_before_r,
                       time_t *not_after_r)
{
    time_t nb, na;

    if (tmpl == NULL || tmpl->validity == NULL)
        return CMPR_ERR_NOT_FOUND;
    if (!time_of(tmpl->validity->notBefore, &nb) || !time_of(tmpl->validity->notAfter, &na))
        return CMPR_ERR_DECODE;
    *not_before_r = nb;
    *not_after_r = na;
    return CMPR_OK;
}

int
cmpr_tmpl_fill(CMPR_CERTTEMPLATE *tmpl, EVP_PKEY *pubkey, const X509_NAME *subject,
               const X509_NAME *issuer, const ASN1_INTEGER *serial)
{
    int r;

    if (pubkey != NULL && (r = cmpr_spki_set1_pkey(&tmpl->publicKey, pubkey)) != CMPR_OK)
        return r;
    if (subject != NULL && !X509_NAME_set(&tmpl->subject, (X509_NAME *)subject))
        return CMPR_ERR_ALLOC;
    if (issuer != NULL && !X509_NAME_set(&tmpl->issuer, (X509_NAME *)issuer))
        return CMPR_ERR_ALLOC;
    if (serial != NULL) {
        ASN1_INTEGER *dup = ASN1_INTEGER_dup(serial);

        if (dup == NULL)
            return CMPR_ERR_ALLOC;
        ASN1_INTEGER_free(tmpl->serialNumber);
        tmpl->serialNumber = dup;
    }
    return CMPR_OK;
}

const ASN1_TYPE *
cmpr_crm_get0_control(const CMPR_CERTREQMSG *crm, int n)
{
    STACK_OF(CMPR_ATAV) *ctrls = crm->certReq->controls;

    for (int i = 0; i < sk_CMPR_ATAV_num(ctrls); i++) {
        CMPR_ATAV *a = sk_CMPR_ATAV_value(ctrls, i);

        if (cmpr_regctrl_num(a->type) == n)
            return a->value;
    }
    return NULL;
}

OSSL_CRMF_CERTID *
cmpr_crm_get1_oldcertid(const CMPR_CERTREQMSG *crm)
{
    const ASN1_TYPE *v = cmpr_crm_get0_control(crm, CMPR_REGCTRL_OLDCERTID);

    if (v == NULL || v->type != V_ASN1_SEQUENCE)
        return NULL;
    return ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(OSSL_CRMF_CERTID), v);
}

CMPR_PKIARCHIVEOPTIONS *
cmpr_crm_get1_archive_options(const CMPR_CERTREQMSG *crm)
{
    const ASN1_TYPE *v = cmpr_crm_get0_control(crm, CMPR_REGCTRL_PKIARCHIVEOPTIONS);
    unsigned char *der = NULL;
    const unsigned char *p;
    CMPR_PKIARCHIVEOPTIONS *opt = NULL;
    int n;

    /* a CHOICE of tagged alternatives: the ANY holds a context-tagged TLV */
    if (v == NULL || (n = i2d_ASN1_TYPE((ASN1_TYPE *)v, &der)) <= 0)
        return NULL;
    p = der;
    opt = d2i_CMPR_PKIARCHIVEOPTIONS(NULL, &p, n);
    OPENSSL_free(der);
    return opt;
}

OSSL_CRMF_MSG *
cmpr_crm_to_ossl(const CMPR_CERTREQMSG *crm)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    OSSL_CRMF_MSG *out;
    int n;

    if ((n = i2d_CMPR_CERTREQMSG(crm, &der)) <= 0)
        return NULL;
    p = der;
    out = d2i_OSSL_CRMF_MSG(NULL, &p, n);
    OPENSSL_free(der);
    return out;
}

int
cmpr_rr_get(const CMPR_PKIMESSAGE *msg, int idx, const X509_NAME **issuer_r,
            const ASN1_INTEGER **serial_r, int *reason_r)
{
    CMPR_REVDETAILS *rd;
    ASN1_ENUMERATED *reason;
    int crit = 0;

    if (cmpr_msg_bodytype(msg) != CMPR_BODY_RR)
        return CMPR_ERR_INVALID_ARG;
    if ((rd = sk_CMPR_REVDETAILS_value(msg->body->value.rr, idx)) == NULL)
        return CMPR_ERR_NOT_FOUND;
    *issuer_r = rd->certDetails->issuer;
    *serial_r = rd->certDetails->serialNumber;
    *reason_r = -1;
    reason = X509V3_get_d2i(rd->crlEntryDetails, NID_crl_reason, &crit, NULL);
    if (reason != NULL) {
        *reason_r = (int)ASN1_ENUMERATED_get(reason);
        ASN1_ENUMERATED_free(reason);
    }
    return CMPR_OK;
}

ASN1_UTF8STRING *
cmpr_msg_get1_certprofile(const CMPR_PKIMESSAGE *msg)
{
    CMPR_ITAV *itav = cmpr_hdr_get0_geninfo(msg->header, CMPR_IT_CERT_PROFILE);
    STACK_OF(ASN1_UTF8STRING) *names = cmpr_itav_get1_cert_profile(itav);
    ASN1_UTF8STRING *first = NULL;

    if (names != NULL && sk_ASN1_UTF8STRING_num(names) > 0)
        first = sk_ASN1_UTF8STRING_shift(names);
    sk_ASN1_UTF8STRING_pop_free(names, ASN1_UTF8STRING_free);
    return first;
}

/* ---------------- ITAVs ---------------- */

CMPR_ITAV *
cmpr_itav_new0(int it, ASN1_TYPE *value)
{
    CMPR_ITAV *itav = CMPR_ITAV_new();

    if (itav == NULL || (itav->infoType = cmpr_it_obj(it)) == NULL) {
        CMPR_ITAV_free(itav);
        return NULL;
    }
    itav->infoValue = value;
    return itav;
}

int
cmpr_itav_num(const CMPR_ITAV *itav)
{
    return itav != NULL ? cmpr_it_num(itav->infoType) : -1;
}

static CMPR_ITAV *
itav_new_seq(int it, const ASN1_ITEM *item, const void *val)
{
    ASN1_TYPE *t = NULL;
    CMPR_ITAV *itav;

    if (val != NULL && (t = ASN1_TYPE_pack_sequence(item, (void *)val, NULL)) == NULL)
        return NULL;
    if ((itav = cmpr_itav_new0(it, t)) == NULL)
        ASN1_TYPE_free(t);
    return itav;
}

static void *
itav_get_seq(const CMPR_ITAV *itav, int it, const ASN1_ITEM *item)
{
    if (cmpr_itav_num(itav) != it || itav->infoValue == NULL
            || itav->infoValue->type != V_ASN1_SEQUENCE)
        return NULL;
    return ASN1_TYPE_unpack_sequence(item, itav->infoValue);
}

#define ITAV_TYPED(name, IT, TYPE, ITEM)                                        \
    CMPR_ITAV *cmpr_itav_new_##name(const TYPE *v)                              \
    { return itav_new_seq(IT, ASN1_ITEM_rptr(ITEM), v); }                       \
    TYPE *cmpr_itav_get1_##name(const CMPR_ITAV *itav)                          \
    { return itav_get_seq(itav, IT, ASN1_ITEM_rptr(ITEM)); }

ITAV_TYPED(current_crl, CMPR_IT_CURRENT_CRL, X509_CRL, X509_CRL)
ITAV_TYPED(root_ca_cert, CMPR_IT_ROOT_CA_CERT, X509, X509)
ITAV_TYPED(ca_certs, CMPR_IT_CA_CERTS, STACK_OF(X509), CMPR_CERTS)
ITAV_TYPED(root_ca_key_update, CMPR_IT_ROOT_CA_KEY_UPDATE, CMPR_ROOTCAKEYUPDATECONTENT,
           CMPR_ROOTCAKEYUPDATECONTENT)
ITAV_TYPED(cert_req_template, CMPR_IT_CERT_REQ_TEMPLATE, CMPR_CERTREQTEMPLATECONTENT,
           CMPR_CERTREQTEMPLATECONTENT)
ITAV_TYPED(crl_status_list, CMPR_IT_CRL_STATUS_LIST, STACK_OF(CMPR_CRLSTATUS),
           CMPR_CRLSTATUSLIST)
ITAV_TYPED(crls, CMPR_IT_CRLS, STACK_OF(X509_CRL), CMPR_CRLS)
ITAV_TYPED(orig_pkimessage, CMPR_IT_ORIG_PKIMESSAGE, CMPR_PKIMESSAGES, CMPR_PKIMESSAGES)
ITAV_TYPED(sign_key_pair_types, CMPR_IT_SIGN_KEY_PAIR_TYPES, STACK_OF(X509_ALGOR), CMPR_ALGORS)
ITAV_TYPED(unsupported_oids, CMPR_IT_UNSUPPORTED_OIDS, STACK_OF(ASN1_OBJECT), CMPR_OIDS)
ITAV_TYPED(kem_ciphertext_info, CMPR_IT_KEM_CIPHERTEXT_INFO, CMPR_KEMCIPHERTEXTINFO,
           CMPR_KEMCIPHERTEXTINFO)

STACK_OF(ASN1_UTF8STRING) *
cmpr_itav_get1_cert_profile(const CMPR_ITAV *itav)
{
    STACK_OF(ASN1_UTF8STRING) *sk;
    ASN1_UTF8STRING *s;

    /* RFC 9810: SEQUENCE SIZE (1..MAX) OF UTF8String. Implementations that
     * predate RFC 9480's final text (LightweightCmpRa 2022) send a bare
     * UTF8String; accept it as a list of one. */
    if (cmpr_itav_num(itav) == CMPR_IT_CERT_PROFILE && itav->infoValue != NULL
            && itav->infoValue->type == V_ASN1_UTF8STRING) {
        if ((sk = sk_ASN1_UTF8STRING_new_null()) == NULL
                || (s = ASN1_STRING_dup(itav->infoValue->value.utf8string)) == NULL
                || sk_ASN1_UTF8STRING_push(sk, s) <= 0) {
            sk_ASN1_UTF8STRING_free(sk);
            return NULL;
        }
        return sk;
    }
    return itav_get_seq(itav, CMPR_IT_CERT_PROFILE, ASN1_ITEM_rptr(CMPR_UTF8STRINGS));
}

CMPR_ITAV *
cmpr_itav_new_cert_profile(const char *const *names, size_t n)
{
    STACK_OF(ASN1_UTF8STRING) *sk = sk_ASN1_UTF8STRING_new_null();
    CMPR_ITAV *itav = NULL;

    if (sk == NULL || n == 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        ASN1_UTF8STRING *s = utf8_new(names[i]);

        if (s == NULL || sk_ASN1_UTF8STRING_push(sk, s) <= 0) {
            ASN1_UTF8STRING_free(s);
            goto out;
        }
    }
    itav = itav_new_seq(CMPR_IT_CERT_PROFILE, ASN1_ITEM_rptr(CMPR_UTF8STRINGS), sk);
 out:
    sk_ASN1_UTF8STRING_pop_free(sk, ASN1_UTF8STRING_free);
    return itav;
}

CMPR_ITAV *
cmpr_itav_new_implicit_confirm(void)
{
    ASN1_TYPE *t = ASN1_TYPE_new();
    CMPR_ITAV *itav;

    if (t == NULL)
        return NULL;
    ASN1_TYPE_set(t, V_ASN1_NULL, NULL);
    if ((itav = cmpr_itav_new0(CMPR_IT_IMPLICIT_CONFIRM, t)) == NULL)
        ASN1_TYPE_free(t);
    return itav;
}

CMPR_ITAV *
cmpr_itav_new_confirm_wait_time(time_t when)
{
    ASN1_GENERALIZEDTIME *gt = ASN1_GENERALIZEDTIME_set(NULL, when);
    ASN1_TYPE *t = ASN1_TYPE_new();
    CMPR_ITAV *itav = NULL;

    if (gt == NULL || t == NULL)
        goto fail;
    ASN1_TYPE_set(t, V_ASN1_GENERALIZEDTIME, gt);
    gt = NULL;
    if ((itav = cmpr_itav_new0(CMPR_IT_CONFIRM_WAIT_TIME, t)) == NULL)
        goto fail;
    return itav;
 fail:
    ASN1_GENERALIZEDTIME_free(gt);
    ASN1_TYPE_free(t);
    return NULL;
}

int
cmpr_itav_get_confirm_wait_time(const CMPR_ITAV *itav, time_t *t_r)
{
    struct tm tm;

    if (cmpr_itav_num(itav) != CMPR_IT_CONFIRM_WAIT_TIME || itav->infoValue == NULL
            || itav->infoValue->type != V_ASN1_GENERALIZEDTIME
            || !ASN1_TIME_to_tm(itav->infoValue->value.generalizedtime, &tm))
        return CMPR_ERR_DECODE;
    *t_r = timegm(&tm);
    return CMPR_OK;
}

CMS_ContentInfo *
cmpr_envdata_to_cms(const CMPR_ENVELOPEDDATA *env)
{
    /* ContentInfo ::= SEQUENCE { id-envelopedData, [0] EXPLICIT EnvelopedData } */
    static const unsigned char oid[] = {
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03
    };
    unsigned char *inner = NULL, *buf = NULL, *w;
    const unsigned char *p;
    CMS_ContentInfo *cms = NULL;
    size_t tagged, total;
    int n;

    if ((n = i2d_CMPR_ENVELOPEDDATA(env, &inner)) <= 0)
        return NULL;
    tagged = cmpr_der_hdr_size((size_t)n) + (size_t)n;
    total = sizeof(oid) + tagged;
    if ((buf = OPENSSL_malloc(cmpr_der_hdr_size(total) + total)) == NULL)
        goto out;
    w = cmpr_der_put_hdr(buf, 0x30, total);
    memcpy(w, oid, sizeof(oid));
    w = cmpr_der_put_hdr(w + sizeof(oid), 0xa0, (size_t)n);
    memcpy(w, inner, (size_t)n);
    w += n;
    p = buf;
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)(w - buf));
 out:
    OPENSSL_free(inner);
    OPENSSL_free(buf);
    return cms;
}

/* the EnvelopedData inside a CMS ContentInfo ::= SEQUENCE { contentType,
 * [0] EXPLICIT EnvelopedData } */
static CMPR_ENVELOPEDDATA *
envdata_of_cms(CMS_ContentInfo *cms)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    CMPR_ENVELOPEDDATA *env = NULL;
    long hl;
    int tag, cls, n;

    if ((n = i2d_CMS_ContentInfo(cms, &der)) <= 0)
        return NULL;
    p = der;
    if (!(ASN1_get_object(&p, &hl, &tag, &cls, n) & 0x80) && tag == V_ASN1_SEQUENCE
            && !(ASN1_get_object(&p, &hl, &tag, &cls, n - (p - der)) & 0x80) && tag == V_ASN1_OBJECT) {
        p += hl;
        if (!(ASN1_get_object(&p, &hl, &tag, &cls, n - (p - der)) & 0x80) && cls == V_ASN1_CONTEXT_SPECIFIC
                && tag == 0)
            env = d2i_CMPR_ENVELOPEDDATA(NULL, &p, hl);
    }
    OPENSSL_free(der);
    return env;
}

CMPR_ENVELOPEDDATA *
cmpr_envdata_seal(const unsigned char *plain, size_t len, X509 *rcpt, const unsigned char *secret, size_t slen)
{
    BIO *in = BIO_new_mem_buf(plain, (int)len);
    CMS_ContentInfo *cms = NULL;
    CMPR_ENVELOPEDDATA *env = NULL;
    unsigned char *pw = NULL;

    if (in == NULL || len > INT_MAX)
        goto out;
    if (rcpt != NULL) {
        STACK_OF(X509) *rc = sk_X509_new_null();

        if (rc != NULL && sk_X509_push(rc, rcpt))
            cms = CMS_encrypt(rc, in, EVP_aes_256_cbc(), CMS_BINARY);
        sk_X509_free(rc);
    } else if (secret != NULL && slen > 0 && (pw = OPENSSL_memdup(secret, slen)) != NULL) {
        cms = CMS_encrypt(NULL, NULL, EVP_aes_256_cbc(), CMS_BINARY | CMS_PARTIAL);
        if (cms == NULL || CMS_add0_recipient_password(cms, -1, NID_undef, NID_undef, pw, (ossl_ssize_t)slen,
                                                       NULL) == NULL) {
            OPENSSL_clear_free(pw, slen);
            goto out;
        }
        if (CMS_final(cms, in, NULL, CMS_BINARY) != 1)
            goto out;
    }
    if (cms != NULL)
        env = envdata_of_cms(cms);
 out:
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    ERR_clear_error();
    return env;
}

int
cmpr_envdata_open(const CMPR_ENVELOPEDDATA *env, EVP_PKEY *key, X509 *cert, const unsigned char *secret,
                  size_t slen, unsigned char **out_r, size_t *len_r)
{
    CMS_ContentInfo *cms = cmpr_envdata_to_cms(env);
    BIO *out = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n = 0;
    int ok = 0;

    *out_r = NULL;
    *len_r = 0;
    if (cms != NULL && out != NULL) {
        if (key != NULL)
            ok = CMS_decrypt(cms, key, cert, NULL, out, CMS_BINARY) == 1;
        else if (secret != NULL)
            ok = CMS_decrypt_set1_password(cms, (unsigned char *)secret, (ossl_ssize_t)slen) == 1
                 && CMS_decrypt(cms, NULL, NULL, NULL, out, CMS_BINARY) == 1;
    }
    if (ok && (n = BIO_get_mem_data(out, &data)) > 0 && (*out_r = OPENSSL_memdup(data, (size_t)n)) != NULL)
        *len_r = (size_t)n;
    if (data != NULL && n > 0)
        OPENSSL_cleanse(data, (size_t)n);
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return *out_r != NULL ? CMPR_OK : CMPR_ERR_DECRYPT;
}
