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
trap 'rm -rf "$TMP"' EXIT INT TERM
