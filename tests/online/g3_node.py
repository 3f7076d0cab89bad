#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""A G3 node for tests, shaped like upstream's (kairos-io/kairos kcrypt/discovery/client,
kcrypt/pkg/attestation/client.go): it speaks /tpm-attestation with the independent codec
g3_peer.py (stdlib only), and leaves the TPM work to g3_node_tool (one process = one transient
AK). By default it behaves as an upstream node: it ignores the KMS's nonce (quotes with empty
qualifying data) and sends no escrow. Every message is a text frame.

  g3_node.py exchange HOST PORT LABEL [opts]    one exchange; prints passphrase=TEXT or error=TEXT
      opts: --nonce (quote over the KMS's nonce, as our node) --escrow (offer an escrow)
            --defer (defer_pcr_enrollment) --pcrs 0,7,11
  g3_node.py replay HOST PORT LABEL             an exchange over the nonce, then its proof replayed
                                                on a new connection (same AK), then its quote
                                                reused with a correctly activated secret
  g3_node.py bad HOST PORT CASE                 one hostile exchange (see CASES); prints the KMS's
                                                answer (error=TEXT, closed, or passphrase=...)
Environment: KKMS_G3_NODE_TOOL (the tool), TPM_DEVICE (its TPM), SRC_ADDR (source address, e.g.
127.0.0.2 for an attacker), STALL_SECONDS (case stall)."""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import g3_peer  # noqa: E402
import wsprobe  # noqa: E402


class Tool:
    def __init__(self):
        self.p = subprocess.Popen([os.environ["KKMS_G3_NODE_TOOL"], os.environ["TPM_DEVICE"]],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = {"pcrs": {}}
        while True:
            ln = self.p.stdout.readline()
            if not ln or ln.strip() == ".":
                break
            k, _, v = ln.strip().partition("=")
            if k == "error":
                raise RuntimeError(v)
            if k.startswith("pcr."):
                out["pcrs"][int(k[4:])] = bytes.fromhex(v)
            elif v in ("true", "false"):
                out[k] = v == "true"
            else:
                out[k] = bytes.fromhex(v)
        return out

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


class Conn:
    def __init__(self, host, port, label):
        src = os.environ.get("SRC_ADDR")
        self.s = socket.create_connection((host, int(port)), timeout=wsprobe.TIMEOUT,
                                          source_address=(src, 0) if src else None)
        self.s.settimeout(wsprobe.TIMEOUT)
        self.buf = [b""]
        head, rest = wsprobe.handshake(self.s, f"{host}:{port}", "/tpm-attestation",
                                       [("label", label), ("name", ""), ("uuid", "")])
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("upgrade refused: " + head.split(b"\r\n")[0].decode())
        self.buf[0] = rest

    def send(self, data, opcode=1):
        self.s.sendall(wsprobe.frame(opcode, data))

    def recv(self):
        try:
            op, data = wsprobe.read_message(self.s, self.buf)
        except (ConnectionError, socket.timeout, OSError):
            return None
        return None if op == 8 else data


def answer(data, kind):
    """The KMS's message: ('error', text) or (kind, fields) or ('closed', None)."""
    if data is None:
        return "closed", None
    try:
        f = g3_peer.decode(kind, data)
    except g3_peer.Refused as e:
        return "invalid", str(e)
    if "error" in f:
        return "error", f["error"].decode(errors="replace")
    return kind, f


def init_fields(tool, defer=False):
    f = tool.ask("init defer" if defer else "init")
    f.pop("pcrs", None)
    return f


def proof_fields(tool, challenge, pcrs, nonce, escrow):
    act = tool.ask(f"activate {challenge['Credential'].hex()} {challenge['Secret'].hex()}")
    q = tool.ask(f"quote {pcrs} {challenge['nonce'].hex() if nonce and challenge['nonce'] else '-'}")
    f = {"secret": act["secret"], "version": b"2", "quote": q["quote"], "signature": q["signature"],
         "pcrs": q["pcrs"], "encrypted_passphrase": b""}
    if escrow:
        f["encrypted_passphrase"] = tool.ask("escrow")["encrypted_passphrase"]
    return f


def report(kind, f):
    if kind == "response":
        gb = f["generated_by"].decode()
        print("passphrase=" + f["passphrase"].decode(errors="replace") + (" generated_by=" + gb if gb else ""))
        return 0
    print(f"{kind}={f}")
    return 1


def exchange(host, port, label, nonce=False, escrow=False, defer=False, pcrs="0,7,11", tool=None):
    own = tool is None
    tool = tool or Tool()
    try:
        c = Conn(host, port, label)
        c.send(g3_peer.encode("init", init_fields(tool, defer)))
        kind, ch = answer(c.recv(), "challenge")
        if kind != "challenge":
            return report(kind, ch), None
        pf = proof_fields(tool, ch, pcrs, nonce, escrow)
        c.send(g3_peer.encode("proof", pf))
        kind, resp = answer(c.recv(), "response")
        return report(kind, resp), pf
    finally:
        if own:
            tool.close()


def replay(host, port, label):
    tool = Tool()
    rc, pf = exchange(host, port, label, nonce=True, tool=tool)
    if rc != 0:
        return 1
    # the whole proof, on a new connection (new secret, new nonce), same AK
    c = Conn(host, port, label)
    c.send(g3_peer.encode("init", init_fields(tool)))
    kind, ch = answer(c.recv(), "challenge")
    c.send(g3_peer.encode("proof", pf))
    kind, resp = answer(c.recv(), "response")
    print("replayed-proof: ", end="")
    report(kind, resp)
    # a correctly activated secret, but the old quote (over the old nonce)
    c = Conn(host, port, label)
    c.send(g3_peer.encode("init", init_fields(tool)))
    kind, ch = answer(c.recv(), "challenge")
    act = tool.ask(f"activate {ch['Credential'].hex()} {ch['Secret'].hex()}")
    old = dict(pf, secret=act["secret"])
    c.send(g3_peer.encode("proof", old))
    kind, resp = answer(c.recv(), "response")
    print("old-quote: ", end="")
    report(kind, resp)
    tool.close()
    return 0


def flip(b, i, mask=0x01):
    b = bytearray(b)
    b[i] ^= mask
    return bytes(b)


def bad(host, port, case):
    """Each case sends one defect; prints what the KMS answered."""
    tool = Tool()
    try:
        c = Conn(host, port, "COS_PERSISTENT")
        init = init_fields(tool)
        if case == "init-not-json":
            c.send(b"{not json\n")
        elif case == "init-wrong-type":
            c.send(b'{"ek_public":5,"ak_params":{}}\n')
        elif case == "init-binary-frame":
            c.send(g3_peer.encode("init", init), opcode=2)
        elif case == "ak-attributes":
            # attributes of the AK's TPMT_PUBLIC (after type and nameAlg): fixedTPM cleared
            init["Public"] = flip(init["Public"], 7, 0x02)
            c.send(g3_peer.encode("init", init))
        elif case == "ak-signature":
            init["CreateSignature"] = flip(init["CreateSignature"], len(init["CreateSignature"]) - 1)
            c.send(g3_peer.encode("init", init))
        elif case == "ak-ecdsa-signature":
            # an ECDSA-typed creation signature on an RSA AK (upstream's handler crashes)
            init["CreateSignature"] = bytes.fromhex("0018") + init["CreateSignature"][2:]
            c.send(g3_peer.encode("init", init))
        elif case == "ak-truncated":
            init["CreateData"] = init["CreateData"][:5]
            c.send(g3_peer.encode("init", init))
        elif case == "ak-tcsd":
            msg = g3_peer.encode("init", init).replace(b'"UseTCSDActivationFormat":false',
                                                      b'"UseTCSDActivationFormat":true')
            c.send(msg)
        elif case == "ek-not-spki":
            init["ek_public"] = b"\x30\x03\x02\x01\x01"
            c.send(g3_peer.encode("init", init))
        else:
            c.send(g3_peer.encode("init", init))
            kind, ch = answer(c.recv(), "challenge")
            if kind != "challenge":
                return report(kind, ch)
            if case == "stall":
                time.sleep(float(os.environ.get("STALL_SECONDS", "5")))
                data = c.recv()
                print("stalled: " + ("closed" if data is None else data.decode(errors="replace").strip()))
                return 0
            pf = proof_fields(tool, ch, "0,7,11", True, False)
            if case == "proof-not-json":
                c.send(b"[1,2,3]\n")
            elif case == "proof-wrong-secret":
                pf["secret"] = flip(pf["secret"], 0)
                c.send(g3_peer.encode("proof", pf))
            elif case == "proof-wrong-type":
                c.send(b'{"secret":"AAAA","pcr_quote":{"quote":{"version":2,"quote":"AA==","signature":"AA=="},"pcrs":{}}}\n')
            elif case == "proof-oversized-quote":
                pf["quote"] = pf["quote"] + b"\0" * 2000
                c.send(g3_peer.encode("proof", pf))
            elif case == "proof-oversized-pcrs":
                msg = g3_peer.encode("proof", pf)
                extra = ",".join(f'"{i}":"{"A" * 43}="' for i in range(30, 60))
                c.send(msg.replace(b'"pcrs":{', b'"pcrs":{' + extra.encode() + b","))
            elif case == "proof-pcr-set-differs":
                del pf["pcrs"][11]
                c.send(g3_peer.encode("proof", pf))
            elif case == "proof-pcr-value-differs":
                pf["pcrs"][7] = flip(pf["pcrs"][7], 0)
                c.send(g3_peer.encode("proof", pf))
            elif case == "proof-binary-frame":
                c.send(g3_peer.encode("proof", pf), opcode=2)
            elif case == "proof-huge":
                c.send(b'{"secret":"' + b"A" * 40000 + b'"}\n')
            else:
                print(f"unknown case {case}", file=sys.stderr)
                return 2
            kind, resp = answer(c.recv(), "response")
            return report(kind, resp)
        kind, ch = answer(c.recv(), "challenge")
        return report(kind, ch)
    finally:
        tool.close()


def main(argv):
    if len(argv) >= 5 and argv[1] == "exchange":
        opts = argv[5:]
        pcrs = opts[opts.index("--pcrs") + 1] if "--pcrs" in opts else "0,7,11"
        rc, _ = exchange(argv[2], argv[3], argv[4], nonce="--nonce" in opts, escrow="--escrow" in opts,
                         defer="--defer" in opts, pcrs=pcrs)
        return rc
    if len(argv) == 5 and argv[1] == "replay":
        return replay(argv[2], argv[3], argv[4])
    if len(argv) == 5 and argv[1] == "bad":
        return bad(argv[2], argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
