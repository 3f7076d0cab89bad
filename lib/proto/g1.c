/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* G1 messages (docs/protocol-g1.md §4). Go's encoding/json writes []byte as padded standard base64 and
 * struct fields in declaration order; its decoder folds key case and ignores unknown keys. */
#include <string.h>

#include "kjson.h"
#include "proto.h"
#include "proto_internal.h"

void proto_token_clear(struct proto_token *t)
{
    if (!t)
        return;
    free(t->ek_pem);
    bytes_clear(&t->ak.public_area);
    bytes_clear(&t->ak.create_data);
    bytes_clear(&t->ak.create_attestation);
    bytes_clear(&t->ak.create_signature);
    *t = (struct proto_token){0};
}

void proto_payload_clear(struct proto_payload *p)
{
    if (!p)
        return;
    secret_free(p->passphrase);
    free(p->error);
    free(p->generated_by);
    *p = (struct proto_payload){0};
}

/* Copies the writer's text into a malloc'd buffer, with a trailing newline when asked. */
int proto_w_finish(struct kjson_w *w, bool newline, char **out, size_t *out_len)
{
    const char *text;
    size_t len;
    int r = kjson_w_result(w, &text, &len);

    if (r < 0)
        return r;
    *out = xmalloc(len + 2);
    memcpy(*out, text, len);
    if (newline)
        (*out)[len++] = '\n';
    (*out)[len] = '\0';
    if (out_len)
        *out_len = len;
    return 0;
}

/* Reads member key of obj as base64std []byte (Go: missing or null = empty). */
static int get_b64(const struct kjson_doc *d, int obj, const char *key, struct bytes *out)
{
    _cleanup_free_ char *s = NULL;
    size_t n = 0;
    int r = kjson_get_str(d, obj, key, KJSON_FOLD, &s);

    if (r < 0)
        return -EINVAL;
    if (!s[0]) {
        *out = (struct bytes){0};
        return 0;
    }
    r = base64_decode(s, strlen(s), BASE64_STD, &out->data, &n);
    if (r < 0)
        return -EINVAL;
    out->len = n;
    return 0;
}

static int parse_object(const char *msg, size_t len, struct kjson_doc **d)
{
    if (len > PROTO_MAX_MESSAGE)
        return -EBADMSG;
    if (kjson_parse(msg, len, NULL, d, NULL) < 0)
        return -EBADMSG;
    if (kjson_type(*d, KJSON_ROOT) != KJSON_OBJECT) {
        kjson_free(*d);
        *d = NULL;
        return -EINVAL;
    }
    return 0;
}

int proto_token_encode(const char *ek_pem, const struct ak_params *ak, char **out)
{
    _cleanup_(kjson_w_freep) struct kjson_w *w = kjson_w_new();
    char *json = NULL, *b64;
    size_t len;
    int r;

    kjson_w_obj_begin(w);
    kjson_w_kv_b64(w, "EK", (const uint8_t *)ek_pem, strlen(ek_pem), BASE64_STD);
    kjson_w_key(w, "AK");
    kjson_w_obj_begin(w);
    kjson_w_kv_b64(w, "Public", ak->public_area.data, ak->public_area.len, BASE64_STD);
    kjson_w_kv_bool(w, "UseTCSDActivationFormat", ak->use_tcsd_activation_format);
    kjson_w_kv_b64(w, "CreateData", ak->create_data.data, ak->create_data.len, BASE64_STD);
    kjson_w_kv_b64(w, "CreateAttestation", ak->create_attestation.data, ak->create_attestation.len, BASE64_STD);
    kjson_w_kv_b64(w, "CreateSignature", ak->create_signature.data, ak->create_signature.len, BASE64_STD);
    kjson_w_obj_end(w);
    kjson_w_obj_end(w);
    r = proto_w_finish(w, false, &json, &len);
    if (r < 0)
        return r;
    b64 = base64_encode((const uint8_t *)json, len, BASE64_STD, &len);
    free(json);
    *out = xmalloc(strlen(PROTO_TOKEN_PREFIX) + len + 1);
    strcpy(*out, PROTO_TOKEN_PREFIX);
    strcat(*out, b64);
    free(b64);
    return 0;
}

int proto_token_decode(const char *header, size_t len, struct proto_token *out)
{
    const size_t plen = strlen(PROTO_TOKEN_PREFIX);
    _cleanup_(kjson_freep) struct kjson_doc *d = NULL;
    uint8_t *json = NULL;
    size_t json_len;
    int ak, r;

    *out = (struct proto_token){0};
    if (len < plen || memcmp(header, PROTO_TOKEN_PREFIX, plen) != 0 || len - plen > PROTO_MAX_MESSAGE)
        return -EBADMSG;
    if (base64_decode(header + plen, len - plen, BASE64_STD, &json, &json_len) < 0)
        return -EBADMSG;
    r = parse_object((const char *)json, json_len, &d);
    if (r < 0)
        goto out;
    {
        struct bytes ek = {0};
        r = get_b64(d, KJSON_ROOT, "EK", &ek);
        if (r < 0 || ek.len == 0 || memchr(ek.data, 0, ek.len)) {
            bytes_clear(&ek);
            r = -EINVAL;
            goto out;
        }
        out->ek_pem = xmalloc(ek.len + 1);
        memcpy(out->ek_pem, ek.data, ek.len);
        out->ek_pem[ek.len] = '\0';
        bytes_clear(&ek);
    }
    ak = kjson_get(d, KJSON_ROOT, "AK", KJSON_FOLD);
    if (ak >= 0 && kjson_type(d, ak) == KJSON_OBJECT) {
        if (get_b64(d, ak, "Public", &out->ak.public_area) < 0 ||
            get_b64(d, ak, "CreateData", &out->ak.create_data) < 0 ||
            get_b64(d, ak, "CreateAttestation", &out->ak.create_attestation) < 0 ||
            get_b64(d, ak, "CreateSignature", &out->ak.create_signature) < 0 ||
            kjson_get_bool(d, ak, "UseTCSDActivationFormat", KJSON_FOLD, &out->ak.use_tcsd_activation_format) < 0)
            r = -EINVAL;
    } else if (ak >= 0 && kjson_type(d, ak) != KJSON_NULL) {
        r = -EINVAL;
    }
out:
    free(json);
    if (r < 0)
        proto_token_clear(out);
    return r;
}

int proto_challenge_encode(const struct bytes *credential, const struct bytes *secret, char **out, size_t *out_len)
{
    _cleanup_(kjson_w_freep) struct kjson_w *w = kjson_w_new();

    kjson_w_obj_begin(w);
    kjson_w_key(w, "EC");
    kjson_w_obj_begin(w);
    kjson_w_kv_b64(w, "Credential", credential->data, credential->len, BASE64_STD);
    kjson_w_kv_b64(w, "Secret", secret->data, secret->len, BASE64_STD);
    kjson_w_obj_end(w);
    kjson_w_obj_end(w);
    return proto_w_finish(w, false, out, out_len);
}

int proto_challenge_decode(const char *msg, size_t len, struct bytes *credential, struct bytes *secret)
{
    _cleanup_(kjson_freep) struct kjson_doc *d = NULL;
    int ec, r = parse_object(msg, len, &d);

    *credential = *secret = (struct bytes){0};
    if (r < 0)
        return r;
    ec = kjson_get(d, KJSON_ROOT, "EC", KJSON_FOLD);
    if (ec < 0 || kjson_type(d, ec) != KJSON_OBJECT)
        return -EINVAL;
    if (get_b64(d, ec, "Credential", credential) < 0 || get_b64(d, ec, "Secret", secret) < 0 || credential->len == 0 ||
        secret->len == 0) {
        bytes_clear(credential);
        bytes_clear(secret);
        return -EINVAL;
    }
    return 0;
}

int proto_answer_encode(const struct secret *activated, struct secret **out)
{
    _cleanup_(kjson_w_freep) struct kjson_w *w = kjson_w_new();

    kjson_w_obj_begin(w);
    kjson_w_kv_b64(w, "Secret", activated->data, activated->len, BASE64_STD);
    kjson_w_obj_end(w);
    return kjson_w_result_secret(w, true, out);
}

int proto_answer_decode(const char *msg, size_t len, struct secret **activated)
{
    _cleanup_(kjson_freep) struct kjson_doc *d = NULL;
    struct bytes b = {0};
    int r = parse_object(msg, len, &d);

    if (r < 0)
        return r;
    if (get_b64(d, KJSON_ROOT, "Secret", &b) < 0)
        return -EINVAL;
    *activated = secret_new_copy(b.data, b.len);
    bytes_clear(&b);
    return 0;
}

int proto_payload_encode(const struct proto_payload *p, struct secret **out)
{
    _cleanup_(kjson_w_freep) struct kjson_w *w = kjson_w_new();

    kjson_w_obj_begin(w);
    kjson_w_key(w, "passphrase");
    if (p->passphrase)
        kjson_w_strn(w, p->passphrase->data, p->passphrase->len);
    else
        kjson_w_str(w, "");
    kjson_w_kv_str(w, "error", p->error);
    kjson_w_kv_str(w, "generated_by", p->generated_by);
    kjson_w_obj_end(w);
    return kjson_w_result_secret(w, true, out);
}

int proto_payload_decode(const char *msg, size_t len, struct proto_payload *out)
{
    _cleanup_(kjson_freep) struct kjson_doc *d = NULL;
    int r = parse_object(msg, len, &d);

    *out = (struct proto_payload){0};
    if (r < 0)
        return r;
    if (kjson_get_secret(d, KJSON_ROOT, "passphrase", KJSON_FOLD, &out->passphrase) < 0 ||
        kjson_get_str(d, KJSON_ROOT, "error", KJSON_FOLD, &out->error) < 0 ||
        kjson_get_str(d, KJSON_ROOT, "generated_by", KJSON_FOLD, &out->generated_by) < 0) {
        proto_payload_clear(out);
        return -EINVAL;
    }
    return 0;
}
