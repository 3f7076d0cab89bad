/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The simulated nodes of kms-loadgen: deterministic keys, the key cache, the AK structures a TPM
 * would produce for go-attestation's NewAK (go-attestation attest/wrapped_tpm20.go newAK:
 * TPM2_Create under the SRK, TPM2_Load, TPM2_CertifyCreation signed by the AK), and
 * TPM2_ActivateCredential (TPM 2.0 Part 1 §24, Part 3 §12.5) in software. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loadgen.h"
#include "proto.h"

#define CACHE_MAGIC "KKLGKEY1"
#define HALF (LG_KEY_BYTES / 2)
#define ENTRY (4 * HALF) /* EK p, q, AK p, q */
#define CACHE_HEAD (8 + 4 + 4 + SHA256_LEN)

/* TPM constants used below (TPM 2.0 Part 2). */
#define EK_ATTRIBUTES 0x000300b2u /* fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|restricted|decrypt */
#define SRK_ATTRIBUTES 0x00030472u
/* PolicySecret(TPM_RH_ENDORSEMENT): the authPolicy of the TCG default EK templates. */
static const uint8_t ek_policy[SHA256_LEN] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
                                              0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
                                              0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

/* ---- deterministic values ---- */

/* SHA-256("kms-loadgen" 0 seed 0 u32be(index) purpose): every key and value of a node. */
static void derive(const char *seed, uint32_t index, const char *purpose, uint8_t out[SHA256_LEN])
{
    size_t sl = strlen(seed), pl = strlen(purpose), n = 12 + sl + 1 + 4 + pl;
    uint8_t *buf = xmalloc(n), *p = buf;

    memcpy(p, "kms-loadgen", 12), p += 12;
    memcpy(p, seed, sl + 1), p += sl + 1;
    *p++ = index >> 24, *p++ = index >> 16, *p++ = index >> 8, *p++ = index;
    memcpy(p, purpose, pl);
    crypto_sha256(buf, n, out);
    secure_wipe(buf, n);
    free(buf);
}

void lg_passphrase(const char *seed, uint32_t index, char out[LG_PASS_LEN + 1])
{
    uint8_t d[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];

    derive(seed, index, "passphrase", d);
    hex_encode(d, 16, hex);
    snprintf(out, LG_PASS_LEN + 1, "loadgen-%s", hex);
    secure_wipe(d, sizeof(d));
    secure_wipe(hex, sizeof(hex));
}

void lg_volume_name(uint32_t index, char *out, size_t n) { snprintf(out, n, "loadgen-node-%05u", index); }

/* ---- TPM structure writer ---- */
struct wbuf {
    uint8_t b[1024];
    size_t len;
};
static void put(struct wbuf *w, const void *p, size_t n)
{
    if (w->len + n > sizeof(w->b))
        abort(); /* fixed structures; cannot happen */
    if (n)
        memcpy(w->b + w->len, p, n);
    w->len += n;
}
static void put8(struct wbuf *w, uint8_t v) { put(w, &v, 1); }
static void put16(struct wbuf *w, uint16_t v) { put(w, (uint8_t[]){v >> 8, v}, 2); }
static void put32(struct wbuf *w, uint32_t v) { put(w, (uint8_t[]){v >> 24, v >> 16, v >> 8, v}, 4); }
static void put64(struct wbuf *w, uint64_t v) { put32(w, v >> 32), put32(w, (uint32_t)v); }
static void put2b(struct wbuf *w, const void *p, size_t n) { put16(w, (uint16_t)n), put(w, p, n); }
static void bytes_set(struct lg_bytes *b, const struct wbuf *w)
{
    b->p = xmalloc(w->len);
    memcpy(b->p, w->b, w->len);
    b->len = w->len;
}

/* TPMT_PUBLIC of an RSA-2048 key with a SHA-256 nameAlg. */
static void rsa_public(struct wbuf *w, uint32_t attributes, const uint8_t *policy, size_t policy_len, bool aes,
                       uint16_t scheme, const uint8_t *n, size_t n_len)
{
    put16(w, ATTEST_ALG_RSA);
    put16(w, ATTEST_ALG_SHA256);
    put32(w, attributes);
    put2b(w, policy, policy_len);
    if (aes) {
        put16(w, ATTEST_ALG_AES), put16(w, 128), put16(w, ATTEST_ALG_CFB);
    } else {
        put16(w, ATTEST_ALG_NULL);
    }
    put16(w, scheme);
    if (scheme == ATTEST_ALG_RSASSA)
        put16(w, ATTEST_ALG_SHA256);
    put16(w, LG_KEY_BITS);
    put32(w, 0); /* the TPM stores the default exponent 65537 as 0 */
    put2b(w, n, n_len);
}

/* name = u16be(SHA-256) || SHA-256(data) */
static void name_of(const uint8_t *data, size_t len, uint8_t name[2 + SHA256_LEN])
{
    name[0] = ATTEST_ALG_SHA256 >> 8, name[1] = ATTEST_ALG_SHA256 & 0xff;
    crypto_sha256(data, len, name + 2);
}

/* The qualified name of a child of the object with qualified name parent_qn (Part 1 §16). */
static void qualified_name(const uint8_t *parent_qn, size_t pq_len, const uint8_t name[2 + SHA256_LEN],
                           uint8_t out[2 + SHA256_LEN])
{
    uint8_t buf[4 + 2 + SHA256_LEN + 2 + SHA256_LEN];
    memcpy(buf, parent_qn, pq_len);
    memcpy(buf + pq_len, name, 2 + SHA256_LEN);
    name_of(buf, pq_len + 2 + SHA256_LEN, out);
}

/* The AK parameters: what TPM2_Create (creation data), TPM2_Load (Name) and
 * TPM2_CertifyCreation(AK, AK) return for go-attestation's AK template under the default SRK.
 * Only the public area of the SRK enters these structures (through its Name): its modulus is
 * made from the seed, as nobody ever needs its private key. */
static int make_ak(struct lg_node *nd, const char *seed)
{
    struct wbuf pub = {0}, srk = {0}, cd = {0}, att = {0}, sig = {0};
    uint8_t srk_n[LG_KEY_BYTES], d[SHA256_LEN], srk_name[34], srk_qn[34], ak_name[34], ak_qn[34];
    uint8_t digest[SHA256_LEN], empty_digest[SHA256_LEN], signature[LG_KEY_BYTES];
    const uint8_t owner[4] = {0x40, 0x00, 0x00, 0x01}; /* TPM_RH_OWNER: the SRK's hierarchy */
    struct rsa_pub ak;
    int r;

    r = kcrypto_rsa_public(nd->ak, &ak);
    if (r < 0 || ak.n_len != LG_KEY_BYTES)
        return log_error_errno(-EINVAL, "node %u: the AK is not an RSA-%d key", nd->index, LG_KEY_BITS);
    rsa_public(&pub, ATTEST_AK_ATTRIBUTES, NULL, 0, false, ATTEST_ALG_RSASSA, ak.n, ak.n_len);

    for (unsigned i = 0; i < LG_KEY_BYTES / SHA256_LEN; i++) {
        char purpose[16];
        snprintf(purpose, sizeof(purpose), "srk%u", i);
        derive(seed, nd->index, purpose, d);
        memcpy(srk_n + i * SHA256_LEN, d, SHA256_LEN);
    }
    srk_n[0] |= 0x80, srk_n[LG_KEY_BYTES - 1] |= 1;
    rsa_public(&srk, SRK_ATTRIBUTES, NULL, 0, true, ATTEST_ALG_NULL, srk_n, sizeof(srk_n));
    name_of(srk.b, srk.len, srk_name);
    qualified_name(owner, sizeof(owner), srk_name, srk_qn);
    name_of(pub.b, pub.len, ak_name);
    qualified_name(srk_qn, sizeof(srk_qn), ak_name, ak_qn);

    /* TPMS_CREATION_DATA: no PCRs selected (go-attestation passes none), locality 0. */
    crypto_sha256("", 0, empty_digest);
    put32(&cd, 0);
    put2b(&cd, empty_digest, SHA256_LEN);
    put8(&cd, 0x01); /* TPMA_LOCALITY: TPM_LOC_ZERO */
    put16(&cd, ATTEST_ALG_SHA256);
    put2b(&cd, srk_name, sizeof(srk_name));
    put2b(&cd, srk_qn, sizeof(srk_qn));
    put2b(&cd, NULL, 0);

    /* TPMS_ATTEST of TPM2_CertifyCreation: signer = the AK, no qualifying data. */
    crypto_sha256(cd.b, cd.len, digest);
    put32(&att, ATTEST_GENERATED_MAGIC);
    put16(&att, ATTEST_ST_ATTEST_CREATION);
    put2b(&att, ak_qn, sizeof(ak_qn));
    put2b(&att, NULL, 0);
    put64(&att, 1000000u + 1000u * nd->index); /* clockInfo: clock, resetCount, restartCount, safe */
    put32(&att, 1);
    put32(&att, 0);
    put8(&att, 1);
    put64(&att, 0x2023000100000000ull); /* firmwareVersion */
    put2b(&att, ak_name, sizeof(ak_name));
    put2b(&att, digest, SHA256_LEN);

    crypto_sha256(att.b, att.len, digest);
    r = kcrypto_rsa_pkcs1_sign(nd->ak, CRYPTO_SHA256, digest, signature, sizeof(signature));
    if (r < 0)
        return log_error_errno(r, "node %u: signing the AK's creation attestation failed", nd->index);
    put16(&sig, ATTEST_ALG_RSASSA);
    put16(&sig, ATTEST_ALG_SHA256);
    put2b(&sig, signature, sizeof(signature));

    memcpy(nd->ak_qn, ak_qn, sizeof(nd->ak_qn));
    r = crypto_rsa_spki_pem(&ak, &nd->ak_pem);
    if (r < 0)
        return log_error_errno(r, "node %u: cannot encode the AK public key", nd->index);
    bytes_set(&nd->ak_public, &pub);
    bytes_set(&nd->ak_create_data, &cd);
    bytes_set(&nd->ak_create_attestation, &att);
    bytes_set(&nd->ak_create_signature, &sig);

    /* What the KMS will check, checked here first: a failure is ours, not the KMS's. */
    struct ak_params p = {{pub.b, pub.len}, {cd.b, cd.len}, {att.b, att.len}, {sig.b, sig.len}, false};
    char why[ATTEST_WHY_MAX];
    r = attest_check_ak_params(&p, 0, nd->ak_name, &nd->ak_name_len, why);
    if (r < 0)
        return log_error_errno(r, "node %u: our own AK parameters do not pass the KMS's checks: %s", nd->index, why);
    return 0;
}

/* The EK's public forms: TPM hash, PEM, TPM2B_PUBLIC (TCG default RSA-2048 EK template). */
static int make_ek(struct lg_node *nd)
{
    _cleanup_free_ uint8_t *spki = NULL;
    struct wbuf pub = {0}, b = {0};
    uint8_t digest[SHA256_LEN];
    size_t spki_len = 0;
    int r;

    r = nd->synthetic ? 0 : kcrypto_rsa_public(nd->ek, &nd->ek_pub);
    if (r == 0 && nd->ek_pub.n_len != LG_KEY_BYTES)
        r = -EINVAL;
    if (r == 0)
        r = crypto_rsa_spki_der(&nd->ek_pub, &spki, &spki_len);
    if (r == 0)
        r = crypto_rsa_spki_pem(&nd->ek_pub, &nd->ek_pem);
    if (r < 0)
        return log_error_errno(r, "node %u: cannot encode the EK public key", nd->index);
    crypto_sha256(spki, spki_len, digest);
    hex_encode(digest, sizeof(digest), nd->tpm_hash);
    nd->ek_spki.p = spki;
    nd->ek_spki.len = spki_len;
    spki = NULL;
    rsa_public(&pub, EK_ATTRIBUTES, ek_policy, sizeof(ek_policy), true, ATTEST_ALG_NULL, nd->ek_pub.n,
               nd->ek_pub.n_len);
    put2b(&b, pub.b, pub.len);
    bytes_set(&nd->ek_tpm2b_public, &b);
    return 0;
}

/* A public key that is no key: a 2048-bit odd modulus from the seed, for nodes that are only
 * registered (register --real-keys). Nobody can answer a credential made for it. */
static void synthetic_ek(const char *seed, struct lg_node *nd)
{
    uint8_t d[SHA256_LEN];

    for (unsigned i = 0; i < LG_KEY_BYTES / SHA256_LEN; i++) {
        char purpose[24];
        snprintf(purpose, sizeof(purpose), "synthetic-ek%u", i);
        derive(seed, nd->index, purpose, d);
        memcpy(nd->ek_pub.n + i * SHA256_LEN, d, SHA256_LEN);
    }
    nd->ek_pub.n[0] |= 0x80, nd->ek_pub.n[LG_KEY_BYTES - 1] |= 1;
    nd->ek_pub.n_len = LG_KEY_BYTES;
    nd->ek_pub.e = 65537;
    nd->synthetic = true;
}

/* ---- PCR quotes, /postPass ciphertexts ---- */

void lg_pcr_values(const char *seed, uint32_t index, uint8_t pcr[LG_PCRS][LG_PCR_LEN])
{
    memset(pcr, 0, (size_t)LG_PCRS * LG_PCR_LEN);
    for (unsigned i = 0; i < LG_PCRS; i++)
        if (LG_PCR_MASK & (1u << i)) {
            char purpose[16];
            snprintf(purpose, sizeof(purpose), "pcr%u", i);
            derive(seed, index, purpose, pcr[i]);
        }
}

int lg_quote(struct lg_node *nd, const uint8_t *nonce, size_t nonce_len, struct lg_bytes *attest, struct lg_bytes *sig)
{
    static atomic_uint_fast64_t clock_ms = 1000000;
    struct wbuf att = {0}, s = {0};
    uint8_t values[LG_PCRS * LG_PCR_LEN], digest[SHA256_LEN], signature[LG_KEY_BYTES];
    size_t nv = 0;
    int r;

    if (nonce_len > 64)
        return -EINVAL;
    for (unsigned i = 0; i < LG_PCRS; i++)
        if (LG_PCR_MASK & (1u << i)) {
            memcpy(values + nv, nd->pcr[i], LG_PCR_LEN);
            nv += LG_PCR_LEN;
        }
    crypto_sha256(values, nv, digest);
    /* TPMS_ATTEST of TPM2_Quote (Part 2 §10.12.8, §10.12.1). */
    put32(&att, ATTEST_GENERATED_MAGIC);
    put16(&att, ATTEST_ST_ATTEST_QUOTE);
    put2b(&att, nd->ak_qn, sizeof(nd->ak_qn));
    put2b(&att, nonce, nonce_len);
    put64(&att, atomic_fetch_add(&clock_ms, 1)); /* clockInfo: clock, resetCount, restartCount, safe */
    put32(&att, 1);
    put32(&att, 0);
    put8(&att, 1);
    put64(&att, 0x2023000100000000ull); /* firmwareVersion */
    put32(&att, 1);                     /* TPML_PCR_SELECTION: one bank */
    put16(&att, ATTEST_ALG_SHA256);
    put8(&att, 3); /* sizeofSelect: PCRs 0..23 */
    put8(&att, LG_PCR_MASK & 0xff), put8(&att, LG_PCR_MASK >> 8 & 0xff), put8(&att, LG_PCR_MASK >> 16 & 0xff);
    put2b(&att, digest, sizeof(digest));

    crypto_sha256(att.b, att.len, digest);
    pthread_mutex_lock(&nd->lock);
    r = kcrypto_rsa_pkcs1_sign(nd->ak, CRYPTO_SHA256, digest, signature, sizeof(signature));
    pthread_mutex_unlock(&nd->lock);
    if (r < 0)
        return r;
    put16(&s, ATTEST_ALG_RSASSA);
    put16(&s, ATTEST_ALG_SHA256);
    put2b(&s, signature, sizeof(signature));
    bytes_set(attest, &att);
    bytes_set(sig, &s);
    return 0;
}

int lg_make_wire(const char *seed, struct lg_node *nd)
{
    uint8_t d[SHA256_LEN], oaep_seed[SHA256_LEN], blob[LG_KEY_BYTES];
    char plain[2 * SHA256_LEN + 1];
    size_t len = 0;
    int r;

    derive(seed, nd->index, "generated-passphrase", d);
    hex_encode(d, 16, plain); /* 32 characters, as the TPM's random passphrase of a node */
    derive(seed, nd->index, "generated-oaep", oaep_seed);
    r = crypto_rsa_oaep_encrypt(&nd->ek_pub, CRYPTO_SHA256, NULL, 0, plain, 32, oaep_seed, blob);
    secure_wipe(d, sizeof(d));
    secure_wipe(plain, sizeof(plain));
    if (r < 0)
        return r;
    free(nd->wire);
    nd->wire = base64_encode(blob, sizeof(blob), BASE64_URL_RAW, &len);
    if (len != LG_WIRE_LEN)
        return -EINVAL;
    return 0;
}

/* ---- TPM2_ActivateCredential ---- */

int lg_activate(struct lg_node *nd, const uint8_t *id_object, size_t id_len, const uint8_t *enc_secret, size_t es_len,
                uint8_t *out, size_t cap, size_t *out_len)
{
    static const char identity[] = "IDENTITY"; /* the label includes its NUL */
    uint8_t seed[CRYPTO_HASH_MAX], sym[16], hmac_key[SHA256_LEN], hmac[SHA256_LEN], cv[2 + CRYPTO_HASH_MAX + 2];
    uint8_t mac_in[sizeof(cv) + ATTEST_NAME_MAX];
    size_t seed_len = 0, blob_len, hmac_len, enc_len;
    const uint8_t *enc;
    int r;

    /* TPM2B_ID_OBJECT: size, then TPM2B_DIGEST integrityHMAC, then encIdentity. */
    if (id_len < 4 || (size_t)(id_object[0] << 8 | id_object[1]) != id_len - 2)
        return -EBADMSG;
    blob_len = id_len - 2;
    hmac_len = (size_t)(id_object[2] << 8 | id_object[3]);
    if (hmac_len != SHA256_LEN || blob_len < 2 + hmac_len + 2)
        return -EBADMSG;
    enc = id_object + 4 + hmac_len;
    enc_len = blob_len - 2 - hmac_len;
    if (enc_len > sizeof(cv))
        return -EBADMSG;
    if (es_len < 2 || (size_t)(enc_secret[0] << 8 | enc_secret[1]) != es_len - 2)
        return -EBADMSG;

    pthread_mutex_lock(&nd->lock);
    r = kcrypto_rsa_oaep_decrypt(nd->ek, CRYPTO_SHA256, identity, sizeof(identity), enc_secret + 2, es_len - 2, seed,
                                 sizeof(seed), &seed_len);
    pthread_mutex_unlock(&nd->lock);
    if (r < 0)
        return r == -EMSGSIZE ? -EBADMSG : r == -EBADMSG ? -EPERM : r;
    /* The EK's nameAlg (SHA-256) and symmetric algorithm (AES-128-CFB) decide, as in a TPM. */
    r = crypto_kdfa(CRYPTO_SHA256, seed, seed_len, "STORAGE", nd->ak_name, nd->ak_name_len, NULL, 0, 128, sym);
    if (r == 0)
        r = crypto_kdfa(CRYPTO_SHA256, seed, seed_len, "INTEGRITY", NULL, 0, NULL, 0, 8 * SHA256_LEN, hmac_key);
    if (r == 0) {
        memcpy(mac_in, enc, enc_len);
        memcpy(mac_in + enc_len, nd->ak_name, nd->ak_name_len);
        r = crypto_hmac(CRYPTO_SHA256, hmac_key, sizeof(hmac_key), mac_in, enc_len + nd->ak_name_len, hmac);
    }
    if (r == 0 && !secure_equal(hmac, id_object + 4, SHA256_LEN))
        r = -EPERM; /* TPM_RC_INTEGRITY */
    if (r == 0)
        r = crypto_aes_cfb_decrypt(sym, sizeof(sym), (const uint8_t[AES_BLOCK_LEN]){0}, enc, enc_len, cv);
    if (r == 0 && (enc_len < 2 || (size_t)(cv[0] << 8 | cv[1]) != enc_len - 2))
        r = -EBADMSG;
    if (r == 0 && enc_len - 2 > cap)
        r = -EMSGSIZE;
    if (r == 0) {
        memcpy(out, cv + 2, enc_len - 2);
        *out_len = enc_len - 2;
    }
    secure_wipe(seed, sizeof(seed));
    secure_wipe(sym, sizeof(sym));
    secure_wipe(hmac_key, sizeof(hmac_key));
    secure_wipe(cv, sizeof(cv));
    secure_wipe(mac_in, sizeof(mac_in));
    return r;
}

/* ---- the key cache ---- */

struct cache {
    char *path;
    uint8_t seed_hash[SHA256_LEN];
    uint8_t *entries; /* count * ENTRY bytes */
    size_t count;
    bool dirty;
};

static char *default_cache_path(const uint8_t seed_hash[SHA256_LEN])
{
    char hex[2 * SHA256_LEN + 1], *path;
    size_t n;

    hex_encode(seed_hash, SHA256_LEN, hex);
    n = strlen(LG_DEFAULT_CACHE_DIR) + 40;
    path = xmalloc(n);
    snprintf(path, n, "%s/%.16s.keys", LG_DEFAULT_CACHE_DIR, hex);
    return path;
}

/* Reads the cache when it is there and belongs to this seed; anything else is ignored (and
 * rewritten later). */
static void cache_read(struct cache *c)
{
    _cleanup_free_ char *data = NULL;
    uint8_t sum[SHA256_LEN];
    size_t len = 0, count;
    const uint8_t *p;

    if (file_read_all(c->path, CACHE_HEAD + (size_t)LG_MAX_NODES * ENTRY + SHA256_LEN, &data, &len) < 0)
        return; /* missing or unreadable: made anew */
    p = (const uint8_t *)data;
    if (len < CACHE_HEAD + SHA256_LEN || memcmp(p, CACHE_MAGIC, 8) != 0 ||
        (uint32_t)(p[8] << 24 | p[9] << 16 | p[10] << 8 | p[11]) != LG_KEY_BITS) {
        log_warn("--key-cache %s: not a key cache of this version; it will be rewritten", c->path);
        return;
    }
    count = (size_t)p[12] << 24 | (size_t)p[13] << 16 | (size_t)p[14] << 8 | p[15];
    crypto_sha256(p, len - SHA256_LEN, sum);
    if (count > LG_MAX_NODES || len != CACHE_HEAD + count * ENTRY + SHA256_LEN ||
        memcmp(sum, p + len - SHA256_LEN, SHA256_LEN)) {
        log_warn("--key-cache %s: damaged; it will be rewritten", c->path);
        return;
    }
    if (memcmp(p + 16, c->seed_hash, SHA256_LEN) != 0) {
        log_warn("--key-cache %s: made for another --seed; it will be rewritten", c->path);
        return;
    }
    c->count = count;
    c->entries = xmalloc(count * ENTRY + 1);
    memcpy(c->entries, p + CACHE_HEAD, count * ENTRY);
}

/* Writes the cache (temporary file + rename); a failure only costs the next run time. */
static void cache_write(struct cache *c)
{
    size_t len = CACHE_HEAD + c->count * ENTRY + SHA256_LEN, tl = strlen(c->path) + 32;
    _cleanup_free_ uint8_t *buf = xmalloc(len);
    _cleanup_free_ char *tmp = xmalloc(tl), *dir = xstrdup(c->path);
    char *slash = strrchr(dir, '/');
    int fd;

    if (slash && slash != dir) {
        *slash = 0;
        /* The default directory is ours to make; a --key-cache directory must exist. */
        if (!strncmp(c->path, LG_DEFAULT_CACHE_DIR "/", strlen(LG_DEFAULT_CACHE_DIR) + 1))
            (void)mkdir(dir, 0700);
    }
    memcpy(buf, CACHE_MAGIC, 8);
    buf[8] = LG_KEY_BITS >> 24, buf[9] = LG_KEY_BITS >> 16 & 0xff, buf[10] = LG_KEY_BITS >> 8 & 0xff,
    buf[11] = LG_KEY_BITS & 0xff;
    buf[12] = c->count >> 24, buf[13] = c->count >> 16, buf[14] = c->count >> 8, buf[15] = c->count;
    memcpy(buf + 16, c->seed_hash, SHA256_LEN);
    memcpy(buf + CACHE_HEAD, c->entries, c->count * ENTRY);
    crypto_sha256(buf, len - SHA256_LEN, buf + len - SHA256_LEN);
    snprintf(tmp, tl, "%s.tmp.%ld", c->path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || fd_write_all(fd, buf, len) < 0 || close(fd) < 0 || rename(tmp, c->path) < 0) {
        log_warn("--key-cache %s: cannot write it (%s); keys will be generated again next time", c->path,
                 strerror(errno));
        if (fd >= 0)
            (void)unlink(tmp);
        return;
    }
    log_info("keys of %zu nodes cached in %s", c->count, c->path);
}

/* ---- making the nodes, in parallel ---- */

struct maker {
    const struct lg_setup *s;
    struct lg_nodes *nodes;
    struct cache *cache;
    size_t cached; /* entries 0..cached-1 come from the cache */
    atomic_size_t next, generated;
    atomic_int error;
};

static int node_keys(struct maker *m, struct lg_node *nd)
{
    uint8_t *e = m->cache->entries ? m->cache->entries + (size_t)nd->index * ENTRY : NULL;
    uint8_t d[SHA256_LEN];
    int r;

    if (nd->index < m->cached) {
        r = kcrypto_rsa_from_primes(e, HALF, e + HALF, HALF, 65537, &nd->ek);
        if (r == 0 && !m->s->ek_only)
            r = kcrypto_rsa_from_primes(e + 2 * HALF, HALF, e + 3 * HALF, HALF, 65537, &nd->ak);
        if (r < 0)
            return log_error_errno(r, "--key-cache %s: the keys of node %u are not valid; delete the file",
                                   m->cache->path, nd->index);
        return 0;
    }
    derive(m->s->seed, nd->index, "EK", d);
    r = kcrypto_rsa_generate(d, sizeof(d), LG_KEY_BITS, &nd->ek);
    if (r == 0) {
        derive(m->s->seed, nd->index, "AK", d);
        r = kcrypto_rsa_generate(d, sizeof(d), LG_KEY_BITS, &nd->ak);
    }
    secure_wipe(d, sizeof(d));
    if (r < 0)
        return log_error_errno(r, "node %u: RSA key generation failed", nd->index);
    if (e) {
        r = kcrypto_rsa_primes(nd->ek, e, e + HALF, HALF);
        if (r == 0)
            r = kcrypto_rsa_primes(nd->ak, e + 2 * HALF, e + 3 * HALF, HALF);
        if (r < 0)
            return log_error_errno(r, "node %u: cannot export its keys for the cache", nd->index);
    }
    size_t g = atomic_fetch_add(&m->generated, 1) + 1;
    if (g % 64 == 0)
        log_info("generated the keys of %zu of %zu nodes", g, m->nodes->n - m->cached);
    return 0;
}

static int node_make(struct maker *m, struct lg_node *nd)
{
    struct ak_params pa;
    int r;

    lg_passphrase(m->s->seed, nd->index, nd->passphrase);
    lg_pcr_values(m->s->seed, nd->index, nd->pcr);
    if (m->s->ek_only && m->s->real_keys && nd->index >= m->s->real_keys) {
        synthetic_ek(m->s->seed, nd);
        return make_ek(nd);
    }
    r = node_keys(m, nd);
    if (r == 0)
        r = make_ek(nd);
    if (r == 0 && !m->s->ek_only)
        r = make_ak(nd, m->s->seed);
    if (r < 0 || m->s->ek_only)
        return r;
    pa = (struct ak_params){{nd->ak_public.p, nd->ak_public.len},
                            {nd->ak_create_data.p, nd->ak_create_data.len},
                            {nd->ak_create_attestation.p, nd->ak_create_attestation.len},
                            {nd->ak_create_signature.p, nd->ak_create_signature.len},
                            false};
    r = proto_token_encode(nd->ek_pem, &pa, &nd->token);
    if (r < 0)
        return log_error_errno(r, "node %u: cannot encode its token", nd->index);
    return 0;
}

static void *maker_thread(void *arg)
{
    struct maker *m = arg;

    for (;;) {
        size_t i = atomic_fetch_add(&m->next, 1);
        if (i >= m->nodes->n || atomic_load(&m->error))
            break;
        int r = node_make(m, &m->nodes->v[i]);
        if (r < 0)
            atomic_store(&m->error, r);
    }
    return NULL;
}

int lg_nodes_make(const struct lg_setup *s, struct lg_nodes *out)
{
    struct cache cache = {0};
    struct maker m = {.s = s, .nodes = out, .cache = &cache};
    unsigned threads = s->threads ? s->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    pthread_t tid[64];
    unsigned started = 0;
    int r, lock_fd = -1;

    *out = (struct lg_nodes){0};
    if (s->nodes == 0 || s->nodes > LG_MAX_NODES)
        return log_error_errno(-EINVAL, "--nodes %zu: must be 1..%d", s->nodes, LG_MAX_NODES);
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    /* Nodes with real keys: all, or the first real_keys of a register. */
    size_t keyed = s->ek_only && s->real_keys && s->real_keys < s->nodes ? s->real_keys : s->nodes;
    crypto_sha256(s->seed, strlen(s->seed), cache.seed_hash);
    if (!s->cache || strcmp(s->cache, "")) {
        cache.path = s->cache ? xstrdup(s->cache) : default_cache_path(cache.seed_hash);
        cache_read(&cache);
    }
    if (cache.path && cache.count < keyed) {
        /* Another run (the other build's test) may be making the same keys: wait for it, then
         * take what it wrote. The lock is released when the process exits. */
        size_t ll = strlen(cache.path) + 8;
        _cleanup_free_ char *lock = xmalloc(ll);
        snprintf(lock, ll, "%s.lock", cache.path);
        if (!strncmp(cache.path, LG_DEFAULT_CACHE_DIR "/", strlen(LG_DEFAULT_CACHE_DIR) + 1))
            (void)mkdir(LG_DEFAULT_CACHE_DIR, 0700);
        lock_fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
            log_info("--key-cache %s: another kms-loadgen is making keys; waiting for it", cache.path);
            (void)flock(lock_fd, LOCK_EX);
            free(cache.entries);
            cache.entries = NULL;
            cache.count = 0;
            cache_read(&cache);
        }
    }
    m.cached = cache.count < keyed ? cache.count : keyed;
    if (cache.path && cache.count < keyed) {
        /* Room for every node; entries from the old file are kept. */
        uint8_t *e = xcalloc(keyed, ENTRY);
        if (cache.count)
            memcpy(e, cache.entries, cache.count * ENTRY);
        free(cache.entries);
        cache.entries = e;
        cache.count = keyed;
        cache.dirty = true;
    }
    if (m.cached < keyed)
        log_info("generating RSA-%d EK and AK keys for %zu nodes on %u threads (once%s%s)", LG_KEY_BITS,
                 keyed - m.cached, threads, cache.path ? "; cached in " : "; --key-cache is off",
                 cache.path ? cache.path : "");
    out->n = s->nodes;
    out->v = xcalloc(s->nodes, sizeof(*out->v));
    for (size_t i = 0; i < s->nodes; i++) {
        out->v[i].index = (uint32_t)i;
        pthread_mutex_init(&out->v[i].lock, NULL);
    }
    for (unsigned t = 0; t < threads && t < s->nodes; t++) {
        if (pthread_create(&tid[t], NULL, maker_thread, &m) != 0)
            break;
        started++;
    }
    if (started == 0)
        maker_thread(&m);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    r = atomic_load(&m.error);
    if (r == 0 && cache.dirty)
        cache_write(&cache);
    if (lock_fd >= 0)
        close(lock_fd); /* releases the lock */
    if (cache.entries)
        secure_wipe(cache.entries, cache.count * ENTRY);
    free(cache.entries);
    free(cache.path);
    if (r < 0)
        lg_nodes_free(out);
    return r;
}

void lg_nodes_free(struct lg_nodes *nodes)
{
    for (size_t i = 0; nodes->v && i < nodes->n; i++) {
        struct lg_node *nd = &nodes->v[i];
        kcrypto_rsa_free(nd->ek);
        kcrypto_rsa_free(nd->ak);
        pthread_mutex_destroy(&nd->lock);
        free(nd->ek_pem);
        free(nd->ak_pem);
        free(nd->ek_spki.p);
        free(nd->wire);
        free(nd->ek_tpm2b_public.p);
        free(nd->ak_public.p);
        free(nd->ak_create_data.p);
        free(nd->ak_create_attestation.p);
        free(nd->ak_create_signature.p);
        free(nd->token);
        secure_wipe(nd->passphrase, sizeof(nd->passphrase));
    }
    free(nodes->v);
    *nodes = (struct lg_nodes){0};
}
