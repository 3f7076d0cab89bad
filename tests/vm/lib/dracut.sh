#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# dracut.sh CACHE_DIR: prints the root of Debian's dracut-core package unpacked once into
# CACHE_DIR/dracut (usr/bin/dracut, usr/lib/dracut), so the test runs the real dracut without
# installing it on the host (the dracut package conflicts with initramfs-tools). Runs outside the
# tests' network namespace; without a mirror the copy already in the cache is used.
set -euo pipefail
cache=$1/dracut
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
ver=$(apt-cache policy dracut-core 2>/dev/null | awk '/Candidate:/{print $2; exit}') || true
if [ -n "$ver" ] && [ "$ver" != "(none)" ] && [ ! -e "$cache/$ver/ready" ]; then
    d=$(mktemp -d "$cache/.dl.XXXXXX")
    trap 'rm -rf "$d"' EXIT
    if (cd "$d" && timeout 300 apt-get download -o APT::Sandbox::User=root "dracut-core=$ver" >"$d/log" 2>&1); then
        rm -rf "${cache:?}/$ver"
        mkdir -p "$cache/$ver"
        dpkg -x "$d"/dracut-core_*.deb "$cache/$ver/root"
        touch "$cache/$ver/ready"
    else
        echo "dracut.sh: apt-get download dracut-core=$ver failed: $(tail -1 "$d/log")" >&2
    fi
fi
ready=''
[ -n "$ver" ] && [ -e "$cache/$ver/ready" ] && ready=$cache/$ver/ready
[ -n "$ready" ] || ready=$(ls -d "$cache"/*/ready 2>/dev/null | sort -V | tail -1)
[ -n "$ready" ] || { echo "dracut.sh: no dracut-core package (run apt-get update)" >&2; exit 1; }
echo "$(dirname "$ready")/root"
