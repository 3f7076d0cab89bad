#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# kcrypt encrypt / unlock-all on real block devices (a GPT image on a loop device) with a swtpm
# (offline mode) and with a discovery plugin (KMS mode). This host has no device-mapper, so what
# needs /dev/mapper (mkfs inside the volume, unlocking) is checked up to the point where dm is
# needed and fully in the VM suite; --keep-data needs no dm and is checked end to end here.
# Needs root (losetup).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/disk.sh"
require sgdisk mkfs.ext4 blkid cryptsetup debugfs python3

field() { sed -n "s/^[[:space:]]*$1:[[:space:]]*//p" "$2" | head -1; }
# Labels unique to this run, so nothing on the host can match (ext4 labels: 16 characters).
A=KKA$$ B=KKB$$ C=KKC$$ D=KKD$$

# The root tree: the real /sys, /dev and /proc, plus our own config and plugin directories.
R=$T/root
mkdir -p "$R/oem" "$R/system/discovery"
ln -s /sys "$R/sys"; ln -s /dev "$R/dev"; ln -s /proc "$R/proc"
kk() { run_kkms "$T/out" "$T/err" rc kcrypt --root "$R" "$@"; }

mkdir -p "$T/content"
echo "kept across encryption" >"$T/content/MARKER"
img=$T/disk.img
truncate -s 400M "$img"
timeout 10 sgdisk -n1:1M:+80M -c1:persistent -n2:0:+80M -c2:oem -n3:0:+80M -c3:third -n4:0:+80M -c4:fourth \
    "$img" >/dev/null || bail "sgdisk failed"
loopdisk_attach "$img"
P1=/dev/${L}p1 P2=/dev/${L}p2 P3=/dev/${L}p3 P4=/dev/${L}p4
timeout 60 mkfs.ext4 -q -F -L "$A" -d "$T/content" "$P1" 40M
timeout 60 mkfs.ext4 -q -F -L "$B" "$P2"
timeout 60 mkfs.ext4 -q -F -L "$C" -d "$T/content" "$P3" 40M
timeout 60 mkfs.ext4 -q -F -L "$D" "$P4"

# ---- usage and lookup errors ----
kk encrypt
check "encrypt without a label: exit 2" '[ "$rc" = 2 ] && one_line "$T/err"'
kk encrypt NOPE$$
check "encrypt of a label that is not there: exit 1, one line naming it" \
    '[ "$rc" = 1 ] && one_line "$T/err" && grep -q "NOPE$$" "$T/err"'

# ---- offline mode, no TPM: no key, the partition is untouched ----
kk encrypt "$A" --keep-data --tpm-device "$T/no-tpm"
check "encrypt with no TPM: exit 1" '[ "$rc" = 1 ]'
check "...says the partition was left untouched" 'grep -q "left untouched" "$T/err"'
check "...and it is still the same ext4" '[ "$(blkid -p -o value -s TYPE "$P1")" = ext4 ] && [ "$(blkid -p -o value -s LABEL "$P1")" = "$A" ]'

# ---- offline mode with a TPM: --keep-data end to end ----
swtpm_start "$(golden_state plain plain)"
kk encrypt "$A" --keep-data --tpm-device "$TPM_SOCK"
check "encrypt --keep-data with a TPM: exit 0" '[ "$rc" = 0 ]'
uuid=$(python3 -c "import uuid,sys; print(uuid.uuid5(uuid.NAMESPACE_URL, sys.argv[1]))" "$A")
check "prints LABEL:NAME:UUIDv5 as upstream" '[ "$(cat "$T/out")" = "$A:${L}p1:$uuid" ]'
check "progress was shown on stderr" 'grep -q "%" "$T/err"'
check "the partition is now LUKS2 with label $A and the UUIDv5" \
    '[ "$(blkid -p -o value -s TYPE "$P1")" = crypto_LUKS ] && [ "$(blkid -p -o value -s LABEL "$P1")" = "$A" ] && [ "$(blkid -p -o value -s UUID "$P1")" = "$uuid" ]'
run_kkms "$T/pass" "$T/err" rc kcrypt nv show --tpm-device "$TPM_SOCK"
check "the TPM now holds the passphrase (nv show)" '[ "$rc" = 0 ] && grep -qxE "[0-9a-z]{32}" "$T/pass"'
check "Debian's cryptsetup accepts that passphrase" 'timeout 60 cryptsetup open --test-passphrase --key-file "$T/pass" "$P1"'
timeout 60 cryptsetup luksDump "$P1" >"$T/dump"
check "generated passphrase: minimal PBKDF (pbkdf2, 1000 iterations)" \
    '[ "$(field PBKDF "$T/dump")" = pbkdf2 ] && [ "$(field Iterations "$T/dump")" = 1000 ]'
luks_verify_plaintext "$P1" "$T/pass" $((40 << 20)) "keep-data $A"
check "keep-data $A: MARKER survived" \
    '[ "$(timeout 30 debugfs -R "cat /MARKER" "$T/plain.img" 2>/dev/null)" = "kept across encryption" ]'
rm -f "$T/plain.img"

kk encrypt "$A" --tpm-device "$TPM_SOCK"
check "encrypt of an already-encrypted partition: refused (exit 1), says --force" \
    '[ "$rc" = 1 ] && one_line "$T/err" && grep -q -- "--force" "$T/err"'
check "...and its header is unchanged" 'timeout 60 cryptsetup open --test-passphrase --key-file "$T/pass" "$P1"'

# Without --keep-data the filesystem is made inside the opened volume: needs device-mapper.
kk encrypt "$B" --tpm-device "$TPM_SOCK"
# /dev/mapper/control may exist without device-mapper in the kernel: ask /proc/devices.
has_dm() { grep -qw device-mapper /proc/devices; }
if has_dm; then
    check "encrypt $B: exit 0 (device-mapper present)" '[ "$rc" = 0 ]'
else
    check "encrypt $B without device-mapper: exit 1 and says device-mapper is unavailable" \
        '[ "$rc" = 1 ] && grep -q "device-mapper" "$T/err"'
    check "...the LUKS header is there and takes the same TPM passphrase" \
        'timeout 60 cryptsetup open --test-passphrase --key-file "$T/pass" "$P2"'
fi

# ---- unlock-all ----
kk unlock-all --tpm-device "$TPM_SOCK" --timeout 5
check "unlock-all: lists $A and $B, one line each" \
    'grep -q "^$A (.*/dev/${L}p1)" "$T/out" && grep -q "^$B (.*/dev/${L}p2)" "$T/out"'
if ! has_dm; then
    check "unlock-all without device-mapper: exit 1 naming both partitions" \
        '[ "$rc" = 1 ] && grep -q "${L}p1 ($A)" "$T/err" && grep -q "${L}p2 ($B)" "$T/err"'
    check "...with the passphrase accepted first (the error is device-mapper, not the key)" \
        'grep -q "device-mapper" "$T/err" && ! grep -qi "wrong passphrase\|no key" "$T/err"'
fi
swtpm_start "$(golden_state node-b ekcert)"
kk unlock-all --tpm-device "$TPM_SOCK" --timeout 5
check "unlock-all on another node's TPM: exit 1, says there is no passphrase in its NV index" \
    '[ "$rc" = 1 ] && grep -q "no passphrase at NV index 0x1500000" "$T/err"'

# ---- KMS mode: the key comes from a discovery plugin ----
cat >"$R/oem/90_kcrypt.yaml" <<EOC
#cloud-config
kcrypt:
  challenger:
    challenger_server: "http://127.0.0.1:1"
EOC
cat >"$R/system/discovery/kcrypt-discovery-test" <<EOP
#!/bin/sh
cat >"$T/plugin-stdin"
printf '%s' '{"state":"","data":"operator-chosen passphrase","error":"","log":""}'
EOP
chmod +x "$R/system/discovery/kcrypt-discovery-test"
printf %s 'operator-chosen passphrase' >"$T/kms-pass"
kk encrypt "$C" --keep-data
check "KMS mode: encrypt --keep-data with the plugin's passphrase: exit 0" '[ "$rc" = 0 ]'
check "the plugin got the discovery.password event with this partition (G1 payload)" \
    'grep -q "\"name\":\"discovery.password\"" "$T/plugin-stdin" && grep -q "\\\\\"name\\\\\":\\\\\"${L}p3\\\\\"" "$T/plugin-stdin" && grep -q "\\\\\"filesystem_label\\\\\":\\\\\"$C\\\\\"" "$T/plugin-stdin"'
check "Debian's cryptsetup accepts the plugin's passphrase" \
    'timeout 60 cryptsetup open --test-passphrase --key-file "$T/kms-pass" "$P3"'
timeout 60 cryptsetup luksDump "$P3" >"$T/dump"
check "a KMS passphrase gets argon2id (memory-capped)" '[ "$(field PBKDF "$T/dump")" = argon2id ]'

cat >"$R/system/discovery/kcrypt-discovery-test" <<'EOP'
#!/bin/sh
cat >/dev/null
printf '%s' '{"state":"","data":"a wrong passphrase","error":"","log":""}'
EOP
kk unlock-all --timeout 30
if has_dm; then
    check "unlock-all with a wrong passphrase: exit 1, says no keyslot accepts it, no retry loop" \
        '[ "$rc" = 1 ] && grep -q "${L}p3: no keyslot accepts this passphrase" "$T/err" && ! grep -q "retrying" "$T/err"'
else
    # libcryptsetup needs device-mapper before it tries a keyslot; the VM suite checks the message.
    check "unlock-all with a wrong passphrase (no device-mapper): exit 1, one error per partition, no retry loop" \
        '[ "$rc" = 1 ] && grep -q "${L}p3: cannot unlock" "$T/err" && ! grep -q "retrying" "$T/err"'
fi

cat >"$R/system/discovery/kcrypt-discovery-test" <<'EOP'
#!/bin/sh
cat >/dev/null
printf '%s' '{"state":"","data":"","error":"no volume found with data from request","log":""}'
EOP
kk encrypt "$D"
check "KMS refuses: encrypt exits 1 naming the plugin's error" \
    '[ "$rc" = 1 ] && grep -q "no volume found" "$T/err" && grep -q "left untouched" "$T/err"'
check "...and $D is still the same ext4" '[ "$(blkid -p -o value -s TYPE "$P4")" = ext4 ] && [ "$(blkid -p -o value -s LABEL "$P4")" = "$D" ]'

done_testing
