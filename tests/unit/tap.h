/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* A minimal TAP producer for the C unit tests (meson: protocol 'tap'). */
#ifndef KKMS_TAP_H
#define KKMS_TAP_H

#include <stdio.h>

static int tap_n, tap_failed;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        int tap_ok_ = !!(cond);                                                           \
        tap_n++;                                                                          \
        if (tap_ok_) {                                                                     \
            printf("ok %d - ", tap_n);                                                    \
        } else {                                                                          \
            tap_failed++;                                                                 \
            printf("not ok %d - ", tap_n);                                                \
        }                                                                                 \
        printf(__VA_ARGS__);                                                              \
        printf("%s\n", tap_ok_ ? "" : " (" #cond ")");                                    \
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

#endif
