/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The kcrypt applet's key sources: the discovery plugins (a KMS) or the local TPM NV index. */
#include <string.h>

#include "kcrypt.h"
#include "plugin.h"
#include "tpm.h"

bool kcrypt_uses_kms(const struct kcrypt_ctx *k) { return k->cfg.challenger_server[0] || k->cfg.mdns; }

static int key_from_plugins(const struct kcrypt_ctx *k, const struct luks_part *p, struct secret **out)
{
    struct plugin_opts o = {
        .root = k->root,
        .timeout_ms = k->plugin_timeout_ms,
        .dirs = k->plugin_dirs,
        .n_dirs = k->n_plugin_dirs,
        .challenger_server = k->cfg.challenger_server,
        .mdns = k->cfg.mdns,
    };
    struct plugin_partition part = {
        .name = p->name,
        .label = luks_part_label(p),
        .partition_label = p->partition_label,
        .uuid = p->uuid,
        .size_bytes = p->size,
        .fs = p->fs,
        .mount_point = p->mount_point,
        .read_only = p->read_only,
    };
    int r = plugin_get_password(&o, &part, out);

    if (r == -ENOENT)
        log_error("%s: a KMS is configured (kcrypt.challenger) but no kcrypt-discovery-* plugin was found "
                  "that may run in $PATH, /system/discovery, /oem/system/discovery or a --plugin-dir",
                  p->device);
    return r;
}

static int key_from_tpm(const struct kcrypt_ctx *k, bool create, struct secret **out)
{
    _cleanup_tpm_ struct tpm *tpm = NULL;
    const char *device = k->tpm.device ? k->tpm.device : (k->cfg.tpm_device[0] ? k->cfg.tpm_device : NULL);
    int r = tpm_open(device, k->tpm.timeout_ms, &tpm);

    if (r < 0)
        return r;
    return tpm_offline_passphrase(tpm, k->cfg.nv_index, k->cfg.c_index, create, out);
}

int kcrypt_get_key(const struct kcrypt_ctx *k, const struct luks_part *p, bool create, struct secret **out,
                   enum key_origin *origin)
{
    if (kcrypt_uses_kms(k)) {
        *origin = KEY_FROM_PLUGIN;
        return key_from_plugins(k, p, out);
    }
    *origin = KEY_FROM_TPM_NV;
    return key_from_tpm(k, create, out);
}
