/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "tpm_internal.h"

/* The largest NV_Read block this TPM accepts (TPM_PT_NV_BUFFER_MAX); 512 if it will not say. */
static uint16_t nv_buffer_max(struct tpm *t)
{
    TPMS_CAPABILITY_DATA *cap = NULL;
    uint16_t max = 512;

    if (Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                           TPM2_PT_NV_BUFFER_MAX, 1, NULL, &cap) == TSS2_RC_SUCCESS &&
        cap->data.tpmProperties.count == 1 &&
        cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
        cap->data.tpmProperties.tpmProperty[0].value > 0)
        max = cap->data.tpmProperties.tpmProperty[0].value < 1024
                  ? (uint16_t)cap->data.tpmProperties.tpmProperty[0].value
                  : 1024;
    Esys_Free(cap);
    return max;
}

int tpm_nv_read(struct tpm *t, uint32_t index, uint8_t **data, size_t *len)
{
    ESYS_TR tr = ESYS_TR_NONE;
    TPM2B_NV_PUBLIC *pub = NULL;
    uint8_t *buf = NULL;
    uint16_t size, block;
    TSS2_RC rc;
    int r = 0;

    r = tpm_lookup(t, index, "NV index", &tr);
    if (r < 0)
        return r;
    rc = Esys_NV_ReadPublic(t->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(t, rc, "reading the public area of NV index 0x%x", index);
        goto out;
    }
    size = pub->nvPublic.dataSize;
    block = nv_buffer_max(t);
    buf = xmalloc(size ? size : 1);
    for (uint16_t off = 0; off < size;) {
        TPM2B_MAX_NV_BUFFER *chunk = NULL;
        uint16_t want = size - off < block ? size - off : block;
        rc = Esys_NV_Read(t->esys, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, want, off,
                          &chunk);
        if (rc != TSS2_RC_SUCCESS) {
            r = tpm_fail(t, rc, "reading NV index 0x%x", index);
            goto out;
        }
        if (chunk->size != want) {
            Esys_Free(chunk);
            r = log_error_errno(-EIO, "TPM %s: NV index 0x%x: short read", t->desc, index);
            goto out;
        }
        memcpy(buf + off, chunk->buffer, want);
        Esys_Free(chunk);
        off += want;
    }
    *data = TAKE_PTR(buf);
    *len = size;
out:
    free(buf);
    Esys_Free(pub);
    Esys_TR_Close(t->esys, &tr);
    return r;
}

int tpm_nv_define_write(struct tpm *t, uint32_t index, const uint8_t *data, size_t len)
{
    TPM2B_AUTH auth = {0};
    TPM2B_NV_PUBLIC info = {0};
    ESYS_TR tr = ESYS_TR_NONE;
    uint16_t block;
    TSS2_RC rc;
    int r = 0;

    if (len == 0 || len > UINT16_MAX)
        return -EINVAL;
    /* go-tpm v0.3.3 NVDefineSpace + tpmk: SHA-1 name, OWNERWRITE|PPREAD|OWNERREAD|AUTHREAD
     * (docs/tpm.md §5 and docs/upstream.md §9.2), so an upstream node reads what we write and the reverse. */
    info.nvPublic.nvIndex = index;
    info.nvPublic.nameAlg = TPM2_ALG_SHA1;
    info.nvPublic.attributes = TPMA_NV_OWNERWRITE | TPMA_NV_PPREAD | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD;
    info.nvPublic.dataSize = (uint16_t)len;
    rc =
        Esys_NV_DefineSpace(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &auth, &info, &tr);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "defining NV index 0x%x", index);
    block = nv_buffer_max(t);
    for (size_t off = 0; off < len && r == 0;) {
        TPM2B_MAX_NV_BUFFER chunk = {0};
        size_t want = len - off < block ? len - off : block;
        if (want > sizeof(chunk.buffer))
            want = sizeof(chunk.buffer);
        chunk.size = (uint16_t)want;
        memcpy(chunk.buffer, data + off, want);
        rc = Esys_NV_Write(t->esys, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &chunk,
                           (uint16_t)off);
        if (rc != TSS2_RC_SUCCESS)
            r = tpm_fail(t, rc, "writing NV index 0x%x", index);
        off += want;
    }
    if (r < 0) /* never leave a half-written index behind */
        (void)Esys_NV_UndefineSpace(t->esys, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
    else
        Esys_TR_Close(t->esys, &tr);
    return r;
}

int tpm_nv_undefine(struct tpm *t, uint32_t index)
{
    ESYS_TR tr = ESYS_TR_NONE;
    TSS2_RC rc;
    int r = tpm_lookup(t, index, "NV index", &tr);

    if (r < 0)
        return r;
    rc = Esys_NV_UndefineSpace(t->esys, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) {
        Esys_TR_Close(t->esys, &tr);
        return tpm_fail(t, rc, "removing NV index 0x%x", index);
    }
    return 0;
}
