#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# demo.sh BINARY: the main job on its embedded default, on this machine only (127.0.0.1):
#   1. a node: a software TPM manufactured like a real one (swtpm, EK certificate);
#   2. the KMS: `kairos-kms challenger --db DIR` on a temporary directory;
#   3. the operator registers the node's TPM hash for two partitions: one with a static key
#      (a Secret the operator writes), one with an auto-generated key;
#   4. the node asks the KMS for both keys, proving its TPM by credential activation; for the
#      auto-generated one it makes the passphrase, escrows only its TPM ciphertext, and gets it
#      back decrypted by its own TPM on the next "boot".
set -euo pipefail
bin=$(readlink -f "$1")
work=$(mktemp -d /tmp/kairos-kms-demo.XXXXXX)
tpm_pid= kms_pid=
cleanup() {
    [ -z "$kms_pid" ] || { kill -TERM "$kms_pid" 2>/dev/null; wait "$kms_pid" 2>/dev/null || true; }
    [ -z "$tpm_pid" ] || { swtpm_ioctl --unix "$work/tpm.sock.ctrl" -s 2>/dev/null || kill "$tpm_pid" 2>/dev/null; \
                           wait "$tpm_pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }

say "1. a node: a software TPM with an EK certificate ($work)"
"$(dirname "$0")/lib/swtpm-manufacture.sh" "$work" ekcert
swtpm socket --tpm2 --tpmstate dir="$work/state" --server type=unixio,path="$work/tpm.sock" \
    --ctrl type=unixio,path="$work/tpm.sock.ctrl" --flags not-need-init,startup-clear 2>/dev/null &
tpm_pid=$!
for _ in $(seq 500); do [ -S "$work/tpm.sock" ] && break; sleep 0.01; done
hash=$("$bin" tpm-hash --tpm-device "$work/tpm.sock")
echo "kairos-kms tpm-hash: $hash"

say "2. the KMS: kairos-kms challenger --db $work/db --listen 127.0.0.1:0"
"$bin" challenger --db "$work/db" --listen 127.0.0.1:0 --port-file "$work/port" --audit-log "$work/audit.jsonl" \
    2>"$work/kms.log" &
kms_pid=$!
for _ in $(seq 300); do [ -s "$work/port" ] && break; sleep 0.02; done
url=http://127.0.0.1:$(cat "$work/port")
echo "listening on $url"

say "3. the operator registers the node (static key for COS_OEM, auto-generated for COS_PERSISTENT)"
printf %s 'correct-horse-battery-staple' >"$work/oem.pass"
"$bin" challenger register --db "$work/db" --tpm-hash "$hash" --label COS_OEM --passphrase-file "$work/oem.pass" 2>/dev/null
"$bin" challenger register --db "$work/db" --tpm-hash "$hash" --label COS_PERSISTENT 2>/dev/null
"$bin" challenger list --db "$work/db"

say "4. the node asks for its keys (kcrypt-discovery-challenger get)"
get() { "$bin" discovery-challenger --tpm-device "$work/tpm.sock" get --partition-label "$1" --challenger-server "$url" --timeout 30; }
printf 'COS_OEM (static key):          %s\n' "$(get COS_OEM)"
first=$(get COS_PERSISTENT 2>/dev/null)
printf 'COS_PERSISTENT (generated):    %s\n' "$first"
printf 'COS_PERSISTENT, next boot:     %s\n' "$(get COS_PERSISTENT)"
echo
echo "What the KMS stored for COS_PERSISTENT (TPM ciphertext only; the KMS cannot read it):"
grep -h -A3 '^stringData' "$work"/db/secret-*persistent* | sed 's/^/    /'
grep -rqF "$first" "$work/db" && { echo "demo: the plaintext leaked into the KMS" >&2; exit 1; }
echo
echo "Audit log: $(wc -l <"$work/audit.jsonl") decisions, e.g.:"
tail -n 1 "$work/audit.jsonl" | sed 's/^/    /'
echo
echo "demo: ok"
