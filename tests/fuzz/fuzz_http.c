/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/net's HTTP parsing: the bytes as a stream of pipelined requests
 * (fed in pieces, as reads deliver them, with small limits so every bound is hit), as a
 * response head, as a chunked body, and as a URL. Checks that a request parsed in pieces is the
 * request parsed whole, and that what the parser hands out stays inside the limits.
 *   ./fuzz_http -max_total_time=60 tests/fuzz/corpus/http */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net_internal.h"

static const struct net_limits small = {
    .max_request_line = 256,
    .max_header_bytes = 1024,
    .max_headers = 8,
    .max_body = 512,
    .max_message = 4096,
};

/* Parses requests one after another from data; step > 0 feeds the buffer step bytes at a time.
 * Returns how many requests parsed and the result that stopped it. */
static int parse_stream(const uint8_t *data, size_t size, size_t step, const struct net_limits *l, size_t *n_requests,
                        size_t *total_body)
{
    size_t off = 0;
    *n_requests = *total_body = 0;
    while (off < size) {
        struct http_scan scan = {0};
        struct net_request req;
        size_t used = 0, avail = size - off, len = step ? 0 : avail;
        int r = 0;
        do {
            len = step ? (len + step < avail ? len + step : avail) : avail;
            r = http_parse_request(data + off, len, l, &scan, &req, &used);
        } while (r == 0 && len < avail);
        if (r != 1)
            return r;
        if (used == 0 || used > avail || req.body_len > l->max_body || req.h.n_headers > l->max_headers)
            abort();
        if (req.body[req.body_len] != 0 || !net_request_method(&req) || net_request_path(&req)[0] != '/')
            abort();
        for (size_t i = 0; i < net_request_header_count(&req); i++) {
            const struct net_header *h = net_request_header_at(&req, i);
            if (net_request_header(&req, h->name) == NULL)
                abort(); /* every header can be looked up by its own name */
        }
        (*n_requests)++;
        *total_body += req.body_len;
        http_request_clear(&req);
        off += used;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct net_limits defaults = net_limits_resolve(NULL);
    size_t n1, b1, n2, b2;
    size_t step = size ? 1 + data[0] % 17 : 1;

    int whole = parse_stream(data, size, 0, &small, &n1, &b1);
    int pieces = parse_stream(data, size, step, &small, &n2, &b2);
    if (whole != pieces || n1 != n2 || b1 != b2)
        abort(); /* the incremental scan must not change the verdict */
    (void)parse_stream(data, size, 0, &defaults, &n1, &b1);

    /* as a response head, then a body */
    struct http_scan scan = {0};
    int head = http_find_head_end(data, size, &scan, &small);
    if (head > 0) {
        struct http_head h;
        if (http_parse_response_head(data, (size_t)head, &small, &h) == 0 && (h.status < 100 || h.status > 999))
            abort();
        http_head_clear(&h);
    }
    struct http_chunked ch = {0};
    struct nbuf out = {0};
    size_t fed = 0;
    int r = 0;
    while (r == 0 && fed < size) {
        fed = fed + step < size ? fed + step : size;
        r = http_chunked_decode(&ch, data, fed, &out, 1024);
        if (ch.pos > fed || nbuf_unread(&out) > 1024)
            abort();
    }
    nbuf_free(&out);

    /* as a URL, and joined */
    if (size < 512) {
        char *s = malloc(size + 1);
        memcpy(s, data, size);
        s[size] = 0;
        struct net_url u;
        if (net_url_parse(s, &u) == 0) {
            if (!u.host || !u.path || u.path[0] != '/' || u.port == 0)
                abort();
            net_url_clear(&u);
        }
        free(net_url_join(s, "/getPass"));
        free(s);
    }
    return 0;
}
