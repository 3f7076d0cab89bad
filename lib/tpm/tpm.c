/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>

#include "tcti.h"
#include "tpm_internal.h"

int tpm_fail(struct tpm *t, TSS2_RC rc, const char *fmt, ...)
{
    char what[256];
    va_list ap;

    if (ktcti_timed_out(t->tcti))
        return -ETIMEDOUT; /* the TCTI already said which TPM and how long */
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    log_msg(t->quiet ? LOG_DEBUG : LOG_ERR, "TPM %s: %s: %s", t->desc, what, Tss2_RC_Decode(rc));
    return -EIO;
}

static int tpm_open_spec(const char *spec, int64_t timeout_ms, struct tpm **out)
{
    struct tpm *t;
    TSS2_RC rc;
    int r;

    t = xcalloc(1, sizeof(*t));
    r = ktcti_open(spec, timeout_ms, &t->tcti);
    if (r < 0) {
        free(t);
        return r;
    }
    snprintf(t->desc, sizeof(t->desc), "%s", ktcti_describe(t->tcti));
    rc = Esys_Initialize(&t->esys, t->tcti, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(t, rc, "initializing ESAPI");
        tpm_close(t);
        return r;
    }
    /* swtpm without startup-clear, or a TPM no firmware started: start it; an already started
     * TPM answers TPM2_RC_INITIALIZE, which is fine. */
    rc = Esys_Startup(t->esys, TPM2_SU_CLEAR);
    if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) {
        r = tpm_fail(t, rc, "TPM2_Startup");
        tpm_close(t);
        return r;
    }
    *out = t;
    return 0;
}

int tpm_open(const char *device, int64_t timeout_ms, struct tpm **out)
{
    static const char *const defaults[] = {"/dev/tpmrm0", "/dev/tpm0"};

    /* tpm2-tss would print its own multi-line errors; ours say the same in one line. */
    setenv("TSS2_LOG", "all+none", 0);
    if (timeout_ms <= 0)
        timeout_ms = TPM_DEFAULT_TIMEOUT_MS;
    if (device && *device) {
        int r = tpm_open_spec(device, timeout_ms, out);
        if (r == -ENOENT)
            log_error("--tpm-device %s: no such device or socket", device);
        return r;
    }
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        int r = tpm_open_spec(defaults[i], timeout_ms, out);
        if (r != -ENOENT)
            return r;
    }
    return log_error_errno(-ENODEV, "no TPM found: tried /dev/tpmrm0 and /dev/tpm0; "
                                    "use --tpm-device PATH (a TPM device or a swtpm socket)");
}

void tpm_close(struct tpm *t)
{
    if (!t)
        return;
    if (t->esys)
        Esys_Finalize(&t->esys);
    ktcti_free(t->tcti);
    free(t);
}

const char *tpm_describe(struct tpm *t) { return t->desc; }

void tpm_rsa_storage_params(TPMT_PUBLIC *p)
{
    p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    p->parameters.rsaDetail.symmetric.keyBits.aes = 128;
    p->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p->parameters.rsaDetail.keyBits = 2048;
}

void tpm_flush(struct tpm *t, ESYS_TR handle)
{
    if (handle != ESYS_TR_NONE)
        (void)Esys_FlushContext(t->esys, handle);
}

int tpm_lookup(struct tpm *t, uint32_t handle, const char *what, ESYS_TR *out)
{
    TSS2_RC rc = Esys_TR_FromTPMPublic(t->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, out);

    if (rc == TSS2_RC_SUCCESS)
        return 0;
    if (tpm_rc_is(rc, TPM2_RC_HANDLE))
        return -ENOENT;
    return tpm_fail(t, rc, "looking up the %s at 0x%x", what, handle);
}

int tpm_persist(struct tpm *t, ESYS_TR transient, uint32_t handle, const char *what, ESYS_TR *out)
{
    ESYS_TR persistent = ESYS_TR_NONE;
    TSS2_RC rc = Esys_EvictControl(t->esys, ESYS_TR_RH_OWNER, transient, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                   handle, &persistent);

    tpm_flush(t, transient);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "persisting the %s at 0x%x", what, handle);
    if (out)
        *out = persistent;
    else
        Esys_TR_Close(t->esys, &persistent);
    return 0;
}

int tpm_create_persistent(struct tpm *t, const TPM2B_PUBLIC *tmpl, uint32_t handle, const char *what, ESYS_TR *out)
{
    TPM2B_PUBLIC *pub = NULL;
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    ESYS_TR transient = ESYS_TR_NONE;
    TSS2_RC rc;

    log_info("TPM %s: creating the %s at 0x%x", t->desc, what, handle);
    rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, tmpl,
                            &outside, &pcrs, &transient, &pub, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, rc, "creating the %s", what);
    Esys_Free(pub);
    return tpm_persist(t, transient, handle, what, out);
}
