#!/bin/sh
# Secrets on disk: a private key or a configuration that writes a pass:
# secret, readable by others or by its group, stops cmprouterd at start
# (and a reload keeps the running configuration), naming the file and its
# mode; [router] secret_group lets one group read them; what the daemon
# creates has its own modes whatever the umask. Loopback only; every wait
# is bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1

# ---- created under umask 000 ----
(umask 000 && exec "$BUILD/cmprouterd" --data-dir "$TMP/data" --http 127.0.0.1:0 >d0.out 2>d0.err) &
D0=$!
PIDS="$PIDS $D0"
i=0
while [ $i -lt 300 ] && ! grep -q "listening on port" d0.out 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
kill $D0; wait $D0 2>/dev/null
mode() { stat -c %a "$1"; }
check "umask 000: the CA keys are 600 ($(mode data/ca/root.key), $(mode data/ca/issuing.key))" \
	test "$(mode data/ca/root.key)$(mode data/ca/issuing.key)" = 600600
check "... the configuration, which holds the demo secret, 600 ($(mode data/cmprouter.conf))" \
	test "$(mode data/cmprouter.conf)" = 600
check "... demo-client.txt 600 ($(mode data/demo-client.txt))" test "$(mode data/demo-client.txt)" = 600
check "... the CA certificates 644, not world-writable ($(mode data/ca/root.pem))" \
	test "$(mode data/ca/root.pem)$(mode data/ca/issuing.pem)" = 644644
check "... the store is not the world's ($(mode data/cmprouter.db))" \
	sh -c "test \$((0$(mode data/cmprouter.db) & 07)) -eq 0"

# start CONF: runs the daemon until it listens or exits (bounded: 30 s); RC is
# its exit code, or "running" (then it is stopped)
start() {
	"$BUILD/cmprouterd" -c "$1" --http 127.0.0.1:0 >s.out 2>s.err &
	_p=$!
	_i=0
	while [ $_i -lt 300 ] && kill -0 $_p 2>/dev/null && ! grep -q "listening on port" s.out; do
		sleep 0.1; _i=$((_i + 1))
	done
	if grep -q "listening on port" s.out; then RC=running; kill $_p; wait $_p 2>/dev/null
	else wait $_p; RC=$?; fi
}
start data/cmprouter.conf
check "as created, it starts" test "$RC" = running

chmod 644 data/ca/issuing.key
start data/cmprouter.conf
check "the issuing CA key readable by all (644): it does not start (exit $RC)" test "$RC" = 1
check "... naming the key, its mode and the cure" \
	grep -q "refused: the CA key data/ca/issuing.key is open to others (mode 0644): chmod o-rwx" s.err
chmod 640 data/ca/issuing.key
start data/cmprouter.conf
check "readable by its group (640): refused too" grep -q "is open to its group (mode 0640)" s.err
grp=$(id -gn)
sed -i "s/^\\[router\\]\$/[router]\\nsecret_group = $grp/" data/cmprouter.conf
start data/cmprouter.conf
check "... unless [router] secret_group names its group ($grp)" test "$RC" = running
chmod 660 data/ca/issuing.key
start data/cmprouter.conf
check "... which may read it, not write it (660 refused)" grep -q "is open to its group (mode 0660)" s.err
chmod 600 data/ca/issuing.key

chmod 666 data/cmprouter.conf
start data/cmprouter.conf
check "the configuration holding a pass: secret at 666: refused (exit $RC)" test "$RC" = 1
check "... naming it" grep -q "the configuration, which holds a pass: secret, data/cmprouter.conf is open to others (mode 0666)" s.err
# the same secret from a file: the configuration may be read by all, the file not
chmod 600 data/cmprouter.conf
S=$(sed -n 's/^secret=//p' data/demo-client.txt)
printf '%s\n' "$S" >data/demo.secret
chmod 644 data/demo.secret
sed -i "s|^secret = pass:.*|secret = file:demo.secret|" data/cmprouter.conf
chmod 644 data/cmprouter.conf
start data/cmprouter.conf
check "secret = file:PATH with the file at 644: refused" grep -q "the secret file data/demo.secret is open to others (mode 0644)" s.err
chmod 600 data/demo.secret
start data/cmprouter.conf
check "... at 600 it starts (the configuration, without a pass: secret, may be 644)" test "$RC" = running

# ---- a reload keeps the running configuration ----
start_daemon d1 http -c data/cmprouter.conf
check "the daemon runs" test -n "$PORT"
chmod 644 data/ca/issuing.key
kill -HUP $PID
i=0
while [ $i -lt 300 ] && ! grep -q "SIGHUP: configuration refused" d1.err; do sleep 0.1; i=$((i + 1)); done
check "SIGHUP with the key at 644: refused, the running configuration kept" \
	grep -q "SIGHUP: configuration refused, keeping the running one: .*open to others (mode 0644)" d1.err
check "... and it still serves" sh -c "kill -0 $PID"
kill $PID; wait $PID 2>/dev/null
exit 0
