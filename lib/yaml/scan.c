/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Finding Kairos config files: the walk of upstream collector.Scan (docs/upstream.md §2.1),
 * made safe against loops, FIFOs and huge files. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "kconfig_internal.h"

static bool has_config_ext(const char *name)
{
    size_t len = strlen(name);
    return (len >= 4 && !strcmp(name + len - 4, ".yml")) || (len >= 5 && !strcmp(name + len - 5, ".yaml"));
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void add_path(struct kconfig_scan *s, const char *path)
{
    if (s->npaths == KCONFIG_MAX_FILES) {
        log_warn("%s: more than %d config files; ignoring the rest", path, KCONFIG_MAX_FILES);
        return;
    }
    if (s->npaths % 32 == 0) {
        char **p = xcalloc(s->npaths + 32, sizeof(*p));
        if (s->npaths)
            memcpy(p, s->paths, s->npaths * sizeof(*p));
        free(s->paths);
        s->paths = p;
    }
    s->paths[s->npaths++] = xstrdup(path);
}

/* Sorted entry names of the directory at path (NULL-terminated, caller frees), or NULL. */
static char **list_dir(const char *path, unsigned depth)
{
    /* Below the top level only real directories are entered; O_NOFOLLOW closes the race where
     * one is swapped for a symlink after lstat. */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (depth ? O_NOFOLLOW : 0));
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    if (!d) {
        if (errno == ENOENT && depth == 0)
            log_debug("%s: no such directory", path);
        else
            log_warn("skipping directory %s: %m", path);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n + 1 >= cap) {
            char **nn = xcalloc(cap = cap ? cap * 2 : 16, sizeof(*nn));
            if (n)
                memcpy(nn, names, n * sizeof(*nn));
            free(names);
            names = nn;
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (!names)
        names = xcalloc(1, sizeof(*names));
    qsort(names, n, sizeof(*names), name_cmp);
    return names;
}

static void walk(struct kconfig_scan *s, char *path, size_t plen, unsigned depth)
{
    char **names = list_dir(path, depth);

    for (size_t i = 0; names && names[i]; i++) {
        size_t nlen = strlen(names[i]);
        struct stat st;

        if (plen + 1 + nlen >= PATH_MAX) {
            log_warn("skipping %s/%s: path too long", path, names[i]);
            continue;
        }
        path[plen] = '/';
        memcpy(path + plen + 1, names[i], nlen + 1);
        if (lstat(path, &st) < 0) {
            log_warn("skipping %s: %m", path);
        } else if (S_ISDIR(st.st_mode)) {
            if (depth + 1 >= KCONFIG_MAX_DIR_DEPTH)
                log_warn("skipping %s: more than %d directories deep", path, KCONFIG_MAX_DIR_DEPTH);
            else
                walk(s, path, plen + 1 + nlen, depth + 1);
        } else if (has_config_ext(names[i])) {
            /* A symlink counts when it leads to a regular file; a loop fails here with ELOOP. */
            if (S_ISLNK(st.st_mode) && stat(path, &st) < 0)
                log_warn("skipping %s: %m", path);
            else if (S_ISREG(st.st_mode))
                add_path(s, path);
            else
                log_debug("skipping %s: not a regular file", path);
        }
        path[plen] = '\0';
    }
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

void kconfig_scan_dir(struct kconfig_scan *s, const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);

    if (len >= sizeof(path)) {
        log_warn("skipping %.64s...: path too long", dir);
        return;
    }
    memcpy(path, dir, len + 1);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    walk(s, path, len, 0);
}

bool kconfig_has_valid_header(const char *buf, size_t len)
{
    static const char *const headers[] = {"#cloud-config", "#kairos-config", "#node-config"};
    const char *p = buf, *end = buf + len;

    for (int line = 0; line < 10 && p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        size_t l;

        while (e > p && isspace((unsigned char)e[-1]))
            e--;
        l = (size_t)(e - p);
        for (size_t i = 0; i < 3; i++)
            if (l == strlen(headers[i]) && !memcmp(p, headers[i], l))
                return true;
        if (!nl)
            break;
        p = nl + 1;
    }
    return false;
}

static bool seen_before(struct kconfig_scan *s, const struct stat *st)
{
    for (size_t i = 0; i < s->nseen; i++)
        if (s->seen[i].dev == st->st_dev && s->seen[i].ino == st->st_ino)
            return true;
    if (s->nseen % 32 == 0) {
        struct kconfig_fileid *n = xcalloc(s->nseen + 32, sizeof(*n));
        if (s->nseen)
            memcpy(n, s->seen, s->nseen * sizeof(*n));
        free(s->seen);
        s->seen = n;
    }
    s->seen[s->nseen++] = (struct kconfig_fileid){st->st_dev, st->st_ino};
    return false;
}

int kconfig_scan_read(struct kconfig_scan *s, const char *path, char **buf, size_t *len)
{
    /* O_NONBLOCK: if the file became a FIFO since the walk, the open must not wait for a writer. */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    _cleanup_free_ char *data = NULL;
    struct stat st;
    size_t n = 0;

    if (fd < 0 || fstat(fd, &st) < 0) {
        log_warn("skipping %s: %m", path);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        log_warn("skipping %s: not a regular file", path);
        return 0;
    }
    if (seen_before(s, &st)) {
        log_debug("skipping %s: already read under another name", path);
        return 0;
    }
    if (st.st_size > (off_t)KCONFIG_MAX_FILE) {
        log_warn("skipping %s: larger than %u bytes", path, KCONFIG_MAX_FILE);
        return 0;
    }
    if (s->total + (size_t)st.st_size > KCONFIG_MAX_TOTAL) {
        log_warn("skipping %s: more than %u bytes of config in total", path, KCONFIG_MAX_TOTAL);
        return 0;
    }
    data = xmalloc(KCONFIG_MAX_FILE + 2);
    for (;;) {
        ssize_t r = read(fd, data + n, KCONFIG_MAX_FILE + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            log_warn("skipping %s: %m", path);
            return 0;
        }
        if (r == 0 || (n += (size_t)r) > KCONFIG_MAX_FILE)
            break;
    }
    if (n > KCONFIG_MAX_FILE) {
        log_warn("skipping %s: larger than %u bytes", path, KCONFIG_MAX_FILE);
        return 0;
    }
    s->total += n;
    if (!kconfig_has_valid_header(data, n)) {
        log_debug("skipping %s: no #cloud-config, #kairos-config or #node-config header", path);
        return 0;
    }
    data[n] = '\0';
    *buf = TAKE_PTR(data);
    *len = n;
    return 1;
}

void kconfig_scan_done(struct kconfig_scan *s)
{
    for (size_t i = 0; i < s->npaths; i++)
        free(s->paths[i]);
    free(s->paths);
    free(s->seen);
    *s = (struct kconfig_scan){0};
}
