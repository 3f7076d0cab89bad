/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The G1 decisions: which passphrase a node gets on /getPass and what a node may store on
 * /postPass (docs/protocol-g1.md §2.2, §5, §9, §6.1, docs/upstream.md §9.6-§9.9). Error texts sent to nodes are
 * upstream's where upstream has one; they never name server files. */
#include <stdio.h>
#include <string.h>

#include "kms_internal.h"

#define MAX_GENERATED_BY 64
/* What a node posts (upstream kcrypt-challenger cmd/discovery/client/client.go generatePass):
 * base64.RawURLEncoding of one RSA-2048 OAEP ciphertext made by its TPM key. */
#define TPM_CIPHERTEXT_LEN 256
#define TPM_CIPHERTEXT_WIRE_LEN 342

const char *kms_code_name(enum kms_code c)
{
    static const char *const names[] = {
        [KMS_C_OK] = "ok",
        [KMS_C_BAD_REQUEST] = "bad-request",
        [KMS_C_NO_VOLUME] = "no-volume",
        [KMS_C_NO_SECRET] = "no-secret",
        [KMS_C_NO_KEY] = "no-key",
        [KMS_C_QUARANTINED] = "quarantined",
        [KMS_C_CONFLICT] = "conflict",
        [KMS_C_EXISTS] = "exists",
        [KMS_C_FORBIDDEN] = "forbidden",
        [KMS_C_STORE] = "store-error",
        [KMS_C_EK_MISMATCH] = "ek-mismatch",
        [KMS_C_PCR_MISMATCH] = "pcr-mismatch",
        [KMS_C_PCR_MISSING] = "pcr-missing",
        [KMS_C_NOT_ENROLLED] = "not-enrolled",
    };
    return (unsigned)c < sizeof(names) / sizeof(names[0]) && names[c] ? names[c] : "?";
}

void kms_reply_clear(struct kms_reply *r)
{
    secret_free(r->passphrase);
    free(r->generated_by);
    free(r->volume);
    free(r->secret_name);
    *r = (struct kms_reply){0};
}

int kms_reply_set(struct kms_reply *out, enum kms_code c, int r, const char *fmt, ...)
{
    va_list ap;

    out->code = c;
    out->outcome = c == KMS_C_OK ? KMS_OK : c == KMS_C_CONFLICT || c == KMS_C_STORE ? KMS_ERROR : KMS_REFUSED;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof(out->error), fmt, ap);
    va_end(ap);
    return r;
}

static void detail_label(struct kms_reply *out, const char *label)
{
    snprintf(out->detail.label, sizeof(out->detail.label), "%s", label);
}

static void detail_object(struct kms_reply *out, const char *name, bool is_secret)
{
    snprintf(out->detail.object, sizeof(out->detail.object), "%s", name);
    out->detail.object_is_secret = is_secret;
}

static bool matches(const char *want, const char *have) { return want && *want && !strcmp(want, have); }

/* docs/protocol-g1.md §2.2: the first SealedVolume by name (then file) with this hash and a partition any of whose
 * non-empty request values equals the stored field; its first such partition. */
static const struct kms_volume *find_volume_for(const struct kms_store *s, const char *hash,
                                                const struct kms_request *req, const struct kms_partition **part)
{
    size_t n;
    const struct kms_volume *const *vols = kms_store_volumes_of(s, hash, &n);

    for (size_t i = 0; i < n; i++) {
        const struct kms_volume *v = vols[i];
        for (size_t j = 0; j < v->nparts; j++) {
            const struct kms_partition *p = &v->parts[j];
            if (matches(req->label, p->label) || matches(req->name, p->device_name) || matches(req->uuid, p->uuid)) {
                *part = p;
                return v;
            }
        }
    }
    return NULL;
}

static bool normalize_hash(const struct kms_request *req, char hash[65])
{
    if (!req || !req->tpm_hash || !kms_hash_ok(req->tpm_hash))
        return false;
    for (size_t i = 0; i < 64; i++)
        hash[i] = (char)(req->tpm_hash[i] >= 'A' && req->tpm_hash[i] <= 'F' ? req->tpm_hash[i] - 'A' + 'a'
                                                                            : req->tpm_hash[i]);
    hash[64] = '\0';
    return true;
}

static void audit(struct kms_store *s, const char *action, const struct kms_request *req, const struct kms_reply *out,
                  const char *ok_reason)
{
    struct kms_audit_event e = {
        .action = action,
        .req = req,
        .outcome = out->outcome,
        .reason = out->outcome == KMS_OK ? ok_reason : out->error,
        .volume = out->volume,
        .secret = out->secret_name,
    };
    kms_audit_log(s->audit, &e);
}

/* Steps shared by both endpoints once the volume is known: conflict and quarantine checks. */
static int check_volume(const struct kms_volume *v, const struct kms_partition *p, struct kms_reply *out)
{
    out->volume = xstrdup(v->name);
    if (v->dup) {
        log_error("SealedVolume %s is defined in both %s:%u and %s:%u; refusing its nodes", v->name, v->file, v->line,
                  v->dup->file, v->dup->line);
        return (detail_object(out, v->name, false),
                kms_reply_set(out, KMS_C_CONFLICT, -ENOTUNIQ, "SealedVolume %s is defined more than once on the server",
                              v->name));
    }
    if (v->quarantined)
        return (detail_label(out, p->label),
                kms_reply_set(out, KMS_C_QUARANTINED, -EACCES, "quarantined: %s", p->label));
    return 0;
}

static int get_pass_locked(struct kms_store *s, const struct kms_request *req, const char *hash, struct kms_reply *out)
{
    _cleanup_(kms_secret_ref_clear) struct kms_secret_ref ref = {0};
    const struct kms_partition *p = NULL;
    const struct kms_volume *v;
    const struct kms_secret_obj *o;
    const struct kms_kv *kv;
    int r;

    /* On failure the previous records answer; an etcd store that never loaded has none. */
    if (kms_store_refresh_locked(s, false) == -EAGAIN)
        return kms_reply_set(out, KMS_C_STORE, -EAGAIN, "the store is not loaded yet");
    v = find_volume_for(s, hash, req, &p);
    if (!v)
        return kms_reply_set(out, KMS_C_NO_VOLUME, -ENOENT, "no volume found with data from request and hash: %s",
                             hash);
    r = check_volume(v, p, out);
    if (r < 0)
        return r;
    /* G1 proves only which TPM asks. A volume that pins PCR values (spec.attestation) is served
     * only to a TPM that proves its boot too (/tpm-attestation), else G1 would bypass the pin. */
    for (unsigned i = 0; v->att.present && i < KMS_PCR_COUNT; i++)
        if (v->att.pcr_mask & (1u << i) && v->att.pcr[i] && *v->att.pcr[i])
            return kms_reply_set(
                out, KMS_C_FORBIDDEN, -EPERM,
                "SealedVolume %s pins PCR values: this TPM must attest its boot on /tpm-attestation (G3)", v->name);
    kms_secret_ref_of(v, p, &ref);
    o = kms_secret_ref_find(s, &ref);
    if (!o && s->etcd) {
        /* Not in this copy: etcd is asked before a node is told to make a key (the Secret may
         * have just been stored through another challenger or worker). v and p may be replaced. */
        char label[sizeof(out->detail.label)];
        snprintf(label, sizeof(label), "%s", p->label);
        v = NULL;
        p = NULL;
        r = kms_etcd_fetch_secret(s, ref.name);
        if (r == 0 && strcmp(ref.clean_name, ref.name))
            r = kms_etcd_fetch_secret(s, ref.clean_name);
        if (r < 0)
            return kms_reply_set(out, KMS_C_STORE, r, "cannot read Secret %s from the store", ref.name);
        o = kms_secret_ref_find(s, &ref);
        if (!o)
            return (detail_label(out, label), detail_object(out, ref.name, true),
                    kms_reply_set(out, KMS_C_NO_SECRET, -ENOENT, "No secret found for %s and %s", hash, label));
    }
    if (!o)
        return (detail_label(out, p->label), detail_object(out, ref.name, true),
                kms_reply_set(out, KMS_C_NO_SECRET, -ENOENT, "No secret found for %s and %s", hash, p->label));
    out->secret_name = xstrdup(o->name);
    if (o->dup) {
        log_error("Secret %s is defined in both %s:%u and %s:%u; refusing to choose", o->name, o->file, o->line,
                  o->dup->file, o->dup->line);
        return (detail_object(out, o->name, true),
                kms_reply_set(out, KMS_C_CONFLICT, -ENOTUNIQ, "Secret %s is defined more than once on the server",
                              o->name));
    }
    /* docs/upstream.md §9.9: a Secret without the key (or with an empty value) is an explicit error, not an
     * empty passphrase that a G1 client would answer by posting a new one forever. */
    kv = kms_secret_ref_value(o, &ref);
    if (!kv || kv->value->len == 0)
        return (snprintf(out->detail.key, sizeof(out->detail.key), "%s", ref.key),
                kms_reply_set(out, KMS_C_NO_KEY, -ENODATA, "passphrase not found in secret at key: %s", ref.key));
    return kms_reply_served(out, o, kv);
}

int kms_reply_served(struct kms_reply *out, const struct kms_secret_obj *o, const struct kms_kv *kv)
{
    const struct kms_kv *gb = kms_secret_get(o, "generated_by");

    out->passphrase = secret_new_copy(kv->value->data, kv->value->len);
    out->generated_by = xcalloc(1, gb ? gb->value->len + 1 : 1);
    if (gb)
        memcpy(out->generated_by, gb->value->data, gb->value->len);
    out->outcome = KMS_OK;
    out->code = KMS_C_OK;
    return 0;
}

int kms_get_pass(struct kms_store *s, const struct kms_request *req, struct kms_reply *out)
{
    struct kms_request nrq = {0};
    char hash[65];
    bool valid = normalize_hash(req, hash);
    int r;

    *out = (struct kms_reply){0};
    if (valid)
        memcpy(out->detail.hash, hash, sizeof(hash));
    if (!valid) {
        r = kms_reply_set(out, KMS_C_BAD_REQUEST, -EINVAL, "invalid TPM hash");
    } else {
        bool deferred;
        pthread_mutex_lock(&s->lock);
        kms_memory_only_begin(s, req && req->memory_only);
        r = get_pass_locked(s, req, hash, out);
        deferred = kms_memory_only_end(out);
        pthread_mutex_unlock(&s->lock);
        if (deferred)
            return -EINPROGRESS;
    }
    if (req) {
        nrq = *req;
        nrq.tpm_hash = valid ? hash : req->tpm_hash; /* the audit shows the hash as compared */
    }
    audit(s, "getPass", req ? &nrq : NULL, out,
          out->generated_by && *out->generated_by ? "passphrase sent (generated_by set)" : "passphrase sent");
    return r;
}

int kms_write_new_secret(struct kms_store *s, const char *comment, const char *name, const char *ns,
                         const struct kms_kv *kv, size_t nkv, char **file)
{
    struct kms_buf b = {0};
    int r = -EEXIST;

    kms_emit_secret(&b, comment, name, ns, NULL, kv, nkv);
    for (unsigned attempt = 0; attempt < 100 && r == -EEXIST; attempt++) {
        char *fname = kms_file_name("secret", name, attempt);
        r = kms_obj_write(s, fname, b.p, b.len, false, NULL);
        if (r == 0)
            *file = kms_obj_where(s, fname);
        free(fname);
        /* Another writer (a second challenger, a register) may have just stored this very
         * Secret under the same file name: then it exists, and a second copy would be a
         * conflict. Only a file holding something else sends us to the next name. */
        if (r == -EEXIST && (kms_store_refresh_locked(s, true), kms_store_find_secret(s, name)))
            break;
    }
    kms_buf_free(&b);
    if (r == -EEXIST && !kms_store_find_secret(s, name))
        log_error("%s: no free file name for Secret %s", s->dir, name);
    return r;
}

/* A default name can still be one another TPM's volume looks up: a partition naming it, or a
 * default name that collides once cleaned ("a-b" + "c" and "a" + "b-c"). Such a Secret would be
 * that node's passphrase; this node may not choose it. Compared in cleanKubeName form, the
 * widest of the two lookups /getPass makes. */
/* Whether cleanKubeName(a b c) (NULLs skipped) is clean. */
static bool clean_matches(const char *clean, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    const char *q = clean;

    for (int i = 0; i < 3; i++)
        for (const char *p = parts[i]; p && *p; p++, q++) {
            char ch = *p == '_' ? '-' : *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
            if (*q != ch)
                return false;
        }
    return *q == '\0';
}

int kms_check_other_tpms(const struct kms_store *s, const struct kms_volume *self, const char *hash,
                         const struct kms_secret_ref *ref, const char *action, struct kms_reply *out)
{
    for (size_t i = 0; i < s->nvols; i++) {
        const struct kms_volume *v = s->vols[i];
        if (!strcmp(v->tpm_hash, hash))
            continue;
        for (size_t j = 0; j < v->nparts; j++) {
            const struct kms_partition *p = &v->parts[j];
            /* The name kms_secret_ref_of would make, compared without making it (a linear pass
             * over the fleet: no allocation per volume). */
            if (*p->secret_name ? !clean_matches(ref->clean_name, p->secret_name, NULL, NULL)
                                : !clean_matches(ref->clean_name, v->name, "-", p->label))
                continue;
            log_warn("%s from %s for SealedVolume %s: Secret %s is also referenced by SealedVolume %s "
                     "(%s:%u) of another TPM; not stored",
                     action, hash, self->name, ref->clean_name, v->name, v->file, v->line);
            out->secret_name = xstrdup(ref->clean_name);
            return kms_reply_set(
                out, KMS_C_FORBIDDEN, -EPERM,
                "secret %s is referenced by another TPM's SealedVolume; the posted passphrase was not stored",
                ref->clean_name);
        }
    }
    return 0;
}

/* The node's own TPM ciphertext, exactly as upstream's node encodes it: base64url without
 * padding (canonical: no whitespace, zero trailing bits) of 256 bytes. */
static bool is_tpm_ciphertext(const struct secret *pass)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    bool ok;

    if (pass->len != TPM_CIPHERTEXT_WIRE_LEN)
        return false;
    ok = base64_decode((const char *)pass->data, pass->len, BASE64_URL_RAW, &blob, &len) == 0 &&
         len == TPM_CIPHERTEXT_LEN;
    free(blob);
    return ok;
}

static int post_pass_locked(struct kms_store *s, const struct kms_request *req, const char *hash,
                            const struct secret *pass, const char *generated_by, struct kms_reply *out, char **file)
{
    _cleanup_(kms_secret_ref_clear) struct kms_secret_ref ref = {0};
    const struct kms_partition *p = NULL;
    const struct kms_volume *v;
    const struct kms_secret_obj *o;
    const char *name;
    char label[80];
    int r;

    /* Decisions that write are taken on the newest state of DIR. */
    (void)kms_store_refresh_locked(s, true);
    v = find_volume_for(s, hash, req, &p);
    if (!v)
        return kms_reply_set(out, KMS_C_NO_VOLUME, -ENOENT, "no TPM Hash found for %s", hash);
    /* Upstream does not check quarantine on /postPass; a quarantined node gets nothing stored. */
    r = check_volume(v, p, out);
    if (r < 0)
        return r;
    kms_secret_ref_of(v, p, &ref);
    /* Unlike upstream (which creates whatever Secret the partition names): a node stores only
     * its own generated key, under the name the KMS derives for it. An operator's Secret name
     * may be shared with other nodes (a fleet key) and is the operator's to fill. */
    if (!ref.default_name) {
        out->secret_name = xstrdup(ref.name);
        return kms_reply_set(
            out, KMS_C_FORBIDDEN, -EPERM,
            "secret %s is named by the operator (secret.name of %s): nodes may only store a generated key "
            "under the default name",
            ref.name, p->label);
    }
    r = kms_check_other_tpms(s, v, hash, &ref, "/postPass", out);
    if (r < 0)
        return r;
    o = kms_secret_ref_find(s, &ref);
    if (o) {
        out->secret_name = xstrdup(o->name);
        return (detail_object(out, o->name, true),
                kms_reply_set(out, KMS_C_EXISTS, -EEXIST, "secret %s already exists; the posted passphrase was ignored",
                              o->name));
    }
    /* The default name is written as upstream writes it (a valid Kubernetes name, found by
     * upstream too). */
    name = ref.clean_name;
    out->secret_name = xstrdup(name);
    if (strlen(name) > KMS_MAX_NAME || !kms_text_ok(name, strlen(name)))
        return kms_reply_set(out, KMS_C_STORE, -EINVAL, "cannot store secret %.64s: not a usable name", name);
    if (!strcmp(ref.key, "generated_by"))
        return kms_reply_set(out, KMS_C_STORE, -EINVAL, "cannot store secret %s: its key would be generated_by", name);
    /* v and p are not used past the write: a rescan inside it may replace them. */
    snprintf(label, sizeof(label), "%s", p->label);
    {
        struct secret gb = {strlen(generated_by), strlen(generated_by), (uint8_t *)generated_by};
        struct kms_kv kv[2] = {{ref.key, (struct secret *)pass}, {(char *)"generated_by", &gb}};
        r = kms_write_new_secret(s,
                                 "kairos-kms: passphrase posted by a node on /postPass (TPM-encrypted when "
                                 "generated_by is tpm)",
                                 name, *v->ns ? v->ns : "default", kv, 2, file);
    }
    if (r == -EEXIST)
        return (
            detail_object(out, name, true),
            kms_reply_set(out, KMS_C_EXISTS, r, "secret %s already exists; the posted passphrase was ignored", name));
    if (r < 0)
        return kms_reply_set(out, KMS_C_STORE, r, "failed storing secret %s", name);
    log_info("stored the passphrase posted for %s (%.64s) as Secret %s in %s/%s", hash, label, name, s->dir, *file);
    (void)kms_store_refresh_locked(s, true);
    out->outcome = KMS_OK;
    out->code = KMS_C_OK;
    return 0;
}

int kms_post_pass(struct kms_store *s, const struct kms_request *req, const struct secret *pass,
                  const char *generated_by, struct kms_reply *out)
{
    _cleanup_free_ char *file = NULL;
    char hash[65], reason[300] = "";
    bool valid = normalize_hash(req, hash);
    int r;

    *out = (struct kms_reply){0};
    if (valid)
        memcpy(out->detail.hash, hash, sizeof(hash));
    if (!generated_by)
        generated_by = "";
    if (!valid)
        r = kms_reply_set(out, KMS_C_BAD_REQUEST, -EINVAL, "invalid TPM hash");
    else if (!pass || pass->len == 0)
        r = kms_reply_set(out, KMS_C_BAD_REQUEST, -EINVAL,
                          "invalid answer from client: doesn't contain any passphrase");
    else if (pass->len > KMS_MAX_VALUE || !kms_text_ok((const char *)pass->data, pass->len))
        r = kms_reply_set(out, KMS_C_BAD_REQUEST, -EINVAL,
                          "invalid answer from client: the passphrase is not printable text of at most %u bytes",
                          KMS_MAX_VALUE);
    else if (strlen(generated_by) > MAX_GENERATED_BY || !kms_text_ok(generated_by, strlen(generated_by)))
        r = kms_reply_set(out, KMS_C_BAD_REQUEST, -EINVAL, "invalid answer from client: bad generated_by");
    /* Unlike upstream: only a key the node's TPM encrypted is stored, never a plaintext one. */
    else if (strcmp(generated_by, "tpm"))
        r = kms_reply_set(
            out, KMS_C_FORBIDDEN, -EPERM,
            "invalid answer from client: generated_by must be tpm (only a node's TPM-encrypted key is stored)");
    else if (!is_tpm_ciphertext(pass))
        r = kms_reply_set(
            out, KMS_C_FORBIDDEN, -EPERM,
            "invalid answer from client: the passphrase is not a TPM ciphertext (base64url of %u bytes, %u "
            "characters)",
            TPM_CIPHERTEXT_LEN, TPM_CIPHERTEXT_WIRE_LEN);
    else {
        bool deferred;
        pthread_mutex_lock(&s->lock);
        kms_memory_only_begin(s, req && req->memory_only);
        r = post_pass_locked(s, req, hash, pass, generated_by, out, &file);
        deferred = kms_memory_only_end(out);
        pthread_mutex_unlock(&s->lock);
        if (deferred)
            return -EINPROGRESS;
    }
    if (file)
        snprintf(reason, sizeof(reason), "stored as %s", file);
    if (req) {
        struct kms_request nrq = *req;
        nrq.tpm_hash = valid ? hash : req->tpm_hash;
        audit(s, "postPass", &nrq, out, reason);
    } else {
        audit(s, "postPass", NULL, out, reason);
    }
    return r;
}
