#!/bin/sh
# The store on a full disk (an 8 MiB tmpfs): answers become systemUnavail,
# each counted in cmprouter_store_errors_total, /healthz answers 503 saying
# the store fails; once space is back, enrollments succeed and /healthz is
# ok again. Needs root to mount the tmpfs (skipped otherwise). Loopback
# only; every wait is bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; umount "$TMP/full" 2>/dev/null; [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT INT TERM
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
# healthy: /healthz says ok (bounded: 60 s)
healthy() {
	_i=0
	while [ $_i -lt 600 ]; do
		[ "$(curl -s -m 5 http://127.0.0.1:$APORT/healthz)" = ok ] && return 0
		sleep 0.1; _i=$((_i + 1))
	done
	echo "#   /healthz still says: $(curl -s -m 5 http://127.0.0.1:$APORT/healthz)"
	return 1
}
check "... and /healthz is ok again" healthy
kill $PID; wait $PID 2>/dev/null
exit 0
