/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/etcd without a cluster: prefix range ends (as etcd's clientv3.GetPrefixRangeEnd), the
 * decoders of the gateway's answers (shapes etcd 3.4.23 returned: int64 as strings, base64
 * bytes, omitted defaults), error classification, and configuration errors. The client against
 * a real cluster is tests/etcd/test_client.sh. */
#include <stdio.h>
#include <string.h>

#include "etcd_internal.h"
#include "tap.h"

static struct kjson_doc *parse(const char *s)
{
    struct kjson_limits lim = etcd_json_limits(strlen(s) + 1);
    struct kjson_doc *d = NULL;
    return kjson_parse(s, strlen(s), &lim, &d, NULL) < 0 ? NULL : d;
}

static bool end_is(const char *prefix, const char *want)
{
    char *end = etcd_prefix_end(prefix);
    bool ok = strcmp(end, want) == 0;
    free(end);
    return ok;
}

static void test_prefix_end(void)
{
    CHECK(end_is("kms/sv/", "kms/sv0"), "prefix end of kms/sv/ is kms/sv0");
    CHECK(end_is("a\xff", "b"), "a trailing 0xff is cut and the byte before incremented");
    CHECK(end_is("\xff\xff", ""), "all 0xff: to the end of the keyspace (sent as one NUL)");
}

static void test_range(void)
{
    struct kjson_doc *d = parse(
        "{\"header\":{\"cluster_id\":\"14841639068965178418\",\"revision\":\"5\",\"raft_term\":\"2\"},"
        "\"kvs\":[{\"key\":\"a21zL3N2L2FiYw==\",\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"2\","
        "\"value\":\"djI=\"}],\"more\":true,\"count\":\"2\"}");
    struct etcd_kvs kvs = {0};
    bool more = false;
    int64_t count = 0;
    int r = etcd_decode_range(d, KJSON_ROOT, 100, 10, &kvs, &more, &count);
    CHECK(r == 0 && kvs.n == 1 && kvs.revision == 5 && more && count == 2, "range answer: header, more, count");
    CHECK(r == 0 && !strcmp(kvs.kv[0].key, "kms/sv/abc") && kvs.kv[0].value_len == 2 &&
              !memcmp(kvs.kv[0].value, "v2", 2) && kvs.kv[0].create_revision == 2 && kvs.kv[0].mod_revision == 3,
          "kv: base64 key and value, revisions as strings");
    etcd_kvs_clear(&kvs);
    CHECK(etcd_decode_range(d, KJSON_ROOT, 1, 10, &kvs, &more, &count) == -E2BIG, "a value over the limit: -E2BIG");
    etcd_kvs_clear(&kvs);
    kjson_free(d);

    d = parse("{\"header\":{\"revision\":\"7\"}}");
    CHECK(d && etcd_decode_range(d, KJSON_ROOT, 100, 10, &kvs, &more, &count) == 0 && kvs.n == 0 && !more &&
              kvs.revision == 7,
          "an empty range: only a header (defaults omitted)");
    kjson_free(d);

    const char *bad[] = {
        "{\"kvs\":[{\"key\":\"\",\"mod_revision\":\"1\"}]}",                        /* empty key */
        "{\"kvs\":[{\"key\":\"YQBi\",\"mod_revision\":\"1\"}]}",                    /* NUL in the key */
        "{\"kvs\":[{\"key\":\"YQ=\",\"mod_revision\":\"1\"}]}",                     /* bad base64 */
        "{\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"1x\"}]}",                   /* not a number */
        "{\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"99999999999999999999\"}]}", /* overflow */
        "{\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"-1\"}]}",                   /* negative */
        "{\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"5\",\"mod_revision\":\"4\"}]}",
        "{\"kvs\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = parse(bad[i]);
        CHECK(d && etcd_decode_range(d, KJSON_ROOT, 100, 10, &kvs, &more, &count) < 0, "refused: %s", bad[i]);
        etcd_kvs_clear(&kvs);
        kjson_free(d);
    }
    d = parse("{\"kvs\":[{\"key\":\"YQ==\"},{\"key\":\"Yg==\"},{\"key\":\"Yw==\"}]}");
    CHECK(etcd_decode_range(d, KJSON_ROOT, 100, 2, &kvs, &more, &count) == -E2BIG, "more keys than asked: refused");
    etcd_kvs_clear(&kvs);
    kjson_free(d);
}

static void test_watch(void)
{
    struct etcd_watch_msg m;
    const char *ev =
        "{\"result\":{\"header\":{\"revision\":\"16\",\"raft_term\":\"3\"},\"events\":["
        "{\"kv\":{\"key\":\"a21zL3Yx\",\"create_revision\":\"14\",\"mod_revision\":\"14\",\"version\":\"1\","
        "\"value\":\"eA==\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"a21zL3Yx\",\"mod_revision\":\"16\"}}]}}";
    int r = etcd_decode_watch_message(ev, strlen(ev), 100, &m);
    CHECK(r == 0 && m.batch.n == 2 && m.batch.ev[0].type == ETCD_EVENT_PUT && m.batch.ev[1].type == ETCD_EVENT_DELETE &&
              m.max_mod_revision == 16 && m.batch.revision == 16 && m.raft_term == 3 &&
              !strcmp(m.batch.ev[1].kv.key, "kms/v1"),
          "watch events: a PUT without a type, a DELETE with only key and mod_revision");
    etcd_watch_msg_clear(&m);
    const char *comp = "{\"result\":{\"header\":{\"revision\":\"20\"},\"canceled\":true,\"compact_revision\":\"15\"}}";
    r = etcd_decode_watch_message(comp, strlen(comp), 100, &m);
    CHECK(r == 0 && m.canceled && m.compact_revision == 15, "watch canceled by compaction");
    etcd_watch_msg_clear(&m);
    const char *err = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"}}";
    r = etcd_decode_watch_message(err, strlen(err), 100, &m);
    CHECK(r == 0 && m.err_code == 14 && !strcmp(m.err_msg, "etcdserver: no leader"), "an error object in the stream");
    etcd_watch_msg_clear(&m);
    CHECK(etcd_decode_watch_message("{\"result\":[]}", 13, 100, &m) < 0, "a result that is not an object: refused");
}

static void test_errors(void)
{
    int code, err;
    char msg[64];
    const char *e =
        "{\"error\":\"etcdserver: request is too large\",\"message\":\"etcdserver: request is too large\",\"code\":3}";
    CHECK(etcd_decode_error(e, strlen(e), &code, msg, sizeof(msg)) == 0 && code == 3 &&
              !strcmp(msg, "etcdserver: request is too large"),
          "unary error body: code and message");
    CHECK(etcd_classify(400, code, msg, &err) == ETCD_FAIL && err == -E2BIG, "request too large: -E2BIG, not retried");
    CHECK(etcd_classify(503, 14, "etcdserver: request timed out", &err) == ETCD_RETRY_NEXT,
          "Unavailable: next endpoint");
    CHECK(etcd_classify(500, 2, "context deadline exceeded", &err) == ETCD_RETRY_NEXT,
          "deadline exceeded: next endpoint");
    CHECK(etcd_classify(401, 16, "etcdserver: invalid auth token", &err) == ETCD_REAUTH,
          "invalid token: authenticate again");
    CHECK(etcd_classify(400, 3, "etcdserver: revision of auth store is old", &err) == ETCD_REAUTH,
          "old auth revision: authenticate again");
    CHECK(etcd_classify(400, 3, "etcdserver: authentication failed, invalid user ID or password", &err) == ETCD_FAIL &&
              err == -EACCES,
          "wrong password: -EACCES");
    CHECK(etcd_classify(400, 11, "mvcc: required revision has been compacted", &err) == ETCD_FAIL && err == -ESTALE,
          "compacted: -ESTALE");
    CHECK(etcd_classify(404, 5, "etcdserver: requested lease not found", &err) == ETCD_FAIL && err == -ENOENT,
          "lease not found: -ENOENT");
    CHECK(etcd_classify(502, 0, "", &err) == ETCD_RETRY_NEXT, "a 5xx without an etcd body: next endpoint");
    const char *ctl = "{\"error\":\"x\",\"message\":\"bad\\nline\\u001b[31m\",\"code\":3}";
    CHECK(etcd_decode_error(ctl, strlen(ctl), &code, msg, sizeof(msg)) == 0 && !strchr(msg, '\n') && !strchr(msg, 0x1b),
          "control characters in a message never reach a log line");
}

static void test_config(void)
{
    struct etcd *e = NULL;
    tap_capture_begin();
    int r1 = etcd_new(&(struct etcd_config){.endpoints = "ftp://x:1"}, &e);
    int r2 = etcd_new(&(struct etcd_config){.endpoints = ""}, &e);
    int r3 = etcd_new(&(struct etcd_config){.endpoints = "http://127.0.0.1:1/v3"}, &e);
    int r4 = etcd_new(&(struct etcd_config){.endpoints = "http://127.0.0.1:1", .user = "kms"}, &e);
    int r5 = etcd_new(&(struct etcd_config){.endpoints = "http://127.0.0.1:1", .cert_file = "/x"}, &e);
    const char *log = tap_capture_end();
    CHECK(r1 == -EINVAL && strstr(log, "endpoint ftp://x:1 is not an http:// or https:// URL"),
          "bad scheme refused, named");
    CHECK(r2 == -EINVAL && strstr(log, "no endpoint given"), "no endpoint");
    CHECK(r3 == -EINVAL && strstr(log, "has a path"), "an endpoint with a path");
    CHECK(r4 == -EINVAL && strstr(log, "needs a password file"), "a user without a password file");
    CHECK(r5 == -EINVAL && strstr(log, "both a certificate and a key"), "a certificate without its key");
    CHECK(etcd_new(&(struct etcd_config){.endpoints = "http://127.0.0.1:1,http://127.0.0.2:2/"}, &e) == 0 &&
              etcd_endpoint_count(e) == 2 && !strcmp(etcd_endpoint(e), "http://127.0.0.1:1"),
          "two endpoints, the first tried first");
    etcd_free(e);
}

int main(void)
{
    log_set_program("test_etcd");
    test_prefix_end();
    test_range();
    test_watch();
    test_errors();
    test_config();
    return tap_done();
}
