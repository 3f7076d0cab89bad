/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 message heads (RFC 9112): a bounded, incremental search for the end of the head,
 * then a strict parse of a private copy. Bare LF line ends are accepted (RFC 9112 §2.2). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "net_internal.h"

struct net_limits net_limits_resolve(const struct net_limits *in)
{
    struct net_limits l = in ? *in : (struct net_limits){0};
#define DEF(f, v) \
    if (!l.f)     \
        l.f = v;
    DEF(max_request_line, NET_DEFAULT_MAX_REQUEST_LINE)
    DEF(max_header_bytes, NET_DEFAULT_MAX_HEADER_BYTES)
    DEF(max_headers, NET_DEFAULT_MAX_HEADERS)
    DEF(max_body, NET_DEFAULT_MAX_BODY)
    DEF(max_message, NET_DEFAULT_MAX_MESSAGE)
    DEF(request_timeout_ms, NET_DEFAULT_REQUEST_TIMEOUT_MS)
    DEF(idle_timeout_ms, NET_DEFAULT_IDLE_TIMEOUT_MS)
    DEF(linger_ms, NET_DEFAULT_LINGER_MS)
    DEF(max_conns, NET_DEFAULT_MAX_CONNS)
    DEF(max_conns_per_peer, NET_DEFAULT_MAX_CONNS_PER_PEER)
    DEF(max_requests_per_conn, NET_DEFAULT_MAX_REQUESTS_PER_CONN)
    DEF(max_conn_lifetime_ms, NET_DEFAULT_MAX_CONN_LIFETIME_MS)
    DEF(requests_per_turn, NET_DEFAULT_REQUESTS_PER_TURN)
#undef DEF
    return l;
}

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

int http_find_head_end(const uint8_t *buf, size_t len, struct http_scan *s, const struct net_limits *l)
{
    for (size_t i = s->pos; i < len; i++) {
        /* To the next LF (memchr), within the line's limit; a byte past it that is no LF fails. */
        size_t limit = l->max_request_line > SIZE_MAX - s->line_start ? SIZE_MAX : s->line_start + l->max_request_line;
        if (i < limit) {
            size_t end = len < limit ? len : limit;
            const uint8_t *nl = memchr(buf + i, '\n', end - i);
            i = nl ? (size_t)(nl - buf) : end;
            if (i == len)
                break;
        }
        if (buf[i] != '\n')
            return s->lines == 0 ? -414 : -431;
        size_t line = i - s->line_start;
        if (line > 0 && buf[i - 1] == '\r')
            line--;
        if (line == 0) {
            if (s->lines > 0) {
                s->pos = i; /* a call with more bytes (the body) finds the same end again */
                return (int)(i + 1);
            }
            /* Empty lines before the start line are ignored (RFC 9112 §2.2), a few of them:
             * endless ones would otherwise pile up in the input buffer. */
            if (i + 1 > HTTP_MAX_LEADING_EMPTY)
                return -400;
            s->line_start = i + 1;
            continue;
        }
        if (s->lines == 0)
            s->first_line = i + 1;
        s->lines++;
        s->line_start = i + 1;
        if (s->lines - 1 > l->max_headers)
            return -431;
        if (s->lines > 1 && i + 1 - s->first_line > l->max_header_bytes)
            return -431;
    }
    s->pos = len;
    /* The part of a line read so far counts as it will once its LF arrives, except the CR of the
     * blank line that ends the head, which the complete head does not count either: the verdict
     * must not depend on where the reads split the bytes (found by fuzz_http). */
    size_t upto = len;
    if (len == s->line_start + 1 && buf[len - 1] == '\r')
        upto--;
    if (s->lines > 0 && upto - s->first_line > l->max_header_bytes)
        return -431;
    return 0;
}

static bool is_tchar(int c) { return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c)); }

/* Splits block (NUL-terminated) into lines in place; returns the next line or NULL. */
static char *next_line(char **cursor)
{
    char *line = *cursor, *nl;
    if (!line || !*line)
        return NULL;
    nl = strchr(line, '\n');
    size_t n;
    if (nl) {
        *nl = 0;
        *cursor = nl + 1;
        n = (size_t)(nl - line);
    } else {
        *cursor = NULL;
        n = strlen(line);
    }
    if (n > 0 && line[n - 1] == '\r')
        line[n - 1] = 0;
    return line;
}

/* Parses the header lines after the start line; -400 malformed, -431 too many. */
static int parse_header_lines(char **cursor, const struct net_limits *l, struct http_head *h)
{
    char *line;
    h->headers = calloc(l->max_headers + 1, sizeof(*h->headers));
    if (!h->headers)
        return -503;
    while ((line = next_line(cursor)) && *line) {
        char *colon = strchr(line, ':'), *v, *end;
        if (!colon || colon == line)
            return -400;
        for (char *p = line; p < colon; p++)
            if (!is_tchar((unsigned char)*p))
                return -400; /* includes whitespace before ':' and obsolete line folding */
        *colon = 0;
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        /* One pass: control characters refused, the end found for the trim. */
        for (end = v; *end; end++)
            if (((unsigned char)*end < 0x20 && *end != '\t') || *end == 0x7f)
                return -400;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = 0;
        if (h->n_headers == l->max_headers)
            return -431;
        h->headers[h->n_headers++] = (struct net_header){line, v};
    }
    return 0;
}

const char *http_head_get(const struct http_head *h, const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++)
        if (strcasecmp(h->headers[i].name, name) == 0)
            return h->headers[i].value;
    return NULL;
}

bool http_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    if (!value)
        return false;
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t t = n;
        while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p += n;
    }
    return false;
}

/* Content-Length and Transfer-Encoding, checked against request smuggling tricks. */
static int parse_framing(struct http_head *h)
{
    bool te = false;
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct net_header *x = &h->headers[i];
        if (strcasecmp(x->name, "Content-Length") == 0) {
            uint64_t v = 0;
            if (!*x->value || strlen(x->value) > 18)
                return -400;
            for (const char *p = x->value; *p; p++) {
                if (!isdigit((unsigned char)*p))
                    return -400;
                v = v * 10 + (uint64_t)(*p - '0');
            }
            if (h->has_length && v != h->content_length)
                return -400;
            h->has_length = true;
            h->content_length = v;
        } else if (strcasecmp(x->name, "Transfer-Encoding") == 0) {
            te = true;
            /* chunked must be the last coding; anything else we cannot frame. */
            const char *last = strrchr(x->value, ',');
            last = last ? last + 1 : x->value;
            while (*last == ' ' || *last == '\t')
                last++;
            h->chunked = strcasecmp(last, "chunked") == 0;
        }
    }
    if (te && h->has_length)
        return -400;
    return 0;
}

static void clear_head(struct http_head *h)
{
    free(h->block);
    free(h->headers);
    *h = (struct http_head){0};
}

void http_head_clear(struct http_head *h) { clear_head(h); }

/* A NUL-terminated copy of the head, with room after it for a copy of the target. */
static char *copy_block(const uint8_t *buf, size_t len)
{
    char *b = malloc(2 * len + 2);
    if (!b)
        return NULL;
    memcpy(b, buf, len);
    b[len] = 0;
    return b;
}

int http_parse_request_head(const uint8_t *buf, size_t len, const struct net_limits *l, struct http_head *h)
{
    char *cursor, *line, *sp1, *sp2, *v;
    int r;

    *h = (struct http_head){0};
    if (memchr(buf, 0, len))
        return -400;
    h->block = cursor = copy_block(buf, len);
    if (!cursor)
        return -503; /* out of memory: this request fails, not the process */
    while (*cursor == '\r' || *cursor == '\n')
        cursor++;
    line = next_line(&cursor);
    if (!line)
        return -400;
    /* method SP request-target SP HTTP-version, single spaces */
    sp1 = strchr(line, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') || sp1 == line || sp2 == sp1 + 1 || sp1 - line > 32)
        return -400;
    *sp1 = *sp2 = 0;
    for (char *p = line; *p; p++)
        if (!is_tchar((unsigned char)*p))
            return -400;
    h->method = line;
    h->target = sp1 + 1;
    if (h->target[0] != '/')
        return -400; /* origin-form only */
    for (const char *p = h->target; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
            return -400;
    v = sp2 + 1;
    if (strncmp(v, "HTTP/", 5) != 0 || !isdigit((unsigned char)v[5]) || v[6] != '.' || !isdigit((unsigned char)v[7]) ||
        v[8])
        return -400;
    if (v[5] != '1')
        return -505;
    h->version_minor = v[7] - '0';
    if ((r = parse_header_lines(&cursor, l, h)) < 0)
        return r;
    if ((r = parse_framing(h)) < 0)
        return r;
    /* Split the query off a copy of the target (kept after the head in the block). */
    size_t tl = strlen(h->target);
    char *path = h->block + len + 1, *q;
    memcpy(path, h->target, tl + 1);
    q = strchr(path, '?');
    if (q)
        *q++ = 0;
    else
        q = path + tl;
    h->path = path;
    h->query = q;
    const char *host = NULL;
    size_t hosts = 0;
    for (size_t i = 0; i < h->n_headers; i++)
        if (strcasecmp(h->headers[i].name, "Host") == 0)
            host = h->headers[i].value, hosts++;
    if (hosts > 1 || (h->version_minor >= 1 && !host))
        return -400;
    if (h->chunked)
        return -411;
    if (http_head_get(h, "Transfer-Encoding"))
        return -501;
    if (h->has_length && h->content_length > l->max_body)
        return -413;
    const char *conn = http_head_get(h, "Connection");
    h->keep_alive = h->version_minor >= 1 ? !http_has_token(conn, "close") : http_has_token(conn, "keep-alive");
    return 0;
}

int http_parse_response_head(const uint8_t *buf, size_t len, const struct net_limits *l, struct http_head *h)
{
    char *cursor, *line;

    *h = (struct http_head){0};
    if (memchr(buf, 0, len))
        return -EPROTO;
    h->block = cursor = copy_block(buf, len);
    if (!cursor)
        return -ENOMEM;
    line = next_line(&cursor);
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (!line || strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
        !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]) ||
        (line[12] && line[12] != ' '))
        return -EPROTO;
    h->version_minor = line[7] - '0';
    h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (h->status < 100)
        return -EPROTO;
    h->reason = line[12] ? line + 13 : "";
    if (parse_header_lines(&cursor, l, h) < 0 || parse_framing(h) < 0)
        return -EPROTO;
    const char *conn = http_head_get(h, "Connection");
    h->keep_alive = h->version_minor >= 1 ? !http_has_token(conn, "close") : http_has_token(conn, "keep-alive");
    return 0;
}

void http_request_clear(struct net_request *req)
{
    clear_head(&req->h);
    if (req->body)
        secure_wipe(req->body, req->body_len); /* a posted body may be a secret */
    free(req->body);
    *req = (struct net_request){0};
}

int http_parse_request(const uint8_t *buf, size_t len, const struct net_limits *l, struct http_scan *s,
                       struct net_request *req, size_t *consumed)
{
    int head = http_find_head_end(buf, len, s, l), r;
    if (head <= 0)
        return head;
    *req = (struct net_request){0};
    r = http_parse_request_head(buf, (size_t)head, l, &req->h);
    if (r < 0) {
        http_request_clear(req);
        return r;
    }
    uint64_t body = req->h.has_length ? req->h.content_length : 0;
    if (len - (size_t)head < body) {
        http_request_clear(req); /* parsed again when the body is complete: heads are small */
        return 0;
    }
    req->body = malloc((size_t)body + 1);
    if (!req->body) {
        http_request_clear(req);
        return -503;
    }
    memcpy(req->body, buf + head, (size_t)body);
    req->body[body] = 0;
    req->body_len = (size_t)body;
    *consumed = (size_t)head + (size_t)body;
    return 1;
}

/* ---- chunked bodies (client side: responses of Go servers such as etcd's gateway) ---- */
enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

int http_chunked_decode(struct http_chunked *s, const uint8_t *buf, size_t len, struct nbuf *out, size_t max)
{
    for (;;) {
        const uint8_t *p = buf + s->pos, *nl;
        size_t avail = len - s->pos;
        switch (s->state) {
        case CH_SIZE: {
            nl = memchr(p, '\n', avail);
            if (!nl)
                return avail > 1024 ? -EPROTO : 0;
            uint64_t v = 0;
            size_t i = 0, digits = 0;
            for (; p + i < nl && isxdigit(p[i]); i++, digits++) {
                if (digits >= 15)
                    return -EPROTO;
                v = v * 16 + (uint64_t)(isdigit(p[i]) ? p[i] - '0' : (tolower(p[i]) - 'a' + 10));
            }
            /* then optional whitespace, chunk extensions (ignored) and CRLF */
            if (digits == 0 || (p + i < nl && p[i] != ';' && p[i] != ' ' && p[i] != '\t' && p[i] != '\r'))
                return -EPROTO;
            s->pos += (size_t)(nl - p) + 1;
            if (v == 0) {
                s->state = CH_TRAILER;
                break;
            }
            if (v > max || out->len - out->off + v > max)
                return -E2BIG;
            s->remain = v;
            s->state = CH_DATA;
            break;
        }
        case CH_DATA: {
            size_t n = avail < s->remain ? avail : (size_t)s->remain;
            if (n == 0)
                return 0;
            if (nbuf_append(out, p, n) < 0)
                return -ENOMEM;
            s->pos += n;
            s->remain -= n;
            if (s->remain == 0)
                s->state = CH_DATA_END;
            break;
        }
        case CH_DATA_END:
            if (avail < 1 || (p[0] == '\r' && avail < 2))
                return 0;
            if (p[0] == '\n')
                s->pos += 1;
            else if (p[0] == '\r' && p[1] == '\n')
                s->pos += 2;
            else
                return -EPROTO;
            s->state = CH_SIZE;
            break;
        case CH_TRAILER:
            nl = memchr(p, '\n', avail);
            if (!nl)
                return s->trailer + avail > HTTP_MAX_TRAILER ? -EPROTO : 0;
            s->trailer += (size_t)(nl - p) + 1;
            if (s->trailer > HTTP_MAX_TRAILER)
                return -EPROTO; /* endless trailer lines */
            s->pos += (size_t)(nl - p) + 1;
            if (nl == p || (nl == p + 1 && p[0] == '\r'))
                return 1;
            break;
        default: return -EPROTO;
        }
    }
}

/* ---- accessors of net.h ---- */
const char *net_request_method(const struct net_request *r) { return r->h.method; }
const char *net_request_path(const struct net_request *r) { return r->h.path; }
const char *net_request_query(const struct net_request *r) { return r->h.query; }
const char *net_request_header(const struct net_request *r, const char *name) { return http_head_get(&r->h, name); }
size_t net_request_header_count(const struct net_request *r) { return r->h.n_headers; }

const struct net_header *net_request_header_at(const struct net_request *r, size_t i)
{
    return i < r->h.n_headers ? &r->h.headers[i] : NULL;
}

const uint8_t *net_request_body(const struct net_request *r, size_t *len)
{
    *len = r->body_len;
    return r->body ? r->body : (const uint8_t *)"";
}
