/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/yaml: the bytes as YAML documents (tree, merge, lookups, kcrypt
 * settings) and as a kernel command line. Errors are logged to stderr, so run it with
 * -close_fd_mask=2 (sanitizer reports still show):
 *   ./fuzz_config -close_fd_mask=2 -max_total_time=60 tests/fuzz/corpus/config */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "kconfig.h"
#include "kyaml.h"

/* Visits every node through the public accessors and typed getters. */
static void visit(const struct kyaml_node *n)
{
    bool b;
    uint32_t v;
    const char *s = NULL;

    (void)kyaml_source(n);
    (void)kyaml_line(n);
    (void)kyaml_column(n);
    switch (kyaml_type(n)) {
    case KYAML_MAP:
        for (size_t i = 0; i < kyaml_count(n); i++) {
            const char *key = kyaml_key(n, i);
            if (kyaml_map_get(n, key) != kyaml_value(n, i))
                abort(); /* keys are unique: a lookup finds the pair itself */
            visit(kyaml_value(n, i));
        }
        break;
    case KYAML_SEQ:
        for (size_t i = 0; i < kyaml_count(n); i++)
            visit(kyaml_item(n, i));
        break;
    default:
        (void)kyaml_node_bool(n, "fuzz", &b);
        (void)kyaml_node_u32(n, "fuzz", &v);
        if (kyaml_node_str(n, "fuzz", &s) == 0 && strlen(s) > KYAML_MAX_TEXT)
            abort();
        break;
    }
}

/* Parses all documents and merges them, in order, into *merged. */
static void merge_docs(const char *buf, size_t len, struct kyaml_node **merged)
{
    struct kyaml_node **docs = NULL;
    size_t n = 0;

    if (kyaml_parse_all(buf, len, "fuzz.yaml", &docs, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        visit(docs[i]);
        kyaml_merge(merged, docs[i]); /* consumes the tree */
    }
    free(docs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct kyaml_node *merged = NULL, *first = NULL, *cmd = NULL;
    struct kcrypt_config k;
    char *line, **argv = NULL;
    size_t argc;
    const char *s = NULL;

    (void)kconfig_has_valid_header(buf, size);
    if (kyaml_parse(buf, size, "first.yaml", &first) == 0)
        kyaml_free(first);
    /* Twice, so merging meets equal keys, equal sequence items and kind changes. */
    merge_docs(buf, size, &merged);
    merge_docs(buf, size, &merged);
    visit(merged);
    (void)kyaml_get_str(merged, "kcrypt.challenger.challenger_server", &s);

    line = malloc(size + 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    if (kconfig_cmdline_split(line, &argv, &argc) >= 0 && argv[argc] != NULL)
        abort();
    kconfig_strv_free(argv);
    if (kconfig_cmdline_tree(line, NULL, "/proc/cmdline", &cmd) == 0 && cmd) {
        visit(cmd);
        kyaml_merge(&merged, cmd);
    }
    free(line);
    if (kconfig_kcrypt_from_tree(merged, &k) == 0)
        kconfig_kcrypt_clear(&k);
    kyaml_free(merged);
    return 0;
}
