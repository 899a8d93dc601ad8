# TAP helpers for integration tests (sourced). Each check prints one line.
_tap_n=0
ok()     { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
not_ok() { _tap_n=$((_tap_n + 1)); echo "not ok $_tap_n - $*"; }
# check "description" command...   (passes when the command succeeds)
check() {
	d=$1; shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else not_ok "$d"; fi
}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cmpr-test.XXXXXX")
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT INT TERM

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
