/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The node side of the G1 protocol (kairos-io/kcrypt-challenger cmd/discovery/client/client.go,
 * enc.go): token, challenge, activation, payload; auto-generated keys escrowed as TPM ciphertext. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "g1.h"
#include "net.h"
#include "proto.h"
#include "tpm.h"

/* The reply of one exchange: a payload, or a refusal text from the KMS. */
struct g1_reply {
    struct proto_payload payload;
    bool acked; /* /postPass: our KMS acknowledged (upstream ones just close) */
};

bool g1_is_final(int r) { return r == KTLS_ERR_CERT || r == -EACCES || r == -ENOENT || r == -EREMOTEIO; }

/* One exchange with the KMS on path: token, challenge, activation, then (post) our payload or the
 * KMS's payload. */
static int exchange(struct g1_session *c, const char *path, const struct proto_payload *post, struct g1_reply *out)
{
    _cleanup_tpm_ak_ struct tpm_ak *ak = NULL;
    _cleanup_free_ char *token = NULL, *url = NULL;
    _cleanup_secret_ struct secret *activated = NULL;
    struct net_ws_client *ws = NULL;
    const struct ak_params *p;
    struct bytes cred = {0}, sec = {0};
    uint8_t *msg = NULL;
    size_t len = 0;
    enum net_ws_type type;
    int r;

    *out = (struct g1_reply){0};
    r = tpm_ak_create(c->tpm, TPM_AK_G1, &ak);
    if (r < 0)
        return r;
    p = tpm_ak_params(ak);
    r = proto_token_encode(c->ek_pem, p, &token);
    if (r < 0)
        return r;
    const struct net_header headers[] = {
        {"Authorization", token},
        {PROTO_HDR_LABEL, c->rq->label ? c->rq->label : ""},
        {PROTO_HDR_NAME, c->rq->name ? c->rq->name : ""},
        {PROTO_HDR_UUID, c->rq->uuid ? c->rq->uuid : ""},
    };
    struct net_client_opts o = {.tls = c->tls,
                                .host_header = c->host_header,
                                .headers = headers,
                                .n_headers = 4,
                                .deadline_ms = c->deadline,
                                .max_message = PROTO_MAX_MESSAGE};
    url = net_url_join(c->server, path);
    r = net_ws_dial(url, &o, &ws);
    if (r < 0)
        return r;
    r = net_ws_recv(ws, &type, &msg, &len);
    if (r < 0)
        goto out;
    if (proto_challenge_decode((const char *)msg, len, &cred, &sec) < 0) {
        /* A KMS that refuses before the challenge sends its error payload instead. */
        if (proto_payload_decode((const char *)msg, len, &out->payload) == 0 && out->payload.error[0]) {
            r = 0;
            goto out;
        }
        r = log_error_errno(-EPROTO, "%s: the KMS sent something that is not a challenge", url);
        goto out;
    }
    r = tpm_activate_credential(c->tpm, ak, cred.data, cred.len, sec.data, sec.len, &activated);
    if (r < 0)
        goto out;
    free(msg);
    msg = NULL;
    {
        _cleanup_secret_ struct secret *answer = NULL;
        r = proto_answer_encode(activated, &answer);
        if (r == 0)
            r = net_ws_send(ws, NET_WS_BINARY, answer->data, answer->len);
    }
    if (r < 0)
        goto out;
    if (post) {
        _cleanup_secret_ struct secret *text = NULL;
        r = proto_payload_encode(post, &text);
        if (r == 0)
            r = net_ws_send(ws, NET_WS_TEXT, text->data, text->len);
        if (r < 0)
            goto out;
    }
    r = net_ws_recv(ws, &type, &msg, &len);
    if (post && r == -ECONNRESET) { /* an upstream KMS stores without answering */
        r = 0;
        goto out;
    }
    if (r < 0)
        goto out;
    if (proto_payload_decode((const char *)msg, len, &out->payload) < 0) {
        r = log_error_errno(-EPROTO, "%s: the KMS's answer is not a passphrase payload", url);
        goto out;
    }
    out->acked = post != NULL;
out:
    if (msg)
        secure_wipe(msg, len);
    free(msg);
    bytes_clear(&cred);
    bytes_clear(&sec);
    net_ws_free(ws);
    return r;
}

int g1_escrow_generate(struct tpm *tpm, uint32_t c_index, struct secret **wire_out)
{
    _cleanup_secret_ struct secret *plain = NULL;
    _cleanup_free_ uint8_t *blob = NULL;
    size_t blob_len = 0, wire_len = 0;
    char *wire;
    int r;

    r = tpm_rsa_key_ensure(tpm, c_index);
    if (r == 0)
        r = tpm_random_passphrase(TPM_PASSPHRASE_LEN, &plain);
    if (r == 0)
        r = tpm_rsa_encrypt(tpm, c_index, plain, &blob, &blob_len);
    if (r < 0)
        return r;
    wire = base64_encode(blob, blob_len, BASE64_URL_RAW, &wire_len);
    *wire_out = secret_new_copy(wire, wire_len);
    free(wire);
    return 0;
}

/* Auto-generated keys: a passphrase made here, encrypted by this TPM's key, escrowed. */
static int generate_and_post(struct g1_session *c)
{
    struct proto_payload post = {.error = "", .generated_by = "tpm"};
    struct g1_reply reply;
    int r;

    r = g1_escrow_generate(c->tpm, c->rq->c_index, &post.passphrase);
    if (r < 0)
        return r;
    r = exchange(c, "/postPass", &post, &reply);
    secret_free(post.passphrase);
    if (r == 0 && reply.acked && reply.payload.error && reply.payload.error[0] &&
        strstr(reply.payload.error, "already exists")) {
        /* Another post for this partition won (two KMS instances, or two boots at once): the
         * stored Secret is this TPM's ciphertext too; the next /getPass returns it, as
         * upstream's waitPass loop would. */
        log_info("%s: a passphrase was stored for this partition meanwhile; asking for it", c->rq->server);
    } else if (r == 0 && reply.acked && reply.payload.error && reply.payload.error[0]) {
        log_error("%s: the KMS did not store the generated passphrase: %s", c->rq->server, reply.payload.error);
        r = -EREMOTEIO;
    }
    proto_payload_clear(&reply.payload);
    return r;
}

/* A "tpm"-generated answer is our own ciphertext: base64url without padding (upstream generatePass). */
int g1_escrow_decrypt(struct tpm *tpm, uint32_t c_index, const char *server, const struct secret *wire,
                      struct secret **out)
{
    _cleanup_free_ uint8_t *blob = NULL;
    size_t len = 0;

    if (base64_decode((const char *)wire->data, wire->len, BASE64_URL_RAW, &blob, &len) < 0)
        return log_error_errno(-EBADMSG, "%s: the stored TPM ciphertext is not base64url", server);
    return tpm_rsa_decrypt(tpm, c_index, blob, len, out);
}

void g1_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int g1_load_certificate(const char *cert, struct ktls_client **out)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;

    if (!cert || !cert[0])
        return ktls_client_new(NULL, 0, true, out);
    if (strstr(cert, "-----BEGIN"))
        return ktls_client_new(cert, strlen(cert), true, out);
    if (file_read_all(cert, 1 << 20, &text, &len) < 0)
        return log_error_errno(-ENOENT, "--certificate %s: neither PEM text nor a readable file", cert);
    return ktls_client_new(text, len, true, out);
}

int g1_attempt(struct g1_session *c, int *posted, struct secret **out)
{
    const struct g1_request *rq = c->rq;
    int r = 0;

    if (!c->ek_pem)
        r = tpm_ek_public_pem(c->tpm, &c->ek_pem, &(bool){false}, NULL);
    for (int round = 0; r == 0 && round < 3; round++) {
        struct g1_reply reply;

        r = exchange(c, "/getPass", NULL, &reply);
        if (r < 0)
            return r;
        if (reply.payload.passphrase && reply.payload.passphrase->len) {
            if (!strcmp(reply.payload.generated_by, "tpm"))
                r = g1_escrow_decrypt(c->tpm, rq->c_index, c->server, reply.payload.passphrase, out);
            else {
                *out = TAKE_PTR(reply.payload.passphrase);
            }
            proto_payload_clear(&reply.payload);
            return r;
        }
        if (reply.payload.error[0] && g1_error_kind(reply.payload.error) != G1_ERR_NO_SECRET) {
            log_error("%s: the KMS refused: %s", rq->server, reply.payload.error);
            proto_payload_clear(&reply.payload);
            return -EREMOTEIO;
        }
        /* no Secret yet: auto-generated keys */
        proto_payload_clear(&reply.payload);
        /* Upstream posts and asks again forever (its waitPass loop); once is enough to know. */
        if ((*posted)++)
            return log_error_errno(-EREMOTEIO, "%s: the KMS still has no passphrase for %s after we sent one",
                                   rq->server, rq->label ? rq->label : "this partition");
        r = generate_and_post(c);
        if (r < 0)
            *posted = 0; /* not stored: generate again next time */
    }
    return r;
}
