#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# challenger --etcd: two challengers over one 3-member etcd cluster (tests/lib/etcd.sh) with swtpm
# nodes: a static key registered through one and read through the other, a generated key posted
# through B and read through A (etcd holds only its TPM ciphertext), quarantine through A seen by
# B, two challengers racing to store one generated Secret, import/export of a DIR, kill -9 of a
# challenger and of the etcd leader, bad input (etcd down at start, a junk value, auth failure).
. "$(dirname "$0")/../lib/common.sh"
ETCD_TOOL=$1
. "$(dirname "$0")/../lib/etcd.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require curl python3

has() { grep -F -- "$2" "$1" >/dev/null; }
EO=()

# ch_start NAME [ARGS...]: challenger_start (tests/lib/etcd.sh) over the store EO names, one process
# (the tests stop and kill it by PID; tests/etcd/test_kms_workers.sh covers --workers).
ch_start() {
    local n=$1
    shift
    CHALLENGER_STORE=("${EO[@]}")
    challenger_start "$n" --workers 1 "$@"
}
ch() { run_kkms "$T/ch.out" "$T/ch.err" rc challenger "$@" "${EO[@]}"; }
# until_ok N CMD: runs CMD up to N times, 1 s apart, until it succeeds.
until_ok() { local n=$1 i; shift; for i in $(seq "$n"); do eval "$1" && return 0; sleep 1; done; return 1; }
# The value of key K (etcd_tool prints "value V mod=..."), as JSON, field F (python expression on d).
json_of_key() { etcdt get "$1" 2>/dev/null | sed -n 's/^value \(.*\) mod=[0-9]* create=.*/\1/p'; }

etcd_cluster_start
EO=(--etcd "$ETCD_ENDPOINTS")
swtpm_start "$(golden_state node-a ekcert)"; SOCK_A=$TPM_SOCK
swtpm_start "$(golden_state node-b ekcert)"; SOCK_B=$TPM_SOCK
HASH_A=$(node_hash "$SOCK_A") || bail "tpm-hash failed"
HASH_B=$(node_hash "$SOCK_B") || bail "tpm-hash failed"

# ---- (a) two challengers over one cluster ----
ch_start A
ch_start B
check "both challengers report ready once the (empty) store is loaded" 'wait_ready "$URL_A" 10 && wait_ready "$URL_B" 10'
printf 'static-passphrase-of-a\n' >"$T/pass-a"
ch register --tpm-hash "$HASH_A" --label COS_PERSISTENT --passphrase-file "$T/pass-a"
check "register --etcd (static key): exit 0" '[ "$rc" = 0 ]'
until_ok 5 'KMS_URL=$URL_A node_get "$T/out" "$T/err" grc "$SOCK_A" COS_PERSISTENT && [ "$grc" = 0 ]'
check "the static key is served through A" '[ "$(cat "$T/out")" = static-passphrase-of-a ]'
swtpm_start "$(golden_state node-e ekcert)"; SOCK_E=$TPM_SOCK
HASH_E=$(node_hash "$SOCK_E") || bail "tpm-hash failed"
printf 'static-e\n' >"$T/pass-e"
ch register --tpm-hash "$HASH_E" --label COS_PERSISTENT --passphrase-file "$T/pass-e"
until_ok 5 'NODE_PROTOCOL=g3 KMS_URL=$URL_B node_get "$T/out" "$T/err" grc "$SOCK_E" COS_PERSISTENT && [ "$grc" = 0 ]'
check "G3 (/tpm-attestation) through B serves a static key" '[ "$(cat "$T/out")" = static-e ]'
check "and the attestation it learned is in etcd (compare-and-swap of the SealedVolume)" \
    'json_of_key "/kairos-kms/sealedvolumes/node-${HASH_E:0:8}" | grep -q "ekPublicKey.*BEGIN PUBLIC KEY"'
until_ok 5 'NODE_PROTOCOL=g3 KMS_URL=$URL_A node_get "$T/out" "$T/err" grc "$SOCK_E" COS_PERSISTENT && [ "$grc" = 0 ]'
check "A serves it too from the volume B rewrote (PCRs now pinned)" '[ "$(cat "$T/out")" = static-e ]'
# pending and approve: a TPM nobody registered attests (G3) through B, is recorded in etcd,
# listed and approved through the command line, then served through A
swtpm_start "$(golden_state node-f ekcert)"; SOCK_F=$TPM_SOCK
HASH_F=$(node_hash "$SOCK_F") || bail "tpm-hash failed"
NODE_PROTOCOL=g3 KMS_URL=$URL_B node_get "$T/out" "$T/err" grc "$SOCK_F" COS_PERSISTENT
ch pending
check "an unregistered TPM is refused and recorded as pending in etcd" \
    '[ "$grc" != 0 ] && [ "$rc" = 0 ] && has "$T/ch.out" "$HASH_F" && etcdt get "/kairos-kms/pending/$HASH_F" | grep -q PendingTPM'
ch approve "${HASH_F:0:12}"
check "approve --etcd: exit 0, the pending record is gone" \
    '[ "$rc" = 0 ] && ! etcdt get "/kairos-kms/pending/$HASH_F" >/dev/null 2>&1'
until_ok 5 'NODE_PROTOCOL=g3 KMS_URL=$URL_A node_get "$T/out" "$T/err" grc "$SOCK_F" COS_PERSISTENT && [ "$grc" = 0 ]'
check "the approved TPM gets a key through A" '[ "$grc" = 0 ] && [ -s "$T/out" ]'
ch register --tpm-hash "$HASH_B" --label COS_PERSISTENT
check "register --etcd (generated key): exit 0" '[ "$rc" = 0 ]'
until_ok 5 'KMS_URL=$URL_B node_get "$T/passB1" "$T/err" grc "$SOCK_B" COS_PERSISTENT && [ "$grc" = 0 ]'
check "generated key: the node posts it through B and gets a 32-character passphrase" \
    'grep -qxE "[0-9a-z]{32}" "$T/passB1"'
KMS_URL=$URL_A node_get "$T/passB2" "$T/err" grc "$SOCK_B" COS_PERSISTENT
check "the generated key is read back through A" '[ "$grc" = 0 ] && cmp -s "$T/passB1" "$T/passB2"'
skey=$(etcdt list /kairos-kms/secrets/ 2>/dev/null | awk '/generated_by/ {print $1}' | head -1)
json_of_key "$skey" >"$T/gen.json"
python3 - "$T/gen.json" "$(cat "$T/passB1")" >"$T/gen.check" 2>&1 <<'EOF'
import base64, json, sys
d = json.load(open(sys.argv[1]))
data = {k: base64.b64decode(v).decode() for k, v in d["data"].items()}
assert d["kind"] == "Secret" and data["generated_by"] == "tpm", d
c = data["passphrase"]
assert len(c) == 342 and set(c) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), c
assert sys.argv[2] not in json.dumps(d) and sys.argv[2] not in c
print("ciphertext only")
EOF
check "etcd holds the generated Secret as JSON with only the node's TPM ciphertext" 'has "$T/gen.check" "ciphertext only"'
check "etcd holds the SealedVolumes as JSON manifests, and the TPM hash index" \
    'json_of_key "/kairos-kms/sealedvolumes/node-${HASH_B:0:8}" | grep -q "\"kind\":\"SealedVolume\"" &&
     etcdt get "/kairos-kms/index/tpmhash/$HASH_B/node-${HASH_B:0:8}" | grep -q "sealedvolumes/node-"'
check "the audit lines name the challenger that decided (instance)" \
    'grep "\"postPass\"" "$T/audit-B.jsonl" | grep -q "\"instance\":\"B\"" && grep -q "\"instance\":\"A\"" "$T/audit-A.jsonl"'
check "no passphrase in any log" '! grep -qF -e "$(cat "$T/passB1")" -e static-passphrase-of-a "$T"/*.log "$T"/*.jsonl'
ch quarantine "$HASH_B"
check "quarantine --etcd through the command line: exit 0" '[ "$rc" = 0 ]'
until_ok 5 'KMS_URL=$URL_B node_get "$T/out" "$T/err" grc "$SOCK_B" COS_PERSISTENT; [ "$grc" != 0 ]'
check "quarantine is refused at B within a few seconds" 'grep -q quarantined "$T/err"'
ch release "$HASH_B"
until_ok 5 'KMS_URL=$URL_B node_get "$T/out" "$T/err" grc "$SOCK_B" COS_PERSISTENT && [ "$grc" = 0 ]'
check "release: served again" 'cmp -s "$T/out" "$T/passB1"'
# B's watch (on the first endpoint: nothing failed over yet) breaks while B is stopped; the change
# made meanwhile is compacted away, so the watch cannot resume: B lists again.
kill -STOP "$PID_B"
etcd_kill 0
EO=(--etcd "${ETCD_EP[1]},${ETCD_EP[2]}")
ch quarantine "$HASH_B"
qrev=$(etcdt_ep 1 get "/kairos-kms/sealedvolumes/node-${HASH_B:0:8}" | sed -n 's/.* mod=\([0-9]*\) .*/\1/p')
etcdt_ep 1 put /kairos-kms-other/after-compaction x >/dev/null 2>&1
etcdt_ep 1 compact "$((qrev + 1))" >/dev/null 2>&1
kill -CONT "$PID_B"
until_ok 10 'KMS_URL=$URL_B node_get "$T/out" "$T/err" grc "$SOCK_B" COS_PERSISTENT; [ "$grc" != 0 ]'
check "a change made while B's watch was down, its history compacted: B lists again and refuses" \
    'grep -q quarantined "$T/err" && grep -q "compacted" "$T/kms-B.log"'
ch release "$HASH_B"
etcd_restart 0
etcd_wait_healthy 20
EO=(--etcd "$ETCD_ENDPOINTS")
until_ok 10 'KMS_URL=$URL_B node_get "$T/out" "$T/err" grc "$SOCK_B" COS_PERSISTENT && [ "$grc" = 0 ]'
check "released again, served by B" 'cmp -s "$T/out" "$T/passB1"'
ch list
check "list --etcd shows both volumes" 'has "$T/ch.out" "$HASH_A" && has "$T/ch.out" "$HASH_B"'

# ---- (d) two challengers racing to store the same generated Secret ----
# One TPM asking through both at once: its escrow key is made once (against a throwaway dir KMS),
# then its state is copied into two swtpm instances.
swtpm_start "$(golden_state node-c ekcert)"
HASH_C=$(node_hash "$TPM_SOCK") || bail "tpm-hash failed"
DB=$T/throwaway kms_start
run_kkms "$T/o" "$T/e" rc challenger register --db "$T/throwaway" --tpm-hash "$HASH_C" --label COS_PERSISTENT
node_get "$T/o" "$T/e" grc "$TPM_SOCK" COS_PERSISTENT
[ "$grc" = 0 ] || bail "could not make node C's escrow key: $(tail -2 "$T/e")"
kms_stop
swtpm_stop "$TPM_PID" "$TPM_SOCK"
mkdir -p "$T/golden-c/state" && cp -a "$TPM_DIR/." "$T/golden-c/state/" && rm -f "$T/golden-c/state/sock"*
swtpm_start "$T/golden-c"; SOCK_C1=$TPM_SOCK
swtpm_start "$T/golden-c"; SOCK_C2=$TPM_SOCK
# Several rounds, one new partition each: the two nodes start together, so in some rounds both
# find no Secret and both post (the loser is told it exists and asks again).
same=0 single=0 raced=0
for round in 1 2 3 4; do
    ch register --volume "node-${HASH_C:0:8}" --tpm-hash "$HASH_C" --label "RACE$round"
    sleep 0.5
    KMS_URL=$URL_A node_get "$T/c1" "$T/c1.err" rc1 "$SOCK_C1" "RACE$round" &
    p1=$!
    KMS_URL=$URL_B node_get "$T/c2" "$T/c2.err" rc2 "$SOCK_C2" "RACE$round" &
    p2=$!
    wait $p1
    wait $p2
    [ -s "$T/c1" ] && cmp -s "$T/c1" "$T/c2" && same=$((same + 1))
    n=$(etcdt list /kairos-kms/secrets/ 2>/dev/null | grep -c "^/kairos-kms/secrets/node-${HASH_C:0:8}-race$round ")
    [ "$n" = 1 ] && single=$((single + 1))
    [ "$(grep -h "postPass $HASH_C" "$T/kms-A.log" "$T/kms-B.log" | grep -c "RACE$round\|race$round")" -ge 2 ] &&
        raced=$((raced + 1))
done
check "race: one Secret stored per partition (4 rounds)" '[ "$single" = 4 ]'
check "race: both nodes (one TPM) got the same key through A and B (4 rounds)" '[ "$same" = 4 ]'
diag <<<"rounds where both challengers took a post: $raced of 4"

# ---- (b) import/export round trip ----
SRC=$T/src
mkdir -p "$SRC" && chmod 700 "$SRC"
printf 'imported-static\n' >"$T/pass-i"
run_kkms "$T/o" "$T/e" rc challenger register --db "$SRC" --tpm-hash "$(printf 'a%.0s' {1..64})" --label L1 \
    --passphrase-file "$T/pass-i"
run_kkms "$T/o" "$T/e" rc challenger register --db "$SRC" --tpm-hash "$(printf 'b%.0s' {1..64})" --label L2
run_kkms "$T/o" "$T/e" rc challenger quarantine --db "$SRC" "$(printf 'b%.0s' {1..64})"
cat >"$SRC/gen.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata: {name: node-bbbbbbbb-l2, namespace: default, labels: {tier: gold}}
stringData: {passphrase: "$(head -c 342 /dev/zero | tr '\0' A)", generated_by: tpm}
EOF
cat >"$SRC/labeled.yaml" <<EOF
apiVersion: keyserver.kairos.io/v1alpha1
kind: SealedVolume
metadata:
  name: labeled
  labels: {app.kubernetes.io/name: kairos, site: "edge: 7"}
  annotations: {note: "kept by import and export"}
spec:
  TPMHash: "$(printf 'd%.0s' {1..64})"
  partitions: [{label: L4}]
EOF
cat >"$SRC/pending-$(printf 'c%.0s' {1..64}).yaml" <<EOF
apiVersion: kairos-kms.io/v1alpha1
kind: PendingTPM
metadata: {name: pending-cccccccccccccccc}
spec:
  TPMHash: "$(printf 'c%.0s' {1..64})"
  ekPublicKey: ""
  pcrs: {}
  partition: {label: "L3", deviceName: "", uuid: ""}
  firstSeen: "2026-01-01T00:00:00Z"
  lastSeen: "2026-01-01T00:00:00Z"
EOF
chmod 600 "$SRC"/*.yaml
EO=(--etcd "$ETCD_ENDPOINTS" --etcd-prefix /backup/)
ch import --from-db "$SRC"
check "import: exit 0" '[ "$rc" = 0 ]'
ch import --from-db "$SRC"
check "import again: exit 0 (create-if-absent, same content)" '[ "$rc" = 0 ]'
ch export --to-db "$T/out-db"
check "export: exit 0, one file per object" '[ "$rc" = 0 ] && [ "$(ls "$T/out-db" | wc -l)" = 6 ]'
run_kkms "$T/l1" "$T/e" rc challenger list --db "$SRC"
run_kkms "$T/l2" "$T/e" rc challenger list --db "$T/out-db"
ch list
sed 's/\t[^\t]*:[0-9]*\t/\t/' "$T/l1" >"$T/l1n"
sed 's/\t[^\t]*:[0-9]*\t/\t/' "$T/l2" >"$T/l2n"
sed 's/\t[^\t]*:[0-9]*\t/\t/' "$T/ch.out" >"$T/l3n"
check "round trip: list of the source, of etcd and of the export agree (but file names)" \
    'cmp -s "$T/l1n" "$T/l2n" && cmp -s "$T/l1n" "$T/l3n"'
check "quarantined, generated and pending records made the trip" \
    'grep -q quarantined "$T/l2" && grep -q "generated_by: tpm" "$T"/out-db/secret-node-bbbbbbbb-l2.yaml &&
     [ -f "$T/out-db/pending-$(printf "c%.0s" {1..64}).yaml" ] && grep -q "$(printf "c%.0s" {1..64})" "$T/ch.out"'
check "metadata.labels and annotations made the trip (SealedVolume and Secret)" \
    'grep -qx "    \"app.kubernetes.io/name\": \"kairos\"" "$T/out-db/sealedvolume-labeled.yaml" &&
     grep -qx "    site: \"edge: 7\"" "$T/out-db/sealedvolume-labeled.yaml" &&
     grep -qx "    note: \"kept by import and export\"" "$T/out-db/sealedvolume-labeled.yaml" &&
     grep -qx "    tier: \"gold\"" "$T/out-db/secret-node-bbbbbbbb-l2.yaml" || ls "$T/out-db" | diag'
check "exported files are 0600" '[ -z "$(find "$T/out-db" -type f ! -perm 600)" ]'
ch export --to-db "$T/out-db"
check "export into a directory holding manifests is refused" '[ "$rc" = 1 ] && has "$T/ch.err" "export into a new or empty"'

# ---- many nodes: kms-loadgen's simulated nodes imported, then served from the etcd cache ----
if [ -x "${KKMS_LOADGEN:-}" ]; then
    timeout -k 5 600 "$KKMS_LOADGEN" register --db "$T/many" --nodes 256 --seed kairos-kms-loadgen-test 2>"$T/lg.err" ||
        bail "kms-loadgen register failed: $(tail -2 "$T/lg.err")"
    EO=(--etcd "$ETCD_ENDPOINTS" --etcd-prefix /load/)
    ch import --from-db "$T/many"
    check "import of 256 nodes (SealedVolume and Secret in one file each): exit 0" '[ "$rc" = 0 ]'
    ch_start L
    wait_ready "$URL_L" 10
    timeout -k 5 600 "$KKMS_LOADGEN" run --url "$URL_L" --nodes 256 --seed kairos-kms-loadgen-test --concurrency 32 \
        --exchanges 512 --timeout 200 >"$T/lg.out" 2>>"$T/lg.err"
    check "challenger --etcd serves /getPass to 256 imported nodes (512 exchanges, 32 at once)" \
        'tail -1 "$T/lg.out" | grep -q "\"failed\":0" && tail -1 "$T/lg.out" | grep -q "\"ok\":512"'
    diag <"$T/lg.out"
    stop_pid "$PID_L"
fi
EO=(--etcd "$ETCD_ENDPOINTS")

# ---- (e) bad input: a junk value under the prefix ----
etcdt put /kairos-kms/sealedvolumes/junk '{"this is": [not yaml' >/dev/null 2>&1
etcdt put /kairos-kms/secrets/wrong "$(printf 'apiVersion: v1\nkind: Foo\n')" >/dev/null 2>&1
python3 -c 'import sys; sys.stdout.write("apiVersion: v1\nkind: Secret\nmetadata: {name: big}\nstringData: {passphrase: \"" + "x" * 1200000 + "\"}\n")' >"$T/big.yaml"
etcdt put /kairos-kms/secrets/big "@$T/big.yaml" >/dev/null 2>&1
sleep 2
check "a junk value is skipped, its key named in A's log" 'has "$T/kms-A.log" "/kairos-kms/sealedvolumes/junk"'
check "a value of another kind is skipped, named" 'grep -F "/kairos-kms/secrets/wrong" "$T/kms-A.log" | grep -q skipped'
check "an oversized value (1.2 MB) is skipped, named; A stays ready" \
    'grep -F "/kairos-kms/secrets/big" "$T/kms-A.log" | grep -q "over 1048576" && ready "$URL_A"'
KMS_URL=$URL_A node_get "$T/out" "$T/err" grc "$SOCK_A" COS_PERSISTENT
check "the other records keep working" '[ "$grc" = 0 ] && [ "$(cat "$T/out")" = static-passphrase-of-a ]'
etcdt del /kairos-kms/sealedvolumes/junk >/dev/null 2>&1
etcdt del /kairos-kms/secrets/wrong >/dev/null 2>&1
etcdt del /kairos-kms/secrets/big >/dev/null 2>&1

# ---- (c) kill -9 a challenger, then the etcd leader ----
kill -KILL "$PID_A"
KMS_URL=$URL_B node_get "$T/out" "$T/err" grc "$SOCK_A" COS_PERSISTENT
check "challenger A killed: the node unlocks through B" '[ "$grc" = 0 ] && [ "$(cat "$T/out")" = static-passphrase-of-a ]'
swtpm_start "$(golden_state node-d ekcert)"; SOCK_D=$TPM_SOCK
HASH_D=$(node_hash "$SOCK_D") || bail "tpm-hash failed"
printf 'static-d\n' >"$T/pass-d"
leader=$(etcd_leader)
[ -n "$leader" ] || bail "no etcd leader"
etcd_kill "$leader"
# the register starts at once, during the election
timeout -k 5 60 "$KAIROS_KMS" challenger register "${EO[@]}" --tpm-hash "$HASH_D" --label COS_PERSISTENT \
    --passphrase-file "$T/pass-d" >"$T/reg-d.out" 2>"$T/reg-d.err" &
regpid=$!
KMS_URL=$URL_B node_get "$T/out" "$T/err" grc "$SOCK_A" COS_PERSISTENT
check "etcd leader killed: unlocks keep working (from the cache)" \
    '[ "$grc" = 0 ] && [ "$(cat "$T/out")" = static-passphrase-of-a ]'
wait $regpid
rc=$?
check "a register started as the leader died waits out the election and succeeds" '[ "$rc" = 0 ]'
diag <"$T/reg-d.err"
until_ok 5 'KMS_URL=$URL_B node_get "$T/out" "$T/err" grc "$SOCK_D" COS_PERSISTENT && [ "$grc" = 0 ]'
check "B serves the node registered after the leader died" '[ "$(cat "$T/out")" = static-d ]'
etcd_restart "$leader"
check "the killed member rejoins with its old data" 'etcd_wait_healthy 20 && etcdt_ep "$leader" get "/kairos-kms/sealedvolumes/node-${HASH_D:0:8}" | grep -q "^value "'

# ---- (e) etcd unreachable at start, auth failure ----
for i in 0 1 2; do etcd_kill "$i"; done
EO=(--etcd "$ETCD_ENDPOINTS" --etcd-timeout 3)
ch list
check "operator command, etcd unreachable: exit 1 after its deadline, an error naming the endpoints" \
    '[ "$rc" = 1 ] && has "$T/ch.err" "$ETCD_ENDPOINTS"'
ch_start C
until_ok 15 'has "$T/kms-C.log" "$ETCD_ENDPOINTS"'
check "server, etcd unreachable: up, /readyz 503, the error names the endpoints" \
    '! ready "$URL_C" && has "$T/kms-C.log" "$ETCD_ENDPOINTS"'
check "and /metrics says kairos_kms_store_ready 0" 'curl -s --max-time 5 "$URL_C/metrics" | grep -qx "kairos_kms_store_ready 0"'
for i in 0 1 2; do etcd_restart "$i"; done
etcd_wait_healthy 30
until_ok 30 'ready "$URL_C"'
check "it becomes ready once etcd is up (and kairos_kms_store_ready 1)" \
    'ready "$URL_C" && curl -s --max-time 5 "$URL_C/metrics" | grep -qx "kairos_kms_store_ready 1"'
KMS_URL=$URL_C node_get "$T/out" "$T/err" grc "$SOCK_A" COS_PERSISTENT
check "and serves" '[ "$grc" = 0 ] && [ "$(cat "$T/out")" = static-passphrase-of-a ]'
EO=(--etcd "$ETCD_ENDPOINTS")
printf 'kms-pw\n' >"$T/kms.pw"
printf 'wrong-pw\n' >"$T/wrong.pw"
etcd_enable_auth kms kms-pw /kairos-kms/
ch list --etcd-user kms --etcd-password-file "$T/wrong.pw"
check "auth failure: exit 1 with a clear error" '[ "$rc" = 1 ] && grep -qi "auth" "$T/ch.err"'
check "the password is not in any output" '! grep -q wrong-pw "$T/ch.err" "$T/ch.out"'
ch list --etcd-user kms --etcd-password-file "$T/kms.pw"
check "with the right password: served" '[ "$rc" = 0 ] && has "$T/ch.out" "$HASH_A"'
check "no sanitizer report from any challenger (ASan builds)" '! grep -l -e "Sanitizer" -e "runtime error" "$T"/*.log'
done_testing
