#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# loadgen.sh KAIROS_KMS [KMS_LOADGEN]: our KMS (challenger --db) under simulated G1 nodes, at
# 1, 64 and 1024 exchanges in flight. Prints kms-loadgen's JSON line for each; asserts nothing.
# 1024 nodes are registered; their keys are generated once (minutes on 2 cores) and cached under
# /var/cache/kairos-kms/loadgen (LOADGEN_SEED picks the nodes; the default is the test suite's).
set -euo pipefail
bin=$(readlink -f "$1")
lg=$(readlink -f "${2:-$(dirname "$bin")/bench/kms-loadgen}")
seed=${LOADGEN_SEED:-kairos-kms-loadgen-test}
nodes=1024
work=$(mktemp -d /tmp/kairos-kms-loadgen.XXXXXX)
kms=
cleanup() { [ -n "$kms" ] && { kill "$kms" 2>/dev/null; wait "$kms" 2>/dev/null; }; rm -rf "$work"; }
trap cleanup EXIT

"$lg" register --db "$work/db" --nodes "$nodes" --seed "$seed" 2>"$work/register.log" ||
    { cat "$work/register.log" >&2; exit 1; }
"$bin" challenger --db "$work/db" --listen 127.0.0.1:0 --port-file "$work/port" --audit-log /dev/null \
    2>"$work/kms.log" &
kms=$!
for _ in $(seq 300); do [ -s "$work/port" ] && break; sleep 0.02; done
url=http://127.0.0.1:$(cat "$work/port")

echo "kms-loadgen: $nodes simulated G1 nodes against challenger --db ($(nproc) CPUs, shared with the KMS)"
for c in 1 64 1024; do
    case $c in 1) m=256 ;; 64) m=2048 ;; *) m=4096 ;; esac
    printf 'concurrency %4d, %4d exchanges: ' "$c" "$m"
    "$lg" run --url "$url" --nodes "$nodes" --seed "$seed" --concurrency "$c" --exchanges "$m" --timeout 300 \
        2>"$work/run-$c.log" | tail -1 || true
done
