/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/luks without block devices: UUIDv5, the binary header reader against headers written by
 * Debian's cryptsetup (tests/data/luks), lookups, and libcryptsetup on an image file. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "luks_internal.h"
#include "tap.h"

struct mem {
    const uint8_t *p;
    size_t n;
};

static int mem_read(void *ctx, void *buf, size_t n, uint64_t off)
{
    struct mem *m = ctx;
    if (off > m->n || n > m->n - off)
        return -EIO;
    memcpy(buf, m->p + off, n);
    return 0;
}

static int probe_mem(const uint8_t *p, size_t n, struct luks_header *h)
{
    struct mem m = {p, n};
    return luks_header_probe(mem_read, &m, h);
}

static uint8_t *load(const char *name, size_t *n)
{
    char *buf = NULL;
    if (file_read_all(tap_data(name), 1 << 20, &buf, n) < 0) {
        printf("Bail out! cannot read tests/data/%s\n", name);
        exit(1);
    }
    return (uint8_t *)buf;
}

/* Rewrites the LUKS2 checksum of the header at off, after a test changed a field on purpose. */
static void reseal(uint8_t *img, size_t off, size_t hdr_size)
{
    memset(img + off + 448, 0, 64);
    crypto_sha256(img + off, hdr_size, img + off + 448);
}

static void test_uuid_v5(void)
{
    /* Expected values from Python's uuid.uuid5(uuid.NAMESPACE_URL, name), an independent
     * implementation; the first two are also in docs/upstream.md §3.2. */
    static const char *const vec[][2] = {
        {"COS_PERSISTENT", "85c39d0f-4867-5227-8334-f5eec606d9eb"},
        {"COS_OEM", "8bfa06f9-ca4f-56dc-90c9-49cf20f4f45e"},
        {"COS_RECOVERY", "768fbd69-b2a9-5eab-902c-db8745b4767c"},
        {"", "1b4db7eb-4057-5ddf-91e0-36dec72071f5"},
        {"https://kairos.io/", "ea796786-a111-5cdb-96ec-4944c38f246a"},
    };
    for (size_t i = 0; i < sizeof(vec) / sizeof(*vec); i++) {
        char u[LUKS_UUID_STR];
        luks_uuid_v5(vec[i][0], u);
        CHECK(!strcmp(u, vec[i][1]), "uuid_v5('%s') = %s", vec[i][0], vec[i][1]);
    }
}

static void test_header_debian_luks2(void)
{
    size_t n;
    _cleanup_free_ uint8_t *img = load("luks/debian-luks2-header.bin", &n);
    struct luks_header h;

    CHECK(probe_mem(img, n, &h) == 0 && h.version == 2 && !h.from_secondary,
          "reads the primary LUKS2 header Debian's cryptsetup wrote");
    CHECK(!strcmp(h.label, "DEBIAN_LABEL"), "label at offset 24");
    CHECK(!strcmp(h.uuid, "11111111-2222-4333-8444-555555555555"), "uuid at offset 168");
    CHECK(h.hdr_size == 16384, "hdr_size 16 KiB");

    img[24] ^= 1; /* one bit of the primary label: its checksum no longer matches */
    CHECK(probe_mem(img, n, &h) == 0 && h.from_secondary && !strcmp(h.label, "DEBIAN_LABEL"),
          "a primary with a bad checksum: label from the secondary at 16 KiB");
    memset(img, 0, 4096);
    CHECK(probe_mem(img, n, &h) == 0 && h.from_secondary && !strcmp(h.uuid, "11111111-2222-4333-8444-555555555555"),
          "a wiped primary: the secondary is found by scanning the allowed offsets");
    img[16384 + 30] ^= 1;
    CHECK(probe_mem(img, n, &h) == -EINVAL, "both headers damaged: not LUKS");
}

static void test_header_seqid(void)
{
    size_t n;
    _cleanup_free_ uint8_t *img = load("luks/debian-luks2-header.bin", &n);
    struct luks_header h;

    /* An interrupted metadata write leaves the secondary newer and labelled differently. */
    memcpy(img + 16384 + 24, "NEWER", 6);
    img[16384 + 23] += 1; /* seqid, big-endian at offset 16 */
    reseal(img, 16384, 16384);
    CHECK(probe_mem(img, n, &h) == 0 && h.from_secondary && !strcmp(h.label, "NEWER"),
          "the header with the higher seqid wins");
}

static void test_header_odd_inputs(void)
{
    size_t n;
    _cleanup_free_ uint8_t *img = load("luks/debian-luks2-header.bin", &n);
    _cleanup_free_ uint8_t *l1 = load("luks/debian-luks1-header.bin", &n);
    uint8_t zeros[8192] = {0};
    struct luks_header h;

    CHECK(probe_mem(img, 4096, &h) == -EINVAL, "a LUKS2 header cut after 4 KiB is not trusted");
    CHECK(probe_mem(zeros, sizeof(zeros), &h) == -EINVAL, "zeros are not LUKS");
    CHECK(luks_header_parse(img, 8, 0, &h) == -EINVAL, "8 bytes are not a header");
    CHECK(probe_mem(l1, n, &h) == 0 && h.version == 1 && !h.label[0] &&
              !strcmp(h.uuid, "66666666-2222-4333-8444-555555555555"),
          "LUKS1 (Debian's cryptsetup): uuid, no label");

    /* A label that fills all 48 bytes without a NUL is cut, never read past. */
    _cleanup_free_ uint8_t *img2 = load("luks/debian-luks2-header.bin", &n);
    memset(img2 + 24, 'A', 48);
    reseal(img2, 0, 16384);
    CHECK(probe_mem(img2, n, &h) == 0 && strlen(h.label) == LUKS_LABEL_MAX - 1,
          "an unterminated label is cut to 47 bytes");
    /* A header claiming a metadata size beyond 4 MiB is refused before anything is read. */
    img2[8 + 4] = 0x7f;
    CHECK(probe_mem(img2, n, &h) == 0 && h.from_secondary, "a bogus hdr_size falls back");
}

static char tmpdir[4096];

static void make_tmpdir(void)
{
    const char *base = getenv("KKMS_TEST_TMP");
    snprintf(tmpdir, sizeof(tmpdir), "%s/luks.XXXXXX", base && *base ? base : "/tmp");
    if (base)
        mkdir(base, 0700);
    if (!mkdtemp(tmpdir)) {
        printf("Bail out! mkdtemp %s\n", tmpdir);
        exit(1);
    }
}

static struct secret *pass_of(const char *s)
{
    struct secret *p = secret_new(strlen(s));
    memcpy(p->data, s, strlen(s));
    p->len = strlen(s);
    return p;
}

static void test_header_read_file(void)
{
    size_t n;
    _cleanup_free_ uint8_t *img = load("luks/debian-luks2-header.bin", &n);
    char path[4200];
    struct luks_header h;
    int fd;

    snprintf(path, sizeof(path), "%s/hdr.img", tmpdir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && fd_write_all(fd, img, n) == 0, "wrote the header to a file");
    close(fd);
    CHECK(luks_header_read(path, &h) == 0 && !strcmp(h.label, "DEBIAN_LABEL"), "luks_header_read on a file");
    CHECK(luks_header_read("/nonexistent/luks", &h) == -ENOENT, "a missing path: -ENOENT");
    unlink(path);
}

static void test_format_and_check(void)
{
    _cleanup_secret_ struct secret *good = pass_of("correct horse battery staple");
    _cleanup_secret_ struct secret *bad = pass_of("wrong");
    char path[4200];
    struct luks_header h;
    int fd, slot = -1;

    snprintf(path, sizeof(path), "%s/vol.img", tmpdir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, 32 << 20) == 0, "a 32 MiB image file");
    close(fd);

    CHECK(luks_format(path, "COS_PERSISTENT", good, LUKS_PBKDF_MINIMAL) == 0, "luks_format");
    CHECK(luks_header_read(path, &h) == 0 && !strcmp(h.label, "COS_PERSISTENT") &&
              !strcmp(h.uuid, "85c39d0f-4867-5227-8334-f5eec606d9eb"),
          "our header reader sees the label and the UUIDv5 libcryptsetup wrote");
    CHECK(luks_check_passphrase(path, good, &slot) == 0 && slot == 0, "the passphrase opens keyslot 0");
    CHECK(luks_check_passphrase(path, bad, &slot) == -EPERM, "a wrong passphrase: -EPERM");
    CHECK(luks_format(path, "", good, LUKS_PBKDF_MINIMAL) == -EINVAL, "an empty label is refused");
    CHECK(luks_format(path, "0123456789012345678901234567890123456789012345678", good, LUKS_PBKDF_MINIMAL) == -EINVAL,
          "a 49-byte label is refused");
    CHECK(luks_header_read(path, &h) == 0 && !strcmp(h.label, "COS_PERSISTENT"),
          "a refused format leaves the header as it was");
    CHECK(luks_check_passphrase("/nonexistent/disk", good, NULL) == -ENOENT, "a missing device: -ENOENT");
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "truncated to 1 MiB of zeros");
    close(fd);
    CHECK(luks_check_passphrase(path, good, NULL) == -EINVAL, "not LUKS: -EINVAL");
    CHECK(luks_open(path, "a/b", good) == -EINVAL, "a mapper name with a slash is refused");
    CHECK(!luks_is_active("kairos-kms-test-never-exists"), "an unknown name is not active");
    unlink(path);
}

static void test_lookup(void)
{
    struct luks_part parts[4];
    const struct luks_part *found, *locked[4];
    char path[4300];
    size_t k;
    static char *const names[] = {"vda2", "vda3", "vda4", "vda5"};
    static char *const fs[] = {"crypto_LUKS", "ext4", "crypto_LUKS", "crypto_LUKS"};
    static char *const label[] = {"", "COS_OEM", "DECOY", "COS_PERSISTENT"};
    static char *const plabel[] = {"oem", "oem", "decoy", "persistent"};

    memset(parts, 0, sizeof(parts));
    for (int i = 0; i < 4; i++) {
        parts[i].name = names[i];
        parts[i].device = names[i];
        parts[i].fs = fs[i];
        parts[i].label = label[i];
        parts[i].partition_label = plabel[i];
    }
    CHECK(luks_find_by_label(parts, 4, "COS_PERSISTENT", &found) == 0 && found == &parts[3], "found by LUKS label");
    CHECK(luks_find_by_label(parts, 4, "COS_OEM", &found) == 0 && found == &parts[1],
          "a label beats the legacy PARTLABEL fallback");
    parts[1].label = "";
    CHECK(luks_find_by_label(parts, 4, "COS_OEM", &found) == 0 && found == &parts[0],
          "COS_OEM falls back to PARTLABEL oem (an unlabelled LUKS header)");
    CHECK(luks_find_by_label(parts, 4, "NOPE", &found) == -ENOENT, "an unknown label: -ENOENT");
    CHECK(!strcmp(luks_part_label(&parts[0]), "COS_OEM"), "PARTLABEL oem asks for COS_OEM");
    CHECK(!strcmp(luks_part_label(&parts[2]), "DECOY"), "a label is used as it is");

    snprintf(path, sizeof(path), "%s/dev", tmpdir);
    mkdir(path, 0700);
    strcat(path, "/mapper");
    mkdir(path, 0700);
    strcat(path, "/vda5");
    close(open(path, O_CREAT | O_WRONLY, 0600));
    parts[2].has_holders = true;
    k = luks_list_locked(tmpdir, parts, 4, locked);
    CHECK(k == 1 && locked[0] == &parts[0], "locked: LUKS, no /dev/mapper/<name> under the root, no holders");
    unlink(path);
}

static void put(const char *dir, const char *name, const char *text)
{
    char path[4400];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || fd_write_all(fd, text, strlen(text)) < 0) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
    close(fd);
}

/* luks_scan without root or block devices: a sysfs tree of our own whose devices are image
 * files under <root>/dev. The partition has no disk in sysfs, so its GPT name comes from uevent. */
static void test_scan_fake_root(void)
{
    size_t n;
    _cleanup_free_ uint8_t *hdr = load("luks/debian-luks2-header.bin", &n);
    char root[4200], dir[4300], path[4400];
    struct luks_part *parts = NULL;
    size_t count = 0;
    const struct luks_part *found;
    int fd;

    snprintf(root, sizeof(root), "%s/root", tmpdir);
    const char *dirs[] = {"",
                          "/sys",
                          "/sys/class",
                          "/sys/class/block",
                          "/sys/class/block/vdz5",
                          "/sys/class/block/vdz5/holders",
                          "/sys/class/block/ram0",
                          "/dev",
                          "/proc"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++) {
        snprintf(dir, sizeof(dir), "%s%s", root, dirs[i]);
        mkdir(dir, 0700);
    }
    snprintf(dir, sizeof(dir), "%s/sys/class/block/vdz5", root);
    put(dir, "dev", "254:5\n");
    put(dir, "size", "65536\n");
    put(dir, "ro", "0\n");
    put(dir, "partition", "5\n");
    put(dir, "uevent",
        "MAJOR=254\nMINOR=5\nDEVNAME=vdz5\nDEVTYPE=partition\nPARTN=5\n"
        "PARTNAME=persistent\n");
    snprintf(dir, sizeof(dir), "%s/sys/class/block/ram0", root);
    put(dir, "dev", "1:0\n");
    put(dir, "size", "8192\n");
    snprintf(dir, sizeof(dir), "%s/proc", root);
    put(dir, "mounts", "proc /proc proc rw 0 0\n/dev/vdz5 /usr/local\\040x ext4 rw 0 0\n");

    snprintf(path, sizeof(path), "%s/dev/vdz5", root);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && fd_write_all(fd, hdr, n) == 0 && ftruncate(fd, 32 << 20) == 0,
          "fake root: /dev/vdz5 is an image file holding Debian's LUKS2 header");
    close(fd);
    snprintf(path, sizeof(path), "%s/dev/ram0", root);
    close(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600));

    CHECK(luks_scan(root, &parts, &count) == 0 && count == 1, "fake root: one device (ram0 skipped)");
    if (count == 1) {
        const struct luks_part *p = &parts[0];
        CHECK(!strcmp(p->name, "vdz5") && p->partno == 5 && p->major == 254 && p->minor == 5,
              "fake root: name, partno, major:minor from sysfs");
        CHECK(p->size == 65536ull * 512, "fake root: size = sysfs size x 512");
        CHECK(!strcmp(p->fs, "crypto_LUKS") && !strcmp(p->label, "DEBIAN_LABEL") &&
                  !strcmp(p->fs_uuid, "11111111-2222-4333-8444-555555555555"),
              "fake root: crypto_LUKS, label and UUID from the header");
        CHECK(!strcmp(p->disk, "") && !strcmp(p->partition_label, "persistent") && !p->uuid[0],
              "fake root: no disk in sysfs: PARTLABEL from uevent PARTNAME, no PARTUUID");
        CHECK(!strcmp(p->mount_point, "/usr/local x"), "fake root: mount point, \\040 unescaped");
        CHECK(!p->read_only && !p->has_holders, "fake root: ro and holders");
        CHECK(luks_find_by_label(parts, count, "DEBIAN_LABEL", &found) == 0 && found == p, "fake root: found by label");
    }
    luks_parts_free(parts, count);
}

static void test_root_path(void)
{
    _cleanup_free_ char *a = luks_root_path(NULL, "/sys");
    _cleanup_free_ char *b = luks_root_path("", "/sys");
    _cleanup_free_ char *c = luks_root_path("/tmp/r/", "/sys");
    _cleanup_free_ char *d = luks_root_path("/", "/dev/vda");
    CHECK(!strcmp(a, "/sys") && !strcmp(b, "/sys") && !strcmp(c, "/tmp/r/sys") && !strcmp(d, "/dev/vda"),
          "root prefixes join without doubled slashes");
}

int main(void)
{
    log_set_program("test_luks");
    make_tmpdir();
    test_uuid_v5();
    test_header_debian_luks2();
    test_header_seqid();
    test_header_odd_inputs();
    test_header_read_file();
    test_format_and_check();
    test_lookup();
    test_scan_fake_root();
    test_root_path();
    if (tap_failed == 0) {
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            printf("# could not remove %s\n", tmpdir);
    } else {
        printf("# kept %s for inspection\n", tmpdir);
    }
    return tap_done();
}
