/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The YAML tree: nodes, accessors, lookups by dotted path and typed values. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base.h"
#include "kyaml_internal.h"

struct kyaml_src *kyaml_src_new(const char *name)
{
    size_t len = strlen(name);
    struct kyaml_src *s = xmalloc(sizeof(*s) + len + 1);

    s->refs = 1;
    memcpy(s->name, name, len + 1);
    return s;
}

void kyaml_src_unref(struct kyaml_src *s)
{
    if (s && --s->refs == 0)
        free(s);
}

struct kyaml_node *kyaml_node_new(enum kyaml_type type, struct kyaml_src *src, unsigned line, unsigned col,
                                  const char *text)
{
    struct kyaml_node *n = xcalloc(1, sizeof(*n));

    n->type = type;
    n->line = line;
    n->col = col;
    n->src = src;
    src->refs++;
    if (text)
        n->text = xstrdup(text);
    return n;
}

void kyaml_node_append(struct kyaml_node *coll, struct kyaml_node *child)
{
    if (coll->n == coll->cap) {
        size_t cap = coll->cap ? coll->cap * 2 : 4;
        struct kyaml_node **items = xmalloc(cap * sizeof(*items));
        if (coll->n)
            memcpy(items, coll->items, coll->n * sizeof(*items));
        free(coll->items);
        coll->items = items;
        coll->cap = cap;
    }
    coll->items[coll->n++] = child;
}

void kyaml_free(struct kyaml_node *n)
{
    if (!n)
        return;
    /* Recursion is bounded: no tree is deeper than KYAML_MAX_DEPTH (+ cmdline key depth). */
    for (size_t i = 0; i < n->n; i++)
        kyaml_free(n->items[i]);
    free(n->items);
    /* Scalars may be secrets (a KMS Secret's stringData): wiped, whoever parsed them. */
    if (n->text)
        secure_wipe(n->text, strlen(n->text));
    free(n->text);
    kyaml_src_unref(n->src);
    free(n);
}

void kyaml_docs_free(struct kyaml_node **docs, size_t ndocs)
{
    if (!docs)
        return;
    for (size_t i = 0; i < ndocs; i++)
        kyaml_free(docs[i]);
    free(docs);
}

enum kyaml_type kyaml_type(const struct kyaml_node *n) { return n ? n->type : KYAML_NULL; }
const char *kyaml_source(const struct kyaml_node *n) { return n ? n->src->name : ""; }
unsigned kyaml_line(const struct kyaml_node *n) { return n ? n->line : 0; }
unsigned kyaml_column(const struct kyaml_node *n) { return n ? n->col : 0; }

const char *kyaml_scalar(const struct kyaml_node *n) { return n && n->type == KYAML_SCALAR ? n->text : NULL; }

size_t kyaml_count(const struct kyaml_node *n)
{
    if (!n)
        return 0;
    return n->type == KYAML_MAP ? n->n / 2 : n->type == KYAML_SEQ ? n->n : 0;
}

const struct kyaml_node *kyaml_item(const struct kyaml_node *n, size_t i)
{
    return n && n->type == KYAML_SEQ && i < n->n ? n->items[i] : NULL;
}

const char *kyaml_key(const struct kyaml_node *n, size_t i)
{
    return n && n->type == KYAML_MAP && i < n->n / 2 ? n->items[2 * i]->text : NULL;
}

const struct kyaml_node *kyaml_value(const struct kyaml_node *n, size_t i)
{
    return n && n->type == KYAML_MAP && i < n->n / 2 ? n->items[2 * i + 1] : NULL;
}

long kyaml_map_find(const struct kyaml_node *map, const char *key)
{
    if (!map || map->type != KYAML_MAP)
        return -1;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (!strcmp(map->items[i]->text, key))
            return (long)(i / 2);
    return -1;
}

const struct kyaml_node *kyaml_map_get(const struct kyaml_node *n, const char *key)
{
    long i = kyaml_map_find(n, key);
    return i < 0 ? NULL : n->items[2 * i + 1];
}

const struct kyaml_node *kyaml_get(const struct kyaml_node *root, const char *path)
{
    char key[256];
    const struct kyaml_node *n = root;

    for (const char *p = path; n; p++) {
        size_t len = strcspn(p, ".");
        if (len == 0 || len >= sizeof(key))
            return NULL;
        memcpy(key, p, len);
        key[len] = '\0';
        n = kyaml_map_get(n, key);
        p += len;
        if (!*p)
            return n;
    }
    return NULL;
}

const char *kyaml_where(const struct kyaml_node *n, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%u:%u", kyaml_source(n), kyaml_line(n), kyaml_column(n));
    return buf;
}

const char *kyaml_quote(const char *s, char *buf, size_t size)
{
    size_t o = 0, max = size < 72 ? size : 72;

    if (size < 8) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; *s && o + 11 < max; s++) { /* room left for an escape, "...", the quote and NUL */
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(buf + o, size - o, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    if (*s)
        o += (size_t)snprintf(buf + o, size - o, "...");
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static const char *kind_name(enum kyaml_type t)
{
    return t == KYAML_MAP ? "a map" : t == KYAML_SEQ ? "a sequence" : "a scalar";
}

/* Common checks of the typed getters: absent/null is -ENOENT, a collection is -EINVAL. */
static int scalar_of(const struct kyaml_node *n, const char *what, const char *want, const char **out)
{
    char where[512];

    if (!n || n->type == KYAML_NULL)
        return -ENOENT;
    if (n->type != KYAML_SCALAR)
        return log_error_errno(-EINVAL, "%s: %s: expected %s, got %s", kyaml_where(n, where, sizeof(where)), what, want,
                               kind_name(n->type));
    *out = n->text;
    return 0;
}

int kyaml_node_str(const struct kyaml_node *n, const char *what, const char **out)
{
    return scalar_of(n, what, "a string", out);
}

int kyaml_node_bool(const struct kyaml_node *n, const char *what, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    char where[512], q[80];
    const char *s = NULL;
    int r = scalar_of(n, what, "true or false", &s);

    if (r < 0)
        return r;
    for (size_t i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
            *out = !strcasecmp(s, yes[i]);
            return 0;
        }
    }
    return log_error_errno(-EINVAL, "%s: %s: expected true or false, got %s", kyaml_where(n, where, sizeof(where)),
                           what, kyaml_quote(s, q, sizeof(q)));
}

int kyaml_node_u32(const struct kyaml_node *n, const char *what, uint32_t *out)
{
    char where[512], q[80];
    const char *s = NULL;
    int r = scalar_of(n, what, "a number", &s);

    if (r < 0)
        return r;
    r = parse_u32(s, UINT32_MAX, out);
    if (r < 0)
        return log_error_errno(r, "%s: %s: %s is not a 32-bit number (decimal or 0x hex)",
                               kyaml_where(n, where, sizeof(where)), what, kyaml_quote(s, q, sizeof(q)));
    return 0;
}

int kyaml_get_str(const struct kyaml_node *root, const char *path, const char **out)
{
    return kyaml_node_str(kyaml_get(root, path), path, out);
}

int kyaml_get_bool(const struct kyaml_node *root, const char *path, bool *out)
{
    return kyaml_node_bool(kyaml_get(root, path), path, out);
}

int kyaml_get_u32(const struct kyaml_node *root, const char *path, uint32_t *out)
{
    return kyaml_node_u32(kyaml_get(root, path), path, out);
}
