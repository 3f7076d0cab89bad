/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The node's half of the G1 token (docs/protocol-g1.md §3.2): the EK PEM and a fresh attestation key
 * with its creation certified by itself, as go-attestation 8820d49b `newAK` makes it (docs/tpm.md §4). */
#include <string.h>

#include <tss2/tss2_mu.h>

#include "tpm_internal.h"

/* Go's pem.EncodeToMemory: header line, base64 in 64-column lines, footer, each ending "\n". */
static char *pem_encode(const char *label, const uint8_t *der, size_t len)
{
    _cleanup_free_ char *b64 = NULL;
    size_t b64_len, cap, off = 0;
    char *pem;

    b64 = base64_encode(der, len, BASE64_STD, &b64_len);
    cap = 2 * strlen(label) + 64 + b64_len + b64_len / 64 + 2;
    pem = xmalloc(cap);
    off += snprintf(pem + off, cap - off, "-----BEGIN %s-----\n", label);
    for (size_t i = 0; i < b64_len; i += 64)
        off += snprintf(pem + off, cap - off, "%.*s\n", (int)(b64_len - i < 64 ? b64_len - i : 64), b64 + i);
    snprintf(pem + off, cap - off, "-----END %s-----\n", label);
    return pem;
}

int tpm_ek_public_pem(struct tpm *t, char **pem, bool *is_cert, struct rsa_pub *ek_out)
{
    _cleanup_free_ uint8_t *der = NULL;
    struct rsa_pub ek;
    size_t der_len;
    int r;

    /* docs/protocol-g1.md §3.2: the certificate when go-attestation's TPM.EKs() returned one, else the SPKI. */
    r = tpm_ek_certificate(t, &der, &der_len, &ek);
    if (r == -ETIMEDOUT)
        return r;
    *is_cert = r == 0;
    if (*is_cert) {
        *pem = pem_encode("CERTIFICATE", der, der_len);
    } else {
        bool from_cert;
        r = tpm_ek_rsa_public(t, &ek, &from_cert);
        if (r < 0)
            return r;
        r = crypto_rsa_spki_pem(&ek, pem);
        if (r < 0)
            return log_error_errno(r, "TPM %s: cannot encode the EK public key", t->desc);
    }
    if (ek_out)
        *ek_out = ek;
    return 0;
}

/* go-attestation defaultSRKTemplate: RSA-2048, SHA-256, FlagStorageDefault|noDA (0x00030472),
 * AES-128-CFB, unique 256 zero bytes (docs/tpm.md §4). */
static void srk_template(TPM2B_PUBLIC *tmpl)
{
    memset(tmpl, 0, sizeof(*tmpl));
    tmpl->publicArea.type = TPM2_ALG_RSA;
    tmpl->publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl->publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                        TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
                                        TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    tpm_rsa_storage_params(&tmpl->publicArea);
    tmpl->publicArea.unique.rsa.size = 256;
}

/* go-attestation akTemplate: RSA-2048, SHA-256, FlagSignerDefault (0x00050072; docs/upstream.md §9.1),
 * RSASSA-SHA256, no symmetric, empty auth. G3's go-attestation adds noDA. */
static void ak_template(TPM2B_PUBLIC *tmpl, enum tpm_ak_kind kind)
{
    memset(tmpl, 0, sizeof(*tmpl));
    tmpl->publicArea.type = TPM2_ALG_RSA;
    tmpl->publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl->publicArea.objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_FIXEDTPM |
                                        TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                        TPMA_OBJECT_USERWITHAUTH;
    if (kind == TPM_AK_G3_NODA)
        tmpl->publicArea.objectAttributes |= TPMA_OBJECT_NODA;
    tmpl->publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    tmpl->publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
    tmpl->publicArea.parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
    tmpl->publicArea.parameters.rsaDetail.keyBits = 2048;
}

/* go-attestation getPrimaryKeyHandle: a key answering ReadPublic at 0x81000001 is assumed to
 * be the SRK; otherwise the SRK is created and persisted there (an upstream side effect, docs/tpm.md §3). */
static int srk_open(struct tpm *t, ESYS_TR *srk)
{
    TPM2B_PUBLIC tmpl;
    int r = tpm_lookup(t, TPM_SRK_HANDLE, "storage root key", srk);

    if (r != -ENOENT)
        return r;
    srk_template(&tmpl);
    return tpm_create_persistent(t, &tmpl, TPM_SRK_HANDLE, "storage root key", srk);
}

/* Marshals *src (tss2-mu type T) into the byte string out; evaluates to the TSS2_RC. */
#define MU_BYTES(T, src, out)                                                  \
    ({                                                                         \
        uint8_t buf_[sizeof(T)];                                               \
        size_t off_ = 0;                                                       \
        TSS2_RC rc_ = Tss2_MU_##T##_Marshal((src), buf_, sizeof(buf_), &off_); \
        if (rc_ == TSS2_RC_SUCCESS)                                            \
            bytes_copy((out), buf_, off_);                                     \
        rc_;                                                                   \
    })

/* TPM2_Create + TPM2_Load under srk, TPM2_CertifyCreation(AK, AK); fills ak->handle and the
 * parameters. The caller frees ak (flushing the handle) on failure. */
static int ak_make(struct tpm *t, ESYS_TR srk, enum tpm_ak_kind kind, struct tpm_ak *ak)
{
    TPM2B_PUBLIC tmpl, *pub = NULL;
    TPM2B_PRIVATE *priv = NULL;
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0}, qualifying = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TPM2B_CREATION_DATA *creation = NULL;
    TPM2B_DIGEST *creation_hash = NULL;
    TPMT_TK_CREATION *ticket = NULL;
    TPM2B_ATTEST *attest = NULL;
    TPMT_SIGNATURE *sig = NULL;
    TPM2B_NAME *name = NULL;
    /* go-attestation passes the AK's own scheme explicitly (SigScheme{RSASSA, SHA256}). */
    const TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_RSASSA, .details.rsassa.hashAlg = TPM2_ALG_SHA256};
    TSS2_RC rc;
    int r = 0;

    ak_template(&tmpl, kind);
    rc = Esys_Create(t->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, &priv,
                     &pub, &creation, &creation_hash, &ticket);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(t, rc, "creating the attestation key");
        goto out;
    }
    rc = Esys_Load(t->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &ak->handle);
    if (rc != TSS2_RC_SUCCESS) {
        ak->handle = ESYS_TR_NONE;
        r = tpm_fail(t, rc, "loading the attestation key");
        goto out;
    }
    rc = Esys_CertifyCreation(t->esys, ak->handle, ak->handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                              &qualifying, creation_hash, &scheme, ticket, &attest, &sig);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(t, rc, "certifying the creation of the attestation key");
        goto out;
    }
    rc = Esys_TR_GetName(t->esys, ak->handle, &name);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(t, rc, "computing the name of the attestation key");
        goto out;
    }
    if (MU_BYTES(TPMT_PUBLIC, &pub->publicArea, &ak->params.public_area) != TSS2_RC_SUCCESS ||
        MU_BYTES(TPMS_CREATION_DATA, &creation->creationData, &ak->params.create_data) != TSS2_RC_SUCCESS ||
        MU_BYTES(TPMT_SIGNATURE, sig, &ak->params.create_signature) != TSS2_RC_SUCCESS) {
        r = log_error_errno(-EPROTO, "TPM %s: cannot encode the attestation key's parameters", t->desc);
        goto out;
    }
    bytes_copy(&ak->params.create_attestation, attest->attestationData, attest->size);
    bytes_copy(&ak->name, name->name, name->size);
out:
    Esys_Free(pub);
    Esys_Free(priv);
    Esys_Free(creation);
    Esys_Free(creation_hash);
    Esys_Free(ticket);
    Esys_Free(attest);
    Esys_Free(sig);
    Esys_Free(name);
    return r;
}

int tpm_ak_create(struct tpm *t, enum tpm_ak_kind kind, struct tpm_ak **out)
{
    _cleanup_tpm_ak_ struct tpm_ak *ak = NULL;
    ESYS_TR srk = ESYS_TR_NONE;
    int r;

    r = srk_open(t, &srk);
    if (r < 0)
        return r;
    ak = xcalloc(1, sizeof(*ak));
    ak->t = t;
    ak->handle = ESYS_TR_NONE;
    r = ak_make(t, srk, kind, ak);
    Esys_TR_Close(t->esys, &srk); /* persistent: forget the ESYS object, keep the key */
    if (r < 0)
        return r;
    *out = TAKE_PTR(ak);
    return 0;
}

const struct ak_params *tpm_ak_params(const struct tpm_ak *ak) { return &ak->params; }
const struct bytes *tpm_ak_name(const struct tpm_ak *ak) { return &ak->name; }

void tpm_ak_free(struct tpm_ak *ak)
{
    if (!ak)
        return;
    tpm_flush(ak->t, ak->handle);
    ak_params_clear(&ak->params);
    bytes_clear(&ak->name);
    free(ak);
}
