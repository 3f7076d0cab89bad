/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* lib/kms: manifests shaped like upstream's docs (tests/data/kms/db), the /getPass and /postPass
 * decisions with upstream's error texts, the dir store on real files (atomic writes, reloads,
 * permissions, conflicts, concurrent readers), the operator commands and the audit log. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "kjson.h"
#include "kms.h"
#include "kms_internal.h"
#include "tap.h"

#define H_STATIC "7441c78f1976fb23e6a5c68f0be35be8375b135dcb36fb03cecc60f39c7660bd"
#define H_DATA "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"
#define H_AUTO "929260ad9b9ea9fe0f3553dd964f4ff3deb5792efd031a2b90f573fe91f012bb"
#define H_LEGACY "c49fea7425fa7f8699897a97c159c6690267d9003bb78c53fafa8fc15c325d84"
#define H_STOLEN "823d95a9a728f14d626df9a894705dda27417b8927412364255b515e9f2ac2e2"
#define H_IDS "23466067f626bf8a3ae1a39cdf81f31303220b331b5064c6e00662dcc34deaaf"
#define H_TWO "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"
#define H_NOKEY "3a86e4c51bcc8d434e8e28a81b71a5af4f5d2525f4874a38f3644fb6291b3406"
#define H_BROKEN "f526795c95399cea27c055c842c3d6ab018ed0fa4f66f701c28ab22dec28237b"
#define H_SURVIVOR "7a01ac37408614bcf58069bb6b6a543f6c473cdded552c491de4eb36aacce235"
#define H_CLEAN "3b066804f6d1d077173cfe4d06002e6a61e6f21c2b2e648417962115f1afcd8e"
#define H_JSON "56547a7cc8bbf46bb4aa2f18a097fee842ce6e94ca4c7f5cda6df35c4f5825c9"
#define H_NEW "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
#define H_OTHER "c0ffee0011111111111111111111111111111111111111111111111111111111"

/* ---- helpers ---- */
static char tmp_root[512];

static char *path_in(const char *dir, const char *name)
{
    static char p[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
    return p[k];
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || fd_write_all(fd, text, strlen(text)) < 0)
        printf("# cannot write %s\n", path);
    fchmod(fd, mode);
    close(fd);
}

/* Replaces path the way editors and kubectl-like tools do: a new file renamed over it. */
static void rename_over(const char *path, const char *text)
{
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%s.new~", path);
    write_file(tmp, text, 0600);
    rename(tmp, path);
}

static char *read_text(const char *path)
{
    char *buf = NULL;
    size_t len;
    return file_read_all(path, 1 << 20, &buf, &len) == 0 ? buf : NULL;
}

static char *new_dir(const char *name)
{
    char *p = xmalloc(1024);
    snprintf(p, 1024, "%s/%s", tmp_root, name);
    mkdir(p, 0700);
    return p;
}

/* A store directory holding a copy of tests/data/kms/db (files 0600, directory 0700). */
static char *copy_db(const char *name)
{
    char *dir = new_dir(name);
    DIR *d = opendir(tap_data("kms/db"));
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char *text;
        if (e->d_name[0] == '.')
            continue;
        text = read_text(path_in(tap_data("kms/db"), e->d_name));
        if (text)
            write_file(path_in(dir, e->d_name), text, 0600);
        free(text);
    }
    if (d)
        closedir(d);
    return dir;
}

static struct kms_store *open_store(const char *dir, struct kms_audit *audit)
{
    struct kms_store_options o = {.create = true, .poll_interval_ms = 0, .audit = audit};
    struct kms_store *s = NULL;
    tap_capture_begin();
    if (kms_store_open_dir(dir, &o, &s) < 0)
        s = NULL;
    tap_capture_end();
    return s;
}

/* getPass for hash + headers; returns the code and leaves the reply in *rep. */
static int get(struct kms_store *s, const char *hash, const char *label, const char *name, const char *uuid,
               struct kms_reply *rep)
{
    struct kms_request rq = {hash, label, name, uuid, "192.0.2.7:40000", false};
    return kms_get_pass(s, &rq, rep);
}

static bool got(struct kms_store *s, const char *hash, const char *label, const char *name, const char *uuid,
                const char *want_pass, const char *want_gb)
{
    struct kms_reply rep;
    bool ok = get(s, hash, label, name, uuid, &rep) == 0 && rep.outcome == KMS_OK && rep.passphrase &&
              rep.passphrase->len == strlen(want_pass) && !memcmp(rep.passphrase->data, want_pass, strlen(want_pass)) &&
              !strcmp(rep.generated_by, want_gb);
    if (!ok)
        printf("# got %s / %s\n", rep.error, rep.passphrase ? "(a passphrase)" : "(none)");
    kms_reply_clear(&rep);
    return ok;
}

static bool refused(struct kms_store *s, const char *hash, const char *label, const char *name, const char *uuid,
                    int want_r, const char *want_error)
{
    struct kms_reply rep;
    int r = get(s, hash, label, name, uuid, &rep);
    bool ok = r == want_r && !rep.passphrase && !strcmp(rep.error, want_error);
    if (!ok)
        printf("# got %d \"%s\"\n", r, rep.error);
    kms_reply_clear(&rep);
    return ok;
}

static int post_as(struct kms_store *s, const char *hash, const char *label, const char *pass, const char *gb,
                   struct kms_reply *rep)
{
    struct kms_request rq = {hash, label, "vda5", "", "192.0.2.7:40001", false};
    struct secret *p = secret_new(strlen(pass) + 1);
    int r;
    memcpy(p->data, pass, strlen(pass));
    p->len = strlen(pass);
    r = kms_post_pass(s, &rq, p, gb, rep);
    secret_free(p);
    return r;
}

static int post(struct kms_store *s, const char *hash, const char *label, const char *pass, struct kms_reply *rep)
{
    return post_as(s, hash, label, pass, "tpm", rep);
}

/* A wire-form TPM ciphertext as upstream's node posts it: base64url, no padding, 342 characters
 * for 256 bytes. tag (letters) starts it, 'A's fill it (the last one has no trailing bits). */
static const char *ciphertext(const char *tag)
{
    static char buf[4][343];
    static int k;
    k = (k + 1) % 4;
    memset(buf[k], 'A', 342);
    memcpy(buf[k], tag, strlen(tag));
    buf[k][342] = '\0';
    return buf[k];
}

static int count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    return n;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? st.st_mode & 07777 : 0;
}

/* ---- names ---- */
static void test_clean_kube_name_as_upstream(void)
{
    static const char *const cases[][2] = {
        {"COS_PERSISTENT", "cos-persistent"},
        {"test2-COS_PERSISTENT", "test2-cos-persistent"},
        {"pass_phrase", "pass-phrase"},
        {"My.Secret", "my.secret"},
        {"already-clean", "already-clean"},
        {"", ""},
        {"__X__", "--x--"},
        {"Ünï_Code", "Ünï-code"},
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = kms_clean_kube_name(cases[i][0]);
        if (strcmp(c, cases[i][1])) {
            printf("# cleanKubeName(%s) = %s\n", cases[i][0], c);
            ok = false;
        }
        free(c);
    }
    CHECK(ok, "cleanKubeName: '_' -> '-', then ASCII lowercase, as upstream G1");
}

/* ---- the manifest loader ---- */
static bool load_data(const char *name, struct kms_records *recs, const char **log)
{
    char *text = read_text(tap_data(name));
    int r;
    tap_capture_begin();
    r = text ? kms_manifest_load(text, strlen(text), name, recs) : -ENOENT;
    *log = tap_capture_end();
    free(text);
    return r == 0;
}

static bool kv_is(const struct kms_secret_obj *o, const char *key, const char *value)
{
    const struct kms_kv *kv = kms_secret_get(o, key);
    return kv && kv->value->len == strlen(value) && !memcmp(kv->value->data, value, strlen(value));
}

static void test_manifests_as_in_the_docs(void)
{
    struct kms_records r;
    const char *log;

    CHECK(
        load_data("kms/db/static-keys.yaml", &r, &log) && r.nvols == 1 && r.nsecrets == 1 && r.invalid == 0 &&
            !strcmp(r.vols[0].name, "test2") && !strcmp(r.vols[0].ns, "default") &&
            !strcmp(r.vols[0].tpm_hash, H_STATIC) && !r.vols[0].quarantined && r.vols[0].nparts == 1 &&
            !strcmp(r.vols[0].parts[0].label, "COS_PERSISTENT") && r.vols[0].parts[0].has_secret &&
            !strcmp(r.vols[0].parts[0].secret_name, "mysecret") && !strcmp(r.vols[0].parts[0].secret_path, "pass") &&
            !strcmp(r.secrets[0].name, "mysecret") && kv_is(&r.secrets[0], "pass", "awesome-plaintext-passphrase"),
        "static keys (docs/upstream.md §6.3): Secret with stringData and the SealedVolume referencing it by name and path");
    kms_records_clear(&r);
    CHECK(load_data("kms/db/static-keys-data.yml", &r, &log) && r.nvols == 1 && r.nsecrets == 1 &&
              kv_is(&r.secrets[0], "oem-pass", "oem-passphrase") && !strcmp(r.vols[0].parts[0].secret_path, "oem-pass"),
          "a Secret's data is base64-decoded; flow-style metadata and secret work");
    kms_records_clear(&r);
    CHECK(load_data("kms/db/auto-generated.yaml", &r, &log) && r.nvols == 1 && !r.vols[0].parts[0].has_secret &&
              !*r.vols[0].parts[0].secret_name,
          "auto-generated keys (docs/protocol-g1.md §6.1): a SealedVolume without a secret");
    kms_records_clear(&r);
    CHECK(load_data("kms/db/several.yaml", &r, &log) && r.nvols == 1 && r.nsecrets == 1 && r.invalid == 0 &&
              kv_is(&r.secrets[0], "by-name", "pass-for-vda5") && r.vols[0].nparts == 2 &&
              !strcmp(r.vols[0].parts[0].device_name, "vda5") && !*r.vols[0].parts[0].label,
          "several documents per file; unknown kinds and empty documents skipped; stringData wins over data");
    kms_records_clear(&r);
    CHECK(load_data("kms/db/upstream-generated.yaml", &r, &log) && r.nvols == 1 && r.nsecrets == 1 &&
              !strcmp(r.vols[0].tpm_hash, H_LEGACY) && !strcmp(r.vols[0].ns, "kcrypt") &&
              kv_is(&r.secrets[0], "generated_by", "tpm"),
          "a `kind: List` export is read; an uppercase TPMHash is normalised");
    kms_records_clear(&r);
    CHECK(load_data("kms/db/from-kubectl.json", &r, &log) && r.nvols == 1 && r.nsecrets == 1 &&
              kv_is(&r.secrets[0], "passphrase", "json-passphrase"),
          "JSON (kubectl -o json) is read too");
    kms_records_clear(&r);
    CHECK(!load_data("kms/db/broken.yaml", &r, &log) && r.nvols == 0 && strstr(log, "kms/db/broken.yaml:11:4:"),
          "a YAML syntax error is reported with its file, line and column");
    CHECK(load_data("kms/db/invalid-objects.yaml", &r, &log) && r.nvols == 1 && r.nsecrets == 0 && r.invalid == 2 &&
              !strcmp(r.vols[0].name, "survivor") &&
              strstr(log, "invalid-objects.yaml:17:3: SealedVolume no-hash: spec.TPMHash is required") &&
              strstr(log, "did you mean \"TPMHash\"") &&
              strstr(log, "invalid-objects.yaml:26:15: Secret survivor-cos-persistent: data.passphrase: not base64"),
          "invalid objects are reported with file:line:col and skipped; the valid one loads");
    kms_records_clear(&r);
}

static bool load_text(const char *text, struct kms_records *r)
{
    bool ok;
    tap_capture_begin();
    ok = kms_manifest_load(text, strlen(text), "t.yaml", r) == 0;
    tap_capture_end();
    return ok;
}

static void test_manifest_bounds_and_types(void)
{
    struct kms_records r;
    struct kms_buf b = {0};

    kms_buf_puts(&b, "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: many}\n"
                     "spec:\n  TPMHash: " H_NEW "\n  partitions:\n");
    for (int i = 0; i <= KMS_MAX_PARTITIONS; i++)
        kms_buf_printf(&b, "    - label: P%d\n", i);
    CHECK(load_text(b.p, &r) && r.nvols == 0 && r.invalid == 1, "more than %d partitions: the volume is refused",
          KMS_MAX_PARTITIONS);
    kms_records_clear(&r);
    kms_buf_free(&b);

    kms_buf_puts(&b, "apiVersion: v1\nkind: Secret\nmetadata: {name: big}\nstringData:\n  k: \"");
    for (unsigned i = 0; i <= KMS_MAX_VALUE; i++)
        kms_buf_add(&b, "x", 1);
    kms_buf_puts(&b, "\"\n");
    CHECK(load_text(b.p, &r) && r.nsecrets == 0 && r.invalid == 1, "a Secret value over %u bytes is refused",
          KMS_MAX_VALUE);
    kms_records_clear(&r);
    kms_buf_free(&b);

    for (int i = 0; i <= KMS_MAX_DOCS; i++)
        kms_buf_puts(&b, "---\napiVersion: v1\nkind: ConfigMap\n");
    CHECK(!load_text(b.p, &r) && r.nvols == 0, "more than %d objects in a file: the file is refused", KMS_MAX_DOCS);
    kms_buf_free(&b);

    CHECK(load_text("apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: q}\n"
                    "spec: {TPMHash: " H_NEW ", quarantined: maybe}\n",
                    &r) &&
              r.nvols == 0 && r.invalid == 1,
          "quarantined must be a boolean");
    kms_records_clear(&r);
    CHECK(load_text("apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: q}\n"
                    "spec: {TPMHash: abc}\n",
                    &r) &&
              r.nvols == 0 && r.invalid == 1,
          "a TPMHash that is not 64 hex digits is refused");
    kms_records_clear(&r);
    CHECK(load_text("apiVersion: keyserver.kairos.io/v2\nkind: SealedVolume\nmetadata: {name: q}\n", &r) &&
              r.nvols == 0 && r.invalid == 1,
          "another version of the SealedVolume API is reported and skipped");
    kms_records_clear(&r);
    CHECK(
        load_text("apiVersion: v1\nkind: Secret\nmetadata: {name: wrapped}\ndata:\n  k: |\n    c2Vj\n    cmV0\n", &r) &&
            r.nsecrets == 1 && kv_is(&r.secrets[0], "k", "secret"),
        "base64 data wrapped over lines decodes (line breaks are skipped, as Go does)");
    kms_records_clear(&r);
    CHECK(load_text("- just\n- a list\n", &r) && r.invalid == 1, "a document that is not a mapping is reported");
    kms_records_clear(&r);
}

/* ---- /getPass ---- */
static void test_get_pass_decisions(struct kms_store *s)
{
    CHECK(got(s, H_STATIC, "COS_PERSISTENT", "", "", "awesome-plaintext-passphrase", ""),
          "static key: the Secret named by the partition, at its path");
    CHECK(got(s, H_DATA, "COS_OEM", "vda2", "", "oem-passphrase", ""), "static key stored under data (base64)");
    CHECK(got(s, "7441C78F1976FB23E6A5C68F0BE35BE8375B135DCB36FB03CECC60F39C7660BD", "COS_PERSISTENT", NULL, NULL,
              "awesome-plaintext-passphrase", ""),
          "the request hash is compared in lowercase");
    CHECK(
        refused(s, H_STATIC, "COS_OEM", "", "", -ENOENT, "no volume found with data from request and hash: " H_STATIC),
        "no matching partition: upstream's text");
    CHECK(
        refused(s, H_NEW, "COS_PERSISTENT", "", "", -ENOENT, "no volume found with data from request and hash: " H_NEW),
        "unknown TPM: upstream's text");
    CHECK(refused(s, H_AUTO, "COS_PERSISTENT", "", "", -ENOENT, "No secret found for " H_AUTO " and COS_PERSISTENT"),
          "auto-generated mode before the node posted: upstream's text");
    CHECK(refused(s, H_STOLEN, "COS_PERSISTENT", "", "", -EACCES, "quarantined: COS_PERSISTENT"),
          "quarantined: refused with the label from the CR, although the Secret exists");
    CHECK(got(s, H_IDS, NULL, "vda5", NULL, "pass-for-vda5", "") &&
              got(s, H_IDS, "", "", "5d2c7b1e-0c4b-4e8a-9f1d-2b3c4d5e6f70", "pass-for-uuid", ""),
          "matching by device name only and by uuid only");
    CHECK(refused(s, H_IDS, "", "", "", -ENOENT, "no volume found with data from request and hash: " H_IDS),
          "empty request values never match");
    CHECK(refused(s, H_IDS, "", "vda9", "", -ENOENT, "no volume found with data from request and hash: " H_IDS),
          "a device name that differs does not match");
    CHECK(got(s, H_TWO, "COS_PERSISTENT", "", "", "from-alpha", ""),
          "two matching volumes: the first by name answers (docs/upstream.md §9.7), not the first in the file");
    CHECK(refused(s, H_NOKEY, "COS_PERSISTENT", "", "", -ENODATA, "passphrase not found in secret at key: passphrase"),
          "a Secret without the key is an explicit error (docs/upstream.md §9.9), not an empty passphrase");
    CHECK(got(s, H_CLEAN, "COS_OEM", "", "", "cleaned-oem", ""),
          "an operator's name/key not found as written is found in its cleanKubeName form");
    CHECK(got(s, H_CLEAN, "COS_PERSISTENT", "", "", "cleaned-default", ""),
          "the default <volume>-<label> name is found in its cleanKubeName form");
    CHECK(got(s, H_LEGACY, "COS_PERSISTENT", "", "", "sealed-by-the-tpm-base64url", "tpm"),
          "a Secret upstream generated: generated_by is returned");
    CHECK(got(s, H_JSON, "COS_PERSISTENT", "", "", "json-passphrase", ""), "objects from a JSON List");
    CHECK(refused(s, H_BROKEN, "COS_PERSISTENT", "", "", -ENOENT,
                  "no volume found with data from request and hash: " H_BROKEN) &&
              refused(s, H_SURVIVOR, "COS_PERSISTENT", "", "", -ENOENT,
                      "No secret found for " H_SURVIVOR " and COS_PERSISTENT"),
          "a broken manifest serves nothing, the valid objects next to an invalid one load");
    CHECK(refused(s, "xyz", "COS_PERSISTENT", "", "", -EINVAL, "invalid TPM hash"), "a malformed hash is refused");
}

/* ---- /postPass ---- */
static void test_post_pass_stores_atomically(struct kms_store *s, const char *dir)
{
    struct kms_reply rep;
    struct kms_records r = {0};
    char *text, want[600], ct1[343];
    int rc;

    snprintf(ct1, sizeof(ct1), "%s", ciphertext("CIPHERTEXTbase64url-342chars"));
    rc = post(s, H_AUTO, "COS_PERSISTENT", ct1, &rep);
    CHECK(rc == 0 && rep.outcome == KMS_OK && !strcmp(rep.secret_name, "auto-cos-persistent"),
          "postPass stores the node's passphrase under <volume>-<label> in cleanKubeName form");
    kms_reply_clear(&rep);
    text = read_text(path_in(dir, "secret-auto-cos-persistent.yaml"));
    CHECK(text && mode_of(path_in(dir, "secret-auto-cos-persistent.yaml")) == 0600 && mode_of(dir) == 0700 &&
              count_prefix(dir, ".kms-tmp") == 0,
          "the new manifest is 0600 in the 0700 directory, no temporary file is left");
    snprintf(want, sizeof(want),
             "apiVersion: v1\nkind: Secret\nmetadata:\n  name: auto-cos-persistent\n  namespace: default\n"
             "type: Opaque\nstringData:\n  passphrase: %s\n  generated_by: tpm\n",
             ct1);
    CHECK(text && strstr(text, want), "it is written as an operator would write it");
    CHECK(text && kms_manifest_load(text, strlen(text), "posted", &r) == 0 && r.nsecrets == 1 &&
              kv_is(&r.secrets[0], "passphrase", ct1) && kv_is(&r.secrets[0], "generated_by", "tpm"),
          "and it parses back");
    kms_records_clear(&r);
    CHECK(got(s, H_AUTO, "COS_PERSISTENT", "", "", ct1, "tpm"),
          "the next getPass returns it with generated_by tpm (docs/protocol-g1.md §6.1 step 5)");

    tap_capture_begin();
    rc = post(s, H_AUTO, "COS_PERSISTENT", ciphertext("ANOTHER"), &rep);
    tap_capture_end();
    CHECK(rc == -EEXIST && rep.outcome == KMS_REFUSED && strstr(rep.error, "already exists"),
          "a second post for the same Secret is refused");
    kms_reply_clear(&rep);
    {
        char *again = read_text(path_in(dir, "secret-auto-cos-persistent.yaml"));
        CHECK(again && text && !strcmp(again, text) && got(s, H_AUTO, "COS_PERSISTENT", "", "", ct1, "tpm"),
              "and never overwrites the stored one");
        free(again);
    }
    free(text);

    rc = post(s, H_STOLEN, "COS_PERSISTENT", ciphertext("X"), &rep);
    CHECK(rc == -EACCES && !strcmp(rep.error, "quarantined: COS_PERSISTENT"), "a quarantined node cannot post");
    kms_reply_clear(&rep);
    rc = post(s, H_NEW, "COS_PERSISTENT", ciphertext("X"), &rep);
    CHECK(rc == -ENOENT && !strcmp(rep.error, "no TPM Hash found for " H_NEW),
          "unknown TPM: upstream's /postPass text");
    kms_reply_clear(&rep);
    rc = post(s, H_SURVIVOR, "COS_PERSISTENT", "", &rep);
    CHECK(rc == -EINVAL && !strcmp(rep.error, "invalid answer from client: doesn't contain any passphrase"),
          "an empty passphrase is refused with upstream's text (and not stored)");
    kms_reply_clear(&rep);
    rc = post(s, H_SURVIVOR, "COS_PERSISTENT", "line\nbreak", &rep);
    CHECK(rc == -EINVAL, "a passphrase with control characters is refused");
    kms_reply_clear(&rep);

    /* docs/upstream.md §9.6: upstream creates an operator-named Secret that does not exist yet; we refuse (a
     * node may store only its own key under the default name). */
    write_file(path_in(dir, "errata6.yaml"),
               "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: e6, namespace: kcrypt}\n"
               "spec:\n  TPMHash: " H_OTHER
               "\n  partitions:\n    - label: COS_OEM\n      secret: {name: Ops_Name, path: Ops_Key}\n",
               0600);
    /* A file already holds the name the next Secret's file would get: another one is used. */
    write_file(path_in(dir, "secret-e6-cos-persistent.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
               0600);
    rc = post(s, H_OTHER, "COS_OEM", ciphertext("opsvalue"), &rep);
    CHECK(rc == -EPERM && rep.outcome == KMS_REFUSED && strstr(rep.error, "secret Ops_Name is named by the operator") &&
              count_prefix(dir, "secret-Ops") == 0 && count_prefix(dir, "secret-ops") == 0,
          "an operator-named Secret that does not exist yet is not created by a node's post (unlike upstream)");
    kms_reply_clear(&rep);
    write_file(path_in(dir, "errata6.yaml"),
               "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: e6}\n"
               "spec:\n  TPMHash: " H_OTHER "\n  partitions:\n    - label: COS_PERSISTENT\n",
               0600);
    rc = post(s, H_OTHER, "COS_PERSISTENT", ciphertext("vTwo"), &rep);
    CHECK(rc == 0 && count_prefix(dir, "secret-e6-cos-persistent.1.yaml") == 1 &&
              got(s, H_OTHER, "COS_PERSISTENT", "", "", ciphertext("vTwo"), "tpm"),
          "a file name taken by something else is never replaced: the next free one is used");
    kms_reply_clear(&rep);
}

/* A node stores only its own generated key under its default name (unlike upstream). */
#define H_NODE_A "aaaa000000000000000000000000000000000000000000000000000000000001"
#define H_NODE_B "bbbb000000000000000000000000000000000000000000000000000000000002"
static void test_post_pass_only_own_key(struct kms_store *s, const char *dir)
{
    struct kms_reply rep;
    char bad[400];
    int rc;

    write_file(path_in(dir, "hijack.yaml"),
               "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: node-a}\n"
               "spec:\n  TPMHash: " H_NODE_A "\n  partitions:\n    - label: COS_PERSISTENT\n"
               "    - label: FLEET\n      secret: {name: fleet-key, path: passphrase}\n"
               "---\napiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: node-b}\n"
               "spec:\n  TPMHash: " H_NODE_B "\n  partitions:\n    - label: OWN\n"
               "    - label: FLEET\n      secret: {name: fleet-key}\n"
               "    - label: STEAL\n      secret: {name: node-a-cos-persistent}\n",
               0600);
    /* node B's operator-named partitions: no Secret is created, existing or not. */
    rc = post(s, H_NODE_B, "FLEET", ciphertext("B"), &rep);
    CHECK(rc == -EPERM && !strcmp(rep.secret_name, "fleet-key") && strstr(rep.error, "named by the operator") &&
              count_prefix(dir, "secret-fleet") == 0,
          "a post for a partition naming an operator Secret (a fleet key) is refused, nothing written");
    kms_reply_clear(&rep);
    rc = post(s, H_NODE_B, "STEAL", ciphertext("B"), &rep);
    CHECK(rc == -EPERM && strstr(rep.error, "named by the operator") && count_prefix(dir, "secret-node-a") == 0,
          "a post naming another node's default Secret name is refused, nothing written");
    kms_reply_clear(&rep);
    /* node B's default name, collides once cleaned with node A's default name. */
    write_file(path_in(dir, "hijack2.yaml"),
               "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: node-a-cos}\n"
               "spec:\n  TPMHash: " H_NODE_B "\n  partitions:\n    - label: PERSISTENT\n",
               0600);
    tap_capture_begin();
    rc = post(s, H_NODE_B, "PERSISTENT", ciphertext("B"), &rep);
    CHECK(rc == -EPERM &&
              strstr(rep.error, "secret node-a-cos-persistent is referenced by another TPM's SealedVolume") &&
              !strstr(rep.error, "hijack") && count_prefix(dir, "secret-node-a") == 0 &&
              strstr(tap_capture_end(), "referenced by SealedVolume node-a ("),
          "a default name that another TPM's volume resolves to is refused (the operator is told which volume)");
    kms_reply_clear(&rep);
    tap_capture_begin();
    rc = post(s, H_NODE_A, "COS_PERSISTENT", ciphertext("A"), &rep);
    tap_capture_end();
    CHECK(rc == -EPERM && count_prefix(dir, "secret-node-a") == 0,
          "...both ways: while two TPMs' volumes resolve to one name, neither may store it");
    kms_reply_clear(&rep);

    /* What node B may post for its own partition. */
    rc = post(s, H_NODE_B, "OWN", "attacker-known", &rep);
    CHECK(rc == -EPERM && strstr(rep.error, "not a TPM ciphertext"), "a plaintext passphrase is refused");
    kms_reply_clear(&rep);
    rc = post_as(s, H_NODE_B, "OWN", ciphertext("B"), "", &rep);
    CHECK(rc == -EPERM && strstr(rep.error, "generated_by must be tpm"), "generated_by \"\" is refused");
    kms_reply_clear(&rep);
    rc = post_as(s, H_NODE_B, "OWN", ciphertext("B"), "TPM", &rep);
    CHECK(rc == -EPERM, "generated_by is compared exactly, as the node compares it");
    kms_reply_clear(&rep);
    snprintf(bad, sizeof(bad), "%s==", ciphertext("B"));
    rc = post(s, H_NODE_B, "OWN", bad, &rep);
    CHECK(rc == -EPERM, "a padded ciphertext is refused (nodes send it unpadded)");
    kms_reply_clear(&rep);
    snprintf(bad, sizeof(bad), "%s", ciphertext("B+/"));
    rc = post(s, H_NODE_B, "OWN", bad, &rep);
    CHECK(rc == -EPERM, "the standard base64 alphabet is refused");
    kms_reply_clear(&rep);
    snprintf(bad, sizeof(bad), "%s", ciphertext("B"));
    bad[341] = 'B';
    rc = post(s, H_NODE_B, "OWN", bad, &rep);
    CHECK(rc == -EPERM, "non-canonical trailing bits are refused");
    kms_reply_clear(&rep);
    bad[341] = '\0';
    rc = post(s, H_NODE_B, "OWN", bad, &rep);
    CHECK(rc == -EPERM, "341 characters (255 bytes) are refused");
    kms_reply_clear(&rep);
    snprintf(bad, sizeof(bad), "%sAAAA", ciphertext("B"));
    rc = post(s, H_NODE_B, "OWN", bad, &rep);
    CHECK(rc == -EPERM && count_prefix(dir, "secret-node-b") == 0, "259 bytes are refused; nothing was written");
    kms_reply_clear(&rep);
    rc = post(s, H_NODE_B, "OWN", ciphertext("Bown"), &rep);
    CHECK(rc == 0 && got(s, H_NODE_B, "OWN", "", "", ciphertext("Bown"), "tpm"),
          "the node's own ciphertext under its default name is stored");
    kms_reply_clear(&rep);

    /* The operator fixes the collision: node A stores its own key. */
    unlink(path_in(dir, "hijack2.yaml"));
    write_file(path_in(dir, "hijack.yaml"),
               "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: node-a}\n"
               "spec:\n  TPMHash: " H_NODE_A "\n  partitions:\n    - label: COS_PERSISTENT\n"
               "    - label: FLEET\n      secret: {name: fleet-key, path: passphrase}\n",
               0600);
    rc = post(s, H_NODE_A, "COS_PERSISTENT", ciphertext("A"), &rep);
    CHECK(rc == 0 && got(s, H_NODE_A, "COS_PERSISTENT", "", "", ciphertext("A"), "tpm"),
          "once no other TPM's volume resolves to its name, node A stores and gets its own key");
    kms_reply_clear(&rep);
    rc = post(s, H_NODE_A, "FLEET", ciphertext("A"), &rep);
    CHECK(rc == -EPERM && count_prefix(dir, "secret-fleet") == 0, "node A cannot create the operator's Secret either");
    kms_reply_clear(&rep);
    unlink(path_in(dir, "hijack.yaml"));
}

/* ---- reloads ---- */
static const char *volume_text(const char *name, const char *hash, const char *secret_value)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: %s}\n"
             "spec:\n  TPMHash: \"%s\"\n  partitions:\n    - label: DATA\n---\napiVersion: v1\nkind: Secret\n"
             "metadata: {name: %s-data}\nstringData: {passphrase: \"%s\"}\n",
             name, hash, name, secret_value);
    return buf;
}

static void test_edits_are_seen_without_restart(void)
{
    char *dir = new_dir("reload");
    struct kms_store *s = open_store(dir, NULL);
    const char *file = path_in(dir, "node.yaml");
    struct kms_store_options slow = {.poll_interval_ms = 60000};
    struct kms_store *lazy = NULL;
    struct timespec ts[2];
    struct stat st;

    CHECK(s && refused(s, H_NEW, "DATA", "", "", -ENOENT, "no volume found with data from request and hash: " H_NEW),
          "an empty store knows nothing");
    write_file(file, volume_text("fresh", H_NEW, "first"), 0600);
    CHECK(got(s, H_NEW, "DATA", "", "", "first", ""), "a new manifest is seen at the next lookup");
    rename_over(file, volume_text("fresh", H_NEW, "second"));
    CHECK(got(s, H_NEW, "DATA", "", "", "second", ""), "a manifest renamed over the old one is seen");

    tap_capture_begin();
    write_file(file, "apiVersion: v1\nkind: Secret\nmetadata: {name: [\n", 0600);
    CHECK(got(s, H_NEW, "DATA", "", "", "second", "") &&
              strstr(tap_capture_end(), "keeping the records of its last good version"),
          "a half-written (unparsable) file keeps its last good records");
    write_file(file, volume_text("fresh", H_NEW, "third"), 0600);
    CHECK(got(s, H_NEW, "DATA", "", "", "third", ""), "once it parses again the new version is served");

    /* Same size, same mtime, different content: only the re-read of recent files catches it. */
    stat(file, &st);
    write_file(file, volume_text("fresh", H_NEW, "again"), 0600);
    ts[0] = st.st_atim;
    ts[1] = st.st_mtim;
    utimensat(AT_FDCWD, file, ts, 0);
    CHECK(got(s, H_NEW, "DATA", "", "", "again", ""), "a same-size rewrite within the same timestamp is still seen");

    unlink(file);
    CHECK(refused(s, H_NEW, "DATA", "", "", -ENOENT, "no volume found with data from request and hash: " H_NEW),
          "a deleted manifest's records are gone");

    tap_capture_begin();
    kms_store_open_dir(dir, &slow, &lazy);
    tap_capture_end();
    write_file(file, volume_text("fresh", H_NEW, "later"), 0600);
    CHECK(lazy &&
              refused(lazy, H_NEW, "DATA", "", "", -ENOENT, "no volume found with data from request and hash: " H_NEW),
          "within the poll interval the index is not rescanned");
    CHECK(lazy && kms_store_refresh(lazy, true) == 1 && got(lazy, H_NEW, "DATA", "", "", "later", ""),
          "kms_store_refresh(force) rescans at once and says the records changed");
    CHECK(lazy && kms_store_refresh(lazy, true) >= 0, "a rescan without changes is fine");
    kms_store_free(lazy);
    kms_store_free(s);
    free(dir);
}

static void test_conflicts_are_refused(void)
{
    char *dir = new_dir("conflict");
    struct kms_store *s = NULL;
    const char *log;

    write_file(path_in(dir, "a.yaml"), volume_text("twice", H_NEW, "one"), 0600);
    write_file(path_in(dir, "b.yaml"), volume_text("twice", H_NEW, "two"), 0600);
    tap_capture_begin();
    if (kms_store_open_dir(dir, &(struct kms_store_options){.poll_interval_ms = 0}, &s) < 0)
        s = NULL;
    log = tap_capture_end();
    CHECK(s && strstr(log, "SealedVolume twice is defined twice:") && strstr(log, "a.yaml:1") &&
              strstr(log, "b.yaml:1"),
          "the same kind and name in two files is reported with both places (namespaces ignored)");
    tap_capture_begin();
    CHECK(
        s && refused(s, H_NEW, "DATA", "", "", -ENOTUNIQ, "SealedVolume twice is defined more than once on the server"),
        "and a request that needs it is refused, without naming server files");
    tap_capture_end();
    kms_store_free(s);
    free(dir);
}

static void test_directory_and_file_permissions(void)
{
    char *base = new_dir("perms"), link[1100], sub[1100];
    struct kms_store *s = NULL;
    const char *log;
    int r;

    snprintf(sub, sizeof(sub), "%s/made", base);
    s = open_store(sub, NULL);
    CHECK(s && mode_of(sub) == 0700, "a missing store directory is created 0700");
    kms_store_free(s);

    snprintf(link, sizeof(link), "%s/link", base);
    symlink(sub, link);
    tap_capture_begin();
    r = kms_store_open_dir(link, NULL, &s);
    CHECK(r == -ELOOP && strstr(tap_capture_end(), "is a symlink"), "a store directory that is a symlink is refused");

    chmod(sub, 0777);
    tap_capture_begin();
    r = kms_store_open_dir(sub, NULL, &s);
    CHECK(r == -EPERM && strstr(tap_capture_end(), "writable by other users"),
          "a world-writable store directory is refused");
    chmod(sub, 0700);

    write_file(path_in(sub, "open.yaml"), volume_text("open", H_NEW, "x"), 0666);
    write_file(path_in(base, "outside.yaml"), volume_text("outside", H_OTHER, "x"), 0600);
    symlink(path_in(base, "outside.yaml"), path_in(sub, "linked.yaml"));
    write_file(path_in(sub, ".hidden.yaml"), volume_text("hidden", H_OTHER, "x"), 0600);
    mkfifo(path_in(sub, "fifo.yaml"), 0600);
    tap_capture_begin();
    r = kms_store_open_dir(sub, &(struct kms_store_options){.poll_interval_ms = 0}, &s);
    log = tap_capture_end();
    CHECK(r == 0 && strstr(log, "open.yaml: writable by other users; not loaded") &&
              refused(s, H_NEW, "DATA", "", "", -ENOENT, "no volume found with data from request and hash: " H_NEW),
          "a manifest writable by other users is not loaded");
    CHECK(strstr(log, "linked.yaml: is a symlink; not followed") && strstr(log, "fifo.yaml: not a regular file") &&
              refused(s, H_OTHER, "DATA", "", "", -ENOENT, "no volume found with data from request and hash: " H_OTHER),
          "symlinks, FIFOs and hidden files in the directory are not loaded");
    kms_store_free(s);

    /* A file over the size bound, and a temporary file a crashed writer left an hour ago. */
    {
        char *big = xcalloc(KMS_MAX_FILE_SIZE + 2, 1);
        struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
        memset(big, '#', KMS_MAX_FILE_SIZE + 1);
        write_file(path_in(sub, "big.yaml"), big, 0600);
        free(big);
        write_file(path_in(sub, ".kms-tmp-0123456789abcdef"), "partial", 0600);
        utimensat(AT_FDCWD, path_in(sub, ".kms-tmp-0123456789abcdef"), old, 0);
        write_file(path_in(sub, ".kms-tmp-fresh"), "being written", 0600);
    }
    tap_capture_begin();
    r = kms_store_open_dir(sub, NULL, &s);
    log = tap_capture_end();
    CHECK(r == 0 && strstr(log, "big.yaml: larger than 1048576 bytes; not loaded"),
          "a manifest over 1 MiB is not loaded");
    CHECK(access(path_in(sub, ".kms-tmp-0123456789abcdef"), F_OK) < 0 &&
              access(path_in(sub, ".kms-tmp-fresh"), F_OK) == 0,
          "opening the store removes temporary files of interrupted writes, not recent ones");
    kms_store_free(s);
    free(base);
}

/* ---- operator commands ---- */
static void test_register_and_list(void)
{
    char *dir = new_dir("register");
    struct kms_store *s = open_store(dir, NULL);
    struct secret *pass = secret_new(16);
    struct kms_register reg = {.tpm_hash = H_NEW, .label = "COS_PERSISTENT"};
    char *text, *listing = NULL;
    size_t listing_len = 0;
    FILE *out;
    int r;

    memcpy(pass->data, "static pass 1", 13);
    pass->len = 13;
    reg.passphrase = pass;
    tap_capture_begin();
    r = kms_register(s, &reg);
    tap_capture_end();
    text = read_text(path_in(dir, "sealedvolume-node-c0ffee00.yaml"));
    CHECK(
        r == 0 && text &&
            strstr(
                text,
                "metadata:\n  name: node-c0ffee00\n  namespace: default\nspec:\n  TPMHash: " H_NEW "\n"
                "  partitions:\n    - label: COS_PERSISTENT\n      secret:\n        name: node-c0ffee00-cos-persistent\n"
                "        path: passphrase\n  quarantined: false\n"),
        "register writes a SealedVolume named node-<first 8 hex> with the partition");
    free(text);
    CHECK(mode_of(path_in(dir, "secret-node-c0ffee00-cos-persistent.yaml")) == 0600 &&
              got(s, H_NEW, "COS_PERSISTENT", "", "", "static pass 1", ""),
          "with a passphrase also its Secret (0600), served at once");

    reg.label = "COS_OEM";
    reg.passphrase = NULL;
    tap_capture_begin();
    r = kms_register(s, &reg);
    tap_capture_end();
    CHECK(r == 0 && refused(s, H_NEW, "COS_OEM", "", "", -ENOENT, "No secret found for " H_NEW " and COS_OEM"),
          "a second partition goes into the node's existing SealedVolume (auto-generated mode)");
    tap_capture_begin();
    r = kms_register(s, &reg);
    CHECK(r == -EEXIST && strstr(tap_capture_end(), "already registered"),
          "registering the same partition twice is refused");

    reg = (struct kms_register){.tpm_hash = H_OTHER, .label = "COS_PERSISTENT"};
    tap_capture_begin();
    r = kms_register(s, &reg);
    CHECK(r == -EEXIST && strstr(tap_capture_end(), "holds another TPM hash"),
          "two hashes with the same 8-digit prefix: the second needs a name of its own");
    reg.volume = "other-node";
    reg.secret_name = "node-c0ffee00-cos-persistent";
    reg.passphrase = pass;
    tap_capture_begin();
    r = kms_register(s, &reg);
    CHECK(r == -EEXIST && strstr(tap_capture_end(), "already exists") && count_prefix(dir, "sealedvolume-other") == 0,
          "register never overwrites an existing Secret (and writes no volume then)");

    write_file(path_in(dir, "hand.yaml"),
               "# written by an operator\n"
               "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\n"
               "metadata: {name: hand}\nspec:\n  TPMHash: " H_STATIC "\n  partitions:\n    - label: A\n",
               0600);
    reg = (struct kms_register){.tpm_hash = H_STATIC, .label = "B"};
    tap_capture_begin();
    r = kms_register(s, &reg);
    CHECK(r == -EPERM && strstr(tap_capture_end(), "hand.yaml:2, which register did not write"),
          "adding to a SealedVolume register did not write names the file:line to edit by hand");

    out = open_memstream(&listing, &listing_len);
    r = kms_list(s, out);
    fclose(out);
    CHECK(r == 0 && listing &&
              strstr(listing, "node-c0ffee00\t" H_NEW
                              "\tactive\tCOS_PERSISTENT=>node-c0ffee00-cos-persistent/passphrase:present "
                              "COS_OEM=>node-c0ffee00-cos-oem/passphrase:awaiting-node\t") &&
              strstr(listing, "hand\t" H_STATIC "\tactive\tA=>hand-a/passphrase:awaiting-node\t") &&
              !strstr(listing, "static pass 1"),
          "list: one line per SealedVolume with its partitions and Secrets, never a value");
    free(listing);
    secret_free(pass);
    kms_store_free(s);
    free(dir);
}

static bool set_q(const char *text, const char *hash, bool on, char **out, int *changed)
{
    size_t len;
    int r;
    tap_capture_begin();
    r = kms_text_set_quarantine(text, strlen(text), "q.yaml", hash, on, out, &len, changed);
    tap_capture_end();
    return r == 0;
}

static void test_quarantine_edits_in_place(void)
{
    static const char vol[] = "# keep this comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n---\n"
                              "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata:\n  name: n\n"
                              "spec:\n  TPMHash: " H_NEW "   # the node\n  partitions:\n    - label: A\n";
    char *out = NULL, text[2048];
    int changed;

    CHECK(set_q(vol, H_NEW, true, &out, &changed) && changed == 1 && out &&
              !strncmp(out, vol, strstr(vol, "spec:\n") - vol + 6) &&
              strstr(out, "spec:\n  quarantined: true\n  TPMHash: " H_NEW "   # the node\n"),
          "quarantine adds the field to a block spec; comments and other documents stay byte for byte");
    snprintf(text, sizeof(text), "%s", out);
    free(out);
    CHECK(set_q(text, H_NEW, false, &out, &changed) && changed == 1 &&
              strstr(out, "  quarantined: false\n  TPMHash:") && strlen(out) == strlen(text) + 1,
          "release replaces only the value");
    free(out);
    CHECK(set_q(text, H_NEW, true, &out, &changed) && changed == 0 && !out, "nothing to change: nothing written");
    snprintf(text, sizeof(text),
             "apiVersion: keyserver.kairos.io/v1alpha1\r\nkind: SealedVolume\r\nmetadata: {name: n}\r\n"
             "spec:\r\n  TPMHash: '%s'\r\n  quarantined: \"no\"\r\n",
             H_NEW);
    CHECK(set_q(text, H_NEW, true, &out, &changed) && changed == 1 && strstr(out, "  quarantined: true\r\n"),
          "a quoted value in a CRLF file is replaced");
    free(out);
    snprintf(text, sizeof(text),
             "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: n}\n"
             "spec: {TPMHash: %s}\n",
             H_NEW);
    CHECK(!set_q(text, H_NEW, true, &out, &changed) && !out,
          "a flow-style spec without the field is left to the operator");
    snprintf(text, sizeof(text),
             "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: n}\n"
             "spec: {TPMHash: %s, quarantined: false}\n",
             H_NEW);
    CHECK(set_q(text, H_NEW, true, &out, &changed) && changed == 1 && strstr(out, "quarantined: true}"),
          "a flow-style value is replaced");
    free(out);
    snprintf(text, sizeof(text),
             "x: &q false\n---\napiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\n"
             "metadata: {name: n}\nspec:\n  TPMHash: %s\n  quarantined: *q\n",
             H_NEW);
    CHECK(!set_q(text, H_NEW, true, &out, &changed) && !out, "an alias is not edited (it would change its anchor)");
    CHECK(!set_q(vol, H_OTHER, true, &out, &changed) && !out, "an unknown hash is an error");
}

static void test_quarantine_command_on_operator_files(void)
{
    char *dir = copy_db("quarantine");
    struct kms_store *s = open_store(dir, NULL);
    char *before = read_text(path_in(dir, "two-volumes.yaml")), *after;
    int r;

    tap_capture_begin();
    r = kms_set_quarantine(s, H_TWO, true);
    tap_capture_end();
    after = read_text(path_in(dir, "two-volumes.yaml"));
    CHECK(r == 0 && refused(s, H_TWO, "COS_PERSISTENT", "", "", -EACCES, "quarantined: COS_PERSISTENT") && after &&
              strlen(after) == strlen(before) + 2 * strlen("  quarantined: true\n") &&
              mode_of(path_in(dir, "two-volumes.yaml")) == 0600 && count_prefix(dir, ".kms-tmp") == 0,
          "quarantine H sets every volume of H in an operator's multi-document file");
    tap_capture_begin();
    r = kms_set_quarantine(s, H_TWO, false);
    tap_capture_end();
    free(after);
    after = read_text(path_in(dir, "two-volumes.yaml"));
    CHECK(r == 0 && got(s, H_TWO, "COS_PERSISTENT", "", "", "from-alpha", ""), "release H serves the node again");
    tap_capture_begin();
    r = kms_set_quarantine(s, H_NEW, true);
    CHECK(r == -ENOENT && strstr(tap_capture_end(), "no SealedVolume holds TPM hash"),
          "quarantine of an unknown hash fails");
    tap_capture_begin();
    r = kms_set_quarantine(s, H_LEGACY, true);
    tap_capture_end();
    CHECK(r == 0 && refused(s, H_LEGACY, "COS_PERSISTENT", "", "", -EACCES, "quarantined: COS_PERSISTENT"),
          "quarantine inside a List item");
    free(before);
    free(after);
    kms_store_free(s);
    free(dir);
}

/* ---- audit ---- */
static void test_audit_lines(const char *audit_path)
{
    char *text = read_text(audit_path), *line, *save = NULL;
    bool all_json = true, no_secret;
    int n = 0;

    no_secret = text && !strstr(text, "awesome-plaintext-passphrase") && !strstr(text, "CIPHERTEXT") &&
                !strstr(text, "attacker-known") && !strstr(text, "oem-passphrase") &&
                !strstr(text, "must-never-be-served");
    CHECK(no_secret, "the audit log never holds a passphrase");
    CHECK(mode_of(audit_path) == 0600, "the audit log is created 0600");
    for (line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        struct kjson_doc *d = NULL;
        char *t = NULL;
        n++;
        if (kjson_parse(line, strlen(line), NULL, &d, NULL) < 0 || kjson_get_str(d, KJSON_ROOT, "time", 0, &t) != 1 ||
            strlen(t) != 24 || t[10] != 'T' || t[23] != 'Z' || kjson_get(d, KJSON_ROOT, "tpm_hash", 0) < 0 ||
            kjson_get(d, KJSON_ROOT, "peer", 0) < 0 || kjson_get(d, KJSON_ROOT, "reason", 0) < 0)
            all_json = false;
        free(t);
        kjson_free(d);
    }
    CHECK(n > 20 && all_json, "every decision is one JSON line with an RFC 3339 UTC time (%d lines)", n);
    free(text);
    text = read_text(audit_path);
    CHECK(text &&
              strstr(
                  text,
                  "\"action\":\"getPass\",\"outcome\":\"refused\",\"tpm_hash\":\"" H_STOLEN
                  "\",\"label\":\"COS_PERSISTENT\",\"name\":\"\",\"uuid\":\"\",\"peer\":\"192.0.2.7:40000\","
                  "\"volume\":\"stolen\",\"secret\":\"\",\"reason\":\"quarantined: COS_PERSISTENT\",\"instance\":\"") &&
              strstr(text, "\"action\":\"postPass\",\"outcome\":\"ok\""),
          "a line names the action, outcome, hash, partition, peer, volume, reason and instance");
    CHECK(text &&
              strstr(text, "\"action\":\"postPass\",\"outcome\":\"refused\",\"tpm_hash\":\"" H_NODE_B
                           "\",\"label\":\"FLEET\",\"name\":\"vda5\",\"uuid\":\"\",\"peer\":\"192.0.2.7:40001\","
                           "\"volume\":\"node-b\",\"secret\":\"fleet-key\",\"reason\":\"secret fleet-key is named by "
                           "the operator") &&
              strstr(text, "\"reason\":\"invalid answer from client: generated_by must be tpm"),
          "a refused post is audited with its reason and the Secret it aimed at");
    free(text);
}

/* ---- concurrency ---- */
struct reader {
    struct kms_store *s;
    int ok, bad;
    volatile int *stop;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    while (!*rd->stop) {
        struct kms_reply rep;
        if (get(rd->s, H_NEW, "DATA", "", "", &rep) == 0 && rep.passphrase && rep.passphrase->len == 5 &&
            (!memcmp(rep.passphrase->data, "even0", 5) || !memcmp(rep.passphrase->data, "odd-1", 5)))
            rd->ok++;
        else
            rd->bad++;
        kms_reply_clear(&rep);
    }
    return NULL;
}

static void test_concurrent_readers_while_writing(void)
{
    char *dir = new_dir("concurrent");
    const char *file = path_in(dir, "node.yaml");
    struct kms_store *s;
    struct reader rd[4];
    pthread_t th[4];
    volatile int stop = 0;
    int ok = 0, bad = 0;

    write_file(file, volume_text("busy", H_NEW, "even0"), 0600);
    s = open_store(dir, NULL);
    for (int i = 0; i < 4; i++) {
        rd[i] = (struct reader){s, 0, 0, &stop};
        pthread_create(&th[i], NULL, reader_main, &rd[i]);
    }
    for (int i = 0; i < 300; i++)
        rename_over(file, volume_text("busy", H_NEW, i % 2 ? "odd-1" : "even0"));
    stop = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += rd[i].ok;
        bad += rd[i].bad;
    }
    CHECK(ok > 0 && bad == 0, "4 threads reading while a file is replaced 300 times: %d answers, all valid", ok);
    kms_store_free(s);
    free(dir);
}

static void test_passphrase_file(void)
{
    char *dir = new_dir("passfile");
    struct secret *p = NULL;
    int r;

    write_file(path_in(dir, "p"), "hunter2 with spaces\r\n", 0600);
    CHECK(kms_passphrase_read_file(path_in(dir, "p"), &p) == 0 && p->len == 19 &&
              !memcmp(p->data, "hunter2 with spaces", 19),
          "a passphrase file loses one trailing newline");
    secret_free(p);
    write_file(path_in(dir, "e"), "\n", 0600);
    tap_capture_begin();
    r = kms_passphrase_read_file(path_in(dir, "e"), &p);
    CHECK(r == -EINVAL && strstr(tap_capture_end(), "empty"), "an empty passphrase file is refused");
    free(dir);
}

/* ---- G3: spec.attestation, SafeKubeName, the enrollment policy ---- */
static void test_safe_kube_name(void)
{
    static const char *const cases[][2] = {
        {"tofu-5640e37f", "tofu-5640e37f"},
        {"tofu-5640e37f-COS_PERSISTENT", "tofu-5640e37f-cos-persistent"},
        {"tofu-5640e37f-DATA", "tofu-5640e37f-data"}, /* upstream keeps upper case: invalid */
        {"--a..b--", "a--b"},
    };
    bool ok = true;
    char *c;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c = kms_safe_kube_name(cases[i][0]);
        if (strcmp(c, cases[i][1])) {
            printf("# SafeKubeName(%s) = %s\n", cases[i][0], c);
            ok = false;
        }
        free(c);
    }
    CHECK(ok, "SafeKubeName: lower case, [a-z0-9-] only, trimmed (always a valid Kubernetes name)");
    c = kms_safe_kube_name("___");
    CHECK(!strncmp(c, "kube-", 5) && strlen(c) == 13, "SafeKubeName of nothing usable: kube-<8 hex of its SHA-256>");
    free(c);
    c = kms_safe_kube_name("tofu-0123456789-" H_NEW);
    CHECK(strlen(c) <= 63 && c[54] == '-' && strlen(c) == 63, "SafeKubeName over 63 characters: 54 + '-' + 8 hex");
    free(c);
}

static void test_attestation_manifest(void)
{
    struct kms_records r, r2;
    struct kms_buf b = {0};
    const char *text =
        "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: att}\n"
        "spec:\n  TPMHash: " H_NEW "\n  partitions:\n    - label: COS_PERSISTENT\n"
        "  attestation:\n    ekPublicKey: \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n\"\n"
        "    pcrValues:\n      pcrs:\n        \"0\": \"\"\n        \"7\": \"ABCDEF\"\n"
        "    enrolledAt: \"2026-01-02T03:04:05Z\"\n";
    bool ok = load_text(text, &r) && r.nvols == 1;
    const struct kms_attestation *a = ok ? &r.vols[0].att : NULL;
    CHECK(ok && a->present && a->has_pcrs && a->pcr_mask == ((1u << 0) | (1u << 7)) && !strcmp(a->pcr[0], "") &&
              !strcmp(a->pcr[7], "abcdef") && !strncmp(a->ek_pem, "-----BEGIN PUBLIC KEY-----\nAAAA\n", 31) &&
              !strcmp(a->enrolled_at, "2026-01-02T03:04:05Z"),
          "spec.attestation read in upstream's shape: \"\" = learn, hex lowered, absent PCR = not checked");
    if (ok) {
        kms_emit_volume(&b, &r.vols[0]);
        CHECK(load_text(b.p, &r2) && r2.nvols == 1 && kms_records_equal(&r, &r2),
              "written back (emit) and read again: the same record");
        kms_records_clear(&r2);
    }
    kms_buf_free(&b);
    kms_records_clear(&r);
    CHECK(load_text("apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: a}\nspec:\n"
                    "  TPMHash: " H_NEW "\n  attestation: {}\n",
                    &r) &&
              r.nvols == 1 && r.vols[0].att.present && !r.vols[0].att.has_pcrs,
          "attestation: {} = learn the EK, never check PCRs");
    kms_records_clear(&r);
    CHECK(load_text("apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: a}\nspec:\n"
                    "  TPMHash: " H_NEW "\n  attestation: {pcrValues: {pcrs: {\"24\": \"\"}}}\n",
                    &r) &&
              r.nvols == 0 && r.invalid == 1,
          "a PCR key outside 0..23 makes the volume invalid");
    kms_records_clear(&r);
    CHECK(load_text("apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: a}\nspec:\n"
                    "  TPMHash: " H_NEW "\n  attestation: {pcrValues: {pcrs: {\"7\": \"xyz\"}}}\n",
                    &r) &&
              r.nvols == 0 && r.invalid == 1,
          "a PCR value that is not hex makes the volume invalid");
    kms_records_clear(&r);
}

/* metadata.labels and metadata.annotations are kept: emitted again (what DIR gets when the KMS
 * rewrites a volume, and what export writes) they read back the same, compacted records keep
 * them, and a changed value is a changed record. */
static void test_labels_and_annotations_kept(void)
{
    struct kms_records r, r2, r3;
    struct kms_buf b = {0};
    const char *text = "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata:\n  name: lab\n"
                       "  labels: {app.kubernetes.io/name: kairos, site: \"edge: 7\", empty: }\n"
                       "  annotations:\n    note: \"it's \\\"quoted\\\"\"\n    \"123\": true\n"
                       "spec:\n  TPMHash: " H_NEW "\n  partitions:\n    - label: COS_PERSISTENT\n"
                       "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, labels: {tier: gold}}\n"
                       "stringData: {pass: x}\n";
    bool ok = load_text(text, &r) && r.nvols == 1 && r.nsecrets == 1;
    const struct kms_meta *m = ok ? &r.vols[0].meta : NULL;

    CHECK(ok && m->nlabels == 3 && !strcmp(m->kv[0], "app.kubernetes.io/name") && !strcmp(m->kv[1], "kairos") &&
              !strcmp(m->kv[3], "edge: 7") && !strcmp(m->kv[5], "") && m->nannotations == 2 &&
              !strcmp(m->kv[7], "it's \"quoted\"") && !strcmp(m->kv[8], "123") && !strcmp(m->kv[9], "true") &&
              r.secrets[0].meta.nlabels == 1,
          "metadata.labels and annotations are read as strings, in order");
    if (ok) {
        kms_emit_volume(&b, &r.vols[0]);
        kms_buf_puts(&b, "---\n");
        kms_emit_secret(&b, NULL, r.secrets[0].name, r.secrets[0].ns, &r.secrets[0].meta, r.secrets[0].kv,
                        r.secrets[0].nkv);
        CHECK(strstr(b.p, "  labels:\n    \"app.kubernetes.io/name\": \"kairos\"\n") &&
                  strstr(b.p, "metadata:\n  name: s\n  labels:\n    tier: \"gold\"\n"),
              "written back under metadata, values always quoted");
        CHECK(load_text(b.p, &r2) && kms_records_equal(&r, &r2), "written back and read again: the same records");
        kms_records_compact(&r2);
        CHECK(kms_records_equal(&r, &r2), "compacted records keep them");
        kms_records_clear(&r2);
    }
    kms_buf_free(&b);
    b = (struct kms_buf){0};
    kms_buf_puts(&b, text);
    memcpy(strstr(b.p, "edge: 7"), "edge: 8", 7);
    CHECK(load_text(b.p, &r3) && !kms_records_equal(&r, &r3), "a changed label value is a changed record");
    kms_records_clear(&r3);
    kms_buf_free(&b);
    CHECK(load_text("apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\n"
                    "metadata: {name: lab, labels: [a, b]}\nspec: {TPMHash: " H_NEW "}\n",
                    &r2) &&
              r2.nvols == 0 && r2.invalid == 1,
          "labels that are not a mapping make the object invalid");
    kms_records_clear(&r2);
    kms_records_clear(&r);
}

static void test_attest_decisions(void)
{
    char *dir = new_dir("attest");
    struct kms_store *s = open_store(dir, NULL);
    uint8_t pcr[24][32] = {{0}};
    struct secret *pass = secret_new(8);
    struct kms_reply rep;
    struct kms_attest_request rq = {.req = {.tpm_hash = H_NEW, .label = "COS_PERSISTENT"},
                                    .ek_pem = "EK-A\n",
                                    .pcr_mask = (1u << 0) | (1u << 7),
                                    .pcr = (const uint8_t(*)[32])pcr,
                                    .passphrase = pass,
                                    .generated_by = ""};
    int r;

    memcpy(pass->data, "gen-pass", 8);
    pass->len = 8;
    pcr[7][0] = 0x11;
    tap_capture_begin();
    r = kms_attest(s, &rq, &rep);
    tap_capture_end();
    CHECK(r == -EACCES && rep.code == KMS_C_NOT_ENROLLED, "registered only: an unknown TPM is not enrolled");
    kms_reply_clear(&rep);
    {
        struct kms_pending *p = NULL;
        size_t n = 0;
        CHECK(kms_pending_list(s, &p, &n) == 0 && n == 1 && !strcmp(p[0].hash, H_NEW) &&
                  !strcmp(p[0].label, "COS_PERSISTENT") && p[0].pcr_mask == rq.pcr_mask,
              "...and recorded as pending, with its partition and PCRs");
        for (size_t i = 0; i < n; i++)
            kms_pending_clear(&p[i]);
        free(p);
    }
    rq.tofu = true;
    tap_capture_begin();
    r = kms_attest(s, &rq, &rep);
    tap_capture_end();
    CHECK(r == 0 && rep.code == KMS_C_OK && rep.passphrase && rep.passphrase->len == 8 &&
              !memcmp(rep.passphrase->data, "gen-pass", 8) && rep.volume && !strcmp(rep.volume, "tofu-c0ffee00"),
          "tofu: enrolled as tofu-<hash8>, the new Secret holds the passphrase given");
    kms_reply_clear(&rep);
    pcr[7][0] = 0x12;
    tap_capture_begin();
    r = kms_attest(s, &rq, &rep);
    tap_capture_end();
    CHECK(r < 0 && rep.code == KMS_C_PCR_MISMATCH && rep.detail.pcr == 7 && !strncmp(rep.detail.expected, "11", 2) &&
              !strncmp(rep.detail.got, "12", 2),
          "a pinned PCR that changed: PCR_MISMATCH with index, expected and got");
    kms_reply_clear(&rep);
    pcr[7][0] = 0x11;
    rq.pcr_mask = 1u << 0;
    tap_capture_begin();
    r = kms_attest(s, &rq, &rep);
    tap_capture_end();
    CHECK(r < 0 && rep.code == KMS_C_PCR_MISSING && rep.detail.pcr == 7, "a pinned PCR not quoted: PCR_MISSING");
    kms_reply_clear(&rep);
    rq.pcr_mask = (1u << 0) | (1u << 7);
    rq.ek_pem = "EK-B\n";
    tap_capture_begin();
    r = kms_attest(s, &rq, &rep);
    tap_capture_end();
    CHECK(r < 0 && rep.code == KMS_C_EK_MISMATCH, "another EK: EK_MISMATCH");
    kms_reply_clear(&rep);
    rq.ek_pem = "EK-A\n";
    tap_capture_begin();
    kms_set_quarantine(s, H_NEW, true);
    r = kms_attest(s, &rq, &rep);
    tap_capture_end();
    CHECK(r < 0 && rep.code == KMS_C_QUARANTINED, "quarantined: refused before any check");
    kms_reply_clear(&rep);
    rq.tofu = false;
    rq.req.label = "COS_OEM";
    tap_capture_begin();
    r = kms_attest(s, &rq, &rep);
    tap_capture_end();
    CHECK(r < 0 && rep.code == KMS_C_QUARANTINED, "quarantined: refused also for a partition it does not have yet");
    kms_reply_clear(&rep);
    rq.req.label = "";
    tap_capture_begin();
    r = kms_attest(s, &rq, &rep);
    tap_capture_end();
    CHECK(r == -EINVAL && rep.code == KMS_C_BAD_REQUEST, "a request naming no partition is refused");
    kms_reply_clear(&rep);
    secret_free(pass);
    kms_store_free(s);
    free(dir);
}

int main(void)
{
    const char *base = getenv("KKMS_TEST_TMP");
    struct kms_audit *audit = NULL;
    struct kms_store *s;
    char *db, audit_path[1100];

    snprintf(tmp_root, sizeof(tmp_root), "%s/kms-unit.XXXXXX", base ? base : "/tmp");
    if (base)
        mkdir(base, 0755);
    if (!mkdtemp(tmp_root)) {
        printf("Bail out! mkdtemp %s\n", tmp_root);
        return 1;
    }
    umask(022);

    test_clean_kube_name_as_upstream();
    test_manifests_as_in_the_docs();
    test_manifest_bounds_and_types();
    test_safe_kube_name();
    test_attestation_manifest();
    test_labels_and_annotations_kept();
    test_attest_decisions();

    db = copy_db("db");
    snprintf(audit_path, sizeof(audit_path), "%s/audit.log", tmp_root);
    kms_audit_open(audit_path, &audit);
    s = open_store(db, audit);
    CHECK(s != NULL, "the store opens a directory holding a broken manifest");
    if (s) {
        test_get_pass_decisions(s);
        test_post_pass_stores_atomically(s, db);
        test_post_pass_only_own_key(s, db);
        kms_store_free(s);
    }
    kms_audit_free(audit);
    test_audit_lines(audit_path);
    free(db);

    test_edits_are_seen_without_restart();
    test_conflicts_are_refused();
    test_directory_and_file_permissions();
    test_register_and_list();
    test_quarantine_edits_in_place();
    test_quarantine_command_on_operator_files();
    test_concurrent_readers_while_writing();
    test_passphrase_file();

    if (!tap_failed) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
        (void)!system(cmd);
    }
    return tap_done();
}
