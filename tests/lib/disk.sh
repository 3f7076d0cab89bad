# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Disk helpers for the shell tests (source tests/lib/common.sh first).
#   loopdisk_attach IMG        attach a partitioned image, detached again at exit; sets LOOP
#                              (/dev/loopN) and L (loopN); partition nodes /dev/loopNpM exist
#   luks_verify_plaintext IMG PASSFILE FS_BYTES WHAT
#                              decrypt IMG's data segment without device-mapper (Debian's
#                              cryptsetup dumps the volume key, tests/luks/luks_decrypt.py does
#                              AES-XTS) into $T/plain.img and check it with e2fsck

loopdisk_attach() {
    local img=$1 n parts ma mi
    require losetup partx
    [ "$(id -u)" = 0 ] || bail "this test needs root (losetup)"
    LOOP=$(timeout 10 losetup -f --show -P "$img") || bail "losetup -f --show -P does not work here"
    L=${LOOP#/dev/}
    on_exit "timeout 10 losetup -d $LOOP"
    parts=$(timeout 10 partx -g -o NR "$img" | wc -l)
    # Without udev the partitions may not show at once; partx asks the kernel again.
    for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e "/sys/class/block/${L}p$parts" ] && break; sleep 0.2; done
    [ -e "/sys/class/block/${L}p$parts" ] || timeout 10 partx -a "$LOOP" || true
    for n in $(seq "$parts"); do
        [ -e "/sys/class/block/${L}p$n" ] || bail "the kernel did not create ${L}p$n"
        if [ ! -b "/dev/${L}p$n" ]; then
            echo "# /dev/${L}p$n missing (no udev/devtmpfs event): mknod from sysfs dev"
            IFS=: read -r ma mi <"/sys/class/block/${L}p$n/dev"
            mknod "/dev/${L}p$n" b "$ma" "$mi" && on_exit "rm -f /dev/${L}p$n"
        fi
    done
}

luks_verify_plaintext() {
    local img=$1 passfile=$2 bytes=$3 what=$4 key offset sector
    timeout 60 cryptsetup luksDump --dump-volume-key --batch-mode --key-file "$passfile" "$img" >"$T/vk" 2>&1
    key=$(awk '/MK dump:/{f=1; sub(/.*MK dump:/, "")} f' "$T/vk" | tr -d ' \t\n')
    timeout 60 cryptsetup luksDump "$img" >"$T/dump.txt"
    offset=$(sed -n 's/^[[:space:]]*offset:[[:space:]]*//p' "$T/dump.txt" | head -1 | cut -d' ' -f1)
    sector=$(sed -n 's/^[[:space:]]*sector:[[:space:]]*//p' "$T/dump.txt" | head -1 | cut -d' ' -f1)
    check "$what: Debian's cryptsetup dumps a 512-bit volume key with the passphrase" '[ ${#key} = 128 ]'
    timeout 120 python3 "$KKMS_SOURCE_ROOT/tests/luks/luks_decrypt.py" "$img" "$key" "$offset" "$sector" \
        "$T/plain.img" "$bytes"
    check "$what: e2fsck -fn of the decrypted data is clean" 'timeout 60 e2fsck -fn "$T/plain.img" >"$T/fsck" 2>&1'
}
