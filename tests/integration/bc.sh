#!/bin/sh
# Bouncy Castle's CMP client (Debian's libbcpkix-java 1.72, driven by
# tests/peers/BcCmpClient.java) against cmprouterd over HTTP: a peer whose
# messages another implementation encodes, protects and checks (RFC 9810
# 5.1.3, RFC 9483 3.5: transactionID, nonces, MAC or a signature whose
# certificate chains to what the client trusts). Covered: PBMAC1 and
# PasswordBasedMac (the answer protected with the request's parameters),
# central key generation for a MAC client (password recipient) and for
# signature clients (key agreement, key transport), signature-protected kur
# and rr, and an RA without a CA whose ra_cert belongs to another hierarchy
# (its own chain travels in extraCerts; the client builds the path).
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"
BCCP=/usr/share/java/bcpkix.jar:/usr/share/java/bcprov.jar:/usr/share/java/bcutil.jar
ARGS="--http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0"

mkdir bcc
javac -nowarn -cp "$BCCP" -d bcc "$TOP/tests/peers/BcCmpClient.java" >javac.out 2>&1
check "Bouncy Castle's client compiles (javac and libbcpkix-java come from scripts/install-deps)" \
	sh -c "test -f bcc/BcCmpClient.class" javac.out
[ -f bcc/BcCmpClient.class ] || exit 0
BC() { java -cp "bcc:$BCCP" BcCmpClient "$@"; }

# the embedded default, with a central key generation profile and two
# signature clients (an EC and an RSA certificate, both enrolled below)
start_daemon d0 http --data-dir "$TMP/data" $ARGS
kill $PID; wait $PID 2>/dev/null
sed -i 's/^profiles = default, manual$/profiles = default, manual, keygen/' data/cmprouter.conf
cat >>data/cmprouter.conf <<EOF

[profile keygen]
central_keygen = allowed
central_key_type = ec:P-256

[client bc-signers]
cert_subject = CN=bc-*
profiles = default, keygen
EOF
start_daemon d1 http -c data/cmprouter.conf $ARGS
check "cmprouterd runs (HTTP $PORT)" test -n "$PORT"
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
U="--url http://127.0.0.1:$PORT/.well-known/cmp --trusted data/ca/root.pem --recipient CN=cmprouter"
MAC="--ref demo --secret $SECRET"
cert_tools
json_cert() {   # SERIAL(hex) PYTHON-CONDITION on c: the store's record of it
	"$R" -c data/cmprouter.conf certs --json >certs.json 2>&1 && python3 -c "
import json, sys
c = [c for c in json.load(open('certs.json')) if int(c['serial'], 16) == int('$1', 16)]
assert len(c) == 1, c
c = c[0]
assert $2, c
"
}

# ---- PBMAC1 (RFC 9481 6.1.1): ir and certConf, 12,345 iterations ----
BC ir $U $MAC --mac pbmac1 --iterations 12345 --subject CN=bc-one --out one.pem --key-out one.key >one.out 2>&1
check "PBMAC1 ir + certConf from Bouncy Castle: accepted and confirmed" sh -c \
	"test $? -eq 0 && grep -q '^status: accepted$' one.out && grep -q '^confirmed$' one.out" one.out
check "... both answers protected with the request's PBMAC1 parameters (12,345 iterations), verified by BC" \
	test "$(grep -c '^answer protection: PBMAC1 prf 1.2.840.113549.2.9 mac 1.2.840.113549.2.9 iterations 12345: verified$' one.out)" -eq 2
check "... the certificate verifies with openssl against the CA and is for BC's key" sh -c \
	"verify one.pem && pairs one.pem one.key"
check "... the transaction is confirmed in the store" json_cert "$(serial one.pem)" "c['confirmed'] and c['subject'] == 'CN=bc-one'"
BC ir $U --ref demo --secret wrong-secret --mac pbmac1 --subject CN=bc-bad >bad.out 2>&1
check "PBMAC1 with a wrong secret: refused (badMessageCheck) in an answer BC verified" sh -c \
	"test $? -eq 2 && grep -q '^answer protection: signature by CN=cmprouter demo issuing CA: verified' bad.out \
	 && grep -q '^refused: .*rejection badMessageCheck' bad.out" bad.out

# ---- PasswordBasedMac with SHA-256 / HMAC-SHA256 / 2,345 (RFC 9481 6.1.1) ----
BC ir $U $MAC --mac pbm --iterations 2345 --subject CN=bc-two --newkey ec --out two.pem --key-out two.key >two.out 2>&1
check "PasswordBasedMac ir from BC: accepted, confirmed" sh -c \
	"test $? -eq 0 && grep -q '^confirmed$' two.out && verify two.pem" two.out
check "... answered with the request's OWF, MAC and iterations (sha256, hmacWithSHA256, 2,345)" \
	test "$(grep -c '^answer protection: PBM owf 2.16.840.1.101.3.4.2.1 mac 1.2.840.113549.2.9 iterations 2345: verified$' two.out)" -eq 2
BC ir $U $MAC --mac pbm --iterations 1000 --subject CN=bc-rsa --newkey rsa --out rsa.pem --key-out rsa.key >rsa.out 2>&1
check "an RSA key enrolled by BC (for the key transport test below)" sh -c "test $? -eq 0 && verify rsa.pem" rsa.out

# ---- signature-protected kur (RFC 9483 4.1.3): oldCertID, new key ----
BC kur $U --cert one.pem --key one.key --out oneb.pem --key-out oneb.key >kur.out 2>&1
check "kur signed with BC's old key: accepted and confirmed, answers signed by the CA and verified" sh -c \
	"test $? -eq 0 && grep -q '^confirmed$' kur.out \
	 && test \$(grep -c '^answer protection: signature by CN=cmprouter demo issuing CA: verified, chains to --trusted$' kur.out) -eq 2" kur.out
check "... a new certificate: same subject, another serial, the new key" sh -c \
	"verify oneb.pem && pairs oneb.pem oneb.key && ! pairs oneb.pem one.key \
	 && test \"\$(openssl x509 -in oneb.pem -noout -subject)\" = 'subject=CN = bc-one' \
	 && test \"\$(serial oneb.pem)\" != \"\$(serial one.pem)\""

# ---- signature-protected rr (RFC 9483 4.2), reason superseded ----
BC rr $U --cert oneb.pem --key oneb.key --reason 4 >rr.out 2>&1
check "rr signed by BC for its own certificate: accepted" sh -c \
	"test $? -eq 0 && grep -q '^status: accepted$' rr.out && grep -q '^revoked: serial' rr.out" rr.out
check "... the store has it revoked with reason superseded (4)" json_cert "$(serial oneb.pem)" \
	"c['status'] == 'revoked' and c['reason'] == 4"
check "... and its predecessor is still valid" json_cert "$(serial one.pem)" "c['status'] == 'valid'"
BC rr $U --cert one.pem --key one.key --revoke oneb.pem >rr2.out 2>&1
check "rr again: rejection certRevoked, in a signed answer BC verified" sh -c \
	"test $? -eq 2 && grep -q '^refused: rejection certRevoked' rr2.out" rr2.out
BC rr $U --cert two.pem --key two.key --revoke rsa.pem >rr3.out 2>&1
check "rr by one client for another client's certificate: refused (notAuthorized)" sh -c \
	"test $? -eq 2 && grep -q 'notAuthorized' rr3.out" rr3.out
check "... which stays valid" json_cert "$(serial rsa.pem)" "c['status'] == 'valid'"

# ---- central key generation (RFC 9483 4.1.6) ----
BC ir $U $MAC --newkey central --profile keygen --subject CN=bc-central >c1.out 2>&1 \
	--out c1.pem --key-out c1.key
check "ir without a public key (MAC): the CA generates it; BC opens it with its secret (password recipient)" sh -c \
	"test $? -eq 0 && grep -q '^central key: .*enveloped for our secret (password recipient), signed by CN=cmprouter demo issuing CA: verified$' c1.out \
	 && grep -q '^confirmed$' c1.out" c1.out
check "... the key (P-256, mode 0600) belongs to the certificate, which verifies" sh -c \
	"verify c1.pem && pairs c1.pem c1.key && test \"\$(stat -c %a c1.key)\" = 600 \
	 && openssl pkey -in c1.key -noout -text | grep -q 'NIST CURVE: P-256'"
BC cr $U --cert two.pem --key two.key --newkey central-empty --profile keygen --out c2.pem --key-out c2.key >c2.out 2>&1
check "cr with an empty EC key, signed with an EC certificate: the key comes by key agreement" sh -c \
	"test $? -eq 0 && grep -q 'enveloped for our certificate (key agreement)' c2.out && verify c2.pem && pairs c2.pem c2.key" c2.out
BC cr $U --cert rsa.pem --key rsa.key --newkey central --profile keygen --out c3.pem --key-out c3.key >c3.out 2>&1
check "cr without a key, signed with an RSA certificate: the key comes by key transport" sh -c \
	"test $? -eq 0 && grep -q 'enveloped for our certificate (key transport)' c3.out && verify c3.pem && pairs c3.pem c3.key" c3.out
BC ir $U $MAC --newkey central --subject CN=bc-nokeygen >c4.out 2>&1
check "central key generation in a profile without it: rejection badCertTemplate" sh -c \
	"test $? -eq 2 && grep -q '^refused: rejection badCertTemplate' c4.out" c4.out

# ---- an RA without a CA; its ra_cert from another hierarchy, with its chain ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout raroot.key -out raroot.pem \
	-subj "/CN=RA root" -days 30 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >ca.ext
printf 'keyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\n' >ee.ext
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout raint.key -subj "/CN=RA intermediate" \
	-out raint.csr 2>/dev/null
openssl x509 -req -in raint.csr -CA raroot.pem -CAkey raroot.key -days 30 -extfile ca.ext -out raint.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ra.key -subj "/CN=bc-ra.example" \
	-out ra.csr 2>/dev/null
openssl x509 -req -in ra.csr -CA raint.pem -CAkey raint.key -days 30 -extfile ee.ext -out ra1.pem 2>/dev/null
cat ra1.pem raint.pem >ra.pem
chmod 600 ra.key
cat data/ca/root.pem raroot.pem >both-roots.pem
mkdir ra
cat >ra/cmprouter.conf <<EOF
[router]
data_dir = $TMP/ra
trusted = $TMP/data/ca/root.pem
untrusted = $TMP/data/ca/issuing.pem

[client demo]
reference = demo
secret = pass:$SECRET

[route to-ca]
subject = CN=bc-via-ra*
upstream = http://127.0.0.1:$PORT/.well-known/cmp
protection = reprotect
ra_cert = $TMP/ra.pem
ra_key = $TMP/ra.key
trusted = $TMP/data/ca/root.pem
EOF
chmod 600 ra/cmprouter.conf
# the CA takes the RA's signature: a client group for its certificate, and
# the RA's root and intermediate to check it with
cat >>data/cmprouter.conf <<EOF

[client bc-ra]
cert_subject = CN=bc-ra.example
ra = yes
EOF
kill $PID; wait $PID 2>/dev/null
sed -i "s|^data_dir = \.$|data_dir = .\ntrusted = $TMP/raroot.pem\nuntrusted = $TMP/raint.pem|" data/cmprouter.conf
start_daemon d2 http -c data/cmprouter.conf $ARGS
U2="--url http://127.0.0.1:$PORT/.well-known/cmp"
sed -i "s|^upstream = .*|upstream = http://127.0.0.1:$PORT/.well-known/cmp|" ra/cmprouter.conf
start_daemon ra1 http -c ra/cmprouter.conf $ARGS
RA="--url http://127.0.0.1:$PORT/.well-known/cmp --trusted both-roots.pem --recipient CN=cmprouter"
check "an RA-only daemon in front of the CA runs (HTTP $PORT)" test -n "$PORT"
BC ir $RA $MAC --mac pbmac1 --subject CN=bc-via-ra --out via.pem --key-out via.key >via.out 2>&1
check "through the RA, BC's PBMAC1 ir is reprotected and enrolled at the CA" sh -c \
	"test $? -eq 0 && grep -q '^confirmed$' via.out && verify via.pem && pairs via.pem via.key" via.out
BC cr $RA --cert two.pem --key two.key --subject CN=elsewhere >no.out 2>&1
check "a request no route takes: the RA's own error answer, signed with ra_cert, chains for BC (RA root, intermediate from extraCerts)" \
	sh -c "test $? -eq 2 && grep -q '^answer protection: signature by CN=bc-ra.example: verified, chains to --trusted$' no.out \
	 && grep -q '^refused: .*no route takes this request and this router has no CA of its own' no.out" no.out
BC cr --url "http://127.0.0.1:$PORT/.well-known/cmp" --trusted data/ca/root.pem --recipient CN=cmprouter \
	--cert two.pem --key two.key --subject CN=elsewhere >no2.out 2>&1
check "... and a client that does not trust the RA's root refuses that answer (the check can fail)" sh -c \
	"test $? -eq 1 && grep -q 'check failed: the answer.s signer CN=bc-ra.example does not chain' no2.out" no2.out

check "no sanitizer report from any daemon (leaks, overflows, UB)" \
	sh -c "! cat d1.err d2.err ra1.err | grep -q 'Sanitizer\|runtime error'"
