#!/usr/bin/env python3
"""A TCP-Message test peer written for the test suite (independent of
codec/tcpframe.c): builds and reads frames byte by byte per
draft-ietf-pkix-cmp-transport-protocols (version 10) and RFC 2510 5.2.

  tcppeer.py PORT CASE [FILES...]   prints one result line per exchange
"""
import os
import select
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
TIMEOUT = 20


def v10(typ, value, flags=0, version=10):
    return struct.pack(">IBBB", len(value) + 3, version, flags, typ) + value


def v2510(typ, value):
    return struct.pack(">IB", len(value) + 1, typ) + value


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def read_v10(s):
    hdr = recv_exact(s, 7)
    length, version, flags, typ = struct.unpack(">IBBB", hdr)
    assert version == 10, "version %d" % version
    return flags, typ, recv_exact(s, length - 3)


def read_2510(s):
    length, typ = struct.unpack(">IB", recv_exact(s, 5))
    return typ, recv_exact(s, length - 1)


def closed(s):
    """True if the server closes the connection within TIMEOUT seconds."""
    s.settimeout(TIMEOUT)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False


def conn(port, source=None):
    s = socket.create_connection((HOST, port), timeout=TIMEOUT,
                                 source_address=(source, 0) if source else None)
    return s


def errinfo(value):
    code, dlen = struct.unpack(">HH", value[:4])
    return code, value[4:4 + dlen], value[4 + dlen:]


def save(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_any(s):
    """a request frame in either framing: (version, type, value)"""
    hdr = recv_exact(s, 5)
    length = struct.unpack(">I", hdr[:4])[0]
    if hdr[4] == 10:
        rest = recv_exact(s, length - 1)
        return 10, rest[1], rest[2:]
    return 0, hdr[4], recv_exact(s, length - 1)


def ask_daemon(daemon_port, value):
    d = conn(daemon_port)
    d.sendall(v10(0, value))
    _, typ, val = read_v10(d)
    d.close()
    return val


def serve(daemon_port, mode, portfile):
    """mode: poll (pollRep with close, then the answer on pollReq over a new
    connection), poll2510 (same, RFC 2510 framing, absolute time), type0
    (answers typed 0 as cryptlib does), finrep (finRep with close), error
    (errorMsgRep GeneralServerError). Serves one exchange, bounded by
    TIMEOUT, and prints what it saw."""
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(4)
    ls.settimeout(TIMEOUT)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    s, _ = ls.accept()
    s.settimeout(TIMEOUT)
    ver, typ, val = read_any(s)
    if mode in ("poll", "poll2510"):
        answer = ask_daemon(daemon_port, val)
        if ver == 10:
            s.sendall(v10(1, struct.pack(">II", 0x2a, 1), flags=1))
        else:
            s.sendall(v2510(1, struct.pack(">II", 0x2a, int(time.time()) + 1)))
        s.close()
        t0 = time.time()
        s, _ = ls.accept()
        s.settimeout(TIMEOUT)
        ver2, typ2, val2 = read_any(s)
        waited = time.time() - t0
        ref = struct.unpack(">I", val2)[0]
        s.sendall(v10(5, answer) if ver2 == 10 else v2510(5, answer))
        print("served %s first=%d/%d poll=%d/%d ref=%x waited=%d" %
              (mode, ver, typ, ver2, typ2, ref, waited >= 0.9))
    elif mode == "type0":
        s.sendall(v10(0, ask_daemon(daemon_port, val)))
        print("served type0")
    elif mode == "finrep":
        s.sendall(v10(3, b"\x00", flags=1))
        print("served finrep")
    elif mode == "error":
        s.sendall(v10(6, struct.pack(">HH", 0x0300, 0) + b"CA database offline"))
        print("served error")
    s.close()


def main():
    port = int(sys.argv[1])
    case = sys.argv[2]
    files = sys.argv[3:]
    rd = lambda p: open(p, "rb").read()

    if case == "whole":          # one pkiReq -> pkiRep, connection stays open
        s = conn(port)
        s.sendall(v10(0, rd(files[0])))
        flags, typ, val = read_v10(s)
        save(files[1], val)
        s.sendall(v10(2, struct.pack(">I", 7)))   # still open: next request answered
        f2, t2, v2 = read_v10(s)
        print("whole type=%d flags=%d der=%d open=%d" % (typ, flags, val[0] == 0x30, t2 == 6))
    elif case == "split":        # every byte in its own segment
        s = conn(port)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frame = v10(0, rd(files[0]))
        for i in range(len(frame)):
            s.send(frame[i:i + 1])
            if i < 12:
                time.sleep(0.01)
        flags, typ, val = read_v10(s)
        save(files[1], val)
        print("split type=%d" % typ)
    elif case == "pipelined":    # two requests in one write, answers in order
        s = conn(port)
        s.sendall(v10(0, rd(files[0])) + v10(0, rd(files[1])))
        _, t1, a = read_v10(s)
        _, t2, b = read_v10(s)
        save(files[2], a)
        save(files[3], b)
        print("pipelined types=%d,%d" % (t1, t2))
    elif case == "close":        # close flag echoed, then the server closes
        s = conn(port)
        s.sendall(v10(0, rd(files[0]), flags=1))
        flags, typ, val = read_v10(s)
        save(files[1], val)
        print("close type=%d flags=%d closed=%d" % (typ, flags, closed(s)))
    elif case == "rfc2510":      # 5-byte header in, 5-byte header out
        s = conn(port)
        s.sendall(v2510(0, rd(files[0])))
        typ, val = read_2510(s)
        save(files[1], val)
        print("rfc2510 type=%d der=%d" % (typ, val[0] == 0x30))
    elif case == "halfclose":    # request, FIN, still answered
        s = conn(port)
        s.sendall(v10(0, rd(files[0])))
        s.shutdown(socket.SHUT_WR)
        flags, typ, val = read_v10(s)
        save(files[1], val)
        print("halfclose type=%d closed=%d" % (typ, closed(s)))
    elif case == "garbage":      # not DER: a CMP error inside pkiRep, never errorMsgRep
        s = conn(port)
        s.sendall(v10(0, b"\x30\x03\x02\x01\x05"))
        flags, typ, val = read_v10(s)
        save(files[0], val)
        print("garbage type=%d" % typ)
    elif case == "unknown-type":
        s = conn(port)
        s.sendall(v10(7, b"\x00"))
        flags, typ, val = read_v10(s)
        code, data, text = errinfo(val)
        s.sendall(v10(2, struct.pack(">I", 0x01020304)))
        f2, t2, v2 = read_v10(s)
        c2, d2, _ = errinfo(v2)
        print("unknown-type type=%d code=%04x data=%s pollid=%04x/%s" %
              (typ, code, data.hex(), c2, d2.hex()))
    elif case == "version11":
        s = conn(port)
        s.sendall(v10(0, b"\x30\x00", version=11))
        flags, typ, val = read_v10(s)
        code, data, text = errinfo(val)
        print("version11 type=%d code=%04x data=%s closed=%d" % (typ, code, data.hex(), closed(s)))
    elif case == "oversized":
        s = conn(port)
        s.sendall(struct.pack(">IBBB", 0x7ffffff0, 10, 0, 0) + b"\x30\x84")
        flags, typ, val = read_v10(s)
        code, data, text = errinfo(val)
        print("oversized type=%d code=%04x closed=%d text=%s" %
              (typ, code, closed(s), text.decode().replace(" ", "_")))
    elif case == "silent":       # a connection that sends nothing: cut off by first_byte_timeout
        s = conn(port)
        t0 = time.time()
        c = closed(s)
        print("silent closed=%d after=%d" % (c, int(time.time() - t0)))
    elif case == "incomplete":   # a frame that never completes: cut off by read_timeout
        s = conn(port)
        s.sendall(v10(0, b"\x30\x82\x01\x00")[:9])
        t0 = time.time()
        c = closed(s)
        print("incomplete closed=%d after=%d" % (c, int(time.time() - t0)))
    elif case == "trickle":      # one byte per second must not reset the read timeout
        s = conn(port)
        frame = v10(0, b"\x30" * 40)
        t0 = time.time()
        c = False
        for i in range(len(frame)):
            try:
                s.send(frame[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                c = True
                break
            r, _, _ = select.select([s], [], [], 1.0)
            if r:
                try:
                    c = s.recv(1) == b""
                except ConnectionResetError:
                    c = True    # closed while our last byte was on its way: a reset
                break
        print("trickle closed=%d after=%d" % (c, int(time.time() - t0)))
    elif case == "many":         # N concurrent connections, all answered
        # from 127.0.0.1-8: under max_connections_per_address (128)
        n = int(files[0])
        socks = []
        for i in range(n):
            socks.append(conn(port, "127.0.0.%d" % (i % 8 + 1)))
        for i, s in enumerate(socks):
            s.sendall(v10(2, struct.pack(">I", i)))
        good = 0
        for i, s in enumerate(socks):
            f, t, v = read_v10(s)
            code, data, _ = errinfo(v)
            if t == 6 and code == 0x0202 and struct.unpack(">I", data)[0] == i:
                good += 1
        # and a real request on top of them
        s = socks[0]
        s.sendall(v10(0, rd(files[1])))
        f, t, v = read_v10(s)
        save(files[2], v)
        for s in socks:
            s.close()
        print("many answered=%d of %d last=%d" % (good, n, t))
    elif case == "pollflow":     # pkiReq -> pollRep; pollReq -> pkiRep (maybe after pollReps)
        s = conn(port)
        s.sendall(v10(0, rd(files[0])))
        flags, typ, val = read_v10(s)
        ref, after = struct.unpack(">II", val) if typ == 1 else (0, 0)
        first = typ
        for _ in range(20):
            if typ != 1:
                break
            time.sleep(min(after, 2))
            s.sendall(v10(2, struct.pack(">I", ref)))
            flags, typ, val = read_v10(s)
        save(files[1], val)
        print("pollflow first=%d after=%d final=%d" % (first, after, typ))
    elif case == "pollstart":    # pkiReq -> pollRep; prints the reference
        s = conn(port)
        s.sendall(v10(0, rd(files[0])))
        flags, typ, val = read_v10(s)
        print("pollstart type=%d ref=%08x" % (typ, struct.unpack(">I", val[:4])[0]))
    elif case == "pollonly":     # pollReq REF until the answer (new connection each time)
        ref = int(files[0], 16)
        typ = None
        for _ in range(20):
            s = conn(port)
            s.sendall(v10(2, struct.pack(">I", ref)))
            flags, typ, val = read_v10(s)
            s.close()
            if typ != 1:
                break
            time.sleep(1)
        save(files[1], val)
        print("pollonly final=%d" % typ)
    elif case == "serve":        # a fake legacy server for the client side
        serve(port, files[0], files[1])
    else:
        print("unknown case", case)
        sys.exit(2)


if __name__ == "__main__":
    main()
