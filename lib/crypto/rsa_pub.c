/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>

#include "base.h"
#include "crypto.h"
#include "crypto_internal.h"
#include "der.h"

void crypto_sha256(const void *in, size_t n, uint8_t out[SHA256_LEN])
{
    if (crypto_sha256_ni_available()) {
        struct sha256_ni c;
        sha256_ni_init(&c);
        sha256_ni_update(&c, in, n);
        sha256_ni_final(&c, out);
        return;
    }
    mbedtls_sha256(in, n, out, 0);
}

/* Loads key into an mbedTLS public-key context. */
static int pk_from_rsa_pub(const struct rsa_pub *key, mbedtls_pk_context *pk)
{
    uint8_t e[4] = {key->e >> 24, key->e >> 16, key->e >> 8, key->e};

    if (mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0)
        return -ENOMEM;
    if (mbedtls_rsa_import_raw(mbedtls_pk_rsa(*pk), key->n, key->n_len, NULL, 0, NULL, 0, NULL, 0, e, sizeof(e)) != 0 ||
        mbedtls_rsa_complete(mbedtls_pk_rsa(*pk)) != 0)
        return -EINVAL;
    return 0;
}

int crypto_rsa_spki_der(const struct rsa_pub *key, uint8_t **der, size_t *der_len)
{
    mbedtls_pk_context pk;
    uint8_t buf[RSA_MAX_MODULUS + 128];
    int n, r;

    mbedtls_pk_init(&pk);
    r = pk_from_rsa_pub(key, &pk);
    if (r == 0) {
        /* mbedTLS writes DER at the end of the buffer. */
        n = mbedtls_pk_write_pubkey_der(&pk, buf, sizeof(buf));
        if (n <= 0) {
            r = -EINVAL;
        } else {
            *der = xmalloc((size_t)n);
            memcpy(*der, buf + sizeof(buf) - n, (size_t)n);
            *der_len = (size_t)n;
        }
    }
    mbedtls_pk_free(&pk);
    return r;
}

int crypto_rsa_spki_pem(const struct rsa_pub *key, char **pem)
{
    mbedtls_pk_context pk;
    char buf[2 * RSA_MAX_MODULUS + 256];
    int r;

    mbedtls_pk_init(&pk);
    r = pk_from_rsa_pub(key, &pk);
    if (r == 0)
        r = mbedtls_pk_write_pubkey_pem(&pk, (unsigned char *)buf, sizeof(buf)) == 0 ? 0 : -EINVAL;
    if (r == 0)
        *pem = xstrdup(buf);
    mbedtls_pk_free(&pk);
    return r;
}

/* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
 * TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity,
 *                               subject, subjectPublicKeyInfo, ... }  (RFC 5280 §4.1) */
static int x509_find_spki(const uint8_t *cert, size_t len, struct der *spki)
{
    struct der d = {cert, cert + len}, c, tbs, skip;
    uint8_t tag;

    if (der_expect(&d, 0x30, &c, NULL) < 0 || der_expect(&c, 0x30, &tbs, NULL) < 0 ||
        der_expect(&c, 0x30, &skip, NULL) < 0 || der_expect(&c, 0x03, &skip, NULL) < 0 || c.p != c.end)
        return -EINVAL;
    if (tbs.p < tbs.end && tbs.p[0] == 0xa0 && der_next(&tbs, &tag, &skip) < 0)
        return -EINVAL;
    if (der_expect(&tbs, 0x02, &skip, NULL) < 0) /* serialNumber */
        return -EINVAL;
    for (int i = 0; i < 4; i++) /* signature, issuer, validity, subject */
        if (der_expect(&tbs, 0x30, &skip, NULL) < 0)
            return -EINVAL;
    return der_expect(&tbs, 0x30, &skip, spki);
}

int crypto_spki_rsa_pub(const uint8_t *spki, size_t len, struct rsa_pub *out)
{
    mbedtls_pk_context pk;
    uint8_t e[4];
    int r = 0;

    mbedtls_pk_init(&pk);
    if (mbedtls_pk_parse_public_key(&pk, spki, len) != 0)
        r = -EINVAL;
    else if (mbedtls_pk_get_type(&pk) != MBEDTLS_PK_RSA)
        r = -EPROTONOSUPPORT;
    else {
        const mbedtls_rsa_context *rsa = mbedtls_pk_rsa(pk);
        size_t nlen = mbedtls_rsa_get_len(rsa);
        if (nlen > sizeof(out->n) ||
            mbedtls_rsa_export_raw(rsa, out->n, nlen, NULL, 0, NULL, 0, NULL, 0, e, sizeof(e)) != 0)
            r = -EINVAL;
        else {
            out->n_len = nlen;
            out->e = (uint32_t)e[0] << 24 | (uint32_t)e[1] << 16 | (uint32_t)e[2] << 8 | e[3];
        }
    }
    mbedtls_pk_free(&pk);
    return r;
}

int crypto_x509_rsa_pub(const uint8_t *cert, size_t len, struct rsa_pub *out)
{
    struct der spki;
    int r = x509_find_spki(cert, len, &spki);

    if (r < 0)
        return r;
    return crypto_spki_rsa_pub(spki.p, (size_t)(spki.end - spki.p), out);
}
