/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto's sym.c and lib/attest against independent references: known-answer vectors from a
 * Python re-implementation (tests/data/attest/make_vectors.py -> vectors.txt) and real TPM
 * structures captured from swtpm with tpm2-tools (tests/data/attest/swtpm, capture_swtpm.sh). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attest.h"
#include "base.h"
#include "crypto.h"
#include "tap.h"

/* ---------- helpers ---------- */

struct blob {
    uint8_t *p;
    size_t len;
};

static struct blob load(const char *name)
{
    char path[256];
    char *data = NULL;
    size_t len = 0;

    snprintf(path, sizeof(path), "attest/swtpm/%s", name);
    if (file_read_all(tap_data(path), 1 << 16, &data, &len) < 0) {
        CHECK(0, "read %s", path);
        return (struct blob){xcalloc(1, 1), 0};
    }
    return (struct blob){(uint8_t *)data, len};
}

static struct blob dup_blob(struct blob b)
{
    struct blob d = {xmalloc(b.len + 1), b.len};
    memcpy(d.p, b.p, b.len);
    return d;
}

static struct bytes bytes(struct blob b) { return (struct bytes){b.p, b.len}; }

/* Decodes a hex field of vectors.txt ("-" is empty) into a new buffer. */
static struct blob unhex(const char *s)
{
    size_t n = strcmp(s, "-") == 0 ? 0 : strlen(s);
    struct blob b = {xmalloc(n / 2 + 1), n / 2};
    if (n && hex_decode(s, n, b.p, n / 2) != (int)(n / 2))
        b.len = (size_t)-1;
    return b;
}

static enum crypto_hash hash_named(const char *s)
{
    if (!strcmp(s, "sha1"))
        return CRYPTO_SHA1;
    if (!strcmp(s, "sha256"))
        return CRYPTO_SHA256;
    if (!strcmp(s, "sha384"))
        return CRYPTO_SHA384;
    if (!strcmp(s, "sha512"))
        return CRYPTO_SHA512;
    return 0;
}

static bool same(const uint8_t *a, size_t alen, struct blob b) { return alen == b.len && memcmp(a, b.p, alen) == 0; }

static void rsa_from(struct blob n, const char *e, struct rsa_pub *key)
{
    memset(key, 0, sizeof(*key));
    if (n.len <= sizeof(key->n))
        memcpy(key->n, n.p, n.len);
    key->n_len = n.len;
    key->e = (uint32_t)strtoul(e, NULL, 10);
}

/* ---------- known-answer vectors ---------- */

#define MAXF 12
static int counts[8];
enum { K_KDFA, K_HMAC, K_HASH, K_CFB, K_OAEP, K_PKCS1, K_ECDSA, K_CRED };

static void vector_kdfa(char **f)
{
    struct blob key = unhex(f[3]), u = unhex(f[4]), v = unhex(f[5]), want = unhex(f[7]);
    uint32_t bits = (uint32_t)strtoul(f[6], NULL, 10);
    uint8_t out[256];
    CHECK(crypto_kdfa(hash_named(f[1]), key.p, key.len, f[2], u.len ? u.p : NULL, u.len, v.len ? v.p : NULL, v.len,
                      bits, out) == 0 &&
              same(out, (bits + 7) / 8, want),
          "KDFa %s \"%s\" %u bits matches the Python reference", f[1], f[2], bits);
    free(key.p), free(u.p), free(v.p), free(want.p);
    counts[K_KDFA]++;
}

static void vector_hmac(char **f)
{
    struct blob key = unhex(f[2]), msg = unhex(f[3]), want = unhex(f[4]);
    enum crypto_hash h = hash_named(f[1]);
    uint8_t out[CRYPTO_HASH_MAX];
    CHECK(crypto_hmac(h, key.p, key.len, msg.p, msg.len, out) == 0 && same(out, crypto_hash_len(h), want),
          "HMAC-%s of %zu bytes matches Python's hmac", f[1], msg.len);
    free(key.p), free(msg.p), free(want.p);
    counts[K_HMAC]++;
}

static void vector_hash(char **f)
{
    struct blob msg = unhex(f[2]), want = unhex(f[3]);
    enum crypto_hash h = hash_named(f[1]);
    uint8_t out[CRYPTO_HASH_MAX];
    CHECK(crypto_hash(h, msg.p, msg.len, out) == 0 && same(out, crypto_hash_len(h), want), "%s of %zu bytes", f[1],
          msg.len);
    free(msg.p), free(want.p);
    counts[K_HASH]++;
}

static void vector_cfb(char **f)
{
    struct blob key = unhex(f[1]), iv = unhex(f[2]), plain = unhex(f[3]), want = unhex(f[4]);
    uint8_t *out = xmalloc(plain.len + 1);
    CHECK(crypto_aes_cfb_encrypt(key.p, key.len, iv.p, plain.p, plain.len, out) == 0 && same(out, plain.len, want),
          "AES-%zu-CFB encrypts %zu bytes as cryptography does", key.len * 8, plain.len);
    CHECK(crypto_aes_cfb_decrypt(key.p, key.len, iv.p, out, plain.len, out) == 0 && same(out, plain.len, plain),
          "AES-%zu-CFB decrypts them back in place", key.len * 8);
    free(out), free(key.p), free(iv.p), free(plain.p), free(want.p);
    counts[K_CFB]++;
}

static void vector_oaep(char **f)
{
    struct blob n = unhex(f[2]), label = unhex(f[4]), msg = unhex(f[5]), seed = unhex(f[6]), want = unhex(f[7]);
    struct rsa_pub key;
    uint8_t out[RSA_MAX_MODULUS], out2[RSA_MAX_MODULUS];
    rsa_from(n, f[3], &key);
    CHECK(crypto_rsa_oaep_encrypt(&key, hash_named(f[1]), label.p, label.len, msg.p, msg.len, seed.p, out) == 0 &&
              same(out, key.n_len, want),
          "RSA-OAEP-%s with a %zu-byte label and a fixed seed matches the Python RFC 8017 encoding", f[1], label.len);
    CHECK(crypto_rsa_oaep_encrypt(&key, hash_named(f[1]), label.p, label.len, msg.p, msg.len, NULL, out) == 0 &&
              crypto_rsa_oaep_encrypt(&key, hash_named(f[1]), label.p, label.len, msg.p, msg.len, NULL, out2) == 0 &&
              memcmp(out, out2, key.n_len) != 0,
          "RSA-OAEP-%s with a random seed differs every time", f[1]);
    CHECK(crypto_rsa_oaep_encrypt(&key, hash_named(f[1]), label.p, label.len, msg.p, msg.len, seed.p, out) == 0 &&
              same(out, key.n_len, want),
          "...and with the fixed seed again (the key's context reused) it matches still");
    free(n.p), free(label.p), free(msg.p), free(seed.p), free(want.p);
    counts[K_OAEP]++;
}

static void vector_pkcs1(char **f)
{
    struct blob n = unhex(f[2]), msg = unhex(f[4]), sig = unhex(f[5]);
    enum crypto_hash h = hash_named(f[1]);
    uint8_t digest[CRYPTO_HASH_MAX];
    struct rsa_pub key;
    rsa_from(n, f[3], &key);
    crypto_hash(h, msg.p, msg.len, digest);
    CHECK(crypto_rsa_pkcs1_verify(&key, h, digest, sig.p, sig.len) == 0,
          "PKCS#1 v1.5 %s signature by cryptography verifies", f[1]);
    CHECK(crypto_rsa_pkcs1_verify(&key, h == CRYPTO_SHA256 ? CRYPTO_SHA384 : CRYPTO_SHA256, digest, sig.p, sig.len) ==
              -EKEYREJECTED,
          "...but not as another hash");
    CHECK(crypto_rsa_pkcs1_verify(&key, h, digest, sig.p, sig.len - 1) == -EKEYREJECTED, "...nor one byte short");
    sig.p[sig.len / 2] ^= 0x01;
    CHECK(crypto_rsa_pkcs1_verify(&key, h, digest, sig.p, sig.len) == -EKEYREJECTED, "...nor with a flipped bit");
    sig.p[sig.len / 2] ^= 0x01;
    {
        /* The RSA contexts are cached by modulus and exponent (256 of them): a key with another
         * exponent, a malformed key and 300 other moduli in between change nothing. */
        struct rsa_pub other = key;
        bool all_rejected = true;
        other.e = 3;
        CHECK(crypto_rsa_pkcs1_verify(&other, h, digest, sig.p, sig.len) == -EKEYREJECTED,
              "...nor under the same modulus with another exponent");
        other.e = key.e;
        other.n[0] = 0;
        CHECK(crypto_rsa_pkcs1_verify(&other, h, digest, sig.p, sig.len) == -EINVAL,
              "a modulus with a leading zero byte is refused");
        CHECK(crypto_rsa_pkcs1_verify(&key, h, digest, sig.p, sig.len) == 0, "...and the signature verifies again");
        other = key;
        for (int i = 0; i < 300; i++) {
            other.n[other.n_len - 2] = (uint8_t)i;
            other.n[other.n_len - 3] = (uint8_t)(i >> 8) ^ 0x5a;
            if (crypto_rsa_pkcs1_verify(&other, h, digest, sig.p, sig.len) != -EKEYREJECTED)
                all_rejected = false;
        }
        CHECK(all_rejected && crypto_rsa_pkcs1_verify(&key, h, digest, sig.p, sig.len) == 0,
              "300 other moduli reject it, and then the right key verifies it again");
    }
    free(n.p), free(msg.p), free(sig.p);
    counts[K_PKCS1]++;
}

static void vector_ecdsa(char **f)
{
    struct blob x = unhex(f[2]), y = unhex(f[3]), msg = unhex(f[5]), r = unhex(f[6]), s = unhex(f[7]);
    enum crypto_curve c = !strcmp(f[1], "p256") ? CRYPTO_P256 : !strcmp(f[1], "p384") ? CRYPTO_P384 : CRYPTO_P521;
    enum crypto_hash h = hash_named(f[4]);
    uint8_t digest[CRYPTO_HASH_MAX];
    crypto_hash(h, msg.p, msg.len, digest);
    CHECK(crypto_ecdsa_verify(c, x.p, x.len, y.p, y.len, digest, crypto_hash_len(h), r.p, r.len, s.p, s.len) == 0,
          "ECDSA %s/%s signature by cryptography verifies", f[1], f[4]);
    digest[0] ^= 1;
    CHECK(crypto_ecdsa_verify(c, x.p, x.len, y.p, y.len, digest, crypto_hash_len(h), r.p, r.len, s.p, s.len) ==
              -EKEYREJECTED,
          "...and fails for another digest");
    digest[0] ^= 1;
    y.p[y.len - 1] ^= 1;
    CHECK(crypto_ecdsa_verify(c, x.p, x.len, y.p, y.len, digest, crypto_hash_len(h), r.p, r.len, s.p, s.len) == -EINVAL,
          "...and a point off the curve is refused");
    free(x.p), free(y.p), free(msg.p), free(r.p), free(s.p);
    counts[K_ECDSA]++;
}

static void vector_cred(char **f)
{
    struct blob n = unhex(f[1]), name = unhex(f[3]), secret = unhex(f[4]), seed = unhex(f[5]), oseed = unhex(f[6]);
    struct blob id = unhex(f[7]), enc = unhex(f[8]);
    struct attest_credential c, c2;
    struct rsa_pub ek;
    rsa_from(n, f[2], &ek);
    CHECK(
        attest_make_credential_seeded(&ek, name.p, name.len, secret.p, secret.len, seed.p, oseed.p, &c) == 0 &&
            same(c.id_object, c.id_object_len, id) && same(c.encrypted_secret, c.encrypted_secret_len, enc),
        "MakeCredential (name alg 0x%02x%02x, %zu-byte secret) matches the Python docs/protocol-g1.md §7 reference byte for byte",
        name.p[0], name.p[1], secret.len);
    CHECK(attest_make_credential(&ek, name.p, name.len, secret.p, secret.len, &c2) == 0 &&
              c2.id_object_len == c.id_object_len && c2.encrypted_secret_len == 258 &&
              memcmp(c2.id_object, c.id_object, c.id_object_len) != 0,
          "MakeCredential with a random seed has the same shape and other bytes");
    if (counts[K_CRED] == 0)
        CHECK(c.id_object_len == 70 && c.encrypted_secret_len == 258 && c.id_object[0] == 0 && c.id_object[1] == 68 &&
                  c.id_object[2] == 0 && c.id_object[3] == 32 && c.encrypted_secret[0] == 1 &&
                  c.encrypted_secret[1] == 0,
              "an honest AK's credential: TPM2B_ID_OBJECT of 70 bytes, TPM2B_ENCRYPTED_SECRET of 258");
    free(n.p), free(name.p), free(secret.p), free(seed.p), free(oseed.p), free(id.p), free(enc.p);
    counts[K_CRED]++;
}

static void test_vectors(void)
{
    FILE *f = fopen(tap_data("attest/vectors.txt"), "r");
    char *line = NULL;
    size_t cap = 0;

    CHECK(f != NULL, "vectors.txt opens");
    if (!f)
        return;
    while (getline(&line, &cap, f) > 0) {
        char *fields[MAXF], *save = NULL;
        int nf = 0;
        if (line[0] == '#')
            continue;
        for (char *t = strtok_r(line, " \n", &save); t && nf < MAXF; t = strtok_r(NULL, " \n", &save))
            fields[nf++] = t;
        if (nf == 8 && !strcmp(fields[0], "kdfa"))
            vector_kdfa(fields);
        else if (nf == 5 && !strcmp(fields[0], "hmac"))
            vector_hmac(fields);
        else if (nf == 4 && !strcmp(fields[0], "hash"))
            vector_hash(fields);
        else if (nf == 5 && !strcmp(fields[0], "cfb"))
            vector_cfb(fields);
        else if (nf == 8 && !strcmp(fields[0], "oaep"))
            vector_oaep(fields);
        else if (nf == 6 && !strcmp(fields[0], "pkcs1"))
            vector_pkcs1(fields);
        else if (nf == 8 && !strcmp(fields[0], "ecdsa"))
            vector_ecdsa(fields);
        else if (nf == 9 && !strcmp(fields[0], "cred"))
            vector_cred(fields);
        else
            CHECK(0, "vectors.txt line of kind %s with %d fields is understood", nf ? fields[0] : "?", nf);
    }
    free(line);
    fclose(f);
    CHECK(counts[K_KDFA] == 7 && counts[K_HMAC] == 12 && counts[K_HASH] == 12 && counts[K_CFB] == 5 &&
              counts[K_OAEP] == 4 && counts[K_PKCS1] == 3 && counts[K_ECDSA] == 4 && counts[K_CRED] == 5,
          "every vector of vectors.txt was checked");
}

static void test_crypto_edges(void)
{
    uint8_t key[16] = {0}, out[64], a[32], b[32];
    struct rsa_pub small = {.n_len = 128, .e = 65537};

    CHECK(crypto_kdfa(CRYPTO_SHA256, key, 16, "X", NULL, 0, NULL, 0, 0, out) == -EINVAL, "KDFa of 0 bits is refused");
    CHECK(crypto_kdfa(0, key, 16, "X", NULL, 0, NULL, 0, 8, out) == -EINVAL, "KDFa with an unknown hash is refused");
    CHECK(crypto_aes_cfb_encrypt(key, 15, key, key, 16, out) == -EINVAL, "AES key of 15 bytes is refused");
    CHECK(crypto_hash_len(CRYPTO_SHA384) == 48 && crypto_hash_len(0) == 0, "hash sizes");
    CHECK(crypto_random(a, sizeof(a)) == 0 && crypto_random(b, sizeof(b)) == 0 && memcmp(a, b, 32) != 0,
          "getrandom bytes differ");
    memset(small.n, 0xff, 128);
    CHECK(crypto_rsa_oaep_encrypt(&small, CRYPTO_SHA512, "", 0, key, 16, NULL, out) == -EMSGSIZE,
          "OAEP-SHA512 of 16 bytes does not fit RSA-1024 and says so");
    small.n_len = 0;
    CHECK(crypto_rsa_pkcs1_verify(&small, CRYPTO_SHA256, a, a, 0) == -EINVAL, "an empty RSA key is refused");
}

/* ---------- decoders on real and broken structures ---------- */

static int dec_public(const uint8_t *in, size_t len)
{
    struct attest_public out;
    return attest_decode_public(in, len, &out);
}

static int dec_creation_data(const uint8_t *in, size_t len)
{
    struct attest_creation_data out;
    return attest_decode_creation_data(in, len, &out);
}

static int dec_attestation(const uint8_t *in, size_t len)
{
    struct attest_attestation out;
    return attest_decode_attestation(in, len, &out);
}

static int dec_signature(const uint8_t *in, size_t len)
{
    struct attest_signature out;
    return attest_decode_signature(in, len, &out);
}

static void test_decoders(void)
{
    struct blob pub = load("ak-rsa.public"), cd = load("ak-rsa.cdata"), att = load("ak-rsa.attest");
    struct blob sig = load("ak-rsa.sig"), ecc = load("ak-ecc.public"), esig = load("ak-ecc.sig");
    struct blob quote = load("quote-rsa.attest"), nonce = load("quote.nonce");
    struct attest_public p;
    struct attest_creation_data c;
    struct attest_attestation a;
    struct attest_signature s;
    struct attest_pcr_selection sel;

    CHECK(attest_decode_public(pub.p, pub.len, &p) == 0 && p.type == ATTEST_ALG_RSA &&
              p.name_alg == ATTEST_ALG_SHA256 && p.attributes == 0x00050472 && p.scheme == ATTEST_ALG_RSASSA &&
              p.scheme_hash == ATTEST_ALG_SHA256 && p.sym_alg == ATTEST_ALG_NULL && p.rsa_bits == 2048 &&
              p.rsa_exponent == 0 && p.rsa_n.len == 256,
          "swtpm RSA AK TPMT_PUBLIC decodes: sha256, 0x00050472, RSASSA-SHA256, 2048 bits");
    CHECK(attest_decode_public(ecc.p, ecc.len, &p) == 0 && p.type == ATTEST_ALG_ECC &&
              p.ecc_curve == ATTEST_ECC_NIST_P256 && p.scheme == ATTEST_ALG_ECDSA && p.kdf == ATTEST_ALG_NULL &&
              p.ecc_x.len == 32 && p.ecc_y.len == 32,
          "swtpm ECC AK TPMT_PUBLIC decodes: P-256, ECDSA");
    CHECK(attest_decode_creation_data(cd.p, cd.len, &c) == 0 && c.pcr_select.count == 0 && c.pcr_digest.len == 32 &&
              c.parent_name_alg == ATTEST_ALG_SHA256 && c.parent_name.len == 34 && c.outside_info.len == 0,
          "swtpm TPMS_CREATION_DATA decodes");
    CHECK(attest_decode_attestation(att.p, att.len, &a) == 0 && a.magic == ATTEST_GENERATED_MAGIC &&
              a.type == ATTEST_ST_ATTEST_CREATION && a.object_name.len == 34 && a.creation_hash.len == 32 &&
              a.safe == 1,
          "swtpm creation TPMS_ATTEST decodes");
    CHECK(attest_decode_attestation(quote.p, quote.len, &a) == 0 && a.type == ATTEST_ST_ATTEST_QUOTE &&
              a.pcr_select.count == 1 && a.pcr_select.bank[0].hash == ATTEST_ALG_SHA256 &&
              a.pcr_select.bank[0].size == 3 && a.pcr_select.bank[0].select[0] == 0x81 &&
              a.pcr_select.bank[0].select[1] == 0x08 && a.extra_data.len == nonce.len &&
              memcmp(a.extra_data.data, nonce.p, nonce.len) == 0 && a.pcr_digest.len == 32,
          "swtpm quote TPMS_ATTEST decodes: sha256:0,7,11 and the nonce as extraData");
    CHECK(attest_decode_signature(sig.p, sig.len, &s) == 0 && s.alg == ATTEST_ALG_RSASSA &&
              s.hash == ATTEST_ALG_SHA256 && s.rsa.len == 256,
          "swtpm RSASSA TPMT_SIGNATURE decodes");
    CHECK(attest_decode_signature(esig.p, esig.len, &s) == 0 && s.alg == ATTEST_ALG_ECDSA && s.ecc_r.len == 32 &&
              s.ecc_s.len == 32,
          "swtpm ECDSA TPMT_SIGNATURE decodes");

    /* Every proper prefix and one trailing byte are refused by every decoder. */
    struct {
        struct blob b;
        int (*fn)(const uint8_t *, size_t);
        const char *what;
    } all[] = {
        {pub, dec_public, "TPMT_PUBLIC (RSA)"},          {ecc, dec_public, "TPMT_PUBLIC (ECC)"},
        {cd, dec_creation_data, "TPMS_CREATION_DATA"},   {att, dec_attestation, "TPMS_ATTEST (creation)"},
        {quote, dec_attestation, "TPMS_ATTEST (quote)"}, {sig, dec_signature, "TPMT_SIGNATURE (RSASSA)"},
        {esig, dec_signature, "TPMT_SIGNATURE (ECDSA)"},
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        struct blob t = dup_blob(all[i].b);
        int bad = 0;
        for (size_t n = 0; n < t.len; n++) {
            uint8_t *copy = xmalloc(n + 1); /* exactly n bytes addressable for ASan */
            memcpy(copy, t.p, n);
            if (all[i].fn(n ? copy : NULL, n) != -EBADMSG)
                bad++;
            free(copy);
        }
        CHECK(bad == 0, "%s: all %zu truncations are -EBADMSG", all[i].what, t.len);
        t.p[t.len] = 0;
        CHECK(all[i].fn(t.p, t.len + 1) == -EBADMSG, "%s: a trailing byte is -EBADMSG", all[i].what);
        free(t.p);
    }

    /* Values a TPM never marshals. */
    static const uint8_t sel_ok[] = {0, 0, 0, 1, 0x00, 0x0b, 3, 0x81, 0x08, 0x00};
    static const uint8_t sel_null_hash[] = {0, 0, 0, 1, 0x00, 0x10, 3, 0x81, 0x08, 0x00};
    static const uint8_t sel_big[] = {0, 0, 0, 1, 0x00, 0x0b, 5, 1, 2, 3, 4, 5};
    static const uint8_t sel_many[] = {0, 0, 0, 17};
    CHECK(attest_decode_pcr_selection(sel_ok, sizeof(sel_ok), &sel) == 0 && sel.count == 1 &&
              sel.bank[0].select[0] == 0x81,
          "TPML_PCR_SELECTION sha256:0,7,11 decodes");
    CHECK(attest_decode_pcr_selection(sel_null_hash, sizeof(sel_null_hash), &sel) == -EBADMSG,
          "a NULL bank hash is refused");
    CHECK(attest_decode_pcr_selection(sel_big, sizeof(sel_big), &sel) == -EBADMSG, "a 5-byte PCR bitmap is refused");
    CHECK(attest_decode_pcr_selection(sel_many, sizeof(sel_many), &sel) == -EBADMSG,
          "17 banks are refused before reading them");

    struct blob t = dup_blob(att);
    t.p[0x3c] = 2; /* clockInfo.safe, after magic 4, type 2, signer 36, extraData 2, clock 8, counters 8 */
    CHECK(attest_decode_attestation(t.p, t.len, &a) == -EBADMSG, "TPMS_ATTEST with safe = 2 is refused");
    memcpy(t.p, att.p, att.len);
    t.p[4] = 0x80, t.p[5] = 0x19; /* TPM_ST_ATTEST_TIME */
    CHECK(attest_decode_attestation(t.p, t.len, &a) == -EOPNOTSUPP, "a TIME attestation is -EOPNOTSUPP");
    t.p[4] = 0x12, t.p[5] = 0x34;
    CHECK(attest_decode_attestation(t.p, t.len, &a) == -EBADMSG, "an unknown attestation type is -EBADMSG");
    memcpy(t.p, att.p, att.len);
    t.p[6] = 0x00, t.p[7] = 0x43; /* qualifiedSigner size 67 > sizeof(TPMT_HA) */
    CHECK(attest_decode_attestation(t.p, t.len, &a) == -EBADMSG, "a TPM2B_NAME of 67 bytes is refused");
    free(t.p);

    t = dup_blob(pub);
    t.p[0] = 0x00, t.p[1] = 0x08; /* KEYEDHASH */
    CHECK(attest_decode_public(t.p, t.len, &p) == -EOPNOTSUPP, "a KEYEDHASH public area is -EOPNOTSUPP");
    memcpy(t.p, pub.p, pub.len);
    t.p[12] = 0x00, t.p[13] = 0x18; /* an ECDSA scheme on an RSA key */
    CHECK(attest_decode_public(t.p, t.len, &p) == -EBADMSG, "an ECC scheme on an RSA key is refused");
    memcpy(t.p, pub.p, pub.len);
    t.p[22] = 0x02, t.p[23] = 0x01; /* unique size 513 > MAX_RSA_KEY_BYTES */
    CHECK(attest_decode_public(t.p, t.len, &p) == -EBADMSG, "an RSA modulus of 513 bytes is refused");
    free(t.p);

    t = dup_blob(sig);
    t.p[0] = 0x00, t.p[1] = 0x10; /* TPM_ALG_NULL signature */
    CHECK(attest_decode_signature(t.p, 2, &s) == -EOPNOTSUPP, "a NULL signature is -EOPNOTSUPP, not a crash");
    CHECK(attest_decode_signature(NULL, 0, &s) == -EBADMSG, "an empty signature is -EBADMSG");
    free(t.p);

    free(pub.p), free(cd.p), free(att.p), free(sig.p), free(ecc.p), free(esig.p), free(quote.p), free(nonce.p);
}

/* ---------- AK checks ---------- */

struct ak {
    struct blob pub, cd, att, sig;
};

static struct ak load_ak(const char *kind)
{
    char n[64];
    struct ak a;
    snprintf(n, sizeof(n), "ak-%s.public", kind), a.pub = load(n);
    snprintf(n, sizeof(n), "ak-%s.cdata", kind), a.cd = load(n);
    snprintf(n, sizeof(n), "ak-%s.attest", kind), a.att = load(n);
    snprintf(n, sizeof(n), "ak-%s.sig", kind), a.sig = load(n);
    return a;
}

static void free_ak(struct ak *a) { free(a->pub.p), free(a->cd.p), free(a->att.p), free(a->sig.p); }

static struct ak_params params(const struct ak *a)
{
    return (struct ak_params){bytes(a->pub), bytes(a->cd), bytes(a->att), bytes(a->sig), false};
}

static int check(const struct ak *a, unsigned flags, char *why)
{
    struct ak_params p = params(a);
    return attest_check_ak_params(&p, flags, NULL, NULL, why);
}

static void test_ak_genuine(void)
{
    struct ak rsa = load_ak("rsa"), g1 = load_ak("rsa-g1"), ecc = load_ak("ecc");
    struct blob want = load("ak-rsa.name"), want_ecc = load("ak-ecc.name");
    struct ak_params p = params(&rsa);
    uint8_t name[ATTEST_NAME_MAX];
    size_t name_len = 0;
    char why[ATTEST_WHY_MAX] = "";

    CHECK(attest_check_ak_params(&p, 0, name, &name_len, why) == 0,
          "a genuine swtpm RSA AK (0x00050472, G3) is accepted %s", why);
    CHECK(same(name, name_len, want), "its Name is the one tpm2_load printed");
    CHECK(attest_public_name(rsa.pub.p, rsa.pub.len, name, &name_len) == 0 && same(name, name_len, want),
          "attest_public_name agrees with tpm2_load");
    CHECK(check(&g1, 0, why) == 0, "a genuine G1 AK without noDA (0x00050072, docs/upstream.md §9.1) is accepted");
    CHECK(check(&ecc, 0, why) == -EOPNOTSUPP && strstr(why, "RSA AKs only"),
          "an ECC AK is refused for G1 with a reason: %s", why);
    p = params(&ecc);
    CHECK(attest_check_ak_params(&p, ATTEST_AK_ALLOW_ECC, name, &name_len, why) == 0 && same(name, name_len, want_ecc),
          "...and accepted with ATTEST_AK_ALLOW_ECC, with tpm2_load's Name");
    free_ak(&rsa), free_ak(&g1), free_ak(&ecc), free(want.p), free(want_ecc.p);
}

/* Sends stderr to /dev/null while thousands of refusals are logged; loud() undoes it. */
static int quiet(void)
{
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    dup2(null, STDERR_FILENO);
    close(null);
    return saved;
}

static void loud(int saved)
{
    dup2(saved, STDERR_FILENO);
    close(saved);
}

/* Flips every byte of each of the four inputs in turn: each change must be refused. */
static void test_ak_every_byte(void)
{
    struct ak a = load_ak("rsa");
    struct blob *part[4] = {&a.pub, &a.cd, &a.att, &a.sig};
    static const char *const names[4] = {"Public", "CreateData", "CreateAttestation", "CreateSignature"};
    int saved_stderr = quiet();

    for (int k = 0; k < 4; k++) {
        size_t accepted = 0, n = part[k]->len;
        for (size_t i = 0; i < n; i++) {
            part[k]->p[i] ^= 0x01;
            if (check(&a, ATTEST_AK_ALLOW_ECC, NULL) == 0)
                accepted++;
            part[k]->p[i] ^= 0x01;
        }
        CHECK(accepted == 0, "every one of the %zu one-bit changes of %s is refused", n, names[k]);
        size_t saved = part[k]->len, bad = 0;
        for (size_t len = 0; len < saved; len++) {
            part[k]->len = len;
            if (check(&a, 0, NULL) == 0)
                bad++;
        }
        part[k]->len = saved;
        CHECK(bad == 0, "every truncation of %s is refused", names[k]);
    }
    loud(saved_stderr);
    free_ak(&a);
}

static void test_ak_tampered(void)
{
    struct ak a = load_ak("rsa"), g1 = load_ak("rsa-g1"), ecc = load_ak("ecc");
    char why[ATTEST_WHY_MAX] = "";
    int r;

    a.att.p[0] ^= 0x80;
    CHECK(check(&a, 0, why) == -EPERM && strstr(why, "not produced by a TPM"), "wrong magic: %s", why);
    a.att.p[0] ^= 0x80;
    a.pub.p[7] &= ~0x02; /* fixedTPM */
    CHECK(check(&a, 0, why) == -EPERM && strstr(why, "exportable"), "fixedTPM cleared: %s", why);
    a.pub.p[7] |= 0x02;
    a.pub.p[5] &= ~0x01; /* restricted */
    CHECK(check(&a, 0, why) == -EPERM && strstr(why, "not limited to attestation"), "restricted cleared: %s", why);
    a.pub.p[5] |= 0x01;
    a.pub.p[5] |= 0x02; /* decrypt */
    CHECK(check(&a, 0, why) == -EPERM && strstr(why, "not those of an attestation key"), "decrypt set: %s", why);
    a.pub.p[5] &= ~0x02;
    a.pub.p[6] ^= 0x04; /* noDA: a different key, so a different Name */
    CHECK(check(&a, 0, why) == -EPERM && strstr(why, "different key"), "noDA toggled (Name changes): %s", why);
    a.pub.p[6] ^= 0x04;
    a.pub.p[16] = 0x04; /* keyBits 2048 -> 1024 */
    CHECK(check(&a, 0, why) == -EPERM && strstr(why, "too small"), "keyBits 1024: %s", why);
    a.pub.p[16] = 0x08;

    struct ak mix = {a.pub, a.cd, g1.att, g1.sig}; /* another genuine AK's attestation */
    r = check(&mix, 0, why);
    CHECK(r == -EPERM && (strstr(why, "different key") || strstr(why, "different public key")),
          "the attestation of another AK: %s", why);
    mix = (struct ak){a.pub, a.cd, a.att, ecc.sig};
    CHECK(check(&mix, 0, why) == -EKEYREJECTED, "an ECDSA signature for an RSA AK is refused cleanly: %s", why);
    a.sig.p[a.sig.len - 1] ^= 0x55;
    CHECK(check(&a, 0, why) == -EKEYREJECTED && strstr(why, "could not verify"), "a bad signature: %s", why);
    a.sig.p[a.sig.len - 1] ^= 0x55;
    mix = (struct ak){a.pub, a.cd, a.att, {a.sig.p, 7}};
    CHECK(check(&mix, 0, why) == -EBADMSG && strstr(why, "too short"), "a 7-byte signature: %s", why);
    a.sig.p[3] = 0x0c; /* signature says SHA-384 */
    CHECK(check(&a, 0, why) == -EKEYREJECTED && strstr(why, "scheme hash"),
          "a signature hash other than the scheme's: %s", why);
    a.sig.p[3] = 0x0b;
    a.att.p[4] = 0x80, a.att.p[5] = 0x17; /* CERTIFY: decodes (different shape), wrong type */
    CHECK(check(&a, 0, why) < 0, "a certify attestation in place of the creation one: %s", why);
    a.att.p[5] = 0x1a;

    /* A NULL-scheme AK made go-attestation panic (docs/upstream.md §9.4). Rebuild a consistent set around
     * it (Name and creation data patched; the signature can only fail after the scheme check). */
    struct blob pub = {xmalloc(a.pub.len), a.pub.len - 2}, att = dup_blob(a.att);
    uint8_t name[ATTEST_NAME_MAX];
    size_t name_len;
    memcpy(pub.p, a.pub.p, 14);
    pub.p[12] = 0x00, pub.p[13] = 0x10; /* scheme NULL, no hash follows */
    memcpy(pub.p + 14, a.pub.p + 16, a.pub.len - 16);
    CHECK(attest_public_name(pub.p, pub.len, name, &name_len) == 0 && name_len == 34, "the NULL-scheme Public decodes");
    /* objectName: after magic 4, type 2, signer 2+34, extraData 2, clockInfo 17, firmware 8, size 2 */
    memcpy(att.p + 0x47, name, name_len);
    struct ak null_scheme = {pub, a.cd, att, a.sig};
    CHECK(check(&null_scheme, 0, why) == -EOPNOTSUPP && strstr(why, "scheme 0x0010"),
          "a NULL-scheme AK is refused cleanly: %s", why);
    free(pub.p), free(att.p);

    struct ak_params empty = {0};
    CHECK(attest_check_ak_params(&empty, 0, NULL, NULL, why) == -EBADMSG, "empty parameters: %s", why);
    free_ak(&a), free_ak(&g1), free_ak(&ecc);
}

/* ---------- credentials for the captured AK ---------- */

static void test_credential_inputs(void)
{
    struct blob pem = load("ek-rsa.pem"), pub = load("ek-rsa.public"), name = load("ak-rsa.name");
    struct attest_public p;
    struct attest_credential c;
    struct rsa_pub ek, ek2, tiny;
    uint8_t secret[65] = {1}, *der = NULL;
    size_t der_len;

    CHECK(crypto_rsa_pub_parse(pem.p, pem.len, &ek) == 0 && ek.n_len == 256 && ek.e == 65537,
          "the EK PEM from tpm2_readpublic parses");
    CHECK(attest_decode_public(pub.p, pub.len, &p) == 0 && attest_public_rsa(&p, &ek2) == 0 && ek2.n_len == ek.n_len &&
              memcmp(ek2.n, ek.n, ek.n_len) == 0 && ek2.e == ek.e,
          "...and equals the key of the EK's TPMT_PUBLIC (exponent 0 = 65537)");
    CHECK(crypto_rsa_spki_der(&ek, &der, &der_len) == 0 && crypto_rsa_pub_parse(der, der_len, &ek2) == 0 &&
              memcmp(ek2.n, ek.n, ek.n_len) == 0,
          "a DER SPKI (G3's ek_public) parses too");
    free(der);
    CHECK(crypto_rsa_pub_parse(pem.p, pem.len - 30, &ek2) == -EINVAL, "a truncated PEM is refused");

    CHECK(attest_make_credential(&ek, name.p, name.len, secret, 32, &c) == 0 && c.id_object_len == 70 &&
              c.encrypted_secret_len == 258,
          "a credential for the swtpm EK and AK: 70 + 258 bytes");
    CHECK(attest_make_credential(&ek, name.p, name.len - 1, secret, 32, &c) == -EINVAL,
          "a Name of the wrong size is refused");
    CHECK(attest_make_credential(&ek, name.p, name.len, secret, 0, &c) == -EINVAL, "an empty secret is refused");
    CHECK(attest_make_credential(&ek, name.p, name.len, secret, 65, &c) == -EINVAL, "a 65-byte secret is refused");
    tiny = ek;
    tiny.n_len = 128;
    CHECK(attest_make_credential(&tiny, name.p, name.len, secret, 32, &c) == -EINVAL, "an RSA-1024 EK is refused");
    free(pem.p), free(pub.p), free(name.p);
}

/* ---------- quotes ---------- */

static void test_quote(const char *kind)
{
    char n[64];
    snprintf(n, sizeof(n), "ak-%s.public", kind);
    struct blob pub = load(n);
    snprintf(n, sizeof(n), "quote-%s.attest", kind);
    struct blob q = load(n);
    snprintf(n, sizeof(n), "quote-%s.sig", kind);
    struct blob sig = load(n);
    snprintf(n, sizeof(n), "quote-%s.pcrs", kind);
    struct blob pcrs = load(n);
    struct blob nonce = load("quote.nonce"), other = load(strcmp(kind, "rsa") ? "ak-rsa.public" : "ak-rsa-g1.public");
    struct blob cattest = load(strcmp(kind, "rsa") ? "ak-ecc.attest" : "ak-rsa.attest");
    struct blob csig = load(strcmp(kind, "rsa") ? "ak-ecc.sig" : "ak-rsa.sig");
    struct attest_pcr_value v[4] = {
        {0, {pcrs.p, 32}},
        {7, {pcrs.p + 32, 32}},
        {11, {pcrs.p + 64, 32}},
        {7, {pcrs.p + 32, 32}},
    };
    struct bytes nb = bytes(nonce), wrong = {nonce.p, nonce.len - 1};
    char why[ATTEST_WHY_MAX] = "";

    CHECK(pcrs.len == 96, "%s quote: three PCR values captured", kind);
    CHECK(attest_verify_quote(bytes(pub), bytes(q), bytes(sig), v, 3, &nb, why) == 0,
          "%s quote of swtpm over sha256:0,7,11 with our nonce verifies %s", kind, why);
    CHECK(attest_verify_quote(bytes(pub), bytes(q), bytes(sig), v, 3, NULL, why) == 0,
          "%s quote verifies without a nonce (upstream clients)", kind);
    CHECK(attest_verify_quote(bytes(pub), bytes(q), bytes(sig), v, 3, &wrong, why) == -EPERM && strstr(why, "nonce"),
          "%s quote with another nonce: %s", kind, why);
    CHECK(attest_verify_quote(bytes(pub), bytes(q), bytes(sig), v, 2, NULL, why) == -EPERM,
          "%s quote with PCR 11 missing: %s", kind, why);
    CHECK(attest_verify_quote(bytes(pub), bytes(q), bytes(sig), v, 4, NULL, why) == -EINVAL,
          "%s quote with PCR 7 twice: %s", kind, why);
    v[3].index = 8;
    CHECK(attest_verify_quote(bytes(pub), bytes(q), bytes(sig), v, 4, NULL, why) == -EPERM,
          "%s quote with an extra PCR 8: %s", kind, why);
    struct blob changed = dup_blob(pcrs);
    v[1].digest.data = changed.p + 32;
    changed.p[40] ^= 1;
    CHECK(attest_verify_quote(bytes(pub), bytes(q), bytes(sig), v, 3, NULL, why) == -EPERM && strstr(why, "pcrDigest"),
          "%s quote with a changed PCR 7 value: %s", kind, why);
    v[1].digest.data = pcrs.p + 32;
    CHECK(attest_verify_quote(bytes(other), bytes(q), bytes(sig), v, 3, NULL, why) == -EKEYREJECTED,
          "%s quote checked with another AK: %s", kind, why);
    q.p[q.len - 1] ^= 1;
    CHECK(attest_verify_quote(bytes(pub), bytes(q), bytes(sig), v, 3, NULL, why) == -EKEYREJECTED,
          "%s quote changed after signing: %s", kind, why);
    q.p[q.len - 1] ^= 1;
    CHECK(attest_verify_quote(bytes(pub), bytes(cattest), bytes(csig), v, 3, NULL, why) == -EPERM &&
              strstr(why, "not a quote"),
          "%s: a signed creation attestation is not a quote: %s", kind, why);
    free(pub.p), free(q.p), free(sig.p), free(pcrs.p), free(nonce.p), free(other.p), free(changed.p), free(cattest.p),
        free(csig.p);
}

int main(void)
{
    log_set_program("test_attest");
    test_vectors();
    test_crypto_edges();
    test_decoders();
    test_ak_genuine();
    test_ak_every_byte();
    test_ak_tampered();
    test_credential_inputs();
    test_quote("rsa");
    test_quote("ecc");
    return tap_done();
}
