#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# G3 at boot (docs/protocol-g3.md): the guest's kcrypt asks our KMS on the host through the
# kcrypt-discovery-challenger plugin, which speaks /tpm-attestation by default (protocol auto)
# and proves with a PCR quote over the KMS's nonce what this boot measured into the swtpm TPM.
#   learned, then pinned: a node registered without PCR values unlocks at its first boot, the KMS
#     records that boot's PCRs 0, 7 and 11, and the second boot unlocks against those pins;
#   a changed boot: a node whose SealedVolume pins a PCR 7 value this boot does not have stays
#     locked, and the console says why.
. "$(dirname "$0")/lib/vm.sh"
vm_setup
kms_start

mkdir -p "$T/content"
echo "unlocked over G3" >"$T/content/MARKER"
cat >"$T/unlock.sh" <<'G'
run unlock kcrypt unlock-all --timeout 60
mkdir -p /mnt/data
mount -t ext4 -o ro /dev/mapper/vda1 /mnt/data && run cat cat /mnt/data/MARKER
G
cat >"$T/refused.sh" <<'G'
run unlock kcrypt unlock-all --timeout 8 --plugin-timeout 10
G
kms_arg() { echo "kcrypt.challenger.challenger_server=http://10.0.2.100:$KMS_PORT"; }
vol_of() { grep -l "TPMHash: \"\{0,1\}$1" "$DB"/*.yaml 2>/dev/null | head -1; }

# ---- learned at the first boot, pinned for the second ----
tpm=$(vm_tpm_new node)
hash=$(vm_tpm_hash "$tpm") || bail "tpm-hash failed"
printf %s "g3-static-key-of-the-operator-0123456789" >"$T/a.pass"
"$KAIROS_KMS" challenger register --db "$DB" --tpm-hash "$hash" --label COS_PERSISTENT --passphrase-file "$T/a.pass" \
    >/dev/null 2>>"$T/kms.log" || bail "challenger register failed"
vm_disk "$T/a.img" 48:persistent:luks:COS_PERSISTENT:"$T/a.pass":"$T/content" || bail "could not make the disk"
rm -f "$T/a.pass"
vm_boot learn --tpm "$tpm" --disk "$T/a.img" --kms-port "$KMS_PORT" --append "$(kms_arg)" --script "$T/unlock.sh"
check "first boot: unlocked with the key from the KMS" '[ "$(vm_mark learn unlock.rc)" = 0 ] && [ "$(vm_lines learn cat)" = "unlocked over G3" ]'
check "first boot: it was a G3 exchange, the quote over the KMS's nonce (audit)" \
    'grep "$hash" "$T/audit.jsonl" | grep -q "\"action\":\"tpm-attestation\",\"outcome\":\"ok\".*quote over our nonce"'
vf=$(vol_of "$hash")
check "the KMS recorded this boot's PCRs 0, 7 and 11 in the SealedVolume" \
    '[ -n "$vf" ] && grep -qE "^        \"0\": \"[0-9a-f]{64}\"" "$vf" && grep -qE "^        \"7\": \"[0-9a-f]{64}\"" "$vf" &&
     grep -qE "^        \"11\": \"[0-9a-f]{64}\"" "$vf"'
cp "$vf" "$T/pinned.yaml"
vm_boot pinned --tpm "$tpm" --disk "$T/a.img" --kms-port "$KMS_PORT" --append "$(kms_arg)" --script "$T/unlock.sh"
check "second boot: the same measurements match the pins, unlocked" \
    '[ "$(vm_mark pinned unlock.rc)" = 0 ] && [ "$(vm_lines pinned cat)" = "unlocked over G3" ]'
check "...and the pins did not change" \
    'diff <(grep -E "^        \"[0-9]+\":" "$T/pinned.yaml") <(grep -E "^        \"[0-9]+\":" "$vf") >/dev/null'
[ "$_tap_failed" -eq 0 ] || { vm_show learn; vm_show pinned; tail -5 "$T/audit.jsonl" | diag; }

# ---- a changed boot: the pinned PCR 7 is not what this boot measured ----
# Another TPM (vm_tpm_new copies one manufactured state: the same EK for every node).
tpm2=$(mktemp -d "$T/node2-tpm.XXXXXX")
cp -a "$(golden_state vm-node2 ekcert)/state/." "$tpm2/"
hash2=$(vm_tpm_hash "$tpm2") || bail "tpm-hash failed"
[ "$hash2" != "$hash" ] || bail "the second TPM has the first one's EK"
printf %s "g3-key-of-a-node-whose-boot-changed-012" >"$T/b.pass"
"$KAIROS_KMS" challenger register --db "$DB" --tpm-hash "$hash2" --label COS_PERSISTENT --passphrase-file "$T/b.pass" \
    --pcr "7=$(printf '%064x' 7)" >/dev/null 2>>"$T/kms.log" || bail "challenger register --pcr failed"
vm_disk "$T/b.img" 48:persistent:luks:COS_PERSISTENT:"$T/b.pass" || bail "could not make the disk"
rm -f "$T/b.pass"
vm_boot changed --tpm "$tpm2" --disk "$T/b.img" --kms-port "$KMS_PORT" --append "$(kms_arg)" --script "$T/refused.sh"
check "changed boot: the boot ran to the end" '[ "$(vm_mark changed end)" = 1 ]'
check "changed boot: the disk stays locked (unlock-all exits 1)" \
    '[ "$(vm_mark changed unlock.rc)" = 1 ] && vm_lines changed unlock | grep -q "^COS_PERSISTENT (/dev/vda1): still locked$"'
check "changed boot: the console says why (the KMS: PCR 7 changed, with both values)" 'vm_errs changed unlock | grep -q "PCR verification failed: PCR7 changed - boot state verification failed: expected 0\{63\}7, got [0-9a-f]"'
check "changed boot: the KMS audit log has the refusal with the PCR" \
    'grep "$hash2" "$T/audit.jsonl" | grep "\"outcome\":\"refused\"" | grep -q "PCR7"'
[ "$_tap_failed" -eq 0 ] || { vm_show changed; tail -5 "$T/audit.jsonl" | diag; }
vm_done
