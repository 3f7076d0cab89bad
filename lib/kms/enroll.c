/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The G3 decisions (kairos-io/kairos kcrypt/pkg/challenger/challenger.go,
 * ChallengerAttestator.IssuePassphrase): which passphrase an attested TPM gets, what its
 * SealedVolume's spec.attestation pins (EK, PCR values), what is learned at a contact, and
 * enrollment of new TPMs and partitions — by trust on first use as upstream, or only for TPMs an
 * operator registered or approved. The crypto (credential, quote) is the caller's (lib/g3). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "kms_internal.h"

#define KUBE_NAME_MAX 63

char *kms_safe_kube_name(const char *s)
{
    /* Upstream's SafeKubeName (kcrypt/pkg/kube/names.go) without its bug: upper case is always
     * lowered, so the name is one the Kubernetes API accepts (RFC 1123 label). */
    size_t n = strlen(s), j = 0;
    char *d = xmalloc(n + 32), hex[2 * SHA256_LEN + 1];
    uint8_t digest[SHA256_LEN];

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        d[j++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '-';
    }
    d[j] = '\0';
    while (j && d[j - 1] == '-')
        d[--j] = '\0';
    size_t lead = strspn(d, "-");
    memmove(d, d + lead, j - lead + 1);
    j -= lead;
    crypto_sha256(s, n, digest);
    hex_encode(digest, sizeof(digest), hex);
    if (!j) {
        snprintf(d, n + 32, "kube-%.8s", hex);
    } else if (j > KUBE_NAME_MAX) {
        j = 54;
        while (j && d[j - 1] == '-')
            j--;
        snprintf(d + j, n + 32 - j, "-%.8s", hex);
    }
    return d;
}

static void now_rfc3339(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool matches(const char *want, const char *have) { return want && *want && !strcmp(want, have); }

static bool part_matches(const struct kms_request *req, const struct kms_partition *p)
{
    return matches(req->label, p->label) || matches(req->name, p->device_name) || matches(req->uuid, p->uuid);
}

/* The PCR values the node reported, as lowercase hex ("" when deferred). */
struct received {
    uint32_t mask;
    char hex[KMS_PCR_COUNT][2 * 32 + 1];
};

int kms_volume_write(struct kms_store *s, const struct kms_volume *v, const char *old_file)
{
    struct kms_buf b = {0};
    int r = -EEXIST;

    kms_emit_volume(&b, v);
    if (!old_file) {
        for (unsigned attempt = 0; attempt < 100 && r == -EEXIST; attempt++) {
            _cleanup_free_ char *fname = kms_file_name("sealedvolume", v->name, attempt);
            r = kms_obj_write(s, fname, b.p, b.len, false, NULL);
        }
    } else {
        const struct kms_file *f = kms_store_file_of(s, old_file);
        struct kms_obj_ver st;
        if (!f || f->problem || f->recs.nvols != 1 || f->recs.nsecrets != 0) {
            kms_buf_free(&b);
            return -EXDEV;
        }
        kms_obj_ver_of(f, &st);
        r = kms_obj_write(s, f->name, b.p, b.len, true, &st);
    }
    kms_buf_free(&b);
    return r;
}

/* The Secret of partition p of v; a missing one under a name the KMS chooses is created with
 * rq's passphrase. *o the Secret (NULL: refused, out set). */
static int secret_for(struct kms_store *s, const struct kms_attest_request *rq, const struct kms_volume *v,
                      const struct kms_partition *p, bool ours, struct kms_reply *out, struct kms_secret_ref *ref,
                      bool *created)
{
    const struct kms_secret_obj *o;
    _cleanup_free_ char *file = NULL;
    int r;

    kms_secret_ref_of(v, p, ref);
    o = kms_secret_ref_find(s, ref);
    if (o)
        return 0;
    /* A missing Secret is created only under a name the KMS chose: the default one, or the one
     * written into a partition enrolled just now. An operator's Secret is the operator's. */
    if (!ref->default_name && !ours) {
        snprintf(out->detail.label, sizeof(out->detail.label), "%s", p->label);
        snprintf(out->detail.object, sizeof(out->detail.object), "%s", ref->name);
        out->detail.object_is_secret = true;
        return kms_reply_set(out, KMS_C_NO_SECRET, -ENOENT, "No secret found for %s and %s", out->detail.hash,
                             p->label);
    }
    if (!rq->passphrase || !rq->passphrase->len)
        return kms_reply_set(out, KMS_C_STORE, -EINVAL, "no passphrase to store for a new partition");
    /* Never a Secret another TPM's volume resolves to: it would be that node's key too. */
    r = kms_check_other_tpms(s, v, out->detail.hash, ref, "/tpm-attestation", out);
    if (r < 0)
        return r;
    {
        const char *name = ref->default_name ? ref->clean_name : ref->name;
        const char *gb = rq->generated_by ? rq->generated_by : "";
        struct secret gbs = {strlen(gb), strlen(gb), (uint8_t *)gb};
        struct kms_kv kv[2] = {{ref->key, (struct secret *)rq->passphrase}, {(char *)"generated_by", &gbs}};
        if (strlen(name) > KUBE_NAME_MAX || !kms_text_ok(name, strlen(name)))
            return kms_reply_set(out, KMS_C_STORE, -EINVAL, "cannot store secret %.64s: not a usable name", name);
        r = kms_write_new_secret(s,
                                 *gb ? "kairos-kms: passphrase escrowed by a node on /tpm-attestation (TPM-encrypted)"
                                     : "kairos-kms: passphrase generated by the KMS on /tpm-attestation",
                                 name, *v->ns ? v->ns : "default", kv, *gb ? 2 : 1, &file);
        if (r < 0 && r != -EEXIST)
            return kms_reply_set(out, KMS_C_STORE, r, "failed storing secret %s", name);
        log_info("tpm-attestation: stored a new passphrase for %s (%.64s) as Secret %s%s", out->detail.hash, p->label,
                 name, *gb ? " (TPM ciphertext)" : "");
        *created = true;
        (void)kms_store_refresh_locked(s, true);
    }
    return 0;
}

static int serve_secret(struct kms_store *s, const struct kms_secret_ref *ref, struct kms_reply *out)
{
    const struct kms_secret_obj *o = kms_secret_ref_find(s, ref);
    const struct kms_kv *kv;

    if (!o)
        return kms_reply_set(out, KMS_C_STORE, -ENOENT, "secret %s vanished", ref->name);
    out->secret_name = xstrdup(o->name);
    if (o->dup) {
        snprintf(out->detail.object, sizeof(out->detail.object), "%s", o->name);
        out->detail.object_is_secret = true;
        return kms_reply_set(out, KMS_C_CONFLICT, -ENOTUNIQ, "Secret %s is defined more than once on the server",
                             o->name);
    }
    kv = kms_secret_ref_value(o, ref);
    if (!kv || kv->value->len == 0) {
        snprintf(out->detail.key, sizeof(out->detail.key), "%s", ref->key);
        return kms_reply_set(out, KMS_C_NO_KEY, -ENODATA, "passphrase not found in secret at key: %s", ref->key);
    }
    return kms_reply_served(out, o, kv);
}

/* Checks the enrolled EK and PCRs (upstream's verifyAttestation). */
static int verify(const struct kms_volume *v, const char *ek_pem, const struct received *got, struct kms_reply *out)
{
    if (!v->att.present)
        return 0;
    if (v->att.ek_pem && *v->att.ek_pem && strcmp(v->att.ek_pem, ek_pem))
        return kms_reply_set(out, KMS_C_EK_MISMATCH, -EPERM,
                             "EK verification failed: EK public key does not match enrolled key");
    for (unsigned i = 0; v->att.has_pcrs && i < KMS_PCR_COUNT; i++) {
        const char *want = v->att.pcr_mask & (1u << i) ? v->att.pcr[i] : NULL;
        if (!want || !*want)
            continue;
        out->detail.pcr = i;
        snprintf(out->detail.expected, sizeof(out->detail.expected), "%s", want);
        if (!(got->mask & (1u << i)) || !*got->hex[i])
            return kms_reply_set(out, KMS_C_PCR_MISSING, -EPERM, "PCR%u mismatch: expected %s, but not provided", i,
                                 want);
        if (strcmp(got->hex[i], want)) {
            snprintf(out->detail.got, sizeof(out->detail.got), "%s", got->hex[i]);
            return kms_reply_set(out, KMS_C_PCR_MISMATCH, -EPERM, "PCR%u changed: expected %s, got %s", i, want,
                                 got->hex[i]);
        }
    }
    return 0;
}

static void set_all_pcrs(struct kms_attestation *a, const struct received *got)
{
    char **pcr = kms_att_pcrs(a);
    a->has_pcrs = true;
    for (unsigned i = 0; i < KMS_PCR_COUNT; i++) {
        free(pcr[i]);
        pcr[i] = got->mask & (1u << i) ? xstrdup(got->hex[i]) : NULL;
    }
    a->pcr_mask = got->mask;
}

/* Learns what is still "" (upstream's updateAttestationData); true when something changed. */
static bool learn(struct kms_attestation *a, const char *ek_pem, const struct received *got, const char *now)
{
    bool changed = false;

    if (!a->present) {
        a->present = true;
        free(a->ek_pem);
        a->ek_pem = xstrdup(ek_pem);
        set_all_pcrs(a, got);
        free(a->enrolled_at);
        a->enrolled_at = xstrdup(now);
        changed = true;
    } else {
        if (!a->ek_pem || !*a->ek_pem) {
            free(a->ek_pem);
            a->ek_pem = xstrdup(ek_pem);
            changed = true;
        }
        for (unsigned i = 0; a->has_pcrs && i < KMS_PCR_COUNT; i++)
            if (a->pcr_mask & (1u << i) && a->pcr[i] && !*a->pcr[i] && got->mask & (1u << i) && *got->hex[i]) {
                free(a->pcr[i]);
                a->pcr[i] = xstrdup(got->hex[i]);
                changed = true;
            }
    }
    if (changed) {
        free(a->last_verified_at);
        a->last_verified_at = xstrdup(now);
    }
    return changed;
}

#define VERIFIED_REFRESH_S 3600

/* True when an RFC 3339 UTC time is missing, unreadable or older than VERIFIED_REFRESH_S. */
static bool stale(const char *when)
{
    struct tm tm = {0};
    const char *end;

    if (!when || !*when)
        return true;
    end = strptime(when, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return true;
    return time(NULL) - timegm(&tm) > VERIFIED_REFRESH_S;
}

static bool all_pcrs_empty(const struct kms_attestation *a)
{
    for (unsigned i = 0; a->has_pcrs && i < KMS_PCR_COUNT; i++)
        if (a->pcr_mask & (1u << i) && a->pcr[i] && *a->pcr[i])
            return false;
    return true;
}

static int attest_locked(struct kms_store *s, const struct kms_attest_request *rq, const char *hash,
                         struct kms_reply *out, char *note, size_t note_len)
{
    const struct kms_request *req = &rq->req;
    _cleanup_(kms_secret_ref_clear) struct kms_secret_ref ref = {0};
    const struct kms_volume *sv = NULL, *v = NULL;
    const struct kms_partition *p = NULL;
    struct kms_volume nv = {0};
    struct kms_partition np = {0};
    char *vfile = NULL;
    struct received got = {0};
    bool is_new = false, new_part = false, defer = false, created = false, changed = false, only_verified = false;
    char now[32];
    int r;

    now_rfc3339(now);
    if (!(req->label && *req->label) && !(req->name && *req->name) && !(req->uuid && *req->uuid))
        return kms_reply_set(out, KMS_C_BAD_REQUEST, -EINVAL,
                             "the request names no partition (headers label, name, uuid)");
    (void)kms_store_refresh_locked(s, true); /* decisions that may write see the newest DIR */
    size_t nmine;
    const struct kms_volume *const *mine = kms_store_volumes_of(s, hash, &nmine); /* in name order */
    for (size_t i = 0; i < nmine; i++) {
        const struct kms_volume *c = mine[i];
        if (!sv)
            sv = c;
        for (size_t j = 0; !v && j < c->nparts; j++)
            if (part_matches(req, &c->parts[j])) {
                v = c;
                p = &c->parts[j];
            }
    }
    /* A quarantined TPM is refused before anything else, also for a partition it does not have
     * yet (upstream: before any EK or PCR check). */
    if (sv && !v && sv->quarantined) {
        snprintf(out->detail.label, sizeof(out->detail.label), "%s", req->label ? req->label : "");
        out->volume = xstrdup(sv->name);
        return kms_reply_set(out, KMS_C_QUARANTINED, -EACCES, "TPM is quarantined");
    }
    if (!sv) {
        if (!rq->tofu) {
            kms_pending_record_locked(s, rq, hash);
            return kms_reply_set(
                out, KMS_C_NOT_ENROLLED, -EACCES,
                "TPM %s is not enrolled: no SealedVolume holds its hash (recorded as pending; an operator "
                "may `challenger approve` it)",
                hash);
        }
        is_new = true;
    } else if (!v) {
        if (!rq->tofu) {
            kms_pending_record_locked(s, rq, hash);
            return kms_reply_set(
                out, KMS_C_NOT_ENROLLED, -EACCES,
                "partition %s of TPM %s is not enrolled (recorded as pending; an operator may `challenger "
                "approve` it)",
                req->label && *req->label ? req->label : "-", hash);
        }
        v = sv;
        new_part = true;
        if (v->nparts >= KMS_MAX_PARTITIONS)
            return kms_reply_set(out, KMS_C_FORBIDDEN, -E2BIG, "SealedVolume %s already has %d partitions", v->name,
                                 KMS_MAX_PARTITIONS);
    }
    if (v) {
        out->volume = xstrdup(v->name);
        if (v->dup) {
            snprintf(out->detail.object, sizeof(out->detail.object), "%s", v->name);
            return kms_reply_set(out, KMS_C_CONFLICT, -ENOTUNIQ,
                                 "SealedVolume %s is defined more than once on the server", v->name);
        }
    }
    /* PCR deferral (a node on its live medium): only while no PCR value is pinned yet. Unlike
     * upstream, also for a SealedVolume without attestation (an operator's registration). */
    if (rq->defer_pcr_enrollment) {
        defer = is_new || !v->att.present || all_pcrs_empty(&v->att);
        if (!defer)
            log_warn("tpm-attestation %s: ignoring defer_pcr_enrollment: PCRs are already enrolled", hash);
    }
    got.mask = rq->pcr_mask;
    for (unsigned i = 0; i < KMS_PCR_COUNT; i++)
        if (rq->pcr_mask & (1u << i) && !defer)
            hex_encode(rq->pcr[i], 32, got.hex[i]);
    if (v && v->quarantined) {
        snprintf(out->detail.label, sizeof(out->detail.label), "%s", p ? p->label : req->label ? req->label : "");
        return kms_reply_set(out, KMS_C_QUARANTINED, -EACCES, "TPM is quarantined");
    }
    if (v) {
        r = verify(v, rq->ek_pem, &got, out);
        if (r < 0)
            return r;
    }

    if (is_new) {
        /* A new TOFU enrollment: SealedVolume tofu-<hash8>, Secret <volume>-<label> (upstream's
         * names, always valid Kubernetes names). */
        char base[64];
        _cleanup_free_ char *vname = NULL, *sname = NULL, *lab = NULL;
        /* Any TPM can enroll itself: TPMs nobody registered may not fill DIR. */
        if (s->nfiles + 2 > KMS_TOFU_MAX_FILES) {
            log_warn("%s: %zu files: no more enrollments by trust on first use", s->dir, s->nfiles);
            return kms_reply_set(out, KMS_C_STORE, -ENOSPC, "the KMS takes no more enrollments (its store is full)");
        }
        snprintf(base, sizeof(base), "tofu-%.8s", hash);
        vname = kms_safe_kube_name(base);
        if (kms_store_find_volume(s, vname))
            return kms_reply_set(out, KMS_C_STORE, -EEXIST, "SealedVolume %s exists for another TPM", vname);
        nv = (struct kms_volume){.name = xstrdup(vname), .ns = xstrdup("default"), .tpm_hash = xstrdup(hash)};
        lab = xstrdup(req->label ? req->label : "");
        {
            char *joined = xmalloc(strlen(vname) + strlen(lab) + 2);
            sprintf(joined, "%s-%s", vname, lab);
            sname = kms_safe_kube_name(joined);
            free(joined);
        }
        nv.parts = xcalloc(1, sizeof(*nv.parts));
        nv.nparts = 1;
        nv.parts[0] = (struct kms_partition){xstrdup(lab),
                                             xstrdup(req->name ? req->name : ""),
                                             xstrdup(req->uuid ? req->uuid : ""),
                                             xstrdup(sname),
                                             xstrdup("passphrase"),
                                             true};
        learn(&nv.att, rq->ek_pem, &got, now);
        r = secret_for(s, rq, &nv, &nv.parts[0], true, out, &ref, &created);
        if (r == 0) {
            r = kms_volume_write(s, &nv, NULL);
            if (r < 0)
                r = kms_reply_set(out, KMS_C_STORE, r, "failed storing SealedVolume %s", vname);
            else
                snprintf(note, note_len, "enrolled (trust on first use) as SealedVolume %s", vname);
        }
        out->volume = xstrdup(vname);
        kms_volume_clear(&nv);
        if (r < 0)
            return r;
        (void)kms_store_refresh_locked(s, true);
        return serve_secret(s, &ref, out);
    }

    /* From here on only the copy is used: creating a Secret rescans DIR, which may replace the
     * records v and p point into (an operator's edit at the same moment). */
    kms_volume_copy(&nv, v);
    vfile = xstrdup(v->file);
    if (!new_part)
        p = &nv.parts[p - v->parts];
    v = NULL;
    if (new_part) {
        /* A new partition of an enrolled TPM (TOFU): appended with an explicit Secret, as upstream. */
        char *joined = xmalloc(strlen(nv.name) + strlen(req->label ? req->label : "") + 2);
        sprintf(joined, "%s-%s", nv.name, req->label ? req->label : "");
        nv.parts = xrealloc(nv.parts, (nv.nparts + 1) * sizeof(*nv.parts));
        np = (struct kms_partition){xstrdup(req->label ? req->label : ""),
                                    xstrdup(req->name ? req->name : ""),
                                    xstrdup(req->uuid ? req->uuid : ""),
                                    kms_safe_kube_name(joined),
                                    xstrdup("passphrase"),
                                    true};
        free(joined);
        nv.parts[nv.nparts++] = np;
        p = &nv.parts[nv.nparts - 1];
        changed = true;
    }
    r = secret_for(s, rq, &nv, p, new_part, out, &ref, &created);
    if (r < 0)
        goto done;
    changed |= learn(&nv.att, rq->ek_pem, &got, now);
    /* lastVerifiedAt: upstream sets it only when something was learned; we also record a
     * successful verification, at most once an hour (a write per boot would be one per node). */
    if (!changed && nv.att.present && stale(nv.att.last_verified_at)) {
        free(nv.att.last_verified_at);
        nv.att.last_verified_at = xstrdup(now);
        changed = only_verified = true;
    }
    if (changed) {
        r = kms_volume_write(s, &nv, vfile);
        if (r == -EXDEV && only_verified) {
            r = 0; /* an operator's file of several objects: the time is not worth a warning */
        } else if (r < 0 && r != -EINPROGRESS && only_verified) {
            /* Only bookkeeping: releasing the key does not depend on it (an etcd election, another
             * challenger's write of the same volume at the same moment). */
            log_warn("tpm-attestation %s: the verification time of SealedVolume %s was not recorded: %s", hash, nv.name,
                     strerror(-r));
            snprintf(note, note_len, "verification time not recorded");
            r = 0;
        } else if (r == -EXDEV) {
            log_warn("tpm-attestation %s: SealedVolume %s shares %s with other objects; its attestation is not "
                     "recorded (put it in a file of its own)",
                     hash, nv.name, vfile);
            snprintf(note, note_len, "attestation not recorded: %s holds other objects", vfile);
            r = 0;
        } else if (r < 0) {
            r = kms_reply_set(out, KMS_C_STORE, r, "failed updating SealedVolume %s", nv.name);
            goto done;
        } else {
            snprintf(note, note_len, "%s",
                     new_part        ? "partition enrolled"
                     : only_verified ? "verification time recorded"
                                     : "attestation recorded");
        }
        (void)kms_store_refresh_locked(s, true);
    }
    r = serve_secret(s, &ref, out);
done:
    kms_volume_clear(&nv);
    free(vfile);
    return r;
}

int kms_attest(struct kms_store *s, const struct kms_attest_request *rq, struct kms_reply *out)
{
    char hash[65], note[300] = "", reason[700];
    struct kms_request nrq = rq->req;
    bool valid = rq->req.tpm_hash && kms_hash_ok(rq->req.tpm_hash) && rq->ek_pem;
    int r;

    *out = (struct kms_reply){0};
    if (valid) {
        for (size_t i = 0; i < 64; i++)
            hash[i] = (char)(rq->req.tpm_hash[i] >= 'A' && rq->req.tpm_hash[i] <= 'F' ? rq->req.tpm_hash[i] - 'A' + 'a'
                                                                                      : rq->req.tpm_hash[i]);
        hash[64] = '\0';
        memcpy(out->detail.hash, hash, sizeof(hash));
        nrq.tpm_hash = hash;
        bool deferred;
        pthread_mutex_lock(&s->lock);
        kms_memory_only_begin(s, rq->req.memory_only);
        r = attest_locked(s, rq, hash, out, note, sizeof(note));
        /* The SealedVolume changed between our read and our write (another worker or challenger
         * recorded this TPM's attestation at the same moment): decide again on what is stored now. */
        for (int again = 0; r == -EAGAIN && out->code == KMS_C_STORE && again < 3; again++) {
            log_debug("tpm-attestation %s: SealedVolume changed while being updated; deciding again", hash);
            kms_reply_clear(out);
            memcpy(out->detail.hash, hash, sizeof(hash));
            note[0] = '\0';
            (void)kms_store_refresh_locked(s, true);
            r = attest_locked(s, rq, hash, out, note, sizeof(note));
        }
        if (r == 0)
            kms_pending_forget_locked(s, hash, &rq->req);
        deferred = kms_memory_only_end(out);
        pthread_mutex_unlock(&s->lock);
        if (deferred)
            return -EINPROGRESS;
    } else {
        r = kms_reply_set(out, KMS_C_BAD_REQUEST, -EINVAL, "invalid TPM hash");
    }
    snprintf(reason, sizeof(reason), "%s%s%s%s%s", out->outcome == KMS_OK ? "passphrase sent" : out->error,
             *note ? "; " : "", note, rq->audit_note && *rq->audit_note ? "; " : "",
             rq->audit_note ? rq->audit_note : "");
    {
        struct kms_audit_event e = {.action = "tpm-attestation",
                                    .req = &nrq,
                                    .outcome = out->outcome,
                                    .reason = reason,
                                    .volume = out->volume,
                                    .secret = out->secret_name};
        kms_audit_log(s->audit, &e);
    }
    return r;
}
