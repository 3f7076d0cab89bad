/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* G1 messages against vectors from an independent encoder (tests/data/proto/make_vectors.py). */
#include <stdio.h>
#include <string.h>

#include "proto.h"
#include "tap.h"

static char vec_name[8][32];
static char *vec_msg[8];
static size_t vec_len[8], nvec;

static void load_vectors(void)
{
    char *text = NULL, *line, *save = NULL;
    CHECK(file_read_all(tap_data("proto/vectors.txt"), 1 << 20, &text, NULL) == 0, "vectors load");
    if (!text)
        return;
    for (line = strtok_r(text, "\n", &save); line && nvec < 8; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        snprintf(vec_name[nvec], sizeof(vec_name[nvec]), "%s", line);
        vec_msg[nvec] = xmalloc(strlen(tab + 1) / 2 + 1);
        vec_len[nvec] = (size_t)hex_decode(tab + 1, strlen(tab + 1), (uint8_t *)vec_msg[nvec], strlen(tab + 1) / 2);
        vec_msg[nvec][vec_len[nvec]] = '\0';
        nvec++;
    }
    free(text);
}

static const char *vec(const char *name, size_t *len)
{
    for (size_t i = 0; i < nvec; i++)
        if (!strcmp(vec_name[i], name)) {
            *len = vec_len[i];
            return vec_msg[i];
        }
    *len = 0;
    return "";
}

static struct bytes range_bytes(int from, int to, size_t extra_zeros)
{
    struct bytes b = {xcalloc((size_t)(to - from) + extra_zeros, 1), (size_t)(to - from) + extra_zeros};
    for (int i = from; i < to; i++)
        b.data[i - from] = (uint8_t)i;
    return b;
}

static const char ek_pem[] = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtest\n"
                             "-----END PUBLIC KEY-----\n";

static void test_token(void)
{
    struct ak_params ak = {range_bytes(0, 40, 0), range_bytes(40, 90, 0), range_bytes(90, 200, 0),
                           range_bytes(200, 256, 200), false};
    struct proto_token t;
    char *ours = NULL;
    size_t len;
    const char *want = vec("token", &len);

    CHECK(proto_token_encode(ek_pem, &ak, &ours) == 0, "token encodes");
    CHECK(ours && strlen(ours) == len && !memcmp(ours, want, len),
          "our Authorization value is byte for byte the independent encoder's");
    CHECK(proto_token_decode(want, len, &t) == 0, "the independent token decodes");
    CHECK(t.ek_pem && !strcmp(t.ek_pem, ek_pem), "EK PEM recovered");
    CHECK(t.ak.public_area.len == 40 && !memcmp(t.ak.public_area.data, ak.public_area.data, 40) &&
              t.ak.create_signature.len == 256 && t.ak.create_attestation.len == 110 && t.ak.create_data.len == 50,
          "AK parameters recovered");
    proto_token_clear(&t);
    CHECK(proto_token_decode(want + 7, len - 7, &t) == -EBADMSG, "a token without 'Bearer TPM' is refused");
    CHECK(proto_token_decode("Bearer TPM!!!", 13, &t) == -EBADMSG, "bad base64 is refused");
    {
        const char bad[] = "Bearer TPMeyJFSyI6MX0="; /* {"EK":1} */
        CHECK(proto_token_decode(bad, strlen(bad), &t) == -EINVAL, "EK of the wrong type is refused");
    }
    {
        char *b64 = base64_encode((const uint8_t *)"[1,2]", 5, BASE64_STD, NULL), hdr[64];
        snprintf(hdr, sizeof(hdr), "Bearer TPM%s", b64);
        CHECK(proto_token_decode(hdr, strlen(hdr), &t) == -EINVAL, "a JSON array is refused");
        free(b64);
    }
    {
        const char *mixed = "{\"ek\":\"YQ==\",\"ak\":{\"public\":\"AQI=\",\"Extra\":5},\"Unknown\":true}";
        char *b64 = base64_encode((const uint8_t *)mixed, strlen(mixed), BASE64_STD, NULL), hdr[256];
        snprintf(hdr, sizeof(hdr), "Bearer TPM%s", b64);
        CHECK(proto_token_decode(hdr, strlen(hdr), &t) == 0 && !strcmp(t.ek_pem, "a") && t.ak.public_area.len == 2,
              "keys match case-insensitively and unknown keys are ignored, as Go does");
        proto_token_clear(&t);
        free(b64);
    }
    free(ours);
    bytes_clear(&ak.public_area);
    bytes_clear(&ak.create_data);
    bytes_clear(&ak.create_attestation);
    bytes_clear(&ak.create_signature);
}

static void test_challenge_answer(void)
{
    struct bytes cred = range_bytes(1, 71, 0), sec = {xmalloc(258), 258}, c2, s2;
    struct secret *act = secret_new(32), *back = NULL, *ours_s = NULL;
    char *ours = NULL;
    size_t len, olen;
    const char *want;

    for (int i = 0; i < 258; i++)
        sec.data[i] = (uint8_t)(i * 7);
    want = vec("challenge", &len);
    CHECK(proto_challenge_encode(&cred, &sec, &ours, &olen) == 0 && olen == len && !memcmp(ours, want, len),
          "challenge {\"EC\":{...}} matches the independent encoder");
    free(ours);
    CHECK(proto_challenge_decode(want, len, &c2, &s2) == 0 && c2.len == 70 && s2.len == 258 &&
              !memcmp(c2.data, cred.data, 70) && !memcmp(s2.data, sec.data, 258),
          "challenge decodes");
    bytes_clear(&c2);
    bytes_clear(&s2);
    CHECK(proto_challenge_decode("{\"EC\":{}}", 9, &c2, &s2) == -EINVAL, "an empty challenge is refused");
    CHECK(proto_challenge_decode("{\"error\":\"x\"}\n", 14, &c2, &s2) == -EINVAL, "a non-challenge is refused");

    for (int i = 0; i < 32; i++)
        act->data[i] = (uint8_t)(i * 13 + 5);
    act->len = 32;
    want = vec("answer", &len);
    CHECK(proto_answer_encode(act, &ours_s) == 0 && ours_s->len == len && !memcmp(ours_s->data, want, len),
          "answer {\"Secret\":..}\\n matches the independent encoder, newline included");
    secret_free(ours_s);
    CHECK(proto_answer_decode(want, len, &back) == 0 && back->len == 32 && !memcmp(back->data, act->data, 32),
          "answer decodes with its trailing newline");
    secret_free(back);
    back = NULL;
    CHECK(proto_answer_decode("{\"secret\":\"AAEC\"}", 17, &back) == 0 && back->len == 3,
          "answer decodes without newline, lower-case key");
    secret_free(back);
    secret_free(act);
    bytes_clear(&cred);
    bytes_clear(&sec);
}

static void test_payload(void)
{
    const char pw[] = "p<a>s&s\"w\\o\nrd";
    struct proto_payload p = {secret_new(sizeof(pw)), xstrdup(""), xstrdup("tpm")}, back;
    struct secret *enc = NULL;
    size_t len;
    const char *want = vec("payload", &len);

    memcpy(p.passphrase->data, pw, sizeof(pw) - 1);
    p.passphrase->len = sizeof(pw) - 1;
    CHECK(proto_payload_encode(&p, &enc) == 0 && enc->len == len && !memcmp(enc->data, want, len),
          "payload escapes <, >, & and quotes as Go does, keys in upstream's order, newline");
    secret_free(enc);
    CHECK(proto_payload_decode(want, len, &back) == 0 && back.passphrase->len == p.passphrase->len &&
              !memcmp(back.passphrase->data, pw, p.passphrase->len) && !strcmp(back.generated_by, "tpm") &&
              !strcmp(back.error, ""),
          "payload decodes");
    proto_payload_clear(&back);
    want = vec("payload_err", &len);
    CHECK(proto_payload_decode(want, len, &back) == 0 && !strcmp(back.error, "quarantined: COS_PERSISTENT") &&
              back.passphrase && back.passphrase->len == 0,
          "error payload decodes");
    proto_payload_clear(&back);
    CHECK(proto_payload_decode("{\"passphrase\":5}", 16, &back) == -EINVAL, "a number as passphrase is refused");
    CHECK(proto_payload_decode("not json", 8, &back) == -EBADMSG, "garbage is refused");
    proto_payload_clear(&p);
}

static void test_pem(void)
{
    struct rsa_pub a, b;
    char *pem = NULL;

    CHECK(file_read_all(tap_data("proto/ek-cert.pem"), 1 << 16, &pem, NULL) == 0 && proto_ek_pem_public(pem, &a) == 0,
          "EK CERTIFICATE PEM gives its RSA key");
    free(pem);
    pem = NULL;
    CHECK(file_read_all(tap_data("proto/ek-pub.pem"), 1 << 16, &pem, NULL) == 0 && proto_ek_pem_public(pem, &b) == 0,
          "EK PUBLIC KEY PEM gives its RSA key");
    free(pem);
    pem = NULL;
    CHECK(a.n_len == 256 && a.n_len == b.n_len && !memcmp(a.n, b.n, a.n_len) && a.e == b.e,
          "both are the same key (the certificate was made from it)");
    CHECK(file_read_all(tap_data("proto/ec-pub.pem"), 1 << 16, &pem, NULL) == 0 &&
              proto_ek_pem_public(pem, &a) == -EPROTONOSUPPORT,
          "an ECC EK is refused as not supported");
    free(pem);
    CHECK(proto_ek_pem_public("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", &a) == -EBADMSG,
          "another PEM type is refused (upstream: invalid pem type)");

    /* The certificate itself, for --ek-ca. */
    {
        uint8_t *der = NULL;
        size_t len = 0;
        struct rsa_pub c;
        pem = NULL;
        CHECK(file_read_all(tap_data("proto/ek-cert.pem"), 1 << 16, &pem, NULL) == 0 &&
                  proto_ek_pem_cert(pem, &der, &len) == 0 && crypto_x509_rsa_pub(der, len, &c) == 0 &&
                  c.n_len == b.n_len && !memcmp(c.n, b.n, c.n_len),
              "proto_ek_pem_cert gives the DER of the EK CERTIFICATE");
        free(pem);
        free(der);
        pem = NULL;
        CHECK(file_read_all(tap_data("proto/ek-pub.pem"), 1 << 16, &pem, NULL) == 0 &&
                  proto_ek_pem_cert(pem, &der, &len) == -ENOENT && !der,
              "an EK sent as PUBLIC KEY has no certificate: -ENOENT");
        free(pem);
        CHECK(proto_ek_pem_cert("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", &der, &len) ==
                  -EBADMSG,
              "another PEM type: -EBADMSG");
    }
}

/* lib/proto/ek_cache.c: found only by the whole key text, the oldest replaced, long keys not kept. */
static void test_ek_cache(void)
{
    static struct proto_ek_cache c;
    struct rsa_pub k = {.n = {0xc5}, .n_len = 1, .e = 65537};
    char hash[2 * SHA256_LEN + 1], key[PROTO_EK_CACHE_MAX_KEY + 1], other[16];
    const struct proto_ek_cache_entry *e;
    bool all = true;

    memset(hash, 'a', sizeof(hash) - 1);
    hash[sizeof(hash) - 1] = 0;
    memset(key, 'k', sizeof(key));
    CHECK(proto_ek_cache_find(&c, "key-0", 5) == NULL, "an empty cache finds nothing");
    proto_ek_cache_put(&c, "key-0", 5, &k, hash, "PEM 0");
    e = proto_ek_cache_find(&c, "key-0", 5);
    CHECK(e && e->ek.e == 65537 && e->ek.n[0] == 0xc5 && !strcmp(e->hash, hash) && !strcmp(e->pem, "PEM 0"),
          "a key put is found with its EK, hash and PEM");
    CHECK(!proto_ek_cache_find(&c, "key-1", 5) && !proto_ek_cache_find(&c, "key-", 4) &&
              !proto_ek_cache_find(&c, "key-00", 6),
          "another text of the same or another length is not found");
    proto_ek_cache_put(&c, key, sizeof(key), &k, hash, NULL);
    CHECK(!proto_ek_cache_find(&c, key, sizeof(key)), "a key text over PROTO_EK_CACHE_MAX_KEY is not kept");
    proto_ek_cache_put(&c, key, PROTO_EK_CACHE_MAX_KEY, &k, hash, NULL);
    e = proto_ek_cache_find(&c, key, PROTO_EK_CACHE_MAX_KEY);
    CHECK(e && e->pem == NULL, "one of PROTO_EK_CACHE_MAX_KEY bytes is kept, without a PEM");
    for (int i = 1; i < PROTO_EK_CACHE_SIZE; i++) {
        snprintf(other, sizeof(other), "other-%d", i);
        proto_ek_cache_put(&c, other, strlen(other), &k, hash, NULL);
    }
    CHECK(!proto_ek_cache_find(&c, "key-0", 5) && proto_ek_cache_find(&c, key, PROTO_EK_CACHE_MAX_KEY),
          "with the cache full, a put replaces the oldest key; the next oldest stays");
    for (int i = 1; i < PROTO_EK_CACHE_SIZE; i++) {
        snprintf(other, sizeof(other), "other-%d", i);
        all = all && proto_ek_cache_find(&c, other, strlen(other));
    }
    CHECK(all, "the newer ones are all found");
}

int main(void)
{
    load_vectors();
    test_token();
    test_challenge_answer();
    test_payload();
    test_pem();
    test_ek_cache();
    for (size_t i = 0; i < nvec; i++)
        free(vec_msg[i]);
    return tap_done();
}
