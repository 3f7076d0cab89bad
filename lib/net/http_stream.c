/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* A streaming HTTP/1.1 client: one request on its own connection, then the response body handed
 * out piece by piece as it arrives (etcd's watch answers with an endless chunked body, one JSON
 * message per chunk). The request is sent with Content-Length; the connection is closed by
 * net_http_stream_free. */
#include <string.h>
#include <strings.h>

#include "net_internal.h"

struct net_http_stream {
    struct net_stream st;
    struct ktls_client *own_tls;
    struct http_head h;
    struct nbuf in;  /* raw bytes from the socket, not decoded yet */
    struct nbuf out; /* decoded body bytes not handed out yet */
    struct http_chunked ch;
    uint64_t remain; /* Content-Length framing: body bytes still to come */
    size_t max_chunk;
    bool eof; /* the body ended (or the connection, for a body up to EOF) */
    char *url;
};

void net_http_stream_free(struct net_http_stream *s)
{
    if (!s)
        return;
    stream_close(&s->st);
    ktls_client_free(s->own_tls);
    http_head_clear(&s->h);
    if (s->in.data)
        secure_wipe(s->in.data, s->in.cap);
    if (s->out.data)
        secure_wipe(s->out.data, s->out.cap);
    nbuf_free(&s->in);
    nbuf_free(&s->out);
    free(s->url);
    free(s);
}

int net_http_stream_status(const struct net_http_stream *s) { return s->h.status; }

const char *net_http_stream_header(const struct net_http_stream *s, const char *name)
{
    return http_head_get(&s->h, name);
}

int net_http_stream_open(const char *method, const char *url, const char *content_type, const void *body, size_t len,
                         const struct net_client_opts *o, struct net_http_stream **out)
{
    struct net_limits l = net_limits_resolve(NULL);
    int64_t deadline = net_client_deadline(o);
    struct nbuf req = {0};
    struct net_url u;
    int r, head = 0;

    if ((r = net_url_parse(url, &u)) < 0)
        return log_error_errno(r, "%s: not a valid http:// or https:// URL", url);
    if (strncmp(u.scheme, "http", 4) != 0) {
        net_url_clear(&u);
        return log_error_errno(-EPROTONOSUPPORT, "%s: not an http:// or https:// URL", url);
    }
    struct net_http_stream *s = xcalloc(1, sizeof(*s));
    s->st.fd = -1;
    s->url = xstrdup(url);
    s->max_chunk = o && o->max_message ? o->max_message : NET_DEFAULT_MAX_MESSAGE;
    for (size_t i = 0; o && i < o->n_headers; i++)
        if (!http_header_ok(o->headers[i].name, o->headers[i].value)) {
            r = log_error_errno(-EINVAL, "%s: header %s cannot be sent (bad characters)", url,
                                o->headers[i].name ? o->headers[i].name : "(null)");
            goto fail;
        }
    struct ktls_client *tls = o ? o->tls : NULL;
    if (u.tls && !tls) {
        if ((r = ktls_client_new(NULL, 0, true, &s->own_tls)) < 0)
            goto fail;
        tls = s->own_tls;
    }
    if ((r = net_dial(&u, o, tls, deadline, url, &s->st)) < 0)
        goto fail;
    nbuf_appendf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kairos-kms/%s\r\nConnection: close\r\n", method,
                 u.path, o && o->host_header ? o->host_header : u.authority, KKMS_VERSION);
    if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
        nbuf_appendf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                     content_type ? content_type : "application/octet-stream", len);
    for (size_t i = 0; o && i < o->n_headers; i++)
        nbuf_appendf(&req, "%s: %s\r\n", o->headers[i].name, o->headers[i].value);
    nbuf_append(&req, "\r\n", 2);
    if (body)
        nbuf_append(&req, body, len);
    r = stream_write_all_deadline(&s->st, req.data, req.len, deadline);
    if (r < 0) {
        stream_error(&s->st, r, url, "sending the request");
        goto fail;
    }
    for (int interim = 0;; interim++) {
        if ((head = stream_read_head(&s->st, &s->in, &l, deadline, url)) < 0) {
            r = head;
            goto fail;
        }
        http_head_clear(&s->h);
        if (http_parse_response_head(nbuf_head(&s->in), (size_t)head, &l, &s->h) < 0) {
            r = log_error_errno(-EPROTO, "%s: the server's answer is not HTTP", url);
            goto fail;
        }
        if (s->h.status >= 200 || interim >= 4)
            break;
        nbuf_consume(&s->in, (size_t)head);
    }
    if (s->h.status < 200) {
        r = log_error_errno(-EPROTO, "%s: too many interim answers", url);
        goto fail;
    }
    nbuf_consume(&s->in, (size_t)head);
    if (strcmp(method, "HEAD") == 0 || s->h.status == 204 || s->h.status == 304 ||
        (!s->h.chunked && s->h.has_length && s->h.content_length == 0))
        s->eof = true;
    s->remain = s->h.content_length;
    *out = TAKE_PTR(s);
    r = 0;
fail:
    if (req.data)
        secure_wipe(req.data, req.len);
    nbuf_free(&req);
    net_url_clear(&u);
    net_http_stream_free(s);
    return r;
}

/* Moves what the framing allows from s->in to s->out; 0, or -EPROTO/-E2BIG (logged). */
static int decode_in(struct net_http_stream *s)
{
    if (s->h.chunked) {
        int d = http_chunked_decode(&s->ch, nbuf_head(&s->in), nbuf_unread(&s->in), &s->out, s->max_chunk);
        nbuf_consume(&s->in, s->ch.pos);
        s->ch.pos = 0;
        if (d < 0)
            return log_error_errno(d, "%s: %s", s->url,
                                   d == -E2BIG ? "a chunk of the response is over the limit"
                                               : "malformed chunked body");
        if (d == 1)
            s->eof = true;
        return 0;
    }
    size_t n = nbuf_unread(&s->in);
    if (s->h.has_length && n > s->remain)
        n = (size_t)s->remain;
    nbuf_append(&s->out, nbuf_head(&s->in), n);
    nbuf_consume(&s->in, n);
    if (s->h.has_length) {
        s->remain -= n;
        if (s->remain == 0)
            s->eof = true;
    }
    return 0;
}

ssize_t net_http_stream_read(struct net_http_stream *s, void *buf, size_t n, int64_t deadline_ms)
{
    for (;;) {
        size_t have = nbuf_unread(&s->out);
        if (have > 0) {
            if (n > have)
                n = have;
            memcpy(buf, nbuf_head(&s->out), n);
            secure_wipe(nbuf_head(&s->out), n);
            nbuf_consume(&s->out, n);
            return (ssize_t)n;
        }
        if (s->eof)
            return 0;
        if (s->st.fd < 0)
            return -ENOTCONN;
        if (nbuf_unread(&s->in) > 0) {
            size_t before = nbuf_unread(&s->in);
            int r = decode_in(s);
            if (r < 0)
                return r;
            if (nbuf_unread(&s->out) > 0 || s->eof || nbuf_unread(&s->in) < before)
                continue;
        }
        nbuf_reserve(&s->in, NET_IO_CHUNK);
        ssize_t got = stream_read_deadline(&s->st, s->in.data + s->in.len, s->in.cap - s->in.len, deadline_ms);
        if (got > 0) {
            s->in.len += (size_t)got;
            int r = decode_in(s);
            if (r < 0)
                return r;
            continue;
        }
        if (got == -ETIME)
            return -ETIME; /* nothing came in time: the caller decides; the stream stays usable */
        if (got == 0 && !s->h.chunked && !s->h.has_length) {
            s->eof = true;
            return 0;
        }
        return got == 0 ? log_error_errno(-ECONNRESET, "%s: connection closed before the end of the body", s->url)
                        : stream_error(&s->st, (int)got, s->url, "reading the response body");
    }
}
