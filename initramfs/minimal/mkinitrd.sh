#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# mkinitrd.sh --kairos-kms BIN --kernel-root DIR [--cache DIR]: the minimal initramfs of the VM
# tests, printed as a path: busybox-static, the static kairos-kms with its applet links, mke2fs
# (kcrypt encrypt runs mkfs.ext4), the kernel modules below from Debian's kernel package, and the
# generic /init beside this script. Cached by the hash of everything that goes in, under
# ${KAIROS_KMS_CACHE:-/var/cache/kairos-kms}/vm (gzip -1 cpio, newc).
#
# Deliberately NOT in the image: udev, /sbin/modprobe (so the kernel cannot auto-load modules) and
# the device-mapper, xts, ecb and crc32c modules' load commands: kairos-kms must load those itself
# (lib/base/kmod.c). /init loads only the disk, network and ext4 drivers, with busybox modprobe.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kkms='' kroot='' cache=${KAIROS_KMS_CACHE:-/var/cache/kairos-kms}/vm
while [ $# -gt 0 ]; do
    case $1 in
    --kairos-kms) kkms=$2; shift 2 ;;
    --kernel-root) kroot=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    *) echo "mkinitrd: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x "$kkms" ] || { echo "mkinitrd: --kairos-kms BIN: not an executable: '$kkms'" >&2; exit 2; }
[ -d "$kroot/lib/modules" ] || { echo "mkinitrd: --kernel-root DIR: no lib/modules in '$kroot'" >&2; exit 2; }
for tool in busybox cpio gzip depmod mke2fs ldd sha256sum; do
    command -v "$tool" >/dev/null || { echo "mkinitrd: $tool is missing (apt-get install busybox-static cpio kmod e2fsprogs)" >&2; exit 1; }
done
busybox=$(command -v busybox)
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
    { echo "mkinitrd: $busybox is not static (apt-get install busybox-static)" >&2; exit 1; }
kv=$(ls "$kroot/lib/modules" | head -1)
moddir=$kroot/lib/modules/$kv

# docs/testing.md §6.1: the virtio disk and network drivers, ext4, device-mapper and the crypto
# templates dm-crypt needs for aes-xts-plain64.
modules=(
    kernel/drivers/virtio/virtio_ring kernel/drivers/virtio/virtio kernel/drivers/virtio/virtio_pci_modern_dev
    kernel/drivers/virtio/virtio_pci_legacy_dev kernel/drivers/virtio/virtio_pci kernel/drivers/block/virtio_blk
    kernel/net/core/failover kernel/drivers/net/net_failover kernel/drivers/net/virtio_net
    kernel/drivers/md/dm-mod kernel/drivers/md/dm-crypt kernel/crypto/ecb kernel/crypto/xts
    kernel/lib/crc16 kernel/fs/mbcache kernel/fs/jbd2/jbd2 kernel/crypto/crc32c_generic kernel/fs/ext4/ext4
)
mke2fs=$(command -v mke2fs)
mapfile -t libs < <(ldd "$mke2fs" | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/lib/ {print $1}')

key=$( {
    sha256sum "${BASH_SOURCE[0]}" "$here/init" "$busybox" "$kkms" "$mke2fs" "${libs[@]}" /etc/mke2fs.conf
    for m in "${modules[@]}"; do sha256sum "$moddir/$m.ko"; done
    echo "$kv"
} | sed 's/ .*\// /' | sha256sum | cut -c1-16)
out=$cache/initrd-$key.cpio.gz
if [ -s "$out" ]; then
    touch "$out"
    echo "$out"
    exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
r=$work/root
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,mnt,system/discovery,lib64,lib/x86_64-linux-gnu}
mkdir -p "$r/lib/modules/$kv"
cp "$busybox" "$r/bin/busybox"
for a in $("$busybox" --list); do
    # Every applet in /bin, none in /sbin: no /sbin/modprobe, so no kernel auto-load.
    [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
done
cp "$kkms" "$r/usr/bin/kairos-kms"
ln -s kairos-kms "$r/usr/bin/kcrypt"
ln -s kairos-kms "$r/usr/bin/tpm-hash"
ln -s ../../usr/bin/kairos-kms "$r/system/discovery/kcrypt-discovery-challenger"
cp "$mke2fs" "$r/usr/sbin/mke2fs"
ln -s mke2fs "$r/usr/sbin/mkfs.ext4"
for l in "${libs[@]}"; do cp -L "$l" "$r$l"; done
cp /etc/mke2fs.conf "$r/etc/mke2fs.conf"
for m in "${modules[@]}"; do
    mkdir -p "$r/lib/modules/$kv/$(dirname "$m")"
    cp "$moddir/$m.ko" "$r/lib/modules/$kv/$m.ko"
done
for f in modules.builtin modules.builtin.modinfo modules.order; do cp "$moddir/$f" "$r/lib/modules/$kv/" 2>/dev/null || true; done
depmod -b "$r" "$kv"
cp "$here/init" "$r/init"
chmod 755 "$r/init"
(cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$work/initrd.cpio.gz"
mv "$work/initrd.cpio.gz" "$out"
# Keep the cache small: the 4 newest images (every kairos-kms build makes a new one).
ls -t "$cache"/initrd-*.cpio.gz 2>/dev/null | tail -n +5 | xargs -r rm -f
echo "$out"
