/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Shared by lib/crypto's files (mbedTLS types stay inside lib/crypto). */
#ifndef KKMS_CRYPTO_INTERNAL_H
#define KKMS_CRYPTO_INTERNAL_H

#include <mbedtls/md.h>

#include "crypto.h"

/* mbedTLS's name for a hash; MBEDTLS_MD_NONE for none we know (sym.c). */
mbedtls_md_type_t crypto_md_type(enum crypto_hash h);

/* SHA-256 and HMAC-SHA-256 with the x86 SHA instructions (sha256_ni.c); only when
 * crypto_sha256_ni_available(). Contexts are wiped by the final calls. */
bool crypto_sha256_ni_available(void);
struct sha256_ni {
    uint32_t h[8];
    uint64_t total;
    uint8_t buf[64];
    size_t fill;
};
void sha256_ni_init(struct sha256_ni *c);
void sha256_ni_update(struct sha256_ni *c, const void *in, size_t n);
void sha256_ni_final(struct sha256_ni *c, uint8_t out[SHA256_LEN]);
struct hmac_sha256_ni {
    struct sha256_ni inner, outer;
};
void hmac_sha256_ni_init(struct hmac_sha256_ni *h, const void *key, size_t key_len);
static inline void hmac_sha256_ni_update(struct hmac_sha256_ni *h, const void *in, size_t n)
{
    sha256_ni_update(&h->inner, in, n);
}
void hmac_sha256_ni_final(struct hmac_sha256_ni *h, uint8_t out[SHA256_LEN]);

#endif
