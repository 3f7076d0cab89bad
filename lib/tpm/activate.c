/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* TPM2_ActivateCredential as go-attestation 8820d49b `activateCredential` does it
 * (docs/tpm.md §6): the KMS's challenge opens only on the TPM whose EK it was made for, and
 * only for the AK whose Name it binds. */
#include <string.h>

#include "tpm_internal.h"

/* go-attestation getPrimaryKeyHandle(commonEkEquivalentHandle): whatever answers ReadPublic at
 * 0x81010001 is taken for the EK; if nothing does, the EK is created from the default template
 * and persisted there. That persistence is an upstream side effect we keep (docs/tpm.md §3, docs/upstream.md §9.13):
 * it makes later activations fast and matches what an upstream node leaves behind. */
static int ek_open(struct tpm *t, ESYS_TR *ek)
{
    TPM2B_PUBLIC *pub = NULL;
    ESYS_TR transient;
    int r = tpm_lookup(t, TPM_EK_HANDLE, "endorsement key", ek);

    if (r != -ENOENT)
        return r;
    log_info("TPM %s: persisting the endorsement key at 0x%x", t->desc, TPM_EK_HANDLE);
    r = tpm_ek_create(t, &transient, &pub);
    if (r < 0)
        return r;
    Esys_Free(pub);
    return tpm_persist(t, transient, TPM_EK_HANDLE, "endorsement key", ek);
}

/* The EK's authPolicy is PolicySecret(TPM_RH_ENDORSEMENT): a policy session (SHA-256, no salt,
 * no bind, nonceCaller 16 zero bytes as go-attestation sends) that has satisfied it. */
static int ek_policy_session(struct tpm *t, ESYS_TR *session)
{
    const TPM2B_NONCE nonce_caller = {.size = 16};
    const TPMT_SYM_DEF no_symmetric = {.algorithm = TPM2_ALG_NULL};
    TPM2B_NONCE nonce_tpm = {0};
    TPM2B_DIGEST cp_hash = {0};
    TPM2B_NONCE policy_ref = {0};
    TSS2_RC rc;

    rc = Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               &nonce_caller, TPM2_SE_POLICY, &no_symmetric, TPM2_ALG_SHA256, session);
    if (rc != TSS2_RC_SUCCESS) {
        *session = ESYS_TR_NONE;
        return tpm_fail(t, rc, "starting the endorsement policy session");
    }
    rc = Esys_TRSess_SetAttributes(t->esys, *session, TPMA_SESSION_CONTINUESESSION, TPMA_SESSION_CONTINUESESSION);
    if (rc == TSS2_RC_SUCCESS)
        rc = Esys_PolicySecret(t->esys, ESYS_TR_RH_ENDORSEMENT, *session, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                               &nonce_tpm, &cp_hash, &policy_ref, 0, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "TPM2_PolicySecret(endorsement)");
    return 0;
}

/* A wire TPM2B (u16be size || bytes) into the TPM2B the command takes. go-attestation strips
 * the size and lets go-tpm write a new one; we also insist the two agree, so a truncated or
 * padded challenge is named as such instead of failing deep inside the TPM. */
static int wire_tpm2b(const uint8_t *in, size_t len, uint8_t *buf, size_t cap, uint16_t *size)
{
    if (len < 2 || (size_t)(in[0] << 8 | in[1]) != len - 2 || len - 2 > cap)
        return -EBADMSG;
    memcpy(buf, in + 2, len - 2);
    *size = (uint16_t)(len - 2);
    return 0;
}

/* Whether the TPM is out of failure mode: TPM2_GetTestResult is one of the two commands a
 * failed TPM still answers, and it then reports TPM_RC_FAILURE. */
static bool tpm_healthy(struct tpm *t)
{
    TPM2B_MAX_BUFFER *data = NULL;
    TPM2_RC result = TPM2_RC_FAILURE;
    TSS2_RC rc = Esys_GetTestResult(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &data, &result);

    Esys_Free(data);
    return rc == TSS2_RC_SUCCESS && result != TPM2_RC_FAILURE;
}

/* One line that says why ActivateCredential refused (TPM 2.0 Part 3 §12.5): the secret is the
 * EK-encrypted seed (parameter 2), the blob's HMAC binds the AK's Name (parameter 1). A seed
 * encrypted to another EK fails OAEP decoding: TPM_RC_VALUE on the reference TPM, but a bare
 * TPM_RC_FAILURE from libtpms (swtpm; CryptRsaDecrypt), told apart from a broken TPM by asking. */
static int activation_failed(struct tpm *t, TSS2_RC rc)
{
    const char *why = NULL;
    int r = -EACCES;

    if ((tpm_rc_parameter(rc) == 2 && (tpm_rc_is(rc, TPM2_RC_VALUE) || tpm_rc_is(rc, TPM2_RC_SIZE))) ||
        (rc == TPM2_RC_FAILURE && tpm_healthy(t)))
        why = "the credential was not made for this TPM's EK";
    else if (tpm_rc_parameter(rc) == 1 && tpm_rc_is(rc, TPM2_RC_INTEGRITY))
        why = "the credential was not made for this attestation key, or was altered";
    else if (tpm_rc_parameter(rc) == 1 && tpm_rc_is(rc, TPM2_RC_SIZE)) {
        why = "the credential blob is malformed";
        r = -EBADMSG;
    }
    if (!why)
        return tpm_fail(t, rc, "credential activation failed");
    return log_error_errno(r, "TPM %s: credential activation failed: %s", t->desc, why);
}

int tpm_activate_credential(struct tpm *t, struct tpm_ak *ak, const uint8_t *credential, size_t credential_len,
                            const uint8_t *encrypted_secret, size_t encrypted_secret_len, struct secret **secret)
{
    TPM2B_ID_OBJECT blob = {0};
    TPM2B_ENCRYPTED_SECRET seed = {0};
    TPM2B_DIGEST *cert_info = NULL;
    ESYS_TR ek = ESYS_TR_NONE, session = ESYS_TR_NONE;
    TSS2_RC rc;
    int r;

    if (wire_tpm2b(credential, credential_len, blob.credential, sizeof(blob.credential), &blob.size) < 0)
        return log_error_errno(-EBADMSG,
                               "TPM %s: credential activation failed: malformed credential blob "
                               "(%zu bytes)",
                               t->desc, credential_len);
    if (wire_tpm2b(encrypted_secret, encrypted_secret_len, seed.secret, sizeof(seed.secret), &seed.size) < 0)
        return log_error_errno(-EBADMSG,
                               "TPM %s: credential activation failed: malformed encrypted secret "
                               "(%zu bytes)",
                               t->desc, encrypted_secret_len);
    r = ek_open(t, &ek);
    if (r < 0)
        return r;
    r = ek_policy_session(t, &session);
    if (r == 0) {
        rc = Esys_ActivateCredential(t->esys, ak->handle, ek, ESYS_TR_PASSWORD, session, ESYS_TR_NONE, &blob, &seed,
                                     &cert_info);
        r = rc == TSS2_RC_SUCCESS ? 0 : activation_failed(t, rc);
    }
    tpm_flush(t, session);
    Esys_TR_Close(t->esys, &ek); /* persistent: forget the ESYS object, keep the key */
    if (r < 0)
        return r;
    *secret = secret_new_copy(cert_info->buffer, cert_info->size);
    secure_wipe(cert_info, sizeof(*cert_info));
    Esys_Free(cert_info);
    return 0;
}
