/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The LUKS binary header, read without libcryptsetup so partitions are found by label in an
 * initramfs without udev or blkid (docs/luks.md §4). Every field is bounded by the buffer it
 * came in; nothing here trusts a length read from the disk beyond LUKS_MAX_HDR_SIZE. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "luks_internal.h"

/* Offsets in the binary header (struct luks2_hdr_disk, big-endian integers). */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 6,
    OFF_HDR_SIZE = 8,
    OFF_SEQID = 16,
    OFF_LABEL = 24,
    OFF_CSUM_ALG = 72,
    OFF_UUID = 168,
    OFF_HDR_OFFSET = 256,
    OFF_CSUM = 448,
    CSUM_LEN = 64,
    LUKS1_UUID = 168, /* LUKS1 phdr: uuid[40] at the same place */
    LUKS1_PHDR_LEN = 592,
};

static const uint8_t magic_primary[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
static const uint8_t magic_secondary[6] = {'S', 'K', 'U', 'L', 0xba, 0xbe};

/* Where a LUKS2 secondary header may sit: one per allowed metadata size (libcryptsetup
 * LUKS2_HDR2_OFFSETS), tried in order when the primary is unreadable. */
static const uint32_t secondary_offsets[] = {0x4000,  0x8000,   0x10000,  0x20000, 0x40000,
                                             0x80000, 0x100000, 0x200000, 0x400000};

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Copies a fixed-size, maybe unterminated, field; stops at the first NUL. */
static void copy_field(char *dst, size_t dst_size, const uint8_t *src, size_t src_len)
{
    size_t n = 0;
    while (n < src_len && n + 1 < dst_size && src[n])
        n++;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool checksum_ok(const uint8_t *buf, uint64_t hdr_size)
{
    uint8_t *copy, digest[SHA256_LEN];
    char alg[33];
    bool ok;

    copy_field(alg, sizeof(alg), buf + OFF_CSUM_ALG, 32);
    /* LUKS2 headers are written with sha256 by every libcryptsetup so far; another algorithm
     * cannot be checked here, so such a header is taken as it is. */
    if (strcmp(alg, "sha256") != 0)
        return true;
    copy = xmalloc(hdr_size);
    memcpy(copy, buf, hdr_size);
    memset(copy + OFF_CSUM, 0, CSUM_LEN);
    crypto_sha256(copy, hdr_size, digest);
    free(copy);
    ok = memcmp(digest, buf + OFF_CSUM, SHA256_LEN) == 0;
    return ok;
}

int luks_header_parse(const uint8_t *buf, size_t len, uint64_t at_offset, struct luks_header *out)
{
    bool secondary = at_offset != 0;
    uint64_t hdr_size;
    int version;

    if (len < 8)
        return -EINVAL;
    if (memcmp(buf + OFF_MAGIC, secondary ? magic_secondary : magic_primary, 6) != 0)
        return -EINVAL;
    version = buf[OFF_VERSION] << 8 | buf[OFF_VERSION + 1];

    if (version == 1 && !secondary) {
        if (len < LUKS1_PHDR_LEN)
            return -EINVAL;
        memset(out, 0, sizeof(*out));
        out->version = 1;
        copy_field(out->uuid, sizeof(out->uuid), buf + LUKS1_UUID, 40);
        return 0;
    }
    if (version != 2 || len < LUKS_BIN_HDR_SIZE)
        return -EINVAL;

    hdr_size = be64(buf + OFF_HDR_SIZE);
    if (hdr_size < LUKS_MIN_HDR_SIZE || hdr_size > LUKS_MAX_HDR_SIZE || hdr_size % 4096)
        return -EINVAL;
    if (be64(buf + OFF_HDR_OFFSET) != at_offset || (secondary && at_offset != hdr_size))
        return -EINVAL;
    if (len < hdr_size)
        return -EAGAIN;
    if (!checksum_ok(buf, hdr_size))
        return -EBADMSG;

    memset(out, 0, sizeof(*out));
    out->version = 2;
    out->from_secondary = secondary;
    out->hdr_size = hdr_size;
    out->seqid = be64(buf + OFF_SEQID);
    copy_field(out->label, sizeof(out->label), buf + OFF_LABEL, LUKS_LABEL_MAX);
    copy_field(out->uuid, sizeof(out->uuid), buf + OFF_UUID, 40);
    return 0;
}

/* Reads the header at off: its first 4 KiB, then all of hdr_size when LUKS2 asks for it. */
static int read_one(luks_read_fn rd, void *ctx, uint64_t off, struct luks_header *out)
{
    uint8_t first[LUKS_BIN_HDR_SIZE];
    _cleanup_free_ uint8_t *whole = NULL;
    uint64_t hdr_size;
    int r;

    if (rd(ctx, first, sizeof(first), off) < 0)
        return -EINVAL;
    r = luks_header_parse(first, sizeof(first), off, out);
    if (r != -EAGAIN)
        return r;
    hdr_size = be64(first + OFF_HDR_SIZE); /* bounded by luks_header_parse */
    whole = xmalloc(hdr_size);
    if (rd(ctx, whole, hdr_size, off) < 0)
        return -EINVAL;
    r = luks_header_parse(whole, hdr_size, off, out);
    /* The first 4 KiB were read twice; a header that changed in between is not trusted. */
    if (r == 0 && memcmp(whole, first, sizeof(first)) != 0)
        return -EBADMSG;
    return r;
}

int luks_header_probe(luks_read_fn rd, void *ctx, struct luks_header *out)
{
    struct luks_header primary, secondary;
    int rp, rs = -EINVAL;

    rp = read_one(rd, ctx, 0, &primary);
    if (rp == 0 && primary.version == 1) {
        *out = primary;
        return 0;
    }
    if (rp == 0) {
        rs = read_one(rd, ctx, primary.hdr_size, &secondary);
    } else {
        size_t n = sizeof(secondary_offsets) / sizeof(*secondary_offsets);
        for (size_t i = 0; rs < 0 && i < n; i++)
            rs = read_one(rd, ctx, secondary_offsets[i], &secondary);
    }
    /* Like libcryptsetup: of two valid headers the one written last (higher seqid) counts. */
    if (rp == 0 && (rs < 0 || primary.seqid >= secondary.seqid))
        *out = primary;
    else if (rs == 0)
        *out = secondary;
    else
        return -EINVAL;
    return 0;
}

static int fd_read_at(void *ctx, void *buf, size_t n, uint64_t off)
{
    int fd = *(int *)ctx;
    size_t done = 0;

    while (done < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        done += (size_t)r;
    }
    return 0;
}

int luks_header_read_fd(int fd, struct luks_header *out) { return luks_header_probe(fd_read_at, &fd, out); }

int luks_header_read(const char *path, struct luks_header *out)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0)
        return -errno;
    return luks_header_read_fd(fd, out);
}
