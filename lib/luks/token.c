/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* systemd's LUKS2 tokens: systemd-tpm2 (systemd v252 src/shared/tpm2-util.c tpm2_make_luks2_json
 * and tpm2_parse_luks2_json) and systemd-recovery (src/cryptenroll/cryptenroll-recovery.c), plus
 * keyslots with systemd's minimal PBKDF. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libcryptsetup.h>

#include "crypto.h"
#include "kjson.h"
#include "luks_internal.h"

void luks_tpm2_token_clear(struct luks_tpm2_token *t)
{
    free(t->blob);
    memset(t, 0, sizeof(*t));
    t->token = -1;
    t->keyslot = -1;
}

/* "keyslots": exactly one decimal string naming a keyslot (what systemd writes and reads). */
static int parse_keyslot(const struct kjson_doc *d, int ks, int *slot)
{
    _cleanup_free_ char *s = NULL;
    uint32_t v;
    int e;

    if (kjson_type(d, ks) != KJSON_ARRAY || kjson_count(d, ks) != 1)
        return -EBADMSG;
    e = kjson_index(d, ks, 0);
    if (kjson_type(d, e) != KJSON_STRING || kjson_str(d, e, &s, NULL) < 0)
        return -EBADMSG;
    if (!s[0] || strlen(s) > 2 || s[0] == '+' || s[0] == '-' || parse_u32(s, LUKS_MAX_KEYSLOTS - 1, &v) < 0)
        return -EBADMSG;
    *slot = (int)v;
    return 0;
}

static const struct kjson_limits token_limits = {
    .max_bytes = LUKS_TOKEN_JSON_MAX,
    .max_tokens = 256,
    .max_depth = 4,
};

int luks_tpm2_token_parse(const char *what, const char *json, size_t len, struct luks_tpm2_token *out)
{
    _cleanup_kjson_ struct kjson_doc *d = NULL;
    _cleanup_free_ char *s = NULL;
    _cleanup_free_ uint8_t *bin = NULL;
    size_t bin_len = 0;
    int v, r;

    luks_tpm2_token_clear(out);
    if (kjson_parse(json, len, &token_limits, &d, NULL) < 0 || kjson_type(d, KJSON_ROOT) != KJSON_OBJECT)
        return log_error_errno(-EBADMSG, "%s: the token is not a JSON object of at most %u bytes", what,
                               LUKS_TOKEN_JSON_MAX);
    if (!kjson_str_equal(d, kjson_get(d, KJSON_ROOT, "type", 0), "systemd-tpm2", 0))
        return log_error_errno(-EBADMSG, "%s: not a systemd-tpm2 token", what);
    if (parse_keyslot(d, kjson_get(d, KJSON_ROOT, "keyslots", 0), &out->keyslot) < 0)
        return log_error_errno(-EBADMSG, "%s: \"keyslots\" must name exactly one keyslot (0-%d) as a string", what,
                               LUKS_MAX_KEYSLOTS - 1);

    /* Features of newer systemd this implementation does not open: said plainly. */
    v = kjson_get(d, KJSON_ROOT, "tpm2_pcrlock", 0);
    if (v >= 0 && kjson_type(d, v) == KJSON_BOOL) {
        bool on = false;
        (void)kjson_bool(d, v, &on);
        if (on)
            return log_error_errno(-EOPNOTSUPP,
                                   "%s: pcrlock policies (tpm2_pcrlock, systemd >= 255) are not "
                                   "supported",
                                   what);
    }
    v = kjson_get(d, KJSON_ROOT, "tpm2_pubkey", 0);
    if (v >= 0 && kjson_type(d, v) != KJSON_NULL)
        return log_error_errno(-EOPNOTSUPP, "%s: signed PCR policies (tpm2_pubkey) are not supported", what);
    v = kjson_get(d, KJSON_ROOT, "tpm2-blob", 0);
    if (kjson_type(d, v) == KJSON_ARRAY)
        return log_error_errno(-EOPNOTSUPP, "%s: sharded tpm2-blob (systemd >= 256) is not supported", what);
    if (kjson_type(d, v) != KJSON_STRING || kjson_str(d, v, &s, NULL) < 0 ||
        base64_decode(s, strlen(s), BASE64_STD, &out->blob, &out->blob_len) < 0 || out->blob_len == 0 ||
        out->blob_len > LUKS_TOKEN_BLOB_MAX)
        return log_error_errno(-EBADMSG, "%s: \"tpm2-blob\" is not base64 of at most %d bytes", what,
                               LUKS_TOKEN_BLOB_MAX);
    free(s);
    s = NULL;

    v = kjson_get(d, KJSON_ROOT, "tpm2-pcrs", 0);
    if (kjson_type(d, v) != KJSON_ARRAY || kjson_count(d, v) > 24)
        return log_error_errno(-EBADMSG, "%s: \"tpm2-pcrs\" must be an array of PCR numbers", what);
    for (size_t i = 0; i < kjson_count(d, v); i++) {
        uint64_t pcr;
        if (kjson_uint64(d, kjson_index(d, v, i), &pcr) < 0 || pcr > 23)
            return log_error_errno(-EBADMSG, "%s: \"tpm2-pcrs\" holds something that is not a PCR 0-23", what);
        out->pcr_mask |= 1u << pcr;
    }

    v = kjson_get(d, KJSON_ROOT, "tpm2-pcr-bank", 0);
    if (v >= 0 && kjson_type(d, v) != KJSON_NULL && !kjson_str_equal(d, v, "sha256", 0))
        return log_error_errno(-EOPNOTSUPP, "%s: only the sha256 PCR bank is supported (\"tpm2-pcr-bank\")", what);
    v = kjson_get(d, KJSON_ROOT, "tpm2-primary-alg", 0);
    if (v >= 0 && kjson_type(d, v) != KJSON_NULL) {
        if (kjson_str_equal(d, v, "rsa", 0))
            out->primary_rsa = true;
        else if (!kjson_str_equal(d, v, "ecc", 0))
            return log_error_errno(-EBADMSG, "%s: \"tpm2-primary-alg\" must be \"ecc\" or \"rsa\"", what);
    }

    v = kjson_get(d, KJSON_ROOT, "tpm2-policy-hash", 0);
    if (kjson_type(d, v) == KJSON_ARRAY)
        return log_error_errno(-EOPNOTSUPP, "%s: sharded tpm2-policy-hash (systemd >= 256) is not supported", what);
    if (kjson_type(d, v) != KJSON_STRING || kjson_str(d, v, &s, NULL) < 0 || strlen(s) != 64 ||
        hex_decode(s, 64, out->policy, sizeof(out->policy)) != 32)
        return log_error_errno(-EBADMSG, "%s: \"tpm2-policy-hash\" is not 64 hex characters", what);
    free(s);
    s = NULL;

    r = kjson_get_bool(d, KJSON_ROOT, "tpm2-pin", 0, &out->pin);
    if (r < 0)
        return log_error_errno(-EBADMSG, "%s: \"tpm2-pin\" is not a boolean", what);

    v = kjson_get(d, KJSON_ROOT, "tpm2_salt", 0);
    if (v >= 0 && kjson_type(d, v) != KJSON_NULL) {
        if (kjson_type(d, v) != KJSON_STRING || kjson_str(d, v, &s, NULL) < 0 ||
            base64_decode(s, strlen(s), BASE64_STD, &bin, &bin_len) < 0 || bin_len == 0 || bin_len > sizeof(out->salt))
            return log_error_errno(-EBADMSG, "%s: \"tpm2_salt\" is not base64 of 1-64 bytes", what);
        memcpy(out->salt, bin, bin_len);
        out->salt_len = bin_len;
    }
    v = kjson_get(d, KJSON_ROOT, "tpm2_srk", 0);
    out->srk = v >= 0 && kjson_type(d, v) == KJSON_STRING;
    return 0;
}

int luks_tpm2_token_format(const struct luks_tpm2_token *t, char **json)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_free_ char *blob = NULL;
    char slot[12], policy[65];
    const char *text;
    size_t len;
    int r;

    if (t->keyslot < 0 || t->keyslot >= LUKS_MAX_KEYSLOTS || !t->blob_len)
        return -EINVAL;
    snprintf(slot, sizeof(slot), "%d", t->keyslot);
    blob = base64_encode(t->blob, t->blob_len, BASE64_STD, NULL);
    hex_encode(t->policy, sizeof(t->policy), policy);
    /* Field order and names of systemd v252 tpm2_make_luks2_json. */
    kjson_w_obj_begin(w);
    kjson_w_kv_str(w, "type", "systemd-tpm2");
    kjson_w_key(w, "keyslots");
    kjson_w_arr_begin(w);
    kjson_w_str(w, slot);
    kjson_w_arr_end(w);
    kjson_w_kv_str(w, "tpm2-blob", blob);
    kjson_w_key(w, "tpm2-pcrs");
    kjson_w_arr_begin(w);
    for (unsigned i = 0; i < 24; i++)
        if (t->pcr_mask & (1u << i))
            kjson_w_uint(w, i);
    kjson_w_arr_end(w);
    kjson_w_kv_str(w, "tpm2-pcr-bank", "sha256");
    kjson_w_kv_str(w, "tpm2-primary-alg", t->primary_rsa ? "rsa" : "ecc");
    kjson_w_kv_str(w, "tpm2-policy-hash", policy);
    kjson_w_kv_bool(w, "tpm2-pin", t->pin);
    kjson_w_obj_end(w);
    r = kjson_w_result(w, &text, &len);
    if (r < 0)
        return r;
    *json = xstrndup(text, len);
    return 0;
}

char *luks_recovery_token_json(int slot)
{
    char *json = xmalloc(64);
    snprintf(json, 64, "{\"type\":\"systemd-recovery\",\"keyslots\":[\"%d\"]}", slot);
    return json;
}

static const char modhex[] = "cbdefghijklnrtuv";

int luks_recovery_key_new(struct secret **out)
{
    uint8_t raw[32];
    struct secret *s;
    size_t o = 0;
    int r = crypto_random(raw, sizeof(raw));

    if (r < 0)
        return log_error_errno(r, "cannot get random bytes for a recovery key");
    s = secret_new(LUKS_RECOVERY_KEY_LEN);
    for (size_t i = 0; i < sizeof(raw); i++) {
        s->data[o++] = modhex[raw[i] >> 4];
        s->data[o++] = modhex[raw[i] & 15];
        if (i % 4 == 3 && i != sizeof(raw) - 1)
            s->data[o++] = '-';
    }
    s->data[o] = '\0';
    s->len = o;
    secure_wipe(raw, sizeof(raw));
    *out = s;
    return 0;
}

bool luks_recovery_key_valid(const uint8_t *s, size_t len)
{
    if (len != LUKS_RECOVERY_KEY_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (i % 9 == 8) {
            if (s[i] != '-')
                return false;
        } else if (!s[i] || !strchr(modhex, s[i])) {
            return false;
        }
    }
    return true;
}

/* ---- on the device ---- */

static void crypt_freep(struct crypt_device **cd) { crypt_free(*cd); }
#define _cleanup_crypt_ _cleanup_(crypt_freep)

static int load(const char *device, struct crypt_device **out)
{
    int r = luks_check_exists(device);

    if (r < 0)
        return r;
    luks_cs_begin();
    r = crypt_init(out, device);
    if (r < 0)
        return log_error_errno(r, "%s: cannot open: %s", device, luks_cs_reason(r));
    r = crypt_load(*out, CRYPT_LUKS2, NULL);
    if (r < 0) {
        crypt_free(*out);
        *out = NULL;
        return log_error_errno(-EINVAL, "%s: not a LUKS2 volume", device);
    }
    return 0;
}

static bool token_is(struct crypt_device *cd, int token, const char *type)
{
    const char *ty = NULL;
    crypt_token_info info = crypt_token_status(cd, token, &ty);

    return info != CRYPT_TOKEN_INVALID && info != CRYPT_TOKEN_INACTIVE && ty && !strcmp(ty, type);
}

int luks_token_count(const char *device, const char *type)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    int r = load(device, &cd), n = 0;

    if (r < 0)
        return r;
    for (int i = 0; i < LUKS_MAX_TOKENS; i++)
        n += token_is(cd, i, type);
    return n;
}

bool luks_has_token(const char *device, const char *type)
{
    struct crypt_device *cd = NULL;
    bool found = false;

    luks_cs_begin();
    if (crypt_init(&cd, device) < 0)
        return false;
    if (crypt_load(cd, CRYPT_LUKS2, NULL) == 0)
        for (int i = 0; i < LUKS_MAX_TOKENS && !found; i++)
            found = token_is(cd, i, type);
    crypt_free(cd);
    return found;
}

void luks_tpm2_tokens_free(struct luks_tpm2_token *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        luks_tpm2_token_clear(&t[i]);
    free(t);
}

int luks_tpm2_tokens(const char *device, struct luks_tpm2_token **out, size_t *n)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    struct luks_tpm2_token *list;
    size_t count = 0;
    int r = load(device, &cd);

    if (r < 0)
        return r;
    list = xcalloc(LUKS_MAX_TOKENS, sizeof(*list));
    for (int i = 0; i < LUKS_MAX_TOKENS; i++) {
        const char *json = NULL;
        char what[300];
        crypt_keyslot_info ks;

        if (!token_is(cd, i, "systemd-tpm2") || crypt_token_json_get(cd, i, &json) < 0 || !json)
            continue;
        snprintf(what, sizeof(what), "%s token %d", device, i);
        if (luks_tpm2_token_parse(what, json, strlen(json), &list[count]) < 0)
            continue;
        ks = crypt_keyslot_status(cd, list[count].keyslot);
        if (ks != CRYPT_SLOT_ACTIVE && ks != CRYPT_SLOT_ACTIVE_LAST) {
            log_error("%s: names keyslot %d, which is not in use", what, list[count].keyslot);
            luks_tpm2_token_clear(&list[count]);
            continue;
        }
        list[count++].token = i;
    }
    *out = list;
    *n = count;
    return 0;
}

int luks_add_keyslot(const char *device, const struct secret *old_pass, const struct secret *new_pass, int *slot)
{
    static const struct crypt_pbkdf_type systemd_minimal = {
        .type = CRYPT_KDF_PBKDF2,
        .hash = "sha512",
        .iterations = 1000,
        .flags = CRYPT_PBKDF_NO_BENCHMARK,
    };
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    int r = load(device, &cd);

    if (r < 0)
        return r;
    r = crypt_set_pbkdf_type(cd, &systemd_minimal);
    if (r < 0)
        return log_error_errno(r, "%s: cannot set the keyslot PBKDF: %s", device, luks_cs_reason(r));
    r = crypt_keyslot_add_by_passphrase(cd, CRYPT_ANY_SLOT, (const char *)old_pass->data, old_pass->len,
                                        (const char *)new_pass->data, new_pass->len);
    if (r == -EPERM)
        return log_error_errno(r, "%s: no keyslot accepts the unlock key", device);
    if (r < 0)
        return log_error_errno(r, "%s: cannot add a keyslot: %s", device, luks_cs_reason(r));
    *slot = r;
    return 0;
}

/* Stores json as token (CRYPT_ANY_TOKEN: a new one), or removes token when json is NULL, and then
 * destroys keyslot slot (if >= 0): the token's number, or -errno (logged). */
static int token_set(const char *device, int token, const char *json, int slot)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    int r = load(device, &cd), t;

    if (r < 0)
        return r;
    t = crypt_token_json_set(cd, token, json);
    if (t < 0 && json)
        return log_error_errno(t, "%s: cannot store the token: %s", device, luks_cs_reason(t));
    if (t < 0)
        return log_error_errno(t, "%s: cannot remove token %d: %s", device, token, luks_cs_reason(t));
    r = slot >= 0 ? crypt_keyslot_destroy(cd, slot) : 0;
    if (r < 0)
        return log_error_errno(r, "%s: cannot remove keyslot %d: %s", device, slot, luks_cs_reason(r));
    return t;
}

int luks_token_add(const char *device, const char *json, int *token)
{
    int r = token_set(device, CRYPT_ANY_TOKEN, json, -1);

    if (r < 0)
        return r;
    *token = r;
    return 0;
}

int luks_token_remove(const char *device, int token, int slot)
{
    int r = token_set(device, token, NULL, slot);
    return r < 0 ? r : 0;
}

int luks_check_passphrase_slot(const char *device, int slot, const struct secret *pass)
{
    return luks_open_slot(device, NULL, slot, pass);
}

int luks_open_slot(const char *device, const char *name, int slot, const struct secret *pass)
{
    _cleanup_crypt_ struct crypt_device *cd = NULL;
    int r = load(device, &cd);

    if (r < 0)
        return r;
    r = crypt_activate_by_passphrase(cd, name, slot < 0 ? CRYPT_ANY_SLOT : slot, (const char *)pass->data, pass->len,
                                     0);
    if (r == -EPERM) {
        if (slot >= 0)
            return log_error_errno(r, "%s: keyslot %d does not accept the key", device, slot);
        return log_error_errno(r, "%s: no keyslot accepts this key", device);
    }
    if (r == -EEXIST)
        return log_error_errno(r, "%s: /dev/mapper/%s already exists", device, name);
    if (r < 0 && name && access("/sys/class/misc/device-mapper", F_OK) != 0)
        return log_error_errno(-ENODEV,
                               "%s: cannot unlock as /dev/mapper/%s: device-mapper is unavailable "
                               "(load dm_mod and dm_crypt)",
                               device, name);
    if (r < 0)
        return log_error_errno(r, "%s: cannot use the key: %s", device, luks_cs_reason(r));
    return r;
}
