/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Internal to lib/tpm: a TCTI with a deadline on every command. */
#ifndef KKMS_TCTI_H
#define KKMS_TCTI_H

#include <tss2/tss2_tcti.h>

#include "base.h"

/* Opens spec: "device:PATH", "swtpm:path=SOCK", "swtpm:host=H,port=P", "mssim:host=H,port=P", a
 * character device path or a swtpm unix socket path. Every TPM command must complete within
 * timeout_ms. A device path that does not exist returns -ENOENT without logging (the caller
 * tries the next default); every other failure is logged. *out is freed with ktcti_free. */
int ktcti_open(const char *spec, int64_t timeout_ms, TSS2_TCTI_CONTEXT **out);
void ktcti_free(TSS2_TCTI_CONTEXT *ctx);
/* True once a command ran past its deadline (the error was already logged). */
bool ktcti_timed_out(TSS2_TCTI_CONTEXT *ctx);
/* A human description of the TPM ("/dev/tpmrm0", "swtpm socket /run/x"); owned by ctx. */
const char *ktcti_describe(TSS2_TCTI_CONTEXT *ctx);

#endif
