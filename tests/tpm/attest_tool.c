/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* attest_tool: drives lib/attest from tests/tpm/test_credential.sh, which gets the TPM side from
 * swtpm and tpm2-tools. Binary inputs are files; exit 0 on success, 1 on a refusal or error (one
 * line on stderr), 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "base.h"
#include "crypto.h"

static const char usage[] =
    "usage: attest_tool check PUBLIC CREATE_DATA CREATE_ATTESTATION CREATE_SIGNATURE [--allow-ecc]\n"
    "           prints the AK Name (hex) when the parameters pass attest_check_ak_params\n"
    "       attest_tool name PUBLIC\n"
    "           prints the Name (hex) of a TPMT_PUBLIC\n"
    "       attest_tool make-credential EK_PEM NAME_HEX SECRET_FILE OUT\n"
    "           writes attest_make_credential's blobs in tpm2_makecredential's file format\n"
    "       attest_tool parse-credential FILE\n"
    "           checks a tpm2-tools credential file and prints the sizes of its two TPM2Bs\n"
    "       attest_tool verify-quote AK_PUBLIC QUOTE SIGNATURE PCR_VALUES INDICES [NONCE_FILE]\n"
    "           PCR_VALUES: 32-byte values concatenated in the order of INDICES (\"0,7,11\")\n";

/* tpm2-tools' credential file: magic, version, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
static const uint8_t cred_header[8] = {0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1};

/* Every file read, freed at exit (so LeakSanitizer stays quiet in the ASan build). */
static char *owned[8];
static size_t n_owned;

static void free_owned(void)
{
    while (n_owned)
        free(owned[--n_owned]);
}

static struct bytes slurp(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    int r = n_owned == sizeof(owned) / sizeof(owned[0]) ? -EMFILE : file_read_all(path, 1 << 20, &data, &len);
    if (r < 0) {
        log_error_errno(r, "%s: %m", path);
        exit(EXIT_RUNTIME);
    }
    owned[n_owned++] = data;
    return (struct bytes){(uint8_t *)data, len};
}

static int cmd_check(int argc, char **argv)
{
    struct ak_params p;
    uint8_t name[ATTEST_NAME_MAX];
    char hex[2 * ATTEST_NAME_MAX + 1];
    size_t name_len;
    unsigned flags = 0;

    if (argc == 6 && !strcmp(argv[5], "--allow-ecc"))
        flags = ATTEST_AK_ALLOW_ECC;
    else if (argc != 5)
        return fputs(usage, stderr), EXIT_USAGE;
    p = (struct ak_params){slurp(argv[1]), slurp(argv[2]), slurp(argv[3]), slurp(argv[4]), false};
    if (attest_check_ak_params(&p, flags, name, &name_len, NULL) < 0)
        return EXIT_RUNTIME;
    hex_encode(name, name_len, hex);
    puts(hex);
    return EXIT_OK;
}

static int cmd_name(int argc, char **argv)
{
    struct bytes pub;
    uint8_t name[ATTEST_NAME_MAX];
    char hex[2 * ATTEST_NAME_MAX + 1];
    size_t name_len;
    int r;

    if (argc != 2)
        return fputs(usage, stderr), EXIT_USAGE;
    pub = slurp(argv[1]);
    r = attest_public_name(pub.data, pub.len, name, &name_len);
    if (r < 0)
        return log_error_errno(r, "%s: not a TPMT_PUBLIC with a known nameAlg", argv[1]), EXIT_RUNTIME;
    hex_encode(name, name_len, hex);
    puts(hex);
    return EXIT_OK;
}

static int cmd_make_credential(int argc, char **argv)
{
    struct bytes pem, secret;
    struct attest_credential cred;
    struct rsa_pub ek;
    uint8_t name[ATTEST_NAME_MAX];
    int name_len;
    FILE *f;

    if (argc != 5)
        return fputs(usage, stderr), EXIT_USAGE;
    pem = slurp(argv[1]);
    secret = slurp(argv[3]);
    name_len = hex_decode(argv[2], strlen(argv[2]), name, sizeof(name));
    if (name_len < 0)
        return log_error_errno(-EINVAL, "%s: not a hex Name", argv[2]), EXIT_USAGE;
    if (crypto_rsa_pub_parse(pem.data, pem.len, &ek) < 0)
        return log_error_errno(-EINVAL, "%s: not an RSA public key", argv[1]), EXIT_RUNTIME;
    if (attest_make_credential(&ek, name, (size_t)name_len, secret.data, secret.len, &cred) < 0)
        return EXIT_RUNTIME;
    f = fopen(argv[4], "wb");
    if (!f || fwrite(cred_header, 1, sizeof(cred_header), f) != sizeof(cred_header) ||
        fwrite(cred.id_object, 1, cred.id_object_len, f) != cred.id_object_len ||
        fwrite(cred.encrypted_secret, 1, cred.encrypted_secret_len, f) != cred.encrypted_secret_len || fclose(f) != 0)
        return log_error_errno(-EIO, "%s: cannot write", argv[4]), EXIT_RUNTIME;
    return EXIT_OK;
}

static size_t u16be(const uint8_t *p) { return (size_t)p[0] << 8 | p[1]; }

/* The layout lib/attest produces (docs/protocol-g1.md §7): TPM2B_ID_OBJECT = size || TPM2B_DIGEST
 * integrityHMAC || encIdentity (2 + secret bytes); TPM2B_ENCRYPTED_SECRET = size || RSA block. */
static int cmd_parse_credential(int argc, char **argv)
{
    struct bytes b;
    size_t id, hmac, enc;

    if (argc != 2)
        return fputs(usage, stderr), EXIT_USAGE;
    b = slurp(argv[1]);
    if (b.len < 12 || memcmp(b.data, cred_header, sizeof(cred_header)) != 0)
        return log_error_errno(-EBADMSG, "%s: no tpm2-tools credential header", argv[1]), EXIT_RUNTIME;
    b.data += 8, b.len -= 8;
    id = u16be(b.data);
    if (2 + id + 2 > b.len || id < 2)
        return log_error_errno(-EBADMSG, "%s: TPM2B_ID_OBJECT of %zu bytes overruns the file", argv[1], id),
               EXIT_RUNTIME;
    hmac = u16be(b.data + 2);
    /* encIdentity is the encrypted TPM2B_DIGEST of the secret: at least its 2-byte size. */
    if (2 + hmac > id || id - 2 - hmac < 2)
        return log_error_errno(-EBADMSG, "%s: TPM2B_ID_OBJECT inner sizes disagree", argv[1]), EXIT_RUNTIME;
    enc = u16be(b.data + 2 + id);
    if (2 + id + 2 + enc != b.len)
        return log_error_errno(-EBADMSG, "%s: TPM2B_ENCRYPTED_SECRET of %zu bytes does not end the file", argv[1], enc),
               EXIT_RUNTIME;
    printf("id_object=%zu integrity_hmac=%zu enc_identity=%zu encrypted_secret=%zu\n", 2 + id, hmac, id - 2 - hmac,
           2 + enc);
    return EXIT_OK;
}

static int cmd_verify_quote(int argc, char **argv)
{
    struct attest_pcr_value pcrs[32];
    struct bytes values, nonce;
    size_t n = 0;
    char *save = NULL;

    if (argc != 6 && argc != 7)
        return fputs(usage, stderr), EXIT_USAGE;
    values = slurp(argv[4]);
    for (char *t = strtok_r(argv[5], ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == 32 || (n + 1) * 32 > values.len)
            return log_error_errno(-EINVAL, "more PCR indices than values"), EXIT_USAGE;
        pcrs[n] = (struct attest_pcr_value){(uint32_t)strtoul(t, NULL, 10), {values.data + 32 * n, 32}};
        n++;
    }
    if (argc == 7)
        nonce = slurp(argv[6]);
    if (attest_verify_quote(slurp(argv[1]), slurp(argv[2]), slurp(argv[3]), pcrs, n, argc == 7 ? &nonce : NULL, NULL) <
        0)
        return EXIT_RUNTIME;
    puts("quote verified");
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    log_set_program("attest_tool");
    atexit(free_owned);
    if (argc < 2)
        return fputs(usage, stderr), EXIT_USAGE;
    if (!strcmp(argv[1], "check"))
        return cmd_check(argc - 1, argv + 1);
    if (!strcmp(argv[1], "name"))
        return cmd_name(argc - 1, argv + 1);
    if (!strcmp(argv[1], "make-credential"))
        return cmd_make_credential(argc - 1, argv + 1);
    if (!strcmp(argv[1], "parse-credential"))
        return cmd_parse_credential(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify-quote"))
        return cmd_verify_quote(argc - 1, argv + 1);
    return fputs(usage, stderr), EXIT_USAGE;
}
