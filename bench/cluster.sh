#!/bin/sh
# The store's cost (issue 18): cmprouterd on SQLite, on PostgreSQL, and two
# nodes on one PostgreSQL, all on this machine, beside the crypto bound
# measured in the same run (ratios, not absolute figures: the machine is
# shared). ir + certConf, PasswordBasedMac, P-256 keys, HTTP keep-alive,
# closed loop, 32 clients; with two nodes, two load generators of 16 clients
# at once, one per node, their figures added. PostgreSQL is started here as
# the tests start it (tests/integration/lib.sh start_pg: initdb in a temp
# folder, loopback; fsync and synchronous_commit on, as in production).
#   bench/cluster.sh [SECONDS]      (default 10)
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
"$top/scripts/build" gcc >/dev/null || exit 1
TOP=$top
BUILD=$top/build/gcc
. "$top/tests/integration/lib.sh"
cd "$TMP" || exit 1
B=$BUILD
ARGS="--http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0"
say() { echo "bench/cluster.sh: $*" >&2; }

# tps of one bench run: SERVER CLIENTS OUTFILE
load() {
	"$B/cmprouter" bench --server "$1" $MAC --clients "$2" --duration "$secs" --json >"$3" 2>"$3.err"
}
tps() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('%.1f %d' % (j['tps'], sum(j['errors'].values())))" "$1"; }

start_pg >pg.out 2>&1 || { say "PostgreSQL did not start:"; cat pg.out >&2; exit 1; }

"$B/cmprouter" bench --crypto-bound --ref r --secret pass:bound --duration "$secs" --json >bound.json
bound=$(tps bound.json | cut -d' ' -f1)
say "crypto bound: $bound tps"

# one embedded default; the same configuration on SQLite and on PostgreSQL
start_daemon d0 http --data-dir "$TMP/data" $ARGS
kill $PID; wait $PID 2>/dev/null
MAC="--ref demo --secret pass:$(sed -n 's/^secret=//p' data/demo-client.txt)"
sed "s|^data_dir = \.$|data_dir = .\nstore = $PGSTORE\nnode = a|" data/cmprouter.conf >data/pg-a.conf
sed "s|^data_dir = \.$|data_dir = .\nstore = $PGSTORE\nnode = b|; s|^\[filedrop default\]$|[filedrop default]\ninstance = b|; s|^\[mail\]$|[mail]\ninstance = b|; s|^queue = mail-queue$|queue = mail-queue-b|" \
	data/cmprouter.conf >data/pg-b.conf
sed -i "s|^\[filedrop default\]$|[filedrop default]\ninstance = a|" data/pg-a.conf
chmod 600 data/pg-a.conf data/pg-b.conf

start_daemon sq http -c data/cmprouter.conf $ARGS
load "http://127.0.0.1:$PORT/.well-known/cmp" 32 sq.json
kill $PID; wait $PID 2>/dev/null
set -- $(tps sq.json); sq=$1; sq_err=$2
say "1 node, SQLite: $sq tps"

start_daemon pa http -c data/pg-a.conf $ARGS
A="http://127.0.0.1:$PORT/.well-known/cmp"
load "$A" 32 pg1.json
set -- $(tps pg1.json); pg1=$1; pg1_err=$2
say "1 node, PostgreSQL: $pg1 tps"

start_daemon pb http -c data/pg-b.conf $ARGS
Bn="http://127.0.0.1:$PORT/.well-known/cmp"
load "$A" 16 pg2a.json &
la=$!
load "$Bn" 16 pg2b.json
wait $la
set -- $(tps pg2a.json); a2=$1; a2_err=$2
set -- $(tps pg2b.json); b2=$1; b2_err=$2
pg2=$(python3 -c "print('%.1f' % ($a2 + $b2))")
say "2 nodes, PostgreSQL: $pg2 tps ($a2 + $b2)"

python3 - "$bound" "$sq" "$sq_err" "$pg1" "$pg1_err" "$pg2" "$((a2_err + b2_err))" <<'PY'
import sys
bound, sq, sqe, pg1, pg1e, pg2, pg2e = sys.argv[1:]
bound, sq = float(bound), float(sq)
print("store                  tps   errors  / crypto bound  / 1 node SQLite")
for name, t, e in (("1 node, SQLite", sq, sqe), ("1 node, PostgreSQL", float(pg1), pg1e),
                   ("2 nodes, PostgreSQL", float(pg2), pg2e)):
    print("%-20s %7.1f %7s %14.2f %15.2f" % (name, t, e, t / bound if bound else 0, t / sq if sq else 0))
print("crypto bound %.1f tps; 32 clients, %s" % (bound, "ir + certConf, PasswordBasedMac, P-256, HTTP keep-alive"))
PY
