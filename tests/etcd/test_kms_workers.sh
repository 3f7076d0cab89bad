#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# challenger --etcd --workers 2 over a 3-member cluster with https endpoints, client certificates
# and etcd authentication (tests/lib/etcd.sh `tls`) (README "HA"):
#  (a) every worker process has etcd connections of its own (no socket shared with the other)
#      and answers /readyz; 1,000 G1 and 256 G3 unlocks (kms-loadgen; G3 learns each node's PCRs:
#      learning writes from both workers) through the pair: 0 failed, and both processes served;
#      each worker alone (the other stopped with SIGSTOP: it accepts nothing) serves too; each
#      index entry has the revisions of its SealedVolume (written in the same transaction);
#  (b) `challenger quarantine --etcd` (another process) is refused by each worker within a few
#      seconds, and `release` lets the node in again at each;
#  (c) generated keys: 128 nodes without a Secret post their TPM ciphertext through the
#      2-worker challenger and through a second challenger at once: 0 failed, one Secret per
#      node, read back the same through both;
#  (d) SIGHUP lists the prefix again in every worker; SIGTERM stops every worker process.
. "$(dirname "$0")/../lib/common.sh"
ETCD_TOOL=$1
. "$(dirname "$0")/../lib/etcd.sh"
require curl ss
. "$(dirname "$0")/../lib/loadgen.sh"
NODES=256
cd "$T" || bail "no test directory"
alive() { kill -0 "$1" 2>/dev/null; }
# CPU ticks (user + system) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

etcd_cluster_start tls
printf 'kms-workers-pw\n' >"$T/kms.pw"
etcd_enable_auth kms kms-workers-pw /kairos-kms # /kairos-kms/ and /kairos-kms-gen/
P=$T/pki
ETCD=(--etcd "$ETCD_ENDPOINTS" --etcd-cacert "$P/ca.pem" --etcd-cert "$P/client.pem" --etcd-key "$P/client.key"
      --etcd-user kms --etcd-password-file "$T/kms.pw")
CHALLENGER_STORE=("${ETCD[@]}")
ch() { run_kkms "$T/ch.out" "$T/ch.err" rc challenger "$@" "${ETCD[@]}"; }

# only PID: every process of the pair but PID stopped (SIGSTOP): PID accepts every connection.
only() {
    local p
    for p in "$PID_W" "$CHILD"; do [ "$p" = "$1" ] && kill -CONT "$p" || kill -STOP "$p"; done
}
both() { kill -CONT "$PID_W" "$CHILD" 2>/dev/null; }
# etcd_conns PID: the established connections of PID to the cluster's client ports.
etcd_conns() {
    local ep port n=0
    for ep in "${ETCD_EP[@]}"; do
        port=${ep##*:}
        n=$((n + $(ss -tnpH state established "( dport = :$port )" 2>/dev/null | grep -c "pid=$1,")))
    done
    echo "$n"
}

# ---- (a) ----
LG_LIMIT=1500 lg register --db "$T/fleet" --nodes "$NODES" --seed "$SEED" 2>"$T/register.err"
check "kms-loadgen register: $NODES nodes in a DIR" \
    '[ "$(ls "$T/fleet" | grep -c "^loadgen-node-.*\.yaml$")" = "$NODES" ]'
ch import --from-db "$T/fleet"
check "challenger import over https, client certificate and user: exit 0" '[ "$rc" = 0 ]' || diag <"$T/ch.err"

run_kkms "$T/o" "$T/e" rc challenger "${ETCD[@]}" --workers 0
check "--workers 0 with --etcd: still a usage error" '[ "$rc" = 2 ] && grep -q -- "--workers 0: expected 1 to" "$T/e"'
challenger_start W --workers 2
for i in $(seq 50); do [ "$(pgrep -c -P "$PID_W")" = 1 ] && break; sleep 0.1; done
CHILD=$(pgrep -P "$PID_W")
check "--etcd --workers 2: a second worker process" '[ -n "$CHILD" ] && [ "$(pgrep -c -P "$PID_W")" = 1 ]'
on_exit "kill -CONT $PID_W $CHILD 2>/dev/null"
check "/readyz 200 (loaded and watching)" 'wait_ready "$URL_W"'
check "no refusal of --workers with --etcd any more" '! grep -q "one process per challenger" "$T/kms-W.log"'
# both_connected: each process has an etcd connection (its watch) within 20 s.
both_connected() {
    local i
    for i in $(seq 100); do
        [ "$(etcd_conns "$PID_W")" -ge 1 ] && [ "$(etcd_conns "$CHILD")" -ge 1 ] && return 0
        sleep 0.2
    done
    return 1
}
check "each worker process has etcd connections of its own (its watch at least)" both_connected
shared=$(for ep in "${ETCD_EP[@]}"; do ss -tnpH state established "( dport = :${ep##*:} )"; done |
    grep -c "pid=$PID_W,.*pid=$CHILD,\|pid=$CHILD,.*pid=$PID_W,")
check "no etcd connection is shared by the two processes" '[ "$shared" = 0 ]'
for w in "$PID_W" "$CHILD"; do
    only "$w"
    check "worker $w alone answers /readyz 200 (its own store)" 'wait_ready "$URL_W"'
    lg run --url "$URL_W" --nodes "$NODES" --seed "$SEED" --concurrency 8 --exchanges 32 --timeout 60 \
        >"$T/alone-$w.json" 2>"$T/alone-$w.err"
    check "worker $w alone: 32 G1 unlocks, 0 failed" \
        '[ "$(json "$T/alone-$w.json" failed)" = 0 ] && [ "$(json "$T/alone-$w.json" ok)" = 32 ]' || diag <"$T/alone-$w.err"
done
both
t0p=$(ticks "$PID_W")
t0c=$(ticks "$CHILD")
lg run --url "$URL_W" --nodes "$NODES" --seed "$SEED" --concurrency 32 --exchanges 1000 --timeout 300 \
    >"$T/g1.json" 2>"$T/g1.err"
rc1=$?
lg run --url "$URL_W" --nodes "$NODES" --seed "$SEED" --protocol g3 --concurrency 32 --exchanges "$NODES" \
    --timeout 300 >"$T/g3.json" 2>"$T/g3.err"
rc3=$?
diag <"$T/g1.json"
diag <"$T/g3.json"
check "1,000 G1 unlocks through the 2-worker challenger: 0 failed" \
    '[ "$rc1" = 0 ] && [ "$(json "$T/g1.json" failed)" = 0 ] && [ "$(json "$T/g1.json" ok)" = 1000 ]' || diag <"$T/g1.err"
check "$NODES G3 unlocks (each node learned, from either worker): 0 failed" \
    '[ "$rc3" = 0 ] && [ "$(json "$T/g3.json" failed)" = 0 ] && [ "$(json "$T/g3.json" ok)" = "$NODES" ]' || diag <"$T/g3.err"
dp=$(($(ticks "$PID_W") - t0p))
dc=$(($(ticks "$CHILD") - t0c))
diag <<<"CPU ticks during the load: first process $dp, second worker $dc"
check "both worker processes served (each used CPU during the load)" '[ "$dp" -ge 5 ] && [ "$dc" -ge 5 ]'
check "the audit lines name this challenger (one instance name for its workers)" \
    '[ "$(grep -c "\"outcome\":\"ok\"" "$T/audit-W.jsonl")" -ge 1256 ] &&
     [ "$(grep -o "\"instance\":\"[^\"]*\"" "$T/audit-W.jsonl" | sort -u)" = "\"instance\":\"W\"" ]'
etcdt "${ETCD_AUTH_OPTS[@]}" list /kairos-kms/sealedvolumes/ >"$T/vols" 2>"$T/vols.err"
learned=0
for i in 0 1 2 3; do
    etcdt "${ETCD_AUTH_OPTS[@]}" get "/kairos-kms/sealedvolumes/$(printf 'loadgen-node-%05d' "$i")" 2>/dev/null |
        grep -q pcrValues && learned=$((learned + 1))
done
check "the G3 learning writes are in etcd (nodes 0-3 have pcrValues)" '[ "$learned" = 4 ]'
# revs KEY: "mod=M create=C" of KEY.
revs() { etcdt "${ETCD_AUTH_OPTS[@]}" get "$1" 2>/dev/null | grep -o "mod=[0-9]* create=[0-9]*"; }
same=0
for i in 0 1 2 3; do
    v=$(printf 'loadgen-node-%05d' "$i")
    h=$(lg node-info --seed "$SEED" --node "$i" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tpm_hash"])')
    a=$(revs "/kairos-kms/sealedvolumes/$v")
    b=$(revs "/kairos-kms/index/tpmhash/$h/$v")
    [ -n "$a" ] && [ "$a" = "$b" ] && same=$((same + 1))
done
check "each index entry was written in the same transaction as its SealedVolume (import, G3 learning)" '[ "$same" = 4 ]'

# ---- (b) ----
HASH0=$(lg node-info --seed "$SEED" --node 0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["tpm_hash"])')
check "node 0's TPM hash" '[ "${#HASH0}" = 64 ]'
ch quarantine "$HASH0"
check "challenger quarantine --etcd (another process): exit 0" '[ "$rc" = 0 ]' || diag <"$T/ch.err"
# refused_at PID WANT: node 0 (G3: its PCRs were learned) through worker PID alone is refused as
# quarantined (WANT=1) / served (0) within 10 s.
refused_at() {
    local i f
    only "$1"
    for i in $(seq 20); do
        lg run --url "$URL_W" --nodes 1 --seed "$SEED" --protocol g3 --exchanges 1 --timeout 10 >"$T/q.json" 2>"$T/q.err"
        f=$(json "$T/q.json" failed 2>/dev/null)
        [ "$2" = 1 ] && [ "$f" = 1 ] && grep -q quarantined "$T/q.err" && return 0
        [ "$2" = 0 ] && [ "$f" = 0 ] && return 0
        sleep 0.5
    done
    return 1
}
check "the quarantine reaches the first process within a few seconds" 'refused_at "$PID_W" 1'
check "...and the second worker" 'refused_at "$CHILD" 1'
check "...whose refusal the audit log says" 'grep -q "quarantined" "$T/audit-W.jsonl"'
both
ch release "$HASH0"
check "challenger release --etcd: exit 0" '[ "$rc" = 0 ]' || diag <"$T/ch.err"
check "released: the first process serves node 0 again" 'refused_at "$PID_W" 0'
check "...and the second worker" 'refused_at "$CHILD" 0'
both

# ---- (c) ----
GEN=/kairos-kms-gen/
GN=128
lg register --db "$T/gen" --nodes "$GN" --seed "$SEED" --no-secret 2>"$T/register-gen.err"
ch import --etcd-prefix "$GEN" --from-db "$T/gen"
check "$GN nodes without a Secret imported under $GEN" '[ "$rc" = 0 ]' || diag <"$T/ch.err"
challenger_start G --etcd-prefix "$GEN" --workers 2
challenger_start H --etcd-prefix "$GEN" --workers 1
check "the 2-worker challenger G and challenger H are ready" 'wait_ready "$URL_G" && wait_ready "$URL_H"'
posts_start "$GN" G H
check "every node posted through G (2 workers) and H at once: 0 failed" 'posts_ok G H'
check_posts_stored "$GEN" "$GN" G H "${ETCD_AUTH_OPTS[@]}"

# ---- (d) ----
kill -HUP "$PID_W"
for i in $(seq 50); do [ "$(grep -c "listing /kairos-kms/ again (SIGHUP)" "$T/kms-W.log")" -ge 2 ] && break; sleep 0.1; done
check "SIGHUP: every worker lists the prefix again" \
    '[ "$(grep -c "listing /kairos-kms/ again (SIGHUP)" "$T/kms-W.log")" = 2 ]'
check "...and stays ready" 'wait_ready "$URL_W"'
GCHILD=$(pgrep -P "$PID_G")
kill -TERM "$PID_W" "$PID_G"
for i in $(seq 150); do alive "$PID_W" || alive "$CHILD" || alive "$PID_G" || alive "$GCHILD" || break; sleep 0.1; done
check "SIGTERM: every worker process of both challengers exits" \
    '! alive "$PID_W" && ! alive "$CHILD" && ! alive "$PID_G" && [ -n "$GCHILD" ] && ! alive "$GCHILD"'
wait "$PID_W"
rcw=$?
check "...the first process with exit 0" '[ "$rcw" = 0 ]'
check "no worker ran into an error of its etcd client" '! grep -qi "cannot make this worker" "$T/kms-W.log" "$T/kms-G.log"'
done_testing
