#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""An independent RFC 6455 / HTTP/1.1 peer for the net suite, written from the RFC with the
Python standard library only (raw sockets, hashlib, ssl), never with lib/net.

  ws_peer.py client PORT SCENARIO [--tls-ca FILE] [--host NAME]   drive our server
  ws_peer.py probe PORT KIND                                      bad input against our server
  ws_peer.py slow PORT COUNT SECONDS                              COUNT stalled clients
  ws_peer.py server [--tls CERT KEY] [--frag gorilla|1024]        a gorilla-like server for our client
  ws_peer.py http-server                                          HTTP answers framed three ways
  ws_peer.py blackhole                                            a port where connect() hangs

Every scenario prints one line per result; the shell tests check those lines. Every wait is
bounded by a socket timeout."""
import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 10


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    """One frame as RFC 6455 §5.2 lays it out; masked with a random key for client frames."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, m | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, m | 127, n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        hdr += key
    return hdr + payload


class Peer:
    """A socket with a receive buffer and bounded reads."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        sock.settimeout(TIMEOUT)

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise ValueError("head too large")
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return lines[0], headers

    def read_frame(self):
        b0, b1 = self.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8))[0]
        key = self.read_exact(4) if b1 & 0x80 else None
        payload = self.read_exact(n)
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload, key is not None

    def read_message(self, mask_pongs=True, log=None):
        """Reassembles a message, answering pings; ('text'|'binary', data), ('close', code) or ('eof',)."""
        parts, kind = [], None
        while True:
            try:
                fin, op, payload, masked = self.read_frame()
            except EOFError:
                return ("eof",)
            if log is not None:
                log.append((op, len(payload), fin, masked))
            if op == 0x9:
                self.sock.sendall(frame(0xA, payload, mask=mask_pongs))
                continue
            if op == 0xA:
                continue
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return ("close", code)
            if op in (1, 2):
                kind = "text" if op == 1 else "binary"
            parts.append(payload)
            if fin:
                return (kind, b"".join(parts))

    def send(self, data):
        self.sock.sendall(data)


def connect(port, tls_ca=None, host="127.0.0.1"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if tls_ca:
        ctx = ssl.create_default_context(cafile=tls_ca)
        sock = ctx.wrap_socket(sock, server_hostname=host)
    return Peer(sock)


def upgrade_request(path, host, key, extra=""):
    # Go canonicalises header names (docs/upstream.md §9.12); we send them the same way.
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n"
            f"Connection: Upgrade\r\nSec-Websocket-Key: {key}\r\nSec-Websocket-Version: 13\r\n"
            f"Upgrade: websocket\r\n{extra}\r\n").encode()


def handshake(p, path, host="127.0.0.1", extra="", pipelined=b""):
    key = base64.b64encode(os.urandom(16)).decode()
    p.send(upgrade_request(path, host, key, extra) + pipelined)
    status, headers = p.read_head()
    ok = status.startswith("HTTP/1.1 101") and headers.get("sec-websocket-accept") == accept_key(key)
    return ok, status


def say(*args):
    print(*args, flush=True)


def fmt(msg):
    """A message from read_message as one line: 'text hello', 'close 1000', 'eof'."""
    if msg[0] in ("text", "binary"):
        return f"{msg[0]} {msg[1].decode(errors='replace').strip()}"
    return " ".join(str(x) for x in msg)


# ---- our server, driven by this independent client ----

def scenario_echo(p):
    ok, status = handshake(p, "/echo")
    say("handshake", "ok" if ok else status)
    p.send(frame(0x1, b"hello"))
    say("text", fmt(p.read_message()))
    big = bytes(i % 251 for i in range(3000))
    # 1024-byte fragments plus an empty final continuation, a ping in between
    p.send(frame(0x2, big[:1024], fin=False))
    p.send(frame(0x9, b"mid"))
    p.send(frame(0x0, big[1024:2048], fin=False) + frame(0x0, big[2048:], fin=False) + frame(0x0, b"", fin=True))
    log = []
    pong = p.read_frame()
    say("pong", "ok" if pong[1] == 0xA and pong[2] == b"mid" and not pong[3] else repr(pong))
    kind, data = p.read_message(log=log)
    say("fragmented", kind, "ok" if data == big else f"bad {len(data)}")
    say("server-frames-unmasked", "ok" if all(not m for (_, _, _, m) in log) else "bad")
    p.send(frame(0x1, "héllo €".encode()))
    kind, data = p.read_message()
    say("utf8", kind, "ok" if data == "héllo €".encode() else repr(data))
    p.send(frame(0x8, struct.pack("!H", 1000) + b"bye"))
    say("close", fmt(p.read_message()))
    try:
        rest = p.sock.recv(10)
        say("after-close", "eof" if rest == b"" else repr(rest))
    except OSError as e:
        say("after-close", type(e).__name__)


def scenario_pipelined(p):
    ok, status = handshake(p, "/echo", pipelined=frame(0x1, b"early") + frame(0x1, b"bird"))
    say("handshake", "ok" if ok else status)
    say("first", fmt(p.read_message()))
    say("second", fmt(p.read_message()))


def scenario_getpass_go(p, label="COS_PERSISTENT"):
    """What a G1 Go client does (docs/protocol-g1.md §4, docs/upstream.md §9.12): canonical headers, one masked
    binary answer ending in a newline, then TCP closed without a close frame."""
    extra = f"Authorization: Bearer TPMeyJ0b2tlbiI6MX0=\r\nLabel: {label}\r\nName: vda5\r\nUuid: \r\n"
    ok, status = handshake(p, "/getPass", extra=extra)
    say("handshake", "ok" if ok else status)
    say("challenge", fmt(p.read_message()))
    p.send(frame(0x2, f"answer:{label}\n".encode()))
    say("result", fmt(p.read_message()))
    say("then", fmt(p.read_message()))
    p.sock.close()


def scenario_getpass_late(p):
    """Answers after 1.5 s (the drain test sends SIGTERM meanwhile)."""
    ok, status = handshake(p, "/getPass", extra="label: LATE\r\n")
    say("handshake", "ok" if ok else status)
    say("challenge", fmt(p.read_message()))
    time.sleep(1.5)
    p.send(frame(0x2, b"answer:LATE\n"))
    say("result", fmt(p.read_message()))


def scenario_getpass_silent(p):
    """Opens /getPass and never answers: the server's deadline must close it."""
    ok, status = handshake(p, "/getPass", extra="label: L\r\n")
    say("handshake", "ok" if ok else status)
    say("challenge", fmt(p.read_message()))
    t = time.monotonic()
    say("then", fmt(p.read_message()))
    say("waited", round(time.monotonic() - t, 1))


def scenario_getpass_nolabel(p):
    ok, status = handshake(p, "/getPass")
    say("status", status)
    try:
        say("body", p.read_exact(14).decode().strip())
    except EOFError:
        say("body", "eof")


def scenario_gone(p):
    """Sends a message and closes TCP without a close frame, like upstream clients."""
    ok, status = handshake(p, "/echo")
    p.send(frame(0x1, b"bye"))
    say("echo", fmt(p.read_message()))
    p.sock.close()
    say("closed", "ok")


def scenario_http(p):
    p.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    for i in range(2):
        status, headers = p.read_head()
        body = p.read_exact(int(headers["content-length"]))
        say("pipelined", i, status, body.decode().strip())
    p.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Type: a/b\r\n\r\nhello")
    status, headers = p.read_head()
    say("post", status, headers.get("content-type"), p.read_exact(int(headers["content-length"])).decode())
    for path in ["/healthz/", "/nope", "//healthz"]:
        p.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers = p.read_head()
        p.read_exact(int(headers["content-length"]))
        say("path", path, status)


SCENARIOS = {
    "echo": scenario_echo,
    "pipelined": scenario_pipelined,
    "getpass-go": scenario_getpass_go,
    "getpass-silent": scenario_getpass_silent,
    "getpass-late": scenario_getpass_late,
    "getpass-nolabel": scenario_getpass_nolabel,
    "gone": scenario_gone,
    "http": scenario_http,
}


# ---- bad input: each probe prints what the server did ----

def outcome(p):
    """What the server answered: 'status N', 'close N' (a WebSocket close frame), or 'eof'."""
    try:
        if not p.buf:
            p.fill()
        if p.buf.startswith(b"HTTP/"):
            return "status " + p.buf.split(b" ")[1].decode()
        _, op, payload, _ = p.read_frame()
        if op == 0x8:
            return "close %d" % struct.unpack("!H", payload[:2])[0]
        return f"frame {op}"
    except (EOFError, ConnectionResetError):
        return "eof"
    except socket.timeout:
        return "timeout"


def probe(port, kind):
    p = connect(port)
    ws = lambda: handshake(p, "/echo")
    if kind == "bad-request-line":
        p.send(b"GARBAGE\r\n\r\n")
    elif kind == "bad-version":
        p.send(b"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n")
    elif kind == "huge-header":
        p.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
    elif kind == "many-headers":
        p.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n")
    elif kind == "huge-body":
        p.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
    elif kind == "chunked-upload":
        p.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    elif kind == "wrong-method":
        p.send(b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    elif kind == "bad-key":
        p.send(upgrade_request("/echo", "127.0.0.1", "c2hvcnQ="))
    elif kind == "no-upgrade":
        p.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    elif kind == "bad-ws-version":
        p.send(upgrade_request("/echo", "x", base64.b64encode(os.urandom(16)).decode()).replace(b"13", b"8"))
    elif kind == "cross-origin":
        p.send(upgrade_request("/echo", "127.0.0.1", base64.b64encode(os.urandom(16)).decode(),
                               "Origin: http://evil.example\r\n"))
    elif kind == "unmasked":
        ws()
        p.send(frame(0x1, b"hi", mask=False))
    elif kind == "oversized-frame":
        ws()
        p.send(struct.pack("!BBQ", 0x82, 0xFF, 2 * 1024 * 1024) + b"\0\0\0\0")  # header only
    elif kind == "oversized-fragments":
        ws()
        chunk = b"x" * 65536
        try:
            for _ in range(40):
                p.send(frame(0x2 if _ == 0 else 0x0, chunk, fin=False))
        except OSError:
            pass
    elif kind == "wrong-opcode":
        ws()
        p.send(frame(0x3, b"?"))
    elif kind == "bad-utf8":
        ws()
        p.send(frame(0x1, b"\xc3\x28"))
    elif kind == "stall-handshake":
        p.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
    elif kind == "stall-message":
        ws()
        p.send(frame(0x1, b"x" * 100)[:50])
    else:
        raise SystemExit(f"unknown probe {kind}")
    t = time.monotonic()
    say(kind, outcome(p), "after", round(time.monotonic() - t, 1))


def slow_clients(port, count, seconds):
    """COUNT clients that each trickle a request one byte at a time; reports how many the
    server dropped before they finished."""
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"s" * 200 + b"\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(count)]
    for s in socks:
        s.setblocking(False)
    dropped = set()
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end and len(dropped) < count and i < len(req):
        for k, s in enumerate(socks):
            if k in dropped:
                continue
            try:
                s.send(req[i:i + 1])
            except OSError:
                dropped.add(k)
                continue
            try:
                data = s.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 408"):
                    dropped.add(k)
            except BlockingIOError:
                pass
            except OSError:
                dropped.add(k)
        i += 1
        time.sleep(0.2)
    for k, s in enumerate(socks):  # a dropped client sees 408 and/or EOF
        try:
            s.setblocking(True)
            s.settimeout(0.5)
            data = s.recv(4096)
            if data == b"" or data.startswith(b"HTTP/1.1 408"):
                dropped.add(k)
        except OSError:
            dropped.add(k)
        s.close()
    say("slow", count, "dropped", len(dropped))


# ---- a gorilla-like server for our client ----

def send_message(sock, opcode, data, frag):
    """Server frames, unmasked, fragmented like gorilla/websocket (write buffer 1024, docs/upstream.md
    §9.12) or in 1024-byte frames plus an empty final continuation."""
    if frag == "gorilla" and len(data) > 2076:
        sock.sendall(frame(opcode, data, fin=False, mask=False) + frame(0, b"", mask=False))
    elif frag in ("gorilla", "1024") and len(data) > 1014:
        size = 1014 if frag == "gorilla" else 1024
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        out = b""
        for i, c in enumerate(chunks):
            last = i == len(chunks) - 1 and frag == "gorilla"
            out += frame(opcode if i == 0 else 0, c, fin=last, mask=False)
        if frag == "1024":
            out += frame(0, b"", fin=True, mask=False)
        sock.sendall(out)
    else:
        sock.sendall(frame(opcode, data, mask=False))


def serve_one(sock, frag):
    p = Peer(sock)
    try:
        request, headers = p.read_head()
        key = headers.get("sec-websocket-key", "")
        if len(base64.b64decode(key)) != 16 or headers.get("sec-websocket-version") != "13":
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        path = request.split(" ")[1]
        if path == "/badaccept":
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
            return
        if path == "/refuse":
            body = b"no TPM Hash found for abc"
            sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode())
        # a ping first: our client must answer it with a masked pong while it waits
        sock.sendall(frame(0x9, b"hb", mask=False))
        info = json.dumps({"request": request, "headers": headers, "pad": "p" * 3000}).encode()
        send_message(sock, 0x2, info, frag)
        log = []
        msg = p.read_message(mask_pongs=False, log=log)
        got = msg[1].decode(errors="replace") if msg[0] in ("text", "binary") else repr(msg)
        masked = all(m for (_, _, _, m) in log)
        pong = any(op == 0xA for (op, _, _, _) in log)
        reply = json.dumps({"got": got, "kind": msg[0], "masked": masked, "pong": pong}).encode() + b"\n"
        send_message(sock, 0x1, reply + b" " * 1500, frag)
        # then close TCP without a close frame, as gorilla servers do
    except (EOFError, OSError, ValueError) as e:
        print(f"ws_peer server: {e!r}", file=sys.stderr, flush=True)
    finally:
        sock.close()


def accepted(ls, lifetime):
    """The connections listener ls accepts within lifetime seconds (ends early when none comes)."""
    ls.settimeout(lifetime)
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        try:
            sock, _ = ls.accept()
        except socket.timeout:
            return
        yield sock


def server(args):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    ctx = None
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
    say("PORT", ls.getsockname()[1])
    for sock in accepted(ls, args.lifetime):
        if ctx:
            try:
                sock.settimeout(TIMEOUT)
                sock = ctx.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as e:
                print(f"ws_peer server: TLS: {e!r}", file=sys.stderr, flush=True)
                continue
        threading.Thread(target=serve_one, args=(sock, args.frag), daemon=True).start()


def blackhole(args):
    """A listener whose accept queue is full, so a new connect() hangs (SYNs are dropped)."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    fillers = []
    for _ in range(4):  # never accepted; the first ones fill the queue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.3)
    say("PORT", port)
    time.sleep(args.lifetime)


def http_server(args):
    """Plain HTTP answers framed three ways: Content-Length, chunked, and until EOF."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    say("PORT", ls.getsockname()[1])
    for sock in accepted(ls, args.lifetime):
        p = Peer(sock)
        try:
            request, headers = p.read_head()
            body = p.read_exact(int(headers.get("content-length", "0")))
            path = request.split(" ")[1]
            text = f"{request.split(' ')[0]} {path} {body.decode()}".encode()
            if path == "/chunked":
                out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                out += b"".join(b"%x\r\n%s\r\n" % (len(text[i:i + 3]), text[i:i + 3]) for i in range(0, len(text), 3))
                out += b"0\r\n\r\n"
            elif path == "/eof":
                out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + text
            elif path == "/nocontent":
                # No body, whatever Content-Length says (RFC 9112 6.3); the client must not read one.
                out = b"HTTP/1.1 204 No Content\r\nContent-Length: 1048576\r\n\r\n"
            elif path == "/continue":
                out = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (
                    len(text), text)
            else:
                out = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text)
            sock.sendall(out)
        except (EOFError, OSError, ValueError) as e:
            print(f"ws_peer http-server: {e!r}", file=sys.stderr, flush=True)
        finally:
            sock.close()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("port", type=int)
    c.add_argument("scenario", choices=sorted(SCENARIOS))
    c.add_argument("--tls-ca")
    c.add_argument("--host", default="127.0.0.1")
    pr = sub.add_parser("probe")
    pr.add_argument("port", type=int)
    pr.add_argument("kind")
    sl = sub.add_parser("slow")
    sl.add_argument("port", type=int)
    sl.add_argument("count", type=int)
    sl.add_argument("seconds", type=float)
    s = sub.add_parser("server")
    s.add_argument("--tls", nargs=2)
    s.add_argument("--frag", default="gorilla", choices=["gorilla", "1024", "none"])
    s.add_argument("--lifetime", type=float, default=60)
    h = sub.add_parser("http-server")
    h.add_argument("--lifetime", type=float, default=60)
    bh = sub.add_parser("blackhole")
    bh.add_argument("--lifetime", type=float, default=30)
    args = ap.parse_args()
    if args.cmd == "client":
        SCENARIOS[args.scenario](connect(args.port, args.tls_ca, args.host))
    elif args.cmd == "probe":
        probe(args.port, args.kind)
    elif args.cmd == "slow":
        slow_clients(args.port, args.count, args.seconds)
    elif args.cmd == "server":
        server(args)
    elif args.cmd == "blackhole":
        blackhole(args)
    else:
        http_server(args)


if __name__ == "__main__":
    main()
