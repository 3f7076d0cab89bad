#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# run-suites.sh BUILDDIR[:SUITE,SUITE...]...: runs meson's test suites in each build directory,
# prints their logs on failure, and ends with one line "N passed, N failed".
set -uo pipefail
passed=0 failed=0
for spec in "$@"; do
    dir=${spec%%:*} suites=()
    if [ "$spec" != "$dir" ]; then
        IFS=, read -ra s <<<"${spec#*:}"
        for x in "${s[@]}"; do suites+=(--suite "$x"); done
    fi
    echo "=== meson test in $dir ${suites[*]}"
    meson test -C "$dir" --print-errorlogs --num-processes 2 "${suites[@]}" | tee "$dir/run-suites.log"
    ok=$(awk '/^Ok:/{print $2}' "$dir/run-suites.log")
    bad=$(awk '/^(Fail|Timeout|Unexpected Pass):/{s+=$NF} END{print s+0}' "$dir/run-suites.log")
    if [ -z "$ok" ]; then
        echo "run-suites: meson test in $dir printed no summary" >&2
        bad=$((bad + 1)) ok=0
    fi
    passed=$((passed + ok)) failed=$((failed + bad))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
