/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* TLS contexts for lib/net: mbedTLS configurations and sessions over non-blocking sockets. */
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/sha1.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "crypto.h"
#include "tls.h"

#define PEM_FILE_MAX (1024 * 1024)
/* Session tickets: valid this long. Without a shared secret the ticket key is made in memory at
 * start and replaced by a new random one when it is this old; with one (ktls_server_share_tickets)
 * the key of each such period is derived from it. The previous key still decrypts either way. */
#define TICKET_LIFETIME_S 3600
#define TICKET_KEY_LEN 32 /* AES-256-GCM */

/* Where Debian, Fedora/RHEL, Alpine and Arch keep the system CA bundle. */
static const char *const system_bundles[] = {
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
};

struct ktls_server {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_ticket_context ticket;
    uint8_t ticket_secret[KTLS_TICKET_SECRET_LEN]; /* with shared_tickets: what the keys derive from */
    bool shared_tickets;
    int64_t ticket_period; /* the period whose derived key is active; -1: none yet */
    void (*on_handshake)(void *data, bool resumed);
    void *on_handshake_data;
};

struct ktls_client {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt roots;      /* configured certificates + system bundle */
    mbedtls_x509_crt configured; /* the configured certificates alone, for pinning */
    bool have_configured;
    mbedtls_x509_crt own_cert; /* our certificate for servers that ask for one (mTLS) */
    mbedtls_pk_context own_key;
    /* The last session (ticket) a server gave us, offered again to the same host name: a node's
     * next connections resume instead of paying a full handshake. In memory only. */
    mbedtls_ssl_session saved;
    bool have_saved;
    char *saved_host;
};

struct ktls_session {
    mbedtls_ssl_context ssl;
    struct ktls_client *client; /* NULL on the server side */
    struct ktls_server *server; /* NULL on the client side */
    bool offered;               /* client: a saved session was offered */
    bool verified;              /* client: the peer's certificate was verified (a full handshake) */
    bool resumed;               /* server: the client's ticket was accepted */
    int fd;
    int sock_errno; /* errno of the last failed send/recv */
    enum log_level fail_level;
    uint32_t chain_flags; /* verify flags of the certificates above the leaf */
    uint32_t verify_flags;
    char *peer;
    char *host;
};

void ktls_sha1(const void *in, size_t n, uint8_t out[SHA1_LEN]) { (void)mbedtls_sha1(in, n, out); }

static int tls_init(void)
{
    /* TLS 1.3 and the RNG both run on PSA; psa_crypto_init is idempotent. Its RNG is a DRBG
     * seeded from the platform entropy source (getrandom). */
    if (psa_crypto_init() != PSA_SUCCESS)
        return log_error_errno(-EIO, "TLS: cannot initialise the crypto library");
    return 0;
}

int ktls_after_fork(void)
{
    /* The PSA generator is a DRBG in this process's memory: a forked child would draw the same
     * numbers as its parent (TLS randoms, ephemeral keys). Its state, and the PSA key slots, are
     * dropped and the generator is seeded again from the kernel. */
    mbedtls_psa_crypto_free();
    return tls_init();
}

static const char *tls_strerror(int ret, char *buf, size_t n)
{
    mbedtls_strerror(ret, buf, n);
    return buf;
}

/* Reads a PEM file and parses it as certificates; names the file in the error. */
static int load_pem_file(const char *path, char **out, size_t *len)
{
    int r = file_read_all(path, PEM_FILE_MAX, out, len);
    if (r < 0)
        return log_error_errno(r, "%s: cannot read: %m", path);
    return 0;
}

/* Reads a PEM certificate and its private key into crt and key, and checks that they belong
 * together. The key's text is wiped before it is freed. */
static int load_cert_key(const char *cert_file, const char *key_file, mbedtls_x509_crt *crt, mbedtls_pk_context *key)
{
    _cleanup_free_ char *cert_pem = NULL, *key_pem = NULL;
    size_t cert_len, key_len = 0;
    char err[128];
    int r, ret;

    if ((r = load_pem_file(cert_file, &cert_pem, &cert_len)) < 0)
        return r;
    if ((r = load_pem_file(key_file, &key_pem, &key_len)) < 0)
        return r;
    /* mbedTLS wants the PEM's terminating NUL counted in the length. */
    ret = mbedtls_x509_crt_parse(crt, (const unsigned char *)cert_pem, cert_len + 1);
    if (ret != 0)
        r = log_error_errno(-EINVAL, "%s: not a PEM certificate: %s", cert_file, tls_strerror(ret, err, sizeof(err)));
    else if ((ret = mbedtls_pk_parse_key(key, (const unsigned char *)key_pem, key_len + 1, NULL, 0,
                                         mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE)) != 0)
        r = log_error_errno(-EINVAL, "%s: not a PEM private key: %s", key_file, tls_strerror(ret, err, sizeof(err)));
    else if (mbedtls_pk_check_pair(&crt->pk, key, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE) != 0)
        r = log_error_errno(-EINVAL, "%s: the private key does not match the certificate %s", key_file, cert_file);
    secure_wipe(key_pem, key_len);
    return r;
}

/* What both ends share: mbedTLS's default suites, TLS 1.2 at least, the PSA random generator. */
static int conf_defaults(mbedtls_ssl_config *conf, int endpoint)
{
    int ret = mbedtls_ssl_config_defaults(conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0)
        return ret;
    mbedtls_ssl_conf_rng(conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
    mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
    return 0;
}

/* The session whose handshake step runs now (mbedTLS's ticket callbacks do not name it). */
static __thread struct ktls_session *in_handshake;

/* mbedTLS's ticket check, noting that the session in handshake resumes. */
static int ticket_parse(void *p_ticket, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
    int ret = mbedtls_ssl_ticket_parse(p_ticket, session, buf, len);
    if (ret == 0 && in_handshake)
        in_handshake->resumed = true;
    return ret;
}

int ktls_server_new(const char *cert_file, const char *key_file, struct ktls_server **out)
{
    char err[128];
    int r, ret;

    if ((r = tls_init()) < 0)
        return r;
    struct ktls_server *s = xcalloc(1, sizeof(*s));
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_x509_crt_init(&s->cert);
    mbedtls_pk_init(&s->key);
    mbedtls_ssl_ticket_init(&s->ticket);

    if ((r = load_cert_key(cert_file, key_file, &s->cert, &s->key)) < 0)
        goto fail;
    ret = conf_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER);
    if (ret == 0)
        ret = mbedtls_ssl_conf_own_cert(&s->conf, &s->cert, &s->key);
    if (ret == 0)
        ret = mbedtls_ssl_ticket_setup(&s->ticket, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE,
                                       MBEDTLS_CIPHER_AES_256_GCM, TICKET_LIFETIME_S);
    if (ret == 0)
        mbedtls_ssl_conf_session_tickets_cb(&s->conf, mbedtls_ssl_ticket_write, ticket_parse, &s->ticket);
    if (ret != 0) {
        r = log_error_errno(-EIO, "TLS server configuration failed: %s", tls_strerror(ret, err, sizeof(err)));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    ktls_server_free(s);
    return r;
}

void ktls_server_free(struct ktls_server *s)
{
    if (!s)
        return;
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_x509_crt_free(&s->cert);
    mbedtls_pk_free(&s->key);
    mbedtls_ssl_ticket_free(&s->ticket);
    secure_wipe(s->ticket_secret, sizeof(s->ticket_secret));
    free(s);
}

/* HMAC-SHA256 under the ticket secret of label (with its NUL) and the period's number (8 bytes,
 * big-endian). */
static int ticket_derive(const struct ktls_server *s, const char *label, int64_t period, uint8_t out[SHA256_LEN])
{
    uint8_t in[48];
    size_t n = strlen(label) + 1;

    if (n + 8 > sizeof(in))
        return -EINVAL;
    memcpy(in, label, n);
    for (int i = 0; i < 8; i++)
        in[n + (size_t)i] = (uint8_t)((uint64_t)period >> (56 - 8 * i));
    return crypto_hmac(CRYPTO_SHA256, s->ticket_secret, sizeof(s->ticket_secret), in, n + 8, out);
}

/* Makes the derived key of the current period the active one (the one before stays for decrypting),
 * before mbedTLS would replace an expired key by a random one of its own. Every process holding
 * the secret derives the same key and name, and switches at the same wall-clock moment. */
static int ticket_keys_update(struct ktls_server *s)
{
    uint8_t key[SHA256_LEN], name[SHA256_LEN];
    int64_t period = (int64_t)time(NULL) / TICKET_LIFETIME_S;
    int ret = -1;

    if (period == s->ticket_period)
        return 0;
    if (ticket_derive(s, "kairos-kms tls ticket key", period, key) == 0 &&
        ticket_derive(s, "kairos-kms tls ticket name", period, name) == 0)
        ret = mbedtls_ssl_ticket_rotate(&s->ticket, name, MBEDTLS_SSL_TICKET_KEY_NAME_BYTES, key, TICKET_KEY_LEN,
                                        TICKET_LIFETIME_S);
    secure_wipe(key, sizeof(key));
    if (ret != 0)
        return log_error_errno(-EIO, "cannot set the TLS session ticket key; tickets are not shared");
    s->ticket_period = period;
    return 0;
}

int ktls_server_share_tickets(struct ktls_server *s, const uint8_t secret[KTLS_TICKET_SECRET_LEN])
{
    memcpy(s->ticket_secret, secret, sizeof(s->ticket_secret));
    s->shared_tickets = true;
    s->ticket_period = -1;
    return ticket_keys_update(s);
}

void ktls_server_on_handshake(struct ktls_server *s, void (*cb)(void *data, bool resumed), void *data)
{
    s->on_handshake = cb;
    s->on_handshake_data = data;
}

int ktls_client_new(const char *pem, size_t pem_len, bool system_roots, struct ktls_client **out)
{
    char err[128];
    int r, ret;

    if ((r = tls_init()) < 0)
        return r;
    struct ktls_client *c = xcalloc(1, sizeof(*c));
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->roots);
    mbedtls_x509_crt_init(&c->configured);
    mbedtls_x509_crt_init(&c->own_cert);
    mbedtls_pk_init(&c->own_key);
    mbedtls_ssl_session_init(&c->saved);

    if (pem && pem_len > 0) {
        /* PEM parsing needs a NUL-terminated buffer whose length counts the NUL. */
        _cleanup_free_ char *copy = xmalloc(pem_len + 1);
        memcpy(copy, pem, pem_len);
        copy[pem_len] = 0;
        ret = mbedtls_x509_crt_parse(&c->configured, (const unsigned char *)copy, pem_len + 1);
        if (ret < 0 || c->configured.raw.len == 0) {
            r = log_error_errno(-EINVAL, "TLS: the configured certificate is not a PEM certificate: %s",
                                ret < 0 ? tls_strerror(ret, err, sizeof(err)) : "no certificate found");
            goto fail;
        }
        (void)mbedtls_x509_crt_parse(&c->roots, (const unsigned char *)copy, pem_len + 1);
        c->have_configured = true;
    }
    if (system_roots) {
        for (size_t i = 0; i < sizeof(system_bundles) / sizeof(system_bundles[0]); i++) {
            if (access(system_bundles[i], R_OK) == 0) {
                /* A positive result counts certificates it skipped; the rest are loaded. */
                (void)mbedtls_x509_crt_parse_file(&c->roots, system_bundles[i]);
                break;
            }
        }
    }
    ret = conf_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT);
    if (ret != 0) {
        r = log_error_errno(-EIO, "TLS client configuration failed: %s", tls_strerror(ret, err, sizeof(err)));
        goto fail;
    }
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->roots, NULL);
    mbedtls_ssl_conf_session_tickets(&c->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(&c->conf,
                                                             MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
    *out = c;
    return 0;
fail:
    ktls_client_free(c);
    return r;
}

void ktls_client_free(struct ktls_client *c)
{
    if (!c)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->roots);
    mbedtls_x509_crt_free(&c->configured);
    mbedtls_x509_crt_free(&c->own_cert);
    mbedtls_pk_free(&c->own_key);
    mbedtls_ssl_session_free(&c->saved);
    free(c->saved_host);
    free(c);
}

int ktls_client_set_cert(struct ktls_client *c, const char *cert_file, const char *key_file)
{
    char err[128];
    int r, ret;

    if (c->own_cert.raw.len)
        return log_error_errno(-EALREADY, "TLS: a client certificate is already set");
    if ((r = load_cert_key(cert_file, key_file, &c->own_cert, &c->own_key)) < 0)
        goto fail;
    ret = mbedtls_ssl_conf_own_cert(&c->conf, &c->own_cert, &c->own_key);
    if (ret != 0) {
        r = log_error_errno(-EIO, "TLS client certificate configuration failed: %s",
                            tls_strerror(ret, err, sizeof(err)));
        goto fail;
    }
    return 0;
fail:
    mbedtls_x509_crt_free(&c->own_cert);
    mbedtls_pk_free(&c->own_key);
    mbedtls_x509_crt_init(&c->own_cert);
    mbedtls_pk_init(&c->own_key);
    return r;
}

/* ---- socket callbacks: non-blocking, so EAGAIN becomes WANT_READ/WANT_WRITE ---- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct ktls_session *t = ctx;
    for (;;) {
        ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        t->sock_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        if (errno == EPIPE || errno == ECONNRESET)
            return MBEDTLS_ERR_NET_CONN_RESET;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct ktls_session *t = ctx;
    for (;;) {
        ssize_t n = recv(t->fd, buf, len, 0);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        t->sock_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MBEDTLS_ERR_SSL_WANT_READ;
        if (errno == ECONNRESET)
            return MBEDTLS_ERR_NET_CONN_RESET;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

/* Called for each certificate of the peer's chain, the leaf (depth 0) last. The flags of the
 * upper certificates are carried down to the leaf, so that a leaf equal to a configured
 * certificate (pinning) clears the whole chain's verdict in one place. */
static int verify_cb(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct ktls_session *t = ctx;
    const mbedtls_x509_crt *pin;

    t->verified = true;
    if (depth > 0) {
        t->chain_flags |= *flags;
        *flags = 0;
        return 0;
    }
    for (pin = &t->client->configured; t->client->have_configured && pin; pin = pin->next) {
        if (pin->raw.len == crt->raw.len && memcmp(pin->raw.p, crt->raw.p, crt->raw.len) == 0) {
            *flags = 0;
            t->chain_flags = 0;
            return 0;
        }
    }
    *flags |= t->chain_flags;
    t->verify_flags = *flags;
    return 0;
}

static struct ktls_session *session_new(const mbedtls_ssl_config *conf, int fd, const char *peer)
{
    struct ktls_session *t = xcalloc(1, sizeof(*t));
    mbedtls_ssl_init(&t->ssl);
    t->fd = fd;
    t->peer = xstrdup(peer ? peer : "TLS peer");
    if (mbedtls_ssl_setup(&t->ssl, conf) != 0) {
        ktls_session_free(t);
        return NULL;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    return t;
}

int ktls_session_server(struct ktls_server *s, int fd, const char *peer, struct ktls_session **out)
{
    struct ktls_session *t;

    if (s->shared_tickets)
        (void)ticket_keys_update(s); /* a failure keeps the last key, until mbedTLS makes its own */
    t = session_new(&s->conf, fd, peer);
    if (!t)
        return log_error_errno(-ENOMEM, "%s: cannot set up a TLS session", peer);
    t->fail_level = LOG_INFO;
    t->server = s;
    *out = t;
    return 0;
}

int ktls_session_client(struct ktls_client *c, int fd, const char *host, const char *peer, struct ktls_session **out)
{
    struct ktls_session *t = session_new(&c->conf, fd, peer);
    if (!t)
        return log_error_errno(-ENOMEM, "%s: cannot set up a TLS session", peer);
    t->fail_level = LOG_ERR;
    t->client = c;
    t->host = xstrdup(host);
    if (mbedtls_ssl_set_hostname(&t->ssl, host) != 0) {
        ktls_session_free(t);
        return log_error_errno(-EINVAL, "%s: bad TLS server name %s", peer, host);
    }
    mbedtls_ssl_set_verify(&t->ssl, verify_cb, t);
    /* Resumption: the host's last ticket. A server that does not take it answers with a full
     * handshake (and the certificate is then verified as always). */
    if (c->have_saved && c->saved_host && !strcmp(c->saved_host, host) &&
        mbedtls_ssl_set_session(&t->ssl, &c->saved) == 0)
        t->offered = true;
    *out = t;
    return 0;
}

/* Client: keeps the session (with the ticket just received) for the next connection to host. */
static void save_session(struct ktls_session *t)
{
    struct ktls_client *c = t->client;

    mbedtls_ssl_session_free(&c->saved);
    mbedtls_ssl_session_init(&c->saved);
    c->have_saved = mbedtls_ssl_get_session(&t->ssl, &c->saved) == 0;
    if (c->have_saved && (!c->saved_host || strcmp(c->saved_host, t->host))) {
        free(c->saved_host);
        c->saved_host = xstrdup(t->host);
    }
}

void ktls_session_free(struct ktls_session *t)
{
    if (!t)
        return;
    mbedtls_ssl_free(&t->ssl);
    free(t->peer);
    free(t->host);
    free(t);
}

/* The reasons of a refused certificate, in words an operator acts on. */
static void describe_flags(const struct ktls_session *t, uint32_t flags, char *out, size_t n)
{
    size_t len = 0;
    out[0] = 0;
#define ADD(...)                                                                \
    do {                                                                        \
        if (len < n)                                                            \
            len += (size_t)snprintf(out + len, n - len, "%s", len ? "; " : ""); \
        if (len < n)                                                            \
            len += (size_t)snprintf(out + len, n - len, __VA_ARGS__);           \
    } while (0)
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        ADD("%s", t->client->have_configured ? "not signed by the configured CA and not the configured certificate"
                                             : "not signed by a trusted CA (no certificate configured)");
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
        ADD("certificate is not valid for host %s", t->host);
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        ADD("certificate has expired");
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        ADD("certificate is not valid yet");
    flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_NOT_TRUSTED | MBEDTLS_X509_BADCERT_CN_MISMATCH |
                         MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
    if (flags) {
        char info[256], *nl;
        mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
        for (char *p = info; (nl = strchr(p, '\n')); p = nl + 1)
            *nl = nl[1] ? ';' : 0;
        ADD("%s", info);
    }
#undef ADD
}

/* Maps an mbedTLS result to ours, logging failures once. */
static int map_error(struct ktls_session *t, int ret, const char *what)
{
    char err[160];

    switch (ret) {
    case MBEDTLS_ERR_SSL_WANT_READ: return KTLS_WANT_READ;
    case MBEDTLS_ERR_SSL_WANT_WRITE: return KTLS_WANT_WRITE;
    case MBEDTLS_ERR_NET_CONN_RESET:
        log_msg(t->fail_level, "%s: connection reset by peer during %s", t->peer, what);
        return -ECONNRESET;
    case MBEDTLS_ERR_SSL_CONN_EOF:
        log_msg(t->fail_level, "%s: connection closed by peer during %s", t->peer, what);
        return -ECONNRESET;
    case MBEDTLS_ERR_NET_SEND_FAILED:
    case MBEDTLS_ERR_NET_RECV_FAILED:
        log_msg(t->fail_level, "%s: %s failed: %s", t->peer, what, strerror(t->sock_errno));
        return -t->sock_errno;
    }
    if (t->client && t->verify_flags) {
        describe_flags(t, t->verify_flags, err, sizeof(err));
        log_msg(t->fail_level, "%s: certificate verify failed: %s", t->peer, err);
        return KTLS_ERR_CERT;
    }
    mbedtls_strerror(ret, err, sizeof(err));
    log_msg(t->fail_level, "%s: TLS %s failed: %s", t->peer, what, err);
    return -EPROTO;
}

int ktls_handshake(struct ktls_session *t)
{
    int ret;

    in_handshake = t;
    for (;;) {
        ret = mbedtls_ssl_handshake(&t->ssl);
        if (ret != MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            break;
        save_session(t);
    }
    in_handshake = NULL;
    if (ret != 0)
        return map_error(t, ret, "handshake");
    if (t->server && t->server->on_handshake)
        t->server->on_handshake(t->server->on_handshake_data, t->resumed);
    if (t->client) {
        /* A resumed handshake sends no certificate: nothing was verified, the ticket stood for it. */
        if (t->offered && !t->verified)
            log_debug("%s: TLS session resumed", t->peer);
        else
            log_debug("%s: TLS full handshake", t->peer);
        if (mbedtls_ssl_get_version_number(&t->ssl) != MBEDTLS_SSL_VERSION_TLS1_3)
            save_session(t); /* TLS 1.2: the ticket came within the handshake */
    }
    return 0;
}

bool ktls_session_resumed(const struct ktls_session *t) { return t->client ? t->offered && !t->verified : t->resumed; }

ssize_t ktls_read(struct ktls_session *t, void *buf, size_t n)
{
    int ret;
    for (;;) {
        ret = mbedtls_ssl_read(&t->ssl, buf, n);
        if (ret != MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            break;
        save_session(t); /* TLS 1.3: tickets come after the handshake */
    }
    if (ret >= 0)
        return ret;
    /* A peer that just closes TCP is common (Go servers do it after their last message). */
    if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF)
        return 0;
    return map_error(t, ret, "read");
}

ssize_t ktls_write(struct ktls_session *t, const void *buf, size_t n)
{
    int ret = mbedtls_ssl_write(&t->ssl, buf, n);
    return ret >= 0 ? ret : map_error(t, ret, "write");
}

size_t ktls_pending(const struct ktls_session *t) { return mbedtls_ssl_get_bytes_avail(&t->ssl); }

void ktls_close_notify(struct ktls_session *t) { (void)mbedtls_ssl_close_notify(&t->ssl); }
