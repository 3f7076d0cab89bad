#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# kcrypt encrypt with kcrypt.tpm_pcrs (measured-boot local mode) on a GPT image on a loop device
# with a swtpm: the key is sealed to PCRs in a systemd-tpm2 token instead of the NV blob,
# kcrypt.recovery_key adds a recovery key, kcrypt.tpm_pcrs_defer seals to no PCRs at install;
# unlock-all takes the token path and, with rd.kcrypt.prompt=0, fails in one line when the PCRs
# changed. This host has no device-mapper, so unlock-all's last step is checked in the VM suite.
# Needs root (losetup).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/disk.sh"
require sgdisk mkfs.ext4 blkid cryptsetup python3 tpm2_pcrextend

A=KMA$$ B=KMB$$
R=$T/root
mkdir -p "$R/oem" "$R/proc"
ln -s /sys "$R/sys"; ln -s /dev "$R/dev"
cp /proc/mounts "$R/proc/mounts"
echo "console=ttyS0 rd.kcrypt.prompt=0" >"$R/proc/cmdline"
kk() { run_kkms "$T/out" "$T/err" rc kcrypt --root "$R" "$@" --tpm-device "$TPM_SOCK"; }
ck() { if eval "$2"; then ok "$1"; else not_ok "$1"; diag <"${3:-$T/err}"; fi; }

img=$T/disk.img
truncate -s 200M "$img"
timeout 10 sgdisk -n1:1M:+80M -c1:one -n2:0:+80M -c2:two "$img" >/dev/null || bail "sgdisk failed"
loopdisk_attach "$img"
P1=/dev/${L}p1 P2=/dev/${L}p2
timeout 60 mkfs.ext4 -q -F -L "$A" "$P1" 40M
timeout 60 mkfs.ext4 -q -F -L "$B" "$P2" 40M
swtpm_start "$(golden_state plain plain)"

cat >"$R/oem/90_kcrypt.yaml" <<EOC
#cloud-config
kcrypt:
  tpm_pcrs: [7]
  recovery_key: true
EOC
kk encrypt "$A" --keep-data
ck "encrypt with kcrypt.tpm_pcrs: exit 0, upstream's LABEL:NAME:UUID line alone on stdout" \
    '[ "$rc" = 0 ] && [ "$(wc -l <"$T/out")" = 1 ] && grep -q "^$A:${L}p1:" "$T/out"'
ck "...one systemd-tpm2 token sealed to PCR 7 and a systemd-recovery token" \
    'cryptsetup token export --token-id 0 "$P1" | grep -q "\"tpm2-pcrs\":\[7\]" && cryptsetup luksDump "$P1" | grep -q ": systemd-recovery"'
grep -Eo "([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}" "$T/err" | tr -d '\n' >"$T/rk"
ck "...the recovery key printed (on stderr) opens the volume" \
    '[ -s "$T/rk" ] && cryptsetup open --test-passphrase --key-file "$T/rk" "$P1"'
ck "...and no NV index was made (the offline mode's blob)" \
    '! tpm2 nvreadpublic 2>/dev/null | grep -q 0x1500000'
kk unlock --test "$P1"
ck "unlock --test opens it from the TPM" '[ "$rc" = 0 ]'

cat >"$R/oem/90_kcrypt.yaml" <<EOC
#cloud-config
kcrypt:
  tpm_pcrs: 7+11
  tpm_pcrs_defer: true
EOC
kk encrypt "$B" --keep-data
ck "encrypt with tpm_pcrs_defer: the token is sealed to no PCRs yet" \
    '[ "$rc" = 0 ] && cryptsetup token export --token-id 0 "$P2" | grep -q "\"tpm2-pcrs\":\[\]"'
ck "...and says when it will be sealed" 'grep -q "first unlock" "$T/err"'

kk unlock-all --timeout 5
ck "unlock-all takes the token path: the TPM releases the key, only device-mapper is missing here" \
    '[ "$rc" = 1 ] && grep -q "device-mapper is unavailable" "$T/err" && ! grep -q "NV index" "$T/err"'
tpm2 pcrextend 7:sha256=0000000000000000000000000000000000000000000000000000000000000001
kk unlock-all --timeout 5
ck "after PCR 7 changed, rd.kcrypt.prompt=0: $A stays locked naming PCR 7, no prompt, no retry" \
    '[ "$rc" = 1 ] && grep -q "PCRs 7 (sha256)" "$T/err" && ! grep -q "asking for the recovery key\|retrying" "$T/err"'

done_testing
