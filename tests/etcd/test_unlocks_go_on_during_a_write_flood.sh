#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Many nodes whose exchanges must write to etcd arrive while etcd has no quorum (a fleet
# rebooting during an outage): the writes wait on the offload thread, in order, each bounded,
# and the unlocks that need no write are served meanwhile (README "HA").
#  (a) 64 simulated nodes (kms-loadgen) imported with static keys and no attestation: their
#      first G3 exchange records the EK and PCRs (a write); G1 exchanges need none;
#  (b) two of the three etcd members stopped; 64 G3 exchanges at once, repeated: each waits for
#      the store or, when its turn does not come within --exchange-timeout, is answered "busy"
#      (nothing waits without bound, the process keeps its connections);
#  (c) meanwhile 32 G1 unlocks are served, 0 failed, and /healthz answers;
#  (d) the members continued: every node's G3 exchange succeeds; no sanitizer report.
. "$(dirname "$0")/../lib/common.sh"
ETCD_TOOL=$1
. "$(dirname "$0")/../lib/etcd.sh"
. "$(dirname "$0")/../lib/loadgen.sh"
require curl python3
cd "$T" || bail "no test directory"

until_true() { local i; for i in $(seq $(($1 * 5))); do eval "$2" && return 0; sleep 0.2; done; return 1; }

# ---- (a) ----
etcd_cluster_start
LG_LIMIT=900 lg register --db "$T/fleet" --nodes 64 --seed "$SEED" 2>"$T/register.err"
timeout -k 5 120 "$KAIROS_KMS" challenger import --etcd "$ETCD_ENDPOINTS" --from-db "$T/fleet" \
    >"$T/import.out" 2>"$T/import.err" || bail "challenger import failed: $(tail -2 "$T/import.err")"
# One address plays the whole fleet here, so the per-address cap is lifted to the global one.
CHALLENGER_STORE=(--etcd "$ETCD_ENDPOINTS" --etcd-timeout 10)
challenger_start A --workers 1 --exchange-timeout 5 --max-conns-per-peer 1024
check "the challenger is ready with 64 nodes" 'wait_ready "$URL_A"'

# ---- (b) ----
etcd_lose_quorum
LG_LIMIT=120 lg run --url "$URL_A" --protocol g3 --nodes 64 --seed "$SEED" --concurrency 64 --exchanges 256 \
    --timeout 60 >"$T/flood.json" 2>"$T/flood.err" &
flood=$!
on_exit "stop_pid $flood"
check "the G3 exchanges wait for the store on the offload thread" \
    'until_true 60 "[ \$(grep -c \"/tpm-attestation .*: waiting for the store\" \"$T/kms-A.log\") -ge 32 ]"'

# ---- (c) ----
lg run --url "$URL_A" --nodes 16 --seed "$SEED" --concurrency 4 --exchanges 32 --timeout 60 \
    >"$T/reads.json" 2>"$T/reads.err"
check "32 G1 unlocks are served meanwhile, 0 failed" \
    '[ "$(json "$T/reads.json" ok)" = 32 ] && [ "$(json "$T/reads.json" failed)" = 0 ]' || diag <"$T/reads.err"
check "/healthz answers meanwhile" '[ "$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 "$URL_A/healthz")" = 200 ]'
check "exchanges whose turn did not come in time were answered busy, not kept" \
    'until_true 30 "grep -q \"the KMS is busy; try again\" \"$T/audit-A.jsonl\""'

# ---- (d) ----
etcd_regain_quorum
wait "$flood"
diag <"$T/flood.json"
# what the flood's G3 exchanges were told, counted
python3 - "$T/audit-A.jsonl" <<'EOF' | diag
import collections, json, re, sys
c = collections.Counter()
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["action"] == "tpm-attestation":
        c[(d["outcome"], re.sub(r"[0-9a-f]{64}", "H", re.sub(r"loadgen-node-[0-9]+", "loadgen-node-N", d["reason"])))] += 1
for (o, r), n in c.most_common():
    print(n, o, r)
EOF
lg run --url "$URL_A" --protocol g3 --nodes 64 --seed "$SEED" --concurrency 8 --exchanges 64 --timeout 120 \
    >"$T/after.json" 2>"$T/after.err"
check "once etcd has its quorum back, every node's G3 exchange succeeds" \
    '[ "$(json "$T/after.json" ok)" = 64 ] && [ "$(json "$T/after.json" failed)" = 0 ]' || diag <"$T/after.err"
check "the challenger is still the one process it was" 'kill -0 "$PID_A"'
check "no sanitizer report from the challenger (ASan builds)" '! grep -l -e "Sanitizer" -e "runtime error" "$T"/kms-*.log'
