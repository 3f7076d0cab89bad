/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The KMS's G1 endpoints, wire-compatible with upstream nodes (kairos-io/kcrypt-challenger
 * pkg/challenger/challenger.go):
 *   upgrade (token checked) -> challenge {"EC":..} -> answer {"Secret":..} -> payload or store.
 * The node proves it holds the EK private key by activating a credential made for it; the
 * activation secret is fresh per connection, so an answer replayed from another exchange fails. */
#include <stdio.h>
#include <string.h>

#include "attest.h"
#include "g1.h"
#include "metrics.h"
#include "proto.h"

enum exchange_state { WAIT_ANSWER, WAIT_POSTED, DONE };

struct exchange {
    struct g1_server *srv;
    bool post; /* /postPass */
    enum exchange_state state;
    struct g1_node node;
    /* what is kept while the store is asked from the offload thread (/postPass: the payload) */
    struct proto_payload posted;
    struct kms_request req;
    struct kms_reply reply;
    struct g1_offload off;
};

static void exchange_free(struct exchange *x)
{
    if (!x)
        return;
    g1_node_clear(&x->node);
    proto_payload_clear(&x->posted);
    kms_reply_clear(&x->reply);
    g1_offload_clear(&x->off);
    free(x);
}

/* Sends {"passphrase":..,"error":..,"generated_by":..}\n as a binary frame, as upstream does. */
static void send_payload(struct net_conn *c, const struct secret *pass, const char *error, const char *generated_by)
{
    struct proto_payload p = {
        .passphrase = (struct secret *)pass, .error = (char *)error, .generated_by = (char *)generated_by};
    _cleanup_secret_ struct secret *msg = NULL;

    if (proto_payload_encode(&p, &msg) == 0)
        net_conn_send(c, NET_WS_BINARY, msg->data, msg->len);
}

/* Refuses an exchange: the audit line, the error payload, and the close. */
static void refuse(struct exchange *x, struct net_conn *c, const char *error)
{
    struct kms_request req = g1_node_request(&x->node, c);
    struct kms_audit_event e = {
        .action = x->post ? "postPass" : "getPass", .req = &req, .outcome = KMS_REFUSED, .reason = error};
    kms_audit_log(x->srv->audit, &e);
    log_info("%s %s from %s: refused: %s", x->post ? "/postPass" : "/getPass", x->node.hash[0] ? x->node.hash : "-",
             net_conn_peer(c), error);
    send_payload(c, NULL, error, "");
    x->state = DONE;
    net_conn_close(c, 1000, "");
}

/* --ek-ca: the token's EK must be a certificate issued by a trusted CA (a TPM vendor). The EK
 * the credential is made for is that certificate's key, so only the TPM holding it can answer.
 * Unlike upstream, which accepts any EK. */
static bool ek_cert_trusted(const struct g1_server *srv, const char *ek_pem, char *error, size_t error_len)
{
    _cleanup_free_ uint8_t *der = NULL;
    char why[256];
    size_t len = 0;
    int r = proto_ek_pem_cert(ek_pem, &der, &len);

    if (r == -ENOENT) {
        snprintf(error, error_len, "EK certificate required: the TPM sent its EK without a certificate");
        return false;
    }
    if (r < 0) {
        snprintf(error, error_len, "EK certificate required: the token's EK is not a PEM certificate");
        return false;
    }
    r = crypto_x509_chain_verify(der, len, srv->ek_ca, why, sizeof(why));
    if (r < 0) {
        snprintf(error, error_len, "EK certificate not trusted: %s", why);
        return false;
    }
    return true;
}

/* EK public keys parsed lately, by their PEM text (lib/proto/ek_cache.c): a node's connections
 * of one flow (getPass, postPass, getPass) and its next boots skip the PEM decoding, the SPKI
 * encoding and its hash. Per process, which serves one connection at a time. */
static struct proto_ek_cache ek_cache;

/* The EK of pem and its TPM hash (hex), from the cache or parsed and cached; 0, or what
 * proto_ek_pem_public returned, or -EINVAL when the key has no SPKI encoding. */
static int ek_lookup(const char *pem, struct rsa_pub *ek, char hash[2 * SHA256_LEN + 1])
{
    uint8_t digest[SHA256_LEN], *spki = NULL;
    size_t spki_len = 0, pem_len = strlen(pem);
    const struct proto_ek_cache_entry *e = proto_ek_cache_find(&ek_cache, pem, pem_len);
    int r;

    if (e) {
        *ek = e->ek;
        memcpy(hash, e->hash, 2 * SHA256_LEN + 1);
        return 0;
    }
    r = proto_ek_pem_public(pem, ek);
    if (r < 0)
        return r;
    if (crypto_rsa_spki_der(ek, &spki, &spki_len) < 0)
        return -EINVAL;
    crypto_sha256(spki, spki_len, digest);
    free(spki);
    hex_encode(digest, sizeof(digest), hash);
    proto_ek_cache_put(&ek_cache, pem, pem_len, ek, hash, NULL);
    return 0;
}

/* The upgrade: decode the token, check the AK, compute the TPM hash, send the challenge. */
static void on_open(struct net_conn *c, const struct net_request *req, void *data, bool post)
{
    struct g1_server *srv = data;
    struct exchange *x = xcalloc(1, sizeof(*x));
    const char *auth = net_request_header(req, "Authorization");
    struct proto_token tok = {0};
    struct attest_credential cred;
    struct rsa_pub ek;
    uint8_t name[ATTEST_NAME_MAX];
    size_t name_len = 0;
    char why[ATTEST_WHY_MAX] = "", *msg = NULL;
    size_t msg_len;
    int r;

    x->srv = srv;
    x->post = post;
    g1_node_from_headers(&x->node, req);
    net_conn_set_data(c, x);
    net_conn_set_deadline(c, now_ms() + srv->exchange_timeout_ms);

    if (!auth || proto_token_decode(auth, strlen(auth), &tok) < 0) {
        refuse(x, c, auth ? "invalid token: not a TPM attestation token" : "missing Authorization header");
        return;
    }
    r = ek_lookup(tok.ek_pem, &ek, x->node.hash);
    if (r < 0) {
        refuse(x, c,
               r == -EPROTONOSUPPORT ? "invalid token: EK is not an RSA key"
               : r == -EINVAL        ? "invalid token: EK public key"
                                     : "invalid pem type");
        goto out;
    }
    if (srv->ek_ca) {
        char error[ATTEST_WHY_MAX + 64];
        if (!ek_cert_trusted(srv, tok.ek_pem, error, sizeof(error))) {
            refuse(x, c, error);
            goto out;
        }
    }
    if (attest_check_ak_params(&tok.ak, 0, name, &name_len, why) < 0) {
        char error[ATTEST_WHY_MAX + 32];
        snprintf(error, sizeof(error), "invalid AK parameters: %s", why);
        refuse(x, c, error);
        goto out;
    }
    if (crypto_random(x->node.expected, sizeof(x->node.expected)) < 0 ||
        attest_make_credential(&ek, name, name_len, x->node.expected, sizeof(x->node.expected), &cred) < 0) {
        refuse(x, c, "cannot make a credential for this EK");
        goto out;
    }
    {
        struct bytes cb = {cred.id_object, cred.id_object_len};
        struct bytes sb = {cred.encrypted_secret, cred.encrypted_secret_len};
        if (proto_challenge_encode(&cb, &sb, &msg, &msg_len) == 0)
            net_conn_send(c, NET_WS_BINARY, msg, msg_len);
        free(msg);
    }
    x->state = WAIT_ANSWER;
out:
    proto_token_clear(&tok);
}

static void on_open_get(struct net_conn *c, const struct net_request *req, void *data) { on_open(c, req, data, false); }

static void on_open_post(struct net_conn *c, const struct net_request *req, void *data) { on_open(c, req, data, true); }

static void get_answer(struct exchange *x, struct net_conn *c)
{
    if (x->reply.outcome == KMS_OK) {
        log_info("/getPass %s from %s: served %s", x->node.hash, net_conn_peer(c),
                 x->reply.secret_name ? x->reply.secret_name : "");
        send_payload(c, x->reply.passphrase, "", x->reply.generated_by ? x->reply.generated_by : "");
    } else {
        char text[sizeof(x->reply.error)];
        g1_words(false, &x->reply, text, sizeof(text));
        log_info("/getPass %s from %s: refused: %s", x->node.hash, net_conn_peer(c), text);
        send_payload(c, NULL, text, "");
    }
    kms_reply_clear(&x->reply);
    x->state = DONE;
    net_conn_close(c, 1000, "");
}

/* The node's acknowledgement: an empty error means stored (upstream nodes do not read it). */
static void post_answer(struct exchange *x, struct net_conn *c)
{
    char text[sizeof(x->reply.error)] = "";

    if (x->reply.outcome == KMS_OK)
        log_info("/postPass %s from %s: stored %s", x->node.hash, net_conn_peer(c),
                 x->reply.secret_name ? x->reply.secret_name : "");
    else {
        g1_words(true, &x->reply, text, sizeof(text));
        log_info("/postPass %s from %s: refused: %s", x->node.hash, net_conn_peer(c), text);
    }
    send_payload(c, NULL, text, "");
    kms_reply_clear(&x->reply);
    proto_payload_clear(&x->posted);
    x->state = DONE;
    net_conn_close(c, 1000, "");
}

/* The decision, from the store's memory when that is enough (req.memory_only), else from the
 * offload thread (an etcd store: a Secret to look up or to store). */
static int decide(struct exchange *x)
{
    if (x->post)
        return kms_post_pass(x->srv->store, &x->req, x->posted.passphrase, x->posted.generated_by, &x->reply);
    return kms_get_pass(x->srv->store, &x->req, &x->reply);
}

static void answer(struct exchange *x, struct net_conn *c)
{
    if (x->post)
        post_answer(x, c);
    else
        get_answer(x, c);
}

static void decide_work(void *data) { decide(data); }

static void decide_done(void *data, int status)
{
    struct exchange *x = data;

    if (!g1_offload_end(&x->off))
        exchange_free(x);
    else if (status < 0)
        refuse(x, x->off.conn, g1_offload_why(status));
    else
        answer(x, x->off.conn);
}

static void serve(struct exchange *x, struct net_conn *c)
{
    int r;

    x->req = g1_node_request(&x->node, c);
    x->req.memory_only = true;
    if (decide(x) != -EINPROGRESS)
        answer(x, c);
    else if ((r = g1_offload_start(&x->off, c, x->post ? "/postPass" : "/getPass", &x->req, x->srv->exchange_timeout_ms,
                                   decide_work, decide_done, x)) < 0)
        refuse(x, c, g1_offload_why(r));
}

/* /postPass: after the answer, the node sends the payload; we store it and, unlike upstream,
 * acknowledge once it is durable. */
static void serve_post(struct exchange *x, struct net_conn *c, const uint8_t *msg, size_t len)
{
    if (proto_payload_decode((const char *)msg, len, &x->posted) < 0 || !x->posted.passphrase ||
        x->posted.passphrase->len == 0) {
        proto_payload_clear(&x->posted);
        refuse(x, c, "invalid answer from client: doesn't contain any passphrase");
        return;
    }
    serve(x, c);
}

static void on_message(struct net_conn *c, enum net_ws_type type, const uint8_t *msg, size_t len, void *data)
{
    struct exchange *x = net_conn_data(c);
    struct secret *answer = NULL;
    (void)type; /* text and binary alike, as gorilla's readers (gorilla/websocket ReadJSON) */
    (void)data;

    if (!x || x->state == DONE || x->off.busy)
        return;
    if (x->state == WAIT_POSTED) {
        serve_post(x, c, msg, len);
        return;
    }
    if (proto_answer_decode((const char *)msg, len, &answer) < 0) {
        refuse(x, c, "invalid challenge response");
        return;
    }
    if (answer->len != sizeof(x->node.expected) ||
        !secure_equal(answer->data, x->node.expected, sizeof(x->node.expected))) {
        secret_free(answer);
        refuse(x, c, "invalid challenge response");
        return;
    }
    secret_free(answer);
    if (x->post)
        x->state = WAIT_POSTED;
    else
        serve(x, c);
}

static void on_close(struct net_conn *c, enum net_close_reason why, void *data)
{
    struct exchange *x = net_conn_data(c);
    (void)data;

    if (x)
        kms_metrics_observe(x->srv->metrics, x->post ? "/postPass" : "/getPass", net_conn_busy_seconds(c));
    if (x && g1_offload_orphan(&x->off)) {
        /* the done call frees x once the store answered (the decision is audited there) */
        log_info("%s %s from %s: closed while the store was asked", x->post ? "/postPass" : "/getPass", x->node.hash,
                 net_conn_peer(c));
        net_conn_set_data(c, NULL);
        return;
    }
    if (x && x->state != DONE && why == NET_CLOSE_TIMEOUT) {
        struct kms_request req = g1_node_request(&x->node, c);
        struct kms_audit_event e = {.action = x->post ? "postPass" : "getPass",
                                    .req = &req,
                                    .outcome = KMS_REFUSED,
                                    .reason = "the node stalled; exchange timed out"};
        kms_audit_log(x->srv->audit, &e);
        log_info("%s from %s: the node stalled; dropped", x->post ? "/postPass" : "/getPass", net_conn_peer(c));
    }
    exchange_free(x);
    net_conn_set_data(c, NULL);
}

void g1_server_handlers(struct g1_server *srv, struct net_handler *get, struct net_handler *post)
{
    *get = (struct net_handler){.on_open = on_open_get, .on_message = on_message, .on_close = on_close, .data = srv};
    *post = (struct net_handler){.on_open = on_open_post, .on_message = on_message, .on_close = on_close, .data = srv};
}
