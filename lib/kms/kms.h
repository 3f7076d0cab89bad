/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/kms: the KMS core of `challenger --db DIR` — the registry of SealedVolumes and Secrets
 * (the Kubernetes manifests operators `kubectl apply` upstream, docs/upstream.md §6.3, §6.1), the
 * G1 policy of /getPass and /postPass (docs/protocol-g1.md §2.2, §5, §9, §6.1, docs/upstream.md §9.6-§9.9), the operator
 * commands (register, list, quarantine, release) and the audit log.
 *
 * The store (backend `dir`) is a directory of manifests:
 *  - Files: every regular file of DIR named *.yaml, *.yml or *.json (JSON is read as YAML), not
 *    hidden, not in subdirectories; any number of documents per file; `kind: List` (and
 *    `SealedVolumeList`, `SecretList`) items are read too. Unknown kinds are skipped (debug line).
 *  - Namespaces are recorded but ignored: two objects of the same kind and name anywhere in DIR
 *    are a conflict, reported with both places; a lookup that needs one of them is refused.
 *  - Reloading: the index is kept in memory. DIR is watched with inotify: before a lookup the
 *    pending events are read and only the files they name are read again or dropped (O(changes)).
 *    A full rescan (DIR listed, each file's inode, size, mtime, ctime compared with the loaded
 *    version, only changed files parsed again) runs at open, on kms_store_refresh(force), every
 *    KMS_FULL_RESCAN_MS from kms_store_refresh(!force), and when events were lost. Without
 *    inotify, DIR is rescanned before a lookup when the last scan is older than the poll interval.
 *    In a rescan, a file modified less than 2 s before it was read is read again on the next one
 *    (a same-tick rewrite would not change its stat). Rename-over, new and deleted files are
 *    therefore seen at the next lookup. A process forked after open makes its own watch.
 *    Editors that write in place can still be read half-way: write manifests by rename
 *    (kubectl-style tools, sed -i and our own commands do).
 *  - A file that fails to parse as YAML keeps the records of its last good version (a
 *    half-written file does not lock nodes out); a file broken at start-up loads nothing. Inside
 *    a parsed file, an invalid object is reported (file:line:col) and skipped; the others load.
 *    Symlinks, FIFOs, files group- or world-writable, owned by another user than us or root,
 *    over the size bound, or unreadable are not loaded (nothing of them is served).
 *  - Lookups see SealedVolumes ordered by name, then file path (docs/upstream.md §9.7). A temporary file of
 *    an interrupted write (hidden, never loaded) is removed when DIR is opened 10 min later.
 *  - Writes (/postPass, register, quarantine) are atomic and durable: a 0600 temporary file in DIR
 *    (O_CREAT|O_EXCL|O_NOFOLLOW), fsync, rename, fsync of DIR. New files never replace an
 *    existing file or Secret. DIR is created 0700 when missing; a DIR that is a symlink, is
 *    group/world-writable or is owned by another user is refused.
 *
 * A store may be shared by threads: one mutex serializes refreshes, lookups and writes.
 * Errors are logged where understood; functions return 0 or a negative errno. */
#ifndef KKMS_KMS_H
#define KKMS_KMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base.h"

/* Bounds (docs/README.md §5). */
#define KMS_MAX_FILES 10000000        /* a memory-safety bound on the files of DIR (rest skipped, with an error) */
#define KMS_TOFU_MAX_FILES 2048       /* --enroll tofu stops enrolling once DIR holds this many files */
#define KMS_MAX_FILE_SIZE (1u << 20)  /* bytes per file (= KYAML_MAX_INPUT) */
#define KMS_MAX_TOTAL_SIZE (1u << 30) /* bytes of all loaded files together (1M one-node files of 1 KiB) */
#define KMS_MAX_DOCS 1024             /* objects per file, List items included */
#define KMS_MAX_PARTITIONS 64         /* partitions per SealedVolume */
#define KMS_MAX_SECRET_KEYS 256       /* keys per Secret */
#define KMS_MAX_VALUE (64u << 10)     /* bytes per Secret value */
#define KMS_MAX_NAME 253              /* object names, Secret keys (Kubernetes' limit) */
#define KMS_MAX_FIELD 1024            /* label, deviceName, uuid, namespace */
#define KMS_DEFAULT_POLL_MS 1000      /* without inotify: default minimum interval between two rescans */
#define KMS_FULL_RESCAN_MS 60000      /* with inotify: the periodic full rescan, a fallback */

/* ---------------------------------------------------------------------------------------------
 * Audit: one JSON line per decision, appended with a single write (O_APPEND), never a secret:
 * {"time":"2026-01-02T03:04:05.678Z","action":"getPass","outcome":"ok","tpm_hash":"…","label":"…",
 *  "name":"…","uuid":"…","peer":"…","volume":"…","secret":"<Secret name>","reason":"…",
 *  "instance":"<hostname>:<pid> or --instance NAME"}
 * ------------------------------------------------------------------------------------------- */
struct kms_audit;

enum kms_outcome {
    KMS_OK,      /* the request was served */
    KMS_REFUSED, /* policy said no: unknown node, quarantined, no Secret, already stored, ... */
    KMS_ERROR,   /* the store failed (I/O, conflict in the manifests) */
};
const char *kms_outcome_name(enum kms_outcome o);

/* Opens path for appending (created 0600, O_NOFOLLOW); NULL or "-" = stderr. Owned by the caller. */
int kms_audit_open(const char *path, struct kms_audit **out);
void kms_audit_free(struct kms_audit *a);

/* What a node asked: the TPM hash computed by the server and the partition headers (docs/protocol-g1.md §2.2). */
struct kms_request {
    const char *tpm_hash; /* 64 hex digits (either case) */
    const char *label;    /* header `label`; NULL or "" = not sent */
    const char *name;     /* header `name` (kernel name, matched against deviceName) */
    const char *uuid;     /* header `uuid` */
    const char *peer;     /* "address:port" of the node, for the audit only; may be NULL */
    /* The server's event loop asks kms_post_pass and kms_attest this way: decide from what the
     * store holds in memory. A decision that needs a request to etcd (a write, a pending
     * record) is not taken: nothing is written or audited, and -EINPROGRESS is returned; ask
     * again with false from a thread that may wait (net_loop_offload). A DIR store ignores it
     * (its reads and writes are local files). */
    bool memory_only;
};

struct kms_audit_event {
    const char *action;            /* "getPass", "postPass", "register", "quarantine", "release", ... */
    const struct kms_request *req; /* may be NULL */
    enum kms_outcome outcome;
    const char *reason; /* why (the error text sent to the node); may be NULL */
    const char *volume; /* SealedVolume name, when one was found */
    const char *secret; /* Secret name (never its value) */
};
/* The "instance" field of every line: who decided, when several challengers share a store.
 * Default "<hostname>:<pid>". */
void kms_audit_set_instance(struct kms_audit *a, const char *name);
/* Appends one line; failures are logged, never fatal. a NULL: nothing. */
void kms_audit_log(struct kms_audit *a, const struct kms_audit_event *e);

/* ---------------------------------------------------------------------------------------------
 * Store
 * ------------------------------------------------------------------------------------------- */
struct kms_store;

struct kms_store_options {
    bool create;             /* create DIR (mode 0700) when it does not exist */
    int poll_interval_ms;    /* minimum interval between rescans before lookups; < 0: default */
    struct kms_audit *audit; /* borrowed; NULL = no audit */
};

/* Opens (and with opt->create makes) DIR and loads every manifest. opt NULL = defaults.
 * Broken manifests are reported and skipped; only an unusable DIR is an error. */
int kms_store_open_dir(const char *dir, const struct kms_store_options *opt, struct kms_store **out);
void kms_store_free(struct kms_store *s);
static inline void kms_store_freep(struct kms_store **s) { kms_store_free(*s); }
#define _cleanup_kms_store_ _cleanup_(kms_store_freep)
/* The etcd backend (docs/store.md §9): the same records, one JSON manifest per key under a
 * prefix, kept in memory from a listing and a watch. */
#define KMS_ETCD_DEFAULT_PREFIX "/kairos-kms/"
struct kms_etcd_options {
    const char *endpoints; /* "http://10.0.0.1:2379,https://..." */
    const char *prefix;    /* NULL = KMS_ETCD_DEFAULT_PREFIX */
    const char *ca_file, *cert_file, *key_file;
    const char *user, *password_file; /* the password is read from the file, never given */
    int deadline_ms;                  /* one call, all endpoints and retries; 0 = 10 s */
    bool watch;                       /* the server: load and follow in a thread, retrying while etcd is
                                * unreachable (kms_store_ready false meanwhile), from
                                * kms_store_start on; else one listing now, an error when it fails */
};
int kms_store_open_etcd(const struct kms_etcd_options *eo, const struct kms_store_options *opt, struct kms_store **out);
/* Copies every SealedVolume, Secret and pending TPM of the manifest directory dir into the etcd
 * store s (create-if-absent: an object holding the same already is fine, another content is
 * reported and not overwritten). -EIO when some object was not copied. */
int kms_store_import_dir(struct kms_store *s, const char *dir);
/* Writes every object of the etcd store s into dir (created 0700; must hold no manifests) as
 * register would: one manifest file per object. */
int kms_store_export_dir(struct kms_store *s, const char *dir);

/* force: rescans DIR in full now. Otherwise takes in the changes inotify reported, and rescans
 * in full when the last full rescan is older than KMS_FULL_RESCAN_MS (or without inotify). Returns
 * 1 when a manifest was (re)loaded or dropped, 0 when nothing changed, negative errno when DIR
 * cannot be listed (the old records stay). */
int kms_store_refresh(struct kms_store *s, bool force);
/* The server, in each process that serves (after --workers forked them, before any other TLS
 * object of that process is made): an etcd store opened with watch starts following etcd in a
 * thread of this process; in a forked worker it first drops the client it inherited and makes
 * its own (connections, token, TLS configuration and random generator of its own). Nothing for
 * a DIR (a forked worker makes its own inotify watch at its first refresh). */
int kms_store_start(struct kms_store *s);
/* Whether the last rescan could list DIR (what /readyz reports); never scans itself. */
bool kms_store_ready(struct kms_store *s);
/* The directory, as given. */
const char *kms_store_dir(const struct kms_store *s);

/* What a decision was, for the protocol layers (lib/g1, lib/g3) to word as upstream does. The
 * detail says which object, label, key or PCR the code is about. */
enum kms_code {
    KMS_C_OK,
    KMS_C_BAD_REQUEST,  /* a malformed request (hash, passphrase, generated_by) */
    KMS_C_NO_VOLUME,    /* no SealedVolume for this TPM hash and partition */
    KMS_C_NO_SECRET,    /* the partition's Secret does not exist (detail.label) */
    KMS_C_NO_KEY,       /* the Secret lacks the key or its value is empty (detail.key) */
    KMS_C_QUARANTINED,  /* the volume is quarantined (detail.label) */
    KMS_C_CONFLICT,     /* a SealedVolume or Secret defined twice (detail.object) */
    KMS_C_EXISTS,       /* /postPass: the Secret exists already (detail.object) */
    KMS_C_FORBIDDEN,    /* /postPass: not something a node may store (error[] says why) */
    KMS_C_STORE,        /* the store failed (I/O, no usable name) */
    KMS_C_EK_MISMATCH,  /* the EK differs from the enrolled attestation.ekPublicKey */
    KMS_C_PCR_MISMATCH, /* a pinned PCR differs (detail.pcr, expected, got) */
    KMS_C_PCR_MISSING,  /* a pinned PCR was not in the quote (detail.pcr, expected) */
    KMS_C_NOT_ENROLLED, /* --enroll registered: no SealedVolume; the TPM is recorded as pending */
};
const char *kms_code_name(enum kms_code c);

struct kms_detail {
    char hash[65];    /* the TPM hash as compared (lowercase) */
    char label[256];  /* the partition's stored label (docs/upstream.md §9.8) or the request's */
    char key[256];    /* Secret key */
    char object[256]; /* SealedVolume or Secret name the code is about */
    bool object_is_secret;
    unsigned pcr;                 /* PCR index */
    char expected[129], got[129]; /* lowercase hex PCR values ("" = none) */
};

/* Answer to a node. error[] holds the KMS's own description (for the audit and the log; the
 * G1 texts of upstream where upstream has one); code and detail say what happened, for the
 * protocol layers to word; passphrase and generated_by are set for a served request. */
struct kms_reply {
    enum kms_outcome outcome;
    enum kms_code code;
    struct kms_detail detail;
    char error[512];
    struct secret *passphrase; /* owned; kms_reply_clear wipes it */
    char *generated_by;        /* owned; "" when the Secret has no generated_by */
    char *volume;              /* SealedVolume name found, or NULL */
    char *secret_name;         /* Secret name used, or NULL */
};
void kms_reply_clear(struct kms_reply *r);

/* /getPass (docs/protocol-g1.md §5 steps 7-9, §9). Finds the first SealedVolume by name whose spec.TPMHash is
 * the node's and that has a partition matching any non-empty header, then its Secret: the
 * partition's secret.name or "<volume>-<label>", key secret.path or "passphrase", each looked up
 * as written first and then in upstream's cleanKubeName form. Writes the audit line.
 * 0: served. -ENOENT: "no volume found with data from request and hash: H" or
 * "No secret found for H and L"; -EACCES: "quarantined: L"; -ENODATA: the Secret lacks the key
 * or its value is empty ("passphrase not found in secret at key: K", docs/upstream.md §9.9); -ENOTUNIQ: the
 * volume or Secret is defined twice; -EINVAL: a malformed request. With an etcd store, a Secret
 * missing from the copy is read from etcd before "No secret found" is answered (another
 * challenger or worker may have just stored it): -EINPROGRESS when req->memory_only (nothing
 * done, no audit line, out empty). */
int kms_get_pass(struct kms_store *s, const struct kms_request *req, struct kms_reply *out);

/* /postPass (docs/protocol-g1.md §6.2, §6.1): stores a node-generated passphrase (the base64url TPM ciphertext) as a
 * new Secret manifest DIR/secret-<name>.yaml, under the default name "<volume>-<label>" in its
 * cleanKubeName form, keyed as /getPass looks it up, in the SealedVolume's namespace (or
 * `default`), stringData {<key>: pass, generated_by: tpm}. Returns once the file is durable.
 * Unlike upstream (which stores anything under any name the partition resolves to), a node
 * stores only its own generated key: generated_by must be "tpm", pass must be the unpadded
 * base64url of one 256-byte RSA-2048 ciphertext (342 characters), the partition must not name an
 * operator Secret (secret.name), and no SealedVolume of another TPM may resolve to that name;
 * a quarantined volume is refused too.
 * 0: stored. -EEXIST: the Secret exists (never overwritten; upstream ignores such a post);
 * -ENOENT: "no TPM Hash found for H"; -EACCES: quarantined; -EPERM: refused by the rules above;
 * -EINVAL: empty/unprintable input. -EINPROGRESS: req->memory_only and the decision needs etcd
 * (nothing done, no audit line, out empty). */
int kms_post_pass(struct kms_store *s, const struct kms_request *req, const struct secret *pass,
                  const char *generated_by, struct kms_reply *out);

/* /tpm-attestation (G3), after lib/g3 verified the credential and the quote: upstream's
 * enrollment policy (kairos-io/kairos kcrypt/pkg/challenger/challenger.go IssuePassphrase).
 * The SealedVolume holding the TPM hash is checked against its spec.attestation (an EK PEM
 * that differs: KMS_C_EK_MISMATCH; a pinned PCR that differs or is missing: KMS_C_PCR_MISMATCH,
 * KMS_C_PCR_MISSING with the index, expected and got values in the detail), then what is still
 * "" is learned (written back into the SealedVolume's file when that file holds it alone).
 * A quarantined volume is refused before any check. A TPM with no SealedVolume, or a partition
 * not in its volume: with tofu, enrolled as upstream (SealedVolume tofu-<hash8>, Secret
 * <volume>-<label>, all names valid Kubernetes names); without, KMS_C_NOT_ENROLLED and recorded
 * as pending (kms_pending_*). A Secret the KMS must create holds rq->passphrase (the node's TPM
 * ciphertext with generated_by "tpm", or one the session layer generated). Writes the audit
 * line (action "tpm-attestation", reason + audit_note). Returns 0 when served, else -errno with
 * out->code set; -EINPROGRESS when rq->req.memory_only and the decision needs etcd (nothing
 * done, no audit line, out empty). */
struct kms_attest_request {
    struct kms_request req;          /* tpm_hash, partition headers, peer */
    const char *ek_pem;              /* the EK as a "PUBLIC KEY" PEM (Go's pem.EncodeToMemory form) */
    uint32_t pcr_mask;               /* the verified PCRs: bit i = pcr[i] */
    const uint8_t (*pcr)[32];        /* [24] SHA-256 values */
    bool defer_pcr_enrollment;       /* the node runs from a live medium */
    bool tofu;                       /* --enroll tofu: enroll unknown TPMs and partitions */
    const struct secret *passphrase; /* what a new Secret holds */
    const char *generated_by;        /* "tpm" when passphrase is the node's escrow, else "" */
    const char *audit_note;          /* more for the audit reason (e.g. "quote not fresh (no nonce)"), or NULL */
};
int kms_attest(struct kms_store *s, const struct kms_attest_request *rq, struct kms_reply *out);

/* Upstream's SafeKubeName (kcrypt/pkg/kube/names.go), always lower-case so that the result is a
 * valid Kubernetes name (upstream keeps upper case, which the API server refuses). malloc'd. */
char *kms_safe_kube_name(const char *s);

/* Pending TPMs (--enroll registered): a TPM that attested but has no SealedVolume, kept in
 * DIR/pending-<hash>.yaml (kind PendingTPM, ours; the loader ignores it): hash, EK, PCR values,
 * partition headers, first and last seen. Never a secret. */
struct kms_pending {
    char hash[65];
    char *ek_pem;
    uint32_t pcr_mask;
    char pcr[24][65];
    char *label, *device_name, *uuid;
    char first_seen[32], last_seen[32];
};
void kms_pending_clear(struct kms_pending *p);
/* Every pending TPM, by hash. *out malloc'd array; free each with kms_pending_clear. */
int kms_pending_list(struct kms_store *s, struct kms_pending **out, size_t *n);
/* Turns the pending TPM hash (a unique prefix of at least 8 hex digits is enough) into a
 * SealedVolume node-<hash8> (or volume) with its partition and spec.attestation pinning its EK
 * and the PCR values seen; its Secret is made at the node's next contact. Removes the pending
 * record. -ENOENT: no such pending TPM; -ENOTUNIQ: the prefix is ambiguous. */
int kms_pending_approve(struct kms_store *s, const char *hash, const char *volume);

/* ---------------------------------------------------------------------------------------------
 * Operator commands (the challenger applet wraps them). They write an audit line too.
 * ------------------------------------------------------------------------------------------- */
struct kms_register {
    const char *tpm_hash; /* required: 64 hex digits */
    const char *label;    /* partition label; at least one of label/device_name/uuid */
    const char *device_name;
    const char *uuid;
    const char *volume;              /* SealedVolume name; NULL = the volume that holds this hash, else
                              * "node-<first 8 hex>" */
    const char *ns;                  /* namespace of new objects; NULL = "default" */
    const char *secret_name;         /* optional reference; NULL = upstream's default */
    const char *secret_key;          /* optional; NULL = "passphrase" */
    const struct secret *passphrase; /* optional static key: also writes the Secret (first) */
    /* optional spec.attestation pins (G3): PCR values (64 lowercase hex digits each) and the EK
     * as a "PUBLIC KEY" PEM in Go's pem.EncodeToMemory form; given values replace the volume's */
    uint32_t pcr_mask;
    const char *pcr[24];
    const char *ek_pem;
};
/* Registers a partition: a new SealedVolume file DIR/sealedvolume-<name>.yaml, or one more
 * partition in an existing volume when its file is one register wrote and nobody edited (else
 * the operator is told which file:line to edit). Never overwrites a Secret. */
int kms_register(struct kms_store *s, const struct kms_register *r);

/* Sets spec.quarantined of every SealedVolume holding tpm_hash, rewriting each file atomically:
 * only that value changes (or a `quarantined:` line is added to a block-style spec); comments and
 * the other documents stay as they are. The edit is checked by parsing the result, which must
 * give the same records but that field; when it cannot be done safely the file:line to edit by
 * hand is named. 0 also when nothing needed changing. */
int kms_set_quarantine(struct kms_store *s, const char *tpm_hash, bool quarantined);

/* Writes one line per SealedVolume (name, TPM hash, state, partitions with the Secret each one
 * resolves to and whether it exists, file:line), then one line per file not loaded. Never a
 * secret value. */
int kms_list(struct kms_store *s, FILE *out);

/* Reads a passphrase from a file (at most 4096 bytes; one trailing "\n" or "\r\n" removed;
 * empty or NUL-holding content refused) into a secret owned by the caller; the buffer is wiped. */
int kms_passphrase_read_file(const char *path, struct secret **out);

/* ---------------------------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------------------------- */
/* Upstream G1 cleanKubeName (docs/protocol-g1.md §9): '_' -> '-', then lowercase (ASCII). malloc'd, caller frees. */
char *kms_clean_kube_name(const char *s);

#endif
