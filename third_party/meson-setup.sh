#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# meson-setup.sh BUILDDIR musl|glibc [MESON OPTIONS...]: configures BUILDDIR against the sysroot of
# that flavour (built or restored by sysroot.sh), reconfiguring from scratch when the sysroot
# changed. musl is the static release build; glibc the dev/ASan/fuzz build.
set -euo pipefail
builddir=$1 flavor=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
sysroot=$("$here/sysroot.sh" "$flavor")
stamp="$sysroot $*"
if [ -f "$builddir/build.ninja" ] && [ "$(cat "$builddir/.kkms-setup" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi
rm -rf "$builddir"
case $flavor in
musl) machine=(--cross-file "$sysroot/meson.ini") ;;
glibc) machine=(--native-file "$sysroot/meson.ini") ;;
*) echo "meson-setup: unknown flavour $flavor (musl or glibc)" >&2; exit 2 ;;
esac
meson setup "$builddir" "$here/.." "${machine[@]}" "$@" >&2
echo "$stamp" >"$builddir/.kkms-setup"
