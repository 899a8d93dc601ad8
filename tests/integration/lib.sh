# TAP helpers for integration tests (sourced). Each check prints one line.
_tap_n=0
ok()     { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
not_ok() { _tap_n=$((_tap_n + 1)); echo "not ok $_tap_n - $*"; }
# check "description" command...   (passes when the command succeeds; a
# failure prints the command, the end of what it wrote, and the end of each
# file among its arguments, as TAP comments)
check() {
	d=$1; shift
	if "$@" >"$TMP/.check.out" 2>&1; then
		ok "$d"
	else
		_rc=$?
		not_ok "$d"
		echo "#   failed (exit $_rc): $*"
		tail -n 15 "$TMP/.check.out" | sed 's/^/#   | /'
		# what it looked at: the end of each file it was given (grep -q PATTERN FILE...)
		_nf=0
		for _a in "$@"; do
			[ "$_a" = "$1" ] && continue
			if [ -f "$_a" ] && [ $_nf -lt 3 ]; then
				_nf=$((_nf + 1))
				echo "#   $_a ($(wc -c <"$_a") bytes) ends:"
				tail -n 8 "$_a" | cut -c1-200 | tr -c '[:print:]\n' '?' | sed 's/^/#   | /'
			fi
		done
	fi
}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cmpr-test.XXXXXX")
PIDS=""
ON_EXIT=""    # commands run first at exit (stop_pg)
trap 'eval "$ON_EXIT"; for p in $PIDS; do kill -9 $p 2>/dev/null; done; [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT
# stopped from outside (tests/run's time limit, ^C): say so and end here;
# the checks after it would only fail on a removed folder
trap 'echo "# stopped by a signal after check $_tap_n"; exit 143' INT TERM

# start_daemon LOG LISTENER ARGS...: runs $BUILD/cmprouterd ARGS with output in
# LOG.out/LOG.err; sets PID, and PORT once "LISTENER listening on port N" is
# printed (bounded wait: 10 s; PORT stays empty if the daemon fails)
start_daemon() {
	_log=$1 _lst=$2; shift 2
	: >"$_log.out"
	"$BUILD/cmprouterd" "$@" >>"$_log.out" 2>"$_log.err" &
	PID=$!
	PIDS="$PIDS $PID"
	PORT=""
	_i=0
	while [ $_i -lt 100 ]; do
		PORT=$(sed -n "s/^cmprouterd: $_lst listening on port \([0-9]*\)\$/\1/p" "$_log.out")
		[ -n "$PORT" ] && break
		kill -0 $PID 2>/dev/null || break
		sleep 0.1
		_i=$((_i + 1))
	done
}

# healthz_ok PORT: the admin listener on PORT answers /healthz with ok
# (bounded: 60 s); when it does not, prints what it said last
healthz_ok() {
	_i=0
	while [ $_i -lt 600 ]; do
		[ "$(curl -s -m 5 "http://127.0.0.1:$1/healthz")" = ok ] && return 0
		sleep 0.1; _i=$((_i + 1))
	done
	echo "#   /healthz did not answer ok in 60 s; it says: $(curl -s -m 5 "http://127.0.0.1:$1/healthz")"
	return 1
}

# wait_grep FILE PATTERN [TENTHS]: until a line of FILE matches PATTERN
# (grep's basic regular expression; bounded, default 60 s); when none does,
# prints the end of FILE
wait_grep() {
	_i=0
	while [ $_i -lt "${3:-600}" ] && ! grep -q "$2" "$1" 2>/dev/null; do sleep 0.1; _i=$((_i + 1)); done
	grep -q "$2" "$1" 2>/dev/null && return 0
	echo "#   waited $((${3:-600} / 10)) s for \"$2\" in $1; it ends:"
	tail -n 8 "$1" 2>&1 | cut -c1-200 | sed 's/^/#   | /'
	return 1
}

# ---- helpers for the tests that enroll with `openssl cmp` (they set C, DEAD, MAC) ----
# wait_for PATH [TENTHS]: until PATH exists (bounded, default 60 s); when it
# does not, prints what the folder holds
wait_for() {
	_i=0
	while [ $_i -lt "${2:-600}" ] && [ ! -e "$1" ]; do sleep 0.1; _i=$((_i + 1)); done
	[ -e "$1" ] && return 0
	echo "#   waited $((${2:-600} / 10)) s for $1: it did not appear; its folder holds:"
	ls -la "$(dirname "$1")" 2>&1 | tail -n 15 | sed 's/^/#   | /'
	return 1
}
# mkreq NAME: NAME.key and an ir with implicit confirm in NAME.req, written by
# the openssl client (which cannot reach $DEAD and so only writes the request)
mkreq() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null
	$C -cmd ir -server $DEAD $MAC -newkey "$1.key" -subject "/CN=$1" -implicit_confirm \
		-reqout "$1.req" -certout x.pem >/dev/null 2>&1
}
# accepted NAME [ANSWER]: the openssl client accepts ANSWER (default NAME.rsp)
# and the certificate verifies against the embedded default's CA in data/
accepted() {
	$C -cmd ir $MAC -newkey "$1.key" -subject "/CN=$1" -implicit_confirm -rspin "${2:-$1.rsp}" \
		-certout "$1.pem" >"$1.log" 2>&1 \
	&& openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem "$1.pem"
}
# pending_tid CONF: the transactionID waiting for approval (bounded wait, 40 s), or ""
pending_tid() {
	_i=0; _tid=""
	while [ $_i -lt 200 ] && [ -z "$_tid" ]; do
		_tid=$("$CMPROUTER" -c "$1" list --pending --json 2>/dev/null \
			| python3 -c 'import json,sys; l=json.load(sys.stdin); print(l[0]["tid"] if l else "")')
		[ -z "$_tid" ] && sleep 0.2
		_i=$((_i + 1))
	done
	echo "$_tid"
}

# start_mock SECRET [openssl cmp options...]: OpenSSL's mock server on a free
# port with a test PKI: mca.crt (its CA), msrv.crt/.key (its signer) and the
# one certificate it hands out, mee.crt for mee.key. Polls once (checkAfter 1).
# Sets MP (empty if it did not start; bounded wait, 5 s).
start_mock() {
	_sec=$1; shift
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout mca.key -out mca.crt \
		-subj /CN=MockCA -days 2 -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout msrv.key -subj /CN=mocksrv 2>/dev/null \
		| openssl x509 -req -CA mca.crt -CAkey mca.key -days 2 -out msrv.crt 2>/dev/null
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out mee.key
	openssl req -new -key mee.key -subj /CN=mockee 2>/dev/null \
		| openssl x509 -req -CA mca.crt -CAkey mca.key -days 2 -out mee.crt 2>/dev/null
	openssl cmp -config /dev/null -port 0 -srv_ref mock -srv_secret "pass:$_sec" -srv_cert msrv.crt \
		-srv_key msrv.key -rsp_cert mee.crt -rsp_capubs mca.crt -poll_count 1 -check_after 1 -max_msgs 60 \
		"$@" >mock.out 2>mock.err &
	PIDS="$PIDS $!"
	_i=0; MP=""
	while [ $_i -lt 50 ] && [ -z "$MP" ]; do
		MP=$(sed -n 's/^ACCEPT \[::\]:\([0-9]*\).*/\1/p' mock.out); sleep 0.1; _i=$((_i + 1))
	done
}


# ---- a PostgreSQL of the test's own (Debian's postgresql package) ----
# start_pg: initdb in $TMP/pg (as the user postgres when run as root: the
# server refuses root), listening on 127.0.0.1 at a free port and on a Unix
# socket in $TMP/pg; superuser cmpr, trusted on the socket, scram-sha-256
# over TCP (password "pg-pw-Zq81x"). Sets PGPORT_T and PGSTORE (a store spec on
# the socket); stopped at exit. Bounded: pg_ctl waits at most 60 s.
start_pg() {
	_pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -x "$_pgbin/initdb" ] || { echo "#   no PostgreSQL server (scripts/install-deps installs postgresql)"; return 1; }
	mkdir -p "$TMP/pg"
	_pgrun=""
	if [ "$(id -u)" = 0 ]; then
		chmod 755 "$TMP"
		chown postgres "$TMP/pg"
		_pgrun="runuser -u postgres --"
	fi
	printf 'pg-pw-Zq81x\n' >"$TMP/pg/pw"
	chmod 644 "$TMP/pg/pw"
	$_pgrun "$_pgbin/initdb" -D "$TMP/pg/data" -U cmpr --pwfile="$TMP/pg/pw" --auth-local=trust \
		--auth-host=scram-sha-256 >"$TMP/pg/initdb.log" 2>&1 || { tail -5 "$TMP/pg/initdb.log"; return 1; }
	PGPORT_T=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	$_pgrun "$_pgbin/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $PGPORT_T -k $TMP/pg -c max_connections=200" start \
		>"$TMP/pg/ctl.log" 2>&1 || { tail -5 "$TMP/pg/log"; return 1; }
	ON_EXIT="stop_pg; $ON_EXIT"
	PGSTORE="postgresql:host=$TMP/pg port=$PGPORT_T user=cmpr dbname=postgres"
}
stop_pg() {
	[ -n "${_pgbin:-}" ] && $_pgrun "$_pgbin/pg_ctl" -D "$TMP/pg/data" -m fast -w -t 60 stop >/dev/null 2>&1
	_pgbin=""
}

# cert_tools: commands for `sh -c` checks, on the embedded default's CA in
# $TMP/data: verify CERT (chains to it), pairs CERT KEY (the key file holds
# the certificate's private key), serial CERT (hex)
cert_tools() {
	mkdir -p "$TMP/bin"
	printf '#!/bin/sh\nopenssl verify -CAfile %s/data/ca/root.pem -untrusted %s/data/ca/issuing.pem "$1"\n' \
		"$TMP" "$TMP" >"$TMP/bin/verify"
	printf '#!/bin/sh\ntest "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout)"\n' \
		>"$TMP/bin/pairs"
	printf '#!/bin/sh\nopenssl x509 -in "$1" -noout -serial | sed "s/serial=//"\n' >"$TMP/bin/serial"
	chmod +x "$TMP/bin/verify" "$TMP/bin/pairs" "$TMP/bin/serial"
	PATH=$TMP/bin:$PATH
}
