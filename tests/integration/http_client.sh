#!/bin/sh
# cmprouter send: the HTTP client side (RFC 9811) against OpenSSL's own CMP
# mock server, and against scripted servers for non-200 answers, timeouts
# and oversized answers.
. "$TOP/tests/integration/lib.sh"
D=$TOP/tests/data/openssl
cd "$TMP" || exit 1
R=$CMPROUTER
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$TMP"' EXIT
trap 'echo "# stopped by a signal"; exit 143' INT TERM

# OpenSSL's mock server as the peer
openssl cmp -config /dev/null -port 0 -srv_ref mockref -srv_secret pass:test-secret \
	-srv_cert "$D/server.pem" -srv_key "$D/server.key" -srv_trusted "$D/root.pem" \
	-rsp_cert "$D/rsp.pem" -rsp_capubs "$D/root.pem" -max_msgs 4 >mock.out 2>mock.err &
PIDS="$PIDS $!"
i=0; MPORT=""
while [ $i -lt 50 ] && [ -z "$MPORT" ]; do
	MPORT=$(sed -n 's/^ACCEPT \[::\]:\([0-9]*\) .*/\1/p' mock.out)
	[ -z "$MPORT" ] && sleep 0.1
	i=$((i + 1))
done
check "the openssl mock server starts" test -n "$MPORT"
"$R" send "http://127.0.0.1:$MPORT/pkix/" --in "$D/ir_mac.der" --out ip.der 2>send1.err
check "send an openssl-written ir to the mock server: an ip comes back" sh -c \
	"'$R' dump --json ip.der | grep -q '\"body\":\"ip\"'"
check "the mock's answer verifies with its secret" "$R" dump --secret pass:test-secret ip.der

# scripted servers
cat >srv.py <<'PY'
import socket, sys, threading, time
mode, body = sys.argv[1], open(sys.argv[2], "rb").read() if len(sys.argv) > 2 else b""
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(5)
print(s.getsockname()[1], flush=True)
for _ in range(3):
    c, _a = s.accept()
    c.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(65536)
    if mode == "cmp400":
        c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/pkixcmp\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    elif mode == "text404":
        c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nnope")
    elif mode == "silent":
        time.sleep(5)
    elif mode == "body":            # 200 with the file's bytes as a CMP answer
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    elif mode == "huge":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 2097152\r\n\r\n")
        time.sleep(1)
    c.close()
PY
serve() {
	rm -f "port-$1.txt"
	python3 srv.py "$@" >"port-$1.txt" 2>/dev/null &
	PIDS="$PIDS $!"
	i=0
	while [ $i -lt 50 ] && [ ! -s "port-$1.txt" ]; do sleep 0.1; i=$((i + 1)); done
	SPORT=$(cat "port-$1.txt")
}
serve cmp400 "$D/error_mac.der"
"$R" send "http://127.0.0.1:$SPORT/x" --in "$D/ir_mac.der" --out e.der 2>send2.err
rc=$?
check "a CMP answer with HTTP 400 is taken (RFC 9811 3.1)" sh -c "test $rc -eq 0 && cmp -s e.der '$D/error_mac.der' && grep -q 'HTTP 400 with a CMP answer' send2.err"
serve text404
"$R" send "http://127.0.0.1:$SPORT/x" --in "$D/ir_mac.der" >/dev/null 2>send3.err
rc=$?
check "HTTP 404 without a CMP body: a transport error (exit 3)" sh -c "test $rc -eq 3 && grep -q 'HTTP 404 without a CMP answer' send3.err"
serve silent
start=$(date +%s)
"$R" send "http://127.0.0.1:$SPORT/x" --in "$D/ir_mac.der" --timeout 1 >/dev/null 2>send4.err
rc=$?
check "a server that never answers: timeout after --timeout" sh -c "test $rc -eq 3 && grep -q 'no answer' send4.err && test \$((\$(date +%s) - $start)) -le 3"
serve huge
"$R" send "http://127.0.0.1:$SPORT/x" --in "$D/ir_mac.der" >/dev/null 2>send5.err
check "an answer above 1 MiB is refused" grep -q "larger than" send5.err
# hostile answers: the transport takes only a DER skeleton, the taker decodes
printf 'hello, no DER here' >notder.bin
serve body notder.bin
"$R" send "http://127.0.0.1:$SPORT/x" --in "$D/ir_mac.der" >/dev/null 2>send8.err
rc=$?
check "an answer that is not DER: a transport error (exit 3) saying so" sh -c \
	"test $rc -eq 3 && grep -q 'the answer is not a CMP message' send8.err"
printf '\060\003\002\001\000' >notpki.der
serve body notpki.der
"$R" genm --server "http://127.0.0.1:$SPORT/x" --ref r --secret pass:x >/dev/null 2>genm9.err
rc=$?
check "a DER SEQUENCE that is no PKIMessage: the EE client refuses it (exit 4) with where it failed" sh -c \
	"test $rc -eq 4 && grep -q 'the answer is not a PKIMessage: offset' genm9.err || { cat genm9.err; exit 1; }"
"$R" send "http://127.0.0.1:9/x" --in "$D/ir_mac.der" >/dev/null 2>send6.err
check "nothing listening: a clear connect error" grep -q "cannot connect" send6.err
"$R" send "ftp://127.0.0.1/x" --in "$D/ir_mac.der" >/dev/null 2>send7.err
check "a URL that is not http(s): refused" grep -q "not an http" send7.err
