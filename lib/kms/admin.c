/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Operator commands on a dir store: register, quarantine/release, list; and reading a
 * passphrase from a file (never from argv). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kms_internal.h"

#define MAX_PASSPHRASE_FILE 4096

static void audit_admin(struct kms_store *s, const char *action, const char *hash, enum kms_outcome o,
                        const char *reason, const char *volume, const char *secret)
{
    struct kms_request rq = {.tpm_hash = hash};
    struct kms_audit_event e = {action, &rq, o, reason, volume, secret};
    kms_audit_log(s->audit, &e);
}

static bool field_ok(const char *what, const char *s, size_t max)
{
    if (!s || (strlen(s) <= max && kms_text_ok(s, strlen(s))))
        return true;
    log_error("%s: must be printable text of at most %zu bytes", what, max);
    return false;
}

static const char *or_empty(const char *s) { return s ? s : ""; }

/* An object's name as messages show it after the store's name (its file, or its etcd key). */
static const char *where(struct kms_store *s, const char *name)
{
    static __thread char buf[512];
    char *w = kms_obj_where(s, name);
    snprintf(buf, sizeof(buf), "%s", w);
    free(w);
    return buf;
}

/* True when the file holding v is exactly what kms_emit_volume writes for v, so rewriting it
 * loses nothing; *st gets the stat of the version read. */
static bool written_by_register(struct kms_store *s, const struct kms_volume *v, struct kms_obj_ver *st)
{
    const struct kms_file *f = kms_store_file_of(s, v->file);
    struct kms_buf b = {0};
    char *text = NULL;
    size_t len = 0;
    bool same;

    if (!f || f->problem || f->recs.nvols != 1 || f->recs.nsecrets != 0)
        return false;
    if (kms_obj_read(s, f->name, &text, &len, st) < 0)
        return false;
    kms_emit_volume(&b, v);
    same = kms_obj_same(s, text, len, b.p, b.len);
    kms_buf_free(&b);
    secure_wipe(text, len);
    free(text);
    return same;
}

/* The volume a registration goes to: *v existing one or NULL with *name the new one's name. */
static int pick_volume(struct kms_store *s, const struct kms_register *r, const char *hash, const struct kms_volume **v,
                       char name[KMS_MAX_NAME + 1])
{
    const struct kms_volume *found = NULL;
    size_t n = 0;

    if (r->volume) {
        *v = kms_store_find_volume(s, r->volume);
        if (*v && strcmp((*v)->tpm_hash, hash))
            return log_error_errno(-EEXIST, "SealedVolume %s (%s:%u) holds another TPM hash (%s)", r->volume,
                                   (*v)->file, (*v)->line, (*v)->tpm_hash);
        snprintf(name, KMS_MAX_NAME + 1, "%s", r->volume);
        return 0;
    }
    for (size_t i = 0; i < s->nvols; i++)
        if (!strcmp(s->vols[i]->tpm_hash, hash) && (!found || strcmp(found->name, s->vols[i]->name))) {
            found = s->vols[i];
            n++;
        }
    if (n > 1)
        return log_error_errno(-ENOTUNIQ, "several SealedVolumes hold TPM hash %s; name the one to use", hash);
    if (found) {
        *v = found;
        snprintf(name, KMS_MAX_NAME + 1, "%s", found->name);
        return 0;
    }
    /* Upstream's TOFU names use the same 8-digit prefix (docs/protocol-g3.md §4); a prefix collision needs a name. */
    snprintf(name, KMS_MAX_NAME + 1, "node-%.8s", hash);
    *v = kms_store_find_volume(s, name);
    if (*v)
        return log_error_errno(-EEXIST, "SealedVolume %s (%s:%u) holds another TPM hash; name the new volume yourself",
                               name, (*v)->file, (*v)->line);
    return 0;
}

static int register_locked(struct kms_store *s, const struct kms_register *r, const char *hash, char **vol_out,
                           char **secret_out)
{
    char name[KMS_MAX_NAME + 1];
    const struct kms_volume *v = NULL;
    struct kms_partition np = {(char *)or_empty(r->label),
                               (char *)or_empty(r->device_name),
                               (char *)or_empty(r->uuid),
                               (char *)"",
                               (char *)"",
                               false};
    _cleanup_free_ char *secret_name = NULL, *file = NULL, *vol_file = NULL, *secret_ns = NULL;
    _cleanup_free_ struct kms_partition *parts = NULL;
    struct kms_volume nv;
    char *pcrs[KMS_PCR_COUNT];
    struct kms_buf b = {0};
    struct kms_obj_ver st;
    int ret;

    (void)kms_store_refresh_locked(s, true);
    ret = pick_volume(s, r, hash, &v, name);
    if (ret < 0)
        return ret;
    *vol_out = xstrdup(name);
    if (v && v->dup)
        return log_error_errno(-ENOTUNIQ, "SealedVolume %s is defined twice (%s:%u, %s:%u); remove one first", v->name,
                               v->file, v->line, v->dup->file, v->dup->line);
    for (size_t i = 0; v && i < v->nparts; i++) {
        const struct kms_partition *p = &v->parts[i];
        if ((*np.label && !strcmp(np.label, p->label)) ||
            (*np.device_name && !strcmp(np.device_name, p->device_name)) || (*np.uuid && !strcmp(np.uuid, p->uuid)))
            return log_error_errno(-EEXIST, "this partition is already registered in SealedVolume %s (%s:%u)", v->name,
                                   v->file, v->line);
    }
    if (v && v->nparts >= KMS_MAX_PARTITIONS)
        return log_error_errno(-E2BIG, "SealedVolume %s already has %d partitions", v->name, KMS_MAX_PARTITIONS);
    if (v && !written_by_register(s, v, &st))
        return log_error_errno(-EPERM,
                               "SealedVolume %s is in %s:%u, which register did not write or which was edited "
                               "since; add the partition there by hand",
                               v->name, v->file, v->line);

    if (r->secret_name || r->secret_key || r->passphrase) {
        np.has_secret = true;
        if (r->secret_name)
            secret_name = xstrdup(r->secret_name);
        else if (r->passphrase) {
            /* Named as upstream would look it up: cleanKubeName("<volume>-<label>"). */
            size_t n = strlen(name) + strlen(np.label) + 2;
            char *raw = xmalloc(n);
            snprintf(raw, n, "%s-%s", name, np.label);
            secret_name = kms_clean_kube_name(raw);
            free(raw);
        }
        np.secret_name = secret_name ? secret_name : (char *)"";
        np.secret_path = (char *)(r->secret_key ? r->secret_key : r->passphrase ? "passphrase" : "");
    }
    /* Everything read from v is taken now: writing the Secret may rescan DIR and free it. */
    if (v) {
        nv = *v;
        parts = xcalloc(v->nparts + 1, sizeof(*parts));
        memcpy(parts, v->parts, v->nparts * sizeof(*parts));
        vol_file = xstrdup(kms_store_file_of(s, v->file)->name);
    } else {
        nv = (struct kms_volume){.name = name, .ns = (char *)(r->ns ? r->ns : "default"), .tpm_hash = (char *)hash};
        parts = xcalloc(1, sizeof(*parts));
    }
    parts[nv.nparts++] = np;
    nv.parts = parts;
    if (r->pcr_mask || r->ek_pem) {
        /* Pins given on the command line replace those of the volume (pointers only: emitted
         * below, before anything is freed). */
        nv.att.present = true;
        if (r->ek_pem)
            nv.att.ek_pem = (char *)r->ek_pem;
        if (r->pcr_mask) {
            nv.att.has_pcrs = true;
            nv.att.pcr_mask |= r->pcr_mask;
            for (unsigned i = 0; i < KMS_PCR_COUNT; i++) /* the volume's own array is not ours to change */
                pcrs[i] = nv.att.pcr ? nv.att.pcr[i] : NULL;
            nv.att.pcr = pcrs;
            for (unsigned i = 0; i < KMS_PCR_COUNT; i++)
                if (r->pcr_mask & (1u << i))
                    pcrs[i] = (char *)r->pcr[i];
        }
    }
    kms_emit_volume(&b, &nv);
    secret_ns = xstrdup(*nv.ns ? nv.ns : "default");

    if (r->passphrase) {
        struct kms_secret_ref ref = {np.secret_name, np.secret_path, NULL, NULL, false};
        _cleanup_free_ char *clean = kms_clean_kube_name(np.secret_name);
        const struct kms_secret_obj *o;
        struct kms_kv kv = {np.secret_path, (struct secret *)r->passphrase};

        ref.clean_name = clean;
        o = kms_secret_ref_find(s, &ref);
        if (o)
            ret = log_error_errno(-EEXIST, "Secret %s already exists (%s:%u); not overwritten", o->name, o->file,
                                  o->line);
        else if (!*np.label && !r->secret_name)
            ret = log_error_errno(-EINVAL, "a partition without a label needs a Secret name for its passphrase");
        else
            /* The Secret goes first: a volume whose Secret is missing makes a G1 node post its own. */
            ret = kms_write_new_secret(s, "kairos-kms: static passphrase written by `challenger register`",
                                       np.secret_name, secret_ns, &kv, 1, &file);
        if (ret == -EEXIST && !o && kms_store_find_secret(s, np.secret_name))
            log_error("Secret %s was just created by someone else; not overwritten", np.secret_name);
        if (ret < 0) {
            kms_buf_free(&b);
            return ret;
        }
        *secret_out = xstrdup(np.secret_name);
        log_info("wrote Secret %s to %s/%s", np.secret_name, s->dir, file);
        free(file);
        file = NULL;
    }

    if (vol_file) {
        ret = kms_obj_write(s, vol_file, b.p, b.len, true, &st);
        if (ret == -EAGAIN)
            ret = log_error_errno(ret, "%s/%s changed while being updated; run the command again", s->dir, vol_file);
        else if (ret == 0)
            log_info("added the partition to SealedVolume %s in %s/%s", name, s->dir, where(s, vol_file));
    } else {
        ret = -EEXIST;
        for (unsigned attempt = 0; attempt < 100 && ret == -EEXIST; attempt++) {
            free(file);
            file = kms_file_name("sealedvolume", name, attempt);
            ret = kms_obj_write(s, file, b.p, b.len, false, NULL);
        }
        if (ret == 0)
            log_info("wrote SealedVolume %s to %s/%s", name, s->dir, where(s, file));
    }
    kms_buf_free(&b);
    if (ret < 0 && *secret_out)
        log_error("the Secret %s was written but its SealedVolume was not", *secret_out);
    (void)kms_store_refresh_locked(s, true);
    return ret;
}

int kms_register(struct kms_store *s, const struct kms_register *r)
{
    _cleanup_free_ char *vol = NULL, *secret = NULL;
    char hash[65], reason[128];
    int ret;

    if (!r->tpm_hash || !kms_hash_ok(r->tpm_hash))
        return log_error_errno(-EINVAL, "the TPM hash must be 64 hex digits (what `tpm-hash` prints on the node)");
    if (!(r->label && *r->label) && !(r->device_name && *r->device_name) && !(r->uuid && *r->uuid))
        return log_error_errno(-EINVAL, "a partition needs a label, a device name or a uuid");
    if (!field_ok("label", r->label, KMS_MAX_FIELD) || !field_ok("device name", r->device_name, KMS_MAX_FIELD) ||
        !field_ok("uuid", r->uuid, KMS_MAX_FIELD) || !field_ok("namespace", r->ns, KMS_MAX_FIELD) ||
        !field_ok("volume name", r->volume, KMS_MAX_NAME) || !field_ok("secret name", r->secret_name, KMS_MAX_NAME) ||
        !field_ok("secret key", r->secret_key, KMS_MAX_NAME))
        return -EINVAL;
    if ((r->volume && !*r->volume) || (r->secret_name && !*r->secret_name) || (r->secret_key && !*r->secret_key))
        return log_error_errno(-EINVAL, "empty names are not allowed");
    if (r->secret_key && !strcmp(r->secret_key, "generated_by"))
        return log_error_errno(-EINVAL, "the key generated_by is reserved (it says how a passphrase was made)");
    if (r->passphrase && (r->passphrase->len == 0 || r->passphrase->len > KMS_MAX_VALUE))
        return log_error_errno(-EINVAL, "the passphrase must have 1 to %u bytes", KMS_MAX_VALUE);
    for (size_t i = 0; i < 64; i++)
        hash[i] = (char)(r->tpm_hash[i] >= 'A' && r->tpm_hash[i] <= 'F' ? r->tpm_hash[i] - 'A' + 'a' : r->tpm_hash[i]);
    hash[64] = '\0';

    pthread_mutex_lock(&s->lock);
    ret = register_locked(s, r, hash, &vol, &secret);
    pthread_mutex_unlock(&s->lock);
    snprintf(reason, sizeof(reason), "%s%s", ret < 0 ? "failed: " : "partition registered",
             ret < 0  ? strerror(-ret)
             : secret ? " with a static passphrase"
                      : "");
    audit_admin(s, "register", hash, ret < 0 ? KMS_ERROR : KMS_OK, reason, vol, secret);
    return ret;
}

static int quarantine_file(struct kms_store *s, const struct kms_file *f, const char *hash, bool on)
{
    char *text = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    struct kms_obj_ver st;
    int changed = 0, r;

    r = kms_obj_read(s, f->name, &text, &len, &st);
    if (r < 0)
        return r;
    r = kms_text_set_quarantine(text, len, f->path, hash, on, &out, &out_len, &changed);
    secure_wipe(text, len);
    free(text);
    if (r == -ENOENT)
        return 0; /* only stale records of an unparsable version held it: reported there */
    if (r >= 0 && changed) {
        r = kms_obj_write(s, f->name, out, out_len, true, &st);
        if (r == -EAGAIN)
            r = log_error_errno(r, "%s changed while being updated; run the command again", f->path);
        else if (r == 0)
            log_info("%s: %s %d SealedVolume(s) of %s", f->path, on ? "quarantined" : "released", changed, hash);
    }
    if (out) {
        secure_wipe(out, out_len);
        free(out);
    }
    return r;
}

int kms_set_quarantine(struct kms_store *s, const char *tpm_hash, bool on)
{
    const char *action = on ? "quarantine" : "release";
    char hash[65], reason[64];
    size_t nfound = 0;
    int r = 0;

    if (!tpm_hash || !kms_hash_ok(tpm_hash))
        return log_error_errno(-EINVAL, "the TPM hash must be 64 hex digits");
    for (size_t i = 0; i < 65; i++)
        hash[i] = (char)(tpm_hash[i] >= 'A' && tpm_hash[i] <= 'F' ? tpm_hash[i] - 'A' + 'a' : tpm_hash[i]);

    pthread_mutex_lock(&s->lock);
    (void)kms_store_refresh_locked(s, true);
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct kms_file *f = s->files[i];
        bool holds = false;
        for (size_t j = 0; j < f->recs.nvols && !holds; j++)
            holds = !strcmp(f->recs.vols[j].tpm_hash, hash);
        if (!holds)
            continue;
        nfound++;
        int fr = quarantine_file(s, f, hash, on);
        if (fr < 0 && r == 0)
            r = fr;
    }
    (void)kms_store_refresh_locked(s, true);
    pthread_mutex_unlock(&s->lock);
    if (!nfound)
        r = log_error_errno(-ENOENT, "no SealedVolume holds TPM hash %s", hash);
    snprintf(reason, sizeof(reason), "%s", r < 0 ? strerror(-r) : on ? "quarantined" : "released");
    audit_admin(s, action, hash, r < 0 ? KMS_ERROR : KMS_OK, reason, NULL, NULL);
    return r;
}

/* How the Secret of partition p of v stands, for list (never its value). */
static void secret_state(const struct kms_store *s, const struct kms_volume *v, const struct kms_partition *p,
                         struct kms_buf *b)
{
    _cleanup_(kms_secret_ref_clear) struct kms_secret_ref ref = {0};
    const struct kms_secret_obj *o;
    const struct kms_kv *kv, *gb;

    kms_secret_ref_of(v, p, &ref);
    o = kms_secret_ref_find(s, &ref);
    kms_buf_printf(b, "%s/%s:", o ? o->name : ref.default_name ? ref.clean_name : ref.name, ref.key);
    if (!o) {
        kms_buf_puts(b, p->has_secret ? "missing" : "awaiting-node");
        return;
    }
    if (o->dup) {
        kms_buf_puts(b, "conflict");
        return;
    }
    kv = kms_secret_ref_value(o, &ref);
    gb = kms_secret_get(o, "generated_by");
    if (!kv || !kv->value->len)
        kms_buf_puts(b, "no-key");
    else if (gb && gb->value->len && kms_text_ok((const char *)gb->value->data, gb->value->len) && gb->value->len < 32)
        kms_buf_printf(b, "present(generated_by=%.*s)", (int)gb->value->len, (const char *)gb->value->data);
    else
        kms_buf_puts(b, "present");
}

/* spec.attestation for list: pcrs-pinned(0,7,11) / pcrs-learning / pcrs-unchecked / none, the
 * EK (pinned or learning) and the last verification. */
static void attestation_state(const struct kms_volume *v, struct kms_buf *b)
{
    const struct kms_attestation *a = &v->att;
    bool pinned = false, learning = false;

    if (!a->present) {
        kms_buf_puts(b, "none");
        return;
    }
    for (unsigned i = 0; i < KMS_PCR_COUNT; i++)
        if (a->pcr_mask & (1u << i)) {
            if (a->pcr[i] && *a->pcr[i])
                pinned = true;
            else
                learning = true;
        }
    if (pinned) {
        kms_buf_puts(b, "pcrs-pinned(");
        for (unsigned i = 0, first = 1; i < KMS_PCR_COUNT; i++)
            if (a->pcr_mask & (1u << i) && a->pcr[i] && *a->pcr[i]) {
                kms_buf_printf(b, "%s%u", first ? "" : ",", i);
                first = 0;
            }
        kms_buf_puts(b, learning ? ")+learning" : ")");
    } else {
        kms_buf_puts(b, learning ? "pcrs-learning" : "pcrs-unchecked");
    }
    kms_buf_printf(b, ",ek-%s", a->ek_pem && *a->ek_pem ? "pinned" : "learning");
    if (a->last_verified_at && *a->last_verified_at)
        kms_buf_printf(b, ",last-verified=%s", a->last_verified_at);
}

int kms_list(struct kms_store *s, FILE *out)
{
    struct kms_buf b = {0};

    pthread_mutex_lock(&s->lock);
    (void)kms_store_refresh_locked(s, true);
    kms_buf_puts(&b, "NAME\tTPM-HASH\tSTATE\tPARTITIONS\tFILE\tATTESTATION\n");
    for (size_t i = 0; i < s->nvols; i++) {
        const struct kms_volume *v = s->vols[i];
        kms_buf_printf(&b, "%s\t%s\t%s\t", v->name, v->tpm_hash,
                       v->dup           ? "conflict"
                       : v->quarantined ? "quarantined"
                                        : "active");
        for (size_t j = 0; j < v->nparts; j++) {
            const struct kms_partition *p = &v->parts[j];
            if (j)
                kms_buf_puts(&b, " ");
            kms_buf_printf(&b, "%s", *p->label ? p->label : "-");
            if (*p->device_name)
                kms_buf_printf(&b, ",name=%s", p->device_name);
            if (*p->uuid)
                kms_buf_printf(&b, ",uuid=%s", p->uuid);
            kms_buf_puts(&b, "=>");
            secret_state(s, v, p, &b);
        }
        kms_buf_printf(&b, "%s\t%s:%u\t", v->nparts ? "" : "-", v->file, v->line);
        attestation_state(v, &b);
        kms_buf_puts(&b, "\n");
    }
    pthread_mutex_unlock(&s->lock);
    {
        struct kms_pending *p = NULL;
        size_t n = 0;
        if (kms_pending_list(s, &p, &n) == 0)
            for (size_t i = 0; i < n; i++) {
                kms_buf_printf(&b, "pending\t%s\t%s\tfirst-seen=%s\tlast-seen=%s\n", p[i].hash,
                               *p[i].label ? p[i].label : "-", p[i].first_seen, p[i].last_seen);
                kms_pending_clear(&p[i]);
            }
        free(p);
    }
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct kms_file *f = s->files[i];
        if (f->problem)
            kms_buf_printf(&b, "! %s: %s\n", f->path, f->problem);
    }
    pthread_mutex_unlock(&s->lock);
    fwrite(b.p, 1, b.len, out);
    kms_buf_free(&b);
    return fflush(out) == 0 ? 0 : -EIO;
}

int kms_passphrase_read_file(const char *path, struct secret **out)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    _cleanup_secret_ struct secret *p = secret_new(MAX_PASSPHRASE_FILE + 1);

    if (fd < 0)
        return log_error_errno(-errno, "%s: cannot open the passphrase file: %m", path);
    for (;;) {
        ssize_t n = read(fd, p->data + p->len, p->cap - p->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return log_error_errno(-errno, "%s: cannot read: %m", path);
        if (n == 0)
            break;
        p->len += (size_t)n;
        if (p->len > MAX_PASSPHRASE_FILE)
            return log_error_errno(-EFBIG, "%s: a passphrase file holds at most %d bytes", path, MAX_PASSPHRASE_FILE);
    }
    if (p->len && p->data[p->len - 1] == '\n') {
        p->data[--p->len] = 0;
        if (p->len && p->data[p->len - 1] == '\r')
            p->data[--p->len] = 0;
    }
    if (!p->len)
        return log_error_errno(-EINVAL, "%s: the passphrase is empty", path);
    if (memchr(p->data, 0, p->len))
        return log_error_errno(-EINVAL, "%s: the passphrase holds a NUL byte", path);
    *out = TAKE_PTR(p);
    return 0;
}
