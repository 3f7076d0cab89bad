/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Watch over the gateway: POST /v3/watch with one create_request answers with an endless chunked
 * stream, one JSON message per line (grpc-gateway v1 runtime/handler.go ForwardResponseStream
 * writes each message followed by "\n"). The gateway does not read further requests from the
 * connection, so there is no cancel or progress request: we close the socket to stop.
 * Resuming follows Kubernetes (kubernetes/kubernetes,
 * staging/src/k8s.io/apiserver/pkg/storage/etcd3/watcher.go: from the last revision + 1; a
 * compacted revision means: list again). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "etcd_internal.h"

struct etcd_watch {
    struct etcd *e;
    char *key;
    unsigned flags;
    int64_t next_rev; /* where a (re)opened watch starts; 0 = "now" (before anything arrived) */
    int64_t compact_rev;
    int64_t raft_term; /* highest seen: a member answering with a lower one is stale */
    struct net_http_stream *s;
    size_t ep;
    char *buf; /* bytes of the stream not yet split into lines */
    size_t len, cap;
    char why[512]; /* why the stream or the last open failed */
};

int64_t etcd_watch_next_revision(const struct etcd_watch *w) { return w->next_rev; }

int64_t etcd_watch_compact_revision(const struct etcd_watch *w) { return w->compact_rev; }

static void drop_stream(struct etcd_watch *w)
{
    net_http_stream_free(w->s);
    w->s = NULL;
    if (w->buf)
        secure_wipe(w->buf, w->len);
    w->len = 0;
}

void etcd_watch_free(struct etcd_watch *w)
{
    if (!w)
        return;
    drop_stream(w);
    free(w->buf);
    free(w->key);
    free(w);
}

/* The next line of the stream into *line (NUL-terminated in place, valid until the next call).
 * 0, -ETIME (nothing complete before deadline), or another negative errno (stream broken). */
static int read_line(struct etcd_watch *w, int64_t deadline, char **line, size_t *line_len, size_t *consumed)
{
    size_t scanned = 0;
    for (;;) {
        char *nl = memchr(w->buf + scanned, '\n', w->len - scanned);
        if (nl) {
            *nl = 0;
            *line = w->buf;
            *line_len = (size_t)(nl - w->buf);
            *consumed = *line_len + 1;
            return 0;
        }
        scanned = w->len;
        if (w->len >= w->cap) {
            snprintf(w->why, sizeof(w->why), "a message over %zu bytes", w->cap);
            return -E2BIG;
        }
        bool q = log_set_quiet(true);
        ssize_t n = net_http_stream_read(w->s, w->buf + w->len, w->cap - w->len, deadline);
        log_set_quiet(q);
        if (n == -ETIME)
            return -ETIME;
        if (n == 0) {
            snprintf(w->why, sizeof(w->why), "the stream ended");
            return -ECONNRESET;
        }
        if (n < 0) {
            snprintf(w->why, sizeof(w->why), "%s", *log_quiet_last() ? log_quiet_last() : strerror((int)-n));
            return (int)n;
        }
        w->len += (size_t)n;
    }
}

static void consume(struct etcd_watch *w, size_t n)
{
    secure_wipe(w->buf, n);
    memmove(w->buf, w->buf + n, w->len - n);
    w->len -= n;
}

/* One attempt to open the stream on endpoint i, up to the "created" message. 0; ETCD_RETRY_NEXT
 * failures as -EAGAIN (logged at info level); or a final error. */
static int open_on(struct etcd_watch *w, size_t i, int64_t until)
{
    struct etcd *e = w->e;
    _cleanup_kjson_w_ struct kjson_w *jw = kjson_w_new();
    _cleanup_free_ char *url = NULL, *b64 = NULL, *end = NULL, *end64 = NULL;
    char token[1100], rev[24];
    uint64_t gen = 0;
    const char *text;
    size_t len;
    int r;

    if ((r = etcd_token(e, until, token, sizeof(token), &gen)) < 0)
        return r == -EACCES || r == KTLS_ERR_CERT ? r : -EAGAIN;
    kjson_w_obj_begin(jw);
    kjson_w_key(jw, "create_request");
    kjson_w_obj_begin(jw);
    b64 = base64_encode((const uint8_t *)w->key, strlen(w->key), BASE64_STD, &len);
    kjson_w_kv_str(jw, "key", b64);
    if (w->flags & ETCD_WATCH_PREFIX) {
        end = etcd_prefix_end(w->key);
        end64 = base64_encode((const uint8_t *)end, *end ? strlen(end) : 1, BASE64_STD, &len);
        kjson_w_kv_str(jw, "range_end", end64);
    }
    if (w->next_rev > 0) {
        snprintf(rev, sizeof(rev), "%lld", (long long)w->next_rev);
        kjson_w_kv_str(jw, "start_revision", rev);
    }
    if (w->flags & ETCD_WATCH_PREV_KV)
        kjson_w_kv_bool(jw, "prev_kv", true);
    if (w->flags & ETCD_WATCH_PROGRESS)
        kjson_w_kv_bool(jw, "progress_notify", true);
    kjson_w_obj_end(jw);
    kjson_w_obj_end(jw);
    if ((r = kjson_w_result(jw, &text, &len)) < 0)
        return log_error_errno(r, "etcd: watch %.60s: cannot encode the request", w->key);
    url = xasprintf("%s/v3/watch", e->ep[i]);
    struct net_header auth = {"Authorization", token};
    struct net_client_opts o = etcd_opts(e, until, token[0] ? &auth : NULL);
    bool q = log_set_quiet(true);
    r = net_http_stream_open("POST", url, "application/json", text, len, &o, &w->s);
    log_set_quiet(q);
    bool had_token = token[0] != 0;
    secure_wipe(token, sizeof(token));
    if (r < 0) {
        snprintf(w->why, sizeof(w->why), "%s", *log_quiet_last() ? log_quiet_last() : strerror(-r));
        if (r == KTLS_ERR_CERT)
            return log_error_errno(r, "etcd %s: watch %.60s: %s", e->ep[i], w->key, w->why);
        log_info("etcd %s: watch %.60s: %s; trying the next endpoint", e->ep[i], w->key, w->why);
        return -EAGAIN;
    }
    w->ep = i;
    w->len = 0;
    int status = net_http_stream_status(w->s);
    if (status != 200) {
        /* an error answer: read it (bounded) and classify it */
        char body[4096];
        size_t got = 0;
        while (got < sizeof(body) - 1) {
            ssize_t n = net_http_stream_read(w->s, body + got, sizeof(body) - 1 - got, until);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        int code = 0, err;
        char msg[160];
        etcd_decode_error(body, got, &code, msg, sizeof(msg));
        drop_stream(w);
        enum etcd_verdict v = etcd_classify(status, code, msg, &err);
        if (v == ETCD_FAIL && e->user && !had_token && strstr(msg, "user name is empty"))
            v = ETCD_REAUTH; /* auth was turned on since we found it off */
        if (v == ETCD_REAUTH && e->user) {
            etcd_token_drop(e, gen);
            return -EAGAIN;
        }
        if (v == ETCD_RETRY_NEXT) {
            snprintf(w->why, sizeof(w->why), "HTTP %d: %s", status, msg);
            log_info("etcd %s: watch %.60s: HTTP %d %s; trying the next endpoint", e->ep[i], w->key, status, msg);
            return -EAGAIN;
        }
        return log_error_errno(v == ETCD_REAUTH ? -EACCES : err, "etcd %s: watch %.60s refused: HTTP %d: %s", e->ep[i],
                               w->key, status, msg);
    }
    return 0;
}

/* Opens the stream on the current endpoint or the next ones until deadline. */
static int reopen(struct etcd_watch *w, int64_t deadline)
{
    struct etcd *e = w->e;
    size_t tried = 0;
    int r = -ETIME;
    while (now_ms() < deadline) {
        size_t i = etcd_current(e);
        int64_t until = now_ms() + e->attempt_ms;
        if (until > deadline)
            until = deadline;
        r = open_on(w, i, until);
        if (r == 0)
            return 0;
        if (r != -EAGAIN)
            return r;
        etcd_rotate(e, i);
        if (++tried % e->nep == 0) {
            int64_t pause = deadline - now_ms();
            if (pause > 200)
                pause = 200;
            if (pause > 0) {
                struct timespec ts = {0, pause * 1000000};
                nanosleep(&ts, NULL);
            }
        }
    }
    return log_error_errno(-ETIME, "etcd: watch %.60s: no endpoint accepted the watch in time (last: %s)", w->key,
                           w->why[0] ? w->why : "no attempt");
}

int etcd_watch_open(struct etcd *e, const char *key, int64_t start_revision, unsigned flags, struct etcd_watch **out)
{
    if (!key || !*key || strlen(key) > ETCD_MAX_KEY)
        return log_error_errno(-EINVAL, "etcd: watch: bad key");
    if (start_revision < 0)
        return log_error_errno(-EINVAL, "etcd: watch %.60s: negative revision", key);
    struct etcd_watch *w = xcalloc(1, sizeof(*w));
    w->e = e;
    w->key = xstrdup(key);
    w->flags = flags;
    w->next_rev = start_revision;
    w->cap = e->max_response;
    w->buf = xmalloc(w->cap + 1);
    /* Open and wait for "created", so that a refused or compacted start shows here. */
    struct etcd_watch_batch b;
    int r = reopen(w, now_ms() + e->deadline_ms);
    if (r == 0) {
        r = etcd_watch_next(w, e->deadline_ms, &b);
        if (r == 0 && b.n > 0) {
            /* events before "created" (etcd sends it first): not delivered; the next call opens
             * the watch again from where it was asked to start */
            w->next_rev = start_revision;
            drop_stream(w);
        }
        if (r == 0)
            etcd_watch_batch_clear(&b);
        else if (r == -ETIME)
            r = log_error_errno(-ETIME, "etcd %s: watch %.60s: not confirmed in time", e->ep[w->ep], key);
    }
    if (r < 0 && r != -ESTALE) {
        etcd_watch_free(w);
        return r;
    }
    *out = w; /* -ESTALE: the caller may read etcd_watch_compact_revision before freeing */
    return r;
}

bool etcd_watch_connected(const struct etcd_watch *w) { return w && w->s; }

int etcd_watch_next(struct etcd_watch *w, int timeout_ms, struct etcd_watch_batch *out)
{
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    struct etcd *e = w->e;
    int r;

    *out = (struct etcd_watch_batch){0};
    if (w->compact_rev)
        return -ESTALE;
    for (;;) {
        if (!w->s) {
            if (now_ms() >= deadline)
                return -ETIME;
            if ((r = reopen(w, deadline)) < 0)
                return r;
        }
        char *line = NULL;
        size_t len = 0, used = 0;
        r = read_line(w, deadline, &line, &len, &used);
        if (r == -ETIME)
            return -ETIME;
        if (r == -E2BIG) {
            /* a replay bigger than we keep (etcd packs up to 1000 revisions in one message):
             * resuming would bring the same message again; the caller lists instead */
            log_error("etcd %s: watch %.60s: %s; list again", e->ep[w->ep], w->key, w->why);
            drop_stream(w);
            return -E2BIG;
        }
        if (r < 0) {
            /* the member went away (or broke the stream): resume on the next one */
            log_info("etcd %s: watch %.60s: %s; resuming from revision %lld on the next endpoint", e->ep[w->ep], w->key,
                     w->why, (long long)w->next_rev);
            etcd_rotate(e, w->ep);
            drop_stream(w);
            continue;
        }
        struct etcd_watch_msg m;
        r = etcd_decode_watch_message(line, len, e->max_value, &m);
        consume(w, used);
        if (r < 0) {
            log_error("etcd %s: watch %.60s: malformed message; reconnecting", e->ep[w->ep], w->key);
            etcd_rotate(e, w->ep);
            drop_stream(w);
            return -EPROTO;
        }
        if (m.err_code) {
            int err;
            enum etcd_verdict v = etcd_classify(500, m.err_code, m.err_msg, &err);
            log_info("etcd %s: watch %.60s: error %d %s", e->ep[w->ep], w->key, m.err_code, m.err_msg);
            etcd_watch_msg_clear(&m);
            drop_stream(w);
            if (v == ETCD_FAIL)
                return log_error_errno(err, "etcd %s: watch %.60s refused", e->ep[w->ep], w->key);
            etcd_rotate(e, w->ep);
            continue;
        }
        if (m.raft_term > 0 && m.raft_term < w->raft_term) {
            log_warn("etcd %s: watch %.60s: raft term %lld below %lld already seen: a stale member, switching",
                     e->ep[w->ep], w->key, (long long)m.raft_term, (long long)w->raft_term);
            etcd_watch_msg_clear(&m);
            etcd_rotate(e, w->ep);
            drop_stream(w);
            continue;
        }
        if (m.raft_term > w->raft_term)
            w->raft_term = m.raft_term;
        if (m.canceled) {
            if (m.compact_revision > 0) {
                w->compact_rev = m.compact_revision;
                log_info("etcd %s: watch %.60s: revision %lld was compacted (compaction at %lld): list again",
                         e->ep[w->ep], w->key, (long long)w->next_rev, (long long)m.compact_revision);
                etcd_watch_msg_clear(&m);
                drop_stream(w);
                return -ESTALE;
            }
            bool denied = strstr(m.cancel_reason, "permission denied") != NULL;
            r = log_error_errno(denied ? -EACCES : -ECANCELED, "etcd %s: watch %.60s canceled: %s", e->ep[w->ep],
                                w->key, m.cancel_reason[0] ? m.cancel_reason : "(no reason)");
            etcd_watch_msg_clear(&m);
            drop_stream(w);
            if (denied)
                return r;
            etcd_rotate(e, w->ep);
            continue;
        }
        if (m.created) {
            if (w->next_rev == 0)
                w->next_rev = m.batch.revision + 1; /* "from now": later events are above this */
            etcd_watch_msg_clear(&m);
            *out = (struct etcd_watch_batch){.revision = w->next_rev - 1};
            return 0;
        }
        if (m.batch.n == 0) {
            /* a progress notification: everything up to its revision was delivered */
            if (m.batch.revision >= w->next_rev)
                w->next_rev = m.batch.revision + 1;
            *out = m.batch;
            m.batch = (struct etcd_watch_batch){0};
            etcd_watch_msg_clear(&m);
            return 0;
        }
        /* drop events below the resume point (a repetition), keep the order */
        size_t keep = 0;
        for (size_t i = 0; i < m.batch.n; i++) {
            if (m.batch.ev[i].kv.mod_revision < w->next_rev) {
                etcd_kv_clear(&m.batch.ev[i].kv);
                etcd_kv_clear(&m.batch.ev[i].prev);
                continue;
            }
            m.batch.ev[keep++] = m.batch.ev[i];
        }
        m.batch.n = keep;
        if (m.max_mod_revision >= w->next_rev)
            w->next_rev = m.max_mod_revision + 1;
        if (keep == 0) {
            etcd_watch_msg_clear(&m);
            continue;
        }
        *out = m.batch;
        m.batch = (struct etcd_watch_batch){0};
        etcd_watch_msg_clear(&m);
        return 0;
    }
}
