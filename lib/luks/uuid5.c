/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* UUIDv5 of a label in the URL namespace: the LUKS UUID upstream gives every partition it
 * encrypts (docs/upstream.md §3.2), and what immucore's KcryptUpgrade expects on COS_PERSISTENT.
 * SHA-1 because RFC 4122 requires it here; it is a name hash, not a security use. */
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "luks.h"

/* 6ba7b811-9dad-11d1-80b4-00c04fd430c8, RFC 4122 appendix C. */
static const uint8_t namespace_url[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                          0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};

void luks_uuid_v5(const char *name, char out[LUKS_UUID_STR])
{
    size_t len = strlen(name);
    uint8_t *in = xmalloc(sizeof(namespace_url) + len), digest[20];
    char hex[33];

    memcpy(in, namespace_url, sizeof(namespace_url));
    memcpy(in + sizeof(namespace_url), name, len);
    (void)crypto_hash(CRYPTO_SHA1, in, sizeof(namespace_url) + len, digest); /* SHA-1 always exists */
    free(in);

    digest[6] = (uint8_t)((digest[6] & 0x0f) | 0x50); /* version 5 */
    digest[8] = (uint8_t)((digest[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    hex_encode(digest, 16, hex);
    snprintf(out, LUKS_UUID_STR, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}
