#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# HTTP/1.1: our server against a raw Python client (keep-alive, pipelining, exact routes), and
# our HTTP client against our server and against a Python server (Content-Length, chunked,
# read-to-EOF and 100 Continue answers).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/lib.sh"

start_server srv
peer client "$PORT" http >"$T/http.txt" 2>&1
diag <"$T/http.txt"
check "two pipelined requests on one keep-alive connection" \
    'has "$T/http.txt" "pipelined 0 HTTP/1.1 200 OK ok" && has "$T/http.txt" "pipelined 1 HTTP/1.1 200 OK ok"'
check "POST body and Content-Type echoed on the same connection" 'has "$T/http.txt" "post HTTP/1.1 200 OK a/b hello"'
check "routes are exact: a trailing slash is 404, not a redirect (#1386)" \
    'has "$T/http.txt" "path /healthz/ HTTP/1.1 404 Not Found"'
check "unknown paths are 404" 'has "$T/http.txt" "path /nope HTTP/1.1 404" && has "$T/http.txt" "path //healthz HTTP/1.1 404"'

client http GET "http://127.0.0.1:$PORT/healthz" >"$T/c1.txt" 2>&1
check "our HTTP client: GET" 'has "$T/c1.txt" "status 200" && has "$T/c1.txt" "body 3 ok."'
client http POST "http://127.0.0.1:$PORT/echo" "a posted body" >"$T/c2.txt" 2>&1
check "our HTTP client: POST with a body" 'has "$T/c2.txt" "body 13 a posted body"'
client http POST "http://127.0.0.1:$PORT/healthz" x >"$T/c3.txt" 2>&1
check "our HTTP client: any status is an answer (405 here)" 'has "$T/c3.txt" "status 405"'

start_peer_server hs http-server
for path in plain chunked eof continue; do
    client http POST "http://127.0.0.1:$PEER_PORT/$path" "data-$path" >"$T/p-$path.txt" 2>"$T/p-$path.err"
    diag <"$T/p-$path.err"
    check "our HTTP client vs Python server: $path body" 'grep -q "^body [0-9]* POST /$path data-$path" "$T/p-$path.txt"'
done
check "our HTTP client: 100 Continue skipped, the final status kept" 'has "$T/p-continue.txt" "status 201"'
client http GET "http://127.0.0.1:$PEER_PORT/nocontent" >"$T/p-nocontent.txt" 2>"$T/p-nocontent.err"
diag <"$T/p-nocontent.err"
check "our HTTP client: a 204 with a Content-Length has an empty body (found by fuzz_http_client)" \
    'has "$T/p-nocontent.txt" "status 204" && has "$T/p-nocontent.txt" "body 0"'
stop_server srv
sanitizers_clean
done_testing
