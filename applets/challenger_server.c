/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The KMS's G1 endpoints (UPSTREAM.md §6.2, §7.1, §8.1), wire-compatible with upstream nodes:
 *   upgrade (token checked) -> challenge {"EC":..} -> answer {"Secret":..} -> payload or store.
 * The node proves it holds the EK private key by activating a credential made for it; the
 * activation secret is fresh per connection, so an answer replayed from another exchange fails. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "attest.h"
#include "challenger.h"
#include "mdns.h"
#include "metrics.h"
#include "net.h"
#include "proto.h"

enum exchange_state { WAIT_ANSWER, WAIT_POSTED, DONE };

/* How often the store is rescanned in the background, so /readyz answers from the last rescan
 * instead of scanning DIR per request (an unauthenticated request must stay cheap). */
#define REFRESH_INTERVAL_MS 5000

struct exchange {
    struct server *srv;
    bool post;                 /* /postPass */
    enum exchange_state state;
    char hash[2 * SHA256_LEN + 1];
    char *label, *name, *uuid;
    uint8_t expected[ATTEST_SECRET_LEN];
};

struct server {
    struct kms_store *store;
    struct kms_audit *audit;
    struct net_loop *loop;
    struct net_server *net;
    int64_t exchange_timeout_ms;
    bool draining;
    struct net_timer *refresh_timer;
    struct mdns_responder *mdns; /* --announce: on this loop; NULL = not announced */
    struct kms_metrics *metrics;
    struct net_server *metrics_net; /* --metrics-listen: /metrics on its own listener */
    struct crypto_x509_set *ek_ca; /* --ek-ca: EK certificates must chain to one; NULL = not checked */
};

static void exchange_free(struct exchange *x)
{
    if (!x)
        return;
    secure_wipe(x->expected, sizeof(x->expected));
    free(x->label);
    free(x->name);
    free(x->uuid);
    free(x);
}

static struct kms_request exchange_request(const struct exchange *x, struct net_conn *c)
{
    return (struct kms_request){.tpm_hash = x->hash, .label = x->label, .name = x->name, .uuid = x->uuid,
                                .peer = net_conn_peer(c)};
}

/* Sends {"passphrase":..,"error":..,"generated_by":..}\n as a binary frame, as upstream does. */
static void send_payload(struct net_conn *c, const struct secret *pass, const char *error, const char *generated_by)
{
    struct proto_payload p = {.passphrase = (struct secret *)pass, .error = (char *)error,
                              .generated_by = (char *)generated_by};
    char *msg = NULL;
    size_t len = 0;

    if (proto_payload_encode(&p, &msg, &len) == 0) {
        net_conn_send(c, NET_WS_BINARY, msg, len);
        secure_wipe(msg, len);
    }
    free(msg);
}

/* Refuses an exchange: the audit line, the error payload, and the close. */
static void refuse(struct exchange *x, struct net_conn *c, const char *error)
{
    struct kms_request req = exchange_request(x, c);
    struct kms_audit_event e = {.action = x->post ? "postPass" : "getPass", .req = &req, .outcome = KMS_REFUSED,
                                .reason = error};
    kms_audit_log(x->srv->audit, &e);
    log_info("%s %s from %s: refused: %s", x->post ? "/postPass" : "/getPass", x->hash[0] ? x->hash : "-",
             net_conn_peer(c), error);
    send_payload(c, NULL, error, "");
    x->state = DONE;
    net_conn_close(c, 1000, "");
}

static char *header_copy(const struct net_request *req, const char *name)
{
    const char *v = net_request_header(req, name);
    return xstrdup(v ? v : "");
}

/* --ek-ca: the token's EK must be a certificate issued by a trusted CA (a TPM vendor). The EK
 * the credential is made for is that certificate's key, so only the TPM holding it can answer.
 * Unlike upstream, which accepts any EK. */
static bool ek_cert_trusted(const struct server *srv, const char *ek_pem, char *error, size_t error_len)
{
    _cleanup_free_ uint8_t *der = NULL;
    char why[256];
    size_t len = 0;
    int r = proto_ek_pem_cert(ek_pem, &der, &len);

    if (r == -ENOENT) {
        snprintf(error, error_len, "EK certificate required: the TPM sent its EK without a certificate");
        return false;
    }
    if (r < 0) {
        snprintf(error, error_len, "EK certificate required: the token's EK is not a PEM certificate");
        return false;
    }
    r = crypto_x509_chain_verify(der, len, srv->ek_ca, why, sizeof(why));
    if (r < 0) {
        snprintf(error, error_len, "EK certificate not trusted: %s", why);
        return false;
    }
    return true;
}

/* The upgrade: decode the token, check the AK, compute the TPM hash, send the challenge. */
static void on_open(struct net_conn *c, const struct net_request *req, void *data, bool post)
{
    struct server *srv = data;
    struct exchange *x = xcalloc(1, sizeof(*x));
    const char *auth = net_request_header(req, "Authorization");
    struct proto_token tok = {0};
    struct attest_ak_params ak;
    struct attest_credential cred;
    struct rsa_pub ek;
    uint8_t name[ATTEST_NAME_MAX], digest[SHA256_LEN], *spki = NULL;
    size_t name_len = 0, spki_len = 0;
    char why[ATTEST_WHY_MAX] = "", *msg = NULL;
    size_t msg_len;
    int r;

    x->srv = srv;
    x->post = post;
    x->label = header_copy(req, PROTO_HDR_LABEL);
    x->name = header_copy(req, PROTO_HDR_NAME);
    x->uuid = header_copy(req, PROTO_HDR_UUID);
    net_conn_set_data(c, x);
    net_conn_set_deadline(c, now_ms() + srv->exchange_timeout_ms);

    if (!auth || proto_token_decode(auth, strlen(auth), &tok) < 0) {
        refuse(x, c, auth ? "invalid token: not a TPM attestation token" : "missing Authorization header");
        return;
    }
    r = proto_ek_pem_public(tok.ek_pem, &ek);
    if (r < 0) {
        refuse(x, c, r == -EPROTONOSUPPORT ? "invalid token: EK is not an RSA key" : "invalid pem type");
        goto out;
    }
    if (crypto_rsa_spki_der(&ek, &spki, &spki_len) < 0) {
        refuse(x, c, "invalid token: EK public key");
        goto out;
    }
    crypto_sha256(spki, spki_len, digest);
    hex_encode(digest, sizeof(digest), x->hash);
    if (srv->ek_ca) {
        char error[ATTEST_WHY_MAX + 64];
        if (!ek_cert_trusted(srv, tok.ek_pem, error, sizeof(error))) {
            refuse(x, c, error);
            goto out;
        }
    }
    ak = (struct attest_ak_params){
        {tok.ak.public_area.data, tok.ak.public_area.len},
        {tok.ak.create_data.data, tok.ak.create_data.len},
        {tok.ak.create_attestation.data, tok.ak.create_attestation.len},
        {tok.ak.create_signature.data, tok.ak.create_signature.len},
    };
    if (attest_check_ak_params(&ak, 0, name, &name_len, why) < 0) {
        char error[ATTEST_WHY_MAX + 32];
        snprintf(error, sizeof(error), "invalid AK parameters: %s", why);
        refuse(x, c, error);
        goto out;
    }
    if (crypto_random(x->expected, sizeof(x->expected)) < 0 ||
        attest_make_credential(&ek, name, name_len, x->expected, sizeof(x->expected), &cred) < 0) {
        refuse(x, c, "cannot make a credential for this EK");
        goto out;
    }
    {
        struct proto_bytes cb = {cred.id_object, cred.id_object_len};
        struct proto_bytes sb = {cred.encrypted_secret, cred.encrypted_secret_len};
        if (proto_challenge_encode(&cb, &sb, &msg, &msg_len) == 0)
            net_conn_send(c, NET_WS_BINARY, msg, msg_len);
        free(msg);
    }
    x->state = WAIT_ANSWER;
out:
    free(spki);
    proto_token_clear(&tok);
}

static void on_open_get(struct net_conn *c, const struct net_request *req, void *data)
{
    on_open(c, req, data, false);
}

static void on_open_post(struct net_conn *c, const struct net_request *req, void *data)
{
    on_open(c, req, data, true);
}

static void serve_get(struct exchange *x, struct net_conn *c)
{
    struct kms_request req = exchange_request(x, c);
    struct kms_reply reply = {0};

    kms_get_pass(x->srv->store, &req, &reply);
    if (reply.outcome == KMS_OK) {
        log_info("/getPass %s from %s: served %s", x->hash, net_conn_peer(c), reply.secret_name ? reply.secret_name : "");
        send_payload(c, reply.passphrase, "", reply.generated_by ? reply.generated_by : "");
    } else {
        log_info("/getPass %s from %s: refused: %s", x->hash, net_conn_peer(c), reply.error);
        send_payload(c, NULL, reply.error, "");
    }
    kms_reply_clear(&reply);
    x->state = DONE;
    net_conn_close(c, 1000, "");
}

/* /postPass: after the answer, the node sends the payload; we store it and, unlike upstream,
 * acknowledge once it is durable (an empty error means stored; upstream nodes do not read it). */
static void serve_post(struct exchange *x, struct net_conn *c, const uint8_t *msg, size_t len)
{
    struct kms_request req = exchange_request(x, c);
    struct proto_payload p = {0};
    struct kms_reply reply = {0};

    if (proto_payload_decode((const char *)msg, len, &p) < 0 || !p.passphrase || p.passphrase->len == 0) {
        proto_payload_clear(&p);
        refuse(x, c, "invalid answer from client: doesn't contain any passphrase");
        return;
    }
    kms_post_pass(x->srv->store, &req, p.passphrase, p.generated_by, &reply);
    if (reply.outcome == KMS_OK)
        log_info("/postPass %s from %s: stored %s", x->hash, net_conn_peer(c), reply.secret_name ? reply.secret_name : "");
    else
        log_info("/postPass %s from %s: refused: %s", x->hash, net_conn_peer(c), reply.error);
    send_payload(c, NULL, reply.outcome == KMS_OK ? "" : reply.error, "");
    kms_reply_clear(&reply);
    proto_payload_clear(&p);
    x->state = DONE;
    net_conn_close(c, 1000, "");
}

static void on_message(struct net_conn *c, enum net_ws_type type, const uint8_t *msg, size_t len, void *data)
{
    struct exchange *x = net_conn_data(c);
    struct secret *answer = NULL;
    (void)type; /* text and binary alike, as gorilla's readers (§6) */
    (void)data;

    if (!x || x->state == DONE)
        return;
    if (x->state == WAIT_POSTED) {
        serve_post(x, c, msg, len);
        return;
    }
    if (proto_answer_decode((const char *)msg, len, &answer) < 0) {
        refuse(x, c, "invalid challenge response");
        return;
    }
    if (answer->len != sizeof(x->expected) || !secure_equal(answer->data, x->expected, sizeof(x->expected))) {
        secret_free(answer);
        refuse(x, c, "invalid challenge response");
        return;
    }
    secret_free(answer);
    if (x->post)
        x->state = WAIT_POSTED;
    else
        serve_get(x, c);
}

static void on_close(struct net_conn *c, enum net_close_reason why, void *data)
{
    struct exchange *x = net_conn_data(c);
    (void)data;

    if (x)
        kms_metrics_observe(x->srv->metrics, x->post ? "/postPass" : "/getPass", net_conn_busy_seconds(c));
    if (x && x->state != DONE && why == NET_CLOSE_TIMEOUT) {
        struct kms_request req = exchange_request(x, c);
        struct kms_audit_event e = {.action = x->post ? "postPass" : "getPass", .req = &req,
                                    .outcome = KMS_REFUSED, .reason = "the node stalled; exchange timed out"};
        kms_audit_log(x->srv->audit, &e);
        log_info("%s from %s: the node stalled; dropped", x->post ? "/postPass" : "/getPass", net_conn_peer(c));
    }
    exchange_free(x);
    net_conn_set_data(c, NULL);
}

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
static int metrics_listener(struct server *srv, const char *listen)
{
    const struct net_handler metrics = {.on_request = on_metrics, .data = srv};
    const struct net_handler health = {.on_request = on_health, .data = srv};
    struct net_server_config cfg = {0};
    char addr[128];
    uint32_t port;
    const char *colon = strrchr(listen, ':');

    if (!colon || (size_t)(colon - listen) >= sizeof(addr) || parse_u32(colon + 1, 65535, &port) < 0)
        return log_error_errno(-EINVAL, "--metrics-listen %s: expected ADDR:PORT", listen);
    snprintf(addr, sizeof(addr), "%.*s", (int)(colon - listen), listen);
    if (addr[0] == '[' && addr[strlen(addr) - 1] == ']') {
        memmove(addr, addr + 1, strlen(addr));
        addr[strlen(addr) - 1] = 0;
    }
    cfg.address = addr[0] ? addr : NULL;
    cfg.port = (uint16_t)port;
    cfg.on_drained = metrics_drained;
    if (net_server_new(srv->loop, &cfg, &srv->metrics_net) < 0 ||
        net_server_route(srv->metrics_net, NULL, "/metrics", &metrics) < 0 ||
        net_server_route(srv->metrics_net, NULL, "/healthz", &health) < 0)
        return -EINVAL;
    log_info("metrics on http://%s:%u/metrics", listen, net_server_port(srv->metrics_net));
    return 0;
}

static void on_refresh(struct net_timer *t, void *data)
{
    struct server *srv = data;
    (void)t;
    srv->refresh_timer = NULL;
    kms_store_refresh(srv->store, true);
    if (!srv->draining)
        srv->refresh_timer = net_timer_add(srv->loop, now_ms() + REFRESH_INTERVAL_MS, on_refresh, srv);
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

static void on_signal(struct net_loop *loop, int signo, void *data)
{
    struct server *srv = data;
    (void)loop;
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

int challenger_serve(struct kms_store *store, struct kms_audit *audit, const struct challenger_server_opts *o)
{
    struct server srv = {.store = store, .audit = audit, .exchange_timeout_ms = o->exchange_timeout_ms};
    struct ktls_server *tls = NULL;
    struct net_server_config cfg = {.address = o->listen_addr, .port = o->port,
                                    .limits = {.max_conns = o->max_conns, .max_conns_per_peer = o->max_conns_per_peer}};
    const struct net_handler get = {.on_open = on_open_get, .on_message = on_message, .on_close = on_close, .data = &srv};
    const struct net_handler post = {.on_open = on_open_post, .on_message = on_message, .on_close = on_close,
                                     .data = &srv};
    const struct net_handler health = {.on_request = on_health, .data = &srv};
    const struct net_handler ready = {.on_request = on_ready, .data = &srv};
    const struct net_handler metrics = {.on_request = on_metrics, .data = &srv};
    int code = EXIT_RUNTIME;

    raise_fd_limit();
    if (o->ek_ca) {
        if (crypto_x509_set_load(o->ek_ca, &srv.ek_ca) < 0)
            return EXIT_RUNTIME;
        log_info("--ek-ca %s: %zu CA certificate(s); nodes must present an EK certificate issued by one", o->ek_ca,
                 crypto_x509_set_count(srv.ek_ca));
    }
    if (o->tls_cert && ktls_server_new(o->tls_cert, o->tls_key, &tls) < 0) {
        crypto_x509_set_free(srv.ek_ca);
        return EXIT_RUNTIME;
    }
    cfg.tls = tls;
    if (net_loop_new(&srv.loop) < 0)
        goto out;
    if (net_server_new(srv.loop, &cfg, &srv.net) < 0)
        goto out;
    if (net_server_route(srv.net, NULL, "/getPass", &get) < 0 || net_server_route(srv.net, NULL, "/postPass", &post) < 0 ||
        net_server_route(srv.net, NULL, "/healthz", &health) < 0 || net_server_route(srv.net, NULL, "/readyz", &ready) < 0)
        goto out;
    kms_metrics_new(&srv.metrics);
    kms_audit_set_metrics(audit, srv.metrics);
    if (o->metrics_listen ? metrics_listener(&srv, o->metrics_listen) < 0
                          : net_server_route(srv.net, NULL, "/metrics", &metrics) < 0)
        goto out;
    if (net_loop_on_signal(srv.loop, SIGTERM, on_signal, &srv) < 0 || net_loop_on_signal(srv.loop, SIGINT, on_signal, &srv) < 0 ||
        net_loop_on_signal(srv.loop, SIGHUP, on_signal, &srv) < 0)
        goto out;
    if (o->port_file && write_port_file(o->port_file, net_server_port(srv.net)) < 0)
        goto out;
    if (o->announce) {
        const struct mdns_responder_config mc = {.host = o->announce, .port = net_server_port(srv.net),
                                                 .interfaces = o->announce_ifaces, .n_interfaces = o->n_announce_ifaces};
        if (mdns_responder_new(srv.loop, &mc, &srv.mdns) < 0)
            goto out;
    }
    srv.refresh_timer = net_timer_add(srv.loop, now_ms() + REFRESH_INTERVAL_MS, on_refresh, &srv);
    log_info("serving %s on %s%s:%u (%s)", kms_store_dir(store), tls ? "https://" : "http://",
             o->listen_addr ? o->listen_addr : "*", net_server_port(srv.net), "/getPass /postPass /healthz /readyz");
    code = net_loop_run(srv.loop) < 0 ? EXIT_RUNTIME : EXIT_OK;
out:
    net_timer_cancel(srv.refresh_timer);
    mdns_responder_free(srv.mdns);
    net_server_free(srv.metrics_net);
    net_server_free(srv.net);
    kms_audit_set_metrics(audit, NULL);
    kms_metrics_free(srv.metrics);
    net_loop_free(srv.loop);
    ktls_server_free(tls);
    crypto_x509_set_free(srv.ek_ca);
    return code;
}
