#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# challenger --etcd over TLS with client certificates and etcd authentication (tests/lib/etcd.sh
# `tls`: https endpoints, a CN-less client certificate, a user with READWRITE on the prefix only):
# register, serve a swtpm node, list; a wrong CA, a missing client certificate and a user outside
# its prefix are clear errors.
. "$(dirname "$0")/../lib/common.sh"
ETCD_TOOL=$1
. "$(dirname "$0")/../lib/etcd.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require curl

has() { grep -F -- "$2" "$1" >/dev/null; }
ch() { run_kkms "$T/ch.out" "$T/ch.err" rc challenger "$@"; }

etcd_cluster_start tls
printf 'kms-tls-pw\n' >"$T/kms.pw"
etcd_enable_auth kms kms-tls-pw /kairos-kms/
P=$T/pki
TLS=(--etcd "$ETCD_ENDPOINTS" --etcd-cacert "$P/ca.pem" --etcd-cert "$P/client.pem" --etcd-key "$P/client.key"
     --etcd-user kms --etcd-password-file "$T/kms.pw")
swtpm_start "$(golden_state node-a ekcert)"
HASH=$(node_hash "$TPM_SOCK") || bail "tpm-hash failed"
printf 'tls-static\n' >"$T/pass"

ch register "${TLS[@]}" --tpm-hash "$HASH" --label COS_PERSISTENT --passphrase-file "$T/pass"
check "register over https with a client certificate and a user: exit 0" '[ "$rc" = 0 ]'
rm -f "$T/kms.port"
"$KAIROS_KMS" challenger "${TLS[@]}" --listen 127.0.0.1:0 --port-file "$T/kms.port" --audit-log "$T/audit.jsonl" \
    2>>"$T/kms.log" &
KMS_PID=$!
on_exit "stop_pid $KMS_PID"
wait_port_file "$T/kms.port" "$KMS_PID" 10 || bail "the challenger did not listen: $(tail -3 "$T/kms.log")"
KMS_URL=http://127.0.0.1:$(cat "$T/kms.port")
for i in $(seq 50); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$KMS_URL/readyz")" = 200 ] && break; sleep 0.2; done
node_get "$T/out" "$T/err" grc "$TPM_SOCK" COS_PERSISTENT
check "the node gets its key from the challenger over TLS etcd" '[ "$grc" = 0 ] && [ "$(cat "$T/out")" = tls-static ]'
ch list "${TLS[@]}"
check "list over TLS" '[ "$rc" = 0 ] && has "$T/ch.out" "$HASH"'
check "neither the password nor the key in any output" '! grep -rq -e kms-tls-pw -e tls-static "$T/kms.log" "$T/ch.err" "$T/audit.jsonl"'

ch list --etcd "$ETCD_ENDPOINTS" --etcd-cacert "$P/other-ca.pem" --etcd-cert "$P/client.pem" --etcd-key "$P/client.key" \
    --etcd-user kms --etcd-password-file "$T/kms.pw" --etcd-timeout 3
check "a CA that did not sign the servers' certificates: exit 1, a certificate error" \
    '[ "$rc" = 1 ] && grep -qi "certificate" "$T/ch.err"'
ch list --etcd "$ETCD_ENDPOINTS" --etcd-cacert "$P/ca.pem" --etcd-user kms --etcd-password-file "$T/kms.pw" \
    --etcd-timeout 3
check "no client certificate: exit 1" '[ "$rc" = 1 ] && [ -s "$T/ch.err" ]'
ch list "${TLS[@]}" --etcd-prefix /other/ --etcd-timeout 3
check "a prefix the user may not read: exit 1, permission denied named" \
    '[ "$rc" = 1 ] && grep -qi "permission denied" "$T/ch.err"'
ch list --etcd "$ETCD_ENDPOINTS" --etcd-cert "$P/client.pem"
check "--etcd-cert without --etcd-key is a usage error (exit 2)" '[ "$rc" = 2 ]'
done_testing
