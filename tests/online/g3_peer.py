#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""An independent codec of the four G3 messages (upstream kairos-io/kairos
kcrypt/pkg/attestation/messages.go, the pcr_quote object of kairos-io/tpm-helpers
AKManager.GeneratePCRQuote), written from the protocol description and Go's documented
encoding/json behaviour, with the Python standard library only. It never looks at our C code.

Go's encoding/json, as upstream's peers use it: struct fields in declaration order; []byte as
padded standard base64; `omitempty` fields left out when empty; map keys sorted as strings
(so PCR "11" comes before "7"); <, >, & escaped as \\u003c \\u003e \\u0026; gorilla's WriteJSON
(json.Encoder) ends every message with a newline. Our compatible extensions: "nonce" beside
"challenge", "encrypted_passphrase" (base64url without padding, exactly like a G1 node's
generated_by "tpm" passphrase) in the proof, "generated_by" in the response.

Fields are exchanged as "dump" text, one `key=value` per line, every value hex (booleans as
true/false), in a fixed order per message kind:
  init:      ek_public Public CreateData CreateAttestation CreateSignature defer_pcr_enrollment
  challenge: Credential Secret nonce            | error
  proof:     secret version quote signature pcr.N... (ascending N) encrypted_passphrase
  response:  passphrase generated_by            | error
An empty value means absent. Commands:
  g3_peer.py encode KIND SPEC OUT     write the message whose fields SPEC (a dump) gives
  g3_peer.py decode KIND FILE         print the dump of a message; exit 1 with one line on
                                      stderr when it is not a valid message of KIND
  g3_peer.py vectors DIR              write KIND-NAME.spec files covering the edge cases
  g3_peer.py hostile DIR              write KIND-NAME.msg files every decoder must refuse
  g3_peer.py encode-all DIR           encode every DIR/KIND-NAME.spec into DIR/KIND-NAME.py.msg
  g3_peer.py decode-all DIR SUFFIX    decode every DIR/KIND-NAME.SUFFIX into DIR/KIND-NAME.py.dump
                                      (an invalid one: DIR/KIND-NAME.py.refused)
  g3_peer.py refuses DIR              print each DIR/KIND-NAME.msg the decoder accepts; exit 1 if any
(KIND is the file name's part before the first "-".)
"""
import base64
import binascii
import json
import os
import random
import sys

KINDS = ("init", "challenge", "proof", "response")
PCR_COUNT = 24


class Refused(Exception):
    pass


# ---------------------------------------------------------------------------- Go-style JSON text

def go_json(obj):
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def b64(b):
    return base64.b64encode(b).decode()


def b64url_raw(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def unb64(s, what):
    if not isinstance(s, str):
        raise Refused(f"{what}: not a string")
    try:
        return base64.b64decode(s.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(f"{what}: not base64")


def unb64url_raw(s, what):
    if not isinstance(s, str):
        raise Refused(f"{what}: not a string")
    if "=" in s or len(s) % 4 == 1 or any(c not in
                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                                           for c in s):
        raise Refused(f"{what}: not base64url without padding")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---------------------------------------------------------------------------- encoders

def encode(kind, f):
    """f: dict of field -> bytes (or bool); returns the message bytes."""
    if kind == "init":
        obj = {"ek_public": b64(f["ek_public"]),
               "ak_params": {"Public": b64(f["Public"]), "UseTCSDActivationFormat": False,
                             "CreateData": b64(f["CreateData"]),
                             "CreateAttestation": b64(f["CreateAttestation"]),
                             "CreateSignature": b64(f["CreateSignature"])}}
        if f["defer_pcr_enrollment"]:
            obj["defer_pcr_enrollment"] = True
    elif kind in ("challenge", "response") and f.get("error"):
        obj = {"error": f["error"].decode()}
    elif kind == "challenge":
        obj = {"challenge": {"Credential": b64(f["Credential"]), "Secret": b64(f["Secret"])}}
        if f["nonce"]:
            obj["nonce"] = b64(f["nonce"])
    elif kind == "proof":
        pcrs = {str(i): b64(v) for i, v in f["pcrs"].items()}
        obj = {"secret": b64(f["secret"]),
               "pcr_quote": {"quote": {"version": f["version"].decode() or "2",
                                       "quote": b64(f["quote"]), "signature": b64(f["signature"])},
                             "pcrs": {k: pcrs[k] for k in sorted(pcrs)}}}
        if f["encrypted_passphrase"]:
            obj["encrypted_passphrase"] = b64url_raw(f["encrypted_passphrase"])
    elif kind == "response":
        obj = {"passphrase": b64(f["passphrase"])}
        if f["generated_by"]:
            obj["generated_by"] = f["generated_by"].decode()
    else:
        raise ValueError(kind)
    return (go_json(obj) + "\n").encode()


# ---------------------------------------------------------------------------- decoders

class JsonObject(dict):
    """A JSON object that remembers whether a key was repeated (the last value is kept, as Go
    does for struct fields; for the pcrs map a repeat is refused)."""
    repeated = False

    @classmethod
    def of(cls, pairs):
        o = cls(pairs)
        o.repeated = len(o) != len(pairs)
        return o


def member(obj, key, what):
    """Go's struct decoding: exact key first, else a case-insensitive match (last one wins)."""
    if not isinstance(obj, dict):
        raise Refused(f"{what}: not an object")
    if key in obj:
        return obj[key]
    found = None
    for k, v in obj.items():
        if k.lower() == key.lower():
            found = v
    return found


def need_bytes(obj, key, what, lo, hi, decoder=unb64):
    v = member(obj, key, what)
    b = b"" if v is None else decoder(v, what)
    if not lo <= len(b) <= hi:
        raise Refused(f"{what}: {len(b)} bytes, not {lo}..{hi}")
    return b


def need_object(obj, key, what):
    v = member(obj, key, what)
    if not isinstance(v, dict):
        raise Refused(f"{what}: missing or not an object")
    return v


def decode(kind, data):
    try:
        obj = json.loads(data.decode(), object_pairs_hook=JsonObject.of)
    except (UnicodeDecodeError, ValueError):
        raise Refused("not JSON")
    if not isinstance(obj, dict):
        raise Refused("not a JSON object")
    f = {}
    if kind in ("challenge", "response"):
        err = member(obj, "error", "error")
        if err is not None and not isinstance(err, str):
            raise Refused("error: not a string")
        if err:
            return {"error": err.encode()}
    if kind == "init":
        f["ek_public"] = need_bytes(obj, "ek_public", "ek_public", 1, 2048)
        ak = need_object(obj, "ak_params", "ak_params")
        for k in ("Public", "CreateData", "CreateAttestation", "CreateSignature"):
            f[k] = need_bytes(ak, k, "ak_params." + k, 1, 1024)
        tcsd = member(ak, "UseTCSDActivationFormat", "ak_params")
        if tcsd not in (None, False):
            raise Refused("ak_params.UseTCSDActivationFormat: not false")
        d = member(obj, "defer_pcr_enrollment", "init")
        if d not in (None, True, False):
            raise Refused("defer_pcr_enrollment: not a boolean")
        f["defer_pcr_enrollment"] = bool(d)
    elif kind == "challenge":
        c = need_object(obj, "challenge", "challenge")
        f["Credential"] = need_bytes(c, "Credential", "challenge.Credential", 1, 134)
        f["Secret"] = need_bytes(c, "Secret", "challenge.Secret", 1, 514)
        f["nonce"] = b""
        if member(obj, "nonce", "challenge") is not None:
            f["nonce"] = need_bytes(obj, "nonce", "nonce", 1, 64)
    elif kind == "proof":
        f["secret"] = need_bytes(obj, "secret", "secret", 1, 64)
        pq = need_object(obj, "pcr_quote", "pcr_quote")
        q = need_object(pq, "quote", "pcr_quote.quote")
        v = member(q, "version", "quote")
        if v is not None and not isinstance(v, str):
            raise Refused("pcr_quote.quote.version: not a string")
        f["version"] = (v or "").encode()
        f["quote"] = need_bytes(q, "quote", "pcr_quote.quote.quote", 1, 1024)
        f["signature"] = need_bytes(q, "signature", "pcr_quote.quote.signature", 1, 1024)
        pcrs_text = member(pq, "pcrs", "pcr_quote")
        if not isinstance(pcrs_text, dict) or not pcrs_text:
            raise Refused("pcr_quote.pcrs: missing, empty or not an object")
        if getattr(pcrs_text, "repeated", False) or len(pcrs_text) > PCR_COUNT:
            raise Refused("pcr_quote.pcrs: repeated keys or more than 24")
        f["pcrs"] = {}
        for k, val in pcrs_text.items():
            if not (k.isdigit() and k.isascii() and str(int(k)) == k and int(k) < PCR_COUNT):
                raise Refused(f"pcr_quote.pcrs: key {k!r} is not a PCR index")
            b = unb64(val, f"pcr_quote.pcrs[{k}]")
            if len(b) != 32:
                raise Refused(f"pcr_quote.pcrs[{k}]: {len(b)} bytes, not 32")
            f["pcrs"][int(k)] = b
        e = member(obj, "encrypted_passphrase", "proof")
        f["encrypted_passphrase"] = b""
        if e is not None:
            f["encrypted_passphrase"] = unb64url_raw(e, "encrypted_passphrase")
            if len(f["encrypted_passphrase"]) not in (0, 256):
                raise Refused("encrypted_passphrase: not 256 bytes")
    elif kind == "response":
        f["passphrase"] = need_bytes(obj, "passphrase", "passphrase", 0, 4096)
        g = member(obj, "generated_by", "response")
        if g is not None and not isinstance(g, str):
            raise Refused("generated_by: not a string")
        f["generated_by"] = (g or "").encode()
        if not f["passphrase"]:
            raise Refused("neither passphrase nor error")
    else:
        raise ValueError(kind)
    return f


# ---------------------------------------------------------------------------- dump text

ORDER = {"init": ["ek_public", "Public", "CreateData", "CreateAttestation", "CreateSignature",
                  "defer_pcr_enrollment"],
         "challenge": ["Credential", "Secret", "nonce"],
         "proof": ["secret", "version", "quote", "signature", "pcrs", "encrypted_passphrase"],
         "response": ["passphrase", "generated_by"]}


def dump(kind, f):
    if "error" in f:
        return f"error={f['error'].hex()}\n"
    out = []
    for k in ORDER[kind]:
        if k == "pcrs":
            out += [f"pcr.{i}={f['pcrs'][i].hex()}" for i in sorted(f["pcrs"])]
        elif isinstance(f[k], bool):
            out.append(f"{k}={'true' if f[k] else 'false'}")
        else:
            out.append(f"{k}={f[k].hex()}")
    return "\n".join(out) + "\n"


def undump(kind, text):
    f = {"pcrs": {}} if kind == "proof" else {}
    for line in text.splitlines():
        if not line:
            continue
        k, _, v = line.partition("=")
        if k.startswith("pcr."):
            f["pcrs"][int(k[4:])] = bytes.fromhex(v)
        elif v in ("true", "false"):
            f[k] = v == "true"
        else:
            f[k] = bytes.fromhex(v)
    if "error" not in f:
        for k in ORDER[kind]:
            f.setdefault(k, b"")
    return f


# ---------------------------------------------------------------------------- test material

def vectors(d):
    rnd = random.Random(20260901)
    rb = lambda n: bytes(rnd.getrandbits(8) for _ in range(n))  # noqa: E731
    specs = {
        "init-plain": {"ek_public": rb(294), "Public": rb(280), "CreateData": rb(67),
                       "CreateAttestation": rb(145), "CreateSignature": rb(262), "defer_pcr_enrollment": False},
        "init-defer-max": {"ek_public": rb(2048), "Public": rb(1024), "CreateData": rb(1),
                           "CreateAttestation": rb(1024), "CreateSignature": rb(1024),
                           "defer_pcr_enrollment": True},
        "challenge-upstream": {"Credential": rb(70), "Secret": rb(258), "nonce": b""},
        "challenge-nonce": {"Credential": rb(134), "Secret": rb(514), "nonce": rb(32)},
        "challenge-nonce64": {"Credential": rb(1), "Secret": rb(1), "nonce": rb(64)},
        "challenge-error": {"error": "Challenge generation: generating challenge: <EK> & \"AK\" é\u2028".encode()},
        "proof-upstream": {"secret": rb(32), "version": b"2", "quote": rb(145), "signature": rb(262),
                           "pcrs": {0: rb(32), 7: rb(32), 11: rb(32)}, "encrypted_passphrase": b""},
        "proof-all-escrow": {"secret": rb(64), "version": b"2", "quote": rb(1024), "signature": rb(1024),
                             "pcrs": {i: rb(32) for i in range(24)}, "encrypted_passphrase": rb(256)},
        "proof-one": {"secret": rb(1), "version": b"2", "quote": rb(1), "signature": rb(1),
                      "pcrs": {23: rb(32)}, "encrypted_passphrase": b""},
        "response-tofu": {"passphrase": base64.b64encode(rb(32)), "generated_by": b""},
        "response-escrow": {"passphrase": b64url_raw(rb(256)).encode(), "generated_by": b"tpm"},
        "response-binary-max": {"passphrase": rb(4096), "generated_by": b""},
        "response-error": {"error": "Attestation verification failed: attestation verification failed: "
                                    "PCR verification failed: PCR7 changed - x".encode()},
    }
    for name, f in specs.items():
        kind = name.split("-")[0]
        with open(os.path.join(d, name + ".spec"), "w") as fh:
            fh.write(dump(kind, f))


def hostile(d):
    """Messages that are not valid for their kind; every decoder must refuse them (exit 1)."""
    v32 = b64(bytes(32))
    ak = {"Public": "AQ==", "UseTCSDActivationFormat": False, "CreateData": "Ag==",
          "CreateAttestation": "Aw==", "CreateSignature": "BA=="}

    def proof(pcrs=None, **top):
        o = {"secret": "AQ==", "pcr_quote": {"quote": {"version": "2", "quote": "AQ==", "signature": "Ag=="},
                                             "pcrs": pcrs if pcrs is not None else {"7": v32}}}
        o.update(top)
        return o

    cases = {
        "init-no-ek": {"ak_params": ak},
        "init-ek-number": {"ek_public": 12, "ak_params": ak},
        "init-ek-too-big": {"ek_public": b64(bytes(2049)), "ak_params": ak},
        "init-ak-raw-string": {"ek_public": "MA==", "ak_params": json.dumps(ak)},
        "init-ak-missing-sig": {"ek_public": "MA==", "ak_params": {k: v for k, v in ak.items()
                                                                   if k != "CreateSignature"}},
        "init-public-too-big": {"ek_public": "MA==", "ak_params": dict(ak, Public=b64(bytes(1025)))},
        "init-tcsd": {"ek_public": "MA==", "ak_params": dict(ak, UseTCSDActivationFormat=True)},
        "init-defer-string": {"ek_public": "MA==", "ak_params": ak, "defer_pcr_enrollment": "true"},
        "init-url-base64": {"ek_public": "-_8=", "ak_params": ak},
        "challenge-g1-shape": {"EC": {"Credential": "AQ==", "Secret": "Ag=="}},
        "challenge-raw-string": {"challenge": "eyJDcmVkZW50aWFsIjoiQVE9PSJ9"},
        "challenge-no-secret": {"challenge": {"Credential": "AQ=="}},
        "challenge-cred-too-big": {"challenge": {"Credential": b64(bytes(135)), "Secret": "Ag=="}},
        "challenge-empty-nonce": {"challenge": {"Credential": "AQ==", "Secret": "Ag=="}, "nonce": ""},
        "challenge-nonce-65": {"challenge": {"Credential": "AQ==", "Secret": "Ag=="}, "nonce": b64(bytes(65))},
        "challenge-error-number": {"error": 500},
        "proof-no-pcrs": proof(pcrs={}),
        "proof-pcr-24": proof(pcrs={"24": v32}),
        "proof-pcr-leading-zero": proof(pcrs={"07": v32}),
        "proof-pcr-31-bytes": proof(pcrs={"7": b64(bytes(31))}),
        "proof-pcr-hex": proof(pcrs={"7": bytes(32).hex()}),
        "proof-25-pcrs": proof(pcrs=dict({str(i): v32 for i in range(24)}, **{"x": v32})),
        "proof-secret-65": dict(proof(), secret=b64(bytes(65))),
        "proof-quote-string": dict(proof(), pcr_quote=json.dumps(proof()["pcr_quote"])),
        "proof-version-number": {"secret": "AQ==", "pcr_quote": {"quote": {"version": 2, "quote": "AQ==",
                                                                          "signature": "Ag=="},
                                                                "pcrs": {"7": v32}}},
        "proof-escrow-std": proof(encrypted_passphrase=b64(bytes(256))),
        "proof-escrow-short": proof(encrypted_passphrase=b64url_raw(bytes(128))),
        "response-empty": {},
        "response-passphrase-number": {"passphrase": 1},
        "response-generated-by-bool": {"passphrase": "YQ==", "generated_by": True},
        "response-error-object": {"error": {"msg": "x"}},
        "response-array": [{"passphrase": "YQ=="}],
    }
    for name, obj in cases.items():
        with open(os.path.join(d, name + ".msg"), "wb") as fh:
            fh.write((go_json(obj) + "\n").encode())
    # Texts json.dumps cannot make: repeated PCR keys, truncation, a frame of garbage.
    extra = {
        "proof-pcr-twice": ('{"secret":"AQ==","pcr_quote":{"quote":{"version":"2","quote":"AQ==","signature":"Ag=="},'
                            '"pcrs":{"7":"%s","7":"%s"}}}\n' % (v32, v32)),
        "init-truncated": '{"ek_public":"MA==","ak_params":{"Public":"AQ=="',
        "challenge-not-json": "\x00\x01 challenge",
        "response-two-values": '{"passphrase":"YQ=="} {"passphrase":"Yg=="}\n',
    }
    for name, text in extra.items():
        with open(os.path.join(d, name + ".msg"), "wb") as fh:
            fh.write(text.encode())


def batch(cmd, d, suffix):
    """The per-file commands over a directory, in one process (the tests run many files)."""
    accepted = []
    for name in sorted(os.listdir(d)):
        kind = name.split("-")[0]
        path = os.path.join(d, name)
        if kind not in KINDS:
            continue
        if cmd == "encode-all" and name.endswith(".spec"):
            with open(path) as fh:
                f = undump(kind, fh.read())
            with open(path[:-len(".spec")] + ".py.msg", "wb") as fh:
                fh.write(encode(kind, f))
        elif cmd == "decode-all" and name.endswith("." + suffix):
            base = path[:-len(suffix) - 1]
            with open(path, "rb") as fh:
                data = fh.read()
            try:
                text = dump(kind, decode(kind, data))
                out = base + ".py.dump"
            except Refused as e:
                text = f"{e}\n"
                out = base + ".py.refused"
            with open(out, "w") as fh:
                fh.write(text)
        elif cmd == "refuses" and name.endswith(".msg"):
            with open(path, "rb") as fh:
                data = fh.read()
            try:
                decode(kind, data)
                accepted.append(name)
            except Refused:
                pass
    for name in accepted:
        print(name)
    return 1 if accepted else 0


def main(argv):
    if len(argv) == 5 and argv[1] == "encode" and argv[2] in KINDS:
        with open(argv[3]) as fh:
            f = undump(argv[2], fh.read())
        with open(argv[4], "wb") as fh:
            fh.write(encode(argv[2], f))
        return 0
    if len(argv) == 4 and argv[1] == "decode" and argv[2] in KINDS:
        with open(argv[3], "rb") as fh:
            data = fh.read()
        try:
            f = decode(argv[2], data)
        except Refused as e:
            print(f"g3_peer: {argv[3]}: {e}", file=sys.stderr)
            return 1
        sys.stdout.write(dump(argv[2], f))
        return 0
    if len(argv) in (3, 4) and argv[1] in ("encode-all", "decode-all", "refuses"):
        return batch(argv[1], argv[2], argv[3] if len(argv) == 4 else None)
    if len(argv) == 3 and argv[1] in ("vectors", "hostile"):
        (vectors if argv[1] == "vectors" else hostile)(argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
