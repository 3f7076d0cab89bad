/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* What a decoded public area is good for: its Name, its RSA or ECC key, checking a signature. */
#include <stdio.h>
#include <string.h>

#include "attest_internal.h"

enum crypto_hash attest_hash_of(uint16_t alg)
{
    switch (alg) {
    case ATTEST_ALG_SHA1: return CRYPTO_SHA1;
    case ATTEST_ALG_SHA256: return CRYPTO_SHA256;
    case ATTEST_ALG_SHA384: return CRYPTO_SHA384;
    case ATTEST_ALG_SHA512: return CRYPTO_SHA512;
    }
    return 0;
}

int attest_fail(char *why, int r, const char *fmt, ...)
{
    char line[ATTEST_WHY_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (why)
        memcpy(why, line, strlen(line) + 1);
    return log_error_errno(r, "%s", line);
}

int attest_fail_decode(char *why, int r, const char *what, const struct decode_error *err)
{
    return attest_fail(why, r, "%s: %s: %s at byte %zu", what, err->field ? err->field : "?",
                       err->problem ? err->problem : "invalid", err->at);
}

int attest_public_name(const uint8_t *in, size_t len, uint8_t name[ATTEST_NAME_MAX], size_t *name_len)
{
    struct attest_public pub;
    enum crypto_hash h;
    int r;

    r = decode_public(in, len, &pub, NULL);
    if (r < 0)
        return r;
    h = attest_hash_of(pub.name_alg);
    if (!h)
        return -EOPNOTSUPP;
    name[0] = (uint8_t)(pub.name_alg >> 8);
    name[1] = (uint8_t)pub.name_alg;
    r = crypto_hash(h, in, len, name + 2);
    if (r < 0)
        return r;
    *name_len = 2 + crypto_hash_len(h);
    return 0;
}

int attest_public_rsa(const struct attest_public *pub, struct rsa_pub *out)
{
    if (pub->type != ATTEST_ALG_RSA)
        return -EOPNOTSUPP;
    if (pub->rsa_n.len == 0 || pub->rsa_n.len > sizeof(out->n) || pub->rsa_n.data[0] == 0)
        return -EBADMSG;
    memcpy(out->n, pub->rsa_n.data, pub->rsa_n.len);
    out->n_len = pub->rsa_n.len;
    out->e = pub->rsa_exponent ? pub->rsa_exponent : 65537;
    return 0;
}

int attest_ecc_curve(const struct attest_public *pub, enum crypto_curve *curve)
{
    switch (pub->ecc_curve) {
    case ATTEST_ECC_NIST_P256: *curve = CRYPTO_P256; break;
    case ATTEST_ECC_NIST_P384: *curve = CRYPTO_P384; break;
    case ATTEST_ECC_NIST_P521: *curve = CRYPTO_P521; break;
    default: return -EOPNOTSUPP;
    }
    /* A TPM marshals both coordinates at the full size of the curve. */
    if (pub->ecc_x.len != crypto_curve_len(*curve) || pub->ecc_y.len != crypto_curve_len(*curve))
        return -EBADMSG;
    return 0;
}

int attest_verify_signature(const struct attest_public *pub, const struct attest_signature *sig, const uint8_t *msg,
                            size_t msg_len, const char *what, char *why)
{
    enum crypto_hash h = attest_hash_of(sig->hash);
    uint8_t digest[CRYPTO_HASH_MAX];
    uint16_t want = pub->type == ATTEST_ALG_RSA ? ATTEST_ALG_RSASSA : ATTEST_ALG_ECDSA;
    int r;

    if (sig->alg != want)
        return attest_fail(why, -EKEYREJECTED, "%s: signature of alg 0x%04x, but the %s AK signs with 0x%04x", what,
                           sig->alg, pub->type == ATTEST_ALG_RSA ? "RSA" : "ECC", want);
    if (pub->scheme != ATTEST_ALG_NULL && sig->hash != pub->scheme_hash)
        return attest_fail(why, -EKEYREJECTED, "%s: signature hash 0x%04x is not the AK's scheme hash 0x%04x", what,
                           sig->hash, pub->scheme_hash);
    if (h != CRYPTO_SHA256 && h != CRYPTO_SHA384 && h != CRYPTO_SHA512)
        return attest_fail(why, -EOPNOTSUPP, "%s: signature hash 0x%04x not supported (SHA-256/384/512)", what,
                           sig->hash);
    r = crypto_hash(h, msg, msg_len, digest);
    if (r < 0)
        return attest_fail(why, r, "%s: cannot hash the signed data", what);
    if (pub->type == ATTEST_ALG_RSA) {
        struct rsa_pub key;
        r = attest_public_rsa(pub, &key);
        if (r == 0)
            r = crypto_rsa_pkcs1_verify(&key, h, digest, sig->rsa.data, sig->rsa.len);
    } else {
        enum crypto_curve c;
        r = attest_ecc_curve(pub, &c);
        if (r == 0)
            r = crypto_ecdsa_verify(c, pub->ecc_x.data, pub->ecc_x.len, pub->ecc_y.data, pub->ecc_y.len, digest,
                                    crypto_hash_len(h), sig->ecc_r.data, sig->ecc_r.len, sig->ecc_s.data,
                                    sig->ecc_s.len);
    }
    if (r == -EKEYREJECTED)
        return attest_fail(why, r, "could not verify %s: the signature does not match the AK", what);
    if (r < 0)
        return attest_fail(why, -EBADMSG, "could not verify %s: the AK public key is unusable", what);
    return 0;
}
