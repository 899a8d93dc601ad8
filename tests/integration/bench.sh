#!/bin/sh
# cmprouter bench (the load generator) against cmprouterd (embedded default)
# over HTTP with and without keep-alive and over TCP, for ir, cr, p10cr and
# genm, with MAC, PBMAC1 and signature protection; its crypto bound; against OpenSSL's mock server (`openssl cmp -port`), a server we did
# not write; and its errors: a wrong secret is counted by failInfo, an
# unreachable server ends it at once. Figures are never asserted here (see
# bench/): only that what it counts is what the server did.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"

start_daemon d0 http --data-dir "$TMP/data" --http 127.0.0.1:0
kill $PID; wait $PID 2>/dev/null
cat >>data/cmprouter.conf <<EOF

[client signer]
cert_subject = CN=benchsig
profiles = default
EOF
start_daemon d1 http -c data/cmprouter.conf --http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0
HP=$PORT
TP=$(sed -n 's/^cmprouterd: tcp listening on port \([0-9]*\)$/\1/p' d1.out)
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
H="http://127.0.0.1:$HP/.well-known/cmp"
MAC="--ref demo --secret pass:$SECRET"
check "the daemon runs (HTTP $HP, TCP $TP)" test -n "$HP" -a -n "$TP"
# json FILE EXPR: a Python expression over the JSON report j holds
json() { python3 -c "import json,sys; j=json.load(open('$1')); sys.exit(0 if ($2) else 1)" || { echo "# $1:"; sed 's/^/#   /' "$1"; return 1; }; }

"$R" bench --server "$H" $MAC --clients 4 --transactions 40 --json >b1.json 2>b1.err
check "ir over HTTP keep-alive, 4 clients: 40 transactions, no error" json b1.json \
	"j['transactions'] == 40 and j['errors'] == {} and j['tps'] > 0 and 0 < j['latency_ms']['p50'] <= j['latency_ms']['p99'] <= j['latency_ms']['max']"
check "... the server confirmed 40 certificates for the bench clients" sh -c \
	"test \$('$R' -c data/cmprouter.conf certs --subject bench --json | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin) if c.get(\"confirmed\")))') -eq 40"

# clients spread over threads, each with its own loop: every transaction
# counted once, the progress line of them all
"$R" bench --server "$H" $MAC --clients 5 --threads 3 --transactions 17 >bt.out 2>bt.err
check "5 clients on 3 threads: exactly 17 transactions, no error, progress on stderr" sh -c \
	"grep -q '^  17 transactions in ' bt.out && grep -q '^  errors: 0\$' bt.out && grep -q '5 clients on 3 threads' bt.err" \
	bt.out bt.err
"$R" bench --server "$H" $MAC --clients 2 --transactions 10 --keep-alive off --json >b2.json 2>b2.err
check "keep-alive off: 10 transactions, no error" json b2.json "j['transactions'] == 10 and j['errors'] == {} and j['keep_alive'] is False"

"$R" bench --server "tcp://127.0.0.1:$TP" $MAC --clients 2 --transactions 10 --json >b3.json 2>b3.err
check "ir over TCP: 10 transactions, no error" json b3.json "j['transactions'] == 10 and j['errors'] == {}"

for op in cr p10cr genm; do
	"$R" bench --server "$H" $MAC --op $op --clients 2 --transactions 6 --json >b_$op.json 2>b_$op.err
	check "$op: 6 transactions, no error" json b_$op.json "j['transactions'] == 6 and j['errors'] == {} and j['op'] == '$op'"
done

"$R" bench --server "$H" $MAC --protection pbmac1 --clients 1 --transactions 3 --json >b4.json 2>b4.err
check "PBMAC1 protection: 3 transactions, no error" json b4.json "j['transactions'] == 3 and j['errors'] == {}"

"$R" ir --server "$H" $MAC --newkey ec:P-256 --subject /CN=benchsig --out sig.pem --chain-out sig.chain 2>sig.err \
	&& cat sig.pem sig.chain >sigfull.pem
"$R" bench --server "$H" --protection sig --cert sigfull.pem --key sig.key --trusted data/ca/root.pem \
	--clients 2 --transactions 6 --json >bs.json 2>bs.err
check "signature protection (a client certificate, answers chained to --trusted): 6 transactions" \
	json bs.json "j['transactions'] == 6 and j['errors'] == {} and j['protection'] == 'sig'"

"$R" bench --server "$H" $MAC --op kur --trusted data/ca/root.pem --clients 2 --transactions 6 --json >bk.json 2>bk.err
check "kur: each client renews its own certificate (enrolled first), signed with it: 6 transactions" json bk.json \
	"j['transactions'] == 6 and j['errors'] == {} and j['protection'] == 'sig'"
revoked() { "$R" -c data/cmprouter.conf certs --json | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin) if c["status"] != "valid"))'; }
before=$(revoked)
"$R" bench --server "$H" $MAC --op rr --trusted data/ca/root.pem --clients 2 --transactions 6 --json >br.json 2>br.err
after=$(revoked)
check "rr: 6 certificates enrolled first, then revoked: 6 transactions" json br.json \
	"j['transactions'] == 6 and j['errors'] == {}"
check "... 6 more certificates revoked in the server's store ($before before, $after after)" test $((after - before)) -eq 6
"$R" bench --server "$H" $MAC --op rr --clients 2 --duration 1 >brx.out 2>brx.err
check "rr without --transactions: a usage error" sh -c "test $? -eq 2 && grep -q 'needs --transactions' brx.err"

"$R" bench --server "$H" $MAC --implicit-confirm --clients 1 --transactions 3 --json >b5.json 2>b5.err
check "implicitConfirm granted: a transaction is one message" json b5.json \
	"j['transactions'] == 3 and abs(j['messages_per_s'] - j['tps']) < 0.01 * j['tps'] + 0.01"

"$R" bench --server "$H" --ref demo --secret pass:wrong --clients 2 --duration 2 >b6.out 2>b6.err
check "a wrong secret: exit 1, no transaction, the server's failInfo named" sh -c \
	"test $? -eq 1 && grep -q 'no transaction succeeded; first error: rejected' b6.err"
"$R" bench --server "$H" --ref demo --secret pass:wrong --clients 2 --duration 2 --json --transactions 4 >b7.json 2>b7.err
check "... counted by failInfo in the JSON report too" sh -c "grep -q 'badMessageCheck' b7.err b7.json"

"$R" bench --server http://127.0.0.1:9/cmp $MAC --clients 2 --duration 30 >b8.out 2>b8.err
check "an unreachable server: exit 1 with the transport error, long before the duration" sh -c \
	"test $? -eq 1 && grep -q 'first error: transport' b8.err"
check "usage errors exit 2 and say what is wrong" sh -c \
	"'$R' bench --server '$H' --op kux 2>u.err; test \$? -eq 2 && grep -q 'give ir, cr, p10cr, kur, genm or rr' u.err"

# ---- the crypto bound: the same transactions in memory, every check passing ----
for op in ir genm; do
	"$R" bench --crypto-bound --op $op --ref r --secret pass:x --clients 2 --duration 1 --json >cb_$op.json 2>cb_$op.err
	check "crypto bound of $op: transactions done, none failed a check" json cb_$op.json \
		"j['server'] == 'crypto-bound' and j['transactions'] > 0 and j['errors'] == {}"
done
"$R" bench --crypto-bound --protection pbmac1 --ref r --secret pass:x --clients 1 --duration 1 --json >cb_p.json 2>cb_p.err
check "crypto bound with PBMAC1" json cb_p.json "j['transactions'] > 0 and j['errors'] == {}"

# ---- OpenSSL's mock server: a server we did not write ----
# (start_mock makes the test PKI; its mock polls, which the bench does not
# measure: it goes, and one that answers at once takes its place)
start_mock mocksecret
kill ${PIDS##* } 2>/dev/null
openssl cmp -config /dev/null -port 0 -srv_ref mock -srv_secret pass:mocksecret -srv_cert msrv.crt \
	-srv_key msrv.key -rsp_cert mee.crt -rsp_capubs mca.crt >mock2.out 2>mock2.err &
PIDS="$PIDS $!"
i=0; MP2=""
while [ $i -lt 100 ] && [ -z "$MP2" ]; do
	MP2=$(sed -n 's/^ACCEPT \[::\]:\([0-9]*\).*/\1/p' mock2.out); sleep 0.1; i=$((i + 1))
done
"$R" bench --server "http://127.0.0.1:$MP2/" --ref mock --secret pass:mocksecret --clients 1 --transactions 5 --json \
	>b9.json 2>b9.err
check "against OpenSSL's mock server: 5 transactions, no error" json b9.json "j['transactions'] == 5 and j['errors'] == {}"

kill -TERM $PID
i=0; while kill -0 $PID 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
# in sanitizer builds leaks and UB are reported at exit; nothing may show
check "no sanitizer report from the daemon or any bench run (leaks, overflows, UB)" \
	sh -c "! grep -l 'Sanitizer\|runtime error' d0.err d1.err b*.err cb_*.err"
