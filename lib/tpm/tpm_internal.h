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
/* Flushes a transient object or session; ESYS_TR_NONE is ignored. */
void tpm_flush(struct tpm *t, ESYS_TR handle);


/* Defines an NV index of exactly len bytes with upstream's attributes and writes data into it;
 * the index is removed again if the write fails. */
int tpm_nv_define_write(struct tpm *t, uint32_t index, const uint8_t *data, size_t len);

#endif
