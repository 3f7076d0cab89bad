/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* TPM2_MakeCredential in software for an RSA EK, exactly as go-tpm's credactivation.Generate
 * (docs/protocol-g1.md §7, docs/upstream.md §9.5; TPM 2.0 Part 1 §24):
 *   encSeed     = RSA-OAEP_H(EK, label "IDENTITY\0", seed)
 *   symKey      = KDFa_H(seed, "STORAGE", name, "", 128)
 *   encIdentity = AES-128-CFB(symKey, IV 0)(u16be(len) || secret)
 *   hmacKey     = KDFa_H(seed, "INTEGRITY", "", "", 8 * hLen)
 *   outerHMAC   = HMAC_H(hmacKey, encIdentity || name)
 * with H the hash of the Name's algorithm. */
#include <string.h>

#include "attest_internal.h"

#define MIN_EK_BYTES 256 /* RSA-2048: the TCG EK template's size */

static void put_u16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

int attest_make_credential_seeded(const struct rsa_pub *ek, const uint8_t *name, size_t name_len, const uint8_t *secret,
                                  size_t secret_len, const uint8_t seed[ATTEST_SEED_LEN], const uint8_t *oaep_seed,
                                  struct attest_credential *out)
{
    static const char identity[] = "IDENTITY"; /* sizeof counts the NUL the TPM expects */
    uint8_t sym_key[ATTEST_SEED_LEN], hmac_key[CRYPTO_HASH_MAX], iv[AES_BLOCK_LEN] = {0};
    uint8_t cv[2 + ATTEST_DIGEST_MAX], mac_in[2 + ATTEST_DIGEST_MAX + ATTEST_NAME_MAX];
    uint8_t *enc_identity, *outer_hmac;
    enum crypto_hash h = 0;
    size_t hlen = 0, cv_len = 2 + secret_len;
    int r;

    memset(out, 0, sizeof(*out));
    if (name_len >= 2)
        h = attest_hash_of((uint16_t)(name[0] << 8 | name[1]));
    if (h)
        hlen = crypto_hash_len(h);
    if (!h || name_len != 2 + hlen)
        return log_error_errno(
            -EINVAL, "make credential: the AK Name (%zu bytes) is not a hash algorithm and its digest", name_len);
    if (secret_len == 0 || secret_len > ATTEST_DIGEST_MAX)
        return log_error_errno(-EINVAL, "make credential: a secret of %zu bytes does not fit a TPM2B_DIGEST",
                               secret_len);
    if (ek->n_len < MIN_EK_BYTES || ek->n_len > RSA_MAX_MODULUS)
        return log_error_errno(-EINVAL, "make credential: an RSA EK of %zu bits is not acceptable (2048 at least)",
                               ek->n_len * 8);

    /* TPM2B_ENCRYPTED_SECRET */
    r = crypto_rsa_oaep_encrypt(ek, h, identity, sizeof(identity), seed, ATTEST_SEED_LEN, oaep_seed,
                                out->encrypted_secret + 2);
    if (r < 0)
        return log_error_errno(r, "make credential: cannot encrypt the seed to the EK (RSA-OAEP): %m");
    put_u16(out->encrypted_secret, ek->n_len);
    out->encrypted_secret_len = 2 + ek->n_len;

    /* TPM2B_ID_OBJECT = u16be(size) || TPM2B_DIGEST outerHMAC || encIdentity */
    outer_hmac = out->id_object + 4;
    enc_identity = outer_hmac + hlen;
    put_u16(cv, secret_len);
    memcpy(cv + 2, secret, secret_len);
    r = crypto_kdfa(h, seed, ATTEST_SEED_LEN, "STORAGE", name, name_len, NULL, 0, 8 * ATTEST_SEED_LEN, sym_key);
    if (r == 0)
        r = crypto_aes_cfb_encrypt(sym_key, sizeof(sym_key), iv, cv, cv_len, enc_identity);
    if (r == 0)
        r = crypto_kdfa(h, seed, ATTEST_SEED_LEN, "INTEGRITY", NULL, 0, NULL, 0, (uint32_t)(8 * hlen), hmac_key);
    if (r == 0) {
        memcpy(mac_in, enc_identity, cv_len);
        memcpy(mac_in + cv_len, name, name_len);
        r = crypto_hmac(h, hmac_key, hlen, mac_in, cv_len + name_len, outer_hmac);
    }
    secure_wipe(sym_key, sizeof(sym_key));
    secure_wipe(hmac_key, sizeof(hmac_key));
    secure_wipe(cv, sizeof(cv));
    secure_wipe(mac_in, sizeof(mac_in));
    if (r < 0) {
        secure_wipe(out, sizeof(*out));
        return log_error_errno(-EIO, "make credential: key derivation or encryption failed");
    }
    put_u16(out->id_object, 2 + hlen + cv_len);
    put_u16(out->id_object + 2, hlen);
    out->id_object_len = 2 + 2 + hlen + cv_len;
    return 0;
}

int attest_make_credential(const struct rsa_pub *ek, const uint8_t *name, size_t name_len, const uint8_t *secret,
                           size_t secret_len, struct attest_credential *out)
{
    uint8_t seed[ATTEST_SEED_LEN];
    int r;

    r = crypto_random(seed, sizeof(seed));
    if (r == 0)
        r = attest_make_credential_seeded(ek, name, name_len, secret, secret_len, seed, NULL, out);
    secure_wipe(seed, sizeof(seed));
    return r;
}
