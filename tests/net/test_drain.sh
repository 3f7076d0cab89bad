#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# SIGTERM drain: the listener closes at once, idle connections go, an open exchange finishes,
# and whatever is still open at the drain deadline is closed; then the server exits 0.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/lib.sh"

start_server d1 --drain-ms 4000 --answer-ms 20000
peer client "$PORT" getpass-late >"$T/late.txt" 2>&1 &
late=$!
exec 7<>"/dev/tcp/127.0.0.1/$PORT" # an idle keep-alive connection
sleep 0.5
kill -TERM "$SERVER_REAL_PID"
sleep 0.3
client --connect-timeout-ms 1000 http GET "http://127.0.0.1:$PORT/healthz" >"$T/after.txt" 2>"$T/after.err"
check "after SIGTERM, new connections are refused" 'has "$T/after.err" "Connection refused"'
check "the idle connection was closed at once" 'timeout 2 cat <&7 >/dev/null'
exec 7<&-
wait $late
diag <"$T/late.txt"
check "the exchange in flight finished during the drain" 'has "$T/late.txt" "result binary {\"passphrase\":\"pass-LATE\""'
wait "$SERVER_PID"
rc=$?
check "then the server said drained and exited 0" '[ $rc = 0 ] && has "$T/d1.out" drained'

start_server d2 --drain-ms 1000 --answer-ms 20000
peer client "$PORT" getpass-silent >"$T/silent.txt" 2>&1 &
silent=$!
sleep 0.5
start=$(date +%s%N)
kill -TERM "$SERVER_REAL_PID"
wait "$SERVER_PID"
rc=$?
elapsed=$((($(date +%s%N) - start) / 1000000))
wait $silent
diag <"$T/silent.txt"
check "a stalled exchange is closed (1001) at the drain deadline" 'has "$T/silent.txt" "then close 1001"'
check "the server exited 0 soon after the deadline (${elapsed} ms)" '[ $rc = 0 ] && [ $elapsed -lt 3000 ]'
check "on_close said shutdown" 'grep -q "why=shutdown" "$T/d2.err"'
sanitizers_clean
done_testing
