/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/yaml: YAML documents to a small bounded tree (the only code that includes <yaml.h>).
 *
 * A tree is made of nodes: maps (keys are scalars, unique), sequences, scalars and nulls. Every
 * node remembers the file it came from and its line and column (1-based), so a bad value can be
 * reported as `/oem/90_custom.yaml:3:5: ...` even after trees from several files were merged.
 *
 * Bounds (docs/README.md §5): input <= KYAML_MAX_INPUT bytes, nesting <= KYAML_MAX_DEPTH levels, at
 * most KYAML_MAX_NODES nodes and KYAML_MAX_TEXT bytes of scalar text per parse (alias expansion
 * counts against both, so "billion laughs" fails cleanly), at most KYAML_MAX_ANCHORS anchors per
 * document. Not supported, and reported as errors: non-scalar mapping keys, duplicate keys (as Go
 * yaml.v3), NUL characters in scalars. `<<` merge keys are kept as ordinary keys. */
#ifndef KKMS_KYAML_H
#define KKMS_KYAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KYAML_MAX_INPUT (1u << 20)
#define KYAML_MAX_DEPTH 64
#define KYAML_MAX_NODES 100000
#define KYAML_MAX_TEXT (16u << 20)
#define KYAML_MAX_ANCHORS 1000

enum kyaml_type {
    KYAML_NULL,   /* plain ~, null, Null, NULL, empty, or tagged !!null */
    KYAML_SCALAR, /* any other scalar, kept as text; typed by the getters below */
    KYAML_MAP,
    KYAML_SEQ,
};

struct kyaml_node;

/* ---- parsing; name is used in error messages and remembered by every node ---- */
/* Parses every document of buf; *docs (array of *ndocs roots) is owned by the caller: kyaml_docs_free.
 * An input without documents gives *ndocs == 0. Errors are logged as name:line:col: problem. */
int kyaml_parse_all(const char *buf, size_t len, const char *name, struct kyaml_node ***docs, size_t *ndocs);
/* Parses the first document only (later ones are not read, as Go yaml.Unmarshal does); *root is
 * owned by the caller (kyaml_free) and is NULL when the input holds no document. */
int kyaml_parse(const char *buf, size_t len, const char *name, struct kyaml_node **root);
/* Frees a tree (NULL is fine). */
void kyaml_free(struct kyaml_node *n);
/* Frees the array of kyaml_parse_all and every tree in it (NULL is fine). */
void kyaml_docs_free(struct kyaml_node **docs, size_t ndocs);

/* ---- merging (upstream collector.DeepMerge, docs/upstream.md §2.3) ---- */
/* Merges src into *dst and consumes src: maps merge key by key recursively; a later scalar or
 * null replaces an earlier value; sequences: an empty earlier one is replaced, one whose first
 * item is a map gets the later items appended, otherwise later items whose scalar text is not
 * present yet are appended. Different kinds (map vs sequence vs scalar): the later replaces the
 * earlier with a warning (upstream fails the whole scan there). *dst may be NULL. */
void kyaml_merge(struct kyaml_node **dst, struct kyaml_node *src);

/* ---- reading nodes; all returned pointers are borrowed from the tree ---- */
enum kyaml_type kyaml_type(const struct kyaml_node *n);
/* Source name given to the parser (or the cmdline file) the node came from. */
const char *kyaml_source(const struct kyaml_node *n);
unsigned kyaml_line(const struct kyaml_node *n);
unsigned kyaml_column(const struct kyaml_node *n);
/* Text of a scalar (NUL-terminated); NULL for maps, sequences and nulls. */
const char *kyaml_scalar(const struct kyaml_node *n);
/* Number of items of a sequence or of pairs of a map; 0 otherwise. */
size_t kyaml_count(const struct kyaml_node *n);
/* Item i of a sequence; NULL when out of range or not a sequence. */
const struct kyaml_node *kyaml_item(const struct kyaml_node *n, size_t i);
/* Key text and value of pair i of a map; NULL when out of range or not a map. */
const char *kyaml_key(const struct kyaml_node *n, size_t i);
const struct kyaml_node *kyaml_value(const struct kyaml_node *n, size_t i);
/* Value of key in a map; NULL when absent or n is not a map. */
const struct kyaml_node *kyaml_map_get(const struct kyaml_node *n, const char *key);
/* Node at a dotted path of map keys ("kcrypt.challenger.challenger_server"); NULL when absent.
 * A key that itself contains a dot is reachable with kyaml_map_get only. */
const struct kyaml_node *kyaml_get(const struct kyaml_node *root, const char *path);

/* ---- typed values. Each returns 0, -ENOENT when the node is NULL or a YAML null (not logged),
 * or -EINVAL for a value of the wrong kind, logged as file:line:col: WHAT: reason. ---- */
/* *out is the scalar text, borrowed. */
int kyaml_node_str(const struct kyaml_node *n, const char *what, const char **out);
/* Accepts true/false, yes/no, on/off in any case, quoted or not (YAML 1.1 booleans, which Go
 * yaml.v3 also accepts for bool fields). */
int kyaml_node_bool(const struct kyaml_node *n, const char *what, bool *out);
/* Accepts decimal and 0x hex, quoted or not (parse_u32). */
int kyaml_node_u32(const struct kyaml_node *n, const char *what, uint32_t *out);
/* The same, looked up by dotted path from root; the path names the value in messages. */
int kyaml_get_str(const struct kyaml_node *root, const char *path, const char **out);
int kyaml_get_bool(const struct kyaml_node *root, const char *path, bool *out);
int kyaml_get_u32(const struct kyaml_node *root, const char *path, uint32_t *out);

/* Writes s (at most ~60 characters of it) into buf as a printable, double-quoted string for a
 * log message, escaping control characters; returns buf. */
const char *kyaml_quote(const char *s, char *buf, size_t size);

#endif
