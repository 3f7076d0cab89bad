# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# bench/etcd.sh, sourced by bench/run.sh: a 3-member etcd cluster on 127.0.0.1 for the benchmarks
# (the layout of tests/lib/etcd.sh without its TAP harness): Debian's etcd-server binary run
# directly, ports the kernel hands out, data under DIR, 50 ms heartbeats, no fsync (the benches
# measure the KMS, not the disk). Members are tracked by PID and killed by PID.
#   bench_etcd_start DIR   starts the members; sets BENCH_ETCD_ENDPOINTS (comma list) and
#                          BENCH_ETCD_PIDS; returns 1 (members stopped) when no member answers
#                          /health within 30 s
#   bench_etcd_stop        SIGTERM each member, then SIGKILL after 5 s
BENCH_ETCD_PIDS=()
BENCH_ETCD_ENDPOINTS=

bench_etcd_start() {
    local dir=$1 ports cluster="" i ok token=kkms-bench-$$-$RANDOM
    ports=($(python3 -c 'import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'))
    [ "${#ports[@]}" = 6 ] || return 1
    BENCH_ETCD_ENDPOINTS=
    for i in 0 1 2; do
        cluster+="${cluster:+,}n$i=http://127.0.0.1:${ports[i + 3]}"
        BENCH_ETCD_ENDPOINTS+="${BENCH_ETCD_ENDPOINTS:+,}http://127.0.0.1:${ports[i]}"
    done
    mkdir -p "$dir"
    for i in 0 1 2; do
        etcd --name "n$i" --data-dir "$dir/n$i" \
            --listen-client-urls "http://127.0.0.1:${ports[i]}" --advertise-client-urls "http://127.0.0.1:${ports[i]}" \
            --listen-peer-urls "http://127.0.0.1:${ports[i + 3]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${ports[i + 3]}" \
            --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$token" \
            --heartbeat-interval 50 --election-timeout 500 --unsafe-no-fsync --logger zap >>"$dir/n$i.log" 2>&1 &
        BENCH_ETCD_PIDS+=($!)
    done
    # Healthy: every member answers /health with "true" (it has a leader).
    local until=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$until" ]; do
        ok=0
        for i in 0 1 2; do
            curl -s --max-time 1 "http://127.0.0.1:${ports[i]}/health" 2>/dev/null | grep -q '"health":"true"' &&
                ok=$((ok + 1))
        done
        [ "$ok" = 3 ] && return 0
        sleep 0.3
    done
    bench_etcd_stop
    return 1
}

bench_etcd_stop() {
    local p
    for p in "${BENCH_ETCD_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${BENCH_ETCD_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    BENCH_ETCD_PIDS=()
}
