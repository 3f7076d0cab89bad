/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* challenger: the KMS. Its records are the manifests operators `kubectl apply` to upstream
 * Kairos (SealedVolume keyserver.kairos.io/v1alpha1, Secret v1), kept in a directory. */
#include <getopt.h>
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
    "  --exchange-timeout S   drop a node that stalls mid-exchange after S seconds (default 30)\n"
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
    "  --workers N|auto       N processes serve the listener, each with its own event loop\n"
    "                         (auto: one per CPU; default 1). The store's writes are atomic across\n"
    "                         them, the metrics are shared, SIGTERM and SIGHUP reach every one\n"
    "Endpoints: /getPass, /postPass, /tpm-attestation, /healthz, /readyz (the last rescan of DIR,\n"
    "done every 5 s), /metrics (kairos_kms_* counters, histogram and gauges; no TPM hash or\n"
    "secret in any label).\n"
    "SIGTERM drains open exchanges; SIGHUP rescans. A keep-alive connection serves at most 100\n"
    "requests and lives at most 120 s; pipelined requests are served a few at a time, in turn\n"
    "with other connections.\n"
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
};

struct opts {
    struct store_opts store;
    char pcr_hex[24][65];
    char *ek_pem;
    const char *audit_log;
    struct g3_serve_opts srv;
    struct kms_register reg;
    const char *passphrase_file;
};

static int parse_listen(const char *v, struct g3_serve_opts *o)
{
    static char host[64];
    const char *colon = strrchr(v, ':');
    uint32_t port;
    size_t hlen;

    if (!colon || parse_u32(colon + 1, 65535, &port) < 0)
        return log_error_errno(-EINVAL, "--listen %s: expected ADDR:PORT, e.g. 0.0.0.0:8082 or :8082", v);
    hlen = (size_t)(colon - v);
    if (hlen >= sizeof(host))
        return log_error_errno(-EINVAL, "--listen %s: address too long", v);
    if (hlen >= 2 && v[0] == '[' && v[hlen - 1] == ']') { /* [::1]:8082 */
        v++;
        hlen -= 2;
    }
    memcpy(host, v, hlen);
    host[hlen] = '\0';
    o->listen_addr = hlen ? host : NULL;
    o->port = (uint16_t)port;
    return 0;
}

/* --pcr INDEX=HEX: a SHA-256 PCR value to pin (64 hex digits, stored lowercase). */
static int parse_pcr(const char *v, struct opts *o)
{
    const char *eq = strchr(v, '=');
    char idx[8];
    uint32_t i;
    size_t n;

    if (!eq || (size_t)(eq - v) >= sizeof(idx))
        return log_error_errno(-EINVAL, "--pcr %s: expected INDEX=HEX, e.g. 7=3d45...", v);
    memcpy(idx, v, (size_t)(eq - v));
    idx[eq - v] = '\0';
    if (parse_u32(idx, 23, &i) < 0)
        return log_error_errno(-EINVAL, "--pcr %s: the index must be 0..23", v);
    n = strlen(eq + 1);
    if (n != 64 || strspn(eq + 1, "0123456789abcdefABCDEF") != 64)
        return log_error_errno(-EINVAL, "--pcr %s: the value must be 64 hex digits (a SHA-256 bank value)", v);
    for (size_t k = 0; k < 64; k++)
        o->pcr_hex[i][k] = (char)(eq[1 + k] >= 'A' && eq[1 + k] <= 'F' ? eq[1 + k] - 'A' + 'a' : eq[1 + k]);
    o->pcr_hex[i][64] = '\0';
    o->reg.pcr_mask |= 1u << i;
    o->reg.pcr[i] = o->pcr_hex[i];
    return 0;
}

/* --ek-pem FILE: the EK as upstream stores it, whatever PEM form the operator has. */
static int read_ek_pem(const char *path, struct opts *o)
{
    _cleanup_free_ char *text = NULL;
    struct rsa_pub key;
    int r = file_read_all(path, 1 << 16, &text, NULL);

    if (r < 0)
        return log_error_errno(r, "--ek-pem %s: cannot read", path);
    r = proto_ek_pem_public(text, &key);
    if (r < 0)
        return log_error_errno(r, "--ek-pem %s: not an RSA PUBLIC KEY or CERTIFICATE in PEM", path);
    free(o->ek_pem);
    if (crypto_rsa_spki_pem(&key, &o->ek_pem) < 0)
        return log_error_errno(-EIO, "--ek-pem %s: cannot re-encode the key", path);
    o->reg.ek_pem = o->ek_pem;
    return 0;
}

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
static int open_store(struct store_opts *so, const struct verb *v, const struct g3_serve_opts *srv,
                      struct kms_audit *audit, struct kms_store **out)
{
    /* The server looks at DIR before every decision (a listing and a stat per file: cheap), so
     * an operator's edit (register, quarantine, a new manifest) counts from the next request. */
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
    if (serve && so->etcd.endpoints && srv->workers > 1) {
        log_error("--workers: one process per challenger with --etcd (run more challengers instead)");
        return EXIT_USAGE;
    }
    kms_audit_set_instance(audit, so->instance);
    if (so->db)
        return kms_store_open_dir(so->db, &ko, out) < 0 ? EXIT_RUNTIME : 0;
    so->etcd.watch = serve;
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

    if (nargs > v->nargs) {
        log_error("%s: unexpected argument %s (see --help)", v->name, args[v->nargs]);
        return EXIT_USAGE;
    }
    if (nargs < v->nargs) {
        log_error("%s: expected %s (see --help)", v->name, v->args);
        return EXIT_USAGE;
    }
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
    code = open_store(&o->store, v, &o->srv, audit, &store);
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
    enum {
        O_DB = 0x3000,
        O_LISTEN,
        O_CERT,
        O_KEY,
        O_AUDIT,
        O_PORTFILE,
        O_XTIMEOUT,
        O_HASH,
        O_LABEL,
        O_NAME,
        O_UUID,
        O_VOLUME,
        O_SECRET,
        O_SKEY,
        O_PASSFILE,
        O_DEBUG,
        O_MAXCONNS,
        O_MAXPEER,
        O_EKCA,
        O_ENROLL,
        O_FRESH,
        O_PCR,
        O_EKPEM,
        O_ANNOUNCE,
        O_ANNOUNCE_IF,
        O_METRICS,
        O_WORKERS,
        O_ETCD,
        O_ETCD_PREFIX,
        O_ETCD_CA,
        O_ETCD_CERT,
        O_ETCD_KEY,
        O_ETCD_USER,
        O_ETCD_PASS,
        O_ETCD_TIMEOUT,
        O_INSTANCE,
        O_FROM_DB,
        O_TO_DB
    };
    static const struct option opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"listen", required_argument, NULL, O_LISTEN},
        {"challenger-bind-address", required_argument, NULL, O_LISTEN},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"audit-log", required_argument, NULL, O_AUDIT},
        {"port-file", required_argument, NULL, O_PORTFILE},
        {"exchange-timeout", required_argument, NULL, O_XTIMEOUT},
        {"max-conns", required_argument, NULL, O_MAXCONNS},
        {"max-conns-per-peer", required_argument, NULL, O_MAXPEER},
        {"tpm-hash", required_argument, NULL, O_HASH},
        {"label", required_argument, NULL, O_LABEL},
        {"name", required_argument, NULL, O_NAME},
        {"uuid", required_argument, NULL, O_UUID},
        {"volume", required_argument, NULL, O_VOLUME},
        {"secret", required_argument, NULL, O_SECRET},
        {"key", required_argument, NULL, O_SKEY},
        {"passphrase-file", required_argument, NULL, O_PASSFILE},
        {"debug", no_argument, NULL, O_DEBUG},
        {"ek-ca", required_argument, NULL, O_EKCA},
        {"announce", required_argument, NULL, O_ANNOUNCE},
        {"announce-interface", required_argument, NULL, O_ANNOUNCE_IF},
        {"metrics-listen", required_argument, NULL, O_METRICS},
        {"workers", required_argument, NULL, O_WORKERS},
        {"enroll", required_argument, NULL, O_ENROLL},
        {"require-fresh-quotes", no_argument, NULL, O_FRESH},
        {"pcr", required_argument, NULL, O_PCR},
        {"ek-pem", required_argument, NULL, O_EKPEM},
        {"etcd", required_argument, NULL, O_ETCD},
        {"etcd-prefix", required_argument, NULL, O_ETCD_PREFIX},
        {"etcd-cacert", required_argument, NULL, O_ETCD_CA},
        {"etcd-cert", required_argument, NULL, O_ETCD_CERT},
        {"etcd-key", required_argument, NULL, O_ETCD_KEY},
        {"etcd-user", required_argument, NULL, O_ETCD_USER},
        {"etcd-password-file", required_argument, NULL, O_ETCD_PASS},
        {"etcd-timeout", required_argument, NULL, O_ETCD_TIMEOUT},
        {"instance", required_argument, NULL, O_INSTANCE},
        {"from-db", required_argument, NULL, O_FROM_DB},
        {"to-db", required_argument, NULL, O_TO_DB},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct opts o = {.srv = {.port = 8082, .exchange_timeout_ms = 30000}};
    const struct verb *v = &verbs[0];
    int c;

    opterr = 0;
    optind = 1;
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
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_DB: o.store.db = optarg; break;
        case O_ETCD: o.store.etcd.endpoints = optarg; break;
        case O_ETCD_PREFIX: o.store.etcd.prefix = optarg; break;
        case O_ETCD_CA: o.store.etcd.ca_file = optarg; break;
        case O_ETCD_CERT: o.store.etcd.cert_file = optarg; break;
        case O_ETCD_KEY: o.store.etcd.key_file = optarg; break;
        case O_ETCD_USER: o.store.etcd.user = optarg; break;
        case O_ETCD_PASS: o.store.etcd.password_file = optarg; break;
        case O_ETCD_TIMEOUT: {
            int64_t ms;
            if (applet_parse_seconds("--etcd-timeout", optarg, &ms) < 0 || ms < 1000 || ms > 600000) {
                log_error("--etcd-timeout %s: expected 1 to 600 seconds", optarg);
                return EXIT_USAGE;
            }
            o.store.etcd.deadline_ms = (int)ms;
            break;
        }
        case O_INSTANCE: o.store.instance = optarg; break;
        case O_FROM_DB: o.store.from_db = optarg; break;
        case O_TO_DB: o.store.to_db = optarg; break;
        case O_LISTEN:
            if (parse_listen(optarg, &o.srv) < 0)
                return EXIT_USAGE;
            break;
        case O_CERT: o.srv.tls_cert = optarg; break;
        case O_KEY: o.srv.tls_key = optarg; break;
        case O_AUDIT: o.audit_log = optarg; break;
        case O_PORTFILE: o.srv.port_file = optarg; break;
        case O_XTIMEOUT:
            if (applet_parse_seconds("--exchange-timeout", optarg, &o.srv.exchange_timeout_ms) < 0)
                return EXIT_USAGE;
            break;
        case O_MAXCONNS:
        case O_MAXPEER: {
            uint32_t v;
            const char *flag = c == O_MAXCONNS ? "--max-conns" : "--max-conns-per-peer";
            if (parse_u32(optarg, 1000000, &v) < 0 || v == 0) {
                log_error("%s %s: expected a number of connections from 1 to 1000000", flag, optarg);
                return EXIT_USAGE;
            }
            if (c == O_MAXCONNS)
                o.srv.max_conns = v;
            else
                o.srv.max_conns_per_peer = v;
            break;
        }
        case O_HASH: o.reg.tpm_hash = optarg; break;
        case O_LABEL: o.reg.label = optarg; break;
        case O_NAME: o.reg.device_name = optarg; break;
        case O_UUID: o.reg.uuid = optarg; break;
        case O_VOLUME: o.reg.volume = optarg; break;
        case O_SECRET: o.reg.secret_name = optarg; break;
        case O_SKEY: o.reg.secret_key = optarg; break;
        case O_PASSFILE: o.passphrase_file = optarg; break;
        case O_DEBUG: log_set_level(LOG_DEBUG); break;
        case O_EKCA: o.srv.ek_ca = optarg; break;
        case O_METRICS: o.srv.metrics_listen = optarg; break;
        case O_WORKERS: {
            uint32_t v;
            if (!strcmp(optarg, "auto")) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                o.srv.workers = n > 0 ? (unsigned)(n > G3_MAX_WORKERS ? G3_MAX_WORKERS : n) : 1;
            } else if (parse_u32(optarg, G3_MAX_WORKERS, &v) == 0 && v > 0) {
                o.srv.workers = v;
            } else {
                log_error("--workers %s: expected 1 to %d, or auto (one per CPU)", optarg, G3_MAX_WORKERS);
                return EXIT_USAGE;
            }
            break;
        }
        case O_ANNOUNCE:
            if (!mdns_host_is_local(optarg)) {
                log_error("--announce %s: must be a .local name (nodes look up only .local names over mDNS)", optarg);
                return EXIT_USAGE;
            }
            o.srv.announce = optarg;
            break;
        case O_ANNOUNCE_IF:
            if (o.srv.n_announce_ifaces == sizeof(o.srv.announce_ifaces) / sizeof(o.srv.announce_ifaces[0])) {
                log_error("--announce-interface: at most %zu interfaces", o.srv.n_announce_ifaces);
                return EXIT_USAGE;
            }
            o.srv.announce_ifaces[o.srv.n_announce_ifaces++] = optarg;
            break;
        case O_ENROLL:
            if (strcmp(optarg, "registered") && strcmp(optarg, "tofu")) {
                log_error("--enroll %s: expected registered or tofu", optarg);
                return EXIT_USAGE;
            }
            o.srv.enroll_tofu = !strcmp(optarg, "tofu");
            break;
        case O_FRESH: o.srv.require_fresh_quotes = true; break;
        case O_PCR:
            if (parse_pcr(optarg, &o) < 0)
                return EXIT_USAGE;
            break;
        case O_EKPEM:
            if (read_ek_pem(optarg, &o) < 0)
                return EXIT_RUNTIME;
            break;
        case 'h': return applet_usage(usage, EXIT_OK);
        default: log_error("%s: unknown option or missing value (see --help)", argv[optind - 1]); return EXIT_USAGE;
        }
    }
    if (v->run == verb_serve && !o.srv.tls_cert != !o.srv.tls_key) {
        log_error("--tls-cert and --tls-key go together");
        return EXIT_USAGE;
    }
    if (o.srv.max_conns_per_peer > (o.srv.max_conns ? o.srv.max_conns : 1024)) {
        log_error("--max-conns-per-peer %zu: above --max-conns %zu", o.srv.max_conns_per_peer,
                  o.srv.max_conns ? o.srv.max_conns : (size_t)1024);
        return EXIT_USAGE;
    }
    if (o.srv.max_conns && !o.srv.max_conns_per_peer && o.srv.max_conns < 32)
        o.srv.max_conns_per_peer = o.srv.max_conns; /* the default per peer, cut to the total */
    c = run_command(v, &o, argv + optind, argc - optind);
    free(o.ek_pem);
    return c;
}
