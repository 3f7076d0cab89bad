#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Measured-boot local mode on LUKS2 image files with a swtpm: systemd-tpm2 tokens read and written
# both ways with Debian's systemd (v252) and checked by an independent tpm2-tools sequence and a
# Python policy digest; PCR changes, PINs, recovery keys, reseal and bad tokens. This host has no
# device-mapper: systemd-cryptsetup's last step fails, so its acceptance is read from its log.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
require cryptsetup systemd-cryptenroll python3 tpm2_createprimary tpm2_unseal tpm2_pcrextend base64 xxd

# ck TITLE CONDITION [LOG]: check, and on failure show LOG (default: the last stderr)
ck() { if eval "$2"; then ok "$1"; else not_ok "$1"; diag <"${3:-$T/err}"; fi; }
swtpm_start "$(golden_state plain plain)"
kk() { run_kkms "$T/out" "$T/err" rc kcrypt "$@" --tpm-device "$TPM_SOCK"; }
printf 'install-pass' >"$T/pw"
newimg() { # newimg NAME: a LUKS2 image file with the passphrase of $T/pw in keyslot 0
    truncate -s 20M "$T/$1"
    cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        "$T/$1" "$T/pw" || bail "luksFormat $1 failed"
}
hdr() { head -c 16M "$1" | sha256sum; } # the LUKS2 metadata and keyslots
token_json() { cryptsetup token export --token-id "$2" "$1"; }
tokens_of() { cryptsetup luksDump "$1" | grep -c ": $2\$"; }
# make_token NAME ALG PIN [JSON]: $T/NAME.json, a systemd-tpm2 token (keyslot 1, PCR 7, sha256 bank)
# for the object $T/NAME.priv + .pub made by tpm2-tools under an ALG (ecc, rsa) primary with policy
# $T/NAME.policy; PIN true or false; the members of the JSON object added after.
make_token() {
    python3 - "$T" "$@" <<'EOF'
import base64, json, sys
t, name, alg, pin = sys.argv[1:5]
blob = open(f"{t}/{name}.priv", "rb").read() + open(f"{t}/{name}.pub", "rb").read()
tok = {"type": "systemd-tpm2", "keyslots": ["1"], "tpm2-blob": base64.b64encode(blob).decode(),
       "tpm2-pcrs": [7], "tpm2-pcr-bank": "sha256", "tpm2-primary-alg": alg,
       "tpm2-policy-hash": open(f"{t}/{name}.policy", "rb").read().hex(), "tpm2-pin": pin == "true"}
tok.update(json.loads(sys.argv[5]) if len(sys.argv) > 5 else {})
json.dump(tok, open(f"{t}/{name}.json", "w"))
EOF
}
pcr7() { tpm2 pcrread sha256:7 -o "$T/pcr7.bin" >/dev/null && xxd -p -c 64 "$T/pcr7.bin"; }

# ---- 1. a token written by Debian's systemd-cryptenroll opens with kcrypt ----
newimg sd.img
PASSWORD=install-pass timeout 60 systemd-cryptenroll --tpm2-device="swtpm:path=$TPM_SOCK" --tpm2-pcrs=7 \
    "$T/sd.img" >"$T/enroll.log" 2>&1
ck "systemd-cryptenroll --tpm2-pcrs=7 enrolled a token" '[ "$(tokens_of "$T/sd.img" systemd-tpm2)" = 1 ]' "$T/enroll.log"
tpm2 flushcontext -l >/dev/null 2>&1
kk unlock --test "$T/sd.img"
ck "kcrypt unlock --test opens systemd's token" '[ "$rc" = 0 ] && grep -q "token 0 unsealed (PCRs 7); its key opens keyslot 1" "$T/out"' "$T/err"

# ---- 2. a token written by kcrypt enroll ----
newimg k.img
kk enroll "$T/k.img" --tpm2 --tpm-pcrs 7 --unlock-key-file "$T/pw"
ck "kcrypt enroll --tpm2: exit 0, nothing on stdout" '[ "$rc" = 0 ] && [ ! -s "$T/out" ]' "$T/err"
token_json "$T/k.img" 0 >"$T/k.json"
ck "token fields exactly as systemd 252 writes them" \
    'python3 -c "import json,sys
d=json.load(open(sys.argv[1])); assert list(d)==[\"type\",\"keyslots\",\"tpm2-blob\",\"tpm2-pcrs\",\"tpm2-pcr-bank\",\"tpm2-primary-alg\",\"tpm2-policy-hash\",\"tpm2-pin\"] and d[\"keyslots\"]==[\"1\"] and d[\"tpm2-pcrs\"]==[7] and d[\"tpm2-pin\"] is False" "$T/k.json"'
ck "keyslot 1 uses systemd's minimal PBKDF (pbkdf2 sha512, 1000 iterations)" \
    'cryptsetup luksDump "$T/k.img" | sed -n "/^  1: luks2/,/Digests\|^  2:/p" | grep -q "PBKDF:      pbkdf2" && cryptsetup luksDump "$T/k.img" | sed -n "/^  1: luks2/,/Digests\|^  2:/p" | grep -q "Hash:       sha512" && cryptsetup luksDump "$T/k.img" | sed -n "/^  1: luks2/,/Digests\|^  2:/p" | grep -q "Iterations: 1000"'
policy=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['tpm2-policy-hash'])" "$T/k.json")
p7=$(pcr7)
py=$(python3 - "$p7" <<'EOF'
import hashlib, sys
pcr = bytes.fromhex(sys.argv[1])
sel = bytes.fromhex("00000001" "000b" "03" "800000")
print(hashlib.sha256(bytes(32) + bytes.fromhex("0000017f") + sel + hashlib.sha256(pcr).digest()).hexdigest())
EOF
)
ck "tpm2-policy-hash equals Python's PolicyPCR digest of the current PCR 7" '[ -n "$py" ] && [ "$policy" = "$py" ]'

SYSTEMD_LOG_LEVEL=debug SYSTEMD_LOG_TARGET=console timeout 60 /lib/systemd/systemd-cryptsetup attach kkmsmb$$ \
    "$T/k.img" - "tpm2-device=swtpm:path=$TPM_SOCK,headless" >"$T/sdc.log" 2>&1
tpm2 flushcontext -l >/dev/null 2>&1
ck "Debian's systemd-cryptsetup unseals kcrypt's token and its key is taken for keyslot 1" \
    'grep -q "Completed TPM2 key unsealing" "$T/sdc.log" && grep -q "Activating volume kkmsmb$$ \[keyslot 1\] using passphrase" "$T/sdc.log" && ! grep -qi "not permitted\|No key available" "$T/sdc.log"' "$T/sdc.log"

# An independent unseal with tpm2-tools: legacy ECC primary, load, PolicyPCR, unseal.
python3 - "$T/k.json" "$T" <<'EOF'
import base64, json, sys
b = base64.b64decode(json.load(open(sys.argv[1]))["tpm2-blob"])
n = 2 + int.from_bytes(b[:2], "big")
open(sys.argv[2] + "/priv", "wb").write(b[:n])
open(sys.argv[2] + "/pub", "wb").write(b[n:])
EOF
tpm2 flushcontext -s >/dev/null 2>&1 # what systemd-cryptsetup's failed attach left loaded
# tpm2-tools context files; no resource manager, so transients are flushed between steps (3 slots)
(
    export TPM2TOOLS_TCTI="swtpm:path=$TPM_SOCK"
    timeout 30 tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb \
        -a 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth' -c "$T/p.ctx" && timeout 30 tpm2_flushcontext -t &&
        timeout 30 tpm2_load -Q -C "$T/p.ctx" -u "$T/pub" -r "$T/priv" -c "$T/o.ctx" &&
        timeout 30 tpm2_flushcontext -t &&
        timeout 30 tpm2_startauthsession --policy-session -S "$T/s.ctx" &&
        timeout 30 tpm2_policypcr -Q -S "$T/s.ctx" -l sha256:7 &&
        timeout 30 tpm2_unseal -c "$T/o.ctx" -p session:"$T/s.ctx" >"$T/unsealed"
    rc=$?
    timeout 30 tpm2_flushcontext -t >/dev/null 2>&1; timeout 30 tpm2_flushcontext -s >/dev/null 2>&1
    exit $rc
) 2>"$T/tt.err"
base64 -w0 "$T/unsealed" >"$T/unsealed.b64"
ck "tpm2-tools (legacy primary, load, policypcr, unseal) recovers a key that opens keyslot 1" \
    '[ "$(stat -c %s "$T/unsealed")" = 32 ] && cryptsetup open --test-passphrase --key-slot 1 --key-file "$T/unsealed.b64" "$T/k.img"' "$T/tt.err"

# ---- 3. recovery key ----
kk enroll "$T/k.img" --recovery-key --unlock-key-file "$T/pw"
ck "enroll --recovery-key prints one key on stdout in systemd's format" \
    '[ "$rc" = 0 ] && one_line "$T/out" && grep -Eqx "([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}" "$T/out"'
ck "...with the words on stderr and a systemd-recovery token" \
    'grep -q "secret recovery key" "$T/err" && [ "$(tokens_of "$T/k.img" systemd-recovery)" = 1 ]'
tr -d '\n' <"$T/out" >"$T/rk"
ck "cryptsetup open --test-passphrase accepts the recovery key" \
    'cryptsetup open --test-passphrase --key-file "$T/rk" "$T/k.img"'

# ---- 4. PCR 7 changes: refused, then reseal ----
tpm2 pcrextend 7:sha256=0000000000000000000000000000000000000000000000000000000000000001
kk unlock --test "$T/k.img"
ck "after PCR 7 changed, unlock --test refuses: exit 1, one line naming PCR 7" \
    '[ "$rc" = 1 ] && one_line "$T/err" && grep -q "PCRs 7 (sha256)" "$T/err"' "$T/err"
sed 's/.$/x/' "$T/rk" >"$T/rk-typo"
h=$(hdr "$T/k.img")
kk reseal "$T/k.img" --unlock-key-file "$T/rk-typo"
ck "reseal with a recovery key with a typo: exit 1, volume unchanged" \
    '[ "$rc" = 1 ] && [ "$(hdr "$T/k.img")" = "$h" ] && grep -q "no keyslot accepts" "$T/err"' "$T/err"
kk reseal "$T/k.img" --unlock-key-file "$T/rk"
ck "reseal with the recovery key: exit 0" '[ "$rc" = 0 ] && grep -q "sealed to PCRs 7" "$T/out"' "$T/err"
ck "...leaves exactly one systemd-tpm2 token (and the recovery key)" \
    '[ "$(tokens_of "$T/k.img" systemd-tpm2)" = 1 ] && [ "$(tokens_of "$T/k.img" systemd-recovery)" = 1 ]'
kk unlock --test "$T/k.img"
ck "...and the token works again" '[ "$rc" = 0 ]' "$T/err"
kk reseal "$T/k.img"
ck "reseal with a working token needs no key: exit 0, still one token" \
    '[ "$rc" = 0 ] && [ "$(tokens_of "$T/k.img" systemd-tpm2)" = 1 ]' "$T/err"

# ---- 4b. the recovery prompt on a terminal (kcrypt_prompt_key; at boot the same on the console) ----
tpm2 pcrextend 7:sha256=0000000000000000000000000000000000000000000000000000000000000002
tty_reseal() { # tty_reseal ANSWERS [flags]: kcrypt reseal on a pty answering from the file ANSWERS
    local answers=$1
    shift
    timeout -k 5 70 python3 "$(dirname "$0")/tty_answer.py" "$T/tty.out" "$answers" -- \
        "$KAIROS_KMS" kcrypt reseal "$T/k.img" --tpm-device "$TPM_SOCK" "$@" >/dev/null 2>&1
    rc=$?
    cp "$T/tty.out" "$T/err"
}
printf 'wrong\n%s\nnot-a-key\n' "$(cat "$T/rk-typo")" >"$T/answers-bad"
h=$(hdr "$T/k.img")
tty_reseal "$T/answers-bad"
ck "prompt: three wrong answers, then exit 1 (no loop), the volume unchanged" \
    '[ "$rc" = 1 ] && [ "$(grep -c "try [123] of 3" "$T/tty.out")" = 3 ] && grep -q "three wrong" "$T/tty.out" && [ "$(hdr "$T/k.img")" = "$h" ]'
ck "...the typo'd recovery key is called a typo, and nothing typed is echoed" \
    'grep -q "check for a typo" "$T/tty.out" && ! grep -q "wrong\$\|not-a-key\|$(cut -c1-20 "$T/rk-typo")" "$T/tty.out"'
printf '%s\n' "$(cat "$T/rk")" >"$T/answers-good"
tty_reseal "$T/answers-good"
ck "prompt: the recovery key typed on the terminal reseals (exit 0), not echoed" \
    '[ "$rc" = 0 ] && grep -q "sealed to PCRs 7" "$T/tty.out" && ! grep -q "$(cut -c1-20 "$T/rk")" "$T/tty.out"'
tpm2 pcrextend 7:sha256=0000000000000000000000000000000000000000000000000000000000000003
: >"$T/answers-none"
start=$(date +%s)
tty_reseal "$T/answers-none" --prompt-timeout 2
ck "prompt: nothing typed within --prompt-timeout 2: exit 1 within a few seconds" \
    '[ "$rc" = 1 ] && grep -q "no recovery key typed within 2 s" "$T/tty.out" && [ $(( $(date +%s) - start )) -lt 20 ]'
kk reseal "$T/k.img" --unlock-key-file "$T/rk"

# ---- 5. PIN ----
newimg pin.img
printf '1234\n' >"$T/pin"; printf '9999\n' >"$T/badpin"
kk enroll "$T/pin.img" --tpm2 --tpm-pcrs 7 --tpm-pin-file "$T/pin" --unlock-key-file "$T/pw"
ck "enroll with a PIN" '[ "$rc" = 0 ] && token_json "$T/pin.img" 0 | grep -q "\"tpm2-pin\":true"' "$T/err"
kk unlock --test "$T/pin.img" --tpm-pin-file "$T/pin"
ck "right PIN: unsealed" '[ "$rc" = 0 ]' "$T/err"
kk unlock --test "$T/pin.img" --tpm-pin-file "$T/badpin"
ck "wrong PIN: exit 1, one line" '[ "$rc" = 1 ] && one_line "$T/err" && grep -q "wrong PIN" "$T/err"' "$T/err"
kk unlock --test "$T/pin.img" </dev/null
ck "no PIN given and no terminal: exit 1, says to use --tpm-pin-file" \
    '[ "$rc" = 1 ] && grep -q "tpm-pin-file" "$T/err"'

# ---- 5b. a token as systemd >= 254 writes it: persistent SRK parent (tpm2_srk) and salted PIN
# (tpm2_salt), made here with tpm2-tools: SRK from the TCG L-2 ECC template at 0x81000001, the PIN's
# authValue = SHA-256(base64(PBKDF2-HMAC-SHA256(pin, salt, 10000, 32))) computed by Python ----
newimg v257.img
python3 - "$T" <<'EOF'
import base64, hashlib, os, sys
t = sys.argv[1]
salt = os.urandom(32)
auth = hashlib.sha256(base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"1234", salt, 10000, 32))).digest().rstrip(b"\0")
open(t + "/salt.b64", "w").write(base64.b64encode(salt).decode())
open(t + "/auth.hex", "w").write(auth.hex())
secret = os.urandom(32)
open(t + "/v257.secret", "wb").write(secret)
open(t + "/v257.pass", "w").write(base64.b64encode(secret).decode())
EOF
cryptsetup luksAddKey --batch-mode --key-file "$T/pw" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
    "$T/v257.img" "$T/v257.pass"
(
    export TPM2TOOLS_TCTI="swtpm:path=$TPM_SOCK"
    timeout 30 tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb -c "$T/srk.ctx" \
        -a 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda' &&
        timeout 30 tpm2_evictcontrol -Q -C o -c "$T/srk.ctx" 0x81000001 && timeout 30 tpm2_flushcontext -t &&
        timeout 30 tpm2_startauthsession -S "$T/trial.ctx" &&
        timeout 30 tpm2_policypcr -Q -S "$T/trial.ctx" -l sha256:7 &&
        timeout 30 tpm2_policyauthvalue -Q -S "$T/trial.ctx" -L "$T/v257.policy" &&
        timeout 30 tpm2_flushcontext "$T/trial.ctx" &&
        timeout 30 tpm2_create -Q -C 0x81000001 -g sha256 -a 'fixedtpm|fixedparent' -L "$T/v257.policy" \
            -p "hex:$(cat "$T/auth.hex")" -i "$T/v257.secret" -u "$T/v257.pub" -r "$T/v257.priv"
    rc=$?
    timeout 30 tpm2_flushcontext -t >/dev/null 2>&1; timeout 30 tpm2_flushcontext -s >/dev/null 2>&1
    exit $rc
) 2>"$T/v257.err"
make_token v257 ecc true "{\"tpm2_salt\": \"$(cat "$T/salt.b64")\", \"tpm2_srk\": \"$(printf serialized-esys-tr | base64 -w0)\"}"
cryptsetup --disable-external-tokens token import --json-file "$T/v257.json" "$T/v257.img"
kk unlock --test "$T/v257.img" --tpm-pin-file "$T/pin"
ck "a token with tpm2_srk and tpm2_salt (systemd >= 254) opens with the right PIN" '[ "$rc" = 0 ]' "$T/err"
kk unlock --test "$T/v257.img" --tpm-pin-file "$T/badpin"
ck "...and not with a wrong one" '[ "$rc" = 1 ] && grep -q "wrong PIN" "$T/err"'
tpm2 evictcontrol -C o -c 0x81000001 >/dev/null 2>&1

# ---- 5c. "tpm2-primary-alg": "rsa": the object under systemd's legacy RSA-2048 primary (what
# systemd 252 falls back to on TPMs without ECC), made with tpm2-tools ----
newimg rsa.img
head -c 32 /dev/urandom >"$T/rsa.secret"
base64 -w0 "$T/rsa.secret" >"$T/rsa.pass"
cryptsetup luksAddKey --batch-mode --key-file "$T/pw" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
    "$T/rsa.img" "$T/rsa.pass"
(
    export TPM2TOOLS_TCTI="swtpm:path=$TPM_SOCK"
    timeout 30 tpm2_startauthsession -S "$T/trial.ctx" &&
        timeout 30 tpm2_policypcr -Q -S "$T/trial.ctx" -l sha256:7 -L "$T/rsa.policy" &&
        timeout 30 tpm2_flushcontext "$T/trial.ctx" &&
        timeout 60 tpm2_createprimary -Q -C o -g sha256 -G rsa2048:aes128cfb -c "$T/rsaprim.ctx" \
            -a 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth' &&
        timeout 30 tpm2_create -Q -C "$T/rsaprim.ctx" -g sha256 -a 'fixedtpm|fixedparent' -L "$T/rsa.policy" \
            -i "$T/rsa.secret" -u "$T/rsa.pub" -r "$T/rsa.priv"
    rc=$?
    timeout 30 tpm2_flushcontext -t >/dev/null 2>&1; timeout 30 tpm2_flushcontext -s >/dev/null 2>&1
    exit $rc
) 2>"$T/rsa.err"
make_token rsa rsa false
cryptsetup --disable-external-tokens token import --json-file "$T/rsa.json" "$T/rsa.img"
kk unlock --test "$T/rsa.img"
ck "a token sealed under the legacy RSA primary (tpm2-primary-alg rsa) opens" '[ "$rc" = 0 ]' "$T/err"

# ---- 6. bad tokens: one line each, volume unchanged ----
newimg bad.img
kk enroll "$T/bad.img" --tpm2 --tpm-pcrs 7 --unlock-key-file "$T/pw"
ck "enroll of a third volume" '[ "$rc" = 0 ]' "$T/err"
token_json "$T/bad.img" 0 >"$T/good.json"
bad_token() { # bad_token NAME PYTHON-EXPR-ON-d: replaces token 0 by a modified copy
    python3 -c "import json,sys
d=json.load(open(sys.argv[1])); $2; json.dump(d,open(sys.argv[2],'w'))" \
        "$T/good.json" "$T/$1.json"
    cryptsetup --disable-external-tokens token remove --token-id 0 "$T/bad.img"
    cryptsetup --disable-external-tokens token import --token-id 0 --json-file "$T/$1.json" "$T/bad.img"
}
try_bad() { # try_bad TITLE PATTERN (token 0 replaced; volume unchanged by the attempt)
    local h pat=$2
    h=$(hdr "$T/bad.img")
    kk unlock --test "$T/bad.img"
    ck "$1: exit 1, one line, volume unchanged" \
        '[ "$rc" = 1 ] && one_line "$T/err" && grep -q "$pat" "$T/err" && [ "$(hdr "$T/bad.img")" = "$h" ]'
    [ "$rc" = 1 ] && one_line "$T/err" "$T/err"
}
bad_token wrongblob 'import base64; b=bytearray(base64.b64decode(d["tpm2-blob"])); b[60]^=1; d["tpm2-blob"]=base64.b64encode(b).decode()'
try_bad "token with a damaged blob" "sealed object does not load"
bad_token foreign 'd["tpm2-policy-hash"]="00"*32'
try_bad "token with a foreign policy hash" "policy hash is not the sealed object"
bad_token otherslot 'd["keyslots"]=["0"]'
try_bad "token naming a keyslot its key does not open" "keyslot 0 does not accept"
bad_token shard 'd["tpm2-blob"]=[d["tpm2-blob"]]'
try_bad "sharded blob (newer systemd)" "sharded.*not supported"
bad_token pcrlock 'd["tpm2_pcrlock"]=True'
try_bad "pcrlock token" "pcrlock.*not supported"
bad_token unknown 'd["x-unknown"]={"a":[1,2]}; d["tpm2_future"]=7'
kk unlock --test "$T/bad.img"
ck "unknown fields are ignored, as systemd does" '[ "$rc" = 0 ]' "$T/err"

# ---- 7. usage ----
kk enroll "$T/bad.img"
ck "enroll with nothing to add: exit 2" '[ "$rc" = 2 ] && one_line "$T/err"'
kk enroll "$T/bad.img" --tpm2 --tpm-pcrs 7+99
ck "--tpm-pcrs 7+99: exit 2 naming the flag" '[ "$rc" = 2 ] && grep -q -- "--tpm-pcrs" "$T/err"'
kk unlock "$T/pw"
ck "unlock of a file that is not LUKS: exit 1, one line" '[ "$rc" = 1 ] && one_line "$T/err"' "$T/err"

done_testing
