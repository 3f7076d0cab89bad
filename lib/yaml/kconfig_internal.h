/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/yaml private: the directory walk and file reads behind kconfig_load. */
#ifndef KKMS_KCONFIG_INTERNAL_H
#define KKMS_KCONFIG_INTERNAL_H

#include <sys/types.h>

#include "kconfig.h"

struct kconfig_scan {
    char **paths; /* candidate files, in merge order */
    size_t npaths;
    struct kconfig_fileid {
        dev_t dev;
        ino_t ino;
    } * seen; /* files already read */
    size_t nseen;
    size_t total; /* bytes read so far */
};

/* Appends the candidate config files under dir (recursively, upstream order) to s->paths. */
void kconfig_scan_dir(struct kconfig_scan *s, const char *dir);
/* Reads a candidate: 1 with *buf (caller frees) when it is a config file to parse, 0 when it is
 * skipped (too large, no header, already read, unreadable: logged). */
int kconfig_scan_read(struct kconfig_scan *s, const char *path, char **buf, size_t *len);
void kconfig_scan_done(struct kconfig_scan *s);

#endif
