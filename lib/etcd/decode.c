/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Decoders of the JSON gateway's answers (grpc-gateway v1 with OrigName: snake_case member
 * names, proto3 defaults omitted, int64 as strings, bytes as standard base64). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "etcd_internal.h"

struct kjson_limits etcd_json_limits(size_t max_bytes)
{
    size_t tokens = max_bytes / 2 + 64;
    return (struct kjson_limits){
        .max_bytes = max_bytes,
        .max_tokens = tokens > UINT_MAX ? UINT_MAX : (unsigned)tokens,
        .max_depth = 16,
    };
}

void etcd_kv_clear(struct etcd_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    if (kv->value)
        secure_wipe(kv->value, kv->value_len);
    free(kv->value);
    *kv = (struct etcd_kv){0};
}

void etcd_kvs_clear(struct etcd_kvs *kvs)
{
    if (!kvs)
        return;
    for (size_t i = 0; i < kvs->n; i++)
        etcd_kv_clear(&kvs->kv[i]);
    free(kvs->kv);
    *kvs = (struct etcd_kvs){0};
}

/* Strict decimal: optional '-', 1-19 digits, no overflow. */
static int parse_i64(const char *p, size_t n, int64_t *out)
{
    bool neg = n > 0 && p[0] == '-';
    size_t i = neg ? 1 : 0;
    uint64_t v = 0;
    if (i == n || n - i > 19)
        return -EINVAL;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
        return -ERANGE;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int etcd_get_i64(const struct kjson_doc *d, int obj, const char *key, int64_t *out)
{
    *out = 0;
    int v = kjson_get(d, obj, key, 0);
    if (v == -ENOENT)
        return 0;
    if (v < 0)
        return v;
    switch (kjson_type(d, v)) {
    case KJSON_NULL: return 0;
    case KJSON_NUMBER: return kjson_int64(d, v, out);
    case KJSON_STRING: {
        const char *p;
        size_t n;
        int r = kjson_raw(d, v, &p, &n);
        if (r < 0 || n < 2)
            return -EINVAL;
        return parse_i64(p + 1, n - 2, out); /* digits never need escapes */
    }
    default: return -EINVAL;
    }
}

int etcd_get_u64_text(const struct kjson_doc *d, int obj, const char *key, char *out, size_t n)
{
    int v = kjson_get(d, obj, key, 0);
    const char *p;
    size_t len;

    snprintf(out, n, "0");
    if (v == -ENOENT)
        return 0;
    if (v < 0)
        return v;
    enum kjson_type t = kjson_type(d, v);
    if (t == KJSON_NULL)
        return 0;
    if ((t != KJSON_STRING && t != KJSON_NUMBER) || kjson_raw(d, v, &p, &len) < 0)
        return -EINVAL;
    if (t == KJSON_STRING) {
        p++;
        len -= 2;
    }
    if (len == 0 || len > 20 || len >= n)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
    memcpy(out, p, len);
    out[len] = 0;
    return 0;
}

int etcd_get_bytes(const struct kjson_doc *d, int obj, const char *key, size_t max, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int v = kjson_get(d, obj, key, 0);
    if (v == -ENOENT)
        return 0;
    if (v < 0)
        return v;
    if (kjson_type(d, v) == KJSON_NULL)
        return 0;
    if (kjson_type(d, v) != KJSON_STRING)
        return -EINVAL;
    const char *p;
    size_t n;
    int r = kjson_raw(d, v, &p, &n);
    if (r < 0 || n < 2)
        return -EINVAL;
    p++;
    n -= 2;
    /* Base64 needs no escapes; the gateway writes none. Bound before decoding. */
    if (memchr(p, '\\', n))
        return -EINVAL;
    if (n / 4 * 3 > max + 3)
        return -E2BIG;
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    if (n > 0 && (r = base64_decode(p, n, BASE64_STD, &raw, &rawlen)) < 0)
        return -EINVAL;
    if (rawlen > max) {
        secure_wipe(raw, rawlen);
        free(raw);
        return -E2BIG;
    }
    uint8_t *res = xmalloc(rawlen + 1);
    if (rawlen)
        memcpy(res, raw, rawlen);
    res[rawlen] = 0;
    if (raw) {
        secure_wipe(raw, rawlen);
        free(raw);
    }
    *out = res;
    *len = rawlen;
    return 0;
}

int etcd_decode_kv(const struct kjson_doc *d, int v, size_t max_value, struct etcd_kv *out)
{
    uint8_t *key = NULL;
    size_t klen = 0;
    int r;

    *out = (struct etcd_kv){0};
    if (kjson_type(d, v) != KJSON_OBJECT)
        return -EINVAL;
    if ((r = etcd_get_bytes(d, v, "key", ETCD_MAX_KEY, &key, &klen)) < 0)
        return r;
    if (klen == 0 || memchr(key, 0, klen)) {
        free(key);
        return -EINVAL;
    }
    out->key = (char *)key;
    if ((r = etcd_get_bytes(d, v, "value", max_value, &out->value, &out->value_len)) < 0 ||
        (r = etcd_get_i64(d, v, "create_revision", &out->create_revision)) < 0 ||
        (r = etcd_get_i64(d, v, "mod_revision", &out->mod_revision)) < 0 ||
        (r = etcd_get_i64(d, v, "version", &out->version)) < 0 || (r = etcd_get_i64(d, v, "lease", &out->lease)) < 0)
        goto fail;
    if (out->create_revision < 0 || out->mod_revision < 0 || out->version < 0 || out->lease < 0 ||
        out->create_revision > out->mod_revision) {
        r = -EINVAL;
        goto fail;
    }
    if (!out->value) {
        out->value = xmalloc(1);
        out->value[0] = 0;
    }
    return 0;
fail:
    etcd_kv_clear(out);
    return r;
}

int etcd_decode_header(const struct kjson_doc *d, int obj, int64_t *revision, int64_t *raft_term)
{
    int64_t rev = 0, term = 0;
    int h = kjson_get(d, obj, "header", 0), r;
    if (h >= 0 && kjson_type(d, h) == KJSON_OBJECT) {
        if ((r = etcd_get_i64(d, h, "revision", &rev)) < 0 || (r = etcd_get_i64(d, h, "raft_term", &term)) < 0)
            return r;
    } else if (h >= 0 && kjson_type(d, h) != KJSON_NULL) {
        return -EINVAL;
    }
    if (rev < 0 || term < 0)
        return -EINVAL;
    if (revision)
        *revision = rev;
    if (raft_term)
        *raft_term = term;
    return 0;
}

int etcd_decode_range(const struct kjson_doc *d, int obj, size_t max_value, size_t max_keys, struct etcd_kvs *out,
                      bool *more, int64_t *count)
{
    int r;
    if (kjson_type(d, obj) != KJSON_OBJECT)
        return -EINVAL;
    if ((r = kjson_get_bool(d, obj, "more", 0, more)) < 0 || (r = etcd_get_i64(d, obj, "count", count)) < 0)
        return r;
    if ((r = etcd_decode_header(d, obj, &out->revision, NULL)) < 0)
        return r;
    int arr = kjson_get(d, obj, "kvs", 0);
    if (arr == -ENOENT || (arr >= 0 && kjson_type(d, arr) == KJSON_NULL))
        return 0;
    if (arr < 0 || kjson_type(d, arr) != KJSON_ARRAY)
        return -EINVAL;
    size_t n = kjson_count(d, arr);
    if (n > max_keys || out->n > max_keys - n)
        return -E2BIG;
    out->kv = xrealloc(out->kv, (out->n + n + 1) * sizeof(*out->kv));
    for (int v = kjson_next(d, arr, -1); v >= 0; v = kjson_next(d, arr, v)) {
        if ((r = etcd_decode_kv(d, v, max_value, &out->kv[out->n])) < 0)
            return r;
        out->n++;
    }
    return 0;
}

static void clean_text(const char *in, size_t len, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < n; i++)
        out[j++] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    if (n)
        out[j] = 0;
}

static void str_member(const struct kjson_doc *d, int obj, const char *key, char *out, size_t n)
{
    int v = kjson_get(d, obj, key, 0);
    char *s = NULL;
    size_t len = 0;
    if (n)
        out[0] = 0;
    if (v >= 0 && kjson_type(d, v) == KJSON_STRING && kjson_str(d, v, &s, &len) == 0)
        clean_text(s, len, out, n);
    free(s);
}

/* The error object inside a stream message or an answer: code and message. */
static int error_of(const struct kjson_doc *d, int root, int *code, char *msg, size_t n)
{
    int e = kjson_get(d, root, "error", 0);
    int64_t c = 0;
    if (e < 0)
        return -ENOENT;
    if (kjson_type(d, e) == KJSON_OBJECT) {
        if (etcd_get_i64(d, e, "grpc_code", &c) < 0)
            c = 0;
        str_member(d, e, "message", msg, n);
    } else if (kjson_type(d, e) == KJSON_STRING) {
        if (etcd_get_i64(d, root, "code", &c) < 0)
            c = 0;
        str_member(d, root, "message", msg, n);
        if (!msg[0])
            str_member(d, root, "error", msg, n);
    } else {
        return -ENOENT;
    }
    *code = c < 0 || c > 1000 ? 2 : (int)c; /* unknown codes read as Unknown */
    return 0;
}

int etcd_decode_error(const char *body, size_t len, int *code, char *msg, size_t n)
{
    struct kjson_limits lim = etcd_json_limits(64 * 1024);
    _cleanup_kjson_ struct kjson_doc *d = NULL;
    *code = 0;
    if (n)
        msg[0] = 0;
    if (len > lim.max_bytes || kjson_parse(body, len, &lim, &d, NULL) < 0 || kjson_type(d, KJSON_ROOT) != KJSON_OBJECT)
        return -ENOENT;
    return error_of(d, KJSON_ROOT, code, msg, n);
}

void etcd_watch_batch_clear(struct etcd_watch_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        etcd_kv_clear(&b->ev[i].kv);
        etcd_kv_clear(&b->ev[i].prev);
    }
    free(b->ev);
    *b = (struct etcd_watch_batch){0};
}

void etcd_watch_msg_clear(struct etcd_watch_msg *m)
{
    etcd_watch_batch_clear(&m->batch);
    *m = (struct etcd_watch_msg){0};
}

/* A deleted key's event carries only key and mod_revision; a PUT a whole kv. */
static int decode_event(const struct kjson_doc *d, int v, size_t max_value, struct etcd_event *ev)
{
    int r;
    *ev = (struct etcd_event){0};
    if (kjson_type(d, v) != KJSON_OBJECT)
        return -EINVAL;
    int t = kjson_get(d, v, "type", 0);
    if (t == -ENOENT || kjson_str_equal(d, t, "PUT", 0))
        ev->type = ETCD_EVENT_PUT;
    else if (kjson_str_equal(d, t, "DELETE", 0))
        ev->type = ETCD_EVENT_DELETE;
    else
        return -EINVAL;
    int kv = kjson_get(d, v, "kv", 0);
    if (kv < 0)
        return -EINVAL;
    if ((r = etcd_decode_kv(d, kv, max_value, &ev->kv)) < 0)
        return r;
    if (ev->kv.mod_revision <= 0)
        goto bad;
    int pk = kjson_get(d, v, "prev_kv", 0);
    if (pk >= 0 && kjson_type(d, pk) != KJSON_NULL && (r = etcd_decode_kv(d, pk, max_value, &ev->prev)) < 0)
        goto fail;
    return 0;
bad:
    r = -EINVAL;
fail:
    etcd_kv_clear(&ev->kv);
    etcd_kv_clear(&ev->prev);
    return r;
}

int etcd_decode_watch_message(const char *msg, size_t len, size_t max_value, struct etcd_watch_msg *out)
{
    struct kjson_limits lim = etcd_json_limits(len + 1);
    _cleanup_kjson_ struct kjson_doc *d = NULL;
    int r;

    *out = (struct etcd_watch_msg){0};
    if ((r = kjson_parse(msg, len, &lim, &d, NULL)) < 0)
        return -EINVAL;
    if (kjson_type(d, KJSON_ROOT) != KJSON_OBJECT)
        return -EINVAL;
    if (error_of(d, KJSON_ROOT, &out->err_code, out->err_msg, sizeof(out->err_msg)) == 0) {
        if (out->err_code == 0)
            out->err_code = 2;
        return 0;
    }
    int res = kjson_get(d, KJSON_ROOT, "result", 0);
    if (res < 0 || kjson_type(d, res) != KJSON_OBJECT)
        return -EINVAL;
    if ((r = etcd_decode_header(d, res, &out->batch.revision, &out->raft_term)) < 0 ||
        (r = kjson_get_bool(d, res, "created", 0, &out->created)) < 0 ||
        (r = kjson_get_bool(d, res, "canceled", 0, &out->canceled)) < 0 ||
        (r = etcd_get_i64(d, res, "compact_revision", &out->compact_revision)) < 0)
        goto fail;
    if (out->compact_revision < 0) {
        r = -EINVAL;
        goto fail;
    }
    str_member(d, res, "cancel_reason", out->cancel_reason, sizeof(out->cancel_reason));
    int arr = kjson_get(d, res, "events", 0);
    if (arr >= 0 && kjson_type(d, arr) != KJSON_NULL) {
        if (kjson_type(d, arr) != KJSON_ARRAY) {
            r = -EINVAL;
            goto fail;
        }
        size_t n = kjson_count(d, arr);
        out->batch.ev = xcalloc(n + 1, sizeof(*out->batch.ev));
        for (int v = kjson_next(d, arr, -1); v >= 0; v = kjson_next(d, arr, v)) {
            struct etcd_event *ev = &out->batch.ev[out->batch.n];
            if ((r = decode_event(d, v, max_value, ev)) < 0)
                goto fail;
            out->batch.n++;
            if (ev->kv.mod_revision > out->max_mod_revision)
                out->max_mod_revision = ev->kv.mod_revision;
        }
    }
    return 0;
fail:
    etcd_watch_msg_clear(out);
    return r;
}

enum etcd_verdict etcd_classify(int http_status, int code, const char *msg, int *err)
{
    *err = -EIO;
    switch (code) {
    case 0:
        /* no gRPC error in the body: judge by the HTTP status */
        if (http_status >= 500) {
            *err = -EAGAIN;
            return ETCD_RETRY_NEXT;
        }
        *err = http_status == 401 || http_status == 403 ? -EACCES : http_status == 404 ? -ENOENT : -EPROTO;
        return ETCD_FAIL;
    case 2: /* Unknown: "context deadline exceeded" once quorum is lost */
    case 4: /* DeadlineExceeded */
    case 14: /* Unavailable: no leader, leader changed, request timed out */ *err = -EAGAIN; return ETCD_RETRY_NEXT;
    case 3: /* InvalidArgument: the auth errors come with this code too */
        if (strstr(msg, "revision of auth store is old") || strstr(msg, "invalid auth token"))
            return ETCD_REAUTH;
        if (strstr(msg, "authentication failed") || strstr(msg, "user name is empty") ||
            strstr(msg, "user name not found") || strstr(msg, "authentication is not enabled"))
            *err = -EACCES;
        else if (strstr(msg, "too large") || strstr(msg, "too many operations"))
            *err = -E2BIG;
        else
            *err = -EINVAL;
        return ETCD_FAIL;
    case 16: /* Unauthenticated: invalid auth token */ return ETCD_REAUTH;
    case 5: *err = -ENOENT; return ETCD_FAIL;
    case 7: *err = -EACCES; return ETCD_FAIL;
    case 8: /* ResourceExhausted: the space quota, or a request over gRPC's receive limit */
        *err = strstr(msg, "larger than max") ? -E2BIG : -ENOSPC;
        return ETCD_FAIL;
    case 11: /* OutOfRange: compacted, or a future revision */
        *err = strstr(msg, "compacted") ? -ESTALE : -ERANGE;
        return ETCD_FAIL;
    default: *err = -EIO; return ETCD_FAIL;
    }
}
