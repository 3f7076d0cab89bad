/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The host side of go-pluggable (docs/upstream.md §4.2, §4.3): build the Event, run the plugin, read
 * the EventResponse, and turn every way a plugin can fail into one error line for the caller. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kjson.h"
#include "plugin_internal.h"

void plugin_one_line(const char *text, size_t len, char *out, size_t n)
{
    size_t w = 0, i = 0;

    if (n < 4) {
        if (n)
            out[0] = '\0';
        return;
    }
    for (; i < len && text[i] != '\n' && w + 1 < n; i++) {
        unsigned char c = (unsigned char)text[i];
        out[w++] = c == '\t' || c == '\r' ? ' ' : c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (i < len && text[i] != '\n') /* the line goes on past what fits */
        memcpy(out + n - 4, "...", 3), w = n - 1;
    while (w > 0 && out[w - 1] == ' ')
        w--;
    out[w] = '\0';
}

int plugin_event_json(const char *event, const char *data, size_t data_len, const char *file, char **out,
                      size_t *out_len)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    const char *text;
    size_t len;
    int r;

    kjson_w_obj_begin(w);
    kjson_w_kv_str(w, "name", event);
    kjson_w_key(w, "data");
    kjson_w_strn(w, data, data_len);
    kjson_w_kv_str(w, "file", file);
    kjson_w_obj_end(w);
    r = kjson_w_result(w, &text, &len);
    if (r < 0)
        return r;
    *out = xmalloc(len + 1);
    memcpy(*out, text, len + 1);
    if (out_len)
        *out_len = len;
    return 0;
}

void plugin_response_clear(struct plugin_response *r)
{
    free(r->state);
    secret_free(r->data);
    free(r->error);
    free(r->log);
    memset(r, 0, sizeof(*r));
}

int plugin_response_parse(const char *buf, size_t len, struct plugin_response *r)
{
    _cleanup_kjson_ struct kjson_doc *d = NULL;
    enum kjson_type t;
    int e;

    memset(r, 0, sizeof(*r));
    e = kjson_parse(buf, len, NULL, &d, NULL);
    if (e < 0)
        return e == -E2BIG ? -E2BIG : -EBADMSG;
    t = kjson_type(d, KJSON_ROOT);
    if (t == KJSON_NULL) {
        /* Go: unmarshalling null into a struct leaves it empty. */
        r->state = xstrdup("");
        r->data = secret_new(0);
        r->error = xstrdup("");
        r->log = xstrdup("");
        return 0;
    }
    if (t != KJSON_OBJECT)
        return -EINVAL;
    if (kjson_get_str(d, KJSON_ROOT, "state", KJSON_FOLD, &r->state) < 0 ||
        kjson_get_secret(d, KJSON_ROOT, "data", KJSON_FOLD, &r->data) < 0 ||
        kjson_get_str(d, KJSON_ROOT, "error", KJSON_FOLD, &r->error) < 0 ||
        kjson_get_str(d, KJSON_ROOT, "log", KJSON_FOLD, &r->log) < 0) {
        plugin_response_clear(r);
        return -EINVAL;
    }
    return 0;
}

/* "60 s", "1.5 s", "0.25 s" */
static void format_seconds(int64_t ms, char *out, size_t n)
{
    int len = snprintf(out, n, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
    while (len > 0 && (size_t)len < n && out[len - 1] == '0')
        out[--len] = '\0';
    if (len > 0 && (size_t)len < n && out[len - 1] == '.')
        out[--len] = '\0';
    snprintf(out + len, n - (size_t)len, " s");
}

/* Writes the payload to a fresh 0600 file in $TMPDIR (or /tmp), as go-pluggable does for large
 * payloads; path gets its name. */
static int write_payload_file(const char *payload, size_t len, char *path, size_t path_len, char *why, size_t why_len)
{
    const char *dir = getenv("TMPDIR");
    int fd, r;

    if (!dir || !*dir)
        dir = "/tmp";
    if ((size_t)snprintf(path, path_len, "%s/pluggableXXXXXX", dir) >= path_len) {
        snprintf(why, why_len, "temporary directory name too long");
        return -ENAMETOOLONG;
    }
    /* mkostemp: O_CREAT|O_EXCL, mode 0600. */
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        snprintf(why, why_len, "cannot create payload file in %s: %s", dir, strerror(-r));
        path[0] = '\0';
        return r;
    }
    r = fd_write_all(fd, payload, len);
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r < 0) {
        snprintf(why, why_len, "cannot write payload file %s: %s", path, strerror(-r));
        unlink(path);
        path[0] = '\0';
    }
    return r;
}

/* plugin_run without the logging: the reason goes to why. */
static int run_plugin(const struct plugin_opts *o, const char *path, const char *event, const char *payload, size_t len,
                      struct plugin_response *resp, char *why, size_t why_len)
{
    int64_t timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : PLUGIN_DEFAULT_TIMEOUT_MS;
    int64_t grace_ms = o && o->grace_ms > 0 ? o->grace_ms : PLUGIN_DEFAULT_GRACE_MS;
    char file[4096] = "", line[320], secs[32];
    char *argv[] = {(char *)path, (char *)event, NULL};
    _cleanup_free_ char *ev = NULL;
    struct spawn_result res;
    size_t ev_len;
    int r;

    memset(resp, 0, sizeof(*resp));
    if (len > PLUGIN_MAX_INLINE_PAYLOAD) {
        r = write_payload_file(payload, len, file, sizeof(file), why, why_len);
        if (r < 0)
            return r;
        r = plugin_event_json(event, "", 0, file, &ev, &ev_len);
    } else {
        r = plugin_event_json(event, payload, len, "", &ev, &ev_len);
    }
    if (r < 0) {
        snprintf(why, why_len, "cannot encode the event");
        goto out;
    }

    r = spawn_run(argv, ev, ev_len, timeout_ms, grace_ms, &res, why, why_len);
    if (r < 0)
        goto out;
    plugin_one_line(res.err, res.err_len, line, sizeof(line));

    if (res.stdout_overflow) {
        snprintf(why, why_len, "printed more than %u bytes on stdout", PLUGIN_MAX_STDOUT);
        r = -EBADMSG;
    } else if (res.timed_out) {
        /* What the plugin said last tells why it was still busy (a KMS not answering...). */
        size_t end = res.err_len, start;
        char last[256];
        while (end > 0 && (res.err[end - 1] == '\n' || res.err[end - 1] == '\r'))
            end--;
        for (start = end; start > 0 && res.err[start - 1] != '\n'; start--)
            ;
        plugin_one_line(res.err + start, end - start, last, sizeof(last));
        format_seconds(timeout_ms, secs, sizeof(secs));
        snprintf(why, why_len, "timed out after %s%s%s", secs, *last ? "; it last said: " : "", last);
        r = -ETIMEDOUT;
    } else if (WIFSIGNALED(res.status)) {
        snprintf(why, why_len, "killed by signal %d (%s)%s%s", WTERMSIG(res.status), strsignal(WTERMSIG(res.status)),
                 *line ? ": " : "", line);
        r = -EPROTO;
    } else if (!WIFEXITED(res.status) || WEXITSTATUS(res.status) != 0) {
        snprintf(why, why_len, "exited with status %d%s%s", WEXITSTATUS(res.status), *line ? ": " : "", line);
        r = -EPROTO;
    } else {
        r = plugin_response_parse((const char *)res.out->data, res.out->len, resp);
        if (r == -EBADMSG)
            snprintf(why, why_len, "response is not JSON%s%s", *line ? "; stderr: " : "", line);
        else if (r == -E2BIG)
            snprintf(why, why_len, "response exceeds the JSON limits");
        else if (r < 0)
            snprintf(why, why_len, "response is not a JSON object of string fields");
        else if (*resp->log && log_get_level() >= LOG_DEBUG) {
            plugin_one_line(resp->log, strlen(resp->log), line, sizeof(line));
            log_debug("plugin %s: log: %s", path, line);
        }
    }
    spawn_result_clear(&res);
out:
    if (*file)
        unlink(file); /* after the plugin has exited, as upstream does */
    return r;
}

int plugin_run(const struct plugin_opts *o, const char *path, const char *event, const char *payload, size_t len,
               struct plugin_response *resp)
{
    char why[512];
    int r = run_plugin(o, path, event, payload, len, resp, why, sizeof(why));
    if (r < 0)
        return log_error_errno(r, "plugin %s: %s", path, why);
    return 0;
}

static int ask_password(const struct plugin_opts *o, const char *path, const char *payload, size_t len,
                        struct secret **out, char *why, size_t why_len)
{
    struct plugin_response resp;
    char line[320];
    int r = run_plugin(o, path, PLUGIN_EVENT_PASSWORD, payload, len, &resp, why, why_len);

    if (r < 0)
        return r;
    if (*resp.error) {
        plugin_one_line(resp.error, strlen(resp.error), line, sizeof(line));
        snprintf(why, why_len, "error: %s", line);
        r = -EREMOTEIO;
    } else if (resp.data->len == 0) {
        snprintf(why, why_len, "returned an empty password");
        r = -ENODATA;
    } else {
        *out = TAKE_PTR(resp.data);
    }
    plugin_response_clear(&resp);
    return r;
}

int plugin_password(const struct plugin_opts *o, const char *path, const char *payload, size_t len, struct secret **out)
{
    char why[512];
    int r = ask_password(o, path, payload, len, out, why, sizeof(why));
    if (r < 0)
        return log_error_errno(r, "plugin %s: %s", path, why);
    return 0;
}

int plugin_get_password(const struct plugin_opts *o, const struct plugin_partition *p, struct secret **out)
{
    static const struct plugin_opts defaults;
    struct plugin_list list = {0};
    _cleanup_free_ char *payload = NULL;
    size_t len = 0;
    char why[512];
    int r;

    if (!o)
        o = &defaults;
    if (o->shape == PLUGIN_SHAPE_G3)
        r = plugin_payload_g3(p, o->challenger_server, o->mdns, &payload, &len);
    else
        r = plugin_payload_g1(p, &payload, &len);
    if (r < 0)
        return log_error_errno(r, "cannot encode the discovery.password payload");
    r = plugin_discover(o, &list);
    if (r < 0)
        return r;
    if (list.n == 0)
        return log_error_errno(-ENOENT,
                               "no discovery plugin found (%s* in $PATH, /sysroot/system/discovery, "
                               "/system/discovery, /oem/kcrypt, /oem/system/discovery or a "
                               "--plugin-dir)",
                               PLUGIN_PREFIX);
    for (size_t i = 0; i < list.n; i++) {
        r = ask_password(o, list.items[i].path, payload, len, out, why, sizeof(why));
        if (r == 0) {
            log_debug("password for %s from plugin %s", p->label ? p->label : "?", list.items[i].path);
            break;
        }
        log_msg(i + 1 < list.n ? LOG_WARN : LOG_ERR, "plugin %s: %s", list.items[i].path, why);
    }
    plugin_list_clear(&list);
    return r;
}
