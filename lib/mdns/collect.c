/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Gathering the answers to a query: records from every response packet, merged per responder and
 * service instance (as hashicorp/mdns merges answers and additional records, docs/upstream.md §7.1),
 * then SRVs paired with the addresses of their targets. Everything is bounded; what does not fit
 * is dropped. Once the questions asked are known (mdns_collect_ask), only packets answering one of
 * them count; records live as long as their TTL says, and a goodbye (TTL 0) or a cache-flush
 * record changes only what the same responder said, so another host cannot remove a responder's
 * records. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "mdns_internal.h"

static void name_or_root(const char *text, struct mdns_name *n)
{
    if (!text || mdns_name_parse(text, n) < 0)
        mdns_name_parse(".", n);
}

void mdns_collect_init(struct mdns_collect *c, const char *service, const char *want_host)
{
    memset(c, 0, sizeof(*c));
    name_or_root(service, &c->service);
    name_or_root(want_host, &c->want_host);
}

static void txt_clear(struct mdns_collect_entry *e)
{
    for (size_t i = 0; i < e->n_txt; i++)
        free(e->txt[i]);
    e->n_txt = 0;
}

void mdns_collect_clear(struct mdns_collect *c)
{
    for (size_t i = 0; i < c->n_entries; i++)
        txt_clear(&c->entries[i]);
    c->n_entries = 0;
}

static int64_t clock_of(const struct mdns_collect *c) { return c->clock_ms ? c->clock_ms : now_ms(); }

static int64_t expiry(int64_t now, uint32_t ttl) { return now + (int64_t)ttl * 1000; }

void mdns_collect_ask(struct mdns_collect *c, const struct mdns_question *q)
{
    for (size_t i = 0; i < c->n_questions; i++)
        if (c->questions[i].type == q->type && mdns_name_equal(&c->questions[i].name, &q->name))
            return;
    if (c->n_questions < MDNS_COLLECT_QUESTIONS)
        c->questions[c->n_questions++] = *q;
}

/* Whether a record answers one of the questions asked. */
static bool answers_question(const struct mdns_collect *c, const struct mdns_rr *rr)
{
    for (size_t i = 0; i < c->n_questions; i++) {
        const struct mdns_question *q = &c->questions[i];
        if ((q->type == rr->type || q->type == MDNS_TYPE_ANY) && mdns_name_equal(&q->name, &rr->name))
            return true;
    }
    return false;
}

static uint32_t source_of(struct mdns_collect *c, const char *from)
{
    for (size_t i = 0; i < c->n_sources; i++)
        if (!strcmp(c->sources[i], from))
            return (uint32_t)i;
    if (c->n_sources == MDNS_COLLECT_ENTRIES)
        return UINT32_MAX;
    snprintf(c->sources[c->n_sources], sizeof(c->sources[0]), "%s", from);
    return (uint32_t)c->n_sources++;
}

/* The entry for this responder and instance; a new one when create is set and there is room. */
static struct mdns_collect_entry *entry_of(struct mdns_collect *c, uint32_t src, const struct mdns_name *instance,
                                           bool create)
{
    for (size_t i = 0; i < c->n_entries; i++)
        if (c->entries[i].src == src && mdns_name_equal(&c->entries[i].instance, instance))
            return &c->entries[i];
    if (!create || c->n_entries == MDNS_COLLECT_ENTRIES)
        return NULL;
    struct mdns_collect_entry *e = &c->entries[c->n_entries++];
    *e = (struct mdns_collect_entry){.src = src, .instance = *instance};
    return e;
}

static bool is_root(const struct mdns_name *n) { return n->len <= 1; }

/* Whether a record about this owner belongs to the query: inside the service asked for. */
static bool in_scope(const struct mdns_collect *c, const struct mdns_name *owner)
{
    return is_root(&c->service) || mdns_name_ends_with(owner, &c->service);
}

/* Addresses are kept for the host wanted and for SRV targets heard so far. */
static bool wanted_owner(const struct mdns_collect *c, const struct mdns_name *owner)
{
    if (is_root(&c->service) && is_root(&c->want_host))
        return true;
    if (!is_root(&c->want_host) && mdns_name_equal(owner, &c->want_host))
        return true;
    for (size_t i = 0; i < c->n_entries; i++)
        if (c->entries[i].has_srv && mdns_name_equal(&c->entries[i].target, owner))
            return true;
    return false;
}

static void take_txt(struct mdns_collect_entry *e, const struct mdns_rr *rr)
{
    const uint8_t *s;
    size_t off = 0, slen;

    txt_clear(e);
    while (e->n_txt < MDNS_COLLECT_TXT && mdns_txt_next(rr->rdata, rr->rdlen, &off, &s, &slen) > 0)
        e->txt[e->n_txt++] = xstrndup((const char *)s, slen);
}

static void take_addr(struct mdns_collect *c, uint32_t src, unsigned packet, const struct mdns_rr *rr, unsigned ifindex,
                      int64_t now)
{
    struct mdns_addr a = {.family = rr->type == MDNS_TYPE_A ? AF_INET : AF_INET6, .ifindex = ifindex};
    memcpy(a.bytes, rr->type == MDNS_TYPE_A ? rr->u.a : rr->u.aaaa, rr->type == MDNS_TYPE_A ? 4 : 16);

    /* Cache flush: this record replaces what the same responder said earlier about this name and
     * type; records of the same set (this packet, or within the last second) stay. */
    if ((rr->rclass & MDNS_CLASS_TOP) && rr->ttl)
        for (size_t i = 0; i < c->n_addrs;) {
            struct mdns_collect_addr *x = &c->addrs[i];
            if (x->src == src && x->addr.family == a.family && mdns_name_equal(&x->owner, &rr->name) &&
                x->packet != packet && x->received_ms < now - MDNS_FLUSH_GRACE_MS && memcmp(x->addr.bytes, a.bytes, 16))
                c->addrs[i] = c->addrs[--c->n_addrs];
            else
                i++;
        }
    for (size_t i = 0; i < c->n_addrs; i++) {
        struct mdns_collect_addr *x = &c->addrs[i];
        if (x->src == src && x->addr.family == a.family && !memcmp(x->addr.bytes, a.bytes, 16) &&
            mdns_name_equal(&x->owner, &rr->name)) {
            if (rr->ttl == 0) { /* a goodbye: the address is gone */
                c->addrs[i] = c->addrs[--c->n_addrs];
            } else {
                x->packet = packet;
                x->received_ms = now;
                x->expires_ms = expiry(now, rr->ttl);
            }
            return;
        }
    }
    if (rr->ttl == 0 || c->n_addrs == MDNS_COLLECT_ADDRS)
        return;
    c->addrs[c->n_addrs++] = (struct mdns_collect_addr){.src = src,
                                                        .packet = packet,
                                                        .received_ms = now,
                                                        .expires_ms = expiry(now, rr->ttl),
                                                        .owner = rr->name,
                                                        .addr = a};
}

static bool addr_live(const struct mdns_collect_addr *x, int64_t now) { return x->expires_ms > now; }

static bool srv_live(const struct mdns_collect_entry *e, int64_t now) { return e->has_srv && e->srv_expires_ms > now; }

static bool has_addr_for(const struct mdns_collect *c, const struct mdns_name *owner, int64_t now)
{
    for (size_t i = 0; i < c->n_addrs; i++)
        if (addr_live(&c->addrs[i], now) && mdns_name_equal(&c->addrs[i].owner, owner))
            return true;
    return false;
}

static void follow_up(struct mdns_collect *c, const struct mdns_name *name, uint16_t type)
{
    for (size_t i = 0; i < c->n_asked; i++)
        if (mdns_name_equal(&c->asked[i], name))
            return;
    if (c->n_asked == MDNS_COLLECT_FOLLOWUPS || c->n_followups == MDNS_COLLECT_FOLLOWUPS)
        return;
    c->asked[c->n_asked++] = *name;
    c->followups[c->n_followups++] = (struct mdns_question){.name = *name, .type = type, .qclass = MDNS_CLASS_IN};
    if (c->n_questions)
        mdns_collect_ask(c, &c->followups[c->n_followups - 1]);
}

int mdns_collect_packet(struct mdns_collect *c, const uint8_t *pkt, size_t len, const char *from, unsigned ifindex)
{
    struct mdns_reader r;
    struct mdns_rr rr;
    uint32_t src;
    unsigned packet;
    int64_t now = clock_of(c);
    bool answers = c->n_questions == 0;
    int k;

    /* A malformed packet is refused whole before anything of it is kept. */
    if (mdns_reader_init(&r, pkt, len) < 0)
        return -EBADMSG;
    while ((k = mdns_read_rr(&r, &rr)) > 0)
        if (rr.section == MDNS_ANSWER && (rr.rclass & ~MDNS_CLASS_TOP) == MDNS_CLASS_IN && answers_question(c, &rr))
            answers = true;
    if (k < 0)
        return -EBADMSG;
    if (!(r.h.flags & MDNS_FLAG_QR) || MDNS_OPCODE(r.h.flags) || MDNS_RCODE(r.h.flags))
        return 0;
    if (!answers)
        return -ENOMSG;
    src = source_of(c, from);
    if (src == UINT32_MAX)
        return 0;
    packet = ++c->packets;

    /* Services first, so that the addresses of their targets are known to be wanted. */
    mdns_reader_init(&r, pkt, len);
    while (mdns_read_rr(&r, &rr) > 0) {
        struct mdns_collect_entry *e;
        if ((rr.rclass & ~MDNS_CLASS_TOP) != MDNS_CLASS_IN)
            continue;
        if (rr.type == MDNS_TYPE_PTR && !is_root(&c->service) && mdns_name_equal(&rr.name, &c->service)) {
            (void)entry_of(c, src, &rr.u.ptr, rr.ttl != 0);
        } else if (rr.type == MDNS_TYPE_SRV && in_scope(c, &rr.name) && (e = entry_of(c, src, &rr.name, rr.ttl != 0))) {
            e->has_srv = rr.ttl != 0; /* TTL 0: a goodbye */
            e->srv_packet = packet;
            e->srv_expires_ms = expiry(now, rr.ttl);
            e->target = rr.u.srv.target;
            e->port = rr.u.srv.port;
        } else if (rr.type == MDNS_TYPE_TXT && in_scope(c, &rr.name) && rr.ttl) {
            if ((e = entry_of(c, src, &rr.name, true)))
                take_txt(e, &rr);
        }
    }
    mdns_reader_init(&r, pkt, len);
    while (mdns_read_rr(&r, &rr) > 0)
        if ((rr.type == MDNS_TYPE_A || rr.type == MDNS_TYPE_AAAA) && (rr.rclass & ~MDNS_CLASS_TOP) == MDNS_CLASS_IN &&
            wanted_owner(c, &rr.name))
            take_addr(c, src, packet, &rr, ifindex, now);

    /* An instance heard of only through its PTR: ask for its SRV (upstream's client re-queries
     * such an instance too). A target we want with no address yet: ask for it. */
    for (size_t i = 0; i < c->n_entries; i++) {
        const struct mdns_collect_entry *e = &c->entries[i];
        if (!e->has_srv && e->src == src)
            follow_up(c, &e->instance, MDNS_TYPE_SRV);
        else if (e->has_srv && !has_addr_for(c, &e->target, now) &&
                 (is_root(&c->want_host) || mdns_name_equal(&e->target, &c->want_host)))
            follow_up(c, &e->target, MDNS_TYPE_A);
    }
    return 0;
}

bool mdns_collect_useful(const struct mdns_collect *c)
{
    if (is_root(&c->want_host))
        return c->n_entries > 0 || c->n_addrs > 0;
    return has_addr_for(c, &c->want_host, clock_of(c));
}

static void add_addr(struct mdns_answer *a, const struct mdns_addr *x)
{
    for (size_t i = 0; i < a->n_addrs; i++)
        if (a->addrs[i].family == x->family && !memcmp(a->addrs[i].bytes, x->bytes, 16))
            return;
    a->addrs[a->n_addrs++] = *x;
}

/* The addresses of e's target: those that came with its SRV, else from the same responder, else
 * from anyone (a host may be answered for by another responder than its service). */
static void pair_addresses(const struct mdns_collect *c, const struct mdns_collect_entry *e, struct mdns_answer *a,
                           int64_t now)
{
    for (int pass = 0; pass < 3 && a->n_addrs == 0; pass++)
        for (size_t i = 0; i < c->n_addrs; i++) {
            const struct mdns_collect_addr *x = &c->addrs[i];
            if (!addr_live(x, now) || !mdns_name_equal(&x->owner, &e->target))
                continue;
            if ((pass == 0 && (x->src != e->src || x->packet != e->srv_packet)) || (pass == 1 && x->src != e->src))
                continue;
            add_addr(a, &x->addr);
        }
}

static char *name_text(const struct mdns_name *n)
{
    char text[MDNS_NAME_TEXT_MAX];
    mdns_name_to_text(n, text, sizeof(text));
    return xstrdup(text);
}

int mdns_collect_answers(const struct mdns_collect *c, struct mdns_answer **out, size_t *n)
{
    size_t cap = c->n_entries + c->n_addrs, k = 0;
    struct mdns_answer *a = xcalloc(cap ? cap : 1, sizeof(*a));
    int64_t now = clock_of(c);

    for (size_t i = 0; i < c->n_entries; i++) {
        const struct mdns_collect_entry *e = &c->entries[i];
        struct mdns_answer *x = &a[k++];
        bool srv = srv_live(e, now); /* an expired SRV is as good as none */
        snprintf(x->from, sizeof(x->from), "%s", c->sources[e->src]);
        x->instance = name_text(&e->instance);
        x->host = srv ? name_text(&e->target) : xstrdup("");
        x->port = srv ? e->port : 0;
        x->addrs = xcalloc(MDNS_COLLECT_ADDRS, sizeof(*x->addrs));
        if (srv)
            pair_addresses(c, e, x, now);
        x->txt = xcalloc(e->n_txt ? e->n_txt : 1, sizeof(char *));
        for (size_t t = 0; t < e->n_txt; t++)
            x->txt[x->n_txt++] = xstrdup(e->txt[t]);
    }
    /* Addresses no SRV of the same responder points at: a plain host answer, one per
     * responder and name. */
    for (size_t i = 0; i < c->n_addrs; i++) {
        const struct mdns_collect_addr *x = &c->addrs[i];
        bool covered = !addr_live(x, now);
        for (size_t j = 0; j < c->n_entries && !covered; j++)
            covered = srv_live(&c->entries[j], now) && c->entries[j].src == x->src &&
                      mdns_name_equal(&c->entries[j].target, &x->owner);
        for (size_t j = 0; j < i && !covered; j++) /* already listed with an earlier address */
            covered = addr_live(&c->addrs[j], now) && c->addrs[j].src == x->src &&
                      mdns_name_equal(&c->addrs[j].owner, &x->owner);
        if (covered)
            continue;
        struct mdns_answer *h = &a[k++];
        snprintf(h->from, sizeof(h->from), "%s", c->sources[x->src]);
        h->instance = xstrdup("");
        h->host = name_text(&x->owner);
        h->addrs = xcalloc(MDNS_COLLECT_ADDRS, sizeof(*h->addrs));
        h->txt = xcalloc(1, sizeof(char *));
        for (size_t j = i; j < c->n_addrs; j++)
            if (addr_live(&c->addrs[j], now) && c->addrs[j].src == x->src &&
                mdns_name_equal(&c->addrs[j].owner, &x->owner))
                add_addr(h, &c->addrs[j].addr);
    }
    *out = a;
    *n = k;
    return 0;
}

void mdns_answers_free(struct mdns_answer *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++) {
        free(a[i].instance);
        free(a[i].host);
        free(a[i].addrs);
        for (size_t t = 0; t < a[i].n_txt; t++)
            free(a[i].txt[t]);
        free(a[i].txt);
    }
    free(a);
}
