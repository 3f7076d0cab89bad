#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# The node side of lib/net against a malicious server (tests/hostile/net_attack.py server):
# endless empty lines, header lines, folded (obs-fold) lines, chunk trailers, tiny chunks and
# WebSocket fragments. The HTTP and WebSocket clients must fail cleanly, before their deadline,
# with bounded memory. Before the fix the endless trailer grew the client without limit.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/net_lib.sh"
[ -x "$NET_CLIENT" ] || bail "$NET_CLIENT is missing (built with the tests)"

# against MODE KIND: runs the malicious server in MODE and our client (KIND http or ws) with a
# 10 s deadline; sets rc, elapsed and peak (kB).
against() {
    local mode=$1 kind=$2 i port start
    rm -f "$T/evil.port"
    attack server "$mode" --port-file "$T/evil.port" --seconds 30 >"$T/evil-$mode.out" 2>&1 &
    local evil=$!
    for ((i = 0; i < 100; i++)); do [ -s "$T/evil.port" ] && break; sleep 0.1; done
    port=$(cat "$T/evil.port" 2>/dev/null) || bail "the malicious server ($mode) did not start"
    start=$(date +%s)
    if [ "$kind" = http ]; then
        "$NET_CLIENT" --timeout-ms 10000 http GET "http://127.0.0.1:$port/" >"$T/$mode.out" 2>"$T/$mode.err" &
    else
        "$NET_CLIENT" --timeout-ms 10000 ws "ws://127.0.0.1:$port/" recv >"$T/$mode.out" 2>"$T/$mode.err" &
    fi
    local client=$!
    peak=$(peak_while "$client")
    wait "$client"
    rc=$?
    elapsed=$(($(date +%s) - start))
    stop_pid "$evil" 2
    echo "# $mode ($kind): exit $rc after ${elapsed} s, peak ${peak} kB; $(tail -1 "$T/$mode.err")"
}

for m in blank:http headers:http fold:http chunked-trailer:http chunked-tiny:http blank:ws headers:ws \
    ws-fragments:ws; do
    mode=${m%%:*} kind=${m##*:}
    against "$mode" "$kind"
    check "$mode ($kind): the client fails" '[ "$rc" != 0 ] && [ "$rc" -lt 128 ]'
    check "$mode ($kind): within its 10 s deadline and a few seconds" '[ "$elapsed" -le 14 ]'
    check "$mode ($kind): peak memory under 200 MB" '[ "$peak" -lt "$MEM_LIMIT_KB" ]'
done
check "the endless trailer is refused as malformed, not waited out" \
    'grep "malformed chunked body" "$T/chunked-trailer.err" >/dev/null'
done_testing
