/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The one-shot query. It is a legacy unicast query (RFC 6762 §6.7): sent to 224.0.0.251:5353 from
 * an ephemeral port with the QU bit clear, as upstream's hashicorp/mdns client sends it
 * (docs/upstream.md §7.1). Every responder must answer that by unicast to our port with our id:
 * avahi does so at once (its QM answers from port 5353 are delayed 20-120 ms and multicast, its QU
 * answers often multicast too), hashicorp/mdns and our responder answer every query by unicast
 * to the sender. So we need not own port 5353, which a local avahi may hold, nor root. Multicast
 * answers are taken too when port 5353 can be shared, as hashicorp's client listens there. */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base.h"
#include "mdns_internal.h"

#define RESEND_FIRST_MS 1000 /* then 2 s, 4 s, ... while nobody answers (RFC 6762 §5.2) */
#define MAX_PACKETS 4096     /* received per query, whatever the deadline */

struct query_sockets {
    int unicast, multicast;
    struct mdns_iface ifaces[MDNS_MAX_IFACES];
    size_t n_ifaces;
};

static void sockets_close(struct query_sockets *s)
{
    if (s->unicast >= 0)
        close(s->unicast);
    if (s->multicast >= 0)
        close(s->multicast);
}

/* Port 5353 shared with whoever else listens there, bound to the group address only, so we
 * never take unicast packets meant for a local responder. Best effort. */
static int open_multicast_listener(const struct query_sockets *s)
{
    struct sockaddr_in group = mdns_group();
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), joined = 0;

    if (fd < 0)
        return -1;
    if (mdns_set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 || mdns_set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0 ||
        mdns_set_int(fd, IPPROTO_IP, IP_PKTINFO, 1) < 0 ||
        bind(fd, (const struct sockaddr *)&group, sizeof(group)) < 0) {
        log_debug("mdns: not listening for multicast answers on port 5353: %m");
        close(fd);
        return -1;
    }
    for (size_t i = 0; i < s->n_ifaces; i++)
        joined += mdns_join(fd, s->ifaces[i].index) == 0;
    if (!joined) {
        close(fd);
        return -1;
    }
    return fd;
}

static int sockets_open(struct query_sockets *s)
{
    struct sockaddr_in any = {.sin_family = AF_INET};
    struct mdns_iface all[MDNS_MAX_IFACES];
    size_t n = 0;
    int r;

    s->unicast = s->multicast = -1;
    s->n_ifaces = 0;
    if ((r = mdns_ifaces(NULL, all, MDNS_MAX_IFACES, &n)) < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        if (all[i].n_v4)
            s->ifaces[s->n_ifaces++] = all[i];
    if (s->n_ifaces == 0)
        return log_error_errno(-ENETDOWN, "mdns: no network interface is up with multicast and an IPv4 address");
    s->unicast = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->unicast < 0 || bind(s->unicast, (struct sockaddr *)&any, sizeof(any)) < 0 ||
        mdns_set_int(s->unicast, IPPROTO_IP, IP_MULTICAST_TTL, 255) < 0 ||
        mdns_set_int(s->unicast, IPPROTO_IP, IP_MULTICAST_LOOP, 1) < 0 ||
        mdns_set_int(s->unicast, IPPROTO_IP, IP_PKTINFO, 1) < 0)
        return log_error_errno(-errno, "mdns: cannot open a UDP socket: %m");
    s->multicast = open_multicast_listener(s);
    return 0;
}

/* Sends pkt on every interface; 0 when it left on at least one. */
static int send_everywhere(const struct query_sockets *s, const uint8_t *pkt, size_t len)
{
    int sent = 0, err = 0;

    for (size_t i = 0; i < s->n_ifaces; i++) {
        int k = mdns_send_group(s->unicast, s->ifaces[i].index, pkt, len);
        if (k < 0) {
            err = -k;
            log_debug_errno(k, "mdns: cannot send the query on %s: %m", s->ifaces[i].name);
            continue;
        }
        sent++;
    }
    if (sent)
        return 0;
    return log_error_errno(-err, "mdns: cannot send the query on any interface: %m");
}

static int build_query(uint16_t id, const struct mdns_question *qs, size_t n, uint8_t *buf, size_t cap, size_t *len)
{
    struct mdns_writer w;

    mdns_writer_init(&w, buf, cap, id, 0);
    for (size_t i = 0; i < n; i++)
        if (mdns_write_question(&w, &qs[i]) < 0)
            return -EMSGSIZE;
    *len = mdns_writer_finish(&w);
    return 0;
}

/* Reads what is waiting on fd into the collector. Answers must come from port 5353 (RFC 6762
 * §6; legacy unicast replies too, §6.7) and from a directly connected subnet of the interface
 * they arrived on (or from this host), as a responder on the link sends them; those sent to our
 * port carry our id, or 0: hashicorp/mdns (simple-mdns-server) answers a question without the QU
 * bit with its "multicast" answer, id 0, sent to the querier. The collector then keeps only
 * packets that answer what we asked. */
static void drain(const struct query_sockets *s, int fd, bool unicast, uint16_t id, struct mdns_collect *c,
                  unsigned *count)
{
    uint8_t buf[MDNS_RECV_MAX];
    struct sockaddr_in from;
    struct in_addr dst;
    unsigned ifindex;
    char addr[INET_ADDRSTRLEN];
    ssize_t n;
    int r;

    while (*count < MAX_PACKETS && (n = mdns_recv(fd, buf, sizeof(buf), &from, &ifindex, &dst)) >= 0) {
        (*count)++;
        if (n < MDNS_HEADER_LEN)
            continue;
        inet_ntop(AF_INET, &from.sin_addr, addr, sizeof(addr));
        if (!mdns_source_ok(s->ifaces, s->n_ifaces, ifindex, (const uint8_t *)&from.sin_addr, ntohs(from.sin_port))) {
            log_debug("mdns: an answer from %s:%u, not a responder on the link it came in on; ignored", addr,
                      ntohs(from.sin_port));
            continue;
        }
        if (unicast && (uint16_t)(buf[0] << 8 | buf[1]) != id && (buf[0] | buf[1])) {
            log_debug("mdns: an answer from %s with id %u, not our query's %u; ignored", addr,
                      (unsigned)(buf[0] << 8 | buf[1]), id);
            continue;
        }
        r = mdns_collect_packet(c, buf, (size_t)n, addr, ifindex);
        if (r == -EBADMSG)
            log_debug("mdns: a malformed answer from %s, ignored", addr);
        else if (r == -ENOMSG)
            log_debug("mdns: a response from %s that answers none of our questions, ignored", addr);
    }
}

int mdns_query_run(const struct mdns_question *qs, size_t n_qs, int64_t timeout_ms, int64_t settle_ms,
                   struct mdns_collect *c)
{
    struct query_sockets s;
    uint8_t pkt[MDNS_PACKET_MAX];
    size_t len;
    uint16_t id;
    unsigned received = 0;
    int64_t start = now_ms(), deadline = start + timeout_ms, resend_in = RESEND_FIRST_MS, next_send, useful_at = 0;
    int r;

    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = (uint16_t)(start ^ getpid());
    if (id == 0) /* 0 is what unsolicited answers carry: ours must differ */
        id = 1;
    for (size_t i = 0; i < n_qs; i++)
        mdns_collect_ask(c, &qs[i]);
    if (build_query(id, qs, n_qs, pkt, sizeof(pkt), &len) < 0)
        return log_error_errno(-EMSGSIZE, "mdns: the query does not fit one packet");
    if ((r = sockets_open(&s)) < 0 || (r = send_everywhere(&s, pkt, len)) < 0)
        goto out;
    next_send = start + resend_in;
    for (;;) {
        int64_t now = now_ms(), until;
        if (now >= deadline || (useful_at && now >= useful_at + settle_ms) || received >= MAX_PACKETS)
            break;
        if (!useful_at && now >= next_send) {
            (void)send_everywhere(&s, pkt, len);
            resend_in *= 2;
            next_send = now + resend_in;
        }
        if (c->n_followups) {
            uint8_t more[MDNS_PACKET_MAX];
            size_t more_len;
            if (build_query(id, c->followups, c->n_followups, more, sizeof(more), &more_len) == 0)
                (void)send_everywhere(&s, more, more_len);
            c->n_followups = 0;
        }
        until = useful_at ? useful_at + settle_ms : next_send;
        if (until > deadline)
            until = deadline;
        if (until - now > RESEND_FIRST_MS)
            until = now + RESEND_FIRST_MS;
        struct pollfd p[2] = {{s.unicast, POLLIN, 0}, {s.multicast, POLLIN, 0}};
        r = fd_wait_many(p, s.multicast >= 0 ? 2 : 1, until > now ? until : now + 1);
        if (r < 0 && r != -ETIMEDOUT) {
            r = log_error_errno(r, "mdns: waiting for answers: %m");
            goto out;
        }
        drain(&s, s.unicast, true, id, c, &received);
        if (s.multicast >= 0)
            drain(&s, s.multicast, false, id, c, &received);
        if (!useful_at && mdns_collect_useful(c))
            useful_at = now_ms();
    }
    r = 0;
out:
    sockets_close(&s);
    return r;
}

int mdns_query(const char *name, uint16_t type, int64_t timeout_ms, struct mdns_answer **out, size_t *n)
{
    struct mdns_question q = {.type = type, .qclass = MDNS_CLASS_IN};
    struct mdns_collect *c;
    int r;

    *out = NULL;
    *n = 0;
    if (mdns_name_parse(name, &q.name) < 0)
        return log_error_errno(-EINVAL, "mdns: %s: not a valid DNS name", name);
    c = xmalloc(sizeof(*c));
    /* Records must be about the name asked (a service's instances, an instance, a host); for
     * an address query, an address for it is what ends the wait. */
    mdns_collect_init(c, name, type == MDNS_TYPE_A || type == MDNS_TYPE_AAAA ? name : NULL);
    r = mdns_query_run(&q, 1, timeout_ms, MDNS_SETTLE_MS, c);
    if (r == 0)
        r = mdns_collect_answers(c, out, n);
    mdns_collect_clear(c);
    free(c);
    return r;
}
