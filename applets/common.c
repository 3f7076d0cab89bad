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

int applet_opt_debug(void *target, const char *flag, const char *value)
{
    (void)target, (void)flag, (void)value;
    log_set_level(LOG_DEBUG);
    return 0;
}

int applet_parse_listen(const char *flag, const char *value, char *host, size_t host_size, uint16_t *port)
{
    const char *colon = strrchr(value, ':');
    const char *h = value;
    uint32_t p;
    size_t hlen;

    if (!colon || parse_u32(colon + 1, 65535, &p) < 0)
        return log_error_errno(-EINVAL, "%s %s: expected ADDR:PORT, e.g. 0.0.0.0:8082 or :8082", flag, value);
    hlen = (size_t)(colon - value);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') { /* [::1]:8082 */
        h++;
        hlen -= 2;
    }
    if (hlen >= host_size)
        return log_error_errno(-EINVAL, "%s %s: address too long", flag, value);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* getopt codes of table rows: above any short option character. */
#define OPT_CODE 0x1000

static const struct applet_opt *row_of(const struct applet_cmd *cmd, int code)
{
    if (code < OPT_CODE || (size_t)(code - OPT_CODE) >= cmd->n_opts)
        return NULL;
    return &cmd->opts[code - OPT_CODE];
}

static bool takes_value(const struct applet_opt *o) { return o->type != APPLET_FLAG && o->type != APPLET_ACTION; }

/* Stores value for row o (given as flag); 0, or the exit code (reported). */
static int apply(const struct applet_opt *o, const char *flag, const char *value, void *target)
{
    char *at = (char *)target + o->off;
    uint32_t n;

    switch (o->type) {
    case APPLET_FLAG: *(bool *)at = true; return 0;
    case APPLET_STRING: *(const char **)at = value; return 0;
    case APPLET_SECONDS: return applet_parse_seconds(flag, value, (int64_t *)at) < 0 ? EXIT_USAGE : 0;
    case APPLET_U32:
        if (parse_u32(value, o->max, &n) < 0 || n < o->min) {
            log_error("%s %s: expected %s", flag, value, o->what);
            return EXIT_USAGE;
        }
        *(uint32_t *)at = n;
        return 0;
    case APPLET_LIST: {
        size_t *count = (size_t *)((char *)target + o->count_off);
        if (!*value) {
            log_error("%s: expected a value, not an empty string", flag);
            return EXIT_USAGE;
        }
        if (*count >= o->max) {
            log_error("%s %s: given more than %u times", flag, value, (unsigned)o->max);
            return EXIT_USAGE;
        }
        ((const char **)at)[(*count)++] = value;
        return 0;
    }
    case APPLET_CALL:
    case APPLET_ACTION: return o->call(target, flag, value);
    }
    return EXIT_USAGE;
}

bool applet_parse(const struct applet_cmd *cmd, int argc, char **argv, void *target, char ***args, int *nargs,
                  int *exit_code)
{
    _cleanup_free_ struct option *lopts = xcalloc(cmd->n_opts + 2, sizeof(*lopts));
    _cleanup_free_ char *shorts = xcalloc(2 * cmd->n_opts + 8, 1);
    size_t ns = 0;
    int c;

    if (cmd->stop_at_arg)
        shorts[ns++] = '+';
    shorts[ns++] = ':'; /* a missing value is told apart from an unknown option */
    shorts[ns++] = 'h';
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const struct applet_opt *o = &cmd->opts[i];
        lopts[i] = (struct option){o->name, takes_value(o) ? required_argument : no_argument, NULL, OPT_CODE + (int)i};
        if (o->short_name) {
            shorts[ns++] = o->short_name;
            if (takes_value(o))
                shorts[ns++] = ':';
        }
    }
    lopts[cmd->n_opts] = (struct option){"help", no_argument, NULL, 'h'};
    opterr = 0;
    optind = 1;
    for (;;) {
        const struct applet_opt *o = NULL;
        char flag[80];
        int code;

        optopt = 0;
        c = cmd->long_only ? getopt_long_only(argc, argv, shorts, lopts, NULL)
                           : getopt_long(argc, argv, shorts, lopts, NULL);
        if (c == -1)
            break;
        if (c == 'h') {
            *exit_code = applet_usage(cmd->usage, EXIT_OK);
            return false;
        }
        for (size_t i = 0; !o && c < OPT_CODE && i < cmd->n_opts; i++)
            if (c != '?' && c != ':' && cmd->opts[i].short_name == c)
                o = &cmd->opts[i];
        if (c == '?' || c == ':') { /* the flag as written, or -X for a short one in a cluster */
            const struct applet_opt *known = row_of(cmd, optopt);
            const char *arg = argv[optind - 1 < argc ? optind - 1 : argc - 1];
            char shortf[3] = {'-', (char)optopt, '\0'};
            const char *as_written =
                optopt > 0 && optopt < OPT_CODE && !(arg[0] == '-' && arg[1] == '-') ? shortf : arg;
            if (c == ':')
                log_error("%s%s%s: missing value (see --help)", cmd->prefix ? cmd->prefix : "", cmd->prefix ? " " : "",
                          as_written);
            else if (known && !takes_value(known))
                log_error("%s%s%s: takes no value (see --help)", cmd->prefix ? cmd->prefix : "", cmd->prefix ? " " : "",
                          as_written);
            else
                log_error("%s%s%s: unknown option (see --help)", cmd->prefix ? cmd->prefix : "", cmd->prefix ? " " : "",
                          as_written);
            *exit_code = EXIT_USAGE;
            return false;
        }
        if (!o)
            o = row_of(cmd, c);
        if (!o) {
            *exit_code = EXIT_USAGE;
            return false;
        }
        if (o->short_name && c == o->short_name)
            snprintf(flag, sizeof(flag), "-%c", o->short_name);
        else
            snprintf(flag, sizeof(flag), "--%s", o->name);
        code = apply(o, flag, optarg, target);
        if (code != 0) {
            *exit_code = code;
            return false;
        }
    }
    *args = argv + optind;
    *nargs = argc - optind;
    return true;
}

bool applet_check_args(const char *prefix, char **args, int nargs, int min, int max, const char *want)
{
    const char *p = prefix ? prefix : "", *sep = prefix ? ": " : "";

    if (max >= 0 && nargs > max && (min != max || max == 0)) {
        log_error("%s%sunexpected argument %s (see --help)", p, sep, args[max]);
        return false;
    }
    if (nargs < min || (max >= 0 && nargs > max)) {
        log_error("%s%sexpected %s (see --help)", p, sep, want);
        return false;
    }
    return true;
}

int applet_first_arg(const struct applet_cmd *cmd, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool value_follows = false;

        if (!strcmp(a, "--"))
            return i + 1;
        if (a[0] != '-' || !a[1])
            return i;
        a += a[1] == '-' ? 2 : 1;
        for (size_t j = 0; j < cmd->n_opts; j++)
            if (!strcmp(a, cmd->opts[j].name) || (!a[1] && a[0] == cmd->opts[j].short_name))
                value_follows = takes_value(&cmd->opts[j]);
        if (value_follows)
            i++;
    }
    return argc;
}

bool applet_tpm_options(int argc, char **argv, const char *usage, struct applet_tpm_opts *o, int *exit_code)
{
    static const struct applet_opt opts[] = {APPLET_TPM_OPTIONS(0)};
    const struct applet_cmd cmd = {.usage = usage, .opts = opts, .n_opts = APPLET_N(opts), .stop_at_arg = true};

    *o = (struct applet_tpm_opts){0};
    return applet_parse(&cmd, argc, argv, o, &o->args, &o->nargs, exit_code);
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
