/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/kms: the bytes as a KMS manifest file (SealedVolumes, Secrets, Lists),
 * then two properties of what was read: every object written back by our emitter reads back as
 * the same object, and setting quarantined in place keeps every other record (the function
 * checks that itself; a crash or sanitizer report is the failure here). Errors are logged to
 * stderr, so run it with -close_fd_mask=2 (sanitizer reports still show):
 *   ./fuzz_manifest -close_fd_mask=2 -max_total_time=60 tests/fuzz/corpus/manifest */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "kms.h"
#include "kms_internal.h"

/* The emitted text of one object must load as exactly that object. */
static void round_trip(const struct kms_records *one, struct kms_buf *b)
{
    struct kms_records back;

    if (kms_manifest_load_quiet(b->p, b->len, "emitted.yaml", &back) < 0 || !kms_records_equal(one, &back))
        abort();
    kms_records_clear(&back);
    kms_buf_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct kms_records recs;
    char *out = NULL;
    size_t out_len = 0;
    int changed = 0;

    if (kms_manifest_load_quiet(buf, size, "fuzz.yaml", &recs) < 0)
        return 0;
    for (size_t i = 0; i < recs.nvols; i++) {
        struct kms_records one = {.vols = &recs.vols[i], .nvols = 1};
        struct kms_buf b = {0};
        kms_emit_volume(&b, &recs.vols[i]);
        round_trip(&one, &b);
    }
    for (size_t i = 0; i < recs.nsecrets; i++) {
        struct kms_records one = {.secrets = &recs.secrets[i], .nsecrets = 1};
        struct kms_buf b = {0};
        kms_emit_secret(&b, "fuzz", recs.secrets[i].name, recs.secrets[i].ns, &recs.secrets[i].meta, recs.secrets[i].kv,
                        recs.secrets[i].nkv);
        round_trip(&one, &b);
    }
    if (recs.nvols) {
        const struct kms_volume *v = &recs.vols[0];
        if (kms_text_set_quarantine(buf, size, "fuzz.yaml", v->tpm_hash, !v->quarantined, &out, &out_len, &changed) ==
            0) {
            if (!changed || !out)
                abort(); /* the first volume's flag was flipped: something had to change */
            free(out);
        }
    }
    for (size_t i = 0; i < recs.nvols; i++) {
        for (size_t j = 0; j < recs.vols[i].nparts; j++) {
            struct kms_secret_ref ref = {0};
            char *f;
            kms_secret_ref_of(&recs.vols[i], &recs.vols[i].parts[j], &ref);
            f = kms_file_name("secret", ref.name, (unsigned)j);
            if (strchr(f, '/') || f[0] == '.')
                abort(); /* a file name never leaves DIR or hides */
            free(f);
            kms_secret_ref_clear(&ref);
        }
    }
    kms_records_clear(&recs);
    return 0;
}
