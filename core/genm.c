/* General messages (RFC 9810 5.3.19, RFC 9483 4.3): CA certificates, root
 * CA updates, certificate request templates, key pair types, CRLs. */
#include "core/req.h"
#include "core/txn.h"
#include "base/err.h"
#include "codec/oids.h"

#include <stdio.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/objects.h>

static CMPR_ITAV *
genp_itav(struct req *q, int it, const CMPR_ITAV *in)
{
    switch (it) {
    case CMPR_IT_CA_CERTS: {
        STACK_OF(X509) *chain = cmpr_ca_get1_chain(q->ca);
        CMPR_ITAV *out = cmpr_itav_new_ca_certs(chain);

        sk_X509_pop_free(chain, X509_free);
        return out;
    }
    case CMPR_IT_ROOT_CA_CERT:
        /* no root key update is configured: rootCaKeyUpdate without value */
        return cmpr_itav_new0(CMPR_IT_ROOT_CA_KEY_UPDATE, NULL);
    case CMPR_IT_CERT_REQ_TEMPLATE: {
        char why[128];
        const struct cmpr_conf_profile *pr = cmpr_enroll_profile(q, why, sizeof(why));
        CMPR_CERTREQTEMPLATECONTENT *c;
        CMPR_ITAV *out;

        if (pr == NULL)
            return cmpr_itav_new0(CMPR_IT_CERT_REQ_TEMPLATE, NULL);
        c = CMPR_CERTREQTEMPLATECONTENT_new();
        /* RFC 9483 4.3.3: publicKey absent; key types go into keySpec */
        for (char **t = pr->key_types; t != NULL && *t != NULL; t++) {
            CMPR_ATAV *a = CMPR_ATAV_new();
            X509_ALGOR *alg = X509_ALGOR_new();
            int nid = strncmp(*t, "ec:", 3) == 0 ? NID_X9_62_id_ecPublicKey
                    : strncmp(*t, "rsa:", 4) == 0 ? NID_rsaEncryption
                    : strcmp(*t, "ed25519") == 0 ? NID_ED25519 : NID_ED448;

            if (nid == NID_X9_62_id_ecPublicKey) {
                int cnid = EC_curve_nist2nid(*t + 3);

                X509_ALGOR_set0(alg, OBJ_nid2obj(nid), V_ASN1_OBJECT,
                                OBJ_nid2obj(cnid != NID_undef ? cnid : OBJ_sn2nid(*t + 3)));
            } else {
                X509_ALGOR_set0(alg, OBJ_nid2obj(nid), V_ASN1_UNDEF, NULL);
            }
            a->type = cmpr_regctrl_obj(CMPR_REGCTRL_ALGID);
            ASN1_TYPE_free(a->value);
            a->value = ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(X509_ALGOR), alg, NULL);
            X509_ALGOR_free(alg);
            if (c->keySpec == NULL)
                c->keySpec = sk_CMPR_ATAV_new_null();
            sk_CMPR_ATAV_push(c->keySpec, a);
        }
        out = cmpr_itav_new_cert_req_template(c);
        CMPR_CERTREQTEMPLATECONTENT_free(c);
        return out;
    }
    case CMPR_IT_SIGN_KEY_PAIR_TYPES: {
        STACK_OF(X509_ALGOR) *algs = sk_X509_ALGOR_new_null();
        static const int sigs[] = { NID_ecdsa_with_SHA256, NID_ecdsa_with_SHA384,
                                    NID_ecdsa_with_SHA512, NID_sha256WithRSAEncryption,
                                    NID_rsassaPss, NID_ED25519, NID_ED448 };
        CMPR_ITAV *out;

        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
            X509_ALGOR *a = X509_ALGOR_new();

            X509_ALGOR_set0(a, OBJ_nid2obj(sigs[i]), V_ASN1_UNDEF, NULL);
            sk_X509_ALGOR_push(algs, a);
        }
        out = cmpr_itav_new_sign_key_pair_types(algs);
        sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
        return out;
    }
    case CMPR_IT_CURRENT_CRL:
    case CMPR_IT_CRL_STATUS_LIST: {
        X509_CRL *crl = NULL;
        CMPR_ITAV *out;

        if (cmpr_ca_make_crl(q->ca, q->core->st, &crl) != CMPR_OK)
            return NULL;
        if (it == CMPR_IT_CURRENT_CRL) {
            out = cmpr_itav_new_current_crl(crl);
        } else {
            /* only CRLs newer than the one the client has (RFC 9483 4.3.4) */
            STACK_OF(CMPR_CRLSTATUS) *l = cmpr_itav_get1_crl_status_list(in);
            int newer = 1;

            for (int i = 0; i < sk_CMPR_CRLSTATUS_num(l); i++) {
                CMPR_CRLSTATUS *s = sk_CMPR_CRLSTATUS_value(l, i);

                if (s->thisUpdate != NULL
                        && ASN1_TIME_compare(s->thisUpdate, X509_CRL_get0_lastUpdate(crl)) >= 0)
                    newer = 0;
            }
            sk_CMPR_CRLSTATUS_pop_free(l, CMPR_CRLSTATUS_free);
            if (newer) {
                STACK_OF(X509_CRL) *sk = sk_X509_CRL_new_null();

                sk_X509_CRL_push(sk, crl);
                out = cmpr_itav_new_crls(sk);
                sk_X509_CRL_free(sk);
            } else {
                out = cmpr_itav_new0(CMPR_IT_CRLS, NULL);
            }
        }
        X509_CRL_free(crl);
        return out;
    }
    default:
        return NULL;
    }
}

CMPR_PKIMESSAGE *
cmpr_genm_request(struct req *q)
{
    STACK_OF(CMPR_ITAV) *in = q->msg->body->value.genm, *out = sk_CMPR_ITAV_new_null();
    STACK_OF(ASN1_OBJECT) *unsupported = NULL;
    static const int all[] = { CMPR_IT_CA_CERTS, CMPR_IT_ROOT_CA_CERT, CMPR_IT_CERT_REQ_TEMPLATE,
                               CMPR_IT_SIGN_KEY_PAIR_TYPES, CMPR_IT_CURRENT_CRL };
    CMPR_PKIMESSAGE *rsp;

    if ((rsp = cmpr_open_txn(q)) != NULL || (rsp = cmpr_txn_move(q, CMPR_TXN_ANSWERED)) != NULL) {
        sk_CMPR_ITAV_free(out);
        return rsp;
    }
    if (sk_CMPR_ITAV_num(in) == 0) {
        /* RFC 9810 App D.5: an empty genm asks for everything relevant */
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
            CMPR_ITAV *it = genp_itav(q, all[i], NULL);

            if (it != NULL)
                sk_CMPR_ITAV_push(out, it);
        }
    }
    for (int i = 0; i < sk_CMPR_ITAV_num(in); i++) {
        const CMPR_ITAV *itav = sk_CMPR_ITAV_value(in, i);
        CMPR_ITAV *o = genp_itav(q, cmpr_itav_num(itav), itav);

        if (o != NULL) {
            sk_CMPR_ITAV_push(out, o);
        } else {
            if (unsupported == NULL)
                unsupported = sk_ASN1_OBJECT_new_null();
            sk_ASN1_OBJECT_push(unsupported, OBJ_dup(itav->infoType));
        }
    }
    if (unsupported != NULL) {
        /* RFC 9810 5.3.19.7: tell which OIDs were not understood */
        sk_CMPR_ITAV_push(out, cmpr_itav_new_unsupported_oids(unsupported));
        sk_ASN1_OBJECT_pop_free(unsupported, ASN1_OBJECT_free);
    }
    cmpr_audit(q, "genm", "%d info types answered", sk_CMPR_ITAV_num(out));
    return cmpr_msg_build_genp(q->msg, out);
}
