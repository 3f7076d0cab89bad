/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/base: errors and logging, secret buffers, hex, time. Included by every other lib/ folder. */
#ifndef KKMS_BASE_H
#define KKMS_BASE_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Exit codes of every applet (docs/README.md §2). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* ---- logging: one line on stderr, prefixed with the applet name ---- */
enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Sets the name printed before every message (the applet's name; not copied). */
void log_set_program(const char *name);
const char *log_program(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text of the last error logged (without the program name), "" if none: for a plugin's
 * answer, which must carry the reason to its host. */
const char *log_last_error(void);
/* Quiet mode of the calling thread, for a caller that retries elsewhere and reports once itself
 * (the etcd client rotating endpoints): while on, errors and warnings are logged at debug level
 * only, and the text of the last of them is kept for log_quiet_last(). Returns the previous
 * setting, to restore it. */
bool log_set_quiet(bool on);
/* The last error or warning demoted in this thread's quiet mode ("" if none since it was set). */
const char *log_quiet_last(void);

/* Logs an error and returns r (a negative errno), so an error path is one line:
 *   return log_error_errno(r, "%s: cannot open: %m", path);
 * errno is set to -r first, so %m in fmt names r's error. */
int log_level_errno(enum log_level level, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define log_error_errno(r, ...) log_level_errno(LOG_ERR, (r), __VA_ARGS__)
/* The same at other levels. */
#define log_warn_errno(r, ...) log_level_errno(LOG_WARN, (r), __VA_ARGS__)
#define log_debug_errno(r, ...) log_level_errno(LOG_DEBUG, (r), __VA_ARGS__)

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* ---- cleanup helpers (tang/systemd style) ---- */
static inline void freep(void *p) { free(*(void **)p); }
void closep(int *fd);
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* ---- memory ---- */
/* malloc/calloc/realloc/strdup/strndup that abort with a message on exhaustion (a secret
 * half-built is worse). Never for sizes a peer chooses: those must fail the one request. */
void *xmalloc(size_t n);
/* What they do on exhaustion: one line on stderr, then abort (the only abort() in the tree). */
__attribute__((noreturn)) void abort_oom(void);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Grows a block that may hold a secret: a new block of new_cap bytes gets the first `used` bytes
 * of old, then old (old_cap bytes) is wiped and freed. Never realloc, which can leave the old
 * bytes behind in freed memory (the same choice as cryptsetup's crypt_safe_realloc,
 * lib/utils_safe_memory.c). NULL when memory runs out, old then untouched: callers whose size a
 * peer drives fail that request instead of the process. old may be NULL. */
void *secure_realloc(void *old, size_t old_cap, size_t used, size_t new_cap);

/* Takes the value out of a pointer variable, leaving NULL: `return TAKE_PTR(x);` hands over
 * what a _cleanup_ variable owns (systemd's TAKE_PTR). */
#define TAKE_PTR(ptr)                           \
    ({                                          \
        __typeof__(ptr) *take_ptr_ = &(ptr);    \
        __typeof__(ptr) take_val_ = *take_ptr_; \
        *take_ptr_ = NULL;                      \
        take_val_;                              \
    })

/* Wipes n bytes in a way the compiler may not elide. */
void secure_wipe(void *p, size_t n);
/* Compares n bytes in constant time; true when equal. */
bool secure_equal(const void *a, const void *b, size_t n);

/* Bytes: owned (bytes_clear wipes and frees them) or a view into someone else's buffer (then
 * never cleared). The one byte-span type of every lib/ folder, like systemd's struct iovec. */
struct bytes {
    uint8_t *data;
    size_t len;
};
/* A view of n bytes at p (not copied, not owned). */
static inline struct bytes bytes_view(const void *p, size_t n) { return (struct bytes){(uint8_t *)p, n}; }
/* b owns a copy of n bytes of p (b's old contents are not freed). */
void bytes_copy(struct bytes *b, const void *p, size_t n);
/* Wipes and frees owned bytes and zeroes b (NULL is fine). */
void bytes_clear(struct bytes *b);

/* An AK's attestation parameters as go-attestation's AttestationParameters carries them
 * (github.com/google/go-attestation, attest/attest.go): what the node's TPM made (lib/tpm), what
 * the wire carries (lib/proto), what the KMS checks (lib/attest) — one struct for all three. */
struct ak_params {
    struct bytes public_area;        /* "Public": TPMT_PUBLIC, no TPM2B size */
    struct bytes create_data;        /* "CreateData": TPMS_CREATION_DATA */
    struct bytes create_attestation; /* "CreateAttestation": TPMS_ATTEST from CertifyCreation */
    struct bytes create_signature;   /* "CreateSignature": TPMT_SIGNATURE over create_attestation */
    bool use_tcsd_activation_format; /* "UseTCSDActivationFormat": always false from TPM 2.0 */
};
/* bytes_clear of each part (owned parameters only). */
void ak_params_clear(struct ak_params *p);

/* A buffer holding a secret: wiped when freed, never printed. Owned by whoever holds it. */
struct secret {
    size_t len;
    size_t cap;
    uint8_t *data;
};
/* Allocates an empty secret with room for cap bytes (+1 for a NUL terminator). */
struct secret *secret_new(size_t cap);
/* A secret holding a copy of n bytes of p (NUL-terminated after them). */
struct secret *secret_new_copy(const void *p, size_t n);
/* Adopts p, malloc'd with room for len + 1 bytes, as a secret of len bytes (NUL-terminated after
 * them): secret_free wipes and frees it. */
struct secret *secret_take(void *p, size_t len);
/* Wipes and frees s (NULL is fine). */
void secret_free(struct secret *s);
static inline void secret_freep(struct secret **s) { secret_free(*s); }
#define _cleanup_secret_ _cleanup_(secret_freep)

/* ---- encodings ---- */
/* Writes 2*n lowercase hex characters and a NUL into out (size 2*n+1). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes hex (either case, even length) into out (capacity cap); returns bytes or -EINVAL. */
int hex_decode(const char *in, size_t inlen, uint8_t *out, size_t cap);

enum base64_variant {
    BASE64_STD,     /* RFC 4648 §4, padded: Go's base64.StdEncoding */
    BASE64_URL_RAW, /* RFC 4648 §5, no padding: Go's base64.RawURLEncoding */
};
/* Length of the encoding of n bytes, without the NUL. */
size_t base64_encoded_len(size_t n, enum base64_variant v);
/* Encodes n bytes; returns a malloc'd NUL-terminated string owned by the caller. */
char *base64_encode(const uint8_t *in, size_t n, enum base64_variant v, size_t *out_len);
/* The same as a secret: base64 of a key or passphrase is as secret as what it encodes. */
struct secret *base64_encode_secret(const void *in, size_t n, enum base64_variant v);
/* Decodes strictly (no whitespace, canonical padding and trailing bits); *out malloc'd, owned by
 * the caller (wipe it if it holds a secret). -EINVAL on bad input. */
int base64_decode(const char *in, size_t n, enum base64_variant v, uint8_t **out, size_t *out_len);

/* Parses an unsigned integer in C notation (0x.. hex, decimal) that must fit in max. */
int parse_u32(const char *s, uint32_t max, uint32_t *out);
/* Parses a positive number of seconds (decimal, optionally fractional) into milliseconds. */
int parse_seconds_ms(const char *s, int64_t *out_ms);

/* ---- time ---- */
/* Monotonic clock in milliseconds. */
int64_t now_ms(void);

/* ---- files ---- */
/* Reads a whole file of at most max bytes; *out is NUL-terminated and owned by the caller. */
int file_read_all(const char *path, size_t max, char **out, size_t *out_len);
/* Writes all of buf to fd, retrying on EINTR and short writes; 0 or -errno (write_full, no deadline). */
int fd_write_all(int fd, const void *buf, size_t n);
/* Writes all of buf, fsyncs and closes fd (closed in every case): a new file's data made durable
 * before it is renamed into place. 0 or the first -errno. */
int fd_write_sync_close(int fd, const void *buf, size_t n);

/* ---- descriptors with a deadline (an absolute now_ms() time; 0: none) ---- */
struct pollfd;
/* Waits until fd is ready for events (POLLIN, POLLOUT; an error or hang-up counts as ready: the
 * next read, write or SO_ERROR tells) or deadline passes. EINTR is retried. 0, -ETIMEDOUT,
 * -EBADF or -errno. */
int fd_wait(int fd, short events, int64_t deadline);
/* The same for n descriptors: the number ready (revents set), -ETIMEDOUT or -errno. */
int fd_wait_many(struct pollfd *fds, size_t n, int64_t deadline);
/* Reads exactly n bytes (blocking or non-blocking fd): 0, -ETIMEDOUT, -ECONNRESET when the
 * stream ends first, or -errno. Partial reads, EINTR and EAGAIN are retried. */
int read_full(int fd, void *buf, size_t n, int64_t deadline);
/* Writes all n bytes: 0, -ETIMEDOUT or -errno. Partial writes, EINTR and EAGAIN are retried. */
int write_full(int fd, const void *buf, size_t n, int64_t deadline);
/* Replaces path with a file holding buf, atomically and without following symlinks: the data go
 * to a new file in path's directory with an unpredictable name (".NAME.<16 random hex>", created
 * O_EXCL|O_NOFOLLOW, exactly `mode`), are fsync'd, and the file is renamed over path. A symlink
 * at path is replaced itself; what it points to is never opened. 0, or -errno with one line
 * logged naming path (what is prefixed to it: "--port-file"; may be NULL). */
int file_write_atomic(const char *what, const char *path, const void *buf, size_t len, unsigned mode);

/* ---- child processes with a time limit ---- */
/* After the child exits, how long its pipes may stay open (held by something it left behind)
 * before we stop reading them. */
#define SPAWN_DRAIN_MS 1000
/* Most bytes kept of a child's stdout and stderr. */
#define SPAWN_MAX_STDOUT (1u << 20)
#define SPAWN_MAX_STDERR (64u << 10)

/* What a finished child left behind. stdout may hold a secret: spawn_result_clear wipes it. */
struct spawn_result {
    int status;           /* waitpid status of the child */
    bool timed_out;       /* the time limit was reached and the process group was killed */
    bool stdout_overflow; /* more than SPAWN_MAX_STDOUT bytes on stdout; the group was killed */
    struct secret *out;   /* stdout, NUL-terminated: it may be a passphrase (a plugin's answer) */
    char *err;            /* stderr (first SPAWN_MAX_STDERR bytes), NUL-terminated */
    size_t err_len;
};

/* Runs argv[0] with argv in a new process group, writes in to its stdin, collects stdout and
 * stderr concurrently, and always reaps it: at timeout_ms the group gets SIGTERM, then SIGKILL
 * after grace_ms; anything left in the group after the child exits is killed too. Returns 0 when
 * the child ran (see res for how it ended; clear it), or -errno with a reason in why and res
 * already cleared. SIGPIPE is blocked in the calling thread meanwhile, so a child that does not
 * read its stdin cannot kill us. */
int spawn_run(char *const argv[], const void *in, size_t in_len, int64_t timeout_ms, int64_t grace_ms,
              struct spawn_result *res, char *why, size_t why_len);
void spawn_result_clear(struct spawn_result *res);

/* ---- kernel modules (kmod.c), for initramfs images without modprobe or udev ---- */
/* Loads kernel module name ("dm-crypt" and "dm_crypt" are the same) after the modules it depends
 * on, as listed in /lib/modules/$(uname -r)/modules.dep, with finit_module(2). Success when it is
 * loaded already (/sys/module/<name>), built in (modules.builtin) or loaded meanwhile (EEXIST).
 * .ko files are loaded as they are; .ko.xz/.ko.zst only where the kernel decompresses modules.
 * 0, or -errno with one error line logged. */
int kmod_load(const char *name);
/* The same with every path under root (<root>/lib/modules, <root>/sys/module; NULL or "" = /),
 * logging nothing: on failure why holds the one-line reason. -ENOPKG: there is no modules.dep (a
 * kernel without loadable modules, or none installed); -ENOENT: the module is not in it. */
int kmod_load_at(const char *root, const char *name, char *why, size_t why_len);

#endif
