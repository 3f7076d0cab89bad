/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The server: listener and connection limit, routes, graceful drain, and the pass after each
 * batch of events that calls on_close and frees dead connections (never under a callback). */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#define ACCEPT_BATCH 64
/* Room for a boot storm of nodes between two accept batches (the kernel caps it at
 * net.core.somaxconn): with 128, connections over it were dropped and retried by TCP (seconds of
 * SYN backoff) instead of being answered, or refused with 503 over the cap. */
#define LISTEN_BACKLOG 4096
#define ACCEPT_PAUSE_MS 100
/* Descriptors kept free for the store, the audit log, TLS and the like: the connection cap is
 * lowered to stay this far below RLIMIT_NOFILE. */
#define FD_RESERVE 64

static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n"
                           "Connection: close\r\n\r\nServer is too busy.\n";

static void on_accept(int fd, uint32_t events, void *data);

/* ---- connections per peer address ---- */

static void peer_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)ss;
        /* IPv4-mapped: the IPv4 address; native IPv6: its /64 (one host owns a whole /64). */
        memcpy(key, s6->sin6_addr.s6_addr, IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ? 16 : 8);
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const void *)ss;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &s4->sin_addr, 4);
    }
}

static size_t peer_bucket(const uint8_t key[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % PEER_BUCKETS;
}

/* The count of key's connections, made when absent (NULL when out of memory). */
static struct peer_count *peer_get(struct net_server *s, const uint8_t key[16])
{
    struct peer_count **b = &s->peers[peer_bucket(key)], *p;
    for (p = *b; p; p = p->next)
        if (memcmp(p->key, key, 16) == 0)
            return p;
    p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    memcpy(p->key, key, 16);
    p->next = *b;
    *b = p;
    return p;
}

static void peer_release(struct net_server *s, struct peer_count *pc)
{
    if (!pc || --pc->n > 0)
        return;
    for (struct peer_count **p = &s->peers[peer_bucket(pc->key)]; *p; p = &(*p)->next)
        if (*p == pc) {
            *p = pc->next;
            free(pc);
            return;
        }
}

/* ---- fair turns ---- */

static void resume_backlog(struct net_timer *t, void *data)
{
    struct net_server *s = data;
    (void)t;
    s->resume_timer = NULL;
    for (struct net_conn *c = s->conns; c; c = c->next) {
        if (!c->backlog || c->state == CS_DEAD)
            continue;
        c->backlog = false;
        c->budget = conn_turn_budget(c);
        conn_read(c);
        if (c->state != CS_DEAD)
            server_touch(c);
    }
}

void server_backlog(struct net_conn *c)
{
    struct net_server *s = c->srv;
    c->backlog = true;
    server_touch(c);
    /* On the next turn (not this one): events of other connections come first. */
    if (!s->resume_timer)
        s->resume_timer = net_timer_add(s->loop, net_loop_now(s->loop) + 1, resume_backlog, s);
}

static void reap(void *data)
{
    struct net_server *s = data;
    s->reap_scheduled = false;
    while (s->reap) {
        struct net_conn *c = s->reap;
        s->reap = c->reap_next;
        c->queued = false;
        if (c->kick_read && c->state != CS_DEAD)
            conn_read(c);
        /* A WebSocket handler hears once that its connection left the open state. */
        if (c->opened && !c->close_notified && c->state != CS_WS && !c->upgrading) {
            c->close_notified = true;
            if (c->route->h.on_close)
                c->route->h.on_close(c, c->why, c->route->h.data);
        }
        if (c->state == CS_DEAD && !c->queued) {
            if (c->prev)
                c->prev->next = c->next;
            else
                s->conns = c->next;
            if (c->next)
                c->next->prev = c->prev;
            s->n_conns--;
            peer_release(s, c->pc);
            conn_free(c);
        } else if (c->state != CS_DEAD) {
            conn_update(c);
        }
    }
    if (s->draining && s->n_conns == 0 && !s->drained_notified) {
        s->drained_notified = true;
        net_timer_cancel(s->drain_timer);
        s->drain_timer = NULL;
        if (s->on_drained)
            s->on_drained(s, s->data);
        else
            net_loop_quit(s->loop);
    }
}

static void schedule_reap(struct net_server *s)
{
    if (!s->reap_scheduled) {
        s->reap_scheduled = true;
        net_loop_defer(s->loop, reap, s);
    }
}

void server_touch(struct net_conn *c)
{
    if (!c->queued) {
        c->queued = true;
        c->reap_next = c->srv->reap;
        c->srv->reap = c;
    }
    schedule_reap(c->srv);
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, sizeof(ip));
            snprintf(out, n, "%s:%u", ip, ntohs(s6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
            snprintf(out, n, "[%s]:%u", ip, ntohs(s6->sin6_port));
        }
    } else {
        const struct sockaddr_in *s4 = (const void *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, ntohs(s4->sin_port));
    }
}

static void resume_accept(struct net_timer *t, void *data)
{
    struct net_server *s = data;
    (void)t;
    s->accept_timer = NULL;
    if (s->listen_fd >= 0)
        (void)net_loop_watch(s->loop, s->listen_fd, EPOLLIN, on_accept, s);
}

static void refuse_busy(struct net_server *s, int cfd)
{
    if (!s->tls)
        (void)!send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(cfd);
}

/* Out of descriptors: the spare one is given back to accept the oldest waiting connection and
 * refuse it with a 503, so clients are answered instead of hanging in the backlog. */
static bool accept_with_spare(struct net_server *s, int fd)
{
    if (s->spare_fd < 0)
        return false;
    close(s->spare_fd);
    s->spare_fd = -1;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd >= 0)
        refuse_busy(s, cfd);
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return cfd >= 0;
}

static void on_accept(int fd, uint32_t events, void *data)
{
    struct net_server *s = data;
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char peer[INET6_ADDRSTRLEN + 8];
        uint8_t key[16];
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && accept_with_spare(s, fd)) {
                log_warn("out of file descriptors (%zu connections open): refused a connection with 503", s->n_conns);
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* Out of descriptors: pause accepting instead of spinning on a level trigger. */
                log_warn("accept failed: %s; pausing new connections for %d ms", strerror(errno), ACCEPT_PAUSE_MS);
                net_loop_unwatch(s->loop, fd);
                s->accept_timer = net_timer_add(s->loop, now_ms() + ACCEPT_PAUSE_MS, resume_accept, s);
            }
            return;
        }
        format_peer(&ss, peer, sizeof(peer));
        if (s->n_conns >= s->lim.max_conns) {
            log_info("%s: refused: %zu connections open (the limit)", peer, s->n_conns);
            refuse_busy(s, cfd);
            continue;
        }
        peer_key(&ss, key);
        struct peer_count *pc = peer_get(s, key);
        if (!pc || pc->n >= s->lim.max_conns_per_peer) {
            if (pc && !pc->warned)
                log_info("%s: refused: %zu connections open from this address (the limit; said once)", peer, pc->n);
            if (pc)
                pc->warned = true;
            refuse_busy(s, cfd);
            continue;
        }
        struct net_conn *c = conn_new(s, cfd, peer);
        pc->n++;
        if (!c) {
            peer_release(s, pc);
            continue;
        }
        c->pc = pc;
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        server_touch(c);
    }
}

static int listen_on(const char *address, uint16_t port, int *out_fd, uint16_t *out_port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV},
                    *res = NULL;
    char portstr[8];
    int r, fd = -1, one = 1, zero = 0;

    snprintf(portstr, sizeof(portstr), "%u", port);
    /* All addresses: an IPv6 socket that also takes IPv4, or IPv4 alone where IPv6 is off. */
    const char *tries[2] = {address ? address : "::", address ? NULL : "0.0.0.0"};
    for (int t = 0; t < 2 && tries[t] && fd < 0; t++) {
        r = getaddrinfo(tries[t], portstr, &hints, &res);
        if (r != 0)
            return log_error_errno(-EINVAL, "%s: not a numeric address to listen on: %s", tries[t], gai_strerror(r));
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            /* Inherited by every accepted connection (no call per connection): a reply written in
             * several pieces (a TLS flight, a record after the handshake) is not held back until
             * the peer acknowledges the first piece, which it may delay by 40 ms. */
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            if (res->ai_family == AF_INET6 && !address)
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
            if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
                r = -errno;
                close(fd);
                fd = -1;
                if (address || t == 1 || r == -EADDRINUSE) {
                    freeaddrinfo(res);
                    return log_error_errno(r, "cannot listen on %s port %u: %m", tries[t], port);
                }
            }
        } else if (address || t == 1) {
            r = -errno;
            freeaddrinfo(res);
            return log_error_errno(r, "cannot create a socket for %s: %m", tries[t]);
        }
        freeaddrinfo(res);
        res = NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        r = -errno;
        close(fd);
        return log_error_errno(r, "getsockname failed: %m");
    }
    *out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *out_fd = fd;
    return 0;
}

int net_listen(const char *address, uint16_t port, int *fd, uint16_t *port_out)
{
    return listen_on(address, port, fd, port_out);
}

int net_server_new(struct net_loop *loop, const struct net_server_config *cfg, struct net_server **out)
{
    struct net_server *s = xcalloc(1, sizeof(*s));
    int r;

    s->loop = loop;
    s->lim = net_limits_resolve(&cfg->limits);
    s->tls = cfg->tls;
    s->on_drained = cfg->on_drained;
    s->data = cfg->data;
    s->listen_fd = -1;
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        s->lim.max_conns + FD_RESERVE > rl.rlim_cur) {
        size_t cap = rl.rlim_cur > 2 * FD_RESERVE ? (size_t)rl.rlim_cur - FD_RESERVE : (size_t)rl.rlim_cur / 2;
        log_warn("the descriptor limit is %llu: serving at most %zu connections, not %zu",
                 (unsigned long long)rl.rlim_cur, cap, s->lim.max_conns);
        s->lim.max_conns = cap;
    }
    if (cfg->use_listen_fd) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        s->listen_fd = cfg->listen_fd;
        r = getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) < 0 ? -errno : 0;
        if (r == 0)
            s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    } else {
        r = listen_on(cfg->address, cfg->port, &s->listen_fd, &s->port);
    }
    if (r < 0 || (r = net_loop_watch(loop, s->listen_fd, EPOLLIN, on_accept, s)) < 0) {
        net_server_free(s);
        return r;
    }
    *out = s;
    return 0;
}

static void close_listener(struct net_server *s)
{
    if (s->listen_fd < 0)
        return;
    net_loop_unwatch(s->loop, s->listen_fd);
    close(s->listen_fd);
    s->listen_fd = -1;
    net_timer_cancel(s->accept_timer);
    s->accept_timer = NULL;
}

void net_server_free(struct net_server *s)
{
    if (!s)
        return;
    net_loop_defer_cancel(s->loop, reap, s);
    close_listener(s);
    net_timer_cancel(s->drain_timer);
    net_timer_cancel(s->resume_timer);
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    for (struct net_conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (c->opened && !c->close_notified && c->route->h.on_close) {
            c->close_notified = true;
            c->route->h.on_close(c, NET_CLOSE_SHUTDOWN, c->route->h.data);
        }
        if (c->state != CS_DEAD)
            net_loop_unwatch(s->loop, c->st.fd);
        conn_free(c);
    }
    for (size_t i = 0; i < s->n_spare_in; i++)
        nbuf_free(&s->spare_in[i]);
    for (size_t i = 0; i < PEER_BUCKETS; i++)
        for (struct peer_count *p = s->peers[i], *n; p; p = n) {
            n = p->next;
            free(p);
        }
    for (struct route *r = s->routes, *n; r; r = n) {
        n = r->next;
        free(r->method);
        free(r->path);
        free(r);
    }
    free(s);
}

uint16_t net_server_port(const struct net_server *s) { return s->port; }

size_t net_server_conn_count(const struct net_server *s) { return s->n_conns; }

int net_server_route(struct net_server *s, const char *method, const char *path, const struct net_handler *h)
{
    method = method ? method : "GET";
    if (!path || path[0] != '/' || (!h->on_request && !h->on_open) || (h->on_request && h->on_open))
        return log_error_errno(-EINVAL, "route %s %s: needs a path and exactly one of on_request/on_open", method,
                               path ? path : "(null)");
    for (struct route *r = s->routes; r; r = r->next)
        if (strcmp(r->path, path) == 0 && strcmp(r->method, method) == 0)
            return log_error_errno(-EEXIST, "route %s %s is already taken", method, path);
    struct route *r = xcalloc(1, sizeof(*r));
    r->method = xstrdup(method);
    r->path = xstrdup(path);
    r->h = *h;
    r->next = s->routes;
    s->routes = r;
    return 0;
}

static void drain_deadline(struct net_timer *t, void *data)
{
    struct net_server *s = data;
    (void)t;
    s->drain_timer = NULL;
    for (struct net_conn *c = s->conns; c; c = c->next) {
        if (c->state == CS_DEAD)
            continue;
        log_info("%s: closed: the server is shutting down", c->peer);
        c->why_set = true;
        c->why = NET_CLOSE_SHUTDOWN;
        if (c->state == CS_WS)
            conn_ws_close(c, 1001, "server shutting down"); /* one write attempt */
        conn_kill(c, NET_CLOSE_SHUTDOWN);
    }
}

void net_server_drain(struct net_server *s, int timeout_ms)
{
    if (s->draining)
        return;
    s->draining = true;
    close_listener(s);
    for (struct net_conn *c = s->conns; c; c = c->next) {
        c->keep_alive = false;
        /* Idle keep-alive connections have nothing to finish. */
        if (c->state == CS_REQUEST && !c->partial && nbuf_unread(&c->in) == 0 && nbuf_unread(&c->out) == 0)
            conn_kill(c, NET_CLOSE_SHUTDOWN);
    }
    s->drain_timer = net_timer_add(s->loop, now_ms() + timeout_ms, drain_deadline, s);
    schedule_reap(s);
}
