#!/bin/sh
# File descriptors: cmprouterd raises its soft RLIMIT_NOFILE to the hard
# limit, refuses a configuration whose max_connections do not fit below it,
# and when descriptors run out anyway (another part of the process, a lower
# limit set from outside) it stops accepting for a while instead of
# retrying accept() in a tight loop: it logs that at most once a second,
# serves again once descriptors are free, and SIGTERM still ends it.
# Loopback only; every wait is bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
C="openssl cmp -config /dev/null -batch"

start_daemon d1 http --data-dir "$TMP/data" --http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0
check "cmprouterd starts" test -n "$PORT"
APORT=$(sed -n 's/^cmprouterd: admin listening on port //p' d1.out)
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
MAC="-ref demo -secret pass:$SECRET -recipient /CN=cmprouter_demo_issuing_CA"

# ---- the limit at start ----
check "the soft descriptor limit is raised to the hard one" \
	awk '/^Max open files/ { if ($4 != $5) { print "soft " $4 ", hard " $5; exit 1 } }' /proc/$PID/limits
(ulimit -n 600 && exec "$BUILD/cmprouterd" --data-dir "$TMP/data2" --http 127.0.0.1:0 --tcp 127.0.0.1:0 \
	--admin 127.0.0.1:0) >small.out 2>small.err
check "a configuration whose max_connections do not fit below the limit is refused (exit 1)" test $? -eq 1
check "... saying how many descriptors it needs and what to change" \
	grep -q "needs up to [0-9]* file descriptors.*but the limit is 600: lower max_connections or raise the limit" small.err

# ---- running out: accepting pauses, nothing spins ----
# hold N connections to PORT until the file "release" exists (bounded: 120 s)
cat >hold.py <<'EOF'
import os, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    socks.append(s)
open("holding", "w").close()
t = time.time()
while not os.path.exists("release") and time.time() - t < 120:
    time.sleep(0.1)
EOF
cpu() { awk '{ print $14 + $15 }' /proc/$PID/stat; }
# exhaust: the limit just above what is open now, then more connections than that
exhaust() {
	open=$(ls /proc/$PID/fd | wc -l)
	prlimit --pid $PID --nofile=$((open + 10)):
	rm -f release holding
	python3 hold.py "$PORT" 60 &
	HOLD=$!
	PIDS="$PIDS $HOLD"
}
exhaust
# wait_log PATTERN: until d1.err has a line matching it (bounded: 30 s)
wait_log() {
	_i=0
	while [ $_i -lt 300 ] && ! grep -q "$1" d1.err; do sleep 0.1; _i=$((_i + 1)); done
	grep -q "$1" d1.err || { echo "#   no line matching \"$1\" in 30 s; the log ends:"; tail -n 5 d1.err | sed 's/^/#   | /'; return 1; }
}
check "out of descriptors: the daemon says so and stops accepting" \
	wait_log "http: out of file descriptors (Too many open files, [0-9]* connections open): not accepting"
c0=$(cpu); l0=$(grep -c "out of file descriptors" d1.err); s0=$(date +%s)
# 3 s of holding on (a sleep here measures, it does not wait for anything)
sleep 3
c1=$(cpu); l1=$(grep -c "out of file descriptors" d1.err); s1=$(date +%s)
check "... without spinning: under 1 s of CPU in 3 s (it used $(((c1 - c0) * 10)) ms)" test $((c1 - c0)) -lt 100
check "... logging it at most once a second ($((l1 - l0)) lines in $((s1 - s0)) s)" \
	test $((l1 - l0)) -le $((s1 - s0 + 1))
# the connections go: descriptors come back, so does accepting
touch release
wait $HOLD
prlimit --pid $PID --nofile=4096:
check "once descriptors are free it accepts again (healthz ok)" healthz_ok "$APORT"
check "... and says so" wait_log "http: accepting connections again"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k1.key 2>/dev/null
$C -server 127.0.0.1:$PORT/.well-known/cmp $MAC -cmd ir -newkey k1.key -subject /CN=after \
	-implicit_confirm -certout after.pem >after.log 2>&1
check "... and enrolls a client (ir over HTTP)" test -s after.pem

# ---- SIGTERM while out of descriptors ----
exhaust
check "out of descriptors again" sh -c 'n=0; while [ $n -lt 300 ] && [ ! -e holding ]; do sleep 0.1; n=$((n + 1)); done; test -e holding'
kill -TERM $PID
i=0
while [ $i -lt 300 ] && kill -0 $PID 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
check "SIGTERM ends it while it is out of descriptors" sh -c "! kill -0 $PID 2>/dev/null"
touch release
wait $HOLD 2>/dev/null
exit 0
