/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Finding plugins as go-pluggable's Autoload does (docs/upstream.md §4.1): glob <dir>/kcrypt-discovery-*
 * over $PATH, then the fixed directories; the first plugin of a name wins. Unlike upstream, files
 * that cannot be executed (directories, non-executable files, broken links) are skipped, so they
 * neither fail at run time nor hide a later plugin of the same name.
 *
 * Also unlike upstream (kairos-io/kcrypt pkg/bus/bus.go passes the working directory to
 * go-pluggable's Autoload, which globs it last): the working directory is searched only when named
 * as one of o->dirs (kcrypt --plugin-dir), since kcrypt runs as root and whoever can write the
 * working directory could otherwise run code as root. When we run as root, a plugin is run only
 * when the file it resolves to is owned by root and not writable by group or others, and every
 * directory on the way to it (and to the directory it was found in) is owned by root and not
 * writable by group or others unless sticky; with o->root, the resolved file must lie under the
 * resolved root. Each plugin skipped for these reasons is logged (a warning) with the reason. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
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

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) && access(path, X_OK) == 0;
}

/* Whether root alone can change path (a directory) and everything above it: each of them owned by
 * root and not writable by group or others unless sticky (where others cannot rename or remove
 * root's entries). path is absolute and resolved. */
static bool dirs_trusted(const char *path, char *why, size_t why_len)
{
    char p[PATH_MAX];
    size_t len = strlen(path);

    if (len >= sizeof(p))
        return snprintf(why, why_len, "path too long"), false;
    memcpy(p, path, len + 1);
    for (;;) {
        struct stat st;
        char *slash;

        if (stat(*p ? p : "/", &st) < 0)
            return snprintf(why, why_len, "cannot stat directory %s: %s", *p ? p : "/", strerror(errno)), false;
        if (st.st_uid != 0)
            return snprintf(why, why_len, "directory %s is owned by uid %u, not root", *p ? p : "/",
                            (unsigned)st.st_uid),
                   false;
        if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
            return snprintf(why, why_len, "directory %s is writable by group or others (mode %04o)", *p ? p : "/",
                            (unsigned)(st.st_mode & 07777)),
                   false;
        if (!*p)
            return true;
        slash = strrchr(p, '/');
        if (!slash)
            return true;
        *slash = '\0'; /* "/a/b" -> "/a" -> "" (the root) */
    }
}

/* Whether the plugin at path may be run; why gets the reason when not. root_real: the resolved
 * root the plugin must lie under, or NULL. */
static bool plugin_allowed(const char *dir, const char *path, const char *root_real, char *why, size_t why_len)
{
    char real[PATH_MAX], real_dir[PATH_MAX];
    struct stat st;

    if (!realpath(path, real) || !realpath(dir, real_dir))
        return snprintf(why, why_len, "cannot resolve it: %s", strerror(errno)), false;
    if (root_real && strcmp(root_real, "/")) {
        size_t n = strlen(root_real);
        if (strncmp(real, root_real, n) || real[n] != '/')
            return snprintf(why, why_len, "it resolves to %s, outside the root %s", real, root_real), false;
    }
    if (geteuid() != 0)
        return true;
    if (stat(real, &st) < 0)
        return snprintf(why, why_len, "cannot stat %s: %s", real, strerror(errno)), false;
    if (st.st_uid != 0)
        return snprintf(why, why_len, "%s is owned by uid %u, not root", real, (unsigned)st.st_uid), false;
    if (st.st_mode & 022)
        return snprintf(why, why_len, "%s is writable by group or others (mode %04o)", real,
                        (unsigned)(st.st_mode & 07777)),
               false;
    /* The directory of the file, and the one the name was found in (a symlink there could be
     * swapped by whoever can write that directory). */
    char *slash = strrchr(real, '/');
    if (slash)
        *slash = '\0';
    return dirs_trusted(real, why, why_len) && dirs_trusted(real_dir, why, why_len);
}

/* Adds the plugins of one directory, in byte order of their names (as Go's filepath.Glob). */
static void scan_dir(struct plugin_list *l, const char *dir, size_t dir_len, const char *root_real)
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
        char why[PATH_MAX + 128];
        if (!plugin_allowed(dirz, path, root_real, why, sizeof(why))) {
            log_warn("skipping plugin %s: %s", path, why);
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
    char root_real[PATH_MAX];
    const char *confine = NULL;

    memset(out, 0, sizeof(*out));
    if (*root) {
        if (!realpath(root, root_real))
            return log_error_errno(-errno, "plugin root %s: cannot resolve it: %m", root);
        confine = root_real;
    }
    /* Go splits $PATH on ':'; an empty entry would glob relative to the working directory, which
     * is searched only when asked for (o->dirs), so it is skipped. */
    for (const char *p = search ? search : ""; *p;) {
        const char *end = strchrnul(p, ':');
        scan_dir(out, p, (size_t)(end - p), confine);
        p = *end ? end + 1 : end;
    }
    while (root_len > 0 && root[root_len - 1] == '/')
        root_len--;
    for (size_t i = 0; i < sizeof(fixed_dirs) / sizeof(fixed_dirs[0]); i++) {
        char dir[PATH_MAX];
        int n = snprintf(dir, sizeof(dir), "%.*s%s", (int)root_len, root, fixed_dirs[i]);
        if (n > 0 && (size_t)n < sizeof(dir))
            scan_dir(out, dir, (size_t)n, confine);
    }
    for (size_t i = 0; o && i < o->n_dirs; i++)
        if (o->dirs[i])
            scan_dir(out, o->dirs[i], strlen(o->dirs[i]), confine);
    for (size_t i = 0; i < out->n; i++)
        log_debug("discovery plugin %s: %s", out->items[i].name, out->items[i].path);
    return 0;
}
