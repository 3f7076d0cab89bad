/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/tpm: talking to the node's TPM 2.0 through tpm2-tss ESAPI. The only folder that includes
 * tpm2-tss (DESIGN.md §2). Every function flushes the transient handles it creates. */
#ifndef KKMS_TPM_H
#define KKMS_TPM_H

#include <stdbool.h>

#include "base.h"
#include "crypto.h"

/* Real TPMs can take a minute for an RSA-2048 CreatePrimary; a hung one must not hang a boot. */
#define TPM_DEFAULT_TIMEOUT_MS 120000

/* NV indices of the TCG EK Credential Profile used by go-attestation (UPSTREAM.md §4.3). */
#define TPM_NV_EK_RSA_CERT 0x01C00002
#define TPM_NV_EK_RSA_NONCE 0x01C00003

struct tpm;

/* Opens a TPM: device is a character device, a swtpm unix socket or a TCTI string
 * ("device:PATH", "swtpm:path=SOCK", "swtpm:host=H,port=P", "mssim:host=H,port=P"); NULL tries
 * /dev/tpmrm0 then /dev/tpm0. Sends TPM2_Startup(CLEAR) if the TPM was not started. Errors are
 * logged; *out is released with tpm_close. */
int tpm_open(const char *device, int64_t timeout_ms, struct tpm **out);
void tpm_close(struct tpm *t);
static inline void tpm_closep(struct tpm **t) { tpm_close(*t); }
#define _cleanup_tpm_ _cleanup_(tpm_closep)

/* A description of the open TPM for messages; owned by t. */
const char *tpm_describe(struct tpm *t);

/* The RSA endorsement key as go-attestation's first EK (UPSTREAM.md §4.3): the key of the
 * certificate at 0x01C00002 when it parses, else CreatePrimary with the default TCG RSA-2048 EK
 * template (nonce at 0x01C00003 honoured), flushed afterwards. *from_cert tells which. */
int tpm_ek_rsa_public(struct tpm *t, struct rsa_pub *ek, bool *from_cert);

/* The node's TPM hash: lowercase hex SHA-256 of the EK's DER SubjectPublicKeyInfo (§4.3). */
int tpm_hash(struct tpm *t, char hex[2 * SHA256_LEN + 1]);

/* Offline mode defaults (UPSTREAM.md §2.6). */
#define TPM_DEFAULT_NV_INDEX 0x01500000
#define TPM_DEFAULT_C_INDEX 0x81000008
#define TPM_PASSPHRASE_LEN 32

/* Makes sure the persistent RSA-2048 key exists at c_index, creating it with upstream's template
 * and persisting it (owner hierarchy, empty auth) if absent. */
int tpm_rsa_key_ensure(struct tpm *t, uint32_t c_index);
/* RSA-OAEP-SHA256 (empty label) with the key at c_index; *blob is malloc'd, owned by the caller. */
int tpm_rsa_encrypt(struct tpm *t, uint32_t c_index, const struct secret *plain, uint8_t **blob, size_t *blob_len);
/* The reverse; *plain is a new secret owned by the caller. */
int tpm_rsa_decrypt(struct tpm *t, uint32_t c_index, const uint8_t *blob, size_t blob_len, struct secret **plain);

/* n random characters of [0-9a-z] from getrandom (upstream's alphabet); *out owned by the caller. */
int tpm_random_passphrase(size_t n, struct secret **out);

/* The offline passphrase: decrypts the blob at nv_index with the key at c_index. When the index
 * is absent and create is true, generates a passphrase, encrypts it and stores it first (§2.6);
 * when create is false that is an error. *out is a new secret owned by the caller. */
int tpm_offline_passphrase(struct tpm *t, uint32_t nv_index, uint32_t c_index, bool create, struct secret **out);

/* Reads a whole NV index with owner authorization (empty password) in TPM_PT_NV_BUFFER_MAX
 * blocks (UPSTREAM.md errata 3); -ENOENT when it is not defined. *data malloc'd. */
int tpm_nv_read(struct tpm *t, uint32_t index, uint8_t **data, size_t *len);
/* Removes an NV index (owner auth); -ENOENT when it is not defined. */
int tpm_nv_undefine(struct tpm *t, uint32_t index);

#endif
