#!/bin/sh
# A mapped file of the store truncated under the daemon: it dies of SIGBUS
# but says why first. The store on a full disk (an 8 MiB tmpfs): answers
# become systemUnavail,
# each counted in cmprouter_store_errors_total, /healthz answers 503 saying
# the store fails; once space is back, enrollments succeed and /healthz is
# ok again. Needs root to mount the tmpfs (skipped otherwise). Loopback
# only; every wait is bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; umount "$TMP/full" 2>/dev/null; [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT
trap 'echo "# stopped by a signal"; exit 143' INT TERM
# ---- a mapped file of the store taken away: SIGBUS, said before dying ----
# (under ASan the daemon's own handler, not the sanitizer's)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_sigbus=0" \
	start_daemon b1 http --data-dir "$TMP/bus" --http 127.0.0.1:0
SECRET=$(sed -n 's/^secret=//p' bus/demo-client.txt)
"$CMPROUTER" bench --server "http://127.0.0.1:$PORT/.well-known/cmp" --ref demo --secret "pass:$SECRET" \
	--transactions 3 --clients 1 >bus0.log 2>&1
check "the daemon enrolls (its store's -shm mapped)" grep -q "^  3 transactions" bus0.log
truncate -s 0 bus/cmprouter.db-shm
"$CMPROUTER" bench --server "http://127.0.0.1:$PORT/.well-known/cmp" --ref demo --secret "pass:$SECRET" \
	--transactions 3 --clients 1 --timeout 10 >bus1.log 2>&1
i=0
while [ $i -lt 300 ] && kill -0 $PID 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
wait $PID 2>/dev/null
rc=$?
check "the -shm truncated under it: the daemon dies of SIGBUS (exit $rc)" test $rc -eq 135
check "... saying why first" grep -q "^cmprouterd: SIGBUS at address 0x[0-9a-f]*: a memory-mapped file could not be read or written (the store's -shm or -wal file" b1.err

mkdir full
if ! mount -t tmpfs -o size=8m tmpfs full 2>mount.err; then
	ok "# SKIP cannot mount a tmpfs: $(cat mount.err)"
	exit 0
fi
start_daemon d1 http --data-dir "$TMP/full/data" --http 127.0.0.1:0 --admin 127.0.0.1:0
check "cmprouterd starts with its store on an 8 MiB tmpfs" test -n "$PORT"
APORT=$(sed -n 's/^cmprouterd: admin listening on port //p' d1.out)
SECRET=$(sed -n 's/^secret=//p' full/data/demo-client.txt)
B="--server http://127.0.0.1:$PORT/.well-known/cmp --ref demo --secret pass:$SECRET --clients 4"
"$CMPROUTER" bench $B --transactions 20 --json >b0.json 2>b0.err
check "enrollments succeed while there is room" python3 -c "import json; j = json.load(open('b0.json')); assert j['transactions'] == 20 and sum(j['errors'].values()) == 0, j"
dd if=/dev/zero of=full/fill bs=64k 2>/dev/null
"$CMPROUTER" bench $B --transactions 3000 --json >b1.json 2>b1.err
unavail=$(python3 -c "import json; print(json.load(open('b1.json'))['errors'].get('systemUnavail', 0))")
check "the disk full: answers are systemUnavail ($unavail of 3000 transactions)" test "$unavail" -gt 0
metric=$(curl -s -m 10 http://127.0.0.1:$APORT/metrics | sed -n 's/^cmprouter_store_errors_total //p')
check "... each counted in cmprouter_store_errors_total ($metric)" test "$metric" = "$unavail"
curl -s -m 10 -o hz.txt -w '%{http_code}' http://127.0.0.1:$APORT/healthz >hz.code
check "/healthz answers 503 ($(cat hz.code)), saying the store fails" \
	sh -c "test \"\$(cat hz.code)\" = 503 && grep -q '^store failing: [0-9]* requests answered systemUnavail' hz.txt"
rm -f full/fill
"$CMPROUTER" bench $B --transactions 20 --json >b2.json 2>b2.err
check "space back: enrollments succeed again" python3 -c "import json; j = json.load(open('b2.json')); assert j['transactions'] == 20 and sum(j['errors'].values()) == 0, j"
check "... and /healthz is ok again" healthz_ok "$APORT"
kill $PID; wait $PID 2>/dev/null
exit 0
