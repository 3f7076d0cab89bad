#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# kms_cpu.sh BINARY LOADGEN WORK PROTO EXCHANGES [STORE-ARGS...]: the CPU a one-process KMS
# (`challenger STORE-ARGS --workers 1`, default STORE-ARGS `--db WORK/cpu-PROTO`, registered by
# `kms-loadgen register` when missing) spends per G1 or G3 exchange of kms-loadgen (64 nodes,
# 8 in flight). The KMS is started, /readyz answered, then its CPU is read from /proc/PID right
# before and after the run: its start-up and store load are not counted. Prints one line,
#   ok RUN_US USER_US SYS_US
# µs per exchange: RUN from /proc/PID/schedstat (the scheduler's nanoseconds, exact), USER and
# SYS from /proc/PID/stat (clock ticks: a sample, +-1 tick over the run); or "fail SUMMARY"
# (exit 1) when an exchange failed. Environment:
#   KMS_CPU_NODES   nodes (default 64)          KMS_CPU_CONCURRENCY  in flight (default 8)
#   KMS_CPU_TLS     KMS flags, e.g. "--tls-cert F --tls-key F" (https)
#   KMS_CPU_LG      kms-loadgen run flags, e.g. "--tls-ca F --tls-resume"
#   KMS_CPU_OUT     a file that gets kms-loadgen's summary line
#   KMS_CPU_WRAP    a command run while the exchanges last, PID replaced by the KMS's
#                   ("strace -c -f -o F -p PID", "perf record -g -o F -p PID"); stopped by SIGINT
set -uo pipefail
bin=$1 lg=$2 work=$3 proto=$4 m=$5
shift 5
seed=${LOADGEN_SEED:-kairos-kms-loadgen-test}
. "$(dirname "$0")/kms.sh"
nodes=${KMS_CPU_NODES:-64}
store=("$@")
if [ $# -eq 0 ]; then
    store=(--db "$work/cpu-$proto")
    if [ ! -d "$work/cpu-$proto" ]; then
        att=()
        [ "$proto" = g3 ] && att=(--attestation pin)
        timeout 600 "$lg" register --db "$work/cpu-$proto" --nodes "$nodes" --seed "$seed" "${att[@]}" >/dev/null 2>&1
    fi
fi
read -ra tls <<<"${KMS_CPU_TLS:-}"
read -ra lgtls <<<"${KMS_CPU_LG:-}"
KMS_SCHEME=http
[ ${#tls[@]} -gt 0 ] && KMS_SCHEME=https
port=$work/cport.$$
wrap= kms=
trap '[ -n "$wrap" ] && kill -INT $wrap 2>/dev/null; [ -n "$kms" ] && kill $kms 2>/dev/null; wait 2>/dev/null; rm -f "$port"' EXIT
kms_start "$port" /dev/null 20 "${store[@]}" --audit-log /dev/null --workers 1 "${tls[@]}"
kms_ready "$url" "$kms"
if [ -n "${KMS_CPU_WRAP:-}" ]; then
    ${KMS_CPU_WRAP//PID/$kms} &
    wrap=$!
    sleep 1
fi
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$kms/stat")
read -r r0 _ <"/proc/$kms/schedstat"
out=$(timeout 300 "$lg" run --url "$url" "${lgtls[@]}" --protocol "$proto" --nodes "$nodes" --seed "$seed" \
    --concurrency "${KMS_CPU_CONCURRENCY:-8}" --exchanges "$m" --timeout 240 2>/dev/null | tail -1)
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$kms/stat")
read -r r1 _ <"/proc/$kms/schedstat"
if [ -n "$wrap" ]; then
    kill -INT "$wrap" 2>/dev/null
    wait "$wrap" 2>/dev/null
    wrap=
fi
[ -n "${KMS_CPU_OUT:-}" ] && printf '%s\n' "$out" >"$KMS_CPU_OUT"
case $out in
*"\"ok\":$m,"*) ;;
*) echo "fail $out"; exit 1 ;;
esac
awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v r=$((r1 - r0)) -v hz="$(getconf CLK_TCK)" -v m="$m" \
    'BEGIN { printf "ok %.0f %.0f %.0f\n", r / 1e3 / m, u * 1e6 / hz / m, s * 1e6 / hz / m }'
