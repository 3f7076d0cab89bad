#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Online mode, G3 (/tpm-attestation): our KMS on 127.0.0.1 and swtpm nodes running our
# discovery-challenger. Trust on first use with an escrowed key, PCR pinning and its refusal,
# deferred PCR enrollment from a live medium, EK pinning, quarantine, registered-only enrollment
# with pending and approve, static keys, and both generations against the same KMS.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require python3 cryptsetup openssl tpm2_pcrextend tpm2_pcrread xxd
: "${KKMS_NODE_ATTEST_TOOL:?}"
NODE_PROTOCOL=g3
pcr_extend() { TPM2TOOLS_TCTI="swtpm:path=$1" timeout 30 tpm2_pcrextend "$2:sha256=$(printf '%064x' 7)" >/dev/null 2>&1; }
vol_file() { grep -l "TPMHash: \"\{0,1\}$1" "$DB"/sealedvolume-*.yaml 2>/dev/null | head -1; }
audit_last() { tail -1 "$T/audit.jsonl"; }

swtpm_start "$(golden_state node-a ekcert)"; SOCK_A=$TPM_SOCK
swtpm_start "$(golden_state node-b ekcert)"; SOCK_B=$TPM_SOCK
HASH_A=$(node_hash "$SOCK_A") || bail "tpm-hash failed"
HASH_B=$(node_hash "$SOCK_B") || bail "tpm-hash failed"
mkdir -p "$DB" && chmod 700 "$DB"

# ---- trust on first use (upstream's policy), the key generated and escrowed by the node ----
kms_start --enroll tofu
node_get "$T/pass1" "$T/err" rc "$SOCK_A" COS_PERSISTENT
diag <"$T/err"
check "TOFU: a new TPM gets a 32-character passphrase over G3" '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/pass1"'
check "the exchange was /tpm-attestation, the quote over our nonce (audit)" \
    'grep -q "\"action\":\"tpm-attestation\",\"outcome\":\"ok\".*quote over our nonce" "$T/audit.jsonl"'
vf=$(vol_file "$HASH_A")
check "a SealedVolume tofu-<hash8> was written, pinning the EK and PCRs 0, 7, 11" \
    '[ -n "$vf" ] && grep -q "name: tofu-${HASH_A:0:8}" "$vf" && grep -q "ekPublicKey: \"-----BEGIN PUBLIC KEY-----" "$vf" &&
     grep -qE "^        \"7\": \"[0-9a-f]{64}\"" "$vf" && grep -qE "^        \"0\": \"[0-9a-f]{64}\"" "$vf" &&
     grep -qE "^        \"11\": \"[0-9a-f]{64}\"" "$vf" && grep -q "enrolledAt:" "$vf"'
sf=$(grep -l "generated_by" "$DB"/secret-*.yaml 2>/dev/null | head -1)
wire=$(sed -n 's/^ *passphrase: *"\{0,1\}\([A-Za-z0-9_-]\{300,\}\)"\{0,1\}$/\1/p' "$sf")
check "the Secret holds only the node's TPM ciphertext (342 characters, generated_by tpm)" \
    '[ ${#wire} = 342 ] && ! grep -rqF "$(cat "$T/pass1")" "$DB" "$T/audit.jsonl" "$T/kms.log"'
check "...under a valid Kubernetes name <volume>-<label>" 'grep -q "name: tofu-${HASH_A:0:8}-cos-persistent" "$sf"'
node_get "$T/pass2" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "the next boot gets the same passphrase (decrypted by its TPM)" '[ "$rc" = 0 ] && cmp -s "$T/pass1" "$T/pass2"'
node_get "$T/oem" "$T/err" rc "$SOCK_A" COS_OEM
check "a new partition of an enrolled TPM is enrolled too, with its own key" \
    '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/oem" && ! cmp -s "$T/oem" "$T/pass1" && grep -q "label: COS_OEM" "$(vol_file "$HASH_A")"'

# ---- a changed boot: PCR 7 extended ----
pcr_extend "$SOCK_A" 7 || bail "tpm2_pcrextend failed"
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT
check "PCR 7 changed: refused with upstream's message, nothing on stdout" \
    '[ "$rc" = 1 ] && [ ! -s "$T/out" ] && grep -q "PCR verification failed: PCR7 changed - boot state verification failed: expected [0-9a-f]\{64\}, got [0-9a-f]\{64\}" "$T/err"'
check "...and the audit line says why" 'audit_last | grep -q "\"outcome\":\"refused\".*PCR7 changed"'

# ---- deferred PCR enrollment: installation from a live medium, then the first real boot ----
node_get "$T/livepass" "$T/err" rc "$SOCK_B" COS_PERSISTENT --live
vf=$(vol_file "$HASH_B")
check "from a live medium: enrolled, PCR values left empty (learned later)" \
    '[ "$rc" = 0 ] && grep -q "^        \"7\": \"\"" "$vf"'
node_get "$T/bootpass" "$T/err" rc "$SOCK_B" COS_PERSISTENT --no-live
check "the first real boot: same key, and PCRs now pinned" \
    '[ "$rc" = 0 ] && cmp -s "$T/livepass" "$T/bootpass" && grep -qE "^        \"7\": \"[0-9a-f]{64}\"" "$vf" && grep -q lastVerifiedAt "$vf"'
node_get "$T/out" "$T/err" rc "$SOCK_B" COS_PERSISTENT --live
check "a later claim of a live medium does not unpin them (still served, values unchanged)" \
    '[ "$rc" = 0 ] && grep -qE "^        \"7\": \"[0-9a-f]{64}\"" "$vf"'
pcr_extend "$SOCK_B" 7
node_get "$T/out" "$T/err" rc "$SOCK_B" COS_PERSISTENT
check "...which are then enforced" '[ "$rc" = 1 ] && grep -q "PCR7 changed" "$T/err"'

# ---- quarantine ----
swtpm_start "$(golden_state node-c ekcert)"; SOCK_C=$TPM_SOCK
HASH_C=$(node_hash "$SOCK_C") || bail "tpm-hash failed"
node_get "$T/cpass" "$T/err" rc "$SOCK_C" COS_PERSISTENT
quarantine_cycle "$SOCK_C" "$HASH_C" "$T/cpass" "TPM is quarantined"

# ---- EK pinning: a SealedVolume of node D's hash whose enrolled EK is node A's ----
swtpm_start "$(golden_state node-d ekcert)"; SOCK_D=$TPM_SOCK
HASH_D=$(node_hash "$SOCK_D") || bail "tpm-hash failed"
ek_a=$(sed -n '/ekPublicKey/{s/^ *ekPublicKey: //;p}' "$(vol_file "$HASH_A")")
static_volume ekpin.yaml node-d dsecret "$HASH_D" static-key-of-d "  attestation:
    ekPublicKey: $ek_a"
node_get "$T/out" "$T/err" rc "$SOCK_D" COS_PERSISTENT
check "EK differs from the enrolled one: refused with upstream's message" \
    '[ "$rc" = 1 ] && grep -q "EK verification failed: EK public key does not match enrolled key" "$T/err"'
sed -i '/ekPublicKey/d; /attestation:/d' "$DB/ekpin.yaml"
node_get "$T/out" "$T/err" rc "$SOCK_D" COS_PERSISTENT
check "a static Secret is returned verbatim over G3" '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = static-key-of-d ]'
node_get "$T/out" "$T/err" rc "$SOCK_D" COS_PERSISTENT --protocol g1
check "the same node over G1 (--protocol g1) gets the same key" '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = static-key-of-d ]'
check "...served on /getPass (audit)" 'audit_last | grep -q "\"action\":\"getPass\",\"outcome\":\"ok\""'
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_OEM --protocol g1
check "G1 cannot bypass pinned PCRs: a volume pinning PCRs is refused on /getPass, saying why" \
    '[ "$rc" = 1 ] && [ ! -s "$T/out" ] && grep -q "pins PCR values: this TPM must attest its boot on /tpm-attestation" "$T/err"'
kms_stop

# ---- registered-only enrollment (the default): refused, pending, approved, served ----
swtpm_start "$(golden_state node-e ekcert)"; SOCK_E=$TPM_SOCK
HASH_E=$(node_hash "$SOCK_E") || bail "tpm-hash failed"
kms_start
node_get "$T/out" "$T/err" rc "$SOCK_E" COS_PERSISTENT
check "--enroll registered: an unknown TPM is refused with a clear reason" \
    '[ "$rc" = 1 ] && grep -q "TPM $HASH_E is not enrolled" "$T/err" && [ ! -s "$T/out" ]'
run_kkms "$T/pend" "$T/err" rc challenger pending --db "$DB"
check "challenger pending lists it with its partition and PCRs, no secret" \
    '[ "$rc" = 0 ] && grep -q "^$HASH_E	COS_PERSISTENT	0=.*7=.*11=" "$T/pend"'
check "...and no Secret or SealedVolume was written for it" '[ -z "$(vol_file "$HASH_E")" ]'
run_kkms "$T/out" "$T/err" rc challenger approve --db "$DB" "${HASH_E:0:12}"
check "challenger approve (a hash prefix): exit 0, a SealedVolume pinning its PCRs" \
    '[ "$rc" = 0 ] && grep -qE "^        \"7\": \"[0-9a-f]{64}\"" "$(vol_file "$HASH_E")"'
run_kkms "$T/pend" "$T/err" rc challenger pending --db "$DB"
check "...no longer pending" '! grep -q "$HASH_E" "$T/pend"'
node_get "$T/epass" "$T/err" rc "$SOCK_E" COS_PERSISTENT
check "the approved TPM is served (its escrowed key)" '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/epass"'
node_get "$T/out" "$T/err" rc "$SOCK_E" COS_PERSISTENT
check "...the same next boot" '[ "$rc" = 0 ] && cmp -s "$T/out" "$T/epass"'
node_get "$T/out" "$T/err" rc "$SOCK_E" COS_OEM
check "a partition not approved is refused under --enroll registered" '[ "$rc" = 1 ] && grep -q "not enrolled" "$T/err"'
run_kkms "$T/out" "$T/err" rc challenger approve --db "$DB" "$HASH_E"
node_get "$T/eoem" "$T/err" rc "$SOCK_E" COS_OEM
check "approving it adds the partition to the TPM's SealedVolume; then served" \
    '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/eoem" && grep -q "label: COS_OEM" "$(vol_file "$HASH_E")" &&
     [ ! -e "$DB/pending-$HASH_E.yaml" ]'
run_kkms "$T/list" "$T/err" rc challenger list --db "$DB"
check "challenger list shows attestation states and no secret" \
    '[ "$rc" = 0 ] && grep -q "pcrs-pinned" "$T/list" && ! grep -qF "$(cat "$T/epass")" "$T/list"'

# ---- plugin mode (kcrypt's discovery.password) with a G3 host's payload (it names the KMS) ----
plugin() { # the event for node E's COS_PERSISTENT
    python3 - "$KMS_URL" <<'EOF2'
import json, sys
data = {"partition": {"name": "vda5", "label": "COS_PERSISTENT", "uuid": ""}, "challenger_server": sys.argv[1]}
print(json.dumps({"name": "discovery.password", "data": json.dumps(data)}))
EOF2
}
plugin | timeout 90 "$KAIROS_KMS" discovery-challenger --tpm-device "$SOCK_E" discovery.password >"$T/resp" 2>"$T/err"
check "plugin mode, G3 payload: the node's key over /tpm-attestation" \
    'python3 -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(r[\"data\"] != open(sys.argv[2]).read() or r[\"error\"] != \"\")" "$T/resp" "$T/epass" &&
     tail -1 "$T/audit.jsonl" | grep -q "\"action\":\"tpm-attestation\",\"outcome\":\"ok\""'

# ---- register with pins: --pcr INDEX=HEX and --ek-pem FILE ----
swtpm_start "$(golden_state node-f ekcert)"; SOCK_F=$TPM_SOCK
HASH_F=$(node_hash "$SOCK_F") || bail "tpm-hash failed"
"$KKMS_NODE_ATTEST_TOOL" "$SOCK_F" ek-pem "$T/ekf.pem" >/dev/null 2>&1 || bail "cannot read node F's EK"
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH_F" --label COS_PERSISTENT \
    --pcr "7=$(printf '%064x' 1)" --ek-pem "$T/ekf.pem"
vf=$(vol_file "$HASH_F")
check "register --pcr --ek-pem: exit 0, the pins in spec.attestation" \
    '[ "$rc" = 0 ] && grep -q "^        \"7\": \"$(printf "%064x" 1)\"" "$vf" && grep -q "ekPublicKey: \"-----BEGIN PUBLIC KEY-----" "$vf"'
node_get "$T/out" "$T/err" rc "$SOCK_F" COS_PERSISTENT
check "a registered PCR value the node does not have: refused, expected and got named" \
    '[ "$rc" = 1 ] && grep -q "PCR7 changed - boot state verification failed: expected $(printf "%064x" 1), got" "$T/err"'
TPM2TOOLS_TCTI="swtpm:path=$SOCK_F" timeout 30 tpm2_pcrread sha256:7 -o "$T/pcr7" >/dev/null 2>&1 || bail "tpm2_pcrread failed"
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH_F" --label COS_OEM \
    --pcr "7=$(xxd -p -c 64 "$T/pcr7")"
node_get "$T/fpass" "$T/err" rc "$SOCK_F" COS_PERSISTENT
check "with its real PCR 7 registered: served (a key escrowed by the node)" '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/fpass"'

# ---- protocol auto: G3 at our KMS; G1 at a KMS without /tpm-attestation ----
NODE_PROTOCOL=auto node_get "$T/out" "$T/err" rc "$SOCK_E" COS_PERSISTENT
check "--protocol auto uses /tpm-attestation at our KMS" \
    '[ "$rc" = 0 ] && cmp -s "$T/out" "$T/epass" && audit_last | grep -q "\"action\":\"tpm-attestation\""'
kms_stop
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" -subj /CN=ca -days 2 >/dev/null 2>&1
kms_start --ek-ca "$T/ca.pem"
NODE_PROTOCOL=auto node_get "$T/out" "$T/err" rc "$SOCK_D" COS_PERSISTENT
check "--protocol auto falls back to G1 where /tpm-attestation answers 404 (here refused by --ek-ca)" \
    'grep -q "no /tpm-attestation (404): using the G1 protocol" "$T/err" && audit_last | grep -q "\"action\":\"getPass\""'

# ---- a KMS that sends {"error":..} in place of the challenge: reported, final, never misparsed ----
cat >"$T/errkms.py" <<'EOF2'
import base64, hashlib, os, socket, sys
sys.path.insert(0, os.environ["KKMS_SOURCE_ROOT"] + "/tests/online")
from wsprobe import listen, recv_until
s = listen("127.0.0.1", 0, sys.argv[1])
for _ in range(4):
    try:
        c, _ = s.accept()
    except socket.timeout:
        break
    c.settimeout(5)
    head = recv_until(c, b"\r\n\r\n")
    key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")]
    acc = base64.b64encode(hashlib.sha1(key[0] + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()) if key else b""
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
    msg = b'{"error":"Challenge generation: go away"}\n'
    c.sendall(bytes([0x81, len(msg)]) + msg)
    c.close()
EOF2
python3 "$T/errkms.py" "$T/errkms.port" &
ERRKMS=$!
on_exit "stop_pid $ERRKMS"
wait_port_file "$T/errkms.port" "$ERRKMS" 5 || bail "the error-sending KMS did not start"
NODE_URL=http://127.0.0.1:$(cat "$T/errkms.port") node_get "$T/out" "$T/err" rc "$SOCK_E" COS_PERSISTENT
check "an error in place of the challenge: reported as the KMS's refusal, final, no passphrase" \
    '[ "$rc" = 1 ] && [ ! -s "$T/out" ] && grep -q "the KMS refused: Challenge generation: go away" "$T/err" && ! grep -q "retrying" "$T/err"'

done_testing
