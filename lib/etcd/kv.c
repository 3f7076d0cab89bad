/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* KV, txn, lease and maintenance calls: request bodies as etcd's rpc.proto names them
 * (RangeRequest, PutRequest, DeleteRangeRequest, TxnRequest, Compare, RequestOp; LeaseGrant...),
 * answers decoded by decode.c. Kubernetes writes the same way (kubernetes/kubernetes,
 * staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go: Create = If(ModRevision(key) == 0)
 * .Then(Put); updates If(ModRevision == rev).Then(Put).Else(Get)). */
#include <stdio.h>
#include <string.h>

#include "etcd_internal.h"

char *etcd_prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    char *end = xstrdup(prefix);
    while (n > 0) {
        unsigned char c = (unsigned char)end[n - 1];
        if (c < 0xff) {
            end[n - 1] = (char)(c + 1);
            end[n] = 0;
            return end;
        }
        n--;
    }
    free(end);
    return xstrdup(""); /* all 0xff: "\0" on the wire, i.e. to the end of the keyspace */
}

static int check_key(const char *key, const char *what)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > ETCD_MAX_KEY)
        return log_error_errno(-EINVAL, "etcd: %s: key %s", what, n ? "too long" : "empty");
    return 0;
}

static void w_bytes(struct kjson_w *w, const char *name, const void *p, size_t n)
{
    size_t len;
    char *b = base64_encode(p, n, BASE64_STD, &len);
    kjson_w_kv_str(w, name, b);
    secure_wipe(b, len);
    free(b);
}

static void w_i64(struct kjson_w *w, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    kjson_w_kv_str(w, name, buf);
}

/* key and, for a prefix, range_end (a range_end of "\0" is one NUL byte). */
static void w_range(struct kjson_w *w, const char *key, bool prefix)
{
    w_bytes(w, "key", key, strlen(key));
    if (prefix) {
        _cleanup_free_ char *end = etcd_prefix_end(key);
        w_bytes(w, "range_end", end, *end ? strlen(end) : 1);
    }
}

/* Runs a call whose body w holds; the parsed answer in *d, the text in *body. */
static int call_w(struct etcd *e, const char *path, struct kjson_w *w, const char *what, char **body, size_t *len,
                  struct kjson_doc **d)
{
    const char *text;
    size_t n;
    int r = kjson_w_result(w, &text, &n);
    if (r < 0)
        return log_error_errno(r, "etcd: %s: cannot encode the request", what);
    return etcd_call(e, path, text, n, what, body, len, d);
}

struct answer {
    char *body;
    size_t len;
    struct kjson_doc *doc;
};
static void answer_clear(struct answer *a)
{
    kjson_free(a->doc);
    etcd_body_free(a->body, a->len);
    *a = (struct answer){0};
}
#define _cleanup_answer_ _cleanup_(answer_clear)

static int bad_answer(struct etcd *e, const char *what, int r)
{
    if (r == -E2BIG)
        return log_error_errno(r, "etcd %s: %s: the answer holds a key or value over the size limit", etcd_endpoint(e),
                               what);
    return log_error_errno(-EPROTO, "etcd %s: %s: malformed answer", etcd_endpoint(e), what);
}

/* One RangeRequest: key is klen bytes (a page may start at "last key\0"). */
static int range_page(struct etcd *e, const char *key, size_t klen, const char *range_end, int64_t revision,
                      enum etcd_read how, unsigned limit, const char *what, struct etcd_kvs *out, bool *more)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_answer_ struct answer a = {0};
    int64_t count;
    int r;

    kjson_w_obj_begin(w);
    w_bytes(w, "key", key, klen);
    if (range_end)
        w_bytes(w, "range_end", range_end, *range_end ? strlen(range_end) : 1);
    if (limit)
        w_i64(w, "limit", limit);
    if (revision)
        w_i64(w, "revision", revision);
    if (how == ETCD_SERIALIZABLE)
        kjson_w_kv_bool(w, "serializable", true);
    kjson_w_obj_end(w);
    if ((r = call_w(e, "kv/range", w, what, &a.body, &a.len, &a.doc)) < 0)
        return r;
    if ((r = etcd_decode_range(a.doc, KJSON_ROOT, e->max_value, limit ? limit : 1, out, more, &count)) < 0)
        return bad_answer(e, what, r);
    return 0;
}

int etcd_get(struct etcd *e, const char *key, int64_t revision, enum etcd_read how, struct etcd_kv *kv,
             int64_t *store_revision)
{
    struct etcd_kvs kvs = {0};
    char what[80];
    bool more = false;
    int r;

    *kv = (struct etcd_kv){0};
    snprintf(what, sizeof(what), "get %.60s", key ? key : "");
    if ((r = check_key(key, "get")) < 0)
        return r;
    r = range_page(e, key, strlen(key), NULL, revision, how, 0, what, &kvs, &more);
    if (r == -ESTALE)
        log_error("etcd: %s: revision %lld was compacted", what, (long long)revision);
    if (r < 0)
        goto out;
    if (store_revision)
        *store_revision = kvs.revision;
    if (kvs.n > 1 || (kvs.n == 1 && strcmp(kvs.kv[0].key, key) != 0)) {
        r = log_error_errno(-EPROTO, "etcd %s: %s: the answer names another key", etcd_endpoint(e), what);
        goto out;
    }
    if (kvs.n == 0) {
        r = -ENOENT;
        goto out;
    }
    *kv = kvs.kv[0];
    kvs.n = 0;
out:
    etcd_kvs_clear(&kvs);
    return r;
}

int etcd_list(struct etcd *e, const char *prefix, int64_t revision, enum etcd_read how, struct etcd_kvs *out)
{
    _cleanup_free_ char *end = NULL, *from = NULL;
    size_t from_len, plen;
    unsigned limit = e->page;
    int64_t rev = revision > 0 ? revision : 0;
    char what[80];
    int r;

    *out = (struct etcd_kvs){0};
    snprintf(what, sizeof(what), "list %.60s", prefix ? prefix : "");
    if ((r = check_key(prefix, "list")) < 0)
        return r;
    plen = strlen(prefix);
    end = etcd_prefix_end(prefix);
    from = xstrdup(prefix);
    from_len = plen;
    for (;;) {
        struct etcd_kvs page = {0};
        bool more = false;
        r = range_page(e, from, from_len, end, rev, how, limit, what, &page, &more);
        if (r == -E2BIG && limit > 1) {
            /* a page of big values: ask for fewer keys at a time */
            etcd_kvs_clear(&page);
            limit = limit / 4 ? limit / 4 : 1;
            log_info("etcd: %s: answer too large, asking %u keys per page", what, limit);
            continue;
        }
        if (r == -ESTALE)
            log_error("etcd: %s: the snapshot at revision %lld was compacted while listing", what, (long long)rev);
        if (r < 0) {
            etcd_kvs_clear(&page);
            goto fail;
        }
        if (rev == 0)
            rev = page.revision; /* every further page from the same snapshot */
        if (out->n + page.n > e->max_keys) {
            etcd_kvs_clear(&page);
            r = log_error_errno(-E2BIG, "etcd: %s: more than %zu keys", what, e->max_keys);
            goto fail;
        }
        /* Keys must come in order, inside the prefix, after the last one seen: a broken or
         * hostile answer must not make us loop or mix in other keys. */
        for (size_t i = 0; i < page.n; i++) {
            const char *k = page.kv[i].key;
            const char *prev = out->n + i > 0 ? (i > 0 ? page.kv[i - 1].key : out->kv[out->n - 1].key) : NULL;
            if (strncmp(k, prefix, plen) != 0 || (prev && strcmp(k, prev) <= 0)) {
                etcd_kvs_clear(&page);
                r = log_error_errno(-EPROTO, "etcd %s: %s: keys out of order or outside the prefix", etcd_endpoint(e),
                                    what);
                goto fail;
            }
        }
        out->kv = xrealloc(out->kv, (out->n + page.n + 1) * sizeof(*out->kv));
        if (page.n)
            memcpy(out->kv + out->n, page.kv, page.n * sizeof(*page.kv));
        out->n += page.n;
        free(page.kv);
        if (!more)
            break;
        if (page.n == 0) {
            r = log_error_errno(-EPROTO, "etcd %s: %s: 'more' without keys", etcd_endpoint(e), what);
            goto fail;
        }
        /* the next page starts right after the last key: that key followed by a NUL byte */
        const char *last = out->kv[out->n - 1].key;
        from_len = strlen(last) + 1;
        free(from);
        from = xmalloc(from_len + 1);
        memcpy(from, last, from_len); /* copies the NUL too */
        from[from_len] = 0;
    }
    out->revision = rev;
    return 0;
fail:
    etcd_kvs_clear(out);
    return r;
}

int etcd_put(struct etcd *e, const char *key, const void *value, size_t len, int64_t lease, int64_t *revision)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_answer_ struct answer a = {0};
    char what[80];
    int64_t rev;
    int r;

    snprintf(what, sizeof(what), "put %.60s", key ? key : "");
    if ((r = check_key(key, "put")) < 0)
        return r;
    if (len > e->max_value)
        return log_error_errno(-E2BIG, "etcd: %s: value of %zu bytes is over the %zu-byte limit", what, len,
                               e->max_value);
    kjson_w_obj_begin(w);
    w_bytes(w, "key", key, strlen(key));
    w_bytes(w, "value", value, len);
    if (lease)
        w_i64(w, "lease", lease);
    kjson_w_obj_end(w);
    if ((r = call_w(e, "kv/put", w, what, &a.body, &a.len, &a.doc)) < 0)
        return r == -ENOENT ? log_error_errno(r, "etcd: %s: lease %lld not found", what, (long long)lease) : r;
    if ((r = etcd_decode_header(a.doc, KJSON_ROOT, &rev, NULL)) < 0 || rev <= 0)
        return bad_answer(e, what, -EPROTO);
    if (revision)
        *revision = rev;
    return 0;
}

int etcd_delete(struct etcd *e, const char *key, bool prefix, int64_t *deleted, int64_t *revision)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_answer_ struct answer a = {0};
    char what[80];
    int64_t rev, n;
    int r;

    snprintf(what, sizeof(what), "delete %.60s", key ? key : "");
    if ((r = check_key(key, "delete")) < 0)
        return r;
    kjson_w_obj_begin(w);
    w_range(w, key, prefix);
    kjson_w_obj_end(w);
    if ((r = call_w(e, "kv/deleterange", w, what, &a.body, &a.len, &a.doc)) < 0)
        return r;
    if ((r = etcd_decode_header(a.doc, KJSON_ROOT, &rev, NULL)) < 0 ||
        (r = etcd_get_i64(a.doc, KJSON_ROOT, "deleted", &n)) < 0 || n < 0)
        return bad_answer(e, what, -EPROTO);
    if (deleted)
        *deleted = n;
    if (revision)
        *revision = rev;
    return 0;
}

void etcd_txn_result_clear(struct etcd_txn_result *t)
{
    if (!t)
        return;
    etcd_kvs_clear(&t->kvs);
    *t = (struct etcd_txn_result){0};
}

static const char *const target_names[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
static const char *const target_fields[] = {"version", "create_revision", "mod_revision", "value", "lease"};
static const char *const result_names[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS"};

static int w_ops(struct etcd *e, struct kjson_w *w, const char *name, const struct etcd_op *ops, size_t n)
{
    if (n > ETCD_MAX_TXN_OPS)
        return log_error_errno(-E2BIG, "etcd: txn: more than %u operations", ETCD_MAX_TXN_OPS);
    kjson_w_key(w, name);
    kjson_w_arr_begin(w);
    for (size_t i = 0; i < n; i++) {
        const struct etcd_op *op = &ops[i];
        int r;
        if ((r = check_key(op->key, "txn")) < 0)
            return r;
        kjson_w_obj_begin(w);
        switch (op->type) {
        case ETCD_OP_GET:
            kjson_w_key(w, "request_range");
            kjson_w_obj_begin(w);
            w_range(w, op->key, op->prefix);
            kjson_w_obj_end(w);
            break;
        case ETCD_OP_PUT:
            if (op->value_len > e->max_value)
                return log_error_errno(-E2BIG, "etcd: txn: value of %zu bytes for %.60s is over the %zu-byte limit",
                                       op->value_len, op->key, e->max_value);
            kjson_w_key(w, "request_put");
            kjson_w_obj_begin(w);
            w_bytes(w, "key", op->key, strlen(op->key));
            w_bytes(w, "value", op->value, op->value_len);
            if (op->lease)
                w_i64(w, "lease", op->lease);
            kjson_w_obj_end(w);
            break;
        case ETCD_OP_DELETE:
            kjson_w_key(w, "request_delete_range");
            kjson_w_obj_begin(w);
            w_range(w, op->key, op->prefix);
            kjson_w_obj_end(w);
            break;
        default: return log_error_errno(-EINVAL, "etcd: txn: unknown operation");
        }
        kjson_w_obj_end(w);
    }
    kjson_w_arr_end(w);
    return 0;
}

int etcd_txn(struct etcd *e, const struct etcd_cmp *cmp, size_t ncmp, const struct etcd_op *success, size_t nsuccess,
             const struct etcd_op *failure, size_t nfailure, struct etcd_txn_result *out)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_answer_ struct answer a = {0};
    char what[80];
    int r;

    *out = (struct etcd_txn_result){0};
    snprintf(what, sizeof(what), "txn %.60s", ncmp ? cmp[0].key : nsuccess ? success[0].key : "");
    if (ncmp > ETCD_MAX_TXN_OPS)
        return log_error_errno(-E2BIG, "etcd: %s: more than %u compares", what, ETCD_MAX_TXN_OPS);
    kjson_w_obj_begin(w);
    kjson_w_key(w, "compare");
    kjson_w_arr_begin(w);
    for (size_t i = 0; i < ncmp; i++) {
        const struct etcd_cmp *c = &cmp[i];
        if ((r = check_key(c->key, "txn compare")) < 0)
            return r;
        if ((unsigned)c->target > ETCD_CMP_LEASE || (unsigned)c->result > ETCD_LESS)
            return log_error_errno(-EINVAL, "etcd: %s: bad compare", what);
        kjson_w_obj_begin(w);
        w_bytes(w, "key", c->key, strlen(c->key));
        kjson_w_kv_str(w, "target", target_names[c->target]);
        kjson_w_kv_str(w, "result", result_names[c->result]);
        if (c->target == ETCD_CMP_VALUE)
            w_bytes(w, "value", c->value, c->value_len);
        else
            w_i64(w, target_fields[c->target], c->number);
        kjson_w_obj_end(w);
    }
    kjson_w_arr_end(w);
    if ((r = w_ops(e, w, "success", success, nsuccess)) < 0 || (r = w_ops(e, w, "failure", failure, nfailure)) < 0)
        return r;
    kjson_w_obj_end(w);
    if ((r = call_w(e, "kv/txn", w, what, &a.body, &a.len, &a.doc)) < 0)
        return r == -ENOENT ? log_error_errno(r, "etcd: %s: a lease it names was not found", what) : r;
    if ((r = kjson_get_bool(a.doc, KJSON_ROOT, "succeeded", 0, &out->succeeded)) < 0 ||
        (r = etcd_decode_header(a.doc, KJSON_ROOT, &out->revision, NULL)) < 0)
        return bad_answer(e, what, r);
    int arr = kjson_get(a.doc, KJSON_ROOT, "responses", 0);
    size_t expect = out->succeeded ? nsuccess : nfailure;
    if (arr >= 0 && kjson_type(a.doc, arr) == KJSON_ARRAY) {
        if (kjson_count(a.doc, arr) > expect)
            return bad_answer(e, what, -EPROTO);
        for (int v = kjson_next(a.doc, arr, -1); v >= 0; v = kjson_next(a.doc, arr, v)) {
            int rr = kjson_get(a.doc, v, "response_range", 0);
            bool more;
            int64_t count;
            if (rr >= 0 &&
                (r = etcd_decode_range(a.doc, rr, e->max_value, e->max_keys, &out->kvs, &more, &count)) < 0) {
                etcd_txn_result_clear(out);
                return bad_answer(e, what, r);
            }
        }
    } else if (arr >= 0 && kjson_type(a.doc, arr) != KJSON_NULL) {
        return bad_answer(e, what, -EPROTO);
    }
    out->kvs.revision = out->revision;
    return 0;
}

/* txn { compare } then put/delete, else get key: the shape of create, CAS and CAS-delete.
 * 0 when the compare held, 1 when not (t->kvs then holds the key, or nothing when absent). */
static int guarded(struct etcd *e, const char *key, const struct etcd_cmp *c, const struct etcd_op *then, size_t nthen,
                   struct etcd_txn_result *t)
{
    struct etcd_op get = {.type = ETCD_OP_GET, .key = key};
    int r = etcd_txn(e, c, 1, then, nthen, &get, 1, t);
    if (r < 0)
        return r;
    if (t->succeeded)
        return 0;
    if (t->kvs.n > 1 || (t->kvs.n == 1 && strcmp(t->kvs.kv[0].key, key) != 0)) {
        etcd_txn_result_clear(t);
        return log_error_errno(-EPROTO, "etcd %s: txn %.60s: the answer names another key", etcd_endpoint(e), key);
    }
    return 1;
}

/* Hands the key a failed compare found to the caller. */
static void give_current(struct etcd_txn_result *t, struct etcd_kv *cur)
{
    if (!cur || t->kvs.n != 1)
        return;
    *cur = t->kvs.kv[0];
    t->kvs.kv[0] = (struct etcd_kv){0};
}

static bool holds(const struct etcd_txn_result *t, const void *value, size_t len)
{
    return t->kvs.n == 1 && t->kvs.kv[0].value_len == len && (len == 0 || memcmp(t->kvs.kv[0].value, value, len) == 0);
}

/* The put of key, then the caller's other operations (nalso at most ETCD_MAX_TXN_OPS - 1). */
static struct etcd_op *then_ops(const char *key, const void *value, size_t len, int64_t lease,
                                const struct etcd_op *also, size_t nalso)
{
    struct etcd_op *ops = xcalloc(nalso + 1, sizeof(*ops));

    ops[0] = (struct etcd_op){.type = ETCD_OP_PUT, .key = key, .value = value, .value_len = len, .lease = lease};
    for (size_t i = 0; i < nalso; i++)
        ops[i + 1] = also[i];
    return ops;
}

int etcd_put_with(struct etcd *e, const char *key, const void *value, size_t len, int64_t lease,
                  const struct etcd_op *also, size_t nalso, int64_t *revision)
{
    _cleanup_free_ struct etcd_op *put = NULL;
    struct etcd_txn_result t;
    int r;

    if (nalso == 0)
        return etcd_put(e, key, value, len, lease, revision);
    if (nalso >= ETCD_MAX_TXN_OPS)
        return log_error_errno(-E2BIG, "etcd: put %.60s: more than %u operations", key, ETCD_MAX_TXN_OPS);
    put = then_ops(key, value, len, lease, also, nalso);
    if ((r = etcd_txn(e, NULL, 0, put, nalso + 1, NULL, 0, &t)) < 0)
        return r;
    if (revision)
        *revision = t.revision;
    etcd_txn_result_clear(&t);
    return 0;
}

int etcd_create(struct etcd *e, const char *key, const void *value, size_t len, int64_t lease, struct etcd_kv *cur,
                int64_t *revision)
{
    return etcd_create_with(e, key, value, len, lease, NULL, 0, cur, revision);
}

int etcd_create_with(struct etcd *e, const char *key, const void *value, size_t len, int64_t lease,
                     const struct etcd_op *also, size_t nalso, struct etcd_kv *cur, int64_t *revision)
{
    struct etcd_cmp c = {.key = key, .target = ETCD_CMP_CREATE, .result = ETCD_EQUAL, .number = 0};
    _cleanup_free_ struct etcd_op *put = NULL;
    struct etcd_txn_result t;
    int r;

    if (cur)
        *cur = (struct etcd_kv){0};
    if (nalso >= ETCD_MAX_TXN_OPS)
        return log_error_errno(-E2BIG, "etcd: create %.60s: more than %u operations", key, ETCD_MAX_TXN_OPS);
    put = then_ops(key, value, len, lease, also, nalso);
    if ((r = guarded(e, key, &c, put, nalso + 1, &t)) < 0)
        return r;
    if (r == 0) {
        if (revision)
            *revision = t.revision;
    } else if (t.kvs.n == 0) {
        r = log_error_errno(-EPROTO, "etcd %s: create %.60s: compare failed but the key is absent", etcd_endpoint(e),
                            key);
    } else if (holds(&t, value, len)) {
        /* our own earlier attempt (answer lost), or an identical write: the key holds our value */
        log_debug("etcd: create %.60s: already holds this value (revision %lld)", key,
                  (long long)t.kvs.kv[0].mod_revision);
        if (revision)
            *revision = t.kvs.kv[0].mod_revision;
        r = 0;
    } else {
        r = -EEXIST;
        give_current(&t, cur);
    }
    etcd_txn_result_clear(&t);
    return r;
}

int etcd_cas(struct etcd *e, const char *key, int64_t mod_revision, const void *value, size_t len, int64_t lease,
             struct etcd_kv *cur, int64_t *revision)
{
    return etcd_cas_with(e, key, mod_revision, value, len, lease, NULL, 0, cur, revision);
}

int etcd_cas_with(struct etcd *e, const char *key, int64_t mod_revision, const void *value, size_t len, int64_t lease,
                  const struct etcd_op *also, size_t nalso, struct etcd_kv *cur, int64_t *revision)
{
    struct etcd_cmp c = {.key = key, .target = ETCD_CMP_MOD, .result = ETCD_EQUAL, .number = mod_revision};
    _cleanup_free_ struct etcd_op *put = NULL;
    struct etcd_txn_result t;
    int r;

    if (cur)
        *cur = (struct etcd_kv){0};
    if (mod_revision < 0)
        return log_error_errno(-EINVAL, "etcd: cas %.60s: negative revision", key);
    if (nalso >= ETCD_MAX_TXN_OPS)
        return log_error_errno(-E2BIG, "etcd: cas %.60s: more than %u operations", key, ETCD_MAX_TXN_OPS);
    put = then_ops(key, value, len, lease, also, nalso);
    if ((r = guarded(e, key, &c, put, nalso + 1, &t)) < 0)
        return r;
    if (r == 0) {
        if (revision)
            *revision = t.revision;
    } else if (holds(&t, value, len) && t.kvs.kv[0].mod_revision > mod_revision) {
        log_debug("etcd: cas %.60s: already holds this value (revision %lld)", key,
                  (long long)t.kvs.kv[0].mod_revision);
        if (revision)
            *revision = t.kvs.kv[0].mod_revision;
        r = 0;
    } else {
        r = -ESTALE;
        give_current(&t, cur);
    }
    etcd_txn_result_clear(&t);
    return r;
}

int etcd_cas_delete(struct etcd *e, const char *key, int64_t mod_revision, struct etcd_kv *cur)
{
    struct etcd_cmp c = {.key = key, .target = ETCD_CMP_MOD, .result = ETCD_EQUAL, .number = mod_revision};
    struct etcd_op del = {.type = ETCD_OP_DELETE, .key = key};
    struct etcd_txn_result t;
    int r;

    if (cur)
        *cur = (struct etcd_kv){0};
    if ((r = guarded(e, key, &c, &del, 1, &t)) < 0)
        return r;
    r = r == 0 || t.kvs.n == 0 ? 0 : -ESTALE; /* absent already: done (by us or someone else) */
    if (r == -ESTALE)
        give_current(&t, cur);
    etcd_txn_result_clear(&t);
    return r;
}

int etcd_lease_grant(struct etcd *e, int64_t ttl_s, int64_t *id, int64_t *ttl_out)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_answer_ struct answer a = {0};
    int64_t ttl;
    int r;

    if (ttl_s <= 0 || ttl_s > 9000000000LL)
        return log_error_errno(-EINVAL, "etcd: lease grant: bad TTL %lld", (long long)ttl_s);
    kjson_w_obj_begin(w);
    w_i64(w, "TTL", ttl_s);
    kjson_w_obj_end(w);
    if ((r = call_w(e, "lease/grant", w, "lease grant", &a.body, &a.len, &a.doc)) < 0)
        return r;
    if (etcd_get_i64(a.doc, KJSON_ROOT, "ID", id) < 0 || etcd_get_i64(a.doc, KJSON_ROOT, "TTL", &ttl) < 0 || *id <= 0 ||
        ttl <= 0)
        return bad_answer(e, "lease grant", -EPROTO);
    if (ttl_out)
        *ttl_out = ttl;
    return 0;
}

int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ttl_out)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_answer_ struct answer a = {0};
    char what[48];
    int64_t ttl, rid;
    int r;

    snprintf(what, sizeof(what), "lease keepalive %lld", (long long)id);
    kjson_w_obj_begin(w);
    w_i64(w, "ID", id);
    kjson_w_obj_end(w);
    if ((r = call_w(e, "lease/keepalive", w, what, &a.body, &a.len, &a.doc)) < 0)
        return r;
    /* a stream of one message: {"result":{...}} (or {"error":{...}}) */
    int res = kjson_get(a.doc, KJSON_ROOT, "result", 0);
    if (res < 0) {
        int code = 0;
        char msg[160];
        if (etcd_decode_error(a.body, a.len, &code, msg, sizeof(msg)) == 0)
            return log_error_errno(code == 5 ? -ENOENT : -EIO, "etcd %s: %s refused: %s", etcd_endpoint(e), what, msg);
        return bad_answer(e, what, -EPROTO);
    }
    if (etcd_get_i64(a.doc, res, "TTL", &ttl) < 0 || etcd_get_i64(a.doc, res, "ID", &rid) < 0)
        return bad_answer(e, what, -EPROTO);
    if (ttl <= 0)
        return -ENOENT; /* expired or unknown: the gateway says so with TTL 0 (omitted) */
    if (ttl_out)
        *ttl_out = ttl;
    return 0;
}

int etcd_lease_revoke(struct etcd *e, int64_t id)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_answer_ struct answer a = {0};
    int r;

    kjson_w_obj_begin(w);
    w_i64(w, "ID", id);
    kjson_w_obj_end(w);
    r = call_w(e, "lease/revoke", w, "lease revoke", &a.body, &a.len, &a.doc);
    return r == -ENOENT ? 0 : r; /* gone already: a repetition, or it expired */
}

int etcd_compact(struct etcd *e, int64_t revision)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_answer_ struct answer a = {0};
    int r;

    kjson_w_obj_begin(w);
    w_i64(w, "revision", revision);
    kjson_w_kv_bool(w, "physical", true);
    kjson_w_obj_end(w);
    r = call_w(e, "kv/compaction", w, "compaction", &a.body, &a.len, &a.doc);
    if (r == -ESTALE)
        return log_error_errno(r, "etcd: compaction to %lld: already compacted", (long long)revision);
    return r;
}

int etcd_status(struct etcd *e, size_t endpoint, struct etcd_status *out)
{
    _cleanup_free_ char *url = NULL;
    struct net_http_response *resp = NULL;
    char token[1100];
    uint64_t gen;
    int r;

    *out = (struct etcd_status){0};
    if (endpoint >= e->nep)
        return log_error_errno(-EINVAL, "etcd: no endpoint %zu", endpoint);
    int64_t deadline = now_ms() + e->attempt_ms * 2;
    if ((r = etcd_token(e, deadline, token, sizeof(token), &gen)) < 0)
        return r;
    struct net_header auth = {"Authorization", token};
    struct net_client_opts o = etcd_opts(e, deadline, token[0] ? &auth : NULL);
    url = xasprintf("%s/v3/maintenance/status", e->ep[endpoint]);
    r = net_http_request("POST", url, "application/json", "{}", 2, &o, &resp);
    secure_wipe(token, sizeof(token));
    if (r < 0)
        return r;
    if (resp->status != 200) {
        int code;
        char msg[160];
        etcd_decode_error((const char *)resp->body, resp->body_len, &code, msg, sizeof(msg));
        r = log_error_errno(-EIO, "etcd %s: status: HTTP %d: %s", e->ep[endpoint], resp->status, msg);
        net_http_response_free(resp);
        return r;
    }
    struct kjson_limits lim = etcd_json_limits(resp->body_len + 1);
    struct kjson_doc *d = NULL;
    r = kjson_parse((const char *)resp->body, resp->body_len, &lim, &d, NULL);
    int h = r == 0 ? kjson_get(d, KJSON_ROOT, "header", 0) : -EINVAL;
    char *version = NULL;
    if (h < 0 || etcd_get_u64_text(d, h, "member_id", out->member_id, sizeof(out->member_id)) < 0 ||
        etcd_get_u64_text(d, KJSON_ROOT, "leader", out->leader, sizeof(out->leader)) < 0 ||
        etcd_decode_header(d, KJSON_ROOT, &out->revision, &out->raft_term) < 0 ||
        kjson_get_str(d, KJSON_ROOT, "version", 0, &version) < 0)
        r = log_error_errno(-EPROTO, "etcd %s: status: malformed answer", e->ep[endpoint]);
    else
        snprintf(out->version, sizeof(out->version), "%s", version);
    free(version);
    kjson_free(d);
    net_http_response_free(resp);
    return r < 0 ? r : 0;
}
