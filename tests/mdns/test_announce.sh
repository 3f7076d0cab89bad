#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# challenger --announce: the KMS answers mDNS for itself from its own event loop (no second
# process). Our challenger in namespace B announces kms.local on vb; a swtpm node in namespace A
# finds it over mDNS and gets its key (G1); an independent Python querier sees its records;
# SIGHUP announces again; SIGTERM sends the goodbye (TTL 0) while it drains.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/lib.sh"
netns_up

node_and_db
printf %s "announced-kms-passphrase" >"$T/pass"
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH" --label COS_PERSISTENT \
    --passphrase-file "$T/pass"
[ "$rc" = 0 ] || bail "challenger register failed: $(cat "$T/err")"

run_kkms "$T/out" "$T/err" rc challenger --db "$DB" --announce kms.example.com
check "--announce of a name that is not .local is a usage error naming it" \
    '[ "$rc" = 2 ] && grep -q -- "--announce kms.example.com: must be a .local name" "$T/err"'

ip netns exec "$NS_B" "$KAIROS_KMS" challenger --db "$DB" --listen 0.0.0.0:0 --port-file "$T/kms.port" \
    --audit-log "$T/audit.jsonl" --announce kms.local --announce-interface vb </dev/null 2>>"$T/kms.log" &
KMS=$!
on_exit "stop_pid $KMS"
wait_port_file "$T/kms.port" "$KMS" 6 || bail "the KMS did not listen within 6 s: $(tail -3 "$T/kms.log")"
PORT=$(cat "$T/kms.port")
check "the KMS says what it announces, with its own port" \
    'wait_for_line "$T/kms.log" "announcing .*_kcrypt._tcp.local -> kms.local:$PORT on vb (10.199.0.2)" 5 "$KMS"'

in_a timeout -k 5 90 "$KAIROS_KMS" discovery-challenger --tpm-device "$TPM_SOCK" get --partition-label COS_PERSISTENT \
    --challenger-server "http://kms.local:$PORT" --mdns --timeout 20 >"$T/got" 2>"$T/err"
rc=$?
check "a node in another namespace finds kms.local over mDNS and gets its key" \
    '[ "$rc" = 0 ] && [ "$(cat "$T/got")" = announced-kms-passphrase ] || { diag <"$T/err"; false; }'
in_a $PEER query kms.local A --iface $IP_A --mode legacy --timeout 2 >"$T/py-a" 2>&1
check "an independent querier (Python) gets kms.local A 10.199.0.2 from it" 'grep -q "10.199.0.2" "$T/py-a" || { diag <"$T/py-a"; false; }'

kill -HUP $KMS
check "SIGHUP: it rescans and announces again" 'wait_for_line "$T/kms.log" "announcing again" 5 "$KMS"'
kill -TERM $KMS
wait $KMS
rc=$?
check "SIGTERM: the goodbye (TTL 0) is sent, and the KMS exits 0" '[ "$rc" = 0 ] && grep -q "sent the goodbye on 1 interface" "$T/kms.log"'
done_testing
