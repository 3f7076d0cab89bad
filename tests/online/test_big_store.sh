#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# A store bigger than the old 4,096-file limit: 20,000 one-file SealedVolumes (as `challenger
# register` writes one file per node), and a real swtpm node whose file sorts last by name. The
# KMS loads them all (nothing skipped, no "more than N manifest files" error) and serves the last
# node, whose SealedVolume is found through the by-hash index.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require python3

mkdir -p "$DB" && chmod 700 "$DB"
python3 - "$DB" <<'P'
import hashlib, os, sys
db = sys.argv[1]
for i in range(20000):
    h = hashlib.sha256(b"fleet-node-%d" % i).hexdigest()
    with open(os.path.join(db, "sealedvolume-node-%05d.yaml" % i), "w") as f:
        f.write("apiVersion: keyserver.kairos.io/v1alpha1\nkind: SealedVolume\n"
                "metadata: {name: node-%05d, namespace: default}\n"
                "spec:\n  TPMHash: \"%s\"\n  partitions:\n    - label: COS_PERSISTENT\n" % (i, h))
P
swtpm_start "$(golden_state node-a ekcert)"
HASH=$(node_hash "$TPM_SOCK") || bail "tpm-hash failed"
printf %s "the-last-node-of-twenty-thousand" >"$T/pass"
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH" --label COS_PERSISTENT \
    --volume zzzz-last-node --passphrase-file "$T/pass"
[ "$rc" = 0 ] || bail "register failed: $(cat "$T/err")"
check "DIR holds more than 20,000 manifest files" '[ "$(ls "$DB" | wc -l)" -gt 20000 ]'
kms_start
node_get "$T/got" "$T/err" rc "$TPM_SOCK" COS_PERSISTENT
check "the node whose file sorts last is served" '[ "$rc" = 0 ] && [ "$(cat "$T/got")" = the-last-node-of-twenty-thousand ] || { diag <"$T/err"; false; }'
check "no file was skipped (no file-count error in the KMS log)" '! grep -q "manifest files; only the first" "$T/kms.log"'
"$KAIROS_KMS" challenger list --db "$DB" >"$T/list" 2>/dev/null
check "challenger list shows every volume (20,001)" '[ "$(grep -c "^node-\|^zzzz-last-node" "$T/list")" = 20001 ]'
kms_stop
done_testing
