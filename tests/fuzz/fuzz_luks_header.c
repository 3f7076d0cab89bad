/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the LUKS binary header reader that luks_scan runs on every block device (label and
 * UUID from the primary or a secondary header). The input is the start of a device: the reader
 * sees it through the same callback it uses for a file descriptor, reads past its end fail. */
#include <stdint.h>
#include <string.h>

#include "luks_internal.h"

struct mem {
    const uint8_t *p;
    size_t n;
};

static int mem_read(void *ctx, void *buf, size_t n, uint64_t off)
{
    const struct mem *m = ctx;
    if (off > m->n || n > m->n - off)
        return -EIO;
    memcpy(buf, m->p + off, n);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mem m = {data, size};
    struct luks_header h;

    if (luks_header_probe(mem_read, &m, &h) == 0) {
        /* The strings must be terminated inside their fields. */
        if (strnlen(h.label, sizeof(h.label)) == sizeof(h.label) || strnlen(h.uuid, sizeof(h.uuid)) == sizeof(h.uuid))
            __builtin_trap();
        if (h.version == 2 && (h.hdr_size < LUKS_MIN_HDR_SIZE || h.hdr_size > LUKS_MAX_HDR_SIZE))
            __builtin_trap();
    }
    /* Every header kind parsed straight from the input, as a primary and as a secondary. */
    (void)luks_header_parse(data, size, 0, &h);
    (void)luks_header_parse(data, size, LUKS_MIN_HDR_SIZE, &h);
    return 0;
}
