/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Shared by lib/proto's G1 and G3 codecs. */
#ifndef KKMS_PROTO_INTERNAL_H
#define KKMS_PROTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "kjson.h"

/* The writer's text in a malloc'd buffer (owned by the caller), with a trailing newline when
 * asked (Go's json.Encoder writes one, json.Marshal does not); 0 or the writer's error. */
int proto_w_finish(struct kjson_w *w, bool newline, char **out, size_t *out_len);

#endif
