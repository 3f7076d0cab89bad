/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The KMS's /tpm-attestation endpoint, wire-compatible with upstream G3 nodes (kairos-io/kairos
 * kcrypt/pkg/challenger/challenger.go handleTPMAttestation, kcrypt/pkg/attestation/server.go):
 *   init -> challenge (+ our nonce) -> proof -> response, every message a text frame.
 * Unlike upstream, every defect of the node's input (AK parameters go-attestation would crash
 * on, a quote signed with the wrong scheme, ...) is refused with an {"error":..} naming it, and
 * a quote over our nonce is required to carry exactly it (a quote without nonce is an upstream
 * node's, accepted unless --require-fresh-quotes). */
#include <stdio.h>
#include <string.h>

#include "attest.h"
#include "g3.h"
#include "g3_session.h"
#include "metrics.h"
#include "proto.h"

enum state { WAIT_INIT, WAIT_PROOF, DONE };

#define NONCE_LEN 32
#define PASSPHRASE_RANDOM 32 /* upstream's TOFU passphrase: base64 of 32 random bytes */

struct exchange {
    struct g3_server *srv;
    enum state state;
    struct g1_node node;
    char *ek_pem;
    bool defer;
    uint8_t *ak_public; /* TPMT_PUBLIC of the init's AK: the quote must be signed by it */
    size_t ak_public_len;
    uint8_t nonce[NONCE_LEN];
    /* A decision that waits for the store (an etcd write) runs on the loop's offload thread
     * (g1_offload_start) with what it needs kept here; the connection may close meanwhile. */
    struct g1_offload off;
    bool fresh;
    uint8_t pcr[PROTO_G3_PCR_COUNT][PROTO_G3_PCR_LEN];
    struct secret *pass;
    struct kms_attest_request rq;
    struct kms_reply reply;
};

static void exchange_free(struct exchange *x)
{
    if (!x)
        return;
    g1_node_clear(&x->node);
    free(x->ek_pem);
    free(x->ak_public);
    g1_offload_clear(&x->off);
    secret_free(x->pass);
    kms_reply_clear(&x->reply);
    free(x);
}

/* EK public keys seen lately, by their DER SubjectPublicKeyInfo (lib/proto/ek_cache.c): a
 * node's next exchanges skip the DER decoding, the re-encoding and hash for its TPM hash, and
 * the PEM writing (proto_g3_ek). Per process, which serves one connection at a time. */
static struct proto_ek_cache g3_ek_cache;

/* proto_g3_ek through the cache: the same results and errors. */
static int ek_lookup(const struct bytes *ek_public, struct rsa_pub *ek, char hash[2 * SHA256_LEN + 1], char **pem,
                     char *why)
{
    const struct proto_ek_cache_entry *e = proto_ek_cache_find(&g3_ek_cache, ek_public->data, ek_public->len);
    int r;

    if (e) {
        *ek = e->ek;
        memcpy(hash, e->hash, 2 * SHA256_LEN + 1);
        *pem = xstrdup(e->pem);
        return 0;
    }
    r = proto_g3_ek(ek_public, ek, hash, pem, why);
    if (r < 0)
        return r;
    proto_ek_cache_put(&g3_ek_cache, ek_public->data, ek_public->len, ek, hash, *pem);
    return 0;
}

/* Sends and frees a message that holds no secret (the response goes as a struct secret). */
static void send_text(struct net_conn *c, char *msg, size_t len)
{
    net_conn_send(c, NET_WS_TEXT, msg, len);
    free(msg);
}

/* Refuses: the audit line, {"error":text} in place of the next message, the close. */
static void refuse(struct exchange *x, struct net_conn *c, const char *text, bool audited)
{
    char *msg = NULL;
    size_t len = 0;

    if (!audited) {
        struct kms_request req = g1_node_request(&x->node, c);
        struct kms_audit_event e = {.action = "tpm-attestation", .req = &req, .outcome = KMS_REFUSED, .reason = text};
        kms_audit_log(x->srv->audit, &e);
    }
    log_info("/tpm-attestation %s from %s: refused: %s", x->node.hash[0] ? x->node.hash : "-", net_conn_peer(c), text);
    if (proto_g3_error_encode(text, &msg, &len) == 0)
        send_text(c, msg, len);
    x->state = DONE;
    net_conn_close(c, 1000, "");
}

static void on_open(struct net_conn *c, const struct net_request *req, void *data)
{
    struct g3_server *srv = data;
    struct exchange *x = xcalloc(1, sizeof(*x));

    x->srv = srv;
    g1_node_from_headers(&x->node, req);
    x->state = WAIT_INIT;
    net_conn_set_data(c, x);
    net_conn_set_deadline(c, now_ms() + srv->exchange_timeout_ms);
}

/* 1. init -> 2. challenge. */
static void on_init(struct exchange *x, struct net_conn *c, const uint8_t *msg, size_t len)
{
    struct proto_g3_init in = {0};
    struct proto_g3_challenge ch = {0};
    struct attest_credential cred;
    struct rsa_pub ek;
    uint8_t name[ATTEST_NAME_MAX];
    size_t name_len = 0, out_len = 0;
    char why[PROTO_G3_WHY_MAX + ATTEST_WHY_MAX] = "", text[sizeof(why) + 64], *out = NULL;
    int r;

    r = proto_g3_init_decode((const char *)msg, len, &in, why);
    if (r < 0) {
        snprintf(text, sizeof(text), "WebSocket read: reading attestation init: %s", why);
        refuse(x, c, text, false);
        goto out;
    }
    r = ek_lookup(&in.ek_public, &ek, x->node.hash, &x->ek_pem, why);
    if (r < 0) {
        snprintf(text, sizeof(text), "Challenge generation: generating challenge: parse EK SPKI: %s", why);
        refuse(x, c, text, false);
        goto out;
    }
    if (attest_check_ak_params(&in.ak, ATTEST_AK_ALLOW_ECC, name, &name_len, why) < 0) {
        snprintf(text, sizeof(text), "Challenge generation: generating challenge: %s", why);
        refuse(x, c, text, false);
        goto out;
    }
    if (crypto_random(x->node.expected, sizeof(x->node.expected)) < 0 ||
        crypto_random(x->nonce, sizeof(x->nonce)) < 0 ||
        attest_make_credential(&ek, name, name_len, x->node.expected, sizeof(x->node.expected), &cred) < 0) {
        refuse(x, c, "Challenge generation: generating challenge: cannot make a credential for this EK", false);
        goto out;
    }
    x->ak_public = xmalloc(in.ak.public_area.len);
    memcpy(x->ak_public, in.ak.public_area.data, in.ak.public_area.len);
    x->ak_public_len = in.ak.public_area.len;
    x->defer = in.defer_pcr_enrollment;
    ch.credential = (struct bytes){cred.id_object, cred.id_object_len};
    ch.encrypted_secret = (struct bytes){cred.encrypted_secret, cred.encrypted_secret_len};
    ch.nonce = (struct bytes){x->nonce, sizeof(x->nonce)};
    if (proto_g3_challenge_encode(&ch, &out, &out_len) < 0) {
        refuse(x, c, "Challenge send: cannot encode the challenge", false);
        goto out;
    }
    send_text(c, out, out_len);
    x->state = WAIT_PROOF;
out:
    proto_g3_init_clear(&in);
}

/* A new passphrase for a Secret the KMS creates: the node's escrow (its TPM ciphertext, in the
 * text a G1 node posts) or, for an upstream node, base64 of 32 random bytes as upstream. */
static int new_passphrase(const struct proto_g3_proof *pf, struct secret **out, const char **generated_by)
{
    uint8_t raw[PASSPHRASE_RANDOM];

    if (pf->escrow.len) {
        *out = base64_encode_secret(pf->escrow.data, pf->escrow.len, BASE64_URL_RAW);
        *generated_by = "tpm";
    } else {
        if (crypto_random(raw, sizeof(raw)) < 0)
            return -EIO;
        *out = base64_encode_secret(raw, sizeof(raw), BASE64_STD);
        secure_wipe(raw, sizeof(raw));
        *generated_by = "";
    }
    return 0;
}

/* 4. the response for the decision in x->reply (the audit line is written). */
static void answer(struct exchange *x, struct net_conn *c)
{
    struct kms_reply *reply = &x->reply;

    if (reply->outcome != KMS_OK) {
        char text[sizeof(reply->error) + 64];
        g3_words(reply, text, sizeof(text));
        refuse(x, c, text, true);
    } else {
        struct proto_g3_response resp = {.passphrase = reply->passphrase, .generated_by = reply->generated_by};
        _cleanup_secret_ struct secret *out = NULL;
        log_info("/tpm-attestation %s from %s: served %s%s", x->node.hash, net_conn_peer(c),
                 reply->secret_name ? reply->secret_name : "", x->fresh ? "" : " (quote not fresh: no nonce)");
        if (proto_g3_response_encode(&resp, &out) == 0)
            net_conn_send(c, NET_WS_TEXT, out->data, out->len);
        x->state = DONE;
        net_conn_close(c, 1000, "");
    }
    secret_free(x->pass);
    x->pass = NULL;
    kms_reply_clear(&x->reply);
}

static void decide_work(void *data)
{
    struct exchange *x = data;
    kms_attest(x->srv->store, &x->rq, &x->reply);
}

/* The decision was not taken (status < 0: busy, or shutting down): the node is told so. */
static void refuse_untaken(struct exchange *x, struct net_conn *c, int status)
{
    char text[96];
    snprintf(text, sizeof(text), "Attestation verification failed: %s", g1_offload_why(status));
    refuse(x, c, text, false);
}

static void decide_done(void *data, int status)
{
    struct exchange *x = data;

    if (!g1_offload_end(&x->off))
        exchange_free(x);
    else if (status < 0)
        refuse_untaken(x, x->off.conn, status);
    else
        answer(x, x->off.conn);
}

/* 3. proof -> 4. response. */
static void on_proof(struct exchange *x, struct net_conn *c, const uint8_t *msg, size_t len)
{
    struct proto_g3_proof pf = {0};
    struct attest_pcr_value pcrs[PROTO_G3_PCR_COUNT];
    struct attest_attestation qa;
    struct bytes nonce = {x->nonce, sizeof(x->nonce)};
    const char *generated_by = "";
    char why[PROTO_G3_WHY_MAX + ATTEST_WHY_MAX] = "", text[sizeof(why) + 128];
    bool fresh;
    size_t n = 0;
    int r;

    r = proto_g3_proof_decode((const char *)msg, len, &pf, why);
    if (r < 0) {
        snprintf(text, sizeof(text), "Proof read: reading proof: %s", why);
        refuse(x, c, text, false);
        goto out;
    }
    /* The credential's secret, compared in constant time: only the TPM holding the EK could
     * open it, and it is new for this connection. */
    if (pf.secret->len != sizeof(x->node.expected) ||
        !secure_equal(pf.secret->data, x->node.expected, sizeof(x->node.expected))) {
        refuse(x, c, "Attestation verification failed: invalid secret", false);
        goto out;
    }
    for (unsigned i = 0; i < PROTO_G3_PCR_COUNT; i++)
        if (pf.pcr_mask & (1u << i))
            pcrs[n++] = (struct attest_pcr_value){i, {pf.pcr[i], PROTO_G3_PCR_LEN}};
    /* Freshness: our node quotes over the nonce; an upstream node sends an empty extraData. Any
     * other extraData is a quote made for another exchange. */
    fresh = attest_decode_attestation(pf.quote.data, pf.quote.len, &qa) < 0 || qa.extra_data.len != 0;
    if (!fresh && x->srv->require_fresh_quotes) {
        refuse(x, c,
               "Attestation verification failed: quote not fresh (no nonce): this KMS requires quotes over its "
               "nonce (--require-fresh-quotes)",
               false);
        goto out;
    }
    if (attest_verify_quote((struct bytes){x->ak_public, x->ak_public_len}, pf.quote, pf.signature, pcrs, n,
                            fresh ? &nonce : NULL, why) < 0) {
        snprintf(text, sizeof(text), "Attestation verification failed: PCR quote verification failed: %s", why);
        refuse(x, c, text, false);
        goto out;
    }
    if (new_passphrase(&pf, &x->pass, &generated_by) < 0) {
        refuse(x, c, "Attestation verification failed: cannot generate a passphrase", false);
        goto out;
    }
    x->fresh = fresh;
    memcpy(x->pcr, pf.pcr, sizeof(x->pcr));
    x->rq = (struct kms_attest_request){
        .req = g1_node_request(&x->node, c),
        .ek_pem = x->ek_pem,
        .pcr_mask = pf.pcr_mask,
        .pcr = (const uint8_t(*)[32])x->pcr,
        .defer_pcr_enrollment = x->defer,
        .tofu = x->srv->enroll == G3_ENROLL_TOFU,
        .passphrase = x->pass,
        .generated_by = generated_by,
        .audit_note = fresh ? "quote over our nonce" : "quote not fresh (no nonce)",
    };
    /* Decided on the loop when the store's memory is enough (every unlock of an enrolled
     * node); a decision that must ask etcd goes to the offload thread. */
    x->rq.req.memory_only = true;
    if (kms_attest(x->srv->store, &x->rq, &x->reply) != -EINPROGRESS)
        answer(x, c);
    else if ((r = g1_offload_start(&x->off, c, "/tpm-attestation", &x->rq.req, x->srv->exchange_timeout_ms, decide_work,
                                   decide_done, x)) < 0)
        refuse_untaken(x, c, r);
out:
    proto_g3_proof_clear(&pf);
}

static void on_message(struct net_conn *c, enum net_ws_type type, const uint8_t *msg, size_t len, void *data)
{
    struct exchange *x = net_conn_data(c);
    (void)data;

    if (!x || x->state == DONE || x->off.busy)
        return;
    if (type != NET_WS_TEXT) {
        refuse(x, c,
               x->state == WAIT_INIT
                   ? "WebSocket read: reading attestation init: a binary frame (G3 messages are text frames)"
                   : "Proof read: reading proof: a binary frame (G3 messages are text frames)",
               false);
        return;
    }
    if (x->state == WAIT_INIT)
        on_init(x, c, msg, len);
    else
        on_proof(x, c, msg, len);
}

static void on_close(struct net_conn *c, enum net_close_reason why, void *data)
{
    struct exchange *x = net_conn_data(c);
    (void)data;

    if (x)
        kms_metrics_observe(x->srv->metrics, "/tpm-attestation", net_conn_busy_seconds(c));
    if (x && g1_offload_orphan(&x->off)) {
        /* decide_done frees x once the store answered (the decision is audited there) */
        log_info("/tpm-attestation %s from %s: closed while the store was asked", x->node.hash, net_conn_peer(c));
        net_conn_set_data(c, NULL);
        return;
    }
    if (x && x->state != DONE && why == NET_CLOSE_TIMEOUT) {
        struct kms_request req = g1_node_request(&x->node, c);
        struct kms_audit_event e = {.action = "tpm-attestation",
                                    .req = &req,
                                    .outcome = KMS_REFUSED,
                                    .reason = "the node stalled; exchange timed out"};
        kms_audit_log(x->srv->audit, &e);
        log_info("/tpm-attestation from %s: the node stalled; dropped", net_conn_peer(c));
    }
    exchange_free(x);
    net_conn_set_data(c, NULL);
}

void g3_server_handler(struct g3_server *srv, struct net_handler *h)
{
    *h = (struct net_handler){.on_open = on_open, .on_message = on_message, .on_close = on_close, .data = srv};
}
