/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* discovery-challenger: the node side of the KMS (docs/upstream.md §5). With no command it prints
 * the TPM hash; `discovery.password` is the kcrypt plugin; `get` runs the same flow for scripts. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "applets.h"
#include "g3_session.h"
#include "kconfig.h"
#include "kyaml.h"
#include "plugin.h"
#include "tpm.h"

static const char usage[] =
    "Usage: kcrypt-discovery-challenger [--tpm-device PATH]\n"
    "       kcrypt-discovery-challenger discovery.password\n"
    "       kcrypt-discovery-challenger get --partition-label L [--partition-name N] [--partition-uuid U]\n"
    "                  --challenger-server URL [--certificate PEM-OR-FILE] [--tpm-device D] [--timeout S]\n"
    "                  [--protocol auto|g1|g3] [--pcrs 0,7,11] [--live|--no-live] [--no-escrow]\n"
    "\n"
    "The node side of the Kairos KMS, compatible with upstream kcrypt-challenger servers (G1:\n"
    "/getPass, /postPass; G3: /tpm-attestation) and with kcrypt hosts (both discovery.password\n"
    "payload shapes).\n"
    "\n"
    "  (no command)        print this node's TPM hash (64 lowercase hex, no newline), as upstream\n"
    "  discovery.password  plugin mode: read the event on stdin, answer on stdout. The KMS comes from\n"
    "                      the Kairos config (kcrypt.challenger.challenger_server, certificate) or the\n"
    "                      payload; with no KMS configured the passphrase comes from the TPM NV index\n"
    "                      (offline mode, as upstream's plugin does)\n"
    "  get                 run the same flow for one partition and print the passphrase (no newline)\n"
    "\n"
    "G3: the node proves its TPM (credential activation) and what booted (a PCR quote over the\n"
    "KMS's nonce when the KMS sends one) on /tpm-attestation; for a new enrollment it offers a\n"
    "passphrase it generated, encrypted to its TPM key (the KMS stores only that ciphertext).\n"
    "G1: the node proves its TPM (credential activation with its EK) and asks /getPass for the\n"
    "partition (headers label, name, uuid). If the KMS has no Secret for it yet (auto-generated\n"
    "keys), the node generates a passphrase, encrypts it with its TPM key (c_index, default\n"
    "0x81000008) and posts only the ciphertext to /postPass, then asks again and decrypts the\n"
    "answer with the TPM: the KMS alone can never read it. Transport failures are retried with\n"
    "backoff within --timeout; a certificate that does not verify or a refusal is final.\n"
    "\n"
    "  --challenger-server URL  http(s)://host[:port]; a trailing / is fine\n"
    "  --mdns                   find the server's .local host over mDNS (kcrypt.challenger.mdns)\n"
    "  --certificate PEM|FILE   CA (or the server's own certificate, pinned) to trust, as PEM text\n"
    "                           or a file; the system roots are trusted too\n"
    "  --partition-label L --partition-name N --partition-uuid U   which partition (one at least)\n"
    "  --c-index C              TPM key that decrypts generated passphrases (default 0x81000008)\n"
    "  --protocol auto|g1|g3    auto (default; kcrypt.challenger.protocol): /tpm-attestation (G3)\n"
    "                           first, G1 when the KMS answers 404 there\n"
    "  --pcrs LIST              PCRs the G3 quote covers (default 0,7,11; kcrypt.challenger.pcrs)\n"
    "  --live, --no-live        G3: say the node runs from a live medium (defer_pcr_enrollment),\n"
    "                           or not; default: detected from /proc/cmdline as upstream does\n"
    "  --no-escrow              G3: do not offer a passphrase generated here (TPM-encrypted) for a\n"
    "                           new enrollment; the KMS then generates one (as for upstream nodes)\n"
    "  --timeout SECONDS        total time for the exchange, retries included (default 50)\n"
    "  --tpm-device PATH        a TPM device, swtpm socket or TCTI string (see tpm-hash --help)\n"
    "  --tpm-timeout SECONDS    give up on a TPM command after this long (default 120)\n"
    "  --debug                  say more on stderr\n"
    "  --help                   this text\n"
    "\n"
    "Examples:\n"
    "  kcrypt-discovery-challenger > node.tpmhash\n"
    "  kcrypt-discovery-challenger get --partition-label COS_PERSISTENT --challenger-server http://kms:8082\n";

static int parse_protocol(const char *what, const char *v, enum g3_protocol *out)
{
    if (!strcmp(v, "auto"))
        *out = G3_PROTO_AUTO;
    else if (!strcmp(v, "g1"))
        *out = G3_PROTO_G1;
    else if (!strcmp(v, "g3"))
        *out = G3_PROTO_G3;
    else
        return log_error_errno(-EINVAL, "%s %s: expected auto, g1 or g3", what, v);
    return 0;
}

/* kcrypt.challenger.protocol and kcrypt.challenger.pcrs (ours; unset = auto and 0,7,11). */
static int g3_options_from_config(const struct kconfig *cfg, struct g3_request *rq)
{
    const struct kyaml_node *root = kconfig_tree(cfg);
    const char *v = NULL;
    int r;

    r = kyaml_get_str(root, "kcrypt.challenger.protocol", &v);
    if (r == 0 && *v && parse_protocol("kcrypt.challenger.protocol", v, &rq->protocol) < 0)
        return -EINVAL;
    if (r < 0 && r != -ENOENT)
        return r;
    r = kyaml_get_str(root, "kcrypt.challenger.pcrs", &v);
    if (r == 0 && *v && g3_parse_pcrs("kcrypt.challenger.pcrs", v, &rq->pcr_mask) < 0)
        return -EINVAL;
    return r == -ENOENT ? 0 : r;
}

/* Plugin mode (docs/upstream.md §4.2, §5.4): always answers with a response document; errors go in "error". */
static int plugin_mode(const struct applet_tpm_opts *t)
{
    struct plugin_event ev = {0};
    struct plugin_payload pl = {0};
    struct kconfig *cfg = NULL;
    struct kcrypt_config kc = {0};
    struct secret *pass = NULL;
    char error[512] = "";
    int r;

    r = plugin_event_read(STDIN_FILENO, &ev);
    if (r == 0 && plugin_payload_parse(ev.data, ev.data_len, &pl) < 0)
        r = -EINVAL;
    if (r < 0)
        snprintf(error, sizeof(error), "failed reading partitions: the event or its payload is not valid");
    if (r == 0 && (kconfig_load(NULL, &cfg) < 0 || kconfig_kcrypt(cfg, &kc) < 0)) {
        snprintf(error, sizeof(error), "failed getting pass: cannot read the Kairos configuration");
        r = -EINVAL;
    }
    if (r == 0) {
        const char *server = kc.challenger_server[0] ? kc.challenger_server : pl.challenger_server;
        const char *device = t->device ? t->device : (kc.tpm_device[0] ? kc.tpm_device : NULL);
        if (!server[0]) { /* no KMS: the TPM NV passphrase, as upstream's localPass */
            struct tpm *tpm = NULL;
            r = tpm_open(device, t->timeout_ms, &tpm);
            if (r == 0)
                r = tpm_offline_passphrase(tpm, kc.nv_index, kc.c_index, true, &pass);
            tpm_close(tpm);
        } else {
            struct g3_request rq = {.base = {.server = server,
                                             .certificate = kc.certificate,
                                             .tpm_device = device,
                                             .tpm_timeout_ms = t->timeout_ms,
                                             .c_index = kc.c_index,
                                             .label = pl.part.label,
                                             .name = pl.part.name,
                                             .uuid = pl.part.uuid,
                                             .timeout_ms = 50000,
                                             .mdns = kc.mdns || pl.mdns},
                                    .escrow = true,
                                    .defer_pcr_enrollment = g3_booted_live(NULL)};
            r = g3_options_from_config(cfg, &rq);
            if (r == 0)
                r = g3_get_passphrase(&rq, &pass);
        }
        if (r < 0)
            snprintf(error, sizeof(error), "failed getting pass: %s", log_last_error());
    }
    r = plugin_response_write(STDOUT_FILENO, "", r == 0 ? pass : NULL, error, "");
    secret_free(pass);
    kconfig_kcrypt_clear(&kc);
    kconfig_free(cfg);
    plugin_payload_clear(&pl);
    plugin_event_clear(&ev);
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
}

static int get_command(int argc, char **argv, const struct applet_tpm_opts *t)
{
    enum {
        O_SERVER = 0x4000,
        O_CERT,
        O_LABEL,
        O_NAME,
        O_UUID,
        O_CINDEX,
        O_TIMEOUT,
        O_MDNS,
        O_PROTO,
        O_PCRS,
        O_LIVE,
        O_NOLIVE,
        O_NOESCROW
    };
    static const struct option opts[] = {
        {"challenger-server", required_argument, NULL, O_SERVER},
        {"certificate", required_argument, NULL, O_CERT},
        {"partition-label", required_argument, NULL, O_LABEL},
        {"partition-name", required_argument, NULL, O_NAME},
        {"partition-uuid", required_argument, NULL, O_UUID},
        {"c-index", required_argument, NULL, O_CINDEX},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"mdns", no_argument, NULL, O_MDNS},
        {"protocol", required_argument, NULL, O_PROTO},
        {"pcrs", required_argument, NULL, O_PCRS},
        {"live", no_argument, NULL, O_LIVE},
        {"no-live", no_argument, NULL, O_NOLIVE},
        {"no-escrow", no_argument, NULL, O_NOESCROW},
        {"help", no_argument, NULL, 'h'},
        APPLET_TPM_LONG_OPTIONS,
        {0},
    };
    struct applet_tpm_opts tpm = *t;
    struct g3_request g3 = {.base = {.c_index = TPM_DEFAULT_C_INDEX, .timeout_ms = 50000}, .escrow = true};
    struct g1_request rq = g3.base;
    _cleanup_secret_ struct secret *pass = NULL;
    int c, code, live = -1;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_SERVER: rq.server = optarg; break;
        case O_CERT: rq.certificate = optarg; break;
        case O_LABEL: rq.label = optarg; break;
        case O_NAME: rq.name = optarg; break;
        case O_UUID: rq.uuid = optarg; break;
        case O_MDNS: rq.mdns = true; break;
        case O_PROTO:
            if (parse_protocol("--protocol", optarg, &g3.protocol) < 0)
                return EXIT_USAGE;
            break;
        case O_PCRS:
            if (g3_parse_pcrs("--pcrs", optarg, &g3.pcr_mask) < 0)
                return EXIT_USAGE;
            break;
        case O_LIVE: live = 1; break;
        case O_NOLIVE: live = 0; break;
        case O_NOESCROW: g3.escrow = false; break;
        case O_CINDEX:
            if (parse_u32(optarg, UINT32_MAX, &rq.c_index) < 0) {
                log_error("--c-index %s: expected a number such as 0x81000008", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_TIMEOUT:
            if (applet_parse_seconds("--timeout", optarg, &rq.timeout_ms) < 0)
                return EXIT_USAGE;
            break;
        case 'h': return applet_usage(usage, EXIT_OK);
        case '?':
        case ':': log_error("%s: unknown option or missing value (see --help)", argv[optind - 1]); return EXIT_USAGE;
        default:
            if (!applet_tpm_option(c, optarg, &tpm, &code))
                return code;
        }
    }
    if (optind < argc) {
        log_error("get: unexpected argument %s", argv[optind]);
        return EXIT_USAGE;
    }
    if (!rq.server || !(rq.label || rq.name || rq.uuid)) {
        log_error("get: --challenger-server and one of --partition-label/-name/-uuid are required");
        return EXIT_USAGE;
    }
    rq.tpm_device = tpm.device;
    rq.tpm_timeout_ms = tpm.timeout_ms;
    g3.base = rq;
    g3.defer_pcr_enrollment = live < 0 ? g3_booted_live(NULL) : live == 1;
    if (g3_get_passphrase(&g3, &pass) < 0)
        return EXIT_RUNTIME;
    return fd_write_all(STDOUT_FILENO, pass->data, pass->len) < 0 ? EXIT_RUNTIME : EXIT_OK;
}

int discovery_challenger_main(int argc, char **argv)
{
    struct applet_tpm_opts o;
    int code;

    if (!applet_tpm_options(argc, argv, usage, &o, &code))
        return code;
    if (o.nargs == 0)
        return applet_print_tpm_hash(&o);
    if (!strcmp(o.args[0], "discovery.password")) {
        if (o.nargs > 1) {
            log_error("discovery.password: unexpected argument %s", o.args[1]);
            return EXIT_USAGE;
        }
        return plugin_mode(&o);
    }
    if (!strcmp(o.args[0], "get"))
        return get_command(o.nargs, o.args, &o);
    log_error("unknown command %s (see --help)", o.args[0]);
    return EXIT_USAGE;
}
