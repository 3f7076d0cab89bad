/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* G3 messages (kairos-io/kairos kcrypt/pkg/attestation/messages.go: AttestationInit,
 * AttestationChallenge, AttestationProof, AttestationResponse; the pcr_quote object is the one
 * kairos-io/tpm-helpers AKManager.GeneratePCRQuote marshals and kcrypt/pkg/attestation/server.go
 * VerifyProof unmarshals). Go's encoding/json writes struct fields in declaration order, []byte as
 * padded standard base64, map keys sorted as strings, and json.Encoder ends with a newline; its
 * decoder folds key case (not map keys) and ignores unknown keys. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "g3.h"
#include "kjson.h"
#include "proto_internal.h"

#define KEY_ESCROW "encrypted_passphrase"
#define KEY_NONCE "nonce"
#define KEY_GENERATED_BY "generated_by"

/* ---- shared helpers ---- */

static int fail(char *why, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, int r, const char *fmt, ...)
{
    va_list ap;

    if (why) {
        va_start(ap, fmt);
        vsnprintf(why, PROTO_G3_WHY_MAX, fmt, ap);
        va_end(ap);
    }
    return r;
}

static bool bytes_ok(const struct bytes *b, size_t min, size_t max)
{
    return b->len >= min && b->len <= max && (b->len == 0 || b->data);
}

static int parse_object(const char *msg, size_t len, struct kjson_doc **d, char *why)
{
    const struct kjson_limits lim = {.max_bytes = PROTO_G3_MAX_MESSAGE, .max_tokens = 1024, .max_depth = 16};
    struct kjson_error err = {0};

    *d = NULL;
    if (len > PROTO_G3_MAX_MESSAGE)
        return fail(why, -EBADMSG, "message of %zu bytes is over the limit of %u", len, PROTO_G3_MAX_MESSAGE);
    if (kjson_parse(msg, len, &lim, d, &err) < 0)
        return fail(why, -EBADMSG, "not JSON: %s at byte %zu", err.msg ? err.msg : "invalid", err.offset);
    if (kjson_type(*d, KJSON_ROOT) != KJSON_OBJECT) {
        kjson_free(*d);
        *d = NULL;
        return fail(why, -EBADMSG, "not a JSON object");
    }
    return 0;
}

/* Member key of obj as base64 bytes of min..max bytes (decoded). Go's rules: missing or null is
 * empty, which min > 0 refuses. name is the field's path for messages. */
static int get_b64(const struct kjson_doc *d, int obj, const char *key, const char *name, enum base64_variant v,
                   size_t min, size_t max, struct bytes *out, char *why)
{
    _cleanup_free_ char *s = NULL;
    size_t n = 0;
    int m = kjson_get(d, obj, key, KJSON_FOLD);

    *out = (struct bytes){0};
    if (m >= 0 && kjson_type(d, m) != KJSON_NULL) {
        if (kjson_type(d, m) != KJSON_STRING)
            return fail(why, -EINVAL, "%s: not a string", name);
        /* 4 characters per 3 bytes: refuse an oversized field before decoding it. */
        if (kjson_str(d, m, &s, NULL) < 0)
            return fail(why, -EINVAL, "%s: holds U+0000", name);
        if (strlen(s) > (max + 2) / 3 * 4)
            return fail(why, -EINVAL, "%s: over %zu bytes", name, max);
        if (s[0] && base64_decode(s, strlen(s), v, &out->data, &n) < 0)
            return fail(why, -EINVAL, "%s: not %s base64", name,
                        v == BASE64_STD ? "padded standard" : "unpadded URL-safe");
        out->len = n;
    }
    if (out->len < min || out->len > max) {
        size_t got = out->len;
        bytes_clear(out);
        if (got == 0)
            return fail(why, -EINVAL, "%s: missing or empty", name);
        return fail(why, -EINVAL, "%s: %zu bytes, not %zu..%zu", name, got, min, max);
    }
    return 0;
}

/* Member key of obj as a string of at most max bytes ("" when missing or null). */
static int get_str(const struct kjson_doc *d, int obj, const char *key, const char *name, size_t max, char **out,
                   char *why)
{
    int r = kjson_get_str(d, obj, key, KJSON_FOLD, out);

    if (r < 0)
        return fail(why, -EINVAL, "%s: not a string", name);
    if (strlen(*out) > max) {
        free(*out);
        *out = NULL;
        return fail(why, -EINVAL, "%s: longer than %zu bytes", name, max);
    }
    return 0;
}

static int get_bool(const struct kjson_doc *d, int obj, const char *key, const char *name, bool *out, char *why)
{
    if (kjson_get_bool(d, obj, key, KJSON_FOLD, out) < 0)
        return fail(why, -EINVAL, "%s: not true or false", name);
    return 0;
}

/* Member key of obj that must be an object; -EINVAL otherwise. */
static int get_object(const struct kjson_doc *d, int obj, const char *key, const char *name, char *why)
{
    int m = kjson_get(d, obj, key, KJSON_FOLD);

    if (m < 0 || kjson_type(d, m) == KJSON_NULL)
        return fail(why, -EINVAL, "%s: missing", name);
    if (kjson_type(d, m) != KJSON_OBJECT)
        return fail(why, -EINVAL, "%s: not an object", name);
    return m;
}

/* The "error" of a server message: -EREMOTEIO with *error set when it is a non-empty string
 * (cut to PROTO_G3_ERROR_MAX bytes on a character boundary), 0 when absent, null or empty. */
static int server_error(const struct kjson_doc *d, char **error, char *why)
{
    int m = kjson_get(d, KJSON_ROOT, "error", KJSON_FOLD);
    char *s = NULL;
    size_t n = 0;

    *error = NULL;
    if (m < 0 || kjson_type(d, m) == KJSON_NULL)
        return 0;
    if (kjson_type(d, m) != KJSON_STRING || kjson_str(d, m, &s, &n) < 0)
        return fail(why, -EINVAL, "error: not a string");
    n = strlen(s); /* a U+0000 ends the text */
    if (n > PROTO_G3_ERROR_MAX) {
        n = PROTO_G3_ERROR_MAX;
        while (n > 0 && ((uint8_t)s[n] & 0xc0) == 0x80)
            n--;
        s[n] = '\0';
    }
    if (n == 0) {
        free(s);
        return 0;
    }
    *error = s;
    return fail(why, -EREMOTEIO, "the server answered with an error");
}

/* A server message: parsed, then its "error" (as server_error). */
static int parse_server_message(const char *msg, size_t len, struct kjson_doc **d, char **error, char *why)
{
    int r = parse_object(msg, len, d, why);
    return r < 0 ? r : server_error(*d, error, why);
}

/* ---- 1. AttestationInit ---- */

void proto_g3_init_clear(struct proto_g3_init *m)
{
    if (!m)
        return;
    bytes_clear(&m->ek_public);
    bytes_clear(&m->ak.public_area);
    bytes_clear(&m->ak.create_data);
    bytes_clear(&m->ak.create_attestation);
    bytes_clear(&m->ak.create_signature);
    *m = (struct proto_g3_init){0};
}

int proto_g3_init_encode(const struct proto_g3_init *m, char **out, size_t *out_len)
{
    _cleanup_(kjson_w_freep) struct kjson_w *w = NULL;
    const struct ak_params *ak = &m->ak;

    *out = NULL;
    if (!bytes_ok(&m->ek_public, 1, PROTO_G3_EK_SPKI_MAX) || !bytes_ok(&ak->public_area, 1, PROTO_G3_TPM_STRUCT_MAX) ||
        !bytes_ok(&ak->create_data, 1, PROTO_G3_TPM_STRUCT_MAX) ||
        !bytes_ok(&ak->create_attestation, 1, PROTO_G3_TPM_STRUCT_MAX) ||
        !bytes_ok(&ak->create_signature, 1, PROTO_G3_TPM_STRUCT_MAX) || ak->use_tcsd_activation_format)
        return -EINVAL;
    w = kjson_w_new();
    kjson_w_obj_begin(w);
    kjson_w_kv_b64(w, "ek_public", m->ek_public.data, m->ek_public.len, BASE64_STD);
    kjson_w_key(w, "ak_params");
    kjson_w_obj_begin(w);
    kjson_w_kv_b64(w, "Public", ak->public_area.data, ak->public_area.len, BASE64_STD);
    kjson_w_kv_bool(w, "UseTCSDActivationFormat", false);
    kjson_w_kv_b64(w, "CreateData", ak->create_data.data, ak->create_data.len, BASE64_STD);
    kjson_w_kv_b64(w, "CreateAttestation", ak->create_attestation.data, ak->create_attestation.len, BASE64_STD);
    kjson_w_kv_b64(w, "CreateSignature", ak->create_signature.data, ak->create_signature.len, BASE64_STD);
    kjson_w_obj_end(w);
    if (m->defer_pcr_enrollment)
        kjson_w_kv_bool(w, "defer_pcr_enrollment", true);
    kjson_w_obj_end(w);
    return proto_w_finish(w, true, out, out_len);
}

int proto_g3_init_decode(const char *msg, size_t len, struct proto_g3_init *out, char *why)
{
    _cleanup_(kjson_freep) struct kjson_doc *d = NULL;
    struct ak_params *ak = &out->ak;
    int r, a;

    *out = (struct proto_g3_init){0};
    r = parse_object(msg, len, &d, why);
    if (r < 0)
        return r;
    a = get_object(d, KJSON_ROOT, "ak_params", "ak_params", why);
    r = a < 0 ? a : 0;
    if (r == 0)
        r = get_b64(d, KJSON_ROOT, "ek_public", "ek_public", BASE64_STD, 1, PROTO_G3_EK_SPKI_MAX, &out->ek_public, why);
    if (r == 0)
        r = get_b64(d, a, "Public", "ak_params.Public", BASE64_STD, 1, PROTO_G3_TPM_STRUCT_MAX, &ak->public_area, why);
    if (r == 0)
        r = get_b64(d, a, "CreateData", "ak_params.CreateData", BASE64_STD, 1, PROTO_G3_TPM_STRUCT_MAX,
                    &ak->create_data, why);
    if (r == 0)
        r = get_b64(d, a, "CreateAttestation", "ak_params.CreateAttestation", BASE64_STD, 1, PROTO_G3_TPM_STRUCT_MAX,
                    &ak->create_attestation, why);
    if (r == 0)
        r = get_b64(d, a, "CreateSignature", "ak_params.CreateSignature", BASE64_STD, 1, PROTO_G3_TPM_STRUCT_MAX,
                    &ak->create_signature, why);
    if (r == 0)
        r = get_bool(d, a, "UseTCSDActivationFormat", "ak_params.UseTCSDActivationFormat",
                     &ak->use_tcsd_activation_format, why);
    if (r == 0 && ak->use_tcsd_activation_format)
        r = fail(why, -EINVAL, "ak_params.UseTCSDActivationFormat: TPM 1.2 activation is not supported");
    if (r == 0)
        r = get_bool(d, KJSON_ROOT, "defer_pcr_enrollment", "defer_pcr_enrollment", &out->defer_pcr_enrollment, why);
    if (r < 0)
        proto_g3_init_clear(out);
    return r;
}

int proto_g3_ek(const struct bytes *ek_public, struct rsa_pub *key, char tpm_hash[2 * SHA256_LEN + 1], char **pem,
                char *why)
{
    _cleanup_free_ uint8_t *der = NULL;
    uint8_t digest[SHA256_LEN];
    size_t der_len;
    int r;

    if (pem)
        *pem = NULL;
    if (ek_public->len == 0 || ek_public->len > PROTO_G3_EK_SPKI_MAX)
        return fail(why, -EBADMSG, "ek_public: %zu bytes, not 1..%d", ek_public->len, PROTO_G3_EK_SPKI_MAX);
    r = crypto_spki_rsa_pub(ek_public->data, ek_public->len, key);
    if (r == -EPROTONOSUPPORT)
        return fail(why, r, "ek_public: not an RSA key (only RSA EKs are supported)");
    if (r < 0)
        return fail(why, -EBADMSG, "ek_public: not a DER SubjectPublicKeyInfo");
    if (crypto_rsa_spki_der(key, &der, &der_len) < 0)
        return fail(why, -EBADMSG, "ek_public: the RSA key cannot be re-encoded");
    crypto_sha256(der, der_len, digest);
    hex_encode(digest, SHA256_LEN, tpm_hash);
    if (pem && crypto_rsa_spki_pem(key, pem) < 0)
        return fail(why, -EBADMSG, "ek_public: the RSA key cannot be written as PEM");
    return 0;
}

/* ---- 2. AttestationChallenge ---- */

void proto_g3_challenge_clear(struct proto_g3_challenge *m)
{
    if (!m)
        return;
    bytes_clear(&m->credential);
    bytes_clear(&m->encrypted_secret);
    bytes_clear(&m->nonce);
    free(m->error);
    *m = (struct proto_g3_challenge){0};
}

int proto_g3_challenge_encode(const struct proto_g3_challenge *m, char **out, size_t *out_len)
{
    _cleanup_(kjson_w_freep) struct kjson_w *w = NULL;

    *out = NULL;
    if (!bytes_ok(&m->credential, 1, PROTO_G3_CREDENTIAL_MAX) ||
        !bytes_ok(&m->encrypted_secret, 1, PROTO_G3_ENC_SECRET_MAX) || !bytes_ok(&m->nonce, 0, PROTO_G3_NONCE_MAX))
        return -EINVAL;
    w = kjson_w_new();
    kjson_w_obj_begin(w);
    kjson_w_key(w, "challenge");
    kjson_w_obj_begin(w);
    kjson_w_kv_b64(w, "Credential", m->credential.data, m->credential.len, BASE64_STD);
    kjson_w_kv_b64(w, "Secret", m->encrypted_secret.data, m->encrypted_secret.len, BASE64_STD);
    kjson_w_obj_end(w);
    if (m->nonce.len)
        kjson_w_kv_b64(w, KEY_NONCE, m->nonce.data, m->nonce.len, BASE64_STD);
    kjson_w_obj_end(w);
    return proto_w_finish(w, true, out, out_len);
}

int proto_g3_challenge_decode(const char *msg, size_t len, struct proto_g3_challenge *out, char *why)
{
    _cleanup_(kjson_freep) struct kjson_doc *d = NULL;
    int r, c, n;

    *out = (struct proto_g3_challenge){0};
    r = parse_server_message(msg, len, &d, &out->error, why);
    if (r < 0)
        return r;
    c = get_object(d, KJSON_ROOT, "challenge", "challenge", why);
    r = c < 0 ? c : 0;
    if (r == 0)
        r = get_b64(d, c, "Credential", "challenge.Credential", BASE64_STD, 1, PROTO_G3_CREDENTIAL_MAX,
                    &out->credential, why);
    if (r == 0)
        r = get_b64(d, c, "Secret", "challenge.Secret", BASE64_STD, 1, PROTO_G3_ENC_SECRET_MAX, &out->encrypted_secret,
                    why);
    /* Present means our server: then it must be usable (an empty one would mean no freshness). */
    n = kjson_get(d, KJSON_ROOT, KEY_NONCE, KJSON_FOLD);
    if (r == 0 && n >= 0 && kjson_type(d, n) != KJSON_NULL)
        r = get_b64(d, KJSON_ROOT, KEY_NONCE, KEY_NONCE, BASE64_STD, 1, PROTO_G3_NONCE_MAX, &out->nonce, why);
    if (r < 0)
        proto_g3_challenge_clear(out);
    return r;
}

/* ---- 3. AttestationProof ---- */

void proto_g3_proof_clear(struct proto_g3_proof *m)
{
    if (!m)
        return;
    secret_free(m->secret);
    bytes_clear(&m->quote);
    bytes_clear(&m->signature);
    bytes_clear(&m->escrow);
    *m = (struct proto_g3_proof){0};
}

/* Go sorts map keys as strings: 0, 1, 10, 11, ..., 19, 2, 20, ..., 23, 3, ..., 9. */
static int cmp_decimal(const void *a, const void *b)
{
    char sa[12], sb[12];

    snprintf(sa, sizeof(sa), "%u", *(const unsigned *)a);
    snprintf(sb, sizeof(sb), "%u", *(const unsigned *)b);
    return strcmp(sa, sb);
}

int proto_g3_proof_encode(const struct proto_g3_proof *m, struct secret **out)
{
    _cleanup_(kjson_w_freep) struct kjson_w *w = NULL;
    unsigned order[PROTO_G3_PCR_COUNT];
    size_t n = 0;

    *out = NULL;
    if (!m->secret || m->secret->len == 0 || m->secret->len > PROTO_G3_SECRET_MAX ||
        !bytes_ok(&m->quote, 1, PROTO_G3_TPM_STRUCT_MAX) || !bytes_ok(&m->signature, 1, PROTO_G3_TPM_STRUCT_MAX) ||
        m->pcr_mask == 0 || m->pcr_mask >> PROTO_G3_PCR_COUNT ||
        (m->escrow.len != 0 && !bytes_ok(&m->escrow, PROTO_G3_ESCROW_LEN, PROTO_G3_ESCROW_LEN)) ||
        strnlen(m->version, sizeof(m->version)) > PROTO_G3_VERSION_MAX)
        return -EINVAL;
    for (unsigned i = 0; i < PROTO_G3_PCR_COUNT; i++)
        if (m->pcr_mask & (1u << i))
            order[n++] = i;
    qsort(order, n, sizeof(order[0]), cmp_decimal);

    w = kjson_w_new();
    kjson_w_obj_begin(w);
    kjson_w_kv_b64(w, "secret", m->secret->data, m->secret->len, BASE64_STD);
    kjson_w_key(w, "pcr_quote");
    kjson_w_obj_begin(w);
    kjson_w_key(w, "quote");
    kjson_w_obj_begin(w);
    kjson_w_kv_str(w, "version", m->version[0] ? m->version : "2");
    kjson_w_kv_b64(w, "quote", m->quote.data, m->quote.len, BASE64_STD);
    kjson_w_kv_b64(w, "signature", m->signature.data, m->signature.len, BASE64_STD);
    kjson_w_obj_end(w);
    kjson_w_key(w, "pcrs");
    kjson_w_obj_begin(w);
    for (size_t i = 0; i < n; i++) {
        char key[12];
        snprintf(key, sizeof(key), "%u", order[i]);
        kjson_w_kv_b64(w, key, m->pcr[order[i]], PROTO_G3_PCR_LEN, BASE64_STD);
    }
    kjson_w_obj_end(w);
    kjson_w_obj_end(w);
    if (m->escrow.len)
        kjson_w_kv_b64(w, KEY_ESCROW, m->escrow.data, m->escrow.len, BASE64_URL_RAW);
    kjson_w_obj_end(w);
    return kjson_w_result_secret(w, true, out);
}

/* A pcrs key: decimal 0..23, no sign, no leading zero. */
static int pcr_index(const char *s, unsigned *out)
{
    size_t n = strlen(s);

    if (n == 0 || n > 2 || (n == 2 && s[0] == '0'))
        return -EINVAL;
    *out = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        *out = *out * 10 + (unsigned)(s[i] - '0');
    }
    return *out < PROTO_G3_PCR_COUNT ? 0 : -EINVAL;
}

static int decode_pcrs(const struct kjson_doc *d, int pq, struct proto_g3_proof *out, char *why)
{
    int pcrs = get_object(d, pq, "pcrs", "pcr_quote.pcrs", why);

    if (pcrs < 0)
        return pcrs;
    if (kjson_count(d, pcrs) == 0)
        return fail(why, -EINVAL, "pcr_quote.pcrs: no PCR value");
    if (kjson_count(d, pcrs) > PROTO_G3_PCR_COUNT)
        return fail(why, -EINVAL, "pcr_quote.pcrs: %zu values, more than the %d PCRs a TPM has", kjson_count(d, pcrs),
                    PROTO_G3_PCR_COUNT);
    for (int k = kjson_next(d, pcrs, -1); k >= 0; k = kjson_next(d, pcrs, k)) {
        _cleanup_free_ char *key = NULL, *val = NULL;
        uint8_t *bytes = NULL;
        size_t n = 0;
        unsigned i;

        /* A key that is no PCR index is refused: Go would fail to unmarshal it into map[int]. */
        if (kjson_str(d, k, &key, NULL) < 0 || pcr_index(key, &i) < 0)
            return fail(why, -EINVAL, "pcr_quote.pcrs: a key is not a PCR index 0..%d", PROTO_G3_PCR_COUNT - 1);
        if (out->pcr_mask & (1u << i))
            return fail(why, -EINVAL, "pcr_quote.pcrs: PCR %u given twice", i);
        if (kjson_type(d, kjson_member_value(k)) != KJSON_STRING || kjson_str(d, kjson_member_value(k), &val, NULL) < 0)
            return fail(why, -EINVAL, "pcr_quote.pcrs[\"%u\"]: not a string", i);
        if (strlen(val) != 44 || base64_decode(val, 44, BASE64_STD, &bytes, &n) < 0 || n != PROTO_G3_PCR_LEN) {
            free(bytes);
            return fail(why, -EINVAL, "pcr_quote.pcrs[\"%u\"]: not base64 of a %d-byte SHA-256 value", i,
                        PROTO_G3_PCR_LEN);
        }
        memcpy(out->pcr[i], bytes, PROTO_G3_PCR_LEN);
        free(bytes);
        out->pcr_mask |= 1u << i;
    }
    return 0;
}

int proto_g3_proof_decode(const char *msg, size_t len, struct proto_g3_proof *out, char *why)
{
    _cleanup_(kjson_freep) struct kjson_doc *d = NULL;
    _cleanup_free_ char *version = NULL;
    struct bytes secret = {0};
    int r, pq = -1, q = -1;

    *out = (struct proto_g3_proof){0};
    r = parse_object(msg, len, &d, why);
    if (r < 0)
        return r;
    r = get_b64(d, KJSON_ROOT, "secret", "secret", BASE64_STD, 1, PROTO_G3_SECRET_MAX, &secret, why);
    if (r == 0) {
        out->secret = secret_new_copy(secret.data, secret.len);
        bytes_clear(&secret);
        pq = r = get_object(d, KJSON_ROOT, "pcr_quote", "pcr_quote", why);
    }
    if (r >= 0)
        q = r = get_object(d, pq, "quote", "pcr_quote.quote", why);
    if (r >= 0)
        r = get_str(d, q, "version", "pcr_quote.quote.version", PROTO_G3_VERSION_MAX, &version, why);
    if (r == 0) {
        memcpy(out->version, version, strlen(version) + 1);
        r = get_b64(d, q, "quote", "pcr_quote.quote.quote", BASE64_STD, 1, PROTO_G3_TPM_STRUCT_MAX, &out->quote, why);
    }
    if (r == 0)
        r = get_b64(d, q, "signature", "pcr_quote.quote.signature", BASE64_STD, 1, PROTO_G3_TPM_STRUCT_MAX,
                    &out->signature, why);
    if (r == 0)
        r = decode_pcrs(d, pq, out, why);
    if (r == 0)
        r = get_b64(d, KJSON_ROOT, KEY_ESCROW, KEY_ESCROW, BASE64_URL_RAW, 0, PROTO_G3_ESCROW_LEN, &out->escrow, why);
    if (r == 0 && out->escrow.len != 0 && out->escrow.len != PROTO_G3_ESCROW_LEN)
        r = fail(why, -EINVAL, "%s: %zu bytes, not one RSA-2048 ciphertext (%d)", KEY_ESCROW, out->escrow.len,
                 PROTO_G3_ESCROW_LEN);
    if (r < 0)
        proto_g3_proof_clear(out);
    return r < 0 ? r : 0;
}

/* ---- 4. AttestationResponse ---- */

void proto_g3_response_clear(struct proto_g3_response *m)
{
    if (!m)
        return;
    secret_free(m->passphrase);
    free(m->generated_by);
    free(m->error);
    *m = (struct proto_g3_response){0};
}

/* {"error":text} */
static struct kjson_w *error_doc(const char *text)
{
    struct kjson_w *w = kjson_w_new();
    kjson_w_obj_begin(w);
    kjson_w_kv_str(w, "error", text);
    kjson_w_obj_end(w);
    return w;
}

int proto_g3_error_encode(const char *text, char **out, size_t *out_len)
{
    _cleanup_(kjson_w_freep) struct kjson_w *w = NULL;

    *out = NULL;
    if (!text || !text[0])
        return -EINVAL;
    w = error_doc(text);
    return proto_w_finish(w, true, out, out_len);
}

int proto_g3_response_encode(const struct proto_g3_response *m, struct secret **out)
{
    _cleanup_(kjson_w_freep) struct kjson_w *w = NULL;

    *out = NULL;
    if (m->error && m->error[0]) {
        w = error_doc(m->error);
        return kjson_w_result_secret(w, true, out);
    }
    if (!m->passphrase || m->passphrase->len == 0 || m->passphrase->len > PROTO_G3_PASSPHRASE_MAX ||
        (m->generated_by && strlen(m->generated_by) > PROTO_G3_GENERATED_BY_MAX))
        return -EINVAL;
    w = kjson_w_new();
    kjson_w_obj_begin(w);
    kjson_w_kv_b64(w, "passphrase", m->passphrase->data, m->passphrase->len, BASE64_STD);
    if (m->generated_by && m->generated_by[0])
        kjson_w_kv_str(w, KEY_GENERATED_BY, m->generated_by);
    kjson_w_obj_end(w);
    return kjson_w_result_secret(w, true, out);
}

int proto_g3_response_decode(const char *msg, size_t len, struct proto_g3_response *out, char *why)
{
    _cleanup_(kjson_freep) struct kjson_doc *d = NULL;
    struct bytes pass = {0};
    int r;

    *out = (struct proto_g3_response){0};
    r = parse_server_message(msg, len, &d, &out->error, why);
    if (r < 0)
        return r;
    r = get_b64(d, KJSON_ROOT, "passphrase", "passphrase", BASE64_STD, 0, PROTO_G3_PASSPHRASE_MAX, &pass, why);
    if (r == 0)
        r = get_str(d, KJSON_ROOT, KEY_GENERATED_BY, KEY_GENERATED_BY, PROTO_G3_GENERATED_BY_MAX, &out->generated_by,
                    why);
    if (r == 0 && pass.len == 0)
        r = fail(why, -ENODATA, "neither a passphrase nor an error");
    if (r == 0) {
        out->passphrase = secret_new_copy(pass.data, pass.len);
    }
    bytes_clear(&pass);
    if (r < 0)
        proto_g3_response_clear(out);
    return r;
}
