#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Bad TPMs: none at all, a path that is not a TPM, a TPM that stops answering.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
require unshare


# No TPM at the default places: run in a mount namespace whose /dev is empty.
timeout 60 unshare -m sh -c 'mount -t tmpfs none /dev && exec "$0" tpm-hash' "$KAIROS_KMS" >"$T/out" 2>"$T/err"
rc=$?
check "no TPM: exit 1" '[ "$rc" = 1 ]'
check "no TPM: one line on stderr" 'one_line "$T/err"'
check "no TPM: names the devices tried and --tpm-device" ' grep -q '\''/dev/tpmrm0.*/dev/tpm0.*--tpm-device'\'' "$T/err"'
check "no TPM: nothing on stdout" '[ ! -s "$T/out" ]'

run_kkms "$T/out" "$T/err" rc tpm-hash --tpm-device "$T/nonexistent"
check "missing --tpm-device: exit 1, one line naming it" ' [ "$rc" = 1 ] && one_line "$T/err" && grep -q -- "--tpm-device $T/nonexistent" "$T/err"'

touch "$T/plainfile"
run_kkms "$T/out" "$T/err" rc tpm-hash --tpm-device "$T/plainfile"
check "a regular file as --tpm-device: exit 1, says it is not a TPM" ' [ "$rc" = 1 ] && one_line "$T/err" && grep -q '\''not a character device or a swtpm socket'\'' "$T/err"'

run_kkms "$T/out" "$T/err" rc tpm-hash --tpm-device "swtpm:bogus=1"
check "a bad TCTI string: exit 1 with a clear message" '[ "$rc" = 1 ] && grep -q '\''bad TCTI options'\'' "$T/err"'

run_kkms "$T/out" "$T/err" rc tpm-hash --tpm-timeout abc
check "--tpm-timeout abc is bad usage (exit 2)" '[ "$rc" = 2 ] && grep -q -- '\''--tpm-timeout abc'\'' "$T/err"'

# A TPM that stops answering: SIGSTOP the swtpm; the command must fail by itself, not hang.
swtpm_start "$(golden_state plain plain)"
kill -STOP "$TPM_PID"
start=$(date +%s)
timeout -k 5 60 "$KAIROS_KMS" tpm-hash --tpm-device "$TPM_SOCK" --tpm-timeout 2 >"$T/out" 2>"$T/err"
rc=$?
elapsed=$(($(date +%s) - start))
kill -CONT "$TPM_PID"
check "a hung TPM: exit 1 (not killed by the test's timeout)" '[ "$rc" = 1 ]'
check "a hung TPM: one line that says it did not answer" 'one_line "$T/err" && grep -q '\''did not answer within 2 s'\'' "$T/err"'
echo "# hung TPM detected after ${elapsed}s" 

done_testing
