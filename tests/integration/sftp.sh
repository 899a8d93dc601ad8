#!/bin/sh
# cmprouterd fetching CMP request files from remote folders over SSH
# ([sftp NAME], libssh) from a real OpenSSH sshd started here on 127.0.0.1
# with a generated host key and user key. Requests from `openssl cmp
# -reqout`, answers accepted by `openssl cmp -rspin`; the delayed enrollment
# by files through filebridge.py; a wrong host key; sshd killed and
# restarted mid-transfer; the daemon killed -9. Waits are bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"
C="openssl cmp -config /dev/null -batch"
DEAD=127.0.0.1:9
DAEMON_ARGS="--http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0"
SSHD=/usr/sbin/sshd

if [ ! -x $SSHD ]; then
	not_ok "OpenSSH sshd is installed (scripts/install-deps installs openssh-server)"
	exit 0
fi

# ---- a real sshd on loopback ----
mkdir -p ssh remote/in remote/out
chmod 700 ssh
ssh-keygen -q -t ed25519 -N '' -f ssh/host_key
ssh-keygen -q -t ed25519 -N '' -f ssh/other_host_key
ssh-keygen -q -t ed25519 -N '' -f ssh/user_key
cp ssh/user_key.pub ssh/authorized_keys
SPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ME=$(id -un)
[ "$(id -u)" = 0 ] && mkdir -p /run/sshd && chmod 755 /run/sshd
# SetEnv SHLVL=1: bash then skips ~/.bashrc for the commands sshd runs (it
# reads it only at shell level 1); a user's start-up files are not what is
# tested, and some (pyenv's rehash, behind a lock a killed session leaves
# behind) made every remote command wait 60 s
cat >ssh/sshd_config <<EOF
Port $SPORT
ListenAddress 127.0.0.1
HostKey $TMP/ssh/host_key
AuthorizedKeysFile $TMP/ssh/authorized_keys
PidFile $TMP/ssh/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers $ME
Subsystem sftp internal-sftp
LogLevel VERBOSE
SetEnv SHLVL=1
EOF
echo "[127.0.0.1]:$SPORT $(cut -d' ' -f1,2 ssh/host_key.pub)" >ssh/known_hosts
echo "[127.0.0.1]:$SPORT $(cut -d' ' -f1,2 ssh/other_host_key.pub)" >ssh/wrong_known_hosts
start_sshd() {
	$SSHD -D -e -f "$TMP/ssh/sshd_config" 2>>sshd.log &
	SSHD_PID=$!
	PIDS="$PIDS $SSHD_PID"
	_i=0
	while [ $_i -lt 50 ] && ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $SPORT), 1)" 2>/dev/null; do
		sleep 0.1; _i=$((_i + 1))
	done
}
start_sshd
check "sshd runs on 127.0.0.1 with generated keys" \
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $SPORT), 1)"
# a second sshd without the SFTP subsystem (SCP only), as on some legacy hosts
LPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s/^Port .*/Port $LPORT/" -e '/^Subsystem/d' -e "s|sshd.pid|sshd2.pid|" ssh/sshd_config >ssh/sshd2_config
echo "[127.0.0.1]:$LPORT $(cut -d' ' -f1,2 ssh/host_key.pub)" >>ssh/known_hosts
$SSHD -D -e -f "$TMP/ssh/sshd2_config" 2>>sshd2.log &
PIDS="$PIDS $!"
mkdir -p remote/legacy-in remote/legacy-out
# a third with OpenSSH's separate sftp-server program: its SFTP server can
# end while the SSH connection stays up
CPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s/^Port .*/Port $CPORT/" -e "s|^Subsystem.*|Subsystem sftp /usr/lib/openssh/sftp-server|" \
	-e "s|sshd.pid|sshd3.pid|" ssh/sshd_config >ssh/sshd3_config
echo "[127.0.0.1]:$CPORT $(cut -d' ' -f1,2 ssh/host_key.pub)" >>ssh/known_hosts
$SSHD -D -e -f "$TMP/ssh/sshd3_config" 2>>sshd3.log &
SSHD3_PID=$!
PIDS="$PIDS $SSHD3_PID"
mkdir -p remote/chan-in remote/chan-out
# a fourth whose every command hangs (no SFTP, each command a long sleep, as
# behind a login shell stuck in its start-up files)
XPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s/^Port .*/Port $XPORT/" -e '/^Subsystem/d' -e "s|sshd.pid|sshd4.pid|" ssh/sshd_config >ssh/sshd4_config
echo "ForceCommand exec sleep 90" >>ssh/sshd4_config
echo "[127.0.0.1]:$XPORT $(cut -d' ' -f1,2 ssh/host_key.pub)" >>ssh/known_hosts
$SSHD -D -e -f "$TMP/ssh/sshd4_config" 2>>sshd4.log &
PIDS="$PIDS $!"
mkdir -p remote/stuck-in remote/stuck-out

# ---- the daemon: embedded default plus six [sftp] groups ----
start_daemon d0 http --data-dir "$TMP/data" $DAEMON_ARGS
kill $PID; wait $PID 2>/dev/null
sed -i 's/^data_dir = \.$/data_dir = .\ncheck_after = 1/' data/cmprouter.conf
# sftp_group NAME PORT INBOX OUTBOX [KNOWN_HOSTS [MORE...]]: an [sftp NAME]
# group on sshd at PORT, remote folders under remote/, lines MORE added
sftp_group() {
	printf '\n[sftp %s]\nhost = 127.0.0.1\nport = %s\nuser = %s\nidentity = %s\n' "$1" "$2" "$ME" "$TMP/ssh/user_key"
	printf 'known_hosts = %s\nremote_inbox = %s\nremote_outbox = %s\ninterval = 1\n' \
		"$TMP/ssh/${5:-known_hosts}" "$TMP/remote/$3" "$TMP/remote/$4"
	if [ $# -ge 5 ]; then shift 5; else shift $#; fi
	for l in "$@"; do echo "$l"; done
}
{
	sftp_group site "$SPORT" in out known_hosts "remote_archive = $TMP/remote/archive"
	sftp_group manual "$SPORT" manual-in manual-out known_hosts "remote_archive = $TMP/remote/manual-archive" \
		"label = manual"
	sftp_group legacy "$LPORT" legacy-in legacy-out
	sftp_group chan "$CPORT" chan-in chan-out
	sftp_group impostor "$SPORT" imp-in imp-out wrong_known_hosts
	sftp_group stuck "$XPORT" stuck-in stuck-out known_hosts "timeout = 3"
} >>data/cmprouter.conf
mkdir -p remote/manual-in remote/manual-out remote/imp-in remote/imp-out
start_daemon d1 http -c data/cmprouter.conf $DAEMON_ARGS
check "cmprouterd starts its [sftp] groups" grep -q "^cmprouterd: sftp site started" d1.out
IN=remote/in OUT=remote/out ERR=remote/in/.errors ARC=remote/archive
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
MAC="-ref demo -secret pass:$SECRET -recipient /CN=cmprouter_demo_issuing_CA"

drop() { cp "$1" "$3/.$2.tmp" && mv "$3/.$2.tmp" "$3/$2"; }

# ---- one request through the remote folders ----
mkreq one
drop one.req one.pki $IN
wait_for "$OUT/one.rsp.pki"
check "a request in the remote inbox is answered in the remote outbox (one.rsp.pki)" test -s "$OUT/one.rsp.pki"
check "openssl cmp -rspin accepts it; the certificate verifies" accepted one "$OUT/one.rsp.pki"
check "the request is archived remotely" test -s "$ARC/one.pki"
check "the host key was verified and the session logged in by public key" \
	grep -q "Accepted publickey for $ME" sshd.log
printf 'no CMP here' >"$IN/junk.pki"
wait_for "$ERR/junk.pki.reason"
check "a remote file that is not CMP goes to the remote errors folder with a reason" \
	grep -q "not a DER PKIMessage" "$ERR/junk.pki.reason"
ln -s /etc/passwd "$IN/link.pki"
wait_for "$ERR/link.pki.reason"
check "a remote symbolic link is not followed" grep -q "symbolic link" "$ERR/link.pki.reason"

# ---- SCP where the server has no SFTP subsystem ----
LIN=remote/legacy-in LOUT=remote/legacy-out
mkreq scp1
mkreq scp2
drop scp1.req scp1.pki $LIN
ODD=$(printf 'it\047s $(rm -rf x) "q"\nnl')
cp scp2.req "$LIN/.q"; mv "$LIN/.q" "$LIN/$ODD.pki"
printf 'junk' >"$LIN/junk.pki"
ln -s /etc/passwd "$LIN/link.pki"
wait_for "$LOUT/scp1.rsp.pki"
wait_for "$LOUT/$ODD.rsp.pki"
wait_for "$LIN/.errors/link.pki.reason"
check "a server without the SFTP subsystem is served by SCP (logged)" grep -q "sftp legacy: .*no SFTP subsystem; using SCP" d1.err
check "a request fetched by SCP is answered; openssl cmp accepts it" accepted scp1 "$LOUT/scp1.rsp.pki"
cp "$LOUT/$ODD.rsp.pki" scp2.rsp
check "a name with quotes, \$() and a newline survives the remote shell and SCP" accepted scp2 scp2.rsp
check "over SCP too, junk goes to errors with a reason and links are not followed" \
	sh -c "grep -q 'not a DER PKIMessage' '$LIN/.errors/junk.pki.reason' && grep -q 'symbolic link' '$LIN/.errors/link.pki.reason'"
check "... and the SCP inbox and processing folder are empty" \
	sh -c "test -z \"\$(find '$LIN' -path '*/.errors' -prune -o -type f -print -o -type l -print)\""
# many files at once through SCP: one listing, then each step for all of
# them in one command or transfer (sshd logs every command it starts)
mkdir -p many
n=0
while [ $n -lt 20 ]; do n=$((n + 1)); mkreq bat$n; cp bat$n.req many/bat$n.pki; done
s0=$(grep -c "Starting session" sshd2.log)
mv many/*.pki "$LIN/"
wait_for "$LOUT/bat20.rsp.pki"
i=0
while [ $i -lt 600 ] && [ "$(ls "$LOUT" | grep -c '^bat')" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
s1=$(grep -c "Starting session" sshd2.log)
check "20 requests dropped at once into the SCP inbox: 20 answers, none doubled" \
	sh -c "test \$(ls '$LOUT' | grep -c '^bat') -eq 20 && ! ls '$LOUT' | grep -q '^bat.*\.2\.rsp' || { ls '$LOUT'; exit 1; }"
bad=0
n=0
while [ $n -lt 20 ]; do n=$((n + 1)); accepted bat$n "$LOUT/bat$n.rsp.pki" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "... all accepted by openssl cmp ($bad not)" test $bad -eq 0
check "... in batches: $((s1 - s0)) commands on the SCP-only server for 20 files (one by one took 8 each)" \
	test $((s1 - s0)) -le 40

# ---- a wrong host key is refused ----
mkreq imp
drop imp.req imp.pki remote/imp-in
check "a server whose host key is not the known one is refused and logged" \
	wait_grep d1.err "sftp impostor: .*host key SHA256:.* is of another type\|sftp impostor: .*host key SHA256:.*CHANGED"
check "... and nothing is taken from it" sh -c "test -e remote/imp-in/imp.pki && test -z \"\$(ls remote/imp-out)\""

# ---- the delayed enrollment by files over SFTP ----
python3 "$TOP/tests/integration/filebridge.py" remote/manual-in remote/manual-out site 60 >bridge.log 2>&1 &
BR=$!
PIDS="$PIDS $BR"
i=0; while [ $i -lt 50 ] && ! grep -q '^port' bridge.log; do sleep 0.1; i=$((i + 1)); done
BPORT=$(sed -n 's/^port //p' bridge.log)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out manual.key 2>/dev/null
$C -server 127.0.0.1:$BPORT/.well-known/cmp $MAC -cmd cr -newkey manual.key \
	-subject /CN=sftp-manual -certout manual.pem -total_timeout 120 >manual.log 2>&1 &
CL=$!
tid=$(pending_tid data/cmprouter.conf)
check "a cr fetched over SFTP for a profile needing approval waits for the operator" test -n "$tid"
sleep 2
check "approve from the CLI" "$R" -c data/cmprouter.conf approve "$tid"
i=0
while [ $i -lt 400 ] && kill -0 $CL 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
check "the site gets its certificate over SFTP folders (waiting, pollReq, cert, certConf)" \
	sh -c "test -s manual.pem && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem manual.pem"
check "... each message crossed as a file" sh -c "test \$(grep -c 'bytes back' bridge.log) -ge 4"
kill $BR 2>/dev/null

# ---- the EE client into remote folders: cmprouter ... --server sftp:// ----
SSHO="--ssh-identity ssh/user_key --ssh-known-hosts ssh/known_hosts --timeout 60"
"$R" ir --server "sftp://$ME@127.0.0.1:$SPORT$TMP/remote/in,$TMP/remote/out" $SSHO --ref demo \
	--secret pass:$SECRET --trusted data/ca/root.pem --newkey ec:P-256 --subject /CN=ee-sftp --out ee-sftp.pem 2>ee-sftp.err
check "cmprouter ir --server sftp:// (upload, wait for the answer file, certConf the same way) exits 0" sh -c \
	"test $? -eq 0 && grep -q confirmed ee-sftp.err && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem ee-sftp.pem"
check "... the answer files it took are gone from the remote outbox" sh -c "! ls $OUT | grep -q cmprouter-"
U="sftp://$ME@127.0.0.1:$SPORT$TMP/remote/in,$TMP/remote/out"
"$R" kur --server "$U" $SSHO --oldcert ee-sftp.pem --key ee-sftp.key --trusted data/ca/root.pem \
	--newkey ec:P-384 --out ee-sftp2.pem 2>ee-kur.err && \
"$R" p10cr --server "$U" $SSHO --ref demo --secret pass:$SECRET --trusted data/ca/root.pem \
	--newkey rsa:2048 --subject /CN=ee-sftp-p10 --out ee-sftp-p10.pem 2>ee-p10.err && \
"$R" rr --server "$U" $SSHO --oldcert ee-sftp2.pem --key ee-sftp2.key --trusted data/ca/root.pem 2>ee-rr.err
check "kur, p10cr and rr over sftp:// exit 0; the certificates verify" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem ee-sftp2.pem ee-sftp-p10.pem"
"$R" genm --server "sftp://$ME@127.0.0.1:$LPORT$TMP/remote/legacy-in,$TMP/remote/legacy-out" $SSHO --ref demo \
	--secret pass:$SECRET --trusted data/ca/root.pem --infotype caCerts --out ee-ca.pem 2>ee-scp.err
check "genm caCerts through a server with SCP only (the client falls back to SCP) exits 0" sh -c \
	"test $? -eq 0 && test \$(grep -c BEGIN ee-ca.pem) -eq 2"
"$R" genm --server "sftp://$ME@127.0.0.1:$SPORT$TMP/remote/in,$TMP/remote/out" --ssh-identity ssh/user_key \
	--ssh-known-hosts ssh/wrong_known_hosts --ref demo --secret pass:$SECRET 2>ee-kh.err
check "a server whose host key is not the known one: refused, exit 3" sh -c \
	"test $? -eq 3 && grep -q 'host key SHA256:' ee-kh.err"
# the server whose commands never finish: the client gives up after
# --timeout with a clear error instead of waiting for ever (bounded here by
# timeout(1) at 150 s; --timeout is 5 s)
timeout 150 "$R" genm --server "sftp://$ME@127.0.0.1:$XPORT$TMP/remote/legacy-in,$TMP/remote/legacy-out" \
	--ssh-identity ssh/user_key --ssh-known-hosts ssh/known_hosts --timeout 5 --ref demo \
	--secret pass:$SECRET --trusted data/ca/root.pem --infotype caCerts --out ee-hang.pem 2>ee-hang.err
check "a server whose commands never finish: the client gives up (exit 3, not killed), naming the timeout" sh -c \
	"test $? -eq 3 && grep -q 'no answer from the remote side within 5 s' ee-hang.err" ee-hang.err
check "... and the daemon's group on it logs the command it gave up after its timeout (3 s)" \
	wait_grep d1.err "sftp stuck: .*no answer within 3 s"

# ---- an RA whose upstream CA takes files from this SSH server (route upstream = sftp://) ----
CAPID=$PID
start_daemon ra0 http --data-dir "$TMP/ra" $DAEMON_ARGS
kill $PID; wait $PID 2>/dev/null
sed -i "s/^secret = pass:.*/secret = pass:$SECRET/" ra/cmprouter.conf
cat >>ra/cmprouter.conf <<EOF

[route offline-site]
upstream = $U
ssh_identity = $TMP/ssh/user_key
ssh_known_hosts = $TMP/ssh/known_hosts
check_after = 1
EOF
start_daemon ra1 http -c ra/cmprouter.conf $DAEMON_ARGS
"$R" ir --server "http://127.0.0.1:$PORT/.well-known/cmp" --ref demo --secret pass:$SECRET --trusted data/ca/root.pem \
	--newkey ec:P-256 --subject /CN=ra-sftp --out ra-sftp.pem --total-timeout 90 --max-wait 1 2>ra-sftp.err
check "HTTP client -> RA -> files on an SSH server -> CA (keep): waiting, then the certificate and certConf" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem ra-sftp.pem \
	 && grep -q 'polling' ra-sftp.err && grep -q confirmed ra-sftp.err && grep -q 'route offline-site' ra1.err"
kill $PID; wait $PID 2>/dev/null
PID=$CAPID

# ---- the SFTP server ends, the SSH connection stays up: a new session ----
mkreq ch1
drop ch1.req ch1.pki remote/chan-in
wait_for remote/chan-out/ch1.rsp.pki
check "a request through a server with a separate sftp-server program is answered" \
	accepted ch1 remote/chan-out/ch1.rsp.pki
# sftp-server runs under sshd3's session processes; only it is killed
sftp_servers() { pgrep -f "^/usr/lib/openssh/sftp-server" | while read -r p; do
	_a=$p; while [ "$_a" -gt 1 ]; do [ "$_a" = "$SSHD3_PID" ] && { echo "$p"; break; }
	_a=$(ps -o ppid= -p "$_a" | tr -d ' '); [ -n "$_a" ] || break; done; done; }
victims=$(sftp_servers)
check "the SFTP session runs in its own sftp-server process" test -n "$victims"
kill -9 $victims 2>/dev/null
mkreq ch2
drop ch2.req ch2.pki remote/chan-in
wait_for remote/chan-out/ch2.rsp.pki
check "after the sftp-server process was killed, the next request is answered (a new session)" \
	accepted ch2 remote/chan-out/ch2.rsp.pki
check "... and the end of the SFTP session was logged" \
	grep -q "sftp chan: connection to 127.0.0.1:$CPORT lost; connecting again" d1.err

# ---- sshd killed mid-transfer, then back: nothing lost or doubled ----
rm -f "$OUT"/*
n=0
while [ $n -lt 20 ]; do n=$((n + 1)); mkreq s$n; cp s$n.req "$IN/.s$n"; done
n=0
while [ $n -lt 20 ]; do n=$((n + 1)); mv "$IN/.s$n" "$IN/s$n.pki"; done
i=0
while [ $i -lt 100 ] && [ "$(ls "$OUT" | wc -l)" -lt 3 ]; do sleep 0.05; i=$((i + 1)); done
# the listener and every session process under it (the transfers in progress)
kill_tree() { for _c in $(pgrep -P "$1"); do kill_tree "$_c"; done; kill -9 "$1" 2>/dev/null; }
kill_tree $SSHD_PID
got=$(ls "$OUT" | wc -l)
# meanwhile the other transports are not held up
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out h.key 2>/dev/null
HPORT=$(sed -n 's/^cmprouterd: http listening on port //p' d1.out)
check "with the SSH server dead, HTTP requests are still answered" \
	$C -server 127.0.0.1:$HPORT/.well-known/cmp $MAC -cmd ir -newkey h.key -subject /CN=h -certout h.pem \
	-msg_timeout 60 -total_timeout 60
i=0; while [ $i -lt 600 ] && ! grep -q "sftp site: .*\(lost\|cannot connect\)" d1.err; do sleep 0.1; i=$((i + 1)); done
check "the lost connection is logged and retried" grep -q "sftp site: .*\(lost\|cannot connect\)" d1.err
start_sshd
i=0
while [ $i -lt 900 ] && [ "$(ls "$OUT" | wc -l)" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
sleep 2
check "sshd killed after $got of 20 answers, then restarted: exactly 20 answers, none doubled" \
	sh -c "test \$(ls '$OUT' | wc -l) -eq 20 && ! ls '$OUT' | grep -q '\.2\.rsp'"
bad=0
n=0
while [ $n -lt 20 ]; do n=$((n + 1)); accepted s$n "$OUT/s$n.rsp.pki" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "... and all 20 are accepted by openssl cmp" test $bad -eq 0

# ---- the daemon killed -9 while fetching ----
rm -f "$OUT"/*
n=0
while [ $n -lt 10 ]; do n=$((n + 1)); mkreq k$n; drop k$n.req k$n.pki $IN; done
i=0
while [ $i -lt 100 ] && [ "$(ls "$OUT" | wc -l)" -lt 2 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $PID; wait $PID 2>/dev/null
start_daemon d2 http -c data/cmprouter.conf $DAEMON_ARGS
i=0
while [ $i -lt 900 ] && [ "$(ls "$OUT" | wc -l)" -lt 10 ]; do sleep 0.1; i=$((i + 1)); done
sleep 2
check "cmprouterd killed -9 mid-way, restarted: exactly 10 answers, none doubled" \
	sh -c "test \$(ls '$OUT' | wc -l) -eq 10 && ! ls '$OUT' | grep -q '\.2\.rsp'"
bad=0
n=0
while [ $n -lt 10 ]; do n=$((n + 1)); accepted k$n "$OUT/k$n.rsp.pki" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "... all accepted, and the remote processing folder is empty" \
	sh -c "test $bad -eq 0 && test -z \"\$(find remote/in/.processing -type f)\""
APORT=$(sed -n 's/^cmprouterd: admin listening on port //p' d2.out)
# (the restarted daemon may have found all ten answered already: one more of its own)
mkreq met
drop met.req met.pki $IN
wait_for "$OUT/met.rsp.pki"
check "metrics count sftp requests" sh -c \
	"curl -s http://127.0.0.1:$APORT/metrics | grep -q 'medium=\"sftp\",outcome=\"answered\"} [1-9]'"
kill $PID; wait $PID 2>/dev/null

# ---- a crash at each step of a file's life: finished exactly once after restart ----
rm -f "$OUT"/*
for point in claimed handled answered retired published; do
	mkreq c$point
	CMPR_TEST_CRASH_AT=$point; export CMPR_TEST_CRASH_AT
	start_daemon c$point http -c data/cmprouter.conf $DAEMON_ARGS
	unset CMPR_TEST_CRASH_AT
	drop c$point.req c$point.pki $IN
	i=0; while [ $i -lt 150 ] && kill -0 $PID 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
	check "sftp crash point '$point': the daemon died there" sh -c "! kill -0 $PID 2>/dev/null"
	wait $PID 2>/dev/null
	start_daemon c${point}2 http -c data/cmprouter.conf $DAEMON_ARGS
	wait_for "$OUT/c$point.rsp.pki"
	sleep 1
	check "... after the restart exactly one answer, accepted by openssl cmp" \
		sh -c "test \$(ls '$OUT' | grep -c '^c$point\.') -eq 1 && $C -cmd ir $MAC -newkey c$point.key -subject /CN=c$point -implicit_confirm -rspin '$OUT/c$point.rsp.pki' -certout c$point.pem"
	kill $PID; wait $PID 2>/dev/null
done

# ---- configuration errors ----
sed 's/^known_hosts = .*wrong_known_hosts$//' data/cmprouter.conf >data/nokh.conf
chmod 600 data/nokh.conf     # it holds the demo secret (cmprouterd(8) FILES)
"$BUILD/cmprouterd" -c data/nokh.conf $DAEMON_ARGS >nokh.out 2>nokh.err
check "an [sftp] group without known_hosts is refused (the host key must verify)" \
	grep -q "nokh.conf:[0-9]*: .*needs known_hosts" nokh.err
# ---- stopped while a step hangs on a server: cut off after a short grace ----
sed 's/^timeout = 3$/timeout = 60/' data/cmprouter.conf >data/stuck.conf
chmod 600 data/stuck.conf
start_daemon st http -c data/stuck.conf $DAEMON_ARGS
wait_grep st.err "sftp stuck: .*no SFTP subsystem; using SCP" >/dev/null
kill $PID
i=0; while [ $i -lt 600 ] && kill -0 $PID 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
check "stopped while a command hangs on a server (timeout 60 s): the step is cut off (logged) and the daemon ends" \
	sh -c "! kill -0 $PID 2>/dev/null && grep -q 'sftp stuck: stopping: the step in progress on 127.0.0.1:$XPORT is cut off' st.err" st.err
wait $PID 2>/dev/null
st=$?
check "... a clean stop: exit status 0 (was $st), 'stopped' logged" sh -c "test $st -eq 0 && grep -q 'stopped\$' st.err" st.err
check "no sanitizer report from any daemon (leaks, overflows, UB)" \
	sh -c "! cat d0.err d1.err d2.err ra1.err st.err | grep -q 'Sanitizer\|runtime error'"
