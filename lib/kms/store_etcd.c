/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The `etcd` store backend: the same records and index as the dir backend, kept in memory from a
 * listing of the prefix and fed by a watch, so that a passphrase is released from memory without
 * any request to etcd (an election does not fail an unlock). Writes are transactions that are
 * safe to repeat (lib/etcd): create-if-absent for new objects, compare-and-swap on mod_revision
 * for rewrites. Layout under the prefix (default /kairos-kms/), one object per key, values JSON
 * manifests in the shape `kubectl get -o json` shows them:
 *   sealedvolumes/<name>             SealedVolume (keyserver.kairos.io/v1alpha1)
 *   secrets/<name>                   Secret (v1; data base64 as the API server keeps it)
 *   pending/<tpm hash>               PendingTPM (ours), a TPM refused by --enroll registered
 *   index/tpmhash/<hash>/<volume>    the SealedVolume's key: an index by TPM hash (a hint for
 *                                    tools; the KMS looks hashes up in its own index)
 * The policy code names objects as files of a DIR (sealedvolume-<name>.yaml, ...): such names
 * map one to one to the keys above. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "etcd.h"
#include "kms_internal.h"
#include "kyaml.h"
#include "tls.h"

#define WATCH_GRACE_MS 10000 /* /readyz stays 200 this long after the watch broke */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 10000
#define RESYNC_MS (5 * 60 * 1000) /* a new listing and watch this often */

struct kms_etcd_store {
    struct etcd *cli;
    pid_t cli_pid;          /* the process that made cli (a forked worker makes its own) */
    struct etcd_config cfg; /* what cli was made from (strings owned), for a worker's own client */
    char *prefix;           /* ends with '/' */
    char *endpoints;
    bool watching; /* a thread keeps the cache (the server), from kms_store_start on */
    bool running;  /* that thread runs (in this process) */
    pthread_t thread;
    atomic_bool stop;
    atomic_bool relist;    /* SIGHUP: a new listing and watch now */
    bool loaded;           /* a listing was applied */
    int64_t list_rev;      /* revision of the last listing: older events are in it already */
    int64_t watch_lost_ms; /* 0: the watch is up; else since when it is not */
    int64_t applied_rev;
    /* outcomes of our own writes, put into the cache at the next refresh (callers hold pointers
     * into the records until then, as with a dir store); create_revision 0 = deleted */
    struct etcd_kv *pend;
    size_t npend;
    /* Requests in flight from writers (the server's offload thread) that let go of the store's
     * lock while they wait for etcd: readers go on meanwhile, but nothing changes the records
     * (the writers hold pointers into them): the watch waits for io_done, the pending outcomes
     * wait for the next refresh. A writer's next refresh lets a waiting watch in first
     * (watch_done), so a stream of writes does not keep other challengers' changes out. */
    unsigned io_busy, watch_waiting;
    pthread_cond_t io_done, watch_done;
};

static void cfg_clear(struct etcd_config *c);

static const struct {
    const char *file, *dir;
} kinds[] = {{"sealedvolume-", "sealedvolumes/"}, {"secret-", "secrets/"}, {"pending-", "pending/"}};

/* "secret-x.yaml" -> "<prefix>secrets/x"; NULL when the name is not one of ours. */
static char *key_of(const struct kms_etcd_store *e, const char *name)
{
    size_t n = strlen(name);

    if (n <= 5 || strcmp(name + n - 5, ".yaml") || strchr(name, '/'))
        return NULL;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t fl = strlen(kinds[i].file);
        if (n > fl + 5 && !strncmp(name, kinds[i].file, fl)) {
            size_t len = strlen(e->prefix) + strlen(kinds[i].dir) + (n - fl - 5) + 1;
            char *k = xmalloc(len);
            snprintf(k, len, "%s%s%.*s", e->prefix, kinds[i].dir, (int)(n - fl - 5), name + fl);
            return k;
        }
    }
    return NULL;
}

/* The inverse: "<prefix>secrets/x" -> "secret-x.yaml"; NULL for keys outside the layout. */
static char *name_of(const struct kms_etcd_store *e, const char *key, size_t *kind)
{
    const char *rel = key + strlen(e->prefix);

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t dl = strlen(kinds[i].dir);
        if (!strncmp(rel, kinds[i].dir, dl) && rel[dl] && !strchr(rel + dl, '/')) {
            size_t len = strlen(kinds[i].file) + strlen(rel + dl) + 6;
            char *n = xmalloc(len);
            snprintf(n, len, "%s%s.yaml", kinds[i].file, rel + dl);
            *kind = i;
            return n;
        }
    }
    return NULL;
}

/* ---- JSON values ---- */
static void json_str(struct kms_buf *b, const char *s, size_t n)
{
    size_t start = 0;

    kms_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        kms_buf_add(b, s + start, i - start);
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof(esc), "\\%c", c);
        else
            snprintf(esc, sizeof(esc), "\\u%04x", c);
        kms_buf_puts(b, esc);
        start = i + 1;
    }
    kms_buf_add(b, s + start, n - start);
    kms_buf_add(b, "\"", 1);
}

static void json_kv(struct kms_buf *b, bool *first, const char *key, const char *value)
{
    kms_buf_puts(b, *first ? "" : ",");
    *first = false;
    json_str(b, key, strlen(key));
    kms_buf_puts(b, ":");
    json_str(b, value, strlen(value));
}

static void json_meta_map(struct kms_buf *b, const char *what, char *const *kv, size_t n)
{
    bool first = true;
    if (!n)
        return;
    kms_buf_printf(b, ",\"%s\":{", what);
    for (size_t i = 0; i < n; i++)
        json_kv(b, &first, kv[2 * i], kv[2 * i + 1]);
    kms_buf_puts(b, "}");
}

static void json_metadata(struct kms_buf *b, const char *name, const char *ns, const struct kms_meta *meta)
{
    bool first = true;
    kms_buf_puts(b, "\"metadata\":{");
    json_kv(b, &first, "name", name);
    if (ns && *ns)
        json_kv(b, &first, "namespace", ns);
    json_meta_map(b, "labels", meta->kv, meta->nlabels);
    json_meta_map(b, "annotations", kms_meta_annotations(meta), meta->nannotations);
    kms_buf_puts(b, "}");
}

static void json_volume(struct kms_buf *b, const struct kms_volume *v)
{
    bool first = true;

    kms_buf_puts(b, "{\"apiVersion\":\"" KMS_API_VERSION "\",\"kind\":\"SealedVolume\",");
    json_metadata(b, v->name, v->ns, &v->meta);
    kms_buf_puts(b, ",\"spec\":{");
    json_kv(b, &first, "TPMHash", v->tpm_hash);
    kms_buf_puts(b, ",\"partitions\":[");
    for (size_t i = 0; i < v->nparts; i++) {
        const struct kms_partition *p = &v->parts[i];
        bool f = true;
        kms_buf_puts(b, i ? ",{" : "{");
        if (*p->label)
            json_kv(b, &f, "label", p->label);
        if (*p->device_name)
            json_kv(b, &f, "deviceName", p->device_name);
        if (*p->uuid)
            json_kv(b, &f, "uuid", p->uuid);
        if (p->has_secret) {
            bool g = true;
            kms_buf_puts(b, f ? "\"secret\":{" : ",\"secret\":{");
            if (*p->secret_name)
                json_kv(b, &g, "name", p->secret_name);
            if (*p->secret_path)
                json_kv(b, &g, "path", p->secret_path);
            kms_buf_puts(b, "}");
        }
        kms_buf_puts(b, "}");
    }
    kms_buf_printf(b, "],\"quarantined\":%s", v->quarantined ? "true" : "false");
    if (v->att.present) {
        bool f = true;
        kms_buf_puts(b, ",\"attestation\":{");
        if (v->att.ek_pem)
            json_kv(b, &f, "ekPublicKey", v->att.ek_pem);
        if (v->att.has_pcrs) {
            bool g = true;
            kms_buf_puts(b, f ? "\"pcrValues\":{\"pcrs\":{" : ",\"pcrValues\":{\"pcrs\":{");
            f = false;
            for (unsigned i = 0; i < KMS_PCR_COUNT; i++)
                if (v->att.pcr_mask & (1u << i)) {
                    char idx[4];
                    snprintf(idx, sizeof(idx), "%u", i);
                    json_kv(b, &g, idx, v->att.pcr[i] ? v->att.pcr[i] : "");
                }
            kms_buf_puts(b, "}}");
        }
        if (v->att.enrolled_at && *v->att.enrolled_at)
            json_kv(b, &f, "enrolledAt", v->att.enrolled_at);
        if (v->att.last_verified_at && *v->att.last_verified_at)
            json_kv(b, &f, "lastVerifiedAt", v->att.last_verified_at);
        kms_buf_puts(b, "}");
    }
    kms_buf_puts(b, "}}");
}

static void json_secret(struct kms_buf *b, const struct kms_secret_obj *o)
{
    kms_buf_puts(b, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",");
    json_metadata(b, o->name, o->ns, &o->meta);
    kms_buf_puts(b, ",\"type\":\"Opaque\",\"data\":{");
    for (size_t i = 0; i < o->nkv; i++) {
        _cleanup_secret_ struct secret *enc =
            base64_encode_secret(o->kv[i].value->data, o->kv[i].value->len, BASE64_STD);
        kms_buf_puts(b, i ? "," : "");
        json_str(b, o->kv[i].key, strlen(o->kv[i].key));
        kms_buf_puts(b, ":");
        json_str(b, (const char *)enc->data, enc->len);
    }
    kms_buf_puts(b, "}}");
}

/* Any YAML tree (our PendingTPM) as JSON: scalars as strings. */
static void json_tree(struct kms_buf *b, const struct kyaml_node *n)
{
    switch (kyaml_type(n)) {
    case KYAML_MAP:
        kms_buf_puts(b, "{");
        for (size_t i = 0; i < kyaml_count(n); i++) {
            kms_buf_puts(b, i ? "," : "");
            json_str(b, kyaml_key(n, i), strlen(kyaml_key(n, i)));
            kms_buf_puts(b, ":");
            json_tree(b, kyaml_value(n, i));
        }
        kms_buf_puts(b, "}");
        break;
    case KYAML_SEQ:
        kms_buf_puts(b, "[");
        for (size_t i = 0; i < kyaml_count(n); i++) {
            kms_buf_puts(b, i ? "," : "");
            json_tree(b, kyaml_item(n, i));
        }
        kms_buf_puts(b, "]");
        break;
    case KYAML_SCALAR: json_str(b, kyaml_scalar(n), strlen(kyaml_scalar(n))); break;
    default: kms_buf_puts(b, "null"); break;
    }
}

/* The JSON of text; *vol (may be NULL) gets "hash/name" of a SealedVolume (malloc'd). */
static int json_of(const char *text, size_t len, const char *name, char **out, size_t *out_len, char **vol)
{
    struct kms_records recs = {0};
    struct kms_buf b = {0};
    int r = kms_manifest_load_quiet(text, len, name, &recs);

    if (r < 0)
        return r;
    if (recs.nvols == 1 && !recs.nsecrets) {
        json_volume(&b, &recs.vols[0]);
        if (vol) {
            size_t n = strlen(recs.vols[0].tpm_hash) + strlen(recs.vols[0].name) + 2;
            *vol = xmalloc(n);
            snprintf(*vol, n, "%s/%s", recs.vols[0].tpm_hash, recs.vols[0].name);
        }
    } else if (recs.nsecrets == 1 && !recs.nvols) {
        json_secret(&b, &recs.secrets[0]);
    } else if (!recs.nvols && !recs.nsecrets && !recs.invalid) {
        struct kyaml_node *root = NULL;
        const char *kind = NULL;
        if (kyaml_parse(text, len, name, &root) < 0 || kyaml_get_str(root, "kind", &kind) < 0 ||
            strcmp(kind, "PendingTPM")) {
            kyaml_free(root);
            kms_records_clear(&recs);
            return log_error_errno(-EINVAL, "%s: not a SealedVolume, Secret or PendingTPM", name);
        }
        json_tree(&b, root);
        kyaml_free(root);
    } else {
        kms_records_clear(&recs);
        return log_error_errno(-EINVAL, "%s: an etcd key holds exactly one object", name);
    }
    kms_records_clear(&recs);
    *out = b.p;
    *out_len = b.len;
    return 0;
}

int kms_etcd_json_of(const char *text, size_t len, const char *name, char **out, size_t *out_len)
{
    return json_of(text, len, name, out, out_len, NULL);
}

/* ---- the cache: s->files, one entry per key, named as a file ---- */
static void entry_free(struct kms_file *f)
{
    if (!f)
        return;
    kms_records_clear(&f->recs);
    free((char *)f->name);
    free(f->path);
    free(f);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(struct kms_file *const *)a)->name, (*(struct kms_file *const *)b)->name);
}

/* An entry for kv (NULL when the key is outside the layout). Invalid values are logged naming
 * the key and give an entry without records (a problem to list). */
static struct kms_file *entry_of(struct kms_etcd_store *e, const struct etcd_kv *kv)
{
    static const char *const expect[] = {"one SealedVolume", "one Secret", "a PendingTPM"};
    struct kms_records recs = {0};
    struct kms_file *f;
    size_t kind = 0;
    char *name = name_of(e, kv->key, &kind);

    if (!name) {
        if (strncmp(kv->key + strlen(e->prefix), "index/", 6))
            log_debug("%s: not a key of the KMS layout; ignored", kv->key);
        return NULL;
    }
    f = xcalloc(1, sizeof(*f));
    f->path = xstrdup(kv->key);
    f->name = name;
    f->rev = kv->mod_revision;
    f->size = (off_t)kv->value_len;
    if (kv->value_len > KMS_MAX_FILE_SIZE) {
        log_error("%s: value of %zu bytes is over %u; skipped", kv->key, kv->value_len, KMS_MAX_FILE_SIZE);
        f->problem = "not loaded: over the size limit";
        return f;
    }
    if (kind == 2) { /* pending: read when listed; only its shape is checked here */
        struct kyaml_node *root = NULL;
        const char *k = NULL;
        if (kyaml_parse((const char *)kv->value, kv->value_len, kv->key, &root) < 0 ||
            kyaml_get_str(root, "kind", &k) < 0 || strcmp(k, "PendingTPM")) {
            log_error("%s: not a PendingTPM; skipped", kv->key);
            f->problem = "not a PendingTPM";
        }
        kyaml_free(root);
        return f;
    }
    if (kms_manifest_load((const char *)kv->value, kv->value_len, f->path, &recs) < 0) {
        log_error("%s: not a valid manifest; skipped", kv->key);
        f->problem = "does not parse; nothing loaded";
        return f;
    }
    if ((kind == 0 && (recs.nvols != 1 || recs.nsecrets)) || (kind == 1 && (recs.nsecrets != 1 || recs.nvols))) {
        log_error("%s: holds %zu SealedVolume(s) and %zu Secret(s), not %s; skipped", kv->key, recs.nvols,
                  recs.nsecrets, expect[kind]);
        kms_records_clear(&recs);
        f->problem = "not the one object its key names; nothing loaded";
        return f;
    }
    f->problem = recs.invalid ? "some objects are invalid and were skipped (see the errors above)" : NULL;
    f->recs = recs;
    f->loaded = true;
    return f;
}

/* The entries of a listing, sorted by name; parsed without the store's lock. */
struct listing {
    struct kms_file **files;
    size_t n;
    int64_t revision;
};

static void listing_of(struct kms_etcd_store *e, const struct etcd_kvs *kvs, struct listing *l)
{
    l->files = xcalloc(kvs->n + 1, sizeof(*l->files));
    l->n = 0;
    l->revision = kvs->revision;
    for (size_t i = 0; i < kvs->n; i++) {
        struct kms_file *f = entry_of(e, &kvs->kv[i]);
        if (f)
            l->files[l->n++] = f;
    }
    qsort(l->files, l->n, sizeof(*l->files), cmp_entry);
}

/* Installs a listing as the cache (lock held); l is consumed. */
static void cache_replace(struct kms_store *s, struct listing *l)
{
    struct kms_file **files = l->files;
    size_t n = l->n;

    for (size_t i = 0; i < s->nfiles; i++)
        entry_free(s->files[i]);
    free(s->files);
    s->files = files;
    s->nfiles = n;
    s->etcd->list_rev = l->revision;
    s->etcd->applied_rev = l->revision;
    s->etcd->loaded = true;
    s->scanned = true;
    s->last_refresh = 0;
    kms_store_build_index(s);
    *l = (struct listing){0};
}

static ssize_t entry_find(struct kms_store *s, const char *name, bool *found)
{
    size_t lo = 0, hi = s->nfiles;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->files[mid]->name, name);
        if (!c) {
            *found = true;
            return (ssize_t)mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return (ssize_t)lo;
}

/* kv as the cache's entry for its key (lock held), unless the entry is newer already (an event
 * the listing or our own write brought first). True when the cache changed. */
static bool cache_put(struct kms_store *s, const struct etcd_kv *kv)
{
    struct kms_etcd_store *e = s->etcd;
    struct kms_file *f;
    size_t kind;
    char *name = name_of(e, kv->key, &kind);
    bool found;
    ssize_t at;

    if (kv->mod_revision > e->applied_rev)
        e->applied_rev = kv->mod_revision;
    if (!name)
        return false;
    at = entry_find(s, name, &found);
    free(name);
    if (found && s->files[at]->rev >= kv->mod_revision)
        return false;
    f = entry_of(e, kv);
    if (!f)
        return false;
    if (found) {
        entry_free(s->files[at]);
        s->files[at] = f;
        return true;
    }
    {
        struct kms_file **nf = xcalloc(s->nfiles + 2, sizeof(*nf));
        memcpy(nf, s->files, (size_t)at * sizeof(*nf));
        nf[at] = f;
        memcpy(nf + at + 1, s->files + at, (s->nfiles - (size_t)at) * sizeof(*nf));
        free(s->files);
        s->files = nf;
        s->nfiles++;
    }
    return true;
}

static bool cache_del(struct kms_store *s, const char *key, int64_t rev)
{
    struct kms_etcd_store *e = s->etcd;
    size_t kind;
    char *name = name_of(e, key, &kind);
    bool found;
    ssize_t at;

    if (rev > e->applied_rev)
        e->applied_rev = rev;
    if (!name)
        return false;
    at = entry_find(s, name, &found);
    free(name);
    if (!found || (rev && s->files[at]->rev > rev))
        return false;
    entry_free(s->files[at]);
    memmove(s->files + at, s->files + at + 1, (s->nfiles - (size_t)at - 1) * sizeof(*s->files));
    s->nfiles--;
    return true;
}

/* Remembers the outcome of a write for the next refresh (lock held). */
static void pend_add(struct kms_etcd_store *e, const char *key, const void *value, size_t len, int64_t rev,
                     bool deleted)
{
    struct etcd_kv *kv;

    e->pend = realloc(e->pend, (e->npend + 1) * sizeof(*e->pend));
    if (!e->pend)
        abort_oom();
    kv = &e->pend[e->npend++];
    *kv = (struct etcd_kv){.key = xstrdup(key), .mod_revision = rev, .create_revision = deleted ? 0 : 1};
    kv->value = xmalloc(len + 1);
    memcpy(kv->value, value, len);
    kv->value[len] = 0;
    kv->value_len = len;
}

static void pend_apply(struct kms_store *s)
{
    struct kms_etcd_store *e = s->etcd;
    bool changed = false;

    if (e->io_busy)
        return; /* a writer waiting for etcd holds pointers into the records */

    for (size_t i = 0; i < e->npend; i++) {
        const struct etcd_kv *kv = &e->pend[i];
        changed |= kv->create_revision ? cache_put(s, kv) : cache_del(s, kv->key, 0);
        etcd_kv_clear(&e->pend[i]);
    }
    free(e->pend);
    e->pend = NULL;
    e->npend = 0;
    if (changed)
        kms_store_build_index(s);
}

/* The watch thread, before it changes the records: the lock, once no writer waits for etcd. */
static void lock_for_change(struct kms_store *s)
{
    pthread_mutex_lock(&s->lock);
    s->etcd->watch_waiting++;
    while (s->etcd->io_busy)
        pthread_cond_wait(&s->etcd->io_done, &s->lock);
    s->etcd->watch_waiting--;
}

static void unlock_after_change(struct kms_store *s)
{
    pthread_cond_broadcast(&s->etcd->watch_done);
    pthread_mutex_unlock(&s->lock);
}

/* One watch event (lock held); true when the cache changed. */
static bool cache_apply(struct kms_store *s, const struct etcd_event *ev)
{
    if (ev->kv.mod_revision <= s->etcd->list_rev)
        return false; /* the listing has it already */
    if (ev->type == ETCD_EVENT_DELETE)
        return cache_del(s, ev->kv.key, ev->kv.mod_revision);
    return cache_put(s, &ev->kv);
}

/* A listing (linearizable; a serializable one from the member reached when there is no quorum,
 * so that a KMS can start while etcd elects). No lock needed: only the client is used. */
static int list_prefix(struct kms_etcd_store *e, bool allow_stale, struct etcd_kvs *kvs)
{
    int r = etcd_list(e->cli, e->prefix, 0, ETCD_LINEARIZABLE, kvs);

    if (r < 0 && allow_stale && r != -EACCES) {
        etcd_kvs_clear(kvs);
        r = etcd_list(e->cli, e->prefix, 0, ETCD_SERIALIZABLE, kvs);
        if (r == 0)
            log_warn("etcd %s: no quorum; loaded %s from one member's (serializable) view", e->endpoints, e->prefix);
    }
    if (r < 0)
        etcd_kvs_clear(kvs);
    return r;
}

/* The same, into the cache (lock held: commands, which have no watch thread). */
static int relist_locked(struct kms_store *s, bool allow_stale)
{
    struct etcd_kvs kvs = {0};
    struct listing l;
    int r = list_prefix(s->etcd, allow_stale, &kvs);

    if (r < 0) {
        s->reload_errors++;
        return r;
    }
    listing_of(s->etcd, &kvs, &l);
    etcd_kvs_clear(&kvs);
    cache_replace(s, &l);
    return 0;
}

static void sleep_unless_stopped(struct kms_etcd_store *e, int ms)
{
    for (int i = 0; i < ms && !atomic_load(&e->stop); i += 100)
        usleep(100 * 1000);
}

static void *watch_main(void *arg)
{
    struct kms_store *s = arg;
    struct kms_etcd_store *e = s->etcd;
    struct etcd_watch *w = NULL;
    int backoff = BACKOFF_MIN_MS, r;
    int64_t synced_ms = 0;
    bool told = false, resync = false;

    while (!atomic_load(&e->stop)) {
        struct etcd_watch_batch batch = {0};
        bool changed = false;

        if (!w) {
            struct etcd_kvs kvs = {0};
            struct listing l = {0};
            int64_t from;
            bool need, loaded;

            pthread_mutex_lock(&s->lock);
            loaded = e->loaded;
            need = !loaded || e->watch_lost_ms || resync;
            pthread_mutex_unlock(&s->lock);
            /* listed and parsed without the lock: the cache keeps answering meanwhile */
            r = need ? list_prefix(e, !loaded, &kvs) : 0;
            if (need && r == 0)
                listing_of(e, &kvs, &l);
            lock_for_change(s);
            if (need && r == 0)
                cache_replace(s, &l);
            else if (r < 0)
                s->reload_errors++;
            from = e->applied_rev + 1;
            if (r < 0 && !e->watch_lost_ms)
                e->watch_lost_ms = now_ms();
            unlock_after_change(s);
            etcd_kvs_clear(&kvs);
            if (r < 0) {
                if (!told)
                    log_error("etcd %s: cannot load %s (%s); retrying with backoff, /readyz says 503 meanwhile",
                              e->endpoints, e->prefix, strerror(-r));
                told = true;
                sleep_unless_stopped(e, backoff);
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            w = NULL;
            r = etcd_watch_open(e->cli, e->prefix, from, ETCD_WATCH_PREFIX, &w);
            if (r < 0) {
                etcd_watch_free(w); /* set with -ESTALE */
                w = NULL;
                pthread_mutex_lock(&s->lock);
                if (!e->watch_lost_ms)
                    e->watch_lost_ms = now_ms(); /* the next pass lists again */
                pthread_mutex_unlock(&s->lock);
                sleep_unless_stopped(e, backoff);
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            pthread_mutex_lock(&s->lock);
            if (told || e->watch_lost_ms)
                log_info("etcd %s: %s loaded (%zu SealedVolumes, %zu Secrets) and watched", e->endpoints, e->prefix,
                         s->nvols, s->nsecrets);
            e->watch_lost_ms = 0;
            pthread_mutex_unlock(&s->lock);
            told = false;
            resync = false;
            synced_ms = now_ms();
            backoff = BACKOFF_MIN_MS;
        }
        if (atomic_exchange(&e->relist, false)) {
            log_info("etcd %s: listing %s again (SIGHUP)", e->endpoints, e->prefix);
            synced_ms = 0;
        }
        if (now_ms() - synced_ms > RESYNC_MS) {
            /* Now and then a full listing and a new watch: a member cut off without its TCP
             * connection breaking would otherwise keep the watch silent. */
            etcd_watch_free(w);
            w = NULL;
            resync = true;
            continue;
        }
        r = etcd_watch_next(w, 1000, &batch);
        if (r == -ETIME && etcd_watch_connected(w)) {
            if (e->watch_lost_ms) {
                pthread_mutex_lock(&s->lock);
                log_info("etcd %s: watching %s again", e->endpoints, e->prefix);
                e->watch_lost_ms = 0;
                pthread_mutex_unlock(&s->lock);
            }
            backoff = BACKOFF_MIN_MS;
            continue;
        }
        if (r == -ETIME) {
            /* no endpoint took the watch: the cache keeps serving, /readyz turns 503 after the
             * grace; tried again with backoff (each attempt is logged by lib/etcd) */
            pthread_mutex_lock(&s->lock);
            if (!e->watch_lost_ms)
                e->watch_lost_ms = now_ms();
            pthread_mutex_unlock(&s->lock);
            sleep_unless_stopped(e, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        if (r < 0) {
            pthread_mutex_lock(&s->lock);
            if (!e->watch_lost_ms)
                e->watch_lost_ms = now_ms();
            pthread_mutex_unlock(&s->lock);
            if (r == -ESTALE || r == -E2BIG || r == -EACCES) {
                /* history gone (or refused): list again, watch from there */
                etcd_watch_free(w);
                w = NULL;
                if (r == -EACCES)
                    sleep_unless_stopped(e, BACKOFF_MAX_MS);
            }
            continue;
        }
        lock_for_change(s);
        /* What is waiting already is applied too before the index is rebuilt once (an import
         * of many objects arrives as many messages). */
        for (int more = 0; r == 0 && more < 1000; more++) {
            for (size_t i = 0; i < batch.n; i++)
                changed |= cache_apply(s, &batch.ev[i]);
            etcd_watch_batch_clear(&batch);
            r = etcd_watch_next(w, 0, &batch);
        }
        if (changed)
            kms_store_build_index(s);
        if (e->watch_lost_ms)
            log_info("etcd %s: watching %s again", e->endpoints, e->prefix);
        e->watch_lost_ms = 0;
        unlock_after_change(s);
        etcd_watch_batch_clear(&batch);
        backoff = BACKOFF_MIN_MS;
        if (r == -ESTALE || r == -E2BIG) {
            pthread_mutex_lock(&s->lock);
            e->watch_lost_ms = now_ms(); /* the next pass lists again */
            pthread_mutex_unlock(&s->lock);
            etcd_watch_free(w);
            w = NULL;
        }
    }
    etcd_watch_free(w);
    return NULL;
}

int kms_etcd_refresh_locked(struct kms_store *s, bool force)
{
    /* A watch waiting for writers to be out of etcd goes first (the callers hold no pointers
     * into the records across a refresh). */
    while (s->etcd->watch_waiting && !s->etcd->io_busy)
        pthread_cond_wait(&s->etcd->watch_done, &s->lock);
    pend_apply(s);
    if (!s->etcd->loaded)
        return -EAGAIN;
    /* The server's cache follows the watch, and its own writes are applied to it at once (with
     * what etcd holds when a write lost a race); a view late by the watch's latency is safe,
     * since writes are transactions: a stale one fails, never overwrites. A command lists. */
    if (!force || s->etcd->watching)
        return 0;
    return relist_locked(s, false) < 0 ? -EIO : 1;
}

int kms_etcd_refresh(struct kms_store *s, bool force)
{
    int r = 0;
    if (s->etcd->watching) {
        if (force && s->etcd->running)
            atomic_store(&s->etcd->relist, true); /* the thread lists again within a second */
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    r = relist_locked(s, false);
    pthread_mutex_unlock(&s->lock);
    return r;
}

bool kms_etcd_ready(struct kms_store *s)
{
    bool ok;
    pthread_mutex_lock(&s->lock);
    ok = s->etcd->loaded && (!s->etcd->watch_lost_ms || now_ms() - s->etcd->watch_lost_ms < WATCH_GRACE_MS);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void kms_etcd_close(struct kms_store *s)
{
    struct kms_etcd_store *e = s->etcd;
    if (!e)
        return;
    if (e->running) {
        atomic_store(&e->stop, true);
        pthread_join(e->thread, NULL);
    }
    for (size_t i = 0; i < e->npend; i++)
        etcd_kv_clear(&e->pend[i]);
    free(e->pend);
    /* The entries' names are their own allocation (a dir store's point into the path). */
    for (size_t i = 0; i < s->nfiles; i++)
        entry_free(s->files[i]);
    free(s->files);
    s->files = NULL;
    s->nfiles = 0;
    etcd_free(e->cli);
    pthread_cond_destroy(&e->io_done);
    pthread_cond_destroy(&e->watch_done);
    cfg_clear(&e->cfg);
    free(e->prefix);
    free(e->endpoints);
    free(e);
    s->etcd = NULL;
}

static void cfg_copy(struct etcd_config *to, const struct etcd_config *from)
{
    *to = *from;
    to->endpoints = kms_dup_or_null(from->endpoints);
    to->ca_file = kms_dup_or_null(from->ca_file);
    to->cert_file = kms_dup_or_null(from->cert_file);
    to->key_file = kms_dup_or_null(from->key_file);
    to->user = kms_dup_or_null(from->user);
    to->password_file = kms_dup_or_null(from->password_file);
}

static void cfg_clear(struct etcd_config *c)
{
    free((char *)c->endpoints);
    free((char *)c->ca_file);
    free((char *)c->cert_file);
    free((char *)c->key_file);
    free((char *)c->user);
    free((char *)c->password_file);
    *c = (struct etcd_config){0};
}

int kms_etcd_start(struct kms_store *s)
{
    struct kms_etcd_store *e = s->etcd;
    sigset_t all, was;
    int r;

    if (!e->watching || e->running)
        return 0;
    if (e->cli_pid != getpid()) {
        /* A forked worker: the parent's client made no connection yet (no call is made before
         * the start), but its TLS configuration, token slot and the process's random generator
         * are copies of the parent's. Dropped; this worker makes its own from the same options. */
        etcd_free(e->cli);
        e->cli = NULL;
        if (ktls_after_fork() < 0)
            return -EIO;
        r = etcd_new(&e->cfg, &e->cli);
        if (r < 0)
            return log_error_errno(r, "etcd %s: cannot make this worker's client", e->endpoints);
        e->cli_pid = getpid();
    }
    /* The thread blocks every signal: SIGTERM and SIGHUP are the event loop's (its signalfd),
     * never this thread's, whose default action would end the process without a drain. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &was);
    r = pthread_create(&e->thread, NULL, watch_main, s);
    pthread_sigmask(SIG_SETMASK, &was, NULL);
    if (r != 0)
        return log_error_errno(-EAGAIN, "cannot start the etcd watch thread");
    e->running = true;
    return 0;
}

/* ---- object operations ---- */
/* The server calls these with the store's lock held; it is let go while etcd answers (an
 * election can take seconds), so that passphrases are still released from the cache meanwhile.
 * Commands (no watch thread, nobody else reading) keep it. */
static void io_begin(struct kms_store *s)
{
    if (!s->etcd->watching)
        return;
    s->etcd->io_busy++;
    pthread_mutex_unlock(&s->lock);
}

static void io_end(struct kms_store *s)
{
    if (!s->etcd->watching)
        return;
    pthread_mutex_lock(&s->lock);
    if (--s->etcd->io_busy == 0)
        pthread_cond_broadcast(&s->etcd->io_done);
}

int kms_etcd_obj_read(struct kms_store *s, const char *name, char **out, size_t *len, struct kms_obj_ver *ver)
{
    _cleanup_free_ char *key = key_of(s->etcd, name);
    struct etcd_kv kv = {0};
    int r;

    if (!key)
        return log_error_errno(-EINVAL, "%s: not an object name of the etcd layout", name);
    io_begin(s);
    r = etcd_get(s->etcd->cli, key, 0, ETCD_LINEARIZABLE, &kv, NULL);
    io_end(s);
    if (r < 0) {
        etcd_kv_clear(&kv);
        return r;
    }
    if (kv.value_len > KMS_MAX_FILE_SIZE) {
        etcd_kv_clear(&kv);
        return log_error_errno(-EFBIG, "%s: larger than %u bytes; not loaded", key, KMS_MAX_FILE_SIZE);
    }
    *out = xmalloc(kv.value_len + 1);
    memcpy(*out, kv.value, kv.value_len);
    (*out)[kv.value_len] = '\0';
    *len = kv.value_len;
    ver->rev = kv.mod_revision;
    etcd_kv_clear(&kv);
    return 0;
}

int kms_etcd_obj_write(struct kms_store *s, const char *name, const void *buf, size_t len, bool replace,
                       const struct kms_obj_ver *expect)
{
    _cleanup_free_ char *key = key_of(s->etcd, name), *vol = NULL, *ik = NULL;
    struct etcd_kv cur = {0};
    struct etcd_op idx = {.type = ETCD_OP_PUT};
    size_t nidx = 0;
    char *json = NULL;
    size_t jlen = 0;
    int64_t rev = 0;
    int r;

    if (!key)
        return log_error_errno(-EINVAL, "%s: not an object name of the etcd layout", name);
    r = json_of(buf, len, key, &json, &jlen, &vol);
    if (r < 0)
        return r;
    if (vol) {
        /* A SealedVolume's index entry (its key, under its TPM hash), in the same transaction:
         * it is derived from the value, so a repetition or an identical write put it too. */
        size_t n = strlen(s->etcd->prefix) + strlen(vol) + 16;
        ik = xmalloc(n);
        snprintf(ik, n, "%sindex/tpmhash/%s", s->etcd->prefix, vol);
        idx.key = ik;
        idx.value = key;
        idx.value_len = strlen(key);
        nidx = 1;
    }
    io_begin(s);
    if (!replace) {
        r = etcd_create_with(s->etcd->cli, key, json, jlen, 0, &idx, nidx, &cur, &rev);
    } else if (expect && expect->rev) {
        r = etcd_cas_with(s->etcd->cli, key, expect->rev, json, jlen, 0, &idx, nidx, &cur, &rev);
    } else {
        r = etcd_put_with(s->etcd->cli, key, json, jlen, 0, &idx, nidx, &rev);
    }
    io_end(s);
    /* The cache sees the outcome at the next refresh: ours, or what won. */
    if (r == 0)
        pend_add(s->etcd, key, json, jlen, rev, false);
    else if ((r == -EEXIST || r == -ESTALE) && cur.key)
        pend_add(s->etcd, key, cur.value ? (const char *)cur.value : "", cur.value_len, cur.mod_revision,
                 !cur.create_revision);
    etcd_kv_clear(&cur);
    if (r == -ESTALE)
        r = -EAGAIN;
    secure_wipe(json, jlen);
    free(json);
    return r;
}

int kms_etcd_obj_remove(struct kms_store *s, const char *name, const struct kms_obj_ver *expect)
{
    _cleanup_free_ char *key = key_of(s->etcd, name);
    int r;

    if (!key)
        return log_error_errno(-EINVAL, "%s: not an object name of the etcd layout", name);
    io_begin(s);
    r = expect && expect->rev ? etcd_cas_delete(s->etcd->cli, key, expect->rev, NULL)
                              : etcd_delete(s->etcd->cli, key, false, NULL, NULL);
    io_end(s);
    if (r == 0)
        pend_add(s->etcd, key, "", 0, 0, true);
    return r == -ESTALE ? -EAGAIN : r;
}

int kms_etcd_fetch_secret(struct kms_store *s, const char *name)
{
    _cleanup_free_ char *fname = kms_file_name("secret", name, 0), *key = NULL, *text = NULL;
    struct kms_obj_ver ver;
    size_t len = 0;
    int r;

    r = kms_obj_read(s, fname, &text, &len, &ver);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    key = key_of(s->etcd, fname);
    if (key)
        pend_add(s->etcd, key, text, len, ver.rev, false);
    secure_wipe(text, len);
    (void)kms_etcd_refresh_locked(s, false);
    return key ? 1 : 0;
}

char *kms_etcd_where(struct kms_store *s, const char *name)
{
    char *key = key_of(s->etcd, name), *rel;

    if (!key)
        return xstrdup(name);
    rel = xstrdup(key + strlen(s->etcd->prefix));
    free(key);
    return rel;
}

/* ---- opening ---- */
int kms_store_open_etcd(const struct kms_etcd_options *eo, const struct kms_store_options *opt, struct kms_store **out)
{
    struct etcd_config cfg = {.endpoints = eo->endpoints,
                              .ca_file = eo->ca_file,
                              .cert_file = eo->cert_file,
                              .key_file = eo->key_file,
                              .user = eo->user,
                              .password_file = eo->password_file,
                              .deadline_ms = eo->deadline_ms};
    const char *prefix = eo->prefix && *eo->prefix ? eo->prefix : KMS_ETCD_DEFAULT_PREFIX;
    struct kms_etcd_store *e;
    struct kms_store *s;
    size_t plen = strlen(prefix);
    int r;

    if (prefix[0] != '/' || plen > 200 || !kms_text_ok(prefix, plen) || strstr(prefix, "//"))
        return log_error_errno(-EINVAL, "--etcd-prefix %s: expected a key path such as /kairos-kms/", prefix);
    e = xcalloc(1, sizeof(*e));
    e->endpoints = xstrdup(eo->endpoints);
    e->prefix = xmalloc(plen + 2);
    snprintf(e->prefix, plen + 2, "%s%s", prefix, prefix[plen - 1] == '/' ? "" : "/");
    r = etcd_new(&cfg, &e->cli);
    e->cli_pid = getpid();
    if (r < 0) {
        free(e->endpoints);
        free(e->prefix);
        free(e);
        return r;
    }
    s = xcalloc(1, sizeof(*s));
    s->etcd = e;
    s->dirfd = -1;
    s->dir = xmalloc(strlen(e->prefix) + 8);
    snprintf(s->dir, strlen(e->prefix) + 8, "etcd:%.*s", (int)strlen(e->prefix) - 1, e->prefix);
    s->audit = opt ? opt->audit : NULL;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&e->io_done, NULL);
    pthread_cond_init(&e->watch_done, NULL);
    s->vols = xcalloc(1, sizeof(*s->vols));
    s->by_hash = xcalloc(1, sizeof(*s->by_hash));
    s->secrets = xcalloc(1, sizeof(*s->secrets));
    if (eo->watch) {
        /* The server: loads and follows in a thread from kms_store_start on, in each worker
         * process (nothing connects before the workers are forked). */
        e->watching = true;
        cfg_copy(&e->cfg, &cfg);
        *out = s;
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    r = relist_locked(s, false);
    pthread_mutex_unlock(&s->lock);
    if (r < 0) {
        log_error("etcd %s: cannot load %s: %s", e->endpoints, e->prefix,
                  r == -EACCES ? "authentication or permission refused (check --etcd-user and its password file)"
                               : strerror(-r));
        kms_store_free(s);
        return r;
    }
    *out = s;
    return 0;
}

/* ---- backups: a DIR of manifests in, a DIR of manifests out ---- */
static int import_one(struct kms_store *s, const char *prefix, const char *name, struct kms_buf *b, size_t *n)
{
    _cleanup_free_ char *fname = kms_file_name(prefix, name, 0);
    int r = kms_obj_write(s, fname, b->p, b->len, false, NULL);

    if (r == -EEXIST)
        return log_error_errno(r, "%s %s exists in etcd with another content; not overwritten", prefix, name);
    if (r == 0)
        (*n)++;
    return r;
}

int kms_store_import_dir(struct kms_store *s, const char *dir)
{
    struct kms_store_options so = {.poll_interval_ms = -1};
    _cleanup_kms_store_ struct kms_store *d = NULL;
    size_t nv = 0, ns = 0, np = 0, failed = 0;
    int r;

    if (!s->etcd)
        return log_error_errno(-EINVAL, "import needs an etcd store");
    r = kms_store_open_dir(dir, &so, &d);
    if (r < 0)
        return r;
    for (size_t i = 0; i < d->nvols; i++) {
        struct kms_buf b = {0};
        if (d->vols[i]->dup) {
            log_error("SealedVolume %s is defined twice in %s (%s:%u, %s:%u); not imported", d->vols[i]->name, dir,
                      d->vols[i]->file, d->vols[i]->line, d->vols[i]->dup->file, d->vols[i]->dup->line);
            failed++;
            continue;
        }
        kms_emit_volume(&b, d->vols[i]);
        failed += import_one(s, "sealedvolume", d->vols[i]->name, &b, &nv) < 0;
        kms_buf_free(&b);
    }
    for (size_t i = 0; i < d->nsecrets; i++) {
        struct kms_buf b = {0};
        const struct kms_secret_obj *o = d->secrets[i];
        if (o->dup) {
            log_error("Secret %s is defined twice in %s (%s:%u, %s:%u); not imported", o->name, dir, o->file, o->line,
                      o->dup->file, o->dup->line);
            failed++;
            continue;
        }
        kms_emit_secret(&b, NULL, o->name, o->ns, &o->meta, o->kv, o->nkv);
        failed += import_one(s, "secret", o->name, &b, &ns) < 0;
        kms_buf_free(&b);
    }
    for (size_t i = 0; i < d->nfiles; i++) {
        const struct kms_file *f = d->files[i];
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct stat st;
        if (strncmp(f->name, "pending-", 8)) {
            if (f->problem) {
                log_error("%s: %s; not imported", f->path, f->problem);
                failed++;
            }
            continue;
        }
        if (kms_dir_read(d->dirfd, d->dir, f->name, &text, &len, &st) < 0 ||
            kms_obj_write(s, f->name, text, len, false, NULL) < 0) {
            log_error("%s: pending TPM not imported", f->path);
            failed++;
        } else {
            np++;
        }
    }
    log_info("imported %s into etcd %s%s: %zu SealedVolume(s), %zu Secret(s), %zu pending TPM(s)%s", dir,
             s->etcd->endpoints, s->etcd->prefix, nv, ns, np, failed ? "; some objects were not (see above)" : "");
    return failed ? -EIO : 0;
}

int kms_store_export_dir(struct kms_store *s, const char *dir)
{
    struct kms_store_options so = {.create = true, .poll_interval_ms = -1};
    _cleanup_kms_store_ struct kms_store *d = NULL;
    size_t n = 0, failed = 0;
    int r;

    if (!s->etcd)
        return log_error_errno(-EINVAL, "export needs an etcd store");
    r = kms_store_open_dir(dir, &so, &d);
    if (r < 0)
        return r;
    if (d->nfiles)
        return log_error_errno(-EEXIST, "%s: holds manifests already; export into a new or empty directory", dir);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct kms_file *f = s->files[i];
        struct kms_buf b = {0};
        _cleanup_free_ char *fname = NULL;
        char *text = NULL, hash[65];
        size_t len = 0;
        struct kms_obj_ver ver;

        /* File names from the objects' names (sanitized as register does), not from keys */
        if (!strncmp(f->name, "pending-", 8) && strlen(f->name) == 8 + 64 + 5 &&
            (snprintf(hash, sizeof(hash), "%.64s", f->name + 8), kms_hash_ok(hash))) {
            if (kms_etcd_obj_read(s, f->name, &text, &len, &ver) == 0)
                kms_buf_add(&b, text, len);
            free(text);
            fname = xstrdup(f->name);
        } else if (f->loaded && f->recs.nvols == 1) {
            kms_emit_volume(&b, &f->recs.vols[0]);
            fname = kms_file_name("sealedvolume", f->recs.vols[0].name, 0);
        } else if (f->loaded && f->recs.nsecrets == 1) {
            const struct kms_secret_obj *o = &f->recs.secrets[0];
            kms_emit_secret(&b, "kairos-kms: exported from etcd", o->name, o->ns, &o->meta, o->kv, o->nkv);
            fname = kms_file_name("secret", o->name, 0);
        }
        if (!b.len) {
            log_error("%s: %s; not exported", f->path, f->problem ? f->problem : "unreadable");
            failed++;
            continue;
        }
        r = kms_dir_write(d->dirfd, d->dir, fname, b.p, b.len, false, NULL);
        kms_buf_free(&b);
        if (r < 0) {
            log_error("%s/%s: cannot write (%s): %s", dir, fname, f->path, strerror(-r));
            failed++;
        } else {
            n++;
        }
    }
    pthread_mutex_unlock(&s->lock);
    log_info("exported %zu object(s) from etcd %s%s into %s%s", n, s->etcd->endpoints, s->etcd->prefix, dir,
             failed ? "; some were not (see above)" : "");
    return failed ? -EIO : 0;
}
