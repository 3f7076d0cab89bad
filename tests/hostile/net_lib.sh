# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Shared by the hostile_net tests (sourced after tests/lib/common.sh): the attacker program
# (tests/hostile/net_attack.py), memory readings, and a good client probing while a flood runs.
# The attacker binds 127.0.0.2, the good client 127.0.0.1; both connect to the KMS on 127.0.0.1.
require python3 timeout
HOSTILE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NET_CLIENT=$(dirname "$(readlink -f "$KAIROS_KMS")")/tests/net_client
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# Under ASan, freed memory waits in a quarantine (256 MB by default) that would count as the
# KMS's own; a small one keeps the memory checks about the program.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16
MEM_LIMIT_KB=$((200 * 1024))

# attack MODE ARGS...: the attacker, bounded to 60 s.
attack() { timeout -k 2 60 python3 "$HOSTILE_DIR/net_attack.py" "$@"; }

# mem_kb PID FIELD: VmHWM (peak) or VmRSS of PID in kB (0 when it is gone).
mem_kb() { awk -v f="$2:" '$1 == f {print $2; found=1} END {if (!found) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }

# probe_while PID OUT: while PID runs (60 s at most), a GET /healthz from 127.0.0.1 every 0.5 s;
# one line per probe into OUT ("status 200 ms 12", "error ..." or "no answer ...").
probe_while() {
    local pid=$1 out=$2 i
    : >"$out"
    for ((i = 0; i < 120; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        attack probe 127.0.0.1 "$KMS_PORT" --src 127.0.0.1 --timeout 3 >>"$out" 2>&1 || true
        sleep 0.5
    done
}

# probes_ok OUT: at least one probe ran, and every probe got an HTTP answer within 3 s.
probes_ok() { [ -s "$1" ] && ! grep -v '^status ' "$1" >/dev/null; }

# peak_while PID: the highest VmHWM of PID seen until it exits (60 s at most), in kB.
peak_while() {
    local pid=$1 peak=0 m i
    for ((i = 0; i < 600; i++)); do
        m=$(mem_kb "$pid" VmHWM)
        [ "${m:-0}" -gt "$peak" ] && peak=$m
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$peak"
}
