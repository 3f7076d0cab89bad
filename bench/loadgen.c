/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* kms-loadgen: simulated nodes that load a KMS (README.md "kms-loadgen"). Verbs: register (the
 * manifests of N nodes), run (C exchanges in flight, a JSON summary as the last line), node-info
 * (a node's EK and AK Name, for independent tools), selftest-activate (a tpm2-tools credential
 * file activated by a simulated node), selftest-quote (a quote in tpm2-tools' formats) and floor
 * (the KMS's unavoidable RSA work per exchange, timed). */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

static const char usage[] =
    "Usage: kms-loadgen register --db DIR --nodes N --seed S [--label L] [--no-secret]\n"
    "                            [--attestation none|learn|pin] [--real-keys K]\n"
    "       kms-loadgen run --url URL --nodes N --seed S [--concurrency C] [--exchanges M]\n"
    "                       [--protocol g1|g3] [--mode static|postpass|readback] [--acked-file F]\n"
    "                       [--tls-ca F] [--tls-resume] [--timeout S] [--threads T]\n"
    "       kms-loadgen node-info --seed S --node I [--ek-pem F] [--ek-public F]\n"
    "       kms-loadgen selftest-activate --seed S --node I --credential-blob F --out F\n"
    "       kms-loadgen selftest-quote --seed S --node I --qualification HEX --quote-prefix P\n"
    "       kms-loadgen floor --seed S [--exchanges ITERATIONS]\n"
    "\n"
    "Simulated Kairos nodes for load tests of a KMS (kairos-kms challenger or upstream\n"
    "kcrypt-challenger). Each node has its own RSA-2048 EK and an AK made and certified as a TPM\n"
    "makes them for go-attestation, activates the KMS's credential with the TPM's math in\n"
    "software, and quotes PCRs 0, 7, 11 (values from the seed) with its AK. Keys depend only on\n"
    "--seed and the node's number: runs are reproducible.\n"
    "\n"
    "  register     write the SealedVolume and static Secret of nodes 0..N-1 into DIR, one file\n"
    "               per node (loadgen-node-NNNNN.yaml), as `challenger register` would.\n"
    "               --no-secret: no Secret (nodes for --mode postpass); --attestation pin: the\n"
    "               EK and PCR values pinned (G3), learn: pinned empty (learned at the first G3\n"
    "               contact), none (default); --real-keys K: nodes from K on get a made-up EK\n"
    "               public (no key generated; they can be registered, never run)\n"
    "  run          make --exchanges exchanges (default N; exchange k is node k mod N) with\n"
    "               --concurrency in flight (default 1), check every passphrase, and print\n"
    "               {\"ok\":..,\"failed\":..,\"seconds\":..,\"rate\":..,\"p50_ms\":..,\"p99_ms\":..,\"retries\":..}\n"
    "               as the last line. Refused connections and 503 (the KMS's connection limit)\n"
    "               are retried with backoff until --timeout (default 300 s). Exit 1 if any failed.\n"
    "               --mode postpass (G1): /getPass finds no Secret, the node posts its ciphertext\n"
    "               on /postPass and reads it back (adds \"posted\" to the summary); --acked-file F\n"
    "               gets each acknowledged node's volume name, synced. --mode readback: /getPass\n"
    "               returns that ciphertext (for the nodes --acked-file F lists, if given).\n"
    "               --shared-store (postpass): the same nodes post through another KMS instance\n"
    "               at the same time; a ciphertext found before the post or a post refused as\n"
    "               already stored is checked by the readback (counted in \"found_posted\")\n"
    "  node-info    print {\"node\":I,\"tpm_hash\":..,\"ak_name\":..}; --ek-pem/--ek-public write the EK\n"
    "               as PEM and as TPM2B_PUBLIC (for tpm2_makecredential -u)\n"
    "  selftest-quote  a quote over HEX in tpm2-tools' formats: P.msg, P.sig, P.pcrs, P.ak.pem\n"
    "               (tpm2_checkquote -u P.ak.pem -m P.msg -s P.sig -f P.pcrs -l sha256:0,7,11 -q HEX)\n"
    "  floor        the KMS's RSA-2048 public-key operations per G1 and G3 exchange, timed (JSON)\n"
    "\n"
    "  --seed S             any text; the same seed gives the same nodes\n"
    "  --label L            the partition label (default COS_PERSISTENT)\n"
    "  --key-cache F        where generated keys are kept (default\n"
    "                       /var/cache/kairos-kms/loadgen/<seed digest>.keys; \"\" = none)\n"
    "  --threads T          key generation and event-loop threads (default: CPUs; TLS uses one loop)\n"
    "  --exchange-timeout S one attempt's limit (default 30)\n"
    "  --protocol g1|g3     g1 (default): /getPass, /postPass; g3: /tpm-attestation (--mode static)\n"
    "  --tls-ca F           PEM: CA or the KMS's certificate, for an https:// URL\n"
    "  --tls-resume         each node is its own TLS client and keeps the last session ticket the\n"
    "                       KMS gave it: its later connections (the next steps of an exchange,\n"
    "                       retries, its next exchanges) resume; without it every connection makes\n"
    "                       a full handshake. With TLS the summary adds \"tls_full\" and \"tls_resumed\"\n"
    "                       (completed handshakes of each kind)\n"
    "  --verbose            log every retried attempt\n"
    "Exit codes: 0 ok, 1 runtime failure (any exchange failed), 2 bad usage.\n";

struct opts {
    struct lg_setup setup;
    struct lg_run_opts run;
    const char *db, *ek_pem, *ek_public, *blob, *out, *quote_prefix, *qualification;
    uint32_t node;
    bool have_node;
    bool no_secret;                            /* register: no static Secret (postpass nodes) */
    enum { ATT_NONE, ATT_LEARN, ATT_PIN } att; /* register: spec.attestation */
};

static bool label_ok(const char *s)
{
    if (!*s || strlen(s) > 63)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

static int parse_size(const char *flag, const char *v, uint32_t max, size_t *out)
{
    uint32_t n;
    if (parse_u32(v, max, &n) < 0 || n == 0)
        return log_error_errno(-EINVAL, "%s %s: expected a number from 1 to %u", flag, v, max);
    *out = n;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    enum {
        O_DB = 256,
        O_NODES,
        O_SEED,
        O_LABEL,
        O_CACHE,
        O_THREADS,
        O_URL,
        O_CONC,
        O_EXCH,
        O_PROTO,
        O_CA,
        O_TIMEOUT,
        O_XTIMEOUT,
        O_NODE,
        O_EKPEM,
        O_EKPUB,
        O_BLOB,
        O_OUT,
        O_VERBOSE,
        O_MODE,
        O_ACKED,
        O_SHARED,
        O_NOSECRET,
        O_ATT,
        O_REAL,
        O_QPREFIX,
        O_QUAL,
        O_RESUME
    };
    static const struct option opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"nodes", required_argument, NULL, O_NODES},
        {"seed", required_argument, NULL, O_SEED},
        {"label", required_argument, NULL, O_LABEL},
        {"key-cache", required_argument, NULL, O_CACHE},
        {"threads", required_argument, NULL, O_THREADS},
        {"url", required_argument, NULL, O_URL},
        {"concurrency", required_argument, NULL, O_CONC},
        {"exchanges", required_argument, NULL, O_EXCH},
        {"protocol", required_argument, NULL, O_PROTO},
        {"tls-ca", required_argument, NULL, O_CA},
        {"tls-resume", no_argument, NULL, O_RESUME},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"exchange-timeout", required_argument, NULL, O_XTIMEOUT},
        {"node", required_argument, NULL, O_NODE},
        {"ek-pem", required_argument, NULL, O_EKPEM},
        {"ek-public", required_argument, NULL, O_EKPUB},
        {"credential-blob", required_argument, NULL, O_BLOB},
        {"out", required_argument, NULL, O_OUT},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"mode", required_argument, NULL, O_MODE},
        {"acked-file", required_argument, NULL, O_ACKED},
        {"shared-store", no_argument, NULL, O_SHARED},
        {"no-secret", no_argument, NULL, O_NOSECRET},
        {"attestation", required_argument, NULL, O_ATT},
        {"real-keys", required_argument, NULL, O_REAL},
        {"quote-prefix", required_argument, NULL, O_QPREFIX},
        {"qualification", required_argument, NULL, O_QUAL},
        {"debug", no_argument, NULL, O_VERBOSE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint32_t n;
    size_t sz;
    int c;

    o->run.protocol = LG_G1;
    o->run.concurrency = 1;
    o->run.timeout_ms = 300000;
    o->run.exchange_timeout_ms = 30000;
    o->run.label = LG_DEFAULT_LABEL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_DB: o->db = optarg; break;
        case O_NODES:
            if (parse_size("--nodes", optarg, LG_MAX_NODES, &o->setup.nodes) < 0)
                return -EINVAL;
            break;
        case O_SEED:
            if (!*optarg)
                return log_error_errno(-EINVAL, "--seed: must not be empty");
            o->setup.seed = optarg;
            break;
        case O_LABEL:
            if (!label_ok(optarg))
                return log_error_errno(-EINVAL, "--label %s: letters, digits, '_', '-' and '.' only", optarg);
            o->run.label = optarg;
            break;
        case O_CACHE: o->setup.cache = optarg; break;
        case O_THREADS:
            if (parse_size("--threads", optarg, 64, &sz) < 0)
                return -EINVAL;
            o->setup.threads = o->run.threads = (unsigned)sz;
            break;
        case O_URL: o->run.url = optarg; break;
        case O_CONC:
            if (parse_size("--concurrency", optarg, 65536, &o->run.concurrency) < 0)
                return -EINVAL;
            break;
        case O_EXCH:
            if (parse_size("--exchanges", optarg, 100000000, &o->run.exchanges) < 0)
                return -EINVAL;
            break;
        case O_PROTO:
            if (!strcmp(optarg, "g1"))
                o->run.protocol = LG_G1;
            else if (!strcmp(optarg, "g3"))
                o->run.protocol = LG_G3;
            else
                return log_error_errno(-EINVAL, "--protocol %s: expected g1 or g3", optarg);
            break;
        case O_CA: o->run.tls_ca = optarg; break;
        case O_RESUME: o->run.tls_resume = true; break;
        case O_TIMEOUT:
        case O_XTIMEOUT: {
            int64_t ms;
            if (parse_seconds_ms(optarg, &ms) < 0 || ms <= 0)
                return log_error_errno(-EINVAL, "%s %s: expected a number of seconds",
                                       c == O_TIMEOUT ? "--timeout" : "--exchange-timeout", optarg);
            *(c == O_TIMEOUT ? &o->run.timeout_ms : &o->run.exchange_timeout_ms) = ms;
            break;
        }
        case O_NODE:
            if (parse_u32(optarg, LG_MAX_NODES - 1, &n) < 0)
                return log_error_errno(-EINVAL, "--node %s: expected a number from 0 to %d", optarg, LG_MAX_NODES - 1);
            o->node = n;
            o->have_node = true;
            break;
        case O_EKPEM: o->ek_pem = optarg; break;
        case O_EKPUB: o->ek_public = optarg; break;
        case O_BLOB: o->blob = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_MODE:
            if (!strcmp(optarg, "static"))
                o->run.mode = LG_STATIC;
            else if (!strcmp(optarg, "postpass"))
                o->run.mode = LG_POSTPASS;
            else if (!strcmp(optarg, "readback"))
                o->run.mode = LG_READBACK;
            else
                return log_error_errno(-EINVAL, "--mode %s: expected static, postpass or readback", optarg);
            break;
        case O_ACKED: o->run.acked_file = optarg; break;
        case O_SHARED: o->run.shared_store = true; break;
        case O_NOSECRET: o->no_secret = true; break;
        case O_ATT:
            if (!strcmp(optarg, "none"))
                o->att = ATT_NONE;
            else if (!strcmp(optarg, "learn"))
                o->att = ATT_LEARN;
            else if (!strcmp(optarg, "pin"))
                o->att = ATT_PIN;
            else
                return log_error_errno(-EINVAL, "--attestation %s: expected none, learn or pin", optarg);
            break;
        case O_REAL:
            if (parse_size("--real-keys", optarg, LG_MAX_NODES, &o->setup.real_keys) < 0)
                return -EINVAL;
            break;
        case O_QPREFIX: o->quote_prefix = optarg; break;
        case O_QUAL: o->qualification = optarg; break;
        case O_VERBOSE:
            o->run.verbose = true;
            log_set_level(LOG_DEBUG);
            break;
        case 'h': fputs(usage, stdout); return 1;
        default: fputs(usage, stderr); return -EINVAL;
        }
    }
    if (optind < argc)
        return log_error_errno(-EINVAL, "unexpected argument: %s", argv[optind]);
    if (!o->setup.seed)
        return log_error_errno(-EINVAL, "--seed is required");
    return 0;
}

/* Writes data as name in dirfd (0600) through a hidden temporary file and a rename. */
static int write_file(int dirfd, const char *dir, const char *name, const void *data, size_t len)
{
    char tmp[4200];
    const char *slash = strrchr(name, '/');
    int fd;

    /* The temporary file sits next to the target, hidden: ".NAME.tmp" in the same directory. */
    snprintf(tmp, sizeof(tmp), "%.*s.%s.tmp", slash ? (int)(slash - name + 1) : 0, name, slash ? slash + 1 : name);
    (void)unlinkat(dirfd, tmp, 0);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return log_error_errno(-errno, "%s/%s: %m", dir, tmp);
    if (fd_write_all(fd, data, len) < 0 || close(fd) < 0 || renameat(dirfd, tmp, dirfd, name) < 0) {
        int r = -errno;
        (void)unlinkat(dirfd, tmp, 0);
        return log_error_errno(r, "%s/%s: %m", dir, name);
    }
    return 0;
}

/* upstream G1 cleanKubeName (kcrypt-challenger pkg/challenger): '_' -> '-', lower case. */
static void clean_kube_name(char *s)
{
    for (; *s; s++)
        *s = *s == '_' ? '-' : (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
}

/* spec.attestation of a node's SealedVolume: the EK PEM and the PCR values pinned (pin), or
 * present but empty, to be learned at the first G3 contact (learn). */
static void attestation_yaml(const struct opts *o, const struct lg_node *nd, const char *now, char *out, size_t cap)
{
    size_t off = 0;

    out[0] = 0;
    if (o->att == ATT_NONE)
        return;
    off += (size_t)snprintf(out + off, cap - off, "  attestation:\n    ekPublicKey: \"");
    for (const char *c = nd->ek_pem; o->att == ATT_PIN && *c && off + 3 < cap; c++) {
        if (*c == '\n')
            out[off++] = '\\', out[off++] = 'n';
        else
            out[off++] = *c;
    }
    off += (size_t)snprintf(out + off, cap - off, "\"\n    pcrValues:\n      pcrs:\n");
    for (unsigned i = 0; i < LG_PCRS; i++)
        if (LG_PCR_MASK & (1u << i)) {
            char hex[2 * LG_PCR_LEN + 1] = "";
            if (o->att == ATT_PIN)
                hex_encode(nd->pcr[i], LG_PCR_LEN, hex);
            off += (size_t)snprintf(out + off, cap - off, "        \"%u\": \"%s\"\n", i, hex);
        }
    if (o->att == ATT_PIN)
        snprintf(out + off, cap - off, "    enrolledAt: \"%s\"\n    lastVerifiedAt: \"%s\"\n", now, now);
}

static int cmd_register(struct opts *o)
{
    struct lg_nodes nodes;
    char now[32];
    struct tm tm;
    time_t t = time(NULL);
    int dirfd, r;

    if (!o->db || !o->setup.nodes)
        return log_error_errno(-EINVAL, "register needs --db DIR and --nodes N"), EXIT_USAGE;
    if (o->setup.real_keys && o->att == ATT_PIN)
        log_info("--real-keys %zu: nodes from %zu on are pinned to a made-up EK (they cannot run)", o->setup.real_keys,
                 o->setup.real_keys);
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (mkdir(o->db, 0700) < 0 && errno != EEXIST)
        return log_error_errno(-errno, "--db %s: %m", o->db), EXIT_RUNTIME;
    dirfd = open(o->db, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0)
        return log_error_errno(-errno, "--db %s: %m", o->db), EXIT_RUNTIME;
    o->setup.ek_only = true;
    r = lg_nodes_make(&o->setup, &nodes);
    for (size_t i = 0; r == 0 && i < nodes.n; i++) {
        const struct lg_node *nd = &nodes.v[i];
        char vol[64], secret[160], file[96], text[4096], att[1024], head[1024];
        int len = 0;

        lg_volume_name(nd->index, vol, sizeof(vol));
        snprintf(secret, sizeof(secret), "%s-%s", vol, o->run.label);
        clean_kube_name(secret);
        snprintf(file, sizeof(file), "%s.yaml", vol);
        attestation_yaml(o, nd, now, att, sizeof(att));
        /* A SealedVolume the KMS will write to (it learns at the first G3 contact) must be alone
         * in its file: the Secret goes into a file of its own then. */
        bool apart = o->att == ATT_LEARN && !o->no_secret;
        if (!o->no_secret)
            snprintf(head, sizeof(head),
                     "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: default\ntype: Opaque\n"
                     "stringData:\n  passphrase: %s\n---\n",
                     secret, nd->passphrase);
        else
            head[0] = 0;
        if (apart) {
            char sfile[96];
            snprintf(sfile, sizeof(sfile), "loadgen-secret-%05u.yaml", nd->index);
            len = snprintf(text, sizeof(text), "# kairos-kms: written by `kms-loadgen register`\n%.*s",
                           (int)(strlen(head) - 4), head); /* without the "---\n" */
            r = write_file(dirfd, o->db, sfile, text, (size_t)len);
            head[0] = 0;
        }
        len = snprintf(text, sizeof(text),
                       "# kairos-kms: written by `kms-loadgen register` (simulated node %u of a load test)\n"
                       "%s"
                       "apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata:\n  name: %s\n"
                       "  namespace: default\nspec:\n  TPMHash: \"%s\"\n  partitions:\n    - label: %s\n"
                       "%s%s%s"
                       "  quarantined: false\n%s",
                       nd->index, head, vol, nd->tpm_hash, o->run.label,
                       o->no_secret ? "" : "      secret:\n        name: ", o->no_secret ? "" : secret,
                       o->no_secret ? "" : "\n        path: passphrase\n", att);
        if (r == 0)
            r = write_file(dirfd, o->db, file, text, (size_t)len);
        secure_wipe(text, sizeof(text));
        secure_wipe(head, sizeof(head));
    }
    /* Durable once, not per file: the files are test data. */
    if (r == 0 && syncfs(dirfd) < 0)
        r = log_error_errno(-errno, "--db %s: sync failed: %m", o->db);
    if (r == 0)
        log_info("wrote the SealedVolumes%s of %zu nodes to %s", o->no_secret ? "" : " and Secrets", nodes.n, o->db);
    close(dirfd);
    lg_nodes_free(&nodes);
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}

/* readback --acked-file F: the nodes F lists (volume names, a line each), below --nodes. */
static int read_acked(const char *path, size_t nodes, uint32_t **out, size_t *n)
{
    _cleanup_free_ char *text = NULL;
    char *save = NULL;
    size_t cap = 0;
    int r;

    *out = NULL;
    *n = 0;
    r = file_read_all(path, (size_t)LG_MAX_NODES * 32, &text, NULL);
    if (r < 0)
        return log_error_errno(r, "--acked-file %s: %m", path);
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        uint32_t idx;
        if (strncmp(line, "loadgen-node-", 13) || parse_u32(line + 13, (uint32_t)nodes - 1, &idx) < 0) {
            free(*out);
            *out = NULL;
            return log_error_errno(-EINVAL, "--acked-file %s: \"%.40s\" is not the volume name of a node below %zu",
                                   path, line, nodes);
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            *out = realloc(*out, cap * sizeof(**out));
            if (!*out)
                abort();
        }
        (*out)[(*n)++] = idx;
    }
    return 0;
}

static int cmd_run(struct opts *o)
{
    struct lg_nodes nodes;
    _cleanup_free_ uint32_t *only = NULL;
    int r;

    if (!o->run.url || !o->setup.nodes)
        return log_error_errno(-EINVAL, "run needs --url URL and --nodes N"), EXIT_USAGE;
    if (o->run.protocol == LG_G3 && o->run.mode != LG_STATIC)
        return log_error_errno(-EINVAL, "--protocol g3: only --mode static"), EXIT_USAGE;
    if (o->run.mode == LG_STATIC && o->run.acked_file)
        return log_error_errno(-EINVAL, "--acked-file: with --mode postpass or readback"), EXIT_USAGE;
    if (o->run.mode == LG_READBACK && o->run.acked_file) {
        if (read_acked(o->run.acked_file, o->setup.nodes, &only, &o->run.n_only) < 0)
            return EXIT_RUNTIME;
        if (!o->run.n_only) {
            log_info("--acked-file %s: no node listed; nothing to read back", o->run.acked_file);
            printf("{\"ok\":0,\"failed\":0,\"seconds\":0,\"rate\":0,\"p50_ms\":0,\"p99_ms\":0,\"retries\":0}\n");
            return EXIT_OK;
        }
        o->run.only = only;
        o->run.exchanges = o->run.n_only;
        o->run.acked_file = NULL;
    }
    if (!o->run.exchanges)
        o->run.exchanges = o->setup.nodes;
    if (o->run.mode == LG_POSTPASS && o->run.exchanges > o->setup.nodes)
        return log_error_errno(-EINVAL, "--mode postpass: a node posts once: --exchanges at most --nodes"), EXIT_USAGE;
    r = lg_nodes_make(&o->setup, &nodes);
    if (r < 0)
        return EXIT_RUNTIME;
    for (size_t i = 0; o->run.mode != LG_STATIC && i < nodes.n; i++)
        if (lg_make_wire(o->setup.seed, &nodes.v[i]) < 0) {
            log_error("node %zu: cannot encrypt its generated passphrase", i);
            lg_nodes_free(&nodes);
            return EXIT_RUNTIME;
        }
    r = lg_run(&nodes, &o->run);
    lg_nodes_free(&nodes);
    return r == 0 ? EXIT_OK : EXIT_RUNTIME;
}

/* The node asked for, alone (its predecessors are made too: they share the cache). */
static int one_node(struct opts *o, struct lg_nodes *nodes, struct lg_node **nd)
{
    if (!o->have_node)
        return log_error_errno(-EINVAL, "--node I is required");
    o->setup.nodes = (size_t)o->node + 1;
    if (lg_nodes_make(&o->setup, nodes) < 0)
        return -EIO;
    *nd = &nodes->v[o->node];
    return 0;
}

static int cmd_node_info(struct opts *o)
{
    struct lg_nodes nodes;
    struct lg_node *nd;
    char name[2 * ATTEST_NAME_MAX + 1];
    int r;

    r = one_node(o, &nodes, &nd);
    if (r < 0)
        return r == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    if (o->ek_pem)
        r = write_file(AT_FDCWD, "--ek-pem", o->ek_pem, nd->ek_pem, strlen(nd->ek_pem));
    if (r == 0 && o->ek_public)
        r = write_file(AT_FDCWD, "--ek-public", o->ek_public, nd->ek_tpm2b_public.p, nd->ek_tpm2b_public.len);
    if (r == 0) {
        hex_encode(nd->ak_name, nd->ak_name_len, name);
        printf("{\"node\":%u,\"tpm_hash\":\"%s\",\"ak_name\":\"%s\"}\n", nd->index, nd->tpm_hash, name);
    }
    lg_nodes_free(&nodes);
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}

/* A credential file of tpm2_makecredential (tpm2-tools lib/files.c: magic 0xBADCC0DE, version 1,
 * then TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, each with its size) activated by node I. */
static int cmd_selftest_activate(struct opts *o)
{
    static const uint8_t header[8] = {0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1};
    _cleanup_free_ char *blob = NULL;
    struct lg_nodes nodes;
    struct lg_node *nd;
    uint8_t secret[128];
    size_t len = 0, id_len, es_len, out_len = 0;
    const uint8_t *p;
    int r;

    if (!o->blob || !o->out)
        return log_error_errno(-EINVAL, "selftest-activate needs --credential-blob F and --out F"), EXIT_USAGE;
    r = file_read_all(o->blob, 4096, &blob, &len);
    if (r < 0)
        return log_error_errno(r, "--credential-blob %s: %m", o->blob), EXIT_RUNTIME;
    p = (const uint8_t *)blob;
    if (len < 12 || memcmp(p, header, 8) != 0)
        return log_error_errno(-EBADMSG, "--credential-blob %s: not a tpm2-tools credential file", o->blob),
               EXIT_RUNTIME;
    id_len = 2 + (size_t)(p[8] << 8 | p[9]);
    if (8 + id_len + 2 > len || 8 + id_len + 2 + (size_t)(p[8 + id_len] << 8 | p[9 + id_len]) != len)
        return log_error_errno(-EBADMSG, "--credential-blob %s: sizes do not add up", o->blob), EXIT_RUNTIME;
    es_len = len - 8 - id_len;
    r = one_node(o, &nodes, &nd);
    if (r < 0)
        return r == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    r = lg_activate(nd, p + 8, id_len, p + 8 + id_len, es_len, secret, sizeof(secret), &out_len);
    if (r < 0)
        log_error("node %u: the credential in %s does not activate: %s", nd->index, o->blob,
                  r == -EPERM ? "integrity check failed (made for another EK or AK Name)" : strerror(-r));
    else
        r = write_file(AT_FDCWD, "--out", o->out, secret, out_len);
    secure_wipe(secret, sizeof(secret));
    lg_nodes_free(&nodes);
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}

/* A PCR quote of node I over --qualification (hex) in tpm2-tools' formats, for tpm2_checkquote:
 * PREFIX.msg (TPMS_ATTEST), PREFIX.sig (TPMT_SIGNATURE), PREFIX.pcrs (the SHA-256 values of the
 * quoted PCRs in ascending order, as tpm2_pcrread -o writes them), PREFIX.ak.pem (the AK). The
 * quote is checked with the KMS's own verifier first. */
static int cmd_selftest_quote(struct opts *o)
{
    _cleanup_free_ uint8_t *nonce = NULL;
    struct lg_nodes nodes;
    struct lg_node *nd;
    struct lg_bytes quote = {0}, sig = {0};
    struct attest_pcr_value pv[LG_PCRS];
    uint8_t values[LG_PCRS * LG_PCR_LEN];
    size_t nonce_len = 0, nv = 0, n = 0, pl;
    char why[ATTEST_WHY_MAX] = "", *path;
    int r;

    if (!o->quote_prefix || !o->qualification)
        return log_error_errno(-EINVAL, "selftest-quote needs --quote-prefix P and --qualification HEX"), EXIT_USAGE;
    nonce_len = strlen(o->qualification) / 2;
    nonce = xmalloc(nonce_len + 1);
    if (strlen(o->qualification) % 2 || nonce_len > 64 ||
        hex_decode(o->qualification, 2 * nonce_len, nonce, nonce_len + 1) < 0)
        return log_error_errno(-EINVAL, "--qualification %s: expected at most 64 bytes in hex", o->qualification),
               EXIT_USAGE;
    r = one_node(o, &nodes, &nd);
    if (r < 0)
        return r == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    r = lg_quote(nd, nonce, nonce_len, &quote, &sig);
    for (unsigned i = 0; r == 0 && i < LG_PCRS; i++)
        if (LG_PCR_MASK & (1u << i)) {
            pv[n++] = (struct attest_pcr_value){i, {nd->pcr[i], LG_PCR_LEN}};
            memcpy(values + nv, nd->pcr[i], LG_PCR_LEN);
            nv += LG_PCR_LEN;
        }
    if (r == 0 &&
        attest_verify_quote((struct bytes){nd->ak_public.p, nd->ak_public.len}, (struct bytes){quote.p, quote.len},
                            (struct bytes){sig.p, sig.len}, pv, n, &(struct bytes){nonce, nonce_len}, why) < 0)
        r = log_error_errno(-EPROTO, "node %u: our own quote fails the KMS's check: %s", nd->index, why);
    pl = strlen(o->quote_prefix) + 16;
    path = xmalloc(pl);
    const struct {
        const char *ext;
        const void *p;
        size_t len;
    } files[] = {{"msg", quote.p, quote.len},
                 {"sig", sig.p, sig.len},
                 {"pcrs", values, nv},
                 {"ak.pem", nd->ak_pem, strlen(nd->ak_pem)}};
    for (size_t i = 0; r == 0 && i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, pl, "%s.%s", o->quote_prefix, files[i].ext);
        r = write_file(AT_FDCWD, "--quote-prefix", path, files[i].p, files[i].len);
    }
    free(path);
    free(quote.p);
    free(sig.p);
    lg_nodes_free(&nodes);
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}

static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The floor under the KMS's CPU per exchange: the RSA-2048 public-key operations it cannot
 * avoid, timed with the mbedTLS it is built with (one thread, process CPU time): G1 verifies
 * the AK's creation signature and encrypts the credential seed to the EK (2); G3 also verifies
 * the quote (3). For comparison, the whole lib/attest work of an exchange (every decode and
 * check, the credential's KDFs and HMAC). Prints one JSON line, microseconds. */
static int cmd_floor(struct opts *o)
{
    struct lg_nodes nodes;
    struct lg_node *nd;
    struct lg_bytes quote = {0}, sig = {0};
    struct attest_credential cred;
    struct attest_pcr_value pv[LG_PCRS];
    uint8_t digest[SHA256_LEN], seed[SHA256_LEN] = {1}, out[LG_KEY_BYTES], name[ATTEST_NAME_MAX];
    const uint8_t *asig;
    size_t iters = o->run.exchanges ? o->run.exchanges : 2000, n = 0, name_len = 0;
    double t0, verify_us, oaep_us, g1_us, quote_us;
    struct rsa_pub ak;
    int r;

    o->node = 0;
    o->have_node = true;
    r = one_node(o, &nodes, &nd);
    if (r < 0)
        return r == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    r = kcrypto_rsa_public(nd->ak, &ak);
    if (r == 0)
        r = lg_quote(nd, seed, sizeof(seed), &quote, &sig);
    if (r < 0) {
        lg_nodes_free(&nodes);
        return log_error_errno(r, "floor: cannot set up node 0"), EXIT_RUNTIME;
    }
    for (unsigned i = 0; i < LG_PCRS; i++)
        if (LG_PCR_MASK & (1u << i))
            pv[n++] = (struct attest_pcr_value){i, {nd->pcr[i], LG_PCR_LEN}};
    crypto_sha256(nd->ak_create_attestation.p, nd->ak_create_attestation.len, digest);
    asig = nd->ak_create_signature.p + 6; /* TPMT_SIGNATURE: alg, hash, size */

    t0 = cpu_us();
    for (size_t i = 0; i < iters && r == 0; i++)
        r = crypto_rsa_pkcs1_verify(&ak, CRYPTO_SHA256, digest, asig, LG_KEY_BYTES);
    verify_us = (cpu_us() - t0) / (double)iters;
    t0 = cpu_us();
    for (size_t i = 0; i < iters && r == 0; i++)
        r = crypto_rsa_oaep_encrypt(&nd->ek_pub, CRYPTO_SHA256, "IDENTITY", 9, seed, 16, NULL, out);
    oaep_us = (cpu_us() - t0) / (double)iters;
    struct ak_params pa = {{nd->ak_public.p, nd->ak_public.len},
                           {nd->ak_create_data.p, nd->ak_create_data.len},
                           {nd->ak_create_attestation.p, nd->ak_create_attestation.len},
                           {nd->ak_create_signature.p, nd->ak_create_signature.len},
                           false};
    t0 = cpu_us();
    for (size_t i = 0; i < iters && r == 0; i++) {
        r = attest_check_ak_params(&pa, 0, name, &name_len, NULL);
        if (r == 0)
            r = attest_make_credential(&nd->ek_pub, name, name_len, seed, sizeof(seed), &cred);
    }
    g1_us = (cpu_us() - t0) / (double)iters;
    t0 = cpu_us();
    for (size_t i = 0; i < iters && r == 0; i++)
        r = attest_verify_quote((struct bytes){nd->ak_public.p, nd->ak_public.len}, (struct bytes){quote.p, quote.len},
                                (struct bytes){sig.p, sig.len}, pv, n, &(struct bytes){seed, sizeof(seed)}, NULL);
    quote_us = (cpu_us() - t0) / (double)iters;
    if (r == 0)
        printf("{\"iterations\":%zu,\"rsa2048_pkcs1_verify_us\":%.1f,\"rsa2048_oaep_encrypt_us\":%.1f,"
               "\"g1_floor_us\":%.1f,\"g3_floor_us\":%.1f,\"g1_attest_us\":%.1f,\"g3_attest_us\":%.1f}\n",
               iters, verify_us, oaep_us, verify_us + oaep_us, 2 * verify_us + oaep_us, g1_us, g1_us + quote_us);
    else
        log_error_errno(r, "floor: an operation failed");
    free(quote.p);
    free(sig.p);
    lg_nodes_free(&nodes);
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    const char *verb;
    int r;

    log_set_program("kms-loadgen");
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    verb = argv[1];
    if (strcmp(verb, "register") && strcmp(verb, "run") && strcmp(verb, "node-info") &&
        strcmp(verb, "selftest-activate") && strcmp(verb, "selftest-quote") && strcmp(verb, "floor")) {
        log_error("%s: unknown verb (register, run, node-info, floor)", verb);
        return EXIT_USAGE;
    }
    r = parse_opts(argc - 1, argv + 1, &o);
    if (r > 0)
        return EXIT_OK;
    if (r < 0)
        return EXIT_USAGE;
    if (!strcmp(verb, "register"))
        return cmd_register(&o);
    if (!strcmp(verb, "run"))
        return cmd_run(&o);
    if (!strcmp(verb, "node-info"))
        return cmd_node_info(&o);
    if (!strcmp(verb, "selftest-quote"))
        return cmd_selftest_quote(&o);
    if (!strcmp(verb, "floor"))
        return cmd_floor(&o);
    return cmd_selftest_activate(&o);
}
