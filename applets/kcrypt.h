/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Internal to the kcrypt applet (kcrypt.c, kcrypt_key.c, kcrypt_encrypt.c, kcrypt_unlock.c). */
#ifndef KKMS_KCRYPT_APPLET_H
#define KKMS_KCRYPT_APPLET_H

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "applets.h"
#include "base.h"
#include "kconfig.h"
#include "luks.h"

#define KCRYPT_MAX_PLUGIN_DIRS 16

struct kcrypt_ctx {
    const char *root;         /* --root: prefix of config, /proc, /sys and /dev paths ("" = /) */
    struct kcrypt_config cfg; /* the Kairos config, flags applied on top */
    struct applet_tpm_opts tpm;
    int64_t plugin_timeout_ms;                       /* one discovery plugin run */
    const char *plugin_dirs[KCRYPT_MAX_PLUGIN_DIRS]; /* --plugin-dir, searched after the standard ones */
    size_t n_plugin_dirs;
    int64_t unlock_timeout_ms; /* unlock-all: total time for retries of one partition */
    bool force, keep_data;
};

/* Where a passphrase came from: decides the keyslot PBKDF (docs/luks.md §2). */
enum key_origin { KEY_FROM_TPM_NV, KEY_FROM_PLUGIN };

/* True when the config names a KMS (challenger_server or mdns): passphrases then come from the
 * discovery plugins, else from the TPM NV index, as upstream G3 chooses (docs/upstream.md §3.5). */
bool kcrypt_uses_kms(const struct kcrypt_ctx *k);
/* Gets the passphrase of partition p. create: the TPM NV passphrase may be generated (encrypt);
 * unlocking never creates one. Errors are logged; *out is the caller's. */
int kcrypt_get_key(const struct kcrypt_ctx *k, const struct luks_part *p, bool create, struct secret **out,
                   enum key_origin *origin);

int kcrypt_encrypt(const struct kcrypt_ctx *k, const char *label);

/* Draws "label: 42% 120.5 MiB/s 0:13 left" on stderr: in place on a terminal, else every 10%
 * (a luks_progress_fn; ctx is a struct kcrypt_progress). */
struct kcrypt_progress {
    const char *label;
    int64_t start_ms, last_ms;
    int last_decile;
    bool tty;
};
#define KCRYPT_PROGRESS_INIT(l) \
    ((struct kcrypt_progress){.label = (l), .start_ms = now_ms(), .last_decile = -1, .tty = isatty(STDERR_FILENO)})
int kcrypt_show_progress(uint64_t done, uint64_t total, void *ctx);
/* Loads dm_mod, dm_crypt, ecb, xts and crc32c_generic unless loaded (kcrypt_modules.c): best
 * effort, a warning for each that fails; nothing at all on a kernel with no modules.dep. */
void kcrypt_load_modules(void);
int kcrypt_unlock_all(const struct kcrypt_ctx *k);

/* ---- measured-boot local mode (kcrypt_mboot.c): systemd-tpm2 tokens and recovery keys ---- */
/* kcrypt enroll|unlock|reseal with their own options (--help prints usage); returns the exit code. */
int kcrypt_mboot_main(const char *verb, int argc, char **argv, struct kcrypt_ctx *k, const char *usage);
/* --tpm-pcrs LIST (7+11, 7,11) given to flag into *mask; 0, or EXIT_USAGE (reported). */
int kcrypt_parse_pcrs(const char *flag, const char *value, uint32_t *mask);
/* Tries device's systemd-tpm2 tokens (a PIN from pin_file, else the terminal, with console also
 * /dev/console): 0 and *key (the keyslot passphrase; *used a copy of the
 * token that worked, if not NULL); -ENOENT when it has none; else why the last one failed. */
int kcrypt_tpm2_key(const struct kcrypt_ctx *k, const char *device, const char *pin_file, bool console,
                    struct secret **key, struct luks_tpm2_token *used);
/* Asks on the terminal (console: or /dev/console) for a recovery key or passphrase that opens device: three tries, each within
 * timeout_ms, never echoed. */
int kcrypt_prompt_key(const char *device, const char *label, bool console, int64_t timeout_ms, struct secret **key);
/* False when the kernel command line has rd.kcrypt.prompt=0. */
bool kcrypt_prompt_enabled(const struct kcrypt_ctx *k);
/* Reads a secret from the terminal (console: or /dev/console) without echo (0 = no time limit); -ENOTTY, -ETIMEDOUT, -ENODATA. */
int kcrypt_ask_secret(const char *prompt, bool console, int64_t timeout_ms, struct secret **out);
/* Seals device's key again to the current values of mask (or the PCRs of its token when
 * !pcrs_given): new keyslot and token first, old systemd-tpm2 tokens removed after. */
/* kcrypt encrypt with kcrypt.tpm_pcrs: a new key sealed to those PCRs (none with tpm_pcrs_defer)
 * before the disk is touched; *pass is the keyslot passphrase, *tok the token without keyslot. */
int kcrypt_measured_new_key(const struct kcrypt_ctx *k, struct secret **pass, struct luks_tpm2_token *tok);
/* After formatting: stores tok for the keyslot pass opens, and a recovery key (printed on stderr)
 * when kcrypt.recovery_key. */
int kcrypt_measured_finish(const struct kcrypt_ctx *k, const char *device, struct luks_tpm2_token *tok,
                           const struct secret *pass);
/* After an unlock by token used: kcrypt.tpm_pcrs_defer sealing to the configured PCRs. */
void kcrypt_measured_after_unlock(const struct kcrypt_ctx *k, const char *device, const struct luks_tpm2_token *used);
/* unlock-all for a volume with systemd-tpm2 tokens (TPM, else the console prompt); -ENOENT when
 * it has none. */
#define KCRYPT_PROMPT_TIMEOUT_MS 60000 /* one try at the boot prompt */
int kcrypt_unlock_measured(const struct kcrypt_ctx *k, const struct luks_part *p);
int kcrypt_reseal_device(const struct kcrypt_ctx *k, const char *device, const char *pin_file,
                         const char *unlock_key_file, bool pcrs_given, uint32_t mask, int64_t prompt_timeout_ms);

#endif
