#!/usr/bin/env python3
"""Test peer: an SMTP relay that insists on STARTTLS and AUTH.

Debian 12's OpenSMTPD (6.8) cannot do TLS with OpenSSL 3 (upstream issue
OpenSMTPD#1239: "EVP lib" on every handshake), so the STARTTLS and AUTH side
of our SMTP client is checked against this peer; everything else runs
against the real OpenSMTPD.

  smtppeer.py CERT KEY USER PASSWORD MAILDIR [login]
Prints "port N"; offers STARTTLS, then AUTH PLAIN LOGIN (only LOGIN with
"login"; only after TLS),
refuses MAIL before AUTH (530), delivers each message into MAILDIR/new and
logs "delivered tls=VERSION user=USER from=... to=...".
"""
import base64
import os
import socket
import ssl
import sys
import threading
import time

CERT, KEY, USER, PASSWORD, MAILDIR = sys.argv[1:6]
MECHS = "LOGIN" if len(sys.argv) > 6 and sys.argv[6] == "login" else "PLAIN LOGIN"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)


def serve(conn):
    f = conn.makefile("rwb")
    tls, user, mech, mail_from, rcpt = None, None, None, None, []

    def say(line):
        f.write(line.encode() + b"\r\n")
        f.flush()

    say("220 smtppeer ESMTP")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line.decode("latin-1").rstrip("\r\n")
        verb = cmd.split(" ")[0].upper()
        if verb == "EHLO":
            caps = ["250-smtppeer"]
            caps.append("250-AUTH " + MECHS if tls else "250-STARTTLS")
            say("\r\n".join(caps + ["250 8BITMIME"]))
        elif verb == "STARTTLS" and not tls:
            say("220 go ahead")
            conn = ctx.wrap_socket(conn, server_side=True)
            tls = conn.version()
            f = conn.makefile("rwb")
        elif verb == "AUTH" and tls:
            parts = cmd.split(" ")
            if parts[1].upper() not in MECHS.split():
                say("504 mechanism not offered")
                continue
            if parts[1].upper() == "PLAIN":
                _, u, p = base64.b64decode(parts[2]).split(b"\0")
            else:
                say("334 VXNlcm5hbWU6")
                u = base64.b64decode(f.readline().strip())
                say("334 UGFzc3dvcmQ6")
                p = base64.b64decode(f.readline().strip())
            if u.decode() == USER and p.decode() == PASSWORD:
                user, mech = u.decode(), parts[1].upper()
                say("235 ok")
            else:
                say("535 bad credentials")
        elif verb == "MAIL":
            if user is None:
                say("530 authentication required")
                continue
            mail_from = cmd[10:].strip("<>")
            say("250 ok")
        elif verb == "RCPT":
            rcpt.append(cmd[8:].strip("<>"))
            say("250 ok")
        elif verb == "DATA":
            say("354 go")
            data = b""
            while True:
                l = f.readline()
                if l in (b".\r\n", b""):
                    break
                data += l[1:] if l.startswith(b"..") else l
            name = "%d.%d.smtppeer" % (time.time() * 1e6, os.getpid())
            with open(os.path.join(MAILDIR, "tmp", name), "wb") as out:
                out.write(data.replace(b"\r\n", b"\n"))
            os.rename(os.path.join(MAILDIR, "tmp", name), os.path.join(MAILDIR, "new", name))
            print("delivered tls=%s user=%s mech=%s from=%s to=%s" % (tls, user, mech, mail_from, ",".join(rcpt)), flush=True)
            say("250 queued")
        elif verb == "QUIT":
            say("221 bye")
            return
        else:
            say("502 not here")


srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
print("port %d" % srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
