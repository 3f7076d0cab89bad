/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* A strict, iterative RFC 8259 validator. jsmn is a tokenizer, not a validator: it accepts
 * "[1 2]", "{"a":1,}", "tru" and raw control characters in strings. Every document passes
 * through here first, so what reaches jsmn is well-formed and within the limits, and the token
 * count is known before anything is allocated. Accepts what Go's decoder accepts (bytes >= 0x80
 * inside strings are not checked as UTF-8 there either; they decode to U+FFFD). */
#include <string.h>

#include "kjson_internal.h"

enum state {
    ST_VALUE,          /* a value must come */
    ST_VALUE_OR_CLOSE, /* just after '[' */
    ST_KEY,            /* after ',' in an object */
    ST_KEY_OR_CLOSE,   /* just after '{' */
    ST_COLON,          /* after a key */
    ST_COMMA_OR_CLOSE, /* after a value inside a container */
    ST_DONE,           /* the root value is complete */
};

struct scan {
    const char *p;
    size_t n, i;
    struct kjson_error *err;
};

static int fail(struct scan *s, int r, const char *msg)
{
    if (s->err) {
        s->err->msg = msg;
        s->err->offset = s->i;
    }
    return r;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* What may follow a number or a literal. */
static bool is_delim(char c) { return is_space(c) || c == ',' || c == ']' || c == '}'; }

static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* s->i is on the opening quote; leaves it after the closing one. */
static int scan_string(struct scan *s)
{
    for (s->i++; s->i < s->n; s->i++) {
        unsigned char c = (unsigned char)s->p[s->i];
        if (c == '"') {
            s->i++;
            return 0;
        }
        if (c < 0x20)
            return fail(s, -EINVAL, "control character in string");
        if (c != '\\')
            continue;
        if (++s->i >= s->n)
            break;
        switch (s->p[s->i]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't': break;
        case 'u':
            for (int k = 0; k < 4; k++)
                if (++s->i >= s->n || !is_hex(s->p[s->i]))
                    return fail(s, -EINVAL, "invalid \\u escape in string");
            break;
        default: return fail(s, -EINVAL, "invalid escape in string");
        }
    }
    return fail(s, -EINVAL, "unterminated string");
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(struct scan *s)
{
    const char *p = s->p;
    size_t n = s->n;

    if (s->i < n && p[s->i] == '-')
        s->i++;
    if (s->i < n && p[s->i] == '0')
        s->i++;
    else if (s->i < n && is_digit(p[s->i]))
        while (s->i < n && is_digit(p[s->i]))
            s->i++;
    else
        return fail(s, -EINVAL, "invalid number");
    if (s->i < n && p[s->i] == '.') {
        s->i++;
        if (s->i >= n || !is_digit(p[s->i]))
            return fail(s, -EINVAL, "invalid number");
        while (s->i < n && is_digit(p[s->i]))
            s->i++;
    }
    if (s->i < n && (p[s->i] == 'e' || p[s->i] == 'E')) {
        s->i++;
        if (s->i < n && (p[s->i] == '+' || p[s->i] == '-'))
            s->i++;
        if (s->i >= n || !is_digit(p[s->i]))
            return fail(s, -EINVAL, "invalid number");
        while (s->i < n && is_digit(p[s->i]))
            s->i++;
    }
    /* A number must end at a delimiter ("01" and "1x" are not numbers). */
    if (s->i < n && !is_delim(p[s->i]))
        return fail(s, -EINVAL, "invalid number");
    return 0;
}

static int scan_literal(struct scan *s, const char *word)
{
    size_t k = strlen(word);
    if (s->n - s->i < k || memcmp(s->p + s->i, word, k))
        return fail(s, -EINVAL, "invalid literal");
    s->i += k;
    if (s->i < s->n && !is_delim(s->p[s->i]))
        return fail(s, -EINVAL, "invalid literal");
    return 0;
}

static int scan_scalar(struct scan *s)
{
    switch (s->p[s->i]) {
    case '"': return scan_string(s);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default:
        if (s->p[s->i] == '-' || is_digit(s->p[s->i]))
            return scan_number(s);
        return fail(s, -EINVAL, "invalid character");
    }
}

int kjson_validate(const char *buf, size_t len, const struct kjson_limits *lim, unsigned *ntokens,
                   struct kjson_error *err)
{
    struct scan s = {.p = buf, .n = len, .i = 0, .err = err};
    char stack[1024]; /* '{' or '[' per open container */
    unsigned depth = 0, tokens = 0;
    unsigned max_depth = lim->max_depth < sizeof(stack) ? lim->max_depth : sizeof(stack);
    enum state st = ST_VALUE;
    int r;

    if (len > lim->max_bytes)
        return fail(&s, -E2BIG, "document too large");
    for (;;) {
        while (s.i < len && is_space(buf[s.i]))
            s.i++;
        if (s.i == len)
            break;
        char c = buf[s.i];

        switch (st) {
        case ST_DONE: return fail(&s, -EINVAL, "data after the top-level value");
        case ST_COLON:
            if (c != ':')
                return fail(&s, -EINVAL, "expected ':' after object key");
            s.i++;
            st = ST_VALUE;
            continue;
        case ST_COMMA_OR_CLOSE:
            if (c == ',') {
                s.i++;
                st = stack[depth - 1] == '{' ? ST_KEY : ST_VALUE;
                continue;
            }
            if (c != (stack[depth - 1] == '{' ? '}' : ']'))
                return fail(&s, -EINVAL, "expected ',' or end of container");
            break; /* close below */
        case ST_KEY_OR_CLOSE:
            if (c == '}')
                break;
            /* fall through */
        case ST_KEY:
            if (c != '"')
                return fail(&s, -EINVAL, "expected string key");
            if (++tokens > lim->max_tokens)
                return fail(&s, -E2BIG, "too many tokens");
            if ((r = scan_string(&s)) < 0)
                return r;
            st = ST_COLON;
            continue;
        case ST_VALUE_OR_CLOSE:
            if (c == ']')
                break;
            /* fall through */
        case ST_VALUE:
            if (++tokens > lim->max_tokens)
                return fail(&s, -E2BIG, "too many tokens");
            if (c == '{' || c == '[') {
                if (depth >= max_depth)
                    return fail(&s, -E2BIG, "nested too deeply");
                stack[depth++] = c;
                s.i++;
                st = c == '{' ? ST_KEY_OR_CLOSE : ST_VALUE_OR_CLOSE;
                continue;
            }
            if ((r = scan_scalar(&s)) < 0)
                return r;
            st = depth ? ST_COMMA_OR_CLOSE : ST_DONE;
            continue;
        }
        /* A closing bracket that matches the innermost container. */
        s.i++;
        depth--;
        st = depth ? ST_COMMA_OR_CLOSE : ST_DONE;
    }
    if (st != ST_DONE)
        return fail(&s, -EINVAL, len ? "unexpected end of input" : "empty input");
    *ntokens = tokens;
    return 0;
}
