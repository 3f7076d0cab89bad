/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/plugin: the go-pluggable protocol of upstream Kairos (docs/upstream.md §4), both ends.
 *
 * Host side: find `kcrypt-discovery-*` executables, run one with the event name as argv[1] and the
 * Event JSON on stdin, read its EventResponse JSON from stdout. Unlike upstream (docs/upstream.md §8.5):
 * every run has a time limit after which the plugin's process group is killed, a plugin's failure
 * is an error returned to the caller (never an exit), plugins are asked one at a time in discovery
 * order, and non-executable files are skipped.
 *
 * Plugin side: read the Event from stdin (honouring "file"), decode either payload shape, write
 * the response; used by our own discovery-challenger applet.
 *
 * Uses lib/base and lib/json only. */
#ifndef KKMS_PLUGIN_H
#define KKMS_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define PLUGIN_PREFIX "kcrypt-discovery-"
#define PLUGIN_EVENT_PASSWORD "discovery.password"
/* A payload longer than this travels in a temporary file (go-pluggable maxMessageSize, docs/upstream.md §4.2). */
#define PLUGIN_MAX_INLINE_PAYLOAD 8192
/* Most bytes kept of a plugin's stdout (the response) and stderr (for error text). */
#define PLUGIN_MAX_STDOUT SPAWN_MAX_STDOUT
#define PLUGIN_MAX_STDERR SPAWN_MAX_STDERR
/* Largest Event (and payload file) the plugin side reads. */
#define PLUGIN_MAX_EVENT (1u << 20)
#define PLUGIN_MAX_PLUGINS 64
#define PLUGIN_DEFAULT_TIMEOUT_MS 60000
#define PLUGIN_DEFAULT_GRACE_MS 2000

/* The two shapes of the discovery.password payload (docs/upstream.md §4.4). */
enum plugin_shape {
    PLUGIN_SHAPE_G1 = 0, /* jaypipes/ghw block.Partition: upstream kcrypt <= v0.15 and G1/G2 plugins */
    PLUGIN_SHAPE_G3 = 1, /* kairos-sdk DiscoveryPasswordPayload: G3 plugins (they refuse G1) */
};

struct plugin_opts {
    /* Prefix of the fixed directories (/sysroot/system/discovery, /system/discovery, /oem/kcrypt,
     * /oem/system/discovery); NULL or "" = the real root. Not applied to $PATH or dirs, but when
     * set every plugin found must resolve (symlinks followed) to a file under it. */
    const char *root;
    /* ':'-separated directories searched first; NULL = $PATH. Empty entries are skipped. */
    const char *path;
    /* Directories searched after the fixed ones, as given (kcrypt --plugin-dir; "." for the
     * working directory, which is otherwise not searched). */
    const char *const *dirs;
    size_t n_dirs;
    /* Wall-clock limit of one plugin run; 0 = PLUGIN_DEFAULT_TIMEOUT_MS. */
    int64_t timeout_ms;
    /* Between SIGTERM and SIGKILL to the plugin's process group; 0 = PLUGIN_DEFAULT_GRACE_MS. */
    int64_t grace_ms;
    /* Payload shape plugin_get_password sends. One shape per run: a G1 plugin reads a G3 payload
     * as an empty partition and a G3 plugin refuses a G1 payload (docs/upstream.md §1.1), and the two cannot be
     * merged into one object (both use "name"/"label"/"uuid" with other meanings). The default
     * (zero) is G1, because the G1 protocol is our default and upstream G1 plugins expect it. */
    enum plugin_shape shape;
    /* G3 payload only: "challenger_server" (omitted when NULL or empty) and "mdns" (when true). */
    const char *challenger_server;
    bool mdns;
};

/* The partition a password is asked for. NULL strings are sent as empty. */
struct plugin_partition {
    const char *name;            /* kernel name, "vda5" */
    const char *label;           /* filesystem label (ID_FS_LABEL), "COS_PERSISTENT" */
    const char *partition_label; /* GPT partition name (ID_PART_ENTRY_NAME), "persistent" */
    const char *uuid;            /* PARTUUID */
    uint64_t size_bytes;
    const char *fs;          /* filesystem type, "crypto_LUKS" */
    const char *mount_point; /* G1 only */
    bool read_only;          /* G1 only */
};

/* ---- host side ---- */

struct plugin {
    char *name; /* basename minus PLUGIN_PREFIX */
    char *path;
};

struct plugin_list {
    size_t n;
    struct plugin *items;
};

/* Finds the plugins in upstream's order: $PATH (or o->path), then root/sysroot/system/discovery,
 * root/system/discovery, root/oem/kcrypt, root/oem/system/discovery, then o->dirs (upstream's
 * last place, the working directory, only when listed there); names sorted within a directory; a
 * name already found is skipped (first wins); only executable regular files count. When running
 * as root, only files owned by root and not writable by group or others, in directories only root
 * can change, count; with o->root, only files resolving under it. Each file skipped for those
 * reasons is logged as a warning naming why. An empty list is not an error; -errno when o->root
 * cannot be resolved. Free with plugin_list_clear. */
int plugin_discover(const struct plugin_opts *o, struct plugin_list *out);
void plugin_list_clear(struct plugin_list *l);

/* A plugin's answer (docs/upstream.md §4.2 EventResponse); data is kept as a secret. */
struct plugin_response {
    char *state;
    struct secret *data;
    char *error;
    char *log;
};
void plugin_response_clear(struct plugin_response *r);

/* Parses an EventResponse as Go does: keys case-insensitive, unknown keys ignored, missing or
 * null = empty, `null` as a whole = all empty. -EBADMSG: not JSON; -EINVAL: a field is not a
 * string or the document is not an object. Does not log. */
int plugin_response_parse(const char *buf, size_t len, struct plugin_response *r);

/* The Event JSON go-pluggable writes to stdin (docs/upstream.md §4.2), exactly:
 * {"name":"<event>","data":"<payload>","file":"<file>"}. *out is malloc'd, owned by the caller. */
int plugin_event_json(const char *event, const char *data, size_t data_len, const char *file, char **out,
                      size_t *out_len);

/* Runs the plugin at path for event with payload (JSON text, len bytes): argv = {path, event},
 * environment inherited, Event on stdin (payload in a 0600 temporary file when longer than
 * PLUGIN_MAX_INLINE_PAYLOAD, removed afterwards), response from stdout. 0 when the plugin exited 0
 * with a valid response, whose "error" may still be set. Otherwise logs one line naming the
 * plugin and the reason and returns: -ETIMEDOUT (killed at the limit), -EPROTO (non-zero exit or
 * killed by a signal), -EBADMSG (not JSON, or more than PLUGIN_MAX_STDOUT), -EINVAL (bad field
 * types), or the errno of a failed exec/pipe/fork. */
int plugin_run(const struct plugin_opts *o, const char *path, const char *event, const char *payload, size_t len,
               struct plugin_response *resp);

/* Asks one plugin for the password of a partition described by payload: plugin_run, then
 * -EREMOTEIO when the response carries an error, -ENODATA when data is empty (each logged).
 * The password is used verbatim, as upstream does; *out is the caller's. */
int plugin_password(const struct plugin_opts *o, const char *path, const char *payload, size_t len,
                    struct secret **out);

/* Builds the payload in o->shape, then asks every discovered plugin in order until one returns a
 * password. A failing plugin is logged (a warning when others remain) and the next one is tried;
 * -ENOENT when there is no plugin, else the last plugin's error. */
int plugin_get_password(const struct plugin_opts *o, const struct plugin_partition *p, struct secret **out);

/* ---- payloads (docs/upstream.md §4.4) ---- */

/* G1: {"name","label","mount_point","size_bytes","type","read_only","uuid","filesystem_label"},
 * every key present, in that order; label = partition label, filesystem_label = FS label. */
int plugin_payload_g1(const struct plugin_partition *p, char **out, size_t *out_len);
/* G3: {"partition":{"name","partition_label","label","size","fs","uuid"},"challenger_server","mdns"}
 * with Go's omitempty: empty strings, size 0 (MiB, rounded down), empty server and false mdns are
 * left out; "partition" is always there. */
int plugin_payload_g3(const struct plugin_partition *p, const char *challenger_server, bool mdns, char **out,
                      size_t *out_len);

/* ---- plugin side ---- */

struct plugin_event {
    char *name;
    char *data; /* the payload; NUL-terminated */
    size_t data_len;
    char *file; /* the "file" field as received; "" when the payload came inline */
};
void plugin_event_clear(struct plugin_event *ev);

/* Parses an Event (Go semantics as for responses). Does not read "file". -EBADMSG, -EINVAL. */
int plugin_event_parse(const char *buf, size_t len, struct plugin_event *ev);
/* Replaces ev->data with the content of ev->file when it is set (a regular file of at most
 * PLUGIN_MAX_EVENT bytes; the host removes it). Logs on error. */
int plugin_event_load_file(struct plugin_event *ev);
/* Reads fd to EOF (at most PLUGIN_MAX_EVENT bytes), parses the Event and loads its file. Logs. */
int plugin_event_read(int fd, struct plugin_event *ev);

/* A payload as received, in either shape. Strings are owned (never NULL) and freed by
 * plugin_payload_clear; part's pointers refer to them. */
struct plugin_payload {
    enum plugin_shape shape; /* G3 when "partition" is an object, else G1 */
    struct plugin_partition part;
    const char *challenger_server; /* G3 only; "" otherwise */
    bool mdns;                     /* G3 only */
    char *owned[8];
};
/* Decodes a payload; G3 size (MiB) is returned in part.size_bytes as bytes. -EBADMSG: not JSON;
 * -EINVAL: not an object or a field of the wrong type. Does not log. */
int plugin_payload_parse(const char *data, size_t len, struct plugin_payload *out);
void plugin_payload_clear(struct plugin_payload *p);

/* Writes {"state":..,"data":..,"error":..,"log":..} (Go's EventResponse, all keys, no newline) to
 * fd; NULL strings and a NULL secret are written as "". The encoded text is wiped afterwards. */
int plugin_response_write(int fd, const char *state, const struct secret *data, const char *error, const char *log);

#endif
