#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# TLS session resumption: a node's G1 flow for an auto-generated key makes three connections
# (/getPass: no Secret yet; /postPass: the TPM ciphertext; /getPass: served). The first pays a full
# handshake, the second and third resume from the KMS's session ticket: the node's debug log says
# "TLS session resumed" twice, and the KMS counts 1 full and 2 resumed handshakes in /metrics.
# An ECDSA P-256 certificate (the fast choice, README "TLS"). Everything on 127.0.0.1.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require openssl curl

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/srv.key" -out "$T/srv.pem" \
    -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 ||
    bail "openssl could not make an ECDSA P-256 certificate"

swtpm_start "$(golden_state node-a ekcert)"
HASH=$(node_hash "$TPM_SOCK") || bail "tpm-hash failed"
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH" --label COS_PERSISTENT
[ "$rc" = 0 ] || bail "register failed: $(cat "$T/err")"

# One worker (tests/bench/test_tls_resume_workers.sh proves resumption across several).
kms_start --tls-cert "$T/srv.pem" --tls-key "$T/srv.key" --workers 1
handshakes() { # KIND: the KMS's count of full or resumed handshakes (/metrics is served over TLS too)
    curl -s --cacert "$T/srv.pem" "$KMS_URL/metrics" >"$T/metrics" 2>/dev/null
    sed -n "s/^kairos_kms_tls_handshakes_total{kind=\"$1\"} \([0-9]*\)$/\1/p" "$T/metrics"
}
full0=$(handshakes full)
resumed0=$(handshakes resumed)
check "/metrics counts TLS handshakes by kind" '[ -n "$full0" ] && [ -n "$resumed0" ]'

node_get "$T/got" "$T/err" rc "$TPM_SOCK" COS_PERSISTENT --certificate "$T/srv.pem" --debug
check "the node posted its generated key and was served it (three connections)" \
    '[ "$rc" = 0 ] && [ -s "$T/got" ] && grep -q "postPass" "$T/audit.jsonl" || { diag <"$T/err"; false; }'
check "the node's first connection paid a full handshake" '[ "$(grep -c "TLS full handshake" "$T/err")" = 1 ]'
check "its second and third connections resumed the TLS session" \
    '[ "$(grep -c "TLS session resumed" "$T/err")" = 2 ] || { grep -i tls "$T/err" | diag; false; }'
full1=$(handshakes full)
resumed1=$(handshakes resumed)
# The second /metrics read is curl's own full handshake.
check "the KMS counted 1 full and 2 resumed handshakes for the flow" \
    '[ $((full1 - full0)) = 2 ] && [ $((resumed1 - resumed0)) = 2 ] || echo "full $full0->$full1 resumed $resumed0->$resumed1" | diag'

# A new process has no ticket: a full handshake again, and the ticket of a KMS that restarted (a
# new key, in memory only) is refused and answered with a full handshake, never a failure.
node_get "$T/got2" "$T/err2" rc "$TPM_SOCK" COS_PERSISTENT --certificate "$T/srv.pem" --debug
check "a second boot (a new process) is served with one full handshake" \
    '[ "$rc" = 0 ] && cmp -s "$T/got" "$T/got2" && [ "$(grep -c "TLS full handshake" "$T/err2")" = 1 ]'
kms_stop
done_testing
