/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/proto: the four messages of upstream's G3 protocol (the /tpm-attestation WebSocket of
 * kairos-io/kairos kcrypt/pkg/attestation/messages.go), byte for byte as the Go peers write them
 * and as tolerant as Go is when reading (object keys matched case-insensitively, unknown keys
 * ignored, []byte fields as padded standard base64), but bounded: every field has a size limit
 * and a field of the wrong type is refused. Every message is one TEXT frame holding one JSON
 * object and a trailing "\n" (gorilla's WriteJSON); the encoders add the newline, the decoders
 * accept it or any surrounding whitespace.
 *
 * Our compatible extensions (upstream Go peers drop unknown fields): a "nonce" beside the
 * challenge, which our node quotes over; an "encrypted_passphrase" in the proof, a passphrase the
 * node generated and encrypted to its own TPM key, escrowed on a new enrollment; a
 * "generated_by" in the response, telling the node that the passphrase is such a ciphertext.
 * docs/protocol-g3-messages.md describes every field.
 *
 * Decoders do not log: on failure they write one line saying which field was wrong and why into
 * why (PROTO_G3_WHY_MAX bytes, may be NULL), and the caller, who knows the peer, logs it.
 * Decoders return 0, -EBADMSG (not a JSON object, or over PROTO_G3_MAX_MESSAGE), -EINVAL (a field
 * missing, of the wrong type, over its limit or not decodable), or for the two server messages
 * -EREMOTEIO: the message is the server's {"error":"..."} (in place of a challenge, or as the
 * final response), whose text is then in the struct's error field. Encoders return 0 or -EINVAL
 * (a field over its limit) and give a malloc'd text (NUL-terminated, newline included) owned by
 * the caller; texts that carry a secret say so. */
#ifndef KKMS_PROTO_G3_H
#define KKMS_PROTO_G3_H

#include "proto.h"

#define PROTO_G3_PATH "/tpm-attestation"

/* Most bytes of any one G3 message we read. An honest init is about 2 KiB and a proof of all 24
 * PCRs about 2.5 KiB. */
#define PROTO_G3_MAX_MESSAGE (32u << 10)
#define PROTO_G3_WHY_MAX 200

/* Decoded sizes (bytes) of the fields. */
#define PROTO_G3_EK_SPKI_MAX 2048    /* ek_public: DER SubjectPublicKeyInfo (RSA-4096 is 550) */
#define PROTO_G3_TPM_STRUCT_MAX 1024 /* each AK parameter, the quote and its signature */
#define PROTO_G3_CREDENTIAL_MAX 134  /* TPM2B_ID_OBJECT: 2 + 2 + 64 + 2 + 64 */
#define PROTO_G3_ENC_SECRET_MAX 514  /* TPM2B_ENCRYPTED_SECRET: 2 + 512 */
#define PROTO_G3_SECRET_MAX 64       /* the activated secret (TPM2B_DIGEST); upstream sends 32 */
#define PROTO_G3_NONCE_MAX 64        /* our nonce = the quote's qualifyingData (TPM2B_DATA) */
#define PROTO_G3_VERSION_MAX 16      /* pcr_quote.quote.version: "2" */
#define PROTO_G3_PCR_COUNT 24        /* pcrs keys "0".."23" */
#define PROTO_G3_PCR_LEN 32          /* SHA-256 bank values */
#define PROTO_G3_ESCROW_LEN 256      /* encrypted_passphrase: one RSA-2048 OAEP ciphertext */
#define PROTO_G3_PASSPHRASE_MAX 4096
#define PROTO_G3_GENERATED_BY_MAX 32
#define PROTO_G3_ERROR_MAX 1024 /* a longer server error is cut (still an error) */

/* 1. node → server, AttestationInit:
 *   {"ek_public":"<b64 DER SPKI>","ak_params":{"Public":"<b64>","UseTCSDActivationFormat":false,
 *    "CreateData":"<b64>","CreateAttestation":"<b64>","CreateSignature":"<b64>"}
 *    [,"defer_pcr_enrollment":true]}
 * ek_public and the four AK structures are required and non-empty; UseTCSDActivationFormat true
 * (TPM 1.2 activation) is refused. */
struct proto_g3_init {
    struct bytes ek_public;    /* DER SubjectPublicKeyInfo of the EK */
    struct ak_params ak;       /* go-attestation AttestationParameters */
    bool defer_pcr_enrollment; /* live medium: store the PCRs empty (key omitted when false) */
};
void proto_g3_init_clear(struct proto_g3_init *m);
/* What the KMS needs of an init's ek_public: the RSA key; the TPM hash (lowercase hex SHA-256 of
 * the key's SubjectPublicKeyInfo re-encoded, as upstream hashes x509.MarshalPKIXPublicKey of the
 * parsed key, so a non-canonical encoding cannot yield a second identity); and when pem is not
 * NULL the "PUBLIC KEY" PEM upstream keeps in a SealedVolume's attestation.ekPublicKey (64-column
 * lines, malloc'd, owned by the caller). -EBADMSG: not a SubjectPublicKeyInfo; -EPROTONOSUPPORT:
 * not an RSA key (upstream G3 supports RSA EKs only). why as for the decoders. */
int proto_g3_ek(const struct bytes *ek_public, struct rsa_pub *key, char tpm_hash[2 * SHA256_LEN + 1], char **pem,
                char *why);
int proto_g3_init_encode(const struct proto_g3_init *m, char **out, size_t *out_len);
int proto_g3_init_decode(const char *msg, size_t len, struct proto_g3_init *out, char *why);

/* 2. server → node, AttestationChallenge:
 *   {"challenge":{"Credential":"<b64 TPM2B_ID_OBJECT>","Secret":"<b64 TPM2B_ENCRYPTED_SECRET>"}
 *    [,"nonce":"<b64>"]}
 * Both blobs keep their TPM2B size prefix. nonce (ours, 1..PROTO_G3_NONCE_MAX bytes) is omitted
 * when empty. The decoder refuses a challenge whose nonce is present but empty or too long. */
struct proto_g3_challenge {
    struct bytes credential;       /* "Credential" */
    struct bytes encrypted_secret; /* "Secret" */
    struct bytes nonce;            /* ours; len 0 = none (an upstream server) */
    char *error;                   /* decode: the server's error text with -EREMOTEIO */
};
void proto_g3_challenge_clear(struct proto_g3_challenge *m);
int proto_g3_challenge_encode(const struct proto_g3_challenge *m, char **out, size_t *out_len);
int proto_g3_challenge_decode(const char *msg, size_t len, struct proto_g3_challenge *out, char *why);

/* 3. node → server, AttestationProof:
 *   {"secret":"<b64>","pcr_quote":{"quote":{"version":"2","quote":"<b64 TPMS_ATTEST>",
 *    "signature":"<b64 TPMT_SIGNATURE>"},"pcrs":{"0":"<b64 32 bytes>","11":"..","7":".."}}
 *    [,"encrypted_passphrase":"<base64url, no padding, of 256 bytes>"]}
 * pcrs keys are written in Go's order (sorted as strings: "0" < "11" < "7"); the decoder wants
 * decimal keys 0..23 without sign or leading zero, each once, and 32-byte values. The escrow is
 * written exactly as a G1 node's generated_by "tpm" passphrase (base64.RawURLEncoding of the
 * RSA-OAEP-SHA256 ciphertext under the node's key at c_index), so the KMS can store and return
 * it as that text. The encoder returns the text as a struct secret: it holds the secret. */
struct proto_g3_proof {
    struct secret *secret;                             /* "secret": the activated credential */
    char version[PROTO_G3_VERSION_MAX + 1];            /* "version": "2"; encode: "" writes "2" */
    struct bytes quote;                                /* "quote": TPMS_ATTEST */
    struct bytes signature;                            /* "signature": TPMT_SIGNATURE */
    uint32_t pcr_mask;                                 /* bit i set: pcr[i] is PCR i's value */
    uint8_t pcr[PROTO_G3_PCR_COUNT][PROTO_G3_PCR_LEN]; /* SHA-256 bank values */
    struct bytes escrow;                               /* ours: "encrypted_passphrase"; len 0 = none */
};
void proto_g3_proof_clear(struct proto_g3_proof *m);
/* *out holds the activated secret: a secret (secret_free). */
int proto_g3_proof_encode(const struct proto_g3_proof *m, struct secret **out);
int proto_g3_proof_decode(const char *msg, size_t len, struct proto_g3_proof *out, char *why);

/* 4. server → node, AttestationResponse: {"passphrase":"<b64>"[,"generated_by":"tpm"]} or
 * {"error":"<text>"}. The passphrase is the stored Secret's bytes (for a TOFU Secret a 44-char
 * base64 text, so base64 of base64 on the wire); generated_by (ours, omitted when empty) is "tpm"
 * when those bytes are the node's escrowed ciphertext text, to be decrypted with its TPM key.
 * The encoder writes only the error when error is non-empty. The decoder returns -EREMOTEIO for a
 * non-empty error (whatever else the message holds) and -ENODATA for a message with neither
 * (upstream: "server returned empty passphrase without error message"). The encoded and decoded
 * texts hold the passphrase: wipe the encoded text before freeing. */
struct proto_g3_response {
    struct secret *passphrase; /* NULL or empty: none */
    char *generated_by;        /* ours; NULL or "": none */
    char *error;               /* NULL or "": none */
};
void proto_g3_response_clear(struct proto_g3_response *m);
/* *out holds the passphrase: a secret (secret_free). */
int proto_g3_response_encode(const struct proto_g3_response *m, struct secret **out);
int proto_g3_response_decode(const char *msg, size_t len, struct proto_g3_response *out, char *why);

/* {"error":"<text>"}\n: what the server sends in place of any message when it gives up (also the
 * failed response). text must be non-empty; Go's escaping is applied. */
int proto_g3_error_encode(const char *text, char **out, size_t *out_len);

#endif
