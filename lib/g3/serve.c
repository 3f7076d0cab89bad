/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The KMS's listener: the G1 endpoints of lib/g1 (/getPass, /postPass), /tpm-attestation (G3),
 * /healthz, /readyz and /metrics (README "Operations"), the mDNS announcement (--announce), signals,
 * the background rescan and the port file. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto.h"
#include "g1.h"
#include "g3_session.h"
#include "mdns.h"
#include "metrics.h"
#include "net.h"

/* How often the store takes in the changes inotify reported (and, every KMS_FULL_RESCAN_MS,
 * rescans DIR in full) in the background, so /readyz answers from the last refresh instead of
 * scanning DIR per request (an unauthenticated request must stay cheap). */
#define REFRESH_INTERVAL_MS 1000

struct server {
    struct kms_store *store;
    struct net_loop *loop;
    struct net_server *net;
    bool draining;
    struct net_timer *refresh_timer;
    struct crypto_x509_set *ek_ca; /* --ek-ca */
    struct mdns_responder *mdns;   /* --announce: on this loop; NULL = not announced */
    struct kms_metrics *metrics;
    struct net_server *metrics_net; /* --metrics-listen: /metrics on its own listener */
    unsigned worker;                /* 0: the first process (port file, mDNS, metrics listener) */
    pid_t children[G3_MAX_WORKERS]; /* the first process's other workers */
    size_t n_children;
    struct g1_server g1;
    struct g3_server g3;
};

static void on_health(struct net_conn *c, const struct net_request *req, void *data)
{
    (void)req;
    (void)data;
    net_conn_respond(c, 200, NULL, "ok\n", 3, NULL);
}

static void on_ready(struct net_conn *c, const struct net_request *req, void *data)
{
    struct server *srv = data;
    (void)req;
    if (srv->draining || !kms_store_ready(srv->store))
        net_conn_respond(c, 503, NULL, "not ready\n", 10, NULL);
    else
        net_conn_respond(c, 200, NULL, "ready\n", 6, NULL);
}

/* Prometheus text exposition (lib/kms/metrics.h). */
static void on_metrics(struct net_conn *c, const struct net_request *req, void *data)
{
    struct server *srv = data;
    char *text = NULL;
    size_t len = 0;
    (void)req;
    if (kms_metrics_render(srv->metrics, srv->store, net_server_conn_count(srv->net), &text, &len) < 0) {
        net_conn_respond(c, 500, NULL, "cannot render the metrics\n", 26, NULL);
        return;
    }
    net_conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
    free(text);
}

/* The main listener's drain ends the loop; the metrics listener's has nothing to add. */
static void metrics_drained(struct net_server *s, void *data)
{
    (void)s;
    (void)data;
}

/* --metrics-listen ADDR:PORT: /metrics (and /healthz) on a listener of their own, so the scrape
 * port can stay off the network the nodes use. */
static int metrics_listener(struct server *srv, const struct g3_serve_opts *o)
{
    const struct net_handler metrics = {.on_request = on_metrics, .data = srv};
    const struct net_handler health = {.on_request = on_health, .data = srv};
    struct net_server_config cfg = {0};

    cfg.address = o->metrics_addr;
    cfg.port = o->metrics_port;
    cfg.on_drained = metrics_drained;
    if (net_server_new(srv->loop, &cfg, &srv->metrics_net) < 0 ||
        net_server_route(srv->metrics_net, NULL, "/metrics", &metrics) < 0 ||
        net_server_route(srv->metrics_net, NULL, "/healthz", &health) < 0)
        return -EINVAL;
    log_info("metrics on http://%s:%u/metrics", o->metrics_listen, net_server_port(srv->metrics_net));
    return 0;
}

static void on_refresh(struct net_timer *t, void *data)
{
    struct server *srv = data;
    (void)t;
    srv->refresh_timer = NULL;
    kms_store_refresh(srv->store, false);
    if (!srv->draining)
        srv->refresh_timer = net_timer_add(srv->loop, now_ms() + REFRESH_INTERVAL_MS, on_refresh, srv);
}

static void on_tls_handshake(void *data, bool resumed) { kms_metrics_tls_handshake(data, resumed); }

/* musl's allocator (mallocng) gives a group of slots back to the kernel as soon as its last slot
 * is freed, so a server whose every exchange allocates and frees the same sizes maps and unmaps
 * pages all the time (mmap, munmap, page faults: a third of an exchange's CPU). One block kept in
 * each size class (up to 128 KiB; musl's classes are 16-byte units) keeps a group of every class
 * alive for the life of the process. Untouched, the blocks cost little resident memory. */
#define WARM_SLOTS 32
#define WARM_EVERY 4 /* up to 16 KiB: one block kept in four */
void g3_keep_malloc_warm(void)
{
    static const unsigned short units[] = {1,    2,    3,    4,    5,    6,    7,    8,    9,    10,   12,   15,
                                           18,   20,   25,   31,   36,   42,   50,   63,   72,   84,   102,  127,
                                           146,  170,  204,  255,  292,  340,  409,  511,  584,  682,  818,  1023,
                                           1169, 1364, 1637, 2047, 2340, 2730, 3276, 4095, 4680, 5460, 6552, 8191};
    static void *kept[sizeof(units) / sizeof(units[0])][WARM_SLOTS / WARM_EVERY];

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        void *tmp[WARM_SLOTS];
        size_t keep_every = units[i] <= 1023 ? WARM_EVERY : WARM_SLOTS;
        if (kept[i][0])
            continue;
        /* The blocks land in several groups of a few slots each: every keep_every-th block is
         * kept and the others freed again, so those groups stay with free slots that the next
         * requests of this size take (bursts of several, as in a big-number division). */
        for (size_t j = 0; j < WARM_SLOTS; j++)
            tmp[j] = malloc((size_t)units[i] * 16 - 4);
        for (size_t j = 0; j < WARM_SLOTS; j++) {
            if ((j + 1) % keep_every == 0)
                kept[i][j / keep_every] = tmp[j];
            else
                free(tmp[j]);
        }
    }
}

/* More descriptors, more connections: the soft limit goes up to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        log_warn("cannot raise the descriptor limit from %llu to %llu: %m", (unsigned long long)was,
                 (unsigned long long)rl.rlim_max);
    else
        log_debug("descriptor limit raised from %llu to %llu", (unsigned long long)was,
                  (unsigned long long)rl.rlim_max);
}

/* The first process passes SIGHUP and SIGTERM on to the other workers. */
static void tell_workers(const struct server *srv, int signo)
{
    for (size_t i = 0; i < srv->n_children; i++)
        (void)kill(srv->children[i], signo);
}

/* After its own drain: each worker finishes its exchanges within the same 10 s; then it is killed. */
static void reap_workers(struct server *srv)
{
    int64_t until = now_ms() + 15000;

    for (size_t i = 0; i < srv->n_children; i++) {
        int status;
        while (waitpid(srv->children[i], &status, WNOHANG) == 0) {
            if (now_ms() >= until) {
                log_warn("worker %d did not stop in time; killing it", (int)srv->children[i]);
                (void)kill(srv->children[i], SIGKILL);
                (void)waitpid(srv->children[i], &status, 0);
                break;
            }
            usleep(20000);
        }
    }
    srv->n_children = 0;
}

/* --workers N: N-1 more processes serving the same listening socket, each with its own event
 * loop and TLS state (forked before any random state exists: every TLS context and nonce stays
 * its own); the store's writes are atomic across processes and the metrics are shared. Returns
 * in each process with srv->worker set. */
static void fork_workers(struct server *srv, unsigned n)
{
    for (unsigned w = 1; w < n; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            log_warn("cannot start worker %u: %m; serving with %u", w, w);
            return;
        }
        if (pid == 0) {
            srv->worker = w;
            srv->n_children = 0;
            (void)prctl(PR_SET_PDEATHSIG, SIGTERM); /* the first process went: drain and go */
            return;
        }
        srv->children[srv->n_children++] = pid;
    }
}

static void on_signal(struct net_loop *loop, int signo, void *data)
{
    struct server *srv = data;
    (void)loop;
    if (signo != SIGINT || srv->n_children)
        tell_workers(srv, signo == SIGINT ? SIGTERM : signo);
    if (signo == SIGHUP) {
        log_info("SIGHUP: rescanning %s", kms_store_dir(srv->store));
        kms_store_refresh(srv->store, true);
        if (srv->mdns)
            mdns_responder_reload(srv->mdns);
        return;
    }
    if (srv->draining)
        return;
    srv->draining = true;
    if (srv->mdns) /* nodes stop finding a KMS that is going away */
        mdns_responder_goodbye(srv->mdns);
    net_timer_cancel(srv->refresh_timer);
    srv->refresh_timer = NULL;
    log_info("%s: finishing %zu open exchange(s), then exiting", signo == SIGTERM ? "SIGTERM" : "SIGINT",
             net_server_conn_count(srv->net));
    if (srv->metrics_net)
        net_server_drain(srv->metrics_net, 1000);
    net_server_drain(srv->net, 10000);
}

/* Through a new file with an unpredictable name renamed over path: a symlink planted at path (or
 * at any temporary name) is replaced, never written through. */
static int write_port_file(const char *path, uint16_t port)
{
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%u\n", port);

    return file_write_atomic("--port-file", path, buf, (size_t)n, 0644);
}

int g3_serve(struct kms_store *store, struct kms_audit *audit, const struct g3_serve_opts *o)
{
    struct server srv = {.store = store,
                         .g1 = {.store = store, .audit = audit, .exchange_timeout_ms = o->exchange_timeout_ms},
                         .g3 = {.store = store,
                                .audit = audit,
                                .exchange_timeout_ms = o->exchange_timeout_ms,
                                .enroll = o->enroll_tofu ? G3_ENROLL_TOFU : G3_ENROLL_REGISTERED,
                                .require_fresh_quotes = o->require_fresh_quotes}};
    struct ktls_server *tls = NULL;
    struct net_server_config cfg = {.address = o->listen_addr,
                                    .port = o->port,
                                    .limits = {.max_conns = o->max_conns, .max_conns_per_peer = o->max_conns_per_peer}};
    struct net_handler get, post, attest;
    const struct net_handler health = {.on_request = on_health, .data = &srv};
    const struct net_handler ready = {.on_request = on_ready, .data = &srv};
    const struct net_handler metrics = {.on_request = on_metrics, .data = &srv};
    uint8_t ticket_secret[KTLS_TICKET_SECRET_LEN] = {0};
    int code = EXIT_RUNTIME;

    raise_fd_limit();
    if (kms_metrics_new(&srv.metrics) < 0)
        return EXIT_RUNTIME;
    kms_audit_set_metrics(audit, srv.metrics);
    srv.g1.metrics = srv.g3.metrics = srv.metrics;
    g1_server_handlers(&srv.g1, &get, &post);
    g3_server_handler(&srv.g3, &attest);
    if (o->ek_ca) {
        if (crypto_x509_set_load(o->ek_ca, &srv.ek_ca) < 0)
            goto out;
        log_info("--ek-ca %s: %zu CA certificate(s); nodes must present an EK certificate issued by one", o->ek_ca,
                 crypto_x509_set_count(srv.ek_ca));
        srv.g1.ek_ca = srv.ek_ca;
    }
    /* Drawn before the workers fork: every worker derives the same session ticket keys from it,
     * so a node's next connection resumes whichever worker accepts it. */
    if (o->tls_cert && crypto_random(ticket_secret, sizeof(ticket_secret)) < 0)
        goto out;
    if (o->workers > 1) {
        if (net_listen(o->listen_addr, o->port, &cfg.listen_fd, &cfg.port) < 0)
            goto out;
        cfg.use_listen_fd = true;
        fork_workers(&srv, o->workers > G3_MAX_WORKERS ? G3_MAX_WORKERS : o->workers);
    }
    if (kms_store_start(store) < 0) /* etcd: this process's own client and watch */
        goto out;
    if (o->tls_cert &&
        (ktls_server_new(o->tls_cert, o->tls_key, &tls) < 0 || ktls_server_share_tickets(tls, ticket_secret) < 0))
        goto out;
    secure_wipe(ticket_secret, sizeof(ticket_secret));
    if (tls)
        ktls_server_on_handshake(tls, on_tls_handshake, srv.metrics);
    cfg.tls = tls;
    if (net_loop_new(&srv.loop) < 0)
        goto out;
    if (net_server_new(srv.loop, &cfg, &srv.net) < 0)
        goto out;
    if (net_server_route(srv.net, NULL, "/getPass", &get) < 0 ||
        net_server_route(srv.net, NULL, "/postPass", &post) < 0 ||

        net_server_route(srv.net, NULL, "/healthz", &health) < 0 ||
        net_server_route(srv.net, NULL, "/readyz", &ready) < 0)
        goto out;
    /* G3 carries the EK as a bare key, never its certificate: with --ek-ca there is nothing to
     * check, so /tpm-attestation is not served (404: our nodes and --protocol auto use G1). */
    if (!srv.ek_ca && net_server_route(srv.net, NULL, "/tpm-attestation", &attest) < 0)
        goto out;
    if (srv.ek_ca)
        log_info("--ek-ca: /tpm-attestation (G3) is not served: G3 nodes send no EK certificate");
    if (net_loop_on_signal(srv.loop, SIGTERM, on_signal, &srv) < 0 ||
        net_loop_on_signal(srv.loop, SIGINT, on_signal, &srv) < 0 ||
        net_loop_on_signal(srv.loop, SIGHUP, on_signal, &srv) < 0)
        goto out;
    if (o->metrics_listen ? srv.worker == 0 && metrics_listener(&srv, o) < 0
                          : net_server_route(srv.net, NULL, "/metrics", &metrics) < 0)
        goto out;
    if (srv.worker == 0 && o->port_file && write_port_file(o->port_file, net_server_port(srv.net)) < 0)
        goto out;
    if (srv.worker == 0 && o->announce) {
        const struct mdns_responder_config mc = {.host = o->announce,
                                                 .port = net_server_port(srv.net),
                                                 .interfaces = o->announce_ifaces,
                                                 .n_interfaces = o->n_announce_ifaces};
        if (mdns_responder_new(srv.loop, &mc, &srv.mdns) < 0)
            goto out;
    }
    srv.refresh_timer = net_timer_add(srv.loop, now_ms() + REFRESH_INTERVAL_MS, on_refresh, &srv);
    if (srv.worker > 0) {
        kms_store_refresh(store, false); /* its own inotify watch (and one rescan) before serving */
        goto run;
    }
    log_info("serving %s on %s%s:%u (%s)%s", kms_store_dir(store), tls ? "https://" : "http://",
             o->listen_addr ? o->listen_addr : "*", net_server_port(srv.net),
             o->metrics_listen ? "/getPass /postPass /tpm-attestation /healthz /readyz"
                               : "/getPass /postPass /tpm-attestation /healthz /readyz /metrics",
             srv.n_children ? " with several worker processes" : "");
    if (srv.n_children)
        log_info("%zu worker processes besides this one (--workers %u)", srv.n_children, o->workers);
    log_info("/tpm-attestation: enrollment %s%s",
             o->enroll_tofu ? "tofu (any TPM is enrolled at first contact)"
                            : "registered (TPMs without a SealedVolume are refused and listed by `challenger pending`)",
             o->require_fresh_quotes ? "; quotes must carry our nonce" : "");
run:
    g3_keep_malloc_warm();
    code = net_loop_run(srv.loop) < 0 ? EXIT_RUNTIME : EXIT_OK;
out:
    secure_wipe(ticket_secret, sizeof(ticket_secret));
    if (srv.n_children) {
        tell_workers(&srv, SIGTERM); /* also when this one stopped for another reason */
        reap_workers(&srv);
    }
    net_timer_cancel(srv.refresh_timer);
    mdns_responder_free(srv.mdns);
    net_server_free(srv.metrics_net);
    net_server_free(srv.net);
    net_loop_free(srv.loop);
    ktls_server_free(tls);
    crypto_x509_set_free(srv.ek_ca);
    kms_audit_set_metrics(audit, NULL);
    if (srv.worker == 0) /* the others share it; their exit unmaps it */
        kms_metrics_free(srv.metrics);
    return code;
}
