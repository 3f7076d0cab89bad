# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Shared by the net suite: sourced after tests/lib/common.sh by test_*.sh, which get the test
# server and client programs as $1 and $2. Everything runs on 127.0.0.1 with hard time limits.
NET_SERVER=$(readlink -f "$1")
NET_CLIENT=$(readlink -f "$2")
NET_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
# Under the sanitizers, undefined behaviour must fail the test, not just print.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
require timeout "$PYTHON"
[ -x "$NET_SERVER" ] && [ -x "$NET_CLIENT" ] || bail "usage: $0 NET_ECHO_SERVER NET_CLIENT"

# peer ARGS...: the independent Python peer, bounded.
peer() { timeout -k 2 60 "$PYTHON" "$NET_DIR/ws_peer.py" "$@"; }
# client ARGS...: our client program, bounded.
client() { timeout -k 2 30 "$NET_CLIENT" "$@"; }

# wait_port FILE PIDVAR: waits (10 s at most) for "PORT n" in FILE; prints n.
wait_port() {
    local file=$1 i
    for ((i = 0; i < 100; i++)); do
        if grep -q '^PORT ' "$file" 2>/dev/null; then
            awk '/^PORT /{print $2; exit}' "$file"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# start_server NAME ARGS...: runs the test server with ARGS, sets PORT, SERVER_PID (of its
# timeout wrapper: wait for this one) and SERVER_REAL_PID (signal this one: timeout would pass a
# signal on to its whole process group, which includes LeakSanitizer's tracer at exit, and
# that hangs the sanitizer); logs to $T/NAME.out and $T/NAME.err; killed at exit.
start_server() {
    local name=$1
    shift
    timeout -k 20 300 "$NET_SERVER" "$@" >"$T/$name.out" 2>"$T/$name.err" &
    SERVER_PID=$!
    on_exit "kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null"
    PORT=$(wait_port "$T/$name.out") || { diag <"$T/$name.err"; bail "the test server did not start"; }
    SERVER_REAL_PID=$(awk '/^PID /{print $2; exit}' "$T/$name.out")
}

# start_peer_server NAME ARGS...: the Python server; sets PEER_PORT.
start_peer_server() {
    local name=$1
    shift
    timeout -k 2 120 "$PYTHON" "$NET_DIR/ws_peer.py" "$@" >"$T/$name.out" 2>"$T/$name.err" &
    local pid=$!
    on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    PEER_PORT=$(wait_port "$T/$name.out") || { diag <"$T/$name.err"; bail "the Python peer did not start"; }
}

# has FILE TEXT: FILE has a line containing TEXT (fixed string).
has() { grep -qF -- "$2" "$1"; }

# stop_server NAME: SIGTERM to the server started as NAME (graceful drain), then its exit status
# must be 0 (under ASan that includes "no leaks").
stop_server() {
    local name=$1 rc start=$(date +%s%N) ms
    kill -TERM "$SERVER_REAL_PID" 2>/dev/null
    wait "$SERVER_PID"
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    check "server $name drained and exited 0 in $ms ms (no leaks under ASan; status $rc)" \
        '[ $rc = 0 ] && has "$T/$name.out" drained'
}

# sanitizers_clean: no sanitizer report in anything the test's programs printed.
sanitizers_clean() {
    check "no sanitizer reports" '! grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T"/*.txt "$T"/*.err "$T"/*.out 2>/dev/null'
}
