/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The responder's core, no sockets: which records answer a query and how they are sent. The
 * records and their grouping are those of hashicorp/mdns's MDNSService as kairos-io/
 * simple-mdns-server runs it (docs/upstream.md §7.2): the service PTR brings the PTR, SRV (priority
 * 10, weight 1), TXT and the host's addresses; the instance brings SRV+addresses and/or TXT; the
 * host brings its addresses; _services._dns-sd._udp brings the service. What we add is RFC 6762:
 * QU/QM/legacy routing, known-answer suppression, cache-flush bits on unique records. */
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "mdns_internal.h"

static int append_name(struct mdns_name *n, const struct mdns_name *tail)
{
    if ((size_t)n->len - 1 + tail->len > MDNS_MAX_NAME)
        return -EINVAL;
    memcpy(n->wire + n->len - 1, tail->wire, tail->len);
    n->len = (uint8_t)(n->len - 1 + tail->len);
    return 0;
}

int mdns_service_init(struct mdns_service *s, const char *instance, const char *service, const char *host,
                      uint16_t port, const char *const *txt, size_t n_txt, uint32_t ttl)
{
    struct mdns_name local;
    char info[300];
    const char *def[1] = {info};

    memset(s, 0, sizeof(*s));
    mdns_name_parse("local", &local);
    if (mdns_name_parse(service, &s->service) < 0 || s->service.len <= 1)
        return log_error_errno(-EINVAL, "mdns: service type %s is not a valid DNS name", service);
    if (!mdns_name_ends_with(&s->service, &local) && append_name(&s->service, &local) < 0)
        return log_error_errno(-EINVAL, "mdns: service type %s is too long", service);
    s->instance = s->service;
    if (mdns_name_prepend(&s->instance, instance, strlen(instance)) < 0)
        return log_error_errno(-EINVAL, "mdns: instance name \"%s\" must be 1 to 63 bytes", instance);
    mdns_name_parse("_services._dns-sd._udp.local", &s->enumerator);
    if (mdns_name_parse(host, &s->host) < 0 || s->host.len <= 1)
        return log_error_errno(-EINVAL, "mdns: host name %s is not a valid DNS name", host);
    if (port == 0)
        return log_error_errno(-EINVAL, "mdns: the service port must not be 0");
    s->port = port;
    s->ttl = ttl ? ttl : MDNS_TTL;
    if (n_txt == 0) { /* what simple-mdns-server publishes */
        snprintf(info, sizeof(info), "An instance of %s", service);
        txt = def;
        n_txt = 1;
    }
    if (mdns_txt_encode(txt, n_txt, s->txt, sizeof(s->txt), &s->txt_len) < 0)
        return log_error_errno(-EINVAL, "mdns: TXT strings must be at most 255 bytes each and 1 KiB in all");
    return 0;
}

/* The records a question asks for. */
static unsigned records_for(const struct mdns_service *s, const struct mdns_addrs *a, const struct mdns_question *q)
{
    uint16_t cls = q->qclass & ~MDNS_CLASS_TOP, t = q->type;
    unsigned bits = 0, addr_bits = (a->n_v4 ? MDNS_REC_A : 0) | (a->n_v6 ? MDNS_REC_AAAA : 0);

    if (cls != MDNS_CLASS_IN && cls != MDNS_CLASS_ANY)
        return 0;
    if (mdns_name_equal(&q->name, &s->enumerator)) {
        if (t == MDNS_TYPE_PTR || t == MDNS_TYPE_ANY)
            bits = MDNS_REC_ENUM;
    } else if (mdns_name_equal(&q->name, &s->service)) {
        if (t == MDNS_TYPE_PTR || t == MDNS_TYPE_ANY)
            bits = MDNS_REC_PTR | MDNS_REC_SRV | MDNS_REC_TXT | addr_bits;
    } else if (mdns_name_equal(&q->name, &s->instance)) {
        bits = t == MDNS_TYPE_SRV    ? MDNS_REC_SRV | addr_bits
               : t == MDNS_TYPE_TXT  ? MDNS_REC_TXT
               : t == MDNS_TYPE_ANY  ? MDNS_REC_SRV | MDNS_REC_TXT | addr_bits
               : t == MDNS_TYPE_A    ? MDNS_REC_A
               : t == MDNS_TYPE_AAAA ? MDNS_REC_AAAA
                                     : 0;
    } else if (mdns_name_equal(&q->name, &s->host)) {
        bits = t == MDNS_TYPE_A      ? MDNS_REC_A
               : t == MDNS_TYPE_AAAA ? MDNS_REC_AAAA
               : t == MDNS_TYPE_ANY  ? MDNS_REC_A | MDNS_REC_AAAA
                                     : 0;
    }
    return bits & ((MDNS_REC_ALL & ~(unsigned)(MDNS_REC_A | MDNS_REC_AAAA)) | addr_bits);
}

/* Known-answer suppression (RFC 6762 §7.1): the querier already holds this record with at least
 * half our TTL left. Returns the record's bit, or for addresses marks which ones it holds. */
static unsigned known(const struct mdns_service *s, const struct mdns_addrs *a, const struct mdns_rr *rr,
                      bool *v4_known, bool *v6_known)
{
    if (rr->ttl < s->ttl / 2 || (rr->rclass & ~MDNS_CLASS_TOP) != MDNS_CLASS_IN)
        return 0;
    switch (rr->type) {
    case MDNS_TYPE_PTR:
        if (mdns_name_equal(&rr->name, &s->service) && mdns_name_equal(&rr->u.ptr, &s->instance))
            return MDNS_REC_PTR;
        if (mdns_name_equal(&rr->name, &s->enumerator) && mdns_name_equal(&rr->u.ptr, &s->service))
            return MDNS_REC_ENUM;
        return 0;
    case MDNS_TYPE_SRV:
        return mdns_name_equal(&rr->name, &s->instance) && rr->u.srv.port == s->port &&
                       mdns_name_equal(&rr->u.srv.target, &s->host)
                   ? MDNS_REC_SRV
                   : 0;
    case MDNS_TYPE_TXT:
        return mdns_name_equal(&rr->name, &s->instance) && rr->rdlen == s->txt_len &&
                       !memcmp(rr->rdata, s->txt, s->txt_len)
                   ? MDNS_REC_TXT
                   : 0;
    case MDNS_TYPE_A:
        for (size_t i = 0; i < a->n_v4 && mdns_name_equal(&rr->name, &s->host); i++)
            if (!memcmp(a->v4[i], rr->u.a, 4))
                v4_known[i] = true;
        return 0;
    case MDNS_TYPE_AAAA:
        for (size_t i = 0; i < a->n_v6 && mdns_name_equal(&rr->name, &s->host); i++)
            if (!memcmp(a->v6[i], rr->u.aaaa, 16))
                v6_known[i] = true;
        return 0;
    default: return 0;
    }
}

static bool all_true(const bool *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!v[i])
            return false;
    return n > 0;
}

int mdns_service_plan(const struct mdns_service *s, const struct mdns_addrs *a, const uint8_t *pkt, size_t len,
                      uint16_t src_port, bool to_multicast, struct mdns_plan *plan)
{
    struct mdns_reader r;
    struct mdns_question q;
    struct mdns_rr rr;
    bool legacy = src_port != MDNS_PORT, v4_known[MDNS_MAX_IFADDRS] = {0}, v6_known[MDNS_MAX_IFADDRS] = {0};
    unsigned suppress = 0;
    int k;

    memset(plan, 0, sizeof(*plan));
    if (a->n_v4 > MDNS_MAX_IFADDRS || a->n_v6 > MDNS_MAX_IFADDRS)
        return -EINVAL;
    if (mdns_reader_init(&r, pkt, len) < 0)
        return -EBADMSG;
    /* Responses, and queries other than standard ones, are not for us (RFC 6762 §18.3, §18.11). */
    if ((r.h.flags & MDNS_FLAG_QR) || MDNS_OPCODE(r.h.flags) || MDNS_RCODE(r.h.flags))
        return 0;
    plan->id = r.h.id;
    while ((k = mdns_read_question(&r, &q)) > 0) {
        unsigned bits = records_for(s, a, &q);
        if (legacy) {
            plan->legacy |= bits;
            if (plan->n_echo < MDNS_MAX_ECHO)
                plan->echo[plan->n_echo++] = q;
        } else if ((q.qclass & MDNS_CLASS_TOP) || !to_multicast) {
            plan->unicast |= bits;
        } else {
            plan->multicast |= bits;
        }
    }
    while (k == 0 && (k = mdns_read_rr(&r, &rr)) > 0)
        if (rr.section == MDNS_ANSWER)
            suppress |= known(s, a, &rr, v4_known, v6_known);
    if (k < 0) {
        memset(plan, 0, sizeof(*plan));
        return -EBADMSG;
    }
    if (all_true(v4_known, a->n_v4))
        suppress |= MDNS_REC_A;
    if (all_true(v6_known, a->n_v6))
        suppress |= MDNS_REC_AAAA;
    if (!legacy) { /* a legacy query carries no known answers (avahi ignores them too) */
        plan->multicast &= ~suppress;
        plan->unicast &= ~suppress;
    }
    if (!plan->legacy)
        plan->n_echo = 0;
    return 0;
}

int mdns_service_message(const struct mdns_service *s, const struct mdns_addrs *a, unsigned records, uint32_t ttl,
                         bool legacy, uint16_t id, const struct mdns_question *echo, size_t n_echo, uint8_t *buf,
                         size_t cap, size_t *len)
{
    struct mdns_writer w;
    /* Legacy answers: short TTL, no cache-flush bit (RFC 6762 §6.7, §10.2). */
    uint16_t unique = legacy ? MDNS_CLASS_IN : MDNS_CLASS_IN | MDNS_CLASS_TOP;
    struct mdns_rr rr[4 + 2 * MDNS_MAX_IFADDRS];
    size_t n = 0;
    int r = 0;

    if (legacy && ttl > MDNS_LEGACY_TTL)
        ttl = MDNS_LEGACY_TTL;
    if (legacy && cap > MDNS_LEGACY_MAX)
        cap = MDNS_LEGACY_MAX;
    mdns_writer_init(&w, buf, cap, id, MDNS_FLAG_QR | MDNS_FLAG_AA);
    for (size_t i = 0; i < n_echo && r == 0; i++)
        r = mdns_write_question(&w, &echo[i]);
    /* PTR, SRV before A: hashicorp's client files an A record under the SRV that names it. */
    if (records & MDNS_REC_PTR)
        rr[n++] =
            (struct mdns_rr){.name = s->service, .type = MDNS_TYPE_PTR, .rclass = MDNS_CLASS_IN, .u.ptr = s->instance};
    if (records & MDNS_REC_ENUM)
        rr[n++] = (struct mdns_rr){
            .name = s->enumerator, .type = MDNS_TYPE_PTR, .rclass = MDNS_CLASS_IN, .u.ptr = s->service};
    if (records & MDNS_REC_SRV)
        rr[n++] = (struct mdns_rr){
            .name = s->instance, .type = MDNS_TYPE_SRV, .rclass = unique, .u.srv = {10, 1, s->port, s->host}};
    if (records & MDNS_REC_TXT)
        rr[n++] = (struct mdns_rr){.name = s->instance,
                                   .type = MDNS_TYPE_TXT,
                                   .rclass = unique,
                                   .rdata = s->txt,
                                   .rdlen = (uint16_t)s->txt_len};
    for (size_t i = 0; (records & MDNS_REC_A) && i < a->n_v4 && i < MDNS_MAX_IFADDRS; i++) {
        rr[n] = (struct mdns_rr){.name = s->host, .type = MDNS_TYPE_A, .rclass = unique};
        memcpy(rr[n++].u.a, a->v4[i], 4);
    }
    for (size_t i = 0; (records & MDNS_REC_AAAA) && i < a->n_v6 && i < MDNS_MAX_IFADDRS; i++) {
        rr[n] = (struct mdns_rr){.name = s->host, .type = MDNS_TYPE_AAAA, .rclass = unique};
        memcpy(rr[n++].u.aaaa, a->v6[i], 16);
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        rr[i].ttl = ttl;
        r = mdns_write_rr(&w, &rr[i], MDNS_ANSWER);
    }
    /* Only a legacy querier can act on TC (RFC 6762 §18.5); ours are far below the limits. */
    if (r == -EMSGSIZE && legacy)
        w.h.flags |= MDNS_FLAG_TC;
    *len = mdns_writer_finish(&w);
    return w.h.ancount > 0 ? 0 : -ENODATA;
}
