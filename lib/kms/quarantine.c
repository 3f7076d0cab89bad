/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Setting spec.quarantined in a manifest an operator may have written by hand: the value is
 * replaced where it stands (or one line is added to a block-style spec), so comments, formatting
 * and the other documents of the file stay as they were. The result must parse to the same
 * records but those flags, or nothing is written. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kms_internal.h"
#include "kyaml.h"

#define MAX_EDITS KMS_MAX_DOCS

struct edit {
    size_t off, del;
    char ins[96];
};

struct edits {
    struct edit *e;
    size_t n;
    const char *buf;
    size_t len;
    const char *name;
    bool on;
    int r;
};

static bool is_break(const char *b, size_t len, size_t i, size_t *blen)
{
    const unsigned char *u = (const unsigned char *)b;
    if (u[i] == '\n')
        *blen = 1;
    else if (u[i] == '\r')
        *blen = i + 1 < len && u[i + 1] == '\n' ? 2 : 1;
    else if (u[i] == 0xc2 && i + 1 < len && u[i + 1] == 0x85)
        *blen = 2; /* NEL */
    else if (u[i] == 0xe2 && i + 2 < len && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9))
        *blen = 3; /* LS, PS */
    else
        return false;
    return true;
}

/* Byte offset of a libyaml mark (1-based line and column, the column in characters, line breaks
 * as libyaml counts them, a BOM not counted). SIZE_MAX when outside the text. */
static size_t offset_of(const char *b, size_t len, unsigned line, unsigned col)
{
    size_t i = len >= 3 && !memcmp(b, "\xef\xbb\xbf", 3) ? 3 : 0, bl;

    for (unsigned l = 1; l < line; i++) {
        if (i >= len)
            return SIZE_MAX;
        if (is_break(b, len, i, &bl)) {
            i += bl - 1;
            l++;
        }
    }
    for (unsigned c = 1; c < col; c++) {
        if (i >= len || is_break(b, len, i, &bl))
            return SIZE_MAX;
        for (i++; i < len && ((unsigned char)b[i] & 0xc0) == 0x80; i++)
            ;
    }
    return i;
}

static int refuse(struct edits *ed, const struct kyaml_node *n, const char *why)
{
    ed->r = log_error_errno(-EINVAL, "%s:%u:%u: cannot set quarantined safely (%s); edit that line by hand", ed->name,
                            kyaml_line(n), kyaml_column(n), why);
    return ed->r;
}

static void add_edit(struct edits *ed, size_t off, size_t del, const char *ins)
{
    struct edit *e = &ed->e[ed->n++];
    e->off = off;
    e->del = del;
    snprintf(e->ins, sizeof(e->ins), "%s", ins);
}

/* Replaces the scalar value q (true/false/yes/no/~/null..., plain or quoted) where it stands. */
static int replace_value(struct edits *ed, const struct kyaml_node *q)
{
    static const char *const nulls[] = {"null", "Null", "NULL", "~"};
    const char *text = kyaml_scalar(q), *b = ed->buf;
    size_t off = offset_of(b, ed->len, kyaml_line(q), kyaml_column(q)), tlen, del = 0;

    if (off == SIZE_MAX)
        return refuse(ed, q, "position not found");
    if (kyaml_type(q) == KYAML_NULL) {
        for (size_t i = 0; i < 4 && !del; i++)
            if (ed->len - off >= strlen(nulls[i]) && !memcmp(b + off, nulls[i], strlen(nulls[i])))
                del = strlen(nulls[i]);
        if (!del)
            return refuse(ed, q, "empty value");
    } else {
        tlen = strlen(text);
        if ((b[off] == '"' || b[off] == '\'') && ed->len - off >= tlen + 2 && !memcmp(b + off + 1, text, tlen) &&
            b[off + 1 + tlen] == b[off])
            del = tlen + 2;
        else if (ed->len - off >= tlen && !memcmp(b + off, text, tlen))
            del = tlen;
        else
            return refuse(ed, q, "value written in an unusual form");
    }
    /* What follows must end the token, or this was not the whole scalar. */
    if (off + del < ed->len && !strchr(" \t\r\n,}]#", b[off + del]))
        return refuse(ed, q, "value written in an unusual form");
    add_edit(ed, off, del, ed->on ? "true" : "false");
    return 0;
}

/* Adds "<indent>quarantined: true" before the first key of a block-style spec. */
static int add_line(struct edits *ed, const struct kyaml_node *spec)
{
    const char *b = ed->buf;
    size_t off = offset_of(b, ed->len, kyaml_line(spec), kyaml_column(spec)), ls, bl;
    char ins[96];

    if (off == SIZE_MAX || kyaml_count(spec) == 0 || b[off] == '{')
        return refuse(ed, spec, "spec is not a block mapping");
    for (ls = off; ls > 0 && !is_break(b, ed->len, ls - 1, &bl); ls--)
        if (b[ls - 1] != ' ')
            return refuse(ed, spec, "spec does not start its own line");
    /* is_break looked at a single byte; a multi-byte break before ls ends in a continuation byte,
     * which is not ' ', so the loop above refused it already. */
    if (off - ls > 60)
        return refuse(ed, spec, "indented too deeply");
    {
        size_t e = off;
        const char *eol = "\n";
        while (e < ed->len && b[e] != '\n' && b[e] != '\r')
            e++;
        if (e + 1 < ed->len && b[e] == '\r' && b[e + 1] == '\n')
            eol = "\r\n";
        snprintf(ins, sizeof(ins), "%*squarantined: %s%s", (int)(off - ls), "", ed->on ? "true" : "false", eol);
    }
    add_edit(ed, ls, 0, ins);
    return 0;
}

static void edit_volume(struct edits *ed, const struct kyaml_node *doc, const char *hash)
{
    const struct kyaml_node *spec = kyaml_map_get(doc, "spec"), *q;
    const char *h = kyaml_scalar(kyaml_map_get(spec, "TPMHash"));
    bool cur = false;
    int r;

    if (!h || strcasecmp(h, hash) || ed->r < 0 || ed->n >= MAX_EDITS)
        return;
    q = kyaml_map_get(spec, "quarantined");
    r = q ? kyaml_node_bool(q, "spec.quarantined", &cur) : -ENOENT;
    if (r == 0 && cur == ed->on)
        return;
    if (!q)
        add_line(ed, spec);
    else if (kyaml_type(q) == KYAML_SCALAR || kyaml_type(q) == KYAML_NULL)
        replace_value(ed, q);
    else
        refuse(ed, q, "not a scalar");
}

static void walk(struct edits *ed, const struct kyaml_node *doc, const char *hash, bool in_list)
{
    const char *kind = kyaml_scalar(kyaml_map_get(doc, "kind"));
    const char *api = kyaml_scalar(kyaml_map_get(doc, "apiVersion"));
    const struct kyaml_node *items = kyaml_map_get(doc, "items");
    size_t klen = kind ? strlen(kind) : 0;

    if (!kind || !api)
        return;
    if (!in_list && klen >= 4 && !strcmp(kind + klen - 4, "List") && kyaml_type(items) == KYAML_SEQ) {
        for (size_t i = 0; i < kyaml_count(items); i++)
            walk(ed, kyaml_item(items, i), hash, true);
    } else if (!strcmp(kind, "SealedVolume") && !strcmp(api, KMS_API_VERSION)) {
        edit_volume(ed, doc, hash);
    }
}

static int cmp_edit(const void *a, const void *b)
{
    const struct edit *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int kms_text_set_quarantine(const char *buf, size_t len, const char *name, const char *tpm_hash, bool quarantined,
                            char **out, size_t *out_len, int *changed)
{
    struct kms_records before = {0}, after = {0};
    struct kyaml_node **docs = NULL;
    struct edits ed = {.buf = buf, .len = len, .name = name, .on = quarantined};
    struct kms_buf nb = {0};
    size_t targets = 0, pos = 0;
    int r;

    *out = NULL;
    *out_len = 0;
    *changed = 0;
    r = kms_manifest_load_quiet(buf, len, name, &before);
    if (r < 0)
        return log_error_errno(r, "%s: does not parse; fix it first", name);
    for (size_t i = 0; i < before.nvols; i++)
        if (!strcasecmp(before.vols[i].tpm_hash, tpm_hash)) {
            targets++;
            if (before.vols[i].quarantined != quarantined) {
                before.vols[i].quarantined = quarantined; /* what the result must read as */
                (*changed)++;
            }
        }
    if (!targets) {
        kms_records_clear(&before);
        return -ENOENT;
    }
    if (!*changed) {
        kms_records_clear(&before);
        return 0;
    }

    size_t ndocs = 0;
    r = kyaml_parse_all(buf, len, name, &docs, &ndocs);
    ed.e = xcalloc(MAX_EDITS, sizeof(*ed.e));
    for (size_t i = 0; r >= 0 && i < ndocs && ed.r >= 0; i++)
        walk(&ed, docs[i], tpm_hash, false);
    kyaml_docs_free(docs, ndocs);
    if (r >= 0)
        r = ed.r;
    if (r >= 0) {
        qsort(ed.e, ed.n, sizeof(*ed.e), cmp_edit);
        for (size_t i = 0; i < ed.n; i++) {
            kms_buf_add(&nb, buf + pos, ed.e[i].off - pos);
            kms_buf_puts(&nb, ed.e[i].ins);
            pos = ed.e[i].off + ed.e[i].del;
        }
        kms_buf_add(&nb, buf + pos, len - pos);
        r = kms_manifest_load_quiet(nb.p, nb.len, name, &after);
        if (r >= 0 && !kms_records_equal(&before, &after))
            r = log_error_errno(
                -EINVAL, "%s: setting quarantined in place would change more than that field; edit the file by hand",
                name);
        else if (r < 0)
            r = log_error_errno(
                r, "%s: setting quarantined in place gave a manifest that does not parse; edit the file by hand", name);
    }
    kms_records_clear(&before);
    kms_records_clear(&after);
    free(ed.e);
    if (r < 0) {
        kms_buf_free(&nb);
        *changed = 0;
        return r;
    }
    *out = nb.p;
    *out_len = nb.len;
    return 0;
}
