/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/net: an epoll event loop with timers, an HTTP/1.1 + WebSocket (RFC 6455) server driven by
 * it, and blocking clients with deadlines (WebSocket and plain HTTP) for the node side.
 * TLS comes from lib/crypto (tls.h). Every size, count and time is bounded (struct net_limits).
 * Functions return 0 or a negative errno and log one line naming the peer and the reason. */
#ifndef KKMS_NET_H
#define KKMS_NET_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls.h"

/* ---- limits: a zero field means the default shown ---- */
struct net_limits {
    size_t max_request_line;      /* 8 KiB: request line, and each header line */
    size_t max_header_bytes;      /* 32 KiB: all header lines together */
    size_t max_headers;           /* 64 */
    size_t max_body;              /* 1 MiB: Content-Length of a request (or of a client's response) */
    size_t max_message;           /* 1 MiB: one reassembled WebSocket message */
    int request_timeout_ms;       /* 10 s: TLS handshake + one whole request (or WS handshake) */
    int idle_timeout_ms;          /* 30 s: keep-alive wait, and a WebSocket without a complete frame */
    int linger_ms;                /* 2 s: after our last byte, how long we read and discard */
    size_t max_conns;             /* 1024 concurrent connections; more are answered 503 (lowered to
                               * stay 64 below RLIMIT_NOFILE) */
    size_t max_conns_per_peer;    /* 32 concurrent connections from one address; more get 503 */
    size_t max_requests_per_conn; /* 100 requests on one keep-alive connection, then it closes */
    int max_conn_lifetime_ms;     /* 120 s: no new request starts on a connection older than this
                               * (a WebSocket exchange has its own deadline) */
    size_t requests_per_turn;     /* 4 requests (or 4x that many WebSocket frames) of one connection
                               * per loop turn; the rest waits while others are served */
};
/* Copies l with every zero field replaced by its default. */
struct net_limits net_limits_resolve(const struct net_limits *l);

/* ---- event loop ---- */
struct net_loop;
struct net_timer;
typedef void (*net_timer_fn)(struct net_timer *t, void *data);
typedef void (*net_fd_fn)(int fd, uint32_t epoll_events, void *data);
typedef void (*net_signal_fn)(struct net_loop *loop, int signo, void *data);

/* A new loop; *out owned by the caller (net_loop_free). */
int net_loop_new(struct net_loop **out);
/* Frees the loop and its timers and watches (NULL is fine). Servers must be freed first. */
void net_loop_free(struct net_loop *loop);
/* Runs until net_loop_quit(); 0, or a negative errno if epoll fails. */
int net_loop_run(struct net_loop *loop);
/* Makes net_loop_run() return after the current iteration. */
void net_loop_quit(struct net_loop *loop);
/* A one-shot timer at absolute monotonic time at_ms (now_ms() base); owned by the loop until it
 * fires (then freed after fn returns) or is cancelled. */
struct net_timer *net_timer_add(struct net_loop *loop, int64_t at_ms, net_timer_fn fn, void *data);
/* Cancels and frees a pending timer (NULL is fine); not from inside its own callback. */
void net_timer_cancel(struct net_timer *t);
/* Calls fn when fd has any of the epoll events (level-triggered). fd stays the caller's: unwatch
 * it before closing it. -EEXIST when fd is already watched. */
int net_loop_watch(struct net_loop *loop, int fd, uint32_t events, net_fd_fn fn, void *data);
int net_loop_watch_modify(struct net_loop *loop, int fd, uint32_t events);
void net_loop_unwatch(struct net_loop *loop, int fd);
/* The same for an fd the caller closes right away and that is its socket's only descriptor in
 * any process (a connection's): close(2) takes it out of the epoll set, one syscall fewer. */
void net_loop_unwatch_closing(struct net_loop *loop, int fd);
/* Delivers signo (blocked for the process by this call) through the loop, via a signalfd. */
int net_loop_on_signal(struct net_loop *loop, int signo, net_signal_fn fn, void *data);

/* Work that may wait (a store request during an etcd leader election) runs on one thread of
 * the loop, one job at a time in the order given, while the loop goes on serving; done(data, 0)
 * then runs on the loop. A job whose turn comes after start_by (now_ms() base; 0 = any time) is
 * not run: done(data, -ETIMEDOUT), so that jobs queued behind slow ones do not wait without
 * bound. At most NET_OFFLOAD_MAX jobs are given and not yet handed back: -EBUSY beyond.
 * net_loop_free waits for the job running and calls done(data, -ECANCELED) for those never run.
 * The thread starts with the first job (in the process that serves, after a fork) and blocks
 * every signal. */
#define NET_OFFLOAD_MAX 256
typedef void (*net_work_fn)(void *data);
typedef void (*net_done_fn)(void *data, int status);
int net_loop_offload(struct net_loop *loop, net_work_fn work, net_done_fn done, void *data, int64_t start_by);

/* ---- URLs ---- */
struct net_url {
    char scheme[8];  /* lower case: http, https, ws or wss */
    bool tls;        /* https or wss */
    char *host;      /* host name or address, IPv6 without brackets */
    char *authority; /* host[:port] as written (brackets kept): the Host header */
    uint16_t port;   /* explicit, or 80/443 */
    char *path;      /* path and query, "/" when empty; the fragment is dropped */
};
/* Parses scheme://host[:port][/path][?query]; no user info. Strings owned by u (net_url_clear). */
int net_url_parse(const char *s, struct net_url *u);
void net_url_clear(struct net_url *u);
/* base + path with exactly one '/' between them ("http://kms/" + "/getPass" ->
 * "http://kms/getPass", docs/upstream.md §8.11). Returns a malloc'd string owned by the caller. */
char *net_url_join(const char *base, const char *path);

/* ---- HTTP requests as the server hands them to handlers ---- */
struct net_header {
    const char *name;
    const char *value;
};
struct net_request;
const char *net_request_method(const struct net_request *r);
/* The path of the target, without the query. */
const char *net_request_path(const struct net_request *r);
/* The query after '?', or "" (not decoded). */
const char *net_request_query(const struct net_request *r);
/* The value of the first header of that name (case-insensitive), or NULL. Owned by r. */
const char *net_request_header(const struct net_request *r, const char *name);
size_t net_request_header_count(const struct net_request *r);
const struct net_header *net_request_header_at(const struct net_request *r, size_t i);
/* The body (Content-Length bytes, NUL-terminated for convenience); owned by r. */
const uint8_t *net_request_body(const struct net_request *r, size_t *len);

/* ---- server ---- */
struct net_server;
struct net_conn;

enum net_ws_type { NET_WS_TEXT = 1, NET_WS_BINARY = 2 };

/* How a connection ended, passed to on_close. */
enum net_close_reason {
    NET_CLOSE_NORMAL = 0, /* a close handshake (either side) */
    NET_CLOSE_PEER_GONE,  /* the peer closed TCP or reset it */
    NET_CLOSE_TIMEOUT,    /* a deadline passed (net_conn_set_deadline or idle) */
    NET_CLOSE_PROTOCOL,   /* the peer broke RFC 6455 or a limit */
    NET_CLOSE_SHUTDOWN,   /* the server was drained or freed */
};

/* One route. HTTP routes set on_request; WebSocket routes set on_open (and usually on_message,
 * on_close). data is passed to every callback. All callbacks run on the loop's thread. */
struct net_handler {
    /* HTTP: the complete request; must answer with net_conn_respond() before returning. */
    void (*on_request)(struct net_conn *c, const struct net_request *req, void *data);
    /* WebSocket: a valid upgrade arrived. The handler may refuse it with net_conn_respond()
     * (e.g. 401); otherwise the 101 is sent, before anything the handler sends. req is only
     * valid during the call: copy what you need. */
    void (*on_open)(struct net_conn *c, const struct net_request *req, void *data);
    /* WebSocket: one complete message (reassembled, text already checked as UTF-8). msg is
     * owned by the connection and valid during the call only. */
    void (*on_message)(struct net_conn *c, enum net_ws_type type, const uint8_t *msg, size_t len, void *data);
    /* WebSocket: the connection is going away (called once, if on_open was called); free the
     * per-connection data here. c must not be used after this returns. */
    void (*on_close)(struct net_conn *c, enum net_close_reason why, void *data);
    void *data;
};

struct net_server_config {
    const char *address;     /* numeric address to bind, NULL = all (IPv6 dual-stack, or IPv4) */
    uint16_t port;           /* 0 = any free port (see net_server_port) */
    struct ktls_server *tls; /* NULL = plain HTTP; not owned, must outlive the server */
    struct net_limits limits;
    /* Called once a drain finished (no connection left); NULL = net_loop_quit(). */
    void (*on_drained)(struct net_server *s, void *data);
    void *data;
    /* A listening socket from net_listen (shared by worker processes) instead of address/port;
     * the server closes its copy when it stops. */
    bool use_listen_fd;
    int listen_fd;
};

/* Binds and listens as net_server_new does, for a socket that several worker processes share
 * (net_server_config.listen_fd): *fd and the port bound. */
int net_listen(const char *address, uint16_t port, int *fd, uint16_t *port_out);

/* Binds and listens; connections are served by loop. *out owned by the caller. */
int net_server_new(struct net_loop *loop, const struct net_server_config *cfg, struct net_server **out);
/* Closes every connection (on_close with NET_CLOSE_SHUTDOWN) and the listener (NULL is fine). */
void net_server_free(struct net_server *s);
/* The port actually bound. */
uint16_t net_server_port(const struct net_server *s);
/* Adds a route for an exact path (no prefix matching: "/getPass/" is 404). method NULL means
 * GET. h is copied. -EEXIST when the method+path pair is taken. */
int net_server_route(struct net_server *s, const char *method, const char *path, const struct net_handler *h);
/* Graceful stop (SIGTERM): stop accepting, close idle connections, let open exchanges finish,
 * close the rest after timeout_ms; then cfg.on_drained. */
void net_server_drain(struct net_server *s, int timeout_ms);
/* Open connections. */
size_t net_server_conn_count(const struct net_server *s);

/* Queues an HTTP response (status 200-599) with Content-Length (content_type NULL =
 * text/plain; charset=utf-8); body copied. extra: more header lines ("Name: value"),
 * NULL-terminated, or NULL. Only inside on_request, or inside on_open to refuse the upgrade;
 * -EALREADY elsewhere or when already answered. */
int net_conn_respond(struct net_conn *c, int status, const char *content_type, const void *body, size_t len,
                     const char *const *extra);
/* Queues one WebSocket message (one unmasked frame); data copied. -ENOTCONN once closing. */
int net_conn_send(struct net_conn *c, enum net_ws_type type, const void *data, size_t len);
/* Starts a close: sends a close frame (code, e.g. 1000, and reason), flushes, closes.
 * on_close follows (from the loop, not from inside this call). */
void net_conn_close(struct net_conn *c, uint16_t code, const char *reason);
/* An absolute monotonic deadline (now_ms() base) for the whole exchange; 0 removes it. When it
 * passes the connection is closed with NET_CLOSE_TIMEOUT. */
void net_conn_set_deadline(struct net_conn *c, int64_t at_ms);
/* Per-connection user data (initially NULL); not freed by the library. */
void net_conn_set_data(struct net_conn *c, void *data);
void *net_conn_data(const struct net_conn *c);
/* Seconds spent so far inside this connection's handler calls (on_open, on_message,
 * on_request): the server's own work on an exchange, without the time spent waiting for the peer. */
double net_conn_busy_seconds(const struct net_conn *c);
/* "address:port" of the peer, for log lines; owned by c. */
const char *net_conn_peer(const struct net_conn *c);
/* The loop serving c. */
struct net_loop *net_conn_loop(const struct net_conn *c);
/* on: the server works for c (a job on the offload thread), so neither its exchange deadline
 * nor the idle timeout closes it meanwhile (the job's own deadline bounds the wait); the peer
 * closing, a drain or the server's end still do. off: the exchange deadline is gone and the
 * idle timeout starts again from now. */
void net_conn_hold(struct net_conn *c, bool on);

/* ---- clients (blocking; every call bounded by the deadline) ---- */
struct net_client_opts {
    struct ktls_client *tls;          /* for https/wss; NULL = system CA bundle only. Not owned. */
    const char *host_header;          /* Host header instead of the URL's (mDNS: the original name);
                                * its host is also the TLS server name */
    const struct net_header *headers; /* extra request headers (no CR/LF in them) */
    size_t n_headers;
    int64_t deadline_ms;    /* absolute monotonic deadline for everything; 0 = now + 30 s */
    int connect_timeout_ms; /* per address tried; 0 = 10 s */
    size_t max_message;     /* WebSocket message / HTTP response body; 0 = 1 MiB */
};

/* Errors of the clients, besides those of ktls (KTLS_ERR_CERT: never retry):
 * -ENXIO name not resolved, -ECONNREFUSED/-ETIMEDOUT/-EHOSTUNREACH connect failed,
 * -ETIME the deadline passed, -EACCES upgrade refused with 401/403, -ENOENT refused with 404,
 * -EPROTO anything the peer got wrong. */

struct net_ws_client;
/* Dials url (ws, wss, http = ws, https = wss), upgrades, checks Sec-WebSocket-Accept.
 * *out owned by the caller (net_ws_free). */
int net_ws_dial(const char *url, const struct net_client_opts *o, struct net_ws_client **out);
/* Sends one masked message (a single frame). */
int net_ws_send(struct net_ws_client *c, enum net_ws_type type, const void *data, size_t len);
/* Receives the next message (fragments reassembled; pings answered). *data is malloc'd,
 * NUL-terminated and owned by the caller. -ECONNRESET when the server closed between messages
 * (with or without a close frame: upstream servers just close TCP); that one is only logged at
 * debug level, as it may be expected. */
int net_ws_recv(struct net_ws_client *c, enum net_ws_type *type, uint8_t **data, size_t *len);
/* The close code the server sent (1005 none given, 1006 no close frame), once recv said so. */
int net_ws_close_code(const struct net_ws_client *c);
/* Sends a close frame (best effort, within the deadline) and frees (NULL is fine). */
void net_ws_free(struct net_ws_client *c);

struct net_http_response {
    int status;
    char *reason;
    struct net_header *headers; /* n_headers entries, strings owned by the response */
    size_t n_headers;
    uint8_t *body; /* NUL-terminated */
    size_t body_len;
};
/* One HTTP/1.1 request on its own connection (Connection: close). body may be NULL. The body
 * of the response (Content-Length, chunked or up to EOF) is bounded by max_message.
 * *out owned by the caller (net_http_response_free). Any status is a success here. */
int net_http_request(const char *method, const char *url, const char *content_type, const void *body, size_t len,
                     const struct net_client_opts *o, struct net_http_response **out);
void net_http_response_free(struct net_http_response *r);
/* The first header of that name (case-insensitive), or NULL. */
const char *net_http_response_header(const struct net_http_response *r, const char *name);

/* ---- streaming HTTP client (http_stream.c) ----
 * One request on its own connection, then the response body as it arrives (chunked, with a
 * Content-Length, or up to EOF), de-chunked: for endless answers such as etcd's watch. One chunk
 * may be at most o->max_message bytes (default 1 MiB); the body as a whole is not bounded here,
 * the caller bounds what it keeps. */
struct net_http_stream;
/* Sends the request and reads the response head, all before o->deadline_ms. Any status is a
 * success here. *out owned by the caller (net_http_stream_free). Errors as net_http_request. */
int net_http_stream_open(const char *method, const char *url, const char *content_type, const void *body, size_t len,
                         const struct net_client_opts *o, struct net_http_stream **out);
int net_http_stream_status(const struct net_http_stream *s);
/* The first header of that name (case-insensitive), or NULL. */
const char *net_http_stream_header(const struct net_http_stream *s, const char *name);
/* Up to n bytes of the body: the count (> 0), 0 at its end, -ETIME when nothing arrived before
 * the absolute monotonic deadline_ms (not logged; the stream stays usable), or a negative errno
 * (logged, naming the URL). */
ssize_t net_http_stream_read(struct net_http_stream *s, void *buf, size_t n, int64_t deadline_ms);
/* Closes the connection and frees (NULL is fine). */
void net_http_stream_free(struct net_http_stream *s);

#endif
