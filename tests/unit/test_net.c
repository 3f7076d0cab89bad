/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/net without sockets: URLs, the HTTP parser, WebSocket frames, the accept key, timers,
 * the offload thread. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "net_internal.h"
#include "tap.h"

static const struct net_limits *lim(void)
{
    static struct net_limits l;
    l = net_limits_resolve(NULL);
    return &l;
}

static void test_url_parse(void)
{
    struct net_url u;
    CHECK(net_url_parse("ws://kms:8082/getPass", &u) == 0 && strcmp(u.host, "kms") == 0 && u.port == 8082 &&
              strcmp(u.path, "/getPass") == 0 && !u.tls && strcmp(u.authority, "kms:8082") == 0,
          "url: ws://kms:8082/getPass");
    net_url_clear(&u);
    CHECK(net_url_parse("HTTPS://kms.example.com", &u) == 0 && u.tls && u.port == 443 && strcmp(u.path, "/") == 0 &&
              strcmp(u.scheme, "https") == 0,
          "url: scheme case-insensitive, default port 443, empty path is /");
    net_url_clear(&u);
    CHECK(net_url_parse("http://kms", &u) == 0 && u.port == 80, "url: http default port 80");
    net_url_clear(&u);
    CHECK(net_url_parse("wss://[::1]:8443/x?a=b#frag", &u) == 0 && strcmp(u.host, "::1") == 0 && u.port == 8443 &&
              strcmp(u.path, "/x?a=b") == 0 && strcmp(u.authority, "[::1]:8443") == 0,
          "url: IPv6 literal, query kept, fragment dropped");
    net_url_clear(&u);
    CHECK(net_url_parse("http://[fe80::1%25eth0]/", &u) == 0 && strcmp(u.host, "fe80::1%eth0") == 0,
          "url: IPv6 zone %%25 becomes %%");
    net_url_clear(&u);
    CHECK(net_url_parse("http://kms?q=1", &u) == 0 && strcmp(u.path, "/?q=1") == 0, "url: query without path");
    net_url_clear(&u);
    CHECK(net_url_parse("http://kms:/", &u) == 0 && u.port == 80 && strcmp(u.authority, "kms") == 0,
          "url: empty port means the default");
    net_url_clear(&u);
    CHECK(net_url_parse("kms:8082", &u) < 0, "url: no scheme refused");
    CHECK(net_url_parse("ftp://kms/", &u) == -EPROTONOSUPPORT, "url: ftp refused");
    CHECK(net_url_parse("http://user:pw@kms/", &u) < 0, "url: user info refused");
    CHECK(net_url_parse("http://kms:0/", &u) < 0 && net_url_parse("http://kms:65536/", &u) < 0 &&
              net_url_parse("http://kms:80x/", &u) < 0,
          "url: bad ports refused");
    CHECK(net_url_parse("http:///x", &u) < 0 && net_url_parse("http://[::1/", &u) < 0 &&
              net_url_parse("http://[zz]/", &u) < 0 && net_url_parse("http://k ms/", &u) < 0,
          "url: empty host, unclosed bracket, bad literal, space refused");
}

static void test_url_join(void)
{
    struct {
        const char *base, *path, *want;
    } v[] = {
        {"http://kms:8082", "/getPass", "http://kms:8082/getPass"},
        {"http://kms:8082/", "/getPass", "http://kms:8082/getPass"},
        {"http://kms:8082//", "getPass", "http://kms:8082/getPass"},
        {"https://kms/prefix/", "/postPass", "https://kms/prefix/postPass"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char *j = net_url_join(v[i].base, v[i].path);
        CHECK(strcmp(j, v[i].want) == 0, "join %s + %s = %s (got %s)", v[i].base, v[i].path, v[i].want, j);
        free(j);
    }
}

/* Parses a whole request; returns the parser's result. */
static int parse(const char *text, struct net_request *req)
{
    struct http_scan s = {0};
    size_t used = 0;
    *req = (struct net_request){0};
    return http_parse_request((const uint8_t *)text, strlen(text), lim(), &s, req, &used);
}

static int parse_status(const char *text)
{
    struct net_request req;
    int r = parse(text, &req);
    http_request_clear(&req);
    return r;
}

static void test_http_request(void)
{
    struct net_request req;
    const char *get = "GET /getPass?x=1 HTTP/1.1\r\nHost: kms\r\nlabel: COS_PERSISTENT\r\nUuid: \r\n"
                      "Authorization:   Bearer TPMabc  \r\n\r\n";
    CHECK(parse(get, &req) == 1, "http: GET parses");
    CHECK(strcmp(net_request_method(&req), "GET") == 0 && strcmp(net_request_path(&req), "/getPass") == 0 &&
              strcmp(net_request_query(&req), "x=1") == 0,
          "http: method, path, query");
    CHECK(net_request_header(&req, "LABEL") && strcmp(net_request_header(&req, "Label"), "COS_PERSISTENT") == 0,
          "http: header names are case-insensitive");
    CHECK(net_request_header(&req, "uuid") && strcmp(net_request_header(&req, "uuid"), "") == 0,
          "http: empty header value (Go sends 'Uuid: ')");
    CHECK(strcmp(net_request_header(&req, "authorization"), "Bearer TPMabc") == 0, "http: value whitespace trimmed");
    CHECK(req.h.keep_alive, "http: 1.1 keeps alive by default");
    http_request_clear(&req);

    CHECK(parse("POST /p HTTP/1.1\nHost: k\nContent-Length: 5\nConnection: close\n\nhello", &req) == 1 &&
              req.body_len == 5 && memcmp(req.body, "hello", 5) == 0 && !req.h.keep_alive,
          "http: bare LF, body, Connection: close");
    http_request_clear(&req);
    CHECK(parse("\r\nGET / HTTP/1.0\r\n\r\n", &req) == 1 && !req.h.keep_alive,
          "http: leading empty line ignored; 1.0 needs no Host, closes by default");
    http_request_clear(&req);

    CHECK(parse_status("POST /p HTTP/1.1\r\nHost: k\r\nContent-Length: 10\r\n\r\nhello") == 0,
          "http: incomplete body means more data");
    CHECK(parse_status("GET / HTTP/1.1\r\nHost: k\r\n") == 0, "http: incomplete head means more data");
    CHECK(parse_status("GET / HTTP/1.1\r\n\r\n") == -400, "http: 1.1 without Host: 400");
    CHECK(parse_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == -400, "http: two Hosts: 400");
    CHECK(parse_status("GET / HTTP/2.0\r\nHost: k\r\n\r\n") == -505, "http: HTTP/2.0: 505");
    CHECK(parse_status("GET / HTTQ/1.1\r\nHost: k\r\n\r\n") == -400, "http: garbage version: 400");
    CHECK(parse_status("GET  / HTTP/1.1\r\nHost: k\r\n\r\n") == -400, "http: double space: 400");
    CHECK(parse_status("GET http://k/ HTTP/1.1\r\nHost: k\r\n\r\n") == -400, "http: absolute-form: 400");
    CHECK(parse_status("G(T / HTTP/1.1\r\nHost: k\r\n\r\n") == -400, "http: bad method token: 400");
    CHECK(parse_status("GET / HTTP/1.1\r\nHost : k\r\n\r\n") == -400, "http: space before colon: 400");
    CHECK(parse_status("GET / HTTP/1.1\r\nHost: k\r\n folded\r\n\r\n") == -400, "http: obs-fold: 400");
    CHECK(parse_status("GET / HTTP/1.1\r\nHost: k\x01\r\n\r\n") == -400, "http: control char in value: 400");
    CHECK(parse_status("GET / HTTP/1.1\r\nHost: k\r\nNoColon\r\n\r\n") == -400, "http: line without colon: 400");
    CHECK(parse_status("POST / HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\n\r\n") == -411,
          "http: chunked upload: 411");
    CHECK(parse_status("POST / HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: gzip\r\n\r\n") == -501,
          "http: unknown transfer coding: 501");
    CHECK(parse_status("POST / HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc") ==
              -400,
          "http: Content-Length with Transfer-Encoding: 400");
    CHECK(parse_status("POST / HTTP/1.1\r\nHost: k\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd") == -400,
          "http: conflicting Content-Lengths: 400");
    CHECK(parse_status("POST / HTTP/1.1\r\nHost: k\r\nContent-Length: -1\r\n\r\n") == -400 &&
              parse_status("POST / HTTP/1.1\r\nHost: k\r\nContent-Length: 1,1\r\n\r\n") == -400,
          "http: malformed Content-Length: 400");
    CHECK(parse_status("POST / HTTP/1.1\r\nHost: k\r\nContent-Length: 2000000\r\n\r\n") == -413,
          "http: body over 1 MiB: 413 before it arrives");

    struct nbuf b = {0};
    nbuf_appendf(&b, "GET / HTTP/1.1\r\nHost: k\r\n");
    for (int i = 0; i < 70; i++)
        nbuf_appendf(&b, "X-H%d: v\r\n", i);
    nbuf_appendf(&b, "\r\n");
    nbuf_append(&b, "", 1);
    CHECK(parse_status((char *)b.data) == -431, "http: 70 headers: 431");
    nbuf_free(&b);
    nbuf_appendf(&b, "GET / HTTP/1.1\r\nHost: k\r\nX-Big: ");
    for (int i = 0; i < 9000; i++)
        nbuf_append(&b, "a", 1);
    nbuf_append(&b, "", 1);
    CHECK(parse_status((char *)b.data) == -431, "http: a 9000-byte header line: 431 (before its end)");
    nbuf_free(&b);
    nbuf_appendf(&b, "GET / HTTP/1.1\r\nHost: k\r\n");
    for (int i = 0; i < 40; i++) {
        nbuf_appendf(&b, "X-H%d: ", i);
        for (int k = 0; k < 1000; k++)
            nbuf_append(&b, "b", 1);
        nbuf_append(&b, "\r\n", 2);
    }
    nbuf_append(&b, "", 1);
    CHECK(parse_status((char *)b.data) == -431, "http: 40 KB of headers: 431");
    nbuf_free(&b);
    nbuf_appendf(&b, "GET /");
    for (int i = 0; i < 9000; i++)
        nbuf_append(&b, "a", 1);
    nbuf_append(&b, "", 1);
    CHECK(parse_status((char *)b.data) == -414, "http: a 9000-byte request line: 414");
    nbuf_free(&b);
    CHECK(parse_status("\r\n\r\nGET / HTTP/1.1\r\nHost: k\r\n\r\n") == 1, "http: a few empty lines before a request");
    for (int i = 0; i < 100000; i++)
        nbuf_append(&b, "\r\n", 2);
    nbuf_append(&b, "", 1);
    CHECK(parse_status((char *)b.data) == -400, "http: endless empty lines before a request: 400, not buffered");
    nbuf_free(&b);
    nbuf_appendf(&b, "GET / HTTP/1.1\r\nHost: k\r\nX-F: a\r\n");
    for (int i = 0; i < 10000; i++)
        nbuf_appendf(&b, " folded\r\n");
    nbuf_append(&b, "", 1);
    CHECK(parse_status((char *)b.data) == -431, "http: endless obs-fold continuation lines: 431");
    nbuf_free(&b);
    {
        struct nbuf big = {0};
        CHECK(nbuf_reserve(&big, NBUF_MAX + 1) == -ENOMEM && big.data == NULL,
              "nbuf: growth past NBUF_MAX fails (the caller drops the peer), no abort");
    }

    /* Byte by byte, as a slow client sends it: same result, and the scan is incremental. */
    const char *post = "POST /postPass HTTP/1.1\r\nHost: k\r\nContent-Length: 4\r\n\r\nbodyGET /next HTTP/1.1\r\n";
    struct http_scan s = {0};
    size_t used = 0;
    int r = 0;
    size_t n;
    for (n = 1; n <= strlen(post) && r == 0; n++)
        r = http_parse_request((const uint8_t *)post, n, lim(), &s, &req, &used);
    CHECK(r == 1 && used == strlen(post) - strlen("GET /next HTTP/1.1\r\n") && req.body_len == 4,
          "http: fed byte by byte, completes exactly at the end of the body; pipelined bytes left");
    http_request_clear(&req);
}

static void test_http_response(void)
{
    struct http_head h;
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    CHECK(http_parse_response_head((const uint8_t *)ok, strlen(ok), lim(), &h) == 0 && h.status == 101 &&
              strcmp(h.reason, "Switching Protocols") == 0 &&
              http_has_token(http_head_get(&h, "connection"), "upgrade"),
          "http: 101 response parses");
    http_head_clear(&h);
    const char *noreason = "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n";
    CHECK(http_parse_response_head((const uint8_t *)noreason, strlen(noreason), lim(), &h) == 0 && h.status == 200 &&
              h.has_length && h.content_length == 0,
          "http: status line without reason");
    http_head_clear(&h);
    const char *bad = "HTTP/1.1 2x0 OK\r\n\r\n";
    CHECK(http_parse_response_head((const uint8_t *)bad, strlen(bad), lim(), &h) < 0, "http: bad status refused");
    http_head_clear(&h);
    CHECK(http_has_token("keep-alive, Upgrade", "upgrade") && !http_has_token("upgraded", "upgrade") &&
              !http_has_token(NULL, "x"),
          "http: token lists");
}

static void test_chunked(void)
{
    const char *body = "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    struct http_chunked s = {0};
    struct nbuf out = {0};
    int r = 0;
    size_t n;
    for (n = 1; n <= strlen(body) && r == 0; n++)
        r = http_chunked_decode(&s, (const uint8_t *)body, n, &out, 1000);
    CHECK(r == 1 && nbuf_unread(&out) == 23 && memcmp(nbuf_head(&out), "Wikipedia in\r\n\r\nchunks.", 23) == 0 &&
              s.pos == strlen(body) - 4,
          "chunked: decoded byte by byte, stops at the end of the body");
    nbuf_free(&out);
    s = (struct http_chunked){0};
    CHECK(http_chunked_decode(&s, (const uint8_t *)"10\r\n0123456789abcdef\r\n0\r\n\r\n", 26, &out, 8) == -E2BIG,
          "chunked: over the limit");
    nbuf_free(&out);
    s = (struct http_chunked){0};
    CHECK(http_chunked_decode(&s, (const uint8_t *)"zz\r\n", 4, &out, 8) == -EPROTO, "chunked: bad size");
    nbuf_free(&out);
    struct nbuf tr = {0};
    nbuf_appendf(&tr, "1\r\nx\r\n0\r\n");
    for (int i = 0; i < 1000; i++)
        nbuf_appendf(&tr, "X-Trailer: endless\r\n");
    s = (struct http_chunked){0};
    CHECK(http_chunked_decode(&s, nbuf_head(&tr), nbuf_unread(&tr), &out, 8) == -EPROTO,
          "chunked: endless trailer lines refused");
    nbuf_free(&tr);
    nbuf_free(&out);
}

static void test_accept_key(void)
{
    char out[WS_ACCEPT_LEN + 1];
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "ws: RFC 6455 §1.3 accept key (%s)", out);
    CHECK(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="), "ws: valid key");
    CHECK(!ws_key_valid("dGhlIHNhbXBsZQ==") && !ws_key_valid("not base64 at all!!!!!!!") && !ws_key_valid(NULL),
          "ws: short, non-base64 and missing keys refused");
}

/* A close reason too long for a control frame is cut at a character boundary (found by fuzz_ws). */
static void test_close_reason(void)
{
    uint8_t payload[WS_MAX_CONTROL];
    char reason[2 * 100 + 1] = "";
    for (int i = 0; i < 100; i++)
        strcat(reason, "\xc3\xa9"); /* U+00E9, two bytes */
    size_t n = ws_close_payload(payload, 1001, reason);
    CHECK(n == 2 + 122 && payload[0] == 0x03 && payload[1] == 0xe9 && utf8_valid(payload + 2, n - 2),
          "ws: a long close reason is cut to 123 bytes or less at a character boundary (%zu)", n);
    CHECK(ws_close_payload(payload, 1000, "bye") == 5 && memcmp(payload + 2, "bye", 3) == 0,
          "ws: a short close reason is kept whole");
}

/* Runs the reader over a buffer; returns the result of the last call. */
static int read_all(struct ws_reader *r, const struct nbuf *b, struct ws_event *ev, uint16_t *code, size_t *off)
{
    int res;
    size_t used;
    do {
        res = ws_reader_next(r, b->data + *off, b->len - *off, &used, ev, code);
        *off += used;
    } while (res == 0 && used > 0);
    return res;
}

static void test_ws_frames(void)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t sizes[] = {0, 5, 125, 126, 65535, 65536, 200000};
    uint16_t code;
    struct ws_event ev;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *data = xmalloc(sizes[i] + 1);
        for (size_t k = 0; k < sizes[i]; k++)
            data[k] = (uint8_t)(k * 7);
        struct nbuf b = {0};
        ws_frame_append(&b, WS_OP_BINARY, data, sizes[i], i % 2 ? mask : NULL);
        struct ws_reader r;
        ws_reader_init(&r, i % 2, 0);
        size_t off = 0;
        int res = read_all(&r, &b, &ev, &code, &off);
        CHECK(res == 1 && ev.kind == WS_EV_MESSAGE && ev.opcode == WS_OP_BINARY && ev.len == sizes[i] &&
                  memcmp(ev.data, data, sizes[i]) == 0 && off == b.len,
              "ws: %zu-byte %s frame round-trips", sizes[i], i % 2 ? "masked" : "unmasked");
        /* every strict prefix is "need more" */
        size_t used;
        ws_reader_clear(&r);
        ws_reader_init(&r, i % 2, 0);
        bool more = true;
        for (size_t cut = 0; cut < b.len && cut < 20; cut++)
            more = more && ws_reader_next(&r, b.data, cut, &used, &ev, &code) == 0 && used == 0;
        CHECK(more, "ws: truncated %zu-byte frame waits for more", sizes[i]);
        ws_reader_clear(&r);
        nbuf_free(&b);
        free(data);
    }

    /* RFC 6455 §5.7 examples */
    const uint8_t hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct nbuf b = {0};
    ws_frame_append(&b, WS_OP_TEXT, "Hello", 5, NULL);
    CHECK(b.len == sizeof(hello_unmasked) && memcmp(b.data, hello_unmasked, b.len) == 0, "ws: §5.7 unmasked Hello");
    nbuf_free(&b);
    ws_frame_append(&b, WS_OP_TEXT, "Hello", 5, mask);
    CHECK(b.len == sizeof(hello_masked) && memcmp(b.data, hello_masked, b.len) == 0, "ws: §5.7 masked Hello");
    nbuf_free(&b);

    struct ws_reader srv, cli;
    size_t off = 0, used;
    ws_reader_init(&srv, true, 0);
    CHECK(ws_reader_next(&srv, hello_unmasked, sizeof(hello_unmasked), &used, &ev, &code) < 0 && code == 1002,
          "ws: server refuses an unmasked client frame (1002)");
    ws_reader_clear(&srv);
    ws_reader_init(&cli, false, 0);
    CHECK(ws_reader_next(&cli, hello_masked, sizeof(hello_masked), &used, &ev, &code) < 0 && code == 1002,
          "ws: client refuses a masked server frame");
    ws_reader_clear(&cli);

    /* gorilla's fragmentation: a non-final text frame, a ping in between, an empty final continuation */
    uint8_t hdr[WS_MAX_HEADER];
    nbuf_append(&b, hdr, ws_frame_header(hdr, false, WS_OP_TEXT, 3, NULL));
    nbuf_append(&b, "abc", 3);
    ws_frame_append(&b, WS_OP_PING, "p", 1, NULL);
    nbuf_append(&b, hdr, ws_frame_header(hdr, false, WS_OP_CONT, 2, NULL));
    nbuf_append(&b, "de", 2);
    nbuf_append(&b, hdr, ws_frame_header(hdr, true, WS_OP_CONT, 0, NULL));
    ws_reader_init(&cli, false, 0);
    off = 0;
    int res = read_all(&cli, &b, &ev, &code, &off);
    CHECK(res == 1 && ev.kind == WS_EV_PING && ev.len == 1 && ws_reader_in_message(&cli),
          "ws: a ping between fragments is delivered at once");
    res = read_all(&cli, &b, &ev, &code, &off);
    CHECK(res == 1 && ev.kind == WS_EV_MESSAGE && ev.opcode == WS_OP_TEXT && ev.len == 5 &&
              memcmp(ev.data, "abcde", 5) == 0 && off == b.len,
          "ws: fragments with an empty final continuation reassemble");
    ws_reader_clear(&cli);
    nbuf_free(&b);

    struct {
        const char *what;
        uint8_t bytes[16];
        size_t len;
        uint16_t code;
    } bad[] = {
        {"reserved bits", {0xC1, 0x00}, 2, 1002},
        {"opcode 3", {0x83, 0x00}, 2, 1002},
        {"opcode 0xB", {0x8B, 0x00}, 2, 1002},
        {"fragmented ping", {0x09, 0x00}, 2, 1002},
        {"ping of 126 bytes", {0x89, 0x7E, 0x00, 0x7E}, 4, 1002},
        {"continuation first", {0x80, 0x00}, 2, 1002},
        {"64-bit length top bit", {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, 1002},
        {"2 MiB message", {0x82, 0x7F, 0, 0, 0, 0, 0, 0x20, 0, 0}, 10, 1009},
        {"invalid UTF-8 text", {0x81, 0x02, 0xC3, 0x28}, 4, 1007},
        {"1-byte close", {0x88, 0x01, 0x03}, 3, 1002},
        {"close code 1005", {0x88, 0x02, 0x03, 0xED}, 4, 1002},
        {"close code 999", {0x88, 0x02, 0x03, 0xE7}, 4, 1002},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ws_reader_init(&cli, false, 0);
        CHECK(ws_reader_next(&cli, bad[i].bytes, bad[i].len, &used, &ev, &code) == -EPROTO && code == bad[i].code,
              "ws: %s refused with %u (%s)", bad[i].what, bad[i].code, cli.error ? cli.error : "-");
        ws_reader_clear(&cli);
    }
    const uint8_t two_starts[] = {0x01, 0x01, 'a', 0x01, 0x01, 'b'};
    ws_reader_init(&cli, false, 0);
    off = 0;
    b = (struct nbuf){.data = (uint8_t *)two_starts, .len = sizeof(two_starts)};
    CHECK(read_all(&cli, &b, &ev, &code, &off) == -EPROTO && code == 1002, "ws: new message inside a fragmented one");
    ws_reader_clear(&cli);
    const uint8_t close_frame[] = {0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'};
    ws_reader_init(&cli, false, 0);
    CHECK(ws_reader_next(&cli, close_frame, sizeof(close_frame), &used, &ev, &code) == 1 && ev.kind == WS_EV_CLOSE &&
              ev.code == 1000 && ev.len == 3 && memcmp(ev.data, "bye", 3) == 0,
          "ws: close frame with code and reason");
    const uint8_t empty_close[] = {0x88, 0x00};
    CHECK(ws_reader_next(&cli, empty_close, 2, &used, &ev, &code) == 1 && ev.code == 1005, "ws: empty close is 1005");
    ws_reader_clear(&cli);

    /* the limit counts the whole message across fragments */
    ws_reader_init(&cli, false, 10);
    b = (struct nbuf){0};
    nbuf_append(&b, hdr, ws_frame_header(hdr, false, WS_OP_BINARY, 6, NULL));
    nbuf_append(&b, "123456", 6);
    nbuf_append(&b, hdr, ws_frame_header(hdr, true, WS_OP_CONT, 6, NULL));
    nbuf_append(&b, "789012", 6);
    off = 0;
    CHECK(read_all(&cli, &b, &ev, &code, &off) == -EPROTO && code == 1009, "ws: fragments over the limit: 1009");
    ws_reader_clear(&cli);
    nbuf_free(&b);

    uint8_t payload[WS_MAX_CONTROL];
    char longreason[200];
    memset(longreason, 'r', sizeof(longreason) - 1);
    longreason[sizeof(longreason) - 1] = 0;
    CHECK(ws_close_payload(payload, 1000, longreason) == WS_MAX_CONTROL && payload[0] == 0x03 && payload[1] == 0xE8,
          "ws: close payload cut to 125 bytes");
    CHECK(utf8_valid((const uint8_t *)"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", 15) &&
              !utf8_valid((const uint8_t *)"\xED\xA0\x80", 3) && !utf8_valid((const uint8_t *)"\xC0\xAF", 2) &&
              !utf8_valid((const uint8_t *)"\xF4\x90\x80\x80", 4) && !utf8_valid((const uint8_t *)"\xE2\x82", 2),
          "utf8: valid text; surrogates, overlong, > U+10FFFF, truncated refused");
}

static int fired[4], nfired;
static void on_timer(struct net_timer *t, void *data)
{
    (void)t;
    fired[nfired++] = (int)(intptr_t)data;
}
static void on_last(struct net_timer *t, void *data)
{
    (void)t;
    net_loop_quit(data);
}

static void test_loop_timers(void)
{
    struct net_loop *loop;
    CHECK(net_loop_new(&loop) == 0, "loop: created");
    int64_t now = now_ms();
    net_timer_add(loop, now + 30, on_timer, (void *)3);
    net_timer_add(loop, now + 10, on_timer, (void *)1);
    struct net_timer *gone = net_timer_add(loop, now + 15, on_timer, (void *)9);
    net_timer_add(loop, now + 20, on_timer, (void *)2);
    net_timer_add(loop, now + 40, on_last, loop);
    net_timer_cancel(gone);
    CHECK(net_loop_run(loop) == 0 && nfired == 3 && fired[0] == 1 && fired[1] == 2 && fired[2] == 3,
          "loop: timers fire in deadline order; a cancelled one never fires");
    CHECK(now_ms() - now >= 40 && now_ms() - now < 2000, "loop: ran for the timers' time");
    net_loop_free(loop);
}

/* The offload thread: jobs run in order off the loop's thread, done calls on it; a bound; the
 * jobs never run are handed back as cancelled when the loop is freed. */
struct off_state {
    struct net_loop *loop;
    pthread_t loop_thread;
    pthread_mutex_t gate; /* held by the test: the first job waits on it */
    int ran[NET_OFFLOAD_MAX + 1], nran;
    int done[NET_OFFLOAD_MAX + 1], ndone, cancelled, timedout, want, off_loop, on_loop;
};
struct off_job {
    struct off_state *st;
    int id;
};

static void off_work(void *data)
{
    struct off_job *j = data;
    if (j->id == 0) {
        pthread_mutex_lock(&j->st->gate);
        pthread_mutex_unlock(&j->st->gate);
    }
    j->st->off_loop += !pthread_equal(pthread_self(), j->st->loop_thread);
    j->st->ran[__atomic_load_n(&j->st->nran, __ATOMIC_RELAXED)] = j->id;
    __atomic_fetch_add(&j->st->nran, 1, __ATOMIC_RELEASE);
}

static void off_done(void *data, int status)
{
    struct off_job *j = data;
    j->st->on_loop += pthread_equal(pthread_self(), j->st->loop_thread);
    if (status == -ECANCELED)
        j->st->cancelled++;
    else if (status == -ETIMEDOUT)
        j->st->timedout++;
    else
        j->st->done[j->st->ndone++] = j->id;
    if (j->st->ndone + j->st->timedout == j->st->want && j->st->loop)
        net_loop_quit(j->st->loop);
}

static void test_loop_offload(void)
{
    static struct off_state st;
    static struct off_job jobs[NET_OFFLOAD_MAX + 1];
    struct net_loop *loop;
    int busy;

    CHECK(net_loop_new(&loop) == 0, "offload: loop created");
    st.loop = loop;
    st.want = 3;
    st.loop_thread = pthread_self();
    pthread_mutex_init(&st.gate, NULL);
    pthread_mutex_lock(&st.gate);
    for (int i = 0; i <= NET_OFFLOAD_MAX; i++)
        jobs[i] = (struct off_job){&st, i};
    for (int i = 0; i < 3; i++)
        net_loop_offload(loop, off_work, off_done, &jobs[i], 0);
    pthread_mutex_unlock(&st.gate);
    net_timer_add(loop, now_ms() + 10000, on_last, loop); /* a bound if the jobs never came back */
    CHECK(net_loop_run(loop) == 0 && st.ndone == 3 && st.done[0] == 0 && st.done[1] == 1 && st.done[2] == 2 &&
              st.nran == 3 && st.ran[2] == 2,
          "offload: three jobs run and handed back in the order given");
    CHECK(st.off_loop == 3 && st.on_loop == 3, "offload: work off the loop's thread, done calls on it");

    /* a job whose turn comes after its start_by is handed back unrun */
    pthread_mutex_lock(&st.gate);
    st.nran = st.ndone = 0;
    st.want = 2;
    net_loop_offload(loop, off_work, off_done, &jobs[0], 0);
    net_loop_offload(loop, off_work, off_done, &jobs[1], now_ms() + 1);
    usleep(20 * 1000);
    pthread_mutex_unlock(&st.gate);
    CHECK(net_loop_run(loop) == 0 && st.ndone == 1 && st.done[0] == 0 && st.timedout == 1 && st.nran == 1,
          "offload: a job whose turn came after its start_by is not run (-ETIMEDOUT)");

    /* the bound: job 0 waits on the gate, the rest queue behind it */
    pthread_mutex_lock(&st.gate);
    st.nran = st.ndone = 0;
    st.loop = NULL;
    busy = 0;
    for (int i = 0; i < NET_OFFLOAD_MAX; i++)
        busy += net_loop_offload(loop, off_work, off_done, &jobs[i], 0) == -EBUSY;
    CHECK(busy == 0 && net_loop_offload(loop, off_work, off_done, &jobs[NET_OFFLOAD_MAX], 0) == -EBUSY,
          "offload: %d jobs waiting at most, -EBUSY beyond", NET_OFFLOAD_MAX);
    pthread_mutex_unlock(&st.gate);
    for (int i = 0; i < 10000 && __atomic_load_n(&st.nran, __ATOMIC_ACQUIRE) == 0; i++)
        usleep(1000); /* job 0 ran: it is not cancelled, the others may be */
    net_loop_free(loop);
    CHECK(st.ndone + st.cancelled == NET_OFFLOAD_MAX && st.ndone >= 1 && st.done[0] == 0 && st.nran == st.ndone,
          "offload: freeing the loop hands back every job: %d run, %d cancelled (never run)", st.ndone, st.cancelled);
    pthread_mutex_destroy(&st.gate);
}

int main(void)
{
    log_set_level(LOG_ERR);
    test_url_parse();
    test_url_join();
    test_http_request();
    test_http_response();
    test_chunked();
    test_accept_key();
    test_close_reason();
    test_ws_frames();
    test_loop_timers();
    test_loop_offload();
    return tap_done();
}
