/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kcrypt enroll | unlock | reseal: the measured-boot local mode. A volume's key is sealed by the
 * TPM to PCR values in a systemd-tpm2 LUKS2 token, which systemd-cryptenroll/systemd-cryptsetup
 * (Debian 12, v252) read and write too; a systemd recovery key opens it when the PCRs changed
 * (README.md "Measured boot"). */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "kcrypt.h"
#include "tpm.h"

#define PIN_MAX 256
#define KEY_FILE_MAX 8192

/* ---- secrets from files and the terminal ---- */

/* A key file as cryptsetup --key-file reads it: every byte. For PIN files one trailing newline is
 * dropped, so `echo 1234 > f` works. */
static int read_secret_file(const char *flag, const char *path, bool strip_newline, struct secret **out)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = file_read_all(path, KEY_FILE_MAX, &buf, &len);

    if (r < 0)
        return log_error_errno(r, "%s %s: cannot read: %m", flag, path);
    if (strip_newline && len && buf[len - 1] == '\n')
        len--;
    *out = secret_take(TAKE_PTR(buf), len); /* the newline, if any, becomes its NUL */
    if (len == 0) {
        secret_free(*out);
        *out = NULL;
        return log_error_errno(-EINVAL, "%s %s: empty", flag, path);
    }
    return 0;
}

/* Asks on the controlling terminal (with console: else on /dev/console, as at boot) without echo;
 * at most timeout_ms (0: no limit). -ETIMEDOUT, -ENOTTY when there is no terminal, -ENODATA for
 * an empty answer. */
int kcrypt_ask_secret(const char *prompt, bool console, int64_t timeout_ms, struct secret **out)
{
    _cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    struct termios old, quiet;
    struct secret *s;
    bool restore = false;
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    int r = 0;

    if (fd < 0 && console)
        fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || !isatty(fd))
        return -ENOTTY;
    if (tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
    }
    (void)fd_write_all(fd, prompt, strlen(prompt));
    s = secret_new(PIN_MAX);
    for (;;) {
        char c;
        ssize_t n;

        r = fd_wait(fd, POLLIN, deadline);
        if (r < 0)
            break;
        n = read(fd, &c, 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0 || c == '\n' || c == '\r') {
            if (n < 0)
                r = -errno;
            break;
        }
        if (s->len < PIN_MAX)
            s->data[s->len++] = (uint8_t)c;
    }
    if (restore)
        (void)tcsetattr(fd, TCSAFLUSH, &old);
    (void)fd_write_all(fd, "\n", 1);
    if (r == 0 && s->len == 0)
        r = -ENODATA;
    if (r < 0) {
        secret_free(s);
        return r;
    }
    s->data[s->len] = '\0';
    *out = s;
    return 0;
}

/* False when the kernel command line says rd.kcrypt.prompt=0 (no console prompt at boot). */
bool kcrypt_prompt_enabled(const struct kcrypt_ctx *k)
{
    _cleanup_free_ char *path = NULL, *cmdline = NULL;
    size_t len = 0;

    path = xmalloc(strlen(k->root ? k->root : "") + sizeof("/proc/cmdline"));
    sprintf(path, "%s/proc/cmdline", k->root ? k->root : "");
    if (file_read_all(path, 65536, &cmdline, &len) < 0)
        return true;
    for (char *p = cmdline; (p = strstr(p, "rd.kcrypt.prompt=")); p++)
        if ((p == cmdline || p[-1] == ' ') &&
            (p[17] == '0' || !strncmp(p + 17, "no", 2) || !strncmp(p + 17, "false", 5)))
            return false;
    return true;
}

/* ---- options shared by the three verbs ---- */

struct mboot_opts {
    bool console; /* ask for a PIN on /dev/console when there is no terminal (boot) */
    const char *device;
    const char *name;
    const char *pin_file, *unlock_key_file, *recovery_key_file;
    uint32_t pcr_mask;
    bool pcrs_given, tpm2, pin, recovery, test, all;
    int64_t prompt_timeout_ms;
    struct applet_tpm_opts tpm; /* parsed here, then kept in the kcrypt_ctx */
    const char *root;
};

static int open_tpm(const struct kcrypt_ctx *k, struct tpm **tpm)
{
    const char *dev = k->tpm.device ? k->tpm.device : (k->cfg.tpm_device[0] ? k->cfg.tpm_device : NULL);
    return tpm_open(dev, k->tpm.timeout_ms, tpm);
}

static int get_pin(const struct mboot_opts *o, bool confirm, struct secret **pin)
{
    _cleanup_secret_ struct secret *again = NULL;
    int r;

    if (o->pin_file)
        return read_secret_file("--tpm-pin-file", o->pin_file, true, pin);
    r = kcrypt_ask_secret("TPM2 PIN: ", o->console, o->console ? KCRYPT_PROMPT_TIMEOUT_MS : 0, pin);
    if (r == -ENOTTY)
        return log_error_errno(r, "a PIN is needed: no terminal to ask on (use --tpm-pin-file)");
    if (r < 0)
        return log_error_errno(r, "no PIN read");
    if (!confirm)
        return 0;
    r = kcrypt_ask_secret("TPM2 PIN (again): ", false, 0, &again);
    if (r < 0 || again->len != (*pin)->len || !secure_equal(again->data, (*pin)->data, again->len)) {
        secret_free(*pin);
        *pin = NULL;
        return log_error_errno(-EINVAL, "the PINs differ");
    }
    return 0;
}

/* The keyslot passphrase of a sealed key: standard base64 of the 32 bytes (systemd v252
 * src/cryptenroll/cryptenroll-tpm2.c, "for compat with homed"). */
static struct secret *sealed_passphrase(const struct secret *key)
{
    return base64_encode_secret(key->data, key->len, BASE64_STD);
}

static void token_from_sealed(struct luks_tpm2_token *tok, struct tpm_sealed *s, int slot)
{
    luks_tpm2_token_clear(tok);
    tok->keyslot = slot;
    tok->blob = TAKE_PTR(s->blob);
    tok->blob_len = s->blob_len;
    tok->pcr_mask = s->pcr_mask;
    tok->primary_rsa = s->primary == TPM_PRIMARY_RSA;
    tok->pin = s->pin;
    memcpy(tok->policy, s->policy, sizeof(tok->policy));
}

static void sealed_from_token(struct tpm_sealed *s, const struct luks_tpm2_token *tok)
{
    memset(s, 0, sizeof(*s));
    s->blob = tok->blob; /* borrowed: never tpm_sealed_clear this one */
    s->blob_len = tok->blob_len;
    s->pcr_mask = tok->pcr_mask;
    s->primary = tok->primary_rsa ? TPM_PRIMARY_RSA : TPM_PRIMARY_ECC;
    s->srk = tok->srk;
    s->pin = tok->pin;
    memcpy(s->salt, tok->salt, tok->salt_len);
    s->salt_len = tok->salt_len;
    memcpy(s->policy, tok->policy, sizeof(s->policy));
}

/* Seals a new key to mask (and pin), adds its keyslot with unlock and its token. On failure
 * nothing is left behind. */
static int enroll_tpm2(struct tpm *tpm, const char *device, const struct secret *unlock, uint32_t mask,
                       const struct secret *pin, int *token_out, int *slot_out)
{
    _cleanup_secret_ struct secret *key = NULL, *pass = NULL;
    _cleanup_free_ char *json = NULL;
    struct tpm_sealed sealed;
    struct luks_tpm2_token tok = {0};
    int r, slot = -1, token = -1;

    r = tpm_seal(tpm, mask, pin, &sealed, &key);
    if (r < 0)
        return r;
    pass = sealed_passphrase(key);
    r = luks_add_keyslot(device, unlock, pass, &slot);
    if (r < 0) {
        tpm_sealed_clear(&sealed);
        return r;
    }
    luks_tpm2_token_clear(&tok);
    token_from_sealed(&tok, &sealed, slot);
    tpm_sealed_clear(&sealed);
    r = luks_tpm2_token_format(&tok, &json);
    luks_tpm2_token_clear(&tok);
    if (r == 0)
        r = luks_token_add(device, json, &token);
    if (r < 0) {
        (void)luks_token_remove(device, -1, slot);
        return log_error_errno(r, "%s: the TPM2 token was not stored; keyslot %d removed again", device, slot);
    }
    *token_out = token;
    *slot_out = slot;
    return 0;
}

static int enroll_recovery(const char *device, const struct secret *unlock, int out_fd)
{
    _cleanup_secret_ struct secret *key = NULL;
    _cleanup_free_ char *json = NULL;
    int r, slot, token;

    r = luks_recovery_key_new(&key);
    if (r < 0)
        return r;
    r = luks_add_keyslot(device, unlock, key, &slot);
    if (r < 0)
        return r;
    json = luks_recovery_token_json(slot);
    r = luks_token_add(device, json, &token);
    if (r < 0) {
        (void)luks_token_remove(device, -1, slot);
        return r;
    }
    /* As systemd-cryptenroll --recovery-key: words on stderr, the key alone on stdout. */
    fprintf(stderr, "A secret recovery key has been generated for this volume:\n\n    ");
    fflush(stderr);
    if (fd_write_all(out_fd, key->data, key->len) < 0 || fd_write_all(out_fd, "\n", 1) < 0) {
        (void)luks_token_remove(device, token, slot);
        return log_error_errno(-EIO, "%s: cannot print the recovery key; it was removed again", device);
    }
    fprintf(stderr,
            "\nPlease save this secret recovery key at a secure location. It may be used to regain access "
            "to the volume if the other configured access credentials have been lost or forgotten. The "
            "recovery key may be entered in place of a password whenever authentication is requested.\n"
            "New recovery key enrolled as key slot %d.\n",
            slot);
    return 0;
}

/* The key that opens the volume now, to add keyslots with: --unlock-key-file, else asked. */
static int get_unlock_key(const struct mboot_opts *o, struct secret **out)
{
    char prompt[300];
    int r;

    if (o->unlock_key_file)
        return read_secret_file("--unlock-key-file", o->unlock_key_file, false, out);
    snprintf(prompt, sizeof(prompt), "Passphrase or recovery key for %s: ", o->device);
    r = kcrypt_ask_secret(prompt, false, 0, out);
    if (r == -ENOTTY)
        return log_error_errno(r, "%s: no terminal to ask for the current passphrase (use --unlock-key-file)",
                               o->device);
    if (r < 0)
        return log_error_errno(r, "%s: no passphrase read", o->device);
    return 0;
}

static int cmd_enroll(const struct kcrypt_ctx *k, const struct mboot_opts *o)
{
    _cleanup_secret_ struct secret *unlock = NULL, *pin = NULL;
    _cleanup_tpm_ struct tpm *tpm = NULL;
    char pcrs[80];
    int r, token, slot;

    if (!o->tpm2 && !o->recovery) {
        log_error("enroll: say what to add: --tpm2 and/or --recovery-key (see --help)");
        return EXIT_USAGE;
    }
    if (get_unlock_key(o, &unlock) < 0)
        return EXIT_RUNTIME;
    if (luks_check_passphrase(o->device, unlock, NULL) < 0)
        return EXIT_RUNTIME;
    if (o->tpm2) {
        if (o->pin && get_pin(o, true, &pin) < 0)
            return EXIT_RUNTIME;
        if (open_tpm(k, &tpm) < 0)
            return EXIT_RUNTIME;
        r = enroll_tpm2(tpm, o->device, unlock, o->pcr_mask, pin, &token, &slot);
        if (r < 0)
            return EXIT_RUNTIME;
        log_info("%s: new TPM2 token %d enrolled as key slot %d, sealed to PCRs %s%s", o->device, token, slot,
                 tpm_pcr_mask_str(o->pcr_mask, pcrs, sizeof(pcrs)), pin ? " and a PIN" : "");
    }
    if (o->recovery && enroll_recovery(o->device, unlock, STDOUT_FILENO) < 0)
        return EXIT_RUNTIME;
    return EXIT_OK;
}

/* Tries the systemd-tpm2 tokens of device in order. 0: *key opens keyslot *slot (and *used is
 * a copy of the token, if not NULL). -ENOENT: the volume has no usable token. Else why the last
 * token failed (logged). */
int kcrypt_tpm2_key(const struct kcrypt_ctx *k, const char *device, const char *pin_file, bool console,
                    struct secret **key, struct luks_tpm2_token *used)
{
    struct luks_tpm2_token *toks = NULL;
    _cleanup_tpm_ struct tpm *tpm = NULL;
    _cleanup_secret_ struct secret *pin = NULL;
    size_t n = 0;
    int r = luks_tpm2_tokens(device, &toks, &n);

    if (r < 0)
        return r;
    if (n == 0) {
        luks_tpm2_tokens_free(toks, n);
        return -ENOENT;
    }
    r = open_tpm(k, &tpm);
    if (r < 0) {
        luks_tpm2_tokens_free(toks, n);
        return r;
    }
    r = -EIO;
    for (size_t i = 0; i < n; i++) {
        _cleanup_secret_ struct secret *raw = NULL, *pass = NULL;
        struct tpm_sealed s;
        struct mboot_opts po = {.pin_file = pin_file, .console = console};
        int e;

        if (toks[i].pin && !pin && get_pin(&po, false, &pin) < 0) {
            r = -ENOKEY;
            continue;
        }
        sealed_from_token(&s, &toks[i]);
        e = tpm_unseal(tpm, &s, toks[i].pin ? pin : NULL, &raw);
        secure_wipe(&s, sizeof(s));
        if (e < 0) {
            r = e;
            continue;
        }
        pass = sealed_passphrase(raw);
        if (luks_check_passphrase_slot(device, toks[i].keyslot, pass) < 0) { /* said which keyslot */
            r = -EBADMSG;
            continue;
        }
        log_debug("%s: token %d (keyslot %d) unsealed", device, toks[i].token, toks[i].keyslot);
        *key = TAKE_PTR(pass);
        if (used) {
            *used = toks[i];
            toks[i].blob = NULL;
        }
        r = 0;
        break;
    }
    luks_tpm2_tokens_free(toks, n);
    return r;
}

/* The console prompt when the TPM refuses: at most three tries, each limited in time; the key is
 * never echoed. 0 and *key, or an error. */
int kcrypt_prompt_key(const char *device, const char *label, bool console, int64_t timeout_ms, struct secret **key)
{
    for (int attempt = 1; attempt <= 3; attempt++) {
        _cleanup_secret_ struct secret *s = NULL;
        char prompt[300];
        int r;

        snprintf(prompt, sizeof(prompt),
                 "Recovery key or passphrase for %s (%s), try %d of 3: ", label && label[0] ? label : "-", device,
                 attempt);
        r = kcrypt_ask_secret(prompt, console, timeout_ms, &s);
        if (r == -ENOTTY)
            return log_error_errno(r, "%s: no console to ask for the recovery key on", device);
        if (r == -ETIMEDOUT)
            return log_error_errno(r, "%s: no recovery key typed within %lld s", device,
                                   (long long)(timeout_ms / 1000));
        if (r == -ENODATA)
            continue;
        if (r < 0)
            return log_error_errno(r, "%s: cannot read the recovery key: %m", device);
        r = luks_check_passphrase(device, s, NULL);
        if (r == 0) {
            *key = TAKE_PTR(s);
            return 0;
        }
        if (s->len >= 60 && s->len <= 80 && !luks_recovery_key_valid(s->data, s->len))
            log_error("%s: that is not a recovery key as printed (64 letters of cbdefghijklnrtuv in dashed groups "
                      "of 8); check for a typo",
                      device);
    }
    return log_error_errno(-EPERM, "%s: three wrong recovery keys or passphrases", device);
}

static int cmd_unlock(const struct kcrypt_ctx *k, const struct mboot_opts *o)
{
    _cleanup_secret_ struct secret *key = NULL;
    struct luks_tpm2_token used = {0};
    const char *name = o->name;
    char pcrs[80];
    int r;

    luks_tpm2_token_clear(&used);
    if (!name) {
        name = strrchr(o->device, '/');
        name = name ? name + 1 : o->device;
    }
    if (luks_token_count(o->device, "systemd-tpm2") < 0)
        return EXIT_RUNTIME;
    r = kcrypt_tpm2_key(k, o->device, o->pin_file, false, &key, &used);
    if (r == -ENOENT && luks_token_count(o->device, "systemd-tpm2") == 0)
        log_error("%s: no systemd-tpm2 token", o->device);
    if (o->test) {
        if (r < 0)
            return EXIT_RUNTIME;
        printf("%s: TPM2 token %d unsealed (PCRs %s); its key opens keyslot %d\n", o->device, used.token,
               tpm_pcr_mask_str(used.pcr_mask, pcrs, sizeof(pcrs)), used.keyslot);
        luks_tpm2_token_clear(&used);
        return EXIT_OK;
    }
    if (r < 0 &&
        (!kcrypt_prompt_enabled(k) || kcrypt_prompt_key(o->device, NULL, false, o->prompt_timeout_ms, &key) < 0)) {
        luks_tpm2_token_clear(&used);
        return EXIT_RUNTIME;
    }
    r = luks_open_slot(o->device, name, r == 0 ? used.keyslot : -1, key);
    if (r >= 0 && used.blob)
        kcrypt_measured_after_unlock(k, o->device, &used);
    luks_tpm2_token_clear(&used);
    if (r < 0)
        return EXIT_RUNTIME;
    printf("%s: unlocked as /dev/mapper/%s\n", o->device, name);
    return EXIT_OK;
}

/* Seals the key again to the current PCR values: new keyslot and token first, then the old
 * systemd-tpm2 tokens and their keyslots are removed, so a power loss leaves one that works. */
int kcrypt_reseal_device(const struct kcrypt_ctx *k, const char *device, const char *pin_file,
                         const char *unlock_key_file, bool pcrs_given, uint32_t mask, int64_t prompt_timeout_ms)
{
    _cleanup_secret_ struct secret *key = NULL, *pin = NULL;
    _cleanup_tpm_ struct tpm *tpm = NULL;
    struct luks_tpm2_token used = {0}, *old = NULL;
    size_t n_old = 0;
    bool had_pin = false;
    int r, token, slot, removed = 0;
    char pcrs[80];

    luks_tpm2_token_clear(&used);
    r = kcrypt_tpm2_key(k, device, pin_file, false, &key, &used);
    if (r == 0) {
        had_pin = used.pin;
        if (!pcrs_given)
            mask = used.pcr_mask;
    } else if (unlock_key_file) {
        if (read_secret_file("--unlock-key-file", unlock_key_file, false, &key) < 0)
            return -EINVAL;
        if (luks_check_passphrase(device, key, NULL) < 0)
            return -EPERM;
        log_info("%s: opened with the key file instead", device);
    } else {
        r = kcrypt_prompt_key(device, NULL, false, prompt_timeout_ms, &key);
        if (r < 0)
            return r;
    }
    if (r != 0 && !pcrs_given) {
        /* the old tokens say what they were sealed to */
        r = luks_tpm2_tokens(device, &old, &n_old);
        if (r == 0 && n_old) {
            mask = old[0].pcr_mask;
            had_pin = old[0].pin;
        }
        luks_tpm2_tokens_free(old, n_old);
        old = NULL;
    }
    luks_tpm2_token_clear(&used);
    if (had_pin) {
        struct mboot_opts po = {.pin_file = pin_file};
        if (get_pin(&po, false, &pin) < 0)
            return -ENOKEY;
    }
    r = open_tpm(k, &tpm);
    if (r < 0)
        return r;
    r = luks_tpm2_tokens(device, &old, &n_old);
    if (r < 0)
        return r;
    r = enroll_tpm2(tpm, device, key, mask, pin, &token, &slot);
    if (r < 0) {
        luks_tpm2_tokens_free(old, n_old);
        return r;
    }
    for (size_t i = 0; i < n_old; i++) {
        if (old[i].keyslot == slot)
            continue;
        if (luks_token_remove(device, old[i].token, old[i].keyslot) == 0)
            removed++;
    }
    luks_tpm2_tokens_free(old, n_old);
    printf("%s: sealed to PCRs %s%s: TPM2 token %d, keyslot %d (%d old token%s removed)\n", device,
           tpm_pcr_mask_str(mask, pcrs, sizeof(pcrs)), pin ? " and the PIN" : "", token, slot, removed,
           removed == 1 ? "" : "s");
    fflush(stdout);
    return 0;
}

static int cmd_reseal(const struct kcrypt_ctx *k, const struct mboot_opts *o)
{
    struct luks_part *parts = NULL;
    size_t n = 0, done = 0;
    int failed = 0;

    if (!o->all)
        return kcrypt_reseal_device(k, o->device, o->pin_file, o->unlock_key_file, o->pcrs_given, o->pcr_mask,
                                    o->prompt_timeout_ms) < 0
                   ? EXIT_RUNTIME
                   : EXIT_OK;
    if (luks_scan(k->root, &parts, &n) < 0)
        return EXIT_RUNTIME;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(parts[i].fs, "crypto_LUKS") || !luks_has_token(parts[i].device, "systemd-tpm2"))
            continue;
        done++;
        if (kcrypt_reseal_device(k, parts[i].device, o->pin_file, o->unlock_key_file, o->pcrs_given, o->pcr_mask,
                                 o->prompt_timeout_ms) < 0)
            failed++;
    }
    luks_parts_free(parts, n);
    if (!done)
        printf("no LUKS partitions with a systemd-tpm2 token\n");
    return failed ? EXIT_RUNTIME : EXIT_OK;
}

static int opt_pcrs(void *target, const char *flag, const char *value)
{
    struct mboot_opts *o = target;
    o->pcrs_given = true;
    return kcrypt_parse_pcrs(flag, value, &o->pcr_mask);
}

static int opt_pin_file(void *target, const char *flag, const char *value)
{
    struct mboot_opts *o = target;
    (void)flag;
    o->pin_file = value;
    o->pin = true;
    return 0;
}

#define O(field) offsetof(struct mboot_opts, field)
static const struct applet_opt options[] = {
    {.name = "tpm2", .type = APPLET_FLAG, .off = O(tpm2)},
    {.name = "tpm-pcrs", .type = APPLET_CALL, .call = opt_pcrs},
    {.name = "tpm-pin", .type = APPLET_FLAG, .off = O(pin)},
    {.name = "tpm-pin-file", .type = APPLET_CALL, .call = opt_pin_file},
    {.name = "recovery-key", .type = APPLET_FLAG, .off = O(recovery)},
    {.name = "unlock-key-file", .type = APPLET_STRING, .off = O(unlock_key_file)},
    {.name = "name", .type = APPLET_STRING, .off = O(name)},
    {.name = "test", .type = APPLET_FLAG, .off = O(test)},
    {.name = "all", .type = APPLET_FLAG, .off = O(all)},
    {.name = "prompt-timeout", .type = APPLET_SECONDS, .off = O(prompt_timeout_ms)},
    {.name = "root", .type = APPLET_STRING, .off = O(root)},
    APPLET_TPM_OPTIONS(O(tpm)),
};
#undef O

int kcrypt_mboot_main(const char *verb, int argc, char **argv, struct kcrypt_ctx *k, const char *usage)
{
    const struct applet_cmd cmd = {.prefix = verb, .usage = usage, .opts = options, .n_opts = APPLET_N(options)};
    struct mboot_opts o = {.pcr_mask = 1u << 7, .prompt_timeout_ms = 120000, .tpm = k->tpm, .root = k->root};
    bool enroll = !strcmp(verb, "enroll"), unlock = !strcmp(verb, "unlock");
    char **args;
    int nargs, code;

    if (!applet_parse(&cmd, argc, argv, &o, &args, &nargs, &code))
        return code;
    k->tpm = o.tpm;
    k->root = o.root;
    if (!strcmp(verb, "reseal") && o.all) {
        if (!applet_check_args("reseal --all", args, nargs, 0, 0, NULL))
            return EXIT_USAGE;
    } else if (!applet_check_args(verb, args, nargs, 1, 1,
                                  !strcmp(verb, "reseal")
                                      ? "exactly one DEVICE (a LUKS2 partition or image file) or --all"
                                      : "exactly one DEVICE (a LUKS2 partition or image file)")) {
        return EXIT_USAGE;
    } else {
        o.device = args[0];
    }
    if ((o.tpm2 || o.pin) && !enroll) {
        if (o.tpm2 || !o.pin_file) {
            log_error("%s: --tpm2 and --tpm-pin are for enroll (use --tpm-pin-file here)", verb);
            return EXIT_USAGE;
        }
    }
    if (o.pin && !o.tpm2 && enroll) {
        log_error("enroll: --tpm-pin needs --tpm2");
        return EXIT_USAGE;
    }
    if ((o.test || o.name) && !unlock) {
        log_error("%s: --test and --name are for unlock", verb);
        return EXIT_USAGE;
    }
    if (enroll)
        return cmd_enroll(k, &o);
    if (unlock)
        return cmd_unlock(k, &o);
    return cmd_reseal(k, &o);
}

/* ---- kcrypt encrypt with kcrypt.tpm_pcrs ---- */

int kcrypt_measured_new_key(const struct kcrypt_ctx *k, struct secret **pass, struct luks_tpm2_token *tok)
{
    _cleanup_tpm_ struct tpm *tpm = NULL;
    _cleanup_secret_ struct secret *key = NULL;
    struct tpm_sealed sealed;
    uint32_t mask = k->cfg.tpm_pcrs_defer ? 0 : k->cfg.tpm_pcrs;
    int r = open_tpm(k, &tpm);

    if (r < 0)
        return r;
    r = tpm_seal(tpm, mask, NULL, &sealed, &key);
    if (r < 0)
        return r;
    token_from_sealed(tok, &sealed, -1);
    tpm_sealed_clear(&sealed);
    *pass = sealed_passphrase(key);
    return 0;
}

int kcrypt_measured_finish(const struct kcrypt_ctx *k, const char *device, struct luks_tpm2_token *tok,
                           const struct secret *pass)
{
    _cleanup_free_ char *json = NULL;
    char pcrs[80];
    int r, token;

    r = luks_check_passphrase(device, pass, &tok->keyslot);
    if (r == 0)
        r = luks_tpm2_token_format(tok, &json);
    if (r == 0)
        r = luks_token_add(device, json, &token);
    if (r < 0)
        return log_error_errno(r, "%s: the TPM2 token could not be stored", device);
    log_info("%s: key sealed to PCRs %s in TPM2 token %d (keyslot %d)%s", device,
             tpm_pcr_mask_str(tok->pcr_mask, pcrs, sizeof(pcrs)), token, tok->keyslot,
             k->cfg.tpm_pcrs_defer ? "; sealed to the configured PCRs at the first unlock" : "");
    /* stdout carries upstream's LABEL:NAME:UUID line, so the recovery key goes to stderr here. */
    if (k->cfg.recovery_key && enroll_recovery(device, pass, STDERR_FILENO) < 0)
        return -EIO;
    return 0;
}

/* kcrypt.tpm_pcrs_defer: a token sealed to no PCRs at install is sealed to kcrypt.tpm_pcrs at the
 * first unlock that used it. Failure is a warning: the volume is open and the token still works. */
void kcrypt_measured_after_unlock(const struct kcrypt_ctx *k, const char *device, const struct luks_tpm2_token *used)
{
    if (!k->cfg.tpm_pcrs_defer || !k->cfg.tpm_pcrs_set || !k->cfg.tpm_pcrs || used->pcr_mask)
        return;
    if (kcrypt_reseal_device(k, device, NULL, NULL, true, k->cfg.tpm_pcrs, 0) < 0)
        log_warn("%s: could not seal to kcrypt.tpm_pcrs yet (see above); trying again at the next unlock", device);
}

/* unlock-all for a volume with systemd-tpm2 tokens: the TPM, else (unless rd.kcrypt.prompt=0) the
 * console prompt. -ENOENT: the volume has no such token (use the other modes). */
int kcrypt_unlock_measured(const struct kcrypt_ctx *k, const struct luks_part *p)
{
    _cleanup_secret_ struct secret *key = NULL;
    struct luks_tpm2_token used = {0};
    const char *label = luks_part_label(p);
    int r;

    if (!luks_has_token(p->device, "systemd-tpm2"))
        return -ENOENT;
    r = kcrypt_tpm2_key(k, p->device, NULL, kcrypt_prompt_enabled(k), &key, &used);
    if (r == 0) {
        r = luks_open_slot(p->device, p->name, used.keyslot, key);
        if (r >= 0)
            kcrypt_measured_after_unlock(k, p->device, &used);
        luks_tpm2_token_clear(&used);
        return r < 0 ? r : 0;
    }
    if (!kcrypt_prompt_enabled(k))
        return r;
    log_warn("%s (%s): the TPM did not release the key; asking for the recovery key", label[0] ? label : "-",
             p->device);
    r = kcrypt_prompt_key(p->device, label, true, KCRYPT_PROMPT_TIMEOUT_MS, &key);
    if (r < 0)
        return r;
    r = luks_open_slot(p->device, p->name, -1, key);
    return r < 0 ? r : 0;
}
