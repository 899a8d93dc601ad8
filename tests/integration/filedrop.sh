#!/bin/sh
# cmprouterd by files in local folders ([filedrop NAME], RFC 9483 6.4): one
# DER PKIMessage per .pki file. Requests come from `openssl cmp -reqout`,
# answers are accepted by `openssl cmp -rspin`; the whole delayed enrollment
# (waiting, pollReq, certConf) runs by files through filebridge.py. Crash
# safety: kill -9 at many points, two daemons on one inbox. Waits are bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"
C="openssl cmp -config /dev/null -batch"
DEAD=127.0.0.1:9
DAEMON_ARGS="--http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0"

start_daemon d1 http --data-dir "$TMP/data" $DAEMON_ARGS
check "the embedded default has a [filedrop default]" grep -q '^\[filedrop default\]' data/cmprouter.conf
check "... and cmprouterd reports it started" grep -q "^cmprouterd: filedrop default started" d1.out
IN=data/filedrop/inbox OUT=data/filedrop/outbox ERR=data/filedrop/errors ARC=data/filedrop/archive
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
MAC="-ref demo -secret pass:$SECRET -recipient /CN=cmprouter_demo_issuing_CA"

# drop FILE NAME: into the inbox the way a careful site does (tmp name, rename)
drop() { cp "$1" "$IN/$2.tmp" && mv "$IN/$2.tmp" "$IN/$2"; }

# ---- one request, one answer ----
mkreq one
drop one.req one.pki
wait_for "$OUT/one.rsp.pki"
check "a .pki request dropped in the inbox is answered in the outbox as one.rsp.pki" test -s "$OUT/one.rsp.pki"
check "openssl cmp -rspin accepts the answer file; the certificate verifies" accepted one "$OUT/one.rsp.pki"
check "the request is archived" test -s "$ARC/one.pki"
check "... and gone from the inbox" test ! -e "$IN/one.pki"
check "answer files get mode 0640" sh -c "stat -c %a '$OUT/one.rsp.pki' | grep -qx 640"
mkreq der
drop der.req der.der
wait_for "$OUT/der.rsp.pki"
check "*.der is accepted as well" accepted der "$OUT/der.rsp.pki"

# ---- a CMP message that fails the checks gets a CMP error answer ----
mkreq badmac
$C -cmd ir -server $DEAD -ref demo -secret pass:wrong -recipient /CN=x -newkey badmac.key \
	-subject /CN=badmac -reqout badmac.req -certout x.pem >/dev/null 2>&1
drop badmac.req badmac.pki
wait_for "$OUT/badmac.rsp.pki"
check "a request with a wrong MAC is answered with a CMP error (badMessageCheck) in the outbox" \
	sh -c "'$R' dump '$OUT/badmac.rsp.pki' | grep -q 'badMessageCheck'"

# ---- not CMP messages go to errors with a reason ----
printf 'hello, this is no PKIMessage\n' >"$IN/garbage.pki"
: >"$IN/empty.pki"
head -c 2000000 /dev/zero >"$IN/huge.pki"
ln -s /etc/passwd "$IN/link.pki"
cp one.req "$IN/wrong-extension.txt"
cp one.req hard.pki && ln hard.pki "$IN/hard.pki"
mkfifo "$IN/fifo.pki"
wait_for "$ERR/fifo.pki.reason"
for f in garbage empty huge link hard fifo; do wait_for "$ERR/$f.pki.reason"; done
wait_for "$ERR/wrong-extension.txt.reason"
check "garbage goes to errors: 'not a DER PKIMessage'" grep -q "not a DER PKIMessage" "$ERR/garbage.pki.reason"
check "an empty file goes to errors: 'empty file'" grep -q "empty file" "$ERR/empty.pki.reason"
check "a 2 MB file goes to errors: 'larger than max_size'" grep -q "larger than max_size" "$ERR/huge.pki.reason"
check "a symbolic link is never followed: moved to errors as a link" \
	sh -c "test -L '$ERR/link.pki' && grep -q 'symbolic link' '$ERR/link.pki.reason'"
check "a file with another name than the pattern goes to errors" \
	grep -q "does not match pattern" "$ERR/wrong-extension.txt.reason"
check "a hard-linked file is refused" grep -q "hard links" "$ERR/hard.pki.reason"
check "a FIFO does not block the daemon: moved to errors" grep -q "not a regular file" "$ERR/fifo.pki.reason"
check "none of them got an answer" sh -c "! ls '$OUT' | grep -q 'garbage\|empty\|huge\|link\|hard\|fifo\|wrong'"

# ---- files being written are left alone ----
cp one.req "$IN/inprogress.pki.tmp"
cp one.req "$IN/.hidden.pki"
mkreq slow
python3 - "$IN/slow.pki" slow.req <<'EOF' &
import sys, time
data = open(sys.argv[2], "rb").read()
with open(sys.argv[1], "wb") as f:
    for i in range(0, len(data), 16):      # 16 bytes every 100 ms: ~3 s
        f.write(data[i:i + 16]); f.flush(); time.sleep(0.1)
EOF
WR=$!
wait_for "$OUT/slow.rsp.pki"
wait $WR
check "a file written slowly (16 bytes per 100 ms) is taken only once complete: its answer is accepted" \
	accepted slow "$OUT/slow.rsp.pki"
check "... and it was not taken half-written (no error for it)" test ! -e "$ERR/slow.pki.reason"
check "*.tmp and dot-files are left in the inbox" \
	sh -c "test -e '$IN/inprogress.pki.tmp' && test -e '$IN/.hidden.pki'"
rm -f "$IN/inprogress.pki.tmp" "$IN/.hidden.pki"

# ---- names from untrusted hands ----
mkreq odd
ODD=$(printf 'odd name \047"$(x)\n\303\274.pki')
cp odd.req "$TMP/odd.tmp" && mv "$TMP/odd.tmp" "$IN/$ODD"
ODDRSP=$(printf 'odd name \047"$(x)\n\303\274.rsp.pki')
wait_for "$OUT/$ODDRSP"
cp "$OUT/$ODDRSP" odd.rsp           # -rspin takes a list: no spaces in its file names
check "a name with quotes, \$(), a newline and UTF-8 is answered under the matching name" \
	accepted odd odd.rsp
check "... and logged without the raw control characters" grep -q 'odd name .*?' d1.err
mkreq again
drop again.req one.pki
wait_for "$OUT/one.2.rsp.pki"
check "a second request with a name already answered gets one.2.rsp.pki (nothing overwritten)" \
	accepted again "$OUT/one.2.rsp.pki"
check "... and both requests are in the archive" sh -c "test -s '$ARC/one.pki' && test -s '$ARC/one.2.pki'"

# ---- the whole delayed enrollment by files: waiting, pollReq, certConf ----
# a second drop whose label selects the profile needing approval
kill $PID; wait $PID 2>/dev/null
sed -i 's/^data_dir = \.$/data_dir = .\ncheck_after = 1/' data/cmprouter.conf
cat >>data/cmprouter.conf <<'EOF'

[filedrop manual]
inbox = manual/inbox
outbox = manual/outbox
errors = manual/errors
archive = manual/archive
label = manual
rescan = 2
EOF
start_daemon d1b http -c data/cmprouter.conf $DAEMON_ARGS
MIN=data/manual/inbox MOUT=data/manual/outbox MARC=data/manual/archive
check "two [filedrop] groups run side by side" grep -q "^cmprouterd: filedrop manual started" d1b.out
python3 "$TOP/tests/integration/filebridge.py" "$MIN" "$MOUT" site >bridge.log 2>&1 &
BR=$!
PIDS="$PIDS $BR"
i=0; while [ $i -lt 50 ] && ! grep -q '^port' bridge.log; do sleep 0.1; i=$((i + 1)); done
BPORT=$(sed -n 's/^port //p' bridge.log)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out manual.key 2>/dev/null
$C -server 127.0.0.1:$BPORT/.well-known/cmp $MAC -cmd cr -newkey manual.key \
	-subject /CN=offline-manual -certout manual.pem -total_timeout 120 >manual.log 2>&1 &
CL=$!
tid=$(pending_tid data/cmprouter.conf)
check "a cr by file for a profile needing approval waits for the operator" test -n "$tid"
sleep 2             # the site polls by files meanwhile
check "approve from the CLI" "$R" -c data/cmprouter.conf approve "$tid"
i=0
while [ $i -lt 300 ] && kill -0 $CL 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
check "the site gets its certificate by files and it verifies" \
	sh -c "test -s manual.pem && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem manual.pem"
check "the exchange crossed the folders: cr, pollReq(s), certConf each as a file" \
	sh -c "test \$(grep -c 'bytes back' bridge.log) -ge 4"
check "the pollReq and certConf files are in the archive" sh -c \
	"for f in '$MARC'/site-*.pki; do '$R' dump --json \"\$f\"; done >m.json; grep -q pollReq m.json && grep -q certConf m.json"
check "the transaction is complete in the store" sh -c "'$R' -c data/cmprouter.conf show $tid | grep -q 'confirmed\|done\|complete'"
kill $BR 2>/dev/null

# ---- the metrics count file requests ----
APORT=$(sed -n 's/^cmprouterd: admin listening on port //p' d1b.out)
check "metrics: cmprouter_requests_total{medium=\"file\"} counts them" sh -c \
	"curl -s http://127.0.0.1:$APORT/metrics | grep -q 'medium=\"file\",outcome=\"answered\"} [1-9]'"

# ---- two daemons on one inbox: each file exactly once ----
kill $PID; wait $PID 2>/dev/null
rm -f "$OUT"/* "$ARC"/*
# its own instance on the inbox, and its own mail instance and queue (one
# sender per queue: two would send each reply twice)
sed 's/^\[filedrop default\]$/[filedrop default]\ninstance = second/; s/^\[mail\]$/[mail]\ninstance = second/; s/^queue = mail-queue$/queue = mail-queue-2/' \
	data/cmprouter.conf >data/second.conf
chmod 600 data/second.conf     # it holds the demo secret (cmprouterd(8) FILES)
start_daemon d2 http -c data/cmprouter.conf $DAEMON_ARGS
P2=$PID
start_daemon d3 http -c data/second.conf $DAEMON_ARGS
P3=$PID
start_daemon d3b http -c data/second.conf $DAEMON_ARGS
check "a second daemon with the same instance is refused (it would take the first one's files)" \
	wait_grep d3b.err 'in use by another process'
n=0
while [ $n -lt 30 ]; do n=$((n + 1)); mkreq two$n; done
n=0
while [ $n -lt 30 ]; do n=$((n + 1)); cp two$n.req "$IN/.two$n"; done
n=0
while [ $n -lt 30 ]; do n=$((n + 1)); mv "$IN/.two$n" "$IN/two$n.pki"; done
i=0
while [ $i -lt 300 ] && [ "$(ls "$OUT" | wc -l)" -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
check "30 requests, two daemons on one inbox: exactly 30 answers, none doubled" \
	sh -c "test \$(ls '$OUT' | wc -l) -eq 30 && ! ls '$OUT' | grep -q '\.2\.rsp'"
check "... both daemons took part" sh -c "grep -q 'answered' d2.err && grep -q 'answered' d3.err"
bad=0
n=0
while [ $n -lt 30 ]; do n=$((n + 1)); accepted two$n "$OUT/two$n.rsp.pki" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "... and every answer is accepted by openssl cmp" test $bad -eq 0
kill $P2 $P3; wait $P2 $P3 2>/dev/null

# ---- kill -9 at many points: nothing lost, nothing doubled ----
rm -f "$OUT"/*
total=0
round=0
while [ $round -lt 12 ]; do
	round=$((round + 1))
	start_daemon k$round http -c data/cmprouter.conf $DAEMON_ARGS
	n=0
	while [ $n -lt 4 ]; do
		n=$((n + 1)); total=$((total + 1))
		mkreq k$total
		drop k$total.req k$total.pki
	done
	# kill at a different moment each round: 0.3 s .. 1.4 s after the drops
	sleep "$(awk "BEGIN { print 0.2 + $round * 0.1 }")"
	kill -9 $PID; wait $PID 2>/dev/null
done
start_daemon kfinal http -c data/cmprouter.conf $DAEMON_ARGS
i=0
while [ $i -lt 600 ] && [ "$(ls "$OUT" | wc -l)" -lt $total ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
check "kill -9 in 12 rounds of 4 requests: every request has exactly one answer ($total)" \
	sh -c "test \$(ls '$OUT' | wc -l) -eq $total && ! ls '$OUT' | grep -q '\.2\.rsp'"
check "... the inbox and the processing folder are empty" \
	sh -c "test -z \"\$(find '$IN' -type f ! -name .lock)\""
bad=0
n=0
while [ $n -lt $total ]; do n=$((n + 1)); accepted k$n "$OUT/k$n.rsp.pki" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "... and all $total answers are accepted by openssl cmp (no replay errors)" test $bad -eq 0
check "... the restarts resumed claimed files" sh -c "cat k*.err kfinal.err | grep -q 'answered'"
kill $PID; wait $PID 2>/dev/null

# ---- a crash at each step of a file's life: finished exactly once after restart ----
rm -f "$OUT"/*
for point in claimed handled answered retired published; do
	mkreq c$point
	CMPR_TEST_CRASH_AT=$point; export CMPR_TEST_CRASH_AT
	start_daemon c$point http -c data/cmprouter.conf $DAEMON_ARGS
	unset CMPR_TEST_CRASH_AT
	drop c$point.req c$point.pki
	i=0; while [ $i -lt 100 ] && kill -0 $PID 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
	check "crash point '$point': the daemon died there (SIGKILL)" sh -c "! kill -0 $PID 2>/dev/null"
	wait $PID 2>/dev/null
	start_daemon c${point}2 http -c data/cmprouter.conf $DAEMON_ARGS
	wait_for "$OUT/c$point.rsp.pki"
	sleep 1
	check "... after the restart the request has exactly one answer and openssl cmp accepts it" \
		sh -c "test \$(ls '$OUT' | grep -c '^c$point\.') -eq 1 && test ! -e '$IN/c$point.pki'" 
	check "... (accepted)" accepted c$point "$OUT/c$point.rsp.pki"
	kill $PID; wait $PID 2>/dev/null
done

# ---- configuration errors are clear ----
sed 's/^\[filedrop default\]$/[filedrop bad]\ninbox = in\n[filedrop default]/' data/cmprouter.conf >data/bad.conf
chmod 600 data/bad.conf     # it holds the demo secret (cmprouterd(8) FILES)
"$BUILD/cmprouterd" -c data/bad.conf $DAEMON_ARGS >bad.out 2>bad.err
check "a [filedrop] without outbox and errors is refused naming file and line" \
	grep -q "bad.conf:[0-9]*: .*needs inbox, outbox and errors" bad.err
# in sanitizer builds the daemon reports leaks and UB at exit; nothing may show
check "no sanitizer report from any daemon (leaks, overflows, UB)" \
	sh -c "! cat '$TMP'/*.err | grep -q 'Sanitizer\|runtime error'"
