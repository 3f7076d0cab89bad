#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# test_format.sh LUKS_PROBE: luks_format, luks_check_passphrase, luks_open on image files, each
# result checked by Debian's cryptsetup (an independent reader and writer of LUKS2).
. "$(dirname "$0")/../lib/common.sh"
PROBE=${1:?usage: test_format.sh LUKS_PROBE}
require cryptsetup truncate timeout

lp() { timeout -k 5 60 "$PROBE" "$@"; }
cs() { timeout -k 5 60 cryptsetup "$@"; }
field() { sed -n "s/^[[:space:]]*$1:[[:space:]]*//p" "$2" | head -1; }

# ---- generated passphrase: PBKDF2, 1000 iterations ----
img=$T/minimal.img
truncate -s 64M "$img"
printf %s 'generated-0123456789abcdef0123456789abcdef' >"$T/pass"
lp format "$img" COS_PERSISTENT minimal <"$T/pass" 2>"$T/err"
check "format minimal: exit 0, nothing on stderr" '[ $? = 0 ] && [ ! -s "$T/err" ]'
cs luksDump "$img" >"$T/dump"
check "luksDump: LUKS2" '[ "$(field Version "$T/dump")" = 2 ]'
check "luksDump: label COS_PERSISTENT" '[ "$(field Label "$T/dump")" = COS_PERSISTENT ]'
check "luksDump: UUID is UUIDv5(URL, COS_PERSISTENT) (docs/upstream.md §3.2)" \
    '[ "$(field UUID "$T/dump")" = 85c39d0f-4867-5227-8334-f5eec606d9eb ]'
check "luksDump: data segment aes-xts-plain64" '[ "$(field cipher "$T/dump")" = aes-xts-plain64 ]'
check "luksDump: 512-bit volume key" '[ "$(field Key "$T/dump")" = "512 bits" ]'
check "luksDump: keyslot 0 is PBKDF2-SHA256" \
    '[ "$(field PBKDF "$T/dump")" = pbkdf2 ] && [ "$(field Hash "$T/dump")" = sha256 ] && grep -q "^  0: luks2" "$T/dump"'
check "luksDump: 1000 iterations" '[ "$(field Iterations "$T/dump")" = 1000 ]'
check "luksDump: allow-discards as upstream's refresh sets it" 'grep -q "^Flags:.*allow-discards" "$T/dump"'
cs open --test-passphrase --key-file "$T/pass" "$img" 2>"$T/err"
check "Debian's cryptsetup accepts the passphrase" '[ $? = 0 ]'
printf %s 'not-it' | cs open --test-passphrase --key-file - "$img" 2>/dev/null
check "Debian's cryptsetup refuses another passphrase" '[ $? != 0 ]'
lp check "$img" <"$T/pass" >"$T/out" 2>"$T/err"
check "luks_check_passphrase: exit 0, slot 0" '[ $? = 0 ] && grep -qx slot=0 "$T/out"'
{ cat "$T/pass"; echo; } | lp check "$img" >/dev/null 2>&1
check "the passphrase is used verbatim: a trailing newline is another passphrase" '[ $? = 1 ]'

# ---- operator passphrase: argon2id, bounded ----
img=$T/operator.img
truncate -s 64M "$img"
printf %s 'an operator typed this' >"$T/opass"
start=$(date +%s%N)
lp format "$img" COS_OEM operator <"$T/opass" 2>"$T/err"
check "format operator: exit 0" '[ $? = 0 ]'
echo "# argon2id format took $((($(date +%s%N) - start) / 1000000)) ms"
cs luksDump "$img" >"$T/dump"
check "luksDump: UUID is UUIDv5(URL, COS_OEM)" '[ "$(field UUID "$T/dump")" = 8bfa06f9-ca4f-56dc-90c9-49cf20f4f45e ]'
check "luksDump: keyslot argon2id" '[ "$(field PBKDF "$T/dump")" = argon2id ]'
check "luksDump: argon2 memory 64 MiB, time cost 4, 1 thread" \
    '[ "$(field Memory "$T/dump")" = 65536 ] && [ "$(field "Time cost" "$T/dump")" = 4 ] && [ "$(field Threads "$T/dump")" = 1 ]'
cs open --test-passphrase --key-file "$T/opass" "$img"
check "Debian's cryptsetup accepts the operator passphrase" '[ $? = 0 ]'
lp check "$img" <"$T/opass" >"$T/out" 2>"$T/err"
check "luks_check_passphrase on argon2id: slot 0" '[ $? = 0 ] && grep -qx slot=0 "$T/out"'

# ---- a volume made by Debian's cryptsetup, passphrase only in keyslot 3 ----
img=$T/debian.img
truncate -s 64M "$img"
printf %s first >"$T/p0"
printf %s 'in slot three' >"$T/p3"
cs luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
    --key-file "$T/p0" "$img" &&
    cs luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-slot 3 \
        --key-file "$T/p0" "$img" "$T/p3" &&
    cs luksKillSlot --batch-mode "$img" 0 </dev/null 2>/dev/null
check "Debian's cryptsetup: slot 0 killed, passphrase in slot 3" '[ $? = 0 ]'
lp check "$img" <"$T/p3" >"$T/out" 2>"$T/err"
check "luks_check_passphrase tries every keyslot: slot 3 (upstream tries only 0)" \
    '[ $? = 0 ] && grep -qx slot=3 "$T/out"'
lp check "$img" <"$T/p0" >"$T/out" 2>"$T/err"
rc=$?
check "the killed slot's passphrase: exit 1, one line naming the image" \
    '[ $rc = 1 ] && one_line "$T/err" && grep -q "$img: no keyslot accepts this passphrase" "$T/err"'

# ---- activation needs device-mapper ----
lp open "$T/minimal.img" kkms-test-$$ <"$T/pass" >"$T/out" 2>"$T/err"
rc=$?
if [ -e /sys/class/misc/device-mapper ]; then
    check "device-mapper present: luks_open works" '[ $rc = 0 ] && lp active kkms-test-$$ | grep -qx active=1'
    lp close kkms-test-$$ 2>"$T/err"
    check "luks_close" '[ $? = 0 ]'
else
    check "no device-mapper: luks_open exits 1 with one line" '[ $rc = 1 ] && one_line "$T/err"'
    check "no device-mapper: the line names the image and says why" \
        'grep -q "$T/minimal.img: cannot unlock as /dev/mapper/kkms-test-$$: device-mapper is unavailable" "$T/err"'
    lp close kkms-test-$$ 2>"$T/err"
    check "no device-mapper: luks_close fails with one line" '[ $? = 1 ] && one_line "$T/err"'
fi
lp active kkms-test-never-$$ >"$T/out" 2>"$T/err"
check "luks_is_active of an unknown name: false, silent" 'grep -qx active=0 "$T/out" && [ ! -s "$T/err" ]'

# ---- bad input ----
refused_in_one_line "a missing device: exit 1, one line saying so" "$T/missing.img: no such device or file" \
    lp check "$T/missing.img"
truncate -s 8M "$T/plain.img"
refused_in_one_line "a device that is not LUKS: exit 1, one line saying so" "$T/plain.img: not a LUKS device" \
    lp check "$T/plain.img"
lp format "$T/missing.img" X minimal <"$T/pass" >/dev/null 2>"$T/err"
rc=$?
check "format of a missing device: exit 1, one line" '[ $rc = 1 ] && one_line "$T/err"'
lp format "$T/plain.img" X minimal </dev/null >/dev/null 2>"$T/err"
rc=$?
check "format with an empty passphrase: refused in one line" \
    '[ $rc = 1 ] && one_line "$T/err" && grep -q "empty passphrase" "$T/err"'
mkdir -p "$T/emptyroot/sys/class/block"
lp find "$T/emptyroot" COS_PERSISTENT >/dev/null 2>"$T/err"
rc=$?
check "a label not found: exit 1, one line naming the label and the PARTLABEL tried" \
    '[ $rc = 1 ] && one_line "$T/err" && grep -q "no partition has the label COS_PERSISTENT or the name persistent" "$T/err"'
lp scan "$T/nosys" >/dev/null 2>"$T/err"
rc=$?
check "no sysfs under the root: exit 1, one line" '[ $rc = 1 ] && one_line "$T/err"'

done_testing
