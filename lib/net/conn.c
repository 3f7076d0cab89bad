/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* One server connection as a state machine (server.h): non-blocking reads and writes, deadlines,
 * and the transitions between states. HTTP requests and WebSocket frames are handled in
 * serve.c; a misbehaving peer only ever ends its own connection. */
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#define READS_PER_EVENT 16

void serve_input(struct net_conn *c); /* serve.c */
void serve_timeout(struct net_conn *c);

static void on_io(int fd, uint32_t events, void *data);

/* Output above this stops reading (a peer that sends pings but never reads our pongs). */
static size_t out_high(const struct net_conn *c) { return c->srv->lim.max_message + 64 * 1024; }

struct net_conn *conn_new(struct net_server *s, int fd, const char *peer)
{
    struct net_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        log_warn("%s: out of memory for a new connection; refused", peer);
        close(fd);
        return NULL;
    }
    c->srv = s;
    c->st.fd = fd;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->state = s->tls ? CS_TLS : CS_REQUEST;
    c->hs_want = KTLS_WANT_READ;
    c->born = now_ms();
    c->io_deadline = c->born + s->lim.request_timeout_ms;
    c->keep_alive = !s->draining;
    c->budget = (int)s->lim.requests_per_turn * COST_REQUEST;
    if (s->tls && ktls_session_server(s->tls, fd, peer, &c->st.tls) < 0) {
        close(fd);
        free(c);
        return NULL;
    }
    c->events = EPOLLIN;
    if (net_loop_watch(s->loop, fd, EPOLLIN, on_io, c) < 0) {
        stream_close(&c->st);
        free(c);
        return NULL;
    }
    if (s->n_spare_in)
        c->in = s->spare_in[--s->n_spare_in];
    return c;
}

void conn_free(struct net_conn *c)
{
    net_timer_cancel(c->timer);
    stream_close(&c->st);
    ws_reader_clear(&c->rd);
    /* Buffers may hold a passphrase on its way out or a token on its way in: every byte
     * written (not the whole 16 KiB an exchange of 3 KiB reserved). */
    if (c->in.data)
        secure_wipe(c->in.data, c->in.dirty);
    if (c->out.data)
        secure_wipe(c->out.data, c->out.dirty);
    if (c->in.data && c->in.cap >= NET_IO_CHUNK && c->in.cap <= 4 * NET_IO_CHUNK && c->srv->n_spare_in < SPARE_BUFS)
        c->srv->spare_in[c->srv->n_spare_in++] = (struct nbuf){.data = c->in.data, .cap = c->in.cap};
    else
        nbuf_free(&c->in);
    nbuf_free(&c->out);
    free(c);
}

static void set_why(struct net_conn *c, enum net_close_reason why)
{
    if (!c->why_set) {
        c->why_set = true;
        c->why = why;
    }
}

void conn_kill(struct net_conn *c, enum net_close_reason why)
{
    if (c->state == CS_DEAD)
        return;
    set_why(c, why);
    c->state = CS_DEAD;
    c->upgrading = false;
    /* Accepted by this process, close-on-exec: closing it is its last reference (a child
     * between fork and exec may hold it a moment; the loop drops its late events then). */
    net_loop_unwatch_closing(c->srv->loop, c->st.fd);
    net_timer_cancel(c->timer);
    c->timer = NULL;
    stream_close(&c->st);
    server_touch(c);
}

/* Our side is done: after the queued bytes, shut down writing and linger. */
static void conn_finish(struct net_conn *c);

static void conn_flush(struct net_conn *c)
{
    while (c->state != CS_DEAD && nbuf_unread(&c->out) > 0) {
        ssize_t n = stream_write(&c->st, nbuf_head(&c->out), nbuf_unread(&c->out));
        if (n > 0) {
            nbuf_consume(&c->out, (size_t)n);
        } else if (n == KTLS_WANT_WRITE || n == KTLS_WANT_READ) {
            c->flush_wants = n == KTLS_WANT_WRITE ? EPOLLOUT : EPOLLIN;
            break;
        } else {
            log_debug("%s: write failed: %s", c->peer, strerror(n < 0 ? (int)-n : EPIPE));
            conn_kill(c, NET_CLOSE_PEER_GONE);
            return;
        }
    }
    if (c->state == CS_DEAD)
        return;
    if (c->read_paused && nbuf_unread(&c->out) < out_high(c) / 2) {
        c->read_paused = false;
        c->kick_read = true;
    }
    if (nbuf_unread(&c->out) > out_high(c))
        c->read_paused = true;
    if (nbuf_unread(&c->out) == 0) {
        c->flush_wants = 0;
        nbuf_shrink(&c->out);
        if (c->state == CS_FLUSH) {
            if (c->st.tls)
                ktls_close_notify(c->st.tls);
            (void)shutdown(c->st.fd, SHUT_WR);
            c->state = CS_LINGER;
            c->io_deadline = now_ms() + c->srv->lim.linger_ms;
            /* Plain TCP: the level-triggered watch reports what the peer sent meanwhile. */
            c->kick_read = c->st.tls != NULL;
        }
    }
    server_touch(c);
}

static void conn_finish(struct net_conn *c)
{
    if (c->state == CS_DEAD || c->state == CS_FLUSH || c->state == CS_LINGER)
        return;
    c->upgrading = false;
    c->state = CS_FLUSH;
    c->io_deadline = now_ms() + c->srv->lim.linger_ms;
    conn_flush(c);
}

/* ---- used by serve.c ---- */
void conn_queue(struct net_conn *c, const void *p, size_t n, bool last);

void conn_queue(struct net_conn *c, const void *p, size_t n, bool last)
{
    if (nbuf_append(&c->out, p, n) < 0) {
        log_warn("%s: out of memory for the answer; closing", c->peer);
        conn_kill(c, NET_CLOSE_PROTOCOL);
        return;
    }
    if (last)
        conn_finish(c);
    else if (!c->corked)
        conn_flush(c);
}

void conn_ws_close(struct net_conn *c, uint16_t code, const char *reason)
{
    uint8_t payload[WS_MAX_CONTROL];
    if (c->state == CS_DEAD)
        return;
    if (!c->close_sent) {
        c->close_sent = true;
        if (ws_frame_append(&c->out, WS_OP_CLOSE, payload, ws_close_payload(payload, code, reason), NULL) < 0) {
            conn_kill(c, NET_CLOSE_PROTOCOL);
            return;
        }
    }
    set_why(c, NET_CLOSE_NORMAL);
    conn_finish(c);
}

static void conn_eof(struct net_conn *c)
{
    switch (c->state) {
    case CS_REQUEST:
        if (c->partial || nbuf_unread(&c->in) > 0)
            log_debug("%s: closed in the middle of a request", c->peer);
        break;
    case CS_WS:
        /* Upstream clients close TCP without a close frame (docs/upstream.md §9.12). */
        log_debug("%s: closed without a WebSocket close frame", c->peer);
        set_why(c, NET_CLOSE_PEER_GONE);
        break;
    default: break;
    }
    /* The peer may only have shut its sending side: what we queued still goes out. */
    if (nbuf_unread(&c->out) > 0 && c->state != CS_LINGER) {
        set_why(c, NET_CLOSE_PEER_GONE);
        conn_finish(c);
    } else {
        conn_kill(c, NET_CLOSE_PEER_GONE);
    }
}

/* Serves what was read; what the handlers answer meanwhile goes out together afterwards (the 101
 * and the first WebSocket message in one segment, a payload and its close frame in one). */
static void serve_corked(struct net_conn *c)
{
    c->corked = true;
    serve_input(c);
    c->corked = false;
    if (c->state != CS_DEAD && nbuf_unread(&c->out) > 0)
        conn_flush(c);
}

void conn_read(struct net_conn *c)
{
    uint8_t junk[4096];

    c->kick_read = false;
    c->read_wants_out = false;
    /* Input left over when reading paused (pipelined requests, frames) goes first. */
    if (nbuf_unread(&c->in) > 0 && !c->read_paused && (c->state == CS_REQUEST || c->state == CS_WS))
        serve_corked(c);
    for (int i = 0; i < READS_PER_EVENT || (c->st.tls && c->state != CS_DEAD && ktls_pending(c->st.tls)); i++) {
        ssize_t n;
        size_t want;
        if (c->state != CS_REQUEST && c->state != CS_WS && c->state != CS_LINGER)
            return;
        if (c->read_paused || c->backlog)
            return; /* no more input while what we hold waits for its turn */
        if (c->state == CS_LINGER) {
            want = sizeof(junk);
            n = stream_read(&c->st, junk, want);
        } else {
            if (nbuf_reserve(&c->in, NET_IO_CHUNK) < 0) {
                log_warn("%s: out of memory for its input; closing", c->peer);
                conn_kill(c, NET_CLOSE_PROTOCOL);
                return;
            }
            want = c->in.cap - c->in.len;
            n = stream_read(&c->st, c->in.data + c->in.len, want);
        }
        if (n > 0) {
            if (c->state != CS_LINGER) {
                c->in.len += (size_t)n;
                nbuf_mark(&c->in);
                serve_corked(c);
                nbuf_shrink(&c->in);
            }
            /* Plain TCP: a short read emptied the socket; the level-triggered watch reports the
             * next bytes (or the peer's FIN), which saves a read that would only say EAGAIN. */
            if (!c->st.tls && (size_t)n < want)
                return;
        } else if (n == 0) {
            conn_eof(c);
            return;
        } else if (n == KTLS_WANT_READ) {
            return;
        } else if (n == KTLS_WANT_WRITE) {
            c->read_wants_out = true;
            return;
        } else {
            log_debug("%s: read failed: %s", c->peer, strerror((int)-n));
            conn_kill(c, NET_CLOSE_PEER_GONE);
            return;
        }
    }
}

static void conn_handshake(struct net_conn *c)
{
    int r = ktls_handshake(c->st.tls);
    if (r == KTLS_WANT_READ || r == KTLS_WANT_WRITE) {
        c->hs_want = r;
    } else if (r < 0) {
        conn_kill(c, NET_CLOSE_PROTOCOL); /* ktls logged why */
    } else {
        c->state = CS_REQUEST;
        conn_read(c);
    }
}

static void on_io(int fd, uint32_t events, void *data)
{
    struct net_conn *c = data;
    (void)fd;
    if (events & EPOLLERR) {
        log_debug("%s: socket error", c->peer);
        conn_kill(c, NET_CLOSE_PEER_GONE);
    } else if (c->state == CS_TLS) {
        conn_handshake(c);
    } else {
        /* A new turn for this connection: a fresh budget of work. */
        if (!c->backlog)
            c->budget = conn_turn_budget(c);
        /* (TLS may need the socket readable to go on writing: any readiness retries.) */
        if ((events & (EPOLLOUT | EPOLLIN)) && nbuf_unread(&c->out) > 0)
            conn_flush(c);
        if (c->state != CS_DEAD && ((events & (EPOLLIN | EPOLLHUP)) || c->read_wants_out || c->kick_read))
            conn_read(c);
        /* HUP with nothing left to read or write: both directions are gone. */
        if (c->state != CS_DEAD && (events & EPOLLHUP) && c->read_paused)
            conn_kill(c, NET_CLOSE_PEER_GONE);
    }
    if (c->state != CS_DEAD)
        server_touch(c);
}

static void on_timer(struct net_timer *t, void *data)
{
    struct net_conn *c = data;
    (void)t;
    c->timer = NULL;
    c->timer_at = 0;
    serve_timeout(c);
    if (c->state != CS_DEAD)
        server_touch(c);
}

void conn_update(struct net_conn *c)
{
    uint32_t ev = 0;
    int64_t at;

    switch (c->state) {
    case CS_TLS: ev = c->hs_want == KTLS_WANT_WRITE ? EPOLLOUT : EPOLLIN; break;
    case CS_REQUEST:
    case CS_WS:
        if (!c->read_paused && !c->backlog)
            ev |= EPOLLIN;
        if (c->read_wants_out)
            ev |= EPOLLOUT;
        break;
    case CS_LINGER: ev |= EPOLLIN; break;
    default: break;
    }
    if (nbuf_unread(&c->out) > 0)
        ev |= c->flush_wants ? c->flush_wants : EPOLLOUT;
    if (ev != c->events && net_loop_watch_modify(c->srv->loop, c->st.fd, ev) == 0)
        c->events = ev;
    if (c->held) {
        net_timer_cancel(c->timer);
        c->timer = NULL;
        c->timer_at = 0;
        return;
    }
    at = c->io_deadline;
    if (c->state == CS_WS && c->user_deadline && c->user_deadline < at)
        at = c->user_deadline;
    if (at != c->timer_at || !c->timer) {
        net_timer_cancel(c->timer);
        c->timer = net_timer_add(c->srv->loop, at, on_timer, c);
        c->timer_at = at;
    }
}
