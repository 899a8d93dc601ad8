#!/usr/bin/env python3
"""Test peer: lets an unmodified `openssl cmp` client enroll by e-mail.

A mail user agent, automated: every HTTP POST body (one DER PKIMessage) is
sent by SMTP to the CA's address as an application/pkixcmp part (base64,
file name PREFIX-N.pki, RFC 9483 6.4.2); the reply mail (In-Reply-To our
Message-ID) is awaited in MAILDIR/new (bounded wait), its pkixcmp part taken
out and returned as the HTTP answer. So the client's whole exchange (cr,
pollReq, certConf ...) crosses the real MTA one mail per message.

  mailbridge.py SMTP_PORT FROM TO MAILDIR PREFIX [TIMEOUT]
Prints "port N" once listening on 127.0.0.1; logs one line per message.
"""
import email
import email.message
import email.policy
import http.server
import os
import smtplib
import sys
import time

SPORT, FROM, TO, MAILDIR, PREFIX = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
TIMEOUT = float(sys.argv[6]) if len(sys.argv) > 6 else 60.0
count = 0


def find_reply(msgid):
    d = os.path.join(MAILDIR, "new")
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        with open(path, "rb") as f:
            m = email.message_from_binary_file(f, policy=email.policy.default)
        if (m.get("In-Reply-To") or "").strip() != msgid:
            continue
        for part in m.walk():
            if part.get_content_type() == "application/pkixcmp":
                os.rename(path, os.path.join(MAILDIR, "cur", name + ":2,S"))
                return part.get_payload(decode=True), m
    return None, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        global count
        count += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        msg = email.message.EmailMessage()
        msgid = "<%s-%d.%d@site.test>" % (PREFIX, count, os.getpid())
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = FROM, TO, "CMP %d" % count, msgid
        msg.set_content("CMP message %d" % count)
        msg.add_attachment(body, maintype="application", subtype="pkixcmp",
                           filename="%s-%d.pki" % (PREFIX, count))
        with smtplib.SMTP("127.0.0.1", SPORT, timeout=10) as s:
            s.send_message(msg)
        deadline = time.time() + TIMEOUT
        answer = None
        while answer is None and time.time() < deadline:
            answer, reply = find_reply(msgid)
            if answer is None:
                time.sleep(0.1)
        if answer is None:
            print("%s-%d: no reply" % (PREFIX, count), flush=True)
            self.send_response(504)
            self.end_headers()
            return
        print("%s-%d: %d bytes out, %d bytes back, subject %r" % (PREFIX, count, len(body), len(answer),
                                                                  reply["Subject"]), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/pkixcmp")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print("port %d" % srv.server_address[1], flush=True)
srv.serve_forever()
