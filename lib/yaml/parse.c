/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libyaml events to kyaml trees, within the bounds listed in kyaml.h. The only file that
 * includes <yaml.h>. */
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "base.h"
#include "kyaml_internal.h"

struct anchor {
    char *name;
    struct kyaml_node *node;
    bool done; /* an alias to a collection that is still open would copy itself forever */
};

struct parse {
    const char *name;
    struct kyaml_src *src;
    struct kyaml_node *stack[KYAML_MAX_DEPTH];
    long stack_anchor[KYAML_MAX_DEPTH];
    size_t depth;
    struct anchor *anchors;
    size_t nanchors;
    size_t nodes, text; /* budgets used by this parse, alias copies included */
    struct kyaml_node *root;
    struct kyaml_node **docs;
    size_t ndocs, cap;
};

static int fail(struct parse *ps, size_t line, size_t col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(struct parse *ps, size_t line, size_t col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return log_error_errno(-EINVAL, "%s:%zu:%zu: %s", ps->name, line, col, msg);
}

#define FAIL_AT(ps, m, ...) fail(ps, (m).line + 1, (m).column + 1, __VA_ARGS__)

static int charge(struct parse *ps, size_t text, yaml_mark_t m)
{
    if (++ps->nodes > KYAML_MAX_NODES)
        return FAIL_AT(ps, m, "more than %d YAML nodes (aliases included)", KYAML_MAX_NODES);
    ps->text += text;
    if (ps->text > KYAML_MAX_TEXT)
        return FAIL_AT(ps, m, "more than %u bytes of YAML text (aliases included)", KYAML_MAX_TEXT);
    return 0;
}

static void anchors_reset(struct parse *ps)
{
    for (size_t i = 0; i < ps->nanchors; i++)
        free(ps->anchors[i].name);
    free(ps->anchors);
    ps->anchors = NULL;
    ps->nanchors = 0;
}

static long anchor_add(struct parse *ps, const char *name, struct kyaml_node *n, yaml_mark_t m)
{
    if (ps->nanchors == KYAML_MAX_ANCHORS)
        return FAIL_AT(ps, m, "more than %d anchors in one document", KYAML_MAX_ANCHORS);
    if (ps->nanchors % 16 == 0) {
        struct anchor *a = xcalloc(ps->nanchors + 16, sizeof(*a));
        if (ps->nanchors)
            memcpy(a, ps->anchors, ps->nanchors * sizeof(*a));
        free(ps->anchors);
        ps->anchors = a;
    }
    ps->anchors[ps->nanchors] = (struct anchor){xstrdup(name), n, n->type != KYAML_MAP && n->type != KYAML_SEQ};
    return (long)ps->nanchors++;
}

/* Hangs n under the innermost open collection (or makes it the document root); frees it on error. */
static int attach(struct parse *ps, struct kyaml_node *n, yaml_mark_t m)
{
    struct kyaml_node *parent;

    if (ps->depth == 0) {
        ps->root = n;
        return 0;
    }
    parent = ps->stack[ps->depth - 1];
    if (parent->type == KYAML_MAP && parent->n % 2 == 0 && (n->type == KYAML_MAP || n->type == KYAML_SEQ)) {
        kyaml_free(n);
        return FAIL_AT(ps, m, "a mapping key must be a scalar");
    }
    kyaml_node_append(parent, n);
    return 0;
}

/* Deep copy for an alias; level is the nesting level the copy lands on. */
static int copy(struct parse *ps, const struct kyaml_node *n, size_t level, yaml_mark_t m, struct kyaml_node **out)
{
    struct kyaml_node *c;
    int r;

    if ((n->type == KYAML_MAP || n->type == KYAML_SEQ) && level > KYAML_MAX_DEPTH)
        return FAIL_AT(ps, m, "alias expands deeper than %d levels", KYAML_MAX_DEPTH);
    r = charge(ps, n->text ? strlen(n->text) : 0, m);
    if (r < 0)
        return r;
    c = kyaml_node_new(n->type, n->src, n->line, n->col, n->text);
    for (size_t i = 0; i < n->n; i++) {
        struct kyaml_node *child;
        r = copy(ps, n->items[i], level + 1, m, &child);
        if (r < 0) {
            kyaml_free(c);
            return r;
        }
        kyaml_node_append(c, child);
    }
    *out = c;
    return 0;
}

static int on_alias(struct parse *ps, const char *name, yaml_mark_t m)
{
    struct kyaml_node *c;
    int r;

    for (size_t i = ps->nanchors; i-- > 0;) {
        if (strcmp(ps->anchors[i].name, name))
            continue;
        if (!ps->anchors[i].done)
            return FAIL_AT(ps, m, "alias *%.64s refers to a node that contains it", name);
        r = copy(ps, ps->anchors[i].node, ps->depth + 1, m, &c);
        return r < 0 ? r : attach(ps, c, m);
    }
    return FAIL_AT(ps, m, "unknown anchor *%.64s", name);
}

static bool is_null(const yaml_event_t *ev)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    const char *tag = (const char *)ev->data.scalar.tag;
    const char *v = (const char *)ev->data.scalar.value;

    if (tag)
        return !strcmp(tag, YAML_NULL_TAG);
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (!strcmp(v, nulls[i]))
            return true;
    return false;
}

static int on_scalar(struct parse *ps, const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    struct kyaml_node *n;
    int r;

    if (memchr(v, '\0', len))
        return FAIL_AT(ps, ev->start_mark, "NUL characters in scalars are not supported");
    r = charge(ps, len, ev->start_mark);
    if (r < 0)
        return r;
    n = kyaml_node_new(is_null(ev) ? KYAML_NULL : KYAML_SCALAR, ps->src, (unsigned)ev->start_mark.line + 1,
                       (unsigned)ev->start_mark.column + 1, v);
    r = attach(ps, n, ev->start_mark);
    if (r >= 0 && ev->data.scalar.anchor)
        r = (int)anchor_add(ps, (const char *)ev->data.scalar.anchor, n, ev->start_mark);
    return r < 0 ? r : 0;
}

static int on_start(struct parse *ps, const yaml_event_t *ev, enum kyaml_type type, const yaml_char_t *anchor)
{
    struct kyaml_node *n;
    long a = -1;
    int r;

    if (ps->depth == KYAML_MAX_DEPTH)
        return FAIL_AT(ps, ev->start_mark, "nesting deeper than %d levels", KYAML_MAX_DEPTH);
    r = charge(ps, 0, ev->start_mark);
    if (r < 0)
        return r;
    n = kyaml_node_new(type, ps->src, (unsigned)ev->start_mark.line + 1, (unsigned)ev->start_mark.column + 1, NULL);
    r = attach(ps, n, ev->start_mark);
    if (r < 0)
        return r;
    if (anchor && (a = anchor_add(ps, (const char *)anchor, n, ev->start_mark)) < 0)
        return (int)a;
    ps->stack_anchor[ps->depth] = a;
    ps->stack[ps->depth++] = n;
    return 0;
}

struct keyref {
    const char *key;
    size_t i;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

/* Go yaml.v3 refuses duplicate keys; so do we, in O(n log n). */
static int check_duplicates(struct parse *ps, const struct kyaml_node *map)
{
    size_t np = map->n / 2;
    _cleanup_free_ struct keyref *k = NULL;

    if (np < 2)
        return 0;
    k = xmalloc(np * sizeof(*k));
    for (size_t i = 0; i < np; i++)
        k[i] = (struct keyref){map->items[2 * i]->text, i};
    qsort(k, np, sizeof(*k), keyref_cmp);
    for (size_t i = 1; i < np; i++) {
        if (!strcmp(k[i - 1].key, k[i].key)) {
            const struct kyaml_node *dup = map->items[2 * k[i].i], *first = map->items[2 * k[i - 1].i];
            char q[80];
            return fail(ps, dup->line, dup->col, "mapping key %s already defined at line %u",
                        kyaml_quote(dup->text, q, sizeof(q)), first->line);
        }
    }
    return 0;
}

static int on_end(struct parse *ps)
{
    struct kyaml_node *n = ps->stack[--ps->depth];
    long a = ps->stack_anchor[ps->depth];

    if (a >= 0)
        ps->anchors[a].done = true;
    return n->type == KYAML_MAP ? check_duplicates(ps, n) : 0;
}

static int on_event(struct parse *ps, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT: anchors_reset(ps); return 0;
    case YAML_DOCUMENT_END_EVENT:
        anchors_reset(ps);
        if (!ps->root)
            return 0;
        if (ps->ndocs == ps->cap) {
            struct kyaml_node **d = xcalloc(ps->cap = ps->cap ? ps->cap * 2 : 4, sizeof(*d));
            if (ps->ndocs)
                memcpy(d, ps->docs, ps->ndocs * sizeof(*d));
            free(ps->docs);
            ps->docs = d;
        }
        ps->docs[ps->ndocs++] = TAKE_PTR(ps->root);
        return 0;
    case YAML_SCALAR_EVENT: return on_scalar(ps, ev);
    case YAML_ALIAS_EVENT: return on_alias(ps, (const char *)ev->data.alias.anchor, ev->start_mark);
    case YAML_SEQUENCE_START_EVENT: return on_start(ps, ev, KYAML_SEQ, ev->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT: return on_start(ps, ev, KYAML_MAP, ev->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: return on_end(ps);
    default: return 0;
    }
}

static int parser_error(struct parse *ps, const yaml_parser_t *p, const char *buf, size_t len)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    size_t line = 1, col = 1;

    switch (p->error) {
    case YAML_MEMORY_ERROR: return log_error_errno(-ENOMEM, "%s: out of memory while parsing YAML", ps->name);
    case YAML_READER_ERROR:
        /* The reader reports a byte offset only; turn it into a position like the others. */
        for (size_t i = 0; i < p->problem_offset && i < len; i++, col++)
            if (buf[i] == '\n')
                line++, col = 0;
        return fail(ps, line, col, "%s", problem);
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
        if (p->context)
            return FAIL_AT(ps, p->problem_mark, "%s (%s at %zu:%zu)", problem, p->context, p->context_mark.line + 1,
                           p->context_mark.column + 1);
        return FAIL_AT(ps, p->problem_mark, "%s", problem);
    default: return fail(ps, line, col, "%s", problem);
    }
}

static int parse_stream(const char *buf, size_t len, const char *name, bool first_only, struct kyaml_node ***docs,
                        size_t *ndocs)
{
    struct parse ps = {.name = name};
    yaml_parser_t p;
    bool done = false;
    int r = 0;

    if (len > KYAML_MAX_INPUT)
        return log_error_errno(-EFBIG, "%s: larger than %u bytes", name, KYAML_MAX_INPUT);
    if (!yaml_parser_initialize(&p))
        return log_error_errno(-ENOMEM, "%s: cannot initialize the YAML parser", name);
    yaml_parser_set_input_string(&p, (const unsigned char *)(buf ? buf : ""), len);
    ps.src = kyaml_src_new(name);
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            r = parser_error(&ps, &p, buf, len);
            break;
        }
        r = on_event(&ps, &ev);
        done = ev.type == YAML_STREAM_END_EVENT || (first_only && ev.type == YAML_DOCUMENT_END_EVENT);
        yaml_event_delete(&ev);
        if (r < 0)
            break;
    }
    yaml_parser_delete(&p);
    anchors_reset(&ps);
    kyaml_src_unref(ps.src);
    if (r < 0) {
        kyaml_free(ps.root);
        kyaml_docs_free(ps.docs, ps.ndocs);
        return r;
    }
    *docs = ps.docs;
    *ndocs = ps.ndocs;
    return 0;
}

int kyaml_parse_all(const char *buf, size_t len, const char *name, struct kyaml_node ***docs, size_t *ndocs)
{
    return parse_stream(buf, len, name, false, docs, ndocs);
}

int kyaml_parse(const char *buf, size_t len, const char *name, struct kyaml_node **root)
{
    struct kyaml_node **docs = NULL;
    size_t n = 0;
    int r = parse_stream(buf, len, name, true, &docs, &n);

    if (r < 0)
        return r;
    *root = n ? docs[0] : NULL;
    free(docs);
    return 0;
}
