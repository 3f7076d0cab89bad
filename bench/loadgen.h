/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kms-loadgen: simulated Kairos nodes for load tests of the KMS (README.md "kms-loadgen").
 * Each node has an RSA-2048 EK and an AK made and certified as a TPM makes them for
 * go-attestation's NewAK (TPM2_Create under the SRK + TPM2_CertifyCreation by the AK itself), and
 * answers a credential with TPM2_ActivateCredential's math in software. Keys come from --seed and
 * the node's index only, and are cached in a file because RSA key generation is slow. */
#ifndef KKMS_LOADGEN_H
#define KKMS_LOADGEN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest.h"
#include "base.h"
#include "crypto.h"
#include "softtpm.h"

#define LG_KEY_BITS 2048
#define LG_KEY_BYTES (LG_KEY_BITS / 8)
#define LG_PASS_LEN 40 /* "loadgen-" + 32 hex digits */
#define LG_DEFAULT_LABEL "COS_PERSISTENT"
#define LG_DEFAULT_CACHE_DIR "/var/cache/kairos-kms/loadgen"
#define LG_MAX_NODES 100000

/* A byte string we own. */
struct lg_bytes {
    uint8_t *p;
    size_t len;
};

/* One simulated node: its TPM's keys and what it sends. */
struct lg_node {
    uint32_t index;
    struct kcrypto_rsa_key *ek, *ak;
    pthread_mutex_t lock; /* one private-key operation at a time per node (softtpm.h) */
    struct rsa_pub ek_pub;
    char tpm_hash[2 * SHA256_LEN + 1];
    char *ek_pem;                    /* PEM "PUBLIC KEY" (a node without an EK certificate) */
    struct lg_bytes ek_tpm2b_public; /* TPM2B_PUBLIC of the EK (TCG default RSA template) */
    /* go-attestation AttestationParameters of the AK (G1 attributes 0x00050072) */
    struct lg_bytes ak_public, ak_create_data, ak_create_attestation, ak_create_signature;
    uint8_t ak_name[ATTEST_NAME_MAX];
    size_t ak_name_len;
    char *token;                      /* the Authorization header value: "Bearer TPM..." */
    char passphrase[LG_PASS_LEN + 1]; /* the static passphrase `register` stores for it */
};

struct lg_nodes {
    struct lg_node *v;
    size_t n;
};

/* What every verb needs to make the nodes. */
struct lg_setup {
    const char *seed;
    size_t nodes;      /* nodes 0..nodes-1 */
    const char *cache; /* key cache file; NULL = default under LG_DEFAULT_CACHE_DIR, "" = none */
    unsigned threads;  /* for key generation; 0 = online CPUs */
    bool ek_only;      /* only the EK's public forms are needed (register): no AK, no token */
};

/* Makes nodes 0..s->nodes-1: keys from the cache or generated (then the cache is rewritten),
 * EK public forms, the AK and its certification, the token. 0 or -errno (logged). */
int lg_nodes_make(const struct lg_setup *s, struct lg_nodes *out);
void lg_nodes_free(struct lg_nodes *nodes);

/* The static passphrase of node index for seed (printable, LG_PASS_LEN characters). */
void lg_passphrase(const char *seed, uint32_t index, char out[LG_PASS_LEN + 1]);
/* SealedVolume and Secret names of a node. */
void lg_volume_name(uint32_t index, char *out, size_t n);

/* TPM2_ActivateCredential with node's EK for its AK: id_object is the TPM2B_ID_OBJECT and
 * enc_secret the TPM2B_ENCRYPTED_SECRET, each with its size prefix. The certInfo goes to out
 * (cap bytes). Thread-safe per node. -EBADMSG malformed input, -EPERM the integrity check
 * failed (not for this EK, or not for this AK Name), as the TPM would refuse it. */
int lg_activate(struct lg_node *node, const uint8_t *id_object, size_t id_len, const uint8_t *enc_secret, size_t es_len,
                uint8_t *out, size_t cap, size_t *out_len);

/* ---- the run verb (run.c) ---- */
enum lg_protocol { LG_G1 = 1, LG_G3 };

struct lg_run_opts {
    const char *url; /* the KMS: http(s)://host[:port][/path] (ws/wss too) */
    enum lg_protocol protocol;
    size_t concurrency;          /* exchanges in flight */
    size_t exchanges;            /* in all; exchange k is made by node k % nodes */
    const char *tls_ca;          /* PEM file: CA or the server's certificate; NULL = system roots */
    int64_t timeout_ms;          /* total, retries included */
    int64_t exchange_timeout_ms; /* one attempt */
    unsigned threads;            /* event loops; 0 = online CPUs (1 with TLS) */
    const char *label;           /* the partition header */
    bool verbose;
};

/* Runs the exchanges and prints the summary JSON line on stdout. Returns 0 when all succeeded,
 * 1 when any failed, or a negative errno when it could not start. */
int lg_run(const struct lg_nodes *nodes, const struct lg_run_opts *o);

#endif
