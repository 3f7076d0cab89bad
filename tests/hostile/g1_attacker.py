#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""A hostile node's network stack: our real discovery-challenger (with its real swtpm) talks to
this proxy, which forwards every G1 exchange to the KMS over the real WebSocket protocol and
rewrites what the node posts on /postPass. The TPM proof is genuine; the posted payload is the
attacker's. Python standard library only; the RFC 6455 framing is tests/online/wsprobe.py's.

  g1_attacker.py BIND_ADDR KMS_PORT DIR MODE [force]
      listens on BIND_ADDR (any free port, written to DIR/port), connects to the KMS on
      127.0.0.1:KMS_PORT from BIND_ADDR, serves connections one after the other and exits when
      none came for 5 s (or after 60 s in all). MODE says what reaches the KMS on /postPass:
        pass             the node's payload unchanged
        gb:VALUE         the node's payload with generated_by set to VALUE (may be empty)
        json:FILE        FILE's bytes instead of the node's payload
      With `force`, a passphrase the KMS sends on /getPass reaches the node as "No secret found",
      so that the node posts even where a Secret exists.
      DIR/log gets one line per connection and per rewritten or received message."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "online"))
from wsprobe import frame, read_message, recv_until  # noqa: E402

TIMEOUT = 20


class Log:
    def __init__(self, path):
        self.f = open(path, "a")
        self.lock = threading.Lock()

    def __call__(self, text):
        with self.lock:
            self.f.write(text + "\n")
            self.f.flush()


def rewrite(msg, mode):
    if mode == "pass":
        return msg
    if mode.startswith("gb:"):
        p = json.loads(msg)
        p["generated_by"] = mode[3:]
        return (json.dumps(p, separators=(",", ":")) + "\n").encode()
    if mode.startswith("json:"):
        return open(mode[5:], "rb").read()
    raise SystemExit("unknown MODE " + mode)


NO_SECRET = b'{"passphrase":"","error":"No secret found for (hidden by the attacker)","generated_by":""}\n'


def relay(node, kms, path, mode, force, log, kbuf):
    post = path.startswith("/postPass")

    def kms_to_node():
        try:
            while True:
                op, msg = read_message(kms, kbuf)
                if op != 8:
                    log(f"{path} kms: {msg.decode(errors='replace').strip()[:300]}")
                if force and not post and op in (1, 2) and b'"passphrase"' in msg:
                    msg = NO_SECRET
                    log(f"{path} the KMS's answer replaced by No secret found")
                node.sendall(frame(op, msg, mask=False))
                if op == 8:
                    break
        except (ConnectionError, socket.timeout, OSError):
            pass

    def node_to_kms():
        nbuf, n = [b""], 0
        try:
            while True:
                op, msg = read_message(node, nbuf)
                if op in (1, 2):
                    n += 1
                    if post and n == 2:  # the posted payload (the first message is the answer)
                        msg = rewrite(msg, mode)
                        op = 1
                        log(f"{path} posted ({mode.split(':')[0]}): {len(msg)} bytes")
                kms.sendall(frame(op, msg, mask=True))
                if op == 8:
                    break
        except (ConnectionError, socket.timeout, OSError):
            pass

    a = threading.Thread(target=kms_to_node, daemon=True)
    b = threading.Thread(target=node_to_kms, daemon=True)
    a.start()
    b.start()
    a.join(TIMEOUT + 5)
    b.join(5)


def main(bind, kms_port, outdir, mode, force=False):
    log = Log(os.path.join(outdir, "log"))
    ls = socket.socket()
    ls.bind((bind, 0))
    ls.listen(4)
    with open(os.path.join(outdir, "port.tmp"), "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(os.path.join(outdir, "port.tmp"), os.path.join(outdir, "port"))
    end = time.monotonic() + 60
    while time.monotonic() < end:
        ls.settimeout(5)
        try:
            node, _ = ls.accept()
        except socket.timeout:
            break
        node.settimeout(TIMEOUT)
        kms = socket.create_connection(("127.0.0.1", int(kms_port)), timeout=TIMEOUT, source_address=(bind, 0))
        kms.settimeout(TIMEOUT)
        try:
            request = recv_until(node, b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode(errors="replace") if b" " in request else "?"
            log(f"connection {path}")
            kms.sendall(request)
            head = recv_until(kms, b"\r\n\r\n")
            head, _, rest = head.partition(b"\r\n\r\n")
            node.sendall(head + b"\r\n\r\n")
            if b" 101 " in head.split(b"\r\n", 1)[0]:
                relay(node, kms, path, mode, force, log, [rest])
            else:
                node.sendall(rest)
        except (ConnectionError, socket.timeout, OSError) as e:
            log(f"connection dropped: {type(e).__name__}")
        node.close()
        kms.close()


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6) or (len(sys.argv) == 6 and sys.argv[5] != "force"):
        raise SystemExit(__doc__)
    main(*sys.argv[1:5], force=len(sys.argv) == 6)
