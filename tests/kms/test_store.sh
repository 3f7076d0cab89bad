#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# The dir store as operators use it, one process per command (tests/kms/kms_tool.c drives
# lib/kms): register with a passphrase file, list, getPass/postPass, quarantine/release of hand
# written manifests, editors' in-place tools, the audit log. Usage: test_store.sh KMS_TOOL
. "$(dirname "$0")/../lib/common.sh"

TOOL=${1:?usage: test_store.sh KMS_TOOL}
DATA=${KKMS_SOURCE_ROOT:-$(dirname "$0")/../..}/tests/data/kms/db
H_NEW=c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00
H_STATIC=7441c78f1976fb23e6a5c68f0be35be8375b135dcb36fb03cecc60f39c7660bd
H_AUTO=929260ad9b9ea9fe0f3553dd964f4ff3deb5792efd031a2b90f573fe91f012bb
DB=$T/db
export KMS_AUDIT=$T/audit.log KMS_POLL_MS=0

tool() { timeout -k 5 60 "$TOOL" "$@"; }

# ---- register, list, getPass on a directory that does not exist yet ----
printf 'correct horse battery staple\n' >"$T/pass"
tool "$DB" register $H_NEW --label COS_PERSISTENT --passphrase-file "$T/pass" >"$T/out" 2>"$T/err"; rc=$?
check "register creates DIR 0700 and writes the volume and its Secret" \
    '[ $rc = 0 ] && [ "$(stat -c %a "$DB")" = 700 ] && [ -f "$DB/sealedvolume-node-c0ffee00.yaml" ] && [ "$(stat -c %a "$DB/secret-node-c0ffee00-cos-persistent.yaml")" = 600 ]'
check "the passphrase appears in no message" '! grep -q "horse" "$T/err" "$T/out"'
tool "$DB" getpass $H_NEW COS_PERSISTENT vda5 "" >"$T/out" 2>"$T/err"
check "getPass serves the registered passphrase" 'grep -qx "ok - correct horse battery staple" "$T/out"'
tool "$DB" register $H_NEW --label COS_OEM >"$T/out" 2>"$T/err"
tool "$DB" list >"$T/out" 2>"$T/err"
check "list: one line with both partitions, the Secret state and no value" \
    'grep -q "^node-c0ffee00	$H_NEW	active	COS_PERSISTENT=>node-c0ffee00-cos-persistent/passphrase:present COS_OEM=>node-c0ffee00-cos-oem/passphrase:awaiting-node	" "$T/out" && ! grep -q horse "$T/out"'

# ---- the documented manifests, as an operator copies them in ----
install -m 600 "$DATA"/*.yaml "$DATA"/*.yml "$DATA"/*.json "$DB"/
tool "$DB" list >"$T/out" 2>"$T/err"
check "a broken manifest is reported with file:line and listed, the others load" \
    'grep -q "broken.yaml:11:4: did not find expected key" "$T/err" && grep -q "^! $DB/broken.yaml: does not parse; nothing loaded" "$T/out" && grep -q "^test2	$H_STATIC	active" "$T/out"'
tool "$DB" getpass $H_STATIC COS_PERSISTENT "" "" >"$T/out" 2>"$T/err"
check "static keys from the docs' manifests" 'grep -qx "ok - awesome-plaintext-passphrase" "$T/out"'

# ---- postPass, then getPass (auto-generated keys) ----
# A node posts base64url (no padding) of a 256-byte RSA-2048 ciphertext: 342 characters.
CIPHER=QmFzZTY0VXJsQ2lwaGVydGV4dA$(printf 'A%.0s' $(seq 316))
printf %s "$CIPHER" >"$T/cipher"
printf %s "$(printf 'B%.0s' $(seq 341))A" >"$T/cipher2"
tool "$DB" postpass $H_AUTO COS_PERSISTENT vda5 "" "$T/cipher" >"$T/out" 2>"$T/err"; rc=$?
check "postPass stores the ciphertext" '[ $rc = 0 ] && grep -q "^  passphrase: $CIPHER$" "$DB/secret-auto-cos-persistent.yaml"'
check "no temporary file is left in DIR" '[ -z "$(find "$DB" -name ".kms-tmp*")" ]'
tool "$DB" postpass $H_AUTO COS_PERSISTENT vda5 "" "$T/cipher2" >"$T/out" 2>"$T/err"
check "a second postPass is refused and changes nothing" \
    'grep -q "^refused: secret auto-cos-persistent already exists" "$T/out" && grep -q "$CIPHER" "$DB/secret-auto-cos-persistent.yaml"'
tool "$DB" getpass $H_AUTO COS_PERSISTENT "" "" >"$T/out" 2>"$T/err"
check "getPass returns it with generated_by tpm" 'grep -qx "ok tpm $CIPHER" "$T/out"'

# ---- quarantine a hand-written manifest, keep its comments ----
cp "$DB/static-keys.yaml" "$T/before.yaml"
tool "$DB" quarantine $H_STATIC >"$T/out" 2>"$T/err"; rc=$?
check "quarantine rewrites only the value in the operator's file" \
    '[ $rc = 0 ] && { diff "$T/before.yaml" "$DB/static-keys.yaml" || true; } | grep -c "^[<>]" | grep -qx 2 && grep -q "^  quarantined: true$" "$DB/static-keys.yaml" && head -1 "$DB/static-keys.yaml" | grep -q "^# Static keys"'
tool "$DB" getpass $H_STATIC COS_PERSISTENT "" "" >"$T/out" 2>"$T/err"
check "a quarantined node is refused" 'grep -qx "refused: quarantined: COS_PERSISTENT" "$T/out"'
tool "$DB" release $H_STATIC >"$T/out" 2>"$T/err"
check "release restores the file byte for byte" 'cmp -s "$T/before.yaml" "$DB/static-keys.yaml"'

# ---- editors: sed -i (temp file + rename) and an in-place rewrite ----
sed -i 's/awesome-plaintext-passphrase/edited-by-sed/' "$DB/static-keys.yaml"
tool "$DB" getpass $H_STATIC COS_PERSISTENT "" "" >"$T/out" 2>"$T/err"
check "an edit with sed -i is served" 'grep -qx "ok - edited-by-sed" "$T/out"'
chmod 644 "$DB/static-keys.yaml"
tool "$DB" getpass $H_STATIC COS_PERSISTENT "" "" >"$T/out" 2>"$T/err"
check "a manifest readable by others is served with a warning to chmod it" \
    'grep -qx "ok - edited-by-sed" "$T/out" && grep -q "static-keys.yaml: readable by other users" "$T/err"'
chmod 664 "$DB/static-keys.yaml"
tool "$DB" getpass $H_STATIC COS_PERSISTENT "" "" >"$T/out" 2>"$T/err"
check "a manifest writable by others is not loaded" \
    'grep -q "^refused: no volume found" "$T/out" && grep -q "static-keys.yaml: writable by other users; not loaded" "$T/err"'
chmod 600 "$DB/static-keys.yaml"

# ---- the audit log ----
check "the audit log is 0600 and holds one JSON line per decision" \
    '[ "$(stat -c %a "$KMS_AUDIT")" = 600 ] && [ "$(grep -c "^{\"time\":\"[0-9-]*T[0-9:.]*Z\",\"action\":" "$KMS_AUDIT")" = "$(wc -l <"$KMS_AUDIT")" ]'
check "it records refusals with their reason and the peer" \
    'grep -q "\"action\":\"getPass\",\"outcome\":\"refused\",\"tpm_hash\":\"$H_STATIC\".*\"peer\":\"127.0.0.1:1\".*\"reason\":\"quarantined: COS_PERSISTENT\"" "$KMS_AUDIT"'
check "and never a passphrase" '! grep -q -e horse -e awesome-plaintext -e edited-by-sed -e QmFzZTY0VXJs "$KMS_AUDIT"'

# ---- refusing unsafe directories ----
ln -s "$DB" "$T/link"
tool "$T/link" list >"$T/out" 2>"$T/err"; rc=$?
check "a store directory that is a symlink is refused" '[ $rc = 1 ] && grep -q "is a symlink" "$T/err"'
mkdir -m 777 "$T/open"
tool "$T/open" list >"$T/out" 2>"$T/err"; rc=$?
check "a world-writable store directory is refused" '[ $rc = 1 ] && grep -q "writable by other users" "$T/err"'

done_testing
