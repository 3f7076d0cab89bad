#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Bad input against a running server: each misbehaving client is answered or dropped at its
# limit or deadline, and the server keeps serving normal clients throughout.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/lib.sh"

start_server srv --request-timeout-ms 1500 --idle-ms 1500 --linger-ms 500 --max-conns 80

healthy() {
    client --timeout-ms 3000 http GET "http://127.0.0.1:$PORT/healthz" >"$T/healthy.txt" 2>&1
    grep -q "status 200" "$T/healthy.txt" || { diag <"$T/healthy.txt"; return 1; }
}

probe_is() { # probe_is KIND EXPECTED DESCRIPTION
    local kind=$1 want=$2 out
    out=$(peer probe "$PORT" "$kind" 2>&1)
    echo "$out" | diag
    check "$3 ($want)" '[[ "$out" == "$kind $want "* ]]'
}
probe_is bad-request-line "status 400" "malformed request line"
probe_is bad-version "status 505" "HTTP/3.0"
probe_is huge-header "status 431" "a 40 KB header line"
probe_is many-headers "status 431" "100 headers"
probe_is huge-body "status 413" "Content-Length over the body limit, refused before the body"
probe_is chunked-upload "status 411" "chunked upload"
probe_is wrong-method "status 405" "wrong method"
probe_is bad-key "status 400" "bad Sec-WebSocket-Key"
probe_is no-upgrade "status 426" "GET on a WebSocket route without Upgrade"
probe_is bad-ws-version "status 426" "Sec-WebSocket-Version 8"
probe_is cross-origin "status 403" "Origin naming another host"
probe_is unmasked "close 1002" "unmasked client frame"
probe_is oversized-frame "close 1009" "a frame header announcing 2 MiB (closed before the payload)"
probe_is oversized-fragments "close 1009" "fragments adding up over 1 MiB"
probe_is wrong-opcode "close 1002" "reserved opcode 3"
probe_is bad-utf8 "close 1007" "invalid UTF-8 in a text message"
out=$(peer probe "$PORT" stall-handshake 2>&1)
check "a client stalling mid-handshake gets 408 at the request deadline ($out)" \
    '[[ "$out" == "stall-handshake status 408 after 1."* ]]'
out=$(peer probe "$PORT" stall-message 2>&1)
check "a client stalling mid-message is closed at the idle deadline ($out)" \
    '[[ "$out" == "stall-message close 1001 after 1."* ]]'
check "the server still serves after the probes" healthy

# 50 clients trickling requests one byte every 200 ms; a normal client is served meanwhile.
peer slow "$PORT" 50 8 >"$T/slow.txt" 2>&1 &
slow=$!
sleep 0.8
start=$(date +%s%N)
healthy
rc=$?
elapsed=$((($(date +%s%N) - start) / 1000000))
check "a normal client is served while 50 slow clients are connected (${elapsed} ms)" '[ $rc = 0 ] && [ $elapsed -lt 1000 ]'
wait $slow
diag <"$T/slow.txt"
check "all 50 slow clients were dropped at the request deadline" 'has "$T/slow.txt" "slow 50 dropped 50"'
check "the server still serves after the slow clients" healthy
sleep 1
nfd=$(ls "/proc/$SERVER_REAL_PID/fd" 2>/dev/null | wc -l)
check "every dropped connection was released ($nfd descriptors open)" '[ "$nfd" -gt 0 ] && [ "$nfd" -lt 20 ]'

# connection limit
start_server lim --debug --max-conns 5 --request-timeout-ms 1500 --linger-ms 200
peer slow "$PORT" 5 3 >"$T/slow5.txt" 2>&1 &
slow=$!
sleep 0.5
client --timeout-ms 3000 http GET "http://127.0.0.1:$PORT/healthz" >"$T/busy.txt" 2>&1
check "over the connection limit: 503" 'has "$T/busy.txt" "status 503"'
wait $slow
sleep 0.5
check "below the limit again: served" healthy
stop_server lim
sanitizers_clean
done_testing
