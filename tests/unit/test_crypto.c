/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* SPKI encoding and X.509 key extraction against vectors made by OpenSSL (tests/data). */
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "crypto.h"
#include "tap.h"

static int load_vector(FILE *f, struct rsa_pub *key, char want[65])
{
    char nhex[2 * RSA_MAX_MODULUS + 1];
    unsigned e;
    int n;

    if (fscanf(f, "%1024s %u %64s", nhex, &e, want) != 3)
        return -1;
    n = hex_decode(nhex, strlen(nhex), key->n, sizeof(key->n));
    if (n < 0)
        return -1;
    key->n_len = (size_t)n;
    key->e = e;
    return 0;
}

static void test_spki_vectors(void)
{
    FILE *f = fopen(tap_data("rsa-spki-vectors.txt"), "r");
    struct rsa_pub key;
    char want[65];
    int count = 0;

    CHECK(f != NULL, "vector file opens");
    if (!f)
        return;
    while (load_vector(f, &key, want) == 0) {
        uint8_t *der = NULL, digest[SHA256_LEN];
        size_t der_len = 0;
        char got[65];
        CHECK(crypto_rsa_spki_der(&key, &der, &der_len) == 0, "RSA-%zu e=%u encodes", key.n_len * 8, key.e);
        crypto_sha256(der, der_len, digest);
        hex_encode(digest, sizeof(digest), got);
        CHECK(!strcmp(got, want), "RSA-%zu e=%u SPKI sha256 matches OpenSSL's i2d_PUBKEY", key.n_len * 8, key.e);
        free(der);
        count++;
    }
    fclose(f);
    CHECK(count == 2, "both vectors were checked");
}

static void test_pem(void)
{
    FILE *f = fopen(tap_data("rsa-spki-vectors.txt"), "r");
    struct rsa_pub key;
    char want[65], *pem = NULL;

    if (!f || load_vector(f, &key, want) < 0) {
        CHECK(0, "vector for PEM");
        if (f)
            fclose(f);
        return;
    }
    fclose(f);
    CHECK(crypto_rsa_spki_pem(&key, &pem) == 0 && !strncmp(pem, "-----BEGIN PUBLIC KEY-----\n", 27),
          "PEM output is a PUBLIC KEY block");
    free(pem);
}

static void test_x509(void)
{
    struct rsa_pub from_cert, key;
    char want[65], *buf = NULL;
    size_t len = 0;
    FILE *f;

    if (file_read_all(tap_data("cert-rsa2048.der"), 1 << 16, &buf, &len) < 0) {
        CHECK(0, "RSA certificate loads");
        return;
    }
    CHECK(crypto_x509_rsa_pub((uint8_t *)buf, len, &from_cert) == 0, "RSA key extracted from the certificate");
    f = fopen(tap_data("rsa-spki-vectors.txt"), "r");
    CHECK(f && load_vector(f, &key, want) == 0, "vector for the certificate's key");
    if (f)
        fclose(f);
    CHECK(from_cert.n_len == key.n_len && !memcmp(from_cert.n, key.n, key.n_len) && from_cert.e == key.e,
          "certificate key equals the key it was made from");
    {
        /* NV indices hold certificates padded to their size: trailing bytes are ignored. */
        uint8_t *padded = xcalloc(len + 64, 1);
        memcpy(padded, buf, len);
        CHECK(crypto_x509_rsa_pub(padded, len + 64, &from_cert) == 0, "trailing padding is ignored");
        CHECK(crypto_x509_rsa_pub(padded, len - 1, &from_cert) == -EINVAL, "a truncated certificate is refused");
        CHECK(crypto_x509_rsa_pub(padded + 1, len - 1, &from_cert) == -EINVAL, "garbage is refused");
        free(padded);
    }
    free(buf);
    buf = NULL;
    CHECK(file_read_all(tap_data("cert-ec.der"), 1 << 16, &buf, &len) == 0, "EC certificate loads");
    CHECK(buf && crypto_x509_rsa_pub((uint8_t *)buf, len, &from_cert) == -EPROTONOSUPPORT,
          "an EC certificate is reported as not RSA");
    free(buf);
    CHECK(crypto_x509_rsa_pub((const uint8_t *)"", 0, &from_cert) == -EINVAL, "empty input is refused");
}

int main(void)
{
    test_spki_vectors();
    test_pem();
    test_x509();
    return tap_done();
}
