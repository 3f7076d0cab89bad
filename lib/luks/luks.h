/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/luks: LUKS2 volumes through libcryptsetup, and partitions found from sysfs, libblkid and the
 * LUKS2 binary header without udev. The only folder that includes libcryptsetup and libblkid
 * (docs/README.md §3). Every function returns 0 (or a count) or a negative errno and has already
 * logged one line naming the device and why; secrets come in as struct secret and are never
 * logged or copied outside libcryptsetup's own locked memory. */
#ifndef KKMS_LUKS_H
#define KKMS_LUKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define LUKS_LABEL_MAX 48 /* LUKS2 binary header label field, NUL included */
#define LUKS_UUID_STR 37  /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL */

/* Cipher of every volume we create: aes-xts-plain64 with a 512-bit volume key (two AES-256 keys),
 * libcryptsetup's own LUKS2 default, what upstream kcrypt gets (docs/upstream.md §3.2). */
#define LUKS_CIPHER "aes"
#define LUKS_CIPHER_MODE "xts-plain64"
#define LUKS_VOLUME_KEY_BYTES 64

/* Keyslot PBKDF, chosen by who made the passphrase (docs/luks.md §2).
 *
 * LUKS_PBKDF_MINIMAL: PBKDF2-SHA256, 1000 iterations, no benchmark. Only for generated
 *   passphrases of >= 32 random bytes (TPM NV, KMS): a KDF cannot add strength to 256 bits of
 *   entropy, and a slow one costs seconds per unlock in an initramfs (30 s under QEMU TCG with
 *   libcryptsetup's benchmarked default, docs/luks.md §2). systemd-cryptenroll and clevis do
 *   the same (cryptsetup_set_minimal_pbkdf). 1000 is libcryptsetup's minimum for PBKDF2.
 *
 * LUKS_PBKDF_OPERATOR: argon2id, memory 64 MiB, time cost 4, 1 lane, no benchmark. For
 *   passphrases an operator typed, which need a memory-hard KDF. 64 MiB is RFC 9106 §4's second
 *   recommended memory; its t=3 is raised to 4, libcryptsetup's minimum for argon2; one lane
 *   instead of four because an initramfs on a small VM has one CPU and perhaps 256 MiB of RAM.
 *   libcryptsetup's own benchmark (up to 1 GiB, 4 threads, measured on the install machine)
 *   picks values that fail or take ~30 s at early boot (docs/luks.md §2). Fixed values make
 *   unlock time independent of the machine that formatted the disk: about 0.2 s on a 2020s x86
 *   core, a few seconds under QEMU TCG. */
enum luks_pbkdf {
    LUKS_PBKDF_MINIMAL = 0,
    LUKS_PBKDF_OPERATOR = 1,
};
#define LUKS_PBKDF2_ITERATIONS 1000
#define LUKS_ARGON2_MEMORY_KB (64u * 1024u)
#define LUKS_ARGON2_TIME_COST 4
#define LUKS_ARGON2_LANES 1

/* The UUIDv5 (SHA-1, RFC 4122 §4.3) of name in the URL namespace, as upstream's
 * uuid.NewV5(uuid.NamespaceURL, label) (docs/upstream.md §3.2): COS_PERSISTENT gives
 * 85c39d0f-4867-5227-8334-f5eec606d9eb. Writes 36 characters and a NUL into out. */
void luks_uuid_v5(const char *name, char out[LUKS_UUID_STR]);

/* ---- volumes ---- */

/* Creates a LUKS2 header on device (block device or image file): aes-xts-plain64, 512-bit random
 * volume key from the kernel RNG, default sector size, header label = label (the filesystem
 * label, < 48 bytes), UUID = luks_uuid_v5(label), pass in the first free keyslot (0 on a new
 * header) with the PBKDF of kind. Destroys what was on device, an existing LUKS header included:
 * the caller refuses already-encrypted devices unless forced (luks_header_read, docs/upstream.md
 * §8). */
int luks_format(const char *device, const char *label, const struct secret *pass, enum luks_pbkdf kind);

/* Checks pass against every keyslot of device without device-mapper (works on image files and on
 * hosts without dm). On success *slot (if not NULL) is the keyslot that matched. -EPERM for a
 * wrong passphrase, -EINVAL if device is not LUKS, -ENOENT if it does not exist. */
int luks_check_passphrase(const char *device, const struct secret *pass, int *slot);

/* Unlocks device as /dev/mapper/<name>, trying every keyslot. Needs device-mapper (dm_mod,
 * dm_crypt): -ENODEV with an error saying so where the kernel has none. */
int luks_open(const char *device, const char *name, const struct secret *pass);

/* Removes the mapping /dev/mapper/<name>. -ENODEV if it is not active. */
int luks_close(const char *name);

/* True when /dev/mapper/<name> exists or device-mapper reports <name> active. Logs nothing. */
bool luks_is_active(const char *name);

/* Room luks_encrypt_in_place needs at the end of the device: the LUKS2 header (16 MiB: 16 KiB
 * metadata twice, the rest keyslots) plus as much again to move the first data segment, as
 * `cryptsetup reencrypt --encrypt --reduce-device-size 32M` does. */
#define LUKS_REDUCE_BYTES (32ull << 20)

/* Progress of luks_encrypt_in_place: done of total bytes encrypted. Return 0 to go on, anything
 * else to stop (the device is left in a resumable reencryption state; -EINTR is returned). */
typedef int (*luks_progress_fn)(uint64_t done, uint64_t total, void *ctx);

/* Encrypts device in place keeping its data (--keep-data), offline, with libcryptsetup's LUKS2
 * reencryption: header, label and UUID as luks_format, data shifted by 16 MiB.
 * Precondition, checked: the device holds a filesystem whose size (libblkid FSSIZE) is at most the
 * device size minus LUKS_REDUCE_BYTES — shrink it first (resize2fs DEV SIZE) — and it is not
 * mounted or otherwise in use. Afterwards the filesystem is the LUKS volume's content.
 * A device left half-done by an interrupted run (power loss, progress said stop) and carrying
 * our header with the same label is resumed, not refused. progress may be NULL. The temporary
 * header lives in a memfd reached through /proc/self/fd, never on disk; libcryptsetup locks
 * metadata under /run/cryptsetup, so /run must exist (it does in every initramfs we build). */
int luks_encrypt_in_place(const char *device, const char *label, const struct secret *pass, enum luks_pbkdf kind,
                          luks_progress_fn progress, void *ctx);

/* 1 when device is a LUKS2 volume whose encryption in place was interrupted (a power loss, or
 * progress said stop) and can be resumed by luks_encrypt_in_place, 0 when not (no LUKS2, or no
 * reencryption pending), or a negative errno when the header cannot be read. Logs only errors. */
int luks_reencrypt_pending(const char *device);

/* ---- the LUKS binary header, read without libcryptsetup (docs/luks.md §4) ---- */

struct luks_header {
    int version;                /* 1 or 2 */
    bool from_secondary;        /* the primary was damaged; these come from a LUKS2 secondary */
    uint64_t hdr_size;          /* LUKS2: metadata area size (binary header + JSON) */
    uint64_t seqid;             /* LUKS2: bumped on every metadata write */
    char label[LUKS_LABEL_MAX]; /* LUKS2 label, "" for LUKS1 or none */
    char uuid[40];              /* header UUID as stored (36 characters normally) */
};

/* Reads the LUKS header of the open file or device fd: the primary binary header, or a LUKS2
 * secondary at any of the sizes LUKS2 allows when the primary is damaged (bad magic or
 * checksum). -EINVAL when neither is a LUKS header. */
int luks_header_read_fd(int fd, struct luks_header *out);

/* Same for a path; -ENOENT etc. as open(2). Logs nothing (used while scanning). */
int luks_header_read(const char *path, struct luks_header *out);

/* ---- partitions without udev ---- */

/* One block device that carries a filesystem or LUKS. Every string is owned by the array
 * returned by luks_scan, NUL-terminated and never NULL ("" when unknown). */
struct luks_part {
    char *name;            /* kernel name: vda5, loop0p2, nvme0n1p5 */
    char *device;          /* path opened: <root>/dev/<name> */
    char *disk;            /* kernel name of the whole disk ("" for a whole disk itself) */
    int partno;            /* partition number, 0 for a whole disk */
    unsigned major, minor; /* from sysfs dev */
    uint64_t size;         /* bytes (sysfs size × 512) */
    bool read_only;        /* sysfs ro */
    bool has_holders;      /* something (a dm mapping) is stacked on it: sysfs holders/ */
    char *fs;              /* libblkid TYPE: "crypto_LUKS", "ext4", ... */
    char *label;           /* filesystem label; for LUKS the header label (primary or secondary) */
    char *fs_uuid;         /* filesystem UUID; for LUKS the header UUID */
    char *partition_label; /* GPT partition name (PARTLABEL) */
    char *uuid;            /* GPT partition UUID (PARTUUID): upstream's `uuid` (docs/upstream.md §3.1) */
    char *mount_point;     /* from /proc/mounts, first match */
};

/* Which devices luks_scan_flags also looks at. */
enum {
    LUKS_SCAN_DM = 1 << 0, /* dm-* (unlocked volumes, LVM), skipped by default */
};

/* Lists the block devices of <root_prefix>/sys/class/block (root_prefix "" or NULL for the real
 * system; tests point it at a tree of their own) that carry a filesystem or LUKS, sorted by name.
 * Skips ram*, zram*, fd* (floppies), loop devices without a backing file and dm-*. Devices are
 * opened as <root>/dev/<name>; when that node is missing (no devtmpfs) it is created with mknod
 * from sysfs dev, and a line says so. *out is owned by the caller: free it with luks_parts_free. */
int luks_scan(const char *root_prefix, struct luks_part **out, size_t *n);
int luks_scan_flags(const char *root_prefix, unsigned flags, struct luks_part **out, size_t *n);

/* Frees an array from luks_scan (NULL is fine). */
void luks_parts_free(struct luks_part *parts, size_t n);

/* The label to ask a KMS for: the filesystem/LUKS label, or for unlabelled legacy disks COS_OEM /
 * COS_PERSISTENT from PARTLABEL oem / persistent (docs/upstream.md §3.5); "" if neither. Borrowed. */
const char *luks_part_label(const struct luks_part *p);

/* Finds the device whose filesystem or LUKS label is label; for COS_OEM / COS_PERSISTENT with no
 * such label, the partition named oem / persistent (upstream G3, docs/upstream.md §3.1). *out points into parts.
 * -ENOENT (logged) when nothing matches. */
int luks_find_by_label(const struct luks_part *parts, size_t n, const char *label, const struct luks_part **out);

/* Fills out (room for n pointers into parts) with the locked LUKS devices: fs crypto_LUKS, no
 * <root>/dev/mapper/<name> and nothing stacked on them. Returns how many. */
size_t luks_list_locked(const char *root_prefix, const struct luks_part *parts, size_t n, const struct luks_part **out);

/* ---- systemd's LUKS2 tokens (token.c): systemd-tpm2 and systemd-recovery ----
 * The JSON systemd-cryptenroll writes (systemd v252 src/shared/tpm2-util.c tpm2_make_luks2_json,
 * read back by tpm2_parse_luks2_json; src/cryptenroll/cryptenroll-recovery.c). */

#define LUKS_TOKEN_JSON_MAX 16384 /* longest token JSON read */
#define LUKS_TOKEN_BLOB_MAX 4096  /* longest tpm2-blob, decoded */
#define LUKS_MAX_TOKENS 32        /* LUKS2_TOKENS_MAX */
#define LUKS_MAX_KEYSLOTS 32      /* LUKS2_KEYSLOTS_MAX */

/* A systemd-tpm2 token. Reading it refuses what this implementation cannot open (sharded blobs,
 * signed PCR policies, pcrlock, banks other than SHA-256) with a one-line error. */
struct luks_tpm2_token {
    int token;     /* LUKS2 token number; -1 until stored */
    int keyslot;   /* "keyslots": ["N"] */
    uint8_t *blob; /* tpm2-blob, decoded (malloc'd) */
    size_t blob_len;
    uint32_t pcr_mask; /* tpm2-pcrs */
    bool primary_rsa;  /* tpm2-primary-alg "rsa" (absent or "ecc": false) */
    bool srk;          /* tpm2_srk present: parent is the persistent SRK (systemd >= 254) */
    bool pin;          /* tpm2-pin */
    uint8_t salt[64];  /* tpm2_salt (systemd >= 253); salt_len 0 = none */
    size_t salt_len;
    uint8_t policy[32]; /* tpm2-policy-hash */
};
void luks_tpm2_token_clear(struct luks_tpm2_token *t);

/* Parses the JSON of one systemd-tpm2 token (at most LUKS_TOKEN_JSON_MAX bytes, bounded depth and
 * token count; unknown members ignored as systemd does). -EBADMSG malformed, -EOPNOTSUPP a
 * feature named in the message; one line logged naming what (what: e.g. "disk.img token 1"). */
int luks_tpm2_token_parse(const char *what, const char *json, size_t len, struct luks_tpm2_token *out);
/* The JSON systemd v252 writes, field for field; *json malloc'd. */
int luks_tpm2_token_format(const struct luks_tpm2_token *t, char **json);

/* The systemd-tpm2 tokens of device whose keyslot exists, in token order; tokens that fail to
 * parse are reported (one line each) and skipped. *out (release with luks_tpm2_tokens_free). */
int luks_tpm2_tokens(const char *device, struct luks_tpm2_token **out, size_t *n);
void luks_tpm2_tokens_free(struct luks_tpm2_token *t, size_t n);
/* Whether device is LUKS2 with a token of type; logs nothing (LUKS1, unreadable: false). */
bool luks_has_token(const char *device, const char *type);
/* How many tokens of type (e.g. "systemd-tpm2") device has; negative errno. */
int luks_token_count(const char *device, const char *type);

/* Adds a keyslot for new_pass, unlocking the volume key with old_pass (any keyslot), with the PBKDF
 * systemd uses for generated keys (PBKDF2-SHA512, 1000 iterations, systemd v252
 * cryptsetup_set_minimal_pbkdf). *slot gets the new keyslot. -EPERM: old_pass opens nothing. */
int luks_add_keyslot(const char *device, const struct secret *old_pass, const struct secret *new_pass, int *slot);
/* Stores json as a new token; *token gets its number. */
int luks_token_add(const char *device, const char *json, int *token);
/* Removes a token and then the keyslot it names (slot < 0: only the token). */
int luks_token_remove(const char *device, int token, int slot);
/* Checks pass against keyslot slot only (no device-mapper). -EPERM: refused. */
int luks_check_passphrase_slot(const char *device, int slot, const struct secret *pass);
/* Opens device as /dev/mapper/<name> with keyslot slot (CRYPT_ANY_SLOT: -1). */
int luks_open_slot(const char *device, const char *name, int slot, const struct secret *pass);

/* A systemd recovery key: 32 random bytes as 64 modhex characters (cbdefghijklnrtuv) in eight
 * dashed groups of 8 (systemd src/shared/recovery-key.c make_recovery_key); the keyslot
 * passphrase is that text. */
#define LUKS_RECOVERY_KEY_LEN 71
int luks_recovery_key_new(struct secret **out);
/* Whether s has the recovery key form (lowercase, dashes); used to say "typo" rather than
 * "wrong passphrase". */
bool luks_recovery_key_valid(const uint8_t *s, size_t len);
/* The token {"type":"systemd-recovery","keyslots":["slot"]}; *json malloc'd. */
char *luks_recovery_token_json(int slot);

#endif
