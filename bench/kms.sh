# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# bench/kms.sh, sourced by bench/run.sh, bench/kms_cpu.sh and bench/loadgen.sh: the KMS under
# measurement, started the same way everywhere. Needs $bin (the kairos-kms binary).
#   kms_start PORTFILE LOG SECONDS [CHALLENGER-ARGS...]
#       starts `$bin challenger CHALLENGER-ARGS --listen 127.0.0.1:0 --port-file PORTFILE` in the
#       background, its stderr to LOG; waits until PORTFILE is written (SECONDS at most, less when
#       the process dies); sets kms (its PID) and url (${KMS_SCHEME:-http}://127.0.0.1:PORT, the
#       port empty when it did not listen).
#   kms_ready URL PID
#       /readyz answers 200 (a KMS over etcd listens before its store is loaded): 0 within 120 s,
#       1 when PID died or the time ran out.
kms_start() {
    local port=$1 log=$2 secs=$3
    shift 3
    rm -f "$port"
    "$bin" challenger "$@" --listen 127.0.0.1:0 --port-file "$port" >/dev/null 2>"$log" &
    kms=$!
    for _ in $(seq $((secs * 50))); do
        [ -s "$port" ] && break
        kill -0 "$kms" 2>/dev/null || break
        sleep 0.02
    done
    url=${KMS_SCHEME:-http}://127.0.0.1:$(cat "$port" 2>/dev/null)
}

kms_ready() {
    for _ in $(seq 600); do
        [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$1/readyz" 2>/dev/null)" = 200 ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}
