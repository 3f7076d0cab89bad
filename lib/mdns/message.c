/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* DNS messages (RFC 1035 §4): reading with every length and pointer bounded, writing with name
 * compression; TXT RDATA (RFC 6763 §6). */
#include <string.h>

#include "base.h"
#include "mdns_internal.h"

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }
static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* ---- reading ---- */

int mdns_reader_init(struct mdns_reader *r, const void *pkt, size_t len)
{
    const uint8_t *p = pkt;

    *r = (struct mdns_reader){.pkt = pkt, .len = len};
    if (len < MDNS_HEADER_LEN)
        return -EBADMSG;
    r->h = (struct mdns_header){get16(p), get16(p + 2), get16(p + 4), get16(p + 6), get16(p + 8), get16(p + 10)};
    r->off = MDNS_HEADER_LEN;
    r->questions_left = r->h.qdcount;
    r->records_left = (unsigned)r->h.ancount + r->h.nscount + r->h.arcount;
    return 0;
}

int mdns_read_question(struct mdns_reader *r, struct mdns_question *q)
{
    if (r->questions_left == 0)
        return 0;
    if (mdns_name_read(r->pkt, r->len, &r->off, &q->name) < 0 || r->len - r->off < 4)
        return -EBADMSG;
    q->type = get16(r->pkt + r->off);
    q->qclass = get16(r->pkt + r->off + 2);
    r->off += 4;
    r->questions_left--;
    return 1;
}

/* A name inside RDATA stays inside it (pointers go back before it) and ends where it ends. */
static int read_rdata_name(const struct mdns_reader *r, size_t at, size_t end, struct mdns_name *n)
{
    size_t o = at;
    if (mdns_name_read(r->pkt, end, &o, n) < 0)
        return -EBADMSG;
    return o == end ? 0 : -EBADMSG;
}

static int read_rdata(const struct mdns_reader *r, size_t at, struct mdns_rr *rr)
{
    size_t end = at + rr->rdlen, off = 0;
    const uint8_t *s;
    size_t slen;
    int k;

    switch (rr->type) {
    case MDNS_TYPE_A:
        if (rr->rdlen != 4)
            return -EBADMSG;
        memcpy(rr->u.a, rr->rdata, 4);
        return 0;
    case MDNS_TYPE_AAAA:
        if (rr->rdlen != 16)
            return -EBADMSG;
        memcpy(rr->u.aaaa, rr->rdata, 16);
        return 0;
    case MDNS_TYPE_PTR: return read_rdata_name(r, at, end, &rr->u.ptr);
    case MDNS_TYPE_SRV:
        if (rr->rdlen < 7)
            return -EBADMSG;
        rr->u.srv.priority = get16(rr->rdata);
        rr->u.srv.weight = get16(rr->rdata + 2);
        rr->u.srv.port = get16(rr->rdata + 4);
        return read_rdata_name(r, at + 6, end, &rr->u.srv.target);
    case MDNS_TYPE_TXT:
        while ((k = mdns_txt_next(rr->rdata, rr->rdlen, &off, &s, &slen)) > 0)
            ;
        return k;
    default: return 0;
    }
}

int mdns_read_rr(struct mdns_reader *r, struct mdns_rr *rr)
{
    struct mdns_question q;
    int k;

    while ((k = mdns_read_question(r, &q)) > 0)
        ;
    if (k < 0)
        return k;
    if (r->records_left == 0)
        return 0;
    if (mdns_name_read(r->pkt, r->len, &r->off, &rr->name) < 0 || r->len - r->off < 10)
        return -EBADMSG;
    const uint8_t *p = r->pkt + r->off;
    rr->type = get16(p);
    rr->rclass = get16(p + 2);
    rr->ttl = get32(p + 4);
    rr->rdlen = get16(p + 8);
    if (r->len - r->off - 10 < rr->rdlen)
        return -EBADMSG;
    rr->rdata = p + 10;
    rr->section = r->record_index < r->h.ancount                            ? MDNS_ANSWER
                  : r->record_index < (unsigned)r->h.ancount + r->h.nscount ? MDNS_AUTHORITY
                                                                            : MDNS_ADDITIONAL;
    if (read_rdata(r, r->off + 10, rr) < 0)
        return -EBADMSG;
    r->off += 10 + (size_t)rr->rdlen;
    r->records_left--;
    r->record_index++;
    return 1;
}

/* ---- writing ---- */

void mdns_writer_init(struct mdns_writer *w, void *buf, size_t cap, uint16_t id, uint16_t flags)
{
    *w = (struct mdns_writer){.buf = buf,
                              .cap = cap < MDNS_HEADER_LEN ? 0 : cap,
                              .len = MDNS_HEADER_LEN,
                              .h = {.id = id, .flags = flags},
                              .section = MDNS_QUESTION};
}

static bool room(const struct mdns_writer *w, size_t n) { return w->cap >= w->len && w->cap - w->len >= n; }

/* Writes n, pointing at an earlier copy of its longest suffix already in the message when
 * compress is set; its own labels become targets for later names either way. */
static int write_name(struct mdns_writer *w, const struct mdns_name *n, bool compress)
{
    size_t i = 0;

    while (i < n->len && n->wire[i]) {
        if (compress) {
            struct mdns_name suffix = {.len = (uint8_t)(n->len - i)};
            memcpy(suffix.wire, n->wire + i, suffix.len);
            for (size_t k = 0; k < w->n_names; k++) {
                struct mdns_name there;
                size_t o = w->names[k];
                if (mdns_name_read(w->buf, w->len, &o, &there) == 0 && mdns_name_equal(&there, &suffix)) {
                    if (!room(w, 2))
                        return -EMSGSIZE;
                    put16(w->buf + w->len, (uint16_t)(0xc000 | w->names[k]));
                    w->len += 2;
                    return 0;
                }
            }
        }
        size_t l = n->wire[i];
        if (!room(w, 1 + l))
            return -EMSGSIZE;
        if (w->len < 0x3fff && w->n_names < MDNS_WRITER_NAMES)
            w->names[w->n_names++] = (uint16_t)w->len;
        memcpy(w->buf + w->len, n->wire + i, 1 + l);
        w->len += 1 + l;
        i += 1 + l;
    }
    if (!room(w, 1))
        return -EMSGSIZE;
    w->buf[w->len++] = 0;
    return 0;
}

int mdns_write_question(struct mdns_writer *w, const struct mdns_question *q)
{
    size_t len = w->len, n_names = w->n_names;

    if (w->section != MDNS_QUESTION || w->h.qdcount == UINT16_MAX)
        return -EINVAL;
    if (write_name(w, &q->name, true) < 0 || !room(w, 4)) {
        w->len = len;
        w->n_names = n_names;
        return -EMSGSIZE;
    }
    put16(w->buf + w->len, q->type);
    put16(w->buf + w->len + 2, q->qclass);
    w->len += 4;
    w->h.qdcount++;
    return 0;
}

static int write_rdata(struct mdns_writer *w, const struct mdns_rr *rr)
{
    switch (rr->type) {
    case MDNS_TYPE_A:
        if (!room(w, 4))
            return -EMSGSIZE;
        memcpy(w->buf + w->len, rr->u.a, 4);
        w->len += 4;
        return 0;
    case MDNS_TYPE_AAAA:
        if (!room(w, 16))
            return -EMSGSIZE;
        memcpy(w->buf + w->len, rr->u.aaaa, 16);
        w->len += 16;
        return 0;
    case MDNS_TYPE_PTR: return write_name(w, &rr->u.ptr, true);
    case MDNS_TYPE_SRV:
        if (!room(w, 6))
            return -EMSGSIZE;
        put16(w->buf + w->len, rr->u.srv.priority);
        put16(w->buf + w->len + 2, rr->u.srv.weight);
        put16(w->buf + w->len + 4, rr->u.srv.port);
        w->len += 6;
        return write_name(w, &rr->u.srv.target, false);
    default:
        if (!room(w, rr->rdlen))
            return -EMSGSIZE;
        if (rr->rdlen)
            memcpy(w->buf + w->len, rr->rdata, rr->rdlen);
        w->len += rr->rdlen;
        return 0;
    }
}

int mdns_write_rr(struct mdns_writer *w, const struct mdns_rr *rr, enum mdns_section section)
{
    size_t len = w->len, n_names = w->n_names, rdstart;
    uint16_t *count = section == MDNS_ANSWER       ? &w->h.ancount
                      : section == MDNS_AUTHORITY  ? &w->h.nscount
                      : section == MDNS_ADDITIONAL ? &w->h.arcount
                                                   : NULL;

    if (!count || section < w->section || *count == UINT16_MAX)
        return -EINVAL;
    if (write_name(w, &rr->name, true) < 0 || !room(w, 10))
        goto full;
    put16(w->buf + w->len, rr->type);
    put16(w->buf + w->len + 2, rr->rclass);
    put32(w->buf + w->len + 4, rr->ttl);
    w->len += 10;
    rdstart = w->len;
    if (write_rdata(w, rr) < 0)
        goto full;
    put16(w->buf + rdstart - 2, (uint16_t)(w->len - rdstart));
    w->section = section;
    (*count)++;
    return 0;
full:
    w->len = len;
    w->n_names = n_names;
    return -EMSGSIZE;
}

size_t mdns_writer_finish(struct mdns_writer *w)
{
    if (w->cap == 0)
        return 0;
    put16(w->buf, w->h.id);
    put16(w->buf + 2, w->h.flags);
    put16(w->buf + 4, w->h.qdcount);
    put16(w->buf + 6, w->h.ancount);
    put16(w->buf + 8, w->h.nscount);
    put16(w->buf + 10, w->h.arcount);
    return w->len;
}

/* ---- TXT ---- */

int mdns_txt_encode(const char *const *strings, size_t n, uint8_t *out, size_t cap, size_t *len)
{
    size_t o = 0;

    if (n == 0) {
        if (cap < 1)
            return -EMSGSIZE;
        out[0] = 0;
        *len = 1;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(strings[i]);
        if (l > 255)
            return -EINVAL;
        if (cap - o < 1 + l)
            return -EMSGSIZE;
        out[o++] = (uint8_t)l;
        memcpy(out + o, strings[i], l);
        o += l;
    }
    *len = o;
    return 0;
}

int mdns_txt_next(const uint8_t *rdata, size_t rdlen, size_t *off, const uint8_t **s, size_t *slen)
{
    if (*off >= rdlen)
        return 0;
    size_t l = rdata[*off];
    if (rdlen - *off - 1 < l)
        return -EBADMSG;
    *s = rdata + *off + 1;
    *slen = l;
    *off += 1 + l;
    return 1;
}
