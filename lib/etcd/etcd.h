/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/etcd: a client of etcd v3 (3.4 and later) through its JSON gateway (POST /v3/...), for a
 * KMS store shared by stateless challengers. Reference: etcd-io/etcd
 * etcdserver/etcdserverpb/rpc.proto (messages) and Documentation/dev-guide/api_grpc_gateway.md
 * (v3.4); keys and values travel as standard base64, 64-bit integers as JSON strings.
 *
 * Every call is bounded: each attempt gets attempt_timeout_ms (1 s) on one endpoint; on a
 * transport failure, a timeout or etcd's "unavailable" answers (no leader, request timed out) the
 * next endpoint is tried, until the call's deadline (deadline_ms, 10 s) passes. Responses are
 * bounded in bytes, values in size (max_value, etcd's own 1.5 MiB request limit by default),
 * ranges in count. Functions return 0 or a negative errno and log one line naming the endpoint
 * and etcd's error message:
 *   -ENOENT   no such key / lease            -EEXIST  create: the key holds another value
 *   -ESTALE   CAS conflict, or a revision/watch that was compacted away
 *   -EACCES   authentication or permission refused   -E2BIG  over a size limit
 *   -ENOSPC   etcd's space quota is exhausted        -ETIME  no endpoint answered in time
 *   -EINVAL   etcd refused the request as malformed  -EPROTO an answer we cannot read
 *
 * Repeating writes is safe: a retried request may have been applied already (its answer was
 * lost), so every write is written as a transaction whose repetition leaves the same state, and
 * the result of a repetition is interpreted (etcd_create, etcd_cas, etcd_cas_delete say how).
 *
 * A client may be used by several threads at once (the token and the current endpoint are
 * behind a mutex); a watch belongs to one thread. */
#ifndef KKMS_ETCD_H
#define KKMS_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define ETCD_DEFAULT_ATTEMPT_MS 1000
#define ETCD_DEFAULT_DEADLINE_MS 10000
#define ETCD_DEFAULT_MAX_VALUE (3u << 19)    /* 1.5 MiB: etcd's --max-request-bytes default */
#define ETCD_DEFAULT_MAX_RESPONSE (8u << 20) /* one answer (a page of a range) */
#define ETCD_DEFAULT_PAGE 256u               /* keys asked per page of a prefix listing */
#define ETCD_DEFAULT_MAX_KEYS 1000000u       /* keys in one listing */
#define ETCD_MAX_KEY 4096u                   /* our keys are short paths */
#define ETCD_MAX_ENDPOINTS 16u
#define ETCD_MAX_TXN_OPS 128u /* etcd's --max-txn-ops default */

struct etcd_config {
    const char *endpoints; /* "http://127.0.0.1:2379,https://10.0.0.2:2379" (required) */
    const char *ca_file;   /* PEM CA(s) for https endpoints; NULL = the system bundle */
    const char *cert_file; /* client certificate for mutual TLS (with key_file), or NULL */
    const char *key_file;
    const char *user;          /* etcd user; NULL = no authentication */
    const char *password_file; /* its password: the file's first line (required with user) */
    int attempt_timeout_ms;    /* 0 = ETCD_DEFAULT_ATTEMPT_MS */
    int deadline_ms;           /* whole call, all retries; 0 = ETCD_DEFAULT_DEADLINE_MS */
    size_t max_value;          /* 0 = ETCD_DEFAULT_MAX_VALUE */
    size_t max_response;       /* 0 = ETCD_DEFAULT_MAX_RESPONSE */
    unsigned page;             /* 0 = ETCD_DEFAULT_PAGE */
    size_t max_keys;           /* 0 = ETCD_DEFAULT_MAX_KEYS */
};

struct etcd;

/* Parses the endpoints, loads TLS material and the password (authentication happens at the first
 * call). Logs and fails on a bad endpoint or an unreadable file. *out owned by the caller. */
int etcd_new(const struct etcd_config *cfg, struct etcd **out);
void etcd_free(struct etcd *e);
/* The endpoint the next call will try first (for log lines; owned by e). */
const char *etcd_endpoint(struct etcd *e);

/* ---- keys and values ---- */
struct etcd_kv {
    char *key;      /* NUL-terminated (keys holding NUL bytes are refused) */
    uint8_t *value; /* value_len bytes + a NUL; wiped when cleared */
    size_t value_len;
    int64_t create_revision; /* 0: the key does not exist */
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};
void etcd_kv_clear(struct etcd_kv *kv);

struct etcd_kvs {
    struct etcd_kv *kv;
    size_t n;
    int64_t revision; /* the store revision the listing is a snapshot of */
};
void etcd_kvs_clear(struct etcd_kvs *kvs);

/* The end of the range holding every key that starts with prefix (etcd's GetPrefixRangeEnd:
 * the last byte below 0xff incremented, the rest cut; "\0" when there is none). malloc'd. */
char *etcd_prefix_end(const char *prefix);

enum etcd_read { ETCD_LINEARIZABLE = 0, ETCD_SERIALIZABLE = 1 };

/* One key. -ENOENT when absent (kv cleared, *revision still set when not NULL). revision = 0
 * reads the newest; else the key as of that revision (-ESTALE when it was compacted). */
int etcd_get(struct etcd *e, const char *key, int64_t revision, enum etcd_read how, struct etcd_kv *kv,
             int64_t *store_revision);
/* Every key under prefix, in key order, page by page (cfg.page keys each), all pages read at
 * revision (0: the revision of the first page), so the result is one consistent snapshot;
 * -ESTALE if that revision is or gets compacted: list again. At most max_keys keys (-E2BIG
 * beyond). A page too big for max_response is asked again with fewer keys. */
int etcd_list(struct etcd *e, const char *prefix, int64_t revision, enum etcd_read how, struct etcd_kvs *out);

/* -ENOENT (absent), -EEXIST and -ESTALE (create/CAS conflicts) below are outcomes the caller
 * expects and are not logged; every other error is. */

/* Plain put (last writer wins); lease 0 = none. *revision: the revision it made (may be NULL). */
int etcd_put(struct etcd *e, const char *key, const void *value, size_t len, int64_t lease, int64_t *revision);
/* Deletes key (prefix false) or every key under it (prefix true). *deleted may be NULL. Deleting
 * nothing is a success (0 deleted), so a repetition is harmless. */
int etcd_delete(struct etcd *e, const char *key, bool prefix, int64_t *deleted, int64_t *revision);

/* Create-if-absent: txn { compare create_revision(key) == 0 } then put, else get. 0 when the key
 * now holds value: created by this call, or already holding exactly this value (a repetition
 * after a lost answer, or another writer who wrote the same). -EEXIST when it holds another
 * value; cur (may be NULL) then gets the current key. */
int etcd_create(struct etcd *e, const char *key, const void *value, size_t len, int64_t lease, struct etcd_kv *cur,
                int64_t *revision);
/* Compare-and-swap: put value if the key's mod_revision is still mod_revision (0 = the key must
 * not exist). -ESTALE on conflict, with cur (may be NULL) holding the current key
 * (create_revision 0 when it is absent). 0 also when the compare failed but the key holds
 * exactly value with a newer mod_revision: our own earlier attempt whose answer was lost (or an
 * identical concurrent write: the state the caller wanted either way). */
int etcd_cas(struct etcd *e, const char *key, int64_t mod_revision, const void *value, size_t len, int64_t lease,
             struct etcd_kv *cur, int64_t *revision);
/* The same three, with more operations in the same transaction, done only with the put (e.g. an
 * index entry derived from value: a repetition, or an identical write by another, did them too).
 * etcd_put_with is one transaction without compares (last writer wins, as etcd_put). */
struct etcd_op;
int etcd_put_with(struct etcd *e, const char *key, const void *value, size_t len, int64_t lease,
                  const struct etcd_op *also, size_t nalso, int64_t *revision);
int etcd_create_with(struct etcd *e, const char *key, const void *value, size_t len, int64_t lease,
                     const struct etcd_op *also, size_t nalso, struct etcd_kv *cur, int64_t *revision);
int etcd_cas_with(struct etcd *e, const char *key, int64_t mod_revision, const void *value, size_t len, int64_t lease,
                  const struct etcd_op *also, size_t nalso, struct etcd_kv *cur, int64_t *revision);
/* Delete if mod_revision still matches. 0 also when the key is already absent (a repetition);
 * -ESTALE with cur when it was changed meanwhile. */
int etcd_cas_delete(struct etcd *e, const char *key, int64_t mod_revision, struct etcd_kv *cur);

/* ---- general transactions (at most ETCD_MAX_TXN_OPS operations per branch) ---- */
enum etcd_cmp_target { ETCD_CMP_VERSION, ETCD_CMP_CREATE, ETCD_CMP_MOD, ETCD_CMP_VALUE, ETCD_CMP_LEASE };
enum etcd_cmp_result { ETCD_EQUAL, ETCD_NOT_EQUAL, ETCD_GREATER, ETCD_LESS };
struct etcd_cmp {
    const char *key;
    enum etcd_cmp_target target;
    enum etcd_cmp_result result;
    int64_t number;    /* version, create/mod revision or lease */
    const void *value; /* ETCD_CMP_VALUE */
    size_t value_len;
};
enum etcd_op_type { ETCD_OP_GET, ETCD_OP_PUT, ETCD_OP_DELETE };
struct etcd_op {
    enum etcd_op_type type;
    const char *key;
    bool prefix;       /* GET/DELETE: every key under key */
    const void *value; /* PUT */
    size_t value_len;
    int64_t lease; /* PUT */
};
struct etcd_txn_result {
    bool succeeded;
    int64_t revision;    /* the store revision after the txn */
    struct etcd_kvs kvs; /* the keys every GET of the branch taken returned, in order */
};
void etcd_txn_result_clear(struct etcd_txn_result *t);
/* One txn. It is sent again after a lost answer: callers make it safe to repeat (compares that
 * fail once it was applied, plus GETs in `failure` to see what is there). */
int etcd_txn(struct etcd *e, const struct etcd_cmp *cmp, size_t ncmp, const struct etcd_op *success, size_t nsuccess,
             const struct etcd_op *failure, size_t nfailure, struct etcd_txn_result *out);

/* ---- leases ---- */
/* A lease of ttl_s seconds (etcd may raise it to its minimum); *ttl_out may be NULL. */
int etcd_lease_grant(struct etcd *e, int64_t ttl_s, int64_t *id, int64_t *ttl_out);
/* One renewal; -ENOENT when the lease expired or never was. */
int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ttl_out);
/* 0 also when the lease is already gone. */
int etcd_lease_revoke(struct etcd *e, int64_t id);

/* ---- maintenance (tests, operator tools) ---- */
struct etcd_status {
    char member_id[24]; /* uint64 as decimal text */
    char leader[24];
    char version[32];
    int64_t revision;
    int64_t raft_term;
};
/* The status of one endpoint (index in the configured list), no retry on another. */
int etcd_status(struct etcd *e, size_t endpoint, struct etcd_status *out);
size_t etcd_endpoint_count(const struct etcd *e);
/* Compacts the history up to revision (what a watch then cannot resume from). */
int etcd_compact(struct etcd *e, int64_t revision);
/* POSTs a raw JSON body to /v3/<path> through the retry and auth logic and returns the answer's
 * body (malloc'd, NUL-terminated). For tests and setup (auth/user/add ...). */
int etcd_call_raw(struct etcd *e, const char *path, const char *json, char **out);

/* ---- watch ----
 * One watcher per HTTP connection (the gateway answers one create_request with an endless chunked
 * stream and does not read more requests from it). If the connection breaks, the watch is
 * opened again on the next endpoint from the revision after the last one delivered, so no event
 * is lost or repeated. If that revision was compacted, etcd_watch_next says -ESTALE: the caller
 * lists again (etcd_list) and opens a new watch from the listing's revision + 1. */
enum etcd_event_type { ETCD_EVENT_PUT, ETCD_EVENT_DELETE };
struct etcd_event {
    enum etcd_event_type type;
    struct etcd_kv kv;   /* a DELETE has only key and mod_revision */
    struct etcd_kv prev; /* with ETCD_WATCH_PREV_KV: the key before (create_revision 0: none) */
};
struct etcd_watch_batch {
    struct etcd_event *ev;
    size_t n;
    int64_t revision; /* header revision of the message */
};
void etcd_watch_batch_clear(struct etcd_watch_batch *b);

#define ETCD_WATCH_PREFIX 1u   /* every key under key */
#define ETCD_WATCH_PREV_KV 2u  /* events carry the previous value */
#define ETCD_WATCH_PROGRESS 4u /* ask for progress notifications */

struct etcd_watch;
/* Starts watching key (or the prefix) from start_revision (0 = from now). Fails like a call
 * (endpoints rotated within the deadline). *out owned by the caller (etcd_watch_free). */
int etcd_watch_open(struct etcd *e, const char *key, int64_t start_revision, unsigned flags, struct etcd_watch **out);
/* Waits up to timeout_ms for the next message with events (or a progress notification: n = 0).
 * 0 with a batch; -ETIME when nothing came (not logged); -ESTALE when the revision to resume
 * from was compacted (etcd_watch_compact_revision); -E2BIG when a message is over max_response
 * (a replay of many revisions: etcd packs up to 1000 in one message); after either, list again
 * and open a new watch from the listing's revision + 1. -EACCES when refused; another negative
 * errno when no endpoint could be reached in time (the next call tries again). */
int etcd_watch_next(struct etcd_watch *w, int timeout_ms, struct etcd_watch_batch *out);
/* The revision a resumed watch would start from (last delivered + 1). */
int64_t etcd_watch_next_revision(const struct etcd_watch *w);
/* After -ESTALE: the compaction revision etcd reported. */
int64_t etcd_watch_compact_revision(const struct etcd_watch *w);
/* Whether the watch has a stream open now (false while every endpoint refuses or is down). */
bool etcd_watch_connected(const struct etcd_watch *w);
/* Closes the connection and frees (NULL is fine). */
void etcd_watch_free(struct etcd_watch *w);

#endif
