#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# loadgen.sh KAIROS_KMS [KMS_LOADGEN [g1|g3 ...]]: our KMS (`challenger --db --workers 2`) under
# 1024 simulated nodes, at 1, 64 and 1024 exchanges in flight, for each protocol given (default
# g1 and g3). Prints a line per run ("g1 c=64 exchanges=1024 {kms-loadgen's JSON}") and asserts
# nothing. G3 nodes are registered with their EK and PCRs pinned (register --attestation pin),
# so the KMS writes nothing during the runs. The per-address limit is raised to the connection limit (1024): the
# loadgen is one address, and what is measured is the KMS, not that limit.
# The nodes' keys are generated once (minutes on 2 cores) and cached under
# /var/cache/kairos-kms/loadgen (LOADGEN_SEED picks the nodes; the default is the test suite's).
# Every run is bounded (--timeout 300); LOADGEN_LEVELS overrides "1 64 1024".
set -euo pipefail
bin=$(readlink -f "$1")
lg=$(readlink -f "${2:-$(dirname "$bin")/bench/kms-loadgen}")
shift $(($# < 2 ? $# : 2))
if [ $# -gt 0 ]; then protocols=("$@"); else protocols=(g1 g3); fi
seed=${LOADGEN_SEED:-kairos-kms-loadgen-test}
. "$(dirname "$0")/kms.sh"
nodes=1024
work=$(mktemp -d /tmp/kairos-kms-loadgen.XXXXXX)
kms=
cleanup() {
    [ -n "$kms" ] && { kill "$kms" 2>/dev/null; wait "$kms" 2>/dev/null; }
    rm -rf "$work"
}
trap cleanup EXIT

for proto in "${protocols[@]}"; do
    att=none
    [ "$proto" = g3 ] && att=pin
    timeout 1500 "$lg" register --db "$work/db-$proto" --nodes "$nodes" --seed "$seed" --attestation "$att" \
        2>"$work/register.log" || { cat "$work/register.log" >&2; exit 1; }
    kms_start "$work/port" "$work/kms.log" 6 --db "$work/db-$proto" --audit-log /dev/null --workers 2 \
        --max-conns-per-peer 1024
    for c in ${LOADGEN_LEVELS:-1 64 1024}; do
        case $c in 1) m=200 ;; 64) m=1024 ;; *) m=2048 ;; esac
        out=$("$lg" run --url "$url" --protocol "$proto" --nodes "$nodes" --seed "$seed" --concurrency "$c" \
            --exchanges "$m" --timeout 300 2>"$work/run-$c.log" | tail -1) || true
        echo "$proto c=$c exchanges=$m ${out:-"{\"error\":\"no summary: $(tail -1 "$work/run-$c.log")\"}"}"
    done
    kill "$kms" 2>/dev/null
    wait "$kms" 2>/dev/null || true
    kms=
done
