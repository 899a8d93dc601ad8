#!/bin/sh
# The EE client (cmprouter ir|cr|kur|p10cr|ccr|krr|rr|genm|poll|finish) against a
# cmprouterd (embedded default) over HTTP, TCP and file drop folders, and
# against OpenSSL's mock server (`openssl cmp -port`) over HTTP: a server we
# did not write. Certificates obtained are checked with `openssl verify`.
# Mail and SFTP are exercised in mail.sh and sftp.sh, where the MTA and
# sshd run. Waits are bounded (--timeout, --total-timeout).
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"
DAEMON_ARGS="--http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0"

start_daemon d0 http --data-dir "$TMP/data" $DAEMON_ARGS
kill $PID; wait $PID 2>/dev/null
sed -i 's/^data_dir = \.$/data_dir = .\ncheck_after = 1/' data/cmprouter.conf
# key archive (encryption_cert/key) and a CA profile for ccr
openssl req -x509 -newkey rsa:2048 -nodes -keyout data/enc.key -out data/enc.pem -subj "/CN=CA encryption" \
	-days 30 2>/dev/null
sed -i 's|^crl_file = ca/issuing.crl$|crl_file = ca/issuing.crl\nencryption_cert = enc.pem\nencryption_key = enc.key|' \
	data/cmprouter.conf
sed -i 's/^profiles = default, manual$/profiles = default, manual, subca, keygen/' data/cmprouter.conf
cat >>data/cmprouter.conf <<EOF

[client signer]
cert_subject = O=Test,CN=ee1
profiles = default, keygen

[profile keygen]
central_keygen = allowed
central_key_type = ec:P-256

[client archiver]
cert_subject = CN=archived
profiles = default

[profile subca]
ca = yes
path_len = 0
EOF
start_daemon d1 http -c data/cmprouter.conf $DAEMON_ARGS
HP=$PORT
TP=$(sed -n 's/^cmprouterd: tcp listening on port \([0-9]*\)$/\1/p' d1.out)
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
H="http://127.0.0.1:$HP/.well-known/cmp"
T="tcp://127.0.0.1:$TP"
F="file:data/filedrop/inbox,data/filedrop/outbox"
MAC="--ref demo --secret pass:$SECRET"
TR="--trusted data/ca/root.pem"
verify() { openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem "$1"; }
check "the daemon runs (HTTP $HP, TCP $TP)" test -n "$HP" -a -n "$TP"

# ---- ir over HTTP: new key, SANs, chain, certConf/pkiConf ----
"$R" ir --server "$H" $MAC $TR --newkey ec:P-256 --subject /CN=ee1/O=Test \
	--san dns:ee1.example,ip:127.0.0.1,uri:https://ee1.example/,email:ee1@example.org \
	--out ee1.pem --chain-out ee1.chain 2>ir.err
check "ir over HTTP (MAC) exits 0 after certConf/pkiConf" test $? -eq 0
check "... the certificate verifies with openssl verify against the CA" verify ee1.pem
check "... its key is the one written to ee1.key (mode 0600)" sh -c \
	"test \"\$(stat -c %a ee1.key)\" = 600 && test \"\$(openssl x509 -in ee1.pem -noout -pubkey)\" = \"\$(openssl pkey -in ee1.key -pubout)\""
check "... subject and every kind of subjectAltName are in it" sh -c \
	"openssl x509 -in ee1.pem -noout -subject | grep -q 'CN = ee1, O = Test' && openssl x509 -in ee1.pem -noout -ext subjectAltName | grep -q 'DNS:ee1.example, IP Address:127.0.0.1, URI:https://ee1.example/, email:ee1@example.org'"
check "... the chain written holds the issuing and root CA" sh -c \
	"test \$(grep -c BEGIN ee1.chain) -eq 2 && openssl verify -CAfile data/ca/root.pem -untrusted ee1.chain ee1.pem"
check "... the server saw the transaction confirmed" sh -c \
	"'$R' -c data/cmprouter.conf certs --subject ee1 --json | grep -q ee1"
check "the key file is never overwritten (exit 1, nothing sent)" sh -c \
	"'$R' ir --server '$H' $MAC --newkey ec:P-256 --subject /CN=ee1 --out ee1.pem 2>e.err; test \$? -eq 1 && grep -q 'never overwritten' e.err"

# ---- kur over TCP, signed with the old certificate ----
"$R" kur --server "$T" --oldcert ee1.pem --key ee1.key --newkey ed25519 $TR --out ee1b.pem 2>kur.err
check "kur over TCP (signed with the old key) exits 0 with a new certificate" test $? -eq 0
check "... it verifies, for the new Ed25519 key, the same subject, another serial" sh -c \
	"openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem ee1b.pem >/dev/null && \
	 openssl x509 -in ee1b.pem -noout -text | grep -q ED25519 && \
	 test \"\$(openssl x509 -in ee1b.pem -noout -subject)\" = \"\$(openssl x509 -in ee1.pem -noout -subject)\" && \
	 test \"\$(openssl x509 -in ee1b.pem -noout -serial)\" != \"\$(openssl x509 -in ee1.pem -noout -serial)\""

# ---- p10cr over TCP with an RSA key; over HTTP from an existing CSR ----
"$R" p10cr --server "$T" $MAC $TR --newkey rsa:2048 --subject /CN=p10 --san dns:p10.example --out p10.pem 2>p10.err
check "p10cr over TCP (CSR made from --newkey rsa:2048) exits 0" test $? -eq 0
check "... the certificate verifies and carries the CSR's subjectAltName" sh -c \
	"openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem p10.pem && openssl x509 -in p10.pem -noout -ext subjectAltName | grep -q DNS:p10.example"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout csr.key -subj /CN=fromcsr -out csr.pem 2>/dev/null
"$R" p10cr --server "$H" $MAC $TR --csr csr.pem --out csr-cert.pem 2>p10b.err
check "p10cr over HTTP from an existing CSR (openssl req) exits 0; the certificate verifies" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem csr-cert.pem"

# ---- cr signed with a certificate instead of a MAC ----
"$R" cr --server "$H" --cert ee1b.pem --key ee1b.key $TR --newkey ec:P-384 --subject /CN=ee1 --out cr.pem 2>cr.err
check "cr over HTTP signed with --cert/--key (answer verified against --trusted) exits 0" test $? -eq 0
check "... the certificate verifies" verify cr.pem

# ---- rr: revoke, then the same again is refused with the server's reason ----
"$R" rr --server "$H" --oldcert ee1b.pem --key ee1b.key $TR --reason keyCompromise 2>rr.err
check "rr over HTTP (signed with the certificate's key) exits 0" test $? -eq 0
"$R" rr --server "$T" --oldcert ee1b.pem --key ee1b.key $TR --reason superseded 2>rr2.err
check "rr of a revoked certificate exits 5 naming failInfo certRevoked" sh -c \
	"test $? -eq 5 && grep -q 'rejected by the server.*certRevoked' rr2.err"
check "... the CRL the CA writes lists it" sh -c \
	"'$R' -c data/cmprouter.conf crl --out crl.der && openssl crl -inform DER -in crl.der -noout -text | grep -qi \"\$(openssl x509 -in ee1b.pem -noout -serial | cut -d= -f2)\""

# ---- genm over the file drop ----
"$R" genm --server "$F" $MAC $TR --infotype caCerts --out cacerts.pem --timeout 30 2>genm.err
check "genm caCerts by files (file:INBOX,OUTBOX of the daemon's drop) exits 0" test $? -eq 0
check "... the CA certificates written are the daemon's" sh -c \
	"test \$(grep -c BEGIN cacerts.pem) -eq 2 && grep -q \"\$(sed -n 2p data/ca/issuing.pem)\" cacerts.pem"
check "... the request and answer files are gone from the folders" sh -c \
	"test -z \"\$(ls data/filedrop/outbox)\" && test -z \"\$(ls data/filedrop/inbox)\""
"$R" ir --server "$F" $MAC $TR --newkey ec:P-256 --subject /CN=byfile --out byfile.pem --timeout 30 2>f.err
check "ir by files exits 0 after certConf/pkiConf by files; the certificate verifies" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem byfile.pem"

# ---- every operation over every medium of the daemon ----
for m in http tcp file; do
	case $m in http) U=$H ;; tcp) U=$T ;; file) U=$F ;; esac
	O="--server $U $TR --timeout 30"
	rc=""
	"$R" ir $O $MAC --newkey ec:P-256 --subject /CN=all-$m --out all-$m.pem 2>all-$m.err; rc="$rc$?"
	"$R" kur $O --oldcert all-$m.pem --key all-$m.key --newkey ec:P-384 --out all-$m-2.pem 2>>all-$m.err; rc="$rc$?"
	"$R" p10cr $O $MAC --newkey rsa:2048 --subject /CN=all-$m-p10 --out all-$m-p10.pem 2>>all-$m.err; rc="$rc$?"
	"$R" genm $O $MAC --infotype caCerts --out all-$m-ca.pem 2>>all-$m.err; rc="$rc$?"
	"$R" rr $O --oldcert all-$m-2.pem --key all-$m-2.key --reason superseded 2>>all-$m.err; rc="$rc$?"
	check "over $m: ir, kur, p10cr, genm caCerts and rr each exit 0 (certConf/pkiConf included)" test "$rc" = 00000
	check "... the certificates of ir, kur and p10cr verify; genm brought the CA certificates" sh -c \
		"openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem all-$m.pem all-$m-2.pem all-$m-p10.pem \
		 && test \$(grep -c BEGIN all-$m-ca.pem) -eq 2 && test \$(grep -c 'transaction is complete' all-$m.err) -eq 3"
done
"$R" ir --server "$H" $MAC --mac pbmac1 $TR --newkey ec:P-256 --subject /CN=pbmac1 --out pbmac1.pem 2>pbmac1.err
check "ir protected with PBMAC1 (--mac pbmac1) exits 0" sh -c "test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem pbmac1.pem"
"$R" ir --server "$T" $MAC $TR --implicit-confirm --newkey ec:P-256 --subject /CN=implicit --out implicit.pem 2>implicit.err
check "ir with --implicit-confirm: granted, no certConf round, exit 0" sh -c \
	"test $? -eq 0 && grep -q 'implicit confirmation granted' implicit.err && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem implicit.pem"

# ---- delayed: manual approval while the client polls ----
"$R" ir --server "$H" $MAC $TR --newkey ec:P-256 --subject /CN=waiter --profile manual \
	--out waiter.pem --total-timeout 60 --max-wait 1 2>waiter.err &
W=$!
tid=$(pending_tid data/cmprouter.conf)
check "an ir for a profile needing approval waits at the server (client polling)" test -n "$tid"
"$R" -c data/cmprouter.conf approve "$tid" >/dev/null 2>&1
wait $W
check "... approved, the polling client gets the certificate and exits 0" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem waiter.pem"
check "... it said it was waiting and polled (pollReq/pollRep with checkAfter)" grep -q 'polling' waiter.err

"$R" ir --server "$H" $MAC $TR --newkey ec:P-256 --subject /CN=later --profile manual \
	--out later.pem --total-timeout 2 --state later.state 2>later.err
check "still waiting at --total-timeout: exit 6, the state saved for later" sh -c \
	"test $? -eq 6 && test -s later.state && grep -q 'cmprouter poll --state later.state' later.err"
check "... the state file keeps no secret given as pass:" sh -c "! grep -q '$SECRET' later.state"
tid=$(pending_tid data/cmprouter.conf)
"$R" -c data/cmprouter.conf approve "$tid" >/dev/null 2>&1
"$R" poll --state later.state --secret pass:$SECRET 2>poll.err
check "cmprouter poll --state (after approval) exits 0 with the certificate" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem later.pem && test ! -e later.state"

# ---- two-step offline, carried by the file drop, with manual approval ----
drop() {    # carry $1 into the daemon's inbox and wait for its answer into $2
	cp "$1" data/filedrop/inbox/carry.pki.tmp && mv data/filedrop/inbox/carry.pki.tmp data/filedrop/inbox/carry.pki
	wait_for data/filedrop/outbox/carry.rsp.pki && sleep 0.2 && mv data/filedrop/outbox/carry.rsp.pki "$2"
}
"$R" ir --request-out off.pki $MAC $TR --newkey ec:P-256 --subject /CN=offline --profile manual --out off.pem 2>off1.err
check "two-step: ir --request-out writes the request, a state file and the key; exit 6" sh -c \
	"test $? -eq 6 && test -s off.pki && test -s off.pki.state && test -s off.key"
check "... the request file is a protected ir (cmprouter dump --secret)" sh -c \
	"'$R' dump --secret pass:$SECRET off.pki | grep -q '^body: *ir\|ir'"
drop off.pki off.rsp1
"$R" finish --state off.pki.state --response off.rsp1 --secret pass:$SECRET 2>off2.err
check "finish with the 'waiting' answer writes a pollReq to carry; exit 6" sh -c \
	"test $? -eq 6 && grep -q 'pollReq written to off.pki' off2.err"
tid=$(pending_tid data/cmprouter.conf)
"$R" -c data/cmprouter.conf approve "$tid" >/dev/null 2>&1
drop off.pki off.rsp2
"$R" finish --state off.pki.state --response off.rsp2 --secret pass:$SECRET 2>off3.err
check "finish with the certificate writes it and a certConf to carry; exit 6" sh -c \
	"test $? -eq 6 && grep -q 'certConf written' off3.err && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem off.pem"
cp off.pki.state stale.state
drop off.pki off.rsp3
"$R" finish --state off.pki.state --response off.rsp3 --secret pass:$SECRET 2>off4.err
check "finish with pkiConf: transaction complete, exit 0, state removed" sh -c \
	"test $? -eq 0 && grep -q 'complete' off4.err && test ! -e off.pki.state"
"$R" finish --state stale.state --response off.rsp1 --secret pass:$SECRET 2>stale.err
check "an old answer (recipNonce of another request) is refused: exit 4" sh -c \
	"test $? -eq 4 && grep -q recipNonce stale.err"

# ---- answers that must not be believed ----
"$R" ir --request-out t.pki $MAC --newkey ec:P-256 --subject /CN=tamper --out t.pem 2>/dev/null
"$R" send "$H" --in t.pki --out t.rsp 2>/dev/null
cp t.pki.state t2.state
# one bit of the answer's senderNonce flipped: still DER, still this transaction
nonce=$("$R" dump --json t.rsp | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["senderNonce"])')
python3 -c "import sys; d=open('t.rsp','rb').read(); n=bytes.fromhex('$nonce'); i=d.index(n); d=bytearray(d); d[i]^=1; open('t.bad','wb').write(d)"
"$R" finish --state t.pki.state --response t.bad --secret pass:$SECRET 2>t.err
check "an answer whose protection does not verify is refused: exit 4" sh -c "test $? -eq 4 && grep -qi 'MAC' t.err"
"$R" finish --state t2.state --response ee1.pem --secret pass:$SECRET 2>t2.err
check "a file that is no PKIMessage is refused: exit 4" test $? -eq 4
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other.pem -subj /CN=Other -days 2 2>/dev/null
"$R" ir --server "$H" $MAC --trusted other.pem --newkey ec:P-256 --subject /CN=untrusted --out u.pem 2>u.err
check "a certificate that does not chain to --trusted: certConf rejection sent, exit 4" sh -c \
	"test $? -eq 4 && grep -q 'does not chain to --trusted' u.err"
"$R" ir --server "$H" --ref demo --secret pass:wrong $TR --newkey ec:P-256 --subject /CN=wrong --out w.pem 2>w.err
check "a wrong secret: the server's signed error is reported, exit 5" sh -c \
	"test $? -eq 5 && grep -q 'rejected by the server (error' w.err"
"$R" ir --server "$H" $MAC $TR --newkey ec:P-256 --subject /CN=noprof --profile nosuch --out np.pem 2>np.err
check "a profile the client may not use: rejected with statusString and failInfo, exit 5" sh -c \
	"test $? -eq 5 && grep -q 'failInfo' np.err"
"$R" genm --server http://127.0.0.1:9/x $MAC --timeout 3 2>dead.err
check "no server: transport error, exit 3, within the timeout" sh -c "test $? -eq 3"
"$R" genm --server "file:$TMP/nowhere,$TMP/nowhere" $MAC 2>bad.err
check "a file: URI with missing folders: exit 2 with the reason" sh -c "test $? -eq 2 && grep -q 'not a folder' bad.err"
"$R" ir --server gopher://x $MAC --newkey ec:P-256 --subject /CN=x --key-out g.key 2>g.err
check "an unknown URI scheme: exit 2" test $? -eq 2
"$R" ir --server "$H" $MAC 2>usage.err
check "ir without --newkey: exit 2 with what is missing" sh -c "test $? -eq 2 && grep -q 'needs --newkey' usage.err"
"$R" genm --server "$H" $MAC $TR --verbose >/dev/null 2>v.err
check "--verbose shows each message as cmprouter dump does" sh -c "grep -q -- '---- request ----' v.err && grep -q genm v.err && grep -q genp v.err"

# ---- every message our CA takes: pkiArchiveOptions, krr, ccr, each genm infoType ----
"$R" ir --server "$H" $MAC $TR --newkey ec:P-256 --subject /CN=archived --archive-key data/enc.pem \
	--out arch.pem 2>arch.err
check "ir with --archive-key (pkiArchiveOptions, the key encrypted to the CA's encryption cert) exits 0" \
	test $? -eq 0
check "... the server kept the key (its audit line)" grep -q 'archived' d1.err
"$R" krr --server "$H" $MAC $TR --subject /CN=archived --out rec.pem --key-out rec.key 2>krr.err
check "krr (MAC): the archived key comes back, opened with the secret, written 0600" sh -c \
	"test $? -eq 0 && test \"\$(stat -c %a rec.key)\" = 600 && cmp -s rec.pem arch.pem \
	 && test \"\$(openssl pkey -in rec.key -pubout)\" = \"\$(openssl pkey -in arch.key -pubout)\""
"$R" krr --server "$H" --cert arch.pem --key arch.key --extracerts data/ca/issuing.pem $TR --out rec2.pem \
	--key-out rec2.key 2>krr2.err
check "krr signed by the holder: its key comes back encrypted to its certificate" sh -c \
	"test \"\$(openssl pkey -in rec2.key -pubout)\" = \"\$(openssl pkey -in arch.key -pubout)\""
"$R" krr --server "$H" $MAC $TR --subject /CN=nobody --out rec3.pem --key-out rec3.key 2>krr3.err
check "krr for a subject without archived keys: rejected, exit 5" sh -c "test $? -eq 5 && grep -q badCertId krr3.err"
"$R" ccr --server "$H" $MAC $TR --newkey ec:P-256 --subject "/CN=Other CA" --profile subca --out ccr.pem \
	2>ccr.err
check "ccr (cross-certification, RFC 9810 5.3.11): ccp with a CA certificate" sh -c \
	"test -s ccr.pem && openssl x509 -in ccr.pem -noout -text | grep -q 'CA:TRUE, pathlen:0' && grep -q 'certificate issued' ccr.err"
"$R" ccr --server "$H" $MAC $TR --newkey ec:P-256 --subject "/CN=Other CA 2" --out ccr2.pem 2>ccr2.err
check "ccr in a profile that is not a CA profile: rejected, exit 5" sh -c "test $? -eq 5 && grep -q 'needs a CA profile' ccr2.err"
for it in caCerts rootCaCert certReqTemplate crlStatusList signKeyPairTypes currentCRL; do
	"$R" genm --server "$H" $MAC $TR --infotype $it >genm-$it.out 2>genm-$it.err
	echo "$it $?" >>genm-all.txt
done
check "genm for every infoType the CA answers exits 0" sh -c "! grep -v ' 0\$' genm-all.txt"
check "... caCerts, rootCaKeyUpdate, certReqTemplate, crls, signKeyPairTypes answered" sh -c \
	"grep -q 'genp: caCerts' genm-caCerts.err && grep -q 'genp: rootCaKeyUpdate' genm-rootCaCert.err \
	 && grep -q 'genp: certReqTemplate' genm-certReqTemplate.err && grep -q 'genp: crls' genm-crlStatusList.err \
	 && grep -q 'genp: signKeyPairTypes' genm-signKeyPairTypes.err && grep -q 'genp: currentCRL' genm-currentCRL.err"

# ---- central key generation (RFC 9483 4.1.6) ----
"$R" ir --server "$H" $MAC $TR --newkey central:ec:P-384 --profile keygen --subject /CN=central1 \
	--out ck1.pem 2>ck1.err
check "ir --newkey central:ec:P-384 (MAC): the CA generates the key; the client gets it with the certificate" \
	sh -c "test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem ck1.pem \
	       && test \"\$(stat -c %a ck1.key)\" = 600"
check "... the key (P-384, as asked) belongs to the certificate" sh -c \
	"openssl pkey -in ck1.key -noout -text | grep -q 'NIST CURVE: P-384' \
	 && test \"\$(openssl x509 -in ck1.pem -noout -pubkey)\" = \"\$(openssl pkey -in ck1.key -pubout)\""
check "... and its private value is in neither the store nor the daemon's output" python3 -c "
import subprocess, glob, re
text = subprocess.run(['openssl', 'pkey', '-in', 'ck1.key', '-noout', '-text'], capture_output=True, text=True).stdout
priv = bytes.fromhex(re.sub(r'[^0-9a-f]', '', text.split('priv:')[1].split('pub:')[0]))
assert len(priv) >= 40, text
for f in glob.glob('data/*.db*') + ['d1.err', 'd1.out']:
    assert priv not in open(f, 'rb').read(), f
"
"$R" cr --server "$H" --cert ee1.pem --key ee1.key $TR --newkey central --profile keygen --subject /CN=ee1/O=Test \
	--out ck2.pem 2>ck2.err
check "cr --newkey central signed with a certificate: the key comes enveloped for that certificate" sh -c \
	"test $? -eq 0 && test \"\$(openssl x509 -in ck2.pem -noout -pubkey)\" = \"\$(openssl pkey -in ck2.key -pubout)\" \
	 && openssl pkey -in ck2.key -noout -text | grep -q 'NIST CURVE: P-256'"
"$R" ir --server "$H" $MAC $TR --newkey central --subject /CN=central3 --out ck3.pem 2>ck3.err
check "central key generation in a profile without it: rejected (badCertTemplate), exit 5, no key file" sh -c \
	"test $? -eq 5 && grep -q 'does not generate keys' ck3.err && test ! -e ck3.key"

# ---- OpenSSL's mock server (a server we did not write) ----
start_mock test -srv_trusted mca.crt
M="http://127.0.0.1:$MP/pkix/"
MM="--ref me --secret pass:test --recipient /CN=MockCA --trusted mca.crt --total-timeout 30"
"$R" ir --server "$M" $MM --newkey mee.key --subject /CN=mockee --out mock-ir.pem 2>mock-ir.err
check "mock server: ir with polling (waiting, pollReq, pollRep, ip, certConf) exits 0" sh -c \
	"test $? -eq 0 && cmp -s mock-ir.pem mee.crt && grep -q polling mock-ir.err"
check "... the certificate verifies against the mock's CA" openssl verify -CAfile mca.crt mock-ir.pem
"$R" cr --server "$M" --cert mee.crt --key mee.key --trusted mca.crt --newkey mee.key --subject /CN=mockee \
	--out mock-cr.pem --total-timeout 30 2>mock-cr.err
check "mock server: cr signed with a certificate exits 0" test $? -eq 0
"$R" genm --server "$M" $MM --infotype signKeyPairTypes 2>mock-genm.err
check "mock server: genm exits 0 (the mock echoes the ITAV)" sh -c "test $? -eq 0 && grep -q signKeyPairTypes mock-genm.err"
"$R" ccr --server "$M" $MM --newkey mee.key --subject /CN=mockee --out mock-ccr.pem 2>mock-ccr.err
check "mock server (OpenSSL 3.0): ccr is not a message it takes; its error is reported, exit 5" sh -c \
	"test $? -eq 5 && grep -q 'unexpected pkibody' mock-ccr.err"
"$R" rr --server "$M" $MM --oldcert mee.crt --reason keyCompromise 2>mock-rr.err
check "mock server: rr of its certificate exits 0" test $? -eq 0
"$R" ir --server "$M" --ref me --secret pass:other --recipient /CN=MockCA --trusted mca.crt \
	--newkey mee.key --subject /CN=mockee --out x.pem 2>mock-bad.err
check "mock server: a wrong secret is refused by it: exit 5" test $? -eq 5
check "no sanitizer report from the client or the daemon (leaks, overflows, UB)" \
	sh -c "! cat *.err | grep -q 'Sanitizer\|runtime error'"
