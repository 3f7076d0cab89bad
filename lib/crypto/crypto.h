/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto: hashes, RSA public keys as SubjectPublicKeyInfo (DER/PEM), X.509 key extraction.
 * The only folder that includes mbedTLS (DESIGN.md §2). */
#ifndef KKMS_CRYPTO_H
#define KKMS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32
#define RSA_MAX_MODULUS 512 /* bytes: RSA-4096 */

/* An RSA public key as the TPM and X.509 describe it; the modulus is big-endian, no leading zeros. */
struct rsa_pub {
    uint8_t n[RSA_MAX_MODULUS];
    size_t n_len;
    uint32_t e;
};

/* SHA-256 of n bytes into out. */
void crypto_sha256(const void *in, size_t n, uint8_t out[SHA256_LEN]);

/* DER SubjectPublicKeyInfo of an RSA key (rsaEncryption, NULL parameters), exactly as Go's
 * x509.MarshalPKIXPublicKey and OpenSSL's i2d_PUBKEY write it (UPSTREAM.md §4.3).
 * *der is malloc'd and owned by the caller. 0 or -errno. */
int crypto_rsa_spki_der(const struct rsa_pub *key, uint8_t **der, size_t *der_len);

/* PEM "PUBLIC KEY" text of an RSA key; *pem is malloc'd, NUL-terminated, owned by the caller. */
int crypto_rsa_spki_pem(const struct rsa_pub *key, char **pem);

/* Extracts the RSA public key of a DER X.509 certificate. Trailing bytes after the certificate
 * (NV indices are often padded) are ignored. -EINVAL if it is not a certificate,
 * -EPROTONOSUPPORT if the key is not RSA. */
int crypto_x509_rsa_pub(const uint8_t *cert, size_t len, struct rsa_pub *out);

#endif
