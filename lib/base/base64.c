/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Base64 as Go's encoding/base64 writes it: StdEncoding (padded) for []byte in JSON and in the
 * G1 token, RawURLEncoding (no padding) for the escrowed ciphertext (docs/protocol-g1.md §4, §6.1). */
#include <string.h>

#include "base.h"

static const char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t base64_encoded_len(size_t n, enum base64_variant v)
{
    return v == BASE64_URL_RAW ? (n * 4 + 2) / 3 : (n + 2) / 3 * 4;
}

char *base64_encode(const uint8_t *in, size_t n, enum base64_variant v, size_t *out_len)
{
    const char *a = v == BASE64_URL_RAW ? url_alphabet : std_alphabet;
    size_t len = base64_encoded_len(n, v), o = 0, i = 0;
    char *out = xmalloc(len + 1);

    for (; i + 3 <= n; i += 3) {
        uint32_t x = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[x >> 18];
        out[o++] = a[(x >> 12) & 63];
        out[o++] = a[(x >> 6) & 63];
        out[o++] = a[x & 63];
    }
    if (n - i == 1) {
        uint32_t x = (uint32_t)in[i] << 16;
        out[o++] = a[x >> 18];
        out[o++] = a[(x >> 12) & 63];
        if (v == BASE64_STD) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t x = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = a[x >> 18];
        out[o++] = a[(x >> 12) & 63];
        out[o++] = a[(x >> 6) & 63];
        if (v == BASE64_STD)
            out[o++] = '=';
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

/* Character values (0xff: not in the alphabet) of each alphabet ([0] standard, [1] URL), for
 * decoding four characters per step; made from the alphabets before main() runs. */
static uint8_t char_values[2][256];

__attribute__((constructor)) static void make_char_values(void)
{
    memset(char_values, 0xff, sizeof(char_values));
    for (unsigned i = 0; i < 64; i++) {
        char_values[0][(uint8_t)std_alphabet[i]] = (uint8_t)i;
        char_values[1][(uint8_t)url_alphabet[i]] = (uint8_t)i;
    }
}

int base64_decode(const char *in, size_t n, enum base64_variant v, uint8_t **out, size_t *out_len)
{
    size_t o = 0, pad = 0;
    uint8_t *buf;
    uint32_t acc = 0;
    int bits = 0;

    if (v == BASE64_STD) {
        /* Go's StdEncoding: the length is a multiple of 4 and padding only at the end. */
        if (n % 4)
            return -EINVAL;
        while (pad < 2 && n > 0 && in[n - 1 - pad] == '=')
            pad++;
    } else if (n % 4 == 1) {
        return -EINVAL;
    }
    buf = xmalloc(n / 4 * 3 + 3);
    const uint8_t *t = char_values[v == BASE64_URL_RAW];
    const uint8_t *p = (const uint8_t *)in;
    size_t i = 0;
    /* Whole quanta first: four characters, three bytes, one check. */
    for (; i + 4 <= n - pad; i += 4) {
        uint8_t a = t[p[i]], b = t[p[i + 1]], c = t[p[i + 2]], d = t[p[i + 3]];
        if ((a | b | c | d) & 0x80) {
            secure_wipe(buf, n / 4 * 3 + 3);
            free(buf);
            return -EINVAL;
        }
        uint32_t x = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        buf[o++] = (uint8_t)(x >> 16);
        buf[o++] = (uint8_t)(x >> 8);
        buf[o++] = (uint8_t)x;
    }
    for (; i < n - pad; i++) {
        int d = t[p[i]] & 0x80 ? -1 : t[p[i]];
        if (d < 0) {
            secure_wipe(buf, n / 4 * 3 + 3);
            free(buf);
            return -EINVAL;
        }
        acc = acc << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero (Go's strict decoding of the last quantum). */
    if (bits >= 6 || (acc & ((1u << bits) - 1))) {
        secure_wipe(buf, n / 4 * 3 + 3);
        free(buf);
        return -EINVAL;
    }
    *out = buf;
    *out_len = o;
    return 0;
}

struct secret *base64_encode_secret(const void *in, size_t n, enum base64_variant v)
{
    size_t len;
    char *text = base64_encode(in, n, v, &len);
    return secret_take(text, len);
}
