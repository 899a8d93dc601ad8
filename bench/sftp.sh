#!/bin/sh
# Remote folders over SSH: FILES request files dropped at once into a remote
# inbox served by a real OpenSSH sshd on 127.0.0.1, answered end to end by
# cmprouterd's [sftp] group, once over SFTP and once through an SCP-only
# server (no SFTP subsystem). Prints files/s for each and, as the baseline
# measured in the same invocation, the local file drop's files/s (same
# requests, same store, no SSH).
#   bench/sftp.sh [FILES]            (default 500)
# Prints "sftp F files/s", "scp F files/s", "local F files/s", the ratios
# and what one command over SSH costs there (SCP needs a few per batch); exits non-zero when a file was not answered exactly once.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
files=${1:-500}
SSHD=/usr/sbin/sshd
[ -x "$SSHD" ] || "$top/scripts/install-deps" openssh-server >/dev/null
[ -x "$top/build/gcc/cmprouterd" ] || "$top/scripts/build" gcc >/dev/null
B=$top/build/gcc
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cmpr-benchsftp.XXXXXX")
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null || true; done; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
cd "$tmp"
say() { echo "bench/sftp: $*" >&2; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- two sshd on loopback: with SFTP, and SCP only ----
mkdir -p ssh remote
chmod 700 ssh
ssh-keygen -q -t ed25519 -N '' -f ssh/host_key
ssh-keygen -q -t ed25519 -N '' -f ssh/user_key
cp ssh/user_key.pub ssh/authorized_keys
ME=$(id -un)
[ "$(id -u)" = 0 ] && mkdir -p /run/sshd && chmod 755 /run/sshd
SPORT=$(freeport)
LPORT=$(freeport)
# SHLVL=1: bash skips ~/.bashrc for sshd's commands (tests/integration/sftp.sh)
cat >ssh/sshd_config <<EOF
Port $SPORT
ListenAddress 127.0.0.1
HostKey $tmp/ssh/host_key
AuthorizedKeysFile $tmp/ssh/authorized_keys
PidFile $tmp/ssh/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers $ME
Subsystem sftp internal-sftp
MaxSessions 64
SetEnv SHLVL=1
EOF
sed -e "s/^Port .*/Port $LPORT/" -e '/^Subsystem/d' -e "s|sshd.pid|sshd2.pid|" ssh/sshd_config >ssh/sshd2_config
{
	echo "[127.0.0.1]:$SPORT $(cut -d' ' -f1,2 ssh/host_key.pub)"
	echo "[127.0.0.1]:$LPORT $(cut -d' ' -f1,2 ssh/host_key.pub)"
} >ssh/known_hosts
$SSHD -D -e -f "$tmp/ssh/sshd_config" 2>sshd.log &
pids="$pids $!"
$SSHD -D -e -f "$tmp/ssh/sshd2_config" 2>sshd2.log &
pids="$pids $!"

# ---- the daemon: embedded default plus [sftp fast] and [sftp legacy] ----
"$B/cmprouterd" --data-dir "$tmp/data" --http 127.0.0.1:0 >d0.out 2>d0.err &
D=$!
i=0
while [ $i -lt 300 ] && ! grep -q "listening on port" d0.out; do sleep 0.1; i=$((i + 1)); done
kill $D; wait $D 2>/dev/null || true
for g in fast:$SPORT:s legacy:$LPORT:l; do
	name=${g%%:*} rest=${g#*:}
	port=${rest%%:*} d=${rest#*:}
	mkdir -p "remote/$d-in" "remote/$d-out"
	printf '\n[sftp %s]\nhost = 127.0.0.1\nport = %s\nuser = %s\nidentity = %s/ssh/user_key\n' \
		"$name" "$port" "$ME" "$tmp"
	printf 'known_hosts = %s/ssh/known_hosts\nremote_inbox = %s/remote/%s-in\n' "$tmp" "$tmp" "$d"
	printf 'remote_outbox = %s/remote/%s-out\ninterval = 1\nsettle_ms = 10\n' "$tmp" "$d"
done >>data/cmprouter.conf
"$B/cmprouterd" -c data/cmprouter.conf --http 127.0.0.1:0 ${BENCH_LOG_LEVEL:+--log-level $BENCH_LOG_LEVEL} >d.out 2>d.err &
D=$!
pids="$pids $D"
i=0
while [ $i -lt 300 ] && ! grep -q "sftp legacy started" d.out; do sleep 0.1; i=$((i + 1)); done
S=$(sed -n 's/^secret=//p' data/demo-client.txt)

# run NAME INBOX OUTBOX: FILES requests dropped at once; files/s until all are answered
run() {
	rm -rf stage
	mkdir stage
	"$B/cmprouter" bench --write-requests stage --transactions "$files" --ref demo --secret "pass:$S" >/dev/null
	t0=$(date +%s.%N)
	find stage -name '*.pki' -exec mv -t "$2" {} +
	i=0
	while [ "$(ls "$3" | wc -l)" -lt "$files" ] && [ $i -lt 12000 ]; do sleep 0.1; i=$((i + 1)); done
	t1=$(date +%s.%N)
	got=$(ls "$3" | wc -l)
	twice=$(ls "$3" | grep -c '\.2\.rsp' || true)
	fps=$(python3 -c "print('%.1f' % ($got / ($t1 - $t0)))")
	say "$1: $got of $files answered ($twice twice) in $(python3 -c "print('%.1f' % ($t1 - $t0))") s: $fps files/s"
	echo "$1 $fps" >>rows
	[ "$got" -eq "$files" ] && [ "$twice" -eq 0 ]
}
# the cost of one command on the server (its shell's start-up), for reading the SCP row
t0=$(date +%s.%N)
for i in 1 2 3; do
	ssh -q -o BatchMode=yes -o UserKnownHostsFile="$tmp/ssh/known_hosts" -i ssh/user_key -p "$LPORT" 127.0.0.1 true \
		</dev/null || say "ssh true failed"
done
t1=$(date +%s.%N)
cmd=$(python3 -c "print('%.3f' % (($t1 - $t0) / 3))")
rc=0
run local data/filedrop/inbox data/filedrop/outbox || rc=1
run sftp remote/s-in remote/s-out || rc=1
run scp remote/l-in remote/l-out || rc=1
python3 - <<'PY'
rows = dict(l.split() for l in open("rows"))
loc = float(rows["local"])
for k in ("sftp", "scp"):
    print("%-6s %8.1f files/s   %.2f of the local file drop" % (k, float(rows[k]), float(rows[k]) / loc if loc else 0))
print("%-6s %8.1f files/s   (baseline)" % ("local", loc))
PY
echo "one command over SSH (connect, log in, run true) takes $cmd s on this server"
[ $rc -eq 0 ] || { say "not every file was answered exactly once; the daemon's log ends:"; tail -n 20 d.err >&2; }
exit $rc
