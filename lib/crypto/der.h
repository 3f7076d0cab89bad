/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* A bounded DER reader: enough ASN.1 to walk certificates. Internal to lib/crypto. */
#ifndef KKMS_DER_H
#define KKMS_DER_H

#include <stddef.h>
#include <stdint.h>

struct der {
    const uint8_t *p, *end;
};

/* Reads one TLV with a single-byte tag; *val points into the input. 0 or -EINVAL. */
int der_next(struct der *d, uint8_t *tag, struct der *val);
/* Reads one TLV and checks its tag; the whole encoding (header included) is returned in *raw when
 * raw is not NULL. */
int der_expect(struct der *d, uint8_t tag, struct der *val, struct der *raw);

#endif
