#!/bin/sh
# cmprouter dump against requests written live by the `openssl cmp` client,
# messages from LightweightCmpRa, and hostile files.
. "$TOP/tests/integration/lib.sh"
D=$TOP/tests/data/openssl
cd "$TMP" || exit 1
cp "$D"/*.pem "$D"/*.key .

MOCK="-use_mock_srv -srv_ref mockref -srv_secret pass:s3cret -srv_cert server.pem -srv_key server.key -srv_trusted root.pem -rsp_cert rsp.pem -rsp_capubs root.pem"
MAC="-ref myref -secret pass:s3cret -srvcert server.pem"
SIG="-cert client.pem -key client.key -trusted root.pem"
C="openssl cmp -config /dev/null -batch"

gen() { # name, args...
	n=$1; shift
	$C $MOCK "$@" >"$n.log" 2>&1
}
gen ir   $MAC -cmd ir -newkey new.key -subject "/CN=Live Leaf" -reqout "ir.der cc.der" -certout out.pem
gen cr   $SIG -cmd cr -newkey new.key -subject "/CN=Live Leaf" -reqout cr.der -certout out.pem -implicit_confirm -grant_implicitconf
gen p10  $MAC -cmd p10cr -csr newcsr.pem -reqout p10cr.der -certout out.pem -implicit_confirm -grant_implicitconf
gen rr   $SIG -cmd rr -oldcert rsp.pem -revreason 6 -reqout rr.der
gen genm $MAC -cmd genm -infotype caCerts -reqout genm.der || true

expect_body() { # file body
	out=$("$CMPROUTER" dump --json "$1" 2>&1)
	if printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["body"]==sys.argv[1] else 1)' "$2"; then
		ok "dump --json $1 is valid JSON with body $2"
	else
		not_ok "dump --json $1 is valid JSON with body $2: $out"
	fi
}
expect_body ir.der ir
expect_body cc.der certConf
expect_body cr.der cr
expect_body p10cr.der p10cr
expect_body rr.der rr
[ -s genm.der ] && expect_body genm.der genm

# text output: the fields a person looks for
"$CMPROUTER" dump ir.der >ir.txt 2>&1
check "text dump names the body"            grep -q '^  body: ir' ir.txt
check "text dump shows the transactionID"   grep -q 'transactionID: [0-9a-f]\{32\}' ir.txt
check "text dump shows PBM parameters"      grep -q 'algorithm: PasswordBasedMac' ir.txt
check "text dump shows the template subject" grep -q 'subject: CN=Live Leaf' ir.txt
"$CMPROUTER" dump rr.der >rr.txt 2>&1
check "rr dump names the reason (certificateHold)" grep -q 'reason: certificateHold' rr.txt
"$CMPROUTER" dump cr.der >cr.txt 2>&1
check "cr dump shows implicitConfirm in generalInfo" grep -q 'infoType: implicitConfirm' cr.txt
check "cr dump shows the signer in extraCerts" grep -q 'subject: CN=Test Client' cr.txt

# PEM, base64 and stdin input
{ echo "-----BEGIN CMP MESSAGE-----"; openssl base64 -in ir.der; echo "-----END CMP MESSAGE-----"; } >ir.pem
openssl base64 -in ir.der >ir.b64
check "PEM input"    "$CMPROUTER" dump ir.pem
check "base64 input" "$CMPROUTER" dump ir.b64
check "stdin input"  sh -c "'$CMPROUTER' dump - <ir.der"

# response fixtures from the openssl mock (ip with caPubs, error with failInfo)
"$CMPROUTER" dump "$D/error_mac.der" >err.txt 2>&1
check "error dump lists failInfo badRequest" grep -q 'badRequest' err.txt
"$CMPROUTER" dump "$D/ip_mac.der" >ip.txt 2>&1
check "ip dump shows status and caPubs" sh -c "grep -q 'status: accepted' ip.txt && grep -q 'caPubs:' ip.txt"

# messages from LightweightCmpRa
cnt=0; bad=0
for f in "$TOP"/tests/data/lightweightcmpra/*/*.PKI; do
	cnt=$((cnt + 1))
	"$CMPROUTER" dump --json "$f" | python3 -m json.tool >/dev/null 2>&1 || bad=$((bad + 1))
done
if [ "$cnt" -eq 36 ] && [ "$bad" -eq 0 ]; then ok "all 36 LightweightCmpRa messages dump as JSON"; else not_ok "LightweightCmpRa: $bad of $cnt failed"; fi

# hostile input: exit status 1 and exactly one clear line on stderr
one_line_error() { # description file pattern
	"$CMPROUTER" dump "$2" >/dev/null 2>err.txt
	rc=$?
	lines=$(wc -l <err.txt)
	if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "$3" err.txt; then
		ok "$1"
	else
		not_ok "$1 (rc=$rc lines=$lines: $(cat err.txt))"
	fi
}
printf 'this is not a CMP message at all\n' >garbage.txt
one_line_error "garbage text" garbage.txt "offset 0"
: >empty.der
one_line_error "empty file" empty.der "offset 0"
head -c 300 ir.der >trunc.der
one_line_error "truncated DER names an offset" trunc.der "offset [0-9]*: expected .*input ends"
{ cat ir.der; printf '\0\0'; } >trail.der
one_line_error "trailing bytes" trail.der "trailing bytes"
printf '\060\200\002\001\002\000\000' >indef.der
one_line_error "BER indefinite length" indef.der "indefinite"
printf '\060\003\002\001\002' >notpki.der
one_line_error "a SEQUENCE that is no PKIMessage" notpki.der "PKIHeader"
head -c 5000000 /dev/zero | tr '\0' 'A' >big.b64
one_line_error "5 MB input is refused" big.b64 "limit"
one_line_error "missing file" does-not-exist.der "No such file"

# protection checks with dump: the MAC of the live ir with its secret,
# the signature of the live cr with the signer it carries
check "dump --secret verifies the MAC of an openssl ir" "$CMPROUTER" dump --secret pass:s3cret ir.der
"$CMPROUTER" dump --secret pass:wrong ir.der >/dev/null 2>err.txt
rc=$?
if [ $rc -eq 4 ] && grep -q "MAC verification failed" err.txt; then ok "wrong secret: exit 4, MAC verification failed"; else not_ok "wrong secret (rc=$rc)"; fi
S3CRET=s3cret; export S3CRET
check "dump --secret env:VAR" "$CMPROUTER" dump --secret env:S3CRET ir.der
check "dump --verify checks an openssl cr signature" "$CMPROUTER" dump --verify cr.der
check "dump --signer with the right cert" "$CMPROUTER" dump --signer client.pem rr.der
"$CMPROUTER" dump --signer server.pem rr.der >/dev/null 2>err.txt
rc=$?
if [ $rc -eq 4 ]; then ok "dump --signer with another key fails with exit 4"; else not_ok "wrong signer (rc=$rc)"; fi
"$CMPROUTER" dump --verify ir.der >/dev/null 2>err.txt
rc=$?
if [ $rc -eq 4 ] && grep -q "wrong kind of protection\|no certificate" err.txt; then ok "dump --verify of a MAC-protected message says so"; else not_ok "verify on MAC message (rc=$rc: $(cat err.txt))"; fi
