/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Is this an attestation key of a real TPM? go-attestation's CheckAKParameters (docs/protocol-g1.md §8.2),
 * in its order and with its wording where it has one, without its crashes (docs/upstream.md §9.4) and with a
 * few checks it lacks (exact attributes, scheme, whole Name, signature hash). */
#include <string.h>

#include "attest_internal.h"

#define MIN_RSA_BITS 2048
#define MIN_ECC_BITS 256

/* The AK's key type and size. */
static int check_key(const struct attest_public *pub, unsigned flags, char *why)
{
    enum crypto_curve curve;

    switch (pub->type) {
    case ATTEST_ALG_RSA:
        if (pub->rsa_bits < MIN_RSA_BITS)
            return attest_fail(why, -EPERM, "attestation key too small: must be at least %d bits but was %u bits",
                               MIN_RSA_BITS, pub->rsa_bits);
        if (pub->rsa_n.len * 8 != pub->rsa_bits)
            return attest_fail(why, -EBADMSG, "AK Public: modulus of %zu bits, but keyBits says %u", pub->rsa_n.len * 8,
                               pub->rsa_bits);
        return 0;
    case ATTEST_ALG_ECC:
        if (!(flags & ATTEST_AK_ALLOW_ECC))
            return attest_fail(why, -EOPNOTSUPP,
                               "public key of alg 0x%x not supported: this protocol accepts RSA AKs only", pub->type);
        switch (attest_ecc_curve(pub, &curve)) {
        case 0: break;
        case -EOPNOTSUPP:
            return attest_fail(why, -EOPNOTSUPP, "attestation key uses unsupported curve 0x%04x", pub->ecc_curve);
        default:
            return attest_fail(why, -EBADMSG, "AK Public: ECC point coordinates of %zu and %zu bytes for curve 0x%04x",
                               pub->ecc_x.len, pub->ecc_y.len, pub->ecc_curve);
        }
        if (crypto_curve_len(curve) * 8 < MIN_ECC_BITS)
            return attest_fail(why, -EPERM, "attestation key too small: must be at least %d bits", MIN_ECC_BITS);
        return 0;
    }
    return attest_fail(why, -EOPNOTSUPP, "public key of alg 0x%x not supported", pub->type);
}

/* Attributes: go-attestation's four bits first (its messages), then the exact AK template. */
static int check_attributes(uint32_t a, char *why)
{
    const uint32_t limited = ATTEST_OBJ_RESTRICTED | ATTEST_OBJ_FIXED_PARENT | ATTEST_OBJ_SENSITIVE_DATA_ORIGIN;

    if (!(a & ATTEST_OBJ_FIXED_TPM))
        return attest_fail(why, -EPERM, "AK is exportable (attributes 0x%08x lack fixedTPM)", a);
    if ((a & limited) != limited)
        return attest_fail(why, -EPERM, "provided key is not limited to attestation (attributes 0x%08x)", a);
    /* docs/upstream.md §9.1: G1 clients make 0x00050072, G3 clients 0x00050472. Anything else (a decrypting
     * key, a policy-administered one) is not what any client we serve creates. */
    if ((a & ~ATTEST_OBJ_NO_DA) != ATTEST_AK_ATTRIBUTES)
        return attest_fail(why, -EPERM,
                           "AK attributes 0x%08x are not those of an attestation key (0x%08x, noDA optional)", a,
                           ATTEST_AK_ATTRIBUTES);
    return 0;
}

/* The AK signs with its own scheme: RSASSA or ECDSA, with a hash that is not SHA-1. A NULL scheme
 * made upstream panic (docs/upstream.md §9.4). */
static int check_scheme(const struct attest_public *pub, char *why)
{
    uint16_t want = pub->type == ATTEST_ALG_RSA ? ATTEST_ALG_RSASSA : ATTEST_ALG_ECDSA;
    enum crypto_hash h = attest_hash_of(pub->scheme_hash);

    if (pub->scheme != want || (h != CRYPTO_SHA256 && h != CRYPTO_SHA384 && h != CRYPTO_SHA512))
        return attest_fail(why, -EOPNOTSUPP,
                           "AK signing scheme 0x%04x with hash 0x%04x not supported (%s with SHA-256/384/512)",
                           pub->scheme, pub->scheme_hash, want == ATTEST_ALG_RSASSA ? "RSASSA" : "ECDSA");
    return 0;
}

int attest_check_ak_params(const struct ak_params *p, unsigned flags, uint8_t name[ATTEST_NAME_MAX], size_t *name_len,
                           char *why)
{
    struct attest_public pub;
    struct attest_creation_data cd;
    struct attest_attestation att;
    struct attest_signature sig;
    struct decode_error de = {0};
    uint8_t digest[CRYPTO_HASH_MAX], computed[ATTEST_NAME_MAX];
    size_t computed_len = 0;
    enum crypto_hash h;
    int r;

    if (p->create_signature.len < 8)
        return attest_fail(why, -EBADMSG, "signature is too short to be valid: only %zu bytes",
                           p->create_signature.len);
    r = decode_public(p->public_area.data, p->public_area.len, &pub, &de);
    if (r < 0)
        return attest_fail_decode(why, r, "AK Public", &de);
    r = decode_creation_data(p->create_data.data, p->create_data.len, &cd, &de);
    if (r < 0)
        return attest_fail_decode(why, r, "AK CreateData", &de);
    r = decode_attestation(p->create_attestation.data, p->create_attestation.len, &att, &de);
    if (r < 0)
        return attest_fail_decode(why, r, "AK CreateAttestation", &de);
    if (att.type != ATTEST_ST_ATTEST_CREATION)
        return attest_fail(why, -EPERM, "attestation does not apply to creation data, got tag %x", att.type);
    r = check_key(&pub, flags, why);
    if (r < 0)
        return r;

    /* The TPM derives the credential keys with its EK's nameAlg (SHA-256 for the TCG RSA EK), the
     * server with the Name's (docs/upstream.md §9.5): only a SHA-256 AK can ever complete activation, so say
     * so now rather than let the node fail later (checked on swtpm, tests/tpm/test_credential.sh). */
    h = attest_hash_of(pub.name_alg);
    if (pub.name_alg != ATTEST_ALG_SHA256)
        return attest_fail(why, -EOPNOTSUPP, "AK nameAlg 0x%04x not supported: credential activation needs SHA-256",
                           pub.name_alg);
    r = crypto_hash(h, p->create_data.data, p->create_data.len, digest);
    if (r < 0)
        return attest_fail(why, r, "cannot hash the AK CreateData");
    if (att.creation_hash.len != crypto_hash_len(h) ||
        memcmp(att.creation_hash.data, digest, att.creation_hash.len) != 0)
        return attest_fail(why, -EPERM,
                           "attestation refers to different public key (creationHash is not the hash of CreateData)");

    if (att.magic != ATTEST_GENERATED_MAGIC)
        return attest_fail(why, -EPERM, "creation attestation was not produced by a TPM (magic 0x%08x)", att.magic);
    r = check_attributes(pub.attributes, why);
    if (r < 0)
        return r;

    /* docs/upstream.md §9.4: upstream compares only the digests; a TPM writes the whole Name, so we do too. */
    r = attest_public_name(p->public_area.data, p->public_area.len, computed, &computed_len);
    if (r < 0)
        return attest_fail(why, r, "cannot compute the Name of the AK Public");
    if (att.object_name.len != computed_len || memcmp(att.object_name.data, computed, computed_len) != 0)
        return attest_fail(why, -EPERM, "creation attestation refers to a different key");

    r = check_scheme(&pub, why);
    if (r < 0)
        return r;
    r = decode_signature(p->create_signature.data, p->create_signature.len, &sig, &de);
    if (r < 0)
        return attest_fail_decode(why, r, "AK CreateSignature", &de);
    r = attest_verify_signature(&pub, &sig, p->create_attestation.data, p->create_attestation.len,
                                "AK creation attestation", why);
    if (r < 0)
        return r;

    if (name && name_len) {
        memcpy(name, computed, computed_len);
        *name_len = computed_len;
    }
    return 0;
}
