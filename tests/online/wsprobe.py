#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""A small RFC 6455 peer written from the RFC with the Python standard library only: an
independent client for poking the KMS, and a recording proxy.

  wsprobe.py raw HOST PORT FILE          send FILE's bytes as they are, print the HTTP status line
  wsprobe.py proxy LISTEN_PORT KMS_PORT DIR
        accept one node connection, forward it to the KMS, and record in DIR the upgrade request
        (request.txt) and each node->KMS message (node-1.bin, node-2.bin ...)
  wsprobe.py replay HOST PORT DIR       replay DIR/request.txt's upgrade and DIR/node-1.bin as the
        answer to a fresh challenge; print the KMS's reply message
  wsprobe.py token HOST PORT DIR        decode the token of DIR/request.txt (our node's) with this
        script, check its fields, re-encode it here as Go would (docs/protocol-g1.md §4) and send
        that token to the KMS; print the fields and the KMS's first message
  wsprobe.py frames HOST PORT MODE      upgrade without a token and misbehave (MODE: unmasked,
        oversized, badopcode, stall); print what happened
Every socket has a timeout; the script never waits more than 20 s."""
import base64
import json
import os
import socket
import struct
import sys

TIMEOUT = 20


def listen(host, port, portfile=None):
    """A TCP listener on host:port (0: a free port, then written to portfile); accept() waits 30 s."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(4)
    if portfile:
        with open(portfile, "w") as f:
            f.write(str(s.getsockname()[1]))
    s.settimeout(30)
    return s


def recv_until(s, marker, limit=65536):
    """What s sends up to marker (or its end, or limit bytes): an HTTP head with b"\r\n\r\n"."""
    data = b""
    while marker not in data and len(data) < limit:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def handshake(s, host, path, headers):
    key = base64.b64encode(os.urandom(16)).decode()
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    for k, v in headers:
        req += f"{k}: {v}\r\n"
    s.sendall((req + "\r\n").encode())
    head = recv_until(s, b"\r\n\r\n")
    return head.split(b"\r\n\r\n", 1)


def frame(opcode, payload, mask=True, fin=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    hdr = bytes([b0])
    m = 0x80 if mask else 0
    if n < 126:
        hdr += bytes([m | n])
    elif n < 65536:
        hdr += bytes([m | 126]) + struct.pack(">H", n)
    else:
        hdr += bytes([m | 127]) + struct.pack(">Q", n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_exact(s, n, buf):
    while len(buf[0]) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf[0] += chunk
    out, buf[0] = buf[0][:n], buf[0][n:]
    return out


def read_message(s, buf):
    """Returns (opcode, payload) of one reassembled message; answers nothing."""
    data, first = b"", None
    while True:
        b0, b1 = read_exact(s, 2, buf)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", read_exact(s, 2, buf))[0]
        elif n == 127:
            n = struct.unpack(">Q", read_exact(s, 8, buf))[0]
        key = read_exact(s, 4, buf) if b1 & 0x80 else None
        payload = read_exact(s, n, buf)
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        op = b0 & 0x0F
        if op >= 8:
            if op == 8:
                return 8, payload
            continue
        first = first if first is not None else op
        data += payload
        if b0 & 0x80:
            return first, data


def connect(host, port):
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


def cmd_raw(host, port, path):
    s = connect(host, port)
    s.sendall(open(path, "rb").read())
    try:
        data = s.recv(4096)
    except socket.timeout:
        data = b""
    print(data.split(b"\r\n", 1)[0].decode(errors="replace") if data else "(closed)")


def parse_request(text):
    lines = text.split(b"\r\n")
    path = lines[0].split(b" ")[1].decode()
    headers = []
    for line in lines[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            if k.strip().lower() in (b"authorization", b"label", b"name", b"uuid"):
                headers.append((k.strip().decode(), v.strip().decode()))
    return path, headers


def cmd_proxy(listen_port, kms_port, outdir):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(listen_port)))
    ls.listen(1)
    ls.settimeout(TIMEOUT)
    node, _ = ls.accept()
    node.settimeout(TIMEOUT)
    request = recv_until(node, b"\r\n\r\n")
    open(os.path.join(outdir, "request.txt"), "wb").write(request)
    kms = connect("127.0.0.1", kms_port)
    kms.sendall(request)
    head = recv_until(kms, b"\r\n\r\n")
    head, rest = head.split(b"\r\n\r\n", 1)
    node.sendall(head + b"\r\n\r\n")
    nbuf, kbuf = [b""], [rest]   # the challenge may have come with the 101: forward it as a frame
    i = 0
    try:
        while True:
            op, msg = read_message(kms, kbuf)                       # challenge, then payload
            node.sendall(frame(op, msg, mask=False))
            if op == 8:
                break
            op, msg = read_message(node, nbuf)                     # answer
            i += 1
            open(os.path.join(outdir, f"node-{i}.bin"), "wb").write(msg)
            kms.sendall(frame(op, msg))
    except (ConnectionError, socket.timeout):
        pass
    node.close()
    kms.close()


def cmd_replay(host, port, indir):
    path, headers = parse_request(open(os.path.join(indir, "request.txt"), "rb").read())
    s = connect(host, port)
    head, rest = handshake(s, host, path, headers)
    buf = [rest]
    op, challenge = read_message(s, buf)
    s.sendall(frame(2, open(os.path.join(indir, "node-1.bin"), "rb").read()))
    try:
        op, reply = read_message(s, buf)
        print(reply.decode(errors="replace").strip())
    except ConnectionError:
        print("(closed)")


def go_json(obj):
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def cmd_token(host, port, indir):
    path, headers = parse_request(open(os.path.join(indir, "request.txt"), "rb").read())
    auth = dict((k.lower(), v) for k, v in headers)["authorization"]
    assert auth.startswith("Bearer TPM"), "no Bearer TPM prefix"
    tok = json.loads(base64.b64decode(auth[len("Bearer TPM"):], validate=True))
    ek = base64.b64decode(tok["EK"]).decode()
    ak = tok["AK"]
    fields = {k: base64.b64decode(ak[k]) for k in ("Public", "CreateData", "CreateAttestation", "CreateSignature")}
    print("EK", ek.splitlines()[0])
    print("AK", " ".join(f"{k}={len(v)}" for k, v in fields.items()), "UseTCSDActivationFormat", ak["UseTCSDActivationFormat"])
    # Our own encoding, in Go's field order.
    mine = go_json({"EK": base64.b64encode(ek.encode()).decode(),
                    "AK": {"Public": base64.b64encode(fields["Public"]).decode(), "UseTCSDActivationFormat": False,
                           "CreateData": base64.b64encode(fields["CreateData"]).decode(),
                           "CreateAttestation": base64.b64encode(fields["CreateAttestation"]).decode(),
                           "CreateSignature": base64.b64encode(fields["CreateSignature"]).decode()}})
    token = "Bearer TPM" + base64.b64encode(mine.encode()).decode()
    print("same-bytes", token == auth)
    headers = [(k, token if k.lower() == "authorization" else v) for k, v in headers]
    s = connect(host, port)
    head, rest = handshake(s, host, path, headers)
    op, msg = read_message(s, [rest])
    print("reply", msg[:60].decode(errors="replace"))


def cmd_frames(host, port, mode):
    s = connect(host, port)
    head, rest = handshake(s, host, "/getPass", [("label", "COS_PERSISTENT")])
    print(head.split(b"\r\n", 1)[0].decode())
    buf = [rest]
    try:
        if mode == "unmasked":
            s.sendall(frame(2, b'{"Secret":"AAAA"}', mask=False))
        elif mode == "oversized":
            s.sendall(frame(2, b"x" * (2 << 20)))
        elif mode == "badopcode":
            s.sendall(frame(3, b"??"))
        elif mode == "stall":
            s.sendall(frame(2, b'{"Secret":"AAAA"}')[:5])
        op, msg = read_message(s, buf)
        print("message", op, msg[:200].decode(errors="replace").strip())
    except (ConnectionError, socket.timeout) as e:
        print("dropped:", type(e).__name__)


if __name__ == "__main__":
    c = sys.argv[1]
    if c == "raw":
        cmd_raw(*sys.argv[2:5])
    elif c == "proxy":
        cmd_proxy(*sys.argv[2:5])
    elif c == "replay":
        cmd_replay(*sys.argv[2:5])
    elif c == "token":
        cmd_token(*sys.argv[2:5])
    elif c == "frames":
        cmd_frames(*sys.argv[2:5])
