/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* SHA-256 and HMAC-SHA-256 with the x86 SHA extensions (SHA-NI), for the hashes the KMS makes
 * itself per exchange (names, digests, KDFa, HMAC): mbedTLS 3.6 uses SHA instructions on Arm
 * only, and its C rounds cost about 4,000 instructions a block. The block function follows the
 * structure of Intel's reference (sha256rnds2 on ABEF/CDGH halves, the message schedule by
 * sha256msg1/msg2); the rest is FIPS 180-4 padding and RFC 2104. Callers check
 * crypto_sha256_ni_available() and fall back to mbedTLS; tests/unit/test_attest.c compares both
 * on every length up to 300 bytes and on the HMAC and KDFa vectors. */
#include <string.h>

#include "base.h"
#include "crypto_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

bool crypto_sha256_ni_available(void)
{
    static int have = -1;
    if (have < 0) {
        unsigned a, b, c, d;
        bool ssse3_sse41 = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSSE3) && (c & bit_SSE4_1);
        bool sha = false;
        if (__get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            sha = b & (1u << 29); /* CPUID.(EAX=7,ECX=0):EBX.SHA */
        }
        have = ssse3_sse41 && sha;
    }
    return have;
}

__attribute__((target("sha,sse4.1,ssse3"))) static void blocks(uint32_t state[8], const uint8_t *p, size_t n)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i s1 = _mm_loadu_si128((const __m128i *)&state[4]);

    tmp = _mm_shuffle_epi32(tmp, 0xB1);       /* CDAB */
    s1 = _mm_shuffle_epi32(s1, 0x1B);         /* EFGH */
    __m128i s0 = _mm_alignr_epi8(tmp, s1, 8); /* ABEF */
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);      /* CDGH */

    for (; n > 0; n--, p += 64) {
        __m128i abef = s0, cdgh = s1, w[4];
        for (int g = 0; g < 16; g++) {
            __m128i m;
            if (g < 4) {
                w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
            } else {
                /* W[t-16] + s0(W[t-15]) + W[t-7], then + s1(W[t-2]). */
                __m128i x = _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
                w[g & 3] = _mm_sha256msg2_epu32(x, w[(g + 3) & 3]);
            }
            m = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&K[4 * g]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, m);
            m = _mm_shuffle_epi32(m, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, m);
        }
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
    }

    tmp = _mm_shuffle_epi32(s0, 0x1B);   /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);    /* DCHG */
    s0 = _mm_blend_epi16(tmp, s1, 0xF0); /* DCBA */
    s1 = _mm_alignr_epi8(s1, tmp, 8);    /* HGFE */
    _mm_storeu_si128((__m128i *)&state[0], s0);
    _mm_storeu_si128((__m128i *)&state[4], s1);
}
#else
bool crypto_sha256_ni_available(void) { return false; }
static void blocks(uint32_t state[8], const uint8_t *p, size_t n)
{
    (void)state, (void)p, (void)n;
    abort(); /* never called: crypto_sha256_ni_available() is false */
}
#endif

void sha256_ni_init(struct sha256_ni *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof(iv));
    c->total = 0;
    c->fill = 0;
}

void sha256_ni_update(struct sha256_ni *c, const void *in, size_t n)
{
    const uint8_t *p = in;

    if (n == 0) /* in may then be NULL (an empty KDFa context): no memcpy from it */
        return;
    c->total += n;
    if (c->fill) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->buf + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill < 64)
            return;
        blocks(c->h, c->buf, 1);
        c->fill = 0;
    }
    if (n >= 64) {
        blocks(c->h, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(c->buf, p, n);
    c->fill = n;
}

void sha256_ni_final(struct sha256_ni *c, uint8_t out[SHA256_LEN])
{
    uint64_t bits = c->total * 8;

    c->buf[c->fill++] = 0x80;
    if (c->fill > 56) {
        memset(c->buf + c->fill, 0, 64 - c->fill);
        blocks(c->h, c->buf, 1);
        c->fill = 0;
    }
    memset(c->buf + c->fill, 0, 56 - c->fill);
    for (int i = 0; i < 8; i++)
        c->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    blocks(c->h, c->buf, 1);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
    secure_wipe(c, sizeof(*c));
}

void hmac_sha256_ni_init(struct hmac_sha256_ni *h, const void *key, size_t key_len)
{
    uint8_t k[64] = {0}, pad[64];

    if (key_len > 64) {
        sha256_ni_init(&h->inner);
        sha256_ni_update(&h->inner, key, key_len);
        sha256_ni_final(&h->inner, k);
    } else if (key_len) {
        memcpy(k, key, key_len);
    }
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    sha256_ni_init(&h->inner);
    sha256_ni_update(&h->inner, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    sha256_ni_init(&h->outer);
    sha256_ni_update(&h->outer, pad, 64);
    secure_wipe(k, sizeof(k));
    secure_wipe(pad, sizeof(pad));
}

void hmac_sha256_ni_final(struct hmac_sha256_ni *h, uint8_t out[SHA256_LEN])
{
    uint8_t d[SHA256_LEN];

    sha256_ni_final(&h->inner, d);
    sha256_ni_update(&h->outer, d, sizeof(d));
    sha256_ni_final(&h->outer, out);
    secure_wipe(d, sizeof(d));
}
