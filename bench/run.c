/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kms-loadgen run: C exchanges in flight against a KMS, each a non-blocking state machine on a
 * lib/net event loop (connect, TLS, WebSocket upgrade, the protocol's messages), so a thousand
 * nodes cost a thousand sockets and no thread each. Several loops (threads) share the CPU work,
 * which is mostly the EK's RSA decryption of each credential; with TLS there is one loop, as the
 * TLS sessions of the mbedTLS we build (no MBEDTLS_THREADING_C) share one random generator.
 *
 * The wire is that of an upstream node (G1: kairos-io/tpm-helpers get.go; G3: kairos-io/kairos
 * kcrypt/pkg/attestation/client.go; gorilla/websocket client): header names as Go canonicalises
 * them, G1's answer as one masked binary frame, G3's messages as text frames, and a close
 * without a close frame once the passphrase arrived. An exchange is one or more steps, each on
 * its own connection (the generated-key flow: /getPass, /postPass, /getPass). Transport
 * failures and a KMS at its connection limit (503) are retried with jittered backoff until
 * --timeout, as nodes retry; a refusal by the KMS, a wrong passphrase or a protocol error fail
 * the exchange at once. */
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"
#include "net.h"
#include "net_internal.h"
#include "g3.h"
#include "proto.h"

#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 2000
#define MAX_LOGGED_FAILURES 10

enum slot_state { S_IDLE, S_CONNECTING, S_TLS, S_UPGRADE, S_FRAMES, S_BACKOFF };

/* Why exchanges failed, for the summary on stderr. */
enum fail_kind { F_REFUSED, F_PASSPHRASE, F_HTTP, F_PROTOCOL, F_TRANSPORT, F_TIMEOUT, F_NOT_STARTED, F_KINDS };
static const char *const fail_names[F_KINDS] = {"refused",   "wrong_passphrase", "http_status", "protocol",
                                                "transport", "timeout",          "not_started"};

struct run;
struct worker;

/* One exchange in flight. */
struct slot {
    struct worker *w;
    enum slot_state st;
    size_t exchange; /* its number, 0..exchanges-1 */
    struct lg_node *node;
    int64_t started; /* first attempt, for the latency */
    int64_t backoff_ms;
    unsigned attempts;
    struct net_stream s;          /* fd -1 when closed */
    struct ktls_client *conn_tls; /* without --tls-resume: this connection's own TLS client */
    bool watched;
    uint32_t events;
    struct nbuf in, out;
    struct http_scan scan;
    struct ws_reader rd;
    char key[32];            /* Sec-WebSocket-Key */
    struct net_timer *timer; /* attempt deadline, or the end of a backoff */
    unsigned messages;       /* complete messages received from the KMS in this attempt */
    unsigned step;           /* index into run->steps */
    unsigned post_attempts;  /* ST_POST attempts so far: a retry may find its own earlier post */
    char why[160];           /* the last failure, for the log */
};

/* The steps of an exchange, each one WebSocket connection (lg_mode). */
enum step { ST_GET_STATIC, ST_GET_NONE, ST_POST, ST_GET_WIRE, ST_G3 };
#define MAX_STEPS 3

struct worker {
    struct run *run;
    struct net_loop *loop;
    struct slot *slots;
    size_t n_slots, busy;
    struct net_timer *deadline_timer;
    bool stopping;
    unsigned rand_state;
    pthread_t tid;
};

struct run {
    const struct lg_nodes *nodes;
    const struct lg_run_opts *o;
    enum step steps[MAX_STEPS];
    unsigned n_steps;
    struct net_url url;
    char *path_get, *path_post, *path_g3; /* url path joined with each endpoint */
    int acked_fd;                         /* --acked-file, or -1 */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    struct ktls_client *tls;
    /* --tls-resume: each node's own TLS client, made at its first connection, keeping the last
     * session ticket the KMS gave it (ktls_session_client offers it again); NULL until then. */
    struct ktls_client **node_tls;
    char *ca_pem; /* --tls-ca's text, for the nodes' clients */
    size_t ca_len;
    struct net_limits lim;
    int64_t start, deadline;
    atomic_size_t next, ok, retries, logged, posted, found_posted;
    atomic_size_t tls_full, tls_resumed; /* completed TLS handshakes, by kind */
    atomic_size_t fails[F_KINDS];
    atomic_size_t retried[F_KINDS]; /* attempts retried, by why they failed */
    double *latency_ms;             /* per exchange; < 0 until it succeeded */
};

static void attempt_start(struct slot *sl);
static void slot_next(struct slot *sl);

static void slot_fail_reason(struct slot *sl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void slot_fail_reason(struct slot *sl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sl->why, sizeof(sl->why), fmt, ap);
    va_end(ap);
}

/* Queues one masked client frame. */
static int queue_frame(struct slot *sl, uint8_t opcode, const void *data, size_t len)
{
    uint8_t mask[4];
    int r = crypto_random(mask, sizeof(mask));
    if (r < 0)
        return r;
    ws_frame_append(&sl->out, opcode, data, len, mask);
    return 0;
}

/* ---- G1 (kairos-io/kcrypt-challenger pkg/challenger, kairos-io/tpm-helpers get.go; the
 * generated-key flow of kairos-io/kcrypt-challenger cmd/discovery/client/client.go) ---- */

#define NO_SECRET_PREFIX "No secret found for " /* upstream's text: the node generates a key */

static enum step step_of(const struct slot *sl) { return sl->w->run->steps[sl->step]; }

/* Records an acknowledged post: the node's volume name, a line of --acked-file, on disk
 * before the exchange goes on (a test compares it with what a killed KMS kept). */
static int record_ack(struct slot *sl)
{
    struct run *run = sl->w->run;
    char line[64];
    int n;

    atomic_fetch_add(&run->posted, 1);
    if (run->acked_fd < 0)
        return 0;
    lg_volume_name(sl->node->index, line, sizeof(line) - 1);
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(run->acked_fd, line, (size_t)n) != n || fdatasync(run->acked_fd) < 0) {
        slot_fail_reason(sl, "--acked-file %s: %s", run->o->acked_file, strerror(errno));
        return -EIO;
    }
    return 0;
}

/* The challenge: the activated secret is sent back, and on /postPass the node's payload. */
static int g1_answer(struct slot *sl, const struct bytes *cred, const struct bytes *sec)
{
    uint8_t secret[64];
    size_t secret_len = 0;
    struct secret *answer, *text = NULL;
    int r;

    r = lg_activate(sl->node, cred->data, cred->len, sec->data, sec->len, secret, sizeof(secret), &secret_len);
    if (r < 0) {
        slot_fail_reason(sl, "credential activation failed: %s",
                         r == -EPERM ? "integrity check failed (not for this EK and AK)" : "malformed credential");
        return r == -EPERM ? -EPERM : -EPROTO;
    }
    answer = secret_new(secret_len);
    memcpy(answer->data, secret, secret_len);
    answer->len = secret_len;
    secure_wipe(secret, sizeof(secret));
    r = proto_answer_encode(answer, &text);
    secret_free(answer);
    if (r == 0)
        r = queue_frame(sl, WS_OP_BINARY, text->data, text->len);
    secret_free(text);
    if (r == 0 && step_of(sl) == ST_POST) {
        struct proto_payload p = {.error = (char *)"", .generated_by = (char *)"tpm"};
        struct secret *msg = NULL;
        p.passphrase = secret_new_copy(sl->node->wire, LG_WIRE_LEN);
        r = proto_payload_encode(&p, &msg);
        secret_free(p.passphrase);
        if (r == 0)
            r = queue_frame(sl, WS_OP_TEXT, msg->data, msg->len);
        secret_free(msg);
    }
    return r;
}

/* The KMS's payload (or its refusal in place of the challenge) for the step. */
static int g1_payload(struct slot *sl, struct proto_payload *p)
{
    const struct lg_node *nd = sl->node;
    const struct secret *pw = p->passphrase;

    switch (step_of(sl)) {
    case ST_GET_NONE:
        if (p->error[0] && !strncmp(p->error, NO_SECRET_PREFIX, strlen(NO_SECRET_PREFIX)))
            return 1;
        if (pw && pw->len && sl->w->run->o->shared_store) {
            /* Another poster stored this node's key first: the last step (the readback) checks it. */
            atomic_fetch_add(&sl->w->run->found_posted, 1);
            sl->step = sl->w->run->n_steps - 2;
            return 1;
        }
        if (pw && pw->len) {
            slot_fail_reason(sl, "the KMS has a passphrase for this node before it posted one");
            return -EBADMSG;
        }
        break;
    case ST_POST:
        if (!p->error[0])
            return record_ack(sl) < 0 ? -EIO : 1;
        /* A retried post whose first attempt was stored but not acknowledged (the KMS died in
         * between): the readback decides whether what is stored is ours. */
        if ((sl->post_attempts > 1 || sl->w->run->o->shared_store) && strstr(p->error, "already exists")) {
            atomic_fetch_add(&sl->w->run->found_posted, 1);
            return 1;
        }
        break;
    case ST_GET_WIRE:
        if (p->error[0])
            break;
        if (!pw || pw->len != LG_WIRE_LEN || !secure_equal(pw->data, nd->wire, LG_WIRE_LEN) ||
            strcmp(p->generated_by, "tpm")) {
            slot_fail_reason(sl, "the KMS answered with another passphrase than the one the node posted");
            return -EBADMSG;
        }
        return 1;
    default:
        if (p->error[0])
            break;
        if (!pw || pw->len != LG_PASS_LEN || !secure_equal(pw->data, nd->passphrase, LG_PASS_LEN)) {
            slot_fail_reason(sl, "the KMS answered with another passphrase than the one registered");
            return -EBADMSG;
        }
        return 1;
    }
    slot_fail_reason(sl, "the KMS refused: %s", p->error[0] ? p->error : "an empty answer");
    return -EREMOTEIO;
}

static int g1_on_message(struct slot *sl, const uint8_t *msg, size_t len)
{
    struct bytes cred = {0}, sec = {0};
    struct proto_payload p = {0};
    int r;

    if (sl->messages == 1 && proto_challenge_decode((const char *)msg, len, &cred, &sec) == 0) {
        r = g1_answer(sl, &cred, &sec);
        bytes_clear(&cred);
        bytes_clear(&sec);
        return r;
    }
    if (proto_payload_decode((const char *)msg, len, &p) < 0) {
        slot_fail_reason(sl, sl->messages == 1 ? "the KMS sent something that is neither a challenge nor an error"
                                               : "the KMS's answer is not a passphrase payload");
        return -EPROTO;
    }
    r = g1_payload(sl, &p);
    proto_payload_clear(&p);
    return r;
}

/* ---- G3 (kairos-io/kairos kcrypt/pkg/attestation/client.go; lib/g3/client.c for our
 * extensions: the quote is made over the KMS's nonce) ---- */

static int g3_on_open(struct slot *sl)
{
    const struct lg_node *nd = sl->node;
    struct proto_g3_init in = {
        .ek_public = {nd->ek_spki.p, nd->ek_spki.len},
        .ak = {{nd->ak_public.p, nd->ak_public.len},
               {nd->ak_create_data.p, nd->ak_create_data.len},
               {nd->ak_create_attestation.p, nd->ak_create_attestation.len},
               {nd->ak_create_signature.p, nd->ak_create_signature.len},
               false},
    };
    char *text = NULL;
    size_t len = 0;
    int r = proto_g3_init_encode(&in, &text, &len);

    if (r == 0)
        r = queue_frame(sl, WS_OP_TEXT, text, len);
    free(text);
    return r;
}

static int g3_proof(struct slot *sl, const struct proto_g3_challenge *ch)
{
    struct proto_g3_proof pf = {.version = "2", .pcr_mask = LG_PCR_MASK};
    struct lg_bytes quote = {0}, sig = {0};
    struct secret *msg = NULL;
    uint8_t secret[64];
    size_t secret_len = 0;
    int r;

    r = lg_activate(sl->node, ch->credential.data, ch->credential.len, ch->encrypted_secret.data,
                    ch->encrypted_secret.len, secret, sizeof(secret), &secret_len);
    if (r < 0) {
        slot_fail_reason(sl, "credential activation failed: %s",
                         r == -EPERM ? "integrity check failed (not for this EK and AK)" : "malformed credential");
        return r == -EPERM ? -EPERM : -EPROTO;
    }
    r = lg_quote(sl->node, ch->nonce.data, ch->nonce.len, &quote, &sig);
    if (r < 0) {
        secure_wipe(secret, sizeof(secret));
        slot_fail_reason(sl, "the PCR quote could not be made: %s", strerror(-r));
        return -EPROTO;
    }
    pf.secret = secret_new_copy(secret, secret_len);
    secure_wipe(secret, sizeof(secret));
    pf.quote = (struct bytes){quote.p, quote.len};
    pf.signature = (struct bytes){sig.p, sig.len};
    memcpy(pf.pcr, sl->node->pcr, sizeof(pf.pcr));
    r = proto_g3_proof_encode(&pf, &msg);
    if (r == 0)
        r = queue_frame(sl, WS_OP_TEXT, msg->data, msg->len);
    secret_free(msg);
    proto_g3_proof_clear(&pf); /* frees the quote and the signature too */
    return r;
}

static int g3_on_message(struct slot *sl, const uint8_t *msg, size_t len)
{
    char why[PROTO_G3_WHY_MAX] = "";
    int r;

    if (sl->messages == 1) {
        struct proto_g3_challenge ch = {0};
        r = proto_g3_challenge_decode((const char *)msg, len, &ch, why);
        if (r == -EREMOTEIO) {
            slot_fail_reason(sl, "the KMS refused: %s", ch.error);
        } else if (r < 0) {
            slot_fail_reason(sl, "the KMS sent something that is not a challenge: %s", why);
            r = -EPROTO;
        } else {
            r = g3_proof(sl, &ch);
        }
        proto_g3_challenge_clear(&ch);
        return r;
    }
    struct proto_g3_response resp = {0};
    const struct secret *pw;
    r = proto_g3_response_decode((const char *)msg, len, &resp, why);
    pw = resp.passphrase;
    if (r == -EREMOTEIO) {
        slot_fail_reason(sl, "the KMS refused: %s", resp.error);
    } else if (r < 0) {
        slot_fail_reason(sl, "the KMS's answer is not an attestation response: %s", why[0] ? why : "empty");
        r = -EPROTO;
    } else if (!pw || pw->len != LG_PASS_LEN || !secure_equal(pw->data, sl->node->passphrase, LG_PASS_LEN)) {
        slot_fail_reason(sl, "the KMS answered with another passphrase than the one registered");
        r = -EBADMSG;
    } else {
        r = 1;
    }
    proto_g3_response_clear(&resp);
    return r;
}

static int on_open_step(struct slot *sl) { return step_of(sl) == ST_G3 ? g3_on_open(sl) : 0; }

static int on_message_step(struct slot *sl, const uint8_t *msg, size_t len)
{
    return step_of(sl) == ST_G3 ? g3_on_message(sl, msg, len) : g1_on_message(sl, msg, len);
}

/* ---- one attempt ---- */

static bool is_final(int r)
{
    return r == -EREMOTEIO || r == -EBADMSG || r == -EPERM || r == -EPROTO || r == -EACCES || r == -ENOENT ||
           r == KTLS_ERR_CERT;
}

static enum fail_kind kind_of(int r)
{
    switch (r) {
    case -EREMOTEIO: return F_REFUSED;
    case -EBADMSG: return F_PASSPHRASE;
    case -EACCES:
    case -ENOENT:
    case -EAGAIN: return F_HTTP;
    case -EPERM:
    case -EPROTO:
    case KTLS_ERR_CERT: return F_PROTOCOL;
    case -ETIMEDOUT: return F_TIMEOUT;
    }
    return F_TRANSPORT;
}

static void set_events(struct slot *sl, uint32_t events);

static void attempt_close(struct slot *sl)
{
    if (sl->timer) {
        net_timer_cancel(sl->timer);
        sl->timer = NULL;
    }
    if (sl->watched)
        net_loop_unwatch(sl->w->loop, sl->s.fd);
    sl->watched = false;
    if (sl->s.fd >= 0)
        stream_close(&sl->s);
    sl->s = (struct net_stream){.fd = -1};
    ktls_client_free(sl->conn_tls);
    sl->conn_tls = NULL;
    if (sl->out.data)
        secure_wipe(sl->out.data, sl->out.cap);
    nbuf_free(&sl->in);
    nbuf_free(&sl->out);
    ws_reader_clear(&sl->rd);
}

static void record_failure(struct slot *sl, int r)
{
    struct run *run = sl->w->run;

    atomic_fetch_add(&run->fails[kind_of(r)], 1);
    if (atomic_fetch_add(&run->logged, 1) < MAX_LOGGED_FAILURES)
        log_error("exchange %zu (node %u) failed after %u attempt(s): %s", sl->exchange, sl->node->index, sl->attempts,
                  sl->why[0] ? sl->why : strerror(-r));
}

static void on_backoff_done(struct net_timer *t, void *data)
{
    struct slot *sl = data;
    (void)t;
    sl->timer = NULL;
    attempt_start(sl);
}

/* The end of an attempt: r == 1 success, else why it failed. */
static void attempt_end(struct slot *sl, int r)
{
    struct worker *w = sl->w;
    struct run *run = w->run;
    int64_t now;

    attempt_close(sl);
    now = now_ms();
    if (r == 1 && sl->step + 1 < run->n_steps) {
        /* The next step of the same exchange, on a new connection. */
        sl->step++;
        sl->backoff_ms = BACKOFF_FIRST_MS;
        attempt_start(sl);
        return;
    }
    if (r == 1) {
        run->latency_ms[sl->exchange] = (double)(now - sl->started);
        atomic_fetch_add(&run->ok, 1);
        slot_next(sl);
        return;
    }
    if (!sl->why[0])
        slot_fail_reason(sl, "%s", r == -EAGAIN ? "the KMS is at its connection limit (503)" : strerror(-r));
    if (!is_final(r) && !w->stopping && now + sl->backoff_ms < run->deadline) {
        int64_t wait = sl->backoff_ms / 2 + rand_r(&w->rand_state) % (sl->backoff_ms / 2 + 1);
        if (run->o->verbose)
            log_info("exchange %zu (node %u): attempt %u failed (%s); retrying in %lld ms", sl->exchange,
                     sl->node->index, sl->attempts, sl->why, (long long)wait);
        atomic_fetch_add(&run->retries, 1);
        atomic_fetch_add(&run->retried[kind_of(r)], 1);
        sl->backoff_ms = sl->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : sl->backoff_ms * 2;
        sl->st = S_BACKOFF;
        sl->timer = net_timer_add(w->loop, now + wait, on_backoff_done, sl);
        return;
    }
    record_failure(sl, r);
    slot_next(sl);
}

static void queue_request(struct slot *sl)
{
    struct run *run = sl->w->run;
    uint8_t nonce[16];
    char *key;

    (void)crypto_random(nonce, sizeof(nonce));
    key = base64_encode(nonce, sizeof(nonce), BASE64_STD, NULL);
    snprintf(sl->key, sizeof(sl->key), "%s", key);
    free(key);
    enum step st = step_of(sl);
    nbuf_appendf(&sl->out,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\n"
                 "Upgrade: websocket\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                 st == ST_G3     ? run->path_g3
                 : st == ST_POST ? run->path_post
                                 : run->path_get,
                 run->url.authority, sl->key);
    if (st != ST_G3) { /* G3 carries the EK and AK in its first message */
        nbuf_append(&sl->out, "Authorization: ", 15);
        nbuf_append(&sl->out, sl->node->token, strlen(sl->node->token));
        nbuf_append(&sl->out, "\r\n", 2);
    }
    nbuf_appendf(&sl->out, "Label: %s\r\nName: \r\nUuid: \r\n\r\n", run->o->label);
}

/* The 101 (or not) at the head of sl->in: 0 upgraded, or why not. */
static int check_upgrade(struct slot *sl)
{
    struct run *run = sl->w->run;
    struct http_head h;
    char want[WS_ACCEPT_LEN + 1];
    const char *accept;
    int head = http_find_head_end(nbuf_head(&sl->in), nbuf_unread(&sl->in), &sl->scan, &run->lim), r = 0;

    if (head == 0)
        return 1; /* more bytes needed */
    if (head < 0 || http_parse_response_head(nbuf_head(&sl->in), (size_t)head, &run->lim, &h) < 0) {
        slot_fail_reason(sl, "the KMS's answer to the upgrade is not HTTP");
        return -EPROTO;
    }
    if (h.status != 101) {
        slot_fail_reason(sl, "WebSocket upgrade refused: %d %s", h.status, h.reason ? h.reason : "");
        r = h.status == 503                      ? -EAGAIN
            : h.status == 401 || h.status == 403 ? -EACCES
            : h.status == 404                    ? -ENOENT
                                                 : -EPROTO;
    } else {
        ws_accept_key(sl->key, want);
        accept = http_head_get(&h, "Sec-WebSocket-Accept");
        if (!accept || strcmp(accept, want)) {
            slot_fail_reason(sl, "wrong Sec-WebSocket-Accept in the 101 answer");
            r = -EPROTO;
        }
    }
    http_head_clear(&h);
    if (r == 0)
        nbuf_consume(&sl->in, (size_t)head);
    return r;
}

/* What arrived: 0 go on, 1 success, or a negative errno. */
static int process(struct slot *sl)
{
    int r;

    if (sl->st == S_UPGRADE) {
        r = check_upgrade(sl);
        if (r != 0)
            return r > 0 ? 0 : r;
        sl->st = S_FRAMES;
        r = on_open_step(sl);
        if (r < 0)
            return r;
    }
    while (nbuf_unread(&sl->in)) {
        struct ws_event ev;
        size_t consumed = 0;
        uint16_t code = 0;

        r = ws_reader_next(&sl->rd, nbuf_head(&sl->in), nbuf_unread(&sl->in), &consumed, &ev, &code);
        if (r < 0) {
            slot_fail_reason(sl, "the KMS broke RFC 6455: %s", sl->rd.error ? sl->rd.error : "bad frame");
            return -EPROTO;
        }
        if (r == 0 && consumed == 0)
            return 0;
        if (r == 1 && ev.kind == WS_EV_MESSAGE) {
            sl->messages++;
            r = on_message_step(sl, ev.data, ev.len);
        } else if (r == 1 && ev.kind == WS_EV_PING) {
            r = queue_frame(sl, WS_OP_PONG, ev.data, ev.len);
        } else if (r == 1 && ev.kind == WS_EV_CLOSE) {
            slot_fail_reason(sl, "the KMS closed the WebSocket (code %u) before the end of the exchange", ev.code);
            r = -ECONNRESET;
        } else {
            r = 0;
        }
        nbuf_consume(&sl->in, consumed);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Writes what is queued and reads what arrived until the socket would block. */
static void drive(struct slot *sl)
{
    bool want_out = false;
    ssize_t n;
    int r;

    if (sl->st == S_TLS) {
        r = ktls_handshake(sl->s.tls);
        if (r == KTLS_WANT_READ || r == KTLS_WANT_WRITE) {
            set_events(sl, r == KTLS_WANT_READ ? EPOLLIN : EPOLLOUT);
            return;
        }
        if (r < 0) {
            slot_fail_reason(sl, "TLS handshake failed");
            attempt_end(sl, r);
            return;
        }
        atomic_fetch_add(ktls_session_resumed(sl->s.tls) ? &sl->w->run->tls_resumed : &sl->w->run->tls_full, 1);
        queue_request(sl);
        sl->st = S_UPGRADE;
    }
    for (;;) {
        while (nbuf_unread(&sl->out)) {
            n = stream_write(&sl->s, nbuf_head(&sl->out), nbuf_unread(&sl->out));
            if (n > 0) {
                nbuf_consume(&sl->out, (size_t)n);
                continue;
            }
            if (n == KTLS_WANT_WRITE || n == KTLS_WANT_READ) {
                want_out = n == KTLS_WANT_WRITE;
                break;
            }
            attempt_end(sl, n == 0 ? -EPIPE : (int)n);
            return;
        }
        nbuf_reserve(&sl->in, 4096);
        n = stream_read(&sl->s, sl->in.data + sl->in.len, sl->in.cap - sl->in.len);
        if (n > 0) {
            sl->in.len += (size_t)n;
            r = process(sl);
            if (r != 0) {
                attempt_end(sl, r);
                return;
            }
            continue;
        }
        if (n == KTLS_WANT_READ || n == KTLS_WANT_WRITE) {
            want_out = want_out || n == KTLS_WANT_WRITE;
            break;
        }
        if (n == 0)
            slot_fail_reason(sl, "the KMS closed the connection before the end of the exchange");
        attempt_end(sl, n == 0 ? -ECONNRESET : (int)n);
        return;
    }
    set_events(sl, EPOLLIN | (want_out ? EPOLLOUT : 0));
}

/* --tls-resume: the node's own TLS client (made at its first connection), as a node's
 * discovery-challenger has one for its whole run: its later connections, within an exchange
 * (/getPass, /postPass, /getPass; retries) and in its next exchanges, offer the last ticket. */
static int node_client(struct run *run, const struct lg_node *nd, struct ktls_client **out)
{
    size_t i = (size_t)(nd - run->nodes->v);
    int r;

    if (!run->node_tls[i]) {
        /* The system bundle only without --tls-ca: a thousand copies of it would weigh. */
        r = ktls_client_new(run->ca_pem, run->ca_len, !run->o->tls_ca, &run->node_tls[i]);
        if (r < 0)
            return r;
    }
    *out = run->node_tls[i];
    return 0;
}

static void on_connected(struct slot *sl)
{
    struct run *run = sl->w->run;
    int one = 1, r;

    (void)setsockopt(sl->s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (run->tls) {
        struct ktls_client *c;
        if (run->node_tls) {
            r = node_client(run, sl->node, &c);
        } else {
            /* A client of its own, which has no ticket to offer: a full handshake, as a node
             * process's first connection (a shared client would offer the last ticket of any). */
            r = ktls_client_new(run->ca_pem, run->ca_len, !run->o->tls_ca, &sl->conn_tls);
            c = sl->conn_tls;
        }
        if (r < 0) {
            slot_fail_reason(sl, "a TLS client could not be made");
            attempt_end(sl, r);
            return;
        }
        r = ktls_session_client(c, sl->s.fd, run->url.host, run->o->url, &sl->s.tls);
        if (r < 0) {
            attempt_end(sl, r);
            return;
        }
        sl->st = S_TLS;
    } else {
        queue_request(sl);
        sl->st = S_UPGRADE;
    }
    drive(sl);
}

static void on_io(int fd, uint32_t events, void *data)
{
    struct slot *sl = data;
    (void)fd;

    if (sl->st == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        (void)events;
        if (getsockopt(sl->s.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            slot_fail_reason(sl, "connect: %s", strerror(err));
            attempt_end(sl, -err);
            return;
        }
        on_connected(sl);
        return;
    }
    drive(sl);
}

static void set_events(struct slot *sl, uint32_t events)
{
    int r;

    if (!sl->watched) {
        r = net_loop_watch(sl->w->loop, sl->s.fd, events, on_io, sl);
        sl->watched = r == 0;
    } else if (events == sl->events) {
        return;
    } else {
        r = net_loop_watch_modify(sl->w->loop, sl->s.fd, events);
    }
    if (r < 0) {
        slot_fail_reason(sl, "epoll: %s", strerror(-r));
        attempt_end(sl, r);
        return;
    }
    sl->events = events;
}

static void on_attempt_timeout(struct net_timer *t, void *data)
{
    struct slot *sl = data;
    (void)t;
    sl->timer = NULL;
    slot_fail_reason(sl, "no answer within %lld s", (long long)(sl->w->run->o->exchange_timeout_ms / 1000));
    attempt_end(sl, -ETIMEDOUT);
}

static void attempt_start(struct slot *sl)
{
    struct run *run = sl->w->run;
    int64_t now = now_ms(), until = now + run->o->exchange_timeout_ms;
    int fd;

    sl->attempts++;
    if (step_of(sl) == ST_POST)
        sl->post_attempts++;
    sl->messages = 0;
    sl->why[0] = 0;
    sl->scan = (struct http_scan){0};
    ws_reader_init(&sl->rd, false, PROTO_MAX_MESSAGE);
    sl->timer = net_timer_add(sl->w->loop, until < run->deadline ? until : run->deadline, on_attempt_timeout, sl);
    fd = socket(run->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int r = -errno;
        slot_fail_reason(sl, "socket: %s", strerror(errno));
        attempt_end(sl, r);
        return;
    }
    sl->s = (struct net_stream){.fd = fd};
    if (connect(fd, (struct sockaddr *)&run->addr, run->addr_len) == 0) {
        on_connected(sl);
        return;
    }
    if (errno != EINPROGRESS) {
        int r = -errno;
        slot_fail_reason(sl, "connect: %s", strerror(errno));
        attempt_end(sl, r);
        return;
    }
    sl->st = S_CONNECTING;
    set_events(sl, EPOLLOUT);
}

/* The slot takes the next exchange, or goes idle; the last idle slot stops the loop. */
static void slot_next(struct slot *sl)
{
    struct worker *w = sl->w;
    struct run *run = w->run;
    size_t k;

    sl->st = S_IDLE;
    if (!w->stopping && now_ms() < run->deadline) {
        k = atomic_fetch_add(&run->next, 1);
        if (k < run->o->exchanges) {
            sl->exchange = k;
            sl->node = &run->nodes->v[run->o->only ? run->o->only[k] : k % run->nodes->n];
            sl->started = now_ms();
            sl->attempts = 0;
            sl->post_attempts = 0;
            sl->step = 0;
            sl->backoff_ms = BACKOFF_FIRST_MS;
            attempt_start(sl);
            return;
        }
    }
    if (--w->busy == 0) {
        if (w->deadline_timer) {
            net_timer_cancel(w->deadline_timer);
            w->deadline_timer = NULL;
        }
        net_loop_quit(w->loop);
    }
}

/* --timeout: what is still in flight fails. */
static void on_deadline(struct net_timer *t, void *data)
{
    struct worker *w = data;
    (void)t;
    w->deadline_timer = NULL;
    w->stopping = true;
    for (size_t i = 0; i < w->n_slots; i++) {
        struct slot *sl = &w->slots[i];
        if (sl->st == S_IDLE)
            continue;
        attempt_close(sl);
        slot_fail_reason(sl, "--timeout passed while it was in flight");
        record_failure(sl, -ETIMEDOUT);
        sl->st = S_IDLE;
        w->busy--;
    }
    net_loop_quit(w->loop);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    w->deadline_timer = net_timer_add(w->loop, w->run->deadline, on_deadline, w);
    w->busy = w->n_slots;
    for (size_t i = 0; i < w->n_slots; i++)
        slot_next(&w->slots[i]);
    if (w->busy)
        (void)net_loop_run(w->loop);
    for (size_t i = 0; i < w->n_slots; i++)
        attempt_close(&w->slots[i]);
    if (w->deadline_timer)
        net_timer_cancel(w->deadline_timer);
    w->deadline_timer = NULL;
    return NULL;
}

/* ---- set-up and summary ---- */

static int resolve(struct run *run)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    int r;

    snprintf(port, sizeof(port), "%u", run->url.port);
    r = getaddrinfo(run->url.host, port, &hints, &res);
    if (r != 0 || !res)
        return log_error_errno(-ENXIO, "--url %s: cannot resolve %s: %s", run->o->url, run->url.host, gai_strerror(r));
    memcpy(&run->addr, res->ai_addr, res->ai_addrlen);
    run->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int load_tls(struct run *run)
{
    int r;

    if (!run->url.tls)
        return 0;
    if (run->o->tls_ca) {
        r = file_read_all(run->o->tls_ca, 1 << 20, &run->ca_pem, &run->ca_len);
        if (r < 0)
            return log_error_errno(r, "--tls-ca %s: %m", run->o->tls_ca);
    }
    r = ktls_client_new(run->ca_pem, run->ca_len, true, &run->tls);
    if (r == 0 && run->o->tls_resume)
        run->node_tls = xcalloc(run->nodes->n, sizeof(*run->node_tls));
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double q)
{
    size_t i;
    if (n == 0)
        return 0;
    i = (size_t)ceil(q * (double)n);
    return sorted[i ? i - 1 : 0];
}

/* The path of endpoint under the URL's own path. */
static char *joined_path(const char *url, const char *endpoint)
{
    _cleanup_free_ char *full = net_url_join(url, endpoint);
    struct net_url u;
    char *path;

    if (net_url_parse(full, &u) < 0)
        return xstrdup(endpoint);
    path = xstrdup(u.path);
    net_url_clear(&u);
    return path;
}

int lg_run(const struct lg_nodes *nodes, const struct lg_run_opts *o)
{
    struct run run = {.nodes = nodes, .o = o};
    struct worker *workers = NULL;
    struct slot *slots = NULL;
    unsigned n_workers = o->threads ? o->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    size_t ok, failed, n_ok = 0;
    double seconds, *sorted;
    struct rlimit rl;
    int r;

    run.acked_fd = -1;
    if (o->protocol == LG_G3 && o->mode != LG_STATIC)
        return log_error_errno(-EOPNOTSUPP, "--protocol g3: only --mode static");
    if (o->protocol == LG_G3)
        run.steps[run.n_steps++] = ST_G3;
    else if (o->mode == LG_POSTPASS)
        run.steps[run.n_steps++] = ST_GET_NONE, run.steps[run.n_steps++] = ST_POST,
        run.steps[run.n_steps++] = ST_GET_WIRE;
    else
        run.steps[run.n_steps++] = o->mode == LG_READBACK ? ST_GET_WIRE : ST_GET_STATIC;
    run.lim = net_limits_resolve(NULL);
    r = net_url_parse(o->url, &run.url);
    if (r < 0)
        return log_error_errno(r, "--url %s: not an http://, https://, ws:// or wss:// URL", o->url);
    if (o->tls_resume && !run.url.tls) {
        net_url_clear(&run.url);
        return log_error_errno(-EINVAL, "--tls-resume: --url %s is not https:// or wss://", o->url);
    }
    run.path_get = joined_path(o->url, "/getPass");
    run.path_post = joined_path(o->url, "/postPass");
    run.path_g3 = joined_path(o->url, PROTO_G3_PATH);
    if (o->acked_file) {
        run.acked_fd = open(o->acked_file, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (run.acked_fd < 0) {
            r = log_error_errno(-errno, "--acked-file %s: %m", o->acked_file);
            goto out;
        }
    }
    r = resolve(&run);
    if (r == 0)
        r = load_tls(&run);
    if (r < 0)
        goto out;
    if (run.tls && n_workers > 1) {
        if (o->threads > 1)
            log_warn("--threads %u: TLS runs on one thread (the nodes' TLS clients belong to one loop)", o->threads);
        n_workers = 1;
    }
    if (n_workers < 1)
        n_workers = 1;
    if (n_workers > o->concurrency)
        n_workers = (unsigned)o->concurrency;
    /* A descriptor per exchange in flight, and a few more. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < o->concurrency + 32)
        log_warn("--concurrency %zu: only %llu file descriptors allowed (ulimit -n); connections may fail",
                 o->concurrency, (unsigned long long)rl.rlim_cur);

    run.latency_ms = xmalloc(o->exchanges * sizeof(double));
    for (size_t i = 0; i < o->exchanges; i++)
        run.latency_ms[i] = -1;
    workers = xcalloc(n_workers, sizeof(*workers));
    slots = xcalloc(o->concurrency, sizeof(*slots));
    for (size_t i = 0, next = 0; i < n_workers; i++) {
        struct worker *w = &workers[i];
        w->run = &run;
        w->n_slots = o->concurrency / n_workers + (i < o->concurrency % n_workers);
        w->slots = slots + next;
        next += w->n_slots;
        w->rand_state = (unsigned)(now_ms() ^ (int64_t)(i * 7919));
        for (size_t j = 0; j < w->n_slots; j++) {
            w->slots[j].w = w;
            w->slots[j].s.fd = -1;
        }
        r = net_loop_new(&w->loop);
        if (r < 0)
            goto out;
    }

    run.start = now_ms();
    run.deadline = run.start + o->timeout_ms;
    if (n_workers == 1) {
        worker_main(&workers[0]);
    } else {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 1 << 20);
        for (unsigned i = 0; i < n_workers; i++)
            if (pthread_create(&workers[i].tid, &attr, worker_main, &workers[i]) != 0) {
                workers[i].tid = 0;
                worker_main(&workers[i]); /* no thread: this one runs here */
            }
        pthread_attr_destroy(&attr);
        for (unsigned i = 0; i < n_workers; i++)
            if (workers[i].tid)
                pthread_join(workers[i].tid, NULL);
    }
    seconds = (double)(now_ms() - run.start) / 1000.0;

    ok = atomic_load(&run.ok);
    failed = o->exchanges - ok;
    {
        size_t counted = 0;
        for (int k = 0; k < F_KINDS; k++)
            counted += atomic_load(&run.fails[k]);
        if (failed > counted)
            atomic_fetch_add(&run.fails[F_NOT_STARTED], failed - counted);
    }
    sorted = xmalloc((ok ? ok : 1) * sizeof(double));
    for (size_t i = 0; i < o->exchanges; i++)
        if (run.latency_ms[i] >= 0 && n_ok < ok)
            sorted[n_ok++] = run.latency_ms[i];
    qsort(sorted, n_ok, sizeof(double), cmp_double);
    if (failed) {
        char line[512];
        size_t off = 0;
        for (int k = 0; k < F_KINDS; k++)
            if (atomic_load(&run.fails[k]))
                off += (size_t)snprintf(line + off, sizeof(line) - off, " %s=%zu", fail_names[k],
                                        atomic_load(&run.fails[k]));
        log_error("%zu of %zu exchanges failed:%s", failed, o->exchanges, line);
    }
    if (atomic_load(&run.retries)) {
        char line[512];
        size_t off = 0;
        for (int k = 0; k < F_KINDS; k++)
            if (atomic_load(&run.retried[k]))
                off += (size_t)snprintf(line + off, sizeof(line) - off, " %s=%zu", fail_names[k],
                                        atomic_load(&run.retried[k]));
        log_info("%zu attempts were retried:%s", atomic_load(&run.retries), line);
    }
    fflush(stderr);
    printf("{\"ok\":%zu,\"failed\":%zu,\"seconds\":%.3f,\"rate\":%.1f,\"p50_ms\":%.1f,\"p99_ms\":%.1f,"
           "\"retries\":%zu",
           ok, failed, seconds, seconds > 0 ? (double)ok / seconds : 0.0, percentile(sorted, n_ok, 0.50),
           percentile(sorted, n_ok, 0.99), atomic_load(&run.retries));
    if (o->mode == LG_POSTPASS)
        printf(",\"posted\":%zu,\"found_posted\":%zu", atomic_load(&run.posted), atomic_load(&run.found_posted));
    if (run.tls)
        printf(",\"tls_full\":%zu,\"tls_resumed\":%zu", atomic_load(&run.tls_full), atomic_load(&run.tls_resumed));
    printf("}\n");
    fflush(stdout);
    free(sorted);
    r = failed ? 1 : 0;
out:
    for (unsigned i = 0; workers && i < n_workers; i++)
        net_loop_free(workers[i].loop);
    free(workers);
    free(slots);
    free(run.latency_ms);
    free(run.path_get);
    free(run.path_post);
    free(run.path_g3);
    if (run.acked_fd >= 0)
        close(run.acked_fd);
    ktls_client_free(run.tls);
    for (size_t i = 0; run.node_tls && i < nodes->n; i++)
        ktls_client_free(run.node_tls[i]);
    free(run.node_tls);
    free(run.ca_pem);
    net_url_clear(&run.url);
    return r;
}
