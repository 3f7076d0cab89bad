/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/json: a bounded JSON reader (a strict validator, then jsmn tokens) and a writer whose bytes
 * are those Go's encoding/json.Marshal would produce, because upstream Go peers read our output.
 * The only folder that includes jsmn (docs/README.md §3).
 *
 * Reader functions do not log: they return 0 or a negative errno and the caller, who knows what
 * was being read, writes the one-line message. */
#ifndef KKMS_KJSON_H
#define KKMS_KJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

/* ---------------------------------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------------------------------- */

/* Default bounds; every document is checked against them before any token is built. */
#define KJSON_MAX_BYTES (1u << 20)
#define KJSON_MAX_TOKENS 4096u
#define KJSON_MAX_DEPTH 64u

struct kjson_limits {
    size_t max_bytes;    /* longest accepted input */
    unsigned max_tokens; /* values + object keys */
    unsigned max_depth;  /* nesting of objects and arrays (at most 1024) */
};

/* Why a parse failed: a static description and the byte offset where it was noticed. */
struct kjson_error {
    const char *msg;
    size_t offset;
};

enum kjson_type {
    KJSON_NONE = 0, /* not a value: a missing member or an error code */
    KJSON_OBJECT,
    KJSON_ARRAY,
    KJSON_STRING,
    KJSON_NUMBER,
    KJSON_BOOL,
    KJSON_NULL,
};

/* A parsed document. Values inside it are named by int indices; the root is KJSON_ROOT, and a
 * negative index (an error code returned by a lookup) is never a value. */
struct kjson_doc;
#define KJSON_ROOT 0

/* Key matching as Go's decoder does it: exact first, else case-insensitively, with Go's folding
 * (ASCII letters, plus the non-ASCII runes that fold onto them: K KELVIN SIGN, ſ LONG S, İ, ı). */
#define KJSON_FOLD 1u

/* Parses exactly one JSON value (RFC 8259; surrounding whitespace allowed) from len bytes of buf.
 * buf need not be NUL-terminated and must outlive the document, which points into it (nothing is
 * copied, so a secret in buf stays where the caller can wipe it). lim NULL = the defaults.
 * -EINVAL: not JSON; -E2BIG: over a limit. *err (optional) says why and where. */
int kjson_parse(const char *buf, size_t len, const struct kjson_limits *lim, struct kjson_doc **out,
                struct kjson_error *err);
/* Frees the token array (not the text it points into). NULL is fine. */
void kjson_free(struct kjson_doc *d);
static inline void kjson_freep(struct kjson_doc **d) { kjson_free(*d); }
#define _cleanup_kjson_ _cleanup_(kjson_freep)

/* Type of value v; KJSON_NONE when v is not a value of d. */
enum kjson_type kjson_type(const struct kjson_doc *d, int v);
/* Number of members of an object or elements of an array; 0 for anything else. */
size_t kjson_count(const struct kjson_doc *d, int v);

/* The value of member key of object obj (the last one when a key repeats: Go keeps the last).
 * -ENOENT: no such member; -EINVAL: obj is not an object. flags: 0 or KJSON_FOLD. */
int kjson_get(const struct kjson_doc *d, int obj, const char *key, unsigned flags);
/* Element i of array arr; -ENOENT past the end, -EINVAL if arr is not an array. */
int kjson_index(const struct kjson_doc *d, int arr, size_t i);
/* Iterates a container: prev < 0 gives the first child, else the child after prev; -ENOENT at
 * the end. Children of an array are its elements; children of an object are its keys (strings),
 * and the value of key k is kjson_member_value(k). */
int kjson_next(const struct kjson_doc *d, int container, int prev);
static inline int kjson_member_value(int key) { return key + 1; }

/* The decoded string v (escapes resolved, invalid UTF-8 replaced by U+FFFD as Go does), malloc'd
 * and NUL-terminated, owned by the caller. With len NULL a string holding U+0000 is refused
 * (-EINVAL), so *out is then the whole string; with len set, *len gets the byte count. */
int kjson_str(const struct kjson_doc *d, int v, char **out, size_t *len);
/* The decoded string v in a secret (wiped when freed); no other copy is made. */
int kjson_str_secret(const struct kjson_doc *d, int v, struct secret **out);
/* True when v is a string whose decoded value equals s (flags: 0 or KJSON_FOLD). */
bool kjson_str_equal(const struct kjson_doc *d, int v, const char *s, unsigned flags);
/* The bytes of value v in the source text (a string with its quotes), not copied. */
int kjson_raw(const struct kjson_doc *d, int v, const char **p, size_t *len);

/* Integers as Go decodes them into int64/uint64: no fraction, no exponent. -EINVAL: not an integer
 * number; -ERANGE: does not fit (a negative number never fits a uint64). */
int kjson_int64(const struct kjson_doc *d, int v, int64_t *out);
int kjson_uint64(const struct kjson_doc *d, int v, uint64_t *out);
/* -EINVAL unless v is true or false. */
int kjson_bool(const struct kjson_doc *d, int v, bool *out);

/* Members read the way Go fills a struct field: a missing or null member leaves the zero value
 * ("" / 0 / false) and returns 0; a present member returns 1; a member of another type -EINVAL.
 * Strings are malloc'd (also ""), owned by the caller; kjson_get_str refuses U+0000. */
int kjson_get_str(const struct kjson_doc *d, int obj, const char *key, unsigned flags, char **out);
int kjson_get_secret(const struct kjson_doc *d, int obj, const char *key, unsigned flags, struct secret **out);
int kjson_get_uint64(const struct kjson_doc *d, int obj, const char *key, unsigned flags, uint64_t *out);
int kjson_get_int64(const struct kjson_doc *d, int obj, const char *key, unsigned flags, int64_t *out);
int kjson_get_bool(const struct kjson_doc *d, int obj, const char *key, unsigned flags, bool *out);

/* ---------------------------------------------------------------------------------------------
 * Writer: compact JSON, strings escaped as Go's json.Marshal does (", \ and control characters,
 * <, >, & and U+2028/U+2029 as \u escapes; invalid UTF-8 as \ufffd). Calls never fail one by one:
 * the first misuse or overflow is remembered and reported by kjson_w_result. Every buffer the
 * writer ever held is wiped, so it may carry secrets.
 * ------------------------------------------------------------------------------------------- */

#define KJSON_W_MAX_BYTES (16u << 20)

struct kjson_w;

struct kjson_w *kjson_w_new(void);
/* Wipes the text and frees the writer. NULL is fine. */
void kjson_w_free(struct kjson_w *w);
static inline void kjson_w_freep(struct kjson_w **w) { kjson_w_free(*w); }
#define _cleanup_kjson_w_ _cleanup_(kjson_w_freep)

void kjson_w_obj_begin(struct kjson_w *w);
void kjson_w_obj_end(struct kjson_w *w);
void kjson_w_arr_begin(struct kjson_w *w);
void kjson_w_arr_end(struct kjson_w *w);
/* The key of the next member; only inside an object, before its value. */
void kjson_w_key(struct kjson_w *w, const char *key);
/* A string value; NULL writes "". */
void kjson_w_str(struct kjson_w *w, const char *s);
/* A string value of n bytes (may hold NUL bytes, written as \u0000). */
void kjson_w_strn(struct kjson_w *w, const void *s, size_t n);
void kjson_w_int(struct kjson_w *w, int64_t v);
void kjson_w_uint(struct kjson_w *w, uint64_t v);
void kjson_w_bool(struct kjson_w *w, bool v);
void kjson_w_null(struct kjson_w *w);
/* A value that is already JSON text, copied as is (the caller vouches it is one valid value). */
void kjson_w_raw(struct kjson_w *w, const char *json, size_t n);

/* key + value in one call. */
void kjson_w_kv_str(struct kjson_w *w, const char *key, const char *s);
void kjson_w_kv_int(struct kjson_w *w, const char *key, int64_t v);
void kjson_w_kv_uint(struct kjson_w *w, const char *key, uint64_t v);
void kjson_w_kv_bool(struct kjson_w *w, const char *key, bool v);
/* key + base64 of n bytes of data (the base64 text wiped after: data may be a secret). */
void kjson_w_kv_b64(struct kjson_w *w, const char *key, const void *data, size_t n, enum base64_variant v);

/* 0 and the text (NUL-terminated, owned by w, valid until the next call on w) once exactly one
 * complete value was written; else the first error: -EINVAL misuse or incomplete, -E2BIG too long. */
int kjson_w_result(const struct kjson_w *w, const char **text, size_t *len);
/* The same text as a secret of its own (with a trailing newline when asked): for documents that
 * carry a passphrase or key. */
int kjson_w_result_secret(const struct kjson_w *w, bool newline, struct secret **out);

#endif
