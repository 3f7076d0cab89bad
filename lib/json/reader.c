/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The reader: validated text -> jsmn tokens -> typed accessors. Strings are decoded the way Go's
 * encoding/json decodes them, and keys are matched the way it fills struct fields. */
#include <string.h>

/* jsmn 1.1.0 is header-only: JSMN_STATIC makes its functions static to this file, which is the
 * only one in the project that includes it (docs/README.md §3). Non-strict mode is fine: the input
 * has already passed kjson_validate, which is stricter than JSMN_STRICT. */
#define JSMN_STATIC
#include <jsmn.h>

#include "kjson_internal.h"

struct kjson_doc {
    const char *buf;
    unsigned ntok;
    jsmntok_t *tok;
    int *end; /* end[i]: index just after the subtree of token i, for O(1) sibling steps */
};

static const struct kjson_limits default_limits = {
    .max_bytes = KJSON_MAX_BYTES,
    .max_tokens = KJSON_MAX_TOKENS,
    .max_depth = KJSON_MAX_DEPTH,
};

int kjson_parse(const char *buf, size_t len, const struct kjson_limits *lim, struct kjson_doc **out,
                struct kjson_error *err)
{
    struct kjson_doc *d;
    jsmn_parser parser;
    unsigned ntok = 0;
    int r;

    *out = NULL;
    if (!lim)
        lim = &default_limits;
    /* jsmn keeps offsets in int. */
    if (len > INT32_MAX) {
        if (err)
            *err = (struct kjson_error){"document too large", 0};
        return -E2BIG;
    }
    r = kjson_validate(buf, len, lim, &ntok, err);
    if (r < 0)
        return r;

    d = xcalloc(1, sizeof(*d));
    d->buf = buf;
    d->ntok = ntok;
    d->tok = xcalloc(ntok, sizeof(*d->tok));
    d->end = xcalloc(ntok, sizeof(*d->end));
    jsmn_init(&parser);
    r = jsmn_parse(&parser, buf, len, d->tok, ntok);
    if (r < 0 || (unsigned)r != ntok) {
        /* Cannot happen for validated input; refuse rather than trust a half-built tree. */
        kjson_free(d);
        if (err)
            *err = (struct kjson_error){"tokenizer disagrees with validator", 0};
        return -EINVAL;
    }
    /* Children follow their parent in jsmn's array, so walking backwards sees every child's end
     * before its parent needs it. A key has size 1: its subtree is the key and its value. */
    for (int i = (int)ntok - 1; i >= 0; i--) {
        int j = i + 1;
        for (int k = 0; k < d->tok[i].size; k++)
            j = d->end[j];
        d->end[i] = j;
    }
    *out = d;
    return 0;
}

void kjson_free(struct kjson_doc *d)
{
    if (!d)
        return;
    free(d->tok);
    free(d->end);
    free(d);
}

static const jsmntok_t *tok(const struct kjson_doc *d, int v)
{
    if (!d || v < 0 || (unsigned)v >= d->ntok)
        return NULL;
    return &d->tok[v];
}

enum kjson_type kjson_type(const struct kjson_doc *d, int v)
{
    const jsmntok_t *t = tok(d, v);
    if (!t)
        return KJSON_NONE;
    switch (t->type) {
    case JSMN_OBJECT: return KJSON_OBJECT;
    case JSMN_ARRAY: return KJSON_ARRAY;
    case JSMN_STRING: return KJSON_STRING;
    case JSMN_PRIMITIVE:
        switch (d->buf[t->start]) {
        case 't':
        case 'f': return KJSON_BOOL;
        case 'n': return KJSON_NULL;
        default: return KJSON_NUMBER;
        }
    default: return KJSON_NONE;
    }
}

size_t kjson_count(const struct kjson_doc *d, int v)
{
    enum kjson_type t = kjson_type(d, v);
    return t == KJSON_OBJECT || t == KJSON_ARRAY ? (size_t)d->tok[v].size : 0;
}

int kjson_next(const struct kjson_doc *d, int container, int prev)
{
    enum kjson_type t = kjson_type(d, container);
    int j;

    if (t != KJSON_OBJECT && t != KJSON_ARRAY)
        return -EINVAL;
    if (prev < 0)
        j = container + 1;
    else if (prev > container && prev < d->end[container])
        j = d->end[prev];
    else
        return -EINVAL;
    return j < d->end[container] ? j : -ENOENT;
}

int kjson_index(const struct kjson_doc *d, int arr, size_t i)
{
    int v = -1;
    if (kjson_type(d, arr) != KJSON_ARRAY)
        return -EINVAL;
    if (i >= (size_t)d->tok[arr].size)
        return -ENOENT;
    for (size_t k = 0; k <= i; k++)
        v = kjson_next(d, arr, v);
    return v;
}

/* ---- strings ---- */

static uint32_t hex4(const char *s)
{
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        r = r << 4 | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return r;
}

size_t kjson_unescape(const char *s, size_t n, uint8_t *dst)
{
    size_t i = 0, w = 0;
    uint8_t rune[4];

#define EMIT(bytes, len)                     \
    do {                                     \
        if (dst)                             \
            memcpy(dst + w, (bytes), (len)); \
        w += (len);                          \
    } while (0)

    while (i < n) {
        uint8_t c = (uint8_t)s[i];
        uint32_t r;

        if (c == '\\') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *e = strchr(from, s[i + 1]);
            if (s[i + 1] != 'u' && e) {
                EMIT(&to[e - from], 1);
                i += 2;
                continue;
            }
            /* \uXXXX; a surrogate pair makes one rune, a lone surrogate is U+FFFD (as in Go). */
            r = hex4(s + i + 2);
            i += 6;
            if (r >= 0xD800 && r < 0xE000) {
                uint32_t lo = 0;
                if (r < 0xDC00 && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u')
                    lo = hex4(s + i + 2);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    r = 0x10000 + ((r - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else {
                    r = UTF8_REPLACEMENT;
                }
            }
            EMIT(rune, utf8_encode(r, rune));
        } else if (c < 0x80) {
            /* A run of plain ASCII at once (base64 fields are nothing else). */
            size_t j = i + 1;
            while (j < n && (uint8_t)s[j] < 0x80 && s[j] != '\\')
                j++;
            EMIT(s + i, j - i);
            i = j;
        } else {
            size_t len = utf8_decode((const uint8_t *)s + i, n - i, &r);
            if (len) {
                EMIT(s + i, len);
                i += len;
            } else {
                EMIT(rune, utf8_encode(UTF8_REPLACEMENT, rune));
                i++;
            }
        }
    }
#undef EMIT
    return w;
}

static int str_span(const struct kjson_doc *d, int v, const char **p, size_t *n)
{
    const jsmntok_t *t = tok(d, v);
    if (!t || t->type != JSMN_STRING)
        return -EINVAL;
    *p = d->buf + t->start;
    *n = (size_t)(t->end - t->start);
    return 0;
}

int kjson_str(const struct kjson_doc *d, int v, char **out, size_t *len)
{
    const char *p;
    size_t n, dn;
    char *s;
    int r = str_span(d, v, &p, &n);

    if (r < 0)
        return r;
    dn = kjson_unescape(p, n, NULL);
    s = xmalloc(dn + 1);
    kjson_unescape(p, n, (uint8_t *)s);
    s[dn] = '\0';
    if (!len && memchr(s, 0, dn)) {
        free(s);
        return -EINVAL;
    }
    *out = s;
    if (len)
        *len = dn;
    return 0;
}

int kjson_str_secret(const struct kjson_doc *d, int v, struct secret **out)
{
    const char *p;
    size_t n;
    struct secret *s;
    int r = str_span(d, v, &p, &n);

    if (r < 0)
        return r;
    s = secret_new(kjson_unescape(p, n, NULL));
    s->len = kjson_unescape(p, n, s->data);
    *out = s;
    return 0;
}

/* Go's key folding (encoding/json foldName: ToUpper(ToLower(r))), for the runes that can make
 * two different keys equal to an ASCII field name. Other non-ASCII runes compare exactly. */
static uint32_t fold_rune(uint32_t r)
{
    if (r >= 'a' && r <= 'z')
        return r - 'a' + 'A';
    switch (r) {
    case 0x212A: /* KELVIN SIGN */ return 'K';
    case 0x017F: /* LATIN SMALL LETTER LONG S */ return 'S';
    case 0x0130: /* LATIN CAPITAL LETTER I WITH DOT ABOVE */
    case 0x0131: /* LATIN SMALL LETTER DOTLESS I */ return 'I';
    default: return r;
    }
}

static bool fold_equal(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t i = 0, j = 0;
    while (i < an && j < bn) {
        uint32_t ra = 0, rb = 0;
        size_t la = utf8_decode(a + i, an - i, &ra), lb = utf8_decode(b + j, bn - j, &rb);
        if (!la)
            ra = UTF8_REPLACEMENT, la = 1;
        if (!lb)
            rb = UTF8_REPLACEMENT, lb = 1;
        if (fold_rune(ra) != fold_rune(rb))
            return false;
        i += la;
        j += lb;
    }
    return i == an && j == bn;
}

/* Compares the decoded string token v with n bytes of s. */
static bool str_matches(const struct kjson_doc *d, int v, const char *s, size_t n, unsigned flags)
{
    const char *p;
    size_t pn, dn;
    uint8_t small[256];
    uint8_t *buf;
    bool eq;

    if (str_span(d, v, &p, &pn) < 0)
        return false;
    /* Fast path: no escapes and plain ASCII, so the raw bytes are the decoded bytes. */
    if (!memchr(p, '\\', pn)) {
        bool ascii = true;
        for (size_t i = 0; i < pn && ascii; i++)
            ascii = (uint8_t)p[i] < 0x80;
        if (ascii) {
            if (!(flags & KJSON_FOLD))
                return pn == n && !memcmp(p, s, n);
            return fold_equal((const uint8_t *)p, pn, (const uint8_t *)s, n);
        }
    }
    dn = kjson_unescape(p, pn, NULL);
    if (!(flags & KJSON_FOLD) && dn != n)
        return false;
    buf = dn <= sizeof(small) ? small : xmalloc(dn);
    kjson_unescape(p, pn, buf);
    eq = flags & KJSON_FOLD ? fold_equal(buf, dn, (const uint8_t *)s, n) : !memcmp(buf, s, n);
    if (buf != small)
        free(buf);
    return eq;
}

bool kjson_str_equal(const struct kjson_doc *d, int v, const char *s, unsigned flags)
{
    return str_matches(d, v, s, strlen(s), flags);
}

int kjson_get(const struct kjson_doc *d, int obj, const char *key, unsigned flags)
{
    size_t n = strlen(key);
    int found = -ENOENT;

    if (kjson_type(d, obj) != KJSON_OBJECT)
        return -EINVAL;
    for (int k = kjson_next(d, obj, -1); k >= 0; k = kjson_next(d, obj, k))
        if (str_matches(d, k, key, n, flags))
            found = kjson_member_value(k); /* keep going: the last one wins, as in Go */
    return found;
}

int kjson_raw(const struct kjson_doc *d, int v, const char **p, size_t *len)
{
    const jsmntok_t *t = tok(d, v);
    int quote;

    if (!t)
        return -EINVAL;
    quote = t->type == JSMN_STRING;
    *p = d->buf + t->start - quote;
    *len = (size_t)(t->end - t->start + 2 * quote);
    return 0;
}

/* ---- numbers and booleans ---- */

static int integer(const struct kjson_doc *d, int v, bool *neg, uint64_t *mag)
{
    const jsmntok_t *t = tok(d, v);
    const char *p;
    uint64_t m = 0;
    int i, end;

    if (kjson_type(d, v) != KJSON_NUMBER)
        return -EINVAL;
    p = d->buf;
    i = t->start;
    end = t->end;
    *neg = p[i] == '-';
    if (*neg)
        i++;
    for (; i < end; i++) {
        unsigned digit;
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL; /* fraction or exponent: Go refuses these for integer fields */
        digit = (unsigned)(p[i] - '0');
        if (m > (UINT64_MAX - digit) / 10)
            return -ERANGE;
        m = m * 10 + digit;
    }
    *mag = m;
    return 0;
}

int kjson_int64(const struct kjson_doc *d, int v, int64_t *out)
{
    bool neg;
    uint64_t m;
    int r = integer(d, v, &neg, &m);

    if (r < 0)
        return r;
    if (neg) {
        if (m > (uint64_t)INT64_MAX + 1)
            return -ERANGE;
        *out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX)
            return -ERANGE;
        *out = (int64_t)m;
    }
    return 0;
}

int kjson_uint64(const struct kjson_doc *d, int v, uint64_t *out)
{
    bool neg;
    uint64_t m;
    int r = integer(d, v, &neg, &m);

    if (r < 0)
        return r;
    if (neg)
        return -ERANGE;
    *out = m;
    return 0;
}

int kjson_bool(const struct kjson_doc *d, int v, bool *out)
{
    if (kjson_type(d, v) != KJSON_BOOL)
        return -EINVAL;
    *out = d->buf[d->tok[v].start] == 't';
    return 0;
}

/* ---- struct-field style member access ---- */

/* The member's index, or -ENOENT when it is missing or null (Go leaves the field alone). */
static int member(const struct kjson_doc *d, int obj, const char *key, unsigned flags)
{
    int v = kjson_get(d, obj, key, flags);
    if (v >= 0 && kjson_type(d, v) == KJSON_NULL)
        return -ENOENT;
    return v;
}

int kjson_get_str(const struct kjson_doc *d, int obj, const char *key, unsigned flags, char **out)
{
    int r, v = member(d, obj, key, flags);

    if (v == -ENOENT) {
        *out = xstrdup("");
        return 0;
    }
    if (v < 0)
        return v;
    r = kjson_str(d, v, out, NULL);
    return r < 0 ? r : 1;
}

int kjson_get_secret(const struct kjson_doc *d, int obj, const char *key, unsigned flags, struct secret **out)
{
    int r, v = member(d, obj, key, flags);

    if (v == -ENOENT) {
        *out = secret_new(0);
        return 0;
    }
    if (v < 0)
        return v;
    r = kjson_str_secret(d, v, out);
    return r < 0 ? r : 1;
}

int kjson_get_uint64(const struct kjson_doc *d, int obj, const char *key, unsigned flags, uint64_t *out)
{
    int r, v = member(d, obj, key, flags);

    *out = 0;
    if (v == -ENOENT)
        return 0;
    if (v < 0)
        return v;
    r = kjson_uint64(d, v, out);
    return r < 0 ? r : 1;
}

int kjson_get_int64(const struct kjson_doc *d, int obj, const char *key, unsigned flags, int64_t *out)
{
    int r, v = member(d, obj, key, flags);

    *out = 0;
    if (v == -ENOENT)
        return 0;
    if (v < 0)
        return v;
    r = kjson_int64(d, v, out);
    return r < 0 ? r : 1;
}

int kjson_get_bool(const struct kjson_doc *d, int obj, const char *key, unsigned flags, bool *out)
{
    int r, v = member(d, obj, key, flags);

    *out = false;
    if (v == -ENOENT)
        return 0;
    if (v < 0)
        return v;
    r = kjson_bool(d, v, out);
    return r < 0 ? r : 1;
}
