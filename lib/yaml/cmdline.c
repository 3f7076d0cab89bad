/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Kernel command line keys as a config tree (docs/upstream.md §2.2: kairos-sdk
 * machine.DotToYAML = google/shlex split, KEY=VALUE, KEY split on dots). */
#include <string.h>

#include "base.h"
#include "kconfig.h"
#include "kyaml_internal.h"

struct token {
    char *text;
    size_t off; /* byte offset of the token's first character in the command line */
};

static void tokens_free(struct token *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].text);
    free(t);
}

/* google/shlex word splitting: blanks separate words; "..." quotes with backslash escapes (a
 * backslash keeps the next character, whatever it is); '...' quotes literally; a backslash
 * outside quotes escapes the next character; '#' at the start of a word comments out the rest of
 * the line. An unterminated quote or trailing backslash drops the last word and is -EINVAL. */
static int split(const char *s, struct token **out, size_t *count)
{
    enum { START, WORD, ESC, DQ, DQ_ESC, SQ, COMMENT } st = START;
    size_t len = strlen(s), n = 0, w = 0, start = 0;
    _cleanup_free_ char *word = xmalloc(len + 1);
    struct token *t = xcalloc(len / 2 + 2, sizeof(*t)); /* words are separated, so at most len/2+1 */
    int r = 0;

    for (size_t i = 0;; i++) {
        char c = s[i];
        bool blank = c == ' ' || c == '\t' || c == '\n' || c == '\r';
        if (!c && st != START && st != WORD && st != COMMENT) {
            r = -EINVAL;
            break;
        }
        switch (st) {
        case START:
            if (!c)
                goto done;
            if (blank)
                continue;
            start = i;
            w = 0;
            st = c == '"' ? DQ : c == '\'' ? SQ : c == '\\' ? ESC : c == '#' ? COMMENT : WORD;
            if (st == WORD)
                word[w++] = c;
            break;
        case WORD:
            if (!c || blank) {
                word[w] = '\0';
                t[n++] = (struct token){xstrdup(word), start};
                st = START;
                if (!c)
                    goto done;
            } else if (c == '"' || c == '\'' || c == '\\') {
                st = c == '"' ? DQ : c == '\'' ? SQ : ESC;
            } else {
                word[w++] = c;
            }
            break;
        case ESC:
            word[w++] = c;
            st = WORD;
            break;
        case DQ_ESC:
            word[w++] = c;
            st = DQ;
            break;
        case DQ:
            if (c == '"')
                st = WORD;
            else if (c == '\\')
                st = DQ_ESC;
            else
                word[w++] = c;
            break;
        case SQ:
            if (c == '\'')
                st = WORD;
            else
                word[w++] = c;
            break;
        case COMMENT:
            if (!c)
                goto done;
            if (c == '\n')
                st = START;
            break;
        }
    }
done:
    *out = t;
    *count = n;
    return r;
}

int kconfig_cmdline_split(const char *cmdline, char ***argv, size_t *argc)
{
    struct token *t;
    size_t n;
    int r = split(cmdline, &t, &n);
    char **v = xcalloc(n + 1, sizeof(*v));

    for (size_t i = 0; i < n; i++)
        v[i] = t[i].text;
    free(t);
    *argv = v;
    *argc = n;
    return r;
}

void kconfig_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* strings.Trim(s, `"`) of upstream: drops every leading and trailing double quote, in place. */
static char *trim_quotes(char *s)
{
    size_t len;

    while (*s == '"')
        s++;
    len = strlen(s);
    while (len && s[len - 1] == '"')
        s[--len] = '\0';
    return s;
}

static struct kyaml_node *set_child(struct kyaml_node *map, const char *key, struct kyaml_node *value,
                                    struct kyaml_src *src, unsigned line, unsigned col)
{
    long i = kyaml_map_find(map, key);

    if (i >= 0) {
        kyaml_free(map->items[2 * i + 1]);
        map->items[2 * i + 1] = value;
    } else {
        kyaml_node_append(map, kyaml_node_new(KYAML_SCALAR, src, line, col, key));
        kyaml_node_append(map, value);
    }
    return value;
}

/* Sets root.k1.k2...kn = value, making (or replacing by) maps on the way: the later token wins. */
static void set_path(struct kyaml_node *root, char *key, const char *value, struct kyaml_src *src, unsigned line,
                     unsigned col)
{
    char *parts[KCONFIG_MAX_KEY_PARTS];
    size_t n = 0;
    struct kyaml_node *cur = root;

    for (char *p = key, *dot;; p = dot + 1) {
        dot = strchr(p, '.');
        if (dot)
            *dot = '\0';
        if (!*p || n == KCONFIG_MAX_KEY_PARTS) {
            log_warn("%s:%u:%u: ignoring a malformed key", src->name, line, col);
            return;
        }
        parts[n++] = p;
        if (!dot)
            break;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const struct kyaml_node *child = kyaml_map_get(cur, parts[i]);
        if (child && child->type == KYAML_MAP)
            cur = (struct kyaml_node *)child;
        else
            cur = set_child(cur, parts[i], kyaml_node_new(KYAML_MAP, src, line, col, NULL), src, line, col);
    }
    set_child(cur, parts[n - 1], kyaml_node_new(KYAML_SCALAR, src, line, col, value), src, line, col);
}

/* One KEY=VALUE word (upstream stringToMap): quotes trimmed from both, a bare KEY is true. */
static void add_word(struct kyaml_node *root, char *word, struct kyaml_src *src, unsigned line, unsigned col)
{
    char *eq = strchr(word, '=');

    if (eq)
        *eq = '\0';
    set_path(root, trim_quotes(word), eq ? trim_quotes(eq + 1) : "true", src, line, col);
}

int kconfig_cmdline_tree(const char *cmdline, const char *prefix, const char *name, struct kyaml_node **out)
{
    static const char stanza[] = "kairos.config=";
    struct token *t;
    size_t n, matched = 0, pos = 0;
    unsigned line = 1, col = 1, *lines, *cols;
    struct kyaml_src *src;
    struct kyaml_node *root;

    if (strlen(cmdline) > KCONFIG_MAX_CMDLINE)
        return log_error_errno(-EFBIG, "%s: longer than %d bytes", name, KCONFIG_MAX_CMDLINE);
    if (split(cmdline, &t, &n) < 0)
        log_warn("%s: unterminated quote or escape; ignoring the last word", name);
    lines = xcalloc(n + 1, sizeof(*lines));
    cols = xcalloc(n + 1, sizeof(*cols));
    for (size_t i = 0; i < n; lines[i] = line, cols[i] = col, i++)
        for (; pos < t[i].off; pos++, col++) /* words come in order: one pass over the line */
            if (cmdline[pos] == '\n')
                line++, col = 0;
    src = kyaml_src_new(name);
    root = kyaml_node_new(KYAML_MAP, src, 1, 1, NULL);
    /* Plain words first, then kairos.config=KEY=VALUE stanzas on top (upstream collector.Scan
     * merges ParseKairosCmdline after ParseCmdLine). */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n && matched <= KCONFIG_MAX_CMDLINE_KEYS; i++) {
            char *w = t[i].text;
            bool is_stanza = !strncmp(w, stanza, sizeof(stanza) - 1);
            if (is_stanza != (pass == 1) || (is_stanza && !*(w += sizeof(stanza) - 1)))
                continue;
            if (prefix && strncmp(w + strspn(w, "\""), prefix, strlen(prefix)))
                continue;
            if (matched++ == KCONFIG_MAX_CMDLINE_KEYS)
                log_warn("%s: more than %d matching keys; ignoring the rest", name, KCONFIG_MAX_CMDLINE_KEYS);
            else
                add_word(root, w, src, lines[i], cols[i]);
        }
    }
    free(lines);
    free(cols);
    tokens_free(t, n);
    kyaml_src_unref(src);
    if (root->n == 0) {
        kyaml_free(root);
        root = NULL;
    }
    *out = root;
    return 0;
}
