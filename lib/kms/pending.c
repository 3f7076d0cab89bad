/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Pending TPMs (`challenger --enroll registered`): a TPM that proved itself on /tpm-attestation
 * but has no SealedVolume is not served; what it showed is kept for the operator, who may
 * approve it. One file per TPM, DIR/pending-<hash>.yaml, kind PendingTPM (ours; lib/kms's
 * loader skips unknown kinds). Never a secret. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kms_internal.h"
#include "kyaml.h"

#define PENDING_PREFIX "pending-"
#define PENDING_KIND "PendingTPM"
#define PENDING_API "kairos-kms.io/v1alpha1"
/* Any TPM (or TPM emulator) can attest: the records an unknown peer can make are bounded. */
#define MAX_PENDING 256

void kms_pending_clear(struct kms_pending *p)
{
    free(p->ek_pem);
    free(p->label);
    free(p->device_name);
    free(p->uuid);
    *p = (struct kms_pending){0};
}

static const char *str_at(const struct kyaml_node *m, const char *key)
{
    const char *v = NULL;
    if (kyaml_type(kyaml_map_get(m, key)) != KYAML_SCALAR || kyaml_node_str(kyaml_map_get(m, key), key, &v) < 0)
        return "";
    return v;
}

/* Parses a pending file's text; -EINVAL when it is not one of ours. */
static int pending_parse(const char *text, size_t len, const char *name, struct kms_pending *p)
{
    struct kyaml_node *root = NULL;
    const struct kyaml_node *spec, *pcrs, *part;
    int r = kyaml_parse(text, len, name, &root);

    *p = (struct kms_pending){0};
    if (r < 0)
        return r;
    spec = kyaml_map_get(root, "spec");
    if (strcmp(str_at(root, "kind"), PENDING_KIND) || !kms_hash_ok(str_at(spec, "TPMHash"))) {
        kyaml_free(root);
        return -EINVAL;
    }
    snprintf(p->hash, sizeof(p->hash), "%s", str_at(spec, "TPMHash"));
    p->ek_pem = xstrdup(str_at(spec, "ekPublicKey"));
    pcrs = kyaml_map_get(spec, "pcrs");
    for (size_t i = 0; kyaml_type(pcrs) == KYAML_MAP && i < kyaml_count(pcrs); i++) {
        const char *k = kyaml_key(pcrs, i), *v = NULL;
        uint32_t idx;
        if (!k || parse_u32(k, 23, &idx) < 0 || kyaml_node_str(kyaml_value(pcrs, i), "pcr", &v) < 0 || strlen(v) != 64)
            continue;
        p->pcr_mask |= 1u << idx;
        snprintf(p->pcr[idx], sizeof(p->pcr[idx]), "%s", v);
    }
    part = kyaml_map_get(spec, "partition");
    p->label = xstrdup(str_at(part, "label"));
    p->device_name = xstrdup(str_at(part, "deviceName"));
    p->uuid = xstrdup(str_at(part, "uuid"));
    snprintf(p->first_seen, sizeof(p->first_seen), "%s", str_at(spec, "firstSeen"));
    snprintf(p->last_seen, sizeof(p->last_seen), "%s", str_at(spec, "lastSeen"));
    kyaml_free(root);
    return 0;
}

static void pending_emit(struct kms_buf *b, const struct kms_pending *p)
{
    kms_buf_puts(b, "# kairos-kms: a TPM that attested without a SealedVolume (challenger --enroll registered).\n"
                    "# `challenger approve --db DIR HASH` enrolls it; deleting this file forgets it.\n"
                    "apiVersion: " PENDING_API "\nkind: " PENDING_KIND "\nmetadata:\n");
    kms_buf_printf(b, "  name: pending-%.16s\nspec:\n  TPMHash: \"%s\"\n  ekPublicKey: ", p->hash, p->hash);
    kms_buf_quoted(b, p->ek_pem, strlen(p->ek_pem));
    kms_buf_puts(b, p->pcr_mask ? "\n  pcrs:\n" : "\n  pcrs: {}\n");
    for (unsigned i = 0; i < 24; i++)
        if (p->pcr_mask & (1u << i))
            kms_buf_printf(b, "    \"%u\": \"%s\"\n", i, p->pcr[i]);
    kms_buf_puts(b, "  partition:\n    label: ");
    kms_buf_quoted(b, p->label, strlen(p->label));
    kms_buf_puts(b, "\n    deviceName: ");
    kms_buf_quoted(b, p->device_name, strlen(p->device_name));
    kms_buf_puts(b, "\n    uuid: ");
    kms_buf_quoted(b, p->uuid, strlen(p->uuid));
    kms_buf_printf(b, "\n  firstSeen: \"%s\"\n  lastSeen: \"%s\"\n", p->first_seen, p->last_seen);
}

static size_t count_pending(const struct kms_store *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfiles; i++)
        n += !strncmp(s->files[i]->name, PENDING_PREFIX, strlen(PENDING_PREFIX));
    return n;
}

void kms_pending_record_locked(struct kms_store *s, const struct kms_attest_request *rq, const char *hash)
{
    char fname[128], now[32];
    _cleanup_free_ char *text = NULL;
    struct kms_pending p = {0};
    struct kms_buf b = {0};
    struct kms_obj_ver st;
    size_t len = 0;
    time_t t = time(NULL);
    struct tm tm;
    int r;

    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(fname, sizeof(fname), PENDING_PREFIX "%s.yaml", hash);
    r = kms_obj_read(s, fname, &text, &len, &st);
    if (r == -EINPROGRESS)
        return; /* memory-only: asked again from a thread that may wait */
    if (r == 0 && pending_parse(text, len, fname, &p) == 0 && !strcmp(p.hash, hash)) {
        free(p.ek_pem);
        free(p.label);
        free(p.device_name);
        free(p.uuid);
    } else {
        kms_pending_clear(&p);
        if (count_pending(s) >= MAX_PENDING) {
            log_warn("%s: %d TPMs are pending already; not recording %s (approve or delete some)", s->dir, MAX_PENDING,
                     hash);
            return;
        }
        snprintf(p.hash, sizeof(p.hash), "%s", hash);
        snprintf(p.first_seen, sizeof(p.first_seen), "%s", now);
    }
    /* The newest contact's view: what the operator approves is what the TPM shows now. */
    p.ek_pem = xstrdup(rq->ek_pem ? rq->ek_pem : "");
    p.pcr_mask = rq->defer_pcr_enrollment ? 0 : rq->pcr_mask;
    for (unsigned i = 0; i < 24; i++)
        if (p.pcr_mask & (1u << i))
            hex_encode(rq->pcr[i], 32, p.pcr[i]);
    p.label = xstrdup(rq->req.label ? rq->req.label : "");
    p.device_name = xstrdup(rq->req.name ? rq->req.name : "");
    p.uuid = xstrdup(rq->req.uuid ? rq->req.uuid : "");
    snprintf(p.last_seen, sizeof(p.last_seen), "%s", now);
    pending_emit(&b, &p);
    r = kms_obj_write(s, fname, b.p, b.len, true, NULL);
    if (r < 0)
        log_error_errno(r, "%s/%s: cannot record the pending TPM: %m", s->dir, fname);
    kms_buf_free(&b);
    kms_pending_clear(&p);
    (void)kms_store_refresh_locked(s, true);
}

static bool same_text(const char *want, const char *have) { return want && *want && !strcmp(want, have); }

void kms_pending_forget_locked(struct kms_store *s, const char *hash, const struct kms_request *req)
{
    char fname[128];
    _cleanup_free_ char *text = NULL;
    struct kms_pending p;
    struct kms_obj_ver st;
    size_t len = 0;

    snprintf(fname, sizeof(fname), PENDING_PREFIX "%s.yaml", hash);
    /* Most TPMs served were never pending: look in the store's list before reading anything. */
    if (!kms_store_has_object(s, fname) || kms_obj_read(s, fname, &text, &len, &st) < 0)
        return;
    if (pending_parse(text, len, fname, &p) == 0 &&
        (same_text(req->label, p.label) || same_text(req->name, p.device_name) || same_text(req->uuid, p.uuid)) &&
        kms_obj_remove(s, fname, &st) == 0)
        (void)kms_store_refresh_locked(s, true);
    kms_pending_clear(&p);
}

static int list_locked(struct kms_store *s, struct kms_pending **out, size_t *n)
{
    struct kms_pending *v = NULL;
    size_t k = 0;

    (void)kms_store_refresh_locked(s, true);
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct kms_file *f = s->files[i];
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct kms_obj_ver st;
        struct kms_pending p;

        if (strncmp(f->name, PENDING_PREFIX, strlen(PENDING_PREFIX)))
            continue;
        if (kms_obj_read(s, f->name, &text, &len, &st) < 0 || pending_parse(text, len, f->path, &p) < 0)
            continue;
        v = xrealloc(v, (k + 1) * sizeof(*v));
        v[k++] = p;
    }
    *out = v;
    *n = k;
    return 0;
}

int kms_pending_list(struct kms_store *s, struct kms_pending **out, size_t *n)
{
    int r;
    pthread_mutex_lock(&s->lock);
    r = list_locked(s, out, n);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* A pending partition of a TPM that has a SealedVolume already: appended to it (its
 * attestation stays as it is), when its file holds it alone. */
static int approve_partition(struct kms_store *s, const struct kms_volume *v, const struct kms_pending *p, char *vname,
                             size_t vlen)
{
    struct kms_volume nv;
    char fname[128];
    _cleanup_free_ char *vfile = NULL;
    int r;

    for (size_t j = 0; j < v->nparts; j++)
        if (same_text(p->label, v->parts[j].label) || same_text(p->device_name, v->parts[j].device_name) ||
            same_text(p->uuid, v->parts[j].uuid))
            return log_error_errno(-EEXIST, "partition %s is already in SealedVolume %s (%s:%u)",
                                   *p->label ? p->label : "-", v->name, v->file, v->line);
    if (v->nparts >= KMS_MAX_PARTITIONS)
        return log_error_errno(-E2BIG, "SealedVolume %s already has %d partitions", v->name, KMS_MAX_PARTITIONS);
    snprintf(vname, vlen, "%s", v->name);
    vfile = xstrdup(v->file);
    kms_volume_copy(&nv, v);
    nv.parts = xrealloc(nv.parts, (nv.nparts + 1) * sizeof(*nv.parts));
    nv.parts[nv.nparts++] = (struct kms_partition){
        xstrdup(p->label), xstrdup(p->device_name), xstrdup(p->uuid), xstrdup(""), xstrdup(""), false};
    r = kms_volume_write(s, &nv, vfile);
    kms_volume_clear(&nv);
    if (r == -EXDEV)
        return log_error_errno(r, "SealedVolume %s shares %s with other objects; add the partition there by hand",
                               vname, vfile);
    if (r < 0)
        return log_error_errno(r, "%s: cannot rewrite SealedVolume %s: %m", vfile, vname);
    snprintf(fname, sizeof(fname), PENDING_PREFIX "%s.yaml", p->hash);
    (void)kms_obj_remove(s, fname, NULL);
    log_info("added partition %s to SealedVolume %s", *p->label ? p->label : "-", vname);
    (void)kms_store_refresh_locked(s, true);
    return 0;
}

static int approve_locked(struct kms_store *s, const char *prefix, const char *volume, char *vname, size_t vlen,
                          char *hash_out)
{
    _cleanup_free_ struct kms_pending *all = NULL;
    struct kms_pending *p = NULL;
    struct kms_volume nv = {0};
    char *pcrs[KMS_PCR_COUNT];
    struct kms_buf b = {0};
    char fname[128], now[32];
    size_t n = 0, found = 0;
    time_t t = time(NULL);
    struct tm tm;
    int r = 0;

    list_locked(s, &all, &n);
    for (size_t i = 0; i < n; i++)
        if (!strncasecmp(all[i].hash, prefix, strlen(prefix)) && strlen(prefix) >= 8) {
            p = &all[i];
            found++;
        }
    if (!found)
        r = log_error_errno(-ENOENT, "no pending TPM matches %s (`challenger pending` lists them)", prefix);
    else if (found > 1)
        r = log_error_errno(-ENOTUNIQ, "%s matches %zu pending TPMs; give more of the hash", prefix, found);
    if (r < 0)
        goto out;
    snprintf(hash_out, 65, "%s", p->hash);
    for (size_t i = 0; i < s->nvols; i++)
        if (!strcmp(s->vols[i]->tpm_hash, p->hash)) {
            r = approve_partition(s, s->vols[i], p, vname, vlen);
            goto out;
        }
    if (volume)
        snprintf(vname, vlen, "%s", volume);
    else
        snprintf(vname, vlen, "node-%.8s", p->hash);
    if (kms_store_find_volume(s, vname)) {
        r = log_error_errno(-EEXIST, "SealedVolume %s exists already; name the new one with --volume", vname);
        goto out;
    }
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    nv.name = vname;
    nv.ns = (char *)"default";
    nv.tpm_hash = p->hash;
    nv.nparts = 1;
    nv.parts = &(struct kms_partition){p->label, p->device_name, p->uuid, (char *)"", (char *)"", false};
    nv.att.present = true;
    nv.att.ek_pem = p->ek_pem;
    nv.att.has_pcrs = true;
    nv.att.pcr_mask = p->pcr_mask;
    nv.att.pcr = pcrs;
    for (unsigned i = 0; i < KMS_PCR_COUNT; i++)
        pcrs[i] = p->pcr_mask & (1u << i) ? p->pcr[i] : NULL;
    nv.att.enrolled_at = now;
    nv.att.last_verified_at = now;
    kms_emit_volume(&b, &nv);
    r = -EEXIST;
    for (unsigned attempt = 0; attempt < 100 && r == -EEXIST; attempt++) {
        _cleanup_free_ char *f = kms_file_name("sealedvolume", vname, attempt);
        r = kms_obj_write(s, f, b.p, b.len, false, NULL);
    }
    kms_buf_free(&b);
    if (r < 0) {
        log_error_errno(r, "%s: cannot write SealedVolume %s: %m", s->dir, vname);
        goto out;
    }
    snprintf(fname, sizeof(fname), PENDING_PREFIX "%s.yaml", p->hash);
    (void)kms_obj_remove(s, fname, NULL);
    (void)kms_store_refresh_locked(s, true);
out:
    for (size_t i = 0; i < n; i++)
        kms_pending_clear(&all[i]);
    return r;
}

int kms_pending_approve(struct kms_store *s, const char *hash, const char *volume)
{
    char vname[KMS_MAX_NAME + 1] = "", full[65] = "", reason[300];
    struct kms_request rq = {.tpm_hash = full};
    int r;

    pthread_mutex_lock(&s->lock);
    r = approve_locked(s, hash, volume, vname, sizeof(vname), full);
    pthread_mutex_unlock(&s->lock);
    snprintf(reason, sizeof(reason), "%s", r < 0 ? strerror(-r) : "approved: SealedVolume written, EK and PCRs pinned");
    {
        struct kms_audit_event e = {"approve", &rq, r < 0 ? KMS_ERROR : KMS_OK, reason, r < 0 ? NULL : vname, NULL};
        kms_audit_log(s->audit, &e);
    }
    return r;
}
