/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files of lib/attest; not part of its interface. */
#ifndef KKMS_ATTEST_INTERNAL_H
#define KKMS_ATTEST_INTERNAL_H

#include "attest.h"

/* Where and why a decoder stopped, for the one-line reason of the checks. */
struct decode_error {
    const char *field;   /* e.g. "TPMT_PUBLIC.unique" */
    const char *problem; /* e.g. "truncated" */
    size_t at;           /* byte offset in the input */
};

/* The decoders of attest.h, with err (may be NULL) filled on failure. */
int decode_public(const uint8_t *in, size_t len, struct attest_public *out, struct decode_error *err);
int decode_creation_data(const uint8_t *in, size_t len, struct attest_creation_data *out, struct decode_error *err);
int decode_attestation(const uint8_t *in, size_t len, struct attest_attestation *out, struct decode_error *err);
int decode_signature(const uint8_t *in, size_t len, struct attest_signature *out, struct decode_error *err);

/* Our hash for a TPM_ALG_ID; 0 if it is not one we compute. */
enum crypto_hash attest_hash_of(uint16_t alg);

/* Formats the reason into why (when not NULL), logs it as one line and returns r. */
int attest_fail(char *why, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* attest_fail for a decoder error: "<what>: <field>: <problem> at byte N". */
int attest_fail_decode(char *why, int r, const char *what, const struct decode_error *err);

/* Verifies sig over msg with the key of pub, using H_sig->hash(msg). The signature must be of the
 * key's kind (RSASSA for RSA, ECDSA for ECC) and, when the key has a scheme, of its hash.
 * what names the signed thing in the message. Errors as attest_check_ak_params. */
int attest_verify_signature(const struct attest_public *pub, const struct attest_signature *sig, const uint8_t *msg,
                            size_t msg_len, const char *what, char *why);

/* Checks that an ECC public area names a supported curve with full-size coordinates. */
int attest_ecc_curve(const struct attest_public *pub, enum crypto_curve *curve);

#endif
