/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/yaml: the YAML tree, merge rules, kernel cmdline keys and the Kairos config scan. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "kconfig.h"
#include "kyaml.h"
#include "tap.h"

/* ---- helpers ---- */

static struct kyaml_node *parse(const char *text)
{
    struct kyaml_node *root = NULL;
    return kyaml_parse(text, strlen(text), "test.yaml", &root) == 0 ? root : NULL;
}

static bool str_at(const struct kyaml_node *root, const char *path, const char *want)
{
    const char *s = NULL;
    return kyaml_get_str(root, path, &s) == 0 && !strcmp(s, want);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = s ? strlen(s) : 0, b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int load(const char *tree, bool strict, struct kconfig **c)
{
    struct kconfig_opts o = {.root = tap_data(tree), .strict = strict};
    return kconfig_load(&o, c);
}

/* ---- the tree ---- */
static void test_parse_records_positions_and_kinds(void)
{
    struct kyaml_node *r = parse("#cloud-config\nkcrypt:\n  challenger:\n    mdns: true\nlist: [a, b]\nnothing:\n");
    const struct kyaml_node *n = kyaml_get(r, "kcrypt.challenger.mdns");

    CHECK(kyaml_type(r) == KYAML_MAP && kyaml_count(r) == 3, "a document's top-level map has its keys");
    CHECK(n && kyaml_line(n) == 4 && kyaml_column(n) == 11 && !strcmp(kyaml_source(n), "test.yaml"),
          "a node knows its file, line and column");
    CHECK(kyaml_type(kyaml_get(r, "list")) == KYAML_SEQ &&
              !strcmp(kyaml_scalar(kyaml_item(kyaml_get(r, "list"), 1)), "b"),
          "flow sequences are parsed");
    CHECK(kyaml_type(kyaml_get(r, "nothing")) == KYAML_NULL, "an empty value is null");
    CHECK(kyaml_get(r, "kcrypt.nope") == NULL && kyaml_get(r, "list.a") == NULL && kyaml_get(r, "kcrypt..x") == NULL,
          "missing paths, paths through non-maps and empty components find nothing");
    CHECK(!strcmp(kyaml_key(r, 0), "kcrypt") && kyaml_value(r, 9) == NULL, "pairs are readable by index");
    kyaml_free(r);
}

static void test_nulls_and_strings(void)
{
    struct kyaml_node *r = parse("a: ~\nb: null\nc: \"null\"\nd: !!str null\ne: !!null x\nf: ''\n");
    const char *s;

    CHECK(kyaml_type(kyaml_get(r, "a")) == KYAML_NULL && kyaml_type(kyaml_get(r, "b")) == KYAML_NULL &&
              kyaml_type(kyaml_get(r, "e")) == KYAML_NULL,
          "~, null and !!null are nulls");
    CHECK(str_at(r, "c", "null") && str_at(r, "d", "null") && str_at(r, "f", ""),
          "quoted or !!str-tagged null and '' are strings");
    CHECK(kyaml_get_str(r, "a", &s) == -ENOENT && kyaml_get_str(r, "zz", &s) == -ENOENT,
          "a null or absent value is -ENOENT for the getters");
    kyaml_free(r);
}

static void test_multi_document_input(void)
{
    const char *text = "---\nkind: SealedVolume\n---\nkind: Secret\n...\n---\n# only a comment\n";
    struct kyaml_node **docs = NULL, *first = NULL;
    size_t n = 0;

    CHECK(kyaml_parse_all(text, strlen(text), "m.yaml", &docs, &n) == 0 && n == 3 &&
              str_at(docs[0], "kind", "SealedVolume") && str_at(docs[1], "kind", "Secret") &&
              kyaml_type(docs[2]) == KYAML_NULL,
          "kyaml_parse_all returns every --- document");
    kyaml_docs_free(docs, n);
    CHECK(kyaml_parse_all("# nothing\n", 10, "e.yaml", &docs, &n) == 0 && n == 0,
          "a stream without documents has none");
    kyaml_docs_free(docs, n);
    text = "a: 1\n---\nb: [\n";
    CHECK(kyaml_parse(text, strlen(text), "f.yaml", &first) == 0 && str_at(first, "a", "1"),
          "kyaml_parse reads the first document only, as Go yaml.Unmarshal");
    kyaml_free(first);
    CHECK(kyaml_parse("", 0, "empty.yaml", &first) == 0 && first == NULL, "an empty input has no root");
}

static void test_errors_name_file_line_column(void)
{
    const char *text = "#cloud-config\nkcrypt:\n  nv_index: 1\n    c_index: 2\n";
    struct kyaml_node *r = NULL;
    int rc;

    tap_capture_begin();
    rc = kyaml_parse(text, strlen(text), "/oem/90_custom.yaml", &r);
    CHECK(rc == -EINVAL && strstr(tap_capture_end(), "/oem/90_custom.yaml:4:12: mapping values are not allowed"),
          "a syntax error is reported as file:line:col: problem");
    tap_capture_begin();
    rc = kyaml_parse("a: 1\nb: 2\na: 3\n", 15, "dup.yaml", &r);
    CHECK(rc == -EINVAL && strstr(tap_capture_end(), "dup.yaml:3:1: mapping key \"a\" already defined at line 1"),
          "duplicate keys are refused, naming both lines");
    tap_capture_begin();
    rc = kyaml_parse("a: \xff\n", 5, "utf.yaml", &r);
    CHECK(rc == -EINVAL && strstr(tap_capture_end(), "utf.yaml:1:4: invalid leading UTF-8 octet"),
          "an encoding error also has a line and column");
    CHECK(kyaml_parse("? [a]\n: 1\n", 10, "k.yaml", &r) == -EINVAL, "a non-scalar key is refused");
    CHECK(kyaml_parse("a: \"x\\0y\"\n", 10, "nul.yaml", &r) == -EINVAL, "a NUL inside a scalar is refused");
}

static void test_bounds(void)
{
    char deep[300];
    struct kyaml_node *r = NULL;
    _cleanup_free_ char *big = xmalloc(KYAML_MAX_INPUT + 2);
    static const char laughs[] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                                 "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                                 "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                                 "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                                 "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    int64_t t0;

    memset(deep, '[', KYAML_MAX_DEPTH);
    memset(deep + KYAML_MAX_DEPTH, ']', KYAML_MAX_DEPTH);
    CHECK(kyaml_parse(deep, 2 * KYAML_MAX_DEPTH, "deep.yaml", &r) == 0,
          "nesting of exactly the maximum depth is accepted");
    kyaml_free(r);
    memset(deep, '[', KYAML_MAX_DEPTH + 1);
    memset(deep + KYAML_MAX_DEPTH + 1, ']', KYAML_MAX_DEPTH + 1);
    CHECK(kyaml_parse(deep, 2 * KYAML_MAX_DEPTH + 2, "deep.yaml", &r) == -EINVAL,
          "nesting one level deeper is refused");
    t0 = now_ms();
    CHECK(kyaml_parse(laughs, strlen(laughs), "laughs.yaml", &r) == -EINVAL && now_ms() - t0 < 5000,
          "alias expansion beyond the node budget (billion laughs) fails quickly");
    r = parse("base: &b {x: 1}\ncopy: *b\n");
    CHECK(str_at(r, "copy.x", "1"), "a bounded alias is expanded");
    kyaml_free(r);
    CHECK(kyaml_parse("a: &a [*a]\n", 11, "self.yaml", &r) == -EINVAL, "an alias inside its own anchor is refused");
    CHECK(kyaml_parse("a: *nope\n", 9, "u.yaml", &r) == -EINVAL, "an unknown alias is refused");
    memset(big, ' ', KYAML_MAX_INPUT + 1);
    CHECK(kyaml_parse(big, KYAML_MAX_INPUT + 1, "big.yaml", &r) == -EFBIG, "input over 1 MiB is refused");
}

static void test_typed_getters(void)
{
    struct kyaml_node *r = parse("t: true\nT: TRUE\ny: yes\nN: No\non: ON\noff: off\nq: \"true\"\nm: maybe\n"
                                 "hex: 0x1500000\nqhex: \"0x1500000\"\ndec: 22020096\nneg: -1\nbig: 0x100000000\n"
                                 "banana: banana\nmap: {a: 1}\n");
    bool b = false, all = true;
    uint32_t v = 0;
    const char *s;

    for (const char *const *k = (const char *const[]){"t", "T", "y", "on", "q", NULL}; *k; k++)
        all = all && kyaml_get_bool(r, *k, &b) == 0 && b;
    for (const char *const *k = (const char *const[]){"N", "off", NULL}; *k; k++)
        all = all && kyaml_get_bool(r, *k, &b) == 0 && !b;
    CHECK(all, "booleans: true/false, yes/no, on/off in any case, quoted or not");
    tap_capture_begin();
    CHECK(kyaml_get_bool(r, "m", &b) == -EINVAL &&
              strstr(tap_capture_end(), "test.yaml:8:4: m: expected true or false"),
          "a non-boolean is an error naming the key and its position");
    CHECK(kyaml_get_u32(r, "hex", &v) == 0 && v == 0x1500000, "a hex integer is a u32");
    CHECK(kyaml_get_u32(r, "qhex", &v) == 0 && v == 0x1500000, "a quoted hex string is a u32");
    CHECK(kyaml_get_u32(r, "dec", &v) == 0 && v == 0x1500000, "a decimal integer is a u32");
    CHECK(kyaml_get_u32(r, "neg", &v) == -EINVAL && kyaml_get_u32(r, "big", &v) == -ERANGE,
          "negative and too large numbers are refused");
    tap_capture_begin();
    CHECK(kyaml_get_u32(r, "banana", &v) < 0 && strstr(tap_capture_end(), "banana: \"banana\" is not a 32-bit number"),
          "a non-number is an error quoting the value");
    CHECK(kyaml_get_str(r, "map", &s) == -EINVAL, "a map where a string is expected is an error");
    kyaml_free(r);
}

static void test_quote_for_logs(void)
{
    char q[80], tiny[8], long_text[200];

    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    CHECK(!strcmp(kyaml_quote("a\nb\"", q, sizeof(q)), "\"a\\x0ab\\\"\""), "logged values escape controls and quotes");
    CHECK(strlen(kyaml_quote(long_text, q, sizeof(q))) < 72 && ends_with(q, "...\""), "long logged values are cut");
    CHECK(strlen(kyaml_quote(long_text, tiny, sizeof(tiny))) < sizeof(tiny), "a small buffer is never overrun");
}

static void test_handles_must_be_in_their_tpm_range(void)
{
    struct kyaml_node *r = parse("kcrypt: {nv_index: 0x81000000}\n");
    struct kcrypt_config k;

    tap_capture_begin();
    CHECK(kconfig_kcrypt_from_tree(r, &k) == -EINVAL && strstr(tap_capture_end(), "is not a TPM NV index"),
          "an nv_index outside the NV range is an error");
    kyaml_free(r);
    r = parse("kcrypt: {challenger: {c_index: 0x1500000}}\n");
    CHECK(kconfig_kcrypt_from_tree(r, &k) == -EINVAL, "a c_index outside the persistent range is an error");
    kyaml_free(r);
    r = parse("kcrypt: [a]\n");
    CHECK(kconfig_kcrypt_from_tree(r, &k) == -EINVAL, "kcrypt that is not a map is an error");
    kyaml_free(r);
}

static void test_first_boot_encryption_settings(void)
{
    struct kyaml_node *r = parse("install: {encrypted_partitions: [COS_PERSISTENT, COS_OEM]}\n"
                                 "kcrypt: {encrypt_on_boot: true}\n");
    struct kcrypt_config k;

    CHECK(kconfig_kcrypt_from_tree(r, &k) == 0 && k.encrypt_on_boot && k.n_encrypted_partitions == 2 &&
              !strcmp(k.encrypted_partitions[0], "COS_PERSISTENT") && !strcmp(k.encrypted_partitions[1], "COS_OEM") &&
              !k.encrypted_partitions[2],
          "kcrypt.encrypt_on_boot and install.encrypted_partitions are read");
    kconfig_kcrypt_clear(&k);
    kyaml_free(r);
    r = parse("kcrypt: {nv_index: 0x1500000}\n");
    CHECK(kconfig_kcrypt_from_tree(r, &k) == 0 && !k.encrypt_on_boot && k.n_encrypted_partitions == 0 &&
              k.encrypted_partitions && !k.encrypted_partitions[0],
          "without them: off, and an empty (not NULL) label list");
    kconfig_kcrypt_clear(&k);
    kyaml_free(r);
    r = parse("install: {encrypted_partitions: COS_PERSISTENT}\n");
    tap_capture_begin();
    CHECK(kconfig_kcrypt_from_tree(r, &k) == -EINVAL && strstr(tap_capture_end(), "expected a list of labels"),
          "install.encrypted_partitions that is not a list is an error naming it");
    kyaml_free(r);
    r = parse("install: {encrypted_partitions: [[a]]}\n");
    tap_capture_begin();
    CHECK(kconfig_kcrypt_from_tree(r, &k) == -EINVAL && tap_capture_end(), "a label that is not a string is an error");
    kyaml_free(r);
    r = parse("kcrypt: {encrypt_on_boot: maybe}\n");
    tap_capture_begin();
    CHECK(kconfig_kcrypt_from_tree(r, &k) == -EINVAL && strstr(tap_capture_end(), "kcrypt.encrypt_on_boot"),
          "kcrypt.encrypt_on_boot that is not a boolean is an error naming it");
    kyaml_free(r);
}

static void test_measured_boot_settings(void)
{
    struct kyaml_node *r = parse("kcrypt: {tpm_pcrs: [7, 11], recovery_key: true, tpm_pcrs_defer: true}\n");
    struct kcrypt_config k;

    CHECK(kconfig_kcrypt_from_tree(r, &k) == 0 && k.tpm_pcrs_set && k.tpm_pcrs == ((1u << 7) | (1u << 11)) &&
              k.recovery_key && k.tpm_pcrs_defer,
          "kcrypt.tpm_pcrs as a list, recovery_key and tpm_pcrs_defer are read");
    kconfig_kcrypt_clear(&k);
    kyaml_free(r);
    r = parse("kcrypt: {tpm_pcrs: 7+11}\n");
    CHECK(kconfig_kcrypt_from_tree(r, &k) == 0 && k.tpm_pcrs == ((1u << 7) | (1u << 11)) && !k.recovery_key,
          "kcrypt.tpm_pcrs as 7+11 (the kernel command line's form)");
    kconfig_kcrypt_clear(&k);
    kyaml_free(r);
    r = parse("kcrypt: {tpm_pcrs: 7}\n");
    CHECK(kconfig_kcrypt_from_tree(r, &k) == 0 && k.tpm_pcrs == 1u << 7, "kcrypt.tpm_pcrs as one number");
    kconfig_kcrypt_clear(&k);
    kyaml_free(r);
    r = parse("kcrypt: {nv_index: 0x1500000}\n");
    CHECK(kconfig_kcrypt_from_tree(r, &k) == 0 && !k.tpm_pcrs_set, "without kcrypt.tpm_pcrs: the offline NV mode");
    kconfig_kcrypt_clear(&k);
    kyaml_free(r);
    r = parse("kcrypt: {tpm_pcrs: [7, 24]}\n");
    tap_capture_begin();
    CHECK(kconfig_kcrypt_from_tree(r, &k) == -EINVAL && strstr(tap_capture_end(), "kcrypt.tpm_pcrs"),
          "a PCR above 23 is an error naming kcrypt.tpm_pcrs");
    kyaml_free(r);
    r = parse("kcrypt: {tpm_pcrs: 7+x}\n");
    tap_capture_begin();
    CHECK(kconfig_kcrypt_from_tree(r, &k) == -EINVAL && strstr(tap_capture_end(), "kcrypt.tpm_pcrs"),
          "7+x is an error naming kcrypt.tpm_pcrs");
    kyaml_free(r);
}

/* ---- merge ---- */
static void test_merge_rules(void)
{
    struct kyaml_node *a = parse("k: {x: 1, y: 1}\ns: [a, b]\nm: [{n: 1}]\ne: []\nz: 1\nkind: [1]\ngone: {a: 1}\n");
    struct kyaml_node *b =
        parse("k: {y: 2, w: 3}\ns: [b, c, c]\nm: [{n: 1}]\ne: [q]\nz: 2\nkind: {a: 1}\ngone:\nnew: 1\n");
    const struct kyaml_node *s, *m;

    tap_capture_begin();
    kyaml_merge(&a, b);
    CHECK(strstr(tap_capture_end(), "test.yaml:6:7: a map replaces the sequence from test.yaml:6:7"),
          "replacing a value of another kind is warned about, with both positions");
    s = kyaml_get(a, "s");
    m = kyaml_get(a, "m");
    CHECK(str_at(a, "k.x", "1") && str_at(a, "k.y", "2") && str_at(a, "k.w", "3"),
          "maps merge recursively, later wins");
    CHECK(kyaml_count(s) == 3 && !strcmp(kyaml_scalar(kyaml_item(s, 2)), "c"),
          "scalar sequences merge as a union in order (upstream mergeSlices)");
    CHECK(kyaml_count(m) == 2, "sequences of maps are concatenated");
    CHECK(kyaml_count(kyaml_get(a, "e")) == 1 && str_at(a, "z", "2") && str_at(a, "new", "1"),
          "an empty sequence is replaced; scalars are overridden; new keys are added");
    CHECK(kyaml_type(kyaml_get(a, "kind")) == KYAML_MAP && kyaml_type(kyaml_get(a, "gone")) == KYAML_NULL,
          "a later value of another kind or a null replaces the earlier one");
    kyaml_free(a);
    a = NULL;
    kyaml_merge(&a, parse("x: 1\n"));
    CHECK(str_at(a, "x", "1"), "merging into nothing takes the tree");
    kyaml_free(a);
}

/* ---- kernel cmdline ---- */
static void test_cmdline_split_like_shlex(void)
{
    char **v = NULL;
    size_t n = 0;

    CHECK(kconfig_cmdline_split("a \"b c\" d'e f'g h\\ i \"x\\\"y\" '' #c d\nz", &v, &n) == 0 && n == 7 &&
              !strcmp(v[1], "b c") && !strcmp(v[2], "de fg") && !strcmp(v[3], "h i") && !strcmp(v[4], "x\"y") &&
              !strcmp(v[5], "") && !strcmp(v[6], "z") && v[7] == NULL,
          "split honours double and single quotes, backslashes and # comments");
    kconfig_strv_free(v);
    CHECK(kconfig_cmdline_split("a b=\"open", &v, &n) == -EINVAL && n == 1 && !strcmp(v[0], "a"),
          "an unterminated quote drops the last word only");
    kconfig_strv_free(v);
}

static void test_cmdline_tree(void)
{
    const char *line =
        "quiet kairos.config=kcrypt.challenger.tpm_device=/dev/tpm9 kcrypt.challenger.tpm_device=/dev/tpm1 "
        "kcrypt.challenger.challenger_server=http://h:30000/ kcrypt.challenger.mdns "
        "\"kcrypt.challenger.certificate=a=b\" kcrypt.nv_index=0x1500000 console=ttyS0 kcrypt..x=1 "
        "kcrypt.a=1 kcrypt.a.b=2\n";
    struct kyaml_node *t = NULL;
    bool b = false;

    CHECK(kconfig_cmdline_tree(line, "kcrypt.", "/proc/cmdline", &t) == 0 && t, "cmdline keys make a tree");
    CHECK(str_at(t, "kcrypt.challenger.challenger_server", "http://h:30000/"), "KEY=VALUE becomes the dotted path");
    CHECK(kyaml_get_bool(t, "kcrypt.challenger.mdns", &b) == 0 && b, "a bare key is true");
    CHECK(str_at(t, "kcrypt.challenger.certificate", "a=b"), "the value is everything after the first =");
    CHECK(kyaml_get(t, "quiet") == NULL && kyaml_get(t, "console") == NULL, "keys outside kcrypt. are ignored");
    CHECK(str_at(t, "kcrypt.a.b", "2"), "a later key replaces an earlier scalar on its path");
    CHECK(str_at(t, "kcrypt.challenger.tpm_device", "/dev/tpm9"), "kairos.config=KEY=VALUE stanzas apply last");
    CHECK(kyaml_line(kyaml_get(t, "kcrypt.nv_index")) == 1 &&
              kyaml_column(kyaml_get(t, "kcrypt.nv_index")) == (unsigned)(strstr(line, "kcrypt.nv_index") - line) + 1,
          "cmdline values carry the column of their word");
    kyaml_free(t);
    CHECK(kconfig_cmdline_tree("quiet splash", "kcrypt.", "c", &t) == 0 && t == NULL, "no matching key, no tree");
}

static void test_header_detection(void)
{
    CHECK(kconfig_has_valid_header("#cloud-config\n", 14), "#cloud-config is a header");
    CHECK(kconfig_has_valid_header("# x\n#node-config  \r\n", 20), "trailing blanks after the header are ignored");
    CHECK(kconfig_has_valid_header("1\n2\n3\n4\n5\n6\n7\n8\n9\n#kairos-config", 32), "a header on line 10 counts");
    CHECK(!kconfig_has_valid_header("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n#cloud-config\n", 36),
          "a header on line 11 does not");
    CHECK(!kconfig_has_valid_header("# cloud-config\n#cloud-config-x\n", 31), "near misses are not headers");
}

/* ---- the config scan ---- */
static void check_kcrypt(const char *tree, const char *label, const char *server, bool mdns, uint32_t nv, uint32_t cidx,
                         const char *dev)
{
    struct kconfig *c = NULL;
    struct kcrypt_config k;
    int r = load(tree, true, &c);

    r = r < 0 ? r : kconfig_kcrypt(c, &k);
    CHECK(r == 0 && !strcmp(k.challenger_server, server) && k.mdns == mdns && k.nv_index == nv && k.c_index == cidx &&
              !strcmp(k.tpm_device, dev),
          "%s", label);
    if (r == 0)
        kconfig_kcrypt_clear(&k);
    kconfig_free(c);
}

static void test_kcrypt_key_locations(void)
{
    struct kconfig *c = NULL;
    struct kcrypt_config k;

    check_kcrypt("config/kcrypt-only",
                 "G3 layout: nv_index, c_index, tpm_device under kcrypt: are read; trailing / kept",
                 "http://192.168.68.109:30000/", false, 0x1600000, 0x81000009, "/dev/tpmrm1");
    check_kcrypt("config/challenger-only", "G1 layout: the same keys under kcrypt.challenger: are read; yes is true",
                 "https://kms.example.org:30000", true, 0x1700000, 0x8100000a, "/dev/tpm0");
    tap_capture_begin();
    check_kcrypt("config/both", "both layouts: kcrypt.challenger.* wins, an empty value counts as unset",
                 "http://kms.local:30000", true, 0x1700000, 0x81000009, "/dev/tpmrm1");
    CHECK(strstr(tap_capture_end(), "kcrypt.challenger.nv_index overrides kcrypt.nv_index set at"),
          "a conflict between the two locations is warned about");
    CHECK(load("config/kcrypt-only", true, &c) == 0 && kconfig_kcrypt(c, &k) == 0 &&
              !strncmp(k.certificate, "-----BEGIN CERTIFICATE-----\n", 28) && ends_with(k.certificate, "-----\n"),
          "the certificate is the PEM text of the block scalar");
    kconfig_kcrypt_clear(&k);
    kconfig_free(c);
    check_kcrypt("config/nonexistent", "no config at all gives the defaults", "", false, KCONFIG_DEFAULT_NV_INDEX,
                 KCONFIG_DEFAULT_C_INDEX, "");
}

static void test_scan_selection_and_order(void)
{
    struct kconfig *c = NULL;
    const struct kyaml_node *t, *parts, *users;
    static const char *const order[] = {"/layout/oem/20_base.yaml", "/layout/oem/sub/dir/30_nested.yml",
                                        "/layout/sysroot/oem/50_sysroot.yaml", "/layout/run/cos/oem/60_run.yaml",
                                        "/layout/tmp/oem/90_override.yaml"};
    bool ok;

    CHECK(load("config/layout", true, &c) == 0, "the layout tree loads");
    ok = kconfig_source_count(c) == 5;
    for (size_t i = 0; ok && i < 5; i++)
        ok = ends_with(kconfig_source(c, i), order[i]);
    CHECK(ok,
          "only .yaml/.yml files with a header in lines 1-10 are read: dirs in order, names sorted, subdirs walked");
    t = kconfig_tree(c);
    CHECK(str_at(t, "kcrypt.challenger.challenger_server", "http://override:30000") && str_at(t, "hostname", "node-2"),
          "a file in /tmp/oem overrides /oem");
    parts = kyaml_get(t, "install.encrypted_partitions");
    users = kyaml_get(t, "users");
    CHECK(kyaml_count(parts) == 2 && !strcmp(kyaml_scalar(kyaml_item(parts, 1)), "COS_OEM") && kyaml_count(users) == 2,
          "lists from several files merge as upstream's collector does");
    kconfig_free(c);
    check_kcrypt("config/layout", "settings come from every directory", "http://override:30000", true, 0x1500001,
                 KCONFIG_DEFAULT_C_INDEX, "/dev/tpmrm0");
}

static void test_cmdline_overrides_files(void)
{
    struct kconfig *c = NULL;
    struct kcrypt_config k = {0};

    setenv("KAIROS_KMS_ROOT", tap_data("config/cmdline"), 1);
    CHECK(kconfig_load(NULL, &c) == 0 && kconfig_kcrypt(c, &k) == 0, "KAIROS_KMS_ROOT prefixes every path");
    unsetenv("KAIROS_KMS_ROOT");
    CHECK(!strcmp(k.challenger_server, "http://h:30000") && k.mdns, "cmdline keys override the config files");
    CHECK(!strcmp(k.certificate, "two words") && !strcmp(k.tpm_device, "/dev/tpm rm0") && k.nv_index == 0x1800000,
          "quoted cmdline words keep their blanks");
    CHECK(kyaml_get(kconfig_tree(c), "quiet") == NULL && kyaml_get(kconfig_tree(c), "rd") == NULL,
          "only kcrypt. keys of the cmdline are merged");
    CHECK(ends_with(kconfig_source(c, kconfig_source_count(c) - 1), "/proc/cmdline"), "the cmdline is merged last");
    kconfig_kcrypt_clear(&k);
    kconfig_free(c);
}

static void test_bad_files(void)
{
    struct kconfig *c = NULL;
    struct kcrypt_config k;
    const char *log;

    tap_capture_begin();
    CHECK(load("config/bad-yaml", false, &c) == 0 && kconfig_source_count(c) == 1,
          "a file with invalid YAML is skipped");
    log = tap_capture_end();
    CHECK(strstr(log, "/bad-yaml/oem/90_custom.yaml:6:12: mapping values are not allowed"),
          "the skipped file's error names file:line:col");
    CHECK(str_at(kconfig_tree(c), "kcrypt.challenger.challenger_server", "http://good:30000"),
          "the other files are still used");
    kconfig_free(c);
    c = NULL;
    CHECK(load("config/bad-yaml", true, &c) == -EINVAL && c == NULL, "strict mode makes invalid YAML an error");
    CHECK(load("config/bad-value", true, &c) == 0, "a bad value does not stop the scan");
    tap_capture_begin();
    CHECK(kconfig_kcrypt(c, &k) == -EINVAL, "nv_index: banana is an error");
    CHECK(strstr(tap_capture_end(), "/bad-value/oem/90_custom.yaml:7:13: kcrypt.nv_index: \"banana\" is not"),
          "the error names the key and the file it came from");
    kconfig_free(c);
}

static void write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    (void)!write(fd, text, strlen(text));
    close(fd);
}

static void test_hostile_trees(void)
{
    char root[] = "/tmp/kkms-test-yaml-XXXXXX", p[512], q[512];
    struct kconfig *c = NULL;
    struct kcrypt_config k = {0};
    struct kconfig_opts o = {.root = root};
    _cleanup_free_ char *big = xmalloc(KCONFIG_MAX_FILE + 64);
    int64_t t0;
    int fd;

    if (!mkdtemp(root))
        return;
#define P(x) (snprintf(p, sizeof(p), "%s%s", root, x), p)
#define Q(x) (snprintf(q, sizeof(q), "%s%s", root, x), q)
    mkdir(P("/oem"), 0755);
    mkdir(P("/oem/34_dir.yaml"), 0755);
    mkdir(P("/elsewhere"), 0755);
    mkdir(P("/sysroot"), 0755);
    write_text(P("/oem/20_ok.yaml"), "#cloud-config\nkcrypt:\n  challenger:\n    challenger_server: http://ok:30000\n");
    write_text(P("/oem/34_dir.yaml/inner.yaml"), "#cloud-config\nkcrypt:\n  tpm_device: /dev/inner\n");
    write_text(P("/elsewhere/linked.yaml"), "#cloud-config\nkcrypt:\n  challenger:\n    mdns: true\n");
    write_text(P("/elsewhere/not-walked.yaml"), "#cloud-config\nkcrypt:\n  c_index: 0x81000010\n");
    memset(big, '#', KCONFIG_MAX_FILE + 63);
    memcpy(big, "#cloud-config\nkcrypt: {nv_index: 0x1500002}\n", 44);
    big[KCONFIG_MAX_FILE + 63] = '\0';
    write_text(P("/oem/10_big.yaml"), big);
    symlink("30_loop_b.yaml", P("/oem/30_loop_a.yaml"));
    symlink("30_loop_a.yaml", P("/oem/30_loop_b.yaml"));
    symlink("nowhere.yaml", P("/oem/31_dangling.yaml"));
    mkfifo(P("/oem/32_fifo.yaml"), 0644);
    symlink("../elsewhere/linked.yaml", P("/oem/33_link.yaml"));
    symlink(".", P("/oem/dirloop"));
    symlink("../elsewhere", P("/oem/linkdir"));
    symlink("../oem", P("/sysroot/oem"));                           /* /oem again under another name: read once */
    fd = open(P("/oem/35_unreadable.yaml"), O_WRONLY | O_CREAT, 0); /* root can still read it */
    (void)!write(fd, "#cloud-config\nunreadable: true\n", 31);
    close(fd);

    tap_capture_begin();
    t0 = now_ms();
    CHECK(kconfig_load(&o, &c) == 0 && kconfig_kcrypt(c, &k) == 0 && now_ms() - t0 < 5000,
          "loops, FIFOs, dangling links and unreadable files neither hang nor fail the scan");
    tap_capture_end();
    CHECK(!strcmp(k.challenger_server, "http://ok:30000") && k.nv_index == KCONFIG_DEFAULT_NV_INDEX,
          "a file over 1 MiB is skipped");
    CHECK(k.mdns && !strcmp(k.tpm_device, "/dev/inner") && k.c_index == KCONFIG_DEFAULT_C_INDEX,
          "symlinks to files are followed, symlinked directories are not walked");
    CHECK(kconfig_source_count(c) == 3 + (geteuid() == 0), "a file reached twice is read once");
    kconfig_kcrypt_clear(&k);
    kconfig_free(c);
    snprintf(q, sizeof(q), "rm -rf '%s'", root);
    (void)!system(q);
#undef P
#undef Q
}

int main(void)
{
    test_parse_records_positions_and_kinds();
    test_nulls_and_strings();
    test_multi_document_input();
    test_errors_name_file_line_column();
    test_bounds();
    test_typed_getters();
    test_quote_for_logs();
    test_handles_must_be_in_their_tpm_range();
    test_first_boot_encryption_settings();
    test_measured_boot_settings();
    test_merge_rules();
    test_cmdline_split_like_shlex();
    test_cmdline_tree();
    test_header_detection();
    test_kcrypt_key_locations();
    test_scan_selection_and_order();
    test_cmdline_overrides_files();
    test_bad_files();
    test_hostile_trees();
    return tap_done();
}
