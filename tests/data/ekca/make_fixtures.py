#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""Writes the EK certificate chain fixtures of tests/unit/test_crypto.c into this directory
(python3-cryptography; run once, the outputs are committed):

  root.pem           a vendor root CA (RSA-2048, SHA-256)
  intermediate.pem   an intermediate CA the root signed
  other-root.pem     another root with the same name as root.pem and another key
  ek.der             an EK certificate the intermediate signed, shaped as TPM vendors make them
                     (TCG EK Credential Profile): empty subject, a critical subjectAltName with a
                     directoryName of TPM manufacturer/model/version, subjectDirectoryAttributes,
                     a critical TCG certificate policy, no basicConstraints, keyUsage
                     keyEncipherment, EKU tcg-kp-EKCertificate, plus an unknown critical extension
  ek-expired.der     the same, its validity over since 2020
  ek-by-other.der    an EK certificate other-root signed
"""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test TPM Vendor"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca(subject, subject_key, issuer, issuer_key):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=36500))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256()))


def ek(issuer, issuer_key, not_before, not_after):
    tpm = x509.Name([x509.NameAttribute(ObjectIdentifier("2.23.133.2.1"), "id:54455354"),
                     x509.NameAttribute(ObjectIdentifier("2.23.133.2.2"), "TESTTPM"),
                     x509.NameAttribute(ObjectIdentifier("2.23.133.2.3"), "id:00010002")])
    # SEQUENCE { SEQUENCE { OID 2.23.133.2.16 (tpmSpecification), SET { ... } } }
    sda = bytes.fromhex("301d301b06056781050210311230100c03322e300201000202008a")
    return (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(issuer)
            .public_key(key().public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(tpm)]), critical=True)
            .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("2.5.29.9"), sda), critical=False)
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier("2.23.133.2.5"), None)]),
                           critical=True)
            .add_extension(x509.KeyUsage(False, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ObjectIdentifier("2.23.133.8.1")]), critical=False)
            .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def write(fname, data):
    with open(os.path.join(HERE, fname), "wb") as f:
        f.write(data)


def main():
    root_key, int_key, other_key = key(), key(), key()
    root = ca(name("Test EK Root CA"), root_key, name("Test EK Root CA"), root_key)
    inter = ca(name("Test EK Intermediate CA"), int_key, root.subject, root_key)
    other = ca(name("Test EK Root CA"), other_key, name("Test EK Root CA"), other_key)
    pem = serialization.Encoding.PEM
    write("root.pem", root.public_bytes(pem))
    write("intermediate.pem", inter.public_bytes(pem))
    write("other-root.pem", other.public_bytes(pem))
    der = serialization.Encoding.DER
    write("ek.der", ek(inter.subject, int_key, NOW, datetime.datetime(9999, 12, 31, 23, 59, 59)).public_bytes(der))
    write("ek-expired.der", ek(inter.subject, int_key, datetime.datetime(2015, 1, 1),
                               datetime.datetime(2020, 1, 1)).public_bytes(der))
    write("ek-by-other.der", ek(other.subject, other_key, NOW, NOW + datetime.timedelta(days=36500)).public_bytes(der))


if __name__ == "__main__":
    main()
