/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kms_tool: a small driver of lib/kms for the shell tests in tests/kms, one process per
 * command, as the challenger applet and an operator's commands would run side by side.
 *
 *   kms_tool DIR getpass HASH LABEL NAME UUID     -> "ok GENERATED_BY PASSPHRASE" or "refused|error: TEXT"
 *   kms_tool DIR postpass HASH LABEL NAME UUID PASSFILE [GENERATED_BY]
 *   kms_tool DIR register HASH [--label L] [--device D] [--uuid U] [--name V] [--secret N] [--key K]
 *                              [--passphrase-file F]
 *   kms_tool DIR list | quarantine HASH | release HASH
 *   kms_tool DIR hammer N HASH LABEL               -> N lookups back to back (or until the file
 *                                                      $KMS_STOP_FILE exists); prints "PASS COUNT" per
 *                                                      distinct answer, exit 1 on any non-ok answer
 *   kms_tool check FILE                             -> loads one manifest, prints what it holds
 * Environment: KMS_POLL_MS (rescan interval, default the library's), KMS_AUDIT (audit file). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kms.h"
#include "kms_internal.h"

static int usage(void)
{
    fprintf(stderr, "usage: kms_tool DIR getpass|postpass|register|list|quarantine|release|hammer ... | check FILE\n");
    return 2;
}

static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

static int check(const char *path)
{
    _cleanup_free_ char *buf = NULL;
    struct kms_records recs;
    size_t len;
    int r = file_read_all(path, KMS_MAX_FILE_SIZE, &buf, &len);

    if (r < 0)
        return log_error_errno(r, "%s: %m", path), 1;
    r = kms_manifest_load(buf, len, path, &recs);
    if (r < 0)
        return 1;
    printf("volumes %zu secrets %zu invalid %zu\n", recs.nvols, recs.nsecrets, recs.invalid);
    for (size_t i = 0; i < recs.nvols; i++)
        printf("volume %s %s quarantined=%d partitions=%zu\n", recs.vols[i].name, recs.vols[i].tpm_hash,
               recs.vols[i].quarantined, recs.vols[i].nparts);
    for (size_t i = 0; i < recs.nsecrets; i++)
        printf("secret %s keys=%zu\n", recs.secrets[i].name, recs.secrets[i].nkv);
    kms_records_clear(&recs);
    return 0;
}

static int print_reply(int r, struct kms_reply *rep)
{
    if (r == 0 && rep->passphrase)
        printf("ok %s %.*s\n", *rep->generated_by ? rep->generated_by : "-", (int)rep->passphrase->len,
               (const char *)rep->passphrase->data);
    else if (r == 0)
        printf("ok\n");
    else
        printf("%s: %s\n", kms_outcome_name(rep->outcome), rep->error);
    kms_reply_clear(rep);
    return r == 0 ? 0 : 1;
}

static int hammer(struct kms_store *s, long n, const char *hash, const char *label)
{
    struct kms_request rq = {.tpm_hash = hash, .label = label};
    char seen[8][128] = {{0}};
    long count[8] = {0}, bad = 0;
    const char *stop = getenv("KMS_STOP_FILE");

    for (long i = 0; i < n && !(stop && access(stop, F_OK) == 0); i++) {
        struct kms_reply rep;
        char got[128];
        size_t k;
        int r = kms_get_pass(s, &rq, &rep);

        if (r < 0) {
            if (bad++ < 5)
                fprintf(stderr, "lookup %ld: %s\n", i, rep.error);
            kms_reply_clear(&rep);
            continue;
        }
        snprintf(got, sizeof(got), "%.*s", (int)rep.passphrase->len, (const char *)rep.passphrase->data);
        kms_reply_clear(&rep);
        for (k = 0; k < 8 && seen[k][0] && strcmp(seen[k], got); k++)
            ;
        if (k < 8) {
            memcpy(seen[k], got, sizeof(got));
            count[k]++;
        }
    }
    for (size_t k = 0; k < 8 && seen[k][0]; k++)
        printf("%s %ld\n", seen[k], count[k]);
    printf("failed %ld\n", bad);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    _cleanup_kms_store_ struct kms_store *s = NULL;
    struct kms_audit *audit = NULL;
    struct kms_store_options o = {.create = true, .poll_interval_ms = -1};
    const char *cmd, *env = getenv("KMS_POLL_MS");
    struct kms_reply rep;
    int r;

    log_set_program("kms_tool");
    if (getenv("KMS_DEBUG"))
        log_set_level(LOG_DEBUG);
    if (argc == 3 && !strcmp(argv[1], "check"))
        return check(argv[2]);
    if (argc < 3)
        return usage();
    cmd = argv[2];
    if (env)
        o.poll_interval_ms = atoi(env);
    if (getenv("KMS_AUDIT") && kms_audit_open(getenv("KMS_AUDIT"), &audit) < 0)
        return 1;
    o.audit = audit;
    if (kms_store_open_dir(argv[1], &o, &s) < 0)
        return 1;

    if (!strcmp(cmd, "getpass") && argc == 7) {
        struct kms_request rq = {argv[3], argv[4], argv[5], argv[6], "127.0.0.1:1", false};
        r = print_reply(kms_get_pass(s, &rq, &rep), &rep);
    } else if (!strcmp(cmd, "postpass") && (argc == 8 || argc == 9)) {
        struct kms_request rq = {argv[3], argv[4], argv[5], argv[6], "127.0.0.1:1", false};
        _cleanup_secret_ struct secret *pass = NULL;
        if (kms_passphrase_read_file(argv[7], &pass) < 0)
            return 1;
        r = print_reply(kms_post_pass(s, &rq, pass, argc == 9 ? argv[8] : "tpm", &rep), &rep);
    } else if (!strcmp(cmd, "register") && argc >= 4) {
        _cleanup_secret_ struct secret *pass = NULL;
        struct kms_register reg = {
            .tpm_hash = argv[3],
            .label = opt(argc, argv, "--label"),
            .device_name = opt(argc, argv, "--device"),
            .uuid = opt(argc, argv, "--uuid"),
            .volume = opt(argc, argv, "--name"),
            .secret_name = opt(argc, argv, "--secret"),
            .secret_key = opt(argc, argv, "--key"),
        };
        if (opt(argc, argv, "--passphrase-file") &&
            kms_passphrase_read_file(opt(argc, argv, "--passphrase-file"), &pass) < 0)
            return 1;
        reg.passphrase = pass;
        r = kms_register(s, &reg) < 0;
    } else if (!strcmp(cmd, "list") && argc == 3) {
        r = kms_list(s, stdout) < 0;
    } else if ((!strcmp(cmd, "quarantine") || !strcmp(cmd, "release")) && argc == 4) {
        r = kms_set_quarantine(s, argv[3], !strcmp(cmd, "quarantine")) < 0;
    } else if (!strcmp(cmd, "hammer") && argc == 6) {
        r = hammer(s, atol(argv[3]), argv[4], argv[5]);
    } else {
        return usage();
    }
    kms_audit_free(audit);
    return r;
}
