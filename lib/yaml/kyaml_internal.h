/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/yaml private: the node layout and constructors shared by the files of this folder. */
#ifndef KKMS_KYAML_INTERNAL_H
#define KKMS_KYAML_INTERNAL_H

#include "kyaml.h"

/* A source name shared by every node parsed from it; nodes outlive their parse and get mixed
 * with nodes of other files by kyaml_merge, so each node holds a reference. */
struct kyaml_src {
    unsigned refs;
    char name[];
};

struct kyaml_node {
    enum kyaml_type type;
    unsigned line, col;
    struct kyaml_src *src;
    char *text; /* scalars and nulls: the text as written (after YAML unescaping) */
    /* sequences: n items; maps: n/2 pairs, items[2i] the key (a scalar or null), items[2i+1] its value */
    size_t n, cap;
    struct kyaml_node **items;
};

struct kyaml_src *kyaml_src_new(const char *name);
void kyaml_src_unref(struct kyaml_src *s);

/* New node holding its own reference to src; text is copied (scalars and nulls only). */
struct kyaml_node *kyaml_node_new(enum kyaml_type type, struct kyaml_src *src, unsigned line, unsigned col,
                                  const char *text);
/* Appends child (ownership moves to coll). */
void kyaml_node_append(struct kyaml_node *coll, struct kyaml_node *child);
/* Index of the pair whose key is key in a map, or -1. */
long kyaml_map_find(const struct kyaml_node *map, const char *key);

/* Formats "file:line:col" of n into buf. */
const char *kyaml_where(const struct kyaml_node *n, char *buf, size_t size);

#endif
