#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# `kcrypt encrypt LABEL --keep-data` in a real guest: a partition holding files (an ext4 that
# leaves 32 MiB free at the end, made with mkfs.ext4 -d DIR IMG SIZE smaller than the partition)
# is encrypted in place (LUKS2 reencryption through dm-crypt); the next boot unlocks it from the
# TPM NV passphrase and every file is intact (SHA-256 of each, as listed on the host).
. "$(dirname "$0")/lib/vm.sh"
vm_setup

content=$T/content
mkdir -p "$content/etc/sub/deeper" "$content/empty"
echo "hello from inside luks" >"$content/MARKER"
head -c 3145728 /dev/urandom >"$content/random-3MiB.bin"
for i in $(seq 1 40); do head -c $((i * 997)) /dev/urandom >"$content/etc/sub/file-$i"; done
printf 'deep\n' >"$content/etc/sub/deeper/leaf.txt"
ln -s ../MARKER "$content/etc/marker-link"
(cd "$content" && find . -type f | LC_ALL=C sort | xargs sha256sum) >"$T/expected.sha256"
nfiles=$(wc -l <"$T/expected.sha256")

tpm=$(vm_tpm_new node)
disk=$T/disk.img
vm_disk "$disk" 64:persistent:ext4:COS_PERSISTENT:"$content":32 || bail "could not make the disk image"

cat >"$T/boot1.sh" <<'G'
run encrypt kcrypt encrypt COS_PERSISTENT --keep-data
G
vm_boot boot1 --tpm "$tpm" --disk "$disk" --script "$T/boot1.sh"
check "boot 1 ran to the end" '[ "$(vm_mark boot1 end)" = 1 ]'
check "kcrypt encrypt --keep-data succeeded" '[ "$(vm_mark boot1 encrypt.rc)" = 0 ]'
check "it printed LABEL:NAME:UUID" 'vm_lines boot1 encrypt | grep -Eq "^COS_PERSISTENT:vda1:[0-9a-f-]{36}$"'
check "it showed its progress" 'vm_errs boot1 encrypt | grep -q "COS_PERSISTENT: 100%"'
echo "# in-place encryption took $(awk -v a="$(vm_mark boot1 ready.at)" -v b="$(vm_mark boot1 encrypt.at)" 'BEGIN{printf "%.1f", b - a}') s in the guest"

vm_part "$disk" 1 "$T/part1.img"
check "the partition is now LUKS2 labelled COS_PERSISTENT (host cryptsetup)" \
    'cryptsetup luksDump "$T/part1.img" | grep -Eq "^Label:[[:space:]]+COS_PERSISTENT$"'
check "no reencryption is left pending in the header" '! cryptsetup luksDump "$T/part1.img" | grep -q "reencrypt"'
rm -f "$T/part1.img"

cat >"$T/boot2.sh" <<'G'
run unlock kcrypt unlock-all --timeout 30
mkdir -p /mnt/data
run mount mount -t ext4 -o ro /dev/mapper/vda1 /mnt/data
cd /mnt/data && run sums sha256sum -c /expected.sha256
run count sh -c 'find . -type f | wc -l'
run link readlink etc/marker-link
cd /
G
vm_boot boot2 --tpm "$tpm" --disk "$disk" --script "$T/boot2.sh" --file "$T/expected.sha256:expected.sha256"
check "boot 2 ran to the end" '[ "$(vm_mark boot2 end)" = 1 ]'
check "kcrypt unlock-all opened it" '[ "$(vm_mark boot2 unlock.rc)" = 0 ]'
check "the filesystem inside mounts" '[ "$(vm_mark boot2 mount.rc)" = 0 ]'
check "every file has its SHA-256 of before ($nfiles files)" \
    '[ "$(vm_mark boot2 sums.rc)" = 0 ] && [ "$(vm_lines boot2 sums | grep -c ": OK$")" = "$nfiles" ]'
check "no file appeared or went missing" '[ "$(vm_lines boot2 count)" = "$nfiles" ]'
check "the symlink is intact" '[ "$(vm_lines boot2 link)" = "../MARKER" ]'
[ "$_tap_failed" -eq 0 ] || { vm_show boot1; vm_show boot2; }
vm_done
