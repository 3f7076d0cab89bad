#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""Independent encoder of the G1 messages (docs/protocol-g1.md §4), written from the spec and
Go's documented encoding/json behaviour (struct fields in declaration order, []byte as padded
standard base64, <, >, & escaped as \\u003c \\u003e \\u0026, json.Encoder adds a newline).
Writes the vectors test_proto.c compares our encoder with, byte for byte:
    python3 make_vectors.py > vectors.txt
Each line: NAME<TAB>hex of the inputs used<TAB>the encoded message (JSON escaped as C-free text
in hex, so newlines survive)."""
import base64
import json


def go_json(obj):
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def b64(b):
    return base64.b64encode(b).decode()


EK_PEM = (b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtest\n"
          b"-----END PUBLIC KEY-----\n")
PUBLIC = bytes(range(0, 40))
CREATE_DATA = bytes(range(40, 90))
CREATE_ATT = bytes(range(90, 200))
CREATE_SIG = bytes(range(200, 256)) + bytes(200)

token_json = go_json({"EK": b64(EK_PEM),
                      "AK": {"Public": b64(PUBLIC), "UseTCSDActivationFormat": False,
                             "CreateData": b64(CREATE_DATA), "CreateAttestation": b64(CREATE_ATT),
                             "CreateSignature": b64(CREATE_SIG)}})
token = "Bearer TPM" + base64.b64encode(token_json.encode()).decode()

CRED = bytes(range(1, 71))
SECRET = bytes((i * 7) & 0xff for i in range(258))
challenge = go_json({"EC": {"Credential": b64(CRED), "Secret": b64(SECRET)}})

ACTIVATED = bytes((i * 13 + 5) & 0xff for i in range(32))
answer = go_json({"Secret": b64(ACTIVATED)}) + "\n"

payload = go_json({"passphrase": "p<a>s&s\"w\\o\nrd", "error": "", "generated_by": "tpm"}) + "\n"
payload_err = go_json({"passphrase": "", "error": "quarantined: COS_PERSISTENT", "generated_by": ""}) + "\n"


def line(name, msg):
    print(name + "\t" + msg.encode().hex())


line("token", token)
line("challenge", challenge)
line("answer", answer)
line("payload", payload)
line("payload_err", payload_err)
