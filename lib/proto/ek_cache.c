/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* EK public keys the KMS parsed lately, by the bytes the node sent for them (G1: the token's PEM
 * text; G3: the DER SubjectPublicKeyInfo): a node's connections of one flow and its next boots
 * skip the decoding, the SPKI encoding and its hash. Entries match only when the whole key text
 * is equal; a cheap hash of it finds them. Bounded (oldest replaced); per process and per cache,
 * which one event loop uses at a time. Public keys only: nothing to wipe. */
#include <string.h>

#include "proto.h"

/* Not cryptographic (an entry matches only when its whole text is equal): 8 bytes a step. */
static uint64_t key_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h ^ (h >> 29);
}

const struct proto_ek_cache_entry *proto_ek_cache_find(const struct proto_ek_cache *c, const void *key, size_t len)
{
    uint64_t h = key_hash(key, len);

    for (size_t i = 0; i < PROTO_EK_CACHE_SIZE && c->e[i].key; i++) {
        const struct proto_ek_cache_entry *e = &c->e[i];
        if (e->key_hash == h && e->key_len == len && !memcmp(e->key, key, len))
            return e;
    }
    return NULL;
}

void proto_ek_cache_put(struct proto_ek_cache *c, const void *key, size_t len, const struct rsa_pub *ek,
                        const char hash[2 * SHA256_LEN + 1], const char *pem)
{
    struct proto_ek_cache_entry *e = &c->e[c->next];

    if (len > PROTO_EK_CACHE_MAX_KEY)
        return;
    c->next = (c->next + 1) % PROTO_EK_CACHE_SIZE;
    free(e->key);
    free(e->pem);
    e->key = xmalloc(len);
    memcpy(e->key, key, len);
    e->key_len = len;
    e->key_hash = key_hash(key, len);
    e->ek = *ek;
    memcpy(e->hash, hash, 2 * SHA256_LEN + 1);
    e->pem = pem ? xstrdup(pem) : NULL;
}
