#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# run.sh BINARY: prints how long the common operations take. Numbers only; nothing is asserted.
#   - start-up of the static binary (kairos-kms --list)
#   - tpm-hash against a swtpm with an EK certificate, and against one without (CreatePrimary)
#   - one node's whole G1 exchange with a local KMS (AK creation, credential activation,
#     passphrase), static key; the same over G3 (/tpm-attestation: AK, activation, PCR quote)
#   - the KMS's own CPU time per exchange, G1 and G3 (from /proc/PID/stat over 20 exchanges)
set -euo pipefail
bin=$(readlink -f "$1")
work=$(mktemp -d /tmp/kairos-kms-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT

start_swtpm() { # DIR KIND
    "$(dirname "$0")/../tests/lib/swtpm-manufacture.sh" "$1" "$2"
    swtpm socket --tpm2 --tpmstate dir="$1/state" --server type=unixio,path="$1/sock" \
        --ctrl type=unixio,path="$1/sock.ctrl" --flags not-need-init,startup-clear 2>/dev/null &
    pids+=($!)
    for _ in $(seq 500); do [ -S "$1/sock" ] && return; sleep 0.01; done
}

start_swtpm "$work/plain" plain
start_swtpm "$work/ek" ekcert

printf %s 'bench-static-passphrase' >"$work/pass"
"$bin" challenger register --db "$work/db" --tpm-hash "$("$bin" tpm-hash --tpm-device "$work/ek/sock")" \
    --label COS_PERSISTENT --passphrase-file "$work/pass" 2>/dev/null
# One worker: the CPU read from /proc below is that process's (the default is one per CPU).
"$bin" challenger --db "$work/db" --listen 127.0.0.1:0 --port-file "$work/port" --audit-log "$work/audit.jsonl" \
    --workers 1 2>/dev/null &
kms=$!
pids+=($kms)
for _ in $(seq 300); do [ -s "$work/port" ] && break; sleep 0.02; done

hyperfine --warmup 3 --runs 30 -N "$bin --list" \
    "$bin tpm-hash --tpm-device $work/ek/sock" \
    "$bin tpm-hash --tpm-device $work/plain/sock" \
    "$bin discovery-challenger --tpm-device $work/ek/sock get --partition-label COS_PERSISTENT --challenger-server http://127.0.0.1:$(cat "$work/port") --protocol g1" \
    "$bin discovery-challenger --tpm-device $work/ek/sock get --partition-label COS_PERSISTENT --challenger-server http://127.0.0.1:$(cat "$work/port") --protocol g3"

# The KMS's CPU (user + system) per exchange, read from /proc/PID/stat around 20 exchanges.
kms_ticks() { awk '{print $14 + $15}' "/proc/$kms/stat"; }
for proto in g1 g3; do
    before=$(kms_ticks)
    for _ in $(seq 20); do
        "$bin" discovery-challenger --tpm-device "$work/ek/sock" get --partition-label COS_PERSISTENT \
            --challenger-server "http://127.0.0.1:$(cat "$work/port")" --protocol "$proto" >/dev/null 2>&1
    done
    after=$(kms_ticks)
    awk -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" -v p="$proto" \
        'BEGIN { printf "KMS CPU per %s exchange: %.1f ms (20 exchanges, %d ticks of 1/%d s)\n", p, d * 1000 / hz / 20, d, hz }'
done

# Many nodes at once: our KMS under kms-loadgen (bench/loadgen.sh), when it was built.
lg=$(dirname "$bin")/bench/kms-loadgen
if [ -x "$lg" ]; then "$(dirname "$0")/loadgen.sh" "$bin" "$lg"; fi
