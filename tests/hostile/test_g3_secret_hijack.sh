#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# /tpm-attestation must not let one TPM create a Secret another TPM's SealedVolume resolves to:
# registered volume "node-a-cos" + label PERSISTENT (TPM B, the attacker) and "node-a" + label
# COS_PERSISTENT (TPM A) both resolve to node-a-cos-persistent. B attests first: if the KMS
# created that Secret with B's key (or one it generated and served to B), A's disk would later be
# encrypted with a key B knows. Refused with a reason; A then gets its own key.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
g3_two_nodes
HASH_A=$(node_hash "$SOCK_A") || bail "tpm-hash failed"
HASH_B=$(node_hash "$SOCK_B") || bail "tpm-hash failed"
mkdir -p "$DB" && chmod 700 "$DB"
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH_A" --label COS_PERSISTENT --volume node-a
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH_B" --label PERSISTENT --volume node-a-cos
kms_start

# B as an upstream-shaped node (the KMS would generate the key and serve it to B)
SRC_ADDR=127.0.0.2 TPM_DEVICE=$SOCK_B timeout 120 $NODE exchange 127.0.0.1 "$KMS_PORT" PERSISTENT >"$T/b1" 2>&1
check "B (upstream-shaped, no escrow): refused, told why" \
    'grep -q "^error=.*secret node-a-cos-persistent is referenced by another TPM" "$T/b1"'
# B as our node, offering its own escrow
SRC_ADDR=127.0.0.2 TPM_DEVICE=$SOCK_B timeout 120 $NODE exchange 127.0.0.1 "$KMS_PORT" PERSISTENT --nonce --escrow >"$T/b2" 2>&1
check "B offering its escrow: refused too" 'grep -q "^error=.*referenced by another TPM" "$T/b2"'
check "...no Secret node-a-cos-persistent was created" '! grep -rqs "name: node-a-cos-persistent" "$DB"'
check "...the KMS log names A's volume for the operator" 'grep -q "also referenced by SealedVolume node-a" "$T/kms.log"'
check "...and the audit has the refusal with B's hash" \
    'grep "$HASH_B" "$T/audit.jsonl" | grep -q "\"outcome\":\"refused\".*referenced by another TPM"'
NODE_PROTOCOL=g3 node_get "$T/apass" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "A attests too: the same name is refused to A as well (the operator must fix the names)" \
    '[ "$rc" = 1 ] && grep -q "referenced by another TPM" "$T/err"'
done_testing
