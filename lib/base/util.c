/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"

void closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}

void abort_oom(void)
{
    static const char msg[] = "kairos-kms: out of memory\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    abort();
}

static void *oom(void) { abort_oom(); }

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom();
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom();
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom();
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    return p ? p : oom();
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    return n < 0 ? oom() : p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    return p ? p : oom();
}

void secure_wipe(void *p, size_t n)
{
    if (!p)
        return;
    memset(p, 0, n);
    /* The barrier tells the compiler the zeroed memory is still observed. */
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

bool secure_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

struct secret *secret_new(size_t cap)
{
    struct secret *s = xcalloc(1, sizeof(*s));
    s->data = xcalloc(cap + 1, 1);
    s->cap = cap;
    return s;
}

void bytes_copy(struct bytes *b, const void *p, size_t n)
{
    b->data = xmalloc(n ? n : 1);
    if (n)
        memcpy(b->data, p, n);
    b->len = n;
}

void bytes_clear(struct bytes *b)
{
    if (!b)
        return;
    secure_wipe(b->data, b->len);
    free(b->data);
    *b = (struct bytes){0};
}

void ak_params_clear(struct ak_params *p)
{
    if (!p)
        return;
    bytes_clear(&p->public_area);
    bytes_clear(&p->create_data);
    bytes_clear(&p->create_attestation);
    bytes_clear(&p->create_signature);
    p->use_tcsd_activation_format = false;
}

struct secret *secret_new_copy(const void *p, size_t n)
{
    struct secret *s = secret_new(n);
    if (n)
        memcpy(s->data, p, n);
    s->len = n;
    return s;
}

struct secret *secret_take(void *p, size_t len)
{
    struct secret *s = xcalloc(1, sizeof(*s));
    s->data = p;
    s->data[len] = '\0';
    s->len = s->cap = len;
    return s;
}

void *secure_realloc(void *old, size_t old_cap, size_t used, size_t new_cap)
{
    void *p = malloc(new_cap ? new_cap : 1);
    if (!p)
        return NULL;
    if (old) {
        memcpy(p, old, used < new_cap ? used : new_cap);
        secure_wipe(old, old_cap);
        free(old);
    }
    return p;
}

void secret_free(struct secret *s)
{
    if (!s)
        return;
    secure_wipe(s->data, s->cap + 1);
    free(s->data);
    free(s);
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *in, size_t inlen, uint8_t *out, size_t cap)
{
    if (inlen % 2 || inlen / 2 > cap)
        return -EINVAL;
    for (size_t i = 0; i < inlen / 2; i++) {
        int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(inlen / 2);
}

int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    unsigned long long v = 0;
    int base = 10;

    if (!s || !*s)
        return -EINVAL;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        if (!*s)
            return -EINVAL;
    }
    for (; *s; s++) {
        int d = hexval(*s);
        if (d < 0 || d >= base)
            return -EINVAL;
        v = v * (unsigned)base + (unsigned)d;
        if (v > max)
            return -ERANGE;
    }
    *out = (uint32_t)v;
    return 0;
}

int parse_seconds_ms(const char *s, int64_t *out_ms)
{
    int64_t ms = 0, frac = 100;
    bool digits = false;

    if (!s)
        return -EINVAL;
    for (; *s >= '0' && *s <= '9'; s++, digits = true) {
        ms = ms * 10 + (*s - '0') * 1000;
        if (ms > (int64_t)INT32_MAX * 1000)
            return -ERANGE;
    }
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++, digits = true, frac /= 10)
            ms += (*s - '0') * frac;
    if (*s || !digits || ms <= 0)
        return -EINVAL;
    *out_ms = ms;
    return 0;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int file_read_all(const char *path, size_t max, char **out, size_t *out_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0, cap = 4096;

    if (fd < 0)
        return -errno;
    buf = xmalloc(cap + 1);
    for (;;) {
        ssize_t r;
        if (len == cap) {
            if (cap > max)
                return -EFBIG;
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                return -ENOMEM;
            buf = nb;
        }
        r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > max)
            return -EFBIG;
    }
    buf[len] = '\0';
    *out = TAKE_PTR(buf);
    if (out_len)
        *out_len = len;
    return 0;
}

int file_write_atomic(const char *what, const char *path, const void *buf, size_t len, unsigned mode)
{
    const char *base = strrchr(path, '/');
    size_t dir_len = base ? (size_t)(base - path) + 1 : 0;
    char tmp[PATH_MAX];
    int fd = -1, r = 0;

    base = base ? base + 1 : path;
    if (!*base)
        return log_error_errno(-EISDIR, "%s%s%s: not a file name", what ? what : "", what ? " " : "", path);
    for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
        uint8_t rnd[8];
        char hex[17];
        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
            return log_error_errno(-EIO, "%s%s%s: getrandom failed", what ? what : "", what ? " " : "", path);
        hex_encode(rnd, sizeof(rnd), hex);
        if ((size_t)snprintf(tmp, sizeof(tmp), "%.*s.%s.%s", (int)dir_len, path, base, hex) >= sizeof(tmp))
            return log_error_errno(-ENAMETOOLONG, "%s%s%s: name too long", what ? what : "", what ? " " : "", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return log_error_errno(-errno, "%s%s%s: cannot create a temporary file next to it: %m", what ? what : "",
                               what ? " " : "", path);
    if (fchmod(fd, (mode_t)mode) < 0)
        r = -errno;
    if (r == 0)
        r = fd_write_sync_close(fd, buf, len);
    else
        close(fd);
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        (void)unlink(tmp);
        return log_error_errno(r, "%s%s%s: %m", what ? what : "", what ? " " : "", path);
    }
    return 0;
}
