#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# The release binary is fully static, runs from an empty chroot, and stays small.
. "$(dirname "$0")/../lib/common.sh"
require file chroot strip

MAX_BYTES=$((3 * 1024 * 1024))

check "file(1) says statically linked" 'file -L "$KAIROS_KMS" | grep "statically linked" >/dev/null'
check "no program interpreter (no PT_INTERP)" '! readelf -l "$KAIROS_KMS" | grep INTERP >/dev/null'

mkdir "$T/root"
cp "$KAIROS_KMS" "$T/root/kairos-kms"
timeout 10 chroot "$T/root" /kairos-kms --list >"$T/out" 2>"$T/err"
rc=$?
check "runs from an empty chroot (--list)" '[ "$rc" = 0 ] && grep -q tpm-hash "$T/out"'

strip -o "$T/stripped" "$KAIROS_KMS"
size=$(stat -c %s "$T/stripped")
echo "# stripped size: $size bytes"
check "stripped binary is at most 3 MB ($size bytes)" '[ "$size" -le "$MAX_BYTES" ]'

done_testing
