#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# demo.sh BINARY: the main job on its embedded default. For now: manufacture a software TPM
# (swtpm with an EK certificate, as a real node has), then print its TPM hash with
# `kairos-kms tpm-hash`, the value an operator registers with the KMS.
set -euo pipefail
bin=$(readlink -f "$1")
work=$(mktemp -d /tmp/kairos-kms-demo.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && { swtpm_ioctl --unix "$work/tpm.sock.ctrl" -s 2>/dev/null || kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
    rm -rf "$work"
}
trap cleanup EXIT

echo "== manufacturing a software TPM with an EK certificate in $work"
"$(dirname "$0")/lib/swtpm-manufacture.sh" "$work" ekcert

swtpm socket --tpm2 --tpmstate dir="$work/state" --server type=unixio,path="$work/tpm.sock" \
    --ctrl type=unixio,path="$work/tpm.sock.ctrl" --flags not-need-init,startup-clear &
pid=$!
for _ in $(seq 500); do [ -S "$work/tpm.sock" ] && break; sleep 0.01; done

echo "== kairos-kms tpm-hash --tpm-device $work/tpm.sock"
hash=$("$bin" tpm-hash --tpm-device "$work/tpm.sock")
echo "TPM hash: $hash"
echo "== register it with the KMS as a SealedVolume's spec.TPMHash (the KMS comes in a later version)"
