#!/bin/sh
# make install puts programs, man pages, the example configuration and the
# systemd unit in place; the man pages render without groff warnings.
. "$TOP/tests/integration/lib.sh"
cd "$BUILD" || exit 1
make install DESTDIR="$TMP/root" >"$TMP/install.log" 2>&1
check "make install succeeds" test $? -eq 0
P=$(sed -n 's/^prefix = //p' Makefile)
S=$(sed -n 's/^sysconfdir = //p' Makefile | sed "s|\${prefix}|$P|")
for f in "$P/bin/cmprouter" "$P/bin/cmprouterd" "$P/share/man/man1/cmprouter.1" \
		"$P/share/man/man5/cmprouter.conf.5" "$P/share/man/man8/cmprouterd.8" \
		"$S/cmprouter/cmprouter.conf.example" "$P/lib/systemd/system/cmprouterd.service"; do
	check "installed: $f" test -f "$TMP/root$f"
done
check "the unit runs the installed daemon and reloads on SIGHUP" sh -c \
	"grep -q '^ExecStart=$P/bin/cmprouterd -c $S/cmprouter/cmprouter.conf' '$TMP/root$P/lib/systemd/system/cmprouterd.service' && grep -q 'kill -HUP' '$TMP/root$P/lib/systemd/system/cmprouterd.service'"
check "the unit runs unprivileged" grep -q '^User=cmprouter' "$TMP/root$P/lib/systemd/system/cmprouterd.service"
check "the unit raises the descriptor limit (cmprouterd(8) FILE DESCRIPTORS)" grep -q "^LimitNOFILE=65536" "$TMP/root$P/lib/systemd/system/cmprouterd.service"
check "the unit keeps no capabilities and a private /dev" sh -c \
	"grep -qx 'CapabilityBoundingSet=' '$TMP/root$P/lib/systemd/system/cmprouterd.service' && grep -qx 'PrivateDevices=yes' '$TMP/root$P/lib/systemd/system/cmprouterd.service'"
if command -v systemd-analyze >/dev/null 2>&1; then
	systemd-analyze security --offline=true --no-pager "$TMP/root$P/lib/systemd/system/cmprouterd.service" \
		>sa.out 2>&1
	level=$(sed -n 's/.*Overall exposure level for cmprouterd.service: \([0-9.]*\).*/\1/p' sa.out)
	check "systemd-analyze security: exposure ${level:-?} (at most 2.0)" \
		awk -v l="${level:-99}" 'BEGIN { exit !(l <= 2.0) }'
else
	ok "# SKIP systemd-analyze is not installed"
fi
for m in cmprouter.1 cmprouter.conf.5 cmprouterd.8; do
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$TOP/man/$m" 2>&1 >/dev/null | head -3)
	if [ -z "$w" ]; then ok "man page $m renders cleanly"; else not_ok "man page $m: $w"; fi
done
# the example configuration is valid but for its key files
out=$(FACTORY_SECRET=x "$TMP/root$P/bin/cmprouter" -c "$TOP/examples/cmprouter.conf" list 2>&1)
case $out in
	*"cannot read a private key"*) ok "the example configuration parses (only its CA files are missing)" ;;
	*) not_ok "example configuration: $out" ;;
esac
