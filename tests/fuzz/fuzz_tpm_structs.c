/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/attest: the bytes go to every TPM structure decoder whole, and, cut
 * into length-prefixed parts (u16be length, then that many bytes), to attest_check_ak_params
 * (Public, CreateData, CreateAttestation, CreateSignature), attest_verify_quote (AK Public, quote,
 * signature, PCR values, nonce) and attest_make_credential (Name). Seeds in
 * corpus/tpm_structs are real structures from swtpm, raw and framed. Refusals are logged, so run
 * it with -close_fd_mask=2 by hand (sanitizer reports still show):
 *   ./fuzz_tpm_structs -close_fd_mask=2 -max_total_time=60 tests/fuzz/corpus/tpm_structs */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "base.h"
#include "crypto.h"

#define MAX_PARTS 6

/* Splits data into up to MAX_PARTS parts; a length past the end takes what is left. */
static size_t split(const uint8_t *data, size_t size, struct bytes *parts)
{
    size_t n = 0;

    while (n < MAX_PARTS && size >= 2) {
        size_t len = (size_t)data[0] << 8 | data[1];
        data += 2, size -= 2;
        if (len > size)
            len = size;
        parts[n++] = bytes_view(data, len);
        data += len, size -= len;
    }
    return n;
}

/* Copies a part into a buffer of exactly its size, so ASan sees any over-read. */
static uint8_t *exact(struct bytes b)
{
    uint8_t *p = malloc(b.len ? b.len : 1);
    if (p && b.len)
        memcpy(p, b.data, b.len);
    return p;
}

static void decoders(const uint8_t *data, size_t size)
{
    struct attest_public pub;
    struct attest_creation_data cd;
    struct attest_attestation att;
    struct attest_signature sig;
    struct attest_pcr_selection sel;
    uint8_t name[ATTEST_NAME_MAX];
    size_t name_len;
    struct rsa_pub key;

    if (attest_decode_public(data, size, &pub) == 0) {
        if (pub.type == ATTEST_ALG_RSA && pub.rsa_n.len > sizeof(key.n))
            abort(); /* the decoder bounds the modulus */
        (void)attest_public_rsa(&pub, &key);
    }
    if (attest_public_name(data, size, name, &name_len) == 0 && (name_len < 2 + 20 || name_len > ATTEST_NAME_MAX))
        abort();
    (void)attest_decode_creation_data(data, size, &cd);
    if (attest_decode_attestation(data, size, &att) == 0 && att.pcr_select.count > ATTEST_PCR_BANKS_MAX)
        abort();
    (void)attest_decode_signature(data, size, &sig);
    if (attest_decode_pcr_selection(data, size, &sel) == 0) {
        for (uint32_t i = 0; i < sel.count; i++)
            if (sel.bank[i].size > ATTEST_PCR_SELECT_MAX)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bytes parts[MAX_PARTS] = {{0}}, own[MAX_PARTS] = {{0}};
    uint8_t *copy = exact(bytes_view(data, size)), *buf[MAX_PARTS] = {0};
    size_t n;

    if (!copy)
        return 0;
    decoders(copy, size);
    free(copy);

    n = split(data, size, parts);
    for (size_t i = 0; i < n; i++) {
        buf[i] = exact(parts[i]);
        own[i] = (struct bytes){buf[i], parts[i].len};
    }
    if (n >= 4) {
        struct ak_params p = {own[0], own[1], own[2], own[3], false};
        uint8_t name[ATTEST_NAME_MAX];
        size_t name_len = 0;
        char why[ATTEST_WHY_MAX];
        if (attest_check_ak_params(&p, ATTEST_AK_ALLOW_ECC, name, &name_len, why) == 0 &&
            (name_len < 22 || name_len > ATTEST_NAME_MAX))
            abort();
        (void)attest_check_ak_params(&p, 0, NULL, NULL, NULL);

        /* The same parts as a quote: PCR values are 32-byte slices of part 3, for PCRs 0, 7, 11
         * (G3's set, so the seeds verify all the way), then 1, 2, ... */
        static const uint32_t index[8] = {0, 7, 11, 1, 2, 3, 4, 5};
        struct attest_pcr_value pcrs[8];
        size_t n_pcrs = 0;
        for (size_t off = 0; n_pcrs < 8 && off + 32 <= own[3].len; off += 32, n_pcrs++)
            pcrs[n_pcrs] = (struct attest_pcr_value){index[n_pcrs], {own[3].data + off, 32}};
        (void)attest_verify_quote(own[0], own[1], own[2], pcrs, n_pcrs, n >= 5 ? &own[4] : NULL, why);
    }
    if (n >= 1) {
        /* A credential for a fuzzed Name (errors before any RSA work are the interesting part). */
        static const struct rsa_pub ek = {.n = {[0] = 0xc5, [255] = 0x01}, .n_len = 256, .e = 65537};
        static const uint8_t secret[ATTEST_SECRET_LEN], seed[ATTEST_SEED_LEN], oaep_seed[CRYPTO_HASH_MAX];
        struct attest_credential cred;
        int r =
            attest_make_credential_seeded(&ek, own[0].data, own[0].len, secret, sizeof(secret), seed, oaep_seed, &cred);
        if (r == 0 && (cred.id_object_len > sizeof(cred.id_object) || cred.encrypted_secret_len != 258))
            abort();
    }
    for (size_t i = 0; i < n; i++)
        free(buf[i]);
    return 0;
}
