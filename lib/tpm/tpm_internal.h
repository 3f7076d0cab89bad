/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Internal to lib/tpm. */
#ifndef KKMS_TPM_INTERNAL_H
#define KKMS_TPM_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>

#include <tss2/tss2_esys.h>

#include "tpm.h"

struct tpm {
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    char desc[160];
    bool quiet; /* tpm_fail logs at debug level: a failure the caller recovers from */
};

/* Logs "TPM <desc>: <what>: <decoded rc>" (or nothing more after a timeout, which the TCTI
 * already reported) and returns -EIO or -ETIMEDOUT. */
int tpm_fail(struct tpm *t, TSS2_RC rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The ESYS object of a persistent handle or NV index: 0, -ENOENT (not logged) when the TPM has
 * nothing there, else the TPM error, logged as "looking up the <what> at 0x<handle>". */
int tpm_lookup(struct tpm *t, uint32_t handle, const char *what, ESYS_TR *out);
/* Flushes a transient object or session; ESYS_TR_NONE is ignored. */
void tpm_flush(struct tpm *t, ESYS_TR handle);
/* Makes transient persistent at handle (owner auth, empty password) and flushes the transient;
 * *out gets the persistent object (NULL: not kept). what names the key in messages. */
int tpm_persist(struct tpm *t, ESYS_TR transient, uint32_t handle, const char *what, ESYS_TR *out);
/* The parameters every RSA storage key here has (EK, SRK, the sealing primary): RSA-2048,
 * AES-128-CFB for its children, no signing scheme. */
void tpm_rsa_storage_params(TPMT_PUBLIC *p);
/* CreatePrimary in the owner hierarchy from tmpl, then tpm_persist at handle (logs one info line). */
int tpm_create_persistent(struct tpm *t, const TPM2B_PUBLIC *tmpl, uint32_t handle, const char *what, ESYS_TR *out);

/* Defines an NV index of exactly len bytes with upstream's attributes and writes data into it;
 * the index is removed again if the write fails. */
int tpm_nv_define_write(struct tpm *t, uint32_t index, const uint8_t *data, size_t len);

/* ---- node attestation (ak.c, activate.c, quote.c; docs/tpm.md §7) ---- */

/* Whether rc is the TPM's format-one error `base` (TPM2_RC_HANDLE, TPM2_RC_INTEGRITY, ...) on
 * any handle, parameter or session number. */
static inline bool tpm_rc_is(TSS2_RC rc, TSS2_RC base)
{
    return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) && (rc & 0x3f) == (base & 0x3f);
}
/* The parameter number a format-one error names (1 = first parameter), 0 if it names none. */
static inline unsigned tpm_rc_parameter(TSS2_RC rc)
{
    return (rc & TPM2_RC_FMT1) && (rc & TPM2_RC_P) ? (rc >> 8) & 0xf : 0;
}

/* The EK certificate at 0x01C00002 as go-attestation's ParseEKCertificate finds it: the TCG
 * header 10 01 00 len removed, padding after the DER dropped, the key RSA. *der (malloc'd) may
 * be NULL when only the key is wanted. Quiet on failure, which callers treat as "no certificate". */
int tpm_ek_certificate(struct tpm *t, uint8_t **der, size_t *der_len, struct rsa_pub *ek);
/* CreatePrimary of the default RSA EK template (nonce at 0x01C00003 honoured); the caller
 * flushes *handle and Esys_Free()s *pub. */
int tpm_ek_create(struct tpm *t, ESYS_TR *handle, TPM2B_PUBLIC **pub);

/* A loaded attestation key (ak.c). */
struct tpm_ak {
    struct tpm *t;
    ESYS_TR handle; /* transient; flushed by tpm_ak_free */
    struct ak_params params;
    struct bytes name; /* the AK's Name: 0x000b || SHA-256(public) */
};

/* A PCR selection of the SHA-256 bank: bit i of mask = PCR i (quote.c). */
void tpm_sha256_selection(TPML_PCR_SELECTION *sel, uint32_t mask);

#endif
