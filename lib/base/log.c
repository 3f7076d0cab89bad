/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base.h"

static const char *program = "kairos-kms";
static enum log_level level = LOG_INFO;
static char last_error[512];
static __thread bool quiet;
static __thread char quiet_last[512];

void log_set_program(const char *name) { program = name; }
const char *log_program(void) { return program; }
void log_set_level(enum log_level l) { level = l; }
enum log_level log_get_level(void) { return level; }

static void vlog(enum log_level l, const char *fmt, va_list ap)
{
    static const char *const tag[] = {"", "warning: ", "", "debug: "};
    char line[1024];
    int n;

    if (l == LOG_ERR) {
        va_list copy;
        va_copy(copy, ap);
        vsnprintf(last_error, sizeof(last_error), fmt, copy);
        va_end(copy);
    }
    if (quiet && l < LOG_DEBUG) {
        va_list copy;
        va_copy(copy, ap);
        vsnprintf(quiet_last, sizeof(quiet_last), fmt, copy);
        va_end(copy);
        l = LOG_DEBUG;
    }
    if (l > level)
        return;
    /* One write per message, so lines from concurrent processes do not interleave. */
    n = snprintf(line, sizeof(line), "%s: %s", program, tag[l]);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    (void)fd_write_all(STDERR_FILENO, line, (size_t)n);
}

const char *log_last_error(void) { return last_error; }

bool log_set_quiet(bool on)
{
    bool was = quiet;
    quiet = on;
    if (on && !was)
        quiet_last[0] = 0;
    return was;
}

const char *log_quiet_last(void) { return quiet_last; }

void log_msg(enum log_level l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(l, fmt, ap);
    va_end(ap);
}

int log_level_errno(enum log_level level, int r, const char *fmt, ...)
{
    va_list ap;
    /* %m in fmt names r, not whatever the last system call left in errno (systemd's
     * log_full_errno does the same). */
    errno = r < 0 ? -r : r;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
    return r < 0 ? r : -r;
}
