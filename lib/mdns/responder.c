/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The responder daemon: one UDP socket on port 5353 (shared, like every mDNS stack does), the
 * group joined on each interface served, answers decided by zone.c and sent the way RFC 6762
 * asks: QM multicast on the interface the query came in on (a record at most once a second
 * there, §6), QU and direct queries by unicast, legacy queries by unicast with their id (§6.7).
 * Announced at start (twice, a second apart, §8.3); a goodbye (TTL 0, §10.1) when the owner
 * stops it. It lives on the owner's net_loop (the mdns-responder applet's, or the challenger's for
 * `--announce`) and touches no signal: the owner maps SIGHUP and SIGTERM to reload and goodbye.
 * No probing for conflicts (hashicorp/mdns ignores them too). Messages name the flags of
 * simple-mdns-server, whose configuration this is. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base.h"
#include "mdns_internal.h"

#define REFRESH_MS 5000 /* interfaces and their addresses are re-read this often */
#define ANNOUNCEMENTS 2
#define RATE_PER_S 200   /* responses sent per second at most, whatever arrives */
#define N_RECORD_KINDS 6 /* bits of MDNS_REC_ALL */

struct served {
    struct mdns_iface i;
    int64_t last_multicast[N_RECORD_KINDS];
};

struct mdns_responder {
    struct mdns_service svc;
    char *names[MDNS_MAX_IFACES];
    size_t n_names;
    struct served ifs[MDNS_MAX_IFACES];
    size_t n_ifs;
    uint8_t v4[MDNS_MAX_IFADDRS][4];
    size_t n_v4;
    uint8_t v6[MDNS_MAX_IFADDRS][16];
    size_t n_v6;
    int fd;
    struct net_loop *loop;
    struct net_timer *timer; /* the next announcement or interface refresh */
    bool watching;
    int announced;
    int64_t next_announce;
    int64_t refreshed_at, tokens_at;
    int tokens;
};

static void arm(struct mdns_responder *r);

static const struct served *find_old(const struct mdns_responder *r, unsigned index)
{
    for (size_t i = 0; i < r->n_ifs; i++)
        if (r->ifs[i].i.index == index)
            return &r->ifs[i];
    return NULL;
}

/* (Re)reads the interfaces to serve and joins the group on each. At start every named one must
 * be usable; later, one that went away is just left out until it comes back. */
static int load_ifaces(struct mdns_responder *r, bool at_start)
{
    struct served next[MDNS_MAX_IFACES];
    struct mdns_iface found[MDNS_MAX_IFACES];
    size_t n = 0, n_found = 0;
    bool explicit_addrs = r->n_v4 || r->n_v6;
    int k;

    r->refreshed_at = now_ms(); /* a failure is tried again at the next refresh, not at once */
    if (r->n_names == 0 && (k = mdns_ifaces(NULL, found, MDNS_MAX_IFACES, &n_found)) < 0)
        return k;
    for (size_t i = 0; i < r->n_names; i++) {
        const char *name = r->names[i];
        size_t one = 0;
        k = mdns_ifaces(name, &found[n_found], 1, &one);
        if (k == -ENODEV && at_start)
            return log_error_errno(k, "--interfaceName %s: no such interface", name);
        if (k == -EADDRNOTAVAIL && at_start)
            return log_error_errno(k, "--interfaceName %s: is down or does not do multicast", name);
        if (k < 0 && at_start)
            return k;
        if (k == 0 && found[n_found].n_v4 == 0 && !explicit_addrs && at_start)
            return log_error_errno(-EADDRNOTAVAIL, "--interfaceName %s: has no IPv4 address (give --address)", name);
        n_found += k == 0 ? one : 0;
    }
    for (size_t i = 0; i < n_found; i++) {
        if (found[i].n_v4 == 0 && !explicit_addrs)
            continue;
        if ((k = mdns_join(r->fd, found[i].index)) < 0) {
            if (at_start)
                return log_error_errno(k, "%s: cannot join %s: %m", found[i].name, MDNS_GROUP_V4);
            continue;
        }
        const struct served *old = find_old(r, found[i].index);
        next[n] = old ? *old : (struct served){0};
        next[n++].i = found[i];
    }
    if (n == 0 && at_start)
        return log_error_errno(-ENETDOWN, "no network interface is up with multicast and an IPv4 address");
    memcpy(r->ifs, next, n * sizeof(next[0]));
    r->n_ifs = n;
    return 0;
}

static void drain(struct mdns_responder *r);
static void describe(const struct mdns_responder *r, char *out, size_t cap);

static void on_readable(int fd, uint32_t events, void *data)
{
    (void)fd;
    (void)events;
    drain(data);
}

int mdns_responder_new(struct net_loop *loop, const struct mdns_responder_config *c, struct mdns_responder **out)
{
    struct mdns_responder *r = xcalloc(1, sizeof(*r));
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(MDNS_PORT)};
    char hostname[256] = "", what[1024];
    int k;

    *out = NULL;
    r->fd = -1;
    r->loop = loop;
    if (!c->instance && (gethostname(hostname, sizeof(hostname) - 1) < 0 || !hostname[0]))
        snprintf(hostname, sizeof(hostname), "kairos-kms");
    if (!c->host || !c->host[0]) {
        k = log_error_errno(-EINVAL, "--hostName is required");
        goto fail;
    }
    k = mdns_service_init(&r->svc, c->instance ? c->instance : hostname, c->service ? c->service : MDNS_SERVICE,
                          c->host, c->port, c->txt, c->n_txt, c->ttl);
    if (k < 0)
        goto fail;
    for (size_t i = 0; i < c->n_addresses; i++) {
        if (r->n_v4 < MDNS_MAX_IFADDRS && inet_pton(AF_INET, c->addresses[i], r->v4[r->n_v4]) == 1)
            r->n_v4++;
        else if (r->n_v6 < MDNS_MAX_IFADDRS && inet_pton(AF_INET6, c->addresses[i], r->v6[r->n_v6]) == 1)
            r->n_v6++;
        else {
            k = log_error_errno(-EINVAL, "--address %s: not a numeric IPv4 or IPv6 address (or more than %d)",
                                c->addresses[i], MDNS_MAX_IFADDRS);
            goto fail;
        }
    }
    if (c->n_interfaces > MDNS_MAX_IFACES) {
        k = log_error_errno(-EINVAL, "--interfaceName: at most %d interfaces", MDNS_MAX_IFACES);
        goto fail;
    }
    for (size_t i = 0; i < c->n_interfaces; i++)
        r->names[r->n_names++] = xstrdup(c->interfaces[i]);
    r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* Shared with other responders (avahi sets both too); TTL 255 as RFC 6762 §11 asks; our own
     * multicast looped back so a querier on this host hears it. */
    if (r->fd < 0 || mdns_set_int(r->fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 ||
        mdns_set_int(r->fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0 || mdns_set_int(r->fd, IPPROTO_IP, IP_PKTINFO, 1) < 0 ||
        mdns_set_int(r->fd, IPPROTO_IP, IP_MULTICAST_TTL, 255) < 0 ||
        mdns_set_int(r->fd, IPPROTO_IP, IP_MULTICAST_LOOP, 1) < 0) {
        k = log_error_errno(-errno, "cannot open a UDP socket: %m");
        goto fail;
    }
    if (bind(r->fd, (struct sockaddr *)&any, sizeof(any)) < 0) {
        k = log_error_errno(-errno, "cannot bind UDP port %d: %m", MDNS_PORT);
        goto fail;
    }
    if ((k = load_ifaces(r, true)) < 0)
        goto fail;
    if ((k = net_loop_watch(loop, r->fd, EPOLLIN, on_readable, r)) < 0) {
        log_error_errno(k, "cannot watch the mDNS socket: %m");
        goto fail;
    }
    r->watching = true;
    r->tokens = RATE_PER_S;
    r->tokens_at = now_ms();
    r->next_announce = now_ms();
    describe(r, what, sizeof(what));
    log_info("announcing %s", what);
    arm(r);
    *out = r;
    return 0;
fail:
    mdns_responder_free(r);
    return k;
}

void mdns_responder_free(struct mdns_responder *r)
{
    if (!r)
        return;
    net_timer_cancel(r->timer);
    if (r->watching)
        net_loop_unwatch(r->loop, r->fd);
    if (r->fd >= 0)
        close(r->fd);
    for (size_t i = 0; i < r->n_names; i++)
        free(r->names[i]);
    free(r);
}

static struct mdns_addrs addrs_on(const struct mdns_responder *r, const struct served *s)
{
    if (r->n_v4 || r->n_v6)
        return (struct mdns_addrs){r->v4, r->n_v4, r->v6, r->n_v6};
    return (struct mdns_addrs){s->i.v4, s->i.n_v4, NULL, 0};
}

static void send_multicast(struct mdns_responder *r, struct served *s, unsigned records, uint32_t ttl)
{
    struct mdns_addrs a = addrs_on(r, s);
    uint8_t buf[MDNS_PACKET_MAX];
    size_t len;
    int64_t now = now_ms();
    int k;

    if (mdns_service_message(&r->svc, &a, records, ttl, false, 0, NULL, 0, buf, sizeof(buf), &len) < 0)
        return;
    if ((k = mdns_send_group(r->fd, s->i.index, buf, len)) < 0) {
        log_debug_errno(k, "%s: cannot send to %s: %m", s->i.name, MDNS_GROUP_V4);
        return;
    }
    for (int b = 0; b < N_RECORD_KINDS; b++)
        if (records & (1u << b))
            s->last_multicast[b] = now;
}

/* Out of the interface the query came in on, even with no route to the sender. */
static void send_unicast(struct mdns_responder *r, const struct served *s, const struct sockaddr_in *to,
                         const uint8_t *buf, size_t len)
{
    char peer[INET_ADDRSTRLEN];
    int k = mdns_send_to(r->fd, s->i.index, to, buf, len);

    if (k < 0)
        log_debug_errno(k, "cannot answer %s:%u: %m", inet_ntop(AF_INET, &to->sin_addr, peer, sizeof(peer)),
                        ntohs(to->sin_port));
}

static bool take_token(struct mdns_responder *r)
{
    int64_t now = now_ms();
    if (now - r->tokens_at >= 1000) {
        r->tokens = RATE_PER_S;
        r->tokens_at = now;
    }
    return r->tokens > 0 && r->tokens--;
}

static void handle(struct mdns_responder *r, const uint8_t *pkt, size_t len, const struct sockaddr_in *from,
                   unsigned ifindex, struct in_addr dst)
{
    struct served *s = NULL;
    struct sockaddr_in group = mdns_group();
    struct mdns_plan plan;
    struct mdns_addrs a;
    uint8_t buf[MDNS_PACKET_MAX];
    size_t blen;
    char peer[INET_ADDRSTRLEN];
    bool to_multicast = dst.s_addr == group.sin_addr.s_addr;
    int64_t now = now_ms();

    for (size_t i = 0; i < r->n_ifs && !s; i++)
        if (r->ifs[i].i.index == ifindex)
            s = &r->ifs[i];
    inet_ntop(AF_INET, &from->sin_addr, peer, sizeof(peer));
    if (!s || from->sin_port == 0)
        return;
    /* A query sent to our own address must come from the link (RFC 6762 §11). */
    if (!to_multicast && !mdns_iface_on_link(&s->i, (const uint8_t *)&from->sin_addr)) {
        log_debug("%s: a unicast query from %s, which is not on the link; ignored", s->i.name, peer);
        return;
    }
    a = addrs_on(r, s);
    if (mdns_service_plan(&r->svc, &a, pkt, len, ntohs(from->sin_port), to_multicast, &plan) < 0) {
        log_debug("%s: a malformed packet from %s:%u; ignored", s->i.name, peer, ntohs(from->sin_port));
        return;
    }
    if (!(plan.multicast | plan.unicast | plan.legacy) || !take_token(r))
        return;
    log_debug("%s: query from %s:%u: multicast %#x unicast %#x legacy %#x", s->i.name, peer, ntohs(from->sin_port),
              plan.multicast, plan.unicast, plan.legacy);
    for (int b = 0; b < N_RECORD_KINDS; b++) /* at most once a second per interface (§6) */
        if (s->last_multicast[b] && now - s->last_multicast[b] < 1000)
            plan.multicast &= ~(1u << b);
    if (plan.multicast)
        send_multicast(r, s, plan.multicast, r->svc.ttl);
    if (plan.unicast && mdns_service_message(&r->svc, &a, plan.unicast, r->svc.ttl, false, plan.id, NULL, 0, buf,
                                             sizeof(buf), &blen) == 0)
        send_unicast(r, s, from, buf, blen);
    if (plan.legacy && mdns_service_message(&r->svc, &a, plan.legacy, r->svc.ttl, true, plan.id, plan.echo, plan.n_echo,
                                            buf, sizeof(buf), &blen) == 0)
        send_unicast(r, s, from, buf, blen);
}

static void drain(struct mdns_responder *r)
{
    uint8_t buf[MDNS_RECV_MAX];
    struct sockaddr_in from;
    struct in_addr dst;
    unsigned ifindex;
    ssize_t n;

    for (int i = 0; i < 64 && (n = mdns_recv(r->fd, buf, sizeof(buf), &from, &ifindex, &dst)) >= 0; i++)
        if (n > 0)
            handle(r, buf, (size_t)n, &from, ifindex, dst);
}

static void describe(const struct mdns_responder *r, char *out, size_t cap)
{
    char inst[MDNS_NAME_TEXT_MAX], host[MDNS_NAME_TEXT_MAX], ip[INET6_ADDRSTRLEN];
    size_t o;

    mdns_name_to_text(&r->svc.instance, inst, sizeof(inst));
    mdns_name_to_text(&r->svc.host, host, sizeof(host));
    o = (size_t)snprintf(out, cap, "%s -> %s:%u on", inst, host, r->svc.port);
    for (size_t i = 0; i < r->n_ifs && o < cap; i++) {
        const struct mdns_addrs a = addrs_on(r, &r->ifs[i]);
        o += (size_t)snprintf(out + o, cap - o, "%s %s (", i ? "," : "", r->ifs[i].i.name);
        for (size_t k = 0; k < a.n_v4 && o < cap; k++)
            o += (size_t)snprintf(out + o, cap - o, "%s%s", k ? " " : "", inet_ntop(AF_INET, a.v4[k], ip, sizeof(ip)));
        for (size_t k = 0; k < a.n_v6 && o < cap; k++)
            o += (size_t)snprintf(out + o, cap - o, "%s%s", k || a.n_v4 ? " " : "",
                                  inet_ntop(AF_INET6, a.v6[k], ip, sizeof(ip)));
        if (o < cap)
            o += (size_t)snprintf(out + o, cap - o, ")");
    }
}

/* Announcements (a second apart) and the periodic re-read of the interfaces, on one timer. */
static void on_timer(struct net_timer *t, void *data)
{
    struct mdns_responder *r = data;
    int64_t now = now_ms();

    (void)t;
    r->timer = NULL;
    if (r->announced < ANNOUNCEMENTS && now >= r->next_announce) {
        for (size_t i = 0; i < r->n_ifs; i++)
            send_multicast(r, &r->ifs[i], MDNS_REC_ALL, r->svc.ttl);
        r->announced++;
        r->next_announce = now + 1000;
    }
    if (now - r->refreshed_at >= REFRESH_MS)
        (void)load_ifaces(r, false);
    arm(r);
}

static void arm(struct mdns_responder *r)
{
    int64_t at = r->refreshed_at + REFRESH_MS;

    if (r->announced < ANNOUNCEMENTS && r->next_announce < at)
        at = r->next_announce;
    net_timer_cancel(r->timer);
    r->timer = net_timer_add(r->loop, at, on_timer, r);
}

void mdns_responder_reload(struct mdns_responder *r)
{
    char what[1024];

    (void)load_ifaces(r, false);
    r->announced = 0;
    r->next_announce = now_ms();
    describe(r, what, sizeof(what));
    log_info("announcing again %s", what);
    arm(r);
}

void mdns_responder_goodbye(struct mdns_responder *r)
{
    for (size_t i = 0; i < r->n_ifs; i++)
        send_multicast(r, &r->ifs[i], MDNS_REC_ALL, 0);
    log_info("sent the goodbye on %zu interface(s)", r->n_ifs);
}
