/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/json: the strict reader, Go-compatible string decoding and key matching, the limits, and a
 * writer whose bytes match what Go's json.Marshal writes. Expected strings come from Go's
 * documented rules; Python's json module is the independent implementation for the cross-check. */
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "kjson.h"
#include "tap.h"

static struct kjson_doc *parse(const char *s)
{
    struct kjson_doc *d = NULL;
    if (kjson_parse(s, strlen(s), NULL, &d, NULL) < 0)
        return NULL;
    return d;
}

static int parse_rc(const char *s, size_t n, const struct kjson_limits *lim)
{
    struct kjson_doc *d = NULL;
    int r = kjson_parse(s, n, lim, &d, NULL);
    kjson_free(d);
    return r;
}

/* Decodes the root string of json into buf (hex) for easy comparison. */
static bool root_string_is(const char *json, const void *want, size_t want_len)
{
    _cleanup_kjson_ struct kjson_doc *d = parse(json);
    _cleanup_free_ char *s = NULL;
    size_t n = 0;
    if (!d || kjson_str(d, KJSON_ROOT, &s, &n) < 0)
        return false;
    return n == want_len && !memcmp(s, want, n);
}

/* A test name may not hold a newline (TAP); show control characters as '?'. */
static const char *shown(const char *s)
{
    static char buf[128];
    size_t i = 0;
    for (; s[i] && i < sizeof(buf) - 1; i++)
        buf[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

static void test_valid_documents(void)
{
    static const char *const ok[] = {
        "{}",
        "[]",
        "  {}  \n",
        "0",
        "-0",
        "1.5e+10",
        "-12.25E-3",
        "\"\"",
        "null",
        "true",
        "false",
        "{\"a\":[1,{\"b\":null},\"c\"],\"d\":{}}",
        "[[[]]]",
        "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
        "{\"k\":\"\xff\xfe raw bytes\"}",
        "\t[1 ,\r\n2 ]",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        CHECK(parse_rc(ok[i], strlen(ok[i]), NULL) == 0, "reader accepts valid JSON %zu: %s", i, shown(ok[i]));
}

static void test_invalid_documents(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "[",
        "]",
        "[1,]",
        "{\"a\":1,}",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\"::1}",
        "{1:2}",
        "{\"a\":}",
        "tru",
        "nul",
        "truex",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "[1]x",
        "{} {}",
        "\"abc",
        "[\"a\x01\"]",
        "'a'",
        "NaN",
        "[1,,2]",
        "{,}",
        "[,]",
        "\"\\x\"",
        "\"\\u12g4\"",
        "\"\\u12\"",
        "\"\\",
        "[1]]",
        "{\"a\":1]",
        "[{]}",
        "\"a\"\"b\"",
        "{\"a\":1 \"b\":2}",
        "[-]",
        "[0x10]",
        "Infinity",
        "\"tab\tinside\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(parse_rc(bad[i], strlen(bad[i]), NULL) == -EINVAL, "reader refuses invalid JSON %zu: %s", i,
              shown(bad[i]));
    CHECK(parse_rc("[1]\0", 4, NULL) == -EINVAL, "reader refuses a NUL byte after the value");
    CHECK(parse_rc("[\"a\0b\"]", 7, NULL) == -EINVAL, "reader refuses a NUL byte inside a string");

    struct kjson_doc *d = (struct kjson_doc *)1;
    struct kjson_error e = {0};
    CHECK(kjson_parse("[1,}", 4, NULL, &d, &e) == -EINVAL && d == NULL && e.msg && e.offset == 3,
          "parse error reports message and offset (%s at %zu) and leaves no document", e.msg ? e.msg : "-", e.offset);
}

static void test_limits(void)
{
    struct kjson_limits lim = {.max_bytes = 10, .max_tokens = 5, .max_depth = 3};
    char deep[2 * KJSON_MAX_DEPTH + 3];

    CHECK(parse_rc("[1,2,3,4]", 9, &lim) == 0, "document within every limit parses");
    CHECK(parse_rc("[1,2,3,4,5]", 11, &lim) == -E2BIG, "document over max_bytes is refused");
    CHECK(parse_rc("[1,2,3,4,5]", 11, &(struct kjson_limits){100, 5, 3}) == -E2BIG,
          "document over max_tokens is refused");
    CHECK(parse_rc("{\"a\":1,\"b\":2}", 13, &(struct kjson_limits){100, 4, 3}) == -E2BIG,
          "object keys count as tokens");
    CHECK(parse_rc("[[[1]]]", 7, &lim) == 0, "nesting at max_depth parses");
    CHECK(parse_rc("[[[[1]]]]", 9, &lim) == -E2BIG, "nesting over max_depth is refused");

    memset(deep, '[', KJSON_MAX_DEPTH);
    memset(deep + KJSON_MAX_DEPTH, ']', KJSON_MAX_DEPTH);
    CHECK(parse_rc(deep, 2 * KJSON_MAX_DEPTH, NULL) == 0, "default depth limit allows %u levels", KJSON_MAX_DEPTH);
    memmove(deep + 1, deep, 2 * KJSON_MAX_DEPTH);
    deep[0] = '[';
    deep[2 * KJSON_MAX_DEPTH + 1] = ']';
    CHECK(parse_rc(deep, 2 * KJSON_MAX_DEPTH + 2, NULL) == -E2BIG, "default depth limit refuses %u levels",
          KJSON_MAX_DEPTH + 1);

    size_t big = KJSON_MAX_BYTES + 1;
    char *huge = xmalloc(big);
    memset(huge, ' ', big);
    huge[0] = '0';
    CHECK(parse_rc(huge, big, NULL) == -E2BIG, "default limit refuses input over 1 MiB");
    CHECK(parse_rc(huge, big - 1, NULL) == 0, "default limit accepts exactly 1 MiB");
    free(huge);

    /* An array of 4095 zeros is 4096 tokens; one more zero is 4097. */
    size_t n = 2 + 2 * 4095;
    char *many = xmalloc(n);
    many[0] = '[';
    for (size_t i = 0; i < 4095; i++) {
        many[1 + 2 * i] = '0';
        many[2 + 2 * i] = ',';
    }
    many[n - 2] = ']';
    CHECK(parse_rc(many, n - 1, NULL) == 0, "default limit accepts 4096 tokens");
    many[n - 2] = ',';
    many[n - 1] = '0';
    CHECK(parse_rc(many, n, NULL) == -E2BIG, "default limit refuses 4097 tokens");
    free(many);
}

static void test_string_decoding(void)
{
    CHECK(root_string_is("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "a\"b\\c/d\b\f\n\r\t", 12), "simple escapes decode");
    CHECK(root_string_is("\"\\u00e9\\u20AC\"", "\xc3\xa9\xe2\x82\xac", 5),
          "\\u escapes decode to UTF-8 (either hex case)");
    CHECK(root_string_is("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4), "a surrogate pair decodes to one 4-byte rune");
    CHECK(root_string_is("\"\\ud83dx\"", "\xef\xbf\xbdx", 4), "a lone high surrogate becomes U+FFFD (Go)");
    CHECK(root_string_is("\"\\ude00\"", "\xef\xbf\xbd", 3), "a lone low surrogate becomes U+FFFD (Go)");
    CHECK(root_string_is("\"\\ud83d\\ud83d\\ude00\"", "\xef\xbf\xbd\xf0\x9f\x98\x80", 7),
          "a high surrogate before a pair gives U+FFFD then the pair");
    CHECK(root_string_is("\"\\ud83d\\u0041\"",
                         "\xef\xbf\xbd"
                         "A",
                         4),
          "a high surrogate before a non-surrogate escape keeps that escape");
    CHECK(root_string_is("\"a\xff"
                         "b\"",
                         "a\xef\xbf\xbd"
                         "b",
                         5),
          "invalid UTF-8 decodes to U+FFFD (Go)");
    CHECK(root_string_is("\"\xc0\xaf\"", "\xef\xbf\xbd\xef\xbf\xbd", 6),
          "an overlong sequence gives one U+FFFD per byte (Go)");
    CHECK(root_string_is("\"\xed\xa0\x80\"", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9),
          "a UTF-8 encoded surrogate gives one U+FFFD per byte (Go)");
    CHECK(root_string_is("\"\xe2\x82\"", "\xef\xbf\xbd\xef\xbf\xbd", 6),
          "a truncated sequence gives one U+FFFD per byte (Go)");
    CHECK(root_string_is("\"\xf0\x9f\x98\x80\"", "\xf0\x9f\x98\x80", 4), "valid raw UTF-8 is kept");
    CHECK(root_string_is("\"nul\\u0000in\"", "nul\0in", 6), "\\u0000 decodes when a length is asked for");

    _cleanup_kjson_ struct kjson_doc *d = parse("[\"nul\\u0000in\", 5]");
    char *s = NULL;
    CHECK(d && kjson_str(d, kjson_index(d, KJSON_ROOT, 0), &s, NULL) == -EINVAL && !s,
          "kjson_str without a length refuses a string holding U+0000");
    CHECK(d && kjson_str(d, kjson_index(d, KJSON_ROOT, 1), &s, NULL) == -EINVAL, "kjson_str refuses a number");

    _cleanup_kjson_ struct kjson_doc *d2 = parse("{\"pw\":\"p\\u00e4ss\\nword\"}");
    _cleanup_secret_ struct secret *sec = NULL;
    CHECK(d2 && kjson_str_secret(d2, kjson_get(d2, KJSON_ROOT, "pw", 0), &sec) == 0 && sec->len == 10 &&
              !memcmp(sec->data, "p\xc3\xa4ss\nword", 10) && sec->data[10] == 0,
          "a string decodes into a secret");

    const char *raw;
    size_t rn;
    CHECK(d2 && kjson_raw(d2, kjson_get(d2, KJSON_ROOT, "pw", 0), &raw, &rn) == 0 && rn == 17 &&
              !memcmp(raw, "\"p\\u00e4ss\\nword\"", 17),
          "kjson_raw gives a string's source text with quotes");
}

static void test_numbers_and_literals(void)
{
    _cleanup_kjson_ struct kjson_doc *d =
        parse("[9223372036854775807,9223372036854775808,-9223372036854775808,-9223372036854775809,"
              "18446744073709551615,18446744073709551616,1.5,1e3,-1,-0,true,false,null,\"7\"]");
    int64_t i = 0;
    uint64_t u = 0;
    bool b = false;

    CHECK(d != NULL, "number array parses");
    if (!d)
        return;
#define AT(k) kjson_index(d, KJSON_ROOT, k)
    CHECK(kjson_int64(d, AT(0), &i) == 0 && i == INT64_MAX, "int64 max reads");
    CHECK(kjson_int64(d, AT(1), &i) == -ERANGE, "int64 max + 1 is out of range");
    CHECK(kjson_int64(d, AT(2), &i) == 0 && i == INT64_MIN, "int64 min reads");
    CHECK(kjson_int64(d, AT(3), &i) == -ERANGE, "int64 min - 1 is out of range");
    CHECK(kjson_uint64(d, AT(4), &u) == 0 && u == UINT64_MAX, "uint64 max reads");
    CHECK(kjson_uint64(d, AT(5), &u) == -ERANGE, "uint64 max + 1 is out of range");
    CHECK(kjson_int64(d, AT(6), &i) == -EINVAL, "a fraction is not an integer (as in Go)");
    CHECK(kjson_uint64(d, AT(7), &u) == -EINVAL, "an exponent is not an integer (as in Go)");
    CHECK(kjson_uint64(d, AT(8), &u) == -ERANGE, "a negative number is out of range for uint64");
    CHECK(kjson_int64(d, AT(9), &i) == 0 && i == 0, "-0 reads as int64 0");
    CHECK(kjson_bool(d, AT(10), &b) == 0 && b, "true reads");
    CHECK(kjson_bool(d, AT(11), &b) == 0 && !b, "false reads");
    CHECK(kjson_type(d, AT(12)) == KJSON_NULL, "null has type null");
    CHECK(kjson_int64(d, AT(13), &i) == -EINVAL, "a string is not a number");
    CHECK(kjson_bool(d, AT(0), &b) == -EINVAL, "a number is not a bool");
    CHECK(kjson_index(d, KJSON_ROOT, 14) == -ENOENT, "index past the end is -ENOENT");
    CHECK(kjson_count(d, KJSON_ROOT) == 14, "count of array elements");
#undef AT
}

static void test_lookup(void)
{
    _cleanup_kjson_ struct kjson_doc *d =
        parse("{\"State\":\"a\",\"data\":\"first\",\"DATA\":\"second\",\"st\\u0061tus\":1,"
              "\"\xe2\x84\xaa"
              "ey\":\"kelvin\",\"\xc5\xbf"
              "ize\":2,\"nested\":{\"x\":[1,{\"y\":true}]},"
              "\"data2\":null}");
    _cleanup_free_ char *s = NULL;
    int v;

    CHECK(d != NULL, "lookup document parses");
    if (!d)
        return;
    CHECK(kjson_get(d, KJSON_ROOT, "state", 0) == -ENOENT, "exact lookup is case-sensitive");
    v = kjson_get(d, KJSON_ROOT, "state", KJSON_FOLD);
    CHECK(v > 0 && kjson_str_equal(d, v, "a", 0), "folded lookup matches State for state");
    v = kjson_get(d, KJSON_ROOT, "data", KJSON_FOLD);
    CHECK(v > 0 && kjson_str_equal(d, v, "second", 0), "folded lookup keeps the last of data/DATA (Go)");
    v = kjson_get(d, KJSON_ROOT, "data", 0);
    CHECK(v > 0 && kjson_str_equal(d, v, "first", 0), "exact lookup ignores DATA");
    CHECK(kjson_get(d, KJSON_ROOT, "status", 0) > 0, "escaped key st\\u0061tus matches status");
    CHECK(kjson_get(d, KJSON_ROOT, "key", KJSON_FOLD) > 0, "KELVIN SIGN folds onto k as in Go's decoder");
    CHECK(kjson_get(d, KJSON_ROOT, "key", 0) == -ENOENT, "KELVIN SIGN does not match k exactly");
    CHECK(kjson_get(d, KJSON_ROOT, "SIZE", KJSON_FOLD) > 0, "LONG S folds onto s as in Go's decoder");
    CHECK(kjson_get(d, KJSON_ROOT, "nope", KJSON_FOLD) == -ENOENT, "a missing key is -ENOENT");
    CHECK(kjson_get(d, kjson_get(d, KJSON_ROOT, "data", 0), "x", 0) == -EINVAL, "lookup in a non-object is -EINVAL");
    v = kjson_get(d, kjson_get(d, KJSON_ROOT, "nested", 0), "x", 0);
    v = kjson_get(d, kjson_index(d, v, 1), "y", 0);
    CHECK(kjson_type(d, v) == KJSON_BOOL, "nested lookups reach a value inside an array");

    CHECK(kjson_get_str(d, KJSON_ROOT, "data2", 0, &s) == 0 && s && !*s,
          "a null member reads as an empty string (Go leaves the field empty)");
    free(s);
    s = NULL;
    CHECK(kjson_get_str(d, KJSON_ROOT, "absent", 0, &s) == 0 && s && !*s, "a missing member reads as an empty string");
    free(s);
    s = NULL;
    CHECK(kjson_get_str(d, KJSON_ROOT, "status", 0, &s) == -EINVAL && !s, "a number member is not read as a string");
    uint64_t u = 9;
    CHECK(kjson_get_uint64(d, KJSON_ROOT, "size", KJSON_FOLD, &u) == 1 && u == 2,
          "kjson_get_uint64 reads a present member");
    bool b = true;
    CHECK(kjson_get_bool(d, KJSON_ROOT, "missing", 0, &b) == 0 && !b, "a missing bool reads false");

    /* Iteration in document order. */
    size_t keys = 0;
    bool order_ok = true;
    static const char *const names[] = {"State",
                                        "data",
                                        "DATA",
                                        "status",
                                        "\xe2\x84\xaa"
                                        "ey",
                                        "\xc5\xbf"
                                        "ize",
                                        "nested",
                                        "data2"};
    for (int k = kjson_next(d, KJSON_ROOT, -1); k >= 0; k = kjson_next(d, KJSON_ROOT, k), keys++)
        order_ok = order_ok && keys < 8 && kjson_str_equal(d, k, names[keys], 0);
    CHECK(keys == 8 && order_ok && kjson_count(d, KJSON_ROOT) == 8,
          "iteration visits every key once, in order, skipping nested values");
}

/* Writer output compared with what Go's json.Marshal writes for the same values (Go docs:
 * "<", ">", "&" become \u003c, \u003e, \u0026; U+2028/9 are escaped; invalid UTF-8 becomes
 * \ufffd; since Go 1.22 \b and \f are short escapes; other control characters are \u00XX). */
static bool writes(const char *in, size_t n, const char *want)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    const char *out;
    kjson_w_strn(w, in, n);
    if (kjson_w_result(w, &out, NULL) < 0)
        return false;
    if (strcmp(out, want))
        printf("# got %s\n# want %s\n", out, want);
    return !strcmp(out, want);
}

static void test_writer_strings(void)
{
    CHECK(writes("<a href=\"x\">&amp;</a>", 21, "\"\\u003ca href=\\\"x\\\"\\u003e\\u0026amp;\\u003c/a\\u003e\""),
          "writer escapes <, >, & and quotes like Go");
    CHECK(writes("\x01\b\f\n\r\t\x1f\x7f/\\", 10, "\"\\u0001\\b\\f\\n\\r\\t\\u001f\x7f/\\\\\""),
          "writer escapes control characters like Go 1.22+ (DEL and / stay raw)");
    CHECK(writes("a\0b", 3, "\"a\\u0000b\""), "writer escapes NUL as \\u0000");
    CHECK(writes("\xe2\x80\xa8|\xe2\x80\xa9", 7, "\"\\u2028|\\u2029\""), "writer escapes U+2028 and U+2029");
    CHECK(writes("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbd", 12,
                 "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbd\""),
          "writer keeps valid UTF-8 raw, U+FFFD included");
    CHECK(writes("a\xff"
                 "b",
                 3, "\"a\\ufffdb\""),
          "writer replaces an invalid byte with \\ufffd");
    CHECK(writes("\xe2\x82", 2, "\"\\ufffd\\ufffd\""), "writer replaces each byte of a truncated rune");
    CHECK(writes("\xc0\xaf", 2, "\"\\ufffd\\ufffd\""), "writer replaces each byte of an overlong form");
    CHECK(writes("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""), "writer replaces an encoded surrogate");
    CHECK(writes("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""), "writer replaces a rune above U+10FFFF");
    CHECK(writes("", 0, "\"\""), "writer writes an empty string");
}

static void test_writer_structure(void)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    const char *out = NULL;
    size_t n = 0;

    kjson_w_obj_begin(w);
    kjson_w_key(w, "a");
    kjson_w_arr_begin(w);
    kjson_w_int(w, INT64_MIN);
    kjson_w_uint(w, UINT64_MAX);
    kjson_w_bool(w, true);
    kjson_w_null(w);
    kjson_w_obj_begin(w);
    kjson_w_kv_str(w, "b", NULL);
    kjson_w_obj_end(w);
    kjson_w_arr_end(w);
    kjson_w_key(w, "c<");
    kjson_w_obj_begin(w);
    kjson_w_obj_end(w);
    kjson_w_key(w, "r");
    kjson_w_raw(w, "[1,2]", 5);
    kjson_w_kv_bool(w, "f", false);
    kjson_w_kv_int(w, "i", -5);
    kjson_w_kv_uint(w, "u", 7);
    kjson_w_obj_end(w);
    CHECK(kjson_w_result(w, &out, &n) == 0 &&
              !strcmp(out, "{\"a\":[-9223372036854775808,18446744073709551615,true,null,{\"b\":\"\"}],"
                           "\"c\\u003c\":{},\"r\":[1,2],\"f\":false,\"i\":-5,\"u\":7}") &&
              n == strlen(out),
          "writer produces compact nested JSON: %s", out ? out : "(error)");

    struct kjson_w *bad = kjson_w_new();
    kjson_w_obj_begin(bad);
    kjson_w_str(bad, "value without key");
    CHECK(kjson_w_result(bad, &out, NULL) == -EINVAL, "writer refuses a member value without a key");
    kjson_w_free(bad);

    bad = kjson_w_new();
    kjson_w_arr_begin(bad);
    kjson_w_key(bad, "k");
    CHECK(kjson_w_result(bad, &out, NULL) == -EINVAL, "writer refuses a key inside an array");
    kjson_w_free(bad);

    bad = kjson_w_new();
    kjson_w_arr_begin(bad);
    CHECK(kjson_w_result(bad, &out, NULL) == -EINVAL, "writer reports an unclosed container");
    kjson_w_arr_end(bad);
    kjson_w_int(bad, 1);
    CHECK(kjson_w_result(bad, &out, NULL) == -EINVAL, "writer refuses a second top-level value");
    kjson_w_free(bad);

    bad = kjson_w_new();
    kjson_w_obj_begin(bad);
    kjson_w_key(bad, "k");
    kjson_w_obj_end(bad);
    CHECK(kjson_w_result(bad, &out, NULL) == -EINVAL, "writer refuses a key without a value");
    kjson_w_free(bad);

    bad = kjson_w_new();
    for (unsigned i = 0; i <= KJSON_MAX_DEPTH; i++)
        kjson_w_arr_begin(bad);
    CHECK(kjson_w_result(bad, &out, NULL) == -E2BIG, "writer refuses nesting over the depth limit");
    kjson_w_free(bad);

    /* A long string forces the buffer to grow several times. */
    bad = kjson_w_new();
    char *big = xmalloc(100000);
    memset(big, 'x', 100000);
    kjson_w_strn(bad, big, 100000);
    CHECK(kjson_w_result(bad, &out, &n) == 0 && n == 100002 && out[0] == '"' && out[50000] == 'x',
          "writer grows for a 100 kB string");
    free(big);
    kjson_w_free(bad);
    kjson_w_free(NULL);
}

/* ---- Python's json module as an independent implementation ---- */

static const char py_vectors[] =
    "import json, random\n"
    "random.seed(20260101)\n"
    "pools = [(0, 0x7f), (0x22, 0x22), (0x5c, 0x5c), (0x3c, 0x3e), (0x26, 0x26), (0x80, 0x7ff),\n"
    "         (0x800, 0xd7ff), (0xe000, 0xffff), (0x2028, 0x2029), (0x10000, 0x10ffff)]\n"
    "for n in range(400):\n"
    "    s = ''.join(chr(random.randint(*random.choice(pools))) for _ in range(random.randint(0, 24)))\n"
    "    go = json.dumps(s, ensure_ascii=False)\n"
    "    for a, b in (('<', '\\\\u003c'), ('>', '\\\\u003e'), ('&', '\\\\u0026'),\n"
    "                 ('\\u2028', '\\\\u2028'), ('\\u2029', '\\\\u2029')):\n"
    "        go = go.replace(a, b)\n"
    "    print('x' + s.encode('utf-8').hex(), 'x' + go.encode('utf-8').hex(), json.dumps(s))\n";

static int unhex(const char *h, size_t n, char *out)
{
    int r = hex_decode(h, n, (uint8_t *)out, n / 2);
    if (r >= 0)
        out[r] = '\0';
    return r;
}

static void test_python_cross_check(void)
{
    char cmd[4096], line[8192];
    FILE *f;
    int lines = 0, writer_ok = 0, reader_ok = 0, ascii_ok = 0;

    snprintf(cmd, sizeof(cmd), "python3 -c \"$KKMS_PY\"");
    setenv("KKMS_PY", py_vectors, 1);
    f = popen(cmd, "r");
    if (!f) {
        CHECK(0, "python3 runs (install python3 for the JSON cross-check)");
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        char s[512], go[4096], *hs = strtok(line, " "), *hg = strtok(NULL, " "), *ascii = strtok(NULL, "\n");
        int sn, gn;
        if (!hs || !hg || !ascii)
            continue;
        sn = unhex(hs + 1, strlen(hs + 1), s);
        gn = unhex(hg + 1, strlen(hg + 1), go);
        if (sn < 0 || gn < 0)
            continue;
        lines++;

        _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
        const char *out = "(error)";
        kjson_w_strn(w, s, (size_t)sn);
        if (kjson_w_result(w, &out, NULL) == 0 && !strcmp(out, go))
            writer_ok++;
        else if (lines - writer_ok <= 3)
            printf("# writer mismatch: got %s want %s\n", out, go);
        if (root_string_is(go, s, (size_t)sn))
            reader_ok++;
        if (root_string_is(ascii, s, (size_t)sn))
            ascii_ok++;
    }
    int st = pclose(f);
    CHECK(st == 0 && lines == 400, "python3 produced 400 vectors (status %d; install python3 if missing)", st);
    CHECK(writer_ok == lines && lines > 0, "writer matches Go's escaping (Python model) on %d/%d random strings",
          writer_ok, lines);
    CHECK(reader_ok == lines && lines > 0, "reader decodes Go-style output on %d/%d random strings", reader_ok, lines);
    CHECK(ascii_ok == lines && lines > 0,
          "reader decodes Python's ASCII output (\\u escapes, surrogate pairs) on %d/%d random strings", ascii_ok,
          lines);
}

int main(void)
{
    test_valid_documents();
    test_invalid_documents();
    test_limits();
    test_string_decoding();
    test_numbers_and_literals();
    test_lookup();
    test_writer_strings();
    test_writer_structure();
    test_python_cross_check();
    return tap_done();
}
