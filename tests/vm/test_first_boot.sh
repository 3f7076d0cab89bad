#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# First-boot encryption of a cloned image (kcrypt.encrypt_on_boot): the node's disk holds a plain
# ext4 COS_PERSISTENT with files; the config lists it in install.encrypted_partitions. At boot,
# `kcrypt unlock-all` encrypts it in place with this node's own TPM key, then unlocks it; every
# file is intact, and the next boot just unlocks. A second disk is encrypted the same way but the
# VM is killed (kill -9 of QEMU) in the middle of the reencryption: the next boot resumes it, and
# every file is intact there too.
. "$(dirname "$0")/lib/vm.sh"
vm_setup

content=$T/content
mkdir -p "$content/etc/sub"
echo "hello from a cloned image" >"$content/MARKER"
head -c 3145728 /dev/urandom >"$content/random-3MiB.bin"
for i in $(seq 1 30); do head -c $((i * 991)) /dev/urandom >"$content/etc/sub/file-$i"; done
(cd "$content" && find . -type f | LC_ALL=C sort | xargs sha256sum) >"$T/expected.sha256"
nfiles=$(wc -l <"$T/expected.sha256")
cat >"$T/kcrypt.yaml" <<'Y'
#cloud-config
install:
  encrypted_partitions: [COS_PERSISTENT]
kcrypt:
  encrypt_on_boot: true
Y
cat >"$T/verify.sh" <<'G'
mkdir -p /mnt/data
run mount mount -t ext4 -o ro /dev/mapper/vda1 /mnt/data
cd /mnt/data && run sums sha256sum -c /expected.sha256
cd / && umount /mnt/data
G
files=(--file "$T/kcrypt.yaml:oem/90_kcrypt.yaml" --file "$T/expected.sha256:expected.sha256")

# --- an uninterrupted first boot, then a normal boot ---
tpm=$(vm_tpm_new node)
vm_disk "$T/disk.img" 64:persistent:ext4:COS_PERSISTENT:"$content":32 || bail "could not make the disk image"
{ echo 'run unlock kcrypt unlock-all --timeout 60'; cat "$T/verify.sh"; } >"$T/boot1.sh"
vm_boot first --tpm "$tpm" --disk "$T/disk.img" --script "$T/boot1.sh" "${files[@]}"
check "first boot: unlock-all encrypted and unlocked COS_PERSISTENT" '[ "$(vm_mark first unlock.rc)" = 0 ]'
check "first boot: it said so" \
    'vm_lines first unlock | grep -x "COS_PERSISTENT (/dev/vda1): encrypted" >/dev/null &&
     vm_lines first unlock | grep -x "COS_PERSISTENT (/dev/vda1): unlocked as /dev/mapper/vda1" >/dev/null'
check "first boot: every file is intact ($nfiles files)" \
    '[ "$(vm_mark first sums.rc)" = 0 ] && [ "$(vm_lines first sums | grep -c ": OK$")" = "$nfiles" ]'
vm_part "$T/disk.img" 1 "$T/part1.img"
check "the partition is LUKS2 labelled COS_PERSISTENT, no reencryption pending (host cryptsetup)" \
    'cryptsetup luksDump "$T/part1.img" >"$T/dump1" && grep -Eq "^Label:[[:space:]]+COS_PERSISTENT$" "$T/dump1" &&
     ! grep -q reencrypt "$T/dump1"'
rm -f "$T/part1.img"
{ echo 'run unlock kcrypt unlock-all --timeout 60'; cat "$T/verify.sh"; } >"$T/boot2.sh"
vm_boot second --tpm "$tpm" --disk "$T/disk.img" --script "$T/boot2.sh" "${files[@]}"
check "next boot: unlocked without encrypting again" \
    '[ "$(vm_mark second unlock.rc)" = 0 ] && ! vm_lines second unlock | grep -q "encryption in place"'
check "next boot: every file is intact" '[ "$(vm_mark second sums.rc)" = 0 ]'
[ "$_tap_failed" -eq 0 ] || { vm_show first; vm_show second; }

# --- power loss during the encryption, then the boot that resumes it ---
tpm2=$(vm_tpm_new node2)
head -c $((96 << 20)) /dev/urandom >"$content/random-96MiB.bin"
(cd "$content" && find . -type f | LC_ALL=C sort | xargs sha256sum) >"$T/expected.sha256"
nfiles=$(wc -l <"$T/expected.sha256")
vm_disk "$T/disk2.img" 192:persistent:ext4:COS_PERSISTENT:"$content":160 || bail "could not make the second disk image"
rm -f "$content/random-96MiB.bin"
# The progress lines go straight to the console, so the host sees how far it got.
echo 'kcrypt unlock-all --timeout 60 2>&1 | sed "s/^/[live] /"' >"$T/cut.sh"
vm_boot cut --tpm "$tpm2" --disk "$T/disk2.img" --script "$T/cut.sh" "${files[@]}" --timeout 300 &
bootpid=$!
cut_at=''
for i in $(seq 3000); do
    cut_at=$(tr -d '\r' <"$T/cut.console" 2>/dev/null | grep -oE "^\[live\] COS_PERSISTENT: ([1-9]|[1-7][0-9])%" | tail -1)
    [ -n "$cut_at" ] && break
    kill -0 "$bootpid" 2>/dev/null || break
    sleep 0.1
done
pkill -9 -f "qemu-system-x86_64.*$T/cut.initrd"
wait "$bootpid"
echo "# power cut at: ${cut_at:-never seen}"
check "the encryption was under way when the VM was killed" '[ -n "$cut_at" ] && ! grep -q "encrypted$" "$T/cut.console.txt"'
vm_part "$T/disk2.img" 1 "$T/part2.img"
check "the header records a reencryption in progress (host cryptsetup)" \
    'cryptsetup luksDump "$T/part2.img" | grep -q "online-reencrypt"'
rm -f "$T/part2.img"
{ echo 'run unlock kcrypt unlock-all --timeout 120'; cat "$T/verify.sh"; } >"$T/resume.sh"
vm_boot resume --tpm "$tpm2" --disk "$T/disk2.img" --script "$T/resume.sh" "${files[@]}" --timeout 300
check "resume boot: it resumed the interrupted encryption" \
    'vm_lines resume unlock | grep -x "COS_PERSISTENT (/dev/vda1): resuming encryption in place" >/dev/null'
check "resume boot: then unlocked COS_PERSISTENT" '[ "$(vm_mark resume unlock.rc)" = 0 ]'
check "resume boot: every file is intact ($nfiles files, one of 96 MiB)" \
    '[ "$(vm_mark resume sums.rc)" = 0 ] && [ "$(vm_lines resume sums | grep -c ": OK$")" = "$nfiles" ]'
[ "$_tap_failed" -eq 0 ] || { vm_show cut; vm_show resume; }
vm_done
