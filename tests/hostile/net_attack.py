# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""Attackers and a malicious server for tests/hostile/test_*.sh (lib/net floods).

Every mode is bounded in connections, bytes and seconds. Clients bind their source address
(--src, e.g. 127.0.0.2) and connect to HOST:PORT.

  probe HOST PORT [--src A] [--path P] [--timeout S]
        one GET; prints "status N ms M"; exit 0 when any HTTP status came back in time
  blank HOST PORT --src A [--conns N] [--seconds S] [--max-bytes B]
        N connections sending empty lines (CRLF) without end; reconnects when closed
  pipeline HOST PORT --src A [--conns N] [--bytes B] [--path P] [--seconds S]
        N connections, each sending B bytes of pipelined keep-alive GETs at once (again on a
        new connection when the server closes one); prints the answers counted
  hog HOST PORT --src A [--conns N] [--seconds S]
        opens N connections and holds them; prints "open N refused M"
  keepalive HOST PORT --src A [--requests N] [--seconds S]
        N pipelined GET /healthz on one connection; prints "responses N closed yes|no"
  trickle HOST PORT --src A [--seconds S]
        one request header sent a byte every 0.5 s; prints when the server closed, and its status
  server MODE --port-file F [--max-bytes B] [--seconds S]
        a malicious HTTP/WebSocket server on 127.0.0.1; MODE: blank, headers, fold,
        chunked-trailer, chunked-tiny, ws-fragments
"""
import argparse
import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "online"))
from wsprobe import recv_until  # noqa: E402


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def dial(host, port, src, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def run_all(worker, n):
    """worker(0) .. worker(n - 1), each in a thread of its own; returns when all have ended."""
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def cmd_probe(a):
    t0 = time.monotonic()
    try:
        s = dial(a.host, a.port, a.src, a.timeout)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: kms\r\nConnection: close\r\n\r\n" % a.path.encode())
        data = b""
        while b"\r\n" not in data and len(data) < 4096:
            left = a.timeout - (time.monotonic() - t0)
            if left <= 0:
                break
            s.settimeout(left)
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
    except OSError as e:
        print("error %s ms %d" % (e, (time.monotonic() - t0) * 1000))
        return 1
    ms = (time.monotonic() - t0) * 1000
    if data.startswith(b"HTTP/1.1 "):
        print("status %s ms %d" % (data[9:12].decode(errors="replace"), ms))
        return 0
    print("no answer ms %d" % ms)
    return 1


def cmd_blank(a):
    end = time.monotonic() + a.seconds
    sent = [0] * a.conns
    conns = [0] * a.conns
    block = b"\r\n" * 32768

    def worker(i):
        while time.monotonic() < end and sent[i] < a.max_bytes:
            try:
                s = dial(a.host, a.port, a.src, 2)
                conns[i] += 1
                s.settimeout(1)
                while time.monotonic() < end and sent[i] < a.max_bytes:
                    s.sendall(block)
                    sent[i] += len(block)
                s.close()
            except OSError:
                time.sleep(0.01)

    run_all(worker, a.conns)
    print("sent %d connections %d" % (sum(sent), sum(conns)))
    return 0


def cmd_pipeline(a):
    req = b"GET %s HTTP/1.1\r\nHost: kms\r\n\r\n" % a.path.encode()
    payload = req * (a.bytes // len(req) + 1)
    end = time.monotonic() + a.seconds
    answers = [0] * a.conns

    def worker(i):
        # When the server closes (its per-connection cap), connect again and start over.
        while time.monotonic() < end:
            try:
                s = dial(a.host, a.port, a.src, 5)
                s.settimeout(0.5)
                off = 0
                while time.monotonic() < end:
                    if off < len(payload):
                        try:
                            off += s.send(payload[off:off + 65536])
                        except socket.timeout:
                            pass
                    try:
                        chunk = s.recv(65536)
                    except socket.timeout:
                        continue
                    if not chunk:
                        break
                    answers[i] += chunk.count(b"HTTP/1.1 ")
                s.close()
            except OSError:
                time.sleep(0.05)

    run_all(worker, a.conns)
    print("requests-per-connection %d answers %d" % (len(payload) // len(req), sum(answers)))
    return 0


def cmd_hog(a):
    raise_nofile()
    socks = []
    refused = 0
    end = time.monotonic() + a.seconds
    for _ in range(a.conns):
        if time.monotonic() > end:
            break
        try:
            socks.append(dial(a.host, a.port, a.src, 0.5))
        except OSError:
            refused += 1
    # Held open (a request started, never finished) until the time is up; count the ones the
    # server answered 503 or closed.
    for s in socks:
        try:
            s.send(b"GET /healthz HTTP/1.1\r\n")
        except OSError:
            pass
    print("open %d failed %d" % (len(socks), refused), flush=True)
    while time.monotonic() < end:
        time.sleep(0.1)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            d = s.recv(4096)
            if not d or d.startswith(b"HTTP/1.1 503"):
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    print("held %d refused %d" % (len(socks) - closed, closed))
    return 0


def cmd_keepalive(a):
    s = dial(a.host, a.port, a.src, 5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: kms\r\n\r\n" * a.requests)
    end = time.monotonic() + a.seconds
    data = b""
    closed = False
    s.settimeout(0.5)
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    print("responses %d closed %s last-close %s" % (data.count(b"HTTP/1.1 200"), "yes" if closed else "no",
                                                    "yes" if b"Connection: close" in data else "no"))
    return 0


def cmd_trickle(a):
    s = dial(a.host, a.port, a.src, 5)
    t0 = time.monotonic()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: kms\r\nX-Slow: ")
    s.settimeout(0.5)
    data = b""
    while time.monotonic() - t0 < a.seconds:
        try:
            s.send(b"a")
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        except socket.timeout:
            continue
        except OSError:
            break
    print("closed-after %.1f status %s" % (time.monotonic() - t0, data[9:12].decode(errors="replace") or "none"))
    return 0


def serve_one(mode, conn, a):
    end = time.monotonic() + a.seconds
    sent = 0
    conn.settimeout(a.seconds)
    try:
        if b"\r\n\r\n" not in recv_until(conn, b"\r\n\r\n"):
            return
        if mode == "blank":
            unit = b"\r\n" * 32768
        elif mode == "headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            unit = b"X-Endless: yes\r\n" * 4096
        elif mode == "fold":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n")
            unit = b" continued\r\n" * 4096
        elif mode == "chunked-trailer":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n")
            unit = b"X-Trailer: endless\r\n" * 4096
        elif mode == "chunked-tiny":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            unit = b"1;ext=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nx\r\n" * 1024
        elif mode == "ws-fragments":
            import base64
            import hashlib
            key = b""
            for line in req.split(b"\r\n"):
                if line.lower().startswith(b"sec-websocket-key:"):
                    key = line.split(b":", 1)[1].strip()
            acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            conn.sendall(b"\x01\x7e\xff\xff" + b"a" * 65535)  # a text message begins, not final
            frag = b"\x00\x7e\xff\xff" + b"a" * 65535     # continuations, never final
            unit = frag * 16
        else:
            raise SystemExit("unknown mode " + mode)
        while time.monotonic() < end and sent < a.max_bytes:
            conn.sendall(unit)
            sent += len(unit)
    except OSError:
        pass
    finally:
        conn.close()
        print("sent %d" % sent, flush=True)


def cmd_server(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(a.port_file + ".tmp", a.port_file)
    ls.settimeout(1)
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        try:
            conn, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve_one, args=(a.mode, conn, a), daemon=True).start()
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("probe", "blank", "pipeline", "hog", "keepalive", "trickle"):
        q = sub.add_parser(name)
        q.add_argument("host")
        q.add_argument("port", type=int)
        q.add_argument("--src", default=None)
        q.add_argument("--conns", type=int, default=4)
        q.add_argument("--seconds", type=float, default=6)
        q.add_argument("--max-bytes", type=int, default=100 << 20)
        q.add_argument("--bytes", type=int, default=50000)
        q.add_argument("--path", default="/healthz")
        q.add_argument("--timeout", type=float, default=3)
        q.add_argument("--requests", type=int, default=150)
    q = sub.add_parser("server")
    q.add_argument("mode")
    q.add_argument("--port-file", required=True)
    q.add_argument("--max-bytes", type=int, default=400 << 20)
    q.add_argument("--seconds", type=float, default=30)
    a = p.parse_args()
    return globals()["cmd_" + a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
