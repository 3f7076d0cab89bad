/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The kernel modules kcrypt needs, loaded by kcrypt itself so that an initramfs without udev or
 * modprobe works (docs/luks.md §6): device-mapper and dm-crypt; ecb and xts, without which
 * dm-crypt cannot build aes-xts-plain64 (-ENOENT) when the kernel cannot auto-load them; and
 * crc32c_generic, which ext4 asks the crypto API for when the filesystem is mounted. */
#include <stdio.h>
#include <string.h>

#include "kcrypt.h"

void kcrypt_load_modules(void)
{
    static const char *const modules[] = {"dm_mod", "dm_crypt", "ecb", "xts", "crc32c_generic"};
    char why[1024], missing[128] = "";

    for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
        int r = kmod_load_at(NULL, modules[i], why, sizeof(why));
        if (r == -ENOPKG) {
            /* No modules.dep at all: the kernel has these built in, or nothing can be done. */
            size_t used = strlen(missing);
            snprintf(missing + used, sizeof(missing) - used, "%s%s", used ? " " : "", modules[i]);
        } else if (r < 0) {
            log_warn("%s", why);
        }
    }
    if (missing[0])
        log_debug("no modules.dep for this kernel; assuming built in: %s", missing);
}
