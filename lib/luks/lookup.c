/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Finding partitions in a luks_scan list by label, and the ones still locked. */
#include <string.h>
#include <unistd.h>

#include "luks_internal.h"

/* Legacy Kairos disks whose LUKS header has no label are known by their GPT name
 * (docs/upstream.md §3.1, §3.5: oem -> COS_OEM, persistent -> COS_PERSISTENT). */
static const struct {
    const char *label, *partlabel;
} legacy[] = {
    {"COS_OEM", "oem"},
    {"COS_PERSISTENT", "persistent"},
};

static const char *legacy_partlabel(const char *label)
{
    for (size_t i = 0; i < sizeof(legacy) / sizeof(*legacy); i++)
        if (!strcmp(label, legacy[i].label))
            return legacy[i].partlabel;
    return NULL;
}

const char *luks_part_label(const struct luks_part *p)
{
    if (p->label[0])
        return p->label;
    for (size_t i = 0; i < sizeof(legacy) / sizeof(*legacy); i++)
        if (!strcmp(p->partition_label, legacy[i].partlabel))
            return legacy[i].label;
    return "";
}

int luks_find_by_label(const struct luks_part *parts, size_t n, const char *label, const struct luks_part **out)
{
    const char *partlabel;
    const struct luks_part *found = NULL;

    if (!label || !*label)
        return log_error_errno(-EINVAL, "no label given");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(parts[i].label, label) != 0)
            continue;
        if (!found)
            found = &parts[i];
        else
            log_debug("label %s is also on %s; using %s", label, parts[i].device, found->device);
    }
    partlabel = legacy_partlabel(label);
    for (size_t i = 0; !found && partlabel && i < n; i++)
        if (!parts[i].label[0] && !strcmp(parts[i].partition_label, partlabel))
            found = &parts[i];
    if (!found) {
        if (partlabel)
            return log_error_errno(-ENOENT, "no partition has the label %s or the name %s", label, partlabel);
        return log_error_errno(-ENOENT, "no partition has the label %s", label);
    }
    *out = found;
    return 0;
}

size_t luks_list_locked(const char *root_prefix, const struct luks_part *parts, size_t n, const struct luks_part **out)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *rel = NULL, *mapper = NULL;

        if (strcmp(parts[i].fs, "crypto_LUKS") != 0 || parts[i].has_holders)
            continue;
        /* Upstream's test (docs/upstream.md §3.5): unlocked means /dev/mapper/<kernel name> exists. A mapping
         * under another name (systemd's luks-<uuid>) shows up as a holder instead. */
        rel = xmalloc(strlen(parts[i].name) + sizeof("/dev/mapper/"));
        strcpy(rel, "/dev/mapper/");
        strcat(rel, parts[i].name);
        mapper = luks_root_path(root_prefix, rel);
        if (access(mapper, F_OK) == 0)
            continue;
        out[k++] = &parts[i];
    }
    return k;
}
