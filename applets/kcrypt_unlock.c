/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kcrypt unlock-all: every locked LUKS partition gets its key and is opened as
 * /dev/mapper/<name>. Unlike upstream (docs/upstream.md §3.6), a partition that stays locked makes
 * the command fail, naming it; retries back off inside a total time limit. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kcrypt.h"

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* A wrong passphrase or a missing NV index will not fix itself; a KMS that is still booting or a
 * network that is not up yet may. */
static bool worth_retrying(int r) { return r != -EPERM && r != -EINVAL && r != -ENODEV && r != -EEXIST; }

static int unlock_one(const struct kcrypt_ctx *k, const struct luks_part *p)
{
    const char *label = luks_part_label(p);
    int64_t deadline = now_ms() + k->unlock_timeout_ms, backoff = 1000;
    int r, attempt = 0;

    /* A volume with a systemd-tpm2 token: its TPM, else the recovery prompt (README.md "Measured
     * boot"); no retries, the PCRs will not change by waiting. */
    r = kcrypt_unlock_measured(k, p);
    if (r != -ENOENT)
        return r;

    for (;;) {
        _cleanup_secret_ struct secret *pass = NULL;
        enum key_origin origin;

        /* The plugin run may not outlast the partition's time limit. */
        struct kcrypt_ctx bounded = *k;
        int64_t left = deadline - now_ms();
        if (left < bounded.plugin_timeout_ms)
            bounded.plugin_timeout_ms = left > 1000 ? left : 1000;

        attempt++;
        r = kcrypt_get_key(&bounded, p, false, &pass, &origin);
        if (r == 0)
            r = luks_open(p->device, p->name, pass);
        if (r == 0 || !worth_retrying(r) || (origin == KEY_FROM_TPM_NV && r == -ENOENT))
            break;
        if (now_ms() + backoff >= deadline) {
            log_error("%s (%s): giving up after %d attempts in %lld s", label[0] ? label : p->name, p->device, attempt,
                      (long long)(k->unlock_timeout_ms / 1000));
            break;
        }
        log_warn("%s (%s): attempt %d failed; retrying in %lld s", label[0] ? label : p->name, p->device, attempt,
                 (long long)(backoff / 1000));
        sleep_ms(backoff);
        backoff = backoff * 2 > 16000 ? 16000 : backoff * 2;
    }
    return r;
}

/* First boot of a cloned image (kcrypt.encrypt_on_boot): each partition of
 * install.encrypted_partitions that still holds a plain filesystem is encrypted in place, keeping
 * its files, with a key from this node's own TPM or KMS; one whose encryption was interrupted
 * (power loss) is resumed. The unlock below then opens them as usual. A partition that cannot be
 * encrypted is reported and left as it is: its data stay readable, never lost. */
static int encrypt_on_boot(const struct kcrypt_ctx *k)
{
    int failed = 0;

    for (size_t i = 0; i < k->cfg.n_encrypted_partitions; i++) {
        const char *label = k->cfg.encrypted_partitions[i];
        _cleanup_secret_ struct secret *pass = NULL;
        struct luks_part *parts = NULL;
        const struct luks_part *p;
        enum key_origin origin;
        size_t n = 0;
        int r, pending = 0;

        if (luks_scan(k->root, &parts, &n) < 0)
            return -EIO;
        r = luks_find_by_label(parts, n, label, &p);
        if (r == 0 && !strcmp(p->fs, "crypto_LUKS")) {
            pending = luks_reencrypt_pending(p->device);
            if (pending <= 0) { /* already encrypted (or unreadable: the unlock will say) */
                luks_parts_free(parts, n);
                continue;
            }
        }
        if (r == 0 && p->mount_point[0])
            r = log_error_errno(-EBUSY, "%s (%s) is mounted at %s; not encrypting it at boot", label, p->device,
                                p->mount_point);
        if (r == 0)
            r = kcrypt_get_key(k, p, true, &pass, &origin);
        if (r == 0) {
            struct kcrypt_progress pr = KCRYPT_PROGRESS_INIT(label);
            printf("%s (%s): %s encryption in place\n", label, p->device, pending ? "resuming" : "first boot:");
            fflush(stdout);
            r = luks_encrypt_in_place(p->device, label, pass,
                                      origin == KEY_FROM_TPM_NV ? LUKS_PBKDF_MINIMAL : LUKS_PBKDF_OPERATOR,
                                      kcrypt_show_progress, &pr);
        }
        if (r == 0) {
            printf("%s (%s): encrypted\n", label, p->device);
        } else {
            printf("%s: not encrypted at boot (see the error above); left as it is\n", label);
            failed++;
        }
        fflush(stdout);
        luks_parts_free(parts, n);
    }
    return failed ? -EIO : 0;
}

int kcrypt_unlock_all(const struct kcrypt_ctx *k)
{
    int enc = 0;
    struct luks_part *parts = NULL;
    const struct luks_part **locked;
    char failed[1024] = "";
    size_t n = 0, nlocked, nfailed = 0;
    int r;

    if (k->cfg.encrypt_on_boot)
        enc = encrypt_on_boot(k);
    r = luks_scan(k->root, &parts, &n);
    if (r < 0)
        return EXIT_RUNTIME;
    locked = xcalloc(n ? n : 1, sizeof(*locked));
    nlocked = luks_list_locked(k->root, parts, n, locked);
    if (nlocked == 0)
        printf("no locked LUKS partitions\n");
    for (size_t i = 0; i < nlocked; i++) {
        const struct luks_part *p = locked[i];
        const char *label = luks_part_label(p);

        r = unlock_one(k, p);
        if (r == 0) {
            printf("%s (%s): unlocked as /dev/mapper/%s\n", label[0] ? label : "-", p->device, p->name);
        } else {
            printf("%s (%s): still locked\n", label[0] ? label : "-", p->device);
            size_t used = strlen(failed);
            snprintf(failed + used, sizeof(failed) - used, "%s%s (%s)", nfailed ? ", " : "", p->name,
                     label[0] ? label : "no label");
            nfailed++;
        }
        fflush(stdout);
    }
    if (nfailed)
        log_error("%zu of %zu LUKS partitions stayed locked: %s", nfailed, nlocked, failed);
    free(locked);
    luks_parts_free(parts, n);
    return nfailed || enc < 0 ? EXIT_RUNTIME : EXIT_OK;
}
