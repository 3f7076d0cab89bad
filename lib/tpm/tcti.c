/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Our own TCTI: character devices, swtpm (unix or TCP socket, raw TPM commands) and the Microsoft
 * simulator protocol. tpm2-tss's TCTIs block forever on a TPM that stops answering; every read
 * and write here has a deadline, so a wedged TPM is an error, not a hung boot. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <tss2/tss2_tcti.h>

#include "tcti.h"

#define TCTI_MAGIC 0x6b6b6d7374637469ULL /* "kkmstcti" */
#define TPM_MAX_RESPONSE 4096
#define MSSIM_SEND_COMMAND 8 /* Microsoft simulator framing (tpm2-tss tcti-mssim) */
#define MSSIM_SESSION_END 20
#define MSSIM_SIGNAL_POWER_ON 1
#define MSSIM_SIGNAL_NV_ON 11

enum tcti_kind { KIND_DEVICE, KIND_SWTPM, KIND_MSSIM };

struct ktcti {
    TSS2_TCTI_CONTEXT_COMMON_V1 common; /* must stay first: ESYS casts to it */
    enum tcti_kind kind;
    int fd;
    int64_t timeout_ms;
    bool timed_out;
    size_t rsp_len, rsp_off;
    uint8_t rsp[TPM_MAX_RESPONSE];
    char desc[160];
};

static struct ktcti *ktcti_cast(TSS2_TCTI_CONTEXT *ctx)
{
    struct ktcti *t = (struct ktcti *)ctx;
    return t && t->common.magic == TCTI_MAGIC ? t : NULL;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static TSS2_RC io_error(struct ktcti *t, int r, const char *what)
{
    if (r == -ETIMEDOUT) {
        t->timed_out = true;
        log_error("TPM %s did not answer within %lld s (%s); is it hung? (--tpm-timeout sets the limit)", t->desc,
                  (long long)(t->timeout_ms / 1000), what);
    } else {
        log_error_errno(r, "TPM %s: %s failed: %m", t->desc, what);
    }
    return TSS2_TCTI_RC_IO_ERROR;
}

/* A TPM response: tag u16, size u32, code u32, then the body (TPM 2.0 Part 1 §18). */
static int read_response(struct ktcti *t, int64_t deadline)
{
    int r;
    uint32_t size;

    if (t->kind == KIND_DEVICE) {
        /* The kernel driver returns a whole response in one read. */
        ssize_t got;
        r = fd_wait(t->fd, POLLIN, deadline);
        if (r < 0)
            return r;
        do
            got = read(t->fd, t->rsp, sizeof(t->rsp));
        while (got < 0 && errno == EINTR);
        if (got < 0)
            return -errno;
        if (got < 10 || get_be32(t->rsp + 2) != (uint32_t)got)
            return -EPROTO;
        t->rsp_len = (size_t)got;
        return 0;
    }
    if (t->kind == KIND_MSSIM) {
        uint8_t len[4];
        r = read_full(t->fd, len, 4, deadline);
        if (r < 0)
            return r;
    }
    r = read_full(t->fd, t->rsp, 10, deadline);
    if (r < 0)
        return r;
    size = get_be32(t->rsp + 2);
    if (size < 10 || size > sizeof(t->rsp))
        return -EPROTO;
    r = read_full(t->fd, t->rsp + 10, size - 10, deadline);
    if (r < 0)
        return r;
    if (t->kind == KIND_MSSIM) {
        uint8_t ack[4];
        r = read_full(t->fd, ack, 4, deadline);
        if (r < 0)
            return r;
    }
    t->rsp_len = size;
    return 0;
}

static TSS2_RC ktcti_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *cmd)
{
    struct ktcti *t = ktcti_cast(ctx);
    int64_t deadline;
    int r;

    if (!t || !cmd)
        return TSS2_TCTI_RC_BAD_REFERENCE;
    if (size > UINT32_MAX)
        return TSS2_TCTI_RC_BAD_VALUE;
    deadline = now_ms() + t->timeout_ms;
    t->rsp_len = t->rsp_off = 0;
    if (t->kind == KIND_MSSIM) {
        uint8_t hdr[9];
        put_be32(hdr, MSSIM_SEND_COMMAND);
        hdr[4] = 0; /* locality */
        put_be32(hdr + 5, (uint32_t)size);
        r = write_full(t->fd, hdr, sizeof(hdr), deadline);
        if (r < 0)
            return io_error(t, r, "sending a command");
    }
    r = write_full(t->fd, cmd, size, deadline);
    if (r < 0)
        return io_error(t, r, "sending a command");
    /* Read the response now, under the same deadline, so receive() never blocks. */
    r = read_response(t, deadline);
    if (r < 0)
        return io_error(t, r, "reading a response");
    return TSS2_RC_SUCCESS;
}

static TSS2_RC ktcti_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *rsp, int32_t timeout)
{
    struct ktcti *t = ktcti_cast(ctx);
    (void)timeout; /* our own deadline applied in transmit() */

    if (!t || !size)
        return TSS2_TCTI_RC_BAD_REFERENCE;
    if (t->rsp_len == 0)
        return TSS2_TCTI_RC_BAD_SEQUENCE;
    if (!rsp) { /* size query */
        *size = t->rsp_len;
        return TSS2_RC_SUCCESS;
    }
    if (*size < t->rsp_len) {
        *size = t->rsp_len;
        return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
    }
    memcpy(rsp, t->rsp, t->rsp_len);
    *size = t->rsp_len;
    t->rsp_len = 0;
    return TSS2_RC_SUCCESS;
}

static void ktcti_finalize(TSS2_TCTI_CONTEXT *ctx)
{
    struct ktcti *t = ktcti_cast(ctx);
    if (!t)
        return;
    if (t->kind == KIND_MSSIM) {
        uint8_t end[4];
        put_be32(end, MSSIM_SESSION_END);
        (void)write_full(t->fd, end, 4, now_ms() + 1000);
    }
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    t->common.magic = 0;
}

static TSS2_RC ktcti_not_implemented(TSS2_TCTI_CONTEXT *ctx)
{
    (void)ctx;
    return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC ktcti_poll_handles(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *h, size_t *n)
{
    (void)ctx;
    (void)h;
    (void)n;
    return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC ktcti_set_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t locality)
{
    (void)ctx;
    return locality == 0 ? TSS2_RC_SUCCESS : TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

/* Connects a stream socket with a deadline. */
static int connect_deadline(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int err = 0;
    socklen_t elen = sizeof(err);

    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN)
        return -errno;
    int r = fd_wait(fd, POLLOUT, deadline);
    if (r < 0)
        return r;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -errno;
    return -err;
}

static int open_unix(const char *path, int64_t deadline)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    /* A swtpm that is starting has its socket file before it listens, and one that is busy
     * with another client may have a full backlog: both refuse for a moment. */
    int64_t give_up = now_ms() + 2000 < deadline ? now_ms() + 2000 : deadline;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    for (;;) {
        /* Non-blocking: a unix connect completes at once or fails at once (EAGAIN when the
         * backlog is full), so this never waits past the deadline. */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), r;
        if (fd < 0)
            return -errno;
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
        if (r == 0)
            return fd;
        close(fd);
        if ((r != -ECONNREFUSED && r != -EAGAIN) || now_ms() >= give_up)
            return r;
        poll(NULL, 0, 50);
    }
}

static int open_tcp(const char *host, const char *port, int64_t deadline)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res, *ai;
    int r = -EHOSTUNREACH;

    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -EHOSTUNREACH;
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        r = connect_deadline(fd, ai->ai_addr, ai->ai_addrlen, deadline);
        if (r == 0) {
            freeaddrinfo(res);
            return fd;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return r;
}

/* Sends one Microsoft-simulator platform signal (power on, NV on) to the platform port. */
static int mssim_signal(const char *host, unsigned port, uint32_t signal, int64_t deadline)
{
    char pstr[12];
    uint8_t buf[4];
    int fd, r;

    snprintf(pstr, sizeof(pstr), "%u", port);
    fd = open_tcp(host, pstr, deadline);
    if (fd < 0)
        return fd;
    put_be32(buf, signal);
    r = write_full(fd, buf, 4, deadline);
    if (r == 0)
        r = read_full(fd, buf, 4, deadline);
    close(fd);
    return r;
}

/* Parses "key=value,key=value" for host, port and path. */
static int parse_conf(const char *conf, char *host, size_t hostcap, unsigned *port, char *path, size_t pathcap)
{
    while (conf && *conf) {
        const char *end = strchr(conf, ','), *eq = strchr(conf, '=');
        size_t len = end ? (size_t)(end - conf) : strlen(conf);
        if (!eq || eq > conf + len)
            return -EINVAL;
        size_t klen = (size_t)(eq - conf), vlen = len - klen - 1;
        const char *v = eq + 1;
        if (klen == 4 && !strncmp(conf, "host", 4) && vlen < hostcap) {
            memcpy(host, v, vlen);
            host[vlen] = '\0';
        } else if (klen == 4 && !strncmp(conf, "port", 4)) {
            char tmp[8];
            uint32_t p;
            if (vlen >= sizeof(tmp))
                return -EINVAL;
            memcpy(tmp, v, vlen);
            tmp[vlen] = '\0';
            if (parse_u32(tmp, 65534, &p) < 0 || p == 0)
                return -EINVAL;
            *port = p;
        } else if (klen == 4 && !strncmp(conf, "path", 4) && vlen < pathcap) {
            memcpy(path, v, vlen);
            path[vlen] = '\0';
        } else {
            return -EINVAL;
        }
        conf = end ? end + 1 : NULL;
    }
    return 0;
}

int ktcti_open(const char *spec, int64_t timeout_ms, TSS2_TCTI_CONTEXT **out)
{
    struct ktcti *t;
    int64_t deadline = now_ms() + timeout_ms;
    char host[128] = "127.0.0.1", path[108] = "";
    unsigned port = 2321;
    const char *conf = NULL;
    struct stat st;
    int fd;

    t = xcalloc(1, sizeof(*t));
    t->common.magic = TCTI_MAGIC;
    t->common.version = 1;
    t->common.transmit = ktcti_transmit;
    t->common.receive = ktcti_receive;
    t->common.finalize = ktcti_finalize;
    t->common.cancel = ktcti_not_implemented;
    t->common.getPollHandles = ktcti_poll_handles;
    t->common.setLocality = ktcti_set_locality;
    t->timeout_ms = timeout_ms;
    t->fd = -1;

    if (!strncmp(spec, "device:", 7)) {
        t->kind = KIND_DEVICE;
        snprintf(path, sizeof(path), "%s", spec + 7);
    } else if (!strncmp(spec, "swtpm", 5) && (spec[5] == ':' || !spec[5])) {
        t->kind = KIND_SWTPM;
        conf = spec[5] ? spec + 6 : "";
    } else if (!strncmp(spec, "mssim", 5) && (spec[5] == ':' || !spec[5])) {
        t->kind = KIND_MSSIM;
        conf = spec[5] ? spec + 6 : "";
    } else if (stat(spec, &st) == 0 && S_ISSOCK(st.st_mode)) {
        t->kind = KIND_SWTPM;
        snprintf(path, sizeof(path), "%s", spec);
    } else {
        t->kind = KIND_DEVICE;
        snprintf(path, sizeof(path), "%s", spec);
    }
    if (conf && parse_conf(conf, host, sizeof(host), &port, path, sizeof(path)) < 0) {
        free(t);
        return log_error_errno(-EINVAL, "--tpm-device %s: bad TCTI options (expected path=SOCKET or host=H,port=P)",
                               spec);
    }
    if (t->kind == KIND_MSSIM && *path) {
        free(t);
        return log_error_errno(-EINVAL, "--tpm-device %s: the mssim protocol needs host= and port=", spec);
    }

    if (t->kind == KIND_DEVICE) {
        snprintf(t->desc, sizeof(t->desc), "%s", path);
        if (stat(path, &st) < 0) {
            int r = -errno;
            free(t);
            return r;
        }
        if (!S_ISCHR(st.st_mode)) {
            free(t);
            return log_error_errno(-ENOTTY, "--tpm-device %s: not a character device or a swtpm socket", path);
        }
        fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    } else if (*path) {
        snprintf(t->desc, sizeof(t->desc), "swtpm socket %s", path);
        fd = open_unix(path, deadline);
    } else {
        char pstr[12];
        snprintf(t->desc, sizeof(t->desc), "%s %s:%u", t->kind == KIND_MSSIM ? "mssim" : "swtpm", host, port);
        snprintf(pstr, sizeof(pstr), "%u", port);
        if (t->kind == KIND_MSSIM) {
            int r = mssim_signal(host, port + 1, MSSIM_SIGNAL_POWER_ON, deadline);
            if (r == 0)
                r = mssim_signal(host, port + 1, MSSIM_SIGNAL_NV_ON, deadline);
            if (r < 0) {
                log_error_errno(r, "TPM %s: platform port %u: %m", t->desc, port + 1);
                free(t);
                return r;
            }
        }
        fd = open_tcp(host, pstr, deadline);
    }
    if (fd < 0) {
        int r = fd == -1 ? -errno : fd;
        log_error_errno(r, "TPM %s: cannot open: %m", t->desc);
        free(t);
        return r;
    }
    t->fd = fd;
    *out = (TSS2_TCTI_CONTEXT *)t;
    return 0;
}

void ktcti_free(TSS2_TCTI_CONTEXT *ctx)
{
    if (!ctx)
        return;
    ktcti_finalize(ctx);
    free(ctx);
}

bool ktcti_timed_out(TSS2_TCTI_CONTEXT *ctx)
{
    struct ktcti *t = ktcti_cast(ctx);
    return t && t->timed_out;
}

const char *ktcti_describe(TSS2_TCTI_CONTEXT *ctx)
{
    struct ktcti *t = ktcti_cast(ctx);
    return t ? t->desc : "?";
}
