#!/bin/sh
# The core end to end with the `openssl cmp` client: requests written by the
# client (-reqout), answered by `cmprouter process`, accepted by the client
# (-rspin), certificates checked with `openssl verify`.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R=$CMPROUTER
C="openssl cmp -config /dev/null -batch"
DEAD=127.0.0.1:9      # nothing listens there: the client writes -reqout and fails

# a root CA and an issuing CA (EC P-256)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out root.key 2>/dev/null
openssl req -x509 -new -key root.key -subj "/CN=Test Root CA" -days 3650 \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out root.pem 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -new -key ca.key -subj "/CN=Test Issuing CA" -out ca.csr 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >ca.ext
openssl x509 -req -in ca.csr -CA root.pem -CAkey root.key -set_serial 1 -days 3650 -extfile ca.ext -out ca.pem 2>/dev/null
for k in k1 k2 k3 k4; do openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $k.key 2>/dev/null; done
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null

cat >cmprouter.conf <<'EOF'
[router]
log_level = warning

[ca issuing]
key = ca.key
cert = ca.pem
chain = root.pem
default_profile = device
crl_file = issuing.crl

[profile device]
validity_days = 30
key_usage = digitalSignature
extended_key_usage = clientAuth
key_types = ec:P-256, ec:P-384

[profile server]
validity_days = 90
key_usage = digitalSignature, keyEncipherment
extended_key_usage = serverAuth
key_types = rsa:2048-4096, ec:P-256
require_approval = yes

[client factory]
reference = factory
secret = pass:f4ctory-s3cret
profiles = device, server
subject = CN=dev-*

[client devices]
cert_subject = CN=dev-*
profiles = device
EOF

MAC="-ref factory -secret pass:f4ctory-s3cret -recipient /CN=Test_Issuing_CA"

# 1. ir, MAC, implicit confirm (RFC 9810 5.1.1.1)
$C -cmd ir -server $DEAD $MAC -newkey k1.key -subject "/CN=dev-1" -implicit_confirm -reqout ir1.der -certout x.pem >/dev/null 2>&1
"$R" process -c cmprouter.conf <ir1.der >ip1.der
check "ir (MAC) answered" test -s ip1.der
$C -cmd ir $MAC -newkey k1.key -subject "/CN=dev-1" -implicit_confirm -rspin ip1.der \
	-certout dev1.pem -cacertsout capubs.pem -extracertsout extra.pem >c1.log 2>&1
check "openssl cmp accepts the ip (implicit confirm)" test -s dev1.pem
check "issued certificate verifies against root + issuing CA" \
	openssl verify -CAfile root.pem -untrusted ca.pem dev1.pem
check "profile extensions: clientAuth, digitalSignature, CA:FALSE" sh -c \
	"openssl x509 -in dev1.pem -noout -text | grep -q 'TLS Web Client Authentication' && openssl x509 -in dev1.pem -noout -text | grep -q 'CA:FALSE' && openssl x509 -in dev1.pem -noout -text | grep -q 'Digital Signature'"
check "caPubs holds the root only (RFC 9483 4.1.1)" sh -c \
	"test \$(grep -c BEGIN capubs.pem) -eq 1 && openssl x509 -in capubs.pem -noout -subject | grep -q 'Test Root CA'"
check "the same ir again is a retransmission: identical answer" sh -c \
	"'$R' process -c cmprouter.conf <ir1.der | cmp -s - ip1.der"

# 2. ir, MAC, with certConf -> pkiConf (RFC 9810 5.3.18)
$C -cmd ir -server $DEAD $MAC -newkey k2.key -subject "/CN=dev-2" -reqout ir2.der -certout x.pem >/dev/null 2>&1
"$R" process -c cmprouter.conf <ir2.der >ip2.der
"$R" dump --json ip2.der >ip2.json
check "without implicitConfirm the ip announces confirmWaitTime" grep -q confirmWaitTime ip2.json
$C -cmd ir -server $DEAD $MAC -newkey k2.key -subject "/CN=dev-2" -rspin ip2.der -reqout "ir2b.der cc2.der" -certout x.pem >/dev/null 2>&1
check "openssl cmp wrote a certConf for our certificate" test -s cc2.der
"$R" process -c cmprouter.conf <cc2.der >pc2.der
check "certConf answered with pkiConf" sh -c "'$R' dump --json pc2.der | grep -q '\"body\":\"pkiconf\"'"
$C -cmd ir $MAC -newkey k2.key -subject "/CN=dev-2" -rspin "ip2.der pc2.der" -certout dev2.pem >c2.log 2>&1
check "openssl cmp accepts ip + pkiConf" test -s dev2.pem
check "the store shows the certificate confirmed" sh -c \
	"'$R' -c cmprouter.conf certs --json | grep -q '\"subject\":\"CN=dev-2\".*\"confirmed\":true'"

# 3. cr, signature-protected with the certificate from step 1
$C -cmd cr -server $DEAD -cert dev1.pem -key k1.key -extracerts ca.pem -newkey k3.key -subject "/CN=dev-3" \
	-implicit_confirm -reqout cr3.der -certout x.pem >/dev/null 2>&1
"$R" process -c cmprouter.conf <cr3.der >cp3.der
$C -cmd cr -cert dev1.pem -key k1.key -newkey k3.key -subject "/CN=dev-3" -implicit_confirm \
	-trusted root.pem -untrusted ca.pem -rspin cp3.der -certout dev3.pem >c3.log 2>&1
check "cr (signature) -> cp signed by the CA, accepted with -trusted" test -s dev3.pem

# 4. kur, signed with the certificate being updated (RFC 9483 4.1.3)
$C -cmd kur -server $DEAD -cert dev3.pem -key k3.key -extracerts ca.pem -newkey k4.key -implicit_confirm \
	-reqout kur4.der -certout x.pem >/dev/null 2>&1
"$R" process -c cmprouter.conf <kur4.der >kup4.der
$C -cmd kur -cert dev3.pem -key k3.key -newkey k4.key -implicit_confirm -trusted root.pem -untrusted ca.pem \
	-rspin kup4.der -certout dev4.pem >c4.log 2>&1
check "kur -> kup accepted" test -s dev4.pem
check "kur keeps the subject" sh -c "openssl x509 -in dev4.pem -noout -subject | grep -q 'CN *= *dev-3'"
check "kup carries no caPubs (RFC 9483 4.1.3)" sh -c "! '$R' dump --json kup4.der | grep -q caPubs"

# 5. p10cr -> cp with certReqId -1 (RFC 9810 5.3.4)
openssl req -new -key k2.key -subj "/CN=dev-5" -out csr5.pem 2>/dev/null
$C -cmd p10cr -server $DEAD $MAC -csr csr5.pem -implicit_confirm -reqout p10.der -certout x.pem >/dev/null 2>&1
"$R" process -c cmprouter.conf <p10.der >cp5.der
check "p10cr answered with certReqId -1" sh -c "'$R' dump --json cp5.der | grep -q '\"certReqId\":-1'"
$C -cmd p10cr $MAC -csr csr5.pem -implicit_confirm -rspin cp5.der -certout dev5.pem >c5.log 2>&1
check "openssl cmp accepts the cp for its p10cr" test -s dev5.pem

# 6. rr signed by the certificate to revoke -> rp accepted; CRL lists it
$C -cmd rr -server $DEAD -cert dev4.pem -key k4.key -extracerts ca.pem -oldcert dev4.pem -revreason 1 \
	-reqout rr6.der >/dev/null 2>&1
"$R" process -c cmprouter.conf <rr6.der >rp6.der
$C -cmd rr -cert dev4.pem -key k4.key -oldcert dev4.pem -revreason 1 -trusted root.pem -untrusted ca.pem \
	-rspin rp6.der >c6.log 2>&1
check "openssl cmp accepts the rp (revocation accepted)" grep -q "revocation accepted\|received RP" c6.log
serial=$(openssl x509 -in dev4.pem -noout -serial | cut -d= -f2)
check "the CRL file lists the revoked serial with keyCompromise" sh -c \
	"openssl crl -inform DER -in issuing.crl -noout -text | grep -A4 -i '$serial' | grep -q 'Key Compromise'"
check "the CRL verifies with the issuing CA" openssl crl -inform DER -in issuing.crl -CAfile ca.pem -noout
"$R" process -c cmprouter.conf <rr6.der >rp6b.der
check "the same rr again: the stored answer" cmp -s rp6.der rp6b.der
$C -cmd rr -server $DEAD -cert dev4.pem -key k4.key -extracerts ca.pem -oldcert dev4.pem -revreason 1 \
	-reqout rr6c.der >/dev/null 2>&1
"$R" process -c cmprouter.conf <rr6c.der >rp6c.der
check "revoking again: certRevoked, by a revoked signer: refused" sh -c \
	"'$R' dump rp6c.der | grep -q 'certRevoked\|signerNotTrusted\|rejection'"

# 7. genm
$C -cmd genm -server $DEAD $MAC -infotype signKeyPairTypes -reqout genm7.der >/dev/null 2>&1
"$R" process -c cmprouter.conf <genm7.der >genp7.der
check "genm signKeyPairTypes -> genp with the same info type" sh -c \
	"'$R' dump --json genp7.der | grep -q '\"infoType\":\"signKeyPairTypes\"'"
$C -cmd genm $MAC -infotype signKeyPairTypes -rspin genp7.der >c7.log 2>&1
check "openssl cmp accepts the genp" grep -q "received GENP" c7.log

# 8. manual approval and polling (RFC 9483 4.4)
$C -cmd cr -server $DEAD $MAC -newkey rsa.key -subject "/CN=dev-8" \
	-reqout cr8.der -certout x.pem >/dev/null 2>&1
"$R" -c cmprouter.conf process --label server <cr8.der >cp8.der
check "a profile needing approval answers waiting" sh -c "'$R' dump cp8.der | grep -q 'status: waiting'"
tid=$("$R" dump --json cr8.der | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["transactionID"])')
check "list --pending shows it" sh -c "'$R' -c cmprouter.conf list --pending | grep -q $tid"
check "approve" "$R" -c cmprouter.conf approve "$tid"
check "after approval the transaction waits for the poll" sh -c \
	"'$R' -c cmprouter.conf show $tid | grep -q waiting_poll"
P8="-cmd cr -server $DEAD $MAC -newkey rsa.key -subject /CN=dev-8 -certout dev8.pem"
$C $P8 -rspin cp8.der -reqout "cr8b.der poll8.der" >/dev/null 2>&1
check "openssl cmp polls after waiting" sh -c "'$R' dump --json poll8.der | grep -q '\"body\":\"pollReq\"'"
"$R" -c cmprouter.conf process --label server <poll8.der >cp8f.der
check "the poll gets the approved certificate" sh -c "'$R' dump cp8f.der | grep -q 'status: accepted'"
$C $P8 -rspin "cp8.der cp8f.der" -reqout "a b cc8.der" >/dev/null 2>&1
"$R" -c cmprouter.conf process <cc8.der >pc8.der
$C $P8 -rspin "cp8.der cp8f.der pc8.der" >c8.log 2>&1
check "openssl cmp completes the delayed enrollment (waiting, poll, cert, certConf)" sh -c \
	"test -s dev8.pem && openssl verify -CAfile root.pem -untrusted ca.pem dev8.pem"
check "the delayed certificate has the server profile (serverAuth)" sh -c \
	"openssl x509 -in dev8.pem -noout -text | grep -q 'TLS Web Server Authentication'"

# rejection by the operator reaches the client on its poll
$C -cmd cr -server $DEAD $MAC -newkey rsa.key -subject "/CN=dev-9r" -reqout cr9.der -certout x.pem >/dev/null 2>&1
"$R" -c cmprouter.conf process --label server <cr9.der >cp9.der
tid9=$("$R" dump --json cr9.der | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["transactionID"])')
check "reject" "$R" -c cmprouter.conf reject "$tid9" --reason "not in inventory"
$C -cmd cr -server $DEAD $MAC -newkey rsa.key -subject "/CN=dev-9r" -rspin cp9.der -reqout "x9 poll9.der" -certout x.pem >/dev/null 2>&1
"$R" -c cmprouter.conf process <poll9.der >cp9f.der
check "the poll after rejection carries the operator's reason" sh -c \
	"'$R' dump cp9f.der | grep -q 'not in inventory'"

# 9. hostile and wrong requests get protected CMP errors
$C -cmd ir -server $DEAD -ref factory -secret pass:wrong -recipient /CN=x -newkey k1.key -subject /CN=dev-9 \
	-reqout bad9.der -certout x.pem >/dev/null 2>&1
"$R" process -c cmprouter.conf <bad9.der >err9.der
check "wrong secret: error badMessageCheck" sh -c "'$R' dump err9.der | grep -q badMessageCheck"
check "that error is signed by the CA (RFC 9810 5.3.21)" "$R" dump --signer ca.pem err9.der
printf 'garbage' | "$R" process -c cmprouter.conf >err10.der
check "garbage: error badDataFormat" sh -c "'$R' dump err10.der | grep -q badDataFormat"
$C -cmd ir -server $DEAD $MAC -newkey k1.key -subject "/CN=intruder" -reqout bad11.der -certout x.pem >/dev/null 2>&1
"$R" process -c cmprouter.conf <bad11.der >rej11.der
check "subject outside the client's pattern: rejection notAuthorized" sh -c \
	"'$R' dump rej11.der | grep -q notAuthorized"
check "audit trail recorded the refusal" sh -c "'$R' -c cmprouter.conf show \$('$R' dump --json bad11.der | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"header\"][\"transactionID\"])') | grep -q 'not request subject'"
