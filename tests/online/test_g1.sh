#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Online mode, G1 (docs/protocol-g1.md): our KMS on 127.0.0.1 and swtpm nodes running our
# discovery-challenger. Static keys, auto-generated keys (the KMS keeps only TPM ciphertext),
# refusals, a second partition, restart, and misbehaving peers.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require python3 cryptsetup openssl
PROBE="python3 $(dirname "$0")/wsprobe.py"

swtpm_start "$(golden_state node-a ekcert)"; SOCK_A=$TPM_SOCK
swtpm_start "$(golden_state node-b ekcert)"; SOCK_B=$TPM_SOCK
HASH_A=$(node_hash "$SOCK_A") || bail "tpm-hash failed"
HASH_B=$(node_hash "$SOCK_B") || bail "tpm-hash failed"

# ---- static keys: the operator's manifests, exactly as for upstream (docs/upstream.md §6.3) ----
static_volume static.yaml test2 mysecret "$HASH_A" awesome-plaintext-passphrase
kms_start
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "static key: the node gets the operator's passphrase" \
    '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = awesome-plaintext-passphrase ]'
check "the audit log has an ok line for it, without the passphrase" \
    'grep -q "\"outcome\":\"ok\"" "$T/audit.jsonl" && ! grep -q awesome "$T/audit.jsonl" "$T/kms.log"'
run_kkms "$T/out" "$T/err" rc discovery-challenger --tpm-device "$SOCK_A" get --partition-label COS_PERSISTENT \
    --challenger-server "$KMS_URL/" --timeout 20 --protocol g1
check "a trailing / in the server URL works (upstream #1386)" '[ "$rc" = 0 ]'

# ---- an unregistered node ----
node_get "$T/out" "$T/err" rc "$SOCK_B" COS_PERSISTENT
check "unregistered TPM: refused, exit 1, upstream's message with its hash" \
    '[ "$rc" = 1 ] && grep -q "no volume found with data from request and hash: $HASH_B" "$T/err" && [ ! -s "$T/out" ]'

# ---- auto-generated keys: register without a secret ----
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH_B" --label COS_PERSISTENT
check "challenger register (no secret): exit 0" '[ "$rc" = 0 ]'
node_get "$T/pass1" "$T/err" rc "$SOCK_B" COS_PERSISTENT
check "auto-generated: the node gets a 32-character passphrase" '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/pass1"'
secretfile=$(grep -l "generated_by" "$DB"/* | head -1)
check "the KMS stored a Secret manifest, mode 0600" '[ -n "$secretfile" ] && [ "$(stat -c %a "$secretfile")" = 600 ]'
check "...holding only ciphertext: the passphrase is nowhere in the KMS's data" \
    '! grep -rqF "$(cat "$T/pass1")" "$DB" "$T/audit.jsonl" "$T/kms.log"'
wire=$(sed -n 's/^ *passphrase: *"\{0,1\}\([A-Za-z0-9_-]\{300,\}\)"\{0,1\}$/\1/p' "$secretfile")
check "...a 342-character base64url RSA-2048 ciphertext, generated_by tpm" \
    '[ ${#wire} = 342 ] && grep -q "generated_by: *\"\{0,1\}tpm" "$secretfile"'
truncate -s 32M "$T/vol.img"
timeout 60 cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$T/pass1" "$T/vol.img"
printf %s "$wire" >"$T/wire"
check "the KMS's own data does not open the volume" '! timeout 60 cryptsetup open --test-passphrase --key-file "$T/wire" "$T/vol.img" 2>/dev/null'
node_get "$T/pass2" "$T/err" rc "$SOCK_B" COS_PERSISTENT
check "a later boot gets the same passphrase (decrypted by its TPM), which opens the volume" \
    '[ "$rc" = 0 ] && cmp -s "$T/pass1" "$T/pass2" && timeout 60 cryptsetup open --test-passphrase --key-file "$T/pass2" "$T/vol.img"'
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT --partition-name vda5
check "node A still gets its static key (each node its own volume)" '[ "$(cat "$T/out")" = awesome-plaintext-passphrase ]'

# ---- a second partition of the same node ----
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH_B" --label COS_OEM
node_get "$T/oem" "$T/err" rc "$SOCK_B" COS_OEM
check "a second partition gets its own passphrase" '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/oem" && ! cmp -s "$T/oem" "$T/pass1"'

# ---- quarantine ----
quarantine_cycle "$SOCK_B" "$HASH_B" "$T/pass1" "quarantined: COS_PERSISTENT"
run_kkms "$T/list" "$T/err" rc challenger list --db "$DB" --audit-log /dev/null
check "challenger list shows both nodes and no secret value" \
    '[ "$rc" = 0 ] && grep -q "$HASH_A" "$T/list" && grep -q "$HASH_B" "$T/list" && ! grep -qF "$(cat "$T/pass1")" "$T/list" && ! grep -q awesome "$T/list"'

# ---- a restart loses nothing ----
kms_stop
kms_start
node_get "$T/out" "$T/err" rc "$SOCK_B" COS_PERSISTENT
check "after a KMS restart the node gets the same passphrase" '[ "$rc" = 0 ] && cmp -s "$T/out" "$T/pass1"'

# ---- misbehaving peers: each refused, the KMS still serving ----
printf 'GARBAGE\r\n\r\n' >"$T/bad1"
check "malformed HTTP: answered 400" '[ "$($PROBE raw 127.0.0.1 "$KMS_PORT" "$T/bad1")" = "HTTP/1.1 400 Bad Request" ]'
{ printf 'GET /getPass HTTP/1.1\r\nHost: x\r\n'; for i in $(seq 200); do printf 'X-Filler-%d: %0200d\r\n' "$i" 0; done; printf '\r\n'; } >"$T/bad2"
check "oversized headers: answered 431" '$PROBE raw 127.0.0.1 "$KMS_PORT" "$T/bad2" | grep " 431 " >/dev/null'
printf 'GET /getPass HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer TPM%%%%notbase64\r\n\r\n' >"$T/bad3"
$PROBE raw 127.0.0.1 "$KMS_PORT" "$T/bad3" >"$T/probe" 2>&1
check "a token that is not base64: refused, the KMS says why" 'grep -q "invalid token" "$T/kms.log"'
for mode in unmasked badopcode; do
    $PROBE frames 127.0.0.1 "$KMS_PORT" $mode >"$T/probe" 2>&1
    check "WebSocket $mode frame without a token: dropped or refused" '! grep -q "^message 2 {\"EC\"" "$T/probe"'
done
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "...and the KMS still serves a good node" '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = awesome-plaintext-passphrase ]'

# A replayed answer: record a real exchange through a proxy, then replay its token and answer.
mkdir -p "$T/rec"
PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$PROBE proxy "$PPORT" "$KMS_PORT" "$T/rec" &
PROXY=$!
on_exit "kill $PROXY 2>/dev/null"
sleep 0.3
NODE_URL=http://127.0.0.1:$PPORT node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT
wait $PROXY
check "a node through the recording proxy still gets its key" '[ "$rc" = 0 ] && [ -s "$T/rec/node-1.bin" ]'
$PROBE token 127.0.0.1 "$KMS_PORT" "$T/rec" >"$T/token" 2>&1
check "an independent decoder reads our node's token: EK PEM and the four AK structures" \
    'grep -q "^EK -----BEGIN" "$T/token" && grep -q "^AK Public=[1-9].* CreateSignature=[1-9]" "$T/token"'
check "an independently encoded token (Python, Go's field order) is the same bytes and the KMS answers it with a challenge" \
    'grep -q "^same-bytes True" "$T/token" && grep -q "^reply {\"EC\":{\"Credential\"" "$T/token"'
$PROBE replay 127.0.0.1 "$KMS_PORT" "$T/rec" >"$T/replay" 2>&1
check "a replayed answer from an earlier exchange is refused" 'grep -q "invalid challenge response" "$T/replay" && ! grep -q awesome "$T/replay"'

done_testing
