#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# The real world's responder: avahi-daemon in namespace B publishing _kcrypt._tcp (a service
# file) and a static host name (its hosts file), our node-side resolver in namespace A
# (docs/testing.md §5: private mount namespace with its own /run and services directory).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/lib.sh"
require avahi-daemon unshare
netns_up

D=$T/avahi
mkdir -p "$D/services"
cat >"$D/avahi.conf" <<EOF
[server]
host-name=kms
use-ipv4=yes
use-ipv6=no
allow-interfaces=vb
enable-dbus=no
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
enable-reflector=no
EOF
cat >"$D/services/kcrypt.service" <<'EOF'
<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group>
  <name>KMS on avahi</name>
  <service>
    <type>_kcrypt._tcp</type>
    <port>30000</port>
    <txt-record>path=/</txt-record>
  </service>
</service-group>
EOF
# A name with only an address (no service): the KMS host reached on the URL's port. (Not one
# of vb's own addresses: avahi refuses a second name for those, "Local name collision".)
echo "10.199.0.9 kms-alias.local" >"$D/hosts"

ip netns exec "$NS_B" unshare -m --propagation private sh -c "
    mount -t tmpfs kkms-mdns-run /run && mkdir -p /run/avahi-daemon &&
    mount --bind '$D/services' /etc/avahi/services && mount --bind '$D/hosts' /etc/avahi/hosts &&
    exec avahi-daemon -f '$D/avahi.conf' --no-drop-root --no-chroot --no-rlimits --no-proc-title" \
    </dev/null >"$T/avahi.log" 2>&1 &
AVAHI=$!
on_exit "stop_pid $AVAHI"
wait_for_line "$T/avahi.log" "Server startup complete" 15 $AVAHI || bail "avahi-daemon did not start: $(tail -3 "$T/avahi.log")"
# avahi probes its names for about a second before it answers.
for i in $(seq 30); do
    resolve "$T/ep" "$T/err" rc http://kms.local:8082 1000
    [ "$rc" = 0 ] && break
    kill -0 $AVAHI 2>/dev/null || break
done

check "avahi's _kcrypt._tcp service is found: SRV port, Host kept, its TXT" \
    '[ "$rc" = 0 ] && grep -q "^endpoint 10.199.0.2 30000 url=http://10.199.0.2:30000 host=kms.local:8082 instance=KMS on avahi._kcrypt._tcp.local txt=path=/$" "$T/ep"'
check "...IPv4 first, then avahi's link-local IPv6 (AAAA even with use-ipv6=no), scoped to our interface" \
    '[ "$(wc -l <"$T/ep")" = 2 ] && head -1 "$T/ep" | grep -q "^endpoint 10.199.0.2 30000 " &&
     sed -n 2p "$T/ep" | grep -q "^endpoint fe80:[0-9a-f:]*%va 30000 url=http://\[fe80:[0-9a-f:]*%25va\]:30000 host=kms.local:8082 "'
resolve "$T/ep" "$T/err" rc https://kms-alias.local:8443/ 3000
check "a host avahi publishes only an address for: the URL's port and scheme, Host as written" \
    '[ "$rc" = 0 ] && [ "$(wc -l <"$T/ep")" = 1 ] && grep -q "^endpoint 10.199.0.9 8443 url=https://10.199.0.9:8443 host=kms-alias.local:8443 instance=- txt=$" "$T/ep"'
in_a timeout 30 "$QUERY_TOOL" query _kcrypt._tcp.local PTR 3000 >"$T/ptr" 2>&1
check "our one-shot query of the service gets avahi's instance, SRV, TXT and address" \
    'grep -q "^answer from=10.199.0.2 instance=KMS on avahi._kcrypt._tcp.local host=kms.local port=30000 addrs=\(.*,\)\?10.199.0.2\(,.*\)\? txt=path=/$" "$T/ptr"'
resolve "$T/ep" "$T/err" rc http://kms-other.local:8082 2000
check "a name avahi does not publish: no answer within the time limit" \
    '[ "$rc" = 1 ] && grep -q "no answer for kms-other.local within 2 s" "$T/err"'
check "avahi is still running" 'kill -0 $AVAHI'

done_testing
