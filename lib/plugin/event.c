/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The plugin side of go-pluggable (PluginFactory.Run, docs/upstream.md §4.2): read the Event from
 * stdin, take the payload from "file" when the host sent it that way, write the EventResponse. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kjson.h"
#include "plugin_internal.h"

void plugin_event_clear(struct plugin_event *ev)
{
    free(ev->name);
    free(ev->data);
    free(ev->file);
    memset(ev, 0, sizeof(*ev));
}

/* A string member with its length (the payload may be any bytes); missing or null = "". */
static int member_bytes(const struct kjson_doc *d, int obj, const char *key, char **out, size_t *len)
{
    int v = obj >= 0 ? kjson_get(d, obj, key, KJSON_FOLD) : -ENOENT;
    if (v == -ENOENT || kjson_type(d, v) == KJSON_NULL) {
        *out = xstrdup("");
        *len = 0;
        return 0;
    }
    return kjson_str(d, v, out, len);
}

int plugin_event_parse(const char *buf, size_t len, struct plugin_event *ev)
{
    _cleanup_kjson_ struct kjson_doc *d = NULL;
    enum kjson_type t;
    int obj = KJSON_ROOT, r;
    size_t n;

    memset(ev, 0, sizeof(*ev));
    r = kjson_parse(buf, len, NULL, &d, NULL);
    if (r < 0)
        return r == -E2BIG ? -E2BIG : -EBADMSG;
    t = kjson_type(d, KJSON_ROOT);
    if (t == KJSON_NULL)
        obj = -1;
    else if (t != KJSON_OBJECT)
        return -EINVAL;
    if (member_bytes(d, obj, "name", &ev->name, &n) < 0 || memchr(ev->name, 0, n) ||
        member_bytes(d, obj, "data", &ev->data, &ev->data_len) < 0 || member_bytes(d, obj, "file", &ev->file, &n) < 0 ||
        memchr(ev->file, 0, n)) {
        plugin_event_clear(ev);
        return -EINVAL;
    }
    return 0;
}

int plugin_event_load_file(struct plugin_event *ev)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *buf = NULL;
    struct stat st;
    size_t len = 0;

    if (!ev->file || !*ev->file)
        return 0;
    /* O_NONBLOCK: a FIFO named here must not hang us; only a regular file is accepted. */
    fd = open(ev->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return log_error_errno(-errno, "cannot open payload file %s: %m", ev->file);
    if (fstat(fd, &st) < 0)
        return log_error_errno(-errno, "cannot stat payload file %s: %m", ev->file);
    if (!S_ISREG(st.st_mode))
        return log_error_errno(-EINVAL, "payload file %s is not a regular file", ev->file);
    if (st.st_size > PLUGIN_MAX_EVENT)
        return log_error_errno(-EFBIG, "payload file %s is larger than %u bytes", ev->file, PLUGIN_MAX_EVENT);
    buf = xmalloc(PLUGIN_MAX_EVENT + 2);
    for (;;) {
        ssize_t n = read(fd, buf + len, PLUGIN_MAX_EVENT + 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return log_error_errno(-errno, "cannot read payload file %s: %m", ev->file);
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > PLUGIN_MAX_EVENT)
            return log_error_errno(-EFBIG, "payload file %s is larger than %u bytes", ev->file, PLUGIN_MAX_EVENT);
    }
    buf[len] = '\0';
    free(ev->data);
    ev->data = TAKE_PTR(buf);
    ev->data_len = len;
    return 0;
}

int plugin_event_read(int fd, struct plugin_event *ev)
{
    _cleanup_free_ char *buf = xmalloc(PLUGIN_MAX_EVENT + 2);
    size_t len = 0;
    int r;

    memset(ev, 0, sizeof(*ev));
    for (;;) {
        ssize_t n = read(fd, buf + len, PLUGIN_MAX_EVENT + 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return log_error_errno(-errno, "cannot read the event from stdin: %m");
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > PLUGIN_MAX_EVENT)
            return log_error_errno(-EFBIG, "event on stdin is larger than %u bytes", PLUGIN_MAX_EVENT);
    }
    r = plugin_event_parse(buf, len, ev);
    if (r == -EBADMSG || r == -E2BIG)
        return log_error_errno(r, "event on stdin is not JSON");
    if (r < 0)
        return log_error_errno(r, "event on stdin is not an object of string fields");
    r = plugin_event_load_file(ev);
    if (r < 0)
        plugin_event_clear(ev);
    return r;
}

int plugin_response_write(int fd, const char *state, const struct secret *data, const char *error, const char *log)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    const char *text;
    size_t len;
    int r;

    /* go-pluggable EventResponse: state, data, error, log; no omitempty, no trailing newline. */
    kjson_w_obj_begin(w);
    kjson_w_kv_str(w, "state", state);
    kjson_w_key(w, "data");
    kjson_w_strn(w, data ? data->data : NULL, data ? data->len : 0);
    kjson_w_kv_str(w, "error", error);
    kjson_w_kv_str(w, "log", log);
    kjson_w_obj_end(w);
    r = kjson_w_result(w, &text, &len);
    if (r < 0)
        return log_error_errno(r, "cannot encode the plugin response");
    r = fd_write_all(fd, text, len);
    if (r < 0)
        return log_error_errno(r, "cannot write the plugin response: %m");
    return 0;
}
