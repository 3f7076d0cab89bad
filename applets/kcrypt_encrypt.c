/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kcrypt encrypt LABEL: the key first, then the disk (docs/upstream.md §3.2), so no key means an
 * untouched partition, never an unencrypted install. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcrypt.h"

int kcrypt_show_progress(uint64_t done, uint64_t total, void *ctx)
{
    struct kcrypt_progress *pr = ctx;
    int64_t now = now_ms(), elapsed = now - pr->start_ms;
    double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    double rate = elapsed > 0 ? (double)done / (1 << 20) / ((double)elapsed / 1000) : 0;
    long left = rate > 0 ? (long)((double)(total - done) / (1 << 20) / rate) : 0;
    int decile = (int)(pct / 10);

    if (pr->tty) {
        if (now - pr->last_ms < 250 && done < total)
            return 0;
        fprintf(stderr, "\r%s: %5.1f%% %7.1f MiB/s %ld:%02ld left ", pr->label, pct, rate, left / 60, left % 60);
        if (done >= total)
            fputc('\n', stderr);
    } else if (decile != pr->last_decile || done >= total) {
        fprintf(stderr, "%s: %.0f%% %.1f MiB/s %ld:%02ld left\n", pr->label, pct, rate, left / 60, left % 60);
        pr->last_decile = decile;
    }
    pr->last_ms = now;
    return 0;
}

/* The path of mkfs.ext4 in $PATH (spawn_run execs argv[0] as it is, without a PATH search). */
static void find_mkfs(char *out, size_t n)
{
    const char *path = getenv("PATH");
    char dirs[1024];

    snprintf(dirs, sizeof(dirs), "%s", path && path[0] ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, n, "%s/mkfs.ext4", d);
        if (access(out, X_OK) == 0)
            return;
    }
    snprintf(out, n, "mkfs.ext4");
}

/* mkfs.ext4 -L LABEL on the unlocked volume, as upstream's formatLuks does. */
static int make_filesystem(const char *mapper, const char *label)
{
    char mkfs[1100];
    find_mkfs(mkfs, sizeof(mkfs));
    char *argv[] = {mkfs, "-q", "-F", "-L", (char *)label, (char *)mapper, NULL};
    struct spawn_result res;
    char why[256];
    int r = spawn_run(argv, NULL, 0, 600000, 5000, &res, why, sizeof(why));

    if (r < 0)
        return log_error_errno(r, "%s: cannot run mkfs.ext4: %s", mapper, why);
    if (res.timed_out || !WIFEXITED(res.status) || WEXITSTATUS(res.status) != 0) {
        res.err[strcspn(res.err, "\n")] = '\0';
        log_error("%s: mkfs.ext4 failed: %s", mapper, res.timed_out ? "timed out" : res.err);
        r = -EIO;
    }
    spawn_result_clear(&res);
    return r;
}

static int format_and_mkfs(const struct luks_part *p, const char *label, const struct secret *pass,
                           enum luks_pbkdf kind)
{
    char mapper[512];
    int r;

    r = luks_format(p->device, label, pass, kind);
    if (r < 0)
        return r;
    r = luks_open(p->device, p->name, pass);
    if (r < 0)
        return log_error_errno(r,
                               "%s: the LUKS header is written but the volume could not be opened to "
                               "create its filesystem; run kcrypt encrypt --force again where "
                               "device-mapper works",
                               p->device);
    snprintf(mapper, sizeof(mapper), "/dev/mapper/%s", p->name);
    r = make_filesystem(mapper, label);
    if (luks_close(p->name) < 0 && r == 0)
        r = -EIO;
    return r;
}

int kcrypt_encrypt(const struct kcrypt_ctx *k, const char *label)
{
    struct luks_part *parts = NULL;
    const struct luks_part *p;
    _cleanup_secret_ struct secret *pass = NULL;
    struct luks_header hdr;
    enum key_origin origin;
    enum luks_pbkdf kind;
    struct luks_tpm2_token tok = {0};
    bool measured = k->cfg.tpm_pcrs_set && !kcrypt_uses_kms(k);
    char uuid[LUKS_UUID_STR];
    size_t n = 0;
    int r;

    r = luks_scan(k->root, &parts, &n);
    if (r < 0)
        return EXIT_RUNTIME;
    r = luks_find_by_label(parts, n, label, &p);
    if (r < 0)
        goto out;
    if (luks_header_read(p->device, &hdr) == 0 && !k->force) {
        r = log_error_errno(-EEXIST,
                            "%s (%s) is already LUKS-encrypted; nothing changed (--force "
                            "reformats it and destroys its data)",
                            label, p->device);
        goto out;
    }
    if (p->mount_point[0]) {
        r = log_error_errno(-EBUSY, "%s (%s) is mounted at %s; unmount it first", label, p->device, p->mount_point);
        goto out;
    }
    /* The key before the disk: without one the partition stays as it is. */
    if (measured) { /* README.md "Measured boot": a key sealed to PCRs, not the NV blob */
        r = kcrypt_measured_new_key(k, &pass, &tok);
        origin = KEY_FROM_TPM_NV;
    } else {
        r = kcrypt_get_key(k, p, true, &pass, &origin);
    }
    if (r < 0) {
        log_error("%s (%s): no key, so the partition was left untouched", label, p->device);
        goto out;
    }
    kind = origin == KEY_FROM_TPM_NV ? LUKS_PBKDF_MINIMAL : LUKS_PBKDF_OPERATOR;
    if (k->keep_data) {
        struct kcrypt_progress pr = KCRYPT_PROGRESS_INIT(label);
        r = luks_encrypt_in_place(p->device, label, pass, kind, kcrypt_show_progress, &pr);
    } else {
        r = format_and_mkfs(p, label, pass, kind);
    }
    if (r == 0 && measured)
        r = kcrypt_measured_finish(k, p->device, &tok, pass);
    if (r < 0)
        goto out;
    /* Upstream's Luksify prints label:name:uuid (docs/upstream.md §3.2). */
    luks_uuid_v5(label, uuid);
    printf("%s:%s:%s\n", label, p->name, uuid);
out:
    luks_tpm2_token_clear(&tok);
    luks_parts_free(parts, n);
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}
