/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files of lib/plugin only. */
#ifndef KKMS_PLUGIN_INTERNAL_H
#define KKMS_PLUGIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

/* Copies text into out (size n) as one printable line: stops at the first newline, turns other
 * control characters into '?', trims trailing blanks, cuts long text with "...". */
void plugin_one_line(const char *text, size_t len, char *out, size_t n);

#endif
