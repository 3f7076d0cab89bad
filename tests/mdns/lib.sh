# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# mDNS fixture (docs/testing.md §5; source tests/lib/common.sh first): two network
# namespaces, A (the node, 10.199.0.1 on va) and B (the KMS side, 10.199.0.2 on vb), joined by a
# veth pair created inside them, with a 224.0.0.0/4 route on each side and no default route; on
# demand a third, C (10.199.0.3), on the same link through a bridge in A, and a second link A-B.
# Their names carry $$; all are deleted at exit, and every process started here is killed by PID.
require ip python3 timeout
[ "$(id -u)" = 0 ] || bail "the mDNS tests create network namespaces: run them as root"

NS_A=kkms-mdns-$$-a
NS_B=kkms-mdns-$$-b
NS_C=kkms-mdns-$$-c
IP_A=10.199.0.1
IP_B=10.199.0.2
IP_C=10.199.0.3
QUERY_TOOL=${KKMS_MDNS_QUERY_TOOL:?KKMS_MDNS_QUERY_TOOL must name the mdns_query_tool test driver}
PEER="python3 $(dirname "${BASH_SOURCE[0]}")/mdns_peer.py"

netns_down() {
    ip netns del "$NS_A" 2>/dev/null
    ip netns del "$NS_B" 2>/dev/null
    ip netns del "$NS_C" 2>/dev/null
    return 0
}

netns_up() {
    on_exit netns_down
    ip netns add "$NS_A" && ip netns add "$NS_B" &&
        ip -n "$NS_A" link add va type veth peer name vb netns "$NS_B" &&
        ip -n "$NS_A" addr add "$IP_A/24" dev va && ip -n "$NS_B" addr add "$IP_B/24" dev vb &&
        ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up &&
        ip -n "$NS_A" link set va up && ip -n "$NS_B" link set vb up &&
        ip -n "$NS_A" route add 224.0.0.0/4 dev va && ip -n "$NS_B" route add 224.0.0.0/4 dev vb ||
        bail "could not create the network namespaces $NS_A and $NS_B"
}

# Run a command in A or B (in the foreground: to start one in the background, call ip netns exec
# directly, so that $! is the command's own PID).
# netns_add_c: a third namespace C (10.199.0.3 on vc) on the same link as B, as a second KMS
# machine on the LAN would be: A's end of the link becomes a bridge (br0) with va and va3 in it.
netns_add_c() {
    ip netns add "$NS_C" &&
        ip -n "$NS_A" link add br0 type bridge && ip -n "$NS_A" link set br0 up &&
        ip -n "$NS_A" route del 224.0.0.0/4 dev va && ip -n "$NS_A" addr del "$IP_A/24" dev va &&
        ip -n "$NS_A" link set va master br0 && ip -n "$NS_A" addr add "$IP_A/24" dev br0 &&
        ip -n "$NS_A" link add va3 type veth peer name vc netns "$NS_C" &&
        ip -n "$NS_A" link set va3 master br0 && ip -n "$NS_A" link set va3 up &&
        ip -n "$NS_C" addr add "$IP_C/24" dev vc && ip -n "$NS_C" link set lo up && ip -n "$NS_C" link set vc up &&
        ip -n "$NS_A" route add 224.0.0.0/4 dev br0 && ip -n "$NS_C" route add 224.0.0.0/4 dev vc ||
        bail "could not add the namespace $NS_C"
}

# netns_add_second_link: another veth pair between A (10.199.1.1 on va2) and B (10.199.1.2 on
# vb2), so that B has two interfaces to serve.
netns_add_second_link() {
    ip -n "$NS_A" link add va2 type veth peer name vb2 netns "$NS_B" &&
        ip -n "$NS_A" addr add 10.199.1.1/24 dev va2 && ip -n "$NS_B" addr add 10.199.1.2/24 dev vb2 &&
        ip -n "$NS_A" link set va2 up && ip -n "$NS_B" link set vb2 up || bail "could not add a second link"
}

in_a() { ip netns exec "$NS_A" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }

# wait_for_line FILE PATTERN SECONDS PID: until FILE has a line matching PATTERN; false if PID died
# or the time ran out.
wait_for_line() {
    local file=$1 pattern=$2 seconds=$3 pid=$4 i
    for i in $(seq $((seconds * 20))); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# responder_start NAME ARGS...: our responder in B (or in $RESPONDER_NS), standard input at EOF
# (it must not care); sets RESPONDER_PID; its log is $T/NAME.log.
responder_start() {
    local name=$1
    shift
    # Not through in_b: a function run in the background is a subshell, and $! would be its PID.
    ip netns exec "${RESPONDER_NS:-$NS_B}" "$KAIROS_KMS" mdns-responder "$@" </dev/null >"$T/$name.out" 2>"$T/$name.log" &
    RESPONDER_PID=$!
    on_exit "stop_pid $RESPONDER_PID"
    wait_for_line "$T/$name.log" "announcing" 10 "$RESPONDER_PID" ||
        bail "the responder $name did not start: $(tail -3 "$T/$name.log")"
}

# resolve OUT ERR RC_VAR URL [TIMEOUT_MS]: our node-side resolver, from A.
resolve() {
    local out=$1 err=$2 __rc=$3
    shift 3
    in_a timeout -k 5 60 "$QUERY_TOOL" resolve "$@" >"$out" 2>"$err"
    printf -v "$__rc" '%d' $?
}

# node_and_db: a swtpm node (node-a; TPM_SOCK, HASH) whose unix socket works from either namespace,
# and an empty KMS directory DB.
node_and_db() {
    swtpm_start "$(golden_state node-a ekcert)"
    HASH=$(timeout 60 "$KAIROS_KMS" tpm-hash --tpm-device "$TPM_SOCK") || bail "tpm-hash failed"
    DB=$T/db
    mkdir -p "$DB" && chmod 700 "$DB"
}
