/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Domain names: text <-> wire form, comparison, and reading a compressed name from a packet. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base.h"
#include "mdns_internal.h"

static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

static bool isdigit3(const char *p)
{
    return p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9';
}

int mdns_name_parse(const char *text, struct mdns_name *n)
{
    size_t tlen = strlen(text), i = 0;

    n->len = 0;
    if (!strcmp(text, "."))
        tlen = 0;
    while (i < tlen) {
        uint8_t label[MDNS_MAX_LABEL];
        size_t llen = 0;
        while (i < tlen && text[i] != '.') {
            uint8_t c = (uint8_t)text[i++];
            if (c == '\\') {
                if (i == tlen)
                    return -EINVAL;
                if (i + 2 < tlen && isdigit3(text + i)) {
                    unsigned v = (unsigned)(text[i] - '0') * 100 + (unsigned)(text[i + 1] - '0') * 10 +
                                 (unsigned)(text[i + 2] - '0');
                    if (v > 255)
                        return -EINVAL;
                    c = (uint8_t)v;
                    i += 3;
                } else {
                    c = (uint8_t)text[i++];
                }
            }
            if (llen == MDNS_MAX_LABEL)
                return -EINVAL;
            label[llen++] = c;
        }
        /* A leading dot or ".." is an empty label; one trailing dot is the root, written below. */
        if (llen == 0 || (size_t)n->len + 1 + llen + 1 > MDNS_MAX_NAME)
            return -EINVAL;
        n->wire[n->len++] = (uint8_t)llen;
        memcpy(n->wire + n->len, label, llen);
        n->len = (uint8_t)(n->len + llen);
        if (i < tlen)
            i++;
    }
    n->wire[n->len++] = 0;
    return 0;
}

int mdns_name_prepend(struct mdns_name *n, const void *label, size_t len)
{
    if (len == 0 || len > MDNS_MAX_LABEL || (size_t)n->len + 1 + len > MDNS_MAX_NAME)
        return -EINVAL;
    memmove(n->wire + 1 + len, n->wire, n->len);
    n->wire[0] = (uint8_t)len;
    memcpy(n->wire + 1, label, len);
    n->len = (uint8_t)(n->len + 1 + len);
    return 0;
}

void mdns_name_to_text(const struct mdns_name *n, char *out, size_t cap)
{
    size_t o = 0, i = 0;

    if (cap == 0)
        return;
    out[0] = 0;
    if (n->len <= 1) {
        snprintf(out, cap, ".");
        return;
    }
    while (i < n->len && n->wire[i]) {
        uint8_t l = n->wire[i++];
        if (o > 0 && o + 1 < cap)
            out[o++] = '.';
        for (uint8_t k = 0; k < l && i < n->len; k++, i++) {
            uint8_t c = n->wire[i];
            char esc[5];
            int m;
            if (c == '.' || c == '\\')
                m = snprintf(esc, sizeof(esc), "\\%c", c);
            else if (c < 0x20 || c > 0x7e)
                m = snprintf(esc, sizeof(esc), "\\%03u", c);
            else
                m = snprintf(esc, sizeof(esc), "%c", c);
            if (o + (size_t)m + 1 > cap) {
                out[o] = 0;
                return;
            }
            memcpy(out + o, esc, (size_t)m);
            o += (size_t)m;
        }
    }
    out[o] = 0;
}

/* Length bytes are at most 63, never an ASCII letter, so a byte-wise case-insensitive compare of
 * the wire forms compares label by label. */
bool mdns_name_equal(const struct mdns_name *a, const struct mdns_name *b)
{
    if (a->len != b->len)
        return false;
    for (size_t i = 0; i < a->len; i++)
        if (lower(a->wire[i]) != lower(b->wire[i]))
            return false;
    return true;
}

bool mdns_name_ends_with(const struct mdns_name *n, const struct mdns_name *suffix)
{
    size_t i = 0;

    if (suffix->len > n->len)
        return false;
    /* Walk n's label boundaries until the rest is as long as the suffix. */
    while (i < n->len && (size_t)(n->len - i) > suffix->len)
        i += (size_t)n->wire[i] + 1;
    if ((size_t)(n->len - i) != suffix->len)
        return false;
    for (size_t k = 0; k < suffix->len; k++)
        if (lower(n->wire[i + k]) != lower(suffix->wire[k]))
            return false;
    return true;
}

bool mdns_host_is_local(const char *host)
{
    struct mdns_name n, local;
    return mdns_name_parse(host, &n) == 0 && mdns_name_parse("local", &local) == 0 && n.len > local.len &&
           mdns_name_ends_with(&n, &local);
}

int mdns_name_read(const uint8_t *pkt, size_t len, size_t *off, struct mdns_name *n)
{
    size_t pos = *off, segment = *off; /* segment: where the labels being read started */
    unsigned jumps = 0;
    bool jumped = false;

    n->len = 0;
    for (;;) {
        if (pos >= len)
            return -EBADMSG;
        uint8_t b = pkt[pos];
        if (b == 0) {
            n->wire[n->len++] = 0;
            if (!jumped)
                *off = pos + 1;
            return 0;
        }
        if ((b & 0xc0) == 0xc0) {
            if (pos + 1 >= len)
                return -EBADMSG;
            size_t target = ((size_t)(b & 0x3f) << 8) | pkt[pos + 1];
            /* Strictly before the labels that led here: targets only decrease, so no loop; and
             * never into the header. */
            if (target >= segment || target < MDNS_HEADER_LEN || ++jumps > MDNS_MAX_JUMPS)
                return -EBADMSG;
            if (!jumped)
                *off = pos + 2;
            jumped = true;
            pos = segment = target;
            continue;
        }
        if (b & 0xc0) /* 0x40 and 0x80: extended and reserved label types (RFC 6891 §5) */
            return -EBADMSG;
        if (pos + 1 + b > len || (size_t)n->len + 1 + b + 1 > MDNS_MAX_NAME)
            return -EBADMSG;
        memcpy(n->wire + n->len, pkt + pos, (size_t)b + 1);
        n->len = (uint8_t)(n->len + b + 1);
        pos += (size_t)b + 1;
    }
}
