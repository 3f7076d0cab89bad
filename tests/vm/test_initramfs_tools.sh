#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Boots with an initramfs built by Debian's own mkinitramfs (package initramfs-tools, the default
# generator on Debian and Ubuntu) with our hook and local-top script (initramfs/initramfs-tools)
# and the downloaded kernel's modules. initramfs-tools' init runs our local-top script, which runs
# `kcrypt unlock-all`, then mounts the plain root (vda1) and switches to it; the root's /sbin/init
# reports whether COS_PERSISTENT (vdb1) was unlocked and reads a file from it. Two boots:
#   offline  the passphrase from the TPM's NV index
#   online   rd.neednet=1 ip=dhcp: initramfs-tools brings the network up (klibc ipconfig), and the
#            key comes from our KMS on the host (G1, a static key registered for the node's TPM)
. "$(dirname "$0")/lib/vm.sh"
vm_setup
require mkinitramfs unshare
mkdir -p /lib/modules /boot

# mkinitramfs reads the kernel's modules from /lib/modules/KV: in a private mount namespace the
# downloaded kernel's tree is mounted there (this machine's own modules are not touched).
conf=$T/initramfs-tools
cp -a /etc/initramfs-tools "$conf"
cp "$_vm_src/initramfs/initramfs-tools/hooks/kairos-kms" "$conf/hooks/kairos-kms"
mkdir -p "$conf/scripts/local-top"
cp "$_vm_src/initramfs/initramfs-tools/scripts/local-top/kairos-kms" "$conf/scripts/local-top/kairos-kms"
chmod 755 "$conf/hooks/kairos-kms" "$conf/scripts/local-top/kairos-kms"
sed -i -e 's/^MODULES=.*/MODULES=list/' -e 's/^COMPRESS=.*/COMPRESS=gzip/' "$conf/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk virtio_net ext4 >"$conf/modules"
t0=$(date +%s.%N)
KAIROS_KMS_BIN=$KAIROS_KMS timeout 300 unshare -m bash -c '
    set -e
    mount -t tmpfs tmpfs /lib/modules && mkdir -p "/lib/modules/$1"
    mount --bind "$2/lib/modules/$1" "/lib/modules/$1"
    mount -t tmpfs tmpfs /boot && cp "$2/boot/config-$1" /boot/ 2>/dev/null || true
    mkinitramfs -d "$3" -o "$4" "$1"' _ "$VM_KV" "$VM_KROOT" "$conf" "$T/itools.img" >"$T/mkinitramfs.log" 2>&1
rc=$?
echo "# mkinitramfs built the initramfs in $(vm_elapsed "$t0") s ($(stat -c %s "$T/itools.img" 2>/dev/null) bytes)"
check "Debian's mkinitramfs built an initramfs with our hook" '[ "$rc" = 0 ] && [ -s "$T/itools.img" ]'
[ "$rc" = 0 ] || { tail -20 "$T/mkinitramfs.log" | diag; done_testing; exit 1; }
# The image may start with an uncompressed early cpio (microcode): unmkinitramfs reads both.
listing=$(cd "$T" && mkdir -p itools.x && unmkinitramfs itools.img itools.x >/dev/null 2>&1 && cd itools.x &&
    find . -mindepth 1 | sed 's#^\./\(main/\)\?##')
check "it holds kairos-kms, kcrypt and the discovery plugin link" \
    'grep -qx "usr/bin/kairos-kms" <<<"$listing" && grep -qx "usr/bin/kcrypt" <<<"$listing" &&
     grep -qx "system/discovery/kcrypt-discovery-challenger" <<<"$listing"'
check "it holds the local-top script" 'grep -qx "scripts/local-top/kairos-kms" <<<"$listing"'
check "it holds dm-crypt, xts and ecb" 'grep -q "/dm-crypt.ko" <<<"$listing" && grep -q "/xts.ko" <<<"$listing" && grep -q "/ecb.ko" <<<"$listing"'

root=$(vm_realroot "$T/rootfs")
vm_disk "$T/root.img" 16:root:ext4:KROOT:"$root" || bail "could not make the root disk"
boot_args="root=/dev/vda1 rootfstype=ext4 ro panic=-1 rd.kcrypt.timeout=40"

# --- offline: the TPM NV passphrase ---
tpm=$(vm_tpm_new node)
vm_tpm_run "$tpm" bash -c 'timeout 60 "$KAIROS_KMS" kcrypt nv init --tpm-device "$0" &&
    timeout 60 "$KAIROS_KMS" kcrypt nv show --tpm-device "$0" >"$1"' "$tpm/host.sock" "$T/nv.pass" 2>>"$T/host.log" ||
    bail "could not create the TPM NV passphrase on the host"
mkdir -p "$T/content"
echo "unlocked by initramfs-tools" >"$T/content/MARKER"
vm_disk "$T/data.img" 48:persistent:luks:COS_PERSISTENT:"$T/nv.pass":"$T/content" || bail "could not make the data disk"
rm -f "$T/nv.pass"
vm_boot offline --initrd "$T/itools.img" --tpm "$tpm" --disk "$T/root.img" --disk "$T/data.img" --append "$boot_args"
check "offline: the boot reached the real root's init" '[ -n "$(vm_mark offline realroot.at)" ]'
check "offline: the local-top script's kcrypt unlock-all succeeded" '[ "$(vm_mark offline hook.rc)" = 0 ]'
check "offline: it unlocked COS_PERSISTENT" \
    'grep -qx "\[hook\] COS_PERSISTENT (/dev/vdb1): unlocked as /dev/mapper/vdb1" "$T/offline.console.txt"'
check "offline: the mapping survived the switch to the real root" '[ "$(vm_mark offline mapper)" = 1 ]'
check "offline: the file on the encrypted partition is there" \
    'grep -qx "\[cat\] unlocked by initramfs-tools" "$T/offline.console.txt"'
[ "$_tap_failed" -eq 0 ] || tail -40 "$T/offline.console.txt" | diag

# --- online: a static key from our KMS, the network brought up by initramfs-tools ---
tpm2=$(vm_tpm_new node2)
hash=$(vm_tpm_hash "$tpm2") || bail "tpm-hash failed"
kms_start
printf %s "static-key-for-initramfs-tools-0123456789" >"$T/static.pass"
"$KAIROS_KMS" challenger register --db "$DB" --tpm-hash "$hash" --label COS_PERSISTENT --passphrase-file "$T/static.pass" \
    >/dev/null 2>>"$T/kms.log" || bail "challenger register failed"
echo "unlocked online by initramfs-tools" >"$T/content/MARKER"
vm_disk "$T/data2.img" 48:persistent:luks:COS_PERSISTENT:"$T/static.pass":"$T/content" || bail "could not make the data disk"
rm -f "$T/static.pass"
vm_boot online --initrd "$T/itools.img" --tpm "$tpm2" --disk "$T/root.img" --disk "$T/data2.img" --kms-port "$KMS_PORT" \
    --append "$boot_args rd.neednet=1 ip=dhcp kcrypt.challenger.challenger_server=http://10.0.2.100:$KMS_PORT kcrypt.challenger.protocol=g1"
check "online: the boot reached the real root's init" '[ -n "$(vm_mark online realroot.at)" ]'
check "online: kcrypt unlock-all succeeded with the key from the KMS" '[ "$(vm_mark online hook.rc)" = 0 ]'
check "online: the file on the encrypted partition is there" \
    'grep -qx "\[cat\] unlocked online by initramfs-tools" "$T/online.console.txt"'
check "online: the KMS released the key to this node (audit log)" \
    'grep "\"$hash\"" "$T/audit.jsonl" | grep "\"outcome\":\"ok\"" >/dev/null'
[ "$_tap_failed" -eq 0 ] || { tail -40 "$T/online.console.txt" | diag; tail -5 "$T/audit.jsonl" | diag; }
vm_done
