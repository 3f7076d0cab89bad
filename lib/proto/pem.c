/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The EK PEM of the G1 token (docs/protocol-g1.md §3.2): a CERTIFICATE or a PUBLIC KEY block. */
#include <stdio.h>
#include <string.h>

#include "proto.h"

#define PEM_MAX (32u << 10)

/* Finds "-----BEGIN <type>-----" ... "-----END <type>-----" and decodes the base64 between,
 * ignoring line breaks and blanks. -EBADMSG when there is no such block. */
static int pem_block(const char *pem, const char *type, uint8_t **der, size_t *der_len)
{
    char begin[64], end[64];
    const char *b, *e;
    char *body;
    size_t n = 0;
    int r;

    snprintf(begin, sizeof(begin), "-----BEGIN %s-----", type);
    snprintf(end, sizeof(end), "-----END %s-----", type);
    b = strstr(pem, begin);
    if (!b)
        return -EBADMSG;
    b += strlen(begin);
    e = strstr(b, end);
    if (!e || (size_t)(e - b) > PEM_MAX)
        return -EBADMSG;
    body = xmalloc((size_t)(e - b) + 1);
    for (const char *p = b; p < e; p++)
        if (*p != '\n' && *p != '\r' && *p != ' ' && *p != '\t')
            body[n++] = *p;
    r = base64_decode(body, n, BASE64_STD, der, der_len);
    free(body);
    return r < 0 ? -EBADMSG : 0;
}

int proto_ek_pem_public(const char *pem, struct rsa_pub *out)
{
    uint8_t *der = NULL;
    size_t len = 0;
    int r;

    if (strlen(pem) > PEM_MAX)
        return -EBADMSG;
    if (pem_block(pem, "CERTIFICATE", &der, &len) == 0) {
        r = crypto_x509_rsa_pub(der, len, out);
        r = r == -EINVAL ? -EBADMSG : r;
    } else if (pem_block(pem, "PUBLIC KEY", &der, &len) == 0) {
        r = crypto_spki_rsa_pub(der, len, out);
        r = r == -EINVAL ? -EBADMSG : r;
    } else {
        r = -EBADMSG;
    }
    free(der);
    return r;
}

int proto_ek_pem_cert(const char *pem, uint8_t **der, size_t *der_len)
{
    uint8_t *other = NULL;
    size_t other_len = 0;

    *der = NULL;
    *der_len = 0;
    if (strlen(pem) > PEM_MAX)
        return -EBADMSG;
    if (pem_block(pem, "CERTIFICATE", der, der_len) == 0)
        return 0;
    if (pem_block(pem, "PUBLIC KEY", &other, &other_len) == 0) {
        free(other);
        return -ENOENT;
    }
    return -EBADMSG;
}
