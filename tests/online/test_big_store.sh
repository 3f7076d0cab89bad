#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# A store bigger than the old 4,096-file limit: 20,000 one-file SealedVolumes (as `challenger
# register` writes one file per node), and a real swtpm node whose file sorts last by name. The
# KMS loads them all (nothing skipped, no "more than N manifest files" error) and serves the last
# node, whose SealedVolume is found through the by-hash index. The store follows DIR with inotify:
# the node's Secret renamed over while the KMS loads the 20,000 files, and again while it serves,
# is served within a few seconds; its SealedVolume deleted, the node is refused.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require python3

mkdir -p "$DB" && chmod 700 "$DB"
python3 - "$DB" <<'P'
import hashlib, os, sys
db = sys.argv[1]
for i in range(20000):
    h = hashlib.sha256(b"fleet-node-%d" % i).hexdigest()
    with open(os.path.join(db, "sealedvolume-node-%05d.yaml" % i), "w") as f:
        f.write("apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\n"
                "metadata: {name: node-%05d, namespace: default}\n"
                "spec:\n  TPMHash: \"%s\"\n  partitions:\n    - label: COS_PERSISTENT\n" % (i, h))
P
swtpm_start "$(golden_state node-a ekcert)"
HASH=$(node_hash "$TPM_SOCK") || bail "tpm-hash failed"
printf %s "the-last-node-of-twenty-thousand" >"$T/pass"
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH" --label COS_PERSISTENT \
    --volume zzzz-last-node --passphrase-file "$T/pass"
[ "$rc" = 0 ] || bail "register failed: $(cat "$T/err")"
check "DIR holds more than 20,000 manifest files" '[ "$(ls "$DB" | wc -l)" -gt 20000 ]'
kms_start
node_get "$T/got" "$T/err" rc "$TPM_SOCK" COS_PERSISTENT
check "the node whose file sorts last is served" '[ "$rc" = 0 ] && [ "$(cat "$T/got")" = the-last-node-of-twenty-thousand ] || { diag <"$T/err"; false; }'
check "no file was skipped (no file-count error in the KMS log)" '! grep -q "manifest files; only the first" "$T/kms.log"'
"$KAIROS_KMS" challenger list --db "$DB" >"$T/list" 2>/dev/null
check "challenger list shows every volume (20,001)" '[ "$(grep -c "^node-\|^zzzz-last-node" "$T/list")" = 20001 ]'
kms_stop

# ---- edits while loading and while serving: inotify, not a rescan per request ----
SECRET_FILE=$(ls "$DB"/secret-*.yaml)
SECRET_NAME=$(sed -n 's/^  name: //p' "$SECRET_FILE")
[ -n "$SECRET_NAME" ] || bail "no Secret name in $SECRET_FILE"
rename_secret() { # PASSPHRASE: the node's Secret rewritten as editors and kubectl-style tools do
    printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: default}\nstringData: {passphrase: "%s"}\n' \
        "$SECRET_NAME" "$1" >"$DB/.edit.tmp"
    chmod 600 "$DB/.edit.tmp"
    mv -f "$DB/.edit.tmp" "$SECRET_FILE"
}
# served_within SECONDS WANT: asks until the node gets WANT (or the time is up); RC and GOT say the last.
served_within() {
    local until=$(($(date +%s) + $1))
    while :; do
        node_get "$T/got" "$T/err" rc "$TPM_SOCK" COS_PERSISTENT
        [ "$rc" = 0 ] && [ "$(cat "$T/got")" = "$2" ] && return 0
        [ "$(date +%s)" -ge "$until" ] && return 1
        sleep 0.2
    done
}
rm -f "$T/kms.port"
"$KAIROS_KMS" challenger --db "$DB" --listen 127.0.0.1:0 --port-file "$T/kms.port" --audit-log "$T/audit.jsonl" \
    2>>"$T/kms.log" &
KMS_PID=$!
on_exit "stop_pid $KMS_PID"
sleep 0.3 # the KMS is reading the 20,000 files (or about to)
rename_secret edited-while-loading
wait_port_file "$T/kms.port" "$KMS_PID" 60 || bail "the KMS did not listen within 60 s: $(tail -3 "$T/kms.log")"
KMS_URL=http://127.0.0.1:$(cat "$T/kms.port")
check "a Secret renamed over while the KMS loads is served in its new version" \
    'served_within 10 edited-while-loading || { diag <"$T/err"; false; }'
rename_secret edited-while-serving
check "a Secret renamed over while the KMS serves is served within a few seconds" \
    'served_within 5 edited-while-serving || { echo "got: $(cat "$T/got")" | diag; false; }'
rm -f "$DB"/sealedvolume-zzzz-last-node*.yaml
until=$(($(date +%s) + 5))
while :; do
    node_get "$T/got" "$T/err" rc "$TPM_SOCK" COS_PERSISTENT
    { [ "$rc" != 0 ] || [ "$(date +%s)" -ge "$until" ]; } && break
    sleep 0.2
done
check "its SealedVolume deleted, the node is refused" '[ "$rc" != 0 ] && [ ! -s "$T/got" ] && grep -q "no volume found" "$T/err"'
kms_stop
done_testing
