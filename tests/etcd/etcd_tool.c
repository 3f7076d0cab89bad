/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* etcd_tool: a small driver of lib/etcd for the shell tests in tests/etcd, one process per
 * command.
 *
 *   etcd_tool [OPTIONS] COMMAND ARGS
 *   OPTIONS: --endpoints URL[,URL...] (default $ETCD_ENDPOINTS) --ca FILE --cert FILE --key FILE
 *            --user NAME --password-file FILE --deadline MS --attempt MS --max-value BYTES
 *            --max-response BYTES --page N
 *   put KEY VALUE [LEASE]          -> "ok REV"             (VALUE "@FILE" = the file's bytes)
 *   get KEY [serializable] [REV]   -> "value VALUE mod=N create=N version=N lease=N" | "absent" (exit 3)
 *   list PREFIX [serializable|linearizable] [REV]
 *                                  -> "KEY VALUE" lines, then "revision N count N"
 *   del KEY [prefix]               -> "deleted N"
 *   create KEY VALUE [LEASE]       -> "created REV" | "exists VALUE" (exit 4)
 *   cas KEY MODREV VALUE           -> "swapped REV" | "conflict MODREV VALUE" (exit 4)
 *   cas-del KEY MODREV             -> "deleted" | "conflict MODREV VALUE" (exit 4)
 *   watch KEY START_REV MAX_EVENTS SECONDS [prefix]
 *                                  -> "watching", then "put KEY VALUE REV" / "delete KEY REV" per
 *                                     event, "compacted REV" (exit 5), "too-big" (exit 6) or "done N"
 *   lease-grant TTL | lease-keepalive ID | lease-revoke ID
 *                                  -> "lease ID TTL" | "ttl N" or "expired" (exit 3) | "revoked"
 *   status                         -> per endpoint "URL member=ID leader=ID term=N revision=N" or "URL down"
 *   compact REV | raw PATH JSON    -> "compacted" | the answer's body
 *   put-loop PREFIX N              -> N puts PREFIX<i> = v<i>: "acked I MS" or "failed I MS" each,
 *                                     then "max_ms MS acked A failed F"
 * Exit codes: 0 ok, 1 error, 2 usage, 3 absent, 4 conflict, 5 compacted, 6 over a size limit. */
#include <stdio.h>
#include <string.h>

#include "etcd.h"

static int usage(void)
{
    fprintf(stderr, "usage: etcd_tool [--endpoints E] [--ca F] [--cert F --key F] [--user U --password-file F] "
                    "[--deadline MS] [--attempt MS] [--max-value N] [--max-response N] [--page N] COMMAND ARGS\n");
    return 2;
}

static int value_arg(const char *arg, char **out, size_t *len)
{
    if (arg[0] == '@') {
        int r = file_read_all(arg + 1, 64u << 20, out, len);
        return r < 0 ? log_error_errno(r, "%s: %m", arg + 1) : 0;
    }
    *out = xstrdup(arg);
    *len = strlen(arg);
    return 0;
}

static long long num(const char *s) { return strtoll(s, NULL, 10); }

static void print_kv(const char *prefix, const struct etcd_kv *kv)
{
    printf("%s %.*s mod=%lld create=%lld version=%lld lease=%lld\n", prefix, (int)kv->value_len,
           (const char *)kv->value, (long long)kv->mod_revision, (long long)kv->create_revision, (long long)kv->version,
           (long long)kv->lease);
}

static int watch(struct etcd *e, int argc, char **argv)
{
    if (argc < 4)
        return usage();
    struct etcd_watch *w = NULL;
    unsigned flags = argc > 4 && !strcmp(argv[4], "prefix") ? ETCD_WATCH_PREFIX : 0;
    long long max = num(argv[2]);
    int64_t until = now_ms() + num(argv[3]) * 1000;
    long long n = 0;
    int r = etcd_watch_open(e, argv[0], num(argv[1]), flags | ETCD_WATCH_PREV_KV, &w);
    if (r == -ESTALE) {
        printf("compacted %lld\n", (long long)etcd_watch_compact_revision(w));
        etcd_watch_free(w);
        return 5;
    }
    if (r < 0)
        return 1;
    printf("watching\n");
    fflush(stdout);
    while (n < max && now_ms() < until) {
        struct etcd_watch_batch b;
        int64_t left = until - now_ms();
        r = etcd_watch_next(w, left > 1000 ? 1000 : (int)left, &b);
        if (r == -ETIME)
            continue;
        if (r == -ESTALE) {
            printf("compacted %lld\n", (long long)etcd_watch_compact_revision(w));
            etcd_watch_free(w);
            return 5;
        }
        if (r == -E2BIG) {
            printf("too-big\n");
            etcd_watch_free(w);
            return 6;
        }
        if (r < 0)
            continue; /* unreachable for now: the next call tries again until the time is up */
        for (size_t i = 0; i < b.n; i++, n++) {
            const struct etcd_event *ev = &b.ev[i];
            if (ev->type == ETCD_EVENT_PUT)
                printf("put %s %.*s %lld\n", ev->kv.key, (int)ev->kv.value_len, (const char *)ev->kv.value,
                       (long long)ev->kv.mod_revision);
            else
                printf("delete %s %lld\n", ev->kv.key, (long long)ev->kv.mod_revision);
        }
        fflush(stdout);
        etcd_watch_batch_clear(&b);
    }
    printf("done %lld next=%lld\n", n, (long long)etcd_watch_next_revision(w));
    etcd_watch_free(w);
    return 0;
}

static int put_loop(struct etcd *e, const char *prefix, long long n)
{
    long long acked = 0, failed = 0;
    int64_t max_ms = 0;
    for (long long i = 0; i < n; i++) {
        char key[256], val[64];
        snprintf(key, sizeof(key), "%s%04lld", prefix, i);
        snprintf(val, sizeof(val), "v%lld", i);
        int64_t t0 = now_ms();
        /* create-if-absent: a repetition of a put whose answer was lost still succeeds */
        int r = etcd_create(e, key, val, strlen(val), 0, NULL, NULL);
        int64_t ms = now_ms() - t0;
        if (ms > max_ms)
            max_ms = ms;
        printf("%s %lld %lld\n", r == 0 ? "acked" : "failed", i, (long long)ms);
        fflush(stdout);
        if (r == 0)
            acked++;
        else
            failed++;
    }
    printf("max_ms %lld acked %lld failed %lld\n", (long long)max_ms, acked, failed);
    return failed ? 1 : 0;
}

static int run(struct etcd *e, const char *cmd, int argc, char **argv)
{
    _cleanup_free_ char *val = NULL;
    size_t vlen = 0;
    int64_t rev = 0;
    int r;

    if (!strcmp(cmd, "put") && argc >= 2) {
        if (value_arg(argv[1], &val, &vlen) < 0)
            return 1;
        if ((r = etcd_put(e, argv[0], val, vlen, argc > 2 ? num(argv[2]) : 0, &rev)) < 0)
            return 1;
        printf("ok %lld\n", (long long)rev);
    } else if (!strcmp(cmd, "get") && argc >= 1) {
        struct etcd_kv kv;
        bool ser = argc > 1 && !strcmp(argv[1], "serializable");
        r = etcd_get(e, argv[0], argc > 2 ? num(argv[2]) : 0, ser ? ETCD_SERIALIZABLE : ETCD_LINEARIZABLE, &kv, &rev);
        if (r == -ENOENT)
            return printf("absent\n"), 3;
        if (r < 0)
            return r == -ESTALE ? 5 : 1;
        print_kv("value", &kv);
        etcd_kv_clear(&kv);
    } else if (!strcmp(cmd, "list") && argc >= 1) {
        struct etcd_kvs kvs;
        bool ser = argc > 1 && !strcmp(argv[1], "serializable");
        r = etcd_list(e, argv[0], argc > 2 ? num(argv[2]) : 0, ser ? ETCD_SERIALIZABLE : ETCD_LINEARIZABLE, &kvs);
        if (r < 0)
            return r == -ESTALE ? 5 : 1;
        for (size_t i = 0; i < kvs.n; i++)
            printf("%s %.*s\n", kvs.kv[i].key, (int)kvs.kv[i].value_len, (const char *)kvs.kv[i].value);
        printf("revision %lld count %zu\n", (long long)kvs.revision, kvs.n);
        etcd_kvs_clear(&kvs);
    } else if (!strcmp(cmd, "del") && argc >= 1) {
        int64_t n;
        if (etcd_delete(e, argv[0], argc > 1 && !strcmp(argv[1], "prefix"), &n, &rev) < 0)
            return 1;
        printf("deleted %lld\n", (long long)n);
    } else if (!strcmp(cmd, "create") && argc >= 2) {
        struct etcd_kv cur;
        if (value_arg(argv[1], &val, &vlen) < 0)
            return 1;
        r = etcd_create(e, argv[0], val, vlen, argc > 2 ? num(argv[2]) : 0, &cur, &rev);
        if (r == -EEXIST) {
            printf("exists %.*s\n", (int)cur.value_len, (const char *)cur.value);
            etcd_kv_clear(&cur);
            return 4;
        }
        if (r < 0)
            return 1;
        printf("created %lld\n", (long long)rev);
    } else if (!strcmp(cmd, "cas") && argc >= 3) {
        struct etcd_kv cur;
        if (value_arg(argv[2], &val, &vlen) < 0)
            return 1;
        r = etcd_cas(e, argv[0], num(argv[1]), val, vlen, 0, &cur, &rev);
        if (r == -ESTALE) {
            printf("conflict %lld %.*s\n", (long long)cur.mod_revision, (int)cur.value_len,
                   cur.value ? (const char *)cur.value : "");
            etcd_kv_clear(&cur);
            return 4;
        }
        if (r < 0)
            return 1;
        printf("swapped %lld\n", (long long)rev);
    } else if (!strcmp(cmd, "cas-del") && argc >= 2) {
        struct etcd_kv cur;
        r = etcd_cas_delete(e, argv[0], num(argv[1]), &cur);
        if (r == -ESTALE) {
            printf("conflict %lld %.*s\n", (long long)cur.mod_revision, (int)cur.value_len, (const char *)cur.value);
            etcd_kv_clear(&cur);
            return 4;
        }
        if (r < 0)
            return 1;
        printf("deleted\n");
    } else if (!strcmp(cmd, "watch")) {
        return watch(e, argc, argv);
    } else if (!strcmp(cmd, "lease-grant") && argc >= 1) {
        int64_t id, ttl;
        if (etcd_lease_grant(e, num(argv[0]), &id, &ttl) < 0)
            return 1;
        printf("lease %lld %lld\n", (long long)id, (long long)ttl);
    } else if (!strcmp(cmd, "lease-keepalive") && argc >= 1) {
        int64_t ttl;
        r = etcd_lease_keepalive(e, num(argv[0]), &ttl);
        if (r == -ENOENT)
            return printf("expired\n"), 3;
        if (r < 0)
            return 1;
        printf("ttl %lld\n", (long long)ttl);
    } else if (!strcmp(cmd, "lease-revoke") && argc >= 1) {
        if (etcd_lease_revoke(e, num(argv[0])) < 0)
            return 1;
        printf("revoked\n");
    } else if (!strcmp(cmd, "status")) {
        for (size_t i = 0; i < etcd_endpoint_count(e); i++) {
            struct etcd_status st;
            /* etcd_endpoint names the current one; print by index instead */
            if (etcd_status(e, i, &st) < 0)
                printf("%zu down\n", i);
            else
                printf("%zu member=%s leader=%s term=%lld revision=%lld version=%s\n", i, st.member_id, st.leader,
                       (long long)st.raft_term, (long long)st.revision, st.version);
        }
    } else if (!strcmp(cmd, "compact") && argc >= 1) {
        if (etcd_compact(e, num(argv[0])) < 0)
            return 1;
        printf("compacted\n");
    } else if (!strcmp(cmd, "raw") && argc >= 2) {
        char *body;
        if (etcd_call_raw(e, argv[0], argv[1], &body) < 0)
            return 1;
        printf("%s\n", body);
        free(body);
    } else if (!strcmp(cmd, "put-loop") && argc >= 2) {
        return put_loop(e, argv[0], num(argv[1]));
    } else {
        return usage();
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct etcd_config cfg = {.endpoints = getenv("ETCD_ENDPOINTS")};
    int i = 1;

    log_set_program("etcd_tool");
    if (getenv("ETCD_TOOL_DEBUG"))
        log_set_level(LOG_DEBUG);
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        const char *o = argv[i] + 2, *v = argv[i + 1];
        if (!strcmp(o, "endpoints"))
            cfg.endpoints = v;
        else if (!strcmp(o, "ca"))
            cfg.ca_file = v;
        else if (!strcmp(o, "cert"))
            cfg.cert_file = v;
        else if (!strcmp(o, "key"))
            cfg.key_file = v;
        else if (!strcmp(o, "user"))
            cfg.user = v;
        else if (!strcmp(o, "password-file"))
            cfg.password_file = v;
        else if (!strcmp(o, "deadline"))
            cfg.deadline_ms = (int)num(v);
        else if (!strcmp(o, "attempt"))
            cfg.attempt_timeout_ms = (int)num(v);
        else if (!strcmp(o, "max-value"))
            cfg.max_value = (size_t)num(v);
        else if (!strcmp(o, "max-response"))
            cfg.max_response = (size_t)num(v);
        else if (!strcmp(o, "page"))
            cfg.page = (unsigned)num(v);
        else
            return usage();
    }
    if (i >= argc)
        return usage();
    struct etcd *e;
    if (etcd_new(&cfg, &e) < 0)
        return 1;
    int rc = run(e, argv[i], argc - i - 1, argv + i + 1);
    etcd_free(e);
    return rc;
}
