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
/* The PCRs a G3 node quotes (upstream's list: 0, 7, 11; SHA-256 bank). */
#define LG_PCR_MASK ((1u << 0) | (1u << 7) | (1u << 11))
#define LG_PCRS 24
#define LG_PCR_LEN 32
/* A /postPass passphrase: base64url (no padding) of one RSA-2048 OAEP ciphertext, as a node's
 * TPM key makes it (kairos-io/kcrypt-challenger cmd/discovery/client/enc.go). */
#define LG_WIRE_LEN 342

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
    uint8_t ak_qn[2 + SHA256_LEN];    /* the AK's qualified name: the signer of its quotes */
    char *ak_pem;                     /* PEM "PUBLIC KEY" of the AK (for tpm2_checkquote) */
    struct lg_bytes ek_spki;          /* DER SubjectPublicKeyInfo of the EK (G3's ek_public) */
    uint8_t pcr[LG_PCRS][LG_PCR_LEN]; /* the SHA-256 bank values of LG_PCR_MASK, from the seed */
    char *token;                      /* the Authorization header value: "Bearer TPM..." */
    char passphrase[LG_PASS_LEN + 1]; /* the static passphrase `register` stores for it */
    char *wire;                       /* run --mode postpass/readback: the ciphertext it posts */
    bool synthetic;                   /* register --real-keys: an EK public made up, no private key */
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
    size_t real_keys;  /* ek_only: nodes from this index on get a synthetic EK public (no key
                        * generated; they can be registered but never run); 0 = all real */
};

/* Makes nodes 0..s->nodes-1: keys from the cache or generated (then the cache is rewritten),
 * EK public forms, the AK and its certification, the token. 0 or -errno (logged). */
int lg_nodes_make(const struct lg_setup *s, struct lg_nodes *out);
void lg_nodes_free(struct lg_nodes *nodes);

/* The static passphrase of node index for seed (printable, LG_PASS_LEN characters). */
void lg_passphrase(const char *seed, uint32_t index, char out[LG_PASS_LEN + 1]);
/* SealedVolume and Secret names of a node. */
void lg_volume_name(uint32_t index, char *out, size_t n);

/* The PCR values of node index (SHA-256 bank), from the seed: a fleet of machines that each
 * booted their own way. Only the LG_PCR_MASK entries are set. */
void lg_pcr_values(const char *seed, uint32_t index, uint8_t pcr[LG_PCRS][LG_PCR_LEN]);

/* TPM2_Quote of LG_PCR_MASK (SHA-256 bank) by node's AK over qualifying data nonce (<= 64
 * bytes): the TPMS_ATTEST (type QUOTE, TPM_GENERATED magic, the AK's qualified name as signer)
 * and its TPMT_SIGNATURE (RSASSA, SHA-256), each malloc'd into attest and sig. Thread-safe per
 * node. 0 or -errno. */
int lg_quote(struct lg_node *node, const uint8_t *nonce, size_t nonce_len, struct lg_bytes *attest,
             struct lg_bytes *sig);

/* The /postPass passphrase of node index: a 32-character passphrase from the seed, encrypted
 * with RSA-OAEP-SHA256 to the node's EK public key (standing in for the node's TPM key at
 * c_index) with OAEP randomness from the seed too, so that a later run can check what a KMS
 * serves; base64url without padding, LG_WIRE_LEN characters. nd->wire is set. 0 or -errno. */
int lg_make_wire(const char *seed, struct lg_node *node);

/* TPM2_ActivateCredential with node's EK for its AK: id_object is the TPM2B_ID_OBJECT and
 * enc_secret the TPM2B_ENCRYPTED_SECRET, each with its size prefix. The certInfo goes to out
 * (cap bytes). Thread-safe per node. -EBADMSG malformed input, -EPERM the integrity check
 * failed (not for this EK, or not for this AK Name), as the TPM would refuse it. */
int lg_activate(struct lg_node *node, const uint8_t *id_object, size_t id_len, const uint8_t *enc_secret, size_t es_len,
                uint8_t *out, size_t cap, size_t *out_len);

/* ---- the run verb (run.c) ---- */
enum lg_protocol { LG_G1 = 1, LG_G3 };
/* What each exchange does (G1; G3 does static only):
 *  static   /getPass of the passphrase `register` stored;
 *  postpass /getPass finds no Secret, /postPass of the node's ciphertext (lg_make_wire), /getPass
 *           returns it: the generated-key flow of a new node;
 *  readback /getPass returns the ciphertext posted earlier (after a postpass run). */
enum lg_mode { LG_STATIC = 0, LG_POSTPASS, LG_READBACK };

struct lg_run_opts {
    const char *url; /* the KMS: http(s)://host[:port][/path] (ws/wss too) */
    enum lg_protocol protocol;
    size_t concurrency;          /* exchanges in flight */
    size_t exchanges;            /* in all; exchange k is made by node k % nodes */
    const char *tls_ca;          /* PEM file: CA or the server's certificate; NULL = system roots */
    bool tls_resume;             /* each node keeps its TLS session ticket and resumes with it */
    int64_t timeout_ms;          /* total, retries included */
    int64_t exchange_timeout_ms; /* one attempt */
    unsigned threads;            /* event loops; 0 = online CPUs (1 with TLS) */
    const char *label;           /* the partition header */
    enum lg_mode mode;
    const char *acked_file; /* postpass: each acknowledged post's volume name, a line, synced */
    bool shared_store;      /* postpass: other posters (nodes through other KMS instances) race */
    const uint32_t *only;   /* exchange k is node only[k] (n_only exchanges); NULL = k % nodes */
    size_t n_only;
    bool verbose;
};

/* Runs the exchanges and prints the summary JSON line on stdout. Returns 0 when all succeeded,
 * 1 when any failed, or a negative errno when it could not start. */
int lg_run(const struct lg_nodes *nodes, const struct lg_run_opts *o);

#endif
