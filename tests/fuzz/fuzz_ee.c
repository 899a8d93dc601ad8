/* libFuzzer: any bytes as the answer the EE client gets (codec/ee.c): decoded,
 * matched against a request, read for status, texts and certificate. */
#include <stddef.h>
#include <stdint.h>

#include "codec/ee.h"
#include "codec/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static CMPR_PKIMESSAGE *req;
    CMPR_PKIMESSAGE *rsp = NULL;
    struct cmpr_ee_result res;
    char why[300], names[600];

    if (req == NULL)
        req = cmpr_ee_new_genm(17);
    if (cmpr_msg_decode(data, size, &rsp, NULL) != 0)
        return 0;
    (void)cmpr_ee_check_header(req, rsp, why, sizeof(why));
    if (cmpr_ee_result(rsp, &res) == 0) {
        cmpr_ee_failinfo_names(res.failinfo, names, sizeof(names));
        if (res.body == CMPR_BODY_POLLREP || res.body == CMPR_BODY_ERROR) {
            CMPR_PKIMESSAGE *next = cmpr_ee_new_pollreq(rsp, res.cert_req_id);

            CMPR_PKIMESSAGE_free(next);
        }
        if (res.cert != NULL) {
            CMPR_PKIMESSAGE *cc = cmpr_ee_new_certconf(rsp, res.cert_req_id, res.cert, 1, NULL);

            CMPR_PKIMESSAGE_free(cc);
        }
    }
    CMPR_PKIMESSAGE_free(rsp);
    return 0;
}
