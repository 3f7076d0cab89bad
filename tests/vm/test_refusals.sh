#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# What a node gets when the KMS says no, or is not there (one boot each; the disk is a LUKS2
# partition made on the host whose passphrase only the KMS could give):
#   - a node the KMS does not know stays locked, and kcrypt says why;
#   - a quarantined node stays locked although its key is on record, and kcrypt says why;
#   - with the KMS down, kcrypt unlock-all --timeout T retries with backoff and then fails within
#     the limit, never hangs.
# The limit: kcrypt retries one partition while less than T has passed, and the attempt under way
# when T runs out may take one whole --plugin-timeout P: T + P at most. kcrypt retries a KMS
# refusal too (an operator may register or release the node while it waits), so the refusals
# also end at that limit.
. "$(dirname "$0")/lib/vm.sh"
vm_setup

printf %s "the-key-only-the-kms-knows-0123456789" >"$T/kms.pass"
img=$T/luks.img
vm_disk "$img" 48:persistent:luks:COS_PERSISTENT:"$T/kms.pass" || bail "could not make the disk image"
tpm=$(vm_tpm_new node)
hash=$(vm_tpm_hash "$tpm") || bail "tpm-hash failed"
kms_start

cat >"$T/refused.sh" <<'G'
run unlock kcrypt unlock-all --timeout 8 --plugin-timeout 10
G
cat >"$T/down.sh" <<'G'
run unlock kcrypt unlock-all --timeout 20 --plugin-timeout 10
G
boot() { # NAME SCRIPT: one boot against the KMS at $port, on a fresh copy of the disk
    cp --sparse=always "$img" "$T/$1.img"
    vm_boot "$1" --tpm "$tpm" --disk "$T/$1.img" --kms-port "$port" --script "$T/$2.sh" \
        --append "kcrypt.challenger.challenger_server=http://10.0.2.100:$port kcrypt.challenger.protocol=g1"
    echo "# $1: unlock-all ran $(awk -v a="$(vm_mark "$1" ready.at)" -v b="$(vm_mark "$1" unlock.at)" 'BEGIN{printf "%.1f", b - a}') s in the guest"
}
guest_secs() { awk -v a="$(vm_mark "$1" ready.at)" -v b="$(vm_mark "$1" unlock.at)" 'BEGIN{printf "%d", b - a}'; }

# 1. Unregistered node.
port=$KMS_PORT
boot unregistered refused
check "unregistered: boot ran to the end" '[ "$(vm_mark unregistered end)" = 1 ]'
check "unregistered: kcrypt unlock-all exits 1" '[ "$(vm_mark unregistered unlock.rc)" = 1 ]'
check "unregistered: the partition stays locked" \
    'vm_lines unregistered unlock | grep -q "^COS_PERSISTENT (/dev/vda1): still locked$"'
check "unregistered: kcrypt names it on stderr" 'vm_errs unregistered unlock | grep -q "stayed locked: vda1 (COS_PERSISTENT)"'
check "unregistered: the reason is given (the KMS does not know this TPM)" \
    'vm_errs unregistered unlock | grep -Eiq "not registered|unknown|no sealedvolume|refused|denied|forbidden"'
check "unregistered: kcrypt gave up within --timeout 8 + --plugin-timeout 10 ($(guest_secs unregistered) s)" \
    '[ "$(guest_secs unregistered)" -le 18 ]'
check "unregistered: the KMS audit log has the refusal" 'grep "$hash" "$T/audit.jsonl" | grep -q "\"action\":\"getPass\",\"outcome\":\"refused\""'

# 2. Quarantined node: its static key is on record, yet refused.
"$KAIROS_KMS" challenger register --db "$DB" --tpm-hash "$hash" --label COS_PERSISTENT --passphrase-file "$T/kms.pass" \
    >/dev/null 2>>"$T/kms.log" || bail "challenger register failed"
"$KAIROS_KMS" challenger quarantine --db "$DB" "$hash" >/dev/null 2>>"$T/kms.log" || bail "challenger quarantine failed"
boot quarantined refused
check "quarantined: boot ran to the end" '[ "$(vm_mark quarantined end)" = 1 ]'
check "quarantined: kcrypt unlock-all exits 1, the partition still locked" \
    '[ "$(vm_mark quarantined unlock.rc)" = 1 ] && vm_lines quarantined unlock | grep -q "still locked"'
check "quarantined: the reason is given" 'vm_errs quarantined unlock | grep -qi "quarantin"'
check "quarantined: kcrypt gave up within --timeout 8 + --plugin-timeout 10 ($(guest_secs quarantined) s)" \
    '[ "$(guest_secs quarantined)" -le 18 ]'

# The same node released: the key comes (the refusals above were the policy, not the set-up).
"$KAIROS_KMS" challenger release --db "$DB" "$hash" >/dev/null 2>>"$T/kms.log" || bail "challenger release failed"
boot released refused
check "released: the same node and disk now unlock" '[ "$(vm_mark released unlock.rc)" = 0 ]'

# 3. The KMS down: nothing listens on the forwarded port any more.
kms_stop
boot kms_down down
check "KMS down: boot ran to the end (no hang)" '[ "$(vm_mark kms_down end)" = 1 ]'
check "KMS down: kcrypt unlock-all exits 1, the partition still locked" \
    '[ "$(vm_mark kms_down unlock.rc)" = 1 ] && vm_lines kms_down unlock | grep -q "still locked"'
check "KMS down: it retried with backoff" 'vm_errs kms_down unlock | grep -q "retrying in"'
check "KMS down: and gave up clearly" 'vm_errs kms_down unlock | grep -q "giving up after"'
check "KMS down: within --timeout 20 + --plugin-timeout 10 ($(guest_secs kms_down) s)" \
    '[ "$(guest_secs kms_down)" -le 30 ]'
check "KMS down: not before --timeout 20 ran out" '[ "$(guest_secs kms_down)" -ge 14 ]'
[ "$_tap_failed" -eq 0 ] || for b in unregistered quarantined released kms_down; do vm_show $b; done
vm_done
