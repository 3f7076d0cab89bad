/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* g3_tool: drives lib/proto's G3 codec from tests/tpm/test_g3_messages.sh, which compares it with
 * the independent Python codec tests/online/g3_peer.py. Fields travel as that script's "dump"
 * text (key=hex lines in a fixed order per message kind; see g3_peer.py). Exit 0 on success, 1
 * when a message is refused (the reason on stderr, one line), 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "g3.h"

static const char usage[] = "usage: g3_tool encode init|challenge|proof|response SPEC OUT\n"
                            "           writes the message whose fields SPEC gives (g3_peer.py's dump text)\n"
                            "       g3_tool decode init|challenge|proof|response FILE\n"
                            "           prints the dump of the message in FILE (an error message: error=HEX)\n"
                            "       g3_tool ek SPKI_DER\n"
                            "           prints proto_g3_ek's TPM hash, then its PEM\n";

#define MAX_LINES 64

struct spec {
    char *key[MAX_LINES];
    uint8_t *val[MAX_LINES];
    size_t len[MAX_LINES];
    size_t n;
};

static void spec_free(struct spec *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->key[i]);
        free(s->val[i]);
    }
}

static int spec_read(const char *path, struct spec *s)
{
    _cleanup_free_ char *text = NULL;
    char *save = NULL;
    int r = file_read_all(path, 1 << 20, &text, NULL);

    *s = (struct spec){0};
    if (r < 0)
        return log_error_errno(r, "%s: cannot read", path);
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        size_t hl;
        int n;
        if (!eq || s->n == MAX_LINES)
            return log_error_errno(-EINVAL, "%s: not a dump line: %s", path, line);
        *eq = '\0';
        hl = strlen(eq + 1);
        s->key[s->n] = xstrdup(line);
        s->val[s->n] = xmalloc(hl / 2 + 1);
        if (!strcmp(eq + 1, "true") || !strcmp(eq + 1, "false")) {
            s->val[s->n][0] = eq[1] == 't';
            n = 1;
        } else {
            n = hex_decode(eq + 1, hl, s->val[s->n], hl / 2 + 1);
        }
        if (n < 0)
            return log_error_errno(-EINVAL, "%s: %s: not hex", path, line);
        s->len[s->n++] = (size_t)n;
    }
    return 0;
}

/* The value of key (a copy in *out, malloc'd; empty when absent). */
static bool spec_get(const struct spec *s, const char *key, struct bytes *out)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->key[i], key)) {
            out->len = s->len[i];
            out->data = xmalloc(out->len + 1);
            memcpy(out->data, s->val[i], out->len);
            out->data[out->len] = '\0';
            return true;
        }
    *out = (struct bytes){0};
    return false;
}

static char *spec_str(const struct spec *s, const char *key)
{
    struct bytes b;
    if (!spec_get(s, key, &b))
        return NULL;
    return (char *)b.data;
}

static void put_hex(const char *key, const uint8_t *p, size_t n)
{
    char *hex = xmalloc(2 * n + 1);
    hex_encode(p, n, hex);
    printf("%s=%s\n", key, hex);
    free(hex);
}

/* The text a plain encoder made (r its result; *t, *n read after it ran), held as a secret like
 * the others'. */
static int held(int r, char **t, const size_t *n, struct secret **out)
{
    if (r == 0)
        *out = secret_take(TAKE_PTR(*t), *n);
    free(*t);
    return r;
}

static int encode(const char *kind, const struct spec *s, struct secret **out)
{
    char *error = spec_str(s, "error"), *t = NULL;
    size_t n = 0;
    int r = -EINVAL;

    if (error && (!strcmp(kind, "challenge") || !strcmp(kind, "response"))) {
        r = held(proto_g3_error_encode(error, &t, &n), &t, &n, out);
    } else if (!strcmp(kind, "init")) {
        struct proto_g3_init m = {0};
        struct bytes defer;
        spec_get(s, "ek_public", &m.ek_public);
        spec_get(s, "Public", &m.ak.public_area);
        spec_get(s, "CreateData", &m.ak.create_data);
        spec_get(s, "CreateAttestation", &m.ak.create_attestation);
        spec_get(s, "CreateSignature", &m.ak.create_signature);
        if (spec_get(s, "defer_pcr_enrollment", &defer))
            m.defer_pcr_enrollment = defer.data[0];
        bytes_clear(&defer);
        r = held(proto_g3_init_encode(&m, &t, &n), &t, &n, out);
        proto_g3_init_clear(&m);
    } else if (!strcmp(kind, "challenge")) {
        struct proto_g3_challenge m = {0};
        spec_get(s, "Credential", &m.credential);
        spec_get(s, "Secret", &m.encrypted_secret);
        spec_get(s, "nonce", &m.nonce);
        r = held(proto_g3_challenge_encode(&m, &t, &n), &t, &n, out);
        proto_g3_challenge_clear(&m);
    } else if (!strcmp(kind, "proof")) {
        struct proto_g3_proof m = {0};
        struct bytes b;
        if (spec_get(s, "secret", &b)) {
            m.secret = secret_new(b.len);
            memcpy(m.secret->data, b.data, b.len);
            m.secret->len = b.len;
        }
        bytes_clear(&b);
        if (spec_get(s, "version", &b) && b.len <= PROTO_G3_VERSION_MAX)
            memcpy(m.version, b.data, b.len + 1);
        bytes_clear(&b);
        spec_get(s, "quote", &m.quote);
        spec_get(s, "signature", &m.signature);
        spec_get(s, "encrypted_passphrase", &m.escrow);
        for (unsigned i = 0; i < PROTO_G3_PCR_COUNT; i++) {
            char key[16];
            snprintf(key, sizeof(key), "pcr.%u", i);
            if (spec_get(s, key, &b) && b.len == PROTO_G3_PCR_LEN) {
                memcpy(m.pcr[i], b.data, PROTO_G3_PCR_LEN);
                m.pcr_mask |= 1u << i;
            }
            bytes_clear(&b);
        }
        r = proto_g3_proof_encode(&m, out);
        proto_g3_proof_clear(&m);
    } else if (!strcmp(kind, "response")) {
        struct proto_g3_response m = {0};
        struct bytes b;
        if (spec_get(s, "passphrase", &b)) {
            m.passphrase = secret_new(b.len);
            memcpy(m.passphrase->data, b.data, b.len);
            m.passphrase->len = b.len;
        }
        bytes_clear(&b);
        m.generated_by = spec_str(s, "generated_by");
        r = proto_g3_response_encode(&m, out);
        proto_g3_response_clear(&m);
    }
    free(error);
    return r;
}

static int decode(const char *kind, const char *path, const char *msg, size_t len)
{
    char why[PROTO_G3_WHY_MAX] = "";
    int r = -EINVAL;

    if (!strcmp(kind, "init")) {
        struct proto_g3_init m;
        r = proto_g3_init_decode(msg, len, &m, why);
        if (r == 0) {
            put_hex("ek_public", m.ek_public.data, m.ek_public.len);
            put_hex("Public", m.ak.public_area.data, m.ak.public_area.len);
            put_hex("CreateData", m.ak.create_data.data, m.ak.create_data.len);
            put_hex("CreateAttestation", m.ak.create_attestation.data, m.ak.create_attestation.len);
            put_hex("CreateSignature", m.ak.create_signature.data, m.ak.create_signature.len);
            printf("defer_pcr_enrollment=%s\n", m.defer_pcr_enrollment ? "true" : "false");
            proto_g3_init_clear(&m);
        }
    } else if (!strcmp(kind, "challenge")) {
        struct proto_g3_challenge m;
        r = proto_g3_challenge_decode(msg, len, &m, why);
        if (r == -EREMOTEIO) {
            put_hex("error", (const uint8_t *)m.error, strlen(m.error));
            r = 0;
        } else if (r == 0) {
            put_hex("Credential", m.credential.data, m.credential.len);
            put_hex("Secret", m.encrypted_secret.data, m.encrypted_secret.len);
            put_hex("nonce", m.nonce.data, m.nonce.len);
        }
        proto_g3_challenge_clear(&m);
    } else if (!strcmp(kind, "proof")) {
        struct proto_g3_proof m;
        r = proto_g3_proof_decode(msg, len, &m, why);
        if (r == 0) {
            put_hex("secret", m.secret->data, m.secret->len);
            put_hex("version", (const uint8_t *)m.version, strlen(m.version));
            put_hex("quote", m.quote.data, m.quote.len);
            put_hex("signature", m.signature.data, m.signature.len);
            for (unsigned i = 0; i < PROTO_G3_PCR_COUNT; i++)
                if (m.pcr_mask & (1u << i)) {
                    char key[16];
                    snprintf(key, sizeof(key), "pcr.%u", i);
                    put_hex(key, m.pcr[i], PROTO_G3_PCR_LEN);
                }
            put_hex("encrypted_passphrase", m.escrow.data, m.escrow.len);
            proto_g3_proof_clear(&m);
        }
    } else if (!strcmp(kind, "response")) {
        struct proto_g3_response m;
        r = proto_g3_response_decode(msg, len, &m, why);
        if (r == -EREMOTEIO) {
            put_hex("error", (const uint8_t *)m.error, strlen(m.error));
            r = 0;
        } else if (r == 0) {
            put_hex("passphrase", m.passphrase->data, m.passphrase->len);
            put_hex("generated_by", (const uint8_t *)m.generated_by, strlen(m.generated_by));
        }
        proto_g3_response_clear(&m);
    }
    if (r < 0)
        return log_error_errno(r, "%s: G3 %s refused: %s", path, kind, why[0] ? why : "invalid");
    return 0;
}

int main(int argc, char **argv)
{
    log_set_program("g3_tool");
    if (argc == 5 && !strcmp(argv[1], "encode")) {
        struct spec s;
        _cleanup_secret_ struct secret *out = NULL;
        int r = spec_read(argv[3], &s);
        FILE *f;
        if (r == 0)
            r = encode(argv[2], &s, &out);
        spec_free(&s);
        if (r < 0)
            return log_error_errno(r, "%s: the G3 %s encoder refused these fields", argv[3], argv[2]), EXIT_RUNTIME;
        f = fopen(argv[4], "wb");
        if (!f || fwrite(out->data, 1, out->len, f) != out->len || fclose(f) != 0)
            return log_error_errno(-EIO, "%s: cannot write", argv[4]), EXIT_RUNTIME;
        return EXIT_OK;
    }
    if (argc == 4 && !strcmp(argv[1], "decode")) {
        _cleanup_free_ char *msg = NULL;
        size_t len = 0;
        int r = file_read_all(argv[3], 1 << 20, &msg, &len);
        if (r < 0)
            return log_error_errno(r, "%s: cannot read", argv[3]), EXIT_RUNTIME;
        return decode(argv[2], argv[3], msg, len) < 0 ? EXIT_RUNTIME : EXIT_OK;
    }
    if (argc == 3 && !strcmp(argv[1], "ek")) {
        _cleanup_free_ char *der = NULL, *pem = NULL;
        char hash[2 * SHA256_LEN + 1], why[PROTO_G3_WHY_MAX] = "";
        struct rsa_pub key;
        struct bytes spki;
        size_t len = 0;
        int r = file_read_all(argv[2], 1 << 16, &der, &len);
        if (r < 0)
            return log_error_errno(r, "%s: cannot read", argv[2]), EXIT_RUNTIME;
        spki = (struct bytes){(uint8_t *)der, len};
        r = proto_g3_ek(&spki, &key, hash, &pem, why);
        if (r < 0)
            return log_error_errno(r, "%s: %s", argv[2], why), EXIT_RUNTIME;
        printf("%s\n%s", hash, pem);
        return EXIT_OK;
    }
    fputs(usage, stderr);
    return EXIT_USAGE;
}
