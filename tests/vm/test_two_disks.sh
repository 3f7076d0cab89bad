#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Two disks, offline mode, one boot: vda holds a decoy LUKS2 partition (label DECOY, a passphrase
# nobody knows), vdb the node's COS_PERSISTENT, encrypted with the passphrase the node's TPM keeps
# at NV 0x1500000 (set up on the host with `kcrypt nv init` and `kcrypt nv show`).
#
# What "only the right one is opened" means in offline mode: the TPM holds ONE passphrase per
# node, not one per label, and unlock-all offers it to every locked LUKS partition (as upstream
# does). The right one is the partition whose keyslot takes that passphrase; every other LUKS
# partition stays locked, is reported on stdout ("still locked") and named in the error, and makes
# the exit code 1 — a wrong passphrase is final, so the decoy does not delay the boot.
. "$(dirname "$0")/lib/vm.sh"
vm_setup

tpm=$(vm_tpm_new node)
vm_tpm_run "$tpm" bash -c 'timeout 60 "$KAIROS_KMS" kcrypt nv init --tpm-device "$0" &&
    timeout 60 "$KAIROS_KMS" kcrypt nv show --tpm-device "$0" >"$1"' "$tpm/host.sock" "$T/nv.pass" 2>>"$T/host.log" ||
    bail "could not create the TPM NV passphrase on the host"
head -c 32 /dev/urandom | base64 >"$T/decoy.pass"
mkdir -p "$T/content"
echo "the right disk" >"$T/content/MARKER"
vm_disk "$T/decoy.img" 48:persistent:luks:DECOY:"$T/decoy.pass" || bail "could not make the decoy disk"
vm_disk "$T/disk.img" 48:persistent:luks:COS_PERSISTENT:"$T/nv.pass":"$T/content" || bail "could not make the disk"
rm -f "$T/nv.pass" "$T/decoy.pass"

cat >"$T/boot.sh" <<'G'
run unlock kcrypt unlock-all --timeout 30
[ -e /dev/mapper/vda1 ] && mark decoy_opened 1
mkdir -p /mnt/data
run mount mount -t ext4 -o ro /dev/mapper/vdb1 /mnt/data
run cat cat /mnt/data/MARKER
G
vm_boot two --tpm "$tpm" --disk "$T/decoy.img" --disk "$T/disk.img" --script "$T/boot.sh"
secs=$(awk -v a="$(vm_mark two ready.at)" -v b="$(vm_mark two unlock.at)" 'BEGIN{printf "%.1f", b - a}')
check "the boot ran to the end" '[ "$(vm_mark two end)" = 1 ]'
check "the right partition is opened" \
    'vm_lines two unlock | grep -qx "COS_PERSISTENT (/dev/vdb1): unlocked as /dev/mapper/vdb1"'
check "the decoy stays locked and is reported" 'vm_lines two unlock | grep -qx "DECOY (/dev/vda1): still locked"'
check "no mapping exists for the decoy" '[ -z "$(vm_mark two decoy_opened)" ]'
check "unlock-all exits 1 naming the decoy" \
    '[ "$(vm_mark two unlock.rc)" = 1 ] && vm_errs two unlock | grep -q "1 of 2 LUKS partitions stayed locked: vda1 (DECOY)"'
check "the wrong passphrase is final: no retry ($secs s)" '! vm_errs two unlock | grep -q "retrying" && [ "${secs%.*}" -lt 10 ]'
check "the right disk's file is there" '[ "$(vm_lines two cat)" = "the right disk" ]'
[ "$_tap_failed" -eq 0 ] || vm_show two
vm_done
