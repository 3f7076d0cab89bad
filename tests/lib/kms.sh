# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# KMS fixture (source tests/lib/common.sh first): our challenger on 127.0.0.1, a port the kernel
# picks, killed by PID at exit.
#   kms_start [ARGS...]   sets KMS_PID, KMS_PORT, KMS_URL (http://127.0.0.1:PORT); DB=$T/db
#   kms_stop              SIGTERM, wait (SIGKILL after 10 s)
#   static_volume, register_node, g3_two_nodes: the records and nodes many tests start from
DB=${DB:-$T/db}

kms_start() {
    local scheme=http i
    rm -f "$T/kms.port"
    case " $* " in *" --tls-cert "*) scheme=https ;; esac
    "$KAIROS_KMS" challenger --db "$DB" --listen 127.0.0.1:0 --port-file "$T/kms.port" \
        --audit-log "$T/audit.jsonl" "$@" 2>>"$T/kms.log" &
    KMS_PID=$!
    on_exit "stop_pid $KMS_PID"
    wait_port_file "$T/kms.port" "$KMS_PID" 6 ||
        bail "the KMS did not listen within 6 s: $(tail -3 "$T/kms.log")"
    KMS_PORT=$(cat "$T/kms.port")
    KMS_URL=$scheme://127.0.0.1:$KMS_PORT
}

kms_stop() { stop_pid "$KMS_PID"; }

# node_hash SOCK: the TPM hash of the swtpm at SOCK.
node_hash() { timeout 60 "$KAIROS_KMS" tpm-hash --tpm-device "$1"; }

# node_get OUT ERR RC_VAR SOCK LABEL [ARGS...]: a node asks the KMS for LABEL's passphrase, over
# the protocol $NODE_PROTOCOL (default g1, what the tests written for G1 check; auto or g3 for G3).
node_get() {
    local out=$1 err=$2 rcv=$3 sock=$4 label=$5
    shift 5
    run_kkms "$out" "$err" "$rcv" discovery-challenger --tpm-device "$sock" get --partition-label "$label" \
        --challenger-server "${NODE_URL:-$KMS_URL}" --timeout 20 --protocol "${NODE_PROTOCOL:-g1}" "$@"
}

# static_volume FILE VOLUME SECRET HASH PASSPHRASE [SPEC_YAML]: writes $DB/FILE (0600) as an
# operator writes what they would kubectl apply upstream: Secret SECRET holding PASSPHRASE
# (stringData, key pass) and SealedVolume VOLUME of HASH whose COS_PERSISTENT partition uses it;
# SPEC_YAML (lines indented by two spaces) is added to its spec.
static_volume() {
    mkdir -p "$DB" && chmod 700 "$DB"
    cat >"$DB/$1" <<EOF
apiVersion: v1
kind: Secret
metadata: {name: $3, namespace: default}
type: Opaque
stringData: {pass: "$5"}
---
apiVersion: keyserver.kairos.io/v1alpha1
kind: SealedVolume
metadata: {name: $2, namespace: default}
spec:
  TPMHash: "$4"
  partitions:
    - label: COS_PERSISTENT
      secret: {name: $3, path: pass}
  quarantined: false
${6:-}
EOF
    chmod 600 "$DB/$1"
}

# register_node PASSPHRASE: a swtpm node (node-a; TPM_SOCK, HASH) registered with `challenger
# register` for COS_PERSISTENT with the static PASSPHRASE.
register_node() {
    swtpm_start "$(golden_state node-a ekcert)"
    HASH=$(node_hash "$TPM_SOCK") || bail "tpm-hash failed"
    mkdir -p "$DB" && chmod 700 "$DB"
    printf %s "$1" >"$T/pass"
    "$KAIROS_KMS" challenger register --db "$DB" --tpm-hash "$HASH" --label COS_PERSISTENT --passphrase-file "$T/pass" \
        >/dev/null 2>>"$T/kms.log" || bail "register failed"
}

# g3_two_nodes: what the G3 attack tests need: python3, $NODE (tests/online/g3_node.py, which runs
# $KKMS_G3_NODE_TOOL) and two TPMs with EK certificates, node-a at $SOCK_A and node-b at $SOCK_B.
g3_two_nodes() {
    require python3
    : "${KKMS_G3_NODE_TOOL:?}"
    NODE="python3 $KKMS_SOURCE_ROOT/tests/online/g3_node.py"
    swtpm_start "$(golden_state node-a ekcert)"
    SOCK_A=$TPM_SOCK
    swtpm_start "$(golden_state node-b ekcert)"
    SOCK_B=$TPM_SOCK
}

# quarantine_cycle SOCK HASH SERVED REFUSAL: `challenger quarantine` HASH, and the node at SOCK is
# refused its COS_PERSISTENT key with REFUSAL on stderr; `challenger release`, and it is served
# again the key in file SERVED. Two TAP lines.
quarantine_cycle() {
    local sock=$1 hash=$2 served=$3 refusal=$4
    run_kkms "$T/out" "$T/err" rc challenger quarantine --db "$DB" "$hash"
    node_get "$T/out" "$T/err" rc "$sock" COS_PERSISTENT
    check "quarantined TPM: refused with upstream's message ($refusal)" '[ "$rc" = 1 ] && grep -q "$refusal" "$T/err"'
    run_kkms "$T/out" "$T/err" rc challenger release --db "$DB" "$hash"
    node_get "$T/out" "$T/err" rc "$sock" COS_PERSISTENT
    check "released: served again, the same key" '[ "$rc" = 0 ] && cmp -s "$T/out" "$served"'
}
