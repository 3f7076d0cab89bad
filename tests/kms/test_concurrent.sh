#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# The dir store shared by processes: a reader process never sees a missing or half-written
# record while other processes rewrite the same files; two nodes posting for the same Secret at
# once store exactly one; writers killed mid-way leave no partial manifest.
# Usage: test_concurrent.sh KMS_TOOL
. "$(dirname "$0")/../lib/common.sh"

TOOL=${1:?usage: test_concurrent.sh KMS_TOOL}
HA=aaaaaaaa00000000000000000000000000000000000000000000000000000000
HB=bbbbbbbb00000000000000000000000000000000000000000000000000000000
DB=$T/db
mkdir -m 700 "$DB"
export KMS_POLL_MS=0

manifest() {  # NAME HASH PASSPHRASE
    printf 'apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: %s}\nspec:\n  TPMHash: "%s"\n  partitions:\n    - label: DATA\n  quarantined: false\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: %s-data}\nstringData: {passphrase: "%s"}\n' "$1" "$2" "$1" "$3"
}

# ---- one reader, two writers on the same files ----
{ manifest a $HA alpha; echo ---; manifest b $HB bravo; } >"$DB/shared.yaml"
chmod 600 "$DB/shared.yaml"
KMS_STOP_FILE=$T/stop timeout -k 5 120 "$TOOL" "$DB" hammer 100000000 $HA DATA >"$T/hammer.out" 2>"$T/hammer.err" &
reader=$!
on_exit "kill $reader 2>/dev/null"
writer_failed=0
for i in $(seq 1 40); do
    timeout 30 "$TOOL" "$DB" quarantine $HB >/dev/null 2>>"$T/writer.err" || writer_failed=$((writer_failed + 1))
    timeout 30 "$TOOL" "$DB" release $HB >/dev/null 2>>"$T/writer.err" || writer_failed=$((writer_failed + 1))
    # An operator's tool replacing a whole file (write a copy, rename it over the original).
    { manifest a $HA "alpha$((i % 2))"; echo ---; manifest b $HB bravo; } >"$T/next.yaml"
    chmod 600 "$T/next.yaml"
    mv "$T/next.yaml" "$DB/shared.yaml"
done
touch "$T/stop"
wait $reader
rc=$?
check "a reader process got an answer for every lookup while the file was rewritten 120 times" \
    '[ $rc = 0 ] && grep -qx "failed 0" "$T/hammer.out" && [ "$(awk "\$1 ~ /^alpha/ {n += \$2} END {print n+0}" "$T/hammer.out")" -gt 0 ]'
diag <"$T/hammer.out"
check "the other volume of the file ends released, as the last command left it" \
    '"$TOOL" "$DB" list 2>/dev/null | grep -q "^b	$HB	active"'
check "the writers' quarantine/release all succeeded" '[ $writer_failed = 0 ] || { grep -v "SealedVolume(s) of" "$T/writer.err" | diag; false; }'

# ---- two nodes post for the same Secret at the same moment ----
for i in $(seq 1 8); do
    h=$(printf 'cc%062d' "$i")
    printf 'apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\nmetadata: {name: race%d}\nspec:\n  TPMHash: "%s"\n  partitions: [{label: COS_PERSISTENT}]\n' "$i" "$h" >"$DB/race$i.yaml"
    chmod 600 "$DB/race$i.yaml"
done
# Two different node ciphertexts (base64url of 256 bytes, 342 characters).
printf %s "$(printf 'F%.0s' $(seq 341))A" >"$T/p1"
printf %s "$(printf 'S%.0s' $(seq 341))A" >"$T/p2"
winners=0 losers=0
for i in $(seq 1 8); do
    h=$(printf 'cc%062d' "$i")
    "$TOOL" "$DB" postpass "$h" COS_PERSISTENT vda5 "" "$T/p1" >"$T/post1" 2>/dev/null &
    p1=$!
    "$TOOL" "$DB" postpass "$h" COS_PERSISTENT vda5 "" "$T/p2" >"$T/post2" 2>/dev/null &
    p2=$!
    wait $p1 $p2
    winners=$((winners + $(cat "$T/post1" "$T/post2" | grep -cx ok)))
    losers=$((losers + $(cat "$T/post1" "$T/post2" | grep -c "already exists")))
done
check "8 races of two postPass: one stored, one refused each time ($winners/$losers)" '[ $winners = 8 ] && [ $losers = 8 ]'
check "exactly one Secret file per race and no conflict" \
    '[ "$(ls "$DB" | grep -c "^secret-race")" = 8 ] && ! "$TOOL" "$DB" list 2>&1 | grep -q -e conflict -e "defined twice"'

# ---- writers killed at random moments ----
for i in $(seq 1 30); do
    h=$(printf 'dd%062d' "$i")
    "$TOOL" "$DB" register "$h" --name "killed$i" --label COS_PERSISTENT --passphrase-file "$T/p1" >/dev/null 2>&1 &
    pid=$!
    sleep "$(printf "0.%03d" $((RANDOM % 140 + 10)))"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
done
bad=0
for f in "$DB"/*.yaml; do
    "$TOOL" check "$f" >/dev/null 2>"$T/check.err" || { bad=$((bad + 1)); diag <"$T/check.err"; }
done
check "after 30 writers killed with SIGKILL every manifest in DIR is complete" '[ $bad = 0 ]'
"$TOOL" "$DB" list >"$T/list" 2>"$T/list.err"
check "and the store loads without a broken file" '[ $? = 0 ] && ! grep -q "^!" "$T/list"'
diag < <(echo "registered before the kill: $(grep -c "^killed" "$T/list"); temporary files left (hidden, never loaded): $(ls -a "$DB" | grep -c '^\.kms-tmp')")

done_testing
