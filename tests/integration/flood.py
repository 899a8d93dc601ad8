#!/usr/bin/env python3
"""Hostile connections for tests/integration/flood.sh (loopback only).

Keeps --conns connections per target open from a few source addresses
(127.0.0.2-5, or one address each with --sources spread) and replaces every
connection the server closes or refuses at once, as an attacker would:

  idle     connect and send nothing
  trickle  send a request that never ends, one byte a second (HTTP headers,
           or a TCP-Message frame announcing 60,000 bytes)
  churn    connect, send a line of junk, close; again

Every 0.5 s it writes what it sees to --status ("opened=N live=N ..."); it
ends when the file --stop exists or after --limit seconds, whichever first.
"""
import argparse
import errno
import os
import resource
import selectors
import socket
import time

IP_BIND_ADDRESS_NO_PORT = 24   # Linux: pick the port at connect (loopback TIME_WAIT reuse)

TRICKLE = {
    "http": b"POST /.well-known/cmp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100000,
    # TCP-Message v10: length 60003 (version, flags, type + value), pkiReq, never completed
    "tcp": (60003).to_bytes(4, "big") + bytes([10, 0, 0]) + b"\x30" * 60000,
}
JUNK = {"http": b"X\r\n\r\n", "tcp": b"\x00\x00\x00\x03\x0a\x00\x09junk\r\n"}


class Conn:
    __slots__ = ("sock", "target", "state", "sent", "next_send")

    def __init__(self, sock, target):
        self.sock, self.target, self.state, self.sent, self.next_send = sock, target, "connecting", 0, 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", required=True, help="PROTO:PORT (http or tcp)")
    ap.add_argument("--mode", choices=["idle", "trickle", "churn"], required=True)
    ap.add_argument("--conns", type=int, default=1100, help="per target")
    ap.add_argument("--sources", default="127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5")
    ap.add_argument("--status", required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--limit", type=float, default=300)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    targets = []
    for t in a.target:
        proto, port = t.split(":")
        targets.append((proto, int(port)))
    if a.sources == "spread":    # one address per connection: 127.1.X.Y
        n = a.conns
        sources = ["127.1.%d.%d" % (i // 250, i % 250 + 1) for i in range(n)]
    else:
        sources = a.sources.split(",")
    sel = selectors.DefaultSelector()
    live = {t: 0 for t in targets}
    st = dict(opened=0, server_closed=0, refused=0, connect_errors=0, churned=0, bytes=0)
    src_i = 0
    start = last_status = time.monotonic()
    backoff_until = 0.0

    def close(c, counted_by_server):
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        live[c.target] -= 1
        if counted_by_server:
            st["server_closed"] += 1

    def write_status(final=False):
        tmp = a.status + ".tmp"
        with open(tmp, "w") as f:
            f.write("opened=%d live=%d server_closed=%d refused=%d churned=%d connect_errors=%d bytes=%d%s\n"
                    % (st["opened"], sum(live.values()), st["server_closed"], st["refused"], st["churned"],
                       st["connect_errors"], st["bytes"], " done" if final else ""))
        os.replace(tmp, a.status)

    while not os.path.exists(a.stop) and time.monotonic() - start < a.limit:
        now = time.monotonic()
        # top up every target (a bounded number per round, to stay responsive)
        if now >= backoff_until:
            for t in targets:
                n = 0
                while live[t] < a.conns and n < 100:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    try:
                        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                        s.bind((sources[src_i % len(sources)], 0))
                        src_i += 1
                        rc = s.connect_ex(("127.0.0.1", t[1]))
                    except OSError as e:
                        rc = e.errno
                    if rc not in (0, errno.EINPROGRESS):
                        s.close()
                        st["connect_errors"] += 1
                        backoff_until = now + 0.05      # out of ports or descriptors: a breath
                        break
                    c = Conn(s, t)
                    live[t] += 1
                    n += 1
                    sel.register(s, selectors.EVENT_WRITE, c)
        for key, ev in sel.select(timeout=0.05):
            c = key.data
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    st["connect_errors"] += 1
                    close(c, False)
                    continue
                st["opened"] += 1
                if a.mode == "churn":
                    try:
                        c.sock.send(JUNK[c.target[0]])
                    except OSError:
                        pass
                    st["churned"] += 1
                    close(c, False)
                    continue
                c.state = "open"
                c.next_send = time.monotonic()
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                data = c.sock.recv(4096)
            except OSError:
                data = b""
            if data:
                # the server said something (a refusal or an error): it will close
                if data.startswith(b"HTTP/1.1 503") or data.startswith(b"HTTP/1.0 503") \
                        or (len(data) >= 7 and data[6] == 6):
                    st["refused"] += 1
                continue
            close(c, True)
        if a.mode == "trickle":
            now = time.monotonic()
            for key in list(sel.get_map().values()):
                c = key.data
                if c.state == "open" and now >= c.next_send:
                    script = TRICKLE[c.target[0]]
                    try:
                        c.sock.send(script[c.sent:c.sent + 1])
                        c.sent += 1
                        st["bytes"] += 1
                    except OSError:
                        pass
                    c.next_send = now + 1.0
        if time.monotonic() - last_status >= 0.5:
            write_status()
            last_status = time.monotonic()
    for key in list(sel.get_map().values()):
        close(key.data, False)
    write_status(True)


if __name__ == "__main__":
    main()
