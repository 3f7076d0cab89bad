/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The store operations the policy code writes through: read, write (create-if-absent or
 * replace-if-unchanged) and remove one object, on whichever backend the store has. */
#include <string.h>
#include <unistd.h>

#include "kms_internal.h"

static __thread bool memory_only, io_refused;

void kms_memory_only_begin(const struct kms_store *s, bool on)
{
    memory_only = on && s->etcd;
    io_refused = false;
}

bool kms_memory_only_end(struct kms_reply *out)
{
    bool refused = io_refused;
    memory_only = io_refused = false;
    if (refused) {
        kms_reply_clear(out);
        *out = (struct kms_reply){0};
    }
    return refused;
}

/* An etcd request asked for in memory-only mode: refused before anything is done. */
static bool refused(void)
{
    if (memory_only)
        io_refused = true;
    return memory_only;
}

int kms_obj_read(struct kms_store *s, const char *name, char **out, size_t *len, struct kms_obj_ver *ver)
{
    *ver = (struct kms_obj_ver){0};
    if (s->etcd && refused())
        return -EINPROGRESS;
    if (s->etcd)
        return kms_etcd_obj_read(s, name, out, len, ver);
    return kms_dir_read(s->dirfd, s->dir, name, out, len, &ver->st);
}

int kms_obj_write(struct kms_store *s, const char *name, const void *buf, size_t len, bool replace,
                  const struct kms_obj_ver *expect)
{
    if (s->etcd && refused())
        return -EINPROGRESS;
    if (s->etcd)
        return kms_etcd_obj_write(s, name, buf, len, replace, expect);
    return kms_dir_write(s->dirfd, s->dir, name, buf, len, replace, expect ? &expect->st : NULL);
}

int kms_obj_remove(struct kms_store *s, const char *name, const struct kms_obj_ver *expect)
{
    if (s->etcd && refused())
        return -EINPROGRESS;
    if (s->etcd)
        return kms_etcd_obj_remove(s, name, expect);
    (void)expect;
    if (unlinkat(s->dirfd, name, 0) < 0)
        return log_warn_errno(-errno, "%s/%s: cannot remove: %m", s->dir, name);
    return 0;
}

char *kms_obj_where(struct kms_store *s, const char *name) { return s->etcd ? kms_etcd_where(s, name) : xstrdup(name); }

void kms_obj_ver_of(const struct kms_file *f, struct kms_obj_ver *ver)
{
    *ver = (struct kms_obj_ver){0};
    ver->st.st_dev = f->dev;
    ver->st.st_ino = f->ino;
    ver->st.st_size = f->size;
    ver->st.st_mtim = f->mtime;
    ver->rev = f->rev;
}

bool kms_obj_same(struct kms_store *s, const char *text, size_t len, const char *want, size_t want_len)
{
    char *json = NULL;
    size_t jlen = 0;
    bool same;

    if (!s->etcd)
        return len == want_len && !memcmp(text, want, len);
    if (kms_etcd_json_of(want, want_len, "(new version)", &json, &jlen) < 0)
        return false;
    same = jlen == len && !memcmp(json, text, len);
    secure_wipe(json, jlen);
    free(json);
    return same;
}
