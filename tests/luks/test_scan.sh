#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# test_scan.sh LUKS_PROBE: luks_scan on real block devices, no udev. Needs root: a GPT image
# (sgdisk) attached with losetup -P holds a LUKS2 COS_PERSISTENT, an ext4 COS_OEM and a decoy
# LUKS2; every field must match blkid and sgdisk. The loop device is detached on every exit.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/disk.sh"
PROBE=${1:?usage: test_scan.sh LUKS_PROBE}
require losetup sgdisk blkid partx mkfs.ext4 cryptsetup timeout truncate
[ "$(id -u)" = 0 ] || bail "test_scan.sh needs root (losetup, mknod)"

lp() { timeout -k 5 60 "$PROBE" "$@"; }
# get FILE NAME KEY: KEY of the block NAME=<NAME> in luks_probe scan output.
get() { awk -v n="$2" -v k="$3" -v RS= -F '\n' '{ m = 0; for (i = 1; i <= NF; i++) if ($i == "NAME=" n) m = 1
        if (m) for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$1"; }
has_block() { grep -qx "NAME=$2" "$1"; }
blk() { timeout 10 blkid -p -o export "$1" | sed -n "s/^$2=//p"; }
sg() { timeout 10 sgdisk -i "$2" "$1" | sed -n "s/^$3: //p"; }

img=$T/disk.img
truncate -s 100M "$img"
timeout 10 sgdisk -n1:1M:+30M -c1:persistent -n2:0:+30M -c2:oem -n3:0:+30M -c3:decoy "$img" >/dev/null ||
    bail "sgdisk failed"

loopdisk_attach "$img"
loop=$LOOP
check "losetup -f --show -P attached $loop with ${L}p1..p3 in sysfs" \
    '[ -b "$loop" ] && [ -e /sys/class/block/${L}p1 ] && [ -e /sys/class/block/${L}p3 ]'

printf %s 'pw-persistent' | lp format /dev/${L}p1 COS_PERSISTENT minimal
check "luks_format on ${L}p1" '[ $? = 0 ]'
timeout 30 mkfs.ext4 -q -F -L COS_OEM /dev/${L}p2
printf %s 'pw-decoy' | lp format /dev/${L}p3 DECOY minimal
check "luks_format on ${L}p3 (decoy)" '[ $? = 0 ]'

lp scan / >"$T/scan" 2>"$T/err"
check "scan /: exit 0" '[ $? = 0 ]'
for n in 1 2 3; do
    p=${L}p$n
    dev=/dev/$p
    check "$p listed, device $dev, disk $L, partno $n" \
        '[ "$(get "$T/scan" $p DEVNAME)" = $dev ] && [ "$(get "$T/scan" $p DISK)" = $L ] && [ "$(get "$T/scan" $p PARTNO)" = $n ]'
    check "$p: TYPE, LABEL, UUID as blkid says" \
        '[ "$(get "$T/scan" $p TYPE)" = "$(blk $dev TYPE)" ] && [ "$(get "$T/scan" $p LABEL)" = "$(blk $dev LABEL)" ] && [ "$(get "$T/scan" $p UUID)" = "$(blk $dev UUID)" ]'
    check "$p: PARTLABEL and PARTUUID as sgdisk -i says" \
        '[ "$(get "$T/scan" $p PARTLABEL)" = "$(sg $img $n "Partition name" | tr -d "'"'"'")" ] && [ "$(get "$T/scan" $p PARTUUID)" = "$(sg $img $n "Partition unique GUID" | tr A-F a-f)" ]'
    check "$p: size in bytes as sysfs/blockdev" '[ "$(get "$T/scan" $p SIZE)" = "$(blockdev --getsize64 $dev)" ]'
    check "$p: MAJ:MIN from sysfs" '[ "$(get "$T/scan" $p MAJMIN)" = "$(cat /sys/class/block/$p/dev)" ]'
done
check "${L}p1: crypto_LUKS, COS_PERSISTENT, UUIDv5" \
    '[ "$(get "$T/scan" ${L}p1 TYPE)" = crypto_LUKS ] && [ "$(get "$T/scan" ${L}p1 LABEL)" = COS_PERSISTENT ] && [ "$(get "$T/scan" ${L}p1 UUID)" = 85c39d0f-4867-5227-8334-f5eec606d9eb ]'
check "${L}p2: ext4 COS_OEM, PARTLABEL oem" \
    '[ "$(get "$T/scan" ${L}p2 TYPE)" = ext4 ] && [ "$(get "$T/scan" ${L}p2 LABEL)" = COS_OEM ] && [ "$(get "$T/scan" ${L}p2 PARTLABEL)" = oem ]'
check "the whole disk $L (a partition table, no filesystem) is not listed" '! has_block "$T/scan" $L'

lp find / COS_PERSISTENT >"$T/out" 2>"$T/err"
check "find COS_PERSISTENT: /dev/${L}p1 (not the decoy)" '[ "$(cat "$T/out")" = /dev/${L}p1 ]'
lp find / COS_OEM >"$T/out" 2>"$T/err"
check "find COS_OEM: /dev/${L}p2" '[ "$(cat "$T/out")" = /dev/${L}p2 ]'
lp find / DECOY >"$T/out" 2>"$T/err"
check "find DECOY: /dev/${L}p3" '[ "$(cat "$T/out")" = /dev/${L}p3 ]'
lp locked / >"$T/out" 2>"$T/err"
check "locked: ${L}p1 and ${L}p3, not the ext4" \
    'grep -qx "${L}p1 COS_PERSISTENT" "$T/out" && grep -qx "${L}p3 DECOY" "$T/out" && ! grep -q "^${L}p2 " "$T/out"'

# A damaged primary header: the label still comes from the secondary.
timeout 10 dd if=/dev/zero of=/dev/${L}p3 bs=4096 count=1 conv=notrunc,fsync status=none
lp scan / >"$T/scan" 2>"$T/err"
check "${L}p3 with its primary header zeroed: crypto_LUKS, label DECOY from the secondary" \
    '[ "$(get "$T/scan" ${L}p3 TYPE)" = crypto_LUKS ] && [ "$(get "$T/scan" ${L}p3 LABEL)" = DECOY ]'

# A legacy disk: LUKS2 without a label, known by PARTLABEL (docs/upstream.md §3.1, §3.5).
printf %s 'pw-legacy' | timeout 60 cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 \
    --pbkdf-force-iterations 1000 --key-file - /dev/${L}p1
lp find / COS_PERSISTENT >"$T/out" 2>"$T/err"
check "an unlabelled LUKS2 on PARTLABEL persistent is found as COS_PERSISTENT" '[ "$(cat "$T/out")" = /dev/${L}p1 ]'
lp locked / >"$T/out" 2>"$T/err"
check "locked: the legacy partition is asked for as COS_PERSISTENT" 'grep -qx "${L}p1 COS_PERSISTENT" "$T/out"'

# ---- a root prefix: our own sysfs tree, no device nodes, a /proc/mounts of our own ----
R=$T/root
disk_dir=$R/sys/devices/virtual/block/$L
mkdir -p "$disk_dir/${L}p2/holders" "$disk_dir/loop" "$disk_dir/holders" "$R/sys/class/block" "$R/dev" "$R/proc"
for a in dev size ro; do cat /sys/class/block/$L/$a >"$disk_dir/$a"; done
echo "$img" >"$disk_dir/loop/backing_file"
for a in dev size ro partition; do cat /sys/class/block/${L}p2/$a >"$disk_dir/${L}p2/$a"; done
ln -s ../../devices/virtual/block/$L "$R/sys/class/block/$L"
ln -s ../../devices/virtual/block/$L/${L}p2 "$R/sys/class/block/${L}p2"
printf '/dev/%s /oem\\040dir ext4 rw,relatime 0 0\n' "${L}p2" >"$R/proc/mounts"
lp scan "$R" >"$T/scan" 2>"$T/err"
check "scan ROOT: exit 0" '[ $? = 0 ]'
check "scan ROOT: made the missing nodes with mknod and said so" \
    '[ -b "$R/dev/${L}p2" ] && [ -b "$R/dev/$L" ] && grep -q "$R/dev/${L}p2 was missing: made it from sysfs dev" "$T/err"'
check "scan ROOT: device path under the root" '[ "$(get "$T/scan" ${L}p2 DEVNAME)" = "$R/dev/${L}p2" ]'
check "scan ROOT: label and PARTLABEL read through the new nodes" \
    '[ "$(get "$T/scan" ${L}p2 LABEL)" = COS_OEM ] && [ "$(get "$T/scan" ${L}p2 PARTLABEL)" = oem ]'
check "scan ROOT: mount point from ROOT/proc/mounts, unescaped" '[ "$(get "$T/scan" ${L}p2 MOUNTPOINT)" = "/oem dir" ]'
check "scan ROOT: only the devices of ROOT's sysfs" '[ "$(grep -c ^NAME= "$T/scan")" = 1 ]'
touch "$disk_dir/${L}p2/holders/dm-0"
mkdir -p "$R/dev/mapper"
check "scan ROOT: holders seen" 'lp scan "$R" 2>/dev/null | grep -x HOLDERS=1 >/dev/null'

timeout 10 losetup -d "$loop" && attached=
done_testing
