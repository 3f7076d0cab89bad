#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# run.sh BINARY: prints how long the common operations take. Numbers only; nothing is asserted.
#   - start-up of the static binary (kairos-kms --list)
#   - tpm-hash against a swtpm with an EK certificate, and against one without (CreatePrimary)
set -euo pipefail
bin=$(readlink -f "$1")
work=$(mktemp -d /tmp/kairos-kms-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT

start_swtpm() { # DIR KIND
    "$(dirname "$0")/../tests/lib/swtpm-manufacture.sh" "$1" "$2"
    swtpm socket --tpm2 --tpmstate dir="$1/state" --server type=unixio,path="$1/sock" \
        --ctrl type=unixio,path="$1/sock.ctrl" --flags not-need-init,startup-clear &
    pids+=($!)
    for _ in $(seq 500); do [ -S "$1/sock" ] && return; sleep 0.01; done
}

start_swtpm "$work/plain" plain
start_swtpm "$work/ek" ekcert

hyperfine --warmup 3 --runs 50 -N "$bin --list" \
    "$bin tpm-hash --tpm-device $work/ek/sock" \
    "$bin tpm-hash --tpm-device $work/plain/sock"
