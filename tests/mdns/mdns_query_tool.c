/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Test driver for lib/mdns's node side, one line per result:
 *   mdns_query_tool resolve URL [TIMEOUT_MS]      mdns_resolve_server: the endpoints
 *   mdns_query_tool query NAME TYPE [TIMEOUT_MS]  mdns_query (TYPE: A, AAAA, PTR, SRV, TXT, ANY)
 * Exit 0 with results, 1 without (the library's one-line error on stderr), 2 bad usage. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base.h"
#include "mdns.h"

static void print_txt(char **txt, size_t n)
{
    printf(" txt=");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? "|" : "", txt[i]);
}

static int resolve(const char *url, int64_t timeout_ms)
{
    struct mdns_endpoint *e;
    size_t n;
    int64_t start = now_ms();

    if (mdns_resolve_server(url, timeout_ms, &e, &n) < 0) {
        fprintf(stderr, "elapsed_ms=%lld\n", (long long)(now_ms() - start));
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        printf("endpoint %s %u url=%s host=%s instance=%s", e[i].address, e[i].port, e[i].url, e[i].host_header,
               e[i].instance[0] ? e[i].instance : "-");
        print_txt(e[i].txt, e[i].n_txt);
        printf("\n");
    }
    fprintf(stderr, "elapsed_ms=%lld\n", (long long)(now_ms() - start));
    mdns_endpoints_free(e, n);
    return 0;
}

static int query(const char *name, const char *type_text, int64_t timeout_ms)
{
    static const struct {
        const char *name;
        uint16_t type;
    } types[] = {{"A", MDNS_TYPE_A},     {"AAAA", MDNS_TYPE_AAAA}, {"PTR", MDNS_TYPE_PTR},
                 {"SRV", MDNS_TYPE_SRV}, {"TXT", MDNS_TYPE_TXT},   {"ANY", MDNS_TYPE_ANY}};
    struct mdns_answer *a;
    size_t n, t;
    char ip[INET6_ADDRSTRLEN];

    for (t = 0; t < sizeof(types) / sizeof(types[0]) && strcasecmp(types[t].name, type_text); t++)
        ;
    if (t == sizeof(types) / sizeof(types[0])) {
        fprintf(stderr, "unknown type %s\n", type_text);
        return 2;
    }
    if (mdns_query(name, types[t].type, timeout_ms, &a, &n) < 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        printf("answer from=%s instance=%s host=%s port=%u addrs=", a[i].from, a[i].instance[0] ? a[i].instance : "-",
               a[i].host[0] ? a[i].host : "-", a[i].port);
        for (size_t k = 0; k < a[i].n_addrs; k++)
            printf("%s%s", k ? "," : "", inet_ntop(a[i].addrs[k].family, a[i].addrs[k].bytes, ip, sizeof(ip)));
        print_txt(a[i].txt, a[i].n_txt);
        printf("\n");
    }
    mdns_answers_free(a, n);
    return n ? 0 : 1;
}

int main(int argc, char **argv)
{
    int64_t timeout_ms = 5000;

    log_set_program("mdns_query_tool");
    if (argc >= 3 && !strcmp(argv[1], "resolve")) {
        if (argc > 3)
            timeout_ms = strtoll(argv[3], NULL, 10);
        return resolve(argv[2], timeout_ms);
    }
    if (argc >= 4 && !strcmp(argv[1], "query")) {
        if (argc > 4)
            timeout_ms = strtoll(argv[4], NULL, 10);
        return query(argv[2], argv[3], timeout_ms);
    }
    fprintf(stderr, "usage: mdns_query_tool resolve URL [TIMEOUT_MS] | query NAME TYPE [TIMEOUT_MS]\n");
    return 2;
}
