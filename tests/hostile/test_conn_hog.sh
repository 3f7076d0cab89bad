#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# One address opens 1,100 connections and holds them. The per-address limit (default 32) keeps
# slots for everyone else: a good node on 127.0.0.1 still gets its key. With a descriptor limit
# of 1,024 the KMS caps its connections below it, and when descriptors still run out it accepts
# and refuses with a spare descriptor: a new client gets an answer, never a hang in the backlog.
# Before the fix one address took every slot (others got 503), and with 1,024 descriptors new
# clients hung until the attacker's connections timed out.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
. "$(dirname "$0")/net_lib.sh"
require prlimit

REAL_KMS=$KAIROS_KMS
# hog_start: 1,100 connections from 127.0.0.2, held 12 s; returns once they are open.
hog_start() {
    attack hog 127.0.0.1 "$KMS_PORT" --src 127.0.0.2 --conns 1100 --seconds 12 >"$T/hog.out" 2>&1 &
    HOG=$!
    on_exit "stop_pid $HOG 2"
    for ((i = 0; i < 100; i++)); do grep '^open ' "$T/hog.out" >/dev/null && break; sleep 0.1; done
    diag <"$T/hog.out"
}
hog_stop() { wait "$HOG"; diag <"$T/hog.out"; }

# ---- default limits: the hog gets 32 connections, the good node is served ----
swtpm_start "$(golden_state node-a ekcert)"
HASH=$(node_hash "$TPM_SOCK") || bail "tpm-hash failed"
static_volume node.yaml node nodesecret "$HASH" hog-test-passphrase
kms_start
hog_start
attack probe 127.0.0.1 "$KMS_PORT" --src 127.0.0.1 >"$T/probe" 2>&1
check "during the hog, /healthz from 127.0.0.1 gets 200 within 3 s" 'grep "^status 200" "$T/probe" >/dev/null'
node_get "$T/out" "$T/err" rc "$TPM_SOCK" COS_PERSISTENT
check "during the hog, the good node on 127.0.0.1 gets its passphrase (G1)" \
    '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = hog-test-passphrase ]'
hog_stop
check "the KMS refused the hog's connections over 32 from its address" \
    'grep "127.0.0.2:[0-9]*: refused: 32 connections open from this address" "$T/kms.log" >/dev/null'
check "the KMS is alive" 'kill -0 "$KMS_PID"'
kms_stop

# ---- ulimit -n 1024 on the KMS, default limits ----
cat >"$T/kms-1024" <<EOF2
#!/bin/bash
ulimit -n 1024 || exit 1
exec "$REAL_KMS" "\$@"
EOF2
chmod +x "$T/kms-1024"
KAIROS_KMS=$T/kms-1024 kms_start
check "the KMS runs with a descriptor limit of 1024" '[ "$(awk "/Max open files/ {print \$4}" /proc/$KMS_PID/limits)" = 1024 ]'
hog_start
attack probe 127.0.0.1 "$KMS_PORT" --src 127.0.0.1 >"$T/probe" 2>&1
check "ulimit 1024: /healthz from 127.0.0.1 gets 200 within 3 s during the hog" 'grep "^status 200" "$T/probe" >/dev/null'
hog_stop
kms_stop

# ---- descriptors run out under the KMS (limit lowered after start, no per-address limit) ----
# One worker: the limit is lowered on that process (with one per CPU, the hog's connections would
# be shared among processes that each keep under their own limit).
kms_start --max-conns-per-peer 1024 --workers 1
prlimit --pid "$KMS_PID" --nofile=1024:1024 || bail "prlimit failed"
hog_start
# The hog's connections that overflowed the listen backlog are retried by the kernel (SYN
# retransmits) and may reach the KMS after a client that came later: probe once the KMS says it
# ran out of descriptors, while the hog still holds every one of them.
for ((i = 0; i < 100; i++)); do grep "out of file descriptors" "$T/kms.log" >/dev/null && break; sleep 0.1; done
attack probe 127.0.0.1 "$KMS_PORT" --src 127.0.0.1 >"$T/probe" 2>&1
diag <"$T/probe"
check "out of descriptors: a new client is answered (503) within 3 s, not left in the backlog" \
    'grep "^status 503" "$T/probe" >/dev/null'
hog_stop
check "the KMS logged the refusals made with its spare descriptor" \
    'grep "out of file descriptors" "$T/kms.log" >/dev/null'
check "the KMS is alive" 'kill -0 "$KMS_PID"'
attack probe 127.0.0.1 "$KMS_PORT" --src 127.0.0.1 >"$T/probe" 2>&1
check "after the hog, /healthz gets 200 again" 'grep "^status 200" "$T/probe" >/dev/null'
done_testing
