/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto, software-TPM part: the private-key operations a TPM performs inside itself, for
 * simulated nodes only (bench/kms-loadgen). Nothing in the applets uses these: a real node's keys
 * never leave its TPM. Kept apart from crypto.h so that no server or node code reaches them by
 * accident.
 *
 * Keys are RSA with CRT parameters. Generation is deterministic from a seed (HMAC_DRBG-SHA-256
 * seeded with it feeds mbedTLS's key generation), so a simulator run can be reproduced. Private
 * operations blind with fresh random bytes from the kernel. One key must not be used by two
 * threads at once (mbedTLS updates its blinding values); different keys may. None of these log:
 * the caller names what failed. Return 0 or a negative errno. */
#ifndef KKMS_SOFTTPM_H
#define KKMS_SOFTTPM_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

struct kcrypto_rsa_key;

/* A new RSA key of bits (1024..4096, even) with exponent 65537, derived only from seed
 * (seed_len >= 16 bytes). The same seed gives the same key with the same mbedTLS version.
 * -EINVAL bad arguments, -EIO generation failed. *out owned by the caller (kcrypto_rsa_free). */
int kcrypto_rsa_generate(const void *seed, size_t seed_len, unsigned bits, struct kcrypto_rsa_key **out);
/* The primes p and q, each written big-endian into half_len bytes (bits/16), for a key cache. */
int kcrypto_rsa_primes(const struct kcrypto_rsa_key *k, uint8_t *p, uint8_t *q, size_t half_len);
/* The key again from its primes (big-endian) and public exponent e; the rest is computed and
 * the pair checked. -EINVAL when they do not make a valid key. */
int kcrypto_rsa_from_primes(const uint8_t *p, size_t p_len, const uint8_t *q, size_t q_len, uint32_t e,
                            struct kcrypto_rsa_key **out);
/* The public half. */
int kcrypto_rsa_public(const struct kcrypto_rsa_key *k, struct rsa_pub *out);
/* Bytes of the modulus. */
size_t kcrypto_rsa_len(const struct kcrypto_rsa_key *k);

/* RSA-OAEP decryption (RFC 8017 §7.1.2, MGF1 with h) with a label of label_len bytes (the TPM's
 * "IDENTITY\0" counts its NUL). in must be kcrypto_rsa_len bytes. Writes the message to out (cap
 * bytes) and its length to *out_len. -EBADMSG when the ciphertext or label does not decrypt,
 * -EMSGSIZE when cap is too small, -EINVAL bad arguments. */
int kcrypto_rsa_oaep_decrypt(struct kcrypto_rsa_key *k, enum crypto_hash h, const void *label, size_t label_len,
                             const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len);

/* RSASSA-PKCS1-v1_5 signature over digest (crypto_hash_len(h) bytes), as TPM2_Sign/Certify* with
 * the RSASSA scheme. sig gets kcrypto_rsa_len bytes (cap at least that). */
int kcrypto_rsa_pkcs1_sign(struct kcrypto_rsa_key *k, enum crypto_hash h, const uint8_t *digest, uint8_t *sig,
                           size_t cap);

/* Wipes and frees (NULL is fine). */
void kcrypto_rsa_free(struct kcrypto_rsa_key *k);

#endif
