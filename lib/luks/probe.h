/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libblkid helpers shared inside lib/luks (probe.c). */
#ifndef KKMS_LUKS_PROBE_H
#define KKMS_LUKS_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* What libblkid's superblock probe says about a device; "" / 0 where it says nothing. */
struct luks_probe {
    char type[32];
    char label[256];
    char uuid[64];
    uint64_t fs_size;    /* bytes the filesystem spans, 0 if the type does not tell */
    uint64_t block_size; /* filesystem block size, 0 if unknown */
};

/* Probes the superblocks on fd. 0 (also when nothing was found: type "") or -errno.
 * Logs nothing. */
int luks_probe_fd(int fd, struct luks_probe *out);

/* The GPT (or MBR) entry partno of the disk at disk_path: name (PARTLABEL) and uuid (PARTUUID).
 * -ENOENT when the disk has no such entry. Logs nothing. */
int luks_probe_gpt_entry(const char *disk_path, int partno, char *name, size_t name_size, char *uuid, size_t uuid_size);

#endif
