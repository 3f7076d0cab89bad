/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The multicall dispatch (docs/README.md §2): the applet is the basename of argv[0], or argv[1] when
 * called as kairos-kms. Adding an applet is one line in the table below. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <unistd.h>

#include "applets.h"
#include "base.h"

#ifndef KKMS_VERSION
#define KKMS_VERSION "0"
#endif

struct applet {
    const char *name;
    const char *aliases[2]; /* other argv[0] names that run it (symlinks) */
    int (*main)(int argc, char **argv);
    const char *summary;
};

/* Sorted by name. A NULL main is an applet that is not built yet. */
static const struct applet applets[] = {
    {"challenger", {"kcrypt-challenger", NULL}, challenger_main, "the KMS server: challenger --db DIR"},
    {"discovery-challenger",
     {"kcrypt-discovery-challenger", NULL},
     discovery_challenger_main,
     "node-side KMS client and discovery.password plugin; no argument prints the TPM hash"},
    {"kcrypt", {NULL, NULL}, kcrypt_main, "encrypt partitions by label; unlock every LUKS partition at boot"},
    {"mdns-responder", {"simple-mdns-server", NULL}, mdns_responder_main, "announce the KMS as _kcrypt._tcp over mDNS"},
    {"tpm-hash", {NULL, NULL}, tpm_hash_main, "print this node's TPM hash (for registration)"},
};
#define N_APPLETS (sizeof(applets) / sizeof(applets[0]))

static const char usage[] = "Usage: kairos-kms APPLET [ARGS...]\n"
                            "       APPLET [ARGS...]                  (through a symlink named after the applet)\n"
                            "       kairos-kms --list | --version | --help\n"
                            "       kairos-kms install-links [--target PATH] DIR\n"
                            "\n"
                            "Kairos TPM-backed disk encryption in one static binary. Every applet has --help.\n"
                            "\n"
                            "  --list                 print the applets and the names they answer to\n"
                            "  install-links DIR      create a symlink in DIR for every applet name, pointing at this\n"
                            "                         binary (or at --target PATH, e.g. its path inside an initramfs)\n"
                            "\n"
                            "Example: kairos-kms tpm-hash --tpm-device /dev/tpmrm0\n"
                            "Exit codes: 0 ok, 1 runtime failure, 2 bad usage.\n";

static const struct applet *find_applet(const char *name)
{
    for (size_t i = 0; i < N_APPLETS; i++) {
        if (!strcmp(applets[i].name, name))
            return &applets[i];
        for (size_t j = 0; j < 2 && applets[i].aliases[j]; j++)
            if (!strcmp(applets[i].aliases[j], name))
                return &applets[i];
    }
    return NULL;
}

static void list_applets(FILE *f)
{
    for (size_t i = 0; i < N_APPLETS; i++) {
        fprintf(f, "%-22s %s%s\n", applets[i].name, applets[i].summary, applets[i].main ? "" : " (not built yet)");
        for (size_t j = 0; j < 2 && applets[i].aliases[j]; j++)
            fprintf(f, "  also as %s\n", applets[i].aliases[j]);
    }
}

static unsigned rand32(void)
{
    unsigned v = 0;
    if (getrandom(&v, sizeof(v), 0) != sizeof(v))
        v = (unsigned)now_ms() ^ (unsigned)getpid() << 16;
    return v;
}

/* Replaces DIR/name with a symlink to target, atomically (a temporary link, with an unpredictable
 * name, renamed over it; symlink() never follows an existing name). */
static int make_link(const char *dir, const char *name, const char *target)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    struct stat st;

    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.%08x%08x", dir, name, rand32(), rand32()) >= (int)sizeof(tmp))
        return log_error_errno(-ENAMETOOLONG, "%s: path too long", dir);
    if (lstat(path, &st) == 0 && !S_ISLNK(st.st_mode))
        return log_error_errno(-EEXIST, "%s: exists and is not a symlink; not replacing it", path);
    if (symlink(target, tmp) < 0)
        return log_error_errno(-errno, "%s: cannot create symlink: %m", tmp);
    if (rename(tmp, path) < 0) {
        int r = -errno;
        unlink(tmp);
        return log_error_errno(r, "%s: cannot rename symlink into place: %m", path);
    }
    return 0;
}

static int install_links(int argc, char **argv)
{
    char self[PATH_MAX];
    const char *target = NULL, *dir = NULL;
    int r = 0;

    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--target") && i + 1 < argc)
            target = argv[++i];
        else if (!strcmp(argv[i], "--help"))
            return applet_usage(usage, EXIT_OK);
        else if (argv[i][0] == '-' || dir)
            return log_error("install-links: unexpected argument %s", argv[i]), EXIT_USAGE;
        else
            dir = argv[i];
    }
    if (!dir) {
        log_error("install-links: missing DIR");
        return EXIT_USAGE;
    }
    if (!target) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            log_error("install-links: cannot find this binary's path (/proc not mounted?); pass --target PATH");
            return EXIT_RUNTIME;
        }
        self[n] = '\0';
        target = self;
    }
    for (size_t i = 0; i < N_APPLETS && r == 0; i++) {
        r = make_link(dir, applets[i].name, target);
        for (size_t j = 0; j < 2 && applets[i].aliases[j] && r == 0; j++)
            r = make_link(dir, applets[i].aliases[j], target);
    }
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}

static int run_applet(const struct applet *a, int argc, char **argv)
{
    log_set_program(a->name);
    if (!a->main) {
        log_error("this applet is not built yet in kairos-kms %s", KKMS_VERSION);
        return EXIT_USAGE;
    }
    return a->main(argc, argv);
}

int main(int argc, char **argv)
{
    const char *base = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
    const struct applet *a;

    base = base ? base + 1 : (argc > 0 && argv[0] ? argv[0] : "kairos-kms");
    a = find_applet(base);
    if (a)
        return run_applet(a, argc, argv);
    if (strncmp(base, "kairos-kms", 10) != 0) {
        fprintf(stderr, "kairos-kms: unknown applet name '%s'; the applets are:\n", base);
        list_applets(stderr);
        return EXIT_USAGE;
    }
    if (argc < 2) {
        applet_usage(usage, EXIT_USAGE);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return applet_usage(usage, EXIT_OK);
    if (!strcmp(argv[1], "--version")) {
        printf("kairos-kms %s\n", KKMS_VERSION);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--list")) {
        list_applets(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "install-links"))
        return install_links(argc - 2, argv + 2);
    a = find_applet(argv[1]);
    if (!a) {
        fprintf(stderr, "kairos-kms: unknown applet '%s'; the applets are:\n", argv[1]);
        list_applets(stderr);
        return EXIT_USAGE;
    }
    return run_applet(a, argc - 1, argv + 1);
}
