#!/bin/sh
# cmprouterd over HTTP with the openssl cmp client: the embedded default,
# every operation, polling with approval, 50 clients at once, hostile HTTP,
# reload and shutdown. Loopback only; every wait is bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"
C="openssl cmp -config /dev/null -batch"
# ---- the embedded default ----
start_daemon d1 http --data-dir "$TMP/data" --http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0
check "cmprouterd starts on its embedded default" test -n "$PORT"
check "it prints a ready-to-paste openssl cmp line" grep -q "openssl cmp -config /dev/null -server 127.0.0.1:$PORT/.well-known/cmp" d1.out
check "demo-client.txt holds reference= and secret=" sh -c "grep -q '^reference=demo' data/demo-client.txt && grep -q '^secret=' data/demo-client.txt"
check "the trust anchor is in data/ca/root.pem" openssl x509 -in data/ca/root.pem -noout
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
S="127.0.0.1:$PORT/.well-known/cmp"
MAC="-ref demo -secret pass:$SECRET -recipient /CN=cmprouter_demo_issuing_CA"
for k in k1 k2 k3 k4; do openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $k.key 2>/dev/null; done

# the printed command, run as printed (ir with certConf)
line=$(grep "openssl cmp -config" d1.out | sed 's/ \\$//')
cont=$(grep -A2 "openssl cmp -config" d1.out | tail -2 | sed 's/ \\$//' | tr -d '\n')
sh -c "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out demo.key 2>/dev/null; $line $cont" >c0.log 2>&1
check "the printed command enrolls (ir, certConf, pkiConf over HTTP)" test -s demo.pem
check "the certificate verifies against DIR/ca/root.pem" \
	openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem demo.pem

$C -server $S $MAC -cmd cr -newkey k1.key -subject /CN=cr1 -implicit_confirm -certout cr1.pem >c1.log 2>&1
check "cr with implicit confirm" test -s cr1.pem
openssl req -new -key k2.key -subj /CN=p10 -out p10.csr 2>/dev/null
$C -server $S/pkcs10 $MAC -cmd p10cr -csr p10.csr -certout p10.pem >c2.log 2>&1
check "p10cr on /.well-known/cmp/pkcs10 (operation label)" test -s p10.pem
$C -server $S/initialization $MAC -cmd cr -newkey k2.key -subject /CN=x -certout x.pem \
	-trusted data/ca/root.pem >c2b.log 2>&1
check "cr on the initialization label is refused (RFC 9483 6.1)" grep -q "badRequest" c2b.log
$C -server $S $MAC -cmd genm -infotype signKeyPairTypes >c3.log 2>&1
check "genm -> genp" grep -q "received GENP" c3.log
$C -server $S -cmd kur -cert demo.pem -key demo.key -newkey k3.key -trusted data/ca/root.pem \
	-certout kur.pem >c4.log 2>&1
check "kur signed with the old certificate, over HTTP" test -s kur.pem
$C -server $S $MAC -cmd rr -oldcert cr1.pem -revreason 4 >c5.log 2>&1
check "rr by the enrolling client -> revocation accepted" grep -q "revocation accepted\|received RP" c5.log
$C -server $S $MAC -cmd ir -newkey k4.key -subject /CN=ka -keep_alive 2 -certout ka.pem >c6.log 2>&1
check "-keep_alive 2 (the connection stays up for certConf)" test -s ka.pem
$C -server $S -ref demo -secret pass:wrong -recipient /CN=x -cmd ir -newkey k4.key -subject /CN=w \
	-trusted data/ca/root.pem -certout w.pem >c7.log 2>&1
check "wrong secret: a signed error with badMessageCheck" grep -q "badMessageCheck" c7.log
$C -server $S -cmd ir -unprotected_requests -recipient /CN=x -newkey k4.key -subject /CN=u \
	-trusted data/ca/root.pem -certout u.pem >c8.log 2>&1
check "unprotected request: a signed error" grep -q "badMessageCheck\|not protected" c8.log
check "unknown path: 404" sh -c "test \$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/pkixcmp' --data-binary @/dev/null http://127.0.0.1:$PORT/nope) = 404"
check "metrics count the answered requests" sh -c \
	"curl -s http://127.0.0.1:\$(sed -n 's/^cmprouterd: admin listening on port //p' d1.out)/metrics | grep -q 'cmprouter_requests_total{medium=\"http\",outcome=\"answered\"} [1-9]'"

APORT=$(sed -n 's/^cmprouterd: admin listening on port //p' d1.out)
check "metrics count CMP requests by body type and answers by status" sh -c \
	"curl -s http://127.0.0.1:$APORT/metrics | grep -q 'cmprouter_cmp_requests_total{body=\"ir\"} [1-9]' && curl -s http://127.0.0.1:$APORT/metrics | grep -q 'cmprouter_cmp_answers_total{status=\"rejection\"}'"
check "healthz answers ok" sh -c "curl -s http://127.0.0.1:$APORT/healthz | grep -qx ok"

# ---- manual approval while the client polls ----
sed -i 's/^data_dir = \.$/data_dir = .\ncheck_after = 1/' data/cmprouter.conf
kill -HUP $PID
check "SIGHUP reloads the configuration" wait_grep d1.err "SIGHUP: configuration .* reloaded"
$C -server 127.0.0.1:$PORT/.well-known/cmp/p/manual $MAC -cmd cr -newkey k4.key -subject /CN=manual \
	-certout manual.pem -total_timeout 60 >c9.log 2>&1 &
CL=$!
tid=$(pending_tid data/cmprouter.conf)
check "the request waits for approval" test -n "$tid"
check "approve from the CLI while the client polls" "$R" -c data/cmprouter.conf approve "$tid"
i=0
while [ $i -lt 150 ] && kill -0 $CL 2>/dev/null; do sleep 0.2; i=$((i + 1)); done
check "the polling client gets its certificate" sh -c "test -s manual.pem && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem manual.pem"
check "the client polled (pollReq/pollRep)" grep -q "POLLREP\|pollRep\|received POLL" c9.log

# ---- 50 clients at once, each its own transaction ----
n=0
par=""
while [ $n -lt 50 ]; do
	$C -server $S $MAC -cmd ir -newkey k1.key -subject "/CN=par-$n" -implicit_confirm -certout par-$n.pem \
		-total_timeout 120 >par-$n.log 2>&1 &
	par="$par $!"
	n=$((n + 1))
done
for j in $par; do wait $j; done
ok_count=$(ls par-*.pem 2>/dev/null | wc -l)
if [ "$ok_count" -eq 50 ]; then ok "50 parallel clients all get their certificate"; else not_ok "only $ok_count of 50 parallel clients succeeded"; fi
check "each got its own subject" sh -c "openssl x509 -in par-17.pem -noout -subject | grep -q 'par-17'"

# ---- reload and shutdown ----
echo "[bogus group]" >>data/cmprouter.conf
kill -HUP $PID
i=0
while [ $i -lt 100 ] && ! grep -q "configuration refused" d1.err; do sleep 0.1; i=$((i + 1)); done
check "a bad configuration on SIGHUP is refused and logged" grep -q "configuration refused.*unknown group \[bogus group\]" d1.err
$C -server $S $MAC -cmd ir -newkey k1.key -subject /CN=after -implicit_confirm -certout after.pem >c10.log 2>&1
check "the daemon keeps serving with the old configuration" test -s after.pem
sed -i '$d' data/cmprouter.conf
printf '[frobnicate smtp]\nx = 1\n' >bad.conf
cat data/cmprouter.conf >>bad.conf
timeout 20 "$BUILD/cmprouterd" -c bad.conf >bad.out 2>bad.err
check "a group no transport claims stops the start, with file:line" \
	grep -q "bad.conf:1: unknown group \[frobnicate smtp\]" bad.err
kill -TERM $PID
i=0
while [ $i -lt 50 ] && kill -0 $PID 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
wait $PID
rc=$?
check "SIGTERM: drains and exits 0" test "$rc" -eq 0

# ---- hostile HTTP, with short timeouts ----
cat >>data/cmprouter.conf <<'EOF'
EOF
sed -i 's/^address = 127.0.0.1:[0-9]*$/address = 127.0.0.1:0/' data/cmprouter.conf
python3 - data/cmprouter.conf <<'PY'
import sys, re
p = sys.argv[1]
s = open(p).read()
s = s.replace("[listen http]\n", "[listen http]\nheader_timeout = 2\nbody_timeout = 2\nidle_timeout = 3\nmax_body = 200k\n"
              "max_header = 4k\nmax_connections = 1010\npaths = /pkix, /ejbca/publicweb/cmp/alias:manual\n")
open(p, "w").write(s)
PY
start_daemon d2 http -c data/cmprouter.conf
check "restart with short timeouts" test -n "$PORT"
check "the start-up log names every path served, configured ones with their label" \
	grep -q "http: listening on 127.0.0.1:$PORT (/.well-known/cmp, /.well-known/cmp/p/LABEL, /pkix, /ejbca/publicweb/cmp/alias \[label manual\])" d2.err
S="127.0.0.1:$PORT/.well-known/cmp"
check "GET: 405 with Allow: POST" sh -c "curl -s -i http://$S | grep -q '^Allow: POST'"
check "wrong Content-Type: 415" sh -c "test \$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain' --data x http://$S) = 415"
head -c 10485760 /dev/zero >big.bin
check "a 10 MiB body: 413" sh -c "test \$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/pkixcmp' --data-binary @big.bin http://$S) = 413"
$C -server 127.0.0.1:9 $MAC -cmd ir -newkey k1.key -subject /CN=chunk -implicit_confirm -reqout chunk.der -certout x.pem >/dev/null 2>&1
check "a chunked request body is answered (200 application/pkixcmp)" sh -c \
	"curl -s -D h.txt -o chunk.rsp -H 'Content-Type: application/pkixcmp' -H 'Transfer-Encoding: chunked' --data-binary @chunk.der http://$S && grep -qi 'Content-Type: application/pkixcmp' h.txt && '$R' dump chunk.rsp >/dev/null"
python3 - "$PORT" >hostile.log 2>&1 <<'PY'
import socket, sys, time
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s
# a header that never ends: the server cuts it off after header_timeout
s = conn(); s.sendall(b"POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\nX-Slow: ")
t = time.time(); data = s.recv(100)
print("never-ending-header closed after %.1fs" % (time.time() - t))
# one byte per second: also cut off
s = conn(); t = time.time(); closed = False
for b in b"POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\n\r\n":
    try:
        s.sendall(bytes([b])); time.sleep(1)
    except OSError:
        closed = True; break
    if time.time() - t > 8: break
try:
    closed = closed or s.recv(100) == b""
except OSError:
    closed = True
print("slow-client closed=%s after %.1fs" % (closed, time.time() - t))
# 1000 idle connections (from 8 addresses: 125 each, under max_connections_per_address)
idle = []
for i in range(1000):
    try: idle.append(socket.create_connection(("127.0.0.1", port), timeout=10,
                                              source_address=("127.0.0.%d" % (i % 8 + 1), 0)))
    except OSError as e: print("open failed at", i, e); break
print("idle-open", len(idle))
time.sleep(0.5)
PY
check "a header that never ends is cut off" grep -q "never-ending-header closed after [0-3]\." hostile.log
check "a client sending one byte per second is cut off" grep -q "slow-client closed=True" hostile.log
check "1000 idle connections could be opened" grep -q "idle-open 1000" hostile.log
$C -server $S $MAC -cmd ir -newkey k1.key -subject /CN=still -implicit_confirm -certout still.pem >c11.log 2>&1
check "after the hostile clients the daemon still serves" test -s still.pem
# protocol details, driven byte by byte
$C -server 127.0.0.1:9 $MAC -cmd genm -infotype signKeyPairTypes -reqout g1.der >/dev/null 2>&1
$C -server 127.0.0.1:9 $MAC -cmd genm -infotype signKeyPairTypes -reqout g2.der >/dev/null 2>&1
python3 - "$PORT" g1.der g2.der chunk.der >proto.log 2>&1 <<'PY'
import socket, sys
port, g1, g2, ir = int(sys.argv[1]), open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read(), open(sys.argv[4], "rb").read()
def req(path, body, ctype="application/pkixcmp", extra=b"", ver=b"1.1"):
    return (b"POST " + path.encode() + b" HTTP/" + ver + b"\r\nHost: x\r\nContent-Type: " + ctype.encode()
            + b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)
def exchange(data, n=1, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data); buf = b""
    try:
        while buf.count(b"HTTP/1.") < n or len(buf) < 200:
            d = s.recv(65536)
            if not d: break
            buf += d
    except socket.timeout: pass
    s.close(); return buf
# two pipelined requests on one connection: two answers, in order
b = exchange(req("/.well-known/cmp", g1) + req("/.well-known/cmp", g2), n=2)
print("pipelined", b.count(b"HTTP/1.1 200 OK"))
# the second request sent on its own while the first may be in the core
# (reading pauses when bytes come then: conn.c cmpr_conn_pause)
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(req("/.well-known/cmp", g1)); s.sendall(req("/.well-known/cmp", g2)); b = b""
try:
    while b.count(b"HTTP/1.1 200 OK") < 2 or b.count(b"application/pkixcmp") < 2 or len(b) < 1000:
        d = s.recv(65536)
        if not d: break
        b += d
except socket.timeout: pass
s.close()
print("pipelined-apart", b.count(b"HTTP/1.1 200 OK"))
# a request followed at once by FIN (half-close): still answered, then closed
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(req("/.well-known/cmp", g1)); s.shutdown(socket.SHUT_WR); b = b""; eof = False
try:
    while True:
        d = s.recv(65536)
        if not d: eof = True; break
        b += d
except socket.timeout: pass
s.close()
print("halfclose", b.split(b"\r\n")[0].decode(), b"application/pkixcmp" in b, "eof=%s" % eof)
# trailing slash and a configured alias path
print("slash", exchange(req("/.well-known/cmp///", g1)).split(b"\r\n")[0].decode())
print("alias", exchange(req("/pkix/", g1)).split(b"\r\n")[0].decode())
# Expect: 100-continue gets an interim answer first
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\nContent-Type: application/pkixcmp\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(g1))
print("continue", s.recv(100).split(b"\r\n")[0].decode()); s.sendall(g1)
d = b""
while b"application/pkixcmp" not in d: d += s.recv(65536)
print("after-continue", d.split(b"\r\n")[0].decode()); s.close()
# no body at all
print("nobody", exchange(b"POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\nContent-Type: application/pkixcmp\r\nContent-Length: 0\r\n\r\n").split(b"\r\n")[0].decode())
# a header block above max_header
print("bigheader", exchange(b"POST /.well-known/cmp HTTP/1.1\r\nX-Fill: " + b"a" * 8000 + b"\r\n\r\n").split(b"\r\n")[0].decode())
# application/pkixcmp-poll with a TCP-Message frame (RFC 9811 4): answered framed
frame = (len(ir) + 3).to_bytes(4, "big") + bytes([10, 0, 0]) + ir
r = exchange(req("/.well-known/cmp", frame, ctype="application/pkixcmp-poll"))
head, _, body = r.partition(b"\r\n\r\n")
print("poll", b"application/pkixcmp-poll" in head, body[4] == 10 and body[6] == 5 and body[7] == 0x30)
# HTTP/1.0 without keep-alive: answered and closed
print("http10", exchange(req("/.well-known/cmp", g1, ver=b"1.0")).split(b"\r\n")[0].decode())
PY
check "pipelined requests on one connection are answered in order" grep -q "pipelined 2" proto.log
check "a request sent while the one before is in the core is answered after it" grep -q "pipelined-apart 2" proto.log
check "a request followed by FIN (half-close) is still answered, then closed" \
	grep -q "halfclose HTTP/1.1 200 OK True eof=True" proto.log
check "trailing slashes do not matter" grep -q "slash HTTP/1.1 200 OK" proto.log
check "a configured extra path (paths = /pkix) works" grep -q "alias HTTP/1.1 200 OK" proto.log
check "Expect: 100-continue gets 100 then the answer" sh -c "grep -q 'continue HTTP/1.1 100 Continue' proto.log && grep -q 'after-continue HTTP/1.1 200 OK' proto.log"
check "an empty body: 400" grep -q "nobody HTTP/1.1 400" proto.log
check "headers above max_header: 431" grep -q "bigheader HTTP/1.1 431" proto.log
check "application/pkixcmp-poll with a TCP-Message frame is answered framed (pkiRep)" grep -q "poll True True" proto.log
check "HTTP/1.0 is answered in HTTP/1.0" grep -q "http10 HTTP/1.0 200 OK" proto.log
rss=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
if [ "${rss:-999999}" -lt 300000 ]; then ok "memory stays bounded (RSS ${rss} kB)"; else not_ok "RSS ${rss} kB"; fi
kill -TERM $PID
wait $PID

# ---- connection caps: per address, and max_connections (idle ones make room) ----
sed -i 's/^max_connections = 1010$/max_connections = 40\nmax_connections_per_address = 10\nfirst_byte_timeout = 2\nheader_timeout = 60/' \
	data/cmprouter.conf
start_daemon dcaps http -c data/cmprouter.conf
APORT=$(sed -n 's/^cmprouterd: admin listening on port //p' dcaps.out)
python3 - "$PORT" g1.der "$APORT" >caps.log 2>&1 <<'PY'
import socket, sys, time, urllib.request
port, g1, aport = int(sys.argv[1]), open(sys.argv[2], "rb").read(), int(sys.argv[3])
def conn(src):
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
def first_line(s, data):
    s.sendall(data)
    try: return s.recv(200).split(b"\r\n")[0].decode() or "closed"
    except OSError as e: return "error %s" % e
def metric(name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % aport, timeout=10).read().decode()
    for l in text.splitlines():
        if l.startswith(name + '{listener="http"} '):
            return int(l.split()[1])
    return -1
def wait_metrics(open_, idle):
    # until the daemon has seen what was done (bounded: 30 s)
    for _ in range(300):
        o, i = metric("cmprouter_connections"), metric("cmprouter_connections_idle")
        if o == open_ and i == idle: return
        time.sleep(0.1)
    print("metrics: waited for %d open, %d idle; they say %d, %d" % (open_, idle, o, i))
genm = (b"POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\nContent-Type: application/pkixcmp\r\n"
        b"Content-Length: %d\r\n\r\n" % len(g1) + g1)
# one address: 10 connections, the 11th is refused
mine = [conn("127.0.0.11") for _ in range(10)]
wait_metrics(10, 10)
print("per-address eleventh", first_line(conn("127.0.0.11"), genm))
print("per-address other address", first_line(conn("127.0.0.12"), genm))
for s in mine: s.close()
wait_metrics(0, 0)
print("per-address after closing", first_line(conn("127.0.0.11"), genm))
# full of requests under way (headers begun, never ended): 503
busy = []
for a in range(4):
    for _ in range(10):
        s = conn("127.0.0.%d" % (21 + a)); s.sendall(b"POST /.well-known/cmp HTTP/1.1\r\n"); busy.append(s)
wait_metrics(40, 0)
print("full of requests", first_line(conn("127.0.0.30"), genm))
for s in busy: s.close()
wait_metrics(0, 0)
# full of idle connections: the oldest makes room, the new one is answered
idle = []
for a in range(4):
    for _ in range(10):
        idle.append(conn("127.0.0.%d" % (31 + a)))
wait_metrics(40, 40)
print("full of idle", first_line(conn("127.0.0.40"), genm))
idle[0].settimeout(5)
try: print("oldest idle", "closed" if idle[0].recv(100) == b"" else "open")
except OSError as e: print("oldest idle", "closed" if "reset" in str(e) else "error %s" % e)
# silence: first_byte_timeout (2 s)
s = conn("127.0.0.50"); t = time.time(); s.settimeout(20)
try: s.recv(100)
except OSError: pass
print("silent closed after %.1f" % (time.time() - t))
PY
check "max_connections_per_address: the 11th connection of one address gets 503" \
	sh -c "grep -q 'per-address eleventh HTTP/1.1 503' caps.log || { cat caps.log; exit 1; }"
check "... while another address is served" grep -q "per-address other address HTTP/1.1 200" caps.log
check "... and so is the first once its connections are closed" grep -q "per-address after closing HTTP/1.1 200" caps.log
check "max_connections reached by requests under way: 503" grep -q "full of requests HTTP/1.1 503" caps.log
check "max_connections reached by idle connections: the new one is served" grep -q "full of idle HTTP/1.1 200" caps.log
check "... the oldest idle connection was closed to make room" grep -q "oldest idle closed" caps.log
check "a connection that sends nothing is closed after first_byte_timeout (2 s)" \
	grep -q "silent closed after [1-3]\." caps.log
check "the refusals are logged (once a second at most)" grep -q "127.0.0.11:[0-9]* already has 10 connections" dcaps.err
check "the metrics count them" sh -c "curl -s http://127.0.0.1:$APORT/metrics \
	| grep -q 'cmprouter_connections_evicted_total{listener=\"http\"} [1-9]'"
kill -TERM $PID
wait $PID

# ---- HTTPS (TLS over memory BIOs), with and without client certificates ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.pem -days 30 \
	-subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
cat data/ca/root.pem data/ca/issuing.pem >clientca.pem
sed -i 's/^address = 127.0.0.1:[0-9]*$/address = 127.0.0.1:0/' data/cmprouter.conf
printf '\n[listen https]\naddress = 127.0.0.1:0\ntls_cert = %s/srv.pem\ntls_key = %s/srv.key\ntls_client_ca = %s/clientca.pem\ntls_require_client = yes\n' \
	"$TMP" "$TMP" "$TMP" >>data/cmprouter.conf
start_daemon d3 http -c data/cmprouter.conf
TPORT=$(sed -n 's/^cmprouterd: https listening on port \([0-9]*\)$/\1/p' d3.out)
check "an https listener starts" test -n "$TPORT"
TLS="-server 127.0.0.1:$TPORT/.well-known/cmp -tls_used -tls_trusted srv.pem -tls_host 127.0.0.1"
$C $TLS -tls_cert demo.pem -tls_key demo.key $MAC -cmd ir -newkey k2.key -subject /CN=over-tls -certout tls.pem >c12.log 2>&1
check "ir with certConf over HTTPS with a client certificate" test -s tls.pem
check "the TLS client identity is logged with the request" grep -q "https 127.0.0.1:[0-9]* tls:CN=demo" d3.err
$C $TLS $MAC -cmd ir -newkey k2.key -subject /CN=no-client-cert -certout notls.pem >c13.log 2>&1
check "without a client certificate the handshake is refused" test ! -s notls.pem
$C -server 127.0.0.1:9 $MAC -cmd ir -newkey k3.key -subject /CN=send-tls -implicit_confirm -reqout sendreq.der \
	-certout x.pem >/dev/null 2>&1
"$R" send "https://127.0.0.1:$TPORT/.well-known/cmp" --tls-ca srv.pem --tls-cert demo.pem --tls-key demo.key \
	--in sendreq.der --out sendrsp.der 2>send.err
check "cmprouter send over HTTPS with a client certificate gets the ip" sh -c \
	"'$R' dump sendrsp.der | grep -q 'status: accepted'"
"$R" send "https://127.0.0.1:$TPORT/.well-known/cmp" --tls-ca data/ca/root.pem --tls-cert demo.pem \
	--tls-key demo.key --in sendreq.der >/dev/null 2>send2.err
check "a server certificate outside --tls-ca: the handshake fails with a reason" grep -q "TLS handshake .* failed" send2.err
kill -TERM $PID
wait $PID

# ---- the TLS 1.2 suites offered: forward secrecy and AEAD only, even with an RSA key ----
openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.pem -days 30 -subj /CN=localhost 2>/dev/null
sed -i '/^\[listen https\]$/,$d' data/cmprouter.conf
printf '[listen https]\naddress = 127.0.0.1:0\ntls_cert = %s/rsa.pem\ntls_key = %s/rsa.key\n' "$TMP" "$TMP" \
	>>data/cmprouter.conf
start_daemon d3c http -c data/cmprouter.conf
TPORT=$(sed -n 's/^cmprouterd: https listening on port \([0-9]*\)$/\1/p' d3c.out)
check "an https listener with an RSA key starts" test -n "$TPORT"
# suite SUITE: a TLS 1.2 handshake offering only SUITE completes with it
suite() { timeout 20 openssl s_client -connect "127.0.0.1:$TPORT" -tls1_2 -cipher "$1" </dev/null 2>&1 \
	| grep -q "Cipher is $1\$"; }
check "TLS 1.2 with ECDHE-RSA-AES128-GCM-SHA256 is served" suite ECDHE-RSA-AES128-GCM-SHA256
check "static RSA key exchange (AES128-GCM-SHA256) is not" sh -c "! $(command -v openssl) s_client -connect 127.0.0.1:$TPORT -tls1_2 -cipher AES128-GCM-SHA256 </dev/null 2>&1 | grep -q 'Cipher is AES128-GCM-SHA256\$'"
check "CBC with SHA-1 (ECDHE-RSA-AES128-SHA) is not" sh -c "! $(command -v openssl) s_client -connect 127.0.0.1:$TPORT -tls1_2 -cipher ECDHE-RSA-AES128-SHA </dev/null 2>&1 | grep -q 'Cipher is ECDHE-RSA-AES128-SHA\$'"
check "static RSA with CBC-SHA1 (AES128-SHA) is not" sh -c "! $(command -v openssl) s_client -connect 127.0.0.1:$TPORT -tls1_2 -cipher AES128-SHA </dev/null 2>&1 | grep -q 'Cipher is AES128-SHA\$'"
kill -TERM $PID
wait $PID
printf 'tls_ciphers = NOSUCHCIPHER\n' >>data/cmprouter.conf
"$BUILD/cmprouterd" -c data/cmprouter.conf >badc.out 2>badc.err
check "tls_ciphers with no usable suite is refused, naming the directive" \
	grep -q "cmprouter.conf:[0-9]*: tls: no usable TLS 1.2 cipher in tls_ciphers NOSUCHCIPHER" badc.err
sed -i '$d' data/cmprouter.conf
