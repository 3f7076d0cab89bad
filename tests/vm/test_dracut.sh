#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# One boot with an initramfs built by the real dracut (Debian's dracut-core, unpacked from its
# package) with our module initramfs/dracut/90kairos-kms and the downloaded kernel's modules. Its
# pre-mount hook runs `kcrypt unlock-all` (offline: the TPM NV passphrase); dracut then mounts the
# plain root (vda1) and switches to it; the root's /sbin/init checks that COS_PERSISTENT (vdb1)
# was unlocked by the hook and reads a file from it.
VM_WANT_DRACUT=1
. "$(dirname "$0")/lib/vm.sh"
vm_setup
[ -n "$VM_DRACUT" ] || bail "no dracut: tests/vm/lib/dracut.sh could not fetch dracut-core (apt-get update?)"
require udevadm

# The dracut tree with our module added; dracut runs from there (dracutbasedir), not from /usr.
base=$T/dracut
cp -a "$VM_DRACUT/usr/lib/dracut" "$base"
cp -a "$_vm_src/initramfs/dracut/90kairos-kms" "$base/modules.d/90kairos-kms"
mkdir -p "$T/dracut.conf.d" "$T/dracut.tmp"
t0=$(date +%s.%N)
dracutbasedir=$base KAIROS_KMS_BIN=$KAIROS_KMS timeout 300 bash "$VM_DRACUT/usr/bin/dracut" --force --no-hostonly \
    --conf /dev/null --confdir "$T/dracut.conf.d" --tmpdir "$T/dracut.tmp" \
    --kver "$VM_KV" --kmoddir "$VM_KROOT/lib/modules/$VM_KV" \
    -m "bash base udev-rules rootfs-block kairos-kms" --add-drivers "virtio_pci virtio_blk ext4" \
    --compress "gzip -1" --no-early-microcode "$T/dracut.img" >"$T/dracut.log" 2>&1
rc=$?
echo "# dracut built the initramfs in $(vm_elapsed "$t0") s ($(stat -c %s "$T/dracut.img" 2>/dev/null) bytes)"
check "dracut built an initramfs with the kairos-kms module" '[ "$rc" = 0 ] && grep -q "Including module: kairos-kms" "$T/dracut.log"'
[ "$rc" = 0 ] || { tail -20 "$T/dracut.log" | diag; done_testing; exit 1; }
listing=$(zcat "$T/dracut.img" | cpio -t --quiet 2>/dev/null)
check "it holds kairos-kms, kcrypt and the discovery plugin link" \
    'grep -qx "usr/bin/kairos-kms" <<<"$listing" && grep -qx "usr/bin/kcrypt" <<<"$listing" &&
     grep -qx "system/discovery/kcrypt-discovery-challenger" <<<"$listing"'
check "it holds the pre-mount hook" 'grep -q "hooks/pre-mount/10-kairos-kms-unlock.sh" <<<"$listing"'
check "it holds dm-crypt, xts and ecb" 'grep -q "/dm-crypt.ko" <<<"$listing" && grep -q "/xts.ko" <<<"$listing" && grep -q "/ecb.ko" <<<"$listing"'

root=$(vm_realroot "$T/rootfs")

tpm=$(vm_tpm_new node)
vm_tpm_run "$tpm" bash -c 'timeout 60 "$KAIROS_KMS" kcrypt nv init --tpm-device "$0" &&
    timeout 60 "$KAIROS_KMS" kcrypt nv show --tpm-device "$0" >"$1"' "$tpm/host.sock" "$T/nv.pass" 2>>"$T/host.log" ||
    bail "could not create the TPM NV passphrase on the host"
mkdir -p "$T/content"
echo "unlocked by dracut" >"$T/content/MARKER"
vm_disk "$T/root.img" 16:root:ext4:KROOT:"$root" || bail "could not make the root disk"
vm_disk "$T/data.img" 48:persistent:luks:COS_PERSISTENT:"$T/nv.pass":"$T/content" || bail "could not make the data disk"
rm -f "$T/nv.pass"

vm_boot dracut --initrd "$T/dracut.img" --tpm "$tpm" --disk "$T/root.img" --disk "$T/data.img" \
    --append "root=/dev/vda1 rootfstype=ext4 ro rd.shell=0 rd.emergency=poweroff rd.kcrypt.timeout=30"
check "the boot reached the real root's init" '[ -n "$(vm_mark dracut realroot.at)" ]'
check "the dracut hook's kcrypt unlock-all succeeded" '[ "$(vm_mark dracut hook.rc)" = 0 ]'
check "it unlocked COS_PERSISTENT" 'grep -qx "\[hook\] COS_PERSISTENT (/dev/vdb1): unlocked as /dev/mapper/vdb1" "$T/dracut.console.txt"'
check "the mapping survived switch_root" '[ "$(vm_mark dracut mapper)" = 1 ]'
check "the file on the encrypted partition is there" 'grep -qx "\[cat\] unlocked by dracut" "$T/dracut.console.txt"'
echo "# real root reached at $(vm_mark dracut realroot.at) s of guest uptime"
[ "$_tap_failed" -eq 0 ] || tail -40 "$T/dracut.console.txt" | diag
vm_done
