/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The writer: compact JSON with Go's string escaping (encoding/json encodeState.string with
 * escapeHTML, as json.Marshal uses), so upstream Go peers see the bytes a Go peer would send. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kjson_internal.h"

struct kjson_w {
    char *buf;
    size_t len, cap;
    int err;
    unsigned depth;
    bool root_done;
    bool after_key;             /* a key was written; its value comes next */
    char open[KJSON_MAX_DEPTH]; /* '{' or '[' per open container */
    bool has_items[KJSON_MAX_DEPTH];
};

struct kjson_w *kjson_w_new(void)
{
    struct kjson_w *w = xcalloc(1, sizeof(*w));
    w->cap = 256;
    w->buf = xmalloc(w->cap);
    w->buf[0] = '\0';
    return w;
}

void kjson_w_free(struct kjson_w *w)
{
    if (!w)
        return;
    secure_wipe(w->buf, w->cap);
    free(w->buf);
    free(w);
}

static void set_err(struct kjson_w *w, int r)
{
    if (!w->err)
        w->err = r;
}

/* Room for n more bytes and a NUL; the old block is wiped (secure_realloc), so no stale copy of
 * a secret is left in freed memory. */
static bool reserve(struct kjson_w *w, size_t n)
{
    size_t cap = w->cap;
    char *nb;

    if (w->err)
        return false;
    if (n > KJSON_W_MAX_BYTES - w->len) {
        set_err(w, -E2BIG);
        return false;
    }
    if (w->len + n + 1 <= w->cap)
        return true;
    while (cap < w->len + n + 1)
        cap *= 2;
    nb = secure_realloc(w->buf, w->cap, w->len, cap);
    if (!nb) {
        set_err(w, -ENOMEM);
        return false;
    }
    w->buf = nb;
    w->cap = cap;
    return true;
}

static void put(struct kjson_w *w, const void *p, size_t n)
{
    if (n == 0 || !reserve(w, n))
        return;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void putc_(struct kjson_w *w, char c) { put(w, &c, 1); }

/* Called before every value: checks it is allowed here and writes the separating comma. */
static bool begin_value(struct kjson_w *w)
{
    if (w->err)
        return false;
    if (w->depth == 0) {
        if (w->root_done) {
            set_err(w, -EINVAL);
            return false;
        }
        w->root_done = true;
        return true;
    }
    if (w->open[w->depth - 1] == '{') {
        if (!w->after_key) {
            set_err(w, -EINVAL); /* a member value needs its key first */
            return false;
        }
        w->after_key = false;
        return true;
    }
    if (w->has_items[w->depth - 1])
        putc_(w, ',');
    w->has_items[w->depth - 1] = true;
    return !w->err;
}

static void open_container(struct kjson_w *w, char c)
{
    if (!begin_value(w))
        return;
    if (w->depth >= KJSON_MAX_DEPTH) {
        set_err(w, -E2BIG);
        return;
    }
    w->open[w->depth] = c;
    w->has_items[w->depth] = false;
    w->depth++;
    putc_(w, c);
}

static void close_container(struct kjson_w *w, char c)
{
    if (w->err)
        return;
    if (w->depth == 0 || w->open[w->depth - 1] != c || w->after_key) {
        set_err(w, -EINVAL);
        return;
    }
    w->depth--;
    putc_(w, c == '{' ? '}' : ']');
}

void kjson_w_obj_begin(struct kjson_w *w) { open_container(w, '{'); }
void kjson_w_obj_end(struct kjson_w *w) { close_container(w, '{'); }
void kjson_w_arr_begin(struct kjson_w *w) { open_container(w, '['); }
void kjson_w_arr_end(struct kjson_w *w) { close_container(w, '['); }

static void put_string(struct kjson_w *w, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0, i = 0;

    putc_(w, '"');
    while (i < n) {
        uint8_t c = s[i];
        char esc[6] = {'\\', 'u', '0', '0', 0, 0};
        size_t esc_len = 2;
        uint32_t r;
        size_t len;

        if (c < 0x80) {
            /* Go's htmlSafeSet: printable ASCII except ", \, <, >, &. */
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                i++;
                continue;
            }
            switch (c) {
            case '"':
            case '\\': esc[1] = (char)c; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            default:
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                esc_len = 6;
            }
            put(w, s + start, i - start);
            put(w, esc, esc_len);
            start = ++i;
            continue;
        }
        len = utf8_decode(s + i, n - i, &r);
        if (len == 0) {
            put(w, s + start, i - start);
            put(w, "\\ufffd", 6);
            start = ++i;
            continue;
        }
        if (r == 0x2028 || r == 0x2029) {
            put(w, s + start, i - start);
            put(w, r == 0x2028 ? "\\u2028" : "\\u2029", 6);
            start = i + len;
        }
        i += len;
    }
    put(w, s + start, n - start);
    putc_(w, '"');
}

void kjson_w_key(struct kjson_w *w, const char *key)
{
    if (w->err)
        return;
    if (w->depth == 0 || w->open[w->depth - 1] != '{' || w->after_key) {
        set_err(w, -EINVAL);
        return;
    }
    if (w->has_items[w->depth - 1])
        putc_(w, ',');
    w->has_items[w->depth - 1] = true;
    put_string(w, (const uint8_t *)key, strlen(key));
    putc_(w, ':');
    w->after_key = true;
}

void kjson_w_strn(struct kjson_w *w, const void *s, size_t n)
{
    if (begin_value(w))
        put_string(w, s ? s : "", s ? n : 0);
}

void kjson_w_str(struct kjson_w *w, const char *s) { kjson_w_strn(w, s ? s : "", s ? strlen(s) : 0); }

void kjson_w_int(struct kjson_w *w, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    if (begin_value(w))
        put(w, num, (size_t)n);
}

void kjson_w_uint(struct kjson_w *w, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, v);
    if (begin_value(w))
        put(w, num, (size_t)n);
}

void kjson_w_bool(struct kjson_w *w, bool v)
{
    if (begin_value(w))
        put(w, v ? "true" : "false", v ? 4 : 5);
}

void kjson_w_null(struct kjson_w *w)
{
    if (begin_value(w))
        put(w, "null", 4);
}

void kjson_w_raw(struct kjson_w *w, const char *json, size_t n)
{
    if (begin_value(w))
        put(w, json, n);
}

void kjson_w_kv_str(struct kjson_w *w, const char *key, const char *s)
{
    kjson_w_key(w, key);
    kjson_w_str(w, s);
}

void kjson_w_kv_int(struct kjson_w *w, const char *key, int64_t v)
{
    kjson_w_key(w, key);
    kjson_w_int(w, v);
}

void kjson_w_kv_uint(struct kjson_w *w, const char *key, uint64_t v)
{
    kjson_w_key(w, key);
    kjson_w_uint(w, v);
}

void kjson_w_kv_bool(struct kjson_w *w, const char *key, bool v)
{
    kjson_w_key(w, key);
    kjson_w_bool(w, v);
}

int kjson_w_result(const struct kjson_w *w, const char **text, size_t *len)
{
    if (w->err)
        return w->err;
    if (!w->root_done || w->depth)
        return -EINVAL;
    *text = w->buf;
    if (len)
        *len = w->len;
    return 0;
}

int kjson_w_result_secret(const struct kjson_w *w, bool newline, struct secret **out)
{
    const char *text;
    size_t len;
    int r = kjson_w_result(w, &text, &len);

    if (r < 0)
        return r;
    *out = secret_new(len + 1);
    memcpy((*out)->data, text, len);
    if (newline)
        (*out)->data[len++] = '\n';
    (*out)->len = len;
    return 0;
}

void kjson_w_kv_b64(struct kjson_w *w, const char *key, const void *data, size_t n, enum base64_variant v)
{
    _cleanup_secret_ struct secret *b64 = base64_encode_secret(data, n, v);
    kjson_w_key(w, key);
    kjson_w_strn(w, b64->data, b64->len);
}
