/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/etcd's decoders of the JSON gateway's answers: the bytes as a unary
 * answer (a range, a txn's responses, an error) and as a watch stream split into lines the way
 * the client splits it. Checks that what a decoder hands out stays inside its bounds: keys
 * non-empty without NUL bytes and at most ETCD_MAX_KEY, values at most the limit, revisions
 * not negative, a create revision never above the mod revision.
 *   ./fuzz_etcd -max_total_time=60 tests/fuzz/corpus/etcd */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_internal.h"

#define MAX_VALUE 64

static void check_kv(const struct etcd_kv *kv)
{
    if (!kv->key || !kv->key[0] || strlen(kv->key) > ETCD_MAX_KEY || kv->value_len > MAX_VALUE || !kv->value ||
        kv->value[kv->value_len] != 0 || kv->mod_revision < 0 || kv->create_revision < 0 ||
        kv->create_revision > kv->mod_revision || kv->version < 0 || kv->lease < 0)
        abort();
}

static void unary(const char *data, size_t size)
{
    struct kjson_limits lim = etcd_json_limits(size + 1);
    struct kjson_doc *d = NULL;
    if (kjson_parse(data, size, &lim, &d, NULL) < 0)
        return;
    struct etcd_kvs kvs = {0};
    bool more = false;
    int64_t count = 0, rev = 0, term = 0;
    if (etcd_decode_range(d, KJSON_ROOT, MAX_VALUE, 8, &kvs, &more, &count) == 0) {
        if (kvs.n > 8 || kvs.revision < 0)
            abort();
        for (size_t i = 0; i < kvs.n; i++)
            check_kv(&kvs.kv[i]);
    }
    etcd_kvs_clear(&kvs);
    /* a txn answer's responses, as etcd_txn walks them */
    int arr = kjson_get(d, KJSON_ROOT, "responses", 0);
    if (arr >= 0 && kjson_type(d, arr) == KJSON_ARRAY)
        for (int v = kjson_next(d, arr, -1); v >= 0; v = kjson_next(d, arr, v)) {
            int rr = kjson_get(d, v, "response_range", 0);
            if (rr >= 0 && etcd_decode_range(d, rr, MAX_VALUE, 4, &kvs, &more, &count) == 0)
                for (size_t i = 0; i < kvs.n; i++)
                    check_kv(&kvs.kv[i]);
            etcd_kvs_clear(&kvs);
        }
    if (etcd_decode_header(d, KJSON_ROOT, &rev, &term) == 0 && (rev < 0 || term < 0))
        abort();
    char text[24];
    if (etcd_get_u64_text(d, KJSON_ROOT, "ID", text, sizeof(text)) == 0 && strlen(text) > 20)
        abort();
    kjson_free(d);

    int code = 0, err = 0;
    char msg[64];
    if (etcd_decode_error(data, size, &code, msg, sizeof(msg)) == 0) {
        if (strlen(msg) >= sizeof(msg) || code < 0)
            abort();
        for (const char *p = msg; *p; p++)
            if (*p < 0x20 || *p >= 0x7f)
                abort(); /* log lines get printable ASCII only */
        enum etcd_verdict v = etcd_classify(400, code, msg, &err);
        if (v == ETCD_FAIL && err >= 0)
            abort();
    }
}

static void watch_stream(const char *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        const char *nl = memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
        struct etcd_watch_msg m;
        if (etcd_decode_watch_message(data + off, len, MAX_VALUE, &m) == 0) {
            int64_t max = 0;
            for (size_t i = 0; i < m.batch.n; i++) {
                const struct etcd_event *ev = &m.batch.ev[i];
                check_kv(&ev->kv);
                if (ev->kv.mod_revision <= 0)
                    abort();
                if (ev->prev.key)
                    check_kv(&ev->prev);
                if (ev->kv.mod_revision > max)
                    max = ev->kv.mod_revision;
            }
            if (max != m.max_mod_revision || m.compact_revision < 0 ||
                strlen(m.cancel_reason) >= sizeof(m.cancel_reason))
                abort();
            etcd_watch_msg_clear(&m);
        }
        off += len + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    unary((const char *)data, size);
    watch_stream((const char *)data, size);
    /* the prefix end of the bytes as a key */
    char *key = malloc(size + 1);
    memcpy(key, data, size);
    key[size] = 0;
    if (key[0]) {
        char *end = etcd_prefix_end(key);
        if (*end && strcmp(end, key) <= 0)
            abort(); /* the end of a range is after its start */
        free(end);
    }
    free(key);
    return 0;
}
