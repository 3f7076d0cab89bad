#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Offline-mode NV passphrase (docs/tpm.md §5 + docs/upstream.md §9.2) against tpm2-tools as the independent
# implementation: a blob written the upstream way is read by kcrypt, and a blob kcrypt writes is
# decrypted by tpm2_rsadecrypt; custom nv_index and c_index work; bad NV contents are refused.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
require tpm2_createprimary tpm2_evictcontrol tpm2_rsaencrypt tpm2_rsadecrypt tpm2_nvdefine tpm2_nvwrite \
    tpm2_nvreadpublic tpm2_nvread tpm2_readpublic


# upstream_store NV C PASS: what go-tpm/tpmk do — the 0x81000008-style key, OAEP-SHA256, and an NV
# index with SHA-1 name and attributes 0x00070002.
upstream_store() {
    local nv=$1 c=$2 pass=$3
    tpm2 createprimary -C o -g sha256 -G rsa2048:null:null -a 'sign|decrypt|userwithauth|sensitivedataorigin' \
        -c "$T/key.ctx" >/dev/null || return 1
    tpm2 evictcontrol -C o -c "$T/key.ctx" "$c" >/dev/null || return 1
    printf %s "$pass" >"$T/plain"
    tpm2 rsaencrypt -c "$c" -s oaep-sha256 -o "$T/blob" "$T/plain" || return 1
    tpm2 nvdefine "$nv" -C o -g sha1 -s "$(stat -c %s "$T/blob")" -a 'ownerwrite|ppread|ownerread|authread' >/dev/null || return 1
    tpm2 nvwrite "$nv" -C o -i "$T/blob"
}

swtpm_start "$(golden_state plain plain)"

# --- upstream-written → kcrypt reads ---
upstream_store 0x1500000 0x81000008 0123456789abcdefghijklmnopqrstuv || bail "tpm2-tools could not store the blob"
run_kkms "$T/out" "$T/err" rc kcrypt nv show --tpm-device "$TPM_SOCK"
check "kcrypt nv show reads a blob written by tpm2-tools the upstream way" \
    '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = 0123456789abcdefghijklmnopqrstuv ]'
check "nv show prints no newline" '[ "$(wc -c <"$T/out")" = 32 ]'
run_kkms "$T/out" "$T/err" rc kcrypt nv init --tpm-device "$TPM_SOCK"
check "nv init keeps an existing passphrase" '[ "$rc" = 0 ] && [ ! -s "$T/out" ]'
run_kkms "$T/out" "$T/err" rc kcrypt nv show --tpm-device "$TPM_SOCK"
check "...and it is unchanged" '[ "$(cat "$T/out")" = 0123456789abcdefghijklmnopqrstuv ]'

# --- kcrypt-written → tpm2-tools reads ---
run_kkms "$T/out" "$T/err" rc kcrypt nv clear --yes --tpm-device "$TPM_SOCK"
check "nv clear --yes removes the index" '[ "$rc" = 0 ] && ! tpm2 nvreadpublic 0x1500000 >/dev/null 2>&1'
run_kkms "$T/out" "$T/err" rc kcrypt nv show --tpm-device "$TPM_SOCK"
check "nv show without a passphrase: exit 1, one line naming the index" \
    '[ "$rc" = 1 ] && one_line "$T/err" && grep -q "0x1500000" "$T/err"'
run_kkms "$T/out" "$T/err" rc kcrypt nv init --tpm-device "$TPM_SOCK"
check "nv init creates a passphrase" '[ "$rc" = 0 ]'
run_kkms "$T/pass" "$T/err" rc kcrypt nv show --tpm-device "$TPM_SOCK"
check "the new passphrase is 32 characters of [0-9a-z]" 'grep -qxE "[0-9a-z]{32}" "$T/pass"'
tpm2 nvreadpublic 0x1500000 >"$T/pub"
check "the index has upstream's SHA-1 name algorithm" 'grep -q "hash algorithm:" "$T/pub" && grep -A2 "hash algorithm:" "$T/pub" | grep sha1 >/dev/null'
check "the index has upstream's attributes (0x70002, written)" 'grep -q "value: 0x20070002" "$T/pub"'
tpm2 nvread 0x1500000 -C o -o "$T/blob2" 2>/dev/null
check "the index holds a 256-byte RSA-2048 ciphertext" '[ "$(stat -c %s "$T/blob2")" = 256 ]'
tpm2 rsadecrypt -c 0x81000008 -s oaep-sha256 -o "$T/plain2" "$T/blob2"
check "tpm2_rsadecrypt (OAEP-SHA256, key 0x81000008) recovers kcrypt's passphrase" 'cmp -s "$T/plain2" "$T/pass"'

# --- custom indices, and a TPM without the key: kcrypt creates it with upstream's template ---
swtpm_start "$(golden_state plain plain)"
run_kkms "$T/out" "$T/err" rc kcrypt nv init --nv-index 0x1500010 --c-index 0x81000010 --tpm-device "$TPM_SOCK"
check "nv init with custom --nv-index/--c-index creates the key and the index" '[ "$rc" = 0 ]'
tpm2 readpublic -c 0x81000010 >"$T/keypub"
check "the key at c_index has upstream's attributes (sign|decrypt|userwithauth|sensitivedataorigin)" \
    'grep -q "raw: 0x60060" "$T/keypub"'
check "the default key 0x81000008 was not created" '! tpm2 readpublic -c 0x81000008 >/dev/null 2>&1'
run_kkms "$T/pass3" "$T/err" rc kcrypt nv show --nv-index 0x1500010 --c-index 0x81000010 --tpm-device "$TPM_SOCK"
tpm2 nvread 0x1500010 -C o -o "$T/blob3" 2>/dev/null
tpm2 rsadecrypt -c 0x81000010 -s oaep-sha256 -o "$T/plain3" "$T/blob3"
check "custom indices: tpm2_rsadecrypt agrees with nv show" '[ "$rc" = 0 ] && cmp -s "$T/plain3" "$T/pass3"'
run_kkms "$T/out" "$T/err" rc kcrypt nv show --nv-index 0x1500010 --c-index 0x81000020 --tpm-device "$TPM_SOCK"
check "the wrong --c-index: exit 1, one line" '[ "$rc" = 1 ] && one_line "$T/err" && grep -q 0x81000020 "$T/err"'

# --- an NV index of the wrong size / garbage: refused, never a bogus passphrase ---
head -c 17 /dev/urandom >"$T/junk"
tpm2 nvdefine 0x1500020 -C o -s 17 -a 'ownerwrite|ownerread' >/dev/null
tpm2 nvwrite 0x1500020 -C o -i "$T/junk"
run_kkms "$T/out" "$T/err" rc kcrypt nv show --nv-index 0x1500020 --c-index 0x81000010 --tpm-device "$TPM_SOCK"
check "an NV index of the wrong size: exit 1, one line, nothing printed" \
    '[ "$rc" = 1 ] && one_line "$T/err" && [ ! -s "$T/out" ]'

run_kkms "$T/out" "$T/err" rc kcrypt nv clear --nv-index 0x1500010 --tpm-device "$TPM_SOCK" </dev/null
check "nv clear without --yes and no terminal: refused (exit 2), index kept" \
    '[ "$rc" = 2 ] && tpm2 nvreadpublic 0x1500010 >/dev/null 2>&1'
run_kkms "$T/out" "$T/err" rc kcrypt nv show --nv-index banana
check "--nv-index banana: bad usage (exit 2)" '[ "$rc" = 2 ] && grep -q banana "$T/err"'

tpm2 getcap handles-transient >"$T/handles" || true
check "no transient handle left behind" '[ ! -s "$T/handles" ]'

done_testing
