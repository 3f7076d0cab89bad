/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Names: which Secret a partition resolves to (docs/protocol-g1.md §9 DefaultSecret, docs/upstream.md §9.8),
 * upstream's cleanKubeName, and the checks on names and hashes. */
#include <stdio.h>
#include <string.h>

#include "kms_internal.h"

char *kms_clean_kube_name(const char *s)
{
    char *d = xstrdup(s);
    for (char *c = d; *c; c++) {
        if (*c == '_')
            *c = '-';
        else if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    }
    return d;
}

bool kms_hash_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f') || (s[n] >= 'A' && s[n] <= 'F')))
            return false;
    return n == 64;
}

bool kms_text_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned c = *p, need, cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07;
        else
            return false;
        if ((size_t)(end - p) <= need)
            return false;
        for (unsigned i = 1; i <= need; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        /* overlong, surrogates, beyond U+10FFFF, C1 controls, and what libyaml does not read
         * (BOM, U+FFFE, U+FFFF) */
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0) || cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
            return false;
        p += need + 1;
    }
    return true;
}

char *kms_file_name(const char *prefix, const char *name, unsigned attempt)
{
    char buf[256];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "%s-", prefix);

    /* At most 200 bytes of the name: file names stay under NAME_MAX with any suffix. */
    for (const char *c = name; *c && n < sizeof(buf) - 40 && c - name < 200; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                  *c == '_' || (*c == '.' && c != name);
        buf[n++] = ok ? *c : '_';
    }
    if (attempt)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%u", attempt);
    snprintf(buf + n, sizeof(buf) - n, ".yaml");
    return xstrdup(buf);
}

void kms_secret_ref_of(const struct kms_volume *v, const struct kms_partition *p, struct kms_secret_ref *ref)
{
    if (*p->secret_name) {
        ref->name = xstrdup(p->secret_name);
        ref->default_name = false;
    } else {
        /* The label of the partition entry, not the request's (docs/upstream.md §9.8); none gives "<volume>-". */
        size_t n = strlen(v->name) + strlen(p->label) + 2;
        ref->name = xmalloc(n);
        snprintf(ref->name, n, "%s-%s", v->name, p->label);
        ref->default_name = true;
    }
    ref->key = xstrdup(*p->secret_path ? p->secret_path : "passphrase");
    ref->clean_name = kms_clean_kube_name(ref->name);
    ref->clean_key = kms_clean_kube_name(ref->key);
}

void kms_secret_ref_clear(struct kms_secret_ref *ref)
{
    free(ref->name);
    free(ref->key);
    free(ref->clean_name);
    free(ref->clean_key);
    *ref = (struct kms_secret_ref){0};
}

const struct kms_secret_obj *kms_secret_ref_find(const struct kms_store *s, const struct kms_secret_ref *ref)
{
    const struct kms_secret_obj *o = kms_store_find_secret(s, ref->name);
    return o ? o : kms_store_find_secret(s, ref->clean_name);
}

const struct kms_kv *kms_secret_ref_value(const struct kms_secret_obj *o, const struct kms_secret_ref *ref)
{
    const struct kms_kv *kv = kms_secret_get(o, ref->key);
    return kv ? kv : kms_secret_get(o, ref->clean_key);
}
