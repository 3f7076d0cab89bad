/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* g3_node_tool: the TPM half of a G3 node for tests/online/g3_node.py, which speaks the protocol
 * itself (with the independent codec g3_peer.py). One process keeps one transient AK, as an
 * upstream node does; commands on stdin, one per line, answers as key=HEX lines ended by ".":
 *   init [defer]               -> ek_public Public CreateData CreateAttestation CreateSignature
 *                                 defer_pcr_enrollment
 *   activate CRED_HEX SEC_HEX  -> secret
 *   quote PCRS NONCE_HEX|-     -> quote signature pcr.N...
 *   escrow                     -> encrypted_passphrase plain (a passphrase encrypted to 0x81000008)
 * A failure answers error=<text> (not hex). Usage: g3_node_tool DEVICE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "crypto.h"
#include "tpm.h"

static void put(const char *key, const uint8_t *p, size_t n)
{
    printf("%s=", key);
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

static uint8_t *unhex(const char *s, size_t *n)
{
    size_t l = strlen(s);
    uint8_t *o = xmalloc(l / 2 + 1);
    for (*n = 0; 2 * *n + 1 < l; (*n)++) {
        unsigned v;
        if (sscanf(s + 2 * *n, "%2x", &v) != 1)
            break;
        o[*n] = (uint8_t)v;
    }
    return o;
}

int main(int argc, char **argv)
{
    struct tpm *t = NULL;
    struct tpm_ak *ak = NULL;
    char line[8192];

    if (argc != 2) {
        fprintf(stderr, "usage: g3_node_tool DEVICE\n");
        return 2;
    }
    if (tpm_open(argv[1], 60000, &t) < 0 || tpm_ak_create(t, TPM_AK_G3_NODA, &ak) < 0)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof(line), stdin)) {
        char *save = NULL, *cmd = strtok_r(line, " \n", &save), *a1 = strtok_r(NULL, " \n", &save),
             *a2 = strtok_r(NULL, " \n", &save);
        if (!cmd)
            continue;
        if (!strcmp(cmd, "init")) {
            const struct ak_params *p = tpm_ak_params(ak);
            struct rsa_pub ek;
            uint8_t *spki = NULL;
            size_t spki_len = 0;
            if (tpm_ek_rsa_public(t, &ek, &(bool){false}) < 0 || crypto_rsa_spki_der(&ek, &spki, &spki_len) < 0) {
                printf("error=cannot read the EK\n.\n");
                continue;
            }
            put("ek_public", spki, spki_len);
            put("Public", p->public_area.data, p->public_area.len);
            put("CreateData", p->create_data.data, p->create_data.len);
            put("CreateAttestation", p->create_attestation.data, p->create_attestation.len);
            put("CreateSignature", p->create_signature.data, p->create_signature.len);
            printf("defer_pcr_enrollment=%s\n.\n", a1 && !strcmp(a1, "defer") ? "true" : "false");
            free(spki);
        } else if (!strcmp(cmd, "activate") && a1 && a2) {
            size_t cl, sl;
            uint8_t *c = unhex(a1, &cl), *s = unhex(a2, &sl);
            struct secret *out = NULL;
            if (tpm_activate_credential(t, ak, c, cl, s, sl, &out) < 0)
                printf("error=activation failed\n.\n");
            else {
                put("secret", out->data, out->len);
                printf(".\n");
            }
            secret_free(out);
            free(c);
            free(s);
        } else if (!strcmp(cmd, "quote") && a1 && a2) {
            uint32_t mask = 0;
            size_t nl = 0;
            uint8_t *nonce = strcmp(a2, "-") ? unhex(a2, &nl) : NULL;
            struct tpm_quote q = {0};
            char *tok, *s2 = NULL;
            for (tok = strtok_r(a1, ",", &s2); tok; tok = strtok_r(NULL, ",", &s2))
                mask |= 1u << (atoi(tok) & 31);
            if (tpm_quote_pcrs(t, ak, mask, nonce, nl, &q) < 0)
                printf("error=quote failed\n.\n");
            else {
                put("quote", q.attest.data, q.attest.len);
                put("signature", q.signature.data, q.signature.len);
                for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
                    if (q.pcr_mask & (1u << i)) {
                        char k[16];
                        snprintf(k, sizeof(k), "pcr.%u", i);
                        put(k, q.pcr[i], SHA256_LEN);
                    }
                printf(".\n");
            }
            tpm_quote_clear(&q);
            free(nonce);
        } else if (!strcmp(cmd, "escrow")) {
            struct secret *plain = NULL;
            uint8_t *blob = NULL;
            size_t bl = 0;
            if (tpm_rsa_key_ensure(t, TPM_DEFAULT_C_INDEX) < 0 ||
                tpm_random_passphrase(TPM_PASSPHRASE_LEN, &plain) < 0 ||
                tpm_rsa_encrypt(t, TPM_DEFAULT_C_INDEX, plain, &blob, &bl) < 0)
                printf("error=escrow failed\n.\n");
            else {
                put("encrypted_passphrase", blob, bl);
                put("plain", plain->data, plain->len);
                printf(".\n");
            }
            secret_free(plain);
            free(blob);
        } else {
            printf("error=unknown command %s\n.\n", cmd);
        }
    }
    tpm_ak_free(ak);
    tpm_close(t);
    return 0;
}
