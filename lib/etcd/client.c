/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The client: endpoints, TLS, authentication and the one place every unary call goes through
 * (etcd_call), which bounds each attempt, rotates endpoints and re-authenticates.
 * Retry rules follow what etcd's own failure guide and Patroni do over the same gateway
 * (patroni/patroni, patroni/dcs/etcd3.py: Unavailable answers are treated like a socket timeout,
 * i.e. the next member is asked; auth errors lead to a new token). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "etcd_internal.h"

#define PASSWORD_FILE_MAX 4096
#define TOKEN_MAX 1024

static int add_endpoint(struct etcd *e, const char *s, size_t n)
{
    _cleanup_free_ char *url = xstrndup(s, n);
    struct net_url u;
    int r;

    if (e->nep >= ETCD_MAX_ENDPOINTS)
        return log_error_errno(-E2BIG, "etcd: more than %u endpoints", ETCD_MAX_ENDPOINTS);
    if ((r = net_url_parse(url, &u)) < 0 || (strcmp(u.scheme, "http") && strcmp(u.scheme, "https"))) {
        if (r == 0)
            net_url_clear(&u);
        return log_error_errno(-EINVAL, "etcd: endpoint %s is not an http:// or https:// URL", url);
    }
    bool has_path = strcmp(u.path, "/") != 0;
    net_url_clear(&u);
    if (has_path)
        return log_error_errno(-EINVAL, "etcd: endpoint %s has a path; give scheme://host:port only", url);
    while (n > 0 && s[n - 1] == '/')
        n--;
    e->ep = xrealloc(e->ep, (e->nep + 1) * sizeof(*e->ep));
    e->ep[e->nep++] = xstrndup(s, n);
    return 0;
}

int etcd_new(const struct etcd_config *cfg, struct etcd **out)
{
    struct etcd *e = xcalloc(1, sizeof(*e));
    int r = 0;

    pthread_mutex_init(&e->mu, NULL);
    e->attempt_ms = cfg->attempt_timeout_ms > 0 ? cfg->attempt_timeout_ms : ETCD_DEFAULT_ATTEMPT_MS;
    e->deadline_ms = cfg->deadline_ms > 0 ? cfg->deadline_ms : ETCD_DEFAULT_DEADLINE_MS;
    e->max_value = cfg->max_value ? cfg->max_value : ETCD_DEFAULT_MAX_VALUE;
    e->max_response = cfg->max_response ? cfg->max_response : ETCD_DEFAULT_MAX_RESPONSE;
    e->page = cfg->page ? cfg->page : ETCD_DEFAULT_PAGE;
    e->max_keys = cfg->max_keys ? cfg->max_keys : ETCD_DEFAULT_MAX_KEYS;
    /* A value travels as base64 inside JSON: the answer must have room for it. */
    if (e->max_response < e->max_value / 3 * 4 + 64 * 1024)
        e->max_response = e->max_value / 3 * 4 + 64 * 1024;

    const char *s = cfg->endpoints ? cfg->endpoints : "";
    bool tls = false;
    for (;;) {
        size_t n = strcspn(s, ",");
        if (n == 0 && !*s)
            break;
        if (n > 0 && (r = add_endpoint(e, s, n)) < 0)
            goto fail;
        if (n > 0 && strncmp(s, "https:", 6) == 0)
            tls = true;
        s += n;
        if (*s == ',')
            s++;
    }
    if (e->nep == 0) {
        r = log_error_errno(-EINVAL, "etcd: no endpoint given");
        goto fail;
    }
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        r = log_error_errno(-EINVAL, "etcd: a client certificate needs both a certificate and a key file");
        goto fail;
    }
    if (tls || cfg->ca_file || cfg->cert_file) {
        _cleanup_free_ char *pem = NULL;
        size_t len = 0;
        if (cfg->ca_file && (r = file_read_all(cfg->ca_file, 1 << 20, &pem, &len)) < 0) {
            r = log_error_errno(r, "etcd: CA file %s: %m", cfg->ca_file);
            goto fail;
        }
        if ((r = ktls_client_new(pem, len, cfg->ca_file == NULL, &e->tls)) < 0)
            goto fail;
        if (cfg->cert_file && (r = ktls_client_set_cert(e->tls, cfg->cert_file, cfg->key_file)) < 0)
            goto fail;
    }
    if (cfg->user) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        if (!*cfg->user || strlen(cfg->user) > 256 || strpbrk(cfg->user, "\"\\\r\n")) {
            r = log_error_errno(-EINVAL, "etcd: bad user name");
            goto fail;
        }
        if (!cfg->password_file) {
            r = log_error_errno(-EINVAL, "etcd: user %s needs a password file", cfg->user);
            goto fail;
        }
        r = file_read_all(cfg->password_file, PASSWORD_FILE_MAX, &buf, &len);
        if (r < 0) {
            r = log_error_errno(r, "etcd: password file %s: %s", cfg->password_file,
                                r == -EFBIG || r == -E2BIG ? "too large" : strerror(-r));
            goto fail;
        }
        size_t n = strcspn(buf, "\r\n");
        e->password = secret_new(n);
        memcpy(e->password->data, buf, n);
        e->password->len = n;
        secure_wipe(buf, len);
        if (n == 0) {
            r = log_error_errno(-EINVAL, "etcd: password file %s: empty first line", cfg->password_file);
            goto fail;
        }
        e->user = xstrdup(cfg->user);
    }
    *out = e;
    return 0;
fail:
    etcd_free(e);
    return r;
}

void etcd_free(struct etcd *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nep; i++)
        free(e->ep[i]);
    free(e->ep);
    ktls_client_free(e->tls);
    free(e->user);
    secret_free(e->password);
    secret_free(e->token);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

size_t etcd_endpoint_count(const struct etcd *e) { return e->nep; }

size_t etcd_current(struct etcd *e)
{
    pthread_mutex_lock(&e->mu);
    size_t i = e->cur;
    pthread_mutex_unlock(&e->mu);
    return i;
}

const char *etcd_endpoint(struct etcd *e) { return e->ep[etcd_current(e)]; }

void etcd_rotate(struct etcd *e, size_t failed)
{
    pthread_mutex_lock(&e->mu);
    if (e->cur == failed) /* another thread may have moved on already */
        e->cur = (failed + 1) % e->nep;
    pthread_mutex_unlock(&e->mu);
}

struct net_client_opts etcd_opts(struct etcd *e, int64_t deadline, const struct net_header *auth)
{
    return (struct net_client_opts){
        .tls = e->tls,
        .headers = auth,
        .n_headers = auth ? 1 : 0,
        .deadline_ms = deadline,
        .connect_timeout_ms = e->attempt_ms,
        .max_message = e->max_response,
    };
}

void etcd_body_free(char *body, size_t len)
{
    if (body)
        secure_wipe(body, len);
    free(body);
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* POST /v3/auth/authenticate on endpoint i; the token into *tok. */
static int authenticate(struct etcd *e, size_t i, int64_t deadline, struct secret **tok, int *verdict_err,
                        enum etcd_verdict *verdict)
{
    _cleanup_kjson_w_ struct kjson_w *w = kjson_w_new();
    _cleanup_free_ char *url = NULL;
    struct net_http_response *resp = NULL;
    const char *text;
    size_t len;
    int r;

    *verdict = ETCD_FAIL;
    kjson_w_obj_begin(w);
    kjson_w_kv_str(w, "name", e->user);
    kjson_w_key(w, "password");
    kjson_w_strn(w, e->password->data, e->password->len);
    kjson_w_obj_end(w);
    if ((r = kjson_w_result(w, &text, &len)) < 0)
        return log_error_errno(r, "etcd: cannot encode the authentication request");
    url = xasprintf("%s/v3/auth/authenticate", e->ep[i]);
    struct net_client_opts o = etcd_opts(e, deadline, NULL);
    o.max_message = 64 * 1024;
    bool q = log_set_quiet(true);
    r = net_http_request("POST", url, "application/json", text, len, &o, &resp);
    log_set_quiet(q);
    if (r < 0) {
        *verdict = r == KTLS_ERR_CERT ? ETCD_FAIL : ETCD_RETRY_NEXT;
        *verdict_err = r;
        const char *why = *log_quiet_last() ? log_quiet_last() : strerror(-r);
        if (r == KTLS_ERR_CERT)
            return log_error_errno(r, "etcd %s: authentication: %s", e->ep[i], why);
        log_info("etcd %s: authentication: %s", e->ep[i], why);
        return r;
    }
    if (resp->status != 200) {
        int code = 0;
        char msg[160];
        etcd_decode_error((const char *)resp->body, resp->body_len, &code, msg, sizeof(msg));
        if (strstr(msg, "authentication is not enabled")) {
            /* auth is off (an operator may turn it on later): go on without a token; a later
             * "user name is empty" brings us back here */
            log_info("etcd %s: authentication is not enabled; sending requests without a token", e->ep[i]);
            net_http_response_free(resp);
            *tok = secret_new(0);
            (*tok)->data[0] = 0;
            return 0;
        }
        *verdict = etcd_classify(resp->status, code, msg, verdict_err);
        if (*verdict == ETCD_REAUTH) {
            *verdict = ETCD_FAIL;
            *verdict_err = -EACCES;
        }
        r = *verdict == ETCD_FAIL ? log_error_errno(*verdict_err, "etcd %s: authentication as %s refused: %s", e->ep[i],
                                                    e->user, msg[0] ? msg : "(no message)")
                                  : *verdict_err;
        if (*verdict != ETCD_FAIL)
            log_warn("etcd %s: authentication: HTTP %d %s", e->ep[i], resp->status, msg);
        net_http_response_free(resp);
        return r;
    }
    struct kjson_limits lim = etcd_json_limits(resp->body_len + 1);
    struct kjson_doc *d = NULL;
    char *token = NULL;
    size_t tlen = 0;
    if (kjson_parse((const char *)resp->body, resp->body_len, &lim, &d, NULL) < 0 ||
        kjson_get_str(d, KJSON_ROOT, "token", 0, &token) <= 0 || (tlen = strlen(token)) == 0 || tlen > TOKEN_MAX ||
        strpbrk(token, "\r\n")) {
        r = log_error_errno(-EPROTO, "etcd %s: authentication answer without a usable token", e->ep[i]);
        *verdict = ETCD_RETRY_NEXT;
        *verdict_err = r;
    } else {
        *tok = secret_new_copy(token, tlen);
        r = 0;
    }
    if (token) {
        secure_wipe(token, strlen(token));
        free(token);
    }
    kjson_free(d);
    secure_wipe(resp->body, resp->body_len);
    net_http_response_free(resp);
    return r;
}

/* Copies the current token, authenticating on endpoint i first when there is none. */
static int token_for(struct etcd *e, size_t i, int64_t deadline, char *out, size_t n, uint64_t *gen, int *verr,
                     enum etcd_verdict *verdict)
{
    *verdict = ETCD_FAIL;
    out[0] = 0;
    if (!e->user)
        return 0;
    pthread_mutex_lock(&e->mu);
    if (e->token && e->token->len < n) {
        memcpy(out, e->token->data, e->token->len + 1);
        *gen = e->token_gen;
        pthread_mutex_unlock(&e->mu);
        return 0;
    }
    pthread_mutex_unlock(&e->mu);
    struct secret *tok = NULL;
    int r = authenticate(e, i, deadline, &tok, verr, verdict);
    if (r < 0)
        return r;
    pthread_mutex_lock(&e->mu);
    secret_free(e->token);
    e->token = tok;
    *gen = ++e->token_gen;
    snprintf(out, n, "%s", (const char *)tok->data);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int etcd_token(struct etcd *e, int64_t deadline, char *out, size_t n, uint64_t *gen)
{
    enum etcd_verdict v;
    int err;
    size_t i = etcd_current(e);
    int r = token_for(e, i, deadline, out, n, gen, &err, &v);
    if (r < 0 && v == ETCD_RETRY_NEXT)
        etcd_rotate(e, i);
    return r;
}

void etcd_token_drop(struct etcd *e, uint64_t gen)
{
    pthread_mutex_lock(&e->mu);
    if (e->token && e->token_gen == gen) {
        secret_free(e->token);
        e->token = NULL;
    }
    pthread_mutex_unlock(&e->mu);
}

int etcd_call(struct etcd *e, const char *path, const char *json, size_t json_len, const char *what, char **body,
              size_t *body_len, struct kjson_doc **doc)
{
    int64_t deadline = now_ms() + e->deadline_ms;
    char token[TOKEN_MAX + 1];
    int reauths = 0;
    unsigned logged = 0; /* endpoints whose transport failure was logged (at most 16) */
    char last_why[200] = "no attempt";
    size_t tried = 0;

    *body = NULL;
    *body_len = 0;
    *doc = NULL;
    for (;;) {
        int64_t now = now_ms();
        if (now >= deadline)
            break;
        /* After a full round of quick failures (every member refused), pause a little. */
        if (tried > 0 && tried % e->nep == 0)
            sleep_ms(deadline - now < 200 ? deadline - now : 200);
        if (now_ms() >= deadline)
            break;
        size_t i = etcd_current(e);
        int64_t until = now_ms() + e->attempt_ms;
        if (until > deadline)
            until = deadline;
        tried++;

        uint64_t gen = 0;
        enum etcd_verdict v;
        int err = 0, r;
        if ((r = token_for(e, i, until, token, sizeof(token), &gen, &err, &v)) < 0) {
            if (v != ETCD_RETRY_NEXT)
                return r;
            snprintf(last_why, sizeof(last_why), "%s: authentication failed (%s)", e->ep[i], strerror(-err));
            etcd_rotate(e, i);
            continue;
        }
        struct net_header auth = {"Authorization", token};
        struct net_client_opts o = etcd_opts(e, until, token[0] ? &auth : NULL);
        _cleanup_free_ char *url = NULL;
        url = xasprintf("%s/v3/%s", e->ep[i], path);
        struct net_http_response *resp = NULL;
        /* lib/net logs each failure; we retry elsewhere and report once, so quietly */
        bool q = log_set_quiet(true);
        r = net_http_request("POST", url, "application/json", json, json_len, &o, &resp);
        log_set_quiet(q);
        bool had_token = token[0] != 0;
        secure_wipe(token, sizeof(token));
        if (r < 0) {
            const char *why = *log_quiet_last() ? log_quiet_last() : strerror(-r);
            if (r == KTLS_ERR_CERT || r == -E2BIG || r == -EINVAL)
                return log_error_errno(r, "etcd %s: %s failed: %s", e->ep[i], what, why);
            snprintf(last_why, sizeof(last_why), "%s", why);
            if (!(logged & (1u << i))) { /* once per endpoint and call */
                logged |= 1u << i;
                log_info("etcd %s: %s: %s; trying the next endpoint", e->ep[i], what, why);
            }
            etcd_rotate(e, i);
            continue;
        }
        if (resp->status == 200) {
            struct kjson_limits lim = etcd_json_limits(resp->body_len + 1);
            *body = (char *)resp->body;
            *body_len = resp->body_len;
            resp->body = NULL;
            net_http_response_free(resp);
            struct kjson_error je = {0};
            if (kjson_parse(*body, *body_len, &lim, doc, &je) < 0 || kjson_type(*doc, KJSON_ROOT) != KJSON_OBJECT) {
                kjson_free(*doc);
                *doc = NULL;
                etcd_body_free(*body, *body_len);
                *body = NULL;
                /* not etcd speaking (a proxy's page, a broken member): ask another one */
                log_warn("etcd %s: %s: the answer is not a JSON object (%s at byte %zu); trying the next endpoint",
                         e->ep[i], what, je.msg ? je.msg : "wrong type", je.offset);
                snprintf(last_why, sizeof(last_why), "%s: an answer that is not JSON", e->ep[i]);
                etcd_rotate(e, i);
                continue;
            }
            return 0;
        }
        int code = 0;
        char msg[160];
        etcd_decode_error((const char *)resp->body, resp->body_len, &code, msg, sizeof(msg));
        int status = resp->status;
        secure_wipe(resp->body, resp->body_len);
        net_http_response_free(resp);
        v = etcd_classify(status, code, msg, &err);
        if (v == ETCD_FAIL && e->user && !had_token && strstr(msg, "user name is empty"))
            v = ETCD_REAUTH; /* auth was turned on since we found it off */
        if (v == ETCD_REAUTH && e->user && reauths < 2) {
            reauths++;
            log_info("etcd %s: %s: token refused (%s), authenticating again", e->ep[i], what, msg);
            etcd_token_drop(e, gen);
            continue;
        }
        if (v == ETCD_REAUTH)
            err = -EACCES;
        if (v == ETCD_RETRY_NEXT) {
            snprintf(last_why, sizeof(last_why), "%s: HTTP %d: %s", e->ep[i], status, msg[0] ? msg : "(no message)");
            log_info("etcd %s: %s: HTTP %d %s; trying the next endpoint", e->ep[i], what, status, msg);
            etcd_rotate(e, i);
            continue;
        }
        if (err == -ENOENT || err == -ESTALE)
            return err; /* the callers say what they expected; not an error by itself */
        return log_error_errno(err, "etcd %s: %s refused: HTTP %d: %s", e->ep[i], what, status,
                               msg[0] ? msg : "(no message)");
    }
    return log_error_errno(-ETIME, "etcd: %s: no endpoint answered within %d ms (last: %s)", what, e->deadline_ms,
                           last_why);
}

int etcd_call_raw(struct etcd *e, const char *path, const char *json, char **out)
{
    char *body;
    size_t len;
    struct kjson_doc *d;
    int r = etcd_call(e, path, json, strlen(json), path, &body, &len, &d);
    if (r < 0)
        return r;
    kjson_free(d);
    *out = body;
    return 0;
}
