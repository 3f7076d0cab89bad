/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the four G3 message decoders of lib/proto/g3.h and proto_g3_ek on every input. Whatever a decoder
 * accepts must encode again and decode to the same fields (the decoders' limits are within the
 * encoders'), so a field a decoder lets through is one our own peer could have sent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "g3.h"

static bool same(const struct bytes *a, const struct bytes *b)
{
    return a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data, a->len));
}

static void init_again(const struct proto_g3_init *m)
{
    struct proto_g3_init back;
    char *txt = NULL;
    size_t n;

    if (proto_g3_init_encode(m, &txt, &n) < 0 || proto_g3_init_decode(txt, n, &back, NULL) < 0)
        abort();
    if (!same(&back.ek_public, &m->ek_public) || !same(&back.ak.public_area, &m->ak.public_area) ||
        !same(&back.ak.create_data, &m->ak.create_data) ||
        !same(&back.ak.create_attestation, &m->ak.create_attestation) ||
        !same(&back.ak.create_signature, &m->ak.create_signature) ||
        back.defer_pcr_enrollment != m->defer_pcr_enrollment)
        abort();
    proto_g3_init_clear(&back);
    free(txt);
}

static void challenge_again(const struct proto_g3_challenge *m)
{
    struct proto_g3_challenge back;
    char *txt = NULL;
    size_t n;

    if (proto_g3_challenge_encode(m, &txt, &n) < 0 || proto_g3_challenge_decode(txt, n, &back, NULL) < 0)
        abort();
    if (!same(&back.credential, &m->credential) || !same(&back.encrypted_secret, &m->encrypted_secret) ||
        !same(&back.nonce, &m->nonce))
        abort();
    proto_g3_challenge_clear(&back);
    free(txt);
}

static void proof_again(const struct proto_g3_proof *m)
{
    struct proto_g3_proof back;
    struct secret *txt = NULL;

    if (proto_g3_proof_encode(m, &txt) < 0 || proto_g3_proof_decode((const char *)txt->data, txt->len, &back, NULL) < 0)
        abort();
    if (back.secret->len != m->secret->len || memcmp(back.secret->data, m->secret->data, m->secret->len) ||
        (m->version[0] && strcmp(back.version, m->version)) || !same(&back.quote, &m->quote) ||
        !same(&back.signature, &m->signature) || back.pcr_mask != m->pcr_mask ||
        memcmp(back.pcr, m->pcr, sizeof(m->pcr)) || !same(&back.escrow, &m->escrow))
        abort();
    proto_g3_proof_clear(&back);
    secret_free(txt);
}

static void response_again(const struct proto_g3_response *m, bool is_error)
{
    struct proto_g3_response back;
    struct secret *txt = NULL;
    int r;

    if (proto_g3_response_encode(m, &txt) < 0)
        abort();
    r = proto_g3_response_decode((const char *)txt->data, txt->len, &back, NULL);
    if (is_error ? r != -EREMOTEIO || strcmp(back.error, m->error)
                 : r != 0 || back.passphrase->len != m->passphrase->len ||
                       memcmp(back.passphrase->data, m->passphrase->data, m->passphrase->len) ||
                       strcmp(back.generated_by, m->generated_by))
        abort();
    proto_g3_response_clear(&back);
    secret_free(txt);
}

static void ek_of(const struct bytes *spki)
{
    struct rsa_pub key;
    char hash[2 * SHA256_LEN + 1], *pem = NULL;

    if (proto_g3_ek(spki, &key, hash, &pem, NULL) == 0 && (!pem || strlen(hash) != 2 * SHA256_LEN))
        abort();
    free(pem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    char why[PROTO_G3_WHY_MAX];
    struct proto_g3_init init;
    struct proto_g3_challenge challenge;
    struct proto_g3_proof proof;
    struct proto_g3_response response;
    int r;

    if (proto_g3_init_decode(msg, size, &init, why) == 0) {
        init_again(&init);
        ek_of(&init.ek_public);
        proto_g3_init_clear(&init);
    }
    {
        const struct bytes raw = {(uint8_t *)data, size}; /* the input as an EK SPKI */
        ek_of(&raw);
    }
    r = proto_g3_challenge_decode(msg, size, &challenge, why);
    if (r == 0)
        challenge_again(&challenge);
    else if (r == -EREMOTEIO &&
             (!challenge.error || !challenge.error[0] || strlen(challenge.error) > PROTO_G3_ERROR_MAX))
        abort();
    proto_g3_challenge_clear(&challenge);
    if (proto_g3_proof_decode(msg, size, &proof, why) == 0) {
        proof_again(&proof);
        proto_g3_proof_clear(&proof);
    }
    r = proto_g3_response_decode(msg, size, &response, why);
    if (r == 0 || r == -EREMOTEIO)
        response_again(&response, r == -EREMOTEIO);
    proto_g3_response_clear(&response);
    return 0;
}
