/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kcrypt: encrypt partitions by label and unlock them at boot (docs/upstream.md §3), plus the TPM NV
 * operator tools of upstream's `kairos-agent kcrypt readnv|cleanupnv` (docs/upstream.md §3.4). */
#include <getopt.h>
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

static int parse_handle(const char *flag, const char *value, uint32_t *out)
{
    if (parse_u32(value, UINT32_MAX, out) < 0) {
        log_error("%s %s: expected a number such as 0x1500000", flag, value);
        return -EINVAL;
    }
    return 0;
}

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
static int load_config(struct kcrypt_ctx *k, const uint32_t *nv_flag, const uint32_t *c_flag)
{
    struct kconfig_opts co = {.root = k->root};
    struct kconfig *cfg = NULL;
    int r = kconfig_load(&co, &cfg);

    if (r == 0)
        r = kconfig_kcrypt(cfg, &k->cfg);
    kconfig_free(cfg);
    if (r < 0)
        return log_error_errno(r, "cannot read the Kairos configuration");
    if (nv_flag)
        k->cfg.nv_index = *nv_flag;
    if (c_flag)
        k->cfg.c_index = *c_flag;
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
    enum { OPT_TIMEOUT = 0x2000, OPT_PLUGIN_TIMEOUT, OPT_PLUGIN_DIR, OPT_ROOT, OPT_FORCE, OPT_KEEP_DATA, OPT_TPM_PCRS };
    static const struct option opts[] = {
        {"nv-index", required_argument, NULL, 'n'},
        {"c-index", required_argument, NULL, 'c'},
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"plugin-timeout", required_argument, NULL, OPT_PLUGIN_TIMEOUT},
        {"plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR},
        {"root", required_argument, NULL, OPT_ROOT},
        {"force", no_argument, NULL, OPT_FORCE},
        {"keep-data", no_argument, NULL, OPT_KEEP_DATA},
        {"tpm-pcrs", required_argument, NULL, OPT_TPM_PCRS},
        APPLET_TPM_LONG_OPTIONS,
        {0},
    };
    struct kcrypt_ctx k = {.unlock_timeout_ms = 120000, .plugin_timeout_ms = 60000};
    uint32_t nv_index, c_index;
    const uint32_t *nv_flag = NULL, *c_flag = NULL;
    uint32_t pcrs_flag = 0;
    bool pcrs_given = false;
    const struct verb *v;
    bool yes = false;
    int c, code, r;

    k.root = getenv("KAIROS_KMS_ROOT");
    /* enroll, unlock and reseal (kcrypt_mboot.c) parse their own options, before or after the verb. */
    for (int i = 1; i < argc; i++) {
        static const char *const with_value[] = {"--root",    "--tpm-device", "--tpm-timeout",    "--nv-index",
                                                 "--c-index", "--timeout",    "--plugin-timeout", "--plugin-dir"};
        bool is_value = false;
        for (size_t j = 0; i > 1 && j < sizeof(with_value) / sizeof(*with_value); j++)
            is_value |= !strcmp(argv[i - 1], with_value[j]);
        if (argv[i][0] == '-' || is_value)
            continue;
        if (is_mboot_verb(argv[i])) {
            const char *verb = argv[i];
            memmove(argv + i, argv + i + 1, (size_t)(argc - i) * sizeof(*argv)); /* argv[argc] NULL too */
            for (int j = 1; j + 1 < argc - 1; j++) /* --root anywhere: the config is read from there */
                if (!strcmp(argv[j], "--root"))
                    k.root = argv[j + 1];
            r = load_config(&k, NULL, NULL);
            code = r < 0 ? EXIT_RUNTIME : kcrypt_mboot_main(verb, argc - 1, argv, &k);
            kconfig_kcrypt_clear(&k.cfg);
            return code == -1 ? applet_usage(usage, EXIT_OK) : code;
        }
        break;
    }
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_handle("--nv-index", optarg, &nv_index) < 0)
                return EXIT_USAGE;
            nv_flag = &nv_index;
            break;
        case 'c':
            if (parse_handle("--c-index", optarg, &c_index) < 0)
                return EXIT_USAGE;
            c_flag = &c_index;
            break;
        case 'y': yes = true; break;
        case 'h': return applet_usage(usage, EXIT_OK);
        case OPT_TIMEOUT:
            if (applet_parse_seconds("--timeout", optarg, &k.unlock_timeout_ms) < 0)
                return EXIT_USAGE;
            break;
        case OPT_PLUGIN_TIMEOUT:
            if (applet_parse_seconds("--plugin-timeout", optarg, &k.plugin_timeout_ms) < 0)
                return EXIT_USAGE;
            break;
        case OPT_PLUGIN_DIR:
            if (!*optarg || k.n_plugin_dirs == KCRYPT_MAX_PLUGIN_DIRS) {
                log_error("--plugin-dir %s: %s", optarg, *optarg ? "too many (at most 16)" : "expected a directory");
                return EXIT_USAGE;
            }
            k.plugin_dirs[k.n_plugin_dirs++] = optarg;
            break;
        case OPT_ROOT: k.root = optarg; break;
        case OPT_FORCE: k.force = true; break;
        case OPT_KEEP_DATA: k.keep_data = true; break;
        case OPT_TPM_PCRS:
            if (tpm_pcr_mask_parse(optarg, &pcrs_flag) < 0) {
                log_error("--tpm-pcrs %s: expected PCR numbers 0-23 joined by + or , (e.g. 7+11)", optarg);
                return EXIT_USAGE;
            }
            pcrs_given = true;
            break;
        case '?':
        case ':': log_error("%s: unknown option or missing value (see --help)", argv[optind - 1]); return EXIT_USAGE;
        default:
            if (!applet_tpm_option(c, optarg, &k.tpm, &code))
                return code;
        }
    }
    if (optind >= argc) {
        log_error("missing command: encrypt, unlock-all or nv (see --help)");
        return EXIT_USAGE;
    }
    v = find_verb(argv[optind]);
    if (!v) {
        log_error("unknown command %s (see --help)", argv[optind]);
        return EXIT_USAGE;
    }
    optind++;
    if (argc - optind != v->nargs) {
        if (v->nargs == 0)
            log_error("%s: unexpected argument %s (see --help)", v->name, argv[optind]);
        else
            log_error("%s: expected %s (see --help)", v->name, v->want);
        return EXIT_USAGE;
    }
    r = load_config(&k, nv_flag, c_flag);
    if (pcrs_given) {
        k.cfg.tpm_pcrs = pcrs_flag;
        k.cfg.tpm_pcrs_set = true;
    }
    /* An initramfs may have no modprobe; a --root tree is a test, not this kernel's system. */
    if (r == 0 && v->modules && (!k.root || !k.root[0]))
        kcrypt_load_modules();
    code = r < 0 ? EXIT_RUNTIME : v->run(&k, argv + optind, yes);
    kconfig_kcrypt_clear(&k.cfg);
    return code;
}
