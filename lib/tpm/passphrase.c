/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The offline passphrase: RSA-OAEP-SHA256 ciphertext of a random passphrase in an NV index,
 * decryptable only by this TPM's key at c_index (docs/tpm.md §5). */
#include <string.h>
#include <sys/random.h>

#include "tpm_internal.h"

int tpm_random_passphrase(size_t n, struct secret **out)
{
    /* Upstream's RandomString alphabet (docs/tpm.md §5, docs/protocol-g1.md §6.1): 32 characters of [0-9a-z] are 165 bits.
     * Bytes from the kernel, rejection-sampled so every character is equally likely. */
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    struct secret *s = secret_new(n);
    uint8_t buf[64];

    while (s->len < n) {
        ssize_t got = getrandom(buf, sizeof(buf), 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            secret_free(s);
            return log_error_errno(r, "getrandom: %m");
        }
        for (ssize_t i = 0; i < got && s->len < n; i++)
            if (buf[i] < 252) /* 252 = 7 * 36 */
                s->data[s->len++] = (uint8_t)alphabet[buf[i] % 36];
    }
    secure_wipe(buf, sizeof(buf));
    *out = s;
    return 0;
}

int tpm_offline_passphrase(struct tpm *t, uint32_t nv_index, uint32_t c_index, bool create, struct secret **out)
{
    _cleanup_free_ uint8_t *blob = NULL;
    _cleanup_secret_ struct secret *pass = NULL;
    size_t blob_len = 0;
    int r;

    r = tpm_nv_read(t, nv_index, &blob, &blob_len);
    if (r == 0) {
        r = tpm_rsa_decrypt(t, c_index, blob, blob_len, out);
        if (r == 0 && (*out)->len == 0) {
            secret_free(*out);
            *out = NULL;
            return log_error_errno(-EBADMSG, "TPM %s: NV index 0x%x holds an empty passphrase", t->desc, nv_index);
        }
        return r;
    }
    if (r != -ENOENT)
        return r;
    if (!create)
        return log_error_errno(-ENOENT,
                               "TPM %s: no passphrase at NV index 0x%x (was this disk encrypted on "
                               "this node, with this nv_index?)",
                               t->desc, nv_index);

    /* Unlike upstream, c_index is honoured when encrypting too, so decrypting with it works. */
    r = tpm_rsa_key_ensure(t, c_index);
    if (r < 0)
        return r;
    r = tpm_random_passphrase(TPM_PASSPHRASE_LEN, &pass);
    if (r < 0)
        return r;
    r = tpm_rsa_encrypt(t, c_index, pass, &blob, &blob_len);
    if (r < 0)
        return r;
    r = tpm_nv_define_write(t, nv_index, blob, blob_len);
    if (r < 0)
        return r;
    log_info("TPM %s: stored a new passphrase at NV index 0x%x (encrypted with the key at 0x%x)", t->desc, nv_index,
             c_index);
    *out = TAKE_PTR(pass);
    return 0;
}
