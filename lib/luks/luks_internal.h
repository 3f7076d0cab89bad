/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Shared inside lib/luks only (and by its tests and fuzz harness). */
#ifndef KKMS_LUKS_INTERNAL_H
#define KKMS_LUKS_INTERNAL_H

#include "luks.h"

/* LUKS2 binary header layout (cryptsetup docs/on-disk-format-luks2.pdf; docs/luks.md §4). */
#define LUKS_BIN_HDR_SIZE 4096
#define LUKS_MIN_HDR_SIZE 0x4000u   /* 16 KiB */
#define LUKS_MAX_HDR_SIZE 0x400000u /* 4 MiB */

/* Reads exactly n bytes at off into buf: 0, or negative when they are not all there. */
typedef int (*luks_read_fn)(void *ctx, void *buf, size_t n, uint64_t off);

/* Parses one header of len bytes at buf (a LUKS1 phdr, or a LUKS2 primary/secondary header with
 * its JSON area: len >= hdr_size is needed to check the LUKS2 checksum). at_offset is where buf
 * sits on the device (0 for a primary). 0, -EINVAL (not LUKS here), -EBADMSG (bad checksum),
 * -EAGAIN (LUKS2 header whose hdr_size bytes are needed: call again with that many). */
int luks_header_parse(const uint8_t *buf, size_t len, uint64_t at_offset, struct luks_header *out);

/* Primary, then the LUKS2 secondaries, through rd; picks the valid one with the higher seqid. */
int luks_header_probe(luks_read_fn rd, void *ctx, struct luks_header *out);

/* libcryptsetup messages go to our log at debug level; the last error is kept so a failure can be
 * reported in one line. luks_cs_begin() installs the callback and forgets older messages. */
struct crypt_device;
void luks_cs_begin(void);
/* The last libcryptsetup error, else strerror(-r); borrowed until the next call. */
const char *luks_cs_reason(int r);

/* Sets the keyslot PBKDF of kind on cd (see enum luks_pbkdf). */
int luks_set_pbkdf(struct crypt_device *cd, enum luks_pbkdf kind);
/* Checks label (non-empty, shorter than the header field) and logs why not, naming device. */
int luks_check_label(const char *device, const char *label);
/* 0 if path exists (file or block device); else logs "<path>: no such device or file". */
int luks_check_exists(const char *path);

/* libblkid: the superblock TYPE of path ("" if none) and, when the filesystem says, its size in
 * bytes (0 if unknown) and block size. 0 or -errno. */
int luks_probe_fs(const char *path, char *type, size_t type_size, uint64_t *fs_size, uint64_t *block_size);
/* Erases every filesystem/RAID signature libblkid finds on path, as cryptsetup luksFormat does,
 * so no stale superblock makes the new LUKS header ambiguous. 0 or -errno (logged). */
int luks_wipe_signatures(const char *path);

/* <root>/<path> into a malloc'd string (root NULL or "" means "/"). */
char *luks_root_path(const char *root, const char *path);

#endif
