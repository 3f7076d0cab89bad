/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* A plain HTTP/1.1 client: one request per connection, bounded response (tests, etcd). */
#include <string.h>
#include <strings.h>

#include "net_internal.h"

void net_http_response_free(struct net_http_response *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_headers; i++) {
        free((char *)r->headers[i].name);
        free((char *)r->headers[i].value);
    }
    free(r->headers);
    free(r->reason);
    free(r->body);
    free(r);
}

const char *net_http_response_header(const struct net_http_response *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static struct net_http_response *response_from_head(const struct http_head *h)
{
    struct net_http_response *r = xcalloc(1, sizeof(*r));
    r->status = h->status;
    r->reason = xstrdup(h->reason);
    r->headers = xcalloc(h->n_headers + 1, sizeof(*r->headers));
    for (size_t i = 0; i < h->n_headers; i++)
        r->headers[i] = (struct net_header){xstrdup(h->headers[i].name), xstrdup(h->headers[i].value)};
    r->n_headers = h->n_headers;
    return r;
}

static void free_body(struct nbuf *b)
{
    if (b->data)
        secure_wipe(b->data, b->cap); /* answers of a store carry secrets */
    nbuf_free(b);
}

/* Reads the body after a head of `head` bytes into r, framed as h says. */
static int read_body(struct net_stream *st, struct nbuf *in, size_t head, const struct http_head *h, bool no_body,
                     size_t max, int64_t deadline, const char *peer, struct net_http_response *r)
{
    struct nbuf body = {0};
    struct http_chunked ch = {0};
    int done = 0;

    nbuf_consume(in, head);
    if (no_body || (h->has_length && h->content_length == 0))
        done = 1;
    else if (h->has_length && h->content_length > max)
        return log_error_errno(-E2BIG, "%s: response body of %llu bytes is over the %zu-byte limit", peer,
                               (unsigned long long)h->content_length, max);
    while (!done) {
        if (h->chunked) {
            done = http_chunked_decode(&ch, nbuf_head(in), nbuf_unread(in), &body, max);
            if (done < 0) {
                free_body(&body);
                return log_error_errno(done, "%s: %s", peer,
                                       done == -E2BIG    ? "response body over the limit"
                                       : done == -ENOMEM ? "out of memory for the response body"
                                                         : "malformed chunked body");
            }
            /* What was decoded is in body: drop it from the input, which stays small however
             * the server splits its chunks. */
            nbuf_consume(in, ch.pos);
            ch.pos = 0;
        } else if (h->has_length) {
            done = nbuf_unread(in) >= h->content_length;
        } else if (nbuf_unread(in) > max) {
            free_body(&body);
            return log_error_errno(-E2BIG, "%s: response body over the %zu-byte limit", peer, max);
        }
        if (done)
            break;
        if (nbuf_reserve(in, NET_IO_CHUNK) < 0) {
            free_body(&body);
            return log_error_errno(-ENOMEM, "%s: out of memory for the response body", peer);
        }
        ssize_t n = stream_read_deadline(st, in->data + in->len, in->cap - in->len, deadline);
        if (n > 0) {
            in->len += (size_t)n;
        } else if (n == 0 && !h->chunked && !h->has_length) {
            done = 1; /* the body runs to the end of the connection */
        } else {
            free_body(&body);
            return n == 0 ? log_error_errno(-EPROTO, "%s: connection closed before the end of the body", peer)
                          : stream_error(st, (int)n, peer, "reading the response body");
        }
    }
    /* A HEAD, 204 or 304 answer has no body whatever its Content-Length says (RFC 9112 6.3):
     * copying Content-Length bytes there would read past what the server sent. */
    if (!no_body && !h->chunked) {
        size_t n = h->has_length ? (size_t)h->content_length : nbuf_unread(in);
        if (nbuf_append(&body, nbuf_head(in), n) < 0) {
            free_body(&body);
            return log_error_errno(-ENOMEM, "%s: out of memory for the response body", peer);
        }
    }
    r->body_len = nbuf_unread(&body);
    r->body = malloc(r->body_len + 1);
    if (!r->body) {
        free_body(&body);
        return log_error_errno(-ENOMEM, "%s: out of memory for the response body", peer);
    }
    if (r->body_len)
        memcpy(r->body, nbuf_head(&body), r->body_len);
    r->body[r->body_len] = 0;
    free_body(&body);
    return 0;
}

int net_http_request(const char *method, const char *url, const char *content_type, const void *body, size_t len,
                     const struct net_client_opts *o, struct net_http_response **out)
{
    struct net_limits l = net_limits_resolve(NULL);
    size_t max = o && o->max_message ? o->max_message : NET_DEFAULT_MAX_MESSAGE;
    int64_t deadline = net_client_deadline(o);
    struct ktls_client *own_tls = NULL;
    struct net_stream st = {.fd = -1};
    struct nbuf req = {0}, in = {0};
    struct net_url u;
    struct http_head h = {0};
    int r, head;

    if ((r = net_url_parse(url, &u)) < 0)
        return log_error_errno(r, "%s: not a valid http:// or https:// URL", url);
    if (strncmp(u.scheme, "http", 4) != 0) {
        net_url_clear(&u);
        return log_error_errno(-EPROTONOSUPPORT, "%s: not an http:// or https:// URL", url);
    }
    for (size_t i = 0; o && i < o->n_headers; i++)
        if (!http_header_ok(o->headers[i].name, o->headers[i].value)) {
            r = log_error_errno(-EINVAL, "%s: header %s cannot be sent (bad characters)", url,
                                o->headers[i].name ? o->headers[i].name : "(null)");
            goto out;
        }
    struct ktls_client *tls = o ? o->tls : NULL;
    if (u.tls && !tls) {
        if ((r = ktls_client_new(NULL, 0, true, &own_tls)) < 0)
            goto out;
        tls = own_tls;
    }
    if ((r = net_dial(&u, o, tls, deadline, url, &st)) < 0)
        goto out;
    r = nbuf_appendf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kairos-kms/%s\r\nConnection: close\r\n", method,
                     u.path, o && o->host_header ? o->host_header : u.authority, KKMS_VERSION);
    if (r == 0 && (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0))
        r = nbuf_appendf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                         content_type ? content_type : "application/octet-stream", len);
    for (size_t i = 0; r == 0 && o && i < o->n_headers; i++)
        r = nbuf_appendf(&req, "%s: %s\r\n", o->headers[i].name, o->headers[i].value);
    if (r == 0)
        r = nbuf_append(&req, "\r\n", 2);
    if (r == 0 && body)
        r = nbuf_append(&req, body, len);
    if (r < 0) {
        log_error_errno(r, "%s: out of memory for the request", url);
        goto out;
    }
    r = stream_write_all_deadline(&st, req.data, req.len, deadline);
    if (r < 0) {
        stream_error(&st, r, url, "sending the request");
        goto out;
    }
    /* Skip interim 1xx answers (100 Continue), a few at most. */
    for (int interim = 0;; interim++) {
        if ((head = stream_read_head(&st, &in, &l, deadline, url)) < 0) {
            r = head;
            goto out;
        }
        http_head_clear(&h);
        if (http_parse_response_head(nbuf_head(&in), (size_t)head, &l, &h) < 0) {
            r = log_error_errno(-EPROTO, "%s: the server's answer is not HTTP", url);
            goto out;
        }
        if (h.status >= 200 || interim >= 4)
            break;
        nbuf_consume(&in, (size_t)head);
    }
    if (h.status < 200) {
        r = log_error_errno(-EPROTO, "%s: too many interim answers", url);
        goto out;
    }
    struct net_http_response *resp = response_from_head(&h);
    bool no_body = strcmp(method, "HEAD") == 0 || h.status == 204 || h.status == 304;
    r = read_body(&st, &in, (size_t)head, &h, no_body, max, deadline, url, resp);
    if (r < 0)
        net_http_response_free(resp);
    else
        *out = resp;
out:
    http_head_clear(&h);
    if (req.data)
        secure_wipe(req.data, req.len);
    nbuf_free(&req);
    if (in.data)
        secure_wipe(in.data, in.cap); /* answers of a store carry secrets */
    nbuf_free(&in);
    stream_close(&st);
    ktls_client_free(own_tls);
    net_url_clear(&u);
    return r;
}
