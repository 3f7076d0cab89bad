/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/kms metrics: counters and a histogram of the KMS's exchanges, rendered with the store's
 * record counts in Prometheus' text exposition format (version 0.0.4). Label values come from
 * fixed sets (protocol, endpoint, outcome): never a TPM hash, a name or a secret. Safe to share
 * between threads. */
#ifndef KKMS_KMS_METRICS_H
#define KKMS_KMS_METRICS_H

#include <stddef.h>

#include "kms.h"

struct kms_metrics;

/* A new, zeroed set, shared with processes forked afterwards; *out owned by the caller
 * (kms_metrics_free). */
int kms_metrics_new(struct kms_metrics **out);
void kms_metrics_free(struct kms_metrics *m);

/* One decision on a node's exchange (what the audit log records): endpoint is the audit action
 * ("getPass", "postPass", "tpm-attestation"); other actions are not counted. */
void kms_metrics_count(struct kms_metrics *m, const char *endpoint, enum kms_outcome outcome);
/* The server's own time for one finished exchange on path ("/getPass", ...): the time spent in
 * its handlers, without the time spent waiting for the node. Other paths are not observed. */
void kms_metrics_observe(struct kms_metrics *m, const char *path, double seconds);

/* One finished TLS handshake of a node's connection: resumed from a session ticket, or full. */
void kms_metrics_tls_handshake(struct kms_metrics *m, bool resumed);

/* The exposition text: build info, exchanges by protocol/endpoint/outcome, the server-time
 * histogram, open_conns, and the store's records, invalid files, reload errors and readiness.
 * *out is malloc'd, NUL-terminated, owned by the caller. */
int kms_metrics_render(struct kms_metrics *m, struct kms_store *store, size_t open_conns, char **out, size_t *len);

/* Counts every audited exchange decision of a into m (NULL stops); m must outlive a. */
void kms_audit_set_metrics(struct kms_audit *a, struct kms_metrics *m);

/* What the store holds now (no rescan). */
struct kms_store_stats {
    size_t volumes, secrets, quarantined, pending;
    size_t invalid_files;   /* manifest files not loaded (or not in their newest version) */
    uint64_t reload_errors; /* rescans that could not list DIR, since start */
    bool ready;
};
void kms_store_stats(struct kms_store *s, struct kms_store_stats *out);

#endif
