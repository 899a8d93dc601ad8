#!/bin/sh
# Connection floods (issue 17): 1,100 hostile connections on the HTTP and
# on the TCP listener at once -- idle, trickling one byte a second, churning
# (connect, junk, close), and idle from 1,100 different addresses -- while a
# well-behaved client keeps enrolling over each: at least 9 of 10 honest
# enrollments per listener succeed during each flood, and 5 s after it the
# daemon is idle (under 0.2 s of CPU in 2 s) and serving.
# What holds them off: max_connections_per_address (128 by default; the
# flood comes from 4 addresses), first_byte_timeout and header_timeout /
# read_timeout, and idle connections closed to make room when
# max_connections is reached. Loopback only; every wait is bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
C="openssl cmp -config /dev/null -batch"

start_daemon d1 http --data-dir "$TMP/data" --http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0
check "cmprouterd starts" test -n "$PORT"
HP=$PORT
TP=$(sed -n 's/^cmprouterd: tcp listening on port //p' d1.out)
APORT=$(sed -n 's/^cmprouterd: admin listening on port //p' d1.out)
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
MAC="-ref demo -secret pass:$SECRET -recipient /CN=cmprouter_demo_issuing_CA"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out honest.key 2>/dev/null

# one silent connection to each listener from 127.0.0.9, from the start:
# closed at first_byte_timeout (10 s by default), whatever else goes on
python3 - "$HP" "$TP" >silent.out 2>&1 <<'EOF' &
import socket, sys, time
t0 = time.monotonic()
socks = []
for port in sys.argv[1:]:
    s = socket.socket()
    s.bind(("127.0.0.9", 0))
    s.connect(("127.0.0.1", int(port)))
    s.settimeout(120)
    socks.append(s)
for s, name in zip(socks, ("http", "tcp")):
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    print("%s closed after %.1f s" % (name, time.monotonic() - t0), flush=True)
EOF
SILENT=$!
PIDS="$PIDS $SILENT"
T0=$(date +%s)

metric() { curl -s -m 10 "http://127.0.0.1:$APORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
cpu() { awk '{ print $14 + $15 }' /proc/$PID/stat; }

# honest PHASE: 10 enrollments over HTTP (openssl cmp) and 10 over TCP
# (cmprouter ir), one after the other; prints "HTTP TCP" successes
honest() {
	h=0 t=0 i=0
	while [ $i -lt 10 ]; do
		i=$((i + 1))
		rm -f "h$1.$i.pem" "t$1.$i.pem"
		$C -server "127.0.0.1:$HP/.well-known/cmp" $MAC -cmd ir -newkey honest.key -subject "/CN=h$1$i" \
			-implicit_confirm -msg_timeout 30 -total_timeout 60 -certout "h$1.$i.pem" >"h$1.$i.log" 2>&1
		[ -s "h$1.$i.pem" ] && h=$((h + 1))
		"$CMPROUTER" ir --server "tcp://127.0.0.1:$TP" --ref demo --secret "pass:$SECRET" --newkey honest.key \
			--subject "/CN=t$1$i" --timeout 30 --total-timeout 60 --out "t$1.$i.pem" \
			--trusted data/ca/root.pem >"t$1.$i.log" 2>&1
		[ -s "t$1.$i.pem" ] && t=$((t + 1))
	done
	echo "$h $t"
}

# status FIELD: the flooder's last count of FIELD
status() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" fl.status 2>/dev/null; }

# flood PHASE MODE [SOURCES]: the flood on both listeners; 10+10 honest
# enrollments once it is at full strength; then 5 s of quiet and the checks
flood() {
	phase=$1 mode=$2
	rm -f fl.status fl.stop
	python3 "$TOP/tests/integration/flood.py" --target "http:$HP" --target "tcp:$TP" --mode "$mode" \
		--conns 1100 --sources "${3:-127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5}" --status fl.status \
		--stop fl.stop --limit 600 2>fl.err &
	FL=$!
	PIDS="$PIDS $FL"
	# at full strength: 2,200 connections opened (bounded: 60 s)
	i=0
	while [ $i -lt 600 ] && [ "$(status opened || echo 0)" -lt 2200 ] 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
	check "$phase: the flood runs (2,200 connections opened: $(cat fl.status 2>/dev/null))" \
		test "$(status opened)" -ge 2200
	set -- $(honest "$phase")
	during=$(cat fl.status)
	check "$phase: at least 9 of 10 honest enrollments over HTTP succeed during the flood ($1; flooder: $during)" \
		sh -c "test $1 -ge 9 || { for f in h$phase.*.log; do tail -n 2 \$f; done | sort | uniq -c | head; exit 1; }"
	check "$phase: ... and at least 9 of 10 over TCP ($2)" \
		sh -c "test $2 -ge 9 || { for f in t$phase.*.log; do tail -n 2 \$f; done | sort | uniq -c | head; exit 1; }"
	touch fl.stop
	i=0
	while [ $i -lt 300 ] && kill -0 $FL 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
	check "$phase: the flooder ended ($(cat fl.status))" grep -q done fl.status
	# 5 s after the flood (a measurement: this sleep waits for nothing)
	sleep 5
	c0=$(cpu)
	sleep 2
	c1=$(cpu)
	check "$phase: 5 s after it the daemon is idle (it used $(((c1 - c0) * 10)) ms of CPU in 2 s)" \
		test $((c1 - c0)) -lt 20
	hc=$(metric 'cmprouter_connections{listener="http"}')
	tc=$(metric 'cmprouter_connections{listener="tcp"}')
	# none but the silent one, until first_byte_timeout closes it
	he=1 te=1
	grep -q "^http closed" silent.out && he=0
	grep -q "^tcp closed" silent.out && te=0
	check "$phase: ... holding no connection of the flood (http $hc, tcp $tc; the silent one: $he, $te)" \
		test "$hc" = $he -a "$tc" = $te
	check "$phase: ... and serving (healthz)" healthz_ok "$APORT"
}

flood idle idle
check "idle: the per-address cap refused the surplus (http $(metric 'cmprouter_connections_refused_total{listener="http",reason="per_address"}'))" \
	test "$(metric 'cmprouter_connections_refused_total{listener="http",reason="per_address"}')" -gt 0
check "idle: ... over TCP too ($(metric 'cmprouter_connections_refused_total{listener="tcp",reason="per_address"}'))" \
	test "$(metric 'cmprouter_connections_refused_total{listener="tcp",reason="per_address"}')" -gt 0
check "idle: the log says so, at most once a second" grep -q "already has 128 connections (max_connections_per_address): refusing more" d1.err
flood trickle trickle
flood churn churn
# 1,100 addresses, one idle connection each: no per-address cap helps, the
# global one (1,024) is reached, and idle connections make room
flood spread idle spread
check "spread: idle connections were closed to make room ($(metric 'cmprouter_connections_evicted_total{listener="http"}') http, $(metric 'cmprouter_connections_evicted_total{listener="tcp"}') tcp)" \
	test "$(metric 'cmprouter_connections_evicted_total{listener="http"}')" -gt 0 -a \
	"$(metric 'cmprouter_connections_evicted_total{listener="tcp"}')" -gt 0
check "the daemon survived every flood" kill -0 $PID
# the silent connections (bounded: they time out at 120 s on their side)
i=0
while [ $i -lt 1200 ] && kill -0 $SILENT 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
for l in http tcp; do
	s=$(sed -n "s/^$l closed after \([0-9]*\).*/\1/p" silent.out)
	check "a connection that sends nothing is closed at first_byte_timeout ($l: $(grep "^$l" silent.out))" \
		test -n "$s" -a "${s:-0}" -ge 9 -a "${s:-0}" -lt 120
done
# what hostile peers cause in the log is limited: 20 lines a second per
# listener, and one refusal line a second
T1=$(date +%s)
n=$(grep -c "127\.0\.0\.[2-5]\|127\.1\." d1.err)
check "the log is not flooded: $n lines about hostile peers in $((T1 - T0)) s" test "$n" -le $(((T1 - T0 + 1) * 50))
# and it stops cleanly (under ASan: nothing leaked)
kill -TERM $PID
wait $PID
rc=$?
check "SIGTERM after the floods: exit 0" sh -c "test $rc -eq 0 || { tail -n 20 d1.err; exit 1; }"
exit 0
