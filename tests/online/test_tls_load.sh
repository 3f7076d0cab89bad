#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Online mode over TLS (a CA-signed certificate, a pinned one, a wrong one), and 20 swtpm nodes
# asking our KMS at once. Everything on 127.0.0.1; every loop bounded.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/swtpm.sh"
. "$(dirname "$0")/../lib/kms.sh"
require openssl
NODES=20

# ---- certificates made here with openssl ----
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 -subj /CN=kkms-test-ca \
    >/dev/null 2>&1 || bail "openssl could not make a CA"
openssl req -newkey rsa:2048 -nodes -keyout "$T/srv.key" -out "$T/srv.csr" -subj /CN=127.0.0.1 >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$T/ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days 2 -extfile "$T/ext" \
    -out "$T/srv.pem" >/dev/null 2>&1 || bail "openssl could not sign the server certificate"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/other.key" -out "$T/other.pem" -days 2 -subj /CN=127.0.0.1 \
    >/dev/null 2>&1

swtpm_start "$(golden_state node-a ekcert)"
SOCK_A=$TPM_SOCK
HASH_A=$(node_hash "$SOCK_A") || bail "tpm-hash failed"
printf %s 'tls-static-passphrase' >"$T/static"
run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$HASH_A" --label COS_PERSISTENT \
    --passphrase-file "$T/static"
check "register --passphrase-file: exit 0" '[ "$rc" = 0 ]'
check "...the passphrase is stored in DIR but not echoed anywhere" '! grep -q tls-static "$T/out" "$T/err"'

kms_start --tls-cert "$T/srv.pem" --tls-key "$T/srv.key"
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT --certificate "$T/ca.pem"
check "TLS with the CA as certificate (a file): served" '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = tls-static-passphrase ]'
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT --certificate "$(cat "$T/srv.pem")"
check "TLS with the server's own certificate pinned (PEM text, as in the Kairos config): served" \
    '[ "$rc" = 0 ] && [ "$(cat "$T/out")" = tls-static-passphrase ]'
start=$(date +%s%N)
node_get "$T/out" "$T/err" rc "$SOCK_A" COS_PERSISTENT --certificate "$T/other.pem"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "a wrong certificate: exit 1, says the certificate failed" '[ "$rc" = 1 ] && grep -qi "certificate" "$T/err" && [ ! -s "$T/out" ]'
check "...at once, without the retries of a network failure (${ms} ms)" '! grep -q "retrying" "$T/err"'
kms_stop

# ---- 20 nodes at once ----
kms_start
pids=()
for i in $(seq $NODES); do
    swtpm_start "$(golden_state load-$i plain)"
    sock[$i]=$TPM_SOCK
    h=$(node_hash "$TPM_SOCK") || bail "tpm-hash of node $i failed"
    run_kkms "$T/out" "$T/err" rc challenger register --db "$DB" --tpm-hash "$h" --label COS_PERSISTENT
done
start=$(date +%s)
for i in $(seq $NODES); do
    timeout -k 5 120 "$KAIROS_KMS" discovery-challenger --tpm-device "${sock[$i]}" get --protocol g1 \
        --partition-label COS_PERSISTENT --challenger-server "$KMS_URL" --timeout 90 >"$T/node-$i.out" 2>"$T/node-$i.err" &
    pids+=($!)
done
fails=0
for i in $(seq $NODES); do wait "${pids[$((i - 1))]}" || fails=$((fails + 1)); done
echo "# $NODES nodes served in $(( $(date +%s) - start )) s"
check "$NODES swtpm nodes at once: every one gets a passphrase" '[ "$fails" = 0 ]'
check "...each a different one" '[ "$(for f in "$T"/node-*.out; do cat "$f"; echo; done | sort -u | wc -l)" = "$NODES" ]'
check "...the KMS stored $NODES Secrets" '[ "$(grep -l generated_by "$DB"/* | wc -l)" = "$NODES" ]'
for i in 1 2 3; do
    node_get "$T/again" "$T/err" rc "${sock[$i]}" COS_PERSISTENT
    check "node $i gets the same passphrase again" 'cmp -s "$T/again" "$T/node-$i.out"'
done
run_kkms "$T/out" "$T/err" rc --list
check "the KMS is still up" 'kill -0 $KMS_PID'

done_testing
