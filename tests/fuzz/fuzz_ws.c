/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/net's WebSocket frame reader: the bytes (after a byte of options)
 * as frames from a client or from a server, fed in pieces like reads deliver them, with a small
 * message limit. Checks the bounds of every event, that text is UTF-8, that feeding in pieces
 * gives the same events as feeding whole, and that what we encode (data and close frames) reads
 * back unchanged; also the handshake key check.
 *   ./fuzz_ws -max_total_time=60 tests/fuzz/corpus/ws */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net_internal.h"

#define MAX_MESSAGE 4096

/* Runs the reader over data; returns a hash of the events and the final result. */
static uint64_t run(const uint8_t *data, size_t size, bool from_client, size_t step, int *result)
{
    struct ws_reader r;
    struct nbuf in = {0};
    uint64_t hash = 1469598103934665603ull;
    size_t fed = 0;
    int res = 0;

    ws_reader_init(&r, from_client, MAX_MESSAGE);
    while (res >= 0 && (fed < size || nbuf_unread(&in) > 0)) {
        if (fed < size) {
            size_t n = step && size - fed > step ? step : size - fed;
            nbuf_append(&in, data + fed, n);
            fed += n;
        }
        for (;;) {
            struct ws_event ev;
            size_t used;
            uint16_t code;
            res = ws_reader_next(&r, nbuf_head(&in), nbuf_unread(&in), &used, &ev, &code);
            if (res < 0) {
                if (code != 1002 && code != 1007 && code != 1009)
                    abort();
                hash = (hash ^ code) * 1099511628211ull;
                break;
            }
            if (used > nbuf_unread(&in))
                abort();
            nbuf_consume(&in, used);
            if (res == 1) {
                if (ev.kind == WS_EV_MESSAGE) {
                    if (ev.len > MAX_MESSAGE || (ev.opcode != WS_OP_TEXT && ev.opcode != WS_OP_BINARY))
                        abort();
                    if (ev.opcode == WS_OP_TEXT && !utf8_valid(ev.data, ev.len))
                        abort();
                } else if (ev.len > WS_MAX_CONTROL) {
                    abort();
                }
                hash = (hash ^ (uint64_t)ev.kind) * 1099511628211ull;
                for (size_t i = 0; i < ev.len; i++)
                    hash = (hash ^ ev.data[i]) * 1099511628211ull;
            }
            if (used == 0)
                break;
        }
        if (fed == size && res >= 0)
            break; /* the rest is an incomplete frame */
    }
    ws_reader_clear(&r);
    nbuf_free(&in);
    *result = res;
    return hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool from_client = data[0] & 1;
    size_t step = 1 + (data[0] >> 1) % 31;
    int r1, r2;
    uint64_t h1 = run(data + 1, size - 1, from_client, 0, &r1);
    uint64_t h2 = run(data + 1, size - 1, from_client, step, &r2);
    if (h1 != h2 || (r1 < 0) != (r2 < 0))
        abort();

    /* encode then decode: the same bytes come back, masked or not */
    static const uint8_t mask[4] = {1, 2, 3, 4};
    struct nbuf b = {0};
    struct ws_reader r;
    struct ws_event ev;
    size_t used;
    uint16_t code;
    size_t n = size - 1 > MAX_MESSAGE ? MAX_MESSAGE : size - 1;
    ws_frame_append(&b, WS_OP_BINARY, data + 1, n, from_client ? mask : NULL);
    ws_reader_init(&r, from_client, MAX_MESSAGE);
    if (ws_reader_next(&r, b.data, b.len, &used, &ev, &code) != 1 || used != b.len || ev.len != n ||
        memcmp(ev.data, data + 1, n) != 0)
        abort();
    ws_reader_clear(&r);
    nbuf_free(&b);

    /* A close frame we write, with the bytes as its reason: it reads back with its code, and a
     * reason that is UTF-8 stays UTF-8 when it is cut to fit (else the peer fails with 1007). */
    char reason[WS_MAX_CONTROL + 32];
    uint8_t payload[WS_MAX_CONTROL];
    size_t rl = size - 1 < sizeof(reason) - 1 ? size - 1 : sizeof(reason) - 1;
    memcpy(reason, data + 1, rl);
    reason[rl] = 0;
    size_t pl = ws_close_payload(payload, 1000, reason);
    if (pl > WS_MAX_CONTROL)
        abort();
    if (utf8_valid((const uint8_t *)reason, strlen(reason))) {
        b = (struct nbuf){0};
        ws_frame_append(&b, WS_OP_CLOSE, payload, pl, from_client ? mask : NULL);
        ws_reader_init(&r, from_client, MAX_MESSAGE);
        if (ws_reader_next(&r, b.data, b.len, &used, &ev, &code) != 1 || ev.kind != WS_EV_CLOSE || ev.code != 1000 ||
            ev.len != pl - 2 || memcmp(ev.data, reason, ev.len) != 0)
            abort();
        ws_reader_clear(&r);
        nbuf_free(&b);
    }
    /* The same bytes as a client's Sec-WebSocket-Key. */
    if (ws_key_valid(reason)) {
        char accept[WS_ACCEPT_LEN + 1];
        ws_accept_key(reason, accept);
        if (strlen(accept) != WS_ACCEPT_LEN)
            abort();
    }
    return 0;
}
