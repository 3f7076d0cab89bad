/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>

#include "der.h"

int der_next(struct der *d, uint8_t *tag, struct der *val)
{
    size_t avail = (size_t)(d->end - d->p), len, hdr = 2;

    if (avail < 2)
        return -EINVAL;
    *tag = d->p[0];
    if ((*tag & 0x1f) == 0x1f) /* multi-byte tags never occur in what we read */
        return -EINVAL;
    len = d->p[1];
    if (len & 0x80) {
        size_t nbytes = len & 0x7f;
        if (nbytes == 0 || nbytes > 4 || avail < 2 + nbytes)
            return -EINVAL;
        len = 0;
        for (size_t i = 0; i < nbytes; i++)
            len = len << 8 | d->p[2 + i];
        hdr += nbytes;
    }
    if (len > avail - hdr)
        return -EINVAL;
    val->p = d->p + hdr;
    val->end = val->p + len;
    d->p = val->end;
    return 0;
}

int der_expect(struct der *d, uint8_t tag, struct der *val, struct der *raw)
{
    const uint8_t *start = d->p;
    uint8_t t;
    int r = der_next(d, &t, val);

    if (r < 0)
        return r;
    if (t != tag)
        return -EINVAL;
    if (raw) {
        raw->p = start;
        raw->end = d->p;
    }
    return 0;
}
