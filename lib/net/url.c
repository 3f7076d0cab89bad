/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* URLs of the KMS (challenger_server, docs/upstream.md §5.3): scheme://host[:port][/path][?query]. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "net_internal.h"

#define URL_MAX 4096

static const struct {
    const char *name;
    bool tls;
    uint16_t port;
} schemes[] = {
    {"http", false, 80},
    {"https", true, 443},
    {"ws", false, 80},
    {"wss", true, 443},
};

void net_url_clear(struct net_url *u)
{
    free(u->host);
    free(u->authority);
    free(u->path);
    *u = (struct net_url){0};
}

static bool reg_name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-._~", s[i]))
            return false;
    return n > 0;
}

/* An IPv6 literal between brackets; a zone ("%25eth0", RFC 6874) becomes "%eth0". */
static char *ipv6_literal(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 < n && s[i + 1] == '2' && s[i + 2] == '5')
                i += 2;
            *o++ = '%';
            if (i + 1 >= n) /* empty zone */
                goto bad;
            for (i++; i < n; i++) {
                if (!isalnum((unsigned char)s[i]) && !strchr("-._~", s[i]))
                    goto bad;
                *o++ = s[i];
            }
            break;
        }
        if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
            goto bad;
        *o++ = s[i];
    }
    *o = 0;
    if (!strchr(out, ':'))
        goto bad;
    return out;
bad:
    free(out);
    return NULL;
}

static int parse_port(const char *s, size_t n, uint16_t *out)
{
    uint32_t v = 0;
    if (n == 0 || n > 5)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -EINVAL;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -EINVAL;
    *out = (uint16_t)v;
    return 0;
}

int net_url_parse(const char *s, struct net_url *u)
{
    const char *p, *auth, *auth_end, *host_end;
    size_t i, n = strlen(s);

    *u = (struct net_url){0};
    if (n == 0 || n > URL_MAX)
        return -EINVAL;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return -EINVAL;
    p = strstr(s, "://");
    if (!p)
        return -EINVAL;
    for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if ((size_t)(p - s) == strlen(schemes[i].name) && strncasecmp(s, schemes[i].name, (size_t)(p - s)) == 0)
            break;
    if (i == sizeof(schemes) / sizeof(schemes[0]))
        return -EPROTONOSUPPORT;
    strcpy(u->scheme, schemes[i].name);
    u->tls = schemes[i].tls;
    u->port = schemes[i].port;

    auth = p + 3;
    auth_end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(auth_end - auth)))
        goto bad; /* credentials do not belong in a configured URL */
    if (*auth == '[') {
        const char *close = memchr(auth, ']', (size_t)(auth_end - auth));
        if (!close || !(u->host = ipv6_literal(auth + 1, (size_t)(close - auth - 1))))
            goto bad;
        host_end = close + 1;
    } else {
        host_end = memchr(auth, ':', (size_t)(auth_end - auth));
        if (!host_end)
            host_end = auth_end;
        if (!reg_name_ok(auth, (size_t)(host_end - auth)))
            goto bad;
        u->host = xstrndup(auth, (size_t)(host_end - auth));
    }
    if (host_end < auth_end) {
        if (*host_end != ':')
            goto bad;
        /* "host:" with an empty port means the default (RFC 3986 §3.2.3). */
        if (host_end + 1 < auth_end && parse_port(host_end + 1, (size_t)(auth_end - host_end - 1), &u->port) < 0)
            goto bad;
    }
    u->authority = xstrndup(auth, (size_t)(auth_end - auth));
    if (u->authority[strlen(u->authority) - 1] == ':')
        u->authority[strlen(u->authority) - 1] = 0;
    /* The path keeps its query; the fragment never goes on the wire. */
    size_t plen = strcspn(auth_end, "#");
    if (plen == 0 || *auth_end == '?') {
        u->path = xmalloc(plen + 2);
        u->path[0] = '/';
        memcpy(u->path + 1, auth_end, plen);
        u->path[plen + 1] = 0;
    } else {
        u->path = xstrndup(auth_end, plen);
    }
    return 0;
bad:
    net_url_clear(u);
    return -EINVAL;
}

char *net_url_join(const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    while (*path == '/')
        path++;
    size_t pl = strlen(path);
    char *out = xmalloc(bl + pl + 2);
    memcpy(out, base, bl);
    out[bl] = '/';
    memcpy(out + bl + 1, path, pl + 1);
    return out;
}
