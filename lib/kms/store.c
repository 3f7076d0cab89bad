/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The `dir` store backend: a directory of manifests, kept as an in-memory index that follows
 * edits without a restart (the reload rules are in kms.h). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kms_internal.h"

/* A file whose mtime is this close to the moment it was read may be rewritten within the same
 * timestamp tick without its stat changing, so it is read once more on the next scan. */
#define RACY_WINDOW_S 2
/* Temporary files of a crashed writer older than this are removed when DIR is opened. */
#define STALE_TMP_S 600

static bool is_manifest_name(const char *n)
{
    size_t len = strlen(n);
    if (n[0] == '.')
        return false; /* hidden: our temporary files, editors' swap files */
    return (len > 5 && !strcmp(n + len - 5, ".yaml")) || (len > 4 && !strcmp(n + len - 4, ".yml")) ||
           (len > 5 && !strcmp(n + len - 5, ".json"));
}

static void file_free(struct kms_file *f)
{
    if (!f)
        return;
    kms_records_clear(&f->recs);
    free(f->path);
    free(f);
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp((*(struct kms_file *const *)a)->name, (*(struct kms_file *const *)b)->name);
}

static struct kms_file *find_file(struct kms_store *s, const char *name)
{
    struct kms_file key = {.name = name}, *kp = &key, **f;
    if (!s->nfiles)
        return NULL;
    f = bsearch(&kp, s->files, s->nfiles, sizeof(*s->files), cmp_file);
    return f ? *f : NULL;
}

static bool same_version(const struct kms_file *f, const struct stat *st)
{
    return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
           f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           f->ctime.tv_sec == st->st_ctim.tv_sec && f->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static void remember_version(struct kms_file *f, const struct stat *st)
{
    struct timespec now;

    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->size = st->st_size;
    f->mtime = st->st_mtim;
    f->ctime = st->st_ctim;
    f->known = true;
    clock_gettime(CLOCK_REALTIME, &now);
    f->racy = now.tv_sec - st->st_mtim.tv_sec < RACY_WINDOW_S || now.tv_sec - st->st_ctim.tv_sec < RACY_WINDOW_S;
}

/* FNV-1a: tells a re-read of the same text apart from a changed one (not a security check: who
 * can write DIR decides what it holds anyway). */
static uint64_t digest(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return h ^ n;
}

/* (Re)loads f when its stat changed. Returns 1 when its records were replaced or dropped. */
static int load_file(struct kms_store *s, struct kms_file *f, const struct stat *lst)
{
    struct kms_records recs;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int r;

    if (f->known && same_version(f, lst) && !f->racy)
        return 0;
    r = kms_dir_read(s->dirfd, s->dir, f->name, &buf, &len, &st);
    if (r < 0) {
        /* Unreadable now (permissions, vanished): nothing of it is served. */
        remember_version(f, lst);
        f->problem = "not loaded (see the errors above)";
        f->digest = 0;
        if (!f->loaded)
            return 0;
        kms_records_clear(&f->recs);
        f->loaded = false;
        return 1;
    }
    remember_version(f, &st);
    if (f->digest && f->digest == digest(buf, len)) {
        secure_wipe(buf, len);
        free(buf);
        return 0;
    }
    f->digest = digest(buf, len);
    r = kms_manifest_load(buf, len, f->path, &recs);
    secure_wipe(buf, len);
    free(buf);
    if (r < 0) {
        f->problem = f->loaded ? "does not parse; its last good version is served" : "does not parse; nothing loaded";
        if (f->loaded)
            log_warn("%s: keeping the records of its last good version until it parses again", f->path);
        return 0;
    }
    f->problem = recs.invalid ? "some objects are invalid and were skipped (see the errors above)" : NULL;
    kms_records_clear(&f->recs);
    f->recs = recs;
    f->loaded = true;
    log_debug("%s: loaded %zu SealedVolume(s), %zu Secret(s)", f->path, recs.nvols, recs.nsecrets);
    return 1;
}

static int cmp_vol(const void *a, const void *b)
{
    const struct kms_volume *x = *(const struct kms_volume *const *)a, *y = *(const struct kms_volume *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->file, y->file);
}

static int cmp_sec(const void *a, const void *b)
{
    const struct kms_secret_obj *x = *(const struct kms_secret_obj *const *)a,
                                *y = *(const struct kms_secret_obj *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->file, y->file);
}

/* By TPM hash, then as the by-name index orders them (so a TPM's volumes stay in name order). */
static int cmp_hash(const void *a, const void *b)
{
    const struct kms_volume *const *x = a, *const *y = b;
    int c = strcmp((*x)->tpm_hash, (*y)->tpm_hash);
    return c ? c : cmp_vol(a, b);
}

/* Rebuilds the sorted index and marks objects defined twice (namespaces are ignored). */
static void build_index(struct kms_store *s)
{
    size_t nv = 0, ns = 0;

    free(s->vols);
    free(s->by_hash);
    free(s->secrets);
    for (size_t i = 0; i < s->nfiles; i++) {
        nv += s->files[i]->recs.nvols;
        ns += s->files[i]->recs.nsecrets;
    }
    s->vols = xcalloc(nv, sizeof(*s->vols));
    s->secrets = xcalloc(ns, sizeof(*s->secrets));
    s->nvols = s->nsecrets = 0;
    for (size_t i = 0; i < s->nfiles; i++) {
        struct kms_records *r = &s->files[i]->recs;
        for (size_t j = 0; j < r->nvols; j++) {
            r->vols[j].dup = NULL;
            s->vols[s->nvols++] = &r->vols[j];
        }
        for (size_t j = 0; j < r->nsecrets; j++) {
            r->secrets[j].dup = NULL;
            s->secrets[s->nsecrets++] = &r->secrets[j];
        }
    }
    qsort(s->vols, s->nvols, sizeof(*s->vols), cmp_vol);
    qsort(s->secrets, s->nsecrets, sizeof(*s->secrets), cmp_sec);
    s->by_hash = xcalloc(s->nvols ? s->nvols : 1, sizeof(*s->by_hash));
    memcpy(s->by_hash, s->vols, s->nvols * sizeof(*s->vols));
    qsort(s->by_hash, s->nvols, sizeof(*s->by_hash), cmp_hash);
    for (size_t i = 1; i < s->nvols; i++) {
        struct kms_volume *a = (struct kms_volume *)s->vols[i - 1], *b = (struct kms_volume *)s->vols[i];
        if (strcmp(a->name, b->name))
            continue;
        if (!a->dup)
            a->dup = b;
        b->dup = a;
        log_error("SealedVolume %s is defined twice: %s:%u and %s:%u; requests for it are refused until one goes",
                  a->name, a->file, a->line, b->file, b->line);
    }
    for (size_t i = 1; i < s->nsecrets; i++) {
        struct kms_secret_obj *a = (struct kms_secret_obj *)s->secrets[i - 1],
                              *b = (struct kms_secret_obj *)s->secrets[i];
        if (strcmp(a->name, b->name))
            continue;
        if (!a->dup)
            a->dup = b;
        b->dup = a;
        log_error("Secret %s is defined twice: %s:%u and %s:%u; requests for it are refused until one goes", a->name,
                  a->file, a->line, b->file, b->line);
    }
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted manifest names of DIR, NULL-terminated; NULL when DIR cannot be listed. */
static char **list_names(struct kms_store *s, size_t *count)
{
    int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    char **names;
    size_t n = 0, cap = 64;
    struct dirent *e;

    if (!d) {
        log_error("%s: cannot list: %m", s->dir);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    names = xcalloc(cap + 1, sizeof(*names));
    while ((e = readdir(d))) {
        if (!is_manifest_name(e->d_name))
            continue;
        if (n == cap) {
            char **nn = xcalloc(2 * cap + 1, sizeof(*nn));
            memcpy(nn, names, n * sizeof(*nn));
            free(names);
            names = nn;
            cap *= 2;
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_name);
    *count = n;
    return names;
}

int kms_store_refresh_locked(struct kms_store *s, bool force)
{
    int64_t now = now_ms();
    size_t n = 0, nnew = 0, total = 0;
    struct kms_file **files;
    char **names;
    bool changed = false;

    if (s->etcd)
        return kms_etcd_refresh_locked(s, force);
    if (!force && s->scanned && now - s->last_scan_ms < s->poll_ms)
        return 0;
    names = list_names(s, &n);
    if (!names) {
        s->last_refresh = -EIO;
        s->reload_errors++;
        return -EIO;
    }
    s->last_refresh = 0;
    s->last_scan_ms = now;
    s->scanned = true;
    if (n > KMS_MAX_FILES) {
        if (!s->warned_too_many)
            log_error("%s: more than %d manifest files; only the first %d by name are loaded", s->dir, KMS_MAX_FILES,
                      KMS_MAX_FILES);
        s->warned_too_many = true;
        for (size_t i = KMS_MAX_FILES; i < n; i++)
            free(names[i]);
        n = KMS_MAX_FILES;
    } else {
        s->warned_too_many = false;
    }

    files = xcalloc(n + 1, sizeof(*files));
    for (size_t i = 0; i < s->nfiles; i++)
        s->files[i]->kept = false;
    for (size_t i = 0; i < n; i++) {
        struct kms_file *f = find_file(s, names[i]);
        struct stat lst;

        if (fstatat(s->dirfd, names[i], &lst, AT_SYMLINK_NOFOLLOW) < 0) {
            free(names[i]); /* gone since the listing; its old entry is dropped below */
            continue;
        }
        if (!f) {
            size_t plen = strlen(s->dir) + strlen(names[i]) + 2;
            f = xcalloc(1, sizeof(*f));
            f->path = xmalloc(plen);
            snprintf(f->path, plen, "%s/%s", s->dir, names[i]);
            f->name = f->path + strlen(s->dir) + 1;
        }
        free(names[i]);
        if (S_ISREG(lst.st_mode) && total + (size_t)lst.st_size > KMS_MAX_TOTAL_SIZE) {
            if (!f->known || !same_version(f, &lst))
                log_error("%s: not loaded: the manifests in %s exceed %u bytes together", f->path, s->dir,
                          KMS_MAX_TOTAL_SIZE);
            remember_version(f, &lst);
            f->problem = "not loaded: the store's total size limit is reached";
            f->digest = 0;
            if (f->loaded) {
                kms_records_clear(&f->recs);
                f->loaded = false;
                changed = true;
            }
        } else if (load_file(s, f, &lst) > 0) {
            changed = true;
        }
        if (f->loaded)
            total += (size_t)f->size;
        f->kept = true;
        files[nnew++] = f;
    }
    free(names);

    /* Entries whose file went away (marked above: one pass, not a search per file). */
    for (size_t i = 0; i < s->nfiles; i++) {
        if (!s->files[i]->kept) {
            if (s->files[i]->loaded)
                changed = true;
            log_debug("%s: removed", s->files[i]->path);
            file_free(s->files[i]);
        }
    }
    free(s->files);
    s->files = files;
    s->nfiles = nnew;
    if (changed)
        build_index(s);
    return changed ? 1 : 0;
}

int kms_store_refresh(struct kms_store *s, bool force)
{
    int r;
    if (s->etcd)
        return kms_etcd_refresh(s); /* never blocks on etcd: the watch keeps the cache */
    pthread_mutex_lock(&s->lock);
    r = kms_store_refresh_locked(s, force);
    pthread_mutex_unlock(&s->lock);
    return r;
}

bool kms_store_ready(struct kms_store *s)
{
    bool ok;
    if (s->etcd)
        return kms_etcd_ready(s);
    pthread_mutex_lock(&s->lock);
    ok = s->scanned && s->last_refresh == 0;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* Removes temporary files a crashed writer left behind (hidden, so never loaded anyway). */
static void remove_stale_temp_files(struct kms_store *s)
{
    int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    time_t now = time(NULL);

    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(d))) {
        struct stat st;
        if (strncmp(e->d_name, ".kms-tmp-", 9) || fstatat(s->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode) || now - st.st_mtim.tv_sec < STALE_TMP_S)
            continue;
        if (unlinkat(s->dirfd, e->d_name, 0) == 0)
            log_info("%s/%s: removed a temporary file left by an interrupted write", s->dir, e->d_name);
    }
    closedir(d);
}

/* Opens DIR (creating it 0700 when asked) and checks that only we can change it. */
static int open_dir(const char *dir, bool create, int *out)
{
    _cleanup_close_ int fd = -1;
    struct stat st;
    bool made = false;

    if (create && mkdir(dir, 0700) == 0)
        made = true;
    else if (create && errno != EEXIST)
        return log_error_errno(-errno, "%s: cannot create the store directory: %m", dir);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        struct stat lst;
        /* With O_DIRECTORY a symlink fails with ENOTDIR rather than ELOOP. */
        if (errno == ELOOP || (errno == ENOTDIR && lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode)))
            return log_error_errno(-ELOOP, "%s: is a symlink; give the store directory itself", dir);
        return log_error_errno(-errno, "%s: cannot open the store directory: %m", dir);
    }
    if (made && fchmod(fd, 0700) < 0)
        return log_error_errno(-errno, "%s: chmod 0700 failed: %m", dir);
    if (fstat(fd, &st) < 0)
        return log_error_errno(-errno, "%s: cannot stat: %m", dir);
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return log_error_errno(-EPERM, "%s: owned by uid %u, not by us or root; refusing it as the store", dir,
                               (unsigned)st.st_uid);
    if (st.st_mode & 022)
        return log_error_errno(-EPERM, "%s: writable by other users (mode %04o); chmod 700 it", dir,
                               (unsigned)(st.st_mode & 07777));
    if (st.st_mode & 077)
        log_warn("%s: other users can list it (mode %04o); chmod 700 it", dir, (unsigned)(st.st_mode & 07777));
    *out = fd;
    fd = -1;
    return 0;
}

int kms_store_open_dir(const char *dir, const struct kms_store_options *opt, struct kms_store **out)
{
    static const struct kms_store_options defaults = {.poll_interval_ms = -1};
    struct kms_store *s;
    size_t len = strlen(dir);
    int fd = -1, r;

    if (!opt)
        opt = &defaults;
    if (!len)
        return log_error_errno(-EINVAL, "the store directory is an empty path");
    r = open_dir(dir, opt->create, &fd);
    if (r < 0)
        return r;
    s = xcalloc(1, sizeof(*s));
    s->dir = xstrdup(dir);
    while (len > 1 && s->dir[len - 1] == '/')
        s->dir[--len] = '\0';
    s->dirfd = fd;
    s->poll_ms = opt->poll_interval_ms < 0 ? KMS_DEFAULT_POLL_MS : opt->poll_interval_ms;
    s->audit = opt->audit;
    pthread_mutex_init(&s->lock, NULL);
    remove_stale_temp_files(s);
    r = kms_store_refresh_locked(s, true);
    if (r < 0) {
        kms_store_free(s);
        return r;
    }
    *out = s;
    return 0;
}

void kms_store_free(struct kms_store *s)
{
    if (!s)
        return;
    if (s->etcd)
        kms_etcd_close(s); /* stops the watch before the records go */
    for (size_t i = 0; i < s->nfiles; i++)
        file_free(s->files[i]);
    free(s->files);
    free(s->vols);
    free(s->by_hash);
    free(s->secrets);
    if (s->dirfd >= 0)
        close(s->dirfd);
    pthread_mutex_destroy(&s->lock);
    free(s->dir);
    free(s);
}

const char *kms_store_dir(const struct kms_store *s) { return s->dir; }

void kms_store_build_index(struct kms_store *s) { build_index(s); }

/* First index entry named name in a sorted array of records (the name is their first member). */
#define LOWER_BOUND(arr, n, name, out)                                              \
    do {                                                                            \
        size_t lo_ = 0, hi_ = (n);                                                  \
        while (lo_ < hi_) {                                                         \
            size_t mid_ = (lo_ + hi_) / 2;                                          \
            if (strcmp((arr)[mid_]->name, (name)) < 0)                              \
                lo_ = mid_ + 1;                                                     \
            else                                                                    \
                hi_ = mid_;                                                         \
        }                                                                           \
        (out) = lo_ < (n) && !strcmp((arr)[lo_]->name, (name)) ? (arr)[lo_] : NULL; \
    } while (0)

const struct kms_secret_obj *kms_store_find_secret(const struct kms_store *s, const char *name)
{
    const struct kms_secret_obj *o;
    LOWER_BOUND(s->secrets, s->nsecrets, name, o);
    return o;
}

const struct kms_volume *kms_store_find_volume(const struct kms_store *s, const char *name)
{
    const struct kms_volume *v;
    LOWER_BOUND(s->vols, s->nvols, name, v);
    return v;
}

const struct kms_volume *const *kms_store_volumes_of(const struct kms_store *s, const char *hash, size_t *n)
{
    size_t lo = 0, hi = s->nvols, end;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->by_hash[mid]->tpm_hash, hash) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (end = lo; end < s->nvols && !strcmp(s->by_hash[end]->tpm_hash, hash); end++)
        ;
    *n = end - lo;
    return s->by_hash + lo;
}

const struct kms_file *kms_store_file_of(const struct kms_store *s, const char *path)
{
    for (size_t i = 0; i < s->nfiles; i++)
        if (!strcmp(s->files[i]->path, path))
            return s->files[i];
    return NULL;
}
