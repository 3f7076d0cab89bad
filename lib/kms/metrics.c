/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The KMS's Prometheus metrics (metrics.h). Cardinality is fixed at build time: 3 endpoints x
 * 3 outcomes counters and one histogram per endpoint, so nothing a node sends can grow them. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "kms_internal.h"
#include "metrics.h"

#ifndef KKMS_VERSION
#define KKMS_VERSION "0"
#endif

static const struct {
    const char *action, *path, *protocol;
} endpoints[] = {
    {"getPass", "/getPass", "g1"},
    {"postPass", "/postPass", "g1"},
    {"tpm-attestation", "/tpm-attestation", "g3"},
};
#define N_ENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))
#define N_OUTCOMES 3 /* enum kms_outcome: ok, refused, error */

/* Upper bounds in seconds: one exchange costs about 0.2-1 ms of CPU, a slow store or a loaded
 * machine more. */
static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct kms_metrics {
    pthread_mutex_t lock;
    uint64_t exchanges[N_ENDPOINTS][N_OUTCOMES];
    uint64_t hist[N_ENDPOINTS][N_BUCKETS + 1]; /* per bucket (not cumulative); the last is +Inf */
    double sum[N_ENDPOINTS];
    uint64_t tls_handshakes[2]; /* full, resumed */
};

/* In shared memory with a process-shared lock: the worker processes of `challenger --workers N`
 * (forked after this) count into one set, whichever of them serves /metrics. */
int kms_metrics_new(struct kms_metrics **out)
{
    pthread_mutexattr_t attr;
    struct kms_metrics *m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (m == MAP_FAILED)
        return log_error_errno(-errno, "cannot map the metrics: %m");
    memset(m, 0, sizeof(*m));
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&m->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    *out = m;
    return 0;
}

void kms_metrics_free(struct kms_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    munmap(m, sizeof(*m));
}

static int endpoint_of(const char *action, const char *path)
{
    for (size_t i = 0; i < N_ENDPOINTS; i++)
        if ((action && !strcmp(action, endpoints[i].action)) || (path && !strcmp(path, endpoints[i].path)))
            return (int)i;
    return -1;
}

void kms_metrics_count(struct kms_metrics *m, const char *endpoint, enum kms_outcome outcome)
{
    int e = endpoint_of(endpoint, NULL);
    unsigned o = outcome == KMS_OK ? 0 : outcome == KMS_REFUSED ? 1 : 2;

    if (!m || e < 0)
        return;
    pthread_mutex_lock(&m->lock);
    m->exchanges[e][o]++;
    pthread_mutex_unlock(&m->lock);
}

void kms_metrics_observe(struct kms_metrics *m, const char *path, double seconds)
{
    int e = endpoint_of(NULL, path);
    size_t b = 0;

    if (!m || e < 0 || !(seconds >= 0))
        return;
    while (b < N_BUCKETS && seconds > buckets[b])
        b++;
    pthread_mutex_lock(&m->lock);
    m->hist[e][b]++;
    m->sum[e] += seconds;
    pthread_mutex_unlock(&m->lock);
}

void kms_metrics_tls_handshake(struct kms_metrics *m, bool resumed)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->tls_handshakes[resumed ? 1 : 0]++;
    pthread_mutex_unlock(&m->lock);
}

static void header(struct kms_buf *b, const char *name, const char *type, const char *help)
{
    kms_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int kms_metrics_render(struct kms_metrics *m, struct kms_store *store, size_t open_conns, char **out, size_t *len)
{
    static const char *const outcome_names[N_OUTCOMES] = {"ok", "refused", "error"};
    struct kms_buf b = {0};
    struct kms_metrics snap;
    struct kms_store_stats st;

    pthread_mutex_lock(&m->lock);
    memcpy(snap.exchanges, m->exchanges, sizeof(snap.exchanges));
    memcpy(snap.hist, m->hist, sizeof(snap.hist));
    memcpy(snap.tls_handshakes, m->tls_handshakes, sizeof(snap.tls_handshakes));
    memcpy(snap.sum, m->sum, sizeof(snap.sum));
    pthread_mutex_unlock(&m->lock);
    kms_store_stats(store, &st);

    header(&b, "kairos_kms_build_info", "gauge", "Version of the running kairos-kms (always 1).");
    kms_buf_printf(&b, "kairos_kms_build_info{version=\"%s\"} 1\n", KKMS_VERSION);
    header(&b, "kairos_kms_exchanges_total", "counter",
           "Decisions on node exchanges by protocol, endpoint and outcome (ok = key served or stored).");
    for (size_t e = 0; e < N_ENDPOINTS; e++)
        for (size_t o = 0; o < N_OUTCOMES; o++)
            kms_buf_printf(&b, "kairos_kms_exchanges_total{protocol=\"%s\",endpoint=\"%s\",outcome=\"%s\"} %llu\n",
                           endpoints[e].protocol, endpoints[e].action, outcome_names[o],
                           (unsigned long long)snap.exchanges[e][o]);
    header(&b, "kairos_kms_exchange_server_seconds", "histogram",
           "Server-side time of one exchange (handler time, without waiting for the node).");
    for (size_t e = 0; e < N_ENDPOINTS; e++) {
        uint64_t cum = 0;
        for (size_t k = 0; k <= N_BUCKETS; k++) {
            cum += snap.hist[e][k];
            if (k < N_BUCKETS)
                kms_buf_printf(&b, "kairos_kms_exchange_server_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
                               endpoints[e].action, buckets[k], (unsigned long long)cum);
            else
                kms_buf_printf(&b, "kairos_kms_exchange_server_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
                               endpoints[e].action, (unsigned long long)cum);
        }
        kms_buf_printf(&b, "kairos_kms_exchange_server_seconds_sum{endpoint=\"%s\"} %.9f\n", endpoints[e].action,
                       snap.sum[e]);
        kms_buf_printf(&b, "kairos_kms_exchange_server_seconds_count{endpoint=\"%s\"} %llu\n", endpoints[e].action,
                       (unsigned long long)cum);
    }
    header(&b, "kairos_kms_tls_handshakes_total", "counter",
           "TLS handshakes completed: full, or resumed from a session ticket.");
    kms_buf_printf(&b, "kairos_kms_tls_handshakes_total{kind=\"full\"} %llu\n",
                   (unsigned long long)snap.tls_handshakes[0]);
    kms_buf_printf(&b, "kairos_kms_tls_handshakes_total{kind=\"resumed\"} %llu\n",
                   (unsigned long long)snap.tls_handshakes[1]);
    header(&b, "kairos_kms_connections_open", "gauge", "Open client connections.");
    kms_buf_printf(&b, "kairos_kms_connections_open %zu\n", open_conns);
    header(&b, "kairos_kms_store_records", "gauge",
           "Records in the store: SealedVolumes, Secrets, quarantined volumes, pending enrollments.");
    kms_buf_printf(&b, "kairos_kms_store_records{kind=\"volumes\"} %zu\n", st.volumes);
    kms_buf_printf(&b, "kairos_kms_store_records{kind=\"secrets\"} %zu\n", st.secrets);
    kms_buf_printf(&b, "kairos_kms_store_records{kind=\"quarantined\"} %zu\n", st.quarantined);
    kms_buf_printf(&b, "kairos_kms_store_records{kind=\"pending\"} %zu\n", st.pending);
    header(&b, "kairos_kms_store_invalid_files", "gauge", "Manifest files that could not be loaded as they are now.");
    kms_buf_printf(&b, "kairos_kms_store_invalid_files %zu\n", st.invalid_files);
    header(&b, "kairos_kms_store_reload_errors_total", "counter", "Rescans of the store that failed.");
    kms_buf_printf(&b, "kairos_kms_store_reload_errors_total %llu\n", (unsigned long long)st.reload_errors);
    header(&b, "kairos_kms_store_ready", "gauge", "1 when the last rescan of the store succeeded (what /readyz says).");
    kms_buf_printf(&b, "kairos_kms_store_ready %d\n", st.ready ? 1 : 0);
    *out = b.p;
    *len = b.len;
    return 0;
}

void kms_store_stats(struct kms_store *s, struct kms_store_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->lock);
    out->volumes = s->nvols;
    out->secrets = s->nsecrets;
    for (size_t i = 0; i < s->nvols; i++)
        out->quarantined += s->vols[i]->quarantined;
    for (size_t i = 0; i < s->nfiles; i++)
        out->invalid_files += s->files[i]->problem != NULL;
    out->reload_errors = s->reload_errors;
    out->ready = s->scanned && s->last_refresh == 0;
    pthread_mutex_unlock(&s->lock);
    if (s->etcd)
        out->ready = kms_store_ready(s); /* loaded, and the watch not lost for long */
}
