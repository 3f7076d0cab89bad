#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Online mode in a real guest against our KMS on the host (G1, docs/upstream.md §5): the node's disk
# has two partitions, one registered with a static key, one with an auto-generated key. The first
# boot encrypts both (kcrypt asks the kcrypt-discovery-challenger plugin, which proves its TPM to
# the KMS; for the second it generates the key and escrows only TPM ciphertext), the second boot
# unlocks both. The guest's only way out is the guestfwd to 127.0.0.1:PORT in this namespace.
. "$(dirname "$0")/lib/vm.sh"
vm_setup

tpm=$(vm_tpm_new node)
hash=$(vm_tpm_hash "$tpm") || bail "tpm-hash failed"
kms_start
printf %s "static-key-of-the-operator-0123456789" >"$T/static.pass"
"$KAIROS_KMS" challenger register --db "$DB" --tpm-hash "$hash" --label STATIC_DATA --passphrase-file "$T/static.pass" \
    >/dev/null 2>>"$T/kms.log" || bail "challenger register (static) failed"
"$KAIROS_KMS" challenger register --db "$DB" --tpm-hash "$hash" --label COS_PERSISTENT \
    >/dev/null 2>>"$T/kms.log" || bail "challenger register (auto) failed"

disk=$T/disk.img
vm_disk "$disk" 48:static:ext4:STATIC_DATA 48:persistent:ext4:COS_PERSISTENT || bail "could not make the disk image"
# G1 as written (kcrypt.challenger.protocol=g1); the G3 scenarios are not VM-tested yet.
kms="kcrypt.challenger.challenger_server=http://10.0.2.100:$KMS_PORT kcrypt.challenger.protocol=g1"

cat >"$T/boot1.sh" <<'G'
run encrypt_static kcrypt encrypt STATIC_DATA
run encrypt_auto kcrypt encrypt COS_PERSISTENT
run unlock kcrypt unlock-all --timeout 60
mkdir -p /mnt/s /mnt/a
mount -t ext4 /dev/mapper/vda1 /mnt/s && echo static-file >/mnt/s/MARKER && umount /mnt/s && mark write_static ok
mount -t ext4 /dev/mapper/vda2 /mnt/a && echo auto-file >/mnt/a/MARKER && umount /mnt/a && mark write_auto ok
G
vm_boot boot1 --tpm "$tpm" --disk "$disk" --kms-port "$KMS_PORT" --append "$kms" --script "$T/boot1.sh"
check "boot 1 ran to the end" '[ "$(vm_mark boot1 end)" = 1 ]'
check "kcrypt encrypt STATIC_DATA got its key from the KMS" '[ "$(vm_mark boot1 encrypt_static.rc)" = 0 ]'
check "kcrypt encrypt COS_PERSISTENT enrolled a generated key" '[ "$(vm_mark boot1 encrypt_auto.rc)" = 0 ]'
check "both unlocked in the same boot" '[ "$(vm_mark boot1 unlock.rc)" = 0 ]'
check "files written on both" '[ "$(vm_mark boot1 write_static)" = ok ] && [ "$(vm_mark boot1 write_auto)" = ok ]'
echo "# guest seconds: encrypt static $(vm_mark boot1 encrypt_static.at), auto $(vm_mark boot1 encrypt_auto.at), unlock $(vm_mark boot1 unlock.at) (uptime; ready at $(vm_mark boot1 ready.at))"

check "the KMS wrote a Secret that holds only TPM ciphertext" 'grep -rqs "generated_by: tpm" "$DB"'
vm_part "$disk" 1 "$T/p1.img"
vm_part "$disk" 2 "$T/p2.img"
check "the operator's static key opens STATIC_DATA (host cryptsetup)" \
    'cryptsetup open --test-passphrase --key-file "$T/static.pass" "$T/p1.img"'
check "KMS keyslots use argon2id (operator-chosen passphrases)" \
    'cryptsetup luksDump "$T/p1.img" | grep -q "PBKDF:.*argon2id" && cryptsetup luksDump "$T/p2.img" | grep -q "PBKDF:.*argon2id"'
check "argon2id is capped at 64 MiB" 'cryptsetup luksDump "$T/p2.img" | grep -Eq "Memory:[[:space:]]+65536"'
rm -f "$T/p1.img" "$T/p2.img"

cat >"$T/boot2.sh" <<'G'
run unlock kcrypt unlock-all --timeout 60
mkdir -p /mnt/s /mnt/a
mount -t ext4 -o ro /dev/mapper/vda1 /mnt/s && run cat_static cat /mnt/s/MARKER
mount -t ext4 -o ro /dev/mapper/vda2 /mnt/a && run cat_auto cat /mnt/a/MARKER
G
vm_boot boot2 --tpm "$tpm" --disk "$disk" --kms-port "$KMS_PORT" --append "$kms" --script "$T/boot2.sh"
check "boot 2 ran to the end" '[ "$(vm_mark boot2 end)" = 1 ]'
check "kcrypt unlock-all opened both partitions with keys from the KMS" '[ "$(vm_mark boot2 unlock.rc)" = 0 ]'
check "one line per partition" '[ "$(vm_lines boot2 unlock | grep -c "unlocked as /dev/mapper/")" = 2 ]'
check "the static-key partition has its file" '[ "$(vm_lines boot2 cat_static)" = static-file ]'
check "the auto-generated-key partition has its file" '[ "$(vm_lines boot2 cat_auto)" = auto-file ]'
check "the audit log shows keys released to this TPM" 'grep -q "$hash" "$T/audit.jsonl"'
[ "$_tap_failed" -eq 0 ] || { vm_show boot1; vm_show boot2; tail -20 "$T/kms.log" | diag; }
vm_done
