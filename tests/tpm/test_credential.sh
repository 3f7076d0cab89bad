#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Credential activation end to end (docs/protocol-g1.md §3-§8), with swtpm and tpm2-tools as the
# independent TPM side and tests/tpm/attest_tool driving lib/attest as the server:
#  (a) AK parameters made the way go-attestation makes them (SRK parent, Create, Load,
#      CertifyCreation) pass attest_check_ak_params; tampered ones are refused with one line;
#  (b) a credential from attest_make_credential for that AK and the EK (tpm2_readpublic PEM) is
#      activated by the TPM (policy session + PolicySecret(endorsement)) and yields our secret;
#  (c) tpm2_makecredential's output has exactly the layout we produce, and a SHA-1-named AK shows
#      why attest_check_ak_params insists on SHA-256;
#  (d) a G3 PCR quote of that AK verifies with attest_verify_quote, and stale ones do not.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
require tpm2_createek tpm2_readpublic tpm2_createprimary tpm2_create tpm2_load tpm2_certifycreation \
    tpm2_createak tpm2_startauthsession tpm2_policysecret tpm2_activatecredential tpm2_makecredential \
    tpm2_quote tpm2_pcrread tpm2_pcrextend tpm2_getcap xxd od openssl
tool=${KKMS_ATTEST_TOOL:-}
root=$(cd "${KKMS_SOURCE_ROOT:-$(dirname "$0")/../..}" && pwd)
[ -x "$tool" ] || bail "KKMS_ATTEST_TOOL must name the attest_tool test driver (tests/meson.build builds it)"

hexof() { xxd -p -c 256 "$1"; }
# patched SRC OFFSET XOR DST: a copy of SRC with the byte at OFFSET XORed with XOR.
patched() {
    local b
    cp "$1" "$4"
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ $3)))" | dd of="$4" bs=1 seek="$2" conv=notrunc status=none
}
# ak_check NAME [PUBLIC CDATA ATTEST SIG] [--allow-ecc]: attest_tool check, output in $T/out, $T/err.
ak_check() {
    local n=$1
    shift
    if [ $# -ge 4 ]; then
        "$tool" check "$@" >"$T/out" 2>"$T/err"
    else
        "$tool" check "$n.public" "$n.cdata" "$n.attest" "$n.sig" "$@" >"$T/out" 2>"$T/err"
    fi
}
refused() { ! ak_check "$@" && one_line "$T/err"; }
# make_ak NAME ALG ATTRIBUTES: an AK under the SRK, as go-attestation's NewAK (docs/tpm.md §4);
# nameAlg SHA-256 unless $name_alg says otherwise.
make_ak() {
    local n=$1
    tpm2 create -C srk.ctx -g "${name_alg:-sha256}" -G "$2" -a "$3" -u "$n.tpub" -r "$n.priv" --creation-data "$n.tcdata" \
        -t "$n.ticket" -d "$n.chash" >/dev/null &&
        tpm2 load -C srk.ctx -u "$n.tpub" -r "$n.priv" -c "$n.ctx" -n "$n.name" >/dev/null &&
        tpm2 certifycreation -C "$n.ctx" -c "$n.ctx" -d "$n.chash" -t "$n.ticket" -g sha256 -o "$n.sig" \
            --attestation "$n.attest" >/dev/null &&
        tail -c +3 "$n.tpub" >"$n.public" && tail -c +3 "$n.tcdata" >"$n.cdata"
}
# activate AK_CTX CRED OUT: TPM2_ActivateCredential with the EK behind PolicySecret(endorsement).
activate() {
    rm -f "$3" sess.ctx
    tpm2 startauthsession --policy-session -S sess.ctx >/dev/null &&
        tpm2 policysecret -S sess.ctx -c e >/dev/null &&
        tpm2 activatecredential -c "$1" -C ek.ctx -i "$2" -o "$3" -P session:sess.ctx >/dev/null 2>"$T/tpm.err"
    local rc=$?
    tpm2 flushcontext sess.ctx >/dev/null 2>&1
    return $rc
}

swtpm_start "$(golden_state node-a ekcert)"
cd "$T" || bail "no test directory"

tpm2 createek -c ek.ctx -G rsa -u ek.tss -f tss >/dev/null || bail "tpm2_createek failed"
tpm2 readpublic -c ek.ctx -o ek.pem -f pem >/dev/null || bail "tpm2_readpublic failed"
tpm2 createprimary -C o -g sha256 -G rsa2048:null:aes128cfb \
    -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda' -c srk.ctx >/dev/null ||
    bail "the SRK could not be created"
ak_attrs='fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign'
make_ak ak rsa2048:rsassa-sha256:null "$ak_attrs|noda" || bail "the G3-style RSA AK could not be made"
make_ak g1 rsa2048:rsassa-sha256:null "$ak_attrs" || bail "the G1-style RSA AK could not be made"
make_ak ecc ecc256:ecdsa-sha256:null "$ak_attrs|noda" || bail "the ECC AK could not be made"

# --- (a) AK parameters ---
ak_check ak
check "a genuine RSA AK (0x00050472, G3) passes attest_check_ak_params" '[ -s "$T/out" ] && [ ! -s "$T/err" ]'
check "...and the Name it binds is the one tpm2_load printed" '[ "$(cat "$T/out")" = "$(hexof ak.name)" ]'
ak_check g1
check "a genuine G1 AK (0x00050072, no noDA: docs/upstream.md §9.1) passes" '[ "$(cat "$T/out")" = "$(hexof g1.name)" ]'
check "an ECC AK is refused for G1 with one line" 'refused ecc && grep -q "RSA AKs only" "$T/err"'
check "...and accepted with --allow-ecc (G3)" 'ak_check ecc --allow-ecc && [ "$(cat "$T/out")" = "$(hexof ecc.name)" ]'
patched ak.public 7 2 bad.public
check "fixedTPM cleared in Public: refused" 'refused x bad.public ak.cdata ak.attest ak.sig && grep -q exportable "$T/err"'
patched ak.public 5 2 bad.public
check "decrypt set in Public: refused" 'refused x bad.public ak.cdata ak.attest ak.sig'
check "another AK's attestation (wrong objectName): refused" \
    'refused x ak.public ak.cdata g1.attest g1.sig && grep -q "different" "$T/err"'
patched ak.sig "$(($(stat -c %s ak.sig) - 1))" 1 bad.sig
check "a bad signature: refused" 'refused x ak.public ak.cdata ak.attest bad.sig && grep -q "could not verify" "$T/err"'
check "an ECDSA signature for the RSA AK: refused, no crash (docs/upstream.md §9.4)" 'refused x ak.public ak.cdata ak.attest ecc.sig'
patched ak.attest 0 128 bad.attest
check "wrong magic: refused" 'refused x ak.public ak.cdata bad.attest ak.sig && grep -q "not produced by a TPM" "$T/err"'
patched ak.cdata 10 1 bad.cdata
check "changed CreateData: refused" 'refused x ak.public bad.cdata ak.attest ak.sig'
n=0
for f in public cdata attest sig; do
    head -c -1 "ak.$f" >"short.$f"
    for g in public cdata attest sig; do [ "$g" = "$f" ] || cp "ak.$g" "short.$g"; done
    refused short && n=$((n + 1))
    rm -f short.*
done
check "each of the four structures truncated by one byte: refused" '[ "$n" = 4 ]'
{ cat ak.public; printf '\0'; } >long.public
check "a trailing byte after Public: refused" 'refused x long.public ak.cdata ak.attest ak.sig && grep -q trailing "$T/err"'

# --- (b) our credential, activated by the TPM ---
head -c 32 /dev/urandom >secret.bin
"$tool" make-credential ek.pem "$(hexof ak.name)" secret.bin cred.ours 2>"$T/err"
rc=$?
check "attest_make_credential for the EK PEM and the AK Name" '[ "$rc" = 0 ] && [ -s cred.ours ]'
"$tool" parse-credential cred.ours >layout.ours 2>"$T/err"
check "...70-byte TPM2B_ID_OBJECT, 258-byte TPM2B_ENCRYPTED_SECRET" \
    'grep -qx "id_object=70 integrity_hmac=32 enc_identity=34 encrypted_secret=258" layout.ours'
activate ak.ctx cred.ours recovered.bin
check "tpm2_activatecredential on swtpm recovers our 32-byte secret" 'cmp -s secret.bin recovered.bin'
"$tool" make-credential ek.pem "$(hexof g1.name)" secret.bin cred.g1 2>"$T/err"
activate g1.ctx cred.g1 recovered.g1
check "...also for the G1 AK" 'cmp -s secret.bin recovered.g1'
check "a credential bound to another AK's Name fails the TPM's integrity check" \
    '! activate ak.ctx cred.g1 wrong.bin && [ ! -s wrong.bin ] && grep -q "integrity check failed" "$T/tpm.err"'
openssl pkey -in "$root/tests/data/attest/ek-test-key.pem" -pubout -out other-ek.pem 2>/dev/null
"$tool" make-credential other-ek.pem "$(hexof ak.name)" secret.bin cred.other 2>"$T/err"
check "a credential for another EK is refused by the TPM" '! activate ak.ctx cred.other wrong.bin && [ ! -s wrong.bin ]'
tpm2 createak -C ek.ctx -c createak.ctx -G rsa -g sha256 -s rsassa -u createak.tpub -f tss -n createak.name >/dev/null
tail -c +3 createak.tpub >createak.public
check "attest_public_name of a tpm2_createak AK equals tpm2's Name" \
    '[ "$("$tool" name createak.public)" = "$(hexof createak.name)" ]'
"$tool" make-credential ek.pem "$(hexof createak.name)" secret.bin cred.createak 2>"$T/err"
activate createak.ctx cred.createak recovered.createak
check "...and its credential activates too (EK-parented AK)" 'cmp -s secret.bin recovered.createak'

# --- (c) tpm2_makecredential's blobs have our layout ---
tpm2_makecredential -T none -u ek.tss -s secret.bin -n "$(hexof ak.name)" -o cred.tpm2 >/dev/null 2>"$T/err"
rc=$?
check "tpm2_makecredential -T none makes a credential for the same AK" '[ "$rc" = 0 ] && [ -s cred.tpm2 ]'
"$tool" parse-credential cred.tpm2 >layout.tpm2 2>"$T/err"
check "...with the same TPM2B layout and sizes as ours" '[ -s layout.tpm2 ] && cmp -s layout.ours layout.tpm2'
check "...and the same file size and header" \
    '[ "$(stat -c %s cred.tpm2)" = "$(stat -c %s cred.ours)" ] && cmp -s <(head -c 12 cred.tpm2) <(head -c 12 cred.ours)'
activate ak.ctx cred.tpm2 recovered.tpm2
check "...and activates to the same secret (the activation path is sound)" 'cmp -s secret.bin recovered.tpm2'

# --- why only SHA-256 AKs pass: the TPM derives with the EK's nameAlg, upstream with the Name's ---
name_alg=sha1 make_ak sha1 rsa2048:rsassa-sha256:null "$ak_attrs|noda" || bail "the SHA-1-named AK could not be made"
check "an AK with nameAlg SHA-1 is refused with one line" 'refused sha1 && grep -q "nameAlg 0x0004" "$T/err"'
"$tool" make-credential ek.pem "$(hexof sha1.name)" secret.bin cred.sha1 2>"$T/err"
check "...because a credential hashed with the Name's SHA-1 (docs/upstream.md §9.5) does not activate" \
    '! activate sha1.ctx cred.sha1 wrong.bin && [ ! -s wrong.bin ]'
tpm2_makecredential -T none -u ek.tss -s secret.bin -n "$(hexof sha1.name)" -o cred.sha1-tpm2 >/dev/null 2>&1
activate sha1.ctx cred.sha1-tpm2 recovered.sha1
check "...while tpm2_makecredential's, hashed with the EK's SHA-256, does" 'cmp -s secret.bin recovered.sha1'

# --- (d) G3 PCR quote ---
tpm2 pcrextend "7:sha256=$(head -c 32 /dev/urandom | xxd -p -c 64)" >/dev/null
head -c 20 /dev/urandom >nonce.bin
head -c 20 /dev/urandom >other-nonce.bin
tpm2 quote -c ak.ctx -l sha256:0,7,11 -q "$(hexof nonce.bin)" -g sha256 -m quote.attest -s quote.sig >/dev/null
tpm2 pcrread sha256:0,7,11 -o pcrs.bin >/dev/null
check "a quote over sha256:0,7,11 with our nonce verifies" \
    '"$tool" verify-quote ak.public quote.attest quote.sig pcrs.bin 0,7,11 nonce.bin >/dev/null'
check "...and without a nonce check (upstream clients send none)" \
    '"$tool" verify-quote ak.public quote.attest quote.sig pcrs.bin 0,7,11 >/dev/null'
check "...but not against another nonce" \
    '! "$tool" verify-quote ak.public quote.attest quote.sig pcrs.bin 0,7,11 other-nonce.bin 2>"$T/err" && one_line "$T/err"'
check "...nor with the values in the wrong slots" \
    '! "$tool" verify-quote ak.public quote.attest quote.sig pcrs.bin 0,11,7 2>/dev/null'
check "...nor with the G1 AK's key" '! "$tool" verify-quote g1.public quote.attest quote.sig pcrs.bin 0,7,11 2>/dev/null'
tpm2 pcrextend "11:sha256=$(head -c 32 /dev/urandom | xxd -p -c 64)" >/dev/null
tpm2 pcrread sha256:0,7,11 -o pcrs-now.bin >/dev/null
check "PCR values read after PCR 11 changed do not match the old quote" \
    '! "$tool" verify-quote ak.public quote.attest quote.sig pcrs-now.bin 0,7,11 2>"$T/err" && grep -q pcrDigest "$T/err"'
tpm2 quote -c ecc.ctx -l sha256:0,7,11 -q "$(hexof nonce.bin)" -g sha256 -m equote.attest -s equote.sig >/dev/null
check "an ECDSA quote of the ECC AK verifies" \
    '"$tool" verify-quote ecc.public equote.attest equote.sig pcrs-now.bin 0,7,11 nonce.bin >/dev/null'

tpm2 getcap handles-transient >handles || true
check "no transient handle left behind" '[ ! -s handles ]'

done_testing
