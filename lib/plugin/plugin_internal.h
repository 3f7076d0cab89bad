/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files of lib/plugin only. */
#ifndef KKMS_PLUGIN_INTERNAL_H
#define KKMS_PLUGIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

/* After the plugin exits, how long its pipes may stay open (held by something it left behind)
 * before we stop reading them. */
#define SPAWN_DRAIN_MS 1000

/* What a finished child left behind. stdout may hold a secret: spawn_result_clear wipes it. */
struct spawn_result {
    int status;           /* waitpid status of the child */
    bool timed_out;       /* the time limit was reached and the process group was killed */
    bool stdout_overflow; /* more than PLUGIN_MAX_STDOUT bytes on stdout; the group was killed */
    char *out;            /* stdout, NUL-terminated */
    size_t out_len, out_cap;
    char *err;            /* stderr (first PLUGIN_MAX_STDERR bytes), NUL-terminated */
    size_t err_len;
};

/* Runs argv[0] with argv in a new process group, writes in to its stdin, collects stdout and
 * stderr concurrently, and always reaps it: at timeout_ms the group gets SIGTERM, then SIGKILL
 * after grace_ms; anything left in the group after the child exits is killed too. Returns 0 when
 * the child ran (see res for how it ended; clear it), or -errno with a reason in why and res
 * already cleared. SIGPIPE is blocked in the calling thread meanwhile, so a child that does not
 * read its stdin cannot kill us. */
int spawn_run(char *const argv[], const void *in, size_t in_len, int64_t timeout_ms, int64_t grace_ms,
              struct spawn_result *res, char *why, size_t why_len);
void spawn_result_clear(struct spawn_result *res);

/* Copies text into out (size n) as one printable line: stops at the first newline, turns other
 * control characters into '?', trims trailing blanks, cuts long text with "...". */
void plugin_one_line(const char *text, size_t len, char *out, size_t n);

#endif
