#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Our mdns-responder in namespace B, asked from namespace A by our node-side resolver and by an
# independent querier (mdns_peer.py): upstream's records (docs/upstream.md §7.2), the three ways of
# answering (RFC 6762 legacy, QU, QM), malformed packets, a second KMS machine on the link (C),
# a responder that answers as upstream's simple-mdns-server does, goodbyes, one responder on two
# interfaces, no responder at all, and the applet's usage errors.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/lib.sh"
netns_up

# ---- the applet's command line ----
run_kkms "$T/out" "$T/err" rc mdns-responder --help
check "--help: exit 0, shows how to run it next to challenger" \
    '[ "$rc" = 0 ] && grep -q "challenger --db" "$T/out" && grep -q -- "--hostName kms.local" "$T/out"'
run_kkms "$T/out" "$T/err" rc simple-mdns-server --help
check "it answers to simple-mdns-server too" '[ "$rc" = 0 ] && grep -q -- "--interfaceName" "$T/out"'
in_b timeout 10 "$KAIROS_KMS" mdns-responder --hostName kms.local --port 30000 --interfaceName eth9 </dev/null >"$T/out" 2>"$T/err"
rc=$?
check "--interfaceName eth9: exit 1, one line naming it" \
    '[ "$rc" = 1 ] && one_line "$T/err" && grep -q -- "--interfaceName eth9: no such interface" "$T/err"'
run_kkms "$T/out" "$T/err" rc mdns-responder --hostName kms.local --interfaceName vb
check "no --port: exit 2, one line" '[ "$rc" = 2 ] && one_line "$T/err" && grep -q -- "--port is required" "$T/err"'
run_kkms "$T/out" "$T/err" rc mdns-responder --hostName kms.local --port 70000 --interfaceName vb
check "--port 70000: exit 2" '[ "$rc" = 2 ] && grep -q -- "--port 70000" "$T/err"'
run_kkms "$T/out" "$T/err" rc mdns-responder --hostName kms.local --port 30000
check "neither --interfaceName nor --address: exit 2" '[ "$rc" = 2 ] && grep -q "one of --interfaceName or --address" "$T/err"'
run_kkms "$T/out" "$T/err" rc mdns-responder --hostName kms.local --port 30000 --address 10.1.2
check "--address that is not an address: exit 1, one line" '[ "$rc" != 0 ] && one_line "$T/err" && grep -q -- "--address 10.1.2" "$T/err"'

# ---- one responder, started with upstream's single-dash flags; stdin at EOF ----
responder_start r1 -hostName kms.local -port 30000 -interfaceName vb -serviceType _kcrypt._tcp -instance kms-1
R1=$RESPONDER_PID
started=$(date +%s%N)
check "the announcement names instance, host, port, interface and address" \
    'grep -q "announcing kms-1._kcrypt._tcp.local -> kms.local:30000 on vb (10.199.0.2)" "$T/r1.log"'

resolve "$T/ep" "$T/err" rc http://kms.local:8082 3000
check "our resolver finds it: dial 10.199.0.2:30000 (the SRV port), Host kms.local:8082" \
    '[ "$rc" = 0 ] && [ "$(wc -l <"$T/ep")" = 1 ] && grep -q "^endpoint 10.199.0.2 30000 url=http://10.199.0.2:30000 host=kms.local:8082 instance=kms-1._kcrypt._tcp.local txt=An instance of _kcrypt._tcp$" "$T/ep"'
resolve "$T/ep" "$T/err" rc http://KMS.local./ 3000
check "...names without case, a trailing dot and a path are fine" \
    '[ "$rc" = 0 ] && grep -q "url=http://10.199.0.2:30000 host=KMS.local." "$T/ep"'
sleep 1

# ---- the independent querier: legacy unicast, as upstream nodes ask ----
in_a $PEER query _kcrypt._tcp.local PTR --iface $IP_A --mode legacy --timeout 1.5 >"$T/legacy" 2>&1
check "legacy query: one unicast answer from 10.199.0.2:5353 with the query's id and question" \
    'grep -q "^packet from=10.199.0.2:5353 to=unicast id=[1-9]" "$T/legacy" && [ "$(grep -c ^packet "$T/legacy")" = 1 ] &&
     grep -q "^question _kcrypt._tcp.local PTR 0x0001" "$T/legacy"'
check "...PTR, SRV (priority 10, weight 1, port, target), TXT and A together, TTL 10, no cache-flush bit" \
    'grep -q "^rr answer _kcrypt._tcp.local PTR 0x0001 10 kms-1._kcrypt._tcp.local$" "$T/legacy" &&
     grep -q "^rr answer kms-1._kcrypt._tcp.local SRV 0x0001 10 10 1 30000 kms.local$" "$T/legacy" &&
     grep -q "^rr answer kms-1._kcrypt._tcp.local TXT 0x0001 10 An instance of _kcrypt._tcp$" "$T/legacy" &&
     grep -q "^rr answer kms.local A 0x0001 10 10.199.0.2$" "$T/legacy"'
in_a $PEER query _kcrypt._tcp.local PTR --iface $IP_A --mode qu --timeout 1.5 >"$T/qu" 2>&1
check "QU query from 5353: unicast answer, TTL 120, cache-flush on SRV/TXT/A but not on the shared PTR" \
    'grep -q "^packet from=10.199.0.2:5353 to=unicast" "$T/qu" && grep -q "^rr answer _kcrypt._tcp.local PTR 0x0001 120 " "$T/qu" &&
     grep -q "^rr answer kms-1._kcrypt._tcp.local SRV 0x8001 120 10 1 30000 kms.local$" "$T/qu" &&
     grep -q "^rr answer kms.local A 0x8001 120 10.199.0.2$" "$T/qu"'
# Announcements went out at start and one second later; a record is multicast at most once a
# second per interface (RFC 6762 §6), so ask after that.
while [ $(( ($(date +%s%N) - started) / 1000000 )) -lt 2200 ]; do sleep 0.1; done
in_a $PEER query _kcrypt._tcp.local PTR --iface $IP_A --mode qm --timeout 1.5 >"$T/qm" 2>&1
check "QM query from 5353: a multicast answer, id 0, no question" \
    'grep -q "^packet from=10.199.0.2:5353 to=multicast id=0 flags=0x8400 qd=0 an=4" "$T/qm" && grep -q "SRV 0x8001 120 10 1 30000 kms.local$" "$T/qm"'
in_a $PEER query kms-1._kcrypt._tcp.local SRV --iface $IP_A --timeout 1 >"$T/inst" 2>&1
check "the instance's SRV: SRV and A" \
    'grep -q "SRV 0x0001 10 10 1 30000 kms.local$" "$T/inst" && grep -q "^rr answer kms.local A " "$T/inst" && ! grep -q " PTR " "$T/inst"'
in_a $PEER query kms-1._kcrypt._tcp.local TXT --iface $IP_A --timeout 1 >"$T/txt" 2>&1
check "the instance's TXT" 'grep -q "TXT 0x0001 10 An instance of _kcrypt._tcp$" "$T/txt" && [ "$(grep -c "^rr " "$T/txt")" = 1 ]'
in_a $PEER query kms.local A --iface $IP_A --timeout 1 >"$T/a" 2>&1
check "the host name's A" 'grep -q "^rr answer kms.local A 0x0001 10 10.199.0.2$" "$T/a" && [ "$(grep -c "^rr " "$T/a")" = 1 ]'
in_a $PEER query _services._dns-sd._udp.local PTR --iface $IP_A --timeout 1 >"$T/enum" 2>&1
check "service enumeration: _services._dns-sd._udp.local -> _kcrypt._tcp.local" \
    'grep -q "^rr answer _services._dns-sd._udp.local PTR 0x0001 10 _kcrypt._tcp.local$" "$T/enum"'
in_a $PEER query other.local A --iface $IP_A --timeout 1 >"$T/other" 2>&1
check "a name it does not own: no answer" '! grep -q "^packet" "$T/other"'

# ---- malformed packets do not stop it ----
in_a $PEER garbage --iface $IP_A --target $IP_B >"$T/garbage" 2>&1
check "malformed packets were sent" 'grep -q "sent [0-9]* malformed packets" "$T/garbage"'
sleep 0.3
resolve "$T/ep" "$T/err" rc http://kms.local:8082 3000
check "...and the responder is still up and answering" \
    'kill -0 $R1 && [ "$rc" = 0 ] && grep -q "url=http://10.199.0.2:30000" "$T/ep" && ! grep -qi "sanitizer\|runtime error" "$T/r1.log"'

# ---- two responders at once: a second KMS machine (namespace C) on the same link ----
netns_add_c
RESPONDER_NS=$NS_C responder_start r2 --hostName kms.local --port 30001 --interfaceName vc --instance kms-2
R2=$RESPONDER_PID
resolve "$T/ep" "$T/err" rc http://kms.local:8082 3000
check "both servers are returned, each with its own address and port" \
    '[ "$rc" = 0 ] && [ "$(wc -l <"$T/ep")" = 2 ] && grep -q "^endpoint 10.199.0.2 30000 .*instance=kms-1" "$T/ep" &&
     grep -q "^endpoint 10.199.0.3 30001 .*instance=kms-2" "$T/ep"'
in_a $PEER query _kcrypt._tcp.local PTR --iface $IP_A --timeout 1.5 >"$T/two" 2>&1
check "the independent querier hears both" \
    '[ "$(grep -c ^packet "$T/two")" = 2 ] && grep -q "^packet from=10.199.0.3:5353 to=unicast" "$T/two" &&
     grep -q "SRV 0x0001 10 10 1 30001 kms.local$" "$T/two" && grep -q "kms.local A 0x0001 10 10.199.0.3$" "$T/two"'

# ---- upstream's responder: hashicorp/mdns answers a legacy query with id 0 ----
ip netns exec "$NS_C" $PEER respond --iface $IP_C --instance upstream --host kms-up.local --port 30005 \
    --addr $IP_C --timeout 20 >"$T/upstream.log" 2>&1 &
UPSTREAM=$!
on_exit "stop_pid $UPSTREAM"
wait_for_line "$T/upstream.log" responding 10 $UPSTREAM || bail "the hashicorp-style responder did not start"
resolve "$T/ep" "$T/err" rc http://kms-up.local 3000
check "a responder that answers as simple-mdns-server does (id 0, all in Answer) is understood" \
    '[ "$rc" = 0 ] && [ "$(wc -l <"$T/ep")" = 1 ] && grep -q "^endpoint 10.199.0.3 30005 url=http://10.199.0.3:30005 host=kms-up.local instance=upstream._kcrypt._tcp.local" "$T/ep"'
stop_pid $UPSTREAM

# ---- goodbye on SIGTERM ----
ip netns exec "$NS_A" $PEER listen --iface $IP_A --timeout 3 >"$T/bye" 2>&1 &
LISTENER=$!
on_exit "stop_pid $LISTENER"
sleep 0.5
kill -TERM $R2
wait $R2
rc=$?
wait $LISTENER
check "SIGTERM: the second responder exits 0" '[ "$rc" = 0 ] && grep -q "goodbye" "$T/r2.log"'
check "...after multicasting its records with TTL 0" \
    'grep -q "^packet from=10.199.0.3:5353 to=multicast id=0" "$T/bye" && grep -q "kms-2._kcrypt._tcp.local SRV 0x8001 0 10 1 30001 kms.local$" "$T/bye" &&
     grep -q "kms.local A 0x8001 0 10.199.0.3$" "$T/bye"'
resolve "$T/ep" "$T/err" rc http://kms.local 3000
check "then only the first one answers (URL without a port: the SRV port)" \
    '[ "$rc" = 0 ] && [ "$(wc -l <"$T/ep")" = 1 ] && grep -q "^endpoint 10.199.0.2 30000 url=http://10.199.0.2:30000 host=kms.local " "$T/ep"'
check "the first responder ran the whole test with stdin at EOF" 'kill -0 $R1'

# ---- one responder serving two interfaces, each with its own address ----
netns_add_second_link
responder_start r3 --hostName kms3.local --port 30002 --interfaceName vb --interfaceName vb2 --instance kms-3
R3=$RESPONDER_PID
check "it announces on both" 'grep -q "kms3.local:30002 on vb (10.199.0.2), vb2 (10.199.1.2)" "$T/r3.log"'
in_a $PEER query kms3.local A --iface $IP_A --timeout 1 >"$T/if1" 2>&1
in_a $PEER query kms3.local A --iface 10.199.1.1 --timeout 1 >"$T/if2" 2>&1
check "asked on each link, it answers with that link's address" \
    'grep -q "^rr answer kms3.local A 0x0001 10 10.199.0.2$" "$T/if1" && ! grep -q 10.199.1.2 "$T/if1" &&
     grep -q "^rr answer kms3.local A 0x0001 10 10.199.1.2$" "$T/if2" && ! grep -q 10.199.0.2 "$T/if2"'
resolve "$T/ep" "$T/err" rc http://kms3.local:8443 3000
check "our resolver, asking on every interface, gets both addresses" \
    '[ "$rc" = 0 ] && [ "$(wc -l <"$T/ep")" = 2 ] && grep -q "^endpoint 10.199.0.2 30002 " "$T/ep" && grep -q "^endpoint 10.199.1.2 30002 " "$T/ep"'
stop_pid $R3

# ---- nobody answers ----
resolve "$T/ep" "$T/err" rc http://kms-nobody.local:8082 2000
elapsed=$(sed -n 's/^elapsed_ms=//p' "$T/err")
check "a name nobody announces: exit 1, a clear error, within the time limit" \
    '[ "$rc" = 1 ] && grep -q "^mdns_query_tool: mdns: no answer for kms-nobody.local within 2 s$" "$T/err" &&
     [ "$elapsed" -ge 1900 ] && [ "$elapsed" -lt 3000 ]'
stop_pid $R1
resolve "$T/ep" "$T/err" rc http://kms.local:8082 1500
elapsed=$(sed -n 's/^elapsed_ms=//p' "$T/err")
check "no responder at all: the same error, in 1.5 s" \
    '[ "$rc" = 1 ] && grep -q "no answer for kms.local within 1.5 s" "$T/err" && [ "$elapsed" -lt 2500 ] && [ ! -s "$T/ep" ]'
resolve "$T/ep" "$T/err" rc http://kms.example.com:8082 1500
check "a host outside .local is refused at once, never sent to ordinary DNS" \
    '[ "$rc" = 1 ] && grep -q "kms.example.com: the host must end in .local" "$T/err"'

done_testing
