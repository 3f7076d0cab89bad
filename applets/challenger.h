/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Internal to the challenger applet (challenger.c, challenger_server.c). */
#ifndef KKMS_CHALLENGER_APPLET_H
#define KKMS_CHALLENGER_APPLET_H

#include <stdint.h>

#include "kms.h"

struct challenger_server_opts {
    const char *listen_addr; /* numeric address, NULL = all */
    uint16_t port;           /* default 8082, as upstream's --challenger-bind-address */
    const char *tls_cert, *tls_key;
    int64_t exchange_timeout_ms; /* one /getPass or /postPass exchange */
    const char *port_file;   /* write the bound port here once listening (tests, --listen :0) */
    size_t max_conns;          /* open connections in all (0 = lib/net's default, 1024) */
    size_t max_conns_per_peer; /* open connections from one address (0 = default, 32) */
    const char *ek_ca;       /* --ek-ca FILE|DIR: EK certificates must chain to these CAs */
    bool enroll_tofu;        /* --enroll tofu: G3 enrolls unknown TPMs (upstream); else registered only */
    bool require_fresh_quotes; /* --require-fresh-quotes: G3 quotes must carry our nonce */
};

/* Serves /getPass, /postPass (G1), /tpm-attestation (G3), /healthz and /readyz until
 * SIGTERM/SIGINT (then drains). Returns the exit code. */
int challenger_serve(struct kms_store *store, struct kms_audit *audit, const struct challenger_server_opts *o);

#endif
