/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Secrets sealed to PCR values, in the form systemd-cryptenroll --tpm2-device writes them
 * (systemd v252 src/shared/tpm2-util.c: tpm2_make_primary, tpm2_make_policy_session, tpm2_seal,
 * tpm2_unseal), so a disk enrolled by either opens with the other. */
#include <stdio.h>
#include <string.h>

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "tpm_internal.h"

#define RETRY_UNSEAL_MAX 30         /* systemd v252 RETRY_UNSEAL_MAX */
#define PIN_PBKDF2_ITERATIONS 10000 /* systemd v257 PBKDF2_HMAC_SHA256_ITERATIONS */

void tpm_sealed_clear(struct tpm_sealed *s)
{
    free(s->blob);
    secure_wipe(s, sizeof(*s));
}

const char *tpm_pcr_mask_str(uint32_t mask, char *buf, size_t size)
{
    size_t off = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < TPM_PCR_COUNT && off < size; i++)
        if (mask & (1u << i))
            off += snprintf(buf + off, size - off, "%s%u", off ? "+" : "", i);
    if (!mask)
        snprintf(buf, size, "none");
    return buf;
}

int tpm_pcr_mask_parse(const char *s, uint32_t *mask)
{
    uint32_t m = 0;

    while (*s) {
        char *end;
        unsigned long v;
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = strtoul(s, &end, 10);
        if (v >= TPM_PCR_COUNT || end - s > 2)
            return -EINVAL;
        m |= 1u << v;
        s = end;
        if (*s == '+' || *s == ',') {
            s++;
            if (!*s)
                return -EINVAL;
        } else if (*s) {
            return -EINVAL;
        }
    }
    *mask = m;
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v) { p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v; }

/* TPM 2.0 Part 3 §23.7 (PolicyPCR) and §23.18 (PolicyAuthValue): policyDigest extended as
 * H(old || commandCode || parameters). */
void tpm_policy_digest(uint32_t pcr_mask, const uint8_t pcr[TPM_PCR_COUNT][SHA256_LEN], bool pin,
                       uint8_t out[SHA256_LEN])
{
    uint8_t d[SHA256_LEN] = {0};

    if (pcr_mask) {
        uint8_t values[TPM_PCR_COUNT * SHA256_LEN], buf[SHA256_LEN + 4 + 10 + SHA256_LEN];
        size_t n = 0, off = 0;
        for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
            if (pcr_mask & (1u << i)) {
                memcpy(values + n, pcr[i], SHA256_LEN);
                n += SHA256_LEN;
            }
        memcpy(buf, d, SHA256_LEN);
        off = SHA256_LEN;
        put_u32(buf + off, TPM2_CC_PolicyPCR);
        off += 4;
        put_u32(buf + off, 1); /* TPML_PCR_SELECTION.count */
        off += 4;
        buf[off++] = TPM2_ALG_SHA256 >> 8;
        buf[off++] = TPM2_ALG_SHA256 & 0xff;
        buf[off++] = 3;
        buf[off++] = pcr_mask & 0xff;
        buf[off++] = (pcr_mask >> 8) & 0xff;
        buf[off++] = (pcr_mask >> 16) & 0xff;
        crypto_sha256(values, n, buf + off);
        off += SHA256_LEN;
        crypto_sha256(buf, off, d);
    }
    if (pin) {
        uint8_t buf[SHA256_LEN + 4];
        memcpy(buf, d, SHA256_LEN);
        put_u32(buf + SHA256_LEN, TPM2_CC_PolicyAuthValue);
        crypto_sha256(buf, sizeof(buf), d);
    }
    memcpy(out, d, SHA256_LEN);
}

/* PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) for one 32-byte block, as systemd's
 * tpm2_util_pbkdf2_hmac_sha256. */
static void pbkdf2_sha256_block(const uint8_t *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
                                unsigned iterations, uint8_t out[SHA256_LEN])
{
    uint8_t u[SHA256_LEN], in[64 + 4];

    memcpy(in, salt, salt_len);
    put_u32(in + salt_len, 1);
    crypto_hmac(CRYPTO_SHA256, pass, pass_len, in, salt_len + 4, u);
    memcpy(out, u, SHA256_LEN);
    for (unsigned i = 1; i < iterations; i++) {
        crypto_hmac(CRYPTO_SHA256, pass, pass_len, u, SHA256_LEN, u);
        for (unsigned j = 0; j < SHA256_LEN; j++)
            out[j] ^= u[j];
    }
    secure_wipe(u, sizeof(u));
}

size_t tpm_pin_auth(const struct secret *pin, const uint8_t *salt, size_t salt_len, uint8_t out[SHA256_LEN])
{
    size_t n = SHA256_LEN;

    if (salt_len && salt_len <= 64) {
        /* systemd >= 253 (cryptenroll-tpm2.c, tpm2_auth_value_from_pin + tpm2_trim_auth_value). */
        uint8_t derived[SHA256_LEN];
        _cleanup_secret_ struct secret *b64 = NULL;
        pbkdf2_sha256_block(pin->data, pin->len, salt, salt_len, PIN_PBKDF2_ITERATIONS, derived);
        b64 = base64_encode_secret(derived, SHA256_LEN, BASE64_STD);
        crypto_sha256(b64->data, b64->len, out);
        secure_wipe(derived, sizeof(derived));
        while (n > 0 && out[n - 1] == 0)
            n--;
    } else {
        /* systemd v252 hash_pin: SHA-256 of the PIN as typed, the whole 32 bytes. */
        crypto_sha256(pin->data, pin->len, out);
    }
    return n;
}

/* systemd v252 tpm2_make_primary (kept as tpm2_get_legacy_template in later versions): storage
 * key attributes without noDA, AES-128-CFB, an empty unique field. */
static void legacy_template(TPM2B_PUBLIC *tmpl, enum tpm_primary_alg alg)
{
    memset(tmpl, 0, sizeof(*tmpl));
    tmpl->publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl->publicArea.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM |
                                        TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                        TPMA_OBJECT_USERWITHAUTH;
    if (alg == TPM_PRIMARY_ECC) {
        tmpl->publicArea.type = TPM2_ALG_ECC;
        tmpl->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
        tmpl->publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
        tmpl->publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
        tmpl->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        tmpl->publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        tmpl->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    } else {
        tmpl->publicArea.type = TPM2_ALG_RSA;
        tpm_rsa_storage_params(&tmpl->publicArea);
    }
}

static int create_primary(struct tpm *t, enum tpm_primary_alg alg, ESYS_TR *out)
{
    TPM2B_PUBLIC tmpl, *pub = NULL;
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TSS2_RC rc;

    legacy_template(&tmpl, alg);
    rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                            &outside, &pcrs, out, &pub, NULL, NULL, NULL);
    Esys_Free(pub);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "creating the %s storage primary key", alg == TPM_PRIMARY_ECC ? "ECC" : "RSA");
    return 0;
}

/* The parent: the persistent SRK (closed afterwards) or a new transient primary (flushed). */
static int open_parent(struct tpm *t, bool srk, enum tpm_primary_alg alg, ESYS_TR *out)
{
    if (srk) {
        int r = tpm_lookup(t, TPM_SRK_HANDLE, "storage root key", out);
        if (r == -ENOENT)
            return log_error_errno(-EBADMSG,
                                   "TPM %s: the token was sealed under the storage root key at 0x%x "
                                   "(systemd >= 254), which this TPM does not have",
                                   t->desc, TPM_SRK_HANDLE);
        return r;
    }
    return create_primary(t, alg, out);
}

static void close_parent(struct tpm *t, bool srk, ESYS_TR *h)
{
    if (*h == ESYS_TR_NONE)
        return;
    if (srk)
        Esys_TR_Close(t->esys, h);
    else
        tpm_flush(t, *h);
    *h = ESYS_TR_NONE;
}

/* A session salted by the parent key, so the secret never crosses the bus in clear (systemd
 * does the same). type: TPM2_SE_HMAC or TPM2_SE_POLICY. */
static int start_session(struct tpm *t, ESYS_TR salt_key, TPM2_SE type, TPMA_SESSION attrs, ESYS_TR *out)
{
    const TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB};
    TSS2_RC rc = Esys_StartAuthSession(t->esys, salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                                       type, &sym, TPM2_ALG_SHA256, out);

    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "starting a %s session", type == TPM2_SE_POLICY ? "policy" : "HMAC");
    rc = Esys_TRSess_SetAttributes(t->esys, *out, attrs | TPMA_SESSION_CONTINUESESSION, 0xff);
    if (rc != TSS2_RC_SUCCESS) {
        tpm_flush(t, *out);
        *out = ESYS_TR_NONE;
        return tpm_fail(t, rc, "setting session attributes");
    }
    return 0;
}

int tpm_seal(struct tpm *t, uint32_t pcr_mask, const struct secret *pin, struct tpm_sealed *out, struct secret **secret)
{
    uint8_t pcr[TPM_PCR_COUNT][SHA256_LEN];
    _cleanup_secret_ struct secret *data = NULL;
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_PUBLIC tmpl = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION creation_pcrs = {0};
    TPM2B_PRIVATE *priv = NULL;
    TPM2B_PUBLIC *pub = NULL;
    ESYS_TR parent = ESYS_TR_NONE, session = ESYS_TR_NONE;
    uint8_t blob[sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_PUBLIC)];
    size_t off = 0;
    TSS2_RC rc;
    int r;

    memset(out, 0, sizeof(*out));
    if (pcr_mask >> TPM_PCR_COUNT)
        return log_error_errno(-EINVAL, "TPM %s: PCRs above %d do not exist", t->desc, TPM_PCR_COUNT - 1);
    r = tpm_pcr_read(t, pcr_mask, pcr);
    if (r < 0)
        return r;
    tpm_policy_digest(pcr_mask, pcr, pin != NULL, out->policy);
    out->pcr_mask = pcr_mask;
    out->pin = pin != NULL;

    data = secret_new(TPM_SEALED_SECRET_LEN);
    r = crypto_random(data->data, TPM_SEALED_SECRET_LEN);
    if (r < 0)
        return log_error_errno(r, "cannot get random bytes for the sealed key");
    data->len = TPM_SEALED_SECRET_LEN;

    /* systemd v252 tpm2_seal: KEYEDHASH, fixedTPM|fixedParent, no scheme, the policy as the only
     * way in, the secret from the host, userAuth = the PIN's hash. */
    tmpl.publicArea.type = TPM2_ALG_KEYEDHASH;
    tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
    tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    tmpl.publicArea.unique.keyedHash.size = SHA256_LEN;
    tmpl.publicArea.authPolicy.size = SHA256_LEN;
    memcpy(tmpl.publicArea.authPolicy.buffer, out->policy, SHA256_LEN);
    sens.sensitive.data.size = TPM_SEALED_SECRET_LEN;
    memcpy(sens.sensitive.data.buffer, data->data, TPM_SEALED_SECRET_LEN);
    if (pin)
        sens.sensitive.userAuth.size = (uint16_t)tpm_pin_auth(pin, NULL, 0, sens.sensitive.userAuth.buffer);

    t->quiet = true; /* no ECC: RSA, as systemd v252 falls back */
    r = create_primary(t, TPM_PRIMARY_ECC, &parent);
    t->quiet = false;
    out->primary = TPM_PRIMARY_ECC;
    if (r == -EIO) {
        r = create_primary(t, TPM_PRIMARY_RSA, &parent);
        out->primary = TPM_PRIMARY_RSA;
    }
    if (r < 0)
        goto out;
    r = start_session(t, parent, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT, &session);
    if (r < 0)
        goto out;
    rc = Esys_Create(t->esys, parent, ESYS_TR_PASSWORD, session, ESYS_TR_NONE, &sens, &tmpl, &outside, &creation_pcrs,
                     &priv, &pub, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(t, rc, "creating the sealed object");
        goto out;
    }
    if (Tss2_MU_TPM2B_PRIVATE_Marshal(priv, blob, sizeof(blob), &off) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PUBLIC_Marshal(pub, blob, sizeof(blob), &off) != TSS2_RC_SUCCESS) {
        r = log_error_errno(-EPROTO, "TPM %s: cannot encode the sealed object", t->desc);
        goto out;
    }
    out->blob = xmalloc(off);
    memcpy(out->blob, blob, off);
    out->blob_len = off;
    *secret = TAKE_PTR(data);
out:
    secure_wipe(&sens, sizeof(sens));
    Esys_Free(priv);
    Esys_Free(pub);
    tpm_flush(t, session);
    close_parent(t, false, &parent);
    if (r < 0)
        tpm_sealed_clear(out);
    return r;
}

/* One attempt: policy session, compare, unseal. -EAGAIN when a PCR changed under us. */
static int unseal_once(struct tpm *t, const struct tpm_sealed *s, ESYS_TR parent, ESYS_TR obj, struct secret **out)
{
    TPML_PCR_SELECTION sel;
    TPM2B_DIGEST empty = {0}, *digest = NULL;
    TPM2B_SENSITIVE_DATA *data = NULL;
    ESYS_TR session = ESYS_TR_NONE;
    char pcrs[80];
    TSS2_RC rc;
    int r;

    r = start_session(t, parent, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT, &session);
    if (r < 0)
        return r;
    if (s->pcr_mask) {
        tpm_sha256_selection(&sel, s->pcr_mask);
        rc = Esys_PolicyPCR(t->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &sel);
        if (rc != TSS2_RC_SUCCESS) {
            r = tpm_fail(t, rc, "PolicyPCR");
            goto out;
        }
    }
    if (s->pin) {
        rc = Esys_PolicyAuthValue(t->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
        if (rc != TSS2_RC_SUCCESS) {
            r = tpm_fail(t, rc, "PolicyAuthValue");
            goto out;
        }
    }
    rc = Esys_PolicyGetDigest(t->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &digest);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(t, rc, "PolicyGetDigest");
        goto out;
    }
    if (digest->size != SHA256_LEN || memcmp(digest->buffer, s->policy, SHA256_LEN)) {
        r = log_error_errno(-EACCES,
                            "TPM %s: PCRs %s (sha256) do not have the values the key was sealed to "
                            "(changed by an update or another boot path); use the recovery key, "
                            "then kcrypt reseal",
                            t->desc, tpm_pcr_mask_str(s->pcr_mask, pcrs, sizeof(pcrs)));
        goto out;
    }
    rc = Esys_Unseal(t->esys, obj, session, ESYS_TR_NONE, ESYS_TR_NONE, &data);
    if (rc != TSS2_RC_SUCCESS) {
        if (tpm_rc_is(rc, TPM2_RC_PCR_CHANGED) || (rc & 0xfff) == TPM2_RC_PCR_CHANGED)
            r = -EAGAIN;
        else if ((tpm_rc_is(rc, TPM2_RC_AUTH_FAIL) || tpm_rc_is(rc, TPM2_RC_BAD_AUTH)) && !s->pin)
            r = -EBADE; /* no PIN to be wrong: the salted session's keys disagreed; a new session */
        else if (tpm_rc_is(rc, TPM2_RC_AUTH_FAIL) || tpm_rc_is(rc, TPM2_RC_BAD_AUTH))
            r = log_error_errno(-EPERM, "TPM %s: wrong PIN", t->desc);
        else if ((rc & 0xfff) == TPM2_RC_LOCKOUT)
            r = log_error_errno(-EPERM,
                                "TPM %s: locked out after too many wrong PINs (dictionary attack "
                                "protection); wait or use the recovery key",
                                t->desc);
        else if (tpm_rc_is(rc, TPM2_RC_POLICY_FAIL))
            r = log_error_errno(-EACCES, "TPM %s: the sealed key's policy refused (PCRs %s)", t->desc,
                                tpm_pcr_mask_str(s->pcr_mask, pcrs, sizeof(pcrs)));
        else
            r = tpm_fail(t, rc, "unsealing");
        goto out;
    }
    *out = secret_new_copy(data->buffer, data->size);
    r = 0;
out:
    if (data) {
        secure_wipe(data, sizeof(*data));
        Esys_Free(data);
    }
    Esys_Free(digest);
    tpm_flush(t, session);
    return r;
}

int tpm_unseal(struct tpm *t, const struct tpm_sealed *s, const struct secret *pin, struct secret **out)
{
    TPM2B_PRIVATE priv = {0};
    TPM2B_PUBLIC pub = {0};
    ESYS_TR parent = ESYS_TR_NONE, obj = ESYS_TR_NONE;
    size_t off = 0;
    TSS2_RC rc;
    int r;

    if (s->pin && !pin)
        return log_error_errno(-ENOKEY, "TPM %s: the sealed key needs a PIN", t->desc);
    if (s->pcr_mask >> TPM_PCR_COUNT)
        return log_error_errno(-EBADMSG, "sealed key: PCRs above %d do not exist", TPM_PCR_COUNT - 1);
    if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(s->blob, s->blob_len, &off, &priv) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PUBLIC_Unmarshal(s->blob, s->blob_len, &off, &pub) != TSS2_RC_SUCCESS)
        return log_error_errno(-EBADMSG, "sealed key: the blob is not a TPM2B_PRIVATE and a TPM2B_PUBLIC");
    if (off != s->blob_len)
        return log_error_errno(-EOPNOTSUPP,
                               "sealed key: the blob carries %zu more bytes (an imported object, "
                               "systemd-cryptenroll --tpm2-device-key), which is not supported",
                               s->blob_len - off);
    if (pub.publicArea.type != TPM2_ALG_KEYEDHASH || pub.publicArea.nameAlg != TPM2_ALG_SHA256)
        return log_error_errno(-EBADMSG, "sealed key: not a SHA-256 KEYEDHASH object");
    if (pub.publicArea.authPolicy.size != SHA256_LEN || memcmp(pub.publicArea.authPolicy.buffer, s->policy, SHA256_LEN))
        return log_error_errno(-EBADMSG, "sealed key: the token's policy hash is not the sealed object's policy");

    r = open_parent(t, s->srk, s->primary, &parent);
    if (r < 0)
        return r;
    rc = Esys_Load(t->esys, parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &obj);
    if (rc != TSS2_RC_SUCCESS) {
        t->quiet = true;
        r = tpm_fail(t, rc, "loading the sealed object");
        t->quiet = false;
        if (r == -EIO)
            r = log_error_errno(-EBADMSG,
                                "TPM %s: the sealed object does not load (sealed by another TPM, "
                                "or damaged): %s",
                                t->desc, Tss2_RC_Decode(rc));
        goto out;
    }
    if (pin) {
        TPM2B_AUTH auth = {0};
        auth.size = (uint16_t)tpm_pin_auth(pin, s->salt, s->salt_len, auth.buffer);
        rc = Esys_TR_SetAuth(t->esys, obj, &auth);
        secure_wipe(&auth, sizeof(auth));
        if (rc != TSS2_RC_SUCCESS) {
            r = tpm_fail(t, rc, "setting the PIN");
            goto out;
        }
    }
    for (int i = 0, auth_retries = 0; i < RETRY_UNSEAL_MAX; i++) {
        r = unseal_once(t, s, parent, obj, out);
        /* Seen rarely under load with swtpm: a salted session whose key the TPM computed
         * otherwise (an authorization failure on a key that has no PIN). A fresh session, with a
         * fresh salt, agrees; a few tries at most. */
        if (r == -EBADE && ++auth_retries <= 3) {
            log_debug("TPM %s: the unseal session was refused; trying a new session", t->desc);
            continue;
        }
        if (r != -EAGAIN)
            break;
        log_debug("TPM %s: a PCR changed while unsealing; trying again", t->desc);
    }
    if (r == -EAGAIN)
        r = log_error_errno(-EIO, "TPM %s: PCRs kept changing while unsealing", t->desc);
    else if (r == -EBADE)
        r = log_error_errno(-EIO, "TPM %s: the TPM refused the unseal sessions (authorization failed)", t->desc);
out:
    tpm_flush(t, obj);
    close_parent(t, s->srk, &parent);
    return r;
}
