/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* discovery-challenger: the node side of the KMS. With no argument it prints the TPM hash, as
 * upstream's kcrypt-discovery-challenger does (UPSTREAM.md §4.1, §4.2). The discovery.password
 * plugin mode and `get` come with the online mode. */
#include <stdio.h>
#include <string.h>

#include "applets.h"
#include "base.h"

static const char usage[] =
    "Usage: kcrypt-discovery-challenger [--tpm-device PATH] [--tpm-timeout SECONDS] [--debug]\n"
    "       kcrypt-discovery-challenger discovery.password   (plugin mode: not built yet)\n"
    "       kcrypt-discovery-challenger get ...              (not built yet)\n"
    "\n"
    "With no command, print this node's TPM hash (64 lowercase hex, no newline), exactly as\n"
    "upstream Kairos does; register it with the KMS.\n"
    "\n"
    "  --tpm-device PATH      a TPM device, a swtpm socket or a TCTI string (see tpm-hash --help);\n"
    "                         default /dev/tpmrm0, then /dev/tpm0\n"
    "  --tpm-timeout SECONDS  give up on a TPM command after this long (default 120)\n"
    "  --debug                say more on stderr\n"
    "  --help                 this text\n"
    "\n"
    "Example: kcrypt-discovery-challenger --tpm-device /dev/tpmrm0\n";

int discovery_challenger_main(int argc, char **argv)
{
    struct applet_tpm_opts o;
    int code;

    if (!applet_tpm_options(argc, argv, usage, &o, &code))
        return code;
    if (o.nargs > 0) {
        if (!strcmp(o.args[0], "discovery.password") || !strcmp(o.args[0], "get"))
            log_error("%s: not built yet in this version (the online mode comes next)", o.args[0]);
        else
            log_error("unknown command %s (see --help)", o.args[0]);
        return EXIT_USAGE;
    }
    return applet_print_tpm_hash(&o);
}
