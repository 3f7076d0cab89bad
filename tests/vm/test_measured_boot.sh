#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Measured-boot local mode in a real guest (the TPM state and the disk kept across three boots):
# boot 1 encrypts with kcrypt.tpm_pcrs: [7] and kcrypt.recovery_key: true and unlocks unattended;
# boot 2 changes PCR 7 before unlock-all (a raw TPM2_PCR_Extend: the image has no tpm2-tools), so
# the TPM refuses and unlock-all asks on the serial console, where the host types the recovery
# key printed at boot 1; the boot goes on, and `kcrypt reseal --unlock-key-file` (the recovery key)
# seals to the new PCR 7; boot 3 changes PCR 7 the same way and unlocks unattended.
. "$(dirname "$0")/lib/vm.sh"
vm_setup

tpm=$(vm_tpm_new node)
disk=$T/disk.img
vm_disk "$disk" 48:persistent:ext4:COS_PERSISTENT || bail "could not make the disk image"
cat >"$T/90_kcrypt.yaml" <<'EOC'
#cloud-config
kcrypt:
  tpm_pcrs: [7]
  recovery_key: true
EOC
# TPM2_PCR_Extend(PCR 7, password session, one SHA-256 digest of 32 bytes 0x01), in one write.
python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex("80020000004100000182000000070000000940000009000000000000000001000b") + b"\1" * 32)' \
    >"$T/extend7.bin"

cat >"$T/boot1.sh" <<'G'
run encrypt kcrypt encrypt COS_PERSISTENT
run unlock kcrypt unlock-all --timeout 30
mkdir -p /mnt/data
run mount mount -t ext4 /dev/mapper/vda1 /mnt/data
echo "written at first boot" >/mnt/data/MARKER
run umount umount /mnt/data
G
vm_boot boot1 --tpm "$tpm" --disk "$disk" --script "$T/boot1.sh" --file "$T/90_kcrypt.yaml:oem/90_kcrypt.yaml"
check "boot 1 ran to the end" '[ "$(vm_mark boot1 end)" = 1 ]'
check "kcrypt encrypt with kcrypt.tpm_pcrs succeeded" '[ "$(vm_mark boot1 encrypt.rc)" = 0 ]'
vm_errs boot1 encrypt | grep -Eo '([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}' | head -1 >"$T/rk"
check "it printed a recovery key" '[ "$(wc -c <"$T/rk")" = 72 ]'
check "unlock-all opened it unattended from the TPM" '[ "$(vm_mark boot1 unlock.rc)" = 0 ] && [ "$(vm_mark boot1 umount.rc)" = 0 ]'
vm_part "$disk" 1 "$T/part1.img"
check "the volume has a systemd-tpm2 token sealed to PCR 7 (host cryptsetup)" \
    'cryptsetup --disable-external-tokens token export --token-id 0 "$T/part1.img" | grep -q "\"tpm2-pcrs\":\[7\]"'
tr -d '\n' <"$T/rk" >"$T/rk.key"
check "the recovery key opens it (host cryptsetup)" 'cryptsetup open --test-passphrase --key-file "$T/rk.key" "$T/part1.img"'
rm -f "$T/part1.img"

cat >"$T/boot2.sh" <<'G'
exec 3<>/dev/tpm0 && cat /extend7.bin >&3 && dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 | tr -d ' \n' >/tmp/rsp; exec 3>&-
mark extend "$(cut -c1-20 /tmp/rsp)"
run unlock kcrypt unlock-all --timeout 30
mkdir -p /mnt/data
run mount mount -t ext4 -o ro /dev/mapper/vda1 /mnt/data
run cat cat /mnt/data/MARKER
run umount umount /mnt/data
run reseal kcrypt reseal /dev/vda1 --unlock-key-file /rk.key
G
vm_boot boot2 --tpm "$tpm" --disk "$disk" --script "$T/boot2.sh" --file "$T/90_kcrypt.yaml:oem/90_kcrypt.yaml" \
    --file "$T/extend7.bin:extend7.bin" --file "$T/rk.key:rk.key" \
    --serial-answer "Recovery key or passphrase:$T/rk" --timeout 240
check "boot 2 ran to the end" '[ "$(vm_mark boot2 end)" = 1 ]'
check "PCR 7 was extended in the guest (TPM_RC_SUCCESS)" '[ "$(vm_mark boot2 extend)" = 80020000001300000000 ]'
check "unlock-all said the TPM refused over PCR 7 and asked on the console" \
    'vm_errs boot2 unlock | grep -q "PCRs 7 (sha256)" && grep -q "Recovery key or passphrase for COS_PERSISTENT (/dev/vda1), try 1 of 3" "$T/boot2.console.txt"'
check "the recovery key typed on the serial console opened it; the boot went on" \
    '[ "$(vm_mark boot2 unlock.rc)" = 0 ] && [ "$(vm_lines boot2 cat)" = "written at first boot" ]'
check "the typed key was not echoed on the console" '! grep -q "$(cut -c1-20 "$T/rk")" "$T/boot2.console.txt"'
check "kcrypt reseal with the recovery key sealed to the new PCR 7" \
    '[ "$(vm_mark boot2 reseal.rc)" = 0 ] && vm_lines boot2 reseal | grep -q "sealed to PCRs 7"'

vm_boot boot3 --tpm "$tpm" --disk "$disk" --script "$T/boot2.sh" --file "$T/90_kcrypt.yaml:oem/90_kcrypt.yaml" \
    --file "$T/extend7.bin:extend7.bin" --file "$T/rk.key:rk.key" \
    --serial-answer "Recovery key or passphrase:$T/rk" --timeout 240
check "boot 3 (same PCR 7 change): unlock-all unattended again, no prompt" \
    '[ "$(vm_mark boot3 unlock.rc)" = 0 ] && ! grep -q "Recovery key or passphrase" "$T/boot3.console.txt" && [ "$(vm_lines boot3 cat)" = "written at first boot" ]'
[ "$_tap_failed" -eq 0 ] || { vm_show boot1; vm_show boot2; vm_show boot3; }
vm_done
