#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Pipelined /readyz on a store of 4,000 manifests: /readyz answers from the store's last
# background rescan (no scan per request, and a rescan is linear in the file count), and one
# connection's pipelined requests are served a few per loop turn, in turn with the others.
# Before the fix 50 KB of pipelined /readyz blocked every other client for about half a minute.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kms.sh"
. "$(dirname "$0")/net_lib.sh"

mkdir -p "$DB" && chmod 700 "$DB"
python3 - "$DB" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(4000):
    p = os.path.join(d, "secret-%04d.yaml" % i)
    with open(p, "w") as f:
        f.write("apiVersion: v1\nkind: Secret\nmetadata: {name: s%04d, namespace: default}\n"
                "type: Opaque\nstringData: {pass: \"p%04d\"}\n" % (i, i))
    os.chmod(p, 0o600)
PY
check "4,000 manifests in the store" '[ "$(ls "$DB" | wc -l)" = 4000 ]'
kms_start
attack probe 127.0.0.1 "$KMS_PORT" --src 127.0.0.1 --path /readyz --timeout 10 >"$T/ready" 2>&1
check "/readyz says ready" 'grep "^status 200" "$T/ready" >/dev/null'

# 4 connections from 127.0.0.2, each 50 KB of pipelined GET /readyz (about 1,500 requests).
attack pipeline 127.0.0.1 "$KMS_PORT" --src 127.0.0.2 --conns 4 --bytes 50000 --path /readyz --seconds 8 \
    >"$T/flood.out" 2>&1 &
FLOOD=$!
probe_while "$FLOOD" "$T/probes"
wait "$FLOOD"
diag <"$T/flood.out"
diag <"$T/probes"
check "the good client from 127.0.0.1 was answered within 3 s during the flood" 'probes_ok "$T/probes"'
read -r _ nreq _ nans <"$T/flood.out"
# A keep-alive connection serves 100 requests, then closes: the attacker connects again.
check "the attacker's pipelined requests were answered too (at least 400 in 8 s)" '[ -n "$nans" ] && [ "$nans" -ge 400 ]'
check "the KMS is alive" 'kill -0 "$KMS_PID"'
peak=$(mem_kb "$KMS_PID" VmHWM)
check "the KMS's peak memory stayed under 200 MB" '[ "$peak" -gt 0 ] && [ "$peak" -lt "$MEM_LIMIT_KB" ]'

done_testing
