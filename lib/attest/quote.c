/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* PCR quote verification for G3 (docs/protocol-g3.md §3, verification steps 2-4). Where upstream is
 * loose we are exact, in ways an honest TPM always satisfies: the signature uses the AK's own
 * scheme and hash (upstream hashes with SHA-256 whatever the scheme), the magic is checked, only
 * the SHA-256 bank is accepted, and the caller may require its nonce in extraData. */
#include <string.h>

#include "attest_internal.h"

#define PCR_VALUE_LEN 32 /* SHA-256 bank */
#define PCR_MAX 32       /* ATTEST_PCR_SELECT_MAX bytes of bitmap */

/* The PCRs the quote covers, as a bitmap of the one non-empty (SHA-256) selection. */
static int quoted_pcrs(const struct attest_pcr_selection *sel, uint32_t *mask, char *why)
{
    int banks = 0;

    *mask = 0;
    for (uint32_t i = 0; i < sel->count; i++) {
        uint32_t m = 0;
        for (unsigned b = 0; b < sel->bank[i].size; b++)
            m |= (uint32_t)sel->bank[i].select[b] << (8 * b);
        if (m == 0)
            continue;
        if (sel->bank[i].hash != ATTEST_ALG_SHA256)
            return attest_fail(why, -EOPNOTSUPP,
                               "PCR quote selects PCRs of bank 0x%04x; only SHA-256 values are checked",
                               sel->bank[i].hash);
        if (++banks > 1)
            return attest_fail(why, -EBADMSG, "PCR quote selects the SHA-256 bank twice");
        *mask = m;
    }
    if (*mask == 0)
        return attest_fail(why, -EPERM, "PCR quote selects no PCR");
    return 0;
}

int attest_verify_quote(struct bytes ak_public, struct bytes quote, struct bytes signature,
                        const struct attest_pcr_value *pcrs, size_t n_pcrs, const struct bytes *nonce, char *why)
{
    const struct attest_pcr_value *by_index[PCR_MAX] = {0};
    uint8_t values[PCR_MAX * PCR_VALUE_LEN], digest[CRYPTO_HASH_MAX];
    struct attest_public pub;
    struct attest_signature sig;
    struct attest_attestation att;
    struct decode_error de = {0};
    uint32_t quoted, given = 0;
    size_t n_values = 0;
    enum crypto_hash h;
    int r;

    r = decode_public(ak_public.data, ak_public.len, &pub, &de);
    if (r < 0)
        return attest_fail_decode(why, r, "AK Public", &de);
    r = decode_signature(signature.data, signature.len, &sig, &de);
    if (r < 0)
        return attest_fail_decode(why, r, "PCR quote signature", &de);
    r = attest_verify_signature(&pub, &sig, quote.data, quote.len, "PCR quote", why);
    if (r < 0)
        return r;

    r = decode_attestation(quote.data, quote.len, &att, &de);
    if (r < 0)
        return attest_fail_decode(why, r, "PCR quote", &de);
    if (att.type != ATTEST_ST_ATTEST_QUOTE)
        return attest_fail(why, -EPERM, "PCR quote is of type 0x%04x, not a quote", att.type);
    if (att.magic != ATTEST_GENERATED_MAGIC)
        return attest_fail(why, -EPERM, "PCR quote was not produced by a TPM (magic 0x%08x)", att.magic);
    if (nonce && (att.extra_data.len != nonce->len || memcmp(att.extra_data.data, nonce->data, nonce->len) != 0))
        return attest_fail(why, -EPERM, "PCR quote does not carry the server's nonce");

    r = quoted_pcrs(&att.pcr_select, &quoted, why);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n_pcrs; i++) {
        if (pcrs[i].index >= PCR_MAX || by_index[pcrs[i].index])
            return attest_fail(why, -EINVAL, "PCR value %u is out of range or given twice", pcrs[i].index);
        if (pcrs[i].digest.len != PCR_VALUE_LEN)
            return attest_fail(why, -EINVAL, "PCR %u value has %zu bytes, not %d", pcrs[i].index, pcrs[i].digest.len,
                               PCR_VALUE_LEN);
        by_index[pcrs[i].index] = &pcrs[i];
        given |= 1u << pcrs[i].index;
    }
    if (given != quoted)
        return attest_fail(why, -EPERM, "PCR values given for PCR set 0x%08x, but the quote covers 0x%08x", given,
                           quoted);

    /* The TPM digests the selected PCRs in ascending order with the signing scheme's hash. */
    for (unsigned i = 0; i < PCR_MAX; i++)
        if (by_index[i]) {
            memcpy(values + n_values, by_index[i]->digest.data, PCR_VALUE_LEN);
            n_values += PCR_VALUE_LEN;
        }
    h = attest_hash_of(sig.hash); /* known: the signature verified with it */
    r = crypto_hash(h, values, n_values, digest);
    if (r < 0)
        return attest_fail(why, r, "cannot hash the PCR values");
    if (att.pcr_digest.len != crypto_hash_len(h) || memcmp(att.pcr_digest.data, digest, att.pcr_digest.len) != 0)
        return attest_fail(why, -EPERM, "PCR values do not match the quote's pcrDigest");
    return 0;
}
