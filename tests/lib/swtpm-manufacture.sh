#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# swtpm-manufacture.sh DIR [ekcert|plain]: makes a TPM state in DIR/state, like a new node's TPM.
#   ekcert: RSA-2048 and ECC EKs with certificates from a private local CA (DIR/ca), via
#           swtpm_setup with a private config and TMPDIR, so nothing is written to /var/lib
#           (docs/testing.md §3.2);
#   plain:  a manufactured TPM with no EK and no certificate (its seeds fixed, so every copy of the
#           state is the same node).
set -euo pipefail
d=$1 kind=${2:-ekcert}
mkdir -p "$d/state" "$d/ca" "$d/tmp"
case $kind in
plain)
    TMPDIR=$d/tmp timeout 60 swtpm_setup --tpm2 --tpmstate "dir://$d/state" --config /dev/null --overwrite \
        >"$d/setup.log" 2>&1 || { cat "$d/setup.log" >&2; exit 1; }
    exit 0 ;;
ekcert) ;;
*) echo "swtpm-manufacture: unknown kind $kind" >&2; exit 2 ;;
esac
cat >"$d/ca/swtpm_setup.conf" <<EOC
create_certs_tool= /usr/bin/swtpm_localca
create_certs_tool_config = $d/ca/swtpm-localca.conf
create_certs_tool_options = $d/ca/swtpm-localca.options
active_pcr_banks = sha256
EOC
cat >"$d/ca/swtpm-localca.conf" <<EOC
statedir = $d/ca
signingkey = $d/ca/signkey.pem
issuercert = $d/ca/issuercert.pem
certserial = $d/ca/certserial
EOC
printf -- '--platform-manufacturer kairos-kms\n--platform-version 2.1\n--platform-model swtpm\n' \
    >"$d/ca/swtpm-localca.options"
TMPDIR=$d/tmp timeout 60 swtpm_setup --tpm2 --tpmstate "dir://$d/state" --config "$d/ca/swtpm_setup.conf" \
    --create-ek-cert --overwrite --write-ek-cert-files "$d/state" >"$d/setup.log" 2>&1 ||
    { cat "$d/setup.log" >&2; exit 1; }
