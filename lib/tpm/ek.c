/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The endorsement key and the TPM hash, as go-attestation's TPM.EKs() picks them
 * (docs/tpm.md §2). */
#include <string.h>

#include "tpm_internal.h"

/* Default EK template of the TCG EK Credential Profile (template L-1), docs/tpm.md §2. */
static const uint8_t ek_auth_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
    0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA,
};

static void ek_template(TPM2B_PUBLIC *tmpl)
{
    memset(tmpl, 0, sizeof(*tmpl));
    tmpl->publicArea.type = TPM2_ALG_RSA;
    tmpl->publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl->publicArea.objectAttributes = 0x000300B2; /* fixedTPM fixedParent sensitiveDataOrigin
                                                       adminWithPolicy restricted decrypt */
    tmpl->publicArea.authPolicy.size = sizeof(ek_auth_policy);
    memcpy(tmpl->publicArea.authPolicy.buffer, ek_auth_policy, sizeof(ek_auth_policy));
    tpm_rsa_storage_params(&tmpl->publicArea);
    tmpl->publicArea.parameters.rsaDetail.exponent = 0;
    tmpl->publicArea.unique.rsa.size = 256;
}

/* Length of the DER TLV at the start of buf (tag, length, contents), or 0 if it is not one
 * that fits in len. Only definite lengths of up to 4 bytes: a certificate is never larger. */
static size_t der_tlv_len(const uint8_t *buf, size_t len)
{
    size_t hdr = 2, body = 0;

    if (len < 2)
        return 0;
    if (buf[1] < 0x80) {
        body = buf[1];
    } else {
        size_t n = buf[1] & 0x7f;
        if (n == 0 || n > 4 || len < 2 + n)
            return 0;
        for (size_t i = 0; i < n; i++)
            body = body << 8 | buf[2 + i];
        hdr += n;
    }
    return body <= len - hdr ? hdr + body : 0;
}

int tpm_ek_certificate(struct tpm *t, uint8_t **der, size_t *der_len, struct rsa_pub *ek)
{
    _cleanup_free_ uint8_t *nv = NULL;
    const uint8_t *cert;
    size_t nv_len, cert_len;
    int r;

    /* go-attestation falls back to the template on any failure here, and so do we, quietly. */
    t->quiet = true;
    r = tpm_nv_read(t, TPM_NV_EK_RSA_CERT, &nv, &nv_len);
    t->quiet = false;
    if (r < 0)
        return r;
    cert = nv;
    cert_len = nv_len;
    /* ParseEKCertificate: the TCG PC Client header 10 01 00 || u16be length, when present. */
    if (cert_len > 5 && cert[0] == 0x10 && cert[1] == 0x01 && cert[2] == 0x00) {
        size_t inner = (size_t)cert[3] << 8 | cert[4];
        cert += 5;
        cert_len = inner <= cert_len - 5 ? inner : 0;
    }
    /* NV indices are padded; the certificate is the first DER element (Certificate.Raw). */
    cert_len = der_tlv_len(cert, cert_len);
    r = cert_len ? crypto_x509_rsa_pub(cert, cert_len, ek) : -EINVAL;
    if (r < 0) {
        log_debug("TPM %s: EK certificate at 0x%x does not parse; using the EK template", t->desc, TPM_NV_EK_RSA_CERT);
        return r;
    }
    if (der) {
        *der = xmalloc(cert_len);
        memcpy(*der, cert, cert_len);
        *der_len = cert_len;
    }
    return 0;
}

int tpm_ek_create(struct tpm *t, ESYS_TR *handle, TPM2B_PUBLIC **pub)
{
    TPM2B_PUBLIC tmpl;
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    _cleanup_free_ uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    TSS2_RC rc;
    int r;

    ek_template(&tmpl);
    /* The TCG profile's nonce goes at the start of the otherwise zero unique field. */
    t->quiet = true;
    r = tpm_nv_read(t, TPM_NV_EK_RSA_NONCE, &nonce, &nonce_len);
    t->quiet = false;
    if (r == 0)
        memcpy(tmpl.publicArea.unique.rsa.buffer, nonce, nonce_len < 256 ? nonce_len : 256);
    else if (r == -ETIMEDOUT)
        return r;

    *handle = ESYS_TR_NONE;
    rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                            &outside, &pcrs, handle, pub, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "creating the RSA endorsement key");
    return 0;
}

static int ek_from_template(struct tpm *t, struct rsa_pub *ek)
{
    TPM2B_PUBLIC *out = NULL;
    ESYS_TR handle;
    int r;

    r = tpm_ek_create(t, &handle, &out);
    if (r < 0)
        return r;
    tpm_flush(t, handle);
    if (out->publicArea.unique.rsa.size > sizeof(ek->n)) {
        Esys_Free(out);
        return log_error_errno(-EPROTO, "TPM %s: EK modulus too large", t->desc);
    }
    memcpy(ek->n, out->publicArea.unique.rsa.buffer, out->publicArea.unique.rsa.size);
    ek->n_len = out->publicArea.unique.rsa.size;
    ek->e = out->publicArea.parameters.rsaDetail.exponent ? out->publicArea.parameters.rsaDetail.exponent : 65537;
    Esys_Free(out);
    return 0;
}

int tpm_ek_rsa_public(struct tpm *t, struct rsa_pub *ek, bool *from_cert)
{
    int r = tpm_ek_certificate(t, NULL, NULL, ek);

    if (r == -ETIMEDOUT)
        return r;
    *from_cert = r == 0;
    return r == 0 ? 0 : ek_from_template(t, ek);
}

int tpm_hash(struct tpm *t, char hex[2 * SHA256_LEN + 1])
{
    struct rsa_pub ek;
    _cleanup_free_ uint8_t *spki = NULL;
    uint8_t digest[SHA256_LEN];
    size_t spki_len;
    bool from_cert;
    int r;

    r = tpm_ek_rsa_public(t, &ek, &from_cert);
    if (r < 0)
        return r;
    r = crypto_rsa_spki_der(&ek, &spki, &spki_len);
    if (r < 0)
        return log_error_errno(r, "TPM %s: cannot encode the EK public key", t->desc);
    crypto_sha256(spki, spki_len, digest);
    hex_encode(digest, sizeof(digest), hex);
    return 0;
}
