#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# G3 against our KMS from an upstream-shaped node: tests/online/g3_node.py speaks
# /tpm-attestation with the independent codec g3_peer.py (no nonce in its quotes, no escrow, the
# TPM work by g3_node_tool on swtpm). Server-generated keys, freshness policy, replays.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require python3
: "${KKMS_G3_NODE_TOOL:?}"
NODE="python3 $(dirname "$0")/g3_node.py"
swtpm_start "$(golden_state node-a ekcert)"; SOCK_A=$TPM_SOCK
HASH_A=$(node_hash "$SOCK_A") || bail "tpm-hash failed"
mkdir -p "$DB" && chmod 700 "$DB"
kms_start --enroll tofu
peer() { TPM_DEVICE=$SOCK_A timeout 120 $NODE "$1" 127.0.0.1 "$KMS_PORT" COS_PERSISTENT "${@:2}"; }

peer exchange >"$T/out1" 2>"$T/err"; rc=$?
diag <"$T/err"
check "an upstream-shaped node (no nonce, no escrow) is enrolled and gets a key" \
    '[ "$rc" = 0 ] && grep -qE "^passphrase=[A-Za-z0-9+/]{43}=$" "$T/out1"'
check "...which the KMS generated: base64 of 32 random bytes, as upstream" \
    '[ "$(sed -n "s/^passphrase=//p" "$T/out1" | base64 -d | wc -c)" = 32 ]'
check "the audit says the quote was not fresh (no nonce)" \
    'grep -q "\"action\":\"tpm-attestation\",\"outcome\":\"ok\".*quote not fresh (no nonce)" "$T/audit.jsonl"'
check "the Secret is a valid Kubernetes name and the SealedVolume is upstream's shape" \
    'grep -q "name: tofu-${HASH_A:0:8}-cos-persistent" "$DB"/secret-*.yaml && grep -q "kind: SealedVolume" "$DB"/sealedvolume-tofu-*.yaml &&
     grep -q "    pcrValues:" "$DB"/sealedvolume-tofu-*.yaml'
peer exchange >"$T/out2" 2>&1
check "the next contact gets the same key" 'cmp -s "$T/out1" "$T/out2"'
peer exchange --nonce >"$T/out3" 2>&1
check "a quote over the KMS's nonce is accepted too, same key" 'cmp -s "$T/out1" "$T/out3" && tail -1 "$T/audit.jsonl" | grep -q "quote over our nonce"'

# ---- replays: a recorded proof on a new connection, an old quote with the same AK ----
peer replay >"$T/replay" 2>&1
diag <"$T/replay"
check "a proof replayed on a new connection (same AK blob) is refused: invalid secret" \
    'grep -q "^replayed-proof: error=Attestation verification failed: invalid secret" "$T/replay"'
check "an old quote (over the old nonce) with a correctly activated secret is refused" \
    'grep -q "^old-quote: error=Attestation verification failed: PCR quote verification failed: PCR quote does not carry the server.s nonce" "$T/replay"'

# ---- --require-fresh-quotes: upstream nodes are refused, ours served ----
kms_stop
kms_start --enroll tofu --require-fresh-quotes
peer exchange >"$T/out" 2>&1
check "--require-fresh-quotes: a quote without nonce is refused, saying so" \
    'grep -q "^error=Attestation verification failed: quote not fresh (no nonce)" "$T/out"'
peer exchange --nonce >"$T/out" 2>&1
check "...a quote over the nonce is served" 'cmp -s "$T/out1" "$T/out"'

# ---- escrow offered by the node: stored as ciphertext only, returned as generated_by tpm ----
swtpm_start "$(golden_state node-b ekcert)"; SOCK_B=$TPM_SOCK
TPM_DEVICE=$SOCK_B timeout 120 $NODE exchange 127.0.0.1 "$KMS_PORT" COS_PERSISTENT --nonce --escrow >"$T/esc" 2>&1
check "a node's escrow is what the KMS returns, marked generated_by tpm (342 base64url characters)" \
    'grep -qE "^passphrase=[A-Za-z0-9_-]{342} generated_by=tpm$" "$T/esc"'
done_testing
