/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/kms private: the records read from manifests, the text helpers shared by the loader,
 * the writer and the quarantine edit, and the store layout. Also used by the unit tests and the
 * fuzz harness. */
#ifndef KKMS_KMS_INTERNAL_H
#define KKMS_KMS_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "kms.h"

#define KMS_API_VERSION "keyserver.kairos.io/v1alpha1"

/* ---- records (one per object of a manifest) ---- */
struct kms_partition {
    char *label, *device_name, *uuid; /* "" when absent */
    char *secret_name, *secret_path;  /* "" when absent (upstream's defaults then apply) */
    bool has_secret;                  /* a `secret:` mapping was written */
};

/* spec.attestation of a SealedVolume (G3; kairos-io/kairos kcrypt/api/v1alpha1
 * sealedvolume_types.go): the EK and PCR values enrolled, "" = learn at the next contact, a PCR
 * key absent = never checked. */
#define KMS_PCR_COUNT 24
#define KMS_PCR_HEX_MAX 128 /* a SHA-512 bank value in hex; we compare SHA-256 ones (64) */
struct kms_attestation {
    bool present;      /* `attestation:` written (even {}) */
    char *ek_pem;      /* ekPublicKey; "" = learn */
    bool has_pcrs;     /* pcrValues.pcrs written (even {}) */
    uint32_t pcr_mask; /* bit i: key "i" present */
    char **pcr;        /* KMS_PCR_COUNT entries (lowercase hex; "" = learn; NULL when the key is absent), allocated
                 * only when a key is present (most volumes pin none): a bit of pcr_mask implies pcr */
    char *enrolled_at, *last_verified_at; /* RFC 3339 text as written; "" when absent */
};

/* metadata.labels and metadata.annotations as written: not read by the KMS, only kept and written
 * back (an edit, an import or export loses none of them). */
struct kms_meta {
    char **kv;                      /* the labels' key, value, ... then the annotations'; NULL when none */
    uint16_t nlabels, nannotations; /* pairs (16 bytes in all: a hundred thousand volumes carry it) */
};
#define KMS_MAX_META 64 /* pairs in each of labels and annotations */
/* The annotations' pairs (NULL when there are no pairs at all). */
static inline char *const *kms_meta_annotations(const struct kms_meta *m)
{
    return m->kv ? m->kv + 2 * m->nlabels : NULL;
}

struct kms_volume {
    char *name, *ns; /* ns "" when absent */
    struct kms_meta meta;
    char *tpm_hash; /* lowercase */
    bool quarantined;
    struct kms_attestation att;
    struct kms_partition *parts;
    size_t nparts;
    const char *file;             /* path of the manifest, owned by the store's file entry or the loader */
    unsigned line;                /* line of the document (its `kind:` key) */
    const struct kms_volume *dup; /* another object with this name, when there is one */
};

struct kms_kv {
    char *key;
    struct secret *value;
};

struct kms_secret_obj {
    char *name, *ns;
    struct kms_meta meta;
    struct kms_kv *kv; /* `data` decoded, then `stringData` over it (as the API server does) */
    size_t nkv;
    const char *file;
    unsigned line;
    const struct kms_secret_obj *dup;
};

struct kms_records {
    struct kms_volume *vols;
    size_t nvols;
    struct kms_secret_obj *secrets;
    size_t nsecrets;
    size_t invalid; /* documents reported and skipped */
    char *arena;    /* kms_records_compact: every string and Secret value in one block */
    size_t arena_len;
};

/* Reads every document of buf (name = the path, used in messages and kept by the records, so it
 * must outlive them). Invalid objects are logged as name:line:col and counted in recs->invalid.
 * -EINVAL (recs empty) when the text is not YAML or holds more than KMS_MAX_DOCS objects. */
int kms_manifest_load(const char *buf, size_t len, const char *name, struct kms_records *recs);
/* The same without reporting invalid objects again (YAML syntax errors are still reported). */
int kms_manifest_load_quiet(const char *buf, size_t len, const char *name, struct kms_records *recs);
void kms_records_clear(struct kms_records *r);
/* Moves the strings and Secret values of r into one allocation (a store of many small files
 * then costs a few blocks per file, not tens); r reads the same. Nothing may free or replace a
 * string of compacted records but kms_records_clear. */
void kms_records_compact(struct kms_records *r);
/* True when both hold the same objects in the same order (file/line/dup not compared). */
bool kms_records_equal(const struct kms_records *a, const struct kms_records *b);
const struct kms_kv *kms_secret_get(const struct kms_secret_obj *o, const char *key);

/* ---- text ---- */
/* True when s is valid UTF-8 without control characters (what we accept in names we write). */
bool kms_text_ok(const char *s, size_t len);
/* True when s is 64 hex digits. */
bool kms_hash_ok(const char *s);

/* A growing text buffer; wiped when freed since Secret manifests pass through it. */
struct kms_buf {
    char *p;
    size_t len, cap;
};
void kms_buf_add(struct kms_buf *b, const char *s, size_t n);
void kms_buf_puts(struct kms_buf *b, const char *s);
void kms_buf_printf(struct kms_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a YAML double-quoted scalar (any UTF-8; control characters escaped). */
void kms_buf_quoted(struct kms_buf *b, const char *s, size_t n);
/* s as a plain scalar when it can only read as that string (letters, digits, . _ -; starting
 * with a letter; not a YAML 1.1 boolean or null), else double-quoted. */
void kms_buf_scalar(struct kms_buf *b, const char *s, size_t n);
void kms_buf_free(struct kms_buf *b);

/* The canonical manifest of a volume: what register writes, and what a file must still be
 * byte for byte for register to rewrite it. */
void kms_emit_volume(struct kms_buf *b, const struct kms_volume *v);
/* a->pcr, allocated (all NULL) when it was not. */
char **kms_att_pcrs(struct kms_attestation *a);
/* Frees what a records' attestation holds and zeroes it. */
void kms_attestation_clear(struct kms_attestation *a);
/* A deep copy of v (file/line/dup kept as pointers); release with kms_volume_clear. */
void kms_volume_copy(struct kms_volume *dst, const struct kms_volume *v);
void kms_volume_clear(struct kms_volume *v);
/* A copy of s (NULL stays NULL). */
static inline char *kms_dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }
/* Frees what m holds and zeroes it (not for records compacted into an arena). */
void kms_meta_clear(struct kms_meta *m);

/* A Secret manifest; values printable as UTF-8 go to stringData, the others to data (base64).
 * comment: one line (no user data) put first, or NULL. */
void kms_emit_secret(struct kms_buf *b, const char *comment, const char *name, const char *ns,
                     const struct kms_meta *meta, const struct kms_kv *kv, size_t nkv);

/* Sets spec.quarantined of every SealedVolume holding tpm_hash in the manifest text buf by
 * editing that value in place (or adding the line to a block-style spec), then checks that the
 * result parses to the same records but those flags. *out (malloc'd) is the new text; 0 and
 * *changed = 0 when nothing needed changing (then *out is NULL). -ENOENT: no such volume;
 * -EINVAL: could not be done safely (logged with file:line). */
int kms_text_set_quarantine(const char *buf, size_t len, const char *name, const char *tpm_hash, bool quarantined,
                            char **out, size_t *out_len, int *changed);

/* ---- files in DIR ---- */
/* Reads DIR/name (O_NOFOLLOW, regular, owned by us or root, not group/world-writable, at most
 * KMS_MAX_FILE_SIZE); *out NUL-terminated, caller wipes and frees; st gets its fstat. */
int kms_dir_read(int dirfd, const char *dir, const char *name, char **out, size_t *len, struct stat *st);
/* Writes DIR/name atomically and durably (temp file, fsync, rename, fsync DIR). replace false:
 * -EEXIST when name exists. replace true: when expect is set, the file must still be that one
 * (same inode, size, mtime), else -EAGAIN. */
int kms_dir_write(int dirfd, const char *dir, const char *name, const void *buf, size_t len, bool replace,
                  const struct stat *expect);
/* "prefix-<name>.yaml" with characters outside [A-Za-z0-9._-] as '_' (NUL-terminated, malloc'd). */
char *kms_file_name(const char *prefix, const char *name, unsigned attempt);

/* ---- the dir store ---- */
struct kms_file {
    char *path; /* DIR/name: what messages and records name */
    const char *name;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    bool racy;           /* read within 2 s of its mtime: read again next scan */
    uint64_t digest;     /* of the text last parsed: a racy re-read of the same text is not parsed */
    bool loaded;         /* recs hold a good version (maybe an older one, see problem) */
    const char *problem; /* NULL, or what is wrong with the current version (static text) */
    bool known;          /* dev..ctime hold the version last looked at */
    bool kept;           /* seen by the scan in progress */
    size_t counted;      /* bytes of it counted in the store's total (when loaded) */
    int64_t rev;         /* etcd backend: the key's mod_revision */
    struct kms_records recs;
};

struct kms_store {
    char *dir;
    int dirfd;
    pthread_mutex_t lock;
    int poll_ms;
    int ino_fd;           /* inotify watching DIR; -1: DIR is rescanned instead (inotify unavailable) */
    unsigned ino_gen;     /* fork_gen when ino_fd was made: a forked worker makes its own */
    int64_t last_full_ms; /* last full rescan (listing and stat of every file) */
    bool bulk;            /* many files change at once: the index is rebuilt once at the end */
    bool index_dirty;     /* records changed without the index: rebuilt before the next lookup */
    size_t total_size;    /* bytes of the loaded files (KMS_MAX_TOTAL_SIZE) */
    size_t files_cap, vols_cap, by_hash_cap, secrets_cap;
    int64_t last_scan_ms;
    bool scanned;
    int last_refresh;       /* 0, or the error of the last rescan (DIR could not be listed) */
    uint64_t reload_errors; /* rescans that failed, since open (metrics) */
    bool warned_too_many;
    struct kms_audit *audit;
    struct kms_file **files; /* sorted by name */
    size_t nfiles;
    /* the index, rebuilt when a file changes; pointers into files[]->recs, sorted by name */
    const struct kms_volume **vols;
    size_t nvols;
    const struct kms_volume **by_hash; /* the same volumes by TPM hash, then in vols' order */
    const struct kms_secret_obj **secrets;
    size_t nsecrets;
    struct kms_etcd_store *etcd; /* the etcd backend (store_etcd.c); NULL = the dir backend */
};

/* ---- store operations (store_ops.c): what the policy code writes through, whichever the
 * backend. An object is named as a file of DIR ("sealedvolume-<name>.yaml", "secret-<name>.yaml",
 * "pending-<hash>.yaml", or the name of a loaded file); the etcd backend maps such a name to its
 * key (kms_etcd_key_of) and stores the object as JSON. ---- */
struct kms_obj_ver {
    struct stat st; /* dir: the version read */
    int64_t rev;    /* etcd: the key's mod_revision */
};
/* kms_request.memory_only for the calls of this thread, from kms_memory_only_begin(s, on) to
 * kms_memory_only_end(out), which says whether a kms_obj_* call was refused meanwhile (it returned
 * -EINPROGRESS without doing anything); out, the decision taken without it, is then emptied.
 * Only an etcd store refuses. */
void kms_memory_only_begin(const struct kms_store *s, bool on);
bool kms_memory_only_end(struct kms_reply *out);
/* Reads the object (dir: kms_dir_read); *out NUL-terminated, caller wipes and frees. */
int kms_obj_read(struct kms_store *s, const char *name, char **out, size_t *len, struct kms_obj_ver *ver);
/* Writes it (dir: kms_dir_write). replace false: -EEXIST when it exists (etcd: create-if-absent;
 * 0 when it holds exactly this text already). replace true with expect: -EAGAIN when it changed
 * since (etcd: compare-and-swap on mod_revision). */
int kms_obj_write(struct kms_store *s, const char *name, const void *buf, size_t len, bool replace,
                  const struct kms_obj_ver *expect);
/* Removes it (etcd: only if still at expect's revision when expect is given). */
int kms_obj_remove(struct kms_store *s, const char *name, const struct kms_obj_ver *expect);
/* The version of a loaded file, for a later kms_obj_write(replace, expect). */
void kms_obj_ver_of(const struct kms_file *f, struct kms_obj_ver *ver);
/* True when the stored text is what writing want (manifest text we emit) would store. */
bool kms_obj_same(struct kms_store *s, const char *text, size_t len, const char *want, size_t want_len);
/* Where an object is, for messages after the store's name: the file name, or (etcd) the key
 * under the prefix. malloc'd. */
char *kms_obj_where(struct kms_store *s, const char *name);
/* Rebuilds the index from files[] (store.c). */
void kms_store_build_index(struct kms_store *s);

/* ---- the etcd backend (store_etcd.c) ---- */
int kms_etcd_refresh_locked(struct kms_store *s, bool force);
int kms_etcd_refresh(struct kms_store *s, bool force);
int kms_etcd_start(struct kms_store *s);
bool kms_etcd_ready(struct kms_store *s);
void kms_etcd_close(struct kms_store *s);
int kms_etcd_obj_read(struct kms_store *s, const char *name, char **out, size_t *len, struct kms_obj_ver *ver);
int kms_etcd_obj_write(struct kms_store *s, const char *name, const void *buf, size_t len, bool replace,
                       const struct kms_obj_ver *expect);
int kms_etcd_obj_remove(struct kms_store *s, const char *name, const struct kms_obj_ver *expect);
char *kms_etcd_where(struct kms_store *s, const char *name);
/* Reads Secret `name` from etcd (linearizable) into the copy: a write by another challenger or
 * worker that the watch has not brought yet (a node reading back the key it has just posted).
 * 1 when etcd holds it, 0 when not, < 0 on error (-EINPROGRESS in memory-only mode). Lock
 * held; the records may change (hold no pointers into them across it). */
int kms_etcd_fetch_secret(struct kms_store *s, const char *name);
/* The JSON an etcd value holds for manifest text (one object, or our PendingTPM). malloc'd. */
int kms_etcd_json_of(const char *text, size_t len, const char *name, char **out, size_t *out_len);

/* Refuses (KMS_C_FORBIDDEN, -EPERM, logged naming the other volume) when a Secret name this
 * TPM's volume self would create is also one another TPM's SealedVolume resolves to, compared
 * in cleanKubeName form: that Secret would become the other node's passphrase. action names
 * the endpoint in the log. */
struct kms_secret_ref;
int kms_check_other_tpms(const struct kms_store *s, const struct kms_volume *self, const char *hash,
                         const struct kms_secret_ref *ref, const char *action, struct kms_reply *out);
/* Records (or refreshes last-seen of) a pending TPM; lock held; failures logged only. */
void kms_pending_record_locked(struct kms_store *s, const struct kms_attest_request *rq, const char *hash);
/* Removes the pending record of hash when it is about the partition req was served for (lock
 * held). */
void kms_pending_forget_locked(struct kms_store *s, const char *hash, const struct kms_request *req);
/* Writes v (lock held): a new file sealedvolume-<name>.yaml, or (old_file: the path of the file v
 * was read from) that file rewritten when it holds only v and is still the version loaded.
 * -EXDEV: the file holds other objects (not written); -EAGAIN: it changed meanwhile. */
int kms_volume_write(struct kms_store *s, const struct kms_volume *v, const char *old_file);

/* Fills out's code, outcome and error text (what the session layer words for the node) and
 * returns r, so a refusal is one line: return kms_reply_set(out, KMS_C_NO_VOLUME, -ENOENT, ...). */
int kms_reply_set(struct kms_reply *out, enum kms_code c, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A served reply: the passphrase (kv's value) and the Secret's generated_by; returns 0. */
int kms_reply_served(struct kms_reply *out, const struct kms_secret_obj *o, const struct kms_kv *kv);

/* Rescan with s->lock held. */
int kms_store_refresh_locked(struct kms_store *s, bool force);
/* Whether the store lists an object (a file of DIR, an etcd key) of that name (lock held). */
bool kms_store_has_object(struct kms_store *s, const char *name);
/* Index lookups (lock held). */
const struct kms_secret_obj *kms_store_find_secret(const struct kms_store *s, const char *name);
const struct kms_volume *kms_store_find_volume(const struct kms_store *s, const char *name);
/* The volumes of one TPM (lowercase hash), in name order: *n of them from the returned position
 * of the by-hash index, NULL when *n is 0 (lock held); a binary search, so lookups do not grow with the fleet. */
const struct kms_volume *const *kms_store_volumes_of(const struct kms_store *s, const char *hash, size_t *n);
const struct kms_file *kms_store_file_of(const struct kms_store *s, const char *path);

/* Writes a new Secret manifest DIR/secret-<name>[.N].yaml (lock held), never replacing a file; the
 * suffix .N is tried only when the file name is taken by something else than this Secret.
 * *file (malloc'd) gets the file name. -EEXIST: another writer stored this Secret meanwhile. */
int kms_write_new_secret(struct kms_store *s, const char *comment, const char *name, const char *ns,
                         const struct kms_kv *kv, size_t nkv, char **file);

/* The Secret a partition of v resolves to (docs/protocol-g1.md §9): the name and key as written and upstream's
 * cleanKubeName forms. All malloc'd; release with kms_secret_ref_clear. */
struct kms_secret_ref {
    char *name, *key;             /* as written, or the default */
    char *clean_name, *clean_key; /* cleanKubeName of those */
    bool default_name;            /* the name is "<volume>-<label>" */
};
void kms_secret_ref_of(const struct kms_volume *v, const struct kms_partition *p, struct kms_secret_ref *ref);
void kms_secret_ref_clear(struct kms_secret_ref *ref);
/* The Secret object ref names (exact name first, then the clean one), or NULL. */
const struct kms_secret_obj *kms_secret_ref_find(const struct kms_store *s, const struct kms_secret_ref *ref);
/* The value of ref's key in o (exact key first, then the clean one), or NULL. */
const struct kms_kv *kms_secret_ref_value(const struct kms_secret_obj *o, const struct kms_secret_ref *ref);

#endif
