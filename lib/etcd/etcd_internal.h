/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/etcd internals shared by its files, the unit tests and the fuzz harness: the client
 * state and the decoders of the gateway's answers (every answer is hostile input: bounded,
 * strictly typed, base64 checked). Decoders do not log; they return 0 or a negative errno. */
#ifndef KKMS_ETCD_INTERNAL_H
#define KKMS_ETCD_INTERNAL_H

#include <pthread.h>

#include "etcd.h"
#include "kjson.h"
#include "net.h"

struct etcd {
    char **ep; /* endpoint base URLs, without a trailing '/' */
    size_t nep;
    size_t cur; /* the endpoint tried first (under mu) */
    struct ktls_client *tls;
    char *user;
    struct secret *password;
    struct secret *token; /* under mu; NULL until authenticated */
    uint64_t token_gen;   /* bumped at every new token (under mu) */
    pthread_mutex_t mu;
    int attempt_ms, deadline_ms;
    size_t max_value, max_response, max_keys;
    unsigned page;
};

/* JSON limits for an answer of at most max_bytes. */
struct kjson_limits etcd_json_limits(size_t max_bytes);

/* A 64-bit integer member given as a JSON string ("5") or number; missing or null = 0. */
int etcd_get_i64(const struct kjson_doc *d, int obj, const char *key, int64_t *out);
/* An unsigned 64-bit member kept as decimal text (member IDs exceed 2^53); missing = "0". */
int etcd_get_u64_text(const struct kjson_doc *d, int obj, const char *key, char *out, size_t n);
/* A bytes member (standard base64): *out malloc'd with a NUL after *len bytes (NULL and 0 when
 * missing); -E2BIG over max. */
int etcd_get_bytes(const struct kjson_doc *d, int obj, const char *key, size_t max, uint8_t **out, size_t *len);
/* A KeyValue message. */
int etcd_decode_kv(const struct kjson_doc *d, int v, size_t max_value, struct etcd_kv *out);
/* A ResponseHeader member "header" of obj (missing = zeros). */
int etcd_decode_header(const struct kjson_doc *d, int obj, int64_t *revision, int64_t *raft_term);
/* A RangeResponse object: its kvs appended to out (at most max_keys in out), more and count. */
int etcd_decode_range(const struct kjson_doc *d, int obj, size_t max_value, size_t max_keys, struct etcd_kvs *out,
                      bool *more, int64_t *count);
/* An error answer: {"error":"..","message":"..","code":N} (unary) or
 * {"error":{"grpc_code":N,"http_code":N,"message":".."}} (streams). The message is cut to n-1
 * bytes and anything outside printable ASCII replaced by '?'. -ENOENT when it is not one. */
int etcd_decode_error(const char *body, size_t len, int *code, char *msg, size_t n);

/* One message of a watch stream. */
struct etcd_watch_msg {
    struct etcd_watch_batch batch;
    bool created, canceled;
    int64_t compact_revision;
    int64_t max_mod_revision; /* highest mod_revision among the events, 0 when none */
    int64_t raft_term;
    char cancel_reason[160];
    int err_code; /* an {"error":{...}} message: its gRPC code (> 0) and text */
    char err_msg[160];
};
void etcd_watch_msg_clear(struct etcd_watch_msg *m);
int etcd_decode_watch_message(const char *msg, size_t len, size_t max_value, struct etcd_watch_msg *out);

/* gRPC code and message of an error answer -> what the client does with it. */
enum etcd_verdict { ETCD_FAIL, ETCD_RETRY_NEXT, ETCD_REAUTH };
enum etcd_verdict etcd_classify(int http_status, int code, const char *msg, int *err);

/* POSTs json to /v3/<path> with retries, auth and bounds; on HTTP 200 *doc (owned by the caller,
 * pointing into *body, which the caller wipes and frees) is the parsed answer. what names the
 * operation in log lines ("put kms/x"). */
int etcd_call(struct etcd *e, const char *path, const char *json, size_t json_len, const char *what, char **body,
              size_t *body_len, struct kjson_doc **doc);
/* Wipes and frees an answer body of len bytes. */
void etcd_body_free(char *body, size_t len);
/* The Authorization header value (copied into out, "" without auth), authenticating first when
 * needed. *gen gets the token's generation. */
int etcd_token(struct etcd *e, int64_t deadline, char *out, size_t n, uint64_t *gen);
/* Drops the token of generation gen (refused by etcd) so the next call authenticates again. */
void etcd_token_drop(struct etcd *e, uint64_t gen);
/* Client options for one attempt on endpoint i until deadline. */
struct net_client_opts etcd_opts(struct etcd *e, int64_t deadline, const struct net_header *auth);
/* The endpoint to try first, and moving past a failed one. */
size_t etcd_current(struct etcd *e);
void etcd_rotate(struct etcd *e, size_t failed);

#endif
