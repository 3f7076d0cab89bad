/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kconfig_load: config files and kernel cmdline merged into one tree; the kcrypt settings. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "kconfig_internal.h"
#include "kyaml_internal.h"

const char *const kconfig_default_dirs[] = {"/oem", "/sysroot/oem", "/run/cos/oem", "/tmp/oem", NULL};

struct kconfig {
    struct kyaml_node *root;
    char **sources;
    size_t nsources;
};

static void add_source(struct kconfig *c, const char *path)
{
    char **s = xcalloc(c->nsources + 1, sizeof(*s));
    if (c->nsources)
        memcpy(s, c->sources, c->nsources * sizeof(*s));
    free(c->sources);
    c->sources = s;
    c->sources[c->nsources++] = xstrdup(path);
}

static const char *kind(const struct kyaml_node *n)
{
    return n->type == KYAML_SEQ ? "a sequence" : n->type == KYAML_MAP ? "a map" : "a scalar";
}

static int merge_file(struct kconfig *c, const char *path, const char *buf, size_t len)
{
    struct kyaml_node *root = NULL;
    char where[PATH_MAX + 32];
    int r = kyaml_parse(buf, len, path, &root);

    if (r < 0)
        return r;
    if (root && root->type != KYAML_MAP && root->type != KYAML_NULL) {
        r = log_error_errno(-EINVAL, "%s: the top level is %s, expected a map", kyaml_where(root, where, sizeof(where)),
                            kind(root));
        kyaml_free(root);
        return r;
    }
    if (root && root->type == KYAML_MAP)
        kyaml_merge(&c->root, root);
    else
        kyaml_free(root); /* a file with only comments adds nothing */
    add_source(c, path);
    return 0;
}

static int merge_cmdline(struct kconfig *c, const char *path)
{
    _cleanup_free_ char *buf = NULL;
    struct kyaml_node *tree = NULL;
    int r = file_read_all(path, KCONFIG_MAX_CMDLINE, &buf, NULL);

    if (r == -ENOENT) {
        log_debug("%s: not found, no kernel command line keys", path);
        return 0;
    }
    if (r < 0) {
        log_warn_errno(r, "ignoring %s: %m", path);
        return 0;
    }
    r = kconfig_cmdline_tree(buf, "kcrypt.", path, &tree);
    if (r < 0 || !tree)
        return 0;
    kyaml_merge(&c->root, tree);
    add_source(c, path);
    return 0;
}

int kconfig_load(const struct kconfig_opts *opts, struct kconfig **out)
{
    static const struct kconfig_opts defaults;
    const struct kconfig_opts *o = opts ? opts : &defaults;
    const char *const *dirs = o->dirs ? o->dirs : kconfig_default_dirs;
    const char *root = o->root ? o->root : getenv("KAIROS_KMS_ROOT");
    struct kconfig_scan scan = {0};
    struct kconfig *c = xcalloc(1, sizeof(*c));
    char path[PATH_MAX];
    size_t rlen;
    int r = 0;

    if (!root)
        root = "";
    rlen = strlen(root);
    while (rlen && root[rlen - 1] == '/') /* "/" and "" both mean the real root */
        rlen--;
    for (size_t d = 0; dirs[d]; d++) {
        if (snprintf(path, sizeof(path), "%.*s%s", (int)rlen, root, dirs[d]) >= (int)sizeof(path))
            continue;
        kconfig_scan_dir(&scan, path);
    }
    for (size_t i = 0; i < scan.npaths; i++) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        if (kconfig_scan_read(&scan, scan.paths[i], &buf, &len) <= 0)
            continue;
        r = merge_file(c, scan.paths[i], buf, len);
        if (r < 0 && o->strict)
            goto out;
        if (r < 0)
            log_warn("%s: skipped, the other config files are still used", scan.paths[i]);
        r = 0;
    }
    if (!o->no_cmdline && snprintf(path, sizeof(path), "%.*s%s", (int)rlen, root,
                                   o->cmdline ? o->cmdline : "/proc/cmdline") < (int)sizeof(path))
        merge_cmdline(c, path);
out:
    kconfig_scan_done(&scan);
    if (r < 0) {
        kconfig_free(c);
        return r;
    }
    *out = c;
    return 0;
}

void kconfig_free(struct kconfig *c)
{
    if (!c)
        return;
    kyaml_free(c->root);
    for (size_t i = 0; i < c->nsources; i++)
        free(c->sources[i]);
    free(c->sources);
    free(c);
}

const struct kyaml_node *kconfig_tree(const struct kconfig *c) { return c ? c->root : NULL; }
size_t kconfig_source_count(const struct kconfig *c) { return c ? c->nsources : 0; }

const char *kconfig_source(const struct kconfig *c, size_t i) { return c && i < c->nsources ? c->sources[i] : NULL; }

/* ---- kcrypt settings ---- */

static bool is_set(const struct kyaml_node *n)
{
    return n && n->type != KYAML_NULL && !(n->type == KYAML_SCALAR && !n->text[0]);
}

/* The map at key of parent, NULL when absent or null; anything else there is an error. */
static int section(const struct kyaml_node *parent, const char *key, const char *what, const struct kyaml_node **out)
{
    const struct kyaml_node *n = kyaml_map_get(parent, key);
    char where[PATH_MAX + 32];

    *out = NULL;
    if (!n || n->type == KYAML_NULL)
        return 0;
    if (n->type != KYAML_MAP)
        return log_error_errno(-EINVAL, "%s: %s: expected a map, got %s", kyaml_where(n, where, sizeof(where)), what,
                               kind(n));
    *out = n;
    return 0;
}

/* kcrypt.challenger.KEY (G1, cmdline copies) wins over kcrypt.KEY (G3); see kconfig.h. */
static const struct kyaml_node *pick(const struct kyaml_node *kc, const struct kyaml_node *ch, const char *key,
                                     char *what, size_t size)
{
    const struct kyaml_node *a = kyaml_map_get(ch, key), *b = kyaml_map_get(kc, key);
    char w1[PATH_MAX + 32], w2[PATH_MAX + 32];

    if (is_set(a)) {
        if (is_set(b) && !(a->type == KYAML_SCALAR && b->type == KYAML_SCALAR && !strcmp(a->text, b->text)))
            log_warn("%s: kcrypt.challenger.%s overrides kcrypt.%s set at %s", kyaml_where(a, w1, sizeof(w1)), key, key,
                     kyaml_where(b, w2, sizeof(w2)));
        snprintf(what, size, "kcrypt.challenger.%s", key);
        return a;
    }
    snprintf(what, size, "kcrypt.%s", key);
    return is_set(b) ? b : NULL;
}

/* A handle in the TPM range of its kind (the top byte is the handle type, TPM 2.0 part 2 §7.2). */
static int get_handle(const struct kyaml_node *kc, const struct kyaml_node *ch, const char *key, uint8_t type,
                      uint32_t *out)
{
    char what[64], where[PATH_MAX + 32];
    const struct kyaml_node *n = pick(kc, ch, key, what, sizeof(what));
    uint32_t v;
    int r = kyaml_node_u32(n, what, &v);

    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (v >> 24 != type)
        return log_error_errno(-EINVAL, "%s: %s: 0x%x is not a %s handle (0x%02x000000-0x%02xffffff)",
                               kyaml_where(n, where, sizeof(where)), what, v,
                               type == 0x01 ? "TPM NV index" : "persistent key", type, type);
    *out = v;
    return 0;
}

static int get_str(const struct kyaml_node *n, const char *what, const char **out)
{
    int r = kyaml_node_str(n, what, out);
    return r == -ENOENT ? 0 : r;
}

/* install.encrypted_partitions: a list of labels (upstream kairos-agent's install config). */
static int get_labels(const struct kyaml_node *root, struct kcrypt_config *out)
{
    const struct kyaml_node *inst = NULL, *list;
    char where[PATH_MAX + 32];
    int r = section(root, "install", "install", &inst);

    out->encrypted_partitions = xcalloc(1, sizeof(char *));
    if (r < 0)
        return r;
    list = kyaml_map_get(inst, "encrypted_partitions");
    if (!is_set(list))
        return 0;
    if (list->type != KYAML_SEQ)
        return log_error_errno(-EINVAL, "%s: install.encrypted_partitions: expected a list of labels, got %s",
                               kyaml_where(list, where, sizeof(where)), kind(list));
    if (kyaml_count(list) > KCONFIG_MAX_ENCRYPTED_PARTITIONS)
        return log_error_errno(-E2BIG, "%s: install.encrypted_partitions: more than %d labels",
                               kyaml_where(list, where, sizeof(where)), KCONFIG_MAX_ENCRYPTED_PARTITIONS);
    out->encrypted_partitions = xrealloc(out->encrypted_partitions, (kyaml_count(list) + 1) * sizeof(char *));
    for (size_t i = 0; i < kyaml_count(list); i++) {
        const char *label;
        r = kyaml_node_str(kyaml_item(list, i), "install.encrypted_partitions[]", &label);
        if (r < 0)
            return r;
        out->encrypted_partitions[out->n_encrypted_partitions++] = xstrdup(label);
        out->encrypted_partitions[out->n_encrypted_partitions] = NULL;
    }
    return 0;
}

/* kcrypt.tpm_pcrs: a list of PCR numbers, one number, or "7+11" / "7,11" (the kernel command line
 * can only say the latter). */
static int get_pcrs(const struct kyaml_node *kc, struct kcrypt_config *out)
{
    const struct kyaml_node *n = kyaml_map_get(kc, "tpm_pcrs");
    char where[PATH_MAX + 32];
    const char *s;
    uint32_t v, mask = 0;

    if (!is_set(n))
        return 0;
    if (n->type == KYAML_SEQ) {
        for (size_t i = 0; i < kyaml_count(n); i++) {
            if (kyaml_node_u32(kyaml_item(n, i), "kcrypt.tpm_pcrs[]", &v) < 0 || v > 23)
                return log_error_errno(-EINVAL, "%s: kcrypt.tpm_pcrs: expected PCR numbers 0-23",
                                       kyaml_where(n, where, sizeof(where)));
            mask |= 1u << v;
        }
    } else if (kyaml_node_str(n, "kcrypt.tpm_pcrs", &s) == 0) {
        for (const char *p = s; *p;) {
            char *end;
            unsigned long pcr = strtoul(p, &end, 10);
            if (end == p || pcr > 23 || (*end && *end != '+' && *end != ','))
                return log_error_errno(-EINVAL, "%s: kcrypt.tpm_pcrs: '%s' is not a list of PCRs such as 7+11",
                                       kyaml_where(n, where, sizeof(where)), s);
            mask |= 1u << pcr;
            p = *end ? end + 1 : end;
        }
    } else {
        return log_error_errno(-EINVAL, "%s: kcrypt.tpm_pcrs: expected a list of PCR numbers, got %s",
                               kyaml_where(n, where, sizeof(where)), kind(n));
    }
    out->tpm_pcrs = mask;
    out->tpm_pcrs_set = true;
    return 0;
}

int kconfig_kcrypt_from_tree(const struct kyaml_node *root, struct kcrypt_config *out)
{
    const struct kyaml_node *kc, *ch;
    const char *server = "", *cert = "", *dev = "";
    char what[64];
    bool mdns = false;
    uint32_t nv = KCONFIG_DEFAULT_NV_INDEX, cidx = KCONFIG_DEFAULT_C_INDEX;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = section(root, "kcrypt", "kcrypt", &kc)) < 0 ||
        (r = section(kc, "challenger", "kcrypt.challenger", &ch)) < 0 ||
        (r = get_str(kyaml_map_get(ch, "challenger_server"), "kcrypt.challenger.challenger_server", &server)) < 0 ||
        (r = get_str(kyaml_map_get(ch, "certificate"), "kcrypt.challenger.certificate", &cert)) < 0 ||
        (r = get_str(pick(kc, ch, "tpm_device", what, sizeof(what)), what, &dev)) < 0 ||
        (r = get_handle(kc, ch, "nv_index", 0x01, &nv)) < 0 || (r = get_handle(kc, ch, "c_index", 0x81, &cidx)) < 0)
        return r;
    r = kyaml_node_bool(kyaml_map_get(ch, "mdns"), "kcrypt.challenger.mdns", &mdns);
    if (r < 0 && r != -ENOENT)
        return r;
    r = kyaml_node_bool(kyaml_map_get(kc, "encrypt_on_boot"), "kcrypt.encrypt_on_boot", &out->encrypt_on_boot);
    if (r < 0 && r != -ENOENT)
        return r;
    r = kyaml_node_bool(kyaml_map_get(kc, "tpm_pcrs_defer"), "kcrypt.tpm_pcrs_defer", &out->tpm_pcrs_defer);
    if (r < 0 && r != -ENOENT)
        return r;
    r = kyaml_node_bool(kyaml_map_get(kc, "recovery_key"), "kcrypt.recovery_key", &out->recovery_key);
    if (r < 0 && r != -ENOENT)
        return r;
    r = get_pcrs(kc, out);
    if (r < 0)
        return r;
    r = get_labels(root, out);
    if (r < 0) {
        kconfig_kcrypt_clear(out);
        return r;
    }
    out->challenger_server = xstrdup(server);
    out->mdns = mdns;
    out->certificate = xstrdup(cert);
    out->nv_index = nv;
    out->c_index = cidx;
    out->tpm_device = xstrdup(dev);
    return 0;
}

int kconfig_kcrypt(const struct kconfig *c, struct kcrypt_config *out)
{
    return kconfig_kcrypt_from_tree(kconfig_tree(c), out);
}

void kconfig_kcrypt_clear(struct kcrypt_config *k)
{
    if (!k)
        return;
    free(k->challenger_server);
    free(k->certificate);
    free(k->tpm_device);
    for (size_t i = 0; i < k->n_encrypted_partitions; i++)
        free(k->encrypted_partitions[i]);
    free(k->encrypted_partitions);
    memset(k, 0, sizeof(*k));
}
