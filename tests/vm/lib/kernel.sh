#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# kernel.sh CACHE_DIR: prints the root of Debian's current amd64 kernel (boot/vmlinuz-KV,
# lib/modules/KV with modules.dep), unpacked once into CACHE_DIR/kernel. The package is the one
# linux-image-amd64 depends on, resolved now (docs/testing.md §6.1: the ABI name rotates on the
# mirror); the .deb ships no modules.dep, so depmod -b makes it. Without apt lists or a mirror, the
# newest kernel already in the cache is used. Runs outside the tests' network namespace.
set -euo pipefail
cache=$1/kernel
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}') || true
if [ -n "$pkg" ] && ! ls "$cache/$pkg"_*/ready >/dev/null 2>&1; then
    d=$(mktemp -d "$cache/.dl.XXXXXX")
    trap 'rm -rf "$d"' EXIT
    if (cd "$d" && timeout 300 apt-get download -o APT::Sandbox::User=root "$pkg" >"$d/log" 2>&1); then
        deb=$(ls "$d"/*.deb)
        kd=$cache/$(basename "$deb" .deb)
        rm -rf "$kd"
        mkdir -p "$kd"
        dpkg -x "$deb" "$kd/root"
        depmod -b "$kd/root" "$(ls "$kd/root/lib/modules")"
        touch "$kd/ready"
    else
        echo "kernel.sh: apt-get download $pkg failed: $(tail -1 "$d/log")" >&2
    fi
fi
ready=''
[ -n "$pkg" ] && ready=$(ls -d "$cache/$pkg"_*/ready 2>/dev/null | sort -V | tail -1)
[ -n "$ready" ] || ready=$(ls -d "$cache"/*/ready 2>/dev/null | sort -V | tail -1)
if [ -z "$ready" ]; then
    echo "kernel.sh: no Debian kernel: 'apt-cache depends linux-image-amd64' found nothing and none is cached (run apt-get update)" >&2
    exit 1
fi
# Old kernels go once a newer one is in: keep the cache to one.
for k in "$cache"/*/ready; do [ "$k" = "$ready" ] || rm -rf "$(dirname "$k")"; done
echo "$(dirname "$ready")/root"
