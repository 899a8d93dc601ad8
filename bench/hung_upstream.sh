#!/bin/sh
# One dead upstream must not stop the local CA (issue "The house"). The
# daemon gets two routes: label "default" to its own CA, label "hang" to an
# HTTP upstream that accepts connections and never answers. Phase 1: N
# clients enroll in a loop against the local CA for D seconds (baseline).
# Phase 2: the same, while H more clients send requests to the hanging
# route (each waits there the whole phase). Reported: enrollments/s of
# both phases and their ratio (target: at least 0.90). Clients are OpenSSL's
# own (`openssl cmp`, ir + certConf, PasswordBasedMac, P-256 keys made
# beforehand), on loopback.
#   bench/hung_upstream.sh [BUILD] [SECONDS] [CLIENTS] [HUNG]
#   (defaults: build/gcc, 20, 8, 48; builds build/gcc when it is the one)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build/gcc}
secs=${2:-20}
n=${3:-8}
hung=${4:-48}
case $build in /*) ;; *) build=$top/$build ;; esac
[ "$build" = "$top/build/gcc" ] && "$top/scripts/build" gcc >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cmpr-bench.XXXXXX")
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null || true; done; rm -rf "$tmp"' EXIT INT TERM
cd "$tmp"

# the upstream that never answers: accepts, reads, keeps every connection
cat >hang.py <<'PY'
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(512)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
def drain(c):
    try:
        while c.recv(65536): pass
    except OSError: pass
while True:
    c, _ = s.accept(); held.append(c)
    threading.Thread(target=drain, args=(c,), daemon=True).start()
PY
python3 hang.py hang.port &
pids="$pids $!"
i=0; while [ ! -s hang.port ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
HP=$(cat hang.port)

# the daemon: the embedded default, plus the two routes
"$build/cmprouterd" --data-dir data --http 127.0.0.1:0 >d.out 2>d.err &
pids="$pids $!"
i=0; while [ ! -s data/demo-client.txt ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill $! 2>/dev/null; wait $! 2>/dev/null || true
cat >>data/cmprouter.conf <<CONF

[route local]
label = default
ca = default

[route hang]
label = hang
upstream = http://127.0.0.1:$HP/cmp
timeout = 600
wait = 600
CONF
sed -i 's/^log_level.*//' data/cmprouter.conf
"$build/cmprouterd" -c data/cmprouter.conf --http 127.0.0.1:0 --log-level error >d.out 2>d.err &
DP=$!
pids="$pids $DP"
PORT=""
i=0
while [ -z "$PORT" ] && [ $i -lt 100 ]; do
	PORT=$(sed -n 's/^cmprouterd: http listening on port \([0-9]*\)$/\1/p' d.out); sleep 0.1; i=$((i + 1))
done
[ -n "$PORT" ] || { echo "hung_upstream: the daemon did not start" >&2; cat d.err >&2; exit 1; }
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
cmp() {
	openssl cmp -config /dev/null -batch -ref demo -secret "pass:$SECRET" \
		-recipient "/CN=cmprouter demo issuing CA" -unprotected_errors "$@"
}
for k in $(seq 1 "$n"); do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "k$k.key" 2>/dev/null
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out hk.key 2>/dev/null

# N loops enrolling at the local CA until the stop file appears; each
# success is one line in ok.K
enroll_loop() {
	k=$1
	while [ ! -e stop ]; do
		if cmp -server "127.0.0.1:$PORT/.well-known/cmp/p/default" -cmd ir -newkey "k$k.key" \
				-subject "/CN=b$k" -certout "c$k.pem" -msg_timeout 60 >/dev/null 2>&1; then
			echo x >>"ok.$k"
		fi
	done
}

# one phase: N loops for D seconds, then the count of enrollments, read
# after every loop has ended (the loops are waited for by pid)
phase() {
	rm -f stop ok.*
	loops=""
	for k in $(seq 1 "$n"); do enroll_loop "$k" </dev/null >/dev/null 2>&1 & loops="$loops $!"; done
	pids="$pids $loops"
	sleep "$secs"
	touch stop
	for p in $loops; do wait "$p" || true; done
	cat ok.* 2>/dev/null | wc -l
}

phase >base.n
base=$(cat base.n)
# H requests parked on the hanging upstream for the whole second phase
for h in $(seq 1 "$hung"); do
	(exec openssl cmp -config /dev/null -batch -ref demo -secret "pass:$SECRET" \
		-recipient "/CN=cmprouter demo issuing CA" -unprotected_errors \
		-server "127.0.0.1:$PORT/.well-known/cmp/p/hang" -cmd ir -newkey hk.key -subject "/CN=h$h" \
		-msg_timeout 600 -total_timeout 600 -certout "h$h.pem" </dev/null >/dev/null 2>&1) &
	pids="$pids $!"
done
# until every one of them is in (the upstream holds their connections)
i=0
while [ $i -lt 300 ] && [ "$(ss -Htn state established "( dport = :$HP )" | wc -l)" -lt "$hung" ]; do
	sleep 0.1; i=$((i + 1))
done
held=$(ss -Htn state established "( dport = :$HP )" | wc -l)
phase >with.n
with=$(cat with.n)
kill -TERM $DP 2>/dev/null || true

awk -v b="$base" -v w="$with" -v s="$secs" -v n="$n" -v h="$hung" -v held="$held" 'BEGIN {
	rb = b / s; rw = w / s; ratio = rb > 0 ? rw / rb : 0;
	printf "local CA, %d clients, %d s per phase (openssl cmp ir+certConf, PBM, P-256)\n", n, s;
	printf "  no upstream waiting:                    %7.1f enrollments/s\n", rb;
	printf "  %d requests parked on a hung upstream:  %7.1f enrollments/s (%d upstream connections held)\n", h, rw, held;
	met = ratio >= 0.90;
	printf "  ratio: %.2f (target >= 0.90): %s\n", ratio, met ? "met" : "NOT met";
	exit !met }'
