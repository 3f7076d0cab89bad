/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* RFC 6455 frames: encoding, and a reader that checks each frame (§5.2) and reassembles
 * fragmented messages (§5.4), the way gorilla/websocket servers send them: a non-final frame
 * and an empty final continuation (docs/upstream.md §9.12). */
#include <string.h>

#include "net_internal.h"

void ws_reader_init(struct ws_reader *r, bool from_client, size_t max_message)
{
    *r = (struct ws_reader){0};
    r->from_client = from_client;
    r->max_message = max_message ? max_message : NET_DEFAULT_MAX_MESSAGE;
}

void ws_reader_clear(struct ws_reader *r)
{
    if (r->msg)
        secure_wipe(r->msg, r->msg_cap); /* messages carry passphrases */
    free(r->msg);
    r->msg = NULL;
    r->msg_len = r->msg_cap = 0;
    r->msg_opcode = 0;
}

bool utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static bool close_code_ok(uint16_t c)
{
    /* §7.4: 1004-1006 and 1015 are never sent; 1016-2999 are reserved. */
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

static int fail(struct ws_reader *r, uint16_t *close_code, uint16_t code, const char *why)
{
    r->error = why;
    *close_code = code;
    return -EPROTO;
}

static void unmask_into(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t *mask)
{
    if (n == 0)
        return;
    if (!mask) {
        memcpy(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ mask[i & 3];
}

int ws_reader_next(struct ws_reader *r, const uint8_t *buf, size_t len, size_t *consumed, struct ws_event *ev,
                   uint16_t *close_code)
{
    size_t hdr = 2;
    uint64_t plen;

    *consumed = 0;
    if (r->done) {
        /* The previous call handed out a message: start the next one empty (and give back a
         * big buffer, so idle connections stay small). */
        if (r->msg_cap > 64 * 1024) {
            ws_reader_clear(r);
        } else if (r->msg) {
            secure_wipe(r->msg, r->msg_len);
        }
        r->msg_len = 0;
        r->msg_opcode = 0;
        r->done = false;
    }
    if (len < 2)
        return 0;
    bool fin = buf[0] & 0x80, masked = buf[1] & 0x80;
    uint8_t opcode = buf[0] & 0x0F;
    if (buf[0] & 0x70)
        return fail(r, close_code, 1002, "reserved bits set (no extension was negotiated)");
    if (masked != r->from_client)
        return fail(r, close_code, 1002,
                    r->from_client ? "unmasked frame from a client" : "masked frame from a server");
    plen = buf[1] & 0x7F;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        hdr = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        if (plen >> 63)
            return fail(r, close_code, 1002, "frame length with the top bit set");
        hdr = 10;
    }
    const uint8_t *mask = NULL;
    if (masked) {
        if (len < hdr + 4)
            return 0;
        mask = buf + hdr;
        hdr += 4;
    }
    bool control = opcode & 0x8;
    if (control) {
        if (opcode != WS_OP_CLOSE && opcode != WS_OP_PING && opcode != WS_OP_PONG)
            return fail(r, close_code, 1002, "unknown control opcode");
        if (!fin)
            return fail(r, close_code, 1002, "fragmented control frame");
        if (plen > WS_MAX_CONTROL)
            return fail(r, close_code, 1002, "control frame over 125 bytes");
    } else if (opcode == WS_OP_CONT) {
        if (!r->msg_opcode)
            return fail(r, close_code, 1002, "continuation frame without a message to continue");
    } else if (opcode == WS_OP_TEXT || opcode == WS_OP_BINARY) {
        if (r->msg_opcode)
            return fail(r, close_code, 1002, "new message before the previous one was finished");
    } else {
        return fail(r, close_code, 1002, "unknown data opcode");
    }
    /* Refuse an oversized message as soon as its length is known, not after buffering it. */
    if (!control && plen > r->max_message - r->msg_len)
        return fail(r, close_code, 1009, "message larger than the limit");
    if (len - hdr < plen)
        return 0;
    *consumed = hdr + (size_t)plen;
    const uint8_t *payload = buf + hdr;

    if (control) {
        unmask_into(r->ctrl, payload, (size_t)plen, mask);
        *ev = (struct ws_event){.data = r->ctrl, .len = (size_t)plen};
        if (opcode == WS_OP_PING) {
            ev->kind = WS_EV_PING;
        } else if (opcode == WS_OP_PONG) {
            ev->kind = WS_EV_PONG;
        } else {
            ev->kind = WS_EV_CLOSE;
            ev->code = 1005;
            if (plen == 1)
                return fail(r, close_code, 1002, "close frame with a 1-byte payload");
            if (plen >= 2) {
                ev->code = (uint16_t)(r->ctrl[0] << 8 | r->ctrl[1]);
                if (!close_code_ok(ev->code))
                    return fail(r, close_code, 1002, "invalid close code");
                if (!utf8_valid(r->ctrl + 2, (size_t)plen - 2))
                    return fail(r, close_code, 1007, "close reason is not UTF-8");
                ev->data = r->ctrl + 2;
                ev->len = (size_t)plen - 2;
            }
        }
        return 1;
    }

    if (opcode != WS_OP_CONT)
        r->msg_opcode = opcode;
    if (r->msg_len + plen + 1 > r->msg_cap) {
        size_t cap = r->msg_cap ? r->msg_cap : 1024;
        while (cap < r->msg_len + plen + 1)
            cap *= 2;
        if (cap > r->max_message + 1)
            cap = r->max_message + 1;
        uint8_t *m = malloc(cap);
        if (!m)
            return fail(r, close_code, 1011, "out of memory for the message"); /* this peer only */
        if (r->msg) {
            memcpy(m, r->msg, r->msg_len);
            secure_wipe(r->msg, r->msg_cap);
            free(r->msg);
        }
        r->msg = m;
        r->msg_cap = cap;
    }
    unmask_into(r->msg + r->msg_len, payload, (size_t)plen, mask);
    r->msg_len += (size_t)plen;
    r->msg[r->msg_len] = 0;
    if (!fin)
        return 0;
    if (r->msg_opcode == WS_OP_TEXT && !utf8_valid(r->msg, r->msg_len))
        return fail(r, close_code, 1007, "text message is not UTF-8");
    *ev = (struct ws_event){.kind = WS_EV_MESSAGE, .opcode = r->msg_opcode, .data = r->msg, .len = r->msg_len};
    r->done = true;
    return 1;
}

size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], bool fin, uint8_t opcode, uint64_t len, const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

int ws_frame_append(struct nbuf *b, uint8_t opcode, const void *data, size_t len, const uint8_t *mask)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t n = ws_frame_header(hdr, true, opcode, len, mask);
    if (len > SIZE_MAX - n || nbuf_reserve(b, n + len) < 0)
        return -ENOMEM; /* b unchanged */
    memcpy(b->data + b->len, hdr, n);
    b->len += n;
    unmask_into(b->data + b->len, data, len, mask); /* masking is its own inverse */
    b->len += len;
    nbuf_mark(b);
    return 0;
}

size_t ws_close_payload(uint8_t out[WS_MAX_CONTROL], uint16_t code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    if (n > WS_MAX_CONTROL - 2) {
        /* Cut before the character that does not fit whole: the reason must stay UTF-8, or the
         * peer fails the connection with 1007 instead of reading our code (RFC 6455 §5.5.1). */
        n = WS_MAX_CONTROL - 2;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (n)
        memcpy(out + 2, reason, n);
    return n + 2;
}

void ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
    uint8_t digest[SHA1_LEN];
    size_t kl = strlen(key), gl = strlen(WS_GUID), n;
    _cleanup_free_ char *cat = xmalloc(kl + gl);
    memcpy(cat, key, kl);
    memcpy(cat + kl, WS_GUID, gl);
    ktls_sha1(cat, kl + gl, digest);
    _cleanup_free_ char *b64 = base64_encode(digest, sizeof(digest), BASE64_STD, &n);
    memcpy(out, b64, WS_ACCEPT_LEN);
    out[WS_ACCEPT_LEN] = 0;
}

bool ws_key_valid(const char *key)
{
    uint8_t *raw = NULL;
    size_t n = 0;
    if (!key || strlen(key) != 24 || base64_decode(key, 24, BASE64_STD, &raw, &n) < 0)
        return false;
    free(raw);
    return n == 16;
}
