/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The persistent RSA-2048 key at c_index (default 0x81000008) that encrypts the offline NV
 * passphrase and the auto-generated passphrases escrowed with the KMS (docs/tpm.md §5, docs/protocol-g1.md §6.1). */
#include <string.h>

#include "tpm_internal.h"

/* Whether a persistent handle exists, asked with GetCapability(handles) as tpm-helpers does
 * (docs/upstream.md §9.13). */
static int persistent_exists(struct tpm *t, uint32_t handle, bool *exists)
{
    TPMS_CAPABILITY_DATA *cap = NULL;
    TSS2_RC rc =
        Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, handle, 1, NULL, &cap);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "listing persistent handles");
    *exists = cap->data.handles.count == 1 && cap->data.handles.handle[0] == handle;
    Esys_Free(cap);
    return 0;
}

/* tpmk's key template (docs/tpm.md §5 and docs/upstream.md §9): `tpm2_createprimary --template-data` gives
 * 0001000b000600600000001000100800000000000000 — RSA, SHA-256, sign|decrypt|userWithAuth|
 * sensitiveDataOrigin, no policy, no symmetric, no scheme, 2048 bits, exponent 0, empty unique. */
static void rsa_key_template(TPM2B_PUBLIC *tmpl)
{
    memset(tmpl, 0, sizeof(*tmpl));
    tmpl->publicArea.type = TPM2_ALG_RSA;
    tmpl->publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl->publicArea.objectAttributes =
        TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SENSITIVEDATAORIGIN;
    tmpl->publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    tmpl->publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    tmpl->publicArea.parameters.rsaDetail.keyBits = 2048;
}

int tpm_rsa_key_ensure(struct tpm *t, uint32_t c_index)
{
    TPM2B_PUBLIC tmpl;
    bool exists = false;
    int r;

    if ((c_index & 0xff000000) != 0x81000000)
        return log_error_errno(-EINVAL, "c_index 0x%x is not a persistent handle (0x81xxxxxx)", c_index);
    r = persistent_exists(t, c_index, &exists);
    if (r < 0 || exists)
        return r;
    rsa_key_template(&tmpl);
    return tpm_create_persistent(t, &tmpl, c_index, "RSA key", NULL);
}

/* Loads the ESYS object of a persistent key, or logs why it cannot. */
static int load_key(struct tpm *t, uint32_t c_index, ESYS_TR *key)
{
    int r = tpm_lookup(t, c_index, "RSA key", key);
    if (r == -ENOENT)
        return log_error_errno(r, "TPM %s: there is no RSA key at 0x%x (wrong c_index?)", t->desc, c_index);
    return r;
}

static const TPMT_RSA_DECRYPT oaep_sha256 = {.scheme = TPM2_ALG_OAEP, .details.oaep.hashAlg = TPM2_ALG_SHA256};

int tpm_rsa_encrypt(struct tpm *t, uint32_t c_index, const struct secret *plain, uint8_t **blob, size_t *blob_len)
{
    TPM2B_PUBLIC_KEY_RSA msg = {0}, *out = NULL;
    TPM2B_DATA label = {0}; /* OAEP with an empty label (docs/tpm.md §5) */
    ESYS_TR key;
    TSS2_RC rc;
    int r;

    if (plain->len > sizeof(msg.buffer))
        return -EMSGSIZE;
    r = load_key(t, c_index, &key);
    if (r < 0)
        return r;
    msg.size = (uint16_t)plain->len;
    memcpy(msg.buffer, plain->data, plain->len);
    rc = Esys_RSA_Encrypt(t->esys, key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &msg, &oaep_sha256, &label, &out);
    secure_wipe(&msg, sizeof(msg));
    Esys_TR_Close(t->esys, &key);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "encrypting with the RSA key at 0x%x", c_index);
    *blob = xmalloc(out->size);
    memcpy(*blob, out->buffer, out->size);
    *blob_len = out->size;
    Esys_Free(out);
    return 0;
}

int tpm_rsa_decrypt(struct tpm *t, uint32_t c_index, const uint8_t *blob, size_t blob_len, struct secret **plain)
{
    TPM2B_PUBLIC_KEY_RSA cipher = {0}, *out = NULL;
    TPM2B_DATA label = {0};
    ESYS_TR key;
    TSS2_RC rc;
    int r;

    if (blob_len == 0 || blob_len > sizeof(cipher.buffer))
        return log_error_errno(-EINVAL, "TPM %s: a ciphertext of %zu bytes cannot come from the RSA key at 0x%x",
                               t->desc, blob_len, c_index);
    r = load_key(t, c_index, &key);
    if (r < 0)
        return r;
    cipher.size = (uint16_t)blob_len;
    memcpy(cipher.buffer, blob, blob_len);
    rc = Esys_RSA_Decrypt(t->esys, key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &cipher, &oaep_sha256, &label,
                          &out);
    Esys_TR_Close(t->esys, &key);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "decrypting with the RSA key at 0x%x (wrong key or damaged data?)", c_index);
    *plain = secret_new_copy(out->buffer, out->size);
    secure_wipe(out, sizeof(*out));
    Esys_Free(out);
    return 0;
}
