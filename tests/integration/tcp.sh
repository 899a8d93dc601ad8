#!/bin/sh
# cmprouterd over raw TCP (TCP-Message version 10 and RFC 2510 framing,
# cmp-wire.md 1). Requests are made by `openssl cmp -reqout`, carried by a
# test peer written for the suite (tcppeer.py, byte-level framing), and the
# answers accepted by `openssl cmp -rspin`. Loopback only; waits are bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"
C="openssl cmp -config /dev/null -batch"
P="python3 $TOP/tests/integration/tcppeer.py"
DEAD=127.0.0.1:9      # nothing listens there: the client writes -reqout and fails

start_daemon d1 tcp --data-dir "$TMP/data" --http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0
TPORT=$PORT
check "cmprouterd --tcp listens (embedded default has [listen tcp])" \
	sh -c "test -n '$TPORT' && grep -q '^\[listen tcp\]' data/cmprouter.conf"
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
MAC="-ref demo -secret pass:$SECRET -recipient /CN=cmprouter_demo_issuing_CA"

for n in whole split pipe1 pipe2 close old half many; do mkreq $n; done

$P "$TPORT" whole whole.req whole.rsp >r.log 2>&1
check "pkiReq -> pkiRep (type 5, DER); the connection stays open" grep -q "whole type=5 flags=0 der=1 open=1" r.log
check "openssl cmp -rspin accepts the ip carried over TCP" accepted whole
$P "$TPORT" split split.req split.rsp >r.log 2>&1
check "a frame split at every byte is reassembled (pkiRep)" grep -q "split type=5" r.log
check "... and its answer is accepted" accepted split
$P "$TPORT" pipelined pipe1.req pipe2.req pipe1.rsp pipe2.rsp >r.log 2>&1
check "two coalesced (pipelined) frames: two pkiReps in order" grep -q "pipelined types=5,5" r.log
check "... the first answer is accepted" accepted pipe1
check "... the second answer is accepted" accepted pipe2
$P "$TPORT" close close.req close.rsp >r.log 2>&1
check "close flag on the request: echoed on the pkiRep, then the server closes" \
	grep -q "close type=5 flags=1 closed=1" r.log
check "... and the answer is accepted" accepted close
$P "$TPORT" rfc2510 old.req old.rsp >r.log 2>&1
check "RFC 2510 framing (5-byte header) is answered in RFC 2510 framing (finalMsgRep)" \
	grep -q "rfc2510 type=5 der=1" r.log
check "... and the answer is accepted" accepted old
$P "$TPORT" halfclose half.req half.rsp >r.log 2>&1
check "a request followed by FIN (half-close) is still answered, then closed" \
	grep -q "halfclose type=5 closed=1" r.log
check "... and the answer is accepted" accepted half
$P "$TPORT" garbage garbage.rsp >r.log 2>&1
check "an undecodable pkiReq gets a CMP error inside pkiRep, not errorMsgRep" \
	sh -c "grep -q 'garbage type=5' r.log && '$R' dump garbage.rsp | grep -q 'badDataFormat\|badRequest'"
$P "$TPORT" unknown-type >r.log 2>&1
check "unknown type 7: errorMsgRep InvalidMessageType (0x0201, data 07)" \
	grep -q "unknown-type type=6 code=0201 data=07" r.log
check "... the connection stays usable: pollReq with an unknown reference -> InvalidPollID" \
	grep -q "pollid=0202/01020304" r.log
$P "$TPORT" version11 >r.log 2>&1
check "version 11: errorMsgRep VersionNotSupported (0x0101, data 10), closed" \
	grep -q "version11 type=6 code=0101 data=0a closed=1" r.log
$P "$TPORT" oversized >r.log 2>&1
check "a length above max_frame: errorMsgRep GeneralClientError naming the limit, closed" \
	grep -q "oversized type=6 code=0200 closed=1 text=frame_larger_than_the_maximum_of_1048576" r.log
$P "$TPORT" many 500 many.req many.rsp >r.log 2>&1
check "500 concurrent connections (from 8 addresses) are all answered" grep -q "many answered=500 of 500 last=5" r.log
check "... and a real request among them is accepted" accepted many
check "the daemon still serves after all of that" kill -0 $PID

# ---- the client side: cmprouter send tcp:// ----
for n in cli1 cli2 cli3 cli4 cli5; do mkreq $n; done
"$R" send "tcp://127.0.0.1:$TPORT" --in cli1.req --out cli1.rsp >s.log 2>&1
check "cmprouter send tcp:// (version 10) gets the ip" accepted cli1
"$R" send "tcp://127.0.0.1:$TPORT" --tcp-framing 2510 --in cli2.req --out cli2.rsp >s.log 2>&1
check "cmprouter send --tcp-framing 2510 gets the ip" accepted cli2
# the EE client over TCP: ir and its certConf on one connection (kept open
# by the server: the client reuses it for the transaction's next message)
"$R" ir --server "tcp://127.0.0.1:$TPORT" --ref demo --secret "pass:$SECRET" --newkey ec:P-256 --subject /CN=tcpkeep \
	--out tcpkeep.pem --trusted data/ca/root.pem 2>tcpkeep.err
rc=$?
check "cmprouter ir over tcp://: ir, ip, certConf, pkiConf" sh -c "test $rc -eq 0 && test -s tcpkeep.pem || { cat tcpkeep.err; exit 1; }"
KTID=$(sed -n 's/.* tid=\([0-9a-f]*\) demo: issued: .*CN=tcpkeep .*/\1/p' d1.err)
check "... both messages came by the same connection (one peer port for issued and confirmed)" sh -c \
	"test -n '$KTID' && test \$(grep 'tid=$KTID' d1.err | grep -c 'issued:\|confirmed:') -eq 2 \
	 && test \$(grep 'tid=$KTID' d1.err | grep -o 'tcp 127.0.0.1:[0-9]*' | sort -u | wc -l) -eq 1 \
	 || { grep 'tid=$KTID' d1.err; exit 1; }"
# serve MODE NAME: a fake legacy server (the test peer) in front of the daemon
serve() {
	rm -f port.$1
	$P "$TPORT" serve "$1" "port.$1" >"served.$1" 2>&1 &
	PIDS="$PIDS $!"
	i=0; while [ ! -s "port.$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	"$R" send "tcp://127.0.0.1:$(cat port.$1)" --timeout 20 $3 --in "$2.req" --out "$2.rsp" >"send.$1" 2>&1
	echo "rc=$?" >>"send.$1"
	wait $! 2>/dev/null
}
serve poll cli3
check "transport-level polling: pollRep (close) -> reconnect, wait, pollReq with the reference" \
	grep -q "served poll first=10/0 poll=10/2 ref=2a waited=1" served.poll
check "... and the answer after polling is accepted" accepted cli3
serve poll2510 cli4 "--tcp-framing 2510"
check "RFC 2510 polling: absolute check-back time honoured, pollReq in RFC 2510 framing" \
	grep -q "served poll2510 first=0/0 poll=0/2 ref=2a waited=1" served.poll2510
check "... and the answer is accepted" accepted cli4
serve type0 cli5
check "an answer typed 0 (cryptlib) is accepted as pkiRep" accepted cli5
serve finrep cli5
check "finRep with close: no CMP answer, exit 0" sh -c "grep -q 'finRep (no CMP answer)' send.finrep && grep -q 'rc=0' send.finrep"
serve error cli5
check "errorMsgRep: the client fails naming code and text" \
	sh -c "grep -q 'errorMsgRep 0x0300 GeneralServerError: CA database offline' send.error && grep -q 'rc=3' send.error"
"$R" send "tcp://127.0.0.1:9" --in cli5.req --out x.rsp >s.log 2>&1
check "connection refused: a clear error" grep -q "cannot connect to 127.0.0.1:9" s.log
check "metrics count TCP requests" sh -c "curl -s http://127.0.0.1:\$(sed -n 's/^cmprouterd: admin listening on port //p' d1.out)/metrics | grep -q 'cmprouter_requests_total{medium=\"tcp\",outcome=\"answered\"} [1-9]'"
kill -TERM $PID
i=0; while kill -0 $PID 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "SIGTERM: the daemon stops" sh -c "! kill -0 $PID"

# ---- timeouts, from [listen tcp] in the file ----
sed -i 's/^\[listen tcp\]$/[listen tcp]\nfirst_byte_timeout = 2\nread_timeout = 2\nidle_timeout = 3/' data/cmprouter.conf
start_daemon d2 tcp -c data/cmprouter.conf --admin 127.0.0.1:0
TPORT=$PORT
$P "$TPORT" silent >r.log 2>&1
check "a connection that sends nothing is cut off after first_byte_timeout (2 s), not idle_timeout" \
	sh -c "grep -q 'silent closed=1 after=[1-2]\$' r.log || { cat r.log; exit 1; }"
check "... and the log says so" grep -q "tcp 127.0.0.1:[0-9]*: first byte timeout, closing" d2.err
$P "$TPORT" incomplete >r.log 2>&1
check "a frame that never completes is cut off after read_timeout (2 s)" \
	sh -c "grep -q 'incomplete closed=1 after=[1-4]\$' r.log"
$P "$TPORT" trickle >r.log 2>&1
check "one byte per second does not extend read_timeout (slowloris)" \
	sh -c "grep -q 'trickle closed=1 after=[1-5]\$' r.log"
check "the timeouts are logged with the peer" grep -q "tcp 127.0.0.1:[0-9]*: read (incomplete frame) timeout" d2.err
kill -TERM $PID
i=0; while kill -0 $PID 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done

# ---- transport-level polling (pollRep / pollReq), surviving a restart ----
sed -i 's/^\[listen tcp\]$/[listen tcp]\npoll_after_ms = 0\npoll_check_after = 1/' data/cmprouter.conf
start_daemon d3 tcp -c data/cmprouter.conf --admin 127.0.0.1:0
TPORT=$PORT
for n in pol1 pol2 pol3; do mkreq $n; done
$P "$TPORT" pollflow pol1.req pol1.rsp >r.log 2>&1
check "poll_after_ms: pkiReq -> pollRep (check back in 1 s); pollReq -> pkiRep" \
	grep -q "pollflow first=1 after=1 final=5" r.log
check "... and the answer fetched by polling is accepted" accepted pol1
"$R" send "tcp://127.0.0.1:$TPORT" --in pol2.req --out pol2.rsp >s.log 2>&1
check "our client and our server: a transport-level polling exchange end to end" accepted pol2
$P "$TPORT" pollstart pol3.req >r.log 2>&1
REF=$(sed -n 's/^pollstart type=1 ref=\([0-9a-f]*\)$/\1/p' r.log)
# the references are in the store (table deferred): the request before the pollRep leaves
check "the request behind a pollRep is in the store before the pollRep leaves" \
	sh -c "test -n '$REF' && test \"\$(sqlite3 data/cmprouter.db 'SELECT length(req) FROM deferred WHERE ref=$((0x${REF:-0}))')\" -gt 0"
kill -9 $PID
i=0; while kill -0 $PID 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
start_daemon d4 tcp -c data/cmprouter.conf --admin 127.0.0.1:0
TPORT=$PORT
$P "$TPORT" pollonly "${REF:-0}" pol3.rsp >r.log 2>&1
check "after kill -9 and a restart, pollReq with the old reference gets the answer" \
	grep -q "pollonly final=5" r.log
check "... and it is accepted" accepted pol3
# the answer lost in the crash (only the request on disk): run again on pollReq
mkreq pol4
$P "$TPORT" pollstart pol4.req >r.log 2>&1
REF4=$(sed -n 's/^pollstart type=1 ref=\([0-9a-f]*\)$/\1/p' r.log)
kill -9 $PID
i=0; while kill -0 $PID 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# as if the daemon had died between the request and its answer
sqlite3 data/cmprouter.db "UPDATE deferred SET state=0, answer=NULL WHERE ref=$((0x${REF4:-0}))"
start_daemon d5 tcp -c data/cmprouter.conf --admin 127.0.0.1:0
TPORT=$PORT
$P "$TPORT" pollonly "${REF4:-0}" pol4.rsp >r.log 2>&1
# its answer reaches the store right after it went out (bounded wait)
i=0
while [ $i -lt 100 ] && [ "$(sqlite3 data/cmprouter.db "SELECT state FROM deferred WHERE ref=$((0x${REF4:-0}))" 2>/dev/null)" != 1 ]; do
	sleep 0.1; i=$((i + 1))
done
check "a reference whose answer was lost is answered by running its stored request again" \
	sh -c "grep -q 'pollonly final=5' r.log && test \"\$(sqlite3 data/cmprouter.db 'SELECT state FROM deferred WHERE ref=$((0x${REF4:-0}))')\" = 1"
check "... the core answers the retransmission and the client accepts it" accepted pol4
kill -TERM $PID
i=0; while kill -0 $PID 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# in sanitizer builds the daemon reports leaks and UB at exit; nothing may show
check "no sanitizer report from either daemon (leaks, overflows, UB)" \
	sh -c "! grep -q 'Sanitizer\|runtime error' d1.err d2.err d3.err d4.err d5.err"
