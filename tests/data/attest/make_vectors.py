#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""Known-answer vectors for lib/crypto/sym.c and lib/attest, computed independently of them.

KDFa, MGF1/OAEP padding and MakeCredential are re-implemented here from their definitions
(TPM 2.0 Part 1 §11.4.10.2, RFC 8017 §7.1, docs/protocol-g1.md §7) with Python's hmac/hashlib and
`cryptography` for AES, RSA and ECDSA; every result is cross-checked against `cryptography` where
it can be (OAEP decryption with the private key, HMAC-checked credential unwrapping).
The C unit test (tests/unit/test_attest.c) compares against the stored output, vectors.txt.

Run from this folder: python3 make_vectors.py > vectors.txt
The RSA test key is kept in ek-test-key.pem so a re-run gives the same vectors (ECDSA is
deterministic, RFC 6979).

Line formats (hex fields; "-" is an empty string):
  kdfa   HASH LABEL KEY CONTEXT_U CONTEXT_V BITS OUT
  hmac   HASH KEY MSG OUT
  hash   HASH MSG OUT
  cfb    KEY IV PLAIN CIPHER
  oaep   HASH N E LABEL MSG OAEP_SEED OUT
  pkcs1  HASH N E MSG SIG
  ecdsa  CURVE X Y HASH MSG R S
  cred   N E NAME SECRET SEED OAEP_SEED ID_OBJECT ENCRYPTED_SECRET
"""
import hashlib
import hmac
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB moved to the "decrepit" module in cryptography 47
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:
    from cryptography.hazmat.primitives.ciphers.modes import CFB

HERE = os.path.dirname(os.path.abspath(__file__))
HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
CHASH = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
TPM_ALG = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}


def hx(b):
    return b.hex() if b else "-"


def det(tag, n):
    """Deterministic 'random' bytes, so the file is reproducible."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"kairos-kms vectors|%s|%d" % (tag.encode(), i)).digest()
        i += 1
    return out[:n]


def kdfa(h, key, label, u, v, bits):
    """TPM 2.0 Part 1 §11.4.10.2, counter mode, label with its NUL."""
    out = b""
    i = 1
    while len(out) * 8 < bits:
        out += hmac.new(key, struct.pack(">I", i) + label.encode() + b"\0" + u + v + struct.pack(">I", bits),
                        HASHES[h]).digest()
        i += 1
    out = out[: (bits + 7) // 8]
    if bits % 8:
        out = bytes([out[0] & ((1 << (bits % 8)) - 1)]) + out[1:]
    return out


def mgf1(h, seed, n):
    out = b""
    i = 0
    while len(out) < n:
        out += HASHES[h](seed + struct.pack(">I", i)).digest()
        i += 1
    return out[:n]


def oaep_encrypt(pub, h, label, msg, seed):
    """RFC 8017 §7.1.1 with a given seed, then textbook RSA."""
    nums = pub.public_numbers()
    k = (nums.n.bit_length() + 7) // 8
    hlen = HASHES[h]().digest_size
    db = HASHES[h](label).digest() + b"\0" * (k - len(msg) - 2 * hlen - 2) + b"\1" + msg
    masked_db = bytes(a ^ b for a, b in zip(db, mgf1(h, seed, len(db))))
    masked_seed = bytes(a ^ b for a, b in zip(seed, mgf1(h, masked_db, hlen)))
    em = b"\0" + masked_seed + masked_db
    return pow(int.from_bytes(em, "big"), nums.e, nums.n).to_bytes(k, "big")


def aes_cfb(key, iv, data, encrypt=True):
    c = Cipher(algorithms.AES(key), CFB(iv))
    ctx = c.encryptor() if encrypt else c.decryptor()
    return ctx.update(data) + ctx.finalize()


def make_credential(pub, name, secret, seed, oaep_seed):
    """docs/protocol-g1.md §7, hashes from the Name's algorithm (docs/upstream.md §9.5)."""
    alg = struct.unpack(">H", name[:2])[0]
    h = {v: k for k, v in TPM_ALG.items()}[alg]
    enc_seed = oaep_encrypt(pub, h, b"IDENTITY\0", seed, oaep_seed)
    sym_key = kdfa(h, seed, "STORAGE", name, b"", 128)
    cv = struct.pack(">H", len(secret)) + secret
    enc_identity = aes_cfb(sym_key, b"\0" * 16, cv)
    hlen = HASHES[h]().digest_size
    hmac_key = kdfa(h, seed, "INTEGRITY", b"", b"", 8 * hlen)
    outer = hmac.new(hmac_key, enc_identity + name, HASHES[h]).digest()
    id_object = struct.pack(">H", 2 + hlen + len(enc_identity)) + struct.pack(">H", hlen) + outer + enc_identity
    return id_object, struct.pack(">H", len(enc_seed)) + enc_seed


def check_credential(priv, name, secret, id_object, enc_secret):
    """The TPM's ActivateCredential, in cryptography's terms, as a self-check."""
    alg = struct.unpack(">H", name[:2])[0]
    h = {v: k for k, v in TPM_ALG.items()}[alg]
    seed = priv.decrypt(enc_secret[2:], padding.OAEP(mgf=padding.MGF1(CHASH[h]()), algorithm=CHASH[h](),
                                                     label=b"IDENTITY\0"))
    hlen = HASHES[h]().digest_size
    assert struct.unpack(">H", id_object[:2])[0] == len(id_object) - 2
    assert struct.unpack(">H", id_object[2:4])[0] == hlen
    outer, enc_identity = id_object[4:4 + hlen], id_object[4 + hlen:]
    hmac_key = kdfa(h, seed, "INTEGRITY", b"", b"", 8 * hlen)
    assert hmac.compare_digest(outer, hmac.new(hmac_key, enc_identity + name, HASHES[h]).digest())
    cv = aes_cfb(kdfa(h, seed, "STORAGE", name, b"", 128), b"\0" * 16, enc_identity, encrypt=False)
    assert cv == struct.pack(">H", len(secret)) + secret


def rsa_key():
    path = os.path.join(HERE, "ek-test-key.pem")
    if not os.path.exists(path):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with open(path, "wb") as f:
            f.write(b"Copyright 2026 The kairos-kms Authors\nSPDX-License-Identifier: Apache-2.0\n"
                    b"A throw-away RSA-2048 key for known-answer vectors (make_vectors.py); not a secret.\n")
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def main():
    out = sys.stdout
    print("# Copyright 2026 The kairos-kms Authors\n# SPDX-License-Identifier: Apache-2.0\n"
          "# Generated by make_vectors.py (an independent implementation); formats in its docstring.", file=out)
    key = rsa_key()
    pub = key.public_key()
    n = pub.public_numbers().n.to_bytes(256, "big")
    e = pub.public_numbers().e

    # KDFa: the two derivations of MakeCredential, other hashes, several blocks, odd bit counts.
    for h, label, u, v, bits in [("sha256", "STORAGE", det("name", 34), b"", 128),
                                 ("sha256", "INTEGRITY", b"", b"", 256),
                                 ("sha256", "STORAGE", det("u", 7), det("v", 9), 600),
                                 ("sha1", "STORAGE", det("name1", 22), b"", 128),
                                 ("sha384", "INTEGRITY", b"", b"", 384),
                                 ("sha512", "CFB", det("u5", 66), det("v5", 3), 1100),
                                 ("sha256", "ODD", b"", det("v6", 5), 13)]:
        k = det("kdfa-key-%s-%d" % (label, bits), 16 if bits != 600 else 40)
        print("kdfa", h, label, hx(k), hx(u), hx(v), bits, hx(kdfa(h, k, label, u, v, bits)), file=out)
    for h in HASHES:
        for ml in (0, 55, 300):
            k, m = det("hmac-key-%s" % h, 20 + ml % 100), det("hmac-msg-%d" % ml, ml)
            print("hmac", h, hx(k), hx(m), hx(hmac.new(k, m, HASHES[h]).digest()), file=out)
            print("hash", h, hx(m), hx(HASHES[h](m).digest()), file=out)
    for kl, ml in [(16, 34), (16, 16), (16, 1), (24, 40), (32, 100)]:
        k, iv, m = det("cfb-key-%d" % ml, kl), det("cfb-iv-%d" % ml, 16), det("cfb-msg-%d" % ml, ml)
        print("cfb", hx(k), hx(iv), hx(m), hx(aes_cfb(k, iv, m)), file=out)
    for h, label in [("sha256", b"IDENTITY\0"), ("sha256", b""), ("sha1", b"DUPLICATE\0"), ("sha384", b"IDENTITY\0")]:
        m, s = det("oaep-msg-" + h, 16), det("oaep-seed-" + h, HASHES[h]().digest_size)
        c = oaep_encrypt(pub, h, label, m, s)
        assert key.decrypt(c, padding.OAEP(mgf=padding.MGF1(CHASH[h]()), algorithm=CHASH[h](), label=label or None)) == m
        print("oaep", h, hx(n), e, hx(label), hx(m), hx(s), hx(c), file=out)
    for h in ("sha256", "sha384", "sha512"):
        m = det("pkcs1-" + h, 139)
        print("pkcs1", h, hx(n), e, hx(m), hx(key.sign(m, padding.PKCS1v15(), CHASH[h]())), file=out)
    for curve, cname, h in [(ec.SECP256R1(), "p256", "sha256"), (ec.SECP384R1(), "p384", "sha384"),
                            (ec.SECP384R1(), "p384", "sha256"), (ec.SECP521R1(), "p521", "sha512")]:
        priv = ec.derive_private_key(int.from_bytes(det("ec-" + cname, 32), "big"), curve)
        nums = priv.public_key().public_numbers()
        clen = (curve.key_size + 7) // 8
        m = det("ecdsa-" + cname + h, 139)
        r, s = utils.decode_dss_signature(priv.sign(m, ec.ECDSA(CHASH[h](), deterministic_signing=True)))
        print("ecdsa", cname, hx(nums.x.to_bytes(clen, "big")), hx(nums.y.to_bytes(clen, "big")), h, hx(m),
              hx(r.to_bytes(clen, "big")), hx(s.to_bytes(clen, "big")), file=out)

    # MakeCredential: the honest SHA-256 AK (the Name of a real swtpm AK), and other Name hashes
    # and secret sizes as docs/upstream.md §9.5 allows.
    with open(os.path.join(HERE, "swtpm", "ak-rsa.name"), "rb") as f:
        ak_name = f.read()
    for name, secret in [(ak_name, det("secret", 32)),
                         (b"\x00\x0b" + det("name-b", 32), det("secret-b", 32)),
                         (b"\x00\x04" + det("name-sha1", 20), det("secret-c", 20)),
                         (b"\x00\x0c" + det("name-sha384", 48), det("secret-d", 48)),
                         (b"\x00\x0b" + det("name-e", 32), det("secret-e", 1))]:
        seed = det("seed" + name.hex(), 16)
        h = {v: k for k, v in TPM_ALG.items()}[struct.unpack(">H", name[:2])[0]]
        oaep_seed = det("oaep" + name.hex(), HASHES[h]().digest_size)
        id_object, enc_secret = make_credential(pub, name, secret, seed, oaep_seed)
        check_credential(key, name, secret, id_object, enc_secret)
        print("cred", hx(n), e, hx(name), hx(secret), hx(seed), hx(oaep_seed), hx(id_object), hx(enc_secret), file=out)


if __name__ == "__main__":
    main()
