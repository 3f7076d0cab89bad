/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Test client for the net suite, built on lib/net's blocking clients.
 *
 *   net_client [options] ws URL ACTION...     dial, then run the actions in order
 *   net_client [options] http METHOD URL [BODY]
 *
 * Actions: send:TEXT (text message), bsend:TEXT (binary), sendn:N (text of N bytes),
 * recv (prints "recv text|binary LEN DATA", DATA cut to 4000 bytes, or "recv closed CODE").
 * Options: --cert PEMFILE (trusted CA or pinned certificate), --header 'Name: value' (repeat),
 * --host HOST[:PORT] (Host override), --timeout-ms N (whole exchange), --connect-timeout-ms N.
 * Exit: 0 ok, 1 error, 3 certificate refused (the caller must not retry). */
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "net.h"

static void print_data(const char *what, const uint8_t *data, size_t len)
{
    printf("%s %zu ", what, len);
    for (size_t i = 0; i < len && i < 4000; i++)
        putchar(data[i] >= 0x20 && data[i] < 0x7f ? data[i] : '.');
    putchar('\n');
    fflush(stdout);
}

static int run_ws(const char *url, const struct net_client_opts *o, int n, char **actions)
{
    struct net_ws_client *c;
    int r = net_ws_dial(url, o, &c);
    if (r < 0)
        return r;
    printf("connected\n");
    fflush(stdout);
    for (int i = 0; i < n && r >= 0; i++) {
        const char *a = actions[i];
        if (strncmp(a, "send:", 5) == 0) {
            r = net_ws_send(c, NET_WS_TEXT, a + 5, strlen(a + 5));
        } else if (strncmp(a, "bsend:", 6) == 0) {
            r = net_ws_send(c, NET_WS_BINARY, a + 6, strlen(a + 6));
        } else if (strncmp(a, "sendn:", 6) == 0) {
            size_t len = strtoul(a + 6, NULL, 10);
            char *m = xmalloc(len + 1);
            for (size_t k = 0; k < len; k++)
                m[k] = (char)('a' + k % 26);
            r = net_ws_send(c, NET_WS_TEXT, m, len);
            free(m);
        } else if (strcmp(a, "recv") == 0) {
            enum net_ws_type type;
            uint8_t *data;
            size_t len;
            r = net_ws_recv(c, &type, &data, &len);
            if (r == 0) {
                print_data(type == NET_WS_TEXT ? "recv text" : "recv binary", data, len);
                free(data);
            } else if (r == -ECONNRESET) {
                printf("recv closed %d\n", net_ws_close_code(c));
                fflush(stdout);
                r = 0;
            }
        } else {
            fprintf(stderr, "net_client: unknown action %s\n", a);
            r = -EINVAL;
        }
    }
    net_ws_free(c);
    return r;
}

static int run_http(const char *method, const char *url, const char *body, const struct net_client_opts *o)
{
    struct net_http_response *resp;
    int r = net_http_request(method, url, body ? "text/plain" : NULL, body, body ? strlen(body) : 0, o, &resp);
    if (r < 0)
        return r;
    printf("status %d\n", resp->status);
    print_data("body", resp->body, resp->body_len);
    net_http_response_free(resp);
    return 0;
}

int main(int argc, char **argv)
{
    struct net_client_opts o = {0};
    struct net_header headers[16];
    struct ktls_client *tls = NULL;
    const char *cert = NULL;
    int timeout_ms = 10000, i, r;

    log_set_program("net_client");
    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return 2;
        if (strcmp(argv[i], "--cert") == 0) {
            cert = v;
        } else if (strcmp(argv[i], "--header") == 0 && o.n_headers < 16) {
            char *colon = strchr(v, ':');
            if (!colon)
                return 2;
            *colon = 0;
            headers[o.n_headers++] = (struct net_header){v, colon[1] == ' ' ? colon + 2 : colon + 1};
        } else if (strcmp(argv[i], "--host") == 0) {
            o.host_header = v;
        } else if (strcmp(argv[i], "--timeout-ms") == 0) {
            timeout_ms = atoi(v);
        } else if (strcmp(argv[i], "--connect-timeout-ms") == 0) {
            o.connect_timeout_ms = atoi(v);
        } else {
            return 2;
        }
    }
    o.headers = headers;
    o.deadline_ms = now_ms() + timeout_ms;
    if (cert) {
        _cleanup_free_ char *pem = NULL;
        size_t len;
        if (file_read_all(cert, 1 << 20, &pem, &len) < 0 || ktls_client_new(pem, len, false, &tls) < 0)
            return 1;
        o.tls = tls;
    }
    if (i + 1 < argc && strcmp(argv[i], "ws") == 0)
        r = run_ws(argv[i + 1], &o, argc - i - 2, argv + i + 2);
    else if (i + 2 < argc && strcmp(argv[i], "http") == 0)
        r = run_http(argv[i + 1], argv[i + 2], i + 3 < argc ? argv[i + 3] : NULL, &o);
    else
        return 2;
    ktls_client_free(tls);
    if (r < 0)
        printf("error %d %s\n", r, strerror(-r));
    return r == KTLS_ERR_CERT ? 3 : r < 0 ? 1 : 0;
}
