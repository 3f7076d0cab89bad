/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Entry points of the applets (main.c holds the table) and helpers they share (common.c). */
#ifndef KKMS_APPLETS_H
#define KKMS_APPLETS_H

#include <stdbool.h>
#include <stdint.h>

int tpm_hash_main(int argc, char **argv);
int discovery_challenger_main(int argc, char **argv);
int kcrypt_main(int argc, char **argv);
int challenger_main(int argc, char **argv);
int mdns_responder_main(int argc, char **argv);

/* Parses a positive number of seconds given to flag into milliseconds; -EINVAL (reported). */
int applet_parse_seconds(const char *flag, const char *value, int64_t *out_ms);

/* Prints usage to stdout (--help, exit 0) or stderr (bad usage, exit 2); returns exit_code. */
int applet_usage(const char *usage, int exit_code);

/* The options every TPM-using applet takes: --tpm-device, --tpm-timeout, --debug, --help. */
struct applet_tpm_opts {
    const char *device; /* NULL: the default devices */
    int64_t timeout_ms; /* 0: the default */
    char **args;        /* what follows the options */
    int nargs;
};

/* getopt_long entries and codes for those options, for applets that take more options. */
enum { APPLET_OPT_TPM_DEVICE = 0x1000, APPLET_OPT_TPM_TIMEOUT, APPLET_OPT_DEBUG };
#define APPLET_TPM_LONG_OPTIONS                                           \
    {"tpm-device", required_argument, NULL, APPLET_OPT_TPM_DEVICE},       \
        {"tpm-timeout", required_argument, NULL, APPLET_OPT_TPM_TIMEOUT}, \
    {                                                                     \
        "debug", no_argument, NULL, APPLET_OPT_DEBUG                      \
    }
/* Handles one of those codes; false means "exit with *exit_code" (already reported). */
bool applet_tpm_option(int c, const char *arg, struct applet_tpm_opts *o, int *exit_code);

/* Parses only those options (and --help); false means "stop now and exit with *exit_code" (--help or bad usage,
 * already reported). */
bool applet_tpm_options(int argc, char **argv, const char *usage, struct applet_tpm_opts *o, int *exit_code);

/* Opens the TPM and prints its hash (64 hex, no newline); returns the exit code. */
int applet_print_tpm_hash(const struct applet_tpm_opts *o);

#endif
