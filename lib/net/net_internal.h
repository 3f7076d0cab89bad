/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/net internals shared by its files, the unit tests and the fuzz harnesses: byte buffers,
 * the HTTP/1.1 message parser, the RFC 6455 frame codec, and byte streams (plain or TLS). */
#ifndef KKMS_NET_INTERNAL_H
#define KKMS_NET_INTERNAL_H

#include <sys/types.h>

#include "base.h"
#include "net.h"

#define NET_DEFAULT_MAX_REQUEST_LINE (8 * 1024)
#define NET_DEFAULT_MAX_HEADER_BYTES (32 * 1024)
#define NET_DEFAULT_MAX_HEADERS 64
#define NET_DEFAULT_MAX_BODY (1024 * 1024)
#define NET_DEFAULT_MAX_MESSAGE (1024 * 1024)
#define NET_DEFAULT_REQUEST_TIMEOUT_MS 10000
#define NET_DEFAULT_IDLE_TIMEOUT_MS 30000
#define NET_DEFAULT_LINGER_MS 2000
#define NET_DEFAULT_MAX_CONNS 1024
#define NET_DEFAULT_MAX_CONNS_PER_PEER 32
#define NET_DEFAULT_MAX_REQUESTS_PER_CONN 100
#define NET_DEFAULT_MAX_CONN_LIFETIME_MS 120000
#define NET_DEFAULT_REQUESTS_PER_TURN 4
#define NET_IO_CHUNK 16384

/* ---- byte buffer: data[off..len) is unread ---- */
struct nbuf {
    uint8_t *data;
    size_t off, len, cap;
    /* Bytes at the start of data that may have been written (the highest len reached; kept by
     * nbuf_append, nbuf_appendf, ws_frame_append and whoever writes after nbuf_reserve through
     * nbuf_mark): what a wipe of the buffer must cover. */
    size_t dirty;
};
static inline void nbuf_mark(struct nbuf *b)
{
    if (b->len > b->dirty)
        b->dirty = b->len;
}
/* Makes room for n more bytes after len (moving unread bytes to the front first). -ENOMEM when
 * memory runs out or the buffer would pass NBUF_MAX: the caller fails that connection or that
 * call, never the process (b is unchanged then). */
#define NBUF_MAX (64 * 1024 * 1024)
int nbuf_reserve(struct nbuf *b, size_t n);
int nbuf_append(struct nbuf *b, const void *p, size_t n);
int nbuf_appendf(struct nbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Marks n unread bytes as read; an emptied buffer restarts at 0. */
void nbuf_consume(struct nbuf *b, size_t n);
static inline size_t nbuf_unread(const struct nbuf *b) { return b->len - b->off; }
static inline uint8_t *nbuf_head(const struct nbuf *b)
{
    static uint8_t empty[1];
    return b->data ? b->data + b->off : empty;
}
void nbuf_free(struct nbuf *b);
/* Wipes and releases an empty buffer bigger than NBUF_KEEP (after a big message), so an idle
 * connection holds little memory. */
#define NBUF_KEEP (256 * 1024)
void nbuf_shrink(struct nbuf *b);

/* ---- HTTP/1.1 messages (RFC 9112) ---- */
/* Progress of the search for the end of a header block, kept between reads. */
struct http_scan {
    size_t pos;        /* bytes already looked at */
    size_t line_start; /* start of the current line */
    size_t first_line; /* length of the start line, once seen */
    size_t lines;      /* complete lines so far */
};

/* A parsed head (request or response) and, for requests, the body. */
struct http_head {
    char *block;                                /* owned copy of the head; the strings below point into it */
    const char *method, *target, *path, *query; /* requests */
    int status;                                 /* responses */
    const char *reason;
    int version_minor; /* HTTP/1.x */
    struct net_header *headers;
    size_t n_headers;
    bool has_length;
    uint64_t content_length;
    bool chunked;
    bool keep_alive;
};
struct net_request {
    struct http_head h;
    uint8_t *body; /* NUL-terminated copy */
    size_t body_len;
};

/* Empty lines accepted before a start line, in bytes (CRLF pairs count 2). */
#define HTTP_MAX_LEADING_EMPTY 64
/* Searches buf[0..len) for the blank line that ends a head. Returns the head's length (> 0),
 * 0 when more bytes are needed, or -(HTTP status) when a limit is exceeded (414 start line,
 * 431 header line, header count or header bytes). */
int http_find_head_end(const uint8_t *buf, size_t len, struct http_scan *s, const struct net_limits *l);
/* Parses a request head (len bytes ending in the blank line): 0 or -(HTTP status): 400 malformed,
 * 411 chunked body, 413 body too large, 431 too many headers, 501 unknown transfer coding,
 * 505 version. Clears h first; h owns its memory (http_head_clear). */
int http_parse_request_head(const uint8_t *buf, size_t len, const struct net_limits *l, struct http_head *h);
/* Parses a response head: 0 or -EPROTO. */
int http_parse_response_head(const uint8_t *buf, size_t len, const struct net_limits *l, struct http_head *h);
void http_head_clear(struct http_head *h);
const char *http_head_get(const struct http_head *h, const char *name);
/* Whether a comma-separated header value holds token (case-insensitive), e.g. Connection. */
bool http_has_token(const char *value, const char *token);
/* A whole request from the start of buf: 1 complete (*consumed set, req filled), 0 need more,
 * -(HTTP status) on bad input. s carries progress between calls; reset it after each request. */
int http_parse_request(const uint8_t *buf, size_t len, const struct net_limits *l, struct http_scan *s,
                       struct net_request *req, size_t *consumed);
void http_request_clear(struct net_request *req);
/* The reason phrase of a status code ("Unknown" for others). */
const char *http_reason(int status);

/* Incremental decoder of a chunked body (RFC 9112 §7.1). */
struct http_chunked {
    size_t pos;      /* bytes of the input consumed */
    uint64_t remain; /* bytes left in the current chunk */
    int state;
    size_t trailer; /* bytes of trailer lines so far (bounded by HTTP_MAX_TRAILER) */
};
#define HTTP_MAX_TRAILER 8192
/* Decodes from buf[s->pos..len) into out (at most max bytes in all): 1 done (s->pos is the end
 * of the body), 0 need more input, -EPROTO malformed, -E2BIG over max, -ENOMEM. The caller may
 * drop the consumed input (buf[0..s->pos)) between calls if it sets s->pos to 0. */
int http_chunked_decode(struct http_chunked *s, const uint8_t *buf, size_t len, struct nbuf *out, size_t max);

/* ---- WebSocket frames (RFC 6455 §5) ---- */
enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};
#define WS_MAX_HEADER 14
#define WS_MAX_CONTROL 125
#define WS_ACCEPT_LEN 28
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum ws_event_kind { WS_EV_MESSAGE = 1, WS_EV_PING, WS_EV_PONG, WS_EV_CLOSE };
struct ws_event {
    enum ws_event_kind kind;
    uint8_t opcode;      /* WS_OP_TEXT or WS_OP_BINARY for messages */
    const uint8_t *data; /* owned by the reader, valid until its next call */
    size_t len;
    uint16_t code; /* close: the peer's code (1005 when none) */
};

/* Reassembles messages from frames sent by one side. */
struct ws_reader {
    bool from_client; /* frames must be masked (we are the server) or must not be */
    size_t max_message;
    uint8_t *msg;
    size_t msg_len, msg_cap;
    uint8_t msg_opcode; /* 0 when no message is in progress */
    bool done;          /* the last event was a complete message: reset before the next */
    uint8_t ctrl[WS_MAX_CONTROL];
    const char *error; /* why the last call failed */
};
void ws_reader_init(struct ws_reader *r, bool from_client, size_t max_message);
void ws_reader_clear(struct ws_reader *r);
/* Consumes at most one whole frame from buf[0..len). Returns 1 with *ev when it completed a
 * message or was a control frame; 0 with *consumed > 0 for a fragment, 0 with *consumed == 0
 * when the frame is not complete yet; or -EPROTO with *close_code (1002, 1007, 1009) and
 * r->error. Only one frame is needed in memory at a time. */
int ws_reader_next(struct ws_reader *r, const uint8_t *buf, size_t len, size_t *consumed, struct ws_event *ev,
                   uint16_t *close_code);
/* Whether a message is half received. */
static inline bool ws_reader_in_message(const struct ws_reader *r) { return r->msg_opcode != 0; }
/* Appends one frame (FIN set) to b; masked with mask when it is not NULL (client frames).
 * -ENOMEM (b unchanged) when memory runs out. */
int ws_frame_append(struct nbuf *b, uint8_t opcode, const void *data, size_t len, const uint8_t *mask);
/* Encodes a frame header into out; returns its length. */
size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], bool fin, uint8_t opcode, uint64_t len, const uint8_t *mask);
/* A close frame's payload: code then reason (cut to fit 125 bytes). Returns its length. */
size_t ws_close_payload(uint8_t out[WS_MAX_CONTROL], uint16_t code, const char *reason);
/* Sec-WebSocket-Accept of a Sec-WebSocket-Key (RFC 6455 §4.2.2): 28 characters + NUL. */
void ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1]);
/* A valid Sec-WebSocket-Key: base64 of exactly 16 bytes. */
bool ws_key_valid(const char *key);
bool utf8_valid(const uint8_t *s, size_t n);

/* ---- byte streams: a socket, possibly under TLS ---- */
struct net_stream {
    int fd;
    struct ktls_session *tls;
    size_t tls_retry_len; /* length mbedTLS must be passed again after a WANT on write */
};
/* Non-blocking: >0 bytes, 0 end of stream, KTLS_WANT_READ/KTLS_WANT_WRITE, or -errno. */
ssize_t stream_read(struct net_stream *s, void *buf, size_t n);
ssize_t stream_write(struct net_stream *s, const void *buf, size_t n);
/* Closes the socket and frees the TLS session. */
void stream_close(struct net_stream *s);

/* Blocking with a deadline (client side); -ETIME when it passes. peer names it in messages. */
int net_dial(const struct net_url *u, const struct net_client_opts *o, struct ktls_client *tls, int64_t deadline,
             const char *peer, struct net_stream *out);
ssize_t stream_read_deadline(struct net_stream *s, void *buf, size_t n, int64_t deadline);
int stream_write_all_deadline(struct net_stream *s, const void *buf, size_t n, int64_t deadline);
/* Logs a failed blocking I/O (unless ktls already did) and returns r. what: "while ..." text. */
int stream_error(const struct net_stream *s, int r, const char *peer, const char *what);
/* Reads into b until a whole response head is there; its length, or a negative errno (logged). */
int stream_read_head(struct net_stream *s, struct nbuf *b, const struct net_limits *l, int64_t deadline,
                     const char *peer);
/* The client options with defaults filled in. */
int64_t net_client_deadline(const struct net_client_opts *o);
/* Whether a header name or value is safe to send (no CR, LF or NUL; names are tokens). */
bool http_header_ok(const char *name, const char *value);

/* ---- loop internals ---- */
/* Runs fn(data) once after the current batch of events and timers (same order as added). */
void net_loop_defer(struct net_loop *loop, void (*fn)(void *data), void *data);
/* The loop's offload (offload.c): NULL until the first job; freed by net_loop_free. */
struct net_offload;
struct net_offload **net_loop_offload_slot(struct net_loop *loop);
void net_offload_free(struct net_offload *o);
/* Drops pending deferred calls of fn(data) (an object about to be freed). */
void net_loop_defer_cancel(struct net_loop *loop, void (*fn)(void *data), void *data);
/* Monotonic milliseconds as the loop last saw them. */
int64_t net_loop_now(struct net_loop *loop);

#endif
