/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kmod_load_at (lib/base/kmod.c) on a fake root: how modules.dep is read, dependencies ordered,
 * names normalised, and failures reported. Loading real modules is proved in the VM tests
 * (test_offline.sh: kcrypt loads dm_mod, dm_crypt, xts, ecb, crc32c_generic in the guest). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../unit/tap.h"
#include "base.h"

static char root[256], moddir[512];

static void put(const char *rel, const char *text)
{
    char path[1024], cmd[1200];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
    if (system(cmd) != 0)
        abort();
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

static void rm(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    unlink(path);
}

int main(void)
{
    struct utsname u;
    char why[1024], rel[600], cmd[600];
    int r;

    snprintf(root, sizeof(root), "/tmp/kkms-kmod.XXXXXX");
    if (!mkdtemp(root) || uname(&u) < 0)
        return 1;
    snprintf(moddir, sizeof(moddir), "lib/modules/%s", u.release);

    put("sys/module/dm_mod/initstate", "live\n");
    why[0] = '\0';
    CHECK(kmod_load_at(root, "dm-mod", why, sizeof(why)) == 0 && !why[0],
          "a loaded module (/sys/module/dm_mod) is success, dm-mod and dm_mod being the same name");

    r = kmod_load_at(root, "xts", why, sizeof(why));
    CHECK(r == -ENOPKG && strstr(why, "modules.dep"), "no modules.dep: -ENOPKG, and the reason names it (%s)", why);

    snprintf(rel, sizeof(rel), "%s/modules.builtin", moddir);
    put(rel, "kernel/crypto/aes_generic.ko\nkernel/drivers/char/tpm/tpm_tis.ko\n");
    CHECK(kmod_load_at(root, "aes_generic", why, sizeof(why)) == 0, "a built-in module without modules.dep is success");

    snprintf(rel, sizeof(rel), "%s/modules.dep", moddir);
    put(rel, "kernel/crypto/ecb.ko:\n"
             "kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\n"
             "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n"
             "kernel/crypto/xts.ko.zst:\n");
    CHECK(kmod_load_at(root, "tpm-tis", why, sizeof(why)) == 0, "a built-in module absent from modules.dep is success");
    r = kmod_load_at(root, "nosuchmodule", why, sizeof(why));
    CHECK(r == -ENOENT && strstr(why, "nosuchmodule") && strstr(why, "not in"),
          "an unknown module: -ENOENT naming it (%s)", why);

    /* dm_mod is loaded (fake /sys/module), so dm_crypt itself is what kmod tries to open. */
    r = kmod_load_at(root, "dm-crypt", why, sizeof(why));
    CHECK(r == -ENOENT && strstr(why, "kernel module dm_crypt: cannot open") && strstr(why, "dm-crypt.ko"),
          "a loaded dependency is skipped; the module's own file is opened (%s)", why);

    /* ext4's deps are listed in reverse load order: jbd2 is the first to load. */
    r = kmod_load_at(root, "ext4", why, sizeof(why));
    CHECK(r == -ENOENT && strstr(why, "jbd2 (needed by ext4)"),
          "dependencies load first, last listed first: jbd2 before mbcache, crc16, ext4 (%s)", why);

    rm("sys/module/dm_mod/initstate");
    snprintf(cmd, sizeof(cmd), "rmdir %s/sys/module/dm_mod", root);
    CHECK(system(cmd) == 0, "(fake dm_mod unloaded)");
    r = kmod_load_at(root, "dm_crypt", why, sizeof(why));
    CHECK(r == -ENOENT && strstr(why, "dm_mod (needed by dm_crypt)"), "an unloaded dependency is loaded first (%s)",
          why);

    /* A file that is not a module: the kernel (or the container's seccomp policy) refuses it,
     * and the reason names finit_module and the file. Nothing can be loaded by accident. */
    snprintf(rel, sizeof(rel), "%s/kernel/crypto/ecb.ko", moddir);
    put(rel, "not an ELF module\n");
    r = kmod_load_at(root, "ecb", why, sizeof(why));
    CHECK(r < 0 && strstr(why, "finit_module") && strstr(why, "ecb.ko"), "a bad .ko is refused with a reason (%s)",
          why);
    snprintf(rel, sizeof(rel), "%s/kernel/crypto/xts.ko.zst", moddir);
    put(rel, "not zstd\n");
    r = kmod_load_at(root, "xts", why, sizeof(why));
    CHECK(r < 0 && strstr(why, "xts.ko.zst"), "a compressed module goes to the kernel as compressed (%s)", why);

    /* Bounded: more than 64 dependencies is refused before any is loaded. */
    {
        char *big = xmalloc(80 * 40 + 64);
        size_t n = (size_t)sprintf(big, "kernel/huge.ko:");
        for (int i = 0; i < 80; i++)
            n += (size_t)sprintf(big + n, " kernel/dep%d.ko", i);
        strcpy(big + n, "\n");
        snprintf(rel, sizeof(rel), "%s/modules.dep", moddir);
        put(rel, big);
        free(big);
    }
    r = kmod_load_at(root, "huge", why, sizeof(why));
    CHECK(r == -E2BIG && strstr(why, "more than 64"), "more than 64 dependencies: -E2BIG (%s)", why);
    CHECK(kmod_load_at(root, "", why, sizeof(why)) == -EINVAL, "an empty name is refused");

    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
