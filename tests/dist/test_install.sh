#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
#
# make install's pieces (dist/) without touching this machine: man pages generated from --help
# render with man and groff without warnings; dist/install.sh into a DESTDIR gives a binary that
# runs and links that point at it; every systemd unit passes `systemd-analyze verify` in a root
# where its ExecStart exists, and its `systemd-analyze security` exposure is printed.
source "$(dirname "$0")/../lib/common.sh"
require man groff systemd-analyze
src=$KKMS_SOURCE_ROOT
D=$T/destdir

"$src/dist/man/gen-man.sh" "$KAIROS_KMS" "$T/man" >"$T/gen.log" 2>&1
check "gen-man.sh writes a page per applet and one for kairos-kms" \
    '[ "$(ls "$T/man" | wc -l)" -eq "$(( $("$KAIROS_KMS" --list | grep -vc "^  also as") + 1 ))" ]'
for page in "$T"/man/*.8; do
    name=$(basename "$page" .8)
    groff -man -Tutf8 -ww -z "$page" 2>"$T/groff.$name"
    check "man page $name: groff gives no warning" '[ ! -s "$T/groff.$name" ]'
    MANWIDTH=100 man -l "$page" 2>/dev/null >"$T/man.$name.txt"
    check "man page $name: man -l renders NAME and the --help text" \
        'grep "^NAME" "$T/man.$name.txt" >/dev/null && grep -- "--help" "$T/man.$name.txt" >/dev/null'
done

DESTDIR=$D PREFIX=/usr "$src/dist/install.sh" "$KAIROS_KMS" "$T/man" >"$T/install.log" 2>&1
check "install.sh succeeds" '[ $? -eq 0 ] || { diag <"$T/install.log"; false; }'
check "the installed binary runs" '"$D/usr/bin/kairos-kms" --version >/dev/null'
for name in kcrypt challenger kcrypt-challenger discovery-challenger kcrypt-discovery-challenger \
    mdns-responder tpm-hash; do
    check "link $name points at /usr/bin/kairos-kms" '[ "$(readlink "$D/usr/bin/$name")" = /usr/bin/kairos-kms ]'
done
for x in lib/systemd/system/kairos-kms-challenger.service lib/systemd/system/kairos-kms-mdns.service \
    lib/sysusers.d/kairos-kms.conf lib/dracut/modules.d/90kairos-kms/module-setup.sh \
    share/initramfs-tools/hooks/kairos-kms share/initramfs-tools/scripts/local-top/kairos-kms \
    lib/initcpio/install/kairos-kms lib/initcpio/hooks/kairos-kms share/man/man8/challenger.8; do
    check "installed /usr/$x" '[ -s "$D/usr/$x" ]'
done
check "/etc/default/kairos-kms installed, and kept on a second install" \
    'echo "# mine" >>"$D/etc/default/kairos-kms" &&
     DESTDIR=$D "$src/dist/install.sh" "$KAIROS_KMS" "$T/man" >/dev/null && grep "^# mine" "$D/etc/default/kairos-kms" >/dev/null'
PREFIX=usr DESTDIR=$D "$src/dist/install.sh" "$KAIROS_KMS" "$T/man" 2>/dev/null
check "a relative PREFIX is refused with exit 2" '[ $? -eq 2 ]'

# systemd-analyze verify needs the ExecStart binaries at their paths and the units they order
# against: the DESTDIR is the root, with this machine's own units (ours are not overwritten) and
# kill. The Documentation= pages are looked up in the DESTDIR's man pages.
mkdir -p "$D/bin" && cp /bin/kill "$D/bin/kill"
cp -an /usr/lib/systemd/system/. "$D/usr/lib/systemd/system/"
export MANPATH=$D/usr/share/man
for unit in "$D"/usr/lib/systemd/system/kairos-kms-*.service; do
    u=$(basename "$unit")
    SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --root="$D" "$unit" >"$T/verify.$u" 2>&1
    rc=$?
    check "systemd-analyze verify $u" '[ $rc -eq 0 ] && ! grep -i "unknown\|ignoring\|invalid" "$T/verify.$u" >/dev/null || { diag <"$T/verify.$u"; false; }'
    systemd-analyze security --offline=yes --root="$D" "$u" >"$T/security.$u" 2>&1
    score=$(grep -o "Overall exposure level for .*" "$T/security.$u")
    check "systemd-analyze security rates $u (${score:-no score})" '[ -n "$score" ]'
done
done_testing
