#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# challenger --workers N: N processes serve one listening socket. A swtpm node gets its keys over
# G1 and G3 whichever worker answers; /metrics (shared memory) counts every exchange in every
# worker; SIGHUP and SIGTERM reach them all; a worker whose first process is killed -9 stops too.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require python3 pgrep

register_node worker-test-passphrase

run_kkms "$T/out" "$T/err" rc challenger --db "$DB" --workers 0
check "--workers 0: a usage error naming the flag" '[ "$rc" = 2 ] && grep -q -- "--workers 0: expected 1 to 64, or auto" "$T/err"'

kms_start --workers 3
sleep 0.3
check "--workers 3: two more processes beside the first" '[ "$(pgrep -c -P "$KMS_PID")" = 2 ]'
ok=0
for i in 1 2 3 4 5 6; do
    node_get "$T/got" "$T/err" rc "$TPM_SOCK" COS_PERSISTENT
    [ "$rc" = 0 ] && [ "$(cat "$T/got")" = worker-test-passphrase ] && ok=$((ok + 1))
done
check "six G1 exchanges, whichever worker answers: six keys" '[ "$ok" = 6 ]'
NODE_PROTOCOL=g3 node_get "$T/got" "$T/err" rc "$TPM_SOCK" COS_PERSISTENT
check "a G3 exchange too" '[ "$rc" = 0 ] && [ "$(cat "$T/got")" = worker-test-passphrase ] || { diag <"$T/err"; false; }'
fetch() { python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }
same=0
for i in 1 2 3 4 5 6; do
    fetch "$KMS_URL/metrics" >"$T/m" 2>/dev/null
    grep -qx 'kairos_kms_exchanges_total{protocol="g1",endpoint="getPass",outcome="ok"} 6' "$T/m" && same=$((same + 1))
done
check "/metrics counts the exchanges of every worker, whichever one answers the scrape" '[ "$same" = 6 ]'
kill -HUP "$KMS_PID"
sleep 0.5
check "SIGHUP reaches the first process" 'grep -q "SIGHUP: rescanning" "$T/kms.log"'
check "...and the other workers (one rescan line per process)" '[ "$(grep -c "SIGHUP: rescanning" "$T/kms.log")" = 3 ]'
children=$(pgrep -P "$KMS_PID" | tr '\n' ' ')
kms_stop
gone=1
for c in $children; do kill -0 "$c" 2>/dev/null && gone=0; done
check "SIGTERM: every worker drains and exits" '[ "$gone" = 1 ]'

kms_start --workers 2
sleep 0.3
child=$(pgrep -P "$KMS_PID")
kill -9 "$KMS_PID"
wait "$KMS_PID" 2>/dev/null
for i in $(seq 100); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
check "the first process killed -9: the other worker stops too (no orphan serving alone)" '! kill -0 "$child" 2>/dev/null'
done_testing
