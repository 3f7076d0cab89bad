/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files of lib/json only: UTF-8 with Go's rules, and the strict validator. */
#ifndef KKMS_KJSON_INTERNAL_H
#define KKMS_KJSON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kjson.h"

#define UTF8_REPLACEMENT 0xFFFDu

/* Length (1-4) of the valid UTF-8 sequence at p, with its rune in *r; 0 when the first byte
 * does not start one. Same rules as Go's utf8.DecodeRune: no overlong forms, no surrogates,
 * nothing above U+10FFFF, so an invalid byte counts as one U+FFFD. */
static inline size_t utf8_decode(const uint8_t *p, size_t n, uint32_t *r)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80) {
        *r = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    /* The second byte's range narrows for E0 (no overlong), ED (no surrogates), F0, F4. */
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if (len == 2)
        *r = (uint32_t)(c & 0x1F) << 6 | (p[1] & 0x3F);
    else if (len == 3)
        *r = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    else
        *r = (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    return len;
}

/* Writes rune r (a valid scalar value) as UTF-8 into out; returns its length. */
static inline size_t utf8_encode(uint32_t r, uint8_t *out)
{
    if (r < 0x80) {
        out[0] = (uint8_t)r;
        return 1;
    }
    if (r < 0x800) {
        out[0] = (uint8_t)(0xC0 | r >> 6);
        out[1] = (uint8_t)(0x80 | (r & 0x3F));
        return 2;
    }
    if (r < 0x10000) {
        out[0] = (uint8_t)(0xE0 | r >> 12);
        out[1] = (uint8_t)(0x80 | (r >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (r & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | r >> 18);
    out[1] = (uint8_t)(0x80 | (r >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (r >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (r & 0x3F));
    return 4;
}

/* Checks that buf is exactly one RFC 8259 value within the limits; counts the tokens jsmn will
 * produce (values and keys) into *ntokens. 0, -EINVAL or -E2BIG, with *err filled. */
int kjson_validate(const char *buf, size_t len, const struct kjson_limits *lim, unsigned *ntokens,
                   struct kjson_error *err);

/* Decodes the body of a validated JSON string (between the quotes) into dst, which may be NULL
 * to only measure; returns the decoded length. At most 3 bytes per source byte. */
size_t kjson_unescape(const char *s, size_t n, uint8_t *dst);

#endif
