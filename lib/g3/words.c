/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/kms's decisions in G3's words: upstream's texts (kairos-io/kairos
 * kcrypt/pkg/challenger/challenger.go verifyAttestation and IssuePassphrase, wrapped as
 * handleTPMAttestation does), so logs and scripts written for upstream read the same. */
#include <stdio.h>
#include <string.h>

#include "g3_session.h"

#define PREFIX "Attestation verification failed: "

void g3_words(const struct kms_reply *r, char *buf, size_t len)
{
    const struct kms_detail *d = &r->detail;

    switch (r->code) {
    case KMS_C_QUARANTINED: snprintf(buf, len, PREFIX "TPM is quarantined"); return;
    case KMS_C_EK_MISMATCH:
        snprintf(buf, len,
                 PREFIX "attestation verification failed: EK verification failed: EK public key does not match "
                        "enrolled key - potential TPM impersonation");
        return;
    case KMS_C_PCR_MISMATCH:
        snprintf(buf, len,
                 PREFIX "attestation verification failed: PCR verification failed: PCR%u changed - boot state "
                        "verification failed: expected %s, got %s",
                 d->pcr, d->expected, d->got);
        return;
    case KMS_C_PCR_MISSING:
        snprintf(buf, len,
                 PREFIX "attestation verification failed: PCR verification failed: PCR%u mismatch: expected %s, but "
                        "not provided in current values",
                 d->pcr, d->expected);
        return;
    case KMS_C_NO_KEY: snprintf(buf, len, PREFIX "passphrase not found in secret at key: %s", d->key); return;
    case KMS_C_NO_SECRET: snprintf(buf, len, PREFIX "retrieving secret: secret %s not found", d->object); return;
    case KMS_C_CONFLICT:
        snprintf(buf, len, PREFIX "%s %s is defined more than once on the server",
                 d->object_is_secret ? "Secret" : "SealedVolume", d->object);
        return;
    default: snprintf(buf, len, PREFIX "%s", r->error[0] ? r->error : kms_code_name(r->code)); return;
    }
}
