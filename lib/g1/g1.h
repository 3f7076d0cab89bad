/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/g1: the sessions of upstream's G1 protocol (kairos-io/kcrypt-challenger <= v0.11.2,
 * /getPass and /postPass), both halves: the KMS's WebSocket handlers and the node's exchange.
 * The decisions are lib/kms's; this layer carries them and words them as upstream does. */
#ifndef KKMS_G1_H
#define KKMS_G1_H

#include <stdbool.h>
#include <stdint.h>

#include "attest.h"
#include "base.h"
#include "crypto.h"
#include "kms.h"
#include "net.h"

/* ---- KMS side ---- */

/* What the handlers need; owned by the caller, alive while the server runs. */
struct g1_server {
    struct kms_store *store;
    struct kms_audit *audit;
    int64_t exchange_timeout_ms;         /* one exchange, upgrade to last message */
    const struct crypto_x509_set *ek_ca; /* --ek-ca: EK certificates must chain to one; NULL = not checked */
    struct kms_metrics *metrics;         /* server time per exchange; NULL = none */
};

/* The handlers of /getPass and /postPass (token -> challenge -> answer -> payload or store),
 * each with data = srv. */
void g1_server_handlers(struct g1_server *srv, struct net_handler *get, struct net_handler *post);

/* What a KMS exchange, G1 or G3, knows of the node: its TPM hash (once its EK is known), the
 * partition it asks for (the label, name, uuid headers) and the secret it must give back. */
struct g1_node {
    char hash[2 * SHA256_LEN + 1];
    char *label, *name, *uuid;
    uint8_t expected[ATTEST_SECRET_LEN];
};
/* Copies the partition headers of req ("" for a missing one). */
void g1_node_from_headers(struct g1_node *n, const struct net_request *req);
/* Wipes the secret, frees the copies. */
void g1_node_clear(struct g1_node *n);
/* What lib/kms is asked about this node (peer from c). */
struct kms_request g1_node_request(const struct g1_node *n, struct net_conn *c);

/* A decision that waits for the store (kms_post_pass or kms_attest answered -EINPROGRESS to a
 * memory-only request: it needs etcd) runs on the loop's offload thread; what an exchange of
 * either server keeps meanwhile. The connection may close before the store answers: on_close
 * then marks the exchange orphan and the done call frees it. */
struct g1_offload {
    struct net_conn *conn;
    char *peer; /* the connection's peer, copied for the audit line */
    bool busy, orphan;
};
/* Sends work(data) to the offload thread for the exchange on c (endpoint names it in the log
 * line), req asked again from there (its peer then the copy, memory_only false); not run when
 * its turn comes after start_wait_ms. < 0 (busy, or no thread): nothing was sent. */
int g1_offload_start(struct g1_offload *o, struct net_conn *c, const char *endpoint, struct kms_request *req,
                     int64_t start_wait_ms, net_work_fn work, net_done_fn done, void *data);
/* The refusal for a decision not taken: g1_offload_start's error, or a done call's status < 0
 * (the job was not run). */
const char *g1_offload_why(int status);
/* The done call: true when the connection is still open (held no more), false when the
 * exchange is an orphan the caller frees. */
bool g1_offload_end(struct g1_offload *o);
/* on_close: true when the exchange must be left to its done call (then marked orphan). */
bool g1_offload_orphan(struct g1_offload *o);
void g1_offload_clear(struct g1_offload *o);

/* The text a G1 node receives in the payload's "error" for a refused request: upstream's exact
 * string where upstream has one (kcrypt-challenger pkg/challenger/challenger.go), else the
 * KMS's own description (r->error). post: /postPass wording. */
void g1_words(bool post, const struct kms_reply *r, char *buf, size_t len);

/* ---- node side ---- */

/* What the node asks the KMS for, and how to reach it. */
struct g1_request {
    const char *server;      /* challenger_server: http(s)://host[:port][/path] */
    const char *certificate; /* PEM text or a file holding it; NULL/"" = system roots only */
    const char *tpm_device;  /* NULL = default */
    int64_t tpm_timeout_ms;
    uint32_t c_index;                /* key that decrypts auto-generated passphrases */
    const char *label, *name, *uuid; /* partition headers; NULL = "" */
    int64_t timeout_ms;              /* total, retries included */
    bool mdns;                       /* find a .local server over mDNS first */
};

/* How a KMS's G1 error text reads to a node: the upstream texts a node must act on. */
enum g1_error_kind {
    G1_ERR_OTHER,     /* any other refusal: final */
    G1_ERR_NO_SECRET, /* "No secret found for <hash> and <label>": auto-generated keys apply */
};
enum g1_error_kind g1_error_kind(const char *text);

/* One node's connection state (the TPM, its EK PEM, TLS), shared by the attempts of one flow. */
struct tpm;
struct ktls_client;
struct g1_session {
    const struct g1_request *rq;
    struct tpm *tpm;
    char *ek_pem; /* loaded by the first attempt */
    struct ktls_client *tls;
    int64_t deadline;
    const char *server;      /* the URL dialled: rq->server, or a KMS found over mDNS */
    const char *host_header; /* with mDNS: the original host[:port] */
};

/* One G1 attempt: /getPass; on "No secret found" a passphrase generated here, encrypted by this
 * TPM, posted (once per *posted), then /getPass again. 0 with *out; -EREMOTEIO: the KMS refused
 * (logged); other errors: transport (g1_is_final says whether to retry). */
int g1_attempt(struct g1_session *c, int *posted, struct secret **out);
/* Errors not worth retrying: a certificate that does not verify, a refusal. */
bool g1_is_final(int r);
void g1_sleep_ms(int64_t ms);
/* The CA to trust: PEM text, or a file holding it; NULL/"" = the system roots only. */
int g1_load_certificate(const char *cert, struct ktls_client **out);
/* A passphrase generated here (32 characters of [0-9a-z]), RSA-OAEP-encrypted by the TPM key at
 * c_index (created when absent), as the base64url text a G1 node posts. *wire owned by the
 * caller; the plain passphrase never leaves the function. */
int g1_escrow_generate(struct tpm *tpm, uint32_t c_index, struct secret **wire);
/* The plain passphrase of such a text, decrypted by the TPM. */
int g1_escrow_decrypt(struct tpm *tpm, uint32_t c_index, const char *server, const struct secret *wire,
                      struct secret **out);

#endif
