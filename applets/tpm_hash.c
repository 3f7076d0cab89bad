/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* tpm-hash: print the node's TPM hash, the identity an operator registers with the KMS. */
#include <stdio.h>
#include <string.h>

#include "applets.h"
#include "base.h"

static const char usage[] =
    "Usage: tpm-hash [--tpm-device PATH] [--tpm-timeout SECONDS] [--debug]\n"
    "\n"
    "Print this node's TPM hash: 64 lowercase hex characters, no newline. It is the SHA-256 of the\n"
    "TPM's RSA endorsement key (DER SubjectPublicKeyInfo), the same value upstream Kairos'\n"
    "kcrypt-discovery-challenger prints, and what a SealedVolume's spec.TPMHash holds.\n"
    "\n"
    "  --tpm-device PATH      the TPM: a character device (/dev/tpmrm0), a swtpm unix socket, or\n"
    "                         a TCTI string (swtpm:path=SOCK, swtpm:host=H,port=P,\n"
    "                         mssim:host=H,port=P, device:PATH). Default: /dev/tpmrm0, then /dev/tpm0\n"
    "  --tpm-timeout SECONDS  give up on a TPM command after this long (default 120)\n"
    "  --debug                say more on stderr\n"
    "  --help                 this text\n"
    "\n"
    "Example (on a LiveCD, to register the node):  tpm-hash > node.tpmhash\n";

int tpm_hash_main(int argc, char **argv)
{
    struct applet_tpm_opts o;
    int code;

    if (!applet_tpm_options(argc, argv, usage, &o, &code))
        return code;
    if (!applet_check_args(NULL, o.args, o.nargs, 0, 0, NULL))
        return EXIT_USAGE;
    return applet_print_tpm_hash(&o);
}
