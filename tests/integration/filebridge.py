#!/usr/bin/env python3
"""Test peer: lets an unmodified `openssl cmp` client talk to a file drop.

An offline site's courier, automated: every HTTP POST body (one DER
PKIMessage) is written into INBOX as PREFIX-N.pki (tmp name, then rename, as
a careful site would), the answer PREFIX-N.rsp.pki is awaited in OUTBOX
(bounded wait), taken out of the outbox and returned as the HTTP answer.
So the client's whole exchange (ir, pollReq, certConf ...) crosses the file
medium one file per message.

  filebridge.py INBOX OUTBOX PREFIX [TIMEOUT]
Prints "port N" once listening on 127.0.0.1; logs one line per message.
"""
import http.server
import os
import sys
import time

INBOX, OUTBOX, PREFIX = sys.argv[1], sys.argv[2], sys.argv[3]
TIMEOUT = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        global count
        count += 1
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        name = "%s-%d" % (PREFIX, count)
        tmp = os.path.join(INBOX, name + ".pki.tmp")
        with open(tmp, "wb") as f:
            f.write(body)
        os.rename(tmp, os.path.join(INBOX, name + ".pki"))
        want = os.path.join(OUTBOX, name + ".rsp.pki")
        deadline = time.time() + TIMEOUT
        while not os.path.exists(want) and time.time() < deadline:
            time.sleep(0.05)
        if not os.path.exists(want):
            print("%s: no answer file" % name, flush=True)
            self.send_response(504)
            self.end_headers()
            return
        with open(want, "rb") as f:
            answer = f.read()
        os.unlink(want)
        print("%s: %d bytes out, %d bytes back" % (name, len(body), len(answer)), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/pkixcmp")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print("port %d" % srv.server_address[1], flush=True)
srv.serve_forever()
