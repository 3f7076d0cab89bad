/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* luks_probe: lib/luks as a tiny command line, for the shell tests in tests/luks. Passphrases are
 * read from stdin (exact bytes, as upstream passes them), never from argv. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "luks.h"

static const char usage[] = "usage: luks_probe COMMAND ARGS (passphrase on stdin)\n"
                            "  format DEV LABEL minimal|operator     luks_format\n"
                            "  check DEV                             luks_check_passphrase; prints slot=N\n"
                            "  open DEV NAME | close NAME | active NAME\n"
                            "  encrypt DEV LABEL minimal|operator [STOP_PERCENT]\n"
                            "                                        luks_encrypt_in_place; prints progress lines;\n"
                            "                                        STOP_PERCENT makes the callback stop there\n"
                            "  header DEV                            luks_header_read\n"
                            "  scan ROOT [dm]                        luks_scan; KEY=VALUE blocks like blkid -o export\n"
                            "  find ROOT LABEL                       luks_find_by_label; prints the device\n"
                            "  locked ROOT                           luks_list_locked; prints names\n"
                            "  uuid5 NAME                            luks_uuid_v5\n";

static struct secret *read_pass(void)
{
    struct secret *s = secret_new(4096);
    ssize_t r;

    while (s->len < s->cap && (r = read(STDIN_FILENO, s->data + s->len, s->cap - s->len)) > 0)
        s->len += (size_t)r;
    return s;
}

static int parse_kind(const char *s, enum luks_pbkdf *kind)
{
    if (!strcmp(s, "minimal"))
        *kind = LUKS_PBKDF_MINIMAL;
    else if (!strcmp(s, "operator"))
        *kind = LUKS_PBKDF_OPERATOR;
    else
        return -EINVAL;
    return 0;
}

struct stop_at {
    int percent;
    int calls;
    int64_t start;
};

/* Prints what an applet would draw: percent, MiB/s, seconds left. */
static int progress(uint64_t done, uint64_t total, void *ctx)
{
    struct stop_at *s = ctx;
    double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    double secs = (double)(now_ms() - s->start) / 1000.0;
    double rate = secs > 0 ? (double)done / (1 << 20) / secs : 0;
    double left = rate > 0 ? (double)(total - done) / (1 << 20) / rate : 0;

    s->calls++;
    printf("progress done=%" PRIu64 " total=%" PRIu64 " percent=%.1f mibps=%.1f left=%.1f\n", done, total, pct, rate,
           left);
    return s->percent >= 0 && pct >= s->percent && done < total;
}

static void print_part(const struct luks_part *p)
{
    printf("NAME=%s\nDEVNAME=%s\nDISK=%s\nPARTNO=%d\nMAJMIN=%u:%u\nSIZE=%" PRIu64
           "\nRO=%d\nHOLDERS=%d\nTYPE=%s\nLABEL=%s\nUUID=%s\nPARTLABEL=%s\nPARTUUID=%s\n"
           "MOUNTPOINT=%s\nKMS_LABEL=%s\n\n",
           p->name, p->device, p->disk, p->partno, p->major, p->minor, p->size, p->read_only, p->has_holders, p->fs,
           p->label, p->fs_uuid, p->partition_label, p->uuid, p->mount_point, luks_part_label(p));
}

int main(int argc, char **argv)
{
    _cleanup_secret_ struct secret *pass = NULL;
    enum luks_pbkdf kind;
    const char *cmd = argc > 1 ? argv[1] : "";
    int r = -EINVAL;

    log_set_program("luks_probe");
    if (getenv("LUKS_PROBE_DEBUG"))
        log_set_level(LOG_DEBUG);

    if (!strcmp(cmd, "format") && argc == 5 && parse_kind(argv[4], &kind) == 0) {
        pass = read_pass();
        r = luks_format(argv[2], argv[3], pass, kind);
    } else if (!strcmp(cmd, "check") && argc == 3) {
        int slot = -1;
        pass = read_pass();
        r = luks_check_passphrase(argv[2], pass, &slot);
        if (r == 0)
            printf("slot=%d\n", slot);
    } else if (!strcmp(cmd, "open") && argc == 4) {
        pass = read_pass();
        r = luks_open(argv[2], argv[3], pass);
    } else if (!strcmp(cmd, "close") && argc == 3) {
        r = luks_close(argv[2]);
    } else if (!strcmp(cmd, "active") && argc == 3) {
        r = luks_is_active(argv[2]) ? 0 : -ENOENT;
        printf("active=%d\n", r == 0);
    } else if (!strcmp(cmd, "encrypt") && (argc == 5 || argc == 6) && parse_kind(argv[4], &kind) == 0) {
        struct stop_at s = {.percent = argc == 6 ? atoi(argv[5]) : -1, .start = now_ms()};
        pass = read_pass();
        r = luks_encrypt_in_place(argv[2], argv[3], pass, kind, progress, &s);
        printf("calls=%d\n", s.calls);
    } else if (!strcmp(cmd, "header") && argc == 3) {
        struct luks_header h;
        r = luks_header_read(argv[2], &h);
        if (r == 0)
            printf("version=%d\nlabel=%s\nuuid=%s\nsecondary=%d\nseqid=%" PRIu64 "\n", h.version, h.label, h.uuid,
                   h.from_secondary, h.seqid);
        else
            fprintf(stderr, "luks_probe: %s: no LUKS header: %s\n", argv[2], strerror(-r));
    } else if (!strcmp(cmd, "scan") && (argc == 3 || argc == 4)) {
        struct luks_part *parts = NULL;
        size_t n = 0;
        r = luks_scan_flags(argv[2], argc == 4 && !strcmp(argv[3], "dm") ? LUKS_SCAN_DM : 0, &parts, &n);
        for (size_t i = 0; r == 0 && i < n; i++)
            print_part(&parts[i]);
        luks_parts_free(parts, n);
    } else if ((!strcmp(cmd, "find") && argc == 4) || (!strcmp(cmd, "locked") && argc == 3)) {
        struct luks_part *parts = NULL;
        size_t n = 0;
        r = luks_scan(argv[2], &parts, &n);
        if (r == 0 && !strcmp(cmd, "find")) {
            const struct luks_part *p;
            r = luks_find_by_label(parts, n, argv[3], &p);
            if (r == 0)
                printf("%s\n", p->device);
        } else if (r == 0) {
            const struct luks_part **locked = xcalloc(n ? n : 1, sizeof(*locked));
            size_t k = luks_list_locked(argv[2], parts, n, locked);
            for (size_t i = 0; i < k; i++)
                printf("%s %s\n", locked[i]->name, luks_part_label(locked[i]));
            free(locked);
        }
        luks_parts_free(parts, n);
    } else if (!strcmp(cmd, "uuid5") && argc == 3) {
        char uuid[LUKS_UUID_STR];
        luks_uuid_v5(argv[2], uuid);
        printf("%s\n", uuid);
        r = 0;
    } else {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}
