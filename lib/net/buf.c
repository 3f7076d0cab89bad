/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Growable byte buffers for connection input and output. */
#include <stdio.h>
#include <string.h>

#include "net_internal.h"

void nbuf_reserve(struct nbuf *b, size_t n)
{
    if (b->off > 0 && b->cap - b->len < n) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->cap - b->len >= n)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        abort();
    b->data = p;
    b->cap = cap;
}

void nbuf_append(struct nbuf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    nbuf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void nbuf_appendf(struct nbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    nbuf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void nbuf_consume(struct nbuf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void nbuf_free(struct nbuf *b)
{
    free(b->data);
    *b = (struct nbuf){0};
}

void nbuf_shrink(struct nbuf *b)
{
    if (nbuf_unread(b) == 0 && b->cap > NBUF_KEEP) {
        secure_wipe(b->data, b->cap);
        nbuf_free(b);
    }
}
