/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kcrypt: encrypt partitions by label and unlock them at boot (docs/upstream.md §3), plus the TPM NV
 * operator tools of upstream's `kairos-agent kcrypt readnv|cleanupnv` (docs/upstream.md §3.4). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kcrypt.h"
#include "tpm.h"

static const char usage[] =
    "Usage: kcrypt encrypt LABEL [--keep-data] [--force] [OPTIONS]\n"
    "       kcrypt unlock-all [--timeout SECONDS] [OPTIONS]\n"
    "       kcrypt nv show|init|clear [--yes] [OPTIONS]\n"
    "       kcrypt enroll DEVICE [--tpm2] [--tpm-pcrs 7+11] [--tpm-pin | --tpm-pin-file F] [--recovery-key]\n"
    "                     [--unlock-key-file F] [--tpm-device D]\n"
    "       kcrypt unlock DEVICE [--name N] [--test] [--tpm-pin-file F] [--prompt-timeout SECONDS]\n"
    "       kcrypt reseal DEVICE|--all [--tpm-pcrs 7+11] [--unlock-key-file F] [--tpm-pin-file F]\n"
    "\n"
    "Kairos partition encryption, compatible with upstream kcrypt (disks and TPM data written by\n"
    "either unlock with the other).\n"
    "\n"
    "  encrypt LABEL   find the partition whose filesystem label is LABEL, get its passphrase FIRST\n"
    "                  (no key: the partition is left untouched), format it as LUKS2 (label LABEL,\n"
    "                  UUID = UUIDv5(URL, LABEL)), open it and create an ext4 filesystem labelled\n"
    "                  LABEL inside. Prints LABEL:NAME:UUID. Refuses a partition that is already\n"
    "                  LUKS unless --force (which destroys its data).\n"
    "      --keep-data encrypt in place instead, keeping the filesystem and its files; the filesystem\n"
    "                  must leave 32 MiB free at the end of the partition (resize2fs it first).\n"
    "                  Shows progress on stderr.\n"
    "  unlock-all      open every locked LUKS partition as /dev/mapper/<name>; one line per partition\n"
    "                  on stdout; exit 1 naming every partition that stayed locked. Failures that can\n"
    "                  pass (a KMS not reachable yet) are retried with backoff within --timeout.\n"
    "                  With kcrypt.encrypt_on_boot: true in the config, first encrypts in place\n"
    "                  (as --keep-data) each partition of install.encrypted_partitions that is not\n"
    "                  LUKS yet, or resumes one whose encryption was interrupted (first boot of a\n"
    "                  cloned image: each node gets its own key from its own TPM or KMS).\n"
    "  nv show        print the offline passphrase kept by the TPM (no newline)\n"
    "  nv init        create it now if there is none (what encrypt does first); prints nothing\n"
    "  nv clear       remove the NV index (asks for 'yes' unless --yes): disks encrypted with it can\n"
    "                 no longer be unlocked from this TPM\n"
    "\n"
    "Measured boot (README.md \"Measured boot\"): keys sealed by the TPM to PCR values, in the\n"
    "systemd-tpm2 LUKS2 token format of systemd-cryptenroll (Debian 12, systemd 252): a volume enrolled\n"
    "by either tool opens with the other. DEVICE is a LUKS2 partition or image file.\n"
    "  enroll DEVICE   add to an existing LUKS2 volume (asks for its passphrase on the terminal, or\n"
    "                  --unlock-key-file F, whose whole content is the key):\n"
    "      --tpm2      a new key sealed to the current values of --tpm-pcrs (SHA-256 bank; default 7;\n"
    "                  \"\" for none) in a new keyslot and systemd-tpm2 token\n"
    "      --tpm-pin   ... that also needs a PIN (asked twice on the terminal; --tpm-pin-file F reads it\n"
    "                  from F, e.g. /dev/fd/3, one trailing newline dropped). Never on the command line\n"
    "      --recovery-key  a systemd recovery key (64 letters in 8 dashed groups), printed once on\n"
    "                  stdout; the explanation goes to stderr\n"
    "  unlock DEVICE   open DEVICE as /dev/mapper/N (--name; default the device's file name) with its\n"
    "                  systemd-tpm2 tokens; when the TPM refuses (PCRs changed, no PIN), ask on the\n"
    "                  terminal for the recovery key or a passphrase (3 tries, --prompt-timeout each,\n"
    "                  default 120 s, never echoed). --test: only show that a token unseals and its key\n"
    "                  opens its keyslot (no device-mapper needed, no prompt)\n"
    "  reseal DEVICE   seal the key again to the current PCR values (after a firmware, boot loader or\n"
    "                  kernel update): opened with the token if it still works, else the recovery key\n"
    "                  or passphrase (--unlock-key-file F, or asked); the new keyslot and token are\n"
    "                  written first, then the old systemd-tpm2 tokens and their keyslots removed.\n"
    "                  PCRs: --tpm-pcrs, else those of the old token. --all: every LUKS partition\n"
    "                  that has a systemd-tpm2 token\n"
    "  unlock-all      opens partitions that have a systemd-tpm2 token with the TPM; when it refuses,\n"
    "                  asks on the console for the recovery key or a passphrase (3 tries of 60 s each,\n"
    "                  never echoed; rd.kcrypt.prompt=0 on the kernel command line: no prompt)\n"
    "  encrypt         with kcrypt.tpm_pcrs (config: [7, 11] or \"7+11\"; or --tpm-pcrs) and no KMS\n"
    "                  configured, seals the new volume's key to those PCRs in a systemd-tpm2 token\n"
    "                  instead of the NV blob; kcrypt.recovery_key: true adds a recovery key, printed\n"
    "                  on stderr (stdout keeps the LABEL:NAME:UUID line); kcrypt.tpm_pcrs_defer: true\n"
    "                  seals to no PCRs at install and to kcrypt.tpm_pcrs at the first unlock\n"
    "\n"
    "Where the passphrase comes from, as upstream decides: when the Kairos config sets\n"
    "kcrypt.challenger.challenger_server or kcrypt.challenger.mdns, from the kcrypt-discovery-*\n"
    "plugins (the KMS); otherwise from the TPM (offline mode): the NV index nv_index (default\n"
    "0x1500000) holds the passphrase encrypted (RSA-OAEP-SHA256) by the TPM key at c_index (default\n"
    "0x81000008). Config: *.yaml/*.yml with a #cloud-config header under /oem, /sysroot/oem,\n"
    "/run/cos/oem, /tmp/oem, plus kcrypt.* keys on the kernel command line; nv_index, c_index and\n"
    "tpm_device are read under kcrypt: and under kcrypt.challenger: (the latter wins).\n"
    "\n"
    "  --nv-index I           NV index (overrides the config)\n"
    "  --c-index C            persistent RSA key handle (overrides the config)\n"
    "  --tpm-device D         TPM device, swtpm socket or TCTI string (see tpm-hash --help)\n"
    "  --tpm-timeout SECONDS  give up on a TPM command after this long (default 120)\n"
    "  --timeout SECONDS      unlock-all: total time to keep retrying one partition (default 120)\n"
    "  --plugin-timeout SECONDS  one discovery plugin run (default 60)\n"
    "  --plugin-dir DIR       also look for kcrypt-discovery-* plugins in DIR, after $PATH,\n"
    "                         /sysroot/system/discovery, /system/discovery, /oem/kcrypt and\n"
    "                         /oem/system/discovery (repeatable; the working directory, which\n"
    "                         upstream searches last, is searched only as --plugin-dir .). As root,\n"
    "                         a plugin runs only if it is owned by root, not writable by group or\n"
    "                         others, in directories only root can change; others are skipped\n"
    "                         with a warning saying why\n"
    "  --root DIR             look for config, /proc, /sys, /dev and the plugin directories under\n"
    "                         DIR (tests, chroots); every plugin run must then resolve (symlinks\n"
    "                         followed) to a file under DIR. Also the environment variable\n"
    "                         KAIROS_KMS_ROOT\n"
    "  --tpm-pcrs LIST        encrypt: as kcrypt.tpm_pcrs (measured boot; e.g. 7+11)\n"
    "  --force                encrypt: reformat a partition that is already LUKS\n"
    "  --yes                  nv clear: do not ask\n"
    "  --debug                say more on stderr\n"
    "  --help                 this text\n"
    "\n"
    "Examples:\n"
    "  kcrypt encrypt COS_PERSISTENT\n"
    "  kcrypt unlock-all --timeout 60\n"
    "  kcrypt nv show --tpm-device /dev/tpmrm0 | cryptsetup open --test-passphrase /dev/vda5\n"
    "  kcrypt enroll /dev/vda5 --tpm2 --tpm-pcrs 7+11 --recovery-key > recovery.txt\n"
    "  kcrypt reseal --all\n";

int kcrypt_parse_pcrs(const char *flag, const char *value, uint32_t *mask)
{
    if (tpm_pcr_mask_parse(value, mask) == 0)
        return 0;
    log_error("%s %s: expected PCR numbers 0-23 joined by + or , (e.g. 7+11)", flag, value);
    return EXIT_USAGE;
}

/* What the options of encrypt, unlock-all and nv fill in. */
struct opts {
    struct kcrypt_ctx k;
    uint32_t nv_index, c_index, pcrs;
    bool nv_given, c_given, pcrs_given, yes;
};

static int opt_handle(uint32_t *out, bool *given, const char *flag, const char *value)
{
    if (parse_u32(value, UINT32_MAX, out) < 0) {
        log_error("%s %s: expected a number such as 0x1500000", flag, value);
        return EXIT_USAGE;
    }
    *given = true;
    return 0;
}

static int opt_nv_index(void *target, const char *flag, const char *value)
{
    struct opts *o = target;
    return opt_handle(&o->nv_index, &o->nv_given, flag, value);
}

static int opt_c_index(void *target, const char *flag, const char *value)
{
    struct opts *o = target;
    return opt_handle(&o->c_index, &o->c_given, flag, value);
}

static int opt_pcrs(void *target, const char *flag, const char *value)
{
    struct opts *o = target;
    o->pcrs_given = true;
    return kcrypt_parse_pcrs(flag, value, &o->pcrs);
}

#define O(field) offsetof(struct opts, field)
static const struct applet_opt options[] = {
    {.name = "nv-index", .type = APPLET_CALL, .call = opt_nv_index},
    {.name = "c-index", .type = APPLET_CALL, .call = opt_c_index},
    {.name = "yes", .type = APPLET_FLAG, .off = O(yes)},
    {.name = "timeout", .type = APPLET_SECONDS, .off = O(k.unlock_timeout_ms)},
    {.name = "plugin-timeout", .type = APPLET_SECONDS, .off = O(k.plugin_timeout_ms)},
    {.name = "plugin-dir",
     .type = APPLET_LIST,
     .off = O(k.plugin_dirs),
     .count_off = O(k.n_plugin_dirs),
     .max = KCRYPT_MAX_PLUGIN_DIRS},
    {.name = "root", .type = APPLET_STRING, .off = O(k.root)},
    {.name = "force", .type = APPLET_FLAG, .off = O(k.force)},
    {.name = "keep-data", .type = APPLET_FLAG, .off = O(k.keep_data)},
    {.name = "tpm-pcrs", .type = APPLET_CALL, .call = opt_pcrs},
    APPLET_TPM_OPTIONS(O(k.tpm)),
};
#undef O

/* Asks on the terminal; only the literal "yes" confirms, as upstream's cleanupnv. */
static bool confirm(const char *question)
{
    char answer[16] = "";
    fprintf(stderr, "%s Type 'yes' to continue: ", question);
    fflush(stderr);
    if (!fgets(answer, sizeof(answer), stdin))
        return false;
    answer[strcspn(answer, "\n")] = '\0';
    return !strcmp(answer, "yes");
}

static int nv_command(const char *cmd, const struct kcrypt_ctx *k, bool yes)
{
    _cleanup_tpm_ struct tpm *tpm = NULL;
    _cleanup_secret_ struct secret *pass = NULL;
    int r;

    if (strcmp(cmd, "show") && strcmp(cmd, "init") && strcmp(cmd, "clear")) {
        log_error("nv %s: unknown command (show, init or clear)", cmd);
        return EXIT_USAGE;
    }
    if (!strcmp(cmd, "clear") && !yes) {
        char q[160];
        snprintf(q, sizeof(q), "This removes NV index 0x%x; disks encrypted with it will not unlock from this TPM.",
                 k->cfg.nv_index);
        if (!isatty(STDIN_FILENO)) {
            log_error("nv clear: refusing without --yes (standard input is not a terminal)");
            return EXIT_USAGE;
        }
        if (!confirm(q)) {
            log_error("nv clear: not confirmed; nothing removed");
            return EXIT_RUNTIME;
        }
    }
    if (tpm_open(k->tpm.device ? k->tpm.device : (k->cfg.tpm_device[0] ? k->cfg.tpm_device : NULL), k->tpm.timeout_ms,
                 &tpm) < 0)
        return EXIT_RUNTIME;
    if (!strcmp(cmd, "clear")) {
        r = tpm_nv_undefine(tpm, k->cfg.nv_index);
        if (r == -ENOENT) {
            log_error("nv clear: NV index 0x%x is not defined on TPM %s", k->cfg.nv_index, tpm_describe(tpm));
            return EXIT_RUNTIME;
        }
        return r < 0 ? EXIT_RUNTIME : EXIT_OK;
    }
    r = tpm_offline_passphrase(tpm, k->cfg.nv_index, k->cfg.c_index, !strcmp(cmd, "init"), &pass);
    if (r < 0)
        return EXIT_RUNTIME;
    if (!strcmp(cmd, "show")) {
        if (fd_write_all(STDOUT_FILENO, pass->data, pass->len) < 0) {
            log_error("cannot write the passphrase to standard output");
            return EXIT_RUNTIME;
        }
    }
    return EXIT_OK;
}

/* Reads the Kairos config (docs/upstream.md §2) and applies the flags on top. */
static int load_config(struct kcrypt_ctx *k, const struct opts *o)
{
    struct kconfig_opts co = {.root = k->root};
    struct kconfig *cfg = NULL;
    int r = kconfig_load(&co, &cfg);

    if (r == 0)
        r = kconfig_kcrypt(cfg, &k->cfg);
    kconfig_free(cfg);
    if (r < 0)
        return log_error_errno(r, "cannot read the Kairos configuration");
    if (o && o->nv_given)
        k->cfg.nv_index = o->nv_index;
    if (o && o->c_given)
        k->cfg.c_index = o->c_index;
    if (o && o->pcrs_given) {
        k->cfg.tpm_pcrs = o->pcrs;
        k->cfg.tpm_pcrs_set = true;
    }
    return 0;
}

/* ---- the command words ---- */
static int verb_encrypt(struct kcrypt_ctx *k, char **args, bool yes)
{
    (void)yes;
    return kcrypt_encrypt(k, args[0]);
}

static int verb_unlock_all(struct kcrypt_ctx *k, char **args, bool yes)
{
    (void)args, (void)yes;
    return kcrypt_unlock_all(k);
}

static int verb_nv(struct kcrypt_ctx *k, char **args, bool yes) { return nv_command(args[0], k, yes); }

static const struct verb {
    const char *name;
    int nargs;        /* positional arguments after the verb */
    const char *want; /* what they are, for the error text */
    bool modules;     /* loads the dm-crypt modules first (not in a --root tree) */
    int (*run)(struct kcrypt_ctx *k, char **args, bool yes);
} verbs[] = {
    {"encrypt", 1, "exactly one LABEL, the filesystem label of the partition", true, verb_encrypt},
    {"unlock-all", 0, NULL, true, verb_unlock_all},
    {"nv", 1, "one of show, init, clear", false, verb_nv},
};
/* The measured-boot verbs parse their own options (kcrypt_mboot.c). */
static const char *const mboot_verbs[] = {"enroll", "unlock", "reseal"};

static const struct verb *find_verb(const char *name)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!strcmp(verbs[i].name, name))
            return &verbs[i];
    return NULL;
}

static bool is_mboot_verb(const char *name)
{
    for (size_t i = 0; i < sizeof(mboot_verbs) / sizeof(mboot_verbs[0]); i++)
        if (!strcmp(mboot_verbs[i], name))
            return true;
    return false;
}

int kcrypt_main(int argc, char **argv)
{
    const struct applet_cmd cmd = {.usage = usage, .opts = options, .n_opts = APPLET_N(options)};
    struct opts o = {.k = {.unlock_timeout_ms = 120000, .plugin_timeout_ms = 60000}};
    struct kcrypt_ctx *k = &o.k;
    const struct verb *v;
    char **args;
    int nargs, code, r, first;

    k->root = getenv("KAIROS_KMS_ROOT");
    /* enroll, unlock and reseal (kcrypt_mboot.c) parse their own options, before or after the verb. */
    first = applet_first_arg(&cmd, argc, argv);
    if (first < argc && is_mboot_verb(argv[first])) {
        const char *verb = argv[first];
        memmove(argv + first, argv + first + 1, (size_t)(argc - first) * sizeof(*argv)); /* argv[argc] NULL too */
        for (int j = 1; j + 1 < argc - 1; j++) /* --root anywhere: the config is read from there */
            if (!strcmp(argv[j], "--root"))
                k->root = argv[j + 1];
        r = load_config(k, NULL);
        code = r < 0 ? EXIT_RUNTIME : kcrypt_mboot_main(verb, argc - 1, argv, k, usage);
        kconfig_kcrypt_clear(&k->cfg);
        return code;
    }
    if (!applet_parse(&cmd, argc, argv, &o, &args, &nargs, &code))
        return code;
    if (nargs == 0) {
        log_error("missing command: encrypt, unlock-all or nv (see --help)");
        return EXIT_USAGE;
    }
    v = find_verb(args[0]);
    if (!v) {
        log_error("unknown command %s (see --help)", args[0]);
        return EXIT_USAGE;
    }
    if (!applet_check_args(v->name, args + 1, nargs - 1, v->nargs, v->nargs, v->want))
        return EXIT_USAGE;
    r = load_config(k, &o);
    /* An initramfs may have no modprobe; a --root tree is a test, not this kernel's system. */
    if (r == 0 && v->modules && (!k->root || !k->root[0]))
        kcrypt_load_modules();
    code = r < 0 ? EXIT_RUNTIME : v->run(k, args + 1, o.yes);
    kconfig_kcrypt_clear(&k->cfg);
    return code;
}
