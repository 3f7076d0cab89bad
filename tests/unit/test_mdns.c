/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/mdns without the network: names, the codec (compression written and read, every bound),
 * the responder's answers, and how the node turns answers into KMS endpoints. */
#include <arpa/inet.h>
#include <string.h>

#include "base.h"
#include "mdns_internal.h"
#include "tap.h"

static struct mdns_name N(const char *text) {
    struct mdns_name n;
    if (mdns_name_parse(text, &n) < 0)
        abort();
    return n;
}

static const char *
T(const struct mdns_name *n)
{
    static char text[4][MDNS_NAME_TEXT_MAX];
    static int k;
    k = (k + 1) % 4;
    mdns_name_to_text(n, text[k], sizeof(text[k]));
    return text[k];
}

static void test_names(void)
{
    struct mdns_name n, m;
    char label63[64], long_name[300];

    CHECK(mdns_name_parse("kms.local", &n) == 0 && n.len == 11 && !memcmp(n.wire, "\3kms\5local\0", 11),
          "kms.local in wire form");
    CHECK(mdns_name_parse("kms.local.", &m) == 0 && mdns_name_equal(&n, &m), "a trailing dot is the same name");
    CHECK(mdns_name_parse("KMS.Local", &m) == 0 && mdns_name_equal(&n, &m), "names compare without case");
    CHECK(mdns_name_parse(".", &m) == 0 && m.len == 1 && !strcmp(T(&m), "."), "the root");
    CHECK(mdns_name_parse("a..b", &m) < 0 && mdns_name_parse(".a", &m) < 0 && mdns_name_parse("a.b..", &m) < 0,
          "empty labels refused");
    memset(label63, 'x', 63);
    label63[63] = 0;
    CHECK(mdns_name_parse(label63, &m) == 0 && m.len == 65, "a 63-byte label is fine");
    snprintf(long_name, sizeof(long_name), "%sy", label63);
    CHECK(mdns_name_parse(long_name, &m) == -EINVAL, "a 64-byte label is refused");
    snprintf(long_name, sizeof(long_name), "%s.%s.%s.%.61s", label63, label63, label63, label63);
    CHECK(mdns_name_parse(long_name, &m) == 0 && m.len == 255, "a 255-byte name is fine");
    snprintf(long_name, sizeof(long_name), "%s.%s.%s.%.62s", label63, label63, label63, label63);
    CHECK(mdns_name_parse(long_name, &m) == -EINVAL, "a 256-byte name is refused");
    CHECK(mdns_name_parse("My\\ KMS\\.v2\\\\x\\001.local", &m) == 0 && m.wire[0] == 12 &&
              !memcmp(m.wire + 1, "My KMS.v2\\x\1", 12) && !strcmp(T(&m), "My KMS\\.v2\\\\x\\001.local"),
          "escapes in and out of text");
    m = N("_kcrypt._tcp.local");
    CHECK(mdns_name_prepend(&m, "kms 1.2", 7) == 0 && !strcmp(T(&m), "kms 1\\.2._kcrypt._tcp.local"),
          "an instance label with a dot stays one label");
    n = N("a._kcrypt._tcp.local");
    m = N("_kcrypt._tcp.local");
    CHECK(mdns_name_ends_with(&n, &m) && mdns_name_ends_with(&m, &m), "suffix by labels");
    m = N("crypt._tcp.local");
    CHECK(!mdns_name_ends_with(&n, &m), "a suffix must start at a label");
    CHECK(mdns_host_is_local("kms.local") && mdns_host_is_local("KMS.LOCAL.") && !mdns_host_is_local("local") &&
              !mdns_host_is_local("kms.example.com") && !mdns_host_is_local("10.0.0.1") &&
              !mdns_host_is_local("kmslocal"),
          "which hosts are .local");
}

/* A response such as hashicorp/mdns sends for _kcrypt._tcp.local PTR (docs/upstream.md §7.2). */
static size_t hashicorp_response(uint8_t *buf, size_t cap, const char *instance, const char *host, uint16_t port,
                                 const char *ip, uint16_t id)
{
    struct mdns_writer w;
    uint8_t txt[64];
    size_t txt_len;
    const char *strings[] = {"An instance of _kcrypt._tcp"};
    struct mdns_name inst = N("_kcrypt._tcp.local");
    struct mdns_rr rr;

    mdns_name_prepend(&inst, instance, strlen(instance));
    mdns_txt_encode(strings, 1, txt, sizeof(txt), &txt_len);
    mdns_writer_init(&w, buf, cap, id, MDNS_FLAG_QR | MDNS_FLAG_AA);
    rr = (struct mdns_rr){
        .name = N("_kcrypt._tcp.local"), .type = MDNS_TYPE_PTR, .rclass = 1, .ttl = 120, .u.ptr = inst};
    mdns_write_rr(&w, &rr, MDNS_ANSWER);
    rr =
        (struct mdns_rr){.name = inst, .type = MDNS_TYPE_SRV, .rclass = 1, .ttl = 120, .u.srv = {10, 1, port, N(host)}};
    mdns_write_rr(&w, &rr, MDNS_ANSWER);
    rr = (struct mdns_rr){.name = N(host), .type = MDNS_TYPE_A, .rclass = 1, .ttl = 120};
    inet_pton(AF_INET, ip, rr.u.a);
    mdns_write_rr(&w, &rr, MDNS_ANSWER);
    rr = (struct mdns_rr){
        .name = inst, .type = MDNS_TYPE_TXT, .rclass = 1, .ttl = 120, .rdata = txt, .rdlen = (uint16_t)txt_len};
    mdns_write_rr(&w, &rr, MDNS_ANSWER);
    return mdns_writer_finish(&w);
}

static void test_codec_round_trip(void)
{
    uint8_t buf[512];
    size_t len = hashicorp_response(buf, sizeof(buf), "node1", "kms.local", 30000, "10.1.2.3", 0);
    struct mdns_reader r;
    struct mdns_rr rr[4];
    const uint8_t *s;
    size_t off = 0, slen;
    int n = 0, k;

    /* Uncompressed it would be 12 + 36 + 58 + 25 + 56 bytes. */
    CHECK(len > 12 && len < 150, "names are compressed (%zu bytes)", len);
    CHECK(memmem(buf, len, "\xc0\x0c", 2) != NULL, "a pointer to the first name is written");
    CHECK(mdns_reader_init(&r, buf, len) == 0 && r.h.flags == (MDNS_FLAG_QR | MDNS_FLAG_AA) && r.h.ancount == 4,
          "the header reads back");
    while (n < 4 && (k = mdns_read_rr(&r, &rr[n])) > 0)
        n++;
    CHECK(n == 4 && mdns_read_rr(&r, &rr[0]) == 0 && r.off == len, "four records, then the end, exactly");
    CHECK(rr[0].type == MDNS_TYPE_PTR && !strcmp(T(&rr[0].name), "_kcrypt._tcp.local") &&
              !strcmp(T(&rr[0].u.ptr), "node1._kcrypt._tcp.local"),
          "PTR read through pointers");
    CHECK(rr[1].type == MDNS_TYPE_SRV && rr[1].u.srv.priority == 10 && rr[1].u.srv.weight == 1 &&
              rr[1].u.srv.port == 30000 && !strcmp(T(&rr[1].u.srv.target), "kms.local") && rr[1].ttl == 120,
          "SRV read back");
    CHECK(rr[2].type == MDNS_TYPE_A && !memcmp(rr[2].u.a, "\x0a\x01\x02\x03", 4), "A read back");
    CHECK(rr[3].type == MDNS_TYPE_TXT && mdns_txt_next(rr[3].rdata, rr[3].rdlen, &off, &s, &slen) == 1 && slen == 27 &&
              !memcmp(s, "An instance of _kcrypt._tcp", 27) &&
              mdns_txt_next(rr[3].rdata, rr[3].rdlen, &off, &s, &slen) == 0,
          "TXT read back");
    /* The SRV target is written whole (RFC 2782), so a parser without mDNS's relaxed rules reads it. */
    CHECK(memmem(buf, len, "\x03kms\x05local\x00", 11) != NULL, "the SRV target is not compressed");
}

static void test_writer_bounds(void)
{
    uint8_t buf[96];
    struct mdns_writer w;
    struct mdns_question q = {.name = N("a-rather-long-label-for-this-test.local"), .type = 1, .qclass = 1};
    struct mdns_rr rr = {.name = N("x.local"), .type = MDNS_TYPE_A, .rclass = 1};
    size_t before;

    mdns_writer_init(&w, buf, sizeof(buf), 7, 0);
    CHECK(mdns_write_question(&w, &q) == 0, "a question fits");
    before = w.len;
    CHECK(mdns_write_question(&w, &(struct mdns_question){.name = N("another-label-that-will-not-fit.example"),
                                                          .type = 1}) == -EMSGSIZE &&
              w.len == before && w.h.qdcount == 1,
          "one that does not fit leaves the message as it was");
    CHECK(mdns_write_rr(&w, &rr, MDNS_ANSWER) == 0, "then an answer");
    CHECK(mdns_write_question(&w, &q) == -EINVAL, "a question after an answer is refused");
    CHECK(mdns_write_rr(&w, &rr, MDNS_QUESTION) == -EINVAL, "a record in the question section is refused");
    CHECK(mdns_writer_finish(&w) == w.len && buf[0] == 0 && buf[1] == 7 && buf[5] == 1 && buf[7] == 1,
          "finish writes id and counts");
    uint8_t txt[8];
    size_t tl;
    const char *one[] = {"abcdefgh"};
    CHECK(mdns_txt_encode(NULL, 0, txt, sizeof(txt), &tl) == 0 && tl == 1 && txt[0] == 0, "no TXT string = one empty");
    CHECK(mdns_txt_encode(one, 1, txt, sizeof(txt), &tl) == -EMSGSIZE, "TXT bounded by its buffer");
}

/* Builds a packet by hand: header + raw bytes. */
static size_t raw(uint8_t *buf, uint16_t qd, uint16_t an, const void *body, size_t n)
{
    memset(buf, 0, 12);
    buf[2] = 0x84;
    buf[4] = (uint8_t)(qd >> 8), buf[5] = (uint8_t)qd;
    buf[6] = (uint8_t)(an >> 8), buf[7] = (uint8_t)an;
    memcpy(buf + 12, body, n);
    return 12 + n;
}

static int read_all(const uint8_t *pkt, size_t len)
{
    struct mdns_reader r;
    struct mdns_rr rr;
    int k;
    if (mdns_reader_init(&r, pkt, len) < 0)
        return -EBADMSG;
    while ((k = mdns_read_rr(&r, &rr)) > 0)
        ;
    return k;
}

static void test_reader_refuses(void)
{
    uint8_t p[600];
    size_t n;

    CHECK(read_all((const uint8_t *)"\0\0\0", 3) == -EBADMSG, "shorter than a header");
    /* Malformed packets: the counts of questions and answers the header announces, the bytes
     * after it, and what is wrong with them. */
    static const struct {
        uint16_t qd, an;
        const char *body;
        size_t len;
        const char *what;
    } bad[] = {
        {1, 0, "\xc0\x0c\x00\x01\x00\x01", 6, "a pointer to itself"},
        {1, 0,
         "\x01"
         "a"
         "\xc0\x0c\x00\x01\x00\x01",
         8, "a pointer back to the labels that led to it (a loop)"},
        {1, 0,
         "\xc0\x12\x00\x01\x00\x01"
         "\x01"
         "a\x00",
         9, "a pointer forwards"},
        {1, 0, "\xc0\x02\x00\x01\x00\x01", 6, "a pointer into the header"},
        {1, 0,
         "\x41"
         "a\x00\x00\x01\x00\x01",
         7, "an extended label type (0x40)"},
        {1, 0,
         "\x05"
         "ab",
         3, "a label running off the packet"},
        {1, 0,
         "\x01"
         "a\x00\x00\x01",
         5, "a question cut short"},
        {5, 0,
         "\x01"
         "a\x00\x00\x01\x00\x01",
         7, "more questions announced than present"},
        {0, 1, "\x00\x00\x01\x00\x01\x00\x00\x00\x78\x00\x05\x01\x02\x03\x04\x05", 16, "an A record of 5 bytes"},
        {0, 1, "\x00\x00\x01\x00\x01\x00\x00\x00\x78\x00\x09\x01\x02\x03\x04", 15, "RDATA longer than the packet"},
        {0, 1,
         "\x00\x00\x10\x00\x01\x00\x00\x00\x78\x00\x03\x05"
         "ab",
         14, "a TXT string longer than its RDATA"},
        {0, 1,
         "\x00\x00\x0c\x00\x01\x00\x00\x00\x78\x00\x04\x01"
         "a\x00\x00",
         15, "a PTR name that does not end where its RDATA does"},
        {0, 1, "\x00\x00\x21\x00\x01\x00\x00\x00\x78\x00\x06\x00\x00\x00\x00\x00\x50", 17, "an SRV with no target"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = raw(p, bad[i].qd, bad[i].an, bad[i].body, bad[i].len);
        CHECK(read_all(p, n) == -EBADMSG, "%s", bad[i].what);
    }
    /* A chain of names, each a 63-byte label and a pointer to the one before: the third reaches
     * 193 bytes, the fourth would be 257. */
    {
        size_t at[5], o = 12;
        struct mdns_name name;
        memset(p, 0, 12);
        for (int i = 0; i < 5; i++) {
            at[i] = o;
            p[o++] = 63;
            memset(p + o, 'a' + i, 63);
            o += 63;
            if (i == 0) {
                p[o++] = 0;
            } else {
                p[o++] = (uint8_t)(0xc0 | at[i - 1] >> 8);
                p[o++] = (uint8_t)at[i - 1];
            }
        }
        size_t k = at[2];
        CHECK(mdns_name_read(p, o, &k, &name) == 0 && name.len == 193 && k == at[3], "pointers within 255 bytes");
        k = at[3];
        CHECK(mdns_name_read(p, o, &k, &name) == -EBADMSG, "a name over 255 bytes through pointers");
    }
    n = raw(p, 1, 0,
            "\x01"
            "a\x00\x00\x01\x00\x01",
            7);
    CHECK(read_all(p, n) == 0, "...and a well-formed one passes");
}

static const uint8_t ip_a[4] = {10, 0, 0, 2}, ip_b[4] = {10, 0, 0, 3};

static struct mdns_service svc(void)
{
    struct mdns_service s;
    if (mdns_service_init(&s, "node1", "_kcrypt._tcp", "kms.local", 30000, NULL, 0, 0) < 0)
        abort();
    return s;
}

static size_t query(uint8_t *buf, const char *name, uint16_t type, bool qu, uint16_t id)
{
    struct mdns_writer w;
    struct mdns_question q = {
        .name = N(name), .type = type, .qclass = (uint16_t)(MDNS_CLASS_IN | (qu ? MDNS_CLASS_TOP : 0))};
    mdns_writer_init(&w, buf, 512, id, 0);
    mdns_write_question(&w, &q);
    return mdns_writer_finish(&w);
}

static void test_responder_plan(void)
{
    struct mdns_service s = svc();
    const uint8_t v4[2][4] = {{10, 0, 0, 2}, {10, 0, 0, 3}};
    struct mdns_addrs a = {v4, 2, NULL, 0};
    struct mdns_plan p;
    uint8_t q[512];
    size_t n;

    n = query(q, "_kcrypt._tcp.local", MDNS_TYPE_PTR, false, 0);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 &&
              p.multicast == (MDNS_REC_PTR | MDNS_REC_SRV | MDNS_REC_TXT | MDNS_REC_A) && !p.unicast && !p.legacy,
          "QM for the service from 5353: PTR, SRV, TXT and A by multicast");
    n = query(q, "_kcrypt._tcp.local", MDNS_TYPE_PTR, true, 0);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && p.unicast && !p.multicast, "QU: by unicast");
    n = query(q, "_KCRYPT._tcp.local", MDNS_TYPE_PTR, false, 0x1234);
    CHECK(mdns_service_plan(&s, &a, q, n, 40000, true, &p) == 0 && p.legacy && !p.multicast && !p.unicast &&
              p.id == 0x1234 && p.n_echo == 1,
          "from another port: a legacy answer with the id and the question (names without case)");
    n = query(q, "_kcrypt._tcp.local", MDNS_TYPE_PTR, false, 0);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, false, &p) == 0 && p.unicast && !p.multicast,
          "sent to our address: by unicast");
    n = query(q, "node1._kcrypt._tcp.local", MDNS_TYPE_SRV, false, 0);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && p.multicast == (MDNS_REC_SRV | MDNS_REC_A),
          "the instance's SRV brings the addresses");
    n = query(q, "node1._kcrypt._tcp.local", MDNS_TYPE_TXT, false, 0);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && p.multicast == MDNS_REC_TXT, "its TXT");
    n = query(q, "kms.local", MDNS_TYPE_A, false, 0);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && p.multicast == MDNS_REC_A, "the host's A");
    n = query(q, "kms.local", MDNS_TYPE_AAAA, false, 0);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && !p.multicast, "no AAAA without an IPv6 address");
    n = query(q, "_services._dns-sd._udp.local", MDNS_TYPE_PTR, false, 0);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && p.multicast == MDNS_REC_ENUM,
          "service enumeration");
    n = query(q, "other.local", MDNS_TYPE_A, false, 0);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && !(p.multicast | p.unicast | p.legacy),
          "another name: nothing");
    n = query(q, "kms.local", MDNS_TYPE_A, false, 0);
    q[2] |= 0x80;
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && !(p.multicast | p.unicast | p.legacy),
          "a response is not a query");
    q[2] = 0x28; /* opcode 5 */
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && !(p.multicast | p.unicast | p.legacy),
          "a non-standard opcode is ignored");
    CHECK(mdns_service_plan(&s, &a, q, 11, MDNS_PORT, true, &p) == -EBADMSG, "a short packet is malformed");

    /* Known answers (RFC 6762 §7.1). */
    struct mdns_writer w;
    struct mdns_rr ka = {
        .name = N("_kcrypt._tcp.local"), .type = MDNS_TYPE_PTR, .rclass = 1, .ttl = 100, .u.ptr = s.instance};
    mdns_writer_init(&w, q, sizeof(q), 0, 0);
    mdns_write_question(&w,
                        &(struct mdns_question){.name = N("_kcrypt._tcp.local"), .type = MDNS_TYPE_PTR, .qclass = 1});
    mdns_write_rr(&w, &ka, MDNS_ANSWER);
    n = mdns_writer_finish(&w);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && !(p.multicast & MDNS_REC_PTR) &&
              (p.multicast & MDNS_REC_SRV),
          "a known PTR with enough TTL is not sent again");
    ka.ttl = 30;
    mdns_writer_init(&w, q, sizeof(q), 0, 0);
    mdns_write_question(&w,
                        &(struct mdns_question){.name = N("_kcrypt._tcp.local"), .type = MDNS_TYPE_PTR, .qclass = 1});
    mdns_write_rr(&w, &ka, MDNS_ANSWER);
    n = mdns_writer_finish(&w);
    CHECK(mdns_service_plan(&s, &a, q, n, MDNS_PORT, true, &p) == 0 && (p.multicast & MDNS_REC_PTR),
          "...but it is when less than half its TTL is left");
}

/* Reads a message into an array of records. */
static int records(const uint8_t *pkt, size_t len, struct mdns_header *h, struct mdns_rr *rr, int max)
{
    struct mdns_reader r;
    int n = 0;
    if (mdns_reader_init(&r, pkt, len) < 0)
        return -1;
    *h = r.h;
    while (n < max && mdns_read_rr(&r, &rr[n]) > 0)
        n++;
    return n;
}

static void test_responder_message(void)
{
    struct mdns_service s = svc();
    const uint8_t v4[1][4] = {{10, 0, 0, 2}};
    const uint8_t v6[1][16] = {{0xfe, 0x80, [15] = 1}};
    struct mdns_addrs a = {v4, 1, v6, 1};
    struct mdns_question echo = {.name = N("_kcrypt._tcp.local"), .type = MDNS_TYPE_PTR, .qclass = 1};
    struct mdns_header h;
    struct mdns_rr rr[8];
    uint8_t buf[MDNS_PACKET_MAX];
    size_t len;
    int n;

    CHECK(mdns_service_message(&s, &a, MDNS_REC_PTR | MDNS_REC_SRV | MDNS_REC_TXT | MDNS_REC_A | MDNS_REC_AAAA, s.ttl,
                               false, 0, NULL, 0, buf, sizeof(buf), &len) == 0,
          "a multicast answer is built");
    n = records(buf, len, &h, rr, 8);
    CHECK(n == 5 && h.id == 0 && h.qdcount == 0 && h.ancount == 5 && h.flags == (MDNS_FLAG_QR | MDNS_FLAG_AA),
          "id 0, no question, five answers, authoritative");
    CHECK(rr[0].type == MDNS_TYPE_PTR && rr[0].rclass == 1 && rr[0].ttl == 120, "PTR is shared: no cache-flush bit");
    CHECK(rr[1].type == MDNS_TYPE_SRV && rr[1].rclass == 0x8001 && rr[1].u.srv.port == 30000 &&
              mdns_name_equal(&rr[1].u.srv.target, &s.host) && mdns_name_equal(&rr[1].name, &s.instance),
          "SRV: unique, target kms.local, port 30000");
    CHECK(rr[2].type == MDNS_TYPE_TXT && rr[2].rdlen == 28 &&
              !memcmp(rr[2].rdata,
                      "\x1b"
                      "An instance of _kcrypt._tcp",
                      28),
          "TXT: hashicorp's default text");
    CHECK(rr[3].type == MDNS_TYPE_A && !memcmp(rr[3].u.a, v4[0], 4) &&
              mdns_name_equal(&rr[3].name, &rr[1].u.srv.target),
          "A: owned by the SRV target (what upstream matches on)");
    CHECK(rr[4].type == MDNS_TYPE_AAAA && !memcmp(rr[4].u.aaaa, v6[0], 16), "AAAA");
    CHECK(mdns_service_message(&s, &a, MDNS_REC_PTR | MDNS_REC_SRV | MDNS_REC_TXT | MDNS_REC_A, s.ttl, true, 0x4242,
                               &echo, 1, buf, sizeof(buf), &len) == 0 &&
              (n = records(buf, len, &h, rr, 8)) == 4 && h.id == 0x4242 && h.qdcount == 1 && len <= 512,
          "legacy: the query's id, its question echoed, within 512 bytes");
    CHECK(rr[0].ttl == 10 && rr[1].ttl == 10 && rr[1].rclass == 1 && rr[3].rclass == 1,
          "legacy: TTL 10 and no cache-flush bits");
    CHECK(mdns_service_message(&s, &a, MDNS_REC_ALL, 0, false, 0, NULL, 0, buf, sizeof(buf), &len) == 0 &&
              (n = records(buf, len, &h, rr, 8)) == 6 && rr[0].ttl == 0 && rr[5].ttl == 0,
          "a goodbye: every record with TTL 0");
    CHECK(mdns_service_message(&s, &a, 0, 120, false, 0, NULL, 0, buf, sizeof(buf), &len) == -ENODATA,
          "nothing to say: no message");
}

static struct mdns_endpoint *resolve_from(struct mdns_collect *c, const char *url_host, const char *authority,
                                          uint16_t url_port, size_t *n)
{
    struct mdns_answer *a;
    struct mdns_endpoint *e;
    size_t n_a;
    mdns_collect_answers(c, &a, &n_a);
    mdns_endpoints_from_answers(a, n_a, "http", url_host, authority, url_port, "/", &e, n);
    mdns_answers_free(a, n_a);
    return e;
}

static void test_collect_and_endpoints(void)
{
    struct mdns_collect *c = xmalloc(sizeof(*c));
    struct mdns_endpoint *e;
    struct mdns_answer *a;
    uint8_t p[512];
    size_t len, n, n_a;

    mdns_collect_init(c, "_kcrypt._tcp.local", "kms.local");
    len = hashicorp_response(p, sizeof(p), "node1", "kms.local", 30000, "10.0.0.2", 0);
    CHECK(mdns_collect_packet(c, p, len, "10.0.0.2", 2) == 0 && mdns_collect_useful(c),
          "an upstream-style answer is useful");
    mdns_collect_answers(c, &a, &n_a);
    CHECK(n_a == 1 && !strcmp(a[0].instance, "node1._kcrypt._tcp.local") && !strcmp(a[0].host, "kms.local") &&
              a[0].port == 30000 && a[0].n_addrs == 1 && !memcmp(a[0].addrs[0].bytes, ip_a, 4) && a[0].n_txt == 1 &&
              !strcmp(a[0].txt[0], "An instance of _kcrypt._tcp") && !strcmp(a[0].from, "10.0.0.2"),
          "the answer: instance, SRV, address, TXT, responder");
    mdns_answers_free(a, n_a);
    e = resolve_from(c, "kms.local", "kms.local:8082", 8082, &n);
    CHECK(n == 1 && !strcmp(e[0].url, "http://10.0.0.2:30000") && !strcmp(e[0].host_header, "kms.local:8082") &&
              !strcmp(e[0].address, "10.0.0.2") && e[0].port == 30000,
          "endpoint: dial 10.0.0.2 on the SRV port, Host: the original authority");
    mdns_endpoints_free(e, n);
    e = resolve_from(c, "other.local", "other.local", 80, &n);
    CHECK(n == 0, "an instance announcing another host is not an endpoint (as upstream)");
    mdns_endpoints_free(e, n);

    /* Two responders behind one source address, in separate packets: each SRV keeps its address. */
    len = hashicorp_response(p, sizeof(p), "node2", "kms.local", 30001, "10.0.0.3", 0);
    mdns_collect_packet(c, p, len, "10.0.0.2", 2);
    e = resolve_from(c, "kms.local", "kms.local", 80, &n);
    CHECK(n == 2 && !strcmp(e[0].url, "http://10.0.0.2:30000") && !strcmp(e[1].url, "http://10.0.0.3:30001"),
          "two servers, each address with its own port");
    mdns_endpoints_free(e, n);

    /* node2's responder says goodbye (our responder's own goodbye message): it is gone. */
    {
        struct mdns_service s2;
        const uint8_t v4[1][4] = {{10, 0, 0, 3}};
        struct mdns_addrs a2 = {v4, 1, NULL, 0};
        mdns_service_init(&s2, "node2", "_kcrypt._tcp", "kms.local", 30001, NULL, 0, 0);
        mdns_service_message(&s2, &a2, MDNS_REC_ALL, 0, false, 0, NULL, 0, p, sizeof(p), &len);
        mdns_collect_packet(c, p, len, "10.0.0.2", 2);
        e = resolve_from(c, "kms.local", "kms.local", 80, &n);
        CHECK(n == 1 && !strcmp(e[0].url, "http://10.0.0.2:30000"), "after a goodbye only the other server is left");
        mdns_endpoints_free(e, n);
    }
    mdns_collect_clear(c);

    /* A plain A answer (an avahi host with no service file): the URL's port. */
    mdns_collect_init(c, "_kcrypt._tcp.local", "kms.local");
    {
        struct mdns_writer w;
        struct mdns_rr rr = {.name = N("KMS.local"), .type = MDNS_TYPE_A, .rclass = 0x8001, .ttl = 10};
        memcpy(rr.u.a, ip_b, 4);
        mdns_writer_init(&w, p, sizeof(p), 0x99, MDNS_FLAG_QR | MDNS_FLAG_AA);
        mdns_write_question(&w, &(struct mdns_question){.name = N("kms.local"), .type = 1, .qclass = 1});
        mdns_write_rr(&w, &rr, MDNS_ANSWER);
        rr.type = MDNS_TYPE_AAAA;
        memset(rr.u.aaaa, 0, 16);
        rr.u.aaaa[0] = 0xfe, rr.u.aaaa[1] = 0x80, rr.u.aaaa[15] = 7;
        mdns_write_rr(&w, &rr, MDNS_ANSWER);
        len = mdns_writer_finish(&w);
    }
    CHECK(mdns_collect_packet(c, p, len, "10.0.0.3", 1) == 0 && mdns_collect_useful(c),
          "an A answer for the host is useful");
    e = resolve_from(c, "kms.local", "kms.local:8443", 8443, &n);
    CHECK(n == 2 && !strcmp(e[0].url, "http://10.0.0.3:8443") && !strcmp(e[0].instance, "") &&
              !strcmp(e[1].url, "http://[fe80::7%25lo]:8443") && !strcmp(e[1].address, "fe80::7%lo"),
          "the URL's port; IPv4 first; a link-local IPv6 with its zone (%s)", n == 2 ? e[1].url : "");
    mdns_endpoints_free(e, n);
    /* The same bytes with the last record cut short are refused whole. */
    CHECK(mdns_collect_packet(c, p, len - 3, "10.0.0.9", 1) == -EBADMSG && c->n_sources == 1,
          "a malformed answer is refused, nothing of it kept");
    mdns_collect_clear(c);

    /* An instance heard only through its PTR: its SRV is asked for, once. */
    mdns_collect_init(c, "_kcrypt._tcp.local", "kms.local");
    {
        struct mdns_writer w;
        struct mdns_rr rr = {.name = N("_kcrypt._tcp.local"),
                             .type = MDNS_TYPE_PTR,
                             .rclass = 1,
                             .ttl = 10,
                             .u.ptr = N("x._kcrypt._tcp.local")};
        mdns_writer_init(&w, p, sizeof(p), 0, MDNS_FLAG_QR);
        mdns_write_rr(&w, &rr, MDNS_ANSWER);
        len = mdns_writer_finish(&w);
    }
    mdns_collect_packet(c, p, len, "10.0.0.4", 1);
    CHECK(c->n_followups == 1 && c->followups[0].type == MDNS_TYPE_SRV &&
              !strcmp(T(&c->followups[0].name), "x._kcrypt._tcp.local") && !mdns_collect_useful(c),
          "a PTR alone: ask the instance's SRV");
    c->n_followups = 0;
    mdns_collect_packet(c, p, len, "10.0.0.4", 1);
    CHECK(c->n_followups == 0, "...only once");
    mdns_collect_clear(c);
    free(c);
}

/* One A record in the Answer section. */
static size_t a_answer(uint8_t *p, size_t cap, const char *owner, uint8_t last, uint32_t ttl, uint16_t rclass)
{
    struct mdns_writer w;
    struct mdns_rr rr = {.name = N(owner), .type = MDNS_TYPE_A, .rclass = rclass, .ttl = ttl, .u.a = {10, 0, 0, last}};
    mdns_writer_init(&w, p, cap, 0, MDNS_FLAG_QR | MDNS_FLAG_AA);
    mdns_write_rr(&w, &rr, MDNS_ANSWER);
    return mdns_writer_finish(&w);
}

/* c hears from the responder at `from` an A record of kms.local: 10.0.0.last, ttl, rclass. */

static void hear(struct mdns_collect *c, uint8_t last, uint32_t ttl, uint16_t rclass, const char *from)
{
    uint8_t p[512];
    size_t len = a_answer(p, sizeof(p), "kms.local", last, ttl, rclass);
    mdns_collect_packet(c, p, len, from, 1);
}

static bool has_endpoint(const struct mdns_endpoint *e, size_t n, const char *address)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].address, address))
            return true;
    return false;
}

/* kms.local resolves, through what c heard, to want addresses: a and, if not NULL, b. */
static bool resolves_to(struct mdns_collect *c, size_t want, const char *a, const char *b)
{
    size_t n;
    struct mdns_endpoint *e = resolve_from(c, "kms.local", "kms.local", 80, &n);
    bool ok = n == want && has_endpoint(e, n, a) && (!b || has_endpoint(e, n, b));
    mdns_endpoints_free(e, n);
    return ok;
}

/* Spoofs and stale records: questions answered, TTLs, goodbyes and cache flushes per responder,
 * and who may answer at all. */
static void test_collect_hostile(void)
{
    struct mdns_collect *c = xmalloc(sizeof(*c));
    struct mdns_question ptr = {.name = N("_kcrypt._tcp.local"), .type = MDNS_TYPE_PTR, .qclass = 1};
    struct mdns_question host = {.name = N("kms.local"), .type = MDNS_TYPE_A, .qclass = 1};
    uint8_t p[512];
    size_t len;

    mdns_collect_init(c, "_kcrypt._tcp.local", "kms.local");
    c->clock_ms = 1000000;
    mdns_collect_ask(c, &ptr);
    mdns_collect_ask(c, &host);
    {
        /* Answers another question; slips the host's address in as an additional record. */
        struct mdns_writer w;
        struct mdns_rr other = {.name = N("_other._tcp.local"),
                                .type = MDNS_TYPE_PTR,
                                .rclass = 1,
                                .ttl = 120,
                                .u.ptr = N("y._other._tcp.local")};
        struct mdns_rr a = {
            .name = N("kms.local"), .type = MDNS_TYPE_A, .rclass = 0x8001, .ttl = 120, .u.a = {10, 0, 0, 66}};
        mdns_writer_init(&w, p, sizeof(p), 0, MDNS_FLAG_QR | MDNS_FLAG_AA);
        mdns_write_rr(&w, &other, MDNS_ANSWER);
        mdns_write_rr(&w, &a, MDNS_ADDITIONAL);
        len = mdns_writer_finish(&w);
    }
    CHECK(mdns_collect_packet(c, p, len, "10.0.0.66", 1) == -ENOMSG && !mdns_collect_useful(c) && c->n_sources == 0,
          "a response answering none of our questions is ignored whole, additional records included");
    len = a_answer(p, sizeof(p), "other.local", 67, 120, 0x8001);
    CHECK(mdns_collect_packet(c, p, len, "10.0.0.67", 1) == -ENOMSG && !mdns_collect_useful(c),
          "an address for another name does not answer the question for kms.local");

    len = a_answer(p, sizeof(p), "kms.local", 2, 120, 0x8001);
    CHECK(mdns_collect_packet(c, p, len, "10.0.0.2", 1) == 0 && mdns_collect_useful(c), "the real answer is taken");
    hear(c, 5, 2, 0x8001, "10.0.0.5");
    CHECK(resolves_to(c, 2, "10.0.0.2", "10.0.0.5"), "a record with TTL 2 s is used at first");
    c->clock_ms += 3000;
    CHECK(resolves_to(c, 1, "10.0.0.2", NULL), "...and not once its TTL has run out");

    /* Another host says goodbye for the real responder's address: nothing changes. */
    hear(c, 2, 0, 0x8001, "10.0.0.9");
    CHECK(resolves_to(c, 1, "10.0.0.2", NULL) && mdns_collect_useful(c),
          "a goodbye from another host does not remove the responder's record");

    /* The responder moves: a cache-flush record replaces its older address. */
    hear(c, 3, 120, 0x8001, "10.0.0.2");
    CHECK(resolves_to(c, 1, "10.0.0.3", NULL), "a cache-flush record replaces the same responder's older address");
    hear(c, 4, 120, 1, "10.0.0.2");
    CHECK(resolves_to(c, 2, "10.0.0.3", "10.0.0.4"), "a record without the cache-flush bit adds to the set");
    c->clock_ms += 2000;
    hear(c, 6, 120, 0x8001, "10.0.0.2");
    c->clock_ms += 200;
    hear(c, 7, 120, 0x8001, "10.0.0.2");
    CHECK(resolves_to(c, 2, "10.0.0.6", "10.0.0.7"),
          "cache-flush records within one second of each other form one set");
    /* The responder's own goodbye removes its record. */
    hear(c, 7, 0, 0x8001, "10.0.0.2");
    CHECK(resolves_to(c, 1, "10.0.0.6", NULL), "the responder's own goodbye (TTL 0) removes its record");
    mdns_collect_clear(c);
    free(c);

    /* Who may answer. */
    struct mdns_iface ifs[1] = {
        {.name = "eth0", .index = 2, .v4 = {{10, 0, 0, 1}}, .mask = {{255, 255, 255, 0}}, .n_v4 = 1}};
    const uint8_t on[4] = {10, 0, 0, 7}, off[4] = {10, 0, 1, 7}, self[4] = {10, 0, 0, 1};
    CHECK(mdns_source_ok(ifs, 1, 2, on, 5353), "a responder on the subnet of the arrival interface, port 5353: taken");
    CHECK(!mdns_source_ok(ifs, 1, 2, off, 5353), "a source outside the interface's subnets: refused");
    CHECK(!mdns_source_ok(ifs, 1, 2, on, 5354), "a source port other than 5353: refused");
    CHECK(!mdns_source_ok(ifs, 1, 3, on, 5353), "an on-link address arriving on another interface: refused");
    CHECK(mdns_source_ok(ifs, 1, 1, self, 5353), "one of our own addresses (a responder on this host, via lo): taken");
}

int main(void)
{
    test_names();
    test_codec_round_trip();
    test_writer_bounds();
    test_reader_refuses();
    test_responder_plan();
    test_responder_message();
    test_collect_and_endpoints();
    test_collect_hostile();
    return tap_done();
}
