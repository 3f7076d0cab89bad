/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Entry points of the applets (main.c holds the table) and helpers they share (common.c). */
#ifndef KKMS_APPLETS_H
#define KKMS_APPLETS_H

#include <stdbool.h>
#include <stddef.h>
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

/* ---- option tables: one row per option, parsed (and its errors worded) by applet_parse ---- */

enum applet_opt_type {
    APPLET_FLAG,    /* no value: the bool at .off becomes true */
    APPLET_STRING,  /* the const char * at .off points at the value */
    APPLET_SECONDS, /* a positive number of seconds: int64_t milliseconds at .off */
    APPLET_U32,     /* a number from .min to .max (0x... too): uint32_t at .off; .what words the range */
    APPLET_LIST,    /* repeatable: appended to the const char *[.max] at .off, its size_t count at .count_off */
    APPLET_CALL,    /* .call(target, flag, value) */
    APPLET_ACTION,  /* no value: .call(target, flag, NULL) */
};

struct applet_opt {
    const char *name; /* the long name, without the dashes */
    char short_name;  /* 0: none */
    enum applet_opt_type type;
    size_t off, count_off; /* where the value goes, from the start of the parse target */
    uint32_t min, max;     /* APPLET_U32: the range; APPLET_LIST: how many at most */
    const char *what;      /* APPLET_U32: what is expected, e.g. "a port number from 1 to 65535" */
    /* 0, or an exit code to stop with (the handler reported why) */
    int (*call)(void *target, const char *flag, const char *value);
};

/* The rows of the options every TPM-using applet takes (--tpm-device, --tpm-timeout, --debug), into
 * the struct applet_tpm_opts at offset base of the parse target. */
#define APPLET_TPM_OPTIONS(base)                                                                                       \
    {.name = "tpm-device", .type = APPLET_STRING, .off = (base) + offsetof(struct applet_tpm_opts, device)},           \
        {.name = "tpm-timeout", .type = APPLET_SECONDS, .off = (base) + offsetof(struct applet_tpm_opts, timeout_ms)}, \
    {                                                                                                                  \
        .name = "debug", .type = APPLET_ACTION, .call = applet_opt_debug                                               \
    }
/* --debug: say more on stderr. */
int applet_opt_debug(void *target, const char *flag, const char *value);

/* What applet_parse parses: the rows (and --help, -h, which print usage and exit 0). */
struct applet_cmd {
    const char *prefix; /* names the command in messages ("enroll"), or NULL */
    const char *usage;
    const struct applet_opt *opts;
    size_t n_opts;
    bool long_only;   /* -flag and -flag=value too (Go's flag package) */
    bool stop_at_arg; /* the options end at the first argument (a command word follows) */
};
#define APPLET_N(table) (sizeof(table) / sizeof((table)[0]))

/* Parses argv[1..] into target. true: *args, *nargs are the positional arguments. false: return
 * *exit_code: 0 after --help, 2 for bad usage (one line naming the flag), or a handler's code. */
bool applet_parse(const struct applet_cmd *cmd, int argc, char **argv, void *target, char ***args, int *nargs,
                  int *exit_code);

/* Checks the count of positional arguments (min..max; max < 0: no limit); else one line, "PREFIX:
 * expected WANT" or "PREFIX: unexpected argument X", and false (exit 2). */
bool applet_check_args(const char *prefix, char **args, int nargs, int min, int max, const char *want);

/* The index in argv of the first argument that is neither an option of cmd nor an option's value;
 * argc when there is none. */
int applet_first_arg(const struct applet_cmd *cmd, int argc, char **argv);

/* ADDR:PORT (also [IPV6]:PORT, :PORT for any address) given to flag: the address into host
 * (empty: any), the port into *port; -EINVAL (reported). */
int applet_parse_listen(const char *flag, const char *value, char *host, size_t host_size, uint16_t *port);

/* The options every TPM-using applet takes: --tpm-device, --tpm-timeout, --debug, --help. */
struct applet_tpm_opts {
    const char *device; /* NULL: the default devices */
    int64_t timeout_ms; /* 0: the default */
    char **args;        /* what follows the options */
    int nargs;
};

/* Parses only those options (and --help), up to the first argument; false means "stop now and
 * exit with *exit_code" (--help or bad usage, already reported). */
bool applet_tpm_options(int argc, char **argv, const char *usage, struct applet_tpm_opts *o, int *exit_code);

/* Opens the TPM and prints its hash (64 hex, no newline); returns the exit code. */
int applet_print_tpm_hash(const struct applet_tpm_opts *o);

#endif
