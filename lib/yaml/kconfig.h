/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/yaml: the Kairos configuration, found and merged as upstream does (docs/upstream.md §2).
 *
 * Files: every directory of opts->dirs (default: /oem, /sysroot/oem, /run/cos/oem, /tmp/oem, the
 * union of what the G3 SDK and the G1 plugin read) is walked recursively, depth first, entries of
 * a directory in byte order of their names (Go filepath.Walk order); directories are taken in the
 * listed order, so a file in /tmp/oem overrides one in /oem. A file is read when its name ends in
 * .yml or .yaml, it is a regular file (a symlink to a regular file counts; symlinked directories
 * below the listed ones are not descended, as filepath.Walk), at most KCONFIG_MAX_FILE bytes
 * (upstream's check, by integer division, lets up to 2 MiB - 1 through), and one of its first 10
 * lines is #cloud-config, #kairos-config or #node-config (trailing blanks ignored). Only the first
 * YAML document of a file is used (Go yaml.Unmarshal). A file reached twice (same device and
 * inode, e.g. /oem bind-mounted at /sysroot/oem) is read once. Unreadable entries, symlink
 * loops, FIFOs and devices are skipped with a warning or silently, never waited on.
 * A file with invalid YAML, or whose top level is not a map, is reported (file:line:col) and
 * skipped, as upstream skips it; with opts->strict it is an error instead.
 *
 * Then the kernel command line (opts->cmdline, default /proc/cmdline) is merged on top, keeping
 * only keys under `kcrypt.`: `kcrypt.challenger.challenger_server=http://h:30000` equals the YAML
 * key; a bare token means true; `kairos.config=KEY=VALUE` stanzas apply after the plain words, as
 * upstream. A cmdline that cannot be read is a warning. Merge rules: kyaml_merge.
 *
 * Every path (directories and the cmdline file) is prefixed with opts->root, or with the
 * environment variable KAIROS_KMS_ROOT when opts->root is NULL, so tests can use a tree of their own. */
#ifndef KKMS_KCONFIG_H
#define KKMS_KCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kyaml.h"

#define KCONFIG_MAX_FILE (1u << 20)   /* upstream skips files over 1 MB */
#define KCONFIG_MAX_TOTAL (16u << 20) /* bytes of config read in one load */
#define KCONFIG_MAX_FILES 4096
#define KCONFIG_MAX_DIR_DEPTH 32
#define KCONFIG_MAX_CMDLINE 65536
#define KCONFIG_MAX_CMDLINE_KEYS 1024
#define KCONFIG_MAX_KEY_PARTS 16

#define KCONFIG_DEFAULT_NV_INDEX 0x1500000u /* docs/tpm.md §5 */
#define KCONFIG_DEFAULT_C_INDEX 0x81000008u

struct kconfig_opts {
    const char *root;        /* prefix of every path; NULL: $KAIROS_KMS_ROOT, or none */
    const char *const *dirs; /* NULL-terminated; NULL: kconfig_default_dirs */
    const char *cmdline;     /* NULL: "/proc/cmdline" */
    bool no_cmdline;         /* do not merge the kernel command line */
    bool strict;             /* a bad config file fails the load instead of being skipped */
};

/* /oem, /sysroot/oem, /run/cos/oem, /tmp/oem (NULL-terminated). */
extern const char *const kconfig_default_dirs[];

struct kconfig;

/* Finds, reads and merges the configuration; opts may be NULL. *out is owned by the caller
 * (kconfig_free). Missing directories or cmdline are not errors: the result is then empty. */
int kconfig_load(const struct kconfig_opts *opts, struct kconfig **out);
/* Frees c (NULL is fine). */
void kconfig_free(struct kconfig *c);
/* The merged tree, borrowed from c; NULL when nothing was found. */
const struct kyaml_node *kconfig_tree(const struct kconfig *c);
/* Paths of the files merged, in merge order (the cmdline last when it added keys); borrowed. */
size_t kconfig_source_count(const struct kconfig *c);
const char *kconfig_source(const struct kconfig *c, size_t i);

/* True when one of the first 10 lines of buf is a valid Kairos header (upstream HasValidHeader). */
bool kconfig_has_valid_header(const char *buf, size_t len);

/* ---- kernel command line ---- */
/* Splits a command line into words like google/shlex (see cmdline.c); *argv is NULL-terminated
 * and owned by the caller (kconfig_strv_free). -EINVAL on an unterminated quote or trailing
 * backslash, *argv then holding the words before it (upstream keeps those). */
int kconfig_cmdline_split(const char *cmdline, char ***argv, size_t *argc);
void kconfig_strv_free(char **argv);
/* Turns the KEY=VALUE words (then kairos.config=KEY=VALUE stanzas) whose KEY starts with prefix
 * (NULL: all) into a map tree, a later word winning; values stay strings; name is
 * the source given to its nodes (line and column of each word). *out is owned by the caller
 * (kyaml_free), NULL when no word matched. */
int kconfig_cmdline_tree(const char *cmdline, const char *prefix, const char *name, struct kyaml_node **out);

/* ---- the resolved kcrypt settings ---- */
struct kcrypt_config {
    char *challenger_server;     /* kcrypt.challenger.challenger_server, as written ("" = none) */
    bool mdns;                   /* kcrypt.challenger.mdns */
    char *certificate;           /* kcrypt.challenger.certificate: PEM text ("" = none) */
    uint32_t nv_index;           /* offline-mode NV index */
    uint32_t c_index;            /* persistent RSA key handle */
    char *tpm_device;            /* "" = find the TPM automatically */
    bool encrypt_on_boot;        /* kcrypt.encrypt_on_boot: unlock-all encrypts the partitions below
                              * in place when they are not LUKS yet (first boot of a cloned image) */
    char **encrypted_partitions; /* install.encrypted_partitions: labels, NULL-terminated (never NULL) */
    size_t n_encrypted_partitions;
    /* Measured-boot local mode (README.md "Measured boot"): */
    bool tpm_pcrs_set;   /* kcrypt.tpm_pcrs given: encrypt seals to PCRs instead of the NV blob */
    uint32_t tpm_pcrs;   /* its PCRs, bit i = PCR i (a list [7, 11], a number, or "7+11") */
    bool tpm_pcrs_defer; /* kcrypt.tpm_pcrs_defer: seal to no PCRs at install, to tpm_pcrs at the
                              * first unlock */
    bool recovery_key;   /* kcrypt.recovery_key: encrypt also adds a systemd recovery key */
};

#define KCONFIG_MAX_ENCRYPTED_PARTITIONS 64

/* Resolves the kcrypt settings of the merged config. nv_index, c_index and tpm_device are read
 * from kcrypt.challenger.* (G1, and where kairos-agent copies them on the cmdline) and from
 * kcrypt.* (G3); kcrypt.challenger.* wins when both are set (with a warning if they differ), so
 * a cmdline override always takes effect. An empty string or null counts as unset. A value of the
 * wrong kind is an error naming the key and its file:line:col. Strings in *out are never NULL and
 * are owned by *out (kconfig_kcrypt_clear). */
int kconfig_kcrypt(const struct kconfig *c, struct kcrypt_config *out);
/* The same from any merged tree (root may be NULL: defaults). */
int kconfig_kcrypt_from_tree(const struct kyaml_node *root, struct kcrypt_config *out);
/* Frees the strings of k and zeroes it (NULL is fine). */
void kconfig_kcrypt_clear(struct kcrypt_config *k);

#endif
