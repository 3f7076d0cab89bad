#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# The TPM hash (docs/upstream.md §5.2) equals an independent computation with tpm2-tools + openssl,
# for a TPM with an EK certificate and for one without.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
require tpm2_nvread tpm2_createek tpm2_readpublic tpm2_flushcontext openssl sha256sum

spki_sha256() { openssl pkey -pubin -inform PEM -outform DER | sha256sum | cut -d' ' -f1; }

# --- a TPM with an RSA EK certificate at 0x01C00002 ---
swtpm_start "$(golden_state node-a ekcert)"
tpm2 nvread 0x1c00002 -C o -o "$T/ekcert.der" || bail "tpm2_nvread of the EK certificate failed"
want_cert=$(openssl x509 -inform DER -in "$T/ekcert.der" -pubkey -noout | spki_sha256)
tpm2 createek -c "$T/ek.ctx" -G rsa -u "$T/ek.pub" >/dev/null || bail "tpm2_createek failed"
tpm2 readpublic -c "$T/ek.ctx" -o "$T/ek.pem" -f pem >/dev/null 2>&1 ||
    tpm2 readpublic -c 0x81010001 -o "$T/ek.pem" -f pem >/dev/null || bail "tpm2_readpublic failed"
want_tmpl=$(spki_sha256 <"$T/ek.pem")
check "the EK certificate's key is the template EK (oracle sanity)" '[ "$want_cert" = "$want_tmpl" ]'

run_kkms "$T/out" "$T/err" rc tpm-hash --tpm-device "$TPM_SOCK"
check "tpm-hash exits 0 on a TPM with an EK certificate" '[ "$rc" = 0 ]'
check "tpm-hash prints 64 lowercase hex and no newline" 'grep -qxE '\''[0-9a-f]{64}'\'' "$T/out"'
check "no trailing newline" '[ "$(wc -c <"$T/out")" = 64 ]'
check "tpm-hash equals sha256(SPKI of the EK certificate's key)" '[ "$(cat "$T/out")" = "$want_cert" ]'
check "nothing on stderr" '[ ! -s "$T/err" ]'
cp "$T/out" "$T/hash-a"

run_kkms "$T/out" "$T/err" rc tpm-hash --tpm-device "swtpm:path=$TPM_SOCK"
check "the TCTI form swtpm:path= works and gives the same hash" '[ "$rc" = 0 ] && cmp -s "$T/out" "$T/hash-a"'

ln -s "$KAIROS_KMS" "$T/kcrypt-discovery-challenger"
timeout 60 "$T/kcrypt-discovery-challenger" --tpm-device "$TPM_SOCK" >"$T/out" 2>"$T/err"
check "kcrypt-discovery-challenger with no argument prints the same hash" 'cmp -s "$T/out" "$T/hash-a"'
ln -s "$KAIROS_KMS" "$T/tpm-hash"
timeout 60 "$T/tpm-hash" --tpm-device "$TPM_SOCK" >"$T/out" 2>"$T/err"
check "a symlink named tpm-hash runs the applet" 'cmp -s "$T/out" "$T/hash-a"'

tpm2 getcap handles-transient >"$T/handles" || true
check "no transient handle left behind" '[ ! -s "$T/handles" ]'

# --- a TPM without an EK certificate: the EK comes from CreatePrimary with the default template ---
swtpm_start "$(golden_state plain plain)"
check "the plain TPM has no EK certificate" '! tpm2 nvread 0x1c00002 -C o -o "$T/none.der" 2>/dev/null'
tpm2 createek -c "$T/ek2.ctx" -G rsa -u "$T/ek2.pub" >/dev/null || bail "tpm2_createek failed"
tpm2 readpublic -c "$T/ek2.ctx" -o "$T/ek2.pem" -f pem >/dev/null || bail "tpm2_readpublic failed"
want_plain=$(spki_sha256 <"$T/ek2.pem")
run_kkms "$T/out" "$T/err" rc tpm-hash --tpm-device "$TPM_SOCK"
check "tpm-hash exits 0 on a TPM without an EK certificate" '[ "$rc" = 0 ]'
check "tpm-hash equals sha256(SPKI of tpm2_createek's RSA EK)" '[ "$(cat "$T/out")" = "$want_plain" ]'
check "two TPMs have two different hashes" '[ "$(cat "$T/out")" != "$(cat "$T/hash-a")" ]'
tpm2 getcap handles-transient >"$T/handles" || true
check "no transient handle left behind after CreatePrimary" '[ ! -s "$T/handles" ]'

# --- a TPM that was never started (no startup-clear): we send TPM2_Startup ourselves ---
swtpm_start "$(golden_state plain plain)" not-need-init
run_kkms "$T/out" "$T/err" rc tpm-hash --tpm-device "$TPM_SOCK"
check "tpm-hash starts an unstarted TPM and prints the same hash" '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = "$want_plain" ]'

done_testing
