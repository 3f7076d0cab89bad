/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kcrypt: encrypt partitions by label and unlock them at boot (UPSTREAM.md §2), plus the TPM NV
 * operator tools of upstream's `kairos-agent kcrypt readnv|cleanupnv` (§2.6). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "applets.h"
#include "base.h"
#include "tpm.h"

static const char usage[] =
    "Usage: kcrypt nv show  [--nv-index I] [--c-index C] [--tpm-device D]\n"
    "       kcrypt nv init  [--nv-index I] [--c-index C] [--tpm-device D]\n"
    "       kcrypt nv clear [--nv-index I] [--tpm-device D] [--yes]\n"
    "       kcrypt encrypt LABEL ...         (not built yet)\n"
    "       kcrypt unlock-all ...            (not built yet)\n"
    "\n"
    "Offline mode keeps the LUKS passphrase in the TPM: an NV index (default 0x1500000) holds its\n"
    "RSA-OAEP-SHA256 ciphertext, which only this TPM's key at c_index (default 0x81000008) can\n"
    "decrypt, exactly as upstream Kairos stores it.\n"
    "\n"
    "  nv show    print the decrypted passphrase (no newline)\n"
    "  nv init    create the passphrase now if there is none (what encrypt does first); prints nothing\n"
    "  nv clear   remove the NV index (asks for 'yes' unless --yes): disks encrypted with it can no\n"
    "             longer be unlocked from this TPM\n"
    "\n"
    "  --nv-index I           NV index (default 0x1500000)\n"
    "  --c-index C            persistent RSA key handle (default 0x81000008)\n"
    "  --tpm-device D         TPM device, swtpm socket or TCTI string (see tpm-hash --help)\n"
    "  --tpm-timeout SECONDS  give up on a TPM command after this long (default 120)\n"
    "  --yes                  do not ask before nv clear\n"
    "  --debug                say more on stderr\n"
    "  --help                 this text\n"
    "\n"
    "Example: kcrypt nv show --tpm-device /dev/tpmrm0 | cryptsetup open --test-passphrase /dev/vda5\n";

struct kcrypt_opts {
    uint32_t nv_index, c_index;
    struct applet_tpm_opts tpm;
    bool yes;
};

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

static int nv_command(const char *cmd, const struct kcrypt_opts *o)
{
    _cleanup_tpm_ struct tpm *tpm = NULL;
    _cleanup_secret_ struct secret *pass = NULL;
    int r;

    if (strcmp(cmd, "show") && strcmp(cmd, "init") && strcmp(cmd, "clear")) {
        log_error("nv %s: unknown command (show, init or clear)", cmd);
        return EXIT_USAGE;
    }
    if (!strcmp(cmd, "clear") && !o->yes) {
        char q[160];
        snprintf(q, sizeof(q), "This removes NV index 0x%x; disks encrypted with it will not unlock from this TPM.",
                 o->nv_index);
        if (!isatty(STDIN_FILENO)) {
            log_error("nv clear: refusing without --yes (standard input is not a terminal)");
            return EXIT_USAGE;
        }
        if (!confirm(q)) {
            log_error("nv clear: not confirmed; nothing removed");
            return EXIT_RUNTIME;
        }
    }
    if (tpm_open(o->tpm.device, o->tpm.timeout_ms, &tpm) < 0)
        return EXIT_RUNTIME;
    if (!strcmp(cmd, "clear")) {
        r = tpm_nv_undefine(tpm, o->nv_index);
        if (r == -ENOENT) {
            log_error("nv clear: NV index 0x%x is not defined on TPM %s", o->nv_index, tpm_describe(tpm));
            return EXIT_RUNTIME;
        }
        return r < 0 ? EXIT_RUNTIME : EXIT_OK;
    }
    r = tpm_offline_passphrase(tpm, o->nv_index, o->c_index, !strcmp(cmd, "init"), &pass);
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

int kcrypt_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"nv-index", required_argument, NULL, 'n'},
        {"c-index", required_argument, NULL, 'c'},
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        APPLET_TPM_LONG_OPTIONS,
        {0},
    };
    struct kcrypt_opts o = {.nv_index = TPM_DEFAULT_NV_INDEX, .c_index = TPM_DEFAULT_C_INDEX};
    int c, code;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_handle("--nv-index", optarg, &o.nv_index) < 0)
                return EXIT_USAGE;
            break;
        case 'c':
            if (parse_handle("--c-index", optarg, &o.c_index) < 0)
                return EXIT_USAGE;
            break;
        case 'y': o.yes = true; break;
        case 'h': return applet_usage(usage, EXIT_OK);
        case '?':
        case ':':
            log_error("%s: unknown option or missing value (see --help)", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            if (!applet_tpm_option(c, optarg, &o.tpm, &code))
                return code;
        }
    }
    if (optind >= argc) {
        log_error("missing command (see --help)");
        return EXIT_USAGE;
    }
    if (!strcmp(argv[optind], "nv")) {
        if (optind + 2 != argc) {
            log_error("nv: expected one of show, init, clear (see --help)");
            return EXIT_USAGE;
        }
        return nv_command(argv[optind + 1], &o);
    }
    if (!strcmp(argv[optind], "encrypt") || !strcmp(argv[optind], "unlock-all")) {
        log_error("%s: not built yet in this version", argv[optind]);
        return EXIT_USAGE;
    }
    log_error("unknown command %s (see --help)", argv[optind]);
    return EXIT_USAGE;
}
