#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# The whole G1 exchange with a KMS found over mDNS (docs/upstream.md §7.1): our challenger and our
# responder in namespace B, a swtpm node in namespace A (its unix socket works across network
# namespaces) running discovery-challenger get --mdns against http://kms.local:PORT.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/lib.sh"
netns_up

node_and_db
ip netns exec "$NS_B" "$KAIROS_KMS" challenger --db "$DB" --listen 0.0.0.0:0 --port-file "$T/kms.port" \
    --audit-log "$T/audit.jsonl" </dev/null 2>>"$T/kms.log" &
KMS=$!
on_exit "stop_pid $KMS"
wait_port_file "$T/kms.port" "$KMS" 6 || bail "the KMS did not listen within 6 s: $(tail -3 "$T/kms.log")"
PORT=$(cat "$T/kms.port")
responder_start r1 --hostName kms.local --port "$PORT" --interfaceName vb
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH" --label COS_PERSISTENT
[ "$rc" = 0 ] || bail "challenger register failed: $(cat "$T/err")"

# node_get OUT ERR RC_VAR URL [ARGS...]: the node in A asks for COS_PERSISTENT's passphrase.
node_get() {
    local out=$1 err=$2 __rc=$3 url=$4
    shift 4
    in_a timeout -k 5 90 "$KAIROS_KMS" discovery-challenger --tpm-device "$TPM_SOCK" get \
        --partition-label COS_PERSISTENT --challenger-server "$url" --timeout 20 --protocol g1 "$@" >"$out" 2>"$err"
    printf -v "$__rc" '%d' $?
}

node_get "$T/pass1" "$T/err" rc "http://kms.local:$PORT" --mdns
if grep -q "unrecognized option\|unknown option" "$T/err"; then
    diag <"$T/err"
    bail "discovery-challenger get has no --mdns yet: lib/mdns is not wired into the node flow (lib/g3/client.c)"
fi
check "the node finds the KMS as kms.local over mDNS and gets a generated passphrase" \
    '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/pass1"'
check "the KMS served it (audit: ok) and stored only ciphertext" \
    'grep -q "\"outcome\":\"ok\"" "$T/audit.jsonl" && ! grep -rqF "$(cat "$T/pass1")" "$DB" "$T/audit.jsonl" "$T/kms.log"'
node_get "$T/pass2" "$T/err" rc "http://kms.local:8082/" --mdns
check "a later boot, with another port in the URL: the SRV's port wins, same passphrase" \
    '[ "$rc" = 0 ] && cmp -s "$T/pass1" "$T/pass2"'

lines=$(wc -l <"$T/audit.jsonl")
start=$(date +%s%N)
node_get "$T/out" "$T/err" rc "http://kms-missing.local:$PORT" --mdns
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
check "a .local name nobody announces: exit 1, the mDNS error, within its 5 s" \
    '[ "$rc" = 1 ] && grep -q "mdns: no answer for kms-missing.local within 5 s" "$T/err" && [ ! -s "$T/out" ] && [ "$elapsed" -lt 9000 ]'
check "...and no fall back to ordinary DNS or to any KMS" '[ "$(wc -l <"$T/audit.jsonl")" = "$lines" ]'

# What the node sends to the address it found: the original Host (docs/upstream.md §5.3). A recorder in B keeps
# the request head, announced by a second responder as kms-rec.local.
cat >"$T/recorder.py" <<'EOF'
import os, socket, sys
sys.path.insert(0, os.environ["KKMS_SOURCE_ROOT"] + "/tests/online")
from wsprobe import listen, recv_until
c, _ = listen("0.0.0.0", 30999).accept()
c.settimeout(5)
open(sys.argv[1], "wb").write(recv_until(c, b"\r\n\r\n"))
c.close()
EOF
ip netns exec "$NS_B" python3 "$T/recorder.py" "$T/request" &
RECORDER=$!
on_exit "stop_pid $RECORDER"
responder_start r2 --hostName kms-rec.local --port 30999 --interfaceName vb --instance recorder
in_a timeout -k 5 60 "$KAIROS_KMS" discovery-challenger --tpm-device "$TPM_SOCK" get --partition-label COS_PERSISTENT \
    --challenger-server "http://kms-rec.local:8082" --mdns --timeout 4 --protocol g1 >/dev/null 2>"$T/err"
wait $RECORDER
check "the node dials the address it found and sends Host: kms-rec.local:8082, as upstream" \
    'grep -q "^GET /getPass HTTP/1.1" "$T/request" && grep -qi "^Host: kms-rec.local:8082" "$T/request"'

done_testing
