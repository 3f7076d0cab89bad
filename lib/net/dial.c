/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The client dialer: resolve with getaddrinfo, try every address with a connect timeout, then
 * the TLS handshake, all within the caller's deadline. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_internal.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000

static void format_addr(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, ntohs(s4->sin_port));
    }
}

/* One non-blocking connect with a timeout; returns the socket or -errno. */
static int connect_one(const struct addrinfo *ai, int64_t until)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        int r = -errno;
        close(fd);
        return r;
    }
    int r = fd_wait(fd, POLLOUT, until), err = 0;
    socklen_t len = sizeof(err);
    if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (r < 0 || err) {
        close(fd);
        return r < 0 ? r : -err;
    }
    return fd;
}

static int tcp_connect(const struct net_url *u, const struct net_client_opts *o, int64_t deadline, const char *peer)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8], tried[512] = "", addr[INET6_ADDRSTRLEN + 8];
    int timeout = o && o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    int r, fd = -ETIMEDOUT;
    size_t used = 0;

    snprintf(port, sizeof(port), "%u", u->port);
    r = getaddrinfo(u->host, port, &hints, &res);
    if (r != 0)
        return log_error_errno(-ENXIO, "%s: cannot resolve %s: %s", peer, u->host,
                               r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int64_t now = now_ms(), until = now + timeout;
        if (now >= deadline) {
            fd = -ETIME;
            break;
        }
        if (until > deadline)
            until = deadline;
        fd = connect_one(ai, until);
        if (fd >= 0)
            break;
        format_addr(ai->ai_addr, addr, sizeof(addr));
        if (used < sizeof(tried))
            used +=
                (size_t)snprintf(tried + used, sizeof(tried) - used, "%s%s: %s", used ? ", " : "", addr, strerror(-fd));
    }
    freeaddrinfo(res);
    if (fd == -ETIME)
        return log_error_errno(-ETIME, "%s: timed out connecting%s%s", peer, used ? " (" : "", used ? tried : "");
    if (fd < 0)
        return log_error_errno(fd, "%s: cannot connect: %s", peer, tried);
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* The TLS server name: the host of the Host override (mDNS keeps the KMS's name there), or the
 * URL's host. */
static char *tls_name(const struct net_url *u, const struct net_client_opts *o)
{
    const char *h = o ? o->host_header : NULL;
    if (!h || !*h)
        return xstrdup(u->host);
    if (*h == '[') {
        size_t n = strcspn(h + 1, "]");
        return strndup(h + 1, n);
    }
    const char *colon = strchr(h, ':');
    return colon ? strndup(h, (size_t)(colon - h)) : xstrdup(h);
}

int net_dial(const struct net_url *u, const struct net_client_opts *o, struct ktls_client *tls, int64_t deadline,
             const char *peer, struct net_stream *out)
{
    int fd = tcp_connect(u, o, deadline, peer), r;
    *out = (struct net_stream){.fd = -1};
    if (fd < 0)
        return fd;
    out->fd = fd;
    if (!u->tls)
        return 0;
    _cleanup_free_ char *name = tls_name(u, o);
    if (!name)
        abort_oom();
    if ((r = ktls_session_client(tls, fd, name, peer, &out->tls)) < 0)
        goto fail;
    for (;;) {
        r = ktls_handshake(out->tls);
        if (r == 0)
            return 0;
        if (r != KTLS_WANT_READ && r != KTLS_WANT_WRITE)
            goto fail; /* logged by ktls */
        r = fd_wait(fd, r == KTLS_WANT_WRITE ? POLLOUT : POLLIN, deadline);
        if (r == -ETIMEDOUT) {
            r = log_error_errno(-ETIME, "%s: timed out in the TLS handshake", peer);
            goto fail;
        }
        if (r < 0) {
            r = log_error_errno(r, "%s: waiting for the TLS handshake: %m", peer);
            goto fail;
        }
    }
fail:
    stream_close(out);
    return r;
}
