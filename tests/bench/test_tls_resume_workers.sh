#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# TLS session resumption across `challenger --workers 2`: the workers derive the same session
# ticket keys from a secret the first process drew before forking (lib/crypto/tls.c,
# ktls_server_share_tickets), so a node's ticket is accepted by whichever worker accepts its next
# connection. 8 kms-loadgen nodes (--tls-resume: each keeps the last ticket) make 200 G1 exchanges,
# one at a time, through both workers: the KMS counts exactly 8 full handshakes (one per node) and
# every other handshake resumed, and both workers did part of the work. With a key per worker about
# half of the resumptions would land on the other worker and fall back to full handshakes.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kms.sh"
require openssl curl pgrep
. "$(dirname "$0")/../lib/loadgen.sh" # SEED: tests/bench/test_loadgen.sh's nodes, their keys cached
LG_LIMIT=300
NODES=8
EXCHANGES=200
cd "$T" || bail "no test directory"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.pem -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 ||
    bail "openssl could not make an ECDSA P-256 certificate"
lg register --db "$DB" --nodes "$NODES" --seed "$SEED" 2>err || bail "register failed: $(cat err)"

kms_start --tls-cert srv.pem --tls-key srv.key --workers 2
mapfile -t workers < <(pgrep -P "$KMS_PID")
check "--workers 2: a parent and a second worker process" '[ "${#workers[@]}" = 1 ]'
read_metrics() { curl -s --cacert srv.pem "$KMS_URL/metrics" >metrics 2>/dev/null; }
handshakes() { # KIND: the count of full or resumed handshakes in the last /metrics read
    sed -n "s/^kairos_kms_tls_handshakes_total{kind=\"$1\"} \([0-9]*\)$/\1/p" metrics
}
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime, in clock ticks

read_metrics
full0=$(handshakes full) resumed0=$(handshakes resumed)
cpu_a0=$(cpu "$KMS_PID") cpu_b0=$(cpu "${workers[0]}")
lg run --url "$KMS_URL" --nodes "$NODES" --seed "$SEED" --concurrency 1 --exchanges "$EXCHANGES" \
    --tls-ca srv.pem --tls-resume --timeout 120 >run 2>runerr
rc=$?
cpu_a1=$(cpu "$KMS_PID") cpu_b1=$(cpu "${workers[0]}")
read_metrics
full1=$(handshakes full) resumed1=$(handshakes resumed)
check "$EXCHANGES exchanges over resumed TLS, none failed" \
    '[ "$rc" = 0 ] && grep -q "\"ok\":$EXCHANGES,\"failed\":0" run || { tail -3 run runerr | diag; false; }'
echo "full handshakes $full0 -> $full1, resumed $resumed0 -> $resumed1; CPU ticks: first process" \
    "$cpu_a0 -> $cpu_a1, second worker $cpu_b0 -> $cpu_b1" | diag
check "both workers served (each spent CPU on the exchanges)" \
    '[ $((cpu_a1 - cpu_a0)) -ge 3 ] && [ $((cpu_b1 - cpu_b0)) -ge 3 ]'
# The second /metrics read is one of the full handshakes counted in full1.
check "one full handshake per node, whichever worker it reached next" '[ $((full1 - full0 - 1)) = "$NODES" ]'
check "every other handshake resumed" '[ $((resumed1 - resumed0 + full1 - full0 - 1)) -ge "$EXCHANGES" ] &&
    [ $((resumed1 - resumed0)) -ge $((EXCHANGES - NODES)) ]'
kms_stop
done_testing
