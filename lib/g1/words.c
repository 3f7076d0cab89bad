/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/kms's decisions in G1's words: upstream's exact error strings (kairos-io/kcrypt-challenger
 * pkg/challenger/challenger.go, getPass and postPass handlers) where upstream has one; a node
 * acts on "No secret found for" (cmd/discovery/client/client.go waitPass). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "g1.h"
#include "proto.h"

#define NO_SECRET_PREFIX "No secret found for "

void g1_words(bool post, const struct kms_reply *r, char *buf, size_t len)
{
    const struct kms_detail *d = &r->detail;

    switch (r->code) {
    case KMS_C_NO_VOLUME:
        if (post)
            snprintf(buf, len, "no TPM Hash found for %s", d->hash);
        else
            snprintf(buf, len, "no volume found with data from request and hash: %s", d->hash);
        return;
    case KMS_C_NO_SECRET: snprintf(buf, len, NO_SECRET_PREFIX "%s and %s", d->hash, d->label); return;
    case KMS_C_NO_KEY: snprintf(buf, len, "passphrase not found in secret at key: %s", d->key); return;
    case KMS_C_QUARANTINED: snprintf(buf, len, "quarantined: %s", d->label); return;
    case KMS_C_CONFLICT:
        snprintf(buf, len, "%s %s is defined more than once on the server",
                 d->object_is_secret ? "Secret" : "SealedVolume", d->object);
        return;
    case KMS_C_EXISTS:
        snprintf(buf, len, "secret %s already exists; the posted passphrase was ignored", d->object);
        return;
    default: snprintf(buf, len, "%s", r->error[0] ? r->error : kms_code_name(r->code)); return;
    }
}

enum g1_error_kind g1_error_kind(const char *text)
{
    /* Upstream's text starts the message; nothing else a KMS sends does. */
    if (text && !strncmp(text, NO_SECRET_PREFIX, strlen(NO_SECRET_PREFIX)))
        return G1_ERR_NO_SECRET;
    return G1_ERR_OTHER;
}

static char *header_copy(const struct net_request *req, const char *name)
{
    const char *v = net_request_header(req, name);
    return xstrdup(v ? v : "");
}

void g1_node_from_headers(struct g1_node *n, const struct net_request *req)
{
    n->label = header_copy(req, PROTO_HDR_LABEL);
    n->name = header_copy(req, PROTO_HDR_NAME);
    n->uuid = header_copy(req, PROTO_HDR_UUID);
}

void g1_node_clear(struct g1_node *n)
{
    secure_wipe(n->expected, sizeof(n->expected));
    free(n->label);
    free(n->name);
    free(n->uuid);
    *n = (struct g1_node){0};
}

struct kms_request g1_node_request(const struct g1_node *n, struct net_conn *c)
{
    return (struct kms_request){.tpm_hash = n->hash[0] ? n->hash : NULL,
                                .label = n->label,
                                .name = n->name,
                                .uuid = n->uuid,
                                .peer = net_conn_peer(c)};
}

int g1_offload_start(struct g1_offload *o, struct net_conn *c, const char *endpoint, struct kms_request *req,
                     int64_t start_wait_ms, net_work_fn work, net_done_fn done, void *data)
{
    int r;

    free(o->peer);
    o->peer = xstrdup(net_conn_peer(c));
    req->peer = o->peer;
    req->memory_only = false;
    o->conn = c;
    o->busy = true;
    r = net_loop_offload(net_conn_loop(c), work, done, data, now_ms() + start_wait_ms);
    if (r < 0) {
        o->busy = false;
        return r;
    }
    net_conn_hold(c, true); /* the wait is the store's, not the node's */
    log_info("%s %s from %s: waiting for the store (etcd)", endpoint, req->tpm_hash ? req->tpm_hash : "-", o->peer);
    return 0;
}

const char *g1_offload_why(int status)
{
    return status == -ECANCELED ? "the KMS is shutting down" : "the KMS is busy; try again";
}

bool g1_offload_end(struct g1_offload *o)
{
    o->busy = false;
    if (o->orphan)
        return false;
    net_conn_hold(o->conn, false);
    return true;
}

bool g1_offload_orphan(struct g1_offload *o)
{
    if (o->busy)
        o->orphan = true;
    return o->busy;
}

void g1_offload_clear(struct g1_offload *o)
{
    free(o->peer);
    *o = (struct g1_offload){0};
}
