/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The WebSocket client of the node (initramfs): blocking, every step bounded by one deadline.
 * Interoperates with gorilla/websocket servers: fragmented messages, no close frame at the end
 * (docs/upstream.md §9.12). */
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "net_internal.h"

#define ERROR_BODY_MAX 512

struct net_ws_client {
    struct net_stream st;
    struct ktls_client *own_tls; /* made here when the caller gave none */
    char *peer;                  /* the URL, for messages */
    int64_t deadline;
    struct nbuf in;
    struct ws_reader rd;
    int close_code;
    bool closed; /* no more frames may be sent */
};

static int fill_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return log_error_errno(-errno, "getrandom failed: %m");
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The response body of a refused upgrade, for the error message (bounded, best effort). */
static void read_error_body(struct net_ws_client *c, const struct http_head *h, size_t head, char *out, size_t n)
{
    size_t want = h->has_length && h->content_length < ERROR_BODY_MAX ? (size_t)h->content_length : ERROR_BODY_MAX;
    nbuf_consume(&c->in, head);
    int64_t until = now_ms() + 1000 < c->deadline ? now_ms() + 1000 : c->deadline;
    while (nbuf_unread(&c->in) < want) {
        if (nbuf_reserve(&c->in, NET_IO_CHUNK) < 0)
            break;
        ssize_t r = stream_read_deadline(&c->st, c->in.data + c->in.len, c->in.cap - c->in.len, until);
        if (r <= 0)
            break;
        c->in.len += (size_t)r;
    }
    size_t len = nbuf_unread(&c->in) < want ? nbuf_unread(&c->in) : want, o = 0;
    const uint8_t *p = nbuf_head(&c->in);
    for (size_t i = 0; i < len && o + 1 < n; i++)
        out[o++] = p[i] == '\n' || p[i] == '\r' ? ' ' : (p[i] < 0x20 || p[i] == 0x7f ? '?' : (char)p[i]);
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = 0;
}

static int check_upgrade(struct net_ws_client *c, const char *key, const struct net_limits *l)
{
    struct http_head h;
    char want[WS_ACCEPT_LEN + 1], body[ERROR_BODY_MAX + 1];
    int head = stream_read_head(&c->st, &c->in, l, c->deadline, c->peer), r = 0;

    if (head < 0)
        return head;
    if (http_parse_response_head(nbuf_head(&c->in), (size_t)head, l, &h) < 0) {
        http_head_clear(&h);
        return log_error_errno(-EPROTO, "%s: the server's answer is not HTTP", c->peer);
    }
    if (h.status != 101) {
        read_error_body(c, &h, (size_t)head, body, sizeof(body));
        r = h.status == 401 || h.status == 403 ? -EACCES : h.status == 404 ? -ENOENT : -EPROTO;
        /* Upstream shows the body of a 401 as the error (docs/upstream.md §5.3). */
        log_error("%s: WebSocket upgrade refused: %d %s%s%s", c->peer, h.status, h.reason, *body ? ": " : "", body);
        http_head_clear(&h);
        return r;
    }
    ws_accept_key(key, want);
    const char *accept = http_head_get(&h, "Sec-WebSocket-Accept");
    if (!http_has_token(http_head_get(&h, "Upgrade"), "websocket") ||
        !http_has_token(http_head_get(&h, "Connection"), "upgrade"))
        r = log_error_errno(-EPROTO, "%s: the 101 answer does not upgrade to websocket", c->peer);
    else if (!accept || strcmp(accept, want) != 0)
        r = log_error_errno(-EPROTO, "%s: wrong Sec-WebSocket-Accept in the 101 answer", c->peer);
    else if (http_head_get(&h, "Sec-WebSocket-Extensions"))
        r = log_error_errno(-EPROTO, "%s: the server chose an extension we did not offer", c->peer);
    http_head_clear(&h);
    if (r == 0)
        nbuf_consume(&c->in, (size_t)head); /* frames sent right after the 101 stay buffered */
    return r;
}

int net_ws_dial(const char *url, const struct net_client_opts *o, struct net_ws_client **out)
{
    struct net_limits l = net_limits_resolve(&(struct net_limits){.max_message = o ? o->max_message : 0});
    struct net_url u;
    struct nbuf req = {0};
    uint8_t nonce[16];
    _cleanup_free_ char *key = NULL;
    int r;

    if ((r = net_url_parse(url, &u)) < 0)
        return log_error_errno(r, "%s: not a valid ws://, wss://, http:// or https:// URL", url);
    struct net_ws_client *c = xcalloc(1, sizeof(*c));
    c->st.fd = -1;
    c->peer = xstrdup(url);
    c->deadline = net_client_deadline(o);
    c->close_code = 1006;
    ws_reader_init(&c->rd, false, l.max_message);

    for (size_t i = 0; o && i < o->n_headers; i++)
        if (!http_header_ok(o->headers[i].name, o->headers[i].value)) {
            r = log_error_errno(-EINVAL, "%s: header %s cannot be sent (bad characters)", url,
                                o->headers[i].name ? o->headers[i].name : "(null)");
            goto fail;
        }
    if (o && o->host_header && !http_header_ok("Host", o->host_header)) {
        r = log_error_errno(-EINVAL, "%s: bad Host header value", url);
        goto fail;
    }
    struct ktls_client *tls = o ? o->tls : NULL;
    if (u.tls && !tls) {
        if ((r = ktls_client_new(NULL, 0, true, &c->own_tls)) < 0)
            goto fail;
        tls = c->own_tls;
    }
    if ((r = net_dial(&u, o, tls, c->deadline, url, &c->st)) < 0)
        goto fail;
    if ((r = fill_random(nonce, sizeof(nonce))) < 0)
        goto fail;
    key = base64_encode(nonce, sizeof(nonce), BASE64_STD, NULL);
    r = nbuf_appendf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\n", u.path,
                     o && o->host_header ? o->host_header : u.authority);
    if (r == 0)
        r = nbuf_appendf(&req,
                         "User-Agent: kairos-kms/%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                         KKMS_VERSION, key);
    for (size_t i = 0; r == 0 && o && i < o->n_headers; i++)
        r = nbuf_appendf(&req, "%s: %s\r\n", o->headers[i].name, o->headers[i].value);
    if (r == 0)
        r = nbuf_append(&req, "\r\n", 2);
    if (r == 0)
        r = stream_write_all_deadline(&c->st, req.data, req.len, c->deadline);
    else
        log_error_errno(r, "%s: out of memory for the upgrade request", url);
    if (req.data)
        secure_wipe(req.data, req.cap); /* the Authorization header carries the node's token */
    nbuf_free(&req);
    if (r < 0) {
        if (r != -ENOMEM)
            stream_error(&c->st, r, url, "sending the upgrade request");
        goto fail;
    }
    if ((r = check_upgrade(c, key, &l)) < 0)
        goto fail;
    net_url_clear(&u);
    *out = c;
    return 0;
fail:
    net_url_clear(&u);
    c->closed = true;
    net_ws_free(c);
    return r;
}

static int send_frame(struct net_ws_client *c, uint8_t opcode, const void *data, size_t len)
{
    struct nbuf b = {0};
    uint8_t mask[4];
    int r;

    if (c->closed)
        return log_error_errno(-ENOTCONN, "%s: the connection is closed", c->peer);
    if ((r = fill_random(mask, sizeof(mask))) < 0)
        return r;
    if (ws_frame_append(&b, opcode, data, len, mask) < 0)
        return log_error_errno(-ENOMEM, "%s: out of memory for a message", c->peer);
    r = stream_write_all_deadline(&c->st, b.data, b.len, c->deadline);
    secure_wipe(b.data, b.cap); /* the payload may be a passphrase */
    nbuf_free(&b);
    if (r < 0) {
        c->closed = true;
        return stream_error(&c->st, r, c->peer, "sending");
    }
    return 0;
}

int net_ws_send(struct net_ws_client *c, enum net_ws_type type, const void *data, size_t len)
{
    if (type != NET_WS_TEXT && type != NET_WS_BINARY)
        return -EINVAL;
    return send_frame(c, (uint8_t)type, data, len);
}

/* Best effort and quiet: a second at most, within the caller's deadline. */
static void send_close(struct net_ws_client *c, uint16_t code, const char *reason)
{
    uint8_t payload[WS_MAX_CONTROL], mask[4] = {0};
    struct nbuf b = {0};
    int64_t until = now_ms() + 1000 < c->deadline ? now_ms() + 1000 : c->deadline;

    if (c->closed)
        return;
    c->closed = true;
    (void)fill_random(mask, sizeof(mask));
    if (ws_frame_append(&b, WS_OP_CLOSE, payload, ws_close_payload(payload, code, reason), mask) == 0)
        (void)stream_write_all_deadline(&c->st, b.data, b.len, until);
    nbuf_free(&b);
}

int net_ws_recv(struct net_ws_client *c, enum net_ws_type *type, uint8_t **data, size_t *len)
{
    for (;;) {
        struct ws_event ev;
        size_t used;
        uint16_t code;
        int r = ws_reader_next(&c->rd, nbuf_head(&c->in), nbuf_unread(&c->in), &used, &ev, &code);
        if (r < 0) {
            log_error("%s: WebSocket protocol error from the server: %s", c->peer, c->rd.error);
            send_close(c, code, c->rd.error);
            return -EPROTO;
        }
        nbuf_consume(&c->in, used);
        if (r == 1) {
            switch (ev.kind) {
            case WS_EV_MESSAGE:
                *type = ev.opcode == WS_OP_TEXT ? NET_WS_TEXT : NET_WS_BINARY;
                *data = malloc(ev.len + 1);
                if (!*data)
                    return log_error_errno(-ENOMEM, "%s: out of memory for a message", c->peer);
                memcpy(*data, ev.data, ev.len);
                (*data)[ev.len] = 0;
                *len = ev.len;
                return 0;
            case WS_EV_PING:
                if (!c->closed && send_frame(c, WS_OP_PONG, ev.data, ev.len) < 0)
                    return -EPIPE;
                continue;
            case WS_EV_PONG: continue;
            case WS_EV_CLOSE:
                c->close_code = ev.code;
                log_debug("%s: the server closed the connection (code %u)", c->peer, ev.code);
                send_close(c, ev.code == 1005 ? 1000 : ev.code, NULL);
                return -ECONNRESET;
            }
        }
        if (used > 0)
            continue;
        if (nbuf_reserve(&c->in, NET_IO_CHUNK) < 0)
            return log_error_errno(-ENOMEM, "%s: out of memory for the server's messages", c->peer);
        ssize_t n = stream_read_deadline(&c->st, c->in.data + c->in.len, c->in.cap - c->in.len, c->deadline);
        if (n > 0) {
            c->in.len += (size_t)n;
            continue;
        }
        c->closed = true;
        if (n == 0 && !ws_reader_in_message(&c->rd) && nbuf_unread(&c->in) == 0) {
            log_debug("%s: the server closed the connection without a close frame", c->peer);
            return -ECONNRESET;
        }
        if (n == 0)
            return log_error_errno(-EPROTO, "%s: the server closed the connection in the middle of a message", c->peer);
        return stream_error(&c->st, (int)n, c->peer, "waiting for the server");
    }
}

int net_ws_close_code(const struct net_ws_client *c) { return c->close_code; }

void net_ws_free(struct net_ws_client *c)
{
    if (!c)
        return;
    send_close(c, 1000, NULL);
    if (c->st.tls)
        ktls_close_notify(c->st.tls);
    stream_close(&c->st);
    ktls_client_free(c->own_tls);
    ws_reader_clear(&c->rd);
    if (c->in.data)
        secure_wipe(c->in.data, c->in.cap);
    nbuf_free(&c->in);
    free(c->peer);
    free(c);
}
