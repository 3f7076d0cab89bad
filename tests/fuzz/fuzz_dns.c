/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the DNS message reader (every record, every name through its pointers), the
 * responder's reading of a query and the answer it writes, and the node's answer collector. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mdns_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mdns_collect c;
    static struct mdns_service s;
    static bool ready;
    static const uint8_t v4[1][4] = {{10, 0, 0, 2}};
    static const uint8_t v6[1][16] = {{0xfe, 0x80, [15] = 2}};
    const struct mdns_addrs a = {v4, 1, v6, 1};
    char text[MDNS_NAME_TEXT_MAX];
    struct mdns_reader r;
    struct mdns_question q;
    struct mdns_rr rr;
    struct mdns_plan plan;
    struct mdns_answer *ans;
    size_t n, len;
    uint8_t out[MDNS_PACKET_MAX];
    int k;

    if (!ready) {
        ready = mdns_service_init(&s, "node1", "_kcrypt._tcp", "kms.local", 30000, NULL, 0, 0) == 0;
        if (!ready)
            abort();
    }
    if (mdns_reader_init(&r, data, size) == 0) {
        while ((k = mdns_read_question(&r, &q)) > 0)
            mdns_name_to_text(&q.name, text, sizeof(text));
        while (k == 0 && (k = mdns_read_rr(&r, &rr)) > 0) {
            mdns_name_to_text(&rr.name, text, sizeof(text));
            if (rr.type == MDNS_TYPE_TXT) {
                const uint8_t *str;
                size_t off = 0, slen;
                while (mdns_txt_next(rr.rdata, rr.rdlen, &off, &str, &slen) > 0)
                    if (slen > 255)
                        abort();
            }
        }
    }
    /* The responder reads it as a query from both kinds of port; whatever it plans, it can write. */
    for (int legacy = 0; legacy < 2; legacy++)
        if (mdns_service_plan(&s, &a, data, size, legacy ? 40000 : MDNS_PORT, true, &plan) == 0) {
            unsigned records = plan.multicast | plan.unicast | plan.legacy;
            if (records && mdns_service_message(&s, &a, records, s.ttl, legacy, plan.id, plan.echo, plan.n_echo, out,
                                                sizeof(out), &len) == 0) {
                if (mdns_reader_init(&r, out, len) < 0)
                    abort();
                while ((k = mdns_read_rr(&r, &rr)) > 0)
                    ;
                if (k < 0) /* what we write, we must read */
                    abort();
            }
        }
    /* The node collects it as an answer, fresh for every input. */
    mdns_collect_init(&c, "_kcrypt._tcp.local", "kms.local");
    mdns_collect_packet(&c, data, size, "10.0.0.2", 1);
    mdns_collect_packet(&c, data, size, "10.0.0.3", 1);
    if (mdns_collect_answers(&c, &ans, &n) == 0) {
        struct mdns_endpoint *e;
        size_t ne;
        if (mdns_endpoints_from_answers(ans, n, "http", "kms.local", "kms.local", 80, "/", &e, &ne) == 0)
            mdns_endpoints_free(e, ne);
        mdns_answers_free(ans, n);
    }
    mdns_collect_clear(&c);
    return 0;
}
