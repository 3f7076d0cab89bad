#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# WebSocket interoperability: an independent Python RFC 6455 peer against our server and our
# client, and our client against our server, including the G1 multi-step exchange
# (docs/protocol-g1.md §4 and docs/upstream.md §9.12: fragmentation, no close frame, canonical header names).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/lib.sh"

start_server srv --answer-ms 1500
URL=ws://127.0.0.1:$PORT

# --- the Python client against our server ---
peer client "$PORT" echo >"$T/echo.txt" 2>&1
diag <"$T/echo.txt"
check "python client: handshake and Sec-WebSocket-Accept" 'has "$T/echo.txt" "handshake ok"'
check "python client: masked text frame echoed" 'has "$T/echo.txt" "text text hello"'
check "python client: ping between fragments answered with an unmasked pong" 'has "$T/echo.txt" "pong ok"'
check "python client: 1024-byte fragments + empty final continuation reassembled" 'has "$T/echo.txt" "fragmented binary ok"'
check "python client: server frames are unmasked" 'has "$T/echo.txt" "server-frames-unmasked ok"'
check "python client: UTF-8 text" 'has "$T/echo.txt" "utf8 text ok"'
check "python client: close 1000 answered with close 1000, then TCP closed" \
    'has "$T/echo.txt" "close close 1000" && has "$T/echo.txt" "after-close eof"'

peer client "$PORT" pipelined >"$T/pipe.txt" 2>&1
check "a frame pipelined with the handshake request is served (gorilla drops it)" \
    'has "$T/pipe.txt" "handshake ok" && has "$T/pipe.txt" "first text early" && has "$T/pipe.txt" "second text bird"'

peer client "$PORT" getpass-go >"$T/g1.txt" 2>&1
diag <"$T/g1.txt"
check "G1-style client: challenge sent after the upgrade (binary)" \
    'has "$T/g1.txt" "challenge binary {\"challenge\":\"COS_PERSISTENT\"}"'
check "G1-style client: canonical Label header and answer with newline accepted" \
    'has "$T/g1.txt" "result binary {\"passphrase\":\"pass-COS_PERSISTENT\",\"error\":\"\"}"'
check "G1-style client: server closes with a close frame after the result" 'has "$T/g1.txt" "then close 1000"'

peer client "$PORT" getpass-silent >"$T/silent.txt" 2>&1
check "a client that never answers is closed at the handler's deadline (1008)" \
    'has "$T/silent.txt" "then close 1008" && awk "/^waited/{exit !(\$2 >= 1.0 && \$2 < 4)}" "$T/silent.txt"'

peer client "$PORT" getpass-nolabel >"$T/nolabel.txt" 2>&1
check "the handler can refuse the upgrade (401 with a body)" \
    'has "$T/nolabel.txt" "status HTTP/1.1 401 Unauthorized" && has "$T/nolabel.txt" "body missing label"'

peer client "$PORT" gone >"$T/gone.txt" 2>&1
sleep 0.3
check "a client closing TCP without a close frame: on_close says peer-gone" \
    'has "$T/gone.txt" "echo text bye" && grep -q "/echo why=peer-gone" "$T/srv.err"'
check "on_close reasons: normal after the G1 exchange, timeout for the silent client" \
    'grep -q "/getPass why=normal" "$T/srv.err" && grep -q "/getPass why=timeout" "$T/srv.err"'

# --- our client against our server ---
client ws "$URL/echo" send:hello recv bsend:bin recv sendn:200000 recv >"$T/c1.txt" 2>"$T/c1.err"
check "our client: text, binary and a 200 KB message round-trip" \
    'has "$T/c1.txt" "recv text 5 hello" && has "$T/c1.txt" "recv binary 3 bin" && has "$T/c1.txt" "recv text 200000 abcdefghij"'
client --header "label: L1" ws "http://127.0.0.1:$PORT/getPass" recv bsend:answer:L1 recv recv >"$T/c2.txt" 2>"$T/c2.err"
check "our client: the multi-step /getPass exchange (http:// URL means ws://)" \
    'has "$T/c2.txt" "recv binary 18 {\"challenge\":\"L1\"}" && has "$T/c2.txt" "pass-L1" && has "$T/c2.txt" "recv closed 1000"'
client ws "$URL/getPass" recv >"$T/c3.txt" 2>"$T/c3.err"
rc=$?
check "our client: a refused upgrade fails with the status and the body" \
    '[ $rc = 1 ] && has "$T/c3.txt" "error -13" && has "$T/c3.err" "WebSocket upgrade refused: 401 Unauthorized: missing label"'
client ws "$URL/nope" recv >"$T/c4.txt" 2>"$T/c4.err"
check "our client: 404 is -ENOENT" 'has "$T/c4.txt" "error -2" && has "$T/c4.err" "404 Not Found"'
client ws "$URL/big?n=500000" recv recv >"$T/c5.txt" 2>&1
check "our client: a 500 KB server message then the close frame" \
    'has "$T/c5.txt" "recv text 500000" && has "$T/c5.txt" "recv closed 1000"'
client ws "$URL/big?n=3000000" recv >"$T/c6.txt" 2>"$T/c6.err"
check "our client: a message over 1 MiB is refused" 'has "$T/c6.err" "message larger than the limit"'
start=$(date +%s%N)
client --timeout-ms 1000 --header "label: L2" ws "$URL/getPass" recv recv >"$T/c7.txt" 2>"$T/c7.err"
elapsed=$((($(date +%s%N) - start) / 1000000))
check "our client: the total deadline bounds a silent server (${elapsed} ms)" \
    'has "$T/c7.err" "timed out" && [ "$elapsed" -lt 3000 ]'
client ws "ws://127.0.0.1:1/x" recv >"$T/c8.txt" 2>"$T/c8.err"
check "our client: connection refused names the address" 'has "$T/c8.err" "cannot connect: 127.0.0.1:1: Connection refused"'
client ws "ws://no-such-host.invalid/x" recv >"$T/c9.txt" 2>"$T/c9.err"
check "our client: an unresolvable name fails with -ENXIO" 'has "$T/c9.txt" "error -6" && has "$T/c9.err" "cannot resolve no-such-host.invalid"'
client --header "bad name: x" ws "$URL/echo" >"$T/c10.txt" 2>"$T/c10.err"
check "our client: header injection refused" 'has "$T/c10.err" "cannot be sent"'

# --- our client against the Python gorilla-like server ---
for frag in gorilla 1024; do
    start_peer_server "gor-$frag" server --frag "$frag"
    client --header "Authorization: Bearer TPMabc" --header "label: COS_PERSISTENT" --header "name: vda5" \
        --header "uuid: " --host kms.local:8082 \
        ws "ws://127.0.0.1:$PEER_PORT/getPass" recv bsend:answer recv recv >"$T/gor-$frag.txt" 2>"$T/gor-$frag.c.err"
    diag <"$T/gor-$frag.c.err"
    check "vs Python server ($frag fragments): our headers arrive (Host override, empty uuid)" \
        'has "$T/gor-$frag.txt" "\"host\": \"kms.local:8082\"" && has "$T/gor-$frag.txt" "\"label\": \"COS_PERSISTENT\"" && has "$T/gor-$frag.txt" "\"uuid\": \"\"" && has "$T/gor-$frag.txt" "\"authorization\": \"Bearer TPMabc\""'
    check "vs Python server ($frag fragments): fragmented messages reassembled" \
        'grep -q "^recv binary 3[0-9][0-9][0-9] " "$T/gor-$frag.txt" && grep -q "^recv text 15[0-9][0-9] " "$T/gor-$frag.txt"'
    check "vs Python server ($frag fragments): our frames masked, its ping answered" \
        'has "$T/gor-$frag.txt" "\"got\": \"answer\", \"kind\": \"binary\", \"masked\": true, \"pong\": true"'
    check "vs Python server ($frag fragments): TCP closed without a close frame is a clean end (1006)" \
        'has "$T/gor-$frag.txt" "recv closed 1006"'
done
client ws "ws://127.0.0.1:$PEER_PORT/refuse" recv >"$T/ref.txt" 2>"$T/ref.err"
check "vs Python server: a 401 shows its body (docs/upstream.md §5.3)" \
    'has "$T/ref.err" "401 Unauthorized: no TPM Hash found for abc"'
client ws "ws://127.0.0.1:$PEER_PORT/badaccept" recv >"$T/acc.txt" 2>"$T/acc.err"
check "vs Python server: a wrong Sec-WebSocket-Accept is refused" 'has "$T/acc.err" "wrong Sec-WebSocket-Accept"'

start_peer_server hole blackhole
start=$(date +%s%N)
client --connect-timeout-ms 500 ws "ws://127.0.0.1:$PEER_PORT/x" recv >"$T/hole.txt" 2>"$T/hole.err"
elapsed=$((($(date +%s%N) - start) / 1000000))
diag <"$T/hole.err"
check "connect timeout: a port that never answers fails after the connect timeout (${elapsed} ms)" \
    'grep -qE "(Connection|Operation) timed out" "$T/hole.err" && [ "$elapsed" -ge 400 ] && [ "$elapsed" -lt 2500 ]'

client http GET "http://127.0.0.1:$PORT/healthz" >"$T/health.txt" 2>&1
diag <"$T/health.txt"
check "the server is still serving" 'has "$T/health.txt" "status 200"'
stop_server srv
sanitizers_clean
done_testing
