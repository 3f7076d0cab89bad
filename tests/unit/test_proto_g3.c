/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* G3 messages (lib/proto/g3.h): exact bytes of the encoders against hand-written upstream-shaped
 * texts, round trips, Go's tolerance (key case, unknown keys, whitespace), the {"error":..} in
 * place of a server message, and refusals of every bound and wrong type with a reason that names
 * the field. The cross-check with an independent Python codec is tests/tpm/test_g3_messages.sh. */
#include <stdio.h>
#include <string.h>

#include "g3.h"
#include "tap.h"

static char why[PROTO_G3_WHY_MAX];

/* What an encoder that returns a struct secret made, as malloc'd text (the secret freed). */
static int secret_text(int r, struct secret **sp, char **txt, size_t *n)
{
    struct secret *s = *sp; /* read after the encoder ran (the arguments' order is unspecified) */

    *txt = NULL;
    *n = 0;
    if (r == 0) {
        *txt = xmalloc(s->len + 1);
        memcpy(*txt, s->data, s->len);
        (*txt)[s->len] = '\0';
        *n = s->len;
    }
    secret_free(s);
    return r;
}

static int proof_text(const struct proto_g3_proof *m, char **txt, size_t *n)
{
    struct secret *s = NULL;
    return secret_text(proto_g3_proof_encode(m, &s), &s, txt, n);
}

static int response_text(const struct proto_g3_response *m, char **txt, size_t *n)
{
    struct secret *s = NULL;
    return secret_text(proto_g3_response_encode(m, &s), &s, txt, n);
}

static struct bytes filled(size_t n, uint8_t start)
{
    struct bytes b = {xmalloc(n ? n : 1), n};
    for (size_t i = 0; i < n; i++)
        b.data[i] = (uint8_t)(start + i);
    return b;
}

static struct secret *secret_of(const char *s, size_t n)
{
    struct secret *x = secret_new(n);
    memcpy(x->data, s, n);
    x->len = n;
    return x;
}

static bool same(const struct bytes *a, const struct bytes *b)
{
    return a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data, a->len));
}

static bool text_is(const char *got, size_t got_len, const char *want)
{
    bool ok = got && got_len == strlen(want) && !memcmp(got, want, got_len);
    if (!ok)
        printf("# got:  %s# want: %s\n", got ? got : "(null)\n", want);
    return ok;
}

/* decode(literal) with its length. */
#define DEC(fn, lit, out) fn(lit, sizeof(lit) - 1, out, why)

static void test_init(void)
{
    struct proto_g3_init m = {.ek_public = {(uint8_t *)"\x30\x82\x01\x22", 4},
                              .ak = {.public_area = {(uint8_t *)"\x00\x01", 2},
                                     .create_data = {(uint8_t *)"abc", 3},
                                     .create_attestation = {(uint8_t *)"\xff\x54\x43\x47", 4},
                                     .create_signature = {(uint8_t *)"\x00\x14\x00\x0b", 4}}},
                         back;
    char *txt = NULL;
    size_t n;

    CHECK(
        proto_g3_init_encode(&m, &txt, &n) == 0 &&
            text_is(txt, n,
                    "{\"ek_public\":\"MIIBIg==\",\"ak_params\":{\"Public\":\"AAE=\",\"UseTCSDActivationFormat\":false,"
                    "\"CreateData\":\"YWJj\",\"CreateAttestation\":\"/1RDRw==\",\"CreateSignature\":\"ABQACw==\"}}\n"),
        "init: Go's field order, padded base64, defer_pcr_enrollment omitted when false, newline");
    CHECK(proto_g3_init_decode(txt, n, &back, why) == 0 && same(&back.ek_public, &m.ek_public) &&
              same(&back.ak.public_area, &m.ak.public_area) && same(&back.ak.create_data, &m.ak.create_data) &&
              same(&back.ak.create_attestation, &m.ak.create_attestation) &&
              same(&back.ak.create_signature, &m.ak.create_signature) && !back.defer_pcr_enrollment,
          "init round trip");
    proto_g3_init_clear(&back);
    free(txt);
    m.defer_pcr_enrollment = true;
    CHECK(proto_g3_init_encode(&m, &txt, &n) == 0 && strstr(txt, "\"CreateSignature\":\"ABQACw==\"},"
                                                                 "\"defer_pcr_enrollment\":true}\n"),
          "init: defer_pcr_enrollment:true last");
    CHECK(proto_g3_init_decode(txt, n, &back, why) == 0 && back.defer_pcr_enrollment, "...and decodes");
    proto_g3_init_clear(&back);
    free(txt);

    CHECK(
        DEC(proto_g3_init_decode,
            " {\"EK_Public\":\"MA==\",\"extra\":[1,{\"a\":null}],\"AK_PARAMS\":{\"public\":\"AQ==\",\"createdata\":\"Ag==\","
            "\"CREATEATTESTATION\":\"Aw==\",\"createSignature\":\"BA==\",\"new\":1},\"Defer_PCR_Enrollment\":true}\r\n",
            &back) == 0 &&
            back.ek_public.len == 1 && back.ak.create_signature.data[0] == 4 && back.defer_pcr_enrollment,
        "init: keys of any case, unknown keys and surrounding whitespace accepted (Go)");
    proto_g3_init_clear(&back);
    CHECK(DEC(proto_g3_init_decode,
              "{\"ak_params\":{\"Public\":\"AQ==\",\"CreateData\":\"Ag==\",\"CreateAttestation\":"
              "\"Aw==\",\"CreateSignature\":\"BA==\"}}",
              &back) == -EINVAL &&
              strstr(why, "ek_public") && strstr(why, "missing"),
          "init without ek_public: refused, naming it (%s)", why);
    CHECK(DEC(proto_g3_init_decode, "{\"ek_public\":\"MA==\",\"ak_params\":\"eyJ9\"}", &back) == -EINVAL &&
              strstr(why, "ak_params: not an object"),
          "init: ak_params as a string: refused (%s)", why);
    CHECK(DEC(proto_g3_init_decode,
              "{\"ek_public\":\"MA==\",\"ak_params\":{\"Public\":\"AQ==\",\"CreateData\":\"\","
              "\"CreateAttestation\":\"Aw==\",\"CreateSignature\":\"BA==\"}}",
              &back) == -EINVAL &&
              strstr(why, "ak_params.CreateData"),
          "init: an empty AK structure: refused (%s)", why);
    CHECK(DEC(proto_g3_init_decode, "{\"ek_public\":5,\"ak_params\":{}}", &back) == -EINVAL &&
              strstr(why, "ek_public: not a string"),
          "init: ek_public as a number: refused (%s)", why);
    CHECK(DEC(proto_g3_init_decode,
              "{\"ek_public\":\"M A==\",\"ak_params\":{\"Public\":\"AQ==\",\"CreateData\":\"Ag==\","
              "\"CreateAttestation\":\"Aw==\",\"CreateSignature\":\"BA==\"}}",
              &back) == -EINVAL &&
              strstr(why, "base64"),
          "init: bad base64: refused (%s)", why);
    CHECK(DEC(proto_g3_init_decode,
              "{\"ek_public\":\"MA==\",\"ak_params\":{\"Public\":\"AQ==\",\"CreateData\":\"Ag==\","
              "\"CreateAttestation\":\"Aw==\",\"CreateSignature\":\"BA==\","
              "\"UseTCSDActivationFormat\":true}}",
              &back) == -EINVAL &&
              strstr(why, "TPM 1.2"),
          "init: UseTCSDActivationFormat true: refused (%s)", why);
    CHECK(DEC(proto_g3_init_decode,
              "{\"ek_public\":\"MA==\",\"ak_params\":{\"Public\":\"AQ==\",\"CreateData\":\"Ag==\","
              "\"CreateAttestation\":\"Aw==\",\"CreateSignature\":\"BA==\"},"
              "\"defer_pcr_enrollment\":\"yes\"}",
              &back) == -EINVAL &&
              strstr(why, "defer_pcr_enrollment"),
          "init: defer_pcr_enrollment as a string: refused (%s)", why);
    {
        struct proto_g3_init big = m;
        big.ek_public = filled(PROTO_G3_EK_SPKI_MAX + 1, 0);
        CHECK(proto_g3_init_encode(&big, &txt, &n) == -EINVAL && !txt, "init: the encoder refuses an oversized EK");
        big.ek_public.len--;
        CHECK(proto_g3_init_encode(&big, &txt, &n) == 0, "...and takes one of the limit");
        CHECK(proto_g3_init_decode(txt, n, &back, why) == 0 && back.ek_public.len == PROTO_G3_EK_SPKI_MAX,
              "...which decodes");
        proto_g3_init_clear(&back);
        free(txt);
        /* One byte more, made by hand: the decoder refuses it. */
        {
            struct bytes b = filled(PROTO_G3_EK_SPKI_MAX + 3, 0);
            char *b64 = base64_encode(b.data, b.len, BASE64_STD, NULL), *msg = xmalloc(strlen(b64) + 300);
            n = (size_t)sprintf(msg,
                                "{\"ek_public\":\"%s\",\"ak_params\":{\"Public\":\"AQ==\",\"CreateData\":\"Ag==\","
                                "\"CreateAttestation\":\"Aw==\",\"CreateSignature\":\"BA==\"}}",
                                b64);
            CHECK(proto_g3_init_decode(msg, n, &back, why) == -EINVAL && strstr(why, "ek_public"),
                  "init: an EK over %d bytes is refused (%s)", PROTO_G3_EK_SPKI_MAX, why);
            free(b64);
            free(msg);
            bytes_clear(&b);
        }
        bytes_clear(&big.ek_public);
    }
    CHECK(DEC(proto_g3_init_decode, "[1]", &back) == -EBADMSG, "init: an array is refused");
    CHECK(DEC(proto_g3_init_decode, "{\"ek_public\":", &back) == -EBADMSG && strstr(why, "not JSON"),
          "init: truncated JSON is refused (%s)", why);
}

static void test_challenge(void)
{
    struct proto_g3_challenge m = {.credential = filled(70, 1), .encrypted_secret = filled(258, 9)}, back;
    char *txt = NULL, *want;
    size_t n;
    char *c64 = base64_encode(m.credential.data, 70, BASE64_STD, NULL),
         *s64 = base64_encode(m.encrypted_secret.data, 258, BASE64_STD, NULL);

    want = xmalloc(strlen(c64) + strlen(s64) + 200);
    sprintf(want, "{\"challenge\":{\"Credential\":\"%s\",\"Secret\":\"%s\"}}\n", c64, s64);
    CHECK(proto_g3_challenge_encode(&m, &txt, &n) == 0 && text_is(txt, n, want),
          "challenge without a nonce is upstream's AttestationChallenge exactly");
    CHECK(proto_g3_challenge_decode(txt, n, &back, why) == 0 && same(&back.credential, &m.credential) &&
              same(&back.encrypted_secret, &m.encrypted_secret) && back.nonce.len == 0 && !back.error,
          "...and decodes with no nonce");
    proto_g3_challenge_clear(&back);
    free(txt);
    m.nonce = filled(32, 0x40);
    {
        char *n64 = base64_encode(m.nonce.data, 32, BASE64_STD, NULL);
        sprintf(want, "{\"challenge\":{\"Credential\":\"%s\",\"Secret\":\"%s\"},\"nonce\":\"%s\"}\n", c64, s64, n64);
        free(n64);
    }
    CHECK(proto_g3_challenge_encode(&m, &txt, &n) == 0 && text_is(txt, n, want), "challenge with our nonce after it");
    CHECK(proto_g3_challenge_decode(txt, n, &back, why) == 0 && same(&back.nonce, &m.nonce), "...and decodes");
    proto_g3_challenge_clear(&back);
    free(txt);

    CHECK(DEC(proto_g3_challenge_decode, "{\"error\":\"Challenge generation: generating challenge: bad AK\"}\n",
              &back) == -EREMOTEIO &&
              back.error && !strcmp(back.error, "Challenge generation: generating challenge: bad AK") &&
              back.credential.len == 0,
          "an error in place of the challenge decodes as the server's error, not as a challenge");
    proto_g3_challenge_clear(&back);
    CHECK(DEC(proto_g3_challenge_decode,
              "{\"challenge\":{\"Credential\":\"AQ==\",\"Secret\":\"Ag==\"},\"Error\":\"x\"}", &back) == -EREMOTEIO &&
              !strcmp(back.error, "x"),
          "a non-empty error wins over a challenge beside it");
    proto_g3_challenge_clear(&back);
    CHECK(DEC(proto_g3_challenge_decode, "{\"challenge\":{\"credential\":\"AQ==\",\"secret\":\"Ag==\"},\"error\":\"\"}",
              &back) == 0 &&
              back.credential.len == 1,
          "an empty error beside a challenge is no error; keys fold");
    proto_g3_challenge_clear(&back);
    CHECK(DEC(proto_g3_challenge_decode, "{\"error\":7}", &back) == -EINVAL && strstr(why, "error: not a string"),
          "an error that is no string is refused (%s)", why);
    CHECK(DEC(proto_g3_challenge_decode, "{}", &back) == -EINVAL && strstr(why, "challenge: missing"),
          "an empty object is refused (%s)", why);
    CHECK(DEC(proto_g3_challenge_decode, "{\"EC\":{\"Credential\":\"AQ==\",\"Secret\":\"Ag==\"}}", &back) == -EINVAL,
          "a G1 challenge is not a G3 one");
    CHECK(DEC(proto_g3_challenge_decode, "{\"challenge\":{\"Credential\":\"AQ==\",\"Secret\":\"Ag==\"},\"nonce\":\"\"}",
              &back) == -EINVAL &&
              strstr(why, "nonce"),
          "a nonce that is present but empty is refused (%s)", why);
    CHECK(DEC(proto_g3_challenge_decode, "{\"challenge\":{\"Credential\":\"AQ==\",\"Secret\":\"Ag==\"},\"nonce\":null}",
              &back) == 0 &&
              back.nonce.len == 0,
          "a null nonce is no nonce (Go)");
    proto_g3_challenge_clear(&back);
    {
        struct proto_g3_challenge big = m;
        big.nonce = filled(PROTO_G3_NONCE_MAX + 1, 0);
        CHECK(proto_g3_challenge_encode(&big, &txt, &n) == -EINVAL, "the encoder refuses a 65-byte nonce");
        bytes_clear(&big.nonce);
        big.nonce = (struct bytes){0};
        big.credential = filled(PROTO_G3_CREDENTIAL_MAX + 1, 0);
        CHECK(proto_g3_challenge_encode(&big, &txt, &n) == -EINVAL, "...and an oversized credential");
        bytes_clear(&big.credential);
    }
    CHECK(DEC(proto_g3_challenge_decode,
              "{\"challenge\":{\"Credential\":\"AQ==\",\"Secret\":\"Ag==\"},\"nonce\":\""
              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
              &back) == -EINVAL &&
              strstr(why, "nonce"),
          "the decoder refuses a 66-byte nonce (%s)", why);
    free(want);
    free(c64);
    free(s64);
    proto_g3_challenge_clear(&m);
}

static void set_pcr(struct proto_g3_proof *p, unsigned i)
{
    for (unsigned b = 0; b < PROTO_G3_PCR_LEN; b++)
        p->pcr[i][b] = (uint8_t)(i * 16 + b);
    p->pcr_mask |= 1u << i;
}

static void test_proof(void)
{
    struct proto_g3_proof m = {.secret = secret_of("0123456789abcdef0123456789abcdef", 32),
                               .quote = {(uint8_t *)"\xff\x54\x43\x47\x80\x18", 6},
                               .signature = {(uint8_t *)"\x00\x14\x00\x0b", 4}},
                          back;
    char *txt = NULL, want[4096], p0[64], p7[64], p11[64];
    size_t n;

    set_pcr(&m, 0);
    set_pcr(&m, 7);
    set_pcr(&m, 11);
    for (unsigned i = 0; i < 3; i++) {
        unsigned idx = (unsigned[]){0, 7, 11}[i];
        char *b = base64_encode(m.pcr[idx], 32, BASE64_STD, NULL);
        strcpy(i == 0 ? p0 : i == 1 ? p7 : p11, b);
        free(b);
    }
    snprintf(
        want, sizeof(want),
        "{\"secret\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\",\"pcr_quote\":{\"quote\":{\"version\":\"2\","
        "\"quote\":\"/1RDR4AY\",\"signature\":\"ABQACw==\"},\"pcrs\":{\"0\":\"%s\",\"11\":\"%s\",\"7\":\"%s\"}}}\n",
        p0, p11, p7);
    CHECK(proof_text(&m, &txt, &n) == 0 && text_is(txt, n, want),
          "proof: upstream's shape, version \"2\", pcrs keys sorted as Go sorts strings (0, 11, 7)");
    CHECK(proto_g3_proof_decode(txt, n, &back, why) == 0 && back.secret->len == 32 &&
              !memcmp(back.secret->data, m.secret->data, 32) && !strcmp(back.version, "2") &&
              same(&back.quote, &m.quote) && same(&back.signature, &m.signature) && back.pcr_mask == m.pcr_mask &&
              !memcmp(back.pcr, m.pcr, sizeof(m.pcr)) && back.escrow.len == 0,
          "proof round trip");
    proto_g3_proof_clear(&back);
    secure_wipe(txt, n);
    free(txt);

    m.escrow = filled(PROTO_G3_ESCROW_LEN, 0xf0);
    CHECK(proof_text(&m, &txt, &n) == 0 && strstr(txt, "}},\"encrypted_passphrase\":\"8PHy") && strstr(txt, "\"}\n") &&
              !strchr(strstr(txt, "encrypted_passphrase"), '=') &&
              strlen(strstr(txt, "encrypted_passphrase\":\"")) == 23 + 342 + 3,
          "proof with our escrow: 342 characters of unpadded URL-safe base64 (G1's generated_by tpm text)");
    CHECK(proto_g3_proof_decode(txt, n, &back, why) == 0 && same(&back.escrow, &m.escrow), "...and decodes");
    proto_g3_proof_clear(&back);
    {
        char *std = xstrdup(txt);
        strstr(std, "encrypted_passphrase\":\"")[23] = '+';
        CHECK(proto_g3_proof_decode(std, n, &back, why) == -EINVAL && strstr(why, "URL-safe"),
              "an escrow with a character of the standard alphabet: refused (%s)", why);
        secure_wipe(std, n);
        free(std);
    }
    secure_wipe(txt, n);
    free(txt);
    bytes_clear(&m.escrow);

    /* All 24 PCRs: key order 0 1 10 11 ... 19 2 20 21 22 23 3 ... 9. */
    for (unsigned i = 0; i < 24; i++)
        set_pcr(&m, i);
    CHECK(proof_text(&m, &txt, &n) == 0, "proof of all 24 PCRs encodes");
    {
        const char *order[] = {"0", "1",  "10", "11", "12", "13", "14", "15", "16", "17", "18", "19",
                               "2", "20", "21", "22", "23", "3",  "4",  "5",  "6",  "7",  "8",  "9"};
        const char *at = txt;
        bool ok = true;
        for (unsigned i = 0; i < 24 && ok; i++) {
            char key[8];
            snprintf(key, sizeof(key), "\"%s\":", order[i]);
            at = strstr(at, key);
            ok = at != NULL;
        }
        CHECK(ok, "...with the keys in Go's string order");
    }
    CHECK(proto_g3_proof_decode(txt, n, &back, why) == 0 && back.pcr_mask == 0xffffff &&
              !memcmp(back.pcr, m.pcr, sizeof(m.pcr)),
          "...and decodes");
    proto_g3_proof_clear(&back);
    secure_wipe(txt, n);
    free(txt);

#define PROOF(pcrs)                                                                                                \
    "{\"secret\":\"AQ==\",\"pcr_quote\":{\"quote\":{\"version\":\"2\",\"quote\":\"AQ==\",\"signature\":\"Ag==\"}," \
    "\"pcrs\":" pcrs "}}"
#define V32 "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\""
    CHECK(DEC(proto_g3_proof_decode, PROOF("{\"7\":" V32 "}"), &back) == 0 && back.pcr_mask == 0x80, "a minimal proof");
    proto_g3_proof_clear(&back);
    CHECK(DEC(proto_g3_proof_decode, PROOF("{}"), &back) == -EINVAL && strstr(why, "no PCR"),
          "no PCR value: refused (%s)", why);
    CHECK(DEC(proto_g3_proof_decode, PROOF("{\"24\":" V32 "}"), &back) == -EINVAL && strstr(why, "PCR index"),
          "PCR 24: refused (%s)", why);
    CHECK(DEC(proto_g3_proof_decode, PROOF("{\"07\":" V32 "}"), &back) == -EINVAL, "key 07: refused");
    CHECK(DEC(proto_g3_proof_decode, PROOF("{\"-1\":" V32 "}"), &back) == -EINVAL, "key -1: refused");
    CHECK(DEC(proto_g3_proof_decode, PROOF("{\"x\":" V32 "}"), &back) == -EINVAL, "key x: refused");
    CHECK(DEC(proto_g3_proof_decode, PROOF("{\"7\":" V32 ",\"7\":" V32 "}"), &back) == -EINVAL && strstr(why, "twice"),
          "the same PCR twice: refused (%s)", why);
    CHECK(DEC(proto_g3_proof_decode, PROOF("{\"7\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"), &back) == -EINVAL &&
              strstr(why, "pcrs[\"7\"]"),
          "a 30-byte PCR value: refused (%s)", why);
    CHECK(DEC(proto_g3_proof_decode,
              PROOF("{\"7\":\"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"}"), &back) == -EINVAL,
          "a hex PCR value (the SealedVolume's form, not the wire's): refused");
    CHECK(DEC(proto_g3_proof_decode, PROOF("{\"7\":[1]}"), &back) == -EINVAL && strstr(why, "not a string"),
          "a PCR value that is an array: refused (%s)", why);
    CHECK(DEC(proto_g3_proof_decode, PROOF("[1]"), &back) == -EINVAL && strstr(why, "pcr_quote.pcrs: not an object"),
          "pcrs as an array: refused (%s)", why);
    {
        char msg[4096] = PROOF("{");
        size_t at = strlen(msg) - 2; /* before the closing }} */
        char *p = msg + at;
        for (unsigned i = 0; i < 25; i++)
            p += sprintf(p, "%s\"%u\":" V32, i ? "," : "", i % 24);
        strcpy(p, "}}}");
        CHECK(proto_g3_proof_decode(msg, strlen(msg), &back, why) == -EINVAL && strstr(why, "more than"),
              "25 PCR values: refused (%s)", why);
    }
    CHECK(DEC(proto_g3_proof_decode,
              "{\"secret\":\"AQ==\",\"pcr_quote\":{\"quote\":{\"version\":2,\"quote\":\"AQ==\","
              "\"signature\":\"Ag==\"},\"pcrs\":{\"7\":" V32 "}}}",
              &back) == -EINVAL &&
              strstr(why, "version"),
          "a numeric version: refused as Go refuses it (%s)", why);
    CHECK(DEC(proto_g3_proof_decode,
              "{\"pcr_quote\":{\"quote\":{\"quote\":\"AQ==\",\"signature\":\"Ag==\"},"
              "\"pcrs\":{\"7\":" V32 "}}}",
              &back) == -EINVAL &&
              strstr(why, "secret"),
          "no secret: refused (%s)", why);
    CHECK(DEC(proto_g3_proof_decode,
              "{\"secret\":\"AQ==\",\"pcr_quote\":{\"quote\":{\"quote\":\"AQ==\"},"
              "\"pcrs\":{\"7\":" V32 "}}}",
              &back) == -EINVAL &&
              strstr(why, "signature"),
          "no signature: refused (%s)", why);
    CHECK(DEC(proto_g3_proof_decode, "{\"secret\":\"AQ==\",\"pcr_quote\":\"e30=\"}", &back) == -EINVAL &&
              strstr(why, "pcr_quote: not an object"),
          "pcr_quote as a string: refused (%s)", why);
    CHECK(DEC(proto_g3_proof_decode,
              "{\"secret\":\"AQ==\",\"pcr_quote\":{\"quote\":{\"quote\":\"AQ==\",\"signature\":"
              "\"Ag==\"},\"pcrs\":{\"7\":" V32 "}},\"encrypted_passphrase\":\"AQID\"}",
              &back) == -EINVAL &&
              strstr(why, "encrypted_passphrase"),
          "an escrow that is not 256 bytes: refused (%s)", why);
    CHECK(DEC(proto_g3_proof_decode,
              "{\"secret\":\"AQ==\",\"pcr_quote\":{\"quote\":{\"quote\":\"AQ==\",\"signature\":"
              "\"Ag==\"},\"pcrs\":{\"7\":" V32 "}},\"encrypted_passphrase\":\"AQI=\"}",
              &back) == -EINVAL &&
              strstr(why, "URL-safe"),
          "an escrow in padded base64: refused (%s)", why);
    {
        struct proto_g3_proof bad = m;
        bad.pcr_mask = 0;
        CHECK(proof_text(&bad, &txt, &n) == -EINVAL, "the encoder refuses a proof of no PCR");
        bad.pcr_mask = 1u << 24;
        CHECK(proof_text(&bad, &txt, &n) == -EINVAL, "...and PCR 24");
        bad.pcr_mask = 1;
        bad.escrow = filled(255, 0);
        CHECK(proof_text(&bad, &txt, &n) == -EINVAL, "...and a 255-byte escrow");
        bytes_clear(&bad.escrow);
    }
    secret_free(m.secret);
}

static void test_response(void)
{
    struct proto_g3_response m = {.passphrase = secret_of("aGVsbG8gd29ybGQ=", 16)}, back;
    char *txt = NULL;
    size_t n;

    CHECK(response_text(&m, &txt, &n) == 0 && text_is(txt, n, "{\"passphrase\":\"YUdWc2JHOGdkMjl5YkdRPQ==\"}\n"),
          "response: base64 of the Secret's bytes (base64 of base64 for a TOFU passphrase)");
    CHECK(proto_g3_response_decode(txt, n, &back, why) == 0 && back.passphrase->len == 16 &&
              !memcmp(back.passphrase->data, "aGVsbG8gd29ybGQ=", 16) && !back.error && back.generated_by &&
              !back.generated_by[0],
          "...and decodes");
    proto_g3_response_clear(&back);
    free(txt);
    m.generated_by = xstrdup("tpm");
    CHECK(response_text(&m, &txt, &n) == 0 &&
              text_is(txt, n, "{\"passphrase\":\"YUdWc2JHOGdkMjl5YkdRPQ==\",\"generated_by\":\"tpm\"}\n"),
          "response with our generated_by after the passphrase");
    CHECK(proto_g3_response_decode(txt, n, &back, why) == 0 && !strcmp(back.generated_by, "tpm"), "...and decodes");
    proto_g3_response_clear(&back);
    free(txt);
    m.error = xstrdup("PCR verification failed: <PCR7> & more");
    CHECK(response_text(&m, &txt, &n) == 0 &&
              text_is(txt, n, "{\"error\":\"PCR verification failed: \\u003cPCR7\\u003e \\u0026 more\"}\n"),
          "an error response holds only the error, escaped as Go escapes <, > and &");
    CHECK(proto_g3_response_decode(txt, n, &back, why) == -EREMOTEIO &&
              !strcmp(back.error, "PCR verification failed: <PCR7> & more") && !back.passphrase,
          "...and decodes as the server's error");
    proto_g3_response_clear(&back);
    free(txt);
    proto_g3_response_clear(&m);

    CHECK(proto_g3_error_encode("quarantined", &txt, &n) == 0 && text_is(txt, n, "{\"error\":\"quarantined\"}\n"),
          "proto_g3_error_encode");
    free(txt);
    CHECK(proto_g3_error_encode("", &txt, &n) == -EINVAL, "...refuses an empty error");
    CHECK(DEC(proto_g3_response_decode, "{}\n", &back) == -ENODATA, "{}: neither passphrase nor error (-ENODATA)");
    CHECK(DEC(proto_g3_response_decode, "{\"passphrase\":\"\",\"error\":\"\"}", &back) == -ENODATA,
          "empty passphrase and empty error: -ENODATA");
    CHECK(DEC(proto_g3_response_decode, "{\"passphrase\":\"YQ==\",\"error\":\"no\"}", &back) == -EREMOTEIO &&
              !strcmp(back.error, "no") && !back.passphrase,
          "an error beside a passphrase: the error wins, the passphrase is not returned");
    proto_g3_response_clear(&back);
    CHECK(DEC(proto_g3_response_decode, "{\"passphrase\":[1]}", &back) == -EINVAL && strstr(why, "passphrase"),
          "a passphrase that is no string: refused (%s)", why);
    CHECK(DEC(proto_g3_response_decode, "{\"passphrase\":\"YQ==\",\"generated_by\":1}", &back) == -EINVAL,
          "a generated_by that is no string: refused");
    CHECK(DEC(proto_g3_response_decode, "{\"Passphrase\":\"YQ==\",\"unknown\":{}}", &back) == 0 &&
              back.passphrase->len == 1,
          "keys fold, unknown keys ignored");
    proto_g3_response_clear(&back);
    {
        char msg[PROTO_G3_ERROR_MAX + 64];
        size_t at = (size_t)sprintf(msg, "{\"error\":\"");
        for (unsigned i = 0; i < PROTO_G3_ERROR_MAX - 1; i++)
            msg[at++] = 'e';
        memcpy(msg + at, "\xc3\xa9\xc3\xa9\"}", 7); /* é crosses the limit */
        at += 6;
        CHECK(proto_g3_response_decode(msg, at, &back, why) == -EREMOTEIO && back.error &&
                  strlen(back.error) == PROTO_G3_ERROR_MAX - 1,
              "an over-long error is still an error, cut on a character boundary");
        proto_g3_response_clear(&back);
    }
    {
        char *big = xmalloc(PROTO_G3_MAX_MESSAGE + 16);
        memset(big, ' ', PROTO_G3_MAX_MESSAGE + 16);
        memcpy(big, "{}", 2);
        CHECK(proto_g3_response_decode(big, PROTO_G3_MAX_MESSAGE + 1, &back, why) == -EBADMSG &&
                  strstr(why, "over the limit"),
              "a message over %u bytes: refused before parsing (%s)", PROTO_G3_MAX_MESSAGE, why);
        free(big);
    }
    CHECK(proto_g3_response_decode("{\"error\":\"a\"}", 13, &back, NULL) == -EREMOTEIO, "why may be NULL");
    proto_g3_response_clear(&back);
}

/* The error text of a failed server step decodes as an error in every server-message decoder. */
static void test_error_anywhere(void)
{
    char *txt = NULL;
    size_t n;
    struct proto_g3_challenge c;
    struct proto_g3_response r;

    CHECK(proto_g3_error_encode("Proof read: reading proof: EOF", &txt, &n) == 0, "an error message");
    CHECK(proto_g3_challenge_decode(txt, n, &c, why) == -EREMOTEIO &&
              !strcmp(c.error, "Proof read: reading proof: EOF"),
          "...is an error to the challenge decoder");
    CHECK(proto_g3_response_decode(txt, n, &r, why) == -EREMOTEIO && !strcmp(r.error, c.error),
          "...and to the response decoder");
    proto_g3_challenge_clear(&c);
    proto_g3_response_clear(&r);
    free(txt);
}

/* The base64 body of a PEM file's first block, decoded. */
static struct bytes pem_der(const char *name)
{
    char *text = NULL, *body, *o;
    struct bytes b = {0};

    if (file_read_all(tap_data(name), 1 << 16, &text, NULL) < 0)
        return b;
    body = strchr(text, '\n') + 1;
    *strstr(body, "-----END") = '\0';
    for (o = body; *body; body++)
        if (*body != '\n')
            *o++ = *body;
    *o = '\0';
    base64_decode(strchr(text, '\n') + 1, strlen(strchr(text, '\n') + 1), BASE64_STD, &b.data, &b.len);
    free(text);
    return b;
}

static void test_ek(void)
{
    struct bytes der = pem_der("proto/ek-pub.pem"), ec = pem_der("proto/ec-pub.pem"), junk = filled(40, 0x30);
    struct rsa_pub key, want;
    char hash[2 * SHA256_LEN + 1], want_hash[2 * SHA256_LEN + 1], *pem = NULL, *file = NULL;
    uint8_t digest[SHA256_LEN];

    CHECK(der.len > 256 && file_read_all(tap_data("proto/ek-pub.pem"), 1 << 16, &file, NULL) == 0 &&
              proto_ek_pem_public(file, &want) == 0,
          "the test EK (tests/data/proto/ek-pub.pem) loads");
    crypto_sha256(der.data, der.len, digest);
    hex_encode(digest, SHA256_LEN, want_hash);
    CHECK(proto_g3_ek(&der, &key, hash, &pem, why) == 0 && key.n_len == want.n_len &&
              !memcmp(key.n, want.n, key.n_len) && key.e == want.e,
          "proto_g3_ek: the RSA key of ek_public");
    CHECK(!strcmp(hash, want_hash), "...the TPM hash is SHA-256 of the SubjectPublicKeyInfo (%.16s...)", hash);
    CHECK(pem && file && !strcmp(pem, file), "...and the PEM is openssl's text of the same key, byte for byte");
    free(pem);
    CHECK(proto_g3_ek(&ec, &key, hash, NULL, why) == -EPROTONOSUPPORT && strstr(why, "RSA"),
          "an ECC EK: -EPROTONOSUPPORT (%s)", why);
    CHECK(proto_g3_ek(&junk, &key, hash, NULL, why) == -EBADMSG && strstr(why, "SubjectPublicKeyInfo"),
          "junk: -EBADMSG (%s)", why);
    der.len--;
    CHECK(proto_g3_ek(&der, &key, hash, NULL, why) == -EBADMSG, "a truncated SubjectPublicKeyInfo: -EBADMSG");
    free(file);
    bytes_clear(&der);
    bytes_clear(&ec);
    bytes_clear(&junk);
}

int main(void)
{
    test_ek();
    test_init();
    test_challenge();
    test_proof();
    test_response();
    test_error_anywhere();
    return tap_done();
}
