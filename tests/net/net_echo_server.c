/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Test server for the net suite, built on lib/net: listens on 127.0.0.1 (port 0 by default),
 * prints "PORT <n>" and "PID <pid>" on stdout, serves until SIGTERM (graceful drain) and says "drained".
 *
 *   GET  /healthz      200 "ok"
 *   POST /echo         the body back
 *   WS   /echo         every message back, same type
 *   WS   /getPass      a multi-step exchange like G1 (docs/protocol-g1.md §4): needs a `label` header
 *                      (else 401), sends a binary challenge {"challenge":"<label>"}, waits for
 *                      "answer:<label>" (newline tolerated) within --answer-ms, sends
 *                      {"passphrase":"pass-<label>"} and closes.
 *   WS   /big?n=N      sends one N-byte text message, then closes.
 * Each WebSocket close is logged as "closed <peer> <path> why=<reason>". */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "net.h"

static struct net_loop *loop;
static struct net_server *server;
static int drain_ms = 5000, answer_ms = 5000;

static void healthz(struct net_conn *c, const struct net_request *req, void *data)
{
    (void)req, (void)data;
    net_conn_respond(c, 200, NULL, "ok\n", 3, NULL);
}

static void echo_http(struct net_conn *c, const struct net_request *req, void *data)
{
    size_t len;
    const uint8_t *body = net_request_body(req, &len);
    const char *ct = net_request_header(req, "Content-Type");
    (void)data;
    net_conn_respond(c, 200, ct ? ct : "application/octet-stream", body, len, NULL);
}

static const char *why_name(enum net_close_reason why)
{
    static const char *const names[] = {"normal", "peer-gone", "timeout", "protocol", "shutdown"};
    return why <= NET_CLOSE_SHUTDOWN ? names[why] : "?";
}

static void on_close(struct net_conn *c, enum net_close_reason why, void *data)
{
    log_info("closed %s %s why=%s", net_conn_peer(c), (const char *)data, why_name(why));
    free(net_conn_data(c));
}

static void echo_open(struct net_conn *c, const struct net_request *req, void *data) { (void)c, (void)req, (void)data; }

static void echo_message(struct net_conn *c, enum net_ws_type type, const uint8_t *msg, size_t len, void *data)
{
    (void)data;
    net_conn_send(c, type, msg, len);
}

/* ---- /getPass: send challenge, wait for the answer, send the result, close ---- */
static void getpass_open(struct net_conn *c, const struct net_request *req, void *data)
{
    const char *label = net_request_header(req, "label");
    char msg[256];
    (void)data;
    if (!label || !*label || strlen(label) > 64) {
        net_conn_respond(c, 401, NULL, "missing label\n", 14, NULL);
        return;
    }
    net_conn_set_data(c, xstrdup(label));
    int n = snprintf(msg, sizeof(msg), "{\"challenge\":\"%s\"}", label);
    net_conn_send(c, NET_WS_BINARY, msg, (size_t)n);
    net_conn_set_deadline(c, now_ms() + answer_ms);
}

static void getpass_message(struct net_conn *c, enum net_ws_type type, const uint8_t *msg, size_t len, void *data)
{
    const char *label = net_conn_data(c);
    char want[128], out[256];
    (void)type, (void)data;
    if (len > 0 && msg[len - 1] == '\n')
        len--; /* Go's json.Encoder ends with a newline */
    int n = snprintf(want, sizeof(want), "answer:%s", label);
    if (len == (size_t)n && memcmp(msg, want, len) == 0)
        n = snprintf(out, sizeof(out), "{\"passphrase\":\"pass-%s\",\"error\":\"\"}\n", label);
    else
        n = snprintf(out, sizeof(out), "{\"passphrase\":\"\",\"error\":\"invalid challenge response\"}\n");
    net_conn_send(c, NET_WS_BINARY, out, (size_t)n);
    net_conn_close(c, 1000, NULL);
}

static void big_open(struct net_conn *c, const struct net_request *req, void *data)
{
    const char *q = net_request_query(req);
    size_t n = strncmp(q, "n=", 2) == 0 ? strtoul(q + 2, NULL, 10) : 0;
    (void)data;
    if (n > 16 * 1024 * 1024)
        n = 16 * 1024 * 1024;
    char *msg = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        msg[i] = (char)('a' + i % 26);
    net_conn_send(c, NET_WS_TEXT, msg, n);
    free(msg);
    net_conn_close(c, 1000, "done");
}

static void drained(struct net_server *s, void *data)
{
    (void)s, (void)data;
    printf("drained\n");
    fflush(stdout);
    net_loop_quit(loop);
}

static void on_term(struct net_loop *l, int signo, void *data)
{
    (void)l, (void)data;
    log_info("signal %d: draining for up to %d ms", signo, drain_ms);
    net_server_drain(server, drain_ms);
}

static int usage(void)
{
    fprintf(stderr, "usage: net_echo_server [--debug] [--tls CERT KEY] [--port N] [--address A] [--max-conns N]\n"
                    "  [--max-conns-per-peer N (default: --max-conns)]\n"
                    "  [--request-timeout-ms N] [--idle-ms N] [--linger-ms N] [--max-message N] [--drain-ms N]\n"
                    "  [--answer-ms N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct net_server_config cfg = {.address = "127.0.0.1", .on_drained = drained};
    struct ktls_server *tls = NULL;
    int r;

    log_set_program("net_echo_server");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--debug") == 0) {
            log_set_level(LOG_DEBUG);
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (strcmp(a, "--tls") == 0) {
            if (i + 1 >= argc)
                return usage();
            if (ktls_server_new(v, argv[++i], &tls) < 0)
                return 1;
            cfg.tls = tls;
        } else if (strcmp(a, "--port") == 0) {
            cfg.port = (uint16_t)atoi(v);
        } else if (strcmp(a, "--address") == 0) {
            cfg.address = v;
        } else if (strcmp(a, "--max-conns") == 0) {
            cfg.limits.max_conns = (size_t)atol(v);
        } else if (strcmp(a, "--max-conns-per-peer") == 0) {
            cfg.limits.max_conns_per_peer = (size_t)atol(v);
        } else if (strcmp(a, "--request-timeout-ms") == 0) {
            cfg.limits.request_timeout_ms = atoi(v);
        } else if (strcmp(a, "--idle-ms") == 0) {
            cfg.limits.idle_timeout_ms = atoi(v);
        } else if (strcmp(a, "--linger-ms") == 0) {
            cfg.limits.linger_ms = atoi(v);
        } else if (strcmp(a, "--max-message") == 0) {
            cfg.limits.max_message = (size_t)atol(v);
        } else if (strcmp(a, "--drain-ms") == 0) {
            drain_ms = atoi(v);
        } else if (strcmp(a, "--answer-ms") == 0) {
            answer_ms = atoi(v);
        } else {
            return usage();
        }
    }
    /* Every client of the net suite comes from 127.0.0.1: unless told, one address may use
     * every slot (the per-address limit has its own tests in tests/hostile). */
    if (!cfg.limits.max_conns_per_peer)
        cfg.limits.max_conns_per_peer = cfg.limits.max_conns ? cfg.limits.max_conns : 1024;
    if (net_loop_new(&loop) < 0 || net_server_new(loop, &cfg, &server) < 0)
        return 1;
    const struct net_handler routes[] = {
        {.on_request = healthz},
        {.on_request = echo_http},
        {.on_open = echo_open, .on_message = echo_message, .on_close = on_close, .data = "/echo"},
        {.on_open = getpass_open, .on_message = getpass_message, .on_close = on_close, .data = "/getPass"},
        {.on_open = big_open, .on_close = on_close, .data = "/big"},
    };
    if (net_server_route(server, "GET", "/healthz", &routes[0]) < 0 ||
        net_server_route(server, "POST", "/echo", &routes[1]) < 0 ||
        net_server_route(server, "GET", "/echo", &routes[2]) < 0 ||
        net_server_route(server, NULL, "/getPass", &routes[3]) < 0 ||
        net_server_route(server, NULL, "/big", &routes[4]) < 0)
        return 1;
    if (net_loop_on_signal(loop, SIGTERM, on_term, NULL) < 0 || net_loop_on_signal(loop, SIGINT, on_term, NULL) < 0)
        return 1;
    printf("PORT %u\nPID %d\n", net_server_port(server), (int)getpid());
    fflush(stdout);
    r = net_loop_run(loop);
    net_server_free(server);
    net_loop_free(loop);
    ktls_server_free(tls);
    return r < 0 ? 1 : 0;
}
