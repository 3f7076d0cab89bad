/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/kms's decisions in G1's words: upstream's exact error strings (kairos-io/kcrypt-challenger
 * pkg/challenger/challenger.go, getPass and postPass handlers) where upstream has one; a node
 * acts on "No secret found for" (cmd/discovery/client/client.go waitPass). */
#include <stdio.h>
#include <string.h>

#include "g1.h"

#define NO_SECRET_PREFIX "No secret found for "

void g1_words(bool post, const struct kms_reply *r, char *buf, size_t len)
{
    const struct kms_detail *d = &r->detail;

    switch (r->code) {
    case KMS_C_NO_VOLUME:
        if (post)
            snprintf(buf, len, "no TPM Hash found for %s", d->hash);
        else
            snprintf(buf, len, "no volume found with data from request and hash: %s", d->hash);
        return;
    case KMS_C_NO_SECRET: snprintf(buf, len, NO_SECRET_PREFIX "%s and %s", d->hash, d->label); return;
    case KMS_C_NO_KEY: snprintf(buf, len, "passphrase not found in secret at key: %s", d->key); return;
    case KMS_C_QUARANTINED: snprintf(buf, len, "quarantined: %s", d->label); return;
    case KMS_C_CONFLICT:
        snprintf(buf, len, "%s %s is defined more than once on the server",
                 d->object_is_secret ? "Secret" : "SealedVolume", d->object);
        return;
    case KMS_C_EXISTS:
        snprintf(buf, len, "secret %s already exists; the posted passphrase was ignored", d->object);
        return;
    default: snprintf(buf, len, "%s", r->error[0] ? r->error : kms_code_name(r->code)); return;
    }
}

enum g1_error_kind g1_error_kind(const char *text)
{
    /* Upstream's text starts the message; nothing else a KMS sends does. */
    if (text && !strncmp(text, NO_SECRET_PREFIX, strlen(NO_SECRET_PREFIX)))
        return G1_ERR_NO_SECRET;
    return G1_ERR_OTHER;
}
