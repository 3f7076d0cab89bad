#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Endless empty lines before a request line (KMS) or before a status line (node): the head
# parser bounds them, so neither side buffers without end. Before the fix 4 connections grew the
# KMS by gigabytes in seconds, and a malicious KMS did the same to a booting node.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
. "$(dirname "$0")/net_lib.sh"

# ---- the KMS: 4 connections from 127.0.0.2 send CRLF without end (100 MiB each at most) ----
kms_start
attack blank 127.0.0.1 "$KMS_PORT" --src 127.0.0.2 --conns 4 --seconds 6 --max-bytes $((100 << 20)) \
    >"$T/flood.out" 2>&1 &
FLOOD=$!
probe_while "$FLOOD" "$T/probes"
wait "$FLOOD"
diag <"$T/flood.out"
check "the KMS is alive after the flood" 'kill -0 "$KMS_PID"'
peak=$(mem_kb "$KMS_PID" VmHWM)
echo "# KMS peak memory: ${peak} kB"
check "the KMS's peak memory stayed under 200 MB" '[ "$peak" -gt 0 ] && [ "$peak" -lt "$MEM_LIMIT_KB" ]'
check "the good client from 127.0.0.1 was answered within 3 s during the flood" 'probes_ok "$T/probes"'
check "the KMS refused the empty lines with 400" 'grep "bad request: 400" "$T/kms.log" >/dev/null'
attack probe 127.0.0.1 "$KMS_PORT" --src 127.0.0.1 >"$T/after" 2>&1
check "the KMS still serves after the flood" 'grep "^status 200" "$T/after" >/dev/null'

# ---- the node: a malicious KMS answers the upgrade with empty lines without end ----
swtpm_start "$(golden_state node-a ekcert)"
attack server blank --port-file "$T/evil.port" --seconds 40 >"$T/evil.out" 2>&1 &
EVIL=$!
on_exit "stop_pid $EVIL 2"
for ((i = 0; i < 100; i++)); do [ -s "$T/evil.port" ] && break; sleep 0.1; done
[ -s "$T/evil.port" ] || bail "the malicious server did not start"
start=$(date +%s)
"$KAIROS_KMS" discovery-challenger --tpm-device "$TPM_SOCK" get --partition-label COS_PERSISTENT \
    --challenger-server "http://127.0.0.1:$(cat "$T/evil.port")" --timeout 10 >"$T/node.out" 2>"$T/node.err" &
NODE=$!
on_exit "stop_pid $NODE 2"
npeak=$(peak_while "$NODE")
wait "$NODE"
nrc=$?
elapsed=$(($(date +%s) - start))
echo "# node: exit $nrc after ${elapsed} s, peak memory ${npeak} kB"
tail -3 "$T/node.err" | diag
check "the node fails (exit 1), with no passphrase" '[ "$nrc" = 1 ] && [ ! -s "$T/node.out" ]'
check "the node gives up within its deadline (10 s) and a few seconds" '[ "$elapsed" -le 16 ]'
check "the node's peak memory stayed under 200 MB" '[ "$npeak" -lt "$MEM_LIMIT_KB" ]'
check "the node says the answer is malformed" 'grep "response head is malformed or too large" "$T/node.err" >/dev/null'
done_testing
