#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# /postPass hijack: node B (a real swtpm, our real node, its payload rewritten by the attacker's
# proxy tests/hostile/g1_attacker.py on 127.0.0.2) tries to choose node A's disk keys: post into
# the operator's Secret that A's SealedVolume names (a fleet key not written yet), into the name
# the KMS derives for A's auto-generated partition, with generated_by "" and with a plaintext.
# Upstream G1 stores all of these; our KMS refuses each (error to the node, reason in the audit
# log, nothing written) and A still gets its own key.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require python3
ATTACKER=$(dirname "$0")/g1_attacker.py

swtpm_start "$(golden_state node-a ekcert)"; SOCK_A=$TPM_SOCK
swtpm_start "$(golden_state node-b ekcert)"; SOCK_B=$TPM_SOCK
HASH_A=$(node_hash "$SOCK_A") || bail "tpm-hash failed"
HASH_B=$(node_hash "$SOCK_B") || bail "tpm-hash failed"
VOL_A=node-${HASH_A:0:8}
GEN_A=$VOL_A-cos-persistent # the Secret the KMS derives for A's auto-generated partition

mkdir -p "$DB" && chmod 700 "$DB"
kms_start
# Node A: an auto-generated partition, and one naming the operator's fleet key (not written yet).
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH_A" --label COS_PERSISTENT
run_kkms "$T/out" "$T/err" rc2 challenger register --db "$DB" --tpm-hash "$HASH_A" --label COS_OEM --secret fleet-key --key passphrase
[ "$rc" = 0 ] && [ "$rc2" = 0 ] || bail "register failed: $(cat "$T/err")"
# Node B's volumes, as a careless (or misled) operator wrote them: B shares the fleet key, one
# partition names A's derived Secret, and a volume name makes B's default name collide with A's.
b_manifests() {
    cat >"$DB/node-b.yaml" <<EOF
apiVersion: keyserver.kairos.io/v1alpha1
kind: SealedVolume
metadata: {name: node-b}
spec:
  TPMHash: "$HASH_B"
  partitions:
    - label: OWN
    - label: FLEET
      secret: {name: fleet-key, path: passphrase}
    - label: STEAL
      secret: {name: $GEN_A, path: passphrase}
---
apiVersion: keyserver.kairos.io/v1alpha1
kind: SealedVolume
metadata: {name: $VOL_A-cos}
spec:
  TPMHash: "$HASH_B"
  partitions:
    - label: PERSISTENT
EOF
    chmod 600 "$DB/node-b.yaml"
}
b_manifests

# attack LABEL MODE [force]: node B asks for LABEL through the attacker's proxy, which rewrites
# B's /postPass payload per MODE (g1_attacker.py); sets rc, B's stderr in $T/b.err.
attack() {
    local i pid
    rm -rf "$T/atk" && mkdir "$T/atk"
    timeout -k 5 90 python3 "$ATTACKER" 127.0.0.2 "$KMS_PORT" "$T/atk" "$2" ${3:-} 2>"$T/atk/stderr" &
    pid=$!
    for i in $(seq 100); do [ -s "$T/atk/port" ] && break; sleep 0.05; done
    [ -s "$T/atk/port" ] || bail "the attacker's proxy did not start: $(cat "$T/atk/stderr")"
    NODE_URL=http://127.0.0.2:$(cat "$T/atk/port") node_get "$T/b.out" "$T/b.err" rc "$SOCK_B" "$1"
    wait "$pid"
    cat "$T/atk/log" >>"$T/attacks.log"
}
# refused_audit LABEL REASON: an audit line for B's refused post of LABEL from 127.0.0.2 with REASON.
refused_audit() {
    grep "\"action\":\"postPass\",\"outcome\":\"refused\",\"tpm_hash\":\"$HASH_B\",\"label\":\"$1\"" "$T/audit.jsonl" |
        grep "\"peer\":\"127.0.0.2:" | grep -F "$2" >/dev/null
}
# secret_file NAME: the manifest in DIR holding a Secret named NAME (as the KMS writes them).
secret_file() { grep -l "^kind: Secret$" "$DB"/* 2>/dev/null | xargs -r grep -lE "^  name: \"?$1\"?$" | head -1; }
no_secret() { [ -z "$(secret_file "$1")" ]; }
printf '{"passphrase":"attacker-known","error":"","generated_by":""}\n' >"$T/plain-untagged.json"
printf '{"passphrase":"attacker-known","error":"","generated_by":"tpm"}\n' >"$T/plain-tpm.json"

# ---- before A ever booted: every attack refused, nothing created ----
attack COS_OEM pass
check "B is not registered for A's partition label (sanity: the proxy relays a real exchange)" \
    '[ "$rc" = 1 ] && grep -q "no volume found with data from request and hash: $HASH_B" "$T/b.err"'
attack FLEET "json:$T/plain-untagged.json"
check "B posting an attacker-known plaintext into the fleet key A uses: refused, B is told why" \
    '[ "$rc" = 1 ] && grep -q "did not store.*generated_by must be tpm" "$T/b.err" && grep -q "posted (json)" "$T/atk/log"'
check "...the audit log says why, with B's hash and address" 'refused_audit FLEET "generated_by must be tpm"'
attack FLEET "json:$T/plain-tpm.json"
check "the same plaintext claiming generated_by tpm: refused (not a TPM ciphertext)" \
    '[ "$rc" = 1 ] && grep -q "did not store.*not a TPM ciphertext" "$T/b.err" && refused_audit FLEET "not a TPM ciphertext"'
attack FLEET pass
check "B's own genuine TPM ciphertext into the operator's fleet key: refused (named by the operator)" \
    '[ "$rc" = 1 ] && grep -q "did not store.*named by the operator" "$T/b.err" && refused_audit FLEET "secret fleet-key is named by the operator"'
check "...no fleet-key Secret was created" 'no_secret fleet-key'
attack STEAL pass
check "B's partition naming A's derived Secret: refused" \
    '[ "$rc" = 1 ] && grep -q "did not store.*named by the operator" "$T/b.err" && refused_audit STEAL "named by the operator"'
attack PERSISTENT pass
check "B's default name colliding with A's ($GEN_A): refused, referenced by another TPM" \
    '[ "$rc" = 1 ] && grep -q "did not store.*referenced by another TPM" "$T/b.err" && refused_audit PERSISTENT "secret $GEN_A is referenced by another TPM"'
check "...the KMS log names the other volume for the operator" 'grep -q "also referenced by SealedVolume $VOL_A" "$T/kms.log"'
check "...no Secret $GEN_A was created" 'no_secret "$GEN_A"'
attack OWN "gb:"
check "B's own partition with generated_by \"\": refused" \
    '[ "$rc" = 1 ] && grep -q "generated_by must be tpm" "$T/b.err" && refused_audit OWN "generated_by must be tpm"'
attack OWN "json:$T/plain-tpm.json"
check "B's own partition with a plaintext: refused" \
    '[ "$rc" = 1 ] && grep -q "not a TPM ciphertext" "$T/b.err" && refused_audit OWN "not a TPM ciphertext"'
check "...nothing was written for B's partition, no attacker text anywhere in DIR" \
    'no_secret node-b-own && ! grep -rq attacker-known "$DB"'
attack OWN pass
check "B's own genuine ciphertext under its own default name: stored, B gets its key" \
    '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/b.out" && ! no_secret node-b-own'

# ---- the operator removes B's references to A's names; A boots ----
rm "$DB/node-b.yaml"
node_get "$T/a1" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "A gets its own generated key" '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/a1"'
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_OEM
check "A cannot create the operator's fleet key either: refused until the operator writes it" \
    '[ "$rc" = 1 ] && grep -q "named by the operator" "$T/err" && no_secret fleet-key'
secret_a=$(secret_file "$GEN_A")
cp "$secret_a" "$T/secret-a.before"

# ---- B attacks A's existing Secret ----
b_manifests
# (The KMS now has a Secret for these names: the proxy hides it from B's node so that it posts.)
attack STEAL "json:$T/plain-tpm.json" force
check "B posting a plaintext into A's existing Secret: refused" '[ "$rc" = 1 ] && refused_audit STEAL "not a TPM ciphertext"'
attack STEAL pass force
check "B posting its ciphertext into A's existing Secret: refused" '[ "$rc" = 1 ] && refused_audit STEAL "named by the operator"'
attack PERSISTENT pass force
check "B's colliding default name on A's existing Secret: refused" '[ "$rc" = 1 ] && refused_audit PERSISTENT "referenced by another TPM"'
check "A's Secret file is untouched" 'cmp -s "$T/secret-a.before" "$secret_a"'
node_get "$T/a2" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "A still gets its own key, the same one" '[ "$rc" = 0 ] && cmp -s "$T/a1" "$T/a2"'
check "the KMS never stored or logged the attacker's text" '! grep -rq attacker-known "$DB" "$T/audit.jsonl" "$T/kms.log"'
cut -c1-160 "$T/attacks.log" | diag

done_testing
