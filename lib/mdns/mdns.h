/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/mdns: Multicast DNS (RFC 6762) and DNS-SD (RFC 6763), enough to find the KMS on the LAN
 * (docs/upstream.md §7): a bounded DNS message codec, a one-shot query, the node's resolver for a
 * challenger_server on .local, and the responder that announces the KMS as _kcrypt._tcp.
 * IPv4 transport only (224.0.0.251:5353), as upstream's nodes use; AAAA records are read and
 * written. Functions return 0 or a negative errno and log one line naming the peer and why. */
#ifndef KKMS_MDNS_H
#define KKMS_MDNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define MDNS_PORT 5353
#define MDNS_GROUP_V4 "224.0.0.251"
#define MDNS_SERVICE "_kcrypt._tcp" /* what upstream nodes browse for (docs/upstream.md §7.1) */
#define MDNS_TTL 120                /* hashicorp/mdns's TTL for every record (docs/upstream.md §7.2) */
#define MDNS_LEGACY_TTL 10          /* most a legacy unicast answer may carry (RFC 6762 §6.7) */

/* ---- names ---- */
#define MDNS_MAX_NAME 255 /* wire length of a name, the root label's zero included (RFC 1035 §2.3.4) */
#define MDNS_MAX_LABEL 63
#define MDNS_NAME_TEXT_MAX 1024 /* room for any name as text, every byte escaped as \DDD */

/* A name in uncompressed wire form: length-prefixed labels ending with the root's zero byte. */
struct mdns_name {
    uint8_t len; /* bytes used in wire, 1 (the root) to MDNS_MAX_NAME */
    uint8_t wire[MDNS_MAX_NAME];
};

/* Parses "kms.local" / "kms.local." (escapes \. \\ \DDD allowed) into n. -EINVAL when a label is
 * empty or over 63 bytes or the name over 255. "" and "." are the root. */
int mdns_name_parse(const char *text, struct mdns_name *n);
/* Puts one label (any bytes, e.g. an instance name with spaces or dots) in front of n. */
int mdns_name_prepend(struct mdns_name *n, const void *label, size_t len);
/* Writes n as text without the trailing dot ("." for the root), escaping '.', '\' and bytes
 * outside printable ASCII; truncated to cap (MDNS_NAME_TEXT_MAX always fits). */
void mdns_name_to_text(const struct mdns_name *n, char *out, size_t cap);
/* Names compare without regard to ASCII case (RFC 1035 §2.3.3). */
bool mdns_name_equal(const struct mdns_name *a, const struct mdns_name *b);
/* True when suffix is n itself or n's trailing labels ("a.b.local" ends with "local"). */
bool mdns_name_ends_with(const struct mdns_name *n, const struct mdns_name *suffix);
/* True when a host name (text, trailing dot allowed) is in .local, the only domain mDNS resolves. */
bool mdns_host_is_local(const char *host);

/* ---- messages (RFC 1035 §4) ---- */
enum mdns_type {
    MDNS_TYPE_A = 1,
    MDNS_TYPE_PTR = 12,
    MDNS_TYPE_TXT = 16,
    MDNS_TYPE_AAAA = 28,
    MDNS_TYPE_SRV = 33,
    MDNS_TYPE_ANY = 255,
};
#define MDNS_CLASS_IN 1
#define MDNS_CLASS_ANY 255
/* The top bit of a class: in a question "answer me by unicast" (QU, RFC 6762 §5.4), in a record
 * "cache flush": the record is unique (§10.2). */
#define MDNS_CLASS_TOP 0x8000

#define MDNS_FLAG_QR 0x8000 /* a response */
#define MDNS_FLAG_AA 0x0400
#define MDNS_FLAG_TC 0x0200
#define MDNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define MDNS_RCODE(flags) ((flags)&0xf)

struct mdns_header {
    uint16_t id, flags, qdcount, ancount, nscount, arcount;
};

struct mdns_question {
    struct mdns_name name;
    uint16_t type;
    uint16_t qclass; /* with the QU bit */
};

enum mdns_section { MDNS_QUESTION = 0, MDNS_ANSWER = 1, MDNS_AUTHORITY = 2, MDNS_ADDITIONAL = 3 };

struct mdns_rr {
    struct mdns_name name;
    uint16_t type;
    uint16_t rclass; /* with the cache-flush bit */
    uint32_t ttl;
    enum mdns_section section; /* set by the reader */
    union {
        uint8_t a[4];
        uint8_t aaaa[16];
        struct mdns_name ptr;
        struct {
            uint16_t priority, weight, port;
            struct mdns_name target;
        } srv;
    } u;
    /* Raw RDATA: what TXT (and any other type) carries. Points into the packet read, or into the
     * caller's memory for the writer; not owned. */
    const uint8_t *rdata;
    uint16_t rdlen;
};

/* Reads a message in order: header, then questions, then records. Every length, count and
 * compression pointer is checked against the packet; nothing is allocated. */
struct mdns_reader {
    const uint8_t *pkt;
    size_t len, off;
    struct mdns_header h;
    unsigned questions_left, records_left, record_index;
};
/* Reads the header; -EBADMSG when the packet is shorter than one. */
int mdns_reader_init(struct mdns_reader *r, const void *pkt, size_t len);
/* 1 with the next question, 0 when there are no more, -EBADMSG on a malformed one. */
int mdns_read_question(struct mdns_reader *r, struct mdns_question *q);
/* 1 with the next record of any section (skipping unread questions), 0 at the end, -EBADMSG. */
int mdns_read_rr(struct mdns_reader *r, struct mdns_rr *rr);

/* Builds a message in order: questions, then answers, authority, additional. Names are
 * compressed against those already written (SRV targets are written whole, RFC 2782). */
#define MDNS_WRITER_NAMES 64
struct mdns_writer {
    uint8_t *buf;
    size_t cap, len;
    struct mdns_header h;
    enum mdns_section section;
    uint16_t names[MDNS_WRITER_NAMES]; /* offsets of written labels, compression targets */
    size_t n_names;
};
void mdns_writer_init(struct mdns_writer *w, void *buf, size_t cap, uint16_t id, uint16_t flags);
/* -EMSGSIZE when it does not fit (the message is left as it was), -EINVAL out of order. */
int mdns_write_question(struct mdns_writer *w, const struct mdns_question *q);
/* Writes A, AAAA, PTR and SRV from rr->u, anything else from rr->rdata. */
int mdns_write_rr(struct mdns_writer *w, const struct mdns_rr *rr, enum mdns_section section);
/* Puts the counts in the header; returns the message's length. */
size_t mdns_writer_finish(struct mdns_writer *w);

/* TXT RDATA from strings (each ≤ 255 bytes); none gives the single empty string RFC 6763 §6.1
 * asks for. -EMSGSIZE when cap is too small, -EINVAL for a string over 255 bytes. */
int mdns_txt_encode(const char *const *strings, size_t n, uint8_t *out, size_t cap, size_t *len);
/* Iterates TXT RDATA: 1 with the next string at *s (*slen bytes, not NUL-terminated), 0 at the
 * end, -EBADMSG when a length runs past the RDATA. Start with *off = 0. */
int mdns_txt_next(const uint8_t *rdata, size_t rdlen, size_t *off, const uint8_t **s, size_t *slen);

/* ---- one-shot query (node side) ---- */
struct mdns_addr {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t bytes[16]; /* 4 or 16 used */
    unsigned ifindex;  /* the interface it was heard on: the zone of a link-local IPv6 */
};

/* What one responder said about one service instance, or about a host's addresses. */
struct mdns_answer {
    char from[64];  /* the responder's address */
    char *instance; /* the instance's full name ("My KMS._kcrypt._tcp.local"); "" for addresses only */
    char *host;     /* the SRV target, or the owner of the address records */
    uint16_t port;  /* the SRV port; 0 when no SRV was heard */
    struct mdns_addr *addrs;
    size_t n_addrs;
    char **txt; /* TXT strings (a NUL inside one cuts it there) */
    size_t n_txt;
};
void mdns_answers_free(struct mdns_answer *a, size_t n);

/* Asks once for name/type on every interface that is up and does multicast: a legacy unicast
 * query (RFC 6762 §6.7) from an ephemeral port, repeated at 1, 3, 7 s while nobody answers.
 * Gathers answers and additional records (also multicast ones, when port 5353 can be shared)
 * until 1 s after the first answer or timeout_ms, whichever comes first, and returns every
 * responder's answer; *out (owned by the caller, mdns_answers_free) may be empty. Only responses
 * from port 5353 and from a directly connected subnet of the interface they arrived on (or from
 * this host), answering the question asked (unicast ones with our id or 0), count; records are
 * used within their TTL, goodbyes and cache flushes apply to the same responder's records. */
int mdns_query(const char *name, uint16_t type, int64_t timeout_ms, struct mdns_answer **out, size_t *n);

/* ---- the node's resolver for challenger_server (docs/upstream.md §7.1) ---- */
struct mdns_endpoint {
    char address[80];  /* numeric; a link-local IPv6 carries its zone ("fe80::1%eth0") */
    uint16_t port;     /* the SRV port, or the URL's port for a plain address answer */
    char *url;         /* the URL to dial: challenger_server with its host:port replaced */
    char *host_header; /* the URL's original host[:port]: send it as Host (it also names the TLS server) */
    char *instance;    /* the announcing service instance, "" for a plain address answer */
    char **txt;
    size_t n_txt;
};

/* Resolves the host of challenger_server_url, which must end in .local (with or without a port;
 * a trailing dot is fine), over mDNS within timeout_ms, never through ordinary DNS.
 *
 * One query asks what upstream nodes ask, the PTR of _kcrypt._tcp.local, and also the A record
 * of the host itself. A service instance whose SRV target is the host (case-insensitive; upstream
 * compares exactly) gives its addresses with the SRV's port; a plain A/AAAA answer for the host
 * gives its addresses with the URL's port. Instances announcing another host are ignored, as
 * upstream does. The result lists every server that answered, IPv4 first, without duplicates.
 *
 * How the KMS client uses it (discovery_client.c): when mDNS is enabled, call this once with the
 * configured URL; then, for each endpoint in order until one succeeds, run the exchange against
 * endpoint.url (e.g. "http://10.0.0.2:30000") with net_client_opts.host_header =
 * endpoint.host_header (e.g. "kms.local:30000"), so the KMS sees its own name in Host: and TLS
 * verifies that name, as upstream sends "Host: <original host[:port]>" (docs/upstream.md §5.3). A refusal by the
 * KMS or a certificate error is final; a transport error moves on to the next endpoint.
 *
 * -EINVAL: not a URL with a .local host; -ENOENT: nobody answered ("mdns: no answer for kms.local
 * within 5 s"); other errors: no socket, no interface with multicast. *out is the caller's
 * (mdns_endpoints_free). */
int mdns_resolve_server(const char *challenger_server_url, int64_t timeout_ms, struct mdns_endpoint **out, size_t *n);
void mdns_endpoints_free(struct mdns_endpoint *e, size_t n);

/* ---- responder (the KMS side; docs/upstream.md §7.2) ---- */
/* The records one service answers with. */
struct mdns_service {
    struct mdns_name instance;   /* <instance>.<service>.local */
    struct mdns_name service;    /* _kcrypt._tcp.local */
    struct mdns_name enumerator; /* _services._dns-sd._udp.local (RFC 6763 §9) */
    struct mdns_name host;       /* the SRV target and the owner of A/AAAA */
    uint16_t port;
    uint32_t ttl;
    uint8_t txt[1024]; /* TXT RDATA */
    size_t txt_len;
};
/* instance: one label (any text); service "_kcrypt._tcp"; host "kms.local" (dot optional);
 * txt: strings, none = hashicorp's "An instance of <service>"; ttl 0 = MDNS_TTL. -EINVAL with a
 * logged reason when a name is not valid. */
int mdns_service_init(struct mdns_service *s, const char *instance, const char *service, const char *host,
                      uint16_t port, const char *const *txt, size_t n_txt, uint32_t ttl);

/* Which records a response holds. */
enum {
    MDNS_REC_PTR = 1,  /* service → instance (shared) */
    MDNS_REC_ENUM = 2, /* _services._dns-sd._udp → service (shared) */
    MDNS_REC_SRV = 4,  /* instance → host:port */
    MDNS_REC_TXT = 8,
    MDNS_REC_A = 16,    /* host → each IPv4 address */
    MDNS_REC_AAAA = 32, /* host → each IPv6 address */
    MDNS_REC_ALL = 63,
};

/* The addresses to give on one interface. */
struct mdns_addrs {
    const uint8_t (*v4)[4];
    size_t n_v4;
    const uint8_t (*v6)[16];
    size_t n_v6;
};

#define MDNS_MAX_ECHO 8 /* questions repeated in a legacy answer */
/* How to answer one query: records for a multicast response (QM questions from port 5353), for
 * a unicast one to the sender (QU questions, or a query sent to our own address), and for a legacy
 * unicast one (sent from another port: the query's id, its questions, TTL ≤ 10). */
struct mdns_plan {
    unsigned multicast, unicast, legacy; /* MDNS_REC_* */
    uint16_t id;
    struct mdns_question echo[MDNS_MAX_ECHO];
    size_t n_echo;
};
/* Reads a query and decides the answers (known answers with at least half our TTL suppress
 * theirs, RFC 6762 §7.1). -EBADMSG for a malformed packet; 0 with an empty plan for a packet that
 * is not a standard query or asks nothing of ours. At most MDNS_MAX_IFADDRS addresses per family. */
int mdns_service_plan(const struct mdns_service *s, const struct mdns_addrs *a, const uint8_t *pkt, size_t len,
                      uint16_t src_port, bool to_multicast, struct mdns_plan *plan);
/* Writes a response holding records (all in the Answer section, as hashicorp/mdns does), with
 * ttl (0 = a goodbye). legacy: the given id, questions echoed, TTL ≤ 10, no cache-flush bits,
 * at most 512 bytes; otherwise id and questions as given (0 and none for multicast). Records that
 * do not fit are left out (TC set when legacy). -ENODATA when no record was written. */
int mdns_service_message(const struct mdns_service *s, const struct mdns_addrs *a, unsigned records, uint32_t ttl,
                         bool legacy, uint16_t id, const struct mdns_question *echo, size_t n_echo, uint8_t *buf,
                         size_t cap, size_t *len);

/* The responder daemon. */
struct mdns_responder_config {
    const char *instance;   /* one label; NULL = this machine's host name (as upstream) */
    const char *service;    /* NULL = MDNS_SERVICE */
    const char *host;       /* required: the name nodes put in challenger_server */
    uint16_t port;          /* required */
    const char *const *txt; /* none = hashicorp's default */
    size_t n_txt;
    const char *const *interfaces; /* names; none = every interface that is up and does multicast */
    size_t n_interfaces;
    const char *const *addresses; /* numeric IPv4/IPv6 to announce; none = each interface's IPv4 */
    size_t n_addresses;
    uint32_t ttl; /* 0 = MDNS_TTL */
};
struct mdns_responder;
/* Checks the configuration, finds the interfaces, binds UDP 5353 (shared with other responders)
 * and starts serving on loop: announces (twice, a second apart), answers queries, re-reads the
 * interfaces every 5 s. Logs why it cannot, naming simple-mdns-server's flags ("--interfaceName
 * eth9: no such interface"). Touches no signal. *out owned by the caller (mdns_responder_free,
 * before the loop is freed). Standard input is never read. */
int mdns_responder_new(struct net_loop *loop, const struct mdns_responder_config *c, struct mdns_responder **out);
/* Re-reads the interfaces and announces anew (what SIGHUP does). */
void mdns_responder_reload(struct mdns_responder *r);
/* Sends the goodbye (TTL 0) on every interface served; call it before freeing when stopping. */
void mdns_responder_goodbye(struct mdns_responder *r);
void mdns_responder_free(struct mdns_responder *r);

#endif
