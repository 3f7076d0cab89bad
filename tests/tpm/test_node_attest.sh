#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Node attestation (docs/protocol-g1.md §3, §7) on a real swtpm, checked by independent tools: the
# EK PEM of the G1 token (openssl), the SRK and AK parameters (tpm2_createprimary, tpm2_print,
# openssl), credential activation of tpm2_makecredential's blobs, and PCR quotes
# (tpm2_checkquote). The library is driven by tests/tpm/node_attest_tool.c.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
require tpm2_makecredential tpm2_print tpm2_checkquote tpm2_readpublic tpm2_createek tpm2_createprimary \
    tpm2_nvread tpm2_nvdefine tpm2_nvwrite tpm2_nvundefine tpm2_pcrextend tpm2_pcrread tpm2_getcap \
    tpm2_flushcontext openssl xxd sha256sum
: "${KKMS_NODE_ATTEST_TOOL:?KKMS_NODE_ATTEST_TOOL must name the node_attest_tool test driver}"

# tool VERB ARGS... >OUT 2>ERR: the driver on the current swtpm.
tool() { timeout -k 5 60 "$KKMS_NODE_ATTEST_TOOL" "$TPM_SOCK" "$@"; }
hex() { xxd -p "$1" | tr -d '\n'; }
sha256_hex() { sha256sum "$1" | cut -d' ' -f1; }
spki_sha256() { openssl pkey -pubin -inform PEM -outform DER | sha256sum | cut -d' ' -f1; }
# no_transients: no transient object and no session left in the TPM (no resource manager here).
no_transients() {
    tpm2 getcap handles-transient >"$T/handles" && tpm2 getcap handles-loaded-session >>"$T/handles" &&
        tpm2 getcap handles-saved-session >>"$T/handles" && [ ! -s "$T/handles" ]
}
persistent() { tpm2 getcap handles-persistent >"$T/persistent" && grep -qx -- "- $1" "$T/persistent"; }
# yaml_raw FILE KEY: the "raw:" value under "KEY:" in tpm2_print's YAML.
yaml_raw() { grep -A2 "^$2:" "$1" | sed -n 's/^  raw: //p' | head -1; }
# pem_of_public TPMT_PUBLIC: the key as PEM, converted by tpm2_print.
pem_of_public() { tpm2_print -t TPMT_PUBLIC -f pem "$1" 2>/dev/null; }
# sig_to_raw TPMT_SIGNATURE OUT: the RSASSA signature bytes (after sigAlg, hashAlg, size).
sig_to_raw() { tail -c +7 "$1" >"$2"; }

# parse_creation_attest FILE: TPMS_ATTEST (TPM 2.0 Part 2 §10.12.12) of CertifyCreation, decoded
# by hand (tpm2_print 5.4 cannot): magic, type, qualifiedSigner, extraData, clockInfo (17 bytes),
# firmwareVersion (8), then TPMS_CREATION_INFO {objectName, creationHash}.
# Sets A_MAGIC A_TYPE A_NAME A_CHASH (hex).
parse_creation_attest() {
    local h o n
    h=$(hex "$1")
    A_MAGIC=${h:0:8} A_TYPE=${h:8:4} o=12
    n=$((16#${h:o:4})); o=$((o + 4 + 2 * n))   # qualifiedSigner
    n=$((16#${h:o:4})); o=$((o + 4 + 2 * n))   # extraData
    o=$((o + 2 * (17 + 8)))                    # clockInfo, firmwareVersion
    n=$((16#${h:o:4})); A_NAME=${h:o+4:2*n}; o=$((o + 4 + 2 * n))
    n=$((16#${h:o:4})); A_CHASH=${h:o+4:2*n}
}

# split_cred CRED.OUT DIR: tpm2-tools' credential file is magic BADCC0DE, version 1, then the
# TPM2B_ID_OBJECT and the TPM2B_ENCRYPTED_SECRET: the two wire fields of docs/protocol-g1.md §4.1, sizes included.
split_cred() {
    local h n
    h=$(hex "$1")
    [ "${h:0:16}" = badcc0de00000001 ] || return 1
    n=$((16#${h:16:4}))
    xxd -r -p <<<"${h:16:4+2*n}" >"$2/cred.blob"
    xxd -r -p <<<"${h:20+2*n}" >"$2/cred.secret"
}

# make_cred EK_TSS NAME_HEX DIR: the KMS's side, done by tpm2_makecredential in software
# (-T none): a fresh 32-byte DIR/secret.bin wrapped for that EK and Name into DIR/cred.*.
make_cred() {
    head -c 32 /dev/urandom >"$3/secret.bin"
    tpm2_makecredential -T none -u "$1" -s "$3/secret.bin" -n "$2" -o "$3/cred.out" >/dev/null 2>&1 &&
        split_cred "$3/cred.out" "$3"
}
export -f make_cred split_cred hex

# activate DIR KIND EK_TSS [NAME_HEX [TAMPER]]: the driver makes an AK, then (AK still loaded)
# runs make_cred for EK_TSS and the new AK's Name (or NAME_HEX), then TAMPER (shell code, in
# DIR), then activates. Sets rc; the driver's output is in DIR/out and DIR/err.
activate() {
    mkdir -p "$1"
    tool activate "$1" "$2" bash -c 'make_cred "$1" "${3:-$(hex "$2/ak.name")}" "$2" && cd "$2" && eval "$4"' \
        _ "$3" "$1" "${4:-}" "${5:-}" >"$1/out" 2>"$1/err"
    rc=$?
}

# --- node-b: another TPM, only to have an EK that credentials for node-a must not open ---
swtpm_start "$(golden_state node-b ekcert)"
tpm2 readpublic -c 0x81010001 -f tss -o "$T/ek-b.tss" >/dev/null || bail "tpm2_readpublic of node-b's EK failed"

# ============ EK PEM (docs/protocol-g1.md §3.2) on a TPM with an EK certificate ============
swtpm_start "$(golden_state node-a ekcert)"
tpm2 nvread 0x1c00002 -C o -o "$T/nv-cert.der" 2>/dev/null || bail "tpm2_nvread of the EK certificate failed"
openssl x509 -inform DER -in "$T/nv-cert.der" -outform PEM -out "$T/want-cert.pem" ||
    bail "openssl cannot read the EK certificate"
tool ek-pem "$T/ek.pem" >"$T/out" 2>"$T/err"; rc=$?
check "ek-pem exits 0 on a TPM with an EK certificate" '[ $rc = 0 ]'
check "the EK PEM is the certificate" \
    '[ "$(head -1 "$T/out")" = certificate ] && [ "$(head -1 "$T/ek.pem")" = "-----BEGIN CERTIFICATE-----" ]'
check "openssl x509 reads the EK PEM" 'openssl x509 -in "$T/ek.pem" -noout'
check "the PEM is byte for byte Go's/OpenSSL's PEM of the NV certificate (64 columns)" \
    'cmp -s "$T/ek.pem" "$T/want-cert.pem"'
run_kkms "$T/hash" "$T/err" rc tpm-hash --tpm-device "$TPM_SOCK"
check "the returned EK key hashes to the TPM hash (kairos-kms tpm-hash)" '[ "$(sed -n 2p "$T/out")" = "$(cat "$T/hash")" ]'
check "the certificate's key hashes to the TPM hash" \
    '[ "$(openssl x509 -in "$T/ek.pem" -pubkey -noout | spki_sha256)" = "$(cat "$T/hash")" ]'
check "no transient handle left behind (ek-pem)" no_transients

# The same certificate behind the TCG header 10 01 00 len and with padding after the DER, as
# some NV indices hold it: go-attestation's ParseEKCertificate unwraps both.
{
    printf '\x10\x01\x00'
    printf "%04x" "$(stat -c %s "$T/nv-cert.der")" | xxd -r -p
    cat "$T/nv-cert.der"
    head -c 179 /dev/zero
} >"$T/padded"
tpm2 nvundefine 0x1c00002 -C p >/dev/null 2>&1 &&
    tpm2 nvdefine 0x1c00002 -C o -s "$(stat -c %s "$T/padded")" -a "ownerwrite|ownerread|authread|authwrite" >/dev/null &&
    tpm2 nvwrite 0x1c00002 -C o -i "$T/padded" >/dev/null || bail "could not rewrite NV 0x1c00002"
tool ek-pem "$T/ek2.pem" >"$T/out" 2>"$T/err"; rc=$?
check "a wrapped, padded EK certificate gives the same certificate PEM" \
    '[ $rc = 0 ] && cmp -s "$T/ek2.pem" "$T/want-cert.pem"'

# ============ EK PEM on a TPM without a certificate: the SPKI ============
swtpm_start "$(golden_state plain plain)"
tool ek-pem "$T/ek.pem" >"$T/out" 2>"$T/err"; rc=$?
check "ek-pem exits 0 on a TPM without an EK certificate" '[ $rc = 0 ]'
check "the EK PEM is a PUBLIC KEY" \
    '[ "$(head -1 "$T/out")" = public-key ] && [ "$(head -1 "$T/ek.pem")" = "-----BEGIN PUBLIC KEY-----" ]'
run_kkms "$T/hash" "$T/err" rc tpm-hash --tpm-device "$TPM_SOCK"
check "sha256 of the PEM's DER equals kairos-kms tpm-hash" '[ "$(spki_sha256 <"$T/ek.pem")" = "$(cat "$T/hash")" ]'
check "the returned EK key hashes to the same" '[ "$(sed -n 2p "$T/out")" = "$(cat "$T/hash")" ]'
tpm2 createek -c "$T/ek.ctx" -G rsa -u "$T/ek-plain.tss" -f tss >/dev/null || bail "tpm2_createek failed"
tpm2 readpublic -c "$T/ek.ctx" -f pem -o "$T/ek-tools.pem" >/dev/null || bail "tpm2_readpublic failed"
check "the PEM is byte for byte OpenSSL's PEM of tpm2_createek's EK" \
    'openssl pkey -pubin -in "$T/ek-tools.pem" | cmp -s - "$T/ek.pem"'
check "no transient handle left behind (EK from the template)" no_transients
check "ek-pem persists nothing (only activation persists the EK)" '! persistent 0x81010001'

# ============ SRK and AK parameters (docs/tpm.md §4, docs/upstream.md §9.1) ============
swtpm_start "$(golden_state node-a ekcert)"
check "the node-a TPM has no SRK yet" '! persistent 0x81000001'
mkdir -p "$T/ak" "$T/ak-noda" "$T/ak2"
tool ak "$T/ak" >"$T/out" 2>"$T/err"; rc=$?
check "ak exits 0" '[ $rc = 0 ]'
check "the SRK is persisted at 0x81000001" 'persistent 0x81000001'
{ printf '\x00\x01'; head -c 256 /dev/zero; } >"$T/zero-unique" # TPM2B_PUBLIC_KEY_RSA, host order
tpm2 createprimary -C o -G rsa2048:aes128cfb -g sha256 -u "$T/zero-unique" -c "$T/srk.ctx" -f pem -o "$T/srk-tools.pem" \
    -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' >/dev/null ||
    bail "tpm2_createprimary failed"
tpm2 readpublic -c 0x81000001 -f pem -o "$T/srk.pem" >/dev/null
check "the SRK is go-attestation's template (the key tpm2_createprimary makes from it)" \
    'cmp -s "$T/srk.pem" "$T/srk-tools.pem"'
tpm2_print -t TPMT_PUBLIC "$T/ak/ak.public" >"$T/ak.yaml" 2>"$T/err"; rc=$?
check "tpm2_print decodes Public as a TPMT_PUBLIC" '[ $rc = 0 ] && [ -s "$T/ak.yaml" ]'
check "AK attributes are 0x00050072 (G1: no noDA)" '[ "$(yaml_raw "$T/ak.yaml" attributes)" = 0x50072 ]'
check "AK is RSA-2048 with RSASSA-SHA256" 'grep -qx "bits: 2048" "$T/ak.yaml" &&
    [ "$(yaml_raw "$T/ak.yaml" scheme)" = 0x14 ] && [ "$(yaml_raw "$T/ak.yaml" scheme-halg)" = 0xb ]'
check "the Name is 000b || sha256(Public)" '[ "$(hex "$T/ak/ak.name")" = "000b$(sha256_hex "$T/ak/ak.public")" ]'
parse_creation_attest "$T/ak/ak.attest"
check "CreateAttestation is a TPMS_ATTEST of type ATTEST_CREATION" '[ "$A_MAGIC" = ff544347 ] && [ "$A_TYPE" = 801a ]'
check "its objectName is 000b || sha256(Public)" '[ "$A_NAME" = "000b$(sha256_hex "$T/ak/ak.public")" ]'
check "its creationHash is sha256(CreateData)" '[ "$A_CHASH" = "$(sha256_hex "$T/ak/ak.create_data")" ]'
check "CreateSignature is a TPMT_SIGNATURE, RSASSA/SHA-256, 256 bytes" \
    '[ "$(hex "$T/ak/ak.sig" | cut -c1-12)" = 0014000b0100 ] && [ "$(stat -c %s "$T/ak/ak.sig")" = 262 ]'
pem_of_public "$T/ak/ak.public" >"$T/ak.pem"
sig_to_raw "$T/ak/ak.sig" "$T/ak.rawsig"
check "CreateSignature verifies over CreateAttestation with the AK's key (openssl)" \
    'openssl dgst -sha256 -verify "$T/ak.pem" -signature "$T/ak.rawsig" "$T/ak/ak.attest" >/dev/null'
check "no transient handle left behind (tpm_ak_free flushed the AK)" no_transients
tool ak "$T/ak-noda" noda >"$T/out" 2>"$T/err"
tpm2_print -t TPMT_PUBLIC "$T/ak-noda/ak.public" >"$T/ak-noda.yaml" 2>/dev/null
check "the G3 variant has attributes 0x00050472 (noDA)" '[ "$(yaml_raw "$T/ak-noda.yaml" attributes)" = 0x50472 ]'
tool ak "$T/ak2" >"$T/out" 2>"$T/err"; rc=$?
check "a second AK reuses the SRK quietly and is a new key" \
    '[ $rc = 0 ] && [ ! -s "$T/err" ] && ! cmp -s "$T/ak/ak.public" "$T/ak2/ak.public"'

# ============ credential activation (docs/protocol-g1.md §7) against tpm2_makecredential ============
tpm2 readpublic -c 0x81010001 -f tss -o "$T/ek-a.tss" >/dev/null || bail "tpm2_readpublic of node-a's EK failed"
activate "$T/act" g1 "$T/ek-a.tss"
check "activate exits 0 for a credential made for this EK and AK" '[ $rc = 0 ]'
check "the recovered secret is the one tpm2_makecredential wrapped" 'cmp -s "$T/act/secret.out" "$T/act/secret.bin"'
check "the wire fields keep their sizes (TPM2B_ID_OBJECT 70 bytes, TPM2B_ENCRYPTED_SECRET 258)" \
    '[ "$(stat -c %s "$T/act/cred.blob")" = 70 ] && [ "$(stat -c %s "$T/act/cred.secret")" = 258 ]'
check "no transient handle or session left behind (activation)" no_transients

activate "$T/act-noda" noda "$T/ek-a.tss"
check "activation works with the G3 noDA AK too" '[ $rc = 0 ] && cmp -s "$T/act-noda/secret.out" "$T/act-noda/secret.bin"'

activate "$T/wrong-ek" g1 "$T/ek-b.tss"
check "a credential made for another TPM's EK fails (exit 1, no secret)" '[ $rc = 1 ] && [ ! -e "$T/wrong-ek/secret.out" ]'
check "... with one line naming the TPM and the reason" '[ "$(wc -l <"$T/wrong-ek/err")" = 1 ] &&
    grep -q "TPM swtpm socket .*: credential activation failed: the credential was not made for this TPM.s EK$" \
        "$T/wrong-ek/err"'
diag <"$T/wrong-ek/err"

activate "$T/wrong-ak" g1 "$T/ek-a.tss" "$(hex "$T/ak/ak.name")"
check "a credential bound to another AK's Name fails with one line saying so" '[ $rc = 1 ] &&
    [ "$(wc -l <"$T/wrong-ak/err")" = 1 ] &&
    grep -q "credential activation failed: the credential was not made for this attestation key" "$T/wrong-ak/err"'
diag <"$T/wrong-ak/err"

activate "$T/short" g1 "$T/ek-a.tss" "" 'head -c 40 cred.blob >b && mv b cred.blob'
check "a truncated credential blob is refused as malformed" \
    '[ $rc = 1 ] && grep -q "credential activation failed: malformed credential blob" "$T/short/err"'
check "no transient handle or session left behind after failed activations" no_transients
check "the SRK 0x81000001 and the EK 0x81010001 stay persisted" 'persistent 0x81000001 && persistent 0x81010001'

# --- no persisted EK: activation creates it and persists it at 0x81010001, as upstream does ---
swtpm_start "$(golden_state plain plain)"
check "the plain TPM has no persisted EK" '! persistent 0x81010001'
activate "$T/act-plain" g1 "$T/ek-plain.tss"
check "activation on a TPM without a persisted EK succeeds" \
    '[ $rc = 0 ] && cmp -s "$T/act-plain/secret.out" "$T/act-plain/secret.bin"'
check "it persisted the EK at 0x81010001 and the SRK at 0x81000001 (documented side effect)" \
    'persistent 0x81010001 && persistent 0x81000001'
tpm2 readpublic -c 0x81010001 -f tss -o "$T/ek-persisted.tss" >/dev/null
check "the persisted EK is tpm2_createek's RSA EK" 'cmp -s "$T/ek-persisted.tss" "$T/ek-plain.tss"'
check "no transient handle left behind (EK creation)" no_transients

# ============ PCR quote (docs/tpm.md §7) checked by tpm2_checkquote ============
swtpm_start "$(golden_state node-a ekcert)"
tpm2 pcrextend "11:sha256=$(printf kairos-kms | sha256sum | cut -d' ' -f1)" || bail "tpm2_pcrextend failed"
mkdir -p "$T/q" "$T/q0" "$T/qall"
nonce=$(head -c 32 /dev/urandom | xxd -p -c 64)
tool quote "$T/q" 0,7,11 "$nonce" >"$T/out" 2>"$T/err"; rc=$?
check "quote exits 0" '[ $rc = 0 ]'
pem_of_public "$T/q/ak.public" >"$T/q/ak.pem"
check "tpm2_checkquote verifies the signature, the nonce and the PCR values" \
    'tpm2_checkquote -u "$T/q/ak.pem" -m "$T/q/quote.attest" -s "$T/q/quote.sig" -f "$T/q/quote.pcrs" \
        -l sha256:0,7,11 -g sha256 -q "$nonce" >/dev/null 2>"$T/err"'
check "tpm2_checkquote refuses another nonce (the oracle is not blind)" \
    '! tpm2_checkquote -u "$T/q/ak.pem" -m "$T/q/quote.attest" -s "$T/q/quote.sig" -f "$T/q/quote.pcrs" \
        -l sha256:0,7,11 -g sha256 -q "00$nonce" >/dev/null 2>&1'
tpm2 pcrread sha256:0,7,11 -o "$T/q/pcrread.bin" >/dev/null
check "the returned PCR values are tpm2_pcrread's" 'cmp -s "$T/q/quote.pcrs" "$T/q/pcrread.bin"'
tpm2_print -t TPMS_ATTEST "$T/q/quote.attest" >"$T/q/quote.yaml" 2>/dev/null
check "tpm2_print decodes the quote as a TPMS_ATTEST of type ATTEST_QUOTE" 'grep -qx "type: 8018" "$T/q/quote.yaml"'

tool quote "$T/q0" 0,7,11 >"$T/out" 2>"$T/err"; rc=$?
pem_of_public "$T/q0/ak.public" >"$T/q0/ak.pem"
check "an upstream-style quote (no nonce) verifies too" '[ $rc = 0 ] &&
    tpm2_checkquote -u "$T/q0/ak.pem" -m "$T/q0/quote.attest" -s "$T/q0/quote.sig" -f "$T/q0/quote.pcrs" \
        -l sha256:0,7,11 -g sha256 >/dev/null 2>&1'

# All 24 PCRs: TPM2_PCR_Read answers at most 8 a time, so the driver reads three times.
# tpm2_checkquote 5.4 takes at most 8 values without a selection; check the parts instead.
tool quote "$T/qall" "$(seq -s, 0 23)" >"$T/out" 2>"$T/err"; rc=$?
pem_of_public "$T/qall/ak.public" >"$T/qall/ak.pem"
tpm2_print -t TPMS_ATTEST "$T/qall/quote.attest" >"$T/qall/quote.yaml" 2>/dev/null
tpm2 pcrread sha256:all -o "$T/qall/pcrread.bin" >/dev/null
sig_to_raw "$T/qall/quote.sig" "$T/qall/rawsig"
check "a quote of all 24 PCRs: selection ffffff, values = tpm2_pcrread's, pcrDigest = sha256(values), signed" \
    '[ $rc = 0 ] && grep -qx " *pcrSelect: ffffff" "$T/qall/quote.yaml" &&
     cmp -s "$T/qall/quote.pcrs" "$T/qall/pcrread.bin" &&
     grep -qx " *pcrDigest: $(sha256_hex "$T/qall/quote.pcrs")" "$T/qall/quote.yaml" &&
     openssl dgst -sha256 -verify "$T/qall/ak.pem" -signature "$T/qall/rawsig" "$T/qall/quote.attest" >/dev/null'
check "no transient handle left behind (quote)" no_transients

done_testing
