#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Keep-alive cannot hold a connection forever: at most 100 requests per connection (the 100th
# answer says Connection: close), a request trickled a byte at a time still ends at the request
# deadline (10 s), and a connection lives 120 s at most. Before the fix a connection served
# requests for as long as its peer sent them.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kms.sh"
. "$(dirname "$0")/net_lib.sh"

kms_start
attack keepalive 127.0.0.1 "$KMS_PORT" --src 127.0.0.2 --requests 150 --seconds 5 >"$T/ka.out" 2>&1
diag <"$T/ka.out"
check "150 pipelined keep-alive requests: 100 answered, the last with Connection: close, then closed" \
    'grep "^responses 100 closed yes last-close yes" "$T/ka.out" >/dev/null'

attack trickle 127.0.0.1 "$KMS_PORT" --src 127.0.0.2 --seconds 30 >"$T/trickle.out" 2>&1
diag <"$T/trickle.out"
read -r _ secs _ status <"$T/trickle.out"
check "a request trickled byte by byte is cut at the request deadline with 408 (not extended by each byte)" \
    '[ "$status" = 408 ] && [ "${secs%.*}" -ge 9 ] && [ "${secs%.*}" -le 14 ]'

attack probe 127.0.0.1 "$KMS_PORT" --src 127.0.0.1 >"$T/probe" 2>&1
check "the KMS still serves" 'grep "^status 200" "$T/probe" >/dev/null'
check "the KMS's --help states the keep-alive limits" \
    '"$KAIROS_KMS" challenger --help | grep "at most 100" >/dev/null'
done_testing
