#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# kms-loadgen, the node simulator of bench/, checked by code that is not ours, then run against
# our KMS on 127.0.0.1:
#  (a) a simulated node's TPM hash is openssl's SHA-256 of its EK, and its keys depend on --seed
#      and the node's number only (the same with and without the key cache);
#  (b) credentials made by tpm2_makecredential -T none (tpm2-tools' own MakeCredential, no TPM)
#      for the node's EK and AK Name activate to tpm2's secret; for another EK or Name they do not;
#  (c) register + challenger --db + run: 64 nodes, 16 in flight, 256 G1 exchanges, 0 failed, over
#      plain HTTP and over TLS; unregistered nodes and --protocol g3 fail clearly;
#  (d) 1024 nodes with 1024 exchanges in flight, then 1200 (above the KMS's limit of 1024
#      connections: what it refuses with 503 is retried within --timeout), 0 failed; and a KMS
#      that starts after the nodes (refused connections retried with backoff).
# Keys of the 1024 nodes are generated once (minutes on 2 cores) and cached under
# /var/cache/kairos-kms/loadgen, shared by both builds.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kms.sh"
require tpm2_makecredential openssl python3 xxd cmp
LG=${KKMS_LOADGEN:-}
[ -x "$LG" ] || bail "KKMS_LOADGEN must name the kms-loadgen binary (tests/meson.build sets it)"
SEED=kairos-kms-loadgen-test
cd "$T" || bail "no test directory"
one_line() { [ "$(wc -l <"$1")" -eq 1 ]; }
# json FILE KEY: KEY of the JSON object on the last line of FILE.
json() {
    python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])' "$1" "$2"
}
lg() { timeout -k 5 "${LG_LIMIT:-600}" "$LG" "$@"; }

# ---- (a) ----
lg node-info --seed "$SEED" --node 3 --ek-pem ek3.pem --ek-public ek3.tss >info3 2>err
rc=$?
check "node-info: exit 0, one JSON line" '[ "$rc" = 0 ] && one_line info3'
AK3=$(json info3 ak_name)
check "the TPM hash is openssl's SHA-256 of the EK's DER SubjectPublicKeyInfo" \
    '[ "$(json info3 tpm_hash)" = "$(openssl pkey -pubin -in ek3.pem -outform der | sha256sum | cut -d" " -f1)" ]'
check "the AK Name is SHA-256 (000b) + 32 bytes" '[[ "$AK3" =~ ^000b[0-9a-f]{64}$ ]]'
check "the TPM2B_PUBLIC ends with the EK's modulus (openssl)" \
    '[ "Modulus=$(tail -c 256 ek3.tss | xxd -p -c 256 | tr a-f A-F)" = "$(openssl rsa -pubin -in ek3.pem -noout -modulus)" ]'
lg node-info --seed "$SEED" --node 1 --key-cache "" >info1.nocache 2>/dev/null
lg node-info --seed "$SEED" --node 1 >info1.cache 2>/dev/null
check "keys are a function of the seed: node 1 without the cache equals node 1 from it" \
    '[ -s info1.nocache ] && cmp -s info1.nocache info1.cache'
lg node-info --seed "$SEED-other" --node 1 --key-cache "" >info1.other 2>/dev/null
check "...and another seed gives another node" '[ -s info1.other ] && ! cmp -s info1.other info1.cache'
lg node-info --seed "$SEED" --node 2 --ek-pem ek2.pem --ek-public ek2.tss >info2 2>/dev/null
AK2=$(json info2 ak_name)

# ---- (b) ----
head -c 32 /dev/urandom >secret.bin
tpm2_makecredential -T none -u ek3.tss -s secret.bin -n "$AK3" -o cred.tss >/dev/null 2>&1
check "tpm2_makecredential -T none: a credential for node 3's EK (TPM2B_PUBLIC) and AK Name" '[ -s cred.tss ]'
lg selftest-activate --seed "$SEED" --node 3 --credential-blob cred.tss --out got.tss 2>err
rc=$?
check "...node 3 activates it to tpm2's secret" '[ "$rc" = 0 ] && cmp -s secret.bin got.tss'
tpm2_makecredential -T none -u ek3.pem -G rsa -s secret.bin -n "$AK3" -o cred.pem >/dev/null 2>&1
lg selftest-activate --seed "$SEED" --node 3 --credential-blob cred.pem --out got.pem 2>err
rc=$?
check "...and the same from the EK's PEM" '[ "$rc" = 0 ] && cmp -s secret.bin got.pem'
tpm2_makecredential -T none -u ek2.tss -s secret.bin -n "$AK3" -o cred.ek2 >/dev/null 2>&1
lg selftest-activate --seed "$SEED" --node 3 --credential-blob cred.ek2 --out wrong1 2>err
rc=$?
check "a credential for node 2's EK: refused with one line, nothing written" \
    '[ "$rc" = 1 ] && one_line err && [ ! -e wrong1 ]'
tpm2_makecredential -T none -u ek3.tss -s secret.bin -n "$AK2" -o cred.ak2 >/dev/null 2>&1
lg selftest-activate --seed "$SEED" --node 3 --credential-blob cred.ak2 --out wrong2 2>err
rc=$?
check "a credential bound to node 2's AK Name: the integrity check fails" \
    '[ "$rc" = 1 ] && grep -q "integrity check failed" err && [ ! -e wrong2 ]'

# ---- (c) ----
lg register --db "$DB" --nodes 64 --seed "$SEED" 2>err
rc=$?
check "register 64 nodes: exit 0, one file per node" \
    '[ "$rc" = 0 ] && [ "$(ls "$DB" | grep -c "^loadgen-node-.*\.yaml$")" = 64 ]'
kms_start
"$KAIROS_KMS" challenger list --db "$DB" >list 2>/dev/null
check "the KMS loads all 64 (challenger list)" \
    '[ "$(grep -c "$(json info3 tpm_hash)" list)" = 1 ] && [ "$(grep -c "^loadgen-node-" list)" = 64 ]'
lg run --url "$KMS_URL" --nodes 64 --seed "$SEED" --concurrency 16 --exchanges 256 >run64 2>err64
rc=$?
diag <run64
check "run: 64 nodes, 16 in flight, 256 exchanges: exit 0" '[ "$rc" = 0 ]'
check "...the last line says 256 ok, 0 failed" '[ "$(json run64 ok)" = 256 ] && [ "$(json run64 failed)" = 0 ]'
check "...and the KMS served 256 getPass in its audit log" \
    '[ "$(grep -c "\"action\":\"getPass\",\"outcome\":\"ok\"" "$T/audit.jsonl")" -ge 256 ]'
lg run --url "$KMS_URL" --nodes 8 --seed "$SEED-unregistered" --key-cache "" --concurrency 4 >runbad 2>errbad
rc=$?
check "unregistered nodes: exit 1, 8 failed, refused by the KMS" \
    '[ "$rc" = 1 ] && [ "$(json runbad failed)" = 8 ] && grep -q "refused=8" errbad'
lg run --url "$KMS_URL" --nodes 8 --seed "$SEED" --protocol g3 >/dev/null 2>errg3
rc=$?
check "--protocol g3: exit 2, not supported yet" '[ "$rc" = 2 ] && one_line errg3 && grep -q "not supported yet" errg3'
kms_stop

openssl req -x509 -newkey rsa:2048 -nodes -keyout srv.key -out srv.pem -days 2 -subj /CN=127.0.0.1 \
    -addext 'subjectAltName=IP:127.0.0.1' >/dev/null 2>&1 || bail "openssl could not make a certificate"
kms_start --tls-cert srv.pem --tls-key srv.key
lg run --url "$KMS_URL" --tls-ca srv.pem --nodes 64 --seed "$SEED" --concurrency 16 --exchanges 128 >runtls 2>errtls
rc=$?
diag <runtls
check "over TLS (https, --tls-ca): 128 exchanges, 0 failed" '[ "$rc" = 0 ] && [ "$(json runtls ok)" = 128 ]'
kms_stop

# ---- (d) ----
rm -rf "$DB"
LG_LIMIT=1500 lg register --db "$DB" --nodes 1024 --seed "$SEED" 2>err1024
rc=$?
check "register 1024 nodes: exit 0" '[ "$rc" = 0 ] && [ "$(ls "$DB" | grep -c "^loadgen-node-")" = 1024 ]'
kms_start
lg run --url "$KMS_URL" --nodes 1024 --seed "$SEED" --concurrency 1024 --exchanges 1024 --timeout 500 >run1024 2>err1024
rc=$?
diag <run1024
tail -3 err1024 | diag
check "1024 nodes, 1024 in flight: exit 0, 1024 ok, 0 failed" \
    '[ "$rc" = 0 ] && [ "$(json run1024 ok)" = 1024 ] && [ "$(json run1024 failed)" = 0 ]'
# More in flight than the KMS's 1024 connections: what it refuses (503) is retried.
lg run --url "$KMS_URL" --nodes 1024 --seed "$SEED" --concurrency 1200 --exchanges 1200 --timeout 500 >run1200 2>err1200
rc=$?
diag <run1200
check "1200 in flight, above the KMS's connection limit: exit 0, 0 failed" \
    '[ "$rc" = 0 ] && [ "$(json run1200 failed)" = 0 ]'
kms_stop

# ---- (e) every core: --workers 2, the same 1024 nodes at once from one address ----
kms_start --workers 2 --max-conns-per-peer 1024
check "--workers 2: a second worker process serves the same listener" '[ "$(pgrep -c -P "$KMS_PID")" = 1 ]'
lg run --url "$KMS_URL" --nodes 1024 --seed "$SEED" --concurrency 1024 --exchanges 2048 --timeout 500 >runw2 2>errw2
rc=$?
diag <runw2
check "--workers 2, 1024 in flight, 2048 exchanges: exit 0, 2048 ok, 0 failed" \
    '[ "$rc" = 0 ] && [ "$(json runw2 ok)" = 2048 ] && [ "$(json runw2 failed)" = 0 ]'
child=$(pgrep -P "$KMS_PID")
kms_stop
check "SIGTERM stops both workers" '! kill -0 "$child" 2>/dev/null'

# A KMS that comes up late: refused connections are retried with backoff within --timeout.
PORT=$KMS_PORT
lg run --url "http://127.0.0.1:$PORT" --nodes 64 --seed "$SEED" --concurrency 8 --exchanges 64 --timeout 60 \
    >runlate 2>errlate &
late=$!
on_exit "stop_pid $late"
sleep 2
"$KAIROS_KMS" challenger --db "$DB" --listen "127.0.0.1:$PORT" --audit-log /dev/null 2>>"$T/kms.log" &
late_kms=$!
on_exit "stop_pid $late_kms"
wait "$late"
rc=$?
diag <runlate
check "a KMS started 2 s after the nodes: exit 0, 64 ok, with retries" \
    '[ "$rc" = 0 ] && [ "$(json runlate ok)" = 64 ] && [ "$(json runlate retries)" -gt 0 ]'
stop_pid "$late_kms"

done_testing
