#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# /metrics: after one real G1 exchange (a swtpm node gets its static key) the KMS serves a page
# that Debian's promtool accepts, whose exchange counter and histogram count that exchange, whose
# store gauges match the records, and that holds no TPM hash or secret. --metrics-listen moves it
# off the node-facing port.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require promtool python3

fetch() { python3 - "$1" <<'P'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5)
    print(r.status, r.headers.get("Content-Type"), file=sys.stderr)
    sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, file=sys.stderr)
    sys.exit(1)
P
}

register_node metrics-test-passphrase
"$KAIROS_KMS" challenger register --db "$DB" --tpm-hash "$(printf 'b%.0s' $(seq 64))" --label COS_PERSISTENT \
    >/dev/null 2>>"$T/kms.log" || bail "register failed"
"$KAIROS_KMS" challenger quarantine --db "$DB" "$(printf 'b%.0s' $(seq 64))" >/dev/null 2>>"$T/kms.log"
kms_start

fetch "$KMS_URL/metrics" >"$T/m0" 2>"$T/h0"
check "/metrics answers 200 in the text format 0.0.4" 'grep -q "^200 text/plain; version=0.0.4" "$T/h0"'
check "before any exchange the counter is 0" \
    'grep -qx "kairos_kms_exchanges_total{protocol=\"g1\",endpoint=\"getPass\",outcome=\"ok\"} 0" "$T/m0"'

node_get "$T/out" "$T/err" rc "$TPM_SOCK" COS_PERSISTENT
check "a node gets its key (G1)" '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = metrics-test-passphrase ]'
node_get "$T/out" "$T/err" rc "$TPM_SOCK" NOT_REGISTERED
check "a refused request" '[ "$rc" != 0 ]'
sleep 0.2
fetch "$KMS_URL/metrics" >"$T/m1" 2>/dev/null
promtool check metrics <"$T/m1" >"$T/promtool" 2>&1
check "promtool check metrics accepts the page" '[ $? -eq 0 ] || { diag <"$T/promtool"; false; }'
check "the exchange counter counts the served exchange" \
    'grep -qx "kairos_kms_exchanges_total{protocol=\"g1\",endpoint=\"getPass\",outcome=\"ok\"} 1" "$T/m1"'
check "...and the refusal" \
    'grep -qx "kairos_kms_exchanges_total{protocol=\"g1\",endpoint=\"getPass\",outcome=\"refused\"} 1" "$T/m1"'
check "the server-time histogram counts both exchanges" \
    'grep -qx "kairos_kms_exchange_server_seconds_count{endpoint=\"getPass\"} 2" "$T/m1" &&
     grep -qx "kairos_kms_exchange_server_seconds_bucket{endpoint=\"getPass\",le=\"+Inf\"} 2" "$T/m1"'
check "store gauges: 2 volumes, 1 Secret, 1 quarantined, ready" \
    'grep -qx "kairos_kms_store_records{kind=\"volumes\"} 2" "$T/m1" && grep -qx "kairos_kms_store_records{kind=\"secrets\"} 1" "$T/m1" &&
     grep -qx "kairos_kms_store_records{kind=\"quarantined\"} 1" "$T/m1" && grep -qx "kairos_kms_store_ready 1" "$T/m1"'
check "build info and open connections are there" \
    'grep -q "^kairos_kms_build_info{version=" "$T/m1" && grep -q "^kairos_kms_connections_open [0-9]" "$T/m1"'
check "no TPM hash, secret or Secret name anywhere in the page" \
    '! grep -q "$HASH\|metrics-test-passphrase\|bbbbbbbb\|node-" "$T/m1"'
echo "not yaml" >"$DB/broken.yaml"
kill -HUP "$KMS_PID"; sleep 0.5
fetch "$KMS_URL/metrics" >"$T/m2" 2>/dev/null
check "a broken manifest shows in kairos_kms_store_invalid_files" 'grep -qx "kairos_kms_store_invalid_files 1" "$T/m2"'
kms_stop

# --metrics-listen: the scrape port is its own; the node port has no /metrics.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
kms_start --metrics-listen "127.0.0.1:$port"
fetch "http://127.0.0.1:$port/metrics" >"$T/m3" 2>/dev/null
check "--metrics-listen: /metrics on its own port" 'grep -q "^kairos_kms_exchanges_total" "$T/m3"'
fetch "$KMS_URL/metrics" >/dev/null 2>"$T/h4"
check "--metrics-listen: the node-facing port answers 404 for /metrics" 'grep -qx 404 "$T/h4"'
run_kkms "$T/o" "$T/e" rc challenger --db "$DB" --metrics-listen nonsense
check "--metrics-listen without a port: bad usage (exit 2), one line naming it" \
    '[ "$rc" = 2 ] && grep -q -- "--metrics-listen nonsense: expected ADDR:PORT" "$T/e"'
kms_stop
done_testing
