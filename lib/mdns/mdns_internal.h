/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Internal to lib/mdns (and its unit tests): name reading, interfaces, the answer collector. */
#ifndef KKMS_MDNS_INTERNAL_H
#define KKMS_MDNS_INTERNAL_H

#include <net/if.h>
#include <netinet/in.h>

#include "mdns.h"

#define MDNS_HEADER_LEN 12
/* Compression pointers followed in one name. Targets strictly decrease, so a loop is impossible
 * anyway; this caps the work a hostile packet can ask for. */
#define MDNS_MAX_JUMPS 32
/* Our own packets: a legacy answer must fit 512 bytes (RFC 6762 §6.7; avahi uses it too); the
 * others stay within one Ethernet frame. Received ones may be as large as a UDP datagram. */
#define MDNS_LEGACY_MAX 512
#define MDNS_PACKET_MAX 1472
#define MDNS_RECV_MAX 9000 /* RFC 6762 §17: the largest mDNS message */
/* After the first useful answer, how long other responders get to answer too: hashicorp/mdns's
 * whole query window, within which upstream nodes take answers (docs/upstream.md §7.1). */
#define MDNS_SETTLE_MS 1000

/* Reads the (possibly compressed) name at *off; *off moves past it in place. -EBADMSG when it
 * runs off the packet, a pointer does not point strictly back, a label type is reserved, or it
 * is longer than 255 bytes. */
int mdns_name_read(const uint8_t *pkt, size_t len, size_t *off, struct mdns_name *n);

/* ---- interfaces ---- */
#define MDNS_MAX_IFACES 32
#define MDNS_MAX_IFADDRS 8
struct mdns_iface {
    char name[IF_NAMESIZE];
    unsigned index;
    uint8_t v4[MDNS_MAX_IFADDRS][4];
    uint8_t mask[MDNS_MAX_IFADDRS][4];
    size_t n_v4;
};
/* Lists the interfaces that are up and do multicast (not loopback), with their IPv4 addresses;
 * only the one named when name is not NULL (-ENODEV if it does not exist, -EADDRNOTAVAIL if it is
 * down or has no multicast). At most MDNS_MAX_IFACES. */
int mdns_ifaces(const char *name, struct mdns_iface *out, size_t cap, size_t *n);
/* True when addr is in one of the interface's IPv4 subnets. */
bool mdns_iface_on_link(const struct mdns_iface *i, const uint8_t addr[4]);
/* Whether a response from addr:port that arrived on interface ifindex may be taken: from port
 * 5353 (RFC 6762 §6, §6.7), from a directly connected subnet of the arrival interface or from one
 * of our own addresses (a responder on this host). ifaces: those of the query. */
bool mdns_source_ok(const struct mdns_iface *ifaces, size_t n, unsigned ifindex, const uint8_t addr[4], uint16_t port);

/* ---- sockets (IPv4) ---- */
/* 224.0.0.251:5353 */
struct sockaddr_in mdns_group(void);
int mdns_set_int(int fd, int level, int opt, int value);
/* Joins the group on the interface (already joined is fine); 0 or -errno. */
int mdns_join(int fd, unsigned ifindex);
/* Sends pkt to the group out of that interface; 0 or -errno. */
int mdns_send_group(int fd, unsigned ifindex, const uint8_t *pkt, size_t len);
/* Sends pkt to `to` out of that interface, even with no route to it; 0 or -errno. */
int mdns_send_to(int fd, unsigned ifindex, const struct sockaddr_in *to, const uint8_t *pkt, size_t len);
/* Receives one datagram on a socket with IP_PKTINFO set: its length, 0 for one to skip
 * (truncated, or no arrival interface), -1 when none is waiting. */
ssize_t mdns_recv(int fd, uint8_t *buf, size_t cap, struct sockaddr_in *from, unsigned *ifindex, struct in_addr *dst);

/* ---- collecting answers (query.c feeds it packets; tests feed it directly) ---- */
#define MDNS_COLLECT_ENTRIES 32
#define MDNS_COLLECT_ADDRS 64
#define MDNS_COLLECT_TXT 16
#define MDNS_COLLECT_FOLLOWUPS 8
#define MDNS_FROM_MAX 64 /* a responder's address as text */

#define MDNS_COLLECT_QUESTIONS 16
/* A record sent with the cache-flush bit replaces the records of the same name and type that the
 * same responder sent more than this long before (RFC 6762 §10.2); within it, they form one set. */
#define MDNS_FLUSH_GRACE_MS 1000
struct mdns_collect_entry {
    uint32_t src; /* the responder: an index into sources */
    struct mdns_name instance;
    bool has_srv;
    unsigned srv_packet;    /* the packet the SRV came in */
    int64_t srv_expires_ms; /* when its TTL runs out */
    struct mdns_name target;
    uint16_t port;
    char *txt[MDNS_COLLECT_TXT];
    size_t n_txt;
};
struct mdns_collect_addr {
    uint32_t src;
    unsigned packet;
    int64_t received_ms, expires_ms;
    struct mdns_name owner;
    struct mdns_addr addr;
};
struct mdns_collect {
    struct mdns_name service;   /* SRV/TXT kept for names under it (the service or instance asked
                                 * for); PTRs of it name its instances. Root: anything */
    struct mdns_name want_host; /* its address ends the wait; root: any answer does */
    char sources[MDNS_COLLECT_ENTRIES][MDNS_FROM_MAX];
    size_t n_sources;
    struct mdns_collect_entry entries[MDNS_COLLECT_ENTRIES];
    size_t n_entries;
    struct mdns_collect_addr addrs[MDNS_COLLECT_ADDRS];
    size_t n_addrs;
    unsigned packets;
    /* Questions to ask next (an instance heard only through its PTR, a host without address),
     * each name asked once. */
    struct mdns_question followups[MDNS_COLLECT_FOLLOWUPS];
    size_t n_followups;
    struct mdns_name asked[MDNS_COLLECT_FOLLOWUPS];
    size_t n_asked;
    /* Every question sent (mdns_collect_ask, and the follow-ups): once there is one, a packet
     * counts only when its Answer section holds a record answering one of them. */
    struct mdns_question questions[MDNS_COLLECT_QUESTIONS];
    size_t n_questions;
    /* Tests: the time in ms to use instead of now_ms(); 0 = the real clock. */
    int64_t clock_ms;
};
/* service/want_host: text names or NULL. */
void mdns_collect_init(struct mdns_collect *c, const char *service, const char *want_host);
void mdns_collect_clear(struct mdns_collect *c);
/* Records that q was asked (names compared without case; type ANY answered by any type). */
void mdns_collect_ask(struct mdns_collect *c, const struct mdns_question *q);
/* Takes one response packet heard from `from` on interface ifindex. -EBADMSG when it is
 * malformed, -ENOMSG when questions were recorded and its Answer section answers none of them
 * (then nothing of it is kept); 0 otherwise. Records are kept until their TTL runs out; TTL 0 (a
 * goodbye) removes what the same responder said; a cache-flush record replaces the same
 * responder's older records of its name and type. */
int mdns_collect_packet(struct mdns_collect *c, const uint8_t *pkt, size_t len, const char *from, unsigned ifindex);
/* True once the collected answers hold what the caller is after (an address for want_host, or
 * any answer). */
bool mdns_collect_useful(const struct mdns_collect *c);
/* Pairs SRVs with addresses (same packet first, then same responder, then anyone) into answers. */
int mdns_collect_answers(const struct mdns_collect *c, struct mdns_answer **out, size_t *n);

/* Sends qs and feeds every response to c until the deadline, or settle_ms after c became useful. */
int mdns_query_run(const struct mdns_question *qs, size_t n_qs, int64_t timeout_ms, int64_t settle_ms,
                   struct mdns_collect *c);

/* Turns collected answers into endpoints for a URL (resolve.c; exposed for the unit tests). */
int mdns_endpoints_from_answers(const struct mdns_answer *a, size_t n, const char *scheme, const char *host,
                                const char *authority, uint16_t url_port, const char *path, struct mdns_endpoint **out,
                                size_t *n_out);

#endif
