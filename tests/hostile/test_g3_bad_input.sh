#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Bad input on /tpm-attestation: an attacker on 127.0.0.2 with a real TPM (swtpm) sends one defect
# per connection — AK parameters upstream's go-attestation crashes on, bad JSON, wrong types,
# oversized quotes and PCR maps, a PCR set that is not the quote's, binary frames, a stalling
# node. Each is refused with an {"error":..} naming the defect (upstream drops the connection for
# several), and a good node on 127.0.0.1 is still served afterwards.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
g3_two_nodes
SOCK_GOOD=$SOCK_A SOCK_EVIL=$SOCK_B
mkdir -p "$DB" && chmod 700 "$DB"
kms_start --enroll tofu --exchange-timeout 3
NODE_PROTOCOL=g3 node_get "$T/good" "$T/err" rc "$SOCK_GOOD" COS_PERSISTENT
[ "$rc" = 0 ] || bail "the good node is not served before the attacks: $(tail -3 "$T/err")"

# attack CASE EXPECTED-TEXT: the KMS's answer to CASE must be an error holding EXPECTED-TEXT.
attack() {
    local case=$1 want=$2
    SRC_ADDR=127.0.0.2 TPM_DEVICE=$SOCK_EVIL timeout 120 $NODE bad 127.0.0.1 "$KMS_PORT" "$case" >"$T/a.$case" 2>&1
    check "$case: refused with an error naming it ($want)" \
        'grep -q "^error=.*$want" "$T/a.$case" || { diag <"$T/a.$case"; false; }'
}
attack init-not-json "WebSocket read: reading attestation init: "
attack init-wrong-type "reading attestation init: .*ek_public"
attack init-binary-frame "reading attestation init: a binary frame"
attack ek-not-spki "parse EK SPKI"
attack ak-attributes "Challenge generation: generating challenge: "
attack ak-signature "Challenge generation: generating challenge: "
attack ak-ecdsa-signature "Challenge generation: generating challenge: "
attack ak-truncated "Challenge generation: generating challenge: "
attack ak-tcsd "reading attestation init: .*UseTCSDActivationFormat"
attack proof-not-json "Proof read: reading proof: "
attack proof-wrong-type "Proof read: reading proof: "
attack proof-wrong-secret "Attestation verification failed: invalid secret"
attack proof-oversized-quote "Proof read: reading proof: .*quote"
attack proof-oversized-pcrs "Proof read: reading proof: .*pcrs"
attack proof-huge "Proof read: reading proof: "
attack proof-pcr-set-differs "PCR quote verification failed: "
attack proof-pcr-value-differs "PCR quote verification failed: "
attack proof-binary-frame "reading proof: a binary frame"
check "no attack got a passphrase" '! grep -l "^passphrase=" "$T"/a.* 2>/dev/null | grep -q .'
check "each refusal is in the audit log from 127.0.0.2" \
    '[ "$(grep -c "\"outcome\":\"refused\",.*\"peer\":\"127.0.0.2" "$T/audit.jsonl")" -ge 18 ]'

# A stalling node: init, then nothing; dropped at --exchange-timeout (3 s), the reason audited.
STALL_SECONDS=6 SRC_ADDR=127.0.0.2 TPM_DEVICE=$SOCK_EVIL timeout 120 $NODE bad 127.0.0.1 "$KMS_PORT" stall >"$T/stall" 2>&1
check "a node that stalls after the challenge is dropped" 'grep -q "^stalled: closed" "$T/stall"'
check "...and the audit says it stalled" 'grep -q "tpm-attestation.*the node stalled; exchange timed out" "$T/audit.jsonl"'

check "the KMS is still running" 'kill -0 "$KMS_PID"'
NODE_PROTOCOL=g3 node_get "$T/out" "$T/err" rc "$SOCK_GOOD" COS_PERSISTENT
check "...and still serves the good node its key" '[ "$rc" = 0 ] && cmp -s "$T/out" "$T/good"'
done_testing
