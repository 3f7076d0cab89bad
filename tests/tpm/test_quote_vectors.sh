#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# PCR quote vectors for G3 (upstream kcrypt/pkg/attestation/server.go VerifyProof), both ways,
# on a fresh swtpm with tpm2-tools 5.x as the independent side:
#  (a) quotes made by tpm2_createak + tpm2_quote (an RSA-2048 RSASSA AK, ECC P-256 and P-384 ECDSA
#      AKs signing with SHA-256 and SHA-384, sha256:0,7,11, our nonce, PCR values written by tpm2_quote -F values) are accepted by
#      lib/attest's attest_verify_quote (tests/tpm/attest_tool verify-quote) with the right nonce
#      and values, and refused with another nonce, an altered PCR value, a flipped signature
#      byte, a PCR set other than the quote's selection, or the other AK's key;
#  (b) a quote made by lib/tpm's tpm_quote_pcrs (tests/tpm/node_attest_tool quote) passes
#      tpm2_checkquote with the nonce, the AK's PEM computed here in Python from its TPMT_PUBLIC,
#      and fails it with another nonce or a changed PCR value.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
require tpm2_createek tpm2_createak tpm2_quote tpm2_readpublic tpm2_pcrextend tpm2_checkquote tpm2_getcap \
    xxd od python3
: "${KKMS_ATTEST_TOOL:?KKMS_ATTEST_TOOL must name the attest_tool test driver (tests/meson.build builds it)}"
: "${KKMS_NODE_ATTEST_TOOL:?KKMS_NODE_ATTEST_TOOL must name the node_attest_tool test driver}"
verify() { timeout -k 5 30 "$KKMS_ATTEST_TOOL" verify-quote "$@"; }
# refused WHAT ARGS...: verify-quote fails with one line on stderr that contains WHAT.
refused() {
    local what=$1
    shift
    ! verify "$@" >/dev/null 2>"$T/err" && one_line "$T/err" && grep -q -- "$what" "$T/err"
}
# flip SRC OFFSET DST: a copy of SRC with the byte at OFFSET (negative: from the end) inverted.
flip() {
    local off=$2 b
    [ "$off" -lt 0 ] && off=$(($(stat -c %s "$1") + off))
    cp "$1" "$3"
    b=$(od -An -tu1 -j "$off" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$3" bs=1 seek="$off" conv=notrunc status=none
}

swtpm_start "$(golden_state node-a ekcert)"
cd "$T" || bail "no test directory"
tpm2 pcrextend "7:sha256=$(head -c 32 /dev/urandom | xxd -p -c 64)" >/dev/null || bail "tpm2_pcrextend failed"
tpm2 pcrextend "11:sha256=$(head -c 32 /dev/urandom | xxd -p -c 64)" >/dev/null || bail "tpm2_pcrextend failed"
tpm2 createek -c ek.ctx -G rsa -u ek.tss >/dev/null || bail "tpm2_createek failed"
head -c 32 /dev/urandom >nonce.bin
head -c 32 /dev/urandom >other-nonce.bin
nonce=$(xxd -p -c 64 nonce.bin)

# --- (a) tpm2-tools quotes, lib/attest verifier ---
for alg in rsa ecc ecc384; do
    case $alg in
    rsa) args=(-G rsa -g sha256 -s rsassa) hash=sha256 ;;
    ecc) args=(-G ecc -g sha256 -s ecdsa) hash=sha256 ;;
    ecc384) args=(-G ecc384 -g sha384 -s ecdsa) hash=sha384 ;;
    esac
    tpm2 createak -C ek.ctx -c "$alg.ctx" "${args[@]}" -u "$alg.tpub" -f tss -n "$alg.name" -r "$alg.priv" \
        >/dev/null || bail "tpm2_createak -G $alg failed"
    tail -c +3 "$alg.tpub" >"$alg.public"
    tpm2 quote -c "$alg.ctx" -l sha256:0,7,11 -q "$nonce" -g "$hash" -m "$alg.quote" -s "$alg.sig" \
        -o "$alg.pcrs" -F values >/dev/null 2>"$T/err" || bail "tpm2_quote ($alg) failed: $(cat "$T/err")"
done
check "tpm2_quote -F values wrote three 32-byte SHA-256 values" '[ "$(stat -c %s rsa.pcrs)" = 96 ]'
check "the RSA quote has an RSASSA signature, the ECC ones ECDSA signatures (SHA-256, SHA-384)" \
    '[ "$(xxd -p -l 4 rsa.sig)" = 0014000b ] && [ "$(xxd -p -l 4 ecc.sig)" = 0018000b ] &&
     [ "$(xxd -p -l 4 ecc384.sig)" = 0018000c ]'
for alg in rsa ecc ecc384; do
    other=$([ $alg = rsa ] && echo ecc || echo rsa)
    check "$alg AK: the quote verifies with the nonce and the PCR values" \
        'verify $alg.public $alg.quote $alg.sig $alg.pcrs 0,7,11 nonce.bin >/dev/null 2>"$T/err"'
    check "$alg AK: refused with another nonce" \
        'refused "nonce" $alg.public $alg.quote $alg.sig $alg.pcrs 0,7,11 other-nonce.bin'
    flip "$alg.pcrs" 40 "$alg.pcrs-bad"
    check "$alg AK: refused with PCR 7's value altered by one byte" \
        'refused "pcrDigest" $alg.public $alg.quote $alg.sig $alg.pcrs-bad 0,7,11 nonce.bin'
    flip "$alg.sig" -1 "$alg.sig-bad"
    check "$alg AK: refused with the last signature byte flipped" \
        'refused "could not verify" $alg.public $alg.quote $alg.sig-bad $alg.pcrs 0,7,11 nonce.bin'
    flip "$alg.quote" -1 "$alg.quote-bad"
    check "$alg AK: refused with a byte of the quote flipped" \
        '! verify $alg.public $alg.quote-bad $alg.sig $alg.pcrs 0,7,11 nonce.bin >/dev/null 2>&1'
    head -c 64 "$alg.pcrs" >"$alg.pcrs-two"
    check "$alg AK: refused with values for 0,7 only (the quote covers 0,7,11)" \
        'refused "PCR set" $alg.public $alg.quote $alg.sig $alg.pcrs-two 0,7 nonce.bin'
    { cat "$alg.pcrs"; head -c 32 /dev/zero; } >"$alg.pcrs-four"
    check "$alg AK: refused with values for 0,7,11,14" \
        'refused "PCR set" $alg.public $alg.quote $alg.sig $alg.pcrs-four 0,7,11,14 nonce.bin'
    check "$alg AK: refused with the values under other indices (0,7,12)" \
        'refused "PCR set" $alg.public $alg.quote $alg.sig $alg.pcrs 0,7,12 nonce.bin'
    check "$alg AK: refused with the $other AK's key" \
        '! verify $other.public $alg.quote $alg.sig $alg.pcrs 0,7,11 nonce.bin >/dev/null 2>"$T/err" && one_line "$T/err"'
done
tpm2 quote -c rsa.ctx -l sha256:0,7,11 -g sha256 -m plain.quote -s plain.sig -o plain.pcrs -F values >/dev/null ||
    bail "tpm2_quote without nonce failed"
check "a quote without qualifying data (as upstream clients send) verifies when no nonce is required" \
    'verify rsa.public plain.quote plain.sig plain.pcrs 0,7,11 >/dev/null'
check "...and is refused when our nonce is required" \
    'refused "nonce" rsa.public plain.quote plain.sig plain.pcrs 0,7,11 nonce.bin'
# A SHA-1 selection: swtpm's SHA-1 bank may be inactive (then the TPM selects nothing); either
# way the quote must not pass.
tpm2 quote -c rsa.ctx -l sha1:0,7,11 -q "$nonce" -g sha256 -m sha1.quote -s sha1.sig >/dev/null 2>&1 ||
    bail "tpm2_quote of the SHA-1 bank failed"
check "a quote of the SHA-1 bank is refused (only SHA-256 values are checked)" \
    'refused "bank\|no PCR" rsa.public sha1.quote sha1.sig rsa.pcrs 0,7,11 nonce.bin'

# --- (b) lib/tpm quotes, tpm2_checkquote verifier ---
mkdir -p node
timeout -k 5 60 "$KKMS_NODE_ATTEST_TOOL" "$TPM_SOCK" quote node 0,7,11 "$nonce" >/dev/null 2>"$T/err"
rc=$?
check "tpm_quote_pcrs quotes sha256:0,7,11 with the nonce" '[ $rc = 0 ] && [ "$(stat -c %s node/quote.pcrs)" = 96 ]'
# The AK's PEM from its TPMT_PUBLIC (TPM 2.0 Part 2 §12.2.4), decoded here, not by lib/tpm.
python3 - node/ak.public node/ak.pem <<'EOF' || bail "could not convert the AK to PEM"
import struct, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
b = open(sys.argv[1], "rb").read()
typ, name_alg, attrs = struct.unpack(">HHI", b[:8])
assert typ == 0x0001, "not an RSA key"
o = 8
n = struct.unpack(">H", b[o:o + 2])[0]; o += 2 + n                 # authPolicy
sym = struct.unpack(">H", b[o:o + 2])[0]; o += 2 + (4 if sym != 0x0010 else 0)
scheme = struct.unpack(">H", b[o:o + 2])[0]; o += 2 + (2 if scheme != 0x0010 else 0)
bits, exp = struct.unpack(">HI", b[o:o + 6]); o += 6
n = struct.unpack(">H", b[o:o + 2])[0]
modulus = int.from_bytes(b[o + 2:o + 2 + n], "big")
assert o + 2 + n == len(b) and n * 8 == bits
key = rsa.RSAPublicNumbers(exp or 65537, modulus).public_key()
open(sys.argv[2], "wb").write(key.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
EOF
checkquote() { tpm2_checkquote -u node/ak.pem -m node/quote.attest -s node/quote.sig -l sha256:0,7,11 -g sha256 "$@"; }
check "tpm2_checkquote verifies lib/tpm's quote with the nonce and its PCR values" \
    'checkquote -f node/quote.pcrs -q "$nonce" >/dev/null 2>"$T/err"'
check "tpm2_checkquote refuses it with another nonce" \
    '! checkquote -f node/quote.pcrs -q "$(xxd -p -c 64 other-nonce.bin)" >/dev/null 2>&1'
flip node/quote.pcrs 70 node/quote.pcrs-bad
check "tpm2_checkquote refuses it with PCR 11's value altered" \
    '! checkquote -f node/quote.pcrs-bad -q "$nonce" >/dev/null 2>&1'
check "lib/tpm's PCR values are tpm2_quote's for the same PCRs" 'cmp -s node/quote.pcrs rsa.pcrs'
check "attest_verify_quote accepts lib/tpm's quote too" \
    'verify node/ak.public node/quote.attest node/quote.sig node/quote.pcrs 0,7,11 nonce.bin >/dev/null'

tpm2 getcap handles-transient >handles || true
check "no transient handle left behind" '[ ! -s handles ]'

done_testing
