#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# A challenger over etcd keeps releasing keys while requests of its own wait for etcd (README
# "HA"): one process (--workers 1), and two of the three etcd members stopped (SIGSTOP) so that
# the cluster has no quorum: no write commits, no linearizable read answers. Then:
#  (a) a G1 node with a generated key (its Secret is looked up in etcd before it is told to make
#      one) and a G3 node's first attestation (its EK and PCRs to record) go to the offload
#      thread, named in the log as waiting for the store;
#  (b) meanwhile 32 G1 unlocks of simulated nodes (kms-loadgen) and a G3 unlock of an enrolled
#      swtpm node are served from memory: their audit lines come before the waiting nodes', and
#      the two are still waiting when the unlocks are done;
#  (c) a G3 node that gives up while its attestation is being recorded (killed): the KMS logs it,
#      and records the attestation once etcd answers;
#  (d) the members continued: the G1 node posts its key and gets it back (one Secret), the G3
#      nodes' attestations are recorded; no sanitizer report.
# Before the offload thread (lib/net/offload.c), the event loop itself waited for etcd: the
# unlocks in (b) were audited only after the waiting requests gave up or completed.
. "$(dirname "$0")/../lib/common.sh"
ETCD_TOOL=$1
. "$(dirname "$0")/../lib/etcd.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
. "$(dirname "$0")/../lib/loadgen.sh"
require curl python3
cd "$T" || bail "no test directory"

# until_true SECONDS CMD: CMD succeeds within SECONDS (checked every 0.2 s).
until_true() { local i; for i in $(seq $(($1 * 5))); do eval "$2" && return 0; sleep 0.2; done; return 1; }
# audit_line_no FILE PATTERN: the line number of the first audit line matching PATTERN (grep -E).
audit_line_no() { grep -n -E "$2" "$1" | head -1 | cut -d: -f1; }
ch() { run_kkms "$T/ch.out" "$T/ch.err" rc challenger "$@" --etcd "$ETCD_ENDPOINTS"; }

etcd_cluster_start
LG_LIMIT=600 lg register --db "$T/fleet" --nodes 16 --seed "$SEED" 2>"$T/register.err"
timeout -k 5 120 "$KAIROS_KMS" challenger import --etcd "$ETCD_ENDPOINTS" --from-db "$T/fleet" \
    >"$T/import.out" 2>"$T/import.err" || bail "challenger import failed: $(tail -2 "$T/import.err")"

swtpm_start "$(golden_state node-w1 ekcert)"; SOCK_W1=$TPM_SOCK
swtpm_start "$(golden_state node-w2 ekcert)"; SOCK_W2=$TPM_SOCK
swtpm_start "$(golden_state node-w3 ekcert)"; SOCK_W3=$TPM_SOCK
swtpm_start "$(golden_state node-r3 ekcert)"; SOCK_R3=$TPM_SOCK
for n in W1 W2 W3 R3; do
    sock=SOCK_$n
    h=$(node_hash "${!sock}") || bail "tpm-hash failed"
    printf -v "HASH_$n" %s "$h"
done
# W1: a generated key (no Secret; the node posts its TPM ciphertext). W2, W3, R3: static keys.
ch register --tpm-hash "$HASH_W1" --label COS_PERSISTENT
for n in W2 W3 R3; do
    h=HASH_$n
    printf 'static-%s\n' "$n" >"$T/pass-$n"
    ch register --tpm-hash "${!h}" --label COS_PERSISTENT --passphrase-file "$T/pass-$n"
done
check "four swtpm nodes registered (one generated key, three static)" '[ "$rc" = 0 ]'

CHALLENGER_STORE=(--etcd "$ETCD_ENDPOINTS" --etcd-timeout 120)
challenger_start A --workers 1 --exchange-timeout 120 # the waiting decisions queue behind each other
check "the challenger is ready" 'wait_ready "$URL_A"'
NODE_PROTOCOL=g3 KMS_URL=$URL_A node_get "$T/r3.out" "$T/r3.err" grc "$SOCK_R3" COS_PERSISTENT
check "R3's first G3 unlock (its EK and PCRs learned, written to etcd)" '[ "$grc" = 0 ] && [ "$(cat "$T/r3.out")" = static-R3 ]'

# ---- (a) ----
etcd_lose_quorum
KMS_URL=$URL_A node_get "$T/w1.out" "$T/w1.err" w1rc "$SOCK_W1" COS_PERSISTENT --timeout 200 &
w1=$!
NODE_PROTOCOL=g3 KMS_URL=$URL_A node_get "$T/w3.out" "$T/w3.err" w3rc "$SOCK_W3" COS_PERSISTENT --timeout 200 &
w3=$!
on_exit "stop_pid $w1; stop_pid $w3"
check "the G1 node's missing Secret is looked up in etcd, on the offload thread" \
    'until_true 60 "grep -q \"/getPass $HASH_W1 from .*: waiting for the store\" \"$T/kms-A.log\""'
check "the G3 attestation that learns waits for the store too" \
    'until_true 60 "grep -q \"/tpm-attestation $HASH_W3 from .*: waiting for the store\" \"$T/kms-A.log\""'

# ---- (b) ----
lg run --url "$URL_A" --nodes 16 --seed "$SEED" --concurrency 4 --exchanges 32 --timeout 100 \
    >"$T/reads.json" 2>"$T/reads.err"
check "32 G1 unlocks of simulated nodes are served meanwhile" \
    '[ "$(json "$T/reads.json" ok)" = 32 ] && [ "$(json "$T/reads.json" failed)" = 0 ]' || diag <"$T/reads.err"
NODE_PROTOCOL=g3 KMS_URL=$URL_A node_get "$T/r3.out" "$T/r3.err" grc "$SOCK_R3" COS_PERSISTENT
check "and R3's G3 unlock (nothing new to learn: no write)" '[ "$grc" = 0 ] && [ "$(cat "$T/r3.out")" = static-R3 ]'
check "both waiting nodes are still waiting for etcd" 'kill -0 "$w1" && kill -0 "$w3"'

# ---- (c) ----
NODE_PROTOCOL=g3 KMS_URL=$URL_A node_get "$T/w2.out" "$T/w2.err" w2rc "$SOCK_W2" COS_PERSISTENT --timeout 200 &
w2=$!
on_exit "stop_pid $w2"
until_true 60 'grep -q "/tpm-attestation $HASH_W2 from .*: waiting for the store" "$T/kms-A.log"'
pkill -KILL -f -- "--tpm-device $SOCK_W2 " 2>/dev/null
check "a node that gives up while its attestation is being recorded: the KMS names it" \
    'until_true 30 "grep -q \"/tpm-attestation $HASH_W2 from .*: closed while the store was asked\" \"$T/kms-A.log\""'

# ---- (d) ----
etcd_regain_quorum
wait "$w1"
w1rc=$?
wait "$w3"
w3rc=$?
check "the G1 node then posts its generated key and gets it back" '[ "$w1rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/w1.out"' ||
    diag <"$T/w1.err"
check "the G3 node ends with its static key" '[ "$w3rc" = 0 ] && [ "$(cat "$T/w3.out")" = static-W3 ]' || diag <"$T/w3.err"
reads_last=$(grep -n -E '"action":"getPass".*"secret":"loadgen-node-' "$T/audit-A.jsonl" | tail -1 | cut -d: -f1)
r3_last=$(grep -n -E "\"action\":\"tpm-attestation\".*\"tpm_hash\":\"$HASH_R3\"" "$T/audit-A.jsonl" | tail -1 | cut -d: -f1)
w1_first=$(audit_line_no "$T/audit-A.jsonl" "\"tpm_hash\":\"$HASH_W1\"")
w3_first=$(audit_line_no "$T/audit-A.jsonl" "\"tpm_hash\":\"$HASH_W3\"")
diag <<<"audit lines: last simulated unlock $reads_last, R3's last $r3_last, W1's first $w1_first, W3's first $w3_first"
check "the unlocks were audited before the waiting nodes' decisions were" \
    'first=$(printf "%s\n" "$w1_first" "$w3_first" | sort -n | head -1)
     [ -n "$reads_last" ] && [ -n "$r3_last" ] && [ -n "$w1_first" ] && [ -n "$w3_first" ] &&
     [ "$reads_last" -lt "$first" ] && [ "$r3_last" -lt "$first" ]'
check "W1's Secret is stored exactly once, with its TPM ciphertext" \
    '[ "$(etcdt list /kairos-kms/secrets/ 2>/dev/null | grep "node-${HASH_W1:0:8}" | grep -c generated_by)" = 1 ]'
check "W2's attestation was recorded although it left" \
    'until_true 30 "etcdt get /kairos-kms/sealedvolumes/node-${HASH_W2:0:8} | grep -q ekPublicKey"'
check "W3's attestation is recorded in its SealedVolume" \
    'etcdt get "/kairos-kms/sealedvolumes/node-${HASH_W3:0:8}" | grep -q "ekPublicKey"'
check "no sanitizer report from the challenger (ASan builds)" '! grep -l -e "Sanitizer" -e "runtime error" "$T"/kms-*.log'
