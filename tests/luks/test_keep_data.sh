#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# test_keep_data.sh LUKS_PROBE: luks_encrypt_in_place (--keep-data) on an ext4 image, checked
# without device-mapper: Debian's cryptsetup reads the header and dumps the volume key, an
# independent AES-XTS decryption (tests/luks/luks_decrypt.py, Python `cryptography`) recovers the
# filesystem, and e2fsck/debugfs prove every file survived. On a block device (loop) when losetup
# works here.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/disk.sh"
PROBE=${1:?usage: test_keep_data.sh LUKS_PROBE}
DECRYPT=$(dirname "$0")/luks_decrypt.py
require cryptsetup mkfs.ext4 e2fsck debugfs python3 truncate timeout sha256sum
python3 -c 'import cryptography' 2>/dev/null ||
    bail "python3 cannot import cryptography: apt-get install python3-cryptography"

lp() { timeout -k 5 120 "$PROBE" "$@"; }
cs() { timeout -k 5 60 cryptsetup "$@"; }
field() { sed -n "s/^[[:space:]]*$1:[[:space:]]*//p" "$2" | head -1; }

printf %s 'keep-data-passphrase-0123456789abcdef' >"$T/pass"
mkdir -p "$T/content/dir"
echo "hello from before the encryption" >"$T/content/MARKER"
head -c 3000000 /dev/urandom >"$T/content/dir/random.bin"
want=$(sha256sum <"$T/content/dir/random.bin")

# new_image PATH [MKFS_ARGS]: a 64 MiB file holding a 24 MiB ext4 (room for the 32 MiB the
# header needs).
new_image() {
    local img=$1
    shift
    rm -f "$img"
    truncate -s 64M "$img"
    timeout 60 mkfs.ext4 -q -F -L COS_PERSISTENT "$@" -d "$T/content" "$img" 24M
}

# verify_plaintext IMAGE WHAT: decrypt the data segment with the volume key Debian's cryptsetup
# gives and check the filesystem and its files.
verify_plaintext() {
    luks_verify_plaintext "$1" "$T/pass" $((24 << 20)) "$2"
    check "$2: MARKER reads back" \
        '[ "$(timeout 30 debugfs -R "cat /MARKER" "$T/plain.img" 2>/dev/null)" = "hello from before the encryption" ]'
    timeout 30 debugfs -R "dump /dir/random.bin $T/random.out" "$T/plain.img" >/dev/null 2>&1
    check "$2: a 3 MB random file is byte for byte the same" '[ "$(sha256sum <"$T/random.out")" = "$want" ]'
    rm -f "$T/plain.img" "$T/random.out"
}

# ---- encrypt in place, then check ----
img=$T/keep.img
new_image "$img"
lp encrypt "$img" COS_PERSISTENT minimal <"$T/pass" >"$T/out" 2>"$T/err"
check "encrypt in place: exit 0, nothing on stderr" '[ $? = 0 ] && [ ! -s "$T/err" ]'
check "progress: called, ends at 100 %" 'grep -q "^progress " "$T/out" && tail -n 2 "$T/out" | grep "percent=100.0" >/dev/null'
check "progress: done never exceeds total, total is the device less 16 MiB" \
    'awk "/^progress/ { split(\$2, d, \"=\"); split(\$3, t, \"=\"); if (d[2] > t[2] || t[2] != 50331648) bad = 1 } END { exit bad }" "$T/out"'
cs luksDump "$img" >"$T/dump"
check "luksDump: label COS_PERSISTENT, UUIDv5" \
    '[ "$(field Label "$T/dump")" = COS_PERSISTENT ] && [ "$(field UUID "$T/dump")" = 85c39d0f-4867-5227-8334-f5eec606d9eb ]'
check "luksDump: aes-xts-plain64, 512-bit key, PBKDF2 1000" \
    '[ "$(field cipher "$T/dump")" = aes-xts-plain64 ] && [ "$(field Key "$T/dump")" = "512 bits" ] && [ "$(field Iterations "$T/dump")" = 1000 ]'
check "luksDump: data at 16 MiB, no reencryption left in progress" \
    '[ "$(field offset "$T/dump")" = "16777216 [bytes]" ] && ! grep -q "reencrypt" "$T/dump"'
cs open --test-passphrase --key-file "$T/pass" "$img"
check "Debian's cryptsetup accepts the passphrase" '[ $? = 0 ]'
verify_plaintext "$img" "in place"

# ---- interrupted by the progress callback, then resumed ----
img=$T/resume.img
new_image "$img"
lp encrypt "$img" COS_PERSISTENT minimal 30 <"$T/pass" >"$T/out" 2>"$T/err"
rc=$?
check "stopped at 30 %: exit 1, one line saying it can resume" \
    '[ $rc = 1 ] && one_line "$T/err" && grep -q "$img: encryption stopped; run it again to resume" "$T/err"'
cs luksDump "$img" >"$T/dump"
check "stopped: Debian's cryptsetup sees an encryption in progress" 'grep -q "online-reencrypt" "$T/dump"'
lp encrypt "$img" COS_PERSISTENT minimal <"$T/pass" >"$T/out" 2>"$T/err"
check "run again: resumes and finishes" '[ $? = 0 ] && grep -q "resuming" "$T/err" && tail -n 2 "$T/out" | grep "percent=100.0" >/dev/null'
verify_plaintext "$img" "resumed"

# ---- the precondition ----
refused_in_one_line "an encrypted device: refused, one line" "already a LUKS2 device" \
    lp encrypt "$T/keep.img" COS_OEM minimal
refused_in_one_line "an encrypted device, same label: nothing to resume, refused" "already a LUKS2 device" \
    lp encrypt "$T/keep.img" COS_PERSISTENT minimal
rm -f "$T/full.img"
truncate -s 64M "$T/full.img"
timeout 60 mkfs.ext4 -q -F -L COS_PERSISTENT "$T/full.img"
cp "$T/full.img" "$T/full.orig"
refused_in_one_line "a filesystem filling the device: refused in one line that says to shrink it" \
    "the ext4 filesystem fills 64.0 of 64.0 MiB; shrink it to at most 32.0 MiB" \
    lp encrypt "$T/full.img" COS_PERSISTENT minimal
check "a refused device is not touched" 'cmp -s "$T/full.img" "$T/full.orig"'
truncate -s 64M "$T/empty.img"
refused_in_one_line "no filesystem: refused in one line" "no filesystem found to keep" \
    lp encrypt "$T/empty.img" COS_PERSISTENT minimal
refused_in_one_line "a missing device: one line" "no such device" \
    lp encrypt "$T/missing.img" COS_PERSISTENT minimal

# ---- on a block device, with 4 KiB filesystem blocks (so 4 KiB encryption sectors) ----
attached=
on_exit '[ -z "$attached" ] || losetup -d "$attached"'
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
    img=$T/block.img
    new_image "$img" -b 4096
    loop=$(timeout 10 losetup -f --show "$img" 2>"$T/err")
    if [ -n "$loop" ]; then
        attached=$loop
        lp encrypt "$loop" COS_PERSISTENT minimal <"$T/pass" >"$T/out" 2>"$T/err"
        check "encrypt in place on $loop: exit 0" '[ $? = 0 ]'
        cs luksDump "$loop" >"$T/dump"
        check "$loop: label COS_PERSISTENT, 4096-byte sectors for a 4 KiB-block ext4" \
            '[ "$(field Label "$T/dump")" = COS_PERSISTENT ] && [ "$(field sector "$T/dump")" = "4096 [bytes]" ]'
        timeout 10 losetup -d "$loop" && attached=
        verify_plaintext "$img" "loop device"
    else
        not_ok "losetup -f --show works here: $(cat "$T/err")"
    fi
else
    echo "# not root or no losetup: block device case skipped (the file cases above ran)"
fi

done_testing
