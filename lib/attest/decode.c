/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Bounded decoders of the TPM 2.0 structures an AK and a quote travel in (TPM 2.0 Part 2).
 * Big-endian; every size is checked against both the input and the TPM's own maximum; a value
 * the TPM's unmarshalling would refuse is refused; the input must be consumed exactly. */
#include <string.h>

#include "attest_internal.h"

struct reader {
    const uint8_t *start, *p, *end;
    const char *field;
    struct decode_error err;
    int r;
};

/* Records the first failure; later reads are no-ops returning false. */
static bool fail(struct reader *rd, int r, const char *problem)
{
    if (rd->r == 0) {
        rd->r = r;
        rd->err.field = rd->field;
        rd->err.problem = problem;
        rd->err.at = (size_t)(rd->p - rd->start);
    }
    return false;
}

static bool take(struct reader *rd, size_t n, const uint8_t **out)
{
    if (rd->r)
        return false;
    if ((size_t)(rd->end - rd->p) < n)
        return fail(rd, -EBADMSG, "truncated");
    *out = rd->p;
    rd->p += n;
    return true;
}

static bool u8(struct reader *rd, uint8_t *v)
{
    const uint8_t *b;
    if (!take(rd, 1, &b))
        return false;
    *v = b[0];
    return true;
}

static bool u16(struct reader *rd, uint16_t *v)
{
    const uint8_t *b;
    if (!take(rd, 2, &b))
        return false;
    *v = (uint16_t)(b[0] << 8 | b[1]);
    return true;
}

static bool u32(struct reader *rd, uint32_t *v)
{
    const uint8_t *b;
    if (!take(rd, 4, &b))
        return false;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return true;
}

static bool u64(struct reader *rd, uint64_t *v)
{
    uint32_t hi, lo;
    if (!u32(rd, &hi) || !u32(rd, &lo))
        return false;
    *v = (uint64_t)hi << 32 | lo;
    return true;
}

/* A TPM2B: u16 size, then that many bytes, at most max. */
static bool tpm2b(struct reader *rd, const char *field, size_t max, struct bytes *out)
{
    uint16_t n;
    rd->field = field;
    if (!u16(rd, &n))
        return false;
    if (n > max) {
        rd->p -= 2; /* report the size field itself */
        return fail(rd, -EBADMSG, "size above the TPM's limit");
    }
    out->len = n;
    return take(rd, n, (const uint8_t **)&out->data);
}

static int finish(struct reader *rd, struct decode_error *err)
{
    if (rd->r == 0 && rd->p != rd->end) {
        rd->field = "end";
        fail(rd, -EBADMSG, "trailing bytes");
    }
    if (rd->r && err)
        *err = rd->err;
    return rd->r;
}

static void reader_init(struct reader *rd, const uint8_t *in, size_t len)
{
    if (!in) /* an empty input may come as NULL; NULL + 0 is undefined in C */
        in = (const uint8_t *)"", len = 0;
    *rd = (struct reader){.start = in, .p = in, .end = in + len};
}

/* A hash algorithm where the TPM demands one (TPMI_ALG_HASH, no NULL). Unknown hashes are
 * decoded (the TPM may implement more than we do); whoever computes with them refuses them. */
static bool hash_alg(struct reader *rd, const char *field, uint16_t *alg)
{
    rd->field = field;
    if (!u16(rd, alg))
        return false;
    if (*alg == ATTEST_ALG_NULL) {
        rd->p -= 2;
        return fail(rd, -EBADMSG, "NULL where a hash is required");
    }
    return true;
}

/* TPMT_SYM_DEF_OBJECT */
static bool sym_def_object(struct reader *rd, struct attest_public *out)
{
    rd->field = "TPMT_PUBLIC.parameters.symmetric";
    if (!u16(rd, &out->sym_alg))
        return false;
    switch (out->sym_alg) {
    case ATTEST_ALG_NULL: return true;
    case ATTEST_ALG_AES:
    case ATTEST_ALG_SM4:
    case ATTEST_ALG_CAMELLIA: return u16(rd, &out->sym_bits) && u16(rd, &out->sym_mode);
    default: rd->p -= 2; return fail(rd, -EBADMSG, "not a symmetric object algorithm");
    }
}

/* TPMT_RSA_SCHEME / TPMT_ECC_SCHEME: the scheme, then its hash (and ECDAA's count). */
static bool asym_scheme(struct reader *rd, struct attest_public *out)
{
    rd->field = "TPMT_PUBLIC.parameters.scheme";
    if (!u16(rd, &out->scheme))
        return false;
    switch (out->scheme) {
    case ATTEST_ALG_NULL: return true;
    case ATTEST_ALG_RSAES:
    case ATTEST_ALG_RSASSA:
    case ATTEST_ALG_RSAPSS:
    case ATTEST_ALG_OAEP:
        if (out->type != ATTEST_ALG_RSA) {
            rd->p -= 2;
            return fail(rd, -EBADMSG, "RSA scheme on an ECC key");
        }
        return out->scheme == ATTEST_ALG_RSAES ||
               hash_alg(rd, "TPMT_PUBLIC.parameters.scheme.hashAlg", &out->scheme_hash);
    case ATTEST_ALG_ECDSA:
    case ATTEST_ALG_ECDH:
    case ATTEST_ALG_SM2:
    case ATTEST_ALG_ECSCHNORR:
    case ATTEST_ALG_ECMQV:
    case ATTEST_ALG_ECDAA:
        if (out->type != ATTEST_ALG_ECC) {
            rd->p -= 2;
            return fail(rd, -EBADMSG, "ECC scheme on an RSA key");
        }
        if (!hash_alg(rd, "TPMT_PUBLIC.parameters.scheme.hashAlg", &out->scheme_hash))
            return false;
        return out->scheme != ATTEST_ALG_ECDAA || u16(rd, &out->scheme_count);
    default: rd->p -= 2; return fail(rd, -EBADMSG, "unknown asymmetric scheme");
    }
}

static bool rsa_parms(struct reader *rd, struct attest_public *out)
{
    if (!sym_def_object(rd, out) || !asym_scheme(rd, out))
        return false;
    rd->field = "TPMT_PUBLIC.parameters.keyBits";
    if (!u16(rd, &out->rsa_bits))
        return false;
    rd->field = "TPMT_PUBLIC.parameters.exponent";
    return u32(rd, &out->rsa_exponent);
}

static bool ecc_parms(struct reader *rd, struct attest_public *out)
{
    if (!sym_def_object(rd, out) || !asym_scheme(rd, out))
        return false;
    rd->field = "TPMT_PUBLIC.parameters.curveID";
    if (!u16(rd, &out->ecc_curve))
        return false;
    rd->field = "TPMT_PUBLIC.parameters.kdf";
    if (!u16(rd, &out->kdf))
        return false;
    switch (out->kdf) {
    case ATTEST_ALG_NULL: return true;
    case ATTEST_ALG_KDF1_SP800_56A:
    case ATTEST_ALG_KDF2:
    case ATTEST_ALG_KDF1_SP800_108: return hash_alg(rd, "TPMT_PUBLIC.parameters.kdf.hashAlg", &out->kdf_hash);
    default: rd->p -= 2; return fail(rd, -EBADMSG, "unknown key derivation scheme");
    }
}

int decode_public(const uint8_t *in, size_t len, struct attest_public *out, struct decode_error *err)
{
    struct reader rd;

    reader_init(&rd, in, len);
    memset(out, 0, sizeof(*out));
    rd.field = "TPMT_PUBLIC.type";
    if (u16(&rd, &out->type) && out->type != ATTEST_ALG_RSA && out->type != ATTEST_ALG_ECC) {
        rd.p -= 2;
        fail(&rd, out->type == ATTEST_ALG_KEYEDHASH || out->type == ATTEST_ALG_SYMCIPHER ? -EOPNOTSUPP : -EBADMSG,
             "not an RSA or ECC key");
    }
    rd.field = "TPMT_PUBLIC.nameAlg";
    u16(&rd, &out->name_alg);
    rd.field = "TPMT_PUBLIC.objectAttributes";
    u32(&rd, &out->attributes);
    tpm2b(&rd, "TPMT_PUBLIC.authPolicy", ATTEST_DIGEST_MAX, &out->auth_policy);
    if (rd.r == 0 && out->type == ATTEST_ALG_RSA) {
        rsa_parms(&rd, out);
        tpm2b(&rd, "TPMT_PUBLIC.unique.rsa", RSA_MAX_MODULUS, &out->rsa_n);
    } else if (rd.r == 0) {
        ecc_parms(&rd, out);
        tpm2b(&rd, "TPMT_PUBLIC.unique.ecc.x", ATTEST_ECC_PARAM_MAX, &out->ecc_x);
        tpm2b(&rd, "TPMT_PUBLIC.unique.ecc.y", ATTEST_ECC_PARAM_MAX, &out->ecc_y);
    }
    return finish(&rd, err);
}

static bool pcr_selection(struct reader *rd, struct attest_pcr_selection *out)
{
    uint32_t count;

    memset(out, 0, sizeof(*out));
    rd->field = "TPML_PCR_SELECTION.count";
    if (!u32(rd, &count))
        return false;
    if (count > ATTEST_PCR_BANKS_MAX) {
        rd->p -= 4;
        return fail(rd, -EBADMSG, "more banks than a TPM has");
    }
    out->count = count;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *bits;
        if (!hash_alg(rd, "TPMS_PCR_SELECTION.hash", &out->bank[i].hash))
            return false;
        rd->field = "TPMS_PCR_SELECTION.sizeofSelect";
        if (!u8(rd, &out->bank[i].size))
            return false;
        if (out->bank[i].size > ATTEST_PCR_SELECT_MAX) {
            rd->p -= 1;
            return fail(rd, -EBADMSG, "bitmap larger than PCR_SELECT_MAX");
        }
        rd->field = "TPMS_PCR_SELECTION.pcrSelect";
        if (!take(rd, out->bank[i].size, &bits))
            return false;
        memcpy(out->bank[i].select, bits, out->bank[i].size);
    }
    return true;
}

int attest_decode_pcr_selection(const uint8_t *in, size_t len, struct attest_pcr_selection *out)
{
    struct reader rd;
    reader_init(&rd, in, len);
    pcr_selection(&rd, out);
    return finish(&rd, NULL);
}

int decode_creation_data(const uint8_t *in, size_t len, struct attest_creation_data *out, struct decode_error *err)
{
    struct reader rd;

    reader_init(&rd, in, len);
    memset(out, 0, sizeof(*out));
    pcr_selection(&rd, &out->pcr_select);
    tpm2b(&rd, "TPMS_CREATION_DATA.pcrDigest", ATTEST_DIGEST_MAX, &out->pcr_digest);
    rd.field = "TPMS_CREATION_DATA.locality";
    u8(&rd, &out->locality);
    rd.field = "TPMS_CREATION_DATA.parentNameAlg";
    u16(&rd, &out->parent_name_alg);
    tpm2b(&rd, "TPMS_CREATION_DATA.parentName", ATTEST_NAME_MAX, &out->parent_name);
    tpm2b(&rd, "TPMS_CREATION_DATA.parentQualifiedName", ATTEST_NAME_MAX, &out->parent_qualified_name);
    tpm2b(&rd, "TPMS_CREATION_DATA.outsideInfo", ATTEST_NAME_MAX, &out->outside_info);
    return finish(&rd, err);
}

int decode_attestation(const uint8_t *in, size_t len, struct attest_attestation *out, struct decode_error *err)
{
    struct reader rd;

    reader_init(&rd, in, len);
    memset(out, 0, sizeof(*out));
    rd.field = "TPMS_ATTEST.magic";
    u32(&rd, &out->magic);
    rd.field = "TPMS_ATTEST.type";
    u16(&rd, &out->type);
    tpm2b(&rd, "TPMS_ATTEST.qualifiedSigner", ATTEST_NAME_MAX, &out->qualified_signer);
    tpm2b(&rd, "TPMS_ATTEST.extraData", ATTEST_NAME_MAX, &out->extra_data);
    rd.field = "TPMS_ATTEST.clockInfo";
    u64(&rd, &out->clock);
    u32(&rd, &out->reset_count);
    u32(&rd, &out->restart_count);
    if (u8(&rd, &out->safe) && out->safe > 1) {
        rd.p -= 1;
        fail(&rd, -EBADMSG, "safe is neither YES nor NO");
    }
    rd.field = "TPMS_ATTEST.firmwareVersion";
    u64(&rd, &out->firmware_version);
    if (rd.r == 0) {
        switch (out->type) {
        case ATTEST_ST_ATTEST_CREATION:
            tpm2b(&rd, "TPMS_CREATION_INFO.objectName", ATTEST_NAME_MAX, &out->object_name);
            tpm2b(&rd, "TPMS_CREATION_INFO.creationHash", ATTEST_DIGEST_MAX, &out->creation_hash);
            break;
        case ATTEST_ST_ATTEST_QUOTE:
            pcr_selection(&rd, &out->pcr_select);
            tpm2b(&rd, "TPMS_QUOTE_INFO.pcrDigest", ATTEST_DIGEST_MAX, &out->pcr_digest);
            break;
        case ATTEST_ST_ATTEST_CERTIFY:
            tpm2b(&rd, "TPMS_CERTIFY_INFO.name", ATTEST_NAME_MAX, &out->name);
            tpm2b(&rd, "TPMS_CERTIFY_INFO.qualifiedName", ATTEST_NAME_MAX, &out->qualified_name);
            break;
        default:
            rd.field = "TPMS_ATTEST.type";
            rd.p = rd.start + 4;
            fail(&rd, out->type >= 0x8014 && out->type <= 0x801A ? -EOPNOTSUPP : -EBADMSG,
                 "not a creation, quote or certify attestation");
        }
    }
    return finish(&rd, err);
}

int decode_signature(const uint8_t *in, size_t len, struct attest_signature *out, struct decode_error *err)
{
    struct reader rd;

    reader_init(&rd, in, len);
    memset(out, 0, sizeof(*out));
    rd.field = "TPMT_SIGNATURE.sigAlg";
    if (!u16(&rd, &out->alg))
        return finish(&rd, err);
    switch (out->alg) {
    case ATTEST_ALG_RSASSA:
    case ATTEST_ALG_RSAPSS:
        hash_alg(&rd, "TPMT_SIGNATURE.hash", &out->hash);
        tpm2b(&rd, "TPMT_SIGNATURE.sig", RSA_MAX_MODULUS, &out->rsa);
        break;
    case ATTEST_ALG_ECDSA:
        hash_alg(&rd, "TPMT_SIGNATURE.hash", &out->hash);
        tpm2b(&rd, "TPMT_SIGNATURE.signatureR", ATTEST_ECC_PARAM_MAX, &out->ecc_r);
        tpm2b(&rd, "TPMT_SIGNATURE.signatureS", ATTEST_ECC_PARAM_MAX, &out->ecc_s);
        break;
    default: rd.p -= 2; fail(&rd, -EOPNOTSUPP, "not an RSASSA, RSAPSS or ECDSA signature");
    }
    return finish(&rd, err);
}

int attest_decode_public(const uint8_t *in, size_t len, struct attest_public *out)
{
    return decode_public(in, len, out, NULL);
}

int attest_decode_creation_data(const uint8_t *in, size_t len, struct attest_creation_data *out)
{
    return decode_creation_data(in, len, out, NULL);
}

int attest_decode_attestation(const uint8_t *in, size_t len, struct attest_attestation *out)
{
    return decode_attestation(in, len, out, NULL);
}

int attest_decode_signature(const uint8_t *in, size_t len, struct attest_signature *out)
{
    return decode_signature(in, len, out, NULL);
}
