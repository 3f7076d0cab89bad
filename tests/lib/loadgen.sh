#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Sourced by tests that drive kms-loadgen (bench/, README "kms-loadgen"): LG, the binary named by
# KKMS_LOADGEN (tests/meson.build sets it); SEED, the seed of tests/bench/test_loadgen.sh, whose
# nodes' keys are cached; lg ARGS..., kms-loadgen within LG_LIMIT seconds (default 900); json FILE
# KEY, a value of the JSON summary on FILE's last line.
LG=${KKMS_LOADGEN:-}
[ -x "$LG" ] || bail "KKMS_LOADGEN must name the kms-loadgen binary (tests/meson.build sets it)"
SEED=kairos-kms-loadgen-test
lg() { timeout -k 5 "${LG_LIMIT:-900}" "$LG" "$@"; }
json() {
    python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])' "$1" "$2"
}
