/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/net's clients, the side that reads what a server sends: the bytes
 * (after a byte of options) are the whole answer of a fake server to net_http_request (GET, HEAD
 * or POST: interim 1xx answers, the response head, a body framed by Content-Length, chunked or by
 * the end of the connection, the body limit) or to net_ws_dial + net_ws_recv (the upgrade answer,
 * a refused upgrade's body, then unmasked frames from the server; pings are answered).
 * The fake server is a socket pair: this file's net_dial replaces lib/net/dial.c's, and a thread
 * drains what the client writes (requests, pongs, close frames) so the client never blocks.
 * The WebSocket key is made from a fixed nonce (getrandom below) so seeds can carry the right
 * Sec-WebSocket-Accept, ICX+Yqv66kxgM0FcWaLWlFLwTAI= (key AAAAAAAAAAAAAAAAAAAAAA==).
 * Errors are logged to stderr, so run it with -close_fd_mask=2 by hand:
 *   ./fuzz_http_client -close_fd_mask=2 -max_total_time=60 tests/fuzz/corpus/http_client */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net_internal.h"

#define MAX_INPUT (64 * 1024) /* one write into the socket pair's buffer */
#define SMALL_MAX 64

static const uint8_t *answer;
static size_t answer_len;
static int server_fd = -1;
static pthread_t drainer;
static bool fixed_random;

static void *drain(void *arg);

/* Fixed bytes while a client runs (only the WebSocket nonce and masks are asked for), the
 * kernel's otherwise (libFuzzer and the libraries may ask too). */
ssize_t getrandom(void *buf, size_t n, unsigned int flags)
{
    if (!fixed_random)
        return syscall(SYS_getrandom, buf, n, flags);
    memset(buf, 0, n);
    return (ssize_t)n;
}

/* The connection: our end gets the answer and the end of the stream, the client gets the other. */
int net_dial(const struct net_url *u, const struct net_client_opts *o, struct ktls_client *tls, int64_t deadline,
             const char *peer, struct net_stream *out)
{
    int sv[2];

    (void)u, (void)o, (void)tls, (void)deadline;
    *out = (struct net_stream){.fd = -1};
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return log_error_errno(-errno, "%s: socketpair failed: %m", peer);
    if (answer_len && write(sv[1], answer, answer_len) != (ssize_t)answer_len)
        abort(); /* MAX_INPUT fits in the socket buffer */
    shutdown(sv[1], SHUT_WR);
    /* Non-blocking, as net_dial's sockets are: the client waits in poll when it must. */
    if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
        abort();
    server_fd = sv[1];
    if (pthread_create(&drainer, NULL, drain, NULL) != 0)
        abort();
    out->fd = sv[0];
    return 0;
}

/* Reads and drops what the client sends until it closes its end. */
static void *drain(void *arg)
{
    char sink[4096];
    (void)arg;
    for (;;) {
        ssize_t n = read(server_fd, sink, sizeof(sink));
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        return NULL;
    }
}

static void check_response(const struct net_http_response *r, bool no_body, size_t max)
{
    if (r->status < 200 || r->status > 999 || !r->reason || !r->body || r->body[r->body_len] != 0 ||
        r->body_len > max || (no_body && r->body_len != 0))
        abort();
    for (size_t i = 0; i < r->n_headers; i++)
        if (!r->headers[i].name || !r->headers[i].value || !net_http_response_header(r, r->headers[i].name))
            abort(); /* every header can be looked up by its own name */
}

static void run_http(const char *method, size_t max)
{
    static const char body[] = "{\"fuzz\":1}";
    struct net_client_opts o = {.deadline_ms = now_ms() + 5000, .max_message = max};
    struct net_http_response *r = NULL;
    bool post = strcmp(method, "POST") == 0;

    if (net_http_request(method, "http://fuzz.invalid/v1/x", post ? "application/json" : NULL, post ? body : NULL,
                         post ? strlen(body) : 0, &o, &r) == 0) {
        check_response(r, strcmp(method, "HEAD") == 0 || r->status == 204 || r->status == 304, max);
        net_http_response_free(r);
    } else if (r) {
        abort(); /* nothing is handed out on an error */
    }
}

static void run_ws(size_t max)
{
    struct net_client_opts o = {.deadline_ms = now_ms() + 5000, .max_message = max};
    struct net_ws_client *c = NULL;

    if (net_ws_dial("ws://fuzz.invalid/ws", &o, &c) < 0) {
        if (c)
            abort();
        return;
    }
    /* Every message needs at least a 2-byte frame, so the answer bounds the loop. */
    for (size_t i = 0; i <= MAX_INPUT / 2; i++) {
        enum net_ws_type type;
        uint8_t *data = NULL;
        size_t len = 0;
        if (net_ws_recv(c, &type, &data, &len) < 0)
            break;
        if (len > max || data[len] != 0 || (type != NET_WS_TEXT && type != NET_WS_BINARY) ||
            (type == NET_WS_TEXT && !utf8_valid(data, len)))
            abort();
        free(data);
    }
    int code = net_ws_close_code(c);
    if (code < 1000 || code > 4999)
        abort();
    net_ws_free(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "HEAD", "POST"};

    if (size < 1 || size - 1 > MAX_INPUT)
        return 0;
    unsigned mode = data[0] & 3;
    size_t max = data[0] & 4 ? SMALL_MAX : NET_DEFAULT_MAX_MESSAGE;
    answer = data + 1;
    answer_len = size - 1;
    server_fd = -1;
    fixed_random = true;
    if (mode == 3)
        run_ws(max);
    else
        run_http(methods[mode], max);
    fixed_random = false;
    /* The client closed its end (if it dialled at all): the drain has ended or ends now. */
    if (server_fd >= 0) {
        pthread_join(drainer, NULL);
        close(server_fd);
    }
    return 0;
}
