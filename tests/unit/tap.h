/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* A minimal TAP producer for the C unit tests (meson: protocol 'tap'). */
#ifndef KKMS_TAP_H
#define KKMS_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int tap_n, tap_failed;

#define CHECK(cond, ...)                               \
    do {                                               \
        int tap_ok_ = !!(cond);                        \
        tap_n++;                                       \
        if (tap_ok_) {                                 \
            printf("ok %d - ", tap_n);                 \
        } else {                                       \
            tap_failed++;                              \
            printf("not ok %d - ", tap_n);             \
        }                                              \
        printf(__VA_ARGS__);                           \
        printf("%s\n", tap_ok_ ? "" : " (" #cond ")"); \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

/* Path of a file under tests/data (the test runs with KKMS_SOURCE_ROOT set by meson). */
static inline const char *tap_data(const char *name)
{
    static char path[4096];
    const char *root = getenv("KKMS_SOURCE_ROOT");
    snprintf(path, sizeof(path), "%s/tests/data/%s", root ? root : ".", name);
    return path;
}

/* Collects what the code under test logs on stderr between tap_capture_begin() and
 * tap_capture_end(), to check that errors name the file, line or peer. The text returned is
 * static and also copied back to stderr, so it stays visible in the test log. */
static char tap_captured[32768];
static int tap_saved_stderr = -1;
static FILE *tap_capture_file;

static inline void tap_capture_begin(void)
{
    fflush(stderr);
    tap_capture_file = tmpfile();
    tap_saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(tap_capture_file), STDERR_FILENO);
}

static inline const char *tap_capture_end(void)
{
    size_t n;
    fflush(stderr);
    dup2(tap_saved_stderr, STDERR_FILENO);
    close(tap_saved_stderr);
    rewind(tap_capture_file);
    n = fread(tap_captured, 1, sizeof(tap_captured) - 1, tap_capture_file);
    tap_captured[n] = '\0';
    fclose(tap_capture_file);
    fputs(tap_captured, stderr);
    return tap_captured;
}

#endif
