/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* challenger_server on .local -> the KMS servers that answered (docs/upstream.md §7.1). Upstream asks
 * for _kcrypt._tcp and keeps the instance whose SRV target is the URL's host; we ask that and,
 * in the same query, the host's own A record, so a KMS machine that only publishes its name (an
 * avahi host without a service file) is found too, on the URL's port. No answer is an error:
 * a .local name never goes to ordinary DNS (G3 behaviour; G1's silent fallback is docs/upstream.md §8.12). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "mdns_internal.h"
#include "net.h"

static bool is_link_local6(const struct mdns_addr *a) { return a->bytes[0] == 0xfe && (a->bytes[1] & 0xc0) == 0x80; }

/* 0: IPv4, 1: routable IPv6, 2: link-local IPv6 (needs its zone) */
static int rank(const struct mdns_addr *a) { return a->family == AF_INET ? 0 : is_link_local6(a) ? 2 : 1; }

static bool same_host(const char *a, const char *b)
{
    struct mdns_name x, y;
    return mdns_name_parse(a, &x) == 0 && mdns_name_parse(b, &y) == 0 && mdns_name_equal(&x, &y);
}

static void add_endpoint(struct mdns_endpoint *e, size_t *n, const struct mdns_answer *a, const struct mdns_addr *x,
                         uint16_t port, const char *scheme, const char *authority, const char *path)
{
    char ip[INET6_ADDRSTRLEN], zone[IF_NAMESIZE] = "", address[sizeof(e->address)], hostport[128];
    struct mdns_endpoint *p;

    inet_ntop(x->family, x->bytes, ip, sizeof(ip));
    if (x->family == AF_INET6 && is_link_local6(x) && !if_indextoname(x->ifindex, zone))
        return; /* a link-local address we cannot scope is not reachable */
    snprintf(address, sizeof(address), "%s%s%s", ip, zone[0] ? "%" : "", zone);
    for (size_t i = 0; i < *n; i++)
        if (e[i].port == port && !strcmp(e[i].address, address))
            return;
    p = &e[(*n)++];
    *p = (struct mdns_endpoint){.port = port};
    memcpy(p->address, address, sizeof(address));
    if (x->family == AF_INET6)
        snprintf(hostport, sizeof(hostport), "[%s%s%s]:%u", ip, zone[0] ? "%25" : "", zone, port);
    else
        snprintf(hostport, sizeof(hostport), "%s:%u", ip, port);
    size_t len = strlen(scheme) + 3 + strlen(hostport) + strlen(path) + 1;
    p->url = xmalloc(len);
    snprintf(p->url, len, "%s://%s%s", scheme, hostport, strcmp(path, "/") ? path : "");
    p->host_header = xstrdup(authority);
    p->instance = xstrdup(a->instance);
    p->txt = xcalloc(a->n_txt ? a->n_txt : 1, sizeof(char *));
    for (size_t t = 0; t < a->n_txt; t++)
        p->txt[p->n_txt++] = xstrdup(a->txt[t]);
}

int mdns_endpoints_from_answers(const struct mdns_answer *a, size_t n, const char *scheme, const char *host,
                                const char *authority, uint16_t url_port, const char *path, struct mdns_endpoint **out,
                                size_t *n_out)
{
    size_t cap = 0, k = 0;
    struct mdns_endpoint *e;

    for (size_t i = 0; i < n; i++)
        cap += a[i].n_addrs;
    e = xcalloc(cap ? cap : 1, sizeof(*e));
    /* IPv4 first (what upstream uses), then IPv6; within each, service instances before plain
     * address answers, in the order they answered. */
    for (int r = 0; r < 3; r++)
        for (int plain = 0; plain < 2; plain++)
            for (size_t i = 0; i < n; i++) {
                const struct mdns_answer *x = &a[i];
                if ((plain ? x->instance[0] != 0 : x->port == 0) || !same_host(x->host, host))
                    continue;
                for (size_t j = 0; j < x->n_addrs; j++)
                    if (rank(&x->addrs[j]) == r)
                        add_endpoint(e, &k, x, &x->addrs[j], plain ? url_port : x->port, scheme, authority, path);
            }
    *out = e;
    *n_out = k;
    return 0;
}

void mdns_endpoints_free(struct mdns_endpoint *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++) {
        free(e[i].url);
        free(e[i].host_header);
        free(e[i].instance);
        for (size_t t = 0; t < e[i].n_txt; t++)
            free(e[i].txt[t]);
        free(e[i].txt);
    }
    free(e);
}

int mdns_resolve_server(const char *challenger_server_url, int64_t timeout_ms, struct mdns_endpoint **out, size_t *n)
{
    struct net_url u;
    struct mdns_question q[2] = {{.type = MDNS_TYPE_PTR, .qclass = MDNS_CLASS_IN},
                                 {.type = MDNS_TYPE_A, .qclass = MDNS_CLASS_IN}};
    struct mdns_collect *c = NULL;
    struct mdns_answer *a = NULL;
    size_t n_a = 0;
    char host[MDNS_NAME_TEXT_MAX];
    int r;

    *out = NULL;
    *n = 0;
    if (net_url_parse(challenger_server_url, &u) < 0)
        return log_error_errno(-EINVAL, "mdns: %s: not a URL of the form http(s)://host[:port]", challenger_server_url);
    if (!mdns_host_is_local(u.host)) {
        r = log_error_errno(-EINVAL, "mdns: %s: the host must end in .local to be found over mDNS", u.host);
        goto out;
    }
    mdns_name_parse(MDNS_SERVICE ".local", &q[0].name);
    mdns_name_parse(u.host, &q[1].name);
    mdns_name_to_text(&q[1].name, host, sizeof(host));
    c = xmalloc(sizeof(*c));
    mdns_collect_init(c, MDNS_SERVICE ".local", host);
    r = mdns_query_run(q, 2, timeout_ms, MDNS_SETTLE_MS, c);
    if (r == 0)
        r = mdns_collect_answers(c, &a, &n_a);
    for (size_t i = 0; r == 0 && i < n_a; i++)
        if (a[i].port && !same_host(a[i].host, host))
            log_debug("mdns: %s (from %s) announces %s, not %s; ignored", a[i].instance, a[i].from, a[i].host, host);
    if (r == 0)
        r = mdns_endpoints_from_answers(a, n_a, u.scheme, host, u.authority, u.port, u.path, out, n);
    if (r == 0 && *n == 0) {
        mdns_endpoints_free(*out, 0);
        *out = NULL;
        r = log_error_errno(-ENOENT, "mdns: no answer for %s within %g s", host, (double)timeout_ms / 1000);
    }
    for (size_t i = 0; r == 0 && i < *n; i++)
        log_debug("mdns: %s is at %s (%s)", host, (*out)[i].url,
                  (*out)[i].instance[0] ? (*out)[i].instance : "an address record");
out:
    mdns_answers_free(a, n_a);
    if (c)
        mdns_collect_clear(c);
    free(c);
    net_url_clear(&u);
    return r;
}
