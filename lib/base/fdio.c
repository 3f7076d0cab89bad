/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Waiting on descriptors and whole reads and writes, each bounded by a deadline on the now_ms()
 * clock: what the TPM transport, the HTTP client, child processes and mDNS queries share. */
#include <poll.h>
#include <unistd.h>

#include "base.h"

/* poll()'s timeout for the time left until deadline (0: none); -1 when none. */
static int poll_ms(int64_t deadline, int64_t *left)
{
    if (!deadline)
        return -1;
    *left = deadline - now_ms();
    if (*left <= 0)
        return 0;
    return *left > 60000 ? 60000 : (int)*left; /* long waits in steps: the clock decides */
}

int fd_wait_many(struct pollfd *fds, size_t n, int64_t deadline)
{
    for (;;) {
        int64_t left = 1;
        int ms = poll_ms(deadline, &left), r;

        if (left <= 0)
            return -ETIMEDOUT;
        for (size_t i = 0; i < n; i++)
            fds[i].revents = 0;
        r = poll(fds, (nfds_t)n, ms);
        if (r > 0)
            return r;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

int fd_wait(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r = fd_wait_many(&p, 1, deadline);

    if (r < 0)
        return r;
    return p.revents & POLLNVAL ? -EBADF : 0;
}

int read_full(int fd, void *buf, size_t n, int64_t deadline)
{
    uint8_t *p = buf;

    while (n > 0) {
        int r = fd_wait(fd, POLLIN, deadline);
        ssize_t got;

        if (r < 0)
            return r;
        got = read(fd, p, n);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        if (got == 0)
            return -ECONNRESET;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int write_full(int fd, const void *buf, size_t n, int64_t deadline)
{
    const uint8_t *p = buf;
    /* Without a deadline the wait comes only after EAGAIN: a log or audit line is one write(2). */
    bool wait = deadline != 0;

    while (n > 0) {
        int r = wait ? fd_wait(fd, POLLOUT, deadline) : 0;
        ssize_t w;

        if (r < 0)
            return r;
        w = write(fd, p, n);
        if (w < 0) {
            wait = deadline != 0 || errno == EAGAIN;
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fd_write_all(int fd, const void *buf, size_t n) { return write_full(fd, buf, n, 0); }

int fd_write_sync_close(int fd, const void *buf, size_t n)
{
    int r = fd_write_all(fd, buf, n);

    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    return r;
}
