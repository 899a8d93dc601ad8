#!/bin/sh
# The PostgreSQL store (core/store_pg.c) against a real PostgreSQL started
# by the test (Debian's postgresql, initdb in a temp folder, loopback and a
# Unix socket): the store's unit tests run on it (tests/unit/test_store.c,
# the same tests as on SQLite, plus a batch lost, connections cut under the
# store and open errors).
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"

start_pg >pgstart.out 2>&1
check "a PostgreSQL of the test's own runs (port $PGPORT_T)" sh -c "test -n '$PGSTORE'" pgstart.out
[ -n "${PGSTORE:-}" ] || exit 0

# ---- the store's unit tests, on PostgreSQL ----
CMOCKA_MESSAGE_OUTPUT=TAP CMPR_TEST_STORE="$PGSTORE" timeout 300 "$BUILD/tests/unit/test_store" \
	>unit.tap 2>unit.err
rc=$?
check "test_store runs on PostgreSQL (exit $rc)" sh -c "test $rc -eq 0 && grep -q '^ok ' unit.tap" unit.tap unit.err
sed -n 's/^\(ok\|not ok\) [0-9]* - \(.*\)$/\1|\2/p' unit.tap | while IFS='|' read -r res name; do
	if [ "$res" = ok ]; then ok "store on PostgreSQL: $name"; else not_ok "store on PostgreSQL: $name"; fi
done

# ---- three cmprouterd nodes on one PostgreSQL ----
# one embedded default made once; every node runs it with the store in
# PostgreSQL (CA keys on every node, docs/cluster.md)
ARGS="--http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0"
start_daemon d0 http --data-dir "$TMP/data" $ARGS
kill $PID; wait $PID 2>/dev/null
sed -i "s|^data_dir = \.$|data_dir = .\nstore = $PGSTORE\ncheck_after = 1|" data/cmprouter.conf
CONF=data/cmprouter.conf
cert_tools
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
MAC="--ref demo --secret pass:$SECRET"
TR="--trusted data/ca/root.pem"
# refused CONF LOG: cmprouterd -c CONF stops by itself (bounded: 30 s), its
# error output in LOG.err
refused() {
	"$BUILD/cmprouterd" -c "$1" $ARGS >"$2.out" 2>"$2.err" &
	_rp=$!
	_i=0; while [ $_i -lt 300 ] && kill -0 $_rp 2>/dev/null; do sleep 0.1; _i=$((_i + 1)); done
	kill -9 $_rp 2>/dev/null
	wait $_rp 2>/dev/null
}
node() {    # node NAME: starts it; sets its URL in NAME_URL, its admin port in NAME_ADMIN
	# on the shared inbox and Maildir, each node claims files and mails under an
	# instance of its own; each sends its replies from a queue of its own
	sed "s|^\[filedrop default\]$|[filedrop default]\ninstance = $1|; s|^\[mail\]$|[mail]\ninstance = $1|; s|^queue = mail-queue$|queue = mail-queue-$1|" \
		$CONF >data/$1.conf
	chmod 600 data/$1.conf
	start_daemon "$1" http -c data/$1.conf $ARGS
	eval "$1_URL=http://127.0.0.1:$PORT/.well-known/cmp"
	eval "$1_PID=$PID"
	eval "$1_ADMIN=$(sed -n 's/^cmprouterd: admin listening on port \([0-9]*\)$/\1/p' "$1.out")"
}
node A; node B; node C
check "three nodes run on one PostgreSQL (A $A_URL, B $B_URL, C $C_URL)" \
	sh -c "test -n '$A_ADMIN' -a -n '$B_ADMIN' -a -n '$C_ADMIN'" A.err B.err C.err

# carry FILE NODE: the request file to NODE, its answer into FILE.rsp
carry() { "$R" send "$2" --in "$1" --out "$1.rsp" --timeout 30 2>"$1.send.err"; }

# ---- ir answered by A, certConf by B ----
"$R" ir --request-out one.pki $MAC $TR --newkey ec:P-256 --subject /CN=node-one --out one.pem 2>one.err
carry one.pki "$A_URL"
"$R" finish --state one.pki.state --response one.pki.rsp --secret pass:$SECRET 2>one2.err
check "ir answered by node A: the certificate, and a certConf to carry" sh -c \
	"test $? -eq 6 && grep -q 'certConf written' one2.err && verify one.pem" one2.err
carry one.pki "$B_URL"
"$R" finish --state one.pki.state --response one.pki.rsp --secret pass:$SECRET 2>one3.err
check "... its certConf answered by node B (pkiConf): transaction complete" sh -c \
	"test $? -eq 0 && grep -q complete one3.err" one3.err
check "... confirmed in the shared store, seen by any node's CLI" sh -c \
	"'$R' -c $CONF certs --subject node-one --json | grep -q '\"confirmed\":true'"

# ---- waiting for approval: ir at A, approved by B's CLI, polled at C, certConf at B ----
"$R" ir --request-out two.pki $MAC $TR --newkey ec:P-256 --subject /CN=node-two --profile manual \
	--out two.pem 2>two.err
carry two.pki "$A_URL"
"$R" finish --state two.pki.state --response two.pki.rsp --secret pass:$SECRET 2>two2.err
check "a request for approval answered 'waiting' by node A" sh -c \
	"test $? -eq 6 && grep -q 'pollReq written' two2.err" two2.err
tid=$(pending_tid $CONF)
"$R" -c $CONF approve "$tid" >approve.out 2>&1
check "the operator approves it with the CLI (transactionID $tid)" sh -c "test -n '$tid'" approve.out
carry two.pki "$C_URL"
"$R" finish --state two.pki.state --response two.pki.rsp --secret pass:$SECRET 2>two3.err
check "... the poll at node C gets the certificate" sh -c \
	"test $? -eq 6 && grep -q 'certConf written' two3.err && verify two.pem" two3.err
carry two.pki "$B_URL"
"$R" finish --state two.pki.state --response two.pki.rsp --secret pass:$SECRET 2>two4.err
check "... and node B confirms it" sh -c "test $? -eq 0 && grep -q complete two4.err" two4.err

# ---- a node killed -9 mid-transaction, another finishes it ----
"$R" ir --request-out three.pki $MAC $TR --newkey ec:P-256 --subject /CN=node-three --out three.pem 2>three.err
carry three.pki "$A_URL"
kill -9 $A_PID; wait $A_PID 2>/dev/null
"$R" finish --state three.pki.state --response three.pki.rsp --secret pass:$SECRET 2>three2.err
carry three.pki "$C_URL"
"$R" finish --state three.pki.state --response three.pki.rsp --secret pass:$SECRET 2>three3.err
check "node A killed -9 after the ip: node C takes the certConf (pkiConf)" sh -c \
	"test $? -eq 0 && grep -q complete three3.err" three2.err three3.err
"$R" send "$C_URL" --in one.pki --out replay.rsp --timeout 30 2>replay.err
check "the certConf of a finished transaction, sent to another node, is answered from the store" sh -c \
	"'$R' dump replay.rsp | grep -q 'pkiconf\|pkiConf'" replay.err

# ---- two nodes issuing at once: no serial twice, nothing lost ----
"$R" bench --server "$B_URL" $MAC --clients 8 --transactions 150 --json >bB.json 2>bB.err &
bpid=$!
"$R" bench --server "$C_URL" $MAC --clients 8 --transactions 150 --json >bC.json 2>bC.err
wait $bpid
check "150 + 150 enrollments at nodes B and C at once, no error" python3 -c "
import json
for f in ('bB.json', 'bC.json'):
    j = json.load(open(f))
    assert j['transactions'] == 150 and j['errors'] == {}, (f, j)
"
"$R" -c $CONF certs --json >all.json 2>all.err
check "... every certificate in the shared store, each serial once" python3 -c "
import json
c = json.load(open('all.json'))
s = [x['serial'] for x in c]
assert len(s) == len(set(s)), 'a serial twice'
assert len(s) >= 303, len(s)
"

# ---- the database down under the nodes, then back ----
$_pgrun "$_pgbin/pg_ctl" -D "$TMP/pg/data" -m fast -w -t 60 stop >pgstop.out 2>&1
"$R" bench --server "$B_URL" $MAC --clients 1 --transactions 3 --json >down.json 2>down.err
check "the database down: node B answers systemUnavail (no hang)" python3 -c "
import json; j = json.load(open('down.json')); assert j['errors'].get('systemUnavail', 0) > 0, j" down.err
metric=$(curl -s -m 10 "http://127.0.0.1:$B_ADMIN/metrics" | sed -n 's/^cmprouter_store_errors_total //p')
curl -s -m 10 -o hz.txt -w '%{http_code}' "http://127.0.0.1:$B_ADMIN/healthz" >hz.code
check "... /healthz answers 503 saying the store fails, the errors counted ($metric)" sh -c \
	"test \"\$(cat hz.code)\" = 503 && grep -q '^store failing' hz.txt && test '${metric:-0}' -gt 0" hz.txt
$_pgrun "$_pgbin/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/log" -w -t 60 \
	-o "-c listen_addresses=127.0.0.1 -p $PGPORT_T -k $TMP/pg -c max_connections=200" start >pgrestart.out 2>&1
check "PostgreSQL back (every connection of before cut)" sh -c "test $? -eq 0" pgrestart.out "$TMP/pg/log"
i=0
while [ $i -lt 60 ]; do
	rm -f after.key
	"$R" ir --server "$B_URL" $MAC $TR --newkey ec:P-256 --subject /CN=after-restart --out after.pem \
		--total-timeout 30 2>after.err && break
	sleep 0.5; i=$((i + 1))
done
check "node B enrolls again without a restart of its own (after $i failed tries)" sh -c \
	"verify after.pem && test $i -le 1" after.err B.err
check "... its /healthz says ok" healthz_ok $B_ADMIN
check "... and it said what happened, with no password in its log" sh -c \
	"grep -q 'store postgresql://cmpr@' B.err && ! grep -q 'pg-pw-Zq81x' B.err A.err C.err D.err" B.err

# ---- a password over TCP (scram-sha-256), from a passfile as libpq reads it ----
printf '127.0.0.1:%s:postgres:cmpr:pg-pw-Zq81x\n' "$PGPORT_T" >pgpass
chmod 600 pgpass
sed "s|^store = .*|store = postgresql://cmpr@127.0.0.1:$PGPORT_T/postgres?passfile=$TMP/pgpass\&sslmode=disable|" \
	$CONF >tcp.conf
chmod 600 tcp.conf
CONF_SAVE=$CONF; CONF=tcp.conf; node D; CONF=$CONF_SAVE
"$R" ir --server "$D_URL" $MAC $TR --newkey ec:P-256 --subject /CN=over-tcp --out tcp.pem 2>tcp.err
check "a node on TCP with its password in a passfile enrolls" sh -c "test $? -eq 0 && verify tcp.pem" tcp.err D.err
sed "s|^store = .*|store = postgresql://cmpr:wrong-pw@127.0.0.1:$PGPORT_T/postgres?sslmode=disable|" $CONF >data/bad.conf
chmod 600 data/bad.conf
refused data/bad.conf bad
sed "s|^store = .*|store = postgresql://cmpr@127.0.0.1:$PGPORT_T/postgres?passfile=$TMP/pgpass\&sslmode=require|" \
	$CONF >data/ssl.conf
chmod 600 data/ssl.conf
refused data/ssl.conf ssl
check "sslmode=require against a server without TLS: refused at start, as libpq decides" \
	grep -q 'server does not support SSL' ssl.err
check "a wrong password: cmprouterd refuses to start, says why, without the password" sh -c \
	"grep -q 'password authentication failed' bad.err && ! grep -q 'wrong-pw' bad.err bad.out" bad.err

# ---- the file drop: nodes B, C and D on one inbox, 40 requests ----
mkdir reqs
"$R" bench --write-requests reqs --transactions 40 $MAC >reqs.log 2>&1
for f in reqs/*.pki; do
	cp "$f" "data/filedrop/inbox/$(basename "$f").tmp" && mv "data/filedrop/inbox/$(basename "$f").tmp" \
		"data/filedrop/inbox/$(basename "$f")"
done
i=0
while [ $i -lt 1200 ] && [ "$(ls data/filedrop/outbox | grep -c '\.rsp\.pki$')" -lt 40 ]; do
	sleep 0.1; i=$((i + 1))
done
check "40 request files dropped on an inbox three nodes share: 40 answers" sh -c \
	"test \$(ls data/filedrop/outbox | grep -c '\.rsp\.pki\$') -eq 40 && test -z \"\$(ls data/filedrop/inbox | grep -v '^\.')\""
for f in data/filedrop/outbox/*.rsp.pki; do "$R" dump --json "$f"; echo; done >answers.json 2>answers.err
check "... each one certificate, each serial once, every request answered exactly once" python3 -c "
import json
a = [json.loads(l) for l in open('answers.json') if l.strip()]
assert len(a) == 40, len(a)
bad = [x for x in a if x['body'] != 'ip' or x['content']['response'][0]['status']['status'] != 'accepted']
assert not bad, json.dumps(bad[0])[:600]
ser = [x['content']['response'][0]['certificate']['serial'] for x in a]
assert len(set(ser)) == 40, 'a serial twice'
"
for n in B C D; do grep -c 'filedrop default.*answered\|filedrop.*rsp.pki' $n.err; done >byn.txt 2>&1
check "... more than one node took part (files per node: $(tr '\n' ' ' <byn.txt))" sh -c \
	"test \$(grep -c -v '^0\$' byn.txt) -ge 2" B.err C.err D.err

# ---- mail: nodes B, C and D reading one Maildir, 30 mails ----
mkdir mreqs
"$R" bench --write-requests mreqs --transactions 30 $MAC >mreqs.log 2>&1
python3 - "$TMP/data/Maildir" mreqs <<'PYEOF'
import os, sys
from email.message import EmailMessage
md, src = sys.argv[1], sys.argv[2]
for i, f in enumerate(sorted(os.listdir(src))):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "site@site.test", "ca@cmp.test", "enroll %d" % i
    m["Message-ID"] = "<mm%d@site.test>" % i
    m.set_content("x")
    m.add_attachment(open(os.path.join(src, f), "rb").read(), maintype="application", subtype="pkixcmp",
                     filename="mm%d.pki" % i)
    name = "1700000100.mm%d.site" % i
    open(os.path.join(md, "tmp", name), "w").write(m.as_string())
    os.rename(os.path.join(md, "tmp", name), os.path.join(md, "new", name))
PYEOF
i=0
while [ $i -lt 1200 ] && [ "$(ls data/mail-queue-B data/mail-queue-C data/mail-queue-D 2>/dev/null | grep -c '\.msg$')" -lt 30 ]; do
	sleep 0.1; i=$((i + 1))
done
check "30 mails in a Maildir three nodes read: 30 replies queued, the Maildir's new/ empty" sh -c \
	"test \$(ls data/mail-queue-B data/mail-queue-C data/mail-queue-D | grep -c '\.msg\$') -eq 30 && test -z \"\$(ls data/Maildir/new)\" \
	 && test \$(ls data/Maildir/cur | grep -c 'mm') -eq 30"
cat data/mail-queue-B/*.msg data/mail-queue-C/*.msg data/mail-queue-D/*.msg >replies.txt
check "... each reply answers one mail (In-Reply-To), no mail answered twice" python3 -c "
import re
r = re.findall(r'^In-Reply-To: <(mm[0-9]+)@site.test>', open('replies.txt').read(), re.M)
assert len(r) == 30 and len(set(r)) == 30, sorted(r)
"
# the file drop instance changed, the mail instance (and queue) still B's
sed '/^\[filedrop default\]$/{n;s/^instance = B$/instance = B2/}' data/B.conf >data/B2.conf
chmod 600 data/B2.conf
refused data/B2.conf B2
check "a daemon with another node's mail instance is refused (it would take that node's claims)" \
	grep -q 'mail: .*is in use by another process; give each daemon reading one Maildir its own instance' B2.err
for n in B C D; do ls data/mail-queue-$n | grep -c '\.msg$'; done >mbyn.txt 2>&1
check "... more than one node took part (replies per node: $(tr '\n' ' ' <mbyn.txt))" sh -c \
	"test \$(grep -c -v '^0\$' mbyn.txt) -ge 2"

# ---- TCP polling references are shared: pollRep from node G, pollReq at node H ----
sed 's/^\[listen tcp\]$/[listen tcp]\npoll_after_ms = 0\npoll_check_after = 1/' $CONF >poll.conf
CONF_SAVE=$CONF; CONF=poll.conf; node G; node H; CONF=$CONF_SAVE
GT=$(sed -n 's/^cmprouterd: tcp listening on port \([0-9]*\)$/\1/p' G.out)
HT=$(sed -n 's/^cmprouterd: tcp listening on port \([0-9]*\)$/\1/p' H.out)
mkdir preq
"$R" bench --write-requests preq --transactions 1 --implicit-confirm $MAC >preq.log 2>&1
python3 "$TOP/tests/integration/tcppeer.py" "$GT" pollstart preq/*.pki >ps.log 2>&1
REF=$(sed -n 's/^pollstart type=1 ref=\([0-9a-f]*\)$/\1/p' ps.log)
check "a request over TCP at node G: pollRep with a reference (TCP-Message polling)" \
	sh -c "test -n '$REF'" ps.log G.err
python3 "$TOP/tests/integration/tcppeer.py" "$HT" pollonly "${REF:-0}" poll.rsp >po.log 2>&1
check "... the pollReq with that reference at node H gets the answer: a certificate" sh -c \
	"grep -q 'pollonly final=5' po.log && '$R' dump --json poll.rsp | grep -q '\"status\":{\"status\":\"accepted\"}'" po.log H.err

# ---- two RA nodes on one database: the node driving a forwarded request dies ----
# upstream: an offline CA reached through its file drop folders; the RA
# nodes E and F keep the client's protection (route up); their store is a
# database of its own; leases of 2 s
start_daemon U0 http --data-dir "$TMP/up" $ARGS
kill $PID; wait $PID 2>/dev/null
US=$(sed -n 's/^secret=//p' up/demo-client.txt)
psql -h "$TMP/pg" -p "$PGPORT_T" -U cmpr -d postgres -q -c 'CREATE DATABASE ra' >createdb.out 2>&1
cat >ra.conf <<RAEOF
[router]
data_dir = $TMP
store = postgresql:host=$TMP/pg port=$PGPORT_T user=cmpr dbname=ra
lease = 2

[client demo]
reference = demo
secret = pass:$US

[route up]
upstream = file:$TMP/up/filedrop/inbox,$TMP/up/filedrop/outbox
protection = keep
check_after = 1
RAEOF
for n in E F; do
	sed "s|^lease = 2$|lease = 2\nnode = $n|" ra.conf >data/ra-$n.conf
	chmod 600 data/ra-$n.conf
done
start_daemon E http -c data/ra-E.conf $ARGS
E_PID=$PID; E_URL="http://127.0.0.1:$PORT/.well-known/cmp"
start_daemon F http -c data/ra-F.conf $ARGS
F_PID=$PID; F_URL="http://127.0.0.1:$PORT/.well-known/cmp"
check "two RA nodes without a CA share a database of their own (E, F)" sh -c "test -n '$E_URL' -a -n '$F_URL'" \
	createdb.out E.err F.err
"$R" ir --server "$E_URL" --ref demo --secret pass:$US --trusted up/ca/root.pem --newkey ec:P-256 \
	--subject /CN=via-ra --out via.pem --state via.state --total-timeout 3 --max-wait 1 2>via1.err
check "an ir through node E to the offline CA: waiting (the client stops, its state saved)" sh -c \
	"test $? -eq 6 && test -s via.state" via1.err
wait_for up/filedrop/inbox/*.pki 2>/dev/null
check "... node E wrote it to the CA's inbox (one file)" sh -c "test \$(ls up/filedrop/inbox | grep -c '\.pki\$') -eq 1"
kill -9 $E_PID; wait $E_PID 2>/dev/null
start_daemon U1 http -c up/cmprouter.conf $ARGS
wait_grep F.err 'taken over from node E' 300
check "node E killed -9; node F takes the request over once E's lease ended" grep -q 'route up tid=.*: taken over from node E, whose lease ended' F.err
"$R" poll --state via.state --server "$F_URL" --secret pass:$US --total-timeout 120 --max-wait 1 2>via2.err
check "... the client's poll at F gets the certificate; certConf and pkiConf through F" sh -c \
	"test $? -eq 0 && openssl verify -CAfile up/ca/root.pem -untrusted up/ca/issuing.pem via.pem" via2.err F.err U1.err
check "... the CA got the ir once (one answer for it in its log)" sh -c \
	"test \$(grep -c 'issued: .*CN=via-ra' U1.err) -eq 1" U1.err

# ---- a single node's SQLite moved into the cluster (cmprouter store copy) ----
start_daemon s0 http --data-dir "$TMP/single" $ARGS
SS=$(sed -n 's/^secret=//p' single/demo-client.txt)
"$R" ir --server "http://127.0.0.1:$PORT/.well-known/cmp" --ref demo --secret pass:$SS \
	--trusted single/ca/root.pem --newkey ec:P-256 --subject /CN=single-1 --out single1.pem 2>single1.err
"$R" ir --server "http://127.0.0.1:$PORT/.well-known/cmp" --ref demo --secret pass:$SS \
	--trusted single/ca/root.pem --newkey ec:P-256 --subject /CN=single-2 --out single2.pem 2>single2.err
"$R" -c single/cmprouter.conf revoke "$(serial single2.pem)" --reason 1 >rv.out 2>&1
kill $PID; wait $PID 2>/dev/null
check "a single node on SQLite enrolled two and revoked one" sh -c \
	"test -s single1.pem -a -s single2.pem && '$R' -c single/cmprouter.conf certs --json | grep -q revoked" rv.out
"$R" -c $CONF store copy "sqlite:$TMP/single/cmprouter.db" >copy1.out 2>copy1.err
check "store copy into PostgreSQL: every record copied, the counts add up" sh -c \
	"test $? -eq 0 && grep -q 'every record of sqlite:' copy1.out \
	 && grep -q '^certificates  *2  *2  *0$' copy1.out && grep -q '^transactions  *2  *2  *0$' copy1.out" copy1.out copy1.err
"$R" -c $CONF store copy "sqlite:$TMP/single/cmprouter.db" >copy2.out 2>copy2.err
check "... run again: nothing copied twice, everything present" sh -c \
	"test $? -eq 0 && grep -q '^certificates  *2  *0  *2$' copy2.out && grep -q '^audit entries  *[0-9]*  *0  *[1-9]' copy2.out" \
	copy2.out copy2.err
check "... the cluster's CLI sees the copied certificates, revocation included" sh -c \
	"'$R' -c $CONF certs --subject single-2 --json | grep -q '\"status\":\"revoked\"' \
	 && '$R' -c $CONF certs --subject single-1 --json | grep -q '\"status\":\"valid\"'"
"$R" -c $CONF store migrate >migrate.out 2>&1
check "store migrate: the schema is up to date (names the store without a password)" \
	grep -q '^store postgresql://cmpr@.*: schema up to date$' migrate.out

check "no sanitizer report from any node (leaks, overflows, UB)" \
	sh -c "! cat A.err B.err C.err D.err E.err F.err G.err H.err | grep -q 'Sanitizer\|runtime error'"
