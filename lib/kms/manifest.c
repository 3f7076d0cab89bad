/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Manifests to records: SealedVolume keyserver.kairos.io/v1alpha1 (docs/upstream.md §6.1, field
 * names case-sensitive as the API server reads them) and Secret v1 (`data` base64, `stringData`
 * text). An invalid object is reported with file:line:col and skipped; the others load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kms_internal.h"
#include "kyaml.h"

static void *grow(void *p, size_t n, size_t size)
{
    void *q = xrealloc(p, (n + 1) * size);
    memset((char *)q + n * size, 0, size);
    return q;
}

/* Set while re-reading a text whose problems were already reported (kms_manifest_load_quiet). */
static __thread bool quiet;

static int bad(const struct kyaml_node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const struct kyaml_node *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (quiet)
        return -EINVAL;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return log_error_errno(-EINVAL, "%s:%u:%u: %s", kyaml_source(n), kyaml_line(n), kyaml_column(n), msg);
}

/* Optional string member: "" when absent or null; -EINVAL (logged) for a map, a list or a value
 * longer than max. what names the member in messages. */
static int opt_str(const struct kyaml_node *map, const char *key, const char *what, size_t max, char **out)
{
    const struct kyaml_node *n = kyaml_map_get(map, key);
    const char *s = "";
    int r = kyaml_node_str(n, what, &s);

    if (r < 0 && r != -ENOENT)
        return r;
    if (r == -ENOENT)
        s = "";
    if (strlen(s) > max)
        return bad(n, "%s: longer than %zu bytes", what, max);
    *out = xstrdup(s);
    return 0;
}

/* Warns about keys that differ from a known field only by case (the API server drops them, so
 * `tpmHash:` would silently mean "no hash"); other unknown keys are only a debug line. */
static void check_keys(const struct kyaml_node *map, const char *what, const char *const *known)
{
    if (quiet)
        return;
    for (size_t i = 0; i < kyaml_count(map); i++) {
        const char *k = kyaml_key(map, i);
        bool found = false;
        for (const char *const *f = known; *f && !found; f++) {
            if (k && !strcmp(k, *f))
                found = true;
            else if (k && !strcasecmp(k, *f)) {
                log_warn(
                    "%s:%u:%u: %s: unknown field \"%s\" is ignored (did you mean \"%s\"? field names are case-sensitive)",
                    kyaml_source(kyaml_value(map, i)), kyaml_line(kyaml_value(map, i)),
                    kyaml_column(kyaml_value(map, i)), what, k, *f);
                found = true;
            }
        }
        if (!found)
            log_debug("%s:%u: %s: ignoring field %s", kyaml_source(map), kyaml_line(map), what, k ? k : "~");
    }
}

/* metadata.<what> (labels or annotations): a map of strings, appended to meta->kv as pairs. */
static int parse_meta_map(const struct kyaml_node *md, const char *kind, const char *what, struct kms_meta *meta,
                          uint16_t *count)
{
    const struct kyaml_node *m = kyaml_map_get(md, what);
    size_t used = 2 * ((size_t)meta->nlabels + meta->nannotations);

    if (!m || kyaml_type(m) == KYAML_NULL)
        return 0;
    if (kyaml_type(m) != KYAML_MAP)
        return bad(m, "%s: metadata.%s: expected a mapping of strings", kind, what);
    if (kyaml_count(m) > KMS_MAX_META)
        return bad(m, "%s: metadata.%s: more than %d entries", kind, what, KMS_MAX_META);
    if (!kyaml_count(m))
        return 0;
    meta->kv = xrealloc(meta->kv, (used + 2 * kyaml_count(m)) * sizeof(*meta->kv));
    for (size_t i = 0; i < kyaml_count(m); i++) {
        const char *k = kyaml_key(m, i), *v = "";
        int r = kyaml_type(kyaml_value(m, i)) == KYAML_NULL ? 0 : kyaml_node_str(kyaml_value(m, i), what, &v);
        if (r < 0)
            return r;
        if (!k || !*k || strlen(k) > KMS_MAX_FIELD || !kms_text_ok(k, strlen(k)))
            return bad(m, "%s: metadata.%s: a key that is empty, too long or holds control characters", kind, what);
        if (strlen(v) > KMS_MAX_FIELD || !kms_text_ok(v, strlen(v)))
            return bad(kyaml_value(m, i), "%s: metadata.%s.%.64s: longer than %d bytes or holds control characters",
                       kind, what, k, KMS_MAX_FIELD);
        meta->kv[used++] = xstrdup(k);
        meta->kv[used++] = xstrdup(v);
        (*count)++;
    }
    return 0;
}

static int parse_metadata(const struct kyaml_node *doc, const char *kind, char **name, char **ns, struct kms_meta *meta)
{
    const struct kyaml_node *md = kyaml_map_get(doc, "metadata");
    int r;

    if (kyaml_type(md) != KYAML_MAP)
        return bad(md ? md : doc, "%s: metadata.name is required", kind);
    r = opt_str(md, "name", "metadata.name", KMS_MAX_NAME, name);
    if (r < 0)
        return r;
    if (!**name)
        return bad(md, "%s: metadata.name is required", kind);
    if (!kms_text_ok(*name, strlen(*name)))
        return bad(kyaml_map_get(md, "name"), "%s: metadata.name holds control characters", kind);
    r = opt_str(md, "namespace", "metadata.namespace", KMS_MAX_FIELD, ns);
    if (r == 0)
        r = parse_meta_map(md, kind, "labels", meta, &meta->nlabels);
    if (r == 0)
        r = parse_meta_map(md, kind, "annotations", meta, &meta->nannotations);
    return r;
}

static void strs_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void kms_meta_clear(struct kms_meta *m)
{
    strs_free(m->kv, 2 * ((size_t)m->nlabels + m->nannotations));
    *m = (struct kms_meta){0};
}

static char **strs_copy(char *const *v, size_t n)
{
    char **c = n ? xcalloc(n, sizeof(*c)) : NULL;
    for (size_t i = 0; i < n; i++)
        c[i] = xstrdup(v[i]);
    return c;
}

static void meta_copy(struct kms_meta *dst, const struct kms_meta *m)
{
    *dst = *m;
    dst->kv = strs_copy(m->kv, 2 * ((size_t)m->nlabels + m->nannotations));
}

static bool strs_equal(char *const *a, char *const *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i], b[i]))
            return false;
    return true;
}

static bool meta_equal(const struct kms_meta *a, const struct kms_meta *b)
{
    return a->nlabels == b->nlabels && a->nannotations == b->nannotations &&
           strs_equal(a->kv, b->kv, 2 * ((size_t)a->nlabels + a->nannotations));
}

static void partition_clear(struct kms_partition *p)
{
    free(p->label);
    free(p->device_name);
    free(p->uuid);
    free(p->secret_name);
    free(p->secret_path);
}

char **kms_att_pcrs(struct kms_attestation *a)
{
    if (!a->pcr)
        a->pcr = xcalloc(KMS_PCR_COUNT, sizeof(*a->pcr));
    return a->pcr;
}

void kms_attestation_clear(struct kms_attestation *a)
{
    free(a->ek_pem);
    for (size_t i = 0; a->pcr && i < KMS_PCR_COUNT; i++)
        free(a->pcr[i]);
    free(a->pcr);
    free(a->enrolled_at);
    free(a->last_verified_at);
    *a = (struct kms_attestation){0};
}

void kms_volume_clear(struct kms_volume *v)
{
    for (size_t i = 0; i < v->nparts; i++)
        partition_clear(&v->parts[i]);
    free(v->parts);
    free(v->name);
    free(v->ns);
    free(v->tpm_hash);
    kms_meta_clear(&v->meta);
    kms_attestation_clear(&v->att);
    *v = (struct kms_volume){0};
}

void kms_volume_copy(struct kms_volume *dst, const struct kms_volume *v)
{
    *dst = *v;
    dst->name = xstrdup(v->name);
    dst->ns = xstrdup(v->ns);
    dst->tpm_hash = xstrdup(v->tpm_hash);
    meta_copy(&dst->meta, &v->meta);
    dst->parts = v->nparts ? xcalloc(v->nparts, sizeof(*dst->parts)) : NULL;
    for (size_t i = 0; i < v->nparts; i++) {
        const struct kms_partition *p = &v->parts[i];
        dst->parts[i] = (struct kms_partition){xstrdup(p->label),       xstrdup(p->device_name), xstrdup(p->uuid),
                                               xstrdup(p->secret_name), xstrdup(p->secret_path), p->has_secret};
    }
    dst->att.ek_pem = kms_dup_or_null(v->att.ek_pem);
    dst->att.pcr = NULL;
    for (size_t i = 0; v->att.pcr && i < KMS_PCR_COUNT; i++)
        kms_att_pcrs(&dst->att)[i] = kms_dup_or_null(v->att.pcr[i]);
    dst->att.enrolled_at = kms_dup_or_null(v->att.enrolled_at);
    dst->att.last_verified_at = kms_dup_or_null(v->att.last_verified_at);
}

#define volume_clear kms_volume_clear

static int parse_partition(const struct kyaml_node *n, const char *vname, size_t idx, struct kms_partition *p)
{
    static const char *const known[] = {"label", "deviceName", "uuid", "secret", NULL};
    static const char *const known_secret[] = {"name", "path", NULL};
    const struct kyaml_node *sec;
    char what[128];
    int r;

    snprintf(what, sizeof(what), "SealedVolume %.40s: spec.partitions[%zu]", vname, idx);
    if (kyaml_type(n) != KYAML_MAP)
        return bad(n, "%s: not a mapping", what);
    check_keys(n, what, known);
    if ((r = opt_str(n, "label", "partitions[].label", KMS_MAX_FIELD, &p->label)) < 0 ||
        (r = opt_str(n, "deviceName", "partitions[].deviceName", KMS_MAX_FIELD, &p->device_name)) < 0 ||
        (r = opt_str(n, "uuid", "partitions[].uuid", KMS_MAX_FIELD, &p->uuid)) < 0)
        return r;
    sec = kyaml_map_get(n, "secret");
    if (kyaml_type(sec) == KYAML_MAP) {
        p->has_secret = true;
        check_keys(sec, what, known_secret);
        if ((r = opt_str(sec, "name", "partitions[].secret.name", KMS_MAX_NAME, &p->secret_name)) < 0 ||
            (r = opt_str(sec, "path", "partitions[].secret.path", KMS_MAX_NAME, &p->secret_path)) < 0)
            return r;
    } else if (sec && kyaml_type(sec) != KYAML_NULL) {
        return bad(sec, "%s.secret: not a mapping", what);
    } else {
        p->secret_name = xstrdup("");
        p->secret_path = xstrdup("");
    }
    if (!*p->label && !*p->device_name && !*p->uuid && !quiet)
        log_warn("%s:%u:%u: %s: no label, deviceName or uuid: it matches no request", kyaml_source(n), kyaml_line(n),
                 kyaml_column(n), what);
    return 0;
}

static bool is_hex(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
            return false;
    return true;
}

/* spec.attestation: {ekPublicKey, pcrValues: {pcrs: {"<index>": "<hex>"}}, enrolledAt, lastVerifiedAt}. */
static int parse_attestation(const struct kyaml_node *n, const char *what, struct kms_attestation *a)
{
    static const char *const known[] = {"ekPublicKey", "pcrValues", "enrolledAt", "lastVerifiedAt", NULL};
    static const char *const known_pv[] = {"pcrs", NULL};
    const struct kyaml_node *pv, *pcrs;
    char w[128];
    int r;

    if (!n || kyaml_type(n) == KYAML_NULL)
        return 0;
    snprintf(w, sizeof(w), "%s.attestation", what);
    if (kyaml_type(n) != KYAML_MAP)
        return bad(n, "%s: not a mapping", w);
    a->present = true;
    check_keys(n, w, known);
    if ((r = opt_str(n, "ekPublicKey", "attestation.ekPublicKey", 4096, &a->ek_pem)) < 0 ||
        (r = opt_str(n, "enrolledAt", "attestation.enrolledAt", 64, &a->enrolled_at)) < 0 ||
        (r = opt_str(n, "lastVerifiedAt", "attestation.lastVerifiedAt", 64, &a->last_verified_at)) < 0)
        return r;
    pv = kyaml_map_get(n, "pcrValues");
    if (!pv || kyaml_type(pv) == KYAML_NULL)
        return 0;
    if (kyaml_type(pv) != KYAML_MAP)
        return bad(pv, "%s.pcrValues: not a mapping", w);
    check_keys(pv, w, known_pv);
    pcrs = kyaml_map_get(pv, "pcrs");
    if (!pcrs || kyaml_type(pcrs) == KYAML_NULL)
        return 0;
    if (kyaml_type(pcrs) != KYAML_MAP)
        return bad(pcrs, "%s.pcrValues.pcrs: not a mapping", w);
    a->has_pcrs = true;
    for (size_t i = 0; i < kyaml_count(pcrs); i++) {
        const char *k = kyaml_key(pcrs, i), *val = NULL;
        const struct kyaml_node *vn = kyaml_value(pcrs, i);
        unsigned idx = 0;

        if (!k || !*k || strlen(k) > 2 || (k[0] == '0' && k[1]) || !(k[0] >= '0' && k[0] <= '9') ||
            (k[1] && !(k[1] >= '0' && k[1] <= '9')) || (idx = (unsigned)atoi(k)) >= KMS_PCR_COUNT)
            return bad(vn, "%s.pcrValues.pcrs: key \"%.8s\" is not a PCR index 0..23", w, k ? k : "~");
        if (a->pcr_mask & (1u << idx))
            return bad(vn, "%s.pcrValues.pcrs: PCR %u given twice", w, idx);
        if (kyaml_type(vn) == KYAML_NULL)
            val = "";
        else if (kyaml_node_str(vn, "attestation.pcrValues.pcrs", &val) < 0)
            return bad(vn, "%s.pcrValues.pcrs.%u: not a string", w, idx);
        if (strlen(val) > KMS_PCR_HEX_MAX || !is_hex(val))
            return bad(vn, "%s.pcrValues.pcrs.%u: not a hex value (\"\" = learn at the next contact)", w, idx);
        a->pcr_mask |= 1u << idx;
        kms_att_pcrs(a)[idx] = xstrdup(val);
        for (char *c = a->pcr[idx]; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c - 'A' + 'a');
    }
    return 0;
}

static int parse_volume(const struct kyaml_node *doc, struct kms_volume *v)
{
    static const char *const known[] = {"TPMHash", "partitions", "quarantined", "attestation", NULL};
    const struct kyaml_node *spec, *parts, *hash;
    const char *h = NULL;
    char what[96];
    int r;

    r = parse_metadata(doc, "SealedVolume", &v->name, &v->ns, &v->meta);
    if (r < 0)
        return r;
    snprintf(what, sizeof(what), "SealedVolume %.40s: spec", v->name);
    spec = kyaml_map_get(doc, "spec");
    if (kyaml_type(spec) != KYAML_MAP)
        return bad(spec ? spec : doc, "%s.TPMHash is required", what);
    check_keys(spec, what, known);
    hash = kyaml_map_get(spec, "TPMHash");
    r = kyaml_node_str(hash, "spec.TPMHash", &h);
    if (r == -ENOENT)
        return bad(spec, "%s.TPMHash is required", what);
    if (r < 0)
        return r;
    if (!kms_hash_ok(h))
        return bad(hash, "%s.TPMHash: not 64 hex digits (the node's `tpm-hash`)", what);
    v->tpm_hash = xstrdup(h);
    for (char *c = v->tpm_hash; *c; c++)
        if (*c >= 'A' && *c <= 'F')
            *c = (char)(*c - 'A' + 'a');

    r = kyaml_node_bool(kyaml_map_get(spec, "quarantined"), "spec.quarantined", &v->quarantined);
    if (r == -ENOENT)
        v->quarantined = false;
    else if (r < 0)
        return r;

    r = parse_attestation(kyaml_map_get(spec, "attestation"), what, &v->att);
    if (r < 0)
        return r;

    parts = kyaml_map_get(spec, "partitions");
    if (parts && kyaml_type(parts) != KYAML_SEQ && kyaml_type(parts) != KYAML_NULL)
        return bad(parts, "%s.partitions: not a list", what);
    if (kyaml_count(parts) > KMS_MAX_PARTITIONS)
        return bad(parts, "%s.partitions: more than %d partitions", what, KMS_MAX_PARTITIONS);
    for (size_t i = 0; i < kyaml_count(parts); i++) {
        v->parts = grow(v->parts, v->nparts, sizeof(*v->parts));
        v->nparts++;
        r = parse_partition(kyaml_item(parts, i), v->name, i, &v->parts[i]);
        if (r < 0)
            return r;
    }
    v->line = kyaml_line(doc);
    return 0;
}

static void secret_obj_clear(struct kms_secret_obj *o)
{
    for (size_t i = 0; i < o->nkv; i++) {
        free(o->kv[i].key);
        secret_free(o->kv[i].value);
    }
    free(o->kv);
    free(o->name);
    free(o->ns);
    kms_meta_clear(&o->meta);
}

/* The secret text of a Secret is wiped from the tree once copied (kyaml_free does not wipe). */
static void wipe_scalar(const struct kyaml_node *n)
{
    const char *s = kyaml_scalar(n);
    if (s)
        secure_wipe((char *)s, strlen(s));
}

static void put_kv(struct kms_secret_obj *o, const char *key, struct secret *value)
{
    for (size_t i = 0; i < o->nkv; i++)
        if (!strcmp(o->kv[i].key, key)) {
            secret_free(o->kv[i].value); /* stringData wins over data */
            o->kv[i].value = value;
            return;
        }
    o->kv = grow(o->kv, o->nkv, sizeof(*o->kv));
    o->kv[o->nkv].key = xstrdup(key);
    o->kv[o->nkv++].value = value;
}

/* One value of data (base64) or stringData into *out. */
static int parse_secret_value(const struct kms_secret_obj *o, const char *field, bool base64, const char *key,
                              const struct kyaml_node *vn, struct secret **out)
{
    const char *text = kyaml_scalar(vn);
    size_t tlen = text ? strlen(text) : 0;
    _cleanup_secret_ struct secret *val = NULL;

    if (!key || !*key || strlen(key) > KMS_MAX_NAME)
        return bad(vn, "Secret %.40s: %s: a key must have 1 to %d bytes", o->name, field, KMS_MAX_NAME);
    if (kyaml_type(vn) != KYAML_SCALAR && kyaml_type(vn) != KYAML_NULL)
        return bad(vn, "Secret %.40s: %s.%.40s: not a string", o->name, field, key);
    if (tlen > (base64 ? 2 * KMS_MAX_VALUE : KMS_MAX_VALUE))
        return bad(vn, "Secret %.40s: %s.%.40s: value longer than %u bytes", o->name, field, key, KMS_MAX_VALUE);
    val = secret_new(tlen);
    if (base64) {
        /* Go's base64 (the API server's []byte decoding) skips \r and \n, so folded block
         * scalars decode too. */
        _cleanup_secret_ struct secret *clean = secret_new(tlen);
        uint8_t *dec = NULL;
        size_t dlen = 0;

        for (size_t j = 0; j < tlen; j++)
            if (text[j] != '\n' && text[j] != '\r')
                clean->data[clean->len++] = (uint8_t)text[j];
        if (base64_decode((const char *)clean->data, clean->len, BASE64_STD, &dec, &dlen) < 0)
            return bad(vn, "Secret %.40s: data.%.40s: not base64 (use stringData for plain text)", o->name, key);
        if (dlen <= tlen)
            memcpy(val->data, dec, dlen);
        secure_wipe(dec, dlen);
        free(dec);
        if (dlen > KMS_MAX_VALUE || dlen > tlen)
            return bad(vn, "Secret %.40s: data.%.40s: value longer than %u bytes", o->name, key, KMS_MAX_VALUE);
        val->len = dlen;
    } else {
        memcpy(val->data, text ? text : "", tlen);
        val->len = tlen;
    }
    if (o->nkv >= KMS_MAX_SECRET_KEYS && !kms_secret_get(o, key))
        return bad(vn, "Secret %.40s: more than %d keys", o->name, KMS_MAX_SECRET_KEYS);
    *out = TAKE_PTR(val);
    return 0;
}

/* data (base64 = true) or stringData of a Secret. Every value is wiped from the tree once read,
 * also after an error (kyaml_free does not wipe). */
static int parse_secret_map(const struct kyaml_node *doc, const char *field, bool base64, struct kms_secret_obj *o)
{
    const struct kyaml_node *m = kyaml_map_get(doc, field);
    int r = 0;

    if (!m || kyaml_type(m) == KYAML_NULL)
        return 0;
    if (kyaml_type(m) != KYAML_MAP)
        return bad(m, "Secret %.40s: %s: not a mapping", o->name, field);
    for (size_t i = 0; i < kyaml_count(m); i++) {
        const struct kyaml_node *vn = kyaml_value(m, i);
        struct secret *val = NULL;

        if (r >= 0) {
            r = parse_secret_value(o, field, base64, kyaml_key(m, i), vn, &val);
            if (r >= 0)
                put_kv(o, kyaml_key(m, i), val);
        }
        wipe_scalar(vn);
    }
    return r;
}

static int parse_secret(const struct kyaml_node *doc, struct kms_secret_obj *o)
{
    int r = parse_metadata(doc, "Secret", &o->name, &o->ns, &o->meta), r2;

    if (!o->name)
        o->name = xstrdup("?");
    /* Both maps are walked even after an error, so every value is wiped from the tree. */
    r2 = parse_secret_map(doc, "data", true, o);
    if (r >= 0)
        r = r2;
    r2 = parse_secret_map(doc, "stringData", false, o);
    if (r >= 0)
        r = r2;
    o->line = kyaml_line(doc);
    return r;
}

struct load {
    const char *name;
    struct kms_records *recs;
    size_t objects;
};

static int load_object(struct load *ld, const struct kyaml_node *doc, bool in_list);

static int load_list(struct load *ld, const struct kyaml_node *doc, const char *kind)
{
    const struct kyaml_node *items = kyaml_map_get(doc, "items");

    if (kyaml_type(items) == KYAML_NULL)
        return 0;
    if (kyaml_type(items) != KYAML_SEQ) {
        bad(items, "%s: items: not a list; skipped", kind);
        ld->recs->invalid++;
        return 0;
    }
    for (size_t i = 0; i < kyaml_count(items); i++) {
        int r = load_object(ld, kyaml_item(items, i), true);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Loads one object; only a bound overrun is returned as an error (it fails the whole file). */
static int load_object(struct load *ld, const struct kyaml_node *doc, bool in_list)
{
    const char *kind = NULL, *api = NULL;
    size_t klen;
    int r;

    if (kyaml_type(doc) == KYAML_NULL)
        return 0; /* an empty document, e.g. after a trailing --- */
    if (++ld->objects > KMS_MAX_DOCS)
        return log_error_errno(-EINVAL, "%s: more than %d objects in one file", ld->name, KMS_MAX_DOCS);
    if (kyaml_type(doc) != KYAML_MAP) {
        bad(doc, "a manifest must be a mapping with apiVersion and kind; skipped");
        ld->recs->invalid++;
        return 0;
    }
    if (kyaml_node_str(kyaml_map_get(doc, "kind"), "kind", &kind) < 0 ||
        kyaml_node_str(kyaml_map_get(doc, "apiVersion"), "apiVersion", &api) < 0) {
        bad(doc, "a manifest needs apiVersion and kind (strings); skipped");
        ld->recs->invalid++;
        return 0;
    }
    klen = strlen(kind);
    if (!in_list && klen >= 4 && !strcmp(kind + klen - 4, "List") && kyaml_map_get(doc, "items"))
        return load_list(ld, doc, kind);

    if (!strcmp(kind, "SealedVolume") && !strcmp(api, KMS_API_VERSION)) {
        struct kms_volume v = {0};
        struct kms_records *rc = ld->recs;
        r = parse_volume(doc, &v);
        if (r < 0) {
            volume_clear(&v);
            rc->invalid++;
            return 0;
        }
        rc->vols = grow(rc->vols, rc->nvols, sizeof(*rc->vols));
        v.file = ld->name;
        rc->vols[rc->nvols++] = v;
    } else if (!strcmp(kind, "Secret") && !strcmp(api, "v1")) {
        struct kms_secret_obj o = {0};
        struct kms_records *rc = ld->recs;
        r = parse_secret(doc, &o);
        if (r < 0) {
            secret_obj_clear(&o);
            rc->invalid++;
            return 0;
        }
        rc->secrets = grow(rc->secrets, rc->nsecrets, sizeof(*rc->secrets));
        o.file = ld->name;
        rc->secrets[rc->nsecrets++] = o;
    } else if (!strcmp(kind, "SealedVolume") || !strcmp(kind, "Secret")) {
        char q[80];
        bad(doc, "%s of apiVersion %s is not supported (want %s); skipped", kind, kyaml_quote(api, q, sizeof(q)),
            !strcmp(kind, "Secret") ? "v1" : KMS_API_VERSION);
        ld->recs->invalid++;
    } else {
        log_debug("%s:%u: ignoring kind %.60s", ld->name, kyaml_line(doc), kind);
    }
    return 0;
}

int kms_manifest_load(const char *buf, size_t len, const char *name, struct kms_records *recs)
{
    struct kyaml_node **docs = NULL;
    size_t ndocs = 0;
    struct load ld = {name, recs, 0};
    int r;

    *recs = (struct kms_records){0};
    r = kyaml_parse_all(buf, len, name, &docs, &ndocs);
    if (r < 0)
        return r;
    for (size_t i = 0; i < ndocs && r >= 0; i++)
        r = load_object(&ld, docs[i], false);
    kyaml_docs_free(docs, ndocs);
    if (r < 0)
        kms_records_clear(recs);
    return r;
}

int kms_manifest_load_quiet(const char *buf, size_t len, const char *name, struct kms_records *recs)
{
    int r;
    quiet = true;
    r = kms_manifest_load(buf, len, name, recs);
    quiet = false;
    return r;
}

void kms_records_clear(struct kms_records *r)
{
    for (size_t i = 0; i < r->nvols; i++) {
        if (r->arena) { /* the strings live in the arena */
            free(r->vols[i].parts);
            free(r->vols[i].att.pcr);
            free(r->vols[i].meta.kv);
            r->vols[i] = (struct kms_volume){0};
        } else {
            volume_clear(&r->vols[i]);
        }
    }
    for (size_t i = 0; i < r->nsecrets; i++) {
        if (r->arena) {
            free(r->secrets[i].kv);
            free(r->secrets[i].meta.kv);
            r->secrets[i] = (struct kms_secret_obj){0};
        } else {
            secret_obj_clear(&r->secrets[i]);
        }
    }
    if (r->arena) {
        secure_wipe(r->arena, r->arena_len); /* Secret values are in it */
        free(r->arena);
    }
    free(r->vols);
    free(r->secrets);
    *r = (struct kms_records){0};
}

/* Arena building: first a pass that only counts (a->base NULL), then one that moves. */
struct arena {
    char *base;
    size_t len;
};

static void *arena_take(struct arena *a, size_t n, size_t align)
{
    void *p;
    a->len = (a->len + align - 1) & ~(align - 1);
    p = a->base ? a->base + a->len : NULL;
    a->len += n;
    return p;
}

/* Moves the string *p into the arena (NULL stays NULL). */
static void arena_str(struct arena *a, char **p)
{
    size_t n;
    char *q;
    if (!*p)
        return;
    n = strlen(*p) + 1;
    q = arena_take(a, n, 1);
    if (q) {
        memcpy(q, *p, n);
        free(*p);
        *p = q;
    }
}

static void arena_secret(struct arena *a, struct secret **p)
{
    struct secret *s = arena_take(a, sizeof(**p), _Alignof(struct secret));
    uint8_t *d;
    if (!*p)
        return;
    d = arena_take(a, (*p)->len + 1, 1);
    if (s) {
        memcpy(d, (*p)->data, (*p)->len);
        d[(*p)->len] = 0;
        *s = (struct secret){.len = (*p)->len, .cap = (*p)->len, .data = d};
        secret_free(*p);
        *p = s;
    }
}

static void arena_meta(struct arena *a, struct kms_meta *m)
{
    for (size_t i = 0; i < 2 * ((size_t)m->nlabels + m->nannotations); i++)
        arena_str(a, &m->kv[i]);
}

static void arena_records(struct arena *a, struct kms_records *r)
{
    for (size_t i = 0; i < r->nvols; i++) {
        struct kms_volume *v = &r->vols[i];
        arena_str(a, &v->name);
        arena_str(a, &v->ns);
        arena_str(a, &v->tpm_hash);
        arena_meta(a, &v->meta);
        for (size_t j = 0; j < v->nparts; j++) {
            struct kms_partition *pt = &v->parts[j];
            arena_str(a, &pt->label);
            arena_str(a, &pt->device_name);
            arena_str(a, &pt->uuid);
            arena_str(a, &pt->secret_name);
            arena_str(a, &pt->secret_path);
        }
        arena_str(a, &v->att.ek_pem);
        for (size_t j = 0; v->att.pcr && j < KMS_PCR_COUNT; j++)
            arena_str(a, &v->att.pcr[j]);
        arena_str(a, &v->att.enrolled_at);
        arena_str(a, &v->att.last_verified_at);
    }
    for (size_t i = 0; i < r->nsecrets; i++) {
        struct kms_secret_obj *o = &r->secrets[i];
        arena_str(a, &o->name);
        arena_str(a, &o->ns);
        arena_meta(a, &o->meta);
        for (size_t j = 0; j < o->nkv; j++) {
            arena_str(a, &o->kv[j].key);
            arena_secret(a, &o->kv[j].value);
        }
    }
}

void kms_records_compact(struct kms_records *r)
{
    struct arena a = {0};

    if (r->arena || (!r->nvols && !r->nsecrets))
        return;
    arena_records(&a, r); /* counts */
    r->arena_len = a.len;
    r->arena = xmalloc(a.len ? a.len : 1);
    a = (struct arena){.base = r->arena};
    arena_records(&a, r); /* moves */
}

const struct kms_kv *kms_secret_get(const struct kms_secret_obj *o, const char *key)
{
    for (size_t i = 0; i < o->nkv; i++)
        if (!strcmp(o->kv[i].key, key))
            return &o->kv[i];
    return NULL;
}

static bool part_equal(const struct kms_partition *a, const struct kms_partition *b)
{
    return !strcmp(a->label, b->label) && !strcmp(a->device_name, b->device_name) && !strcmp(a->uuid, b->uuid) &&
           !strcmp(a->secret_name, b->secret_name) && !strcmp(a->secret_path, b->secret_path) &&
           a->has_secret == b->has_secret;
}

static bool volume_equal(const struct kms_volume *a, const struct kms_volume *b)
{
    if (strcmp(a->name, b->name) || strcmp(a->ns, b->ns) || strcmp(a->tpm_hash, b->tpm_hash) ||
        a->quarantined != b->quarantined || a->nparts != b->nparts || !meta_equal(&a->meta, &b->meta))
        return false;
    if (a->att.present != b->att.present || a->att.has_pcrs != b->att.has_pcrs || a->att.pcr_mask != b->att.pcr_mask ||
        strcmp(a->att.ek_pem ? a->att.ek_pem : "", b->att.ek_pem ? b->att.ek_pem : "") ||
        strcmp(a->att.enrolled_at ? a->att.enrolled_at : "", b->att.enrolled_at ? b->att.enrolled_at : "") ||
        strcmp(a->att.last_verified_at ? a->att.last_verified_at : "",
               b->att.last_verified_at ? b->att.last_verified_at : ""))
        return false;
    for (size_t i = 0; i < KMS_PCR_COUNT; i++)
        if (a->att.pcr_mask & (1u << i) && strcmp(a->att.pcr[i], b->att.pcr[i]))
            return false;
    for (size_t i = 0; i < a->nparts; i++)
        if (!part_equal(&a->parts[i], &b->parts[i]))
            return false;
    return true;
}

static bool secret_obj_equal(const struct kms_secret_obj *a, const struct kms_secret_obj *b)
{
    if (strcmp(a->name, b->name) || strcmp(a->ns, b->ns) || a->nkv != b->nkv || !meta_equal(&a->meta, &b->meta))
        return false;
    /* Key order is not meaning (data and stringData merge into one map). */
    for (size_t i = 0; i < a->nkv; i++) {
        const struct kms_kv *other = kms_secret_get(b, a->kv[i].key);
        const struct secret *x = a->kv[i].value, *y = other ? other->value : NULL;
        if (!y || x->len != y->len || !secure_equal(x->data, y->data, x->len))
            return false;
    }
    return true;
}

bool kms_records_equal(const struct kms_records *a, const struct kms_records *b)
{
    if (a->nvols != b->nvols || a->nsecrets != b->nsecrets || a->invalid != b->invalid)
        return false;
    for (size_t i = 0; i < a->nvols; i++)
        if (!volume_equal(&a->vols[i], &b->vols[i]))
            return false;
    for (size_t i = 0; i < a->nsecrets; i++)
        if (!secret_obj_equal(&a->secrets[i], &b->secrets[i]))
            return false;
    return true;
}
