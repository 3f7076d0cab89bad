/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Deep merge of two trees with the rules of upstream's collector (docs/upstream.md §2.3,
 * kairos-sdk collector.DeepMerge), in O(n log n) so a large config cannot stall the boot. */
#include <string.h>

#include "base.h"
#include "kyaml_internal.h"

struct ref {
    const struct kyaml_node *n;
    size_t i;
};

static bool is_collection(const struct kyaml_node *n) { return n->type == KYAML_MAP || n->type == KYAML_SEQ; }

/* Scalars and nulls by text, nulls before scalars; collections are never equal to anything. */
static int ref_cmp(const void *a, const void *b)
{
    const struct ref *x = a, *y = b;
    int c = (int)x->n->type - (int)y->n->type;

    if (!c && x->n->type == KYAML_SCALAR)
        c = strcmp(x->n->text, y->n->text);
    return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

/* Map keys by text (null keys too: `~` and "~" are one key, as in the duplicate check). */
static int key_cmp(const void *a, const void *b)
{
    const struct ref *x = a, *y = b;
    int c = strcmp(x->n->text, y->n->text);
    return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

static bool same_value(const struct kyaml_node *a, const struct kyaml_node *b)
{
    if (is_collection(a) || a->type != b->type)
        return false;
    return a->type == KYAML_NULL || !strcmp(a->text, b->text);
}

/* Frees the node itself but not its items, which were moved elsewhere. */
static void free_shell(struct kyaml_node *n)
{
    free(n->items);
    n->items = NULL;
    n->n = 0;
    kyaml_free(n);
}

static void replace(struct kyaml_node **dst, struct kyaml_node *src)
{
    kyaml_free(*dst);
    *dst = src;
}

static void merge_maps(struct kyaml_node *dst, struct kyaml_node *src)
{
    size_t nd = dst->n / 2;
    _cleanup_free_ struct ref *idx = xmalloc((nd ? nd : 1) * sizeof(*idx));

    /* Keys of dst sorted once; keys added from src need no lookup (src keys are unique). */
    for (size_t i = 0; i < nd; i++)
        idx[i] = (struct ref){dst->items[2 * i], i};
    qsort(idx, nd, sizeof(*idx), key_cmp);
    for (size_t j = 0; j + 1 < src->n; j += 2) {
        struct kyaml_node *key = src->items[j], *value = src->items[j + 1];
        size_t lo = 0, hi = nd;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(idx[mid].n->text, key->text) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < nd && !strcmp(idx[lo].n->text, key->text)) {
            kyaml_merge(&dst->items[2 * idx[lo].i + 1], value);
            kyaml_free(key);
        } else {
            kyaml_node_append(dst, key);
            kyaml_node_append(dst, value);
        }
    }
    free_shell(src);
}

/* Appends the items of src that are not already in dst (or earlier in src), by scalar text. */
static void merge_scalar_seqs(struct kyaml_node *dst, struct kyaml_node *src)
{
    size_t nd = dst->n, total = dst->n + src->n;
    _cleanup_free_ struct ref *all = xmalloc(total * sizeof(*all));
    _cleanup_free_ bool *keep = xcalloc(src->n, sizeof(*keep));

    for (size_t i = 0; i < total; i++)
        all[i] = (struct ref){i < nd ? dst->items[i] : src->items[i - nd], i};
    qsort(all, total, sizeof(*all), ref_cmp);
    /* Equal texts are adjacent and in order: only the first of a run may come from src. */
    for (size_t i = 0; i < total; i++) {
        if (all[i].i >= nd && (i == 0 || !same_value(all[i - 1].n, all[i].n)))
            keep[all[i].i - nd] = true;
    }
    for (size_t j = 0; j < src->n; j++) {
        if (keep[j])
            kyaml_node_append(dst, src->items[j]);
        else
            kyaml_free(src->items[j]);
    }
    free_shell(src);
}

static void merge_seqs(struct kyaml_node **dst, struct kyaml_node *src)
{
    struct kyaml_node *d = *dst;

    if (d->n == 0) {
        replace(dst, src);
    } else if (d->items[0]->type == KYAML_MAP) {
        for (size_t j = 0; j < src->n; j++)
            kyaml_node_append(d, src->items[j]);
        free_shell(src);
    } else {
        merge_scalar_seqs(d, src);
    }
}

static const char *kind(const struct kyaml_node *n)
{
    return n->type == KYAML_MAP ? "map" : n->type == KYAML_SEQ ? "sequence" : "scalar";
}

void kyaml_merge(struct kyaml_node **dst, struct kyaml_node *src)
{
    struct kyaml_node *d = *dst;
    char w1[512], w2[512];

    if (!src)
        return;
    /* A later null resets the key (upstream: the zero value of the earlier type). */
    if (!d || d->type == KYAML_NULL || src->type == KYAML_NULL)
        return replace(dst, src);
    if (d->type == KYAML_MAP && src->type == KYAML_MAP)
        return merge_maps(d, src);
    if (d->type == KYAML_SEQ && src->type == KYAML_SEQ)
        return merge_seqs(dst, src);
    if (d->type != src->type)
        log_warn("%s: a %s replaces the %s from %s", kyaml_where(src, w1, sizeof(w1)), kind(src), kind(d),
                 kyaml_where(d, w2, sizeof(w2)));
    replace(dst, src);
}
