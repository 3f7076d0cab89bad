/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The primitives of TPM credential activation and attestation checks (docs/protocol-g3.md §3, docs/protocol-g1.md §7):
 * hashes by name, HMAC, KDFa, AES-CFB, RSA-OAEP with a label, PKCS#1 v1.5 and ECDSA verification,
 * random bytes, and RSA public keys read from PEM. Every key and intermediate is wiped. */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <mbedtls/aes.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/rsa.h>

#include "base.h"
#include "crypto.h"
#include "crypto_internal.h"

mbedtls_md_type_t crypto_md_type(enum crypto_hash h)
{
    switch (h) {
    case CRYPTO_SHA1: return MBEDTLS_MD_SHA1;
    case CRYPTO_SHA256: return MBEDTLS_MD_SHA256;
    case CRYPTO_SHA384: return MBEDTLS_MD_SHA384;
    case CRYPTO_SHA512: return MBEDTLS_MD_SHA512;
    }
    return MBEDTLS_MD_NONE;
}

size_t crypto_hash_len(enum crypto_hash h)
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(crypto_md_type(h));
    return md ? mbedtls_md_get_size(md) : 0;
}

int crypto_hash(enum crypto_hash h, const void *in, size_t n, uint8_t *out)
{
    if (h == CRYPTO_SHA256) { /* the x86 SHA instructions when the CPU has them */
        crypto_sha256(in, n, out);
        return 0;
    }
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(crypto_md_type(h));
    if (!md)
        return -EINVAL;
    return mbedtls_md(md, in, n, out) == 0 ? 0 : -EINVAL;
}

/* HMAC under key of the n parts one after another: the x86 SHA instructions for SHA-256 when the
 * CPU has them (ni), else mbedTLS's ctx (set up for HMAC). 0 or -EINVAL. */
static int hmac_parts(bool ni, mbedtls_md_context_t *ctx, const void *key, size_t key_len, const struct bytes *parts,
                      size_t n, uint8_t *out)
{
    if (ni) {
        struct hmac_sha256_ni c;
        hmac_sha256_ni_init(&c, key, key_len);
        for (size_t k = 0; k < n; k++)
            hmac_sha256_ni_update(&c, parts[k].data, parts[k].len);
        hmac_sha256_ni_final(&c, out);
        return 0;
    }
    if (mbedtls_md_hmac_starts(ctx, key, key_len) != 0)
        return -EINVAL;
    for (size_t k = 0; k < n; k++)
        if (mbedtls_md_hmac_update(ctx, parts[k].data, parts[k].len) != 0)
            return -EINVAL;
    return mbedtls_md_hmac_finish(ctx, out) == 0 ? 0 : -EINVAL;
}

int crypto_hmac(enum crypto_hash h, const void *key, size_t key_len, const void *in, size_t n, uint8_t *out)
{
    if (h == CRYPTO_SHA256 && crypto_sha256_ni_available()) {
        const struct bytes part = bytes_view(in, n);
        return hmac_parts(true, NULL, key, key_len, &part, 1, out);
    }
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(crypto_md_type(h));
    if (!md)
        return -EINVAL;
    return mbedtls_md_hmac(md, key, key_len, in, n, out) == 0 ? 0 : -EINVAL;
}

/* TPM 2.0 Part 1 §11.4.10.2 (SP 800-108 counter mode with HMAC):
 *   K(i) = HMAC_H(key, u32be(i) || label || 0x00 || contextU || contextV || u32be(bits))
 * concatenated and cut to ceil(bits/8) bytes; when bits is not a multiple of 8 the unused high
 * bits of the first byte are cleared, as the reference implementation (CryptKDFa) does. */
int crypto_kdfa(enum crypto_hash h, const void *key, size_t key_len, const char *label, const void *context_u,
                size_t u_len, const void *context_v, size_t v_len, uint32_t bits, uint8_t *out)
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(crypto_md_type(h));
    bool ni = h == CRYPTO_SHA256 && crypto_sha256_ni_available();
    uint8_t block[CRYPTO_HASH_MAX], be_i[4], be_bits[4] = {bits >> 24, bits >> 16, bits >> 8, bits};
    size_t need = (bits + 7) / 8, done = 0, hlen;
    mbedtls_md_context_t ctx;
    int r = 0;

    if (!md || bits == 0 || bits > CRYPTO_KDFA_MAX_BITS || !label)
        return -EINVAL;
    const struct bytes parts[] = {bytes_view(be_i, 4), bytes_view(label, strlen(label) + 1),
                                  bytes_view(context_u, context_u ? u_len : 0),
                                  bytes_view(context_v, context_v ? v_len : 0), bytes_view(be_bits, 4)};
    hlen = mbedtls_md_get_size(md);
    mbedtls_md_init(&ctx);
    if (!ni && mbedtls_md_setup(&ctx, md, 1) != 0) {
        mbedtls_md_free(&ctx);
        return -ENOMEM;
    }
    for (uint32_t i = 1; done < need && r == 0; i++) {
        size_t take = need - done < hlen ? need - done : hlen;
        be_i[0] = i >> 24, be_i[1] = i >> 16, be_i[2] = i >> 8, be_i[3] = i;
        r = hmac_parts(ni, &ctx, key, key_len, parts, sizeof(parts) / sizeof(parts[0]), block);
        if (r == 0) {
            memcpy(out + done, block, take);
            done += take;
        }
    }
    if (r == 0 && bits % 8)
        out[0] &= (uint8_t)((1u << (bits % 8)) - 1);
    if (r < 0)
        secure_wipe(out, need);
    secure_wipe(block, sizeof(block));
    mbedtls_md_free(&ctx); /* zeroizes the HMAC pads */
    return r;
}

/* CFB with a full-block (128-bit) feedback, as TPM 2.0 and Go's cipher.NewCFBEncrypter use. */
static int aes_cfb(int mode, const uint8_t *key, size_t key_len, const uint8_t iv[AES_BLOCK_LEN], const void *in,
                   size_t n, uint8_t *out)
{
    mbedtls_aes_context aes;
    uint8_t v[AES_BLOCK_LEN];
    size_t off = 0;
    int r = 0;

    if (key_len != 16 && key_len != 24 && key_len != 32)
        return -EINVAL;
    memcpy(v, iv, sizeof(v));
    mbedtls_aes_init(&aes);
    /* CFB runs the block cipher forwards in both directions. */
    if (mbedtls_aes_setkey_enc(&aes, key, (unsigned)key_len * 8) != 0 ||
        mbedtls_aes_crypt_cfb128(&aes, mode, n, &off, v, in, out) != 0)
        r = -EINVAL;
    mbedtls_aes_free(&aes);
    secure_wipe(v, sizeof(v));
    return r;
}

int crypto_aes_cfb_encrypt(const uint8_t *key, size_t key_len, const uint8_t iv[AES_BLOCK_LEN], const void *in,
                           size_t n, uint8_t *out)
{
    return aes_cfb(MBEDTLS_AES_ENCRYPT, key, key_len, iv, in, n, out);
}

int crypto_aes_cfb_decrypt(const uint8_t *key, size_t key_len, const uint8_t iv[AES_BLOCK_LEN], const void *in,
                           size_t n, uint8_t *out)
{
    return aes_cfb(MBEDTLS_AES_DECRYPT, key, key_len, iv, in, n, out);
}

static int random_kernel(void *buf, size_t n)
{
    uint8_t *p = buf;

    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            return log_error_errno(r, "getrandom: %m");
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Small requests (nonces, credential secrets and seeds, OAEP seeds: three or four per exchange)
 * are served from a block of the kernel's bytes fetched at once, so an exchange costs no
 * getrandom(2) most of the time. The block lives in its own page, left out of core dumps and
 * zeroed in a forked child (MADV_WIPEONFORK: the child finds it empty and fetches its own, so
 * two processes never hand out the same bytes); each byte handed out is wiped from it at once.
 * Without MADV_WIPEONFORK (Linux < 4.14) every request goes to the kernel. */
#define RANDOM_POOL_MAX_REQUEST 64
struct random_pool {
    size_t avail; /* unread bytes at the end of buf; 0 after a fork */
    uint8_t buf[1024];
};
static pthread_mutex_t random_lock = PTHREAD_MUTEX_INITIALIZER;
static struct random_pool *random_pool;
static bool random_pool_failed;

static struct random_pool *random_pool_get(void)
{
    if (!random_pool && !random_pool_failed) {
        long page = sysconf(_SC_PAGESIZE);
        size_t len = page > 0 && (size_t)page >= sizeof(struct random_pool) ? (size_t)page : 4096;
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || madvise(m, len, MADV_WIPEONFORK) < 0) {
            if (m != MAP_FAILED)
                munmap(m, len);
            random_pool_failed = true;
            return NULL;
        }
        (void)madvise(m, len, MADV_DONTDUMP);
        random_pool = m;
    }
    return random_pool;
}

int crypto_random(void *buf, size_t n)
{
    struct random_pool *rp;
    int r = 0;

    if (n > RANDOM_POOL_MAX_REQUEST)
        return random_kernel(buf, n);
    pthread_mutex_lock(&random_lock);
    rp = random_pool_get();
    if (!rp) {
        pthread_mutex_unlock(&random_lock);
        return random_kernel(buf, n);
    }
    if (rp->avail < n) {
        r = random_kernel(rp->buf, sizeof(rp->buf));
        rp->avail = r < 0 ? 0 : sizeof(rp->buf);
    }
    if (r == 0) {
        uint8_t *from = rp->buf + sizeof(rp->buf) - rp->avail;
        memcpy(buf, from, n);
        secure_wipe(from, n);
        rp->avail -= n;
    }
    pthread_mutex_unlock(&random_lock);
    return r;
}

/* mbedTLS random callback: the kernel's bytes, or a fixed string for known-answer tests. */
struct rng {
    const uint8_t *fixed;
    size_t fixed_len;
};

static int rng_bytes(void *ctx, unsigned char *out, size_t n)
{
    struct rng *g = ctx;

    if (!g->fixed)
        return crypto_random(out, n) == 0 ? 0 : MBEDTLS_ERR_RSA_RNG_FAILED;
    if (n > g->fixed_len)
        return MBEDTLS_ERR_RSA_RNG_FAILED;
    memcpy(out, g->fixed, n);
    g->fixed += n;
    g->fixed_len -= n;
    return 0;
}

/* Loads key into an mbedTLS RSA context with the given padding; refuses malformed keys. */
static int rsa_load(const struct rsa_pub *key, int padding, mbedtls_md_type_t md, mbedtls_rsa_context *rsa)
{
    uint8_t e[4] = {key->e >> 24, key->e >> 16, key->e >> 8, key->e};

    if (key->n_len == 0 || key->n_len > RSA_MAX_MODULUS || key->n[0] == 0)
        return -EINVAL;
    if (mbedtls_rsa_import_raw(rsa, key->n, key->n_len, NULL, 0, NULL, 0, NULL, 0, e, sizeof(e)) != 0 ||
        mbedtls_rsa_complete(rsa) != 0 || mbedtls_rsa_check_pubkey(rsa) != 0 ||
        mbedtls_rsa_set_padding(rsa, padding, md) != 0)
        return -EINVAL;
    return 0;
}

/* Ready public-key contexts of the RSA keys used lately, by modulus and exponent. A node's keys
 * come back: its EK and AK on each connection of a G1 flow (getPass, postPass, getPass), its AK
 * for the AK parameters and the quote in G3, its EK at its next boots. A context that did one
 * operation keeps R^2 mod N (its RN) for the Montgomery form, about a fifth of a public-key
 * operation. Bounded (oldest replaced): one EK and one AK of the last 128 nodes. Taken with a
 * trylock: a thread that finds it busy uses a fresh context. Public keys only: nothing to wipe. */
#define RSA_CACHE_SIZE 256
static struct rsa_cache_entry {
    bool used;
    uint32_t e;
    size_t n_len;
    uint8_t n[RSA_MAX_MODULUS];
    mbedtls_rsa_context rsa;
} rsa_cache[RSA_CACHE_SIZE];
static size_t rsa_cache_next;
static pthread_mutex_t rsa_cache_lock = PTHREAD_MUTEX_INITIALIZER;

struct rsa_ctx {
    mbedtls_rsa_context fresh, *rsa;
    bool locked;
};

/* Points c->rsa at a ready context for key with the given padding: a cached one (c->locked;
 * the cache stays locked until rsa_ctx_done) or c->fresh. 0 or -EINVAL (malformed key, not
 * cached); rsa_ctx_done must be called either way. */
static int rsa_ctx_get(const struct rsa_pub *key, int padding, mbedtls_md_type_t md, struct rsa_ctx *c)
{
    struct rsa_cache_entry *e;
    int r;

    mbedtls_rsa_init(&c->fresh);
    c->rsa = &c->fresh;
    c->locked = false;
    if (key->n_len == 0 || key->n_len > RSA_MAX_MODULUS || key->n[0] == 0)
        return -EINVAL;
    if (pthread_mutex_trylock(&rsa_cache_lock) != 0)
        return rsa_load(key, padding, md, &c->fresh);
    c->locked = true;
    for (size_t i = 0; i < RSA_CACHE_SIZE; i++) {
        e = &rsa_cache[i];
        if (e->used && e->n_len == key->n_len && e->e == key->e && !memcmp(e->n, key->n, key->n_len)) {
            c->rsa = &e->rsa;
            return mbedtls_rsa_set_padding(&e->rsa, padding, md) == 0 ? 0 : -EINVAL;
        }
    }
    e = &rsa_cache[rsa_cache_next];
    if (e->used)
        mbedtls_rsa_free(&e->rsa);
    mbedtls_rsa_init(&e->rsa);
    e->used = false;
    r = rsa_load(key, padding, md, &e->rsa);
    if (r < 0) {
        /* The slot stays free. */
        mbedtls_rsa_free(&e->rsa);
        mbedtls_rsa_init(&e->rsa);
        return r;
    }
    e->used = true;
    e->e = key->e;
    e->n_len = key->n_len;
    memcpy(e->n, key->n, key->n_len);
    rsa_cache_next = (rsa_cache_next + 1) % RSA_CACHE_SIZE;
    c->rsa = &e->rsa;
    return 0;
}

static void rsa_ctx_done(struct rsa_ctx *c)
{
    mbedtls_rsa_free(&c->fresh);
    if (c->locked)
        pthread_mutex_unlock(&rsa_cache_lock);
}

int crypto_rsa_oaep_encrypt(const struct rsa_pub *key, enum crypto_hash h, const void *label, size_t label_len,
                            const void *in, size_t n, const uint8_t *oaep_seed, uint8_t *out)
{
    struct rng g = {oaep_seed, oaep_seed ? crypto_hash_len(h) : 0};
    struct rsa_ctx c;
    int r;

    if (crypto_md_type(h) == MBEDTLS_MD_NONE)
        return -EINVAL;
    r = rsa_ctx_get(key, MBEDTLS_RSA_PKCS_V21, crypto_md_type(h), &c);
    /* The message must fit: n <= k - 2*hLen - 2 (RFC 8017 §7.1.1); mbedTLS checks it too. */
    if (r == 0 && n + 2 * crypto_hash_len(h) + 2 > key->n_len)
        r = -EMSGSIZE;
    if (r == 0 && mbedtls_rsa_rsaes_oaep_encrypt(c.rsa, rng_bytes, &g, label, label_len, n, in, out) != 0)
        r = -EIO;
    rsa_ctx_done(&c);
    return r;
}

int crypto_rsa_pkcs1_verify(const struct rsa_pub *key, enum crypto_hash h, const uint8_t *digest, const uint8_t *sig,
                            size_t sig_len)
{
    struct rsa_ctx c;
    int r;

    if (crypto_md_type(h) == MBEDTLS_MD_NONE)
        return -EINVAL;
    r = rsa_ctx_get(key, MBEDTLS_RSA_PKCS_V15, crypto_md_type(h), &c);
    /* Like Go's VerifyPKCS1v15: the signature is exactly as long as the modulus. */
    if (r == 0 && sig_len != key->n_len)
        r = -EKEYREJECTED;
    if (r == 0 &&
        mbedtls_rsa_rsassa_pkcs1_v15_verify(c.rsa, crypto_md_type(h), (unsigned)crypto_hash_len(h), digest, sig) != 0)
        r = -EKEYREJECTED;
    rsa_ctx_done(&c);
    return r;
}

static mbedtls_ecp_group_id curve_id(enum crypto_curve c)
{
    switch (c) {
    case CRYPTO_P256: return MBEDTLS_ECP_DP_SECP256R1;
    case CRYPTO_P384: return MBEDTLS_ECP_DP_SECP384R1;
    case CRYPTO_P521: return MBEDTLS_ECP_DP_SECP521R1;
    }
    return MBEDTLS_ECP_DP_NONE;
}

size_t crypto_curve_len(enum crypto_curve c)
{
    switch (c) {
    case CRYPTO_P256: return 32;
    case CRYPTO_P384: return 48;
    case CRYPTO_P521: return 66;
    }
    return 0;
}

/* Copies a big-endian integer right-aligned into a field of len bytes; leading zeros beyond
 * the field are tolerated (Go's big.Int and some TPMs strip or keep them). */
static int put_coordinate(uint8_t *field, size_t len, const uint8_t *v, size_t v_len)
{
    while (v_len > len && v[0] == 0)
        v++, v_len--;
    if (v_len > len)
        return -EINVAL;
    memset(field, 0, len - v_len);
    memcpy(field + len - v_len, v, v_len);
    return 0;
}

int crypto_ecdsa_verify(enum crypto_curve c, const uint8_t *x, size_t x_len, const uint8_t *y, size_t y_len,
                        const uint8_t *digest, size_t digest_len, const uint8_t *sig_r, size_t r_len,
                        const uint8_t *sig_s, size_t s_len)
{
    size_t clen = crypto_curve_len(c);
    uint8_t point[1 + 2 * 66];
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r, s;
    int ret = 0;

    if (clen == 0 || put_coordinate(point + 1, clen, x, x_len) < 0 ||
        put_coordinate(point + 1 + clen, clen, y, y_len) < 0)
        return -EINVAL;
    point[0] = 0x04; /* uncompressed (SEC 1 §2.3.3) */
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    if (mbedtls_ecp_group_load(&grp, curve_id(c)) != 0 ||
        mbedtls_ecp_point_read_binary(&grp, &q, point, 1 + 2 * clen) != 0 || mbedtls_ecp_check_pubkey(&grp, &q) != 0)
        ret = -EINVAL;
    else if (mbedtls_mpi_read_binary(&r, sig_r, r_len) != 0 || mbedtls_mpi_read_binary(&s, sig_s, s_len) != 0 ||
             mbedtls_ecdsa_verify(&grp, digest, digest_len, &q, &r, &s) != 0)
        ret = -EKEYREJECTED;
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return ret;
}

int crypto_rsa_pub_parse(const uint8_t *in, size_t len, struct rsa_pub *out)
{
    static const char pem_begin[] = "-----BEGIN ";
    _cleanup_free_ uint8_t *text = NULL;

    /* mbedTLS reads PEM only from a NUL-terminated buffer whose length counts the NUL. */
    if (len >= sizeof(pem_begin) - 1 && memcmp(in, pem_begin, sizeof(pem_begin) - 1) == 0) {
        if (memchr(in, 0, len))
            return -EINVAL;
        text = xmalloc(len + 1);
        memcpy(text, in, len);
        text[len] = 0;
        return crypto_spki_rsa_pub(text, len + 1, out);
    }
    return crypto_spki_rsa_pub(in, len, out);
}
