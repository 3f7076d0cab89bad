/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Loading kernel modules without modprobe or udev: an initramfs made of busybox and this binary
 * has neither a working /sbin/modprobe (the kernel's crypto auto-load goes through it) nor a
 * libkmod, so we read the text modules.dep that depmod writes and call finit_module ourselves
 * (docs/luks.md §6: dm-crypt needs ecb for xts(aes), ext4 needs crc32c_generic). */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base.h"

/* finit_module(2) flag: the kernel decompresses .ko.xz/.ko.zst/.ko.gz itself (Linux 5.17+ built
 * with CONFIG_MODULE_DECOMPRESS); older kernels answer EINVAL. */
#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

/* modules.dep of a full distribution kernel is about 1 MiB; a module depends on a few dozen at most. */
#define KMOD_MAX_DEP_FILE (16u << 20)
#define KMOD_MAX_DEPS 64
#define KMOD_NAME_MAX 64

/* The module name of a modules.dep path or a user-given name: basename, no .ko suffix, '-' as
 * '_' (the kernel's spelling in /sys/module). */
static void module_name(const char *s, size_t n, char out[KMOD_NAME_MAX])
{
    const char *slash = memrchr(s, '/', n);
    size_t len;

    if (slash) {
        n -= (size_t)(slash + 1 - s);
        s = slash + 1;
    }
    const char *ko = NULL;
    for (size_t i = 0; i + 3 <= n; i++)
        if (!memcmp(s + i, ".ko", 3) && (i + 3 == n || s[i + 3] == '.'))
            ko = s + i;
    len = ko ? (size_t)(ko - s) : n;
    if (len >= KMOD_NAME_MAX)
        len = KMOD_NAME_MAX - 1;
    for (size_t i = 0; i < len; i++)
        out[i] = s[i] == '-' ? '_' : s[i];
    out[len] = '\0';
}

static bool module_is_loaded(const char *root, const char *name)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/sys/module/%s", root, name);
    return stat(path, &st) == 0;
}

/* True when modules.builtin (one path per line) names the module: built into the kernel. */
static bool module_is_builtin(const char *moddir, const char *name)
{
    char path[512], *text = NULL, *line, *save = NULL, m[KMOD_NAME_MAX];
    bool found = false;

    snprintf(path, sizeof(path), "%s/modules.builtin", moddir);
    if (file_read_all(path, KMOD_MAX_DEP_FILE, &text, NULL) < 0)
        return false;
    for (line = strtok_r(text, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save)) {
        module_name(line, strlen(line), m);
        found = !strcmp(m, name);
    }
    free(text);
    return found;
}

/* Writes the reason of a failure into why and returns r. */
static int fail(int r, char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(int r, char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return r;
}

/* Loads one module file, name, needed by want; 0 when it is now loaded (EEXIST included). */
static int load_file(const char *moddir, const char *rel, const char *name, const char *want, char *why, size_t why_len)
{
    char who[2 * KMOD_NAME_MAX + 24];
    char path[1024];
    size_t n = strlen(rel);
    bool compressed = n > 3 && strcmp(rel + n - 3, ".ko") != 0;
    _cleanup_close_ int fd = -1;

    if (strcmp(name, want))
        snprintf(who, sizeof(who), "%s (needed by %s)", name, want);
    else
        snprintf(who, sizeof(who), "%s", name);
    if (rel[0] == '/')
        snprintf(path, sizeof(path), "%s", rel);
    else
        snprintf(path, sizeof(path), "%s/%s", moddir, rel);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(-errno, why, why_len, "kernel module %s: cannot open %s: %s", who, path, strerror(errno));
    if (syscall(SYS_finit_module, fd, "", compressed ? MODULE_INIT_COMPRESSED_FILE : 0) == 0 || errno == EEXIST)
        return 0;
    if (compressed && (errno == EINVAL || errno == EOPNOTSUPP))
        return fail(-errno, why, why_len,
                    "kernel module %s: %s is compressed and this kernel cannot "
                    "decompress modules (CONFIG_MODULE_DECOMPRESS); install it uncompressed",
                    who, path);
    return fail(-errno, why, why_len, "kernel module %s: finit_module %s: %s", who, path, strerror(errno));
}

int kmod_load_at(const char *root, const char *want, char *why, size_t why_len)
{
    char name[KMOD_NAME_MAX], moddir[512], path[600], m[KMOD_NAME_MAX];
    _cleanup_free_ char *text = NULL;
    char *line, *save = NULL, *deps = NULL, *file = NULL;
    char *dep[KMOD_MAX_DEPS];
    struct utsname u;
    size_t ndep = 0;
    int r;

    if (!root)
        root = "";
    module_name(want, strlen(want), name);
    if (!name[0])
        return fail(-EINVAL, why, why_len, "kernel module name \"%s\" is empty", want);
    if (module_is_loaded(root, name))
        return 0;
    if (uname(&u) < 0)
        return fail(-errno, why, why_len, "kernel module %s: uname: %s", name, strerror(errno));
    snprintf(moddir, sizeof(moddir), "%s/lib/modules/%s", root, u.release);
    snprintf(path, sizeof(path), "%s/modules.dep", moddir);
    r = file_read_all(path, KMOD_MAX_DEP_FILE, &text, NULL);
    if (r < 0) {
        if (module_is_builtin(moddir, name))
            return 0;
        return fail(r == -ENOENT ? -ENOPKG : r, why, why_len, "kernel module %s: cannot read %s: %s", name, path,
                    strerror(-r));
    }
    /* "kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko ...": the dependencies, all of
     * them (depmod writes the closure), in reverse load order. */
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        module_name(line, (size_t)(colon - line), m);
        if (!strcmp(m, name)) {
            *colon = '\0';
            file = line;
            deps = colon + 1;
            break;
        }
    }
    if (!file) {
        if (module_is_builtin(moddir, name))
            return 0;
        return fail(-ENOENT, why, why_len, "kernel module %s: not in %s (not built for kernel %s?)", name, path,
                    u.release);
    }
    for (char *tok = strtok_r(deps, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (ndep == KMOD_MAX_DEPS)
            return fail(-E2BIG, why, why_len, "kernel module %s: more than %d dependencies in %s", name, KMOD_MAX_DEPS,
                        path);
        dep[ndep++] = tok;
    }
    while (ndep > 0) {
        const char *d = dep[--ndep];
        module_name(d, strlen(d), m);
        if (module_is_loaded(root, m))
            continue;
        r = load_file(moddir, d, m, name, why, why_len);
        if (r < 0)
            return r;
    }
    return load_file(moddir, file, name, name, why, why_len);
}

int kmod_load(const char *name)
{
    char why[1024];
    int r = kmod_load_at(NULL, name, why, sizeof(why));

    if (r < 0)
        log_error("%s", why);
    return r;
}
