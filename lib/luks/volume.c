/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Format, check, open and close LUKS2 volumes with libcryptsetup. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcryptsetup.h>

#include "luks_internal.h"

static char cs_last_error[256];

static void cs_log(int level, const char *msg, void *usrptr)
{
    size_t n;

    (void)usrptr;
    if (!msg)
        return;
    n = strcspn(msg, "\n");
    if (level == CRYPT_LOG_ERROR)
        snprintf(cs_last_error, sizeof(cs_last_error), "%.*s", (int)n, msg);
    /* libcryptsetup's own words only help when debugging; our caller logs the one line. */
    log_debug("libcryptsetup: %.*s", (int)n, msg);
}

void luks_cs_begin(void)
{
    cs_last_error[0] = '\0';
    crypt_set_log_callback(NULL, cs_log, NULL);
    crypt_set_debug_level(log_get_level() >= LOG_DEBUG ? CRYPT_DEBUG_ALL : CRYPT_DEBUG_NONE);
}

const char *luks_cs_reason(int r)
{
    if (cs_last_error[0]) {
        /* "Device x does not exist or access denied." reads better without the full stop. */
        size_t n = strlen(cs_last_error);
        if (cs_last_error[n - 1] == '.')
            cs_last_error[n - 1] = '\0';
        return cs_last_error;
    }
    return strerror(r < 0 ? -r : r);
}

static void crypt_freep(struct crypt_device **cd) { crypt_free(*cd); /* NULL is fine */ }
#define _cleanup_crypt_ _cleanup_(crypt_freep)

/* Generated passphrases carry >= 256 bits of entropy, so a slow KDF adds nothing but boot time:
 * PBKDF2-SHA256 at libcryptsetup's minimum of 1000 iterations, without the benchmark (which
 * would otherwise run for a second on every format). As systemd's cryptsetup_set_minimal_pbkdf. */
static int luks_set_minimal_pbkdf(struct crypt_device *cd)
{
    static const struct crypt_pbkdf_type minimal = {
        .type = CRYPT_KDF_PBKDF2,
        .hash = "sha256",
        .iterations = LUKS_PBKDF2_ITERATIONS,
        .flags = CRYPT_PBKDF_NO_BENCHMARK,
    };
    return crypt_set_pbkdf_type(cd, &minimal);
}

/* Operator passphrases keep a memory-hard KDF, bounded so it unlocks in a small initramfs; the
 * numbers and why are in luks.h (enum luks_pbkdf). */
static int luks_set_operator_pbkdf(struct crypt_device *cd)
{
    static const struct crypt_pbkdf_type operator_kdf = {
        .type = CRYPT_KDF_ARGON2ID,
        .hash = "sha256",
        .iterations = LUKS_ARGON2_TIME_COST,
        .max_memory_kb = LUKS_ARGON2_MEMORY_KB,
        .parallel_threads = LUKS_ARGON2_LANES,
        .flags = CRYPT_PBKDF_NO_BENCHMARK,
    };
    return crypt_set_pbkdf_type(cd, &operator_kdf);
}

int luks_set_pbkdf(struct crypt_device *cd, enum luks_pbkdf kind)
{
    switch (kind) {
    case LUKS_PBKDF_MINIMAL: return luks_set_minimal_pbkdf(cd);
    case LUKS_PBKDF_OPERATOR: return luks_set_operator_pbkdf(cd);
    }
    return -EINVAL;
}

int luks_check_label(const char *device, const char *label)
{
    if (!label || !*label)
        return log_error_errno(-EINVAL, "%s: a LUKS label is required", device);
    if (strlen(label) >= LUKS_LABEL_MAX)
        return log_error_errno(-EINVAL, "%s: label '%s' is longer than the %d bytes LUKS2 allows", device, label,
                               LUKS_LABEL_MAX - 1);
    return 0;
}

int luks_check_exists(const char *path)
{
    struct stat st;

    if (!path || !*path)
        return log_error_errno(-EINVAL, "no device given");
    if (stat(path, &st) < 0)
        return log_error_errno(-errno, "%s: %s", path, errno == ENOENT ? "no such device or file" : strerror(errno));
    if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
        return log_error_errno(-ENOTBLK, "%s: not a block device or image file", path);
    return 0;
}

/* crypt_init + crypt_load with the error said once, for the functions that use a header. */
static int load_luks(const char *device, struct crypt_device **out)
{
    struct crypt_device *cd = NULL;
    int r;

    r = luks_check_exists(device);
    if (r < 0)
        return r;
    luks_cs_begin();
    r = crypt_init(&cd, device);
    if (r < 0)
        return log_error_errno(r, "%s: cannot open: %s", device, luks_cs_reason(r));
    r = crypt_load(cd, CRYPT_LUKS, NULL);
    if (r < 0) {
        crypt_free(cd);
        if (r == -EINVAL)
            return log_error_errno(r, "%s: not a LUKS device", device);
        return log_error_errno(r, "%s: cannot read the LUKS header: %s", device, luks_cs_reason(r));
    }
    *out = cd;
    return 0;
}

int luks_format(const char *device, const char *label, const struct secret *pass, enum luks_pbkdf kind)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    char uuid[LUKS_UUID_STR];
    struct crypt_params_luks2 params = {.label = label};
    int r;

    r = luks_check_exists(device);
    if (r < 0)
        return r;
    r = luks_check_label(device, label);
    if (r < 0)
        return r;
    if (!pass || pass->len == 0)
        return log_error_errno(-EINVAL, "%s: refusing an empty passphrase", device);

    luks_uuid_v5(label, uuid);
    luks_cs_begin();
    r = crypt_init(&cd, device);
    if (r < 0)
        return log_error_errno(r, "%s: cannot open: %s", device, luks_cs_reason(r));
    r = luks_set_pbkdf(cd, kind);
    if (r < 0)
        return log_error_errno(r, "%s: cannot set the keyslot PBKDF: %s", device, luks_cs_reason(r));
    /* Only now that nothing can be refused any more is the device's content destroyed. */
    r = luks_wipe_signatures(device);
    if (r < 0)
        return r;
    /* A NULL volume key makes libcryptsetup draw LUKS_VOLUME_KEY_BYTES from the kernel RNG. */
    r = crypt_format(cd, CRYPT_LUKS2, LUKS_CIPHER, LUKS_CIPHER_MODE, uuid, NULL, LUKS_VOLUME_KEY_BYTES, &params);
    if (r < 0)
        return log_error_errno(r, "%s: cannot write a LUKS2 header: %s", device, luks_cs_reason(r));
    /* Upstream runs `cryptsetup refresh --persistent --allow-discards` after formatting (docs/upstream.md §3.2):
     * keep the same header flag so volumes look alike whichever tool made them. */
    r = crypt_persistent_flags_set(cd, CRYPT_FLAGS_ACTIVATION, CRYPT_ACTIVATE_ALLOW_DISCARDS);
    if (r < 0)
        return log_error_errno(r, "%s: cannot set allow-discards: %s", device, luks_cs_reason(r));
    r = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, NULL, 0, (const char *)pass->data, pass->len);
    if (r < 0)
        return log_error_errno(r, "%s: cannot add the passphrase keyslot: %s", device, luks_cs_reason(r));
    log_debug("%s: LUKS2 label %s uuid %s, passphrase in keyslot %d", device, label, uuid, r);
    return 0;
}

/* Activation with name NULL only derives the key and checks it against the digest, so it needs
 * no device-mapper. Every keyslot is tried (upstream tries only slot 0, docs/upstream.md §3.3). */
int luks_check_passphrase(const char *device, const struct secret *pass, int *slot)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    int r;

    if (!pass)
        return log_error_errno(-EINVAL, "%s: no passphrase given", device);
    r = load_luks(device, &cd);
    if (r < 0)
        return r;
    r = crypt_activate_by_passphrase(cd, NULL, CRYPT_ANY_SLOT, (const char *)pass->data, pass->len, 0);
    if (r == -EPERM)
        return log_error_errno(r, "%s: no keyslot accepts this passphrase", device);
    if (r < 0)
        return log_error_errno(r, "%s: cannot check the passphrase: %s", device, luks_cs_reason(r));
    if (slot)
        *slot = r;
    return 0;
}

static bool dm_available(void)
{
    /* dm_mod registers the misc device "device-mapper" (/dev/mapper/control). */
    return access("/sys/class/misc/device-mapper", F_OK) == 0;
}

static int check_name(const char *name)
{
    if (!name || !*name || strchr(name, '/') || strlen(name) >= 128 || !strcmp(name, ".") || !strcmp(name, ".."))
        return log_error_errno(-EINVAL, "'%s' is not a valid device-mapper name", name ? name : "");
    return 0;
}

int luks_open(const char *device, const char *name, const struct secret *pass)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    int r;

    r = check_name(name);
    if (r < 0)
        return r;
    if (!pass)
        return log_error_errno(-EINVAL, "%s: no passphrase given", device);
    r = load_luks(device, &cd);
    if (r < 0)
        return r;
    r = crypt_activate_by_passphrase(cd, name, CRYPT_ANY_SLOT, (const char *)pass->data, pass->len, 0);
    if (r == -EPERM)
        return log_error_errno(r, "%s: no keyslot accepts this passphrase", device);
    if (r == -EEXIST)
        return log_error_errno(r, "%s: /dev/mapper/%s already exists", device, name);
    if (r < 0 && !dm_available())
        return log_error_errno(-ENODEV,
                               "%s: cannot unlock as /dev/mapper/%s: device-mapper is unavailable "
                               "(load dm_mod and dm_crypt)",
                               device, name);
    if (r < 0)
        return log_error_errno(r, "%s: cannot unlock as /dev/mapper/%s: %s", device, name, luks_cs_reason(r));
    log_debug("%s: unlocked as /dev/mapper/%s with keyslot %d", device, name, r);
    return 0;
}

int luks_close(const char *name)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    int r;

    r = check_name(name);
    if (r < 0)
        return r;
    luks_cs_begin();
    if (!dm_available())
        return log_error_errno(-ENODEV, "cannot close /dev/mapper/%s: device-mapper is unavailable", name);
    r = crypt_init_by_name(&cd, name);
    if (r == -ENODEV || r == -ENOENT)
        return log_error_errno(-ENODEV, "/dev/mapper/%s is not active", name);
    if (r < 0)
        return log_error_errno(r, "cannot close /dev/mapper/%s: %s", name, luks_cs_reason(r));
    r = crypt_deactivate(cd, name);
    if (r < 0)
        return log_error_errno(r, "cannot close /dev/mapper/%s: %s", name, luks_cs_reason(r));
    return 0;
}

bool luks_is_active(const char *name)
{
    _cleanup_free_ char *path = NULL;
    crypt_status_info st;

    if (!name || !*name || strchr(name, '/'))
        return false;
    path = xmalloc(strlen(name) + sizeof("/dev/mapper/"));
    sprintf(path, "/dev/mapper/%s", name);
    if (access(path, F_OK) == 0)
        return true;
    if (!dm_available())
        return false;
    luks_cs_begin();
    st = crypt_status(NULL, name);
    return st == CRYPT_ACTIVE || st == CRYPT_BUSY;
}
