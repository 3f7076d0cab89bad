/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/g1 and lib/g3 without a network: lib/kms's outcome codes in each protocol's words
 * (upstream's exact texts), how a node reads a G1 error, live-medium detection and PCR lists. */
#include <string.h>

#include "g3_session.h"
#include "tap.h"

static struct kms_reply reply_of(enum kms_code c)
{
    struct kms_reply r = {.code = c, .outcome = c == KMS_C_OK ? KMS_OK : KMS_REFUSED};
    snprintf(r.detail.hash, sizeof(r.detail.hash), "%064d", 0);
    snprintf(r.detail.label, sizeof(r.detail.label), "COS_PERSISTENT");
    snprintf(r.detail.key, sizeof(r.detail.key), "pass");
    snprintf(r.detail.object, sizeof(r.detail.object), "mysecret");
    r.detail.pcr = 7;
    snprintf(r.detail.expected, sizeof(r.detail.expected), "aa");
    snprintf(r.detail.got, sizeof(r.detail.got), "bb");
    snprintf(r.error, sizeof(r.error), "the KMS's own words");
    return r;
}

static bool g1_says(enum kms_code c, bool post, const char *want)
{
    struct kms_reply r = reply_of(c);
    char buf[600];
    g1_words(post, &r, buf, sizeof(buf));
    if (strcmp(buf, want))
        printf("# g1_words(%s) = %s\n", kms_code_name(c), buf);
    return !strcmp(buf, want);
}

static bool g3_says(enum kms_code c, const char *want)
{
    struct kms_reply r = reply_of(c);
    char buf[600];
    g3_words(&r, buf, sizeof(buf));
    if (strcmp(buf, want))
        printf("# g3_words(%s) = %s\n", kms_code_name(c), buf);
    return !strcmp(buf, want);
}

#define Z64 "0000000000000000000000000000000000000000000000000000000000000000"

int main(void)
{
    uint32_t m = 0;

    CHECK(g1_says(KMS_C_NO_VOLUME, false, "no volume found with data from request and hash: " Z64) &&
              g1_says(KMS_C_NO_VOLUME, true, "no TPM Hash found for " Z64) &&
              g1_says(KMS_C_NO_SECRET, false, "No secret found for " Z64 " and COS_PERSISTENT") &&
              g1_says(KMS_C_NO_KEY, false, "passphrase not found in secret at key: pass") &&
              g1_says(KMS_C_QUARANTINED, false, "quarantined: COS_PERSISTENT"),
          "G1: upstream kcrypt-challenger's texts for each code");
    CHECK(g1_says(KMS_C_FORBIDDEN, false, "the KMS's own words"), "G1: codes upstream has no text for keep ours");
    CHECK(g1_error_kind("No secret found for " Z64 " and COS_PERSISTENT") == G1_ERR_NO_SECRET &&
              g1_error_kind("quarantined: No secret found for") == G1_ERR_OTHER && g1_error_kind(NULL) == G1_ERR_OTHER,
          "G1 node: only an error that starts with upstream's text means auto-generated keys");
    CHECK(g3_says(KMS_C_PCR_MISMATCH, "Attestation verification failed: attestation verification failed: PCR "
                                      "verification failed: PCR7 changed - boot state verification failed: "
                                      "expected aa, got bb") &&
              g3_says(KMS_C_PCR_MISSING, "Attestation verification failed: attestation verification failed: PCR "
                                         "verification failed: PCR7 mismatch: expected aa, but not provided in current "
                                         "values") &&
              g3_says(KMS_C_EK_MISMATCH, "Attestation verification failed: attestation verification failed: EK "
                                         "verification failed: EK public key does not match enrolled key - potential "
                                         "TPM impersonation") &&
              g3_says(KMS_C_QUARANTINED, "Attestation verification failed: TPM is quarantined") &&
              g3_says(KMS_C_NO_KEY, "Attestation verification failed: passphrase not found in secret at key: pass"),
          "G3: upstream's texts, wrapped as handleTPMAttestation does");
    CHECK(g3_says(KMS_C_NOT_ENROLLED, "Attestation verification failed: the KMS's own words"),
          "G3: our refusals wrapped the same way");

    CHECK(g3_booted_live("BOOT_IMAGE=/boot/vmlinuz root=live:CDLABEL=COS_LIVE rd.live.dir=/ quiet") &&
              g3_booted_live("root=live:LABEL=KAIROS") && g3_booted_live("console=ttyS0 netboot") &&
              g3_booted_live("netboot=1"),
          "live medium: root=live:LABEL/CDLABEL or netboot on the command line");
    CHECK(!g3_booted_live("BOOT_IMAGE=/boot/vmlinuz root=LABEL=COS_ACTIVE") && !g3_booted_live("") &&
              !g3_booted_live("rd.live.image=0 root=/dev/sda2"),
          "an installed system is not a live medium");
    CHECK(g3_parse_pcrs("t", "0,7,11", &m) == 0 && m == ((1u << 0) | (1u << 7) | (1u << 11)) &&
              g3_parse_pcrs("t", "23", &m) == 0 && m == 1u << 23,
          "PCR lists");
    CHECK(g3_parse_pcrs("t", "24", &m) < 0 && g3_parse_pcrs("t", "7,x", &m) < 0 && g3_parse_pcrs("t", "", &m) < 0 &&
              g3_parse_pcrs("t", ",", &m) < 0,
          "PCR lists: out of range, not a number, empty: refused");
    return tap_done();
}
