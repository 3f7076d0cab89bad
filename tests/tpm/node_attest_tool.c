/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* A small command-line driver of lib/tpm's node attestation, for tests/tpm/test_node_attest.sh.
 * Everything it prints or writes is checked there by tpm2-tools and openssl. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"
#include "tpm.h"

static const char usage[] =
    "usage: node_attest_tool DEVICE ek-pem OUT.pem\n"
    "           writes the token's EK PEM; prints \"certificate\" or \"public-key\", then the\n"
    "           SHA-256 of the returned EK's SPKI\n"
    "       node_attest_tool DEVICE ak DIR [g1|noda]\n"
    "           creates an AK; writes DIR/ak.{public,create_data,attest,sig,name}\n"
    "       node_attest_tool DEVICE activate DIR g1|noda CMD [ARGS...]\n"
    "           creates an AK (files as above), runs CMD with the AK loaded, then activates\n"
    "           DIR/cred.blob (TPM2B_ID_OBJECT) and DIR/cred.secret (TPM2B_ENCRYPTED_SECRET)\n"
    "           into DIR/secret.out\n"
    "       node_attest_tool DEVICE quote DIR PCRS [NONCE-HEX]\n"
    "           creates an AK, quotes the SHA-256 PCRs PCRS (e.g. 0,7,11); writes the AK files,\n"
    "           DIR/quote.{attest,sig} and DIR/quote.pcrs (the values in ascending order)\n";

static int write_path(const char *path, const void *data, size_t len)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0 || fd_write_all(fd, data, len) < 0)
        return log_error_errno(-EIO, "%s: cannot write", path);
    return 0;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return write_path(path, data, len);
}

static int read_file(const char *dir, const char *name, uint8_t **data, size_t *len)
{
    char path[4096];
    int r;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    r = file_read_all(path, 1 << 16, (char **)data, len);
    if (r < 0)
        return log_error_errno(r, "%s: cannot read", path);
    return 0;
}

static int parse_kind(const char *s, enum tpm_ak_kind *kind)
{
    if (!s || strcmp(s, "g1") == 0)
        *kind = TPM_AK_G1;
    else if (strcmp(s, "noda") == 0)
        *kind = TPM_AK_G3_NODA;
    else
        return log_error_errno(-EINVAL, "AK kind %s: g1 or noda", s);
    return 0;
}

static int write_ak(const char *dir, const struct tpm_ak *ak)
{
    const struct ak_params *p = tpm_ak_params(ak);

    if (write_file(dir, "ak.public", p->public_area.data, p->public_area.len) < 0 ||
        write_file(dir, "ak.create_data", p->create_data.data, p->create_data.len) < 0 ||
        write_file(dir, "ak.attest", p->create_attestation.data, p->create_attestation.len) < 0 ||
        write_file(dir, "ak.sig", p->create_signature.data, p->create_signature.len) < 0 ||
        write_file(dir, "ak.name", tpm_ak_name(ak)->data, tpm_ak_name(ak)->len) < 0)
        return -EIO;
    return 0;
}

static int cmd_ek_pem(struct tpm *t, const char *out)
{
    _cleanup_free_ char *pem = NULL;
    _cleanup_free_ uint8_t *spki = NULL;
    struct rsa_pub ek;
    uint8_t digest[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    size_t spki_len;
    bool is_cert;

    if (tpm_ek_public_pem(t, &pem, &is_cert, &ek) < 0 || write_path(out, pem, strlen(pem)) < 0 ||
        crypto_rsa_spki_der(&ek, &spki, &spki_len) < 0)
        return -EIO;
    crypto_sha256(spki, spki_len, digest);
    hex_encode(digest, sizeof(digest), hex);
    printf("%s\n%s\n", is_cert ? "certificate" : "public-key", hex);
    return 0;
}

/* Runs argv and waits; the TPM connection is close-on-exec, so the child cannot touch it. */
static int run(char **argv)
{
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) < 0)
        return -errno;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return log_error_errno(-ECHILD, "%s failed", argv[0]);
    return 0;
}

static int cmd_activate(struct tpm *t, const char *dir, enum tpm_ak_kind kind, char **cmd)
{
    _cleanup_tpm_ak_ struct tpm_ak *ak = NULL;
    _cleanup_free_ uint8_t *blob = NULL, *seed = NULL;
    _cleanup_secret_ struct secret *secret = NULL;
    size_t blob_len, seed_len;

    if (tpm_ak_create(t, kind, &ak) < 0 || write_ak(dir, ak) < 0 || run(cmd) < 0 ||
        read_file(dir, "cred.blob", &blob, &blob_len) < 0 || read_file(dir, "cred.secret", &seed, &seed_len) < 0 ||
        tpm_activate_credential(t, ak, blob, blob_len, seed, seed_len, &secret) < 0)
        return -EIO;
    return write_file(dir, "secret.out", secret->data, secret->len);
}

static int parse_pcrs(const char *s, uint32_t *mask)
{
    _cleanup_free_ char *copy = xstrdup(s);
    char *save = NULL;

    *mask = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint32_t i;
        if (parse_u32(tok, TPM_PCR_COUNT - 1, &i) < 0)
            return log_error_errno(-EINVAL, "PCR %s: 0 to %d", tok, TPM_PCR_COUNT - 1);
        *mask |= 1u << i;
    }
    return 0;
}

static int cmd_quote(struct tpm *t, const char *dir, const char *pcrs, const char *nonce_hex)
{
    _cleanup_tpm_ak_ struct tpm_ak *ak = NULL;
    struct tpm_quote q;
    uint8_t nonce[TPM_QUOTE_NONCE_MAX], values[TPM_PCR_COUNT * SHA256_LEN];
    size_t nonce_len = 0, values_len = 0;
    uint32_t mask;
    int r;

    if (nonce_hex) {
        r = hex_decode(nonce_hex, strlen(nonce_hex), nonce, sizeof(nonce));
        if (r < 0)
            return log_error_errno(r, "nonce: hex of at most %d bytes", TPM_QUOTE_NONCE_MAX);
        nonce_len = (size_t)r;
    }
    if (parse_pcrs(pcrs, &mask) < 0 || tpm_ak_create(t, TPM_AK_G3_NODA, &ak) < 0 || write_ak(dir, ak) < 0 ||
        tpm_quote_pcrs(t, ak, mask, nonce, nonce_len, &q) < 0)
        return -EIO;
    for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
        if (q.pcr_mask & (1u << i)) {
            memcpy(values + values_len, q.pcr[i], SHA256_LEN);
            values_len += SHA256_LEN;
        }
    r = write_file(dir, "quote.attest", q.attest.data, q.attest.len);
    if (r == 0)
        r = write_file(dir, "quote.sig", q.signature.data, q.signature.len);
    if (r == 0)
        r = write_file(dir, "quote.pcrs", values, values_len);
    tpm_quote_clear(&q);
    return r;
}

int main(int argc, char **argv)
{
    _cleanup_tpm_ struct tpm *t = NULL;
    const char *verb = argc > 2 ? argv[2] : "";
    enum tpm_ak_kind kind;
    int r;

    log_set_program("node_attest_tool");
    if (argc < 4) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (tpm_open(argv[1], 60000, &t) < 0)
        return EXIT_RUNTIME;
    if (strcmp(verb, "ek-pem") == 0 && argc == 4) {
        r = cmd_ek_pem(t, argv[3]);
    } else if (strcmp(verb, "ak") == 0 && argc <= 5) {
        _cleanup_tpm_ak_ struct tpm_ak *ak = NULL;
        r = parse_kind(argc == 5 ? argv[4] : NULL, &kind);
        if (r == 0)
            r = tpm_ak_create(t, kind, &ak);
        if (r == 0)
            r = write_ak(argv[3], ak);
    } else if (strcmp(verb, "activate") == 0 && argc >= 6) {
        r = parse_kind(argv[4], &kind);
        if (r == 0)
            r = cmd_activate(t, argv[3], kind, argv + 5);
    } else if (strcmp(verb, "quote") == 0 && argc <= 6 && argc >= 5) {
        r = cmd_quote(t, argv[3], argv[4], argc == 6 ? argv[5] : NULL);
    } else {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}
