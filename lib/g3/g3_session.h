/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/g3: the sessions of upstream's G3 protocol (/tpm-attestation, kairos-io/kairos
 * kcrypt/pkg/attestation, kcrypt/pkg/challenger), both halves, and the node's flow over both
 * generations (G3 first, G1 when the KMS has no /tpm-attestation).
 *
 * KMS: init -> challenge (a credential for the EK and AK, and our nonce) -> proof (the
 * activated secret, a PCR quote, and our node's escrowed passphrase) -> response. The crypto is
 * checked here (lib/attest); the enrollment decision is lib/kms's (kms_attest). */
#ifndef KKMS_G3_SESSION_H
#define KKMS_G3_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "g1.h"
#include "kms.h"
#include "net.h"

/* ---- KMS side ---- */

enum g3_enroll {
    G3_ENROLL_REGISTERED, /* only TPMs with a SealedVolume (default); others recorded as pending */
    G3_ENROLL_TOFU,       /* upstream: any TPM is enrolled at its first contact */
};

struct g3_server {
    struct kms_store *store;
    struct kms_audit *audit;
    int64_t exchange_timeout_ms;
    enum g3_enroll enroll;
    bool require_fresh_quotes;   /* refuse quotes without our nonce (upstream nodes send none) */
    struct kms_metrics *metrics; /* server time per exchange; NULL = none */
};

/* The handler of /tpm-attestation, data = srv. */
void g3_server_handler(struct g3_server *srv, struct net_handler *h);

/* The text a G3 node receives in {"error":..} for a refusal lib/kms decided: upstream's words
 * (IssuePassphrase's errors wrapped as handleTPMAttestation does) where it has them. */
void g3_words(const struct kms_reply *r, char *buf, size_t len);

/* The whole KMS listener (`challenger`): options as the applet parsed them. */
struct g3_serve_opts {
    const char *listen_addr; /* numeric address, NULL = all */
    uint16_t port;           /* default 8082, as upstream's --challenger-bind-address */
    const char *tls_cert, *tls_key;
    int64_t exchange_timeout_ms;    /* one exchange, G1 or G3 */
    const char *port_file;          /* write the bound port here once listening (tests, --listen :0) */
    size_t max_conns;               /* open connections in all (0 = lib/net's default, 1024) */
    size_t max_conns_per_peer;      /* open connections from one address (0 = default, 32) */
    const char *ek_ca;              /* --ek-ca FILE|DIR: EK certificates must chain to these CAs */
    bool enroll_tofu;               /* --enroll tofu: G3 enrolls unknown TPMs (upstream); else registered only */
    bool require_fresh_quotes;      /* --require-fresh-quotes: G3 quotes must carry our nonce */
    const char *announce;           /* --announce NAME: answer mDNS for NAME (_kcrypt._tcp) from this process */
    const char *announce_ifaces[8]; /* --announce-interface: where; none = every multicast interface */
    size_t n_announce_ifaces;
    const char *metrics_listen; /* --metrics-listen ADDR:PORT: /metrics there, not on the node port */
    const char *metrics_addr;   /* ... its address (numeric, NULL = all) */
    uint16_t metrics_port;      /* ... and port, as the applet parsed them */
    unsigned workers;           /* --workers N: processes serving the listener (0, 1: this one) */
};
#define G3_MAX_WORKERS 64

/* Keeps a group of every malloc size class alive (musl would map and unmap pages on every
 * exchange, and for every file of a big store). Called by g3_serve; call it earlier to load the
 * store with it too. */
void g3_keep_malloc_warm(void);
/* Serves /getPass, /postPass (G1), /tpm-attestation (G3), /healthz, /readyz and /metrics (or
 * /metrics on --metrics-listen), announces itself over mDNS with --announce, until SIGTERM/SIGINT
 * (then says goodbye over mDNS and drains). Returns the exit code. */
int g3_serve(struct kms_store *store, struct kms_audit *audit, const struct g3_serve_opts *o);

/* ---- node side ---- */

enum g3_protocol { G3_PROTO_AUTO, G3_PROTO_G1, G3_PROTO_G3 };

/* What the node asks; the G1 fields plus the G3 choices. */
struct g3_request {
    struct g1_request base;
    enum g3_protocol protocol; /* auto: /tpm-attestation first, G1 when it answers 404 */
    uint32_t pcr_mask;         /* PCRs to quote; 0 = 0, 7, 11 (upstream's list) */
    bool defer_pcr_enrollment; /* the node runs from a live medium */
    bool escrow;               /* offer a passphrase generated here, encrypted to the TPM key */
};

/* The node's flow: one transient AK for the whole call; G3 (and/or G1) attempts, mDNS, TLS,
 * retries with backoff (1, 2, 4, 8 s) within timeout_ms, every KMS found over mDNS in turn. A KMS's refusal is final (-EREMOTEIO, its
 * text logged). *out is the passphrase (already decrypted when the KMS returned our escrow). */
int g3_get_passphrase(const struct g3_request *rq, struct secret **out);

/* Whether this system booted from a live medium, as upstream decides (kairos-sdk state
 * detection): /proc/cmdline holds a `live:LABEL`/`live:CDLABEL` root or `netboot`. cmdline NULL:
 * /proc/cmdline is read. */
bool g3_booted_live(const char *cmdline);

/* "0,7,11" -> mask. -EINVAL (logged, naming what) for anything else than indices 0..23. */
int g3_parse_pcrs(const char *what, const char *s, uint32_t *mask);

#endif
