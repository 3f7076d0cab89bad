/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Block devices from sysfs, without udev (docs/upstream.md §3.1 reads udev's database; an initramfs of
 * ours has none): sysfs gives names, sizes and the disk a partition sits on, libblkid the
 * filesystem and the GPT entry, our own reader the LUKS2 label, /proc/mounts the mount point. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "luks_internal.h"
#include "probe.h"

char *luks_root_path(const char *root, const char *path)
{
    size_t rl = root ? strlen(root) : 0, pl = strlen(path);
    char *s;

    while (rl > 0 && root[rl - 1] == '/')
        rl--;
    s = xmalloc(rl + pl + 2);
    memcpy(s, root ? root : "", rl);
    if (path[0] != '/')
        s[rl++] = '/';
    memcpy(s + rl, path, pl + 1);
    return s;
}

/* Reads a small sysfs attribute of <sys>/class/block/<name>/<attr>, trailing newline removed. */
static int read_attr(const char *sys, const char *name, const char *attr, char *buf, size_t size)
{
    _cleanup_free_ char *path = xmalloc(strlen(sys) + strlen(name) + strlen(attr) + 16);
    _cleanup_close_ int fd = -1;
    ssize_t n;

    sprintf(path, "%s/class/block/%s/%s", sys, name, attr);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    if (n > 0 && buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    return 0;
}

static bool attr_exists(const char *sys, const char *name, const char *attr)
{
    _cleanup_free_ char *path = xmalloc(strlen(sys) + strlen(name) + strlen(attr) + 16);

    sprintf(path, "%s/class/block/%s/%s", sys, name, attr);
    return access(path, F_OK) == 0;
}

static bool dir_has_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    bool found = false;

    if (!d)
        return false;
    while (!found && (e = readdir(d)))
        found = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return found;
}

static bool skipped_by_default(const char *sys, const char *name, unsigned flags)
{
    if (!strncmp(name, "ram", 3) || !strncmp(name, "zram", 4))
        return true;
    /* A floppy drive without a disk (QEMU's default pc machine has one) blocks reads for
     * seconds; nothing Kairos boots from lives there. */
    if (!strncmp(name, "fd", 2) && name[2] >= '0' && name[2] <= '9')
        return true;
    if (!strncmp(name, "dm-", 3))
        return !(flags & LUKS_SCAN_DM);
    /* An unattached loop device has size 0 and no loop/backing_file. */
    if (!strncmp(name, "loop", 4) && !strchr(name + 4, 'p'))
        return !attr_exists(sys, name, "loop/backing_file");
    return false;
}

/* The disk a partition belongs to: sysfs puts the partition's directory inside the disk's,
 * which has a dev attribute of its own. */
static char *parent_disk(const char *sys, const char *name)
{
    _cleanup_free_ char *link = xmalloc(strlen(sys) + strlen(name) + 16);
    char real[PATH_MAX + 8], *slash;

    sprintf(link, "%s/class/block/%s", sys, name);
    if (!realpath(link, real) || !(slash = strrchr(real, '/')) || slash == real)
        return xstrdup("");
    strcpy(slash, "/dev"); /* real was <disk dir>/<name>: now <disk dir>/dev */
    if (access(real, F_OK) < 0)
        return xstrdup("");
    *slash = '\0';
    slash = strrchr(real, '/');
    return xstrdup(slash ? slash + 1 : "");
}

/* <root>/dev/<name>; made with mknod from sysfs dev when missing (no devtmpfs). */
static char *device_node(const char *root, const char *name, unsigned major, unsigned minor)
{
    _cleanup_free_ char *rel = xmalloc(strlen(name) + 6);
    char *path;
    struct stat st;

    sprintf(rel, "/dev/%s", name);
    path = luks_root_path(root, rel);
    if (stat(path, &st) == 0 || errno != ENOENT)
        return path;
    if (mknod(path, S_IFBLK | 0600, makedev(major, minor)) < 0) {
        log_warn("%s is missing and cannot be made from sysfs dev %u:%u: %m", path, major, minor);
        free(path);
        return NULL;
    }
    log_info("%s was missing: made it from sysfs dev %u:%u (no devtmpfs or udev)", path, major, minor);
    return path;
}

/* ---- /proc/mounts ---- */

/* Undoes the octal escapes of /proc/mounts (\040 for a space) in place. */
static void unescape_mount(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

static char *mount_point(const char *root, const char *mounts, const char *name, dev_t devno)
{
    _cleanup_free_ char *copy = NULL, *want = xmalloc(strlen(name) + 6);
    char *line, *save = NULL;

    if (!mounts)
        return xstrdup("");
    sprintf(want, "/dev/%s", name);
    copy = xstrdup(mounts);
    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *src = strtok(line, " "), *dir = strtok(NULL, " ");
        struct stat st;
        bool match;

        if (!src || !dir || src[0] != '/')
            continue;
        unescape_mount(src);
        match = !strcmp(src, want);
        if (!match) {
            _cleanup_free_ char *p = luks_root_path(root, src);
            match = stat(p, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == devno;
        }
        if (match) {
            unescape_mount(dir);
            return xstrdup(dir);
        }
    }
    return xstrdup("");
}

/* ---- one device ---- */

static void part_clear(struct luks_part *p)
{
    char **fields[] = {&p->name,    &p->device,          &p->disk, &p->fs,         &p->label,
                       &p->fs_uuid, &p->partition_label, &p->uuid, &p->mount_point};
    for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++) {
        free(*fields[i]);
        *fields[i] = NULL;
    }
}

void luks_parts_free(struct luks_part *parts, size_t n)
{
    if (!parts)
        return;
    for (size_t i = 0; i < n; i++)
        part_clear(&parts[i]);
    free(parts);
}

/* Fills p for <name>; 1 when it carries a filesystem or LUKS, 0 to skip it, never fails. */
static int examine(const char *root, const char *sys, const char *mounts, const char *name, struct luks_part *p)
{
    char buf[64], partlabel[256], partuuid[64];
    unsigned long long sectors;
    struct luks_probe probe;
    struct luks_header hdr;
    bool is_luks;
    int fd;

    memset(p, 0, sizeof(*p));
    if (read_attr(sys, name, "dev", buf, sizeof(buf)) < 0 || sscanf(buf, "%u:%u", &p->major, &p->minor) != 2)
        return 0;
    if (read_attr(sys, name, "size", buf, sizeof(buf)) < 0 || sscanf(buf, "%llu", &sectors) != 1 || sectors == 0)
        return 0;
    p->size = (uint64_t)sectors * 512;
    p->read_only = read_attr(sys, name, "ro", buf, sizeof(buf)) == 0 && !strcmp(buf, "1");
    if (read_attr(sys, name, "partition", buf, sizeof(buf)) == 0)
        p->partno = atoi(buf);
    {
        _cleanup_free_ char *holders = xmalloc(strlen(sys) + strlen(name) + 24);
        sprintf(holders, "%s/class/block/%s/holders", sys, name);
        p->has_holders = dir_has_entries(holders);
    }

    p->device = device_node(root, name, p->major, p->minor);
    if (!p->device)
        return 0;
    fd = open(p->device, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        log_debug("%s: skipped: %m", p->device); /* e.g. a CD drive, no medium */
        part_clear(p);
        return 0;
    }
    is_luks = luks_header_read_fd(fd, &hdr) == 0;
    if (luks_probe_fd(fd, &probe) < 0)
        memset(&probe, 0, sizeof(probe));
    close(fd);
    if (!is_luks && !probe.type[0]) {
        part_clear(p);
        return 0;
    }

    p->name = xstrdup(name);
    /* A LUKS header whose primary is damaged is still LUKS: libblkid may not say so. */
    p->fs = xstrdup(is_luks ? "crypto_LUKS" : probe.type);
    p->label = xstrdup(is_luks ? hdr.label : probe.label);
    p->fs_uuid = xstrdup(is_luks ? hdr.uuid : probe.uuid);
    p->mount_point = mount_point(root, mounts, name, makedev(p->major, p->minor));

    partlabel[0] = partuuid[0] = '\0';
    if (p->partno > 0) {
        p->disk = parent_disk(sys, name);
        if (p->disk[0]) {
            unsigned dmaj, dmin;
            _cleanup_free_ char *disk_dev = NULL;
            /* Only a disk sysfs knows (with its dev) is opened, or made with mknod. */
            if (read_attr(sys, p->disk, "dev", buf, sizeof(buf)) == 0 && sscanf(buf, "%u:%u", &dmaj, &dmin) == 2)
                disk_dev = device_node(root, p->disk, dmaj, dmin);
            if (disk_dev)
                (void)luks_probe_gpt_entry(disk_dev, p->partno, partlabel, sizeof(partlabel), partuuid,
                                           sizeof(partuuid));
        }
        /* The kernel also knows the GPT name (uevent PARTNAME) when the table is unreadable. */
        if (!partlabel[0]) {
            char uevent[1024];
            char *s;
            if (read_attr(sys, name, "uevent", uevent, sizeof(uevent)) == 0 && (s = strstr(uevent, "PARTNAME=")))
                snprintf(partlabel, sizeof(partlabel), "%.*s", (int)strcspn(s + 9, "\n"), s + 9);
        }
    } else {
        p->disk = xstrdup("");
    }
    p->partition_label = xstrdup(partlabel);
    p->uuid = xstrdup(partuuid);
    return 1;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int luks_scan_flags(const char *root_prefix, unsigned flags, struct luks_part **out, size_t *n)
{
    _cleanup_free_ char *sys = luks_root_path(root_prefix, "/sys");
    _cleanup_free_ char *class_dir = luks_root_path(root_prefix, "/sys/class/block");
    _cleanup_free_ char *mounts_path = luks_root_path(root_prefix, "/proc/mounts");
    _cleanup_free_ char *mounts = NULL;
    char **names = NULL;
    size_t count = 0, cap = 0, kept = 0;
    struct luks_part *parts;
    struct dirent *e;
    DIR *d;

    d = opendir(class_dir);
    if (!d)
        return log_error_errno(-errno, "%s: %m (is sysfs mounted?)", class_dir);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || skipped_by_default(sys, e->d_name, flags))
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 32;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[count++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (count)
        qsort(names, count, sizeof(*names), cmp_names);
    if (file_read_all(mounts_path, 1 << 22, &mounts, NULL) < 0)
        mounts = NULL; /* no /proc: nothing is mounted as far as we can tell */

    parts = xcalloc(count ? count : 1, sizeof(*parts));
    for (size_t i = 0; i < count; i++) {
        if (examine(root_prefix, sys, mounts, names[i], &parts[kept]) == 1)
            kept++;
        free(names[i]);
    }
    free(names);
    *out = parts;
    *n = kept;
    return 0;
}

int luks_scan(const char *root_prefix, struct luks_part **out, size_t *n)
{
    return luks_scan_flags(root_prefix, 0, out, n);
}
