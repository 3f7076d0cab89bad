/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Reading and writing files of the store directory (docs/README.md §5): never through a symlink,
 * bounded, and writes atomic and durable (temp file, fsync, rename, fsync of the directory). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kms_internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

int kms_dir_read(int dirfd, const char *dir, const char *name, char **out, size_t *len, struct stat *st)
{
    /* O_NONBLOCK: a FIFO dropped in DIR must not hang the server. */
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    char *buf;
    size_t n = 0, cap;

    if (fd < 0) {
        if (errno == ELOOP)
            return log_error_errno(-ELOOP, "%s/%s: is a symlink; not followed (copy the manifest into %s)", dir, name,
                                   dir);
        return log_error_errno(-errno, "%s/%s: cannot open: %m", dir, name);
    }
    if (fstat(fd, st) < 0)
        return log_error_errno(-errno, "%s/%s: cannot stat: %m", dir, name);
    if (!S_ISREG(st->st_mode))
        return log_error_errno(-EINVAL, "%s/%s: not a regular file; skipped", dir, name);
    if (st->st_uid != geteuid() && st->st_uid != 0)
        return log_error_errno(-EPERM, "%s/%s: owned by uid %u, not by us or root; not loaded (chown it)", dir, name,
                               (unsigned)st->st_uid);
    if (st->st_mode & 022)
        return log_error_errno(-EPERM, "%s/%s: writable by other users; not loaded (chmod 600 it)", dir, name);
    if (st->st_size > (off_t)KMS_MAX_FILE_SIZE)
        return log_error_errno(-EFBIG, "%s/%s: larger than %u bytes; not loaded", dir, name, KMS_MAX_FILE_SIZE);
    if (st->st_mode & 044)
        log_warn("%s/%s: readable by other users (mode %04o); chmod 600 it", dir, name,
                 (unsigned)(st->st_mode & 07777));

    /* The file may grow while read: read at most one byte more than the bound. */
    cap = (size_t)st->st_size + 1;
    buf = xmalloc(cap + 1);
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            secure_wipe(buf, cap + 1);
            free(buf);
            return log_error_errno(e, "%s/%s: cannot read: %m", dir, name);
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            char *nb;
            if (cap > KMS_MAX_FILE_SIZE) {
                secure_wipe(buf, cap + 1);
                free(buf);
                return log_error_errno(-EFBIG, "%s/%s: larger than %u bytes; not loaded", dir, name, KMS_MAX_FILE_SIZE);
            }
            nb = xmalloc(2 * cap + 1);
            memcpy(nb, buf, n);
            secure_wipe(buf, cap + 1);
            free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int rename_noreplace(int dirfd, const char *from, const char *to)
{
    if (syscall(SYS_renameat2, dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL)
        return -errno;
    /* Filesystems without RENAME_NOREPLACE: link() fails with EEXIST just as atomically. */
    if (linkat(dirfd, from, dirfd, to, 0) < 0)
        return -errno;
    (void)unlinkat(dirfd, from, 0);
    return 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int kms_dir_write(int dirfd, const char *dir, const char *name, const void *buf, size_t len, bool replace,
                  const struct stat *expect)
{
    uint8_t rnd[8];
    char tmp[32];
    int fd = -1, r;

    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
        return log_error_errno(-EIO, "getrandom failed: %m");
    memcpy(tmp, ".kms-tmp-", 9);
    hex_encode(rnd, sizeof(rnd), tmp + 9);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return log_error_errno(-errno, "%s: cannot create a temporary file: %m", dir);
    /* Exactly 0600 whatever the umask. */
    r = fchmod(fd, 0600) < 0 ? -errno : 0;
    if (r == 0)
        r = fd_write_sync_close(fd, buf, len);
    else
        close(fd);
    if (r < 0) {
        (void)unlinkat(dirfd, tmp, 0);
        return log_error_errno(r, "%s/%s: cannot write: %m", dir, tmp);
    }

    if (replace) {
        struct stat now;
        if (expect && (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0 || !same_file(expect, &now)))
            r = -EAGAIN;
        else if (renameat(dirfd, tmp, dirfd, name) < 0)
            r = -errno;
    } else {
        r = rename_noreplace(dirfd, tmp, name);
    }
    if (r < 0) {
        (void)unlinkat(dirfd, tmp, 0);
        if (r == -EEXIST || r == -EAGAIN)
            return r;
        return log_error_errno(r, "%s/%s: cannot rename the new version into place: %m", dir, name);
    }
    /* The rename is durable only once the directory is. */
    if (fsync(dirfd) < 0)
        return log_error_errno(-errno, "%s: fsync failed: %m", dir);
    return 0;
}
