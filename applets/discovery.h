/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Internal to the discovery-challenger applet (discovery_challenger.c, discovery_client.c). */
#ifndef KKMS_DISCOVERY_APPLET_H
#define KKMS_DISCOVERY_APPLET_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"

/* What the node asks the KMS for, and how to reach it. */
struct g1_request {
    const char *server;      /* challenger_server: http(s)://host[:port][/path] */
    const char *certificate; /* PEM text or a file holding it; NULL/"" = system roots only */
    const char *tpm_device;  /* NULL = default */
    int64_t tpm_timeout_ms;
    uint32_t c_index;        /* key that decrypts auto-generated passphrases */
    const char *label, *name, *uuid; /* partition headers (§6.1); NULL = "" */
    int64_t timeout_ms;      /* total, retries included */
    bool mdns;               /* find a .local server over mDNS first (UPSTREAM.md §11) */
};

/* The G1 flow of an upstream node (UPSTREAM.md §5.2, §8.1): /getPass; on "No secret found" a
 * passphrase generated here, encrypted by this TPM, posted with /postPass (once), then /getPass
 * again; a "tpm"-generated answer is decrypted by the TPM. Transport failures are retried with
 * backoff until timeout_ms; a certificate that does not verify and a refusal by the KMS are final.
 * Errors are logged; *out is the caller's. -EREMOTEIO: the KMS refused (its reason logged). */
int g1_get_passphrase(const struct g1_request *rq, struct secret **out);

#endif
