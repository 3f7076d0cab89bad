/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Manifests we write, shaped as an operator would write them for `kubectl apply`. Every string
 * that came from outside is a plain scalar only when it cannot read as anything else, else a
 * double-quoted one, so no value can change the structure or the type. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kms_internal.h"

void kms_buf_add(struct kms_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        /* The old buffer may hold a passphrase: secure_realloc wipes it. */
        p = secure_realloc(b->p, b->cap, b->len, cap);
        if (!p)
            abort_oom();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void kms_buf_puts(struct kms_buf *b, const char *s) { kms_buf_add(b, s, strlen(s)); }

void kms_buf_printf(struct kms_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        kms_buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void kms_buf_free(struct kms_buf *b)
{
    if (b->p) {
        secure_wipe(b->p, b->cap);
        free(b->p);
    }
    b->p = NULL;
    b->cap = b->len = 0;
}

/* Length of the UTF-8 sequence at s (at most n bytes) and its code point; 1 and the byte itself
 * for an invalid one (the callers pass valid UTF-8: text read by libyaml or checked). */
static size_t utf8_next(const unsigned char *s, size_t n, unsigned *cp)
{
    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    unsigned v = len == 1 ? s[0] : len == 2 ? s[0] & 0x1fu : len == 3 ? s[0] & 0x0fu : s[0] & 0x07u;

    if (len == 0 || len > n)
        return *cp = s[0], 1;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return *cp = s[0], 1;
        v = v << 6 | (s[i] & 0x3fu);
    }
    *cp = v;
    return len;
}

void kms_buf_quoted(struct kms_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0, i = 0;

    kms_buf_add(b, "\"", 1);
    while (i < n) {
        unsigned cp;
        size_t len = utf8_next(u + i, n - i, &cp);
        char esc[12];

        /* Escaped: the quote and backslash, and whatever libyaml would not read back as this
         * very character: controls, C1 (NEL is a line break), line/paragraph separators (folded
         * like line breaks), BOM and the non-characters U+FFFE/U+FFFF. */
        if (cp == '"' || cp == '\\')
            snprintf(esc, sizeof(esc), "\\%c", (char)cp);
        else if (cp == '\n')
            snprintf(esc, sizeof(esc), "\\n");
        else if (cp == '\t')
            snprintf(esc, sizeof(esc), "\\t");
        else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
            snprintf(esc, sizeof(esc), "\\x%02x", cp);
        else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
            snprintf(esc, sizeof(esc), "\\u%04x", cp);
        else {
            i += len;
            continue;
        }
        kms_buf_add(b, s + start, i - start);
        kms_buf_puts(b, esc);
        i += len;
        start = i;
    }
    kms_buf_add(b, s + start, n - start);
    kms_buf_add(b, "\"", 1);
}

void kms_buf_scalar(struct kms_buf *b, const char *s, size_t n)
{
    /* Plain only when it cannot read as anything but this string: starts with a letter (so no
     * number), a few safe characters, and no YAML 1.1 boolean or null word. */
    static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"};
    bool plain = n > 0 && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'));

    for (size_t i = 0; i < n && plain; i++)
        plain = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                s[i] == '-' || s[i] == '_' || s[i] == '.';
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]) && plain; i++)
        plain = !(n == strlen(words[i]) && !strncasecmp(s, words[i], n));
    if (plain)
        kms_buf_add(b, s, n);
    else
        kms_buf_quoted(b, s, n);
}

static void field(struct kms_buf *b, const char *indent, const char *key, const char *value)
{
    kms_buf_printf(b, "%s%s: ", indent, key);
    kms_buf_scalar(b, value, strlen(value));
    kms_buf_puts(b, "\n");
}

/* key: value, the value always quoted and escaped (a PEM's newlines, any text an operator wrote). */
static void quoted_field(struct kms_buf *b, const char *indent, const char *key, const char *value)
{
    kms_buf_printf(b, "%s%s: ", indent, key);
    kms_buf_quoted(b, value, strlen(value));
    kms_buf_puts(b, "\n");
}

static void meta_map(struct kms_buf *b, const char *what, char *const *kv, size_t n)
{
    if (!n)
        return;
    kms_buf_printf(b, "  %s:\n", what);
    for (size_t i = 0; i < n; i++) {
        kms_buf_puts(b, "    ");
        kms_buf_scalar(b, kv[2 * i], strlen(kv[2 * i]));
        kms_buf_puts(b, ": ");
        kms_buf_quoted(b, kv[2 * i + 1], strlen(kv[2 * i + 1])); /* a value is always a string */
        kms_buf_puts(b, "\n");
    }
}

static void metadata(struct kms_buf *b, const char *name, const char *ns, const struct kms_meta *meta)
{
    kms_buf_puts(b, "metadata:\n");
    field(b, "  ", "name", name);
    if (ns && *ns)
        field(b, "  ", "namespace", ns);
    if (meta) {
        meta_map(b, "labels", meta->kv, meta->nlabels);
        meta_map(b, "annotations", kms_meta_annotations(meta), meta->nannotations);
    }
}

void kms_emit_volume(struct kms_buf *b, const struct kms_volume *v)
{
    kms_buf_puts(b, "# kairos-kms: written by `challenger register`. While it stays as written, register adds\n"
                    "# partitions to it; quarantine/release edit only the quarantined value of any manifest.\n"
                    "apiVersion: " KMS_API_VERSION "\n"
                    "kind: SealedVolume\n");
    metadata(b, v->name, v->ns, &v->meta);
    kms_buf_puts(b, "spec:\n");
    field(b, "  ", "TPMHash", v->tpm_hash);
    kms_buf_puts(b, v->nparts ? "  partitions:\n" : "  partitions: []\n");
    for (size_t i = 0; i < v->nparts; i++) {
        const struct kms_partition *p = &v->parts[i];
        const char *indent = "    - ";
        if (*p->label)
            field(b, indent, "label", p->label), indent = "      ";
        if (*p->device_name)
            field(b, indent, "deviceName", p->device_name), indent = "      ";
        if (*p->uuid)
            field(b, indent, "uuid", p->uuid), indent = "      ";
        if (p->has_secret && (*p->secret_name || *p->secret_path)) {
            kms_buf_printf(b, "%ssecret:\n", indent);
            if (*p->secret_name)
                field(b, "        ", "name", p->secret_name);
            if (*p->secret_path)
                field(b, "        ", "path", p->secret_path);
        } else if (p->has_secret) {
            kms_buf_printf(b, "%ssecret: {}\n", indent);
        } else if (!strcmp(indent, "    - ")) {
            kms_buf_puts(b, "    - {}\n");
        }
    }
    kms_buf_printf(b, "  quarantined: %s\n", v->quarantined ? "true" : "false");
    if (!v->att.present)
        return;
    /* Upstream's shape (kcrypt/api/v1alpha1 sealedvolume_types.go); "" = learn at next contact. */
    kms_buf_puts(b, "  attestation:\n");
    if (v->att.ek_pem)
        quoted_field(b, "    ", "ekPublicKey", v->att.ek_pem);
    if (v->att.has_pcrs) {
        kms_buf_puts(b, v->att.pcr_mask ? "    pcrValues:\n      pcrs:\n" : "    pcrValues:\n      pcrs: {}\n");
        for (unsigned i = 0; i < KMS_PCR_COUNT; i++)
            if (v->att.pcr_mask & (1u << i))
                kms_buf_printf(b, "        \"%u\": \"%s\"\n", i, v->att.pcr[i] ? v->att.pcr[i] : "");
    }
    /* The times as read (an operator's file may hold any text there). */
    if (v->att.enrolled_at && *v->att.enrolled_at)
        quoted_field(b, "    ", "enrolledAt", v->att.enrolled_at);
    if (v->att.last_verified_at && *v->att.last_verified_at)
        quoted_field(b, "    ", "lastVerifiedAt", v->att.last_verified_at);
}

void kms_emit_secret(struct kms_buf *b, const char *comment, const char *name, const char *ns,
                     const struct kms_meta *meta, const struct kms_kv *kv, size_t nkv)
{
    bool any_text = false, any_binary = false;

    if (comment)
        kms_buf_printf(b, "# %s\n", comment);
    kms_buf_puts(b, "apiVersion: v1\nkind: Secret\n");
    metadata(b, name, ns, meta);
    kms_buf_puts(b, "type: Opaque\n");
    for (size_t i = 0; i < nkv; i++) {
        if (kms_text_ok((const char *)kv[i].value->data, kv[i].value->len))
            any_text = true;
        else
            any_binary = true;
    }
    if (any_text) {
        kms_buf_puts(b, "stringData:\n");
        for (size_t i = 0; i < nkv; i++) {
            const struct secret *v = kv[i].value;
            if (!kms_text_ok((const char *)v->data, v->len))
                continue;
            kms_buf_puts(b, "  ");
            kms_buf_scalar(b, kv[i].key, strlen(kv[i].key));
            kms_buf_puts(b, ": ");
            kms_buf_scalar(b, (const char *)v->data, v->len);
            kms_buf_puts(b, "\n");
        }
    }
    if (any_binary) {
        kms_buf_puts(b, "data:\n");
        for (size_t i = 0; i < nkv; i++) {
            const struct secret *v = kv[i].value;
            _cleanup_secret_ struct secret *enc = NULL;
            if (kms_text_ok((const char *)v->data, v->len))
                continue;
            enc = base64_encode_secret(v->data, v->len, BASE64_STD);
            kms_buf_puts(b, "  ");
            kms_buf_scalar(b, kv[i].key, strlen(kv[i].key));
            kms_buf_puts(b, ": ");
            kms_buf_scalar(b, (const char *)enc->data, enc->len);
            kms_buf_puts(b, "\n");
        }
    }
}
