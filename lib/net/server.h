/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The server's internal structures, shared by server.c (listener, routes, drain, reaping) and
 * conn.c (one connection's state machine). */
#ifndef KKMS_NET_SERVER_H
#define KKMS_NET_SERVER_H

#include <netinet/in.h>

#include "net_internal.h"

struct route {
    char *method, *path;
    struct net_handler h;
    struct route *next;
};

/* Open connections of one peer address (IPv4, or the /64 of an IPv6 address). */
struct peer_count {
    uint8_t key[16];
    size_t n;
    bool warned; /* its refusal was logged */
    struct peer_count *next;
};
#define PEER_BUCKETS 256

#define SPARE_BUFS 16

struct net_server {
    struct net_loop *loop;
    struct net_limits lim;
    struct ktls_server *tls;
    int listen_fd;
    uint16_t port;
    struct route *routes;
    struct net_conn *conns; /* every connection, dead ones until reaped */
    size_t n_conns;
    struct net_conn *reap; /* connections to look at after this batch */
    bool reap_scheduled;
    bool draining, drained_notified;
    struct net_timer *drain_timer, *accept_timer;
    struct net_timer *resume_timer; /* connections with input left over get their next turn */
    struct peer_count *peers[PEER_BUCKETS];
    int spare_fd; /* held in reserve: freed to accept-and-refuse when out of descriptors */
    /* Input buffers of closed connections (wiped), reused by new ones: no allocation of the
     * 16 KiB read buffer, and no page going back to the kernel, per connection. */
    struct nbuf spare_in[SPARE_BUFS];
    size_t n_spare_in;
    void (*on_drained)(struct net_server *s, void *data);
    void *data;
};

/* A connection's life: TLS → REQUEST (⇄ responses, keep-alive) → WS → FLUSH → LINGER → DEAD.
 * FLUSH sends what is queued, then shuts our side; LINGER reads and discards until the peer
 * closes (so our last bytes are not destroyed by a reset), both bounded by linger_ms. */
enum conn_state { CS_TLS, CS_REQUEST, CS_WS, CS_FLUSH, CS_LINGER, CS_DEAD };

struct net_conn {
    struct net_server *srv;
    int64_t busy_us; /* time spent in this connection's handlers (net_conn_busy_seconds) */
    struct net_conn *prev, *next, *reap_next;
    bool queued; /* on the reap list */
    struct net_stream st;
    char peer[INET6_ADDRSTRLEN + 8];
    enum conn_state state;
    struct nbuf in, out;
    struct http_scan scan;
    bool partial; /* part of a request arrived */
    bool keep_alive;
    bool responded;
    int hs_want;         /* TLS handshake: KTLS_WANT_READ/WRITE */
    bool read_wants_out; /* a TLS read needs the socket writable */
    uint32_t flush_wants;
    bool read_paused; /* too much output queued: stop reading until it drains */
    bool kick_read;   /* read again without waiting for epoll (TLS may hold data) */
    bool corked;      /* serving its input: answers are written once it is done (one send, not several) */
    uint32_t events;
    const struct route *route; /* the WebSocket route, once upgrading */
    bool upgrading;            /* inside on_open, 101 not sent yet */
    char accept[WS_ACCEPT_LEN + 1];
    struct ws_reader rd;
    bool opened, close_notified, close_sent, why_set;
    enum net_close_reason why;
    void *user;
    int64_t io_deadline, user_deadline, timer_at;
    bool held; /* net_conn_hold: no deadline or idle timeout closes it */
    struct net_timer *timer;
    struct peer_count *pc; /* this peer's count */
    int64_t born;          /* accepted at (ms): bounds the keep-alive life */
    size_t requests;       /* requests dispatched on this connection */
    int budget;            /* work units left this turn (a request costs COST_REQUEST, a frame 1) */
    bool backlog;          /* input left when the budget ran out: resumed on a later turn */
};
#define COST_REQUEST 4

/* The work allowed to one connection per loop turn. */
static inline int conn_turn_budget(const struct net_conn *c)
{
    return (int)c->srv->lim.requests_per_turn * COST_REQUEST;
}

/* server.c */
void server_touch(struct net_conn *c);   /* queue c for the after-batch pass */
void server_backlog(struct net_conn *c); /* c used its budget with input left: resume it later */
/* conn.c */
struct net_conn *conn_new(struct net_server *s, int fd, const char *peer);
void conn_free(struct net_conn *c);
void conn_kill(struct net_conn *c, enum net_close_reason why);
void conn_update(struct net_conn *c); /* epoll interest and timer from the state */
void conn_read(struct net_conn *c);
void conn_ws_close(struct net_conn *c, uint16_t code, const char *reason);

#endif
