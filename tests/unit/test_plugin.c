/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/plugin against real processes: the shell plugins in tests/data/plugins, temporary plugin
 * trees for discovery, and the exact bytes upstream's Go code exchanges (docs/upstream.md §4). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"
#include "plugin.h"
#include "tap.h"

static char tmpdir[1024];

static const char *plug(const char *name)
{
    static char path[4096];
    char rel[256];
    snprintf(rel, sizeof(rel), "plugins/%s", name);
    snprintf(path, sizeof(path), "%s", tap_data(rel));
    return path;
}

static const char *tmp_path(const char *name)
{
    static char path[2][4096];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof(path[k]), "%s/%s", tmpdir, name);
    return path[k];
}

/* ---- stderr capture, to check the one-line error messages ---- */

static int saved_stderr = -1;
static char capture_file[4096];

static void capture_begin(void)
{
    int fd;
    snprintf(capture_file, sizeof(capture_file), "%s/stderr.txt", tmpdir);
    fd = open(capture_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(void)
{
    char *text = NULL;
    dup2(saved_stderr, 2);
    close(saved_stderr);
    if (file_read_all(capture_file, 1 << 20, &text, NULL) < 0)
        text = xstrdup("");
    return text;
}

static bool contains(const char *hay, const char *needle)
{
    bool ok = strstr(hay, needle) != NULL;
    if (!ok)
        printf("# expected \"%s\" in: %s\n", needle, hay);
    return ok;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The process group pgid no longer exists (orphans reparented to us, a subreaper, are reaped). */
static bool group_gone(pid_t pgid, int64_t wait_ms)
{
    int64_t until = now_ms() + wait_ms;
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (kill(-pgid, 0) < 0 && errno == ESRCH)
            return true;
        if (now_ms() > until)
            return false;
        usleep(10000);
    }
}

static pid_t read_pid(const char *file)
{
    char *text = NULL;
    long pid = 0;
    if (file_read_all(file, 64, &text, NULL) == 0)
        pid = strtol(text, NULL, 10);
    free(text);
    return (pid_t)pid;
}

static bool secret_is(const struct secret *s, const char *want)
{
    return s && s->len == strlen(want) && !memcmp(s->data, want, s->len);
}

static const struct plugin_partition persistent = {
    .name = "vda5",
    .label = "COS_PERSISTENT",
    .partition_label = "persistent",
    .uuid = "8f2a4d52-4b0e-4e2a-9d8e-2c1f0a5b6c7d",
    .size_bytes = 53687091200ull,
    .fs = "crypto_LUKS",
    .mount_point = "",
};

#define G1_PAYLOAD                                                                                    \
    "{\"name\":\"vda5\",\"label\":\"persistent\",\"mount_point\":\"\",\"size_bytes\":53687091200,"    \
    "\"type\":\"crypto_LUKS\",\"read_only\":false,\"uuid\":\"8f2a4d52-4b0e-4e2a-9d8e-2c1f0a5b6c7d\"," \
    "\"filesystem_label\":\"COS_PERSISTENT\"}"
#define G3_PAYLOAD                                                                                       \
    "{\"partition\":{\"name\":\"vda5\",\"partition_label\":\"persistent\",\"label\":\"COS_PERSISTENT\"," \
    "\"size\":51200,\"fs\":\"crypto_LUKS\",\"uuid\":\"8f2a4d52-4b0e-4e2a-9d8e-2c1f0a5b6c7d\"},"          \
    "\"challenger_server\":\"http://10.0.0.1:30000\",\"mdns\":true}"
/* The same G1 payload as the Event carries it: a JSON string inside the Event JSON. */
#define G1_EVENT                                                                                       \
    "{\"name\":\"discovery.password\",\"data\":\"{\\\"name\\\":\\\"vda5\\\",\\\"label\\\":"            \
    "\\\"persistent\\\",\\\"mount_point\\\":\\\"\\\",\\\"size_bytes\\\":53687091200,\\\"type\\\":"     \
    "\\\"crypto_LUKS\\\",\\\"read_only\\\":false,\\\"uuid\\\":"                                        \
    "\\\"8f2a4d52-4b0e-4e2a-9d8e-2c1f0a5b6c7d\\\",\\\"filesystem_label\\\":\\\"COS_PERSISTENT\\\"}\"," \
    "\"file\":\"\"}"

static void test_payloads(void)
{
    char *out = NULL;
    size_t len = 0;

    CHECK(plugin_payload_g1(&persistent, &out, &len) == 0 && !strcmp(out, G1_PAYLOAD) && len == strlen(out),
          "G1 payload is ghw block.Partition: every key, Go's order (docs/upstream.md §4.4 example)");
    free(out);
    CHECK(plugin_payload_g3(&persistent, "http://10.0.0.1:30000", true, &out, &len) == 0 && !strcmp(out, G3_PAYLOAD),
          "G3 payload is DiscoveryPasswordPayload with size in MiB (docs/upstream.md §4.4 example)");
    free(out);
    CHECK(plugin_payload_g3(&(struct plugin_partition){.label = "COS_OEM", .size_bytes = 1048575}, NULL, false, &out,
                            &len) == 0 &&
              !strcmp(out, "{\"partition\":{\"label\":\"COS_OEM\"}}"),
          "G3 payload omits empty fields, size under 1 MiB, empty server and false mdns (omitempty)");
    free(out);
    CHECK(plugin_payload_g1(&(struct plugin_partition){0}, &out, &len) == 0 &&
              !strcmp(out, "{\"name\":\"\",\"label\":\"\",\"mount_point\":\"\",\"size_bytes\":0,\"type\":\"\","
                           "\"read_only\":false,\"uuid\":\"\",\"filesystem_label\":\"\"}"),
          "G1 payload of an empty partition still has every key");
    free(out);

    CHECK(plugin_event_json(PLUGIN_EVENT_PASSWORD, G1_PAYLOAD, strlen(G1_PAYLOAD), "", &out, &len) == 0 &&
              !strcmp(out, G1_EVENT),
          "Event JSON is {name,data,file} with the payload as a JSON string, as Go marshals it");
    free(out);
    CHECK(plugin_event_json("e", "{\"a\":\"\\u003c\"}", 14, "/tmp/pluggable1", &out, &len) == 0 &&
              !strcmp(out, "{\"name\":\"e\",\"data\":\"{\\\"a\\\":\\\"\\\\u003c\\\"}\",\"file\":\"/tmp/pluggable1\"}"),
          "Event JSON escapes the payload's own escapes again");
    free(out);
}

static void test_payload_parse(void)
{
    struct plugin_payload p;

    CHECK(plugin_payload_parse(G1_PAYLOAD, strlen(G1_PAYLOAD), &p) == 0 && p.shape == PLUGIN_SHAPE_G1 &&
              !strcmp(p.part.name, "vda5") && !strcmp(p.part.label, "COS_PERSISTENT") &&
              !strcmp(p.part.partition_label, "persistent") && !strcmp(p.part.fs, "crypto_LUKS") &&
              !strcmp(p.part.uuid, persistent.uuid) && p.part.size_bytes == 53687091200ull && !p.part.read_only &&
              !*p.challenger_server && !p.mdns,
          "a G1 payload reads back into the partition it was built from");
    plugin_payload_clear(&p);

    CHECK(plugin_payload_parse(G3_PAYLOAD, strlen(G3_PAYLOAD), &p) == 0 && p.shape == PLUGIN_SHAPE_G3 &&
              !strcmp(p.part.name, "vda5") && !strcmp(p.part.label, "COS_PERSISTENT") &&
              !strcmp(p.part.partition_label, "persistent") && p.part.size_bytes == 51200ull << 20 &&
              !strcmp(p.challenger_server, "http://10.0.0.1:30000") && p.mdns,
          "a G3 payload is recognised by its partition object and reads back");
    plugin_payload_clear(&p);

    const char *docs_example = "{ \"label\": \"LABEL\" }";
    CHECK(plugin_payload_parse(docs_example, strlen(docs_example), &p) == 0 && p.shape == PLUGIN_SHAPE_G1 &&
              !strcmp(p.part.partition_label, "LABEL") && !*p.part.label,
          "the docs' troubleshooting payload is G1 (label = partition label)");
    plugin_payload_clear(&p);

    const char *mixed = "{\"PARTITION\":{\"Name\":\"sda2\",\"flags\":[\"x\",null],\"Size\":3},\"MDNS\":false}";
    CHECK(plugin_payload_parse(mixed, strlen(mixed), &p) == 0 && p.shape == PLUGIN_SHAPE_G3 &&
              !strcmp(p.part.name, "sda2") && p.part.size_bytes == 3u << 20 && !p.mdns,
          "payload keys match case-insensitively, flags are accepted and ignored");
    plugin_payload_clear(&p);

    CHECK(plugin_payload_parse("{\"partition\":null,\"name\":\"x\"}", 29, &p) == 0 && p.shape == PLUGIN_SHAPE_G1 &&
              !strcmp(p.part.name, "x"),
          "a null partition is not G3");
    plugin_payload_clear(&p);
    CHECK(plugin_payload_parse("null", 4, &p) == 0 && p.shape == PLUGIN_SHAPE_G1 && !*p.part.name,
          "a null payload is an empty G1 partition (Go leaves the struct empty)");
    plugin_payload_clear(&p);
    CHECK(plugin_payload_parse("{\"partition\":{\"size\":-1}}", 25, &p) == -EINVAL,
          "a negative G3 size is refused (Go: uint)");
    CHECK(plugin_payload_parse("{\"partition\":{\"flags\":\"x\"}}", 27, &p) == -EINVAL,
          "G3 flags that are not a list are refused");
    CHECK(plugin_payload_parse("{\"size_bytes\":1.5}", 18, &p) == -EINVAL, "a fractional G1 size is refused");
    CHECK(plugin_payload_parse("{\"name\":5}", 10, &p) == -EINVAL, "a number where a string belongs is refused");
    CHECK(plugin_payload_parse("[]", 2, &p) == -EINVAL, "a payload that is not an object is refused");
    CHECK(plugin_payload_parse("{", 1, &p) == -EBADMSG, "a payload that is not JSON is -EBADMSG");
    CHECK(plugin_payload_parse("{\"partition\":{\"size\":17592186044416}}", 37, &p) == -EINVAL,
          "a G3 size whose bytes overflow 64 bits is refused");
}

static void test_response_parse(void)
{
    struct plugin_response r;
    const char *keys = "{\"STATE\":\"st\",\"Data\":\"pw\\u00e9\",\"extra\":[1,{}],\"Error\":null,\"LOG\":\"l\"}";

    CHECK(plugin_response_parse(keys, strlen(keys), &r) == 0 && !strcmp(r.state, "st") &&
              secret_is(r.data, "pw\xc3\xa9") && !strcmp(r.error, "") && !strcmp(r.log, "l"),
          "response keys match case-insensitively; unknown keys and null are ignored");
    plugin_response_clear(&r);
    CHECK(plugin_response_parse("{}", 2, &r) == 0 && r.data && r.data->len == 0 && !*r.error && !*r.state,
          "missing response fields are empty");
    plugin_response_clear(&r);
    CHECK(plugin_response_parse(" null ", 6, &r) == 0 && r.data->len == 0, "a null response is all empty");
    plugin_response_clear(&r);
    CHECK(plugin_response_parse("{\"data\":1}", 10, &r) == -EINVAL && !r.data, "a non-string data field is refused");
    CHECK(plugin_response_parse("[\"data\"]", 8, &r) == -EINVAL, "a response that is not an object is refused");
    CHECK(plugin_response_parse("hello", 5, &r) == -EBADMSG, "a response that is not JSON is -EBADMSG");
    CHECK(plugin_response_parse("{\"data\":\"a\"} x", 14, &r) == -EBADMSG,
          "text after the response object is refused (as Go does)");
}

static void test_plugin_side(void)
{
    struct plugin_event ev;
    const char *e = "{\"Name\":\"discovery.password\",\"DATA\":\"{\\\"label\\\":\\\"x\\\"}\",\"file\":\"\"}";
    int p[2];

    CHECK(plugin_event_parse(e, strlen(e), &ev) == 0 && !strcmp(ev.name, "discovery.password") &&
              !strcmp(ev.data, "{\"label\":\"x\"}") && ev.data_len == 13 && !*ev.file,
          "an Event parses with case-insensitive keys and its payload unescaped");
    plugin_event_clear(&ev);
    CHECK(plugin_event_parse(G1_EVENT, strlen(G1_EVENT), &ev) == 0 && !strcmp(ev.data, G1_PAYLOAD),
          "the host's Event round-trips through the plugin-side parser");
    plugin_event_clear(&ev);

    /* A payload delivered through a file. */
    const char *pf = tmp_path("payload.json");
    FILE *f = fopen(pf, "w");
    fputs(G3_PAYLOAD, f);
    fclose(f);
    char *evjson = NULL;
    plugin_event_json(PLUGIN_EVENT_PASSWORD, "", 0, pf, &evjson, NULL);
    (void)!pipe(p);
    fd_write_all(p[1], evjson, strlen(evjson));
    close(p[1]);
    CHECK(plugin_event_read(p[0], &ev) == 0 && !strcmp(ev.file, pf) && !strcmp(ev.data, G3_PAYLOAD) &&
              ev.data_len == strlen(G3_PAYLOAD),
          "plugin_event_read takes the payload from the file the Event names");
    close(p[0]);
    plugin_event_clear(&ev);
    free(evjson);

    /* A FIFO named as the payload file must not block the plugin. */
    const char *fifo = tmp_path("fifo");
    mkfifo(fifo, 0600);
    plugin_event_json(PLUGIN_EVENT_PASSWORD, "", 0, fifo, &evjson, NULL);
    plugin_event_parse(evjson, strlen(evjson), &ev);
    capture_begin();
    int64_t t0 = now_ms();
    int r = plugin_event_load_file(&ev);
    _cleanup_free_ char *msg = capture_end();
    CHECK(r == -EINVAL && now_ms() - t0 < 1000 && contains(msg, "not a regular file"),
          "a payload file that is a FIFO is refused at once");
    plugin_event_clear(&ev);
    free(evjson);

    /* The response the plugin writes: Go's EventResponse, all keys, no newline. */
    struct secret *pw = secret_new(16);
    memcpy(pw->data, "p<w>\"d", 6);
    pw->len = 6;
    (void)!pipe(p);
    r = plugin_response_write(p[1], NULL, pw, "", "log\nline");
    close(p[1]);
    char buf[256];
    ssize_t n = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(r == 0 && !strcmp(buf, "{\"state\":\"\",\"data\":\"p\\u003cw\\u003e\\\"d\",\"error\":\"\","
                                 "\"log\":\"log\\nline\"}"),
          "plugin_response_write writes Go's EventResponse bytes: %s", buf);
    secret_free(pw);
}

/* ---- running real plugin processes ---- */

static struct plugin_opts opts(int64_t timeout_ms, int64_t grace_ms)
{
    return (struct plugin_opts){.timeout_ms = timeout_ms, .grace_ms = grace_ms};
}

/* Runs a plugin for a password with stderr captured; *msg gets what was logged. */
static int ask(const char *plugin, int64_t timeout_ms, int64_t grace_ms, struct secret **pw, char **msg)
{
    struct plugin_opts o = opts(timeout_ms, grace_ms);
    int r;
    *pw = NULL;
    capture_begin();
    r = plugin_password(&o, plugin, G1_PAYLOAD, strlen(G1_PAYLOAD), pw);
    *msg = capture_end();
    return r;
}

static void test_run_good(void)
{
    struct secret *pw;
    char *msg, *dump = NULL;
    const char *dump_file = tmp_path("dump.json");

    setenv("KKMS_PLUGIN_DUMP", dump_file, 1);
    int r = ask(plug("good.sh"), 10000, 500, &pw, &msg);
    unsetenv("KKMS_PLUGIN_DUMP");
    CHECK(r == 0 && secret_is(pw, "s3cret <&> \xc3\xa9 \"q\"") && !*msg,
          "a good plugin's password is returned unescaped, verbatim, with nothing logged");
    CHECK(file_read_all(dump_file, 1 << 16, &dump, NULL) == 0 && !strcmp(dump, G1_EVENT),
          "the plugin got argv[1] discovery.password, the inherited environment and the exact Event "
          "bytes on stdin, no trailing newline");
    secret_free(pw);
    free(msg);
    free(dump);

    struct plugin_response resp;
    struct plugin_opts o = opts(10000, 500);
    CHECK(plugin_run(&o, plug("keys.sh"), PLUGIN_EVENT_PASSWORD, "{}", 2, &resp) == 0 && !strcmp(resp.state, "st") &&
              secret_is(resp.data, "MixedCase") && !strcmp(resp.log, "l"),
          "a response with mixed-case and unknown keys is read as Go reads it");
    plugin_response_clear(&resp);

    r = ask(plug("nostdin.sh"), 10000, 500, &pw, &msg);
    CHECK(r == 0 && secret_is(pw, "answered-without-reading"),
          "a plugin that exits without reading stdin still answers, and SIGPIPE does not kill us");
    secret_free(pw);
    free(msg);

    int64_t t0 = now_ms();
    r = ask(plug("chatty.sh"), 20000, 500, &pw, &msg);
    CHECK(r == 0 && secret_is(pw, "chatty-ok") && now_ms() - t0 < 10000,
          "a plugin filling stdout and stderr before reading stdin does not deadlock");
    secret_free(pw);
    free(msg);
}

static void test_run_failures(void)
{
    struct secret *pw;
    char *msg;
    int r;

    r = ask(plug("error.sh"), 10000, 500, &pw, &msg);
    CHECK(r == -EREMOTEIO && !pw && contains(msg, "plugin ") &&
              contains(msg, "error.sh: error: no secret for "
                            "\"COS_PERSISTENT\"") &&
              !strstr(msg, "second line") && count_lines(msg) == 1,
          "a response error is returned as one line naming the plugin");
    free(msg);

    r = ask(plug("garbage.sh"), 10000, 500, &pw, &msg);
    CHECK(r == -EBADMSG && contains(msg, "garbage.sh: response is not JSON") && count_lines(msg) == 1,
          "stdout that is not JSON is an error, not an exit");
    free(msg);

    r = ask(plug("fail.sh"), 10000, 500, &pw, &msg);
    CHECK(r == -EPROTO && contains(msg, "fail.sh: exited with status 3: boom: disk on fire") &&
              !strstr(msg, "second line") && count_lines(msg) == 1,
          "a non-zero exit reports the status and the first line of stderr");
    free(msg);

    r = ask(plug("killed.sh"), 10000, 500, &pw, &msg);
    CHECK(r == -EPROTO && contains(msg, "killed.sh: killed by signal 9"), "death by a signal is reported");
    free(msg);

    r = ask(plug("empty.sh"), 10000, 500, &pw, &msg);
    CHECK(r == -ENODATA && contains(msg, "empty.sh: returned an empty password"),
          "an empty password is an error (upstream: received empty password)");
    free(msg);

    r = ask(plug("flood.sh"), 10000, 500, &pw, &msg);
    CHECK(r == -EBADMSG && contains(msg, "flood.sh: printed more than 1048576 bytes on stdout"),
          "stdout over 1 MiB is refused and the plugin stopped");
    free(msg);

    r = ask(tmp_path("does-not-exist"), 10000, 500, &pw, &msg);
    CHECK(r == -ENOENT && contains(msg, "does-not-exist: cannot execute: No such file or directory"),
          "a missing plugin is an exec error, reported by the host");
    free(msg);

    const char *noexec = tmp_path("noexec.sh");
    FILE *f = fopen(noexec, "w");
    fputs("#!/bin/sh\necho '{\"data\":\"x\"}'\n", f);
    fclose(f);
    chmod(noexec, 0644);
    r = ask(noexec, 10000, 500, &pw, &msg);
    CHECK(r == -EACCES && contains(msg, "cannot execute: Permission denied"),
          "running a non-executable file fails with EACCES");
    free(msg);
}

static void test_run_timeouts(void)
{
    struct secret *pw;
    char *msg;
    const char *pidfile = tmp_path("plugin.pid");
    int64_t t0, elapsed;
    pid_t pgid;
    int r;

    setenv("KKMS_PLUGIN_PIDFILE", pidfile, 1);

    unlink(pidfile);
    t0 = now_ms();
    r = ask(plug("hang.sh"), 1000, 300, &pw, &msg);
    elapsed = now_ms() - t0;
    pgid = read_pid(pidfile);
    CHECK(r == -ETIMEDOUT && contains(msg, "hang.sh: timed out after 1 s") && count_lines(msg) == 1,
          "a hung plugin is an error after the time limit, in one line naming it");
    CHECK(elapsed >= 1000 && elapsed < 2500, "the hung plugin is stopped after 1 s + grace (%lld ms)",
          (long long)elapsed);
    CHECK(pgid > 0 && waitpid(pgid, NULL, WNOHANG) < 0 && errno == ECHILD,
          "the hung plugin was reaped: no zombie is left");
    CHECK(pgid > 0 && group_gone(pgid, 2000),
          "SIGKILL reached the whole process group, children that ignore SIGTERM included");
    free(msg);

    unlink(pidfile);
    t0 = now_ms();
    r = ask(plug("hang-term.sh"), 500, 5000, &pw, &msg);
    elapsed = now_ms() - t0;
    pgid = read_pid(pidfile);
    CHECK(r == -ETIMEDOUT && contains(msg, "timed out after 0.5 s"), "a fractional limit is reported as such");
    CHECK(r == -ETIMEDOUT && contains(msg, "it last said: attempt 1 failed: connection refused; retrying"),
          "a plugin killed at its limit: its last line on stderr says why it was still busy");
    CHECK(elapsed < 2500 && pgid > 0 && group_gone(pgid, 2000),
          "a plugin that obeys SIGTERM ends without waiting for the grace period (%lld ms)", (long long)elapsed);
    free(msg);

    unlink(pidfile);
    t0 = now_ms();
    r = ask(plug("straggler.sh"), 10000, 500, &pw, &msg);
    elapsed = now_ms() - t0;
    pgid = read_pid(pidfile);
    CHECK(r == 0 && secret_is(pw, "straggler-ok") && elapsed < 4000,
          "a plugin that exits leaving a child on its stdout answers promptly (%lld ms)", (long long)elapsed);
    CHECK(pgid > 0 && group_gone(pgid, 2000), "what the plugin left running in its group is killed");
    secret_free(pw);
    free(msg);
    unsetenv("KKMS_PLUGIN_PIDFILE");
}

static void test_big_payload_via_file(void)
{
    struct secret *pw = NULL;
    struct plugin_opts o = opts(10000, 500);
    const char *expect = tmp_path("expected-payload.json"), *record = tmp_path("record.txt");
    char *payload = xmalloc(9 * 1024 + 1), *recorded = NULL, *msg;
    struct stat st;
    FILE *f;
    int r;

    /* A 9 KiB payload: an object with one long string. */
    memset(payload, 'p', 9 * 1024);
    memcpy(payload, "{\"k\":\"", 6);
    memcpy(payload + 9 * 1024 - 2, "\"}", 2);
    payload[9 * 1024] = '\0';
    f = fopen(expect, "w");
    fwrite(payload, 1, 9 * 1024, f);
    fclose(f);

    setenv("KKMS_EXPECT_FILE", expect, 1);
    setenv("KKMS_PLUGIN_RECORD", record, 1);
    setenv("TMPDIR", tmpdir, 1);
    capture_begin();
    r = plugin_password(&o, plug("bigpayload.sh"), payload, 9 * 1024, &pw);
    msg = capture_end();
    unsetenv("TMPDIR");
    CHECK(r == 0 && secret_is(pw, "file-ok"),
          "a 9 KiB payload travels in a 0600 file named by \"file\", with \"data\" empty");
    if (r != 0)
        printf("# %s", msg);
    CHECK(file_read_all(record, 4096, &recorded, NULL) == 0 && !strncmp(recorded, tmpdir, strlen(tmpdir)) &&
              strstr(recorded, "/pluggable"),
          "the payload file was created in $TMPDIR with the pluggable prefix");
    CHECK(recorded && stat(recorded, &st) < 0 && errno == ENOENT, "the payload file is removed after the run");
    secret_free(pw);
    free(recorded);
    free(msg);

    /* Exactly 8192 bytes still go inline (go-pluggable: len(data) > 1<<13). */
    const char *dump_file = tmp_path("dump8k.json");
    struct plugin_event ev;
    char *dump = NULL;
    payload[8192 - 2] = '"';
    payload[8192 - 1] = '}';
    setenv("KKMS_PLUGIN_DUMP", dump_file, 1);
    capture_begin();
    r = plugin_password(&o, plug("good.sh"), payload, 8192, &pw);
    msg = capture_end();
    unsetenv("KKMS_PLUGIN_DUMP");
    CHECK(r == 0 && file_read_all(dump_file, 1 << 16, &dump, NULL) == 0 &&
              plugin_event_parse(dump, strlen(dump), &ev) == 0 && ev.data_len == 8192 && !*ev.file,
          "a payload of exactly 8192 bytes is sent inline");
    plugin_event_clear(&ev);
    secret_free(pw);
    free(dump);
    free(msg);
    unsetenv("KKMS_EXPECT_FILE");
    unsetenv("KKMS_PLUGIN_RECORD");
    free(payload);
}

static void test_no_fd_leak(void)
{
    struct secret *pw;
    char *msg;
    /* Deliberately without O_CLOEXEC: the child must still not see it. */
    int fd = open("/dev/null", O_RDONLY);
    int high = fcntl(fd, F_DUPFD, 57);
    char num[16];

    close(fd);
    snprintf(num, sizeof(num), "%d", high);
    setenv("KKMS_CHECK_FD", num, 1);
    int r = ask(plug("fdcheck.sh"), 10000, 500, &pw, &msg);
    CHECK(r == 0 && secret_is(pw, "clean"), "a descriptor without O_CLOEXEC does not leak into the plugin");
    unsetenv("KKMS_CHECK_FD");
    close(high);
    secret_free(pw);
    free(msg);
}

static void on_alarm(int sig) { (void)sig; }

static void test_eintr(void)
{
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART: every slow call sees EINTR */
    struct itimerval every_ms = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
    const char *pidfile = tmp_path("eintr.pid");
    struct secret *pw;
    char *msg;
    int r;

    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &every_ms, NULL);
    r = ask(plug("chatty.sh"), 20000, 500, &pw, &msg);
    CHECK(r == 0 && secret_is(pw, "chatty-ok"), "a run interrupted by a signal every millisecond still succeeds");
    secret_free(pw);
    free(msg);

    setenv("KKMS_PLUGIN_PIDFILE", pidfile, 1);
    int64_t t0 = now_ms();
    r = ask(plug("hang.sh"), 500, 200, &pw, &msg);
    int64_t elapsed = now_ms() - t0;
    setitimer(ITIMER_REAL, &off, NULL);
    unsetenv("KKMS_PLUGIN_PIDFILE");
    CHECK(r == -ETIMEDOUT && elapsed < 2000 && group_gone(read_pid(pidfile), 2000),
          "the time limit and the kill hold while signals interrupt the host (%lld ms)", (long long)elapsed);
    free(msg);
    signal(SIGALRM, SIG_DFL);
}

/* ---- discovery ---- */

static void mkdirs(const char *rel)
{
    char path[4096], *p;
    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    for (p = path + strlen(tmpdir) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    mkdir(path, 0755);
}

/* A copy of the script, mode 0755: a symlink to the source tree would resolve outside the root
 * the discovery is confined to. */
static void link_plugin(const char *rel, const char *script)
{
    char path[4096], *text = NULL;
    size_t len = 0;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    if (file_read_all(plug(script), 1 << 20, &text, &len) < 0)
        return;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (fd >= 0) {
        (void)!fd_write_all(fd, text, len);
        fchmod(fd, 0755);
        close(fd);
    }
    free(text);
}

static void plain_file(const char *rel, mode_t mode)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "w");
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
    chmod(path, mode);
}

static void test_discovery(void)
{
    struct plugin_list l;
    char search[4096], root[2048], cwd_before[4096];
    bool order_ok = true;
    static const char *const want[][2] = {
        {"beta", "root/p1/kcrypt-discovery-beta"},
        {"aaa", "root/p2/kcrypt-discovery-aaa"},
        {"noexec", "root/p2/kcrypt-discovery-noexec"},
        {"gamma", "root/sysroot/system/discovery/kcrypt-discovery-gamma"},
        {"alpha", "root/system/discovery/kcrypt-discovery-alpha"},
        {"omega", "root/oem/kcrypt/kcrypt-discovery-omega"},
        {"delta", "root/oem/system/discovery/kcrypt-discovery-delta"},
        {"zeta", "root/extra/kcrypt-discovery-zeta"},
    };
    const size_t nwant = sizeof(want) / sizeof(want[0]);

    mkdirs("root/p1");
    mkdirs("root/p2");
    mkdirs("root/sysroot/system/discovery");
    mkdirs("root/system/discovery");
    mkdirs("root/oem/kcrypt");
    mkdirs("root/oem/system/discovery");
    mkdirs("root/extra");
    mkdirs("root/cwd");
    link_plugin("root/p1/kcrypt-discovery-beta", "good.sh");
    plain_file("root/p1/kcrypt-discovery-noexec", 0644);                         /* skipped: not executable */
    mkdirs("root/p1/kcrypt-discovery-dir");                                      /* skipped: a directory */
    (void)!symlink("/nonexistent", tmp_path("root/p1/kcrypt-discovery-broken")); /* skipped: dangling */
    plain_file("root/p1/other-program", 0755);                                   /* not a plugin name */
    link_plugin("root/p2/kcrypt-discovery-beta", "error.sh");                    /* same name later: first wins */
    link_plugin("root/p2/kcrypt-discovery-aaa", "good.sh");
    plain_file("root/p2/kcrypt-discovery-noexec", 0755); /* executable here: this one counts */
    link_plugin("root/sysroot/system/discovery/kcrypt-discovery-gamma", "good.sh");
    link_plugin("root/system/discovery/kcrypt-discovery-alpha", "good.sh");
    link_plugin("root/oem/kcrypt/kcrypt-discovery-alpha", "error.sh");
    link_plugin("root/oem/kcrypt/kcrypt-discovery-omega", "good.sh");
    link_plugin("root/oem/system/discovery/kcrypt-discovery-delta", "good.sh");
    link_plugin("root/extra/kcrypt-discovery-zeta", "good.sh");
    link_plugin("root/extra/kcrypt-discovery-beta", "error.sh");
    link_plugin("root/cwd/kcrypt-discovery-incwd", "good.sh"); /* the working directory: not searched */

    snprintf(search, sizeof(search), "%s/root/p1::%s/root/p2/", tmpdir, tmpdir);
    snprintf(root, sizeof(root), "%s/root/", tmpdir);
    (void)!getcwd(cwd_before, sizeof(cwd_before));
    (void)!chdir(tmp_path("root/cwd"));
    const char *extra[] = {tmp_path("root/extra")};
    struct plugin_opts o = {.path = search, .root = root, .dirs = extra, .n_dirs = 1};
    CHECK(plugin_discover(&o, &l) == 0 && l.n == nwant, "discovery finds %zu plugins (want %zu)", l.n, nwant);
    for (size_t i = 0; i < l.n && i < nwant; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, want[i][1]);
        if (strcmp(l.items[i].name, want[i][0]) || strcmp(l.items[i].path, path)) {
            printf("# %zu: got %s %s want %s %s\n", i, l.items[i].name, l.items[i].path, want[i][0], path);
            order_ok = false;
        }
    }
    CHECK(order_ok && l.n == nwant,
          "order is $PATH, sysroot, system, oem/kcrypt, oem/system, then the extra directories; sorted per "
          "directory; first name wins; non-executables, directories and dangling links are skipped; the "
          "working directory is not searched");
    plugin_list_clear(&l);

    /* The working directory only when named. */
    const char *dot[] = {"."};
    struct plugin_opts od = {.path = "", .root = root, .dirs = dot, .n_dirs = 1};
    CHECK(plugin_discover(&od, &l) == 0 && l.n == 5 && !strcmp(l.items[4].name, "incwd") &&
              !strcmp(l.items[4].path, "./kcrypt-discovery-incwd"),
          "the working directory is searched, last, when it is one of the extra directories (\".\")");
    plugin_list_clear(&l);

    /* PATH from the environment when the options do not set it. */
    char *old_path = getenv("PATH") ? xstrdup(getenv("PATH")) : NULL;
    setenv("PATH", tmp_path("root/p2"), 1);
    o.path = NULL;
    CHECK(plugin_discover(&o, &l) == 0 && l.n >= 1 && !strcmp(l.items[0].name, "aaa") &&
              !strcmp(l.items[1].name, "beta") && strstr(l.items[1].path, "/p2/"),
          "without an override $PATH is searched first");
    plugin_list_clear(&l);
    if (old_path)
        setenv("PATH", old_path, 1);
    free(old_path);

    /* plugin_get_password: the first plugin fails (a warning), the next one answers. */
    mkdirs("gp/system/discovery");
    link_plugin("gp/system/discovery/kcrypt-discovery-a-broken", "error.sh");
    link_plugin("gp/system/discovery/kcrypt-discovery-b-good", "good.sh");
    mkdirs("empty");
    (void)!chdir(tmp_path("empty"));
    struct plugin_opts go = {.path = "", .root = tmp_path("gp"), .timeout_ms = 10000, .grace_ms = 500};
    struct secret *pw = NULL;
    capture_begin();
    int r = plugin_get_password(&go, &persistent, &pw);
    _cleanup_free_ char *msg = capture_end();
    CHECK(r == 0 && secret_is(pw, "s3cret <&> \xc3\xa9 \"q\"") && contains(msg, "warning: plugin ") &&
              contains(msg, "kcrypt-discovery-a-broken: error: no secret"),
          "plugin_get_password moves on from a failing plugin to the next one");
    secret_free(pw);

    /* The G3 shape when configured, seen by the plugin on stdin. */
    const char *dump_file = tmp_path("dump-g3.json");
    char *dump = NULL, *want_event = NULL;
    struct plugin_opts g3 = {.path = "",
                             .root = tmp_path("root"),
                             .timeout_ms = 10000,
                             .grace_ms = 500,
                             .shape = PLUGIN_SHAPE_G3,
                             .challenger_server = "http://10.0.0.1:30000",
                             .mdns = true};
    setenv("KKMS_PLUGIN_DUMP", dump_file, 1);
    capture_begin();
    r = plugin_get_password(&g3, &persistent, &pw);
    free(capture_end());
    unsetenv("KKMS_PLUGIN_DUMP");
    plugin_event_json(PLUGIN_EVENT_PASSWORD, G3_PAYLOAD, strlen(G3_PAYLOAD), "", &want_event, NULL);
    CHECK(r == 0 && file_read_all(dump_file, 1 << 16, &dump, NULL) == 0 && !strcmp(dump, want_event),
          "with shape G3 the first plugin (sysroot's gamma) receives the G3 payload");
    secret_free(pw);
    free(dump);
    free(want_event);

    /* Nothing to find. */
    struct plugin_opts none = {.path = "", .root = tmp_path("empty")};
    pw = NULL;
    capture_begin();
    r = plugin_get_password(&none, &persistent, &pw);
    char *msg2 = capture_end();
    CHECK(r == -ENOENT && !pw && contains(msg2, "no discovery plugin found"),
          "no plugin at all is -ENOENT with a message saying where we looked");
    free(msg2);

    /* Every plugin fails: the last failure is an error and is returned. */
    mkdirs("bad/system/discovery");
    link_plugin("bad/system/discovery/kcrypt-discovery-x", "fail.sh");
    struct plugin_opts bad = {.path = "", .root = tmp_path("bad"), .timeout_ms = 10000, .grace_ms = 500};
    capture_begin();
    r = plugin_get_password(&bad, &persistent, &pw);
    msg2 = capture_end();
    CHECK(r == -EPROTO && !strstr(msg2, "warning") && contains(msg2, "kcrypt-discovery-x: exited with status 3"),
          "when the only plugin fails its error is returned and logged as an error");
    free(msg2);
    (void)!chdir(cwd_before);
}

/* Which plugins may run: confinement to the root, and (as root) owner and modes. */
static void test_discovery_trust(void)
{
    struct plugin_list l;
    char *msg;
    int r;

    mkdirs("trust/system/discovery");
    mkdirs("trust/oem/kcrypt");
    mkdirs("outside");
    link_plugin("outside/kcrypt-discovery-escape", "good.sh");
    link_plugin("trust/system/discovery/kcrypt-discovery-ok", "good.sh");
    /* A symlink out of the root. */
    (void)!symlink(tmp_path("outside/kcrypt-discovery-escape"),
                   tmp_path("trust/system/discovery/kcrypt-discovery-escape"));
    struct plugin_opts o = {.path = "", .root = tmp_path("trust")};
    capture_begin();
    r = plugin_discover(&o, &l);
    msg = capture_end();
    CHECK(r == 0 && l.n == 1 && !strcmp(l.items[0].name, "ok") &&
              contains(msg, "kcrypt-discovery-escape: it resolves to ") && contains(msg, ", outside the root "),
          "with a root, a plugin symlink resolving outside it is skipped with a warning saying so");
    plugin_list_clear(&l);
    free(msg);

    /* A plugin directory that is itself a link out of the root. */
    mkdirs("trust2/oem");
    (void)!symlink(tmp_path("outside"), tmp_path("trust2/oem/kcrypt"));
    struct plugin_opts o2 = {.path = "", .root = tmp_path("trust2")};
    capture_begin();
    r = plugin_discover(&o2, &l);
    msg = capture_end();
    CHECK(r == 0 && l.n == 0 && contains(msg, "outside the root"),
          "with a root, a plugin directory linked to outside it yields nothing");
    plugin_list_clear(&l);
    free(msg);

    if (geteuid() != 0) {
        tap_n++;
        printf("ok %d - # SKIP owner and mode checks apply when running as root\n", tap_n);
        return;
    }
    mkdirs("perm/system/discovery");
    mkdirs("perm/open");
    mkdirs("perm/sticky");
    link_plugin("perm/system/discovery/kcrypt-discovery-a-groupw", "good.sh");
    chmod(tmp_path("perm/system/discovery/kcrypt-discovery-a-groupw"), 0775);
    link_plugin("perm/system/discovery/kcrypt-discovery-b-nobody", "good.sh");
    (void)!chown(tmp_path("perm/system/discovery/kcrypt-discovery-b-nobody"), 65534, 65534);
    link_plugin("perm/system/discovery/kcrypt-discovery-c-good", "good.sh");
    link_plugin("perm/open/kcrypt-discovery-d-opendir", "good.sh");
    chmod(tmp_path("perm/open"), 0777);
    link_plugin("perm/sticky/kcrypt-discovery-e-sticky", "good.sh");
    chmod(tmp_path("perm/sticky"), 01777);
    /* A root-owned plugin reached through a link in a directory others can write. */
    (void)!symlink(tmp_path("perm/system/discovery/kcrypt-discovery-c-good"),
                   tmp_path("perm/open/kcrypt-discovery-f-link"));
    char *open_dir = xstrdup(tmp_path("perm/open")), *sticky_dir = xstrdup(tmp_path("perm/sticky"));
    const char *dirs[] = {open_dir, sticky_dir};
    struct plugin_opts p = {.path = "", .root = tmp_path("perm"), .dirs = dirs, .n_dirs = 2};
    capture_begin();
    r = plugin_discover(&p, &l);
    msg = capture_end();
    CHECK(r == 0 && l.n == 2 && !strcmp(l.items[0].name, "c-good") && !strcmp(l.items[1].name, "e-sticky"),
          "as root only root-owned plugins not writable by others, in directories only root can change, "
          "are found (a sticky directory is fine)");
    CHECK(contains(msg, "kcrypt-discovery-a-groupw: ") && contains(msg, "is writable by group or others (mode 0775)") &&
              contains(msg, "kcrypt-discovery-b-nobody: ") && contains(msg, "is owned by uid 65534, not root") &&
              contains(msg, "kcrypt-discovery-d-opendir: directory ") &&
              contains(msg, "open is writable by group or others (mode 0777)") &&
              contains(msg, "kcrypt-discovery-f-link: directory ") && contains(msg, "warning: skipping plugin "),
          "each skipped plugin is a warning saying why");
    plugin_list_clear(&l);
    free(msg);
    free(open_dir);
    free(sticky_dir);
}

static void remove_tree(const char *dir)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)!system(cmd);
}

int main(void)
{
    const char *base = getenv("KKMS_TEST_TMP");
    char base_dir[512];

    /* Die from SIGPIPE like a default process would, so a leak of it shows as a failure. */
    signal(SIGPIPE, SIG_DFL);
    /* Orphans of killed plugins are reparented to us, so the tests can see them reaped. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    snprintf(base_dir, sizeof(base_dir), "%s", base && *base ? base : "/tmp");
    mkdir(base_dir, 0755);
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_plugin.XXXXXX", base_dir);
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "create a temporary directory under %s", base_dir);
        return tap_done();
    }

    test_payloads();
    test_payload_parse();
    test_response_parse();
    test_plugin_side();
    test_run_good();
    test_run_failures();
    test_run_timeouts();
    test_big_payload_via_file();
    test_no_fd_leak();
    test_eintr();
    test_discovery();
    test_discovery_trust();

    remove_tree(tmpdir);
    return tap_done();
}
