/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* UUIDv5 of a label in the URL namespace: the LUKS UUID upstream gives every partition it
 * encrypts (UPSTREAM.md §2.3), and what immucore's KcryptUpgrade expects on COS_PERSISTENT.
 * SHA-1 is taken from mbedTLS directly because lib/crypto has no SHA-1 (RFC 4122 requires it
 * here; it is a name hash, not a security use). */
#include <stdio.h>
#include <string.h>

#include <mbedtls/sha1.h>

#include "luks.h"

/* 6ba7b811-9dad-11d1-80b4-00c04fd430c8, RFC 4122 appendix C. */
static const uint8_t namespace_url[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                          0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};

void luks_uuid_v5(const char *name, char out[LUKS_UUID_STR])
{
    mbedtls_sha1_context ctx;
    uint8_t digest[20];
    char hex[33];

    mbedtls_sha1_init(&ctx);
    /* These only fail for a NULL or bad context, which cannot happen here. */
    (void)mbedtls_sha1_starts(&ctx);
    (void)mbedtls_sha1_update(&ctx, namespace_url, sizeof(namespace_url));
    (void)mbedtls_sha1_update(&ctx, (const uint8_t *)name, strlen(name));
    (void)mbedtls_sha1_finish(&ctx, digest);
    mbedtls_sha1_free(&ctx);

    digest[6] = (uint8_t)((digest[6] & 0x0f) | 0x50); /* version 5 */
    digest[8] = (uint8_t)((digest[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    hex_encode(digest, 16, hex);
    snprintf(out, LUKS_UUID_STR, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}
