/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The node side of /tpm-attestation (kairos-io/kairos kcrypt/discovery/client/client.go
 * performTPMAttestation, kcrypt/pkg/attestation/client.go) and the node's flow over both
 * generations: G3 first, G1 (lib/g1) when the KMS answers 404 on /tpm-attestation. One
 * transient AK serves every G3 attempt of the process, as upstream's AKManager. With our KMS
 * the quote carries its nonce, and a passphrase generated here travels only as TPM ciphertext
 * (the proof's encrypted_passphrase), so the KMS never holds it in clear. */
#include <stdio.h>
#include <string.h>

#include "g3.h"
#include "g3_session.h"
#include "mdns.h"
#include "proto.h"
#include "tpm.h"

#define DEFAULT_PCRS ((1u << 0) | (1u << 7) | (1u << 11))

struct node {
    const struct g3_request *rq;
    struct g1_session s; /* TPM, TLS, server: shared with the G1 attempts */
    struct tpm_ak *ak;   /* the transient AK, made at the first G3 attempt */
    uint8_t *ek_spki;    /* DER SubjectPublicKeyInfo of the EK */
    size_t ek_spki_len;
};

static void pb(struct bytes *to, const struct bytes *from) { *to = (struct bytes){from->data, from->len}; }

/* The escrow: a passphrase generated here, encrypted to the TPM key at c_index. */
static int escrow_blob(struct node *n, uint8_t **blob, size_t *len)
{
    _cleanup_secret_ struct secret *plain = NULL;
    int r = tpm_rsa_key_ensure(n->s.tpm, n->rq->base.c_index);

    if (r == 0)
        r = tpm_random_passphrase(TPM_PASSPHRASE_LEN, &plain);
    if (r == 0)
        r = tpm_rsa_encrypt(n->s.tpm, n->rq->base.c_index, plain, blob, len);
    return r;
}

/* One /tpm-attestation exchange. 0 with *out; -EREMOTEIO: the KMS refused (logged); -ENOENT:
 * the KMS has no /tpm-attestation (404); other: transport or protocol errors. */
static int exchange(struct node *n, struct secret **out)
{
    const struct g1_request *b = &n->rq->base;
    struct proto_g3_init in = {0};
    struct proto_g3_challenge ch = {0};
    struct proto_g3_proof pf = {0};
    struct proto_g3_response resp = {0};
    struct tpm_quote q = {0};
    struct net_ws_client *ws = NULL;
    _cleanup_free_ char *url = NULL;
    _cleanup_free_ uint8_t *escrow = NULL;
    _cleanup_secret_ struct secret *proof = NULL;
    size_t escrow_len = 0, len = 0;
    uint8_t *msg = NULL;
    char why[PROTO_G3_WHY_MAX] = "", *text = NULL;
    enum net_ws_type type;
    int r;

    if (!n->ak) {
        r = tpm_ak_create(n->s.tpm, TPM_AK_G3_NODA, &n->ak);
        if (r < 0)
            return r;
    }
    if (!n->ek_spki) {
        struct rsa_pub ek;
        r = tpm_ek_rsa_public(n->s.tpm, &ek, &(bool){false});
        if (r == 0)
            r = crypto_rsa_spki_der(&ek, &n->ek_spki, &n->ek_spki_len);
        if (r < 0)
            return r;
    }
    const struct ak_params *p = tpm_ak_params(n->ak);
    in.ek_public = (struct bytes){n->ek_spki, n->ek_spki_len};
    pb(&in.ak.public_area, &p->public_area);
    pb(&in.ak.create_data, &p->create_data);
    pb(&in.ak.create_attestation, &p->create_attestation);
    pb(&in.ak.create_signature, &p->create_signature);
    in.defer_pcr_enrollment = n->rq->defer_pcr_enrollment;
    r = proto_g3_init_encode(&in, &text, &len);
    if (r < 0)
        return log_error_errno(r, "cannot encode the attestation init");

    const struct net_header headers[] = {
        {PROTO_HDR_LABEL, b->label ? b->label : ""},
        {PROTO_HDR_NAME, b->name ? b->name : ""},
        {PROTO_HDR_UUID, b->uuid ? b->uuid : ""},
    };
    struct net_client_opts o = {.tls = n->s.tls,
                                .host_header = n->s.host_header,
                                .headers = headers,
                                .n_headers = 3,
                                .deadline_ms = n->s.deadline,
                                .max_message = PROTO_G3_MAX_MESSAGE};
    url = net_url_join(n->s.server, PROTO_G3_PATH);
    r = net_ws_dial(url, &o, &ws);
    if (r == 0)
        r = net_ws_send(ws, NET_WS_TEXT, text, len);
    free(text);
    text = NULL;
    if (r < 0)
        goto out;
    r = net_ws_recv(ws, &type, &msg, &len);
    if (r < 0)
        goto out;
    r = proto_g3_challenge_decode((const char *)msg, len, &ch, why);
    if (r == -EREMOTEIO) {
        log_error("%s: the KMS refused: %s", b->server, ch.error);
        goto out;
    }
    if (r < 0) {
        r = log_error_errno(-EPROTO, "%s: the KMS sent something that is not a challenge: %s", url, why);
        goto out;
    }
    r = tpm_activate_credential(n->s.tpm, n->ak, ch.credential.data, ch.credential.len, ch.encrypted_secret.data,
                                ch.encrypted_secret.len, &pf.secret);
    if (r < 0)
        goto out;
    /* Over the KMS's nonce when it sent one (ours), else empty qualifying data as upstream. */
    r = tpm_quote_pcrs(n->s.tpm, n->ak, n->rq->pcr_mask ? n->rq->pcr_mask : DEFAULT_PCRS, ch.nonce.data, ch.nonce.len,
                       &q);
    if (r < 0)
        goto out;
    snprintf(pf.version, sizeof(pf.version), "2");
    pf.quote = (struct bytes){q.attest.data, q.attest.len};
    pf.signature = (struct bytes){q.signature.data, q.signature.len};
    pf.pcr_mask = q.pcr_mask;
    memcpy(pf.pcr, q.pcr, sizeof(pf.pcr));
    if (n->rq->escrow) {
        r = escrow_blob(n, &escrow, &escrow_len);
        if (r < 0)
            goto out;
        pf.escrow = (struct bytes){escrow, escrow_len};
    }
    r = proto_g3_proof_encode(&pf, &proof);
    pf.quote = pf.signature = pf.escrow = (struct bytes){0};
    if (r < 0) {
        r = log_error_errno(r, "cannot encode the attestation proof");
        goto out;
    }
    r = net_ws_send(ws, NET_WS_TEXT, proof->data, proof->len);
    if (r < 0)
        goto out;
    free(msg);
    msg = NULL;
    r = net_ws_recv(ws, &type, &msg, &len);
    if (r < 0)
        goto out;
    r = proto_g3_response_decode((const char *)msg, len, &resp, why);
    if (r == -EREMOTEIO) {
        log_error("%s: the KMS refused: %s", b->server, resp.error);
        goto out;
    }
    if (r == -ENODATA) {
        r = log_error_errno(-EPROTO, "%s: server returned empty passphrase without error message", url);
        goto out;
    }
    if (r < 0) {
        r = log_error_errno(-EPROTO, "%s: the KMS's answer is not an attestation response: %s", url, why);
        goto out;
    }
    if (resp.generated_by && !strcmp(resp.generated_by, "tpm"))
        r = g1_escrow_decrypt(n->s.tpm, b->c_index, b->server, resp.passphrase, out);
    else {
        *out = TAKE_PTR(resp.passphrase);
    }
out:
    if (msg)
        secure_wipe(msg, len);
    free(msg);
    proto_g3_challenge_clear(&ch);
    proto_g3_proof_clear(&pf);
    proto_g3_response_clear(&resp);
    tpm_quote_clear(&q);
    net_ws_free(ws);
    return r;
}

int g3_get_passphrase(const struct g3_request *rq, struct secret **out)
{
    const struct g1_request *b = &rq->base;
    struct node n = {.rq = rq, .s = {.rq = b, .deadline = now_ms() + b->timeout_ms, .server = b->server}};
    struct mdns_endpoint *kms = NULL;
    size_t n_kms = 0, next = 0;
    int64_t backoff = 1000;
    enum g3_protocol proto = rq->protocol;
    int r, posted = 0, attempt = 0;

    r = b->mdns ? mdns_resolve_server(b->server, b->timeout_ms < 5000 ? b->timeout_ms : 5000, &kms, &n_kms) : 0;
    if (r == 0)
        r = g1_load_certificate(b->certificate, &n.s.tls);
    if (r == 0)
        r = tpm_open(b->tpm_device, b->tpm_timeout_ms, &n.s.tpm);
    while (r == 0) {
        if (n_kms) {
            n.s.server = kms[next].url;
            n.s.host_header = kms[next].host_header;
        }
        attempt++;
        if (proto == G3_PROTO_G1) {
            r = g1_attempt(&n.s, &posted, out);
        } else {
            r = exchange(&n, out);
            if (r == -ENOENT && proto == G3_PROTO_AUTO) {
                log_info("%s: no /tpm-attestation (404): using the G1 protocol (/getPass)", n.s.server);
                proto = G3_PROTO_G1;
                attempt--;
                r = 0;
                continue;
            }
        }
        if (r == 0)
            break;
        if (g1_is_final(r))
            break;
        if (++next < n_kms) {
            log_warn("%s: attempt %d at %s failed; trying %s", b->server, attempt, n.s.server, kms[next].url);
            r = 0;
            continue;
        }
        next = 0;
        if (now_ms() + backoff >= n.s.deadline) {
            log_error("%s: giving up after %d attempts in %lld s", b->server, attempt,
                      (long long)(b->timeout_ms / 1000));
            break;
        }
        log_warn("%s: attempt %d failed; retrying in %lld s", b->server, attempt, (long long)(backoff / 1000));
        g1_sleep_ms(backoff);
        backoff = backoff * 2 > 8000 ? 8000 : backoff * 2;
        r = 0;
    }
    mdns_endpoints_free(kms, n_kms);
    tpm_ak_free(n.ak);
    free(n.ek_spki);
    free(n.s.ek_pem);
    tpm_close(n.s.tpm);
    ktls_client_free(n.s.tls);
    return r;
}

bool g3_booted_live(const char *cmdline)
{
    _cleanup_free_ char *text = NULL;
    char *save = NULL;

    if (!cmdline) {
        if (file_read_all("/proc/cmdline", 1 << 16, &text, NULL) < 0)
            return false;
    } else {
        text = xstrdup(cmdline);
    }
    /* kairos-sdk's boot state: a dracut live root (root=live:LABEL=..., root=live:CDLABEL=...)
     * or a netboot. */
    for (char *tok = strtok_r(text, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
        const char *v = !strncmp(tok, "root=", 5) ? tok + 5 : tok;
        if (!strncmp(v, "live:LABEL", 10) || !strncmp(v, "live:CDLABEL", 12) || !strcmp(tok, "netboot") ||
            !strncmp(tok, "netboot=", 8))
            return true;
    }
    return false;
}

int g3_parse_pcrs(const char *what, const char *s, uint32_t *mask)
{
    _cleanup_free_ char *copy = xstrdup(s);
    char *save = NULL;
    uint32_t m = 0;

    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint32_t i;
        while (*tok == ' ')
            tok++;
        if (parse_u32(tok, 23, &i) < 0)
            return log_error_errno(-EINVAL, "%s: \"%s\" is not a PCR index 0..23", what, tok);
        m |= 1u << i;
    }
    if (!m)
        return log_error_errno(-EINVAL, "%s: no PCR given (e.g. 0,7,11)", what);
    *mask = m;
    return 0;
}
