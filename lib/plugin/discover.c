/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Finding plugins as go-pluggable's Autoload does (UPSTREAM.md §3.1): glob <dir>/kcrypt-discovery-*
 * over $PATH, then the fixed directories, then the cwd; the first plugin of a name wins. Unlike
 * upstream, files that cannot be executed (directories, non-executable files, broken links) are
 * skipped, so they neither fail at run time nor hide a later plugin of the same name. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin_internal.h"

/* After $PATH, in this order ([KC] pkg/bus/bus.go, [SDK] kcrypt/bus/bus.go). */
static const char *const fixed_dirs[] = {
    "/sysroot/system/discovery",
    "/system/discovery",
    "/oem/kcrypt",
    "/oem/system/discovery",
};

void plugin_list_clear(struct plugin_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
        free(l->items[i].path);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static bool have_name(const struct plugin_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].name, name))
            return true;
    return false;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) && access(path, X_OK) == 0;
}

/* Adds the plugins of one directory, in byte order of their names (as Go's filepath.Glob). */
static void scan_dir(struct plugin_list *l, const char *dir, size_t dir_len)
{
    char dirz[PATH_MAX];
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    DIR *d;

    if (dir_len == 0 || dir_len >= sizeof(dirz))
        return;
    memcpy(dirz, dir, dir_len);
    dirz[dir_len] = '\0';
    d = opendir(dirz);
    if (!d)
        return; /* missing directories are normal: most of the list does not exist on a node */
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, PLUGIN_PREFIX, strlen(PLUGIN_PREFIX)))
            continue;
        if (n == cap) {
            char **nn = xcalloc(cap ? cap * 2 : 8, sizeof(*names));
            if (n)
                memcpy(nn, names, n * sizeof(*names));
            free(names);
            names = nn;
            cap = cap ? cap * 2 : 8;
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);

    for (size_t i = 0; i < n; i++) {
        const char *name = names[i] + strlen(PLUGIN_PREFIX);
        char path[PATH_MAX];
        bool slash = dirz[dir_len - 1] == '/';

        if ((size_t)snprintf(path, sizeof(path), "%s%s%s", dirz, slash ? "" : "/", names[i]) >= sizeof(path))
            continue;
        if (have_name(l, name))
            continue;
        if (!executable(path)) {
            log_debug("skipping %s: not an executable file", path);
            continue;
        }
        if (l->n >= PLUGIN_MAX_PLUGINS) {
            log_warn("more than %d discovery plugins; ignoring %s", PLUGIN_MAX_PLUGINS, path);
            continue;
        }
        struct plugin *items = xcalloc(l->n + 1, sizeof(*items));
        if (l->n)
            memcpy(items, l->items, l->n * sizeof(*items));
        free(l->items);
        l->items = items;
        l->items[l->n].name = xstrdup(name);
        l->items[l->n].path = xstrdup(path);
        l->n++;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int plugin_discover(const struct plugin_opts *o, struct plugin_list *out)
{
    const char *search = o && o->path ? o->path : getenv("PATH");
    const char *root = o && o->root ? o->root : "";
    size_t root_len = strlen(root);
    char cwd[PATH_MAX];

    memset(out, 0, sizeof(*out));
    /* Go splits $PATH on ':'; an empty entry would glob relative to the cwd, which comes last
     * anyway, so it is skipped. */
    for (const char *p = search ? search : ""; *p;) {
        const char *end = strchrnul(p, ':');
        scan_dir(out, p, (size_t)(end - p));
        p = *end ? end + 1 : end;
    }
    while (root_len > 0 && root[root_len - 1] == '/')
        root_len--;
    for (size_t i = 0; i < sizeof(fixed_dirs) / sizeof(fixed_dirs[0]); i++) {
        char dir[PATH_MAX];
        int n = snprintf(dir, sizeof(dir), "%.*s%s", (int)root_len, root, fixed_dirs[i]);
        if (n > 0 && (size_t)n < sizeof(dir))
            scan_dir(out, dir, (size_t)n);
    }
    if (getcwd(cwd, sizeof(cwd)))
        scan_dir(out, cwd, strlen(cwd));
    for (size_t i = 0; i < out->n; i++)
        log_debug("discovery plugin %s: %s", out->items[i].name, out->items[i].path);
    return 0;
}
