#!/bin/sh
# Regenerates tests/data/openssl/: a small test PKI and CMP requests written by
# the `openssl cmp` client (-reqout), produced offline against OpenSSL's
# in-process mock server (-use_mock_srv). Run from anywhere; needs openssl 3.x.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$here/openssl
mkdir -p "$out"
cd "$out"
rm -f ./*.der ./*.pem ./*.key ./*.cnf
O="openssl"
days=36500

cat > ext.cnf <<'CNF'
[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier=hash
[ee]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
CNF

# root CA (EC P-256), server signer (RSA 2048), client signer (EC P-256), new EE key
$O genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out root.key
$O req -x509 -new -key root.key -subj "/CN=Test Root CA" -days $days -extensions ca -config ext.cnf -out root.pem
$O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server.key
$O req -new -key server.key -subj "/CN=Test CMP Server" -out server.csr
$O x509 -req -in server.csr -CA root.pem -CAkey root.key -set_serial 2 -days $days -extfile ext.cnf -extensions ee -out server.pem
$O genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client.key
$O req -new -key client.key -subj "/CN=Test Client" -out client.csr
$O x509 -req -in client.csr -CA root.pem -CAkey root.key -set_serial 3 -days $days -extfile ext.cnf -extensions ee -out client.pem
$O genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out new.key
$O req -new -key new.key -subj "/CN=New Leaf" -out newcsr.pem
# the certificate the mock hands out must carry new.key (the client checks it)
$O x509 -req -in newcsr.pem -CA root.pem -CAkey root.key -set_serial 4 -days $days -extfile ext.cnf -extensions ee -out rsp.pem
rm -f server.csr client.csr

MOCK="-use_mock_srv -srv_ref mockref -srv_secret pass:test-secret -srv_cert server.pem -srv_key server.key -srv_trusted root.pem -rsp_cert rsp.pem -rsp_capubs root.pem"
MAC="-ref myref -secret pass:test-secret -recipient /CN=Test_CMP_Server"
SIG="-cert client.pem -key client.key -trusted root.pem"
C="$O cmp -config /dev/null -batch"

# MAC-protected
$C $MOCK $MAC -cmd ir -newkey new.key -subject "/CN=New Leaf" -reqout "ir_mac.der certConf_mac.der" -rspout "ip_mac.der pkiConf_mac.der" -certout /dev/null -srvcert server.pem
$C $MOCK $MAC -cmd cr -newkey new.key -subject "/CN=New Leaf" -reqout "cr_mac.der" -rspout "cp_mac.der" -certout /dev/null -srvcert server.pem -implicit_confirm -grant_implicitconf
$C $MOCK $MAC -cmd p10cr -csr newcsr.pem -reqout "p10cr_mac.der certConf_p10_mac.der" -rspout "cp_p10_mac.der pkiConf_p10_mac.der" -certout /dev/null -srvcert server.pem
$C $MOCK $MAC -cmd genm -infotype signKeyPairTypes -reqout genm_mac.der -rspout genp_mac.der -srvcert server.pem
# signature-protected
$C $MOCK $SIG -cmd ir -newkey new.key -subject "/CN=New Leaf" -reqout "ir_sig.der certConf_sig.der" -rspout "ip_sig.der pkiConf_sig.der" -certout /dev/null
$C $MOCK $SIG -cmd kur -oldcert rsp.pem -newkey new.key -reqout kur_sig.der -rspout kup_sig.der -certout /dev/null -implicit_confirm -grant_implicitconf -srv_cert server.pem || true
$C $MOCK $SIG -cmd rr -oldcert rsp.pem -revreason 1 -reqout rr_sig.der -rspout rp_sig.der
$C $MOCK $SIG -cmd genm -reqout genm_sig.der -rspout genp_sig.der
# an error answer produced by the mock
$C $MOCK $MAC -cmd cr -newkey new.key -subject "/CN=New Leaf" -reqout cr_err_mac.der -rspout error_mac.der -certout /dev/null -srvcert server.pem -send_error || true
ls -1 *.der
