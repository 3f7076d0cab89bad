#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
#
# install.sh BINARY MANDIR: installs kairos-kms into $DESTDIR$PREFIX (PREFIX default /usr) —
# the binary and its applet links, the systemd units and sysusers entry, /etc/default/kairos-kms
# (kept when present), the initramfs integrations where each generator looks for them, and the
# man pages made by gen-man.sh. `make install [DESTDIR=...] [PREFIX=/usr]` calls it.
set -euo pipefail
bin=$1 mandir=$2
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=${PREFIX:-/usr}
root=${DESTDIR:-}
[ -x "$bin" ] || { echo "install.sh: $bin: build it first (make)" >&2; exit 2; }
case $prefix in /*) ;; *) echo "install.sh: PREFIX must be absolute, got '$prefix'" >&2; exit 2 ;; esac

d() { install -d -m 0755 "$root$1"; }
f() { install -m "$1" "$2" "$root$3"; } # MODE SOURCE DEST

d "$prefix/bin"
f 0755 "$bin" "$prefix/bin/kairos-kms"
"$bin" install-links --target "$prefix/bin/kairos-kms" "$root$prefix/bin" >/dev/null

d "$prefix/lib/systemd/system"
for u in "$src"/dist/systemd/*.service; do
    sed "s#/usr/bin/kairos-kms#$prefix/bin/kairos-kms#g" "$u" >"$root$prefix/lib/systemd/system/$(basename "$u")"
    chmod 0644 "$root$prefix/lib/systemd/system/$(basename "$u")"
done
d "$prefix/lib/sysusers.d"
f 0644 "$src/dist/sysusers.d/kairos-kms.conf" "$prefix/lib/sysusers.d/kairos-kms.conf"
d /etc/default
[ -e "$root/etc/default/kairos-kms" ] || f 0644 "$src/dist/default/kairos-kms" /etc/default/kairos-kms

# Initramfs generators: dracut modules, initramfs-tools hooks and scripts, mkinitcpio hooks.
d "$prefix/lib/dracut/modules.d/90kairos-kms"
for x in "$src"/initramfs/dracut/90kairos-kms/*; do
    f 0755 "$x" "$prefix/lib/dracut/modules.d/90kairos-kms/$(basename "$x")"
done
d "$prefix/share/initramfs-tools/hooks"
d "$prefix/share/initramfs-tools/scripts/local-top"
f 0755 "$src/initramfs/initramfs-tools/hooks/kairos-kms" "$prefix/share/initramfs-tools/hooks/kairos-kms"
f 0755 "$src/initramfs/initramfs-tools/scripts/local-top/kairos-kms" \
    "$prefix/share/initramfs-tools/scripts/local-top/kairos-kms"
d "$prefix/lib/initcpio/install"
d "$prefix/lib/initcpio/hooks"
f 0644 "$src/initramfs/mkinitcpio/install/kairos-kms" "$prefix/lib/initcpio/install/kairos-kms"
f 0644 "$src/initramfs/mkinitcpio/hooks/kairos-kms" "$prefix/lib/initcpio/hooks/kairos-kms"

d "$prefix/share/man/man8"
for m in "$mandir"/*.8; do f 0644 "$m" "$prefix/share/man/man8/$(basename "$m")"; done
echo "installed kairos-kms into ${root:-/}${root:+ }(prefix $prefix)"
