/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Private-key RSA operations of a software TPM, for simulated nodes (softtpm.h). */
#include <string.h>

#include <mbedtls/hmac_drbg.h>
#include <mbedtls/md.h>
#include <mbedtls/rsa.h>

#include "base.h"
#include "crypto_internal.h"
#include "softtpm.h"

struct kcrypto_rsa_key {
    mbedtls_rsa_context rsa;
};

/* Blinding bytes for private operations: the kernel's, so concurrent keys share no state. */
static int kernel_rng(void *ctx, unsigned char *out, size_t n)
{
    (void)ctx;
    return crypto_random(out, n) == 0 ? 0 : MBEDTLS_ERR_RSA_RNG_FAILED;
}

static struct kcrypto_rsa_key *key_new(void)
{
    struct kcrypto_rsa_key *k = xcalloc(1, sizeof(*k));
    mbedtls_rsa_init(&k->rsa);
    return k;
}

void kcrypto_rsa_free(struct kcrypto_rsa_key *k)
{
    if (!k)
        return;
    mbedtls_rsa_free(&k->rsa); /* zeroizes the private values */
    free(k);
}

int kcrypto_rsa_generate(const void *seed, size_t seed_len, unsigned bits, struct kcrypto_rsa_key **out)
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    mbedtls_hmac_drbg_context drbg;
    struct kcrypto_rsa_key *k;
    int r = 0;

    if (!seed || seed_len < 16 || bits < 1024 || bits > 4096 || bits % 2)
        return -EINVAL;
    mbedtls_hmac_drbg_init(&drbg);
    /* No entropy callback: the generator never reseeds, so its output depends on seed alone. */
    if (mbedtls_hmac_drbg_seed_buf(&drbg, md, seed, seed_len) != 0) {
        mbedtls_hmac_drbg_free(&drbg);
        return -EIO;
    }
    k = key_new();
    if (mbedtls_rsa_gen_key(&k->rsa, mbedtls_hmac_drbg_random, &drbg, bits, 65537) != 0)
        r = -EIO;
    mbedtls_hmac_drbg_free(&drbg); /* zeroizes its state */
    if (r < 0) {
        kcrypto_rsa_free(k);
        return r;
    }
    *out = k;
    return 0;
}

size_t kcrypto_rsa_len(const struct kcrypto_rsa_key *k) { return mbedtls_rsa_get_len(&k->rsa); }

int kcrypto_rsa_primes(const struct kcrypto_rsa_key *k, uint8_t *p, uint8_t *q, size_t half_len)
{
    mbedtls_mpi P, Q;
    int r = 0;

    mbedtls_mpi_init(&P);
    mbedtls_mpi_init(&Q);
    if (mbedtls_rsa_export(&k->rsa, NULL, &P, &Q, NULL, NULL) != 0 || mbedtls_mpi_write_binary(&P, p, half_len) != 0 ||
        mbedtls_mpi_write_binary(&Q, q, half_len) != 0)
        r = -EINVAL;
    mbedtls_mpi_free(&P);
    mbedtls_mpi_free(&Q);
    return r;
}

int kcrypto_rsa_from_primes(const uint8_t *p, size_t p_len, const uint8_t *q, size_t q_len, uint32_t e,
                            struct kcrypto_rsa_key **out)
{
    uint8_t ebuf[4] = {e >> 24, e >> 16, e >> 8, e};
    struct kcrypto_rsa_key *k = key_new();

    if (mbedtls_rsa_import_raw(&k->rsa, NULL, 0, p, p_len, q, q_len, NULL, 0, ebuf, sizeof(ebuf)) != 0 ||
        mbedtls_rsa_complete(&k->rsa) != 0 || mbedtls_rsa_check_privkey(&k->rsa) != 0) {
        kcrypto_rsa_free(k);
        return -EINVAL;
    }
    *out = k;
    return 0;
}

int kcrypto_rsa_public(const struct kcrypto_rsa_key *k, struct rsa_pub *out)
{
    uint8_t e[4];
    size_t len = mbedtls_rsa_get_len(&k->rsa), off = 0;

    if (len == 0 || len > RSA_MAX_MODULUS)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (mbedtls_rsa_export_raw(&k->rsa, out->n, len, NULL, 0, NULL, 0, NULL, 0, e, sizeof(e)) != 0)
        return -EINVAL;
    while (off < len && out->n[off] == 0)
        off++;
    memmove(out->n, out->n + off, len - off);
    out->n_len = len - off;
    out->e = (uint32_t)e[0] << 24 | (uint32_t)e[1] << 16 | (uint32_t)e[2] << 8 | e[3];
    return 0;
}

int kcrypto_rsa_oaep_decrypt(struct kcrypto_rsa_key *k, enum crypto_hash h, const void *label, size_t label_len,
                             const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t buf[RSA_MAX_MODULUS];
    size_t len = 0;
    int r;

    if (crypto_md_type(h) == MBEDTLS_MD_NONE || in_len != kcrypto_rsa_len(k) || in_len > sizeof(buf))
        return -EINVAL;
    if (mbedtls_rsa_set_padding(&k->rsa, MBEDTLS_RSA_PKCS_V21, crypto_md_type(h)) != 0)
        return -EINVAL;
    r = mbedtls_rsa_rsaes_oaep_decrypt(&k->rsa, kernel_rng, NULL, label, label_len, &len, in, buf, sizeof(buf));
    if (r != 0)
        r = r == MBEDTLS_ERR_RSA_RNG_FAILED ? -EIO : -EBADMSG;
    else if (len > cap)
        r = -EMSGSIZE;
    else {
        memcpy(out, buf, len);
        *out_len = len;
    }
    secure_wipe(buf, sizeof(buf));
    return r;
}

int kcrypto_rsa_pkcs1_sign(struct kcrypto_rsa_key *k, enum crypto_hash h, const uint8_t *digest, uint8_t *sig,
                           size_t cap)
{
    if (crypto_md_type(h) == MBEDTLS_MD_NONE || cap < kcrypto_rsa_len(k))
        return -EINVAL;
    if (mbedtls_rsa_set_padding(&k->rsa, MBEDTLS_RSA_PKCS_V15, MBEDTLS_MD_NONE) != 0)
        return -EINVAL;
    if (mbedtls_rsa_rsassa_pkcs1_v15_sign(&k->rsa, kernel_rng, NULL, crypto_md_type(h), (unsigned)crypto_hash_len(h),
                                          digest, sig) != 0)
        return -EIO;
    return 0;
}
