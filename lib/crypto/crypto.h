/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto: hashes, RSA public keys as SubjectPublicKeyInfo (DER/PEM), X.509 key extraction.
 * The only folder that includes mbedTLS (docs/README.md §3). */
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
 * x509.MarshalPKIXPublicKey and OpenSSL's i2d_PUBKEY write it (docs/upstream.md §5.2).
 * *der is malloc'd and owned by the caller. 0 or -errno. */
int crypto_rsa_spki_der(const struct rsa_pub *key, uint8_t **der, size_t *der_len);

/* PEM "PUBLIC KEY" text of an RSA key; *pem is malloc'd, NUL-terminated, owned by the caller. */
int crypto_rsa_spki_pem(const struct rsa_pub *key, char **pem);

/* Extracts the RSA public key of a DER X.509 certificate. Trailing bytes after the certificate
 * (NV indices are often padded) are ignored. -EINVAL if it is not a certificate,
 * -EPROTONOSUPPORT if the key is not RSA. */
int crypto_x509_rsa_pub(const uint8_t *cert, size_t len, struct rsa_pub *out);
/* The RSA key of a DER SubjectPublicKeyInfo. -EINVAL if it does not parse, -EPROTONOSUPPORT if
 * the key is not RSA. */
int crypto_spki_rsa_pub(const uint8_t *spki, size_t len, struct rsa_pub *out);

/* ==== X.509 chains for EK certificates (x509.c) ==== */
/* A set of trusted CA certificates (TPM vendors' roots and intermediates). */
struct crypto_x509_set;
/* Loads path: a file of PEM "CERTIFICATE" blocks (or one DER certificate), or a directory whose
 * *.pem and *.crt files (not hidden, not in subdirectories) are loaded that way. A file that does
 * not parse, or no certificate at all, is an error (logged, naming --ek-ca and the file). */
int crypto_x509_set_load(const char *path, struct crypto_x509_set **out);
size_t crypto_x509_set_count(const struct crypto_x509_set *s);
void crypto_x509_set_free(struct crypto_x509_set *s);
/* Whether the DER certificate cert chains to a certificate of cas (one that is in the set is
 * trusted as it is, an intermediate as well as a root). Tolerates what TPM EK certificates carry
 * (unknown or critical extensions, no basicConstraints, any key usage) and ignores validity
 * dates; SHA-1 and up, RSA >= 2048 bits. Does not log: why (why_len bytes) says what failed.
 * 0: chains. -EBADMSG: not a certificate; -EKEYREJECTED: does not chain; -EINVAL: no CA. */
int crypto_x509_chain_verify(const uint8_t *cert, size_t len, const struct crypto_x509_set *cas, char *why,
                             size_t why_len);

/* ==== Credential activation and attestation primitives (sym.c), used by lib/attest ==== */
/* None of these log except crypto_random; the caller says what failed. Keys and intermediate
 * values are wiped before returning. */

enum crypto_hash { CRYPTO_SHA1 = 1, CRYPTO_SHA256, CRYPTO_SHA384, CRYPTO_SHA512 };
#define CRYPTO_HASH_MAX 64         /* bytes: SHA-512 */
#define CRYPTO_KDFA_MAX_BITS 65536 /* far above any TPM use; bounds the output buffer */
#define AES_BLOCK_LEN 16

/* Digest size of h in bytes; 0 if h is not a known hash. */
size_t crypto_hash_len(enum crypto_hash h);
/* out = H(in), crypto_hash_len(h) bytes. 0 or -EINVAL. */
int crypto_hash(enum crypto_hash h, const void *in, size_t n, uint8_t *out);
/* out = HMAC_H(key, in), crypto_hash_len(h) bytes. 0 or -EINVAL. */
int crypto_hmac(enum crypto_hash h, const void *key, size_t key_len, const void *in, size_t n, uint8_t *out);

/* TPM 2.0 KDFa (Part 1 §11.4.10.2): ceil(bits/8) bytes into out. label is a C string whose
 * terminating NUL is part of the input, as the TPM defines it; contexts may be NULL (empty).
 * 0 or -EINVAL (unknown hash, bits 0 or above CRYPTO_KDFA_MAX_BITS). */
int crypto_kdfa(enum crypto_hash h, const void *key, size_t key_len, const char *label, const void *context_u,
                size_t u_len, const void *context_v, size_t v_len, uint32_t bits, uint8_t *out);

/* AES-CFB with 128-bit feedback (the TPM's and Go's CFB), key of 16, 24 or 32 bytes; any n;
 * in and out may be the same buffer. 0 or -EINVAL. */
int crypto_aes_cfb_encrypt(const uint8_t *key, size_t key_len, const uint8_t iv[AES_BLOCK_LEN], const void *in,
                           size_t n, uint8_t *out);
int crypto_aes_cfb_decrypt(const uint8_t *key, size_t key_len, const uint8_t iv[AES_BLOCK_LEN], const void *in,
                           size_t n, uint8_t *out);

/* n random bytes from the kernel (getrandom). 0 or -errno (logged). */
int crypto_random(void *buf, size_t n);

/* RSA-OAEP (RFC 8017 §7.1, MGF1 with the same hash h) of n bytes under key, with a label of
 * label_len bytes (the TPM's "IDENTITY\0" counts its NUL). Writes key->n_len bytes to out.
 * oaep_seed is NULL (random, the normal case) or crypto_hash_len(h) fixed bytes for
 * known-answer tests. 0, -EINVAL (bad key or hash), -EMSGSIZE (message too long) or -EIO. */
int crypto_rsa_oaep_encrypt(const struct rsa_pub *key, enum crypto_hash h, const void *label, size_t label_len,
                            const void *in, size_t n, const uint8_t *oaep_seed, uint8_t *out);

/* Verifies an RSASSA-PKCS1-v1_5 signature over digest (crypto_hash_len(h) bytes). The signature
 * must be exactly key->n_len bytes. 0 if valid, -EKEYREJECTED if not, -EINVAL for a bad key. */
int crypto_rsa_pkcs1_verify(const struct rsa_pub *key, enum crypto_hash h, const uint8_t *digest, const uint8_t *sig,
                            size_t sig_len);

enum crypto_curve { CRYPTO_P256 = 1, CRYPTO_P384, CRYPTO_P521 };
/* Coordinate size of curve c in bytes; 0 if unknown. */
size_t crypto_curve_len(enum crypto_curve c);
/* Verifies an ECDSA signature (r, s big-endian) over digest with the public point (x, y)
 * (big-endian, at most the coordinate size after leading zeros). 0 if valid, -EKEYREJECTED if
 * not, -EINVAL if the point is not on the curve or the curve is unknown. */
int crypto_ecdsa_verify(enum crypto_curve c, const uint8_t *x, size_t x_len, const uint8_t *y, size_t y_len,
                        const uint8_t *digest, size_t digest_len, const uint8_t *sig_r, size_t r_len,
                        const uint8_t *sig_s, size_t s_len);

/* crypto_spki_rsa_pub that also reads PEM "PUBLIC KEY" text (tpm2_readpublic -f pem; G1's EK
 * PEM when the node has no certificate). 0, -EINVAL or -EPROTONOSUPPORT (not RSA). */
int crypto_rsa_pub_parse(const uint8_t *in, size_t len, struct rsa_pub *out);
/* ==== end of sym.c section ==== */

#endif
