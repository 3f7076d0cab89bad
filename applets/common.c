/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by applets: usage output and the TPM options every TPM-using applet takes. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "applets.h"
#include "base.h"
#include "tpm.h"

int applet_usage(const char *text, int exit_code)
{
    fputs(text, exit_code == EXIT_OK ? stdout : stderr);
    return exit_code;
}

int applet_parse_seconds(const char *flag, const char *value, int64_t *out_ms)
{
    if (parse_seconds_ms(value, out_ms) == 0)
        return 0;
    log_error("%s %s: expected a positive number of seconds", flag, value);
    return -EINVAL;
}

bool applet_tpm_option(int c, const char *arg, struct applet_tpm_opts *o, int *exit_code)
{
    switch (c) {
    case APPLET_OPT_TPM_DEVICE: o->device = arg; return true;
    case APPLET_OPT_TPM_TIMEOUT:
        if (applet_parse_seconds("--tpm-timeout", arg, &o->timeout_ms) == 0)
            return true;
        *exit_code = EXIT_USAGE;
        return false;
    case APPLET_OPT_DEBUG: log_set_level(LOG_DEBUG); return true;
    default: *exit_code = EXIT_USAGE; return false;
    }
}

bool applet_tpm_options(int argc, char **argv, const char *usage, struct applet_tpm_opts *o, int *exit_code)
{
    static const struct option opts[] = {APPLET_TPM_LONG_OPTIONS, {"help", no_argument, NULL, 'h'}, {0}};
    int c;

    *o = (struct applet_tpm_opts){0};
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'h') {
            *exit_code = applet_usage(usage, EXIT_OK);
            return false;
        }
        if (c == '?' || c == ':') {
            log_error("%s: unknown option or missing value (see --help)", argv[optind - 1]);
            *exit_code = EXIT_USAGE;
            return false;
        }
        if (!applet_tpm_option(c, optarg, o, exit_code))
            return false;
    }
    o->args = argv + optind;
    o->nargs = argc - optind;
    return true;
}

int applet_print_tpm_hash(const struct applet_tpm_opts *o)
{
    _cleanup_tpm_ struct tpm *tpm = NULL;
    char hex[2 * SHA256_LEN + 1];

    if (tpm_open(o->device, o->timeout_ms, &tpm) < 0 || tpm_hash(tpm, hex) < 0)
        return EXIT_RUNTIME;
    fputs(hex, stdout);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
}
