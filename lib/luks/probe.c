/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libblkid: what a device holds (superblock type, label, size) and its GPT entry. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blkid.h>

#include "luks_internal.h"
#include "probe.h"

static void blkid_free_probep(blkid_probe *pr)
{
    if (*pr)
        blkid_free_probe(*pr);
}
#define _cleanup_probe_ _cleanup_(blkid_free_probep)

static void copy_value(blkid_probe pr, const char *name, char *dst, size_t size)
{
    const char *v = NULL;

    dst[0] = '\0';
    if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0 && v)
        snprintf(dst, size, "%s", v);
}

static uint64_t number_value(blkid_probe pr, const char *name)
{
    const char *v = NULL;
    char *end;
    unsigned long long n;

    if (blkid_probe_lookup_value(pr, name, &v, NULL) != 0 || !v)
        return 0;
    errno = 0;
    n = strtoull(v, &end, 10);
    return errno || *end ? 0 : (uint64_t)n;
}

/* Probes the superblocks of an open fd; 0 with *pr ready, 1 when nothing was found. */
static int probe_superblocks(int fd, blkid_probe *out)
{
    blkid_probe pr = blkid_new_probe();

    if (!pr)
        return -ENOMEM;
    if (blkid_probe_set_device(pr, fd, 0, 0) < 0) {
        blkid_free_probe(pr);
        return -EIO;
    }
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr,
                                      BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_FSINFO);
    blkid_probe_enable_partitions(pr, 0);
    *out = pr;
    switch (blkid_do_safeprobe(pr)) {
    case 0: return 0;
    case 1: return 1;
    case -2: /* two signatures that disagree: report nothing rather than guess */ return 1;
    default: return -EIO;
    }
}

int luks_probe_fd(int fd, struct luks_probe *out)
{
    _cleanup_probe_ blkid_probe pr = NULL;
    uint64_t last, bs;
    int r;

    memset(out, 0, sizeof(*out));
    r = probe_superblocks(fd, &pr);
    if (r != 0)
        return r < 0 ? r : 0;
    copy_value(pr, "TYPE", out->type, sizeof(out->type));
    copy_value(pr, "LABEL", out->label, sizeof(out->label));
    copy_value(pr, "UUID", out->uuid, sizeof(out->uuid));
    /* FSLASTBLOCK × FSBLOCKSIZE: libblkid 2.41's FSSIZE for ext4 drops the high 32 bits of the
     * block count. Only ext*, xfs and btrfs report a size; 0 means unknown. */
    last = number_value(pr, "FSLASTBLOCK");
    bs = number_value(pr, "FSBLOCKSIZE");
    out->block_size = bs;
    out->fs_size = last && bs && last <= UINT64_MAX / bs ? last * bs : number_value(pr, "FSSIZE");
    return 0;
}

int luks_probe_fs(const char *path, char *type, size_t type_size, uint64_t *fs_size, uint64_t *block_size)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct luks_probe p;
    int r;

    if (fd < 0)
        return log_error_errno(-errno, "%s: %m", path);
    r = luks_probe_fd(fd, &p);
    if (r < 0)
        return log_error_errno(r, "%s: libblkid cannot read the device", path);
    snprintf(type, type_size, "%s", p.type);
    *fs_size = p.fs_size;
    *block_size = p.block_size;
    return 0;
}

int luks_probe_gpt_entry(const char *disk_path, int partno, char *name, size_t name_size, char *uuid, size_t uuid_size)
{
    _cleanup_probe_ blkid_probe pr = NULL;
    blkid_partlist ls;
    int n;

    name[0] = uuid[0] = '\0';
    pr = blkid_new_probe_from_filename(disk_path);
    if (!pr)
        return -errno ? -errno : -EIO;
    blkid_probe_enable_superblocks(pr, 0);
    blkid_probe_enable_partitions(pr, 1);
    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
    ls = blkid_probe_get_partitions(pr);
    if (!ls)
        return -ENOENT;
    n = blkid_partlist_numof_partitions(ls);
    for (int i = 0; i < n; i++) {
        blkid_partition par = blkid_partlist_get_partition(ls, i);
        const char *v;

        if (!par || blkid_partition_get_partno(par) != partno)
            continue;
        if ((v = blkid_partition_get_name(par)))
            snprintf(name, name_size, "%s", v);
        if ((v = blkid_partition_get_uuid(par)))
            snprintf(uuid, uuid_size, "%s", v);
        return 0;
    }
    return -ENOENT;
}

int luks_wipe_signatures(const char *path)
{
    _cleanup_probe_ blkid_probe pr = NULL;
    _cleanup_close_ int fd = -1;
    struct stat st;
    int r, wiped = 0;

    if (stat(path, &st) < 0)
        return log_error_errno(-errno, "%s: %m", path);
    /* O_EXCL on a block device fails with EBUSY while it is mounted or mapped. */
    fd = open(path, O_RDWR | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
    if (fd < 0)
        return log_error_errno(-errno, "%s: cannot open for writing: %s", path,
                               errno == EBUSY ? "in use (mounted or mapped)" : strerror(errno));
    pr = blkid_new_probe();
    if (!pr || blkid_probe_set_device(pr, fd, 0, 0) < 0)
        return log_error_errno(-EIO, "%s: libblkid cannot read the device", path);
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
    blkid_probe_enable_partitions(pr, 1);
    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
    while ((r = blkid_do_probe(pr)) == 0) {
        if (blkid_do_wipe(pr, 0) < 0)
            return log_error_errno(-EIO, "%s: cannot erase an old signature", path);
        wiped++;
    }
    if (r < 0)
        return log_error_errno(-EIO, "%s: libblkid cannot read the device", path);
    if (wiped)
        log_debug("%s: erased %d old signature(s)", path, wiped);
    if (fsync(fd) < 0 && errno != EINVAL)
        return log_error_errno(-errno, "%s: fsync: %m", path);
    return 0;
}
