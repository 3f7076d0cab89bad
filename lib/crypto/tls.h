/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto TLS part: thin mbedTLS wrappers for lib/net (which never includes mbedTLS itself,
 * docs/README.md §3). Configurations are shared and read-only once made; a session drives one
 * non-blocking socket and returns KTLS_WANT_READ/KTLS_WANT_WRITE so an event loop (or a poll()
 * with a deadline) can drive it. Every function returns 0 (or a byte count) or a negative errno
 * and logs one line that names the peer and the reason. */
#ifndef KKMS_TLS_H
#define KKMS_TLS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHA1_LEN 20

/* Session I/O would block: wait for the socket to be readable / writable and call again. */
#define KTLS_WANT_READ (-EAGAIN)
#define KTLS_WANT_WRITE (-EINPROGRESS)
/* The peer's certificate was refused (untrusted, wrong host, expired...): do not retry. */
#define KTLS_ERR_CERT (-EKEYREJECTED)

struct ktls_server;
struct ktls_client;
struct ktls_session;

/* SHA-1 of n bytes (only for RFC 6455's Sec-WebSocket-Accept, never for security). */
void ktls_sha1(const void *in, size_t n, uint8_t out[SHA1_LEN]);

/* In a forked child, before it makes or uses any TLS object: a random generator of its own
 * (the inherited one would repeat the parent's numbers). TLS objects the parent made before the
 * fork must not be used afterwards (free them first). 0 or -EIO (logged). */
int ktls_after_fork(void);

/* Server configuration from a PEM certificate chain file and its PEM private key file; checks
 * that they belong together. *out is owned by the caller (ktls_server_free). */
int ktls_server_new(const char *cert_file, const char *key_file, struct ktls_server **out);
void ktls_server_free(struct ktls_server *s);
/* cb(data, resumed) after each completed server handshake: resumed from a session ticket, or full.
 * Servers issue tickets (TLS 1.2 and 1.3) under a key kept in memory only, made at start and
 * replaced every hour; each server configuration has its own key unless it shares them. */
void ktls_server_on_handshake(struct ktls_server *s, void (*cb)(void *data, bool resumed), void *data);
/* From now on the ticket key of each hour is derived from secret (copied; wiped with s), so that
 * servers given the same secret (the --workers processes of one KMS) accept each other's tickets.
 * Draw the secret from the kernel (crypto_random), in memory only. 0 or -EIO (logged). */
#define KTLS_TICKET_SECRET_LEN 32
int ktls_server_share_tickets(struct ktls_server *s, const uint8_t secret[KTLS_TICKET_SECRET_LEN]);

/* Client configuration. pem (pem_len bytes, NULL or empty for none) is the operator's
 * `certificate` (docs/upstream.md §5.3): CA certificate(s), or the server's own certificate. A peer is
 * accepted when its chain verifies against those certificates (plus the system bundle when
 * system_roots) with the host name checked, or when its leaf certificate equals one of the
 * configured certificates byte for byte (pinning; the host name is then not checked).
 * *out is owned by the caller (ktls_client_free). -EINVAL when pem holds no certificate. */
int ktls_client_new(const char *pem, size_t pem_len, bool system_roots, struct ktls_client **out);
void ktls_client_free(struct ktls_client *c);
/* Adds our own certificate (PEM chain file) and its PEM private key file, sent to servers that
 * ask for one (mutual TLS, e.g. etcd --client-cert-auth). Checks that they belong together.
 * Only before the first session; -EALREADY when one is set already. */
int ktls_client_set_cert(struct ktls_client *c, const char *cert_file, const char *key_file);

/* A server-side session on connected non-blocking socket fd (not owned: the caller closes it).
 * peer names the client in log lines (copied). Failures of a session are logged at info level. */
int ktls_session_server(struct ktls_server *s, int fd, const char *peer, struct ktls_session **out);
/* A client-side session on fd for server host (SNI and certificate name; copied). peer names the
 * server in log lines, e.g. the URL (copied). Failures are logged as errors. */
int ktls_session_client(struct ktls_client *c, int fd, const char *host, const char *peer, struct ktls_session **out);
/* Whether the finished handshake resumed an earlier session (a client offers the last ticket its
 * ktls_client got from the same host name; a debug line says "TLS session resumed"). */
bool ktls_session_resumed(const struct ktls_session *t);
/* Frees a session (NULL is fine); does not close the socket. */
void ktls_session_free(struct ktls_session *t);

/* Advances the handshake: 0 when done, KTLS_WANT_READ/WRITE, KTLS_ERR_CERT for a refused
 * certificate, -ECONNRESET when the peer went away, -EPROTO for any other TLS failure. */
int ktls_handshake(struct ktls_session *t);
/* Reads up to n bytes: the count (>0), 0 at the end of the stream (close_notify or EOF),
 * KTLS_WANT_READ/WRITE, or a negative errno. */
ssize_t ktls_read(struct ktls_session *t, void *buf, size_t n);
/* Writes up to n bytes: the count (>0), KTLS_WANT_READ/WRITE, or a negative errno. After a WANT
 * the next call must pass the same buffer again (mbedTLS keeps the record). */
ssize_t ktls_write(struct ktls_session *t, const void *buf, size_t n);
/* Bytes already decrypted and buffered inside the session (readable without touching the socket). */
size_t ktls_pending(const struct ktls_session *t);
/* Sends close_notify, best effort (never blocks). */
void ktls_close_notify(struct ktls_session *t);

#endif
