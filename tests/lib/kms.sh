# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# KMS fixture (source tests/lib/common.sh first): our challenger on 127.0.0.1, a port the kernel
# picks, killed by PID at exit.
#   kms_start [ARGS...]   sets KMS_PID, KMS_PORT, KMS_URL (http://127.0.0.1:PORT); DB=$T/db
#   kms_stop              SIGTERM, wait (SIGKILL after 10 s)
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
