#!/bin/sh
# Profiles with the `openssl cmp` client (cmprouter.conf(5) [profile NAME];
# RFC 9810 5.2.3): a request gets exactly what it asked and status accepted,
# or grantedWithMods with a statusString naming each change, or rejection
# badCertTemplate naming a critical extension that cannot be met. Requests
# are written by the client (-reqout), answered by `cmprouter process`, and
# the answers read by the client (-rspin).
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R=$CMPROUTER
DEAD=127.0.0.1:9

# an issuing CA that ends in two years (certificates must end with it)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -subj "/CN=Profile CA" -days 730 \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
	-out ca.pem 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ee.key 2>/dev/null

cat >cmprouter.conf <<'EOF'
[router]
log_level = warning

[ca issuing]
key = ca.key
cert = ca.pem

[profile tls]
validity_days = 365
key_usage = digitalSignature, keyEncipherment
extended_key_usage = serverAuth
certificate_policies = 1.3.6.1.4.1.99999.1
policy_cps = https://cps.example.org/

[profile open]
validity_days = 36500
allowed_key_usage = digitalSignature, keyEncipherment, keyAgreement
allowed_extended_key_usage = serverAuth, clientAuth
allowed_certificate_policies = 1.2.3.4
san_types = dns

[profile subca]
ca = yes
path_len = 0
name_constraints = permitted;DNS:.example.org

[client tls]
reference = tls
secret = pass:tls-secret
profiles = tls

[client open]
reference = open
secret = pass:open-secret
profiles = open

[client subca]
reference = subca
secret = pass:subca-secret
profiles = subca
EOF

# the -reqexts sections (openssl cmp reads them from -config)
cat >ext.cnf <<'EOF'
[cmp]
[ku_eku]
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, clientAuth
[ca_ext]
basicConstraints = critical, CA:TRUE
[subca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
EOF

# enroll NAME CLIENT OPTIONS...: an ir for /CN=NAME, answered; NAME.der is the
# answer, NAME.json its dump, NAME.pem the certificate if the client took it
enroll() {
	_n=$1 _cl=$2; shift 2
	openssl cmp -config ext.cnf -batch -cmd ir -server $DEAD -ref "$_cl" -secret "pass:$_cl-secret" -recipient /CN=Profile_CA \
		-newkey ee.key -subject "/CN=$_n" -implicit_confirm -reqout "$_n.req" -certout x.pem "$@" >/dev/null 2>&1
	"$R" process -c cmprouter.conf <"$_n.req" >"$_n.der"
	"$R" dump --json "$_n.der" >"$_n.json"
	openssl cmp -config ext.cnf -batch -cmd ir -ref "$_cl" -secret "pass:$_cl-secret" -recipient /CN=Profile_CA \
		-newkey ee.key -subject "/CN=$_n" -implicit_confirm -rspin "$_n.der" -certout "$_n.pem" "$@" \
		>"$_n.log" 2>&1
	[ -s "$_n.pem" ] && openssl x509 -in "$_n.pem" -noout -text >"$_n.txt"
	return 0
}
# status NAME STATUS [TEXT]: the answer's PKIStatus, and a statusString containing TEXT
status() {
	grep -q "\"status\":\"$2\"" "$1.json" && { [ -z "${3:-}" ] || grep -qF "$3" "$1.json"; }
}
# ext NAME PATTERN: the issued certificate's text shows PATTERN
ext() { grep -q "$2" "$1.txt"; }

# 1. nothing asked: the profile's extensions, accepted
enroll plain tls
check "a request without extensions: accepted" status plain accepted
check "the certificate carries the profile's policy with its CPS" sh -c \
	"grep -q 'Policy: 1.3.6.1.4.1.99999.1' plain.txt && grep -q 'CPS: https://cps.example.org/' plain.txt"
check "and the profile's keyUsage and extendedKeyUsage" sh -c \
	"grep -q 'Digital Signature, Key Encipherment' plain.txt && grep -q 'TLS Web Server Authentication' plain.txt"

# 2. the issue's first example: a critical policy the profile does not allow
enroll crit-policy tls -policy_oids 1.2.3.4 -policy_oids_critical
check "critical certificatePolicies 1.2.3.4 in profile tls: rejection badCertTemplate" \
	status crit-policy rejection "certificatePolicies cannot be honoured: 1.2.3.4 not allowed by profile tls"
check "  with failInfo badCertTemplate" grep -q badCertTemplate crit-policy.json
check "  and the client gets no certificate" test ! -s crit-policy.pem

# 3. the issue's second example: critical keyUsage + extendedKeyUsage clientAuth
enroll crit-eku tls -reqexts ku_eku
check "critical extendedKeyUsage clientAuth in profile tls: rejection naming it" \
	status crit-eku rejection "extendedKeyUsage cannot be honoured: clientAuth not allowed by profile tls"

# 4. the same in a profile that allows them: exactly as asked
enroll open-eku open -reqexts ku_eku
check "profile open grants keyUsage/extendedKeyUsage as asked: accepted" status open-eku accepted
check "  the certificate has critical digitalSignature only" sh -c \
	"grep -A1 'Key Usage: critical' open-eku.txt | grep -q '^ *Digital Signature$'"
check "  and critical clientAuth only" sh -c \
	"grep -A1 'Extended Key Usage: critical' open-eku.txt | grep -q '^ *TLS Web Client Authentication$'"
enroll open-policy open -policy_oids 1.2.3.4 -policy_oids_critical
check "an allowed critical policy: accepted" status open-policy accepted
check "  the certificate's policies are critical 1.2.3.4" sh -c \
	"grep -A1 'Certificate Policies: critical' open-policy.txt | grep -q 'Policy: 1.2.3.4'"

# 5. subjectAltName types: san_types = dns removes the IP address
enroll open-san open -sans "a.example.org 192.0.2.1"
check "an IP address in a dns-only profile: grantedWithMods naming it" \
	status open-san grantedWithMods "subjectAltName: ip names not allowed by profile open"
check "  the client accepts the certificate" test -s open-san.pem
check "  which holds the DNS name only" sh -c "grep -q 'DNS:a.example.org' open-san.txt && ! grep -q 'IP Address' open-san.txt"

# 6. validity: the issue's example of 36,500 days under a CA ending in two years
enroll long open -days 36500
check "36,500 days under a CA ending sooner: grantedWithMods" status long grantedWithMods "the CA certificate's end"
check "  the certificate ends when the CA does" sh -c \
	"test \"\$(openssl x509 -in long.pem -noout -enddate)\" = \"\$(openssl x509 -in ca.pem -noout -enddate)\""
enroll long2 tls -days 400
check "400 days in a 365-day profile: grantedWithMods" status long2 grantedWithMods "the profile's maximum"

# 7. basicConstraints: CA:TRUE only in a CA profile
enroll ca-in-tls tls -reqexts ca_ext
check "critical CA:TRUE in profile tls: rejection" \
	status ca-in-tls rejection "basicConstraints cannot be honoured: profile tls does not issue CA certificates"
enroll sub subca -reqexts subca_ext
check "CA:TRUE, pathlen 0 in profile subca: accepted" status sub accepted
check "  the sub-CA certificate has the profile's name constraints" sh -c \
	"grep -q 'Name Constraints: critical' sub.txt && grep -q 'DNS:.example.org' sub.txt"
check "  and pathlen 0" grep -q 'CA:TRUE, pathlen:0' sub.txt

# 8. rights apart from ra = yes ([client] renew, revoke): the client that
# enrolled a certificate renews and revokes its successors; another does not
X="openssl cmp -config /dev/null -batch -recipient /CN=Profile_CA"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k2.key 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k3.key 2>/dev/null
$X -cmd kur -server $DEAD -cert plain.pem -key ee.key -extracerts ca.pem -newkey k2.key -implicit_confirm \
	-reqout kur1.req -certout x.pem >/dev/null 2>&1
"$R" process -c cmprouter.conf <kur1.req >kur1.der
$X -cmd kur -cert plain.pem -key ee.key -newkey k2.key -implicit_confirm -trusted ca.pem -rspin kur1.der \
	-certout succ.pem >kur1.log 2>&1
check "the holder updates its certificate (kur signed with it)" test -s succ.pem
$X -cmd rr -server $DEAD -ref open -secret pass:open-secret -oldcert succ.pem -revreason 1 -reqout rr1.req >/dev/null 2>&1
"$R" process -c cmprouter.conf <rr1.req >rr1.der
"$R" dump --json rr1.der >rr1.json
check "another client may not revoke the successor (notAuthorized, naming its right)" sh -c \
	"grep -q notAuthorized rr1.json && grep -q 'client open may not revoke this certificate (revoke = own)' rr1.json"
$X -cmd kur -server $DEAD -ref tls -secret pass:tls-secret -oldcert succ.pem -newkey k3.key -implicit_confirm \
	-reqout kur2.req -certout x.pem >/dev/null 2>&1
"$R" process -c cmprouter.conf <kur2.req >kur2.der
$X -cmd kur -ref tls -secret pass:tls-secret -oldcert succ.pem -newkey k3.key -implicit_confirm -rspin kur2.der \
	-certout succ2.pem >kur2.log 2>&1
check "the enrolling client renews the successor with its MAC (kur naming it by oldCertID)" test -s succ2.pem
check "  the subject stays" sh -c "openssl x509 -in succ2.pem -noout -subject | grep -q 'CN *= *plain'"
$X -cmd rr -server $DEAD -ref tls -secret pass:tls-secret -oldcert succ.pem -revreason 1 -reqout rr2.req >/dev/null 2>&1
"$R" process -c cmprouter.conf <rr2.req >rr2.der
$X -cmd rr -ref tls -secret pass:tls-secret -oldcert succ.pem -revreason 1 -rspin rr2.der >rr2.log 2>&1
check "and revokes the successor of the certificate it enrolled" sh -c "'$R' dump --json rr2.der | grep -q '\"status\":\"accepted\"'"

# 9. the refused requests left no certificate behind
"$R" -c cmprouter.conf certs --json >certs.json
check "the store holds exactly the nine certificates issued" sh -c \
	"test \$(grep -o '\"serial\"' certs.json | wc -l) -eq 9"

echo "1..$_tap_n"
