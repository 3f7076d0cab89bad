/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* mdns-responder (also simple-mdns-server): announce the KMS on the LAN as _kcrypt._tcp, with the
 * flags and answers of kairos-io/simple-mdns-server (docs/upstream.md §7.2), as a daemon. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "applets.h"
#include "base.h"
#include "mdns.h"

static const char usage[] =
    "Usage: mdns-responder --hostName NAME --port PORT (--interfaceName IF | --address ADDR)...\n"
    "                      [--serviceType TYPE] [--instance NAME] [--txt STRING]... [--debug]\n"
    "\n"
    "Announce the KMS over multicast DNS so that nodes configured with\n"
    "kcrypt.challenger.mdns: true and challenger_server: http://NAME:PORT find it on the LAN.\n"
    "Flags and answers are those of kairos-io/simple-mdns-server (single-dash -flag and\n"
    "-flag=value work too): a query for the service gets, in one response, its PTR, the SRV\n"
    "(target NAME, port PORT), a TXT and NAME's A records; the instance, NAME itself and\n"
    "_services._dns-sd._udp.local are answered too. Queries are answered by multicast (QM), by\n"
    "unicast (QU), or for a querier on another port than 5353 (upstream's nodes) by a legacy\n"
    "unicast reply with its id and TTL 10. It runs until SIGTERM or SIGINT, then says goodbye\n"
    "(TTL 0); standard input is not read. SIGHUP announces again.\n"
    "\n"
    "  --hostName NAME        the KMS's name, as nodes write it in challenger_server (kms.local);\n"
    "                         the SRV target and owner of the A records. Required\n"
    "  --port PORT            the port the KMS listens on. Required\n"
    "  --interfaceName IF     serve on IF and answer with its IPv4 addresses; repeat for several\n"
    "  --address ADDR         announce this IPv4 (or IPv6) address instead; repeatable. With no\n"
    "                         --interfaceName, every interface that does multicast is served\n"
    "  --serviceType TYPE     the service (default " MDNS_SERVICE ", what nodes look for)\n"
    "  --instance NAME        the instance name (default: this machine's host name, as upstream)\n"
    "  --txt STRING           a TXT string; repeatable (default \"An instance of TYPE\")\n"
    "  --debug                log every query answered\n"
    "  --help                 this text\n"
    "\n"
    "Example, next to the KMS on the machine that serves it:\n"
    "  kairos-kms challenger --db /var/lib/kairos-kms --listen 0.0.0.0:30000 &\n"
    "  kairos-kms mdns-responder --hostName kms.local --port 30000 --interfaceName eth0 &\n"
    "and in the nodes' Kairos config:\n"
    "  kcrypt: {challenger: {challenger_server: \"http://kms.local:30000\", mdns: true}}\n"
    "Exit codes: 0 stopped by a signal, 1 cannot serve (no such interface, port 5353 busy), 2 bad usage.\n";

#define MAX_REPEAT 16

/* SIGHUP: look at the interfaces again and announce anew; SIGTERM, SIGINT: goodbye, then exit. */
static void on_signal(struct net_loop *loop, int signo, void *data)
{
    if (signo == SIGHUP)
        mdns_responder_reload(data);
    else
        net_loop_quit(loop);
}

/* What the options fill in. */
struct opts {
    struct mdns_responder_config c;
    const char *ifaces[MAX_REPEAT], *addrs[MAX_REPEAT], *txt[MAX_REPEAT];
    uint32_t port;
};

#define O(field) offsetof(struct opts, field)
static const struct applet_opt options[] = {
    {.name = "hostName", .type = APPLET_STRING, .off = O(c.host)},
    {.name = "port",
     .type = APPLET_U32,
     .off = O(port),
     .min = 1,
     .max = 65535,
     .what = "a port number from 1 to 65535"},
    {.name = "interfaceName", .type = APPLET_LIST, .off = O(ifaces), .count_off = O(c.n_interfaces), .max = MAX_REPEAT},
    {.name = "address", .type = APPLET_LIST, .off = O(addrs), .count_off = O(c.n_addresses), .max = MAX_REPEAT},
    {.name = "serviceType", .type = APPLET_STRING, .off = O(c.service)},
    {.name = "instance", .type = APPLET_STRING, .off = O(c.instance)},
    {.name = "txt", .type = APPLET_LIST, .off = O(txt), .count_off = O(c.n_txt), .max = MAX_REPEAT},
    {.name = "debug", .type = APPLET_ACTION, .call = applet_opt_debug},
};
#undef O

int mdns_responder_main(int argc, char **argv)
{
    /* long_only: Go's flag package, which upstream uses, takes -port as well as --port. */
    const struct applet_cmd cmd = {.usage = usage, .opts = options, .n_opts = APPLET_N(options), .long_only = true};
    struct opts o = {.c = {.service = MDNS_SERVICE}};
    struct mdns_responder_config c;
    struct net_loop *loop = NULL;
    struct mdns_responder *r = NULL;
    struct mdns_name check;
    char **args;
    int nargs, k;

    if (!applet_parse(&cmd, argc, argv, &o, &args, &nargs, &k))
        return k;
    if (!applet_check_args(NULL, args, nargs, 0, 0, NULL))
        return EXIT_USAGE;
    c = o.c;
    c.interfaces = o.ifaces;
    c.addresses = o.addrs;
    c.txt = o.txt;
    if (!c.host) {
        log_error("--hostName is required (the name nodes use, e.g. kms.local)");
        return EXIT_USAGE;
    }
    if (mdns_name_parse(c.host, &check) < 0 || check.len <= 1) {
        log_error("--hostName %s: not a valid host name", c.host);
        return EXIT_USAGE;
    }
    if (!o.port) {
        log_error("--port is required (the port the KMS listens on)");
        return EXIT_USAGE;
    }
    if (!c.n_interfaces && !c.n_addresses) {
        log_error("one of --interfaceName or --address is required");
        return EXIT_USAGE;
    }
    if (mdns_name_parse(c.service, &check) < 0 || check.len <= 1) {
        log_error("--serviceType %s: not a valid service type such as _kcrypt._tcp", c.service);
        return EXIT_USAGE;
    }
    if (c.instance && (!c.instance[0] || strlen(c.instance) > MDNS_MAX_LABEL)) {
        log_error("--instance %s: must be 1 to %d bytes", c.instance, MDNS_MAX_LABEL);
        return EXIT_USAGE;
    }
    if (!mdns_host_is_local(c.host))
        log_warn("--hostName %s does not end in .local: nodes only look up .local names over mDNS", c.host);
    c.port = (uint16_t)o.port;
    if (net_loop_new(&loop) < 0)
        return EXIT_RUNTIME;
    if (mdns_responder_new(loop, &c, &r) < 0 || net_loop_on_signal(loop, SIGTERM, on_signal, r) < 0 ||
        net_loop_on_signal(loop, SIGINT, on_signal, r) < 0 || net_loop_on_signal(loop, SIGHUP, on_signal, r) < 0) {
        mdns_responder_free(r);
        net_loop_free(loop);
        return EXIT_RUNTIME;
    }
    k = net_loop_run(loop);
    mdns_responder_goodbye(r);
    log_info("stopping");
    mdns_responder_free(r);
    net_loop_free(loop);
    return k < 0 ? EXIT_RUNTIME : EXIT_OK;
}
