#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Local attack on kcrypt's plugin search: kcrypt runs as root and runs every kcrypt-discovery-*
# it finds. A plugin planted by another user in the working directory, a plugin others can write,
# and a symlink out of --root must not run; a root-owned plugin in --plugin-dir must.
# Every plugin here answers with an error, so no partition is ever encrypted: whether a plugin
# ran is seen from the marker file it creates. Needs root (losetup, chown).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/disk.sh"
require sgdisk mkfs.ext4 blkid
[ "$(id -u)" = 0 ] || bail "this test runs kcrypt as root: run it as root"

LBL=KKP$$
R=$T/root
mkdir -p "$R/oem" "$R/system/discovery" "$R/plugins" "$T/outside" "$R/work"
ln -s /sys "$R/sys"; ln -s /dev "$R/dev"; ln -s /proc "$R/proc"
cat >"$R/oem/90_kcrypt.yaml" <<EOC
#cloud-config
kcrypt:
  challenger:
    challenger_server: "http://127.0.0.1:1"
EOC

img=$T/disk.img
truncate -s 64M "$img"
timeout 10 sgdisk -n1:1M:+40M -c1:persistent "$img" >/dev/null || bail "sgdisk failed"
loopdisk_attach "$img"
timeout 60 mkfs.ext4 -q -F -L "$LBL" "/dev/${L}p1" || bail "mkfs.ext4 failed"

# plugin FILE MARKER: a plugin that leaves MARKER behind and refuses to give a key.
plugin() {
    cat >"$1" <<EOP
#!/bin/sh
cat >/dev/null
touch "$2"
printf '%s' '{"state":"","data":"","error":"test plugin refuses","log":""}'
EOP
    chmod 0755 "$1"
}
untouched() { [ "$(blkid -p -o value -s TYPE "/dev/${L}p1")" = ext4 ]; }
# kk ARGS...: kcrypt as root from the working directory $R/work (inside --root, so that only the
# owner and mode checks can refuse what is there).
kk() { (cd "$R/work" && run_kkms "$T/out" "$T/err" rc kcrypt --root "$R" "$@"; echo "$rc" >"$T/rc"); rc=$(cat "$T/rc"); }

# ---- a plugin planted in the working directory by another user ----
chown 65534:65534 "$R/work"
chmod 0777 "$R/work"
plugin "$R/work/kcrypt-discovery-x" "$T/marker-cwd"
chown 65534:65534 "$R/work/kcrypt-discovery-x"
chmod 0777 "$R/work/kcrypt-discovery-x"
kk encrypt "$LBL"
check "a nobody-owned, world-writable plugin in the working directory does not run" '[ ! -e "$T/marker-cwd" ]'
check "...kcrypt says no plugin was found and leaves the partition untouched" \
    '[ "$rc" = 1 ] && grep -q "no discovery plugin found" "$T/err" && untouched'
diag <"$T/err"

kk encrypt "$LBL" --plugin-dir .
check "named with --plugin-dir . it still does not run (owned by nobody, writable by all)" '[ ! -e "$T/marker-cwd" ]'
check "...and a warning says why it was skipped" \
    'grep -q "warning: skipping plugin ./kcrypt-discovery-x: .*owned by uid 65534, not root" "$T/err"'
diag <"$T/err"
rm -f "$R/work/kcrypt-discovery-x"

# ---- --plugin-dir: a root-owned 0755 plugin runs; a group-writable one is skipped ----
plugin "$R/plugins/kcrypt-discovery-good" "$T/marker-good"
kk encrypt "$LBL" --plugin-dir "$R/plugins"
check "a root-owned 0755 plugin in --plugin-dir runs" '[ -e "$T/marker-good" ]'
check "...its refusal is kcrypt's error; the partition is untouched" \
    '[ "$rc" = 1 ] && grep -q "test plugin refuses" "$T/err" && untouched'
rm -f "$R/plugins/kcrypt-discovery-good"

plugin "$R/plugins/kcrypt-discovery-gw" "$T/marker-gw"
chmod 0775 "$R/plugins/kcrypt-discovery-gw"
kk encrypt "$LBL" --plugin-dir "$R/plugins"
check "a group-writable plugin in --plugin-dir does not run" '[ ! -e "$T/marker-gw" ]'
check "...and a warning says it is writable by group or others" \
    'grep -q "warning: skipping plugin $R/plugins/kcrypt-discovery-gw: .*writable by group or others (mode 0775)" "$T/err"'
rm -f "$R/plugins/kcrypt-discovery-gw"

# A root-owned plugin in a directory others can write (it could be swapped at any time).
mkdir "$R/open"
chmod 0777 "$R/open"
plugin "$R/open/kcrypt-discovery-od" "$T/marker-od"
kk encrypt "$LBL" --plugin-dir "$R/open"
check "a root-owned plugin in a world-writable (not sticky) directory does not run" \
    '[ ! -e "$T/marker-od" ] && grep -q "skipping plugin .*kcrypt-discovery-od: directory .* is writable by group or others" "$T/err"'

# ---- --root confines the search: a symlink out of it is not followed ----
plugin "$T/outside/kcrypt-discovery-esc" "$T/marker-esc"
ln -s "$T/outside/kcrypt-discovery-esc" "$R/system/discovery/kcrypt-discovery-esc"
kk encrypt "$LBL"
check "a plugin symlink in --root's /system/discovery pointing outside --root does not run" '[ ! -e "$T/marker-esc" ]'
check "...and a warning says it resolves outside the root" \
    'grep -q "skipping plugin $R/system/discovery/kcrypt-discovery-esc: it resolves to $T/outside/kcrypt-discovery-esc, outside the root" "$T/err"'
rm -f "$R/system/discovery/kcrypt-discovery-esc"
ln -s "$T/outside" "$R/plugins-link"
kk encrypt "$LBL" --plugin-dir "$R/plugins-link"
check "a --plugin-dir under --root that links outside it yields no plugin" '[ ! -e "$T/marker-esc" ]'

# A symlink that stays inside --root is fine.
plugin "$R/plugins/kcrypt-discovery-in" "$T/marker-in"
ln -s ../../plugins/kcrypt-discovery-in "$R/system/discovery/kcrypt-discovery-in"
kk encrypt "$LBL"
check "a plugin symlink that resolves inside --root runs" '[ -e "$T/marker-in" ] && untouched'

done_testing
