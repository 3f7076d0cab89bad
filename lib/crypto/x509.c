/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* X.509 chains for EK certificates: a set of CA certificates (the TPM vendors' roots and
 * intermediates an operator trusts) and the check that a TPM's EK certificate was issued by one.
 *
 * EK certificates are not TLS certificates (TCG EK Credential Profile): an empty or placeholder
 * subject, a critical subjectAltName holding a directoryName with the TPM manufacturer, model
 * and version, subjectDirectoryAttributes, TCG certificate policies, often no basicConstraints,
 * keyUsage keyEncipherment only. Every extension mbedTLS does not understand is accepted here,
 * critical or not, and the leaf's key usage is not checked: the only question is whether a
 * trusted CA signed this certificate (and so this EK public key). Validity dates are not
 * enforced either: an EK certificate names the TPM for its life (many say "until 9999"), and the
 * KMS's clock is not what makes a TPM genuine. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/pem.h>
#include <mbedtls/x509_crt.h>

#include "base.h"
#include "crypto.h"

#define CA_FILE_MAX (1u << 20)
#define CA_DIR_MAX_FILES 1024

struct crypto_x509_set {
    mbedtls_x509_crt chain;
    size_t n;
};

/* Accepts every extension mbedTLS does not handle itself (see the top of this file). */
static int accept_extension(void *ctx, mbedtls_x509_crt const *crt, mbedtls_x509_buf const *oid, int critical,
                            const unsigned char *p, const unsigned char *end)
{
    (void)ctx;
    (void)crt;
    (void)oid;
    (void)critical;
    (void)p;
    (void)end;
    return 0;
}

static int parse_der(mbedtls_x509_crt *chain, const uint8_t *der, size_t len)
{
    return mbedtls_x509_crt_parse_der_with_ext_cb(chain, der, len, 1, accept_extension, NULL);
}

/* Adds the certificates of one file's text: PEM "CERTIFICATE" blocks, or one DER certificate. */
static int add_buffer(struct crypto_x509_set *s, const char *path, const char *buf, size_t len)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    const char *p = buf;
    size_t added = 0;
    int ret;

    if (!strstr(buf, begin)) {
        ret = parse_der(&s->chain, (const uint8_t *)buf, len);
        if (ret != 0)
            return log_error_errno(-EINVAL,
                                   "--ek-ca %s: neither PEM certificates nor a DER certificate (mbedTLS -0x%04x)", path,
                                   (unsigned)-ret);
        s->n++;
        return 0;
    }
    while ((p = strstr(p, begin))) {
        mbedtls_pem_context pem;
        size_t used = 0;

        mbedtls_pem_init(&pem);
        ret = mbedtls_pem_read_buffer(&pem, begin, end, (const unsigned char *)p, NULL, 0, &used);
        if (ret == 0) {
            size_t der_len = 0;
            const unsigned char *der = mbedtls_pem_get_buffer(&pem, &der_len);
            ret = parse_der(&s->chain, der, der_len);
        }
        mbedtls_pem_free(&pem);
        if (ret != 0)
            return log_error_errno(-EINVAL, "--ek-ca %s: certificate %zu does not parse (mbedTLS -0x%04x)", path,
                                   added + 1, (unsigned)-ret);
        added++;
        s->n++;
        p += used ? used : strlen(begin);
    }
    return 0;
}

static int add_file(struct crypto_x509_set *s, const char *path)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r;

    r = file_read_all(path, CA_FILE_MAX, &buf, &len);
    if (r < 0)
        return log_error_errno(r, "--ek-ca %s: cannot read: %m", path);
    return add_buffer(s, path, buf, len);
}

static bool ca_file_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && ((n > 4 && !strcmp(name + n - 4, ".pem")) || (n > 4 && !strcmp(name + n - 4, ".crt")));
}

static int add_dir(struct crypto_x509_set *s, const char *path, DIR *d)
{
    struct dirent *e;
    size_t files = 0;
    int r = 0;

    while (r == 0 && (e = readdir(d))) {
        char full[4096];
        if (!ca_file_name(e->d_name))
            continue;
        if (++files > CA_DIR_MAX_FILES)
            return log_error_errno(-E2BIG, "--ek-ca %s: more than %u certificate files", path, CA_DIR_MAX_FILES);
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", path, e->d_name) >= sizeof(full))
            return log_error_errno(-ENAMETOOLONG, "--ek-ca %s/%s: path too long", path, e->d_name);
        r = add_file(s, full);
    }
    return r;
}

int crypto_x509_set_load(const char *path, struct crypto_x509_set **out)
{
    struct crypto_x509_set *s = xcalloc(1, sizeof(*s));
    DIR *d;
    int r;

    *out = NULL;
    mbedtls_x509_crt_init(&s->chain);
    d = opendir(path);
    if (d) {
        r = add_dir(s, path, d);
        closedir(d);
    } else if (errno == ENOTDIR) {
        r = add_file(s, path);
    } else {
        r = log_error_errno(-errno, "--ek-ca %s: %m", path);
    }
    if (r == 0 && s->n == 0)
        r = log_error_errno(-ENOENT, "--ek-ca %s: no certificate found (PEM files; in a directory *.pem and *.crt)",
                            path);
    if (r < 0) {
        crypto_x509_set_free(s);
        return r;
    }
    *out = s;
    return 0;
}

size_t crypto_x509_set_count(const struct crypto_x509_set *s) { return s ? s->n : 0; }

void crypto_x509_set_free(struct crypto_x509_set *s)
{
    if (!s)
        return;
    mbedtls_x509_crt_free(&s->chain);
    free(s);
}

/* Hashes and keys of EK certificates and their CAs: SHA-1 included (older TPMs' certificates),
 * RSA of at least 2048 bits, any curve. */
static const mbedtls_x509_crt_profile ek_profile = {
    MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA1) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA224) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA512),
    0xFFFFFFF, /* any public key algorithm */
    0xFFFFFFF, /* any curve */
    2048,
};

int crypto_x509_chain_verify(const uint8_t *der, size_t len, const struct crypto_x509_set *cas, char *why,
                             size_t why_len)
{
    mbedtls_x509_crt crt;
    uint32_t flags = 0;
    int ret, r;

    if (why_len)
        why[0] = '\0';
    if (!cas || !cas->n)
        return -EINVAL;
    mbedtls_x509_crt_init(&crt);
    ret = parse_der(&crt, der, len);
    if (ret != 0) {
        snprintf(why, why_len, "the certificate does not parse (mbedTLS -0x%04x)", (unsigned)-ret);
        r = -EBADMSG;
        goto out;
    }
    ret = mbedtls_x509_crt_verify_with_profile(&crt, (mbedtls_x509_crt *)&cas->chain, NULL, &ek_profile, NULL, &flags,
                                               NULL, NULL);
    flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
    if (ret != 0 && flags == 0 && ret != MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        snprintf(why, why_len, "verification failed (mbedTLS -0x%04x)", (unsigned)-ret);
        r = -EKEYREJECTED;
    } else if (flags) {
        char text[512];
        size_t n = 0;
        int k = mbedtls_x509_crt_verify_info(text, sizeof(text), "", flags);
        /* one line per flag: joined with "; " */
        for (int i = 0; i < k && text[i] && n + 3 < why_len; i++) {
            if (text[i] == '\n') {
                if (text[i + 1] && n + 3 < why_len) {
                    why[n++] = ';';
                    why[n++] = ' ';
                }
                continue;
            }
            why[n++] = text[i];
        }
        if (why_len)
            why[n < why_len ? n : why_len - 1] = '\0';
        if (n == 0)
            snprintf(why, why_len, "verification flags 0x%x", flags);
        r = -EKEYREJECTED;
    } else {
        r = 0;
    }
out:
    mbedtls_x509_crt_free(&crt);
    return r;
}
