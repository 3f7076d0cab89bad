#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Captures the real TPM structures tests/unit/test_attest.c and the fuzz seeds use, from swtpm with
# tpm2-tools (kept for reference; the files in swtpm/ and tests/fuzz/corpus/tpm_structs are its
# output). Run from anywhere:
#   tests/data/attest/capture_swtpm.sh && python3 tests/data/attest/make_vectors.py >tests/data/attest/vectors.txt
# (the MakeCredential vectors use the captured AK's Name, so they are remade after a capture).
# AKs are made the way go-attestation's NewAK does (docs/tpm.md §4): an SRK-style parent, then
# TPM2_Create + TPM2_Load + TPM2_CertifyCreation signed by the AK itself.
#   ek-rsa.public             TPMT_PUBLIC of the RSA EK; ek-rsa.pem its SPKI
#   ak-{rsa,ecc,rsa-g1}.*     public (TPMT_PUBLIC), cdata (TPMS_CREATION_DATA), attest (TPMS_ATTEST),
#                             sig (TPMT_SIGNATURE), name (Name as tpm2_load prints it);
#                             rsa-g1 has G1's attributes 0x00050072 (no noDA)
#   quote-rsa.*, quote-ecc.*  attest (TPMS_ATTEST of TPM2_Quote over sha256:0,7,11 with nonce),
#                             sig (TPMT_SIGNATURE), pcrs (the 3 PCR values, concatenated), nonce
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=$root/tests/data/attest/swtpm
export KAIROS_KMS=${KAIROS_KMS:-/bin/true} KKMS_TEST_TMP=${KKMS_TEST_TMP:-/tmp/kkms-capture}
. "$root/tests/lib/common.sh"
. "$root/tests/lib/swtpm.sh"
swtpm_start "$(golden_state node-a ekcert)"
cd "$T"
strip2() { tail -c +3 "$1" >"$2"; }   # TPM2B_* file -> its contents

tpm2 createek -c ek.ctx -G rsa -u ek.tss -f tss >/dev/null
strip2 ek.tss "$out/ek-rsa.public"
tpm2 readpublic -c ek.ctx -o "$out/ek-rsa.pem" -f pem >/dev/null
tpm2 createprimary -C o -g sha256 -G rsa2048:null:aes128cfb \
    -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda' -c srk.ctx >/dev/null
tpm2 pcrextend "7:sha256=$(printf 'kairos-kms capture' | sha256sum | cut -d' ' -f1)"
printf 'server-nonce-0123456789abcdef' >"$out/quote.nonce"

for kind in rsa ecc rsa-g1; do
    attrs='fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda'
    case $kind in
    rsa) alg=rsa2048:rsassa-sha256:null ;;
    ecc) alg=ecc256:ecdsa-sha256:null ;;
    rsa-g1) alg=rsa2048:rsassa-sha256:null attrs=${attrs%|noda} ;;   # docs/upstream.md §9.1: G1 AKs lack noDA
    esac
    tpm2 create -C srk.ctx -g sha256 -G "$alg" -a "$attrs" \
        -u ak.pub -r ak.priv --creation-data cd.bin -t ticket.bin -d chash.bin >/dev/null
    tpm2 load -C srk.ctx -u ak.pub -r ak.priv -c ak.ctx -n "$out/ak-$kind.name" >/dev/null
    tpm2 certifycreation -C ak.ctx -c ak.ctx -d chash.bin -t ticket.bin -g sha256 \
        -o "$out/ak-$kind.sig" --attestation "$out/ak-$kind.attest" >/dev/null
    strip2 ak.pub "$out/ak-$kind.public"
    strip2 cd.bin "$out/ak-$kind.cdata"
    [ "$kind" = rsa-g1 ] && continue
    tpm2 quote -c ak.ctx -l sha256:0,7,11 -q "$(xxd -p -c256 "$out/quote.nonce")" -g sha256 \
        -m "$out/quote-$kind.attest" -s "$out/quote-$kind.sig" >/dev/null
    tpm2 pcrread sha256:0,7,11 -o "$out/quote-$kind.pcrs" >/dev/null
done
chmod 644 "$out"/*
ls -l "$out"

# Fuzz seeds (tests/fuzz/fuzz_tpm_structs.c): each structure raw, and the framed sets the harness
# cuts into parts (u16be length + bytes): AK parameters, quotes with PCR values and nonce, a Name.
python3 - "$out" "$root/tests/fuzz/corpus/tpm_structs" <<'PY'
import os, shutil, struct, sys
src, dst = sys.argv[1:]
rd = lambda n: open(os.path.join(src, n), "rb").read()
frame = lambda *parts: b"".join(struct.pack(">H", len(p)) + p for p in parts)
os.makedirs(dst, exist_ok=True)
for f in os.listdir(src):
    if f.endswith((".public", ".cdata", ".attest", ".sig")):
        shutil.copy(os.path.join(src, f), os.path.join(dst, "raw-" + f))
for k in ("rsa", "ecc", "rsa-g1"):
    with open(os.path.join(dst, "framed-ak-" + k), "wb") as f:
        f.write(frame(rd(f"ak-{k}.public"), rd(f"ak-{k}.cdata"), rd(f"ak-{k}.attest"), rd(f"ak-{k}.sig")))
for k in ("rsa", "ecc"):
    with open(os.path.join(dst, "framed-quote-" + k), "wb") as f:
        f.write(frame(rd(f"ak-{k}.public"), rd(f"quote-{k}.attest"), rd(f"quote-{k}.sig"), rd(f"quote-{k}.pcrs"),
                      rd("quote.nonce")))
with open(os.path.join(dst, "framed-name"), "wb") as f:
    f.write(frame(rd("ak-rsa.name")))
with open(os.path.join(dst, "raw-pcr-selection"), "wb") as f:
    f.write(bytes([0, 0, 0, 1, 0, 0x0B, 3, 0x81, 0x08, 0]))  # TPML_PCR_SELECTION sha256:0,7,11
PY
done_testing
