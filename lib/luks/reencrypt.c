/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Encrypting a partition in place, keeping its filesystem (--keep-data), with libcryptsetup's
 * offline LUKS2 reencryption. The steps are those of `cryptsetup reencrypt --encrypt
 * --reduce-device-size 32M` (cryptsetup src/utils_reencrypt.c encrypt_luks2_init): format a
 * header in a detached file whose data segment starts 16 MiB into the device, initialise
 * reencryption there with the first 16 MiB of data to be moved to the end, copy the header onto
 * the device, then run. Userspace AES-XTS does the work, so no device-mapper is needed. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcryptsetup.h>

#include "luks_internal.h"

#define MIB (1024.0 * 1024.0)
#define DATA_SHIFT_BYTES (LUKS_REDUCE_BYTES / 2)

static void crypt_freep(struct crypt_device **cd) { crypt_free(*cd); }
#define _cleanup_crypt_ _cleanup_(crypt_freep)

struct progress_ctx {
    luks_progress_fn fn;
    void *ctx;
    bool stopped;
};

static int on_progress(uint64_t size, uint64_t offset, void *usrptr)
{
    struct progress_ctx *p = usrptr;

    if (!p->fn || p->fn(offset, size, p->ctx) == 0)
        return 0;
    p->stopped = true;
    return 1;
}

/* A header file that never reaches a disk: a memfd, reached by libcryptsetup through /proc.
 * Holds the wrapped volume key for a moment, so it is not left in /tmp. */
static int header_memfd(char path[64])
{
    int fd = memfd_create("kairos-kms-luks-header", MFD_CLOEXEC);

    if (fd < 0)
        return -errno;
    /* libcryptsetup wants a header file of at least one 4 KiB block to exist. */
    if (ftruncate(fd, 4096) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    if (access(path, R_OK | W_OK) < 0) { /* no /proc mounted */
        close(fd);
        return -ENOENT;
    }
    return fd;
}

static int device_size(int fd, uint64_t *size)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
        return 0;
    }
    if (ioctl(fd, BLKGETSIZE64, size) < 0)
        return -errno;
    return 0;
}

/* The precondition of luks.h: not in use, not LUKS yet, a filesystem that leaves room. */
static int check_precondition(const char *device, uint32_t *sector_size)
{
    _cleanup_close_ int fd = -1;
    struct luks_header hdr;
    char type[32];
    uint64_t size, fs_size, block_size, room;
    struct stat st;
    int r;

    if (stat(device, &st) < 0)
        return log_error_errno(-errno, "%s: %m", device);
    fd = open(device, O_RDONLY | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
    if (fd < 0)
        return log_error_errno(-errno, "%s: cannot open: %s", device,
                               errno == EBUSY ? "in use (mounted or mapped); unmount it first" : strerror(errno));
    r = device_size(fd, &size);
    if (r < 0)
        return log_error_errno(r, "%s: cannot read the size: %m", device);
    if (luks_header_read_fd(fd, &hdr) == 0)
        return log_error_errno(-EEXIST, "%s: already a LUKS%d device (label '%s')", device, hdr.version, hdr.label);
    r = luks_probe_fs(device, type, sizeof(type), &fs_size, &block_size);
    if (r < 0)
        return r;
    if (!type[0])
        return log_error_errno(-EINVAL, "%s: no filesystem found to keep; format it instead", device);
    if (!fs_size)
        return log_error_errno(-EOPNOTSUPP,
                               "%s: cannot tell how much of the device the %s filesystem uses "
                               "(in-place encryption knows ext2/3/4, xfs and btrfs)",
                               device, type);
    room = size > LUKS_REDUCE_BYTES ? size - LUKS_REDUCE_BYTES : 0;
    if (fs_size > room)
        return log_error_errno(-ENOSPC,
                               "%s: the %s filesystem fills %.1f of %.1f MiB; shrink it to at most "
                               "%.1f MiB (resize2fs) to leave 32 MiB for the LUKS2 header",
                               device, type, fs_size / MIB, size / MIB, room / MIB);
    /* The encryption sector may not be larger than a filesystem block (ext4 images made small
     * use 1 KiB blocks), and 4096 needs a data area of whole 4 KiB sectors. */
    *sector_size = block_size >= 4096 && size % 4096 == 0 ? 4096 : 512;
    return 0;
}

/* Writes a new header for device into the detached header file hdr_path and initialises the
 * reencryption there. Returns the keyslot of pass. */
static int init_detached(const char *device, const char *hdr_path, const char *label, const struct secret *pass,
                         enum luks_pbkdf kind, struct crypt_params_reencrypt *params)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    char uuid[LUKS_UUID_STR];
    struct crypt_params_luks2 luks2 = {
        .label = label,
        .data_device = device,
        .sector_size = params->luks2->sector_size,
    };
    int r, slot;

    luks_uuid_v5(label, uuid);
    r = crypt_init(&cd, hdr_path);
    if (r < 0)
        return log_error_errno(r, "%s: cannot create the temporary header: %s", device, luks_cs_reason(r));
    r = crypt_set_data_offset(cd, DATA_SHIFT_BYTES / 512);
    if (r >= 0)
        r = luks_set_pbkdf(cd, kind);
    if (r >= 0)
        r = crypt_format(cd, CRYPT_LUKS2, LUKS_CIPHER, LUKS_CIPHER_MODE, uuid, NULL, LUKS_VOLUME_KEY_BYTES, &luks2);
    if (r >= 0)
        r = crypt_persistent_flags_set(cd, CRYPT_FLAGS_ACTIVATION, CRYPT_ACTIVATE_ALLOW_DISCARDS);
    if (r < 0)
        return log_error_errno(r, "%s: cannot write a LUKS2 header: %s", device, luks_cs_reason(r));
    slot = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, NULL, 0, (const char *)pass->data, pass->len);
    if (slot < 0)
        return log_error_errno(slot, "%s: cannot add the passphrase keyslot: %s", device, luks_cs_reason(slot));
    r = crypt_reencrypt_init_by_passphrase(cd, NULL, (const char *)pass->data, pass->len, CRYPT_ANY_SLOT, slot,
                                           LUKS_CIPHER, LUKS_CIPHER_MODE, params);
    if (r < 0)
        return log_error_errno(r, "%s: cannot prepare the encryption: %s", device, luks_cs_reason(r));
    return slot;
}

static int run(struct crypt_device *cd, const char *device, luks_progress_fn progress, void *ctx)
{
    struct progress_ctx p = {.fn = progress, .ctx = ctx};
    int64_t start = now_ms();
    int r;

    r = crypt_reencrypt_run(cd, on_progress, &p);
    if (p.stopped)
        return log_error_errno(-EINTR, "%s: encryption stopped; run it again to resume", device);
    if (r < 0)
        return log_error_errno(r, "%s: encryption failed: %s", device, luks_cs_reason(r));
    log_debug("%s: encrypted in place in %" PRId64 " ms", device, now_ms() - start);
    return 0;
}

/* An encryption interrupted earlier (power loss, or progress said stop): finish it. */
static int resume(const char *device, const struct secret *pass, luks_progress_fn progress, void *ctx)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    struct crypt_params_reencrypt params = {0};
    crypt_reencrypt_info ri;
    int r;

    r = crypt_init(&cd, device);
    if (r >= 0)
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
    if (r < 0)
        return log_error_errno(r, "%s: cannot read the LUKS2 header: %s", device, luks_cs_reason(r));
    ri = crypt_reencrypt_status(cd, &params);
    if (ri == CRYPT_REENCRYPT_NONE)
        return log_error_errno(-EEXIST, "%s: already a LUKS2 device", device);
    if (params.mode != CRYPT_REENCRYPT_ENCRYPT)
        return log_error_errno(-EBUSY, "%s: another kind of reencryption is in progress", device);
    if (ri == CRYPT_REENCRYPT_CRASH) {
        struct crypt_params_reencrypt rec = {.flags = CRYPT_REENCRYPT_RECOVERY};
        log_info("%s: recovering an interrupted encryption", device);
        r = crypt_reencrypt_init_by_passphrase(cd, NULL, (const char *)pass->data, pass->len, CRYPT_ANY_SLOT,
                                               CRYPT_ANY_SLOT, NULL, NULL, &rec);
        if (r < 0)
            return log_error_errno(r, "%s: cannot recover the interrupted encryption: %s", device,
                                   r == -EPERM ? "wrong passphrase" : luks_cs_reason(r));
    } else if (ri != CRYPT_REENCRYPT_CLEAN) {
        return log_error_errno(-EINVAL, "%s: unusable reencryption state", device);
    }
    params = (struct crypt_params_reencrypt){.flags = CRYPT_REENCRYPT_RESUME_ONLY};
    r = crypt_reencrypt_init_by_passphrase(cd, NULL, (const char *)pass->data, pass->len, CRYPT_ANY_SLOT,
                                           CRYPT_ANY_SLOT, NULL, NULL, &params);
    if (r < 0)
        return log_error_errno(r, "%s: cannot resume the encryption: %s", device,
                               r == -EPERM ? "wrong passphrase" : luks_cs_reason(r));
    log_info("%s: resuming an interrupted encryption", device);
    return run(cd, device, progress, ctx);
}

int luks_reencrypt_pending(const char *device)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    struct crypt_params_reencrypt params = {0};
    struct luks_header hdr;
    int r;

    if (luks_header_read(device, &hdr) < 0 || hdr.version != 2)
        return 0;
    luks_cs_begin();
    r = crypt_init(&cd, device);
    if (r >= 0)
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
    if (r < 0)
        return log_error_errno(r, "%s: cannot read the LUKS2 header: %s", device, luks_cs_reason(r));
    return crypt_reencrypt_status(cd, &params) != CRYPT_REENCRYPT_NONE;
}

int luks_encrypt_in_place(const char *device, const char *label, const struct secret *pass, enum luks_pbkdf kind,
                          luks_progress_fn progress, void *ctx)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    _cleanup_close_ int hdr_fd = -1;
    char hdr_path[64];
    struct luks_header hdr;
    struct crypt_params_luks2 luks2 = {0};
    struct crypt_params_reencrypt params = {
        .mode = CRYPT_REENCRYPT_ENCRYPT,
        .direction = CRYPT_REENCRYPT_BACKWARD, /* data moves towards the end */
        .resilience = "datashift",
        .hash = "sha256",
        .data_shift = DATA_SHIFT_BYTES / 512,
        .luks2 = &luks2,
        .flags = CRYPT_REENCRYPT_INITIALIZE_ONLY | CRYPT_REENCRYPT_MOVE_FIRST_SEGMENT,
    };
    int r, slot;

    r = luks_check_exists(device);
    if (r < 0)
        return r;
    if (!pass || pass->len == 0)
        return log_error_errno(-EINVAL, "%s: refusing an empty passphrase", device);
    luks_cs_begin();
    /* Our own header from an interrupted run (same label): finish that run. */
    if (label && luks_header_read(device, &hdr) == 0 && hdr.version == 2 && !strcmp(hdr.label, label))
        return resume(device, pass, progress, ctx);
    r = luks_check_label(device, label);
    if (r < 0)
        return r;
    r = check_precondition(device, &luks2.sector_size);
    if (r < 0)
        return r;

    hdr_fd = header_memfd(hdr_path);
    if (hdr_fd < 0)
        return log_error_errno(hdr_fd, "%s: cannot create the temporary header in memory: %m", device);
    slot = init_detached(device, hdr_path, label, pass, kind, &params);
    if (slot < 0)
        return slot;

    /* So far only the free tail was written (the first 16 MiB of data were copied there);
     * now the header goes where they were. */
    r = crypt_init(&cd, device);
    if (r >= 0)
        r = crypt_header_restore(cd, CRYPT_LUKS2, hdr_path);
    if (r < 0)
        return log_error_errno(r, "%s: cannot write the LUKS2 header: %s", device, luks_cs_reason(r));

    params.flags &= ~CRYPT_REENCRYPT_INITIALIZE_ONLY;
    r = crypt_reencrypt_init_by_passphrase(cd, NULL, (const char *)pass->data, pass->len, CRYPT_ANY_SLOT, slot, NULL,
                                           NULL, &params);
    if (r < 0)
        return log_error_errno(r, "%s: cannot start the encryption: %s", device, luks_cs_reason(r));
    return run(cd, device, progress, ctx);
}
