/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: every G1 message decoder (token, challenge, answer, payload) and the EK PEM reader. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    struct proto_token t;
    struct bytes c, s;
    struct secret *a = NULL;
    struct proto_payload p;
    struct rsa_pub key;
    char *pem;

    if (proto_token_decode(msg, size, &t) == 0)
        proto_token_clear(&t);
    if (proto_challenge_decode(msg, size, &c, &s) == 0) {
        bytes_clear(&c);
        bytes_clear(&s);
    }
    if (proto_answer_decode(msg, size, &a) == 0)
        secret_free(a);
    if (proto_payload_decode(msg, size, &p) == 0)
        proto_payload_clear(&p);
    pem = malloc(size + 1);
    if (pem) {
        memcpy(pem, data, size);
        pem[size] = '\0';
        (void)proto_ek_pem_public(pem, &key);
        free(pem);
    }
    return 0;
}
