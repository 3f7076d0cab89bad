#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Spoofed mDNS answers against the node's resolver (namespaces as tests/mdns/lib.sh builds them):
# our responder in B announces kms.local at 10.199.0.2; a spoofer in B answers every query about
# kms.local too, from an off-link source address (10.200.0.9, reachable because A does no
# reverse-path filtering), from port 5354, about another name with kms.local's address slipped in
# as an additional record, with a wrong id, and with goodbyes (TTL 0) for the real address from
# another host. The resolver in A must ignore every spoof and still find the real responder.
# Needs root (network namespaces).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../mdns/lib.sh"
netns_up

ONLINK=10.199.0.9 OFFLINK=10.200.0.9
ip -n "$NS_B" addr add "$ONLINK/24" dev vb && ip -n "$NS_B" addr add "$OFFLINK/32" dev vb ||
    bail "could not add the spoofer's addresses"
# A takes packets from any source (no reverse-path filter), so the resolver itself must refuse.
for k in all default va; do in_a sysctl -qw "net.ipv4.conf.$k.rp_filter=0" || bail "sysctl rp_filter"; done

# --address: the spoofer's addresses on vb are not the responder's to announce.
responder_start real --hostName kms.local --port 30000 --interfaceName vb --address "$IP_B" --instance real-kms

ip netns exec "$NS_B" python3 "$(dirname "$0")/mdns_spoofer.py" --iface "$IP_B" --onlink "$ONLINK" \
    --offlink "$OFFLINK" --real "$IP_B" --timeout 30 --rounds 8 >"$T/spoofer.out" 2>"$T/spoofer.err" &
SPOOFER=$!
on_exit "stop_pid $SPOOFER"
wait_for_line "$T/spoofer.out" "^ready" 10 "$SPOOFER" || bail "the spoofer did not start: $(tail -3 "$T/spoofer.err")"

# The resolver, as a node resolves challenger_server http://kms.local:8082.
in_a timeout -k 5 60 "$QUERY_TOOL" resolve http://kms.local:8082 4000 >"$T/ep" 2>"$T/err"
rc=$?
diag <"$T/ep"
check "the spoofer answered the resolver's query (the attack happened)" 'grep -q "^spoofed $IP_A:" "$T/spoofer.out"'
check "the real responder is still found: 10.199.0.2:30000" \
    '[ "$rc" = 0 ] && grep -q "^endpoint 10.199.0.2 30000 url=http://10.199.0.2:30000 host=kms.local:8082 instance=real-kms" "$T/ep"'
check "an answer from an off-link source address (10.200.0.9) is ignored" '! grep -q "10\.199\.0\.61" "$T/ep"'
check "an answer from a port other than 5353 is ignored" '! grep -q "10\.199\.0\.62" "$T/ep"'
check "an answer to another question, the address slipped in as an additional record, is ignored" \
    '! grep -q "10\.199\.0\.63" "$T/ep"'
check "a unicast answer with a wrong non-zero id is ignored" '! grep -q "10\.199\.0\.64" "$T/ep"'
check "goodbyes for the real address from other hosts do not remove it; nothing else is listed" \
    '[ "$(grep -c "^endpoint" "$T/ep")" = 1 ]'

# Only spoofs: the real responder gone, the spoofer alone does not make the name resolve.
stop_pid "$RESPONDER_PID"
in_a timeout -k 5 60 "$QUERY_TOOL" resolve http://kms.local:8082 2500 >"$T/ep2" 2>"$T/err2"
rc=$?
diag <"$T/ep2"
check "with only the spoofer answering, kms.local does not resolve (exit non-zero, no endpoint)" \
    '[ "$rc" != 0 ] && ! grep -q "^endpoint" "$T/ep2" && grep -q "no answer for kms.local" "$T/err2"'

done_testing
