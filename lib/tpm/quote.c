/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The PCR quote of the G3 protocol (docs/tpm.md §7): TPM2_Quote of SHA-256
 * bank PCRs with the AK's own RSASSA-SHA256 scheme, then TPM2_PCR_Read of their values. */
#include <string.h>

#include <tss2/tss2_mu.h>

#include "tpm_internal.h"

void tpm_sha256_selection(TPML_PCR_SELECTION *sel, uint32_t mask)
{
    memset(sel, 0, sizeof(*sel));
    sel->count = 1;
    sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel->pcrSelections[0].sizeofSelect = 3;
    for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
        if (mask & (1u << i))
            sel->pcrSelections[0].pcrSelect[i / 8] |= 1u << (i % 8);
}

/* The SHA-256 PCRs a PCR_Read answer selected, in the order its digests come (ascending). */
static uint32_t sha256_mask_of(const TPML_PCR_SELECTION *sel)
{
    uint32_t mask = 0;

    for (uint32_t s = 0; s < sel->count && s < TPM2_NUM_PCR_BANKS; s++) {
        const TPMS_PCR_SELECTION *p = &sel->pcrSelections[s];
        if (p->hash != TPM2_ALG_SHA256)
            continue;
        for (unsigned i = 0; i < TPM_PCR_COUNT && i / 8 < p->sizeofSelect; i++)
            if (p->pcrSelect[i / 8] & (1u << (i % 8)))
                mask |= 1u << i;
    }
    return mask;
}

/* TPM2_PCR_Read may answer part of a selection (at most 8 digests a time); ask again for the
 * rest, as go-attestation readAllPCRs20 does, until every PCR of mask is read. */
int tpm_pcr_read(struct tpm *t, uint32_t mask, uint8_t pcr[TPM_PCR_COUNT][SHA256_LEN])
{
    uint32_t missing = mask;

    for (unsigned round = 0; missing && round < TPM_PCR_COUNT; round++) {
        TPML_PCR_SELECTION sel, *sel_out = NULL;
        TPML_DIGEST *values = NULL;
        uint32_t got, n = 0;
        bool short_answer = false;
        TSS2_RC rc;

        tpm_sha256_selection(&sel, missing);
        rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, NULL, &sel_out, &values);
        if (rc != TSS2_RC_SUCCESS)
            return tpm_fail(t, rc, "reading the SHA-256 PCRs");
        got = sha256_mask_of(sel_out) & missing;
        for (unsigned i = 0; i < TPM_PCR_COUNT && !short_answer; i++) {
            if (!(got & (1u << i)))
                continue;
            short_answer = n >= values->count || values->digests[n].size != SHA256_LEN;
            if (!short_answer)
                memcpy(pcr[i], values->digests[n++].buffer, SHA256_LEN);
        }
        Esys_Free(sel_out);
        Esys_Free(values);
        if (short_answer)
            return log_error_errno(-EPROTO, "TPM %s: TPM2_PCR_Read answered fewer digests than it selected", t->desc);
        if (!got)
            return log_error_errno(-EPROTO,
                                   "TPM %s: TPM2_PCR_Read returned no SHA-256 values "
                                   "(is the SHA-256 PCR bank active?)",
                                   t->desc);
        missing &= ~got;
    }
    return 0;
}

int tpm_quote_pcrs(struct tpm *t, struct tpm_ak *ak, uint32_t pcr_mask, const uint8_t *nonce, size_t nonce_len,
                   struct tpm_quote *out)
{
    /* go-attestation quote20: inScheme NULL, so the TPM signs with the AK's RSASSA-SHA256. */
    const TPMT_SIG_SCHEME null_scheme = {.scheme = TPM2_ALG_NULL};
    TPM2B_DATA qualifying = {0};
    TPML_PCR_SELECTION sel;
    TPM2B_ATTEST *quoted = NULL;
    TPMT_SIGNATURE *sig = NULL;
    uint8_t buf[sizeof(TPMT_SIGNATURE)];
    size_t off = 0;
    TSS2_RC rc;
    int r;

    memset(out, 0, sizeof(*out));
    if (pcr_mask == 0 || pcr_mask >> TPM_PCR_COUNT)
        return log_error_errno(-EINVAL, "PCR quote: select PCRs between 0 and %d", TPM_PCR_COUNT - 1);
    if (nonce_len > TPM_QUOTE_NONCE_MAX || nonce_len > sizeof(qualifying.buffer))
        return log_error_errno(-EINVAL, "PCR quote: a nonce of %zu bytes is too long (at most %d)", nonce_len,
                               TPM_QUOTE_NONCE_MAX);
    qualifying.size = (uint16_t)nonce_len;
    if (nonce_len)
        memcpy(qualifying.buffer, nonce, nonce_len);
    tpm_sha256_selection(&sel, pcr_mask);
    rc = Esys_Quote(t->esys, ak->handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying, &null_scheme, &sel,
                    &quoted, &sig);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "quoting the SHA-256 PCRs");
    rc = Tss2_MU_TPMT_SIGNATURE_Marshal(sig, buf, sizeof(buf), &off);
    if (rc == TSS2_RC_SUCCESS) {
        bytes_copy(&out->attest, quoted->attestationData, quoted->size);
        bytes_copy(&out->signature, buf, off);
    }
    Esys_Free(quoted);
    Esys_Free(sig);
    if (rc != TSS2_RC_SUCCESS)
        return log_error_errno(-EPROTO, "TPM %s: cannot encode the quote's signature", t->desc);
    /* Read after the quote, not atomically with it, as upstream does (docs/tpm.md §7): a PCR extended in
     * between makes the server's digest check fail, never pass wrongly. */
    r = tpm_pcr_read(t, pcr_mask, out->pcr);
    if (r < 0) {
        tpm_quote_clear(out);
        return r;
    }
    out->pcr_mask = pcr_mask;
    return 0;
}

void tpm_quote_clear(struct tpm_quote *q)
{
    free(q->attest.data);
    free(q->signature.data);
    memset(q, 0, sizeof(*q));
}
