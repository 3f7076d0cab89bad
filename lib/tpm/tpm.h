/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/tpm: talking to the node's TPM 2.0 through tpm2-tss ESAPI. The only folder that includes
 * tpm2-tss (docs/README.md §3). Every function flushes the transient handles it creates. */
#ifndef KKMS_TPM_H
#define KKMS_TPM_H

#include <stdbool.h>

#include "base.h"
#include "crypto.h"

/* Real TPMs can take a minute for an RSA-2048 CreatePrimary; a hung one must not hang a boot. */
#define TPM_DEFAULT_TIMEOUT_MS 120000

/* NV indices of the TCG EK Credential Profile used by go-attestation (docs/tpm.md §2). */
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

/* The RSA endorsement key as go-attestation's first EK (docs/tpm.md §2): the key of the
 * certificate at 0x01C00002 when it parses, else CreatePrimary with the default TCG RSA-2048 EK
 * template (nonce at 0x01C00003 honoured), flushed afterwards. *from_cert tells which. */
int tpm_ek_rsa_public(struct tpm *t, struct rsa_pub *ek, bool *from_cert);

/* The node's TPM hash: lowercase hex SHA-256 of the EK's DER SubjectPublicKeyInfo (docs/tpm.md §2). */
int tpm_hash(struct tpm *t, char hex[2 * SHA256_LEN + 1]);

/* Offline mode defaults (docs/tpm.md §5). */
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
 * is absent and create is true, generates a passphrase, encrypts it and stores it first (docs/tpm.md §5);
 * when create is false that is an error. *out is a new secret owned by the caller. */
int tpm_offline_passphrase(struct tpm *t, uint32_t nv_index, uint32_t c_index, bool create, struct secret **out);

/* Reads a whole NV index with owner authorization (empty password) in TPM_PT_NV_BUFFER_MAX
 * blocks (docs/upstream.md §9.3); -ENOENT when it is not defined. *data malloc'd. */
int tpm_nv_read(struct tpm *t, uint32_t index, uint8_t **data, size_t *len);
/* Removes an NV index (owner auth); -ENOENT when it is not defined. */
int tpm_nv_undefine(struct tpm *t, uint32_t index);

/* ==== Node attestation: EK PEM, SRK/AK, credential activation, PCR quote ====================
 * What the node proves to the KMS (docs/protocol-g1.md §3 token, docs/tpm.md §7, §4), done as go-attestation
 * 8820d49b does it. Side effects kept from upstream (docs/tpm.md §3): the SRK at 0x81000001 and the EK at
 * 0x81010001 are created and persisted when absent. */

#define TPM_SRK_HANDLE 0x81000001
#define TPM_EK_HANDLE 0x81010001

/* A byte string; data is malloc'd and owned by whoever owns the enclosing struct. */

/* The EK PEM of the G1 token (docs/protocol-g1.md §3.2): "CERTIFICATE" of the DER at 0x01C00002 (padding dropped)
 * when go-attestation would find a certificate there (*is_cert true), else "PUBLIC KEY" of the
 * EK's SubjectPublicKeyInfo; 64-column lines as Go's pem.EncodeToMemory writes them. ek (may be
 * NULL) receives the EK public key, whose SPKI the KMS hashes (docs/tpm.md §2). *pem malloc'd, owned by
 * the caller. */
int tpm_ek_public_pem(struct tpm *t, char **pem, bool *is_cert, struct rsa_pub *ek);

/* Attributes of the AK: G1 clients create 0x00050072 (docs/upstream.md §9.1), G3 clients add noDA. */
enum tpm_ak_kind {
    TPM_AK_G1,      /* sign|restricted|fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth */
    TPM_AK_G3_NODA, /* the same plus noDA: 0x00050472 */
};

/* go-attestation's AttestationParameters (docs/tpm.md §4), each without a TPM2B size prefix. */
/* A transient AK, loaded until tpm_ak_free; free it before closing its tpm. */
struct tpm_ak;

/* Creates the SRK at 0x81000001 if absent (and persists it), then an RSA-2048 AK under it
 * (TPM2_Create, TPM2_Load) and certifies its creation with itself. *out owned by the caller. */
int tpm_ak_create(struct tpm *t, enum tpm_ak_kind kind, struct tpm_ak **out);
/* The AK's parameters; owned by ak. */
const struct ak_params *tpm_ak_params(const struct tpm_ak *ak);
/* The AK's Name: 0x000b || SHA-256(TPMT_PUBLIC); owned by ak. */
const struct bytes *tpm_ak_name(const struct tpm_ak *ak);
/* Flushes the AK from the TPM and frees it; NULL is fine. */
void tpm_ak_free(struct tpm_ak *ak);
static inline void tpm_ak_freep(struct tpm_ak **ak) { tpm_ak_free(*ak); }
#define _cleanup_tpm_ak_ _cleanup_(tpm_ak_freep)

/* TPM2_ActivateCredential with ak and the EK at 0x81010001 (created from the default template
 * and persisted there if absent, as upstream does). credential and encrypted_secret are the
 * wire's TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, size prefix included. -EACCES when the
 * credential was made for another EK or AK, -EBADMSG when it is malformed. *secret is the
 * recovered certInfo, owned by the caller. */
int tpm_activate_credential(struct tpm *t, struct tpm_ak *ak, const uint8_t *credential, size_t credential_len,
                            const uint8_t *encrypted_secret, size_t encrypted_secret_len, struct secret **secret);

#define TPM_PCR_COUNT 24
#define TPM_QUOTE_NONCE_MAX 64

/* A PCR quote as G3 sends it (docs/tpm.md §7). */
struct tpm_quote {
    struct bytes attest;                    /* TPMS_ATTEST (the TPM2B_ATTEST contents) */
    struct bytes signature;                 /* TPMT_SIGNATURE */
    uint32_t pcr_mask;                      /* the quoted PCRs: bit i = PCR i */
    uint8_t pcr[TPM_PCR_COUNT][SHA256_LEN]; /* their SHA-256 bank values, read after the quote */
};

/* TPM2_Quote of the SHA-256 bank PCRs in pcr_mask, signed by ak (its RSASSA-SHA256 scheme), with
 * nonce (≤ TPM_QUOTE_NONCE_MAX bytes; empty as upstream, or the server's) as qualifyingData,
 * then TPM2_PCR_Read of the same PCRs. *out is filled; release it with tpm_quote_clear. */
int tpm_quote_pcrs(struct tpm *t, struct tpm_ak *ak, uint32_t pcr_mask, const uint8_t *nonce, size_t nonce_len,
                   struct tpm_quote *out);
/* Frees what a quote holds and zeroes it. */
void tpm_quote_clear(struct tpm_quote *q);

/* ==== Sealed secrets bound to PCRs (measured-boot local mode) ===============================
 * The objects systemd-cryptenroll --tpm2-device makes (systemd v252 src/shared/tpm2-util.c
 * tpm2_seal/tpm2_unseal): a KEYEDHASH object holding 32 random bytes, fixedTPM|fixedParent and
 * no userWithAuth, so only its policy opens it: PolicyPCR over SHA-256 PCRs, then PolicyAuthValue
 * when a PIN is set. Its parent is a transient primary recreated from systemd's "legacy" template
 * (ECC P-256, else RSA-2048), or for tokens of systemd >= 254 the persistent SRK at 0x81000001. */

/* Reads the SHA-256 bank values of the PCRs in mask (bit i = PCR i) into pcr[i]. */
int tpm_pcr_read(struct tpm *t, uint32_t mask, uint8_t pcr[TPM_PCR_COUNT][SHA256_LEN]);

/* The policy digest of the object, computed without a TPM: D = 0; if mask, D = H(D || CC_PolicyPCR
 * || TPML_PCR_SELECTION(sha256, mask) || H(pcr[i] for i in mask ascending)); if pin,
 * D = H(D || CC_PolicyAuthValue). */
void tpm_policy_digest(uint32_t pcr_mask, const uint8_t pcr[TPM_PCR_COUNT][SHA256_LEN], bool pin,
                       uint8_t out[SHA256_LEN]);

/* The authValue of a PIN: SHA-256(pin) (systemd v252, no salt), or with salt (systemd >= 253
 * tpm2_salt) SHA-256(base64(PBKDF2-HMAC-SHA256(pin, salt, 10000, 32))), trailing zeros trimmed.
 * Returns the length (<= 32). */
size_t tpm_pin_auth(const struct secret *pin, const uint8_t *salt, size_t salt_len, uint8_t out[SHA256_LEN]);

enum tpm_primary_alg { TPM_PRIMARY_ECC = 0, TPM_PRIMARY_RSA = 1 };
#define TPM_SEALED_SECRET_LEN 32
#define TPM_SEALED_BLOB_MAX 4096

/* A sealed object as a token carries it. */
struct tpm_sealed {
    uint8_t *blob; /* TPM2B_PRIVATE || TPM2B_PUBLIC (tss2-mu), malloc'd */
    size_t blob_len;
    uint32_t pcr_mask;            /* SHA-256 PCRs of PolicyPCR; 0 = none */
    enum tpm_primary_alg primary; /* legacy primary to recreate */
    bool srk;                     /* parent: the persistent SRK at 0x81000001 (systemd >= 254) */
    bool pin;                     /* PolicyAuthValue with the PIN's authValue */
    uint8_t salt[64];             /* PIN salt (systemd >= 253), salt_len 0 = none */
    size_t salt_len;
    uint8_t policy[SHA256_LEN]; /* expected policy digest */
};
void tpm_sealed_clear(struct tpm_sealed *s);

/* Seals 32 new random bytes to the current values of the SHA-256 PCRs in pcr_mask (0: none) and
 * the PIN (NULL: none), under the legacy ECC primary (RSA when the TPM has no ECC P-256). out is
 * filled (release with tpm_sealed_clear); *secret (32 bytes) is the caller's. */
int tpm_seal(struct tpm *t, uint32_t pcr_mask, const struct secret *pin, struct tpm_sealed *out,
             struct secret **secret);

/* Unseals s: recreates the parent, loads the object, replays the policy with the current PCR
 * values and the PIN, compares the session digest with s->policy and unseals (retried when the
 * TPM says a PCR changed in between). -EACCES: the PCRs are not those sealed to (the message names
 * them); -EPERM: wrong PIN; -ENOKEY: a PIN is needed and pin is NULL; -EBADMSG: the blob does not
 * load under this parent (another TPM, or damaged). *out (the 32 bytes) is the caller's. */
int tpm_unseal(struct tpm *t, const struct tpm_sealed *s, const struct secret *pin, struct secret **out);

/* "7+11" style list of the PCRs in mask, into buf. */
const char *tpm_pcr_mask_str(uint32_t mask, char *buf, size_t size);
/* Parses "7+11", "7,11" or "" into a mask; -EINVAL for anything else or a PCR above 23. */
int tpm_pcr_mask_parse(const char *s, uint32_t *mask);

#endif
