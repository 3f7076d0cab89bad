/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the systemd-tpm2 token reader that kcrypt unlock runs on every token of a LUKS2
 * header (whoever can write the disk writes the token). A token that parses is written back and
 * must parse again to the same values. */
#include <stdint.h>
#include <string.h>

#include "luks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct luks_tpm2_token t = {0}, u = {0};
    char *json = NULL;

    if (luks_tpm2_token_parse("fuzz", (const char *)data, size, &t) == 0) {
        if (luks_tpm2_token_format(&t, &json) != 0)
            __builtin_trap();
        if (luks_tpm2_token_parse("fuzz", json, strlen(json), &u) != 0 || u.keyslot != t.keyslot ||
            u.pcr_mask != t.pcr_mask || u.pin != t.pin || u.primary_rsa != t.primary_rsa || u.blob_len != t.blob_len ||
            memcmp(u.blob, t.blob, t.blob_len) || memcmp(u.policy, t.policy, sizeof(t.policy)))
            __builtin_trap();
        free(json);
    }
    (void)luks_recovery_key_valid(data, size);
    luks_tpm2_token_clear(&t);
    luks_tpm2_token_clear(&u);
    return 0;
}
