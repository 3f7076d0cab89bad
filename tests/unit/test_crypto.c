/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* SPKI encoding and X.509 key extraction against vectors made by OpenSSL (tests/data); EK
 * certificate chains against fixtures made by tests/data/ekca/make_fixtures.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

#include "base.h"
#include "crypto.h"
#include "crypto_internal.h"
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

/* ---- EK certificate chains (--ek-ca) ---- */
static char ekca_tmp[512];

static void copy_to(const char *src, const char *dir, const char *name)
{
    char *text = NULL, dst[1024];
    size_t len = 0;
    FILE *f;

    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    if (file_read_all(src, 1 << 20, &text, &len) < 0 || !(f = fopen(dst, "w"))) {
        printf("# cannot copy %s to %s\n", src, dst);
        free(text);
        return;
    }
    fwrite(text, 1, len, f);
    fclose(f);
    free(text);
}

static char *subdir(const char *name)
{
    static char p[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof(p[k]), "%s/%s", ekca_tmp, name);
    mkdir(p[k], 0700);
    return p[k];
}

static struct crypto_x509_set *load_set(const char *path, const char **log)
{
    struct crypto_x509_set *s = NULL;
    tap_capture_begin();
    if (crypto_x509_set_load(path, &s) < 0)
        s = NULL;
    *log = tap_capture_end();
    return s;
}

/* Verifies a fixture; returns the code and leaves the reason in why. */
static int verify(const char *fixture, const struct crypto_x509_set *cas, char why[256])
{
    char *der = NULL;
    size_t len = 0;
    int r;

    if (file_read_all(tap_data(fixture), 1 << 16, &der, &len) < 0)
        return -999;
    r = crypto_x509_chain_verify((const uint8_t *)der, len, cas, why, 256);
    free(der);
    return r;
}

static void test_ek_chain(void)
{
    const char *base = getenv("KKMS_TEST_TMP"), *log;
    struct crypto_x509_set *full, *inter, *root, *other, *bundle, *s;
    char why[256], *dir, bundle_text[8192];

    snprintf(ekca_tmp, sizeof(ekca_tmp), "%s/ekca.XXXXXX", base ? base : "/tmp");
    if (base)
        mkdir(base, 0755);
    if (!mkdtemp(ekca_tmp)) {
        CHECK(false, "mkdtemp %s", ekca_tmp);
        return;
    }
    dir = subdir("full");
    copy_to(tap_data("ekca/root.pem"), dir, "root.pem");
    copy_to(tap_data("ekca/intermediate.pem"), dir, "intermediate.crt");
    copy_to(tap_data("ekca/make_fixtures.py"), dir, "README"); /* not *.pem / *.crt: ignored */
    copy_to(tap_data("ekca/root.pem"), dir, ".hidden.pem");    /* hidden: ignored */
    full = load_set(dir, &log);
    CHECK(full && crypto_x509_set_count(full) == 2,
          "a directory: its *.pem and *.crt files are loaded, others ignored");

    CHECK(full && verify("ekca/ek.der", full, why) == 0,
          "an EK certificate shaped as vendors make them (empty subject, critical SAN directoryName, critical TCG "
          "policy, an unknown critical extension, no basicConstraints, keyEncipherment) chains to root + intermediate");
    if (*why)
        printf("# %s\n", why);
    CHECK(full && verify("ekca/ek-expired.der", full, why) == 0,
          "validity dates are not enforced (an expired EK certificate)");

    inter = load_set(tap_data("ekca/intermediate.pem"), &log);
    CHECK(inter && verify("ekca/ek.der", inter, why) == 0, "a trusted intermediate alone is enough (a FILE)");
    root = load_set(tap_data("ekca/root.pem"), &log);
    CHECK(root && verify("ekca/ek.der", root, why) == -EKEYREJECTED && *why,
          "the root alone is not: the node does not send the intermediate (\"%s\")", why);
    other = load_set(tap_data("ekca/other-root.pem"), &log);
    CHECK(other && verify("ekca/ek.der", other, why) == -EKEYREJECTED && *why,
          "another CA with the same name refuses it (\"%s\")", why);
    CHECK(other && verify("ekca/ek-by-other.der", other, why) == 0 && full &&
              verify("ekca/ek-by-other.der", full, why) == -EKEYREJECTED,
          "each CA accepts its own EK certificates only");
    CHECK(full && verify("ekca/root.pem", full, why) == -EBADMSG && *why,
          "PEM text is not a DER certificate: -EBADMSG");
    CHECK(full &&
              crypto_x509_chain_verify((const uint8_t *)"\x30\x03\x02\x01\x01", 5, full, why, sizeof(why)) == -EBADMSG,
          "garbage: -EBADMSG");

    /* One file holding both, with text around the blocks (as `cat` and bundles make). */
    {
        char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        FILE *f;
        file_read_all(tap_data("ekca/root.pem"), 1 << 16, &a, &al);
        file_read_all(tap_data("ekca/intermediate.pem"), 1 << 16, &b, &bl);
        snprintf(bundle_text, sizeof(bundle_text), "# vendor bundle\n%s\nsubject=...\n%s", a ? a : "", b ? b : "");
        free(a);
        free(b);
        f = fopen(strcat(strcpy(why, ekca_tmp), "/bundle.pem"), "w");
        if (f) {
            fputs(bundle_text, f);
            fclose(f);
        }
        bundle = load_set(why, &log);
        CHECK(bundle && crypto_x509_set_count(bundle) == 2 && verify("ekca/ek.der", bundle, why) == 0,
              "a PEM bundle file: every certificate in it");
    }

    s = load_set(subdir("empty"), &log);
    CHECK(!s && strstr(log, "no certificate found"), "a directory without certificates is an error");
    dir = subdir("bad");
    copy_to(tap_data("ekca/make_fixtures.py"), dir, "notes.pem");
    s = load_set(dir, &log);
    CHECK(!s && strstr(log, "--ek-ca ") && strstr(log, "/bad/notes.pem: "),
          "a *.pem that holds no certificate is an error naming the file");
    s = load_set(strcat(strcpy(why, ekca_tmp), "/missing"), &log);
    CHECK(!s && strstr(log, "/missing: "), "a missing path is an error naming it");
    CHECK(crypto_x509_chain_verify((const uint8_t *)"x", 1, NULL, why, sizeof(why)) == -EINVAL, "no CA set: -EINVAL");

    crypto_x509_set_free(full);
    crypto_x509_set_free(inter);
    crypto_x509_set_free(root);
    crypto_x509_set_free(other);
    crypto_x509_set_free(bundle);
    if (!tap_failed) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ekca_tmp);
        (void)!system(cmd);
    }
}

/* crypto_random hands out small requests from a block fetched ahead: a forked child must not
 * hand out the bytes its parent will (the block is wiped in the child, MADV_WIPEONFORK). */
static void test_random_fork(void)
{
    uint8_t warm[16], mine[32], theirs[32] = {0}, zero[32] = {0};
    int fd[2];

    CHECK(crypto_random(warm, sizeof(warm)) == 0, "crypto_random: 16 bytes");
    if (pipe(fd) < 0) {
        CHECK(false, "pipe: %m");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t b[32];
        _exit(crypto_random(b, sizeof(b)) == 0 && write(fd[1], b, sizeof(b)) == (ssize_t)sizeof(b) ? 0 : 1);
    }
    close(fd[1]);
    CHECK(pid > 0 && read(fd[0], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs), "the child's 32 random bytes");
    close(fd[0]);
    if (pid > 0)
        (void)waitpid(pid, NULL, 0);
    CHECK(crypto_random(mine, sizeof(mine)) == 0, "the parent's 32 random bytes");
    CHECK(memcmp(mine, theirs, sizeof(mine)) && memcmp(theirs, zero, sizeof(zero)),
          "after a fork, parent and child get different random bytes");
    uint8_t big[200] = {0};
    CHECK(crypto_random(big, sizeof(big)) == 0 && memcmp(big, zero, sizeof(zero)),
          "200 bytes (over the block's threshold: straight from the kernel)");
}

/* SHA-256 and HMAC-SHA-256 through crypto_sha256/crypto_hash/crypto_hmac (the SHA-NI code where
 * the CPU has it) against mbedTLS's C code, over every length across the padding boundaries and
 * keys shorter than, equal to and longer than the block. */
static void test_sha256_impls(void)
{
    uint8_t in[300], a[SHA256_LEN], b[SHA256_LEN];
    bool same = true;

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 131 + 7);
    printf("# SHA-NI: %s\n", crypto_sha256_ni_available() ? "used" : "not on this CPU");
    for (size_t n = 0; n <= sizeof(in) && same; n++) {
        crypto_sha256(in, n, a);
        mbedtls_sha256(in, n, b, 0);
        same = !memcmp(a, b, sizeof(a)) && crypto_hash(CRYPTO_SHA256, in, n, a) == 0 && !memcmp(a, b, sizeof(a));
        if (!same)
            printf("# SHA-256 of %zu bytes differs\n", n);
    }
    CHECK(same, "SHA-256 of 0..300 bytes: the same as mbedTLS's");
    same = true;
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    for (size_t k = 0; k <= 130 && same; k += (k < 70 ? 1 : 20)) {
        for (size_t n = 0; n <= 140 && same; n += 7) {
            same = crypto_hmac(CRYPTO_SHA256, in + 100, k, in, n, a) == 0 &&
                   mbedtls_md_hmac(md, in + 100, k, in, n, b) == 0 && !memcmp(a, b, sizeof(a));
            if (!same)
                printf("# HMAC-SHA-256 with a %zu-byte key of %zu bytes differs\n", k, n);
        }
    }
    CHECK(same, "HMAC-SHA-256, keys of 0..130 bytes: the same as mbedTLS's");
}

int main(void)
{
    test_sha256_impls();
    test_random_fork();
    test_spki_vectors();
    test_pem();
    test_x509();
    test_ek_chain();
    return tap_done();
}
