/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* What a server connection does with its input: HTTP requests routed by exact path, the
 * WebSocket upgrade (RFC 6455 §4.2), frames to handlers, and the answers to bad input and
 * deadlines. Also the net_conn_* functions handlers call. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server.h"

void conn_queue(struct net_conn *c, const void *p, size_t n, bool last); /* conn.c */
void serve_input(struct net_conn *c);
void serve_timeout(struct net_conn *c);

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Runs one handler call and adds its duration to the connection's busy time. */
#define TIMED(c, call)                   \
    do {                                 \
        int64_t t0_ = mono_us();         \
        call;                            \
        (c)->busy_us += mono_us() - t0_; \
    } while (0)

double net_conn_busy_seconds(const struct net_conn *c) { return (double)c->busy_us / 1e6; }

static void respond(struct net_conn *c, int status, const char *ctype, const void *body, size_t len,
                    const char *const *extra)
{
    struct nbuf h = {0};
    int r = nbuf_appendf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status,
                         http_reason(status), ctype ? ctype : "text/plain; charset=utf-8", len);
    if (!c->keep_alive && r == 0)
        r = nbuf_appendf(&h, "Connection: close\r\n");
    for (size_t i = 0; extra && extra[i] && r == 0; i++)
        r = nbuf_appendf(&h, "%s\r\n", extra[i]);
    if (r == 0)
        r = nbuf_append(&h, "\r\n", 2);
    if (r == 0)
        r = nbuf_append(&h, body, len);
    c->responded = true;
    if (r < 0) {
        log_warn("%s: out of memory for the answer; closing", c->peer);
        conn_kill(c, NET_CLOSE_PROTOCOL);
    } else {
        if (c->keep_alive) {
            /* Idle until the next request, but never past the connection's lifetime. */
            int64_t idle = now_ms() + c->srv->lim.idle_timeout_ms;
            int64_t end = c->born + c->srv->lim.max_conn_lifetime_ms;
            c->io_deadline = idle < end ? idle : end;
        }
        conn_queue(c, nbuf_head(&h), nbuf_unread(&h), !c->keep_alive);
    }
    if (h.data)
        secure_wipe(h.data, h.cap);
    nbuf_free(&h);
}

/* Our own answers to bad requests: the reason phrase as the body. After a well-formed request
 * (404, 405) the connection may stay; after anything else it closes. */
static void respond_status(struct net_conn *c, int status, const char *const *extra, bool close)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%s\n", http_reason(status));
    if (close)
        c->keep_alive = false;
    respond(c, status, NULL, body, (size_t)n, extra);
}

static void respond_error(struct net_conn *c, int status, const char *const *extra)
{
    respond_status(c, status, extra, true);
}

int net_conn_respond(struct net_conn *c, int status, const char *content_type, const void *body, size_t len,
                     const char *const *extra)
{
    if (c->state != CS_REQUEST || c->responded)
        return -EALREADY;
    if (status < 200 || status > 599)
        return log_error_errno(-EINVAL, "%s: cannot answer with status %d", c->peer, status);
    for (size_t i = 0; extra && extra[i]; i++)
        if (strpbrk(extra[i], "\r\n") || !strchr(extra[i], ':'))
            return log_error_errno(-EINVAL, "%s: bad extra header line", c->peer);
    if (c->upgrading) { /* a refused upgrade */
        c->upgrading = false;
        c->keep_alive = false;
    }
    respond(c, status, content_type, body ? body : "", body ? len : 0, extra);
    return 0;
}

/* ---- WebSocket ---- */

static void ws_accept(struct net_conn *c)
{
    char head[160];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     c->accept);
    c->upgrading = false;
    c->state = CS_WS;
    c->io_deadline = now_ms() + c->srv->lim.idle_timeout_ms;
    ws_reader_init(&c->rd, true, c->srv->lim.max_message);
    conn_queue(c, head, (size_t)n, false);
}

int net_conn_send(struct net_conn *c, enum net_ws_type type, const void *data, size_t len)
{
    if (c->upgrading)
        ws_accept(c);
    if (c->state != CS_WS || c->close_sent)
        return -ENOTCONN;
    if (type != NET_WS_TEXT && type != NET_WS_BINARY)
        return -EINVAL;
    if (ws_frame_append(&c->out, (uint8_t)type, data, len, NULL) < 0) {
        log_warn("%s: out of memory for a message; closing", c->peer);
        conn_kill(c, NET_CLOSE_PROTOCOL);
        return -ENOMEM;
    }
    conn_queue(c, NULL, 0, false);
    return c->state == CS_DEAD ? -ENOTCONN : 0;
}

void net_conn_close(struct net_conn *c, uint16_t code, const char *reason)
{
    if (c->upgrading)
        ws_accept(c);
    if (c->state == CS_WS)
        conn_ws_close(c, code, reason);
    else if (c->state == CS_REQUEST || c->state == CS_TLS)
        conn_kill(c, NET_CLOSE_NORMAL);
}

void net_conn_set_deadline(struct net_conn *c, int64_t at_ms)
{
    c->user_deadline = at_ms;
    if (c->state != CS_DEAD)
        server_touch(c);
}

void net_conn_set_data(struct net_conn *c, void *data) { c->user = data; }
void *net_conn_data(const struct net_conn *c) { return c->user; }
const char *net_conn_peer(const struct net_conn *c) { return c->peer; }

struct net_loop *net_conn_loop(const struct net_conn *c) { return c->srv->loop; }

void net_conn_hold(struct net_conn *c, bool on)
{
    c->held = on;
    if (!on) {
        c->user_deadline = 0;
        c->io_deadline = now_ms() + c->srv->lim.idle_timeout_ms;
    }
    if (c->state != CS_DEAD)
        server_touch(c);
}

static void ws_input(struct net_conn *c)
{
    const struct net_handler *h = &c->route->h;
    while (c->state == CS_WS) {
        struct ws_event ev;
        if (c->budget <= 0) {
            if (nbuf_unread(&c->in) > 0)
                server_backlog(c); /* the other connections first */
            return;
        }
        size_t used;
        uint16_t code;
        int r = ws_reader_next(&c->rd, nbuf_head(&c->in), nbuf_unread(&c->in), &used, &ev, &code);
        if (r < 0) {
            log_info("%s: WebSocket protocol error: %s", c->peer, c->rd.error);
            c->why_set = true;
            c->why = NET_CLOSE_PROTOCOL;
            conn_ws_close(c, code, c->rd.error);
            return;
        }
        if (used == 0)
            return;
        nbuf_consume(&c->in, used); /* events point into the reader, not the input */
        c->budget--;
        c->io_deadline = now_ms() + c->srv->lim.idle_timeout_ms;
        if (r == 0)
            continue;
        switch (ev.kind) {
        case WS_EV_MESSAGE:
            if (h->on_message)
                TIMED(c, h->on_message(c, ev.opcode == WS_OP_TEXT ? NET_WS_TEXT : NET_WS_BINARY, ev.data, ev.len,
                                       h->data));
            break;
        case WS_EV_PING:
            if (!c->close_sent) {
                if (ws_frame_append(&c->out, WS_OP_PONG, ev.data, ev.len, NULL) < 0)
                    conn_kill(c, NET_CLOSE_PROTOCOL);
                else
                    conn_queue(c, NULL, 0, false);
            }
            break;
        case WS_EV_PONG: break;
        case WS_EV_CLOSE: conn_ws_close(c, ev.code == 1005 ? 1000 : ev.code, NULL); break;
        }
    }
}

/* Gorilla's rule: an Origin, when sent, must name the host the request went to. */
static bool same_origin(const char *origin, const char *host)
{
    const char *p = strstr(origin, "://");
    if (!p || !host)
        return false;
    p += 3;
    size_t n = strcspn(p, "/");
    return strlen(host) == n && strncasecmp(p, host, n) == 0;
}

static void ws_upgrade(struct net_conn *c, const struct route *rt, const struct net_request *req)
{
    static const char *const want_ws[] = {"Upgrade: websocket", "Sec-WebSocket-Version: 13", NULL};
    const char *key = http_head_get(&req->h, "Sec-WebSocket-Key");
    const char *version = http_head_get(&req->h, "Sec-WebSocket-Version");
    const char *origin = http_head_get(&req->h, "Origin");

    if (!http_has_token(http_head_get(&req->h, "Upgrade"), "websocket") ||
        !http_has_token(http_head_get(&req->h, "Connection"), "upgrade")) {
        log_info("%s: GET %s without a WebSocket upgrade: 426", c->peer, req->h.path);
        respond_error(c, 426, want_ws);
    } else if (!version || strcmp(version, "13") != 0) {
        log_info("%s: unsupported Sec-WebSocket-Version %s: 426", c->peer, version ? version : "(none)");
        respond_error(c, 426, want_ws + 1);
    } else if (req->h.version_minor < 1 || !ws_key_valid(key)) {
        log_info("%s: bad Sec-WebSocket-Key: 400", c->peer);
        respond_error(c, 400, NULL);
    } else if (origin && !same_origin(origin, http_head_get(&req->h, "Host"))) {
        log_info("%s: cross-origin WebSocket request from %s: 403", c->peer, origin);
        respond_error(c, 403, NULL);
    } else {
        ws_accept_key(key, c->accept);
        c->route = rt;
        c->upgrading = true;
        c->opened = true;
        c->keep_alive = false;
        TIMED(c, rt->h.on_open(c, req, rt->h.data));
        if (c->upgrading)
            ws_accept(c);
    }
}

static void dispatch(struct net_conn *c, const struct net_request *req)
{
    const struct route *found = NULL;
    char allow[256] = "Allow: ";
    bool path_known = false;

    for (const struct route *r = c->srv->routes; r; r = r->next) {
        if (strcmp(r->path, req->h.path) != 0)
            continue;
        if (path_known && strlen(allow) + strlen(r->method) + 3 < sizeof(allow))
            strcat(allow, ", ");
        if (strlen(allow) + strlen(r->method) + 1 < sizeof(allow))
            strcat(allow, r->method);
        path_known = true;
        if (strcmp(r->method, req->h.method) == 0)
            found = r;
    }
    /* A keep-alive connection serves a bounded number of requests for a bounded time: a peer
     * cannot hold a slot forever with a trickle of cheap requests. */
    c->requests++;
    c->keep_alive = req->h.keep_alive && req->h.version_minor >= 1 && !c->srv->draining &&
                    c->requests < c->srv->lim.max_requests_per_conn &&
                    now_ms() - c->born < c->srv->lim.max_conn_lifetime_ms;
    c->responded = false;
    if (!found) {
        const char *const extra[] = {allow, NULL};
        log_info("%s: %s %s: %d", c->peer, req->h.method, req->h.path, path_known ? 405 : 404);
        respond_status(c, path_known ? 405 : 404, path_known ? extra : NULL, false);
    } else if (found->h.on_open) {
        ws_upgrade(c, found, req);
    } else {
        TIMED(c, found->h.on_request(c, req, found->h.data));
        if (!c->responded && c->state == CS_REQUEST) {
            log_error("%s: %s %s: the handler gave no answer", c->peer, req->h.method, req->h.path);
            respond_error(c, 500, NULL);
        }
    }
}

static bool http_input(struct net_conn *c)
{
    struct net_request req;
    size_t used = 0;

    if (!c->partial) {
        c->partial = true;
        c->io_deadline = now_ms() + c->srv->lim.request_timeout_ms;
    }
    int r = http_parse_request(nbuf_head(&c->in), nbuf_unread(&c->in), &c->srv->lim, &c->scan, &req, &used);
    if (r == 0)
        return false;
    if (r < 0) {
        log_info("%s: bad request: %d %s", c->peer, -r, http_reason(-r));
        respond_error(c, -r, NULL);
        return false;
    }
    nbuf_consume(&c->in, used);
    c->scan = (struct http_scan){0};
    c->partial = false;
    dispatch(c, &req);
    http_request_clear(&req);
    return c->state == CS_REQUEST;
}

void serve_input(struct net_conn *c)
{
    while (c->state == CS_REQUEST && nbuf_unread(&c->in) > 0 && !c->read_paused) {
        if (c->budget < COST_REQUEST) {
            server_backlog(c); /* pipelined requests wait while other connections are served */
            return;
        }
        if (!http_input(c))
            break;
        c->budget -= COST_REQUEST;
    }
    if (c->state == CS_WS)
        ws_input(c);
}

void serve_timeout(struct net_conn *c)
{
    int64_t now = now_ms();
    if (c->held)
        return;
    if (c->state == CS_WS && c->user_deadline && now >= c->user_deadline) {
        log_info("%s: the exchange did not finish in time; closing", c->peer);
        c->why_set = true;
        c->why = NET_CLOSE_TIMEOUT;
        conn_ws_close(c, 1008, "timeout");
        return;
    }
    if (now < c->io_deadline)
        return;
    switch (c->state) {
    case CS_TLS:
        log_info("%s: TLS handshake not finished in time", c->peer);
        conn_kill(c, NET_CLOSE_TIMEOUT);
        break;
    case CS_REQUEST:
        if (c->partial) {
            log_info("%s: request not complete in time: 408", c->peer);
            respond_error(c, 408, NULL);
        } else {
            conn_kill(c, NET_CLOSE_TIMEOUT); /* an idle keep-alive connection */
        }
        break;
    case CS_WS:
        log_info("%s: WebSocket idle for too long; closing", c->peer);
        c->why_set = true;
        c->why = NET_CLOSE_TIMEOUT;
        conn_ws_close(c, 1001, "idle timeout");
        break;
    case CS_FLUSH:
        log_info("%s: the peer does not read our answer; dropping", c->peer);
        conn_kill(c, NET_CLOSE_TIMEOUT);
        break;
    default: conn_kill(c, NET_CLOSE_NORMAL); break;
    }
}
