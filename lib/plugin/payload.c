/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The two shapes of the discovery.password payload (docs/upstream.md §4.4), written exactly as Go's
 * json.Marshal writes them and read the way Go's json.Unmarshal reads them. */
#include <string.h>

#include "kjson.h"
#include "plugin_internal.h"

#define MIB (1024u * 1024u)

static int take(struct kjson_w *w, char **out, size_t *out_len)
{
    const char *text;
    size_t len;
    int r = kjson_w_result(w, &text, &len);
    if (r < 0)
        return r;
    *out = xmalloc(len + 1);
    memcpy(*out, text, len + 1);
    if (out_len)
        *out_len = len;
    return 0;
}

int plugin_payload_g1(const struct plugin_partition *p, char **out, size_t *out_len)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();

    /* jaypipes/ghw block.Partition: no omitempty, this field order. */
    kjson_w_obj_begin(w);
    kjson_w_kv_str(w, "name", p->name);
    kjson_w_kv_str(w, "label", p->partition_label);
    kjson_w_kv_str(w, "mount_point", p->mount_point);
    kjson_w_kv_uint(w, "size_bytes", p->size_bytes);
    kjson_w_kv_str(w, "type", p->fs);
    kjson_w_kv_bool(w, "read_only", p->read_only);
    kjson_w_kv_str(w, "uuid", p->uuid);
    kjson_w_kv_str(w, "filesystem_label", p->label);
    kjson_w_obj_end(w);
    return take(w, out, out_len);
}

static void kv_nonempty(struct kjson_w *w, const char *key, const char *s)
{
    if (s && *s)
        kjson_w_kv_str(w, key, s);
}

int plugin_payload_g3(const struct plugin_partition *p, const char *challenger_server, bool mdns, char **out,
                      size_t *out_len)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();

    /* kairos-sdk DiscoveryPasswordPayload{Partition *partitions.Partition, ChallengerServer,
     * MDNS}; every Partition field is omitempty and flags are never set here. Size is MiB,
     * rounded down as kairos-sdk's ghw code does. */
    kjson_w_obj_begin(w);
    kjson_w_key(w, "partition");
    kjson_w_obj_begin(w);
    kv_nonempty(w, "name", p->name);
    kv_nonempty(w, "partition_label", p->partition_label);
    kv_nonempty(w, "label", p->label);
    if (p->size_bytes / MIB)
        kjson_w_kv_uint(w, "size", p->size_bytes / MIB);
    kv_nonempty(w, "fs", p->fs);
    kv_nonempty(w, "uuid", p->uuid);
    kjson_w_obj_end(w);
    kv_nonempty(w, "challenger_server", challenger_server);
    if (mdns)
        kjson_w_kv_bool(w, "mdns", true);
    kjson_w_obj_end(w);
    return take(w, out, out_len);
}

void plugin_payload_clear(struct plugin_payload *p)
{
    for (size_t i = 0; i < sizeof(p->owned) / sizeof(p->owned[0]); i++)
        free(p->owned[i]);
    memset(p, 0, sizeof(*p));
}

/* Reads string member key of obj into the next owned slot and points *field at it. */
static int own_str(struct plugin_payload *p, size_t *slot, const struct kjson_doc *d, int obj, const char *key,
                   const char **field)
{
    char *s = NULL;
    int r = obj >= 0 ? kjson_get_str(d, obj, key, KJSON_FOLD, &s) : (s = xstrdup(""), 0);
    if (r < 0)
        return r;
    p->owned[(*slot)++] = s;
    *field = s;
    return 0;
}

int plugin_payload_parse(const char *data, size_t len, struct plugin_payload *out)
{
    _cleanup_kjson_ struct kjson_doc *d = NULL;
    struct plugin_partition *part = &out->part;
    const char *server = NULL;
    size_t slot = 0;
    int obj = KJSON_ROOT, pobj, r;
    enum kjson_type t;
    uint64_t size = 0;

    memset(out, 0, sizeof(*out));
    r = kjson_parse(data, len, NULL, &d, NULL);
    if (r < 0)
        return r == -E2BIG ? -E2BIG : -EBADMSG;
    t = kjson_type(d, KJSON_ROOT);
    if (t == KJSON_NULL)
        obj = -1; /* Go: null leaves everything empty */
    else if (t != KJSON_OBJECT)
        return -EINVAL;

    pobj = obj >= 0 ? kjson_get(d, obj, "partition", KJSON_FOLD) : -ENOENT;
    if (pobj >= 0 && kjson_type(d, pobj) == KJSON_OBJECT) {
        int flags;
        out->shape = PLUGIN_SHAPE_G3;
        if ((r = own_str(out, &slot, d, pobj, "name", &part->name)) < 0 ||
            (r = own_str(out, &slot, d, pobj, "partition_label", &part->partition_label)) < 0 ||
            (r = own_str(out, &slot, d, pobj, "label", &part->label)) < 0 ||
            (r = own_str(out, &slot, d, pobj, "fs", &part->fs)) < 0 ||
            (r = own_str(out, &slot, d, pobj, "uuid", &part->uuid)) < 0 ||
            (r = own_str(out, &slot, d, -1, NULL, &part->mount_point)) < 0 ||
            (r = own_str(out, &slot, d, obj, "challenger_server", &server)) < 0 ||
            (r = kjson_get_uint64(d, pobj, "size", KJSON_FOLD, &size)) < 0 ||
            (r = kjson_get_bool(d, obj, "mdns", KJSON_FOLD, &out->mdns)) < 0)
            goto fail;
        /* flags: []string, unused here, but Go refuses other types. */
        flags = kjson_get(d, pobj, "flags", KJSON_FOLD);
        if (flags >= 0 && kjson_type(d, flags) != KJSON_NULL) {
            if (kjson_type(d, flags) != KJSON_ARRAY) {
                r = -EINVAL;
                goto fail;
            }
            for (int e = kjson_next(d, flags, -1); e >= 0; e = kjson_next(d, flags, e))
                if (kjson_type(d, e) != KJSON_STRING && kjson_type(d, e) != KJSON_NULL) {
                    r = -EINVAL;
                    goto fail;
                }
        }
        if (size > UINT64_MAX / MIB) {
            r = -EINVAL;
            goto fail;
        }
        part->size_bytes = size * MIB;
    } else {
        out->shape = PLUGIN_SHAPE_G1;
        if ((r = own_str(out, &slot, d, obj, "name", &part->name)) < 0 ||
            (r = own_str(out, &slot, d, obj, "label", &part->partition_label)) < 0 ||
            (r = own_str(out, &slot, d, obj, "mount_point", &part->mount_point)) < 0 ||
            (r = own_str(out, &slot, d, obj, "type", &part->fs)) < 0 ||
            (r = own_str(out, &slot, d, obj, "uuid", &part->uuid)) < 0 ||
            (r = own_str(out, &slot, d, obj, "filesystem_label", &part->label)) < 0 ||
            (r = own_str(out, &slot, d, -1, NULL, &server)) < 0)
            goto fail;
        if (obj >= 0 && ((r = kjson_get_uint64(d, obj, "size_bytes", KJSON_FOLD, &part->size_bytes)) < 0 ||
                         (r = kjson_get_bool(d, obj, "read_only", KJSON_FOLD, &part->read_only)) < 0))
            goto fail;
    }
    out->challenger_server = server;
    return 0;
fail:
    plugin_payload_clear(out);
    return r == -ERANGE ? -EINVAL : r;
}
