/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/json: the bytes as a JSON document (small limits, so depth and token
 * bounds are hit), every value visited through every accessor, and the writer checked against
 * the reader: re-encoding what was read must give text that reads back to the same encoding.
 *   ./fuzz_json -max_total_time=60 tests/fuzz/corpus/json */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "kjson.h"

static const char *const keys[] = {"state", "data", "error", "log", "partition", "name", "size", ""};

/* Visits v and everything under it; writes it to w as it goes. */
static void visit(const struct kjson_doc *d, int v, struct kjson_w *w)
{
    char *s = NULL;
    size_t len = 0;
    struct secret *sec = NULL;
    int64_t i64;
    uint64_t u64;
    bool b;
    const char *raw;
    size_t raw_len;

    if (kjson_raw(d, v, &raw, &raw_len) < 0)
        abort(); /* every index the iterators hand out is a value */
    switch (kjson_type(d, v)) {
    case KJSON_OBJECT:
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            int a = kjson_get(d, v, keys[k], 0), f = kjson_get(d, v, keys[k], KJSON_FOLD);
            if (a >= 0 && f < 0)
                abort(); /* an exact match is also a folded match */
            (void)kjson_get_str(d, v, keys[k], KJSON_FOLD, &s);
            free(s);
            s = NULL;
            (void)kjson_get_uint64(d, v, keys[k], KJSON_FOLD, &u64);
        }
        kjson_w_obj_begin(w);
        for (int k = kjson_next(d, v, -1); k >= 0; k = kjson_next(d, v, k)) {
            if (kjson_type(d, k) != KJSON_STRING || kjson_str(d, k, &s, &len) < 0)
                abort();
            /* Keys with U+0000 cannot go through kjson_w_key; keep the writer's error path busy
             * instead by skipping them (the comparison below then covers the rest). */
            if (!memchr(s, 0, len)) {
                kjson_w_key(w, s);
                visit(d, kjson_member_value(k), w);
            }
            free(s);
            s = NULL;
        }
        kjson_w_obj_end(w);
        break;
    case KJSON_ARRAY: {
        size_t n = kjson_count(d, v), seen = 0;
        if (n && kjson_index(d, v, n - 1) < 0)
            abort();
        kjson_w_arr_begin(w);
        for (int e = kjson_next(d, v, -1); e >= 0; e = kjson_next(d, v, e), seen++)
            visit(d, e, w);
        kjson_w_arr_end(w);
        if (seen != n)
            abort();
        break;
    }
    case KJSON_STRING:
        if (kjson_str(d, v, &s, &len) < 0 || kjson_str_secret(d, v, &sec) < 0)
            abort();
        if (sec->len != len || memcmp(sec->data, s, len))
            abort(); /* both decoders agree */
        if (!memchr(s, 0, len) && (!kjson_str_equal(d, v, s, 0) || !kjson_str_equal(d, v, s, KJSON_FOLD)))
            abort(); /* a string equals its own decoding */
        kjson_w_strn(w, s, len);
        free(s);
        secret_free(sec);
        break;
    case KJSON_NUMBER:
        (void)kjson_int64(d, v, &i64);
        (void)kjson_uint64(d, v, &u64);
        kjson_w_raw(w, raw, raw_len);
        break;
    case KJSON_BOOL:
        if (kjson_bool(d, v, &b) < 0)
            abort();
        kjson_w_bool(w, b);
        break;
    case KJSON_NULL: kjson_w_null(w); break;
    default: abort();
    }
}

/* Encodes a parse of text; NULL when it does not parse. */
static char *reencode(const char *text, size_t len, const struct kjson_limits *lim)
{
    struct kjson_doc *d = NULL;
    struct kjson_error err;
    struct kjson_w *w;
    const char *out;
    char *copy = NULL;

    if (kjson_parse(text, len, lim, &d, &err) < 0) {
        if (!err.msg || err.offset > len)
            abort();
        return NULL;
    }
    w = kjson_w_new();
    visit(d, KJSON_ROOT, w);
    if (kjson_w_result(w, &out, NULL) == 0)
        copy = strdup(out);
    kjson_w_free(w);
    kjson_free(d);
    return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct kjson_limits lim = {.max_bytes = 1 << 16, .max_tokens = 512, .max_depth = 24};
    char *once, *twice;

    once = reencode((const char *)data, size, &lim);
    if (!once)
        return 0;
    /* The writer's output is JSON the reader accepts, and encoding is idempotent. */
    twice = reencode(once, strlen(once), NULL);
    if (!twice || strcmp(once, twice))
        abort();
    free(once);
    free(twice);
    return 0;
}
