/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Growable byte buffers for connection input and output. */
#include <stdio.h>
#include <string.h>

#include "net_internal.h"

int nbuf_reserve(struct nbuf *b, size_t n)
{
    if (b->off > 0 && b->cap - b->len < n) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->cap - b->len >= n)
        return 0;
    if (n > NBUF_MAX || b->len > NBUF_MAX - n)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    /* A buffer that input can grow may not take the process down: the caller drops the
     * connection instead. Contents may be secrets: secure_realloc wipes the old block. */
    uint8_t *p = secure_realloc(b->data, b->cap, b->len, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int nbuf_append(struct nbuf *b, const void *p, size_t n)
{
    int r;
    if (n == 0)
        return 0;
    if ((r = nbuf_reserve(b, n)) < 0)
        return r;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    nbuf_mark(b);
    return 0;
}

int nbuf_appendf(struct nbuf *b, const char *fmt, ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return 0;
    if ((r = nbuf_reserve(b, (size_t)n + 1)) < 0)
        return r;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    if (b->len + 1 > b->dirty)
        b->dirty = b->len + 1; /* and its NUL */
    return 0;
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
