/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* discovery-challenger: the node side of the KMS (docs/upstream.md §5). With no command it prints
 * the TPM hash; `discovery.password` is the kcrypt plugin; `get` runs the same flow for scripts. */
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

/* What the options of `get` fill in. */
struct get_opts {
    struct g1_request rq;
    struct g3_request g3;
    struct applet_tpm_opts tpm;
    int live; /* -1: detected from /proc/cmdline */
    bool no_escrow;
};

/* --live, --no-live: the last one given counts. */
static int opt_live(void *target, const char *flag, const char *v)
{
    (void)v;
    ((struct get_opts *)target)->live = !strcmp(flag, "--live");
    return 0;
}

static int opt_protocol(void *target, const char *flag, const char *v)
{
    return parse_protocol(flag, v, &((struct get_opts *)target)->g3.protocol) < 0 ? EXIT_USAGE : 0;
}

static int opt_pcrs(void *target, const char *flag, const char *v)
{
    return g3_parse_pcrs(flag, v, &((struct get_opts *)target)->g3.pcr_mask) < 0 ? EXIT_USAGE : 0;
}

#define O(field) offsetof(struct get_opts, field)
static const struct applet_opt get_options[] = {
    {.name = "challenger-server", .type = APPLET_STRING, .off = O(rq.server)},
    {.name = "certificate", .type = APPLET_STRING, .off = O(rq.certificate)},
    {.name = "partition-label", .type = APPLET_STRING, .off = O(rq.label)},
    {.name = "partition-name", .type = APPLET_STRING, .off = O(rq.name)},
    {.name = "partition-uuid", .type = APPLET_STRING, .off = O(rq.uuid)},
    {.name = "c-index",
     .type = APPLET_U32,
     .off = O(rq.c_index),
     .max = UINT32_MAX,
     .what = "a number such as 0x81000008"},
    {.name = "timeout", .type = APPLET_SECONDS, .off = O(rq.timeout_ms)},
    {.name = "mdns", .type = APPLET_FLAG, .off = O(rq.mdns)},
    {.name = "protocol", .type = APPLET_CALL, .call = opt_protocol},
    {.name = "pcrs", .type = APPLET_CALL, .call = opt_pcrs},
    {.name = "live", .type = APPLET_ACTION, .call = opt_live},
    {.name = "no-live", .type = APPLET_ACTION, .call = opt_live},
    {.name = "no-escrow", .type = APPLET_FLAG, .off = O(no_escrow)},
    APPLET_TPM_OPTIONS(O(tpm)),
};
#undef O

static int get_command(int argc, char **argv, const struct applet_tpm_opts *t)
{
    const struct applet_cmd cmd = {
        .prefix = "get", .usage = usage, .opts = get_options, .n_opts = APPLET_N(get_options)};
    struct get_opts o = {.rq = {.c_index = TPM_DEFAULT_C_INDEX, .timeout_ms = 50000}, .tpm = *t, .live = -1};
    _cleanup_secret_ struct secret *pass = NULL;
    char **args;
    int nargs, code;

    if (!applet_parse(&cmd, argc, argv, &o, &args, &nargs, &code))
        return code;
    if (!applet_check_args("get", args, nargs, 0, 0, NULL))
        return EXIT_USAGE;
    if (!o.rq.server || !(o.rq.label || o.rq.name || o.rq.uuid)) {
        log_error("get: --challenger-server and one of --partition-label/-name/-uuid are required");
        return EXIT_USAGE;
    }
    o.rq.tpm_device = o.tpm.device;
    o.rq.tpm_timeout_ms = o.tpm.timeout_ms;
    o.g3.base = o.rq;
    o.g3.escrow = !o.no_escrow;
    o.g3.defer_pcr_enrollment = o.live < 0 ? g3_booted_live(NULL) : o.live == 1;
    if (g3_get_passphrase(&o.g3, &pass) < 0)
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
        if (!applet_check_args(o.args[0], o.args + 1, o.nargs - 1, 0, 0, NULL))
            return EXIT_USAGE;
        return plugin_mode(&o);
    }
    if (!strcmp(o.args[0], "get"))
        return get_command(o.nargs, o.args, &o);
    log_error("unknown command %s (see --help)", o.args[0]);
    return EXIT_USAGE;
}
