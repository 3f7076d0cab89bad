#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# A /postPass storm against `challenger --db DIR --workers 2`, and the KMS killed (SIGKILL, the
# parent and both workers) in the middle of it. kms-loadgen --mode postpass lists every post the
# KMS acknowledged in --acked-file (a line per post, synced before it goes on). Then:
#  - every acknowledged node has its Secret file in DIR (the ciphertext it posted, generated_by tpm);
#  - every manifest in DIR parses (`challenger list` names no broken file) and nothing but
#    hidden temporary files (never loaded) is left besides the manifests;
#  - a restarted KMS serves each acknowledged node the ciphertext it posted (--mode readback).
# The nodes are the first 400 of tests/bench/test_loadgen.sh's seed (their keys are cached).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kms.sh"
require python3 pgrep
. "$(dirname "$0")/../lib/loadgen.sh"
NODES=400
cd "$T" || bail "no test directory"

lg register --db "$DB" --nodes "$NODES" --seed "$SEED" --no-secret 2>err
rc=$?
check "register $NODES nodes without a Secret" '[ "$rc" = 0 ] && [ "$(ls "$DB" | grep -c "^loadgen-node-")" = "$NODES" ]'

kms_start --workers 2 --max-conns-per-peer 1024
mapfile -t workers < <(pgrep -P "$KMS_PID")
check "--workers 2: a parent and a second worker process" '[ "${#workers[@]}" = 1 ]'
: >acked
lg run --url "$KMS_URL" --nodes "$NODES" --seed "$SEED" --mode postpass --concurrency 64 --acked-file acked \
    --timeout 120 >storm 2>stormerr &
storm=$!
on_exit "stop_pid $storm"
# Mid-storm: once a quarter of the nodes were acknowledged (at most 60 s).
for _ in $(seq 600); do
    [ "$(wc -l <acked)" -ge $((NODES / 4)) ] && break
    kill -0 "$storm" 2>/dev/null || break
    sleep 0.1
done
kill -KILL "$KMS_PID" "${workers[@]}" 2>/dev/null
wait "$KMS_PID" 2>/dev/null
at_kill=$(wc -l <acked)
sleep 1
stop_pid "$storm"
echo "acknowledged when the KMS was killed: $at_kill; in all: $(wc -l <acked) of $NODES" | diag
check "the storm was cut in the middle (some posts acknowledged, not all)" \
    '[ "$(wc -l <acked)" -gt 0 ] && [ "$(wc -l <acked)" -lt "$NODES" ]'
# alive PID: running (a zombie waiting for its new parent is not).
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
check "no KMS process is left" '! alive "$KMS_PID" && ! alive "${workers[0]}"'

missing=0
bad=0
while read -r vol; do
    f=$DB/secret-$vol-cos-persistent.yaml
    if [ ! -f "$f" ]; then
        missing=$((missing + 1))
        echo "acknowledged but not in DIR: $vol" | diag
    elif ! grep -q "^  generated_by: tpm$" "$f" || ! grep -q "^  passphrase: \"\?[A-Za-z0-9_-]\{342\}\"\?$" "$f"; then
        bad=$((bad + 1))
        echo "acknowledged but its Secret file is not the posted ciphertext: $f" | diag
    fi
done <acked
check "every acknowledged post has its Secret file in DIR" '[ "$missing" = 0 ]'
check "...holding a 342-character ciphertext generated_by tpm" '[ "$bad" = 0 ]'
check "...no acknowledged node twice" '[ "$(sort acked | uniq -d | wc -l)" = 0 ]'

"$KAIROS_KMS" challenger list --db "$DB" >list 2>listerr
rc=$?
check "challenger list: exit 0, every manifest parses (no \"!\" line)" '[ "$rc" = 0 ] && ! grep -q "^!" list'
check "...all $NODES SealedVolumes listed" '[ "$(grep -c "^loadgen-node-" list)" = "$NODES" ]'
others=$(ls "$DB" | grep -v '^loadgen-node-[0-9]*\.yaml$' | grep -v '^secret-loadgen-node-[0-9]*-cos-persistent\.yaml$')
check "nothing but manifests among the files the KMS loads (temporary files are hidden)" '[ -z "$others" ]'
echo "hidden temporary files left: $(ls -A "$DB" | grep -c '^\.')" | diag

kms_start --workers 2 --max-conns-per-peer 1024
lg run --url "$KMS_URL" --nodes "$NODES" --seed "$SEED" --mode readback --acked-file acked --concurrency 32 \
    --timeout 120 >readback 2>readerr
rc=$?
diag <readback
check "a restarted KMS serves every acknowledged node the ciphertext it posted" \
    '[ "$rc" = 0 ] && [ "$(json readback ok)" = "$(wc -l <acked)" ] && [ "$(json readback failed)" = 0 ]'
kms_stop

done_testing
