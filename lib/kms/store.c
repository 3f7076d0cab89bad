/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The `dir` store backend: a directory of manifests, kept as an in-memory index that follows
 * edits without a restart (the reload rules are in kms.h). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
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

/* ---- the index: sorted arrays of pointers into the files' records ---- */

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

/* Position of the first element of arr (n sorted pointers) not below elem. */
#define ARR_LOWER(arr, n, elem, cmp, out)        \
    do {                                         \
        size_t lo_ = 0, hi_ = (n);               \
        while (lo_ < hi_) {                      \
            size_t mid_ = lo_ + (hi_ - lo_) / 2; \
            if (cmp(&(arr)[mid_], &(elem)) < 0)  \
                lo_ = mid_ + 1;                  \
            else                                 \
                hi_ = mid_;                      \
        }                                        \
        (out) = lo_;                             \
    } while (0)

/* Inserts elem in order: a memmove, O(n) bytes but no comparison beyond the binary search. */
#define ARR_INSERT(arr, n, cap, elem, cmp)                                                        \
    do {                                                                                          \
        size_t pos_;                                                                              \
        ARR_LOWER(arr, n, elem, cmp, pos_);                                                       \
        if ((n) == (cap)) {                                                                       \
            (cap) = (cap) ? 2 * (cap) : 64;                                                       \
            (arr) = xrealloc((void *)(arr), (cap) * sizeof(*(arr)));                              \
        }                                                                                         \
        memmove((void *)((arr) + pos_ + 1), (void *)((arr) + pos_), ((n)-pos_) * sizeof(*(arr))); \
        (arr)[pos_] = (elem);                                                                     \
        (n)++;                                                                                    \
    } while (0)

/* Removes the element that is elem itself (objects that compare equal may be several). */
#define ARR_REMOVE(arr, n, elem, cmp)                                                                   \
    do {                                                                                                \
        size_t i_;                                                                                      \
        ARR_LOWER(arr, n, elem, cmp, i_);                                                               \
        for (; i_ < (n) && !cmp(&(arr)[i_], &(elem)); i_++) {                                           \
            if ((arr)[i_] == (elem)) {                                                                  \
                memmove((void *)((arr) + i_), (void *)((arr) + i_ + 1), ((n)-i_ - 1) * sizeof(*(arr))); \
                (n)--;                                                                                  \
                break;                                                                                  \
            }                                                                                           \
        }                                                                                               \
    } while (0)

/* The run of objects named like the one at position i of a by-name array: marks them as defined
 * twice (or clears the mark of a lone one) and reports the conflict. */
#define FIX_DUPS(arr, n, name_, kind, T)                                                                        \
    do {                                                                                                        \
        size_t lo_ = 0, hi_ = (n), end_;                                                                        \
        while (lo_ < hi_) {                                                                                     \
            size_t mid_ = lo_ + (hi_ - lo_) / 2;                                                                \
            if (strcmp((arr)[mid_]->name, (name_)) < 0)                                                         \
                lo_ = mid_ + 1;                                                                                 \
            else                                                                                                \
                hi_ = mid_;                                                                                     \
        }                                                                                                       \
        for (end_ = lo_; end_ < (n) && !strcmp((arr)[end_]->name, (name_)); end_++)                             \
            ;                                                                                                   \
        for (size_t k_ = lo_; k_ < end_; k_++)                                                                  \
            ((T *)(arr)[k_])->dup = end_ - lo_ < 2 ? NULL : (arr)[k_ == lo_ ? lo_ + 1 : lo_];                   \
        if (end_ - lo_ >= 2)                                                                                    \
            log_error(kind " %s is defined twice: %s:%u and %s:%u; requests for it are refused until one goes", \
                      (arr)[lo_]->name, (arr)[lo_]->file, (arr)[lo_]->line, (arr)[lo_ + 1]->file,               \
                      (arr)[lo_ + 1]->line);                                                                    \
    } while (0)

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
    s->vols = xcalloc(nv ? nv : 1, sizeof(*s->vols));
    s->secrets = xcalloc(ns ? ns : 1, sizeof(*s->secrets));
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
    s->vols_cap = s->by_hash_cap = s->nvols ? s->nvols : 1;
    s->secrets_cap = s->nsecrets ? s->nsecrets : 1;
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
    s->index_dirty = false;
}

/* Adds (or removes) one file's records to (from) the index: O(log n) comparisons each. */
static void index_file(struct kms_store *s, const struct kms_file *f, bool add)
{
    for (size_t j = 0; j < f->recs.nvols; j++) {
        const struct kms_volume *v = &f->recs.vols[j];
        size_t nh = s->nvols; /* by_hash holds the same volumes */
        if (add) {
            ((struct kms_volume *)v)->dup = NULL;
            ARR_INSERT(s->by_hash, nh, s->by_hash_cap, v, cmp_hash);
            ARR_INSERT(s->vols, s->nvols, s->vols_cap, v, cmp_vol);
        } else {
            ARR_REMOVE(s->by_hash, nh, v, cmp_hash);
            ARR_REMOVE(s->vols, s->nvols, v, cmp_vol);
        }
        FIX_DUPS(s->vols, s->nvols, v->name, "SealedVolume", struct kms_volume);
    }
    for (size_t j = 0; j < f->recs.nsecrets; j++) {
        const struct kms_secret_obj *o = &f->recs.secrets[j];
        if (add) {
            ((struct kms_secret_obj *)o)->dup = NULL;
            ARR_INSERT(s->secrets, s->nsecrets, s->secrets_cap, o, cmp_sec);
        } else {
            ARR_REMOVE(s->secrets, s->nsecrets, o, cmp_sec);
        }
        FIX_DUPS(s->secrets, s->nsecrets, o->name, "Secret", struct kms_secret_obj);
    }
}

/* Replaces f's records by *recs (NULL: drops them), keeping the index in step: at once for a few
 * changes, by one rebuild at the end of a bulk load or a full rescan. */
static void set_records(struct kms_store *s, struct kms_file *f, struct kms_records *recs)
{
    if (s->bulk)
        s->index_dirty = true;
    if (!s->index_dirty)
        index_file(s, f, false);
    kms_records_clear(&f->recs);
    f->loaded = recs != NULL;
    if (recs)
        f->recs = *recs;
    if (!s->index_dirty)
        index_file(s, f, true);
}

/* (Re)loads f when its stat changed (or always, with force: inotify said it was written).
 * Returns 1 when its records were replaced or dropped. */
static int load_file(struct kms_store *s, struct kms_file *f, const struct stat *lst, bool force)
{
    struct kms_records recs;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int r;

    if (!force && f->known && same_version(f, lst) && !f->racy)
        return 0;
    r = kms_dir_read(s->dirfd, s->dir, f->name, &buf, &len, &st);
    if (r < 0) {
        /* Unreadable now (permissions, vanished): nothing of it is served. */
        remember_version(f, lst);
        f->problem = "not loaded (see the errors above)";
        f->digest = 0;
        if (!f->loaded)
            return 0;
        set_records(s, f, NULL);
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
    kms_records_compact(&recs);
    set_records(s, f, &recs);
    log_debug("%s: loaded %zu SealedVolume(s), %zu Secret(s)", f->path, recs.nvols, recs.nsecrets);
    return 1;
}

static struct kms_file *file_new(struct kms_store *s, const char *name)
{
    size_t plen = strlen(s->dir) + strlen(name) + 2;
    struct kms_file *f = xcalloc(1, sizeof(*f));
    f->path = xmalloc(plen);
    snprintf(f->path, plen, "%s/%s", s->dir, name);
    f->name = f->path + strlen(s->dir) + 1;
    return f;
}

/* Loads f (stat lst) unless the store's size bound is reached; keeps s->total_size. */
static int load_bounded(struct kms_store *s, struct kms_file *f, const struct stat *lst, bool force)
{
    int changed = 0;

    if (f->loaded)
        s->total_size -= f->counted;
    f->counted = 0;
    if (S_ISREG(lst->st_mode) && s->total_size + (size_t)lst->st_size > KMS_MAX_TOTAL_SIZE) {
        if (!f->known || !same_version(f, lst))
            log_error("%s: not loaded: the manifests in %s exceed %u bytes together", f->path, s->dir,
                      KMS_MAX_TOTAL_SIZE);
        remember_version(f, lst);
        f->problem = "not loaded: the store's total size limit is reached";
        f->digest = 0;
        if (f->loaded) {
            set_records(s, f, NULL);
            changed = 1;
        }
    } else if (load_file(s, f, lst, force) > 0) {
        changed = 1;
    }
    if (f->loaded) {
        f->counted = (size_t)f->size;
        s->total_size += f->counted;
    }
    return changed;
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

/* Lists DIR and compares each file's identity with the version loaded: only changed, new and
 * deleted files are read again. Returns 1 when records changed. */
static int scan_full(struct kms_store *s)
{
    size_t n = 0, nnew = 0;
    struct kms_file **files;
    char **names;
    bool changed = false;

    names = list_names(s, &n);
    if (!names) {
        s->last_refresh = -EIO;
        s->reload_errors++;
        return -EIO;
    }
    s->last_refresh = 0;
    s->last_full_ms = s->last_scan_ms = now_ms();
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

    s->bulk = true;
    s->total_size = 0; /* counted again in name order: the first files within the bound load */
    files = xcalloc(n + 1, sizeof(*files));
    for (size_t i = 0; i < s->nfiles; i++) {
        s->files[i]->kept = false;
        s->files[i]->counted = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct kms_file *f = find_file(s, names[i]);
        struct stat lst;

        if (fstatat(s->dirfd, names[i], &lst, AT_SYMLINK_NOFOLLOW) < 0) {
            free(names[i]); /* gone since the listing; its old entry is dropped below */
            continue;
        }
        if (!f)
            f = file_new(s, names[i]);
        free(names[i]);
        if (load_bounded(s, f, &lst, false) > 0)
            changed = true;
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
    s->files_cap = n + 1;
    s->bulk = false;
    if (changed || s->index_dirty)
        build_index(s);
    return changed ? 1 : 0;
}

/* ---- inotify: only what changed is read again ---- */

#define WATCH_MASK                                                                                          \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | \
     IN_ONLYDIR | IN_EXCL_UNLINK)

/* Counts fork()s in this process's line (the child's handler): a store compares it with the
 * count when its watch was made instead of asking getpid() before every decision. */
static unsigned fork_gen;
static pthread_once_t fork_gen_once = PTHREAD_ONCE_INIT;
static void fork_gen_child(void) { fork_gen++; }
static void fork_gen_init(void) { (void)pthread_atfork(NULL, NULL, fork_gen_child); }

/* Watches DIR in this process (a forked worker needs its own instance: events are read once).
 * -errno when inotify is not available; the store then polls. */
static int watch_start(struct kms_store *s)
{
    pthread_once(&fork_gen_once, fork_gen_init);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (inotify_add_watch(fd, s->dir, WATCH_MASK) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    s->ino_fd = fd;
    s->ino_gen = fork_gen;
    return 0;
}

static void watch_stop(struct kms_store *s)
{
    if (!s->etcd && s->ino_fd >= 0)
        close(s->ino_fd);
    s->ino_fd = -1;
}

/* Removes f from s->files and frees it (its records leave the index). */
static void file_drop(struct kms_store *s, struct kms_file *f)
{
    size_t lo = 0, hi = s->nfiles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->files[mid]->name, f->name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->nfiles && s->files[lo] == f) {
        memmove(s->files + lo, s->files + lo + 1, (s->nfiles - lo - 1) * sizeof(*s->files));
        s->nfiles--;
    }
    if (f->loaded) {
        s->total_size -= f->counted;
        set_records(s, f, NULL);
    }
    log_debug("%s: removed", f->path);
    file_free(f);
}

static struct kms_file *file_add(struct kms_store *s, const char *name)
{
    struct kms_file *f = file_new(s, name);
    ARR_INSERT(s->files, s->nfiles, s->files_cap, f, cmp_file);
    return f;
}

/* One name inotify reported: read again, added, or dropped. Returns 1 when records changed. */
static int sync_name(struct kms_store *s, const char *name)
{
    struct kms_file *f = find_file(s, name);
    struct stat lst;

    if (fstatat(s->dirfd, name, &lst, AT_SYMLINK_NOFOLLOW) < 0) {
        bool had = f && f->loaded;
        if (f)
            file_drop(s, f);
        return had ? 1 : 0;
    }
    if (!f) {
        if (s->nfiles >= KMS_MAX_FILES) {
            if (!s->warned_too_many)
                log_error("%s: more than %d manifest files; %s is not loaded", s->dir, KMS_MAX_FILES, name);
            s->warned_too_many = true;
            return 0;
        }
        f = file_add(s, name);
    }
    return load_bounded(s, f, &lst, true);
}

/* Reads the pending events: the names that changed (sorted, unique) in *out, or -ESTALE when a
 * full rescan is needed (the queue overflowed, or the watch went away: polling from now on). */
static int drain_events(struct kms_store *s, char ***out, size_t *count)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    char **names = NULL;
    size_t n = 0, cap = 0, k = 0;
    int r = 0;

    for (;;) {
        ssize_t len = read(s->ino_fd, buf, sizeof(buf));
        if (len < 0 && errno == EINTR)
            continue;
        if (len <= 0)
            break;
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                r = -ESTALE;
            } else if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
                log_warn("%s: no longer watched (moved or deleted?); rescanning it before every decision", s->dir);
                watch_stop(s);
                r = -ESTALE;
                break;
            } else if (ev->len && is_manifest_name(ev->name) && r == 0) {
                if (n == cap) {
                    cap = cap ? 2 * cap : 16;
                    names = xrealloc(names, cap * sizeof(*names));
                }
                names[n++] = xstrdup(ev->name);
            }
        }
        if (s->ino_fd < 0)
            break;
    }
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return r;
    }
    if (n)
        qsort(names, n, sizeof(*names), cmp_name);
    for (size_t i = 0; i < n; i++) {
        if (k && !strcmp(names[k - 1], names[i]))
            free(names[i]);
        else
            names[k++] = names[i];
    }
    *out = names;
    *count = k;
    return 0;
}

/* Brings the records up to date: with inotify, only the files named by pending events are read
 * (O(changes)); a full rescan when asked (full), when periodic and the last one is older than
 * KMS_FULL_RESCAN_MS, when events were lost, and always when DIR is not watched (polling). */
static int store_sync(struct kms_store *s, bool full, bool periodic)
{
    char **names = NULL;
    size_t n = 0;
    bool changed = false;

    s->last_scan_ms = now_ms();
    if (s->ino_fd >= 0 && s->ino_gen != fork_gen) {
        /* A forked worker: the events of the inherited instance are its parent's to read. */
        watch_stop(s);
        if (watch_start(s) < 0)
            log_warn("%s: cannot watch it in this worker: %m; rescanning it before every decision", s->dir);
        full = true;
    }
    if (s->ino_fd < 0)
        return scan_full(s);
    if (drain_events(s, &names, &n) < 0)
        return scan_full(s);
    if (full || (periodic && s->last_scan_ms - s->last_full_ms >= KMS_FULL_RESCAN_MS)) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return scan_full(s);
    }
    s->bulk = n > 256; /* many changes at once: one rebuild of the index instead of n updates */
    for (size_t i = 0; i < n; i++) {
        if (sync_name(s, names[i]) > 0)
            changed = true;
        free(names[i]);
    }
    free(names);
    s->bulk = false;
    if (s->index_dirty)
        build_index(s);
    s->last_refresh = 0;
    return changed ? 1 : 0;
}

int kms_store_refresh_locked(struct kms_store *s, bool force)
{
    if (s->etcd)
        return kms_etcd_refresh_locked(s, force);
    if (!force && s->scanned && now_ms() - s->last_scan_ms < s->poll_ms)
        return 0;
    return store_sync(s, false, false);
}

int kms_store_refresh(struct kms_store *s, bool force)
{
    int r;
    if (s->etcd)
        return kms_etcd_refresh(s, force); /* never blocks on etcd: the watch keeps the cache */
    pthread_mutex_lock(&s->lock);
    r = store_sync(s, force, !force);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int kms_store_start(struct kms_store *s) { return s->etcd ? kms_etcd_start(s) : 0; }

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
    s->ino_fd = -1;
    s->poll_ms = opt->poll_interval_ms < 0 ? KMS_DEFAULT_POLL_MS : opt->poll_interval_ms;
    s->audit = opt->audit;
    pthread_mutex_init(&s->lock, NULL);
    remove_stale_temp_files(s);
    /* Watched before the first scan, so that nothing written meanwhile is missed. */
    if ((r = watch_start(s)) < 0)
        log_warn("%s: cannot watch it for changes (inotify: %s); rescanning it before every decision", s->dir,
                 strerror(-r));
    r = scan_full(s);
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
    if (!s->etcd && s->ino_fd >= 0)
        close(s->ino_fd);
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
    return *n ? s->by_hash + lo : NULL; /* by_hash is NULL in an empty store */
}

bool kms_store_has_object(struct kms_store *s, const char *name) { return find_file(s, name) != NULL; }

const struct kms_file *kms_store_file_of(const struct kms_store *s, const char *path)
{
    size_t dlen = strlen(s->dir);
    const struct kms_file *f;

    /* dir backend: DIR/name, found by name (files[] is sorted by name) */
    if (!s->etcd && !strncmp(path, s->dir, dlen) && path[dlen] == '/' &&
        (f = find_file((struct kms_store *)s, path + dlen + 1)) && !strcmp(f->path, path))
        return f;
    for (size_t i = 0; i < s->nfiles; i++)
        if (!strcmp(s->files[i]->path, path))
            return s->files[i];
    return NULL;
}
