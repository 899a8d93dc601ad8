#!/usr/bin/env python3
"""A lone client that writes each HTTP request as OpenSSL's does: the
headers in one call, the body in another, Nagle on. Until the headers are
acknowledged the body waits in the client's kernel; a server that leaves
the ACK to the kernel's delayed-ACK timer costs the client 40 ms per
message. Sends the DER request in BODY N times on one keep-alive
connection to 127.0.0.1:PORT/PATH and prints the median, p90 and maximum
time per message.
    bench/split.py PORT PATH BODY [N]        (N: 200)
"""
import socket
import sys
import time

port, path, body = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read()
n = int(sys.argv[4]) if len(sys.argv) > 4 else 200
s = socket.create_connection(("127.0.0.1", port), timeout=30)
head = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/pkixcmp\r\n"
        b"Connection: keep-alive\r\nContent-Length: %d\r\n\r\n" % len(body))
lat = []
for _ in range(n):
    t = time.monotonic()
    s.sendall(head)
    s.sendall(body)
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            sys.exit("the server closed the connection")
        buf += d
        h, sep, rest = buf.partition(b"\r\n\r\n")
        if sep:
            cl = [l for l in h.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if cl and len(rest) >= int(cl[0].split(b":")[1]):
                break
    lat.append((time.monotonic() - t) * 1000)
lat.sort()
print("median %.2f ms  p90 %.2f ms  max %.2f ms  (%d messages)" % (lat[n // 2], lat[n * 9 // 10], lat[-1], n))
