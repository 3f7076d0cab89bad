/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/plugin's parsers of what other processes send: the bytes as a plugin
 * response (host side), as an Event and as a payload (plugin side). A payload that parses must
 * survive a round trip through the builder of its shape. No file is ever opened ("file" is only
 * parsed), and none of these functions log.
 *   ./fuzz_plugin_response -max_total_time=60 tests/fuzz/corpus/plugin_response */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "plugin.h"
#include "plugin_internal.h"

static bool same(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

static void check_payload_round_trip(const struct plugin_payload *p)
{
    struct plugin_payload back;
    char *json = NULL;
    size_t len = 0;
    int r;

    if (p->shape == PLUGIN_SHAPE_G3)
        r = plugin_payload_g3(&p->part, p->challenger_server, p->mdns, &json, &len);
    else
        r = plugin_payload_g1(&p->part, &json, &len);
    if (r < 0 || plugin_payload_parse(json, len, &back) < 0)
        abort();
    /* A G3 payload with an empty partition comes back as G3 too: "partition" is always written. */
    if (back.shape != p->shape || !same(back.part.name, p->part.name) || !same(back.part.label, p->part.label) ||
        !same(back.part.partition_label, p->part.partition_label) || !same(back.part.uuid, p->part.uuid) ||
        !same(back.part.fs, p->part.fs) || back.part.size_bytes != p->part.size_bytes)
        abort();
    if (p->shape == PLUGIN_SHAPE_G1 &&
        (!same(back.part.mount_point, p->part.mount_point) || back.part.read_only != p->part.read_only))
        abort();
    if (p->shape == PLUGIN_SHAPE_G3 && (!same(back.challenger_server, p->challenger_server) || back.mdns != p->mdns))
        abort();
    plugin_payload_clear(&back);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct plugin_response resp;
    struct plugin_event ev;
    struct plugin_payload p;
    char line[64];

    if (plugin_response_parse(text, size, &resp) == 0) {
        if (!resp.state || !resp.data || !resp.error || !resp.log)
            abort(); /* a parsed response has every field, possibly empty */
        plugin_response_clear(&resp);
    }

    if (plugin_event_parse(text, size, &ev) == 0) {
        if (!ev.name || !ev.data || !ev.file || ev.data[ev.data_len] != '\0')
            abort();
        if (plugin_payload_parse(ev.data, ev.data_len, &p) == 0) {
            check_payload_round_trip(&p);
            plugin_payload_clear(&p);
        }
        plugin_event_clear(&ev);
    }

    if (plugin_payload_parse(text, size, &p) == 0) {
        check_payload_round_trip(&p);
        plugin_payload_clear(&p);
    }

    /* The error-line sanitizer sees plugin stderr verbatim. */
    plugin_one_line(text, size, line, sizeof(line));
    if (strlen(line) >= sizeof(line) || strchr(line, '\n'))
        abort();
    plugin_one_line(text, size, line, 5);
    return 0;
}
