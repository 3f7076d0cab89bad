#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# run-fuzzer.sh HARNESS SEED_DIR: runs a libFuzzer harness from the seeds for a bounded time
# (KKMS_FUZZ_SECONDS, default 20) in a scratch corpus, so the repository's seeds stay as they are.
set -euo pipefail
harness=$(readlink -f "$1") seeds=$(readlink -f "$2")
mkdir -p "${KKMS_TEST_TMP:-/tmp}"
work=$(mktemp -d "${KKMS_TEST_TMP:-/tmp}/fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
cp -r "$seeds/." "$work/corpus/" 2>/dev/null || true
cd "$work"
"$harness" -max_total_time="${KKMS_FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 \
    -print_final_stats=1 "$work/corpus" 2>&1 | tail -n 40
