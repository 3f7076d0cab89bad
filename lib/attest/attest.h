/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/attest: the server side of TPM attestation, in software only (docs/README.md §3). Bounded
 * decoders for the TPM 2.0 structures a node sends, the AK checks of go-attestation's
 * CheckAKParameters, MakeCredential for credential activation, and PCR quote verification
 * (docs/protocol-g1.md §3-§8 and docs/upstream.md §9.1, §9.4, §9.5).
 *
 * Decoded structures point into the caller's input (no allocation): keep the input alive while
 * using them. Decoders refuse truncated input, sizes above the TPM's limits, values a TPM never
 * marshals, and trailing bytes. */
#ifndef KKMS_ATTEST_H
#define KKMS_ATTEST_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "crypto.h"

/* ---- TPM 2.0 constants (Part 2), with our prefix so this header never collides with tpm2-tss ---- */
enum {
    ATTEST_ALG_RSA = 0x0001,
    ATTEST_ALG_SHA1 = 0x0004,
    ATTEST_ALG_AES = 0x0006,
    ATTEST_ALG_KEYEDHASH = 0x0008,
    ATTEST_ALG_SHA256 = 0x000B,
    ATTEST_ALG_SHA384 = 0x000C,
    ATTEST_ALG_SHA512 = 0x000D,
    ATTEST_ALG_NULL = 0x0010,
    ATTEST_ALG_SM4 = 0x0013,
    ATTEST_ALG_RSASSA = 0x0014,
    ATTEST_ALG_RSAES = 0x0015,
    ATTEST_ALG_RSAPSS = 0x0016,
    ATTEST_ALG_OAEP = 0x0017,
    ATTEST_ALG_ECDSA = 0x0018,
    ATTEST_ALG_ECDH = 0x0019,
    ATTEST_ALG_ECDAA = 0x001A,
    ATTEST_ALG_SM2 = 0x001B,
    ATTEST_ALG_ECSCHNORR = 0x001C,
    ATTEST_ALG_ECMQV = 0x001D,
    ATTEST_ALG_KDF1_SP800_56A = 0x0020,
    ATTEST_ALG_KDF2 = 0x0021,
    ATTEST_ALG_KDF1_SP800_108 = 0x0022,
    ATTEST_ALG_ECC = 0x0023,
    ATTEST_ALG_SYMCIPHER = 0x0025,
    ATTEST_ALG_CAMELLIA = 0x0026,
    ATTEST_ALG_CFB = 0x0043,
};
enum { ATTEST_ECC_NIST_P256 = 0x0003, ATTEST_ECC_NIST_P384 = 0x0004, ATTEST_ECC_NIST_P521 = 0x0005 };
enum {
    ATTEST_ST_ATTEST_CERTIFY = 0x8017,
    ATTEST_ST_ATTEST_QUOTE = 0x8018,
    ATTEST_ST_ATTEST_CREATION = 0x801A,
};
#define ATTEST_GENERATED_MAGIC 0xff544347u /* TPM_GENERATED_VALUE: only the TPM signs this */

/* TPMA_OBJECT bits */
#define ATTEST_OBJ_FIXED_TPM 0x00000002u
#define ATTEST_OBJ_FIXED_PARENT 0x00000010u
#define ATTEST_OBJ_SENSITIVE_DATA_ORIGIN 0x00000020u
#define ATTEST_OBJ_USER_WITH_AUTH 0x00000040u
#define ATTEST_OBJ_NO_DA 0x00000400u
#define ATTEST_OBJ_RESTRICTED 0x00010000u
#define ATTEST_OBJ_DECRYPT 0x00020000u
#define ATTEST_OBJ_SIGN 0x00040000u
/* The AK go-attestation creates: sign|restricted|fixedTPM|fixedParent|sensitiveDataOrigin|
 * userWithAuth, with noDA since 2022-06 (docs/upstream.md §9.1). */
#define ATTEST_AK_ATTRIBUTES 0x00050072u

/* Limits of the TPM's own unmarshalling (Part 2 sizes; tpm2-tss's TPM2_* maxima). */
#define ATTEST_DIGEST_MAX 64     /* TPM2B_DIGEST: sizeof(TPMU_HA) */
#define ATTEST_NAME_MAX 66       /* TPM2B_NAME / TPM2B_DATA: sizeof(TPMT_HA) */
#define ATTEST_ECC_PARAM_MAX 128 /* TPM2B_ECC_PARAMETER */
#define ATTEST_PCR_SELECT_MAX 4  /* bytes of a PCR bitmap: PCRs 0..31 */
#define ATTEST_PCR_BANKS_MAX 16  /* TPML_PCR_SELECTION entries */
#define ATTEST_WHY_MAX 200       /* a reason line, NUL included */

/* A byte string: an input, or a field pointing into an input. */

/* ---- decoders ---- */

/* TPMT_PUBLIC of an RSA or ECC key (the TPM2B_PUBLIC contents). */
struct attest_public {
    uint16_t type; /* ATTEST_ALG_RSA or ATTEST_ALG_ECC */
    uint16_t name_alg;
    uint32_t attributes; /* TPMA_OBJECT */
    struct bytes auth_policy;
    uint16_t sym_alg, sym_bits, sym_mode; /* TPMT_SYM_DEF_OBJECT; bits/mode 0 when sym_alg is NULL */
    uint16_t scheme, scheme_hash;         /* signing/decryption scheme; hash 0 when it has none */
    uint16_t scheme_count;                /* ECDAA only */
    uint16_t rsa_bits;                    /* RSA: declared keyBits */
    uint32_t rsa_exponent;                /* RSA: as stored; 0 means 65537 */
    uint16_t ecc_curve, kdf, kdf_hash;    /* ECC */
    struct bytes rsa_n;                   /* RSA: modulus (unique) */
    struct bytes ecc_x, ecc_y;            /* ECC: public point (unique) */
};

/* TPML_PCR_SELECTION. */
struct attest_pcr_selection {
    uint32_t count;
    struct {
        uint16_t hash;
        uint8_t size; /* bytes of bitmap */
        uint8_t select[ATTEST_PCR_SELECT_MAX];
    } bank[ATTEST_PCR_BANKS_MAX];
};

/* TPMS_CREATION_DATA. */
struct attest_creation_data {
    struct attest_pcr_selection pcr_select;
    struct bytes pcr_digest;
    uint8_t locality;
    uint16_t parent_name_alg;
    struct bytes parent_name, parent_qualified_name, outside_info;
};

/* TPMS_ATTEST of a creation, quote or certify attestation. */
struct attest_attestation {
    uint32_t magic;
    uint16_t type; /* ATTEST_ST_ATTEST_* */
    struct bytes qualified_signer, extra_data;
    uint64_t clock;
    uint32_t reset_count, restart_count;
    uint8_t safe;
    uint64_t firmware_version;
    /* ATTEST_ST_ATTEST_CREATION */
    struct bytes object_name, creation_hash;
    /* ATTEST_ST_ATTEST_QUOTE */
    struct attest_pcr_selection pcr_select;
    struct bytes pcr_digest;
    /* ATTEST_ST_ATTEST_CERTIFY */
    struct bytes name, qualified_name;
};

/* TPMT_SIGNATURE of the RSASSA, RSAPSS or ECDSA scheme. */
struct attest_signature {
    uint16_t alg, hash;
    struct bytes rsa;          /* RSASSA, RSAPSS */
    struct bytes ecc_r, ecc_s; /* ECDSA */
};

/* Each decoder: 0, -EBADMSG (malformed: truncated, oversized, invalid value, trailing bytes) or
 * -EOPNOTSUPP (a well-formed type or algorithm this decoder does not handle); *out is then
 * unspecified. They do not log; attest_check_ak_params and attest_verify_quote say what was
 * wrong. */
int attest_decode_public(const uint8_t *in, size_t len, struct attest_public *out);
int attest_decode_pcr_selection(const uint8_t *in, size_t len, struct attest_pcr_selection *out);
int attest_decode_creation_data(const uint8_t *in, size_t len, struct attest_creation_data *out);
int attest_decode_attestation(const uint8_t *in, size_t len, struct attest_attestation *out);
int attest_decode_signature(const uint8_t *in, size_t len, struct attest_signature *out);

/* The Name of a TPMT_PUBLIC: u16be(nameAlg) || H_nameAlg(in). Decodes in first. name has room
 * for ATTEST_NAME_MAX bytes. 0, -EBADMSG or -EOPNOTSUPP (nameAlg not SHA-1/256/384/512). */
int attest_public_name(const uint8_t *in, size_t len, uint8_t name[ATTEST_NAME_MAX], size_t *name_len);

/* The RSA key of a decoded RSA public area (exponent 0 becomes 65537). -EOPNOTSUPP if not RSA,
 * -EBADMSG if the modulus is empty, too long or has a leading zero. */
int attest_public_rsa(const struct attest_public *pub, struct rsa_pub *out);

/* ---- AK checks (go-attestation CheckAKParameters, docs/protocol-g1.md §8.2, docs/upstream.md §9.1 and §9.4) ---- */

/* AttestationParameters as the node sends them (the JSON decoding is lib/proto's). */
/* Accept an ECC (ECDSA P-256/P-384/P-521) AK. G1 servers accept RSA AKs only (docs/upstream.md §9.4), so the
 * G1 handler passes 0; G3 (newer go-attestation) may pass this. */
#define ATTEST_AK_ALLOW_ECC 0x1u

/* Checks that the parameters describe a TPM-resident restricted signing key certified by its own
 * CertifyCreation: signature >= 8 bytes; every structure decodes; attestation type CREATION with
 * TPM_GENERATED magic; RSA keyBits >= 2048 (declared field, as G1) or, with ATTEST_AK_ALLOW_ECC,
 * a NIST curve of >= 256 bits; nameAlg SHA-256 (the only one that can complete activation, see
 * attest_make_credential); creationHash == H_nameAlg(CreateData); fixedTPM, restricted,
 * fixedParent and sensitiveDataOrigin set, and all attributes equal to ATTEST_AK_ATTRIBUTES apart
 * from noDA; scheme RSASSA (or ECDSA) with SHA-256/384/512; objectName == Name(Public), all bytes;
 * the signature of the AK's scheme and hash verifies over CreateAttestation with the AK itself.
 * On success the AK Name (what MakeCredential binds) is copied to name/name_len when not NULL.
 * Failures log one line, which is also copied to why (ATTEST_WHY_MAX bytes) when not NULL:
 * -EBADMSG malformed, -EOPNOTSUPP unsupported key type, nameAlg or scheme, -EPERM a property an AK must
 * have is missing, -EKEYREJECTED the signature does not verify. Never crashes on any input. */
int attest_check_ak_params(const struct ak_params *p, unsigned flags, uint8_t name[ATTEST_NAME_MAX], size_t *name_len,
                           char *why);

/* ---- MakeCredential (docs/protocol-g1.md §7, docs/upstream.md §9.5) ---- */

#define ATTEST_SEED_LEN 16   /* the RSA EK's AES-128 symmetric key size */
#define ATTEST_SECRET_LEN 32 /* the activation secret upstream sends */

/* The two blobs of a credential challenge, each with its TPM2B size prefix, as sent in JSON
 * ("Credential", "Secret"). For a SHA-256 name and a 32-byte secret: 70 and 2 + EK size bytes. */
struct attest_credential {
    uint8_t id_object[2 + 2 + ATTEST_DIGEST_MAX + 2 + ATTEST_DIGEST_MAX]; /* TPM2B_ID_OBJECT */
    size_t id_object_len;
    uint8_t encrypted_secret[2 + RSA_MAX_MODULUS]; /* TPM2B_ENCRYPTED_SECRET */
    size_t encrypted_secret_len;
};

/* TPM2_MakeCredential in software for an RSA EK (>= 2048 bits): binds secret (1..64 bytes;
 * normally ATTEST_SECRET_LEN random bytes) to the AK Name. OAEP, KDFa and HMAC use the hash of
 * the Name's algorithm, as upstream does (docs/upstream.md §9.5). A TPM uses its EK's nameAlg instead, so the
 * credential activates only when the two agree: SHA-256 Names with the TCG RSA EK, which is all
 * attest_check_ak_params lets through. 0, -EINVAL (bad name, EK or secret size, logged) or -EIO. */
int attest_make_credential(const struct rsa_pub *ek, const uint8_t *name, size_t name_len, const uint8_t *secret,
                           size_t secret_len, struct attest_credential *out);

/* The same with the random inputs given, for known-answer tests: seed (ATTEST_SEED_LEN bytes)
 * and oaep_seed (hash-length bytes, or NULL for random). Never use fixed seeds in production. */
int attest_make_credential_seeded(const struct rsa_pub *ek, const uint8_t *name, size_t name_len, const uint8_t *secret,
                                  size_t secret_len, const uint8_t seed[ATTEST_SEED_LEN], const uint8_t *oaep_seed,
                                  struct attest_credential *out);

/* ---- PCR quote (G3, docs/protocol-g3.md §3 steps 2-4) ---- */

/* One PCR value the node reported (the "pcrs" map of a G3 proof). */
struct attest_pcr_value {
    uint32_t index;
    struct bytes digest; /* the SHA-256 bank value, 32 bytes */
};

/* Verifies a TPM2_Quote: the signature (TPMT_SIGNATURE: RSASSA for an RSA AK, ECDSA for an ECC
 * one, hash equal to the AK's scheme hash) over H(quote) with the AK of ak_public (TPMT_PUBLIC);
 * quote is a TPMS_ATTEST of type QUOTE with TPM_GENERATED magic; the only non-empty selection is
 * of the SHA-256 bank and its indices are exactly those of pcrs (no duplicates); H of the values
 * concatenated in ascending index order equals pcrDigest. When nonce is not NULL, extraData must
 * equal it (a quote without our nonce is replayable; upstream clients send none, so pass NULL
 * for them). Errors as attest_check_ak_params. */
int attest_verify_quote(struct bytes ak_public, struct bytes quote, struct bytes signature,
                        const struct attest_pcr_value *pcrs, size_t n_pcrs, const struct bytes *nonce, char *why);

#endif
