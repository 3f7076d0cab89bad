#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Two challengers over one 3-member etcd cluster (tests/lib/etcd.sh) keep a fleet unlocking
# while the cluster loses its leader and while one challenger dies (README "HA"):
#  (a) 256 simulated nodes (bench/ kms-loadgen, keys from the shared cache) registered in a DIR,
#      imported into etcd with `challenger import`; challengers A and B serve from etcd;
#  (b) 1,000 G1 unlocks, 500 through each challenger, while the etcd leader is killed by PID a
#      moment after the load starts: 0 failed unlocks (the loadgen retries within its --timeout);
#  (c) the killed member, restarted with its old data, rejoins (3 members, one leader);
#  (d) kill -9 of challenger A: the nodes keep unlocking through B;
#  (e) generated keys under another prefix: 128 nodes without a static Secret post their TPM
#      ciphertext (/postPass) through two challengers at once, each node through both, while the
#      leader is killed again: 0 failed, each Secret stored exactly once, read back the same
#      through either challenger.
. "$(dirname "$0")/../lib/common.sh"
ETCD_TOOL=$1
. "$(dirname "$0")/../lib/etcd.sh"
. "$(dirname "$0")/../lib/loadgen.sh"
NODES=256
cd "$T" || bail "no test directory"

etcd_cluster_start
CHALLENGER_STORE=(--etcd "$ETCD_ENDPOINTS" --workers 1)
diag <<<"cluster $ETCD_ENDPOINTS, leader member $(etcd_leader)"

# ---- (a) ----
LG_LIMIT=1500 lg register --db "$T/fleet" --nodes "$NODES" --seed "$SEED" 2>"$T/register.err"
check "kms-loadgen register: $NODES nodes in a DIR" \
    '[ "$(ls "$T/fleet" | grep -c "^loadgen-node-.*\.yaml$")" = "$NODES" ]'
timeout -k 5 120 "$KAIROS_KMS" challenger import --etcd "$ETCD_ENDPOINTS" --from-db "$T/fleet" \
    >"$T/import.out" 2>"$T/import.err"
rc=$?
check "challenger import --from-db: exit 0" '[ "$rc" = 0 ]' || diag <"$T/import.err"
challenger_start A
challenger_start B
check "both challengers are ready (/readyz 200)" 'wait_ready "$URL_A" && wait_ready "$URL_B"'
lg run --url "$URL_A" --nodes "$NODES" --seed "$SEED" --concurrency 16 --exchanges 64 --timeout 120 \
    >"$T/warm.json" 2>"$T/warm.err"
check "a first 64 unlocks through A: 0 failed" '[ "$(json "$T/warm.json" failed)" = 0 ] && [ "$(json "$T/warm.json" ok)" = 64 ]'

# ---- (b) ----
lg run --url "$URL_A" --nodes "$NODES" --seed "$SEED" --concurrency 32 --exchanges 500 --timeout 300 \
    >"$T/runA.json" 2>"$T/runA.err" &
runA=$!
lg run --url "$URL_B" --nodes "$NODES" --seed "$SEED" --concurrency 32 --exchanges 500 --timeout 300 \
    >"$T/runB.json" 2>"$T/runB.err" &
runB=$!
on_exit "stop_pid $runA; stop_pid $runB"
sleep 1.5
leader=$(etcd_leader)
check "the cluster has a leader to kill" '[ -n "$leader" ]'
etcd_kill "$leader"
diag <<<"killed the etcd leader, member $leader (pid by the fixture), during the load"
wait "$runA"
rcA=$?
wait "$runB"
rcB=$?
diag <"$T/runA.json"
diag <"$T/runB.json"
check "1,000 unlocks through A and B with the leader killed: 0 failed" \
    '[ "$rcA" = 0 ] && [ "$rcB" = 0 ] && [ "$(json "$T/runA.json" failed)" = 0 ] && [ "$(json "$T/runB.json" failed)" = 0 ] &&
     [ "$(json "$T/runA.json" ok)" = 500 ] && [ "$(json "$T/runB.json" ok)" = 500 ]'
check "...and both challengers served some of them (their audit logs)" \
    '[ "$(grep -c "\"outcome\":\"ok\"" "$T/audit-A.jsonl")" -ge 500 ] && [ "$(grep -c "\"outcome\":\"ok\"" "$T/audit-B.jsonl")" -ge 500 ]'
check "the audit lines name the challenger that decided" \
    'grep -q "\"instance\":\"A\"" "$T/audit-A.jsonl" && grep -q "\"instance\":\"B\"" "$T/audit-B.jsonl"'

# ---- (c) ----
etcd_restart "$leader"
check "the killed member restarts with its old data and the cluster agrees on one leader" 'etcd_wait_healthy 30'
check "...3 members up" '[ "$(etcd_status | grep -c member=)" = 3 ]'

# ---- (d) ----
kill -KILL "$PID_A"
wait "$PID_A" 2>/dev/null
lg run --url "$URL_B" --nodes "$NODES" --seed "$SEED" --concurrency 16 --exchanges 128 --timeout 120 \
    >"$T/afterA.json" 2>"$T/afterA.err"
check "challenger A killed with SIGKILL: 128 unlocks through B, 0 failed" \
    '[ "$(json "$T/afterA.json" failed)" = 0 ] && [ "$(json "$T/afterA.json" ok)" = 128 ]'

# ---- (e) ----
GEN=/kairos-kms-gen/
GN=128
lg register --db "$T/gen" --nodes "$GN" --seed "$SEED" --no-secret 2>"$T/register-gen.err"
timeout -k 5 120 "$KAIROS_KMS" challenger import --etcd "$ETCD_ENDPOINTS" --etcd-prefix "$GEN" --from-db "$T/gen" \
    >"$T/import-gen.out" 2>"$T/import-gen.err"
check "$GN nodes without a Secret imported under $GEN" '[ "$?" = 0 ]' || diag <"$T/import-gen.err"
challenger_start C --etcd-prefix "$GEN"
challenger_start D --etcd-prefix "$GEN"
check "challengers C and D are ready" 'wait_ready "$URL_C" && wait_ready "$URL_D"'
posts_start "$GN" C D
sleep 1
leader=$(etcd_leader)
[ -n "$leader" ] && etcd_kill "$leader"
diag <<<"killed the etcd leader, member ${leader:-none}, during the posts"
check "every node posted through C and D at once, the leader killed: 0 failed" 'posts_ok C D'
etcd_restart "$leader"
etcd_wait_healthy 30
check_posts_stored "$GEN" "$GN" C D

done_testing
