/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* challenger: the KMS. Its records are the manifests operators `kubectl apply` to upstream
 * Kairos (SealedVolume keyserver.kairos.io/v1alpha1, Secret v1), kept in a directory or in etcd. */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "applets.h"
#include "base.h"
#include "g3_session.h"
#include "kms.h"
#include "mdns.h"
#include "proto.h"

static const char usage[] =
    "Usage: challenger --db DIR [--listen ADDR:PORT] [--tls-cert F --tls-key F] [--audit-log F]\n"
    "                  [--ek-ca FILE|DIR] [--enroll registered|tofu] [--require-fresh-quotes]\n"
    "       challenger register --db DIR --tpm-hash H (--label L | --name N | --uuid U)\n"
    "                  [--volume NAME] [--secret NAME --key KEY | --passphrase-file F]\n"
    "                  [--pcr INDEX=HEX]... [--ek-pem FILE]\n"
    "       challenger list --db DIR\n"
    "       challenger pending --db DIR\n"
    "       challenger approve --db DIR [--volume NAME] TPM_HASH\n"
    "       challenger quarantine|release --db DIR TPM_HASH\n"
    "       challenger import --etcd URLS --from-db DIR\n"
    "       challenger export --etcd URLS --to-db DIR\n"
    "Every command takes --etcd URLS [etcd options] instead of --db DIR (see HA below).\n"
    "\n"
    "The Kairos KMS, wire-compatible with upstream kcrypt-challenger (G1: /getPass, /postPass over\n"
    "WebSocket; nodes prove their TPM by credential activation) and with current upstream nodes\n"
    "(G3: /tpm-attestation; the TPM also proves what booted with a PCR quote). DIR holds the manifests you would\n"
    "`kubectl apply` upstream, any file names (*.yaml, *.yml, *.json), one or many documents per\n"
    "file: SealedVolume (keyserver.kairos.io/v1alpha1) and Secret (v1, data or stringData). Edits\n"
    "are picked up without a restart; a broken manifest is reported with its file and line and the\n"
    "others keep working. Passphrases that nodes generate (auto-generated keys) are written into\n"
    "DIR as Secret manifests holding only TPM ciphertext, 0600, atomically; never overwritten.\n"
    "\n"
    "Serving:\n"
    "  --db DIR               the manifest directory (created 0700 if missing)\n"
    "  --listen ADDR:PORT     where to listen (default :8082, as upstream); :0 = any free port\n"
    "                         (also --challenger-bind-address, upstream's name)\n"
    "  --tls-cert F --tls-key F  serve HTTPS/WSS with this certificate and key (PEM files)\n"
    "  --audit-log F          append one JSON line per decision to F (never a secret); default stderr\n"
    "  --port-file F          write the port to F once listening\n"
    "  --exchange-timeout S   drop a node that stalls mid-exchange after S seconds (default 30);\n"
    "                         with --etcd, also the longest a decision waits for its turn to ask\n"
    "                         etcd (then the node is told the KMS is busy)\n"
    "  --max-conns N          open connections in all (default 1024; lowered to fit the\n"
    "                         descriptor limit, whose soft value is raised to the hard one);\n"
    "                         more are answered 503 and closed\n"
    "  --max-conns-per-peer N open connections from one address (IPv6: one /64) (default 32,\n"
    "                         at most --max-conns); more are answered 503 and closed\n"
    "  --ek-ca FILE|DIR       accept only TPMs whose EK certificate chains to one of these CAs\n"
    "                         (PEM; in a DIR its *.pem and *.crt): TPM vendors' roots and\n"
    "                         intermediates. TPMs without an EK certificate are refused.\n"
    "                         Default: any TPM, as upstream\n"
    "  --enroll registered|tofu  G3: whom to enroll. registered (default): only TPMs with a\n"
    "                         SealedVolume; another TPM is refused and recorded as pending (see\n"
    "                         pending, approve). tofu: any TPM is enrolled at its first contact,\n"
    "                         with a key the KMS generates (upstream's behaviour)\n"
    "  --require-fresh-quotes G3: refuse PCR quotes that do not carry this exchange's nonce. Our\n"
    "                         nodes quote over it; upstream nodes cannot (default: accepted and\n"
    "                         audited as `quote not fresh (no nonce)`)\n"
    "  --announce NAME        answer mDNS for NAME (e.g. kms.local) as _kcrypt._tcp with this\n"
    "                         server's port, from this process (as mdns-responder does); a goodbye\n"
    "                         is sent on SIGTERM. Nodes use challenger_server: http://NAME:PORT\n"
    "                         with kcrypt.challenger.mdns: true\n"
    "  --announce-interface IF  announce on IF only (repeatable; default every multicast interface)\n"
    "  --metrics-listen ADDR:PORT  serve /metrics (Prometheus text format) there instead of on\n"
    "                         the node-facing port (e.g. 127.0.0.1:9108)\n"
    "  --workers N|auto       N processes serve the listener, each with its own event loop and\n"
    "                         store (auto, the default: one per CPU this process may run on; 1: a\n"
    "                         single process). With --etcd each has its own etcd connections,\n"
    "                         watch, cache and /readyz. The store's writes are atomic across them,\n"
    "                         the metrics are shared, SIGTERM and SIGHUP reach every one\n"
    "Endpoints: /getPass, /postPass, /tpm-attestation, /healthz, /readyz (the last refresh of the\n"
    "store, done every second), /metrics (kairos_kms_* counters, histogram and gauges; no TPM hash or\n"
    "secret in any label).\n"
    "SIGTERM drains open exchanges; SIGHUP rescans DIR (--etcd: lists the prefix again and\n"
    "watches anew). A keep-alive connection serves at most 100 requests and lives at most 120 s;\n"
    "pipelined requests are served a few at a time, in turn with other connections.\n"
    "\n"
    "Operator commands (they edit DIR; the server need not be stopped):\n"
    "  register     add a partition of a node: --tpm-hash H (from `kairos-kms tpm-hash` on the node)\n"
    "               and --label L (and/or --name N, --uuid U). Without a secret option the node\n"
    "               generates its key on first boot (auto-generated keys). --secret NAME --key KEY\n"
    "               points at a Secret you write; --passphrase-file F stores a static key (read\n"
    "               from F, never from the command line). --volume NAME names the SealedVolume.\n"
    "               G3 pins (spec.attestation): --pcr 7=HEX (repeatable; the SHA-256 bank value, as\n"
    "               `tpm2_pcrread sha256:7` shows it) and --ek-pem FILE (the EK public key or\n"
    "               certificate, PEM). PCRs not given are not checked; without pins the first\n"
    "               G3 contact learns them\n"
    "  list         one line per SealedVolume: name, TPM hash, state, partitions, secrets present,\n"
    "               attestation (PCRs pinned / learning / none, last verified); then pending TPMs\n"
    "  pending      the TPMs refused by --enroll registered: hash, partition, PCRs, first/last seen\n"
    "  approve      enroll a pending TPM (its hash, or 8+ leading hex digits): a SealedVolume\n"
    "               pinning the EK and PCR values it showed; its key is made at its next contact\n"
    "  quarantine   refuse every key of the node with this TPM hash (release undoes it)\n"
    "\n"
    "  import       copy every object of --from-db DIR into etcd (create-if-absent; objects that\n"
    "               differ are reported, not overwritten)\n"
    "  export       write every object of etcd as manifests into --to-db DIR (new or empty): the\n"
    "               backup format, readable by `kubectl apply` and by --db\n"
    "\n"
    "HA (several challengers over one etcd cluster; README.md, HA):\n"
    "  --etcd URL[,URL...]    the store is etcd v3 (3.4+; its JSON gateway) instead of --db DIR\n"
    "  --etcd-prefix P        the keys' prefix (default /kairos-kms/)\n"
    "  --etcd-cacert F        CA(s) of https endpoints (default: the system's)\n"
    "  --etcd-cert F --etcd-key F  client certificate (mutual TLS)\n"
    "  --etcd-user U --etcd-password-file F  etcd authentication (the password from F only)\n"
    "  --etcd-timeout S       the deadline of one etcd call, endpoints rotated each second (default 10)\n"
    "  --instance NAME        this challenger's name in the audit log (default HOSTNAME:PID)\n"
    "\n"
    "  --debug                say more on stderr\n"
    "  --help                 this text\n"
    "\n"
    "Examples:\n"
    "  kairos-kms challenger --db /var/lib/kairos-kms --listen 0.0.0.0:8082 --audit-log /var/log/kms.jsonl\n"
    "  kairos-kms challenger register --db /var/lib/kairos-kms --tpm-hash $(cat node1.tpmhash) --label COS_PERSISTENT\n"
    "Nodes use it with: kcrypt.challenger.challenger_server: \"http://KMS:8082\" in their Kairos config.\n";

/* Where the records are: a directory (--db) or etcd (--etcd and its options). */
struct store_opts {
    const char *db, *from_db, *to_db, *instance;
    struct kms_etcd_options etcd;
    int64_t etcd_timeout_ms; /* 0: not given */
};

struct opts {
    struct store_opts store;
    char pcr_hex[24][65];
    char *ek_pem;
    const char *audit_log;
    struct g3_serve_opts srv;
    struct kms_register reg;
    const char *passphrase_file;
    char listen_host[64], metrics_host[64];
    uint32_t max_conns, max_conns_per_peer; /* 0: not given */
};

/* ---- the options that need more than a table row ---- */
static int opt_listen(void *target, const char *flag, const char *v)
{
    struct opts *o = target;
    if (applet_parse_listen(flag, v, o->listen_host, sizeof(o->listen_host), &o->srv.port) < 0)
        return EXIT_USAGE;
    o->srv.listen_addr = o->listen_host[0] ? o->listen_host : NULL;
    return 0;
}

static int opt_metrics_listen(void *target, const char *flag, const char *v)
{
    struct opts *o = target;
    if (applet_parse_listen(flag, v, o->metrics_host, sizeof(o->metrics_host), &o->srv.metrics_port) < 0)
        return EXIT_USAGE;
    o->srv.metrics_listen = v;
    o->srv.metrics_addr = o->metrics_host[0] ? o->metrics_host : NULL;
    return 0;
}

/* One worker per CPU this process may run on (its affinity mask: a container's or taskset's
 * limit, not the machine's count), at most G3_MAX_WORKERS. */
static unsigned cpu_workers(void)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > G3_MAX_WORKERS ? G3_MAX_WORKERS : (unsigned)n;
}

static int opt_workers(void *target, const char *flag, const char *v)
{
    struct opts *o = target;
    uint32_t n;

    if (!strcmp(v, "auto")) {
        o->srv.workers = cpu_workers();
    } else if (parse_u32(v, G3_MAX_WORKERS, &n) == 0 && n > 0) {
        o->srv.workers = n;
    } else {
        log_error("%s %s: expected 1 to %d, or auto (one per CPU)", flag, v, G3_MAX_WORKERS);
        return EXIT_USAGE;
    }
    return 0;
}

static int opt_announce(void *target, const char *flag, const char *v)
{
    if (!mdns_host_is_local(v)) {
        log_error("%s %s: must be a .local name (nodes look up only .local names over mDNS)", flag, v);
        return EXIT_USAGE;
    }
    ((struct opts *)target)->srv.announce = v;
    return 0;
}

static int opt_enroll(void *target, const char *flag, const char *v)
{
    if (strcmp(v, "registered") && strcmp(v, "tofu")) {
        log_error("%s %s: expected registered or tofu", flag, v);
        return EXIT_USAGE;
    }
    ((struct opts *)target)->srv.enroll_tofu = !strcmp(v, "tofu");
    return 0;
}

/* --pcr INDEX=HEX: a SHA-256 PCR value to pin (64 hex digits, stored lowercase). */
static int opt_pcr(void *target, const char *flag, const char *v)
{
    struct opts *o = target;
    const char *eq = strchr(v, '=');
    char idx[8];
    uint32_t i;
    size_t n;

    if (!eq || (size_t)(eq - v) >= sizeof(idx)) {
        log_error("%s %s: expected INDEX=HEX, e.g. 7=3d45...", flag, v);
        return EXIT_USAGE;
    }
    memcpy(idx, v, (size_t)(eq - v));
    idx[eq - v] = '\0';
    if (parse_u32(idx, 23, &i) < 0) {
        log_error("%s %s: the index must be 0..23", flag, v);
        return EXIT_USAGE;
    }
    n = strlen(eq + 1);
    if (n != 64 || strspn(eq + 1, "0123456789abcdefABCDEF") != 64) {
        log_error("%s %s: the value must be 64 hex digits (a SHA-256 bank value)", flag, v);
        return EXIT_USAGE;
    }
    for (size_t k = 0; k < 64; k++)
        o->pcr_hex[i][k] = (char)(eq[1 + k] >= 'A' && eq[1 + k] <= 'F' ? eq[1 + k] - 'A' + 'a' : eq[1 + k]);
    o->pcr_hex[i][64] = '\0';
    o->reg.pcr_mask |= 1u << i;
    o->reg.pcr[i] = o->pcr_hex[i];
    return 0;
}

/* --ek-pem FILE: the EK as upstream stores it, whatever PEM form the operator has. */
static int opt_ek_pem(void *target, const char *flag, const char *path)
{
    struct opts *o = target;
    _cleanup_free_ char *text = NULL;
    struct rsa_pub key;
    int r = file_read_all(path, 1 << 16, &text, NULL);

    if (r < 0)
        return log_error_errno(r, "%s %s: cannot read: %m", flag, path), EXIT_RUNTIME;
    r = proto_ek_pem_public(text, &key);
    if (r < 0)
        return log_error("%s %s: not an RSA PUBLIC KEY or CERTIFICATE in PEM", flag, path), EXIT_RUNTIME;
    free(o->ek_pem);
    if (crypto_rsa_spki_pem(&key, &o->ek_pem) < 0)
        return log_error("%s %s: cannot re-encode the key", flag, path), EXIT_RUNTIME;
    o->reg.ek_pem = o->ek_pem;
    return 0;
}

#define O(field) offsetof(struct opts, field)
static const struct applet_opt options[] = {
    {.name = "db", .type = APPLET_STRING, .off = O(store.db)},
    {.name = "etcd", .type = APPLET_STRING, .off = O(store.etcd.endpoints)},
    {.name = "etcd-prefix", .type = APPLET_STRING, .off = O(store.etcd.prefix)},
    {.name = "etcd-cacert", .type = APPLET_STRING, .off = O(store.etcd.ca_file)},
    {.name = "etcd-cert", .type = APPLET_STRING, .off = O(store.etcd.cert_file)},
    {.name = "etcd-key", .type = APPLET_STRING, .off = O(store.etcd.key_file)},
    {.name = "etcd-user", .type = APPLET_STRING, .off = O(store.etcd.user)},
    {.name = "etcd-password-file", .type = APPLET_STRING, .off = O(store.etcd.password_file)},
    {.name = "etcd-timeout", .type = APPLET_SECONDS, .off = O(store.etcd_timeout_ms)},
    {.name = "instance", .type = APPLET_STRING, .off = O(store.instance)},
    {.name = "from-db", .type = APPLET_STRING, .off = O(store.from_db)},
    {.name = "to-db", .type = APPLET_STRING, .off = O(store.to_db)},
    {.name = "listen", .type = APPLET_CALL, .call = opt_listen},
    {.name = "challenger-bind-address", .type = APPLET_CALL, .call = opt_listen},
    {.name = "tls-cert", .type = APPLET_STRING, .off = O(srv.tls_cert)},
    {.name = "tls-key", .type = APPLET_STRING, .off = O(srv.tls_key)},
    {.name = "audit-log", .type = APPLET_STRING, .off = O(audit_log)},
    {.name = "port-file", .type = APPLET_STRING, .off = O(srv.port_file)},
    {.name = "exchange-timeout", .type = APPLET_SECONDS, .off = O(srv.exchange_timeout_ms)},
    {.name = "max-conns",
     .type = APPLET_U32,
     .off = O(max_conns),
     .min = 1,
     .max = 1000000,
     .what = "a number of connections from 1 to 1000000"},
    {.name = "max-conns-per-peer",
     .type = APPLET_U32,
     .off = O(max_conns_per_peer),
     .min = 1,
     .max = 1000000,
     .what = "a number of connections from 1 to 1000000"},
    {.name = "tpm-hash", .type = APPLET_STRING, .off = O(reg.tpm_hash)},
    {.name = "label", .type = APPLET_STRING, .off = O(reg.label)},
    {.name = "name", .type = APPLET_STRING, .off = O(reg.device_name)},
    {.name = "uuid", .type = APPLET_STRING, .off = O(reg.uuid)},
    {.name = "volume", .type = APPLET_STRING, .off = O(reg.volume)},
    {.name = "secret", .type = APPLET_STRING, .off = O(reg.secret_name)},
    {.name = "key", .type = APPLET_STRING, .off = O(reg.secret_key)},
    {.name = "passphrase-file", .type = APPLET_STRING, .off = O(passphrase_file)},
    {.name = "debug", .type = APPLET_ACTION, .call = applet_opt_debug},
    {.name = "ek-ca", .type = APPLET_STRING, .off = O(srv.ek_ca)},
    {.name = "announce", .type = APPLET_CALL, .call = opt_announce},
    {.name = "announce-interface",
     .type = APPLET_LIST,
     .off = O(srv.announce_ifaces),
     .count_off = O(srv.n_announce_ifaces),
     .max = sizeof(((struct g3_serve_opts *)0)->announce_ifaces) / sizeof(const char *)},
    {.name = "metrics-listen", .type = APPLET_CALL, .call = opt_metrics_listen},
    {.name = "workers", .type = APPLET_CALL, .call = opt_workers},
    {.name = "enroll", .type = APPLET_CALL, .call = opt_enroll},
    {.name = "require-fresh-quotes", .type = APPLET_FLAG, .off = O(srv.require_fresh_quotes)},
    {.name = "pcr", .type = APPLET_CALL, .call = opt_pcr},
    {.name = "ek-pem", .type = APPLET_CALL, .call = opt_ek_pem},
};
#undef O

static int list_pending(struct kms_store *store)
{
    struct kms_pending *p = NULL;
    size_t n = 0;

    if (kms_pending_list(store, &p, &n) < 0)
        return EXIT_RUNTIME;
    printf("TPM-HASH\tPARTITION\tPCRS\tFIRST-SEEN\tLAST-SEEN\n");
    for (size_t i = 0; i < n; i++) {
        printf("%s\t%s", p[i].hash, *p[i].label ? p[i].label : "-");
        if (*p[i].device_name)
            printf(",name=%s", p[i].device_name);
        if (*p[i].uuid)
            printf(",uuid=%s", p[i].uuid);
        printf("\t");
        if (!p[i].pcr_mask)
            printf("-");
        for (unsigned j = 0, first = 1; j < 24; j++)
            if (p[i].pcr_mask & (1u << j)) {
                printf("%s%u=%.16s..", first ? "" : ",", j, p[i].pcr[j]);
                first = 0;
            }
        printf("\t%s\t%s\n", p[i].first_seen, p[i].last_seen);
        kms_pending_clear(&p[i]);
    }
    free(p);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
}

/* ---- the verbs: each runs on the opened store; args already counted against the table ---- */
static int verb_serve(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args)
{
    (void)args;
    return g3_serve(s, a, &o->srv);
}

static int verb_register(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args)
{
    (void)a, (void)args;
    return kms_register(s, &o->reg) < 0 ? EXIT_RUNTIME : EXIT_OK;
}

static int verb_list(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args)
{
    (void)a, (void)o, (void)args;
    return kms_list(s, stdout) < 0 ? EXIT_RUNTIME : EXIT_OK;
}

static int verb_pending(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args)
{
    (void)a, (void)o, (void)args;
    return list_pending(s);
}

static int verb_approve(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args)
{
    (void)a;
    return kms_pending_approve(s, args[0], o->reg.volume) < 0 ? EXIT_RUNTIME : EXIT_OK;
}

static int verb_quarantine(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args)
{
    (void)a, (void)o;
    return kms_set_quarantine(s, args[0], true) < 0 ? EXIT_RUNTIME : EXIT_OK;
}

static int verb_release(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args)
{
    (void)a, (void)o;
    return kms_set_quarantine(s, args[0], false) < 0 ? EXIT_RUNTIME : EXIT_OK;
}

/* The command words (none = serve), their argument counts and what they run. */
static int verb_import(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args)
{
    (void)a, (void)args;
    return kms_store_import_dir(s, o->store.from_db) < 0 ? EXIT_RUNTIME : EXIT_OK;
}

static int verb_export(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args)
{
    (void)a, (void)args;
    return kms_store_export_dir(s, o->store.to_db) < 0 ? EXIT_RUNTIME : EXIT_OK;
}

static const struct verb {
    const char *name;
    int nargs;        /* positional arguments after the options */
    const char *args; /* their names, for the error text */
    int (*run)(struct kms_store *s, struct kms_audit *a, struct opts *o, char **args);
} verbs[] = {
    {"serve", 0, NULL, verb_serve},
    {"register", 0, NULL, verb_register},
    {"list", 0, NULL, verb_list},
    {"pending", 0, NULL, verb_pending},
    {"approve", 1, "TPM_HASH", verb_approve},
    {"quarantine", 1, "TPM_HASH", verb_quarantine},
    {"release", 1, "TPM_HASH", verb_release},
    {"import", 0, NULL, verb_import},
    {"export", 0, NULL, verb_export},
};

/* The store from --db DIR or --etcd URLS; EXIT_USAGE, EXIT_RUNTIME or 0. The server follows
 * etcd in a thread and waits for it when it is unreachable; commands need it now. */
static int open_store(struct store_opts *so, const struct verb *v, struct kms_audit *audit, struct kms_store **out)
{
    /* Before every decision the server takes in what inotify reported changed in DIR (only those
     * files are read again; without inotify it rescans DIR), so an operator's edit (register,
     * quarantine, a new manifest) counts from the next request. */
    struct kms_store_options ko = {.create = true, .poll_interval_ms = 0, .audit = audit};
    bool serve = v->run == verb_serve, backup = v->run == verb_import || v->run == verb_export;

    if (!so->db == !so->etcd.endpoints) {
        log_error(so->db ? "--db and --etcd exclude each other"
                         : "--db DIR or --etcd URLS is required (where the SealedVolumes and Secrets are)");
        return EXIT_USAGE;
    }
    if (backup && (!so->etcd.endpoints || !(v->run == verb_import ? so->from_db : so->to_db))) {
        log_error("%s: --etcd URLS and %s DIR are required", v->name, v->run == verb_import ? "--from-db" : "--to-db");
        return EXIT_USAGE;
    }
    if (!!so->etcd.cert_file != !!so->etcd.key_file || !!so->etcd.user != !!so->etcd.password_file) {
        log_error("--etcd-cert goes with --etcd-key, --etcd-user with --etcd-password-file");
        return EXIT_USAGE;
    }
    if (so->etcd_timeout_ms && (so->etcd_timeout_ms < 1000 || so->etcd_timeout_ms > 600000)) {
        log_error("--etcd-timeout: expected 1 to 600 seconds");
        return EXIT_USAGE;
    }
    kms_audit_set_instance(audit, so->instance);
    if (serve)
        g3_keep_malloc_warm(); /* loading a big store allocates and frees the same sizes too */
    if (so->db)
        return kms_store_open_dir(so->db, &ko, out) < 0 ? EXIT_RUNTIME : 0;
    so->etcd.watch = serve;
    so->etcd.deadline_ms = (int)so->etcd_timeout_ms;
    return kms_store_open_etcd(&so->etcd, &ko, out) < 0 ? EXIT_RUNTIME : 0;
}

static const struct verb *find_verb(const char *name)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!strcmp(verbs[i].name, name))
            return &verbs[i];
    return NULL;
}

static int run_command(const struct verb *v, struct opts *o, char **args, int nargs)
{
    struct kms_store *store = NULL;
    struct kms_audit *audit = NULL;
    _cleanup_secret_ struct secret *pass = NULL;
    int code = EXIT_RUNTIME;

    if (!applet_check_args(v->name, args, nargs, v->nargs, v->nargs, v->args))
        return EXIT_USAGE;
    if (v->run == verb_register) {
        if (!o->reg.tpm_hash || !(o->reg.label || o->reg.device_name || o->reg.uuid)) {
            log_error("register: --tpm-hash and one of --label, --name, --uuid are required");
            return EXIT_USAGE;
        }
        if (o->reg.secret_key && !o->reg.secret_name) {
            log_error("register: --key goes with --secret");
            return EXIT_USAGE;
        }
        if (o->passphrase_file && kms_passphrase_read_file(o->passphrase_file, &pass) < 0)
            return EXIT_RUNTIME;
        o->reg.passphrase = pass;
    }
    if (kms_audit_open(o->audit_log, &audit) < 0)
        return EXIT_RUNTIME;
    code = open_store(&o->store, v, audit, &store);
    if (code)
        goto out;
    code = v->run(store, audit, o, args);
out:
    kms_store_free(store);
    kms_audit_free(audit);
    return code;
}

int challenger_main(int argc, char **argv)
{
    const struct applet_cmd cmd = {.usage = usage, .opts = options, .n_opts = APPLET_N(options)};
    struct opts o = {.srv = {.port = 8082, .exchange_timeout_ms = 30000}};
    const struct verb *v = &verbs[0];
    char **args;
    int nargs, code;

    /* A command word may come first (challenger register ...) or not at all (serve). */
    if (argc > 1 && argv[1][0] != '-') {
        v = find_verb(argv[1]);
        if (!v || v == &verbs[0]) {
            log_error("unknown command %s (see --help)", argv[1]);
            return EXIT_USAGE;
        }
        argv++;
        argc--;
    }
    if (!applet_parse(&cmd, argc, argv, &o, &args, &nargs, &code)) {
        free(o.ek_pem);
        return code;
    }
    o.srv.max_conns = o.max_conns;
    o.srv.max_conns_per_peer = o.max_conns_per_peer;
    code = EXIT_USAGE;
    if (v->run == verb_serve && !o.srv.tls_cert != !o.srv.tls_key)
        log_error("--tls-cert and --tls-key go together");
    else if (o.srv.max_conns_per_peer > (o.srv.max_conns ? o.srv.max_conns : 1024))
        log_error("--max-conns-per-peer %zu: above --max-conns %zu", o.srv.max_conns_per_peer,
                  o.srv.max_conns ? o.srv.max_conns : (size_t)1024);
    else {
        if (o.srv.max_conns && !o.srv.max_conns_per_peer && o.srv.max_conns < 32)
            o.srv.max_conns_per_peer = o.srv.max_conns; /* the default per peer, cut to the total */
        if (v->run == verb_serve && !o.srv.workers)     /* the default: every CPU */
            o.srv.workers = cpu_workers();
        code = run_command(v, &o, args, nargs);
    }
    free(o.ek_pem);
    return code;
}
