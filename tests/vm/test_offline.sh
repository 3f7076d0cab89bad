#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Offline mode in a real guest (two boots, the TPM state and the disk kept between them): the first
# boot encrypts the data partition with `kcrypt encrypt LABEL` (passphrase from the TPM NV index)
# and writes a file; the second boot unlocks it with `kcrypt unlock-all` and finds the file.
# kcrypt loads dm-mod, dm-crypt, xts, ecb and crc32c itself: the image has no modprobe for them.
. "$(dirname "$0")/lib/vm.sh"
vm_setup

tpm=$(vm_tpm_new node)
disk=$T/disk.img
vm_disk "$disk" 48:persistent:ext4:COS_PERSISTENT || bail "could not make the disk image"

cat >"$T/boot1.sh" <<'G'
for m in dm_mod dm_crypt xts ecb crc32c_generic; do [ -e /sys/module/$m ] && mark preloaded "$m"; done
run encrypt kcrypt encrypt COS_PERSISTENT
for m in dm_mod dm_crypt xts ecb crc32c_generic; do [ -e /sys/module/$m ] || mark notloaded "$m"; done
run unlock kcrypt unlock-all --timeout 30
mkdir -p /mnt/data
run mount mount -t ext4 /dev/mapper/vda1 /mnt/data
echo "written at first boot" >/mnt/data/MARKER
run umount umount /mnt/data
G
vm_boot boot1 --tpm "$tpm" --disk "$disk" --script "$T/boot1.sh"
check "boot 1 ran to the end" '[ "$(vm_mark boot1 end)" = 1 ]'
check "no device-mapper or crypto module was loaded before kcrypt ran" '[ -z "$(vm_mark boot1 preloaded)" ]'
check "kcrypt encrypt succeeded" '[ "$(vm_mark boot1 encrypt.rc)" = 0 ]'
check "kcrypt encrypt printed LABEL:NAME:UUID" 'vm_lines boot1 encrypt | grep -Eq "^COS_PERSISTENT:vda1:[0-9a-f-]{36}$"'
check "kcrypt loaded dm_mod, dm_crypt, xts, ecb and crc32c_generic itself" '[ -z "$(vm_mark boot1 notloaded)" ]'
check "the new volume unlocked in the same boot" '[ "$(vm_mark boot1 unlock.rc)" = 0 ]'
check "its ext4 (made by kcrypt) mounted and took a file" '[ "$(vm_mark boot1 umount.rc)" = 0 ]'

vm_part "$disk" 1 "$T/part1.img"
check "the partition is LUKS2 labelled COS_PERSISTENT (host cryptsetup)" \
    'cryptsetup luksDump "$T/part1.img" | grep -Eq "^Label:[[:space:]]+COS_PERSISTENT$"'
check "its keyslot uses PBKDF2 (a TPM-generated passphrase)" 'cryptsetup luksDump "$T/part1.img" | grep -q "PBKDF:.*pbkdf2"'
vm_tpm_run "$tpm" bash -c 'timeout 60 "$KAIROS_KMS" kcrypt nv show --tpm-device "$0" >"$1"' "$tpm/host.sock" "$T/nv.pass" 2>>"$T/host.log"
check "the TPM NV passphrase opens it on the host" \
    'cryptsetup open --test-passphrase --key-file "$T/nv.pass" "$T/part1.img"'
rm -f "$T/nv.pass" "$T/part1.img"

cat >"$T/boot2.sh" <<'G'
run unlock kcrypt unlock-all --timeout 30
mkdir -p /mnt/data
run mount mount -t ext4 -o ro /dev/mapper/vda1 /mnt/data
run cat cat /mnt/data/MARKER
G
vm_boot boot2 --tpm "$tpm" --disk "$disk" --script "$T/boot2.sh"
check "boot 2 ran to the end" '[ "$(vm_mark boot2 end)" = 1 ]'
check "kcrypt unlock-all opened the partition from the TPM NV passphrase" '[ "$(vm_mark boot2 unlock.rc)" = 0 ]'
check "it printed one line for it" 'vm_lines boot2 unlock | grep -q "^COS_PERSISTENT (/dev/vda1): unlocked as /dev/mapper/vda1$"'
check "the file written at the first boot is there" '[ "$(vm_lines boot2 cat)" = "written at first boot" ]'
[ "$_tap_failed" -eq 0 ] || { vm_show boot1; vm_show boot2; }
vm_done
