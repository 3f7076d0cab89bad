/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The audit log: one JSON line per decision, appended in one write so lines of concurrent
 * writers never interleave. Only names, hashes and reasons: never a secret. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kjson.h"
#include "kms.h"
#include "metrics.h"

struct kms_audit {
    int fd;
    bool own;
    struct kms_metrics *metrics; /* counts exchange decisions; NULL = none */
    char instance[300];
};

static void default_instance(struct kms_audit *a)
{
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) < 0 || !*host)
        snprintf(host, sizeof(host), "localhost");
    snprintf(a->instance, sizeof(a->instance), "%s:%ld", host, (long)getpid());
}

void kms_audit_set_instance(struct kms_audit *a, const char *name)
{
    if (!a)
        return;
    if (name && *name)
        snprintf(a->instance, sizeof(a->instance), "%s", name);
    else
        default_instance(a);
}

void kms_audit_set_metrics(struct kms_audit *a, struct kms_metrics *m)
{
    if (a)
        a->metrics = m;
}

const char *kms_outcome_name(enum kms_outcome o)
{
    switch (o) {
    case KMS_OK: return "ok";
    case KMS_REFUSED: return "refused";
    default: return "error";
    }
}

int kms_audit_open(const char *path, struct kms_audit **out)
{
    struct kms_audit *a;
    struct stat st;
    int fd;

    if (!path || !strcmp(path, "-")) {
        a = xcalloc(1, sizeof(*a));
        a->fd = STDERR_FILENO;
        default_instance(a);
        *out = a;
        return 0;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        return log_error_errno(-errno, "%s: cannot open the audit log: %m", path);
    /* A file, or a character device such as /dev/null (no audit) or a console. */
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
        close(fd);
        return log_error_errno(-EINVAL, "%s: the audit log must be a regular file or a character device", path);
    }
    /* A device's mode says nothing about who reads what is written to it (/dev/null). */
    if (S_ISREG(st.st_mode) && (st.st_mode & 077))
        log_warn("%s: audit log readable by other users (mode %04o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 07777));
    a = xcalloc(1, sizeof(*a));
    a->fd = fd;
    a->own = true;
    default_instance(a);
    *out = a;
    return 0;
}

void kms_audit_free(struct kms_audit *a)
{
    if (!a)
        return;
    if (a->own)
        close(a->fd);
    free(a);
}

void kms_audit_log(struct kms_audit *a, const struct kms_audit_event *e)
{
    _cleanup_kjson_w_ struct kjson_w *w = NULL;
    const struct kms_request *rq = e->req;
    struct timespec ts;
    struct tm tm;
    char when[40], *line;
    const char *text;
    size_t len;

    if (!a)
        return;
    kms_metrics_count(a->metrics, e->action, e->outcome);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03ldZ", ts.tv_nsec / 1000000);

    w = kjson_w_new();
    kjson_w_obj_begin(w);
    kjson_w_kv_str(w, "time", when);
    kjson_w_kv_str(w, "action", e->action);
    kjson_w_kv_str(w, "outcome", kms_outcome_name(e->outcome));
    kjson_w_kv_str(w, "tpm_hash", rq ? rq->tpm_hash : NULL);
    kjson_w_kv_str(w, "label", rq ? rq->label : NULL);
    kjson_w_kv_str(w, "name", rq ? rq->name : NULL);
    kjson_w_kv_str(w, "uuid", rq ? rq->uuid : NULL);
    kjson_w_kv_str(w, "peer", rq ? rq->peer : NULL);
    kjson_w_kv_str(w, "volume", e->volume);
    kjson_w_kv_str(w, "secret", e->secret);
    kjson_w_kv_str(w, "reason", e->reason);
    kjson_w_kv_str(w, "instance", a->instance);
    kjson_w_obj_end(w);
    if (kjson_w_result(w, &text, &len) < 0) {
        log_error("audit: cannot format the record of a %s decision", e->action);
        return;
    }
    line = xmalloc(len + 2);
    memcpy(line, text, len);
    line[len] = '\n';
    if (fd_write_all(a->fd, line, len + 1) < 0)
        log_error("audit: write failed: %m");
    free(line);
}
