#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# The four G3 messages (lib/proto/g3.h) against an independent Python codec written from the
# upstream protocol description (tests/online/g3_peer.py), both ways:
#  (a) edge-case vectors: Python-encoded messages decoded by our C decoder give back every field;
#      our C encoder writes the same bytes as the Python (Go-style) encoder; Python decodes ours;
#  (b) messages that are not valid for their kind (wrong types, sizes over the limits, PCR keys
#      that are no index, repeated keys, G1 shapes, garbage) are refused by our decoder with one
#      line naming the field, and by the Python decoder too;
#  (c) real TPM material: an AK and a quote over a server nonce made on swtpm by lib/tpm
#      (node_attest_tool), carried through Python-encoded init, challenge and proof messages,
#      decoded by our C code, verify with lib/attest (attest_tool) — and not with a PCR value
#      changed in the Python-encoded proof.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
require python3 xxd openssl sha256sum tpm2_createek tpm2_readpublic
root=$(cd "${KKMS_SOURCE_ROOT:-$(dirname "$0")/../..}" && pwd)
peer=$root/tests/online/g3_peer.py
: "${KKMS_G3_TOOL:?KKMS_G3_TOOL must name the g3_tool test driver (tests/meson.build builds it)}"
: "${KKMS_ATTEST_TOOL:?KKMS_ATTEST_TOOL must name the attest_tool test driver}"
: "${KKMS_NODE_ATTEST_TOOL:?KKMS_NODE_ATTEST_TOOL must name the node_attest_tool test driver}"
c() { timeout -k 5 30 "$KKMS_G3_TOOL" "$@"; }
py() { timeout -k 5 30 python3 "$peer" "$@"; }
kind_of() { basename "$1" | cut -d- -f1; }
hexof() { xxd -p -c 100000 "$1"; }

mkdir -p "$T/v" "$T/h"
py vectors "$T/v" || bail "g3_peer.py vectors failed"
py hostile "$T/h" || bail "g3_peer.py hostile failed"

# --- (a) vectors both ways ---
py encode-all "$T/v" || bail "g3_peer.py could not encode the vectors"
for spec in "$T"/v/*.spec; do
    kind=$(kind_of "$spec") o=${spec%.spec}
    c encode "$kind" "$spec" "$o.c.msg" 2>"$o.c.err"
done
py decode-all "$T/v" c.msg || bail "g3_peer.py could not decode our messages"
for spec in "$T"/v/*.spec; do
    name=$(basename "$spec" .spec) kind=$(kind_of "$spec") o=${spec%.spec}
    check "$name: Python-encoded, decoded by C: every field as given" \
        'c decode "$kind" "$o.py.msg" >"$o.c.dump" 2>"$o.err" && cmp -s "$o.c.dump" "$spec"'
    check "$name: C-encoded: the same bytes as the Go-style Python encoder" \
        '[ -s "$o.c.msg" ] && cmp -s "$o.c.msg" "$o.py.msg"'
    check "$name: C-encoded, decoded by Python: every field as given" 'cmp -s "$o.py.dump" "$spec"'
done
check "an error in place of the challenge decodes as the server's error text" \
    'c decode challenge "$T/v/challenge-error.py.msg" | grep -qx "error=$(printf "Challenge generation: " | xxd -p)[0-9a-f]*"'
check "...and as an error response too (the same text serves both places)" \
    'c decode response "$T/v/challenge-error.py.msg" | grep -q "^error="'
check "every message ends in one newline (gorilla WriteJSON), no other newline" \
    'for f in "$T"/v/*.c.msg; do [ "$(tail -c 1 "$f" | xxd -p)" = 0a ] && [ "$(wc -l <"$f")" = 1 ] || exit 1; done'

# --- (b) invalid messages ---
n=0 bad=""
for msg in "$T"/h/*.msg; do
    kind=$(kind_of "$msg")
    if ! c decode "$kind" "$msg" >/dev/null 2>"$T/err" && [ "$(wc -l <"$T/err")" = 1 ] &&
        grep -q "G3 $kind refused: " "$T/err"; then
        n=$((n + 1))
    else
        bad="$bad $(basename "$msg")"
    fi
done
py refuses "$T/h" >"$T/accepted" || bad="$bad python-accepted:$(tr '\n' ' ' <"$T/accepted")"
total=$(ls "$T"/h/*.msg | wc -l)
check "all $total invalid messages refused by C with one line naming the kind, and by Python${bad:+ (not:$bad)}" \
    '[ "$n" = "$total" ] && [ -z "$bad" ] && [ "$total" -ge 30 ]'
c decode proof "$T/h/proof-pcr-31-bytes.msg" 2>"$T/err"
check "...the reason names the field (pcr_quote.pcrs[\"7\"])" 'grep -qF "pcr_quote.pcrs[\"7\"]" "$T/err"'
c decode init "$T/h/init-ek-too-big.msg" 2>"$T/err"
check "...and the limit (ek_public over 2048 bytes)" 'grep -q "ek_public: .*2048" "$T/err"'

# --- (c) real TPM material through the Python-encoded messages ---
swtpm_start "$(golden_state node-a ekcert)"
tpm2 createek -c "$T/ek.ctx" -G rsa -u "$T/ek.tss" >/dev/null || bail "tpm2_createek failed"
tpm2 readpublic -c "$T/ek.ctx" -f der -o "$T/ek.der" >/dev/null || bail "tpm2_readpublic failed"
nonce=$(head -c 32 /dev/urandom | xxd -p -c 64)
mkdir -p "$T/q"
timeout -k 5 60 "$KKMS_NODE_ATTEST_TOOL" "$TPM_SOCK" quote "$T/q" 0,7,11 "$nonce" >/dev/null 2>"$T/err" ||
    bail "node_attest_tool quote failed: $(cat "$T/err")"
{
    echo "ek_public=$(hexof "$T/ek.der")"
    echo "Public=$(hexof "$T/q/ak.public")"
    echo "CreateData=$(hexof "$T/q/ak.create_data")"
    echo "CreateAttestation=$(hexof "$T/q/ak.attest")"
    echo "CreateSignature=$(hexof "$T/q/ak.sig")"
    echo "defer_pcr_enrollment=false"
} >"$T/init.spec"
pcrs=$(hexof "$T/q/quote.pcrs")
{
    echo "secret=$(head -c 32 /dev/urandom | xxd -p -c 64)"
    echo "version=32"
    echo "quote=$(hexof "$T/q/quote.attest")"
    echo "signature=$(hexof "$T/q/quote.sig")"
    echo "pcr.0=${pcrs:0:64}"
    echo "pcr.7=${pcrs:64:64}"
    echo "pcr.11=${pcrs:128:64}"
    echo "encrypted_passphrase="
} >"$T/proof.spec"
{
    echo "Credential=$(head -c 70 /dev/urandom | xxd -p -c 200)"
    echo "Secret=$(head -c 258 /dev/urandom | xxd -p -c 600)"
    echo "nonce=$nonce"
} >"$T/challenge.spec"
c ek "$T/ek.der" >"$T/ek.out" 2>"$T/err"
check "proto_g3_ek: the TPM hash of the swtpm EK is sha256sum of tpm2_readpublic's DER" \
    '[ "$(head -1 "$T/ek.out")" = "$(sha256sum "$T/ek.der" | cut -d" " -f1)" ]'
check "...and its PEM is openssl's, byte for byte" \
    'cmp -s <(tail -n +2 "$T/ek.out") <(openssl pkey -pubin -inform DER -in "$T/ek.der" -outform PEM)'
for k in init challenge proof; do
    py encode "$k" "$T/$k.spec" "$T/$k.msg" || bail "g3_peer.py could not encode the real $k"
done
check "a real init (swtpm EK and AK) round-trips: Python encodes, C decodes every field" \
    'c decode init "$T/init.msg" >"$T/init.dump" && cmp -s "$T/init.dump" "$T/init.spec"'
sed -n 's/^Public=//p' "$T/init.dump" | xxd -r -p >"$T/d.public"
sed -n 's/^nonce=//p' <(c decode challenge "$T/challenge.msg") | xxd -r -p >"$T/d.nonce"
c decode proof "$T/proof.msg" >"$T/proof.dump"
sed -n 's/^quote=//p' "$T/proof.dump" | xxd -r -p >"$T/d.quote"
sed -n 's/^signature=//p' "$T/proof.dump" | xxd -r -p >"$T/d.sig"
sed -n 's/^pcr\.\(0\|7\|11\)=//p' "$T/proof.dump" | tr -d '\n' | xxd -r -p >"$T/d.pcrs"
check "the AK from the decoded init passes attest_check_ak_params" \
    '"$KKMS_ATTEST_TOOL" check "$T/d.public" <(sed -n "s/^CreateData=//p" "$T/init.dump" | xxd -r -p) \
        <(sed -n "s/^CreateAttestation=//p" "$T/init.dump" | xxd -r -p) \
        <(sed -n "s/^CreateSignature=//p" "$T/init.dump" | xxd -r -p) >/dev/null'
check "the decoded quote, signature and PCRs verify with the decoded nonce (attest_verify_quote)" \
    '"$KKMS_ATTEST_TOOL" verify-quote "$T/d.public" "$T/d.quote" "$T/d.sig" "$T/d.pcrs" 0,7,11 "$T/d.nonce" >/dev/null'
pcr7=${pcrs:64:2}
sed "s/^pcr.7=../pcr.7=$([ "$pcr7" = ff ] && echo 00 || echo ff)/" "$T/proof.spec" >"$T/proof-bad.spec"
py encode proof "$T/proof-bad.spec" "$T/proof-bad.msg"
c decode proof "$T/proof-bad.msg" | sed -n 's/^pcr\.\(0\|7\|11\)=//p' | tr -d '\n' | xxd -r -p >"$T/d.pcrs-bad"
check "...and not with PCR 7's value changed in the proof" \
    '! "$KKMS_ATTEST_TOOL" verify-quote "$T/d.public" "$T/d.quote" "$T/d.sig" "$T/d.pcrs-bad" 0,7,11 "$T/d.nonce" 2>"$T/err" &&
     grep -q pcrDigest "$T/err"'

done_testing
