#!/bin/sh
# Routing: cmprouterd as an RA forwarding between media (RFC 9483 5.2).
# Daemon B is a CA (embedded default, HTTP, TCP, file drop); daemon A is the
# RA in front of it with [route] groups; OpenSSL's mock server is a second
# upstream CA we did not write. Clients: the unmodified `openssl cmp` client
# and cmprouter's EE client. Everything on 127.0.0.1; waits are bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"
C="openssl cmp -config /dev/null -batch"
ARGS="--http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0"

# ---- B: the CA; an RA certificate for A; a slow drop folder for the offline tests ----
start_daemon cb0 http --data-dir "$TMP/b" $ARGS
kill $PID; wait $PID 2>/dev/null
sed -i 's/^data_dir = \.$/data_dir = .\ncheck_after = 1/' b/cmprouter.conf
mkdir -p slow/in slow/out batch/in batch/out hostile/in hostile/out
cat >>b/cmprouter.conf <<EOF

[client ra]
cert_subject = CN=ra.example
ra = yes
profiles = default, manual

[filedrop slow]
inbox = $TMP/slow/in
outbox = $TMP/slow/out
errors = $TMP/slow/errors
settle_ms = 2500
rescan = 1

[filedrop batch]
inbox = $TMP/batch/in
outbox = $TMP/batch/out
errors = $TMP/batch/errors
archive = $TMP/batch/archive
rescan = 1
EOF
start_daemon cb1 http -c b/cmprouter.conf $ARGS
BP=$PORT
BT=$(sed -n 's/^cmprouterd: tcp listening on port \([0-9]*\)$/\1/p' cb1.out)
S=$(sed -n 's/^secret=//p' b/demo-client.txt)
BH="http://127.0.0.1:$BP/.well-known/cmp"
check "CA daemon B runs (HTTP $BP, TCP $BT)" test -n "$BP" -a -n "$BT"
"$R" ir --server "$BH" --ref demo --secret pass:$S --newkey ec:P-256 --subject /CN=ra.example \
	--out ra.pem --trusted b/ca/root.pem >/dev/null 2>&1
check "the RA's own certificate comes from B (cmprouter ir)" test -s ra.pem -a -s ra.key

# ---- OpenSSL's mock server: another upstream CA ----
start_mock mocksecret -srv_trusted b/ca/root.pem -srv_untrusted b/ca/issuing.pem
check "OpenSSL's mock server runs (port $MP)" test -n "$MP"
# A second one for the delayed route alone: OpenSSL's mock delays every
# other transaction (it alternates after -poll_count), so which one waits
# would depend on what went before
openssl cmp -config /dev/null -port 0 -srv_ref mock -srv_secret pass:mocksecret -srv_cert msrv.crt \
	-srv_key msrv.key -rsp_cert mee.crt -rsp_capubs mca.crt -poll_count 1 -check_after 1 \
	-srv_trusted b/ca/root.pem -srv_untrusted b/ca/issuing.pem >mock2.out 2>mock2.err &
PIDS="$PIDS $!"
i=0; MP2=""
while [ $i -lt 50 ] && [ -z "$MP2" ]; do
	MP2=$(sed -n 's/^ACCEPT \[::\]:\([0-9]*\).*/\1/p' mock2.out); sleep 0.1; i=$((i + 1))
done
check "a second mock server runs for the delayed route (port $MP2)" test -n "$MP2"

# ---- A: the RA with its routes ----
start_daemon ra0 http --data-dir "$TMP/a" $ARGS
kill $PID; wait $PID 2>/dev/null
# the clients of B are clients of A too (A vouches for them with reprotect)
sed -i "s/^secret = pass:.*/secret = pass:$S/" a/cmprouter.conf
sed -i 's/^\[mail\]$/[mail]\nlabel = viatcp/' a/cmprouter.conf
# A checks client signatures made with B's certificates (reprotect, nested)
sed -i "s|^data_dir = \.\$|data_dir = .\ntrusted = $TMP/b/ca/root.pem\nuntrusted = $TMP/b/ca/issuing.pem|" a/cmprouter.conf
cat >>a/cmprouter.conf <<EOF

[route mock-keep]
label = mockkeep
upstream = http://127.0.0.1:$MP/pkix/

[route mock-reprotect]
label = mockrp
upstream = http://127.0.0.1:$MP/pkix/
protection = reprotect
ra_cert = $TMP/ra.pem
ra_key = $TMP/ra.key
ra_chain = $TMP/b/ca/issuing.pem
trusted = $TMP/mca.crt

[route mock-delayed]
label = mockslow
upstream = http://127.0.0.1:$MP2/pkix/
protection = reprotect
ra_cert = $TMP/ra.pem
ra_key = $TMP/ra.key
ra_chain = $TMP/b/ca/issuing.pem
trusted = $TMP/mca.crt
wait = 0
check_after = 1

[route nested]
label = nested
upstream = $BH
protection = nested
ra_cert = $TMP/ra.pem
ra_key = $TMP/ra.key
trusted = $TMP/b/ca/root.pem

[route raverified]
label = rav
upstream = $BH
protection = reprotect
ra_verified = yes
ra_cert = $TMP/ra.pem
ra_key = $TMP/ra.key
trusted = $TMP/b/ca/root.pem

[route legacy-tcp]
label = viatcp
subject = CN=bymail
upstream = tcp://127.0.0.1:$BT

[route down]
label = down
upstream = http://127.0.0.1:9/cmp
timeout = 5

[route offline]
subject = CN=offline*
upstream = file:$TMP/slow/in,$TMP/slow/out
protection = reprotect
ra_cert = $TMP/ra.pem
ra_key = $TMP/ra.key
trusted = $TMP/b/ca/root.pem
check_after = 1

[route hostile]
label = hostile
upstream = file:$TMP/hostile/out,$TMP/hostile/in
check_after = 1

[route batched]
label = batch
upstream = file:$TMP/batch/in,$TMP/batch/out
ra_cert = $TMP/ra.pem
ra_key = $TMP/ra.key
trusted = $TMP/b/ca/root.pem
batch = 20
batch_wait = 60
check_after = 1

[route reprotect]
subject = CN=rp-*
upstream = $BH
protection = reprotect
ra_cert = $TMP/ra.pem
ra_key = $TMP/ra.key
trusted = $TMP/b/ca/root.pem

[route local]
profile = manual
ca = default

[route everything-else]
upstream = $BH
EOF
start_daemon ra1 http -c a/cmprouter.conf $ARGS
AP=$PORT
AH="http://127.0.0.1:$AP/.well-known/cmp"
check "RA daemon A runs with its routes and the forwarder" sh -c "test -n '$AP' && grep -q 'forward upstreams started' ra1.out"
MAC="-ref demo -secret pass:$S -recipient /CN=CA"
verify_b() { openssl verify -CAfile b/ca/root.pem -untrusted b/ca/issuing.pem "$1"; }

# ---- cmprouter routes --explain ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k.key
$C -server 127.0.0.1:9 -cmd ir $MAC -newkey k.key -subject /CN=rp-explain -reqout ex.der -certout x.pem >/dev/null 2>&1
"$R" -c a/cmprouter.conf routes --explain ex.der >ex.out 2>&1
check "routes --explain: the first route that fits takes it, each other says why not" sh -c \
	"grep -q 'route mock-keep: no: label (none) is not mockkeep' ex.out && grep -q 'route offline: no: subject CN=rp-explain does not fit CN=offline\*' ex.out \
	 && grep -q 'route reprotect: MATCHES -> upstream http://127.0.0.1:$BP/.well-known/cmp (protection reprotect)' ex.out \
	 && ! grep -q 'everything-else' ex.out"
"$R" -c a/cmprouter.conf routes --explain ex.der --label mockkeep >ex2.out 2>&1
check "routes --explain --label: the label route wins" grep -q 'route mock-keep: MATCHES' ex2.out
"$R" -c a/cmprouter.conf routes >rt.out 2>&1
check "routes lists the table in order without secrets" sh -c \
	"head -1 rt.out | grep -q '^\[route mock-keep\]' && grep -q '^\[route everything-else\] upstream=' rt.out"

# ---- HTTP in, HTTP upstream, protection keep (openssl cmp client) ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out keep.key
$C -server 127.0.0.1:$AP/.well-known/cmp -cmd ir $MAC -newkey keep.key -subject /CN=keep1 -certout keep1.pem >keep.log 2>&1
check "openssl cmp -> A -> B (keep): ir and certConf forwarded, the certificate is B's" verify_b keep1.pem
check "... A passed B's answers on unchanged; B saw the client itself" sh -c \
	"grep -q 'ip from the upstream (route everything-else), passed on as it is' ra1.err && grep -q 'demo: confirmed' cb1.err"

# ---- protection reprotect: A checks the client, signs for it ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rp.key
$C -server 127.0.0.1:$AP/.well-known/cmp -cmd ir $MAC -newkey rp.key -subject /CN=rp-1 -certout rp1.pem >rp.log 2>&1
check "openssl cmp -> A -> B (reprotect): the certificate is B's" verify_b rp1.pem
check "... B saw the RA (signed by its certificate), A protected the answers for the client" sh -c \
	"grep -q 'ra: issued: profile default subject CN=rp-1' cb1.err && grep -q 'ra: confirmed' cb1.err \
	 && grep -q 'ip from the upstream (route reprotect), protected here for the client' ra1.err"
$C -server 127.0.0.1:$AP/.well-known/cmp -cmd ir -ref demo -secret pass:wrong -recipient /CN=CA -newkey rp.key \
	-subject /CN=rp-2 -certout rp2.pem -unprotected_errors >rp2.log 2>&1
check "reprotect: a client that fails A's check is refused by A, nothing goes upstream" sh -c \
	"test ! -s rp2.pem && grep -q 'MAC check for client demo failed' ra1.err && ! grep -q 'CN=rp-2' cb1.err"

# ---- the mock server as upstream: keep and reprotect ----
$C -server 127.0.0.1:$AP/.well-known/cmp/p/mockkeep -cmd ir -ref me -secret pass:mocksecret -recipient /CN=MockCA \
	-newkey mee.key -subject /CN=mockee -certout mk.pem -trusted mca.crt -total_timeout 30 >mk.log 2>&1
check "openssl cmp -> A -> OpenSSL mock server (keep; the mock delays once: polling passes through)" \
	cmp -s mk.pem mee.crt
$C -server 127.0.0.1:$AP/.well-known/cmp/p/mockrp -cmd ir $MAC -newkey mee.key -subject /CN=mockee -certout mr.pem \
	-total_timeout 30 >mr.log 2>&1
check "openssl cmp -> A -> mock server (reprotect: A signs, checks the mock's signature, MACs for the client)" sh -c \
	"cmp -s mr.pem mee.crt && grep -q 'route mock-reprotect), protected here for the client' ra1.err"

"$R" ir --server "$AH/p/mockslow" --ref demo --secret pass:$S --newkey mee.key --subject /CN=mockee \
	--out ms.pem --total-timeout 60 --max-wait 1 2>ms.err
rc=$?
check "delayed by the RA and by the mock: the client polls the RA and gets the mock's certificate (certConf too)" sh -c \
	"test $rc -eq 0 && cmp -s ms.pem mee.crt || { echo 'client exit $rc:'; tail -n 8 ms.err; exit 1; }"
# the mock's "waiting" reaches the RA either before it told the client to
# wait (then it is the client's answer, and the client's pollReq goes on to
# the mock) or after (then the RA polls the mock itself): both are right
check "... the mock's waiting was followed: polled by the RA itself, or by the client's pollReq through it" sh -c \
	"grep -q 'route mock-delayed tid=.*the upstream says waiting; polling it' ra1.err \
	 || test \$(grep -c 'forwarded: to http://127.0.0.1:$MP2/pkix/ (route mock-delayed)' ra1.err) -ge 3 \
	 || { grep 'mock' ra1.err | tail -n 8; tail -n 5 mock2.err; exit 1; }"

# ---- protection nested: kur keeps the client's signature, the RA adds its own ----
"$R" kur --server "$AH/p/nested" --oldcert keep1.pem --key keep.key --newkey ec:P-256 --out kn.pem --key-out kn.key \
	--trusted b/ca/root.pem 2>kn.err
check "kur -> A -> B in a nested message (RA protection around the client's): a new certificate" sh -c \
	"test $? -eq 0 && openssl verify -CAfile b/ca/root.pem -untrusted b/ca/issuing.pem kn.pem"
check "... B unwrapped it from the RA and renewed for the client" grep -q 'nested' cb1.err

# ---- raVerified: the RA checks the POP, B takes its word ----
$C -server 127.0.0.1:$AP/.well-known/cmp/p/rav -cmd ir $MAC -newkey k.key -subject /CN=rav1 -certout rav1.pem >rav.log 2>&1
check "reprotect with ra_verified: B issues on the RA's raVerified" sh -c \
	"openssl verify -CAfile b/ca/root.pem -untrusted b/ca/issuing.pem rav1.pem && grep -q 'ra: issued: profile default subject CN=rav1' cb1.err"

# ---- mail in, legacy TCP CA upstream ----
mkdir -p mm
$C -server 127.0.0.1:9 -cmd ir $MAC -newkey k.key -subject /CN=bymail -implicit_confirm -reqout bymail.der -certout x.pem >/dev/null 2>&1
python3 - <<'EOF' >"a/Maildir/tmp/m1" && mv a/Maildir/tmp/m1 a/Maildir/new/m1
from email.message import EmailMessage
m = EmailMessage()
m["From"], m["To"], m["Subject"], m["Message-ID"] = "site@site.test", "ca@cmp.test", "enrol", "<m1@site.test>"
m.set_content("please")
m.add_attachment(open("bymail.der", "rb").read(), maintype="application", subtype="pkixcmp", filename="bymail.pki")
print(m.as_string())
EOF
qfile() { find a/mail-queue -maxdepth 1 -type f ! -name '.*' | head -1; }
i=0; while [ $i -lt 150 ] && [ -z "$(qfile)" ]; do sleep 0.1; i=$((i + 1)); done
Q=$(qfile)
python3 - "$Q" <<'EOF'
import email, email.policy, sys
raw = open(sys.argv[1], "rb").read()
raw = raw.split(b"\n", 1)[1]        # the queue's envelope line
m = email.message_from_bytes(raw, policy=email.policy.default)
for p in m.walk():
    if p.get_content_type() == "application/pkixcmp":
        open("bymail.rsp", "wb").write(p.get_payload(decode=True))
EOF
$C -cmd ir $MAC -newkey k.key -subject /CN=bymail -implicit_confirm -rspin bymail.rsp -certout bymail.pem >bymail.log 2>&1
check "a mailed request goes to the legacy CA over TCP; the reply mail carries the certificate" verify_b bymail.pem
check "... B got it over TCP" sh -c "grep -q 'tcp .*subject CN=bymail' cb1.err"

# ---- upstream down: a clean error, quickly ----
t0=$(date +%s)
"$R" ir --server "$AH/p/down" --ref demo --secret pass:$S --newkey ec:P-256 --subject /CN=down --out d.pem \
	--key-out d.key --timeout 20 2>down.err
rc=$?
t1=$(date +%s)
check "an upstream that is down: systemUnavail naming the route, within its timeout" sh -c \
	"test $rc -eq 5 && grep -q 'systemUnavail' down.err && grep -q 'route down' down.err && test $((t1 - t0)) -le 10"

# ---- HTTP in, offline CA by files: waiting, polls, certificate, certConf ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out off.key
$C -server 127.0.0.1:$AP/.well-known/cmp -cmd ir $MAC -newkey off.key -subject /CN=offline-1 -certout off1.pem \
	-total_timeout 60 >off.log 2>&1
check "openssl cmp -> A -> files -> B (offline): the client gets the certificate after polling" verify_b off1.pem
tid=$(sed -n 's/.*tid=\([0-9a-f]*\) demo: forwarded: to file:.*slow.*/\1/p' ra1.err | head -1)
check "... A answered 'waiting' first (the request file was not answered yet)" test -n "$tid"
check "... the certConf reached B through the files: B confirmed" sh -c \
	"grep -q 'tid=$tid ra: confirmed' cb1.err"

# ---- an offline upstream that answers with junk ----
"$R" ir --server "$AH/p/hostile" --ref demo --secret pass:$S --newkey ec:P-256 --subject /CN=hostile \
	--out hostile.pem --total-timeout 60 --max-wait 1 2>hostile.err &
CL=$!
i=0; while [ $i -lt 100 ] && [ -z "$(ls hostile/out)" ]; do sleep 0.1; i=$((i + 1)); done
F=$(ls hostile/out | head -1)
head -c 3000 /dev/urandom >"hostile/in/${F%.pki}.rsp.pki"
wait $CL
check "an answer file of junk from the upstream: the client gets a CMP error (systemFailure), not a hang" sh -c \
	"test $? -eq 5 && grep -q 'systemFailure' hostile.err && grep -q 'not a PKIMessage' hostile.err \
	 && test -z \"\$(ls hostile/in)\""

# ---- clients on media A can write to get the offline CA's answer pushed ----
$C -server 127.0.0.1:9 -cmd ir $MAC -newkey k.key -subject /CN=offline-push -implicit_confirm -reqout push.der \
	-certout x.pem >/dev/null 2>&1
cp push.der a/filedrop/inbox/.push.tmp && mv a/filedrop/inbox/.push.tmp a/filedrop/inbox/push.pki
wait_for a/filedrop/outbox/push.2.rsp.pki
check "a request file for the offline CA: 'waiting' at once in push.rsp.pki" sh -c \
	"'$R' dump a/filedrop/outbox/push.rsp.pki | grep -q waiting"
check "... then the CA's answer pushed as push.2.rsp.pki, which openssl cmp -rspin accepts" sh -c \
	"$C -cmd ir $MAC -newkey k.key -subject /CN=offline-push -implicit_confirm -rspin a/filedrop/outbox/push.2.rsp.pki \
	 -certout push.pem >/dev/null 2>&1 && openssl verify -CAfile b/ca/root.pem -untrusted b/ca/issuing.pem push.pem"
$C -server 127.0.0.1:9 -cmd ir $MAC -newkey k.key -subject /CN=offline-mail -implicit_confirm -reqout pm.der \
	-certout x.pem >/dev/null 2>&1
python3 - <<'EOF' >"a/Maildir/tmp/m2" && mv a/Maildir/tmp/m2 a/Maildir/new/m2
from email.message import EmailMessage
m = EmailMessage()
m["From"], m["To"], m["Subject"], m["Message-ID"] = "site@site.test", "ca@cmp.test", "enrol later", "<m2@site.test>"
m.set_content("please")
m.add_attachment(open("pm.der", "rb").read(), maintype="application", subtype="pkixcmp", filename="pm.pki")
print(m.as_string())
EOF
i=0; while [ $i -lt 300 ] && [ -z "$(ls a/mail-queue | grep '^pushed-')" ]; do sleep 0.1; i=$((i + 1)); done
P=$(ls a/mail-queue | grep '^pushed-' | head -1)
python3 - "a/mail-queue/$P" <<'EOF'
import email, email.policy, sys
raw = open(sys.argv[1], "rb").read().split(b"\n", 1)[1]
m = email.message_from_bytes(raw, policy=email.policy.default)
open("pm.mail", "wb").write(raw)
for p in m.walk():
    if p.get_content_type() == "application/pkixcmp":
        open("pm.rsp", "wb").write(p.get_payload(decode=True))
EOF
check "a mailed request for the offline CA: the CA's answer comes as a second reply mail, threaded" sh -c \
	"grep -q '^In-Reply-To: <m2@site.test>' pm.mail && $C -cmd ir $MAC -newkey k.key -subject /CN=offline-mail \
	 -implicit_confirm -rspin pm.rsp -certout pm.pem >/dev/null 2>&1 && openssl verify -CAfile b/ca/root.pem -untrusted b/ca/issuing.pem pm.pem"

# ---- a batch of 20 to the offline CA as one nested file ----
n=0
while [ $n -lt 20 ]; do
	n=$((n + 1))
	"$R" ir --server "$AH/p/batch" --ref demo --secret pass:$S --newkey ec:P-256 --subject /CN=batch$n \
		--implicit-confirm --out b$n.pem --total-timeout 120 --max-wait 1 >/dev/null 2>bat$n.err &
	eval "BC$n=\$!"
done
n=0; ok=0
while [ $n -lt 20 ]; do n=$((n + 1)); eval "wait \$BC$n" && verify_b b$n.pem >/dev/null 2>&1 && ok=$((ok + 1)); done
check "20 clients -> A -> one nested file -> B: each client gets its own certificate ($ok of 20)" test $ok -eq 20
check "... B got exactly one file (the batch) and answered it with one file" sh -c \
	"test \$(ls batch/archive | wc -l) -eq 1 && ls batch/archive | grep -q '^batch-'"
check "... the batch was nested and protected by the RA (B logs one batch of 20)" \
	grep -q 'batch of 20 messages answered' cb1.err

# ---- the local CA still answers what a route keeps here ----
"$R" ir --server "$AH" --ref demo --secret pass:$S --profile manual --newkey ec:P-256 --subject /CN=local1 \
	--out local1.pem --total-timeout 2 2>local.err
rc=$?
tid=$(sed -n 's/.*transaction \([0-9a-f]*\)$/\1/p' local.err)
check "a route with ca = default keeps a request at A (waiting there for A's operator)" sh -c \
	"test $rc -eq 6 && test -n '$tid' && '$R' -c a/cmprouter.conf list --pending | grep -q '^$tid' && ! grep -q 'CN=local1' cb1.err"

# ---- a restart continues what is pending upstream ----
"$R" ir --server "$AH" --ref demo --secret pass:$S --newkey ec:P-256 --subject /CN=offline-restart \
	--out or.pem --total-timeout 2 --state or.state 2>or1.err
check "waiting for the offline CA, the client stops (exit 6, state saved)" test $? -eq 6 -o -s or.state
kill -9 $PID; wait $PID 2>/dev/null
start_daemon ra2 http -c a/cmprouter.conf $ARGS
AP=$PORT
sed -i "s|^server=.*|server=http://127.0.0.1:$AP/.well-known/cmp|" or.state
"$R" poll --state or.state --secret pass:$S --total-timeout 60 --max-wait 1 2>or2.err
check "A killed -9 and restarted: the request still reaches the CA, the client's poll gets it" verify_b or.pem

kill $PID; wait $PID 2>/dev/null

# ---- an RA without a CA of its own (cmprouterd(8) RA ONLY): routes only ----
mkdir -p c
cat >c/cmprouter.conf <<EOF
[router]
data_dir = $TMP/c
trusted = $TMP/b/ca/root.pem
untrusted = $TMP/b/ca/issuing.pem

[client demo]
reference = demo
secret = pass:$S

[route to-b]
subject = CN=ra-only-*
upstream = $BH
protection = reprotect
ra_cert = $TMP/ra.pem
ra_key = $TMP/ra.key
ra_chain = $TMP/b/ca/issuing.pem
trusted = $TMP/b/ca/root.pem
EOF
chmod 600 c/cmprouter.conf
start_daemon rc1 http -c c/cmprouter.conf $ARGS
CH="http://127.0.0.1:$PORT/.well-known/cmp"
check "a configuration with routes and no [ca] is complete: the RA starts" test -n "$PORT"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rao1.key 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rao2.key 2>/dev/null
$C -cmd ir -server "$CH" $MAC -newkey rao1.key -subject /CN=ra-only-1 -implicit_confirm -certout rao1.pem \
	-rspout rao1.rsp >rao1.log 2>&1
check "RA only: a MAC client enrolls through it (the certificate comes from B)" verify_b rao1.pem
$C -cmd cr -server "$CH" -cert rao1.pem -key rao1.key -extracerts b/ca/issuing.pem -newkey rao2.key \
	-subject /CN=ra-only-2 -implicit_confirm -trusted b/ca/root.pem -untrusted b/ca/issuing.pem \
	-certout rao2.pem -rspout rao2.rsp >rao2.log 2>&1
check "RA only: a signature client enrolls through it (reprotect)" verify_b rao2.pem
"$R" dump --json rao2.rsp >rao2.json
check "  its answer is signed by the RA's ra_cert (sender CN=ra.example), not by B's CA" \
	grep -q '"sender":"CN=ra.example"' rao2.json
$C -cmd cr -server "$CH" -cert rao1.pem -key rao1.key -extracerts b/ca/issuing.pem -newkey rao2.key \
	-subject /CN=elsewhere -implicit_confirm -trusted b/ca/root.pem -untrusted b/ca/issuing.pem \
	-certout rao3.pem -rspout rao3.rsp >rao3.log 2>&1
"$R" dump --json rao3.rsp >rao3.json
check "RA only: a request no route takes is refused, saying why" \
	grep -q 'no route takes this request and this router has no CA of its own' rao3.json
check "  in an error answer signed with ra_cert, which the client verified" sh -c \
	"grep -q '\"sender\":\"CN=ra.example\"' rao3.json && grep -q 'no route takes' rao3.log"
"$R" ir --server "$CH" --ref demo --secret pass:$S --trusted b/ca/root.pem --newkey central \
	--subject /CN=ra-only-3 --out rao4.pem 2>rao4.err
check "RA only: a request for central key generation is not reprotected (RFC 9483 5.2.3.2): refused, saying why" \
	sh -c "test $? -eq 5 && grep -q 'central key generation keeps its protection' rao4.err"
kill $PID; wait $PID 2>/dev/null
rc=$?
check "the RA-only daemon stops cleanly (exit $rc)" test $rc -eq 0

check "no sanitizer report from any daemon (leaks, overflows, UB)" \
	sh -c "! cat ra*.err cb*.err rc*.err down.err hostile.err bat*.err or*.err local.err | grep -q 'Sanitizer\|runtime error'"
