/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Byte streams over a non-blocking socket, plain or TLS, and their blocking-with-deadline
 * forms for the clients. */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_internal.h"

ssize_t stream_read(struct net_stream *s, void *buf, size_t n)
{
    if (s->tls)
        return ktls_read(s->tls, buf, n);
    for (;;) {
        ssize_t r = recv(s->fd, buf, n, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return KTLS_WANT_READ;
        return -errno;
    }
}

ssize_t stream_write(struct net_stream *s, const void *buf, size_t n)
{
    if (s->tls) {
        /* mbedTLS must get the same length again after a WANT (it already encrypted it). */
        if (s->tls_retry_len)
            n = s->tls_retry_len;
        else if (n > NET_IO_CHUNK)
            n = NET_IO_CHUNK;
        ssize_t r = ktls_write(s->tls, buf, n);
        s->tls_retry_len = (r == KTLS_WANT_READ || r == KTLS_WANT_WRITE) ? n : 0;
        return r;
    }
    for (;;) {
        ssize_t r = send(s->fd, buf, n, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return KTLS_WANT_WRITE;
        return -errno;
    }
}

void stream_close(struct net_stream *s)
{
    ktls_session_free(s->tls);
    s->tls = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* Waits for the socket to be ready for want (KTLS_WANT_READ/WRITE) until deadline; -ETIME when it passes. */
static int wait_ready(int fd, ssize_t want, int64_t deadline)
{
    int r = fd_wait(fd, want == KTLS_WANT_WRITE ? POLLOUT : POLLIN, deadline);
    return r == -ETIMEDOUT ? -ETIME : r;
}

ssize_t stream_read_deadline(struct net_stream *s, void *buf, size_t n, int64_t deadline)
{
    for (;;) {
        ssize_t r = stream_read(s, buf, n);
        if (r != KTLS_WANT_READ && r != KTLS_WANT_WRITE)
            return r;
        int w = wait_ready(s->fd, r, deadline);
        if (w < 0)
            return w;
    }
}

int stream_write_all_deadline(struct net_stream *s, const void *buf, size_t n, int64_t deadline)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = stream_write(s, p, n);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == 0)
            return -EPIPE;
        if (r != KTLS_WANT_READ && r != KTLS_WANT_WRITE)
            return (int)r;
        int w = wait_ready(s->fd, r, deadline);
        if (w < 0)
            return w;
    }
    return 0;
}

int stream_read_head(struct net_stream *s, struct nbuf *b, const struct net_limits *l, int64_t deadline,
                     const char *peer)
{
    struct http_scan scan = {0};
    for (;;) {
        int head = http_find_head_end(nbuf_head(b), nbuf_unread(b), &scan, l);
        if (head > 0)
            return head;
        if (head < 0)
            return log_error_errno(-EPROTO, "%s: the response head is malformed or too large", peer);
        if (nbuf_reserve(b, NET_IO_CHUNK) < 0)
            return log_error_errno(-ENOMEM, "%s: out of memory for the server's answer", peer);
        ssize_t r = stream_read_deadline(s, b->data + b->len, b->cap - b->len, deadline);
        if (r == 0)
            return log_error_errno(-ECONNRESET, "%s: the server closed the connection without answering", peer);
        if (r < 0)
            return stream_error(s, (int)r, peer, "waiting for the server's answer");
        b->len += (size_t)r;
    }
}

int stream_error(const struct net_stream *s, int r, const char *peer, const char *what)
{
    if (r == -ETIME)
        return log_error_errno(r, "%s: timed out %s", peer, what);
    if (s->tls)
        return r; /* ktls logged it, with the TLS details */
    if (r == -ECONNRESET || r == -EPIPE)
        return log_error_errno(r, "%s: connection reset by the peer while %s", peer, what);
    return log_error_errno(r, "%s: I/O error while %s: %m", peer, what);
}

bool http_header_ok(const char *name, const char *value)
{
    if (!name || !*name || !value)
        return false;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *p))
            return false;
    for (const char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n')
            return false;
    return true;
}

int64_t net_client_deadline(const struct net_client_opts *o)
{
    return o && o->deadline_ms ? o->deadline_ms : now_ms() + 30000;
}
