#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# dracut module kairos-kms: the static kairos-kms binary with its applet links, and a pre-mount
# hook that runs `kcrypt unlock-all` (see initramfs/README.md). Install this directory as
# /usr/lib/dracut/modules.d/90kairos-kms and build with `dracut --add kairos-kms`; for a KMS
# (online mode) add the network too: `dracut --add "kairos-kms network"` and boot with
# rd.neednet=1 ip=... .
# KAIROS_KMS_BIN names the binary to install (default: kairos-kms in $PATH).

# called by dracut: never included unless asked for (it changes how disks unlock).
check() {
    require_binaries "${KAIROS_KMS_BIN:-kairos-kms}" || return 1
    return 255
}

# called by dracut: nothing — kairos-kms is static and needs no dmsetup, cryptsetup or udev rules.
depends() {
    return 0
}

# called by dracut: kcrypt loads these itself when missing (no modprobe needed), but they must be
# in the image. ecb is needed by xts(aes) (docs/luks.md §6); crc32c by ext4; the TPM drivers are
# modules on some kernels.
installkernel() {
    hostonly='' instmods dm_mod dm_crypt xts ecb aes crc32c_generic ext4
    hostonly='' instmods tpm_tis tpm_crb tpm_tis_core
}

# called by dracut
install() {
    local bin
    bin=$(find_binary "${KAIROS_KMS_BIN:-kairos-kms}") || {
        derror "kairos-kms: binary ${KAIROS_KMS_BIN:-kairos-kms} not found"
        return 1
    }
    inst_simple "$bin" /usr/bin/kairos-kms
    # The names kcrypt and kairos-agent look for (docs/upstream.md §4: plugins in /system/discovery).
    inst_dir /system/discovery
    ln_r /usr/bin/kairos-kms /usr/bin/kcrypt
    ln_r /usr/bin/kairos-kms /usr/bin/tpm-hash
    ln_r /usr/bin/kairos-kms /system/discovery/kcrypt-discovery-challenger
    # kcrypt encrypt (run at install time from the initramfs by some installers) makes ext4.
    inst_multiple -o mkfs.ext4 mke2fs
    inst_hook pre-mount 10 "$moddir/kairos-kms-unlock.sh"
}
