#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# challenger --ek-ca: only TPMs whose EK certificate chains to a trusted CA get a key. swtpm nodes
# whose EK certificates a CA of this test signed (swtpm_localca: a root and an intermediate, one
# pair per golden state) are accepted with that CA, refused with another one; a TPM without an EK
# certificate (a plain swtpm, or one whose certificate NV index was deleted) is refused. Each
# refusal: an error to the node and the reason in the audit log.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require openssl tpm2_nvundefine

GOLD_A=$(golden_state node-a ekcert)
GOLD_B=$(golden_state node-b ekcert)
GOLD_P=$(golden_state node-plain plain)
swtpm_start "$GOLD_A"; SOCK_A=$TPM_SOCK
swtpm_start "$GOLD_B"; SOCK_B=$TPM_SOCK
swtpm_start "$GOLD_P"; SOCK_P=$TPM_SOCK
swtpm_start "$GOLD_A"; SOCK_NC=$TPM_SOCK # node A's TPM, its EK certificate deleted below
tpm2 nvundefine -C p 0x01c00002 >"$T/nvundefine.log" 2>&1 || bail "tpm2_nvundefine failed: $(cat "$T/nvundefine.log")"
HASH_A=$(node_hash "$SOCK_A") || bail "tpm-hash failed"
HASH_B=$(node_hash "$SOCK_B") || bail "tpm-hash failed"
HASH_P=$(node_hash "$SOCK_P") || bail "tpm-hash failed"
HASH_NC=$(node_hash "$SOCK_NC") || bail "tpm-hash failed"
check "the TPM without its certificate is still node A (same EK, same hash)" '[ "$HASH_NC" = "$HASH_A" ]'

# The CAs: node A's (root + intermediate) as a directory and as one file, node B's as a directory.
mkdir -p "$T/ca-a" "$T/ca-b" "$T/ca-root-only"
cp "$GOLD_A/ca/swtpm-localca-rootca-cert.pem" "$T/ca-a/root.pem"
cp "$GOLD_A/ca/issuercert.pem" "$T/ca-a/intermediate.crt"
cat "$T/ca-a/root.pem" "$T/ca-a/intermediate.crt" >"$T/ca-a.pem"
cp "$GOLD_B/ca/swtpm-localca-rootca-cert.pem" "$T/ca-b/root.pem"
cp "$GOLD_B/ca/issuercert.pem" "$T/ca-b/intermediate.pem"
cp "$GOLD_A/ca/swtpm-localca-rootca-cert.pem" "$T/ca-root-only/root.pem"
echo "not a certificate" >"$T/ca-b/README" # ignored: not *.pem / *.crt

mkdir -p "$DB" && chmod 700 "$DB"
printf 'ek-ca-test-passphrase\n' >"$T/pass"
for h in "$HASH_A" "$HASH_B" "$HASH_P"; do
    run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$h" --label COS_PERSISTENT --passphrase-file "$T/pass"
    [ "$rc" = 0 ] || bail "register failed: $(cat "$T/err")"
done
audit_refused() { # HASH REASON: an audit line refusing HASH with REASON
    grep "\"action\":\"getPass\",\"outcome\":\"refused\",\"tpm_hash\":\"$1\"" "$T/audit.jsonl" | grep -F "\"reason\":\"$2" >/dev/null
}
served() { [ "$rc" = 0 ] && [ "$(cat "$T/out")" = ek-ca-test-passphrase ]; }

# ---- the default: no EK certificate check, as upstream ----
kms_start
node_get "$T/out" "$T/err" rc "$SOCK_P" COS_PERSISTENT
check "without --ek-ca a TPM without an EK certificate is served (upstream's behaviour)" 'served'
kms_stop

# ---- --ek-ca with node A's CA (a directory) ----
kms_start --ek-ca "$T/ca-a"
check "the KMS says how many CA certificates it loaded" 'grep -q -- "--ek-ca $T/ca-a: 2 CA certificate(s)" "$T/kms.log"'
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "node A, whose EK certificate that CA signed, is served" 'served'
node_get "$T/out" "$T/err" rc "$SOCK_B" COS_PERSISTENT
check "node B, whose EK certificate another CA (same names, other keys) signed, is refused" \
    '[ "$rc" = 1 ] && [ ! -s "$T/out" ] && grep -q "EK certificate not trusted" "$T/err"'
check "...the audit log says why" 'audit_refused "$HASH_B" "EK certificate not trusted: "'
node_get "$T/out" "$T/err" rc "$SOCK_P" COS_PERSISTENT
check "a TPM without an EK certificate (software EK) is refused" \
    '[ "$rc" = 1 ] && [ ! -s "$T/out" ] && grep -q "EK certificate required" "$T/err"'
check "...the audit log says why" 'audit_refused "$HASH_P" "EK certificate required: the TPM sent its EK without a certificate"'
node_get "$T/out" "$T/err" rc "$SOCK_NC" COS_PERSISTENT
check "node A's own TPM with its certificate NV index deleted is refused" \
    '[ "$rc" = 1 ] && [ ! -s "$T/out" ] && grep -q "EK certificate required" "$T/err" && audit_refused "$HASH_A" "EK certificate required"'
check "no passphrase reached the refused nodes' logs or the audit log" \
    '! grep -rq ek-ca-test-passphrase "$T/audit.jsonl" "$T/kms.log" "$T/err"'
kms_stop

# ---- the same CA as one file; node B's CA; a root without the intermediate ----
kms_start --ek-ca "$T/ca-a.pem"
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "--ek-ca FILE holding root and intermediate: node A is served" 'served'
kms_stop
kms_start --ek-ca "$T/ca-b"
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "with node B's CA, node A is refused" '[ "$rc" = 1 ] && grep -q "EK certificate not trusted" "$T/err"'
node_get "$T/out" "$T/err" rc "$SOCK_B" COS_PERSISTENT
check "...and node B is served" 'served'
kms_stop
kms_start --ek-ca "$T/ca-root-only"
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "the root alone does not do when the node does not send the intermediate: refused" \
    '[ "$rc" = 1 ] && grep -q "EK certificate not trusted" "$T/err"'
kms_stop

# ---- unusable --ek-ca: the KMS does not start ----
run_kkms "$T/out" "$T/err" rc challenger --db "$DB" --listen 127.0.0.1:0 --ek-ca "$T/missing"
check "--ek-ca naming nothing: exit 1, the flag and path named" '[ "$rc" = 1 ] && grep -q -- "--ek-ca $T/missing: " "$T/err"'
mkdir "$T/ca-empty"
run_kkms "$T/out" "$T/err" rc challenger --db "$DB" --listen 127.0.0.1:0 --ek-ca "$T/ca-empty"
check "--ek-ca with no certificate: exit 1" '[ "$rc" = 1 ] && grep -q "no certificate found" "$T/err"'
cp "$GOLD_A/ca/signkey.pem" "$T/ca-empty/key.pem"
run_kkms "$T/out" "$T/err" rc challenger --db "$DB" --listen 127.0.0.1:0 --ek-ca "$T/ca-empty"
check "--ek-ca with a file that holds no certificate (a key): exit 1, the file named" \
    '[ "$rc" = 1 ] && grep -q -- "--ek-ca $T/ca-empty/key.pem: " "$T/err"'

done_testing
