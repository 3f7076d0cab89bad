#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# TLS (lib/crypto/tls.c under lib/net) with certificates made by openssl at test time: a CA and
# a server certificate it signed, a self-signed one, one for another name, and an unrelated CA.
# The configured `certificate` may be the CA or the server's own certificate (docs/upstream.md §5.3);
# a refused certificate fails at once with a message naming the reason. Python's ssl module is
# the independent TLS peer in both directions.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/lib.sh"
require openssl

mk() { openssl "$@" >>"$T/openssl.log" 2>&1 || bail "openssl $1 failed: $(tail -n 3 "$T/openssl.log")"; }
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
mk req -x509 "${ec[@]}" -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 -subj /CN=kkms-test-ca
mk req -x509 "${ec[@]}" -keyout "$T/other-ca.key" -out "$T/other-ca.pem" -days 2 -subj /CN=other-ca
mk req "${ec[@]}" -keyout "$T/srv.key" -out "$T/srv.csr" -subj /CN=localhost
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$T/san.ext"
mk x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -out "$T/srv.pem" -days 2 -extfile "$T/san.ext"
mk req "${ec[@]}" -keyout "$T/name.key" -out "$T/name.csr" -subj /CN=kms.test
printf 'subjectAltName=DNS:kms.test\n' >"$T/name.ext"
mk x509 -req -in "$T/name.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -out "$T/name.pem" -days 2 -extfile "$T/name.ext"
mk req -x509 -newkey rsa:2048 -nodes -keyout "$T/self.key" -out "$T/self.pem" -days 2 -subj /CN=kms -addext subjectAltName=DNS:kms

start_server ca --tls "$T/srv.pem" "$T/srv.key"
CA_PORT=$PORT
client --cert "$T/ca.pem" ws "wss://127.0.0.1:$CA_PORT/echo" send:hi recv >"$T/c1.txt" 2>"$T/c1.err"
check "CA-signed server, CA configured, IP address in subjectAltName" 'has "$T/c1.txt" "recv text 2 hi"'
client --cert "$T/ca.pem" ws "wss://localhost:$CA_PORT/echo" send:hi recv >"$T/c2.txt" 2>"$T/c2.err"
check "CA-signed server, host name, every address of localhost tried" 'has "$T/c2.txt" "recv text 2 hi"'
client --cert "$T/srv.pem" ws "wss://127.0.0.1:$CA_PORT/echo" send:pin recv >"$T/c3.txt" 2>"$T/c3.err"
check "the server's own (CA-signed) certificate configured: pinned, accepted" 'has "$T/c3.txt" "recv text 3 pin"'
start=$(date +%s%N)
client --cert "$T/other-ca.pem" ws "wss://127.0.0.1:$CA_PORT/echo" send:x recv >"$T/c4.txt" 2>"$T/c4.err"
rc=$?
elapsed=$((($(date +%s%N) - start) / 1000000))
diag <"$T/c4.err"
check "wrong CA: exit 3 (do not retry) in ${elapsed} ms" '[ $rc = 3 ] && [ $elapsed -lt 2000 ]'
check "wrong CA: one line naming the peer and the reason" \
    'grep -q "^net_client: wss://127.0.0.1:$CA_PORT/echo: certificate verify failed: not signed by the configured CA" "$T/c4.err" && [ "$(wc -l <"$T/c4.err")" = 1 ]'
client ws "wss://127.0.0.1:$CA_PORT/echo" send:x recv >"$T/c5.txt" 2>"$T/c5.err"
rc=$?
check "no certificate configured: system CAs only, refused" '[ $rc = 3 ] && has "$T/c5.err" "certificate verify failed: not signed by a trusted CA"'
client --cert "$T/ca.pem" http GET "https://127.0.0.1:$CA_PORT/healthz" >"$T/c6.txt" 2>"$T/c6.err"
check "our HTTP client over TLS" 'has "$T/c6.txt" "status 200"'

peer client "$CA_PORT" echo --tls-ca "$T/ca.pem" --host localhost >"$T/py.txt" 2>&1
check "Python ssl client against our TLS server" 'has "$T/py.txt" "handshake ok" && has "$T/py.txt" "fragmented binary ok" && has "$T/py.txt" "close close 1000"'
out=$(peer probe "$CA_PORT" bad-request-line 2>&1)
check "plain HTTP sent to the TLS port: dropped ($out)" '[[ "$out" == "bad-request-line eof"* ]]'
client --cert "$T/ca.pem" http GET "https://localhost:$CA_PORT/healthz" >"$T/c7.txt" 2>"$T/c7.err"
diag <"$T/c7.err"
check "the TLS server still serves" 'has "$T/c7.txt" "status 200"'

start_server self --tls "$T/self.pem" "$T/self.key"
client --cert "$T/self.pem" ws "wss://127.0.0.1:$PORT/echo" send:self recv >"$T/s1.txt" 2>"$T/s1.err"
check "self-signed RSA server, its certificate configured: accepted (name not checked when pinned)" \
    'has "$T/s1.txt" "recv text 4 self"'
client --cert "$T/ca.pem" ws "wss://127.0.0.1:$PORT/echo" send:x >"$T/s2.txt" 2>"$T/s2.err"
rc=$?
check "self-signed server, CA configured: refused" '[ $rc = 3 ] && has "$T/s2.err" "certificate verify failed"'

start_server name --tls "$T/name.pem" "$T/name.key"
client --cert "$T/ca.pem" ws "wss://127.0.0.1:$PORT/echo" send:x >"$T/n1.txt" 2>"$T/n1.err"
rc=$?
check "certificate for another name: refused, saying so" \
    '[ $rc = 3 ] && has "$T/n1.err" "certificate is not valid for host 127.0.0.1"'
client --cert "$T/ca.pem" --host "kms.test:$PORT" ws "wss://127.0.0.1:$PORT/echo" send:mdns recv >"$T/n2.txt" 2>"$T/n2.err"
check "Host override (mDNS): its name is the TLS server name" 'has "$T/n2.txt" "recv text 4 mdns"'

start_peer_server pytls server --tls "$T/srv.pem" "$T/srv.key"
client --cert "$T/ca.pem" ws "wss://127.0.0.1:$PEER_PORT/getPass" recv bsend:answer recv recv >"$T/p1.txt" 2>"$T/p1.err"
diag <"$T/p1.err"
check "our client against a Python ssl server" \
    'has "$T/p1.txt" "\"masked\": true, \"pong\": true" && has "$T/p1.txt" "recv closed 1006"'

echo "not a key" >"$T/bad.key"
timeout 10 "$NET_SERVER" --tls "$T/srv.pem" "$T/bad.key" >"$T/b.out" 2>"$T/b.err"
rc=$?
check "server with a bad key file: exits with the file named" '[ $rc = 1 ] && has "$T/b.err" "$T/bad.key: not a PEM private key"'
timeout 10 "$NET_SERVER" --tls "$T/srv.pem" "$T/name.key" >"$T/b.out" 2>"$T/b.err"
check "server with a key of another certificate: refused" 'has "$T/b.err" "does not match the certificate"'
stop_server name
sanitizers_clean
done_testing
