/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/proto: the messages of upstream's G1 KMS protocol (/getPass, /postPass), byte for byte as
 * the Go peers write them and as tolerant as Go is when reading (docs/protocol-g1.md §4, docs/upstream.md §9.12):
 * keys matched case-insensitively, unknown keys ignored, []byte fields as standard padded base64,
 * a trailing newline or other whitespace accepted. Uses lib/base, lib/json and lib/crypto only.
 * Decoders do not log: the caller knows which peer sent the bytes and says so. */
#ifndef KKMS_PROTO_H
#define KKMS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "crypto.h"

/* Most bytes of any one G1 message we read (the token carries a PEM and four TPM structures). */
#define PROTO_MAX_MESSAGE (64u << 10)
/* HTTP headers that name the partition (docs/protocol-g1.md §2.2). */
#define PROTO_HDR_LABEL "label"
#define PROTO_HDR_NAME "name"
#define PROTO_HDR_UUID "uuid"
#define PROTO_TOKEN_PREFIX "Bearer TPM"

/* go-attestation's AttestationParameters, the "AK" of the token. */
/* The decoded Authorization token: the EK PEM text and the AK parameters. */
struct proto_token {
    char *ek_pem; /* "EK": PEM bytes (CERTIFICATE or PUBLIC KEY) */
    struct ak_params ak;
};
void proto_token_clear(struct proto_token *t);

/* The Authorization header value: "Bearer TPM" + base64std({"EK":..,"AK":{..}}) with Go's field
 * order (EK, AK{Public, UseTCSDActivationFormat, CreateData, CreateAttestation, CreateSignature}).
 * *out malloc'd, owned by the caller. */
int proto_token_encode(const char *ek_pem, const struct ak_params *ak, char **out);
/* Decodes a header value (prefix "Bearer TPM" required, as upstream's TrimPrefix + base64 fails
 * without it). -EBADMSG: prefix, base64 or JSON wrong; -EINVAL: a field of the wrong type or EK
 * missing. */
int proto_token_decode(const char *header, size_t len, struct proto_token *out);

/* The EK public key from the token's PEM: a CERTIFICATE's key or a PUBLIC KEY, RSA only (docs/protocol-g1.md §3.2:
 * anything else is "invalid pem type"). -EBADMSG: not PEM of those types; -EPROTONOSUPPORT: not RSA. */
int proto_ek_pem_public(const char *pem, struct rsa_pub *out);

/* A cache of parsed EK public keys, by the bytes the node sent for them (lib/proto/ek_cache.c):
 * the key, its TPM hash and (G3) its PEM text. Static storage zeroed is an empty cache. */
#define PROTO_EK_CACHE_SIZE 256
#define PROTO_EK_CACHE_MAX_KEY 4096 /* longer key texts are not kept (an EK certificate is 1-2 KiB of PEM) */
struct proto_ek_cache_entry {
    uint8_t *key; /* NULL: unused */
    size_t key_len;
    uint64_t key_hash;
    struct rsa_pub ek;
    char hash[2 * SHA256_LEN + 1];
    char *pem; /* NULL unless given */
};
struct proto_ek_cache {
    struct proto_ek_cache_entry e[PROTO_EK_CACHE_SIZE];
    size_t next; /* the entry replaced next */
};
/* The entry for key (its len bytes), NULL when none; valid until the next put. */
const struct proto_ek_cache_entry *proto_ek_cache_find(const struct proto_ek_cache *c, const void *key, size_t len);
/* Keeps copies of key, ek, hash and pem (may be NULL) in place of the oldest entry. */
void proto_ek_cache_put(struct proto_ek_cache *c, const void *key, size_t len, const struct rsa_pub *ek,
                        const char hash[2 * SHA256_LEN + 1], const char *pem);

/* The DER of the token's EK CERTIFICATE block (*der malloc'd, owned by the caller). -ENOENT: the
 * EK was sent as a PUBLIC KEY (no certificate); -EBADMSG: not PEM of those types. */
int proto_ek_pem_cert(const char *pem, uint8_t **der, size_t *der_len);

/* Server → node: {"EC":{"Credential":"<b64>","Secret":"<b64>"}} (no newline). */
int proto_challenge_encode(const struct bytes *credential, const struct bytes *secret, char **out, size_t *out_len);
int proto_challenge_decode(const char *msg, size_t len, struct bytes *credential, struct bytes *secret);

/* Node → server: {"Secret":"<b64 of the activated secret>"} + "\n" (json.Encoder). The secret
 * travels in a struct secret both ways; *out, the encoded text, is one too (secret_free). */
int proto_answer_encode(const struct secret *activated, struct secret **out);
int proto_answer_decode(const char *msg, size_t len, struct secret **activated);

/* Both ways: {"passphrase":"..","error":"..","generated_by":".."} + "\n", all keys always present,
 * in that order. */
struct proto_payload {
    struct secret *passphrase; /* may be NULL for "" */
    char *error;               /* "" when none; never NULL after decode */
    char *generated_by;        /* "tpm" for node-generated ciphertexts, else "" */
};
void proto_payload_clear(struct proto_payload *p);
/* *out holds the passphrase: a secret (secret_free). */
int proto_payload_encode(const struct proto_payload *p, struct secret **out);
int proto_payload_decode(const char *msg, size_t len, struct proto_payload *out);

#endif
